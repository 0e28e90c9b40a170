"""Single-core encoding throughput: cairn vs Hugging Face tokenizers vs tiktoken.

Usage: tokenizer_vs_hf.py TOKENIZE_TEXT [TOKENIZER_JSON...]   (run by tokenizer_vs_hf.sh)

The text is the first 12 MB of Debian's fortune corpus (the UTF-8 files, one fortune per
document; repeated if it is smaller). Without TOKENIZER_JSON arguments two tokenizers of the
real ones' sizes are trained on it with `tokenizers`: GPT-2's pipeline (ByteLevel regex, 50257
tokens) and Llama-3's (Split regex + ByteLevel, ignore_merges, 128000 tokens). Each engine encodes every document on one core, best of five rounds:
cairn through tests/tools/tokenize_text (with a tokenizer_encoder, and with plain
tokenizer_encode), Hugging Face with encode_batch under RAYON_NUM_THREADS=1, tiktoken with
encode_ordinary_batch(num_threads=1) built from the same ranks. Throughput is per CPU second of
the process (on a shared machine wall time mostly measures the neighbours); the token counts of
the three must agree.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers starts its thread pool

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from test_tokenizer_parity import (FORTUNES, GPT2, LLAMA3, fortune_documents,  # noqa: E402
                                   tiktoken_encoding)

TARGET_BYTES = 12 << 20
ROUNDS = 5


def corpus():
    documents = [text for _, text in fortune_documents() if text is not None]
    if not documents:
        sys.exit(f"no UTF-8 fortunes under {FORTUNES} (apt-get install fortunes)")
    taken, size = [], 0
    while size < TARGET_BYTES:  # repeated when the corpus is smaller
        d = documents[len(taken) % len(documents)]
        taken.append(d)
        size += len(d.encode())
    return taken


def train(work, documents):
    paths = []
    for name, size, pre_tokenizer, ignore_merges in (
            ("gpt2-50k", 50257, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
             False),
            ("llama3-128k", 128000, pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), True)):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizer
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(documents, trainers.BpeTrainer(
            vocab_size=size, special_tokens=["<|endoftext|>"], show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        spec = json.loads(tok.to_str())
        spec["model"]["ignore_merges"] = ignore_merges
        path = os.path.join(work, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False)
        paths.append(path)
    return paths


def pattern_of(spec):
    pre = spec["pre_tokenizer"]
    if pre["type"] == "ByteLevel":
        return GPT2
    for step in pre.get("pretokenizers", []):
        if step["type"] == "Split" and "Regex" in step["pattern"]:
            return step["pattern"]["Regex"]
    return None


def best_of(function):
    best, result = None, None
    for _ in range(ROUNDS):
        start = time.process_time()
        result = function()
        seconds = time.process_time() - start
        best = seconds if best is None else min(best, seconds)
    return best, result


def main():
    tool = sys.argv[1]
    documents = corpus()
    total = sum(len(d.encode()) for d in documents)
    print(f"text: {len(documents)} fortunes, {total / 1e6:.1f} MB; one core; "
          f"best of {ROUNDS} rounds, CPU seconds")
    with tempfile.TemporaryDirectory(prefix="cairn-tokenizer-bench-") as work:
        paths = sys.argv[2:] or train(work, documents)
        records = os.path.join(work, "text.records")
        with open(records, "wb") as f:
            for d in documents:
                b = d.encode()
                f.write(b"%d\n" % len(b) + b)
        print(f"{'tokenizer':<24} {'engine':<28} {'MB/s':>8} {'Mtokens/s':>10} {'tokens':>11}")
        for path in paths:
            with open(path, encoding="utf-8") as f:
                spec = json.load(f)
            name = os.path.basename(path)
            rows = []
            out = subprocess.run([tool, path, "bench", records, str(ROUNDS)], check=True,
                                 capture_output=True, text=True)
            mine = json.loads(out.stdout)
            rows.append(("cairn (tokenizer_encoder)", mine["seconds"], mine["tokens"]))
            rows.append(("cairn (tokenizer_encode)", mine["seconds_without_encoder"],
                         mine["tokens"]))
            hf = Tokenizer.from_file(path)
            seconds, encodings = best_of(
                lambda: hf.encode_batch(documents, add_special_tokens=False))
            rows.append(("HF tokenizers 0.19 (batch)", seconds, sum(len(e.ids) for e in encodings)))
            pattern = pattern_of(spec)
            if pattern is not None:
                encoding = tiktoken_encoding("bench", spec, pattern)
                seconds, encoded = best_of(
                    lambda: encoding.encode_ordinary_batch(documents, num_threads=1))
                rows.append(("tiktoken 0.14 (batch)", seconds, sum(len(e) for e in encoded)))
            for engine, seconds, tokens in rows:
                print(f"{name:<24} {engine:<28} {total / seconds / 1e6:8.2f} "
                      f"{tokens / seconds / 1e6:10.2f} {tokens:11d}")
            if len({tokens for _, _, tokens in rows[:3]}) != 1:
                print(f"{name}: cairn and Hugging Face disagree on the token count")
                sys.exit(1)


if __name__ == "__main__":
    main()
