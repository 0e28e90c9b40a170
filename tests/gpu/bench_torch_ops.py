"""The PyTorch peer of bench_ops_cuda: the same matmul and attention shapes
(bf16, SDPA with its flash backend, causal, GQA), timed with CUDA events
(median of 5 rounds). Prints rows in bench_ops_cuda's format, op names
prefixed with "torch ". Exit 77 without a CUDA device."""
import statistics
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("bench_torch_ops: skipped: torch is not installed")
    sys.exit(77)

ROUNDS = 5


def time_op(fn, iters):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(ROUNDS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / iters)
    return statistics.median(times)


def row(op, shape, seconds, flops):
    print(f"{op:<22} {shape:<30} {seconds * 1e3:9.3f} ms {flops / seconds / 1e12:8.1f} TFLOP/s")


def bench_matmul(name, n, c, oc):
    x = torch.randn(n, c, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(oc, c, device="cuda", dtype=torch.bfloat16)
    shape = f"{name} {n}x{c}x{oc}"
    row("torch matmul_fwd", shape, time_op(lambda: F.linear(x, w), 10), 2.0 * n * c * oc)


def bench_attention(b, t, h, kv, hd):
    q = torch.randn(b, h, t, hd, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(b, kv, t, hd, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(b, kv, t, hd, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    gqa = h != kv
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    dout = torch.randn_like(out)
    flops = 4.0 * b * h * t * t * hd / 2
    shape = f"B{b} T{t} H{h} KV{kv} hd{hd}"
    with torch.no_grad():
        fwd = time_op(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                             enable_gqa=gqa), 5)
    row("torch sdpa_forward", shape, fwd, flops)

    def fwd_bwd():
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        torch.autograd.grad(o, (q, k, v), dout)

    both = time_op(fwd_bwd, 5)
    row("torch sdpa_backward", shape, both - fwd, 2.5 * flops)


def main():
    if not torch.cuda.is_available():
        print("bench_torch_ops: skipped: no CUDA device")
        sys.exit(77)
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    n = 4 * 4096
    bench_matmul("qkv", n, 2048, 3072)
    bench_matmul("ffn-up", n, 2048, 16384)
    bench_matmul("ffn-down", n, 8192, 2048)
    bench_attention(4, 4096, 32, 8, 64)
    bench_attention(1, 4096, 32, 8, 128)
    bench_attention(16, 1024, 12, 12, 64)


if __name__ == "__main__":
    main()
