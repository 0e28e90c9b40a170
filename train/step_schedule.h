/* One global batch's forward and backward passes on this rank: the pipeline schedule
 * (parallel/pipeline.h) executed over the model's stage, with activations and their gradients
 * crossing stage boundaries on the pipeline communicator.
 *
 * Contract: `step_schedule_run` takes this data-parallel rank's rows of the global batch
 * (micro_steps micro-batches of micro_batch sequences: tokens [rows][seq_len+1], loss weights
 * and mask [rows][seq_len]), accumulates the stage's weight gradients (+=; the caller zeroes
 * them, and the router-loss sums, with model_zero_grads) and returns Σ loss over masked targets
 * (on the last stage, 0 elsewhere) and the MoE auxiliary losses of the stage's layers (read from
 * the device once, at the end). Messages follow the schedule's plan (parallel/pipeline.h): a
 * send and the next pass's receive from the same neighbour go as one exchange, whose receive is
 * waited for at once; other sends complete in the background and are waited for before their
 * buffer is written again. So two neighbours never wait on each other's sends, on a backend
 * that runs messages in order (NCCL) or once messages outgrow MPI's eager protocol. With one
 * stage it is exactly forward, backward, forward, ... on slot 0: the single-rank trainer.
 * `step_schedule_forward` runs the forward pass only (evaluation) for one micro-batch. */
#ifndef CAIRN_STEP_SCHEDULE_H
#define CAIRN_STEP_SCHEDULE_H

#include <stdint.h>

#include "common/status.h"
#include "parallel/comm.h"
#include "parallel/pipeline.h"
#include "train/model.h"

typedef struct step_schedule {
    model *model;
    comm *pp;               /* NULL or size 1: one stage */
    comm_dtype act;
    int micro_steps, slots;
    pipeline_action *actions;
    comm_request *output_sends; /* [slots] */
    comm_request grad_send;
} step_schedule;

typedef struct step_losses {
    double loss_sum, aux_loss, z_loss;
} step_losses;

int step_schedule_init(step_schedule *s, model *m, comm *pp, int micro_steps, status *st);
void step_schedule_release(step_schedule *s);
int step_schedule_run(step_schedule *s, const int32_t *tokens, const float *weights,
                      const uint8_t *mask, double moe_scale, step_losses *losses, status *st);
/* Forward only, one micro-batch; on the last stage the per-token losses are in
 * model->host_losses afterwards. */
int step_schedule_forward(step_schedule *s, const int32_t *tokens, status *st);

#endif
