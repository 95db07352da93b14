/* Connection counters per (scope, client address) shared by all threads: the per-IP and
 * per-listener caps. Scope "" is the whole server; a listener's name scopes its own caps. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "postern/util.h"

#define BUCKETS 4096

struct counter {
    struct counter *next;
    char *scope;
    bool any; /* counts every address in the scope */
    struct ip_addr addr;
    unsigned count;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct counter *table[BUCKETS];

static unsigned bucket(const char *scope, const struct ip_addr *a)
{
    /* FNV-1a; the table is internal and sized for many clients, not adversarial keys that
     * only the client's own address can influence. */
    uint32_t h = 2166136261u;
    for (const char *s = scope; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    if (a)
        for (int i = 0; i < 16; i++)
            h = (h ^ a->b[i]) * 16777619u;
    return h % BUCKETS;
}

static struct counter **find(const char *scope, const struct ip_addr *a)
{
    struct counter **p = &table[bucket(scope, a)];
    for (; *p; p = &(*p)->next)
        if ((*p)->any == (a == NULL) && strcmp((*p)->scope, scope) == 0 &&
            (a == NULL || memcmp((*p)->addr.b, a->b, 16) == 0))
            return p;
    return p;
}

bool limits_acquire(const char *scope, const struct ip_addr *a, unsigned max)
{
    pthread_mutex_lock(&lock);
    struct counter **p = find(scope, a);
    if (*p == NULL) {
        struct counter *n = xcalloc(1, sizeof(*n));
        n->scope = xstrdup(scope);
        n->any = a == NULL;
        if (a)
            n->addr = *a;
        *p = n;
    }
    bool ok = max == 0 || (*p)->count < max;
    /* Counted even when refused: the caller releases every scope it acquired, uniformly. */
    (*p)->count++;
    pthread_mutex_unlock(&lock);
    return ok;
}

void limits_release(const char *scope, const struct ip_addr *a)
{
    pthread_mutex_lock(&lock);
    struct counter **p = find(scope, a);
    if (*p && --(*p)->count == 0) {
        struct counter *dead = *p;
        *p = dead->next;
        free(dead->scope);
        free(dead);
    }
    pthread_mutex_unlock(&lock);
}
