/* The container a run executes in, for run.json: the runtime, the image it was started from,
 * the image's digest when one is known, and the image's labels.
 *
 * Contract: `container_info_detect` looks only at `environment` (NULL-terminated "NAME=value"
 * strings, such as `environ`) and at files under `root` ("/" for this process), and never
 * fails: what cannot be read stays unknown, and a file that is there but unreadable or malformed
 * is named in `note`. The runtime is the first that matches:
 *   container-engine: SLURM_SPANK__SLURM_SPANK_OPTION_pyxis_environment, the EDF passed to
 *       `srun --environment` on CSCS Alps; its top-level `image` (${VAR} expanded) is the image
 *   enroot via pyxis: SLURM_SPANK__SLURM_SPANK_OPTION_pyxis_container_image or
 *       PYXIS_CONTAINER_IMAGE
 *   apptainer: APPTAINER_CONTAINER or APPTAINER_NAME (singularity: SINGULARITY_*)
 *   podman: /run/.containerenv (its image="..." and imageid="..." lines)
 *   docker: /.dockerenv
 *   enroot: /.lock (enroot's lock on the container's root filesystem)
 * Labels: Apptainer's /.singularity.d/labels.json, then the KEY=VALUE lines of
 * CONTAINER_LABELS_FILE that cairn's images carry (both build paths write it). Digest, first
 * found: an image reference pinned with "@sha256:...", then CONTAINER_DIGEST_FILE (the manifest
 * digest of the OCI image a .sqsh or .sif was converted from). Podman's image ID (the config
 * digest) is kept apart as `image_id`. */
#ifndef CAIRN_CONTAINER_INFO_H
#define CAIRN_CONTAINER_INFO_H

#include <stdio.h>

#define CONTAINER_LABELS_FILE "/usr/share/cairn/image-labels"
#define CONTAINER_DIGEST_FILE "/usr/share/cairn/image-digest"
#define CONTAINER_TEXT 512
#define CONTAINER_MAX_LABELS 48

typedef struct container_label {
    char key[128];
    char value[CONTAINER_TEXT];
} container_label;

typedef struct container_info {
    char runtime[32];                      /* "" outside a container */
    char launcher[16];                     /* "pyxis" when pyxis started it, else "" */
    char image[CONTAINER_TEXT];            /* reference or path; "" unknown */
    char digest[72];                       /* "sha256:<64 hex>"; "" unknown */
    char image_id[72];                     /* Podman's image ID, "sha256:<64 hex>"; "" unknown */
    char environment_file[CONTAINER_TEXT]; /* Container Engine: the EDF */
    int label_count;
    container_label labels[CONTAINER_MAX_LABELS];
    char note[CONTAINER_TEXT]; /* what could not be read; "" when nothing */
} container_info;

void container_info_detect(const char *const *environment, const char *root, container_info *info);

/* The JSON value for run.json: null outside a container, else an object with runtime, image,
 * digest, labels (and launcher, image_id, edf, note when known). */
void container_info_write_json(FILE *out, const container_info *info);

/* Detects this process's container (environ, "/") and writes its JSON value. */
void container_info_write_current(FILE *out);

#endif
