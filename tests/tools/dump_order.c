/* dump_order MODE ...: prints cairn's data-order indices as whitespace-separated numbers, for
 * tests/python/test_megatron_order.py to compare with numpy and megatron-core.
 *
 *   interval SEED MAX COUNT         COUNT draws of numpy's random_interval(MAX), RandomState(SEED)
 *   shuffle SEED N...               arange(N) shuffled, one line per N, all from one RandomState
 *   gpt SEED SEQ_LEN SAMPLES FIRST COUNT < SIZES
 *                                   GPTDataset indices of documents [FIRST, FIRST+COUNT) of a
 *                                   dataset whose sequence lengths come on stdin (SAMPLES -1:
 *                                   one epoch): lines "epochs E separate S tokens T",
 *                                   "document_index ...", "sample_index W ...",
 *                                   "shuffle_index W ..." (W: the element width in bytes)
 *   blend SIZE WEIGHT...            lines "normalized ...", "target ...", "buffer ...",
 *                                   "source ...", "sample ..."
 *   split TEXT DOCUMENTS            three lines "FIRST COUNT" (COUNT -1: the split has no share)
 *   samples [options] --source WEIGHT PATH ...
 *                                   the loader's global samples 0 .. --count-1, one line of
 *                                   seq_len+1 tokens each; options --seq-len, --seed, --samples
 *                                   (the order's size), --split TEXT, --which train|valid|test,
 *                                   --count, --max-open N */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/blending.h"
#include "data/gpt_dataset_index.h"
#include "data/loader.h"
#include "data/shuffle.h"
#include "data/split.h"

static void print_array(const char *name, const index_array *a, int with_width) {
    printf("%s", name);
    if (with_width) printf(" %d", a->width);
    for (int64_t i = 0; i < a->count; i++) printf(" %" PRId64, index_array_get(a, i));
    printf("\n");
}

static int dump_interval(int argc, char **argv) {
    if (argc != 3) return 2;
    numpy_random_state r;
    numpy_random_seed(&r, (uint32_t)strtoull(argv[0], NULL, 10));
    uint64_t max = strtoull(argv[1], NULL, 10);
    long count = strtol(argv[2], NULL, 10);
    for (long i = 0; i < count; i++)
        printf("%" PRIu64 "%c", numpy_random_interval(&r, max), i + 1 < count ? ' ' : '\n');
    return 0;
}

static int dump_shuffle(int argc, char **argv) {
    if (argc < 2) return 2;
    numpy_random_state r;
    numpy_random_seed(&r, (uint32_t)strtoull(argv[0], NULL, 10));
    for (int a = 1; a < argc; a++) {
        index_array values;
        if (index_array_alloc(&values, strtoll(argv[a], NULL, 10), 4) != 0) return 1;
        for (int64_t i = 0; i < values.count; i++) index_array_set(&values, i, i);
        numpy_shuffle(&r, &values, 0, values.count);
        print_array("shuffle", &values, 0);
        index_array_release(&values);
    }
    return 0;
}

static int dump_gpt(int argc, char **argv) {
    if (argc != 5) return 2;
    int64_t capacity = 1024, count = 0;
    int32_t *sizes = malloc((size_t)capacity * sizeof *sizes);
    long long value;
    while (sizes && scanf("%lld", &value) == 1) {
        if (count == capacity) sizes = realloc(sizes, (size_t)(capacity *= 2) * sizeof *sizes);
        if (sizes) sizes[count++] = (int32_t)value;
    }
    if (!sizes) return 1;
    gpt_index_request q = {sizes, strtoll(argv[3], NULL, 10), strtoll(argv[4], NULL, 10),
                           (int)strtol(argv[1], NULL, 10), (uint32_t)strtoull(argv[0], NULL, 10),
                           strtoll(argv[2], NULL, 10)};
    gpt_index x;
    status st;
    if (gpt_index_build(&q, &x, &st) != 0) {
        fprintf(stderr, "dump_order: %s\n", st.message);
        free(sizes);
        return 1;
    }
    printf("epochs %" PRId64 " separate %d tokens %" PRId64 "\n", x.epochs, x.separate_final_epoch,
           x.tokens_per_epoch);
    print_array("document_index", &x.document_index, 0);
    print_array("sample_index", &x.sample_index, 1);
    print_array("shuffle_index", &x.shuffle_index, 1);
    gpt_index_release(&x);
    free(sizes);
    return 0;
}

static int dump_blend(int argc, char **argv) {
    if (argc < 2 || argc - 1 > CONFIG_MAX_SOURCES) return 2;
    int64_t size = strtoll(argv[0], NULL, 10);
    int count = argc - 1;
    double weights[CONFIG_MAX_SOURCES], normalized[CONFIG_MAX_SOURCES];
    for (int d = 0; d < count; d++) weights[d] = strtod(argv[d + 1], NULL);
    blend_normalize(weights, count, normalized);
    printf("normalized");
    for (int d = 0; d < count; d++) printf(" %.17g", normalized[d]);
    printf("\ntarget");
    for (int d = 0; d < count; d++) printf(" %" PRId64, blend_target_samples(normalized[d], size));
    printf("\nbuffer");
    for (int d = 0; d < count; d++) printf(" %" PRId64, blend_buffer_samples(normalized[d], size));
    printf("\n");
    index_array source, sample;
    status st;
    if (blend_build(normalized, count, size, &source, &sample, &st) != 0) {
        fprintf(stderr, "dump_order: %s\n", st.message);
        return 1;
    }
    print_array("source", &source, 0);
    print_array("sample", &sample, 0);
    index_array_release(&source);
    index_array_release(&sample);
    return 0;
}

static int dump_split(int argc, char **argv) {
    if (argc != 2) return 2;
    double shares[3];
    status st;
    if (data_split_parse(argv[0], shares, &st) != 0) {
        fprintf(stderr, "dump_order: %s\n", st.message);
        return 1;
    }
    for (int which = 0; which < 3; which++) {
        int64_t first, count;
        int present = data_split_range(shares, (data_split)which, strtoll(argv[1], NULL, 10),
                                       &first, &count);
        printf("%" PRId64 " %" PRId64 "\n", first, present ? count : -1);
    }
    return 0;
}

static int dump_samples(int argc, char **argv) {
    config c;
    memset(&c, 0, sizeof c);
    c.model.seq_len = 8;
    c.train.micro_batch = c.train.global_batch = 1;
    c.run.seed = 1234;
    c.data.eod_id = -1;
    data_split which = DATA_SPLIT_TRAIN;
    int64_t samples = 16, count = 16;
    data_loader_options options = {DATA_LOADER_MAX_OPEN_SHARDS, 0};
    for (int i = 0; i < argc; i++) {
        const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!value) return 2;
        i++;
        if (strcmp(flag, "--seq-len") == 0) {
            c.model.seq_len = atoi(value);
        } else if (strcmp(flag, "--seed") == 0) {
            c.run.seed = strtoull(value, NULL, 10);
        } else if (strcmp(flag, "--samples") == 0) {
            samples = strtoll(value, NULL, 10);
        } else if (strcmp(flag, "--count") == 0) {
            count = strtoll(value, NULL, 10);
        } else if (strcmp(flag, "--max-open") == 0) {
            options.max_open_shards = atoi(value);
        } else if (strcmp(flag, "--split") == 0) {
            snprintf(c.data.split, sizeof c.data.split, "%s", value);
        } else if (strcmp(flag, "--which") == 0) {
            which = strcmp(value, "valid") == 0  ? DATA_SPLIT_VALID
                    : strcmp(value, "test") == 0 ? DATA_SPLIT_TEST
                                                 : DATA_SPLIT_TRAIN;
        } else if (strcmp(flag, "--source") == 0 && i + 1 < argc &&
                   c.data.source_count < CONFIG_MAX_SOURCES) {
            data_source *s = &c.data.sources[c.data.source_count++];
            s->weight = strtod(value, NULL);
            snprintf(s->path, sizeof s->path, "%s", argv[++i]);
        } else {
            return 2;
        }
    }
    data_loader *l;
    status st;
    if (data_loader_open_split(&c, which, samples, 0, 1, &options, &l, &st) != 0) {
        fprintf(stderr, "dump_order: %s\n", st.message);
        return 1;
    }
    batch *b = batch_alloc(1, c.model.seq_len);
    int rc = b ? 0 : 1;
    for (int64_t i = 0; rc == 0 && i < count; i++) {
        if (data_loader_read_sample(l, i, b, 0, &st) != 0) {
            fprintf(stderr, "dump_order: %s\n", st.message);
            rc = 1;
            break;
        }
        for (int t = 0; t <= c.model.seq_len; t++)
            printf("%" PRId32 "%c", b->tokens[t], t < c.model.seq_len ? ' ' : '\n');
    }
    batch_free(b);
    data_loader_close(l);
    return rc;
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } modes[] = {{"interval", dump_interval}, {"shuffle", dump_shuffle}, {"gpt", dump_gpt},
                 {"blend", dump_blend},       {"split", dump_split},     {"samples", dump_samples}};
    for (size_t m = 0; argc >= 2 && m < sizeof modes / sizeof modes[0]; m++) {
        if (strcmp(argv[1], modes[m].name) != 0) continue;
        int rc = modes[m].run(argc - 2, argv + 2);
        if (rc == 2) fprintf(stderr, "dump_order %s: bad arguments (see the file's header)\n",
                             argv[1]);
        return rc;
    }
    fprintf(stderr, "usage: dump_order interval|shuffle|gpt|blend|split|samples ...\n");
    return 2;
}
