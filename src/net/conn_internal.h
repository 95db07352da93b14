/* Private to src/net: how the server hands accepted sockets to connections. */
#ifndef POSTERN_CONN_INTERNAL_H
#define POSTERN_CONN_INTERNAL_H

#include <stdatomic.h>
#include <time.h>

#include "postern/conn.h"

struct evconnlistener;
struct server;

/* One bound socket and the configuration it was accepted under. Connections keep a reference
 * so that a reload never changes the rules of a session already running. */
struct listener {
    atomic_int refs;
    struct config *config;
    const struct listener_config *lc;
    int fd;
    struct evconnlistener *evl;
    struct server *server;
};

struct listener *listener_ref(struct listener *l);
void listener_unref(struct listener *l);

/* Per-thread list of live connections, for shutdown. */
struct conn_list {
    struct conn *head;
};

struct conn_env {
    struct worker_pool *workers;       /* directory and other authentication work */
    struct worker_pool *store_workers; /* mailbox work: a slow directory never delays it */
    atomic_uint *total;                /* connections alive in the whole server */
};

/* Takes ownership of fd and of the reference to l; runs on t from then on. */
void conn_accept(struct io_thread *t, struct conn_list *list, const struct conn_env *env,
                 struct listener *l, int fd, const struct ip_addr *peer, unsigned peer_port,
                 uint64_t id);
/* On the thread owning `list`: say goodbye to every session and close it. */
void conn_list_shutdown(struct conn_list *list);
/* On the connection's thread: the protocol's goodbye (as at shutdown), then close. */
void conn_end(struct conn *c, const char *why);
/* On the thread owning `list`: fn for every live connection (fn may end it). */
void conn_list_visit(struct conn_list *list, void (*fn)(struct conn *c, void *arg), void *arg);

/* What posternctl sessions shows of a connection. The strings belong to the connection and
 * stay valid only during the callback of conn_list_visit() that asked. */
struct conn_info {
    uint64_t id;
    enum protocol protocol;
    const char *listener;
    const char *peer;
    unsigned peer_port;
    const char *tls_version, *tls_cipher; /* NULL: no TLS (yet) */
    const char *state; /* "handshake", "pre-auth", "authenticated" or "closing" */
    const char *account, *account_dn, *mechanism; /* NULL before a login */
    time_t connected_at, login_at;                /* login_at 0: not logged in */
    uint64_t bytes_in, bytes_out;                 /* application bytes */
};
void conn_describe(const struct conn *c, struct conn_info *info);
/* On the thread owning `list`: drop every connection now. */
void conn_list_abort(struct conn_list *list);

/* Connection caps per client address and per listener (shared by all threads). */
bool limits_acquire(const char *scope, const struct ip_addr *a, unsigned max);
void limits_release(const char *scope, const struct ip_addr *a);

#endif
