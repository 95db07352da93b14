/* Bytes from the network for single sign-on, parsed strictly: SASL base64, NTLMSSP messages
 * (MS-NLMP 2.2.1) and the squid-2.5-ntlmssp helper's reply lines. */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
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

/* ---- local NTLMv2 (MS-NLMP 3.3.2) from an NT hash ------------------------------------------ */

#define NTLMSSP_NEGOTIATE_UNICODE 0x00000001u
#define NTLMSSP_REQUEST_TARGET 0x00000004u
#define NTLMSSP_NEGOTIATE_NTLM 0x00000200u
#define NTLMSSP_NEGOTIATE_ALWAYS_SIGN 0x00008000u
#define NTLMSSP_TARGET_TYPE_DOMAIN 0x00010000u
#define NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY 0x00080000u
#define NTLMSSP_NEGOTIATE_TARGET_INFO 0x00800000u
#define NTLMSSP_NEGOTIATE_128 0x20000000u
#define NTLMSSP_NEGOTIATE_KEY_EXCH 0x40000000u
#define NTLMSSP_NEGOTIATE_56 0x80000000u

static void put16le(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32le(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* ASCII text as UTF-16LE; the length in bytes. */
static size_t utf16_ascii(unsigned char *out, const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        out[n++] = (unsigned char)*s;
        out[n++] = 0;
    }
    return n;
}

/* An AV_PAIR (MS-NLMP 2.2.2.1) with a UTF-16 ASCII value. */
static size_t av_text(unsigned char *out, unsigned id, const char *value)
{
    size_t n = utf16_ascii(out + 4, value);
    put16le(out, id);
    put16le(out + 2, (unsigned)n);
    return n + 4;
}

size_t ntlm_make_challenge(const unsigned char server_challenge[8], const char *netbios_domain,
                           const char *netbios_host, const char *dns_domain, const char *dns_host,
                           uint64_t filetime, unsigned char *out, size_t outlen)
{
    /* 56 header bytes and, each name at most 255 characters: target name and four AV pairs
     * of up to 514 bytes, the timestamp and the end */
    const char *names[] = {netbios_domain, netbios_host, dns_domain, dns_host};
    for (size_t i = 0; i < 4; i++)
        if (names[i] == NULL || strlen(names[i]) > 255)
            return 0;
    if (outlen < 56 + 510 + 4 * 514 + 12 + 4)
        return 0;
    memset(out, 0, 56);
    memcpy(out, SIGNATURE, sizeof(SIGNATURE));
    put32le(out + 8, 2);
    /* no KEY_EXCH: the exported session key (for the MIC) is then the session base key */
    uint32_t flags = NTLMSSP_NEGOTIATE_UNICODE | NTLMSSP_REQUEST_TARGET | NTLMSSP_NEGOTIATE_NTLM |
                     NTLMSSP_NEGOTIATE_ALWAYS_SIGN | NTLMSSP_TARGET_TYPE_DOMAIN |
                     NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY | NTLMSSP_NEGOTIATE_TARGET_INFO |
                     NTLMSSP_NEGOTIATE_128 | NTLMSSP_NEGOTIATE_56;
    put32le(out + 20, flags);
    memcpy(out + 24, server_challenge, 8);
    /* Version (8 bytes at 48) stays zero: it is only for debugging (MS-NLMP 2.2.2.10) */
    size_t off = 56;
    size_t n = utf16_ascii(out + off, netbios_domain);
    put16le(out + 12, (unsigned)n);
    put16le(out + 14, (unsigned)n);
    put32le(out + 16, (uint32_t)off);
    off += n;
    size_t info = off;
    off += av_text(out + off, 2, netbios_domain); /* MsvAvNbDomainName */
    off += av_text(out + off, 1, netbios_host);   /* MsvAvNbComputerName */
    off += av_text(out + off, 4, dns_domain);     /* MsvAvDnsDomainName */
    off += av_text(out + off, 3, dns_host);       /* MsvAvDnsComputerName */
    put16le(out + off, 7);                        /* MsvAvTimestamp */
    put16le(out + off + 2, 8);
    for (int i = 0; i < 8; i++)
        out[off + 4 + i] = (unsigned char)(filetime >> (8 * i));
    off += 12;
    put16le(out + off, 0); /* MsvAvEOL */
    put16le(out + off + 2, 0);
    off += 4;
    put16le(out + 40, (unsigned)(off - info));
    put16le(out + 42, (unsigned)(off - info));
    put32le(out + 44, (uint32_t)info);
    return off;
}

static void hmac_md5(const unsigned char *key, size_t keylen, const unsigned char *data, size_t len,
                     unsigned char out[16])
{
    gnutls_hmac_fast(GNUTLS_MAC_MD5, key, keylen, data, len, out);
}

/* RC4 (for a client that insists on key exchange): a few lines, not worth a dependency. */
static void rc4(const unsigned char key[16], const unsigned char *in, size_t len,
                unsigned char *out)
{
    unsigned char s[256];
    for (int i = 0; i < 256; i++)
        s[i] = (unsigned char)i;
    for (int i = 0, j = 0; i < 256; i++) {
        j = (j + s[i] + key[i % 16]) & 0xff;
        unsigned char t = s[i];
        s[i] = s[j];
        s[j] = t;
    }
    for (size_t k = 0, i = 0, j = 0; k < len; k++) {
        i = (i + 1) & 0xff;
        j = (j + s[i]) & 0xff;
        unsigned char t = s[i];
        s[i] = s[j];
        s[j] = t;
        out[k] = in[k] ^ s[(s[i] + s[j]) & 0xff];
    }
    wipe(s, sizeof(s));
}

/* A name field as UTF-16LE (OEM text widened), upper-cased when asked: NTOWFv2 upper-cases
 * the user name (ASCII and Latin-1 letters here). */
static size_t name16(const unsigned char *p, size_t len, bool unicode, bool upper,
                     unsigned char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i += unicode ? 2 : 1) {
        unsigned c = unicode ? (unsigned)le16(p + i) : p[i];
        if (upper && ((c >= 'a' && c <= 'z') || (c >= 0xe0 && c <= 0xfe && c != 0xf7)))
            c -= 0x20;
        put16le(out + n, c);
        n += 2;
    }
    return n;
}

static bool same_bytes(const unsigned char *a, const unsigned char *b, size_t n)
{
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

enum ntlm_verdict ntlm_verify_v2(const unsigned char nt_hash[16],
                                 const unsigned char server_challenge[8],
                                 const unsigned char *negotiate, size_t negotiate_len,
                                 const unsigned char *challenge, size_t challenge_len,
                                 const unsigned char *msg, size_t len)
{
    if (msg == NULL || !has_header(msg, len, 3, 64))
        return NTLM_VERDICT_MALFORMED;
    const unsigned char *nt, *dom, *user, *key;
    size_t nt_len, dom_len, user_len, key_len;
    if (!field(msg, len, 20, &nt, &nt_len) || !field(msg, len, 28, &dom, &dom_len) ||
        !field(msg, len, 36, &user, &user_len) || !field(msg, len, 52, &key, &key_len))
        return NTLM_VERDICT_MALFORMED;
    uint32_t flags = le32(msg + 60);
    bool unicode = (flags & NTLM_FLAG_UNICODE) != 0;
    /* NTProofStr (16) + the client's blob: RespType, HiRespType, 6 reserved, time stamp (8),
     * client challenge (8), 4 reserved, then AV pairs (MS-NLMP 2.2.2.7) */
    if (nt_len < 16 + 28 + 4 || (unicode && (dom_len % 2 || user_len % 2)) || dom_len > 1024 ||
        user_len > 1024)
        return NTLM_VERDICT_MALFORMED;
    const unsigned char *blob = nt + 16;
    size_t blob_len = nt_len - 16;
    if (blob[0] != 1 || blob[1] != 1)
        return NTLM_VERDICT_MALFORMED;

    unsigned char ident[4096], key_nt[16], proof[16];
    size_t n = name16(user, user_len, unicode, true, ident);
    n += name16(dom, dom_len, unicode, false, ident + n);
    hmac_md5(nt_hash, 16, ident, n, key_nt); /* NTOWFv2 */
    unsigned char *buf = xmalloc(8 + blob_len);
    memcpy(buf, server_challenge, 8);
    memcpy(buf + 8, blob, blob_len);
    hmac_md5(key_nt, 16, buf, 8 + blob_len, proof);
    free(buf);
    if (!same_bytes(proof, nt, 16)) {
        wipe(key_nt, sizeof(key_nt));
        return NTLM_VERDICT_WRONG_PASSWORD;
    }

    /* MsvAvFlags bit 2 says a MIC is in the message: then it must be right */
    bool mic = false;
    for (size_t off = 28; off + 4 <= blob_len;) {
        unsigned id = le16(blob + off), l = le16(blob + off + 2);
        if (id == 0 || off + 4 + l > blob_len)
            break;
        if (id == 6 && l == 4 && (le32(blob + off + 4) & 0x2))
            mic = true;
        off += 4 + l;
    }
    enum ntlm_verdict v = NTLM_VERDICT_OK;
    if (mic) {
        if (len < 72 + 16 || negotiate == NULL || challenge == NULL) {
            v = NTLM_VERDICT_BAD_MIC;
        } else {
            unsigned char base[16], exported[16], want[16];
            hmac_md5(key_nt, 16, nt, 16, base); /* SessionBaseKey = KeyExchangeKey (v2) */
            if ((flags & NTLMSSP_NEGOTIATE_KEY_EXCH) && key_len == 16)
                rc4(base, key, 16, exported);
            else
                memcpy(exported, base, 16);
            size_t total = negotiate_len + challenge_len + len;
            unsigned char *all = xmalloc(total);
            memcpy(all, negotiate, negotiate_len);
            memcpy(all + negotiate_len, challenge, challenge_len);
            memcpy(all + negotiate_len + challenge_len, msg, len);
            memset(all + negotiate_len + challenge_len + 72, 0, 16);
            hmac_md5(exported, 16, all, total, want);
            free(all);
            if (!same_bytes(want, msg + 72, 16))
                v = NTLM_VERDICT_BAD_MIC;
            wipe(base, sizeof(base));
            wipe(exported, sizeof(exported));
        }
    }
    wipe(key_nt, sizeof(key_nt));
    return v;
}
