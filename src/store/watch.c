/* Change notification for IDLE: one inotify instance (a store_notifier) serves many sessions'
 * watches, with one kernel watch per directory however many sessions watch that mailbox. */
#include "internal.h"

#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "postern/util.h"

/* new/ (deliveries) and cur/ (other tools, other sessions' flag renames and expunges) */
#define DIR_EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_ONLYDIR)
/* The maildir itself, for the writes of the index's WAL (keyword changes touch only the
 * index). By name, so that a rebuild's new WAL needs no new watch; the lock file's writes come
 * too and are dropped, so that sessions syncing do not wake each other. */
#define MAILDIR_EVENTS (IN_MODIFY | IN_ONLYDIR)
#define WAL_NAME IDX_DB "-wal"

enum { W_MAILDIR, W_CUR, W_NEW, W_COUNT };

/* A mailbox watched on one notifier. */
struct watched {
    int wd[W_COUNT]; /* -1: the kernel dropped it (the directory is gone) */
    unsigned refs;
    bool changed; /* in this dispatch */
    struct store_watch *subs;
    struct watched *prev, *next; /* every mailbox of the notifier */
};

struct store_watch {
    struct store_notifier *n;
    struct watched *m;
    struct store_watch *prev, *next;
    void (*fn)(void *);
    void *arg;
    bool armed;   /* fn runs at the next change */
    bool pending; /* a change came while not armed */
};

struct store_notifier {
    int fd;
    pthread_mutex_t lock; /* the table, the mailboxes and their watches */
    unsigned refs;        /* the owner's and one per watch */
    GHashTable *by_wd;    /* wd -> struct watched */
    struct watched *all;
};

/* --- wd -> mailbox (GLib's hash table, the watch descriptor as the key) --- */

static gpointer wd_key(int wd)
{
    return GINT_TO_POINTER(wd); // NOLINT(performance-no-int-to-ptr)
}

static struct watched *find(const struct store_notifier *n, int wd)
{
    return g_hash_table_lookup(n->by_wd, wd_key(wd));
}

static void table_put(struct store_notifier *n, int wd, struct watched *m)
{
    g_hash_table_insert(n->by_wd, wd_key(wd), m);
}

static void table_del(struct store_notifier *n, int wd)
{
    g_hash_table_remove(n->by_wd, wd_key(wd));
}

/* --- the notifier --- */

struct store_notifier *store_notifier_new(void)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        store_errno(errno, "inotify", NULL);
        return NULL;
    }
    struct store_notifier *n = xcalloc(1, sizeof *n);
    n->fd = fd;
    n->refs = 1;
    n->by_wd = g_hash_table_new(g_direct_hash, g_direct_equal);
    pthread_mutex_init(&n->lock, NULL);
    return n;
}

int store_notifier_fd(const struct store_notifier *n)
{
    return n->fd;
}

void store_notifier_ref(struct store_notifier *n)
{
    pthread_mutex_lock(&n->lock);
    n->refs++;
    pthread_mutex_unlock(&n->lock);
}

static void notifier_unref_locked(struct store_notifier *n, bool *last)
{
    *last = --n->refs == 0;
}

static void notifier_destroy(struct store_notifier *n)
{
    close(n->fd);
    g_hash_table_destroy(n->by_wd);
    pthread_mutex_destroy(&n->lock);
    free(n);
}

void store_notifier_release(struct store_notifier *n)
{
    if (n == NULL)
        return;
    pthread_mutex_lock(&n->lock);
    bool last;
    notifier_unref_locked(n, &last);
    pthread_mutex_unlock(&n->lock);
    if (last)
        notifier_destroy(n);
}

static void forget_wd(struct store_notifier *n, struct watched *m, int i)
{
    if (m->wd[i] < 0)
        return;
    table_del(n, m->wd[i]);
    inotify_rm_watch(n->fd, m->wd[i]);
    m->wd[i] = -1;
}

struct store_watch *store_watch_add(struct store_notifier *n, struct store_mailbox *mb,
                                    void (*fn)(void *), void *arg)
{
    const char *dir = mb->idx->dir;
    char *paths[W_COUNT] = {xstrdup(dir), path_join(dir, "cur"), path_join(dir, "new")};
    const uint32_t masks[W_COUNT] = {MAILDIR_EVENTS, DIR_EVENTS, DIR_EVENTS};
    struct store_watch *w = NULL;
    pthread_mutex_lock(&n->lock);
    int wd[W_COUNT];
    int i = 0;
    for (; i < W_COUNT; i++) {
        /* the same directory on the same instance: the same wd, the same (one) kernel watch */
        wd[i] = inotify_add_watch(n->fd, paths[i], masks[i]);
        if (wd[i] < 0)
            break;
    }
    struct watched *m = i > 0 ? find(n, wd[W_MAILDIR]) : NULL;
    if (i < W_COUNT) {
        store_errno(errno, "inotify watch of", mb->idx->name);
        /* undo only what no other session's watch uses */
        for (int k = 0; k < i; k++)
            if (find(n, wd[k]) == NULL)
                inotify_rm_watch(n->fd, wd[k]);
        goto out;
    }
    if (m == NULL) {
        m = xcalloc(1, sizeof *m);
        for (int k = 0; k < W_COUNT; k++)
            m->wd[k] = -1;
        m->next = n->all;
        if (n->all)
            n->all->prev = m;
        n->all = m;
    }
    for (int k = 0; k < W_COUNT; k++) {
        if (m->wd[k] == wd[k])
            continue;
        /* new, or cur/ or new/ was replaced since the mailbox was first watched */
        if (m->wd[k] >= 0 && find(n, m->wd[k]) == m)
            forget_wd(n, m, k);
        m->wd[k] = wd[k];
        table_put(n, wd[k], m);
    }
    w = xcalloc(1, sizeof *w);
    *w = (struct store_watch){.n = n, .m = m, .fn = fn, .arg = arg, .next = m->subs};
    if (m->subs)
        m->subs->prev = w;
    m->subs = w;
    m->refs++;
    n->refs++;
out:
    pthread_mutex_unlock(&n->lock);
    for (int k = 0; k < W_COUNT; k++)
        free(paths[k]);
    return w;
}

bool store_watch_arm(struct store_watch *w)
{
    pthread_mutex_lock(&w->n->lock);
    bool changed = w->pending;
    w->pending = false;
    w->armed = !changed;
    pthread_mutex_unlock(&w->n->lock);
    return changed;
}

void store_watch_remove(struct store_watch *w)
{
    if (w == NULL)
        return;
    struct store_notifier *n = w->n;
    struct watched *m = w->m;
    pthread_mutex_lock(&n->lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        m->subs = w->next;
    if (w->next)
        w->next->prev = w->prev;
    if (--m->refs == 0) {
        for (int k = 0; k < W_COUNT; k++)
            forget_wd(n, m, k);
        if (m->prev)
            m->prev->next = m->next;
        else
            n->all = m->next;
        if (m->next)
            m->next->prev = m->prev;
        free(m);
    }
    bool last;
    notifier_unref_locked(n, &last);
    pthread_mutex_unlock(&n->lock);
    free(w);
    if (last)
        notifier_destroy(n);
}

/* Is this event a change of the mailbox? */
static bool relevant(struct store_notifier *n, struct watched *m, const struct inotify_event *ev)
{
    int k = 0;
    while (k < W_COUNT && m->wd[k] != ev->wd)
        k++;
    if (k == W_COUNT)
        return false;
    if (ev->mask & IN_IGNORED) { /* the directory is gone: the mailbox was deleted or renamed */
        table_del(n, ev->wd);
        m->wd[k] = -1;
        return true;
    }
    if (k == W_MAILDIR)
        return ev->len > 0 && strcmp(ev->name, WAL_NAME) == 0;
    /* dot files are other tools' temporary names */
    return ev->len == 0 || ev->name[0] != '.';
}

static void push(void ***items, size_t *n, size_t *cap, void *item)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *items = xrealloc(*items, *cap * sizeof(void *));
    }
    (*items)[(*n)++] = item;
}

void store_notifier_dispatch(struct store_notifier *n)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    void **list = NULL;
    size_t nlist = 0, cap = 0;
    bool overflow = false;
    pthread_mutex_lock(&n->lock);
    for (;;) {
        ssize_t got = read(n->fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        for (char *p = buf; p < buf + got;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                overflow = true;
                continue;
            }
            struct watched *m = find(n, ev->wd);
            if (m == NULL || m->changed || !relevant(n, m, ev))
                continue;
            m->changed = true;
            push(&list, &nlist, &cap, m);
        }
    }
    if (overflow) { /* events were lost: every mailbox may have changed */
        for (struct watched *m = n->all; m != NULL; m = m->next) {
            if (m->changed)
                continue;
            m->changed = true;
            push(&list, &nlist, &cap, m);
        }
    }
    void **fire = NULL;
    size_t nfire = 0, fcap = 0;
    for (size_t i = 0; i < nlist; i++) {
        struct watched *m = list[i];
        m->changed = false;
        for (struct store_watch *w = m->subs; w != NULL; w = w->next) {
            if (!w->armed) {
                w->pending = true;
                continue;
            }
            w->armed = false;
            push(&fire, &nfire, &fcap, w);
        }
    }
    pthread_mutex_unlock(&n->lock);
    free(list);
    /* Outside the lock, so that fn may submit work. Only this thread removes watches, and a
     * fn affects only its own watch, so the rest of the list stays valid. */
    for (size_t i = 0; i < nfire; i++) {
        struct store_watch *w = fire[i];
        w->fn(w->arg);
    }
    free(fire);
}

/* A session in IDLE may wait for hours: see idx_park(). The view is kept (sequence numbers),
 * without its spare room. */
void store_park(struct store_mailbox *mb)
{
    idx_park(mb->idx);
    if (mb->cap > mb->count) {
        mb->cap = mb->count;
        if (mb->count == 0) {
            free(mb->msgs);
            mb->msgs = NULL;
        } else {
            mb->msgs = xrealloc(mb->msgs, mb->count * sizeof *mb->msgs);
        }
    }
}
