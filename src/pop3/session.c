/* POP3 session: AUTHORIZATION state (CAPA, STLS, USER/PASS, AUTH, NOOP, QUIT) and the
 * capability list derived from listener, TLS state and LoginType in one place. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/auth.h"
#include "postern/log.h"
#include "postern/policy.h"
#include "postern/pop3.h"
#include "postern/sasl.h"
#include "postern/util.h"

enum pop3_state { POP3_AUTHORIZATION, POP3_TRANSACTION };

/* A user name longer than this is refused (sAMAccountName ≤ 20, UPN ≤ 1024 characters). */
#define POP3_MAX_USER 1024

struct pop3_session {
    struct conn *conn;
    enum pop3_state state;
    char *user; /* from USER, until PASS */
    unsigned bad_commands;
    unsigned auth_failures;
    bool discarding; /* skipping the rest of an over-long line */
    bool waiting;
    struct sasl_exchange *sasl; /* AUTH in progress: lines are SASL responses */
    const struct auth_mech *sasl_mech;
};

static const struct protocol_settings *settings(const struct pop3_session *s)
{
    return conn_protocol_settings(s->conn);
}

static bool tls(const struct pop3_session *s)
{
    return conn_tls_active(s->conn);
}

static bool user_pass_allowed(const struct pop3_session *s)
{
    return policy_mech_allowed(settings(s)->login_type, tls(s), &AUTH_MECH_LOGIN_COMMAND);
}

static void capa(struct pop3_session *s)
{
    conn_printf(s->conn, "+OK Capability list follows\r\n");
    conn_printf(s->conn, "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
    if (s->state == POP3_TRANSACTION) { /* RFC 2449 §5: nothing about logging in after it */
        conn_printf(s->conn, "IMPLEMENTATION postern\r\n.\r\n");
        return;
    }
    if (policy_starttls_offered(conn_listener(s->conn), tls(s)))
        conn_printf(s->conn, "STLS\r\n");
    if (user_pass_allowed(s))
        conn_printf(s->conn, "USER\r\n");
    char mechs[256] = "";
    size_t n = 0;
    for (size_t i = 0; i < AUTH_MECHS_COUNT; i++)
        if (policy_mech_allowed(settings(s)->login_type, tls(s), &AUTH_MECHS[i]))
            n += (size_t)snprintf(mechs + n, sizeof(mechs) - n, " %s", AUTH_MECHS[i].name);
    if (n)
        conn_printf(s->conn, "SASL%s\r\n", mechs);
    conn_printf(s->conn, "IMPLEMENTATION postern\r\n.\r\n");
}

static void err(struct pop3_session *s, const char *text)
{
    conn_printf(s->conn, "-ERR %s\r\n", text);
}

static void bad_command(struct pop3_session *s, const char *text)
{
    err(s, text);
    if (++s->bad_commands >= settings(s)->max_bad_commands) {
        err(s, "Too many invalid commands");
        conn_close(s->conn, "too many invalid commands");
    }
}

static void forget_user(struct pop3_session *s)
{
    if (s->user)
        wipe(s->user, strlen(s->user));
    free(s->user);
    s->user = NULL;
}

static void auth_finished(void *session, struct auth_attempt *a, const struct auth_result *r)
{
    (void)a;
    struct pop3_session *s = session;
    s->waiting = false;
    if (conn_is_closing(s->conn))
        return;
    if (r->allow) {
        s->state = POP3_TRANSACTION;
        conn_printf(s->conn, "+OK Logged in%s\r\n",
                    tls(s) ? "" : " (this session is not encrypted)");
        conn_set_timeout(s->conn, settings(s)->auth_timeout);
    } else if (r->reason == AUTH_REASON_PLAINTEXT_REQUIRES_TLS)
        err(s, policy_starttls_offered(conn_listener(s->conn), tls(s))
                   ? "[AUTH] Plaintext authentication is not allowed without TLS; use STLS first"
                   : "[AUTH] Plaintext authentication is not allowed on this connection");
    else if (r->reason == AUTH_REASON_NO_DIRECTORY)
        err(s, "[SYS/TEMP] Login is not yet available on this server (no directory configured)");
    else if (r->reason == AUTH_REASON_MECH_UNSUPPORTED)
        err(s, "Unsupported authentication mechanism");
    else if (r->reason == AUTH_REASON_SESSION_LIMIT)
        err(s, "[SYS/TEMP] Too many sessions for this account");
    else if (r->reason == AUTH_REASON_INVALID_INPUT)
        err(s, "Invalid SASL response");
    else if (r->reason == AUTH_REASON_SASL_NOT_AVAILABLE)
        err(s, "[SYS/TEMP] AUTH is not yet available on this server; use USER and PASS");
    else if (r->reason == AUTH_REASON_SERVER_BUSY ||
             r->reason == AUTH_REASON_DIRECTORY_UNAVAILABLE ||
             r->reason == AUTH_REASON_DIRECTORY_ERROR)
        err(s, "[SYS/TEMP] Authentication service unavailable, try again later");
    else
        err(s, "[AUTH] Authentication failed");
    if (auth_reason_is_failure(r->reason) &&
        ++s->auth_failures >= conn_config(s->conn)->logins.max_auth_failures)
        conn_close(s->conn, "too many authentication failures");
    conn_pause_input(s->conn, false);
}

static void start_auth(struct pop3_session *s, struct auth_attempt *a)
{
    s->waiting = true;
    conn_pause_input(s->conn, true);
    auth_start(s->conn, s, a, auth_finished);
}

static void cmd_user(struct pop3_session *s, const struct pop3_command *cmd)
{
    if (cmd->args_len == 0 || cmd->args_len > POP3_MAX_USER) {
        bad_command(s, "USER takes one user name");
        return;
    }
    forget_user(s);
    if (!user_pass_allowed(s)) {
        /* Refuse before the password is sent; the attempt is audited with the name only. */
        start_auth(s,
                   auth_attempt_new(s->conn, &AUTH_MECH_LOGIN_COMMAND, NULL, cmd->args, NULL, 0));
        return;
    }
    s->user = xstrndup(cmd->args, cmd->args_len);
    conn_printf(s->conn, "+OK\r\n");
}

static void cmd_pass(struct pop3_session *s, const struct pop3_command *cmd)
{
    if (s->user == NULL) {
        bad_command(s, "USER first");
        return;
    }
    /* RFC 1939 §7: the whole rest of the line is the password, spaces included. */
    struct auth_attempt *a = auth_attempt_new(s->conn, &AUTH_MECH_LOGIN_COMMAND, NULL, s->user,
                                              cmd->args, cmd->args_len);
    forget_user(s);
    start_auth(s, a);
}

static void cmd_auth(struct pop3_session *s, const struct pop3_command *cmd)
{
    if (cmd->args_len == 0) { /* RFC 1734 style listing, which some clients still probe */
        conn_printf(s->conn, "+OK\r\n");
        for (size_t i = 0; i < AUTH_MECHS_COUNT; i++)
            if (policy_mech_allowed(settings(s)->login_type, tls(s), &AUTH_MECHS[i]))
                conn_printf(s->conn, "%s\r\n", AUTH_MECHS[i].name);
        conn_printf(s->conn, ".\r\n");
        return;
    }
    char mech[32];
    size_t n = 0;
    while (n < cmd->args_len && cmd->args[n] != ' ' && n + 1 < sizeof(mech)) {
        mech[n] = cmd->args[n];
        n++;
    }
    mech[n] = '\0';
    forget_user(s);
    const struct auth_mech *m = auth_mech_find(mech);
    struct sasl_exchange *x = NULL;
    /* Unknown or (by LoginType) forbidden mechanisms never ask for credentials. */
    if (m && policy_mech_allowed(settings(s)->login_type, tls(s), m))
        x = sasl_start(m->name);
    if (x == NULL) {
        start_auth(s, auth_attempt_new(s->conn, m, mech, "", NULL, 0));
        return;
    }
    s->sasl = x;
    s->sasl_mech = m;
    s->waiting = true;
    conn_pause_input(s->conn, true);
    /* RFC 5034 §4: an initial response follows the mechanism; "=" is an empty one */
    const char *ir = n < cmd->args_len ? cmd->args + n + 1 : NULL;
    if (ir && strcmp(ir, "=") == 0)
        ir = "";
    if (sasl_continue(s->conn, s, &s->sasl, m, ir, auth_finished))
        conn_pause_input(s->conn, false);
}

/* A line while AUTH runs: a base64 response, or "*" to cancel (RFC 5034 §4). */
static void sasl_line(struct pop3_session *s)
{
    switch (sasl_take_line(s->conn, s, &s->sasl, s->sasl_mech, auth_finished)) {
    case SASL_LINE_NONE:
    case SASL_LINE_HANDLED:
        break;
    case SASL_LINE_TOO_LONG:
        err(s, "SASL response too long");
        conn_close(s->conn, "SASL response too long");
        break;
    case SASL_LINE_CANCELLED:
        s->waiting = false;
        err(s, "AUTH cancelled");
        break;
    }
}

static void cmd_stls(struct pop3_session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    if (!policy_starttls_offered(conn_listener(s->conn), tls(s))) {
        bad_command(s, tls(s) ? "Command not permitted when TLS active"
                              : "STLS is not available on this port");
        return;
    }
    forget_user(s);
    conn_printf(s->conn, "+OK Begin TLS negotiation\r\n");
    conn_starttls(s->conn);
}

static void run_line(struct pop3_session *s, const char *line, size_t len)
{
    struct pop3_command cmd;
    const char *error;
    if (!pop3_parse_line(line, len, &cmd, &error)) {
        bad_command(s, error);
        return;
    }
    const char *k = cmd.keyword;
    static const char *const TRANSACTION[] = {"STAT", "LIST", "RETR", "DELE",
                                              "RSET", "TOP",  "UIDL"};
    bool transaction_command = false;
    for (size_t i = 0; i < ARRAY_LEN(TRANSACTION); i++)
        transaction_command |= strcmp(k, TRANSACTION[i]) == 0;
    if (s->state == POP3_TRANSACTION) {
        if (strcmp(k, "QUIT") == 0) {
            conn_printf(s->conn, "+OK postern signing off\r\n");
            conn_close(s->conn, "QUIT");
        } else if (strcmp(k, "NOOP") == 0) {
            conn_printf(s->conn, "+OK\r\n");
        } else if (strcmp(k, "CAPA") == 0) {
            capa(s);
        } else if (transaction_command) {
            /* The maildrop arrives with the store issue (docs/postern.conf.5). */
            err(s, "[SYS/PERM] Mailbox access is not yet available on this server");
        } else {
            bad_command(s, "Command not valid in this state");
            return;
        }
        s->bad_commands = 0;
        return;
    }
    bool known = true;
    if (strcmp(k, "CAPA") == 0)
        capa(s);
    else if (strcmp(k, "NOOP") == 0)
        conn_printf(s->conn, "+OK\r\n");
    else if (strcmp(k, "QUIT") == 0) {
        conn_printf(s->conn, "+OK postern signing off\r\n");
        conn_close(s->conn, "QUIT");
    } else if (strcmp(k, "STLS") == 0)
        cmd_stls(s, &cmd);
    else if (strcmp(k, "USER") == 0)
        cmd_user(s, &cmd);
    else if (strcmp(k, "PASS") == 0)
        cmd_pass(s, &cmd);
    else if (strcmp(k, "AUTH") == 0)
        cmd_auth(s, &cmd);
    else if (strcmp(k, "APOP") == 0)
        err(s, "APOP is not supported");
    else
        known = false;
    if (known) {
        s->bad_commands = 0;
        return;
    }
    bad_command(s, transaction_command ? "Command not valid before login" : "Unknown command");
}

static void reset_timer(struct pop3_session *s)
{
    conn_set_timeout(s->conn, s->state == POP3_AUTHORIZATION ? settings(s)->preauth_timeout
                                                             : settings(s)->auth_timeout);
}

static void *pop3_open(struct conn *c)
{
    struct pop3_session *s = xcalloc(1, sizeof(*s));
    s->conn = c;
    s->state = POP3_AUTHORIZATION;
    conn_printf(c, "+OK %s\r\n", conn_protocol_settings(c)->banner);
    reset_timer(s);
    return s;
}

static void pop3_input(void *session)
{
    struct pop3_session *s = session;
    struct evbuffer *in = conn_input(s->conn);
    size_t max = settings(s)->max_command_size;
    while (s->sasl && !conn_is_closing(s->conn) && evbuffer_get_length(in) > 0) {
        size_t before = evbuffer_get_length(in);
        sasl_line(s);
        if (evbuffer_get_length(in) == before)
            return; /* no complete line yet */
    }
    while (!s->waiting && !conn_is_closing(s->conn) && evbuffer_get_length(in) > 0) {
        struct evbuffer_ptr eol = evbuffer_search(in, "\n", 1, NULL);
        if (eol.pos < 0) {
            if (evbuffer_get_length(in) > max) {
                evbuffer_drain(in, evbuffer_get_length(in));
                if (!s->discarding)
                    s->discarding = true;
            }
            return;
        }
        size_t len = (size_t)eol.pos + 1;
        if (s->discarding || len > max) {
            evbuffer_drain(in, len);
            s->discarding = false;
            bad_command(s, "Line too long");
            continue;
        }
        char *line = xmalloc(len + 1);
        evbuffer_remove(in, line, len);
        size_t n = len - 1;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        line[n] = '\0';
        if (memchr(line, '\0', n))
            bad_command(s, "NUL in command");
        else
            run_line(s, line, n);
        wipe(line, len);
        free(line);
        if (!conn_is_closing(s->conn))
            reset_timer(s);
    }
}

static void pop3_tls_ready(void *session)
{
    reset_timer(session);
}

static void pop3_timeout(void *session)
{
    struct pop3_session *s = session;
    err(s, "Disconnected for inactivity");
    conn_close(s->conn, "idle timeout");
}

static void pop3_shutdown(void *session)
{
    err(session, "[SYS/TEMP] Server shutting down");
}

static void pop3_free(void *session)
{
    struct pop3_session *s = session;
    forget_user(s);
    sasl_free(s->sasl);
    free(s);
}

const struct protocol_ops pop3_protocol = {
    .open = pop3_open,
    .input = pop3_input,
    .tls_ready = pop3_tls_ready,
    .timeout = pop3_timeout,
    .shutdown = pop3_shutdown,
    .free = pop3_free,
};
