/* Mailbox names: syntax (modified UTF-7), canonical INBOX, and their Maildir++ directory names. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/util.h"

#define NAME_DEPTH_MAX 32
#define DISK_NAME_MAX 250 /* NAME_MAX less room for temporary suffixes */
/* A '.' inside a component, on disk: the modified UTF-7 of U+002E, which a valid name never
 * contains itself (printable ASCII must represent itself, RFC 3501 §5.1.3). */
#define DOT_ESCAPE "&AC4-"

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

/* The base64 between '&' and '-': whole UTF-16 units, zero padding bits, paired surrogates, and
 * only characters that may not be written directly (no printable ASCII, no controls). */
static bool shift_valid(const char *p, size_t len)
{
    uint32_t bits = 0;
    int nbits = 0;
    unsigned high = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(p[i]);
        if (v < 0)
            return false;
        bits = (bits << 6) | (uint32_t)v;
        nbits += 6;
        if (nbits < 16)
            continue;
        nbits -= 16;
        unsigned unit = (bits >> nbits) & 0xffff;
        bits &= (1u << nbits) - 1;
        if (high != 0) {
            if (unit < 0xdc00 || unit > 0xdfff)
                return false;
            high = 0;
        } else if (unit >= 0xd800 && unit <= 0xdbff) {
            high = unit;
        } else if ((unit >= 0xdc00 && unit <= 0xdfff) || unit < 0xa0) {
            return false; /* a lone low surrogate, ASCII (must be literal), a control */
        }
    }
    return high == 0 && nbits < 6 && bits == 0;
}

enum store_status store_name_check(const char *name, char *canonical, size_t size)
{
    size_t len = strlen(name);
    if (len == 0 || len > STORE_NAME_MAX) {
        store_set_error("mailbox name is empty or longer than %d bytes", STORE_NAME_MAX);
        return STORE_INVALID_NAME;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c > 0x7e || c == '*' || c == '%') {
            store_set_error("mailbox name has a control, 8-bit or wildcard character");
            return STORE_INVALID_NAME;
        }
        if (c == '&') {
            const char *end = strchr(name + i + 1, '-');
            if (end == NULL) {
                store_set_error("unterminated modified UTF-7 in mailbox name");
                return STORE_INVALID_NAME;
            }
            size_t n = (size_t)(end - (name + i + 1));
            if (n > 0 && !shift_valid(name + i + 1, n)) {
                store_set_error("malformed modified UTF-7 in mailbox name");
                return STORE_INVALID_NAME;
            }
            i += n + 1;
        }
    }
    int depth = 0;
    for (const char *comp = name;; depth++) {
        const char *slash = strchr(comp, '/');
        size_t clen = slash ? (size_t)(slash - comp) : strlen(comp);
        if (clen == 0 || comp[0] == '.' || depth >= NAME_DEPTH_MAX) {
            store_set_error("mailbox name has an empty, dot-leading or too deep component");
            return STORE_INVALID_NAME;
        }
        if (slash == NULL)
            break;
        comp = slash + 1;
    }
    if (size <= len)
        return STORE_INVALID_NAME;
    /* INBOX is case-insensitive (RFC 3501 §5.1), also as the first component */
    bool inbox = ascii_ncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/');
    snprintf(canonical, size, "%s%s", inbox ? "INBOX" : "", inbox ? name + 5 : name);
    char disk[DISK_NAME_MAX + 1];
    return name_to_disk(canonical, disk, sizeof disk);
}

enum store_status name_to_disk(const char *canonical, char *out, size_t size)
{
    if (strcmp(canonical, "INBOX") == 0) {
        out[0] = '\0';
        return STORE_OK;
    }
    size_t o = 0;
    if (size < 2)
        return STORE_INVALID_NAME;
    out[o++] = '.';
    for (const char *p = canonical; *p != '\0'; p++) {
        const char *piece = *p == '/' ? "." : *p == '.' ? DOT_ESCAPE : NULL;
        size_t plen = piece ? strlen(piece) : 1;
        if (o + plen >= size || o + plen > DISK_NAME_MAX) {
            store_set_error("mailbox name too long on disk");
            return STORE_INVALID_NAME;
        }
        if (piece != NULL)
            memcpy(out + o, piece, plen);
        else
            out[o] = *p;
        o += plen;
    }
    out[o] = '\0';
    return STORE_OK;
}

/* The inverse of name_to_disk; false for directories that are not valid canonical folders
 * (ours or another tool's), which are then not listed. */
bool disk_to_name(const char *disk, char *out, size_t size)
{
    if (disk[0] != '.' || disk[1] == '\0' || strcmp(disk, "..") == 0)
        return false;
    size_t o = 0;
    for (const char *p = disk + 1; *p != '\0';) {
        if (o + 1 >= size)
            return false;
        if (strncmp(p, DOT_ESCAPE, strlen(DOT_ESCAPE)) == 0) {
            out[o++] = '.';
            p += strlen(DOT_ESCAPE);
        } else {
            out[o++] = *p == '.' ? '/' : *p;
            p++;
        }
    }
    out[o] = '\0';
    char canonical[STORE_NAME_MAX + 1], again[DISK_NAME_MAX + 1];
    if (store_name_check(out, canonical, sizeof canonical) != STORE_OK ||
        strcmp(canonical, "INBOX") == 0 ||
        name_to_disk(canonical, again, sizeof again) != STORE_OK || strcmp(again, disk) != 0)
        return false;
    memcpy(out, canonical, strlen(canonical) + 1);
    return true;
}

char *mailbox_dir(const struct store_account *account, const char *canonical)
{
    char disk[DISK_NAME_MAX + 1];
    if (name_to_disk(canonical, disk, sizeof disk) != STORE_OK)
        return NULL;
    return disk[0] == '\0' ? xstrdup(account->root) : path_join(account->root, disk);
}

/* flag-keyword = atom (RFC 3501 §9): no atom-specials, no 8-bit, no backslash. */
bool store_keyword_valid(const char *keyword)
{
    size_t len = strlen(keyword);
    if (len == 0 || len > STORE_KEYWORD_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)keyword[i];
        if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
            return false;
    }
    return true;
}

enum store_status store_expand_root(const char *tmpl, const char *key, char *out, size_t size)
{
    size_t klen = strlen(key);
    if (klen == 0 || klen > 200 || key[0] == '.' || strchr(key, '/') != NULL) {
        store_set_error("mailbox key refused (empty, too long, '/' or leading '.')");
        return STORE_INVALID_NAME;
    }
    for (size_t i = 0; i < klen; i++) {
        if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f) {
            store_set_error("mailbox key has a control character");
            return STORE_INVALID_NAME;
        }
    }
    if (tmpl[0] != '/') {
        store_set_error("mail root template must be an absolute path");
        return STORE_INVALID;
    }
    size_t o = 0;
    for (const char *p = tmpl; *p != '\0'; p++) {
        const char *piece = p;
        size_t plen = 1;
        if (*p == '%') {
            if (p[1] == '%') {
                p++;
            } else if (p[1] == 'k') {
                piece = key;
                plen = klen;
                p++;
            } else if (p[1] >= '1' && p[1] <= '9' && p[2] == 'k') {
                plen = (size_t)(p[1] - '0');
                piece = key;
                if (plen > klen) {
                    store_set_error("mailbox key shorter than %%%zuk", plen);
                    return STORE_INVALID_NAME;
                }
                p += 2;
            } else {
                store_set_error("unknown %% sequence in mail root template");
                return STORE_INVALID;
            }
        }
        if (o + plen >= size) {
            store_set_error("mail root path too long");
            return STORE_INVALID;
        }
        memcpy(out + o, piece, plen);
        o += plen;
    }
    out[o] = '\0';
    return STORE_OK;
}
