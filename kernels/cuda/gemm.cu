/* Linear layers through cuBLASLt: bf16 operands, fp32 compute. The weight
 * gradient is accumulated straight into the fp32 master-typed dweight (C = D
 * in fp32, beta = 1). Row-major [rows][cols] buffers are read by cuBLASLt as
 * column-major [cols][rows], so out = inp · weightᵀ becomes outᵀ = weight' · inpᵀ.
 *
 * Matmul descriptors, layouts and the heuristic's algorithm are cached per
 * shape, alignment and epilogue; the bias and aux pointers are set on the
 * cached descriptor at each call, which is safe because cuBLASLt reads them
 * when the call is enqueued.
 * The token-row dimension is cached by bucket (four per octave), not exactly:
 * a routed expert's row count changes with every layer and step, and asking
 * cuBLASLt's heuristic anew for each (tens to hundreds of microseconds on the
 * host, and evicting the dense layers' plans) would starve the GPU. A plan
 * serves any row count of its bucket: the layouts take the exact count at the
 * call, and the algorithm is checked for it once per change of count (the
 * heuristic runs for the exact shape in the rare case the check fails).
 *
 * matmul_gelu_forward and matmul_gelu_backward fold GPT-2's GELU into the GEMM
 * (CUBLASLT_EPILOGUE_GELU_AUX[_BIAS], which also writes the pre-activation, and
 * CUBLASLT_EPILOGUE_DGELU, which multiplies by GELU's derivative at it), saving
 * passes over the N × F hidden activations. cuBLASLt's GELU is the tanh
 * approximation, as gelu_forward here. NVIDIA does not write the formula down
 * (cublasLt.h says "GELU"); the evidence: PyTorch's _addmm_activation runs
 * gelu(x, "tanh") where it cannot use this epilogue (its cuda/Blas.cpp), SGLang
 * measured the epilogue 5.5e-6 from tanh's GELU and 4.7e-4 from erf's
 * (github.com/sgl-project/sglang/pull/28166), and tests/gpu/test_ops_cuda.c
 * checks it where the two differ by 6-30 %. Where the epilogue cannot run
 * (switched off, the pre-activation not 16-byte aligned or its row length not a
 * multiple of 8 as cublasLt.h asks of EPILOGUE_AUX_LD, an unaligned bias, no
 * algorithm from the heuristic, or cuBLASLt refusing the call) the ops run the
 * plain GEMM and the GELU kernels, which give the same results up to bf16
 * rounding. */
#include <stdio.h>
#include <string.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/gelu_epilogue.h"

/* Which of n and k counts token rows (the dimension cached by bucket). */
typedef enum { ROWS_ARE_N, ROWS_ARE_K } rows_dimension;

/* The epilogue besides the optional bias. GELU_AUX: D = gelu(product + bias) and aux = product +
 * bias; DGELU: D = product ⊙ gelu'(aux). aux (bf16, cuBLASLt's default: D's type) has D's shape
 * and leading dimension. */
typedef enum { EPILOGUE_PLAIN, EPILOGUE_GELU_AUX, EPILOGUE_DGELU } epilogue_kind;

typedef struct gemm_key {
    int transa, transb;
    int m, n, k; /* the rows dimension holds its bucket */
    int rows_are;
    int lda, ldb, ldd;
    int d_is_float;
    int bias;
    int epilogue; /* epilogue_kind */
    int align_a, align_b, align_d, align_aux, align_bias;
} gemm_key;

typedef struct gemm_plan {
    gemm_key key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
    int rows;            /* the row count the layouts and the algorithm hold now */
    int refused;         /* an epilogue cuBLASLt has no algorithm for: callers run it unfused */
    cublasStatus_t refusal; /* the heuristic's status then (success: it found none) */
    uint64_t last_used;  /* for eviction of the least recently used plan */
} gemm_plan;

enum { GEMM_PLANS = 256 };
/* Part of the backend's process-wide state (see cuda_common.cuh). */
static gemm_plan gemm_plans[GEMM_PLANS];
static int gemm_plan_count;
static uint64_t gemm_calls;

/* The bucket of a row count: rounded up to a multiple of a quarter of its power of two
 * (16384 and 4096 stay, 1000 -> 1024, 2817 -> 3072), so a bucket overshoots by < 25 %. */
static int rows_bucket(int rows) {
    if (rows <= 64) return 64;
    int step = 1;
    while (step * 8 <= rows) step *= 2;
    return (rows + step - 1) / step * step;
}

static int pointer_alignment(const void *p) {
    int align = 256;
    while (align > 1 && !cuda_aligned(p, (size_t)align)) align /= 2;
    return align;
}

static void plan_destroy(gemm_plan *plan) {
    cublasLtMatmulDescDestroy(plan->desc);
    cublasLtMatrixLayoutDestroy(plan->a);
    cublasLtMatrixLayoutDestroy(plan->b);
    cublasLtMatrixLayoutDestroy(plan->d);
}

static int choose_algorithm(gemm_plan *plan);

static cublasLtEpilogue_t epilogue_of(const gemm_key *key) {
    switch (key->epilogue) {
    case EPILOGUE_GELU_AUX:
        return key->bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
    case EPILOGUE_DGELU: return CUBLASLT_EPILOGUE_DGELU;
    default: return key->bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    }
}

/* aux and bias: the first call's, whose alignments the heuristic reads from the pointers
 * (cublasLt.h: routines that do not dereference them "depend on its value to determine expected
 * pointer alignment") */
static void plan_create(gemm_plan *plan, const gemm_key *key, const void *aux, const void *bias) {
    plan->key = *key;
    plan->refusal = CUBLAS_STATUS_SUCCESS;
    cublasOperation_t opa = key->transa ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = key->transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa,
                                                sizeof opa));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb,
                                                sizeof opb));
    cublasLtEpilogue_t epilogue = epilogue_of(key);
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                &epilogue, sizeof epilogue));
    if (key->bias) {
        int32_t bias_type = CUDA_R_16BF;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            plan->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    }
    if (key->epilogue != EPILOGUE_PLAIN) {
        int64_t aux_ld = key->ldd;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux));
    }
    /* stored (pre-transpose) shapes, column-major */
    int a_rows = key->transa ? key->k : key->m, a_cols = key->transa ? key->m : key->k;
    int b_rows = key->transb ? key->n : key->k, b_cols = key->transb ? key->k : key->n;
    cudaDataType_t d_type = key->d_is_float ? CUDA_R_32F : CUDA_R_16BF;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, CUDA_R_16BF, a_rows, a_cols, key->lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, CUDA_R_16BF, b_rows, b_cols, key->ldb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->d, d_type, key->m, key->n, key->ldd));

    plan->rows = key->rows_are == ROWS_ARE_N ? key->n : key->k;
    plan->refused = !choose_algorithm(plan);
}

/* The heuristic's best algorithm for the plan's layouts as they are now. 0 when it has none for
 * an epilogue (GELU or bias: the caller runs the GEMM and the epilogue apart); for the plain GEMM
 * none is fatal. */
static int choose_algorithm(gemm_plan *plan) {
    cuda_backend *state = cuda_backend_state();
    const gemm_key *key = &plan->key;
    cublasLtMatmulPreference_t preference;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
    uint64_t workspace = state->lt_workspace_bytes;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace));
    uint32_t align_a = key->align_a, align_b = key->align_b, align_d = key->align_d;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof align_a));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof align_b));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d, sizeof align_d));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof align_d));
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
        state->lt, plan->desc, plan->a, plan->b, plan->d, plan->d, preference, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(preference);
    if (key->epilogue == EPILOGUE_PLAIN && !key->bias) {
        cublas_check(status, "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__);
        if (found == 0)
            cublas_check(CUBLAS_STATUS_NOT_SUPPORTED,
                         "cublasLtMatmulAlgoGetHeuristic (no algorithm)", __FILE__, __LINE__);
    }
    /* some versions answer a configuration they have no kernel for with NOT_SUPPORTED */
    if (status != CUBLAS_STATUS_SUCCESS || found == 0) {
        plan->refusal = status;
        return 0;
    }
    plan->algo = result.algo;
    return 1;
}

static gemm_plan *plan_for(const gemm_key *key, const void *aux, const void *bias) {
    gemm_calls++;
    for (int i = 0; i < gemm_plan_count; i++)
        if (memcmp(&gemm_plans[i].key, key, sizeof *key) == 0) {
            gemm_plans[i].last_used = gemm_calls;
            return &gemm_plans[i];
        }
    gemm_plan *plan;
    if (gemm_plan_count < GEMM_PLANS) {
        plan = &gemm_plans[gemm_plan_count++];
    } else {
        plan = &gemm_plans[0];
        for (int i = 1; i < GEMM_PLANS; i++)
            if (gemm_plans[i].last_used < plan->last_used) plan = &gemm_plans[i];
        plan_destroy(plan);
    }
    plan_create(plan, key, aux, bias);
    plan->last_used = gemm_calls;
    return plan;
}

static void set_layout_size(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t which,
                            int value) {
    uint64_t size = (uint64_t)value;
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, which, &size, sizeof size));
}

/* Gives the plan's layouts the exact row count and makes sure the algorithm runs it; 0 when the
 * plan has an epilogue and no algorithm (then it keeps none: its bucket runs unfused). The
 * layouts are stored pre-transpose and column-major: n is D's columns and B's columns (B's rows
 * when transposed); k is A's columns (rows when transposed) and B's rows (columns when
 * transposed). */
static int plan_take_rows(gemm_plan *plan, int rows) {
    if (plan->refused) return 0;
    if (plan->rows == rows) return 1;
    const gemm_key *key = &plan->key;
    const cublasLtMatrixLayoutAttribute_t rows_of = CUBLASLT_MATRIX_LAYOUT_ROWS,
                                          columns_of = CUBLASLT_MATRIX_LAYOUT_COLS;
    if (key->rows_are == ROWS_ARE_N) {
        set_layout_size(plan->d, columns_of, rows);
        set_layout_size(plan->b, key->transb ? rows_of : columns_of, rows);
    } else {
        set_layout_size(plan->a, key->transa ? rows_of : columns_of, rows);
        set_layout_size(plan->b, key->transb ? columns_of : rows_of, rows);
    }
    plan->rows = rows;
    cuda_backend *state = cuda_backend_state();
    cublasLtMatmulHeuristicResult_t check;
    cublasStatus_t status = cublasLtMatmulAlgoCheck(state->lt, plan->desc, plan->a, plan->b,
                                                    plan->d, plan->d, &plan->algo, &check);
    if (status != CUBLAS_STATUS_SUCCESS || check.workspaceSize > state->lt_workspace_bytes)
        plan->refused = !choose_algorithm(plan);
    return !plan->refused;
}

/* Said once per epilogue and process: the plan of an epilogue cuBLASLt would not run keeps its
 * refusal, so that shape runs unfused from then on. Epilogue plans count rows in n. */
static void note_refusal(const gemm_key *key, int rows, const char *why) {
    static const char *const names[] = {"bias", "GELU forward", "GELU backward"};
    cuda_backend *state = cuda_backend_state();
    int bit = 1 << key->epilogue;
    if (state->gemm_notes & bit) return;
    state->gemm_notes |= bit;
    fprintf(stderr,
            "cuda: cuBLASLt runs no %s epilogue for m %d n %d k %d%s (%s); that shape runs "
            "the GEMM and the %s apart\n",
            names[key->epilogue], key->m, rows, key->k,
            key->bias && key->epilogue != EPILOGUE_PLAIN ? " with bias" : "", why,
            key->epilogue == EPILOGUE_PLAIN ? "bias" : "GELU");
}

/* Said once per row length (for the first few): operands whose rows are not a multiple of 8
 * bf16 (16 bytes) keep cuBLASLt off its tensor-core kernels that load 16 bytes at a time. In
 * practice that is the output layer of a vocabulary such as GPT-2's 50257, which llm.c and
 * nanoGPT pad to 50304 (a MoE router's expert count can come first, so one note is not enough). */
static void note_unaligned_rows(int m, int n, int k, int lda, int ldb, int ldd) {
    cuda_backend *state = cuda_backend_state();
    int ld = lda % 8 ? lda : ldb % 8 ? ldb : ldd;
    const int most = (int)(sizeof state->unaligned_noted / sizeof *state->unaligned_noted);
    for (int i = 0; i < state->unaligned_notes; i++)
        if (state->unaligned_noted[i] == ld) return;
    if (state->unaligned_notes == most) return;
    state->unaligned_noted[state->unaligned_notes++] = ld;
    fprintf(stderr,
            "cuda: a GEMM (m %d n %d k %d) has rows of %d elements, not a multiple of 8: cuBLASLt "
            "runs it on slower kernels; if it is the output layer, a model.vocab rounded up to a "
            "multiple of 64 avoids it (e.g. 50304 for GPT-2's 50257 tokens)\n",
            m, n, k, ld);
}

/* D[m][n] (column-major) = op(A) · op(B) + beta · D, optionally + bias[m], through `epilogue`
 * with aux (NULL for EPILOGUE_PLAIN); `rows_are` names the dimension that counts token rows.
 * 0 when cuBLASLt has no algorithm for or refuses a GELU or bias epilogue (nothing was written);
 * the plain GEMM always runs. No rows: nothing to write (and D += 0 for beta 1). */
static int gemm_epilogue(void *d, const void *a, const void *b, const void *bias,
                         epilogue_kind epilogue, const void *aux, int transa, int transb, int m,
                         int n, int k, rows_dimension rows_are, int lda, int ldb, int ldd,
                         int d_is_float, float beta) {
    int rows = rows_are == ROWS_ARE_N ? n : k;
    if (rows == 0) return 1;
    if ((lda | ldb | ldd) % 8) note_unaligned_rows(m, n, k, lda, ldb, ldd);
    gemm_key key;
    memset(&key, 0, sizeof key); /* the key is compared bytewise */
    key.transa = transa;
    key.transb = transb;
    key.m = m;
    key.n = rows_are == ROWS_ARE_N ? rows_bucket(n) : n;
    key.k = rows_are == ROWS_ARE_K ? rows_bucket(k) : k;
    key.rows_are = rows_are;
    key.lda = lda;
    key.ldb = ldb;
    key.ldd = ldd;
    key.d_is_float = d_is_float;
    key.bias = bias != NULL;
    key.epilogue = epilogue;
    key.align_a = pointer_alignment(a);
    key.align_b = pointer_alignment(b);
    key.align_d = pointer_alignment(d);
    key.align_aux = aux ? pointer_alignment(aux) : 0;
    key.align_bias = bias ? pointer_alignment(bias) : 0;
    gemm_plan *plan = plan_for(&key, aux, bias);
    /* before plan_take_rows: its check of the algorithm reads their alignments */
    if (aux)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux));
    if (bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    if (!plan_take_rows(plan, rows)) {
        note_refusal(&key, rows,
                     plan->refusal == CUBLAS_STATUS_SUCCESS
                         ? "no algorithm"
                         : cublasLtGetStatusString(plan->refusal));
        return 0;
    }
    cuda_backend *state = cuda_backend_state();
    float alpha = 1.0f;
    cublasStatus_t status = cublasLtMatmul(state->lt, plan->desc, &alpha, a, plan->a, b, plan->b,
                                           &beta, d, plan->d, d, plan->d, &plan->algo,
                                           state->lt_workspace, state->lt_workspace_bytes, 0);
    /* these come from cuBLASLt's checks of the call, before it launches: nothing was written */
    if ((epilogue != EPILOGUE_PLAIN || bias) &&
        (status == CUBLAS_STATUS_NOT_SUPPORTED || status == CUBLAS_STATUS_INVALID_VALUE)) {
        plan->refused = 1;
        note_refusal(&key, rows, cublasLtGetStatusString(status));
        return 0;
    }
    cublas_check(status, "cublasLtMatmul", __FILE__, __LINE__);
    return 1;
}

/* 0 only when a bias epilogue was refused (nothing was written) */
static int gemm(void *d, const void *a, const void *b, const void *bias, int transa, int transb,
                int m, int n, int k, rows_dimension rows_are, int lda, int ldb, int ldd,
                int d_is_float, float beta) {
    return gemm_epilogue(d, a, b, bias, EPILOGUE_PLAIN, NULL, transa, transb, m, n, k, rows_are,
                         lda, ldb, ldd, d_is_float, beta);
}

/* out[n][oc] += bias[oc]: used when the bias epilogue cannot run (an unaligned bias, or cuBLASLt
 * refusing it) */
__global__ void add_bias_kernel(bf16 *out, const bf16 *bias, int N, int OC) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * OC) return;
    int oc = (int)(i % OC);
    out[i] = __float2bfloat16(__bfloat162float(out[i]) + __bfloat162float(bias[oc]));
}

void cuda_matmul_forward(void *out, const void *inp, const void *weight, const void *bias, int N,
                         int C, int OC) {
    int fused_bias = bias && cuda_aligned(bias, 16) &&
                     gemm(out, weight, inp, bias, 1, 0, OC, N, C, ROWS_ARE_N, C, C, OC, 0, 0.0f);
    if (!fused_bias) gemm(out, weight, inp, NULL, 1, 0, OC, N, C, ROWS_ARE_N, C, C, OC, 0, 0.0f);
    if (bias && !fused_bias) {
        size_t n = (size_t)N * OC;
        add_bias_kernel<<<cuda_blocks(n, 256), 256>>>((bf16 *)out, (const bf16 *)bias, N, OC);
        CUDA_CHECK_LAUNCH();
    }
}

/* partials[g][c] = Σ over rows of group g of dout[row][c] */
__global__ void column_sum_partials_kernel(float *partials, const bf16 *dout, int N, int OC,
                                           int rows_per_group) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int group = blockIdx.y;
    if (c >= OC) return;
    int begin = group * rows_per_group;
    int end = min(N, begin + rows_per_group);
    float sum = 0.0f;
    for (int row = begin; row < end; row++) sum += __bfloat162float(dout[(size_t)row * OC + c]);
    partials[(size_t)group * OC + c] = sum;
}

__global__ void add_partials_kernel(float *dst, const float *partials, int groups, int columns) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= columns) return;
    float sum = 0.0f;
    for (int g = 0; g < groups; g++) sum += partials[(size_t)g * columns + c];
    dst[c] += sum;
}

void cuda_add_partials(float *dst, const float *partials, int groups, int columns) {
    add_partials_kernel<<<cuda_blocks(columns, 256), 256>>>(dst, partials, groups, columns);
    CUDA_CHECK_LAUNCH();
}

void cuda_matmul_backward(void *dinp, void *dweight, void *dbias, const void *dout,
                          const void *inp, const void *weight, int N, int C, int OC) {
    if (dinp) gemm(dinp, weight, dout, NULL, 0, 0, C, N, OC, ROWS_ARE_N, C, OC, C, 0, 0.0f);
    gemm(dweight, inp, dout, NULL, 0, 1, C, OC, N, ROWS_ARE_K, C, OC, C, 1, 1.0f);
    if (dbias) {
        int groups = cuda_row_groups(N);
        int rows_per_group = (N + groups - 1) / groups;
        float *partials = (float *)cuda_scratch((size_t)groups * OC * sizeof(float));
        dim3 grid(cuda_blocks(OC, 256), groups);
        column_sum_partials_kernel<<<grid, 256>>>(partials, (const bf16 *)dout, N, OC,
                                                   rows_per_group);
        CUDA_CHECK_LAUNCH();
        cuda_add_partials((float *)dbias, partials, groups, OC);
    }
}

/* ---- GELU in the epilogue ---- */

int cuda_gelu_epilogue_read_environment(cuda_backend *state, char *why, size_t why_size) {
    static const char *const values[] = {"on", "off"}; /* index 1: gelu_epilogue_off */
    return cuda_environment_choice("CAIRN_CUDA_GELU_EPILOGUE", values, 2,
                                   &state->gelu_epilogue_off, why, why_size);
}

extern "C" void cuda_gelu_epilogue_allow(int allow) {
    cuda_backend_state()->gelu_epilogue_off = !allow;
}

extern "C" int cuda_gelu_epilogue_ran(int backward) {
    return cuda_backend_state()->gelu_epilogue_ran[backward ? 1 : 0];
}

/* 1 when the epilogue may be tried: `ld` (aux's row length) a multiple of 8, as cublasLt.h asks of
 * EPILOGUE_AUX_LD, and aux and bias 16-byte aligned, the bias epilogue's rule here (llm.c asks it
 * of every cuBLASLt pointer); the heuristic has the last word. */
static int gelu_epilogue_may_run(const void *aux, int ld, const void *bias) {
    return !cuda_backend_state()->gelu_epilogue_off && cuda_aligned(aux, 16) && ld % 8 == 0 &&
           (!bias || cuda_aligned(bias, 16));
}

void cuda_matmul_gelu_forward(void *out, void *pre, const void *inp, const void *weight,
                              const void *bias, int N, int C, int OC) {
    int fused = gelu_epilogue_may_run(pre, OC, bias) &&
                gemm_epilogue(out, weight, inp, bias, EPILOGUE_GELU_AUX, pre, 1, 0, OC, N, C,
                              ROWS_ARE_N, C, C, OC, 0, 0.0f);
    if (!fused) {
        cuda_matmul_forward(pre, inp, weight, bias, N, C, OC);
        cuda_gelu_forward(out, pre, (size_t)N * OC);
    }
    cuda_backend_state()->gelu_epilogue_ran[0] = fused;
}

void cuda_matmul_gelu_backward(void *dinp_pre, void *dweight, void *dbias, const void *dout,
                               const void *inp, const void *weight, const void *pre, int N, int C,
                               int OC) {
    int fused = gelu_epilogue_may_run(pre, C, NULL) &&
                gemm_epilogue(dinp_pre, weight, dout, NULL, EPILOGUE_DGELU, pre, 0, 0, C, N, OC,
                              ROWS_ARE_N, C, OC, C, 0, 0.0f);
    cuda_matmul_backward(fused ? NULL : dinp_pre, dweight, dbias, dout, inp, weight, N, C, OC);
    if (!fused) cuda_gelu_backward(dinp_pre, dinp_pre, pre, (size_t)N * C);
    cuda_backend_state()->gelu_epilogue_ran[1] = fused;
}
