/* Space-Saving counters: a hash table finds a key's entry, a min-heap finds the entry to evict.
 *
 * Metwally, Agrawal, El Abbadi, "Efficient Computation of Frequent and Top-k Elements in Data
 * Streams" (ICDT 2005): with k counters, a new key that finds them all taken replaces the key
 * with the smallest count c and starts at c + 1, remembering c as its possible overcount. Memory
 * is k entries whatever the stream; counts are exact until the first eviction. */
#include "topk.h"

#include <stdlib.h>
#include <string.h>

#include "postern/util.h"

static uint64_t hash_key(const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ull;
    }
    return h;
}

void topk_init(struct topk *t, size_t capacity)
{
    memset(t, 0, sizeof(*t));
    t->capacity = capacity;
    t->entries = xcalloc(capacity, sizeof(*t->entries));
    t->heap = xcalloc(capacity, sizeof(*t->heap));
    t->n_slots = 16;
    while (t->n_slots < capacity * 2)
        t->n_slots *= 2;
    t->slots = xcalloc(t->n_slots, sizeof(*t->slots));
}

void topk_free(struct topk *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->entries[i].key);
        free(t->entries[i].label);
    }
    free(t->entries);
    free(t->heap);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/* The slot that holds the key, or the empty slot where it would go. */
static size_t find_slot(const struct topk *t, const char *key, size_t len, uint64_t hash)
{
    size_t mask = t->n_slots - 1;
    size_t s = (size_t)hash & mask;
    while (t->slots[s] != 0) {
        const struct topk_entry *e = &t->entries[t->slots[s] - 1];
        if (e->hash == hash && e->key_len == len && memcmp(e->key, key, len) == 0)
            return s;
        s = (s + 1) & mask;
    }
    return s;
}

/* Linear-probing deletion by backward shift: no tombstones, so probes stay short for ever. */
static void remove_slot(struct topk *t, size_t s)
{
    size_t mask = t->n_slots - 1;
    t->slots[s] = 0;
    for (size_t j = (s + 1) & mask; t->slots[j] != 0; j = (j + 1) & mask) {
        const struct topk_entry *e = &t->entries[t->slots[j] - 1];
        size_t home = (size_t)e->hash & mask;
        /* move j's key into the hole unless its home lies cyclically in (s, j] */
        bool stays = (s < j) ? (home > s && home <= j) : (home > s || home <= j);
        if (!stays) {
            t->slots[s] = t->slots[j];
            t->slots[j] = 0;
            s = j;
        }
    }
}

static void heap_swap(struct topk *t, size_t a, size_t b)
{
    size_t ea = t->heap[a], eb = t->heap[b];
    t->heap[a] = eb;
    t->heap[b] = ea;
    t->entries[eb].heap_pos = a;
    t->entries[ea].heap_pos = b;
}

static void heap_up(struct topk *t, size_t i)
{
    while (i > 0 && t->entries[t->heap[(i - 1) / 2]].count > t->entries[t->heap[i]].count) {
        heap_swap(t, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

/* A monitored count only grows, so its entry only ever moves down the min-heap. */
static void heap_down(struct topk *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->n && t->entries[t->heap[l]].count < t->entries[t->heap[m]].count)
            m = l;
        if (r < t->n && t->entries[t->heap[r]].count < t->entries[t->heap[m]].count)
            m = r;
        if (m == i)
            return;
        heap_swap(t, i, m);
        i = m;
    }
}

struct topk_entry *topk_find(const struct topk *t, const char *key, size_t len)
{
    len = strnlen(key, len > TOPK_KEY_MAX ? TOPK_KEY_MAX : len);
    size_t s = find_slot(t, key, len, hash_key(key, len));
    return t->slots[s] ? &t->entries[t->slots[s] - 1] : NULL;
}

struct topk_entry *topk_add(struct topk *t, const char *key, size_t len, const char *label)
{
    len = strnlen(key, len > TOPK_KEY_MAX ? TOPK_KEY_MAX : len);
    t->total++;
    uint64_t hash = hash_key(key, len);
    size_t s = find_slot(t, key, len, hash);
    struct topk_entry *e;
    if (t->slots[s] != 0) {
        e = &t->entries[t->slots[s] - 1];
    } else if (t->n < t->capacity) {
        size_t idx = t->n++;
        e = &t->entries[idx];
        e->key = xstrndup(key, len);
        e->key_len = len;
        e->hash = hash;
        e->count = 1;
        e->heap_pos = idx;
        t->heap[idx] = idx;
        t->slots[s] = (uint32_t)(idx + 1);
        heap_up(t, idx);
        if (label != NULL)
            e->label = xstrndup(label, strnlen(label, TOPK_KEY_MAX));
        return e;
    } else {
        /* replace the minimum: the new key inherits its count as a possible overcount */
        size_t idx = t->heap[0];
        e = &t->entries[idx];
        remove_slot(t, find_slot(t, e->key, e->key_len, e->hash));
        free(e->key);
        free(e->label);
        e->key = xstrndup(key, len);
        e->key_len = len;
        e->hash = hash;
        e->label = NULL;
        e->overcount = e->count;
        memset(e->extra, 0, sizeof(e->extra));
        t->slots[find_slot(t, key, len, hash)] = (uint32_t)(idx + 1);
        t->evictions++;
    }
    if (label != NULL && e->label == NULL)
        e->label = xstrndup(label, strnlen(label, TOPK_KEY_MAX));
    e->count++;
    heap_down(t, e->heap_pos);
    return e;
}

uint64_t topk_min_count(const struct topk *t)
{
    return t->n < t->capacity ? 0 : t->entries[t->heap[0]].count;
}

bool topk_exact(const struct topk *t)
{
    return t->evictions == 0;
}

static int by_count(const void *a, const void *b)
{
    const struct topk_entry *x = *(const struct topk_entry *const *)a;
    const struct topk_entry *y = *(const struct topk_entry *const *)b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->key, y->key);
}

void topk_sorted(const struct topk *t, const struct topk_entry **out)
{
    for (size_t i = 0; i < t->n; i++)
        out[i] = &t->entries[i];
    qsort(out, t->n, sizeof(const struct topk_entry *), by_count);
}
