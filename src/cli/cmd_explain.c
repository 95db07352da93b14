/* posternctl explain and test-login: the server's own pipeline on one login, step by step.
 * explain stops where the password would be checked; test-login checks it (one audit record,
 * marked as a test). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "postern/audit.h"
#include "postern/auth.h"
#include "postern/login.h"
#include "postern/util.h"

struct step {
    char *rule, *verdict, *detail;
};

struct recorder {
    struct auth_trace trace;
    struct step *steps;
    size_t n, cap;
};

static void record(struct auth_trace *t, const char *rule, const char *verdict, const char *detail)
{
    struct recorder *r = (struct recorder *)t;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->steps = xrealloc(r->steps, r->cap * sizeof(*r->steps));
    }
    r->steps[r->n++] = (struct step){xstrdup(rule), xstrdup(verdict), xstrdup(detail)};
}

static void recorder_free(struct recorder *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->steps[i].rule);
        free(r->steps[i].verdict);
        free(r->steps[i].detail);
    }
    free(r->steps);
}

struct request {
    const char *login;
    enum protocol protocol;
    bool tls;
    const char *mech;
    bool json;
};

static int parse_args(struct cli *cli, struct request *q)
{
    *q = (struct request){.protocol = PROTOCOL_IMAP, .tls = true};
    for (int i = 1; i < cli->argc; i++) {
        const char *a = cli->argv[i];
        const char *v = i + 1 < cli->argc ? cli->argv[i + 1] : NULL;
        if (a == NULL)
            break;
        if (strcmp(a, "--tls") == 0) {
            q->tls = true;
        } else if (strcmp(a, "--no-tls") == 0) {
            q->tls = false;
        } else if (strcmp(a, "--protocol") == 0 && v) {
            if (strcmp(v, "imap") == 0)
                q->protocol = PROTOCOL_IMAP;
            else if (strcmp(v, "pop3") == 0)
                q->protocol = PROTOCOL_POP3;
            else {
                cli_error(cli, "--protocol: imap or pop3, not '%s'", v);
                return CLI_USAGE;
            }
            i++;
        } else if (strcmp(a, "--mech") == 0 && v) {
            q->mech = v;
            i++;
        } else if (strcmp(a, "--profile") == 0 && v) {
            enum login_profile p;
            if (!login_profile_from_name(v, &p)) {
                cli_error(cli, "--profile: exchange2003, exchange2007 or exchange2013, not '%s'",
                          v);
                return CLI_USAGE;
            }
            cli->config->logins.rules.profile = p;
            i++;
        } else if (strcmp(a, "--format") == 0 && v) {
            q->json = strcmp(v, "json") == 0;
            if (!q->json && strcmp(v, "text") != 0) {
                cli_error(cli, "--format: text or json, not '%s'", v);
                return CLI_USAGE;
            }
            i++;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error(cli, "unknown option '%s'", a);
            return CLI_USAGE;
        } else if (q->login == NULL) {
            q->login = a;
        } else {
            cli_error(cli, "one login name only");
            return CLI_USAGE;
        }
    }
    if (q->login == NULL) {
        cli_error(cli, "which login? e.g. posternctl %s 'EXAMPLE\\jdoe'", cli->argv[0]);
        return CLI_USAGE;
    }
    return CLI_OK;
}

static void json_string(const char *s)
{
    char buf[4096];
    if (s == NULL) {
        fputs("null", stdout);
        return;
    }
    audit_json_escape(buf, sizeof(buf), s, strlen(s));
    printf("\"%s\"", buf);
}

/* What the server would answer, in words. */
static const char *decision(const struct auth_result *r, bool verified)
{
    if (r->allow)
        return "allow";
    if (r->reason == AUTH_REASON_NONE && !verified)
        return "verify-password";
    return "refuse";
}

/* Display width of UTF-8 text: every byte that does not continue a character. */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

static void column(const char *s, size_t w)
{
    fputs(s, stdout);
    for (size_t i = width(s); i < w; i++)
        putchar(' ');
}

static void print_text(const struct cli *cli, const struct request *q, const struct recorder *rec,
                       const struct auth_result *r, bool verified)
{
    const struct protocol_settings *ps = config_protocol(cli->config, q->protocol);
    printf("login:     %s\n", q->login);
    printf("protocol:  %s over %s, mechanism %s, LoginType %s\n", protocol_name(q->protocol),
           q->tls ? "TLS" : "a cleartext connection", q->mech ? q->mech : "LOGIN-COMMAND",
           login_type_name(ps->login_type));
    printf("profile:   %s\n\n", login_profile_name(cli->config->logins.rules.profile));
    size_t w = 4;
    for (size_t i = 0; i < rec->n; i++)
        if (width(rec->steps[i].rule) > w)
            w = width(rec->steps[i].rule);
    column("STEP", w + 2);
    printf("%-22s %s\n", "VERDICT", "DETAIL");
    for (size_t i = 0; i < rec->n; i++) {
        column(rec->steps[i].rule, w + 2);
        printf("%-22s %s\n", rec->steps[i].verdict, rec->steps[i].detail);
    }
    printf("\n");
    if (r->account_dn)
        printf("account:   %s (sAMAccountName %s, UPN %s)\n", r->account_dn,
               r->account_name ? r->account_name : "-", r->account_upn ? r->account_upn : "-");
    if (r->mailbox)
        printf("mailbox:   %s\n", r->mailbox);
    const char *d = decision(r, verified);
    if (strcmp(d, "verify-password") == 0)
        printf("decision:  the password would be checked next (a simple bind as the account): "
               "allowed if it is right\n");
    else
        printf("decision:  %s (%s)\n", d, auth_reason_code(r->reason));
}

static void print_json(const struct cli *cli, const struct request *q, const struct recorder *rec,
                       const struct auth_result *r, bool verified)
{
    const struct protocol_settings *ps = config_protocol(cli->config, q->protocol);
    printf("{\"login\":");
    json_string(q->login);
    printf(",\"protocol\":\"%s\",\"tls\":%s,\"mechanism\":", protocol_name(q->protocol),
           q->tls ? "true" : "false");
    json_string(q->mech ? q->mech : "LOGIN-COMMAND");
    printf(",\"login_type\":\"%s\",\"profile\":\"%s\",\"form\":", login_type_name(ps->login_type),
           login_profile_name(cli->config->logins.rules.profile));
    json_string(r->form);
    printf(",\"steps\":[");
    for (size_t i = 0; i < rec->n; i++) {
        printf("%s{\"rule\":", i ? "," : "");
        json_string(rec->steps[i].rule);
        printf(",\"verdict\":");
        json_string(rec->steps[i].verdict);
        printf(",\"detail\":");
        json_string(rec->steps[i].detail);
        printf("}");
    }
    printf("],\"account_dn\":");
    json_string(r->account_dn);
    printf(",\"account\":");
    json_string(r->account_name);
    printf(",\"upn\":");
    json_string(r->account_upn);
    printf(",\"mailbox\":");
    json_string(r->mailbox);
    printf(",\"directory_server\":");
    json_string(r->server);
    printf(",\"decision\":\"%s\",\"reason\":\"%s\"}\n", decision(r, verified),
           auth_reason_code(r->reason));
}

/* The password, never from argv: from the terminal without echo, or one line of stdin. */
static char *read_password(size_t *len)
{
    struct termios saved, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
        fprintf(stderr, "password: ");
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        fputc('\n', stderr);
    }
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    *len = (size_t)n;
    return line;
}

static int run(struct cli *cli, bool verify)
{
    struct request q;
    int st = parse_args(cli, &q);
    if (st != CLI_OK)
        return st;
    char *password = NULL;
    size_t password_len = 0;
    if (verify) {
        password = read_password(&password_len);
        if (password == NULL) {
            cli_error(cli, "no password on the terminal or stdin");
            return CLI_USAGE;
        }
    }
    char err[512] = "";
    struct auth_context *ctx = auth_context_new(cli->config, err, sizeof(err));
    if (ctx == NULL && err[0]) {
        cli_error(cli, "%s", err);
        if (password) {
            wipe(password, password_len);
            free(password);
        }
        return CLI_ERROR;
    }
    const struct protocol_settings *ps = config_protocol(cli->config, q.protocol);
    struct auth_attempt *a = auth_attempt_offline(q.protocol, q.tls, ps->login_type, q.mech,
                                                  q.login, password, password_len);
    if (password) {
        wipe(password, password_len);
        free(password);
    }
    a->test = verify;
    struct recorder rec = {.trace = {.step = record}};
    struct auth_result r;
    auth_decide_offline(ctx, cli->config, a, verify, &rec.trace, &r);
    if (verify) {
        if (!audit_open(cli->config->audit_log, err, sizeof(err)))
            cli_error(cli, "audit log: %s (no record written)", err);
        else
            audit_auth(a, &r);
        audit_close();
    }
    if (q.json)
        print_json(cli, &q, &rec, &r, verify);
    else
        print_text(cli, &q, &rec, &r, verify);
    int status = r.allow || (!verify && r.reason == AUTH_REASON_NONE) ? CLI_OK : CLI_FINDINGS;
    if (r.reason == AUTH_REASON_DIRECTORY_UNAVAILABLE || r.reason == AUTH_REASON_DIRECTORY_ERROR ||
        r.reason == AUTH_REASON_NO_DIRECTORY)
        status = CLI_ERROR;
    auth_result_clear(&r);
    auth_attempt_free(a);
    recorder_free(&rec);
    auth_context_unref(ctx);
    return status;
}

int cli_explain(struct cli *cli)
{
    return run(cli, false);
}

int cli_test_login(struct cli *cli)
{
    return run(cli, true);
}
