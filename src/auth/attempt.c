/* The auth pipeline: gate (transport policy), then on the worker pool the directory steps
 * (resolve the login, account policy, password bind), then exactly one audit event and the
 * result back to the protocol, refusals after the same fixed delay whatever the reason. */
#include "postern/auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "postern/account_policy.h"
#include "postern/audit.h"
#include "postern/conn.h"
#include "postern/directory.h"
#include "postern/log.h"
#include "postern/penalty.h"
#include "postern/policy.h"
#include "postern/resolve.h"
#include "postern/sso.h"
#include "postern/util.h"

const struct auth_mech AUTH_MECHS[] = {
    {"PLAIN", MECH_PLAINTEXT},
    {"LOGIN", MECH_PLAINTEXT},
    /* Neither sends a reusable secret, so plaintext-authentication allows them without TLS
     * (POLICY.md §2, as Exchange does); secure-login, the default, wants TLS first. */
    {"GSSAPI", MECH_KERBEROS},
    {"NTLM", MECH_NTLM},
};
const size_t AUTH_MECHS_COUNT = ARRAY_LEN(AUTH_MECHS);
const struct auth_mech AUTH_MECH_LOGIN_COMMAND = {"LOGIN-COMMAND", MECH_PLAINTEXT};

const struct auth_mech *auth_mech_find(const char *name)
{
    for (size_t i = 0; i < AUTH_MECHS_COUNT; i++)
        if (ascii_casecmp(AUTH_MECHS[i].name, name) == 0)
            return &AUTH_MECHS[i];
    return NULL;
}

/* Stable codes: security teams filter on them (docs/postern.conf.5 lists them). */
static const char *const REASON_CODES[] = {
    [AUTH_REASON_NONE] = "ok",
    [AUTH_REASON_PLAINTEXT_REQUIRES_TLS] = "plaintext_requires_tls",
    [AUTH_REASON_MECH_UNSUPPORTED] = "mechanism_unsupported",
    [AUTH_REASON_SASL_NOT_AVAILABLE] = "sasl_not_available",
    [AUTH_REASON_INVALID_INPUT] = "invalid_input",
    [AUTH_REASON_AUTHZID_REFUSED] = "authorization_identity_refused",
    [AUTH_REASON_NO_DIRECTORY] = "directory_not_configured",
    [AUTH_REASON_SERVER_BUSY] = "server_busy",
    [AUTH_REASON_INVALID_LOGIN_NAME] = "invalid_login_name",
    [AUTH_REASON_FORM_REFUSED] = "login_form_refused",
    [AUTH_REASON_UNKNOWN_DOMAIN] = "unknown_domain",
    [AUTH_REASON_UNKNOWN_ACCOUNT] = "unknown_account",
    [AUTH_REASON_AMBIGUOUS_LOGIN] = "ambiguous_login",
    [AUTH_REASON_ALIAS_NOT_ACCOUNT_NAME] = "alias_not_account_name",
    [AUTH_REASON_UNKNOWN_MAILBOX] = "unknown_mailbox",
    [AUTH_REASON_EMPTY_PASSWORD] = "empty_password",
    [AUTH_REASON_BUILTIN_ADMINISTRATOR] = "builtin_administrator",
    [AUTH_REASON_GUEST_ACCOUNT] = "guest_account",
    [AUTH_REASON_KRBTGT_ACCOUNT] = "krbtgt_account",
    [AUTH_REASON_DEFAULT_ACCOUNT] = "default_account",
    [AUTH_REASON_COMPUTER_ACCOUNT] = "computer_account",
    [AUTH_REASON_ACCOUNT_DISABLED] = "account_disabled",
    [AUTH_REASON_ACCOUNT_LOCKED] = "account_locked",
    [AUTH_REASON_ACCOUNT_EXPIRED] = "account_expired",
    [AUTH_REASON_PASSWORD_MUST_CHANGE] = "password_must_change",
    [AUTH_REASON_PASSWORD_EXPIRED] = "password_expired",
    [AUTH_REASON_PRIVILEGED_ACCOUNT] = "privileged_account",
    [AUTH_REASON_PROTOCOL_DISABLED] = "protocol_disabled",
    [AUTH_REASON_PROTOCOL_NOT_ALLOWED] = "protocol_not_allowed",
    [AUTH_REASON_MAILBOX_ACCESS_DENIED] = "mailbox_access_denied",
    [AUTH_REASON_INVALID_CREDENTIALS] = "invalid_credentials",
    [AUTH_REASON_LOGON_HOURS] = "logon_hours",
    [AUTH_REASON_WORKSTATION_RESTRICTION] = "workstation_restriction",
    [AUTH_REASON_SESSION_LIMIT] = "session_limit",
    [AUTH_REASON_PENALTY_CLIENT] = "penalty_client_address",
    [AUTH_REASON_PENALTY_LOGIN] = "penalty_login_name",
    [AUTH_REASON_DIRECTORY_UNAVAILABLE] = "directory_unavailable",
    [AUTH_REASON_DIRECTORY_ERROR] = "directory_error",
    [AUTH_REASON_UNKNOWN_REALM] = "unknown_realm",
    [AUTH_REASON_KRB_WRONG_SERVICE] = "kerberos_wrong_service",
    [AUTH_REASON_KRB_INVALID_TOKEN] = "kerberos_invalid_token",
    [AUTH_REASON_KRB_CLOCK_SKEW] = "kerberos_clock_skew",
    [AUTH_REASON_KRB_REPLAY] = "kerberos_replay",
    [AUTH_REASON_KRB_TICKET_EXPIRED] = "kerberos_ticket_expired",
    [AUTH_REASON_KRB_KEY_MISMATCH] = "kerberos_key_mismatch",
    [AUTH_REASON_KRB_ERROR] = "kerberos_error",
    [AUTH_REASON_CHANNEL_BINDING_MISMATCH] = "channel_binding_mismatch",
    [AUTH_REASON_CHANNEL_BINDING_REQUIRED] = "channel_binding_required",
    [AUTH_REASON_NTLM_V1_REFUSED] = "ntlmv1_refused",
    [AUTH_REASON_NTLM_ANONYMOUS] = "ntlm_anonymous",
    [AUTH_REASON_NTLM_IDENTITY_MISMATCH] = "ntlm_identity_mismatch",
    [AUTH_REASON_NTLM_HELPER_UNAVAILABLE] = "ntlm_helper_unavailable",
    [AUTH_REASON_NTLM_MIC_MISMATCH] = "ntlm_mic_mismatch",
    [AUTH_REASON_NTLM_NO_HASH] = "ntlm_no_hash",
};

const char *auth_reason_code(enum auth_reason r)
{
    return (size_t)r < ARRAY_LEN(REASON_CODES) && REASON_CODES[r] ? REASON_CODES[r] : "unknown";
}

bool auth_reason_is_failure(enum auth_reason r)
{
    switch (r) {
    case AUTH_REASON_NONE:
    case AUTH_REASON_PLAINTEXT_REQUIRES_TLS:
    case AUTH_REASON_MECH_UNSUPPORTED:
    case AUTH_REASON_SASL_NOT_AVAILABLE:
    case AUTH_REASON_NO_DIRECTORY:
    case AUTH_REASON_SERVER_BUSY:
    case AUTH_REASON_DIRECTORY_UNAVAILABLE:
    case AUTH_REASON_DIRECTORY_ERROR:
    case AUTH_REASON_SESSION_LIMIT:
    /* our keytab or our helpers, not the client's credentials */
    case AUTH_REASON_KRB_KEY_MISMATCH:
    case AUTH_REASON_KRB_ERROR:
    case AUTH_REASON_NTLM_HELPER_UNAVAILABLE:
        return false;
    default:
        return true;
    }
}

bool auth_reason_is_temporary(enum auth_reason r)
{
    switch (r) {
    case AUTH_REASON_SERVER_BUSY:
    case AUTH_REASON_DIRECTORY_UNAVAILABLE:
    case AUTH_REASON_DIRECTORY_ERROR:
    case AUTH_REASON_KRB_KEY_MISMATCH:
    case AUTH_REASON_KRB_ERROR:
    case AUTH_REASON_NTLM_HELPER_UNAVAILABLE:
        return true;
    default:
        return false;
    }
}

/* ---- context: directory + rules, published like TLS credentials ---------------------------- */

/* What a secret file looked like when it was read: a reload rereads it when it changed
 * (a rotated service password or keytab), which stat() can tell even as User. */
struct file_stamp {
    bool present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

static struct file_stamp stamp_of(const char *path)
{
    struct file_stamp st = {0};
    struct stat sb;
    if (path != NULL && stat(path, &sb) == 0) {
        st.present = true;
        st.dev = sb.st_dev;
        st.ino = sb.st_ino;
        st.size = sb.st_size;
        st.mtime = sb.st_mtim;
        st.ctime = sb.st_ctim;
    }
    return st;
}

static bool same_stamp(struct file_stamp a, struct file_stamp b)
{
    return a.present == b.present && a.dev == b.dev && a.ino == b.ino && a.size == b.size &&
           a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec &&
           a.ctime.tv_sec == b.ctime.tv_sec && a.ctime.tv_nsec == b.ctime.tv_nsec;
}

struct auth_context {
    atomic_int refs;
    struct directory *dir;
    struct config *config; /* the configuration its directory was built from */
    struct file_stamp password_file, keytab;
    pthread_mutex_t lock; /* guards the lazily read naming below */
    bool naming_read;
    struct directory_naming naming;
    char **privileged_groups;
    size_t n_privileged_groups;
    /* single sign-on: service keys (kerberos block), ntlm_auth helpers (ntlm block) */
    struct krb_acceptor *krb;
    struct file_stamp krb_keytab;
    struct helper_pool *ntlm;
};

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct auth_context *current;
/* MECH_KERBEROS | MECH_NTLM as the published context can do them (auth_mech_available). */
static atomic_uint available_sso;

bool auth_mech_available(const struct auth_mech *m)
{
    unsigned needs = m->flags & (MECH_KERBEROS | MECH_NTLM);
    return (atomic_load(&available_sso) & needs) == needs;
}

struct auth_context *auth_context_new(const struct config *c, char *err, size_t errlen)
{
    err[0] = '\0';
    if (!c->directory.configured)
        return NULL;
    struct auth_context *ctx = xcalloc(1, sizeof(*ctx));
    atomic_init(&ctx->refs, 1);
    pthread_mutex_init(&ctx->lock, NULL);
    ctx->config = config_ref((struct config *)c);
    ctx->password_file = stamp_of(c->directory.client.bind_password_file);
    ctx->keytab = stamp_of(c->directory.client.keytab);
    char derr[256] = "";
    ctx->dir = directory_new(&c->directory.client, derr, sizeof(derr));
    if (ctx->dir == NULL) {
        snprintf(err, errlen, "%s:%d: directory: %s", c->path, c->directory.line, derr);
        auth_context_unref(ctx);
        return NULL;
    }
    if (c->kerberos.configured) {
        /* The service keys are read now: at start before privileges drop, on reload as User. */
        ctx->krb_keytab = stamp_of(c->kerberos.keytab);
        ctx->krb = krb_acceptor_new(&c->kerberos, derr, sizeof(derr));
        if (ctx->krb == NULL) {
            snprintf(err, errlen, "%s:%d: %s", c->path, c->kerberos.keytab_line, derr);
            auth_context_unref(ctx);
            return NULL;
        }
        log_info("kerberos: GSSAPI with %zu keys from %s", krb_acceptor_keys(ctx->krb),
                 c->kerberos.keytab);
    }
    if (c->ntlm.configured && c->ntlm.nt_hash_attribute == NULL &&
        access(c->ntlm.helper, X_OK) != 0) {
        snprintf(err, errlen, "%s:%d: ntlm: Helper %s: %s", c->path, c->ntlm.line, c->ntlm.helper,
                 strerror(errno));
        auth_context_unref(ctx);
        return NULL;
    }
    if (c->ntlm.configured)
        ctx->ntlm = helper_pool_new(&c->ntlm); /* helpers start with the first exchange */
    return ctx;
}

struct auth_context *auth_context_ref(struct auth_context *ctx)
{
    if (ctx)
        atomic_fetch_add(&ctx->refs, 1);
    return ctx;
}

struct krb_acceptor *auth_context_krb(struct auth_context *ctx)
{
    return ctx ? ctx->krb : NULL;
}

struct helper_pool *auth_context_ntlm(struct auth_context *ctx)
{
    return ctx ? ctx->ntlm : NULL;
}

void auth_context_unref(struct auth_context *ctx)
{
    if (ctx == NULL || atomic_fetch_sub(&ctx->refs, 1) != 1)
        return;
    if (ctx->dir)
        directory_free(ctx->dir);
    if (ctx->naming_read)
        directory_naming_free(&ctx->naming);
    for (size_t i = 0; i < ctx->n_privileged_groups; i++)
        free(ctx->privileged_groups[i]);
    free(ctx->privileged_groups);
    krb_acceptor_free(ctx->krb);
    helper_pool_free(ctx->ntlm);
    config_unref(ctx->config);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

void auth_context_publish(struct auth_context *ctx)
{
    if (ctx)
        atomic_fetch_add(&ctx->refs, 1);
    pthread_mutex_lock(&current_lock);
    struct auth_context *old = current;
    current = ctx;
    atomic_store(&available_sso, (ctx && ctx->krb ? (unsigned)MECH_KERBEROS : 0u) |
                                     (ctx && ctx->ntlm ? (unsigned)MECH_NTLM : 0u));
    pthread_mutex_unlock(&current_lock);
    auth_context_unref(old);
}

struct auth_context *auth_context_current(void)
{
    pthread_mutex_lock(&current_lock);
    struct auth_context *ctx = current;
    if (ctx)
        atomic_fetch_add(&ctx->refs, 1);
    pthread_mutex_unlock(&current_lock);
    return ctx;
}

static bool same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

enum auth_context_change auth_context_compare(const struct auth_context *ctx,
                                              const struct config *c)
{
    if (ctx == NULL || !c->directory.configured)
        return ctx == NULL && !c->directory.configured ? AUTH_CONTEXT_SAME
                                                       : AUTH_CONTEXT_SETTINGS_CHANGED;
    const struct directory_config *a = &ctx->config->directory.client, *b = &c->directory.client;
    bool same = a->n_uris == b->n_uris;
    for (size_t i = 0; same && i < a->n_uris; i++)
        same = strcmp(a->uris[i], b->uris[i]) == 0;
    same = same && same_text(a->base_dn, b->base_dn) && same_text(a->bind_dn, b->bind_dn) &&
           same_text(a->bind_password_file, b->bind_password_file) &&
           same_text(a->keytab, b->keytab) && same_text(a->bind_principal, b->bind_principal) &&
           same_text(a->discover_domain, b->discover_domain) && a->tls == b->tls &&
           same_text(a->ca_file, b->ca_file) && a->verify_certificate == b->verify_certificate &&
           a->network_timeout == b->network_timeout &&
           a->operation_timeout == b->operation_timeout && a->pool_size == b->pool_size;
    /* the single sign-on parts that live in the context (the rest is read per attempt) */
    const struct config *o = ctx->config;
    same = same && o->kerberos.configured == c->kerberos.configured &&
           same_text(o->kerberos.keytab, c->kerberos.keytab) &&
           o->ntlm.configured == c->ntlm.configured && same_text(o->ntlm.helper, c->ntlm.helper) &&
           o->ntlm.n_helper_options == c->ntlm.n_helper_options &&
           o->ntlm.max_helpers == c->ntlm.max_helpers &&
           o->ntlm.helper_timeout == c->ntlm.helper_timeout;
    for (size_t i = 0; same && i < c->ntlm.n_helper_options; i++)
        same = strcmp(o->ntlm.helper_options[i], c->ntlm.helper_options[i]) == 0;
    if (!same)
        return AUTH_CONTEXT_SETTINGS_CHANGED;
    if (c->kerberos.configured && !same_stamp(ctx->krb_keytab, stamp_of(c->kerberos.keytab)))
        return AUTH_CONTEXT_SECRETS_CHANGED;
    if (!same_stamp(ctx->password_file, stamp_of(b->bind_password_file)) ||
        !same_stamp(ctx->keytab, stamp_of(b->keytab)))
        return AUTH_CONTEXT_SECRETS_CHANGED;
    return AUTH_CONTEXT_SAME;
}

/* Encodes "S-1-5-21-a-b-c" plus a RID as an escaped binary filter value (\01\05...). */
static bool sid_filter_value(const char *domain_sid, uint32_t rid, char *out, size_t outlen)
{
    unsigned long sub[16];
    int n = 0;
    if (strncmp(domain_sid, "S-1-", 4) != 0)
        return false;
    char *p;
    unsigned long long authority = strtoull(domain_sid + 4, &p, 10);
    while (*p == '-' && n < 14) {
        char *end;
        sub[n++] = strtoul(p + 1, &end, 10);
        p = end;
    }
    if (*p != '\0')
        return false;
    sub[n++] = rid;
    unsigned char b[8 + 4 * 16];
    b[0] = 1;
    b[1] = (unsigned char)n;
    for (int i = 0; i < 6; i++)
        b[2 + i] = (unsigned char)(authority >> (8 * (5 - i)));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 4; k++)
            b[8 + 4 * i + k] = (unsigned char)(sub[i] >> (8 * k));
    size_t len = 8 + 4 * (size_t)n, o = 0;
    for (size_t i = 0; i < len && o + 4 < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "\\%02x", b[i]);
    return o < outlen;
}

/* Domain names and privileged groups, read once per context from the directory. The reads
 * run outside the lock: a directory that stalls (a hung KDC holds a new connection's SASL
 * GSSAPI bind for libkrb5's whole ~27 s) must not queue every other login behind the first
 * one, each waiting its turn to stall again. Logins that race all read; the first answer is
 * kept. */
static bool ensure_naming(struct auth_context *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    bool ok = ctx->naming_read;
    pthread_mutex_unlock(&ctx->lock);
    if (ok)
        return true;
    struct directory_naming naming;
    if (directory_read_naming(ctx->dir, &naming) != DIRECTORY_OK)
        return false;
    /* Domain Admins (512), Schema Admins (518), Enterprise Admins (519) by SID, so that
     * renamed groups are still found. */
    char **privileged = NULL;
    size_t n_privileged = 0;
    struct account **dom = NULL;
    size_t n = 0, matched = 0;
    const char *server;
    if (directory_find_accounts(ctx->dir, "(&(objectClass=domainDNS)(objectSid=*))", &dom, &n, 1,
                                &matched, &server) == DIRECTORY_OK &&
        n == 1 && dom[0]->sid) {
        char v[3][300], filter[1024];
        if (sid_filter_value(dom[0]->sid, 512, v[0], sizeof(v[0])) &&
            sid_filter_value(dom[0]->sid, 518, v[1], sizeof(v[1])) &&
            sid_filter_value(dom[0]->sid, 519, v[2], sizeof(v[2]))) {
            snprintf(filter, sizeof(filter),
                     "(&(objectClass=group)(|(objectSid=%s)(objectSid=%s)(objectSid=%s)))", v[0],
                     v[1], v[2]);
            struct account **groups = NULL;
            size_t ng = 0;
            if (directory_find_accounts(ctx->dir, filter, &groups, &ng, 3, &matched, &server) ==
                DIRECTORY_OK) {
                privileged = xcalloc(ng, sizeof(char *));
                for (size_t i = 0; i < ng; i++)
                    privileged[n_privileged++] = xstrdup(groups[i]->dn);
            }
            directory_free_accounts(groups, ng);
        }
    }
    directory_free_accounts(dom, n);
    pthread_mutex_lock(&ctx->lock);
    bool keep = !ctx->naming_read;
    if (keep) {
        ctx->naming = naming;
        ctx->privileged_groups = privileged;
        ctx->n_privileged_groups = n_privileged;
        ctx->naming_read = true;
    }
    pthread_mutex_unlock(&ctx->lock);
    if (!keep) { /* another login was quicker */
        directory_naming_free(&naming);
        for (size_t i = 0; i < n_privileged; i++)
            free(privileged[i]);
        free(privileged);
    }
    return true;
}

struct directory *auth_context_directory(struct auth_context *ctx)
{
    return ctx ? ctx->dir : NULL;
}

bool auth_context_domain(struct auth_context *ctx, const struct config *c,
                         struct domain_names *names, const char *const **privileged_groups,
                         size_t *n_privileged_groups, bool *is_active_directory)
{
    if (ctx == NULL || !ensure_naming(ctx))
        return false;
    *names = (struct domain_names){
        .netbios = c->directory.netbios ? c->directory.netbios : ctx->naming.netbios,
        .dns_domain = c->directory.domain ? c->directory.domain : ctx->naming.dns_domain,
        .upn_suffixes = c->directory.n_upn_suffixes ? (const char *const *)c->directory.upn_suffixes
                                                    : (const char *const *)ctx->naming.upn_suffixes,
        .n_upn_suffixes =
            c->directory.n_upn_suffixes ? c->directory.n_upn_suffixes : ctx->naming.n_upn_suffixes,
    };
    *privileged_groups = (const char *const *)ctx->privileged_groups;
    *n_privileged_groups = ctx->n_privileged_groups;
    *is_active_directory = ctx->naming.is_active_directory;
    return true;
}

/* ---- attempts ----------------------------------------------------------------------------- */

struct auth_attempt *auth_attempt_new(struct conn *c, const struct auth_mech *mech,
                                      const char *mech_name, const char *login, const char *secret,
                                      size_t secret_len)
{
    struct auth_attempt *a = xcalloc(1, sizeof(*a));
    const struct listener_config *l = conn_listener(c);
    a->conn_id = conn_id(c);
    a->protocol = l->protocol;
    a->listener = l->name;
    a->tls = conn_tls_active(c);
    if (a->tls) {
        char desc[160];
        a->tls_desc = xstrdup(conn_tls_description(c, desc, sizeof(desc)));
    }
    a->peer = *conn_peer(c);
    a->peer_port = conn_peer_port(c);
    a->mech = mech;
    a->mech_name = xstrdup(mech ? mech->name : mech_name ? mech_name : "");
    a->login_type = conn_protocol_settings(c)->login_type;
    a->login = xstrdup(login ? login : "");
    if (secret) {
        a->secret = xstrndup(secret, secret_len);
        a->secret_len = secret_len;
    }
    return a;
}

void auth_attempt_free(struct auth_attempt *a)
{
    if (a == NULL)
        return;
    if (a->secret)
        wipe(a->secret, a->secret_len);
    free(a->secret);
    free(a->login);
    free(a->mech_name);
    free(a->tls_desc);
    free(a->authzid);
    if (a->verifier)
        a->verifier->free(a->verifier);
    free(a);
}

struct pending {
    struct conn *conn;
    const struct config *config; /* the session's (its listener keeps it alive) */
    void *session;
    struct auth_attempt *attempt;
    struct auth_result result;
    auth_done_fn done;
    uint64_t started_ms;
    unsigned delay_ms;
};

static enum auth_reason reason_from_ad_subcode(unsigned code)
{
    /* AD's bind diagnostics (TECHNOTES §5). 52e also comes for unknown users and 775 with a
     * wrong password: both are reported as what they say, never to the client. */
    switch (code) {
    case 0x530:
        return AUTH_REASON_LOGON_HOURS;
    case 0x531:
        return AUTH_REASON_WORKSTATION_RESTRICTION;
    case 0x532:
        return AUTH_REASON_PASSWORD_EXPIRED;
    case 0x533:
        return AUTH_REASON_ACCOUNT_DISABLED;
    case 0x701:
        return AUTH_REASON_ACCOUNT_EXPIRED;
    case 0x773:
        return AUTH_REASON_PASSWORD_MUST_CHANGE;
    case 0x775:
        return AUTH_REASON_ACCOUNT_LOCKED;
    case 0x525:
        return AUTH_REASON_UNKNOWN_ACCOUNT;
    default:
        return AUTH_REASON_INVALID_CREDENTIALS;
    }
}

static void keep_account(struct auth_result *r, const struct account *a, const struct account *box)
{
    r->account_dn = xstrdup(a->dn);
    r->account_name = a->sam_account_name ? xstrdup(a->sam_account_name) : NULL;
    r->account_upn = a->upn ? xstrdup(a->upn) : NULL;
    const struct account *owner = box ? box : a;
    r->mailbox = owner->alias ? xstrdup(owner->alias) : NULL;
    r->mailbox_key = owner->guid ? xstrdup(owner->guid) : NULL;
}

/* Membership of a privileged group through nested groups: AD evaluates it itself with the
 * transitive matching rule LDAP_MATCHING_RULE_IN_CHAIN (MS-ADTS 3.1.1.3.4.4); other
 * directories have only direct memberOf, which account_blocked() already checked. */
static enum auth_reason nested_privileged(struct auth_context *ctx, const struct account *a)
{
    if (!ctx->naming.is_active_directory || ctx->n_privileged_groups == 0)
        return AUTH_REASON_NONE;
    size_t cap = 128, n = 0;
    char *dn = directory_escape_filter_value(a->dn, strlen(a->dn));
    cap += strlen(dn);
    for (size_t i = 0; i < ctx->n_privileged_groups; i++)
        cap += 3 * strlen(ctx->privileged_groups[i]) + 48;
    char *filter = xmalloc(cap);
    n += (size_t)snprintf(filter + n, cap - n, "(&(distinguishedName=%s)(|", dn);
    free(dn);
    for (size_t i = 0; i < ctx->n_privileged_groups; i++) {
        const char *g = ctx->privileged_groups[i];
        char *esc = directory_escape_filter_value(g, strlen(g));
        n += (size_t)snprintf(filter + n, cap - n, "(memberOf:1.2.840.113556.1.4.1941:=%s)", esc);
        free(esc);
    }
    snprintf(filter + n, cap - n, "))");
    struct account **found = NULL;
    size_t n_found = 0, matched = 0;
    const char *server;
    enum directory_status st =
        directory_find_accounts(ctx->dir, filter, &found, &n_found, 1, &matched, &server);
    free(filter);
    directory_free_accounts(found, n_found);
    if (st == DIRECTORY_UNAVAILABLE)
        return AUTH_REASON_DIRECTORY_UNAVAILABLE;
    if (st != DIRECTORY_OK)
        return AUTH_REASON_DIRECTORY_ERROR; /* fail closed: we could not tell */
    return matched > 0 ? AUTH_REASON_PRIVILEGED_ACCOUNT : AUTH_REASON_NONE;
}

static enum auth_reason from_directory_status(enum directory_status st)
{
    if (st == DIRECTORY_UNAVAILABLE)
        return AUTH_REASON_DIRECTORY_UNAVAILABLE;
    return st == DIRECTORY_OK ? AUTH_REASON_NONE : AUTH_REASON_DIRECTORY_ERROR;
}

/* "(|(attr=v1)(attr=v2)...)" with every value escaped (RFC 4515). */
static char *any_of_filter(const char *attr, const char *const *values, size_t n)
{
    size_t cap = 8, len = 0;
    char **esc = xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        esc[i] = directory_escape_filter_value(values[i], strlen(values[i]));
        cap += strlen(attr) + strlen(esc[i]) + 4;
    }
    char *f = xmalloc(cap);
    len += (size_t)snprintf(f + len, cap - len, "(|");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(f + len, cap - len, "(%s=%s)", attr, esc[i]);
        free(esc[i]);
    }
    snprintf(f + len, cap - len, ")");
    free(esc);
    return f;
}

/* POLICY.md §4: who may use this protocol at all, by the administrator's LDAP filter and group
 * list, asked before any password reaches the directory. Groups count directly (memberOf) and,
 * on AD, through nesting (LDAP_MATCHING_RULE_IN_CHAIN). */
static enum auth_reason protocol_allowed(struct auth_context *ctx,
                                         const struct protocol_settings *ps,
                                         const struct account *a)
{
    bool matches = false;
    if (ps->account_filter != NULL) {
        enum directory_status st =
            directory_entry_matches(ctx->dir, a->dn, ps->account_filter, &matches, NULL);
        if (st != DIRECTORY_OK)
            return from_directory_status(st);
        if (!matches)
            return AUTH_REASON_PROTOCOL_NOT_ALLOWED;
    }
    if (ps->n_allow_groups == 0)
        return AUTH_REASON_NONE;
    for (size_t g = 0; g < ps->n_allow_groups; g++)
        for (size_t i = 0; i < a->n_member_of; i++)
            if (ascii_casecmp(a->member_of[i], ps->allow_groups[g]) == 0)
                return AUTH_REASON_NONE;
    if (!ctx->naming.is_active_directory)
        return AUTH_REASON_PROTOCOL_NOT_ALLOWED;
    char *filter =
        any_of_filter("memberOf:1.2.840.113556.1.4.1941:", (const char *const *)ps->allow_groups,
                      ps->n_allow_groups);
    enum directory_status st = directory_entry_matches(ctx->dir, a->dn, filter, &matches, NULL);
    free(filter);
    if (st != DIRECTORY_OK)
        return from_directory_status(st);
    return matches ? AUTH_REASON_NONE : AUTH_REASON_PROTOCOL_NOT_ALLOWED;
}

/* DOMAIN\name\alias (exchange2003) opens another account's mailbox with name's password. Only
 * the mailbox can grant that: its delegate attribute (msExchDelegateListLink, which Exchange
 * fills for Full Access) must list the account or one of its direct groups. */
static enum auth_reason mailbox_access(struct auth_context *ctx, const struct login_settings *l,
                                       const struct account *a, const struct account *owner)
{
    if (owner == NULL || ascii_casecmp(owner->dn, a->dn) == 0)
        return AUTH_REASON_NONE;
    size_t n = 1 + a->n_member_of;
    const char **who = xcalloc(n, sizeof(char *));
    who[0] = a->dn;
    for (size_t i = 0; i < a->n_member_of; i++)
        who[1 + i] = a->member_of[i];
    const char *attr = l->delegate_attribute ? l->delegate_attribute : "msExchDelegateListLink";
    char *filter = any_of_filter(attr, who, n);
    free(who);
    bool matches = false;
    enum directory_status st = directory_entry_matches(ctx->dir, owner->dn, filter, &matches, NULL);
    free(filter);
    if (st != DIRECTORY_OK)
        return from_directory_status(st);
    return matches ? AUTH_REASON_NONE : AUTH_REASON_MAILBOX_ACCESS_DENIED;
}

void auth_trace_step(struct auth_trace *t, const char *rule, const char *verdict, const char *fmt,
                     ...)
{
    if (t == NULL)
        return;
    char detail[1024] = "";
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
    }
    t->step(t, rule, verdict, detail);
}

/* "pass" or the reason code: how explain shows one rule's verdict. */
static const char *verdict(enum auth_reason r)
{
    return r == AUTH_REASON_NONE ? "pass" : auth_reason_code(r);
}

/* The directory part of the pipeline: resolution, every policy rule, then (if `verify`) the
 * password. On a worker thread in the server; in posternctl with a trace of every step. */
static void decide(struct auth_context *ctx, const struct config *c, struct auth_attempt *a,
                   struct auth_result *r, unsigned *delay_ms, bool verify, struct auth_trace *t)
{
    *delay_ms = c->logins.failure_delay_ms;
    /* Single sign-on mechanisms prove an identity instead of carrying a password. */
    bool sso = a->mech && (a->mech->flags & (MECH_KERBEROS | MECH_NTLM));
    if (verify && !sso && a->secret == NULL) {
        r->reason = AUTH_REASON_SASL_NOT_AVAILABLE;
        *delay_ms = 0;
        return;
    }
    if (verify && !sso && a->secret_len == 0) {
        /* An empty simple bind is an anonymous bind (RFC 4513 §5.1.2): never ask. */
        r->reason = AUTH_REASON_EMPTY_PASSWORD;
        auth_trace_step(t, "empty password", verdict(r->reason), NULL);
        return;
    }
    if (!ensure_naming(ctx)) {
        r->reason = AUTH_REASON_DIRECTORY_UNAVAILABLE;
        auth_trace_step(t, "domain names", verdict(r->reason), "the rootDSE could not be read");
        return;
    }
    struct domain_names names = {
        .netbios = c->directory.netbios ? c->directory.netbios : ctx->naming.netbios,
        .dns_domain = c->directory.domain ? c->directory.domain : ctx->naming.dns_domain,
        .upn_suffixes = c->directory.n_upn_suffixes ? (const char *const *)c->directory.upn_suffixes
                                                    : (const char *const *)ctx->naming.upn_suffixes,
        .n_upn_suffixes =
            c->directory.n_upn_suffixes ? c->directory.n_upn_suffixes : ctx->naming.n_upn_suffixes,
    };
    auth_trace_step(t, "domain names", "pass", "NetBIOS %s, DNS %s%s",
                    names.netbios ? names.netbios : "(none)",
                    names.dns_domain ? names.dns_domain : "(none)",
                    ctx->naming.is_active_directory ? ", Active Directory" : "");
    struct resolution res;
    if (a->mech && (a->mech->flags & MECH_KERBEROS)) {
        resolve_principal(ctx->dir, &names, (const char *const *)c->kerberos.realms,
                          c->kerberos.n_realms, a->login, &res, t);
        r->form = "kerberos-principal";
    } else if (a->mech && (a->mech->flags & MECH_NTLM)) {
        resolve_ntlm_identity(ctx->dir, &names, a->login, &res, t);
        r->form = "ntlm-identity";
    } else {
        resolve_login(ctx->dir, &names, &c->logins.rules, a->login, &res, t);
        r->form = res.form_known ? login_form_name(res.form) : NULL;
    }
    const char *server = res.server;
    r->reason = res.reason;
    if (res.account)
        keep_account(r, res.account, res.mailbox_owner);
    if (r->reason == AUTH_REASON_NONE && res.account == NULL)
        r->reason = AUTH_REASON_DIRECTORY_ERROR; /* cannot happen; never allow without one */
    if (r->reason == AUTH_REASON_NONE) {
        /* Blocked kinds are refused before their password reaches the directory: no password
         * oracle for them, no lockout through us (POLICY.md §3). */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        r->reason = account_blocked(res.account, a->protocol, c->logins.block_privileged,
                                    (const char *const *)ctx->privileged_groups,
                                    ctx->n_privileged_groups, filetime_from_unix(now.tv_sec));
        auth_trace_step(t, "blocked accounts and protocolSettings (POLICY.md §3, §4)",
                        verdict(r->reason), NULL);
    }
    if (r->reason == AUTH_REASON_NONE && c->logins.block_privileged) {
        r->reason = nested_privileged(ctx, res.account);
        auth_trace_step(t, "nested privileged groups (BlockPrivilegedAccounts)", verdict(r->reason),
                        NULL);
    }
    if (r->reason == AUTH_REASON_NONE) {
        const struct protocol_settings *ps = config_protocol(c, a->protocol);
        r->reason = protocol_allowed(ctx, ps, res.account);
        if (ps->account_filter != NULL || ps->n_allow_groups > 0)
            auth_trace_step(t, "AccountFilter / AllowGroup", verdict(r->reason), NULL);
    }
    if (r->reason == AUTH_REASON_NONE && res.alias_mismatch)
        r->reason = AUTH_REASON_ALIAS_NOT_ACCOUNT_NAME;
    if (r->reason == AUTH_REASON_NONE || r->reason == AUTH_REASON_ALIAS_NOT_ACCOUNT_NAME)
        auth_trace_step(t, "works only if alias = sAMAccountName", verdict(r->reason),
                        res.alias_mismatch ? "alias %s, sAMAccountName %s" : NULL,
                        res.account && res.account->alias ? res.account->alias : "(none)",
                        res.account && res.account->sam_account_name ? res.account->sam_account_name
                                                                     : "(none)");
    if (r->reason == AUTH_REASON_NONE && res.mailbox_owner) {
        r->reason = account_blocked(res.mailbox_owner, a->protocol, c->logins.block_privileged,
                                    (const char *const *)ctx->privileged_groups,
                                    ctx->n_privileged_groups, 0) == AUTH_REASON_NONE
                        ? AUTH_REASON_NONE
                        : AUTH_REASON_UNKNOWN_MAILBOX;
        auth_trace_step(t, "the mailbox's account is not blocked", verdict(r->reason), "%s",
                        res.mailbox_owner->dn);
    }
    if (r->reason == AUTH_REASON_NONE && res.mailbox_owner) {
        r->reason = mailbox_access(ctx, &c->logins, res.account, res.mailbox_owner);
        auth_trace_step(t, "the mailbox delegates to the account (DelegateAttribute)",
                        verdict(r->reason), NULL);
    }
    if (r->reason == AUTH_REASON_NONE && sso) {
        /* Until delegated access is designed, a session opens only the identity's own mailbox
         * (POLICY.md §1). */
        if (!sso_authzid_is_own(a->authzid, a->login, res.account, &names))
            r->reason = AUTH_REASON_AUTHZID_REFUSED;
        auth_trace_step(t, "authorization identity", verdict(r->reason), "%s",
                        a->authzid && *a->authzid ? a->authzid : "(none)");
    }
    if (r->reason == AUTH_REASON_NONE && verify && sso) {
        if (a->authenticated) { /* GSSAPI: the ticket was the proof */
            r->allow = true;
        } else if (a->verifier) { /* NTLM: the DC checks the AUTHENTICATE message now */
            unsigned code = 0;
            r->reason = a->verifier->verify(a->verifier, res.account, names.netbios, &code);
            r->ad_subcode = code;
            r->allow = r->reason == AUTH_REASON_NONE;
            auth_trace_step(t, "NTLM (the domain controller through ntlm_auth)", verdict(r->reason),
                            code ? "NT_STATUS %x" : NULL, code);
        } else {
            r->reason = AUTH_REASON_SASL_NOT_AVAILABLE; /* nothing proves the identity */
            *delay_ms = 0;
        }
    } else if (r->reason == AUTH_REASON_NONE && verify) {
        unsigned sub = 0;
        enum directory_status st = directory_verify_password(ctx->dir, res.account->dn, a->secret,
                                                             a->secret_len, &sub, &server);
        r->ad_subcode = sub;
        if (st == DIRECTORY_OK)
            r->allow = true;
        else if (st == DIRECTORY_INVALID_CREDENTIALS)
            r->reason = reason_from_ad_subcode(sub);
        else if (st == DIRECTORY_UNAVAILABLE)
            r->reason = AUTH_REASON_DIRECTORY_UNAVAILABLE;
        else
            r->reason = AUTH_REASON_DIRECTORY_ERROR;
        auth_trace_step(t, "password (simple bind as the account)", verdict(r->reason),
                        sub ? "AD sub-code %x" : NULL, sub);
    }
    /* A copy: the string belongs to the directory client, which a reload may free. */
    r->server = server ? xstrdup(server) : NULL;
    resolution_free(&res);
}

/* The directory part of the pipeline, on a worker thread. */
static void run_directory_steps(void *arg)
{
    struct pending *p = arg;
    struct auth_context *ctx = auth_context_current();
    if (ctx == NULL) {
        p->result.reason = AUTH_REASON_NO_DIRECTORY;
        return;
    }
    /* the rules the session started under */
    decide(ctx, p->config, p->attempt, &p->result, &p->delay_ms, true, NULL);
    auth_context_unref(ctx);
}

struct auth_attempt *auth_attempt_offline(enum protocol protocol, bool tls,
                                          enum login_type login_type, const char *mech_name,
                                          const char *login, const char *secret, size_t secret_len)
{
    struct auth_attempt *a = xcalloc(1, sizeof(*a));
    a->protocol = protocol;
    a->listener = "posternctl";
    a->tls = tls;
    a->login_type = login_type;
    a->mech = mech_name == NULL || ascii_casecmp(mech_name, "LOGIN-COMMAND") == 0
                  ? &AUTH_MECH_LOGIN_COMMAND
                  : auth_mech_find(mech_name);
    a->mech_name = xstrdup(a->mech ? a->mech->name : mech_name);
    a->login = xstrdup(login ? login : "");
    if (secret) {
        a->secret = xstrndup(secret, secret_len);
        a->secret_len = secret_len;
    }
    return a;
}

void auth_decide_offline(struct auth_context *ctx, const struct config *c, struct auth_attempt *a,
                         bool verify, struct auth_trace *t, struct auth_result *r)
{
    memset(r, 0, sizeof(*r));
    uint64_t started = now_ms();
    if (a->mech == NULL) {
        r->reason = AUTH_REASON_MECH_UNSUPPORTED;
        auth_trace_step(t, "mechanism", verdict(r->reason), "%s", a->mech_name);
        return;
    }
    if ((a->mech->flags & MECH_KERBEROS && auth_context_krb(ctx) == NULL) ||
        (a->mech->flags & MECH_NTLM && auth_context_ntlm(ctx) == NULL)) {
        r->reason = AUTH_REASON_MECH_UNSUPPORTED; /* no kerberos / ntlm block */
        auth_trace_step(t, "mechanism", verdict(r->reason), "%s is not configured", a->mech->name);
        return;
    }
    /* Offline the context is not published (auth_mech_available() is the server's view):
     * what LoginType says depends only on whether the mechanism sends a plaintext secret. */
    const struct auth_mech transport = {a->mech->name, a->mech->flags & MECH_PLAINTEXT};
    bool allowed = policy_mech_allowed(a->login_type, a->tls, &transport);
    auth_trace_step(t, "LoginType (POLICY.md §2)", allowed ? "pass" : "plaintext_requires_tls",
                    "%s over %s with %s", login_type_name(a->login_type),
                    a->tls ? "TLS" : "a cleartext connection", a->mech->name);
    if (!allowed) {
        r->reason = AUTH_REASON_PLAINTEXT_REQUIRES_TLS;
        return;
    }
    auth_trace_step(t, "brute-force penalty", "not evaluated",
                    "penalties live in the running server's memory");
    if (ctx == NULL) {
        r->reason = AUTH_REASON_NO_DIRECTORY;
        return;
    }
    unsigned delay;
    decide(ctx, c, a, r, &delay, verify, t);
    r->latency_ms = now_ms() - started;
}

static void result_free(struct auth_result *r)
{
    free(r->account_dn);
    free(r->account_name);
    free(r->account_upn);
    free(r->mailbox);
    free(r->mailbox_key);
    free(r->server);
}

void auth_result_clear(struct auth_result *r)
{
    result_free(r);
    memset(r, 0, sizeof(*r));
}

static void answer(void *arg)
{
    struct pending *p = arg;
    p->done(p->session, p->attempt, &p->result);
    result_free(&p->result);
    auth_attempt_free(p->attempt);
    free(p);
}

static struct penalty_rules penalty_rules_of(const struct config *c)
{
    struct penalty_rules r = {.after = c->directory.configured ? c->logins.penalty_after : 0,
                              .max_ms = c->logins.penalty_max_ms};
    return r;
}

static void finish(struct pending *p)
{
    if (p->attempt->secret)
        wipe(p->attempt->secret, p->attempt->secret_len);
    p->result.latency_ms = now_ms() - p->started_ms;
    if (p->result.allow && !conn_is_closing(p->conn)) {
        /* MaxConnectionsPerUser (Exchange): sessions of one account per protocol, counted
         * by its rename-proof id. Decided here so the audit record says so. */
        const struct auth_result *r = &p->result;
        const char *id = r->mailbox_key ? r->mailbox_key : r->account_dn;
        char key[600];
        snprintf(key, sizeof(key), "%s:%s", protocol_name(p->attempt->protocol), id ? id : "");
        if (!conn_claim_account(p->conn, key,
                                conn_protocol_settings(p->conn)->max_connections_per_user)) {
            p->result.allow = false;
            p->result.reason = AUTH_REASON_SESSION_LIMIT;
        } else {
            conn_set_identity(p->conn, r->account_name, r->account_dn, p->attempt->mech_name);
        }
    }
    enum auth_reason reason = p->result.reason;
    if (p->result.allow ||
        (auth_reason_is_failure(reason) && reason != AUTH_REASON_PENALTY_CLIENT &&
         reason != AUTH_REASON_PENALTY_LOGIN)) {
        struct penalty_rules rules = penalty_rules_of(p->config);
        penalty_record(&rules, &p->attempt->peer, p->attempt->login, p->result.allow, now_ms());
    }
    audit_auth(p->attempt, &p->result);
    /* Every refusal after the gate is answered FailureDelay after the attempt began, so that
     * neither timing nor text tells an unknown user from a wrong password (OpenSMTPD's
     * smtp_auth_failure_pause). The wait is a timer, not a sleeping worker. */
    /* Padded to the same total from the start of the attempt, so that a refusal decided
     * early (unknown domain) takes as long as one the directory decided (wrong password). */
    unsigned wait =
        p->delay_ms > p->result.latency_ms ? p->delay_ms - (unsigned)p->result.latency_ms : 0;
    if (!p->result.allow && wait > 0 && !conn_is_closing(p->conn))
        conn_defer(p->conn, wait, answer, p);
    else
        answer(p);
}

static void directory_steps_done(void *arg)
{
    finish(arg);
}

void auth_start(struct conn *c, void *session, struct auth_attempt *a, auth_done_fn done)
{
    struct pending *p = xcalloc(1, sizeof(*p));
    *p = (struct pending){.conn = c,
                          .config = conn_config(c),
                          .session = session,
                          .attempt = a,
                          .done = done,
                          .started_ms = now_ms()};
    if (a->mech == NULL || !auth_mech_available(a->mech)) {
        p->result.reason = AUTH_REASON_MECH_UNSUPPORTED;
        finish(p);
        return;
    }
    /* The gate: credentials that LoginType forbids here are never checked (POLICY.md §2). */
    if (!policy_mech_allowed(a->login_type, a->tls, a->mech)) {
        p->result.reason = AUTH_REASON_PLAINTEXT_REQUIRES_TLS;
        finish(p);
        return;
    }
    /* Brute-force penalty: while it runs, the directory is not asked at all. */
    struct penalty_rules rules = penalty_rules_of(p->config);
    bool by_client = false;
    if (penalty_check(&rules, &a->peer, a->login, now_ms(), &by_client) > 0) {
        p->result.reason = by_client ? AUTH_REASON_PENALTY_CLIENT : AUTH_REASON_PENALTY_LOGIN;
        p->delay_ms = p->config->logins.failure_delay_ms;
        finish(p);
        return;
    }
    if (!conn_submit(c, run_directory_steps, directory_steps_done, p)) {
        p->result.reason = AUTH_REASON_SERVER_BUSY;
        finish(p);
    }
}

void auth_refuse(struct conn *c, void *session, struct auth_attempt *a, enum auth_reason reason,
                 auth_done_fn done)
{
    struct pending *p = xcalloc(1, sizeof(*p));
    *p = (struct pending){.conn = c,
                          .config = conn_config(c),
                          .session = session,
                          .attempt = a,
                          .done = done,
                          .started_ms = now_ms(),
                          .delay_ms = conn_config(c)->logins.failure_delay_ms};
    p->result.reason = reason;
    finish(p);
}
