/* Brute-force penalties: failures counted per client address and per login name, and a
 * growing period during which further attempts are refused without asking the directory. */
#ifndef POSTERN_PENALTY_H
#define POSTERN_PENALTY_H

#include <stdbool.h>
#include <stdint.h>

#include "postern/addr.h"

struct penalty_rules {
    unsigned after;  /* failures before penalties start (0: never) */
    unsigned max_ms; /* longest penalty; also how long a quiet key is remembered */
};

/* 0 when an attempt may go ahead; otherwise the milliseconds of penalty left, and *by_client
 * says whether the client address (true) or the login name (false) is penalised. */
uint64_t penalty_check(const struct penalty_rules *r, const struct ip_addr *client,
                       const char *login, uint64_t now, bool *by_client);
/* Records the outcome of an attempt that reached a verdict on its credentials. */
void penalty_record(const struct penalty_rules *r, const struct ip_addr *client, const char *login,
                    bool success, uint64_t now);
/* Forget everything (tests). */
void penalty_reset(void);

#endif
