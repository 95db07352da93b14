/* Unit tests of address and CIDR parsing and matching (AllowedClients). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "postern/addr.h"

static struct ip_addr addr(const char *text)
{
    struct ip_addr a;
    if (!addr_parse(text, &a))
        fail_msg("addr_parse(\"%s\") failed", text);
    return a;
}

static struct cidr rule(const char *text)
{
    struct cidr c;
    if (!cidr_parse(text, &c))
        fail_msg("cidr_parse(\"%s\") failed", text);
    return c;
}

static bool match(const char *rule_text, const char *addr_text)
{
    struct cidr c = rule(rule_text);
    struct ip_addr a = addr(addr_text);
    return cidr_match(&c, &a);
}

static void test_addr_parse_v4_is_mapped(void **state)
{
    (void)state;
    struct ip_addr a = addr("192.0.2.1");
    static const uint8_t want[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
    assert_memory_equal(a.b, want, 16);
    /* the same address written as v4-mapped IPv6 is the same bytes */
    struct ip_addr m = addr("::ffff:192.0.2.1");
    assert_memory_equal(m.b, want, 16);
}

static void test_addr_parse_v6(void **state)
{
    (void)state;
    struct ip_addr a = addr("2001:db8::1");
    static const uint8_t want[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_memory_equal(a.b, want, 16);
    struct ip_addr any = addr("::");
    static const uint8_t zero[16] = {0};
    assert_memory_equal(any.b, zero, 16);
}

static void test_addr_parse_invalid(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",    "256.1.1.1",         "1.2.3",     "1.2.3.4.5",  "1.2.3.4 ",         " 1.2.3.4",
        "::g", "1:2:3:4:5:6:7:8:9", "localhost", "1.2.3.4/32", "2001:db8::1%eth0", "[::1]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ip_addr a;
        if (addr_parse(bad[i], &a))
            fail_msg("addr_parse accepted \"%s\"", bad[i]);
    }
}

static void test_cidr_parse_prefixes(void **state)
{
    (void)state;
    /* IPv4 prefixes live in the mapped space: /8 is bit 96 + 8 */
    assert_int_equal(rule("10.0.0.0/8").prefix, 104);
    assert_int_equal(rule("10.0.0.0/0").prefix, 96);
    assert_int_equal(rule("10.0.0.1/32").prefix, 128);
    assert_int_equal(rule("10.0.0.1").prefix, 128);
    assert_int_equal(rule("2001:db8::/32").prefix, 32);
    assert_int_equal(rule("::/0").prefix, 0);
    assert_int_equal(rule("::1/128").prefix, 128);
    assert_int_equal(rule("::1").prefix, 128);
    assert_int_equal(rule("10.0.0.0/008").prefix, 104);
}

static void test_cidr_parse_clears_host_bits(void **state)
{
    (void)state;
    char buf[64];
    struct cidr c = rule("10.1.2.3/8");
    assert_string_equal(addr_to_text(&c.net, buf, sizeof(buf)), "10.0.0.0");
    c = rule("192.168.77.200/23");
    assert_string_equal(addr_to_text(&c.net, buf, sizeof(buf)), "192.168.76.0");
    c = rule("2001:db8:1234:5678::1/32");
    assert_string_equal(addr_to_text(&c.net, buf, sizeof(buf)), "2001:db8::");
    c = rule("2001:db8:ffff::/33");
    assert_string_equal(addr_to_text(&c.net, buf, sizeof(buf)), "2001:db8:8000::");
    /* /0 of IPv4 keeps the mapped prefix: it is "every IPv4 address", not "everything" */
    c = rule("203.0.113.9/0");
    static const uint8_t v4any[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
    assert_memory_equal(c.net.b, v4any, 16);
}

static void test_cidr_parse_invalid(void **state)
{
    (void)state;
    static const char *bad[] = {
        "1.2.3.4/33",
        "/8",
        "1.2.3.4/",
        "::1/129",
        "1.2.3.4/ 8",
        "1.2.3.4/8 ",
        "1.2.3.4/-1",
        "1.2.3.4/+8",
        "1.2.3.4/x",
        "1.2.3.4/0x8",
        "1.2.3.4/8/8",
        "1.2.3.4/0008",
        "::/1000",
        "",
        "/",
        "10.0.0.0/8.0",
        "example.com/8",
        /* the host part is longer than any address */
        "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd/64",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cidr c;
        if (cidr_parse(bad[i], &c))
            fail_msg("cidr_parse accepted \"%s\"", bad[i]);
    }
}

static void test_match_v4(void **state)
{
    (void)state;
    assert_true(match("10.0.0.0/8", "10.0.0.0"));
    assert_true(match("10.0.0.0/8", "10.255.255.255"));
    assert_false(match("10.0.0.0/8", "11.0.0.0"));
    assert_false(match("10.0.0.0/8", "9.255.255.255"));
    /* a prefix that is not a multiple of 8 */
    assert_true(match("192.168.0.0/23", "192.168.1.255"));
    assert_false(match("192.168.0.0/23", "192.168.2.0"));
    assert_true(match("192.168.0.128/25", "192.168.0.200"));
    assert_false(match("192.168.0.128/25", "192.168.0.127"));
    /* /32 and a bare address are exact */
    assert_true(match("192.0.2.7/32", "192.0.2.7"));
    assert_false(match("192.0.2.7/32", "192.0.2.6"));
    assert_true(match("192.0.2.7", "192.0.2.7"));
    assert_false(match("192.0.2.7", "192.0.2.8"));
}

static void test_match_v4_rule_against_mapped_client(void **state)
{
    (void)state;
    /* a v4 client accepted on a dual-stack socket arrives as ::ffff:a.b.c.d */
    assert_true(match("10.0.0.0/8", "::ffff:10.1.2.3"));
    assert_true(match("10.0.0.0/8", "::ffff:a01:203"));
    assert_false(match("10.0.0.0/8", "::ffff:11.1.2.3"));
    /* but a v4 rule never matches a real IPv6 address with the same low bits */
    assert_false(match("10.0.0.0/8", "::a01:203"));
    assert_false(match("10.0.0.0/8", "2001:db8::a01:203"));
}

static void test_match_zero_prefixes(void **state)
{
    (void)state;
    /* 0.0.0.0/0 is every IPv4 client and no IPv6 one */
    assert_true(match("0.0.0.0/0", "1.2.3.4"));
    assert_true(match("0.0.0.0/0", "255.255.255.255"));
    assert_true(match("0.0.0.0/0", "::ffff:1.2.3.4"));
    assert_false(match("0.0.0.0/0", "2001:db8::1"));
    assert_false(match("0.0.0.0/0", "::1"));
    /* ::/0 is everything, IPv4 included */
    assert_true(match("::/0", "2001:db8::1"));
    assert_true(match("::/0", "1.2.3.4"));
    assert_true(match("::/0", "::"));
}

static void test_match_v6(void **state)
{
    (void)state;
    assert_true(match("2001:db8::/32", "2001:db8::1"));
    assert_true(match("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_false(match("2001:db8::/32", "2001:db9::"));
    assert_true(match("2001:db8::/33", "2001:db8:7fff::1"));
    assert_false(match("2001:db8::/33", "2001:db8:8000::1"));
    assert_true(match("fe80::/10", "febf::1"));
    assert_false(match("fe80::/10", "fec0::1"));
    assert_true(match("::1/128", "::1"));
    assert_false(match("::1/128", "::2"));
    assert_true(match("::1", "::1"));
    assert_false(match("::1", "1.0.0.0"));
    /* a v6 rule written in mapped form covers v4 clients */
    assert_true(match("::ffff:10.0.0.0/104", "10.9.9.9"));
    assert_false(match("::ffff:10.0.0.0/104", "11.9.9.9"));
}

static void test_list_match(void **state)
{
    (void)state;
    struct cidr rules[3] = {rule("10.0.0.0/8"), rule("2001:db8::/32"), rule("192.0.2.1")};
    struct cidr_list list = {rules, 3};
    struct ip_addr a;
    a = addr("10.1.1.1");
    assert_true(cidr_list_match(&list, &a));
    a = addr("2001:db8::5");
    assert_true(cidr_list_match(&list, &a));
    a = addr("192.0.2.1");
    assert_true(cidr_list_match(&list, &a));
    a = addr("192.0.2.2");
    assert_false(cidr_list_match(&list, &a));
    a = addr("::1");
    assert_false(cidr_list_match(&list, &a));
    /* an empty list matches nothing; the server treats "no rules" as "everyone" itself */
    struct cidr_list empty = {NULL, 0};
    a = addr("10.1.1.1");
    assert_false(cidr_list_match(&empty, &a));
}

static void test_addr_to_text(void **state)
{
    (void)state;
    char buf[46];
    struct ip_addr a = addr("192.0.2.1");
    assert_ptr_equal(addr_to_text(&a, buf, sizeof(buf)), buf);
    assert_string_equal(buf, "192.0.2.1");
    a = addr("::ffff:198.51.100.4");
    assert_string_equal(addr_to_text(&a, buf, sizeof(buf)), "198.51.100.4");
    a = addr("2001:0db8:0000:0000:0000:0000:0000:0001");
    assert_string_equal(addr_to_text(&a, buf, sizeof(buf)), "2001:db8::1");
    a = addr("::");
    assert_string_equal(addr_to_text(&a, buf, sizeof(buf)), "::");
    a = addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    assert_string_equal(addr_to_text(&a, buf, sizeof(buf)),
                        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    /* too small a buffer is refused, not overrun */
    char small[8];
    a = addr("203.0.113.255");
    assert_null(addr_to_text(&a, small, sizeof(small)));
}

static void test_addr_from_sockaddr(void **state)
{
    (void)state;
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(143)};
    inet_pton(AF_INET, "192.0.2.9", &s4.sin_addr);
    struct ip_addr a;
    unsigned port = 0;
    addr_from_sockaddr((const struct sockaddr *)&s4, &a, &port);
    assert_int_equal(port, 143);
    struct ip_addr want = addr("192.0.2.9");
    assert_memory_equal(a.b, want.b, 16);

    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(50993)};
    inet_pton(AF_INET6, "2001:db8::42", &s6.sin6_addr);
    addr_from_sockaddr((const struct sockaddr *)&s6, &a, &port);
    assert_int_equal(port, 50993);
    want = addr("2001:db8::42");
    assert_memory_equal(a.b, want.b, 16);
    /* the port is optional */
    addr_from_sockaddr((const struct sockaddr *)&s6, &a, NULL);
    assert_memory_equal(a.b, want.b, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse_v4_is_mapped),
        cmocka_unit_test(test_addr_parse_v6),
        cmocka_unit_test(test_addr_parse_invalid),
        cmocka_unit_test(test_cidr_parse_prefixes),
        cmocka_unit_test(test_cidr_parse_clears_host_bits),
        cmocka_unit_test(test_cidr_parse_invalid),
        cmocka_unit_test(test_match_v4),
        cmocka_unit_test(test_match_v4_rule_against_mapped_client),
        cmocka_unit_test(test_match_zero_prefixes),
        cmocka_unit_test(test_match_v6),
        cmocka_unit_test(test_list_match),
        cmocka_unit_test(test_addr_to_text),
        cmocka_unit_test(test_addr_from_sockaddr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
