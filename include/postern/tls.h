/* TLS credentials (certificate, key, chain, priorities) shared read-only by all sessions. */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <gnutls/gnutls.h>
#include <stddef.h>

#include "postern/config.h"

/* Reference-counted so that SIGHUP can swap in new credentials while sessions established
 * with the old ones keep them until gnutls_deinit() (GnuTLS keeps a pointer). */
struct tls_creds;

bool tls_global_init(char *err, size_t errlen);
void tls_global_deinit(void);
/* Loads what `c` names; NULL with "file:line: problem" in err on failure; NULL without error
 * when the configuration uses no TLS. */
struct tls_creds *tls_creds_load(const struct config *c, char *err, size_t errlen);
struct tls_creds *tls_creds_ref(struct tls_creds *t);
void tls_creds_unref(struct tls_creds *t);
/* The credentials new handshakes use (implicit TLS and STARTTLS alike); a reload publishes
 * new ones. _current() returns a reference (NULL when none are published). */
void tls_creds_publish(struct tls_creds *t);
struct tls_creds *tls_creds_current(void);
/* A server session bound to fd, with ALPN restricted to the listener's protocol. */
gnutls_session_t tls_session_new(struct tls_creds *t, int fd, enum protocol p);

#endif
