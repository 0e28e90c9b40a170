"""Cross-check of cairn's Goldfish mask against the reference algorithms written in PyTorch.

Usage: test_goldfish_torch.py GOLDFISH_MASK_TOOL

The torch side follows swiss-ai/Megatron-LM's GPTDataset (apertus: product hash over the h labels
ending at each target, padding rewritten to 0), swiss-ai/Megatron-LM-MoE's goldfish.py (coef:
odd random coefficients, exemption table holding the EOD id) and ahans30/goldfish-loss (static:
targets 0, k, 2k, ...). Samples mix large random ids (products that wrap past the sign bit), a
small vocabulary (zeros, ones, repeats), padding (-1) and duplicated documents. Exits non-zero on
any differing mask, and first checks that this torch reproduces the table of the reference notes
(otherwise the comparison would prove nothing).
"""
import subprocess
import sys

import numpy as np
import torch

TABLE_SIZE = 1_000_003
TABLE_SEED = 2971215073
PAD = -1
DROPPED = -2


def hash_table():
    return torch.rand(TABLE_SIZE, generator=torch.Generator(device="cpu").manual_seed(TABLE_SEED))


def check_table(table):
    head = [0.233683884, 0.441264033, 0.741147697, 0.909271896, 0.711322308, 0.00112521648,
            0.217162848, 0.0382027626]
    expected = torch.tensor(head + [0.836006761], dtype=torch.float32)
    got = torch.cat([table[:8], table[-1:]])
    if not torch.equal(got, expected) or int((table < 1 / 50).sum()) != 19901:
        sys.exit(f"torch {torch.__version__} does not reproduce the reference table: {got}")


def coefficients(h):
    generator = torch.Generator(device="cpu").manual_seed(TABLE_SEED + h)
    return torch.randint(0, 2**62, (h,), dtype=torch.int64, generator=generator) | 1


def reference_mask(variant, k, h, eod_id, labels, table):
    """Loss mask (1 kept, 0 dropped) of one sample, as the reference data paths compute it."""
    labels = torch.tensor(labels, dtype=torch.int64)
    mask = torch.ones(len(labels), dtype=torch.int64)
    if variant == "static":
        mask[torch.arange(len(labels))[0::k]] = 0
        return mask
    labels[labels == PAD] = 0
    masked = labels.clone()
    windows = labels.unfold(0, h, 1)
    if variant == "apertus":
        drop = table[windows.prod(-1) % TABLE_SIZE] < 1 / k
    else:
        drop = table[(windows * coefficients(h)).sum(dim=-1) % TABLE_SIZE] < 1 / k
        if eod_id >= 0:
            exempt = torch.zeros(int(labels.max()) + 1 if len(labels) else 1, dtype=torch.bool)
            if eod_id < len(exempt):
                exempt[eod_id] = True
            drop &= ~exempt[labels][h - 1:]
    masked[h - 1:][drop] = DROPPED
    mask[masked == DROPPED] = 0
    return mask


def make_samples(seed, count, length, eod_id):
    rng = np.random.RandomState(seed)
    document = rng.randint(0, 131072, size=length // 3)
    samples = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            sample = rng.randint(0, 131072, size=length)
        elif kind == 1:
            sample = rng.randint(0, 300, size=length)
        elif kind == 2:
            sample = rng.randint(0, 131072, size=length)
            start = rng.randint(0, length - len(document) + 1)
            sample[start:start + len(document)] = document
        else:
            sample = rng.randint(0, 131072, size=length)
            sample[rng.randint(length // 2, length):] = PAD
        if eod_id >= 0:
            sample[rng.rand(length) < 0.05] = eod_id
        samples.append(sample.tolist())
    return samples


def run_tool(tool, variant, k, h, eod_id, samples):
    text = "".join(" ".join(map(str, s)) + "\n" for s in samples)
    result = subprocess.run([tool, variant, str(k), str(h), str(eod_id)], input=text,
                            capture_output=True, text=True, check=True)
    return [[int(c) for c in line] for line in result.stdout.splitlines()]


def main():
    tool = sys.argv[1]
    table = hash_table()
    check_table(table)
    cases = [("apertus", 50, 50, -1), ("apertus", 4, 4, -1), ("apertus", 2, 13, 2),
             ("coef", 50, 50, 2), ("coef", 4, 13, 0), ("coef", 2, 4, -1), ("static", 5, 50, -1)]
    failures = 0
    for case_index, (variant, k, h, eod_id) in enumerate(cases):
        samples = make_samples(100 + case_index, 200, 512, eod_id)
        got = run_tool(tool, variant, k, h, eod_id, samples)
        differing, dropped, targets = 0, 0, 0
        for sample, cairn_mask in zip(samples, got):
            expected = reference_mask(variant, k, h, eod_id, sample, table)
            differing += int(cairn_mask != expected.tolist())
            dropped += int((expected == 0).sum())
            targets += len(sample)
        if len(got) != len(samples):
            differing = len(samples)
        print(f"{variant} k={k} h={h} eod={eod_id}: {len(samples)} samples, "
              f"{dropped}/{targets} dropped, {differing} masks differ")
        if differing or dropped == 0:
            failures += 1
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
