#!/usr/bin/env bash
# `cairn prepare` / `cairn inspect` on bad command lines and bad inputs: each is refused with the
# expected status and ONE line on stderr naming the file (and line), and a good dataset already
# at the output prefix is left byte-identical, with no temporary file behind.
# Usage: prepare_bad_input.sh CAIRN
set -u
cairn="$1"
source "$(dirname "$0")/expect.sh"
one_line_errors=1

printf 'good document\n\nanother\n' >good.txt
"$cairn" prepare --quiet --tokenizer bytes --output out/data good.txt || { echo "FAIL: setup"; exit 1; }
cp out/data.bin keep.bin
cp out/data.idx keep.idx

prepare() { "$cairn" prepare --tokenizer bytes --output out/data "$@"; }

expect 2 "usage: cairn prepare" -- "$cairn" prepare
expect 2 "missing --output" -- "$cairn" prepare --tokenizer bytes good.txt
expect 2 "--threads needs a whole number from 1 to 1024, not 0" -- prepare --threads 0 good.txt
expect 2 "--threads needs a whole number from 1 to 1024, not two" -- prepare --threads two good.txt
expect 2 "unknown option --thread" -- prepare --thread 2 good.txt
expect 1 "missing.txt: cannot open: No such file or directory" -- prepare good.txt missing.txt
expect 1 "nothing-*.jsonl: no input file matches this pattern" -- prepare good.txt 'nothing-*.jsonl'
printf 'a,b\n' >table.csv
expect 1 "table.csv: unknown input type (expected .txt, .txt.gz, .jsonl or .jsonl.gz)" -- prepare table.csv
mkdir folder.txt
expect 1 "folder.txt: read error after line 0" -- prepare good.txt folder.txt

printf '{"text": "fine"}\n\n{"text": "broken}\n' >broken.jsonl
expect 1 "broken.jsonl:3: invalid JSON (unterminated string at column 18)" -- prepare broken.jsonl
printf '{"text": "fine"}\n{"body": "x"}\n' >nofield.jsonl
expect 1 "nofield.jsonl:2: no \"text\" field" -- prepare nofield.jsonl
expect 1 "nofield.jsonl:1: no \"body\" field" -- prepare --field body nofield.jsonl
printf '{"text": ["not", "a", "string"]}\n' >list.jsonl
expect 1 "list.jsonl:1: field \"text\" is not a string" -- prepare list.jsonl

for i in $(seq 1 3000); do printf '{"text": "line %d of a compressed file"}\n' "$i"; done | gzip >full.jsonl.gz
head -c 2000 full.jsonl.gz >cut.jsonl.gz
expect 1 "cut.jsonl.gz: read error after line " -- prepare cut.jsonl.gz
expect 1 ": gzip data cut short" -- prepare cut.jsonl.gz
# flip bytes in the middle of the deflate stream
{ head -c 1500 full.jsonl.gz; printf 'XXXXXXXXXXXXXXXX'; tail -c +1517 full.jsonl.gz; } >corrupt.jsonl.gz
expect 1 "corrupt.jsonl.gz: read error after line" -- prepare corrupt.jsonl.gz
printf '{"text": "plain"}\n' >plain.jsonl.gz
expect 1 "plain.jsonl.gz: not gzip data (the name ends in .gz)" -- prepare plain.jsonl.gz
# the first bad input in input order is named, whatever the threads
expect 1 "broken.jsonl:3:" -- prepare --threads 4 full.jsonl.gz broken.jsonl nofield.jsonl

if cmp -s keep.bin out/data.bin && cmp -s keep.idx out/data.idx && ! ls out/*.tmp >/dev/null 2>&1; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "FAIL: a failed prepare changed out/data.bin/.idx or left a temporary file"
fi

expect 1 "nowhere.idx: cannot open" -- "$cairn" inspect nowhere
head -c 2000 /dev/zero | tr '\0' 'x' >junk.bin
expect 1 "junk.bin: bad magic 2021161080 (not an llm.c token shard" -- "$cairn" inspect junk.bin
expect 2 "--documents needs a count, not 'x'" -- "$cairn" inspect out/data --documents x
expect 1 "good.txt: file too short (23 bytes, the llm.c header alone is 1024)" -- "$cairn" inspect good.txt

finish prepare_bad_input
