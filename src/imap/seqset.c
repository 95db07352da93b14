/* Sequence sets and UID sets (RFC 3501 §9 sequence-set, RFC 5182 "$"): parsing into merged
 * ranges with bounded memory, resolution of "*", membership, iteration and formatting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args_internal.h"
#include "postern/imap_args.h"
#include "postern/util.h"

static int range_cmp(const void *a, const void *b)
{
    const struct seq_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorts ranges[0..n) and merges overlapping and adjacent ones; returns the new count. */
static size_t normalise(struct seq_range *ranges, size_t n)
{
    if (n < 2)
        return n;
    qsort(ranges, n, sizeof(*ranges), range_cmp);
    size_t out = 0;
    for (size_t i = 1; i < n; i++) {
        struct seq_range *last = &ranges[out];
        if ((uint64_t)ranges[i].lo <= (uint64_t)last->hi + 1) {
            if (ranges[i].hi > last->hi)
                last->hi = ranges[i].hi;
        } else {
            ranges[++out] = ranges[i];
        }
    }
    return out + 1;
}

static bool fail(struct seqset *set, const char **error, const char *why)
{
    seqset_free(set);
    *error = why;
    return false;
}

/* seq-number = nz-number / "*"; *star tells which. */
static bool seq_number(const char *s, size_t len, uint32_t *n, bool *star, const char **error)
{
    *star = false;
    if (len == 1 && s[0] == '*') {
        *star = true;
        *n = 0;
        return true;
    }
    uint64_t v;
    if (len > 0 && s[0] == '0') {
        *error = len == 1 ? "Sequence number 0 is not valid" : "Invalid sequence set";
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            *error = "Invalid sequence set";
            return false;
        }
    }
    if (!args_number(s, len, UINT32_MAX, true, &v)) {
        *error = len == 0 ? "Invalid sequence set" : "Sequence number too large";
        return false;
    }
    *n = (uint32_t)v;
    return true;
}

static void add_star(struct seqset *set, bool bounded, uint32_t n)
{
    if (bounded) {
        if (!set->star_bounded || n < set->star_lo)
            set->star_lo = n;
        if (!set->star_bounded || n > set->star_hi)
            set->star_hi = n;
        set->star_bounded = true;
    }
    set->star = true;
}

bool seqset_parse(const char *text, size_t len, struct seqset *set, const char **error)
{
    memset(set, 0, sizeof(*set));
    /* RFC 5182 §3 makes "$" a sequence-set of its own; like Dovecot, it is not combined */
    if (len == 1 && text[0] == '$') {
        set->last_result = true;
        return true;
    }
    if (len == 0)
        return fail(set, error, "Invalid sequence set");
    /* Parts are collected in a buffer twice the limit and merged whenever it is full, so that
     * "1,2,3,...,100000" (one range) passes and memory stays bounded whatever the input. */
    const size_t cap = (size_t)2 * SEQSET_MAX_RANGES;
    size_t alloc = 0, i = 0;
    for (;;) {
        size_t start = i;
        while (i < len && text[i] != ',')
            i++;
        const char *part = text + start, *colon = memchr(part, ':', i - start);
        uint32_t a, b;
        bool star_a, star_b;
        if (colon == NULL) {
            if (!seq_number(part, i - start, &a, &star_a, error))
                return fail(set, error, *error);
            b = a, star_b = star_a;
        } else {
            size_t alen = (size_t)(colon - part);
            if (!seq_number(part, alen, &a, &star_a, error) ||
                !seq_number(colon + 1, i - start - alen - 1, &b, &star_b, error))
                return fail(set, error, *error);
        }
        if (star_a || star_b) {
            /* "a:*" and "*:a" are the same range; "*" and "*:*" are the star alone */
            add_star(set, !(star_a && star_b), star_a ? b : a);
        } else {
            if (set->n_ranges == alloc && alloc < cap) {
                alloc = alloc ? 2 * alloc : 8;
                set->ranges = xrealloc(set->ranges, alloc * sizeof(*set->ranges));
            } else if (set->n_ranges == cap) {
                set->n_ranges = normalise(set->ranges, set->n_ranges);
                if (set->n_ranges > SEQSET_MAX_RANGES)
                    return fail(set, error, "Too many ranges in sequence set");
            }
            set->ranges[set->n_ranges].lo = a < b ? a : b;
            set->ranges[set->n_ranges].hi = a < b ? b : a;
            set->n_ranges++;
        }
        if (i == len)
            break;
        i++; /* the comma; an empty part after it fails above */
    }
    set->n_ranges = normalise(set->ranges, set->n_ranges);
    if (set->n_ranges > SEQSET_MAX_RANGES)
        return fail(set, error, "Too many ranges in sequence set");
    return true;
}

bool seqset_parse_arg(const struct imap_arg *arg, struct seqset *set, const char **error)
{
    if (arg->type != IMAP_ARG_ATOM) {
        memset(set, 0, sizeof(*set));
        *error = "Invalid sequence set";
        return false;
    }
    return seqset_parse(arg->str, arg->len, set, error);
}

void seqset_add(struct seqset *set, uint32_t lo, uint32_t hi)
{
    if (lo > hi) {
        uint32_t t = lo;
        lo = hi;
        hi = t;
    }
    /* the first range whose end reaches lo - 1 */
    size_t a = 0, b = set->n_ranges;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if ((uint64_t)set->ranges[mid].hi + 1 < lo)
            a = mid + 1;
        else
            b = mid;
    }
    /* absorb every range that overlaps or touches lo..hi */
    size_t end = a;
    while (end < set->n_ranges && set->ranges[end].lo <= (uint64_t)hi + 1) {
        if (set->ranges[end].lo < lo)
            lo = set->ranges[end].lo;
        if (set->ranges[end].hi > hi)
            hi = set->ranges[end].hi;
        end++;
    }
    if (end == a) {
        set->ranges = xrealloc(set->ranges, (set->n_ranges + 1) * sizeof(*set->ranges));
        memmove(&set->ranges[a + 1], &set->ranges[a], (set->n_ranges - a) * sizeof(*set->ranges));
        set->n_ranges++;
    } else if (end > a + 1) {
        memmove(&set->ranges[a + 1], &set->ranges[end],
                (set->n_ranges - end) * sizeof(*set->ranges));
        set->n_ranges -= end - a - 1;
    }
    set->ranges[a].lo = lo;
    set->ranges[a].hi = hi;
}

void seqset_resolve(struct seqset *set, uint32_t max)
{
    if (!set->star)
        return;
    set->star = false;
    /* The union of the star parts is one interval only when "*" is a number: in an empty
     * mailbox no message has one, so the parts naming "*" name nothing. */
    if (max == 0) {
        /* nothing */
    } else if (set->star_bounded) {
        seqset_add(set, set->star_lo < max ? set->star_lo : max,
                   set->star_hi > max ? set->star_hi : max);
    } else {
        seqset_add(set, max, max);
    }
    set->star_bounded = false;
    set->star_lo = set->star_hi = 0;
}

bool seqset_contains(const struct seqset *set, uint32_t n)
{
    size_t a = 0, b = set->n_ranges;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (set->ranges[mid].hi < n)
            a = mid + 1;
        else if (set->ranges[mid].lo > n)
            b = mid;
        else
            return true;
    }
    return false;
}

uint64_t seqset_count(const struct seqset *set)
{
    uint64_t n = 0;
    for (size_t i = 0; i < set->n_ranges; i++)
        n += (uint64_t)set->ranges[i].hi - set->ranges[i].lo + 1;
    return n;
}

void seqset_iter_init(struct seqset_iter *it)
{
    it->range = 0;
    it->next = 0;
}

bool seqset_next(const struct seqset *set, struct seqset_iter *it, uint32_t *n)
{
    while (it->range < set->n_ranges) {
        const struct seq_range *r = &set->ranges[it->range];
        if (it->next < r->lo)
            it->next = r->lo;
        if (it->next <= r->hi) {
            *n = (uint32_t)it->next++;
            return true;
        }
        it->range++;
    }
    return false;
}

char *seqset_format(const struct seqset *set)
{
    if (set->last_result)
        return xstrdup("$");
    /* "4294967295:4294967295," is 22 bytes; the star parts take two such at most */
    const size_t part = 22;
    size_t cap = (set->n_ranges + 2) * part + 1, len = 0;
    char *out = xmalloc(cap);
    out[0] = '\0';
    for (size_t i = 0; i < set->n_ranges; i++) {
        const struct seq_range *r = &set->ranges[i];
        if (r->lo == r->hi)
            len += (size_t)snprintf(out + len, cap - len, "%s%u", len ? "," : "", r->lo);
        else
            len += (size_t)snprintf(out + len, cap - len, "%s%u:%u", len ? "," : "", r->lo, r->hi);
    }
    const char *sep = len ? "," : "";
    if (!set->star)
        return out;
    if (!set->star_bounded)
        snprintf(out + len, cap - len, "%s*", sep);
    else if (set->star_lo == set->star_hi)
        snprintf(out + len, cap - len, "%s%u:*", sep, set->star_lo);
    else
        snprintf(out + len, cap - len, "%s%u:*,%u:*", sep, set->star_lo, set->star_hi);
    return out;
}

void seqset_free(struct seqset *set)
{
    free(set->ranges);
    memset(set, 0, sizeof(*set));
}
