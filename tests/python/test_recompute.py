"""train.recompute through the CLI: the built-in tiny run (and an MoE variant of it) gives
bit-identical metrics with `full` and `none` — losses, gradient norms, router losses, validation
loss — at a lower peak backend memory, and records the key in the resolved config; an unknown
value is a one-line error naming the key. Usage: test_recompute.py CAIRN"""
import functools
import os
import sys
import tempfile

from cairn_testing import check, finish, metrics, run_cairn, toy_documents, write_documents

run = functools.partial(run_cairn, os.path.abspath(sys.argv[1]))

# Keys whose values must not move with recomputation (time, throughput and mfu may).
SAME = ("step", "loss", "lr", "grad_norm", "tokens", "loss_tokens", "aux_loss", "z_loss",
        "val_loss")

with tempfile.TemporaryDirectory() as tmp:
    os.chdir(tmp)
    # the built-in default reads runs/corpus/fortunes-{train,valid} under the working directory
    documents = toy_documents()
    write_documents("train.txt", documents[:360])
    write_documents("valid.txt", documents[360:])
    for split in ("train", "valid"):
        run("prepare", "--tokenizer", "bytes", "--output", f"runs/corpus/fortunes-{split}",
            f"{split}.txt")

    def train(name, *sets):
        args = ["train", "--set", f"run.out_dir=out/{name}", "--set", "run.steps=4",
                "--set", "run.log_every=1", "--set", "run.eval_every=2",
                "--set", "optim.schedule.warmup=1"]
        for assignment in sets:
            args += ["--set", assignment]
        run(*args)
        return metrics(f"out/{name}")

    moe = ("model.moe.experts=4", "model.moe.shared_experts=1")
    for label, extra in (("dense", ()), ("moe", moe)):
        kept = train(f"{label}-none", *extra)
        recomputed = train(f"{label}-full", *extra, "train.recompute=full")
        check(len(kept) >= 4 and len(kept) == len(recomputed), f"{label}: one line per step each")
        check(any("val_loss" in m for m in kept), f"{label}: the run evaluates")
        for key in SAME:
            check([m.get(key) for m in kept] == [m.get(key) for m in recomputed],
                  f"{label}: {key} identical with train.recompute=full")
        peak = [max(m.get("peak_memory_bytes", 0) for m in lines) for lines in (kept, recomputed)]
        check(0 < peak[1] < peak[0], f"{label}: peak backend memory {peak[1]} with full, "
              f"{peak[0]} with none")
        print(f"{label}: peak backend memory {peak[0]} bytes with none, {peak[1]} with full")
        if label == "moe":
            check(all(m.get("aux_loss", 0) > 0 for m in kept if "loss" in m),
                  "moe: the router's auxiliary loss is reported")
        with open(f"out/{label}-full/config.yaml") as f:
            check("recompute: full" in f.read(), f"{label}: the resolved config records recompute")
        with open(f"out/{label}-none/config.yaml") as f:
            check("recompute: none" in f.read(), f"{label}: the default is written as none")

    p = run("train", "--set", "train.recompute=bogus", "--set", "run.out_dir=out/bogus",
            expect="failure")
    lines = p.stderr.strip().splitlines()
    check(len(lines) == 1, f"one line on stderr, got {lines}")
    check("train.recompute" in p.stderr, f"the error names train.recompute: {p.stderr.strip()}")
    check(not os.path.exists("out/bogus/metrics.jsonl"), "no metrics from a refused config")

finish("test_recompute")
