#include "kernels/attention_documents.h"

int attention_documents_starts(const int32_t *doc_start, int B, int T, int32_t *starts) {
    int count = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            if (doc_start[(size_t)b * T + t] == t) starts[count++] = b * T + t;
    starts[count] = B * T;
    return count;
}
