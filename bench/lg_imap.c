/* IMAP sessions of the load generator: the login, mixed, prime and idle workloads as one state
 * machine per session. Responses are read line by line; literals are skipped by count. */
#include "loadgen.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_FIELDS "(DATE FROM TO CC SUBJECT MESSAGE-ID CONTENT-TYPE)"
#define BODIES_PER_ITERATION 5
#define NEWEST 50

enum step {
    S_GREETING,
    S_LOGIN,
    S_SELECT,
    S_FETCH_HEADERS,
    S_FETCH_BODY,
    S_STORE,
    S_APPEND_WAIT_CONT, /* APPEND sent, waiting for "+" */
    S_APPEND,           /* message sent, waiting for the tagged answer */
    S_STORE_DELETED,
    S_EXPUNGE,
    S_IDLE_WAIT_CONT,
    S_IDLE_HOLD, /* idling: mixed waits for its timer, the idle workload for the driver */
    S_IDLE_DONE,
    S_PRIME_FETCH,
    S_LOGOUT,
};

struct imap_session {
    struct lg *lg;
    struct lg_conn *c;
    struct imap_session *prev, *next; /* idle workload: every open session */
    int user;
    enum step step;
    enum op_kind op;
    unsigned tag;
    char tagbuf[16];
    size_t taglen;
    uint64_t t_connect, t_cmd, t_idle_wait;
    size_t literal_left;
    bool counting_body;
    uint32_t exists;
    uint32_t appended_uid;
    int iteration, bodies_left;
    bool flag_on;
    bool idling;
    uint64_t notified_us; /* idle workload: when EXISTS came after the mark (0: not yet) */
    struct event *hold;
};

/* ---- the idle workload's shared state ----------------------------------------------------- */

static struct imap_session *idle_sessions;
static int idle_opened, idle_ready, idle_notified;
static bool idle_marked, idle_ready_printed;
static uint64_t idle_mark_us;

/* ---- the test message APPEND stores: a small multipart like a reply with a signature ------ */

static char append_msg[8192];
static size_t append_len;

static void make_append_message(void)
{
    if (append_len)
        return;
    int n = snprintf(append_msg, sizeof append_msg,
                     "From: Bench Sender <sender@example.test>\r\n"
                     "To: Bench User <user@example.test>\r\n"
                     "Subject: Re: benchmark appended message\r\n"
                     "Date: Mon, 2 Feb 2026 10:00:00 +0100\r\n"
                     "Message-ID: <append@bench.example.test>\r\n"
                     "MIME-Version: 1.0\r\n"
                     "Content-Type: multipart/alternative; boundary=\"b1\"\r\n"
                     "\r\n"
                     "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    while ((size_t)n < 2500)
        n += snprintf(append_msg + n, sizeof append_msg - (size_t)n,
                      "This line of the plain part is here to make the message realistic.\r\n");
    n += snprintf(append_msg + n, sizeof append_msg - (size_t)n,
                  "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>\r\n");
    while ((size_t)n < 5500)
        n += snprintf(append_msg + n, sizeof append_msg - (size_t)n,
                      "<p>This paragraph of the HTML part is here for the same reason.</p>\r\n");
    n += snprintf(append_msg + n, sizeof append_msg - (size_t)n, "</body></html>\r\n--b1--\r\n");
    append_len = (size_t)n;
}

/* ---- commands ----------------------------------------------------------------------------- */

static void command(struct imap_session *s, enum step step, enum op_kind op, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void command(struct imap_session *s, enum step step, enum op_kind op, const char *fmt, ...)
{
    s->step = step;
    s->op = op;
    s->tag++;
    s->taglen = (size_t)snprintf(s->tagbuf, sizeof s->tagbuf, "a%u", s->tag);
    s->t_cmd = now_us();
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    lg_conn_printf(s->c, "%s %.*s\r\n", s->tagbuf, n, line);
}

static uint32_t random_message(struct imap_session *s)
{
    uint32_t lo = s->exists > NEWEST ? s->exists - NEWEST + 1 : 1;
    return lo + (uint32_t)random() % (s->exists - lo + 1);
}

static void session_free(struct imap_session *s);
static void start_iteration(struct imap_session *s);

static void logout(struct imap_session *s)
{
    command(s, S_LOGOUT, OP_LOGOUT, "LOGOUT");
}

static void after_login(struct imap_session *s)
{
    switch (s->lg->opt.workload) {
    case WL_IMAP_LOGIN:
        logout(s);
        break;
    case WL_IMAP_MIXED:
        start_iteration(s);
        break;
    default: /* prime, idle */
        command(s, S_SELECT, OP_SELECT, "SELECT INBOX");
        break;
    }
}

static void start_iteration(struct imap_session *s)
{
    command(s, S_SELECT, OP_SELECT, "SELECT INBOX");
}

static void fetch_body(struct imap_session *s)
{
    s->bodies_left--;
    command(s, S_FETCH_BODY, OP_FETCH_BODY, "FETCH %" PRIu32 " BODY.PEEK[]", random_message(s));
}

static void after_select(struct imap_session *s)
{
    struct lg *lg = s->lg;
    if (lg->opt.workload == WL_IMAP_PRIME) {
        if (s->exists == 0)
            logout(s);
        else
            command(s, S_PRIME_FETCH, OP_FETCH_HEADERS,
                    "FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS " HEADER_FIELDS "])");
        return;
    }
    if (lg->opt.workload == WL_IMAP_IDLE) {
        command(s, S_IDLE_WAIT_CONT, OP_IDLE, "IDLE");
        return;
    }
    if (s->exists == 0) { /* nothing to read: straight to APPEND */
        command(s, S_APPEND_WAIT_CONT, OP_APPEND, "APPEND INBOX (\\Seen) {%zu}", append_len);
        return;
    }
    uint32_t lo = s->exists > NEWEST ? s->exists - NEWEST + 1 : 1;
    command(s, S_FETCH_HEADERS, OP_FETCH_HEADERS,
            "FETCH %" PRIu32 ":%" PRIu32
            " (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS " HEADER_FIELDS "])",
            lo, s->exists);
}

static void idle_hold_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct imap_session *s = arg;
    s->step = S_IDLE_DONE;
    s->t_cmd = now_us();
    lg_conn_send(s->c, "DONE\r\n", 6);
}

static void print_ready(struct lg *lg)
{
    if (idle_ready_printed)
        return;
    idle_ready_printed = true;
    printf("{\"event\":\"ready\",\"sessions\":%d,\"errors\":%" PRIu64 ",\"tls\":\"%s\"}\n",
           idle_ready, lg->stats.errors + lg->stats.connect_errors, lg->tls_desc);
    fflush(stdout);
}

static void idle_maybe_open_more(struct lg *lg);

/* The tagged OK of the command in flight: record it and go on. False: the session is gone. */
static bool completed(struct imap_session *s)
{
    struct lg *lg = s->lg;
    lg_record(lg, s->op, s->t_cmd);
    switch (s->step) {
    case S_LOGIN:
        if (lg->measuring)
            lg->stats.logins++;
        lg_record(lg, OP_SESSION_LOGIN, s->t_connect);
        after_login(s);
        break;
    case S_SELECT:
        after_select(s);
        break;
    case S_PRIME_FETCH:
        logout(s);
        break;
    case S_FETCH_HEADERS:
        s->bodies_left = BODIES_PER_ITERATION;
        fetch_body(s);
        break;
    case S_FETCH_BODY:
        s->counting_body = false;
        if (s->bodies_left > 0) {
            fetch_body(s);
        } else {
            s->flag_on = !s->flag_on;
            command(s, S_STORE, OP_STORE, "STORE %" PRIu32 " %cFLAGS (\\Flagged)",
                    random_message(s), s->flag_on ? '+' : '-');
        }
        break;
    case S_STORE:
        command(s, S_APPEND_WAIT_CONT, OP_APPEND, "APPEND INBOX (\\Seen) {%zu}", append_len);
        break;
    case S_APPEND:
        if (s->appended_uid == 0) {
            lg_error(lg, "APPEND without APPENDUID");
            lg->stats.errors++;
            logout(s);
            break;
        }
        command(s, S_STORE_DELETED, OP_STORE, "UID STORE %" PRIu32 " +FLAGS.SILENT (\\Deleted)",
                s->appended_uid);
        s->appended_uid = 0;
        break;
    case S_STORE_DELETED:
        command(s, S_EXPUNGE, OP_EXPUNGE, "EXPUNGE");
        break;
    case S_EXPUNGE:
        command(s, S_IDLE_WAIT_CONT, OP_IDLE, "IDLE");
        break;
    case S_IDLE_DONE:
        if (++s->iteration < lg->opt.iterations && !lg->stopping)
            start_iteration(s);
        else
            logout(s);
        break;
    case S_LOGOUT:
        lg_session_completed(lg, s->t_connect);
        session_free(s);
        lg_session_ended(lg);
        return false;
    default:
        break;
    }
    return true;
}

/* IDLE's "+ idling": the idle workload parks the session, mixed holds it for idle_ms. */
static void idle_started(struct imap_session *s)
{
    struct lg *lg = s->lg;
    s->t_idle_wait = now_us() - s->t_cmd;
    s->step = S_IDLE_HOLD;
    if (lg->opt.workload == WL_IMAP_IDLE) {
        s->idling = true;
        idle_ready++;
        if (idle_ready + (int)(lg->stats.errors + lg->stats.connect_errors) >= lg->opt.sessions)
            print_ready(lg);
        idle_maybe_open_more(lg);
        return;
    }
    struct timeval tv = {.tv_sec = lg->opt.idle_ms / 1000,
                         .tv_usec = (suseconds_t)(lg->opt.idle_ms % 1000) * 1000};
    evtimer_add(s->hold, &tv);
}

static void untagged(struct imap_session *s, const char *line)
{
    char *end;
    unsigned long n = strtoul(line + 2, &end, 10);
    if (end == line + 2 || strncmp(end, " EXISTS", 7) != 0)
        return;
    s->exists = (uint32_t)n;
    if (s->idling && idle_marked && s->notified_us == 0) {
        s->notified_us = now_us();
        if (++idle_notified == idle_ready) {
            printf("{\"event\":\"notified\",\"sessions\":%d}\n", idle_notified);
            fflush(stdout);
        }
    }
}

/* A tagged answer. False: the session is gone. */
static bool tagged(struct imap_session *s, const char *status)
{
    struct lg *lg = s->lg;
    if (strncmp(status, "OK", 2) == 0) {
        const char *code = strstr(status, "[APPENDUID ");
        if (code != NULL && s->step == S_APPEND) {
            const char *sp = strchr(code + 11, ' ');
            if (sp)
                s->appended_uid = (uint32_t)strtoul(sp + 1, NULL, 10);
        }
        if (s->step == S_IDLE_DONE)
            s->t_cmd -= s->t_idle_wait; /* IDLE to "+", then DONE to OK: the hold excluded */
        return completed(s);
    }
    lg->stats.errors++;
    lg_error(lg, "%s: %s %s", op_name(s->op), s->tagbuf, status);
    if (s->step == S_LOGOUT || s->step == S_LOGIN) {
        session_free(s);
        lg_session_ended(lg);
        return false;
    }
    logout(s);
    return true;
}

/* One response line (CRLF removed). Returns false when the session is gone. */
static bool line(struct imap_session *s, const char *text)
{
    if (s->step == S_GREETING) {
        if (strncmp(text, "* OK", 4) != 0) {
            struct lg *lg = s->lg;
            lg->stats.errors++;
            lg_error(lg, "greeting: %s", text);
            session_free(s);
            lg_session_ended(lg);
            return false;
        }
        lg_record(s->lg, OP_CONNECT, s->t_connect);
        char user[64];
        lg_user_name(s->lg, s->user, user, sizeof user);
        command(s, S_LOGIN, OP_LOGIN, "LOGIN %s \"%s\"", user, s->lg->opt.password);
        return true;
    }
    if (text[0] == '*' && text[1] == ' ') {
        untagged(s, text);
        return true;
    }
    if (text[0] == '+') {
        if (s->step == S_APPEND_WAIT_CONT) {
            s->step = S_APPEND;
            lg_conn_send(s->c, append_msg, append_len);
            lg_conn_send(s->c, "\r\n", 2);
        } else if (s->step == S_IDLE_WAIT_CONT) {
            idle_started(s);
        }
        return true;
    }
    if (strncmp(text, s->tagbuf, s->taglen) == 0 && text[s->taglen] == ' ')
        return tagged(s, text + s->taglen + 1);
    return true; /* the rest of a line after a literal */
}

static void on_input(struct lg_conn *c)
{
    struct imap_session *s = c->owner;
    struct evbuffer *in = c->in;
    for (;;) {
        if (s->literal_left > 0) {
            size_t have = evbuffer_get_length(in);
            size_t take = have < s->literal_left ? have : s->literal_left;
            evbuffer_drain(in, take);
            s->literal_left -= take;
            if (s->counting_body && s->lg->measuring)
                s->lg->stats.bytes += take;
            if (s->literal_left > 0)
                return;
        }
        size_t len;
        char *text = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
        if (text == NULL)
            return;
        /* a literal announced at the end of the line: its bytes come next */
        if (len > 2 && text[len - 1] == '}') {
            char *open = strrchr(text, '{');
            if (open) {
                s->literal_left = strtoull(open + 1, NULL, 10);
                s->counting_body = s->step == S_FETCH_BODY;
            }
        }
        bool alive = line(s, text);
        free(text);
        if (!alive)
            return;
    }
}

static void on_ready(struct lg_conn *c)
{
    (void)c; /* the greeting comes by itself */
}

static void on_failed(struct lg_conn *c, const char *why)
{
    struct imap_session *s = c->owner;
    struct lg *lg = s->lg;
    if (!lg->stopping) {
        lg->stats.errors++;
        lg_error(lg, "imap session of user %d: %s (step %d)", s->user, why, (int)s->step);
    }
    bool was_idle = s->idling;
    session_free(s);
    if (lg->opt.workload == WL_IMAP_IDLE) {
        if (was_idle)
            idle_ready--;
        idle_maybe_open_more(lg);
        if (!idle_ready_printed &&
            idle_ready + (int)(lg->stats.errors + lg->stats.connect_errors) >= lg->opt.sessions)
            print_ready(lg);
        return;
    }
    lg_session_ended(lg);
}

static const struct lg_conn_ops imap_ops = {on_ready, on_input, on_failed};

static void session_free(struct imap_session *s)
{
    struct lg *lg = s->lg;
    lg->active--;
    if (s->prev)
        s->prev->next = s->next;
    else if (idle_sessions == s)
        idle_sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (lg->opt.workload != WL_IMAP_IDLE)
        lg_user_put(lg, s->user);
    event_free(s->hold);
    lg_conn_close(s->c);
    free(s);
}

static struct imap_session *session_new(struct lg *lg, int user)
{
    struct imap_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->lg = lg;
    s->user = user;
    s->step = S_GREETING;
    s->t_connect = now_us();
    s->hold = evtimer_new(lg->base, idle_hold_done, s);
    s->c = lg_conn_open(lg, &imap_ops, s);
    if (s->c == NULL) {
        event_free(s->hold);
        free(s);
        return NULL;
    }
    lg->active++;
    return s;
}

void imap_start_session(struct lg *lg)
{
    make_append_message();
    if (lg->opt.workload == WL_IMAP_IDLE) {
        idle_maybe_open_more(lg);
        return;
    }
    int user = lg_user_take(lg);
    if (user < 0)
        return;
    if (session_new(lg, user) == NULL) {
        lg_user_put(lg, user);
        lg_session_failed_to_start(lg);
    }
}

/* ---- the idle workload -------------------------------------------------------------------- */

/* Keep `concurrency` sessions between connect and IDLE until `sessions` are open. */
static void idle_maybe_open_more(struct lg *lg)
{
    while (idle_opened < lg->opt.sessions && lg->active - idle_ready < lg->opt.concurrency) {
        int user = lg->opt.user_first + idle_opened % lg->opt.user_count;
        idle_opened++;
        struct imap_session *s = session_new(lg, user);
        if (s == NULL) {
            lg->stats.errors++;
            continue;
        }
        s->next = idle_sessions;
        if (idle_sessions)
            idle_sessions->prev = s;
        idle_sessions = s;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* "mark": from now on EXISTS counts as the new message arriving; "report": print when each
 * idling session saw it, relative to the mark; "quit": end. */
void imap_idle_command(struct lg *lg, const char *cmd)
{
    if (strncmp(cmd, "mark", 4) == 0) {
        idle_marked = true;
        idle_notified = 0;
        idle_mark_us = now_us();
        for (struct imap_session *s = idle_sessions; s; s = s->next)
            s->notified_us = 0;
        printf("{\"event\":\"marked\",\"mark_us\":%" PRIu64 "}\n", idle_mark_us);
        fflush(stdout);
    } else if (strncmp(cmd, "report", 6) == 0) {
        size_t n = 0, idling = 0;
        uint64_t *t = calloc((size_t)idle_ready + 1, sizeof(*t));
        for (struct imap_session *s = idle_sessions; s && t; s = s->next) {
            if (!s->idling)
                continue;
            idling++;
            if (s->notified_us && n < (size_t)idle_ready)
                t[n++] = s->notified_us - idle_mark_us;
        }
        if (t)
            qsort(t, n, sizeof(*t), cmp_u64);
        printf("{\"event\":\"report\",\"idling\":%zu,\"notified\":%zu,\"mark_us\":%" PRIu64
               ",\"first_us\":%" PRIu64 ",\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64
               ",\"last_us\":%" PRIu64 "}\n",
               idling, n, idle_mark_us, n && t ? t[0] : 0, n && t ? t[n / 2] : 0,
               n && t ? t[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] : 0, n && t ? t[n - 1] : 0);
        fflush(stdout);
        free(t);
    } else if (strncmp(cmd, "quit", 4) == 0) {
        lg->stopping = true;
        while (idle_sessions)
            session_free(idle_sessions);
        event_base_loopexit(lg->base, NULL);
    }
}

void imap_idle_report_ready(struct lg *lg)
{
    print_ready(lg);
}
