/* Transport policy: what LoginType allows on a connection, and what is therefore offered. */
#ifndef POSTERN_POLICY_H
#define POSTERN_POLICY_H

#include <stdbool.h>

#include "postern/auth.h"
#include "postern/config.h"

/* POLICY.md §2: secure-login needs TLS for every mechanism; plaintext-authentication needs it
 * for mechanisms that send the secret as it is; plaintext-login allows everything. */
bool policy_mech_allowed(enum login_type t, bool tls, const struct auth_mech *m);
/* Whether STARTTLS (IMAP) or STLS (POP3) is offered on this connection now. */
bool policy_starttls_offered(const struct listener_config *l, bool tls);

#endif
