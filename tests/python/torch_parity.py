#!/usr/bin/python3
"""cairn's model against an independent float64 PyTorch implementation.

usage: torch_parity.py CAIRN_BIN_DIR [--perturb]

For each tiny configuration below the script writes a YAML config, runs CAIRN_BIN_DIR/dump_step
(one fp32 forward + backward of cairn, format documented in tests/tools/dump_step.c), rebuilds the
model here from the documented semantics (train/model.h, kernels/ops.h: moe_route_forward) in
float64, loads cairn's weights by name, and compares the objective (Σ w·CE + router aux + z) and
every parameter's gradient: |Δobjective| <= 1e-5 (relative when the objective exceeds 1), and per
tensor max|Δg| / max(max|g|, 1e-6, 1e-3·max|g| over the whole model) <= 1e-4. The last floor
is for gradients that vanish analytically (gpt2's key bias: softmax ignores a shift shared by all
keys), where fp32 leaves cancellation noise a million times below the model's largest gradient.
Exit status 1 on any failure.

--perturb nudges one weight on the PyTorch side; the script then succeeds only if EVERY case fails
the comparison, which shows the comparison can fail.
"""
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
import yaml

OBJECTIVE_TOLERANCE = 1e-5
GRADIENT_TOLERANCE = 1e-4
GRADIENT_FLOOR = 1e-6
MODEL_GRADIENT_FLOOR = 1e-3
PERTURBED_TENSOR = "layers.0.attn.wq"
PERTURBATION = 0.01

BASE_CONFIG = {
    "run": {"name": "parity", "seed": 11},
    "model": {"arch": "llama", "layers": 2, "d_model": 32, "heads": 4, "kv_heads": 2, "ffn": 48,
              "vocab": 61, "seq_len": 16, "init_std": 0.1},
    "train": {"micro_batch": 2, "global_batch": 2},
    "data": {"tokenizer": "", "eod_id": 3},
}

MOE = {"experts": 4, "top_k": 2, "ffn": 16, "aux_loss_coef": 0.1, "z_loss_coef": 0.01}

CASES = [
    ("llama swiglu qk_norm doc-masking tied",
     {"model": {"qk_norm": True, "document_masking": True, "tie_embeddings": True}}),
    ("llama xielu untied gqa",
     {"model": {"activation": "xielu", "tie_embeddings": False, "kv_heads": 1,
                "document_masking": False},
      "data": {"mask_eod_input": False}}),
    ("gpt2 layernorm gelu biases positions", {"model": {"arch": "gpt2"}}),
    ("moe softmax shared expert",
     {"model": {"moe": dict(MOE, router="softmax", shared_experts=1)}}),
    ("moe sigmoid", {"model": {"moe": dict(MOE, router="sigmoid")}}),
    ("moe softmax capacity 1.0",
     {"run": {"seed": 12}, "model": {"moe": dict(MOE, router="softmax", capacity_factor=1.0)}}),
]


def merged(base, overrides):
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merged(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


# ---------------------------------------------------------------------------- the dump file --

class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype, count):
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out.copy()

    def text(self):
        (length,) = self.take("I")
        out = self.data[self.pos:self.pos + length].decode()
        self.pos += length
        return out


def read_dump(path):
    with open(path, "rb") as f:
        r = Reader(f.read())
    if r.data[:8] != b"CAIRNDS1":
        raise SystemExit(f"{path}: bad magic")
    r.pos = 8
    config = yaml.safe_load(r.text())
    # PyYAML reads YAML 1.1, where "1e-05" is a string: the float keys are converted here
    model = config["model"]
    for key in ("norm_eps", "rope_theta", "init_std"):
        model[key] = float(model[key])
    for key in ("aux_loss_coef", "z_loss_coef", "capacity_factor"):
        model["moe"][key] = float(model["moe"][key])
    dump = {"config": config}
    B, T = r.take("ii")
    dump["tokens"] = r.array("<i4", B * (T + 1)).reshape(B, T + 1)
    dump["weights"] = r.array("<f4", B * T).reshape(B, T)
    dump["losses"] = r.array("<f4", B * T).reshape(B, T)
    dump["objective"], dump["aux"], dump["z"] = r.take("ddd")
    (count,) = r.take("I")
    dump["params"] = {}
    for _ in range(count):
        name = r.text()
        (ndim,) = r.take("I")
        shape = r.take("q" * ndim)
        size = int(np.prod(shape))
        value = r.array("<f4", size).reshape(shape)
        grad = r.array("<f4", size).reshape(shape)
        dump["params"][name] = (value, grad)
    if r.pos != len(r.data):
        raise SystemExit(f"{path}: {len(r.data) - r.pos} trailing bytes")
    return dump


# ---------------------------------------------------------------------------- the model -------

def rms_norm(x, weight, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * weight


def norm(P, prefix, x, cfg):
    eps = cfg["norm_eps"]
    if cfg["norm"] == "layernorm":
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + eps) * P[prefix + ".weight"] + P[prefix + ".bias"]
    return rms_norm(x, P[prefix + ".weight"], eps)


def document_layout(inputs, eod, masking):
    """Per token: the first position of its document, and its position inside it. A document
    ends at (and includes) an EOD input token."""
    B, T = inputs.shape
    start = np.zeros((B, T), dtype=np.int64)
    for b in range(B):
        first = 0
        for t in range(T):
            start[b, t] = first if masking else 0
            if masking and inputs[b, t] == eod:
                first = t + 1
    positions = np.arange(T)[None, :] - start
    return torch.from_numpy(start), torch.from_numpy(positions)


def rope(x, positions, theta):
    """Interleaved pairs (2i, 2i+1) rotated by positions · theta^(-2i/hd); x [B,T,heads,hd]."""
    hd = x.shape[-1]
    inv_freq = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    angle = positions.to(torch.float64)[..., None] * inv_freq
    cos, sin = angle.cos()[:, :, None, :], angle.sin()[:, :, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], -1).flatten(-2)


def attention(P, prefix, x, cfg, doc_start, positions):
    B, T, d = x.shape
    H, KV = cfg["heads"], cfg["kv_heads"]
    hd = d // H
    biases = cfg["arch"] == "gpt2"

    def project(name, bias_name):
        y = x @ P[prefix + name].T
        return y + P[prefix + bias_name] if biases else y

    q = project("attn.wq", "attn.bq").view(B, T, H, hd)
    k = project("attn.wk", "attn.bk").view(B, T, KV, hd)
    v = project("attn.wv", "attn.bv").view(B, T, KV, hd)
    if cfg["qk_norm"]:
        q = rms_norm(q, P[prefix + "attn.q_norm"], cfg["norm_eps"])
        k = rms_norm(k, P[prefix + "attn.k_norm"], cfg["norm_eps"])
    if cfg["arch"] == "llama":
        q, k = rope(q, positions, cfg["rope_theta"]), rope(k, positions, cfg["rope_theta"])
    k = k.repeat_interleave(H // KV, dim=2)  # query head h reads kv head h / (H/KV)
    v = v.repeat_interleave(H // KV, dim=2)
    scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(hd)
    t = torch.arange(T)
    allowed = (t[None, None, :] <= t[None, :, None]) & (t[None, None, :] >= doc_start[:, :, None])
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    out = torch.einsum("bhts,bshd->bthd", torch.softmax(scores, -1), v).reshape(B, T, H * hd)
    out = out @ P[prefix + "attn.wo"].T
    return out + P[prefix + "attn.bo"] if biases else out


def activation(kind, pre, alpha):
    if kind == "swiglu":
        gate, up = pre.chunk(2, -1)
        return F.silu(gate) * up
    if kind == "gelu":
        return 0.5 * pre * (1 + torch.tanh(math.sqrt(2 / math.pi) * (pre + 0.044715 * pre ** 3)))
    alpha_p = F.softplus(alpha[0])
    alpha_n = 0.5 + F.softplus(alpha[1])
    beta = 0.5
    negative = alpha_n * torch.expm1(torch.clamp(pre, max=-1e-6)) - alpha_n * pre + beta * pre
    return torch.where(pre > 0, alpha_p * pre * pre + beta * pre, negative)


def mlp(P, prefix, x, kind, biases=False, alpha=None):
    """prefix + w_gate / w_up / w_down (and b_up / b_down when biases)."""
    if kind == "swiglu":
        up = torch.cat([P[prefix + "w_gate"], P[prefix + "w_up"]], 0)
    else:
        up = P[prefix + "w_up"]
    pre = x @ up.T
    if biases:
        pre = pre + P[prefix + "b_up"]
    out = activation(kind, pre, alpha) @ P[prefix + "w_down"].T
    return out + P[prefix + "b_down"] if biases else out


def route(logits, moe):
    """Discrete decisions, from values only: chosen experts [N][k] and kept slots [N][k]."""
    N, E = logits.shape
    k = moe["top_k"]
    scores = torch.sigmoid(logits) if moe["router"] == "sigmoid" else logits
    choice = [sorted(range(E), key=lambda e: (-scores[t, e].item(), e))[:k] for t in range(N)]
    gates = selected_gates(logits, choice, moe).detach()
    kept = [[True] * k for _ in range(N)]
    assigned = [sum(row.count(e) for row in choice) for e in range(E)]
    if moe["capacity_factor"] > 0:
        capacity = math.ceil(N * k / E * moe["capacity_factor"])
        for e in range(E):
            slots = [(t, j) for t in range(N) for j in range(k) if choice[t][j] == e]
            slots.sort(key=lambda s: (-gates[s[0], s[1]].item(), s[0] * k + s[1]))
            for t, j in slots[capacity:]:
                kept[t][j] = False
    return choice, kept, torch.tensor(assigned, dtype=torch.float64)


def selected_gates(logits, choice, moe):
    picked = torch.stack([logits[t, choice[t]] for t in range(len(choice))])
    if moe["router"] == "sigmoid":
        s = torch.sigmoid(picked)
        return s / s.sum(-1, keepdim=True) if moe["top_k"] > 1 else s
    return torch.softmax(picked, -1)


def moe_block(P, prefix, x, cfg):
    """Returns the MoE output [N][d], the router's aux and z losses, and the dropped slots."""
    moe = cfg["moe"]
    N, E, k = x.shape[0], moe["experts"], moe["top_k"]
    logits = x @ P[prefix + "moe.router"].T
    choice, kept, assigned = route(logits, moe)
    gates = selected_gates(logits, choice, moe)
    out = torch.zeros_like(x)
    for e in range(E):
        slots = [(t, j) for t in range(N) for j in range(k) if choice[t][j] == e and kept[t][j]]
        if not slots:
            continue
        tokens = torch.tensor([t for t, _ in slots])
        y = mlp(P, f"{prefix}moe.experts.{e}.", x[tokens], cfg["activation"])
        g = torch.stack([gates[t, j] for t, j in slots])
        out = out.index_add(0, tokens, g[:, None] * y)
    if moe["shared_experts"] > 0:
        out = out + mlp(P, prefix + "moe.shared.", x, cfg["activation"])
    if moe["router"] == "sigmoid":
        s = torch.sigmoid(logits)
        p = s / s.sum(-1, keepdim=True)
    else:
        p = torch.softmax(logits, -1)
    aux = moe["aux_loss_coef"] * E / (N * N * k) * (p.sum(0) * assigned).sum()
    z = moe["z_loss_coef"] / N * (torch.logsumexp(logits, -1) ** 2).sum()
    return out, aux, z, sum(row.count(False) for row in kept)


def objective(P, dump):
    """Σ w·CE + Σ_layers (aux + z); also the per-token losses, the router losses and the number
    of slots dropped by capacity."""
    cfg = dump["config"]["model"]
    eod = dump["config"]["data"]["eod_id"]
    tokens = dump["tokens"]
    inputs, targets = tokens[:, :-1], torch.from_numpy(tokens[:, 1:].astype(np.int64))
    B, T = inputs.shape
    doc_start, positions = document_layout(inputs, eod, cfg["document_masking"])
    x = P["embed.tokens"][torch.from_numpy(inputs.astype(np.int64))]
    if cfg["arch"] == "gpt2":
        x = x + P["embed.positions"][positions]
    aux = z = torch.zeros((), dtype=torch.float64)
    dropped = 0
    for i in range(cfg["layers"]):
        prefix = f"layers.{i}."
        x = x + attention(P, prefix, norm(P, prefix + "attn_norm", x, cfg), cfg, doc_start,
                          positions)
        h = norm(P, prefix + "mlp_norm", x, cfg)
        if cfg["moe"]["experts"] > 0:
            y, layer_aux, layer_z, layer_dropped = moe_block(P, prefix, h.reshape(B * T, -1), cfg)
            x = x + y.view(B, T, -1)
            aux, z, dropped = aux + layer_aux, z + layer_z, dropped + layer_dropped
        else:
            alpha = P.get(prefix + "mlp.xielu_alpha")
            x = x + mlp(P, prefix + "mlp.", h, cfg["activation"], cfg["arch"] == "gpt2", alpha)
    h = norm(P, "final_norm", x, cfg)
    head = P["embed.tokens"] if cfg["tie_embeddings"] else P["lm_head"]
    logits = h @ head.T
    losses = torch.logsumexp(logits, -1) - logits.gather(-1, targets[..., None])[..., 0]
    weights = torch.from_numpy(dump["weights"].astype(np.float64))
    return (weights * losses).sum() + aux + z, losses, aux, z, dropped


# ---------------------------------------------------------------------------- comparison ------

def compare(name, dump, perturb):
    P = {key: torch.tensor(value.astype(np.float64), requires_grad=True)
         for key, (value, _) in dump["params"].items()}
    if perturb:
        with torch.no_grad():
            P[PERTURBED_TENSOR].view(-1)[0] += PERTURBATION
    total, losses, aux, z, dropped = objective(P, dump)
    total.backward()
    failures = []
    scale = max(1.0, abs(total.item()))
    objective_error = abs(total.item() - dump["objective"]) / scale
    loss_error = np.abs(losses.detach().numpy() - dump["losses"]).max()
    print(f"\n== {name}")
    print(f"objective cairn {dump['objective']:.9f} torch {total.item():.9f} "
          f"error {objective_error:.2e}; aux {dump['aux']:.3e}/{aux.item():.3e} "
          f"z {dump['z']:.3e}/{z.item():.3e}; max |Δ per-token loss| {loss_error:.2e}; "
          f"dropped slots {dropped}")
    if not objective_error <= OBJECTIVE_TOLERANCE:
        failures.append("objective")
    if dump["config"]["model"]["moe"]["capacity_factor"] > 0 and dropped == 0:
        failures.append("capacity dropped no slot")
    print(f"{'tensor':<34} {'shape':<14} {'max|g|':>10} {'max|Δg|':>10} {'error':>10}")
    grads = {key: np.zeros(value.shape) if P[key].grad is None else P[key].grad.numpy()
             for key, (value, _) in dump["params"].items()}
    floor = max(GRADIENT_FLOOR, MODEL_GRADIENT_FLOOR * max(np.abs(g).max() for g in grads.values()))
    worst = 0.0
    for key, (_, cairn_grad) in dump["params"].items():
        grad = grads[key]
        difference = np.abs(grad - cairn_grad).max()
        error = difference / max(np.abs(grad).max(), floor)
        worst = max(worst, error)
        bad = not error <= GRADIENT_TOLERANCE
        if bad:
            failures.append(key)
        shape = "x".join(str(s) for s in cairn_grad.shape)
        print(f"{key:<34} {shape:<14} {np.abs(grad).max():10.3e} {difference:10.3e} {error:10.2e}"
              f"{'  FAIL' if bad else ''}")
    print(f"max gradient error {worst:.2e}; {len(failures)} failure(s)")
    return failures, objective_error, worst


def run_case(bin_dir, directory, index, name, overrides, perturb):
    config_path = os.path.join(directory, f"case{index}.yaml")
    dump_path = os.path.join(directory, f"case{index}.bin")
    with open(config_path, "w") as f:
        yaml.safe_dump(merged(BASE_CONFIG, overrides), f)
    result = subprocess.run([os.path.join(bin_dir, "dump_step"), config_path, dump_path],
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(f"== {name}: dump_step failed ({result.returncode}): {result.stderr.strip()}")
        return None
    return compare(name, read_dump(dump_path), perturb)


def main(argv):
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] != "--perturb"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    bin_dir, perturb = argv[1], len(argv) == 3
    torch.set_num_threads(1)
    summary, ok = [], True
    with tempfile.TemporaryDirectory() as directory:
        for index, (name, overrides) in enumerate(CASES):
            outcome = run_case(bin_dir, directory, index, name, overrides, perturb)
            if outcome is None:
                ok = False
                summary.append(f"{name:<40} dump_step failed")
                continue
            failures, objective_error, worst = outcome
            detected = bool(failures)
            ok = ok and (detected if perturb else not detected)
            summary.append(f"{name:<40} objective error {objective_error:.2e}  "
                           f"max gradient error {worst:.2e}  "
                           f"{'FAIL ' + ', '.join(failures[:4]) if failures else 'ok'}")
    print("\n" + "\n".join(summary))
    if perturb:
        print("perturbation detected in every case" if ok else
              "perturbation NOT detected in some case")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
