/* `cairn inspect PATH [--tokenizer TOK]`: a summary of a dataset prefix.
 * Exit 0 on success, 2 on bad usage, 1 when PATH cannot be read. */
#include <stdio.h>
#include <string.h>

#include "data/inspect.h"
#include "train/cli.h"

static const char inspect_usage[] = "usage: cairn inspect PATH [--tokenizer TOK]\n"
                                    "  PATH: a dataset prefix (PREFIX.bin + PREFIX.idx)\n";

int cli_inspect(int argc, char **argv) {
    const char *path = NULL, *tokenizer_spec = NULL;
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
    status st;
    if (inspect_dataset(path, tokenizer_spec, &st) != 0) {
        fprintf(stderr, "cairn inspect: %s\n", st.message);
        return 1;
    }
    return 0;
}
