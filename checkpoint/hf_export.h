/* `cairn export CHECKPOINT --format hf --output DIR`: a checkpoint's weights as a Hugging Face
 * model directory (docs/hf-interop.md).
 *
 * Contract: reads the run's config from the checkpoint's `config` attribute, picks the HF class
 * (hf_config.h; a model no class represents is a one-line error naming the config key), and
 * writes DIR/config.json plus the weights as safetensors: DIR/model.safetensors, or, when the
 * tensor data exceeds `shard_bytes`, DIR/model-0000i-of-0000N.safetensors with
 * DIR/model.safetensors.index.json (weight_map, metadata.total_size), split in the model's
 * declaration order as huggingface_hub does. Every /model tensor of the checkpoint must have a
 * place in the class. Files are written under temporary names and renamed only when all are
 * complete; model*.safetensors files of an earlier export that the new one does not have are
 * removed then, so DIR never mixes two exports. */
#ifndef CAIRN_HF_EXPORT_H
#define CAIRN_HF_EXPORT_H

#include <stdint.h>

#include "common/status.h"

#define HF_DEFAULT_SHARD_BYTES 5000000000ULL /* "5GB", as transformers' save_pretrained */

typedef struct hf_export_options {
    int bf16;             /* 1: BF16 tensors (what HF models ship), 0: F32 (exact) */
    uint64_t shard_bytes; /* most tensor bytes per file (a larger tensor gets a file alone) */
} hf_export_options;

typedef struct hf_export_summary {
    const char *architecture;
    int tensors, files;
    uint64_t bytes;
} hf_export_summary;

int hf_export(const char *checkpoint_path, const char *dir, const hf_export_options *options,
              hf_export_summary *summary, status *st);

#endif
