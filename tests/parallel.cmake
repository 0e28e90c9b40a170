# The parallel layer under mpirun: several ranks on this one machine (oversubscribed: more ranks
# than cores), shared-memory transport only (self + vader: no network needed in a container).
# As root Open MPI refuses to start without the OMPI_ALLOW_RUN_AS_ROOT pair (in CAIRN_TEST_ENV).
set(CAIRN_MPIRUN ${MPIEXEC_EXECUTABLE} --oversubscribe --mca btl self,vader)

foreach(name comm topology data_parallel dead_rank step_schedule)
  add_executable(parallel_test_${name} ${CMAKE_CURRENT_SOURCE_DIR}/parallel/test_${name}.c)
  target_link_libraries(parallel_test_${name} PRIVATE cairn_core)
endforeach()

foreach(ranks 2 4 8)
  add_test(NAME parallel_comm_np${ranks}
           COMMAND ${CAIRN_MPIRUN} -np ${ranks} $<TARGET_FILE:parallel_test_comm>)
  list(APPEND CAIRN_PARALLEL_TESTS parallel_comm_np${ranks})
endforeach()
foreach(ranks 1 4)
  add_test(NAME parallel_topology_np${ranks}
           COMMAND ${CAIRN_MPIRUN} -np ${ranks} $<TARGET_FILE:parallel_test_topology>)
  list(APPEND CAIRN_PARALLEL_TESTS parallel_topology_np${ranks})
endforeach()
# srun without --mpi=pmix: each task is an MPI singleton although Slurm says there are 4
add_test(NAME parallel_topology_launch_mismatch
         COMMAND $<TARGET_FILE:parallel_test_topology> --expect-launch-mismatch)
set_tests_properties(parallel_topology_launch_mismatch PROPERTIES TIMEOUT 60 ENVIRONMENT
  "${CAIRN_TEST_ENV};SLURM_PROCID=2;SLURM_NTASKS=4;SLURM_STEP_ID=0;SLURM_LOCALID=2")
foreach(ranks 2 3 4)
  add_test(NAME parallel_data_parallel_np${ranks}
           COMMAND ${CAIRN_MPIRUN} -np ${ranks} $<TARGET_FILE:parallel_test_data_parallel>)
  list(APPEND CAIRN_PARALLEL_TESTS parallel_data_parallel_np${ranks})
endforeach()
# the trainer's pipeline step on a communicator as strict as NCCL's one stream, a stage per rank
foreach(ranks 2 3 4)
  add_test(NAME parallel_step_schedule_np${ranks}
           COMMAND ${CAIRN_MPIRUN} -np ${ranks} $<TARGET_FILE:parallel_test_step_schedule>)
  list(APPEND CAIRN_PARALLEL_TESTS parallel_step_schedule_np${ranks})
endforeach()
add_test(NAME parallel_dead_rank
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/parallel/dead_rank.sh ${MPIEXEC_EXECUTABLE}
                 $<TARGET_FILE:parallel_test_dead_rank>)
list(APPEND CAIRN_PARALLEL_TESTS parallel_dead_rank)
set_tests_properties(${CAIRN_PARALLEL_TESTS} PROPERTIES ENVIRONMENT "${CAIRN_TEST_ENV}"
                     TIMEOUT 120)

# Bytes per rank per step of the DP reduction (all-reduce vs ZeRO-1): an executable for people,
# run by tests/bench/comm_bytes.sh, never a ctest test.
add_executable(bench_comm_bytes ${CMAKE_CURRENT_SOURCE_DIR}/bench/comm_bytes.c)
target_link_libraries(bench_comm_bytes PRIVATE cairn_core)
