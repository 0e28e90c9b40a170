/* One data source read as one dataset: a dataset prefix, or every shard a glob pattern or a
 * directory names, with a bounded number of shards mapped at a time.
 *
 * Contract: shard_pool_open resolves the path without opening any shard: a path with * ? or [
 * is a pattern matched against shard files (PATTERN.bin, or PATTERN itself when it ends in .bin
 * or .idx), a directory means every *.bin in it, anything else is one prefix passed as is to
 * indexed_dataset_open. Shards are sorted byte-wise by path; the pool's documents are theirs in
 * that order (document ids run on from one shard to the next). shard_pool_fingerprint hashes each
 * shard's file sizes, modification times and index header, so that a changed shard changes it.
 * The document counts come from shard_pool_scan (opens every shard once) or from a cache
 * (shard_pool_set_counts). Reads open shards on demand; at most max_open stay mapped, the least
 * recently used closed first. One thread at a time. */
#ifndef CAIRN_SHARD_POOL_H
#define CAIRN_SHARD_POOL_H

#include <stdint.h>

#include "common/status.h"

typedef struct shard_pool shard_pool;

int shard_pool_open(const char *path, int max_open, shard_pool **out, status *st);
void shard_pool_close(shard_pool *p);
int shard_pool_shard_count(const shard_pool *p);
/* Where cache files of this source go: "PREFIX." for a prefix, "DIR/" for a pattern or a
 * directory (DIR: the pattern's directory part before any wildcard). */
const char *shard_pool_cache_base(const shard_pool *p);
int shard_pool_fingerprint(const shard_pool *p, uint8_t digest[32], status *st);

/* Opens each shard once: sets the counts and returns the length of every document (malloc'd,
 * shard_pool_documents entries) through *lengths. */
int shard_pool_scan(shard_pool *p, int32_t **lengths, status *st);
/* Per-shard document and token counts, as shard_pool_counts gives them. */
void shard_pool_set_counts(shard_pool *p, const int64_t *documents, const int64_t *tokens);
void shard_pool_counts(const shard_pool *p, int64_t *documents, int64_t *tokens);
int64_t shard_pool_documents(const shard_pool *p);
int64_t shard_pool_tokens(const shard_pool *p);

int shard_pool_document_length(shard_pool *p, int64_t document, int64_t *length, status *st);
/* Copies tokens [offset, offset+count) of `document`; fails when they are not all in it. */
int shard_pool_read(shard_pool *p, int64_t document, int64_t offset, int64_t count, int32_t *out,
                    status *st);

/* Most shards mapped at once so far, and how many times a shard was opened. */
int shard_pool_open_peak(const shard_pool *p);
int64_t shard_pool_open_count(const shard_pool *p);

#endif
