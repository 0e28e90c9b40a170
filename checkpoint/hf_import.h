/* `cairn import HF_DIR --output CHECKPOINT.h5`: a Hugging Face model directory as a weights-only
 * cairn checkpoint, to continue pre-training from (docs/hf-interop.md).
 *
 * Contract: reads HF_DIR/config.json (hf_config.h: the model section; every other section keeps
 * its default, data.tokenizer is left empty and data.eod_id is eos_token_id), and the weights
 * from HF_DIR/model.safetensors.index.json's files or HF_DIR/model.safetensors (F32, BF16 or
 * F16, converted to fp32). Every tensor the class has must be present with its shape, and every
 * tensor present must be one of them (buffers transformers does not load, such as
 * rotary_emb.inv_freq, are skipped; a tied lm_head.weight must equal the embedding). Writes
 * root attributes format, version, step = 0, tokens = 0, config (resolved YAML) and the
 * /model tensors only: no /optim, so training starts at step 0 from these weights. The file is
 * written under a temporary name and committed (checkpoint_commit) only when complete. Errors
 * are one line naming the file and the field or tensor. */
#ifndef CAIRN_HF_IMPORT_H
#define CAIRN_HF_IMPORT_H

#include "common/status.h"

typedef struct hf_import_summary {
    const char *architecture;
    int tensors, files;
    long long parameters;
} hf_import_summary;

int hf_import(const char *hf_dir, const char *output, hf_import_summary *summary, status *st);

#endif
