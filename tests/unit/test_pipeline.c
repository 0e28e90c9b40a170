/* The 1F1B schedule: worked examples and its invariants for many stage counts, and its message
 * plan run by every stage at once on a model of the strictest backend (NCCL: one stream per
 * communicator; a step's messages finish before the next step starts; a send finishes only
 * when its receiver has reached the matching receive). */
#include <stdio.h>

#include "parallel/pipeline.h"
#include "tests/unit/check.h"

static void check_sequence(int stage, int stages, int micro, const char *expect) {
    pipeline_action actions[64];
    pipeline_schedule(stage, stages, micro, actions);
    char got[256];
    int at = 0;
    for (int i = 0; i < 2 * micro; i++)
        at += snprintf(got + at, sizeof got - at, "%s%c%d", i ? " " : "",
                       actions[i].pass == PIPELINE_FORWARD ? 'F' : 'B', actions[i].micro);
    CHECK_MSG(strcmp(got, expect) == 0, "stage %d of %d, %d micro-batches: %s, expected %s", stage,
              stages, micro, got, expect);
}

/* One part of a message step: a send or a receive of the activation (or its gradient) of one
 * micro-batch, with a neighbour. */
typedef struct message {
    int sending, peer;
    pipeline_pass pass;
    int micro;
    int done;
} message;

enum { MAX_STAGES = 8, MAX_STEPS = 64 };

typedef struct stage_messages {
    message steps[MAX_STEPS][2]; /* a step: one message, or an exchange's send and receive */
    int parts[MAX_STEPS];
    int count, at; /* steps, and the first unfinished one */
} stage_messages;

static void add_part(stage_messages *p, int new_step, int sending, int peer, pipeline_pass pass,
                     int micro) {
    if (new_step) p->parts[p->count++] = 0;
    p->steps[p->count - 1][p->parts[p->count - 1]++] = (message){sending, peer, pass, micro, 0};
}

/* The messages stage `stage` runs, in order, as the trainer runs them (train/step_schedule.c);
 * with `pairs` 0 every exchange is split into its send and then its receive. */
static void plan_messages(int stage, int stages, int micro, int pairs, stage_messages *p) {
    pipeline_action actions[2 * 12];
    pipeline_schedule(stage, stages, micro, actions);
    memset(p, 0, sizeof *p);
    for (int i = 0; i < 2 * micro; i++) {
        const pipeline_action *a = &actions[i];
        if (a->receive_from >= 0) add_part(p, 1, 0, a->receive_from, a->pass, a->micro);
        if (a->send_to < 0) continue;
        add_part(p, 1, 1, a->send_to, a->pass, a->micro);
        if (a->exchange) add_part(p, !pairs, 0, a->send_to, a[1].pass, a[1].micro);
    }
}

/* Runs every stage's plan until all finish (1) or none can move (0: a deadlock). A send matches
 * the receiver's current step only; the payloads must agree (the same pass and micro-batch). */
static int run_plans(stage_messages *plans, int stages, int *mismatches) {
    for (;;) {
        int moved = 0, unfinished = 0;
        for (int s = 0; s < stages; s++) {
            stage_messages *p = &plans[s];
            if (p->at == p->count) continue;
            unfinished = 1;
            for (int k = 0; k < p->parts[p->at]; k++) {
                message *send = &p->steps[p->at][k];
                stage_messages *q = &plans[send->peer];
                if (!send->sending || send->done || q->at == q->count) continue;
                for (int j = 0; j < q->parts[q->at]; j++) {
                    message *receive = &q->steps[q->at][j];
                    if (receive->sending || receive->done || receive->peer != s) continue;
                    *mismatches += receive->pass != send->pass || receive->micro != send->micro;
                    send->done = receive->done = moved = 1;
                    break;
                }
            }
        }
        for (int s = 0; s < stages; s++) {
            stage_messages *p = &plans[s];
            while (p->at < p->count) {
                int finished = 1;
                for (int k = 0; k < p->parts[p->at]; k++)
                    finished &= p->steps[p->at][k].done;
                if (!finished) break;
                p->at++;
                moved = 1;
            }
        }
        if (!unfinished) return 1;
        if (!moved) return 0;
    }
}

int main(void) {
    /* Megatron's picture for 4 stages and 6 micro-batches */
    check_sequence(0, 4, 6, "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5");
    check_sequence(1, 4, 6, "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 B4 B5");
    check_sequence(3, 4, 6, "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5");
    check_sequence(0, 4, 2, "F0 F1 B0 B1");
    check_sequence(0, 1, 3, "F0 B0 F1 B1 F2 B2");
    CHECK(pipeline_slots(0, 4, 6) == 4 && pipeline_slots(3, 4, 6) == 1 &&
          pipeline_slots(0, 4, 2) == 2);

    /* invariants: every micro-batch once each way, in order, forward before backward, and never
     * more in flight than the slots */
    for (int stages = 1; stages <= 8; stages++)
        for (int micro = 1; micro <= 12; micro++)
            for (int stage = 0; stage < stages; stage++) {
                pipeline_action actions[64];
                pipeline_schedule(stage, stages, micro, actions);
                int forward = 0, backward = 0, worst = 0, ok = 1;
                for (int i = 0; i < 2 * micro; i++) {
                    if (actions[i].pass == PIPELINE_FORWARD)
                        ok &= actions[i].micro == forward++;
                    else
                        ok &= actions[i].micro == backward++ && backward <= forward;
                    if (forward - backward > worst) worst = forward - backward;
                }
                ok &= forward == micro && backward == micro;
                CHECK_MSG(ok && worst == pipeline_slots(stage, stages, micro),
                          "stage %d of %d, %d micro-batches: order broken or %d in flight", stage,
                          stages, micro, worst);
            }

    /* the message plan: peers, and the exchanges of the steady state */
    pipeline_action plan[12];
    pipeline_schedule(1, 4, 6, plan); /* F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 B4 B5 */
    CHECK(plan[0].receive_from == 0 && plan[0].send_to == 2 && !plan[0].exchange);
    CHECK(plan[2].send_to == 2 && plan[2].exchange && plan[3].receive_from == -1);
    CHECK(plan[3].send_to == 0 && plan[3].exchange && plan[4].receive_from == -1);
    CHECK(plan[8].pass == PIPELINE_FORWARD && plan[8].exchange && plan[9].receive_from == -1);
    CHECK(plan[9].send_to == 0 && !plan[9].exchange && plan[10].receive_from == 2);
    pipeline_schedule(0, 2, 3, plan); /* first stage: F0 F1 B0 F2 B1 B2, no gradient to send */
    CHECK(plan[0].receive_from == -1 && plan[0].send_to == 1 && !plan[0].exchange);
    CHECK(plan[1].exchange && plan[2].receive_from == -1 && plan[2].send_to == -1);
    CHECK(!plan[2].exchange && plan[3].exchange && plan[5].receive_from == 1);
    pipeline_schedule(1, 2, 3, plan); /* last stage: F0 B0 F1 B1 F2 B2 */
    CHECK(plan[0].receive_from == 0 && plan[0].send_to == -1 && plan[1].exchange);
    CHECK(plan[2].receive_from == -1 && plan[5].send_to == 0 && !plan[5].exchange);

    /* every stage at once: the plan finishes with every payload where it belongs; without the
     * exchanges, neighbours that both send first wait for each other (what the exchange is for,
     * and proof that this model can see a deadlock) */
    for (int stages = 1; stages <= MAX_STAGES; stages++)
        for (int micro = 1; micro <= 12; micro++)
            for (int pairs = 1; pairs >= 0; pairs--) {
                stage_messages plans[MAX_STAGES];
                for (int s = 0; s < stages; s++)
                    plan_messages(s, stages, micro, pairs, &plans[s]);
                int mismatches = 0, finished = run_plans(plans, stages, &mismatches);
                if (pairs)
                    CHECK_MSG(finished && mismatches == 0,
                              "%d stages, %d micro-batches: %s, %d payloads misplaced", stages,
                              micro, finished ? "finished" : "deadlock", mismatches);
                else
                    CHECK_MSG(finished == (stages == 1 || micro == 1),
                              "%d stages, %d micro-batches without exchanges: %s", stages, micro,
                              finished ? "finished" : "deadlock");
            }
    return check_summary("test_pipeline");
}
