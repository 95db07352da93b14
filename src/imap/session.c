/* IMAP session: state machine, command table, capabilities, the input loop, the
 * not-authenticated state (CAPABILITY, NOOP, LOGOUT, STARTTLS, ID, LOGIN, AUTHENTICATE) and the
 * step from login to the account's store. The mailbox commands live in mailboxes.c, fetch.c,
 * messages.c, append.c and idle.c. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/auth.h"
#include "postern/imap.h"
#include "postern/log.h"
#include "postern/policy.h"
#include "postern/sasl.h"
#include "postern/util.h"
#include "session_internal.h"

struct imap_command_def {
    const char *name;
    unsigned states; /* where the command is valid */
    void (*run)(struct imap_session *s, struct imap_command *cmd);
};

static const struct protocol_settings *settings(const struct imap_session *s)
{
    return conn_protocol_settings(s->conn);
}

const struct protocol_settings *imap_settings(const struct imap_session *s)
{
    return settings(s);
}

uint64_t imap_max_message_size(const struct imap_session *s)
{
    return settings(s)->max_message_size;
}

/* ---- capabilities: derived here and nowhere else ----------------------------------------------
 */

static void capabilities(const struct imap_session *s, char *buf, size_t len)
{
    bool tls = conn_tls_active(s->conn);
    enum login_type lt = settings(s)->login_type;
    size_t n = (size_t)snprintf(buf, len, "IMAP4rev1 SASL-IR LITERAL+ ID");
    if (s->state != IMAP_NOT_AUTHENTICATED) {
        /* nothing about logging in is offered after login (RFC 3501 §6.2); the mailbox
         * extensions only when there is a store to use them on */
        if (s->account)
            snprintf(buf + n, len - n,
                     " ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE ESEARCH "
                     "APPENDLIMIT=%llu",
                     (unsigned long long)imap_max_message_size(s));
        return;
    }
    if (policy_starttls_offered(conn_listener(s->conn), tls))
        n += (size_t)snprintf(buf + n, len - n, " STARTTLS");
    if (!policy_mech_allowed(lt, tls, &AUTH_MECH_LOGIN_COMMAND))
        n += (size_t)snprintf(buf + n, len - n, " LOGINDISABLED");
    for (size_t i = 0; i < AUTH_MECHS_COUNT && n < len; i++)
        if (policy_mech_allowed(lt, tls, &AUTH_MECHS[i]))
            n += (size_t)snprintf(buf + n, len - n, " AUTH=%s", AUTH_MECHS[i].name);
}

/* ---- helpers ------------------------------------------------------------------------------------
 */

static void reply(struct imap_session *s, const char *tag, const char *status, const char *text)
{
    conn_printf(s->conn, "%s %s %s\r\n", tag, status, text);
}

void imap_reply(struct imap_session *s, const char *tag, const char *status, const char *text)
{
    reply(s, tag, status, text);
}

static void bad_command(struct imap_session *s, const char *tag, const char *why)
{
    reply(s, tag, "BAD", why);
    if (++s->bad_commands >= settings(s)->max_bad_commands) {
        conn_printf(s->conn, "* BYE Too many invalid commands\r\n");
        conn_close(s->conn, "too many invalid commands");
    }
}

void imap_bad_command(struct imap_session *s, const char *tag, const char *why)
{
    bad_command(s, tag, why);
}

bool imap_need_store(struct imap_session *s, const char *tag)
{
    if (s->account)
        return true;
    reply(s, tag, "NO",
          "[UNAVAILABLE] This server has no mailbox storage configured (MailboxRoot); you can "
          "log in, but there are no mailboxes");
    return false;
}

static void reset_timer(struct imap_session *s);

void imap_command_done(struct imap_session *s)
{
    s->busy = false;
    if (conn_is_closing(s->conn))
        return;
    reset_timer(s);
    conn_pause_input(s->conn, false); /* pipelined commands go on */
}

/* Modified UTF-7 (RFC 3501 §5.1.3), checked by decoding, as the store names mailboxes. */
bool imap_mailbox_arg(struct imap_session *s, const char *tag, const struct imap_arg *arg,
                      char **name)
{
    const char *error = "Invalid mailbox name";
    char *utf8 = NULL, *mutf7 = NULL;
    if (!imap_arg_is_astring(arg) ||
        !mailbox_name_parse(arg, IMAP_DELIMITER, false, &utf8, &error) ||
        !mutf7_encode(utf8, strlen(utf8), &mutf7, &error)) {
        free(utf8);
        bad_command(s, tag, error);
        return false;
    }
    free(utf8);
    *name = mutf7;
    return true;
}

static bool no_args(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->n_args == 0)
        return true;
    bad_command(s, cmd->tag, "Unexpected arguments");
    return false;
}

static void wait_for_auth(struct imap_session *s, const char *tag)
{
    s->waiting = true;
    free(s->waiting_tag);
    s->waiting_tag = xstrdup(tag);
    conn_pause_input(s->conn, true);
}

/* The authenticated state begins: the answer to LOGIN / AUTHENTICATE. */
static void logged_in(struct imap_session *s, const char *tag)
{
    s->state = IMAP_AUTHENTICATED;
    s->reader.offer_literals = true; /* APPEND streams its message */
    if (!conn_tls_active(s->conn))   /* POLICY.md §2: say it when it is so */
        conn_printf(s->conn, "* OK [ALERT] This session is not encrypted: your mail "
                             "crosses the network in clear text\r\n");
    char caps[512];
    capabilities(s, caps, sizeof(caps));
    conn_printf(s->conn, "%s OK [CAPABILITY %s] Logged in\r\n", tag, caps);
    conn_set_timeout(s->conn, settings(s)->auth_timeout);
}

/* Opening the account's store after a successful login, on the store pool. */
struct account_open {
    struct imap_session *s;
    char *tag, *root_template, *key;
    struct store_account *account;
    enum store_status status;
    char path[4096];
    char error[256];
};

static void account_open_work(void *arg)
{
    struct account_open *o = arg;
    o->status = store_expand_root(o->root_template, o->key, o->path, sizeof(o->path));
    if (o->status == STORE_OK)
        o->status = store_account_open(o->path, &o->account);
    if (o->status != STORE_OK)
        snprintf(o->error, sizeof(o->error), "%s", store_last_error());
}

static void account_open_done(void *arg)
{
    struct account_open *o = arg;
    struct imap_session *s = o->s;
    s->waiting = false;
    if (conn_is_closing(s->conn)) {
        store_account_close(o->account);
    } else if (o->status != STORE_OK) {
        log_error("conn %llu: cannot open the mailbox store of %s at %s: %s: %s",
                  (unsigned long long)conn_id(s->conn), o->key, o->path,
                  store_status_text(o->status), o->error);
        /* The login itself was fine, but there is nothing to use; the session slot the
         * account holds is released with the connection. */
        reply(s, o->tag, "NO",
              "[UNAVAILABLE] Your mailbox cannot be opened right now; try "
              "again later");
        conn_printf(s->conn, "* BYE Mailbox unavailable\r\n");
        conn_close(s->conn, "mailbox store unavailable");
    } else {
        s->account = o->account;
        logged_in(s, o->tag);
        conn_pause_input(s->conn, false);
    }
    free(o->tag);
    free(o->root_template);
    free(o->key);
    free(o);
}

/* The protocol's words for a refusal; the same text whatever the directory said. */
static void auth_finished(void *session, struct auth_attempt *a, const struct auth_result *r)
{
    (void)a;
    struct imap_session *s = session;
    s->waiting = false;
    const char *tag = s->waiting_tag ? s->waiting_tag : "*";
    if (!conn_is_closing(s->conn)) {
        const char *root = conn_config(s->conn)->mailbox_root;
        if (r->allow && root && r->mailbox_key) {
            struct account_open *o = xcalloc(1, sizeof(*o));
            *o = (struct account_open){.s = s,
                                       .tag = xstrdup(tag),
                                       .root_template = xstrdup(root),
                                       .key = xstrdup(r->mailbox_key)};
            s->waiting = true; /* input stays paused until the store is open */
            if (!conn_submit_store(s->conn, account_open_work, account_open_done, o)) {
                o->status = STORE_BUSY;
                snprintf(o->error, sizeof(o->error), "the store queue is full");
                account_open_done(o);
            }
            free(s->waiting_tag);
            s->waiting_tag = NULL;
            return;
        }
        if (r->allow) {
            if (root)
                log_error("conn %llu: login without a mailbox key: no mailbox store",
                          (unsigned long long)conn_id(s->conn));
            logged_in(s, tag);
        } else if (r->reason == AUTH_REASON_PLAINTEXT_REQUIRES_TLS) {
            reply(s, tag, "NO",
                  policy_starttls_offered(conn_listener(s->conn), conn_tls_active(s->conn))
                      ? "[PRIVACYREQUIRED] Plaintext authentication is not allowed without TLS; "
                        "use STARTTLS first"
                      : "[PRIVACYREQUIRED] Plaintext authentication is not allowed on this "
                        "connection");
        } else if (r->reason == AUTH_REASON_NO_DIRECTORY) {
            reply(s, tag, "NO",
                  "[UNAVAILABLE] Login is not yet available on this server (no directory "
                  "configured)");
        } else if (r->reason == AUTH_REASON_MECH_UNSUPPORTED) {
            reply(s, tag, "NO", "[CANNOT] Unsupported authentication mechanism");
        } else if (r->reason == AUTH_REASON_SESSION_LIMIT) {
            reply(s, tag, "NO", "[LIMIT] Too many sessions for this account");
        } else if (r->reason == AUTH_REASON_INVALID_INPUT) {
            reply(s, tag, "BAD", "Invalid SASL response");
        } else if (r->reason == AUTH_REASON_SASL_NOT_AVAILABLE) {
            reply(s, tag, "NO",
                  "[UNAVAILABLE] AUTHENTICATE is not yet available on this server; use LOGIN");
        } else if (auth_reason_is_temporary(r->reason)) {
            reply(s, tag, "NO",
                  "[UNAVAILABLE] Authentication service unavailable, try again later");
        } else {
            reply(s, tag, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
        }
        if (auth_reason_is_failure(r->reason) &&
            ++s->auth_failures >= conn_config(s->conn)->logins.max_auth_failures) {
            conn_printf(s->conn, "* BYE Too many authentication failures\r\n");
            conn_close(s->conn, "too many authentication failures");
        }
        conn_pause_input(s->conn, false);
    }
    free(s->waiting_tag);
    s->waiting_tag = NULL;
}

/* ---- commands
 * ------------------------------------------------------------------------------------ */

static void cmd_capability(struct imap_session *s, struct imap_command *cmd)
{
    if (!no_args(s, cmd))
        return;
    char caps[512];
    capabilities(s, caps, sizeof(caps));
    conn_printf(s->conn, "* CAPABILITY %s\r\n", caps);
    reply(s, cmd->tag, "OK", "CAPABILITY completed");
}

static void cmd_noop(struct imap_session *s, struct imap_command *cmd)
{
    if (!no_args(s, cmd))
        return;
    if (s->state == IMAP_SELECTED && s->selected)
        imap_noop_selected(s, cmd->tag); /* RFC 3501 §6.1.2: the way to poll for updates */
    else
        reply(s, cmd->tag, "OK", "NOOP completed");
}

static void cmd_logout(struct imap_session *s, struct imap_command *cmd)
{
    if (!no_args(s, cmd))
        return;
    conn_printf(s->conn, "* BYE Logging out\r\n");
    reply(s, cmd->tag, "OK", "LOGOUT completed");
    conn_close(s->conn, "LOGOUT");
}

static void cmd_starttls(struct imap_session *s, struct imap_command *cmd)
{
    if (!no_args(s, cmd))
        return;
    if (!policy_starttls_offered(conn_listener(s->conn), conn_tls_active(s->conn))) {
        bad_command(s, cmd->tag,
                    conn_tls_active(s->conn) ? "TLS is already active"
                                             : "STARTTLS is not available on this port");
        return;
    }
    reply(s, cmd->tag, "OK", "Begin TLS negotiation now");
    imap_reader_reset(&s->reader);
    conn_starttls(s->conn);
}

/* RFC 2971: ("field" "value" ...) or NIL; at most 30 pairs, fields of 30 and values of 1024
 * octets. The client's identity is logged; ours names the software, not its version. */
static void cmd_id(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->n_args != 1 ||
        (cmd->args[0].type != IMAP_ARG_NIL && cmd->args[0].type != IMAP_ARG_LIST)) {
        bad_command(s, cmd->tag, "ID takes a parameter list or NIL");
        return;
    }
    const struct imap_arg *list = &cmd->args[0];
    if (list->type == IMAP_ARG_LIST) {
        if (list->list_len % 2 != 0 || list->list_len > 60) {
            bad_command(s, cmd->tag, "ID takes at most 30 field/value pairs");
            return;
        }
        char seen[1024] = "";
        size_t used = 0;
        for (size_t i = 0; i < list->list_len; i += 2) {
            const struct imap_arg *f = &list->list[i], *v = &list->list[i + 1];
            if (!imap_arg_is_string(f) || f->len > 30 ||
                (!imap_arg_is_string(v) && v->type != IMAP_ARG_NIL) || v->len > 1024) {
                bad_command(s, cmd->tag, "Invalid ID field or value");
                return;
            }
            if (used < sizeof(seen))
                used +=
                    (size_t)snprintf(seen + used, sizeof(seen) - used, "%s%s=%s", used ? " " : "",
                                     f->str, v->type == IMAP_ARG_NIL ? "NIL" : v->str);
        }
        log_info("conn %llu: client ID: %s", (unsigned long long)conn_id(s->conn), seen);
    }
    conn_printf(s->conn, "* ID (\"name\" \"postern\")\r\n");
    reply(s, cmd->tag, "OK", "ID completed");
}

static void cmd_login(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->n_args != 2 || !imap_arg_is_astring(&cmd->args[0]) ||
        !imap_arg_is_astring(&cmd->args[1])) {
        bad_command(s, cmd->tag, "LOGIN takes a user name and a password");
        return;
    }
    struct auth_attempt *a = auth_attempt_new(s->conn, &AUTH_MECH_LOGIN_COMMAND, NULL,
                                              cmd->args[0].str, cmd->args[1].str, cmd->args[1].len);
    wipe(cmd->args[1].str, cmd->args[1].len);
    wait_for_auth(s, cmd->tag);
    auth_start(s->conn, s, a, auth_finished);
}

static void cmd_authenticate(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->n_args < 1 || cmd->n_args > 2 || cmd->args[0].type != IMAP_ARG_ATOM ||
        (cmd->n_args == 2 && cmd->args[1].type != IMAP_ARG_ATOM)) {
        bad_command(s, cmd->tag, "AUTHENTICATE takes a mechanism and an optional initial response");
        return;
    }
    const struct auth_mech *m = auth_mech_find(cmd->args[0].str);
    struct sasl_exchange *x = NULL;
    /* Unknown mechanisms and those LoginType forbids here go through the pipeline without an
     * exchange, so that no credentials are ever asked for (POLICY.md §2). */
    if (m && policy_mech_allowed(settings(s)->login_type, conn_tls_active(s->conn), m))
        x = sasl_start(m->name);
    wait_for_auth(s, cmd->tag);
    if (x == NULL) {
        auth_start(s->conn, s, auth_attempt_new(s->conn, m, cmd->args[0].str, "", NULL, 0),
                   auth_finished);
        return;
    }
    s->sasl = x;
    s->sasl_mech = m;
    /* SASL-IR (RFC 4959): "=" is an empty initial response */
    const char *ir = NULL;
    if (cmd->n_args == 2)
        ir = strcmp(cmd->args[1].str, "=") == 0 ? "" : cmd->args[1].str;
    bool more = sasl_continue(s->conn, s, &s->sasl, m, ir, auth_finished);
    if (cmd->n_args == 2)
        wipe(cmd->args[1].str, cmd->args[1].len);
    if (more)
        conn_pause_input(s->conn, false); /* the next line is the client's response */
}

/* A line while AUTHENTICATE runs: a base64 response, or "*" to cancel (RFC 3501 §6.2.2). */
static void sasl_line(struct imap_session *s)
{
    const char *tag = s->waiting_tag ? s->waiting_tag : "*";
    /* `waiting` stays set meanwhile: no command runs until the exchange has ended */
    switch (sasl_take_line(s->conn, s, &s->sasl, s->sasl_mech, auth_finished)) {
    case SASL_LINE_NONE:
    case SASL_LINE_HANDLED:
        break;
    case SASL_LINE_TOO_LONG:
        reply(s, tag, "BAD", "SASL response too long");
        conn_printf(s->conn, "* BYE SASL response too long\r\n");
        conn_close(s->conn, "SASL response too long");
        break;
    case SASL_LINE_CANCELLED:
        s->waiting = false;
        reply(s, tag, "BAD", "AUTHENTICATE cancelled");
        free(s->waiting_tag);
        s->waiting_tag = NULL;
        break;
    }
}

#define ANY (IMAP_NOT_AUTHENTICATED | IMAP_AUTHENTICATED | IMAP_SELECTED)
#define AUTHED (IMAP_AUTHENTICATED | IMAP_SELECTED)

static const struct imap_command_def COMMANDS[] = {
    {"CAPABILITY", ANY, cmd_capability},
    {"NOOP", ANY, cmd_noop},
    {"LOGOUT", ANY, cmd_logout},
    {"ID", ANY, cmd_id},
    {"STARTTLS", IMAP_NOT_AUTHENTICATED, cmd_starttls},
    {"LOGIN", IMAP_NOT_AUTHENTICATED, cmd_login},
    {"AUTHENTICATE", IMAP_NOT_AUTHENTICATED, cmd_authenticate},
    /* authenticated state (RFC 3501 §6.3) and extensions valid there */
    {"SELECT", AUTHED, cmd_select},
    {"EXAMINE", AUTHED, cmd_examine},
    {"CREATE", AUTHED, cmd_create},
    {"DELETE", AUTHED, cmd_delete},
    {"RENAME", AUTHED, cmd_rename},
    {"SUBSCRIBE", AUTHED, cmd_subscribe},
    {"UNSUBSCRIBE", AUTHED, cmd_unsubscribe},
    {"LIST", AUTHED, cmd_list},
    {"LSUB", AUTHED, cmd_lsub},
    {"STATUS", AUTHED, cmd_status},
    {"APPEND", AUTHED, cmd_append},
    {"NAMESPACE", AUTHED, cmd_namespace},       /* RFC 2342 */
    {"IDLE", AUTHED, cmd_idle},                 /* RFC 2177 */
    {"ENABLE", IMAP_AUTHENTICATED, cmd_enable}, /* RFC 5161: before any SELECT */
    /* selected state (RFC 3501 §6.4) */
    {"CHECK", IMAP_SELECTED, cmd_check},
    {"CLOSE", IMAP_SELECTED, cmd_close},
    {"UNSELECT", IMAP_SELECTED, cmd_unselect}, /* RFC 3691 */
    {"EXPUNGE", IMAP_SELECTED, cmd_expunge},
    {"SEARCH", IMAP_SELECTED, cmd_search},
    {"FETCH", IMAP_SELECTED, cmd_fetch},
    {"STORE", IMAP_SELECTED, cmd_store},
    {"COPY", IMAP_SELECTED, cmd_copy},
    {"MOVE", IMAP_SELECTED, cmd_move}, /* RFC 6851 */
    {"UID", IMAP_SELECTED, cmd_uid},
};

/* FETCH with header field names the generic parser cannot represent (quoted strings or
 * literals inside a section: BODY[HEADER.FIELDS ("From")]): the typed parser reads the text. */
static bool fetch_fallback(struct imap_session *s, const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    const char *words[4];
    size_t lens[4], n = 0;
    while (n < 4 && p < end) {
        const char *w = p;
        while (p < end && *p != ' ' && *p != '\r' && *p != '\n')
            p++;
        words[n] = w;
        lens[n++] = (size_t)(p - w);
        if (p < end && *p == ' ')
            p++;
        else
            break;
    }
    bool uid = n >= 3 && lens[1] == 3 && ascii_ncasecmp(words[1], "UID", 3) == 0;
    size_t name = uid ? 2 : 1;
    if (n <= name + 1 || lens[name] != 5 || ascii_ncasecmp(words[name], "FETCH", 5) != 0 ||
        s->state != IMAP_SELECTED || s->selected == NULL)
        return false;
    const char *rest;
    size_t rest_len;
    if (!imap_command_rest(buf, len, name + 2, &rest, &rest_len))
        return false;
    struct fetch_request req;
    const char *error = NULL;
    char *tag = xstrndup(words[0], lens[0]);
    if (!fetch_parse_text(rest, rest_len, &req, &error)) {
        bad_command(s, tag, error);
        free(tag);
        return true;
    }
    struct imap_arg set = {.type = IMAP_ARG_ATOM,
                           .str = xstrndup(words[name + 1], lens[name + 1]),
                           .len = lens[name + 1]};
    s->bad_commands = 0;
    imap_fetch(s, tag, uid, &set, &req); /* takes req */
    free(set.str);
    free(tag);
    return true;
}

static void run_command(struct imap_session *s, const char *buf, size_t len)
{
    if (s->append) { /* the line that ends a streamed APPEND */
        imap_append_end(s);
        return;
    }
    struct imap_command cmd;
    const char *error = NULL;
    if (!imap_parse_command(buf, len, &cmd, &error)) {
        if (cmd.tag && fetch_fallback(s, buf, len)) {
            imap_command_free(&cmd);
            return;
        }
        bad_command(s, cmd.tag ? cmd.tag : "*", error);
        imap_command_free(&cmd);
        return;
    }
    const struct imap_command_def *def = NULL;
    for (size_t i = 0; i < ARRAY_LEN(COMMANDS); i++)
        if (ascii_casecmp(COMMANDS[i].name, cmd.name) == 0)
            def = &COMMANDS[i];
    if (def == NULL) {
        bad_command(s, cmd.tag, "Unknown command");
    } else if ((def->states & s->state) == 0) {
        bad_command(s, cmd.tag, "Command not valid in this state");
    } else {
        s->bad_commands = 0;
        def->run(s, &cmd);
    }
    imap_command_free(&cmd);
}

static void reset_timer(struct imap_session *s)
{
    conn_set_timeout(s->conn, s->state == IMAP_NOT_AUTHENTICATED ? settings(s)->preauth_timeout
                                                                 : settings(s)->auth_timeout);
}

/* ---- protocol_ops -------------------------------------------------------------------------------
 */

static void *imap_open(struct conn *c)
{
    struct imap_session *s = xcalloc(1, sizeof(*s));
    s->conn = c;
    s->state = IMAP_NOT_AUTHENTICATED;
    const struct protocol_settings *ps = conn_protocol_settings(c);
    imap_reader_init(&s->reader, ps->max_command_size, ps->max_literal_size);
    char caps[512];
    capabilities(s, caps, sizeof(caps));
    conn_printf(c, "* OK [CAPABILITY %s] %s\r\n", caps, ps->banner);
    reset_timer(s);
    return s;
}

static void literal_too_big(struct imap_session *s)
{
    char tag[64];
    imap_reader_tag(&s->reader, tag, sizeof(tag));
    if (s->reader.nonsync) {
        /* RFC 7888 §4: the data follows regardless; it cannot be told apart from
         * commands, so the connection ends. */
        reply(s, tag, "BAD", "[TOOBIG] Literal too large");
        conn_printf(s->conn, "* BYE Literal too large\r\n");
        conn_close(s->conn, "non-synchronizing literal too large");
    } else {
        imap_reader_reset(&s->reader);
        bad_command(s, tag, "[TOOBIG] Literal too large");
    }
}

/* After login every literal is offered: APPEND streams its message, the rest is buffered
 * with the command as before login. */
static void literal_announced(struct imap_session *s)
{
    if (s->state != IMAP_NOT_AUTHENTICATED && imap_append_literal(s))
        return;
    switch (imap_reader_literal(&s->reader, false)) {
    case IMAP_READ_CONTINUE:
        conn_printf(s->conn, "+ Ready for literal data\r\n");
        break;
    case IMAP_READ_LITERAL_TOO_BIG:
        literal_too_big(s);
        break;
    default:
        break;
    }
}

static void imap_input(void *session)
{
    struct imap_session *s = session;
    struct evbuffer *in = conn_input(s->conn);
    while (s->sasl && !conn_is_closing(s->conn) && evbuffer_get_length(in) > 0) {
        size_t before = evbuffer_get_length(in);
        sasl_line(s);
        if (evbuffer_get_length(in) == before)
            return; /* no complete line yet */
    }
    if (s->idle) {
        imap_idle_input(s);
        return;
    }
    while (!s->waiting && !s->busy && !s->idle && !conn_is_closing(s->conn)) {
        if (s->append && s->reader.streaming && !imap_append_ready(s))
            break; /* a write is behind: the socket waits (backpressure) */
        size_t n = evbuffer_get_contiguous_space(in);
        if (n == 0)
            break;
        const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
        size_t used = 0;
        enum imap_read_status st = imap_reader_feed(&s->reader, data, n, &used);
        if (st == IMAP_READ_STREAM_DATA && s->append)
            imap_append_data(s, data, used);
        evbuffer_drain(in, used);
        char tag[64];
        switch (st) {
        case IMAP_READ_MORE:
        case IMAP_READ_STREAM_DATA:
            break;
        case IMAP_READ_LITERAL:
            literal_announced(s);
            break;
        case IMAP_READ_CONTINUE:
            conn_printf(s->conn, "+ Ready for literal data\r\n");
            break;
        case IMAP_READ_LINE_TOO_LONG:
            imap_reader_tag(&s->reader, tag, sizeof(tag));
            if (s->reader.nonsync) {
                /* Literal data of unknown meaning follows: end the connection (RFC 7888 §4). */
                reply(s, tag, "BAD", "[TOOBIG] Command line too long");
                conn_printf(s->conn, "* BYE Command line too long\r\n");
                conn_close(s->conn, "over-long line announcing a non-synchronizing literal");
                break;
            }
            imap_reader_reset(&s->reader);
            if (s->append) /* the line after an APPEND's message: the APPEND fails */
                imap_append_fail(s, "BAD", "[TOOBIG] Command line too long");
            else
                bad_command(s, tag, "[TOOBIG] Command line too long");
            break;
        case IMAP_READ_LITERAL_TOO_BIG:
            literal_too_big(s);
            break;
        case IMAP_READ_COMMAND:
            run_command(s, s->reader.buf, s->reader.len);
            imap_reader_reset(&s->reader);
            if (!conn_is_closing(s->conn)) /* a command that runs on is activity too */
                reset_timer(s);
            break;
        }
    }
    if (s->idle && !conn_is_closing(s->conn))
        imap_idle_input(s); /* DONE may already be buffered */
}

static void imap_tls_ready(void *session)
{
    struct imap_session *s = session;
    imap_reader_reset(&s->reader);
    reset_timer(s);
}

static void imap_timeout(void *session)
{
    struct imap_session *s = session;
    conn_printf(s->conn, "* BYE Autologout; idle for too long\r\n");
    conn_close(s->conn, "idle timeout");
}

static void imap_shutdown(void *session)
{
    struct imap_session *s = session;
    conn_printf(s->conn, "* BYE [UNAVAILABLE] Server shutting down\r\n");
}

static void imap_free(void *session)
{
    struct imap_session *s = session;
    /* no job is outstanding now (the connection waits for them), so the handles are ours */
    imap_idle_free(s);
    imap_append_free(s);
    store_close(s->selected);
    store_account_close(s->account);
    imap_reader_free(&s->reader);
    sasl_free(s->sasl);
    free(s->waiting_tag);
    free(s);
}

const struct protocol_ops imap_protocol = {
    .open = imap_open,
    .input = imap_input,
    .tls_ready = imap_tls_ready,
    .timeout = imap_timeout,
    .shutdown = imap_shutdown,
    .free = imap_free,
};
