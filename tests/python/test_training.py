"""End-to-end training through the CLI: outputs as DESIGN specifies, determinism,
learning far below the unigram entropy, a resolved config that reproduces the
run, and provenance checksums. Usage: test_training.py CAIRN"""
import functools, hashlib, json, math, os, sys, tempfile
from collections import Counter

from cairn_testing import check, finish, metrics, run_cairn, toy_documents, write_documents

run = functools.partial(run_cairn, os.path.abspath(sys.argv[1]))

CONFIG = """
run: {{name: t, out_dir: {out}, seed: 7, steps: {steps}, log_every: 1, eval_every: 20}}
model: {{arch: {arch}, layers: 2, d_model: 64, heads: 4, kv_heads: {kv}, ffn: 128, seq_len: 64 {extra}}}
train: {{micro_batch: 4, global_batch: 8}}
optim: {{lr: 0.003, min_lr: 0.0003, schedule: {{kind: cosine, warmup: 5}}}}
data: {{tokenizer: bytes, sources: [{{path: {data}}}], valid: {data}, eval_samples: 8}}
checkpoint: {{every: 0}}
"""

with tempfile.TemporaryDirectory() as tmp:
    os.chdir(tmp)
    write_documents("corpus.txt", toy_documents())
    run("prepare", "--tokenizer", "bytes", "--output", "data/train", "corpus.txt")

    STEPS = 200

    def config(name, steps=STEPS, arch="llama", kv=2, extra=""):
        path = f"{name}.yaml"
        with open(path, "w") as f:
            f.write(CONFIG.format(out=f"out/{name}", steps=steps, arch=arch, kv=kv, extra=extra,
                                  data="data/train"))
        return path

    # 1. outputs and learning
    p = run("train", config("a"))
    check("out/a" in p.stdout, "the progress output names the output directory")
    a = metrics("out/a")
    check([m["step"] for m in a] == list(range(1, STEPS + 1)), "one metrics line per step (log_every 1)")
    for key in ("step", "loss", "lr", "grad_norm", "tokens", "loss_tokens", "tok_per_s", "mfu", "time_s"):
        check(all(key in m for m in a), f"every metrics line has {key}")
    check(all(m["mfu"] is None for m in a), "mfu is null on the CPU")
    check(all(m["tokens"] == m["step"] * 8 * 64 for m in a), "tokens is cumulative")
    check(all(0 < m["loss_tokens"] < 8 * 64 for m in a), "EOD inputs are excluded from loss_tokens")
    check(sum("val_loss" in m for m in a) == STEPS // 20, "eval lines every 20 steps carry val_loss")
    text = open("corpus.txt", "rb").read()
    counts = Counter(text)
    total = sum(counts.values())
    unigram = -sum(c / total * math.log(c / total) for c in counts.values())
    final = a[-1]["loss"]
    check(final < 0.5 * unigram, f"final loss {final:.3f} is far below the unigram entropy {unigram:.3f}")
    check(a[0]["loss"] > 4.0, f"the first loss {a[0]['loss']:.3f} is near ln(258) = 5.55")
    check(a[-1]["val_loss"] < a[0]["loss"] * 0.5, "validation loss fell")

    # 2. determinism: same config and seed -> bit-identical losses
    run("train", config("a"), "--set", "run.out_dir=out/b")
    b = metrics("out/b")
    check([m["loss"] for m in a] == [m["loss"] for m in b], "same config and seed: identical losses")
    check([m["grad_norm"] for m in a] == [m["grad_norm"] for m in b], "identical gradient norms")
    run("train", config("a"), "--set", "run.seed=8", "--set", "run.out_dir=out/c")
    c = metrics("out/c")
    check(a[0]["loss"] != c[0]["loss"], "another seed gives another run")

    # 3. the resolved config reproduces the run
    run("train", "out/a/config.yaml", "--set", "run.out_dir=out/d")
    d = metrics("out/d")
    check([m["loss"] for m in a] == [m["loss"] for m in d], "resolved config.yaml reproduces the run")

    # 4. provenance
    info = json.load(open("out/a/run.json"))
    files = info["data"]["sources"][0]["files"]
    for entry in files:
        data = open(entry["path"], "rb").read()
        check(entry["sha256"] == hashlib.sha256(data).hexdigest(), f"run.json checksum of {entry['path']}")
        check(entry["bytes"] == len(data), f"run.json size of {entry['path']}")
    check(info["data"]["tokenizer_sha256"] not in (None, ""), "run.json has the tokenizer checksum")
    check(info["model"]["parameters"] > 0 and "commit" in info["cairn"], "run.json has code and model")

    # 5. the other architectures train too
    run("train", config("g", steps=30, arch="gpt2", kv=4))
    g = metrics("out/g")
    check(g[-1]["loss"] < g[0]["loss"] - 1.0, "gpt2 learns")
    run("train", config("m", steps=30, extra=", moe: {experts: 4, top_k: 2, ffn: 64, shared_experts: 1}"))
    mo = metrics("out/m")
    check(mo[-1]["loss"] < mo[0]["loss"] - 1.0, "MoE learns")
    check(all("aux_loss" in m and m["aux_loss"] > 0 for m in mo), "MoE metrics carry the aux loss")

    # 6. without data.valid, data.split's validation share is evaluated (and differs from none)
    run("train", config("s", steps=20), "--set", "data.valid=", "--set", "data.split=90,10,0",
        "--set", "run.out_dir=out/s")
    s = metrics("out/s")
    check([m["step"] for m in s if "val_loss" in m] == [20], "the split's validation share is evaluated")
    run("train", config("n", steps=20), "--set", "data.valid=", "--set", "run.out_dir=out/n")
    check(not any("val_loss" in m for m in metrics("out/n")), "no validation data: no val_loss")

finish("test_training")
