/* `cairn eval CHECKPOINT --data PREFIX [--samples N]`: the mean loss of the model in CHECKPOINT
 * over the first N windows of seq_len+1 tokens (stride seq_len, file order) of PREFIX, with the
 * loss masking of training minus Goldfish; prints {"loss": ..., "tokens": ...}.
 *
 * `cairn eval CHECKPOINT --memorization --data PREFIX [--documents N] [--prefix P]
 * [--continuation L]`: verbatim memorization (train/memorization.h) of the first N documents of
 * PREFIX that hold at least P + L tokens; prints {"documents": ..., "exact_match": ...,
 * "token_match": ..., "prefix": P, "continuation": L}. Defaults: every document,
 * P = min(32, seq_len / 2), L = min(32, seq_len - P).
 *
 * The model comes from the checkpoint's own config. Exit 0 on success, 2 on bad usage (also a
 * prefix + continuation longer than the checkpoint's seq_len), 1 on a bad file. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/checkpoint.h"
#include "common/json.h"
#include "data/indexed_dataset.h"
#include "train/cli.h"
#include "train/device.h"
#include "train/memorization.h"
#include "train/trainer.h"

static const char eval_usage[] =
    "usage: cairn eval CHECKPOINT --data PREFIX [--samples N]\n"
    "         the loss of the first N windows of PREFIX.bin/.idx (default: all of them)\n"
    "       cairn eval CHECKPOINT --memorization --data PREFIX [--documents N] [--prefix P]\n"
    "                  [--continuation L]\n"
    "         greedy continuation of L tokens after each document's first P tokens, compared\n"
    "         with the document (default: every document, P = min(32, seq_len/2),\n"
    "         L = min(32, seq_len - P)): exact-match and per-token match rates\n";

#define DEFAULT_SPAN 32

typedef struct eval_arguments {
    const char *checkpoint, *data;
    int memorization;
    /* 0: not given */
    long long samples, documents, prefix, continuation;
} eval_arguments;

/* The options that take a positive integer (at most `max`), and whether they belong to
 * --memorization. */
static const struct {
    const char *name;
    size_t offset;
    long long max;
    int memorization;
} integer_options[] = {
    {"--samples", offsetof(eval_arguments, samples), LLONG_MAX, 0},
    {"--documents", offsetof(eval_arguments, documents), LLONG_MAX, 1},
    {"--prefix", offsetof(eval_arguments, prefix), INT32_MAX, 1},
    {"--continuation", offsetof(eval_arguments, continuation), INT32_MAX, 1},
};
#define INTEGER_OPTIONS (sizeof integer_options / sizeof integer_options[0])

/* The value of option `name` at argv[*i] ("--name VALUE" or "--name=VALUE"), advancing *i past
 * it; NULL when argv[*i] is another argument. *missing is set when the value is absent. */
static const char *option_value(int argc, char **argv, int *i, const char *name, int *missing) {
    size_t n = strlen(name);
    const char *arg = argv[*i];
    if (strncmp(arg, name, n) != 0) return NULL;
    if (arg[n] == '=') return arg + n + 1;
    if (arg[n] != '\0') return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

/* Prints "cairn eval: MESSAGE" and the usage on stderr; returns the exit status 2. */
static int usage_error(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("cairn eval: ", stderr);
    vfprintf(stderr, format, args);
    va_end(args);
    fprintf(stderr, "\n%s", eval_usage);
    return 2;
}

/* Parses the arguments; returns 0, -1 after --help, or the exit status (2). */
static int parse_arguments(int argc, char **argv, eval_arguments *a) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value;
        int missing = 0;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(eval_usage, stdout);
            return -1;
        }
        if (strcmp(arg, "--memorization") == 0) {
            a->memorization = 1;
            continue;
        }
        if ((value = option_value(argc, argv, &i, "--data", &missing))) {
            a->data = value;
            continue;
        }
        size_t k = 0;
        while (!missing && k < INTEGER_OPTIONS &&
               !(value = option_value(argc, argv, &i, integer_options[k].name, &missing)))
            k++;
        if (missing) return usage_error("%s: expected a value", arg);
        if (value) {
            char *end;
            errno = 0;
            long long number = strtoll(value, &end, 10);
            if (errno || end == value || *end || number < 1 || number > integer_options[k].max)
                return usage_error("%s %s: expected a positive integer", integer_options[k].name,
                                   value);
            *(long long *)((char *)a + integer_options[k].offset) = number;
            continue;
        }
        if (arg[0] == '-' || a->checkpoint) return usage_error("unexpected argument %s", arg);
        a->checkpoint = arg;
    }
    if (!a->checkpoint || !a->data)
        return usage_error("missing %s", a->checkpoint ? "--data PREFIX" : "CHECKPOINT");
    for (size_t k = 0; k < INTEGER_OPTIONS; k++) {
        long long given = *(long long *)((char *)a + integer_options[k].offset);
        if (given && integer_options[k].memorization != a->memorization)
            return usage_error("%s %s", integer_options[k].name,
                               a->memorization ? "counts loss windows: it does not go with "
                                                 "--memorization (use --documents)"
                                               : "needs --memorization");
    }
    return 0;
}

/* Fills in the default prefix and continuation for the checkpoint's seq_len and checks that
 * they fit; returns 0 or the exit status (2). */
static int resolve_spans(eval_arguments *a, int seq_len) {
    if (!a->prefix) a->prefix = DEFAULT_SPAN < seq_len / 2 ? DEFAULT_SPAN : seq_len / 2;
    if (!a->continuation)
        a->continuation = DEFAULT_SPAN < seq_len - a->prefix ? DEFAULT_SPAN : seq_len - a->prefix;
    if (a->prefix >= 1 && a->continuation >= 1 && a->prefix + a->continuation <= seq_len) return 0;
    fprintf(stderr,
            "cairn eval: --prefix %lld + --continuation %lld: must fit in the checkpoint's "
            "model.seq_len (%d), each at least 1\n",
            a->prefix, a->continuation, seq_len);
    return 2;
}

/* Builds the model of config c on its device and loads the checkpoint's weights into it; 0 or
 * -1 with st (the model is destroyed again on failure). */
static int load_model(const char *checkpoint, const config *c, model *m, status *st) {
    const ops *o;
    char device[256];
    if (device_select(c->device, 0, &o, device, sizeof device, st) != 0) return -1;
    if (model_create(m, o, c, c->data.eod_id, st) != 0) return -1;
    checkpoint_state state = {.model = m};
    checkpoint_contents contents;
    if (checkpoint_load(checkpoint, &state, &contents, st) != 0) {
        model_destroy(m);
        return -1;
    }
    return 0;
}

/* The mean loss over the first a->samples windows; prints the JSON line. 0 or -1 with st. */
static int evaluate_loss(model *m, const config *c, const eval_arguments *a, status *st) {
    window_reader *reader = NULL;
    batch *b = NULL;
    double loss;
    int64_t tokens;
    int rc = window_reader_open(a->data, c->model.seq_len, c->data.eod_id, c->data.mask_eod_input,
                                &reader, st);
    if (rc == 0 && !(b = batch_alloc(c->train.micro_batch, c->model.seq_len)))
        rc = status_fail(st, "out of memory");
    if (rc == 0 && trainer_evaluate_windows(m, reader, b, a->samples ? a->samples : INT64_MAX,
                                            &loss, &tokens, st) != 0)
        rc = status_prefix(st, "%s", a->data);
    batch_free(b);
    if (reader) window_reader_close(reader);
    if (rc != 0) return -1;
    fputs("{\"loss\": ", stdout);
    json_write_number(stdout, loss);
    printf(", \"tokens\": %lld}\n", (long long)tokens);
    return 0;
}

/* Memorization of the first a->documents documents; prints the JSON line. 0 or -1 with st. */
static int evaluate_memorization(model *m, const eval_arguments *a, status *st) {
    indexed_dataset *data;
    if (indexed_dataset_open(a->data, &data, st) != 0) return -1;
    memorization_options options = {.documents = a->documents ? a->documents : INT64_MAX,
                                    .prefix = (int)a->prefix,
                                    .continuation = (int)a->continuation};
    memorization_result result;
    int rc = memorization_evaluate(m, data, &options, &result, st);
    indexed_dataset_close(data);
    if (rc != 0) return -1;
    printf("{\"documents\": %lld, \"exact_match\": ", (long long)result.documents);
    json_write_number(stdout, result.exact_match);
    fputs(", \"token_match\": ", stdout);
    json_write_number(stdout, result.token_match);
    printf(", \"prefix\": %d, \"continuation\": %d}\n", options.prefix, options.continuation);
    return 0;
}

int cli_eval(int argc, char **argv) {
    eval_arguments a = {0};
    int rc = parse_arguments(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    status st = {{0}};
    config c;
    if (checkpoint_read_config(a.checkpoint, &c, &st) != 0) {
        fprintf(stderr, "cairn eval: %s\n", st.message);
        return 1;
    }
    if (a.memorization && (rc = resolve_spans(&a, c.model.seq_len)) != 0) return rc;
    model m;
    if (load_model(a.checkpoint, &c, &m, &st) != 0) {
        fprintf(stderr, "cairn eval: %s\n", st.message);
        return 1;
    }
    rc = a.memorization ? evaluate_memorization(&m, &a, &st) : evaluate_loss(&m, &c, &a, &st);
    model_destroy(&m);
    if (rc != 0) {
        fprintf(stderr, "cairn eval: %s\n", st.message);
        return 1;
    }
    return 0;
}
