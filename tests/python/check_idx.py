"""Cross-check of `cairn prepare` against the Megatron .bin/.idx layout, read
independently with numpy (formats.md 1.1/1.2): header fields, pointers equal to
the running byte sums, one sequence per document, and every document decoding
back to its input text followed by EOD. Also checks `cairn inspect` and the
prepare exit codes. Usage: check_idx.py CAIRN"""
import gzip
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from cairn_testing import check, failures

EOD = 256
DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64,
          7: np.float32, 8: np.uint16}


def read_megatron(prefix):
    """Documents of PREFIX as lists of token ids, following Megatron's _IndexReader."""
    with open(prefix + ".idx", "rb") as f:
        idx = f.read()
    check(idx[:9] == b"MMIDIDX\x00\x00", "magic")
    version = int(np.frombuffer(idx, "<u8", 1, 9)[0])
    dtype_code = idx[17]
    sequences = int(np.frombuffer(idx, "<u8", 1, 18)[0])
    document_entries = int(np.frombuffer(idx, "<u8", 1, 26)[0])
    check(version == 1, "version 1")
    check(dtype_code == 8, "uint16 for a 258-token vocabulary")
    check(len(idx) == 34 + 12 * sequences + 8 * document_entries, "idx length")
    lengths = np.frombuffer(idx, "<i4", sequences, 34)
    pointers = np.frombuffer(idx, "<i8", sequences, 34 + 4 * sequences)
    documents = np.frombuffer(idx, "<i8", document_entries, 34 + 12 * sequences)
    itemsize = np.dtype(DTYPES[dtype_code]).itemsize
    expected_pointers = np.concatenate([[0], np.cumsum(lengths[:-1].astype(np.int64) * itemsize)])
    check(np.array_equal(pointers, expected_pointers), "pointers are the running byte sums")
    check(np.array_equal(documents, np.arange(sequences + 1)), "one sequence per document")
    tokens = np.fromfile(prefix + ".bin", dtype=np.dtype(DTYPES[dtype_code]).newbyteorder("<"))
    check(tokens.size == int(lengths.sum()), "bin length")
    return [tokens[p // itemsize:p // itemsize + n] for p, n in zip(pointers, lengths)]


def run(args, expect_status):
    result = subprocess.run(args, capture_output=True, text=True)
    check(result.returncode == expect_status,
          f"{' '.join(args[1:3])}... exit {result.returncode}, expected {expect_status}: "
          f"{result.stderr.strip()}")
    return result


def main():
    cairn = sys.argv[1]
    with tempfile.TemporaryDirectory() as work:
        def path(name):
            return os.path.join(work, name)

        with open(path("a.txt"), "w", encoding="utf-8") as f:
            f.write("First line\nsecond line\n\n\n   \nGrüße, 世界\r\n\nlast\n")
        texts = ["First line\nsecond line", "Grüße, 世界", "last"]
        records = [
            {"text": "quote \" backslash \\ slash / controls \b\f\n\r\t", "id": 1},
            {"meta": {"nested": [1, 2.5e-3, None, True]}, "text": "emoji 😀 and é, ü"},
            {"text": "plain"},
        ]
        with open(path("b.jsonl"), "w", encoding="utf-8") as f:
            for i, record in enumerate(records):
                # odd lines ASCII-only (\uXXXX escapes, surrogate pairs), even lines raw UTF-8
                f.write(json.dumps(record, ensure_ascii=(i % 2 == 1)) + "\n")
        texts += [r["text"] for r in records]
        with gzip.open(path("c.jsonl.gz"), "wt", encoding="utf-8") as f:
            f.write(json.dumps({"text": "compressed ☃"}) + "\n\n")
            f.write(json.dumps({"text": "x" * 5000}) + "\n")
        texts += ["compressed ☃", "x" * 5000]

        prefix = path("out/data")
        os.mkdir(path("out"))
        result = run([cairn, "prepare", "--tokenizer", "bytes", "--output", prefix,
                      path("a.txt"), path("b.jsonl"), path("c.jsonl.gz")], 0)
        check(f"{len(texts)} documents" in result.stderr, "summary line counts documents")
        documents = read_megatron(prefix)
        check(len(documents) == len(texts), f"{len(documents)} documents, expected {len(texts)}")
        for i, (document, text) in enumerate(zip(documents, texts)):
            check(document.size > 0 and int(document[-1]) == EOD, f"document {i} ends with EOD")
            decoded = bytes(document[:-1].astype(np.uint8)).decode("utf-8")
            check(decoded == text, f"document {i}: {decoded[:60]!r} != {text[:60]!r}")
        total = sum(len(t.encode("utf-8")) + 1 for t in texts)

        result = run([cairn, "inspect", prefix, "--tokenizer", "bytes"], 0)
        check(f"documents: {len(texts)}\n" in result.stdout, "inspect documents")
        check(f"tokens: {total}\n" in result.stdout, "inspect tokens")
        check("First line\nsecond line<|endoftext|>" in result.stdout, "inspect first document")

        with open(path("bad.jsonl"), "w") as f:
            f.write('{"text": "fine"}\n{"text": "broken\n')
        result = run([cairn, "prepare", "--tokenizer", "bytes", "--output", path("bad"),
                      path("bad.jsonl")], 1)
        check("bad.jsonl:2: invalid JSON" in result.stderr, "bad line named with its number")
        check(not os.path.exists(path("bad.bin")) and not os.path.exists(path("bad.idx")),
              "no partial output")
        run([cairn, "prepare", "--output", path("x"), path("a.txt")], 2)
    print(f"check_idx: {'ok' if not failures else f'{len(failures)} failures'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
