# The Goldfish memorization benchmark at a tiny size (tests/python/test_goldfish_memorization.py):
# two short CPU trainings, without and with Goldfish k = 4, on the same repeated fortunes; asserts
# that Goldfish suppresses verbatim recall (`cairn eval --memorization`) while the held-out loss
# stays close, and the eval command's bad-argument errors. The greedy decoding itself is checked
# by tests/unit/test_memorization.c.
add_test(NAME goldfish_memorization
         COMMAND ${CAIRN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/test_goldfish_memorization.py
                 $<TARGET_FILE:cairn>)
set_tests_properties(goldfish_memorization PROPERTIES ENVIRONMENT "${CAIRN_TEST_ENV}" TIMEOUT 600)
