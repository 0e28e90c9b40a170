# Data path checks that need the CLI: Megatron .bin/.idx read back with numpy.
add_test(NAME data_check_idx
         COMMAND ${CAIRN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/check_idx.py
                 $<TARGET_FILE:cairn>)
set_tests_properties(data_check_idx PROPERTIES ENVIRONMENT "${CAIRN_TEST_ENV}")
