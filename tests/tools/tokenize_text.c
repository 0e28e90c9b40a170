/* tokenize_text: drives data/tokenizer.h from the command line for the parity
 * test and the benchmark.
 *
 *   tokenize_text TOK info                 {"vocab_size": .., "eod_id": .., "checksum": ".."}
 *   tokenize_text TOK encode FILE...       one JSON array of ids per file (the whole file)
 *   tokenize_text TOK records FILE [THREADS]
 *                                          one JSON array per record of FILE, from
 *                                          tokenizer_encode; with THREADS > 1 the records are
 *                                          encoded by that many threads at once, each with its
 *                                          own tokenizer_encoder
 *   tokenize_text TOK decode FILE          each line of FILE is a JSON array of ids; prints one
 *                                          record of decoded bytes per line
 *   tokenize_text TOK bench FILE REPEAT    encodes every record REPEAT times on one thread and
 *                                          prints {"bytes", "tokens", "seconds"} of the fastest
 *                                          round with a tokenizer_encoder, and
 *                                          "seconds_without_encoder" with tokenizer_encode (CPU
 *                                          seconds of the process)
 *
 * A records file is a sequence of "LENGTH\n" + LENGTH bytes, so texts may
 * hold any bytes. Errors go to stderr with exit status 1. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/tokenizer.h"

typedef struct text {
    char *bytes;
    size_t length;
} text;

typedef struct job {
    const tokenizer *t;
    tokenizer_encoder *encoder; /* NULL: tokenizer_encode */
    const text *texts;
    size_t first, step, count;
    int32_t **ids;
    size_t *lengths;
    status st;
    int failed;
} job;

static int fail(const char *format, const char *detail) {
    fprintf(stderr, "tokenize_text: ");
    fprintf(stderr, format, detail);
    fputc('\n', stderr);
    return 1;
}

static char *read_all(const char *path, size_t *length) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t capacity = 1 << 16, used = 0;
    char *data = malloc(capacity + 1);
    while (data) {
        used += fread(data + used, 1, capacity - used, f);
        if (used < capacity) break;
        char *bigger = realloc(data, 2 * capacity + 1);
        if (!bigger) free(data);
        data = bigger;
        capacity *= 2;
    }
    fclose(f);
    if (data) data[used] = '\0';
    *length = used;
    return data;
}

/* Splits a records file in place; returns the number of records or -1. */
static long parse_records(char *data, size_t length, text **out) {
    size_t count = 0, capacity = 64;
    text *texts = malloc(capacity * sizeof *texts);
    for (size_t at = 0; texts && at < length;) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(data + at, &end, 10);
        if (errno || *end != '\n' || end == data + at || n > length - (size_t)(end + 1 - data))
            break;
        if (count == capacity) {
            text *bigger = realloc(texts, 2 * capacity * sizeof *bigger);
            if (!bigger) break;
            texts = bigger;
            capacity *= 2;
        }
        texts[count++] = (text){end + 1, (size_t)n};
        at = (size_t)(end + 1 - data) + (size_t)n;
        if (at == length) {
            *out = texts;
            return (long)count;
        }
    }
    free(texts);
    return length == 0 ? (*out = NULL, 0) : -1;
}

static void print_ids(const int32_t *ids, size_t count) {
    putchar('[');
    for (size_t i = 0; i < count; i++)
        printf(i ? ", %d" : "%d", ids[i]);
    puts("]");
}

static int encode_one(const tokenizer *t, tokenizer_encoder *encoder, const text *x, int32_t **ids,
                      size_t *count, size_t *capacity, status *st) {
    return encoder
               ? tokenizer_encoder_encode(encoder, x->bytes, x->length, ids, count, capacity, st)
               : tokenizer_encode(t, x->bytes, x->length, ids, count, capacity, st);
}

static void *encode_job(void *argument) {
    job *j = argument;
    for (size_t i = j->first; i < j->count && !j->failed; i += j->step) {
        size_t capacity = 0;
        j->lengths[i] = 0;
        j->ids[i] = NULL;
        if (encode_one(j->t, j->encoder, &j->texts[i], &j->ids[i], &j->lengths[i], &capacity,
                       &j->st) != 0)
            j->failed = 1;
    }
    return NULL;
}

static int encode_records(const tokenizer *t, const text *texts, size_t count, int threads) {
    int32_t **ids = calloc(count + 1, sizeof *ids);
    size_t *lengths = calloc(count + 1, sizeof *lengths);
    job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *handles = calloc((size_t)threads, sizeof *handles);
    if (!ids || !lengths || !jobs || !handles) return fail("%s", "out of memory");
    int result = 0;
    for (int k = 0; k < threads; k++) {
        jobs[k] = (job){t, NULL, texts, (size_t)k, (size_t)threads, count, ids, lengths, {{0}}, 0};
        if (threads > 1 && tokenizer_encoder_open(t, &jobs[k].encoder, &jobs[k].st) != 0)
            return fail("%s", jobs[k].st.message);
        if (pthread_create(&handles[k], NULL, encode_job, &jobs[k]) != 0)
            return fail("%s", "cannot start a thread");
    }
    for (int k = 0; k < threads; k++) {
        pthread_join(handles[k], NULL);
        tokenizer_encoder_close(jobs[k].encoder);
        if (jobs[k].failed && !result) result = fail("%s", jobs[k].st.message);
    }
    for (size_t i = 0; i < count && !result; i++)
        print_ids(ids[i], lengths[i]);
    for (size_t i = 0; i < count; i++)
        free(ids[i]);
    free(ids);
    free(lengths);
    free(jobs);
    free(handles);
    return result;
}

/* CPU seconds of this process: on a shared machine they vary far less than wall time. */
static double now(void) {
    struct timespec s;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &s);
    return (double)s.tv_sec + 1e-9 * (double)s.tv_nsec;
}

/* CPU seconds of one round over all texts, or -1; *bytes and *tokens of the round. */
static double timed_round(const tokenizer *t, tokenizer_encoder *encoder, const text *texts,
                          size_t count, size_t *bytes, size_t *tokens, status *st) {
    int32_t *ids = NULL;
    size_t capacity = 0;
    double start = now();
    *tokens = *bytes = 0;
    for (size_t i = 0; i < count; i++) {
        size_t length = 0;
        if (encode_one(t, encoder, &texts[i], &ids, &length, &capacity, st) != 0) {
            free(ids);
            return -1;
        }
        *tokens += length;
        *bytes += texts[i].length;
    }
    free(ids);
    return now() - start;
}

/* The rounds with and without an encoder alternate, so that a busy spell of the machine
 * weighs on both alike; the fastest of each counts. */
static int bench(const tokenizer *t, const text *texts, size_t count, int repeat) {
    size_t bytes = 0, tokens = 0;
    double best[2] = {-1, -1};
    status st;
    tokenizer_encoder *encoder;
    if (tokenizer_encoder_open(t, &encoder, &st) != 0) return fail("%s", st.message);
    for (int r = 0; r < 2 * repeat; r++) {
        double seconds = timed_round(t, r % 2 ? NULL : encoder, texts, count, &bytes, &tokens, &st);
        if (seconds < 0) {
            tokenizer_encoder_close(encoder);
            return fail("%s", st.message);
        }
        if (best[r % 2] < 0 || seconds < best[r % 2]) best[r % 2] = seconds;
    }
    tokenizer_encoder_close(encoder);
    printf("{\"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.6f, "
           "\"seconds_without_encoder\": %.6f}\n",
           bytes, tokens, best[0], best[1]);
    return 0;
}

static int decode_lines(const tokenizer *t, char *data) {
    int32_t *ids = NULL;
    size_t capacity = 0;
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        size_t count = 0;
        for (char *p = line; *p;) {
            if (strchr("[], \t\r", *p)) {
                p++;
                continue;
            }
            char *end;
            long id = strtol(p, &end, 10);
            if (end == p) return fail("bad id list: %s", line);
            if (count == capacity) {
                capacity = capacity ? 2 * capacity : 256;
                int32_t *bigger = realloc(ids, capacity * sizeof *bigger);
                if (!bigger) return fail("%s", "out of memory");
                ids = bigger;
            }
            ids[count++] = (int32_t)id;
            p = end;
        }
        char *decoded;
        size_t length;
        status st;
        if (tokenizer_decode_bytes(t, ids, count, &decoded, &length, &st) != 0)
            return fail("%s", st.message);
        printf("%zu\n", length);
        fwrite(decoded, 1, length, stdout);
        free(decoded);
    }
    free(ids);
    return 0;
}

static int run(const tokenizer *t, int argc, char **argv) {
    const char *mode = argv[2];
    if (strcmp(mode, "info") == 0) {
        printf("{\"vocab_size\": %d, \"eod_id\": %d, \"checksum\": \"%s\"}\n",
               tokenizer_vocab_size(t), tokenizer_eod_id(t), tokenizer_checksum(t));
        return 0;
    }
    if (argc < 4) return fail("%s: needs a file", mode);
    int result = 0;
    for (int i = 3; i < argc && !result; i++) {
        size_t length;
        char *data = read_all(argv[i], &length);
        if (!data) return fail("cannot read %s", argv[i]);
        if (strcmp(mode, "encode") == 0) {
            text whole = {data, length};
            result = encode_records(t, &whole, 1, 1);
        } else if (strcmp(mode, "decode") == 0) {
            result = decode_lines(t, data);
        } else {
            text *texts = NULL;
            long count = parse_records(data, length, &texts);
            int number = i + 1 < argc ? atoi(argv[i + 1]) : 1;
            if (count < 0)
                result = fail("%s: not a records file", argv[i]);
            else if (strcmp(mode, "records") == 0)
                result = encode_records(t, texts, (size_t)count, number > 1 ? number : 1);
            else if (strcmp(mode, "bench") == 0)
                result = bench(t, texts, (size_t)count, number > 1 ? number : 1);
            else
                result = fail("unknown mode %s", mode);
            free(texts);
            i = argc; /* the number after FILE is not a file */
        }
        free(data);
    }
    return result;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: tokenize_text TOKENIZER info|encode|records|decode|bench ...\n");
        return 2;
    }
    tokenizer *t;
    status st;
    if (tokenizer_open(argv[1], &t, &st) != 0) return fail("%s", st.message);
    int result = run(t, argc, argv);
    tokenizer_close(t);
    return result;
}
