/* Which Hugging Face transformers class represents a cairn model, and its config.json.
 *
 * Contract (docs/hf-interop.md): a cairn model maps to exactly one class, or to none:
 *   gpt2 arch (layernorm, tanh GELU, MHA, dense)          -> GPT2LMHeadModel
 *   llama arch, rmsnorm, swiglu, dense                    -> LlamaForCausalLM (Qwen3ForCausalLM
 *                                                            with qk_norm)
 *   ... MoE, softmax router, no shared experts            -> MixtralForCausalLM
 * (Qwen3MoeForCausalLM with qk_norm)
 *   ... MoE, softmax router, shared experts, no qk_norm   -> Qwen2MoeForCausalLM
 * `hf_class_for` fails with one line naming the model.* key that no class represents (sigmoid
 * router, xielu, layernorm with llama, ...). `hf_config_write` writes config.json;
 * `hf_config_read` reads one into a model_config (fields cairn does not store keep the values
 * already in *m) and fails with one line naming the file and the field for anything cairn
 * cannot represent exactly (rope_scaling, biases, a head_dim other than hidden/heads, ...). */
#ifndef CAIRN_HF_CONFIG_H
#define CAIRN_HF_CONFIG_H

#include "common/status.h"
#include "train/config.h"

typedef enum { HF_LLAMA, HF_QWEN3, HF_MIXTRAL, HF_QWEN2_MOE, HF_QWEN3_MOE, HF_GPT2 } hf_class;

const char *hf_class_architecture(hf_class c); /* "LlamaForCausalLM" */

int hf_class_for(const model_config *m, hf_class *out, status *st);

/* torch_dtype: "bfloat16" or "float32"; eos_token_id -1 writes null. */
int hf_config_write(const char *path, const model_config *m, hf_class c, const char *torch_dtype,
                    int eos_token_id, status *st);

/* *eos_token_id: -1 when absent or not a single id. */
int hf_config_read(const char *path, model_config *m, hf_class *c, int *eos_token_id, status *st);

#endif
