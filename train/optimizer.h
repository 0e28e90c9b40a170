/* Optimizer step over the model's master weights: AdamW or AdEMAMix, with
 * decoupled weight decay on the decayed range only (matrices and embeddings;
 * never norms, biases or xIELU scalars), after global-norm clipping.
 *
 * Contract: `optimizer_create` allocates the moments (m, v, and AdEMAMix' slow
 * m2) in the backend; `optimizer_step` takes the learning rate of this step
 * and the global gradient norm (computed by the caller over all ranks), clips,
 * updates the master weights and increments `step`. AdEMAMix' alpha and beta3
 * warm up over `ademamix_warmup` steps exactly as Apertus' Megatron fork. */
#ifndef CAIRN_OPTIMIZER_H
#define CAIRN_OPTIMIZER_H

#include <stdint.h>

#include "common/status.h"
#include "kernels/ops.h"
#include "train/config.h"

typedef struct optimizer {
    const ops *ops;
    optim_config cfg;
    size_t total, decayed;  /* elements; decay applies to [0, decayed) */
    void *m, *v, *m2;       /* master type; m2 only for AdEMAMix */
    int64_t step;           /* updates made so far */
} optimizer;

int optimizer_create(optimizer *opt, const ops *o, const optim_config *cfg, size_t total,
                     size_t decayed, status *st);
void optimizer_destroy(optimizer *opt);
/* Returns the clip factor applied to the gradients (1 when not clipped). */
double optimizer_step(optimizer *opt, void *params, void *grads, double lr, double grad_norm,
                      double grad_clip);
/* AdEMAMix warmups at update t (1-based), exposed for tests. */
double ademamix_alpha_at(const optim_config *cfg, int64_t t);
double ademamix_beta3_at(const optim_config *cfg, int64_t t);

#endif
