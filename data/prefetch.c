/* A ring of `depth` batch buffers: batch n lives in slot n % depth. The thread fills slots
 * outside the lock; a restart bumps `generation` so a batch finished for an abandoned position is
 * dropped instead of published. */
#include "data/prefetch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { SLOT_EMPTY, SLOT_READY };

typedef struct prefetch_slot {
    batch *b;
    int state;
    int64_t number;
    int result;
    status st;
} prefetch_slot;

struct prefetch {
    prefetch_produce produce;
    void *context;
    int depth;
    prefetch_slot *slots;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int64_t next_to_produce, next_to_take;
    uint64_t generation;
    int stopping, failed, thread_started;
};

static void *run(void *argument) {
    prefetch *p = argument;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        int64_t number = p->next_to_produce;
        if (p->failed || number >= p->next_to_take + p->depth) {
            pthread_cond_wait(&p->changed, &p->lock);
            continue;
        }
        prefetch_slot *slot = &p->slots[number % p->depth];
        uint64_t generation = p->generation;
        pthread_mutex_unlock(&p->lock);
        status st;
        int result = p->produce(p->context, number, slot->b, &st);
        pthread_mutex_lock(&p->lock);
        if (generation != p->generation) continue;
        slot->number = number;
        slot->result = result;
        slot->st = st;
        slot->state = SLOT_READY;
        p->next_to_produce = number + 1;
        p->failed = result != 0;
        pthread_cond_broadcast(&p->changed);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

void prefetch_close(prefetch *p) {
    if (!p) return;
    if (p->thread_started) {
        pthread_mutex_lock(&p->lock);
        p->stopping = 1;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
    }
    pthread_cond_destroy(&p->changed);
    pthread_mutex_destroy(&p->lock);
    for (int i = 0; p->slots && i < p->depth; i++) batch_free(p->slots[i].b);
    free(p->slots);
    free(p);
}

int prefetch_open(prefetch_produce produce, void *context, int depth, int rows, int seq_len,
                  int64_t first, prefetch **out, status *st) {
    *out = NULL;
    prefetch *p = calloc(1, sizeof *p);
    if (!p) return status_fail(st, "data prefetch: out of memory");
    p->produce = produce;
    p->context = context;
    p->depth = depth > 0 ? depth : 1;
    p->next_to_produce = p->next_to_take = first;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->changed, NULL);
    p->slots = calloc((size_t)p->depth, sizeof *p->slots);
    int allocated = p->slots != NULL;
    for (int i = 0; allocated && i < p->depth; i++)
        allocated = (p->slots[i].b = batch_alloc(rows, seq_len)) != NULL;
    if (!allocated) {
        prefetch_close(p);
        return status_fail(st, "data prefetch: out of memory for %d batches of %d x %d tokens",
                           depth, rows, seq_len + 1);
    }
    if (pthread_create(&p->thread, NULL, run, p) != 0) {
        prefetch_close(p);
        return status_fail(st, "data prefetch: cannot start the thread");
    }
    p->thread_started = 1;
    *out = p;
    return 0;
}

int prefetch_take(prefetch *p, int64_t number, batch *out, status *st) {
    pthread_mutex_lock(&p->lock);
    if (number != p->next_to_take) {
        p->generation++;
        p->next_to_take = p->next_to_produce = number;
        p->failed = 0;
        for (int i = 0; i < p->depth; i++) p->slots[i].state = SLOT_EMPTY;
        pthread_cond_broadcast(&p->changed);
    }
    prefetch_slot *slot = &p->slots[number % p->depth];
    while (!(slot->state == SLOT_READY && slot->number == number))
        pthread_cond_wait(&p->changed, &p->lock);
    pthread_mutex_unlock(&p->lock);
    /* The thread leaves a ready slot alone until next_to_take moves past it. */
    int result = slot->result;
    if (result != 0) {
        *st = slot->st;
        return -1;
    }
    const batch *ready = slot->b;
    memcpy(out->tokens, ready->tokens,
           (size_t)ready->sequences * (ready->seq_len + 1) * sizeof *out->tokens);
    memcpy(out->loss_mask, ready->loss_mask,
           (size_t)ready->sequences * ready->seq_len * sizeof *out->loss_mask);
    pthread_mutex_lock(&p->lock);
    slot->state = SLOT_EMPTY;
    p->next_to_take = number + 1;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    return 0;
}
