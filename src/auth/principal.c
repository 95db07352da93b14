/* From a proved Kerberos principal or NTLM identity to exactly one directory account. Unlike a
 * typed login there is no profile rule to apply: the identity names the account itself, and
 * the session opens that account's own mailbox, as a UPN login does (POLICY.md §1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/directory.h"
#include "postern/resolve.h"
#include "postern/sso.h"
#include "postern/util.h"

static bool same(const char *a, const char *b)
{
    return a && b && ascii_casecmp(a, b) == 0;
}

/* A UPN, or AD's implicit UPN sAMAccountName@<DNS domain> of an account without one. */
static enum auth_reason find_upn(struct directory *d, const struct domain_names *names,
                                 const char *upn, struct account **out, const char **server,
                                 struct auth_trace *t)
{
    enum auth_reason r = resolve_find_account(d, "userPrincipalName", upn, out, server, t);
    const char *at = strrchr(upn, '@');
    if (r != AUTH_REASON_UNKNOWN_ACCOUNT || at == NULL || !same(at + 1, names->dns_domain))
        return r;
    char *local = xstrndup(upn, (size_t)(at - upn));
    struct account *a = NULL;
    enum auth_reason r2 = resolve_find_account(d, "sAMAccountName", local, &a, server, t);
    free(local);
    if (r2 == AUTH_REASON_NONE && a->upn == NULL) {
        *out = a;
        return r2;
    }
    if (a)
        account_free(a);
    return r2 == AUTH_REASON_NONE ? AUTH_REASON_UNKNOWN_ACCOUNT : r2;
}

/* RFC 1964 §2.1.1 display form: components separated by '/', the realm after the last
 * unescaped '@', and '\' escaping '@', '/' and '\' inside a component. */
static bool split_principal(const char *p, char **name, char **realm, bool *several_components)
{
    size_t n = strlen(p), at = n;
    *several_components = false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\') {
            i++;
            continue;
        }
        if (p[i] == '@')
            at = i;
    }
    if (at == n || at == 0 || at + 1 == n)
        return false;
    char *out = xmalloc(at + 1);
    size_t o = 0;
    for (size_t i = 0; i < at; i++) {
        if (p[i] == '\\' && i + 1 < at) {
            out[o++] = p[++i];
            continue;
        }
        if (p[i] == '/')
            *several_components = true;
        out[o++] = p[i];
    }
    out[o] = '\0';
    *name = out;
    *realm = xstrdup(p + at + 1);
    return true;
}

static bool realm_known(const struct domain_names *names, const char *const *realms,
                        size_t n_realms, const char *realm)
{
    for (size_t i = 0; i < n_realms; i++)
        if (same(realms[i], realm))
            return true;
    /* AD: the realm is the domain's DNS name in upper case; Kerberos compares exactly. */
    if (n_realms == 0 && names->dns_domain) {
        if (strlen(realm) != strlen(names->dns_domain))
            return false;
        for (size_t i = 0; realm[i]; i++) {
            char c = names->dns_domain[i];
            if (c >= 'a' && c <= 'z')
                c = (char)(c - 'a' + 'A');
            if (realm[i] != c)
                return false;
        }
        return true;
    }
    return false;
}

void resolve_principal(struct directory *d, const struct domain_names *names,
                       const char *const *realms, size_t n_realms, const char *principal,
                       struct resolution *out, struct auth_trace *t)
{
    memset(out, 0, sizeof(*out));
    char *name = NULL, *realm = NULL;
    bool several = false;
    if (!split_principal(principal, &name, &realm, &several) || several) {
        /* service principals (host/x, imap/y) are not people */
        out->reason = AUTH_REASON_INVALID_LOGIN_NAME;
        auth_trace_step(t, "Kerberos principal", auth_reason_code(out->reason),
                        "%s is not user@REALM", principal);
        free(name);
        free(realm);
        return;
    }
    if (!realm_known(names, realms, n_realms, realm)) {
        out->reason = AUTH_REASON_UNKNOWN_REALM;
        auth_trace_step(t, "realm", auth_reason_code(out->reason), "%s is not %s", realm,
                        n_realms ? "a configured Realm" : "the domain's realm");
    } else if (strchr(name, '@') != NULL) {
        /* an enterprise principal (RFC 6806): the name is a UPN */
        auth_trace_step(t, "Kerberos principal", "enterprise name", "%s", name);
        out->reason = find_upn(d, names, name, &out->account, &out->server, t);
    } else {
        auth_trace_step(t, "Kerberos principal", "pass", "sAMAccountName %s", name);
        out->reason =
            resolve_find_account(d, "sAMAccountName", name, &out->account, &out->server, t);
    }
    free(name);
    free(realm);
}

void resolve_ntlm_identity(struct directory *d, const struct domain_names *names,
                           const char *identity, struct resolution *out, struct auth_trace *t)
{
    memset(out, 0, sizeof(*out));
    const char *slash = strchr(identity, '\\');
    const char *user = slash ? slash + 1 : identity;
    if (user[0] == '\0' || strchr(user, '\\') != NULL) {
        out->reason = AUTH_REASON_INVALID_LOGIN_NAME;
        auth_trace_step(t, "NTLM identity", auth_reason_code(out->reason), "%s", identity);
        return;
    }
    if (slash && slash != identity) {
        char *domain = xstrndup(identity, (size_t)(slash - identity));
        bool known = same(domain, names->netbios) || same(domain, names->dns_domain);
        auth_trace_step(t, "domain", known ? "pass" : "unknown_domain", "%s", domain);
        free(domain);
        if (!known) {
            out->reason = AUTH_REASON_UNKNOWN_DOMAIN; /* never silently ignored (POLICY.md §1) */
            return;
        }
        out->reason =
            resolve_find_account(d, "sAMAccountName", user, &out->account, &out->server, t);
    } else if (strchr(user, '@') != NULL) {
        out->reason = find_upn(d, names, user, &out->account, &out->server, t);
    } else {
        out->reason =
            resolve_find_account(d, "sAMAccountName", user, &out->account, &out->server, t);
    }
}

bool sso_authzid_is_own(const char *authzid, const char *principal, const struct account *a,
                        const struct domain_names *names)
{
    if (authzid == NULL || authzid[0] == '\0' || same(authzid, principal))
        return true;
    if (same(authzid, a->sam_account_name) || same(authzid, a->upn) || same(authzid, a->alias) ||
        same(authzid, a->mail))
        return true;
    const char *slash = strchr(authzid, '\\');
    if (slash && same(slash + 1, a->sam_account_name)) {
        char *domain = xstrndup(authzid, (size_t)(slash - authzid));
        bool ok = same(domain, names->netbios) || same(domain, names->dns_domain);
        free(domain);
        return ok;
    }
    return false;
}
