"""Writes the document sets of the Goldfish example as JSON lines for `cairn prepare`.

The documents are English fortunes (Debian's `fortunes` package), ASCII only. Those of a byte
length in [--min-bytes, --max-bytes], in a fixed shuffled order, make the two measured sets: the
first --memorize go to memorize.jsonl (the documents training repeats many times), the next
--valid to valid.jsonl (held out, never trained on). Every other fortune, of any length, goes to
general.jsonl (the rest of the training mixture, seen about once); a text equal to one of the
measured documents is left out of it, so the held-out set stays unseen. The output depends only
on the arguments and the fortune files. Python standard library only.
"""
import argparse
import json
import os
import random
import re
import sys

FORTUNE_DIR = "/usr/share/games/fortunes"
# English fortune files of prose (no ASCII art, no other languages)
FILES = ["computers", "cookie", "definitions", "education", "humorists", "law", "literature",
         "love", "medicine", "men-women", "miscellaneous", "people", "platitudes", "politics",
         "science", "wisdom", "work"]
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def fortunes(directory):
    """The entries of the English fortune files, escape sequences and trailing blanks removed."""
    for name in FILES:
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        for entry in re.split(r"\n%\n", text):
            entry = ANSI_ESCAPE.sub("", entry)
            entry = "\n".join(line.rstrip() for line in entry.split("\n")).strip()
            if entry:
                yield entry


def write_jsonl(path, texts):
    with open(path, "w") as f:
        for text in texts:
            f.write(json.dumps({"text": text}) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="folder for the three .jsonl files")
    parser.add_argument("--memorize", type=int, default=32)
    parser.add_argument("--valid", type=int, default=256)
    parser.add_argument("--min-bytes", type=int, default=200)
    parser.add_argument("--max-bytes", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fortune-dir", default=FORTUNE_DIR)
    args = parser.parse_args()
    documents = [d for d in fortunes(args.fortune_dir) if d.isascii()]
    measured = [d for d in documents if args.min_bytes <= len(d) <= args.max_bytes]
    random.Random(args.seed).shuffle(measured)
    if len(measured) < args.memorize + args.valid:
        sys.exit(f"make_documents.py: {args.fortune_dir}: only {len(measured)} English fortunes "
                 f"of {args.min_bytes}-{args.max_bytes} bytes, {args.memorize + args.valid} "
                 "needed (install Debian's 'fortunes' package)")
    memorize = measured[:args.memorize]
    valid = measured[args.memorize:args.memorize + args.valid]
    taken = set(memorize) | set(valid)
    os.makedirs(args.output, exist_ok=True)
    write_jsonl(os.path.join(args.output, "memorize.jsonl"), memorize)
    write_jsonl(os.path.join(args.output, "valid.jsonl"), valid)
    write_jsonl(os.path.join(args.output, "general.jsonl"), [d for d in documents if d not in taken])


if __name__ == "__main__":
    main()
