/* Login names and the rules for them (POLICY.md §1): which form a typed name is, what the
 * active profile says about that form, and how the form maps to directory filters. */
#ifndef POSTERN_LOGIN_H
#define POSTERN_LOGIN_H

#include <stdbool.h>
#include <stddef.h>

enum login_form {
    LOGIN_FORM_NAME,              /* "jdoe": sAMAccountName, opens the mailbox alias "jdoe" */
    LOGIN_FORM_DOMAIN_NAME,       /* "EXAMPLE\jdoe" */
    LOGIN_FORM_DOMAIN_NAME_ALIAS, /* "EXAMPLE\jdoe\sales": jdoe opens mailbox "sales" */
    LOGIN_FORM_UPN,               /* "jdoe@example.test" as userPrincipalName */
    LOGIN_FORM_PRIMARY_SMTP,      /* "john.doe@example.test" as mail / SMTP: proxyAddress */
    LOGIN_FORM_PROXY_ADDRESS,     /* "jd@example.de" as a secondary smtp: proxyAddress */
    LOGIN_FORM_COUNT
};

/* What a profile says about a form. */
enum form_rule {
    FORM_REFUSED,
    FORM_ALLOWED,
    FORM_IF_ALIAS_IS_NAME, /* only when the account's alias equals its sAMAccountName */
};

enum login_profile { PROFILE_EXCHANGE2003, PROFILE_EXCHANGE2007, PROFILE_EXCHANGE2013 };

struct login_rules {
    enum login_profile profile;
    /* -1: as the profile says; otherwise an enum form_rule set in the configuration */
    int override[LOGIN_FORM_COUNT];
};

/* A typed login split into its parts (pointers into `storage`). */
struct login_name {
    enum login_form form; /* the syntactic form; "@" names are UPN first, then addresses */
    char *domain;         /* DOMAIN of DOMAIN\name forms, or NULL */
    char *name;           /* the account part (sAMAccountName, UPN or address) */
    char *alias;          /* the mailbox alias of DOMAIN\name\alias, or NULL */
};

/* Splits `login`; false (with *why) for names no form accepts: empty, control characters,
 * more than two backslashes, empty parts, over-long. */
bool login_name_parse(const char *login, struct login_name *out, const char **why);
void login_name_free(struct login_name *n);

enum form_rule login_rule(const struct login_rules *r, enum login_form f);
const char *login_form_name(enum login_form f);
bool login_form_from_name(const char *text, enum login_form *out);
const char *login_profile_name(enum login_profile p);
bool login_profile_from_name(const char *text, enum login_profile *out);

#endif
