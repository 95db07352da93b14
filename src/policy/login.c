/* Login-name forms and the Exchange profiles that allow or refuse them (POLICY.md §1). */
#include "postern/login.h"

#include <stdlib.h>
#include <string.h>

#include "postern/util.h"

/* sAMAccountName is at most 20 characters, a UPN at most 1024 (MS-ADA3); an address at most
 * 254 (RFC 5321). Anything longer is no account of ours. */
#define LOGIN_MAX 1024

/* The table of POLICY.md §1. Exchange 2013's undocumented cells follow 2007 (refused). */
static const enum form_rule PROFILES[][LOGIN_FORM_COUNT] = {
    [PROFILE_EXCHANGE2003] =
        {
            [LOGIN_FORM_NAME] = FORM_IF_ALIAS_IS_NAME,
            [LOGIN_FORM_DOMAIN_NAME] = FORM_IF_ALIAS_IS_NAME,
            [LOGIN_FORM_DOMAIN_NAME_ALIAS] = FORM_ALLOWED,
            [LOGIN_FORM_UPN] = FORM_ALLOWED,
            [LOGIN_FORM_PRIMARY_SMTP] = FORM_REFUSED,
            [LOGIN_FORM_PROXY_ADDRESS] = FORM_REFUSED,
        },
    [PROFILE_EXCHANGE2007] =
        {
            [LOGIN_FORM_NAME] = FORM_IF_ALIAS_IS_NAME,
            [LOGIN_FORM_DOMAIN_NAME] = FORM_IF_ALIAS_IS_NAME,
            [LOGIN_FORM_DOMAIN_NAME_ALIAS] = FORM_REFUSED,
            [LOGIN_FORM_UPN] = FORM_ALLOWED,
            [LOGIN_FORM_PRIMARY_SMTP] = FORM_REFUSED,
            [LOGIN_FORM_PROXY_ADDRESS] = FORM_REFUSED,
        },
    [PROFILE_EXCHANGE2013] =
        {
            [LOGIN_FORM_NAME] = FORM_IF_ALIAS_IS_NAME,
            [LOGIN_FORM_DOMAIN_NAME] = FORM_IF_ALIAS_IS_NAME,
            [LOGIN_FORM_DOMAIN_NAME_ALIAS] = FORM_REFUSED,
            [LOGIN_FORM_UPN] = FORM_ALLOWED,
            [LOGIN_FORM_PRIMARY_SMTP] = FORM_REFUSED,
            [LOGIN_FORM_PROXY_ADDRESS] = FORM_REFUSED,
        },
};

static const char *const FORM_NAMES[LOGIN_FORM_COUNT] = {
    [LOGIN_FORM_NAME] = "name",
    [LOGIN_FORM_DOMAIN_NAME] = "domain-name",
    [LOGIN_FORM_DOMAIN_NAME_ALIAS] = "domain-name-alias",
    [LOGIN_FORM_UPN] = "upn",
    [LOGIN_FORM_PRIMARY_SMTP] = "primary-smtp",
    [LOGIN_FORM_PROXY_ADDRESS] = "proxy-address",
};

static const char *const PROFILE_NAMES[] = {
    [PROFILE_EXCHANGE2003] = "exchange2003",
    [PROFILE_EXCHANGE2007] = "exchange2007",
    [PROFILE_EXCHANGE2013] = "exchange2013",
};

enum form_rule login_rule(const struct login_rules *r, enum login_form f)
{
    if (r->override[f] >= 0)
        return (enum form_rule)r->override[f];
    return PROFILES[r->profile][f];
}

const char *login_form_name(enum login_form f)
{
    return f < LOGIN_FORM_COUNT ? FORM_NAMES[f] : "unknown";
}

bool login_form_from_name(const char *text, enum login_form *out)
{
    for (int f = 0; f < LOGIN_FORM_COUNT; f++)
        if (ascii_casecmp(text, FORM_NAMES[f]) == 0) {
            *out = (enum login_form)f;
            return true;
        }
    return false;
}

const char *login_profile_name(enum login_profile p)
{
    return PROFILE_NAMES[p];
}

bool login_profile_from_name(const char *text, enum login_profile *out)
{
    for (size_t p = 0; p < ARRAY_LEN(PROFILE_NAMES); p++)
        if (ascii_casecmp(text, PROFILE_NAMES[p]) == 0) {
            *out = (enum login_profile)p;
            return true;
        }
    return false;
}

void login_name_free(struct login_name *n)
{
    free(n->domain);
    free(n->name);
    free(n->alias);
    memset(n, 0, sizeof(*n));
}

bool login_name_parse(const char *login, struct login_name *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    size_t len = strlen(login);
    if (len == 0) {
        *why = "empty login name"; /* POLICY.md §3: no anonymous login of any kind */
        return false;
    }
    if (len > LOGIN_MAX) {
        *why = "login name too long";
        return false;
    }
    for (const unsigned char *c = (const unsigned char *)login; *c; c++)
        if (*c < 0x20 || *c == 0x7f) {
            *why = "control character in login name";
            return false;
        }
    const char *b1 = strchr(login, '\\');
    if (b1 == NULL) {
        out->name = xstrdup(login);
        /* "@" names are tried as UPN first; the address forms are looked up after. */
        out->form = strchr(login, '@') ? LOGIN_FORM_UPN : LOGIN_FORM_NAME;
        if (out->form == LOGIN_FORM_UPN && (login[0] == '@' || login[len - 1] == '@')) {
            login_name_free(out);
            *why = "incomplete user principal name";
            return false;
        }
        return true;
    }
    const char *b2 = strchr(b1 + 1, '\\');
    if (b2 && strchr(b2 + 1, '\\')) {
        *why = "too many backslashes in login name";
        return false;
    }
    const char *name_end = b2 ? b2 : login + len;
    if (b1 == login || name_end == b1 + 1 || (b2 && b2[1] == '\0')) {
        *why = "empty part in DOMAIN\\name login";
        return false;
    }
    if (memchr(b1 + 1, '@', (size_t)(name_end - b1 - 1))) {
        *why = "'@' in the name part of DOMAIN\\name";
        return false;
    }
    out->domain = xstrndup(login, (size_t)(b1 - login));
    out->name = xstrndup(b1 + 1, (size_t)(name_end - b1 - 1));
    if (b2) {
        out->alias = xstrdup(b2 + 1);
        out->form = LOGIN_FORM_DOMAIN_NAME_ALIAS;
    } else {
        out->form = LOGIN_FORM_DOMAIN_NAME;
    }
    return true;
}
