# Hugging Face interop: `cairn export` / `cairn import` against transformers (docs/hf-interop.md).
# checkpoint_logits prints the CPU model's logits of a checkpoint; test_hf_interop.py compares
# them with transformers' logits of the exported model (and of the model imported from
# transformers), checks export(import(x)) == x, sharding and bad input. It exits 77 (skipped) only
# when transformers cannot be imported.
add_executable(checkpoint_logits ${CMAKE_CURRENT_SOURCE_DIR}/tools/checkpoint_logits.c)
target_link_libraries(checkpoint_logits PRIVATE cairn_core)

add_test(NAME hf_interop
         COMMAND ${CAIRN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/test_hf_interop.py
                 $<TARGET_FILE:cairn> $<TARGET_FILE:checkpoint_logits>)
set_tests_properties(hf_interop PROPERTIES ENVIRONMENT "${CAIRN_TEST_ENV}" SKIP_RETURN_CODE 77)
