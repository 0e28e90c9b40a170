/* The pipeline schedule: in which order a stage runs the forward and backward passes of the
 * micro-batches of one global batch.
 *
 * Contract: non-interleaved 1F1B (Megatron's forward_backward_pipelining_without_interleaving):
 * stage s of S first runs min(S - s - 1, M) forward passes (warm-up), then alternates one
 * forward and one backward pass until every forward pass has run, then runs the remaining
 * backward passes (cool-down). Micro-batches go forward and backward in increasing order, so at
 * most min(S - s, M) of them are in flight on stage s: the number of activation slots it needs
 * (micro-batch i uses slot i mod slots). With S = 1 this is forward, backward, forward, ... */
#ifndef CAIRN_PIPELINE_H
#define CAIRN_PIPELINE_H

typedef enum { PIPELINE_FORWARD, PIPELINE_BACKWARD } pipeline_pass;

typedef struct pipeline_action {
    pipeline_pass pass;
    int micro;  /* micro-batch index in [0, M) */
} pipeline_action;

/* Fills actions[0 .. 2M) for stage `stage` of `stages` and M micro-batches. */
void pipeline_schedule(int stage, int stages, int micro_batches, pipeline_action *actions);
/* Activation slots stage `stage` needs: min(stages - stage, micro_batches). */
int pipeline_slots(int stage, int stages, int micro_batches);

#endif
