# GPU tests: every op of the CUDA backend against the CPU backend
# (tests/gpu/test_ops_cuda.c). Built only with the CUDA backend; on a machine
# without a usable GPU the test prints "skipped: no CUDA device (reason)" and
# exits 77, which ctest reports as skipped. bench_ops_cuda times the main ops
# (run by tests/gpu/run.sh, not by ctest). test_cuda_environment checks host
# code of the backend and runs wherever the backend is built, GPU or not.
if(CAIRN_HAVE_CUDA)
  foreach(program test_ops_cuda bench_ops_cuda)
    add_executable(${program} ${CMAKE_CURRENT_SOURCE_DIR}/gpu/${program}.c)
    target_link_libraries(${program} PRIVATE cairn_core)
    # only the libraries the program uses, so it runs on a GPU host without the rest
    target_link_options(${program} PRIVATE -Wl,--as-needed)
  endforeach()
  add_test(NAME test_ops_cuda COMMAND test_ops_cuda)
  # host code of the backend that needs no GPU: runs everywhere the backend is built
  add_executable(test_cuda_environment ${CMAKE_CURRENT_SOURCE_DIR}/gpu/test_cuda_environment.c)
  target_link_libraries(test_cuda_environment PRIVATE cairn_core)
  add_test(NAME test_cuda_environment COMMAND test_cuda_environment)
  set_tests_properties(test_ops_cuda PROPERTIES SKIP_RETURN_CODE 77 ENVIRONMENT "${CAIRN_TEST_ENV}"
                       WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
endif()
# run.sh's search for the CUDA libraries a GPU host keeps in Python wheels: runs everywhere
find_program(CAIRN_CC NAMES cc gcc)
if(CAIRN_CC)
  add_test(NAME test_find_libraries
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/gpu/test_find_libraries.sh
                   ${CMAKE_CURRENT_BINARY_DIR}/find_libraries)
  set_tests_properties(test_find_libraries PROPERTIES ENVIRONMENT "CC=${CAIRN_CC}")
endif()
