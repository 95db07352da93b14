/* Unit tests for login-name forms, the Exchange profiles (POLICY.md §1) and blocked accounts
 * (POLICY.md §3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "postern/account_policy.h"
#include "postern/login.h"

static void expect_form(const char *login, enum login_form form, const char *domain,
                        const char *name, const char *alias)
{
    struct login_name n;
    const char *why = NULL;
    assert_true(login_name_parse(login, &n, &why));
    assert_int_equal(n.form, form);
    if (domain)
        assert_string_equal(n.domain, domain);
    else
        assert_null(n.domain);
    assert_string_equal(n.name, name);
    if (alias)
        assert_string_equal(n.alias, alias);
    else
        assert_null(n.alias);
    login_name_free(&n);
}

static void expect_invalid(const char *login)
{
    struct login_name n;
    const char *why = NULL;
    assert_false(login_name_parse(login, &n, &why));
    assert_non_null(why);
}

static void test_forms(void **state)
{
    (void)state;
    expect_form("jdoe", LOGIN_FORM_NAME, NULL, "jdoe", NULL);
    expect_form("EXAMPLE\\jdoe", LOGIN_FORM_DOMAIN_NAME, "EXAMPLE", "jdoe", NULL);
    expect_form("EXAMPLE\\jdoe\\sales", LOGIN_FORM_DOMAIN_NAME_ALIAS, "EXAMPLE", "jdoe", "sales");
    expect_form("jdoe@example.test", LOGIN_FORM_UPN, NULL, "jdoe@example.test", NULL);
    expect_form("*", LOGIN_FORM_NAME, NULL, "*", NULL); /* a name; the filter escapes it */
    expect_form("WS01$", LOGIN_FORM_NAME, NULL, "WS01$", NULL);
}

static void test_invalid_names(void **state)
{
    (void)state;
    expect_invalid("");
    expect_invalid("\\");
    expect_invalid("\\jdoe");
    expect_invalid("EXAMPLE\\");
    expect_invalid("EXAMPLE\\jdoe\\");
    expect_invalid("a\\b\\c\\d");
    expect_invalid("EXAMPLE\\jdoe@example.test");
    expect_invalid("@example.test");
    expect_invalid("jdoe@");
    expect_invalid("jd\toe");
    expect_invalid("jd\x7f");
    char longname[1100];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    expect_invalid(longname);
}

static struct login_rules rules(enum login_profile p)
{
    struct login_rules r = {.profile = p};
    for (int f = 0; f < LOGIN_FORM_COUNT; f++)
        r.override[f] = -1;
    return r;
}

static void test_profiles_follow_the_policy_table(void **state)
{
    (void)state;
    struct login_rules r03 = rules(PROFILE_EXCHANGE2003), r07 = rules(PROFILE_EXCHANGE2007),
                       r13 = rules(PROFILE_EXCHANGE2013);
    for (int i = 0; i < 3; i++) {
        const struct login_rules *r = i == 0 ? &r03 : i == 1 ? &r07 : &r13;
        assert_int_equal(login_rule(r, LOGIN_FORM_NAME), FORM_IF_ALIAS_IS_NAME);
        assert_int_equal(login_rule(r, LOGIN_FORM_DOMAIN_NAME), FORM_IF_ALIAS_IS_NAME);
        assert_int_equal(login_rule(r, LOGIN_FORM_UPN), FORM_ALLOWED);
        assert_int_equal(login_rule(r, LOGIN_FORM_PRIMARY_SMTP), FORM_REFUSED);
        assert_int_equal(login_rule(r, LOGIN_FORM_PROXY_ADDRESS), FORM_REFUSED);
    }
    assert_int_equal(login_rule(&r03, LOGIN_FORM_DOMAIN_NAME_ALIAS), FORM_ALLOWED);
    assert_int_equal(login_rule(&r07, LOGIN_FORM_DOMAIN_NAME_ALIAS), FORM_REFUSED);
    assert_int_equal(login_rule(&r13, LOGIN_FORM_DOMAIN_NAME_ALIAS), FORM_REFUSED);
    r13.override[LOGIN_FORM_PRIMARY_SMTP] = FORM_ALLOWED;
    assert_int_equal(login_rule(&r13, LOGIN_FORM_PRIMARY_SMTP), FORM_ALLOWED);
    enum login_profile p;
    assert_true(login_profile_from_name("Exchange2013", &p));
    assert_int_equal(p, PROFILE_EXCHANGE2013);
    assert_false(login_profile_from_name("exchange2010", &p));
    enum login_form f;
    assert_true(login_form_from_name("domain-name-alias", &f));
    assert_int_equal(f, LOGIN_FORM_DOMAIN_NAME_ALIAS);
    assert_string_equal(login_form_name(LOGIN_FORM_PROXY_ADDRESS), "proxy-address");
}

static const int64_t NOW = 134000000000000000LL; /* a FILETIME in 2025 */

static struct account normal(void)
{
    struct account a = {.dn = "cn=x",
                        .has_sid = true,
                        .rid = 1104,
                        .has_uac = true,
                        .user_account_control = 0x200,
                        .has_pwd_last_set = true,
                        .pwd_last_set = NOW - 1000};
    return a;
}

static void test_blocked_kinds(void **state)
{
    (void)state;
    struct account a = normal();
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, true, NULL, 0, NOW), AUTH_REASON_NONE);
    static const struct {
        uint32_t rid;
        enum auth_reason reason;
    } rids[] = {{500, AUTH_REASON_BUILTIN_ADMINISTRATOR},
                {501, AUTH_REASON_GUEST_ACCOUNT},
                {502, AUTH_REASON_KRBTGT_ACCOUNT},
                {503, AUTH_REASON_DEFAULT_ACCOUNT}};
    for (size_t i = 0; i < 4; i++) {
        a = normal();
        a.rid = rids[i].rid;
        assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, false, NULL, 0, NOW), rids[i].reason);
    }
    a = normal();
    a.user_account_control = 0x1000; /* workstation trust */
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, false, NULL, 0, NOW),
                     AUTH_REASON_COMPUTER_ACCOUNT);
    a = normal();
    a.user_account_control = 0x202;
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, false, NULL, 0, NOW),
                     AUTH_REASON_ACCOUNT_DISABLED);
    a = normal();
    a.has_uac_computed = true;
    a.uac_computed = 0x10;
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, false, NULL, 0, NOW),
                     AUTH_REASON_ACCOUNT_LOCKED);
    /* lockoutTime alone counts only where the computed attribute is absent */
    a = normal();
    a.lockout_time = NOW - 10;
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, false, NULL, 0, NOW),
                     AUTH_REASON_ACCOUNT_LOCKED);
    a.has_uac_computed = true;
    a.uac_computed = 0;
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, false, NULL, 0, NOW), AUTH_REASON_NONE);
    a = normal();
    a.account_expires = NOW - 1;
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, false, NULL, 0, NOW),
                     AUTH_REASON_ACCOUNT_EXPIRED);
    a.account_expires = INT64_MAX; /* never */
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, false, NULL, 0, NOW), AUTH_REASON_NONE);
    a = normal();
    a.pwd_last_set = 0;
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, false, NULL, 0, NOW),
                     AUTH_REASON_PASSWORD_MUST_CHANGE);
    a.user_account_control |= 0x10000; /* DONT_EXPIRE_PASSWD overrides pwdLastSet = 0 */
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, false, NULL, 0, NOW), AUTH_REASON_NONE);
}

static void test_privileged_and_protocols(void **state)
{
    (void)state;
    struct account a = normal();
    a.admin_count = 1;
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, false, NULL, 0, NOW), AUTH_REASON_NONE);
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, true, NULL, 0, NOW),
                     AUTH_REASON_PRIVILEGED_ACCOUNT);
    a = normal();
    a.primary_group_rid = 512; /* Domain Admins as primary group: no memberOf for it */
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, false, NULL, 0, NOW), AUTH_REASON_NONE);
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, true, NULL, 0, NOW),
                     AUTH_REASON_PRIVILEGED_ACCOUNT);
    a.primary_group_rid = 513;
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, true, NULL, 0, NOW), AUTH_REASON_NONE);
    a = normal();
    char *groups[] = {"CN=Domain Admins,CN=Users,DC=example,DC=test"};
    a.member_of = groups;
    a.n_member_of = 1;
    const char *privileged[] = {"cn=domain admins,cn=users,dc=example,dc=test"};
    assert_int_equal(account_blocked(&a, PROTOCOL_POP3, true, privileged, 1, NOW),
                     AUTH_REASON_PRIVILEGED_ACCOUNT);
    a = normal();
    char *settings[] = {"POP3\xc2\xa7"
                        "0\xc2\xa7"
                        "1\xc2\xa7",
                        "IMAP4\xc2\xa7"
                        "1"};
    a.protocol_settings = settings;
    a.n_protocol_settings = 2;
    assert_int_equal(account_blocked(&a, PROTOCOL_POP3, false, NULL, 0, NOW),
                     AUTH_REASON_PROTOCOL_DISABLED);
    assert_int_equal(account_blocked(&a, PROTOCOL_IMAP, false, NULL, 0, NOW), AUTH_REASON_NONE);
}

static void test_filetime(void **state)
{
    (void)state;
    assert_int_equal(filetime_from_unix(0), 116444736000000000LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_invalid_names),
        cmocka_unit_test(test_profiles_follow_the_policy_table),
        cmocka_unit_test(test_blocked_kinds),
        cmocka_unit_test(test_privileged_and_protocols),
        cmocka_unit_test(test_filetime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
