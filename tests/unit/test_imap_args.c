/* Unit tests of the typed IMAP argument parsers (include/postern/imap_args.h), written from
 * RFC 3501 §5.1, §6.3-6.4 and §9 and the extensions they name: every grammar branch, every
 * error, and the SEARCH evaluator against a message described by fields and callbacks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/imap.h"
#include "postern/imap_args.h"

/* ---- helpers ---- */

/* Parses a whole command line; the tests hand the arguments after `skip` to a typed parser. */
static void command(const char *line, struct imap_command *cmd)
{
    const char *error = NULL;
    if (!imap_parse_command(line, strlen(line), cmd, &error))
        fail_msg("\"%s\": %s", line, error);
}

static void check_error(bool ok, const char *error, const char *want, const char *what)
{
    if (ok)
        fail_msg("\"%s\" accepted, expected: %s", what, want);
    assert_non_null(error);
    if (strcmp(error, want) != 0)
        fail_msg("\"%s\": error \"%s\", expected \"%s\"", what, error, want);
}

/* The call runs before *error is read (the order of function arguments is unspecified). */
#define expect_error(call, error, want, what)                                                      \
    do {                                                                                           \
        bool ok_ = (call);                                                                         \
        check_error(ok_, (error), (want), (what));                                                 \
    } while (0)

/* ---- sequence sets (RFC 3501 §9 sequence-set, RFC 5182) ---- */

static struct seqset set_ok(const char *text)
{
    struct seqset set;
    const char *error = NULL;
    if (!seqset_parse(text, strlen(text), &set, &error))
        fail_msg("\"%s\": %s", text, error);
    return set;
}

static void set_err(const char *text, const char *want)
{
    struct seqset set;
    const char *error = NULL;
    bool ok = seqset_parse(text, strlen(text), &set, &error);
    if (ok)
        seqset_free(&set);
    expect_error(ok, error, want, text);
    assert_null(set.ranges);
}

static void assert_format(const struct seqset *set, const char *want)
{
    char *s = seqset_format(set);
    assert_string_equal(s, want);
    free(s);
}

static void test_seqset_grammar(void **state)
{
    (void)state;
    /* §9: sequence-set = (seq-number / seq-range) ["," sequence-set] */
    struct seqset s = set_ok("1,3:5,7:*");
    assert_int_equal(s.n_ranges, 2);
    assert_true(s.star);
    assert_true(s.star_bounded);
    assert_int_equal(s.star_lo, 7);
    assert_format(&s, "1,3:5,7:*");
    assert_false(seqset_contains(&s, 7)); /* "*" unresolved matches nothing yet */
    seqset_resolve(&s, 10);
    assert_false(s.star);
    assert_format(&s, "1,3:5,7:10");
    assert_true(seqset_contains(&s, 1));
    assert_false(seqset_contains(&s, 2));
    assert_true(seqset_contains(&s, 4));
    assert_false(seqset_contains(&s, 6));
    assert_true(seqset_contains(&s, 10));
    assert_false(seqset_contains(&s, 11));
    assert_false(seqset_contains(&s, 0));
    assert_int_equal(seqset_count(&s), 8);
    seqset_free(&s);

    /* §9: "seq-range ... 2:4 and 4:2 are equivalent" */
    s = set_ok("5:3");
    assert_format(&s, "3:5");
    seqset_free(&s);
    /* overlapping and adjacent parts merge, order does not matter */
    s = set_ok("9,3:5,1:4,6,10:12");
    assert_format(&s, "1:6,9:12");
    seqset_free(&s);
    s = set_ok("4294967295,1");
    assert_format(&s, "1,4294967295");
    assert_int_equal(seqset_count(&s), 2);
    seqset_free(&s);
    s = set_ok("1:4294967295");
    assert_int_equal(seqset_count(&s), 4294967295u);
    seqset_free(&s);
    /* "$" (RFC 5182 §3) alone */
    s = set_ok("$");
    assert_true(s.last_result);
    assert_int_equal(s.n_ranges, 0);
    assert_format(&s, "$");
    seqset_free(&s);
}

static void test_seqset_star(void **state)
{
    (void)state;
    /* §6.4.8 / §9: "*" is the largest number in use; "n:*" with n above it is "*:n" */
    struct seqset s = set_ok("*");
    assert_false(s.star_bounded);
    assert_format(&s, "*");
    seqset_resolve(&s, 42);
    assert_format(&s, "42");
    seqset_free(&s);

    s = set_ok("5:*");
    seqset_resolve(&s, 3);
    assert_format(&s, "3:5");
    seqset_free(&s);
    s = set_ok("*:5");
    seqset_resolve(&s, 8);
    assert_format(&s, "5:8");
    seqset_free(&s);
    s = set_ok("*:*,2");
    assert_format(&s, "2,*");
    seqset_resolve(&s, 2);
    assert_format(&s, "2");
    seqset_free(&s);
    /* several star parts: [min(ends, max), max(ends, max)] */
    s = set_ok("10:*,3:*");
    assert_format(&s, "3:*,10:*");
    seqset_resolve(&s, 6);
    assert_format(&s, "3:10");
    seqset_free(&s);
    /* "*" next to 4294967295 is not merged with it before resolution */
    s = set_ok("4294967295,*");
    seqset_resolve(&s, 10);
    assert_format(&s, "10,4294967295");
    seqset_free(&s);
    /* an empty mailbox: the parts with "*" name nothing (no message has a number) */
    s = set_ok("*");
    seqset_resolve(&s, 0);
    assert_int_equal(s.n_ranges, 0);
    assert_false(seqset_contains(&s, 0));
    seqset_free(&s);
    s = set_ok("3:*,7,9:*");
    seqset_resolve(&s, 0);
    assert_format(&s, "7");
    seqset_free(&s);
    /* resolving a set without "*" changes nothing */
    s = set_ok("1:2");
    seqset_resolve(&s, 9);
    assert_format(&s, "1:2");
    seqset_free(&s);
}

static void test_seqset_errors(void **state)
{
    (void)state;
    /* nz-number: no 0, no leading zero, at most 2^32-1 */
    set_err("0", "Sequence number 0 is not valid");
    set_err("0:5", "Sequence number 0 is not valid");
    set_err("1:0", "Sequence number 0 is not valid");
    set_err("01", "Invalid sequence set");
    set_err("4294967296", "Sequence number too large");
    set_err("1:99999999999999999999", "Sequence number too large");
    /* empty parts */
    set_err("", "Invalid sequence set");
    set_err(",", "Invalid sequence set");
    set_err("1,", "Invalid sequence set");
    set_err(",1", "Invalid sequence set");
    set_err("1,,2", "Invalid sequence set");
    set_err("1:", "Invalid sequence set");
    set_err(":1", "Invalid sequence set");
    set_err("1:2:3", "Invalid sequence set");
    set_err("a", "Invalid sequence set");
    set_err("1 ", "Invalid sequence set");
    set_err("-1", "Invalid sequence set");
    set_err("**", "Invalid sequence set");
    set_err("+1", "Invalid sequence set");
    /* "$" only as the whole set (as Dovecot) */
    set_err("$,1", "Invalid sequence set");
    set_err("1,$", "Invalid sequence set");
    set_err("$:3", "Invalid sequence set");

    /* an argument must be an atom */
    struct imap_command cmd;
    command("a FETCH \"1\" (1)\r\n", &cmd);
    struct seqset s;
    const char *error = NULL;
    expect_error(seqset_parse_arg(&cmd.args[0], &s, &error), error, "Invalid sequence set",
                 "quoted");
    expect_error(seqset_parse_arg(&cmd.args[1], &s, &error), error, "Invalid sequence set", "list");
    imap_command_free(&cmd);
    command("a FETCH 2:3 FLAGS\r\n", &cmd);
    assert_true(seqset_parse_arg(&cmd.args[0], &s, &error));
    assert_format(&s, "2:3");
    seqset_free(&s);
    imap_command_free(&cmd);
}

/* An attacker's set of many disjoint ranges is refused; many parts that merge are fine. */
static void test_seqset_limits(void **state)
{
    (void)state;
    size_t cap = (size_t)200000 * 8;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t n = 0;
    for (unsigned i = 1; i <= 100000; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%u", i > 1 ? "," : "", i);
    struct seqset s;
    const char *error = NULL;
    assert_true(seqset_parse(buf, n, &s, &error));
    assert_format(&s, "1:100000");
    seqset_free(&s);

    /* exactly SEQSET_MAX_RANGES disjoint ranges pass */
    n = 0;
    for (unsigned i = 0; i < SEQSET_MAX_RANGES; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%u", i ? "," : "", 2 * i + 1);
    assert_true(seqset_parse(buf, n, &s, &error));
    assert_int_equal(s.n_ranges, SEQSET_MAX_RANGES);
    seqset_free(&s);
    /* one more is refused, and so are 100,000 */
    n += (size_t)snprintf(buf + n, cap - n, ",%d", 2 * SEQSET_MAX_RANGES + 1);
    expect_error(seqset_parse(buf, n, &s, &error), error, "Too many ranges in sequence set",
                 "4097");
    n = 0;
    for (unsigned i = 0; i < 100000; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%u", i ? "," : "", 2 * i + 1);
    expect_error(seqset_parse(buf, n, &s, &error), error, "Too many ranges in sequence set",
                 "100000");
    free(buf);
}

static void test_seqset_add_iterate(void **state)
{
    (void)state;
    struct seqset s = {0};
    seqset_add(&s, 10, 12);
    seqset_add(&s, 1, 1);
    seqset_add(&s, 20, 18);
    assert_format(&s, "1,10:12,18:20");
    seqset_add(&s, 13, 17); /* bridges two ranges */
    assert_format(&s, "1,10:20");
    seqset_add(&s, 3, 3);
    seqset_add(&s, 2, 2); /* adjacent on both sides */
    assert_format(&s, "1:3,10:20");
    seqset_add(&s, 0, 30); /* swallows everything */
    assert_format(&s, "0:30");
    seqset_free(&s);

    s = set_ok("2:4,7,4294967294:*");
    seqset_resolve(&s, 4294967295u);
    struct seqset_iter it;
    uint32_t want[] = {2, 3, 4, 7, 4294967294u, 4294967295u}, n;
    size_t i = 0;
    for (seqset_iter_init(&it); seqset_next(&s, &it, &n); i++) {
        assert_true(i < 6);
        assert_int_equal(n, want[i]);
    }
    assert_int_equal(i, 6);
    assert_false(seqset_next(&s, &it, &n));
    seqset_free(&s);
}

/* ---- STORE and flags (RFC 3501 §6.4.6, §9 store-att-flags, flag; RFC 7162 §3.1.3) ---- */

static void store_ok(const char *line, struct store_request *req)
{
    struct imap_command cmd;
    command(line, &cmd);
    const char *error = NULL;
    if (!store_parse(cmd.args + 1, cmd.n_args - 1, req, &error))
        fail_msg("\"%s\": %s", line, error);
    imap_command_free(&cmd);
}

static void store_err(const char *line, const char *want)
{
    struct imap_command cmd;
    command(line, &cmd);
    struct store_request req;
    const char *error = NULL;
    bool ok = store_parse(cmd.args + 1, cmd.n_args - 1, &req, &error);
    if (ok)
        store_request_free(&req);
    expect_error(ok, error, want, line);
    imap_command_free(&cmd);
}

static void test_store(void **state)
{
    (void)state;
    struct store_request r;
    store_ok("a STORE 1 FLAGS (\\Seen \\Deleted $Junk)\r\n", &r);
    assert_int_equal(r.mode, STORE_REPLACE);
    assert_false(r.silent);
    assert_int_equal(r.flags.system, IMAP_FLAG_SEEN | IMAP_FLAG_DELETED);
    assert_int_equal(r.flags.n_keywords, 1);
    assert_string_equal(r.flags.keywords[0], "$Junk");
    assert_false(r.has_unchangedsince);
    store_request_free(&r);

    /* flag *(SP flag) without parentheses; case-insensitive names */
    store_ok("a STORE 1:* +flags.silent \\ANSWERED \\flagged \\Draft\r\n", &r);
    assert_int_equal(r.mode, STORE_ADD);
    assert_true(r.silent);
    assert_int_equal(r.flags.system, IMAP_FLAG_ANSWERED | IMAP_FLAG_FLAGGED | IMAP_FLAG_DRAFT);
    store_request_free(&r);

    /* the empty list: FLAGS () clears everything */
    store_ok("a STORE 2 -FLAGS ()\r\n", &r);
    assert_int_equal(r.mode, STORE_REMOVE);
    assert_int_equal(r.flags.system, 0);
    assert_int_equal(r.flags.n_keywords, 0);
    store_request_free(&r);
    store_ok("a STORE 2 FLAGS.SILENT ()\r\n", &r);
    assert_int_equal(r.mode, STORE_REPLACE);
    assert_true(r.silent);
    store_request_free(&r);

    /* keywords are case-insensitive: duplicates collapse to the first spelling */
    store_ok("a STORE 2 +FLAGS (work Work WORK $Forwarded NIL)\r\n", &r);
    assert_int_equal(r.flags.n_keywords, 3);
    assert_string_equal(r.flags.keywords[0], "work");
    assert_string_equal(r.flags.keywords[1], "$Forwarded");
    assert_string_equal(r.flags.keywords[2], "NIL"); /* an atom like any other */
    store_request_free(&r);

    /* RFC 7162 §3.1.3: STORE with UNCHANGEDSINCE, 0 included (mod-sequence-valzer) */
    store_ok("a STORE 1 (UNCHANGEDSINCE 12345) +FLAGS (\\Seen)\r\n", &r);
    assert_true(r.has_unchangedsince);
    assert_int_equal(r.unchangedsince, 12345);
    store_request_free(&r);
    store_ok("a STORE 1 (unchangedsince 0) FLAGS \\Seen\r\n", &r);
    assert_true(r.has_unchangedsince);
    assert_int_equal(r.unchangedsince, 0);
    store_request_free(&r);
    store_ok("a STORE 1 (UNCHANGEDSINCE 9223372036854775807) FLAGS ()\r\n", &r);
    assert_int_equal(r.unchangedsince, 9223372036854775807ull);
    store_request_free(&r);
}

static void test_store_errors(void **state)
{
    (void)state;
    store_err("a STORE 1\r\n", "Expected FLAGS, +FLAGS or -FLAGS");
    store_err("a STORE 1 FLAGS\r\n", "Missing flags");
    store_err("a STORE 1 XFLAGS (\\Seen)\r\n", "Expected FLAGS, +FLAGS or -FLAGS");
    store_err("a STORE 1 FLAGS.LOUD (\\Seen)\r\n", "Expected FLAGS, +FLAGS or -FLAGS");
    store_err("a STORE 1 +-FLAGS (\\Seen)\r\n", "Expected FLAGS, +FLAGS or -FLAGS");
    store_err("a STORE 1 \"FLAGS\" (\\Seen)\r\n", "Expected FLAGS, +FLAGS or -FLAGS");
    store_err("a STORE 1 FLAGS (\\Seen) x\r\n", "Unexpected argument after the flag list");
    /* §2.3.2: \Recent is the server's; other "\" flags are flag-extensions nobody defined */
    store_err("a STORE 1 +FLAGS (\\Recent)\r\n", "\\Recent cannot be set by a client");
    store_err("a STORE 1 +FLAGS \\Foo\r\n", "Unknown system flag");
    store_err("a STORE 1 +FLAGS \\\r\n", "Invalid flag");
    store_err("a STORE 1 +FLAGS (\\*)\r\n", "Invalid flag");
    /* flag-keyword = atom: no list-wildcards, quoted-specials, "]" or 8-bit */
    store_err("a STORE 1 +FLAGS (a%b)\r\n", "Invalid keyword");
    store_err("a STORE 1 +FLAGS (a*)\r\n", "Invalid keyword");
    store_err("a STORE 1 +FLAGS (a]b)\r\n", "Invalid keyword");
    store_err("a STORE 1 +FLAGS (a\\b)\r\n", "Invalid keyword");
    store_err("a STORE 1 +FLAGS (caf\xc3\xa9)\r\n", "Invalid keyword");
    store_err("a STORE 1 +FLAGS (\"quoted\")\r\n", "Flags must be atoms");
    store_err("a STORE 1 +FLAGS ((nested))\r\n", "Flags must be atoms");
    store_err("a STORE 1 (UNCHANGEDSINCE) FLAGS ()\r\n", "Invalid UNCHANGEDSINCE value");
    store_err("a STORE 1 (UNCHANGEDSINCE x) FLAGS ()\r\n", "Invalid UNCHANGEDSINCE value");
    store_err("a STORE 1 (UNCHANGEDSINCE 9223372036854775808) FLAGS ()\r\n",
              "Invalid UNCHANGEDSINCE value");
    store_err("a STORE 1 (UNCHANGEDSINCE 1 UNCHANGEDSINCE 2) FLAGS ()\r\n",
              "UNCHANGEDSINCE given twice");
    store_err("a STORE 1 (FOO 1) FLAGS ()\r\n", "Unknown STORE modifier");
    store_err("a STORE 1 () FLAGS ()\r\n", "Empty STORE modifier list");

    /* limits: IMAP_MAX_KEYWORD_LEN bytes, IMAP_MAX_FLAGS flags */
    char line[4096];
    char kw[IMAP_MAX_KEYWORD_LEN + 2];
    memset(kw, 'k', sizeof(kw) - 1);
    kw[IMAP_MAX_KEYWORD_LEN] = '\0';
    snprintf(line, sizeof(line), "a STORE 1 +FLAGS (%s)\r\n", kw);
    struct store_request r;
    store_ok(line, &r);
    store_request_free(&r);
    kw[IMAP_MAX_KEYWORD_LEN] = 'k';
    kw[IMAP_MAX_KEYWORD_LEN + 1] = '\0';
    snprintf(line, sizeof(line), "a STORE 1 +FLAGS (%s)\r\n", kw);
    store_err(line, "Keyword too long");
    assert_true(imap_keyword_valid(kw, IMAP_MAX_KEYWORD_LEN));
    assert_false(imap_keyword_valid(kw, IMAP_MAX_KEYWORD_LEN + 1));
    assert_false(imap_keyword_valid("", 0));

    size_t n = (size_t)snprintf(line, sizeof(line), "a STORE 1 +FLAGS (");
    for (int i = 0; i < IMAP_MAX_FLAGS; i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%sk%d", i ? " " : "", i);
    snprintf(line + n, sizeof(line) - n, ")\r\n");
    store_ok(line, &r);
    assert_int_equal(r.flags.n_keywords, IMAP_MAX_FLAGS);
    store_request_free(&r);
    snprintf(line + n, sizeof(line) - n, " x)\r\n");
    store_err(line, "Too many flags");
}

static void test_flag_names(void **state)
{
    (void)state;
    assert_string_equal(imap_flag_name(IMAP_FLAG_SEEN), "\\Seen");
    assert_string_equal(imap_flag_name(IMAP_FLAG_ANSWERED), "\\Answered");
    assert_string_equal(imap_flag_name(IMAP_FLAG_FLAGGED), "\\Flagged");
    assert_string_equal(imap_flag_name(IMAP_FLAG_DELETED), "\\Deleted");
    assert_string_equal(imap_flag_name(IMAP_FLAG_DRAFT), "\\Draft");
    assert_string_equal(imap_flag_name(IMAP_FLAG_RECENT), "\\Recent");
    assert_null(imap_flag_name(IMAP_FLAG_SEEN | IMAP_FLAG_DRAFT));
    assert_null(imap_flag_name(0));
}

/* ---- dates (RFC 3501 §9 date, date-time) ---- */

static void datetime_ok(const char *s, int64_t utc, int zone)
{
    struct imap_datetime dt;
    if (!imap_datetime_parse(s, strlen(s), &dt))
        fail_msg("\"%s\" refused", s);
    assert_int_equal(dt.utc, utc);
    assert_int_equal(dt.zone_minutes, zone);
}

static void test_datetime(void **state)
{
    (void)state;
    /* date-day-fixed = (SP DIGIT) / 2DIGIT */
    datetime_ok("22-Nov-2026 09:26:20 +0000", 1795339580, 0);
    datetime_ok(" 2-Feb-2026 09:26:20 +0130", 1770018980, 90);
    datetime_ok("02-feb-2026 09:26:20 +0130", 1770018980, 90); /* ABNF strings: any case */
    datetime_ok("01-Jan-1970 00:00:00 -0100", 3600, -60);
    datetime_ok("29-Feb-2024 23:59:59 -2359", 1709337539, -1439);
    datetime_ok("31-Dec-1969 23:59:59 +0000", -1, 0);
    datetime_ok("31-Dec-1969 23:59:60 +0000", 0, 0); /* a leap second */

    static const char *const bad[] = {
        "2-Feb-2026 09:26:20 +0000", /* the day is padded to two characters */
        "002-Feb-2026 09:26:20 +0000", "31-Apr-2026 09:26:20 +0000",
        "29-Feb-2025 09:26:20 +0000",  "29-Feb-2100 09:26:20 +0000",
        "00-Feb-2026 09:26:20 +0000",  "22-Foo-2026 09:26:20 +0000",
        "22-Nov-26 09:26:20 +0000",    "22-Nov-2026 24:00:00 +0000",
        "22-Nov-2026 09:60:00 +0000",  "22-Nov-2026 09:26:61 +0000",
        "22-Nov-2026 09:26:20 +2400",  "22-Nov-2026 09:26:20 +0060",
        "22-Nov-2026 09:26:20 0000",   "22-Nov-2026 09:26:20  0000",
        "22-Nov-2026 9:26:20 +00000",  "22/Nov/2026 09:26:20 +0000",
        "22-Nov-2026T09:26:20 +0000",  "22-Nov-2026 09-26-20 +0000",
        "22-Nov-2026 09:26:20 +00a0",  "",
        " 2-Feb-2026 09:26:20 +0000 ", "x2-Feb-2026 09:26:20 +0000",
        " x-Feb-2026 09:26:20 +0000",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct imap_datetime dt;
        if (imap_datetime_parse(bad[i], strlen(bad[i]), &dt))
            fail_msg("\"%s\" accepted", bad[i]);
    }
    /* 29 Feb exists in 2000 and 2024 */
    datetime_ok("29-Feb-2000 00:00:00 +0000", 951782400, 0);

    /* the INTERNALDATE form: space-padded day, the client's zone */
    char out[IMAP_DATETIME_LEN + 1];
    struct imap_datetime dt = {1770018980, 90};
    imap_datetime_format(&dt, out);
    assert_string_equal(out, " 2-Feb-2026 09:26:20 +0130");
    dt = (struct imap_datetime){3600, -60};
    imap_datetime_format(&dt, out);
    assert_string_equal(out, " 1-Jan-1970 00:00:00 -0100");
    dt = (struct imap_datetime){1709337539, -1439};
    imap_datetime_format(&dt, out);
    assert_string_equal(out, "29-Feb-2024 23:59:59 -2359");
    dt = (struct imap_datetime){-1, 0};
    imap_datetime_format(&dt, out);
    assert_string_equal(out, "31-Dec-1969 23:59:59 +0000");
}

static void test_date(void **state)
{
    (void)state;
    /* date-text = date-day "-" date-month "-" date-year; date-day = 1*2DIGIT */
    int64_t d;
    assert_true(imap_date_parse("1-Feb-1994", 10, &d));
    assert_int_equal(d, 8797);
    assert_true(imap_date_parse("01-Feb-1994", 11, &d));
    assert_int_equal(d, 8797);
    assert_true(imap_date_parse("29-FEB-2024", 11, &d));
    assert_int_equal(d, 19782);
    assert_true(imap_date_parse("1-Jan-0001", 10, &d));
    assert_int_equal(d, -719162);
    static const char *const bad[] = {"001-Feb-1994", "1-Feb-94",    "32-Jan-2000", "0-Jan-2000",
                                      "1-Fev-1994",   "1 Feb 1994",  "1-Feb-1994x", "",
                                      "a-Feb-1994",   "30-Feb-2000", "1-Feb-199a",  "1-Feb1994-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (imap_date_parse(bad[i], strlen(bad[i]), &d))
            fail_msg("\"%s\" accepted", bad[i]);
    /* the calendar day of a moment in its own zone */
    assert_int_equal(imap_day_of(0, 0), 0);
    assert_int_equal(imap_day_of(0, -60), -1);
    assert_int_equal(imap_day_of(86399, 0), 0);
    assert_int_equal(imap_day_of(86399, 1), 1);
    assert_int_equal(imap_day_of(-1, 0), -1);
    assert_int_equal(imap_day_of(-86400, 0), -1);
    assert_int_equal(imap_day_of(-86401, 0), -2);
}

/* ---- APPEND (RFC 3501 §6.3.11, RFC 3502) ---- */

static void test_append(void **state)
{
    (void)state;
    struct imap_command cmd;
    command("a APPEND INBOX (\\Seen $Work) \" 2-Feb-2026 09:26:20 +0130\" {5}\r\nhello\r\n", &cmd);
    struct append_message m;
    size_t used = 0;
    const char *error = NULL;
    assert_true(append_parse(cmd.args + 1, cmd.n_args - 1, &used, &m, &error));
    assert_int_equal(used, 3);
    assert_true(m.has_flags);
    assert_int_equal(m.flags.system, IMAP_FLAG_SEEN);
    assert_string_equal(m.flags.keywords[0], "$Work");
    assert_true(m.has_date);
    assert_int_equal(m.date.utc, 1770018980);
    assert_int_equal(m.len, 5);
    assert_memory_equal(m.data, "hello", 5);
    append_message_free(&m);
    assert_false(m.has_flags);
    imap_command_free(&cmd);

    /* flags and date are optional, each on its own; the empty flag list is a list */
    command("a APPEND x {2}\r\nhi\r\n", &cmd);
    assert_true(append_parse(cmd.args + 1, cmd.n_args - 1, &used, &m, &error));
    assert_int_equal(used, 1);
    assert_false(m.has_flags);
    assert_false(m.has_date);
    append_message_free(&m);
    imap_command_free(&cmd);
    command("a APPEND x () {0}\r\n\r\n", &cmd);
    assert_true(append_parse(cmd.args + 1, cmd.n_args - 1, &used, &m, &error));
    assert_true(m.has_flags);
    assert_int_equal(m.len, 0);
    append_message_free(&m);
    imap_command_free(&cmd);
    command("a APPEND x \"22-Nov-2026 09:26:20 +0000\" {1+}\r\nx\r\n", &cmd);
    assert_true(append_parse(cmd.args + 1, cmd.n_args - 1, &used, &m, &error));
    assert_false(m.has_flags);
    assert_true(m.has_date);
    assert_int_equal(m.date.utc, 1795339580);
    append_message_free(&m);
    imap_command_free(&cmd);

    /* RFC 3502 MULTIAPPEND: the caller goes on at args + used */
    command("a APPEND x (\\Draft) {1}\r\nA \"22-Nov-2026 09:26:20 +0000\" {1}\r\nB\r\n", &cmd);
    const struct imap_arg *args = cmd.args + 1;
    size_t n = cmd.n_args - 1;
    assert_true(append_parse(args, n, &used, &m, &error));
    assert_int_equal(used, 2);
    assert_memory_equal(m.data, "A", 1);
    append_message_free(&m);
    args += used, n -= used;
    assert_true(append_parse(args, n, &used, &m, &error));
    assert_int_equal(used, 2);
    assert_memory_equal(m.data, "B", 1);
    assert_true(m.has_date);
    append_message_free(&m);
    assert_int_equal(n - used, 0);
    imap_command_free(&cmd);
}

static void append_err(const char *line, const char *want)
{
    struct imap_command cmd;
    command(line, &cmd);
    struct append_message m;
    size_t used = 0;
    const char *error = NULL;
    bool ok = append_parse(cmd.args + 1, cmd.n_args - 1, &used, &m, &error);
    if (ok)
        append_message_free(&m);
    expect_error(ok, error, want, line);
    imap_command_free(&cmd);
}

static void test_append_errors(void **state)
{
    (void)state;
    append_err("a APPEND x\r\n", "Missing the message literal");
    append_err("a APPEND x (\\Seen)\r\n", "Missing the message literal");
    append_err("a APPEND x (\\Seen) \"22-Nov-2026 09:26:20 +0000\"\r\n",
               "Missing the message literal");
    /* the message is a literal, never a quoted string (§9 append) */
    append_err("a APPEND x \"message\"\r\n", "Invalid date-time");
    append_err("a APPEND x \"22-Nov-2026 09:26:20 +0000\" \"message\"\r\n",
               "Expected flags, date-time or the message literal");
    append_err("a APPEND x atom {1}\r\nx\r\n", "Expected flags, date-time or the message literal");
    append_err("a APPEND x (\\Recent) {1}\r\nx\r\n", "\\Recent cannot be set by a client");
    append_err("a APPEND x (\\Seen) (\\Seen) {1}\r\nx\r\n",
               "Expected flags, date-time or the message literal");
    append_err("a APPEND x \"2-Nov-2026 09:26:20 +0000\" {1}\r\nx\r\n", "Invalid date-time");
    /* a date-time is quoted: as an atom it is not one */
    append_err("a APPEND x 22-Nov-2026 {1}\r\nx\r\n",
               "Expected flags, date-time or the message literal");
}

/* ---- FETCH (RFC 3501 §6.4.5, §7.4.2, §9; RFC 3516; RFC 7162) ---- */

static void fetch_ok(const char *line, struct fetch_request *req)
{
    struct imap_command cmd;
    command(line, &cmd);
    const char *error = NULL;
    if (!fetch_parse(cmd.args + 1, cmd.n_args - 1, req, &error))
        fail_msg("\"%s\": %s", line, error);
    imap_command_free(&cmd);
    /* the raw-text parser must agree on everything imap_parse_command() can represent */
    const char *rest;
    size_t rest_len;
    assert_true(imap_command_rest(line, strlen(line), 3, &rest, &rest_len));
    struct fetch_request other;
    if (!fetch_parse_text(rest, rest_len, &other, &error))
        fail_msg("text \"%.*s\": %s", (int)rest_len, rest, error);
    assert_int_equal(other.n_atts, req->n_atts);
    for (size_t i = 0; i < req->n_atts; i++) {
        char *a = fetch_att_name(&req->atts[i]), *b = fetch_att_name(&other.atts[i]);
        assert_string_equal(a, b);
        assert_int_equal(req->atts[i].peek, other.atts[i].peek);
        assert_int_equal(req->atts[i].count, other.atts[i].count);
        free(a);
        free(b);
    }
    assert_int_equal(other.has_changedsince, req->has_changedsince);
    assert_int_equal(other.changedsince, req->changedsince);
    assert_int_equal(other.vanished, req->vanished);
    fetch_request_free(&other);
}

/* Both parsers refuse; the argument parser with `want`. */
static void fetch_err(const char *line, const char *want)
{
    struct imap_command cmd;
    command(line, &cmd);
    struct fetch_request req;
    const char *error = NULL;
    bool ok = fetch_parse(cmd.args + 1, cmd.n_args - 1, &req, &error);
    if (ok)
        fetch_request_free(&req);
    expect_error(ok, error, want, line);
    assert_null(req.atts);
    imap_command_free(&cmd);
    const char *rest = "";
    size_t rest_len = 0;
    imap_command_rest(line, strlen(line), 3, &rest, &rest_len); /* no text: "" */
    error = NULL;
    if (fetch_parse_text(rest, rest_len, &req, &error)) {
        fetch_request_free(&req);
        fail_msg("text \"%s\" accepted", line);
    }
    assert_non_null(error);
}

/* The text parser alone refuses (imap_parse_command() cannot represent the input). */
static void fetch_text_err(const char *text, const char *want)
{
    struct fetch_request req;
    const char *error = NULL;
    bool ok = fetch_parse_text(text, strlen(text), &req, &error);
    if (ok)
        fetch_request_free(&req);
    expect_error(ok, error, want, text);
}

static void assert_names(const struct fetch_request *req, const char *const *want, size_t n)
{
    assert_int_equal(req->n_atts, n);
    for (size_t i = 0; i < n; i++) {
        char *name = fetch_att_name(&req->atts[i]);
        assert_string_equal(name, want[i]);
        free(name);
    }
}

#define ASSERT_NAMES(req, ...)                                                                     \
    do {                                                                                           \
        static const char *const want_[] = {__VA_ARGS__};                                          \
        assert_names((req), want_, sizeof(want_) / sizeof(want_[0]));                              \
    } while (0)

static void test_fetch_macros_and_simple(void **state)
{
    (void)state;
    struct fetch_request r;
    /* §6.4.5 macros */
    fetch_ok("a FETCH 1 ALL\r\n", &r);
    ASSERT_NAMES(&r, "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE");
    fetch_request_free(&r);
    fetch_ok("a FETCH 1 fast\r\n", &r);
    ASSERT_NAMES(&r, "FLAGS", "INTERNALDATE", "RFC822.SIZE");
    fetch_request_free(&r);
    fetch_ok("a FETCH 1 FULL\r\n", &r);
    ASSERT_NAMES(&r, "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY");
    assert_false(fetch_sets_seen(&r));
    fetch_request_free(&r);

    fetch_ok("a FETCH 1 uid\r\n", &r);
    ASSERT_NAMES(&r, "UID");
    assert_int_equal(r.atts[0].item, FETCH_UID);
    fetch_request_free(&r);
    fetch_ok("a FETCH 1 (ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE "
             "RFC822.TEXT BODY BODYSTRUCTURE UID MODSEQ)\r\n",
             &r);
    ASSERT_NAMES(&r, "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE",
                 "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ");
    static const enum fetch_item items[] = {
        FETCH_ENVELOPE,      FETCH_FLAGS,       FETCH_INTERNALDATE, FETCH_RFC822,
        FETCH_RFC822_HEADER, FETCH_RFC822_SIZE, FETCH_RFC822_TEXT,  FETCH_BODY,
        FETCH_BODYSTRUCTURE, FETCH_UID,         FETCH_MODSEQ,
    };
    for (size_t i = 0; i < r.n_atts; i++)
        assert_int_equal(r.atts[i].item, items[i]);
    fetch_request_free(&r);
}

static void test_fetch_sections(void **state)
{
    (void)state;
    struct fetch_request r;
    fetch_ok("a FETCH 1 (BODY[] BODY.PEEK[] body[text] BODY[HEADER] BODY[1] BODY[1.2.3] "
             "BODY[1.2.MIME] BODY[3.HEADER] BODY[3.TEXT] BODY[4.2.HEADER.FIELDS (DATE)])\r\n",
             &r);
    ASSERT_NAMES(&r, "BODY[]", "BODY[]", "BODY[TEXT]", "BODY[HEADER]", "BODY[1]", "BODY[1.2.3]",
                 "BODY[1.2.MIME]", "BODY[3.HEADER]", "BODY[3.TEXT]",
                 "BODY[4.2.HEADER.FIELDS (DATE)]");
    assert_int_equal(r.atts[0].item, FETCH_BODY_SECTION);
    assert_false(r.atts[0].peek);
    assert_true(r.atts[1].peek);
    assert_int_equal(r.atts[2].section.text, SECTION_TEXT);
    assert_int_equal(r.atts[5].section.n_parts, 3);
    assert_int_equal(r.atts[5].section.parts[2], 3);
    assert_int_equal(r.atts[6].section.text, SECTION_MIME);
    assert_int_equal(r.atts[9].section.text, SECTION_HEADER_FIELDS);
    assert_int_equal(r.atts[9].section.n_fields, 1);
    fetch_request_free(&r);

    /* the example of the brief: echo BODY[...]<origin> with the fields as sent */
    fetch_ok("a FETCH 1 BODY.PEEK[HEADER.FIELDS (FROM To x-Mailer)]<0.100>\r\n", &r);
    ASSERT_NAMES(&r, "BODY[HEADER.FIELDS (FROM To x-Mailer)]<0>");
    const struct fetch_att *a = &r.atts[0];
    assert_true(a->peek);
    assert_true(a->has_partial);
    assert_int_equal(a->origin, 0);
    assert_int_equal(a->count, 100);
    assert_int_equal(a->section.n_fields, 3);
    assert_string_equal(a->section.fields[1], "To");
    assert_false(fetch_sets_seen(&r));
    fetch_request_free(&r);

    fetch_ok("a FETCH 1 (BODY[header.fields.not (X-A X-B)] BODY[]<4294967295.4294967295>)\r\n", &r);
    ASSERT_NAMES(&r, "BODY[HEADER.FIELDS.NOT (X-A X-B)]", "BODY[]<4294967295>");
    assert_int_equal(r.atts[0].section.text, SECTION_HEADER_FIELDS_NOT);
    assert_int_equal(r.atts[1].count, 4294967295u);
    fetch_request_free(&r);
    /* number = 1*DIGIT: a leading zero in the origin is fine */
    fetch_ok("a FETCH 1 BODY[]<007.1>\r\n", &r);
    ASSERT_NAMES(&r, "BODY[]<7>");
    fetch_request_free(&r);

    /* RFC 3516 BINARY */
    fetch_ok("a FETCH 1 (BINARY[1.2] BINARY.PEEK[]<0.10> BINARY.SIZE[1] binary.size[])\r\n", &r);
    ASSERT_NAMES(&r, "BINARY[1.2]", "BINARY[]<0>", "BINARY.SIZE[1]", "BINARY.SIZE[]");
    assert_int_equal(r.atts[0].item, FETCH_BINARY);
    assert_true(r.atts[1].peek);
    assert_int_equal(r.atts[2].item, FETCH_BINARY_SIZE);
    fetch_request_free(&r);
}

static void test_fetch_sets_seen(void **state)
{
    (void)state;
    /* §6.4.5: BODY[...] and RFC822, RFC822.TEXT set \Seen; .PEEK and RFC822.HEADER do not */
    static const struct {
        const char *line;
        bool seen;
    } cases[] = {
        {"a FETCH 1 BODY[]\r\n", true},          {"a FETCH 1 BODY.PEEK[]\r\n", false},
        {"a FETCH 1 RFC822\r\n", true},          {"a FETCH 1 RFC822.TEXT\r\n", true},
        {"a FETCH 1 RFC822.HEADER\r\n", false},  {"a FETCH 1 BINARY[1]\r\n", true},
        {"a FETCH 1 BINARY.PEEK[1]\r\n", false}, {"a FETCH 1 BINARY.SIZE[1]\r\n", false},
        {"a FETCH 1 (FLAGS BODY)\r\n", false},   {"a FETCH 1 (FLAGS BODY[TEXT])\r\n", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fetch_request r;
        fetch_ok(cases[i].line, &r);
        if (fetch_sets_seen(&r) != cases[i].seen)
            fail_msg("\"%s\": sets_seen %d", cases[i].line, !cases[i].seen);
        fetch_request_free(&r);
    }
}

static void test_fetch_modifiers(void **state)
{
    (void)state;
    /* RFC 7162 §3.1.4 CHANGEDSINCE, §3.2.6 VANISHED */
    struct fetch_request r;
    fetch_ok("a FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n", &r);
    assert_true(r.has_changedsince);
    assert_int_equal(r.changedsince, 12345);
    assert_false(r.vanished);
    fetch_request_free(&r);
    fetch_ok("a FETCH 1:* FLAGS (vanished changedsince 0)\r\n", &r);
    assert_true(r.has_changedsince);
    assert_int_equal(r.changedsince, 0);
    assert_true(r.vanished);
    fetch_request_free(&r);
    fetch_ok("a FETCH 1 ALL (CHANGEDSINCE 9223372036854775807)\r\n", &r);
    assert_int_equal(r.n_atts, 4);
    assert_int_equal(r.changedsince, 9223372036854775807ull);
    fetch_request_free(&r);

    fetch_err("a FETCH 1 FLAGS (CHANGEDSINCE)\r\n", "Invalid CHANGEDSINCE value");
    fetch_err("a FETCH 1 FLAGS (CHANGEDSINCE x)\r\n", "Invalid CHANGEDSINCE value");
    fetch_err("a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)\r\n",
              "Invalid CHANGEDSINCE value");
    fetch_err("a FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)\r\n", "CHANGEDSINCE given twice");
    fetch_err("a FETCH 1 FLAGS (VANISHED VANISHED)\r\n", "VANISHED given twice");
    fetch_err("a FETCH 1 FLAGS (FOO)\r\n", "Unknown FETCH modifier");
    fetch_err("a FETCH 1 FLAGS (\"CHANGEDSINCE\" 1)\r\n", "Unknown FETCH modifier");
    fetch_err("a FETCH 1 FLAGS ()\r\n", "Empty FETCH modifier list");
    fetch_err("a FETCH 1 FLAGS (VANISHED VANISHED VANISHED VANISHED VANISHED)\r\n",
              "Too many FETCH modifiers");
    fetch_err("a FETCH 1 FLAGS (CHANGEDSINCE 1) (VANISHED)\r\n",
              "Unexpected argument after the FETCH attributes");
}

static void test_fetch_errors(void **state)
{
    (void)state;
    fetch_err("a FETCH 1\r\n", "Missing FETCH attributes");
    fetch_err("a FETCH 1 FOO\r\n", "Unknown FETCH attribute");
    fetch_err("a FETCH 1 FLAGS UID\r\n", "Unexpected argument after the FETCH attributes");
    fetch_err("a FETCH 1 ()\r\n", "Expected FETCH attributes");
    fetch_err("a FETCH 1 \"FLAGS\"\r\n", "Expected FETCH attributes");
    fetch_err("a FETCH 1 NIL\r\n", "Expected FETCH attributes");
    fetch_err("a FETCH 1 (FLAGS \"UID\")\r\n", "Unknown FETCH attribute");
    fetch_err("a FETCH 1 (FLAGS (UID))\r\n", "Unknown FETCH attribute");
    /* macros stand alone (§9 fetch) */
    fetch_err("a FETCH 1 (ALL)\r\n", "Unknown FETCH attribute");
    fetch_err("a FETCH 1 (FLAGS FAST)\r\n", "Unknown FETCH attribute");
    fetch_err("a FETCH 1 FLAGS]\r\n", "Unexpected text after a FETCH attribute");
    fetch_err("a FETCH 1 RFC822.SIZE[]\r\n", "Unexpected text after a FETCH attribute");
    fetch_err("a FETCH 1 BODY<0.5>\r\n", "Unexpected text after a FETCH attribute");
    fetch_err("a FETCH 1 BODY.PEEK\r\n", "Expected a section");
    fetch_err("a FETCH 1 BINARY\r\n", "Expected a section");
    fetch_err("a FETCH 1 BINARY.SIZE\r\n", "Expected a section");
    /* section-spec */
    fetch_err("a FETCH 1 BODY[MIME]\r\n", "MIME needs a part number");
    fetch_err("a FETCH 1 BODY[1.]\r\n", "Invalid section");
    fetch_err("a FETCH 1 BODY[1..2]\r\n", "Invalid section");
    fetch_err("a FETCH 1 BODY[0]\r\n", "Invalid section part number");
    fetch_err("a FETCH 1 BODY[1.0]\r\n", "Invalid section part number");
    fetch_err("a FETCH 1 BODY[01]\r\n", "Invalid section part number");
    fetch_err("a FETCH 1 BODY[4294967296]\r\n", "Invalid section part number");
    fetch_err("a FETCH 1 BODY[1TEXT]\r\n", "Invalid section");
    fetch_err("a FETCH 1 BODY[TEXT.FOO]\r\n", "Invalid section");
    fetch_err("a FETCH 1 BODY[FOO]\r\n", "Invalid section");
    fetch_err("a FETCH 1 BODY[HEADER.FIELDS]\r\n", "Expected a header field list");
    fetch_err("a FETCH 1 BODY[HEADER.FIELDS FROM]\r\n", "Expected a header field list");
    fetch_err("a FETCH 1 BODY[HEADER.FIELDS ()]\r\n", "Expected a header field name");
    fetch_err("a FETCH 1 BODY[HEADER.FIELDS (A  B)]\r\n", "Expected a header field name");
    fetch_err("a FETCH 1 BODY[HEADER.FIELDS (A )]\r\n", "Expected a header field name");
    fetch_err("a FETCH 1 BODY[HEADER.FIELDS (A:B)]\r\n", "Invalid header field name");
    fetch_err("a FETCH 1 BODY[HEADER.FIELDS (A\xc3\xa9)]\r\n", "Invalid header field name");
    fetch_err("a FETCH 1 BODY[HEADER.FIELDS (A%)]\r\n", "Invalid header field name");
    fetch_err("a FETCH 1 BODY[HEADER.FIELDS (A(B)]\r\n", "Invalid header field name");
    fetch_err("a FETCH 1 BODY[HEADER.FIELDS (A)x]\r\n", "Expected ']' after the section");
    fetch_err("a FETCH 1 BODY[HEADER (A)]\r\n", "Expected ']' after the section");
    fetch_err("a FETCH 1 BODY[TEXT ]\r\n", "Expected ']' after the section");
    fetch_err("a FETCH 1 BINARY[TEXT]\r\n", "BINARY takes part numbers only");
    fetch_err("a FETCH 1 BINARY[1.MIME]\r\n", "BINARY takes part numbers only");
    fetch_err("a FETCH 1 BINARY.SIZE[1]<0.1>\r\n", "BINARY.SIZE takes no partial range");
    /* partial = "<" number "." nz-number ">" */
    fetch_err("a FETCH 1 BODY[]<0>\r\n", "Invalid partial range");
    fetch_err("a FETCH 1 BODY[]<0.0>\r\n", "Invalid partial range");
    fetch_err("a FETCH 1 BODY[]<.1>\r\n", "Invalid partial range");
    fetch_err("a FETCH 1 BODY[]<4294967296.1>\r\n", "Invalid partial range");
    fetch_err("a FETCH 1 BODY[]<0.4294967296>\r\n", "Invalid partial range");
    fetch_err("a FETCH 1 BODY[]<0.1\r\n", "Invalid partial range");
    fetch_err("a FETCH 1 BODY[]<0.01>\r\n", "Invalid partial range");
    fetch_err("a FETCH 1 BODY[]<0.1>>\r\n", "Unexpected text after a FETCH attribute");
}

static void test_fetch_limits(void **state)
{
    (void)state;
    char line[16384];
    struct fetch_request r;
    /* FETCH_MAX_PART_DEPTH part numbers */
    size_t n = (size_t)snprintf(line, sizeof(line), "a FETCH 1 BODY[1");
    for (int i = 1; i < FETCH_MAX_PART_DEPTH; i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, ".1");
    snprintf(line + n, sizeof(line) - n, "]\r\n");
    fetch_ok(line, &r);
    assert_int_equal(r.atts[0].section.n_parts, FETCH_MAX_PART_DEPTH);
    fetch_request_free(&r);
    snprintf(line + n, sizeof(line) - n, ".1]\r\n");
    fetch_err(line, "Section part numbers nested too deeply");

    /* FETCH_MAX_HEADER_FIELDS names */
    n = (size_t)snprintf(line, sizeof(line), "a FETCH 1 BODY[HEADER.FIELDS (");
    for (int i = 0; i < FETCH_MAX_HEADER_FIELDS; i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%sX%d", i ? " " : "", i);
    snprintf(line + n, sizeof(line) - n, ")]\r\n");
    fetch_ok(line, &r);
    assert_int_equal(r.atts[0].section.n_fields, FETCH_MAX_HEADER_FIELDS);
    fetch_request_free(&r);
    snprintf(line + n, sizeof(line) - n, " Y)]\r\n");
    fetch_err(line, "Too many header field names");

    /* FETCH_MAX_FIELD_LEN bytes */
    n = (size_t)snprintf(line, sizeof(line), "a FETCH 1 BODY[HEADER.FIELDS (");
    memset(line + n, 'f', FETCH_MAX_FIELD_LEN);
    snprintf(line + n + FETCH_MAX_FIELD_LEN, sizeof(line) - n - FETCH_MAX_FIELD_LEN, ")]\r\n");
    fetch_ok(line, &r);
    fetch_request_free(&r);
    snprintf(line + n + FETCH_MAX_FIELD_LEN, sizeof(line) - n - FETCH_MAX_FIELD_LEN, "f)]\r\n");
    fetch_err(line, "Header field name too long");

    /* FETCH_MAX_ATTS attributes */
    n = (size_t)snprintf(line, sizeof(line), "a FETCH 1 (");
    for (int i = 0; i < FETCH_MAX_ATTS; i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%sUID", i ? " " : "");
    snprintf(line + n, sizeof(line) - n, ")\r\n");
    fetch_ok(line, &r);
    assert_int_equal(r.n_atts, FETCH_MAX_ATTS);
    fetch_request_free(&r);
    snprintf(line + n, sizeof(line) - n, " UID)\r\n");
    fetch_err(line, "Too many FETCH attributes");
}

/* The raw-text parser: astring header field names that imap_parse_command() refuses. */
static void test_fetch_text(void **state)
{
    (void)state;
    static const char line[] =
        "a UID FETCH 1:5 (UID BODY.PEEK[HEADER.FIELDS (\"From\" {2}\r\nTo \"X]\\\"Y\")]<5.10>)\r\n";
    struct imap_command cmd;
    const char *error = NULL;
    assert_false(imap_parse_command(line, sizeof(line) - 1, &cmd, &error));
    imap_command_free(&cmd);
    const char *rest;
    size_t rest_len;
    assert_true(imap_command_rest(line, sizeof(line) - 1, 4, &rest, &rest_len));
    struct fetch_request r;
    assert_true(fetch_parse_text(rest, rest_len, &r, &error));
    /* names that are not atoms are echoed quoted */
    ASSERT_NAMES(&r, "UID", "BODY[HEADER.FIELDS (From To \"X]\\\"Y\")]<5>");
    assert_string_equal(r.atts[1].section.fields[2], "X]\"Y");
    fetch_request_free(&r);

    /* a non-synchronizing literal with LF only */
    assert_true(fetch_parse_text("BODY[HEADER.FIELDS ({4+}\nDATE)]", 31, &r, &error));
    ASSERT_NAMES(&r, "BODY[HEADER.FIELDS (DATE)]");
    fetch_request_free(&r);

    fetch_text_err("BODY[HEADER.FIELDS (\"From)]", "Unterminated quoted string");
    fetch_text_err("BODY[HEADER.FIELDS (\"Fr\\om\")]", "Invalid escape in quoted string");
    fetch_text_err("BODY[HEADER.FIELDS (\"\")]", "Invalid header field name");
    fetch_text_err("BODY[HEADER.FIELDS (\"a:b\")]", "Invalid header field name");
    fetch_text_err("BODY[HEADER.FIELDS ({9}\r\nDA)]", "Literal data missing");
    fetch_text_err("BODY[HEADER.FIELDS ({2} TO)]", "Invalid literal in a header field list");
    fetch_text_err("BODY[HEADER.FIELDS ({2}\rTO)]", "Invalid literal in a header field list");
    fetch_text_err("BODY[HEADER.FIELDS ({x}\r\nTO)]", "Invalid literal in a header field list");
    fetch_text_err("BODY[HEADER.FIELDS ({2x}\r\nTO)]", "Invalid literal in a header field list");
    fetch_text_err("BODY[HEADER.FIELDS ({999}\r\nTO)]", "Invalid literal in a header field list");
    fetch_text_err("BODY[HEADER.FIELDS ({2}\r\nT:)]", "Invalid header field name");
    char longq[FETCH_MAX_FIELD_LEN + 40];
    int n = snprintf(longq, sizeof(longq), "BODY[HEADER.FIELDS (\"");
    memset(longq + n, 'q', FETCH_MAX_FIELD_LEN + 1);
    snprintf(longq + n + FETCH_MAX_FIELD_LEN + 1, 8, "\")]");
    fetch_text_err(longq, "Header field name too long");
    /* list syntax of the text parser */
    fetch_text_err("", "Missing FETCH attributes");
    fetch_text_err("(FLAGS", "Missing ')'");
    fetch_text_err("(FLAGS  UID)", "Unexpected space");
    fetch_text_err("(FLAGS )", "Unexpected space");
    fetch_text_err("(FLAGS UID", "Missing ')'");
    fetch_text_err("(FLAGS)x", "Unexpected argument after the FETCH attributes");
    fetch_text_err("FLAGS)", "Unexpected ')'");
    fetch_text_err("FLAGS (", "Unexpected argument after the FETCH attributes");
    fetch_text_err("FLAGS (CHANGEDSINCE  1)", "Unknown FETCH modifier");
    fetch_text_err("FLAGS (CHANGEDSINCE 1 )", "Unknown FETCH modifier");
    fetch_text_err("FLAGS (CHANGEDSINCE)1)", "Unknown FETCH modifier");

    /* imap_command_rest */
    assert_true(imap_command_rest("a FETCH 1 FLAGS\n", 16, 3, &rest, &rest_len));
    assert_int_equal(rest_len, 5);
    assert_memory_equal(rest, "FLAGS", 5);
    assert_false(imap_command_rest("a FETCH 1\r\n", 11, 3, &rest, &rest_len));
    assert_false(imap_command_rest("a FETCH  1 X\r\n", 14, 3, &rest, &rest_len));
    assert_true(imap_command_rest("a FETCH 1 \r\n", 12, 3, &rest, &rest_len));
    assert_int_equal(rest_len, 0);
}

/* ---- SEARCH (RFC 3501 §6.4.4; RFC 4731; RFC 5182; RFC 7162 §3.1.5) ---- */

static struct search_program search_ok(const char *line)
{
    struct imap_command cmd;
    command(line, &cmd);
    struct search_program p;
    const char *error = NULL;
    enum search_status st = search_parse(cmd.args, cmd.n_args, &p, &error);
    if (st != SEARCH_OK)
        fail_msg("\"%s\": %s", line, error);
    imap_command_free(&cmd);
    return p;
}

static void search_err(const char *line, enum search_status want_status, const char *want)
{
    struct imap_command cmd;
    command(line, &cmd);
    struct search_program p;
    const char *error = NULL;
    enum search_status st = search_parse(cmd.args, cmd.n_args, &p, &error);
    if (st == SEARCH_OK)
        search_program_free(&p);
    expect_error(st == SEARCH_OK, error, want, line);
    assert_int_equal(st, want_status);
    assert_null(p.root.children);
    imap_command_free(&cmd);
}

static const struct search_key *only_key(const struct search_program *p)
{
    assert_int_equal(p->root.type, SEARCH_AND);
    assert_int_equal(p->root.n_children, 1);
    return &p->root.children[0];
}

static void test_search_tree(void **state)
{
    (void)state;
    struct search_program p = search_ok("a SEARCH ALL\r\n");
    assert_int_equal(only_key(&p)->type, SEARCH_ALL);
    assert_false(p.esearch);
    assert_int_equal(p.charset, SEARCH_CHARSET_DEFAULT);
    search_program_free(&p);

    /* system flags and their UN... forms */
    static const struct {
        const char *name;
        unsigned flag;
        bool negated;
    } flags[] = {
        {"ANSWERED", IMAP_FLAG_ANSWERED, false},  {"DELETED", IMAP_FLAG_DELETED, false},
        {"DRAFT", IMAP_FLAG_DRAFT, false},        {"FLAGGED", IMAP_FLAG_FLAGGED, false},
        {"RECENT", IMAP_FLAG_RECENT, false},      {"SEEN", IMAP_FLAG_SEEN, false},
        {"UNANSWERED", IMAP_FLAG_ANSWERED, true}, {"UNDELETED", IMAP_FLAG_DELETED, true},
        {"UNDRAFT", IMAP_FLAG_DRAFT, true},       {"UNFLAGGED", IMAP_FLAG_FLAGGED, true},
        {"unseen", IMAP_FLAG_SEEN, true},
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "a SEARCH %s\r\n", flags[i].name);
        p = search_ok(line);
        const struct search_key *k = only_key(&p);
        if (flags[i].negated) {
            assert_int_equal(k->type, SEARCH_NOT);
            k = &k->children[0];
        }
        assert_int_equal(k->type, SEARCH_FLAG);
        assert_int_equal(k->flag, flags[i].flag);
        search_program_free(&p);
    }
    /* NEW = RECENT UNSEEN, OLD = NOT RECENT */
    p = search_ok("a SEARCH NEW OLD\r\n");
    const struct search_key *k = &p.root.children[0];
    assert_int_equal(k->type, SEARCH_AND);
    assert_int_equal(k->children[0].flag, IMAP_FLAG_RECENT);
    assert_int_equal(k->children[1].type, SEARCH_NOT);
    assert_int_equal(k->children[1].children[0].flag, IMAP_FLAG_SEEN);
    k = &p.root.children[1];
    assert_int_equal(k->type, SEARCH_NOT);
    assert_int_equal(k->children[0].flag, IMAP_FLAG_RECENT);
    search_program_free(&p);

    p = search_ok("a SEARCH KEYWORD $Junk UNKEYWORD work\r\n");
    assert_int_equal(p.root.children[0].type, SEARCH_KEYWORD);
    assert_string_equal(p.root.children[0].keyword, "$Junk");
    assert_int_equal(p.root.children[1].type, SEARCH_NOT);
    assert_string_equal(p.root.children[1].children[0].keyword, "work");
    search_program_free(&p);

    /* strings: astring in every form; the header shortcuts */
    p = search_ok("a SEARCH FROM smith TO \"Jo Doe\" CC {3}\r\ncc1 BCC NIL SUBJECT \"\" "
                  "HEADER X-Spam \"yes\" BODY b TEXT t\r\n");
    static const char *const headers[] = {"FROM", "TO", "CC", "BCC", "SUBJECT", "X-Spam"};
    static const char *const values[] = {"smith", "Jo Doe", "cc1", "NIL", "", "yes"};
    assert_int_equal(p.root.n_children, 8);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(p.root.children[i].type, SEARCH_HEADER);
        assert_string_equal(p.root.children[i].header, headers[i]);
        assert_string_equal(p.root.children[i].needle.text, values[i]);
    }
    assert_int_equal(p.root.children[6].type, SEARCH_BODY);
    assert_int_equal(p.root.children[7].type, SEARCH_TEXT);
    search_program_free(&p);

    /* dates, atom or quoted */
    p = search_ok("a SEARCH BEFORE 1-Feb-1994 ON \"01-Feb-1994\" SINCE 1-feb-1994 "
                  "SENTBEFORE 2-Feb-1994 SENTON 2-Feb-1994 SENTSINCE 2-Feb-1994\r\n");
    static const enum search_key_type dt[] = {SEARCH_BEFORE, SEARCH_ON, SEARCH_SINCE};
    for (size_t i = 0; i < 6; i++) {
        k = &p.root.children[i];
        assert_int_equal(k->type, dt[i % 3]);
        assert_int_equal(k->field, i < 3 ? SEARCH_DATE_INTERNAL : SEARCH_DATE_SENT);
        assert_int_equal(k->day, i < 3 ? 8797 : 8798);
    }
    search_program_free(&p);

    p = search_ok("a SEARCH LARGER 100 SMALLER 0200 UID 1:* 2,4:* $\r\n");
    assert_int_equal(p.root.children[0].type, SEARCH_LARGER);
    assert_int_equal(p.root.children[0].number, 100);
    assert_int_equal(p.root.children[1].type, SEARCH_SMALLER);
    assert_int_equal(p.root.children[1].number, 200);
    assert_int_equal(p.root.children[2].type, SEARCH_UID);
    assert_true(p.root.children[2].set.star);
    assert_int_equal(p.root.children[3].type, SEARCH_SEQSET);
    assert_int_equal(p.root.children[4].type, SEARCH_SEQSET);
    assert_true(p.root.children[4].set.last_result);
    assert_true(p.uses_last_result);
    search_program_free(&p);

    /* NOT, OR and parentheses nest */
    p = search_ok("a SEARCH OR (SEEN FLAGGED) NOT OR DELETED UID $\r\n");
    k = only_key(&p);
    assert_int_equal(k->type, SEARCH_OR);
    assert_int_equal(k->children[0].type, SEARCH_AND);
    assert_int_equal(k->children[0].n_children, 2);
    assert_int_equal(k->children[1].type, SEARCH_NOT);
    assert_int_equal(k->children[1].children[0].type, SEARCH_OR);
    assert_int_equal(k->children[1].children[0].children[1].type, SEARCH_UID);
    assert_true(p.uses_last_result);
    search_program_free(&p);

    /* RFC 7162 §3.1.5 MODSEQ, with and without the entry */
    p = search_ok("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n");
    assert_int_equal(only_key(&p)->type, SEARCH_MODSEQ);
    assert_int_equal(only_key(&p)->number, 620162338);
    assert_true(p.uses_modseq);
    search_program_free(&p);
    p = search_ok(
        "a SEARCH MODSEQ \"/flags/$Junk\" priv 0 MODSEQ 5 MODSEQ \"/FLAGS/x\" shared 1\r\n");
    assert_int_equal(p.root.n_children, 3);
    search_program_free(&p);
}

static void test_search_charset_and_return(void **state)
{
    (void)state;
    struct search_program p = search_ok("a SEARCH CHARSET UTF-8 SUBJECT \"caf\xc3\xa9\"\r\n");
    assert_int_equal(p.charset, SEARCH_CHARSET_UTF8);
    search_program_free(&p);
    p = search_ok("a SEARCH charset \"us-ascii\" ALL\r\n");
    assert_int_equal(p.charset, SEARCH_CHARSET_US_ASCII);
    search_program_free(&p);
    /* §6.4.4: an unknown charset is NO [BADCHARSET], a distinct status */
    search_err("a SEARCH CHARSET KOI8-R ALL\r\n", SEARCH_BADCHARSET, "Unsupported charset");
    search_err("a SEARCH CHARSET {5}\r\nUTF-7 ALL\r\n", SEARCH_BADCHARSET, "Unsupported charset");
    search_err("a SEARCH CHARSET\r\n", SEARCH_BAD, "Missing search string");
    search_err("a SEARCH CHARSET (UTF-8) ALL\r\n", SEARCH_BAD, "Expected a search string");
    search_err("a SEARCH CHARSET UTF-8\r\n", SEARCH_BAD, "Missing search keys");
    search_err("a SEARCH ALL CHARSET UTF-8\r\n", SEARCH_BAD, "Unknown search key");

    /* RFC 4731 §3.1 RETURN, RFC 5182 SAVE */
    p = search_ok("a SEARCH RETURN (MIN max COUNT) CHARSET UTF-8 ALL\r\n");
    assert_true(p.esearch);
    assert_int_equal(p.returns, SEARCH_RETURN_MIN | SEARCH_RETURN_MAX | SEARCH_RETURN_COUNT);
    assert_int_equal(p.charset, SEARCH_CHARSET_UTF8);
    search_program_free(&p);
    p = search_ok("a SEARCH RETURN () ALL\r\n");
    assert_true(p.esearch);
    assert_int_equal(p.returns, SEARCH_RETURN_ALL);
    search_program_free(&p);
    p = search_ok("a SEARCH RETURN (SAVE ALL) UNSEEN\r\n");
    assert_int_equal(p.returns, SEARCH_RETURN_SAVE | SEARCH_RETURN_ALL);
    search_program_free(&p);
    search_err("a SEARCH RETURN (FOO) ALL\r\n", SEARCH_BAD, "Unknown RETURN option");
    search_err("a SEARCH RETURN MIN ALL\r\n", SEARCH_BAD, "Expected a list of RETURN options");
    search_err("a SEARCH RETURN\r\n", SEARCH_BAD, "Expected a list of RETURN options");
    search_err("a SEARCH RETURN (MIN)\r\n", SEARCH_BAD, "Missing search keys");
    search_err("a SEARCH CHARSET UTF-8 RETURN (MIN) ALL\r\n", SEARCH_BAD, "Unknown search key");
}

static void test_search_errors(void **state)
{
    (void)state;
    search_err("a SEARCH\r\n", SEARCH_BAD, "Missing search keys");
    search_err("a SEARCH FOO\r\n", SEARCH_BAD, "Unknown search key");
    search_err("a SEARCH ALL \"SEEN\"\r\n", SEARCH_BAD, "Expected a search key");
    search_err("a SEARCH ()\r\n", SEARCH_BAD, "Empty search key list");
    search_err("a SEARCH (SEEN ())\r\n", SEARCH_BAD, "Empty search key list");
    search_err("a SEARCH (SEEN FOO)\r\n", SEARCH_BAD, "Unknown search key");
    search_err("a SEARCH NOT\r\n", SEARCH_BAD, "Missing search key");
    search_err("a SEARCH OR SEEN\r\n", SEARCH_BAD, "Missing search key");
    search_err("a SEARCH (OR SEEN) DRAFT\r\n", SEARCH_BAD, "Missing search key");
    search_err("a SEARCH KEYWORD\r\n", SEARCH_BAD, "Missing keyword");
    search_err("a SEARCH KEYWORD \\Seen\r\n", SEARCH_BAD, "Invalid keyword");
    search_err("a SEARCH UNKEYWORD \"x\"\r\n", SEARCH_BAD, "Invalid keyword");
    search_err("a SEARCH FROM\r\n", SEARCH_BAD, "Missing search string");
    search_err("a SEARCH FROM (x)\r\n", SEARCH_BAD, "Expected a search string");
    search_err("a SEARCH HEADER X-A\r\n", SEARCH_BAD, "Missing search string");
    search_err("a SEARCH HEADER \"X:A\" b\r\n", SEARCH_BAD, "Invalid header field name");
    search_err("a SEARCH HEADER \"\" b\r\n", SEARCH_BAD, "Invalid header field name");
    search_err("a SEARCH BEFORE\r\n", SEARCH_BAD, "Missing date");
    search_err("a SEARCH BEFORE 30-Feb-2000\r\n", SEARCH_BAD, "Invalid date");
    search_err("a SEARCH SENTON {10}\r\n1-Feb-1994\r\n", SEARCH_BAD, "Invalid date");
    search_err("a SEARCH SINCE \"1-Feb-1994 \"\r\n", SEARCH_BAD, "Invalid date");
    search_err("a SEARCH LARGER\r\n", SEARCH_BAD, "Missing size");
    search_err("a SEARCH LARGER -1\r\n", SEARCH_BAD, "Invalid size");
    search_err("a SEARCH SMALLER 9223372036854775808\r\n", SEARCH_BAD, "Invalid size");
    search_err("a SEARCH SMALLER \"5\"\r\n", SEARCH_BAD, "Invalid size");
    search_err("a SEARCH UID\r\n", SEARCH_BAD, "Missing UID set");
    search_err("a SEARCH UID 0\r\n", SEARCH_BAD, "Sequence number 0 is not valid");
    search_err("a SEARCH UID \"1\"\r\n", SEARCH_BAD, "Invalid sequence set");
    search_err("a SEARCH 1,,2\r\n", SEARCH_BAD, "Invalid sequence set");
    search_err("a SEARCH $,1\r\n", SEARCH_BAD, "Invalid sequence set");
    search_err("a SEARCH 4294967296\r\n", SEARCH_BAD, "Sequence number too large");
    search_err("a SEARCH MODSEQ\r\n", SEARCH_BAD, "Missing MODSEQ value");
    search_err("a SEARCH MODSEQ x\r\n", SEARCH_BAD, "Invalid MODSEQ value");
    search_err("a SEARCH MODSEQ \"/flags/x\"\r\n", SEARCH_BAD, "Missing MODSEQ entry type");
    search_err("a SEARCH MODSEQ \"/flags/x\" all\r\n", SEARCH_BAD, "Missing MODSEQ value");
    search_err("a SEARCH MODSEQ \"/flags/x\" other 1\r\n", SEARCH_BAD, "Invalid MODSEQ entry type");
    search_err("a SEARCH MODSEQ \"/other/x\" all 1\r\n", SEARCH_BAD, "Invalid MODSEQ entry name");
    search_err("a SEARCH MODSEQ \"/flags/\" all 1\r\n", SEARCH_BAD, "Invalid MODSEQ entry name");
    search_err("a SEARCH MODSEQ 9223372036854775808\r\n", SEARCH_BAD, "Invalid MODSEQ value");
}

static void test_search_depth(void **state)
{
    (void)state;
    /* SEARCH_MAX_DEPTH NOTs pass, one more is refused; OR counts the same way */
    char line[2048];
    size_t n = (size_t)snprintf(line, sizeof(line), "a SEARCH");
    for (int i = 0; i < SEARCH_MAX_DEPTH; i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, " NOT");
    snprintf(line + n, sizeof(line) - n, " ALL\r\n");
    struct search_program p = search_ok(line);
    search_program_free(&p);
    snprintf(line + n, sizeof(line) - n, " NOT ALL\r\n");
    search_err(line, SEARCH_BAD, "Search keys nested too deeply");
    n = (size_t)snprintf(line, sizeof(line), "a SEARCH");
    for (int i = 0; i <= SEARCH_MAX_DEPTH; i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, " OR SEEN");
    snprintf(line + n, sizeof(line) - n, " ALL\r\n");
    search_err(line, SEARCH_BAD, "Search keys nested too deeply");
    /* parentheses count too (imap_parse_command() already stops at 32 levels) */
    n = (size_t)snprintf(line, sizeof(line), "a SEARCH");
    for (int i = 0; i < 70; i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, " NOT");
    for (int i = 0; i < 31; i++)
        line[n++] = i ? '(' : ' ';
    n += (size_t)snprintf(line + n, sizeof(line) - n, "(ALL");
    for (int i = 0; i < 31; i++)
        line[n++] = ')';
    snprintf(line + n, sizeof(line) - n, "\r\n");
    search_err(line, SEARCH_BAD, "Search keys nested too deeply");
}

/* A message for the evaluator: fixed fields, headers from a table, texts as strings. */
struct fake {
    struct search_message m;
    const char *headers[8][2];
    const char *body, *text;
};

static const char *fake_header(const struct search_message *m, const char *name, size_t index)
{
    const struct fake *f = m->ctx;
    for (size_t i = 0; i < 8 && f->headers[i][0]; i++)
        if (strcasecmp(f->headers[i][0], name) == 0 && index-- == 0)
            return f->headers[i][1];
    return NULL;
}

static bool fake_contains(const struct search_message *m, enum search_text_part part,
                          const struct search_string *needle)
{
    const struct fake *f = m->ctx;
    const char *t = part == SEARCH_PART_BODY ? f->body : f->text;
    return search_string_find(needle, t, strlen(t));
}

static const char *const fake_keywords[] = {"$Junk", "Work"};

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    f->m.seq = 3;
    f->m.uid = 103;
    f->m.flags = IMAP_FLAG_SEEN | IMAP_FLAG_RECENT;
    f->m.keywords = fake_keywords;
    f->m.n_keywords = 2;
    f->m.size = 1000;
    f->m.internal_day = 8797; /* 1-Feb-1994 */
    f->m.has_sent_day = true;
    f->m.sent_day = 8796; /* 31-Jan-1994 */
    f->m.modseq = 50;
    f->m.header = fake_header;
    f->m.contains = fake_contains;
    f->m.ctx = f;
    f->headers[0][0] = "From", f->headers[0][1] = "John Smith <js@example.org>";
    f->headers[1][0] = "To", f->headers[1][1] = "a@example.org";
    f->headers[2][0] = "To", f->headers[2][1] = "b@example.net";
    f->headers[3][0] = "Subject", f->headers[3][1] = "Caf\xc3\x89 STRASSE";
    f->headers[4][0] = "X-Empty", f->headers[4][1] = "";
    f->body = "the body only";
    f->text = "Subject: hdr\r\n\r\nthe body only";
}

/* Evaluates `keys` (after SEARCH) against f, with 10 messages and UIDs up to 110. */
static bool matches(const struct fake *f, const char *keys)
{
    char line[1024];
    snprintf(line, sizeof(line), "a SEARCH %s\r\n", keys);
    struct search_program p = search_ok(line);
    search_resolve(&p, 10, 110);
    bool r = search_eval(&p, &f->m);
    search_program_free(&p);
    return r;
}

#define MATCH(f, keys) assert_true(matches((f), (keys)))
#define NO_MATCH(f, keys) assert_false(matches((f), (keys)))

static void test_search_eval(void **state)
{
    (void)state;
    struct fake f;
    fake_init(&f);
    MATCH(&f, "ALL");
    /* flags */
    MATCH(&f, "SEEN");
    MATCH(&f, "RECENT");
    NO_MATCH(&f, "UNSEEN");
    NO_MATCH(&f, "ANSWERED");
    MATCH(&f, "UNANSWERED UNDELETED UNDRAFT UNFLAGGED");
    NO_MATCH(&f, "DELETED");
    NO_MATCH(&f, "DRAFT");
    NO_MATCH(&f, "FLAGGED");
    NO_MATCH(&f, "NEW"); /* recent but seen */
    NO_MATCH(&f, "OLD");
    f.m.flags = IMAP_FLAG_RECENT;
    MATCH(&f, "NEW");
    f.m.flags = 0;
    MATCH(&f, "OLD");
    NO_MATCH(&f, "NEW");
    /* keywords, case-insensitively */
    MATCH(&f, "KEYWORD $junk");
    NO_MATCH(&f, "KEYWORD Home");
    MATCH(&f, "UNKEYWORD Home");
    NO_MATCH(&f, "UNKEYWORD work");
    /* sizes: strictly larger, strictly smaller */
    MATCH(&f, "LARGER 999");
    NO_MATCH(&f, "LARGER 1000");
    MATCH(&f, "SMALLER 1001");
    NO_MATCH(&f, "SMALLER 1000");
    /* §6.4.4 dates without time and zone: BEFORE earlier, ON same day, SINCE same or later */
    MATCH(&f, "BEFORE 2-Feb-1994");
    NO_MATCH(&f, "BEFORE 1-Feb-1994");
    MATCH(&f, "ON 1-Feb-1994");
    NO_MATCH(&f, "ON 2-Feb-1994");
    MATCH(&f, "SINCE 1-Feb-1994");
    NO_MATCH(&f, "SINCE 2-Feb-1994");
    MATCH(&f, "SENTBEFORE 1-Feb-1994");
    MATCH(&f, "SENTON 31-Jan-1994");
    NO_MATCH(&f, "SENTON 1-Feb-1994");
    MATCH(&f, "SENTSINCE 31-Jan-1994");
    NO_MATCH(&f, "SENTSINCE 1-Feb-1994");
    f.m.has_sent_day = false; /* no Date: header: SENT* never match */
    NO_MATCH(&f, "SENTBEFORE 1-Feb-2100");
    NO_MATCH(&f, "SENTSINCE 1-Feb-1900");
    MATCH(&f, "NOT SENTON 1-Feb-1994");
    f.m.has_sent_day = true;
    /* sequence numbers and UIDs, "*" resolved to 10 and 110 */
    MATCH(&f, "3");
    MATCH(&f, "1:2,3");
    MATCH(&f, "*:3");
    NO_MATCH(&f, "4:*");
    NO_MATCH(&f, "*");
    MATCH(&f, "UID 103");
    MATCH(&f, "UID 100:*");
    NO_MATCH(&f, "UID 3");
    NO_MATCH(&f, "UID *");
    /* "$": membership in the saved result */
    NO_MATCH(&f, "$");
    NO_MATCH(&f, "UID $");
    f.m.in_last_result = true;
    MATCH(&f, "$");
    MATCH(&f, "UID $");
    /* headers: case-insensitive substrings over every field of that name */
    MATCH(&f, "FROM smith");
    MATCH(&f, "FROM \"JOHN SMITH\"");
    NO_MATCH(&f, "FROM jones");
    MATCH(&f, "TO example.net"); /* the second To: field */
    NO_MATCH(&f, "CC example");
    NO_MATCH(&f, "BCC \"\"");         /* no such field at all */
    MATCH(&f, "HEADER X-Empty \"\""); /* §6.4.4: an empty string: the field exists */
    MATCH(&f, "HEADER to \"\"");
    NO_MATCH(&f, "HEADER X-Empty x");
    MATCH(&f, "SUBJECT \"caf\xc3\xa9\""); /* É folds to é */
    MATCH(&f, "SUBJECT strasse");
    NO_MATCH(&f, "SUBJECT \"stra\xc3\x9f"
                 "e\""); /* no multi-character folding: ß is not ss */
    /* BODY is the body, TEXT header and body */
    MATCH(&f, "BODY \"BODY ONLY\"");
    NO_MATCH(&f, "BODY hdr");
    MATCH(&f, "TEXT hdr");
    MATCH(&f, "TEXT \"\"");
    /* MODSEQ: at least */
    MATCH(&f, "MODSEQ 50");
    NO_MATCH(&f, "MODSEQ 51");
    /* combinations */
    f.m.flags = IMAP_FLAG_SEEN | IMAP_FLAG_RECENT;
    MATCH(&f, "SEEN KEYWORD work LARGER 10");
    NO_MATCH(&f, "SEEN KEYWORD work LARGER 1000");
    MATCH(&f, "OR DELETED SEEN");
    MATCH(&f, "OR SEEN DELETED");
    NO_MATCH(&f, "OR DELETED DRAFT");
    MATCH(&f, "NOT DELETED");
    MATCH(&f, "NOT NOT SEEN");
    MATCH(&f, "(SEEN (RECENT (KEYWORD work)))");
    NO_MATCH(&f, "(SEEN (RECENT (KEYWORD home)))");
    MATCH(&f, "OR (DELETED SEEN) (SEEN UID 103)");

    /* without callbacks, string keys do not match */
    f.m.header = NULL;
    f.m.contains = NULL;
    NO_MATCH(&f, "FROM smith");
    NO_MATCH(&f, "BODY body");
    MATCH(&f, "NOT TEXT body");
}

static void test_search_strings(void **state)
{
    (void)state;
    static const struct {
        const char *needle, *hay;
        bool found;
    } cases[] = {
        {"abc", "xxABCxx", true},
        {"ABC", "xxabcxx", true},
        {"abd", "xxabcxx", false},
        {"", "", true},
        {"", "anything", true},
        {"a", "", false},
        {"aab", "aaab", true}, /* a mismatch after a partial match falls back, not restarts */
        {"abab", "abaabab", true},
        {"aaaa", "aaa", false},
        /* Latin-1 and Latin Extended-A */
        {"\xc3\xa9t\xc3\xa9", "\xc3\x89T\xc3\x89", true},                       /* été / ÉTÉ */
        {"\xc5\x82\xc3\xb3\x64\xc5\xba", "\xc5\x81\xc3\x93\x44\xc5\xb9", true}, /* łódź / ŁÓDŹ */
        {"\xc3\xbf", "\xc5\xb8", true},                                         /* ÿ / Ÿ */
        {"\xc3\x97", "\xc3\xb7", false}, /* × is not a capital of ÷ */
        /* Greek, final sigma folded like sigma; Cyrillic */
        {"\xcf\x83\xce\xbf\xcf\x86\xce\xaf\xce\xb1", "\xce\xa3\xce\x9f\xce\xa6\xce\x8a\xce\x91",
         true},
        {"\xcf\x83", "\xcf\x82", true},
        {"\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
         "\xd0\x9f\xd0\xa0\xd0\x98\xd0\x92\xd0\x95\xd0\xa2", true},
        {"\xd1\x91", "\xd0\x81", true}, /* ё / Ё */
        /* bytes that are not UTF-8 match only themselves */
        {"caf\xe9", "CAF\xe9", true},
        {"caf\xe9", "CAF\xc9", false},
        {"\xc3\xa9", "\xc3", false},
        {"\xe2\x82", "x\xe2\x82", true},
        {"\xe2\x82\xac", "\xe2\x82", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct search_string s;
        search_string_init(&s, cases[i].needle, strlen(cases[i].needle));
        bool found = search_string_find(&s, cases[i].hay, strlen(cases[i].hay));
        if (found != cases[i].found)
            fail_msg("case %zu: \"%s\" in \"%s\": %d", i, cases[i].needle, cases[i].hay, found);
        /* the same, fed a byte at a time: sequences cut between pieces */
        struct search_scan scan;
        search_scan_init(&scan, &s);
        for (size_t k = 0; cases[i].hay[k]; k++)
            search_scan_feed(&scan, cases[i].hay + k, 1);
        if (search_scan_end(&scan) != cases[i].found)
            fail_msg("case %zu byte by byte: %d", i, !cases[i].found);
        search_string_free(&s);
    }

    /* pieces: "€" cut in three, a match across pieces, then data after the match is ignored */
    struct search_string s;
    search_string_init(&s, "x\xe2\x82\xacY", 5);
    struct search_scan scan;
    search_scan_init(&scan, &s);
    assert_false(search_scan_feed(&scan, "aX\xe2", 3));
    assert_false(search_scan_feed(&scan, "\x82", 1));
    assert_true(search_scan_feed(&scan, "\xacy", 2));
    assert_true(search_scan_feed(&scan, "zzz", 3));
    assert_true(search_scan_end(&scan));
    /* a cut sequence that never completes is its bytes */
    search_scan_init(&scan, &s);
    assert_false(search_scan_feed(&scan, "x\xe2\x82", 3));
    assert_false(search_scan_feed(&scan, "Y", 1));
    assert_false(search_scan_end(&scan));
    search_string_free(&s);
    search_string_init(&s, "\xe2\x82", 2);
    search_scan_init(&scan, &s);
    assert_false(search_scan_feed(&scan, "a\xe2\x82", 3));
    assert_true(search_scan_end(&scan));
    search_string_free(&s);

    /* linear time: a long needle of "a" against a long run of "a" with a "b" at the end */
    char *hay = malloc(1000001), *needle = malloc(10002);
    assert_non_null(hay);
    assert_non_null(needle);
    memset(hay, 'a', 1000000);
    hay[1000000] = '\0';
    memset(needle, 'A', 10000);
    memcpy(needle + 10000, "B", 2);
    search_string_init(&s, needle, 10001);
    assert_false(search_string_find(&s, hay, 1000000));
    hay[999999] = 'b';
    assert_true(search_string_find(&s, hay, 1000000));
    search_string_free(&s);
    free(hay);
    free(needle);

    /* search_fold: what is folded and what is not */
    assert_int_equal(search_fold('A'), 'a');
    assert_int_equal(search_fold('['), '[');
    assert_int_equal(search_fold(0xc0), 0xe0);
    assert_int_equal(search_fold(0xd7), 0xd7);
    assert_int_equal(search_fold(0xdf), 0xdf);
    assert_int_equal(search_fold(0xb5), 0x3bc);
    assert_int_equal(search_fold(0x100), 0x101);
    assert_int_equal(search_fold(0x101), 0x101);
    assert_int_equal(search_fold(0x130), 'i');
    assert_int_equal(search_fold(0x131), 0x131);
    assert_int_equal(search_fold(0x139), 0x13a);
    assert_int_equal(search_fold(0x13a), 0x13a);
    assert_int_equal(search_fold(0x149), 0x149);
    assert_int_equal(search_fold(0x17f), 's');
    assert_int_equal(search_fold(0x17d), 0x17e);
    assert_int_equal(search_fold(0x386), 0x3ac);
    assert_int_equal(search_fold(0x389), 0x3ae);
    assert_int_equal(search_fold(0x38c), 0x3cc);
    assert_int_equal(search_fold(0x38f), 0x3ce);
    assert_int_equal(search_fold(0x3a2), 0x3a2);
    assert_int_equal(search_fold(0x400), 0x450);
    assert_int_equal(search_fold(0x42f), 0x44f);
    assert_int_equal(search_fold(0x1e9e), 0x1e9e); /* outside the folded blocks */
}

/* ---- STATUS and ENABLE (RFC 3501 §6.3.10; RFC 5161) ---- */

static void test_status(void **state)
{
    (void)state;
    struct imap_command cmd;
    command("a STATUS x (MESSAGES recent UIDNEXT UIDVALIDITY UNSEEN SIZE HIGHESTMODSEQ DELETED "
            "UNSEEN)\r\n",
            &cmd);
    unsigned items = 0;
    const char *error = NULL;
    assert_true(status_parse(&cmd.args[1], &items, &error));
    assert_int_equal(items, 0xff);
    imap_command_free(&cmd);
    for (unsigned bit = 1; bit <= STATUS_DELETED; bit <<= 1)
        assert_non_null(status_item_name(bit));
    assert_string_equal(status_item_name(STATUS_UIDNEXT), "UIDNEXT");
    assert_null(status_item_name(0));

    static const struct {
        const char *line, *error;
    } bad[] = {
        {"a STATUS x ()\r\n", "Expected a list of STATUS items"},
        {"a STATUS x MESSAGES\r\n", "Expected a list of STATUS items"},
        {"a STATUS x (MESSAGES FOO)\r\n", "Unknown STATUS item"},
        {"a STATUS x (\"MESSAGES\")\r\n", "Unknown STATUS item"},
        {"a STATUS x ((MESSAGES))\r\n", "Unknown STATUS item"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        command(bad[i].line, &cmd);
        expect_error(status_parse(&cmd.args[1], &items, &error), error, bad[i].error, bad[i].line);
        imap_command_free(&cmd);
    }
}

static void test_enable(void **state)
{
    (void)state;
    struct imap_command cmd;
    command("a ENABLE condstore X-UNKNOWN UTF8=ACCEPT QRESYNC IMAP4REV2 AUTH=PLAIN\r\n", &cmd);
    unsigned ext = 0;
    const char *error = NULL;
    assert_true(enable_parse(cmd.args, cmd.n_args, &ext, &error));
    assert_int_equal(ext, IMAP_EXT_CONDSTORE | IMAP_EXT_UTF8_ACCEPT | IMAP_EXT_QRESYNC |
                              IMAP_EXT_IMAP4REV2);
    imap_command_free(&cmd);
    command("a ENABLE X-ONLY-UNKNOWN\r\n", &cmd);
    assert_true(enable_parse(cmd.args, cmd.n_args, &ext, &error));
    assert_int_equal(ext, 0);
    imap_command_free(&cmd);
    assert_string_equal(imap_extension_name(IMAP_EXT_CONDSTORE), "CONDSTORE");
    assert_string_equal(imap_extension_name(IMAP_EXT_UTF8_ACCEPT), "UTF8=ACCEPT");
    assert_null(imap_extension_name(0));

    expect_error(enable_parse(NULL, 0, &ext, &error), error, "Missing capability names", "none");
    command("a ENABLE \"CONDSTORE\"\r\n", &cmd);
    expect_error(enable_parse(cmd.args, cmd.n_args, &ext, &error), error,
                 "Capability names must be atoms", "quoted");
    imap_command_free(&cmd);
    command("a ENABLE CONDSTORE X%\r\n", &cmd);
    expect_error(enable_parse(cmd.args, cmd.n_args, &ext, &error), error,
                 "Capability names must be atoms", "wildcard");
    imap_command_free(&cmd);
}

/* ---- mailbox names (RFC 3501 §5.1, §5.1.3) ---- */

static void decode_ok(const char *mutf7, const char *utf8)
{
    char *out = NULL;
    const char *error = NULL;
    if (!mutf7_decode(mutf7, strlen(mutf7), &out, &error))
        fail_msg("\"%s\": %s", mutf7, error);
    assert_string_equal(out, utf8);
    free(out);
    /* and back: the encoder writes the one shortest form */
    if (!mutf7_encode(utf8, strlen(utf8), &out, &error))
        fail_msg("encode \"%s\": %s", utf8, error);
    assert_string_equal(out, mutf7);
    free(out);
}

static void decode_err(const char *mutf7, const char *want)
{
    char *out = NULL;
    const char *error = NULL;
    bool ok = mutf7_decode(mutf7, strlen(mutf7), &out, &error);
    if (ok)
        free(out);
    expect_error(ok, error, want, mutf7);
}

static void test_mutf7(void **state)
{
    (void)state;
    /* §5.1.3's example */
    decode_ok("~peter/mail/&U,BTFw-/&ZeVnLIqe-",
              "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
    decode_ok("&-", "&");
    decode_ok("a&-b&-", "a&b&");
    decode_ok("Entw&APw-rfe", "Entw\xc3\xbcrfe");
    decode_ok("&2D3eAA-", "\xf0\x9f\x98\x80"); /* U+1F600: a surrogate pair */
    decode_ok("&IKw-uro", "\xe2\x82\xac"
                          "uro");
    decode_ok("&AOQ-&-", "\xc3\xa4&"); /* "-&-" is a run, then "&-": not a null shift */
    decode_ok("&AOQA5A-", "\xc3\xa4\xc3\xa4");
    decode_ok("&AAE-", "\x01"); /* controls are encoded (refused later, by mailbox_name_parse) */
    /* the longest encoding per byte: controls alone between printable characters (fuzz_mutf7
     * found the encoder's buffer one size too small for it) */
    decode_ok("&AAE-&-&AAI-&-&AAE-a&AAE-", "\x01&\x02&\x01"
                                           "a\x01");
    decode_ok("", "");
    decode_ok("~!\"#$%'()*+,-./09:;<=>?@AZ[\\]^_`az{|}", "~!\"#$%'()*+,-./09:;<=>?@AZ[\\]^_`az{|}");

    decode_err("&", "Unterminated modified BASE64 in mailbox name");
    decode_err("&U,BTFw", "Unterminated modified BASE64 in mailbox name");
    decode_err("&Jjo!-", "Invalid character in modified BASE64");
    decode_err("&U/BTFw-", "Invalid character in modified BASE64"); /* "/" is "," here */
    decode_err("&U,BTFw=-", "Invalid character in modified BASE64");
    decode_err("&AGE-", "Needlessly encoded character in mailbox name"); /* "a" */
    decode_err("&ACY-", "Needlessly encoded character in mailbox name"); /* "&" */
    decode_err("&AAA-", "Needlessly encoded character in mailbox name"); /* NUL */
    decode_err("&AOQ-&AOQ-", "Adjacent modified BASE64 runs in mailbox name");
    decode_err("&AOR-", "Invalid modified BASE64 in mailbox name");  /* padding bits set */
    decode_err("&AOQA-", "Invalid modified BASE64 in mailbox name"); /* a spare character */
    decode_err("&A-", "Invalid modified BASE64 in mailbox name");
    decode_err("&2D0-", "Invalid modified BASE64 in mailbox name"); /* a lone high surrogate */
    decode_err("&3gA-", "Invalid UTF-16 surrogate pair in mailbox name");
    decode_err("&2D3YPQ-", "Invalid UTF-16 surrogate pair in mailbox name"); /* high, high */
    decode_err("caf\xc3\xa9", "Mailbox name is not printable ASCII");
    decode_err("a\x01", "Mailbox name is not printable ASCII");
    decode_err("a\x7f", "Mailbox name is not printable ASCII");
    decode_err("a\tb", "Mailbox name is not printable ASCII");

    static const char *const bad_utf8[] = {
        "\xc0\xaf",         /* overlong "/" */
        "\xe0\x80\xaf",     /* overlong */
        "\xed\xa0\x80",     /* a surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xc3",             /* cut */
        "\x80",             /* a continuation byte alone */
        "\xff",
    };
    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        char *out = NULL;
        const char *error = NULL;
        expect_error(mutf7_encode(bad_utf8[i], strlen(bad_utf8[i]), &out, &error), error,
                     "Mailbox name is not valid UTF-8", "bad UTF-8");
        assert_false(utf8_valid(bad_utf8[i], strlen(bad_utf8[i])));
    }
    char *out = NULL;
    const char *error = NULL;
    expect_error(mutf7_encode("a\0b", 3, &out, &error), error, "Mailbox name is not valid UTF-8",
                 "NUL");
    assert_true(utf8_valid("\xf4\x8f\xbf\xbf", 4));
}

static void mailbox_ok(const char *line, char delim, bool utf8, const char *want)
{
    struct imap_command cmd;
    command(line, &cmd);
    char *name = NULL;
    const char *error = NULL;
    if (!mailbox_name_parse(&cmd.args[0], delim, utf8, &name, &error))
        fail_msg("\"%s\": %s", line, error);
    assert_string_equal(name, want);
    free(name);
    imap_command_free(&cmd);
}

static void mailbox_err(const char *line, bool utf8, const char *want)
{
    struct imap_command cmd;
    command(line, &cmd);
    char *name = NULL;
    const char *error = NULL;
    expect_error(mailbox_name_parse(&cmd.args[0], '/', utf8, &name, &error), error, want, line);
    assert_null(name);
    imap_command_free(&cmd);
}

static void test_mailbox_names(void **state)
{
    (void)state;
    /* §5.1: INBOX in any case is INBOX; so is the first level of its children */
    mailbox_ok("a SELECT inbox\r\n", '/', false, "INBOX");
    mailbox_ok("a SELECT \"InBoX\"\r\n", '/', false, "INBOX");
    mailbox_ok("a SELECT {5}\r\niNbOx\r\n", '/', false, "INBOX");
    mailbox_ok("a SELECT Inbox/Sub\r\n", '/', false, "INBOX/Sub");
    mailbox_ok("a SELECT inbox.Sub\r\n", '/', false, "inbox.Sub");
    mailbox_ok("a SELECT inbox.Sub\r\n", '.', false, "INBOX.Sub");
    mailbox_ok("a SELECT inboxes\r\n", '/', false, "inboxes");
    mailbox_ok("a SELECT Work/inbox\r\n", '/', false, "Work/inbox");
    mailbox_ok("a SELECT inbox/x\r\n", '\0', false, "inbox/x");
    mailbox_ok("a SELECT NIL\r\n", '/', false, "NIL");
    mailbox_ok("a SELECT Entw&APw-rfe\r\n", '/', false, "Entw\xc3\xbcrfe");
    /* after ENABLE UTF8=ACCEPT (RFC 6855) the name is UTF-8 as sent, "&" included */
    mailbox_ok("a SELECT \"Entw\xc3\xbcrfe & co\"\r\n", '/', true, "Entw\xc3\xbcrfe & co");

    mailbox_err("a SELECT (x)\r\n", false, "Expected a mailbox name");
    mailbox_err("a SELECT \"\"\r\n", false, "Empty mailbox name");
    mailbox_err("a SELECT \"\"\r\n", true, "Empty mailbox name");
    mailbox_err("a SELECT &AAE-\r\n", false, "Control character in mailbox name");
    mailbox_err("a SELECT &AB8-\r\n", false, "Control character in mailbox name");
    mailbox_err("a SELECT &AH8-\r\n", false, "Control character in mailbox name");
    mailbox_err("a SELECT &AIA-\r\n", false, "Control character in mailbox name");
    mailbox_err("a SELECT &AJ8-\r\n", false, "Control character in mailbox name");
    mailbox_err("a SELECT {3}\r\na\x01z\r\n", true, "Control character in mailbox name");
    mailbox_err("a SELECT \"Entw\xc3\xbcrfe\"\r\n", false, "Mailbox name is not printable ASCII");
    mailbox_err("a SELECT \"\xc3\"\r\n", true, "Mailbox name is not valid UTF-8");
    mailbox_err("a SELECT &AOQ\r\n", false, "Unterminated modified BASE64 in mailbox name");
    mailbox_ok("a SELECT &AKA-\r\n", '/', false, "\xc2\xa0"); /* U+00A0 is not a control */

    char line[MAILBOX_NAME_MAX + 32];
    int n = snprintf(line, sizeof(line), "a SELECT ");
    memset(line + n, 'm', MAILBOX_NAME_MAX);
    snprintf(line + n + MAILBOX_NAME_MAX, sizeof(line) - (size_t)n - MAILBOX_NAME_MAX, "\r\n");
    struct imap_command cmd;
    command(line, &cmd);
    char *name = NULL;
    const char *error = NULL;
    assert_true(mailbox_name_parse(&cmd.args[0], '/', false, &name, &error));
    free(name);
    imap_command_free(&cmd);
    snprintf(line + n + MAILBOX_NAME_MAX, sizeof(line) - (size_t)n - MAILBOX_NAME_MAX, "m\r\n");
    mailbox_err(line, false, "Mailbox name too long");

    char box[] = "iNBOX";
    mailbox_name_normalise_inbox(box, '/');
    assert_string_equal(box, "INBOX");
}

/* ---- LIST patterns (RFC 3501 §6.3.8) ---- */

static bool list_match(const char *pattern, const char *name, char delim)
{
    const char *error = NULL;
    struct list_pattern *p = list_pattern_new(pattern, delim, &error);
    assert_non_null(p);
    bool r = list_pattern_match(p, name);
    list_pattern_free(p);
    return r;
}

static bool list_children(const char *pattern, const char *name, char delim)
{
    const char *error = NULL;
    struct list_pattern *p = list_pattern_new(pattern, delim, &error);
    assert_non_null(p);
    bool r = list_pattern_match_children(p, name);
    list_pattern_free(p);
    return r;
}

static void test_list_combine(void **state)
{
    (void)state;
    /* §6.3.8's table of reference and mailbox name */
    static const struct {
        const char *ref, *pattern, *want;
    } cases[] = {
        {"~smith/Mail/", "foo.*", "~smith/Mail/foo.*"},
        {"archive/", "%", "archive/%"},
        {"#news.", "comp.mail.*", "#news.comp.mail.*"},
        {"~smith/Mail/", "/usr/doc/foo", "/usr/doc/foo"},
        {"", "INBOX", "INBOX"},
        {"", "", ""},
        {"Work", "%", "Work%"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = list_pattern_combine(cases[i].ref, cases[i].pattern, '/');
        assert_string_equal(s, cases[i].want);
        free(s);
    }
    char *s = list_pattern_combine("a.", ".b", '.');
    assert_string_equal(s, ".b");
    free(s);
    s = list_pattern_combine("a/", "/b", '\0');
    assert_string_equal(s, "a//b");
    free(s);
}

static void test_list_match(void **state)
{
    (void)state;
    /* "*" matches zero or more characters, "%" the same but not the delimiter */
    assert_true(list_match("*", "a", '/'));
    assert_true(list_match("*", "a/b/c", '/'));
    assert_true(list_match("*", "", '/'));
    assert_true(list_match("%", "a", '/'));
    assert_false(list_match("%", "a/b", '/'));
    assert_true(list_match("a/%", "a/b", '/'));
    assert_false(list_match("a/%", "a/b/c", '/'));
    assert_false(list_match("a/%", "a", '/'));
    assert_true(list_match("a/%", "a/", '/'));
    assert_true(list_match("a*", "a/b/c", '/'));
    assert_true(list_match("%/%", "x/y", '/'));
    assert_false(list_match("%/%", "x/y/z", '/'));
    assert_true(list_match("*/c", "a/b/c", '/'));
    assert_true(list_match("a%c", "abbbc", '/'));
    assert_false(list_match("a%c", "ab/bc", '/'));
    assert_true(list_match("Sent", "Sent", '/'));
    assert_false(list_match("Sent", "sent", '/'));
    assert_false(list_match("Sent", "Sent/x", '/'));
    assert_false(list_match("Sent", "Sen", '/'));
    assert_true(list_match("", "", '/'));
    assert_false(list_match("", "a", '/'));
    /* runs of wildcards: "%*" and "*%" are "*", "%%" is "%" */
    assert_true(list_match("%*", "a/b", '/'));
    assert_true(list_match("*%", "a/b", '/'));
    assert_false(list_match("%%", "a/b", '/'));
    assert_true(list_match("a%%%b", "axyb", '/'));
    /* a flat namespace: "%" is "*" */
    assert_true(list_match("%", "a/b", '\0'));
    /* 8-bit names are bytes */
    assert_true(list_match("caf%", "caf\xc3\xa9", '/'));
    assert_true(list_match("caf\xc3\xa9", "caf\xc3\xa9", '/'));
    assert_false(list_match("caf\xc3\x89", "caf\xc3\xa9", '/'));
    /* §5.1: the INBOX level matches in any case, other names do not */
    assert_true(list_match("inbox", "INBOX", '/'));
    assert_true(list_match("Inbox/%", "INBOX/Sub", '/'));
    assert_false(list_match("Inbox/sub", "INBOX/Sub", '/'));
    assert_true(list_match("in%", "INBOX", '/'));
    assert_false(list_match("inbox*", "INBOXES", '/'));
    assert_true(list_match("INBOX*", "INBOXES", '/'));
    assert_true(list_match("inbox.%", "INBOX.x", '.'));
    assert_false(list_match("inbox.%", "INBOX.x", '/'));

    /* positions wider than one 64-bit word, and more than four words */
    char pattern[300], name[300];
    memset(pattern, 'a', 299);
    pattern[299] = '\0';
    pattern[150] = '%';
    memset(name, 'a', 299);
    name[299] = '\0';
    assert_true(list_match(pattern, name, '/'));
    name[200] = 'b';
    assert_false(list_match(pattern, name, '/'));
    name[200] = 'a';
    name[150] = '/';
    assert_false(list_match(pattern, name, '/'));
    pattern[150] = '*';
    assert_true(list_match(pattern, name, '/'));

    /* no exponential backtracking: *a*a*a...*b against a long run of a */
    char evil[LIST_PATTERN_MAX + 1];
    size_t n = 0;
    while (n + 2 < LIST_PATTERN_MAX - 2) {
        evil[n++] = '*';
        evil[n++] = 'a';
    }
    evil[n++] = '*';
    evil[n++] = 'b';
    evil[n] = '\0';
    char *long_name = malloc(100001);
    assert_non_null(long_name);
    memset(long_name, 'a', 100000);
    long_name[100000] = '\0';
    assert_false(list_match(evil, long_name, '/'));
    long_name[99999] = 'b';
    assert_true(list_match(evil, long_name, '/'));
    free(long_name);
    assert_false(list_match("%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%b",
                            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", '/'));

    /* the length limit */
    char too_long[LIST_PATTERN_MAX + 2];
    memset(too_long, '*', LIST_PATTERN_MAX + 1);
    too_long[LIST_PATTERN_MAX + 1] = '\0';
    const char *error = NULL;
    assert_null(list_pattern_new(too_long, '/', &error));
    assert_string_equal(error, "Mailbox pattern too long");
    too_long[LIST_PATTERN_MAX] = '\0';
    struct list_pattern *p = list_pattern_new(too_long, '/', &error);
    assert_non_null(p);
    assert_true(list_pattern_match(p, "x/y"));
    list_pattern_free(p);
    list_pattern_free(NULL);
}

static void test_list_children(void **state)
{
    (void)state;
    /* could something below this name match? (worth walking into) */
    assert_true(list_children("a/%", "a", '/'));
    assert_false(list_children("a/%", "b", '/'));
    assert_false(list_children("a/%", "a/b", '/'));
    assert_false(list_children("%", "a", '/'));
    assert_true(list_children("*", "a", '/'));
    assert_true(list_children("a*", "a", '/'));
    assert_true(list_children("%/x", "anything", '/'));
    assert_true(list_children("inbox/%", "INBOX", '/'));
    assert_false(list_children("*", "a", '\0')); /* a flat namespace has no children */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seqset_grammar),
        cmocka_unit_test(test_seqset_star),
        cmocka_unit_test(test_seqset_errors),
        cmocka_unit_test(test_seqset_limits),
        cmocka_unit_test(test_seqset_add_iterate),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_store_errors),
        cmocka_unit_test(test_flag_names),
        cmocka_unit_test(test_datetime),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_append_errors),
        cmocka_unit_test(test_fetch_macros_and_simple),
        cmocka_unit_test(test_fetch_sections),
        cmocka_unit_test(test_fetch_sets_seen),
        cmocka_unit_test(test_fetch_modifiers),
        cmocka_unit_test(test_fetch_errors),
        cmocka_unit_test(test_fetch_limits),
        cmocka_unit_test(test_fetch_text),
        cmocka_unit_test(test_search_tree),
        cmocka_unit_test(test_search_charset_and_return),
        cmocka_unit_test(test_search_errors),
        cmocka_unit_test(test_search_depth),
        cmocka_unit_test(test_search_eval),
        cmocka_unit_test(test_search_strings),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_enable),
        cmocka_unit_test(test_mutf7),
        cmocka_unit_test(test_mailbox_names),
        cmocka_unit_test(test_list_combine),
        cmocka_unit_test(test_list_match),
        cmocka_unit_test(test_list_children),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
