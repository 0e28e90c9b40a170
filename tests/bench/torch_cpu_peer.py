"""The PyTorch CPU peer of cairn's CPU backend: the same llama shapes as
shared/bench/torch_ref.py's model code (RMSNorm, interleaved RoPE, GQA,
SwiGLU, tied embeddings), fp32, AdamW, gradient clipping, one step =
forward + backward + optimizer. Usage: torch_cpu_peer.py L D H KV FFN V B T STEPS
Prints one JSON line with the mean step time and tokens/s."""
import json, math, os, sys, time
import torch, torch.nn as nn, torch.nn.functional as F

L, D, H, KV, FFN, V, B, T, STEPS = map(int, sys.argv[1:10])
torch.manual_seed(0)
# the same thread count as cairn (OpenMP: every core), not the build default
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))


class RMSNorm(nn.Module):
    def __init__(s, d):
        super().__init__(); s.w = nn.Parameter(torch.ones(d))

    def forward(s, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * s.w


def rope(x, cos, sin):
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1).flatten(-2)


def attention(q, k, v):
    # fused SDPA where this PyTorch has it (2.0+), the textbook form on 1.x
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    t = q.shape[-2]
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    att = att.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    return att.softmax(-1) @ v


class Block(nn.Module):
    def __init__(s):
        super().__init__()
        s.hd = D // H
        s.n1, s.n2 = RMSNorm(D), RMSNorm(D)
        s.qkv = nn.Linear(D, (H + 2 * KV) * s.hd, bias=False)
        s.o = nn.Linear(D, D, bias=False)
        s.up = nn.Linear(D, 2 * FFN, bias=False)
        s.down = nn.Linear(FFN, D, bias=False)

    def forward(s, x, cos, sin):
        b, t, _ = x.shape
        q, k, v = s.qkv(s.n1(x)).split([H * s.hd, KV * s.hd, KV * s.hd], -1)
        q = rope(q.view(b, t, H, s.hd).transpose(1, 2), cos, sin)
        k = rope(k.view(b, t, KV, s.hd).transpose(1, 2), cos, sin)
        v = v.view(b, t, KV, s.hd).transpose(1, 2)
        k = k.repeat_interleave(H // KV, 1); v = v.repeat_interleave(H // KV, 1)
        y = attention(q, k, v)
        x = x + s.o(y.transpose(1, 2).reshape(b, t, -1))
        a, g = s.up(s.n2(x)).chunk(2, -1)
        return x + s.down(F.silu(a) * g)


class Model(nn.Module):
    def __init__(s):
        super().__init__()
        s.emb = nn.Embedding(V, D)
        s.blocks = nn.ModuleList(Block() for _ in range(L))
        s.nf = RMSNorm(D)
        s.head = nn.Linear(D, V, bias=False); s.head.weight = s.emb.weight
        hd = D // H
        f = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.outer(torch.arange(T).float(), f)
        s.register_buffer("cos", ang.cos()); s.register_buffer("sin", ang.sin())

    def forward(s, idx, tgt):
        x = s.emb(idx)
        for blk in s.blocks: x = blk(x, s.cos, s.sin)
        logits = s.head(s.nf(x))
        return F.cross_entropy(logits.view(-1, V), tgt.view(-1))


m = Model()
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
x = torch.randint(0, V, (B, T)); y = torch.randint(0, V, (B, T))


def step():
    loss = m(x, y); loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step(); opt.zero_grad(set_to_none=True)


for _ in range(3): step()
t0 = time.time()
for _ in range(STEPS): step()
dt = (time.time() - t0) / STEPS
print(json.dumps(dict(peer="pytorch", version=torch.__version__, threads=torch.get_num_threads(),
                      step_ms=dt * 1e3, tok_s=B * T / dt)))
