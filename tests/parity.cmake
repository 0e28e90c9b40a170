# Parity of the whole model with an independent float64 PyTorch implementation: dump_step runs one
# fp32 forward + backward of cairn and writes it out; torch_parity.py rebuilds the same model from
# the semantics and compares the objective and every gradient. With --perturb the script nudges one
# weight on the PyTorch side and succeeds only if every case then fails the comparison, so the
# comparison is known to bite.
add_executable(dump_step ${CMAKE_CURRENT_SOURCE_DIR}/tools/dump_step.c)
target_link_libraries(dump_step PRIVATE cairn_core)

set(CAIRN_PARITY_SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/python/torch_parity.py)
add_test(NAME torch_parity
         COMMAND ${CAIRN_PYTHON} ${CAIRN_PARITY_SCRIPT} $<TARGET_FILE_DIR:dump_step>)
add_test(NAME torch_parity_detects_perturbation
         COMMAND ${CAIRN_PYTHON} ${CAIRN_PARITY_SCRIPT} $<TARGET_FILE_DIR:dump_step> --perturb)
set_tests_properties(torch_parity torch_parity_detects_perturbation PROPERTIES
                     ENVIRONMENT "${CAIRN_TEST_ENV}")
