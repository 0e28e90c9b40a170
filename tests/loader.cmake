# Data order: cairn's indices against numpy's RandomState and megatron-core's own dataset code
# (tests/python/test_megatron_order.py drives tests/tools/dump_order).
add_executable(dump_order ${CMAKE_CURRENT_SOURCE_DIR}/tools/dump_order.c)
target_link_libraries(dump_order PRIVATE cairn_core)
add_test(NAME data_megatron_order
         COMMAND ${CAIRN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/test_megatron_order.py
                 $<TARGET_FILE:dump_order>)
set_tests_properties(data_megatron_order PROPERTIES ENVIRONMENT "${CAIRN_TEST_ENV}")
# Loader throughput (tokens/s, one source and a blend of many shards): an executable for people,
# not a test. Run `build/tests/bench_loader`.
add_executable(bench_loader ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_loader.c)
target_link_libraries(bench_loader PRIVATE cairn_core)
