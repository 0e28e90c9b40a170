/* The training loop's pieces: set up a run (model, optimizer, data, outputs),
 * take one optimizer step over a global batch (gradient accumulation over its
 * micro-batches), evaluate on the validation windows, and write metrics.
 *
 * Contract: `trainer_step` is deterministic given the config (same config and
 * seed → bit-identical losses on the CPU backend). The reported loss is the
 * mean cross-entropy over every counted token of the global batch. */
#ifndef CAIRN_TRAINER_H
#define CAIRN_TRAINER_H

#include <stdint.h>
#include <stdio.h>

#include "data/loader.h"
#include "train/config.h"
#include "train/model.h"
#include "train/optimizer.h"

typedef struct trainer {
    config cfg;
    const ops *ops;
    model model;
    optimizer optimizer;
    data_loader *loader;
    window_reader *valid;
    batch *batch, *eval_batch;
    float *weights;       /* [global_batch][seq_len] loss weight of each target */
    int micro_steps;      /* micro-batches per global batch on this rank */
    int world_size;
    int64_t tokens;       /* cumulative tokens trained on */
    double peak_flops;    /* device peak for MFU; 0 on the CPU */
    FILE *metrics;
} trainer;

typedef struct trainer_step_result {
    int64_t step, tokens, loss_tokens;
    double loss, aux_loss, z_loss, lr, grad_norm, seconds;
} trainer_step_result;

int trainer_open(trainer *t, const config *c, const ops *o, const char *device_description,
                 const char *command_line, const char *tokenizer_checksum, status *st);
void trainer_close(trainer *t);
int trainer_step(trainer *t, trainer_step_result *result, status *st);
/* Mean loss over the first data.eval_samples validation windows. */
void trainer_evaluate(trainer *t, double *loss, int64_t *tokens);
/* val_loss: NAN when this step was not evaluated */
void trainer_write_metrics(trainer *t, const trainer_step_result *r, double elapsed, double val_loss);

#endif
