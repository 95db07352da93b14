/* Login-name resolution: from the string a client typed to exactly one directory account and
 * the mailbox it opens, under the active profile (POLICY.md §1). Blocking: worker threads. */
#ifndef POSTERN_RESOLVE_H
#define POSTERN_RESOLVE_H

#include "postern/auth.h"
#include "postern/directory.h"
#include "postern/login.h"

/* The domain's names as the directory and the configuration give them. */
struct domain_names {
    const char *netbios;
    const char *dns_domain;
    const char *const *upn_suffixes;
    size_t n_upn_suffixes;
};

struct resolution {
    enum auth_reason reason; /* AUTH_REASON_NONE: `account` is the one */
    enum login_form form;
    bool form_known;
    struct account *account;       /* the account that authenticates */
    struct account *mailbox_owner; /* DOMAIN\name\alias: the mailbox's account, else NULL */
    /* The form needs alias = sAMAccountName and the account's alias differs: the caller
     * refuses (after the blocked-account checks, whose reasons matter more to the audit). */
    bool alias_mismatch;
    const char *server;
};

/* `trace` (may be NULL) hears of the form detected, each filter sent and what it found. */
void resolve_login(struct directory *d, const struct domain_names *names,
                   const struct login_rules *rules, const char *login, struct resolution *out,
                   struct auth_trace *trace);
void resolution_free(struct resolution *r);

/* (&(objectClass=user)(attribute=value)) with the value escaped (RFC 4515): exactly one
 * account, or why not (unknown_account, ambiguous_login, directory_*). The attribute is the
 * caller's, never the client's text. */
enum auth_reason resolve_find_account(struct directory *d, const char *attribute, const char *value,
                                      struct account **out, const char **server,
                                      struct auth_trace *t);

#endif
