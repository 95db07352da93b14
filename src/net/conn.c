/* Connection I/O: non-blocking socket or GnuTLS session, buffers, timer, STARTTLS, close. */
#include "conn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <gnutls/gnutls.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "postern/imap.h"
#include "postern/log.h"
#include "postern/loop.h"
#include "postern/pop3.h"
#include "postern/tls.h"
#include "postern/util.h"

/* Input beyond what one command may carry is not read until the protocol has consumed some;
 * output beyond this stops reading, so a client that never reads cannot make us buffer
 * without bound. */
#define OUTPUT_HIGH_WATER ((size_t)1024 * 1024)
#define READ_CHUNK 16384
#define CLOSE_LINGER_SECONDS 10
/* A file range is read into the output buffer a chunk at a time, whenever what is queued
 * falls below this: a 50 MB message never sits in memory. */
#define PUMP_LOW_WATER ((size_t)256 * 1024)
#define PUMP_CHUNK ((size_t)64 * 1024)

/* Output that is not in memory yet: a range of a file (fd >= 0), or the bytes written after
 * such a range (text), in the order they were written. */
struct out_item {
    struct out_item *next;
    int fd;
    uint64_t offset, raw_left; /* where to read next, and how much of the range is left */
    bool crlf;                 /* a LF without CR before it goes out as CRLF */
    bool dot_stuff;            /* POP3: a '.' that begins a line goes out doubled */
    bool nul_as_0x80;          /* IMAP: NUL goes out as 0x80 */
    bool prev_cr, line_start;
    bool exact;          /* `left` was promised: a shorter file is an error */
    uint64_t skip, left; /* bytes (as sent) to drop first; bytes still to send */
    struct evbuffer *text;
};

enum tls_state {
    TLS_OFF,
    TLS_WAIT_FLUSH, /* STARTTLS answered; handshake starts once that answer has left */
    TLS_HANDSHAKE,
    TLS_ON,
};

struct conn {
    struct io_thread *thread;
    struct conn_list *list;
    struct conn *prev, *next;
    struct conn_env env;
    struct listener *listener;
    struct tls_creds *creds; /* those of the handshake, held until gnutls_deinit() */
    int fd;
    uint64_t id;
    struct ip_addr peer;
    unsigned peer_port;
    char peer_text[48];

    struct event *ev_read, *ev_write, *ev_timer;
    struct evbuffer *in, *out;
    gnutls_session_t tls;
    enum tls_state tls_state;
    unsigned timeout; /* seconds of the protocol's current timer */

    const struct protocol_ops *ops;
    void *session;
    bool opened;  /* the protocol has its session */
    bool closing; /* flushing the last output */
    bool dead;    /* socket closed; memory waits for callbacks and jobs */
    bool paused;
    int busy;                                /* nesting of protocol callbacks running now */
    char *account_scope;                     /* MaxConnectionsPerUser slot held, or NULL */
    int jobs;                                /* worker jobs not yet completed */
    struct out_item *pending, *pending_tail; /* output after c->out, not read yet */
    struct deferred *drain_waiter;           /* conn_when_drained() */

    /* for posternctl sessions (conn_describe) */
    time_t connected_at, login_at;
    char *account, *account_dn, *mechanism; /* conn_set_identity(), after a login */
    uint64_t bytes_in, bytes_out;           /* application bytes (inside TLS) */
};

/* A callback run later on the connection's thread (conn_defer, conn_when_drained). */
struct deferred {
    struct conn *c;
    struct event *timer;
    void (*fn)(void *);
    void *arg;
};

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void handshake(struct conn *c);
static void destroy(struct conn *c);

static size_t input_limit(const struct conn *c)
{
    const struct protocol_settings *ps = conn_protocol_settings(c);
    return (size_t)ps->max_command_size + (size_t)ps->max_literal_size + READ_CHUNK;
}

/* Every entry from the event loop (socket, timer, posted task, worker reply) runs between
 * enter() and leave(), so that nothing below frees the connection under its caller. */
static void enter(struct conn *c)
{
    c->busy++;
}

static void free_conn(struct conn *c)
{
    if (c->session)
        c->ops->free(c->session);
    listener_unref(c->listener);
    tls_creds_unref(c->creds);
    free(c->account);
    free(c->account_dn);
    free(c->mechanism);
    free(c);
}

/* Leaves a callback; frees the connection once nothing refers to it any more. */
static void leave(struct conn *c)
{
    if (--c->busy == 0 && c->dead && c->jobs == 0)
        free_conn(c);
}

static void arm_timer(struct conn *c, unsigned seconds)
{
    struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};
    evtimer_add(c->ev_timer, &tv);
}

static void free_pending(struct conn *c)
{
    while (c->pending) {
        struct out_item *i = c->pending;
        c->pending = i->next;
        if (i->fd >= 0)
            close(i->fd);
        if (i->text)
            evbuffer_free(i->text);
        free(i);
    }
    c->pending_tail = NULL;
}

/* Copies `len` bytes of a message file to `out` as the protocol wants them: bare LF as CRLF,
 * a dot at a line start doubled (POP3), NUL as 0x80 (IMAP literals); returns the bytes
 * written (at most 2 * len). Line by line with memchr/memcpy: byte by byte, this loop was a
 * fifth of posternd's CPU time in bench/'s POP3 workload (perf). */
static size_t transform(struct out_item *i, const unsigned char *raw, size_t len,
                        unsigned char *out)
{
    size_t n = 0;
    const unsigned char *p = raw, *end = raw + len;
    while (p < end) {
        if (i->dot_stuff && i->line_start && *p == '.')
            out[n++] = '.';
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t run = (size_t)((nl ? nl : end) - p);
        if (run > 0) {
            memcpy(out + n, p, run);
            if (i->nul_as_0x80) {
                unsigned char *z = out + n, *zend = out + n + run;
                while ((z = memchr(z, '\0', (size_t)(zend - z))) != NULL)
                    *z++ = 0x80;
            }
            n += run;
            i->prev_cr = p[run - 1] == '\r';
            i->line_start = false;
            p += run;
        }
        if (nl != NULL) {
            if (i->crlf && !i->prev_cr)
                out[n++] = '\r';
            out[n++] = '\n';
            i->prev_cr = false;
            i->line_start = true;
            p++;
        }
    }
    return n;
}

/* Moves pending output into c->out until it holds PUMP_LOW_WATER bytes. False when a file
 * could not deliver the bytes promised (it shrank, or a read failed): the peer was told a
 * literal's length, so the connection cannot go on. */
static bool pump(struct conn *c)
{
    while (c->pending && evbuffer_get_length(c->out) < PUMP_LOW_WATER) {
        struct out_item *i = c->pending;
        if (i->fd < 0 || i->left == 0) {
            if (i->text)
                evbuffer_add_buffer(c->out, i->text);
            c->pending = i->next;
            if (c->pending == NULL)
                c->pending_tail = NULL;
            if (i->fd >= 0)
                close(i->fd);
            if (i->text)
                evbuffer_free(i->text);
            free(i);
            continue;
        }
        unsigned char raw[PUMP_CHUNK], out[3 * PUMP_CHUNK];
        size_t want = i->raw_left < sizeof(raw) ? (size_t)i->raw_left : sizeof(raw);
        ssize_t r = want ? pread(i->fd, raw, want, (off_t)i->offset) : 0;
        if (r <= 0) {
            log_warning("conn %llu: a message file ended or failed while being sent (%s)",
                        (unsigned long long)c->id, r < 0 ? strerror(errno) : "short");
            return false;
        }
        i->offset += (uint64_t)r;
        i->raw_left -= (uint64_t)r;
        size_t n = transform(i, raw, (size_t)r, out);
        size_t from = 0;
        if (i->skip > 0) {
            from = i->skip < n ? (size_t)i->skip : n;
            i->skip -= from;
        }
        size_t give = n - from;
        if (give > i->left)
            give = (size_t)i->left;
        evbuffer_add(c->out, out + from, give);
        i->left -= give;
        if (i->left > 0 && i->raw_left == 0) {
            if (!i->exact) {
                i->left = 0;
                continue;
            }
            log_warning("conn %llu: a message file is shorter than announced",
                        (unsigned long long)c->id);
            return false;
        }
    }
    return true;
}

/* Whether to wait for input: not while closing, not while the TLS switch is pending, and not
 * when either buffer is full (backpressure). */
static void update_read_interest(struct conn *c)
{
    if (c->dead || c->tls_state == TLS_HANDSHAKE)
        return;
    bool want = !c->closing && c->tls_state != TLS_WAIT_FLUSH &&
                evbuffer_get_length(c->in) < input_limit(c) &&
                evbuffer_get_length(c->out) < OUTPUT_HIGH_WATER && c->pending == NULL;
    if (want)
        event_add(c->ev_read, NULL);
    else
        event_del(c->ev_read);
}

static void schedule_flush(struct conn *c)
{
    if (!c->dead && !event_pending(c->ev_write, EV_WRITE, NULL))
        event_active(c->ev_write, EV_WRITE, 0);
}

static void deliver_input(struct conn *c)
{
    if (c->dead || c->closing || c->paused || !c->opened ||
        (c->tls_state != TLS_OFF && c->tls_state != TLS_ON))
        return;
    if (evbuffer_get_length(c->in) == 0)
        return;
    c->ops->input(c->session);
    update_read_interest(c);
}

static void open_protocol(struct conn *c)
{
    c->session = c->ops->open(c);
    c->opened = true;
}

static void start_tls(struct conn *c)
{
    /* The newest certificate, also for a STARTTLS on a session that began before a reload. */
    c->creds = tls_creds_current();
    c->tls = c->creds ? tls_session_new(c->creds, c->fd, c->listener->lc->protocol) : NULL;
    if (c->tls == NULL) {
        log_error("conn %llu: cannot create a TLS session", (unsigned long long)c->id);
        destroy(c);
        return;
    }
    c->tls_state = TLS_HANDSHAKE;
    event_del(c->ev_read);
    arm_timer(c, c->listener->config->tls_handshake_timeout);
    handshake(c);
}

static void handshake(struct conn *c)
{
    int rc;
    do {
        rc = gnutls_handshake(c->tls);
    } while (rc < 0 && !gnutls_error_is_fatal(rc) && rc != GNUTLS_E_AGAIN);
    if (rc == GNUTLS_E_AGAIN) {
        if (gnutls_record_get_direction(c->tls) == 1) {
            event_del(c->ev_read);
            event_add(c->ev_write, NULL);
        } else {
            event_add(c->ev_read, NULL);
        }
        return;
    }
    if (rc < 0) {
        log_info("conn %llu from %s: TLS handshake failed: %s", (unsigned long long)c->id,
                 c->peer_text, gnutls_strerror(rc));
        destroy(c);
        return;
    }
    c->tls_state = TLS_ON;
    evtimer_del(c->ev_timer);
    if (c->timeout)
        arm_timer(c, c->timeout);
    char desc[128];
    log_debug("conn %llu: %s", (unsigned long long)c->id,
              conn_tls_description(c, desc, sizeof(desc)));
    if (!c->opened)
        open_protocol(c);
    else if (c->ops->tls_ready)
        c->ops->tls_ready(c->session);
    if (c->dead)
        return;
    update_read_interest(c);
    /* GnuTLS may already hold application data that arrived with the handshake. */
    if (gnutls_record_check_pending(c->tls) > 0)
        event_active(c->ev_read, EV_READ, 0);
}

/* The output has nearly left: wake a conn_when_drained() waiter. */
static void check_drained(struct conn *c)
{
    if (c->drain_waiter &&
        (c->dead || (c->pending == NULL && evbuffer_get_length(c->out) < PUMP_LOW_WATER))) {
        struct timeval now = {0, 0};
        evtimer_add(c->drain_waiter->timer, &now);
        c->drain_waiter = NULL;
    }
}

static void flush(struct conn *c)
{
    if (!pump(c)) {
        destroy(c);
        return;
    }
    while (!c->dead && evbuffer_get_length(c->out) > 0) {
        size_t n = evbuffer_get_contiguous_space(c->out);
        if (n > READ_CHUNK)
            n = READ_CHUNK;
        const unsigned char *p = evbuffer_pullup(c->out, (ev_ssize_t)n);
        ssize_t r;
        if (c->tls_state == TLS_ON) {
            r = gnutls_record_send(c->tls, p, n);
            if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
                event_add(c->ev_write, NULL);
                check_drained(c);
                return;
            }
            if (r < 0) {
                log_debug("conn %llu: TLS send: %s", (unsigned long long)c->id,
                          gnutls_strerror((int)r));
                destroy(c);
                return;
            }
        } else {
            r = send(c->fd, p, n, MSG_NOSIGNAL);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                event_add(c->ev_write, NULL);
                check_drained(c);
                return;
            }
            if (r < 0) {
                log_debug("conn %llu: send: %s", (unsigned long long)c->id, strerror(errno));
                destroy(c);
                return;
            }
        }
        evbuffer_drain(c->out, (size_t)r);
        c->bytes_out += (size_t)r;
        if (c->pending && !pump(c)) {
            destroy(c);
            return;
        }
    }
    if (c->dead)
        return;
    check_drained(c);
    if (c->tls_state == TLS_WAIT_FLUSH) {
        start_tls(c);
        return;
    }
    if (c->closing) {
        if (c->tls_state == TLS_ON)
            gnutls_bye(c->tls, GNUTLS_SHUT_WR); /* best effort: never wait for the peer */
        destroy(c);
        return;
    }
    update_read_interest(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    enter(c);
    if (c->tls_state == TLS_HANDSHAKE)
        handshake(c);
    else
        flush(c);
    leave(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    enter(c);
    if (c->tls_state == TLS_HANDSHAKE) {
        handshake(c);
        leave(c);
        return;
    }
    bool eof = false;
    size_t got = 0;
    char buf[READ_CHUNK];
    while (!c->dead && got < (size_t)4 * READ_CHUNK &&
           evbuffer_get_length(c->in) < input_limit(c)) {
        ssize_t r;
        if (c->tls_state == TLS_ON) {
            r = gnutls_record_recv(c->tls, buf, sizeof(buf));
            if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
                break;
            if (r == GNUTLS_E_REHANDSHAKE || r == GNUTLS_E_WARNING_ALERT_RECEIVED)
                continue;
            if (r < 0) {
                log_debug("conn %llu: TLS receive: %s", (unsigned long long)c->id,
                          gnutls_strerror((int)r));
                eof = true;
                break;
            }
        } else {
            r = recv(c->fd, buf, sizeof(buf), 0);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                break;
            if (r < 0) {
                eof = true;
                break;
            }
        }
        if (r == 0) {
            eof = true;
            break;
        }
        evbuffer_add(c->in, buf, (size_t)r);
        got += (size_t)r;
        c->bytes_in += (size_t)r;
        if (c->tls_state == TLS_ON ? gnutls_record_check_pending(c->tls) == 0
                                   : (size_t)r < sizeof(buf))
            break;
    }
    wipe(buf, sizeof(buf));
    deliver_input(c);
    if (eof && !c->dead) {
        log_debug("conn %llu from %s: client closed the connection", (unsigned long long)c->id,
                  c->peer_text);
        destroy(c);
    } else if (!c->dead && c->tls_state == TLS_ON && gnutls_record_check_pending(c->tls) > 0 &&
               evbuffer_get_length(c->in) < input_limit(c)) {
        event_active(c->ev_read, EV_READ, 0);
    }
    leave(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    enter(c);
    if (c->tls_state == TLS_HANDSHAKE || !c->opened) {
        log_info("conn %llu from %s: TLS handshake timed out", (unsigned long long)c->id,
                 c->peer_text);
        destroy(c);
    } else if (c->closing) {
        destroy(c); /* the peer never took our last words */
    } else if (c->ops->timeout) {
        c->ops->timeout(c->session);
    }
    leave(c);
}

static void unlink_conn(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->list->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Closes the socket at once and releases the connection's slot. It never frees: callers run
 * between enter() and leave(), and leave() frees once no callback or job refers to it. */
static void destroy(struct conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    unlink_conn(c);
    event_free(c->ev_read);
    event_free(c->ev_write);
    event_free(c->ev_timer);
    if (c->tls)
        gnutls_deinit(c->tls);
    c->tls = NULL;
    close(c->fd);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    free_pending(c);
    check_drained(c);
    limits_release("", &c->peer);
    limits_release(c->listener->lc->name, &c->peer);
    limits_release(c->listener->lc->name, NULL);
    if (c->account_scope) {
        limits_release(c->account_scope, NULL);
        free(c->account_scope);
        c->account_scope = NULL;
    }
    atomic_fetch_sub(c->env.total, 1);
    log_debug("conn %llu from %s closed", (unsigned long long)c->id, c->peer_text);
}

static void conn_start(void *arg)
{
    struct conn *c = arg;
    struct event_base *base = io_thread_base(c->thread);
    c->ev_read = event_new(base, c->fd, EV_READ | EV_PERSIST, on_read, c);
    c->ev_write = event_new(base, c->fd, EV_WRITE, on_write, c);
    c->ev_timer = evtimer_new(base, on_timer, c);
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    c->next = c->list->head;
    if (c->next)
        c->next->prev = c;
    c->list->head = c;
    enter(c);
    if (c->listener->lc->tls == TLS_MODE_IMPLICIT) {
        start_tls(c);
    } else {
        open_protocol(c);
        update_read_interest(c);
    }
    leave(c);
}

void conn_accept(struct io_thread *t, struct conn_list *list, const struct conn_env *env,
                 struct listener *l, int fd, const struct ip_addr *peer, unsigned peer_port,
                 uint64_t id)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    c->thread = t;
    c->list = list;
    c->env = *env;
    c->listener = l;
    c->fd = fd;
    c->id = id;
    c->peer = *peer;
    c->peer_port = peer_port;
    c->connected_at = time(NULL);
    addr_to_text(peer, c->peer_text, sizeof(c->peer_text));
    c->ops = l->lc->protocol == PROTOCOL_IMAP ? &imap_protocol : &pop3_protocol;
    io_thread_post(t, conn_start, c);
}

void conn_end(struct conn *c, const char *why)
{
    enter(c);
    if (c->opened && !c->closing && !c->dead && c->ops->shutdown)
        c->ops->shutdown(c->session);
    conn_close(c, why);
    leave(c);
}

void conn_list_shutdown(struct conn_list *list)
{
    struct conn *next;
    for (struct conn *c = list->head; c; c = next) {
        next = c->next;
        conn_end(c, "server shutdown");
    }
}

void conn_list_visit(struct conn_list *list, void (*fn)(struct conn *c, void *arg), void *arg)
{
    struct conn *next;
    for (struct conn *c = list->head; c; c = next) {
        next = c->next;
        enter(c);
        fn(c, arg);
        leave(c);
    }
}

void conn_describe(const struct conn *c, struct conn_info *info)
{
    *info = (struct conn_info){.id = c->id,
                               .protocol = c->listener->lc->protocol,
                               .listener = c->listener->lc->name,
                               .peer = c->peer_text,
                               .peer_port = c->peer_port,
                               .account = c->account,
                               .account_dn = c->account_dn,
                               .mechanism = c->mechanism,
                               .connected_at = c->connected_at,
                               .login_at = c->login_at,
                               .bytes_in = c->bytes_in,
                               .bytes_out = c->bytes_out};
    if (c->tls_state == TLS_ON) {
        info->tls_version = gnutls_protocol_get_name(gnutls_protocol_get_version(c->tls));
        info->tls_cipher = gnutls_cipher_get_name(gnutls_cipher_get(c->tls));
    }
    info->state = c->closing      ? "closing"
                  : !c->opened    ? "handshake"
                  : c->account_dn ? "authenticated"
                                  : "pre-auth";
}

void conn_list_abort(struct conn_list *list)
{
    struct conn *next;
    for (struct conn *c = list->head; c; c = next) {
        next = c->next;
        enter(c);
        destroy(c);
        leave(c);
    }
}

/* ---- the API for protocol modules ---------------------------------------------------------- */

struct evbuffer *conn_input(struct conn *c)
{
    return c->in;
}

/* Where written bytes go: c->out, or behind a file range that is still being sent. */
static struct evbuffer *output_tail(struct conn *c)
{
    if (c->pending == NULL)
        return c->out;
    struct out_item *t = c->pending_tail;
    if (t->fd >= 0 || t->text == NULL) {
        struct out_item *i = xcalloc(1, sizeof(*i));
        i->fd = -1;
        i->text = evbuffer_new();
        t->next = i;
        c->pending_tail = t = i;
    }
    return t->text;
}

void conn_write(struct conn *c, const void *data, size_t len)
{
    if (c->dead)
        return;
    evbuffer_add(output_tail(c), data, len);
    schedule_flush(c);
}

void conn_printf(struct conn *c, const char *fmt, ...)
{
    if (c->dead)
        return;
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(output_tail(c), fmt, ap);
    va_end(ap);
    schedule_flush(c);
}

void conn_write_buffer(struct conn *c, struct evbuffer *buf)
{
    if (c->dead)
        return;
    evbuffer_add_buffer(output_tail(c), buf);
    schedule_flush(c);
}

bool conn_write_file(struct conn *c, int fd, const struct conn_file_range *range)
{
    if (c->dead)
        return true;
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0)
        return false;
    struct out_item *i = xcalloc(1, sizeof(*i));
    bool exact = range->limit != CONN_FILE_ALL;
    *i = (struct out_item){.fd = own,
                           .offset = range->offset,
                           .raw_left = range->length,
                           .crlf = range->crlf,
                           .dot_stuff = range->dot_stuff,
                           .nul_as_0x80 = range->nul_as_0x80,
                           .line_start = true,
                           .exact = exact,
                           .skip = range->skip,
                           .left = exact ? range->limit : UINT64_MAX};
    if (c->pending_tail)
        c->pending_tail->next = i;
    else
        c->pending = i;
    c->pending_tail = i;
    schedule_flush(c);
    return true;
}

void conn_close(struct conn *c, const char *why)
{
    if (c->dead || c->closing)
        return;
    log_debug("conn %llu from %s: closing: %s", (unsigned long long)c->id, c->peer_text, why);
    c->closing = true;
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    event_del(c->ev_read);
    arm_timer(c, CLOSE_LINGER_SECONDS);
    schedule_flush(c);
}

bool conn_is_closing(const struct conn *c)
{
    return c->dead || c->closing;
}

void conn_starttls(struct conn *c)
{
    if (c->dead || c->tls_state != TLS_OFF)
        return;
    /* RFC 3207 §4.2's lesson (CVE-2011-0411 class): nothing the client sent before the
     * handshake may be taken as a command after it. */
    size_t pipelined = evbuffer_get_length(c->in);
    if (pipelined > 0) {
        log_info("conn %llu from %s: discarded %zu bytes pipelined after STARTTLS",
                 (unsigned long long)c->id, c->peer_text, pipelined);
        evbuffer_drain(c->in, pipelined);
    }
    c->tls_state = TLS_WAIT_FLUSH;
    event_del(c->ev_read);
    schedule_flush(c);
}

bool conn_tls_active(const struct conn *c)
{
    return c->tls_state == TLS_ON;
}

void conn_pause_input(struct conn *c, bool pause)
{
    c->paused = pause;
    if (!pause && !c->dead && evbuffer_get_length(c->in) > 0)
        event_active(c->ev_read, EV_READ, 0);
}

void conn_set_timeout(struct conn *c, unsigned seconds)
{
    c->timeout = seconds;
    if (c->dead || c->closing || c->tls_state == TLS_HANDSHAKE)
        return;
    evtimer_del(c->ev_timer);
    if (seconds)
        arm_timer(c, seconds);
}

const struct listener_config *conn_listener(const struct conn *c)
{
    return c->listener->lc;
}

const struct config *conn_config(const struct conn *c)
{
    return c->listener->config;
}

const struct protocol_settings *conn_protocol_settings(const struct conn *c)
{
    return config_protocol(c->listener->config, c->listener->lc->protocol);
}

const char *conn_peer_text(const struct conn *c)
{
    return c->peer_text;
}

const struct ip_addr *conn_peer(const struct conn *c)
{
    return &c->peer;
}

unsigned conn_peer_port(const struct conn *c)
{
    return c->peer_port;
}

uint64_t conn_id(const struct conn *c)
{
    return c->id;
}

bool conn_tls_channel_binding(const struct conn *c, bool exporter, unsigned char **data,
                              size_t *len)
{
    *data = NULL;
    *len = 0;
    if (c->tls_state != TLS_ON)
        return false;
    gnutls_datum_t cb = {NULL, 0};
    if (gnutls_session_channel_binding(
            c->tls, exporter ? GNUTLS_CB_TLS_EXPORTER : GNUTLS_CB_TLS_SERVER_END_POINT, &cb) < 0)
        return false;
    *data = xmalloc(cb.size ? cb.size : 1);
    memcpy(*data, cb.data, cb.size);
    *len = cb.size;
    gnutls_free(cb.data);
    return true;
}

const char *conn_tls_description(const struct conn *c, char *buf, size_t len)
{
    if (c->tls_state != TLS_ON) {
        snprintf(buf, len, "no TLS");
        return buf;
    }
    char *desc = gnutls_session_get_desc(c->tls);
    snprintf(buf, len, "%s", desc ? desc : "TLS");
    gnutls_free(desc);
    return buf;
}

struct job {
    struct conn *c;
    void (*work)(void *);
    void (*done)(void *);
    void *arg;
};

static void job_work(void *arg)
{
    struct job *j = arg;
    j->work(j->arg);
}

static void job_done(void *arg)
{
    struct job *j = arg;
    struct conn *c = j->c;
    enter(c);
    c->jobs--;
    j->done(j->arg);
    if (!c->dead)
        schedule_flush(c);
    leave(c);
    free(j);
}

static bool submit_to(struct conn *c, struct worker_pool *pool, void (*work)(void *),
                      void (*done)(void *), void *arg)
{
    struct job *j = xmalloc(sizeof(*j));
    *j = (struct job){.c = c, .work = work, .done = done, .arg = arg};
    if (!worker_submit(pool, c->thread, job_work, job_done, j)) {
        free(j);
        return false;
    }
    c->jobs++;
    return true;
}

bool conn_submit(struct conn *c, void (*work)(void *), void (*done)(void *), void *arg)
{
    return submit_to(c, c->env.workers, work, done, arg);
}

bool conn_submit_store(struct conn *c, void (*work)(void *), void (*done)(void *), void *arg)
{
    return submit_to(c, c->env.store_workers ? c->env.store_workers : c->env.workers, work, done,
                     arg);
}

static void deferred_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct deferred *d = arg;
    struct conn *c = d->c;
    enter(c);
    c->jobs--;
    d->fn(d->arg);
    if (!c->dead)
        schedule_flush(c);
    leave(c);
    event_free(d->timer);
    free(d);
}

void conn_defer(struct conn *c, unsigned ms, void (*fn)(void *), void *arg)
{
    struct deferred *d = xmalloc(sizeof(*d));
    *d = (struct deferred){.c = c, .fn = fn, .arg = arg};
    d->timer = evtimer_new(io_thread_base(c->thread), deferred_fire, d);
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (long)(ms % 1000) * 1000};
    c->jobs++;
    evtimer_add(d->timer, &tv);
}

void conn_when_drained(struct conn *c, void (*fn)(void *), void *arg)
{
    struct deferred *d = xmalloc(sizeof(*d));
    *d = (struct deferred){.c = c, .fn = fn, .arg = arg};
    d->timer = evtimer_new(io_thread_base(c->thread), deferred_fire, d);
    c->jobs++;
    if (c->drain_waiter) { /* one waiter: the earlier one is released now */
        struct timeval now = {0, 0};
        evtimer_add(c->drain_waiter->timer, &now);
    }
    c->drain_waiter = d;
    check_drained(c);
}

struct conn_watch {
    struct conn *c;
    struct event *ev;
    void (*fn)(void *);
    void *arg;
};

static void watch_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn_watch *w = arg;
    struct conn *c = w->c;
    enter(c);
    if (!c->dead)
        w->fn(w->arg); /* may free w */
    leave(c);
}

struct conn_watch *conn_watch_new(struct conn *c, int fd, void (*fn)(void *), void *arg)
{
    struct conn_watch *w = xmalloc(sizeof(*w));
    *w = (struct conn_watch){.c = c, .fn = fn, .arg = arg};
    w->ev = event_new(io_thread_base(c->thread), fd, EV_READ, watch_fire, w);
    if (w->ev == NULL) {
        free(w);
        return NULL;
    }
    event_add(w->ev, NULL);
    return w;
}

struct io_thread *conn_io_thread(const struct conn *c)
{
    return c->thread;
}

void conn_watch_arm(struct conn_watch *w)
{
    event_add(w->ev, NULL);
}

void conn_watch_free(struct conn_watch *w)
{
    if (w == NULL)
        return;
    event_free(w->ev);
    free(w);
}

int conn_take_line(struct conn *c, size_t max, char **line, size_t *len)
{
    struct evbuffer_ptr eol = evbuffer_search(c->in, "\n", 1, NULL);
    if (eol.pos < 0 || (size_t)eol.pos + 1 > max) {
        if (eol.pos < 0 && evbuffer_get_length(c->in) <= max)
            return 0;
        evbuffer_drain(c->in, evbuffer_get_length(c->in));
        return -1;
    }
    size_t n = (size_t)eol.pos + 1;
    char *buf = xmalloc(n + 1);
    evbuffer_remove(c->in, buf, n);
    n--; /* LF */
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    *line = buf;
    *len = n;
    return 1;
}

void conn_set_identity(struct conn *c, const char *account, const char *account_dn,
                       const char *mechanism)
{
    free(c->account);
    free(c->account_dn);
    free(c->mechanism);
    c->account = xstrdup(account ? account : "");
    c->account_dn = xstrdup(account_dn ? account_dn : "");
    c->mechanism = xstrdup(mechanism ? mechanism : "");
    c->login_at = time(NULL);
}

bool conn_claim_account(struct conn *c, const char *account_key, unsigned max)
{
    if (c->dead || c->account_scope)
        return false;
    size_t n = strlen(account_key) + 16;
    char *scope = xmalloc(n);
    /* A scope of its own in the limits table: "account:" cannot clash with a listener name
     * there because listener scopes are only ever used with an address or as totals. */
    snprintf(scope, n, "account:%s", account_key);
    if (!limits_acquire(scope, NULL, max)) {
        limits_release(scope, NULL);
        free(scope);
        return false;
    }
    c->account_scope = scope;
    return true;
}
