/* Accounts that never get a session (POLICY.md §3) and per-protocol enablement (§4), decided
 * from the directory's own attributes before any password reaches the directory. */
#ifndef POSTERN_ACCOUNT_POLICY_H
#define POSTERN_ACCOUNT_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "postern/auth.h"
#include "postern/config.h"
#include "postern/directory.h"

/* Windows FILETIME (100 ns since 1601-01-01) of a Unix time. */
int64_t filetime_from_unix(int64_t seconds);

/* AUTH_REASON_NONE when the account may log in over `protocol`; otherwise why not.
 * `privileged_groups` are the DNs of Domain/Enterprise/Schema Admins (may be empty). */
enum auth_reason account_blocked(const struct account *a, enum protocol protocol,
                                 bool block_privileged, const char *const *privileged_groups,
                                 size_t n_privileged_groups, int64_t now_filetime);

#endif
