"""cairn's data order against numpy's RandomState and megatron-core's own dataset code.

Usage: test_megatron_order.py DUMP_ORDER  (tests/tools/dump_order.c)

1. numpy: random_interval (through RandomState.randint, which draws the same way, including the
   64-bit path) and RandomState.shuffle;
2. Megatron's split string (parse_and_normalize_split, convert_split_vector_to_split_matrix);
3. GPTDataset's document / sample / shuffle indices, element for element and in the same dtypes,
   for one and several epochs, with and without a separate final epoch, over a split; the sample
   index also against helpers_cpp.build_sample_idx_int32 and _int64 directly;
4. BlendedDataset: normalised weights, per-dataset sizes and helpers_cpp.build_blending_indices;
5. end to end: every sample cairn's loader reads against what Megatron's
   BlendedMegatronDatasetBuilder(GPTDataset) returns for the same files, for a blend of three
   sources (one of them a directory of shards, compared with the shards merged in path order)
   with a train/valid/test split, and for one source alone.
"""
import glob
import logging
import os
import subprocess
import sys
import tempfile

import numpy
import torch
from cairn_testing import check, finish
from megatron_stub import helpers_cpp, indexed_dataset
from megatron.core.datasets.blended_megatron_dataset_builder import (
    BlendedMegatronDatasetBuilder, _get_size_per_split_per_dataset)
from megatron.core.datasets.blended_megatron_dataset_config import (
    convert_split_vector_to_split_matrix, parse_and_normalize_split)
from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
from megatron.core.datasets.utils import Split, normalize

DUMP = os.path.abspath(sys.argv[1])
logging.getLogger("megatron").setLevel(logging.ERROR)  # "Cannot save the BlendedDataset indexes"


def dump(*args, stdin=None):
    p = subprocess.run([DUMP, *map(str, args)], input=stdin, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"dump_order {' '.join(map(str, args))} failed: {p.stderr}")
    return p.stdout.splitlines()


def numbers(line, skip=1):
    return [int(x) for x in line.split()[skip:]]


class Tokenizer:
    """What GPTDatasetConfig needs of a tokenizer."""
    eod = 0
    pad = -1
    vocab_size = 1 << 24
    unique_identifiers = {"class": "Tokenizer"}


def megatron_config(seed, seq_len, blend, split):
    # no path_to_cache: GPTDataset caches under PREFIX/cache, BlendedDataset not at all (with a
    # cache directory it would ask torch.distributed for the rank)
    return GPTDatasetConfig(random_seed=seed, sequence_length=seq_len, blend=blend, split=split,
                            tokenizer=Tokenizer(), path_to_cache=None,
                            reset_position_ids=False, reset_attention_mask=False,
                            eod_mask_loss=False, create_attention_mask=False)


def write_dataset(prefix, lengths, first_token):
    builder = indexed_dataset.IndexedDatasetBuilder(prefix + ".bin", dtype=numpy.int32)
    token = first_token
    for length in lengths:
        builder.add_document(torch.arange(token, token + length, dtype=torch.int32), [length])
        token += length
    builder.finalize(prefix + ".idx")
    return token


# ---- 1. numpy's RandomState ----
for seed in (0, 1234, 2**32 - 1):
    for high in (1, 2, 5, 1000, 2**31, 2**32 - 2, 2**32 - 1, 2**32, 2**40 + 7, 2**63 - 5):
        want = numpy.random.RandomState(seed).randint(0, high + 1, size=40, dtype=numpy.uint64)
        got = numbers(dump("interval", seed, high, 40)[0], skip=0)
        check(got == [int(x) for x in want], f"random_interval({high}) seed {seed}")
for seed in (0, 1234, 99991):
    lengths = (1, 2, 3, 10, 257, 5000)
    state = numpy.random.RandomState(seed)
    lines = dump("shuffle", seed, *lengths)
    for n, line in zip(lengths, lines):
        want = numpy.arange(n, dtype=numpy.uint32)
        state.shuffle(want)
        check(numbers(line) == want.tolist(), f"shuffle of arange({n}) seed {seed}")

# ---- 2. the split string ----
for text in ("969,30,1", "90,10,0", "1", "0.5 0.5", "98,2", "1,1,1", "7,2,1", "949,50,1"):
    matrix = convert_split_vector_to_split_matrix(parse_and_normalize_split(text))
    for documents in (1, 10, 33, 101, 1000, 12345):
        want = []
        for bookends in matrix:
            if bookends is None:
                want.append((0, -1))
            else:
                begin = int(round(bookends[0] * float(documents)))
                want.append((begin, int(round(bookends[1] * float(documents))) - begin))
        got = [tuple(numbers(line, skip=0)) for line in dump("split", text, documents)]
        check(got == want, f"split {text!r} of {documents} documents: {got} vs {want}")

with tempfile.TemporaryDirectory() as tmp:
    # ---- 3. GPTDataset indices ----
    lengths = numpy.random.RandomState(3).randint(1, 300, size=200).tolist()
    prefix = os.path.join(tmp, "single")
    write_dataset(prefix, lengths, 1)
    low_level = indexed_dataset.IndexedDataset(prefix)
    sizes_text = " ".join(map(str, lengths))
    per_epoch = (sum(lengths) - 1) // 128
    cases = [  # (seed, seq_len, num_samples, first, count)
        (1234, 64, None, 0, 200), (1234, 64, 100, 0, 200), (7, 128, 3 * per_epoch + 9, 0, 200),
        (7, 128, 4 * per_epoch - 5, 0, 200), (99, 17, 5000, 10, 150), (5, 50, 4000, 190, 10),
        (2**32 - 1, 3, 300, 0, 3)]
    for seed, seq_len, num_samples, first, count in cases:
        config = megatron_config(seed, seq_len, ([prefix], None), "1")
        ds = GPTDataset(low_level, prefix, numpy.arange(first, first + count, dtype=numpy.int32),
                        num_samples, Split.train, config)
        lines = dump("gpt", seed, seq_len, -1 if num_samples is None else num_samples, first, count,
                     stdin=sizes_text)
        what = (f"GPTDataset seed {seed} seq_len {seq_len} num_samples {num_samples} "
                f"documents [{first}, +{count})")
        header = lines[0].split()
        check(numbers(lines[1]) == ds.document_index.tolist(), what + ": document_index")
        check(numbers(lines[2], 2) == ds.sample_index.reshape(-1).tolist(), what + ": sample_index")
        check(int(lines[2].split()[1]) == ds.sample_index.dtype.itemsize,
              what + ": sample_index dtype")
        check(numbers(lines[3], 2) == ds.shuffle_index.tolist(), what + ": shuffle_index")
        check(int(lines[3].split()[1]) == ds.shuffle_index.dtype.itemsize,
              what + ": shuffle_index dtype")
        document_index = numpy.array(numbers(lines[1]), dtype=numpy.int32)
        epochs = int(header[1])
        exposed_tokens = int(header[5])
        sizes = numpy.array(lengths, dtype=numpy.int32)
        for build in (helpers_cpp.build_sample_idx_int32, helpers_cpp.build_sample_idx_int64):
            direct = build(sizes, document_index, seq_len, epochs, exposed_tokens, True, 1)
            check(numbers(lines[2], 2) == direct.reshape(-1).tolist(), what + f": {build.__name__}")
    separate = [dump("gpt", s, q, n, f, c, stdin=sizes_text)[0].split()[3]
                for s, q, n, f, c in cases[2:4]]
    check(separate == ["1", "0"],
          f"the cases cover a separate final epoch and a joint one: {separate}")

    # ---- 4. blending ----
    random = numpy.random.RandomState(11)
    weight_sets = [[0.3, 0.7], [5, 3, 2], [1.0], random.uniform(0.01, 1, 9).tolist(),
                   random.uniform(0.01, 1, 20).tolist()]
    for weights in weight_sets:
        for size in (1, 2, 100, 12345):
            lines = dump("blend", size, *[repr(w) for w in weights])
            normalized = normalize(weights)
            what = f"blend of {len(weights)} weights, size {size}"
            check([float(x) for x in lines[0].split()[1:]] == normalized, what + ": normalize")
            targets = _get_size_per_split_per_dataset(normalized, [size])
            check(numbers(lines[1]) == [s[0] for s in targets], what + ": targets")
            check(numbers(lines[2]) == [s[0] for s in _get_size_per_split_per_dataset(
                normalized, [size], surplus=0.005)], what + ": buffers")
            source = numpy.zeros(size, dtype=numpy.int16)
            sample = numpy.zeros(size, dtype=numpy.int64)
            helpers_cpp.build_blending_indices(source, sample, numpy.array(normalized),
                                               len(weights), size, False)
            check(numbers(lines[3]) == source.tolist(), what + ": dataset_index")
            check(numbers(lines[4]) == sample.tolist(), what + ": dataset_sample_index")

    # ---- 5. end to end ----
    token = 1
    prefixes = []
    for s, count in enumerate((120, 90)):
        p = os.path.join(tmp, f"source{s}")
        token = write_dataset(p, random.randint(1, 80, size=count).tolist(), token)
        prefixes.append(p)
    shard_dir = os.path.join(tmp, "shards")
    os.makedirs(shard_dir)
    for i in range(12):
        token = write_dataset(os.path.join(shard_dir, f"part-{i:03d}"),
                              random.randint(1, 60, size=random.randint(0, 9)).tolist(), token)
    merged = os.path.join(tmp, "merged")
    builder = indexed_dataset.IndexedDatasetBuilder(merged + ".bin", dtype=numpy.int32)
    for shard in sorted(glob.glob(os.path.join(shard_dir, "*.bin"))):
        builder.add_index(shard[:-4])
    builder.finalize(merged + ".idx")

    def megatron_samples(blend, split, sizes, seq_len, seed):
        config = megatron_config(seed, seq_len, blend, split)
        datasets = BlendedMegatronDatasetBuilder(GPTDataset, sizes, lambda: True, config).build()
        result = []
        for dataset in datasets:
            rows = []
            for i in range(len(dataset) if dataset is not None else 0):
                item = dataset[i]
                rows.append(item["tokens"].tolist() + item["labels"][-1:].tolist())
            result.append(rows)
        return result

    def cairn_samples(sources, split, which, samples, seq_len, seed, max_open, count):
        args = ["samples", "--seq-len", seq_len, "--seed", seed, "--samples", samples,
                "--which", which, "--count", count, "--max-open", max_open, "--split", split]
        for weight, path in sources:
            args += ["--source", weight, path]
        return [numbers(line, skip=0) for line in dump(*args)]

    weights = [0.5, 0.3, 0.2]
    seq_len, train, valid = 16, 300, 40
    want = megatron_samples(([prefixes[0], merged, prefixes[1]], weights), "90,8,2",
                            [train, valid, 0], seq_len, 4321)
    for which, samples, rows in (("train", train, want[0]), ("valid", valid, want[1])):
        sources = [(weights[0], prefixes[0]), (weights[1], shard_dir), (weights[2], prefixes[1])]
        got = cairn_samples(sources, "90,8,2", which, samples, seq_len, 4321, 3, len(rows))
        check(len(rows) >= samples, f"Megatron's {which} blend holds {len(rows)} samples")
        check(got == rows, f"blend of 3 sources (one a directory of 12 shards), {which} split: "
                           f"all {len(rows)} samples equal Megatron's")
    pattern = os.path.join(shard_dir, "part-0*")
    want = megatron_samples(([merged], None), "100,0,0", [500, 0, 0], 8, 77)[0]
    got = cairn_samples([(1, pattern)], "", "train", 500, 8, 77, 2, len(want))
    check(len(want) >= 500 and got == want,
          f"one source (a glob of 12 shards, 2 mapped at once): all {len(want)} samples equal "
          f"Megatron's")
    got = cairn_samples([(1, prefixes[1])], "", "train", 50, 31, 1, 64, 60)
    want = megatron_samples(([prefixes[1]], None), "1", [50, 0, 0], 31, 1)[0]
    check(got == want[:60], "one source, seq_len 31, seed 1: samples equal Megatron's")

finish("test_megatron_order")
