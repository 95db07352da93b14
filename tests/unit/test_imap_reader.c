/* Unit tests of imap_reader_feed(): command assembly from a byte stream, literals and limits. */
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

/* Feeds s one byte at a time; every byte but the last must leave the reader wanting more. */
static enum imap_read_status feed_bytewise(struct imap_reader *r, const char *s)
{
    size_t n = strlen(s), used;
    for (size_t i = 0; i + 1 < n; i++) {
        enum imap_read_status st = imap_reader_feed(r, s + i, 1, &used);
        if (st != IMAP_READ_MORE)
            fail_msg("byte %zu ('%c'): status %d, expected MORE", i, s[i], (int)st);
        assert_int_equal(used, 1);
    }
    enum imap_read_status st = imap_reader_feed(r, s + n - 1, 1, &used);
    assert_int_equal(used, 1);
    return st;
}

static void assert_buffer(const struct imap_reader *r, const char *want, size_t want_len)
{
    assert_int_equal(r->len, want_len);
    assert_memory_equal(r->buf, want, want_len);
    /* the buffer is always NUL-terminated for the parser's convenience */
    assert_int_equal(r->buf[r->len], '\0');
}

#define ASSERT_BUFFER(r, lit) assert_buffer((r), (lit), sizeof(lit) - 1)

static void test_simple_command(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    size_t used = 99;
    assert_int_equal(feed(&r, "a1 NOOP\r\n", &used), IMAP_READ_COMMAND);
    assert_int_equal(used, 9);
    ASSERT_BUFFER(&r, "a1 NOOP\r\n");
    imap_reader_free(&r);
    assert_null(r.buf);
}

static void test_partial_then_rest(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    size_t used;
    assert_int_equal(feed(&r, "a1 CAPA", &used), IMAP_READ_MORE);
    assert_int_equal(used, 7);
    assert_int_equal(feed(&r, "BILITY\r", &used), IMAP_READ_MORE);
    assert_int_equal(used, 7);
    assert_int_equal(feed(&r, "\n", &used), IMAP_READ_COMMAND);
    assert_int_equal(used, 1);
    ASSERT_BUFFER(&r, "a1 CAPABILITY\r\n");
    /* nothing fed: nothing used, still waiting */
    imap_reader_reset(&r);
    assert_int_equal(imap_reader_feed(&r, "", 0, &used), IMAP_READ_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(r.len, 0);
    imap_reader_free(&r);
}

static void test_command_byte_by_byte(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    assert_int_equal(feed_bytewise(&r, "a001 LOGIN \"user\" \"pass word\"\r\n"), IMAP_READ_COMMAND);
    ASSERT_BUFFER(&r, "a001 LOGIN \"user\" \"pass word\"\r\n");
    imap_reader_free(&r);
}

static void test_several_commands_in_one_buffer(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    const char *in = "a NOOP\r\nb CAPABILITY\r\nc LOGOUT\r\nd NO";
    size_t off = 0, used;
    assert_int_equal(feed(&r, in + off, &used), IMAP_READ_COMMAND);
    assert_int_equal(used, 8);
    ASSERT_BUFFER(&r, "a NOOP\r\n");
    off += used;
    imap_reader_reset(&r);
    assert_int_equal(feed(&r, in + off, &used), IMAP_READ_COMMAND);
    assert_int_equal(used, 14);
    ASSERT_BUFFER(&r, "b CAPABILITY\r\n");
    off += used;
    imap_reader_reset(&r);
    assert_int_equal(feed(&r, in + off, &used), IMAP_READ_COMMAND);
    ASSERT_BUFFER(&r, "c LOGOUT\r\n");
    off += used;
    imap_reader_reset(&r);
    assert_int_equal(feed(&r, in + off, &used), IMAP_READ_MORE);
    assert_int_equal(used, 4);
    ASSERT_BUFFER(&r, "d NO");
    imap_reader_free(&r);
}

static void test_lf_only_line_ends(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    size_t used;
    const char *in = "a LOGIN {4}\nuser pass\nb NOOP\n";
    assert_int_equal(feed(&r, in, &used), IMAP_READ_CONTINUE);
    assert_int_equal(used, 12);
    size_t off = used;
    assert_int_equal(feed(&r, in + off, &used), IMAP_READ_COMMAND);
    ASSERT_BUFFER(&r, "a LOGIN {4}\nuser pass\n");
    off += used;
    imap_reader_reset(&r);
    assert_int_equal(feed(&r, in + off, &used), IMAP_READ_COMMAND);
    ASSERT_BUFFER(&r, "b NOOP\n");
    imap_reader_free(&r);
}

static void test_sync_literal(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    const char *in = "a LOGIN {4}\r\nuser {8}\r\npass wor\r\n";
    size_t used;
    /* the reader stops after the announcement so that the session can send "+ " */
    assert_int_equal(feed(&r, in, &used), IMAP_READ_CONTINUE);
    assert_int_equal(used, 13);
    assert_int_equal(r.literal_left, 4);
    size_t off = used;
    assert_int_equal(feed(&r, in + off, &used), IMAP_READ_CONTINUE);
    assert_int_equal(used, 4 + 6);
    assert_int_equal(r.literal_left, 8);
    off += used;
    assert_int_equal(feed(&r, in + off, &used), IMAP_READ_COMMAND);
    assert_int_equal(used, 10);
    ASSERT_BUFFER(&r, "a LOGIN {4}\r\nuser {8}\r\npass wor\r\n");
    assert_int_equal(r.literal_bytes, 12);
    imap_reader_free(&r);
}

static void test_nonsync_literal(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    const char *in = "a LOGIN {4+}\r\nuser {4+}\r\npass\r\nb NOOP\r\n";
    size_t used;
    /* RFC 7888: no continuation request, the data follows at once */
    assert_int_equal(feed(&r, in, &used), IMAP_READ_COMMAND);
    ASSERT_BUFFER(&r, "a LOGIN {4+}\r\nuser {4+}\r\npass\r\n");
    assert_int_equal(used, r.len);
    imap_reader_free(&r);
}

static void test_literal_data_is_not_parsed(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    /* literal data with line ends and a literal marker of its own: 10 bytes */
    static const char in[] = "a APPEND box {10+}\r\nx {5}\r\ny\r\n\r\n";
    size_t used;
    assert_int_equal(imap_reader_feed(&r, in, sizeof(in) - 1, &used), IMAP_READ_COMMAND);
    assert_int_equal(used, sizeof(in) - 1);
    ASSERT_BUFFER(&r, in);
    imap_reader_free(&r);

    /* the same with a synchronizing literal */
    imap_reader_init(&r, 1024, 1024);
    static const char sync[] = "a APPEND box {10}\r\nx {5}\r\ny\r\n\r\n";
    assert_int_equal(imap_reader_feed(&r, sync, sizeof(sync) - 1, &used), IMAP_READ_CONTINUE);
    size_t off = used;
    assert_int_equal(imap_reader_feed(&r, sync + off, sizeof(sync) - 1 - off, &used),
                     IMAP_READ_COMMAND);
    assert_int_equal(off + used, sizeof(sync) - 1);
    ASSERT_BUFFER(&r, sync);
    imap_reader_free(&r);
}

static void test_literal_data_byte_by_byte(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    size_t used;
    assert_int_equal(feed(&r, "a LOGIN {5}\r\n", &used), IMAP_READ_CONTINUE);
    /* data that looks like a line end and a marker still counts as literal bytes */
    assert_int_equal(feed_bytewise(&r, "{1}\r\n pw\r\n"), IMAP_READ_COMMAND);
    ASSERT_BUFFER(&r, "a LOGIN {5}\r\n{1}\r\n pw\r\n");
    imap_reader_free(&r);
}

static void test_zero_length_literal(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    size_t used;
    const char *in = "a LOGIN {0}\r\n {0}\r\n\r\n";
    assert_int_equal(feed(&r, in, &used), IMAP_READ_CONTINUE);
    assert_int_equal(r.literal_left, 0);
    size_t off = used;
    assert_int_equal(feed(&r, in + off, &used), IMAP_READ_CONTINUE);
    off += used;
    assert_int_equal(feed(&r, in + off, &used), IMAP_READ_COMMAND);
    ASSERT_BUFFER(&r, "a LOGIN {0}\r\n {0}\r\n\r\n");
    imap_reader_reset(&r);
    assert_int_equal(feed(&r, "b LOGIN {0+}\r\n {0+}\r\n\r\n", &used), IMAP_READ_COMMAND);
    ASSERT_BUFFER(&r, "b LOGIN {0+}\r\n {0+}\r\n\r\n");
    imap_reader_free(&r);
}

static void test_not_literal_markers(void **state)
{
    (void)state;
    static const char *lines[] = {
        "a X {5} y\r\n", "a X 5}\r\n",    "a X {}\r\n", "a X {+}\r\n", "a X {5a}\r\n",
        "a X {-5}\r\n",  "a X {5++}\r\n", "a X }\r\n",  "{5\r\n",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        struct imap_reader r;
        imap_reader_init(&r, 1024, 1024);
        size_t used;
        enum imap_read_status st = feed(&r, lines[i], &used);
        if (st != IMAP_READ_COMMAND)
            fail_msg("%s: status %d, expected COMMAND", lines[i], (int)st);
        assert_int_equal(used, strlen(lines[i]));
        assert_int_equal(r.literal_left, 0);
        imap_reader_free(&r);
    }
}

static void test_line_too_long(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 32, 1024);
    char in[256];
    char xs[101];
    memset(xs, 'x', 100);
    xs[100] = '\0';
    snprintf(in, sizeof(in), "tag7 LOGIN %s\r\nb NOOP\r\n", xs);
    size_t used;
    assert_int_equal(feed(&r, in, &used), IMAP_READ_LINE_TOO_LONG);
    /* the whole line is consumed, and nothing after it */
    assert_int_equal(used, strlen(in) - strlen("b NOOP\r\n"));
    char tag[64];
    imap_reader_tag(&r, tag, sizeof(tag));
    assert_string_equal(tag, "tag7");
    /* the reader keeps only the start of a refused line */
    assert_true(r.len <= 64);
    imap_reader_reset(&r);
    assert_int_equal(feed(&r, in + used, &used), IMAP_READ_COMMAND);
    ASSERT_BUFFER(&r, "b NOOP\r\n");
    imap_reader_free(&r);
}

static void test_line_too_long_announcing_nonsync_literal(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 32, 1024);
    size_t used;
    /* the marker arrives in pieces after the limit was passed: still recognised */
    assert_int_equal(feed(&r, "t1 ID (xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx {1", &used),
                     IMAP_READ_MORE);
    assert_int_equal(feed(&r, "4+}\r\nX1 LOGOUT\r\nab)\r\n", &used), IMAP_READ_LINE_TOO_LONG);
    assert_true(r.nonsync);
    imap_reader_reset(&r);
    assert_false(r.nonsync);
    /* a synchronizing marker, or none, is no reason to end the session */
    assert_int_equal(feed(&r, "t2 ID (xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx {14}\r\n", &used),
                     IMAP_READ_LINE_TOO_LONG);
    assert_false(r.nonsync);
    imap_reader_reset(&r);
    assert_int_equal(feed(&r, "t3 ID (xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx +}\r\n", &used),
                     IMAP_READ_LINE_TOO_LONG);
    assert_false(r.nonsync);
    imap_reader_free(&r);
}

static void test_line_too_long_in_pieces(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 32, 1024);
    size_t used;
    assert_int_equal(feed(&r, "t2 SEARCH ", &used), IMAP_READ_MORE);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(feed(&r, "0123456789", &used), IMAP_READ_MORE);
        assert_int_equal(used, 10);
    }
    assert_int_equal(feed(&r, "end\r\nt3 NOOP\r\n", &used), IMAP_READ_LINE_TOO_LONG);
    assert_int_equal(used, 5);
    char tag[64];
    imap_reader_tag(&r, tag, sizeof(tag));
    assert_string_equal(tag, "t2");
    imap_reader_reset(&r);
    assert_int_equal(feed(&r, "t3 NOOP\r\n", &used), IMAP_READ_COMMAND);
    imap_reader_free(&r);
}

static void test_line_limit_boundary(void **state)
{
    (void)state;
    /* the limit counts the line end: 16 bytes fit in 16, 17 do not */
    struct imap_reader r;
    imap_reader_init(&r, 16, 1024);
    size_t used;
    assert_int_equal(feed(&r, "a CAPABILITYX\r\n", &used), IMAP_READ_COMMAND);
    assert_int_equal(used, 15);
    imap_reader_reset(&r);
    assert_int_equal(feed(&r, "a CAPABILITYXY\r\n", &used), IMAP_READ_COMMAND);
    assert_int_equal(used, 16);
    imap_reader_reset(&r);
    assert_int_equal(feed(&r, "a CAPABILITYXYZ\r\n", &used), IMAP_READ_LINE_TOO_LONG);
    assert_int_equal(used, 17);
    imap_reader_free(&r);
}

/* The limit covers all command text of one command; literal data has its own limit. */
static void test_line_limit_spans_lines_not_literals(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 32, 1024);
    size_t used;
    char in[512];
    char data[201];
    memset(data, 'd', 200);
    data[200] = '\0';
    snprintf(in, sizeof(in), "a APPEND b {200+}\r\n%s\r\n", data);
    assert_int_equal(feed(&r, in, &used), IMAP_READ_COMMAND);
    assert_int_equal(r.literal_bytes, 200);
    imap_reader_reset(&r);
    /* 17 + 16 bytes of text around a small literal exceed 32 */
    assert_int_equal(feed(&r, "a APPEND b {1+}\r\nx 0123456789abc\r\n", &used),
                     IMAP_READ_LINE_TOO_LONG);
    char tag[64];
    imap_reader_tag(&r, tag, sizeof(tag));
    assert_string_equal(tag, "a");
    imap_reader_free(&r);
}

static void test_literal_too_big(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 10);
    size_t used;
    assert_int_equal(feed(&r, "a LOGIN {10}\r\n", &used), IMAP_READ_CONTINUE);
    imap_reader_reset(&r);
    assert_int_equal(feed(&r, "s1 LOGIN {11}\r\nuser", &used), IMAP_READ_LITERAL_TOO_BIG);
    assert_int_equal(used, 15);
    assert_false(r.nonsync);
    assert_int_equal(r.literal_left, 0);
    char tag[64];
    imap_reader_tag(&r, tag, sizeof(tag));
    assert_string_equal(tag, "s1");
    imap_reader_reset(&r);
    assert_int_equal(feed(&r, "n1 LOGIN {11+}\r\nuser", &used), IMAP_READ_LITERAL_TOO_BIG);
    assert_int_equal(used, 16);
    assert_true(r.nonsync);
    imap_reader_tag(&r, tag, sizeof(tag));
    assert_string_equal(tag, "n1");
    /* reset forgets the flag */
    imap_reader_reset(&r);
    assert_false(r.nonsync);
    imap_reader_free(&r);
}

static void test_literal_limit_is_per_command(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 10);
    size_t used;
    const char *in = "a LOGIN {6+}\r\nabcdef {5+}\r\n";
    assert_int_equal(feed(&r, in, &used), IMAP_READ_LITERAL_TOO_BIG);
    assert_true(r.nonsync);
    imap_reader_reset(&r);
    assert_int_equal(feed(&r, "a LOGIN {6+}\r\nabcdef {4+}\r\nghij\r\n", &used), IMAP_READ_COMMAND);
    assert_int_equal(r.literal_bytes, 10);
    imap_reader_free(&r);
}

static void test_huge_literal_sizes(void **state)
{
    (void)state;
    static const char *lines[] = {
        "a X {99999999999999999999}\r\n",
        "a X {99999999999999999999+}\r\n",
        "a X {18446744073709551615}\r\n", /* SIZE_MAX */
        /* 2^64 + 5: wraps to 5 if the digits were summed without an overflow check */
        "a X {18446744073709551621}\r\n",
        "a X {18446744073709551621+}\r\n",
        "a X {000000000000000000000000000000000000000011}\r\n",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        struct imap_reader r;
        imap_reader_init(&r, 1024, 65536);
        size_t used;
        enum imap_read_status st = feed(&r, lines[i], &used);
        if (i + 1 < sizeof(lines) / sizeof(lines[0])) {
            if (st != IMAP_READ_LITERAL_TOO_BIG)
                fail_msg("%s: status %d, expected LITERAL_TOO_BIG", lines[i], (int)st);
            assert_int_equal(r.literal_left, 0);
            assert_int_equal(r.nonsync, strstr(lines[i], "+}") != NULL);
        } else {
            /* leading zeros do not make a number big */
            assert_int_equal(st, IMAP_READ_CONTINUE);
            assert_int_equal(r.literal_left, 11);
        }
        assert_int_equal(used, strlen(lines[i]));
        imap_reader_free(&r);
    }
}

static void test_reader_tag(void **state)
{
    (void)state;
    static const struct {
        const char *buffered;
        const char *tag;
    } cases[] = {
        {"A0001 LOGIN x", "A0001"},
        {"a.b-c_d NOOP", "a.b-c_d"},
        {"+a NOOP", "*"}, /* "+" cannot be part of a tag */
        {"a+b NOOP", "*"},
        {"* NOOP", "*"},
        {"{5} NOOP", "*"},
        {" NOOP", "*"},  /* empty tag */
        {"abcdef", "*"}, /* no space after it: not known to be a tag */
        {"", "*"},
        {"a\x01 NOOP", "*"}, /* control character */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct imap_reader r;
        imap_reader_init(&r, 1024, 1024);
        size_t used;
        feed(&r, cases[i].buffered, &used);
        char tag[64];
        imap_reader_tag(&r, tag, sizeof(tag));
        if (strcmp(tag, cases[i].tag) != 0)
            fail_msg("\"%s\": tag \"%s\", expected \"%s\"", cases[i].buffered, tag, cases[i].tag);
        imap_reader_free(&r);
    }
    /* a tag longer than the output is not cut, it is replaced */
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    size_t used;
    feed(&r, "abcdefgh NOOP\r\n", &used);
    char tag[8];
    imap_reader_tag(&r, tag, sizeof(tag));
    assert_string_equal(tag, "*");
    char tag9[9];
    imap_reader_tag(&r, tag9, sizeof(tag9));
    assert_string_equal(tag9, "abcdefgh");
    imap_reader_free(&r);
}

static void test_reset_releases_large_buffers(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1 << 20);
    size_t n = 100000;
    char *in = malloc(n + 64);
    assert_non_null(in);
    int h = snprintf(in, 64, "a APPEND b {%zu+}\r\n", n);
    memset(in + h, 'z', n);
    memcpy(in + h + n, "\r\n", 2);
    size_t used;
    assert_int_equal(imap_reader_feed(&r, in, (size_t)h + n + 2, &used), IMAP_READ_COMMAND);
    assert_int_equal(used, (size_t)h + n + 2);
    assert_true(r.cap > 65536);
    imap_reader_reset(&r);
    assert_null(r.buf);
    assert_int_equal(r.cap, 0);
    assert_int_equal(r.len, 0);
    assert_int_equal(r.literal_bytes, 0);
    assert_int_equal(feed(&r, "b NOOP\r\n", &used), IMAP_READ_COMMAND);
    ASSERT_BUFFER(&r, "b NOOP\r\n");
    imap_reader_free(&r);
    free(in);
}

/* ---- literal markers split across reads ---------------------------------------------------- */

/* The marker must be found from the start of the line, wherever the network cut it: otherwise
 * the line is returned as a complete command and the literal data that follows — for LOGIN
 * the password — is read as the next command line (fixed in aac8f50). */
static void test_literal_marker_split_across_feeds(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    size_t used;
    assert_int_equal(feed(&r, "a LOGIN user {", &used), IMAP_READ_MORE);
    assert_int_equal(feed(&r, "6}\r\n", &used), IMAP_READ_CONTINUE);
    assert_int_equal(r.literal_left, 6);
    assert_int_equal(feed(&r, "secret\r\n", &used), IMAP_READ_COMMAND);
    ASSERT_BUFFER(&r, "a LOGIN user {6}\r\nsecret\r\n");
    imap_reader_free(&r);
}

static void test_literal_command_byte_by_byte(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    assert_int_equal(feed_bytewise(&r, "a LOGIN user {6+}\r\n"), IMAP_READ_MORE);
    assert_int_equal(r.literal_left, 6);
    assert_int_equal(feed_bytewise(&r, "secret\r\n"), IMAP_READ_COMMAND);
    ASSERT_BUFFER(&r, "a LOGIN user {6+}\r\nsecret\r\n");
    imap_reader_free(&r);
}

static void test_literal_marker_split_in_other_places(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    size_t used;
    /* between CR and LF */
    assert_int_equal(feed(&r, "a LOGIN {4}\r", &used), IMAP_READ_MORE);
    assert_int_equal(feed(&r, "\n", &used), IMAP_READ_CONTINUE);
    assert_int_equal(feed(&r, "user", &used), IMAP_READ_MORE);
    /* the second marker of the command, split after the first literal's data */
    assert_int_equal(feed(&r, " {1", &used), IMAP_READ_MORE);
    assert_int_equal(feed(&r, "0", &used), IMAP_READ_MORE);
    assert_int_equal(feed(&r, "+}\r\n0123456789\r\n", &used), IMAP_READ_COMMAND);
    ASSERT_BUFFER(&r, "a LOGIN {4}\r\nuser {10+}\r\n0123456789\r\n");
    imap_reader_free(&r);
}

/* Literal data that ends like a marker does not become one when the line end comes later. */
static void test_marker_in_literal_data_split_from_line_end(void **state)
{
    (void)state;
    struct imap_reader r;
    imap_reader_init(&r, 1024, 1024);
    size_t used;
    assert_int_equal(feed(&r, "a LOGIN u {4+}\r\nx{5}", &used), IMAP_READ_MORE);
    assert_int_equal(feed(&r, "\r", &used), IMAP_READ_MORE);
    assert_int_equal(feed(&r, "\n", &used), IMAP_READ_COMMAND);
    ASSERT_BUFFER(&r, "a LOGIN u {4+}\r\nx{5}\r\n");
    imap_reader_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_command),
        cmocka_unit_test(test_partial_then_rest),
        cmocka_unit_test(test_command_byte_by_byte),
        cmocka_unit_test(test_several_commands_in_one_buffer),
        cmocka_unit_test(test_lf_only_line_ends),
        cmocka_unit_test(test_sync_literal),
        cmocka_unit_test(test_nonsync_literal),
        cmocka_unit_test(test_literal_data_is_not_parsed),
        cmocka_unit_test(test_literal_data_byte_by_byte),
        cmocka_unit_test(test_zero_length_literal),
        cmocka_unit_test(test_not_literal_markers),
        cmocka_unit_test(test_line_too_long),
        cmocka_unit_test(test_line_too_long_in_pieces),
        cmocka_unit_test(test_line_too_long_announcing_nonsync_literal),
        cmocka_unit_test(test_line_limit_boundary),
        cmocka_unit_test(test_line_limit_spans_lines_not_literals),
        cmocka_unit_test(test_literal_too_big),
        cmocka_unit_test(test_literal_limit_is_per_command),
        cmocka_unit_test(test_huge_literal_sizes),
        cmocka_unit_test(test_reader_tag),
        cmocka_unit_test(test_reset_releases_large_buffers),
        cmocka_unit_test(test_literal_marker_split_across_feeds),
        cmocka_unit_test(test_literal_command_byte_by_byte),
        cmocka_unit_test(test_literal_marker_split_in_other_places),
        cmocka_unit_test(test_marker_in_literal_data_split_from_line_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
