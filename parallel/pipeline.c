#include "parallel/pipeline.h"

int pipeline_slots(int stage, int stages, int micro_batches) {
    int in_flight = stages - stage;
    return in_flight < micro_batches ? in_flight : micro_batches;
}

/* The neighbour a pass receives from (-1: none) and sends to. */
static int receives_from(pipeline_pass pass, int stage, int stages) {
    if (pass == PIPELINE_FORWARD) return stage > 0 ? stage - 1 : -1;
    return stage < stages - 1 ? stage + 1 : -1;
}

static int sends_to(pipeline_pass pass, int stage, int stages) {
    if (pass == PIPELINE_FORWARD) return stage < stages - 1 ? stage + 1 : -1;
    return stage > 0 ? stage - 1 : -1;
}

void pipeline_schedule(int stage, int stages, int micro_batches, pipeline_action *actions) {
    int warmup = stages - stage - 1 < micro_batches ? stages - stage - 1 : micro_batches;
    int forward = 0, backward = 0, n = 0;
    while (backward < micro_batches) {
        /* after the warm-up, a forward pass runs only when it keeps the in-flight count */
        if (forward < micro_batches && (forward < warmup || forward == backward + warmup)) {
            actions[n].pass = PIPELINE_FORWARD;
            actions[n++].micro = forward++;
        } else {
            actions[n].pass = PIPELINE_BACKWARD;
            actions[n++].micro = backward++;
        }
    }
    for (int i = 0; i < n; i++) {
        pipeline_action *a = &actions[i];
        a->receive_from = receives_from(a->pass, stage, stages);
        a->send_to = sends_to(a->pass, stage, stages);
        if (i > 0 && actions[i - 1].exchange) a->receive_from = -1;
        a->exchange = i + 1 < n && a->send_to >= 0 &&
                      receives_from(actions[i + 1].pass, stage, stages) == a->send_to;
    }
}
