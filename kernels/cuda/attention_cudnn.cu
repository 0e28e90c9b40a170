/* cuDNN's fused attention through the cudnn-frontend graph API: graphs,
 * their cache, the shared workspace, execution. Contract in
 * kernels/cuda/attention_cudnn.h.
 *
 * The tensors are strided views, no copies: Q, K, V and dQ, dK, dV are
 * [B, heads, T, hd] views into the qkv rows ([q heads | k heads | v heads] ×
 * hd, row = (H + 2KV)·hd elements), strides [T·row, hd, row, 1], starting at
 * head 0, H and H + KV. O and dO are [B, H, T, hd] with strides
 * [T·H·hd, hd, H·hd, 1]; the stats [B, H, T, 1] fp32, contiguous. */
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
 * fp32 buffer of B·H·T·hd elements (128 MiB there). */
static const int64_t DETERMINISTIC_WORKSPACE_LIMIT = (int64_t)1 << 30;

enum tensor_uid : int64_t {
    Q_UID = 1,
    K_UID,
    V_UID,
    O_UID,
    STATS_UID,
    DO_UID,
    DQ_UID,
    DK_UID,
    DV_UID
};

struct cudnn_attention {
    cudnnHandle_t handle;
    char unavailable[256]; /* why there is no handle; empty when there is one */
    /* by {B, T, H, KV, hd}; a null graph is a shape cuDNN refused */
    std::map<std::array<int, 5>, graph_ptr> forward, backward;
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

/* `tensor` as the [B, heads, T, hd] view whose rows are `row` elements apart */
static void head_view(fe::graph::Tensor_attributes &tensor, int64_t uid, const attention_shape &s,
                      int heads, int64_t row) {
    tensor.set_uid(uid)
        .set_dim({s.B, heads, s.T, s.hd})
        .set_stride({(int64_t)s.T * row, s.hd, row, 1});
}

static std::shared_ptr<fe::graph::Tensor_attributes> head_input(fe::graph::Graph &graph,
                                                                const char *name, int64_t uid,
                                                                const attention_shape &s, int heads,
                                                                int64_t row) {
    auto tensor = graph.tensor(fe::graph::Tensor_attributes().set_name(name));
    head_view(*tensor, uid, s, heads, row);
    return tensor;
}

static void stats_view(fe::graph::Tensor_attributes &tensor, const attention_shape &s) {
    tensor.set_uid(STATS_UID)
        .set_data_type(fe::DataType_t::FLOAT)
        .set_dim({s.B, s.H, s.T, 1})
        .set_stride({(int64_t)s.H * s.T, s.T, 1, 1});
}

static int64_t qkv_row(const attention_shape &s) { return (int64_t)(s.H + 2 * s.KV) * s.hd; }

static float attention_scale(const attention_shape &s) { return 1.0f / sqrtf((float)s.hd); }

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

static std::string build_forward(cudnnHandle_t handle, const attention_shape &s, graph_ptr *out,
                                 int64_t *workspace) {
    graph_ptr graph = new_graph();
    int64_t row = qkv_row(s);
    auto q = head_input(*graph, "Q", Q_UID, s, s.H, row);
    auto k = head_input(*graph, "K", K_UID, s, s.KV, row);
    auto v = head_input(*graph, "V", V_UID, s, s.KV, row);
    auto attributes = fe::graph::SDPA_attributes()
                          .set_name("attention_forward")
                          .set_generate_stats(true)
                          .set_attn_scale(attention_scale(s));
    causal(attributes);
    auto [o, stats] = graph->sdpa(q, k, v, attributes);
    head_view(*o, O_UID, s, s.H, (int64_t)s.H * s.hd);
    o->set_output(true);
    stats_view(*stats, s);
    stats->set_output(true);
    std::string why = build_plan(*graph, handle, workspace);
    if (why.empty()) *out = graph;
    return why;
}

static std::string build_backward_graph(cudnnHandle_t handle, const attention_shape &s,
                                        bool deterministic, graph_ptr *out, int64_t *workspace) {
    graph_ptr graph = new_graph();
    int64_t row = qkv_row(s), out_row = (int64_t)s.H * s.hd;
    auto q = head_input(*graph, "Q", Q_UID, s, s.H, row);
    auto k = head_input(*graph, "K", K_UID, s, s.KV, row);
    auto v = head_input(*graph, "V", V_UID, s, s.KV, row);
    auto o = head_input(*graph, "O", O_UID, s, s.H, out_row);
    auto dout = head_input(*graph, "dO", DO_UID, s, s.H, out_row);
    auto stats = graph->tensor(fe::graph::Tensor_attributes().set_name("stats"));
    stats_view(*stats, s);
    auto attributes = fe::graph::SDPA_backward_attributes()
                          .set_name("attention_backward")
                          .set_attn_scale(attention_scale(s))
                          .set_deterministic_algorithm(deterministic);
    causal(attributes);
    auto [dq, dk, dv] = graph->sdpa_backward(q, k, v, o, dout, stats, attributes);
    head_view(*dq, DQ_UID, s, s.H, row);
    head_view(*dk, DK_UID, s, s.KV, row);
    head_view(*dv, DV_UID, s, s.KV, row);
    dq->set_output(true);
    dk->set_output(true);
    dv->set_output(true);
    std::string why = build_plan(*graph, handle, workspace);
    if (why.empty()) *out = graph;
    return why;
}

static void describe(char *text, size_t size, const attention_shape &s) {
    snprintf(text, size, "B%d T%d H%d KV%d hd%d", s.B, s.T, s.H, s.KV, s.hd);
}

/* The deterministic backward when it fits the limit, else the other one
 * (noted on stderr), else the deterministic one after all. */
static std::string build_backward(cudnnHandle_t handle, const attention_shape &s, graph_ptr *out,
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
    if (!build_backward_graph(handle, s, false, &other, &other_bytes).empty()) {
        if (!refused.empty()) return refused;
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

typedef std::string (*graph_builder)(cudnnHandle_t, const attention_shape &, graph_ptr *,
                                     int64_t *);

/* The graph of `s` in `cache`, built at its first call; NULL when cuDNN
 * refuses the shape, reported on stderr at the first refusal. */
static fe::graph::Graph *cached_graph(cudnn_attention *state,
                                      std::map<std::array<int, 5>, graph_ptr> &cache,
                                      const char *direction, const attention_shape &s,
                                      graph_builder build) {
    std::array<int, 5> key = {s.B, s.T, s.H, s.KV, s.hd};
    auto found = cache.find(key);
    if (found != cache.end()) return found->second.get();
    graph_ptr graph;
    std::string refused = state->unavailable;
    if (refused.empty()) {
        try {
            int64_t workspace = 0;
            refused = build(state->handle, s, &graph, &workspace);
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

int cudnn_attention_forward(cudnn_attention *state, attention_shape s, void *out, void *lse,
                            const void *qkv) {
    fe::graph::Graph *graph = cached_graph(state, state->forward, "forward", s, build_forward);
    if (!graph) return -1;
    variant_pack pack = {{Q_UID, cuda_head_start(qkv, 0, s.hd)},
                         {K_UID, cuda_head_start(qkv, s.H, s.hd)},
                         {V_UID, cuda_head_start(qkv, s.H + s.KV, s.hd)},
                         {O_UID, out},
                         {STATS_UID, lse}};
    execute(state, graph, pack, "forward");
    return 0;
}

int cudnn_attention_backward(cudnn_attention *state, attention_shape s, void *dqkv,
                             const void *dout, const void *qkv, const void *out, const void *lse) {
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
    execute(state, graph, pack, "backward");
    return 0;
}
