/* Learning-rate schedules: constant, cosine and WSD (warmup, stable, 1-sqrt
 * cooldown as Apertus), each with a linear warmup from 0.
 *
 * Contract: `schedule_lr(o, steps, step)` is the learning rate of the update
 * made at step `step` (1-based) of a run of `steps` steps. Pure function. */
#ifndef CAIRN_SCHEDULE_H
#define CAIRN_SCHEDULE_H

#include <stdint.h>

#include "train/config.h"

double schedule_lr(const optim_config *o, int64_t steps, int64_t step);

#endif
