/* Bytes from the network for single sign-on, parsed strictly: SASL base64, NTLMSSP messages
 * (MS-NLMP 2.2.1) and the squid-2.5-ntlmssp helper's reply lines. */
#include <stdlib.h>
#include <string.h>

#include "postern/sso.h"
#include "postern/util.h"

/* ---- base64 ----------------------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

bool sasl_b64_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (inlen % 4 != 0)
        return false;
    unsigned char *buf = xmalloc(inlen / 4 * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < inlen; i += 4) {
        int v[4];
        size_t pad = 0;
        for (size_t k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == inlen && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            v[k] = pad ? -1 : b64_value(c); /* nothing but '=' after the first '=' */
            if (v[k] < 0) {
                free(buf);
                return false;
            }
        }
        uint32_t n =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* RFC 4648 §3.5: the bits a pad character stands for must be zero */
        if ((pad == 1 && (n & 0xff) != 0) || (pad == 2 && (n & 0xffff) != 0)) {
            free(buf);
            return false;
        }
        buf[o++] = (unsigned char)(n >> 16);
        if (pad < 2)
            buf[o++] = (unsigned char)(n >> 8);
        if (pad < 1)
            buf[o++] = (unsigned char)n;
    }
    buf[o] = '\0';
    *out = buf;
    *outlen = o;
    return true;
}

char *sasl_b64_encode(const unsigned char *in, size_t len)
{
    char *out = xmalloc((len + 2) / 3 * 4 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t n = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            n |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            n |= in[i + 2];
        out[o++] = B64[(n >> 18) & 63];
        out[o++] = B64[(n >> 12) & 63];
        out[o++] = i + 1 < len ? B64[(n >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? B64[n & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* ---- NTLMSSP ------------------------------------------------------------------------------ */

static const unsigned char SIGNATURE[8] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', '\0'};

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static bool has_header(const unsigned char *msg, size_t len, uint32_t type, size_t min_len)
{
    return len >= min_len && memcmp(msg, SIGNATURE, sizeof(SIGNATURE)) == 0 &&
           le32(msg + 8) == type;
}

bool ntlm_parse_negotiate(const unsigned char *msg, size_t len)
{
    return msg != NULL && has_header(msg, len, 1, 16);
}

/* A field {len16, maxlen16, offset32} at `at`: its bytes must lie inside the message. */
static bool field(const unsigned char *msg, size_t len, size_t at, const unsigned char **data,
                  size_t *flen)
{
    size_t l = le16(msg + at), off = le32(msg + at + 4);
    if (off > len || l > len - off)
        return false;
    *data = msg + off;
    *flen = l;
    return true;
}

/* UTF-16LE (paired surrogates only, no NUL) to UTF-8; OEM strings must be ASCII. */
static char *name_text(const unsigned char *p, size_t len, bool unicode)
{
    if (!unicode) {
        for (size_t i = 0; i < len; i++)
            if (p[i] == 0 || p[i] >= 0x80)
                return NULL;
        return xstrndup((const char *)p, len);
    }
    if (len % 2 != 0)
        return NULL;
    char *out = xmalloc(len / 2 * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 2) {
        uint32_t c = le16(p + i);
        if (c >= 0xd800 && c <= 0xdbff) {
            uint32_t lo = i + 3 < len ? le16(p + i + 2) : 0;
            if (lo < 0xdc00 || lo > 0xdfff) {
                free(out);
                return NULL;
            }
            c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
            i += 2;
        } else if ((c >= 0xdc00 && c <= 0xdfff) || c == 0) {
            free(out);
            return NULL;
        }
        if (c < 0x80) {
            out[o++] = (char)c;
        } else if (c < 0x800) {
            out[o++] = (char)(0xc0 | c >> 6);
            out[o++] = (char)(0x80 | (c & 0x3f));
        } else if (c < 0x10000) {
            out[o++] = (char)(0xe0 | c >> 12);
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
            out[o++] = (char)(0x80 | (c & 0x3f));
        } else {
            out[o++] = (char)(0xf0 | c >> 18);
            out[o++] = (char)(0x80 | ((c >> 12) & 0x3f));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
            out[o++] = (char)(0x80 | (c & 0x3f));
        }
    }
    out[o] = '\0';
    return out;
}

bool ntlm_parse_authenticate(const unsigned char *msg, size_t len, struct ntlm_authenticate *out)
{
    memset(out, 0, sizeof(*out));
    /* MS-NLMP 2.2.1.3: the fixed part up to NegotiateFlags is 64 bytes */
    if (msg == NULL || !has_header(msg, len, 3, 64))
        return false;
    const unsigned char *lm, *nt, *dom, *user, *ws, *key;
    size_t lm_len, nt_len, dom_len, user_len, ws_len, key_len;
    if (!field(msg, len, 12, &lm, &lm_len) || !field(msg, len, 20, &nt, &nt_len) ||
        !field(msg, len, 28, &dom, &dom_len) || !field(msg, len, 36, &user, &user_len) ||
        !field(msg, len, 44, &ws, &ws_len) || !field(msg, len, 52, &key, &key_len))
        return false;
    out->flags = le32(msg + 60);
    out->lm_len = lm_len;
    out->nt_len = nt_len;
    bool unicode = (out->flags & NTLM_FLAG_UNICODE) != 0;
    out->domain = name_text(dom, dom_len, unicode);
    out->user = name_text(user, user_len, unicode);
    out->workstation = name_text(ws, ws_len, unicode);
    if (out->domain == NULL || out->user == NULL || out->workstation == NULL) {
        ntlm_authenticate_clear(out);
        return false;
    }
    return true;
}

void ntlm_authenticate_clear(struct ntlm_authenticate *a)
{
    free(a->domain);
    free(a->user);
    free(a->workstation);
    memset(a, 0, sizeof(*a));
}

/* ---- squid-2.5-ntlmssp replies (ntlm_auth(1)) ---------------------------------------------- */

enum ntlm_reply_kind ntlm_parse_reply(const char *line, const char **arg)
{
    static const struct {
        const char *word;
        enum ntlm_reply_kind kind;
    } KINDS[] = {
        {"TT", NTLM_REPLY_TT}, {"AF", NTLM_REPLY_AF}, {"NA", NTLM_REPLY_NA}, {"BH", NTLM_REPLY_BH}};
    *arg = "";
    for (size_t i = 0; i < ARRAY_LEN(KINDS); i++) {
        if (strncmp(line, KINDS[i].word, 2) != 0)
            continue;
        if (line[2] == '\0' && KINDS[i].kind == NTLM_REPLY_BH)
            return NTLM_REPLY_BH;
        if (line[2] != ' ' || line[3] == '\0')
            return KINDS[i].kind == NTLM_REPLY_BH ? NTLM_REPLY_BH : NTLM_REPLY_BAD;
        *arg = line + 3;
        for (const char *c = *arg; *c; c++)
            if ((unsigned char)*c < 0x20)
                return NTLM_REPLY_BAD;
        return KINDS[i].kind;
    }
    return NTLM_REPLY_BAD;
}

enum auth_reason ntlm_status_reason(const char *status, unsigned *code)
{
    /* MS-ERREF 2.3.1 values; the reasons are the ones AD's bind sub-codes give (TECHNOTES §2) */
    static const struct {
        const char *name;
        unsigned code;
        enum auth_reason reason;
    } STATUS[] = {
        {"NT_STATUS_LOGON_FAILURE", 0xc000006d, AUTH_REASON_INVALID_CREDENTIALS},
        {"NT_STATUS_WRONG_PASSWORD", 0xc000006a, AUTH_REASON_INVALID_CREDENTIALS},
        {"NT_STATUS_NO_SUCH_USER", 0xc0000064, AUTH_REASON_UNKNOWN_ACCOUNT},
        {"NT_STATUS_ACCOUNT_DISABLED", 0xc0000072, AUTH_REASON_ACCOUNT_DISABLED},
        {"NT_STATUS_ACCOUNT_LOCKED_OUT", 0xc0000234, AUTH_REASON_ACCOUNT_LOCKED},
        {"NT_STATUS_ACCOUNT_EXPIRED", 0xc0000193, AUTH_REASON_ACCOUNT_EXPIRED},
        {"NT_STATUS_PASSWORD_MUST_CHANGE", 0xc0000224, AUTH_REASON_PASSWORD_MUST_CHANGE},
        {"NT_STATUS_PASSWORD_EXPIRED", 0xc0000071, AUTH_REASON_PASSWORD_EXPIRED},
        {"NT_STATUS_INVALID_LOGON_HOURS", 0xc000006f, AUTH_REASON_LOGON_HOURS},
        {"NT_STATUS_INVALID_WORKSTATION", 0xc0000070, AUTH_REASON_WORKSTATION_RESTRICTION},
    };
    size_t n = strcspn(status, " ");
    for (size_t i = 0; i < ARRAY_LEN(STATUS); i++)
        if (strlen(STATUS[i].name) == n && strncmp(status, STATUS[i].name, n) == 0) {
            *code = STATUS[i].code;
            return STATUS[i].reason;
        }
    *code = 0;
    return AUTH_REASON_INVALID_CREDENTIALS; /* the DC said no, for a reason we do not name */
}
