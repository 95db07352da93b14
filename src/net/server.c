/* The server: binds listeners, accepts on the main thread, admits or refuses each client
 * (AllowedClients, connection caps), hands connections to io_threads, and handles
 * SIGHUP (reload) and SIGTERM/SIGINT (graceful stop). */
#include "postern/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn_internal.h"
#include "control.h"
#include "postern/audit.h"
#include "postern/auth.h"
#include "postern/log.h"
#include "postern/loop.h"
#include "postern/tls.h"
#include "postern/util.h"

#define SHUTDOWN_GRACE_MS 5000

struct server {
    struct config *config;
    struct listener **listeners;
    size_t n_listeners;
    struct event_base *base;
    struct event *ev_hup, *ev_term, *ev_int;
    struct io_thread **threads;
    struct conn_list *lists;
    unsigned n_threads, next_thread;
    struct worker_pool *workers;
    struct worker_pool *store_workers;
    atomic_uint total;
    uint64_t next_id;
    bool stopping;
    struct control *control; /* posternctl sessions/kick; NULL with ControlSocket none */
};

struct listener *listener_ref(struct listener *l)
{
    atomic_fetch_add(&l->refs, 1);
    return l;
}

void listener_unref(struct listener *l)
{
    if (l == NULL || atomic_fetch_sub(&l->refs, 1) != 1)
        return;
    if (l->fd >= 0)
        close(l->fd);
    config_unref(l->config);
    free(l);
}

static int bind_socket(const struct listener_config *lc, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    bool any = strcmp(lc->address, "*") == 0;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (!any && inet_pton(AF_INET, lc->address, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)lc->port);
        sl = sizeof(*s4);
    } else {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)lc->port);
        if (any)
            s6->sin6_addr = in6addr_any;
        else
            inet_pton(AF_INET6, lc->address, &s6->sin6_addr);
        sl = sizeof(*s6);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listener %s: socket: %s", lc->name, strerror(errno));
        return -1;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6) /* "*" is dual-stack; an explicit v6 address is v6 only */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 511) < 0) {
        snprintf(err, errlen, "listener %s: cannot listen on %s port %u: %s", lc->name, lc->address,
                 lc->port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void refuse(struct listener *l, int fd, const struct ip_addr *peer, unsigned port,
                   const char *reason, const char *message)
{
    char text[48];
    log_info("listener %s: refused %s: %s", l->lc->name, addr_to_text(peer, text, sizeof(text)),
             reason);
    audit_connection_refused(l->lc, peer, port, reason);
    /* A cleartext client learns why; on implicit TLS nothing can be said before a handshake,
     * which an unwanted client does not get. */
    if (message && l->lc->tls != TLS_MODE_IMPLICIT) {
        char line[160];
        int n = snprintf(line, sizeof(line), "%s%s\r\n",
                         l->lc->protocol == PROTOCOL_IMAP ? "* BYE " : "-ERR ", message);
        if (send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            /* the client is gone already */
        }
    }
    close(fd);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)evl;
    (void)salen;
    struct listener *l = arg;
    struct server *s = l->server;
    const struct config *c = l->config;
    struct ip_addr peer;
    unsigned port = 0;
    addr_from_sockaddr(sa, &peer, &port);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);

    if (s->stopping) {
        close(fd);
        return;
    }
    if (l->lc->allowed_clients.n > 0 && !cidr_list_match(&l->lc->allowed_clients, &peer)) {
        refuse(l, fd, &peer, port, "client_not_allowed", "Connection refused");
        return;
    }
    /* Every scope is acquired, then released together if any cap is exceeded. */
    bool ok_ip = limits_acquire("", &peer, c->max_connections_per_ip);
    ok_ip = limits_acquire(l->lc->name, &peer, l->lc->max_connections_per_ip) && ok_ip;
    bool ok_listener = limits_acquire(l->lc->name, NULL, l->lc->max_connections);
    unsigned total = atomic_fetch_add(&s->total, 1) + 1;
    bool ok_total = total <= c->max_connections;
    if (!ok_ip || !ok_listener || !ok_total) {
        limits_release("", &peer);
        limits_release(l->lc->name, &peer);
        limits_release(l->lc->name, NULL);
        atomic_fetch_sub(&s->total, 1);
        const char *why = !ok_ip ? "max_connections_per_ip" : "max_connections";
        refuse(l, fd, &peer, port, why,
               l->lc->protocol == PROTOCOL_IMAP
                   ? "[UNAVAILABLE] Too many connections, try again later"
                   : "[SYS/TEMP] Too many connections, try again later");
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    unsigned t = s->next_thread++ % s->n_threads;
    struct conn_env env = {
        .workers = s->workers, .store_workers = s->store_workers, .total = &s->total};
    uint64_t id = ++s->next_id;
    char text[48];
    log_debug("conn %llu: %s port %u on listener %s (%s, TLS %s)", (unsigned long long)id,
              addr_to_text(&peer, text, sizeof(text)), port, l->lc->name,
              protocol_name(l->lc->protocol), tls_mode_name(l->lc->tls));
    conn_accept(s->threads[t], &s->lists[t], &env, listener_ref(l), fd, &peer, port, id);
}

static void resume_accepting(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct listener *l = arg;
    if (l->evl) /* a reload may have replaced it meanwhile */
        evconnlistener_enable(l->evl);
    listener_unref(l);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
    struct listener *l = arg;
    int e = EVUTIL_SOCKET_ERROR();
    log_error("listener %s: accept: %s", l->lc->name, evutil_socket_error_to_string(e));
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        /* Out of descriptors: pause this listener briefly instead of spinning on accept(). */
        evconnlistener_disable(evl);
        struct timeval tv = {0, 100000};
        event_base_once(l->server->base, -1, EV_TIMEOUT, resume_accepting, listener_ref(l), &tv);
    }
}

static struct listener *listener_new(struct server *s, struct config *c, size_t i, int fd)
{
    struct listener *l = xcalloc(1, sizeof(*l));
    atomic_init(&l->refs, 1);
    l->config = config_ref(c);
    l->lc = &c->listeners[i];
    l->fd = fd;
    l->server = s;
    return l;
}

static bool listener_enable(struct server *s, struct listener *l)
{
    l->evl = evconnlistener_new(s->base, on_accept, l, LEV_OPT_REUSEABLE, 511, l->fd);
    if (l->evl == NULL)
        return false;
    evconnlistener_set_error_cb(l->evl, on_accept_error);
    return true;
}

static void listener_disable(struct listener *l)
{
    if (l->evl)
        evconnlistener_free(l->evl);
    l->evl = NULL;
}

/* Builds listeners for config c, reusing the sockets of `old` with the same address and port
 * so that a reload needs no privileges and loses no queued connection. Two phases: first
 * every socket that must be new is bound; only if all succeed are sockets moved from the old
 * listeners (which stop accepting). On failure the old listeners are untouched. */
static struct listener **make_listeners(struct server *s, struct config *c, struct listener **old,
                                        size_t n_old, char *err, size_t errlen)
{
    int *fds = xcalloc(c->n_listeners, sizeof(int));
    struct listener **from = xcalloc(c->n_listeners, sizeof(struct listener *));
    for (size_t i = 0; i < c->n_listeners; i++) {
        const struct listener_config *lc = &c->listeners[i];
        fds[i] = -1;
        for (size_t j = 0; j < n_old && from[i] == NULL; j++)
            if (old[j]->fd >= 0 && old[j]->lc->port == lc->port &&
                strcmp(old[j]->lc->address, lc->address) == 0)
                from[i] = old[j];
        if (from[i] == NULL && (fds[i] = bind_socket(lc, err, errlen)) < 0) {
            for (size_t k = 0; k < i; k++)
                if (from[k] == NULL)
                    close(fds[k]);
            free(fds);
            free(from);
            return NULL;
        }
    }
    struct listener **ls = xcalloc(c->n_listeners, sizeof(struct listener *));
    for (size_t i = 0; i < c->n_listeners; i++) {
        if (from[i]) {
            listener_disable(from[i]);
            fds[i] = from[i]->fd;
            from[i]->fd = -1; /* moved */
        }
        ls[i] = listener_new(s, c, i, fds[i]);
    }
    free(fds);
    free(from);
    return ls;
}

struct server *server_new(struct config *c, struct tls_creds *creds, char *err, size_t errlen)
{
    struct server *s = xcalloc(1, sizeof(*s));
    atomic_init(&s->total, 0);
    s->config = config_ref(c);
    tls_creds_publish(creds);
    s->listeners = make_listeners(s, c, NULL, 0, err, errlen);
    if (s->listeners == NULL) {
        server_free(s);
        return NULL;
    }
    s->n_listeners = c->n_listeners;
    /* Made here, before the privilege drop, and given to User (docs/design.md). */
    s->control = control_open(c, err, errlen);
    if (s->control == NULL && err[0]) {
        server_free(s);
        return NULL;
    }
    return s;
}

static bool same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void reload(struct server *s)
{
    char err[CONFIG_ERROR_MAX];
    log_info("reloading %s", s->config->path);
    struct config *c = config_load(s->config->path, err, sizeof(err));
    if (c == NULL) {
        log_error("reload failed, keeping the running configuration: %s", err);
        return;
    }
    struct tls_creds *creds = tls_creds_load(c, err, sizeof(err));
    if (creds == NULL && err[0]) {
        log_error("reload failed, keeping the running configuration: %s", err);
        config_unref(c);
        return;
    }
    /* A new directory client only when its settings changed (then it must work, or nothing
     * changes), or when its secret files changed: a rotated password or keytab is read again,
     * as User; if that fails, the running client (and its open connections) stays. */
    struct auth_context *running = auth_context_current();
    enum auth_context_change change = auth_context_compare(running, c);
    auth_context_unref(running);
    struct auth_context *auth = NULL;
    bool new_directory = change != AUTH_CONTEXT_SAME;
    if (new_directory) {
        auth = auth_context_new(c, err, sizeof(err));
        if (auth == NULL && err[0] && change == AUTH_CONTEXT_SECRETS_CHANGED) {
            log_warning("reload: the directory's password file or keytab changed but cannot be "
                        "read again (%s); the running directory client stays",
                        err);
            new_directory = false;
        } else if (auth == NULL && err[0]) {
            log_error("reload failed, keeping the running configuration: %s", err);
            tls_creds_unref(creds);
            config_unref(c);
            return;
        }
    }
    struct listener **ls = make_listeners(s, c, s->listeners, s->n_listeners, err, sizeof(err));
    if (ls == NULL) {
        auth_context_unref(auth);
        log_error("reload failed, keeping the running configuration: %s", err);
        tls_creds_unref(creds);
        config_unref(c);
        return;
    }
    for (size_t i = 0; i < c->n_listeners; i++)
        if (!listener_enable(s, ls[i]))
            log_error("listener %s: cannot accept", ls[i]->lc->name);
    for (size_t j = 0; j < s->n_listeners; j++) {
        struct listener *old = s->listeners[j];
        listener_disable(old);
        if (old->fd >= 0) { /* a listener the new configuration dropped stops listening now */
            close(old->fd);
            old->fd = -1;
        }
        listener_unref(old); /* sessions keep the listener's configuration alive */
    }
    free(s->listeners);
    s->listeners = ls;
    s->n_listeners = c->n_listeners;
    /* Without TLS in the new configuration the old credentials stay published: sessions
     * accepted on a STARTTLS listener before the reload can still upgrade. */
    if (creds)
        tls_creds_publish(creds);
    tls_creds_unref(creds);
    if (new_directory) {
        auth_context_publish(auth);
        auth_context_unref(auth);
    }
    const struct config *o = s->config;
    if (c->io_threads != o->io_threads || c->worker_threads != o->worker_threads ||
        c->worker_queue != o->worker_queue || !same_text(c->user, o->user) ||
        !same_text(c->pid_file, o->pid_file))
        log_warning("IOThreads, WorkerThreads, WorkerQueue, User and PidFile changes take "
                    "effect at the next restart");
    if (!same_text(c->control_socket, o->control_socket))
        log_warning("ControlSocket changes take effect at the next restart; posternctl still "
                    "reaches this server at %s",
                    s->control ? control_path(s->control) : "none");
    config_unref(s->config);
    s->config = c;
    log_setup(c->log_target, c->log_level, "posternd");
    audit_set_syslog(c->audit_syslog);
    if (!audit_open(c->audit_log, err, sizeof(err)))
        log_error("audit log: %s", err);
    log_info("configuration reloaded: %zu listeners", s->n_listeners);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct server *s = arg;
    if (sig == SIGHUP) {
        reload(s);
        return;
    }
    log_info("received %s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopbreak(s->base);
}

static void post_shutdown(void *arg)
{
    conn_list_shutdown(arg);
}

static void post_abort(void *arg)
{
    conn_list_abort(arg);
}

static unsigned default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

int server_run(struct server *s, void (*ready)(void *), void *arg)
{
    s->base = event_base_new();
    s->n_threads = s->config->io_threads ? s->config->io_threads : default_threads();
    s->threads = xcalloc(s->n_threads, sizeof(struct io_thread *));
    s->lists = xcalloc(s->n_threads, sizeof(*s->lists));
    for (unsigned i = 0; i < s->n_threads; i++) {
        s->threads[i] = io_thread_new(i);
        if (s->threads[i] == NULL || !io_thread_start(s->threads[i])) {
            log_error("cannot start I/O thread %u", i);
            return 1;
        }
    }
    s->workers = worker_pool_new(s->config->worker_threads, s->config->worker_queue);
    s->store_workers = worker_pool_new(s->config->store_threads, s->config->worker_queue);
    if (s->workers == NULL || s->store_workers == NULL) {
        log_error("cannot start the worker pool");
        return 1;
    }
    for (size_t i = 0; i < s->n_listeners; i++) {
        if (!listener_enable(s, s->listeners[i])) {
            log_error("listener %s: cannot accept", s->listeners[i]->lc->name);
            return 1;
        }
    }
    if (s->control && !control_start(s->control, s->base, s->threads, s->lists, s->n_threads)) {
        log_error("control socket %s: cannot accept", control_path(s->control));
        return 1;
    }
    s->ev_hup = evsignal_new(s->base, SIGHUP, on_signal, s);
    s->ev_term = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->ev_int = evsignal_new(s->base, SIGINT, on_signal, s);
    evsignal_add(s->ev_hup, NULL);
    evsignal_add(s->ev_term, NULL);
    evsignal_add(s->ev_int, NULL);
    for (size_t i = 0; i < s->n_listeners; i++) {
        const struct listener_config *lc = s->listeners[i]->lc;
        log_info("listening on %s port %u (%s, TLS %s)", lc->address, lc->port,
                 protocol_name(lc->protocol), tls_mode_name(lc->tls));
    }
    log_info("ready: %u I/O threads, %u workers, %u store workers", s->n_threads,
             s->config->worker_threads, s->config->store_threads);
    if (ready)
        ready(arg);

    event_base_dispatch(s->base);

    /* Graceful stop: no new clients, goodbye to the current ones, then a bounded wait. */
    s->stopping = true;
    for (size_t i = 0; i < s->n_listeners; i++)
        listener_disable(s->listeners[i]);
    control_stop(s->control); /* the socket goes at once: posternctl says "not running" */
    for (unsigned i = 0; i < s->n_threads; i++)
        io_thread_post(s->threads[i], post_shutdown, &s->lists[i]);
    uint64_t deadline = now_ms() + SHUTDOWN_GRACE_MS;
    while (atomic_load(&s->total) > 0 && now_ms() < deadline)
        usleep(10000);
    for (unsigned i = 0; i < s->n_threads; i++)
        io_thread_post(s->threads[i], post_abort, &s->lists[i]);
    worker_pool_free(s->workers); /* finishes jobs; their replies reach live threads */
    s->workers = NULL;
    worker_pool_free(s->store_workers);
    s->store_workers = NULL;
    for (unsigned i = 0; i < s->n_threads; i++)
        io_thread_stop(s->threads[i]);
    for (unsigned i = 0; i < s->n_threads; i++)
        io_thread_join_free(s->threads[i]);
    free(s->threads);
    s->threads = NULL;
    control_free(s->control); /* requests still waiting held parts for the io_threads */
    s->control = NULL;
    log_info("stopped");
    return 0;
}

void server_free(struct server *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; s->listeners && i < s->n_listeners; i++) {
        listener_disable(s->listeners[i]);
        listener_unref(s->listeners[i]);
    }
    free(s->listeners);
    control_free(s->control);
    free(s->lists);
    if (s->ev_hup) {
        event_free(s->ev_hup);
        event_free(s->ev_term);
        event_free(s->ev_int);
    }
    if (s->base)
        event_base_free(s->base);
    tls_creds_publish(NULL);
    config_unref(s->config);
    free(s);
}
