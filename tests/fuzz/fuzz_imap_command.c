/* libFuzzer target: IMAP command assembly (imap_reader_feed) and parsing (imap_parse_command). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/imap.h"

/*
 * Input layout: 4 header bytes, then the client's byte stream.
 *   byte 0  selects MaxCommandSize from LINE_LIMITS (small values reach the too-long paths)
 *   byte 1  selects the literal limit from LITERAL_LIMITS
 *   byte 2,3  seed the generator of chunk sizes, so the same stream is cut differently
 * The stream goes through the reader in chunks of 1..64 bytes (sometimes all the rest), the
 * way TCP segments and TLS records cut it, and every assembled command is parsed. After a
 * refused non-synchronizing literal (too big, or announced by an over-long line) the stream
 * ends, as the session closes the connection.
 *
 * The chunked run is then compared with a run that feeds the rest of the stream at once:
 * assembly must not depend on where the stream was cut (a "{n}" split from its CRLF was once
 * missed, and the literal data ran as a command).
 */

static const size_t LINE_LIMITS[] = {16, 40, 64, 100, 1024, 65536};
static const size_t LITERAL_LIMITS[] = {0, 1, 8, 100, 4096, 65536};

#define MAX_EVENTS 4096

struct event {
    enum imap_read_status status;
    size_t offset, len; /* COMMAND: where the command is in `log` */
    char tag[64];       /* LINE_TOO_LONG and LITERAL_TOO_BIG: the tag for the reply */
    bool nonsync;
};

struct run {
    struct event ev[MAX_EVENTS];
    size_t n;
    char *log; /* the assembled commands, one after another */
    size_t log_len, log_cap;
};

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant violated: %s\n", what);
        abort();
    }
}

/* Walk the whole tree so that ASan sees every byte the parser produced. */
static void check_args(const struct imap_arg *args, size_t n)
{
    check(n == 0 || args != NULL, "arguments missing");
    for (size_t i = 0; i < n; i++) {
        const struct imap_arg *a = &args[i];
        if (a->type == IMAP_ARG_LIST) {
            check(a->str == NULL, "list with text");
            check_args(a->list, a->list_len);
            continue;
        }
        check(a->str != NULL, "argument without text");
        /* NUL is refused everywhere, so the text is exactly len bytes */
        check(strlen(a->str) == a->len, "argument length");
        check(a->type != IMAP_ARG_NIL || a->len == 3, "NIL length");
        check(imap_arg_is_astring(a), "string argument that is not an astring");
        check(imap_arg_is_string(a) == (a->type == IMAP_ARG_QUOTED || a->type == IMAP_ARG_LITERAL),
              "string kind");
    }
}

static void parse(const char *buf, size_t len)
{
    struct imap_command cmd;
    const char *error = NULL;
    if (imap_parse_command(buf, len, &cmd, &error)) {
        check(cmd.tag != NULL && cmd.tag[0] != '\0', "command without tag");
        check(cmd.name != NULL && cmd.name[0] != '\0', "command without name");
        check_args(cmd.args, cmd.n_args);
    } else {
        check(error != NULL, "error without message");
        check(cmd.tag == NULL || cmd.tag[0] != '\0', "empty tag on error");
    }
    imap_command_free(&cmd);
}

/* The tag the session would put in its error reply: "*" or a valid tag. */
static void reply_tag(const struct imap_reader *r, char *tag, size_t len)
{
    imap_reader_tag(r, tag, len);
    size_t n = strlen(tag);
    check(n > 0 && n < len, "reply tag length");
    if (strcmp(tag, "*") == 0)
        return;
    check(n < r->len && memcmp(tag, r->buf, n) == 0 && r->buf[n] == ' ', "reply tag not buffered");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tag[i];
        check(c > 0x20 && c < 0x7f && !strchr("(){%*\"\\+", c), "reply tag character");
    }
}

static void record(struct run *run, const struct imap_reader *r, enum imap_read_status st)
{
    if (st == IMAP_READ_LINE_TOO_LONG || st == IMAP_READ_LITERAL_TOO_BIG) {
        char tag[64];
        reply_tag(r, tag, sizeof(tag));
    }
    if (run == NULL || run->n == MAX_EVENTS)
        return;
    struct event *e = &run->ev[run->n++];
    memset(e, 0, sizeof(*e));
    e->status = st;
    if (st == IMAP_READ_COMMAND) {
        if (run->log_len + r->len > run->log_cap) {
            run->log_cap = (run->log_len + r->len) * 2;
            run->log = realloc(run->log, run->log_cap);
            check(run->log != NULL, "out of memory");
        }
        memcpy(run->log + run->log_len, r->buf, r->len);
        e->offset = run->log_len;
        e->len = r->len;
        run->log_len += r->len;
    } else if (st == IMAP_READ_LINE_TOO_LONG || st == IMAP_READ_LITERAL_TOO_BIG) {
        imap_reader_tag(r, e->tag, sizeof(e->tag));
        e->nonsync = r->nonsync;
    }
}

static uint32_t next_random(uint32_t *s)
{
    /* xorshift32: cheap, and the same input always gives the same chunks */
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Feeds the stream; chunked when seed is non-NULL, otherwise everything that is left at once. */
static void run_stream(const uint8_t *data, size_t size, size_t max_line, size_t max_literal,
                       uint32_t *seed, struct run *run, bool parse_commands)
{
    struct imap_reader r;
    imap_reader_init(&r, max_line, max_literal);
    size_t off = 0;
    while (off < size) {
        size_t n = size - off;
        if (seed) {
            uint32_t x = next_random(seed);
            if (x % 8 != 0 && n > 1 + (x >> 8) % 64)
                n = 1 + (x >> 8) % 64;
        }
        /* the session feeds a chunk until the reader has used all of it */
        size_t chunk_end = off + n;
        bool closed = false;
        while (off < chunk_end) {
            size_t used = 0;
            const char *p = (const char *)data + off;
            enum imap_read_status st = imap_reader_feed(&r, p, chunk_end - off, &used);
            check(used <= chunk_end - off, "used more than given");
            check(st != IMAP_READ_MORE || used == chunk_end - off, "MORE without using all");
            check(st == IMAP_READ_MORE || used > 0, "status without progress");
            off += used;
            record(run, &r, st);
            switch (st) {
            case IMAP_READ_MORE:
            case IMAP_READ_CONTINUE:
                break;
            case IMAP_READ_COMMAND:
                check(r.len > 0 && r.buf[r.len - 1] == '\n', "command does not end in LF");
                check(r.buf[r.len] == '\0', "command not terminated");
                check(r.literal_left == 0, "command with literal data to come");
                if (parse_commands)
                    parse(r.buf, r.len);
                imap_reader_reset(&r);
                break;
            case IMAP_READ_LINE_TOO_LONG: /* the session closes after an over-long {n+} line */
            case IMAP_READ_LITERAL_TOO_BIG:
                closed = r.nonsync;
                imap_reader_reset(&r);
                break;
            case IMAP_READ_LITERAL: /* only when literals are offered (fuzz_imap_stream) */
            case IMAP_READ_STREAM_DATA:
                check(false, "a streaming status from a reader that does not offer literals");
                break;
            }
            if (closed)
                break;
        }
        if (closed)
            break;
    }
    imap_reader_free(&r);
}

/* compare_tags: the reader keeps up to 64 bytes of an over-long line for the tag; below a
 * 64-byte MaxCommandSize (1024 is the configurable minimum) a cut can end the kept part inside
 * the tag, and "*" is then the right answer for one run and not the other. */
static void compare(const struct run *a, const struct run *b, bool compare_tags)
{
    /* MORE depends on the cuts; everything else must not */
    size_t i = 0, j = 0;
    for (;;) {
        while (i < a->n && a->ev[i].status == IMAP_READ_MORE)
            i++;
        while (j < b->n && b->ev[j].status == IMAP_READ_MORE)
            j++;
        if (i == a->n || j == b->n)
            break;
        const struct event *x = &a->ev[i++], *y = &b->ev[j++];
        check(x->status == y->status, "status depends on how the stream was cut");
        if (x->status == IMAP_READ_COMMAND) {
            check(x->len == y->len && memcmp(a->log + x->offset, b->log + y->offset, x->len) == 0,
                  "command depends on how the stream was cut");
        } else if (x->status != IMAP_READ_CONTINUE) {
            check(!compare_tags || strcmp(x->tag, y->tag) == 0,
                  "tag depends on how the stream was cut");
            check(x->nonsync == y->nonsync, "nonsync depends on how the stream was cut");
        }
    }
    /* the event table may have filled up in one run before the other */
    if (a->n < MAX_EVENTS && b->n < MAX_EVENTS) {
        while (i < a->n && a->ev[i].status == IMAP_READ_MORE)
            i++;
        while (j < b->n && b->ev[j].status == IMAP_READ_MORE)
            j++;
        check(i == a->n && j == b->n, "number of events depends on how the stream was cut");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t max_line = LINE_LIMITS[data[0] % (sizeof(LINE_LIMITS) / sizeof(LINE_LIMITS[0]))];
    size_t max_literal =
        LITERAL_LIMITS[data[1] % (sizeof(LITERAL_LIMITS) / sizeof(LITERAL_LIMITS[0]))];
    uint32_t seed = ((uint32_t)data[2] << 8 | data[3]) * 2654435761u + 1;
    data += 4;
    size -= 4;

    static struct run chunked, whole;
    chunked.n = whole.n = 0;
    chunked.log_len = whole.log_len = 0;
    run_stream(data, size, max_line, max_literal, &seed, &chunked, true);
    run_stream(data, size, max_line, max_literal, NULL, &whole, false);
    compare(&whole, &chunked, max_line >= 64);
    return 0;
}
