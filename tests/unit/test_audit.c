/* Unit tests of audit_json_escape() and of the audit records written with it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postern/audit.h"
#include "postern/auth.h"
#include "postern/log.h"

static void escape_eq_n(const char *in, size_t inlen, const char *want)
{
    char out[512];
    size_t n = audit_json_escape(out, sizeof(out), in, inlen);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

#define ESCAPE_EQ(lit, want) escape_eq_n((lit), sizeof(lit) - 1, (want))

static void test_printable_unchanged(void **state)
{
    (void)state;
    ESCAPE_EQ("alice@example.com", "alice@example.com");
    ESCAPE_EQ("", "");
    ESCAPE_EQ(" !#$%&'()*+,-./:;<=>?@[]^_`{|}~", " !#$%&'()*+,-./:;<=>?@[]^_`{|}~");
}

static void test_quote_and_backslash(void **state)
{
    (void)state;
    ESCAPE_EQ("a\"b", "a\\\"b");
    ESCAPE_EQ("DOMAIN\\user", "DOMAIN\\\\user");
    ESCAPE_EQ("\"\\\"", "\\\"\\\\\\\"");
    /* an attempt to close the string and add a field stays inside the value */
    ESCAPE_EQ("x\",\"result\":\"allow", "x\\\",\\\"result\\\":\\\"allow");
}

static void test_control_characters(void **state)
{
    (void)state;
    ESCAPE_EQ("a\nb", "a\\u000ab");
    ESCAPE_EQ("\r\n", "\\u000d\\u000a");
    ESCAPE_EQ("\t", "\\u0009");
    ESCAPE_EQ("\x1b[0m", "\\u001b[0m");
    ESCAPE_EQ("\x1f", "\\u001f");
    ESCAPE_EQ("\x7f", "\\u007f");
    /* a NUL inside the given length is data, not the end */
    ESCAPE_EQ("a\0b", "a\\u0000b");
}

static void test_utf8_kept(void **state)
{
    (void)state;
    /* valid UTF-8 (AD allows such names) stays readable */
    ESCAPE_EQ("caf\xc3\xa9", "caf\xc3\xa9");
    ESCAPE_EQ("j\xc3\xbcrgen@\xe4\xbe\x8b\xe3\x81\x88.jp",
              "j\xc3\xbcrgen@\xe4\xbe\x8b\xe3\x81\x88.jp");
    ESCAPE_EQ("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");
    ESCAPE_EQ("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"); /* U+10FFFF, the last one */
    ESCAPE_EQ("\xc2\x80", "\xc2\x80");                 /* U+0080, the first two-byte one */
}

static void test_invalid_utf8_replaced(void **state)
{
    (void)state;
    /* every byte that does not start a valid sequence becomes U+FFFD on its own */
    ESCAPE_EQ("\x80\xff", "\\ufffd\\ufffd");
    ESCAPE_EQ("caf\xe9", "caf\\ufffd");                            /* Latin-1 */
    ESCAPE_EQ("caf\xc3", "caf\\ufffd");                            /* cut short at the end */
    ESCAPE_EQ("\xc3(", "\\ufffd(");                                /* cut short by an ASCII byte */
    ESCAPE_EQ("\xc0\xaf", "\\ufffd\\ufffd");                       /* overlong "/" */
    ESCAPE_EQ("\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd");            /* overlong, three bytes */
    ESCAPE_EQ("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd");            /* surrogate U+D800 */
    ESCAPE_EQ("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"); /* above U+10FFFF */
    ESCAPE_EQ("\xf5\x80\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd");
    /* a bad byte does not swallow the valid character after it */
    ESCAPE_EQ("\xe4\xc3\xa9", "\\ufffd\xc3\xa9");
}

/* The longest prefix of the full escape that ends between two escaped units (an escape,
 * a character or a replacement) and fits in outlen with its NUL: the escapes of in[0..k)
 * that are prefixes of the full escape end exactly at those boundaries. */
static size_t expected_prefix(const char *in, size_t inlen, size_t outlen, char *want)
{
    char full[1024], part[1024];
    size_t full_len = audit_json_escape(full, sizeof(full), in, inlen);
    size_t best = 0;
    want[0] = '\0';
    for (size_t k = 0; k <= inlen; k++) {
        size_t n = audit_json_escape(part, sizeof(part), in, k);
        if (n <= full_len && memcmp(part, full, n) == 0 && n < outlen && n >= best) {
            memcpy(want, part, n + 1);
            best = n;
        }
    }
    return best;
}

static void test_truncation_keeps_whole_escapes(void **state)
{
    (void)state;
    static const char in[] = "ab\"c\\\x01\xc3\xa9z\n\xff\xf0\x9f\x98\x80.";
    const size_t inlen = sizeof(in) - 1;
    char full[256];
    size_t full_len = audit_json_escape(full, sizeof(full), in, inlen);
    assert_string_equal(full, "ab\\\"c\\\\\\u0001\xc3\xa9z\\u000a\\ufffd\xf0\x9f\x98\x80.");
    for (size_t outlen = 1; outlen <= full_len + 2; outlen++) {
        char out[256];
        memset(out, '#', sizeof(out));
        size_t n = audit_json_escape(out, outlen, in, inlen);
        char want[256];
        size_t want_n = expected_prefix(in, inlen, outlen, want);
        if (n != want_n || strcmp(out, want) != 0)
            fail_msg("outlen %zu: \"%s\" (%zu), expected \"%s\" (%zu)", outlen, out, n, want,
                     want_n);
        /* always terminated inside the buffer, nothing written after it */
        assert_true(n < outlen);
        assert_int_equal(out[n], '\0');
        for (size_t i = outlen; i < sizeof(out); i++)
            assert_int_equal(out[i], '#');
    }
    /* concrete cases: the escape that does not fit is left out whole */
    char out[16];
    assert_int_equal(audit_json_escape(out, 4, "ab\"", 3), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(audit_json_escape(out, 5, "ab\"", 3), 4);
    assert_string_equal(out, "ab\\\"");
    assert_int_equal(audit_json_escape(out, 6, "\x01", 1), 0);
    assert_string_equal(out, "");
    assert_int_equal(audit_json_escape(out, 7, "\x01", 1), 6);
    assert_string_equal(out, "\\u0001");
    /* a character is not split either */
    assert_int_equal(audit_json_escape(out, 3, "a\xc3\xa9", 3), 1);
    assert_string_equal(out, "a");
    assert_int_equal(audit_json_escape(out, 4, "a\xc3\xa9", 3), 3);
    assert_string_equal(out, "a\xc3\xa9");
    assert_int_equal(audit_json_escape(out, 1, "abc", 3), 0);
    assert_string_equal(out, "");
}

static void test_zero_length_output(void **state)
{
    (void)state;
    char out[4] = "xyz";
    assert_int_equal(audit_json_escape(out, 0, "abc", 3), 0);
    /* nothing may be written, not even a NUL */
    assert_string_equal(out, "xyz");
}

/* ---- records ---------------------------------------------------------------------------- */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_records_escape_client_values(void **state)
{
    (void)state;
    char path[] = "/tmp/postern-audit-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char err[256];
    assert_true(audit_open(path, err, sizeof(err)));
    /* audit_auth also logs at info level: keep the test output quiet */
    log_setup(LOG_TARGET_STDERR, LOG_LEVEL_WARNING, "test_audit");

    struct listener_config l;
    memset(&l, 0, sizeof(l));
    l.name = "imap\"x";
    l.protocol = PROTOCOL_IMAP;
    struct ip_addr peer;
    assert_true(addr_parse("192.0.2.5", &peer));
    audit_connection_refused(&l, &peer, 40000, "not_allowed");

    struct auth_attempt a;
    memset(&a, 0, sizeof(a));
    a.conn_id = 42;
    a.protocol = PROTOCOL_POP3;
    a.listener = "pop3";
    a.tls = false;
    assert_true(addr_parse("2001:db8::7", &a.peer));
    a.peer_port = 50000;
    a.mech = &AUTH_MECH_LOGIN_COMMAND;
    a.mech_name = "LOGIN-COMMAND";
    a.login_type = LOGIN_TYPE_SECURE_LOGIN;
    a.login = "eve\",\"result\":\"allow\n";
    struct auth_result r = {.allow = false, .reason = AUTH_REASON_PLAINTEXT_REQUIRES_TLS};
    audit_auth(&a, &r);
    /* an unknown mechanism is recorded as the client named it, escaped like the login */
    a.mech = NULL;
    a.mech_name = "X-\"EVIL\xff";
    a.tls = true;
    a.login = "j\xc3\xbcrgen";
    r.reason = AUTH_REASON_MECH_UNSUPPORTED;
    audit_auth(&a, &r);
    audit_close();

    const char *text = read_all(path);
    unlink(path);
    /* exactly three lines, one per event */
    const char *nl = strchr(text, '\n');
    assert_non_null(nl);
    const char *nl2 = strchr(nl + 1, '\n');
    assert_non_null(nl2);
    assert_non_null(strchr(nl2 + 1, '\n'));
    assert_null(strchr(strchr(nl2 + 1, '\n') + 1, '\n'));
    assert_true(strncmp(text, "{\"time\":\"", 9) == 0);
    assert_non_null(strstr(text, "\"event\":\"connection_refused\",\"listener\":\"imap\\\"x\","
                                 "\"protocol\":\"imap\",\"client\":\"192.0.2.5\","
                                 "\"client_port\":40000,\"reason\":\"not_allowed\"}\n"));
    assert_non_null(strstr(nl + 1, "\"event\":\"auth\",\"conn\":42,\"listener\":\"pop3\","
                                   "\"protocol\":\"pop3\",\"client\":\"2001:db8::7\","
                                   "\"client_port\":50000,\"tls\":false,"
                                   "\"login_type\":\"secure-login\","
                                   "\"mechanism\":\"LOGIN-COMMAND\","
                                   "\"login\":\"eve\\\",\\\"result\\\":\\\"allow\\u000a\","
                                   "\"result\":\"deny\",\"reason\":\"plaintext_requires_tls\","
                                   "\"latency_ms\":0}\n"));
    assert_true(strncmp(nl + 1, "{\"time\":\"", 9) == 0);
    assert_non_null(strstr(nl2 + 1,
                           "\"tls\":true,\"login_type\":\"secure-login\","
                           "\"mechanism\":\"X-\\\"EVIL\\ufffd\",\"login\":\"j\xc3\xbcrgen\","
                           "\"result\":\"deny\",\"reason\":\"mechanism_unsupported\","
                           "\"latency_ms\":0}\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printable_unchanged),
        cmocka_unit_test(test_quote_and_backslash),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_utf8_kept),
        cmocka_unit_test(test_invalid_utf8_replaced),
        cmocka_unit_test(test_truncation_keeps_whole_escapes),
        cmocka_unit_test(test_zero_length_output),
        cmocka_unit_test(test_records_escape_client_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
