"""Every parallel layout reproduces the single-rank run (the parallelism issue's equivalence check).

For tiny llama (tied embeddings, GQA, qk-norm), gpt2 (untied, biases, learned positions) and MoE
(softmax router, shared expert, auxiliary losses) configs, `cairn train` runs on one rank and
under `mpirun --oversubscribe` in the layouts dp2, tp2, pp2, dp2×tp2, tp2×pp2, dp2×tp2×pp2 (8
ranks), ZeRO-1, small data-parallel buckets (which must start during the backward pass, as
metrics.jsonl's dp_buckets_early shows), and for MoE ep2, tp2×ep2, pp2×ep2. Checked against the single rank:
the loss of every step within 1e-5 relative, and the final checkpoint's weights and optimizer
moments within 1e-4 of each tensor's largest entry. Then resuming across layouts: a dp2×tp2 run
stopped half-way continues on pp2, and on one rank, matching the uninterrupted run the same way.
Also: run.json records the world layout, and a config whose layout does not divide the ranks
fails with one line naming the key.
Usage: test_parallel_training.py CAIRN"""
import json, os, subprocess, sys, tempfile

import h5py
import numpy as np

from cairn_testing import check, finish

cairn = os.path.abspath(sys.argv[1])
LOSS_TOLERANCE = 1e-5
TENSOR_TOLERANCE = 1e-4


ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMP_NUM_THREADS="1")


def train(config, ranks, *sets):
    command = [cairn, "train", config, *[a for s in sets for a in ("--set", s)]]
    if ranks > 1:
        command = ["mpirun", "--oversubscribe", "--mca", "btl", "self,vader", "-np", str(ranks),
                   *command]
    return subprocess.run(command, capture_output=True, text=True, env=ENV)


def losses(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return {m["step"]: m["loss"] for m in map(json.loads, f)}


def tensors(path):
    with h5py.File(path, "r") as f:
        found = {}
        f.visititems(lambda name, item: found.__setitem__(name, item[...])
                     if isinstance(item, h5py.Dataset) and name.startswith(("model/", "optim/"))
                     else None)
        return found


def compare(label, reference, out, steps, first_step=1):
    got, want = losses(out), losses(reference)
    want = {s: loss for s, loss in want.items() if s >= first_step}
    check(sorted(got) == sorted(want), f"{label}: logged steps {sorted(got)} != {sorted(want)}")
    worst_loss = max((abs(got[s] - want[s]) / abs(want[s]) for s in want if s in got),
                     default=float("inf"))
    check(worst_loss <= LOSS_TOLERANCE, f"{label}: losses differ by {worst_loss:.2e} relative")
    a = tensors(os.path.join(reference, "checkpoints", f"step-{steps:08d}.h5"))
    b = tensors(os.path.join(out, "checkpoints", f"step-{steps:08d}.h5"))
    check(sorted(a) == sorted(b), f"{label}: checkpoint tensors differ: "
          f"{sorted(set(a) ^ set(b))[:5]}")
    worst, name = 0.0, ""
    for key in a.keys() & b.keys():
        if ".attn.bk" in key:
            # a key bias shifts every attention score of a row alike: its gradient is zero in
            # exact arithmetic, so Adam turns rounding noise into lr-sized steps of any sign;
            # the layouts' noise differs. It must stay within the steps Adam can take.
            if key.startswith("model/"):
                bound = STEPS * 0.003 * 1.01
                check(np.abs(b[key]).max() <= bound, f"{label}: {key} grew past {bound}")
            continue
        error = np.abs(a[key] - b[key]).max() / max(np.abs(a[key]).max(), 1e-12)
        if error > worst:
            worst, name = error, key
    check(worst <= TENSOR_TOLERANCE, f"{label}: {name} differs by {worst:.2e}")
    print(f"  {label:28s} loss {worst_loss:.1e}  tensors {worst:.1e} ({name})")


BASE = """
run: {{name: parallel, seed: 7, steps: {steps}, log_every: 1, eval_every: 3}}
model: {model}
train: {{micro_batch: 2, global_batch: 8}}
optim: {{name: {optim}, lr: 0.003, schedule: {{kind: cosine, warmup: 2}}}}
data: {{tokenizer: bytes, sources: [{{path: {data}/fortunes-train, weight: 1}}],
       valid: {data}/fortunes-valid, eval_samples: 8}}
checkpoint: {{every: {every}, keep: 0}}
"""
MODELS = {
    "llama": ("{arch: llama, layers: 4, d_model: 32, heads: 4, kv_heads: 2, ffn: 64, seq_len: 32,"
              " qk_norm: true, tie_embeddings: true}", "adamw"),
    "gpt2": ("{arch: gpt2, layers: 4, d_model: 32, heads: 4, kv_heads: 4, ffn: 64, seq_len: 32,"
             " tie_embeddings: false}", "ademamix"),
    "moe": ("{arch: llama, layers: 2, d_model: 32, heads: 4, kv_heads: 2, ffn: 64, seq_len: 32,"
            " moe: {experts: 4, top_k: 2, shared_experts: 1, aux_loss_coef: 0.01,"
            " z_loss_coef: 0.001}}", "adamw"),
}
LAYOUTS = {
    "dp2": (2, []), "tp2": (2, ["parallel.tp=2"]), "pp2": (2, ["parallel.pp=2"]),
    "dp2 tp2": (4, ["parallel.tp=2"]), "tp2 pp2": (4, ["parallel.tp=2", "parallel.pp=2"]),
    "dp2 tp2 pp2": (8, ["parallel.tp=2", "parallel.pp=2"]), "dp2 zero1": (2, ["parallel.zero=1"]),
    # small buckets: most reduce while the backward pass goes on
    "dp2 buckets": (2, ["parallel.bucket_elements=2000"]),
    "dp2 zero1 buckets": (2, ["parallel.zero=1", "parallel.bucket_elements=2000"]),
}
MOE_LAYOUTS = {
    "ep2": (2, ["parallel.ep=2"]), "tp2 ep2": (4, ["parallel.tp=2", "parallel.ep=2"]),
    "pp2 ep2": (4, ["parallel.pp=2", "parallel.ep=2"]),
}
STEPS = 6

with tempfile.TemporaryDirectory() as tmp:
    # the default corpus (Debian's fortunes), made by a one-step default run in tmp
    p = subprocess.run([cairn, "train", "--set", "run.steps=2", "--set", "optim.schedule.warmup=1",
                        "--set", f"run.out_dir={tmp}/corpus-run"], cwd=tmp, capture_output=True,
                       text=True, env=ENV)
    check(p.returncode == 0, f"default corpus: {p.stderr[-300:]}")
    data = os.path.join(tmp, "runs", "corpus")
    for kind, (model, optim) in MODELS.items():
        config = os.path.join(tmp, f"{kind}.yaml")
        with open(config, "w") as f:
            f.write(BASE.format(steps=STEPS, model=model, optim=optim, data=data, every=3))
        reference = os.path.join(tmp, f"{kind}-single")
        p = train(config, 1, f"run.out_dir={reference}")
        check(p.returncode == 0, f"{kind} single rank: {p.stderr[-500:]}")
        layouts = dict(LAYOUTS, **(MOE_LAYOUTS if kind == "moe" else {}))
        if kind == "gpt2":  # one optimizer, the layouts that differ for learned positions
            layouts = {k: layouts[k] for k in ("tp2", "pp2", "dp2 tp2 pp2", "dp2 zero1")}
        for name, (ranks, sets) in layouts.items():
            out = os.path.join(tmp, f"{kind}-{name.replace(' ', '-')}")
            p = train(config, ranks, f"run.out_dir={out}", *sets)
            ok = p.returncode == 0
            check(ok, f"{kind} {name}: exit {p.returncode}: {p.stderr[-800:]}")
            if ok:
                compare(f"{kind} {name}", reference, out, STEPS)
            if ok and "buckets" in name:
                with open(os.path.join(out, "metrics.jsonl")) as f:
                    m = [json.loads(line) for line in f][-1]
                check(m["dp_buckets"] > 10 and 0 < m["dp_buckets_early"] < m["dp_buckets"],
                      f"{kind} {name}: buckets started during the backward pass: "
                      f"{m.get('dp_buckets_early')} of {m.get('dp_buckets')}")
                print(f"  {'':28s} {m['dp_buckets_early']} of {m['dp_buckets']} buckets started "
                      f"during the backward pass")

    # run.json says how the run was laid out
    with open(os.path.join(tmp, "llama-dp2-tp2-pp2", "run.json")) as f:
        world = json.load(f)["world"]
    check(world == {"ranks": 8, "dp": 2, "tp": 2, "pp": 2, "ep": 1, "comm": "mpi"},
          f"run.json world: {world}")

    # resume across layouts: the dp2×tp2 run's checkpoint of step 3 continues on pp2, on
    # tp2×pp2 and on one rank
    config = os.path.join(tmp, "llama.yaml")
    saved = os.path.join(tmp, "llama-dp2-tp2", "checkpoints", "step-00000003.h5")
    resumes = {"pp2": (2, ["parallel.pp=2"]), "tp2 pp2": (4, ["parallel.tp=2", "parallel.pp=2"]),
               "single": (1, [])}
    for name, (ranks, sets) in resumes.items():
        out = os.path.join(tmp, f"resume-{name.replace(' ', '-')}")
        p = train(config, ranks, f"run.out_dir={out}", f"checkpoint.resume={saved}", *sets)
        check(p.returncode == 0, f"resume on {name}: {p.stderr[-500:]}")
        check("resuming from" in p.stdout, f"resume on {name} did not resume: {p.stdout[-300:]}")
        if p.returncode == 0:
            compare(f"llama dp2 tp2 -> {name}", os.path.join(tmp, "llama-single"), out, STEPS,
                    first_step=4)

    # a layout that does not fit the ranks: one line naming the key, non-zero exit
    p = train(config, 2, f"run.out_dir={tmp}/bad", "parallel.tp=4")
    lines = [l for l in p.stderr.splitlines() if l.startswith("cairn train")]
    check(p.returncode != 0 and lines and "parallel.tp" in lines[0], f"bad layout: {p.stderr}")
    p = train(os.path.join(tmp, "moe.yaml"), 2, f"run.out_dir={tmp}/bad", "parallel.zero=1",
              "parallel.ep=2")
    lines = [l for l in p.stderr.splitlines() if l.startswith("cairn train")]
    check(p.returncode != 0 and lines and "parallel.zero" in lines[0], f"zero with ep: {p.stderr}")

finish("test_parallel_training")
