# Model shards (tensor-parallel slices, pipeline stages, expert-parallel groups) against the whole
# model, under mpirun.
add_executable(test_model_shards ${CMAKE_CURRENT_SOURCE_DIR}/parallel/test_model_shards.c)
target_link_libraries(test_model_shards PRIVATE cairn_core MPI::MPI_C)
foreach(layout "2;1;1" "1;2;1" "2;2;1" "1;3;1" "1;1;2" "2;1;2" "1;2;2" "1;1;4")
  list(GET layout 0 tp)
  list(GET layout 1 pp)
  list(GET layout 2 ep)
  math(EXPR ranks "${tp} * ${pp} * ${ep}")
  add_test(NAME model_shards_tp${tp}_pp${pp}_ep${ep}
           COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe -np ${ranks}
                   $<TARGET_FILE:test_model_shards> ${tp} ${pp} ${ep})
  set_tests_properties(model_shards_tp${tp}_pp${pp}_ep${ep} PROPERTIES
                       ENVIRONMENT "${CAIRN_TEST_ENV};OMP_NUM_THREADS=1")
endforeach()
