/* The `cairn` command: dispatches to the subcommands of train/cli.h. */
#include <stdio.h>
#include <string.h>

#include "train/cli.h"
#include "version.h"

static const char usage[] =
    "usage: cairn <command> [arguments]\n"
    "  train [CONFIG.yaml] [--set key.path=value ...]   train (no CONFIG: the built-in tiny run)\n"
    "  prepare --tokenizer TOK --output PREFIX INPUT... tokenize text/jsonl into PREFIX.bin/.idx\n"
    "  inspect PATH                                     summarize a dataset prefix\n"
    "  export CHECKPOINT --format hf --output DIR       a checkpoint as a Hugging Face model\n"
    "  import HF_DIR --output CHECKPOINT.h5             a Hugging Face model as a checkpoint\n"
    "  eval CHECKPOINT --data PREFIX [--samples N]      loss of a checkpoint on a dataset (JSON)\n"
    "  eval CHECKPOINT --memorization --data PREFIX     verbatim recall of its documents (JSON)\n"
    "  --version                                        version, commit and compiled backends\n";

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *command = argv[1];
    if (strcmp(command, "--version") == 0 || strcmp(command, "version") == 0) {
        printf("cairn %s (commit %s)\nbackends: %s\n", CAIRN_VERSION, CAIRN_GIT_COMMIT,
               CAIRN_BACKENDS);
        return 0;
    }
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 ||
        strcmp(command, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(command, "train") == 0) return cli_train(argc - 1, argv + 1);
    if (strcmp(command, "prepare") == 0) return cli_prepare(argc - 1, argv + 1);
    if (strcmp(command, "inspect") == 0) return cli_inspect(argc - 1, argv + 1);
    if (strcmp(command, "eval") == 0) return cli_eval(argc - 1, argv + 1);
    if (strcmp(command, "export") == 0) return cli_export(argc - 1, argv + 1);
    if (strcmp(command, "import") == 0) return cli_import(argc - 1, argv + 1);
    fprintf(stderr, "cairn: unknown command '%s'\n%s", command, usage);
    return 2;
}
