# Micro-benchmarks of backend ops: executables only, never ctest tests (timings
# are for people, not pass/fail). Run e.g. `build/tests/bench_ops_cpu`.
add_executable(bench_ops_cpu ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_ops_cpu.c)
target_link_libraries(bench_ops_cpu PRIVATE cairn_core)
