#include "train/provenance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/sha256.h"
#include "data/indexed_dataset.h"
#include "train/container_info.h"
#include "version.h"

static void cpu_model(char *out, size_t size) {
    snprintf(out, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        char *colon = strchr(line, ':');
        if (!colon) break;
        colon += 2;
        colon[strcspn(colon, "\n")] = 0;
        snprintf(out, size, "%s", colon);
        break;
    }
    fclose(f);
}

/* Writes one dataset file's size and SHA-256; a missing file is an error. */
static int write_file_entry(FILE *out, const char *path, status *st) {
    struct stat sb;
    char hex[65];
    if (stat(path, &sb) != 0) return status_fail(st, "%s: cannot stat", path);
    if (sha256_file_hex(path, hex, st) != 0) return -1;
    fputs("{\"path\": ", out);
    json_write_string(out, path);
    fprintf(out, ", \"bytes\": %lld, \"sha256\": \"%s\"}", (long long)sb.st_size, hex);
    return 0;
}

/* source: index into c->data.sources, or -1 for the validation set */
static int write_dataset(FILE *out, const provenance_info *info, int source, const char *prefix,
                         double weight, status *st) {
    fputs("{\"prefix\": ", out);
    json_write_string(out, prefix);
    fputs(", \"weight\": ", out);
    json_write_number(out, weight);
    int shards = 0;
    char fingerprint[65];
    int known = source >= 0 && info->loader &&
                data_loader_source_fingerprint(info->loader, source, &shards, fingerprint) == 0;
    indexed_dataset *d = NULL;
    /* a pattern or folder that matched a single shard does not open as a dataset itself */
    if (known && (shards > 1 || indexed_dataset_open(prefix, &d, st) != 0)) {
        fprintf(out, ", \"shards\": %d, \"fingerprint\": \"%s\"}", shards, fingerprint);
        return 0;
    }
    if (!d && indexed_dataset_open(prefix, &d, st) != 0) return -1;
    fputs(", \"files\": [", out);
    int rc = 0;
    for (int i = 0; i < indexed_dataset_file_count(d) && rc == 0; i++) {
        if (i) fputs(", ", out);
        rc = write_file_entry(out, indexed_dataset_file(d, i), st);
    }
    indexed_dataset_close(d);
    fputs("]}", out);
    return rc;
}

int provenance_write(const char *path, const config *c, const char *config_yaml,
                     const provenance_info *info, status *st) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (!out) return status_fail(st, "%s: cannot write", tmp);
    char host[256] = "unknown", cpu[256], when[64];
    gethostname(host, sizeof host);
    cpu_model(cpu, sizeof cpu);
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGE_SIZE);

    fprintf(out, "{\n  \"cairn\": {\"version\": \"%s\", \"commit\": \"%s\", \"backends\": \"%s\"},\n",
            CAIRN_VERSION, CAIRN_GIT_COMMIT, CAIRN_BACKENDS);
    fprintf(out, "  \"started\": \"%s\",\n  \"command\": ", when);
    json_write_string(out, info->command_line);
    fputs(",\n  \"config_source\": ", out);
    json_write_string(out, c->source[0] ? c->source : "(built-in default)");
    fputs(",\n  \"config\": ", out);
    json_write_string(out, config_yaml);
    fputs(",\n  \"data\": {\"sources\": [", out);
    int failed = 0;
    for (int i = 0; i < c->data.source_count && !failed; i++) {
        if (i) fputs(", ", out);
        failed = write_dataset(out, info, i, c->data.sources[i].path, c->data.sources[i].weight,
                               st) != 0;
    }
    fputs("], \"valid\": ", out);
    if (!failed && c->data.valid[0]) failed = write_dataset(out, info, -1, c->data.valid, 0, st) != 0;
    else fputs("null", out);
    fputs(", \"tokenizer\": ", out);
    json_write_string(out, c->data.tokenizer);
    fputs(", \"tokenizer_sha256\": ", out);
    if (info->tokenizer_checksum) json_write_string(out, info->tokenizer_checksum);
    else fputs("null", out);
    fprintf(out, ", \"tokens\": %lld},\n", (long long)info->data_tokens);
    fprintf(out,
            "  \"world\": {\"ranks\": %d, \"dp\": %d, \"tp\": %d, \"pp\": %d, \"ep\": %d, "
            "\"comm\": ",
            info->world_size, info->world_size / (c->parallel.tp * c->parallel.pp), c->parallel.tp,
            c->parallel.pp, c->parallel.ep);
    json_write_string(out, info->comm);
    fputs("},\n", out);
    fputs("  \"hardware\": {\"host\": ", out);
    json_write_string(out, host);
    fputs(", \"cpu\": ", out);
    json_write_string(out, cpu);
    fprintf(out, ", \"cores\": %ld, \"memory_bytes\": %lld, \"backend\": ", sysconf(_SC_NPROCESSORS_ONLN),
            (long long)pages * page_size);
    json_write_string(out, info->backend);
    fputs(", \"device\": ", out);
    json_write_string(out, info->device_description);
    fputs("},\n", out);
    fputs("  \"container\": ", out);
    container_info_write_current(out);
    fputs(",\n", out);
    fprintf(out, "  \"model\": {\"parameters\": %zu, \"flops_per_token\": %.6g}\n}\n",
            info->parameters, info->flops_per_token);
    int write_error = ferror(out);
    if (fclose(out) != 0 || write_error || failed) {
        remove(tmp);
        return failed ? -1 : status_fail(st, "%s: write failed", tmp);
    }
    if (rename(tmp, path) != 0) return status_fail(st, "%s: cannot rename into place", path);
    return 0;
}
