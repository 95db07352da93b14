/* Unit tests of the IMAP response pieces built on store workers (src/imap/job.c): segments in
 * order, mailbox names as astrings, flag lists, COPYUID sets. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/imap/session_internal.h"

/* The text of all segments (file ranges as "<file>"). */
static char *flatten(struct imap_output *o)
{
    struct evbuffer *all = evbuffer_new();
    for (size_t i = 0; i < o->n; i++) {
        if (o->segs[i].text)
            evbuffer_add_buffer(all, o->segs[i].text);
        else
            evbuffer_add(all, "<file>", 6);
    }
    size_t n = evbuffer_get_length(all);
    char *s = malloc(n + 1);
    evbuffer_remove(all, s, n);
    s[n] = '\0';
    evbuffer_free(all);
    return s;
}

static void expect(struct imap_output *o, const char *want)
{
    char *got = flatten(o);
    assert_string_equal(got, want);
    free(got);
    out_free(o);
}

static void test_uid_pairs(void **state)
{
    (void)state;
    struct imap_output o = {0};
    uint32_t src[] = {1, 2, 3, 5, 7, 8, 9};
    uint32_t dst[] = {10, 11, 12, 13, 0, 15, 16};
    out_uid_pairs(&o, src, dst, 7);
    out_add(&o, " ", 1);
    out_uid_pairs(&o, dst, dst, 7);
    /* 3 -> 12 and 5 -> 13: both sides must go up by one to share a range */
    expect(&o, "1:3,5,8:9 10:13,15:16");
    uint32_t none[] = {0, 0};
    out_uid_pairs(&o, src, none, 2);
    expect(&o, "");
}

static void test_astring(void **state)
{
    (void)state;
    struct imap_output o = {0};
    out_astring(&o, "INBOX");
    out_add(&o, " ", 1);
    out_astring(&o, "a \"b\" \\c");
    out_add(&o, " ", 1);
    out_astring(&o, "");
    expect(&o, "\"INBOX\" \"a \\\"b\\\" \\\\c\" \"\"");
    out_astring(&o, "caf\xc3\xa9");
    expect(&o, "{5}\r\ncaf\xc3\xa9");
}

static void test_flags(void **state)
{
    (void)state;
    struct imap_output o = {0};
    out_flags(&o, 0, "", false);
    out_flags(&o, STORE_SEEN | STORE_DELETED, "$Work Later", true);
    out_flags(&o, STORE_FLAGS_ALL, "", false);
    expect(&o, "()(\\Seen \\Deleted \\Recent $Work Later)"
               "(\\Seen \\Answered \\Flagged \\Deleted \\Draft)");
}

static void test_segments_keep_their_order(void **state)
{
    (void)state;
    struct imap_output o = {0};
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct conn_file_range range = {.offset = 0, .length = 0, .limit = CONN_FILE_ALL};
    out_printf(&o, "* 1 FETCH (BODY[] {%d}\r\n", 0);
    assert_true(out_file(&o, fd, &range));
    out_printf(&o, ")\r\n");
    assert_true(out_file(&o, fd, &range));
    assert_true(out_file(&o, fd, &range));
    out_add(&o, "x", 1);
    assert_int_equal(out_files(&o), 3);
    assert_int_equal(out_text_length(&o), strlen("* 1 FETCH (BODY[] {0}\r\n)\r\nx"));
    assert_int_equal(o.n, 6);
    close(fd); /* the output has its own descriptors */
    expect(&o, "* 1 FETCH (BODY[] {0}\r\n<file>)\r\n<file><file>x");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uid_pairs),
        cmocka_unit_test(test_astring),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_segments_keep_their_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
