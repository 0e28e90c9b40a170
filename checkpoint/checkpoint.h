/* The training state in a checkpoint, and the checkpoint directory of a run (docs/checkpoints.md).
 *
 * Contract: a checkpoint holds the root attributes `format`, `version`, `step`, `tokens`,
 * `config` (resolved YAML), `optimizer` (when /optim is present); /model/<name> (fp32 master
 * weights, global shapes, the model's own names); /optim/<name>/{m,v[,m2]}; /data/consumed_samples
 * (the data cursor); /rng/seed (run.seed: no random stream advances during training, every one
 * is derived from the seed). The LR schedule and AdEMAMix' warmups are pure functions of the step,
 * so the step is their state. A file without /optim is a weights-only start (step 0).
 *
 * In a directory, `checkpoint_save` writes `step-NNNNNNNN.h5.tmp`, fsyncs it, renames it to
 * `step-NNNNNNNN.h5`, fsyncs the directory, then writes the marker `step-NNNNNNNN.h5.done`
 * ({"step": N, "bytes": SIZE}); only a checkpoint with a marker whose size matches counts as
 * complete. Retention (`keep` > 0) removes the oldest complete checkpoints up to the new one's
 * step (marker first) only after the new one is complete. A failed save removes its temporary file
 * and touches nothing else. */
#ifndef CAIRN_CHECKPOINT_H
#define CAIRN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "data/loader.h"
#include "parallel/comm.h"
#include "train/model.h"
#include "train/optimizer.h"

/* A model spread over ranks (tensor-parallel slices, pipeline stages, expert groups, data-parallel
 * replicas). Saving is collective: rank 0 creates the file with every tensor at its global shape,
 * then the ranks take turns writing their slices (`writes`: the one replica of each slice that
 * writes it), and all ranks agree on the result; rank 0 alone commits, marks and prunes the
 * directory. Loading needs no communication: each rank reads its slices. */
typedef struct checkpoint_ranks {
    comm *world;
    const uint8_t *writes;  /* [model->param_count] */
    const config *config;   /* the whole model's tensors, for the file's layout and checks */
} checkpoint_ranks;

/* What is saved from, or loaded into. model is required; optimizer and loader may be NULL
 * (not saved / not restored); ranks is NULL for a whole model on one rank. */
typedef struct checkpoint_state {
    model *model;
    optimizer *optimizer;
    data_loader *loader;
    int64_t step, tokens;
    uint64_t seed;
    const char *config_yaml; /* saving only */
    const checkpoint_ranks *ranks;
} checkpoint_state;

/* What a loaded checkpoint held (seed: s->seed when the file has no /rng/seed). */
typedef struct checkpoint_contents {
    int64_t step, tokens;
    uint64_t seed;
    int has_optimizer, has_data;
} checkpoint_contents;

/* checkpoint_load's failures: the file is damaged (unreadable, truncated, a checksum error,
 * a tensor missing), or it is sound but does not fit this model or optimizer. */
enum { CHECKPOINT_DAMAGED = -1, CHECKPOINT_INCOMPATIBLE = -2 };

/* Writes the state to `path` directly (no temporary name, no marker). */
int checkpoint_write(const char *path, const checkpoint_state *s, status *st);
/* Makes a file written under a temporary name durable and gives it its final name: fsync,
 * rename, fsync of the directory. */
int checkpoint_commit(const char *temporary_path, const char *final_path, status *st);
/* The atomic save into `dir` (created if needed) described above; `path` receives the final
 * name. */
int checkpoint_save(const char *dir, const checkpoint_state *s, int keep, char *path,
                    size_t path_size, status *st);

/* Loads `path` into s->model, and, when the file has them and s has them, the optimizer state
 * and the data cursor. Every /model tensor must match the model's shape and every model tensor
 * must be present. Returns 0, CHECKPOINT_DAMAGED or CHECKPOINT_INCOMPATIBLE. */
int checkpoint_load(const char *path, const checkpoint_state *s, checkpoint_contents *contents,
                    status *st);

/* The model config saved with a checkpoint (its `config` attribute), resolved for one process
 * (parallel layout reset to a single rank): enough to build the model for eval, inspect, export. */
int checkpoint_read_config(const char *path, config *c, status *st);

/* The step of the newest complete checkpoint of `dir` (-1: none, or no directory). */
int checkpoint_newest_complete(const char *dir, int64_t *step, status *st);

/* Receives one line about a checkpoint that was skipped. */
typedef void (*checkpoint_note)(void *context, const char *message);

/* Loads the newest complete checkpoint of `dir` that loads, noting every newer one skipped
 * (incomplete: no marker or a size that differs; damaged: the load's error). *found is 0 when
 * no checkpoint was loaded: there was none complete (then 0 is returned), or every complete
 * one was damaged (then -1: starting over would be a surprise). An incompatible checkpoint
 * stops the search (-1): an older one would not fit either. */
int checkpoint_load_latest(const char *dir, const checkpoint_state *s,
                           checkpoint_contents *contents, char *path, size_t path_size, int *found,
                           checkpoint_note note, void *note_context, status *st);

#endif
