/* Tiny model variants the model-level tests share (gradient checks, shard equivalence): each
 * edits a config in place after config_defaults. */
#ifndef CAIRN_TEST_MODEL_CONFIGS_H
#define CAIRN_TEST_MODEL_CONFIGS_H

#include "train/config.h"

/* llama with SwiGLU, qk-norm, document masking and tied embeddings */
static inline void edit_llama_swiglu(config *c) {
    c->model.qk_norm = 1;
    c->model.document_masking = 1;
    c->model.tie_embeddings = 1;
}

/* gpt2: LayerNorm, GELU, biases, learned positions */
static inline void edit_gpt2(config *c) {
    c->model.arch = ARCH_GPT2;
    c->model.norm = NORM_LAYERNORM;
    c->model.activation = ACTIVATION_GELU;
    c->model.document_masking = 1;
}

/* MoE: 4 experts, softmax router, top-2, a shared expert, both auxiliary losses */
static inline void edit_moe_softmax(config *c) {
    c->model.moe.experts = 4;
    c->model.moe.top_k = 2;
    c->model.moe.shared_experts = 1;
    c->model.moe.router = ROUTER_SOFTMAX;
    c->model.moe.aux_loss_coef = 0.1;
    c->model.moe.z_loss_coef = 0.01;
}

#endif
