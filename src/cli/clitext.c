/* Terminal-safe, column-aligned printing of strings that clients and directories chose. */
#include "clitext.h"

#include <string.h>

/* Bytes of the piece at s: 1 for a plain byte, 2 for a UTF-8 C1 control (U+0080..U+009F),
 * with *escape set when the piece must be shown as \xNN escapes. */
static size_t piece(const unsigned char *s, int *escape)
{
    if (s[0] < 0x20 || s[0] == 0x7f) {
        *escape = 1;
        return 1;
    }
    if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f) {
        *escape = 1;
        return 2;
    }
    *escape = 0;
    return 1;
}

static int piece_width(const unsigned char *s, size_t n, int escape)
{
    if (escape)
        return (int)(4 * n);
    return (s[0] & 0xc0) == 0x80 ? 0 : 1; /* a continuation byte adds no column */
}

int clitext_width(const char *s)
{
    int w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int escape;
        size_t n = piece(p, &escape);
        w += piece_width(p, n, escape);
        p += n;
    }
    return w;
}

void clitext_print(FILE *out, const char *s, int width)
{
    int cut = width > 0 && clitext_width(s) > width;
    int limit = cut ? width - 3 : width;
    int w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int escape;
        size_t n = piece(p, &escape);
        int pw = piece_width(p, n, escape);
        if (limit > 0 && w + pw > limit)
            break;
        if (escape) {
            for (size_t i = 0; i < n; i++)
                fprintf(out, "\\x%02x", p[i]);
        } else {
            fputc(p[0], out);
        }
        w += pw;
        p += n;
        /* a cut never splits a UTF-8 sequence: finish the character */
        while (cut && (*p & 0xc0) == 0x80)
            fputc(*p++, out);
    }
    if (cut) {
        fputs("...", out);
        w += 3;
    }
    for (; w < width; w++)
        fputc(' ', out);
}
