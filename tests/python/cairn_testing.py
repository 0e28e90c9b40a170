"""What the Python tests share: counted checks, running the cairn binary, the toy corpus they train
on, and reading metrics.jsonl.

`check` counts a check and prints and remembers a failed one (in `failures`); `finish(name)` prints
"NAME: P passed, F failed" and exits non-zero on any failure. `run_cairn` ends the test at once,
showing cairn's output, when its exit status is not the expected one."""
import json
import os
import subprocess
import sys

failures = []
passed = 0


def check(condition, what):
    global passed
    if condition:
        passed += 1
    else:
        failures.append(what)
        print("FAIL:", what)
    return condition


def finish(name):
    print(f"{name}: {passed} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


def run_cairn(cairn, *args, expect=0, **kwargs):
    """`cairn ARGS`, output captured. expect: the exit status; None: any; "failure": any but 0."""
    p = subprocess.run([cairn, *args], capture_output=True, text=True, **kwargs)
    if p.returncode == 0 if expect == "failure" else expect is not None and p.returncode != expect:
        print(p.stdout, p.stderr)
        raise SystemExit(f"cairn {' '.join(args)}: exit {p.returncode}, expected {expect}")
    return p


def metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


WORDS = "the quick brown fox jumps over the lazy dog while a cat sleeps on the warm mat".split()


def toy_documents(count=400):
    """Sentences of 12 to 18 words walking through WORDS: quick to learn, no two alike in a row."""
    return [" ".join(WORDS[(i * 3 + j) % len(WORDS)] for j in range(12 + i % 7)) + "."
            for i in range(count)]


def write_documents(path, documents):
    """A .txt input for `cairn prepare`: documents separated by blank lines."""
    with open(path, "w") as f:
        f.write("\n\n".join(documents) + "\n")
