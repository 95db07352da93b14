/* libFuzzer target: pop3_message_extent() (what RETR and TOP send of a message file) against a
 * naive reading of the same bytes in memory. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "postern/pop3.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant violated: %s\n", what);
        abort();
    }
}

/* The header up to and with its first empty line (LF or CR LF at a line start), then `lines`
 * more LF-ended lines, or everything. */
static size_t naive(const uint8_t *m, size_t size, uint64_t lines)
{
    size_t i = 0, header_end = size;
    for (size_t start = 0; start < size;) {
        size_t eol = start;
        while (eol < size && m[eol] != '\n')
            eol++;
        if (eol == size)
            break;
        if (eol == start || (eol == start + 1 && m[start] == '\r')) {
            header_end = eol + 1;
            break;
        }
        start = eol + 1;
    }
    i = header_end;
    while (i < size && lines > 0) {
        if (m[i++] == '\n')
            lines--;
    }
    return i;
}

static uint64_t extent(int fd, uint64_t lines, size_t size)
{
    struct pop3_extent e;
    check(pop3_message_extent(fd, lines, &e), "extent failed");
    check(e.length <= size, "longer than the file");
    return e.length;
}

/* Byte 0 picks the body lines for TOP (255: all of them, RETR), the rest is the message. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint64_t lines = data[0] == 255 ? POP3_ALL_LINES : data[0];
    const uint8_t *m = data + 1;
    size_t len = size - 1;
    int fd = memfd_create("fuzz_pop3_top", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (len > 0 && write(fd, m, len) != (ssize_t)len) {
        close(fd);
        return 0;
    }
    uint64_t got = extent(fd, lines, len);
    uint64_t want = lines == POP3_ALL_LINES ? len : naive(m, len, lines);
    check(got == want, "extent differs from the naive reading");
    struct pop3_extent e;
    check(pop3_message_extent(fd, lines, &e), "extent failed");
    check(e.last_byte == (got ? m[got - 1] : -1), "last byte");
    /* more lines never send less */
    if (lines != POP3_ALL_LINES)
        check(extent(fd, lines + 1, len) >= got, "TOP n+1 shorter than TOP n");
    check(extent(fd, POP3_ALL_LINES, len) == len, "RETR is not the whole file");
    close(fd);
    return 0;
}
