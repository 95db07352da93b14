/* Unit tests of imap_parse_command(): tags, names, every argument type, and every error. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/imap.h"

static void parse_ok_n(const char *buf, size_t len, struct imap_command *cmd)
{
    const char *error = NULL;
    if (!imap_parse_command(buf, len, cmd, &error))
        fail_msg("\"%.*s\": %s", (int)len, buf, error);
}

#define PARSE_OK(lit, cmd) parse_ok_n((lit), sizeof(lit) - 1, (cmd))

/* The command must be refused with exactly `want_error`; `want_tag` is the tag the parser
 * still reports, or NULL when the tag itself was invalid. */
static void parse_err_n(const char *buf, size_t len, const char *want_error, const char *want_tag)
{
    struct imap_command cmd;
    const char *error = NULL;
    if (imap_parse_command(buf, len, &cmd, &error)) {
        imap_command_free(&cmd);
        fail_msg("\"%.*s\" accepted, expected: %s", (int)len, buf, want_error);
    }
    assert_non_null(error);
    if (strcmp(error, want_error) != 0)
        fail_msg("\"%.*s\": error \"%s\", expected \"%s\"", (int)len, buf, error, want_error);
    if (want_tag == NULL)
        assert_null(cmd.tag);
    else
        assert_string_equal(cmd.tag, want_tag);
    imap_command_free(&cmd);
    assert_null(cmd.tag);
    assert_null(cmd.args);
}

#define PARSE_ERR(lit, error, tag) parse_err_n((lit), sizeof(lit) - 1, (error), (tag))

static void assert_arg(const struct imap_arg *a, enum imap_arg_type type, const char *str)
{
    assert_int_equal(a->type, type);
    assert_string_equal(a->str, str);
    assert_int_equal(a->len, strlen(str));
}

static void test_tag_name_atoms(void **state)
{
    (void)state;
    struct imap_command cmd;
    PARSE_OK("a001 login user secret\r\n", &cmd);
    assert_string_equal(cmd.tag, "a001");
    /* the name is kept as sent */
    assert_string_equal(cmd.name, "login");
    assert_int_equal(cmd.n_args, 2);
    assert_arg(&cmd.args[0], IMAP_ARG_ATOM, "user");
    assert_arg(&cmd.args[1], IMAP_ARG_ATOM, "secret");
    assert_null(cmd.args[0].list);
    imap_command_free(&cmd);
    assert_null(cmd.tag);
    assert_null(cmd.name);
}

static void test_no_arguments(void **state)
{
    (void)state;
    struct imap_command cmd;
    PARSE_OK("A.1-x_y] CAPABILITY\r\n", &cmd);
    assert_string_equal(cmd.tag, "A.1-x_y]");
    assert_string_equal(cmd.name, "CAPABILITY");
    assert_int_equal(cmd.n_args, 0);
    imap_command_free(&cmd);
    /* a bare LF ends a line as well */
    PARSE_OK("b NOOP\n", &cmd);
    assert_string_equal(cmd.name, "NOOP");
    assert_int_equal(cmd.n_args, 0);
    imap_command_free(&cmd);
}

static void test_quoted_strings(void **state)
{
    (void)state;
    struct imap_command cmd;
    PARSE_OK("a LOGIN \"us\\\"er\" \"pa\\\\ss word\" \"\" \"caf\xc3\xa9\"\r\n", &cmd);
    assert_int_equal(cmd.n_args, 4);
    assert_arg(&cmd.args[0], IMAP_ARG_QUOTED, "us\"er");
    assert_arg(&cmd.args[1], IMAP_ARG_QUOTED, "pa\\ss word");
    assert_arg(&cmd.args[2], IMAP_ARG_QUOTED, "");
    assert_arg(&cmd.args[3], IMAP_ARG_QUOTED, "caf\xc3\xa9");
    imap_command_free(&cmd);
    /* a long quoted string grows its buffer */
    char buf[600];
    char want[501];
    memset(want, 'q', 500);
    want[500] = '\0';
    int n = snprintf(buf, sizeof(buf), "a X \"%s\"\r\n", want);
    parse_ok_n(buf, (size_t)n, &cmd);
    assert_arg(&cmd.args[0], IMAP_ARG_QUOTED, want);
    imap_command_free(&cmd);
}

static void test_literals(void **state)
{
    (void)state;
    struct imap_command cmd;
    PARSE_OK("a LOGIN {4}\r\nuser {8+}\r\np\r\n\"{1}\x80 {0}\r\n\r\n", &cmd);
    assert_string_equal(cmd.name, "LOGIN");
    assert_int_equal(cmd.n_args, 3);
    assert_arg(&cmd.args[0], IMAP_ARG_LITERAL, "user");
    /* literal data is taken as it is: line ends, quotes, braces, 8-bit */
    assert_arg(&cmd.args[1], IMAP_ARG_LITERAL, "p\r\n\"{1}\x80");
    assert_arg(&cmd.args[2], IMAP_ARG_LITERAL, "");
    imap_command_free(&cmd);
    /* LF-only line ends around literals */
    PARSE_OK("a LOGIN {1}\nu {1}\np\n", &cmd);
    assert_arg(&cmd.args[0], IMAP_ARG_LITERAL, "u");
    assert_arg(&cmd.args[1], IMAP_ARG_LITERAL, "p");
    imap_command_free(&cmd);
}

static void test_nil(void **state)
{
    (void)state;
    struct imap_command cmd;
    PARSE_OK("a ID NIL nil Nil NILS \"NIL\" {3}\r\nNIL\r\n", &cmd);
    assert_int_equal(cmd.n_args, 6);
    assert_arg(&cmd.args[0], IMAP_ARG_NIL, "NIL");
    assert_arg(&cmd.args[1], IMAP_ARG_NIL, "nil");
    assert_arg(&cmd.args[2], IMAP_ARG_NIL, "Nil");
    assert_arg(&cmd.args[3], IMAP_ARG_ATOM, "NILS");
    /* a string that says NIL is a string */
    assert_arg(&cmd.args[4], IMAP_ARG_QUOTED, "NIL");
    assert_arg(&cmd.args[5], IMAP_ARG_LITERAL, "NIL");
    imap_command_free(&cmd);
}

static void test_lists(void **state)
{
    (void)state;
    struct imap_command cmd;
    PARSE_OK("a ID (\"name\" \"mutt\" \"os\" NIL)\r\n", &cmd);
    assert_int_equal(cmd.n_args, 1);
    const struct imap_arg *l = &cmd.args[0];
    assert_int_equal(l->type, IMAP_ARG_LIST);
    assert_null(l->str);
    assert_int_equal(l->list_len, 4);
    assert_arg(&l->list[0], IMAP_ARG_QUOTED, "name");
    assert_arg(&l->list[1], IMAP_ARG_QUOTED, "mutt");
    assert_arg(&l->list[2], IMAP_ARG_QUOTED, "os");
    assert_arg(&l->list[3], IMAP_ARG_NIL, "NIL");
    imap_command_free(&cmd);

    PARSE_OK("a X (1 (2 (3)) () {1}\r\nz) end\r\n", &cmd);
    assert_int_equal(cmd.n_args, 2);
    l = &cmd.args[0];
    assert_int_equal(l->type, IMAP_ARG_LIST);
    assert_int_equal(l->list_len, 4);
    assert_arg(&l->list[0], IMAP_ARG_ATOM, "1");
    const struct imap_arg *inner = &l->list[1];
    assert_int_equal(inner->type, IMAP_ARG_LIST);
    assert_int_equal(inner->list_len, 2);
    assert_arg(&inner->list[0], IMAP_ARG_ATOM, "2");
    assert_int_equal(inner->list[1].type, IMAP_ARG_LIST);
    assert_int_equal(inner->list[1].list_len, 1);
    assert_arg(&inner->list[1].list[0], IMAP_ARG_ATOM, "3");
    /* the empty list */
    assert_int_equal(l->list[2].type, IMAP_ARG_LIST);
    assert_int_equal(l->list[2].list_len, 0);
    assert_arg(&l->list[3], IMAP_ARG_LITERAL, "z");
    assert_arg(&cmd.args[1], IMAP_ARG_ATOM, "end");
    imap_command_free(&cmd);
}

static void test_fetch_section_is_one_atom(void **state)
{
    (void)state;
    struct imap_command cmd;
    PARSE_OK("a UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100> BODY[])\r\n", &cmd);
    assert_string_equal(cmd.name, "UID");
    assert_int_equal(cmd.n_args, 3);
    assert_arg(&cmd.args[0], IMAP_ARG_ATOM, "FETCH");
    assert_arg(&cmd.args[1], IMAP_ARG_ATOM, "1:*");
    const struct imap_arg *l = &cmd.args[2];
    assert_int_equal(l->type, IMAP_ARG_LIST);
    assert_int_equal(l->list_len, 3);
    assert_arg(&l->list[0], IMAP_ARG_ATOM, "FLAGS");
    assert_arg(&l->list[1], IMAP_ARG_ATOM, "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>");
    assert_arg(&l->list[2], IMAP_ARG_ATOM, "BODY[]");
    imap_command_free(&cmd);

    PARSE_OK("a FETCH 1,3:5,7:* BODY[HEADER.FIELDS.NOT (X-A X-B)]\r\n", &cmd);
    assert_int_equal(cmd.n_args, 2);
    assert_arg(&cmd.args[0], IMAP_ARG_ATOM, "1,3:5,7:*");
    assert_arg(&cmd.args[1], IMAP_ARG_ATOM, "BODY[HEADER.FIELDS.NOT (X-A X-B)]");
    imap_command_free(&cmd);

    /* inside brackets only the brackets are counted; the section's own syntax, parentheses
     * included, is for the FETCH code to check */
    PARSE_OK("a FETCH 1 BODY[HEADER.FIELDS (FROM]\r\n", &cmd);
    assert_arg(&cmd.args[1], IMAP_ARG_ATOM, "BODY[HEADER.FIELDS (FROM]");
    imap_command_free(&cmd);
}

static void test_flags_and_patterns(void **state)
{
    (void)state;
    struct imap_command cmd;
    PARSE_OK("a STORE 2:4 +FLAGS.SILENT (\\Seen \\Deleted $Junk)\r\n", &cmd);
    assert_int_equal(cmd.n_args, 3);
    assert_arg(&cmd.args[0], IMAP_ARG_ATOM, "2:4");
    assert_arg(&cmd.args[1], IMAP_ARG_ATOM, "+FLAGS.SILENT");
    assert_int_equal(cmd.args[2].list_len, 3);
    assert_arg(&cmd.args[2].list[0], IMAP_ARG_ATOM, "\\Seen");
    assert_arg(&cmd.args[2].list[1], IMAP_ARG_ATOM, "\\Deleted");
    assert_arg(&cmd.args[2].list[2], IMAP_ARG_ATOM, "$Junk");
    imap_command_free(&cmd);
    PARSE_OK("a LIST \"\" INBOX.%/*\r\n", &cmd);
    assert_arg(&cmd.args[0], IMAP_ARG_QUOTED, "");
    assert_arg(&cmd.args[1], IMAP_ARG_ATOM, "INBOX.%/*");
    imap_command_free(&cmd);
}

static void test_arg_kinds(void **state)
{
    (void)state;
    struct imap_command cmd;
    PARSE_OK("a X atom \"q\" {1}\r\nl NIL ()\r\n", &cmd);
    assert_int_equal(cmd.n_args, 5);
    static const bool astring[] = {true, true, true, true, false};
    static const bool string[] = {false, true, true, false, false};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(imap_arg_is_astring(&cmd.args[i]), astring[i]);
        assert_int_equal(imap_arg_is_string(&cmd.args[i]), string[i]);
    }
    imap_command_free(&cmd);
}

static void test_nesting_limit(void **state)
{
    (void)state;
    char buf[256];
    struct imap_command cmd;
    /* IMAP_MAX_LIST_DEPTH levels are fine */
    int n = 0;
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, "a X ");
    for (int i = 0; i < IMAP_MAX_LIST_DEPTH; i++)
        buf[n++] = '(';
    for (int i = 0; i < IMAP_MAX_LIST_DEPTH; i++)
        buf[n++] = ')';
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, "\r\n");
    parse_ok_n(buf, (size_t)n, &cmd);
    const struct imap_arg *a = &cmd.args[0];
    for (int d = 1; d < IMAP_MAX_LIST_DEPTH; d++) {
        assert_int_equal(a->type, IMAP_ARG_LIST);
        assert_int_equal(a->list_len, 1);
        a = &a->list[0];
    }
    assert_int_equal(a->list_len, 0);
    imap_command_free(&cmd);
    /* one more is refused */
    n = snprintf(buf, sizeof(buf), "a X ");
    for (int i = 0; i <= IMAP_MAX_LIST_DEPTH; i++)
        buf[n++] = '(';
    for (int i = 0; i <= IMAP_MAX_LIST_DEPTH; i++)
        buf[n++] = ')';
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, "\r\n");
    parse_err_n(buf, (size_t)n, "Too deeply nested lists", "a");
    /* brackets in atoms have the same limit */
    n = snprintf(buf, sizeof(buf), "a FETCH 1 BODY");
    for (int i = 0; i <= IMAP_MAX_LIST_DEPTH; i++)
        buf[n++] = '[';
    for (int i = 0; i <= IMAP_MAX_LIST_DEPTH; i++)
        buf[n++] = ']';
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, "\r\n");
    parse_err_n(buf, (size_t)n, "Too deeply nested brackets", "a");
}

static void test_argument_limit(void **state)
{
    (void)state;
    size_t cap = 2 * (IMAP_MAX_ARGS + 1) + 16;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t n = (size_t)snprintf(buf, cap, "a X");
    for (int i = 0; i < IMAP_MAX_ARGS; i++) {
        buf[n++] = ' ';
        buf[n++] = 'x';
    }
    memcpy(buf + n, "\r\n", 2);
    struct imap_command cmd;
    parse_ok_n(buf, n + 2, &cmd);
    assert_int_equal(cmd.n_args, IMAP_MAX_ARGS);
    imap_command_free(&cmd);
    /* the limit counts arguments inside lists too */
    memcpy(buf + n, " (x)\r\n", 6);
    parse_err_n(buf, n + 6, "Too many arguments", "a");
    free(buf);
}

static void test_invalid_tags(void **state)
{
    (void)state;
    PARSE_ERR("+a NOOP\r\n", "Invalid tag", NULL);
    PARSE_ERR("a+b NOOP\r\n", "Invalid tag", NULL);
    PARSE_ERR("* NOOP\r\n", "Invalid tag", NULL);
    PARSE_ERR("a* NOOP\r\n", "Invalid tag", NULL);
    PARSE_ERR("{5} NOOP\r\n", "Invalid tag", NULL);
    PARSE_ERR("a{5} NOOP\r\n", "Invalid tag", NULL);
    PARSE_ERR("(a NOOP\r\n", "Invalid tag", NULL);
    PARSE_ERR("a%b NOOP\r\n", "Invalid tag", NULL);
    PARSE_ERR("a\"b NOOP\r\n", "Invalid tag", NULL);
    PARSE_ERR("a\\b NOOP\r\n", "Invalid tag", NULL);
    PARSE_ERR("a\x01 NOOP\r\n", "Invalid tag", NULL);
    PARSE_ERR("t\xc3\xa9 NOOP\r\n", "Invalid tag", NULL);
    PARSE_ERR(" NOOP\r\n", "Invalid tag", NULL);
    PARSE_ERR("\r\n", "Invalid tag", NULL);
    PARSE_ERR("", "Invalid tag", NULL);
}

static void test_missing_or_bad_command_name(void **state)
{
    (void)state;
    PARSE_ERR("a\r\n", "Missing command", "a");
    PARSE_ERR("a\n", "Missing command", "a");
    PARSE_ERR("a  NOOP\r\n", "Invalid command name", "a");
    PARSE_ERR("a \r\n", "Invalid command name", "a");
    PARSE_ERR("a 1NOOP\r\n", "Invalid command name", "a");
    PARSE_ERR("a NO-OP\r\n", "Invalid command name", "a");
    PARSE_ERR("a LOGIN{4}\r\nuser\r\n", "Invalid command name", "a");
    /* a bare CR is not a line end */
    PARSE_ERR("a NOOP\r\r\n", "Invalid command name", "a");
}

static void test_spaces(void **state)
{
    (void)state;
    PARSE_ERR("a LOGIN  user pass\r\n", "Unexpected space", "a");
    PARSE_ERR("a LOGIN user  pass\r\n", "Unexpected space", "a");
    PARSE_ERR("a NOOP \r\n", "Unexpected space", "a");
    PARSE_ERR("a X (a  b)\r\n", "Unexpected space", "a");
    PARSE_ERR("a X (a )\r\n", "Unexpected space", "a");
    PARSE_ERR("a X ( a)\r\n", "Expected an atom", "a");
    PARSE_ERR("a LOGIN \"u\"\"p\"\r\n", "Expected a space between arguments", "a");
    PARSE_ERR("a X (a)(b)\r\n", "Expected a space between arguments", "a");
    PARSE_ERR("a X a\tb\r\n", "Expected a space between arguments", "a");
}

static void test_quoted_errors(void **state)
{
    (void)state;
    PARSE_ERR("a LOGIN \"user\r\n", "Unterminated quoted string", "a");
    PARSE_ERR("a LOGIN \"us\ner\" x\n", "Unterminated quoted string", "a");
    PARSE_ERR("a LOGIN \"us\\er\" x\r\n", "Invalid escape in quoted string", "a");
    PARSE_ERR("a LOGIN \"user\\", "Invalid escape in quoted string", "a");
    PARSE_ERR("a LOGIN \"u\0ser\" x\r\n", "NUL in quoted string", "a");
}

static void test_literal_errors(void **state)
{
    (void)state;
    PARSE_ERR("a LOGIN {3}\r\na\0b x\r\n", "NUL in literal", "a");
    PARSE_ERR("a LOGIN {10}\r\nabc\r\n", "Literal data missing", "a");
    PARSE_ERR("a LOGIN {12345678901}\r\nabc\r\n", "Literal size too large", "a");
    PARSE_ERR("a LOGIN {}\r\n\r\n", "Invalid literal size", "a");
    PARSE_ERR("a LOGIN {+}\r\n\r\n", "Invalid literal size", "a");
    PARSE_ERR("a LOGIN {5x}\r\nhello\r\n", "Invalid literal", "a");
    PARSE_ERR("a LOGIN {5\r\nhello\r\n", "Invalid literal", "a");
    PARSE_ERR("a LOGIN {1} x\r\ny\r\n", "Literal must end its line", "a");
    PARSE_ERR("a LOGIN {1}\rx\r\n", "Literal must end its line", "a");
    PARSE_ERR("a LOGIN {1}", "Literal must end its line", "a");
}

static void test_paren_and_bracket_errors(void **state)
{
    (void)state;
    /* inside a list a line end is just a missing separator: the list goes on after it */
    PARSE_ERR("a X (a b\r\n", "Expected a space between arguments", "a");
    PARSE_ERR("a X (a (b)\r\n", "Expected a space between arguments", "a");
    PARSE_ERR("a X (a b", "Missing ')'", "a");
    PARSE_ERR("a X (", "Missing ')'", "a");
    PARSE_ERR("a X )\r\n", "Unexpected ')'", "a");
    PARSE_ERR("a X a)\r\n", "Expected a space between arguments", "a");
    PARSE_ERR("a FETCH 1 BODY[HEADER\r\n", "Unbalanced brackets", "a");
    PARSE_ERR("a FETCH 1 (BODY[TEXT)\r\n", "Unbalanced brackets", "a");
    PARSE_ERR("a FETCH 1 BODY[\"x\"]\r\n", "Unbalanced brackets", "a");
}

static void test_line_end_errors(void **state)
{
    (void)state;
    PARSE_ERR("a NOOP\r\nb NOOP\r\n", "Data after the end of the command", "a");
    PARSE_ERR("a LOGIN u p\r\n\r\n", "Data after the end of the command", "a");
    PARSE_ERR("a LOGIN u p", "Missing line end", "a");
    PARSE_ERR("a NOOP", "Invalid command name", "a");
    PARSE_ERR("a X (a)", "Missing line end", "a");
    /* a CR that is not followed by LF is not a line end */
    PARSE_ERR("a LOGIN u p\r", "Expected a space between arguments", "a");
    PARSE_ERR("a LOGIN u\x01p\r\n", "Expected a space between arguments", "a");
}

/* Partly built argument trees are freed on every error path (ASan's leak check sees it). */
static void test_errors_deep_inside_free_everything(void **state)
{
    (void)state;
    PARSE_ERR("a X (1 (2 \"three\" {4}\r\nfour (5 \"six\r\n", "Unterminated quoted string", "a");
    PARSE_ERR("a X (1 (2 (3 {4}\r\nfo\0r)))\r\n", "NUL in literal", "a");
    PARSE_ERR("a X (x BODY[HEADER (A)] (y)) ((z) \"w\\q\")\r\n", "Invalid escape in quoted string",
              "a");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tag_name_atoms),
        cmocka_unit_test(test_no_arguments),
        cmocka_unit_test(test_quoted_strings),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_nil),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_fetch_section_is_one_atom),
        cmocka_unit_test(test_flags_and_patterns),
        cmocka_unit_test(test_arg_kinds),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_argument_limit),
        cmocka_unit_test(test_invalid_tags),
        cmocka_unit_test(test_missing_or_bad_command_name),
        cmocka_unit_test(test_spaces),
        cmocka_unit_test(test_quoted_errors),
        cmocka_unit_test(test_literal_errors),
        cmocka_unit_test(test_paren_and_bracket_errors),
        cmocka_unit_test(test_line_end_errors),
        cmocka_unit_test(test_errors_deep_inside_free_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
