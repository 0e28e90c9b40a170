/* Tiny model variants the model-level tests share (gradient checks, shard equivalence): each
 * edits a config in place after config_defaults. */
#ifndef CAIRN_TEST_MODEL_CONFIGS_H
#define CAIRN_TEST_MODEL_CONFIGS_H

#include "common/status.h"
#include "train/config.h"

/* The tiny model both tests build: vocabulary 37 with EOD 5, 8 tokens, micro-batches of 2,
 * d_model 16 with 4 heads over 2 kv heads; the caller's edit, then config_resolve. */
enum { TINY_VOCAB = 37, TINY_EOD = 5, TINY_SEQ = 8, TINY_BATCH = 2 };
static inline int tiny_model_config(config *c, int layers, int global_batch,
                                    void (*edit)(config *c), status *st) {
    config_defaults(c);
    c->data.tokenizer[0] = '\0';
    c->data.eod_id = TINY_EOD;
    c->model.vocab = TINY_VOCAB;
    c->model.seq_len = TINY_SEQ;
    c->model.layers = layers;
    c->model.d_model = 16;
    c->model.heads = 4;
    c->model.kv_heads = 2;
    c->model.ffn = 24;
    c->model.init_std = 0.3;
    c->train.micro_batch = TINY_BATCH;
    c->train.global_batch = global_batch;
    edit(c);
    return config_resolve(c, 1, st);
}

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
