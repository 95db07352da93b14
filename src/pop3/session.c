/* POP3 session: the AUTHORIZATION and TRANSACTION states of RFC 1939 as one command table,
 * the capability list derived from listener, TLS state and LoginType in one place, and the
 * maildrop work handed to the store workers one command at a time. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postern/auth.h"
#include "postern/log.h"
#include "postern/policy.h"
#include "postern/pop3.h"
#include "postern/sasl.h"
#include "postern/util.h"

/* UPDATE (RFC 1939 §6) is not a state here: QUIT runs it as one store job and then ends. */
enum pop3_state { POP3_AUTHORIZATION, POP3_TRANSACTION };
#define IN_AUTHORIZATION (1u << POP3_AUTHORIZATION)
#define IN_TRANSACTION (1u << POP3_TRANSACTION)

/* A user name longer than this is refused (sAMAccountName ≤ 20, UPN ≤ 1024 characters). */
#define POP3_MAX_USER 1024

struct pop3_session {
    struct conn *conn;
    enum pop3_state state;
    char *user; /* from USER, until PASS */
    unsigned bad_commands;
    unsigned auth_failures;
    bool discarding; /* skipping the rest of an over-long line */
    /* A command is still running (authentication, SASL exchange, store job): the input waits,
     * so pipelined commands run one at a time, in order (RFC 2449 §6.6). */
    bool waiting;
    struct sasl_exchange *sasl; /* AUTH in progress: lines are SASL responses */
    const struct auth_mech *sasl_mech;
    /* TRANSACTION on the store: the locked maildrop. While a store job runs it belongs to the
     * job and this is NULL; the job hands it back in its `done`. */
    bool has_maildrop;
    struct pop3_maildrop *drop;
    uint32_t live_count; /* messages not marked deleted, and their octets (STAT, LIST) */
    uint64_t live_octets;
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

static bool mail_configured(const struct pop3_session *s)
{
    return conn_config(s->conn)->mailbox_root != NULL;
}

/* RFC 2449 §5: what is available in the AUTHORIZATION state is announced in both states, so
 * the list does not depend on the state at all; only on TLS, LoginType and the store. */
static void cmd_capa(struct pop3_session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "+OK Capability list follows\r\n");
    if (mail_configured(s))
        evbuffer_add_printf(b, "TOP\r\nUIDL\r\nEXPIRE NEVER\r\n");
    evbuffer_add_printf(b, "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
    if (policy_starttls_offered(conn_listener(s->conn), tls(s)))
        evbuffer_add_printf(b, "STLS\r\n");
    if (user_pass_allowed(s))
        evbuffer_add_printf(b, "USER\r\n");
    bool sasl = false;
    for (size_t i = 0; i < AUTH_MECHS_COUNT; i++)
        if (policy_mech_allowed(settings(s)->login_type, tls(s), &AUTH_MECHS[i])) {
            evbuffer_add_printf(b, sasl ? " %s" : "SASL %s", AUTH_MECHS[i].name);
            sasl = true;
        }
    evbuffer_add_printf(b, "%sIMPLEMENTATION postern\r\n.\r\n", sasl ? "\r\n" : "");
    conn_write_buffer(s->conn, b);
    evbuffer_free(b);
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

static void pause_commands(struct pop3_session *s)
{
    s->waiting = true;
    conn_pause_input(s->conn, true);
}

static void resume_commands(struct pop3_session *s)
{
    s->waiting = false;
    conn_pause_input(s->conn, false);
}

/* ---- store jobs: one at a time, the maildrop travels with the job ------------------------- */

enum job_kind { JOB_OPEN, JOB_RETRIEVE, JOB_UPDATE, JOB_RELEASE };

struct store_job {
    enum job_kind kind;
    struct pop3_session *session; /* read in `done` only, on the connection's thread */
    struct pop3_maildrop *drop;   /* the job's own while it runs */
    char *root_template, *key;    /* JOB_OPEN */
    uint32_t msg;                 /* JOB_RETRIEVE: message number, lines (TOP), or RETR */
    uint64_t body_lines;
    bool top;
    int fd;
    struct pop3_extent extent;
    uint32_t removed; /* JOB_UPDATE */
    enum store_status status;
    bool in_use;
    char error[256]; /* store_last_error() of the worker */
};

static void job_work(void *arg)
{
    struct store_job *j = arg;
    switch (j->kind) {
    case JOB_OPEN:
        j->status = pop3_maildrop_open(j->root_template, j->key, &j->drop, &j->in_use);
        break;
    case JOB_RETRIEVE:
        j->status =
            pop3_maildrop_retrieve(j->drop, j->msg, j->body_lines, !j->top, &j->fd, &j->extent);
        break;
    case JOB_UPDATE:
        j->status = pop3_maildrop_update(j->drop, &j->removed);
        /* the lock goes before the answer: a client that reconnects at once finds it free */
        pop3_maildrop_close(j->drop);
        j->drop = NULL;
        break;
    case JOB_RELEASE:
        pop3_maildrop_close(j->drop);
        j->drop = NULL;
        break;
    }
    if (j->status != STORE_OK)
        snprintf(j->error, sizeof(j->error), "%s", store_last_error());
}

static void job_done(void *arg);

static struct store_job *new_job(enum job_kind kind)
{
    struct store_job *j = xcalloc(1, sizeof(*j));
    j->kind = kind;
    j->fd = -1;
    return j;
}

static void free_job(struct store_job *j)
{
    if (j->fd >= 0)
        close(j->fd);
    free(j->root_template);
    free(j->key);
    free(j);
}

/* Hands the maildrop to a job on the store workers and holds the input until it is done.
 * False (the job freed, the maildrop still the session's) when the queue is full. */
static bool submit(struct pop3_session *s, struct store_job *j)
{
    j->session = s;
    j->drop = s->drop;
    if (!conn_submit_store(s->conn, job_work, job_done, j)) {
        free_job(j);
        return false;
    }
    s->drop = NULL;
    pause_commands(s);
    return true;
}

static void logged_in(struct pop3_session *s)
{
    s->state = POP3_TRANSACTION;
    conn_printf(s->conn, "+OK Logged in%s\r\n", tls(s) ? "" : " (this session is not encrypted)");
    conn_set_timeout(s->conn, settings(s)->auth_timeout);
}

static void count_live(struct pop3_session *s)
{
    s->live_count = 0;
    s->live_octets = 0;
    for (uint32_t i = 0; i < s->drop->count; i++)
        if (!s->drop->messages[i].deleted) {
            s->live_count++;
            s->live_octets += s->drop->messages[i].size;
        }
}

static void open_done(struct pop3_session *s, struct store_job *j)
{
    if (j->status == STORE_OK) {
        s->has_maildrop = true;
        count_live(s);
        log_debug("conn %llu: maildrop open, %u messages", (unsigned long long)conn_id(s->conn),
                  s->live_count);
        logged_in(s);
    } else if (j->in_use) {
        err(s, "[IN-USE] Mailbox is locked by another POP3 session");
        conn_close(s->conn, "maildrop in use");
    } else {
        log_warning("conn %llu: cannot open the maildrop: %s: %s",
                    (unsigned long long)conn_id(s->conn), store_status_text(j->status), j->error);
        err(s, "[SYS/TEMP] Cannot open the mailbox, try again later");
        conn_close(s->conn, "maildrop not available");
    }
}

static void retrieve_done(struct pop3_session *s, struct store_job *j)
{
    if (j->status == STORE_NOT_FOUND) {
        err(s, "Message was removed by another session");
        return;
    }
    if (j->status != STORE_OK) {
        log_warning("conn %llu: cannot read message %u: %s: %s",
                    (unsigned long long)conn_id(s->conn), j->msg, store_status_text(j->status),
                    j->error);
        err(s, "[SYS/TEMP] Cannot read the message, try again later");
        return;
    }
    if (j->top)
        conn_printf(s->conn, "+OK\r\n");
    else
        conn_printf(s->conn, "+OK %llu octets\r\n",
                    (unsigned long long)s->drop->messages[j->msg - 1].size);
    /* Streamed as the socket drains: LF becomes CRLF and a leading '.' is doubled on the way
     * (RFC 1939 §3), so a 50 MB message never sits in memory. */
    const struct conn_file_range range = {
        .length = j->extent.length, .crlf = true, .dot_stuff = true, .limit = CONN_FILE_ALL};
    if (!conn_write_file(s->conn, j->fd, &range)) {
        log_warning("conn %llu: cannot send message %u", (unsigned long long)conn_id(s->conn),
                    j->msg);
        conn_close(s->conn, "cannot send a message file");
        return;
    }
    /* a last line without its line end is ended, so that "." stands on a line of its own */
    if (j->extent.last_byte == '\r')
        conn_printf(s->conn, "\n.\r\n");
    else if (j->extent.last_byte >= 0 && j->extent.last_byte != '\n')
        conn_printf(s->conn, "\r\n.\r\n");
    else
        conn_printf(s->conn, ".\r\n");
}

static void update_done(struct pop3_session *s, struct store_job *j)
{
    if (j->status == STORE_OK) {
        log_info("conn %llu: POP3 QUIT removed %u messages", (unsigned long long)conn_id(s->conn),
                 j->removed);
        conn_printf(s->conn, "+OK postern signing off (%u messages deleted)\r\n", j->removed);
    } else {
        log_warning("conn %llu: POP3 QUIT could not remove every deleted message: %s: %s",
                    (unsigned long long)conn_id(s->conn), store_status_text(j->status), j->error);
        err(s, "[SYS/TEMP] Some deleted messages were not removed");
    }
    conn_close(s->conn, "QUIT");
}

/* The next command waits until a message sent has nearly left: one file at a time per
 * session, however many RETRs a client pipelines without reading. */
static void output_drained(void *arg)
{
    struct pop3_session *s = arg;
    if (!conn_is_closing(s->conn))
        resume_commands(s);
}

static void job_done(void *arg)
{
    struct store_job *j = arg;
    struct pop3_session *s = j->session;
    s->drop = j->drop; /* back with the session; pop3_free releases it if the session is over */
    if (!conn_is_closing(s->conn)) {
        switch (j->kind) {
        case JOB_OPEN:
            open_done(s, j);
            break;
        case JOB_RETRIEVE:
            retrieve_done(s, j);
            if (j->status == STORE_OK && !conn_is_closing(s->conn)) {
                free_job(j);
                conn_when_drained(s->conn, output_drained, s);
                return;
            }
            break;
        case JOB_UPDATE:
            update_done(s, j);
            break;
        case JOB_RELEASE:
            break;
        }
    }
    free_job(j);
    if (!conn_is_closing(s->conn))
        resume_commands(s);
}

/* After a successful login: the maildrop is opened and locked before "+OK" (RFC 1939 §4). */
static void open_maildrop(struct pop3_session *s, const char *key)
{
    const char *root = conn_config(s->conn)->mailbox_root;
    if (root == NULL) {
        logged_in(s); /* a directory-only setup: logins work, mailbox commands say why not */
        return;
    }
    if (key == NULL || *key == '\0') {
        log_warning("conn %llu: the account has no mailbox key",
                    (unsigned long long)conn_id(s->conn));
        err(s, "[SYS/PERM] This account has no mailbox");
        conn_close(s->conn, "no mailbox key");
        return;
    }
    struct store_job *j = new_job(JOB_OPEN);
    j->root_template = xstrdup(root);
    j->key = xstrdup(key);
    if (!submit(s, j)) {
        err(s, "[SYS/TEMP] Server busy, try again later");
        conn_close(s->conn, "store queue full");
    }
}

/* Gives the maildrop back on a worker when the session ends other than by QUIT; if that cannot
 * be queued, pop3_free() closes it. */
static void release_maildrop(struct pop3_session *s)
{
    if (s->drop != NULL)
        submit(s, new_job(JOB_RELEASE));
}

/* ---- AUTHORIZATION ------------------------------------------------------------------------ */

static void auth_finished(void *session, struct auth_attempt *a, const struct auth_result *r)
{
    (void)a;
    struct pop3_session *s = session;
    s->waiting = false;
    if (conn_is_closing(s->conn))
        return;
    if (r->allow) {
        open_maildrop(s, r->mailbox_key);
        if (s->waiting || conn_is_closing(s->conn))
            return; /* the store job answers */
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
    else if (auth_reason_is_temporary(r->reason))
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
    pause_commands(s);
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

static void cmd_apop(struct pop3_session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    err(s, "APOP is not supported");
}

static void cmd_noop(struct pop3_session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    conn_printf(s->conn, "+OK\r\n");
}

static void cmd_quit(struct pop3_session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    if (!s->has_maildrop || s->drop == NULL) {
        conn_printf(s->conn, "+OK postern signing off\r\n");
        conn_close(s->conn, "QUIT");
        return;
    }
    /* RFC 1939 §6: only QUIT in the TRANSACTION state enters UPDATE and deletes */
    if (!submit(s, new_job(JOB_UPDATE))) {
        err(s, "[SYS/TEMP] Server busy, no message was deleted");
        conn_close(s->conn, "store queue full");
    }
}

/* ---- TRANSACTION -------------------------------------------------------------------------- */

/* Message n of the listing, unless there is none or it is marked deleted (RFC 1939 §5: such
 * message numbers are refused by every command). */
static struct pop3_message *message(struct pop3_session *s, uint64_t n)
{
    if (n == 0 || n > s->drop->count || s->drop->messages[n - 1].deleted)
        return NULL;
    return &s->drop->messages[n - 1];
}

static bool numbers(struct pop3_session *s, const struct pop3_command *cmd, const char *usage,
                    uint64_t *out, int min, int max, int *count)
{
    const char *error;
    int n = pop3_parse_numbers(cmd->args, cmd->args_len, out, min, max, &error);
    if (n < 0) {
        char text[128];
        snprintf(text, sizeof(text), "%s (%s)", error, usage);
        bad_command(s, text);
        return false;
    }
    *count = n;
    return true;
}

static void no_such_message(struct pop3_session *s)
{
    err(s, "no such message");
}

static void cmd_stat(struct pop3_session *s, const struct pop3_command *cmd)
{
    int n;
    uint64_t unused[1];
    if (!numbers(s, cmd, "STAT", unused, 0, 0, &n))
        return;
    conn_printf(s->conn, "+OK %u %llu\r\n", s->live_count, (unsigned long long)s->live_octets);
}

/* LIST and UIDL: one message, or every message not marked deleted. */
static void listing(struct pop3_session *s, const struct pop3_command *cmd, bool uidl)
{
    uint64_t arg[1];
    int n;
    if (!numbers(s, cmd, uidl ? "UIDL [msg]" : "LIST [msg]", arg, 0, 1, &n))
        return;
    char uid[POP3_UIDL_MAX];
    if (n == 1) {
        const struct pop3_message *m = message(s, arg[0]);
        if (m == NULL) {
            no_such_message(s);
            return;
        }
        if (uidl) {
            pop3_uidl(s->drop, (uint32_t)arg[0], uid, sizeof(uid));
            conn_printf(s->conn, "+OK %u %s\r\n", (uint32_t)arg[0], uid);
        } else {
            conn_printf(s->conn, "+OK %u %llu\r\n", (uint32_t)arg[0], (unsigned long long)m->size);
        }
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (uidl)
        evbuffer_add_printf(b, "+OK\r\n");
    else
        evbuffer_add_printf(b, "+OK %u messages (%llu octets)\r\n", s->live_count,
                            (unsigned long long)s->live_octets);
    for (uint32_t i = 1; i <= s->drop->count; i++) {
        const struct pop3_message *m = message(s, i);
        if (m == NULL)
            continue;
        if (uidl) {
            pop3_uidl(s->drop, i, uid, sizeof(uid));
            evbuffer_add_printf(b, "%u %s\r\n", i, uid);
        } else {
            evbuffer_add_printf(b, "%u %llu\r\n", i, (unsigned long long)m->size);
        }
    }
    evbuffer_add_printf(b, ".\r\n");
    conn_write_buffer(s->conn, b);
    evbuffer_free(b);
}

static void cmd_list(struct pop3_session *s, const struct pop3_command *cmd)
{
    listing(s, cmd, false);
}

static void cmd_uidl(struct pop3_session *s, const struct pop3_command *cmd)
{
    listing(s, cmd, true);
}

/* RETR and TOP: the file is opened and measured on a worker, then streamed. */
static void retrieve(struct pop3_session *s, uint64_t n, uint64_t body_lines, bool top)
{
    if (message(s, n) == NULL) {
        no_such_message(s);
        return;
    }
    struct store_job *j = new_job(JOB_RETRIEVE);
    j->msg = (uint32_t)n;
    j->body_lines = body_lines;
    j->top = top;
    if (!submit(s, j))
        err(s, "[SYS/TEMP] Server busy, try again later");
}

static void cmd_retr(struct pop3_session *s, const struct pop3_command *cmd)
{
    uint64_t arg[1];
    int n;
    if (numbers(s, cmd, "RETR msg", arg, 1, 1, &n))
        retrieve(s, arg[0], POP3_ALL_LINES, false);
}

static void cmd_top(struct pop3_session *s, const struct pop3_command *cmd)
{
    uint64_t arg[2];
    int n;
    if (numbers(s, cmd, "TOP msg n", arg, 2, 2, &n))
        retrieve(s, arg[0], arg[1], true);
}

static void cmd_dele(struct pop3_session *s, const struct pop3_command *cmd)
{
    uint64_t arg[1];
    int n;
    if (!numbers(s, cmd, "DELE msg", arg, 1, 1, &n))
        return;
    if (arg[0] >= 1 && arg[0] <= s->drop->count && s->drop->messages[arg[0] - 1].deleted) {
        conn_printf(s->conn, "-ERR message %u already deleted\r\n", (uint32_t)arg[0]);
        return;
    }
    struct pop3_message *m = message(s, arg[0]);
    if (m == NULL) {
        no_such_message(s);
        return;
    }
    m->deleted = true; /* only marked: QUIT deletes (RFC 1939 §6) */
    count_live(s);
    conn_printf(s->conn, "+OK message %u deleted\r\n", (uint32_t)arg[0]);
}

static void cmd_rset(struct pop3_session *s, const struct pop3_command *cmd)
{
    int n;
    uint64_t unused[1];
    if (!numbers(s, cmd, "RSET", unused, 0, 0, &n))
        return;
    for (uint32_t i = 0; i < s->drop->count; i++)
        s->drop->messages[i].deleted = false;
    count_live(s);
    conn_printf(s->conn, "+OK maildrop has %u messages (%llu octets)\r\n", s->live_count,
                (unsigned long long)s->live_octets);
}

/* ---- the command table -------------------------------------------------------------------- */

struct pop3_verb {
    const char *name;
    unsigned states;     /* IN_AUTHORIZATION | IN_TRANSACTION */
    bool needs_maildrop; /* refused with [SYS/PERM] when no MailboxRoot is configured */
    void (*proceed)(struct pop3_session *s, const struct pop3_command *cmd);
};

static const struct pop3_verb VERBS[] = {
    {"CAPA", IN_AUTHORIZATION | IN_TRANSACTION, false, cmd_capa},
    {"NOOP", IN_AUTHORIZATION | IN_TRANSACTION, false, cmd_noop},
    {"QUIT", IN_AUTHORIZATION | IN_TRANSACTION, false, cmd_quit},
    {"STLS", IN_AUTHORIZATION, false, cmd_stls},
    {"USER", IN_AUTHORIZATION, false, cmd_user},
    {"PASS", IN_AUTHORIZATION, false, cmd_pass},
    {"AUTH", IN_AUTHORIZATION, false, cmd_auth},
    {"APOP", IN_AUTHORIZATION, false, cmd_apop},
    {"STAT", IN_TRANSACTION, true, cmd_stat},
    {"LIST", IN_TRANSACTION, true, cmd_list},
    {"RETR", IN_TRANSACTION, true, cmd_retr},
    {"DELE", IN_TRANSACTION, true, cmd_dele},
    {"RSET", IN_TRANSACTION, true, cmd_rset},
    {"TOP", IN_TRANSACTION, true, cmd_top},
    {"UIDL", IN_TRANSACTION, true, cmd_uidl},
};

static void run_line(struct pop3_session *s, const char *line, size_t len)
{
    struct pop3_command cmd;
    const char *error;
    if (!pop3_parse_line(line, len, &cmd, &error)) {
        bad_command(s, error);
        return;
    }
    const struct pop3_verb *verb = NULL;
    for (size_t i = 0; i < ARRAY_LEN(VERBS) && verb == NULL; i++)
        if (strcmp(cmd.keyword, VERBS[i].name) == 0)
            verb = &VERBS[i];
    if (verb == NULL) {
        bad_command(s, "Unknown command");
        return;
    }
    if (!(verb->states & (1u << s->state))) {
        bad_command(s, s->state == POP3_AUTHORIZATION ? "Command not valid before login"
                                                      : "Command not valid in this state");
        return;
    }
    unsigned bad_before = s->bad_commands;
    if (verb->needs_maildrop && !s->has_maildrop)
        err(s, "[SYS/PERM] Mailbox access is not yet available on this server (no MailboxRoot "
               "configured)");
    else
        verb->proceed(s, &cmd);
    if (s->bad_commands == bad_before)
        s->bad_commands = 0;
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

/* RFC 1939 §3: the autologout timer ends the session without entering UPDATE. */
static void pop3_timeout(void *session)
{
    struct pop3_session *s = session;
    err(s, "Disconnected for inactivity");
    release_maildrop(s);
    conn_close(s->conn, "idle timeout");
}

static void pop3_shutdown(void *session)
{
    err(session, "[SYS/TEMP] Server shutting down");
}

/* A session that ended without QUIT (dropped, timed out, shut down) deletes nothing; if its
 * maildrop is still here, it is released now, on the I/O thread, as nothing else can. */
static void pop3_free(void *session)
{
    struct pop3_session *s = session;
    forget_user(s);
    sasl_free(s->sasl);
    pop3_maildrop_close(s->drop);
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
