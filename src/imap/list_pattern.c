/* LIST and LSUB patterns (RFC 3501 §6.3.8): reference and pattern combined, "*" and "%" matched
 * by running all pattern positions at once over a bit set, so no input backtracks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/imap_args.h"
#include "postern/util.h"

enum { STAR = 256, PERCENT = 257 };

struct list_pattern {
    size_t n;        /* tokens; positions 0..n, n is the accepting one */
    size_t words;    /* uint64_t words per position set */
    char delim;      /* '\0': a flat namespace */
    uint64_t *chars; /* 256 sets: the positions whose token is that byte */
    uint64_t *star, *percent;
};

static uint64_t *set_at(const struct list_pattern *p, uint64_t *base, size_t i)
{
    return base + i * p->words;
}

static void set_bit(uint64_t *s, size_t bit)
{
    s[bit / 64] |= (uint64_t)1 << (bit % 64);
}

static bool test_bit(const uint64_t *s, size_t bit)
{
    return (s[bit / 64] >> (bit % 64)) & 1;
}

char *list_pattern_combine(const char *reference, const char *pattern, char delim)
{
    /* §6.3.8: a pattern that starts at the root ("/usr/doc/foo") ignores the reference; the
     * RFC's other examples are plain concatenations ("archive/" "%" is "archive/%"). */
    if (reference[0] == '\0' || (delim != '\0' && pattern[0] == delim))
        return xstrdup(pattern);
    size_t len = strlen(reference) + strlen(pattern) + 1;
    char *out = xmalloc(len);
    snprintf(out, len, "%s%s", reference, pattern);
    return out;
}

struct list_pattern *list_pattern_new(const char *pattern, char delim, const char **error)
{
    size_t len = strlen(pattern);
    if (len > LIST_PATTERN_MAX) {
        *error = "Mailbox pattern too long";
        return NULL;
    }
    /* Tokens, with each run of wildcards as one: "*" if it holds a "*", otherwise "%" (which
     * is "*" in a flat namespace). Afterwards no two wildcards are neighbours, which keeps the
     * closure over empty matches to one step. */
    int *tok = xmalloc((len ? len : 1) * sizeof(*tok));
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)pattern[i];
        int t = c == '*' || (c == '%' && delim == '\0') ? STAR : c == '%' ? PERCENT : c;
        if (t >= STAR && n > 0 && tok[n - 1] >= STAR) {
            if (t == STAR)
                tok[n - 1] = STAR;
            continue;
        }
        tok[n++] = t;
    }
    struct list_pattern *p = xcalloc(1, sizeof(*p));
    p->n = n;
    p->words = (n + 1 + 63) / 64;
    p->delim = delim;
    p->chars = xcalloc(256 * p->words, sizeof(uint64_t));
    p->star = xcalloc(p->words, sizeof(uint64_t));
    p->percent = xcalloc(p->words, sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        if (tok[i] == STAR)
            set_bit(p->star, i);
        else if (tok[i] == PERCENT)
            set_bit(p->percent, i);
        else
            set_bit(set_at(p, p->chars, (size_t)tok[i]), i);
    }
    free(tok);
    return p;
}

void list_pattern_free(struct list_pattern *p)
{
    if (p == NULL)
        return;
    free(p->chars);
    free(p->star);
    free(p->percent);
    free(p);
}

/* A wildcard position may match nothing: reaching it reaches the next position too. */
static void closure(const struct list_pattern *p, uint64_t *s)
{
    uint64_t carry = 0;
    for (size_t w = 0; w < p->words; w++) {
        uint64_t wild = s[w] & (p->star[w] | p->percent[w]);
        uint64_t next = wild << 1 | carry;
        carry = wild >> 63;
        s[w] |= next;
    }
}

/* One byte of the name: s becomes the positions reachable after it (t is scratch). */
static void step(const struct list_pattern *p, uint64_t *s, uint64_t *t, unsigned char c, bool fold)
{
    const uint64_t *lit = set_at(p, p->chars, c);
    const uint64_t *other = lit;
    if (fold && c >= 'a' && c <= 'z')
        other = set_at(p, p->chars, c - 'a' + 'A');
    else if (fold && c >= 'A' && c <= 'Z')
        other = set_at(p, p->chars, c - 'A' + 'a');
    bool is_delim = p->delim != '\0' && c == (unsigned char)p->delim;
    uint64_t carry = 0;
    for (size_t w = 0; w < p->words; w++) {
        uint64_t adv = s[w] & (lit[w] | other[w]);
        t[w] = adv << 1 | carry;
        carry = adv >> 63;
        t[w] |= s[w] & p->star[w];
        if (!is_delim)
            t[w] |= s[w] & p->percent[w];
    }
    memcpy(s, t, p->words * sizeof(*s));
    closure(p, s);
}

/* Runs name (and one delimiter more when `descend`); returns whether any position is alive or,
 * without descend, whether the accepting one is. */
static bool run(const struct list_pattern *p, const char *name, bool descend)
{
    uint64_t small[2 * 4];
    uint64_t *s = p->words <= 4 ? small : xcalloc(2 * p->words, sizeof(uint64_t));
    uint64_t *t = s + p->words;
    memset(s, 0, p->words * sizeof(*s));
    set_bit(s, 0);
    closure(p, s);
    /* §5.1: INBOX is case-insensitive, so its level matches the pattern in any case */
    size_t len = strlen(name), inbox = 0;
    if (ascii_ncasecmp(name, "INBOX", 5) == 0 &&
        (name[5] == '\0' || (p->delim != '\0' && name[5] == p->delim)))
        inbox = 5;
    for (size_t i = 0; i < len; i++)
        step(p, s, t, (unsigned char)name[i], i < inbox);
    bool result;
    if (descend) {
        step(p, s, t, (unsigned char)p->delim, false);
        result = false;
        for (size_t w = 0; w < p->words; w++)
            result |= s[w] != 0;
    } else {
        result = test_bit(s, p->n);
    }
    if (s != small)
        free(s);
    return result;
}

bool list_pattern_match(const struct list_pattern *p, const char *name)
{
    return run(p, name, false);
}

bool list_pattern_match_children(const struct list_pattern *p, const char *name)
{
    return p->delim != '\0' && run(p, name, true);
}
