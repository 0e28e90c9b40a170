/* The checkpoint directory of a run: atomic saves with a completion marker, retention, and the
 * newest usable checkpoint (protocol in checkpoint.h and docs/checkpoints.md).
 *
 * Why a marker on top of the rename: the rename alone already guarantees that on a POSIX file
 * system `step-N.h5` never names a half-written file; the marker, written only after the file
 * and the directory were fsync'd, also covers copies and file systems where that does not hold,
 * and its recorded size catches a file truncated afterwards without reading it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"

typedef struct checkpoint_paths {
    char file[PATH_MAX], temporary[PATH_MAX + 8], marker[PATH_MAX + 8];
} checkpoint_paths;

static int paths_for(const char *dir, int64_t step, checkpoint_paths *p, status *st) {
    int n = snprintf(p->file, sizeof p->file, "%s/step-%08" PRId64 ".h5", dir, step);
    if (n < 0 || (size_t)n >= sizeof p->file)
        return status_fail(st, "%s: checkpoint path too long", dir);
    snprintf(p->temporary, sizeof p->temporary, "%s.tmp", p->file);
    snprintf(p->marker, sizeof p->marker, "%s.done", p->file);
    return 0;
}

static int fsync_path(const char *path, int flags, status *st) {
    int fd = open(path, flags);
    if (fd < 0) return status_fail(st, "%s: cannot open: %s", path, strerror(errno));
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    /* EINVAL: the file system cannot sync a directory, nothing more to do */
    if (rc != 0 && !(saved == EINVAL && (flags & O_DIRECTORY)))
        return status_fail(st, "%s: fsync: %s", path, strerror(saved));
    return 0;
}

static int fsync_parent(const char *path, status *st) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    return fsync_path(dir, O_RDONLY | O_DIRECTORY, st);
}

int checkpoint_commit(const char *temporary_path, const char *final_path, status *st) {
    if (fsync_path(temporary_path, O_RDONLY, st) != 0) return -1;
    if (rename(temporary_path, final_path) != 0)
        return status_fail(st, "%s: cannot rename to %s: %s", temporary_path, final_path,
                           strerror(errno));
    return fsync_parent(final_path, st);
}

/* ---- markers ---- */

static int write_marker(const checkpoint_paths *p, int64_t step, status *st) {
    struct stat info;
    if (stat(p->file, &info) != 0)
        return status_fail(st, "%s: cannot stat: %s", p->file, strerror(errno));
    char text[96];
    int length = snprintf(text, sizeof text, "{\"step\": %" PRId64 ", \"bytes\": %lld}\n", step,
                          (long long)info.st_size);
    int fd = open(p->marker, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return status_fail(st, "%s: cannot create: %s", p->marker, strerror(errno));
    int rc = write(fd, text, (size_t)length) == length && fsync(fd) == 0 ? 0 : -1;
    int saved = errno;
    close(fd);
    if (rc != 0) return status_fail(st, "%s: cannot write: %s", p->marker, strerror(saved));
    return fsync_parent(p->marker, st);
}

/* 1 when the marker exists, names this step and the file has the recorded size; otherwise 0
 * and `why` says what is wrong. */
static int is_complete(const checkpoint_paths *p, int64_t step, char *why, size_t why_size) {
    char text[128] = "";
    FILE *marker = fopen(p->marker, "r");
    if (!marker) {
        snprintf(why, why_size, "incomplete (no completion marker %s)", p->marker);
        return 0;
    }
    size_t length = fread(text, 1, sizeof text - 1, marker);
    fclose(marker);
    text[length] = '\0';
    long long marked_step, bytes;
    struct stat info;
    if (sscanf(text, "{\"step\": %lld, \"bytes\": %lld}", &marked_step, &bytes) != 2 ||
        marked_step != step) {
        snprintf(why, why_size, "incomplete (unreadable completion marker %s)", p->marker);
        return 0;
    }
    if (stat(p->file, &info) != 0) {
        snprintf(why, why_size, "cannot stat: %s", strerror(errno));
        return 0;
    }
    if (info.st_size != bytes) {
        snprintf(why, why_size, "truncated or replaced (%lld bytes, the marker says %lld)",
                 (long long)info.st_size, bytes);
        return 0;
    }
    return 1;
}

/* ---- listing ---- */

/* The step of a name "step-<digits>.h5" (suffix ".h5" exactly), or -1. */
static int64_t step_of(const char *name, const char *suffix) {
    if (strncmp(name, "step-", 5) != 0) return -1;
    const char *digits = name + 5, *end = digits;
    while (*end >= '0' && *end <= '9')
        end++;
    if (end == digits || end - digits > 18 || strcmp(end, suffix) != 0) return -1;
    return strtoll(digits, NULL, 10);
}

static int compare_steps(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Steps of the step-N<suffix> files of dir, ascending. */
static int list_steps(const char *dir, const char *suffix, int64_t **steps, int *count,
                      status *st) {
    *steps = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return status_fail(st, "%s: cannot list: %s", dir, strerror(errno));
    int capacity = 0;
    struct dirent *entry;
    while ((entry = readdir(d))) {
        int64_t step = step_of(entry->d_name, suffix);
        if (step < 0) continue;
        if (*count == capacity) {
            capacity = capacity ? 2 * capacity : 32;
            int64_t *grown = realloc(*steps, (size_t)capacity * sizeof *grown);
            if (!grown) {
                closedir(d);
                free(*steps);
                *steps = NULL;
                return status_fail(st, "%s: out of memory", dir);
            }
            *steps = grown;
        }
        (*steps)[(*count)++] = step;
    }
    closedir(d);
    qsort(*steps, (size_t)*count, sizeof **steps, compare_steps);
    return 0;
}

static int remove_file(const char *path, status *st) {
    if (unlink(path) != 0 && errno != ENOENT)
        return status_fail(st, "%s: cannot remove: %s", path, strerror(errno));
    return 0;
}

/* Keeps the newest `keep` complete checkpoints up to `saved` (all when keep is 0) and removes the
 * temporary files of saves that never finished. Checkpoints of later steps are not this run's
 * (damaged ones auto-resume skipped): they are neither counted nor removed. */
static int apply_retention(const char *dir, int keep, int64_t saved, status *st) {
    int64_t *steps;
    int count;
    if (list_steps(dir, ".h5.tmp", &steps, &count, st) != 0) return -1;
    checkpoint_paths p;
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++)
        if ((rc = paths_for(dir, steps[i], &p, st)) == 0) rc = remove_file(p.temporary, st);
    free(steps);
    if (rc != 0 || keep <= 0) return rc;
    if (list_steps(dir, ".h5", &steps, &count, st) != 0) return -1;
    int complete = 0;
    char why[2 * PATH_MAX];
    for (int i = count - 1; i >= 0 && rc == 0; i--) {
        if (steps[i] > saved) continue;
        if ((rc = paths_for(dir, steps[i], &p, st)) != 0) break;
        if (!is_complete(&p, steps[i], why, sizeof why) || ++complete <= keep) continue;
        /* marker first: a crash in between leaves an incomplete file, never a false marker */
        if ((rc = remove_file(p.marker, st)) == 0) rc = remove_file(p.file, st);
    }
    free(steps);
    return rc;
}

/* Commit, marker and retention of a written temporary file. */
static int finish_save(const checkpoint_paths *p, const char *dir, int keep, int64_t step,
                       status *st) {
    /* an older marker of this step describes the file about to be replaced */
    if (remove_file(p->marker, st) != 0 || checkpoint_commit(p->temporary, p->file, st) != 0) {
        unlink(p->temporary);
        return -1;
    }
    if (write_marker(p, step, st) != 0) return -1;
    return apply_retention(dir, keep, step, st);
}

int checkpoint_save(const char *dir, const checkpoint_state *s, int keep, char *path,
                    size_t path_size, status *st) {
    checkpoint_paths p;
    if (paths_for(dir, s->step, &p, st) != 0) return -1;
    snprintf(path, path_size, "%s", p.file);
    int first_rank = !s->ranks || s->ranks->world->rank == 0;
    int rc = checkpoint_write(p.temporary, s, st);
    if (rc != 0 && first_rank) unlink(p.temporary);
    if (rc == 0 && first_rank) rc = finish_save(&p, dir, keep, s->step, st);
    if (!s->ranks) return rc;
    /* the others learn how rank 0's commit went */
    int64_t failed = rc != 0;
    status ignored;
    if (comm_broadcast(s->ranks->world, &failed, 1, COMM_INT64, 0, &ignored) != 0) failed = 1;
    if (failed && rc == 0) status_fail(st, "%s: rank 0 could not complete the save", p.file);
    return failed ? -1 : 0;
}

int checkpoint_newest_complete(const char *dir, int64_t *step, status *st) {
    *step = -1;
    struct stat info;
    if (stat(dir, &info) != 0 && errno == ENOENT) return 0;
    int64_t *steps;
    int count;
    if (list_steps(dir, ".h5", &steps, &count, st) != 0) return -1;
    char why[2 * PATH_MAX];
    int rc = 0;
    for (int i = count - 1; i >= 0 && *step < 0 && rc == 0; i--) {
        checkpoint_paths p;
        if ((rc = paths_for(dir, steps[i], &p, st)) == 0 &&
            is_complete(&p, steps[i], why, sizeof why))
            *step = steps[i];
    }
    free(steps);
    return rc;
}

int checkpoint_load_latest(const char *dir, const checkpoint_state *s,
                           checkpoint_contents *contents, char *path, size_t path_size, int *found,
                           checkpoint_note note, void *note_context, status *st) {
    *found = 0;
    path[0] = '\0';
    struct stat info;
    if (stat(dir, &info) != 0 && errno == ENOENT) return 0;
    int64_t *steps;
    int count;
    if (list_steps(dir, ".h5", &steps, &count, st) != 0) return -1;
    int damaged = 0, rc = 0;
    char message[sizeof st->message + 4 * PATH_MAX];
    for (int i = count - 1; i >= 0 && !*found; i--) {
        checkpoint_paths p;
        if ((rc = paths_for(dir, steps[i], &p, st)) != 0) break;
        char why[2 * PATH_MAX];
        if (!is_complete(&p, steps[i], why, sizeof why)) {
            snprintf(message, sizeof message, "skipping %s: %s", p.file, why);
            note(note_context, message);
            continue;
        }
        status load_status;
        int loaded = checkpoint_load(p.file, s, contents, &load_status);
        if (loaded == CHECKPOINT_INCOMPATIBLE) {
            *st = load_status;
            rc = -1;
            break;
        }
        if (loaded == CHECKPOINT_DAMAGED) {
            snprintf(message, sizeof message, "skipping %s: damaged: %s", p.file,
                     load_status.message);
            note(note_context, message);
            damaged++;
            continue;
        }
        snprintf(path, path_size, "%s", p.file);
        *found = 1;
    }
    free(steps);
    if (rc == 0 && !*found && damaged > 0)
        rc = status_fail(st,
                         "%s: no usable checkpoint (%d damaged); set checkpoint.resume to none "
                         "to start over or to a checkpoint file",
                         dir, damaged);
    return rc;
}
