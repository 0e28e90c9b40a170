"""`cairn prepare` and the shard readers against the reference implementations.

1. cairn prepare output (txt, jsonl, jsonl.gz, globs) read by megatron-core's IndexedDataset gives
   exactly the documents and tokens of the input, each followed by EOD.
2. Datasets written by megatron-core's IndexedDatasetBuilder in every dtype of its table (one with a
   document of several sequences) read by cairn (tests/tools/dump_dataset) identically.
3. llm.c shards of both kinds, written with numpy as llm.c's dev/data/data_common.py does, with
   EOT before every document as fineweb.py writes them, read as those documents.
4. Truncated or corrupt .idx/.bin and llm.c shards: each refused by `cairn inspect` with exit 1 and
   exactly the expected one-line message.
5. jsonl.gz + glob inputs with --threads 1, 2 and 4: byte-identical outputs, also read by megatron;
   the same with a byte-level BPE tokenizer.json (trained here), whose ids match Hugging Face's.
Usage: test_megatron_format.py CAIRN DUMP_DATASET
"""
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
import torch

from cairn_testing import check, failures
from megatron_stub import indexed_dataset

EOD = 256
DTYPE_NAMES = {np.uint8: "uint8", np.int8: "int8", np.int16: "int16", np.int32: "int32",
               np.int64: "int64", np.float64: "float64", np.float32: "float32",
               np.uint16: "uint16"}
LLMC = {"gpt-2": (20240520, 1, np.uint16, 50256, 1 << 16),
        "llama-3": (20240801, 7, np.uint32, 128000, 128256)}


def run(args, expect_status=0):
    result = subprocess.run(args, capture_output=True, text=True)
    check(result.returncode == expect_status,
          f"{' '.join(map(str, args[1:4]))}... exit {result.returncode}, expected "
          f"{expect_status}: {result.stderr.strip()}")
    return result


def dump(tool, path):
    """(header fields, documents) as cairn reads them."""
    lines = run([tool, path]).stdout.split("\n")
    header = dict(line.split(" ", 1) for line in lines[:4])
    documents = [[int(t) for t in line.split()] for line in lines[4:-1]]
    return header, documents


def megatron_documents(prefix):
    """Documents of a Megatron dataset as megatron-core reads them (sequences joined per document)."""
    data = indexed_dataset.IndexedDataset(prefix)
    bounds = data.document_indices
    return data, [np.concatenate([data[s] for s in range(bounds[d], bounds[d + 1])]
                                 + [np.zeros(0, data.index.dtype)])
                  for d in range(len(bounds) - 1)]


def check_prepare_read_by_megatron(cairn, work):
    texts = []
    with open(f"{work}/p-1.txt", "w", encoding="utf-8") as f:
        f.write("First document\nwith two lines\n\n\n  \nGrüße, 世界\r\n")
    texts += ["First document\nwith two lines", "Grüße, 世界"]
    with open(f"{work}/p-2.jsonl", "w", encoding="utf-8") as f:
        for text in ["escapes \" \\ \n \t", "emoji 😀", ""]:
            f.write(json.dumps({"text": text, "n": 1}) + "\n")
    texts += ["escapes \" \\ \n \t", "emoji 😀"]
    with gzip.open(f"{work}/p-3.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"text": "compressed ☃ " * 400}) + "\n")
    texts.append("compressed ☃ " * 400)
    prefix = f"{work}/prepared"
    result = run([cairn, "prepare", "--tokenizer", "bytes", "--output", prefix, "--threads", "2",
                  f"{work}/p-*.txt", f"{work}/p-?.jsonl*"])
    check(f"{len(texts)} documents" in result.stderr, "summary counts the documents")
    data, documents = megatron_documents(prefix)
    check(data.index.dtype == np.uint16, f"dtype {data.index.dtype}, expected uint16")
    check(len(documents) == len(texts), f"{len(documents)} documents, expected {len(texts)}")
    check(np.array_equal(data.document_indices, np.arange(len(texts) + 1)),
          "one sequence per document")
    for i, (document, text) in enumerate(zip(documents, texts)):
        expected = list(text.encode("utf-8")) + [EOD]
        check(document.tolist() == expected, f"prepared document {i} differs")
    check(int(data.sequence_lengths.sum()) == sum(len(t.encode()) + 1 for t in texts),
          "token count")


def check_builder_dtypes(tool, work):
    rng = np.random.RandomState(7)
    for dtype, name in DTYPE_NAMES.items():
        high = min(np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1 << 20, 1 << 20)
        prefix = f"{work}/built-{name}"
        builder = indexed_dataset.IndexedDatasetBuilder(prefix + ".bin", dtype=dtype)
        for length in [5, 0, 1, 300]:
            builder.add_item(torch.from_numpy(rng.randint(0, high, length).astype(np.int64)))
            builder.end_document()
        # one document of two sequences, as Megatron's --split-sentences writes
        builder.add_document(rng.randint(0, high, 7), [3, 4])
        builder.finalize(prefix + ".idx")
        _, expected = megatron_documents(prefix)
        header, documents = dump(tool, prefix)
        check(header == {"format": "megatron", "dtype": name, "documents": "5",
                         "tokens": str(sum(map(len, expected)))}, f"{name}: header {header}")
        check(documents == [d.astype(np.int64).tolist() for d in expected],
              f"{name}: documents differ from megatron's")


def write_llmc_shard(filename, tokens, model_desc):
    """llm.c dev/data/data_common.py write_datafile: 256 int32 header, then the tokens."""
    magic, version, token_dtype, _, _ = LLMC[model_desc]
    header = np.zeros(256, dtype=np.int32)
    header[0] = magic
    header[1] = version
    header[2] = len(tokens)
    with open(filename, "wb") as f:
        f.write(header.tobytes())
        f.write(np.array(tokens, dtype=token_dtype).tobytes())


def check_llmc_shards(cairn, tool, work):
    rng = random.Random(3)
    for model_desc, (magic, version, token_dtype, eot, token_limit) in LLMC.items():
        # a shard that starts inside a document continued from the previous shard
        documents = [[rng.randrange(eot) for _ in range(rng.randrange(1, 40))]]
        for _ in range(20):
            documents.append([eot] + [rng.randrange(eot + 1, token_limit) if rng.random() < 0.3
                                      else rng.randrange(eot) for _ in range(rng.randrange(0, 60))])
        path = f"{work}/{model_desc}_val_000000.bin"
        write_llmc_shard(path, [t for d in documents for t in d], model_desc)
        header, read = dump(tool, path)
        dtype = "uint16" if token_dtype == np.uint16 else "uint32"
        check(header == {"format": "llm.c", "dtype": dtype, "documents": str(len(documents)),
                         "tokens": str(sum(map(len, documents)))}, f"{model_desc}: {header}")
        check(read == documents, f"{model_desc}: documents differ")
        report = run([cairn, "inspect", path]).stdout
        check(f"format: llm.c ({'GPT-2' if eot == 50256 else 'Llama-3'}, magic {magic}, "
              f"version {version}, EOT {eot})\n" in report, f"{model_desc}: inspect {report!r}")


def expect_refused(cairn, path, message):
    result = run([cairn, "inspect", path], 1)
    check(result.stderr == f"cairn inspect: {message}\n",
          f"message {result.stderr!r}, expected {message!r}")


def check_corrupt_files(cairn, work):
    prefix = f"{work}/good"
    builder = indexed_dataset.IndexedDatasetBuilder(prefix + ".bin", dtype=np.uint16)
    for document in [[1, 2, 3], [4], [5, 6]]:
        builder.add_item(torch.tensor(document))
        builder.end_document()
    builder.finalize(prefix + ".idx")
    with open(prefix + ".idx", "rb") as f:
        good_index = f.read()
    with open(prefix + ".bin", "rb") as f:
        good_data = f.read()

    def megatron_case(name, index=good_index, data=good_data):
        with open(f"{work}/{name}.idx", "wb") as f:
            f.write(index)
        with open(f"{work}/{name}.bin", "wb") as f:
            f.write(data)
        return f"{work}/{name}"

    def patched(offset, raw):
        return good_index[:offset] + raw + good_index[offset + len(raw):]

    # layout for S=3 sequences, D'=4: lengths at 34, pointers at 46, document_indices at 70
    p = megatron_case("short", good_index[:20])
    expect_refused(cairn, p, f"{p}.idx: file too short (20 bytes, the header alone is 34)")
    p = megatron_case("magic", patched(0, b"XMIDIDX"))
    expect_refused(cairn, p, f"{p}.idx: bad magic (not a Megatron indexed dataset index)")
    p = megatron_case("version", patched(9, (2).to_bytes(8, "little")))
    expect_refused(cairn, p, f"{p}.idx: version 2 is not supported (expected 1)")
    p = megatron_case("dtype", patched(17, b"\x09"))
    expect_refused(cairn, p, f"{p}.idx: unknown dtype code 9")
    p = megatron_case("cut", good_index[:-8])
    expect_refused(cairn, p, f"{p}.idx: sequence_count 3 and document_count 4 do not match the "
                             f"file length ({len(good_index) - 8} bytes)")
    p = megatron_case("pointers", patched(54, (8).to_bytes(8, "little")))
    expect_refused(cairn, p, f"{p}.idx: sequence_pointers[1] is 8, expected 6 from the sequence "
                             f"lengths")
    p = megatron_case("documents", patched(78, (3).to_bytes(8, "little")))
    expect_refused(cairn, p, f"{p}.idx: document_indices[2] = 2 is below the previous entry 3")
    p = megatron_case("truncated", data=good_data[:-2])
    expect_refused(cairn, p, f"{p}.bin: file has 10 bytes, the index describes 12")
    p = f"{work}/fraction"
    builder = indexed_dataset.IndexedDatasetBuilder(p + ".bin", dtype=np.float32)
    builder.add_item(torch.tensor([1.0, 2.0, 3.5]))
    builder.end_document()
    builder.finalize(p + ".idx")
    expect_refused(cairn, p, f"{p}.bin: token 2 is 3.5, not an integer token id (float32)")

    tokens = [50256, 1, 2, 50256, 3]
    shards = {
        "bad-magic": (np.array([20240521, 1, 5], np.int32), np.uint16,
                      "bad magic 20240521 (not an llm.c token shard: expected 20240520 for GPT-2 "
                      "or 20240801 for Llama-3)"),
        "bad-version": (np.array([20240520, 7, 5], np.int32), np.uint16,
                        "version 7 is not supported for magic 20240520 (expected 1)"),
        "bad-size": (np.array([20240520, 1, 6], np.int32), np.uint16,
                     "token count 6 needs 1036 bytes, the file has 1034"),
        "llama-bad-size": (np.array([20240801, 7, 5], np.int32), np.uint16,
                           "token count 5 needs 1044 bytes, the file has 1034"),
    }
    for name, (fields, token_dtype, message) in shards.items():
        header = np.zeros(256, np.int32)
        header[:3] = fields
        path = f"{work}/{name}.bin"
        with open(path, "wb") as f:
            f.write(header.tobytes() + np.array(tokens, token_dtype).tobytes())
        expect_refused(cairn, path, f"{path}: {message}")
    path = f"{work}/headless.bin"
    with open(path, "wb") as f:
        f.write(np.array([20240520, 1, 0], np.int32).tobytes())
    expect_refused(cairn, path, f"{path}: file too short (12 bytes, the llm.c header alone is 1024)")


def check_threads_identical(cairn, work):
    rng = random.Random(11)
    words = ["alpha", "βeta", "gamma", "δelta", "épsilon", "zeta", "\u00a0", "😀"]
    os.mkdir(f"{work}/corpus")
    texts = []
    for part in range(3):
        with gzip.open(f"{work}/corpus/part-{part}.jsonl.gz", "wt", encoding="utf-8") as f:
            for i in range(2500):
                text = " ".join(rng.choice(words) for _ in range(rng.randrange(0, 60)))
                f.write(json.dumps({"id": i, "content": text}) + "\n")
                if text:
                    texts.append(text)
    outputs = []
    for threads in (1, 2, 4):
        prefix = f"{work}/threads-{threads}"
        run([cairn, "prepare", "--tokenizer", "bytes", "--field", "content", "--quiet",
             "--threads", str(threads), "--output", prefix, f"{work}/corpus/part-*.jsonl.gz"])
        with open(prefix + ".bin", "rb") as b, open(prefix + ".idx", "rb") as i:
            outputs.append((b.read(), i.read()))
    check(len(outputs[0][0]) > 1_000_000, f"{len(outputs[0][0])} bytes: too little to need chunks")
    check(outputs[1] == outputs[0], "--threads 2 output differs from --threads 1")
    check(outputs[2] == outputs[0], "--threads 4 output differs from --threads 1")
    _, documents = megatron_documents(f"{work}/threads-4")
    check(len(documents) == len(texts), f"{len(documents)} documents, expected {len(texts)}")
    check(all(d.tolist() == list(t.encode()) + [EOD] for d, t in zip(documents, texts)),
          "multi-threaded documents differ from the input")
    check_bpe_threads(cairn, work, texts)


def check_bpe_threads(cairn, work, texts):
    """A byte-level BPE tokenizer.json encoding on 1 and 4 threads: the same bytes, and the ids of
    Hugging Face tokenizers followed by EOD."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    hf.train_from_iterator(texts[:2000], trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf.save(f"{work}/bpe.json")
    outputs = []
    for threads in (1, 4):
        prefix = f"{work}/bpe-{threads}"
        run([cairn, "prepare", "--tokenizer", f"{work}/bpe.json", "--field", "content", "--quiet",
             "--threads", str(threads), "--output", prefix, f"{work}/corpus/part-*.jsonl.gz"])
        with open(prefix + ".bin", "rb") as b, open(prefix + ".idx", "rb") as i:
            outputs.append((b.read(), i.read()))
    check(outputs[1] == outputs[0], "BPE: --threads 4 output differs from --threads 1")
    _, documents = megatron_documents(f"{work}/bpe-4")
    eod = hf.token_to_id("<|endoftext|>")
    expected = [e.ids + [eod] for e in hf.encode_batch(texts, add_special_tokens=False)]
    check([d.tolist() for d in documents] == expected, "BPE: ids differ from Hugging Face's")


def main():
    cairn, tool = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as work:
        check_prepare_read_by_megatron(cairn, work)
        check_builder_dtypes(tool, work)
        check_llmc_shards(cairn, tool, work)
        check_corrupt_files(cairn, work)
        check_threads_identical(cairn, work)
    print(f"test_megatron_format: {'ok' if not failures else f'{len(failures)} failures'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
