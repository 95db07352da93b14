/* Unit tests for the brute-force penalty table: thresholds, doubling, per-name and
 * per-address keys, successes, quiet periods. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "postern/penalty.h"

static struct ip_addr addr(const char *text)
{
    struct ip_addr a;
    assert_true(addr_parse(text, &a));
    return a;
}

static void test_threshold_and_doubling(void **state)
{
    (void)state;
    penalty_reset();
    struct penalty_rules r = {.after = 3, .max_ms = 10000};
    struct ip_addr a = addr("192.0.2.1");
    bool by_client;
    uint64_t t = 1000000;
    for (int i = 0; i < 2; i++)
        penalty_record(&r, &a, "JDoe", false, t);
    assert_int_equal(penalty_check(&r, &a, "jdoe", t, &by_client), 0);
    penalty_record(&r, &a, "jdoe", false, t); /* third failure: 1 s */
    assert_int_equal(penalty_check(&r, &a, "jdoe", t, &by_client), 1000);
    penalty_record(&r, &a, "jdoe", false, t + 1000); /* fourth: 2 s */
    assert_int_equal(penalty_check(&r, &a, "jdoe", t + 1000, &by_client), 2000);
    for (int i = 0; i < 10; i++)
        penalty_record(&r, &a, "jdoe", false, t + 2000);
    assert_int_equal(penalty_check(&r, &a, "jdoe", t + 2000, &by_client), 10000); /* capped */
    /* the name is penalised from any address; the address for any name */
    struct ip_addr b = addr("2001:db8::1");
    assert_true(penalty_check(&r, &b, "JDOE", t + 2000, &by_client) > 0);
    assert_false(by_client);
    assert_true(penalty_check(&r, &a, "someone-else", t + 2000, &by_client) > 0);
    assert_true(by_client);
    assert_int_equal(penalty_check(&r, &b, "someone-else", t + 2000, &by_client), 0);
}

static void test_success_and_quiet_period(void **state)
{
    (void)state;
    penalty_reset();
    struct penalty_rules r = {.after = 2, .max_ms = 5000};
    struct ip_addr a = addr("192.0.2.2");
    bool by_client;
    uint64_t t = 5000000;
    penalty_record(&r, &a, "anna", false, t);
    penalty_record(&r, &a, "anna", true, t + 1); /* success clears the name, not the address */
    penalty_record(&r, &a, "anna", false, t + 2);
    assert_int_equal(penalty_check(&r, &a, "anna", t + 2, &by_client), 1000);
    assert_true(by_client);
    /* long enough without failures: counting starts again */
    penalty_record(&r, &a, "bob", false, t + 20000);
    assert_int_equal(penalty_check(&r, &a, "bob", t + 20000, &by_client), 0);
    /* switched off */
    struct penalty_rules off = {.after = 0, .max_ms = 5000};
    for (int i = 0; i < 10; i++)
        penalty_record(&off, &a, "carl", false, t);
    assert_int_equal(penalty_check(&off, &a, "carl", t, &by_client), 0);
    penalty_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_and_doubling),
        cmocka_unit_test(test_success_and_quiet_period),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
