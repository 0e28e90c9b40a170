/* The tensors of a Hugging Face class and how each is made from cairn's parameters.
 *
 * Contract: `hf_tensor_map` lists, in the order the HF model declares them, every tensor of the
 * class's safetensors files for the model `m`: its HF name and shape, and the cairn parameters
 * (concatenated along their first dimension) it is made of, through one transform whose inverse
 * `hf_to_cairn` applies on import. Every cairn parameter of `m` appears in exactly one entry.
 *   HF_ROPE_ROWS: cairn rotates interleaved pairs (2i, 2i+1) of each head, HF's rotate_half the
 *     halves (i, i + head_dim/2), so HF row j of a head is cairn row 2j (j < head_dim/2) or
 *     2(j - head_dim/2) + 1: transformers' convert_llama_weights_to_hf permutation, applied to
 *     q/k projections and to per-head q/k norm weights; attention scores do not change.
 *   HF_TRANSPOSE: GPT-2's Conv1D stores [in][out].
 *   HF_DOUBLE: Qwen2-MoE gates its shared expert by sigmoid(shared_expert_gate · x); cairn's is
 *     ungated, so the gate is exported as zeros (sigmoid(0) = 1/2) and down_proj doubled (exact).
 *   HF_ZEROS: an HF tensor cairn does not have (Qwen2-MoE q/k/v biases, that gate); exported as
 *     zeros, and import fails unless it is zero. */
#ifndef CAIRN_HF_NAMES_H
#define CAIRN_HF_NAMES_H

#include <stdint.h>

#include "checkpoint/hf_config.h"
#include "common/status.h"
#include "train/config.h"

typedef enum { HF_COPY, HF_ROPE_ROWS, HF_TRANSPOSE, HF_DOUBLE, HF_ZEROS } hf_transform;

#define HF_MAX_PARTS 3

typedef struct hf_tensor {
    char name[128];
    int ndim; /* HF shape */
    int64_t shape[2];
    hf_transform transform;
    int heads; /* HF_ROPE_ROWS: heads stacked in the rows */
    int parts; /* cairn tensors (0 for HF_ZEROS) */
    char cairn[HF_MAX_PARTS][96];
    int cairn_ndim; /* of every part */
    int64_t cairn_rows[HF_MAX_PARTS];
    int64_t cairn_cols; /* second dimension of every part; 1 when cairn_ndim == 1 */
} hf_tensor;

/* *out is malloc'd. */
int hf_tensor_map(const model_config *m, hf_class c, hf_tensor **out, int *count, status *st);

/* Elements of the tensor (HF and cairn sides hold the same number, except HF_ZEROS). */
int64_t hf_tensor_elements(const hf_tensor *t);

/* cairn: the parts concatenated ([Σ rows][cols]); hf: the HF tensor. */
void hf_from_cairn(const hf_tensor *t, const float *cairn, float *hf);
/* The inverse; fails (naming the tensor) when an HF_ZEROS tensor is not zero. `file` names the
 * source in that message. */
int hf_to_cairn(const hf_tensor *t, const float *hf, float *cairn, const char *file, status *st);

#endif
