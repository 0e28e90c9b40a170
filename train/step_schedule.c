#include "train/step_schedule.h"

#include <stdlib.h>
#include <string.h>

int step_schedule_init(step_schedule *s, model *m, comm *pp, int micro_steps, status *st) {
    memset(s, 0, sizeof *s);
    s->model = m;
    s->pp = pp && pp->size > 1 ? pp : NULL;
    s->micro_steps = micro_steps;
    s->slots = m->shard.slots;
    if (comm_float_dtype(m->ops->act_bytes, &s->act) != 0 && s->pp)
        return status_fail(st, "parallel.pp: the %s backend's %zu-byte activations cannot go "
                           "through the %s communicator",
                           m->ops->name, m->ops->act_bytes, s->pp->ops->name);
    s->actions = malloc(sizeof *s->actions * 2 * (size_t)micro_steps);
    s->output_sends = calloc(s->slots, sizeof *s->output_sends);
    if (!s->actions || !s->output_sends) return status_fail(st, "trainer: out of host memory");
    pipeline_schedule(m->shard.stage, m->shard.stages, micro_steps, s->actions);
    return 0;
}

void step_schedule_release(step_schedule *s) {
    free(s->actions);
    free(s->output_sends);
    memset(s, 0, sizeof *s);
}

static size_t activation_count(const model *m) { return (size_t)m->N * m->cfg.d_model; }

static int forward_pass(step_schedule *s, int slot, const int32_t *tokens, const float *weights,
                        double moe_scale, status *st) {
    model *m = s->model;
    int stage = m->shard.stage;
    if (s->pp && stage > 0 &&
        comm_recv(s->pp, model_stage_input(m, slot), activation_count(m), s->act, stage - 1, st))
        return -1;
    model_stage_forward(m, slot, tokens, weights, moe_scale);
    if (s->pp && !m->last_stage) {
        /* the slot's output buffer is free again once its send completed */
        if (comm_wait(&s->output_sends[slot], st) != 0) return -1;
        m->ops->synchronize();
        if (comm_send_start(s->pp, model_stage_output(m, slot), activation_count(m), s->act,
                            stage + 1, &s->output_sends[slot], st) != 0)
            return -1;
    }
    return 0;
}

static int backward_pass(step_schedule *s, int slot, status *st) {
    model *m = s->model;
    int stage = m->shard.stage;
    /* the stage gradient buffer is reused by every backward pass */
    if (comm_wait(&s->grad_send, st) != 0) return -1;
    if (s->pp && !m->last_stage &&
        comm_recv(s->pp, model_stage_grad(m), activation_count(m), s->act, stage + 1, st))
        return -1;
    model_stage_backward(m, slot);
    if (s->pp && !m->first_stage) {
        m->ops->synchronize();
        if (comm_send_start(s->pp, model_stage_grad(m), activation_count(m), s->act, stage - 1,
                            &s->grad_send, st) != 0)
            return -1;
    }
    return 0;
}

int step_schedule_run(step_schedule *s, const int32_t *tokens, const float *weights,
                      const uint8_t *mask, double moe_scale, step_losses *losses, status *st) {
    model *m = s->model;
    int T = m->seq_len, mb = m->micro_batch;
    memset(losses, 0, sizeof *losses);
    for (int a = 0; a < 2 * s->micro_steps; a++) {
        int micro = s->actions[a].micro, slot = micro % s->slots;
        size_t row = (size_t)micro * mb;
        if (s->actions[a].pass == PIPELINE_FORWARD) {
            if (forward_pass(s, slot, tokens + row * (T + 1), weights + row * T, moe_scale, st))
                return -1;
            /* the token losses exist on the last stage */
            if (m->last_stage) {
                const uint8_t *counted = mask + row * T;
                for (int i = 0; i < mb * T; i++)
                    if (counted[i]) losses->loss_sum += m->host_losses[i];
            }
        } else {
            /* the step's last backward pass on this stage: gradients become final layer by layer */
            m->final_backward = micro == s->micro_steps - 1;
            int rc = backward_pass(s, slot, st);
            m->final_backward = 0;
            if (rc != 0) return -1;
        }
    }
    /* the router losses of this stage's layers, summed on the device over the step */
    double aux, z;
    model_take_router_losses(m, &aux, &z);
    losses->aux_loss = aux * moe_scale;
    losses->z_loss = z * moe_scale;
    for (int slot = 0; slot < s->slots; slot++)
        if (comm_wait(&s->output_sends[slot], st) != 0) return -1;
    return comm_wait(&s->grad_send, st);
}

int step_schedule_forward(step_schedule *s, const int32_t *tokens, status *st) {
    model *m = s->model;
    int stage = m->shard.stage;
    if (s->pp && stage > 0 &&
        comm_recv(s->pp, model_stage_input(m, 0), activation_count(m), s->act, stage - 1, st))
        return -1;
    model_stage_forward(m, 0, tokens, NULL, 0);
    if (s->pp && !m->last_stage) {
        m->ops->synchronize();
        if (comm_send(s->pp, model_stage_output(m, 0), activation_count(m), s->act, stage + 1, st))
            return -1;
    }
    return 0;
}
