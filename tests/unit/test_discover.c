/* DNS SRV answers for domain-controller discovery: parsing (RFC 1035, RFC 2782) and order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "postern/directory.h"

/* A DNS response under construction: header, one question, then answer records. */
struct msg {
    unsigned char b[2048];
    size_t len;
    unsigned answers;
};

static void put16(struct msg *m, unsigned v)
{
    m->b[m->len++] = (unsigned char)(v >> 8);
    m->b[m->len++] = (unsigned char)v;
}

static void put_name(struct msg *m, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t n = dot ? (size_t)(dot - name) : strlen(name);
        m->b[m->len++] = (unsigned char)n;
        memcpy(m->b + m->len, name, n);
        m->len += n;
        name += n + (dot ? 1 : 0);
    }
    m->b[m->len++] = 0;
}

static void start(struct msg *m, const char *qname)
{
    memset(m, 0, sizeof(*m));
    put16(m, 0x1234); /* id */
    put16(m, 0x8180); /* response, recursion desired and available, no error */
    put16(m, 1);      /* one question */
    put16(m, 0);      /* answers: patched by finish() */
    put16(m, 0);
    put16(m, 0);
    put_name(m, qname);
    put16(m, 33); /* SRV */
    put16(m, 1);  /* IN */
}

/* An answer; `compressed_target` points the target at the question name (offset 12). */
static void srv(struct msg *m, unsigned type, unsigned prio, unsigned weight, unsigned port,
                const char *target)
{
    m->b[m->len++] = 0xc0; /* owner: pointer to the question name */
    m->b[m->len++] = 12;
    put16(m, type);
    put16(m, 1);
    put16(m, 0);
    put16(m, 600); /* TTL */
    size_t rdlen_at = m->len;
    put16(m, 0);
    size_t rdata = m->len;
    put16(m, prio);
    put16(m, weight);
    put16(m, port);
    if (target == NULL) {
        m->b[m->len++] = 0xc0;
        m->b[m->len++] = 12;
    } else {
        put_name(m, target);
    }
    size_t rdlen = m->len - rdata;
    m->b[rdlen_at] = (unsigned char)(rdlen >> 8);
    m->b[rdlen_at + 1] = (unsigned char)rdlen;
    m->answers++;
}

static void finish(struct msg *m)
{
    m->b[6] = (unsigned char)(m->answers >> 8);
    m->b[7] = (unsigned char)m->answers;
}

#define QNAME "_ldap._tcp.dc._msdcs.corp.example.com"

static void test_parse_records(void **state)
{
    (void)state;
    struct msg m;
    start(&m, QNAME);
    srv(&m, 33, 0, 100, 389, "dc1.corp.example.com");
    srv(&m, 33, 10, 0, 3268, "dc2.corp.example.com.");
    srv(&m, 1, 0, 0, 0, NULL);                    /* an A record in the answer: ignored */
    srv(&m, 33, 0, 0, 0, "dc3.corp.example.com"); /* port 0: unusable */
    srv(&m, 33, 0, 0, 389, ".");                  /* "decidedly not available" */
    srv(&m, 33, 5, 1, 636, NULL);                 /* compressed target */
    finish(&m);
    struct directory_srv *r;
    size_t n;
    assert_int_equal(directory_parse_srv(m.b, m.len, &r, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(r[0].priority, 0);
    assert_int_equal(r[0].weight, 100);
    assert_int_equal(r[0].port, 389);
    assert_string_equal(r[0].target, "dc1.corp.example.com");
    assert_int_equal(r[1].port, 3268);
    assert_string_equal(r[1].target, "dc2.corp.example.com");
    assert_string_equal(r[2].target, QNAME);
    free(r);
}

static void test_malformed_answers(void **state)
{
    (void)state;
    struct msg m;
    start(&m, QNAME);
    srv(&m, 33, 0, 100, 389, "dc1.corp.example.com");
    finish(&m);
    struct directory_srv *r = NULL;
    size_t n = 99;
    /* every truncation either fails or yields no record past the cut */
    for (size_t cut = 0; cut < m.len; cut++) {
        int rc = directory_parse_srv(m.b, cut, &r, &n);
        assert_true(rc == -1 || n == 0);
        free(r);
        r = NULL;
    }
    /* a compression pointer that loops */
    start(&m, QNAME);
    srv(&m, 33, 0, 100, 389, NULL);
    m.b[m.len - 2] = 0xc0;
    m.b[m.len - 1] = (unsigned char)(m.len - 2);
    finish(&m);
    assert_true(directory_parse_srv(m.b, m.len, &r, &n) == -1 || n == 0);
    free(r);
}

static uint32_t fixed_random_value;
static uint32_t fixed_random(void)
{
    return fixed_random_value;
}

static void test_order_by_priority_then_weight(void **state)
{
    (void)state;
    struct directory_srv in[] = {
        {.priority = 20, .weight = 0, .port = 1, .target = "c"},
        {.priority = 10, .weight = 0, .port = 2, .target = "b0"},
        {.priority = 10, .weight = 60, .port = 3, .target = "b60"},
        {.priority = 0, .weight = 5, .port = 4, .target = "a"},
        {.priority = 10, .weight = 40, .port = 5, .target = "b40"},
    };
    struct directory_srv r[5];
    /* random 0: the zero-weight record of a priority may come first (RFC 2782) */
    memcpy(r, in, sizeof(in));
    fixed_random_value = 0;
    directory_srv_order(r, 5, fixed_random);
    assert_string_equal(r[0].target, "a");
    assert_string_equal(r[1].target, "b0");
    assert_string_equal(r[4].target, "c");
    /* a large draw lands on the heaviest end of the running sum */
    memcpy(r, in, sizeof(in));
    fixed_random_value = 100; /* 100 % (0+60+40+1) = 100: the last of the running sum */
    directory_srv_order(r, 5, fixed_random);
    assert_string_equal(r[0].target, "a");
    assert_int_equal(r[1].priority, 10);
    assert_int_equal(r[2].priority, 10);
    assert_int_equal(r[3].priority, 10);
    assert_string_equal(r[4].target, "c");
    /* over many draws, weight 60 comes first in the 10 group about 60% of the time */
    unsigned first60 = 0;
    for (uint32_t i = 0; i < 1010; i++) {
        memcpy(r, in, sizeof(in));
        fixed_random_value = i;
        directory_srv_order(r, 5, fixed_random);
        first60 += strcmp(r[1].target, "b60") == 0;
    }
    assert_in_range(first60, 550, 650);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_records),
        cmocka_unit_test(test_malformed_answers),
        cmocka_unit_test(test_order_by_priority_then_weight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
