#include "train/container_info.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/json_parse.h"

extern char **environ;

/* The value of NAME, or NULL when it is unset or empty. */
static const char *env_value(const char *const *environment, const char *name) {
    size_t length = strlen(name);
    for (const char *const *entry = environment; entry && *entry; entry++) {
        if (strncmp(*entry, name, length) == 0 && (*entry)[length] == '=')
            return (*entry)[length + 1] ? *entry + length + 1 : NULL;
    }
    return NULL;
}

/* Copies text, cut to fit: values from the environment and files may be of any length. */
static void copy_text(char *out, size_t size, const char *text) {
    size_t length = strnlen(text, size - 1);
    memcpy(out, text, length);
    out[length] = 0;
}

/* root + path, cut to fit (a cut path names nothing, which reads as "not there"). */
static void under_root(const char *root, const char *path, char *out, size_t size) {
    size_t length = strlen(root);
    while (length > 0 && root[length - 1] == '/')
        length--;
    if (length >= size) length = size - 1;
    memcpy(out, root, length);
    copy_text(out + length, size - length, path);
}

static int exists_under(const char *root, const char *path) {
    char full[4096];
    under_root(root, path, full, sizeof full);
    return access(full, F_OK) == 0;
}

/* Appends one clause to the note: several things may be unreadable in one image. */
static void add_note(container_info *info, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static void add_note(container_info *info, const char *format, ...) {
    size_t used = strlen(info->note);
    if (used && used + 2 < sizeof info->note) {
        strcpy(info->note + used, "; ");
        used += 2;
    }
    va_list args;
    va_start(args, format);
    vsnprintf(info->note + used, sizeof info->note - used, format, args);
    va_end(args);
}

/* Reads a small text file whole. Returns its length, -1 when it does not exist (not a note),
 * -2 when it exists but cannot be read or is larger than the buffer (noted). */
static long read_text(container_info *info, const char *path, char *buffer, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR) return -1;
        add_note(info, "%s: cannot read", path);
        return -2;
    }
    size_t length = fread(buffer, 1, size - 1, f);
    int too_long = length == size - 1 && fgetc(f) != EOF;
    int failed = ferror(f);
    fclose(f);
    if (failed || too_long) {
        add_note(info, "%s: %s", path, failed ? "read error" : "larger than expected");
        return -2;
    }
    buffer[length] = 0;
    return (long)length;
}

static int is_digest(const char *text, size_t length) {
    if (length != 71 || strncmp(text, "sha256:", 7) != 0) return 0;
    for (size_t i = 7; i < length; i++)
        if (!isdigit((unsigned char)text[i]) && !(text[i] >= 'a' && text[i] <= 'f')) return 0;
    return 1;
}

/* "registry/name@sha256:<hex>" (also in EDF's "registry#name@sha256:<hex>" spelling). */
static void digest_from_reference(container_info *info) {
    const char *at = strrchr(info->image, '@');
    if (!info->digest[0] && at && is_digest(at + 1, strlen(at + 1)))
        copy_text(info->digest, sizeof info->digest, at + 1);
}

/* Splits text in place into lines: the next line, or NULL at the end. */
static char *next_line(char **cursor) {
    char *line = *cursor;
    if (!*line) return NULL;
    char *end = strchr(line, '\n');
    *cursor = end ? end + 1 : line + strlen(line);
    if (end) *end = 0;
    return line;
}

static char *trim(char *text) {
    while (isspace((unsigned char)*text))
        text++;
    char *end = text + strlen(text);
    while (end > text && isspace((unsigned char)end[-1]))
        *--end = 0;
    return text;
}

/* A TOML string value, basic ("…" with \" and \\ escapes) or literal ('…'). Returns 0. */
static int toml_string(const char *text, char *out, size_t size) {
    char quote = *text;
    if (quote != '"' && quote != '\'') return -1;
    size_t n = 0;
    for (const char *p = text + 1; *p; p++) {
        if (*p == quote) {
            out[n] = 0;
            return 0;
        }
        if (quote == '"' && *p == '\\' && (p[1] == '"' || p[1] == '\\')) p++;
        if (n + 1 < size) out[n++] = *p;
    }
    return -1;
}

/* EDF values expand ${NAME} and ${NAME:-default} from the environment; $$ is a dollar. */
static void expand_variables(const char *const *environment, const char *text, char *out,
                             size_t size) {
    size_t n = 0;
    for (const char *p = text; *p && n + 1 < size;) {
        const char *close = p[0] == '$' && p[1] == '{' ? strchr(p, '}') : NULL;
        if (p[0] == '$' && p[1] == '$') {
            out[n++] = '$';
            p += 2;
        } else if (close) {
            char name[256];
            size_t length = (size_t)(close - p - 2);
            copy_text(name, length + 1 < sizeof name ? length + 1 : sizeof name, p + 2);
            char *fallback = strstr(name, ":-");
            if (fallback) *fallback = 0;
            const char *value = env_value(environment, name);
            if (!value) value = fallback ? fallback + 2 : "";
            for (; *value && n + 1 < size; value++)
                out[n++] = *value;
            p = close + 1;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = 0;
}

/* The EDF's top-level `image` (keys before the first [table]). */
static void edf_image(container_info *info, const char *const *environment, const char *path) {
    char text[65536];
    if (read_text(info, path, text, sizeof text) < 0) return;
    char *cursor = text;
    for (char *line; (line = next_line(&cursor));) {
        char *key = trim(line);
        if (*key == '[') break;
        char *equals = strchr(key, '=');
        if (!equals) continue;
        *equals = 0;
        char *name = trim(key);
        if (strcmp(name, "image") != 0 && strcmp(name, "\"image\"") != 0) continue;
        char image[CONTAINER_TEXT];
        if (toml_string(trim(equals + 1), image, sizeof image) != 0)
            add_note(info, "%s: image is not a string", path);
        else
            expand_variables(environment, image, info->image, sizeof info->image);
        return;
    }
}

/* `srun --environment` takes a path (absolute or ./relative) or a name looked up as NAME.toml
 * in EDF_PATH (colon-separated; default ~/.edf). */
static void container_engine(container_info *info, const char *const *environment, const char *root,
                             const char *edf) {
    copy_text(info->environment_file, sizeof info->environment_file, edf);
    char path[4096];
    if (strchr(edf, '/')) {
        under_root(root, edf, path, sizeof path);
        edf_image(info, environment, path);
        return;
    }
    const char *search = env_value(environment, "EDF_PATH");
    char fallback[CONTAINER_TEXT + 8];
    if (!search) {
        const char *home = env_value(environment, "HOME");
        snprintf(fallback, sizeof fallback, "%s/.edf", home ? home : "");
        search = fallback;
    }
    while (*search) {
        size_t length = strcspn(search, ":");
        char candidate[4096];
        snprintf(candidate, sizeof candidate, "%.*s/%s.toml", (int)length, search, edf);
        under_root(root, candidate, path, sizeof path);
        if (access(path, F_OK) == 0) {
            copy_text(info->environment_file, sizeof info->environment_file, candidate);
            edf_image(info, environment, path);
            return;
        }
        search += length + (search[length] == ':');
    }
}

/* Podman's /run/.containerenv: key="value" lines. */
static void podman(container_info *info, const char *path) {
    char text[16384];
    if (read_text(info, path, text, sizeof text) < 0) return;
    char *cursor = text;
    for (char *line; (line = next_line(&cursor));) {
        char *equals = strchr(line, '=');
        if (!equals) continue;
        *equals = 0;
        char value[CONTAINER_TEXT];
        if (toml_string(equals + 1, value, sizeof value) != 0) continue;
        if (strcmp(line, "image") == 0) copy_text(info->image, sizeof info->image, value);
        if (strcmp(line, "imageid") == 0 && strlen(value) == 64) {
            char id[72];
            snprintf(id, sizeof id, "sha256:%.64s", value);
            if (is_digest(id, strlen(id))) copy_text(info->image_id, sizeof info->image_id, id);
        }
    }
}

static void add_label(container_info *info, const char *source, const char *key,
                      const char *value) {
    for (int i = 0; i < info->label_count; i++)
        if (strcmp(info->labels[i].key, key) == 0) return;
    if (info->label_count == CONTAINER_MAX_LABELS) {
        if (!strstr(info->note, "labels after the first"))
            add_note(info, "%s: labels after the first %d not recorded", source,
                     CONTAINER_MAX_LABELS);
        return;
    }
    container_label *label = &info->labels[info->label_count++];
    copy_text(label->key, sizeof label->key, key);
    copy_text(label->value, sizeof label->value, value);
}

/* Apptainer's labels: one JSON object of strings. */
static void labels_json(container_info *info, const char *path) {
    char text[65536];
    long length = read_text(info, path, text, sizeof text);
    if (length < 0) return;
    json_document *document = NULL;
    json_error error;
    if (json_parse(text, (size_t)length, JSON_NO_NUL, &document, &error) != 0) {
        add_note(info, "%s: %s at byte %zu", path, error.reason, error.offset);
        return;
    }
    const json_value *labels = json_document_root(document);
    if (labels->type != JSON_OBJECT) add_note(info, "%s: not a JSON object", path);
    for (size_t i = 0; labels->type == JSON_OBJECT && i < labels->length; i++) {
        const json_member *label = &labels->as.members[i];
        if (label->value.type == JSON_STRING)
            add_label(info, path, label->key, label->value.as.string);
    }
    json_document_free(document);
}

/* cairn's own labels file: KEY=VALUE lines, # comments. */
static void labels_file(container_info *info, const char *path) {
    char text[65536];
    if (read_text(info, path, text, sizeof text) < 0) return;
    char *cursor = text;
    int line_number = 0;
    for (char *line; (line = next_line(&cursor));) {
        line_number++;
        char *entry = trim(line);
        char *equals = strchr(entry, '=');
        if (*entry && *entry != '#') {
            if (!equals || equals == entry) {
                add_note(info, "%s: line %d: not KEY=VALUE", path, line_number);
            } else {
                *equals = 0;
                add_label(info, path, trim(entry), trim(equals + 1));
            }
        }
    }
}

static void digest_file(container_info *info, const char *path) {
    char text[256];
    if (read_text(info, path, text, sizeof text) < 0 || info->digest[0]) return;
    char *digest = trim(text);
    if (is_digest(digest, strlen(digest)))
        copy_text(info->digest, sizeof info->digest, digest);
    else
        add_note(info, "%s: not a sha256 digest", path);
}

static void set_runtime(container_info *info, const char *runtime, const char *launcher,
                        const char *image) {
    copy_text(info->runtime, sizeof info->runtime, runtime);
    copy_text(info->launcher, sizeof info->launcher, launcher);
    if (image) copy_text(info->image, sizeof info->image, image);
}

static void detect_runtime(const char *const *environment, const char *root, container_info *info) {
    const char *edf = env_value(environment, "SLURM_SPANK__SLURM_SPANK_OPTION_pyxis_environment");
    const char *pyxis =
        env_value(environment, "SLURM_SPANK__SLURM_SPANK_OPTION_pyxis_container_image");
    if (!pyxis) pyxis = env_value(environment, "PYXIS_CONTAINER_IMAGE");
    const char *apptainer = env_value(environment, "APPTAINER_CONTAINER");
    if (!apptainer) apptainer = env_value(environment, "APPTAINER_NAME");
    const char *singularity = env_value(environment, "SINGULARITY_CONTAINER");
    if (!singularity) singularity = env_value(environment, "SINGULARITY_NAME");
    char path[4096];
    if (edf) {
        set_runtime(info, "container-engine", "pyxis", NULL);
        container_engine(info, environment, root, edf);
    } else if (pyxis) {
        set_runtime(info, "enroot", "pyxis", pyxis);
    } else if (apptainer) {
        set_runtime(info, "apptainer", "", apptainer);
    } else if (singularity) {
        set_runtime(info, "singularity", "", singularity);
    } else if (exists_under(root, "/run/.containerenv")) {
        set_runtime(info, "podman", "", NULL);
        under_root(root, "/run/.containerenv", path, sizeof path);
        podman(info, path);
    } else if (exists_under(root, "/.dockerenv")) {
        set_runtime(info, "docker", "", NULL);
    } else if (exists_under(root, "/.lock")) {
        set_runtime(info, "enroot", "", NULL);
    }
}

void container_info_detect(const char *const *environment, const char *root, container_info *info) {
    memset(info, 0, sizeof *info);
    detect_runtime(environment, root, info);
    if (!info->runtime[0]) return;
    digest_from_reference(info);
    char path[4096];
    under_root(root, "/.singularity.d/labels.json", path, sizeof path);
    labels_json(info, path);
    under_root(root, CONTAINER_LABELS_FILE, path, sizeof path);
    labels_file(info, path);
    under_root(root, CONTAINER_DIGEST_FILE, path, sizeof path);
    digest_file(info, path);
}

static void write_member(FILE *out, const char *name, const char *value) {
    fprintf(out, ", \"%s\": ", name);
    if (value[0])
        json_write_string(out, value);
    else
        fputs("null", out);
}

void container_info_write_json(FILE *out, const container_info *info) {
    if (!info->runtime[0]) {
        fputs("null", out);
        return;
    }
    fputs("{\"runtime\": ", out);
    json_write_string(out, info->runtime);
    write_member(out, "launcher", info->launcher);
    write_member(out, "image", info->image);
    write_member(out, "digest", info->digest);
    write_member(out, "image_id", info->image_id);
    write_member(out, "edf", info->environment_file);
    fputs(", \"labels\": {", out);
    for (int i = 0; i < info->label_count; i++) {
        if (i) fputs(", ", out);
        json_write_string(out, info->labels[i].key);
        fputs(": ", out);
        json_write_string(out, info->labels[i].value);
    }
    fputs("}", out);
    write_member(out, "note", info->note);
    fputs("}", out);
}

void container_info_write_current(FILE *out) {
    container_info info;
    container_info_detect((const char *const *)environ, "/", &info);
    container_info_write_json(out, &info);
}
