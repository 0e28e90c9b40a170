/* The prepare pipeline: chunks travel through a ring of 2*threads+2 slots. A slot is FREE (the
 * reader may fill it), READ (waiting for a worker), WORKING, then DONE (waiting for the writer,
 * which takes the slots strictly in chunk order). Errors travel with their chunk, so the writer
 * meets them in input order; a reader error is reported after every chunk before it. */
#include "data/prepare.h"

#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data/chunk_reader.h"
#include "data/document_writer.h"
#include "data/json_text.h"
#include "data/tokenizer.h"

enum { CHUNK_TARGET_BYTES = 256 << 10, MAX_THREADS = 1024 };
enum { SLOT_FREE, SLOT_READ, SLOT_WORKING, SLOT_DONE };

typedef struct slot {
    int state;
    text_chunk chunk;
    int32_t *ids; /* every record's ids and EOD, back to back */
    size_t id_count, id_capacity;
    size_t *id_ends; /* record i's ids end here (no ids: an empty, skipped document) */
    size_t id_end_capacity;
    text_buffer decoded; /* a JSON record's text */
    int failed;
    status st;
} slot;

typedef struct pipeline {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    slot *slots;
    int64_t slot_count;
    int64_t read, claimed, written; /* chunks so far */
    int reading_done, reader_failed, stopping;
    status reader_status;
    chunk_reader *reader;
    const tokenizer *tokenizer;
    int32_t eod;
    const char *field;
} pipeline;

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- inputs ---- */

typedef struct input_list {
    char **paths;
    int count, capacity;
} input_list;

static void input_list_free(input_list *l) {
    for (int i = 0; i < l->count; i++)
        free(l->paths[i]);
    free(l->paths);
}

static int input_list_add(input_list *l, const char *path, status *st) {
    if (l->count == l->capacity) {
        int grown = l->capacity ? 2 * l->capacity : 16;
        char **bigger = realloc(l->paths, (size_t)grown * sizeof *bigger);
        if (!bigger) return status_fail(st, "%s: out of memory", path);
        l->paths = bigger;
        l->capacity = grown;
    }
    if (!(l->paths[l->count] = strdup(path))) return status_fail(st, "%s: out of memory", path);
    l->count++;
    return 0;
}

static int expand_pattern(const char *pattern, input_list *l, status *st) {
    glob_t matches;
    int code = glob(pattern, 0, NULL, &matches);
    int result = 0;
    if (code == GLOB_NOMATCH)
        result = status_fail(st, "%s: no input file matches this pattern", pattern);
    else if (code != 0)
        result = status_fail(st, "%s: cannot expand the pattern (%s)", pattern,
                             code == GLOB_NOSPACE ? "out of memory" : "read error");
    for (size_t i = 0; result == 0 && i < matches.gl_pathc; i++)
        result = input_list_add(l, matches.gl_pathv[i], st);
    if (code == 0) globfree(&matches);
    return result;
}

/* Expands the patterns and checks every input before any work starts. */
static int collect_inputs(const char *const *inputs, int count, input_list *l, status *st) {
    for (int i = 0; i < count; i++) {
        int is_pattern = strpbrk(inputs[i], "*?[") != NULL;
        if ((is_pattern ? expand_pattern(inputs[i], l, st) : input_list_add(l, inputs[i], st)) != 0)
            return -1;
    }
    for (int i = 0; i < l->count; i++) {
        const char *path = l->paths[i];
        if (chunk_reader_input_kind(path) == INPUT_UNKNOWN)
            return status_fail(st,
                               "%s: unknown input type (expected .txt, .txt.gz, .jsonl or "
                               ".jsonl.gz)",
                               path);
        if (access(path, R_OK) != 0)
            return status_fail(st, "%s: cannot open: %s", path, strerror(errno));
    }
    return 0;
}

/* ---- workers ---- */

typedef struct worker {
    pipeline *pipeline;
    tokenizer_encoder *encoder; /* this thread's own */
    pthread_t thread;
} worker;

static int tokenize_record(const pipeline *p, tokenizer_encoder *e, slot *s, const char *text,
                           size_t length, int64_t line) {
    const text_chunk *c = &s->chunk;
    if (c->json) {
        char reason[256];
        s->decoded.length = 0;
        int found = json_text_field(text, length, p->field, &s->decoded, reason, sizeof reason);
        if (found < 0) return status_fail(&s->st, "%s:%" PRId64 ": %s", c->path, line, reason);
        if (found == 0)
            return status_fail(&s->st, "%s:%" PRId64 ": no \"%s\" field", c->path, line, p->field);
        text = s->decoded.data;
        length = s->decoded.length;
    }
    if (length == 0) return 0;
    if (document_encode(e, p->eod, text, length, &s->ids, &s->id_count, &s->id_capacity, &s->st) !=
        0)
        return status_prefix(&s->st, "%s:%" PRId64, c->path, line);
    return 0;
}

static void tokenize_chunk(const pipeline *p, tokenizer_encoder *e, slot *s) {
    const text_chunk *c = &s->chunk;
    s->id_count = 0;
    s->failed = 0;
    if (c->records > s->id_end_capacity) {
        size_t *bigger = realloc(s->id_ends, c->records * sizeof *bigger);
        if (!bigger) {
            s->failed = status_fail(&s->st, "%s: out of memory", c->path);
            return;
        }
        s->id_ends = bigger;
        s->id_end_capacity = c->records;
    }
    size_t start = 0;
    for (size_t i = 0; i < c->records && !s->failed; i++) {
        s->failed = tokenize_record(p, e, s, c->text.data + start, c->ends[i] - start, c->lines[i]);
        s->id_ends[i] = s->id_count;
        start = c->ends[i];
    }
}

static void *worker_main(void *argument) {
    worker *self = argument;
    pipeline *p = self->pipeline;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stopping && p->claimed == p->read && !p->reading_done)
            pthread_cond_wait(&p->changed, &p->lock);
        if (p->stopping || p->claimed == p->read) break;
        slot *s = &p->slots[p->claimed++ % p->slot_count];
        s->state = SLOT_WORKING;
        pthread_mutex_unlock(&p->lock);
        tokenize_chunk(p, self->encoder, s);
        pthread_mutex_lock(&p->lock);
        s->state = SLOT_DONE;
        pthread_cond_broadcast(&p->changed);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* ---- reader ---- */

static void *reader_main(void *argument) {
    pipeline *p = argument;
    for (int got = 1; got == 1;) {
        pthread_mutex_lock(&p->lock);
        while (!p->stopping && p->read - p->written >= p->slot_count)
            pthread_cond_wait(&p->changed, &p->lock);
        slot *s = &p->slots[p->read % p->slot_count];
        int stopping = p->stopping;
        pthread_mutex_unlock(&p->lock);
        if (stopping) break;
        status st;
        got = chunk_reader_next(p->reader, &s->chunk, &st);
        pthread_mutex_lock(&p->lock);
        if (got == 1) {
            s->state = SLOT_READ;
            p->read++;
        } else {
            p->reading_done = 1;
            p->reader_failed = got < 0;
            if (got < 0) p->reader_status = st;
        }
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

/* ---- writer (the calling thread) ---- */

static int write_chunk(const slot *s, document_writer *w, status *st) {
    size_t start = 0;
    for (size_t i = 0; i < s->chunk.records; i++) {
        size_t end = s->id_ends[i];
        if (end > start && document_writer_add_tokens(w, s->ids + start, end - start, st) != 0)
            return -1;
        start = end;
    }
    return 0;
}

/* Writes every chunk in order; returns at the end of the input or at the first error. */
static int write_chunks(pipeline *p, document_writer *w, const prepare_options *o,
                        prepare_summary *summary, double start, status *st) {
    for (;;) {
        pthread_mutex_lock(&p->lock);
        slot *s = &p->slots[p->written % p->slot_count];
        while (!(p->written < p->read && s->state == SLOT_DONE) &&
               !(p->reading_done && p->written == p->read))
            pthread_cond_wait(&p->changed, &p->lock);
        int finished = p->written == p->read;
        pthread_mutex_unlock(&p->lock);
        if (finished) break;
        if (s->failed) {
            *st = s->st;
            return -1;
        }
        if (write_chunk(s, w, st) != 0) return -1;
        summary->input_bytes += s->chunk.input_bytes;
        summary->documents = document_writer_documents(w);
        summary->tokens = document_writer_tokens(w);
        summary->seconds = now_seconds() - start;
        if (o->progress) o->progress(summary, o->progress_context);
        pthread_mutex_lock(&p->lock);
        s->state = SLOT_FREE;
        p->written++;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
    }
    if (p->reader_failed) {
        *st = p->reader_status;
        return -1;
    }
    return 0;
}

static void stop_pipeline(pipeline *p) {
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

static void free_slots(pipeline *p) {
    for (int64_t i = 0; p->slots && i < p->slot_count; i++) {
        slot *s = &p->slots[i];
        text_chunk_free(&s->chunk);
        free(s->ids);
        free(s->id_ends);
        text_buffer_free(&s->decoded);
    }
    free(p->slots);
}

static void close_workers(worker *workers, int count) {
    for (int i = 0; i < count; i++)
        tokenizer_encoder_close(workers[i].encoder);
    free(workers);
}

/* Starts the reader and the workers, writes on this thread, and joins them all. */
static int run_pipeline(pipeline *p, int threads, document_writer *w, const prepare_options *o,
                        prepare_summary *summary, double start, status *st) {
    worker *workers = calloc((size_t)threads, sizeof *workers);
    if (!workers) return status_fail(st, "out of memory for %d threads", threads);
    for (int i = 0; i < threads; i++) {
        workers[i].pipeline = p;
        if (tokenizer_encoder_open(p->tokenizer, &workers[i].encoder, st) != 0) {
            close_workers(workers, i);
            return -1;
        }
    }
    pthread_t reader;
    int started = 0, reader_started = 0, result = 0, code = 0;
    while (started < threads && (code = pthread_create(&workers[started].thread, NULL, worker_main,
                                                       &workers[started])) == 0)
        started++;
    if (code == 0 && (code = pthread_create(&reader, NULL, reader_main, p)) == 0)
        reader_started = 1;
    if (code != 0) result = status_fail(st, "cannot start a thread: %s", strerror(code));
    if (result == 0) result = write_chunks(p, w, o, summary, start, st);
    stop_pipeline(p);
    if (reader_started) pthread_join(reader, NULL);
    for (int i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    close_workers(workers, threads);
    return result;
}

static int default_threads(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online < 1 ? 1 : online > MAX_THREADS ? MAX_THREADS : (int)online;
}

static int prepare_inputs(const prepare_options *o, const input_list *inputs, tokenizer *t,
                          prepare_summary *summary, double start, status *st) {
    int threads =
        o->threads > 0 ? (o->threads < MAX_THREADS ? o->threads : MAX_THREADS) : default_threads();
    pipeline p = {.slot_count = 2 * threads + 2,
                  .tokenizer = t,
                  .eod = tokenizer_eod_id(t),
                  .field = o->field ? o->field : "text"};
    p.slots = calloc((size_t)p.slot_count, sizeof *p.slots);
    if (!p.slots) return status_fail(st, "out of memory for %d threads", threads);
    if (chunk_reader_open((const char *const *)inputs->paths, inputs->count, CHUNK_TARGET_BYTES,
                          &p.reader, st) != 0) {
        free_slots(&p);
        return -1;
    }
    document_writer *w = NULL;
    int result = document_writer_open(t, o->output_prefix, &w, st);
    if (result == 0) {
        pthread_mutex_init(&p.lock, NULL);
        pthread_cond_init(&p.changed, NULL);
        result = run_pipeline(&p, threads, w, o, summary, start, st);
        pthread_cond_destroy(&p.changed);
        pthread_mutex_destroy(&p.lock);
        if (result == 0)
            result = document_writer_close(w, st);
        else
            document_writer_abort(w);
    }
    chunk_reader_close(p.reader);
    free_slots(&p);
    return result;
}

int prepare_run(const prepare_options *o, prepare_summary *summary, status *st) {
    double start = now_seconds();
    memset(summary, 0, sizeof *summary);
    input_list inputs = {0};
    tokenizer *t = NULL;
    int result = collect_inputs(o->inputs, o->input_count, &inputs, st);
    summary->input_files = inputs.count;
    if (result == 0) result = tokenizer_open(o->tokenizer_spec, &t, st);
    if (result == 0) result = prepare_inputs(o, &inputs, t, summary, start, st);
    if (t) tokenizer_close(t);
    input_list_free(&inputs);
    summary->seconds = now_seconds() - start;
    return result;
}

int prepare_dataset(const char *tokenizer_spec, const char *output_prefix, const char *field,
                    const char *const *inputs, int input_count, prepare_summary *summary,
                    status *st) {
    prepare_options options = {.tokenizer_spec = tokenizer_spec,
                               .output_prefix = output_prefix,
                               .field = field,
                               .inputs = inputs,
                               .input_count = input_count};
    return prepare_run(&options, summary, st);
}
