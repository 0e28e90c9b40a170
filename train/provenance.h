/* run.json: what produced a run — code version, resolved config, data files
 * with sizes and SHA-256 checksums, tokenizer checksum, world layout,
 * hardware, backend and container (runtime, image, digest, labels: train/container_info.h).
 * Written atomically (temporary name, then rename).
 *
 * A source that is one dataset (a Megatron prefix or one llm.c shard) is recorded with every
 * file's size and SHA-256. A source of many shards (a glob or a folder) is recorded with its
 * shard count and the loader's fingerprint (SHA-256 over each shard's path, sizes, times and
 * index header): reading terabytes at every start would cost more than the run's first hour. */
#ifndef CAIRN_PROVENANCE_H
#define CAIRN_PROVENANCE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "data/loader.h"
#include "train/config.h"

typedef struct provenance_info {
    const char *command_line;
    const char *tokenizer_checksum;  /* NULL when the data is pre-tokenized */
    int64_t data_tokens;
    int world_size;
    const char *comm;                /* the communicator of the backend's buffers */
    const char *backend;
    const char *device_description;
    size_t parameters;
    double flops_per_token;
    const data_loader *loader;       /* the training sources' shards; NULL: one dataset each */
} provenance_info;

int provenance_write(const char *path, const config *c, const char *config_yaml,
                     const provenance_info *info, status *st);

#endif
