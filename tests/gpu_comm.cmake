# The NCCL comm backend under mpirun, one rank per GPU (tests/gpu/test_comm_nccl.c). Built only
# with the CUDA backend; ctest runs one rank (where there is no GPU the test prints "skipped: no
# CUDA device (reason)" and exits 77); tests/gpu/run.sh runs as many ranks as the host has GPUs.
if(CAIRN_HAVE_CUDA)
  add_executable(test_comm_nccl ${CMAKE_CURRENT_SOURCE_DIR}/gpu/test_comm_nccl.c)
  target_link_libraries(test_comm_nccl PRIVATE cairn_core)
  # only the libraries the program uses, so it runs on a GPU host without the rest
  target_link_options(test_comm_nccl PRIVATE -Wl,--as-needed)
  add_test(NAME test_comm_nccl
           COMMAND ${MPIEXEC_EXECUTABLE} -np 1 --mca btl self,vader $<TARGET_FILE:test_comm_nccl>)
  set_tests_properties(test_comm_nccl PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
                       ENVIRONMENT "${CAIRN_TEST_ENV}")
endif()
