/* Which bytes of a message file RETR and TOP send, found by reading the file, never holding it. */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "postern/pop3.h"

#define SCAN_CHUNK 65536

static bool read_at(int fd, unsigned char *buf, size_t want, uint64_t offset, size_t *got)
{
    ssize_t r;
    do {
        r = pread(fd, buf, want, (off_t)offset);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return false;
    *got = (size_t)r;
    return true;
}

/* The last byte sent decides how the message must be ended before the ".". */
static bool last_byte(int fd, struct pop3_extent *extent)
{
    extent->last_byte = -1;
    if (extent->length == 0)
        return true;
    unsigned char last;
    size_t got;
    if (!read_at(fd, &last, 1, extent->length - 1, &got))
        return false;
    if (got != 1) {
        errno = EIO; /* shrank under us */
        return false;
    }
    extent->last_byte = last;
    return true;
}

/* RETR: all of it. */
static bool whole_file(int fd, uint64_t size, struct pop3_extent *extent)
{
    extent->length = size;
    return last_byte(fd, extent);
}

bool pop3_message_extent(int fd, uint64_t body_lines, struct pop3_extent *extent)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return false;
    uint64_t size = (uint64_t)st.st_size;
    if (body_lines == POP3_ALL_LINES)
        return whole_file(fd, size, extent);
    /* The header ends at the first empty line (RFC 5322 §2.1): LF or CR LF right after a line
     * end or at the start. That line belongs to what TOP sends; then body_lines more line
     * ends, or the end of the file. */
    enum { LINE_EMPTY, LINE_CR, LINE_TEXT } line = LINE_EMPTY;
    bool in_header = true;
    uint64_t lines_left = body_lines, offset = 0;
    unsigned char buf[SCAN_CHUNK];
    while (offset < size && (in_header || lines_left > 0)) {
        size_t want = size - offset < sizeof(buf) ? (size_t)(size - offset) : sizeof(buf);
        size_t got;
        if (!read_at(fd, buf, want, offset, &got))
            return false;
        if (got == 0)
            break; /* shrank under us: what is there is what is sent */
        size_t i = 0;
        while (i < got && (in_header || lines_left > 0)) {
            unsigned char c = buf[i++];
            if (!in_header) {
                if (c == '\n')
                    lines_left--;
            } else if (c == '\n') {
                in_header = line == LINE_TEXT;
                line = LINE_EMPTY;
            } else {
                line = c == '\r' && line == LINE_EMPTY ? LINE_CR : LINE_TEXT;
            }
        }
        offset += i;
    }
    extent->length = offset;
    return last_byte(fd, extent);
}
