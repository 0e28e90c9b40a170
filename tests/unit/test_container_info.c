/* container_info: which runtime, image, digest and labels each kind of container shows, read
 * from a made-up environment and a made-up root filesystem in a temporary directory: outside a
 * container; Apptainer (labels.json merged with cairn's labels file, digest file); the CSCS
 * Container Engine (EDF found by name in EDF_PATH or ~/.edf, top-level `image` only, ${VAR}
 * expanded, digest from a pinned reference); pyxis; Podman's .containerenv; Docker; enroot's lock
 * file; empty variables that must not count; malformed files named in the note; the label limit;
 * and the JSON written for run.json, parsed back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "common/json_parse.h"
#include "temp_dir.h"
#include "train/container_info.h"

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void make_dirs(const char *relative) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", temp_dir, relative);
    for (char *slash = strchr(path + strlen(temp_dir) + 1, '/'); slash;
         slash = strchr(slash + 1, '/')) {
        *slash = 0;
        mkdir(path, 0755);
        *slash = '/';
    }
    mkdir(path, 0755);
}

/* A fresh root with the given folders. */
static void fresh_root(const char *name) {
    temp_dir_remove();
    CHECK(temp_dir_create(name) == 0);
    make_dirs("usr/share/cairn");
    make_dirs(".singularity.d");
    make_dirs("run");
    make_dirs("home/u/.edf");
    make_dirs("site/edf");
}

static const char *label(const container_info *info, const char *key) {
    for (int i = 0; i < info->label_count; i++)
        if (strcmp(info->labels[i].key, key) == 0) return info->labels[i].value;
    return NULL;
}

static int label_is(const container_info *info, const char *key, const char *value) {
    const char *found = label(info, key);
    return found && strcmp(found, value) == 0;
}

static void detect(const char *const *environment, container_info *info) {
    container_info_detect(environment, temp_dir, info);
}

/* The JSON written for `info`, parsed; NULL when it does not parse. */
static json_document *written(const container_info *info) {
    char *text = NULL;
    size_t length = 0;
    FILE *out = open_memstream(&text, &length);
    container_info_write_json(out, info);
    fclose(out);
    json_document *document = NULL;
    json_error error;
    int rc = json_parse(text, length, JSON_UNIQUE_KEYS, &document, &error);
    CHECK_MSG(rc == 0, "%s at %zu in %s", error.reason, error.offset, text);
    free(text);
    return rc == 0 ? document : NULL;
}

static int json_string_is(const json_value *object, const char *key, const char *value) {
    const json_value *v = json_find(object, key);
    return v && v->type == JSON_STRING && strcmp(v->as.string, value) == 0;
}

static int json_is_null(const json_value *object, const char *key) {
    const json_value *v = json_find(object, key);
    return v && v->type == JSON_NULL;
}

static void test_outside(void) {
    fresh_root("container-outside");
    write_text("usr/share/cairn/image-labels", "org.opencontainers.image.version=0.1.0\n");
    const char *environment[] = {"HOME=/root", "APPTAINER_CONTAINER=", "PATH=/usr/bin", NULL};
    container_info info;
    detect(environment, &info);
    CHECK(info.runtime[0] == 0);
    CHECK(info.label_count == 0); /* a labels file alone does not make a container */
    json_document *d = written(&info);
    CHECK(d && json_document_root(d)->type == JSON_NULL);
    json_document_free(d);
}

static void test_apptainer(void) {
    fresh_root("container-apptainer");
    write_text(".singularity.d/labels.json",
               "{\"org.label-schema.build-arch\": \"amd64\", "
               "\"org.opencontainers.image.version\": \"0.1.0\", \"quoted\": \"a \\\"b\\\"\", "
               "\"count\": 3}");
    write_text("usr/share/cairn/image-labels",
               "# written by containers/build-image\n\n"
               "org.opencontainers.image.version=9.9.9\n"
               "org.opencontainers.image.revision = 26aaca3bf4fc\n"
               "cairn.base=debian bookworm minbase (debootstrap)\n");
    write_text("usr/share/cairn/image-digest", DIGEST "\n");
    const char *environment[] = {"APPTAINER_CONTAINER=/scratch/cairn.sif",
                                 "APPTAINER_NAME=cairn.sif", NULL};
    container_info info;
    detect(environment, &info);
    CHECK(strcmp(info.runtime, "apptainer") == 0);
    CHECK(strcmp(info.image, "/scratch/cairn.sif") == 0);
    CHECK(strcmp(info.digest, DIGEST) == 0);
    CHECK(label_is(&info, "org.label-schema.build-arch", "amd64"));
    CHECK(label_is(&info, "org.opencontainers.image.version", "0.1.0")); /* labels.json first */
    CHECK(label_is(&info, "org.opencontainers.image.revision", "26aaca3bf4fc"));
    CHECK(label_is(&info, "cairn.base", "debian bookworm minbase (debootstrap)"));
    CHECK(label_is(&info, "quoted", "a \"b\""));
    CHECK(label(&info, "count") == NULL); /* not a string */
    CHECK(info.label_count == 5);
    CHECK_MSG(info.note[0] == 0, "%s", info.note);

    json_document *d = written(&info);
    const json_value *root = d ? json_document_root(d) : NULL;
    CHECK(root && json_string_is(root, "runtime", "apptainer"));
    CHECK(root && json_string_is(root, "image", "/scratch/cairn.sif"));
    CHECK(root && json_string_is(root, "digest", DIGEST));
    CHECK(root && json_is_null(root, "launcher") && json_is_null(root, "image_id") &&
          json_is_null(root, "edf") && json_is_null(root, "note"));
    const json_value *labels = root ? json_find(root, "labels") : NULL;
    CHECK(labels && labels->type == JSON_OBJECT && labels->length == 5);
    CHECK(labels && json_string_is(labels, "quoted", "a \"b\""));
    json_document_free(d);

    /* Singularity's names, and an empty APPTAINER_* that must not count */
    const char *legacy[] = {"APPTAINER_CONTAINER=", "SINGULARITY_NAME=old.sif", NULL};
    detect(legacy, &info);
    CHECK(strcmp(info.runtime, "singularity") == 0 && strcmp(info.image, "old.sif") == 0);
}

static void test_container_engine(void) {
    fresh_root("container-ce");
    /* a comment, the image, then an [annotations] table whose keys must not be read as top-level */
    write_text("site/edf/cairn.toml", "# cairn on Alps\n"
                                      "image = \"nvcr.io#org/cairn@" DIGEST "\"\n"
                                      "mounts = [\"/capstor:/capstor\"]\n"
                                      "[annotations]\n"
                                      "image = \"not this\"\n");
    write_text("home/u/.edf/cairn.toml", "image = \"/home/u/wrong.sqsh\"\n");
    const char *by_name[] = {"HOME=/home/u", "EDF_PATH=/nowhere:/site/edf",
                             "SLURM_SPANK__SLURM_SPANK_OPTION_pyxis_environment=cairn", NULL};
    container_info info;
    detect(by_name, &info);
    CHECK(strcmp(info.runtime, "container-engine") == 0);
    CHECK(strcmp(info.launcher, "pyxis") == 0);
    CHECK(strcmp(info.environment_file, "/site/edf/cairn.toml") == 0);
    CHECK_MSG(strcmp(info.image, "nvcr.io#org/cairn@" DIGEST) == 0, "%s", info.image);
    CHECK(strcmp(info.digest, DIGEST) == 0);

    /* no EDF_PATH: ~/.edf */
    const char *in_home[] = {"HOME=/home/u",
                             "SLURM_SPANK__SLURM_SPANK_OPTION_pyxis_environment=cairn", NULL};
    detect(in_home, &info);
    CHECK(strcmp(info.environment_file, "/home/u/.edf/cairn.toml") == 0);
    CHECK(strcmp(info.image, "/home/u/wrong.sqsh") == 0);
    CHECK(info.digest[0] == 0);

    /* an absolute path to a local .sqsh image: the digest comes from the image's digest file */
    write_text("site/edf/local.toml", "  image='${SCRATCH}/${SUB:-images}/$$cairn.sqsh'  \n");
    write_text("usr/share/cairn/image-digest", DIGEST);
    const char *by_path[] = {
        "SLURM_SPANK__SLURM_SPANK_OPTION_pyxis_environment=/site/edf/local.toml",
        "SCRATCH=/capstor/scratch/u", NULL};
    detect(by_path, &info);
    CHECK_MSG(strcmp(info.image, "/capstor/scratch/u/images/$cairn.sqsh") == 0, "%s", info.image);
    CHECK(strcmp(info.digest, DIGEST) == 0);
    json_document *d = written(&info);
    CHECK(d && json_string_is(json_document_root(d), "edf", "/site/edf/local.toml"));
    json_document_free(d);

    /* an EDF that cannot be found: the runtime and the name are still recorded */
    const char *missing[] = {"HOME=/home/u",
                             "SLURM_SPANK__SLURM_SPANK_OPTION_pyxis_environment=absent", NULL};
    detect(missing, &info);
    CHECK(strcmp(info.runtime, "container-engine") == 0 && info.image[0] == 0);
    CHECK(strcmp(info.environment_file, "absent") == 0);
}

static void test_pyxis_podman_docker_enroot(void) {
    fresh_root("container-others");
    const char *pyxis[] = {"SLURM_SPANK__SLURM_SPANK_OPTION_pyxis_container_image=/scratch/c.sqsh",
                           NULL};
    container_info info;
    detect(pyxis, &info);
    CHECK(strcmp(info.runtime, "enroot") == 0 && strcmp(info.launcher, "pyxis") == 0);
    CHECK(strcmp(info.image, "/scratch/c.sqsh") == 0);
    const char *pyxis_variable[] = {"PYXIS_CONTAINER_IMAGE=nvcr.io#org/cairn:0.1.0", NULL};
    detect(pyxis_variable, &info);
    CHECK(strcmp(info.image, "nvcr.io#org/cairn:0.1.0") == 0 && info.digest[0] == 0);

    const char *none[] = {NULL};
    write_text(".lock", "");
    detect(none, &info);
    CHECK(strcmp(info.runtime, "enroot") == 0 && info.launcher[0] == 0 && info.image[0] == 0);
    write_text(".dockerenv", "");
    detect(none, &info);
    CHECK(strcmp(info.runtime, "docker") == 0);
    write_text("run/.containerenv",
               "engine=\"podman-4.3.1\"\nname=\"train\"\n"
               "image=\"localhost/cairn:latest\"\n"
               "imageid=\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n"
               "rootless=0\n");
    detect(none, &info);
    CHECK(strcmp(info.runtime, "podman") == 0);
    CHECK(strcmp(info.image, "localhost/cairn:latest") == 0);
    CHECK(strcmp(info.image_id, DIGEST) == 0 && info.digest[0] == 0);
}

static void test_malformed_files(void) {
    fresh_root("container-malformed");
    write_text(".singularity.d/labels.json", "{\"a\": \"b\",}");
    write_text("usr/share/cairn/image-labels", "good=1\nno equals sign\n=empty key\n");
    write_text("usr/share/cairn/image-digest", "sha256:short\n");
    const char *environment[] = {"APPTAINER_NAME=x.sif", NULL};
    container_info info;
    detect(environment, &info);
    CHECK(strcmp(info.runtime, "apptainer") == 0);
    CHECK(label_is(&info, "good", "1") && info.label_count == 1);
    CHECK_STR_CONTAINS(info.note, "labels.json: ");
    CHECK_STR_CONTAINS(info.note, "image-labels: line 2: not KEY=VALUE");
    CHECK_STR_CONTAINS(info.note, "image-labels: line 3: not KEY=VALUE");
    CHECK_STR_CONTAINS(info.note, "image-digest: not a sha256 digest");
    CHECK(info.digest[0] == 0);
    json_document *d = written(&info);
    const json_value *note = d ? json_find(json_document_root(d), "note") : NULL;
    CHECK(note && note->type == JSON_STRING && strstr(note->as.string, "line 2"));
    json_document_free(d);

    /* more labels than fit: the first CONTAINER_MAX_LABELS are kept, and the note says so */
    char many[8192] = "";
    for (int i = 0; i < CONTAINER_MAX_LABELS + 12; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "label.%02d=%d\n", i, i);
    write_text("usr/share/cairn/image-labels", many);
    remove(in_dir(".singularity.d/labels.json"));
    remove(in_dir("usr/share/cairn/image-digest"));
    detect(environment, &info);
    CHECK(info.label_count == CONTAINER_MAX_LABELS);
    CHECK(label_is(&info, "label.00", "0") && label(&info, "label.59") == NULL);
    CHECK_STR_CONTAINS(info.note, "labels after the first 48 not recorded");
}

int main(void) {
    if (temp_dir_create("container-info") != 0) return 1;
    test_outside();
    test_apptainer();
    test_container_engine();
    test_pyxis_podman_docker_enroot();
    test_malformed_files();
    temp_dir_remove();
    return check_summary("test_container_info");
}
