/* The ops tables of the CPU backend: `ops_cpu` from the fp32 compilation of
 * this directory and `ops_cpu64` from the fp64 one. act and master are the
 * same `real` type, so forward ops read master weights directly. */
#include "kernels/cpu/cpu_real.h"

static const ops table = {
#if CPU_PRECISION == 32
    .name = "cpu",
#else
    .name = "cpu64",
#endif
    .act_bytes = sizeof(real),
    .master_bytes = sizeof(real),
    .compute_aliases_master = 1,
    .host_memory = 1,
    .describe = CPU_FN(describe),
    .peak_flops = CPU_FN(peak_flops),
    .peak_memory = CPU_FN(peak_memory),

    .alloc = CPU_FN(alloc),
    .free = CPU_FN(free),
    .copy_to_device = CPU_FN(copy),
    .copy_to_host = CPU_FN(copy),
    .copy_device = CPU_FN(copy),
    .zero = CPU_FN(zero),
    .synchronize = CPU_FN(synchronize),

    .master_to_act = CPU_FN(real_to_real),
    .act_to_float = CPU_FN(real_to_float),
    .float_to_act = CPU_FN(float_to_real),
    .master_to_float = CPU_FN(real_to_float),
    .float_to_master = CPU_FN(float_to_real),

    .embedding_forward = CPU_FN(embedding_forward),
    .embedding_backward = CPU_FN(embedding_backward),
    .rmsnorm_forward = CPU_FN(rmsnorm_forward),
    .rmsnorm_backward = CPU_FN(rmsnorm_backward),
    .layernorm_forward = CPU_FN(layernorm_forward),
    .layernorm_backward = CPU_FN(layernorm_backward),
    .matmul_forward = CPU_FN(matmul_forward),
    .matmul_backward = CPU_FN(matmul_backward),
    .matmul_grouped_forward = CPU_FN(matmul_grouped_forward),
    .matmul_grouped_backward = CPU_FN(matmul_grouped_backward),
    .matmul_gelu_forward = CPU_FN(matmul_gelu_forward),
    .matmul_gelu_backward = CPU_FN(matmul_gelu_backward),
    .qk_norm_forward = CPU_FN(qk_norm_forward),
    .qk_norm_backward = CPU_FN(qk_norm_backward),
    .rope_forward = CPU_FN(rope_forward),
    .rope_backward = CPU_FN(rope_backward),
    .attention_forward = CPU_FN(attention_forward),
    .attention_backward = CPU_FN(attention_backward),
    .swiglu_forward = CPU_FN(swiglu_forward),
    .swiglu_backward = CPU_FN(swiglu_backward),
    .gelu_forward = CPU_FN(gelu_forward),
    .gelu_backward = CPU_FN(gelu_backward),
    .xielu_forward = CPU_FN(xielu_forward),
    .xielu_backward = CPU_FN(xielu_backward),
    .add = CPU_FN(add),
    .accumulate = CPU_FN(accumulate),
    .cross_entropy = CPU_FN(cross_entropy),
    .vocab_parallel_max = CPU_FN(vocab_parallel_max),
    .vocab_parallel_sum_exp = CPU_FN(vocab_parallel_sum_exp),
    .vocab_parallel_loss = CPU_FN(vocab_parallel_loss),
    .gather_rows = CPU_FN(gather_rows),
    .scatter_add_rows = CPU_FN(scatter_add_rows),
    .moe_dispatch_backward = CPU_FN(moe_dispatch_backward),
    .moe_combine_forward = CPU_FN(moe_combine_forward),
    .moe_combine_backward = CPU_FN(moe_combine_backward),
    .moe_route_forward = CPU_FN(moe_route_forward),
    .moe_route_backward = CPU_FN(moe_route_backward),
    .adamw_update = CPU_FN(adamw_update),
    .ademamix_update = CPU_FN(ademamix_update),
    .sum_squares = CPU_FN(sum_squares),
    .scale = CPU_FN(scale),
};

#if CPU_PRECISION == 32
const ops *ops_cpu(void) {
    return &table;
}
#else
const ops *ops_cpu64(void) {
    return &table;
}
#endif
