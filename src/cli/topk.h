/* Bounded counting of the most frequent keys of a stream (Space-Saving, Metwally et al. 2005). */
#ifndef POSTERN_CLI_TOPK_H
#define POSTERN_CLI_TOPK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keys longer than this are cut (audit values are at most 1099 bytes after escaping). */
#define TOPK_KEY_MAX 1100
#define TOPK_EXTRA 3

/* One monitored key. `count` may overestimate the key's true count by at most `overcount`
 * (the count of the key it replaced); `extra` counters (allowed, refused, ...) count only
 * since the key was (re)admitted, so they are lower bounds, exact when overcount is 0. */
struct topk_entry {
    char *key;
    size_t key_len;
    uint64_t hash;
    char *label; /* what to show for the key (an account's name for its DN), or NULL */
    uint64_t count;
    uint64_t overcount;
    uint64_t extra[TOPK_EXTRA];
    size_t heap_pos;
};

/* At most `capacity` keys in memory whatever the stream holds. While the stream has no more
 * distinct keys than that, every count is exact (evictions stays 0). Afterwards a key not
 * monitored occurred at most min_count() times, and every key that occurred more than
 * total / capacity times is monitored. */
struct topk {
    size_t capacity;
    size_t n;
    struct topk_entry *entries;
    size_t *heap;    /* entry indices, a min-heap on count */
    uint32_t *slots; /* hash table of entry index + 1; 0 is empty (linear probing) */
    size_t n_slots;
    uint64_t total;     /* every topk_add(), exact */
    uint64_t evictions; /* keys that replaced another */
};

void topk_init(struct topk *t, size_t capacity);
void topk_free(struct topk *t);
/* Counts one occurrence of key[0..len) and returns its entry (label is copied when the entry
 * has none yet; NULL leaves it). */
struct topk_entry *topk_add(struct topk *t, const char *key, size_t len, const char *label);
struct topk_entry *topk_find(const struct topk *t, const char *key, size_t len);
/* The smallest monitored count: the most a key that is not monitored can have occurred. */
uint64_t topk_min_count(const struct topk *t);
bool topk_exact(const struct topk *t);
/* The entries ordered by count (highest first, then by key); `out` holds t->n pointers. */
void topk_sorted(const struct topk *t, const struct topk_entry **out);

#endif
