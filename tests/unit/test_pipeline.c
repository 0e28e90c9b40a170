/* The 1F1B schedule: worked examples and its invariants for many stage counts. */
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
    CHECK_MSG(strcmp(got, expect) == 0, "stage %d of %d, %d micro-batches: %s, expected %s",
              stage, stages, micro, got, expect);
}

int main(void) {
    /* Megatron's picture for 4 stages and 6 micro-batches */
    check_sequence(0, 4, 6, "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5");
    check_sequence(1, 4, 6, "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 B4 B5");
    check_sequence(3, 4, 6, "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5");
    check_sequence(0, 4, 2, "F0 F1 B0 B1");
    check_sequence(0, 1, 3, "F0 B0 F1 B1 F2 B2");
    CHECK(pipeline_slots(0, 4, 6) == 4 && pipeline_slots(3, 4, 6) == 1 && pipeline_slots(0, 4, 2) == 2);

    /* invariants: every micro-batch once each way, in order, forward before backward, and never
     * more in flight than the slots */
    for (int stages = 1; stages <= 8; stages++)
        for (int micro = 1; micro <= 12; micro++)
            for (int stage = 0; stage < stages; stage++) {
                pipeline_action actions[64];
                pipeline_schedule(stage, stages, micro, actions);
                int forward = 0, backward = 0, worst = 0, ok = 1;
                for (int i = 0; i < 2 * micro; i++) {
                    if (actions[i].pass == PIPELINE_FORWARD) ok &= actions[i].micro == forward++;
                    else ok &= actions[i].micro == backward++ && backward <= forward;
                    if (forward - backward > worst) worst = forward - backward;
                }
                ok &= forward == micro && backward == micro;
                CHECK_MSG(ok && worst == pipeline_slots(stage, stages, micro),
                          "stage %d of %d, %d micro-batches: order broken or %d in flight", stage,
                          stages, micro, worst);
            }
    return check_summary("test_pipeline");
}
