/* cuDNN's fused attention through the cudnn-frontend graph API: graphs,
 * their cache, the shared workspace, execution. Contract in
 * kernels/cuda/attention_cudnn.h.
 *
 * The tensors are strided views, no copies: Q, K, V and dQ, dK, dV are
 * [B, heads, T, hd] views into the qkv rows ([q heads | k heads | v heads] ×
 * hd, row = (H + 2KV)·hd elements), strides [T·row, hd, row, 1], starting at
 * head 0, H and H + KV. O and dO are [B, H, T, hd] with strides
 * [T·H·hd, hd, H·hd, 1]; the stats [B, H, T, 1] fp32, contiguous.
 *
 * With per-document masks the batch dimension counts documents (a power-of-two
 * bucket of them), each a [heads, T, hd] view starting at its first token
 * through a ragged offset (elements, int64); its length, the rest of T being
 * padding, comes with the padding mask. The statistics are cuDNN's ragged
 * ones, token-major ([token][H], strides [H·T, 1, H, 1]), in the scratch
 * buffer, and transposed from and to lse's [B][H][T] around the calls. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <array>
#include <exception>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>

#include <cudnn_frontend.h>

#include "kernels/cuda/attention_cudnn.h"
#include "kernels/cuda/cuda_common.cuh"

/* The frontend's graph code carries an NVRTC-compiled engine (RMSNorm + SiLU, tried only under
 * HeurMode_t::OPENSOURCE, which these graphs never ask for). Weak references to its NVRTC calls
 * keep libnvrtc out of what the binary needs to start; a new reference fails the link. */
#pragma weak nvrtcCreateProgram
#pragma weak nvrtcCompileProgram
#pragma weak nvrtcDestroyProgram
#pragma weak nvrtcGetProgramLogSize
#pragma weak nvrtcGetProgramLog
#pragma weak nvrtcGetCUBINSize
#pragma weak nvrtcGetCUBIN

namespace fe = cudnn_frontend;

typedef std::shared_ptr<fe::graph::Graph> graph_ptr;
typedef std::unordered_map<fe::graph::Tensor_attributes::uid_t, void *> variant_pack;

/* Above this workspace the backward gives up bit-reproducibility: cuDNN's
 * deterministic backward keeps a bf16 dP buffer of B·H·T² elements (Hopper),
 * 4 GiB for llama-1b at B4 × T4096, where the other one accumulates dQ in an
 * fp32 buffer of B·H·T·hd elements (128 MiB there). With per-document masks
 * the buffers follow dQ, dK and dV's strides (the whole qkv row per token):
 * the frontend's fp32 dQ and full-head dK, dV take about 1.8 GB at that
 * shape, and the deterministic one counts each document as a whole T. */
static const int64_t DETERMINISTIC_WORKSPACE_LIMIT = (int64_t)1 << 30;

/* Ragged statistics (token-major) came with cuDNN 9.6. */
static const size_t RAGGED_CUDNN_VERSION = 90600;

enum tensor_uid : int64_t {
    Q_UID = 1,
    K_UID,
    V_UID,
    O_UID,
    STATS_UID,
    DO_UID,
    DQ_UID,
    DK_UID,
    DV_UID,
    QKV_OFFSETS_UID, /* per-document offsets: qkv and dqkv rows */
    OUT_OFFSETS_UID, /* out and dout rows */
    STATS_OFFSETS_UID,
    LENGTHS_Q_UID, /* per-document lengths, as the queries' and the keys' padding */
    LENGTHS_KV_UID
};

/* A graph's shape: the call's, and the bucket of its document count (0: no
 * per-document masks). */
struct graph_shape : attention_shape {
    int documents;
};

struct cudnn_attention {
    cudnnHandle_t handle;
    char unavailable[256]; /* why there is no handle; empty when there is one */
    /* by {B, T, H, KV, hd, document bucket}; a null graph is a shape cuDNN refused */
    std::map<std::array<int, 6>, graph_ptr> forward, backward;
    void *workspace;
    size_t workspace_bytes;
};

/* ---- graphs ---- */

static graph_ptr new_graph(void) {
    graph_ptr graph = std::make_shared<fe::graph::Graph>();
    graph->set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    return graph;
}

typedef std::shared_ptr<fe::graph::Tensor_attributes> tensor_ptr;

/* The sequences of the batch dimension: B, or the documents' bucket */
static int64_t sequences(const graph_shape &s) { return s.documents ? s.documents : s.B; }

/* The per-document offsets or lengths of a graph with documents (NULL without) */
static tensor_ptr per_document(fe::graph::Graph &graph, const char *name, int64_t uid,
                               const graph_shape &s, int64_t entries, fe::DataType_t type) {
    if (!s.documents) return NULL;
    return graph.tensor(fe::graph::Tensor_attributes()
                            .set_name(name)
                            .set_uid(uid)
                            .set_dim({entries, 1, 1, 1})
                            .set_stride({1, 1, 1, 1})
                            .set_data_type(type));
}

static tensor_ptr document_offsets(fe::graph::Graph &graph, const char *name, int64_t uid,
                                   const graph_shape &s) {
    return per_document(graph, name, uid, s, s.documents + 1, fe::DataType_t::INT64);
}

/* `tensor` as the [sequences, heads, T, hd] view whose rows are `row` elements
 * apart, each sequence starting at its offset when there are documents */
static void head_view(fe::graph::Tensor_attributes &tensor, int64_t uid, const graph_shape &s,
                      int heads, int64_t row, const tensor_ptr &offsets) {
    tensor.set_uid(uid)
        .set_dim({sequences(s), heads, s.T, s.hd})
        .set_stride({(int64_t)s.T * row, s.hd, row, 1});
    if (offsets) tensor.set_ragged_offset(offsets);
}

static tensor_ptr head_input(fe::graph::Graph &graph, const char *name, int64_t uid,
                             const graph_shape &s, int heads, int64_t row,
                             const tensor_ptr &offsets) {
    auto tensor = graph.tensor(fe::graph::Tensor_attributes().set_name(name));
    head_view(*tensor, uid, s, heads, row, offsets);
    return tensor;
}

/* lse's [B, H, T, 1] layout, or with documents the ragged token-major one */
static void stats_view(fe::graph::Tensor_attributes &tensor, const graph_shape &s,
                       const tensor_ptr &offsets) {
    tensor.set_uid(STATS_UID).set_data_type(fe::DataType_t::FLOAT);
    tensor.set_dim({sequences(s), s.H, s.T, 1});
    if (!offsets) {
        tensor.set_stride({(int64_t)s.H * s.T, s.T, 1, 1});
        return;
    }
    tensor.set_stride({(int64_t)s.H * s.T, 1, s.H, 1}).set_ragged_offset(offsets);
}

/* The tensors of a graph with documents (all NULL without) */
struct document_tensors {
    tensor_ptr qkv_offsets, out_offsets, stats_offsets, lengths_q, lengths_kv;
};

static document_tensors document_inputs(fe::graph::Graph &graph, const graph_shape &s) {
    document_tensors d;
    d.qkv_offsets = document_offsets(graph, "qkv_offsets", QKV_OFFSETS_UID, s);
    d.out_offsets = document_offsets(graph, "out_offsets", OUT_OFFSETS_UID, s);
    d.stats_offsets = document_offsets(graph, "stats_offsets", STATS_OFFSETS_UID, s);
    d.lengths_q = per_document(graph, "lengths_q", LENGTHS_Q_UID, s, s.documents,
                               fe::DataType_t::INT32);
    d.lengths_kv = per_document(graph, "lengths_kv", LENGTHS_KV_UID, s, s.documents,
                                fe::DataType_t::INT32);
    return d;
}

/* Each document attends within itself: the padding mask cuts every sequence of the batch
 * dimension at its document's length. */
template <typename ATTRIBUTES>
static void document_masks(ATTRIBUTES &attributes, const document_tensors &d) {
    if (!d.lengths_q) return;
    attributes.set_padding_mask(true).set_seq_len_q(d.lengths_q).set_seq_len_kv(d.lengths_kv);
}

static int64_t qkv_row(const graph_shape &s) { return (int64_t)(s.H + 2 * s.KV) * s.hd; }

static float attention_scale(const graph_shape &s) { return 1.0f / sqrtf((float)s.hd); }

/* Causal: key j is visible to query t when j - t <= 0. With as many queries
 * as keys, top-left and bottom-right alignment are the same diagonal. */
template <typename ATTRIBUTES> static void causal(ATTRIBUTES &attributes) {
    attributes.set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
        .set_diagonal_band_right_bound(0);
}

/* "" for success, else the frontend's message (never empty) */
static std::string failure(fe::error_t status) {
    if (status.is_good()) return "";
    std::string message = status.get_message();
    return message.empty() ? "frontend error " + std::to_string((int)status.get_code()) : message;
}

/* validate, lower, pick cuDNN's heuristic plan and build it: "" or the reason */
static std::string build_plan(fe::graph::Graph &graph, cudnnHandle_t handle, int64_t *workspace) {
    std::string why = failure(graph.validate());
    if (why.empty()) why = failure(graph.build_operation_graph(handle));
    if (why.empty()) why = failure(graph.create_execution_plans({fe::HeurMode_t::A}));
    if (why.empty()) why = failure(graph.check_support());
    if (why.empty()) why = failure(graph.build_plans());
    if (why.empty()) why = failure(graph.get_workspace_size(*workspace));
    return why;
}

/* "" when this cuDNN runs graphs of shape s, else why not */
static std::string unsupported(const graph_shape &s) {
    size_t version = cudnnGetVersion();
    /* cuDNN's backward refuses s_q = s_kv = 1, and some versions leave ragged statistics of
     * one-token sequences unwritten for all but the first head of a kv group
     * (NVIDIA/cudnn-frontend#1083), which a flash backward would then read */
    if (s.documents && s.T < 2) return "per-document masks need T of 2 or more";
    if (s.documents && version < RAGGED_CUDNN_VERSION)
        return "per-document masks need cuDNN " + std::to_string(RAGGED_CUDNN_VERSION / 10000) +
               "." + std::to_string(RAGGED_CUDNN_VERSION / 100 % 100) + " or newer (this is " +
               std::to_string(version) + ")";
    return "";
}

static std::string build_forward(cudnnHandle_t handle, const graph_shape &s, graph_ptr *out,
                                 int64_t *workspace) {
    graph_ptr graph = new_graph();
    int64_t row = qkv_row(s);
    document_tensors d = document_inputs(*graph, s);
    auto q = head_input(*graph, "Q", Q_UID, s, s.H, row, d.qkv_offsets);
    auto k = head_input(*graph, "K", K_UID, s, s.KV, row, d.qkv_offsets);
    auto v = head_input(*graph, "V", V_UID, s, s.KV, row, d.qkv_offsets);
    auto attributes = fe::graph::SDPA_attributes()
                          .set_name("attention_forward")
                          .set_generate_stats(true)
                          .set_attn_scale(attention_scale(s));
    causal(attributes);
    document_masks(attributes, d);
    auto [o, stats] = graph->sdpa(q, k, v, attributes);
    head_view(*o, O_UID, s, s.H, (int64_t)s.H * s.hd, d.out_offsets);
    o->set_output(true);
    stats_view(*stats, s, d.stats_offsets);
    stats->set_output(true);
    std::string why = build_plan(*graph, handle, workspace);
    if (why.empty()) *out = graph;
    return why;
}

static std::string build_backward_graph(cudnnHandle_t handle, const graph_shape &s,
                                        bool deterministic, graph_ptr *out, int64_t *workspace) {
    graph_ptr graph = new_graph();
    int64_t row = qkv_row(s), out_row = (int64_t)s.H * s.hd;
    document_tensors d = document_inputs(*graph, s);
    auto q = head_input(*graph, "Q", Q_UID, s, s.H, row, d.qkv_offsets);
    auto k = head_input(*graph, "K", K_UID, s, s.KV, row, d.qkv_offsets);
    auto v = head_input(*graph, "V", V_UID, s, s.KV, row, d.qkv_offsets);
    auto o = head_input(*graph, "O", O_UID, s, s.H, out_row, d.out_offsets);
    auto dout = head_input(*graph, "dO", DO_UID, s, s.H, out_row, d.out_offsets);
    auto stats = graph->tensor(fe::graph::Tensor_attributes().set_name("stats"));
    stats_view(*stats, s, d.stats_offsets);
    auto attributes = fe::graph::SDPA_backward_attributes()
                          .set_name("attention_backward")
                          .set_attn_scale(attention_scale(s))
                          .set_deterministic_algorithm(deterministic);
    causal(attributes);
    document_masks(attributes, d);
    if (s.documents) {
        /* the real token count, not documents × T: it sizes the workspace */
        int64_t tokens = (int64_t)s.B * s.T;
        attributes.set_max_total_seq_len_q(tokens).set_max_total_seq_len_kv(tokens);
    }
    auto [dq, dk, dv] = graph->sdpa_backward(q, k, v, o, dout, stats, attributes);
    head_view(*dq, DQ_UID, s, s.H, row, d.qkv_offsets);
    head_view(*dk, DK_UID, s, s.KV, row, d.qkv_offsets);
    head_view(*dv, DV_UID, s, s.KV, row, d.qkv_offsets);
    dq->set_output(true);
    dk->set_output(true);
    dv->set_output(true);
    std::string why = build_plan(*graph, handle, workspace);
    if (why.empty()) *out = graph;
    return why;
}

static void describe(char *text, size_t size, const graph_shape &s) {
    int used = snprintf(text, size, "B%d T%d H%d KV%d hd%d", s.B, s.T, s.H, s.KV, s.hd);
    if (s.documents && used > 0 && (size_t)used < size)
        snprintf(text + used, size - (size_t)used, " with up to %d documents", s.documents);
}

/* The deterministic backward when it fits the limit, else the other one
 * (noted on stderr), else the deterministic one after all. */
static std::string build_backward(cudnnHandle_t handle, const graph_shape &s, graph_ptr *out,
                                  int64_t *workspace) {
    graph_ptr deterministic, other;
    int64_t deterministic_bytes = 0, other_bytes = 0;
    std::string refused =
        build_backward_graph(handle, s, true, &deterministic, &deterministic_bytes);
    if (refused.empty() && deterministic_bytes <= DETERMINISTIC_WORKSPACE_LIMIT) {
        *out = deterministic;
        *workspace = deterministic_bytes;
        return "";
    }
    std::string other_refused = build_backward_graph(handle, s, false, &other, &other_bytes);
    if (!other_refused.empty()) {
        if (!refused.empty())
            return "deterministic: " + refused + "; non-deterministic: " + other_refused;
        *out = deterministic;
        *workspace = deterministic_bytes;
        return "";
    }
    char shape[96];
    describe(shape, sizeof shape, s);
    if (refused.empty())
        fprintf(stderr,
                "cuda: cuDNN attention backward for %s is not deterministic: the deterministic "
                "algorithm needs %.1f GiB of workspace (limit %.0f GiB)\n",
                shape, (double)deterministic_bytes / (1 << 30),
                (double)DETERMINISTIC_WORKSPACE_LIMIT / (1 << 30));
    else
        fprintf(stderr,
                "cuda: cuDNN attention backward for %s is not deterministic: no deterministic "
                "algorithm (%s)\n",
                shape, refused.c_str());
    *out = other;
    *workspace = other_bytes;
    return "";
}

/* Grow the shared workspace to at least `bytes`: "" or the reason it could
 * not; a failure leaves the graphs built so far their workspace. The old
 * buffer is kept, not freed, as cuda_scratch's are (cuda_common.cuh): graphs
 * in flight may still use it, and cudaFree would wait for NCCL's streams too.
 * Graphs are built at their shape's first call, so this happens a few times
 * per run. */
static std::string reserve_workspace(cudnn_attention *state, int64_t bytes) {
    if ((size_t)bytes <= state->workspace_bytes) return "";
    void *grown = cuda_device_malloc((size_t)bytes);
    if (!grown) return "no device memory for its " + std::to_string(bytes) + "-byte workspace";
    state->workspace = grown;
    state->workspace_bytes = (size_t)bytes;
    return "";
}

typedef std::string (*graph_builder)(cudnnHandle_t, const graph_shape &, graph_ptr *,
                                     int64_t *);

/* The graph of `s` in `cache`, built at its first call; NULL when cuDNN
 * refuses the shape, reported on stderr at the first refusal. */
static fe::graph::Graph *cached_graph(cudnn_attention *state,
                                      std::map<std::array<int, 6>, graph_ptr> &cache,
                                      const char *direction, const graph_shape &s,
                                      graph_builder build) {
    std::array<int, 6> key = {s.B, s.T, s.H, s.KV, s.hd, s.documents};
    auto found = cache.find(key);
    if (found != cache.end()) return found->second.get();
    graph_ptr graph;
    std::string refused = state->unavailable;
    if (refused.empty()) {
        try {
            int64_t workspace = 0;
            refused = unsupported(s);
            if (refused.empty()) refused = build(state->handle, s, &graph, &workspace);
            if (refused.empty()) refused = reserve_workspace(state, workspace);
        } catch (const std::exception &e) {
            refused = std::string("exception: ") + e.what();
        }
        if (refused.empty() && !graph) refused = "no graph";
    }
    if (!refused.empty()) {
        graph.reset();
        /* a refusal may leave a non-sticky runtime error set, which the flash kernels' launch
         * check that follows would take for theirs */
        cudaGetLastError();
        char shape[96];
        describe(shape, sizeof shape, s);
        fprintf(stderr,
                "cuda: cuDNN attention unavailable for %s: %s: %s; using the flash kernels\n",
                shape, direction, refused.c_str());
    }
    try {
        cache.emplace(key, graph);
    } catch (const std::bad_alloc &) {
        return NULL; /* not cached: the next call of this shape tries (and reports) again */
    }
    return graph.get();
}

/* ---- execution ---- */

static void execute(cudnn_attention *state, fe::graph::Graph *graph, variant_pack &pack,
                    const char *what) {
    std::string failed;
    try {
        failed = failure(graph->execute(state->handle, pack, state->workspace));
    } catch (const std::exception &e) {
        failed = std::string("exception: ") + e.what();
    }
    if (!failed.empty()) {
        fprintf(stderr, "cuda: %s: cuDNN attention %s: %s\n", __FILE__, what, failed.c_str());
        abort();
    }
    CUDA_CHECK_LAUNCH();
}

cudnn_attention *cudnn_attention_create(void) {
    cudnn_attention *state = new (std::nothrow) cudnn_attention();
    if (!state) return NULL;
    /* a new handle runs on the legacy default stream, as every kernel of the backend does */
    cudnnStatus_t status = cudnnCreate(&state->handle);
    if (status != CUDNN_STATUS_SUCCESS) {
        state->handle = NULL;
        snprintf(state->unavailable, sizeof state->unavailable, "cudnnCreate: %s",
                 cudnnGetErrorString(status));
        cudaGetLastError(); /* a failed handle must not fail the next kernel's check */
    }
    return state;
}

/* ---- per-document layout ---- */

/* Entries 0..bucket of the offsets (elements) of each document's first token in the qkv rows,
 * the output rows and the token-major statistics, and entries 0..bucket-1 of the lengths, from
 * starts [count + 1]; entries past count are empty documents at the end. */
__global__ void document_layout_kernel(int64_t *qkv_offsets, int64_t *out_offsets,
                                       int64_t *stats_offsets, int32_t *lengths,
                                       const int32_t *starts, int count, int bucket, int64_t row,
                                       int64_t out_row, int H) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i > bucket) return;
    int64_t first = starts[i < count ? i : count];
    qkv_offsets[i] = first * row;
    out_offsets[i] = first * out_row;
    stats_offsets[i] = first * H;
    if (i < bucket) lengths[i] = i < count ? starts[i + 1] - starts[i] : 0;
}

/* lse [B][H][T] from the token-major stats [B·T][H] (to_lse) or the other way */
__global__ void transpose_stats_kernel(float *lse, float *stats, int T, int H, size_t total,
                                       int to_lse) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    size_t t = i % T, h = i / T % H, b = i / ((size_t)T * H);
    size_t token_major = (b * T + t) * H + h;
    if (to_lse) lse[i] = stats[token_major];
    else stats[token_major] = lse[i];
}

/* The device arrays of a call with documents, in the backend's scratch buffer */
struct document_layout {
    float *stats;
    int64_t *qkv_offsets, *out_offsets, *stats_offsets;
    int32_t *lengths;
};

static size_t align16(size_t bytes) { return (bytes + 15) / 16 * 16; }

static document_layout lay_out_documents(const graph_shape &s, const attention_documents *d) {
    size_t stats_bytes = align16((size_t)s.B * s.T * s.H * sizeof(float));
    size_t offset_bytes = align16((size_t)(s.documents + 1) * sizeof(int64_t));
    char *scratch = (char *)cuda_scratch(stats_bytes + 3 * offset_bytes +
                                         (size_t)s.documents * sizeof(int32_t));
    document_layout layout;
    layout.stats = (float *)scratch;
    layout.qkv_offsets = (int64_t *)(scratch + stats_bytes);
    layout.out_offsets = (int64_t *)(scratch + stats_bytes + offset_bytes);
    layout.stats_offsets = (int64_t *)(scratch + stats_bytes + 2 * offset_bytes);
    layout.lengths = (int32_t *)(scratch + stats_bytes + 3 * offset_bytes);
    document_layout_kernel<<<cuda_blocks((size_t)s.documents + 1, 256), 256>>>(
        layout.qkv_offsets, layout.out_offsets, layout.stats_offsets, layout.lengths, d->starts,
        d->count, s.documents, qkv_row(s), (int64_t)s.H * s.hd, s.H);
    CUDA_CHECK_LAUNCH();
    return layout;
}

static void transpose_stats(const graph_shape &s, float *lse, float *stats, int to_lse) {
    size_t total = (size_t)s.B * s.H * s.T;
    transpose_stats_kernel<<<cuda_blocks(total, 256), 256>>>(lse, stats, s.T, s.H, total, to_lse);
    CUDA_CHECK_LAUNCH();
}

/* The call's tensors with documents: the offsets, the lengths, and the statistics in scratch */
static void add_documents(variant_pack &pack, const document_layout &layout) {
    pack[STATS_UID] = layout.stats;
    pack[QKV_OFFSETS_UID] = layout.qkv_offsets;
    pack[OUT_OFFSETS_UID] = layout.out_offsets;
    pack[STATS_OFFSETS_UID] = layout.stats_offsets;
    pack[LENGTHS_Q_UID] = layout.lengths;
    pack[LENGTHS_KV_UID] = layout.lengths;
}

/* The graph shape of a call: documents go by the next power of two of their count, so a run
 * builds a few graphs, not one per count. */
static graph_shape shape_of(attention_shape s, const attention_documents *documents) {
    graph_shape g;
    static_cast<attention_shape &>(g) = s;
    g.documents = 0;
    if (documents) {
        g.documents = 1;
        while (g.documents < documents->count) g.documents *= 2;
    }
    return g;
}

/* ---- the calls ---- */

int cudnn_attention_forward(cudnn_attention *state, attention_shape shape,
                            const attention_documents *documents, void *out, void *lse,
                            const void *qkv) {
    graph_shape s = shape_of(shape, documents);
    fe::graph::Graph *graph = cached_graph(state, state->forward, "forward", s, build_forward);
    if (!graph) return -1;
    variant_pack pack = {{Q_UID, cuda_head_start(qkv, 0, s.hd)},
                         {K_UID, cuda_head_start(qkv, s.H, s.hd)},
                         {V_UID, cuda_head_start(qkv, s.H + s.KV, s.hd)},
                         {O_UID, out},
                         {STATS_UID, lse}};
    document_layout layout = {};
    if (documents) {
        layout = lay_out_documents(s, documents);
        add_documents(pack, layout);
    }
    execute(state, graph, pack, "forward");
    if (documents) transpose_stats(s, (float *)lse, layout.stats, 1);
    return 0;
}

int cudnn_attention_backward(cudnn_attention *state, attention_shape shape,
                             const attention_documents *documents, void *dqkv, const void *dout,
                             const void *qkv, const void *out, const void *lse) {
    graph_shape s = shape_of(shape, documents);
    fe::graph::Graph *graph = cached_graph(state, state->backward, "backward", s, build_backward);
    if (!graph) return -1;
    variant_pack pack = {{Q_UID, cuda_head_start(qkv, 0, s.hd)},
                         {K_UID, cuda_head_start(qkv, s.H, s.hd)},
                         {V_UID, cuda_head_start(qkv, s.H + s.KV, s.hd)},
                         {O_UID, const_cast<void *>(out)},
                         {DO_UID, const_cast<void *>(dout)},
                         {STATS_UID, const_cast<void *>(lse)},
                         {DQ_UID, cuda_head_start(dqkv, 0, s.hd)},
                         {DK_UID, cuda_head_start(dqkv, s.H, s.hd)},
                         {DV_UID, cuda_head_start(dqkv, s.H + s.KV, s.hd)}};
    if (documents) {
        document_layout layout = lay_out_documents(s, documents);
        transpose_stats(s, const_cast<float *>((const float *)lse), layout.stats, 0);
        add_documents(pack, layout);
    }
    execute(state, graph, pack, "backward");
    return 0;
}
