# Every parallel layout against the single-rank run, through the CLI under mpirun.
add_test(NAME parallel_training
         COMMAND ${CAIRN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/test_parallel_training.py
                 $<TARGET_FILE:cairn>)
set_tests_properties(parallel_training PROPERTIES ENVIRONMENT "${CAIRN_TEST_ENV}" TIMEOUT 900)
