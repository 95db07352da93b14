/* The audit trail: one JSON line per security-relevant event, for security teams. */
#ifndef POSTERN_AUDIT_H
#define POSTERN_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

#include "postern/addr.h"
#include "postern/config.h"

struct auth_attempt;
struct auth_result;

/* Opens (or, on reload, reopens for log rotation) the audit file; NULL path disables it. */
bool audit_open(const char *path, char *err, size_t errlen);
/* Also send every record to syslog (facility authpriv), or stop doing so. */
void audit_set_syslog(bool on);
void audit_close(void);

/* One function per event kind; each writes exactly one record. */
void audit_connection_refused(const struct listener_config *l, const struct ip_addr *peer,
                              unsigned peer_port, const char *reason);
void audit_auth(const struct auth_attempt *a, const struct auth_result *r);

/* JSON string escaping for values that come from clients (exposed for tests). */
size_t audit_json_escape(char *out, size_t outlen, const char *in, size_t inlen);

#endif
