# Activation recomputation (train.recompute): model shards that recompute, with tensor, pipeline
# and expert parallelism in one layout, against the whole model that keeps every activation; and
# the CLI: identical metrics with and without it, a one-line error for an unknown value.
add_test(NAME model_shards_tp2_pp2_ep2_recompute
         COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe -np 8 $<TARGET_FILE:test_model_shards> 2 2 2
                 recompute)
set_tests_properties(model_shards_tp2_pp2_ep2_recompute PROPERTIES
                     ENVIRONMENT "${CAIRN_TEST_ENV};OMP_NUM_THREADS=1")
add_test(NAME cli_recompute
         COMMAND ${CAIRN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/test_recompute.py
                 $<TARGET_FILE:cairn>)
set_tests_properties(cli_recompute PROPERTIES ENVIRONMENT "${CAIRN_TEST_ENV}")
