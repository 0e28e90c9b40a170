/* `cairn prepare --tokenizer TOK --output PREFIX [--field NAME] [--threads N] [--quiet] INPUT...`:
 * exit 0 on success, 2 on bad usage, 1 on bad input (one line on stderr). Progress goes to
 * stderr: one line refreshed in place on a terminal, else a line every few seconds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/prepare.h"
#include "train/cli.h"

static const char prepare_usage[] =
    "usage: cairn prepare --tokenizer TOK --output PREFIX [--field NAME] [--threads N] [--quiet]\n"
    "                     INPUT...\n"
    "  TOK: \"bytes\" or a tokenizer.json; INPUT: .txt, .txt.gz, .jsonl or .jsonl.gz files or\n"
    "  quoted glob patterns; --field: the JSON string field (default \"text\"); --threads:\n"
    "  tokenizing threads (default: one per CPU); --quiet: no progress or summary\n";

enum { TERMINAL_REFRESH_MS = 250, LOG_REFRESH_MS = 5000 };

typedef struct progress_line {
    int terminal; /* stderr is a terminal: refresh one line in place */
    double last_shown;
    int shown;
} progress_line;

static void describe(const prepare_summary *s, char *out, size_t size) {
    double megabytes = (double)s->input_bytes / 1e6;
    snprintf(out, size, "%lld documents, %lld tokens, %.1f MB read, %.1f MB/s",
             (long long)s->documents, (long long)s->tokens, megabytes,
             s->seconds > 0 ? megabytes / s->seconds : 0.0);
}

static void show_progress(const prepare_summary *so_far, void *context) {
    progress_line *line = context;
    double interval = (line->terminal ? TERMINAL_REFRESH_MS : LOG_REFRESH_MS) / 1000.0;
    if (so_far->seconds - line->last_shown < interval) return;
    line->last_shown = so_far->seconds;
    line->shown = 1;
    char text[256];
    describe(so_far, text, sizeof text);
    /* "\033[K" clears what a longer earlier line left on the terminal */
    fprintf(stderr, line->terminal ? "\rcairn prepare: %s\033[K" : "cairn prepare: %s\n", text);
    fflush(stderr);
}

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

static int parse_threads(const char *text, int *threads) {
    char *end;
    long value = strtol(text, &end, 10);
    if (end == text || *end != '\0' || value < 1 || value > 1024) return -1;
    *threads = (int)value;
    return 0;
}

static int run(const prepare_options *options, int quiet) {
    progress_line line = {.terminal = isatty(STDERR_FILENO)};
    prepare_options with_progress = *options;
    if (!quiet) {
        with_progress.progress = show_progress;
        with_progress.progress_context = &line;
    }
    status st;
    prepare_summary summary;
    int result = prepare_run(&with_progress, &summary, &st);
    if (line.shown && line.terminal) fputs("\r\033[K", stderr);
    if (result != 0) {
        fprintf(stderr, "cairn prepare: %s\n", st.message);
        return 1;
    }
    if (!quiet) {
        char text[256];
        describe(&summary, text, sizeof text);
        fprintf(stderr, "cairn prepare: %s from %d file%s in %.2f s -> %s.bin, %s.idx\n", text,
                summary.input_files, summary.input_files == 1 ? "" : "s", summary.seconds,
                options->output_prefix, options->output_prefix);
    }
    return 0;
}

int cli_prepare(int argc, char **argv) {
    prepare_options options = {0};
    const char *threads_text = NULL;
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    if (!inputs) {
        fprintf(stderr, "cairn prepare: out of memory\n");
        return 1;
    }
    int input_count = 0, options_done = 0, quiet = 0, exit_code = -1;
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
        } else if (strcmp(arg, "--quiet") == 0 || strcmp(arg, "-q") == 0) {
            quiet = 1;
        } else if ((found = option_value(argc, argv, &i, "--tokenizer", &options.tokenizer_spec)) ||
                   (found = option_value(argc, argv, &i, "--output", &options.output_prefix)) ||
                   (found = option_value(argc, argv, &i, "--field", &options.field)) ||
                   (found = option_value(argc, argv, &i, "--threads", &threads_text))) {
            if (found < 0) exit_code = usage_error("missing value after ", arg);
        } else {
            exit_code = usage_error("unknown option ", arg);
        }
    }
    if (exit_code < 0) {
        if (!options.tokenizer_spec)
            exit_code = usage_error("missing --tokenizer", "");
        else if (!options.output_prefix || !*options.output_prefix)
            exit_code = usage_error("missing --output", "");
        else if (!input_count)
            exit_code = usage_error("no INPUT files", "");
        else if (threads_text && parse_threads(threads_text, &options.threads) != 0)
            exit_code =
                usage_error("--threads needs a whole number from 1 to 1024, not ", threads_text);
    }
    if (exit_code < 0) {
        options.inputs = inputs;
        options.input_count = input_count;
        exit_code = run(&options, quiet);
    }
    free(inputs);
    return exit_code;
}
