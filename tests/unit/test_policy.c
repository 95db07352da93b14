/* Unit tests of the transport policy: LoginType x TLS x mechanism, and STARTTLS offering. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "postern/auth.h"
#include "postern/policy.h"

/* A mechanism that never sends the secret as it is (a SCRAM or GSSAPI stand-in). */
static const struct auth_mech NON_PLAINTEXT = {"X-TEST-HASHED", 0};
static const struct auth_mech PLAINTEXT = {"X-TEST-PLAIN", MECH_PLAINTEXT};

static void test_mech_allowed_matrix(void **state)
{
    (void)state;
    /* POLICY.md §2 */
    static const struct {
        enum login_type type;
        bool tls;
        bool plaintext_mech;
        bool allowed;
    } cases[] = {
        {LOGIN_TYPE_PLAINTEXT_LOGIN, false, true, true},
        {LOGIN_TYPE_PLAINTEXT_LOGIN, false, false, true},
        {LOGIN_TYPE_PLAINTEXT_LOGIN, true, true, true},
        {LOGIN_TYPE_PLAINTEXT_LOGIN, true, false, true},
        {LOGIN_TYPE_PLAINTEXT_AUTHENTICATION, false, true, false},
        {LOGIN_TYPE_PLAINTEXT_AUTHENTICATION, false, false, true},
        {LOGIN_TYPE_PLAINTEXT_AUTHENTICATION, true, true, true},
        {LOGIN_TYPE_PLAINTEXT_AUTHENTICATION, true, false, true},
        {LOGIN_TYPE_SECURE_LOGIN, false, true, false},
        {LOGIN_TYPE_SECURE_LOGIN, false, false, false},
        {LOGIN_TYPE_SECURE_LOGIN, true, true, true},
        {LOGIN_TYPE_SECURE_LOGIN, true, false, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct auth_mech *m = cases[i].plaintext_mech ? &PLAINTEXT : &NON_PLAINTEXT;
        bool got = policy_mech_allowed(cases[i].type, cases[i].tls, m);
        if (got != cases[i].allowed)
            fail_msg("%s, TLS %s, %s: %s, expected %s", login_type_name(cases[i].type),
                     cases[i].tls ? "on" : "off", m->name, got ? "allowed" : "refused",
                     cases[i].allowed ? "allowed" : "refused");
    }
}

/* The password mechanisms the server has are plaintext ones, so they follow the matrix; the
 * single sign-on ones are not, and exist only with their keys or helpers (a published auth
 * context with a kerberos / ntlm block, which a unit test has not). */
static void test_real_mechanisms_are_plaintext(void **state)
{
    (void)state;
    assert_true(AUTH_MECHS_COUNT > 0);
    for (size_t i = 0; i < AUTH_MECHS_COUNT; i++) {
        const struct auth_mech *m = &AUTH_MECHS[i];
        assert_ptr_equal(auth_mech_find(m->name), m);
        if (m->flags & (MECH_KERBEROS | MECH_NTLM)) {
            assert_false(m->flags & MECH_PLAINTEXT);
            assert_false(auth_mech_available(m));
            assert_false(policy_mech_allowed(LOGIN_TYPE_PLAINTEXT_LOGIN, true, m));
            continue;
        }
        assert_true(auth_mech_available(m));
        assert_true(m->flags & MECH_PLAINTEXT);
        assert_false(policy_mech_allowed(LOGIN_TYPE_PLAINTEXT_AUTHENTICATION, false, m));
        assert_true(policy_mech_allowed(LOGIN_TYPE_SECURE_LOGIN, true, m));
    }
    assert_non_null(auth_mech_find("plain"));
    assert_non_null(auth_mech_find("gssapi"));
    assert_non_null(auth_mech_find("NTLM"));
    assert_null(auth_mech_find("CRAM-MD5"));
    /* IMAP LOGIN and POP3 USER/PASS send the password as it is */
    assert_true(AUTH_MECH_LOGIN_COMMAND.flags & MECH_PLAINTEXT);
    assert_false(
        policy_mech_allowed(LOGIN_TYPE_PLAINTEXT_AUTHENTICATION, false, &AUTH_MECH_LOGIN_COMMAND));
    assert_true(policy_mech_allowed(LOGIN_TYPE_PLAINTEXT_LOGIN, false, &AUTH_MECH_LOGIN_COMMAND));
}

static void test_starttls_offered(void **state)
{
    (void)state;
    struct listener_config l;
    memset(&l, 0, sizeof(l));
    l.tls = TLS_MODE_STARTTLS;
    assert_true(policy_starttls_offered(&l, false));
    /* not again once the connection is protected */
    assert_false(policy_starttls_offered(&l, true));
    l.tls = TLS_MODE_IMPLICIT;
    assert_false(policy_starttls_offered(&l, false));
    assert_false(policy_starttls_offered(&l, true));
    l.tls = TLS_MODE_NONE;
    assert_false(policy_starttls_offered(&l, false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mech_allowed_matrix),
        cmocka_unit_test(test_real_mechanisms_are_plaintext),
        cmocka_unit_test(test_starttls_offered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
