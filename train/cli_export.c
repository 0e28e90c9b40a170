/* `cairn export CHECKPOINT --format hf --output DIR [--dtype bf16|fp32] [--shard-size SIZE]`:
 * exit 0 on success, 2 on bad usage, 1 when the checkpoint cannot be exported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "checkpoint/hf_export.h"
#include "train/cli.h"

static const char export_usage[] =
    "usage: cairn export CHECKPOINT --format hf --output DIR [--dtype bf16|fp32] "
    "[--shard-size SIZE]\n"
    "  --dtype       tensor type of the safetensors files (default bf16; fp32 is exact)\n"
    "  --shard-size  most bytes per file, e.g. 5GB (default), 500MB, 2GiB or a byte count\n";

/* "5GB" (10^9), "2GiB" (2^30), "500MB", "100KB", "123" bytes; 0 when malformed. */
static unsigned long long parse_size(const char *text) {
    static const struct {
        const char *suffix;
        double factor;
    } units[] = {{"", 1},      {"B", 1},      {"KB", 1e3},        {"MB", 1e6},          {"GB", 1e9},
                 {"TB", 1e12}, {"KiB", 1024}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
    char *end;
    double value = strtod(text, &end);
    if (end == text || !(value > 0)) return 0;
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (strcasecmp(end, units[i].suffix) == 0) {
            double bytes = value * units[i].factor;
            return bytes >= 1 && bytes < 1e19 ? (unsigned long long)bytes : 0;
        }
    return 0;
}

static int usage_error(const char *problem, const char *argument) {
    fprintf(stderr, "cairn export: %s%s\n%s", problem, argument, export_usage);
    return 2;
}

int cli_export(int argc, char **argv) {
    const char *checkpoint = NULL, *output = NULL, *format = NULL, *dtype = "bf16";
    const char *shard_size = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char **slot = strcmp(arg, "--format") == 0       ? &format
                            : strcmp(arg, "--output") == 0     ? &output
                            : strcmp(arg, "--dtype") == 0      ? &dtype
                            : strcmp(arg, "--shard-size") == 0 ? &shard_size
                                                               : NULL;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(export_usage, stdout);
            return 0;
        }
        if (slot) {
            if (i + 1 == argc) return usage_error("missing value after ", arg);
            *slot = argv[++i];
        } else if (arg[0] == '-' || checkpoint) {
            return usage_error("unexpected argument ", arg);
        } else {
            checkpoint = arg;
        }
    }
    if (!checkpoint) return usage_error("missing CHECKPOINT", "");
    if (!output) return usage_error("missing --output DIR", "");
    if (!format || strcmp(format, "hf") != 0)
        return usage_error("--format must be hf, got ", format ? format : "nothing");
    hf_export_options options = {strcmp(dtype, "bf16") == 0, HF_DEFAULT_SHARD_BYTES};
    if (!options.bf16 && strcmp(dtype, "fp32") != 0)
        return usage_error("--dtype must be bf16 or fp32, got ", dtype);
    if (shard_size && !(options.shard_bytes = parse_size(shard_size)))
        return usage_error("--shard-size must be a size such as 5GB or 100MB, got ", shard_size);

    status st;
    hf_export_summary summary;
    if (hf_export(checkpoint, output, &options, &summary, &st) != 0) {
        fprintf(stderr, "cairn export: %s\n", st.message);
        return 1;
    }
    fprintf(stderr, "cairn export: %s, %d tensors, %.1f MB of %s in %d file%s -> %s\n",
            summary.architecture, summary.tensors, (double)summary.bytes / 1e6, dtype,
            summary.files, summary.files == 1 ? "" : "s", output);
    return 0;
}
