#!/usr/bin/env bash
# Checkpoint write and read throughput next to dd of the same size on the same file system, in
# one run. Write: checkpoint_save (HDF5 with Fletcher-32 chunks, fsync, rename, marker) against
# `dd conv=fsync`; read: checkpoint_load (checksums verified, into the model and optimizer) of the
# file evicted from the page cache against `dd` reading a file evicted the same way. Best of 5,
# checkpoint and dd alternating.
# usage: tests/bench/checkpoint_io.sh [BUILD_DIR] [WORK_DIR_PARENT] [LAYERS D_MODEL FFN VOCAB]
# Not a test: prints numbers for docs/checkpoints.md (target: >= 70% of dd).
set -euo pipefail
build=$(realpath "${1:-build}")
parent=${2:-${TMPDIR:-/tmp}}
shape=("${@:3}")
[ ${#shape[@]} -eq 4 ] || shape=(4 512 1536 16000)
bench="$build/tests/bench_checkpoint_io"
work=$(mktemp -d "$parent/cairn-checkpoint-io-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/checkpoints"

seconds() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(seconds)" 'BEGIN { print b - a }'; }
minimum() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? a : b) }'; }
field() { sed -E "s/.*\"$1\": ([0-9.]+).*/\1/" <<<"$2"; }
# checkpoint and dd runs alternate, so that both see the same load on a shared machine
write=1e30 read=1e30 dd_write=1e30 dd_read=1e30
for _ in 1 2 3 4 5; do
  result=$("$bench" "$work/checkpoints" "${shape[@]}" 1)
  write=$(minimum "$write" "$(field write_s "$result")")
  read=$(minimum "$read" "$(field read_s "$result")")
  bytes=$(field bytes "$result")
  mib=$(( (bytes + 1048575) / 1048576 ))
  rm -f "$work/dd.bin"
  start=$(seconds)
  dd if=/dev/zero of="$work/dd.bin" bs=1M count=$mib conv=fsync status=none
  dd_write=$(minimum "$dd_write" "$(elapsed "$start")")
  "$bench" --drop "$work/dd.bin"
  start=$(seconds)
  dd if="$work/dd.bin" of=/dev/null bs=1M status=none
  dd_read=$(minimum "$dd_read" "$(elapsed "$start")")
done

awk -v bytes="$bytes" -v params="$(field parameters "$result")" -v write="$write" \
    -v read="$read" -v dd_write="$dd_write" -v dd_read="$dd_read" -v mib="$mib" \
    -v shape="${shape[*]}" -v where="$parent" 'BEGIN {
  mb = bytes / 1e6; dd_mb = mib * 1048576 / 1e6
  w = mb / write; r = mb / read; dw = dd_mb / dd_write; dr = dd_mb / dd_read
  printf "model (layers d_model ffn vocab): %s, %.1fM parameters, checkpoint %.0f MB (weights + AdamW m, v) in %s\n", shape, params / 1e6, mb, where
  printf "write: checkpoint %7.0f MB/s   dd conv=fsync %7.0f MB/s   ratio %3.0f%%\n", w, dw, 100 * w / dw
  printf "read:  checkpoint %7.0f MB/s   dd (cold)     %7.0f MB/s   ratio %3.0f%%\n", r, dr, 100 * r / dr
}'
