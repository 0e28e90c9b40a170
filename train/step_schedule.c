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

/* Where an action's incoming message lands: a forward pass's input slot, or the stage gradient
 * buffer a backward pass starts from. */
static void *input_buffer(model *m, const pipeline_action *a, int slots) {
    return a->pass == PIPELINE_FORWARD ? model_stage_input(m, a->micro % slots)
                                       : model_stage_grad(m);
}

/* The request of the send that reads an action's output buffer. Sends complete in the
 * background; a buffer is written again only once its previous send has completed. */
static comm_request *output_send(step_schedule *s, const pipeline_action *a) {
    return a->pass == PIPELINE_FORWARD ? &s->output_sends[a->micro % s->slots] : &s->grad_send;
}

static void *output_buffer(model *m, const pipeline_action *a, int slots) {
    return a->pass == PIPELINE_FORWARD ? model_stage_output(m, a->micro % slots)
                                       : model_stage_grad(m);
}

/* Before anything of `a` lands in its buffers: the output slot of a forward pass, and the stage
 * gradient buffer, which every backward pass receives into and sends from. */
static int buffers_free(step_schedule *s, const pipeline_action *a, status *st) {
    return comm_wait(output_send(s, a), st);
}

/* The input of `a` from its neighbour, unless the previous exchange brought it. */
static int receive_input(step_schedule *s, const pipeline_action *a, status *st) {
    if (a->receive_from < 0) return 0;
    return comm_recv(s->pp, input_buffer(s->model, a, s->slots), activation_count(s->model), s->act,
                     a->receive_from, st);
}

/* The output of `a` to its neighbour; with an exchange, together with the next action's input. */
static int send_output(step_schedule *s, const pipeline_action *a, status *st) {
    model *m = s->model;
    comm_request *send = output_send(s, a);
    void *output = output_buffer(m, a, s->slots);
    size_t count = activation_count(m);
    m->ops->synchronize();
    if (!a->exchange) return comm_send_start(s->pp, output, count, s->act, a->send_to, send, st);
    const pipeline_action *next = a + 1;
    comm_request receive;
    if (buffers_free(s, next, st) != 0 ||
        comm_send_recv_start(s->pp, output, count, a->send_to, input_buffer(m, next, s->slots),
                             count, a->send_to, s->act, send, &receive, st) != 0)
        return -1;
    return comm_wait(&receive, st);
}

int step_schedule_run(step_schedule *s, const int32_t *tokens, const float *weights,
                      const uint8_t *mask, double moe_scale, step_losses *losses, status *st) {
    model *m = s->model;
    int T = m->seq_len, mb = m->micro_batch;
    memset(losses, 0, sizeof *losses);
    for (int i = 0; i < 2 * s->micro_steps; i++) {
        const pipeline_action *a = &s->actions[i];
        int slot = a->micro % s->slots;
        size_t row = (size_t)a->micro * mb;
        if (s->pp && (buffers_free(s, a, st) != 0 || receive_input(s, a, st) != 0)) return -1;
        if (a->pass == PIPELINE_FORWARD) {
            model_stage_forward(m, slot, tokens + row * (T + 1), weights + row * T, moe_scale);
            /* the token losses exist on the last stage */
            if (m->last_stage) {
                const uint8_t *counted = mask + row * T;
                for (int t = 0; t < mb * T; t++)
                    if (counted[t]) losses->loss_sum += m->host_losses[t];
            }
        } else {
            /* the step's last backward pass on this stage: gradients become final layer by layer */
            m->final_backward = a->micro == s->micro_steps - 1;
            model_stage_backward(m, slot);
            m->final_backward = 0;
        }
        if (s->pp && a->send_to >= 0 && send_output(s, a, st) != 0) return -1;
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
