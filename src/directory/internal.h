/* Private to src/directory: decoders shared by ldap.c and values.c but not part of the API. */
#ifndef POSTERN_DIRECTORY_INTERNAL_H
#define POSTERN_DIRECTORY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

/* Room for "S-1-" + "0x" and 12 hex digits + 15 × "-4294967295" + NUL (MS-DTYP 2.4.2.1). */
#define DIRECTORY_SID_TEXT_MAX 184
/* 8-4-4-4-12 hex digits with hyphens, + NUL. */
#define DIRECTORY_GUID_TEXT_MAX 37

/* entryUUID (RFC 4530) is already text; OpenLDAP writes it in lower case, but the syntax
 * allows either, and postern compares GUIDs as strings. Checks the 8-4-4-4-12 shape and
 * writes the lower-case form to out (at least DIRECTORY_GUID_TEXT_MAX bytes). */
bool directory_normalize_uuid(const char *text, size_t len, char *out, size_t outlen);

#endif
