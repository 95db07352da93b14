/* Assembles one IMAP command from the byte stream: the line, the literals it announces
 * ({n} synchronizing, {n+} non-synchronizing per RFC 7888) and the lines that follow them,
 * enforcing MaxCommandSize on command text and the literal limit on literal data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/imap.h"
#include "postern/util.h"

void imap_reader_init(struct imap_reader *r, size_t max_line, size_t max_literal)
{
    memset(r, 0, sizeof(*r));
    r->max_line = max_line;
    r->max_literal = max_literal;
}

void imap_reader_free(struct imap_reader *r)
{
    if (r->buf)
        wipe(r->buf, r->cap); /* may hold a LOGIN password */
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}

void imap_reader_reset(struct imap_reader *r)
{
    if (r->buf)
        wipe(r->buf, r->len);
    r->len = 0;
    r->line_start = 0;
    r->line_bytes = r->literal_bytes = r->literal_left = 0;
    r->discarding = r->nonsync = false;
    r->tail_len = 0;
    r->announced = r->marker_start = 0;
    r->announced_nonsync = r->deciding = r->streaming = false;
    /* Give back memory a large command needed. */
    if (r->cap > 65536) {
        free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    }
}

static void append(struct imap_reader *r, const char *data, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *nb = xmalloc(cap);
        if (r->buf) {
            memcpy(nb, r->buf, r->len);
            wipe(r->buf, r->cap);
            free(r->buf);
        }
        r->buf = nb;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    r->buf[r->len] = '\0';
}

/* If the line just completed (buf[start..len), ending in LF) ends with "{digits}" or
 * "{digits+}" before the line end, return true with the size and where the "{" is. Oversized
 * numbers count as SIZE_MAX so that they are refused, not wrapped. */
static bool literal_marker(const struct imap_reader *r, size_t start, size_t *size, bool *nonsync,
                           size_t *brace)
{
    size_t end = r->len - 1; /* at LF */
    if (end > start && r->buf[end - 1] == '\r')
        end--;
    if (end - start < 3 || r->buf[end - 1] != '}')
        return false;
    size_t p = end - 1;
    *nonsync = p > start && r->buf[p - 1] == '+';
    if (*nonsync)
        p--;
    size_t digits_end = p;
    while (p > start && r->buf[p - 1] >= '0' && r->buf[p - 1] <= '9')
        p--;
    if (p == digits_end || p == start || r->buf[p - 1] != '{')
        return false;
    size_t v = 0;
    for (size_t i = p; i < digits_end; i++) {
        unsigned d = (unsigned)(r->buf[i] - '0');
        if (v > (SIZE_MAX - d) / 10) {
            v = SIZE_MAX;
            break;
        }
        v = v * 10 + d;
    }
    *size = v;
    *brace = p - 1;
    return true;
}

static void tail_push(struct imap_reader *r, const char *p, size_t n)
{
    if (n == 0)
        return; /* p may be NULL (nothing buffered yet) */
    if (n >= sizeof(r->tail)) {
        memcpy(r->tail, p + n - sizeof(r->tail), sizeof(r->tail));
        r->tail_len = sizeof(r->tail);
        return;
    }
    size_t keep = r->tail_len + n > sizeof(r->tail) ? sizeof(r->tail) - n : r->tail_len;
    memmove(r->tail, r->tail + r->tail_len - keep, keep);
    memcpy(r->tail + keep, p, n);
    r->tail_len = keep + n;
}

/* Whether the discarded line ended in "{digits+}": RFC 7888 data follows without our go. */
static bool tail_announces_nonsync(const struct imap_reader *r)
{
    size_t e = r->tail_len;
    if (e > 0 && r->tail[e - 1] == '\n')
        e--;
    if (e > 0 && r->tail[e - 1] == '\r')
        e--;
    if (e < 4 || r->tail[e - 1] != '}' || r->tail[e - 2] != '+')
        return false;
    size_t d = e - 2;
    while (d > 0 && r->tail[d - 1] >= '0' && r->tail[d - 1] <= '9')
        d--;
    return d < e - 2 && d > 0 && r->tail[d - 1] == '{';
}

/* The limits and bookkeeping of a literal whose data is buffered with the command. */
static enum imap_read_status buffer_literal(struct imap_reader *r, size_t size, bool nonsync)
{
    if (size > r->max_literal || r->literal_bytes + size > r->max_literal) {
        r->nonsync = nonsync;
        return IMAP_READ_LITERAL_TOO_BIG;
    }
    r->literal_bytes += size;
    r->literal_left = size;
    r->line_start = r->len;
    return nonsync ? IMAP_READ_MORE : IMAP_READ_CONTINUE;
}

enum imap_read_status imap_reader_literal(struct imap_reader *r, bool stream)
{
    if (!r->deciding)
        return IMAP_READ_MORE;
    r->deciding = false;
    if (!stream)
        return buffer_literal(r, r->announced, r->announced_nonsync);
    r->literal_left = r->announced;
    r->streaming = r->announced > 0;
    r->line_start = r->len;
    return r->announced_nonsync ? IMAP_READ_MORE : IMAP_READ_CONTINUE;
}

enum imap_read_status imap_reader_feed(struct imap_reader *r, const char *data, size_t len,
                                       size_t *used)
{
    if (r->deciding) { /* the caller has not said what to do with the literal */
        *used = 0;
        return IMAP_READ_MORE;
    }
    if (r->streaming) {
        size_t n = len < r->literal_left ? len : r->literal_left;
        r->literal_left -= n;
        if (r->literal_left == 0)
            r->streaming = false; /* the command text goes on after the literal */
        *used = n;
        return n > 0 ? IMAP_READ_STREAM_DATA : IMAP_READ_MORE;
    }
    size_t i = 0;
    while (i < len) {
        if (r->literal_left > 0) {
            size_t n = len - i < r->literal_left ? len - i : r->literal_left;
            append(r, data + i, n);
            i += n;
            r->literal_left -= n;
            if (r->literal_left == 0)
                r->line_start = r->len; /* literal data never holds a marker */
            continue;
        }
        const char *lf = memchr(data + i, '\n', len - i);
        size_t n = lf ? (size_t)(lf - (data + i)) + 1 : len - i;
        if (r->discarding) {
            tail_push(r, data + i, n);
            i += n;
            if (lf) {
                r->nonsync = tail_announces_nonsync(r);
                *used = i;
                return IMAP_READ_LINE_TOO_LONG;
            }
            continue;
        }
        if (r->line_bytes + n > r->max_line) {
            /* Keep the start of the line (the tag) for the error reply, drop the rest. */
            /* The tail starts with the line so far; the discarding branch below adds this
             * fragment (and the rest of the line) to it. */
            r->tail_len = 0;
            tail_push(r, r->buf + r->line_start, r->len - r->line_start);
            if (r->len < 64)
                append(r, data + i, n < 64 - r->len ? n : 64 - r->len);
            r->discarding = true;
            continue;
        }
        append(r, data + i, n);
        r->line_bytes += n;
        i += n;
        if (!lf)
            continue;
        size_t size, brace;
        bool nonsync;
        /* The whole line since its start: the network may have split it anywhere, also
         * between "{5}" and its CRLF. */
        if (!literal_marker(r, r->line_start, &size, &nonsync, &brace)) {
            *used = i;
            return IMAP_READ_COMMAND;
        }
        if (r->offer_literals) {
            r->announced = size;
            r->announced_nonsync = nonsync;
            r->marker_start = brace;
            r->deciding = true;
            *used = i;
            return IMAP_READ_LITERAL;
        }
        enum imap_read_status st = buffer_literal(r, size, nonsync);
        if (st != IMAP_READ_MORE) {
            *used = i;
            return st;
        }
    }
    *used = i;
    return IMAP_READ_MORE;
}

void imap_reader_tag(const struct imap_reader *r, char *out, size_t outlen)
{
    size_t n = 0;
    /* tag = 1*<any ASTRING-CHAR except "+"> (RFC 3501 §9) */
    while (n < r->len && n + 1 < outlen) {
        unsigned char c = (unsigned char)r->buf[n];
        if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\+", c))
            break;
        out[n] = (char)c;
        n++;
    }
    if (n == 0 || n >= r->len || r->buf[n] != ' ') {
        snprintf(out, outlen, "*");
        return;
    }
    out[n] = '\0';
}
