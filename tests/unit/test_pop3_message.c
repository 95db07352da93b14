/* Unit tests of pop3_message_extent(): what RETR and TOP send of real message files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postern/pop3.h"

/* A file holding `len` bytes of `data` (unlinked at once; the fd keeps it). */
static int file_of(const void *data, size_t len)
{
    char path[] = "/tmp/postern-pop3-msg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    return fd;
}

/* What TOP (or RETR, with POP3_ALL_LINES) sends of `message`: its first length bytes. */
static void expect(const char *message, uint64_t lines, const char *sent)
{
    int fd = file_of(message, strlen(message));
    struct pop3_extent e;
    assert_true(pop3_message_extent(fd, lines, &e));
    close(fd);
    if (e.length != strlen(sent) || memcmp(message, sent, e.length) != 0)
        fail_msg("TOP %llu of \"%s\": sent \"%.*s\", expected \"%s\"", (unsigned long long)lines,
                 message, (int)e.length, message, sent);
    int last = e.length ? (unsigned char)message[e.length - 1] : -1;
    assert_int_equal(e.last_byte, last);
}

static void test_retr_is_the_whole_file(void **state)
{
    (void)state;
    expect("Subject: a\r\n\r\nbody\r\n", POP3_ALL_LINES, "Subject: a\r\n\r\nbody\r\n");
    expect("Subject: a\n\nno newline", POP3_ALL_LINES, "Subject: a\n\nno newline");
    expect("ends with CR\r", POP3_ALL_LINES, "ends with CR\r");
    expect("", POP3_ALL_LINES, "");
}

static void test_top_header_and_lines(void **state)
{
    (void)state;
    const char *lf = "From: a\nSubject: b\n\n1\n2\n3\n";
    expect(lf, 0, "From: a\nSubject: b\n\n");
    expect(lf, 1, "From: a\nSubject: b\n\n1\n");
    expect(lf, 3, lf);
    expect(lf, 4, lf);
    expect(lf, UINT64_MAX - 1, lf);
    const char *crlf = "From: a\r\nSubject: b\r\n\r\n1\r\n2\r\n";
    expect(crlf, 0, "From: a\r\nSubject: b\r\n\r\n");
    expect(crlf, 1, "From: a\r\nSubject: b\r\n\r\n1\r\n");
    /* empty body lines count as lines */
    expect("H: x\n\n\n\nb\n", 2, "H: x\n\n\n\n");
    /* a body whose last line has no line end */
    expect("H: x\n\nonly", 0, "H: x\n\n");
    expect("H: x\n\nonly", 1, "H: x\n\nonly");
    expect("H: x\n\nonly", 5, "H: x\n\nonly");
}

static void test_top_header_only_and_odd_headers(void **state)
{
    (void)state;
    /* no blank line: all of it is header */
    expect("Subject: x\nTo: y\n", 0, "Subject: x\nTo: y\n");
    expect("Subject: x\nTo: y", 3, "Subject: x\nTo: y");
    /* an empty header: the message starts with its blank line */
    expect("\nbody\nmore\n", 0, "\n");
    expect("\r\nbody\r\nmore\r\n", 1, "\r\nbody\r\n");
    /* folded header lines and lines of only white space are not the blank line */
    expect("Subject: a\n b\n \nX: y\n\nbody\n", 0, "Subject: a\n b\n \nX: y\n\n");
    /* a CR alone inside a line, or two CRs, do not make it empty */
    expect("A: \r\n\r\r\nB: c\n\nbody\n", 0, "A: \r\n\r\r\nB: c\n\n");
    /* mixed line ends */
    expect("A: b\r\nC: d\n\r\nbody\n", 0, "A: b\r\nC: d\n\r\n");
    expect("", 0, "");
}

/* Lines and the header end found across the scanner's 64 KiB reads. */
static void test_large_files(void **state)
{
    (void)state;
    size_t header = 70000, body_lines = 50000;
    size_t len = header + 1 + body_lines * 3;
    char *m = malloc(len + 1);
    memset(m, 'h', header);
    for (size_t i = 80; i < header; i += 80)
        m[i] = '\n';
    m[header - 1] = '\n';
    m[header] = '\n';
    for (size_t i = 0; i < body_lines; i++)
        memcpy(m + header + 1 + i * 3, "ab\n", 3);
    m[len] = '\0';
    int fd = file_of(m, len);
    struct pop3_extent e;
    assert_true(pop3_message_extent(fd, 0, &e));
    assert_int_equal(e.length, header + 1);
    assert_true(pop3_message_extent(fd, 30000, &e));
    assert_int_equal(e.length, header + 1 + 30000 * 3);
    assert_int_equal(e.last_byte, '\n');
    assert_true(pop3_message_extent(fd, POP3_ALL_LINES, &e));
    assert_int_equal(e.length, len);
    close(fd);
    free(m);
}

static void test_unreadable(void **state)
{
    (void)state;
    struct pop3_extent e;
    assert_false(pop3_message_extent(-1, 0, &e));
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    /* a pipe has no size and cannot be read at an offset */
    assert_false(pop3_message_extent(fds[0], 1, &e) && e.length > 0);
    close(fds[0]);
    close(fds[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retr_is_the_whole_file),
        cmocka_unit_test(test_top_header_and_lines),
        cmocka_unit_test(test_top_header_only_and_odd_headers),
        cmocka_unit_test(test_large_files),
        cmocka_unit_test(test_unreadable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
