/* Mixture-of-experts routing on the device (moe_route_forward / moe_route_backward,
 * kernels/ops.h) in fp32, so a layer never waits for the host but for its E+1 row offsets.
 *
 * Deterministic: one thread per token decides and differentiates that token; sums over tokens
 * are fixed-shape block reductions in a fixed order; assignment counts use integer atomics,
 * whose result does not depend on their order. The rows are laid out by CUB's radix sort, which
 * is stable: sorting the slots by expert keeps tokens in order inside each expert, and capacity
 * sorts them first by (expert, gate descending), ties to the earlier slot, and keeps each
 * expert's first `capacity`. */
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/cuda_common.cuh"

enum { ROUTE_THREADS = 256 };

__device__ __forceinline__ float route_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float load_logit(const bf16 *row, int e) {
    return __bfloat162float(row[e]);
}

/* What experts are ranked by: the logit for both routers, as on the cpu (the sigmoid keeps the
 * order, but in fp32 it ties logits from about 13.4 and gives 1 from 16.75); NaN ranks lowest so
 * the order stays total. */
__device__ __forceinline__ float rank_score(float logit) {
    return isnan(logit) ? -INFINITY : logit;
}

/* Expert a with score sa ranks before expert b with score sb. */
__device__ __forceinline__ bool ranks_before(float sa, int a, float sb, int b) {
    return sa > sb || (sa == sb && a < b);
}

/* How a token's gates are normalised: gate_j = f(logit_j - shift) / denominator. */
typedef struct gate_norm {
    float shift, denominator;
} gate_norm;

__device__ gate_norm token_gate_norm(const bf16 *row, const int32_t *chosen, int k, int sigmoid) {
    gate_norm norm = {sigmoid ? 0.0f : load_logit(row, chosen[0]), 0.0f};
    for (int j = 0; j < k; j++) {
        float x = load_logit(row, chosen[j]);
        norm.denominator += sigmoid ? route_sigmoid(x) : expf(x - norm.shift);
    }
    if (sigmoid) norm.denominator = k == 1 ? 1.0f : norm.denominator + 1e-20f;
    return norm;
}

__device__ __forceinline__ float gate_value(float logit, gate_norm norm, int sigmoid) {
    return (sigmoid ? route_sigmoid(logit) : expf(logit - norm.shift)) / norm.denominator;
}

/* logsumexp of the row */
__device__ float row_logsumexp(const bf16 *row, int E) {
    float max = load_logit(row, 0), sum = 0.0f;
    for (int e = 1; e < E; e++) max = fmaxf(max, load_logit(row, e));
    for (int e = 0; e < E; e++) sum += expf(load_logit(row, e) - max);
    return max + logf(sum);
}

/* Σ_e sigmoid(logit_e): the normaliser of a sigmoid router's balancing probabilities */
__device__ float row_sigmoid_sum(const bf16 *row, int E) {
    float sum = 0.0f;
    for (int e = 0; e < E; e++) sum += route_sigmoid(load_logit(row, e));
    return sum;
}

/* p_te of the balancing loss: the softmax of the token's logits, or a sigmoid router's scores
 * over their sum `total` */
__device__ __forceinline__ float balance_probability(float x, float lse, float total,
                                                     int sigmoid) {
    return sigmoid ? route_sigmoid(x) / total : expf(x - lse);
}

/* Per token: its k experts (each pick the best expert ranked after the previous pick), their
 * gates, the assignment counts, and the balancing terms, expert-major so the column sums read
 * them coalesced: balance[e][t] = p_te, balance[E][t] = logsumexp². */
__global__ void route_tokens_kernel(const bf16 *logits, int N, int E, int k, int sigmoid,
                                    int32_t *choice, float *gates, int32_t *assigned,
                                    float *balance) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= N) return;
    const bf16 *row = logits + (size_t)t * E;
    int32_t *chosen = choice + (size_t)t * k;
    int previous = -1;
    float previous_score = 0.0f;
    for (int j = 0; j < k; j++) {
        int best = -1;
        float best_score = 0.0f;
        for (int e = 0; e < E; e++) {
            float score = rank_score(load_logit(row, e));
            if (previous >= 0 && !ranks_before(previous_score, previous, score, e)) continue;
            if (best < 0 || ranks_before(score, e, best_score, best)) {
                best = e;
                best_score = score;
            }
        }
        chosen[j] = best;
        atomicAdd(&assigned[best], 1);
        previous = best;
        previous_score = best_score;
    }
    gate_norm norm = token_gate_norm(row, chosen, k, sigmoid);
    for (int j = 0; j < k; j++)
        gates[(size_t)t * k + j] = gate_value(load_logit(row, chosen[j]), norm, sigmoid);
    float lse = row_logsumexp(row, E);
    float total = sigmoid ? row_sigmoid_sum(row, E) : 1.0f;
    for (int e = 0; e < E; e++)
        balance[(size_t)e * N + t] = balance_probability(load_logit(row, e), lse, total, sigmoid);
    balance[(size_t)E * N + t] = lse * lse;
}

/* sums[c] = Σ_t balance[c][t]: one block per column, a fixed shape, so a fixed order */
__global__ void column_sums_kernel(const float *balance, int N, float *sums) {
    __shared__ float shared[32];
    const float *column = balance + (size_t)blockIdx.x * N;
    float sum = 0.0f;
    for (int t = threadIdx.x; t < N; t += blockDim.x) sum += column[t];
    sum = block_sum(sum, shared);
    if (threadIdx.x == 0) sums[blockIdx.x] = sum;
}

/* One thread: the losses, each expert's kept rows (expert_offset) and, for capacity, where each
 * expert's slots start in the (expert, gate) order. E is small (tens to hundreds). */
__global__ void route_totals_kernel(const float *sums, const int32_t *assigned, int E,
                                    int capacity, float aux_factor, float z_factor, float *losses,
                                    int32_t *expert_offset, int32_t *segment_start) {
    float aux = 0.0f;
    int rows = 0, assignments = 0;
    for (int e = 0; e < E; e++) {
        aux += sums[e] * (float)assigned[e];
        expert_offset[e] = rows;
        rows += min(assigned[e], capacity);
        if (segment_start) segment_start[e] = assignments;
        assignments += assigned[e];
    }
    expert_offset[E] = rows;
    if (losses) {
        losses[0] += aux_factor * aux;
        losses[1] += z_factor * sums[E];
    }
}

/* (expert, gate descending) as one ascending key; gates are >= 0, whose float bits order as
 * their values */
__global__ void capacity_keys_kernel(const int32_t *choice, const float *gates, int slots,
                                     uint64_t *keys, int32_t *order) {
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= slots) return;
    keys[s] = (uint64_t)(uint32_t)choice[s] << 32 | (uint32_t)~__float_as_uint(gates[s]);
    order[s] = s;
}

/* The layout key of each slot: its expert if kept, E (after every kept row) if dropped. With
 * capacity, position i of the capacity order holds slot ranked[i]. */
__global__ void capacity_layout_keys_kernel(const uint64_t *ranked_keys, const int32_t *ranked,
                                            const int32_t *segment_start, int capacity, int slots,
                                            int E, uint32_t *keys, int32_t *order) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= slots) return;
    int s = ranked[i], e = (int)(ranked_keys[i] >> 32);
    keys[s] = i - segment_start[e] < capacity ? (uint32_t)e : (uint32_t)E;
    order[s] = s;
}

__global__ void dropless_layout_keys_kernel(const int32_t *choice, int slots, uint32_t *keys,
                                            int32_t *order) {
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= slots) return;
    keys[s] = (uint32_t)choice[s];
    order[s] = s;
}

/* After the stable sort by layout key, position i is row i (kept rows first, by expert, tokens
 * in order) */
__global__ void place_rows_kernel(const uint32_t *keys, const int32_t *sorted, int slots, int k,
                                  int E, int32_t *slot, int32_t *row_token) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= slots) return;
    int s = sorted[i];
    if (keys[i] < (uint32_t)E) {
        slot[s] = i;
        row_token[i] = s / k;
    } else {
        slot[s] = -1;
    }
}

/* bits that hold every value 0..max */
static int bits_for(int max) {
    int bits = 1;
    while ((1u << bits) <= (unsigned)max) bits++;
    return bits;
}

/* Carves 256-byte aligned pieces out of one scratch allocation: a first pass with base NULL
 * measures, the second hands out pointers. */
typedef struct carver {
    char *base;
    size_t used;
} carver;

static void *carve(carver *c, size_t bytes) {
    size_t offset = (c->used + 255) & ~(size_t)255;
    c->used = offset + (bytes ? bytes : 1);
    return c->base ? c->base + offset : NULL;
}

/* The scratch of one routing call. */
typedef struct route_scratch {
    float *balance, *sums;
    int32_t *segment_start, *order, *sorted;
    uint64_t *capacity_keys, *ranked_keys;
    uint32_t *layout_keys, *sorted_keys;
    void *sort_temp;
    size_t sort_temp_bytes;
} route_scratch;

static void route_scratch_carve(route_scratch *r, carver *c, int N, int E, int slots,
                                int dropping) {
    r->balance = (float *)carve(c, sizeof(float) * (size_t)(E + 1) * N);
    r->sums = (float *)carve(c, sizeof(float) * (size_t)(E + 1));
    r->segment_start = (int32_t *)carve(c, sizeof(int32_t) * (size_t)E);
    r->order = (int32_t *)carve(c, sizeof(int32_t) * (size_t)slots);
    r->sorted = (int32_t *)carve(c, sizeof(int32_t) * (size_t)slots);
    r->capacity_keys = (uint64_t *)carve(c, dropping ? sizeof(uint64_t) * (size_t)slots : 0);
    r->ranked_keys = (uint64_t *)carve(c, dropping ? sizeof(uint64_t) * (size_t)slots : 0);
    r->layout_keys = (uint32_t *)carve(c, sizeof(uint32_t) * (size_t)slots);
    r->sorted_keys = (uint32_t *)carve(c, sizeof(uint32_t) * (size_t)slots);
    r->sort_temp = carve(c, r->sort_temp_bytes);
}

void cuda_moe_route_forward(int32_t *choice, void *gates, int32_t *assigned, int32_t *slot,
                            int32_t *row_token, int32_t *expert_offset, void *losses,
                            const void *logits, const moe_router *router, int N) {
    int E = router->experts, k = router->top_k, slots = N * k;
    if (N == 0) {
        CUDA_CHECK(cudaMemsetAsync(assigned, 0, sizeof(int32_t) * (size_t)E, 0));
        CUDA_CHECK(cudaMemsetAsync(expert_offset, 0, sizeof(int32_t) * (size_t)(E + 1), 0));
        return;
    }
    int capacity = moe_capacity(router, N), dropping = router->capacity_factor > 0;
    int expert_bits = bits_for(E);
    /* CUB's workspace sizes: a host-side query, no device work */
    size_t layout_temp = 0, capacity_temp = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(NULL, layout_temp, (const uint32_t *)NULL,
                                               (uint32_t *)NULL, (const int32_t *)NULL,
                                               (int32_t *)NULL, slots, 0, expert_bits));
    if (dropping)
        CUDA_CHECK(cub::DeviceRadixSort::SortPairs(NULL, capacity_temp, (const uint64_t *)NULL,
                                                   (uint64_t *)NULL, (const int32_t *)NULL,
                                                   (int32_t *)NULL, slots, 0, 32 + expert_bits));
    route_scratch r;
    r.sort_temp_bytes = layout_temp > capacity_temp ? layout_temp : capacity_temp;
    carver measure = {NULL, 0};
    route_scratch_carve(&r, &measure, N, E, slots, dropping);
    carver space = {(char *)cuda_scratch(measure.used), 0};
    route_scratch_carve(&r, &space, N, E, slots, dropping);

    CUDA_CHECK(cudaMemsetAsync(assigned, 0, sizeof(int32_t) * (size_t)E, 0));
    route_tokens_kernel<<<cuda_blocks(N, ROUTE_THREADS), ROUTE_THREADS>>>(
        (const bf16 *)logits, N, E, k, router->sigmoid, choice, (float *)gates, assigned,
        r.balance);
    CUDA_CHECK_LAUNCH();
    column_sums_kernel<<<E + 1, ROUTE_THREADS>>>(r.balance, N, r.sums);
    CUDA_CHECK_LAUNCH();
    float aux_factor = (float)(router->aux_coef * E / ((double)N * N * k));
    float z_factor = (float)(router->z_coef / N);
    route_totals_kernel<<<1, 1>>>(r.sums, assigned, E, capacity, aux_factor, z_factor,
                                  (float *)losses, expert_offset,
                                  dropping ? r.segment_start : NULL);
    CUDA_CHECK_LAUNCH();
    unsigned int blocks = cuda_blocks(slots, ROUTE_THREADS);
    if (dropping) {
        capacity_keys_kernel<<<blocks, ROUTE_THREADS>>>(choice, (const float *)gates, slots,
                                                        r.capacity_keys, r.order);
        CUDA_CHECK_LAUNCH();
        CUDA_CHECK(cub::DeviceRadixSort::SortPairs(r.sort_temp, r.sort_temp_bytes,
                                                   r.capacity_keys, r.ranked_keys, r.order,
                                                   r.sorted, slots, 0, 32 + expert_bits));
        capacity_layout_keys_kernel<<<blocks, ROUTE_THREADS>>>(
            r.ranked_keys, r.sorted, r.segment_start, capacity, slots, E, r.layout_keys, r.order);
    } else {
        dropless_layout_keys_kernel<<<blocks, ROUTE_THREADS>>>(choice, slots, r.layout_keys,
                                                               r.order);
    }
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(r.sort_temp, r.sort_temp_bytes, r.layout_keys,
                                               r.sorted_keys, r.order, r.sorted, slots, 0,
                                               expert_bits));
    place_rows_kernel<<<blocks, ROUTE_THREADS>>>(r.sorted_keys, r.sorted, slots, k, E, slot,
                                                 row_token);
    CUDA_CHECK_LAUNCH();
}

/* One thread per token: the gradient of its E logits (see cpu_moe_routing.c for the algebra). */
__global__ void route_backward_kernel(bf16 *dlogits, const float *dgates, const bf16 *logits,
                                      const int32_t *choice, const int32_t *assigned, int N,
                                      int E, int k, int sigmoid, float aux_factor,
                                      float z_factor, float aux_scale) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= N) return;
    const bf16 *row = logits + (size_t)t * E;
    const int32_t *chosen = choice + (size_t)t * k;
    const float *dg = dgates + (size_t)t * k;
    gate_norm norm = token_gate_norm(row, chosen, k, sigmoid);
    float dot = 0.0f; /* Σ_j gate_j · dgate_j */
    for (int j = 0; j < k; j++)
        dot += gate_value(load_logit(row, chosen[j]), norm, sigmoid) * dg[j];
    float lse = row_logsumexp(row, E);
    float S = sigmoid ? row_sigmoid_sum(row, E) : 1.0f, pa = 0.0f;
    for (int e = 0; e < E; e++)
        pa += balance_probability(load_logit(row, e), lse, S, sigmoid) * aux_factor *
              (float)assigned[e];
    for (int e = 0; e < E; e++) {
        float x = load_logit(row, e), s = route_sigmoid(x), softmax = expf(x - lse);
        float a = aux_factor * (float)assigned[e], g = 0.0f;
        for (int j = 0; j < k; j++) {
            if (chosen[j] != e) continue;
            if (!sigmoid)
                g += gate_value(x, norm, sigmoid) * (dg[j] - dot);
            else if (k > 1)
                g += (dg[j] - dot) / norm.denominator * s * (1.0f - s);
            else
                g += dg[j] * s * (1.0f - s);
        }
        if (sigmoid)
            g += aux_scale * (a - pa) / S * s * (1.0f - s);
        else
            g += aux_scale * softmax * (a - pa);
        g += aux_scale * z_factor * lse * softmax;
        dlogits[(size_t)t * E + e] = __float2bfloat16(g);
    }
}

void cuda_moe_route_backward(void *dlogits, const void *dgates, const void *logits,
                             const int32_t *choice, const int32_t *assigned,
                             const moe_router *router, int N, double aux_scale) {
    if (N == 0) return;
    int E = router->experts, k = router->top_k;
    float aux_factor = (float)(router->aux_coef * E / ((double)N * N * k));
    float z_factor = (float)(router->z_coef / N * 2);
    route_backward_kernel<<<cuda_blocks(N, ROUTE_THREADS), ROUTE_THREADS>>>(
        (bf16 *)dlogits, (const float *)dgates, (const bf16 *)logits, choice, assigned, N, E, k,
        router->sigmoid, aux_factor, z_factor, (float)aux_scale);
    CUDA_CHECK_LAUNCH();
}
