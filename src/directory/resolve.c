/* Login-name resolution (POLICY.md §1): detect the form, check the profile, find exactly one
 * account with an escaped filter, and apply "works only if alias = sAMAccountName". */
#include "postern/resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/util.h"

static bool same(const char *a, const char *b)
{
    return a && b && ascii_casecmp(a, b) == 0;
}

/* Runs a complete filter and keeps the single match. */
static enum auth_reason find_filter(struct directory *d, const char *filter, struct account **out,
                                    const char **server, struct auth_trace *t)
{
    struct account **found = NULL;
    size_t n_found = 0, n_matched = 0;
    enum directory_status st =
        directory_find_accounts(d, filter, &found, &n_found, 2, &n_matched, server);
    enum auth_reason reason = AUTH_REASON_NONE;
    if (st == DIRECTORY_UNAVAILABLE)
        reason = AUTH_REASON_DIRECTORY_UNAVAILABLE;
    else if (st != DIRECTORY_OK)
        reason = AUTH_REASON_DIRECTORY_ERROR;
    else if (n_matched == 0)
        reason = AUTH_REASON_UNKNOWN_ACCOUNT;
    else if (n_matched > 1)
        reason = AUTH_REASON_AMBIGUOUS_LOGIN; /* never the first hit (POLICY.md §1) */
    if (st == DIRECTORY_OK) {
        auth_trace_step(t, "search",
                        n_matched == 1   ? "1 account"
                        : n_matched == 0 ? "no account"
                                         : "ambiguous",
                        "%s", filter);
        for (size_t i = 0; i < n_found; i++)
            auth_trace_step(t, "  found", "", "%s", found[i]->dn);
    } else {
        auth_trace_step(t, "search", auth_reason_code(reason), "%s", filter);
    }
    if (reason == AUTH_REASON_NONE) {
        *out = found[0];
        found[0] = NULL;
    }
    directory_free_accounts(found, n_found);
    return reason;
}

/* (&(objectClass=user)(ATTRIBUTE=value)) with the value escaped (RFC 4515). The attribute is
 * always one of ours; the client's text never becomes part of a format string. */
enum auth_reason resolve_find_account(struct directory *d, const char *attribute, const char *value,
                                      struct account **out, const char **server,
                                      struct auth_trace *t)
{
    char *esc = directory_escape_filter_value(value, strlen(value));
    size_t n = strlen(attribute) + strlen(esc) + 32;
    char *filter = xmalloc(n);
    snprintf(filter, n, "(&(objectClass=user)(%s=%s))", attribute, esc);
    free(esc);
    enum auth_reason reason = find_filter(d, filter, out, server, t);
    free(filter);
    return reason;
}

static bool domain_matches(const struct domain_names *names, const char *domain)
{
    return same(domain, names->netbios) || same(domain, names->dns_domain);
}

/* An address found by mail/proxyAddresses: primary when it is `mail` or the upper-case SMTP:
 * proxy address (Exchange marks the primary with upper case), secondary otherwise. */
static enum login_form address_form(const struct account *a, const char *address)
{
    if (same(a->mail, address))
        return LOGIN_FORM_PRIMARY_SMTP;
    for (size_t i = 0; i < a->n_proxy_addresses; i++) {
        const char *v = a->proxy_addresses[i];
        if (strncmp(v, "SMTP:", 5) == 0 && same(v + 5, address))
            return LOGIN_FORM_PRIMARY_SMTP;
    }
    return LOGIN_FORM_PROXY_ADDRESS;
}

#define USER_FILTER "(&(objectClass=user)(%s=%%s))"

void resolve_login(struct directory *d, const struct domain_names *names,
                   const struct login_rules *rules, const char *login, struct resolution *out,
                   struct auth_trace *t)
{
    memset(out, 0, sizeof(*out));
    struct login_name ln;
    const char *why;
    if (!login_name_parse(login, &ln, &why)) {
        out->reason = AUTH_REASON_INVALID_LOGIN_NAME;
        auth_trace_step(t, "login form", auth_reason_code(out->reason), "%s", why);
        return;
    }
    out->form = ln.form;
    out->form_known = true;
    auth_trace_step(t, "login form", login_form_name(ln.form), "%s%s%s", ln.domain ? "domain " : "",
                    ln.domain ? ln.domain : "", ln.alias ? " with a mailbox alias" : "");
    struct account *a = NULL;

    if (ln.form == LOGIN_FORM_UPN) {
        out->reason = resolve_find_account(d, "userPrincipalName", ln.name, &a, &out->server, t);
        /* AD also accepts the implicit UPN sAMAccountName@<DNS domain> (not other suffixes) of
         * an account that has no userPrincipalName. */
        const char *at = strrchr(ln.name, '@');
        if (out->reason == AUTH_REASON_UNKNOWN_ACCOUNT && same(at + 1, names->dns_domain)) {
            char *local = xstrndup(ln.name, (size_t)(at - ln.name));
            struct account *b = NULL;
            enum auth_reason r =
                resolve_find_account(d, "sAMAccountName", local, &b, &out->server, t);
            free(local);
            if (r == AUTH_REASON_NONE && b->upn == NULL) {
                a = b;
                out->reason = r;
            } else {
                if (b)
                    account_free(b);
                /* an account with a UPN of its own is not found by its implicit one; only a
                 * directory failure is worth reporting instead of unknown_account */
                if (r != AUTH_REASON_UNKNOWN_ACCOUNT && r != AUTH_REASON_NONE)
                    out->reason = r;
            }
        }
        if (out->reason == AUTH_REASON_UNKNOWN_ACCOUNT) {
            /* Looked up even when the address forms are refused, so that the audit trail says
             * "login_form_refused" for someone typing their address (nothing is bound then).
             * proxyAddresses compares without case, so smtp:x finds SMTP:x too. */
            char *esc = directory_escape_filter_value(ln.name, strlen(ln.name));
            size_t n = 2 * strlen(esc) + 64;
            char *filter = xmalloc(n);
            snprintf(filter, n, "(&(objectClass=user)(|(mail=%s)(proxyAddresses=smtp:%s)))", esc,
                     esc);
            free(esc);
            out->reason = find_filter(d, filter, &a, &out->server, t);
            free(filter);
            if (out->reason == AUTH_REASON_NONE)
                out->form = address_form(a, ln.name);
        }
        if (out->reason == AUTH_REASON_NONE) {
            if (login_rule(rules, out->form) == FORM_REFUSED)
                out->reason = AUTH_REASON_FORM_REFUSED;
            auth_trace_step(t, "profile rule for the form",
                            out->reason == AUTH_REASON_NONE ? "pass" : "login_form_refused",
                            "%s under %s", login_form_name(out->form),
                            login_profile_name(rules->profile));
        }
    } else {
        bool refused = login_rule(rules, ln.form) == FORM_REFUSED;
        auth_trace_step(t, "profile rule for the form", refused ? "login_form_refused" : "pass",
                        "%s under %s", login_form_name(ln.form),
                        login_profile_name(rules->profile));
        if (refused) {
            out->reason = AUTH_REASON_FORM_REFUSED; /* refused before any lookup */
        } else if (ln.domain && !domain_matches(names, ln.domain)) {
            auth_trace_step(t, "domain", "unknown_domain", "%s is neither %s nor %s", ln.domain,
                            names->netbios ? names->netbios : "(no NetBIOS name)",
                            names->dns_domain ? names->dns_domain : "(no DNS name)");
            out->reason = AUTH_REASON_UNKNOWN_DOMAIN; /* never silently ignored */
        } else {
            out->reason = resolve_find_account(d, "sAMAccountName", ln.name, &a, &out->server, t);
        }
        if (out->reason == AUTH_REASON_NONE && ln.form == LOGIN_FORM_DOMAIN_NAME_ALIAS &&
            ln.alias != NULL) {
            /* DOMAIN\user\alias: user authenticates, the mailbox is the alias's (Exchange 2003) */
            struct account *owner = NULL;
            out->reason =
                resolve_find_account(d, "mailNickname", ln.alias, &owner, &out->server, t);
            if (out->reason == AUTH_REASON_UNKNOWN_ACCOUNT ||
                out->reason == AUTH_REASON_AMBIGUOUS_LOGIN)
                out->reason = AUTH_REASON_UNKNOWN_MAILBOX;
            out->mailbox_owner = owner;
        } else if (out->reason == AUTH_REASON_NONE &&
                   login_rule(rules, ln.form) == FORM_IF_ALIAS_IS_NAME &&
                   !same(a->alias, a->sam_account_name)) {
            /* The name opens the mailbox whose alias is that name: only the account's own
             * mailbox when alias = sAMAccountName (POLICY.md §1). */
            out->alias_mismatch = true;
        }
    }
    out->account = a;
    login_name_free(&ln);
}

void resolution_free(struct resolution *r)
{
    if (r->account)
        account_free(r->account);
    if (r->mailbox_owner)
        account_free(r->mailbox_owner);
    memset(r, 0, sizeof(*r));
}
