/* checkpoint_logits CHECKPOINT SEQUENCE...: the fp32 CPU model's logits for token sequences, to
 * compare a checkpoint with another implementation (tests/python/test_hf_interop.py).
 *
 * The model is the checkpoint's `config` attribute (checkpoint_read_config) with micro_batch 1,
 * loaded through checkpoint_load. Each SEQUENCE is comma-separated token ids, at most model.seq_len
 * of them; it is padded to seq_len with token 0 (attention is causal, so padding after the sequence
 * changes nothing before it) and run without an EOD id, so positions count from the start as in
 * Hugging Face models. Output: per sequence, one line per position with the vocab logits
 * (%.9g, exact for fp32). Exit 1 with one line on stderr on any error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/checkpoint.h"
#include "kernels/ops.h"
#include "train/model.h"

/* "1,2,3" into tokens (padded with 0 to seq_len + 1); returns the count or -1. */
static int parse_sequence(const char *text, int32_t *tokens, int seq_len, int vocab) {
    memset(tokens, 0, sizeof *tokens * (size_t)(seq_len + 1));
    int n = 0;
    for (const char *p = text; *p;) {
        char *end;
        long id = strtol(p, &end, 10);
        if (end == p || id < 0 || id >= vocab || n == seq_len) return -1;
        tokens[n++] = (int32_t)id;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

static int print_logits(model *m, char **sequences, int count, status *st) {
    int T = m->seq_len, V = m->cfg.vocab;
    int32_t *tokens = malloc(sizeof *tokens * (size_t)(T + 1));
    float *logits = malloc(sizeof *logits * (size_t)T * V);
    int result = tokens && logits ? 0 : status_fail(st, "out of memory");
    for (int s = 0; result == 0 && s < count; s++) {
        int n = parse_sequence(sequences[s], tokens, T, V);
        if (n < 0) {
            result = status_fail(st, "sequence %d: expected at most %d comma-separated ids < %d",
                                 s + 1, T, V);
            break;
        }
        model_forward(m, tokens, NULL, 1.0);
        m->ops->act_to_float(logits, m->logits, (size_t)T * V);
        for (int t = 0; t < n; t++)
            for (int v = 0; v < V; v++)
                printf("%.9g%c", logits[(size_t)t * V + v], v + 1 < V ? ' ' : '\n');
    }
    free(tokens);
    free(logits);
    return result;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: checkpoint_logits CHECKPOINT SEQUENCE...\n");
        return 2;
    }
    status st;
    config c;
    model m;
    if (checkpoint_read_config(argv[1], &c, &st) != 0) {
        fprintf(stderr, "checkpoint_logits: %s\n", st.message);
        return 1;
    }
    c.train.micro_batch = 1;
    if (model_create(&m, ops_cpu(), &c, -1, &st) != 0) {
        fprintf(stderr, "checkpoint_logits: %s\n", st.message);
        return 1;
    }
    checkpoint_state state = {.model = &m};
    checkpoint_contents contents;
    int result = checkpoint_load(argv[1], &state, &contents, &st) != 0 ? -1 : 0;
    if (result == 0) result = print_logits(&m, argv + 2, argc - 2, &st);
    if (result != 0) fprintf(stderr, "checkpoint_logits: %s\n", st.message);
    model_destroy(&m);
    return result == 0 ? 0 : 1;
}
