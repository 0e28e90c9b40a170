/* Causal (optionally document-masked) grouped-query attention, flash style:
 * one task per (sequence, head) in forward and per (sequence, kv head) in
 * backward, blocks of QUERY_BLOCK queries against the allowed key range, no
 * T×T buffer. Forward saves the log-sum-exp; backward recomputes the
 * probabilities from it. A backward task owns its kv head's dk/dv and the dq
 * of the query heads that share it, so nothing is summed across threads.
 *
 * Layout of the per-thread scratch: keys transposed to [hd][Tp] (scores are a
 * row of q times this panel), keys and values as [Tp][hdp] rows; Tp and hdp
 * are T and hd padded to TILE_COLS with zeros so every micro-kernel call works
 * on whole tiles. Entries outside a query's allowed keys get probability 0. */
#include "kernels/cpu/cpu_real.h"

#include <stdlib.h>
#include <string.h>

enum { QUERY_BLOCK = 16 }; /* queries per block: a multiple of TILE_ROWS */

typedef struct attention_shape {
    int B, T, H, KV, hd;
    int padded_T, padded_hd;
    size_t row;     /* elements per qkv row: (H + 2 KV) hd */
    size_t out_row; /* elements per output row: H hd */
    real scale;     /* 1 / sqrt(hd) */
} attention_shape;

static attention_shape shape_of(int B, int T, int H, int KV, int hd) {
    attention_shape s = {B, T, H, KV, hd, 0, 0, 0, 0, 0};
    s.padded_T = (int)round_up((size_t)T, TILE_COLS);
    s.padded_hd = (int)round_up((size_t)hd, TILE_COLS);
    s.row = (size_t)(H + 2 * KV) * hd;
    s.out_row = (size_t)H * hd;
    s.scale = (real)1 / rsqrt((real)hd);
    return s;
}

/* Offset of head `head` (q heads, then k heads, then v heads) in row 0 of
 * sequence b of a qkv buffer. */
static size_t head_at(const attention_shape *s, int b, int head) {
    return (size_t)b * s->T * s->row + (size_t)head * s->hd;
}

/* dst[d][j] = head[j][d]: a [hd][padded_T] panel */
static void transpose_head(real *dst, const real *head, const attention_shape *s) {
    for (int j = 0; j < s->T; j++)
        for (int d = 0; d < s->hd; d++) dst[(size_t)d * s->padded_T + j] = head[j * s->row + d];
}

/* dst[j][d] = head[j][d]: [padded_T][padded_hd] rows */
static void copy_head(real *dst, const real *head, const attention_shape *s) {
    for (int j = 0; j < s->T; j++)
        memcpy(dst + (size_t)j * s->padded_hd, head + j * s->row, (size_t)s->hd * sizeof(real));
}

/* Copies `rows` rows of hd elements (row stride `stride`) times `factor` into
 * a QUERY_BLOCK × padded_hd tile; the other rows stay zero. */
static void load_tile(real *tile, const real *src, size_t stride, int rows, real factor,
                      const attention_shape *s) {
    memset(tile, 0, (size_t)QUERY_BLOCK * s->padded_hd * sizeof(real));
    for (int r = 0; r < rows; r++)
        for (int d = 0; d < s->hd; d++)
            tile[(size_t)r * s->padded_hd + d] = src[r * stride + d] * factor;
}

/* Writes the first `rows` rows of a tile times `factor` to dst (row stride `stride`). */
static void store_tile(real *dst, size_t stride, const real *tile, int rows, real factor,
                       const attention_shape *s) {
    for (int r = 0; r < rows; r++)
        for (int d = 0; d < s->hd; d++)
            dst[r * stride + d] = tile[(size_t)r * s->padded_hd + d] * factor;
}

/* tile_multiply over the first `rows` rows of a (rounded up to whole tiles). */
static void block_multiply(real *c, size_t ldc, const real *a, size_t lda, const real *b,
                           size_t ldb, int K, int ncols, int rows) {
    for (int r = 0; r < rows; r += TILE_ROWS)
        CPU_FN(tile_multiply)(c + (size_t)r * ldc, ldc, a + (size_t)r * lda, lda, b, ldb, K, ncols,
                              0);
}

/* First allowed key of query t. */
static int first_key(const int32_t *doc_start, int t) {
    return doc_start ? doc_start[t] : 0;
}

/* Key range [*lo, *hi) covering the allowed keys of queries t0..t0+rows-1,
 * widened to whole tiles. */
static void block_keys(const int32_t *doc_start, int t0, int rows, int *lo, int *hi) {
    int first = first_key(doc_start, t0);
    for (int r = 1; r < rows; r++) {
        int k = first_key(doc_start, t0 + r);
        if (k < first) first = k;
    }
    *lo = first / TILE_COLS * TILE_COLS;
    *hi = (int)round_up((size_t)(t0 + rows), TILE_COLS);
}

/* Per-thread buffers, carved from one allocation. Forward uses keys_t,
 * values, probs, q_tile and out_tile. */
typedef struct attention_scratch {
    real *keys_t, *values_t;            /* [hd][Tp] */
    real *keys, *values;                /* [Tp][hdp] */
    real *dkeys, *dvalues;              /* [Tp][hdp] accumulators of a kv head */
    real *probs, *dscores;              /* [QUERY_BLOCK][Tp] */
    real *probs_t, *dscores_t;          /* [Tp][QUERY_BLOCK] */
    real *q_tile, *dout_tile, *out_tile; /* [QUERY_BLOCK][hdp]; out_tile is dq in backward */
} attention_scratch;

/* Fills w and returns the allocation to free. Every size is a multiple of
 * TILE_COLS (padded_T and padded_hd are), so every part is 64-byte aligned. */
static real *scratch_open(attention_scratch *w, const attention_shape *s) {
    const size_t panel = (size_t)s->hd * s->padded_T, rows = (size_t)s->padded_T * s->padded_hd;
    const size_t block = (size_t)QUERY_BLOCK * s->padded_T;
    const size_t tile = (size_t)QUERY_BLOCK * s->padded_hd;
    real **parts[] = {&w->keys_t, &w->values_t, &w->keys, &w->values, &w->dkeys, &w->dvalues,
                      &w->probs, &w->dscores, &w->probs_t, &w->dscores_t, &w->q_tile,
                      &w->dout_tile, &w->out_tile};
    const size_t sizes[] = {panel, panel, rows, rows, rows, rows, block, block, block, block,
                            tile, tile, tile};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) total += sizes[i];
    real *memory = CPU_FN(scratch)(total), *next = memory;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        *parts[i] = next;
        next += sizes[i];
    }
    return memory;
}

void CPU_FN(attention_forward)(void *out_, void *lse_, const void *qkv_,
                               const attention_documents *documents, int B, int T, int H, int KV,
                               int hd) {
    const int32_t *doc_start = documents ? documents->doc_start : NULL;
    real *out = out_, *lse = lse_;
    const real *qkv = qkv_;
    const attention_shape s = shape_of(B, T, H, KV, hd);
    const int Tp = s.padded_T, hdp = s.padded_hd, group = H / KV;
#pragma omp parallel
    {
        attention_scratch w;
        real *memory = scratch_open(&w, &s);
#pragma omp for schedule(static)
        for (int task = 0; task < B * H; task++) {
            int b = task / H, h = task % H, kv = h / group;
            const int32_t *docs = doc_start ? doc_start + (size_t)b * T : NULL;
            const real *q = qkv + head_at(&s, b, h);
            real *o = out + (size_t)b * T * s.out_row + (size_t)h * hd;
            real *head_lse = lse + ((size_t)b * H + h) * T;
            transpose_head(w.keys_t, qkv + head_at(&s, b, H + kv), &s);
            copy_head(w.values, qkv + head_at(&s, b, H + KV + kv), &s);
            for (int t0 = 0; t0 < T; t0 += QUERY_BLOCK) {
                int rows = T - t0 < QUERY_BLOCK ? T - t0 : QUERY_BLOCK, lo, hi;
                block_keys(docs, t0, rows, &lo, &hi);
                load_tile(w.q_tile, q + t0 * s.row, s.row, rows, s.scale, &s);
                block_multiply(w.probs + lo, Tp, w.q_tile, hdp, w.keys_t + lo, Tp, hd, hi - lo,
                               rows);
                for (int r = 0; r < rows; r++) {
                    real *p = w.probs + (size_t)r * Tp;
                    int t = t0 + r, start = first_key(docs, t), end = t + 1;
                    real max = CPU_FN(max)(p + start, (size_t)(end - start));
                    double sum = 0;
                    for (int j = start; j < end; j++) {
                        p[j] = rexp(p[j] - max);
                        sum += p[j];
                    }
                    real inverse = (real)(1.0 / sum);
                    for (int j = lo; j < hi; j++) p[j] = j >= start && j < end ? p[j] * inverse : 0;
                    head_lse[t] = (real)((double)max + log(sum));
                }
                block_multiply(w.out_tile, hdp, w.probs + lo, Tp, w.values + (size_t)lo * hdp,
                               hdp, hi - lo, hdp, rows);
                store_tile(o + t0 * s.out_row, s.out_row, w.out_tile, rows, 1, &s);
            }
        }
        CPU_FN(free)(memory);
    }
}

/* One block of QUERY_BLOCK queries of query head h against its key range:
 * dq written, dk and dv accumulated into the scratch accumulators. */
static void backward_block(real *dq, const real *q, const real *dout, const real *out,
                           const real *head_lse, const int32_t *docs, int t0,
                           const attention_shape *s, attention_scratch *w) {
    const int Tp = s->padded_T, hdp = s->padded_hd, hd = s->hd;
    int rows = s->T - t0 < QUERY_BLOCK ? s->T - t0 : QUERY_BLOCK, lo, hi;
    block_keys(docs, t0, rows, &lo, &hi);
    load_tile(w->q_tile, q + t0 * s->row, s->row, rows, s->scale, s);
    load_tile(w->dout_tile, dout + t0 * s->out_row, s->out_row, rows, 1, s);
    block_multiply(w->probs + lo, Tp, w->q_tile, hdp, w->keys_t + lo, Tp, hd, hi - lo, rows);
    block_multiply(w->dscores + lo, Tp, w->dout_tile, hdp, w->values_t + lo, Tp, hd, hi - lo,
                   rows);
    for (int r = 0; r < QUERY_BLOCK; r++) {
        real *p = w->probs + (size_t)r * Tp, *ds = w->dscores + (size_t)r * Tp;
        int t = t0 + r, start = r < rows ? first_key(docs, t) : hi, end = r < rows ? t + 1 : hi;
        real lse = r < rows ? head_lse[t] : 0;
        /* D = Σ_j p_j dp_j = dout · out */
        real D = r < rows ? (real)CPU_FN(dot)(dout + (size_t)t * s->out_row,
                                               out + (size_t)t * s->out_row, (size_t)hd)
                          : 0;
        for (int j = lo; j < hi; j++) {
            real pj = j >= start && j < end ? rexp(p[j] - lse) : 0;
            p[j] = pj;
            ds[j] = pj * (ds[j] - D);
        }
    }
    block_multiply(w->out_tile, hdp, w->dscores + lo, Tp, w->keys + (size_t)lo * hdp, hdp,
                   hi - lo, hdp, rows);
    store_tile(dq + t0 * s->row, s->row, w->out_tile, rows, s->scale, s);
    for (int j = lo; j < hi; j++)
        for (int r = 0; r < QUERY_BLOCK; r++) {
            w->dscores_t[(size_t)j * QUERY_BLOCK + r] = w->dscores[(size_t)r * Tp + j];
            w->probs_t[(size_t)j * QUERY_BLOCK + r] = w->probs[(size_t)r * Tp + j];
        }
    /* dk_j += Σ_r ds_rj (scale q_r); dv_j += Σ_r p_rj dout_r; TILE_ROWS keys per call */
    for (int j = lo; j < hi; j += TILE_ROWS) {
        CPU_FN(tile_multiply)(w->dkeys + (size_t)j * hdp, hdp,
                              w->dscores_t + (size_t)j * QUERY_BLOCK, QUERY_BLOCK, w->q_tile, hdp,
                              QUERY_BLOCK, hdp, 1);
        CPU_FN(tile_multiply)(w->dvalues + (size_t)j * hdp, hdp,
                              w->probs_t + (size_t)j * QUERY_BLOCK, QUERY_BLOCK, w->dout_tile,
                              hdp, QUERY_BLOCK, hdp, 1);
    }
}

void CPU_FN(attention_backward)(void *dqkv_, const void *dout_, const void *qkv_,
                                const void *out_, const void *lse_,
                                const attention_documents *documents, int B, int T, int H, int KV,
                                int hd) {
    const int32_t *doc_start = documents ? documents->doc_start : NULL;
    real *dqkv = dqkv_;
    const real *dout = dout_, *qkv = qkv_, *out = out_, *lse = lse_;
    const attention_shape s = shape_of(B, T, H, KV, hd);
    const int Tp = s.padded_T, hdp = s.padded_hd, group = H / KV;
#pragma omp parallel
    {
        attention_scratch w;
        real *memory = scratch_open(&w, &s);
#pragma omp for schedule(static)
        for (int task = 0; task < B * KV; task++) {
            int b = task / KV, kv = task % KV;
            const int32_t *docs = doc_start ? doc_start + (size_t)b * T : NULL;
            const real *k = qkv + head_at(&s, b, H + kv), *v = qkv + head_at(&s, b, H + KV + kv);
            transpose_head(w.keys_t, k, &s);
            transpose_head(w.values_t, v, &s);
            copy_head(w.keys, k, &s);
            memset(w.dkeys, 0, (size_t)Tp * hdp * sizeof(real));
            memset(w.dvalues, 0, (size_t)Tp * hdp * sizeof(real));
            for (int h = kv * group; h < (kv + 1) * group; h++) {
                size_t out_at = (size_t)b * T * s.out_row + (size_t)h * hd;
                real *dq = dqkv + head_at(&s, b, h);
                for (int t0 = 0; t0 < T; t0 += QUERY_BLOCK)
                    backward_block(dq, qkv + head_at(&s, b, h), dout + out_at, out + out_at,
                                   lse + ((size_t)b * H + h) * T, docs, t0, &s, &w);
            }
            real *dk = dqkv + head_at(&s, b, H + kv);
            real *dv = dqkv + head_at(&s, b, H + KV + kv);
            for (int j = 0; j < T; j++) {
                memcpy(dk + j * s.row, w.dkeys + (size_t)j * hdp, (size_t)hd * sizeof(real));
                memcpy(dv + j * s.row, w.dvalues + (size_t)j * hdp, (size_t)hd * sizeof(real));
            }
        }
        CPU_FN(free)(memory);
    }
}
