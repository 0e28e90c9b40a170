# Hugging Face byte-level BPE tokenizers: tokenize_text drives data/tokenizer.h for the parity
# test, which builds GPT-2, Llama-3 and tekken style tokenizer.json files with the `tokenizers`
# library and compares cairn's ids with Hugging Face tokenizers' and tiktoken's. The benchmark
# tests/bench/tokenizer_vs_hf.sh uses the same tool (not a ctest test).
add_executable(tokenize_text ${CMAKE_CURRENT_SOURCE_DIR}/tools/tokenize_text.c)
target_link_libraries(tokenize_text PRIVATE cairn_core)
# Without PCRE2 no regex pre-tokenizer loads (test_bpe_tokenizer checks that it says so).
if(PCRE2_FOUND)
  add_test(NAME tokenizer_parity
           COMMAND ${CAIRN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/test_tokenizer_parity.py
                   $<TARGET_FILE:tokenize_text> $<TARGET_FILE:cairn>)
  set_tests_properties(tokenizer_parity PROPERTIES ENVIRONMENT "${CAIRN_TEST_ENV}" TIMEOUT 300)
endif()
