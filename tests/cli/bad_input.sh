#!/usr/bin/env bash
# Bad command lines and configs: each is refused with a non-zero status and a
# one-line message that names the file / key at fault. Usage: bad_input.sh CAIRN
set -u
cairn="$1"
source "$(dirname "$0")/expect.sh"

expect 2 "usage: cairn" -- "$cairn"
expect 2 "unknown command 'frobnicate'" -- "$cairn" frobnicate
expect 2 "unknown option '--bogus'" -- "$cairn" train --bogus
expect 2 "--set needs" -- "$cairn" train --set
expect 2 "more than one config" -- "$cairn" train a.yaml b.yaml
expect 1 "missing.yaml" -- "$cairn" train missing.yaml

printf 'model:\n  layers: 2\n  lyers: 3\n' >unknown.yaml
expect 1 "unknown.yaml:3" -- "$cairn" train unknown.yaml
expect 1 "model.lyers" -- "$cairn" train unknown.yaml
printf 'train:\n  micro_batch: eight\n' >type.yaml
expect 1 "type.yaml:2" -- "$cairn" train type.yaml
expect 1 "train.micro_batch" -- "$cairn" train type.yaml
printf 'model:\n  d_model: 64\n  heads: 7\n' >heads.yaml
expect 1 "model.heads" -- "$cairn" train heads.yaml
printf 'model:\n  heads: 4\n  kv_heads: 3\n' >kv.yaml
expect 1 "model.kv_heads" -- "$cairn" train kv.yaml
printf 'model: [unclosed\n' >syntax.yaml
expect 1 "syntax.yaml" -- "$cairn" train syntax.yaml
printf 'model:\n  activation: relu\n' >enum.yaml
expect 1 "model.activation" -- "$cairn" train enum.yaml
expect 1 "model.layers" -- "$cairn" train --set model.layers=abc
expect 1 "model.nope" -- "$cairn" train --set model.nope=1
expect 1 "train.global_batch" -- "$cairn" train --set train.global_batch=12 --set train.micro_batch=8
printf 'data:\n  tokenizer: bytes\n  sources:\n    - path: nowhere/data\n' >nodata.yaml
expect 1 "nowhere/data" -- "$cairn" train nodata.yaml --set data.valid=
expect 2 "usage: cairn prepare" -- "$cairn" prepare
printf 'not a dataset' >junk.idx; printf '' >junk.bin
expect 1 "junk.idx" -- "$cairn" inspect junk
if "$cairn" --version | grep -q "cuda"; then
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    expect 1 "device: cuda requested" -- "$cairn" train --set device=cuda
  fi
else
  expect 1 "device: cuda requested but this cairn was built without CUDA" -- "$cairn" train --set device=cuda
fi
finish bad_input
