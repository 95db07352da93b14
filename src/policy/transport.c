/* LoginType (POLICY.md §2) as one decision used by capabilities and by the auth gate alike. */
#include "postern/policy.h"

bool policy_mech_allowed(enum login_type t, bool tls, const struct auth_mech *m)
{
    if (!auth_mech_available(m)) /* GSSAPI without keys, NTLM without helpers */
        return false;
    if (tls)
        return true;
    switch (t) {
    case LOGIN_TYPE_PLAINTEXT_LOGIN:
        return true;
    case LOGIN_TYPE_PLAINTEXT_AUTHENTICATION:
        return (m->flags & MECH_PLAINTEXT) == 0;
    case LOGIN_TYPE_SECURE_LOGIN:
        return false;
    }
    return false;
}

bool policy_starttls_offered(const struct listener_config *l, bool tls)
{
    return l->tls == TLS_MODE_STARTTLS && !tls;
}
