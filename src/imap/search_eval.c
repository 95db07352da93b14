/* Evaluation of a SEARCH program against one message (RFC 3501 §6.4.4) and the case-insensitive
 * substring matching it needs: simple case folding of UTF-8 and a streaming Knuth-Morris-Pratt
 * search, linear in the text whatever the needle. */
#include <stdlib.h>
#include <string.h>

#include "args_internal.h"
#include "postern/imap_args.h"
#include "postern/util.h"

/* Bytes that are not UTF-8 become code points above U+10FFFF, so that they match only the same
 * bytes (a needle in Latin-1 still finds itself in a Latin-1 body). */
#define INVALID_BYTE(b) (0x110000u + (b))

uint32_t search_fold(uint32_t c)
{
    if (c < 0x80)
        return c >= 'A' && c <= 'Z' ? c + 0x20 : c;
    if (c < 0x100) {
        if (c >= 0xc0 && c <= 0xde && c != 0xd7) /* Latin-1 capitals, not the multiplication sign */
            return c + 0x20;
        return c == 0xb5 ? 0x3bc : c; /* micro sign folds to Greek mu */
    }
    if (c <= 0x17f) { /* Latin Extended-A: pairs, capital first */
        if (c == 0x130)
            return 'i';
        if (c == 0x178)
            return 0xff;
        if (c == 0x17f)
            return 's';
        if (c <= 0x12f || (c >= 0x132 && c <= 0x137) || (c >= 0x14a && c <= 0x177))
            return c | 1;
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e))
            return c & 1 ? c + 1 : c;
        return c;
    }
    if (c >= 0x386 && c <= 0x3c2) { /* Greek */
        if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2)
            return c + 0x20;
        if (c == 0x386)
            return 0x3ac;
        if (c >= 0x388 && c <= 0x38a)
            return c + 0x25;
        if (c == 0x38c)
            return 0x3cc;
        if (c == 0x38e || c == 0x38f)
            return c + 0x3f;
        return c == 0x3c2 ? 0x3c3 : c; /* final sigma */
    }
    if (c >= 0x400 && c <= 0x42f) /* Cyrillic */
        return c >= 0x410 ? c + 0x20 : c + 0x50;
    return c;
}

void search_string_init(struct search_string *s, const char *text, size_t len)
{
    memset(s, 0, sizeof(*s));
    s->text = xstrndup(text, len);
    s->len = len;
    s->folded = xmalloc((len ? len : 1) * sizeof(*s->folded));
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int r = utf8_next(p + i, len - i, &cp);
        if (r > 0) {
            s->folded[s->n_folded++] = search_fold(cp);
            i += (size_t)r;
        } else {
            s->folded[s->n_folded++] = INVALID_BYTE(p[i]);
            i++;
        }
    }
    /* next[i]: the longest proper prefix of folded[0..i] that is also its suffix */
    s->next = xmalloc((s->n_folded ? s->n_folded : 1) * sizeof(*s->next));
    s->next[0] = 0;
    size_t k = 0;
    for (size_t q = 1; q < s->n_folded; q++) {
        while (k > 0 && s->folded[k] != s->folded[q])
            k = s->next[k - 1];
        if (s->folded[k] == s->folded[q])
            k++;
        s->next[q] = k;
    }
}

void search_string_free(struct search_string *s)
{
    free(s->text);
    free(s->folded);
    free(s->next);
    memset(s, 0, sizeof(*s));
}

void search_scan_init(struct search_scan *scan, const struct search_string *needle)
{
    memset(scan, 0, sizeof(*scan));
    scan->needle = needle;
    scan->found = needle->n_folded == 0;
}

static void step(struct search_scan *scan, uint32_t cp)
{
    const struct search_string *n = scan->needle;
    cp = cp > 0x10ffff ? cp : search_fold(cp);
    while (scan->matched > 0 && n->folded[scan->matched] != cp)
        scan->matched = n->next[scan->matched - 1];
    if (n->folded[scan->matched] == cp)
        scan->matched++;
    if (scan->matched == n->n_folded)
        scan->found = true;
}

/* The first pending byte was not the start of a valid sequence: it stands for itself. */
static void drop_pending_byte(struct search_scan *scan)
{
    step(scan, INVALID_BYTE(scan->pending[0]));
    memmove(scan->pending, scan->pending + 1, --scan->n_pending);
}

bool search_scan_feed(struct search_scan *scan, const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t i = 0;
    /* finish a sequence cut by the previous piece, a byte at a time */
    while (scan->n_pending > 0 && !scan->found) {
        uint32_t cp;
        int r = utf8_next(scan->pending, scan->n_pending, &cp);
        if (r > 0) {
            step(scan, cp);
            scan->n_pending = 0;
        } else if (r < 0) {
            drop_pending_byte(scan);
        } else if (i < len) {
            scan->pending[scan->n_pending++] = p[i++];
        } else {
            return scan->found;
        }
    }
    while (i < len && !scan->found) {
        uint32_t cp;
        int r = utf8_next(p + i, len - i, &cp);
        if (r > 0) {
            step(scan, cp);
            i += (size_t)r;
        } else if (r < 0) {
            step(scan, INVALID_BYTE(p[i]));
            i++;
        } else {
            /* a cut sequence is at most 3 bytes */
            memcpy(scan->pending, p + i, len - i);
            scan->n_pending = len - i;
            break;
        }
    }
    return scan->found;
}

bool search_scan_end(struct search_scan *scan)
{
    while (scan->n_pending > 0 && !scan->found)
        drop_pending_byte(scan);
    scan->n_pending = 0;
    return scan->found;
}

bool search_string_find(const struct search_string *needle, const char *hay, size_t len)
{
    struct search_scan scan;
    search_scan_init(&scan, needle);
    search_scan_feed(&scan, hay, len);
    return search_scan_end(&scan);
}

/* ---- evaluation ---- */

static bool has_keyword(const struct search_message *m, const char *keyword)
{
    for (size_t i = 0; i < m->n_keywords; i++)
        if (ascii_casecmp(m->keywords[i], keyword) == 0)
            return true;
    return false;
}

/* §6.4.4 HEADER: a field of that name whose text contains the string; an empty string matches
 * every message that has the field at all. */
static bool header_matches(const struct search_key *k, const struct search_message *m)
{
    if (m->header == NULL)
        return false;
    for (size_t i = 0;; i++) {
        const char *v = m->header(m, k->header, i);
        if (v == NULL)
            return false;
        if (search_string_find(&k->needle, v, strlen(v)))
            return true;
    }
}

static bool date_matches(const struct search_key *k, const struct search_message *m)
{
    /* dates are compared "disregarding time and timezone": as calendar days */
    if (k->field == SEARCH_DATE_SENT && !m->has_sent_day)
        return false;
    int64_t day = k->field == SEARCH_DATE_SENT ? m->sent_day : m->internal_day;
    switch (k->type) {
    case SEARCH_BEFORE:
        return day < k->day;
    case SEARCH_ON:
        return day == k->day;
    default:
        return day >= k->day; /* SINCE: "within or later than" */
    }
}

static bool set_matches(const struct seqset *set, const struct search_message *m, uint32_t n)
{
    return set->last_result ? m->in_last_result : seqset_contains(set, n);
}

static bool eval(const struct search_key *k, const struct search_message *m)
{
    switch (k->type) {
    case SEARCH_ALL:
        return true;
    case SEARCH_AND:
        for (size_t i = 0; i < k->n_children; i++)
            if (!eval(&k->children[i], m))
                return false;
        return true;
    case SEARCH_OR:
        return eval(&k->children[0], m) || eval(&k->children[1], m);
    case SEARCH_NOT:
        return !eval(&k->children[0], m);
    case SEARCH_SEQSET:
        return set_matches(&k->set, m, m->seq);
    case SEARCH_UID:
        return set_matches(&k->set, m, m->uid);
    case SEARCH_FLAG:
        return (m->flags & k->flag) != 0;
    case SEARCH_KEYWORD:
        return has_keyword(m, k->keyword);
    case SEARCH_BEFORE:
    case SEARCH_ON:
    case SEARCH_SINCE:
        return date_matches(k, m);
    case SEARCH_LARGER:
        return m->size > k->number;
    case SEARCH_SMALLER:
        return m->size < k->number;
    case SEARCH_HEADER:
        return header_matches(k, m);
    case SEARCH_BODY:
    case SEARCH_TEXT:
        if (m->contains == NULL)
            return false;
        return m->contains(m, k->type == SEARCH_BODY ? SEARCH_PART_BODY : SEARCH_PART_TEXT,
                           &k->needle);
    case SEARCH_MODSEQ:
        return m->modseq >= k->number;
    }
    return false;
}

bool search_eval(const struct search_program *prog, const struct search_message *m)
{
    return eval(&prog->root, m);
}
