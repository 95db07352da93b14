/* Unit tests of the single sign-on parsers: SASL base64, NTLMSSP messages, ntlm_auth replies
 * and NT_STATUS reasons, the RFC 4752 layer choice and the ticket's service in an AP-REQ. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "postern/sso.h"

static void test_base64(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } good[] = {{"", ""}, {"YQ==", "a"}, {"YWI=", "ab"}, {"YWJj", "abc"}, {"KysvLw==", "++//"}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        unsigned char *out;
        size_t len;
        assert_true(sasl_b64_decode(good[i].in, strlen(good[i].in), &out, &len));
        assert_int_equal(len, strlen(good[i].out));
        assert_memory_equal(out, good[i].out, len);
        char *back = sasl_b64_encode(out, len);
        assert_string_equal(back, good[i].in);
        free(back);
        free(out);
    }
    /* no padding, bad padding, pad bits set, characters outside the alphabet, line breaks */
    static const char *bad[] = {"YQ",   "Y===",     "====", "YR==", "YWJ=YWJj", "YW=j",
                                "YW J", "YWJj\r\n", "YW-j", "YW_j", "=YWJ"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned char *out = (unsigned char *)"x";
        size_t len = 9;
        if (sasl_b64_decode(bad[i], strlen(bad[i]), &out, &len))
            fail_msg("accepted %s", bad[i]);
        assert_null(out);
        assert_int_equal(len, 0);
    }
}

/* An AUTHENTICATE message with Unicode names (MS-NLMP 2.2.1.3). */
static size_t put16(unsigned char *p, const char *ascii)
{
    size_t n = strlen(ascii);
    for (size_t i = 0; i < n; i++) {
        p[2 * i] = (unsigned char)ascii[i];
        p[2 * i + 1] = 0;
    }
    return 2 * n;
}

static void set_field(unsigned char *msg, size_t at, size_t len, size_t off)
{
    msg[at] = (unsigned char)len;
    msg[at + 1] = (unsigned char)(len >> 8);
    msg[at + 2] = msg[at];
    msg[at + 3] = msg[at + 1];
    msg[at + 4] = (unsigned char)off;
    msg[at + 5] = (unsigned char)(off >> 8);
    msg[at + 6] = 0;
    msg[at + 7] = 0;
}

static size_t authenticate_msg(unsigned char *msg, const char *domain, const char *user,
                               size_t nt_len, uint32_t flags)
{
    memset(msg, 0, 512);
    memcpy(msg, "NTLMSSP\0\3\0\0\0", 12);
    size_t off = 88;
    set_field(msg, 12, 24, off); /* LM */
    off += 24;
    set_field(msg, 20, nt_len, off);
    off += nt_len;
    size_t l = put16(msg + off, domain);
    set_field(msg, 28, l, off);
    off += l;
    l = put16(msg + off, user);
    set_field(msg, 36, l, off);
    off += l;
    l = put16(msg + off, "WS01");
    set_field(msg, 44, l, off);
    off += l;
    set_field(msg, 52, 0, off);
    msg[60] = (unsigned char)flags;
    return off;
}

static void test_ntlm_messages(void **state)
{
    (void)state;
    unsigned char neg[32] = "NTLMSSP\0\1\0\0\0\7\202\10\242";
    assert_true(ntlm_parse_negotiate(neg, 16));
    assert_false(ntlm_parse_negotiate(neg, 15));
    neg[8] = 3;
    assert_false(ntlm_parse_negotiate(neg, 16));
    neg[0] = 'X';
    assert_false(ntlm_parse_negotiate(neg, 16));

    unsigned char msg[512];
    struct ntlm_authenticate a;
    size_t len = authenticate_msg(msg, "CORP", "jdoe", 60, NTLM_FLAG_UNICODE);
    assert_true(ntlm_parse_authenticate(msg, len, &a));
    assert_string_equal(a.domain, "CORP");
    assert_string_equal(a.user, "jdoe");
    assert_string_equal(a.workstation, "WS01");
    assert_int_equal(a.nt_len, 60);
    assert_int_equal(a.lm_len, 24);
    ntlm_authenticate_clear(&a);
    /* a field reaching past the end */
    assert_false(ntlm_parse_authenticate(msg, len - 1, &a));
    /* OEM names: ASCII only */
    len = authenticate_msg(msg, "CORP", "jdoe", 60, 0);
    assert_false(ntlm_parse_authenticate(msg, len, &a)); /* UTF-16 bytes hold NULs */
    /* an unpaired surrogate in the user name */
    len = authenticate_msg(msg, "CORP", "ab", 60, NTLM_FLAG_UNICODE);
    msg[len - 8 - 3] = 0xd8;
    assert_false(ntlm_parse_authenticate(msg, len, &a));
    /* a paired one becomes 4 bytes of UTF-8 */
    len = authenticate_msg(msg, "CORP", "abcd", 60, NTLM_FLAG_UNICODE);
    unsigned char *user = msg + len - 8 - 8;
    user[0] = 0x3d, user[1] = 0xd8, user[2] = 0x00, user[3] = 0xde; /* U+1F600 */
    assert_true(ntlm_parse_authenticate(msg, len, &a));
    assert_string_equal(a.user, "\xf0\x9f\x98\x80"
                                "cd");
    ntlm_authenticate_clear(&a);
    assert_false(ntlm_parse_authenticate(msg, 40, &a));
}

static void test_ntlm_replies(void **state)
{
    (void)state;
    const char *arg;
    assert_int_equal(ntlm_parse_reply("TT TlRMTVNTUAACAAAA", &arg), NTLM_REPLY_TT);
    assert_string_equal(arg, "TlRMTVNTUAACAAAA");
    assert_int_equal(ntlm_parse_reply("AF CORP\\jdoe", &arg), NTLM_REPLY_AF);
    assert_string_equal(arg, "CORP\\jdoe");
    assert_int_equal(ntlm_parse_reply("NA NT_STATUS_ACCOUNT_DISABLED", &arg), NTLM_REPLY_NA);
    assert_int_equal(ntlm_parse_reply("BH", &arg), NTLM_REPLY_BH);
    assert_int_equal(ntlm_parse_reply("BH NT_STATUS_INVALID_PARAMETER", &arg), NTLM_REPLY_BH);
    assert_int_equal(ntlm_parse_reply("TT", &arg), NTLM_REPLY_BAD);
    assert_int_equal(ntlm_parse_reply("TT ", &arg), NTLM_REPLY_BAD);
    assert_int_equal(ntlm_parse_reply("TTX", &arg), NTLM_REPLY_BAD);
    assert_int_equal(ntlm_parse_reply("TT a\rb", &arg), NTLM_REPLY_BAD);
    assert_int_equal(ntlm_parse_reply("OK", &arg), NTLM_REPLY_BAD);
    assert_int_equal(ntlm_parse_reply("", &arg), NTLM_REPLY_BAD);

    unsigned code;
    assert_int_equal(ntlm_status_reason("NT_STATUS_ACCOUNT_LOCKED_OUT", &code),
                     AUTH_REASON_ACCOUNT_LOCKED);
    assert_int_equal(code, 0xc0000234);
    assert_int_equal(ntlm_status_reason("NT_STATUS_LOGON_FAILURE", &code),
                     AUTH_REASON_INVALID_CREDENTIALS);
    assert_int_equal(code, 0xc000006d);
    assert_int_equal(ntlm_status_reason("NT_STATUS_INVALID_WORKSTATION extra", &code),
                     AUTH_REASON_WORKSTATION_RESTRICTION);
    assert_int_equal(ntlm_status_reason("NT_STATUS_ACCOUNT_DISABLEDX", &code),
                     AUTH_REASON_INVALID_CREDENTIALS);
    assert_int_equal(code, 0);
}

static void test_layer_choice(void **state)
{
    (void)state;
    char *authzid;
    assert_true(krb_parse_layer_choice((const unsigned char *)"\1\0\0\0", 4, &authzid));
    assert_string_equal(authzid, "");
    free(authzid);
    assert_true(krb_parse_layer_choice((const unsigned char *)"\1\0\20\0asmith", 10, &authzid));
    assert_string_equal(authzid, "asmith");
    free(authzid);
    /* a layer we did not offer, too short, NUL in the authzid */
    assert_false(krb_parse_layer_choice((const unsigned char *)"\2\0\0\0", 4, &authzid));
    assert_false(krb_parse_layer_choice((const unsigned char *)"\1\0\0", 3, &authzid));
    assert_false(krb_parse_layer_choice((const unsigned char *)"\1\0\0\0a\0b", 7, &authzid));
}

/* DER, short lengths only: enough for a test ticket. */
static size_t tlv(unsigned char *out, unsigned char tag, const unsigned char *v, size_t len)
{
    out[0] = tag;
    out[1] = (unsigned char)len;
    memcpy(out + 2, v, len);
    return len + 2;
}

static size_t gs(unsigned char *out, const char *s)
{
    return tlv(out, 0x1b, (const unsigned char *)s, strlen(s));
}

static size_t ap_req_token(unsigned char *out, const char *service, const char *host,
                           const char *realm)
{
    unsigned char a[400], b[400], c[400];
    size_t n = gs(a, service);
    n += gs(a + n, host);
    size_t m = tlv(b, 0x30, a, n);                               /* name-string */
    m = tlv(c, 0xa1, b, m);                                      /* [1] */
    size_t k = tlv(a, 0xa0, (const unsigned char *)"\2\1\2", 3); /* [0] name-type 2 */
    memcpy(a + k, c, m);
    k = tlv(b, 0x30, a, k + m);                           /* PrincipalName */
    k = tlv(c, 0xa2, b, k);                               /* sname [2] */
    n = tlv(a, 0xa0, (const unsigned char *)"\2\1\5", 3); /* tkt-vno */
    size_t r = gs(b, realm);
    n += tlv(a + n, 0xa1, b, r);
    memcpy(a + n, c, k);
    n += k;
    n += tlv(a + n, 0xa3, (const unsigned char *)"\x30\0", 2); /* enc-part (empty here) */
    k = tlv(b, 0x30, a, n);
    k = tlv(c, 0x61, b, k);                                     /* Ticket */
    n = tlv(a, 0xa0, (const unsigned char *)"\2\1\5", 3);       /* pvno */
    n += tlv(a + n, 0xa1, (const unsigned char *)"\2\1\16", 3); /* msg-type 14 */
    n += tlv(a + n, 0xa3, c, k);                                /* ticket [3] */
    n = tlv(b, 0x30, a, n);
    n = tlv(c, 0x6e, b, n); /* AP-REQ */
    static const unsigned char oid[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                        0xf7, 0x12, 0x01, 0x02, 0x02};
    memcpy(a, oid, sizeof(oid));
    a[sizeof(oid)] = 1;
    a[sizeof(oid) + 1] = 0;
    memcpy(a + sizeof(oid) + 2, c, n);
    return tlv(out, 0x60, a, sizeof(oid) + 2 + n);
}

static void test_ap_req_target(void **state)
{
    (void)state;
    unsigned char tok[512];
    char service[64], host[64], realm[64];
    size_t len = ap_req_token(tok, "imap", "mail.corp.example.test", "CORP.EXAMPLE.TEST");
    assert_true(krb_parse_ap_req_target(tok, len, service, host, realm, sizeof(service)));
    assert_string_equal(service, "imap");
    assert_string_equal(host, "mail.corp.example.test");
    assert_string_equal(realm, "CORP.EXAMPLE.TEST");
    for (size_t cut = 0; cut < len; cut++)
        assert_false(krb_parse_ap_req_target(tok, cut, service, host, realm, sizeof(service)));
    /* a name part too long for the caller's buffer, or with characters a display form escapes */
    assert_false(krb_parse_ap_req_target(tok, len, service, host, realm, 8));
    len = ap_req_token(tok, "imap", "mail@evil", "CORP.EXAMPLE.TEST");
    assert_false(krb_parse_ap_req_target(tok, len, service, host, realm, sizeof(service)));
    /* not the krb5 mechanism */
    len = ap_req_token(tok, "imap", "mail", "R");
    tok[12] ^= 1;
    assert_false(krb_parse_ap_req_target(tok, len, service, host, realm, sizeof(service)));
}

/* MS-NLMP 4.2.4: NTLMv2 with the specification's values (user "User", domain "Domain",
 * password "Password", server challenge 0123456789abcdef, client challenge aa..aa, time 0). */
static void test_ntlmv2_known_answer(void **state)
{
    (void)state;
    static const unsigned char nt_hash[16] = {0xa4, 0xf4, 0x9c, 0x40, 0x65, 0x10, 0xbd, 0xca,
                                              0xb6, 0x82, 0x4e, 0xe7, 0xc3, 0x0f, 0xd8, 0x52};
    static const unsigned char server_challenge[8] = {0x01, 0x23, 0x45, 0x67,
                                                      0x89, 0xab, 0xcd, 0xef};
    static const unsigned char proof[16] = {0x68, 0xcd, 0x0a, 0xb8, 0x51, 0xe5, 0x1c, 0x96,
                                            0xaa, 0xbc, 0x92, 0x7b, 0xeb, 0xef, 0x6a, 0x1c};
    unsigned char blob[128];
    size_t b = 0;
    memcpy(blob,
           "\1\1\0\0\0\0\0\0"
           "\0\0\0\0\0\0\0\0",
           16); /* header, time 0 */
    b = 16;
    memset(blob + b, 0xaa, 8);
    b += 8;
    memset(blob + b, 0, 4);
    b += 4;
    blob[b++] = 2, blob[b++] = 0, blob[b++] = 12, blob[b++] = 0; /* MsvAvNbDomainName */
    b += put16(blob + b, "Domain");
    blob[b++] = 1, blob[b++] = 0, blob[b++] = 12, blob[b++] = 0; /* MsvAvNbComputerName */
    b += put16(blob + b, "Server");
    memset(blob + b, 0, 8); /* MsvAvEOL, then 4 bytes of padding */
    b += 8;
    unsigned char msg[512];
    memset(msg, 0, sizeof(msg));
    memcpy(msg, "NTLMSSP\0\3\0\0\0", 12);
    size_t off = 88;
    set_field(msg, 12, 0, off);
    set_field(msg, 20, 16 + b, off);
    memcpy(msg + off, proof, 16);
    memcpy(msg + off + 16, blob, b);
    off += 16 + b;
    size_t l = put16(msg + off, "Domain");
    set_field(msg, 28, l, off);
    off += l;
    l = put16(msg + off, "User");
    set_field(msg, 36, l, off);
    off += l;
    set_field(msg, 44, 0, off);
    set_field(msg, 52, 0, off);
    msg[60] = NTLM_FLAG_UNICODE;
    assert_int_equal(ntlm_verify_v2(nt_hash, server_challenge, NULL, 0, NULL, 0, msg, off),
                     NTLM_VERDICT_OK);
    unsigned char other[16];
    memcpy(other, nt_hash, 16);
    other[0] ^= 1;
    assert_int_equal(ntlm_verify_v2(other, server_challenge, NULL, 0, NULL, 0, msg, off),
                     NTLM_VERDICT_WRONG_PASSWORD);
    /* the user name is upper-cased (NTOWFv2): "user" proves the same */
    msg[off - 8] = 'u';
    assert_int_equal(ntlm_verify_v2(nt_hash, server_challenge, NULL, 0, NULL, 0, msg, off),
                     NTLM_VERDICT_OK);
    /* another server challenge: another proof */
    unsigned char sc[8];
    memcpy(sc, server_challenge, 8);
    sc[7] ^= 1;
    assert_int_equal(ntlm_verify_v2(nt_hash, sc, NULL, 0, NULL, 0, msg, off),
                     NTLM_VERDICT_WRONG_PASSWORD);
    assert_int_equal(ntlm_verify_v2(nt_hash, server_challenge, NULL, 0, NULL, 0, msg, 70),
                     NTLM_VERDICT_MALFORMED);

    unsigned char chal[NTLM_CHALLENGE_MAX];
    size_t n =
        ntlm_make_challenge(server_challenge, "CORP", "MAIL", "corp.example.com",
                            "mail.corp.example.com", 0x01d9000000000000ULL, chal, sizeof(chal));
    assert_true(n > 56);
    assert_memory_equal(chal, "NTLMSSP\0\2\0\0\0", 12);
    assert_memory_equal(chal + 24, server_challenge, 8);
    assert_int_equal(ntlm_make_challenge(server_challenge, "CORP", "MAIL", "x", "y", 0, chal, 100),
                     0);
}

/* Every single sign-on reason has its stable code; the server's own trouble is temporary. */
static void test_reasons(void **state)
{
    (void)state;
    for (int r = AUTH_REASON_UNKNOWN_REALM; r <= AUTH_REASON_NTLM_NO_HASH; r++)
        assert_string_not_equal(auth_reason_code((enum auth_reason)r), "unknown");
    assert_string_equal(auth_reason_code(AUTH_REASON_KRB_REPLAY), "kerberos_replay");
    assert_true(auth_reason_is_temporary(AUTH_REASON_NTLM_HELPER_UNAVAILABLE));
    assert_true(auth_reason_is_temporary(AUTH_REASON_KRB_KEY_MISMATCH));
    assert_true(auth_reason_is_temporary(AUTH_REASON_DIRECTORY_UNAVAILABLE));
    assert_false(auth_reason_is_temporary(AUTH_REASON_KRB_CLOCK_SKEW));
    assert_false(auth_reason_is_temporary(AUTH_REASON_INVALID_CREDENTIALS));
    assert_false(auth_reason_is_failure(AUTH_REASON_NTLM_HELPER_UNAVAILABLE));
    assert_true(auth_reason_is_failure(AUTH_REASON_KRB_REPLAY));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),        cmocka_unit_test(test_ntlm_messages),
        cmocka_unit_test(test_ntlm_replies),  cmocka_unit_test(test_layer_choice),
        cmocka_unit_test(test_ap_req_target), cmocka_unit_test(test_ntlmv2_known_answer),
        cmocka_unit_test(test_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
