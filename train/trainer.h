/* The training loop's pieces: set up a run (model, optimizer, data, outputs, and the
 * checkpoint to resume from), take one optimizer step over a global batch (gradient
 * accumulation over its micro-batches), evaluate on the validation windows, write metrics, save
 * checkpoints, and decide whether to stop early.
 *
 * Contract: `trainer_step` is deterministic given the config (same config and
 * seed → bit-identical losses on the CPU backend), and a run resumed from a checkpoint continues
 * bit-identically to the uninterrupted run (same layout, CPU backend). The reported loss is the
 * mean cross-entropy over every counted token of the global batch. On resume, metrics.jsonl
 * keeps the lines up to the checkpoint's step and the new ones are appended. */
#ifndef CAIRN_TRAINER_H
#define CAIRN_TRAINER_H

#include <stdint.h>
#include <stdio.h>

#include "checkpoint/checkpoint.h"
#include "data/loader.h"
#include "parallel/topology.h"
#include "parallel/zero.h"
#include "train/config.h"
#include "train/gradient_sync.h"
#include "train/model.h"
#include "train/optimizer.h"
#include "train/shard_comm.h"
#include "train/step_schedule.h"

/* Several ranks (MPI already initialised by the caller, see parallel/launch.h): each holds the
 * model shard of its place in the grid (parallel/topology.h), reads its data-parallel rank's
 * micro-batches, runs the 1F1B schedule over its stage, and the gradients are summed over the
 * layout (train/gradient_sync.h) before the optimizer step (ZeRO-1 with parallel.zero: 1).
 * Losses, norms and metrics are global; only world rank 0 (`reporter`) writes the outputs;
 * checkpoints hold global tensors that every rank writes its part of. */
typedef struct trainer {
    config cfg;
    const ops *ops;
    parallel_topology topology;
    int has_topology;
    shard_comm shard_comm;
    model model;
    optimizer optimizer;  /* without ZeRO-1 */
    zero_optimizer zero;  /* with ZeRO-1: this rank's shard of the optimizer */
    int use_zero;
    step_schedule schedule;
    gradient_sync sync;
    uint8_t *writes;      /* [param_count]: this rank writes the tensor in checkpoints */
    checkpoint_ranks ranks;
    data_loader *loader;
    window_reader *valid;       /* data.valid: windows in file order */
    data_loader *valid_split;   /* without data.valid: the validation share of data.split */
    int has_validation;
    batch *batch, *eval_batch;
    float *weights;       /* [rows of this rank][seq_len] loss weight of each target */
    int micro_steps;      /* micro-batches per global batch on this rank */
    int world_size, world_rank, dp_size;
    int reporter;         /* world rank 0: prints, writes config.yaml, run.json, metrics */
    int64_t tokens;       /* cumulative tokens trained on */
    FILE *metrics;
    int64_t step;         /* optimizer steps done: the next step is step + 1 */
    int64_t start_step;   /* the step this process started from (0, or the checkpoint's) */
    char *config_yaml;    /* the resolved config, saved in every checkpoint */
} trainer;

/* Receives one line about the checkpoint resumed from (or skipped) for the user. */
typedef void (*trainer_note)(void *context, const char *message);

typedef struct trainer_step_result {
    int64_t step, tokens, loss_tokens;
    double loss, aux_loss, z_loss, lr, grad_norm, seconds;
    double comm_bytes;  /* bytes this rank moved in the step's collectives (all axes) */
    int64_t peak_memory; /* the backend's peak_memory so far on the rank that holds the most */
} trainer_step_result;

/* Resumes as checkpoint.resume says: auto (the newest usable checkpoint of checkpoint.dir, if
 * any), none, or a checkpoint path (which must load). */
int trainer_open(trainer *t, const config *c, const ops *o, const char *device_description,
                 const char *command_line, const char *tokenizer_checksum, trainer_note note,
                 void *note_context, status *st);
void trainer_close(trainer *t);
int trainer_step(trainer *t, trainer_step_result *result, status *st);
/* Mean loss over the first data.eval_samples validation windows (data.valid), or samples of
 * data.split's validation share in Megatron's order. */
int trainer_evaluate(trainer *t, double *loss, int64_t *tokens, status *st);
/* Mean loss over the first `samples` windows of r (all when fewer), micro-batch by micro-batch
 * in b (b->sequences = the model's micro_batch); NAN when no token counted. Fails on a token
 * outside the vocabulary. `cairn eval` and training's validation share it, so they agree. */
int trainer_evaluate_windows(model *m, const window_reader *r, batch *b, int64_t samples,
                             double *loss, int64_t *tokens, status *st);
/* Saves the state after step t->step into checkpoint.dir (atomic, with retention). */
int trainer_save_checkpoint(trainer *t, char *path, size_t path_size, status *st);
/* Whether to stop before the next step (a stop signal arrived): the one place this is decided,
 * so that with several ranks it becomes an agreement (any rank asked → all stop at the same
 * step). Returns the signal, or 0. */
int trainer_stop_requested(trainer *t);
/* Model FLOPs utilisation of the whole job at tok_per_s tokens/s of the global batch: model
 * FLOPs (model_flops_per_token) over the peak of every rank's device; NAN when the device's
 * peak is unknown (the CPU). */
double trainer_mfu(const trainer *t, double tok_per_s);
/* val_loss: NAN when this step was not evaluated */
void trainer_write_metrics(trainer *t, const trainer_step_result *r, double elapsed,
                           double val_loss);

#endif
