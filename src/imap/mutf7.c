/* Mailbox names: strict modified UTF-7 (RFC 3501 §5.1.3) to and from UTF-8, and the checks and
 * INBOX normalisation (§5.1) every mailbox argument goes through. */
#include <stdlib.h>
#include <string.h>

#include "args_internal.h"
#include "postern/imap_args.h"
#include "postern/util.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == ',')
        return 63;
    return -1;
}

static bool printable_ascii(uint32_t c)
{
    return c >= 0x20 && c <= 0x7e;
}

bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int r = utf8_next(p + i, len - i, &cp);
        if (r <= 0)
            return false;
        i += (size_t)r;
    }
    return true;
}

static bool decode_fail(char *out, const char **error, const char *why)
{
    free(out);
    *error = why;
    return false;
}

/* One base64 run from in[*i] up to its "-"; UTF-8 appended at out + *o. */
static bool decode_run(const char *in, size_t len, size_t *i, char *out, size_t *o,
                       const char **why)
{
    uint32_t bits = 0, high = 0;
    unsigned nbits = 0;
    size_t units = 0;
    for (; *i < len && in[*i] != '-'; (*i)++) {
        int v = b64_value(in[*i]);
        if (v < 0) {
            *why = "Invalid character in modified BASE64";
            return false;
        }
        bits = (bits << 6 | (uint32_t)v) & 0x3fffff; /* at most 21 bits are ever pending */
        nbits += 6;
        if (nbits < 16)
            continue;
        nbits -= 16;
        uint32_t unit = bits >> nbits & 0xffff;
        units++;
        if (high != 0) {
            if (unit < 0xdc00 || unit > 0xdfff) {
                *why = "Invalid UTF-16 surrogate pair in mailbox name";
                return false;
            }
            *o += utf8_put(0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00), out + *o);
            high = 0;
        } else if (unit >= 0xd800 && unit <= 0xdbff) {
            high = unit;
        } else if (unit >= 0xdc00 && unit <= 0xdfff) {
            *why = "Invalid UTF-16 surrogate pair in mailbox name";
            return false;
        } else if (printable_ascii(unit) || unit == 0) {
            /* printable ASCII must represent itself; NUL cannot be in a name */
            *why = "Needlessly encoded character in mailbox name";
            return false;
        } else {
            *o += utf8_put(unit, out + *o);
        }
    }
    if (*i >= len) {
        *why = "Unterminated modified BASE64 in mailbox name";
        return false;
    }
    /* shortest form: whole UTF-16 units, less than one spare character, zero padding */
    if (units == 0 || nbits >= 6 || (bits & ((1u << nbits) - 1)) != 0 || high != 0) {
        *why = "Invalid modified BASE64 in mailbox name";
        return false;
    }
    (*i)++; /* "-" */
    return true;
}

bool mutf7_decode(const char *in, size_t len, char **utf8, const char **error)
{
    /* each base64 character yields at most 6 bits, each UTF-8 byte carries at least 5 */
    char *out = xmalloc(2 * len + 1);
    size_t o = 0, i = 0;
    while (i < len) {
        char c = in[i];
        if (!printable_ascii((unsigned char)c))
            return decode_fail(out, error, "Mailbox name is not printable ASCII");
        i++;
        if (c != '&') {
            out[o++] = c;
            continue;
        }
        if (i < len && in[i] == '-') { /* "&-" is "&" */
            out[o++] = '&';
            i++;
            continue;
        }
        const char *why = NULL;
        if (!decode_run(in, len, &i, out, &o, &why))
            return decode_fail(out, error, why);
        /* "-&" while in BASE64 is a null shift: two runs must be one (§5.1.3) */
        if (i + 1 < len && in[i] == '&' && in[i + 1] != '-')
            return decode_fail(out, error, "Adjacent modified BASE64 runs in mailbox name");
    }
    out[o] = '\0';
    *utf8 = out;
    return true;
}

struct run {
    uint32_t bits;
    unsigned nbits;
};

static void encode_unit(struct run *r, uint32_t unit, char *out, size_t *o)
{
    r->bits = (r->bits << 16 | unit) & 0x3fffff;
    r->nbits += 16;
    while (r->nbits >= 6) {
        r->nbits -= 6;
        out[(*o)++] = b64[r->bits >> r->nbits & 0x3f];
    }
}

static void end_run(struct run *r, char *out, size_t *o)
{
    if (r->nbits > 0)
        out[(*o)++] = b64[r->bits << (6 - r->nbits) & 0x3f];
    out[(*o)++] = '-';
    r->bits = 0;
    r->nbits = 0;
}

bool mutf7_encode(const char *utf8, size_t len, char **out_text, const char **error)
{
    /* worst case: a control character between printable ones, "&AAE-": 5 bytes for 1 */
    char *out = xmalloc(5 * len + 1);
    size_t o = 0, i = 0;
    bool in_run = false;
    struct run r = {0, 0};
    const unsigned char *p = (const unsigned char *)utf8;
    while (i < len) {
        uint32_t cp;
        int n = utf8_next(p + i, len - i, &cp);
        if (n <= 0 || cp == 0) {
            free(out);
            *error = "Mailbox name is not valid UTF-8";
            return false;
        }
        i += (size_t)n;
        if (printable_ascii(cp)) {
            if (in_run)
                end_run(&r, out, &o);
            in_run = false;
            out[o++] = (char)cp;
            if (cp == '&')
                out[o++] = '-';
            continue;
        }
        if (!in_run)
            out[o++] = '&';
        in_run = true;
        if (cp >= 0x10000) {
            encode_unit(&r, 0xd800 + ((cp - 0x10000) >> 10), out, &o);
            encode_unit(&r, 0xdc00 + ((cp - 0x10000) & 0x3ff), out, &o);
        } else {
            encode_unit(&r, cp, out, &o);
        }
    }
    if (in_run)
        end_run(&r, out, &o);
    out[o] = '\0';
    *out_text = out;
    return true;
}

void mailbox_name_normalise_inbox(char *name, char delim)
{
    if (ascii_ncasecmp(name, "INBOX", 5) == 0 &&
        (name[5] == '\0' || (delim != '\0' && name[5] == delim)))
        memcpy(name, "INBOX", 5);
}

bool mailbox_name_parse(const struct imap_arg *arg, char delim, bool utf8_accept, char **name,
                        const char **error)
{
    *name = NULL;
    if (!imap_arg_is_astring(arg)) {
        *error = "Expected a mailbox name";
        return false;
    }
    char *n;
    if (utf8_accept) {
        /* RFC 6855 §3: after ENABLE UTF8=ACCEPT names are UTF-8 as they are */
        if (!utf8_valid(arg->str, arg->len)) {
            *error = "Mailbox name is not valid UTF-8";
            return false;
        }
        n = xstrndup(arg->str, arg->len);
    } else if (!mutf7_decode(arg->str, arg->len, &n, error)) {
        return false;
    }
    size_t len = strlen(n);
    const char *why = NULL;
    if (len == 0)
        why = "Empty mailbox name";
    else if (len > MAILBOX_NAME_MAX)
        why = "Mailbox name too long";
    /* C0 controls, DEL and C1 controls (U+0080..U+009F, UTF-8 c2 80..c2 9f) */
    for (size_t i = 0; why == NULL && i < len; i++) {
        unsigned char c = (unsigned char)n[i];
        if (c < 0x20 || c == 0x7f || (c == 0xc2 && (unsigned char)n[i + 1] < 0xa0))
            why = "Control character in mailbox name";
    }
    if (why != NULL) {
        free(n);
        *error = why;
        return false;
    }
    mailbox_name_normalise_inbox(n, delim);
    *name = n;
    return true;
}
