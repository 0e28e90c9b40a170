/* `cairn import HF_DIR --output CHECKPOINT.h5`: exit 0 on success, 2 on bad usage, 1 when the
 * directory cannot be imported. */
#include <stdio.h>
#include <string.h>

#include "checkpoint/hf_import.h"
#include "train/cli.h"

static const char import_usage[] =
    "usage: cairn import HF_DIR --output CHECKPOINT.h5\n"
    "  HF_DIR: config.json and model.safetensors (or model.safetensors.index.json and its "
    "files)\n";

int cli_import(int argc, char **argv) {
    const char *dir = NULL, *output = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(import_usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--output") == 0 && i + 1 < argc) {
            output = argv[++i];
        } else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "cairn import: unexpected argument %s\n%s", argv[i], import_usage);
            return 2;
        } else {
            dir = argv[i];
        }
    }
    if (!dir || !output) {
        fprintf(stderr, "cairn import: missing %s\n%s", dir ? "--output CHECKPOINT.h5" : "HF_DIR",
                import_usage);
        return 2;
    }
    status st;
    hf_import_summary summary;
    if (hf_import(dir, output, &summary, &st) != 0) {
        fprintf(stderr, "cairn import: %s\n", st.message);
        return 1;
    }
    fprintf(stderr, "cairn import: %s, %d tensors from %d file%s, %lld parameters -> %s\n",
            summary.architecture, summary.tensors, summary.files, summary.files == 1 ? "" : "s",
            summary.parameters, output);
    return 0;
}
