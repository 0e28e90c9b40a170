#!/usr/bin/env bash
# containers/build-image end to end, without a container daemon:
#   1. skopeo reads the archive: two layers, the labels (version and commit of the binary);
#   2. umoci unpacks it (checking every blob's digest and size) into a root filesystem;
#   3. a second build from the cached Debian layer gives a byte-identical archive;
#   4. in that root filesystem, under chroot in a private mount namespace (/proc, /dev, /tmp as a
#      runtime provides them), `cairn prepare` and `cairn train` run, with the losses of the same
#      run outside the image; run.json's `container` member names the runtime (pyxis's variable
#      is set, as pyxis would), the image's digest and its labels;
#   5. containers/oci-to-sqsh turns the archive into an enroot .sqsh whose /etc/rc starts cairn
#      and whose digest file holds the archive's manifest digest.
# Usage: image.sh CAIRN SOURCE_DIR CACHE_DIR. The Debian layer is cached in CACHE_DIR (the first
# run debootstraps: minutes). Exit 77 (skipped) without the tools, or when not root.
set -euo pipefail
cairn=$(readlink -f "$1")
source_dir=$(readlink -f "$2")
cache=$(readlink -m "$3")

# shellcheck source=tests/containers/checks.sh
source "$(dirname "$0")/checks.sh"
require "debootstrap skopeo umoci jq squashfs-tools" -- \
    debootstrap skopeo umoci jq mksquashfs unsquashfs unshare chroot
require_root "debootstrap and chroot need root"

work=$(mktemp -d /tmp/cairn-image-XXXXXX)
trap '[ -n "${CAIRN_KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
cd "$work"

started=$(date +%s)
"$source_dir/containers/build-image" --cairn "$cairn" --cache "$cache" cairn.tar >build.log 2>&1 ||
    { cat build.log; fail "containers/build-image failed"; }
echo "ok: $(tail -n 1 build.log) in $(($(date +%s) - started)) s"

# ---- 1. skopeo ----
version_line=$("$cairn" --version | head -n 1)
version=$(awk '{ print $2 }' <<<"$version_line")
commit=$(sed -n 's/.*(commit \([^)]*\)).*/\1/p' <<<"$version_line")
inspect=$(skopeo inspect oci-archive:cairn.tar)
digest=$(jq -r .Digest <<<"$inspect")
summary=$(jq -c '.Labels as $l | [$l["org.opencontainers.image.version"],
                 $l["org.opencontainers.image.revision"], (.Layers | length), .Os]' <<<"$inspect")
[ "$summary" = "[\"$version\",\"$commit\",2,\"linux\"]" ] ||
    fail "skopeo inspect: [version, revision, layers, os] is $summary"
config=$(skopeo inspect --config oci-archive:cairn.tar)
layers_and_command=$(jq -c '[(.rootfs.diff_ids | length), .config.Cmd]' <<<"$config")
[ "$layers_and_command" = '[2,["cairn","--version"]]' ] ||
    fail "skopeo inspect --config: unexpected rootfs or Cmd"
echo "ok: skopeo inspect: manifest $digest, cairn $version ($commit), 2 layers"

# ---- 2. umoci ----
skopeo copy -q oci-archive:cairn.tar oci:layout:latest
umoci --log error unpack --image layout:latest bundle >/dev/null || fail "umoci unpack failed"
rootfs=$work/bundle/rootfs
[ -x "$rootfs/usr/local/bin/cairn" ] || fail "no /usr/local/bin/cairn in the unpacked image"
grep -qx "org.opencontainers.image.revision=$commit" "$rootfs/usr/share/cairn/image-labels" ||
    fail "/usr/share/cairn/image-labels lacks the revision"
echo "ok: umoci unpack: $(du -sm "$rootfs" | cut -f1) MiB root filesystem"

# ---- 3. reproducible ----
"$source_dir/containers/build-image" --cairn "$cairn" --cache "$cache" again.tar >/dev/null 2>&1 ||
    fail "the second containers/build-image failed"
cmp -s cairn.tar again.tar || fail "two builds from the same inputs differ"
rm -f again.tar
echo "ok: a second build is byte-identical"

# ---- 4. prepare and train inside ----
cat /usr/share/common-licenses/{Apache-2.0,GPL-3} >corpus.txt
cat >tiny.yaml <<'EOF'
run: {name: image, out_dir: out, seed: 5, steps: 30, log_every: 1, eval_every: 10}
model: {arch: llama, layers: 2, d_model: 32, heads: 4, kv_heads: 2, ffn: 64, seq_len: 32}
train: {micro_batch: 2, global_batch: 4}
optim: {name: adamw, lr: 0.003, min_lr: 0.0003, schedule: {kind: cosine, warmup: 3}}
data: {tokenizer: bytes, sources: [{path: data/train, weight: 1}], valid: data/train,
       eval_samples: 8}
checkpoint: {every: 10, keep: 2}
EOF
mkdir -p "$rootfs/work" host
cp corpus.txt tiny.yaml "$rootfs/work/"
cp corpus.txt tiny.yaml host/
# the same clean environment inside and outside (OPENBLAS_CORETYPE, for one, changes the sums)
clean_env=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root OMP_NUM_THREADS=1
           OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
run_in_image() {
    # shellcheck disable=SC2016  # the inner script expands its own arguments
    unshare --mount --fork sh -ec '
        mount --make-rprivate /
        mount -t proc proc "$1/proc"
        mount --rbind /dev "$1/dev"
        mount -t tmpfs tmpfs "$1/tmp"
        root=$1; shift
        exec chroot "$root" "$@"' sh "$rootfs" \
        "${clean_env[@]}" PYXIS_CONTAINER_IMAGE="localhost/cairn@$digest" sh -ec "cd /work && $1"
}
steps='cairn prepare --tokenizer bytes --output data/train corpus.txt && cairn train tiny.yaml'
run_in_image "$steps" >inside.log 2>&1 || { cat inside.log; fail "cairn in the image failed"; }
(cd host && "${clean_env[@]}" sh -ec "${steps//cairn /$cairn }") >host.log 2>&1 ||
    { cat host.log; fail "cairn outside the image failed"; }
losses() { jq -c '[.step, .loss, .val_loss]' "$1/out/metrics.jsonl"; }
[ "$(losses "$rootfs/work" | wc -l)" = 30 ] || fail "the run in the image did not log 30 steps"
cmp -s <(losses "$rootfs/work") <(losses host) ||
    fail "losses in the image differ from the same run outside it"
[ -f "$rootfs/work/out/checkpoints/step-00000030.h5" ] || fail "no final checkpoint in the image"
container=$(jq -c '.container' "$rootfs/work/out/run.json")
expected=$(jq -n -c --arg digest "$digest" --arg commit "$commit" \
           '{runtime: "enroot", launcher: "pyxis", digest: $digest, revision: $commit}')
actual=$(jq -c '{runtime, launcher, digest,
                 revision: .labels["org.opencontainers.image.revision"]}' \
         <<<"$container" 2>/dev/null || echo "$container")
[ "$actual" = "$expected" ] || fail "run.json container is $container; expected $expected"
echo "ok: chroot: cairn prepare and cairn train (30 steps, losses equal to outside the image);" \
     "run.json container: enroot via pyxis, $digest"

# ---- 5. enroot .sqsh ----
"$source_dir/containers/oci-to-sqsh" cairn.tar cairn.sqsh >sqsh.log 2>&1 ||
    { cat sqsh.log; fail "containers/oci-to-sqsh failed"; }
unsquashfs -q -n -d sqsh cairn.sqsh >/dev/null || fail "unsquashfs failed"
[ "$(cat sqsh/usr/share/cairn/image-digest)" = "$digest" ] ||
    fail ".sqsh: image-digest is not the archive's manifest digest"
grep -qx 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' sqsh/etc/environment ||
    fail ".sqsh: /etc/environment lacks the image's PATH"
# enroot starts a container by running /etc/rc with the command's arguments (or none)
for arguments in "" "cairn --version"; do
    # shellcheck disable=SC2086  # the arguments are words
    printed=$(chroot sqsh env -i PATH=/usr/local/bin:/usr/bin:/bin sh /etc/rc $arguments |
              head -n 1)
    [ "$printed" = "$version_line" ] || fail ".sqsh: /etc/rc $arguments printed '$printed'"
done
echo "ok: $(tail -n 1 sqsh.log); /etc/rc starts cairn"
