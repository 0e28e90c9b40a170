/* Mixture-of-experts routing, decided on the host from the router logits.
 *
 * Contract: `moe_route` takes the router logits [N][E] of a micro-batch and
 * decides, per token, its top-k experts and gates (softmax: softmax over the
 * k selected logits, i.e. Mixtral/Megatron's renormalised top-k; sigmoid:
 * sigmoid scores, top-k, normalised by their sum when k > 1), applies the
 * optional capacity (ceil(N·k/E·cf) rows per expert, keeping the highest
 * gates), and lays the kept (token, expert) pairs out as rows grouped by
 * expert in token order. It also computes the Switch load-balancing loss
 * aux_coef·E/(N²·k)·Σ_e (Σ_t p_te)·c_e (p: softmax of all logits, or the
 * normalised sigmoid scores; c_e: assignments before dropping) and the router
 * z-loss z_coef·mean_t logsumexp(logits_t)². `moe_router_backward` turns the
 * gradient of the gates into the gradient of the logits and adds the
 * gradients of both auxiliary losses times `aux_scale`. */
#ifndef CAIRN_MOE_ROUTING_H
#define CAIRN_MOE_ROUTING_H

#include <stdint.h>

#include "train/config.h"

typedef struct moe_routing {
    int N, E, k;
    router_kind router;
    double aux_coef, z_coef, capacity_factor;
    double *logits;         /* [N][E] */
    int32_t *choice;        /* [N*k] expert of each slot */
    double *gates;          /* [N*k] before dropping */
    double *used_gates;     /* [N*k] gates applied (0 for dropped slots) */
    int32_t *slot;          /* [N*k] row of each slot, -1 when dropped */
    int32_t *row_token;     /* [rows] token of each row */
    int *expert_offset;     /* [E+1] first row of each expert */
    int64_t *assigned;      /* [E] assignments before dropping */
    int rows;               /* kept rows */
    double aux_loss, z_loss;
} moe_routing;

moe_routing *moe_routing_create(int N, const moe_config *cfg);
void moe_routing_destroy(moe_routing *r);
void moe_route(moe_routing *r);  /* reads r->logits */
/* dgates [N*k] (gradient w.r.t. the applied gates) -> dlogits [N][E] */
void moe_router_backward(const moe_routing *r, const double *dgates, double aux_scale,
                         double *dlogits);

#endif
