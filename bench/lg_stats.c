/* Latency histograms of the load generator (log-linear, microseconds) and operation names. */
#include "loadgen.h"

static const char *const names[OP_KINDS] = {
    [OP_CONNECT] = "connect",
    [OP_LOGIN] = "login",
    [OP_SESSION_LOGIN] = "connect_to_login",
    [OP_SELECT] = "select",
    [OP_FETCH_HEADERS] = "fetch_headers",
    [OP_FETCH_BODY] = "fetch_body",
    [OP_STORE] = "store",
    [OP_APPEND] = "append",
    [OP_EXPUNGE] = "expunge",
    [OP_IDLE] = "idle",
    [OP_LOGOUT] = "logout",
    [OP_STAT] = "stat",
    [OP_UIDL] = "uidl",
    [OP_RETR] = "retr",
    [OP_SESSION] = "session",
};

const char *op_name(enum op_kind k)
{
    return names[k];
}

/* Values below HIST_SUB map to themselves; above, the power of two picks the row and the next
 * six bits below the leading one pick the column. */
static unsigned bucket_of(uint64_t us)
{
    if (us < HIST_SUB)
        return (unsigned)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us); /* >= 6 */
    unsigned row = msb - 5u;                            /* 1 for 64..127 */
    if (row >= HIST_POW)
        return HIST_POW * HIST_SUB - 1;
    unsigned col = (unsigned)(us >> (msb - 6u)) & (HIST_SUB - 1u);
    return row * HIST_SUB + col;
}

/* The lowest value that falls into bucket b. */
static uint64_t bucket_floor(unsigned b)
{
    unsigned row = b / HIST_SUB, col = b % HIST_SUB;
    if (row == 0)
        return col;
    return ((uint64_t)(HIST_SUB + col)) << (row - 1u);
}

void hist_add(struct histogram *h, uint64_t us)
{
    h->bucket[bucket_of(us)]++;
    h->count++;
    h->sum_us += (double)us;
    if (us > h->max_us)
        h->max_us = us;
}

uint64_t hist_percentile(const struct histogram *h, double p)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->count);
    if (rank >= h->count)
        rank = h->count - 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < HIST_POW * HIST_SUB; b++) {
        seen += h->bucket[b];
        if (seen > rank) {
            /* the middle of the bucket */
            uint64_t lo = bucket_floor(b), hi = bucket_floor(b + 1);
            uint64_t mid = lo + (hi - lo) / 2;
            return mid > h->max_us ? h->max_us : mid;
        }
    }
    return h->max_us;
}
