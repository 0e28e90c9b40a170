/* Numbered batches prepared ahead on a background thread.
 *
 * Contract: prefetch_open starts one thread that fills batch n, n+1, ... (from `first`) by
 * calling produce(context, n, batch, st), keeping at most `depth` batches ready ahead of the
 * consumer. prefetch_take(p, n, out, st) returns batch n copied into `out`: when n is not the
 * batch after the previous take, the thread drops what it prepared and starts again at n. A batch
 * depends only on its number, so timing never changes what is returned. When produce fails, the
 * thread stops and prefetch_take of that batch returns -1 with produce's status (again on every
 * retry, until a take of another number restarts it). prefetch_close stops and joins the thread.
 * produce runs on the thread: it must not share unguarded state with the consumer. */
#ifndef CAIRN_PREFETCH_H
#define CAIRN_PREFETCH_H

#include <stdint.h>

#include "common/status.h"
#include "data/loader.h"

typedef int (*prefetch_produce)(void *context, int64_t number, batch *b, status *st);

typedef struct prefetch prefetch;

int prefetch_open(prefetch_produce produce, void *context, int depth, int rows, int seq_len,
                  int64_t first, prefetch **out, status *st);
int prefetch_take(prefetch *p, int64_t number, batch *out, status *st);
void prefetch_close(prefetch *p);

#endif
