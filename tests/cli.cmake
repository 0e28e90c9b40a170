# Command-line contract tests (bad input, end-to-end training).
add_test(NAME cli_bad_input COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/bad_input.sh $<TARGET_FILE:cairn>)
add_test(NAME cli_training COMMAND ${CAIRN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/test_training.py
         $<TARGET_FILE:cairn>)
set_tests_properties(cli_bad_input cli_training PROPERTIES ENVIRONMENT "${CAIRN_TEST_ENV}")
