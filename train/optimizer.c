#include "train/optimizer.h"

#include <math.h>
#include <string.h>

int optimizer_create(optimizer *opt, const ops *o, const optim_config *cfg, size_t total,
                     size_t decayed, status *st) {
    memset(opt, 0, sizeof *opt);
    opt->ops = o;
    opt->cfg = *cfg;
    opt->total = total;
    opt->decayed = decayed;
    size_t bytes = (total ? total : 1) * o->master_bytes;
    opt->m = o->alloc(bytes);
    opt->v = o->alloc(bytes);
    if (cfg->name == OPTIM_ADEMAMIX) opt->m2 = o->alloc(bytes);
    if (!opt->m || !opt->v || (cfg->name == OPTIM_ADEMAMIX && !opt->m2)) {
        optimizer_destroy(opt);
        return status_fail(st, "optimizer: out of %s memory for %zu parameters", o->name, total);
    }
    return 0;
}

void optimizer_destroy(optimizer *opt) {
    if (!opt->ops) return;
    if (opt->m) opt->ops->free(opt->m);
    if (opt->v) opt->ops->free(opt->v);
    if (opt->m2) opt->ops->free(opt->m2);
    memset(opt, 0, sizeof *opt);
}

static int64_t warmup_steps(const optim_config *cfg) { return cfg->ademamix_warmup; }

double ademamix_alpha_at(const optim_config *cfg, int64_t t) {
    int64_t T = warmup_steps(cfg);
    if (T <= 0) return cfg->ademamix_alpha;
    double f = (double)t / (double)T;
    return cfg->ademamix_alpha * (f < 1 ? f : 1);
}

/* Linear interpolation in half-life space from beta1 to beta3:
 * f(b) = ln(0.5)/ln(b) - 1, beta3(t) = 0.5^(1/(f_t + 1)). */
double ademamix_beta3_at(const optim_config *cfg, int64_t t) {
    double beta_start = cfg->betas[0], beta_end = cfg->betas[2];
    int64_t T = warmup_steps(cfg);
    if (T <= 0 || t >= T) return beta_end;
    double f_start = log(0.5) / log(beta_start) - 1, f_end = log(0.5) / log(beta_end) - 1;
    double f = (double)t / (double)T;
    double f_t = (1 - f) * f_start + f * f_end;
    return pow(0.5, 1.0 / (f_t + 1));
}

double optimizer_step(optimizer *opt, void *params, void *grads, double lr, double grad_norm,
                      double grad_clip) {
    const ops *o = opt->ops;
    const optim_config *c = &opt->cfg;
    double clip = 1.0;
    if (grad_clip > 0 && grad_norm > grad_clip) {
        clip = grad_clip / (grad_norm + 1e-6);
        o->scale(grads, opt->total, (float)clip);
    }
    int64_t t = ++opt->step;
    double bc1 = 1 - pow(c->betas[0], (double)t), bc2 = 1 - pow(c->betas[1], (double)t);
    /* two ranges: [0, decayed) with weight decay, [decayed, total) without */
    size_t starts[2] = {0, opt->decayed}, counts[2] = {opt->decayed, opt->total - opt->decayed};
    for (int range = 0; range < 2; range++) {
        if (counts[range] == 0) continue;
        size_t off = starts[range] * o->master_bytes;
        char *p = (char *)params + off, *g = (char *)grads + off;
        char *m = (char *)opt->m + off, *v = (char *)opt->v + off;
        float wd = range == 0 ? (float)c->weight_decay : 0.0f;
        if (c->name == OPTIM_ADEMAMIX)
            o->ademamix_update(p, g, m, (char *)opt->m2 + off, v, counts[range], (float)lr,
                               (float)c->betas[0], (float)c->betas[1],
                               (float)ademamix_beta3_at(c, t), (float)ademamix_alpha_at(c, t),
                               (float)c->eps, wd, (float)bc1, (float)bc2);
        else
            o->adamw_update(p, g, m, v, counts[range], (float)lr, (float)c->betas[0],
                            (float)c->betas[1], (float)c->eps, wd, (float)bc1, (float)bc2);
    }
    return clip;
}
