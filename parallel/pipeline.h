/* The pipeline schedule: in which order a stage runs the forward and backward passes of the
 * micro-batches of one global batch, and which messages go with each pass.
 *
 * Contract: non-interleaved 1F1B (Megatron's forward_backward_pipelining_without_interleaving):
 * stage s of S first runs min(S - s - 1, M) forward passes (warm-up), then alternates one
 * forward and one backward pass until every forward pass has run, then runs the remaining
 * backward passes (cool-down). Micro-batches go forward and backward in increasing order, so at
 * most min(S - s, M) of them are in flight on stage s: the number of activation slots it needs
 * (micro-batch i uses slot i mod slots). With S = 1 this is forward, backward, forward, ...
 *
 * Messages: a forward pass receives its input from stage s - 1 and sends its output to s + 1;
 * a backward pass receives its output's gradient from s + 1 and sends its input's gradient to
 * s - 1 (none beyond the first and last stage). Where a pass's send goes to the neighbour the
 * next pass receives from (forward then backward, backward then forward: 1F1B's steady state,
 * where that neighbour sends to this stage at the same time), the two travel as one
 * send-receive exchange (comm_send_recv_start), as Megatron's send_forward_recv_backward and
 * send_backward_recv_forward do. A stage that runs its messages strictly in this order, each
 * one finished before the next starts (NCCL: one stream), cannot deadlock. */
#ifndef CAIRN_PIPELINE_H
#define CAIRN_PIPELINE_H

typedef enum { PIPELINE_FORWARD, PIPELINE_BACKWARD } pipeline_pass;

typedef struct pipeline_action {
    pipeline_pass pass;
    int micro;        /* micro-batch index in [0, M) */
    int receive_from; /* stage the input comes from before the pass; -1: none, or it arrived
                         with the previous action's exchange */
    int send_to;      /* stage the output goes to after the pass; -1: none */
    int exchange;     /* 1: the send travels with the next action's receive (from send_to) */
} pipeline_action;

/* Fills actions[0 .. 2M) for stage `stage` of `stages` and M micro-batches. */
void pipeline_schedule(int stage, int stages, int micro_batches, pipeline_action *actions);
/* Activation slots stage `stage` needs: min(stages - stage, micro_batches). */
int pipeline_slots(int stage, int stages, int micro_batches);

#endif
