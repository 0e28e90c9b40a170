"""Checkpoints through the CLI: exact resume (llama, gpt2 and MoE; AdamW and AdEMAMix; blended
sources), the documented HDF5 layout read with h5py, retention, damaged and incomplete
checkpoints, kill -9 at random moments (also during saves), a failed save (file size limit),
SIGTERM/SIGUSR1, weights-only starts, model-shape refusal, `cairn eval` against training's
val_loss, and `cairn inspect`. Usage: test_checkpoint.py CAIRN"""
import functools, glob, json, os, random, resource, shutil, signal, subprocess, sys, tempfile, time

import h5py
import numpy as np

from cairn_testing import check, finish, metrics, run_cairn, toy_documents, write_documents

cairn = os.path.abspath(sys.argv[1])
run = functools.partial(run_cairn, cairn)


COMPARED = ("step", "loss", "lr", "grad_norm", "tokens", "loss_tokens", "val_loss", "aux_loss", "z_loss")


def same_history(a, b):
    return len(a) == len(b) and all(x.get(k) == y.get(k) for x, y in zip(a, b) for k in COMPARED)


def tensors(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def same_tensors(a, b):
    ta, tb = tensors(a), tensors(b)
    return ta.keys() == tb.keys() and all(np.array_equal(ta[k], tb[k]) for k in ta)


def checkpoint(out_dir, step):
    return os.path.join(out_dir, "checkpoints", f"step-{step:08d}.h5")


def steps_in(out_dir):
    return sorted(int(os.path.basename(p)[5:13]) for p in glob.glob(os.path.join(out_dir, "checkpoints", "step-*.h5")))


MODEL = {
    "llama": "arch: llama, layers: 2, d_model: 32, heads: 4, kv_heads: 2, ffn: 64, seq_len: 32",
    "gpt2": "arch: gpt2, layers: 2, d_model: 32, heads: 4, kv_heads: 4, ffn: 64, seq_len: 32",
    "moe": "arch: llama, layers: 2, d_model: 32, heads: 4, kv_heads: 2, ffn: 64, seq_len: 32, "
           "moe: {experts: 4, top_k: 2, ffn: 32, shared_experts: 1}",
}
CONFIG = """run: {{name: t, out_dir: out, seed: 7, steps: {steps}, log_every: 1, eval_every: {eval_every}}}
model: {{{model}}}
train: {{micro_batch: 2, global_batch: 4}}
optim: {{name: {optim}, lr: 0.003, min_lr: 0.0003, schedule: {{kind: {schedule}, warmup: 3}}{extra_optim}}}
data: {{tokenizer: bytes, sources: [{sources}], valid: data/a, eval_samples: 8}}
checkpoint: {{every: {every}, keep: 0}}
"""


def config(name, model="llama", optim="adamw", steps=20, every=5, schedule="cosine", eval_every=10,
           sources="{path: data/a, weight: 0.7}, {path: data/b, weight: 0.3}"):
    extra = ", ademamix: {alpha: 5, warmup: 8}" if optim == "ademamix" else ""
    with open(f"{name}.yaml", "w") as f:
        f.write(CONFIG.format(steps=steps, model=MODEL[model], optim=optim, schedule=schedule,
                              extra_optim=extra, sources=sources, every=every, eval_every=eval_every))
    return f"{name}.yaml"


def exact_resume(model, optim, sources):
    """Resume from the step-10 checkpoint of a finished 20-step run, with the later history left
    behind as a crash would: the continued run must repeat it bit for bit."""
    tag = f"{model}-{optim}"
    cfg = config(tag, model=model, optim=optim, sources=sources)
    run("train", cfg, "--set", f"run.out_dir={tag}-full")
    shutil.copytree(f"{tag}-full", f"{tag}-part")
    for step in (15, 20):
        os.remove(checkpoint(f"{tag}-part", step))
        os.remove(checkpoint(f"{tag}-part", step) + ".done")
    p = run("train", cfg, "--set", f"run.out_dir={tag}-part")
    check(f"resuming from {tag}-part/checkpoints/step-00000010.h5 at step 10" in p.stdout,
          f"{tag}: resume names the checkpoint and the step")
    full, part = metrics(f"{tag}-full"), metrics(f"{tag}-part")
    check([m["step"] for m in part] == list(range(1, 21)), f"{tag}: metrics history kept up to 10, then appended")
    check(same_history(full, part), f"{tag}: resumed losses, lr, grad norms bit-identical")
    check(same_tensors(checkpoint(f"{tag}-full", 20), checkpoint(f"{tag}-part", 20)),
          f"{tag}: final weights, optimizer state and cursor bit-identical")


def layout():
    path = checkpoint("llama-adamw-full", 20)
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        check(attrs.get("format") == "cairn" and attrs.get("version") == 1, "root attributes format and version")
        check(attrs.get("step") == 20 and attrs.get("tokens") == 20 * 4 * 32, "root attributes step and tokens")
        check("d_model: 32" in attrs.get("config", ""), "root attribute config holds the resolved YAML")
        check(attrs.get("optimizer") == "adamw", "root attribute optimizer")
        check(set(f.keys()) == {"model", "optim", "data", "rng"}, "groups /model /optim /data /rng")
        emb = f["model/embed.tokens"]
        check(emb.shape == (258, 32) and emb.dtype == np.float32, "/model/embed.tokens is fp32 [vocab, d_model]")
        check(emb.fletcher32 and emb.chunks is not None, "datasets are chunked with Fletcher-32")
        check(f["model/layers.1.attn.wq"].shape == (32, 32), "layer tensors named layers.<i>.…")
        check(set(f["optim"].keys()) == set(f["model"].keys()), "/optim has one group per parameter")
        check(set(f["optim/embed.tokens"].keys()) == {"m", "v"}, "AdamW saves m and v")
        check(int(f["data/consumed_samples"][0]) == 20 * 4, "/data/consumed_samples = steps * global_batch")
        check(int(f["rng/seed"][0]) == 7, "/rng/seed is run.seed")
    with h5py.File(checkpoint("gpt2-ademamix-full", 20), "r") as f:
        check(set(f["optim/embed.tokens"].keys()) == {"m", "v", "m2"}, "AdEMAMix saves the slow moment m2")
        check(f.attrs["optimizer"] == "ademamix", "root attribute optimizer ademamix")
    with open(path + ".done") as f:
        marker = json.load(f)
    check(marker == {"step": 20, "bytes": os.path.getsize(path)}, "the marker records step and size")


def extend_finished_run():
    """Train 10 steps, then raise run.steps to 20 and resume: identical to 20 steps at once
    (a constant schedule, so the first run's schedule is the same)."""
    cfg = config("ext", schedule="constant", every=10)
    run("train", cfg, "--set", "run.out_dir=ext-full")
    run("train", cfg, "--set", "run.out_dir=ext-part", "--set", "run.steps=10")
    p = run("train", cfg, "--set", "run.out_dir=ext-part", "--set", "run.steps=10")
    check("nothing to train" in p.stdout, "a finished run resumed with the same steps has nothing to do")
    run("train", cfg, "--set", "run.out_dir=ext-part")
    check(same_history(metrics("ext-full"), metrics("ext-part")), "10 steps + 10 resumed = 20 steps: same metrics")
    check(same_tensors(checkpoint("ext-full", 20), checkpoint("ext-part", 20)), "10 + 10 = 20 steps: same final state")


def retention():
    cfg = config("keep", every=2, steps=10)
    run("train", cfg, "--set", "run.out_dir=keep", "--set", "checkpoint.keep=2")
    names = sorted(os.listdir("keep/checkpoints"))
    check(names == ["step-00000008.h5", "step-00000008.h5.done", "step-00000010.h5", "step-00000010.h5.done"],
          f"keep=2 leaves the two newest complete checkpoints: {names}")
    cfg = config("no-final", every=4, steps=10)
    run("train", cfg, "--set", "run.out_dir=no-final", "--set", "checkpoint.at_end=false")
    check(steps_in("no-final") == [4, 8], f"at_end=false saves only the periodic steps: {steps_in('no-final')}")


def damaged_and_incomplete():
    cfg = config("llama-adamw")
    shutil.copytree("llama-adamw-full", "bad")
    # newest: truncated; next: one flipped bit in tensor data; next: no marker; then step 5 (good)
    with open(checkpoint("bad", 20), "r+b") as f:
        f.truncate(os.path.getsize(checkpoint("bad", 20)) // 2)
    with h5py.File(checkpoint("bad", 15), "r") as f:
        offset = f["model/layers.0.attn.wq"].id.get_chunk_info(0).byte_offset + 10
    with open(checkpoint("bad", 15), "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x04]))
    os.remove(checkpoint("bad", 10) + ".done")
    p = run("train", cfg, "--set", "run.out_dir=bad", "--set", "run.steps=20")
    out = p.stdout
    check("skipping bad/checkpoints/step-00000020.h5: truncated" in out, "auto skips the truncated checkpoint, naming it")
    check("skipping bad/checkpoints/step-00000015.h5: damaged" in out and "layers.0.attn.wq" in out
          and "Fletcher32" in out, "auto skips the bit-flipped checkpoint, naming it and the dataset")
    check("skipping bad/checkpoints/step-00000010.h5: incomplete" in out, "auto skips the checkpoint without marker")
    check("resuming from bad/checkpoints/step-00000005.h5 at step 5" in out, "auto resumes from the newest good one")
    check(same_tensors(checkpoint("llama-adamw-full", 20), checkpoint("bad", 20)), "and continues identically")

    # explicit paths are refused with one line naming the file (and the dataset)
    flipped = os.path.abspath("flipped.h5")
    shutil.copy(checkpoint("llama-adamw-full", 15), flipped)
    with open(flipped, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x04]))
    p = run("train", cfg, "--set", "run.out_dir=explicit", "--set", f"checkpoint.resume={flipped}", expect=1)
    check(p.stderr.count("\n") == 1 and flipped in p.stderr and "layers.0.attn.wq" in p.stderr,
          f"an explicit bit-flipped checkpoint is refused in one line: {p.stderr!r}")
    truncated = os.path.abspath("truncated.h5")
    shutil.copy(checkpoint("llama-adamw-full", 15), truncated)
    os.truncate(truncated, 4000)
    p = run("train", cfg, "--set", "run.out_dir=explicit", "--set", f"checkpoint.resume={truncated}", expect=1)
    check(p.stderr.count("\n") == 1 and truncated in p.stderr, f"an explicit truncated checkpoint is refused: {p.stderr!r}")
    with open("text.h5", "w") as f:
        f.write("hello\n")
    p = run("train", cfg, "--set", "run.out_dir=explicit", "--set", "checkpoint.resume=text.h5", expect=1)
    check("text.h5: not an HDF5 file" in p.stderr, "a non-HDF5 checkpoint is refused")

    # every complete checkpoint damaged: refuse rather than silently start over
    shutil.copytree("llama-adamw-full", "allbad")
    for step in (5, 10, 15, 20):
        shutil.copy(flipped, checkpoint("allbad", step))
        with open(checkpoint("allbad", step) + ".done", "w") as f:
            json.dump({"step": step, "bytes": os.path.getsize(flipped)}, f)
    p = run("train", cfg, "--set", "run.out_dir=allbad", expect=1)
    check("no usable checkpoint" in p.stderr, "all checkpoints damaged: an error, not a fresh start")


def refuse_other_shape():
    cfg = config("llama-adamw")
    shutil.copytree("llama-adamw-full", "shape")
    p = run("train", cfg, "--set", "run.out_dir=shape", "--set", "run.steps=25", "--set", "model.ffn=96", expect=1)
    check(p.stderr.count("\n") == 1 and "layers.0.mlp" in p.stderr and "[64 x 32] in the checkpoint" in p.stderr
          and "[96 x 32] in the configured model" in p.stderr,
          f"another model shape is refused naming the tensor: {p.stderr!r}")
    p = run("train", cfg, "--set", "run.out_dir=shape", "--set", "run.steps=25", "--set", "model.layers=3", expect=1)
    check(p.stderr.count("\n") == 1 and "layers.2." in p.stderr, f"a missing layer is refused: {p.stderr!r}")
    p = run("train", cfg, "--set", "run.out_dir=shape", "--set", "run.steps=25", "--set", "optim.name=ademamix", expect=1)
    check("trained with adamw" in p.stderr, f"another optimizer is refused: {p.stderr!r}")


def timelines():
    """resume none, or a path to an older checkpoint, beside later checkpoints: refused (a later
    resume: auto would pick those); once they are moved away, the rolled-back run goes on."""
    cfg = config("llama-adamw")
    shutil.copytree("llama-adamw-full", "roll")
    p = run("train", cfg, "--set", "run.out_dir=roll", "--set", "checkpoint.resume=none", expect=1)
    check("up to step 20, after step 0" in p.stderr, f"resume none beside checkpoints is refused: {p.stderr!r}")
    older = os.path.abspath(checkpoint("roll", 10))
    p = run("train", cfg, "--set", "run.out_dir=roll", "--set", f"checkpoint.resume={older}", expect=1)
    check("up to step 20, after step 10" in p.stderr, f"rolling back beside later checkpoints is refused: {p.stderr!r}")
    os.makedirs("roll/later")
    for step in (15, 20):
        for suffix in ("", ".done"):
            shutil.move(checkpoint("roll", step) + suffix, "roll/later/")
    run("train", cfg, "--set", "run.out_dir=roll", "--set", f"checkpoint.resume={older}")
    check(same_tensors(checkpoint("llama-adamw-full", 20), checkpoint("roll", 20)), "the rolled-back run repeats the original")


def weights_only():
    cfg = config("llama-adamw")
    # written by another tool (as an importer would): h5py's own layouts, contiguous or gzip chunks
    path = os.path.abspath("weights.h5")
    with h5py.File(checkpoint("llama-adamw-full", 20), "r") as source, h5py.File(path, "w") as f:
        for key in ("format", "version", "config"):
            f.attrs[key] = source.attrs[key]
        f.attrs["step"], f.attrs["tokens"] = 0, 0
        for i, name in enumerate(source["model"]):
            values = source["model"][name][()]
            if i % 2:
                f.create_dataset(f"model/{name}", data=values, chunks=True, compression="gzip")
            else:
                f.create_dataset(f"model/{name}", data=values)
    p = run("train", cfg, "--set", "run.out_dir=weights", "--set", f"checkpoint.resume={path}", "--set", "run.steps=5")
    check("weights only" in p.stdout, "a weights-only checkpoint says so")
    w, full = metrics("weights"), metrics("llama-adamw-full")
    check(w[0]["step"] == 1 and w[0]["tokens"] == 4 * 32, "a weights-only start begins at step 1")
    check(w[0]["loss"] < full[0]["loss"] - 0.5, "from the loaded weights, not from scratch")
    p = run("eval", path, "--data", "data/a", "--samples", "8")
    check(json.loads(p.stdout)["loss"] == metrics("llama-adamw-full")[-1]["val_loss"],
          "a checkpoint in h5py's layouts reads the same weights")


def evaluate():
    final = metrics("llama-adamw-full")[-1]
    p = run("eval", checkpoint("llama-adamw-full", 20), "--data", "data/a", "--samples", "8")
    result = json.loads(p.stdout)
    check(result["loss"] == final["val_loss"], f"eval {result['loss']} equals training's val_loss {final['val_loss']}")
    check(p.stdout.count("\n") == 1 and result["tokens"] > 0, "eval prints one JSON line with tokens")
    p = run("eval", checkpoint("moe-ademamix-full", 20), "--data", "data/b", "--samples", "3")
    check(json.loads(p.stdout)["loss"] > 0, "eval of an MoE checkpoint on another dataset")
    p = run("eval", "flipped.h5", "--data", "data/a", expect=1)
    check(p.stderr.count("\n") == 1 and "flipped.h5" in p.stderr, f"eval of a damaged checkpoint: {p.stderr!r}")
    p = run("eval", checkpoint("llama-adamw-full", 20), "--data", "data/nothing", expect=1)
    check(p.stderr.count("\n") == 1 and "data/nothing" in p.stderr, f"eval of a missing prefix: {p.stderr!r}")
    p = run("eval", checkpoint("llama-adamw-full", 20), expect=2)
    check("usage" in p.stderr, "eval without --data is a usage error")


def inspect():
    path = checkpoint("moe-ademamix-full", 20)
    p = run("inspect", path)
    out = p.stdout
    check("step: 20" in out and "tokens: 2560" in out, "inspect prints step and tokens")
    check("MoE 4 experts top-2" in out and "d_model 32" in out, "inspect prints the model shape")
    values = tensors(path)
    params = sum(v.size for k, v in values.items() if k.startswith("model/"))
    check(f"parameters: {params} in" in out, "inspect prints the parameter count")
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  /")}
    ok = len(lines) == sum(1 for k in values if k.startswith(("model/", "optim/")))
    for name, value in values.items():
        if not name.startswith(("model/", "optim/")):
            continue
        line = lines.get("/" + name, "")
        shape = " x ".join(str(d) for d in value.shape)
        norm = float(line.rsplit("l2 ", 1)[-1]) if "l2 " in line else -1
        ok &= f"[{shape}]" in line and abs(norm - np.linalg.norm(value.astype(np.float64))) <= 1e-5 * (1 + norm)
    check(ok, "inspect lists every tensor with its shape and L2 norm")
    p = run("inspect", "flipped.h5", expect=1)
    check("Fletcher32" in p.stderr, "inspect reads every tensor, so it reports a checksum error")


def wait_for_lines(out_dir, count, process, timeout=60):
    deadline = time.time() + timeout
    path = os.path.join(out_dir, "metrics.jsonl")
    while time.time() < deadline and process.poll() is None:
        if os.path.exists(path) and sum(1 for _ in open(path)) >= count:
            return True
        time.sleep(0.01)
    return False


def signals():
    # 600 steps (about 1.5 s) leave the signal, sent once step 20 is logged, ample time to land
    # while training runs; at 120 the margin was about 0.2 s
    steps = 600
    cfg = config("sig", steps=steps, every=0, eval_every=40)
    run("train", cfg, "--set", "run.out_dir=sig-full")
    p = subprocess.Popen([cairn, "train", cfg, "--set", "run.out_dir=sig-part"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    started = wait_for_lines("sig-part", 20, p)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate()
    stopped = steps_in("sig-part")
    check(started and p.returncode == 0 and "stopped by SIGTERM" in out, f"SIGTERM: checkpoint and exit 0 ({p.returncode}, {err!r})")
    check(len(stopped) == 1 and 20 <= stopped[0] < steps, f"SIGTERM: one checkpoint at the step it stopped ({stopped})")
    run("train", cfg, "--set", "run.out_dir=sig-part")
    check(same_history(metrics("sig-full"), metrics("sig-part")), "after SIGTERM the resumed run repeats the losses")
    check(same_tensors(checkpoint("sig-full", steps), checkpoint("sig-part", steps)), "after SIGTERM: same final state")

    p = subprocess.Popen([cairn, "train", cfg, "--set", "run.out_dir=sig-usr1"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    wait_for_lines("sig-usr1", 5, p)
    p.send_signal(signal.SIGUSR1)
    out, err = p.communicate()
    check(p.returncode == 0 and "stopped by SIGUSR1" in out, "SIGUSR1 stops with a checkpoint too")

    p = subprocess.Popen([cairn, "train", cfg, "--set", "run.out_dir=sig-twice"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    wait_for_lines("sig-twice", 5, p)
    os.kill(p.pid, signal.SIGTERM)
    os.kill(p.pid, signal.SIGUSR1)
    out, err = p.communicate()
    check(p.returncode in (128 + signal.SIGTERM, 128 + signal.SIGUSR1) and "second stop signal" in err,
          f"a second signal exits at once, non-zero ({p.returncode})")


def kill_during_saves():
    """kill -9 at random moments of a run whose saves take about as long as its steps; every
    complete checkpoint stays readable and the run ends identical to an uninterrupted one."""
    big = ["--set", "model.vocab=30000", "--set", "model.seq_len=8", "--set", "train.micro_batch=1",
           "--set", "train.global_batch=1", "--set", "checkpoint.every=1", "--set", "checkpoint.keep=3"]
    cfg = config("kill", steps=40, eval_every=20)
    run("train", cfg, "--set", "run.out_dir=kill-full", *big)
    rng = random.Random(1)
    in_save = kills = 0
    seen = set()
    while kills < 40 and (in_save < 2 or kills < 6):
        markers = set(glob.glob("kill/checkpoints/*.done"))
        temporaries = lambda: {(t, os.path.getmtime(t)) for t in glob.glob("kill/checkpoints/*.tmp")
                               if os.path.exists(t)}
        before = temporaries()
        p = subprocess.Popen([cairn, "train", cfg, "--set", "run.out_dir=kill", *big],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # every other kill waits for a save in progress (its temporary file appears) and lands
        # at once; the others land at a random moment after the run's first new checkpoint
        in_progress = kills % 2 == 0
        deadline = time.time() + 30
        while p.poll() is None and time.time() < deadline:
            try:
                if in_progress and temporaries() - before:
                    break
            except FileNotFoundError:  # renamed between the listing and the look
                pass
            if not in_progress and set(glob.glob("kill/checkpoints/*.done")) > markers:
                time.sleep(rng.uniform(0.0, 0.05))
                break
            time.sleep(0.001)
        p.kill()
        p.wait()
        kills += 1
        left = {(path, os.path.getmtime(path)) for path in glob.glob("kill/checkpoints/*.tmp")}
        in_save += bool(left - seen)
        seen |= left
        for path in glob.glob("kill/checkpoints/step-*.h5"):
            if os.path.exists(path + ".done"):
                try:
                    tensors(path)
                except OSError as error:
                    check(False, f"a checkpoint with a marker is readable after kill -9: {path}: {error}")
    check(in_save >= 2, f"some kills landed during a save ({in_save} of {kills})")
    print(f"kill -9: {in_save} of {kills} kills landed during a save")
    run("train", cfg, "--set", "run.out_dir=kill", *big)
    check(same_history(metrics("kill-full"), metrics("kill")), f"after {kills} kill -9: the same losses")
    check(same_tensors(checkpoint("kill-full", 40), checkpoint("kill", 40)), "after kill -9: the same final state")


def failed_save():
    cfg = config("fsize", steps=10, every=5)
    run("train", cfg, "--set", "run.out_dir=fsize")
    size = os.path.getsize(checkpoint("fsize", 10))

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    p = run("train", cfg, "--set", "run.out_dir=fsize", "--set", "run.steps=15", expect=1,
            preexec_fn=limit, restore_signals=False)
    check(p.stderr.count("\n") == 1 and "step-00000015.h5.tmp" in p.stderr,
          f"a save over the file size limit fails in one line naming the file: {p.stderr!r}")
    check(sorted(os.listdir("fsize/checkpoints")) == ["step-00000005.h5", "step-00000005.h5.done",
                                                      "step-00000010.h5", "step-00000010.h5.done"],
          "the failed save left nothing behind and the previous checkpoints alone")
    p = run("train", cfg, "--set", "run.out_dir=fsize", "--set", "run.steps=15")
    check("resuming from fsize/checkpoints/step-00000010.h5" in p.stdout, "the previous checkpoint still resumes")


with tempfile.TemporaryDirectory() as tmp:
    os.chdir(tmp)
    docs = toy_documents()
    write_documents("a.txt", docs)
    write_documents("b.txt", [" ".join(reversed(d.split())) for d in docs[:150]])
    run("prepare", "--tokenizer", "bytes", "--output", "data/a", "a.txt")
    run("prepare", "--tokenizer", "bytes", "--output", "data/b", "b.txt")

    started = time.time()
    blend = "{path: data/a, weight: 0.7}, {path: data/b, weight: 0.3}"
    exact_resume("llama", "adamw", blend)
    exact_resume("gpt2", "ademamix", blend)
    exact_resume("moe", "ademamix", "{path: data/b, weight: 1}")
    exact_resume("moe", "adamw", "{path: data/a, weight: 0.5}, {path: data/b, weight: 0.5}")
    layout()
    extend_finished_run()
    retention()
    damaged_and_incomplete()
    refuse_other_shape()
    timelines()
    weights_only()
    evaluate()
    inspect()
    signals()
    kill_during_saves()
    failed_save()
    print(f"({time.time() - started:.0f}s)")

finish("test_checkpoint")
