# `cairn prepare` at scale and the shard readers, checked against megatron-core's own
# IndexedDataset/IndexedDatasetBuilder and llm.c shards written as data_common.py does.
add_executable(dump_dataset ${CMAKE_CURRENT_SOURCE_DIR}/tools/dump_dataset.c)
target_link_libraries(dump_dataset PRIVATE cairn_core)
add_test(NAME prepare_megatron_format
         COMMAND ${CAIRN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/test_megatron_format.py
                 $<TARGET_FILE:cairn> $<TARGET_FILE:dump_dataset>)
add_test(NAME prepare_bad_input
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/prepare_bad_input.sh $<TARGET_FILE:cairn>)
set_tests_properties(prepare_megatron_format prepare_bad_input PROPERTIES ENVIRONMENT
                     "${CAIRN_TEST_ENV}")
