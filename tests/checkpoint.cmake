# Checkpoints through the CLI: exact resume, HDF5 layout, retention, damaged checkpoints, kill -9,
# failed saves, signals, eval and inspect.
add_test(NAME checkpoint_cli
         COMMAND ${CAIRN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/test_checkpoint.py
                 $<TARGET_FILE:cairn>)
set_tests_properties(checkpoint_cli PROPERTIES ENVIRONMENT "${CAIRN_TEST_ENV}" TIMEOUT 600)

# Write/read throughput against dd (tests/bench/checkpoint_io.sh): an executable, not a test.
add_executable(bench_checkpoint_io ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_checkpoint_io.c)
target_link_libraries(bench_checkpoint_io PRIVATE cairn_core)
