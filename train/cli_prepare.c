/* `cairn prepare --tokenizer TOK --output PREFIX [--field NAME] INPUT...`:
 * exit 0 on success, 2 on bad usage, 1 on bad input (one line on stderr). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/prepare.h"
#include "train/cli.h"

static const char prepare_usage[] =
    "usage: cairn prepare --tokenizer TOK --output PREFIX [--field NAME] INPUT...\n"
    "  TOK: \"bytes\" or a tokenizer.json; INPUT: .txt, .jsonl or .jsonl.gz\n";

/* 1 when argv[*i] is `name VALUE` or `name=VALUE` (value stored, *i advanced),
 * 0 when it is another argument, -1 when the value is missing. */
static int option_value(int argc, char **argv, int *i, const char *name, const char **value) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return 0;
    if (argv[*i][n] == '=') {
        *value = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0') return 0;
    if (*i + 1 >= argc) return -1;
    *value = argv[++*i];
    return 1;
}

static int usage_error(const char *problem, const char *argument) {
    fprintf(stderr, "cairn prepare: %s%s\n%s", problem, argument, prepare_usage);
    return 2;
}

int cli_prepare(int argc, char **argv) {
    const char *tokenizer_spec = NULL, *output = NULL, *field = NULL;
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    if (!inputs) {
        fprintf(stderr, "cairn prepare: out of memory\n");
        return 1;
    }
    int input_count = 0, options_done = 0, exit_code = -1;
    for (int i = 1; i < argc && exit_code < 0; i++) {
        const char *arg = argv[i];
        int found;
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            inputs[input_count++] = arg;
        } else if (strcmp(arg, "--") == 0) {
            options_done = 1;
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(prepare_usage, stdout);
            exit_code = 0;
        } else if ((found = option_value(argc, argv, &i, "--tokenizer", &tokenizer_spec)) ||
                   (found = option_value(argc, argv, &i, "--output", &output)) ||
                   (found = option_value(argc, argv, &i, "--field", &field))) {
            if (found < 0) exit_code = usage_error("missing value after ", arg);
        } else {
            exit_code = usage_error("unknown option ", arg);
        }
    }
    if (exit_code < 0) {
        if (!tokenizer_spec) exit_code = usage_error("missing --tokenizer", "");
        else if (!output) exit_code = usage_error("missing --output", "");
        else if (!input_count) exit_code = usage_error("no INPUT files", "");
    }
    if (exit_code < 0) {
        status st;
        prepare_summary summary;
        if (prepare_dataset(tokenizer_spec, output, field, inputs, input_count, &summary, &st) !=
            0) {
            fprintf(stderr, "cairn prepare: %s\n", st.message);
            exit_code = 1;
        } else {
            double megabytes = (double)summary.input_bytes / 1e6;
            fprintf(stderr,
                    "cairn prepare: %lld documents, %lld tokens, %lld bytes in %.2f s "
                    "(%.1f MB/s) -> %s.bin, %s.idx\n",
                    (long long)summary.documents, (long long)summary.tokens,
                    (long long)summary.input_bytes, summary.seconds,
                    summary.seconds > 0 ? megabytes / summary.seconds : 0.0, output, output);
            exit_code = 0;
        }
    }
    free(inputs);
    return exit_code;
}
