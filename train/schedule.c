#include "train/schedule.h"

#include <math.h>

double schedule_lr(const optim_config *o, int64_t steps, int64_t step) {
    const schedule_config *s = &o->schedule;
    double max = o->lr, min = o->min_lr;
    if (s->warmup > 0 && step <= s->warmup) return max * (double)step / (double)s->warmup;
    switch (s->kind) {
    case SCHEDULE_CONSTANT:
        return max;
    case SCHEDULE_COSINE: {
        int64_t decay = s->decay > 0 ? s->decay : steps - s->warmup;
        double progress = decay > 0 ? (double)(step - s->warmup) / (double)decay : 1.0;
        if (progress > 1) progress = 1;
        return min + 0.5 * (max - min) * (1 + cos(M_PI * progress));
    }
    case SCHEDULE_WSD: {
        int64_t decay = s->decay > 0 ? s->decay : steps / 5;
        int64_t anneal_start = steps - decay;
        if (step <= anneal_start) return max;
        double r = (double)(step - anneal_start) / (double)decay;
        if (r > 1) r = 1;
        return min + (1 - sqrt(r)) * (max - min);
    }
    }
    return max;
}
