/* Typed training configuration.
 *
 * Contract: `config_defaults` fills every field with its default (the built-in
 * tiny run); `config_load_file` overlays a YAML file; `config_apply_set`
 * overlays one `--set key.path=value`; `config_resolve` fills derived values
 * (vocab from the tokenizer is done by the caller), validates everything and
 * names the offending key (and the file:line it came from) on error;
 * `config_write_yaml` writes the resolved config so that loading it again gives
 * the same struct. Unknown keys and wrong types are errors. */
#ifndef CAIRN_CONFIG_H
#define CAIRN_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "common/status.h"

#define CONFIG_MAX_SOURCES 64
#define CONFIG_STRING 1024

typedef enum { ARCH_LLAMA, ARCH_GPT2 } model_arch;
typedef enum { NORM_RMSNORM, NORM_LAYERNORM } norm_kind;
typedef enum { ACTIVATION_SWIGLU, ACTIVATION_GELU, ACTIVATION_XIELU } activation_kind;
typedef enum { ROUTER_SOFTMAX, ROUTER_SIGMOID } router_kind;
typedef enum { PRECISION_FP32, PRECISION_BF16 } precision_kind;
typedef enum { RECOMPUTE_NONE, RECOMPUTE_FULL } recompute_kind;
typedef enum { OPTIM_ADAMW, OPTIM_ADEMAMIX } optimizer_kind;
typedef enum { SCHEDULE_CONSTANT, SCHEDULE_COSINE, SCHEDULE_WSD } schedule_kind;
typedef enum { GOLDFISH_APERTUS, GOLDFISH_COEF, GOLDFISH_STATIC } goldfish_variant;
typedef enum { COMM_AUTO, COMM_MPI, COMM_NCCL } comm_kind;
typedef enum { DEVICE_AUTO, DEVICE_CPU, DEVICE_CUDA } device_kind;

typedef struct moe_config {
    int experts;             /* 0: dense model */
    int top_k;
    int ffn;                 /* expert hidden size; default: model.ffn */
    int shared_experts;      /* each of width ffn */
    router_kind router;
    double aux_loss_coef;    /* Switch load-balancing loss */
    double z_loss_coef;      /* router z-loss */
    double capacity_factor;  /* 0: dropless */
} moe_config;

typedef struct model_config {
    model_arch arch;
    int layers, d_model, heads, kv_heads, ffn, vocab, seq_len;
    norm_kind norm;
    double norm_eps;
    activation_kind activation;
    int qk_norm;             /* bool */
    double rope_theta;
    int tie_embeddings;      /* bool */
    int document_masking;    /* bool: attention and RoPE positions restart after each EOD */
    double init_std;
    moe_config moe;
} model_config;

typedef struct goldfish_config {
    int enabled;
    int k, h;
    goldfish_variant variant;
} goldfish_config;

typedef struct train_config {
    int micro_batch, global_batch;  /* sequences; global over all data-parallel ranks */
    precision_kind precision;
    double grad_clip;               /* 0: off */
    recompute_kind recompute;       /* full: layers keep only their inputs and run their forward
                                       again in the backward pass (memory for compute) */
    goldfish_config goldfish;
} train_config;

typedef struct schedule_config {
    schedule_kind kind;
    int64_t warmup;  /* steps */
    int64_t decay;   /* cosine: steps of decay after warmup (default: to the end);
                        wsd: steps of the final 1-sqrt cooldown (default: 20% of steps) */
} schedule_config;

typedef struct optim_config {
    optimizer_kind name;
    double lr, min_lr;
    double betas[3];  /* beta1, beta2, beta3 (beta3 used by AdEMAMix) */
    double eps, weight_decay;
    double ademamix_alpha;
    int64_t ademamix_warmup;  /* steps of the alpha and beta3 warmups; 0: none */
    schedule_config schedule;
} optim_config;

typedef struct data_source {
    char path[CONFIG_STRING];  /* dataset prefix (PREFIX.bin / PREFIX.idx) */
    double weight;
} data_source;

typedef struct data_config {
    char tokenizer[CONFIG_STRING];  /* "bytes", a tokenizer.json path, or "" */
    int source_count;
    data_source sources[CONFIG_MAX_SOURCES];
    char valid[CONFIG_STRING];      /* validation dataset prefix, or "" */
    char split[64];                 /* Megatron split of the documents, "969,30,1"; "": all */
    int eval_samples;               /* sequences of seq_len+1 per evaluation */
    int eod_id;                     /* -1: none; default from the tokenizer */
    int mask_eod_input;             /* bool: no loss where the input token is EOD */
} data_config;

typedef struct run_config {
    char name[256];
    char out_dir[CONFIG_STRING];
    uint64_t seed;
    int64_t steps;   /* 0 with tokens > 0: derived from tokens */
    int64_t tokens;
    int log_every, eval_every;
} run_config;

typedef struct parallel_config {
    int tp, pp, ep, zero;
    comm_kind comm;
    double timeout_s;  /* a collective waiting longer aborts the job (a peer died or hangs) */
    int64_t bucket_elements;  /* data-parallel gradient bucket; 0: automatic (grows with dp) */
} parallel_config;

typedef struct checkpoint_config {
    char dir[CONFIG_STRING];     /* default: <out_dir>/checkpoints */
    int64_t every;               /* 0: no periodic saves */
    int keep;                    /* 0: keep all */
    int at_end;                  /* save when the run reaches run.steps */
    char resume[CONFIG_STRING];  /* "auto", "none" or a path */
} checkpoint_config;

/* Where each key's value came from, so that validation can cite it: 0 the built-in default, -1 a
 * --set, otherwise the line in `source`. `line` is indexed by config.c's key table. */
#define CONFIG_KEYS 80
typedef struct config_origin {
    int line[CONFIG_KEYS];
    int source_line[CONFIG_MAX_SOURCES];  /* data.sources entries */
} config_origin;

typedef struct config {
    run_config run;
    model_config model;
    train_config train;
    optim_config optim;
    data_config data;
    parallel_config parallel;
    checkpoint_config checkpoint;
    device_kind device;
    char source[CONFIG_STRING];  /* the YAML file it came from, "" for the built-in default */
    config_origin origin;
} config;

void config_defaults(config *c);
int config_load_file(config *c, const char *path, status *st);
/* Overlays YAML text (a checkpoint's resolved config); `name` stands for the file in messages. */
int config_load_string(config *c, const char *text, const char *name, status *st);
/* `assignment` is "key.path=value", list indices allowed (data.sources.0.weight=0.3) */
int config_apply_set(config *c, const char *assignment, status *st);
/* world_size: number of ranks, for the parallel checks (dp = world / (tp*pp)) */
int config_resolve(config *c, int world_size, status *st);
int config_write_yaml(const config *c, FILE *out, status *st);
/* Convenience: writes to a file path atomically (temporary name, then rename). */
int config_write_yaml_file(const config *c, const char *path, status *st);

/* Names for enums, as they appear in YAML. */
const char *config_arch_name(model_arch a);
const char *config_activation_name(activation_kind a);
const char *config_device_name(device_kind d);

#endif
