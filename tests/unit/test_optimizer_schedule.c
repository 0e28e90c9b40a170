/* Learning-rate schedules and optimizer steps against formulas written out here. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "train/optimizer.h"
#include "train/schedule.h"

static optim_config base(schedule_kind kind, int64_t warmup, int64_t decay) {
    config c;
    config_defaults(&c);
    optim_config o = c.optim;
    o.lr = 1.0;
    o.min_lr = 0.1;
    o.schedule.kind = kind;
    o.schedule.warmup = warmup;
    o.schedule.decay = decay;
    return o;
}

static void test_schedules(void) {
    optim_config o = base(SCHEDULE_CONSTANT, 10, 0);
    CHECK_NEAR(schedule_lr(&o, 100, 1), 0.1, 1e-12);
    CHECK_NEAR(schedule_lr(&o, 100, 5), 0.5, 1e-12);
    CHECK_NEAR(schedule_lr(&o, 100, 10), 1.0, 1e-12);
    CHECK_NEAR(schedule_lr(&o, 100, 99), 1.0, 1e-12);

    o = base(SCHEDULE_COSINE, 10, 0); /* decays over the 90 steps after warmup */
    CHECK_NEAR(schedule_lr(&o, 100, 10), 1.0, 1e-12);
    CHECK_NEAR(schedule_lr(&o, 100, 55), 0.1 + 0.45 * (1 + cos(M_PI * 0.5)), 1e-12);
    CHECK_NEAR(schedule_lr(&o, 100, 100), 0.1, 1e-12);
    CHECK_NEAR(schedule_lr(&o, 100, 150), 0.1, 1e-12);

    o = base(SCHEDULE_WSD, 10, 20); /* stable until step 80, then 1-sqrt to min */
    CHECK_NEAR(schedule_lr(&o, 100, 50), 1.0, 1e-12);
    CHECK_NEAR(schedule_lr(&o, 100, 80), 1.0, 1e-12);
    CHECK_NEAR(schedule_lr(&o, 100, 85), 0.1 + (1 - sqrt(0.25)) * 0.9, 1e-12);
    CHECK_NEAR(schedule_lr(&o, 100, 100), 0.1, 1e-12);
}

static void test_ademamix_warmups(void) {
    optim_config o = base(SCHEDULE_CONSTANT, 0, 0);
    o.betas[0] = 0.9;
    o.betas[2] = 0.9999;
    o.ademamix_alpha = 8;
    o.ademamix_warmup = 100;
    CHECK_NEAR(ademamix_alpha_at(&o, 25), 2.0, 1e-12);
    CHECK_NEAR(ademamix_alpha_at(&o, 400), 8.0, 1e-12);
    /* half-life interpolation: start at beta1, end at beta3 */
    CHECK_NEAR(ademamix_beta3_at(&o, 0), 0.9, 1e-12);
    CHECK_NEAR(ademamix_beta3_at(&o, 100), 0.9999, 1e-12);
    double f1 = log(0.5) / log(0.9) - 1, f3 = log(0.5) / log(0.9999) - 1;
    CHECK_NEAR(ademamix_beta3_at(&o, 50), pow(0.5, 1 / (0.5 * f1 + 0.5 * f3 + 1)), 1e-12);
    o.ademamix_warmup = 0;
    CHECK_NEAR(ademamix_alpha_at(&o, 1), 8.0, 1e-12);
}

/* Two parameters, one decayed and one not, three AdamW steps with clipping. */
static void test_adamw_steps(void) {
    const ops *o = ops_cpu64();
    optim_config c = base(SCHEDULE_CONSTANT, 0, 0);
    c.betas[0] = 0.9;
    c.betas[1] = 0.99;
    c.eps = 1e-8;
    c.weight_decay = 0.5;
    optimizer opt;
    status st;
    CHECK(optimizer_create(&opt, o, &c, 2, 1, &st) == 0);
    double *p = o->alloc(2 * sizeof(double)), *g = o->alloc(2 * sizeof(double));
    p[0] = 1.0;
    p[1] = -2.0;
    double ref_p[2] = {1.0, -2.0}, m[2] = {0}, v[2] = {0};
    double grads[3][2] = {{3.0, 4.0}, {0.1, -0.2}, {-1.0, 0.5}};
    for (int t = 1; t <= 3; t++) {
        g[0] = grads[t - 1][0];
        g[1] = grads[t - 1][1];
        double norm = sqrt(g[0] * g[0] + g[1] * g[1]);
        double clip = norm > 1.0 ? 1.0 / (norm + 1e-6) : 1.0;
        double factor = optimizer_step(&opt, p, g, 0.01, norm, 1.0);
        CHECK_NEAR(factor, clip, 1e-12);
        for (int i = 0; i < 2; i++) {
            double gi = grads[t - 1][i] * clip;
            m[i] = 0.9 * m[i] + 0.1 * gi;
            v[i] = 0.99 * v[i] + 0.01 * gi * gi;
            double mh = m[i] / (1 - pow(0.9, t)), vh = v[i] / (1 - pow(0.99, t));
            double wd = i == 0 ? 0.5 : 0.0;
            ref_p[i] -= 0.01 * (mh / (sqrt(vh) + 1e-8) + wd * ref_p[i]);
        }
        CHECK_NEAR(p[0], ref_p[0], 1e-6);
        CHECK_NEAR(p[1], ref_p[1], 1e-6);
    }
    CHECK(opt.step == 3);
    o->free(p);
    o->free(g);
    optimizer_destroy(&opt);
}

/* AdEMAMix: the slow moment m2 without bias correction, alpha warmup. */
static void test_ademamix_steps(void) {
    const ops *o = ops_cpu64();
    optim_config c = base(SCHEDULE_CONSTANT, 0, 0);
    c.name = OPTIM_ADEMAMIX;
    c.betas[0] = 0.9;
    c.betas[1] = 0.999;
    c.betas[2] = 0.9999;
    c.ademamix_alpha = 8;
    c.ademamix_warmup = 4;
    c.weight_decay = 0.1;
    c.eps = 1e-8;
    optimizer opt;
    status st;
    CHECK(optimizer_create(&opt, o, &c, 1, 1, &st) == 0);
    double *p = o->alloc(sizeof(double)), *g = o->alloc(sizeof(double));
    p[0] = 0.5;
    double ref = 0.5, m1 = 0, m2 = 0, v = 0;
    for (int t = 1; t <= 3; t++) {
        double grad = 0.3 * t - 0.4;
        g[0] = grad;
        optimizer_step(&opt, p, g, 0.02, fabs(grad), 0);
        double b3 = ademamix_beta3_at(&c, t), alpha = 8.0 * t / 4;
        m1 = 0.9 * m1 + 0.1 * grad;
        m2 = b3 * m2 + (1 - b3) * grad;
        v = 0.999 * v + 0.001 * grad * grad;
        double denom = sqrt(v) / sqrt(1 - pow(0.999, t)) + 1e-8;
        ref -= 0.02 * ((m1 / (1 - pow(0.9, t)) + alpha * m2) / denom + 0.1 * ref);
        CHECK_NEAR(p[0], ref, 1e-6);
    }
    o->free(p);
    o->free(g);
    optimizer_destroy(&opt);
}

int main(void) {
    test_schedules();
    test_ademamix_warmups();
    test_adamw_steps();
    test_ademamix_steps();
    return check_summary("test_optimizer_schedule");
}
