/* Checkpoint write and read throughput on the CPU backend: builds a llama of the given shape
 * (random weights, AdamW moments), then times checkpoint_save into DIR (HDF5 + fsync + rename +
 * marker) and checkpoint_load of the file after dropping it from the page cache. Prints one JSON
 * line: {"bytes": …, "write_s": …, "read_s": …} (best of REPEATS).
 *
 * usage: bench_checkpoint_io DIR [LAYERS D_MODEL FFN VOCAB [REPEATS]]
 *        bench_checkpoint_io --drop FILE   (evict FILE from the page cache, for a cold dd read) */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "train/device.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int drop_from_cache(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    return rc;
}

static void fill_random(const ops *o, void *buffer, size_t count, unsigned seed) {
    float *host = malloc(count * sizeof *host);
    for (size_t i = 0; i < count; i++) {
        seed = seed * 1664525u + 1013904223u;
        host[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    o->float_to_master(buffer, host, count);
    free(host);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--drop") == 0) return drop_from_cache(argv[2]) != 0;
    if (argc != 2 && argc != 6 && argc != 7) {
        fprintf(stderr, "usage: bench_checkpoint_io DIR [LAYERS D_MODEL FFN VOCAB [REPEATS]]\n");
        return 2;
    }
    const char *dir = argv[1];
    config c;
    config_defaults(&c);
    c.model.layers = argc > 2 ? atoi(argv[2]) : 4;
    c.model.d_model = argc > 2 ? atoi(argv[3]) : 512;
    c.model.ffn = argc > 2 ? atoi(argv[4]) : 1536;
    c.model.vocab = argc > 2 ? atoi(argv[5]) : 16000;
    int repeats = argc > 6 ? atoi(argv[6]) : 3;
    c.model.heads = c.model.kv_heads = 8;
    c.model.seq_len = 64;
    c.train.micro_batch = c.train.global_batch = 1;
    status st;
    if (config_resolve(&c, 1, &st) != 0) {
        fprintf(stderr, "bench_checkpoint_io: %s\n", st.message);
        return 1;
    }
    const ops *o;
    char device[256];
    model m;
    optimizer opt;
    if (device_select(DEVICE_CPU, 0, &o, device, sizeof device, &st) != 0 ||
        model_create(&m, o, &c, c.data.eod_id, &st) != 0 ||
        optimizer_create(&opt, o, &c.optim, m.total_params, m.decayed_params, &st) != 0) {
        fprintf(stderr, "bench_checkpoint_io: %s\n", st.message);
        return 1;
    }
    fill_random(o, m.master, m.total_params, 1);
    fill_random(o, opt.m, m.total_params, 2);
    fill_random(o, opt.v, m.total_params, 3);
    checkpoint_state state = {&m, &opt, NULL, 1, 1, c.run.seed, "bench", NULL};
    char path[4096];
    double best_write = 1e30, best_read = 1e30;
    for (int r = 0; r < repeats; r++) {
        /* like dd's target, the file to replace is removed beforehand, outside the timing */
        snprintf(path, sizeof path, "%s/step-00000001.h5", dir);
        unlink(path);
        strncat(path, ".done", sizeof path - strlen(path) - 1);
        unlink(path);
        double start = now_seconds();
        if (checkpoint_save(dir, &state, 1, path, sizeof path, &st) != 0) {
            fprintf(stderr, "bench_checkpoint_io: %s\n", st.message);
            return 1;
        }
        double write = now_seconds() - start;
        drop_from_cache(path);
        checkpoint_contents contents;
        start = now_seconds();
        if (checkpoint_load(path, &state, &contents, &st) != 0) {
            fprintf(stderr, "bench_checkpoint_io: %s\n", st.message);
            return 1;
        }
        double read = now_seconds() - start;
        if (write < best_write) best_write = write;
        if (read < best_read) best_read = read;
    }
    struct stat info;
    stat(path, &info);
    printf("{\"bytes\": %lld, \"parameters\": %zu, \"write_s\": %.4f, \"read_s\": %.4f}\n",
           (long long)info.st_size, m.total_params, best_write, best_read);
    optimizer_destroy(&opt);
    model_destroy(&m);
    return 0;
}
