/* One client connection of the load generator: a non-blocking socket from one of several
 * loopback source addresses, an optional GnuTLS session driven by libevent, and two evbuffers.
 * The workload sees only ready/input/failed callbacks and lg_conn_send(). */
#include "loadgen.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#define READ_CHUNK 16384
/* How much one wake-up reads, so that one fast sender does not starve the others. */
#define READ_BUDGET ((size_t)256 * 1024)

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timeout(evutil_socket_t fd, short what, void *arg);

static void arm_timer(struct lg_conn *c)
{
    double t = c->lg->opt.timeout;
    struct timeval tv = {.tv_sec = (time_t)t,
                         .tv_usec = (suseconds_t)((t - (double)(time_t)t) * 1e6)};
    evtimer_add(c->timer, &tv);
}

/* A dead connection stops all I/O at once; the workload hears of it from the loop, never from
 * inside one of its own calls, so it may free its session there. */
static void fail(struct lg_conn *c, const char *why)
{
    if (c->dead)
        return;
    c->dead = true;
    snprintf(c->why, sizeof c->why, "%s", why);
    event_del(c->rev);
    event_del(c->wev);
    event_del(c->timer);
    event_active(c->timer, EV_TIMEOUT, 0);
}

/* Connect from 127.0.0.(2 + n % sources): each source address has its own ephemeral ports,
 * so many short sessions do not run out of them while old ones sit in TIME_WAIT. */
static int connect_socket(struct lg *lg)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (lg->opt.sources > 0) {
        /* the port is chosen at connect() with the whole 4-tuple known */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        unsigned n = lg->connects++ % (unsigned)lg->opt.sources;
        src.sin_addr.s_addr = htonl(0x7f000002u + n);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lg->opt.port)};
    if (inet_pton(AF_INET, lg->opt.host, &dst.sin_addr) != 1) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

struct lg_conn *lg_conn_open(struct lg *lg, const struct lg_conn_ops *ops, void *owner)
{
    int fd = connect_socket(lg);
    if (fd < 0) {
        lg->stats.connect_errors++;
        lg_error(lg, "connect: %s", strerror(errno));
        return NULL;
    }
    struct lg_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->lg = lg;
    c->ops = ops;
    c->owner = owner;
    c->fd = fd;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    c->rev = event_new(lg->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(lg->base, fd, EV_WRITE, on_write, c);
    c->timer = evtimer_new(lg->base, on_timeout, c);
    event_add(c->wev, NULL); /* writable = connected (or failed) */
    arm_timer(c);
    return c;
}

static void destroy(struct lg_conn *c)
{
    if (c->tls)
        gnutls_deinit(c->tls);
    event_free(c->rev);
    event_free(c->wev);
    event_free(c->timer);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    close(c->fd);
    free(c);
}

void lg_conn_close(struct lg_conn *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    c->dead = true;
    event_del(c->rev);
    event_del(c->wev);
    event_del(c->timer);
    event_active(c->timer, EV_TIMEOUT, 0);
}

static void tls_describe(struct lg_conn *c)
{
    if (c->lg->tls_desc[0] != '\0')
        return;
    char *desc = gnutls_session_get_desc(c->tls);
    if (desc) {
        snprintf(c->lg->tls_desc, sizeof c->lg->tls_desc, "%s", desc);
        gnutls_free(desc);
    }
}

static void handshake(struct lg_conn *c)
{
    int r = gnutls_handshake(c->tls);
    if (r == GNUTLS_E_SUCCESS) {
        c->handshaking = false;
        tls_describe(c);
        event_add(c->rev, NULL);
        arm_timer(c);
        c->ops->ready(c);
        return;
    }
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
        if (gnutls_record_get_direction(c->tls) == 1) {
            event_del(c->rev);
            event_add(c->wev, NULL);
        } else {
            event_add(c->rev, NULL);
        }
        return;
    }
    if (gnutls_error_is_fatal(r) == 0) {
        event_add(c->rev, NULL);
        return;
    }
    fail(c, gnutls_strerror(r));
}

static void start_tls(struct lg_conn *c)
{
    struct lg *lg = c->lg;
    if (gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK) < 0) {
        c->tls = NULL;
        fail(c, "gnutls_init");
        return;
    }
    gnutls_priority_set(c->tls, lg->prio);
    gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, lg->creds);
    if (lg->opt.ca_file)
        gnutls_session_set_verify_cert(c->tls, "localhost", 0);
    gnutls_transport_set_int(c->tls, c->fd);
    c->handshaking = true;
    handshake(c);
}

static void flush_out(struct lg_conn *c)
{
    while (evbuffer_get_length(c->out) > 0) {
        size_t len = evbuffer_get_length(c->out);
        if (len > READ_CHUNK)
            len = READ_CHUNK;
        const unsigned char *p = evbuffer_pullup(c->out, (ev_ssize_t)len);
        ssize_t n;
        if (c->tls) {
            /* after GNUTLS_E_AGAIN the same data is offered again: it is still at the front */
            n = gnutls_record_send(c->tls, p, len);
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
                event_add(c->wev, NULL);
                return;
            }
            if (n < 0) {
                fail(c, gnutls_strerror((int)n));
                return;
            }
        } else {
            n = send(c->fd, p, len, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                event_add(c->wev, NULL);
                return;
            }
            if (n < 0) {
                fail(c, strerror(errno));
                return;
            }
        }
        evbuffer_drain(c->out, (size_t)n);
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lg_conn *c = arg;
    if (!c->connected) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            c->lg->stats.connect_errors++;
            fail(c, strerror(err));
            return;
        }
        c->connected = true;
        if (c->lg->opt.tls) {
            start_tls(c);
        } else {
            event_add(c->rev, NULL);
            c->ops->ready(c);
        }
        return;
    }
    if (c->handshaking) {
        handshake(c);
        return;
    }
    flush_out(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lg_conn *c = arg;
    if (c->handshaking) {
        handshake(c);
        return;
    }
    size_t got = 0;
    bool eof = false;
    while (got < READ_BUDGET) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) < 1) {
            fail(c, "out of memory");
            return;
        }
        ssize_t n;
        if (c->tls) {
            n = gnutls_record_recv(c->tls, v.iov_base, v.iov_len);
            if (n < 0 && gnutls_error_is_fatal((int)n) == 0) /* AGAIN, INTERRUPTED, ... */
                n = -2;
            else if (n < 0 && n != GNUTLS_E_PREMATURE_TERMINATION) {
                evbuffer_commit_space(c->in, &v, 0);
                fail(c, gnutls_strerror((int)n));
                return;
            } else if (n < 0) {
                n = 0;
            }
        } else {
            n = recv(c->fd, v.iov_base, v.iov_len, 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                n = -2;
            else if (n < 0) {
                evbuffer_commit_space(c->in, &v, 0);
                fail(c, strerror(errno));
                return;
            }
        }
        if (n == -2) {
            evbuffer_commit_space(c->in, &v, 0);
            break;
        }
        v.iov_len = (size_t)n;
        evbuffer_commit_space(c->in, &v, 1);
        if (n == 0) {
            eof = true;
            break;
        }
        got += (size_t)n;
        if (c->tls && gnutls_record_check_pending(c->tls) == 0 && (size_t)n < READ_CHUNK)
            break;
    }
    if (got > 0) {
        arm_timer(c);
        c->ops->input(c);
        if (c->dead)
            return;
    }
    if (eof)
        fail(c, "closed by the server");
    else if (got >= READ_BUDGET)
        event_active(c->rev, EV_READ, 0); /* more may be waiting: come back after the others */
}

/* The timer doubles as the deferred end: after lg_conn_close() it frees, after a failure it
 * tells the workload, otherwise the server has been silent for too long. */
static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lg_conn *c = arg;
    if (c->closing)
        destroy(c);
    else if (c->dead)
        c->ops->failed(c, c->why);
    else
        fail(c, "timeout");
}

void lg_conn_send(struct lg_conn *c, const void *data, size_t len)
{
    if (c->dead)
        return;
    evbuffer_add(c->out, data, len);
    flush_out(c);
}

void lg_conn_printf(struct lg_conn *c, const char *fmt, ...)
{
    if (c->dead)
        return;
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(c->out, fmt, ap);
    va_end(ap);
    flush_out(c);
}
