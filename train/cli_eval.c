/* `cairn eval CHECKPOINT --data PREFIX [--samples N]`: the mean loss of the model in CHECKPOINT
 * over the first N windows of seq_len+1 tokens (stride seq_len, file order) of PREFIX, with the
 * loss masking of training minus Goldfish; prints {"loss": ..., "tokens": ...}. The model comes
 * from the checkpoint's own config. Exit 0 on success, 2 on bad usage, 1 on a bad file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/checkpoint.h"
#include "common/json.h"
#include "train/cli.h"
#include "train/device.h"
#include "train/trainer.h"

static const char eval_usage[] =
    "usage: cairn eval CHECKPOINT --data PREFIX [--samples N]\n"
    "  the loss of the first N windows of PREFIX.bin/.idx (default: all of them)\n";

/* Parses the arguments; returns 0 or the exit status (2). */
static int parse_arguments(int argc, char **argv, const char **checkpoint, const char **prefix,
                           long long *samples) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = NULL;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(eval_usage, stdout);
            return -1;
        }
        if ((strcmp(arg, "--data") == 0 || strcmp(arg, "--samples") == 0) && i + 1 < argc)
            value = argv[++i];
        else if (strncmp(arg, "--data=", 7) == 0 || strncmp(arg, "--samples=", 10) == 0)
            value = strchr(arg, '=') + 1;
        if (value && strncmp(arg, "--data", 6) == 0) {
            *prefix = value;
        } else if (value) {
            char *end;
            errno = 0;
            *samples = strtoll(value, &end, 10);
            if (errno || end == value || *end || *samples < 1) {
                fprintf(stderr, "cairn eval: --samples %s: expected a positive integer\n%s", value,
                        eval_usage);
                return 2;
            }
        } else if (arg[0] == '-' || *checkpoint) {
            fprintf(stderr, "cairn eval: unexpected argument %s\n%s", arg, eval_usage);
            return 2;
        } else {
            *checkpoint = arg;
        }
    }
    if (!*checkpoint || !*prefix) {
        fprintf(stderr, "cairn eval: missing %s\n%s", *checkpoint ? "--data PREFIX" : "CHECKPOINT",
                eval_usage);
        return 2;
    }
    return 0;
}

/* Builds the model, loads the weights and evaluates; 0 or -1 with st. */
static int evaluate(const char *checkpoint, const char *prefix, long long samples, double *loss,
                    int64_t *tokens, status *st) {
    config c;
    if (checkpoint_read_config(checkpoint, &c, st) != 0) return -1;
    const ops *o;
    char device[256];
    double peak_flops;
    if (device_select(c.device, &o, device, sizeof device, &peak_flops, st) != 0) return -1;
    model m;
    window_reader *reader = NULL;
    batch *b = NULL;
    if (model_create(&m, o, &c, c.data.eod_id, st) != 0) return -1;
    checkpoint_state state = {.model = &m};
    checkpoint_contents contents;
    int rc = checkpoint_load(checkpoint, &state, &contents, st) != 0 ? -1 : 0;
    if (rc == 0)
        rc = window_reader_open(prefix, c.model.seq_len, c.data.eod_id, c.data.mask_eod_input,
                                &reader, st);
    if (rc == 0 && !(b = batch_alloc(c.train.micro_batch, c.model.seq_len)))
        rc = status_fail(st, "out of memory");
    if (rc == 0 && trainer_evaluate_windows(&m, reader, b, samples, loss, tokens, st) != 0)
        rc = status_prefix(st, "%s", prefix);
    batch_free(b);
    if (reader) window_reader_close(reader);
    model_destroy(&m);
    return rc;
}

int cli_eval(int argc, char **argv) {
    const char *checkpoint = NULL, *prefix = NULL;
    long long samples = INT64_MAX;
    int rc = parse_arguments(argc, argv, &checkpoint, &prefix, &samples);
    if (rc) return rc < 0 ? 0 : rc;
    status st = {{0}};
    double loss;
    int64_t tokens;
    if (evaluate(checkpoint, prefix, samples, &loss, &tokens, &st) != 0) {
        fprintf(stderr, "cairn eval: %s\n", st.message);
        return 1;
    }
    fputs("{\"loss\": ", stdout);
    json_write_number(stdout, loss);
    printf(", \"tokens\": %lld}\n", (long long)tokens);
    return 0;
}
