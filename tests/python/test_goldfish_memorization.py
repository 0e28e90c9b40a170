"""The Goldfish memorization benchmark at a tiny size: the direction of the effect, with margins.

The same 4-layer byte-level llama (0.8M parameters) is trained twice, 1000 steps of 8 x 64
tokens, on a mixture of 16 short English fortunes (weight 0.75: about 245 passes over them) and
the other English fortunes (weight 0.25), once without and once with Goldfish (apertus variant,
k = 4, h = 13). The two trainings run side by side, one thread each. Then
`cairn eval --memorization` measures greedy recall of each memorized document's 32 tokens after
its first 32, and `cairn eval` the loss on 64 held-out fortunes. Asserted (measured values and
the margins' reasons in docs/goldfish.md, "Tests"):
- without Goldfish the model reproduces most documents verbatim (exact match >= 0.75);
- with Goldfish it reproduces none or almost none (exact match <= 0.25 and at least 0.5 below),
  and the per-token match falls by at least 0.4;
- the held-out loss with Goldfish stays within 25% of the loss without it, and both are far
  below the loss of an untrained model (ln 258 = 5.55), so the Goldfish model did learn;
- on held-out documents neither model reproduces a continuation (at most 1 of 16): the
  benchmark measures recall of training documents, not the predictability of text;
- the JSON line's fields, and bad arguments (exit 2, one line naming the problem).
CPU backend: deterministic, so the numbers are the same on every run of one build.

usage: test_goldfish_memorization.py CAIRN
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_DOCUMENTS = os.path.join(HERE, "..", "..", "examples", "goldfish", "make_documents.py")

CONFIG = """\
run: {name: goldfish-ci, seed: 1, steps: 1000, log_every: 100, eval_every: 0}
model: {arch: llama, layers: 4, d_model: 128, heads: 4, kv_heads: 2, ffn: 384, seq_len: 64,
        activation: swiglu, document_masking: true, tie_embeddings: true}
train: {micro_batch: 8, global_batch: 8, grad_clip: 1.0}
optim: {name: adamw, lr: 0.003, min_lr: 0.0003, weight_decay: 0.0,
        schedule: {kind: cosine, warmup: 10}}
data:
  tokenizer: bytes
  sources: [{path: data/general, weight: 0.25}, {path: data/memorize, weight: 0.75}]
  valid: data/valid
  eval_samples: 1000
"""
GOLDFISH = ["--set", "train.goldfish.enabled=true", "--set", "train.goldfish.k=4",
            "--set", "train.goldfish.h=13", "--set", "train.goldfish.variant=apertus"]

failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)


def run(args, cwd, expect=0):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if result.returncode != expect:
        sys.exit(f"{' '.join(args)}: exit {result.returncode} (expected {expect})\n"
                 f"{result.stdout}{result.stderr}")
    return result


def eval_json(cairn, work, checkpoint, *arguments):
    line = run([cairn, "eval", checkpoint] + list(arguments), work).stdout.strip()
    return json.loads(line)


def train_side_by_side(cairn, work, runs):
    """Trains every (name, extra arguments) at once, one thread each (the CPU backend gives the
    same numbers at any thread count); returns {name: checkpoint path}."""
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    processes = {}
    for name, extra in runs:
        log = open(os.path.join(work, name + ".log"), "w")
        command = [cairn, "train", "config.yaml", "--set", f"run.out_dir=runs/{name}"] + extra
        processes[name] = (subprocess.Popen(command, cwd=work, env=environment, stdout=log,
                                            stderr=subprocess.STDOUT), log, command)
    checkpoints = {}
    for name, (process, log, command) in processes.items():
        process.wait()
        log.close()
        if process.returncode != 0:
            with open(log.name) as f:
                sys.exit(f"{' '.join(command)}: exit {process.returncode}\n{f.read()}")
        folder = os.path.join(work, "runs", name, "checkpoints")
        newest = sorted(f for f in os.listdir(folder) if f.endswith(".h5"))[-1]
        checkpoints[name] = os.path.join("runs", name, "checkpoints", newest)
    return checkpoints


def check_bad_arguments(cairn, work, checkpoint):
    cases = [
        (["--memorization", "--data", "data/memorize", "--prefix", "0"],
         "--prefix 0: expected a positive integer"),
        (["--memorization", "--data", "data/memorize", "--continuation", "x"],
         "--continuation x: expected a positive integer"),
        (["--data", "data/memorize", "--documents", "4"], "--documents needs --memorization"),
        (["--memorization", "--data", "data/memorize", "--samples", "4"],
         "--samples counts loss windows"),
        (["--memorization", "--data", "data/memorize", "--prefix", "40", "--continuation", "40"],
         "--prefix 40 + --continuation 40: must fit in the checkpoint's model.seq_len (64)"),
        (["--memorization", "--data", "data/memorize", "--prefix"], "--prefix: expected a value"),
        (["--memorization"], "missing --data PREFIX"),
    ]
    for arguments, message in cases:
        result = subprocess.run([cairn, "eval", checkpoint] + arguments, cwd=work,
                                capture_output=True, text=True)
        first = result.stderr.splitlines()[0] if result.stderr else ""
        check(result.returncode == 2 and message in first and not result.stdout,
              f"eval {' '.join(arguments)}: exit 2 with '{message}' (got {result.returncode}: "
              f"{first!r})")
    result = subprocess.run([cairn, "eval", checkpoint, "--memorization", "--data", "data/none"],
                            cwd=work, capture_output=True, text=True)
    check(result.returncode == 1 and "data/none" in result.stderr
          and len(result.stderr.splitlines()) == 1,
          f"eval --memorization on a missing dataset: exit 1, one line naming it "
          f"(got {result.returncode}: {result.stderr.strip()!r})")


def main():
    cairn = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="cairn-goldfish-memorization-")
    try:
        subprocess.run([sys.executable, MAKE_DOCUMENTS, "--output", os.path.join(work, "data"),
                        "--memorize", "16", "--valid", "64", "--min-bytes", "80",
                        "--max-bytes", "120"], check=True)
        for name in ("memorize", "valid", "general"):
            run([cairn, "prepare", "--tokenizer", "bytes", "--output", f"data/{name}",
                 f"data/{name}.jsonl"], work)
        with open(os.path.join(work, "config.yaml"), "w") as f:
            f.write(CONFIG)
        checkpoints = train_side_by_side(cairn, work, [("baseline", []), ("goldfish", GOLDFISH)])
        check_bad_arguments(cairn, work, checkpoints["baseline"])
        results = {}
        for name, checkpoint in checkpoints.items():
            results[name] = {
                "train": eval_json(cairn, work, checkpoint, "--memorization", "--data",
                                   "data/memorize"),
                "held_out": eval_json(cairn, work, checkpoint, "--memorization", "--data",
                                      "data/valid", "--documents", "16"),
                "valid_loss": eval_json(cairn, work, checkpoint, "--data", "data/valid")["loss"],
            }
            print(name, json.dumps(results[name]), flush=True)
        base, gold = results["baseline"], results["goldfish"]
        check(base["train"]["documents"] == 16 and base["train"]["prefix"] == 32
              and base["train"]["continuation"] == 32,
              "16 documents measured with the default prefix 32 and continuation 32 (seq_len 64)")
        check(base["train"]["exact_match"] >= 0.75,
              f"baseline memorizes: exact match {base['train']['exact_match']} >= 0.75")
        check(gold["train"]["exact_match"] <= 0.25 and
              gold["train"]["exact_match"] <= base["train"]["exact_match"] - 0.5,
              f"Goldfish suppresses verbatim recall: exact match {gold['train']['exact_match']} "
              f"<= 0.25 and <= baseline - 0.5")
        check(gold["train"]["token_match"] <= base["train"]["token_match"] - 0.4,
              f"token match {gold['train']['token_match']} <= baseline "
              f"{base['train']['token_match']} - 0.4")
        check(gold["valid_loss"] <= 1.25 * base["valid_loss"],
              f"held-out loss with Goldfish {gold['valid_loss']:.4f} within 25% of the baseline's "
              f"{base['valid_loss']:.4f}")
        check(max(base["valid_loss"], gold["valid_loss"]) < 3.0,
              "both models learned the language (held-out loss < 3.0, untrained 5.55)")
        check(max(base["held_out"]["exact_match"], gold["held_out"]["exact_match"]) <= 1 / 16,
              "held-out documents are not reproduced (exact match <= 1/16 for both)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print("goldfish memorization: all checks passed")


if __name__ == "__main__":
    main()
