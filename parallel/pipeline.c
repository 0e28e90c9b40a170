#include "parallel/pipeline.h"

int pipeline_slots(int stage, int stages, int micro_batches) {
    int in_flight = stages - stage;
    return in_flight < micro_batches ? in_flight : micro_batches;
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
}
