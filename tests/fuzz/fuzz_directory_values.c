/* libFuzzer target: directory value decoders (SID, int64, GUID, UUID, AD sub-code), escaping. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/directory.h"

/* entryUUID normalisation is private to src/directory. */
#include "../../src/directory/internal.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant violated: %s\n", what);
        abort();
    }
}

static int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The SID text must say exactly what the bytes say: parse it back and compare. */
static void sid(const uint8_t *data, size_t size)
{
    char text[DIRECTORY_SID_TEXT_MAX];
    uint32_t rid = 0;
    if (!directory_parse_sid(data, size, text, sizeof(text), &rid)) {
        bool shape = size >= 8 && data[0] == 1 && data[1] >= 1 && data[1] <= 15 &&
                     size == 8 + 4 * (size_t)data[1];
        check(!shape, "well-formed SID refused");
        return;
    }
    check(strncmp(text, "S-1-", 4) == 0, "SID text prefix");
    size_t count = data[1];
    const char *p = text + 4;
    uint64_t authority;
    char *end;
    if (strncmp(p, "0x", 2) == 0) {
        authority = strtoull(p + 2, &end, 16);
        check(end - p == 14 && authority >= (UINT64_C(1) << 32), "hex authority");
    } else {
        authority = strtoull(p, &end, 10);
        check(authority < (UINT64_C(1) << 32), "decimal authority");
    }
    uint64_t want = 0;
    for (size_t i = 2; i < 8; i++)
        want = want << 8 | data[i];
    check(authority == want, "authority value");
    uint32_t last = 0;
    for (size_t i = 0; i < count; i++) {
        check(*end == '-', "sub-authority separator");
        unsigned long long v = strtoull(end + 1, &end, 10);
        const uint8_t *b = data + 8 + 4 * i;
        uint32_t sub =
            (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        check(v == sub, "sub-authority value");
        last = sub;
    }
    check(*end == '\0', "SID text ends after the sub-authorities");
    check(rid == last, "RID is the last sub-authority");
}

/* The accepted language is exactly -?[0-9]+ within int64 range: compare with strtoll. */
static void int64(const uint8_t *data, size_t size)
{
    int64_t v = 0;
    bool ok = directory_parse_int64((const char *)data, size, &v);
    char buf[64];
    bool shape = size > 0 && size < sizeof(buf);
    for (size_t i = 0; shape && i < size; i++)
        shape = (data[i] >= '0' && data[i] <= '9') || (i == 0 && data[i] == '-' && size > 1);
    if (!shape) {
        /* a longer string of digits is out of range unless it is all leading zeros */
        if (size >= sizeof(buf) && ok) {
            size_t i = data[0] == '-' ? 1 : 0;
            while (i < size && data[i] == '0')
                i++;
            check(size - i < 20, "long number accepted");
        } else {
            check(!ok, "junk accepted as an integer");
        }
        return;
    }
    memcpy(buf, data, size);
    buf[size] = '\0';
    errno = 0;
    long long want = strtoll(buf, NULL, 10);
    check(ok == (errno != ERANGE), "range check differs from strtoll");
    if (ok)
        check(v == want, "value differs from strtoll");
}

/* GUID text is 8-4-4-4-12 lower-case hex and maps back onto the same 16 bytes. */
static void guid(const uint8_t *data, size_t size)
{
    char text[DIRECTORY_GUID_TEXT_MAX];
    bool ok = directory_format_guid(data, size, text, sizeof(text));
    check(ok == (size == 16), "GUID length rule");
    if (!ok)
        return;
    char again[DIRECTORY_GUID_TEXT_MAX];
    check(directory_normalize_uuid(text, strlen(text), again, sizeof(again)), "GUID shape");
    check(strcmp(text, again) == 0, "GUID text not lower case");
    static const unsigned char order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    const char *p = text;
    for (size_t i = 0; i < 16; i++) {
        if (*p == '-')
            p++;
        int b = hex_digit(p[0]) << 4 | hex_digit(p[1]);
        check(b == data[order[i]], "GUID byte order");
        p += 2;
    }
}

static void uuid_text(const uint8_t *data, size_t size)
{
    char out[DIRECTORY_GUID_TEXT_MAX];
    if (!directory_normalize_uuid((const char *)data, size, out, sizeof(out)))
        return;
    check(size == 36 && strlen(out) == 36, "UUID length");
    for (size_t i = 0; i < 36; i++) {
        char c = (char)data[i];
        char lower = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        check(out[i] == lower, "UUID is the input in lower case");
        check(out[i] == '-' || (hex_digit(out[i]) >= 0 && !(out[i] >= 'A' && out[i] <= 'F')),
              "UUID characters");
    }
}

/* A sub-code comes from "data " followed by the same number in hex. */
static void subcode(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return;
    memcpy(text, data, size);
    text[size] = '\0';
    unsigned code = directory_ad_subcode(text);
    if (code != 0) {
        bool found = false;
        for (const char *p = strstr(text, "data "); p && !found; p = strstr(p + 1, "data ")) {
            unsigned v = 0;
            size_t n = 0;
            while (n < 8 && hex_digit(p[5 + n]) >= 0)
                v = v << 4 | (unsigned)hex_digit(p[5 + n++]);
            found = n > 0 && v == code;
        }
        check(found, "sub-code not after \"data \"");
    }
    free(text);
}

static bool valid_utf8(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n > len)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n;
    }
    return true;
}

/* Escaping: no special left raw, the result is UTF-8, and unescaping gives the input back. */
static void escape(const uint8_t *data, size_t size)
{
    char *out = directory_escape_filter_value((const char *)data, size);
    size_t len = strlen(out);
    check(len <= 3 * size, "escaped value too long");
    check(valid_utf8((const unsigned char *)out, len), "escaped value is not UTF-8");
    unsigned char *back = malloc(size + 1);
    if (back == NULL) {
        free(out);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = out[i];
        check(c != '*' && c != '(' && c != ')', "special character left unescaped");
        if (c == '\\') {
            check(i + 2 < len && hex_digit(out[i + 1]) >= 0 && hex_digit(out[i + 2]) >= 0,
                  "backslash without two hex digits");
            back[n++] = (unsigned char)(hex_digit(out[i + 1]) << 4 | hex_digit(out[i + 2]));
            i += 2;
        } else {
            back[n++] = (unsigned char)c;
        }
        check(n <= size, "unescaped longer than the input");
    }
    check(n == size && (size == 0 || memcmp(back, data, size) == 0), "round trip");
    free(back);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* private copies: ASan then catches any read past the value */
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    sid(copy, size);
    int64(copy, size);
    guid(copy, size);
    if (size >= 16)
        guid(copy, 16);
    uuid_text(copy, size);
    subcode(copy, size);
    escape(copy, size);
    free(copy);
    return 0;
}
