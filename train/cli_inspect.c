/* `cairn inspect PATH [--tokenizer TOK] [--documents N]`: a summary of a dataset.
 * Exit 0 on success, 2 on bad usage, 1 when PATH cannot be read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/checkpoint_inspect.h"
#include "data/inspect.h"
#include "train/cli.h"

static const char inspect_usage[] =
    "usage: cairn inspect PATH [--tokenizer TOK] [--documents N]\n"
    "  PATH: a Megatron dataset prefix (PREFIX.bin + PREFIX.idx) or an llm.c .bin shard;\n"
    "  with TOK, the first N documents (default 3) are printed decoded\n";

int cli_inspect(int argc, char **argv) {
    const char *path = NULL, *tokenizer_spec = NULL;
    long long sample_documents = 3;
    char *end = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(inspect_usage, stdout);
            return 0;
        }
        if (strncmp(arg, "--tokenizer=", 12) == 0) {
            tokenizer_spec = arg + 12;
        } else if (strcmp(arg, "--tokenizer") == 0 && i + 1 < argc) {
            tokenizer_spec = argv[++i];
        } else if (strcmp(arg, "--documents") == 0 && i + 1 < argc) {
            sample_documents = strtoll(argv[++i], &end, 10);
            if (*end || end == argv[i] || sample_documents < 0) {
                fprintf(stderr, "cairn inspect: --documents needs a count, not '%s'\n%s", argv[i],
                        inspect_usage);
                return 2;
            }
        } else if (arg[0] == '-' || path) {
            fprintf(stderr, "cairn inspect: unexpected argument %s\n%s", arg, inspect_usage);
            return 2;
        } else {
            path = arg;
        }
    }
    if (!path) {
        fprintf(stderr, "cairn inspect: missing PATH\n%s", inspect_usage);
        return 2;
    }
    if (checkpoint_inspect_applies(path)) return checkpoint_inspect_command(path);
    status st;
    if (inspect_dataset_sample(path, tokenizer_spec, sample_documents, &st) != 0) {
        fprintf(stderr, "cairn inspect: %s\n", st.message);
        return 1;
    }
    return 0;
}
