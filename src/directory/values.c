/* Decoders for directory values (SID, GUID, integers, AD bind diagnostics) and filter escaping. */
#include "postern/directory.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/util.h"

#include "internal.h"

void account_free(struct account *a)
{
    if (a == NULL)
        return;
    free(a->dn);
    free(a->sam_account_name);
    free(a->upn);
    free(a->alias);
    free(a->mail);
    for (size_t i = 0; i < a->n_proxy_addresses; i++)
        free(a->proxy_addresses[i]);
    free(a->proxy_addresses);
    free(a->guid);
    free(a->sid);
    for (size_t i = 0; i < a->n_member_of; i++)
        free(a->member_of[i]);
    free(a->member_of);
    for (size_t i = 0; i < a->n_protocol_settings; i++)
        free(a->protocol_settings[i]);
    free(a->protocol_settings);
    free(a);
}

/* MS-DTYP 2.4.2.2: Revision (1, always 1) | SubAuthorityCount (1, at most 15) |
 * IdentifierAuthority (6, big-endian) | SubAuthority[count] (4 each, little-endian).
 * An account SID always ends in its RID, so a SID without sub-authorities is refused. */
bool directory_parse_sid(const unsigned char *bytes, size_t len, char *text, size_t textlen,
                         uint32_t *rid)
{
    if (bytes == NULL || len < 8 || bytes[0] != 1)
        return false;
    size_t count = bytes[1];
    if (count == 0 || count > 15 || len != 8 + 4 * count)
        return false;
    uint64_t authority = 0;
    for (size_t i = 2; i < 8; i++)
        authority = authority << 8 | bytes[i];
    uint32_t sub[15];
    for (size_t i = 0; i < count; i++) {
        const unsigned char *p = bytes + 8 + 4 * i;
        sub[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    if (text != NULL) {
        char buf[DIRECTORY_SID_TEXT_MAX];
        int n;
        /* MS-DTYP 2.4.2.1: the authority is decimal below 2^32, else 0x and 12 hex digits. */
        if (authority < UINT64_C(1) << 32)
            n = snprintf(buf, sizeof(buf), "S-1-%" PRIu64, authority);
        else
            n = snprintf(buf, sizeof(buf), "S-1-0x%012" PRIX64, authority);
        for (size_t i = 0; i < count; i++)
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, "-%" PRIu32, sub[i]);
        if ((size_t)n >= textlen)
            return false;
        memcpy(text, buf, (size_t)n + 1);
    }
    if (rid != NULL)
        *rid = sub[count - 1];
    return true;
}

/* LDAP INTEGER values (RFC 4517 §3.3.16) as AD sends them: an optional '-' and decimal digits,
 * nothing else (no '+', no blanks). FILETIMEs need all 63 bits: 0x7FFFFFFFFFFFFFFF means
 * "never" in accountExpires. */
bool directory_parse_int64(const char *text, size_t len, int64_t *out)
{
    if (text == NULL || len == 0)
        return false;
    size_t i = 0;
    bool negative = text[0] == '-';
    if (negative)
        i = 1;
    if (i == len)
        return false;
    /* Accumulate as a negative number: its range includes INT64_MIN. */
    int64_t v = 0;
    for (; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        int digit = text[i] - '0';
        if (v < (INT64_MIN + digit) / 10)
            return false;
        v = v * 10 - digit;
    }
    if (!negative) {
        if (v == INT64_MIN)
            return false;
        v = -v;
    }
    if (out != NULL)
        *out = v;
    return true;
}

/* objectGUID is a Windows GUID in its in-memory order (MS-DTYP 2.3.4.2): Data1 (4 bytes),
 * Data2 and Data3 (2 bytes each) are little-endian, Data4 (8 bytes) is kept as is. The text
 * form that AD tools show (and that entryUUID uses) prints each field big-endian. */
bool directory_format_guid(const unsigned char *bytes, size_t len, char *out, size_t outlen)
{
    if (bytes == NULL || len != 16 || out == NULL || outlen < DIRECTORY_GUID_TEXT_MAX)
        return false;
    static const unsigned char order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        unsigned char b = bytes[order[i]];
        out[o++] = hex[b >> 4];
        out[o++] = hex[b & 0xf];
    }
    out[o] = '\0';
    return true;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool directory_normalize_uuid(const char *text, size_t len, char *out, size_t outlen)
{
    if (text == NULL || len != 36 || out == NULL || outlen < DIRECTORY_GUID_TEXT_MAX)
        return false;
    for (size_t i = 0; i < 36; i++) {
        bool hyphen = i == 8 || i == 13 || i == 18 || i == 23;
        if (hyphen ? text[i] != '-' : hex_value(text[i]) < 0)
            return false;
    }
    for (size_t i = 0; i < 36; i++)
        out[i] = text[i] >= 'A' && text[i] <= 'F' ? (char)(text[i] - 'A' + 'a') : text[i];
    out[36] = '\0';
    return true;
}

/* AD's diagnostic for a failed simple bind, e.g.
 *   80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1
 * carries the Win32 error after "data " (TECHNOTES §5). The word must stand alone ("metadata 5"
 * is not it) and be followed by at most 8 hex digits that end the token. */
unsigned directory_ad_subcode(const char *diagnostic)
{
    if (diagnostic == NULL)
        return 0;
    for (const char *p = strstr(diagnostic, "data "); p != NULL; p = strstr(p + 1, "data ")) {
        if (p > diagnostic) {
            char before = p[-1];
            if ((before >= 'a' && before <= 'z') || (before >= 'A' && before <= 'Z') ||
                (before >= '0' && before <= '9') || before == '_' || before == '-')
                continue;
        }
        const char *h = p + 5;
        unsigned value = 0;
        size_t n = 0;
        while (n < 9 && hex_value(h[n]) >= 0) {
            value = value << 4 | (unsigned)hex_value(h[n]);
            n++;
        }
        if (n == 0 || n > 8)
            continue;
        char after = h[n];
        if ((after >= 'g' && after <= 'z') || (after >= 'G' && after <= 'Z') || after == '_')
            continue;
        return value;
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF), or 0 if there is none. */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* RFC 4515 §3: '*', '(', ')', '\' and NUL must be written as \XX. Valid UTF-8 stays as it is
 * (so filters stay readable in logs); any other byte >= 0x80 is escaped too, because a filter
 * string must be UTF-8 and a server may refuse or mangle a stray byte. */
char *directory_escape_filter_value(const char *value, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *v = (const unsigned char *)value;
    if (value == NULL)
        len = 0;
    char *out = xmalloc(3 * len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = v[i];
        if (c >= 0x80) {
            size_t n = utf8_sequence(v + i, len - i);
            if (n > 0) {
                memcpy(out + o, v + i, n);
                o += n;
                i += n;
                continue;
            }
        }
        if (c == '*' || c == '(' || c == ')' || c == '\\' || c == '\0' || c >= 0x80) {
            out[o++] = '\\';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0xf];
        } else {
            out[o++] = (char)c;
        }
        i++;
    }
    out[o] = '\0';
    return out;
}
