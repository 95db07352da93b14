/* posternctl check-config: audits the loaded configuration as a security auditor would
 * (posternctl(8)). Every check reads struct config, the same model the server runs on. */
#include <errno.h>
#include <getopt.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <krb5.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "clitext.h"
#include "postern/auth.h"
#include "postern/directory.h"
#include "postern/util.h"

enum severity { SEV_FAIL, SEV_WARN, SEV_INFO };
static const char *const SEVERITY_NAMES[] = {"fail", "warn", "info"};

struct finding {
    const char *id;
    enum severity severity;
    int line; /* 0: the file as a whole (a default value) */
    char message[600];
    char fix[300];
};

struct findings {
    const struct config *config;
    struct finding *v;
    size_t n;
};

static void add(struct findings *f, const char *id, enum severity sev, int line, const char *fix,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void add(struct findings *f, const char *id, enum severity sev, int line, const char *fix,
                const char *fmt, ...)
{
    f->v = xrealloc(f->v, (f->n + 1) * sizeof(*f->v));
    struct finding *x = &f->v[f->n++];
    x->id = id;
    x->severity = sev;
    x->line = line;
    snprintf(x->fix, sizeof(x->fix), "%s", fix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->message, sizeof(x->message), fmt, ap);
    va_end(ap);
}

/* ---- LoginType (POLICY.md §2) ---------------------------------------------------------- */

static void check_login_types(struct findings *f)
{
    const struct config *c = f->config;
    bool failed[2] = {false, false};
    for (size_t i = 0; i < c->n_listeners; i++) {
        const struct listener_config *l = &c->listeners[i];
        const struct protocol_settings *p = config_protocol(c, l->protocol);
        /* Under plaintext-login a client may send its password before STARTTLS, or on a
         * listener without TLS at all: ExchangeAnalyzer's POP002/IMAP002 fail this. */
        if (p->login_type != LOGIN_TYPE_PLAINTEXT_LOGIN || l->tls == TLS_MODE_IMPLICIT)
            continue;
        char fix[300];
        snprintf(fix, sizeof(fix),
                 "set LoginType secure-login in the %s block (Exchange: Set-%sSettings -LoginType "
                 "SecureLogin)",
                 protocol_name(l->protocol), l->protocol == PROTOCOL_IMAP ? "Imap" : "Pop");
        add(f, "PLAINTEXT_ON_CLEARTEXT_LISTENER", SEV_FAIL, p->login_type_line, fix,
            "%s LoginType plaintext-login accepts passwords in clear text on listener %s "
            "(%s port %u, TLS %s, line %d): for every user of the service",
            protocol_name(l->protocol), l->name, l->address, l->port, tls_mode_name(l->tls),
            l->line);
        failed[l->protocol] = true;
    }
    static const enum protocol PROTOCOLS[] = {PROTOCOL_IMAP, PROTOCOL_POP3};
    for (size_t i = 0; i < 2; i++) {
        enum protocol proto = PROTOCOLS[i];
        const struct protocol_settings *p = config_protocol(c, proto);
        if (p->login_type == LOGIN_TYPE_SECURE_LOGIN || failed[proto])
            continue;
        char fix[160];
        snprintf(fix, sizeof(fix), "set LoginType secure-login in the %s block",
                 protocol_name(proto));
        add(f, "LOGIN_TYPE_BELOW_SECURE_LOGIN", SEV_WARN, p->login_type_line, fix,
            "%s LoginType %s: %s", protocol_name(proto), login_type_name(p->login_type),
            p->login_type == LOGIN_TYPE_PLAINTEXT_LOGIN
                ? "no listener takes passwords in clear text today, but any cleartext or "
                  "STARTTLS listener added later will, for every user"
                : "passwords still need TLS, but mechanisms without a plaintext secret "
                  "(NTLM, GSSAPI, once they exist) would run without TLS");
    }
}

/* ---- TLS priority, evaluated by GnuTLS ------------------------------------------------- */

/* What GnuTLS makes of the string, suite by suite; nothing is inferred from its text. */
static bool weak_cipher(gnutls_cipher_algorithm_t cipher, gnutls_mac_algorithm_t mac,
                        gnutls_kx_algorithm_t kx)
{
    switch (cipher) {
    case GNUTLS_CIPHER_NULL:
    case GNUTLS_CIPHER_ARCFOUR_128:
    case GNUTLS_CIPHER_ARCFOUR_40:
    case GNUTLS_CIPHER_3DES_CBC: /* 64-bit block: Sweet32 */
    case GNUTLS_CIPHER_DES_CBC:
    case GNUTLS_CIPHER_RC2_40_CBC:
        return true;
    default:
        break;
    }
    if (mac == GNUTLS_MAC_MD5)
        return true;
    /* anonymous key exchange: the server is not authenticated, anyone in the path can be it */
    return kx == GNUTLS_KX_ANON_DH || kx == GNUTLS_KX_ANON_ECDH;
}

static bool static_key_exchange(gnutls_kx_algorithm_t kx)
{
    return kx == GNUTLS_KX_RSA || kx == GNUTLS_KX_PSK || kx == GNUTLS_KX_RSA_PSK;
}

/* Appends a suite name to a short list ("A, B, C and 4 more"). */
struct name_list {
    char text[300];
    size_t n;
};

static void list_add(struct name_list *l, const char *name)
{
    if (l->n < 4) {
        size_t len = strlen(l->text);
        snprintf(l->text + len, sizeof(l->text) - len, "%s%s", l->n ? ", " : "", name);
    }
    l->n++;
}

static const char *list_text(struct name_list *l)
{
    if (l->n > 4) {
        size_t len = strlen(l->text);
        snprintf(l->text + len, sizeof(l->text) - len, " and %zu more", l->n - 4);
    }
    return l->text;
}

static void check_tls(struct findings *f)
{
    const struct config *c = f->config;
    bool used = false;
    for (size_t i = 0; i < c->n_listeners; i++)
        used |= c->listeners[i].tls != TLS_MODE_NONE;
    if (!used)
        return; /* the server never loads the priority string then */
    int line = c->tls_priority_line;
    static const char FIX_DEFAULT[] = "remove TLSPriority to use postern's default (TLS 1.2 and "
                                      "1.3, forward secrecy, AEAD ciphers only)";
    gnutls_priority_t prio;
    const char *where = NULL;
    int rc = gnutls_priority_init2(&prio, c->tls_priority, &where, 0);
    if (rc < 0) {
        add(f, "TLS_PRIORITY_INVALID", SEV_FAIL, line, FIX_DEFAULT,
            "TLSPriority is refused by GnuTLS (%s near '%.20s'): the server will not start",
            gnutls_strerror(rc), where ? where : "");
        return;
    }
    const unsigned *protocols;
    int n = gnutls_priority_protocol_list(prio, &protocols);
    struct name_list old = {.n = 0}, tls = {.n = 0};
    for (int i = 0; i < n; i++) {
        switch (protocols[i]) {
        case GNUTLS_SSL3:
        case GNUTLS_TLS1_0:
        case GNUTLS_TLS1_1:
            list_add(&old, gnutls_protocol_get_name(protocols[i]));
            list_add(&tls, gnutls_protocol_get_name(protocols[i]));
            break;
        case GNUTLS_TLS1_2:
        case GNUTLS_TLS1_3:
            list_add(&tls, gnutls_protocol_get_name(protocols[i]));
            break;
        default: /* DTLS: not used by a TCP server */
            break;
        }
    }
    struct name_list weak = {.n = 0}, no_fs = {.n = 0}, cbc = {.n = 0};
    size_t suites = 0;
    for (unsigned idx = 0;; idx++) {
        unsigned sidx;
        rc = gnutls_priority_get_cipher_suite_index(prio, idx, &sidx);
        if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (rc < 0)
            continue; /* a suite this build does not implement */
        unsigned char id[2];
        gnutls_kx_algorithm_t kx;
        gnutls_cipher_algorithm_t cipher;
        gnutls_mac_algorithm_t mac;
        gnutls_protocol_t min_version;
        const char *name = gnutls_cipher_suite_info(sidx, id, &kx, &cipher, &mac, &min_version);
        if (name == NULL)
            continue;
        suites++;
        if (weak_cipher(cipher, mac, kx))
            list_add(&weak, name);
        else if (static_key_exchange(kx))
            list_add(&no_fs, name);
        else if (mac != GNUTLS_MAC_AEAD)
            list_add(&cbc, name); /* not AEAD and not a stream cipher: CBC with HMAC */
    }
    gnutls_priority_deinit(prio);
    if (tls.n == 0 || suites == 0) {
        add(f, "TLS_PRIORITY_ENABLES_NOTHING", SEV_FAIL, line, FIX_DEFAULT,
            "TLSPriority leaves %s: no TLS handshake can succeed",
            tls.n == 0 ? "no TLS version" : "no cipher suite");
        return;
    }
    if (old.n)
        add(f, "TLS_VERSION_BELOW_1_2", SEV_FAIL, line,
            "add -VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1 to TLSPriority (or remove it)",
            "TLSPriority enables %s (RFC 8996 deprecates everything below TLS 1.2)",
            list_text(&old));
    if (weak.n)
        add(f, "TLS_WEAK_CIPHER", SEV_FAIL, line, FIX_DEFAULT,
            "TLSPriority enables broken cipher suites (NULL, RC4, 3DES/DES, MD5 or anonymous "
            "key exchange): %s",
            list_text(&weak));
    if (no_fs.n)
        add(f, "TLS_NO_FORWARD_SECRECY", SEV_WARN, line, "add -RSA to TLSPriority",
            "TLSPriority enables static RSA/PSK key exchange (no forward secrecy: a stolen key "
            "decrypts recorded sessions): %s",
            list_text(&no_fs));
    if (cbc.n)
        add(f, "TLS_CBC_CIPHER", SEV_WARN, line,
            "add -AES-128-CBC:-AES-256-CBC:-CAMELLIA-128-CBC:-CAMELLIA-256-CBC to TLSPriority",
            "TLSPriority enables CBC cipher suites (MAC-then-encrypt, padding-oracle class): %s",
            list_text(&cbc));
}

/* ---- listeners on public addresses ----------------------------------------------------- */

/* Loopback, private (RFC 1918, RFC 6598 shared, RFC 4193 unique local) and link-local. */
static bool internal_address(const struct ip_addr *a)
{
    static const char *const INTERNAL[] = {"127.0.0.0/8",    "10.0.0.0/8",    "172.16.0.0/12",
                                           "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
                                           "::1/128",        "fc00::/7",      "fe80::/10"};
    for (size_t i = 0; i < ARRAY_LEN(INTERNAL); i++) {
        struct cidr net;
        if (cidr_parse(INTERNAL[i], &net) && cidr_match(&net, a))
            return true;
    }
    return false;
}

/* AllowedClients restricts only if no rule is "all of IPv4" or "all of IPv6". */
static bool restricts_clients(const struct cidr_list *rules)
{
    struct ip_addr v4_any;
    addr_parse("0.0.0.0", &v4_any);
    if (rules->n == 0)
        return false;
    for (size_t i = 0; i < rules->n; i++) {
        const struct cidr *r = &rules->v[i];
        if (r->prefix == 0 || (r->prefix <= 96 && cidr_match(r, &v4_any)))
            return false;
    }
    return true;
}

static void check_public_listeners(struct findings *f)
{
    const struct config *c = f->config;
    for (size_t i = 0; i < c->n_listeners; i++) {
        const struct listener_config *l = &c->listeners[i];
        struct ip_addr a;
        bool every = strcmp(l->address, "*") == 0 || strcmp(l->address, "0.0.0.0") == 0 ||
                     strcmp(l->address, "::") == 0;
        if (!every && (!addr_parse(l->address, &a) || internal_address(&a)))
            continue;
        if (restricts_clients(&l->allowed_clients))
            continue;
        add(f, "PUBLIC_LISTENER_WITHOUT_ALLOWED_CLIENTS", SEV_WARN,
            l->address_line ? l->address_line : l->line,
            "add AllowedClients with the client networks to the listener, or bind it to an "
            "internal address",
            "listener %s (%s port %u) listens on %s and accepts every client address", l->name,
            protocol_name(l->protocol), l->port,
            every ? "every address of the host" : "a public address");
    }
}

/* ---- directory ------------------------------------------------------------------------- */

/* Is the host of an ldap:// or ldaps:// URI this machine? Names other than localhost are
 * not resolved: the check must not depend on DNS. */
static bool uri_is_loopback(const char *uri)
{
    const char *h = strstr(uri, "://");
    if (h == NULL)
        return false;
    h += 3;
    char host[256];
    size_t n;
    if (*h == '[') {
        h++;
        n = strcspn(h, "]");
    } else {
        n = strcspn(h, ":/");
    }
    if (n == 0 || n >= sizeof(host))
        return false;
    memcpy(host, h, n);
    host[n] = '\0';
    if (ascii_casecmp(host, "localhost") == 0 || ascii_casecmp(host, "localhost.") == 0)
        return true;
    struct ip_addr a;
    struct cidr v4, v6;
    return addr_parse(host, &a) && cidr_parse("127.0.0.0/8", &v4) && cidr_parse("::1/128", &v6) &&
           (cidr_match(&v4, &a) || cidr_match(&v6, &a));
}

static bool world_accessible(const struct stat *st)
{
    return (st->st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) != 0;
}

/* A keytab as an auditor looks at it: there, owned by root, not open to others, readable as
 * a keytab, and holding keys for every principal wanted ("name" without a realm matches in
 * any realm; "imap/" followed by a star: any host). `label` names the directive in the findings. */
struct keytab_want {
    const char *label;
    const char *path;
    int line;
    const char *const *principals;
    size_t n_principals;
    const char *missing_id; /* finding when a wanted principal has no key */
    const char *purpose;    /* what fails without it */
};

static bool principal_matches(const char *have, const char *want)
{
    size_t have_len = strchr(want, '@') ? strlen(have) : strcspn(have, "@");
    size_t want_len = strlen(want);
    if (want_len >= 2 && strcmp(want + want_len - 2, "/*") == 0)
        return strncmp(have, want, want_len - 1) == 0;
    return want_len == have_len && strncmp(have, want, have_len) == 0;
}

static void check_keytab(struct findings *f, const struct keytab_want *w)
{
    const char *path = w->path;
    int line = w->line;
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (!exists || !S_ISREG(st.st_mode)) {
        add(f, "KEYTAB_MISSING", SEV_FAIL, line,
            "export the service account's keys (adcli join, samba-tool domain exportkeytab, "
            "ktutil or msktutil) to this file",
            "%s %s: %s: %s", w->label, path, exists ? "is not a regular file" : strerror(errno),
            w->purpose);
        return;
    }
    if (world_accessible(&st))
        add(f, "KEYTAB_ACCESSIBLE_BY_OTHERS", SEV_FAIL, line,
            "chown root:postern and chmod 0640 (or 0600) the keytab",
            "%s %s has mode %04o: the service account's keys are %s", w->label, path,
            (unsigned)(st.st_mode & 07777),
            (st.st_mode & S_IROTH) ? "readable by every local user" : "writable by others");
    if (st.st_uid != 0)
        add(f, "KEYTAB_NOT_OWNED_BY_ROOT", SEV_WARN, line, "chown root the keytab",
            "%s %s belongs to uid %u, who can replace the keys", w->label, path,
            (unsigned)st.st_uid);
    if (access(path, R_OK) != 0 && errno == EACCES && geteuid() != 0) {
        add(f, "KEYTAB_KEYS_NOT_CHECKED", SEV_INFO, line, "run posternctl check-config as root",
            "%s %s is not readable by this user, so its keys were not checked", w->label, path);
        return;
    }

    krb5_context ctx;
    if (krb5_init_context(&ctx) != 0) {
        add(f, "KEYTAB_KEYS_NOT_CHECKED", SEV_INFO, line, "check /etc/krb5.conf",
            "Kerberos could not be initialised, so the keys of %s were not checked", path);
        return;
    }
    char name[4200];
    snprintf(name, sizeof(name), "FILE:%s", path);
    krb5_keytab kt;
    krb5_kt_cursor cursor;
    krb5_error_code rc = krb5_kt_resolve(ctx, name, &kt);
    size_t entries = 0;
    bool *found = xcalloc(w->n_principals ? w->n_principals : 1, sizeof(bool));
    if (rc == 0) {
        rc = krb5_kt_start_seq_get(ctx, kt, &cursor);
        if (rc == 0) {
            krb5_keytab_entry entry;
            while ((rc = krb5_kt_next_entry(ctx, kt, &entry, &cursor)) == 0) {
                entries++;
                char *text = NULL;
                if (krb5_unparse_name(ctx, entry.principal, &text) == 0)
                    for (size_t i = 0; i < w->n_principals; i++)
                        found[i] = found[i] || principal_matches(text, w->principals[i]);
                krb5_free_unparsed_name(ctx, text);
                krb5_free_keytab_entry_contents(ctx, &entry);
            }
            if (rc == KRB5_KT_END)
                rc = 0;
            krb5_kt_end_seq_get(ctx, kt, &cursor);
        }
        krb5_kt_close(ctx, kt);
    }
    if (rc != 0) {
        const char *msg = krb5_get_error_message(ctx, rc);
        add(f, "KEYTAB_UNREADABLE", SEV_FAIL, line,
            "export the keys again; the file is not a keytab Kerberos can read",
            "%s %s cannot be read as a keytab: %s", w->label, path, msg);
        krb5_free_error_message(ctx, msg);
    } else if (entries == 0) {
        add(f, "KEYTAB_EMPTY", SEV_FAIL, line, "export the service account's keys to the file",
            "%s %s holds no keys: %s", w->label, path, w->purpose);
    } else {
        for (size_t i = 0; i < w->n_principals; i++)
            if (!found[i])
                add(f, w->missing_id, SEV_FAIL, line,
                    "export the keys of that principal into the keytab (and register the SPN "
                    "on the account)",
                    "%s %s holds no key for %s: %s", w->label, path, w->principals[i], w->purpose);
    }
    free(found);
    krb5_free_context(ctx);
}

static void check_bind_keytab(struct findings *f)
{
    const struct directory_settings *d = &f->config->directory;
    const char *want[] = {d->client.bind_principal};
    struct keytab_want w = {.label = "BindKeytab",
                            .path = d->client.keytab,
                            .line = d->keytab_line ? d->keytab_line : d->line,
                            .principals = want,
                            .n_principals = d->client.bind_principal ? 1 : 0,
                            .missing_id = "KEYTAB_NO_KEY_FOR_PRINCIPAL",
                            .purpose = "the server cannot bind to the directory"};
    check_keytab(f, &w);
}

/* Kerberos refuses tickets from clocks more than 5 minutes apart (MIT's and AD's default
 * clockskew): compare ours with the domain controller's rootDSE currentTime (AD, Samba). */
#define MAX_CLOCK_SKEW 300
static void check_clock(struct findings *f, struct directory *dir, int line)
{
    unsigned char value[64];
    size_t len = 0;
    if (directory_read_value(dir, "", "currentTime", value, sizeof(value) - 1, &len) !=
        DIRECTORY_OK)
        return; /* not Active Directory, or no answer: nothing to compare with */
    value[len] = '\0';
    struct tm tm = {0};
    const char *end = strptime((const char *)value, "%Y%m%d%H%M%S", &tm);
    if (end == NULL)
        return;
    time_t theirs = timegm(&tm);
    long skew = (long)difftime(time(NULL), theirs);
    if (labs(skew) > MAX_CLOCK_SKEW)
        add(f, "CLOCK_SKEW", SEV_FAIL, line,
            "synchronise this host's clock with the domain (chrony or systemd-timesyncd "
            "against the domain controllers)",
            "this host's clock is %ld s %s the domain controller's: Kerberos refuses tickets "
            "beyond 300 s (kerberos_clock_skew)",
            labs(skew), skew > 0 ? "ahead of" : "behind");
    else if (labs(skew) > 60)
        add(f, "CLOCK_DRIFT", SEV_WARN, line, "synchronise this host's clock with the domain",
            "this host's clock is %ld s %s the domain controller's (Kerberos allows 300 s)",
            labs(skew), skew > 0 ? "ahead of" : "behind");
}

/* GSSAPI logins: keys for imap/<host> and pop/<host> of every HostName (any host without
 * one), and each SPN registered on exactly one account of the directory (Kerberos tickets are
 * issued for the account that holds the SPN; two holders break it). */
static void check_kerberos(struct findings *f)
{
    const struct kerberos_settings *k = &f->config->kerberos;
    if (!k->configured)
        return;
    size_t n = 2 * (k->n_host_names ? k->n_host_names : 1);
    char **spns = xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const char *service = i % 2 ? "pop" : "imap";
        const char *host = k->n_host_names ? k->host_names[i / 2] : "*";
        size_t len = strlen(service) + strlen(host) + 2;
        spns[i] = xmalloc(len);
        snprintf(spns[i], len, "%s/%s", service, host);
    }
    struct keytab_want w = {.label = "Keytab",
                            .path = k->keytab,
                            .line = k->keytab_line ? k->keytab_line : k->line,
                            .principals = (const char *const *)spns,
                            .n_principals = n,
                            .missing_id = "KEYTAB_NO_KEY_FOR_SPN",
                            .purpose = "GSSAPI logins for that service and host fail"};
    check_keytab(f, &w);
    if (k->n_host_names == 0 || !f->config->directory.configured) {
        for (size_t i = 0; i < n; i++)
            free(spns[i]);
        free(spns);
        return;
    }
    char err[512] = "";
    struct auth_context *ctx = auth_context_new(f->config, err, sizeof(err));
    struct directory *dir = auth_context_directory(ctx);
    for (size_t i = 0; dir != NULL && i < n; i++) {
        char *esc = directory_escape_filter_value(spns[i], strlen(spns[i]));
        size_t len = strlen(esc) + 32;
        char *filter = xmalloc(len);
        snprintf(filter, len, "(servicePrincipalName=%s)", esc);
        free(esc);
        struct account **found = NULL;
        size_t n_found = 0, matched = 0;
        enum directory_status st =
            directory_find_accounts(dir, filter, &found, &n_found, 2, &matched, NULL);
        free(filter);
        if (st != DIRECTORY_OK)
            add(f, "SPN_NOT_CHECKED", SEV_INFO, w.line,
                "run check-config where the directory "
                "answers",
                "the directory could not be asked who holds %s (%s)", spns[i],
                st == DIRECTORY_UNAVAILABLE ? "no directory server answered"
                                            : "the search failed; see the warnings above");
        else if (matched == 0)
            add(f, "SPN_NOT_REGISTERED", SEV_FAIL, w.line,
                "setspn -S (or samba-tool spn add, adcli update --service-name) on postern's "
                "account",
                "no account in the directory holds the SPN %s: the KDC issues no ticket for "
                "it, so GSSAPI logins to that name fail",
                spns[i]);
        else if (matched > 1)
            add(f, "SPN_DUPLICATE", SEV_FAIL, w.line,
                "remove the SPN from every account but postern's (setspn -X lists duplicates)",
                "%zu accounts hold the SPN %s: the KDC may encrypt tickets for the wrong one",
                matched, spns[i]);
        directory_free_accounts(found, n_found);
    }
    if (dir != NULL)
        check_clock(f, dir, w.line);
    if (ctx == NULL && err[0])
        add(f, "SPN_NOT_CHECKED", SEV_INFO, w.line, "fix the directory block",
            "the directory client could not be built (%s), so SPNs were not checked", err);
    auth_context_unref(ctx);
    for (size_t i = 0; i < n; i++)
        free(spns[i]);
    free(spns);
}

static void check_directory(struct findings *f)
{
    const struct directory_settings *d = &f->config->directory;
    const struct directory_config *dc = &d->client;
    if (!d->configured) {
        add(f, "DIRECTORY_NOT_CONFIGURED", SEV_INFO, 0, "add a directory block",
            "no directory block: every login is refused (directory_not_configured)");
        return;
    }
    /* Which connections go without TLS, and whether any leaves this machine. */
    bool clear_remote = false, clear_local = false, any_tls = false;
    if (dc->n_uris == 0) {
        /* domain controllers from DNS, each as ldap://, protected only by StartTLS */
        clear_remote = dc->tls == DIRECTORY_TLS_NONE;
        any_tls = dc->tls != DIRECTORY_TLS_NONE;
    }
    for (size_t i = 0; i < dc->n_uris; i++) {
        bool ldaps = strncmp(dc->uris[i], "ldaps://", 8) == 0;
        if (ldaps || dc->tls != DIRECTORY_TLS_NONE)
            any_tls = true;
        else if (uri_is_loopback(dc->uris[i]))
            clear_local = true;
        else
            clear_remote = true;
    }
    int tls_line = d->tls_line ? d->tls_line : d->line;
    if (clear_remote)
        add(f, "DIRECTORY_WITHOUT_TLS", SEV_FAIL, tls_line,
            "TLS starttls (the default) with CAFile, or ldaps:// URIs",
            "directory TLS none: the service password and every user's password cross the "
            "network to the directory in clear text");
    else if (clear_local)
        add(f, "DIRECTORY_WITHOUT_TLS_ON_LOOPBACK", SEV_INFO, tls_line,
            "TLS starttls if the directory is ever moved off this host",
            "directory TLS none, to a directory on this host only: passwords stay on the "
            "loopback interface");
    if (any_tls && !dc->verify_certificate)
        add(f, "DIRECTORY_CERTIFICATE_NOT_VERIFIED", SEV_FAIL,
            d->verify_line ? d->verify_line : d->line,
            "VerifyCertificate yes (the default), with CAFile naming the domain's CA",
            "VerifyCertificate no: anyone who can intercept the directory connection can "
            "impersonate it and read every password");
    struct stat st;
    if (dc->bind_password_file && stat(dc->bind_password_file, &st) == 0 && world_accessible(&st))
        add(f, "BIND_PASSWORD_FILE_ACCESSIBLE_BY_OTHERS", SEV_FAIL, d->line,
            "chown root:postern and chmod 0640 (or 0600) the password file",
            "BindPasswordFile %s has mode %04o: the service account's password is %s",
            dc->bind_password_file, (unsigned)(st.st_mode & 07777),
            (st.st_mode & S_IROTH) ? "readable by every local user" : "writable by others");
    if (dc->keytab)
        check_bind_keytab(f);
}

/* ---- login forms (POLICY.md §1) -------------------------------------------------------- */

static void check_cross_mailbox(struct findings *f)
{
    const struct login_settings *l = &f->config->logins;
    if (login_rule(&l->rules, LOGIN_FORM_DOMAIN_NAME_ALIAS) == FORM_REFUSED)
        return;
    int line = l->form_line[LOGIN_FORM_DOMAIN_NAME_ALIAS]
                   ? l->form_line[LOGIN_FORM_DOMAIN_NAME_ALIAS]
                   : l->profile_line;
    add(f, "CROSS_MAILBOX_LOGIN_FORM", SEV_WARN, line,
        "Profile exchange2013 (the default), or Form domain-name-alias refuse",
        "the exchange2003 form DOMAIN\\user\\alias is on: one account's password opens another "
        "mailbox whenever that mailbox's %s lists it (Exchange 2007 removed this)",
        l->delegate_attribute ? l->delegate_attribute : "msExchDelegateListLink");
}

/* ---- output ---------------------------------------------------------------------------- */

static int by_severity(const void *a, const void *b)
{
    const struct finding *x = a, *y = b;
    if (x->severity != y->severity)
        return (int)x->severity - (int)y->severity;
    if (x->line != y->line)
        return x->line - y->line;
    return strcmp(x->id, y->id);
}

static void where(const struct config *c, const struct finding *x, char *buf, size_t len)
{
    if (x->line > 0)
        snprintf(buf, len, "%s:%d", c->path, x->line);
    else
        snprintf(buf, len, "%s", c->path);
}

static void print_table(const struct findings *f, const size_t counts[3])
{
    printf("check-config: %s\n", f->config->path);
    if (f->n == 0) {
        printf("no findings\n");
        return;
    }
    int id_width = 2;
    for (size_t i = 0; i < f->n; i++) {
        int w = (int)strlen(f->v[i].id);
        id_width = w > id_width ? w : id_width;
    }
    printf("%-8s  %-*s  %s\n", "SEVERITY", id_width, "ID", "WHERE");
    for (size_t i = 0; i < f->n; i++) {
        const struct finding *x = &f->v[i];
        char loc[4200];
        where(f->config, x, loc, sizeof(loc));
        printf("%-8s  %-*s  ", SEVERITY_NAMES[x->severity], id_width, x->id);
        clitext_print(stdout, loc, 0);
        printf("\n          ");
        clitext_print(stdout, x->message, 0);
        printf("\n          fix: ");
        clitext_print(stdout, x->fix, 0);
        putchar('\n');
    }
    printf("%zu finding%s: %zu fail, %zu warn, %zu info\n", f->n, f->n == 1 ? "" : "s",
           counts[SEV_FAIL], counts[SEV_WARN], counts[SEV_INFO]);
}

static void print_json(const struct findings *f, const size_t counts[3])
{
    json_t *list = json_array();
    for (size_t i = 0; i < f->n; i++) {
        const struct finding *x = &f->v[i];
        json_array_append_new(list,
                              json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", "id", x->id, "severity",
                                        SEVERITY_NAMES[x->severity], "file", f->config->path,
                                        "line", x->line, "message", x->message, "fix", x->fix));
    }
    json_t *root = json_pack("{s:s, s:o, s:{s:I, s:I, s:I}}", "config", f->config->path, "findings",
                             list, "counts", "fail", (json_int_t)counts[SEV_FAIL], "warn",
                             (json_int_t)counts[SEV_WARN], "info", (json_int_t)counts[SEV_INFO]);
    json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(root);
}

int cli_check_config(struct cli *cli)
{
    static const struct option OPTIONS[] = {{"format", required_argument, NULL, 'f'},
                                            {NULL, 0, NULL, 0}};
    bool json = false;
    int opt;
    optind = 0; /* a fresh scan of this command's own arguments */
    while ((opt = getopt_long(cli->argc, cli->argv, "+", OPTIONS, NULL)) != -1) {
        if (opt != 'f' || (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0)) {
            cli_error(cli, "usage: check-config [--format table|json]");
            return CLI_USAGE;
        }
        json = strcmp(optarg, "json") == 0;
    }
    if (optind < cli->argc) {
        cli_error(cli, "usage: check-config [--format table|json]");
        return CLI_USAGE;
    }
    struct findings f = {.config = cli->config};
    check_login_types(&f);
    check_tls(&f);
    check_public_listeners(&f);
    check_directory(&f);
    check_kerberos(&f);
    check_cross_mailbox(&f);
    if (f.n > 1)
        qsort(f.v, f.n, sizeof(*f.v), by_severity);
    size_t counts[3] = {0, 0, 0};
    for (size_t i = 0; i < f.n; i++)
        counts[f.v[i].severity]++;
    if (json)
        print_json(&f, counts);
    else
        print_table(&f, counts);
    free(f.v);
    return counts[SEV_FAIL] ? CLI_FINDINGS : CLI_OK;
}
