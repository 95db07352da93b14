/* libFuzzer target: the IMAP reader with literal offers (after login: APPEND streams its
 * message), driven the way src/imap/session.c drives it, and parsing of what it assembles. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/imap.h"

/*
 * Input layout: 5 header bytes, then the client's byte stream.
 *   byte 0    MaxCommandSize from LINE_LIMITS
 *   byte 1    the literal limit from LITERAL_LIMITS
 *   byte 2,3  seed of the chunk sizes (how TCP cut the stream)
 *   byte 4    seed of the session's choices at each literal: buffer it, stream it, or stream
 *             it and then refuse it (a {n} that is answered NO at once: the reader is reset)
 * Choices come from their own generator, one per literal, so they do not depend on the cuts;
 * the chunked run is compared with one that feeds everything at once.
 */

static const size_t LINE_LIMITS[] = {16, 40, 64, 100, 1024, 65536};
static const size_t LITERAL_LIMITS[] = {0, 1, 8, 100, 4096, 65536};

#define MAX_EVENTS 4096

enum kind { EV_COMMAND, EV_LITERAL, EV_STREAMED, EV_CONTINUE, EV_REFUSED, EV_TOO_LONG };

struct event {
    enum kind kind;
    size_t a, b; /* COMMAND: offset and length in log; LITERAL: size, marker; STREAMED: bytes */
    bool nonsync;
};

struct run {
    struct event ev[MAX_EVENTS];
    size_t n;
    char *log;
    size_t log_len, log_cap;
};

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant violated: %s\n", what);
        abort();
    }
}

static uint32_t next_random(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void add(struct run *run, struct event e)
{
    if (run->n < MAX_EVENTS)
        run->ev[run->n++] = e;
}

static void add_command(struct run *run, const struct imap_reader *r)
{
    if (run->log_len + r->len > run->log_cap) {
        run->log_cap = (run->log_len + r->len) * 2 + 64;
        run->log = realloc(run->log, run->log_cap);
        check(run->log != NULL, "out of memory");
    }
    memcpy(run->log + run->log_len, r->buf, r->len);
    add(run, (struct event){.kind = EV_COMMAND, .a = run->log_len, .b = r->len});
    run->log_len += r->len;
}

static void parse(const char *buf, size_t len)
{
    struct imap_command cmd;
    const char *error = NULL;
    if (!imap_parse_command(buf, len, &cmd, &error))
        check(error != NULL, "error without message");
    imap_command_free(&cmd);
}

static void run_stream(const uint8_t *data, size_t size, size_t max_line, size_t max_literal,
                       uint32_t *cuts, uint32_t choices_seed, struct run *run)
{
    struct imap_reader r;
    imap_reader_init(&r, max_line, max_literal);
    r.offer_literals = true;
    uint32_t choices = choices_seed;
    size_t off = 0, streamed = 0;
    bool in_stream = false, closed = false;
    while (off < size && !closed) {
        size_t n = size - off;
        if (cuts) {
            uint32_t x = next_random(cuts);
            if (x % 8 != 0 && n > 1 + (x >> 8) % 64)
                n = 1 + (x >> 8) % 64;
        }
        size_t chunk_end = off + n;
        while (off < chunk_end && !closed) {
            size_t used = 0, left_before = r.literal_left;
            enum imap_read_status st =
                imap_reader_feed(&r, (const char *)data + off, chunk_end - off, &used);
            check(used <= chunk_end - off, "used more than given");
            check(st == IMAP_READ_MORE || used > 0, "status without progress");
            off += used;
            switch (st) {
            case IMAP_READ_MORE:
                check(used == chunk_end - off + used, "MORE without using all");
                break;
            case IMAP_READ_STREAM_DATA:
                check(in_stream && used <= left_before, "stream data beyond the literal");
                streamed += used;
                if (r.literal_left == 0) {
                    add(run, (struct event){.kind = EV_STREAMED, .b = streamed});
                    in_stream = false;
                }
                break;
            case IMAP_READ_LITERAL: {
                check(r.buf[r.marker_start] == '{', "marker not at a brace");
                /* nothing moves until the decision */
                size_t none = 99;
                check(imap_reader_feed(&r, "x", 1, &none) == IMAP_READ_MORE && none == 0,
                      "reader moved while deciding");
                add(run, (struct event){.kind = EV_LITERAL,
                                        .a = r.announced,
                                        .b = r.marker_start,
                                        .nonsync = r.announced_nonsync});
                uint32_t choice = next_random(&choices) % 3;
                if (choice == 0) {
                    enum imap_read_status d = imap_reader_literal(&r, false);
                    if (d == IMAP_READ_LITERAL_TOO_BIG) {
                        add(run, (struct event){.kind = EV_REFUSED, .nonsync = r.nonsync});
                        closed = r.nonsync;
                        imap_reader_reset(&r);
                    } else if (d == IMAP_READ_CONTINUE) {
                        add(run, (struct event){.kind = EV_CONTINUE});
                    }
                } else {
                    bool nonsync = r.announced_nonsync;
                    size_t size_announced = r.announced;
                    enum imap_read_status d = imap_reader_literal(&r, true);
                    check(d == (nonsync ? IMAP_READ_MORE : IMAP_READ_CONTINUE), "stream status");
                    if (choice == 2 && !nonsync) {
                        imap_reader_reset(&r); /* refused at once: no data comes */
                        check(!r.streaming && r.len == 0, "reset left state");
                        add(run, (struct event){.kind = EV_REFUSED});
                    } else {
                        streamed = 0;
                        in_stream = size_announced > 0;
                        if (!in_stream)
                            add(run, (struct event){.kind = EV_STREAMED, .b = 0});
                    }
                }
                break;
            }
            case IMAP_READ_CONTINUE:
                add(run, (struct event){.kind = EV_CONTINUE});
                break;
            case IMAP_READ_COMMAND:
                check(r.len > 0 && r.buf[r.len - 1] == '\n', "command does not end in LF");
                check(r.buf[r.len] == '\0', "command not terminated");
                check(!r.streaming && r.literal_left == 0, "command with data to come");
                add_command(run, &r);
                parse(r.buf, r.len);
                imap_reader_reset(&r);
                break;
            case IMAP_READ_LINE_TOO_LONG:
                add(run, (struct event){.kind = EV_TOO_LONG, .nonsync = r.nonsync});
                closed = r.nonsync;
                imap_reader_reset(&r);
                break;
            case IMAP_READ_LITERAL_TOO_BIG:
                check(false, "a refusal without being asked");
                break;
            }
        }
    }
    imap_reader_free(&r);
}

static void compare(const struct run *a, const struct run *b)
{
    if (a->n == MAX_EVENTS || b->n == MAX_EVENTS)
        return;
    check(a->n == b->n, "number of events depends on how the stream was cut");
    for (size_t i = 0; i < a->n; i++) {
        const struct event *x = &a->ev[i], *y = &b->ev[i];
        check(x->kind == y->kind, "event depends on how the stream was cut");
        if (x->kind == EV_COMMAND)
            check(x->b == y->b && memcmp(a->log + x->a, b->log + y->a, x->b) == 0,
                  "command depends on how the stream was cut");
        else if (x->kind != EV_TOO_LONG)
            check(x->a == y->a && x->b == y->b && x->nonsync == y->nonsync,
                  "literal depends on how the stream was cut");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    size_t max_line = LINE_LIMITS[data[0] % (sizeof(LINE_LIMITS) / sizeof(LINE_LIMITS[0]))];
    size_t max_literal =
        LITERAL_LIMITS[data[1] % (sizeof(LITERAL_LIMITS) / sizeof(LITERAL_LIMITS[0]))];
    uint32_t cuts = ((uint32_t)data[2] << 8 | data[3]) * 2654435761u + 1;
    uint32_t choices = (uint32_t)data[4] * 2246822519u + 7;
    data += 5;
    size -= 5;
    static struct run chunked, whole;
    chunked.n = whole.n = 0;
    chunked.log_len = whole.log_len = 0;
    run_stream(data, size, max_line, max_literal, &cuts, choices, &chunked);
    run_stream(data, size, max_line, max_literal, NULL, choices, &whole);
    /* below 64 bytes of MaxCommandSize the kept tag of an over-long line depends on the cuts,
     * but no event here records it */
    compare(&whole, &chunked);
    return 0;
}
