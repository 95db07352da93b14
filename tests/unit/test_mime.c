/* Unit tests of src/mime: IMAP strings, addresses, parameters, the part tree and its sizes on
 * the samples in tests/data/mime/, sections and partial copies, SEARCH helpers, and malformed,
 * deep and large messages (memory stays far below the message size). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "postern/mime.h"

#define DATA "tests/data/mime/"

static struct mime_message *open_sample(const char *name)
{
    enum mime_error error;
    char path[512];
    snprintf(path, sizeof(path), DATA "%s", name);
    struct mime_message *msg = mime_message_open(path, &error);
    if (msg == NULL)
        fail_msg("cannot open %s: %s", path, mime_error_text(error));
    return msg;
}

static struct mime_message *open_bytes(const char *data, size_t len)
{
    int fd = memfd_create("test_mime", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    enum mime_error error;
    struct mime_message *msg = mime_message_open_fd(fd, &error);
    close(fd);
    assert_non_null(msg);
    return msg;
}

static bool collect(void *ctx, const void *data, size_t len)
{
    mime_buf_add(ctx, data, len);
    return true;
}

/* BODY[section] as IMAP sends it; NULL when the section does not exist. */
static char *fetch(const struct mime_message *msg, const char *number, enum mime_section_text text)
{
    struct mime_range range;
    struct mime_size size;
    if (mime_message_section(msg, number, text, &range, &size) != MIME_OK)
        return NULL;
    struct mime_buf out = {0};
    assert_int_equal(mime_message_copy(msg, &range, 0, UINT64_MAX, collect, &out), MIME_OK);
    assert_int_equal(out.len, size.octets);
    mime_buf_add(&out, "", 0);
    return out.data;
}

static void assert_fetch(const struct mime_message *msg, const char *number,
                         enum mime_section_text text, const char *want)
{
    char *got = fetch(msg, number, text);
    if (want == NULL) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_imap_strings(void **state)
{
    (void)state;
    struct mime_buf b = {0};
    mime_imap_string(&b, "plain", 5);
    mime_buf_add_char(&b, ' ');
    mime_imap_string(&b, "a \"b\" \\c", 8);
    mime_buf_add_char(&b, ' ');
    mime_imap_string(&b, "\"\"\"\"\"", 5); /* five quote specials: a literal is shorter */
    mime_buf_add_char(&b, ' ');
    mime_imap_string(&b, "caf\xc3\xa9", 5);
    mime_buf_add_char(&b, ' ');
    mime_imap_string(&b, "a\0b", 3);
    mime_buf_add_char(&b, ' ');
    mime_imap_nstring(&b, NULL, 0);
    assert_string_equal(b.data,
                        "\"plain\" \"a \\\"b\\\" \\\\c\" {5}\r\n\"\"\"\"\" {5}\r\ncaf\xc3\xa9 "
                        "{5}\r\na\xef\xbf\xbd"
                        "b NIL");
    b.len = 0;
    mime_imap_string_for_humans(&b, "Re:  a\r\n\tb  ", 12);
    mime_buf_add_char(&b, ' ');
    mime_imap_string_for_humans(&b, "simple words", 12);
    mime_buf_add_char(&b, ' ');
    mime_imap_string_for_humans(&b, " \t ", 3);
    assert_string_equal(b.data, "{7}\r\nRe: a b \"simple words\" \"\"");
    mime_buf_free(&b);
}

static void assert_addresses(const char *value, const char *want)
{
    struct mime_buf b = {0};
    mime_imap_address_list(&b, value, strlen(value));
    assert_string_equal(b.data, want);
    mime_buf_free(&b);
}

static void test_address_lists(void **state)
{
    (void)state;
    assert_addresses("", "NIL");
    assert_addresses(
        "Alice <a@example.org>, b@example.org (Bob B)",
        "((\"Alice\" NIL \"a\" \"example.org\")(\"Bob B\" NIL \"b\" \"example.org\"))");
    assert_addresses("undisclosed-recipients:;",
                     "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))");
    assert_addresses("Team: x@y, \"Q. Z\" <z@y>;",
                     "((NIL NIL \"Team\" NIL)(NIL NIL \"x\" \"y\")(\"Q. Z\" NIL \"z\" \"y\")"
                     "(NIL NIL NIL NIL))");
    assert_addresses("<@r1,@r2:u@h>", "((NIL \"@r1,@r2\" \"u\" \"h\"))");
    /* broken input recovered as Dovecot recovers it */
    assert_addresses("foo", "((NIL NIL \"foo\" \"MISSING_DOMAIN\"))");
    assert_addresses("<>", "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))");
    assert_addresses("John Smith", "((\"John Smith\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))");
    assert_addresses("@bad, good@x",
                     "((NIL NIL \"MISSING_MAILBOX\" \"bad\")(NIL NIL \"good\" \"x\"))");
    assert_addresses("a@b c@d", "((NIL NIL \"a\" \"b\"))");
    assert_addresses("\"unterminated <x@y>", "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))");
    /* raw encoded words stay encoded in ENVELOPE */
    assert_addresses("=?utf-8?q?J=C3=BCrgen?= <j@x>",
                     "((\"=?utf-8?q?J=C3=BCrgen?=\" NIL \"j\" \"x\"))");
}

static void test_content_parameters(void **state)
{
    (void)state;
    struct mime_content c;
    const char *v = "Application/PDF (comment); b=\"x y\"; name*1*=%20two; name*0*=utf-8''one;"
                    " a=1;;broken; =empty";
    assert_true(mime_content_parse(v, strlen(v), true, &c));
    assert_string_equal(c.type, "Application");
    assert_string_equal(c.subtype, "PDF");
    assert_int_equal(c.n_params, 4);
    /* plain parameters first, in order; then the RFC 2231 ones merged and raw */
    assert_string_equal(c.params[0].name, "b");
    assert_string_equal(c.params[0].value, "x y");
    assert_string_equal(c.params[1].name, "a");
    assert_string_equal(c.params[2].name, "");
    assert_string_equal(c.params[2].value, "empty");
    assert_string_equal(c.params[3].name, "name*");
    assert_string_equal(c.params[3].value, "utf-8''one%20two");
    mime_content_free(&c);
    assert_true(mime_content_parse("text", 4, true, &c));
    assert_string_equal(c.subtype, "");
    mime_content_free(&c);
    assert_false(mime_content_parse(" ; x=y", 6, true, &c));
    mime_content_free(&c);
}

static void test_plain_lf_and_crlf_sizes(void **state)
{
    (void)state;
    struct mime_message *lf = open_sample("plain_lf.eml");
    struct mime_message *crlf = open_sample("plain_crlf.eml");
    const struct mime_part *a = mime_message_root(lf), *b = mime_message_root(crlf);
    /* raw ranges differ by the CRs, normalised sizes do not */
    assert_int_equal(a->body.end - a->body.start, 100);
    assert_int_equal(b->body.end - b->body.start, 108);
    assert_int_equal(a->body_size.octets, 106);
    assert_int_equal(b->body_size.octets, 108);
    assert_int_equal(a->body_size.lines, 6);
    assert_int_equal(b->body_size.lines, 6);
    assert_int_equal(mime_message_size(lf), a->header_size.octets + 106);
    char *text = fetch(lf, "", MIME_SECTION_TEXT);
    assert_string_equal(text, "Hello Bob,\r\n\r\nthis is a plain text message with LF line "
                              "endings.\r\nIt has five lines of body.\r\n\r\n-- Alice\r\n");
    free(text);
    size_t len;
    const char *bs = mime_message_bodystructure(lf, &len);
    assert_string_equal(bs, "(\"text\" \"plain\" (\"charset\" \"us-ascii\" \"format\" \"flowed\") "
                            "NIL NIL \"7bit\" 106 6 NIL NIL NIL NIL)");
    const char *body = mime_message_body(lf, &len);
    assert_string_equal(body,
                        "(\"text\" \"plain\" (\"charset\" \"us-ascii\" \"format\" \"flowed\") "
                        "NIL NIL \"7bit\" 106 6)");
    const char *env = mime_message_envelope(lf, &len);
    assert_non_null(strstr(env, "{26}\r\nPlain text, \"quoted\" words (("));
    assert_non_null(strstr(env, " NIL \"<parent-0@example.net>\" \"<plain-1@example.org>\")"));
    mime_message_free(lf);
    mime_message_free(crlf);
}

static void test_part_numbers(void **state)
{
    (void)state;
    struct mime_message *msg = open_sample("rfc822_attachment.eml");
    assert_fetch(msg, "1", MIME_SECTION_BODY, "See the forwarded message.");
    assert_fetch(msg, "2.1", MIME_SECTION_BODY,
                 "Plain version: caf=C3=A9 cr=C3=A8me br=C3=BBl=C3=A9e.\r\n");
    assert_fetch(msg, "2.1.1", MIME_SECTION_BODY,
                 "Plain version: caf=C3=A9 cr=C3=A8me br=C3=BBl=C3=A9e.\r\n");
    assert_fetch(msg, "2.1.MIME", MIME_SECTION_BODY, NULL); /* not a number */
    assert_fetch(msg, "2.1", MIME_SECTION_MIME,
                 "Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: "
                 "quoted-printable\r\n\r\n");
    assert_fetch(msg, "2", MIME_SECTION_MIME,
                 "Content-Type: message/rfc822\r\nContent-Description: forwarded message\r\n"
                 "Content-Disposition: inline\r\n\r\n");
    char *inner_header = fetch(msg, "2", MIME_SECTION_HEADER);
    assert_non_null(inner_header);
    assert_true(strncmp(inner_header, "Date: Thu, 6 Mar 2025", 21) == 0);
    free(inner_header);
    assert_fetch(msg, "1", MIME_SECTION_HEADER, NULL); /* part 1 is not message/rfc822 */
    assert_fetch(msg, "3", MIME_SECTION_BODY, NULL);
    assert_fetch(msg, "0", MIME_SECTION_BODY, NULL);
    assert_fetch(msg, "1..1", MIME_SECTION_BODY, NULL);
    assert_fetch(msg, "", MIME_SECTION_MIME, NULL);
    mime_message_free(msg);

    msg = open_sample("top_rfc822.eml");
    assert_fetch(msg, "1.1", MIME_SECTION_BODY, "inner body\r\n");
    assert_fetch(msg, "1.1.1", MIME_SECTION_BODY, NULL);
    char *whole = fetch(msg, "1", MIME_SECTION_BODY);
    assert_true(strncmp(whole, "From: Inner", 11) == 0);
    free(whole);
    mime_message_free(msg);

    msg = open_sample("plain_lf.eml");
    assert_fetch(msg, "1.1", MIME_SECTION_BODY, NULL);
    char *mime = fetch(msg, "1", MIME_SECTION_MIME); /* the message header */
    assert_true(strncmp(mime, "Return-Path:", 12) == 0);
    free(mime);
    mime_message_free(msg);
}

static void test_header_fields(void **state)
{
    (void)state;
    struct mime_message *msg = open_sample("plain_lf.eml");
    struct mime_range h;
    struct mime_size size;
    assert_int_equal(mime_message_section(msg, "", MIME_SECTION_HEADER, &h, &size), MIME_OK);
    const char *names[] = {"subject", "FROM", "x-none"};
    struct mime_buf out = {0};
    uint64_t octets = 0;
    assert_int_equal(mime_message_header_fields(msg, &h, names, 3, false, collect, &out, &octets),
                     MIME_OK);
    assert_string_equal(out.data, "From: Alice Example <alice@example.org>\r\nSubject: Plain "
                                  "text, \"quoted\" words\r\n\r\n");
    assert_int_equal(octets, out.len);
    out.len = 0;
    const char *most[] = {"Return-Path", "Date",    "From",       "To",
                          "Cc",          "Subject", "Message-ID", "In-Reply-To"};
    assert_int_equal(mime_message_header_fields(msg, &h, most, 8, true, collect, &out, NULL),
                     MIME_OK);
    assert_string_equal(out.data, "MIME-Version: 1.0\r\nContent-Type: text/plain; "
                                  "charset=us-ascii; format=flowed\r\n\r\n");
    /* counting only */
    assert_int_equal(mime_message_header_fields(msg, &h, names, 3, false, NULL, NULL, &octets),
                     MIME_OK);
    assert_int_equal(octets, 80);
    mime_buf_free(&out);
    mime_message_free(msg);

    /* folded fields come whole */
    msg = open_sample("long_headers.eml");
    assert_int_equal(mime_message_section(msg, "", MIME_SECTION_HEADER, &h, &size), MIME_OK);
    const char *to[] = {"to"};
    struct mime_buf folded = {0};
    assert_int_equal(mime_message_header_fields(msg, &h, to, 1, false, collect, &folded, NULL),
                     MIME_OK);
    assert_true(
        strncmp(folded.data, "To: \"Person 0\" <person0@example.org>,\r\n\t\"Person 1\"", 50) == 0);
    assert_non_null(strstr(folded.data, "person39@example.org>\r\n\r\n"));
    mime_buf_free(&folded);
    mime_message_free(msg);
}

static void test_partial_copies(void **state)
{
    (void)state;
    struct mime_message *msg = open_sample("plain_lf.eml");
    struct mime_range r;
    struct mime_size size;
    assert_int_equal(mime_message_section(msg, "", MIME_SECTION_TEXT, &r, &size), MIME_OK);
    struct mime_buf out = {0};
    /* origin and count are in the CRLF-normalised text: the CR added before the LF counts */
    assert_int_equal(mime_message_copy(msg, &r, 9, 4, collect, &out), MIME_OK);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, ",\r\n\r", 4);
    out.len = 0;
    assert_int_equal(mime_message_copy(msg, &r, 1000, 10, collect, &out), MIME_OK);
    assert_int_equal(out.len, 0);
    assert_int_equal(mime_message_copy(msg, &r, 0, 0, collect, &out), MIME_OK);
    assert_int_equal(out.len, 0);
    struct mime_range bad = {r.start, r.end + 100000};
    assert_int_equal(mime_message_copy(msg, &bad, 0, 10, collect, &out), MIME_ERR_NOT_FOUND);
    mime_buf_free(&out);
    mime_message_free(msg);
}

static void test_malformed_structures(void **state)
{
    (void)state;
    struct mime_message *msg = open_sample("no_headers.eml");
    const struct mime_part *root = mime_message_root(msg);
    assert_int_equal(root->body_size.octets, 0); /* every line is read as a header line */
    assert_int_equal(root->header_size.octets, 58);
    mime_message_free(msg);

    msg = open_sample("broken_boundary.eml");
    root = mime_message_root(msg);
    assert_int_equal(root->kind, MIME_KIND_MULTIPART);
    assert_null(root->children);
    assert_fetch(msg, "1", MIME_SECTION_BODY, NULL);
    size_t len;
    assert_non_null(strstr(mime_message_bodystructure(msg, &len),
                           "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 "
                           "NIL NIL NIL NIL) \"mixed\""));
    mime_message_free(msg);

    msg = open_sample("unterminated_multipart.eml");
    assert_fetch(msg, "2", MIME_SECTION_BODY, "<b>second, never closed</b>\r\n");
    mime_message_free(msg);

    /* a part header cut short by the next boundary keeps no newline */
    static const char cut[] = "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: "
                              "text/html\n--b\n\nsecond\n--b--\n";
    msg = open_bytes(cut, sizeof(cut) - 1);
    assert_fetch(msg, "1", MIME_SECTION_MIME, "Content-Type: text/html");
    assert_fetch(msg, "1", MIME_SECTION_BODY, "");
    assert_fetch(msg, "2", MIME_SECTION_MIME, "\r\n");
    mime_message_free(msg);

    /* empty file, lone CRs, NULs */
    msg = open_bytes("", 0);
    assert_string_equal(mime_message_envelope(msg, &len),
                        "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
    mime_message_free(msg);
    static const char odd[] = "Subject: a\rb\0c\n\n\r\r\nx\0y";
    msg = open_bytes(odd, sizeof(odd) - 1);
    assert_fetch(msg, "", MIME_SECTION_TEXT, "\r\r\nx\x80y");
    assert_non_null(strstr(mime_message_envelope(msg, &len), "{6}\r\nab\xef\xbf\xbd"
                                                             "c"));
    mime_message_free(msg);
}

/* Multiparts nested far deeper than MIME_MAX_DEPTH, and more parts than MIME_MAX_PARTS. */
static void test_limits(void **state)
{
    (void)state;
    struct mime_buf m = {0};
    for (int i = 0; i < 300; i++) {
        char line[128];
        snprintf(line, sizeof(line), "Content-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n",
                 i, i);
        mime_buf_add_str(&m, line);
    }
    mime_buf_add_str(&m, "Content-Type: text/plain\n\ndeep\n");
    struct mime_message *msg = open_bytes(m.data, m.len);
    const struct mime_part *p = mime_message_root(msg);
    unsigned depth = 0;
    while (p->children != NULL) {
        p = p->children;
        depth++;
    }
    assert_int_equal(depth, MIME_MAX_DEPTH);
    assert_int_equal(p->kind, MIME_KIND_LEAF);
    size_t len;
    assert_non_null(
        strstr(mime_message_bodystructure(msg, &len), "\"application\" \"octet-stream\""));
    mime_message_free(msg);

    m.len = 0;
    mime_buf_add_str(&m, "Content-Type: multipart/mixed; boundary=x\n\n");
    for (int i = 0; i < MIME_MAX_PARTS + 50; i++)
        mime_buf_add_str(&m, "--x\n\np\n");
    mime_buf_add_str(&m, "--x--\n");
    msg = open_bytes(m.data, m.len);
    unsigned n = 0;
    for (p = mime_message_root(msg)->children; p != NULL; p = p->next)
        n++;
    assert_int_equal(n, MIME_MAX_PARTS - 1);
    mime_message_free(msg);
    mime_buf_free(&m);
}

static void test_search_helpers(void **state)
{
    (void)state;
    struct mime_message *msg = open_sample("rfc2047.eml");
    char **v = mime_message_header_decoded(msg, "from");
    assert_non_null(v);
    assert_string_equal(v[0], "Andr\xc3\xa9 Fran\xc3\xa7ois <andre@example.fr>");
    assert_null(v[1]);
    mime_strv_free(v);
    v = mime_message_header_decoded(msg, "X-Not-There");
    assert_null(v[0]);
    mime_strv_free(v);
    /* quoted-printable ISO-8859-1, soft line breaks joined */
    assert_int_equal(mime_message_text_contains(msg, "VOIL\xc3\x80"), 1);
    assert_int_equal(mime_message_text_contains(msg, "joins this line"), 1);
    assert_int_equal(mime_message_text_contains(msg, "=E0"), 0);
    mime_message_free(msg);

    msg = open_sample("mixed_attachment.eml");
    assert_int_equal(mime_message_text_contains(msg, "invoice ATTACHED"), 1);
    assert_int_equal(mime_message_text_contains(msg, "%PDF"), 0); /* not a text part */
    mime_message_free(msg);

    msg = open_sample("eight_bit.eml");
    assert_int_equal(mime_message_text_contains(msg, "STRASSE"), 1); /* Unicode case folding */
    struct mime_text_iter *it = mime_text_iter_new(msg);
    char buf[7];
    struct mime_buf all = {0};
    ssize_t n;
    while ((n = mime_text_iter_read(it, buf, sizeof(buf))) > 0)
        mime_buf_add(&all, buf, (size_t)n);
    assert_int_equal(n, 0);
    mime_text_iter_free(it);
    assert_true(strncmp(all.data,
                        "Gr\xc3\xbc\xc3\x9f"
                        "e aus K\xc3\xb6ln!",
                        17) == 0);
    mime_buf_free(&all);
    mime_message_free(msg);
}

static long vm_hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    }
    if (f != NULL)
        fclose(f);
    return kb;
}

/* 50 MB: a base64 text part and a multipart whose boundary never comes. The peak RSS may grow
 * by buffers, not by the message. */
static void test_large_message_memory(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    fputs("From: big@example.org\nSubject: big\nContent-Type: multipart/mixed; boundary=big\n\n"
          "--big\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n",
          f);
    const char *line = "TmVlZGxlIGluIGEgaGF5c3RhY2s6IGhheSBoYXkgaGF5IGhheSBoYXkgaGF5IGhheSBo\n";
    for (int i = 0; i < 25 * 1024 * 1024 / 69; i++)
        fputs(line, f);
    fputs("U3RyYcOfZSBhdCB0aGUgZW5k\n--big\nContent-Type: multipart/mixed; boundary=never\n\n", f);
    for (int i = 0; i < 25 * 1024 * 1024 / 69; i++)
        fputs("never a boundary line, just text that goes on and on and on and on..\n", f);
    fflush(f);
    FILE *clear = fopen("/proc/self/clear_refs", "w"); /* "5" resets the peak RSS */
    if (clear != NULL) {
        fputs("5", clear);
        fclose(clear);
    }
    long before = vm_hwm_kb();
    enum mime_error error;
    struct mime_message *msg = mime_message_open_fd(fileno(f), &error);
    assert_non_null(msg);
    const struct mime_part *text = mime_message_find_part(msg, "1");
    assert_non_null(text);
    assert_true(text->body_size.octets > 25u * 1024 * 1024);
    assert_int_equal(mime_message_text_contains(msg, "stra\xc3\x9f"
                                                     "e AT THE END"),
                     1);
    long after = vm_hwm_kb();
    mime_message_free(msg);
    fclose(f);
    print_message("peak RSS grew by %ld KiB for a 50 MB message\n", after - before);
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine and shadow memory make RSS meaningless */
    if (before > 0 && after > 0)
        assert_true(after - before < 16 * 1024); /* KiB */
#endif
}

static long long rchar(void)
{
    long long n = -1;
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "rchar:", 6) == 0)
            n = strtoll(line + 6, NULL, 10);
    }
    if (f != NULL)
        fclose(f);
    return n;
}

static char *header_fields_of(const struct mime_message *msg, const char *const *names, size_t n)
{
    struct mime_range h;
    struct mime_size size;
    assert_int_equal(mime_message_section(msg, "", MIME_SECTION_HEADER, &h, &size), MIME_OK);
    struct mime_buf out = {0};
    assert_int_equal(mime_message_header_fields(msg, &h, names, n, false, collect, &out, NULL),
                     MIME_OK);
    mime_buf_add(&out, "", 0);
    return out.data;
}

/* mime_message_open_header(): on every sample, BODY[HEADER] and HEADER.FIELDS are those of
 * the full analysis; and it reads the header, not the 20 MB behind it. */
static void test_header_only(void **state)
{
    (void)state;
    static const char *const samples[] = {"alternative.eml",
                                          "boundary_edges.eml",
                                          "broken_boundary.eml",
                                          "broken_headers.eml",
                                          "digest_cut_header.eml",
                                          "eight_bit.eml",
                                          "empty_header.eml",
                                          "header_only.eml",
                                          "long_headers.eml",
                                          "mixed_attachment.eml",
                                          "nested.eml",
                                          "no_headers.eml",
                                          "nul_bytes.eml",
                                          "plain_crlf.eml",
                                          "plain_lf.eml",
                                          "rfc2047.eml",
                                          "top_rfc822.eml",
                                          "unterminated_multipart.eml"};
    static const char *const names[] = {"date",    "from",       "to",          "cc",
                                        "subject", "message-id", "content-type"};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), DATA "%s", samples[i]);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        enum mime_error error;
        struct mime_message *full = mime_message_open_fd(fileno(f), &error);
        struct mime_message *head = mime_message_open_header(fileno(f), &error);
        assert_non_null(full);
        assert_non_null(head);
        char *want = fetch(full, "", MIME_SECTION_HEADER);
        char *got = fetch(head, "", MIME_SECTION_HEADER);
        assert_non_null(want);
        assert_non_null(got);
        assert_string_equal(got, want);
        free(want);
        free(got);
        want = header_fields_of(full, names, 7);
        got = header_fields_of(head, names, 7);
        assert_string_equal(got, want);
        free(want);
        free(got);
        assert_null(mime_message_find_part(head, "1.1")); /* no parts: not analysed */
        mime_message_free(full);
        mime_message_free(head);
        fclose(f);
    }

    FILE *f = tmpfile();
    assert_non_null(f);
    fputs("From: big@example.org\nSubject: big\nContent-Type: multipart/mixed; boundary=b\n\n"
          "--b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n",
          f);
    for (int i = 0; i < 20 * 1024 * 1024 / 69; i++)
        fputs("TmVlZGxlIGluIGEgaGF5c3RhY2s6IGhheSBoYXkgaGF5IGhheSBoYXkgaGF5IGhheSBo\n", f);
    fputs("--b--\n", f);
    fflush(f);
    long long before = rchar();
    enum mime_error error;
    struct mime_message *head = mime_message_open_header(fileno(f), &error);
    assert_non_null(head);
    const char *const subject[] = {"subject"};
    char *got = header_fields_of(head, subject, 1);
    assert_string_equal(got, "Subject: big\r\n\r\n");
    free(got);
    long long read = rchar() - before;
    mime_message_free(head);
    fclose(f);
    print_message("header-only analysis of a 20 MB message read %lld bytes\n", read);
    if (before >= 0)
        assert_true(read < 1024 * 1024);
}

static void test_open_errors(void **state)
{
    (void)state;
    enum mime_error error;
    assert_null(mime_message_open("tests/data/mime/does-not-exist.eml", &error));
    assert_int_equal(error, MIME_ERR_IO);
    assert_null(mime_message_open_fd(-1, &error));
    assert_int_equal(error, MIME_ERR_IO);
    assert_string_equal(mime_error_text(MIME_ERR_NOT_FOUND), "no such section");
}

/* The caller's descriptor keeps its offset, however the message is read; pipes are refused. */
static void test_caller_fd_untouched(void **state)
{
    (void)state;
    static const char m[] = "Subject: x\n\nsome text to search\n";
    int fd = memfd_create("test_mime_fd", MFD_CLOEXEC);
    assert_int_equal(write(fd, m, sizeof(m) - 1), (ssize_t)(sizeof(m) - 1));
    assert_int_equal(lseek(fd, 5, SEEK_SET), 5);
    enum mime_error error;
    struct mime_message *msg = mime_message_open_fd(fd, &error);
    assert_non_null(msg);
    assert_int_equal(mime_message_text_contains(msg, "TEXT TO"), 1);
    assert_fetch(msg, "1", MIME_SECTION_BODY, "some text to search\r\n");
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 5);
    mime_message_free(msg);
    close(fd);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_null(mime_message_open_fd(p[0], &error));
    assert_int_equal(error, MIME_ERR_IO);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    if (!mime_init())
        return 1;
    const struct CMUnitTest tests[] = {
        /* first, while the heap is still small, so the peak RSS means something */
        cmocka_unit_test(test_large_message_memory),    cmocka_unit_test(test_imap_strings),
        cmocka_unit_test(test_address_lists),           cmocka_unit_test(test_content_parameters),
        cmocka_unit_test(test_plain_lf_and_crlf_sizes), cmocka_unit_test(test_part_numbers),
        cmocka_unit_test(test_header_fields),           cmocka_unit_test(test_partial_copies),
        cmocka_unit_test(test_malformed_structures),    cmocka_unit_test(test_limits),
        cmocka_unit_test(test_search_helpers),          cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_caller_fd_untouched),     cmocka_unit_test(test_header_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
