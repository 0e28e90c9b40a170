/* Typed configuration: defaults, loading a full YAML file, --set overlays, the resolved-YAML round
 * trip, and that every class of error names the file, line and key. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/check.h"
#include "tests/unit/temp_dir.h"
#include "train/config.h"

static char fixture_path[128];

static void write_fixture(const char *text) {
    snprintf(fixture_path, sizeof fixture_path, "%s", in_dir("cfg.yaml"));
    write_text("cfg.yaml", text);
}

/* Defaults, then the YAML text as a file; returns config_load_file's result. */
static int load_text(config *c, const char *text, status *st) {
    write_fixture(text);
    config_defaults(c);
    return config_load_file(c, fixture_path, st);
}

/* The message must be exactly "<fixture>:<rest>" (rest starts after the file name). */
static void check_file_message(const status *st, const char *rest) {
    char expected[1024];
    snprintf(expected, sizeof expected, "%s%s", fixture_path, rest);
    CHECK_MSG(strcmp(st->message, expected) == 0, "got \"%s\", expected \"%s\"", st->message,
              expected);
}

/* Loads, then resolves for `world` ranks; expects the failure "<fixture>:<rest>". */
static void check_resolve_error(const char *text, int world, const char *rest) {
    config c;
    status st = {{0}};
    CHECK_MSG(load_text(&c, text, &st) == 0, "%s", st.message);
    CHECK(config_resolve(&c, world, &st) == -1);
    check_file_message(&st, rest);
}

static void check_load_error(const char *text, const char *rest) {
    config c;
    status st = {{0}};
    CHECK(load_text(&c, text, &st) == -1);
    check_file_message(&st, rest);
}

static void check_set_error(const char *assignment, const char *expected) {
    config c;
    status st = {{0}};
    config_defaults(&c);
    CHECK(config_apply_set(&c, assignment, &st) == -1);
    CHECK_MSG(strcmp(st.message, expected) == 0, "got \"%s\", expected \"%s\"", st.message,
              expected);
}

static void test_defaults(void) {
    config c;
    status st = {{0}};
    config_defaults(&c);
    CHECK_MSG(config_resolve(&c, 1, &st) == 0, "%s", st.message);
    CHECK(strcmp(c.run.name, "tiny") == 0);
    CHECK(c.run.steps == 200 && c.run.seed == 1234);
    CHECK(c.model.arch == ARCH_LLAMA && c.model.layers == 4 && c.model.d_model == 128);
    CHECK(c.model.heads == 4 && c.model.kv_heads == 2 && c.model.ffn == 384);
    CHECK(c.model.vocab == 0 && c.model.norm == NORM_RMSNORM);
    CHECK(c.model.activation == ACTIVATION_SWIGLU && c.model.tie_embeddings);
    CHECK(c.model.moe.experts == 0 && c.model.moe.ffn == 384);
    CHECK(c.optim.ademamix_warmup == 200);
    CHECK(c.optim.betas[2] == 0.9999 && c.optim.lr == 3e-3);
    CHECK(c.data.source_count == 1 && c.data.sources[0].weight == 1.0);
    CHECK(strcmp(c.data.sources[0].path, "runs/corpus/fortunes-train") == 0);
    CHECK(c.data.eod_id == -1 && c.data.mask_eod_input);
    CHECK(strcmp(c.checkpoint.dir, "runs/tiny/checkpoints") == 0);
    CHECK(strcmp(c.checkpoint.resume, "auto") == 0 && c.checkpoint.keep == 3);
    CHECK(c.checkpoint.at_end);
    CHECK(strcmp(config_arch_name(ARCH_GPT2), "gpt2") == 0);
    CHECK(strcmp(config_activation_name(ACTIVATION_XIELU), "xielu") == 0);
    CHECK(strcmp(config_device_name(DEVICE_CUDA), "cuda") == 0);
}

static const char full_yaml[] =
    "run:\n"
    "  name: exp-1.a\n"
    "  out_dir: out/exp\n"
    "  seed: 42\n"
    "  tokens: 65536\n"
    "  log_every: 5\n"
    "  eval_every: 0\n"
    "model:\n"
    "  arch: llama\n"
    "  layers: 6\n"
    "  d_model: 256\n"
    "  heads: 8\n"
    "  kv_heads: 4\n"
    "  ffn: 512\n"
    "  vocab: 1000\n"
    "  seq_len: 64\n"
    "  norm: layernorm\n"
    "  norm_eps: 1e-6\n"
    "  activation: gelu\n"
    "  qk_norm: yes\n"
    "  rope_theta: 500000\n"
    "  tie_embeddings: false\n"
    "  document_masking: no\n"
    "  init_std: 0.01\n"
    "  moe:\n"
    "    experts: 8\n"
    "    top_k: 2\n"
    "    shared_experts: 1\n"
    "    router: sigmoid\n"
    "    aux_loss_coef: 0.02\n"
    "    z_loss_coef: 0\n"
    "    capacity_factor: 1.25\n"
    "train:\n"
    "  micro_batch: 4\n"
    "  global_batch: 16\n"
    "  precision: bf16\n"
    "  grad_clip: 0.5\n"
    "  goldfish: {enabled: true, k: 4, h: 13, variant: static}\n"
    "optim:\n"
    "  name: ademamix\n"
    "  lr: 1e-3\n"
    "  min_lr: 0\n"
    "  betas: [0.8, 0.99]\n"
    "  eps: 1e-10\n"
    "  weight_decay: 0.05\n"
    "  ademamix: {alpha: 5, warmup: 100}\n"
    "  schedule:\n"
    "    kind: wsd\n"
    "    warmup: 10\n"
    "    decay: 20\n"
    "data:\n"
    "  tokenizer: \"\"\n"
    "  sources:\n"
    "    - path: a/train\n"
    "      weight: 0.7\n"
    "    - {path: \"b/train\"}\n"
    "  valid: a/valid\n"
    "  eval_samples: 8\n"
    "  eod_id: 0\n"
    "  mask_eod_input: false\n"
    "parallel: {tp: 2, pp: 1, ep: 2, zero: 0, comm: mpi}\n"
    "checkpoint:\n"
    "  dir: ckpt\n"
    "  every: 50\n"
    "  keep: 0\n"
    "  at_end: false\n"
    "  resume: none\n"
    "device: cpu\n";

static void test_full_file(void) {
    config c;
    status st = {{0}};
    CHECK_MSG(load_text(&c, full_yaml, &st) == 0, "%s", st.message);
    CHECK_MSG(config_resolve(&c, 4, &st) == 0, "%s", st.message);
    CHECK(strcmp(c.source, fixture_path) == 0);
    CHECK(strcmp(c.run.name, "exp-1.a") == 0 && strcmp(c.run.out_dir, "out/exp") == 0);
    CHECK(c.run.seed == 42 && c.run.tokens == 65536);
    CHECK(c.run.steps == 64); /* 65536 tokens / (16 sequences * 64 tokens) */
    CHECK(c.run.log_every == 5 && c.run.eval_every == 0);
    const model_config *m = &c.model;
    CHECK(m->layers == 6 && m->d_model == 256 && m->heads == 8 && m->kv_heads == 4);
    CHECK(m->ffn == 512 && m->vocab == 1000 && m->seq_len == 64);
    CHECK(m->norm == NORM_LAYERNORM && m->norm_eps == 1e-6 && m->activation == ACTIVATION_GELU);
    CHECK(m->qk_norm == 1 && m->rope_theta == 500000 && !m->tie_embeddings);
    CHECK(!m->document_masking && m->init_std == 0.01);
    CHECK(m->moe.experts == 8 && m->moe.top_k == 2 && m->moe.ffn == 512);
    CHECK(m->moe.shared_experts == 1 && m->moe.router == ROUTER_SIGMOID);
    CHECK(m->moe.aux_loss_coef == 0.02 && m->moe.z_loss_coef == 0);
    CHECK(m->moe.capacity_factor == 1.25);
    CHECK(c.train.micro_batch == 4 && c.train.global_batch == 16);
    CHECK(c.train.precision == PRECISION_BF16 && c.train.grad_clip == 0.5);
    CHECK(c.train.goldfish.enabled == 1 && c.train.goldfish.k == 4 && c.train.goldfish.h == 13);
    CHECK(c.train.goldfish.variant == GOLDFISH_STATIC);
    CHECK(c.optim.name == OPTIM_ADEMAMIX && c.optim.lr == 1e-3 && c.optim.min_lr == 0);
    CHECK(c.optim.betas[0] == 0.8 && c.optim.betas[1] == 0.99 && c.optim.betas[2] == 0.9999);
    CHECK(c.optim.eps == 1e-10 && c.optim.weight_decay == 0.05);
    CHECK(c.optim.ademamix_alpha == 5 && c.optim.ademamix_warmup == 100);
    CHECK(c.optim.schedule.kind == SCHEDULE_WSD && c.optim.schedule.warmup == 10);
    CHECK(c.optim.schedule.decay == 20);
    CHECK(c.data.tokenizer[0] == '\0' && c.data.source_count == 2);
    CHECK(strcmp(c.data.sources[0].path, "a/train") == 0 && c.data.sources[0].weight == 0.7);
    CHECK(strcmp(c.data.sources[1].path, "b/train") == 0 && c.data.sources[1].weight == 1.0);
    CHECK(strcmp(c.data.valid, "a/valid") == 0 && c.data.eval_samples == 8);
    CHECK(c.data.eod_id == 0 && !c.data.mask_eod_input);
    CHECK(c.parallel.tp == 2 && c.parallel.pp == 1 && c.parallel.ep == 2);
    CHECK(c.parallel.zero == 0 && c.parallel.comm == COMM_MPI);
    CHECK(strcmp(c.checkpoint.dir, "ckpt") == 0 && c.checkpoint.every == 50);
    CHECK(c.checkpoint.keep == 0 && strcmp(c.checkpoint.resume, "none") == 0);
    CHECK(!c.checkpoint.at_end);
    CHECK(c.device == DEVICE_CPU);
}

static void yaml_text(const config *c, char *text, size_t size) {
    status st = {{0}};
    FILE *memory = fmemopen(text, size, "w");
    CHECK(memory != NULL);
    if (!memory) return;
    CHECK_MSG(config_write_yaml(c, memory, &st) == 0, "%s", st.message);
    fclose(memory);
}

/* Resolved config → YAML file → defaults + load + resolve: every field is the same. */
static void check_round_trip(const config *original, int world) {
    char path[128];
    snprintf(path, sizeof path, "%s/resolved.yaml", temp_dir);
    status st = {{0}};
    CHECK_MSG(config_write_yaml_file(original, path, &st) == 0, "%s", st.message);
    char temporary[160];
    snprintf(temporary, sizeof temporary, "%s.tmp", path);
    CHECK(access(temporary, F_OK) != 0);
    config again;
    config_defaults(&again);
    CHECK_MSG(config_load_file(&again, path, &st) == 0, "%s", st.message);
    CHECK_MSG(config_resolve(&again, world, &st) == 0, "%s", st.message);
    CHECK(memcmp(&again.run, &original->run, sizeof again.run) == 0);
    CHECK(memcmp(&again.model, &original->model, sizeof again.model) == 0);
    CHECK(memcmp(&again.train, &original->train, sizeof again.train) == 0);
    CHECK(memcmp(&again.optim, &original->optim, sizeof again.optim) == 0);
    CHECK(memcmp(&again.data, &original->data, sizeof again.data) == 0);
    CHECK(memcmp(&again.parallel, &original->parallel, sizeof again.parallel) == 0);
    CHECK(memcmp(&again.checkpoint, &original->checkpoint, sizeof again.checkpoint) == 0);
    CHECK(again.device == original->device);
    static char first[16384], second[16384];
    yaml_text(original, first, sizeof first);
    yaml_text(&again, second, sizeof second);
    CHECK(strcmp(first, second) == 0);
    remove(path);
}

static void test_round_trip(void) {
    config c;
    status st = {{0}};
    config_defaults(&c);
    CHECK_MSG(config_resolve(&c, 1, &st) == 0, "%s", st.message);
    check_round_trip(&c, 1);

    CHECK_MSG(load_text(&c, full_yaml, &st) == 0, "%s", st.message);
    /* values that only survive with exact doubles and careful quoting */
    c.optim.lr = 0.1 + 0.2;
    c.optim.betas[2] = 1.0 - 1e-17 - 0.0001;
    c.model.init_std = 1.0 / 3.0;
    snprintf(c.run.out_dir, sizeof c.run.out_dir, "we\"ird\\dir: #x\ttab 'q'");
    snprintf(c.data.sources[1].path, sizeof c.data.sources[1].path, "- [b]: {c}");
    CHECK_MSG(config_resolve(&c, 4, &st) == 0, "%s", st.message);
    check_round_trip(&c, 4);

    /* gpt2 switches the norm and activation defaults; the written file keeps them */
    config_defaults(&c);
    CHECK(config_apply_set(&c, "model.arch=gpt2", &st) == 0);
    CHECK(config_apply_set(&c, "model.d_model=96", &st) == 0);
    CHECK(config_apply_set(&c, "model.heads=2", &st) == 0);
    CHECK(config_apply_set(&c, "model.kv_heads=1", &st) == 0);
    CHECK_MSG(config_resolve(&c, 1, &st) == 0, "%s", st.message);
    CHECK(c.model.norm == NORM_LAYERNORM && c.model.activation == ACTIVATION_GELU);
    check_round_trip(&c, 1);
}

static void test_arch_defaults(void) {
    config c;
    status st = {{0}};
    CHECK(load_text(&c, "model:\n  arch: gpt2\n  activation: swiglu\n", &st) == 0);
    CHECK_MSG(config_resolve(&c, 1, &st) == 0, "%s", st.message);
    CHECK(c.model.norm == NORM_LAYERNORM && c.model.activation == ACTIVATION_SWIGLU);
    CHECK(load_text(&c, "model:\n  arch: llama\n", &st) == 0);
    CHECK_MSG(config_resolve(&c, 1, &st) == 0, "%s", st.message);
    CHECK(c.model.norm == NORM_RMSNORM && c.model.activation == ACTIVATION_SWIGLU);
}

static void test_set(void) {
    config c;
    status st = {{0}};
    config_defaults(&c);
    CHECK_MSG(config_apply_set(&c, "model.layers=6", &st) == 0, "%s", st.message);
    CHECK(c.model.layers == 6);
    CHECK_MSG(config_apply_set(&c, "data.sources.0.weight=0.3", &st) == 0, "%s", st.message);
    CHECK(c.data.sources[0].weight == 0.3 && c.data.source_count == 1);
    CHECK_MSG(config_apply_set(&c, "data.sources.1.path=extra/train", &st) == 0, "%s",
              st.message);
    CHECK(c.data.source_count == 2 && c.data.sources[1].weight == 1.0);
    CHECK(strcmp(c.data.sources[1].path, "extra/train") == 0);
    CHECK_MSG(config_apply_set(&c, "data.sources.2={path: third, weight: 2.5}", &st) == 0, "%s",
              st.message);
    CHECK(c.data.source_count == 3 && c.data.sources[2].weight == 2.5);
    CHECK(config_apply_set(&c, "optim.betas=[0.85,0.97]", &st) == 0);
    CHECK(c.optim.betas[0] == 0.85 && c.optim.betas[1] == 0.97 && c.optim.betas[2] == 0.9999);
    CHECK(config_apply_set(&c, "optim.betas.2=0.999", &st) == 0);
    CHECK(c.optim.betas[2] == 0.999);
    CHECK(config_apply_set(&c, "optim.lr=1e-3", &st) == 0);
    CHECK(c.optim.lr == 1e-3);
    CHECK_MSG(config_apply_set(&c, "model.moe={experts: 4, top_k: 1}", &st) == 0, "%s",
              st.message);
    CHECK(c.model.moe.experts == 4 && c.model.moe.top_k == 1);
    CHECK(config_apply_set(&c, "run.name='quoted-name'", &st) == 0);
    CHECK(strcmp(c.run.name, "quoted-name") == 0);
    CHECK(config_apply_set(&c, "data.valid=", &st) == 0);
    CHECK(c.data.valid[0] == '\0');
    CHECK_MSG(config_resolve(&c, 1, &st) == 0, "%s", st.message);
    CHECK(c.model.moe.ffn == 384);

    /* a whole list replaces the previous one */
    CHECK(config_apply_set(&c, "data.sources=[{path: only}]", &st) == 0);
    CHECK(c.data.source_count == 1 && strcmp(c.data.sources[0].path, "only") == 0);

    /* run.tokens gives run.steps */
    config_defaults(&c);
    CHECK(config_apply_set(&c, "run.tokens=5000", &st) == 0);
    CHECK(config_apply_set(&c, "optim.schedule.warmup=1", &st) == 0);
    CHECK_MSG(config_resolve(&c, 1, &st) == 0, "%s", st.message);
    CHECK(c.run.steps == 3); /* ceil(5000 / (16 * 128)) */
    CHECK_MSG(config_resolve(&c, 1, &st) == 0, "%s", st.message);
    CHECK(c.run.steps == 3);
}

static void test_load_errors(void) {
    check_load_error("model:\n  layers: 2\n  lyers: 3\n",
                     ":3: model.lyers: unknown key (did you mean model.layers?)");
    check_load_error("run:\n  name: x\n\ntrain:\n  micro_batch: eight\n",
                     ":5: train.micro_batch: expected an integer, got \"eight\"");
    check_load_error("train:\n  micro_batch: 1.5\n",
                     ":2: train.micro_batch: expected an integer, got \"1.5\"");
    check_load_error("model:\n  arch: gpt3\n",
                     ":2: model.arch: expected one of llama|gpt2, got \"gpt3\"");
    check_load_error("model:\n  qk_norm: maybe\n",
                     ":2: model.qk_norm: expected true or false, got \"maybe\"");
    check_load_error("optim:\n  betas: [0.9, 0.95, 0.99, 0.9]\n",
                     ":2: optim.betas: expected a list of 2 or 3 numbers, got 4");
    check_load_error("optim:\n  betas:\n    - 0.9\n    - high\n",
                     ":4: optim.betas.1: expected a number, got \"high\"");
    check_load_error("data:\n  sources:\n    - path: a\n      wieght: 2\n",
                     ":4: data.sources.0.wieght: unknown key (a source has path and weight)");
    check_load_error("model:\n  layers: 2\n  layers: 3\n",
                     ":3: model.layers: duplicate key (first at line 2)");
    check_load_error("model: 3\n", ":1: model: expected a mapping of keys, got a scalar");
    check_load_error("model:\n  layers: [1, 2\n  heads: 3\n",
                     ":3: YAML syntax error: did not find expected ',' or ']' "
                     "(while parsing a flow sequence)");
    check_load_error("run:\n  name: a\n---\nrun:\n  name: b\n",
                     ":4: only one YAML document is allowed");

    config c;
    status st = {{0}};
    char missing[160], expected[400];
    snprintf(missing, sizeof missing, "%s/missing.yaml", temp_dir);
    config_defaults(&c);
    CHECK(config_load_file(&c, missing, &st) == -1);
    snprintf(expected, sizeof expected, "%s: cannot open: %s", missing, strerror(ENOENT));
    CHECK_MSG(strcmp(st.message, expected) == 0, "got \"%s\"", st.message);

    /* an empty file is an empty overlay */
    CHECK(load_text(&c, "# nothing\n", &st) == 0);
    CHECK(c.model.layers == 4);
}

static void test_resolve_errors(void) {
    check_resolve_error("model:\n  d_model: 64\n  kv_heads: 1\n\n\n\n  heads: 7\n", 1,
                        ":7: model.heads: must divide model.d_model (got heads=7, d_model=64)");
    check_resolve_error("model:\n  heads: 4\n  kv_heads: 3\n", 1,
                        ":3: model.kv_heads: must divide model.heads (got kv_heads=3, heads=4)");
    check_resolve_error("train:\n  micro_batch: 4\n  global_batch: 12\n", 2,
                        ":3: train.global_batch: must be divisible by train.micro_batch * dp "
                        "(got global_batch=12, micro_batch=4, dp=2)");
    check_resolve_error("model:\n  d_model: 192\n  heads: 6\nparallel:\n  tp: 4\n", 4,
                        ":3: model.heads: must be divisible by parallel.tp (got heads=6, tp=4)");
    /* heads holds its default: the line cited is where tp was set */
    check_resolve_error("parallel:\n  tp: 8\n", 8,
                        ":2: model.heads: must be divisible by parallel.tp (got heads=4, tp=8)");
    check_resolve_error("run:\n  steps: 10\n  tokens: 5000\n", 1,
                        ":2: run.steps: set run.steps or run.tokens, not both "
                        "(got steps=10, tokens=5000)");
    check_resolve_error("parallel:\n  tp: 2\n", 3,
                        ":2: parallel.tp: tp*pp (=2*1) must divide the number of ranks (3)");
    check_resolve_error("model:\n  moe:\n    experts: 4\nparallel:\n  ep: 2\n  zero: 1\n", 2,
                        ":6: parallel.zero: ZeRO-1 with expert parallelism is not supported (set "
                        "parallel.zero: 0 or parallel.ep: 1)");
    check_resolve_error("parallel:\n  bucket_elements: -1\n", 1,
                        ":2: parallel.bucket_elements: must be >= 0 (0: automatic; got -1)");
    check_resolve_error("model:\n  arch: gpt2\n  activation: swiglu\nparallel:\n  tp: 2\n", 2,
                        ":5: parallel.tp: tensor parallelism does not split gpt2's biased swiglu "
                        "MLP (use gelu, or arch llama)");
    check_resolve_error("data:\n  tokenizer: ~\n", 1,
                        ":2: model.vocab: required when data.tokenizer is not set");
    check_resolve_error("data:\n  sources:\n    - path: a\n    - path: b\n      weight: 0\n", 1,
                        ":4: data.sources.1.weight: must be > 0 (got 0)");
    check_resolve_error("model:\n  moe:\n    experts: 4\n    top_k: 5\n", 1,
                        ":4: model.moe.top_k: must be between 1 and model.moe.experts "
                        "(got top_k=5, experts=4)");
    check_resolve_error("model:\n  activation: xielu\n  moe: {experts: 4}\n", 1,
                        ":2: model.activation: xielu is not supported with MoE "
                        "(model.moe.experts=4)");
    check_resolve_error("run:\n  name: a/b\n", 1,
                        ":2: run.name: may hold only letters, digits, '-', '_' and '.' "
                        "(got \"a/b\")");
    check_resolve_error("optim:\n  betas: [0.9, 1.0]\n", 1,
                        ":2: optim.betas: beta2 must be in [0, 1) (got 1)");
    check_resolve_error("run:\n  steps: 10\n", 1,
                        ":2: optim.schedule.warmup: must be < run.steps (got warmup=20, "
                        "steps=10)");
    check_resolve_error("model:\n  d_model: 120\n  heads: 8\n  kv_heads: 4\n", 1,
                        ":3: model.heads: head dimension d_model/heads must be even for RoPE "
                        "(got 120/8 = 15)");
    /* a key that holds its default is cited with the file it was resolved for */
    check_resolve_error("run:\n  name: x\n", 3,
                        " (default): train.global_batch: must be divisible by train.micro_batch"
                        " * dp (got global_batch=16, micro_batch=8, dp=3)");
}

static void test_set_errors(void) {
    check_set_error("model.layers=x", "--set model.layers=x: expected an integer, got \"x\"");
    check_set_error("model.lyers=3",
                    "--set model.lyers=3: unknown key (did you mean model.layers?)");
    check_set_error("modle.layers=3",
                    "--set modle.layers=3: unknown key (did you mean model.layers?)");
    check_set_error("data.sources.5.path=x",
                    "--set data.sources.5.path=x: no such source (the list has 1; index 1 "
                    "appends one)");
    check_set_error("model.moe={experts: two}",
                    "--set model.moe={experts: two}: model.moe.experts: expected an integer, "
                    "got \"two\"");
    check_set_error("optim.betas=[0.9,", "--set optim.betas=[0.9,: YAML syntax error: did not "
                    "find expected node content (while parsing a flow node)");
    check_set_error("model.layers", "--set model.layers: expected key.path=value");

    config c;
    status st = {{0}};
    config_defaults(&c);
    CHECK(config_apply_set(&c, "model.d_model=66", &st) == 0);
    CHECK(config_resolve(&c, 1, &st) == -1);
    CHECK_MSG(!strcmp(st.message, "--set: model.heads: must divide model.d_model "
                                  "(got heads=4, d_model=66)"),
              "got \"%s\"", st.message);
    config_defaults(&c);
    CHECK(config_apply_set(&c, "run.name=", &st) == 0);
    CHECK(config_resolve(&c, 1, &st) == -1);
    CHECK_MSG(!strcmp(st.message, "--set: run.name: must not be empty"), "got \"%s\"",
              st.message);
    config_defaults(&c);
    CHECK(config_apply_set(&c, "optim.lr=0", &st) == 0);
    CHECK(config_resolve(&c, 1, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "optim.lr: must be > 0 (got 0)");
}

int main(void) {
    if (temp_dir_create("config") != 0) return 1;
    test_defaults();
    test_full_file();
    test_round_trip();
    test_arch_defaults();
    test_set();
    test_load_errors();
    test_resolve_errors();
    test_set_errors();
    temp_dir_remove();
    return check_summary("test_config");
}
