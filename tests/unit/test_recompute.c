/* Activation recomputation (train.recompute) against keeping every activation.
 *
 * For each tiny configuration (llama with SwiGLU, qk-norm and tied embeddings; llama with xIELU;
 * gpt2 with LayerNorm, GELU, biases and learned positions; MoE with a softmax router and a shared
 * expert; MoE with capacity 1.0, which drops tokens) two models with the same weights run the
 * same micro-batches, one with `none` and one with `full`. Asserted, bit for bit (memcmp): every
 * micro-batch's per-token losses and router losses, every gradient element after several
 * accumulated forward/backward passes, and the grads_final calls of the step's last backward
 * pass; then the same for the first stage of a two-stage pipeline with two micro-batches in
 * flight (two activation slots, the outputs and input gradients compared too). The device arena
 * must be strictly smaller with `full` (both sizes printed, also for a gpt2-124m-shaped model
 * measured without touching its memory). The config key: default, --set, YAML round trip and
 * the errors naming it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/random.h"
#include "kernels/ops.h"
#include "tests/unit/check.h"
#include "tests/unit/model_configs.h"
#include "train/config.h"
#include "train/model.h"

enum { VOCAB = TINY_VOCAB, EOD = TINY_EOD, SEQ = TINY_SEQ, BATCH = TINY_BATCH };
enum { LAYERS = 3, MICRO = 3, MAX_FINAL_CALLS = 32 };

typedef struct recompute_case {
    const char *name;
    void (*edit)(config *c);
} recompute_case;

static void edit_llama_xielu(config *c) {
    c->model.activation = ACTIVATION_XIELU;
    c->model.qk_norm = 1;
    c->model.tie_embeddings = 0;
}

static void edit_moe_capacity(config *c) {
    edit_moe_softmax(c);
    c->model.moe.capacity_factor = 1.0;
}

static const recompute_case cases[] = {
    {"llama swiglu qk_norm tied", edit_llama_swiglu},
    {"llama xielu qk_norm untied", edit_llama_xielu},
    {"gpt2 layernorm gelu positions", edit_gpt2},
    {"moe softmax shared expert", edit_moe_softmax},
    {"moe capacity 1.0 (drops)", edit_moe_capacity},
};

/* The arena ranges grads_final reported, in order. */
typedef struct final_calls {
    size_t offset[MAX_FINAL_CALLS], count[MAX_FINAL_CALLS];
    int calls;
} final_calls;

static void record_final(void *context, size_t offset, size_t count) {
    final_calls *f = context;
    if (f->calls < MAX_FINAL_CALLS) {
        f->offset[f->calls] = offset;
        f->count[f->calls] = count;
    }
    f->calls++;
}

static void make_tokens(int32_t *tokens, int micro) {
    random_state rng;
    random_seed(&rng, 23 + (uint64_t)micro);
    for (int i = 0; i < BATCH * (SEQ + 1); i++) tokens[i] = (int32_t)random_below(&rng, VOCAB);
    tokens[2] = EOD;
    tokens[(SEQ + 1) + 6] = EOD;
}

static void make_weights(float *weights) {
    for (int i = 0; i < BATCH * SEQ; i++) weights[i] = 1.0f / (BATCH * SEQ * MICRO);
}

/* pair[0] keeps every activation, pair[1] recomputes; same weights, zero gradients */
static int create_pair(const recompute_case *rc, const model_shard *shard, model pair[2]) {
    config c;
    status st = {{0}};
    CHECK_MSG(tiny_model_config(&c, LAYERS, BATCH * MICRO, rc->edit, &st) == 0, "%s: %s",
              rc->name, st.message);
    for (int r = 0; r < 2; r++) {
        c.train.recompute = r ? RECOMPUTE_FULL : RECOMPUTE_NONE;
        int created = shard ? model_create_shard(&pair[r], ops_cpu(), &c, EOD, shard, &st)
                            : model_create(&pair[r], ops_cpu(), &c, EOD, &st);
        CHECK_MSG(created == 0, "%s: %s", rc->name, st.message);
        if (created != 0) {
            if (r) model_destroy(&pair[0]);
            return -1;
        }
        model_init_weights(&pair[r], c.run.seed);
        model_zero_grads(&pair[r]);
    }
    CHECK_MSG(pair[1].device_bytes < pair[0].device_bytes, "%s: recompute takes %zu bytes, not "
              "less than %zu", rc->name, pair[1].device_bytes, pair[0].device_bytes);
    return 0;
}

static int same_bytes(const void *a, const void *b, size_t bytes) {
    return memcmp(a, b, bytes) == 0;
}

static int same_gradients(const model pair[2]) {
    size_t bytes = pair[0].padded_params * ops_cpu()->master_bytes;
    return same_bytes(pair[0].grads, pair[1].grads, bytes);
}

/* The whole model: MICRO accumulated forward/backward passes, the last one ending the step. */
static void check_whole(const recompute_case *rc) {
    model pair[2];
    if (create_pair(rc, NULL, pair) != 0) return;
    final_calls calls[2] = {{{0}, {0}, 0}, {{0}, {0}, 0}};
    for (int r = 0; r < 2; r++) {
        pair[r].shard.grads_final = record_final;
        pair[r].shard.grads_context = &calls[r];
    }
    int32_t tokens[BATCH * (SEQ + 1)];
    float weights[BATCH * SEQ];
    make_weights(weights);
    double aux[2], z[2];
    for (int micro = 0; micro < MICRO; micro++) {
        make_tokens(tokens, micro);
        for (int r = 0; r < 2; r++) {
            model_forward(&pair[r], tokens, weights, 1.0 / MICRO);
            model_take_router_losses(&pair[r], &aux[r], &z[r]);
        }
        CHECK_MSG(same_bytes(pair[0].host_losses, pair[1].host_losses,
                             sizeof(float) * BATCH * SEQ),
                  "%s: micro-batch %d: losses differ", rc->name, micro);
        CHECK_MSG(aux[0] == aux[1] && z[0] == z[1],
                  "%s: micro-batch %d: router losses %.17g, %.17g vs %.17g, %.17g", rc->name,
                  micro, aux[0], z[0], aux[1], z[1]);
        for (int r = 0; r < 2; r++) {
            pair[r].final_backward = micro == MICRO - 1;
            model_backward(&pair[r]);
            pair[r].final_backward = 0;
        }
        CHECK_MSG(same_gradients(pair), "%s: gradients differ after micro-batch %d", rc->name,
                  micro);
        /* the recomputing backward pass adds no router losses: they count once, forward */
        for (int r = 0; r < 2; r++) {
            double again_aux, again_z;
            model_take_router_losses(&pair[r], &again_aux, &again_z);
            CHECK_MSG(again_aux == 0 && again_z == 0,
                      "%s: micro-batch %d: the backward pass of %s added router losses %.3g, %.3g",
                      rc->name, micro, r ? "full" : "none", again_aux, again_z);
        }
    }
    CHECK_MSG(calls[0].calls == 2 * LAYERS && calls[1].calls == calls[0].calls,
              "%s: grads_final called %d and %d times", rc->name, calls[0].calls, calls[1].calls);
    CHECK(same_bytes(calls[0].offset, calls[1].offset, sizeof calls[0].offset));
    CHECK(same_bytes(calls[0].count, calls[1].count, sizeof calls[0].count));
    if (pair[0].is_moe)
        CHECK_MSG(aux[0] > 0 && z[0] > 0, "%s: no router losses", rc->name);
    printf("  %-32s device_bytes %8zu none, %8zu full (%.0f%%)\n", rc->name,
           pair[0].device_bytes, pair[1].device_bytes,
           100.0 * pair[1].device_bytes / pair[0].device_bytes);
    model_destroy(&pair[0]);
    model_destroy(&pair[1]);
}

/* The first of two pipeline stages with two micro-batches in flight: forward, forward, then
 * the backward passes in the same order, each from its own output gradient. */
static void check_first_stage(const recompute_case *rc) {
    model_shard shard = {{0, 1, NULL, NULL, NULL, NULL}, {0, 1, NULL, NULL, NULL}, 0, 2, 0, 0,
                         2, 0, NULL, NULL};
    model_stage_layers(LAYERS, 0, 2, &shard.first_layer, &shard.layers);
    model pair[2];
    if (create_pair(rc, &shard, pair) != 0) return;
    int N = BATCH * SEQ, d = pair[0].cfg.d_model;
    size_t bytes = sizeof(float) * N * d;
    int32_t tokens[2][BATCH * (SEQ + 1)];
    float *dout = malloc(bytes);
    for (int slot = 0; slot < 2; slot++) {
        make_tokens(tokens[slot], 10 + slot);
        for (int r = 0; r < 2; r++)
            model_stage_forward(&pair[r], slot, tokens[slot], NULL, 0.5);
        CHECK_MSG(same_bytes(model_stage_output(&pair[0], slot),
                             model_stage_output(&pair[1], slot), bytes),
                  "%s: stage output of slot %d differs", rc->name, slot);
    }
    random_state rng;
    random_seed(&rng, 5);
    for (int slot = 0; slot < 2; slot++) {
        for (int i = 0; i < N * d; i++) dout[i] = (float)(0.01 * random_normal(&rng));
        for (int r = 0; r < 2; r++) {
            ops_cpu()->float_to_act(model_stage_grad(&pair[r]), dout, (size_t)N * d);
            model_stage_backward(&pair[r], slot);
        }
        CHECK_MSG(same_bytes(model_stage_grad(&pair[0]), model_stage_grad(&pair[1]), bytes),
                  "%s: input gradient of slot %d differs", rc->name, slot);
        CHECK_MSG(same_gradients(pair), "%s: stage gradients differ after slot %d", rc->name,
                  slot);
    }
    free(dout);
    model_destroy(&pair[0]);
    model_destroy(&pair[1]);
}

/* Address space only: the measured model's buffers are never touched. */
static void *reserve(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}
static void release_nothing(void *ptr) { (void)ptr; }

/* gpt2-124m's shapes, 12 layers, d_model 768, seq_len 1024, micro_batch 4: the arena with
 * fp32 activations (the CPU backend) and with 2-byte ones (the CUDA backend's bf16). */
static void report_gpt2_124m(void) {
    config c;
    status st = {{0}};
    config_defaults(&c);
    c.data.tokenizer[0] = '\0';
    c.model.arch = ARCH_GPT2;
    c.model.norm = NORM_LAYERNORM;
    c.model.activation = ACTIVATION_GELU;
    c.model.layers = 12;
    c.model.d_model = 768;
    c.model.heads = c.model.kv_heads = 12;
    c.model.ffn = 3072;
    c.model.vocab = 50304;
    c.model.seq_len = 1024;
    c.train.micro_batch = c.train.global_batch = 4;
    CHECK_MSG(config_resolve(&c, 1, &st) == 0, "%s", st.message);
    for (int act_bytes = 4; act_bytes >= 2; act_bytes -= 2) {
        ops measuring = *ops_cpu();
        measuring.alloc = reserve;
        measuring.free = release_nothing;
        measuring.act_bytes = (size_t)act_bytes;
        measuring.compute_aliases_master = act_bytes == 4;
        size_t bytes[2] = {0, 0};
        for (int r = 0; r < 2; r++) {
            model m;
            c.train.recompute = r ? RECOMPUTE_FULL : RECOMPUTE_NONE;
            CHECK_MSG(model_create(&m, &measuring, &c, 50256, &st) == 0, "%s", st.message);
            if (!m.device_arena) continue;
            bytes[r] = m.device_bytes;
            munmap(m.device_arena, m.device_bytes);
            model_destroy(&m);
        }
        double gib = 1 << 30;
        printf("  gpt2-124m B4 T1024, %d-byte activations: device_bytes %.2f GiB none, %.2f GiB "
               "full (saves %.2f GiB)\n", act_bytes, bytes[0] / gib, bytes[1] / gib,
               (bytes[0] - bytes[1]) / gib);
        /* 11 of 12 layers' activation sets go (each layer keeps only its input), and nothing
         * else changes: exactly 11 × one layer's, from gpt2's shapes (LayerNorm, GELU, no
         * QK-norm): norm outputs, qkv, attention output, residual mid-point, the MLP's
         * pre-activation and activation (act), the norms' means and rstds and the lse (master) */
        size_t N = 4096, d = 768, ffn = 3072, a = (size_t)act_bytes, f = ops_cpu()->master_bytes;
        size_t layer = 4 * N * d * a + N * 3 * d * a + 2 * N * ffn * a + 4 * N * f +
                       (size_t)4 * 12 * 1024 * f;
        CHECK_MSG(bytes[0] - bytes[1] == 11 * layer, "saves %zu bytes, not 11 x %zu",
                  bytes[0] - bytes[1], layer);
    }
}

static void check_config_key(void) {
    config c;
    status st = {{0}};
    config_defaults(&c);
    CHECK(c.train.recompute == RECOMPUTE_NONE);
    CHECK_MSG(config_apply_set(&c, "train.recompute=full", &st) == 0, "%s", st.message);
    CHECK(c.train.recompute == RECOMPUTE_FULL);

    /* the resolved YAML names it and loads back */
    char text[16384];
    FILE *memory = fmemopen(text, sizeof text, "w");
    CHECK(memory != NULL);
    if (memory) {
        CHECK_MSG(config_write_yaml(&c, memory, &st) == 0, "%s", st.message);
        fclose(memory);
        CHECK_STR_CONTAINS(text, "recompute: full");
        config again;
        config_defaults(&again);
        CHECK_MSG(config_load_string(&again, text, "resolved.yaml", &st) == 0, "%s", st.message);
        CHECK(again.train.recompute == RECOMPUTE_FULL);
    }

    CHECK(config_apply_set(&c, "train.recompute=bogus", &st) == -1);
    CHECK_STR_CONTAINS(st.message, "train.recompute");
    CHECK_STR_CONTAINS(st.message, "none|full");
    config_defaults(&c);
    CHECK(config_load_string(&c, "train:\n  micro_batch: 4\n  recompute: selective\n", "bad.yaml",
                             &st) == -1);
    CHECK_STR_CONTAINS(st.message, "bad.yaml:3");
    CHECK_STR_CONTAINS(st.message, "train.recompute");
    CHECK(strchr(st.message, '\n') == NULL);
}

int main(void) {
    check_config_key();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check_whole(&cases[i]);
        check_first_stage(&cases[i]);
    }
    report_gpt2_124m();
    return check_summary("test_recompute");
}
