/* Unit tests of the IMAP reader's literal offers (offer_literals): the caller streams a literal
 * (APPEND's message) instead of having it buffered with the command. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/imap.h"

static enum imap_read_status feed(struct imap_reader *r, const char *s, size_t *used)
{
    return imap_reader_feed(r, s, strlen(s), used);
}

static struct imap_reader offering(size_t max_line, size_t max_literal)
{
    struct imap_reader r;
    imap_reader_init(&r, max_line, max_literal);
    r.offer_literals = true;
    return r;
}

static void test_synchronizing_literal_streamed(void **state)
{
    (void)state;
    struct imap_reader r = offering(1024, 4);
    size_t used;
    const char *line = "a APPEND INBOX (\\Seen) {11}\r\n";
    assert_int_equal(feed(&r, line, &used), IMAP_READ_LITERAL);
    assert_int_equal(used, strlen(line));
    assert_int_equal(r.announced, 11);
    assert_false(r.announced_nonsync);
    assert_int_equal(r.buf[r.marker_start], '{');
    assert_int_equal(r.marker_start, strlen("a APPEND INBOX (\\Seen) "));
    /* nothing is taken until the caller decides */
    assert_int_equal(feed(&r, "hello", &used), IMAP_READ_MORE);
    assert_int_equal(used, 0);
    /* streamed: more than the literal limit (4) is fine, the caller sends "+" */
    assert_int_equal(imap_reader_literal(&r, true), IMAP_READ_CONTINUE);
    size_t before = r.len;
    assert_int_equal(feed(&r, "hello", &used), IMAP_READ_STREAM_DATA);
    assert_int_equal(used, 5);
    assert_int_equal(feed(&r, " world\r\nb NOOP\r\n", &used), IMAP_READ_STREAM_DATA);
    assert_int_equal(used, 6);
    assert_false(r.streaming);
    assert_int_equal(r.len, before); /* the data never entered the buffer */
    assert_int_equal(feed(&r, "\r\nb NOOP\r\n", &used), IMAP_READ_COMMAND);
    assert_int_equal(used, 2);
    assert_int_equal(r.len, before + 2);
    assert_memory_equal(r.buf + before, "\r\n", 2);
    imap_reader_reset(&r);
    assert_int_equal(feed(&r, "b NOOP\r\n", &used), IMAP_READ_COMMAND);
    imap_reader_free(&r);
}

static void test_non_synchronizing_literal_streamed_bytewise(void **state)
{
    (void)state;
    struct imap_reader r = offering(1024, 1024);
    size_t used;
    const char *text = "c APPEND x {3+}\r\nabc\r\n";
    size_t i = 0, streamed = 0;
    enum imap_read_status st = IMAP_READ_MORE;
    while (i < strlen(text)) {
        st = imap_reader_feed(&r, text + i, 1, &used);
        i += used;
        if (st == IMAP_READ_LITERAL) {
            assert_true(r.announced_nonsync);
            assert_int_equal(imap_reader_literal(&r, true), IMAP_READ_MORE);
        } else if (st == IMAP_READ_STREAM_DATA) {
            assert_int_equal(used, 1);
            streamed++;
        }
    }
    assert_int_equal(st, IMAP_READ_COMMAND);
    assert_int_equal(streamed, 3);
    imap_reader_free(&r);
}

static void test_buffered_literal_keeps_the_old_rules(void **state)
{
    (void)state;
    struct imap_reader r = offering(1024, 8);
    size_t used;
    assert_int_equal(feed(&r, "a LOGIN {4}\r\n", &used), IMAP_READ_LITERAL);
    assert_int_equal(imap_reader_literal(&r, false), IMAP_READ_CONTINUE);
    assert_int_equal(feed(&r, "jdoe {4+}\r\n", &used), IMAP_READ_LITERAL);
    assert_int_equal(imap_reader_literal(&r, false), IMAP_READ_MORE);
    assert_int_equal(feed(&r, "pass\r\n", &used), IMAP_READ_COMMAND);
    assert_string_equal(r.buf, "a LOGIN {4}\r\njdoe {4+}\r\npass\r\n");
    imap_reader_reset(&r);
    /* over the limit when buffered: refused as before */
    assert_int_equal(feed(&r, "a LOGIN {9}\r\n", &used), IMAP_READ_LITERAL);
    assert_int_equal(imap_reader_literal(&r, false), IMAP_READ_LITERAL_TOO_BIG);
    assert_false(r.nonsync);
    imap_reader_free(&r);
}

static void test_empty_streamed_literal(void **state)
{
    (void)state;
    struct imap_reader r = offering(1024, 8);
    size_t used;
    assert_int_equal(feed(&r, "a APPEND x {0}\r\n", &used), IMAP_READ_LITERAL);
    assert_int_equal(imap_reader_literal(&r, true), IMAP_READ_CONTINUE);
    assert_false(r.streaming);
    assert_int_equal(feed(&r, "\r\n", &used), IMAP_READ_COMMAND);
    imap_reader_free(&r);
}

static void test_literal_after_stream_is_offered_again(void **state)
{
    (void)state;
    struct imap_reader r = offering(1024, 8);
    size_t used;
    assert_int_equal(feed(&r, "a APPEND x {2+}\r\n", &used), IMAP_READ_LITERAL);
    imap_reader_literal(&r, true);
    assert_int_equal(feed(&r, "ab {3+}\r\nxyz\r\n", &used), IMAP_READ_STREAM_DATA);
    assert_int_equal(used, 2);
    size_t after = r.len;
    assert_int_equal(feed(&r, " {3+}\r\nxyz\r\n", &used), IMAP_READ_LITERAL);
    assert_int_equal(r.marker_start, after + 1);
    assert_int_equal(r.announced, 3);
    imap_reader_literal(&r, true);
    assert_int_equal(feed(&r, "xyz\r\n", &used), IMAP_READ_STREAM_DATA);
    assert_int_equal(feed(&r, "\r\n", &used), IMAP_READ_COMMAND);
    imap_reader_free(&r);
}

static void test_reset_while_streaming(void **state)
{
    (void)state;
    struct imap_reader r = offering(1024, 8);
    size_t used;
    assert_int_equal(feed(&r, "a APPEND x {100}\r\n", &used), IMAP_READ_LITERAL);
    imap_reader_literal(&r, true);
    assert_int_equal(feed(&r, "abc", &used), IMAP_READ_STREAM_DATA);
    imap_reader_reset(&r);
    assert_false(r.streaming);
    assert_int_equal(r.literal_left, 0);
    assert_int_equal(feed(&r, "b NOOP\r\n", &used), IMAP_READ_COMMAND);
    assert_string_equal(r.buf, "b NOOP\r\n");
    imap_reader_free(&r);
}

static void test_without_offers_nothing_changes(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 8);
    size_t used;
    assert_int_equal(feed(&r, "a APPEND x {3}\r\n", &used), IMAP_READ_CONTINUE);
    assert_int_equal(feed(&r, "abc\r\n", &used), IMAP_READ_COMMAND);
    assert_int_equal(imap_reader_literal(&r, true), IMAP_READ_MORE); /* nothing to decide */
    imap_reader_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synchronizing_literal_streamed),
        cmocka_unit_test(test_non_synchronizing_literal_streamed_bytewise),
        cmocka_unit_test(test_buffered_literal_keeps_the_old_rules),
        cmocka_unit_test(test_empty_streamed_literal),
        cmocka_unit_test(test_literal_after_stream_is_offered_again),
        cmocka_unit_test(test_reset_while_streaming),
        cmocka_unit_test(test_without_offers_nothing_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
