/* Penalty table shared by all threads: per client address and per login name, failures since
 * the last success, and until when further attempts are refused (doubling each time). */
#include "postern/penalty.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/util.h"

#define BUCKETS 4096
/* Bounded memory under a flood of distinct names or addresses: beyond this, entries whose
 * penalty has run out are dropped first, then the oldest. */
#define MAX_ENTRIES 100000

struct entry {
    struct entry *next;
    char *key;
    unsigned failures;
    uint64_t last_ms;
    uint64_t until_ms;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *table[BUCKETS];
static size_t n_entries;

static unsigned hash(const char *key)
{
    uint32_t h = 2166136261u;
    for (const char *s = key; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % BUCKETS;
}

/* Keys: "a:" + address, "l:" + login name in ASCII lower case (AD compares names without
 * case, so JDOE and jdoe share a counter). */
static char *client_key(const struct ip_addr *a)
{
    char text[48], *key = xmalloc(52);
    addr_to_text(a, text, sizeof(text));
    snprintf(key, 52, "a:%s", text);
    return key;
}

static char *login_key(const char *login)
{
    size_t n = strlen(login);
    char *key = xmalloc(n + 3);
    key[0] = 'l';
    key[1] = ':';
    for (size_t i = 0; i <= n; i++)
        key[2 + i] = (char)(login[i] >= 'A' && login[i] <= 'Z' ? login[i] + 32 : login[i]);
    return key;
}

static struct entry **find(const char *key)
{
    struct entry **p = &table[hash(key)];
    while (*p && strcmp((*p)->key, key) != 0)
        p = &(*p)->next;
    return p;
}

static void drop(struct entry **p)
{
    struct entry *e = *p;
    *p = e->next;
    free(e->key);
    free(e);
    n_entries--;
}

/* Frees entries quiet for longer than max_ms (and, when full, any expired one). */
static void sweep(uint64_t now, unsigned max_ms, bool full)
{
    for (size_t b = 0; b < BUCKETS; b++) {
        struct entry **p = &table[b];
        while (*p) {
            struct entry *e = *p;
            if (now - e->last_ms > max_ms || (full && e->until_ms <= now))
                drop(p);
            else
                p = &e->next;
        }
    }
}

static uint64_t left(const char *key, uint64_t now)
{
    struct entry *e = *find(key);
    return e && e->until_ms > now ? e->until_ms - now : 0;
}

uint64_t penalty_check(const struct penalty_rules *r, const struct ip_addr *client,
                       const char *login, uint64_t now, bool *by_client)
{
    if (r->after == 0)
        return 0;
    char *ck = client_key(client), *lk = login_key(login);
    pthread_mutex_lock(&lock);
    uint64_t c = left(ck, now), l = left(lk, now);
    pthread_mutex_unlock(&lock);
    free(ck);
    free(lk);
    *by_client = c >= l;
    return c > l ? c : l;
}

static void record_key(const struct penalty_rules *r, char *key, bool success, uint64_t now)
{
    struct entry **p = find(key);
    if (success) {
        if (*p)
            drop(p);
        free(key);
        return;
    }
    if (*p && now - (*p)->last_ms > r->max_ms)
        drop(p); /* quiet long enough: start again */
    p = find(key);
    if (*p == NULL) {
        if (n_entries >= MAX_ENTRIES)
            sweep(now, r->max_ms, true);
        struct entry *e = xcalloc(1, sizeof(*e));
        e->key = key;
        key = NULL;
        e->next = table[hash(e->key)];
        table[hash(e->key)] = e;
        n_entries++;
        p = &table[hash(e->key)];
    }
    struct entry *e = *p;
    free(key);
    e->failures++;
    e->last_ms = now;
    if (e->failures >= r->after) {
        /* 1 s, 2 s, 4 s, ... up to max_ms */
        unsigned shift = e->failures - r->after;
        uint64_t ms = shift >= 20 ? r->max_ms : (uint64_t)1000 << shift;
        if (ms > r->max_ms)
            ms = r->max_ms;
        e->until_ms = now + ms;
    }
}

void penalty_record(const struct penalty_rules *r, const struct ip_addr *client, const char *login,
                    bool success, uint64_t now)
{
    if (r->after == 0)
        return;
    pthread_mutex_lock(&lock);
    /* A success clears the name's counter only: an attacker's own valid account must not
     * wipe the penalty of the address it guesses from. Addresses cool down with time. */
    if (!success)
        record_key(r, client_key(client), false, now);
    record_key(r, login_key(login), success, now);
    pthread_mutex_unlock(&lock);
}

void penalty_reset(void)
{
    pthread_mutex_lock(&lock);
    for (size_t b = 0; b < BUCKETS; b++)
        while (table[b])
            drop(&table[b]);
    pthread_mutex_unlock(&lock);
}
