/* posternctl audit-directory: every mail-enabled account, judged by the server's own rules --
 * which login forms work for it (under the active profile and the others), whether it is
 * blocked and why, protocol enablement, and findings a security team acts on.
 *
 * Memory is bounded by the number of distinct names, never by the accounts: the directory is
 * read page by page (RFC 2696) in passes. The first pass counts every name a login can use
 * (sAMAccountName, UPN, alias, SMTP addresses) as 64-bit hashes; later passes collect the DNs
 * that match the protocols' rules (as hashes) and finally judge each account as it arrives and
 * print it at once. */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "postern/account_policy.h"
#include "postern/audit.h"
#include "postern/auth.h"
#include "postern/directory.h"
#include "postern/login.h"
#include "postern/resolve.h"
#include "postern/util.h"

#define PAGE_SIZE 500
#define PROGRESS_EVERY 10000
#define MAIL_ENABLED "(&(objectClass=user)(|(mailNickname=*)(mail=*)(proxyAddresses=*)))"
#define IN_CHAIN "1.2.840.113556.1.4.1941"

enum format { FORMAT_TABLE, FORMAT_JSON, FORMAT_CSV };

/* ---- hashed name sets ------------------------------------------------------------------- */

/* FNV-1a over the kind and the ASCII-lower-cased value: directory names compare without case.
 * A collision could only add a false "ambiguous" finding (odds ~n^2/2^64). */
static uint64_t name_hash(char kind, const char *value)
{
    uint64_t h = 1469598103934665603ULL;
    h = (h ^ (unsigned char)kind) * 1099511628211ULL;
    for (const char *p = value; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * 1099511628211ULL;
    }
    return h ? h : 1; /* 0 is GHashTable's "no key" for direct keys */
}

/* GLib's documented idiom for integer keys in a GHashTable with direct hashing: the 64-bit
 * hash is the pointer value (gsize is 64 bits wherever postern builds). */
static gpointer key_of(uint64_t hash)
{
    return GSIZE_TO_POINTER((gsize)hash); // NOLINT(performance-no-int-to-ptr)
}

static gpointer count_value(gsize n)
{
    return GSIZE_TO_POINTER(n); // NOLINT(performance-no-int-to-ptr)
}

static void count_name(GHashTable *t, char kind, const char *value)
{
    if (value == NULL || *value == '\0')
        return;
    gpointer key = key_of(name_hash(kind, value));
    gsize n = GPOINTER_TO_SIZE(g_hash_table_lookup(t, key));
    g_hash_table_insert(t, key, count_value(n + 1));
}

static unsigned name_count(GHashTable *t, char kind, const char *value)
{
    if (value == NULL || *value == '\0')
        return 0;
    return (unsigned)GPOINTER_TO_SIZE(g_hash_table_lookup(t, key_of(name_hash(kind, value))));
}

/* The SMTP addresses of an account: mail and the smtp:/SMTP: proxyAddresses. */
static const char *smtp_address(const char *proxy)
{
    return ascii_ncasecmp(proxy, "smtp:", 5) == 0 ? proxy + 5 : NULL;
}

static const char *primary_smtp(const struct account *a)
{
    for (size_t i = 0; i < a->n_proxy_addresses; i++)
        if (strncmp(a->proxy_addresses[i], "SMTP:", 5) == 0)
            return a->proxy_addresses[i] + 5;
    return a->mail;
}

/* ---- the audit --------------------------------------------------------------------------- */

enum finding {
    FINDING_ALIAS_NOT_ACCOUNT_NAME,
    FINDING_UPN_NOT_PRIMARY_SMTP,
    FINDING_AMBIGUOUS_NAME,
    FINDING_PRIVILEGED_WITH_MAILBOX,
    FINDING_ONE_PROTOCOL_ONLY,
    FINDING_COUNT
};

static const char *const FINDING_NAMES[FINDING_COUNT] = {
    "alias_not_account_name",  "upn_not_primary_smtp", "ambiguous_name",
    "privileged_with_mailbox", "one_protocol_only",
};

static const char *const FINDING_TEXT[FINDING_COUNT] = {
    "alias differs from sAMAccountName: bare and DOMAIN\\ logins fail",
    "UPN differs from the primary SMTP address (users type their e-mail address)",
    "a name of this account is shared with another account: logins with it fail",
    "a privileged account has a mailbox",
    "can log in over one protocol but is disabled for the other",
};

struct audit {
    struct cli *cli;
    enum format format;
    struct directory *dir;
    struct domain_names names;
    const char *const *privileged;
    size_t n_privileged;
    bool is_ad;
    int64_t now;
    GHashTable *names_seen;     /* name hash -> number of accounts using it */
    GHashTable *privileged_dns; /* DN hashes of (nested) members of privileged groups */
    GHashTable *allowed[2];     /* per protocol: DN hashes its AccountFilter/AllowGroup admit */
    bool have_allowed[2];
    size_t scanned, reported;
    size_t blocked[2], enabled[2], forms_working[LOGIN_FORM_COUNT], findings[FINDING_COUNT];
    size_t no_working_form;
};

static bool count_names_of(struct account *a, void *arg)
{
    struct audit *au = arg;
    count_name(au->names_seen, 's', a->sam_account_name);
    count_name(au->names_seen, 'u', a->upn);
    count_name(au->names_seen, 'n', a->alias);
    /* one count per distinct address per account: mail and SMTP:mail are the same address */
    GHashTable *mine = g_hash_table_new(g_direct_hash, g_direct_equal);
    const char *addrs[1 + 64];
    size_t n = 0;
    if (a->mail)
        addrs[n++] = a->mail;
    for (size_t i = 0; i < a->n_proxy_addresses && n < 65; i++)
        if (smtp_address(a->proxy_addresses[i]))
            addrs[n++] = smtp_address(a->proxy_addresses[i]);
    for (size_t i = 0; i < n; i++) {
        gpointer key = key_of(name_hash('a', addrs[i]));
        if (!g_hash_table_contains(mine, key)) {
            g_hash_table_add(mine, key);
            count_name(au->names_seen, 'a', addrs[i]);
        }
    }
    g_hash_table_destroy(mine);
    account_free(a);
    if (++au->scanned % PROGRESS_EVERY == 0)
        fprintf(stderr, "posternctl audit-directory: counted the names of %zu accounts\n",
                au->scanned);
    return true;
}

static bool collect_dn(struct account *a, void *arg)
{
    g_hash_table_add(arg, key_of(name_hash('d', a->dn)));
    account_free(a);
    return true;
}

static bool dn_in(GHashTable *t, const char *dn)
{
    return g_hash_table_contains(t, key_of(name_hash('d', dn)));
}

/* All accounts matching filter, as DN hashes. */
static bool collect(struct audit *au, const char *filter, GHashTable *into, const char *what)
{
    size_t n = 0;
    enum directory_status st =
        directory_scan_accounts(au->dir, filter, PAGE_SIZE, collect_dn, into, &n, NULL);
    if (st != DIRECTORY_OK) {
        cli_error(au->cli, "%s: the directory search failed (%s)", what, filter);
        return false;
    }
    return true;
}

/* "(|(attr=v1)(attr=v2))" with escaped values. */
static char *any_of(const char *attr, const char *const *values, size_t n)
{
    GString *f = g_string_new("(|");
    for (size_t i = 0; i < n; i++) {
        char *esc = directory_escape_filter_value(values[i], strlen(values[i]));
        g_string_append_printf(f, "(%s=%s)", attr, esc);
        free(esc);
    }
    g_string_append(f, ")");
    return g_string_free(f, FALSE);
}

static bool prepare_protocol_sets(struct audit *au)
{
    const struct config *c = au->cli->config;
    for (int p = 0; p < 2; p++) {
        const struct protocol_settings *ps = config_protocol(c, p ? PROTOCOL_POP3 : PROTOCOL_IMAP);
        if (ps->account_filter == NULL && ps->n_allow_groups == 0)
            continue;
        au->have_allowed[p] = true;
        au->allowed[p] = g_hash_table_new(g_direct_hash, g_direct_equal);
        /* AccountFilter and AllowGroup both apply: the filter AND (any group) */
        GString *f = g_string_new("(&(objectClass=user)");
        if (ps->account_filter)
            g_string_append(f, ps->account_filter);
        if (ps->n_allow_groups) {
            char *groups = any_of(au->is_ad ? "memberOf:" IN_CHAIN ":" : "memberOf",
                                  (const char *const *)ps->allow_groups, ps->n_allow_groups);
            g_string_append(f, groups);
            free(groups);
        }
        g_string_append(f, ")");
        bool ok = collect(au, f->str, au->allowed[p], p ? "pop3 rules" : "imap rules");
        g_string_free(f, TRUE);
        if (!ok)
            return false;
    }
    if (au->is_ad && au->n_privileged > 0) {
        char *f = any_of("memberOf:" IN_CHAIN ":", au->privileged, au->n_privileged);
        GString *full = g_string_new("(&(objectClass=user)");
        g_string_append(full, f);
        g_string_append(full, ")");
        free(f);
        bool ok = collect(au, full->str, au->privileged_dns, "privileged groups");
        g_string_free(full, TRUE);
        if (!ok)
            return false;
    }
    return true;
}

/* Would a login with `form` reach the password check for this account under `rules`? */
static bool form_works(const struct audit *au, const struct login_rules *rules,
                       enum login_form form, const struct account *a, const char **name)
{
    enum form_rule rule = login_rule(rules, form);
    if (rule == FORM_REFUSED)
        return false;
    bool alias_ok =
        rule != FORM_IF_ALIAS_IS_NAME ||
        (a->alias && a->sam_account_name && ascii_casecmp(a->alias, a->sam_account_name) == 0);
    switch (form) {
    case LOGIN_FORM_NAME:
    case LOGIN_FORM_DOMAIN_NAME:
        *name = a->sam_account_name;
        return alias_ok && name_count(au->names_seen, 's', a->sam_account_name) == 1 &&
               (form == LOGIN_FORM_NAME || au->names.netbios || au->names.dns_domain);
    case LOGIN_FORM_DOMAIN_NAME_ALIAS: /* DOMAIN\name\alias with the account's own alias */
        *name = a->alias;
        return a->alias && name_count(au->names_seen, 's', a->sam_account_name) == 1 &&
               name_count(au->names_seen, 'n', a->alias) == 1;
    case LOGIN_FORM_UPN:
        *name = a->upn;
        return a->upn && name_count(au->names_seen, 'u', a->upn) == 1;
    case LOGIN_FORM_PRIMARY_SMTP: {
        const char *p = primary_smtp(a);
        *name = p;
        return p && name_count(au->names_seen, 'u', p) == 0 &&
               name_count(au->names_seen, 'a', p) == 1;
    }
    case LOGIN_FORM_PROXY_ADDRESS: {
        const char *p = primary_smtp(a);
        for (size_t i = 0; i < a->n_proxy_addresses; i++) {
            const char *addr = smtp_address(a->proxy_addresses[i]);
            if (addr && (p == NULL || ascii_casecmp(addr, p) != 0) &&
                name_count(au->names_seen, 'u', addr) == 0 &&
                name_count(au->names_seen, 'a', addr) == 1) {
                *name = addr;
                return true;
            }
        }
        *name = NULL;
        return false;
    }
    default:
        return false;
    }
}

struct verdict {
    bool works[3][LOGIN_FORM_COUNT]; /* per profile */
    const char *example[LOGIN_FORM_COUNT];
    enum auth_reason protocol[2]; /* AUTH_REASON_NONE: may log in */
    bool findings[FINDING_COUNT];
    char ambiguous[256];
};

static void judge(struct audit *au, const struct account *a, struct verdict *v)
{
    memset(v, 0, sizeof(*v));
    const struct config *c = au->cli->config;
    for (int p = 0; p < 3; p++) {
        struct login_rules rules = c->logins.rules;
        rules.profile = (enum login_profile)p;
        for (int f = 0; f < LOGIN_FORM_COUNT; f++) {
            const char *name = NULL;
            v->works[p][f] = form_works(au, &rules, (enum login_form)f, a, &name);
            if ((enum login_profile)p == c->logins.rules.profile)
                v->example[f] = name;
        }
    }
    bool privileged = dn_in(au->privileged_dns, a->dn);
    for (int p = 0; p < 2; p++) {
        enum protocol proto = p ? PROTOCOL_POP3 : PROTOCOL_IMAP;
        v->protocol[p] = account_blocked(a, proto, c->logins.block_privileged, au->privileged,
                                         au->n_privileged, au->now);
        if (v->protocol[p] == AUTH_REASON_NONE && c->logins.block_privileged && privileged)
            v->protocol[p] = AUTH_REASON_PRIVILEGED_ACCOUNT;
        if (v->protocol[p] == AUTH_REASON_NONE && au->have_allowed[p] &&
            !dn_in(au->allowed[p], a->dn)) {
            /* on other directories AllowGroup counts direct memberOf, which the scan saw */
            v->protocol[p] = AUTH_REASON_PROTOCOL_NOT_ALLOWED;
        }
    }
    enum login_profile active = c->logins.rules.profile;
    enum form_rule name_rule = login_rule(&c->logins.rules, LOGIN_FORM_NAME);
    enum form_rule domain_rule = login_rule(&c->logins.rules, LOGIN_FORM_DOMAIN_NAME);
    if (a->alias && a->sam_account_name && ascii_casecmp(a->alias, a->sam_account_name) != 0 &&
        (name_rule == FORM_IF_ALIAS_IS_NAME || domain_rule == FORM_IF_ALIAS_IS_NAME))
        v->findings[FINDING_ALIAS_NOT_ACCOUNT_NAME] = true;
    const char *primary = primary_smtp(a);
    if (a->upn && primary && ascii_casecmp(a->upn, primary) != 0)
        v->findings[FINDING_UPN_NOT_PRIMARY_SMTP] = true;
    struct {
        char kind;
        const char *label, *value;
    } shared[] = {{'s', "sAMAccountName", a->sam_account_name},
                  {'u', "UPN", a->upn},
                  {'n', "alias", a->alias},
                  {'a', "address", primary}};
    size_t o = 0;
    for (size_t i = 0; i < ARRAY_LEN(shared); i++)
        if (name_count(au->names_seen, shared[i].kind, shared[i].value) > 1)
            o += (size_t)snprintf(v->ambiguous + o,
                                  o < sizeof(v->ambiguous) ? sizeof(v->ambiguous) - o : 0,
                                  "%s%s %s", o ? ", " : "", shared[i].label, shared[i].value);
    if (o > 0)
        v->findings[FINDING_AMBIGUOUS_NAME] = true;
    if (privileged || a->admin_count == 1 || a->primary_group_rid == 512 ||
        a->primary_group_rid == 518 || a->primary_group_rid == 519 || (a->has_sid && a->rid == 500))
        v->findings[FINDING_PRIVILEGED_WITH_MAILBOX] = true;
    for (size_t i = 0; i < a->n_member_of; i++)
        for (size_t g = 0; g < au->n_privileged; g++)
            if (ascii_casecmp(a->member_of[i], au->privileged[g]) == 0)
                v->findings[FINDING_PRIVILEGED_WITH_MAILBOX] = true;
    bool any_form = false;
    for (int f = 0; f < LOGIN_FORM_COUNT; f++)
        any_form |= v->works[active][f];
    bool imap = v->protocol[0] == AUTH_REASON_NONE, pop3 = v->protocol[1] == AUTH_REASON_NONE;
    if (any_form && imap != pop3)
        v->findings[FINDING_ONE_PROTOCOL_ONLY] = true;
}

/* ---- output ------------------------------------------------------------------------------ */

static void json_str(const char *s)
{
    char buf[2048];
    if (s == NULL) {
        fputs("null", stdout);
        return;
    }
    audit_json_escape(buf, sizeof(buf), s, strlen(s));
    printf("\"%s\"", buf);
}

static void csv_str(const char *s)
{
    putchar('"');
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '"')
            putchar('"');
        putchar(*p);
    }
    putchar('"');
}

static const char *protocol_text(enum auth_reason r)
{
    return r == AUTH_REASON_NONE ? "yes" : auth_reason_code(r);
}

static void print_account(struct audit *au, const struct account *a, const struct verdict *v)
{
    enum login_profile active = au->cli->config->logins.rules.profile;
    if (au->format == FORMAT_JSON) {
        printf("%s{\"dn\":", au->reported ? ",\n" : "");
        json_str(a->dn);
        printf(",\"account\":");
        json_str(a->sam_account_name);
        printf(",\"upn\":");
        json_str(a->upn);
        printf(",\"alias\":");
        json_str(a->alias);
        printf(",\"primary_smtp\":");
        json_str(primary_smtp(a));
        printf(",\"forms\":{");
        for (int f = 0; f < LOGIN_FORM_COUNT; f++) {
            printf("%s\"%s\":", f ? "," : "", login_form_name((enum login_form)f));
            if (v->works[active][f])
                json_str(v->example[f]);
            else
                fputs("false", stdout);
        }
        printf("},\"profiles\":{");
        for (int p = 0; p < 3; p++) {
            printf("%s\"%s\":[", p ? "," : "", login_profile_name((enum login_profile)p));
            bool first = true;
            for (int f = 0; f < LOGIN_FORM_COUNT; f++)
                if (v->works[p][f]) {
                    printf("%s\"%s\"", first ? "" : ",", login_form_name((enum login_form)f));
                    first = false;
                }
            printf("]");
        }
        printf("},\"imap\":\"%s\",\"pop3\":\"%s\",\"findings\":[", protocol_text(v->protocol[0]),
               protocol_text(v->protocol[1]));
        bool first = true;
        for (int k = 0; k < FINDING_COUNT; k++)
            if (v->findings[k]) {
                printf("%s\"%s\"", first ? "" : ",", FINDING_NAMES[k]);
                first = false;
            }
        printf("]");
        if (v->ambiguous[0]) {
            printf(",\"shared_names\":");
            json_str(v->ambiguous);
        }
        printf("}");
        return;
    }
    GString *forms = g_string_new(NULL), *changes = g_string_new(NULL),
            *findings = g_string_new(NULL);
    for (int f = 0; f < LOGIN_FORM_COUNT; f++)
        if (v->works[active][f])
            g_string_append_printf(forms, "%s%s", forms->len ? " " : "",
                                   login_form_name((enum login_form)f));
    for (int p = 0; p < 3; p++) {
        if ((enum login_profile)p == active)
            continue;
        for (int f = 0; f < LOGIN_FORM_COUNT; f++)
            if (v->works[p][f] != v->works[active][f])
                g_string_append_printf(changes, "%s%s:%c%s", changes->len ? " " : "",
                                       login_profile_name((enum login_profile)p),
                                       v->works[p][f] ? '+' : '-',
                                       login_form_name((enum login_form)f));
    }
    for (int k = 0; k < FINDING_COUNT; k++)
        if (v->findings[k])
            g_string_append_printf(findings, "%s%s", findings->len ? " " : "", FINDING_NAMES[k]);
    if (au->format == FORMAT_CSV) {
        csv_str(a->dn);
        putchar(',');
        csv_str(a->sam_account_name);
        putchar(',');
        csv_str(forms->str);
        putchar(',');
        csv_str(changes->str);
        printf(",%s,%s,", protocol_text(v->protocol[0]), protocol_text(v->protocol[1]));
        csv_str(findings->str);
        putchar('\n');
    } else {
        printf("%-20s %-40s %-22s %-22s %s%s%s\n",
               a->sam_account_name ? a->sam_account_name : a->dn,
               forms->len ? forms->str : "(none)", protocol_text(v->protocol[0]),
               protocol_text(v->protocol[1]), findings->str,
               changes->len ? "  other profiles: " : "", changes->str);
    }
    g_string_free(forms, TRUE);
    g_string_free(changes, TRUE);
    g_string_free(findings, TRUE);
}

static bool audit_account(struct account *a, void *arg)
{
    struct audit *au = arg;
    struct verdict v;
    judge(au, a, &v);
    print_account(au, a, &v);
    au->reported++;
    enum login_profile active = au->cli->config->logins.rules.profile;
    bool any = false;
    for (int f = 0; f < LOGIN_FORM_COUNT; f++) {
        au->forms_working[f] += v.works[active][f];
        any |= v.works[active][f];
    }
    au->no_working_form += !any;
    for (int p = 0; p < 2; p++) {
        au->blocked[p] += v.protocol[p] != AUTH_REASON_NONE;
        au->enabled[p] += v.protocol[p] == AUTH_REASON_NONE;
    }
    for (int k = 0; k < FINDING_COUNT; k++)
        au->findings[k] += v.findings[k];
    account_free(a);
    if (au->reported % PROGRESS_EVERY == 0)
        fprintf(stderr, "posternctl audit-directory: judged %zu accounts\n", au->reported);
    return true;
}

static void print_summary(struct audit *au)
{
    if (au->format == FORMAT_JSON) {
        printf("],\"summary\":{\"accounts\":%zu,\"no_working_form\":%zu,"
               "\"imap_allowed\":%zu,\"pop3_allowed\":%zu,\"forms\":{",
               au->reported, au->no_working_form, au->enabled[0], au->enabled[1]);
        for (int f = 0; f < LOGIN_FORM_COUNT; f++)
            printf("%s\"%s\":%zu", f ? "," : "", login_form_name((enum login_form)f),
                   au->forms_working[f]);
        printf("},\"findings\":{");
        for (int k = 0; k < FINDING_COUNT; k++)
            printf("%s\"%s\":%zu", k ? "," : "", FINDING_NAMES[k], au->findings[k]);
        printf("}}}\n");
        return;
    }
    FILE *out = au->format == FORMAT_CSV ? stderr : stdout;
    fprintf(out, "\n%zu mail-enabled accounts (%zu accounts in all); profile %s\n", au->reported,
            au->scanned, login_profile_name(au->cli->config->logins.rules.profile));
    fprintf(out, "  may log in: IMAP %zu, POP3 %zu; no login form works: %zu\n", au->enabled[0],
            au->enabled[1], au->no_working_form);
    for (int f = 0; f < LOGIN_FORM_COUNT; f++)
        fprintf(out, "  form %-18s works for %zu\n", login_form_name((enum login_form)f),
                au->forms_working[f]);
    for (int k = 0; k < FINDING_COUNT; k++)
        fprintf(out, "  finding %-24s %zu  (%s)\n", FINDING_NAMES[k], au->findings[k],
                FINDING_TEXT[k]);
}

int cli_audit_directory(struct cli *cli)
{
    enum format format = FORMAT_TABLE;
    for (int i = 1; i < cli->argc; i++) {
        if (strcmp(cli->argv[i], "--format") == 0 && i + 1 < cli->argc) {
            const char *f = cli->argv[++i];
            if (strcmp(f, "table") == 0)
                format = FORMAT_TABLE;
            else if (strcmp(f, "json") == 0)
                format = FORMAT_JSON;
            else if (strcmp(f, "csv") == 0)
                format = FORMAT_CSV;
            else {
                cli_error(cli, "--format: table, json or csv, not '%s'", f);
                return CLI_USAGE;
            }
        } else {
            cli_error(cli, "unknown argument '%s'", cli->argv[i]);
            return CLI_USAGE;
        }
    }
    char err[512] = "";
    struct auth_context *ctx = auth_context_new(cli->config, err, sizeof(err));
    if (ctx == NULL) {
        cli_error(cli, "%s", err[0] ? err : "no directory block in the configuration");
        return CLI_ERROR;
    }
    struct audit au = {.cli = cli, .format = format, .dir = auth_context_directory(ctx)};
    if (!auth_context_domain(ctx, cli->config, &au.names, &au.privileged, &au.n_privileged,
                             &au.is_ad)) {
        cli_error(cli, "the directory did not answer (rootDSE)");
        auth_context_unref(ctx);
        return CLI_ERROR;
    }
    au.now = filetime_from_unix((int64_t)time(NULL));
    au.names_seen = g_hash_table_new(g_direct_hash, g_direct_equal);
    au.privileged_dns = g_hash_table_new(g_direct_hash, g_direct_equal);
    int status = CLI_ERROR;
    size_t n = 0;
    if (directory_scan_accounts(au.dir, "(objectClass=user)", PAGE_SIZE, count_names_of, &au, &n,
                                NULL) != DIRECTORY_OK) {
        cli_error(cli, "the directory search failed");
        goto out;
    }
    if (!prepare_protocol_sets(&au))
        goto out;
    if (format == FORMAT_JSON)
        printf("{\"accounts\":[\n");
    else if (format == FORMAT_CSV)
        printf("dn,account,forms,other_profiles,imap,pop3,findings\n");
    else
        printf("%-20s %-40s %-22s %-22s %s\n", "ACCOUNT", "LOGIN FORMS", "IMAP", "POP3",
               "FINDINGS");
    if (directory_scan_accounts(au.dir, MAIL_ENABLED, PAGE_SIZE, audit_account, &au, &n, NULL) !=
        DIRECTORY_OK) {
        cli_error(cli, "the directory search failed after %zu accounts", au.reported);
        goto out;
    }
    print_summary(&au);
    status = CLI_OK;
out:
    fflush(stdout);
    g_hash_table_destroy(au.names_seen);
    g_hash_table_destroy(au.privileged_dns);
    for (int p = 0; p < 2; p++)
        if (au.allowed[p])
            g_hash_table_destroy(au.allowed[p]);
    auth_context_unref(ctx);
    return status;
}
