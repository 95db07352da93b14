/* libFuzzer target: a message file through src/mime (structure, ENVELOPE/BODY/BODYSTRUCTURE,
 * every section copied, HEADER.FIELDS, partial copies, SEARCH helpers), with invariants. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "postern/mime.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant violated: %s\n", what);
        abort();
    }
}

static bool count_only(void *ctx, const void *data, size_t len)
{
    (void)data;
    *(uint64_t *)ctx += len;
    return true;
}

/* Parentheses balance outside quoted strings and literals, and literals fit: the string is one
 * well-formed IMAP parenthesised list. */
static void check_imap_list(const char *s, size_t len, const char *what)
{
    long depth = 0;
    check(len > 0 && s[0] == '(', what);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '"') {
            for (i++; i < len && s[i] != '"'; i++) {
                check(s[i] != '\r' && s[i] != '\n' && (unsigned char)s[i] < 0x80, what);
                if (s[i] == '\\')
                    i++;
            }
            check(i < len, what);
        } else if (c == '{') {
            char *end;
            unsigned long long n = strtoull(s + i + 1, &end, 10);
            check(end[0] == '}' && end[1] == '\r' && end[2] == '\n', what);
            i = (size_t)(end + 3 - s) + n - 1;
            check(i < len, what);
        } else if (c == '(') {
            depth++;
        } else if (c == ')') {
            check(--depth >= 0, what);
            check(depth > 0 || i == len - 1, what);
        } else {
            check(c != '\r' && c != '\n' && c != '\0', what);
        }
    }
    check(depth == 0, what);
}

static void walk(const struct mime_message *msg, const struct mime_part *part, uint64_t size,
                 unsigned *visited)
{
    for (; part != NULL; part = part->next) {
        ++*visited;
        check(part->header.start <= part->header.end, "header range");
        check(part->header.end <= part->body.start, "header before body");
        check(part->body.start <= part->body.end && part->body.end <= size, "body range");
        check(part->header_size.octets >= part->header.end - part->header.start, "header octets");
        check(part->body_size.octets >= part->body.end - part->body.start, "body octets");
        check(part->body_size.octets <= 2 * (part->body.end - part->body.start), "body octets");
        check(part->depth <= MIME_MAX_DEPTH + 1, "depth");
        for (const struct mime_part *c = part->children; c != NULL; c = c->next) {
            check(c->parent == part, "parent link");
            check(c->header.start >= part->body.start && c->body.end <= part->body.end,
                  "child inside parent");
        }
        check(part->kind != MIME_KIND_MESSAGE ||
                  (part->children != NULL && part->children->next == NULL),
              "message/rfc822 has one child");
        uint64_t copied = 0;
        check(mime_message_copy(msg, &part->body, 0, UINT64_MAX, count_only, &copied) == MIME_OK,
              "copy");
        check(copied == part->body_size.octets, "copied body == body octets");
        walk(msg, part->children, size, visited);
    }
}

static void sections(const struct mime_message *msg)
{
    static const char *const numbers[] = {"",    "1",     "2",     "1.1",    "1.2",
                                          "2.1", "2.2.1", "3.1.1", "1.1.1.1"};
    static const char *const names[] = {"From", "SUBJECT", "content-type", "x"};
    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        for (int t = MIME_SECTION_BODY; t <= MIME_SECTION_MIME; t++) {
            struct mime_range range;
            struct mime_size size;
            if (mime_message_section(msg, numbers[i], (enum mime_section_text)t, &range, &size) !=
                MIME_OK)
                continue;
            uint64_t copied = 0;
            check(mime_message_copy(msg, &range, 0, UINT64_MAX, count_only, &copied) == MIME_OK,
                  "section copy");
            check(copied == size.octets, "section copy == section octets");
            uint64_t part_len = 0;
            check(mime_message_copy(msg, &range, size.octets / 3, 17, count_only, &part_len) ==
                      MIME_OK,
                  "partial copy");
            uint64_t left = size.octets - size.octets / 3;
            check(part_len == (left < 17 ? left : 17), "partial length");
            if (t == MIME_SECTION_HEADER) {
                uint64_t sent = 0, counted = 0;
                for (int exclude = 0; exclude < 2; exclude++) {
                    check(mime_message_header_fields(msg, &range, names, 4, exclude, count_only,
                                                     &sent, &counted) == MIME_OK,
                          "header fields");
                    check(sent == counted, "header fields size");
                    sent = 0;
                }
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready)
        ready = mime_init();
    int fd = memfd_create("fuzz_mime", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (size > 0 && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    enum mime_error error;
    struct mime_message *msg = mime_message_open_fd(fd, &error);
    struct mime_message *head = mime_message_open_header(fd, &error);
    close(fd);
    check(msg != NULL && head != NULL, "open a memfd");
    /* the header-only analysis finds the same header as the full one */
    struct mime_range want, got;
    struct mime_size want_size, got_size;
    check(mime_message_section(msg, "", MIME_SECTION_HEADER, &want, &want_size) == MIME_OK &&
              mime_message_section(head, "", MIME_SECTION_HEADER, &got, &got_size) == MIME_OK,
          "HEADER section");
    check(want.start == got.start && want.end == got.end && want_size.octets == got_size.octets &&
              want_size.lines == got_size.lines,
          "header-only HEADER == full HEADER");
    static const char *const fields[] = {"Subject", "FROM", "x"};
    uint64_t sent = 0, counted = 0;
    check(mime_message_header_fields(head, &got, fields, 3, false, count_only, &sent, &counted) ==
                  MIME_OK &&
              sent == counted,
          "header-only header fields");
    mime_message_free(head);
    size_t len;
    const char *s = mime_message_envelope(msg, &len);
    check_imap_list(s, len, "ENVELOPE is an IMAP list");
    s = mime_message_bodystructure(msg, &len);
    check_imap_list(s, len, "BODYSTRUCTURE is an IMAP list");
    s = mime_message_body(msg, &len);
    check_imap_list(s, len, "BODY is an IMAP list");
    const struct mime_part *root = mime_message_root(msg);
    check(root->header.start == 0 && root->body.end == size, "root covers the file");
    check(mime_message_size(msg) == size + (mime_message_size(msg) - size), "size");
    unsigned visited = 0;
    walk(msg, root, size, &visited);
    check(visited <= MIME_MAX_PARTS + 1, "part count");
    sections(msg);
    char **values = mime_message_header_decoded(msg, "Subject");
    check(values != NULL, "decoded header");
    mime_strv_free(values);
    struct mime_text_iter *it = mime_text_iter_new(msg);
    char buf[512];
    while (it != NULL && mime_text_iter_read(it, buf, sizeof(buf)) > 0)
        ;
    mime_text_iter_free(it);
    check(mime_message_text_contains(msg, "Straße") >= 0, "text search");
    mime_message_free(msg);
    return 0;
}
