/* libFuzzer target: SEARCH (search_parse on imap_parse_command's arguments, search_resolve,
 * search_eval against fixed fake messages) and the substring matcher behind it. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/imap.h"
#include "postern/imap_args.h"

/*
 * The input is what a client sends after "a SEARCH " (literals inline). An accepted program
 * must have a well-formed tree; it is resolved for 10 messages and UIDs up to 110 and evaluated
 * against three fixed messages, and "NOT (<input>)" must give the opposite answer for each.
 * Every needle of the program is matched against the fake header and body texts both at once
 * and cut into pieces, and compared with a naive search over independently decoded and folded
 * text. When the input holds a NUL, the bytes before it are a needle and the bytes after it a
 * text for the same comparison.
 */

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant violated: %s\n", what);
        abort();
    }
}

/* ---- a reference substring search ---- */

/* Strict UTF-8 at s[i]; anything else is the one byte, above U+10FFFF. */
static uint32_t ref_next(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char c = s[*i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n > 0 && *i + n <= len) {
        uint32_t v = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
        bool ok = true;
        for (size_t k = 1; k < n; k++) {
            ok &= (s[*i + k] & 0xc0) == 0x80;
            v = v << 6 | (s[*i + k] & 0x3f);
        }
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (ok && v >= min[n] && v <= 0x10ffff && (v < 0xd800 || v > 0xdfff)) {
            *i += n;
            return search_fold(v);
        }
    }
    (*i)++;
    return 0x110000u + c;
}

static size_t ref_decode(const char *s, size_t len, uint32_t *out)
{
    size_t n = 0, i = 0;
    while (i < len)
        out[n++] = ref_next((const unsigned char *)s, len, &i);
    return n;
}

static bool ref_find(const char *needle, size_t nlen, const char *hay, size_t hlen)
{
    uint32_t *a = malloc((nlen + 1) * sizeof(*a)), *b = malloc((hlen + 1) * sizeof(*b));
    check(a != NULL && b != NULL, "out of memory");
    size_t na = ref_decode(needle, nlen, a), nb = ref_decode(hay, hlen, b);
    bool found = na == 0;
    for (size_t i = 0; !found && i + na <= nb; i++)
        found = memcmp(b + i, a, na * sizeof(*a)) == 0;
    free(a);
    free(b);
    return found;
}

/* search_string_find, and the same over pieces cut by `seed`, against the reference. */
static void check_find(const struct search_string *needle, const char *hay, size_t len,
                       uint32_t seed)
{
    bool want = ref_find(needle->text, needle->len, hay, len);
    check(search_string_find(needle, hay, len) == want, "substring search differs");
    struct search_scan scan;
    search_scan_init(&scan, needle);
    size_t off = 0;
    while (off < len) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 5;
        if (n > len - off)
            n = len - off;
        search_scan_feed(&scan, hay + off, n);
        off += n;
    }
    check(search_scan_end(&scan) == want, "search over pieces differs");
}

/* ---- fake messages ---- */

struct fake {
    struct search_message m;
    const char *const (*headers)[2];
    size_t n_headers;
    const char *body, *text;
};

static const char *const headers_a[][2] = {
    {"From", "John Smith <js@example.org>"},
    {"To", "a@example.org"},
    {"To", "b@example.net"},
    {"Subject", "Caf\xc3\x89 STRASSE \xce\xa3\xce\x9f\xce\xa6\xce\x8a\xce\x91 \xe9"},
    {"X-Empty", ""},
    {"Cc", "\xd0\x9f\xd0\xa0\xd0\x98\xd0\x92\xd0\x95\xd0\xa2 <c@example.org>"},
};

static const char *fake_header(const struct search_message *m, const char *name, size_t index)
{
    const struct fake *f = m->ctx;
    for (size_t i = 0; i < f->n_headers; i++)
        if (strcasecmp(f->headers[i][0], name) == 0 && index-- == 0)
            return f->headers[i][1];
    return NULL;
}

static bool fake_contains(const struct search_message *m, enum search_text_part part,
                          const struct search_string *needle)
{
    const struct fake *f = m->ctx;
    const char *t = part == SEARCH_PART_BODY ? f->body : f->text;
    return search_string_find(needle, t, strlen(t));
}

static const char *const keywords_a[] = {"$Junk", "Work"};

static struct fake fakes[3];

static void init_fakes(void)
{
    struct fake *f = &fakes[0];
    f->m = (struct search_message){
        .seq = 3,
        .uid = 103,
        .flags = IMAP_FLAG_SEEN | IMAP_FLAG_RECENT,
        .keywords = keywords_a,
        .n_keywords = 2,
        .size = 1000,
        .internal_day = 8797,
        .has_sent_day = true,
        .sent_day = 8796,
        .modseq = 50,
        .header = fake_header,
        .contains = fake_contains,
        .ctx = f,
    };
    f->headers = headers_a;
    f->n_headers = sizeof(headers_a) / sizeof(headers_a[0]);
    f->body = "the body only \xe2\x82\xac 100 \xc3\xa9t\xc3\xa9";
    f->text = "Subject: hdr\r\n\r\nthe body only \xe2\x82\xac 100 \xc3\xa9t\xc3\xa9";

    f = &fakes[1]; /* no callbacks, no Date:, in the saved result, the last message */
    f->m = (struct search_message){.seq = 10, .uid = 110, .in_last_result = true, .ctx = f};
    f->body = f->text = "";

    f = &fakes[2];
    f->m = (struct search_message){
        .seq = 1,
        .uid = 1,
        .flags = 0x3f,
        .size = UINT64_MAX,
        .internal_day = -719162,
        .has_sent_day = true,
        .sent_day = 2932896,
        .modseq = UINT64_MAX,
        .header = fake_header,
        .contains = fake_contains,
        .ctx = f,
    };
    f->headers = headers_a;
    f->n_headers = 2;
    f->body = "";
    f->text = "\xff\xfe";
}

/* ---- the program ---- */

static void walk(const struct search_key *k, int depth, uint32_t seed)
{
    check(depth <= 3 * SEARCH_MAX_DEPTH + 3, "tree deeper than the limit allows");
    switch (k->type) {
    case SEARCH_AND:
        check(k->n_children > 0, "empty AND");
        break;
    case SEARCH_OR:
        check(k->n_children == 2, "OR without two keys");
        break;
    case SEARCH_NOT:
        check(k->n_children == 1, "NOT without one key");
        break;
    default:
        check(k->n_children == 0, "children on a leaf");
    }
    if (k->type == SEARCH_FLAG)
        check(k->flag != 0 && (k->flag & (k->flag - 1)) == 0 && k->flag <= IMAP_FLAG_RECENT,
              "not one flag");
    if (k->type == SEARCH_KEYWORD)
        check(imap_keyword_valid(k->keyword, strlen(k->keyword)), "invalid keyword kept");
    if (k->type == SEARCH_HEADER || k->type == SEARCH_BODY || k->type == SEARCH_TEXT) {
        check(k->needle.text != NULL && k->needle.n_folded <= k->needle.len, "needle");
        check(k->type != SEARCH_HEADER || (k->header != NULL && k->header[0] != '\0'),
              "header key without a field");
        for (size_t i = 0; i < sizeof(headers_a) / sizeof(headers_a[0]); i++)
            check_find(&k->needle, headers_a[i][1], strlen(headers_a[i][1]), seed + (uint32_t)i);
        check_find(&k->needle, fakes[0].text, strlen(fakes[0].text), seed);
    }
    for (size_t i = 0; i < k->n_children; i++)
        walk(&k->children[i], depth + 1, seed);
}

static char *command(const char *prefix, const uint8_t *data, size_t size, const char *suffix,
                     size_t *len)
{
    size_t a = strlen(prefix), b = strlen(suffix);
    *len = a + size + b;
    char *buf = malloc(*len + 1);
    check(buf != NULL, "out of memory");
    snprintf(buf, a + 1, "%s", prefix);
    memcpy(buf + a, data, size);
    memcpy(buf + a + size, suffix, b + 1); /* with its NUL, as the reader leaves a command */
    return buf;
}

/* Parses and evaluates; returns the status, the answers in results[3]. */
static enum search_status run(const char *buf, size_t len, bool results[3], bool *plain,
                              uint32_t seed)
{
    struct imap_command cmd;
    const char *error = NULL;
    enum search_status st = SEARCH_BAD;
    if (imap_parse_command(buf, len, &cmd, &error)) {
        struct search_program p;
        error = NULL;
        st = search_parse(cmd.args, cmd.n_args, &p, &error);
        check(error != NULL || st == SEARCH_OK, "error without message");
        if (st == SEARCH_OK) {
            check(p.root.type == SEARCH_AND, "root is not AND");
            walk(&p.root, 0, seed);
            *plain = !p.esearch && p.charset == SEARCH_CHARSET_DEFAULT;
            check(p.esearch || p.returns == 0, "RETURN options without RETURN");
            search_resolve(&p, 10, 110);
            for (int i = 0; i < 3; i++)
                results[i] = search_eval(&p, &fakes[i].m);
            search_program_free(&p);
        } else {
            check(p.root.children == NULL, "refused program not cleared");
        }
    }
    imap_command_free(&cmd);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    static bool ready;
    if (!ready) {
        init_fakes();
        ready = true;
    }
    uint32_t seed = 2166136261u;
    for (size_t i = 0; i < size && i < 64; i++)
        seed = (seed ^ data[i]) * 16777619u;

    /* needle NUL text: the matcher alone */
    const uint8_t *nul = memchr(data, '\0', size);
    if (nul != NULL && size < 4096) {
        struct search_string s;
        search_string_init(&s, (const char *)data, (size_t)(nul - data));
        check_find(&s, (const char *)nul + 1, size - (size_t)(nul - data) - 1, seed);
        search_string_free(&s);
    }

    size_t len;
    char *buf = command("a SEARCH ", data, size, "\r\n", &len);
    bool results[3], plain = false;
    enum search_status st = run(buf, len, results, &plain, seed);
    free(buf);
    if (st != SEARCH_OK || !plain)
        return 0;
    /* NOT (keys) answers the opposite, where the wrapped command is still acceptable */
    buf = command("a SEARCH NOT (", data, size, ")\r\n", &len);
    bool negated[3];
    bool plain2 = false;
    if (run(buf, len, negated, &plain2, seed) == SEARCH_OK)
        for (int i = 0; i < 3; i++)
            check(negated[i] == !results[i], "NOT (keys) is not the opposite");
    free(buf);
    return 0;
}
