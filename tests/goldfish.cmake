# Goldfish masks of cairn (goldfish_mask prints them) against the reference data paths rewritten
# in PyTorch (Megatron-LM's product hash, Megatron-LM-MoE's coefficient hash with the EOD
# exemption, the static pattern) on a few hundred random samples per variant.
add_executable(goldfish_mask ${CMAKE_CURRENT_SOURCE_DIR}/tools/goldfish_mask.c)
target_link_libraries(goldfish_mask PRIVATE cairn_core)

add_test(NAME goldfish_torch
         COMMAND ${CAIRN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/test_goldfish_torch.py
                 $<TARGET_FILE:goldfish_mask>)
set_tests_properties(goldfish_torch PROPERTIES ENVIRONMENT "${CAIRN_TEST_ENV}")
