"""Bytes one rank (world rank 0) moves per training step in each parallel layout, measured by the
comm layer's counters (metrics.jsonl `comm_bytes`), next to the minimum the layout's collectives
need (ring all-reduce 2(n-1)/n of the buffer, point-to-point sends and receives of the stage
activations). Tiny llama (tied embeddings), fp32, global batch 8 of 32 tokens.
Usage: parallel_comm.py CAIRN   (prints a markdown table)"""
import json, os, subprocess, sys, tempfile

cairn = os.path.abspath(sys.argv[1])
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMP_NUM_THREADS="1")
L, D, H, KV, F, T, V, MB, G = 8, 64, 4, 4, 128, 32, 258, 2, 16
HD = D // H
CONFIG = f"""
run: {{name: comm, seed: 7, steps: 3, log_every: 1, eval_every: 0}}
model: {{arch: llama, layers: {L}, d_model: {D}, heads: {H}, kv_heads: {KV}, ffn: {F}, seq_len: {T},
        tie_embeddings: true}}
train: {{micro_batch: {MB}, global_batch: {G}}}
optim: {{lr: 0.003, schedule: {{kind: constant, warmup: 0}}}}
data: {{tokenizer: bytes, sources: [{{path: DATA/fortunes-train, weight: 1}}]}}
checkpoint: {{every: 0}}
"""


def layer_params(tp):
    attn = (H * HD + 2 * KV * HD) * D // tp + D * H * HD // tp
    return attn + 3 * F * D // tp + 2 * D


def expected(dp, tp, pp, zero):
    """Bytes world rank 0 (dp 0, tp 0, stage 0) must move per step at the least."""
    layers = L // pp
    vocab = -(-V // tp)
    params = vocab * D + layers * layer_params(tp) + (D if pp == 1 else 0)
    micro = G // (MB * dp)
    N = MB * T
    ring = lambda n, b: 2 * (n - 1) / n * b
    total = ring(dp, 4 * params)                      # gradients (ZeRO: reduce-scatter + gather)
    per_micro = 0
    if tp > 1:
        # forward: embedding, two per layer (attention and MLP outputs); backward: two per layer
        count = 1 + 4 * layers + (1 if pp == 1 else 0)  # + the head's input gradient (last stage)
        per_micro += ring(tp, 4 * N * D) * count
        if pp == 1: per_micro += ring(tp, 4 * N) + ring(tp, 4 * 2 * N)  # vocab-parallel softmax
    if pp > 1:
        per_micro += 2 * 4 * N * D                    # activations out, their gradients in
        total += 2 * 4 * vocab * D                    # tied embeddings: the two stages' copies
    return total + micro * per_micro


LAYOUTS = [("dp2", 2, 1, 1, 0), ("dp4", 4, 1, 1, 0), ("dp8", 8, 1, 1, 0), ("dp2 zero1", 2, 1, 1, 1),
           ("dp4 zero1", 4, 1, 1, 1), ("tp2", 1, 2, 1, 0), ("tp4", 1, 4, 1, 0), ("pp2", 1, 1, 2, 0),
           ("pp4", 1, 1, 4, 0), ("dp2 tp2", 2, 2, 1, 0), ("tp2 pp2", 1, 2, 2, 0),
           ("dp2 tp2 pp2", 2, 2, 2, 0)]

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([cairn, "train", "--set", "run.steps=2", "--set", "optim.schedule.warmup=1",
                    "--set", f"run.out_dir={tmp}/corpus"], cwd=tmp, env=ENV, check=True,
                   capture_output=True)
    config = os.path.join(tmp, "comm.yaml")
    with open(config, "w") as f:
        f.write(CONFIG.replace("DATA", os.path.join(tmp, "runs", "corpus")))
    print("| layout | ranks | measured bytes/step (rank 0) | minimum of its collectives | ratio |")
    print("|---|---|---|---|---|")
    for name, dp, tp, pp, zero in LAYOUTS:
        ranks = dp * tp * pp
        out = os.path.join(tmp, name.replace(" ", "-"))
        command = ["mpirun", "--oversubscribe", "--mca", "btl", "self,vader", "-np", str(ranks),
                   cairn, "train", config, "--set", f"run.out_dir={out}", "--set",
                   f"parallel.tp={tp}", "--set", f"parallel.pp={pp}", "--set", f"parallel.zero={zero}"]
        p = subprocess.run(command, env=ENV, capture_output=True, text=True)
        if p.returncode != 0:
            print(f"| {name} | {ranks} | failed: {p.stderr.strip().splitlines()[-1]} | | |")
            continue
        with open(os.path.join(out, "metrics.jsonl")) as f:
            measured = [json.loads(l)["comm_bytes"] for l in f][-1]
        want = expected(dp, tp, pp, zero)
        print(f"| {name} | {ranks} | {measured:,.0f} | {want:,.0f} | {measured / want:.3f} |")
