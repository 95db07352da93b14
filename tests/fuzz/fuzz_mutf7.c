/* libFuzzer target: mailbox names (mutf7_decode, mutf7_encode, utf8_valid,
 * mailbox_name_normalise_inbox) and LIST patterns (list_pattern_*) against reference readings. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/imap_args.h"

/*
 * The whole input is tried three ways:
 *   - as UTF-8: valid UTF-8 without NUL must encode, the encoding must be printable ASCII and
 *     decode back to the input (decode(encode(x)) == x); anything else must be refused;
 *   - as modified UTF-7: a name that decodes must be valid UTF-8, and encoding it again must
 *     give the input byte for byte: the decoder accepts the one shortest form only;
 *   - as a LIST pattern and a name, split at the first NUL (or the middle): the bit-set
 *     matcher must agree with a plain dynamic-programming matcher, and its "children" answer
 *     must not miss a name below that matches.
 */

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant violated: %s\n", what);
        abort();
    }
}

/* An independent strict UTF-8 validator: shortest forms, no surrogates, at most U+10FFFF. */
static bool ref_utf8(const unsigned char *s, size_t len, bool *has_nul)
{
    *has_nul = false;
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > len)
            return false;
        uint32_t v = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            v = v << 6 | (s[i + k] & 0x3f);
        }
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (v < min[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
            return false;
        if (v == 0)
            *has_nul = true;
        i += n;
    }
    return true;
}

static void as_utf8(const char *s, size_t len)
{
    bool nul;
    bool valid = ref_utf8((const unsigned char *)s, len, &nul);
    check(utf8_valid(s, len) == valid, "utf8_valid differs from the reference");
    char *enc = NULL;
    const char *error = NULL;
    bool ok = mutf7_encode(s, len, &enc, &error);
    check(ok == (valid && !nul), "encode accepts exactly valid UTF-8 without NUL");
    if (!ok) {
        check(error != NULL, "error without message");
        return;
    }
    size_t elen = strlen(enc);
    for (size_t i = 0; i < elen; i++)
        check(enc[i] >= 0x20 && enc[i] <= 0x7e, "encoding is not printable ASCII");
    char *dec = NULL;
    check(mutf7_decode(enc, elen, &dec, &error), "own encoding refused");
    check(strlen(dec) == len && memcmp(dec, s, len) == 0, "decode(encode(x)) != x");
    free(dec);
    free(enc);
}

static void as_mutf7(const char *s, size_t len)
{
    char *dec = NULL;
    const char *error = NULL;
    if (!mutf7_decode(s, len, &dec, &error)) {
        check(error != NULL, "error without message");
        check(dec == NULL, "output on error");
        return;
    }
    size_t dlen = strlen(dec);
    bool nul;
    check(ref_utf8((const unsigned char *)dec, dlen, &nul), "decoded name is not UTF-8");
    char *enc = NULL;
    check(mutf7_encode(dec, dlen, &enc, &error), "decoded name does not encode");
    check(strlen(enc) == len && memcmp(enc, s, len) == 0,
          "accepted a form that is not the shortest");
    free(enc);

    char *norm = strdup(dec);
    check(norm != NULL, "out of memory");
    mailbox_name_normalise_inbox(norm, '/');
    check(strlen(norm) == dlen, "INBOX normalisation changed the length");
    check(strncasecmp(norm, dec, dlen) == 0, "INBOX normalisation changed more than case");
    if (strncmp(norm, "INBOX", 5) != 0)
        check(strcmp(norm, dec) == 0, "a name that is not INBOX was changed");
    free(norm);
    free(dec);
}

/* Reference LIST matching: the classic table over (pattern position, name position). */
static bool ref_match(const char *p, size_t pn, const char *name, size_t nn, char delim)
{
    size_t inbox = 0;
    if (nn >= 5 && strncasecmp(name, "INBOX", 5) == 0 &&
        (nn == 5 || (delim != '\0' && name[5] == delim)))
        inbox = 5;
    /* ok[i][j]: p[i..] matches name[j..] */
    bool *ok = calloc((pn + 1) * (nn + 1), sizeof(bool));
    check(ok != NULL, "out of memory");
#define OK(i, j) ok[(i) * (nn + 1) + (j)]
    OK(pn, nn) = true;
    for (size_t i = pn; i-- > 0;) {
        for (size_t j = nn + 1; j-- > 0;) {
            char c = p[i];
            bool wild = c == '*' || c == '%';
            bool r;
            if (wild) {
                bool crosses = c == '*' || delim == '\0';
                r = OK(i + 1, j) || (j < nn && (crosses || name[j] != delim) && OK(i, j + 1));
            } else {
                bool same =
                    j < nn && (name[j] == c || (j < inbox && (name[j] | 0x20) == (c | 0x20) &&
                                                ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')));
                r = same && OK(i + 1, j + 1);
            }
            OK(i, j) = r;
        }
    }
    bool result = OK(0, 0);
#undef OK
    free(ok);
    return result;
}

static void as_pattern(const char *s, size_t len)
{
    const char *nul = memchr(s, '\0', len);
    size_t pn = nul ? (size_t)(nul - s) : len / 2;
    if (pn > 200 || len - pn > 400)
        return; /* the reference is quadratic */
    char *pattern = strndup(s, pn);
    const char *rest = nul ? s + pn + 1 : s + pn;
    size_t nn = len - (size_t)(rest - s);
    char *name = strndup(rest, nn);
    check(pattern != NULL && name != NULL, "out of memory");
    nn = strlen(name); /* a NUL in the name ends it */
    static const char delims[] = {'/', '.', '\0'};
    for (size_t d = 0; d < sizeof(delims); d++) {
        const char *error = NULL;
        struct list_pattern *lp = list_pattern_new(pattern, delims[d], &error);
        check(lp != NULL, "short pattern refused");
        bool m = list_pattern_match(lp, name);
        check(m == ref_match(pattern, pn, name, nn, delims[d]), "LIST match differs");
        /* a name below this one that matches means "children" must have said yes */
        if (delims[d] == '\0') {
            check(!list_pattern_match_children(lp, name), "children in a flat namespace");
        } else if (m) {
            const char *last = strrchr(name, delims[d]);
            if (last != NULL && last > name && last[1] != '\0') {
                char *parent = strndup(name, (size_t)(last - name));
                check(parent != NULL, "out of memory");
                check(list_pattern_match_children(lp, parent), "children missed a match");
                free(parent);
            }
        }
        list_pattern_free(lp);
    }
    char *combined = list_pattern_combine(name, pattern, '/');
    check(strlen(combined) == (pn > 0 && pattern[0] == '/' ? pn : pn + nn) || nn == 0,
          "combined pattern length");
    free(combined);
    free(pattern);
    free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    as_utf8(s, size);
    as_mutf7(s, size);
    as_pattern(s, size);
    return 0;
}
