#include "train/memorization.h"

#include <stdlib.h>
#include <string.h>

/* The next token after position `last` of row `row`: argmax of the logits there. */
static int32_t greedy_token(const model *m, float *row_logits, int row, int last) {
    int V = m->vocab;
    size_t n = (size_t)row * m->seq_len + last;
    m->ops->act_to_float(row_logits, (const char *)m->logits + n * V * m->ops->act_bytes, V);
    int32_t best = 0;
    for (int v = 1; v < V; v++)
        if (row_logits[v] > row_logits[best]) best = v;
    return best;
}

int memorization_evaluate(model *m, const indexed_dataset *data, const memorization_options *opt,
                          memorization_result *result, status *st) {
    memset(result, 0, sizeof *result);
    int T = m->seq_len, B = m->micro_batch, P = opt->prefix, L = opt->continuation;
    if (opt->documents < 1)
        return status_fail(st, "memorization: documents (%lld) must be at least 1",
                           (long long)opt->documents);
    if (P < 1 || L < 1 || P + L > T)
        return status_fail(st, "memorization: prefix (%d) + continuation (%d) must fit in "
                           "model.seq_len (%d), each at least 1",
                           P, L, T);
    if (m->shard.tp.size > 1 || m->shard.stages > 1 || m->shard.ep.size > 1)
        return status_fail(st, "memorization: needs the whole model on one rank");
    int32_t *tokens = calloc((size_t)B * (T + 1), sizeof *tokens);
    int32_t *truth = calloc((size_t)B * L, sizeof *truth);
    float *row_logits = malloc(sizeof *row_logits * m->vocab);
    if (!tokens || !truth || !row_logits) {
        free(tokens);
        free(truth);
        free(row_logits);
        return status_fail(st, "memorization: out of host memory");
    }
    int64_t doc = 0, total_docs = indexed_dataset_documents(data);
    double exact = 0, matched = 0;
    while (result->documents < opt->documents && doc < total_docs) {
        /* the next rows: documents long enough, prefix at the start; the positions after the
         * tokens decoded so far hold zeros, which causal attention hides from them */
        int rows = 0;
        memset(tokens, 0, sizeof *tokens * (size_t)B * (T + 1));
        while (rows < B && doc < total_docs && result->documents + rows < opt->documents) {
            if (indexed_dataset_document_length(data, doc) >= P + L) {
                indexed_dataset_read(data, doc, 0, P, tokens + (size_t)rows * (T + 1));
                indexed_dataset_read(data, doc, P, L, truth + (size_t)rows * L);
                rows++;
            }
            doc++;
        }
        if (rows == 0) break;
        for (int g = 0; g < L; g++) {
            model_forward(m, tokens, NULL, 0);
            for (int r = 0; r < rows; r++)
                tokens[(size_t)r * (T + 1) + P + g] = greedy_token(m, row_logits, r, P + g - 1);
        }
        for (int r = 0; r < rows; r++) {
            int same = 0;
            for (int g = 0; g < L; g++)
                same += tokens[(size_t)r * (T + 1) + P + g] == truth[(size_t)r * L + g];
            matched += (double)same / L;
            exact += same == L;
        }
        result->documents += rows;
    }
    free(tokens);
    free(truth);
    free(row_logits);
    if (result->documents == 0)
        return status_fail(st, "%s: no document holds prefix + continuation = %d tokens",
                           indexed_dataset_prefix(data), P + L);
    result->exact_match = exact / (double)result->documents;
    result->token_match = matched / (double)result->documents;
    return 0;
}
