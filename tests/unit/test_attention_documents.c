/* attention_documents_starts: the first token of every document of a micro-batch, from the
 * per-token document starts the model writes (kernels/attention_documents.h). */
#include <stdio.h>
#include <string.h>

#include "kernels/attention_documents.h"
#include "tests/unit/check.h"

static void check_starts(const char *what, const int32_t *doc_start, int B, int T,
                         const int32_t *expected, int expected_count) {
    int32_t starts[64];
    memset(starts, 0x7f, sizeof starts);
    int count = attention_documents_starts(doc_start, B, T, starts);
    CHECK(count == expected_count);
    int same = count == expected_count;
    for (int i = 0; same && i <= count; i++)
        same = starts[i] == expected[i];
    if (!same) printf("FAIL: %s: starts differ\n", what);
    CHECK(same);
}

int main(void) {
    /* one sequence, one document */
    int32_t one[4] = {0, 0, 0, 0}, one_starts[] = {0, 4};
    check_starts("one document", one, 1, 4, one_starts, 1);
    /* every token its own document */
    int32_t alone[3] = {0, 1, 2}, alone_starts[] = {0, 1, 2, 3};
    check_starts("one token each", alone, 1, 3, alone_starts, 3);
    /* two sequences of 5: {0,1} {2,3,4} | {5,6,7} {8} {9}; the second row restarts at t = 0 */
    int32_t two_rows[10] = {0, 0, 2, 2, 2, 0, 0, 0, 3, 4};
    int32_t two_rows_starts[] = {0, 2, 5, 8, 9, 10};
    check_starts("two sequences", two_rows, 2, 5, two_rows_starts, 5);
    /* a document running to the end of one row does not continue into the next */
    int32_t carried[6] = {0, 1, 1, 0, 0, 0}, carried_starts[] = {0, 1, 3, 6};
    check_starts("row boundary", carried, 2, 3, carried_starts, 3);
    return check_summary("test_attention_documents");
}
