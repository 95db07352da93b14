/* libFuzzer target: sequence sets (seqset_parse, seqset_resolve, seqset_contains, seqset_next,
 * seqset_add, seqset_format) against a reference reading of RFC 3501 §9 sequence-set. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/imap_args.h"

/*
 * The input is the text of a set. A small reference parser, written straight from the grammar
 * (nz-number / "*", ":" ranges, "," lists; "$" alone), says whether it is valid and which parts
 * it has. seqset_parse() must accept exactly the valid texts (or refuse one for having more
 * than SEQSET_MAX_RANGES ranges), and for a few values of "*" the resolved set must contain
 * exactly the numbers the parts cover: checked at the ends of the first and last 16 parts and
 * their neighbours, at 0, 1, "*" and the largest number. Formatting and parsing again, and
 * rebuilding with seqset_add(), must give the same set.
 */

#define MAX_PARTS 70000

struct part {
    uint64_t a, b; /* STAR for "*" */
};

#define STAR ((uint64_t)1 << 40)

static struct part parts[MAX_PARTS];

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant violated: %s\n", what);
        abort();
    }
}

static bool ref_number(const char *s, size_t len, uint64_t *out)
{
    if (len == 1 && s[0] == '*') {
        *out = STAR;
        return true;
    }
    if (len == 0 || len > 10 || s[0] == '0')
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *out = v;
    return true;
}

/* Returns the number of parts, or -1 for an invalid text, -2 for "$". */
static long ref_parse(const char *s, size_t len)
{
    if (len == 1 && s[0] == '$')
        return -2;
    long n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ',')
            continue;
        const char *p = s + start;
        size_t plen = i - start;
        const char *colon = memchr(p, ':', plen);
        struct part pt;
        if (colon == NULL) {
            if (!ref_number(p, plen, &pt.a))
                return -1;
            pt.b = pt.a;
        } else if (!ref_number(p, (size_t)(colon - p), &pt.a) ||
                   !ref_number(colon + 1, plen - (size_t)(colon - p) - 1, &pt.b)) {
            return -1;
        }
        if (n == MAX_PARTS)
            return -1;
        parts[n++] = pt;
        start = i + 1;
    }
    return n;
}

/* Whether the parts cover x once "*" is max (an empty mailbox: parts with "*" are nothing). */
static bool ref_contains(long n, uint64_t max, uint64_t x)
{
    for (long i = 0; i < n; i++) {
        uint64_t a = parts[i].a, b = parts[i].b;
        if ((a == STAR || b == STAR) && max == 0)
            continue;
        if (a == STAR)
            a = max;
        if (b == STAR)
            b = max;
        if ((a <= x && x <= b) || (b <= x && x <= a))
            return true;
    }
    return false;
}

static void check_shape(const struct seqset *s)
{
    check(s->n_ranges <= SEQSET_MAX_RANGES + 1, "too many ranges kept");
    for (size_t i = 0; i < s->n_ranges; i++) {
        check(s->ranges[i].lo <= s->ranges[i].hi, "range reversed");
        if (i > 0)
            check((uint64_t)s->ranges[i - 1].hi + 1 < s->ranges[i].lo,
                  "ranges not sorted, disjoint and apart");
    }
}

static void check_same(const struct seqset *x, const struct seqset *y, const char *what)
{
    check(x->n_ranges == y->n_ranges && x->star == y->star && x->last_result == y->last_result,
          what);
    for (size_t i = 0; i < x->n_ranges; i++)
        check(x->ranges[i].lo == y->ranges[i].lo && x->ranges[i].hi == y->ranges[i].hi, what);
    check(x->star_bounded == y->star_bounded, what);
    if (x->star_bounded)
        check(x->star_lo == y->star_lo && x->star_hi == y->star_hi, what);
}

static void probe(const struct seqset *s, long n, uint64_t max, uint64_t x)
{
    if (x > UINT32_MAX)
        return;
    check(seqset_contains(s, (uint32_t)x) == ref_contains(n, max, x), "membership differs");
}

static void check_resolved(const char *text, size_t len, long n, uint32_t max)
{
    struct seqset s;
    const char *error = NULL;
    check(seqset_parse(text, len, &s, &error), "second parse failed");
    seqset_resolve(&s, max);
    check(!s.star, "star left after resolution");
    check_shape(&s);
    probe(&s, n, max, 0);
    probe(&s, n, max, 1);
    probe(&s, n, max, max);
    probe(&s, n, max, (uint64_t)max + 1);
    probe(&s, n, max, UINT32_MAX);
    /* the first and last parts: the reference is a linear scan per probe */
    for (long i = 0; i < n; i = i == 15 && n > 32 ? n - 16 : i + 1) {
        for (int k = 0; k < 2; k++) {
            uint64_t e = k ? parts[i].b : parts[i].a;
            if (e == STAR)
                e = max;
            probe(&s, n, max, e);
            probe(&s, n, max, e + 1);
            if (e > 0)
                probe(&s, n, max, e - 1);
        }
    }
    /* iteration visits seqset_count() numbers in order */
    uint64_t count = seqset_count(&s), seen = 0;
    struct seqset_iter it;
    uint32_t v, prev = 0;
    for (seqset_iter_init(&it); seen < 256 && seqset_next(&s, &it, &v); seen++) {
        check(seen == 0 || v > prev, "iteration out of order");
        check(seqset_contains(&s, v), "iteration outside the set");
        prev = v;
    }
    check(seen == count || seen == 256, "iteration count");
    /* the same set built range by range: backwards (every insertion in front) while that is
     * cheap, then forwards, with each range split in two halves added in the other order */
    struct seqset b = {0};
    if (s.n_ranges <= 256) {
        for (size_t i = s.n_ranges; i-- > 0;)
            seqset_add(&b, s.ranges[i].hi, s.ranges[i].lo);
    } else {
        for (size_t i = 0; i < s.n_ranges; i++) {
            uint32_t lo = s.ranges[i].lo, hi = s.ranges[i].hi, mid = lo + (hi - lo) / 2;
            seqset_add(&b, mid, hi);
            seqset_add(&b, lo, mid);
        }
    }
    check_same(&s, &b, "seqset_add rebuilds another set");
    seqset_free(&b);
    seqset_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    long n = ref_parse(text, size);
    struct seqset s;
    const char *error = NULL;
    bool ok = seqset_parse(text, size, &s, &error);
    if (!ok) {
        check(error != NULL, "error without message");
        check(s.ranges == NULL && s.n_ranges == 0, "refused set not cleared");
        check(n == -1 || strcmp(error, "Too many ranges in sequence set") == 0,
              "valid set refused");
        return 0;
    }
    check(n != -1, "invalid set accepted");
    check(s.last_result == (n == -2), "\"$\" misread");
    check_shape(&s);
    check(s.n_ranges <= SEQSET_MAX_RANGES, "more ranges than the limit");

    /* format and parse again: the same set */
    char *f = seqset_format(&s);
    struct seqset again;
    check(seqset_parse(f, strlen(f), &again, &error), "formatted set refused");
    check_same(&s, &again, "format does not parse back");
    seqset_free(&again);
    free(f);
    seqset_free(&s);

    if (n >= 0) {
        static const uint32_t maxes[] = {0, 7, UINT32_MAX};
        for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++)
            check_resolved(text, size, n, maxes[i]);
        /* and one "*" taken from the input */
        if (n > 0 && parts[0].a != STAR)
            check_resolved(text, size, n, (uint32_t)parts[0].a);
    }
    return 0;
}
