/* Parser and model of postern.conf: directives, protocol blocks and listener blocks. */
#include "postern/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "postern/util.h"

/* Defaults. Exchange's PreAuthenticatedConnectionTimeout is 60 s; RFC 3501 §5.4 requires an
 * autologout timer of at least 30 minutes after login, so AuthenticatedConnectionTimeout
 * defaults to that. Exchange's MaxCommandSize default (512) is kept for POP3, whose RFC 2449
 * limit is 255; IMAP clients send long UID sets, so IMAP gets 64 KiB like Dovecot. */
static void protocol_defaults(struct protocol_settings *p, enum protocol proto)
{
    p->login_type = LOGIN_TYPE_SECURE_LOGIN;
    p->banner = xstrdup(proto == PROTOCOL_IMAP ? "postern IMAP4 service ready"
                                               : "postern POP3 service ready");
    p->max_command_size = proto == PROTOCOL_IMAP ? 65536 : 512;
    p->max_literal_size = 65536;
    p->max_message_size = 50u * 1024 * 1024;
    p->max_bad_commands = 10;
    p->preauth_timeout = 60;
    p->auth_timeout = 1800;
    p->max_connections_per_user = 16;
}

static const char DEFAULT_TLS_PRIORITY[] =
    "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-RSA:-DHE-RSA:-AES-128-CBC:-AES-256-CBC:"
    "-AES-128-CCM:-AES-256-CCM:%SERVER_PRECEDENCE";

/* ---- tokenizer ------------------------------------------------------------------------- */

#define MAX_ARGS 64

struct parser {
    const char *path;
    const char *p, *end;
    int line;
    char *err;
    size_t errlen;
    bool failed;
};

struct statement {
    int line;
    size_t argc;
    char *argv[MAX_ARGS];
    bool opens_block;  /* line ends in "{" */
    bool closes_block; /* the line is "}" */
};

static void fail(struct parser *ps, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct parser *ps, int line, const char *fmt, ...)
{
    if (ps->failed)
        return;
    ps->failed = true;
    int n = snprintf(ps->err, ps->errlen, "%s:%d: ", ps->path, line);
    if (n < 0 || (size_t)n >= ps->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static void statement_clear(struct statement *st)
{
    for (size_t i = 0; i < st->argc; i++)
        free(st->argv[i]);
    memset(st, 0, sizeof(*st));
}

/* Read one statement (one logical line). Returns false at end of input or on error. */
static bool next_statement(struct parser *ps, struct statement *st)
{
    statement_clear(st);
    while (ps->p < ps->end && !ps->failed) {
        char c = *ps->p;
        if (c == '\n') {
            ps->p++;
            ps->line++;
            if (st->argc > 0 || st->closes_block)
                return true;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r') {
            ps->p++;
            continue;
        }
        if (c == '#') {
            while (ps->p < ps->end && *ps->p != '\n')
                ps->p++;
            continue;
        }
        st->line = ps->line;
        if (st->opens_block || st->closes_block) {
            fail(ps, ps->line, "unexpected text after '%c'", st->opens_block ? '{' : '}');
            return false;
        }
        if (c == '{') {
            if (st->argc == 0) {
                fail(ps, ps->line, "'{' without a block name");
                return false;
            }
            st->opens_block = true;
            ps->p++;
            continue;
        }
        if (c == '}') {
            if (st->argc > 0) {
                fail(ps, ps->line, "'}' must stand on a line of its own");
                return false;
            }
            st->closes_block = true;
            ps->p++;
            continue;
        }
        if (st->argc == MAX_ARGS) {
            fail(ps, ps->line, "too many values on one line (at most %d)", MAX_ARGS);
            return false;
        }
        size_t cap = 64, len = 0;
        char *tok = xmalloc(cap);
        if (c == '"') {
            ps->p++;
            for (;;) {
                if (ps->p >= ps->end || *ps->p == '\n') {
                    free(tok);
                    fail(ps, ps->line, "unterminated quoted string");
                    return false;
                }
                c = *ps->p++;
                if (c == '"')
                    break;
                if (c == '\\' && ps->p < ps->end && (*ps->p == '"' || *ps->p == '\\'))
                    c = *ps->p++;
                if (c == '\0') {
                    free(tok);
                    fail(ps, ps->line, "NUL byte in quoted string");
                    return false;
                }
                if (len + 1 >= cap)
                    tok = xrealloc(tok, cap *= 2);
                tok[len++] = c;
            }
        } else {
            while (ps->p < ps->end) {
                c = *ps->p;
                if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '#' || c == '{' ||
                    c == '}' || c == '"')
                    break;
                if (c == '\0' || (unsigned char)c < 0x20) {
                    free(tok);
                    fail(ps, ps->line, "control character in configuration");
                    return false;
                }
                if (len + 1 >= cap)
                    tok = xrealloc(tok, cap *= 2);
                tok[len++] = c;
                ps->p++;
            }
        }
        tok[len] = '\0';
        st->argv[st->argc++] = tok;
    }
    return !ps->failed && (st->argc > 0 || st->closes_block);
}

/* ---- value parsers ---------------------------------------------------------------------- */

static bool want_args(struct parser *ps, const struct statement *st, size_t n)
{
    if (st->argc - 1 != n) {
        fail(ps, st->line, "%s takes %zu value%s", st->argv[0], n, n == 1 ? "" : "s");
        return false;
    }
    return true;
}

enum number_kind { COUNT, SIZE, DURATION };

/* Unsigned number; sizes take K/M/G, durations s/m/h (seconds); counts take no unit. */
static bool parse_number(struct parser *ps, const struct statement *st, enum number_kind kind,
                         unsigned long min, unsigned long max, unsigned *out)
{
    if (!want_args(ps, st, 1))
        return false;
    const char *s = st->argv[1];
    if (!isdigit((unsigned char)s[0])) {
        fail(ps, st->line, "%s: '%s' is not a number", st->argv[0], s);
        return false;
    }
    errno = 0;
    char *endp;
    unsigned long long v = strtoull(s, &endp, 10);
    unsigned long long mult = 1;
    if (*endp != '\0') {
        char u = (char)tolower((unsigned char)*endp);
        if (endp[1] != '\0' || kind == COUNT)
            u = '?';
        if (kind == DURATION)
            mult = u == 's' ? 1 : u == 'm' ? 60 : u == 'h' ? 3600 : 0;
        else
            mult = u == 'k' ? 1024ULL : u == 'm' ? 1024ULL * 1024 : u == 'g' ? 1024ULL << 20 : 0;
        if (mult == 0) {
            fail(ps, st->line, "%s: unknown unit in '%s' (%s)", st->argv[0], s,
                 kind == DURATION ? "use s, m or h"
                 : kind == SIZE   ? "use K, M or G"
                                  : "a plain number is expected");
            return false;
        }
    }
    if (errno == ERANGE || v > max / mult || v * mult < min || v * mult > max) {
        fail(ps, st->line, "%s: %s is out of range (%lu..%lu)", st->argv[0], s, min, max);
        return false;
    }
    *out = (unsigned)(v * mult);
    return true;
}

static bool parse_string(struct parser *ps, const struct statement *st, char **out)
{
    if (!want_args(ps, st, 1))
        return false;
    if (st->argv[1][0] == '\0') {
        fail(ps, st->line, "%s: empty value", st->argv[0]);
        return false;
    }
    free(*out);
    *out = xstrdup(st->argv[1]);
    return true;
}

/* Banners go to clients verbatim inside a protocol line: refuse anything that could end it. */
static bool parse_banner(struct parser *ps, const struct statement *st, char **out)
{
    if (!parse_string(ps, st, out))
        return false;
    for (const unsigned char *c = (const unsigned char *)*out; *c; c++) {
        if (*c < 0x20 || *c >= 0x7f || *c == '[' || *c == ']') {
            /* RFC 3501 resp-text is 7-bit text; brackets would look like a response code. */
            fail(ps, st->line, "Banner: only printable ASCII without brackets is allowed");
            return false;
        }
    }
    if (strlen(*out) > 200) {
        fail(ps, st->line, "Banner: longer than 200 characters");
        return false;
    }
    return true;
}

struct keyword {
    const char *name;
    int value;
};

static bool parse_keyword(struct parser *ps, const struct statement *st,
                          const struct keyword *words, size_t n, int *out)
{
    if (!want_args(ps, st, 1))
        return false;
    char choices[256] = "";
    for (size_t i = 0; i < n; i++) {
        if (ascii_casecmp(st->argv[1], words[i].name) == 0) {
            *out = words[i].value;
            return true;
        }
        size_t l = strlen(choices);
        snprintf(choices + l, sizeof(choices) - l, "%s%s", i ? ", " : "", words[i].name);
    }
    fail(ps, st->line, "%s: unknown value '%s' (one of: %s)", st->argv[0], st->argv[1], choices);
    return false;
}

static const struct keyword LOGIN_TYPES[] = {
    {"plaintext-login", LOGIN_TYPE_PLAINTEXT_LOGIN},
    {"plaintext-authentication", LOGIN_TYPE_PLAINTEXT_AUTHENTICATION},
    {"secure-login", LOGIN_TYPE_SECURE_LOGIN},
    /* Exchange's own spellings (Set-ImapSettings -LoginType) */
    {"PlainTextLogin", LOGIN_TYPE_PLAINTEXT_LOGIN},
    {"PlainTextAuthentication", LOGIN_TYPE_PLAINTEXT_AUTHENTICATION},
    {"SecureLogin", LOGIN_TYPE_SECURE_LOGIN},
};
static const struct keyword PROTOCOLS[] = {{"imap", PROTOCOL_IMAP}, {"pop3", PROTOCOL_POP3}};
static const struct keyword TLS_MODES[] = {
    {"implicit", TLS_MODE_IMPLICIT}, {"starttls", TLS_MODE_STARTTLS}, {"none", TLS_MODE_NONE}};
static const struct keyword LOG_TARGETS[] = {{"stderr", LOG_TARGET_STDERR},
                                             {"syslog", LOG_TARGET_SYSLOG}};
static const struct keyword LOG_LEVELS[] = {{"error", LOG_LEVEL_ERROR},
                                            {"warning", LOG_LEVEL_WARNING},
                                            {"info", LOG_LEVEL_INFO},
                                            {"debug", LOG_LEVEL_DEBUG}};

#define KEYWORD(ps, st, table, field)                                                              \
    ({                                                                                             \
        int v_;                                                                                    \
        bool ok_ = parse_keyword(ps, st, table, ARRAY_LEN(table), &v_);                            \
        if (ok_)                                                                                   \
            (field) = v_;                                                                          \
        ok_;                                                                                       \
    })

/* ---- blocks ----------------------------------------------------------------------------- */

static bool is(const struct statement *st, const char *name)
{
    return ascii_casecmp(st->argv[0], name) == 0;
}

static bool parse_bool(struct parser *ps, const struct statement *st, bool *out)
{
    static const struct keyword BOOLS[] = {{"yes", 1},   {"no", 0}, {"true", 1},
                                           {"false", 0}, {"on", 1}, {"off", 0}};
    int v;
    if (!parse_keyword(ps, st, BOOLS, ARRAY_LEN(BOOLS), &v))
        return false;
    *out = v != 0;
    return true;
}

/* An LDAP filter (RFC 4515) as written by an administrator: one parenthesised expression with
 * balanced parentheses; the directory judges the rest (a filter it refuses fails logins closed
 * and is logged). */
static bool parse_filter(struct parser *ps, const struct statement *st, char **out)
{
    if (!parse_string(ps, st, out))
        return false;
    const char *f = *out;
    int depth = 0;
    bool balanced = f[0] == '(';
    for (size_t i = 0; f[i] != '\0' && balanced; i++) {
        if (f[i] == '(') {
            depth++;
        } else if (f[i] == ')') {
            /* the outermost expression must end the filter */
            depth--;
            balanced = depth > 0 || (depth == 0 && f[i + 1] == '\0');
        } else {
            balanced = (unsigned char)f[i] >= 0x20;
        }
    }
    if (!balanced || depth != 0) {
        fail(ps, st->line, "%s: '%s' is not an LDAP filter like (attribute=value)", st->argv[0], f);
        return false;
    }
    return true;
}

static void protocol_directive(struct parser *ps, const struct statement *st,
                               struct protocol_settings *p, enum protocol proto)
{
    if (is(st, "LoginType")) {
        KEYWORD(ps, st, LOGIN_TYPES, p->login_type);
        p->login_type_line = st->line;
    } else if (is(st, "Banner"))
        parse_banner(ps, st, &p->banner);
    else if (is(st, "MaxCommandSize"))
        parse_number(ps, st, SIZE, proto == PROTOCOL_POP3 ? 40 : 1024, 1024UL * 1024,
                     &p->max_command_size);
    else if (is(st, "MaxLiteralSize") && proto == PROTOCOL_IMAP)
        parse_number(ps, st, SIZE, 1, 64UL * 1024 * 1024, &p->max_literal_size);
    else if (is(st, "MaxMessageSize") && proto == PROTOCOL_IMAP)
        parse_number(ps, st, SIZE, 1024, 2048UL * 1024 * 1024, &p->max_message_size);
    else if (is(st, "MaxBadCommands"))
        parse_number(ps, st, COUNT, 1, 1000, &p->max_bad_commands);
    else if (is(st, "PreAuthenticatedConnectionTimeout"))
        parse_number(ps, st, DURATION, 1, 3600, &p->preauth_timeout);
    else if (is(st, "AuthenticatedConnectionTimeout"))
        parse_number(ps, st, DURATION, 1, 86400, &p->auth_timeout);
    else if (is(st, "MaxConnectionsPerUser"))
        parse_number(ps, st, COUNT, 1, 100000, &p->max_connections_per_user);
    else if (is(st, "AccountFilter"))
        parse_filter(ps, st, &p->account_filter);
    else if (is(st, "AllowGroup")) {
        if (!want_args(ps, st, 1))
            return;
        if (st->argv[1][0] == '\0' || strchr(st->argv[1], '=') == NULL) {
            fail(ps, st->line, "AllowGroup: '%s' is not a distinguished name", st->argv[1]);
            return;
        }
        p->allow_groups = xrealloc(p->allow_groups, (p->n_allow_groups + 1) * sizeof(char *));
        p->allow_groups[p->n_allow_groups++] = xstrdup(st->argv[1]);
    } else
        fail(ps, st->line, "unknown directive '%s' in %s block", st->argv[0], protocol_name(proto));
}

static void listener_directive(struct parser *ps, const struct statement *st,
                               struct listener_config *l, bool *have_protocol)
{
    if (is(st, "Protocol")) {
        if (KEYWORD(ps, st, PROTOCOLS, l->protocol))
            *have_protocol = true;
    } else if (is(st, "Address")) {
        struct ip_addr a;
        l->address_line = st->line;
        if (!parse_string(ps, st, &l->address))
            return;
        if (strcmp(l->address, "*") != 0 && !addr_parse(l->address, &a))
            fail(ps, st->line, "Address: '%s' is not an IPv4 or IPv6 address (or *)", l->address);
    } else if (is(st, "Port")) {
        parse_number(ps, st, COUNT, 1, 65535, &l->port);
    } else if (is(st, "TLS")) {
        KEYWORD(ps, st, TLS_MODES, l->tls);
        l->tls_line = st->line;
    } else if (is(st, "AllowedClients")) {
        if (st->argc < 2) {
            fail(ps, st->line, "AllowedClients takes one or more networks");
            return;
        }
        size_t n = l->allowed_clients.n;
        l->allowed_clients.v =
            xrealloc(l->allowed_clients.v, (n + st->argc - 1) * sizeof(struct cidr));
        for (size_t i = 1; i < st->argc; i++) {
            if (!cidr_parse(st->argv[i], &l->allowed_clients.v[n])) {
                fail(ps, st->line, "AllowedClients: '%s' is not an address or network",
                     st->argv[i]);
                return;
            }
            l->allowed_clients.n = ++n;
        }
    } else if (is(st, "MaxConnections")) {
        parse_number(ps, st, COUNT, 1, 1000000, &l->max_connections);
    } else if (is(st, "MaxConnectionFromSingleIP")) {
        parse_number(ps, st, COUNT, 1, 1000000, &l->max_connections_per_ip);
    } else {
        fail(ps, st->line, "unknown directive '%s' in listener block", st->argv[0]);
    }
}

/* "%k" or "%1k".."%9k" somewhere in a MailboxRoot template: without the key, every account
 * would share one store. */
static bool has_key_placeholder(const char *t)
{
    for (const char *p = strchr(t, '%'); p != NULL; p = strchr(p + 1, '%')) {
        if (p[1] == '%') {
            p++;
            continue;
        }
        if (p[1] == 'k' || (p[1] >= '1' && p[1] <= '9' && p[2] == 'k'))
            return true;
    }
    return false;
}

/* A path, or "none" for no control socket. sun_path holds 107 bytes and a NUL. */
static void parse_control_socket(struct parser *ps, const struct statement *st, struct config *c)
{
    if (!parse_string(ps, st, &c->control_socket))
        return;
    if (strcmp(c->control_socket, "none") == 0) {
        free(c->control_socket);
        c->control_socket = NULL;
    } else if (strlen(c->control_socket) > 107) {
        fail(ps, st->line, "ControlSocket: a socket path has at most 107 bytes");
    }
}

static void global_directive(struct parser *ps, const struct statement *st, struct config *c)
{
    if (is(st, "User"))
        parse_string(ps, st, &c->user);
    else if (is(st, "LogTarget"))
        KEYWORD(ps, st, LOG_TARGETS, c->log_target);
    else if (is(st, "LogLevel"))
        KEYWORD(ps, st, LOG_LEVELS, c->log_level);
    else if (is(st, "PidFile"))
        parse_string(ps, st, &c->pid_file);
    else if (is(st, "ControlSocket"))
        parse_control_socket(ps, st, c);
    else if (is(st, "AuditLog"))
        parse_string(ps, st, &c->audit_log);
    else if (is(st, "AuditSyslog"))
        parse_bool(ps, st, &c->audit_syslog);
    else if (is(st, "IOThreads"))
        parse_number(ps, st, COUNT, 0, 256, &c->io_threads);
    else if (is(st, "WorkerThreads"))
        parse_number(ps, st, COUNT, 1, 1024, &c->worker_threads);
    else if (is(st, "WorkerQueue"))
        parse_number(ps, st, COUNT, 1, 1000000, &c->worker_queue);
    else if (is(st, "StoreThreads"))
        parse_number(ps, st, COUNT, 1, 1024, &c->store_threads);
    else if (is(st, "MailboxRoot")) {
        if (parse_string(ps, st, &c->mailbox_root) &&
            (c->mailbox_root[0] != '/' || !has_key_placeholder(c->mailbox_root)))
            fail(ps, st->line,
                 "MailboxRoot: '%s' must be an absolute path with %%k (the account's key)",
                 c->mailbox_root);
    } else if (is(st, "MaxConnections"))
        parse_number(ps, st, COUNT, 1, 1000000, &c->max_connections);
    else if (is(st, "MaxConnectionFromSingleIP"))
        parse_number(ps, st, COUNT, 1, 1000000, &c->max_connections_per_ip);
    else if (is(st, "TLSCertificateFile")) {
        parse_string(ps, st, &c->tls_certificate);
        c->tls_certificate_line = st->line;
    } else if (is(st, "TLSKeyFile")) {
        parse_string(ps, st, &c->tls_key);
        c->tls_key_line = st->line;
    } else if (is(st, "TLSChainFile")) {
        parse_string(ps, st, &c->tls_chain);
        c->tls_chain_line = st->line;
    } else if (is(st, "TLSPriority")) {
        parse_string(ps, st, &c->tls_priority);
        c->tls_priority_line = st->line;
    } else if (is(st, "TLSHandshakeTimeout"))
        parse_number(ps, st, DURATION, 1, 600, &c->tls_handshake_timeout);
    else
        fail(ps, st->line, "unknown directive '%s'", st->argv[0]);
}

/* Appends every value of the statement to a string list. */
static void parse_list(struct parser *ps, const struct statement *st, char ***list, size_t *n)
{
    if (st->argc < 2) {
        fail(ps, st->line, "%s takes one or more values", st->argv[0]);
        return;
    }
    *list = xrealloc(*list, (*n + st->argc - 1) * sizeof(char *));
    for (size_t i = 1; i < st->argc; i++)
        (*list)[(*n)++] = xstrdup(st->argv[i]);
}

static const struct keyword DIRECTORY_TLS[] = {{"starttls", DIRECTORY_TLS_STARTTLS},
                                               {"none", DIRECTORY_TLS_NONE}};

static void directory_directive(struct parser *ps, const struct statement *st, void *target)
{
    struct directory_settings *d = target;
    struct directory_config *dc = &d->client;
    if (is(st, "URI")) {
        parse_list(ps, st, &dc->uris, &dc->n_uris);
        for (size_t i = 0; i < dc->n_uris && !ps->failed; i++)
            if (strncmp(dc->uris[i], "ldap://", 7) != 0 && strncmp(dc->uris[i], "ldaps://", 8) != 0)
                fail(ps, st->line, "URI: '%s' is not an ldap:// or ldaps:// URI", dc->uris[i]);
    } else if (is(st, "BaseDN")) {
        parse_string(ps, st, &dc->base_dn);
    } else if (is(st, "BindDN")) {
        parse_string(ps, st, &dc->bind_dn);
    } else if (is(st, "BindPasswordFile")) {
        parse_string(ps, st, &dc->bind_password_file);
    } else if (is(st, "BindKeytab")) {
        parse_string(ps, st, &dc->keytab);
        d->keytab_line = st->line;
    } else if (is(st, "BindPrincipal")) {
        parse_string(ps, st, &dc->bind_principal);
    } else if (is(st, "TLS")) {
        KEYWORD(ps, st, DIRECTORY_TLS, dc->tls);
        d->tls_line = st->line;
    } else if (is(st, "CAFile")) {
        parse_string(ps, st, &dc->ca_file);
    } else if (is(st, "VerifyCertificate")) {
        parse_bool(ps, st, &dc->verify_certificate);
        d->verify_line = st->line;
    } else if (is(st, "NetworkTimeout")) {
        parse_number(ps, st, DURATION, 1, 300, &dc->network_timeout);
    } else if (is(st, "OperationTimeout")) {
        parse_number(ps, st, DURATION, 1, 300, &dc->operation_timeout);
    } else if (is(st, "PoolSize")) {
        parse_number(ps, st, COUNT, 1, 256, &dc->pool_size);
    } else if (is(st, "Domain")) {
        parse_string(ps, st, &d->domain);
    } else if (is(st, "NetBIOSDomain")) {
        parse_string(ps, st, &d->netbios);
    } else if (is(st, "UPNSuffix")) {
        parse_list(ps, st, &d->upn_suffixes, &d->n_upn_suffixes);
    } else {
        fail(ps, st->line, "unknown directive '%s' in directory block", st->argv[0]);
    }
}

static void kerberos_directive(struct parser *ps, const struct statement *st, void *target)
{
    struct kerberos_settings *k = target;
    if (is(st, "Keytab")) {
        parse_string(ps, st, &k->keytab);
        k->keytab_line = st->line;
    } else if (is(st, "HostName")) {
        parse_list(ps, st, &k->host_names, &k->n_host_names);
    } else if (is(st, "Realm")) {
        parse_list(ps, st, &k->realms, &k->n_realms);
    } else if (is(st, "ExtendedProtection")) {
        static const struct keyword POLICIES[] = {{"none", EXTENDED_PROTECTION_NONE},
                                                  {"allow", EXTENDED_PROTECTION_ALLOW},
                                                  {"require", EXTENDED_PROTECTION_REQUIRE}};
        KEYWORD(ps, st, POLICIES, k->extended_protection);
    } else {
        fail(ps, st->line, "unknown directive '%s' in kerberos block", st->argv[0]);
    }
}

static void ntlm_directive(struct parser *ps, const struct statement *st, void *target)
{
    struct ntlm_settings *n = target;
    if (is(st, "Helper")) {
        if (parse_string(ps, st, &n->helper) && n->helper[0] != '/')
            fail(ps, st->line, "Helper: '%s' is not an absolute path", n->helper);
    } else if (is(st, "HelperOption")) {
        parse_list(ps, st, &n->helper_options, &n->n_helper_options);
    } else if (is(st, "Helpers")) {
        parse_number(ps, st, COUNT, 1, 256, &n->max_helpers);
    } else if (is(st, "HelperTimeout")) {
        parse_number(ps, st, DURATION, 1, 120, &n->helper_timeout);
    } else if (is(st, "NTHashAttribute")) {
        if (parse_string(ps, st, &n->nt_hash_attribute))
            for (const char *a = n->nt_hash_attribute; *a; a++)
                if (!(isalnum((unsigned char)*a) || *a == '-' || *a == ';')) {
                    fail(ps, st->line, "NTHashAttribute: '%s' is not an attribute name",
                         n->nt_hash_attribute);
                    break;
                }
    } else {
        fail(ps, st->line, "unknown directive '%s' in ntlm block", st->argv[0]);
    }
}

static const struct keyword FORM_RULES[] = {
    {"refuse", FORM_REFUSED}, {"allow", FORM_ALLOWED}, {"if-alias-is-name", FORM_IF_ALIAS_IS_NAME}};

static void logins_directive(struct parser *ps, const struct statement *st, void *target)
{
    struct login_settings *l = target;
    if (is(st, "Profile")) {
        l->profile_line = st->line;
        if (want_args(ps, st, 1) && !login_profile_from_name(st->argv[1], &l->rules.profile))
            fail(ps, st->line,
                 "Profile: unknown profile '%s' (exchange2003, exchange2007 or "
                 "exchange2013)",
                 st->argv[1]);
    } else if (is(st, "Form")) {
        /* Form FORM RULE: one cell of the profile's table, switched on or off. */
        enum login_form f;
        if (st->argc != 3) {
            fail(ps, st->line,
                 "Form takes a login form and a rule (allow, refuse, "
                 "if-alias-is-name)");
        } else if (!login_form_from_name(st->argv[1], &f)) {
            fail(ps, st->line,
                 "Form: unknown login form '%s' (name, domain-name, "
                 "domain-name-alias, upn, primary-smtp, proxy-address)",
                 st->argv[1]);
        } else {
            struct statement rule = {
                .line = st->line, .argc = 2, .argv = {st->argv[0], st->argv[2]}};
            int v;
            if (parse_keyword(ps, &rule, FORM_RULES, ARRAY_LEN(FORM_RULES), &v)) {
                l->rules.override[f] = v;
                l->form_line[f] = st->line;
            }
        }
    } else if (is(st, "DelegateAttribute")) {
        if (parse_string(ps, st, &l->delegate_attribute)) {
            for (const char *a = l->delegate_attribute; *a; a++)
                if (!(isalnum((unsigned char)*a) || *a == '-' || *a == ';')) {
                    fail(ps, st->line, "DelegateAttribute: '%s' is not an attribute name",
                         l->delegate_attribute);
                    break;
                }
        }
    } else if (is(st, "BlockPrivilegedAccounts")) {
        parse_bool(ps, st, &l->block_privileged);
    } else if (is(st, "PenaltyAfter")) {
        parse_number(ps, st, COUNT, 0, 1000, &l->penalty_after);
    } else if (is(st, "PenaltyMax")) {
        unsigned seconds;
        if (parse_number(ps, st, DURATION, 1, 86400, &seconds))
            l->penalty_max_ms = seconds * 1000u;
    } else if (is(st, "MaxAuthFailures")) {
        parse_number(ps, st, COUNT, 1, 100, &l->max_auth_failures);
    } else if (is(st, "FailureDelay")) {
        unsigned seconds;
        if (parse_number(ps, st, DURATION, 0, 30, &seconds))
            l->failure_delay_ms = seconds * 1000u;
    } else {
        fail(ps, st->line, "unknown directive '%s' in logins block", st->argv[0]);
    }
}

struct protocol_target {
    struct protocol_settings *settings;
    enum protocol proto;
};

static void protocol_block_directive(struct parser *ps, const struct statement *st, void *target)
{
    struct protocol_target *t = target;
    protocol_directive(ps, st, t->settings, t->proto);
}

struct listener_target {
    struct listener_config *l;
    bool have_protocol;
};

static void listener_block_directive(struct parser *ps, const struct statement *st, void *target)
{
    struct listener_target *t = target;
    listener_directive(ps, st, t->l, &t->have_protocol);
}

/* Parse the lines of a block until its closing brace, each with `directive`. */
static void parse_block(struct parser *ps, struct statement *st,
                        void (*directive)(struct parser *, const struct statement *, void *),
                        void *target, int open_line)
{
    for (;;) {
        if (!next_statement(ps, st)) {
            fail(ps, open_line, "block opened here is never closed");
            return;
        }
        if (st->closes_block)
            return;
        if (st->opens_block) {
            fail(ps, st->line, "blocks cannot be nested");
            return;
        }
        directive(ps, st, target);
        if (ps->failed)
            return;
    }
}

static void validate(struct parser *ps, struct config *c, int last_line)
{
    struct directory_settings *d = &c->directory;
    /* Without URIs, the domain controllers of Domain are found in DNS. */
    if (d->configured && d->client.n_uris == 0 && d->domain != NULL &&
        d->client.discover_domain == NULL)
        d->client.discover_domain = xstrdup(d->domain);
    if (d->configured && d->client.n_uris == 0 && d->client.discover_domain == NULL)
        fail(ps, d->line,
             "the directory block needs at least one URI, or a Domain whose "
             "domain controllers DNS SRV records name");
    else if (d->configured && d->client.base_dn == NULL)
        fail(ps, d->line, "the directory block needs a BaseDN");
    else if (d->configured && (d->client.bind_dn == NULL) != (d->client.bind_password_file == NULL))
        fail(ps, d->line, "BindDN and BindPasswordFile go together");
    else if (d->configured && d->client.keytab != NULL && d->client.bind_dn != NULL)
        fail(ps, d->line, "BindKeytab (SASL GSSAPI) and BindDN (simple bind) exclude each other");
    else if (d->configured && d->client.bind_principal != NULL && d->client.keytab == NULL)
        fail(ps, d->line, "BindPrincipal needs BindKeytab");
    if (!ps->failed && c->kerberos.configured && c->kerberos.keytab == NULL)
        fail(ps, c->kerberos.line, "the kerberos block needs a Keytab");
    else if (!ps->failed && c->kerberos.configured && !d->configured)
        fail(ps, c->kerberos.line,
             "the kerberos block needs a directory block (principals name accounts there)");
    else if (!ps->failed && c->ntlm.configured && !d->configured)
        fail(ps, c->ntlm.line,
             "the ntlm block needs a directory block (NTLM identities name accounts there)");
    if (ps->failed)
        return;
    if (c->n_listeners == 0) {
        fail(ps, last_line, "no listener is configured");
        return;
    }
    for (size_t i = 0; i < c->n_listeners && !ps->failed; i++) {
        struct listener_config *l = &c->listeners[i];
        if (l->port == 0)
            fail(ps, l->line, "listener %s has no Port", l->name);
        else if (l->address == NULL)
            fail(ps, l->line, "listener %s has no Address", l->name);
        else if (l->tls != TLS_MODE_NONE && (!c->tls_certificate || !c->tls_key))
            fail(ps, l->line,
                 "listener %s uses TLS but TLSCertificateFile and TLSKeyFile are not set", l->name);
        for (size_t j = 0; j < i && !ps->failed; j++) {
            struct listener_config *o = &c->listeners[j];
            if (ascii_casecmp(o->name, l->name) == 0)
                fail(ps, l->line, "listener %s is declared twice (first at line %d)", l->name,
                     o->line);
            else if (o->port == l->port && o->address && l->address &&
                     strcmp(o->address, l->address) == 0)
                fail(ps, l->line, "listener %s uses %s port %u like listener %s", l->name,
                     l->address, l->port, o->name);
        }
    }
}

struct config *config_parse(const char *path, const char *text, size_t len, char *err,
                            size_t errlen)
{
    struct parser ps = {
        .path = path, .p = text, .end = text + len, .line = 1, .err = err, .errlen = errlen};
    struct config *c = xcalloc(1, sizeof(*c));
    atomic_init(&c->refs, 1);
    c->path = xstrdup(path);
    c->log_target = LOG_TARGET_STDERR;
    c->log_level = LOG_LEVEL_INFO;
    c->worker_threads = 8;
    c->worker_queue = 10000;
    c->store_threads = 8;
    c->max_connections = 10000;
    c->max_connections_per_ip = 100;
    c->tls_priority = xstrdup(DEFAULT_TLS_PRIORITY);
    c->tls_handshake_timeout = 10;
    c->control_socket = xstrdup(CONFIG_DEFAULT_CONTROL_SOCKET);
    protocol_defaults(&c->imap, PROTOCOL_IMAP);
    protocol_defaults(&c->pop3, PROTOCOL_POP3);
    c->directory.client.tls = DIRECTORY_TLS_STARTTLS;
    c->directory.client.verify_certificate = true;
    c->directory.client.network_timeout = 5;
    c->directory.client.operation_timeout = 10;
    c->directory.client.pool_size = 4;
    c->logins.rules.profile = PROFILE_EXCHANGE2013;
    for (int f = 0; f < LOGIN_FORM_COUNT; f++)
        c->logins.rules.override[f] = -1;
    c->logins.failure_delay_ms = 2000;
    c->logins.max_auth_failures = 3;
    c->logins.penalty_after = 5;
    c->logins.penalty_max_ms = 15 * 60 * 1000;
    c->kerberos.extended_protection = EXTENDED_PROTECTION_ALLOW;
    c->ntlm.helper = xstrdup("/usr/bin/ntlm_auth");
    c->ntlm.max_helpers = 16;
    c->ntlm.helper_timeout = 10;
    if (err && errlen)
        err[0] = '\0';

    struct statement st = {0};
    while (next_statement(&ps, &st)) {
        if (st.closes_block) {
            fail(&ps, st.line, "'}' without an open block");
            break;
        }
        if (!st.opens_block) {
            global_directive(&ps, &st, c);
        } else if (is(&st, "imap") || is(&st, "pop3")) {
            if (st.argc != 1) {
                fail(&ps, st.line, "the %s block takes no name", st.argv[0]);
                break;
            }
            enum protocol proto = is(&st, "imap") ? PROTOCOL_IMAP : PROTOCOL_POP3;
            struct protocol_target t = {proto == PROTOCOL_IMAP ? &c->imap : &c->pop3, proto};
            parse_block(&ps, &st, protocol_block_directive, &t, st.line);
        } else if (is(&st, "kerberos") || is(&st, "ntlm")) {
            bool krb = is(&st, "kerberos");
            bool *configured = krb ? &c->kerberos.configured : &c->ntlm.configured;
            int *line = krb ? &c->kerberos.line : &c->ntlm.line;
            if (st.argc != 1) {
                fail(&ps, st.line, "the %s block takes no name", st.argv[0]);
                break;
            }
            if (*configured) {
                fail(&ps, st.line, "the %s block is declared twice (first at line %d)", st.argv[0],
                     *line);
                break;
            }
            *configured = true;
            *line = st.line;
            if (krb)
                parse_block(&ps, &st, kerberos_directive, &c->kerberos, st.line);
            else
                parse_block(&ps, &st, ntlm_directive, &c->ntlm, st.line);
        } else if (is(&st, "directory") || is(&st, "logins")) {
            if (st.argc != 1) {
                fail(&ps, st.line, "the %s block takes no name", st.argv[0]);
                break;
            }
            if (is(&st, "directory")) {
                if (c->directory.configured) {
                    fail(&ps, st.line, "the directory block is declared twice (first at line %d)",
                         c->directory.line);
                    break;
                }
                c->directory.configured = true;
                c->directory.line = st.line;
                parse_block(&ps, &st, directory_directive, &c->directory, st.line);
            } else {
                parse_block(&ps, &st, logins_directive, &c->logins, st.line);
            }
        } else if (is(&st, "listener")) {
            if (st.argc != 2) {
                fail(&ps, st.line, "a listener block needs one name: listener NAME {");
                break;
            }
            c->listeners = xrealloc(c->listeners, (c->n_listeners + 1) * sizeof(*c->listeners));
            struct listener_config *l = &c->listeners[c->n_listeners++];
            memset(l, 0, sizeof(*l));
            l->name = xstrdup(st.argv[1]);
            l->line = st.line;
            l->tls = TLS_MODE_NONE;
            struct listener_target t = {l, false};
            parse_block(&ps, &st, listener_block_directive, &t, l->line);
            if (!ps.failed && !t.have_protocol)
                fail(&ps, l->line, "listener %s has no Protocol (imap or pop3)", l->name);
        } else {
            fail(&ps, st.line,
                 "unknown block '%s' (imap, pop3, directory, logins, kerberos, ntlm or "
                 "listener)",
                 st.argv[0]);
        }
        if (ps.failed)
            break;
    }
    statement_clear(&st);
    if (!ps.failed)
        validate(&ps, c, ps.line);
    if (ps.failed) {
        config_unref(c);
        return NULL;
    }
    if (c->worker_queue < c->worker_threads)
        c->worker_queue = c->worker_threads;
    return c;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > 4L * 1024 * 1024) {
        snprintf(err, errlen, "%s: not a regular file of at most 4 MiB", path);
        close(fd);
        return NULL;
    }
    size_t len = (size_t)sb.st_size, got = 0;
    char *text = xmalloc(len + 1);
    while (got < len) {
        ssize_t r = read(fd, text + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, errlen, "%s: read failed: %s", path, r < 0 ? strerror(errno) : "short");
            free(text);
            close(fd);
            return NULL;
        }
        got += (size_t)r;
    }
    close(fd);
    struct config *c = config_parse(path, text, len, err, errlen);
    free(text);
    if (c) {
        /* Relative file names are relative to the configuration file, so that they mean the
         * same at start-up, after the daemon's chdir("/") and on reload. */
        const char *slash = strrchr(path, '/');
        size_t dirlen = slash ? (size_t)(slash - path) : 0;
        char **files[] = {&c->tls_certificate,
                          &c->tls_key,
                          &c->tls_chain,
                          &c->audit_log,
                          &c->pid_file,
                          &c->control_socket,
                          &c->directory.client.bind_password_file,
                          &c->directory.client.keytab,
                          &c->directory.client.ca_file,
                          &c->kerberos.keytab};
        for (size_t i = 0; i < ARRAY_LEN(files); i++) {
            char *f = *files[i];
            if (f == NULL || f[0] == '/' || dirlen == 0)
                continue;
            size_t n = dirlen + 1 + strlen(f) + 1;
            char *abs = xmalloc(n);
            snprintf(abs, n, "%.*s/%s", (int)dirlen, path, f);
            free(f);
            *files[i] = abs;
        }
    }
    return c;
}

struct config *config_ref(struct config *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void protocol_free(struct protocol_settings *p)
{
    free(p->banner);
    free(p->account_filter);
    free_list(p->allow_groups, p->n_allow_groups);
}

static void directory_settings_free(struct directory_settings *d)
{
    free_list(d->client.uris, d->client.n_uris);
    free(d->client.discover_domain);
    free(d->client.base_dn);
    free(d->client.bind_dn);
    free(d->client.bind_password_file);
    free(d->client.keytab);
    free(d->client.bind_principal);
    free(d->client.ca_file);
    free(d->domain);
    free(d->netbios);
    free_list(d->upn_suffixes, d->n_upn_suffixes);
}

void config_unref(struct config *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    for (size_t i = 0; i < c->n_listeners; i++) {
        free(c->listeners[i].name);
        free(c->listeners[i].address);
        free(c->listeners[i].allowed_clients.v);
    }
    free(c->listeners);
    protocol_free(&c->imap);
    protocol_free(&c->pop3);
    directory_settings_free(&c->directory);
    free(c->logins.delegate_attribute);
    free(c->kerberos.keytab);
    free_list(c->kerberos.host_names, c->kerberos.n_host_names);
    free_list(c->kerberos.realms, c->kerberos.n_realms);
    free(c->ntlm.helper);
    free(c->ntlm.nt_hash_attribute);
    free_list(c->ntlm.helper_options, c->ntlm.n_helper_options);
    free(c->path);
    free(c->user);
    free(c->pid_file);
    free(c->control_socket);
    free(c->audit_log);
    free(c->mailbox_root);
    free(c->tls_certificate);
    free(c->tls_key);
    free(c->tls_chain);
    free(c->tls_priority);
    free(c);
}

const struct protocol_settings *config_protocol(const struct config *c, enum protocol p)
{
    return p == PROTOCOL_IMAP ? &c->imap : &c->pop3;
}

const char *protocol_name(enum protocol p)
{
    return p == PROTOCOL_IMAP ? "imap" : "pop3";
}

const char *tls_mode_name(enum tls_mode m)
{
    return m == TLS_MODE_IMPLICIT ? "implicit" : m == TLS_MODE_STARTTLS ? "starttls" : "none";
}

const char *login_type_name(enum login_type t)
{
    return t == LOGIN_TYPE_PLAINTEXT_LOGIN            ? "plaintext-login"
           : t == LOGIN_TYPE_PLAINTEXT_AUTHENTICATION ? "plaintext-authentication"
                                                      : "secure-login";
}
