/* POP3 sessions of the load generator: USER/PASS, STAT, UIDL, RETR of every message, QUIT
 * (the pop3 workload), or USER/PASS, UIDL, QUIT once per user (pop3-prime). Multi-line answers
 * are found by searching for their terminator, never split into lines. */
#include "loadgen.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum pop3_step { P_GREETING, P_USER, P_PASS, P_STAT, P_UIDL, P_RETR, P_QUIT };

struct pop3_session {
    struct lg *lg;
    struct lg_conn *c;
    int user;
    enum pop3_step step;
    enum op_kind op;
    bool multiline;
    size_t scanned; /* bytes of a multi-line answer already searched for its end */
    uint64_t t_connect, t_cmd;
    unsigned long messages, next_message;
};

static void command(struct pop3_session *s, enum pop3_step step, enum op_kind op, bool multiline,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void command(struct pop3_session *s, enum pop3_step step, enum op_kind op, bool multiline,
                    const char *fmt, ...)
{
    s->step = step;
    s->op = op;
    s->multiline = multiline;
    s->scanned = 0;
    s->t_cmd = now_us();
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    lg_conn_printf(s->c, "%.*s\r\n", n, line);
}

static void session_free(struct pop3_session *s)
{
    s->lg->active--;
    lg_user_put(s->lg, s->user);
    lg_conn_close(s->c);
    free(s);
}

static void next_retr_or_quit(struct pop3_session *s)
{
    if (s->lg->opt.workload == WL_POP3 && s->next_message <= s->messages)
        command(s, P_RETR, OP_RETR, true, "RETR %lu", s->next_message++);
    else
        command(s, P_QUIT, OP_LOGOUT, false, "QUIT");
}

/* A positive answer to the command in flight (`status` is its first line). Returns false when
 * the session has ended. */
static bool positive(struct pop3_session *s, const char *status)
{
    struct lg *lg = s->lg;
    if (s->step != P_GREETING && s->step != P_USER)
        lg_record(lg, s->op, s->t_cmd);
    char user[64];
    switch (s->step) {
    case P_GREETING:
        lg_record(lg, OP_CONNECT, s->t_connect);
        lg_user_name(lg, s->user, user, sizeof user);
        command(s, P_USER, OP_LOGIN, false, "USER %s", user);
        break;
    case P_USER: /* LOGIN is timed from USER to the answer to PASS */
        s->step = P_PASS;
        lg_conn_printf(s->c, "PASS %s\r\n", lg->opt.password);
        break;
    case P_PASS:
        if (lg->measuring)
            lg->stats.logins++;
        lg_record(lg, OP_SESSION_LOGIN, s->t_connect);
        if (lg->opt.workload == WL_POP3)
            command(s, P_STAT, OP_STAT, false, "STAT");
        else
            command(s, P_UIDL, OP_UIDL, true, "UIDL");
        break;
    case P_STAT:
        s->messages = strtoul(status + 4, NULL, 10);
        s->next_message = 1;
        command(s, P_UIDL, OP_UIDL, true, "UIDL");
        break;
    case P_UIDL:
    case P_RETR:
        next_retr_or_quit(s);
        break;
    case P_QUIT:
        lg_session_completed(lg, s->t_connect);
        session_free(s);
        lg_session_ended(lg);
        return false;
    }
    return true;
}

static void on_input(struct lg_conn *c)
{
    struct pop3_session *s = c->owner;
    struct evbuffer *in = c->in;
    for (;;) {
        struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_CRLF_STRICT);
        if (eol.pos < 0)
            return;
        char status[128];
        size_t n = (size_t)eol.pos < sizeof status - 1 ? (size_t)eol.pos : sizeof status - 1;
        evbuffer_copyout(in, status, n);
        status[n] = '\0';
        if (strncmp(status, "+OK", 3) != 0) {
            struct lg *lg = s->lg;
            lg->stats.errors++;
            lg_error(lg, "pop3 %s of user %d: %s", op_name(s->op), s->user, status);
            session_free(s);
            lg_session_ended(lg);
            return;
        }
        size_t total = (size_t)eol.pos + 2;
        if (s->multiline) {
            /* the status line's CRLF is the one before "." when the body is empty */
            size_t from = s->scanned > (size_t)eol.pos + 4 ? s->scanned - 4 : (size_t)eol.pos;
            struct evbuffer_ptr start;
            evbuffer_ptr_set(in, &start, from, EVBUFFER_PTR_SET);
            struct evbuffer_ptr end = evbuffer_search(in, "\r\n.\r\n", 5, &start);
            if (end.pos < 0) {
                s->scanned = evbuffer_get_length(in);
                return;
            }
            total = (size_t)end.pos + 5;
            if (s->step == P_RETR && s->lg->measuring)
                s->lg->stats.bytes += total - ((size_t)eol.pos + 2);
        }
        evbuffer_drain(in, total);
        if (!positive(s, status))
            return;
    }
}

static void on_ready(struct lg_conn *c)
{
    (void)c;
}

static void on_failed(struct lg_conn *c, const char *why)
{
    struct pop3_session *s = c->owner;
    struct lg *lg = s->lg;
    if (!lg->stopping) {
        lg->stats.errors++;
        lg_error(lg, "pop3 session of user %d: %s (step %d)", s->user, why, (int)s->step);
    }
    session_free(s);
    lg_session_ended(lg);
}

static const struct lg_conn_ops pop3_ops = {on_ready, on_input, on_failed};

void pop3_start_session(struct lg *lg)
{
    int user = lg_user_take(lg);
    if (user < 0)
        return;
    struct pop3_session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        lg_user_put(lg, user);
        return;
    }
    s->lg = lg;
    s->user = user;
    s->step = P_GREETING;
    s->t_connect = now_us();
    s->c = lg_conn_open(lg, &pop3_ops, s);
    if (s->c == NULL) {
        lg_user_put(lg, user);
        free(s);
        lg_session_failed_to_start(lg);
        return;
    }
    lg->active++;
}
