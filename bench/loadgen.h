/* The benchmark load generator's shared types: options, one client connection, statistics. */
#ifndef BENCH_LOADGEN_H
#define BENCH_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <gnutls/gnutls.h>

/* ---- options ------------------------------------------------------------------------------ */

enum workload {
    WL_IMAP_LOGIN, /* connect, LOGIN, LOGOUT */
    WL_IMAP_MIXED, /* SELECT, FETCH headers, FETCH bodies, STORE, APPEND, EXPUNGE, IDLE */
    WL_IMAP_IDLE,  /* hold sessions in IDLE, report when a new message reaches them */
    WL_IMAP_PRIME, /* every user once: LOGIN, SELECT, FETCH 1:* headers, LOGOUT */
    WL_POP3,       /* USER/PASS, STAT, UIDL, RETR all, QUIT */
    WL_POP3_PRIME, /* every user once: USER/PASS, UIDL, QUIT */
};

struct lg_options {
    enum workload workload;
    const char *host;
    int port;
    bool tls;            /* implicit TLS (993/995); otherwise cleartext */
    const char *ca_file; /* verify the server against it; NULL: no verification */
    const char *priority;
    int concurrency;         /* sessions in flight (idle: handshakes in flight) */
    double duration;         /* seconds of measurement (not for prime and idle) */
    double warmup;           /* seconds before measuring starts */
    const char *user_prefix; /* user n is prefix + n in user_digits digits: bench00042 */
    int user_digits;
    int user_first, user_count;
    const char *password;
    int sources;    /* client source addresses 127.0.0.2 ... */
    int sessions;   /* idle: sessions to open */
    int iterations; /* mixed: iterations per session before LOGOUT */
    int idle_ms;    /* mixed: how long IDLE lasts */
    double timeout; /* seconds a server may stay silent before the session fails */
    unsigned seed;
};

/* ---- statistics --------------------------------------------------------------------------- */

/* A log-linear histogram of latencies in microseconds: 64 buckets per power of two, so a
 * percentile is within about 1.5 % of the true value. */
#define HIST_SUB 64
#define HIST_POW 32
struct histogram {
    uint64_t count;
    double sum_us;
    uint64_t max_us;
    uint64_t bucket[HIST_POW * HIST_SUB];
};

void hist_add(struct histogram *h, uint64_t us);
uint64_t hist_percentile(const struct histogram *h, double p);

/* What one run measured, by operation kind. */
enum op_kind {
    OP_CONNECT,       /* TCP connect + TLS handshake + greeting */
    OP_LOGIN,         /* the login command alone */
    OP_SESSION_LOGIN, /* connect start to login answer (what a user waits for) */
    OP_SELECT,
    OP_FETCH_HEADERS,
    OP_FETCH_BODY,
    OP_STORE,
    OP_APPEND,
    OP_EXPUNGE,
    OP_IDLE,
    OP_LOGOUT,
    OP_STAT,
    OP_UIDL,
    OP_RETR,
    OP_SESSION, /* a whole session, connect to close */
    OP_KINDS
};

struct lg_stats {
    struct histogram op[OP_KINDS];
    uint64_t commands; /* protocol commands answered OK (all kinds but connect/session) */
    uint64_t sessions; /* sessions completed */
    uint64_t logins;   /* successful logins */
    uint64_t bytes;    /* message bytes received (FETCH bodies, RETR) */
    uint64_t errors;
    uint64_t connect_errors;
};

const char *op_name(enum op_kind k);

/* ---- the run ------------------------------------------------------------------------------ */

struct lg {
    struct lg_options opt;
    struct event_base *base;
    gnutls_certificate_credentials_t creds;
    gnutls_priority_t prio;
    struct lg_stats stats;
    bool measuring;           /* after the warm-up */
    bool stopping;            /* no new sessions */
    int active;               /* sessions open */
    int next_user;            /* round robin over the users */
    unsigned char *user_busy; /* one byte per user: held by a session */
    bool pass_done;           /* prime: every user had its session */
    unsigned connects;        /* for picking source addresses */
    char tls_desc[128];       /* version and cipher of the first session */
    int printed_errors;
};

uint64_t now_us(void);
void lg_error(struct lg *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lg_record(struct lg *lg, enum op_kind k, uint64_t start_us);
void lg_session_completed(struct lg *lg, uint64_t t_connect);
void lg_session_ended(struct lg *lg);

/* ---- one client connection: socket, optional TLS, buffers --------------------------------- */

struct lg_conn;
struct lg_conn_ops {
    void (*ready)(struct lg_conn *c);                   /* connected (and TLS handshake done) */
    void (*input)(struct lg_conn *c);                   /* new bytes in c->in */
    void (*failed)(struct lg_conn *c, const char *why); /* the connection is dead */
};

struct lg_conn {
    struct lg *lg;
    const struct lg_conn_ops *ops;
    void *owner;
    int fd;
    gnutls_session_t tls;
    struct event *rev, *wev, *timer;
    struct evbuffer *in, *out;
    bool handshaking, connected, dead, closing;
    char why[128];
};

struct lg_conn *lg_conn_open(struct lg *lg, const struct lg_conn_ops *ops, void *owner);
void lg_conn_send(struct lg_conn *c, const void *data, size_t len);
void lg_conn_printf(struct lg_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends the connection; it is freed from the loop. Also after `failed`. */
void lg_conn_close(struct lg_conn *c);

/* ---- workloads ---------------------------------------------------------------------------- */

void imap_start_session(struct lg *lg);
void pop3_start_session(struct lg *lg);
/* idle workload: a line from the driver on standard input */
void imap_idle_command(struct lg *lg, const char *line);
void imap_idle_report_ready(struct lg *lg);
/* A user no other session of this run holds (-1: none free, or a prime pass is through). */
int lg_user_take(struct lg *lg);
void lg_user_put(struct lg *lg, int user);
void lg_user_name(const struct lg *lg, int user, char *buf, size_t size);
/* A session could not even connect: try again a little later. */
void lg_session_failed_to_start(struct lg *lg);

#endif
