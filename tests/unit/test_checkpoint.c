/* checkpoint.c and checkpoint_directory.c on a tiny CPU model: save and load restore the weights,
 * the optimizer moments and step bit for bit; markers and retention (keep, never the checkpoint
 * just saved, never a later step's); the newest complete checkpoint; load_latest skipping an
 * incomplete or damaged checkpoint with a note and refusing an incompatible one; a weights-only
 * file; a save into a missing directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_file.h"
#include "train/device.h"

static char dir[] = "/tmp/cairn-test-checkpoint-XXXXXX";

typedef struct setup {
    config c;
    const ops *o;
    model m;
    optimizer opt;
} setup;

static int setup_open(setup *s, int d_model, uint64_t seed) {
    status st;
    config_defaults(&s->c);
    model_config *mc = &s->c.model;
    mc->layers = 1;
    mc->d_model = d_model;
    mc->heads = mc->kv_heads = 2;
    mc->ffn = 32;
    mc->vocab = 64;
    mc->seq_len = 8;
    s->c.train.micro_batch = s->c.train.global_batch = 1;
    s->c.optim.name = OPTIM_ADEMAMIX;
    char device[256];
    if (config_resolve(&s->c, 1, &st) != 0 ||
        device_select(DEVICE_CPU, 0, &s->o, device, sizeof device, &st) != 0 ||
        model_create(&s->m, s->o, &s->c, -1, &st) != 0 ||
        optimizer_create(&s->opt, s->o, &s->c.optim, s->m.total_params, s->m.decayed_params, &st) !=
            0) {
        fprintf(stderr, "setup: %s\n", st.message);
        return -1;
    }
    model_init_weights(&s->m, seed);
    float *values = malloc(s->m.total_params * sizeof *values);
    for (size_t i = 0; i < s->m.total_params; i++)
        values[i] = (float)(seed % 7) + 1e-3f * i;
    s->o->float_to_master(s->opt.m, values, s->m.total_params);
    s->o->float_to_master(s->opt.v, values, s->m.total_params);
    s->o->float_to_master(s->opt.m2, values, s->m.total_params);
    free(values);
    return 0;
}

static void setup_close(setup *s) {
    optimizer_destroy(&s->opt);
    model_destroy(&s->m);
}

static checkpoint_state state_of(setup *s, int64_t step) {
    return (checkpoint_state){&s->m, &s->opt, NULL, step, step * 100, 1234, "run: {}\n", NULL};
}

static int exists(const char *name) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static int same_state(setup *a, setup *b) {
    size_t bytes = a->m.total_params * a->o->master_bytes;
    return memcmp(a->m.master, b->m.master, bytes) == 0 && memcmp(a->opt.m, b->opt.m, bytes) == 0 &&
           memcmp(a->opt.v, b->opt.v, bytes) == 0 && memcmp(a->opt.m2, b->opt.m2, bytes) == 0;
}

static char notes[4096];
static void collect(void *context, const char *message) {
    (void)context;
    strncat(notes, message, sizeof notes - strlen(notes) - 2);
    strcat(notes, "\n");
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    setup a, b;
    if (setup_open(&a, 16, 1) != 0 || setup_open(&b, 16, 2) != 0) return 1;
    CHECK(!same_state(&a, &b));
    status st;
    char path[4200];

    /* saves with keep = 2: the two newest remain, each with its marker */
    for (int64_t step = 1; step <= 4; step++) {
        checkpoint_state s = state_of(&a, step);
        CHECK_MSG(checkpoint_save(dir, &s, 2, path, sizeof path, &st) == 0, "%s", st.message);
    }
    CHECK(strstr(path, "step-00000004.h5") != NULL);
    CHECK(!exists("step-00000001.h5") && !exists("step-00000002.h5.done"));
    CHECK(exists("step-00000003.h5") && exists("step-00000003.h5.done"));
    CHECK(exists("step-00000004.h5") && exists("step-00000004.h5.done"));
    CHECK(!exists("step-00000004.h5.tmp"));
    int64_t newest;
    CHECK(checkpoint_newest_complete(dir, &newest, &st) == 0 && newest == 4);

    /* load_latest restores everything bit for bit */
    checkpoint_state into = state_of(&b, 0);
    checkpoint_contents contents;
    int found = 0;
    CHECK(checkpoint_load_latest(dir, &into, &contents, path, sizeof path, &found, collect, NULL,
                                 &st) == 0);
    CHECK(found && contents.step == 4 && contents.tokens == 400 && contents.seed == 1234);
    CHECK(contents.has_optimizer && b.opt.step == 4);
    CHECK(same_state(&a, &b));
    CHECK(notes[0] == '\0');

    /* a later step's checkpoint (another timeline) is neither counted nor removed by retention,
     * and the checkpoint just saved survives keep = 1 */
    char from[4200], to[4200];
    snprintf(from, sizeof from, "%s/step-00000004.h5", dir);
    snprintf(to, sizeof to, "%s/step-00000009.h5", dir);
    CHECK(link(from, to) == 0);
    struct stat info;
    stat(to, &info);
    snprintf(to, sizeof to, "%s/step-00000009.h5.done", dir);
    FILE *marker = fopen(to, "w");
    fprintf(marker, "{\"step\": 9, \"bytes\": %lld}\n", (long long)info.st_size);
    fclose(marker);
    CHECK(checkpoint_newest_complete(dir, &newest, &st) == 0 && newest == 9);
    checkpoint_state s5 = state_of(&a, 5);
    CHECK(checkpoint_save(dir, &s5, 1, path, sizeof path, &st) == 0);
    CHECK(exists("step-00000005.h5") && exists("step-00000009.h5"));
    CHECK(!exists("step-00000004.h5") && !exists("step-00000003.h5"));

    /* a marker whose size does not match: skipped as incomplete, with a note */
    marker = fopen(to, "w");
    fprintf(marker, "{\"step\": 9, \"bytes\": 12}\n");
    fclose(marker);
    notes[0] = '\0';
    CHECK(checkpoint_load_latest(dir, &into, &contents, path, sizeof path, &found, collect, NULL,
                                 &st) == 0);
    CHECK(found && contents.step == 5);
    CHECK_STR_CONTAINS(notes, "step-00000009.h5: truncated or replaced");

    /* another model shape: incompatible, naming the tensor; load_latest stops there */
    setup wide;
    if (setup_open(&wide, 32, 3) != 0) return 1;
    checkpoint_state wide_state = state_of(&wide, 0);
    snprintf(path, sizeof path, "%s/step-00000005.h5", dir);
    CHECK(checkpoint_load(path, &wide_state, &contents, &st) == CHECKPOINT_INCOMPATIBLE);
    CHECK_STR_CONTAINS(st.message, "/model/embed.tokens: shape [64 x 16] in the checkpoint, "
                                   "[64 x 32] in the configured model");
    CHECK(checkpoint_load_latest(dir, &wide_state, &contents, path, sizeof path, &found, collect,
                                 NULL, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "in the configured model");
    setup_close(&wide);

    /* weights only: step 0, the optimizer untouched */
    snprintf(path, sizeof path, "%s/weights.h5", dir);
    checkpoint_state weights = {&a.m, NULL, NULL, 7, 700, 1234, "run: {}\n", NULL};
    CHECK(checkpoint_write(path, &weights, &st) == 0);
    b.opt.step = 42;
    CHECK(checkpoint_load(path, &into, &contents, &st) == 0);
    CHECK(!contents.has_optimizer && contents.step == 0 && contents.tokens == 0 &&
          b.opt.step == 42);

    /* a save that cannot start leaves nothing */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    CHECK(checkpoint_save(missing, &s5, 1, path, sizeof path, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "missing/step-00000005.h5.tmp: cannot create");

    setup_close(&a);
    setup_close(&b);
    char command[600];
    snprintf(command, sizeof command, "rm -rf %s", dir);
    if (system(command) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    return check_summary("test_checkpoint");
}
