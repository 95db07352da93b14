/* Unit tests of pop3_parse_line() (keywords, arguments and what is refused) and of
 * pop3_parse_numbers() (the message numbers of the TRANSACTION commands). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "postern/pop3.h"

static void parse_ok_n(const char *line, size_t len, const char *keyword, const char *args,
                       size_t args_len)
{
    struct pop3_command cmd;
    const char *error = NULL;
    if (!pop3_parse_line(line, len, &cmd, &error))
        fail_msg("\"%.*s\": %s", (int)len, line, error);
    assert_string_equal(cmd.keyword, keyword);
    assert_int_equal(cmd.args_len, args_len);
    assert_memory_equal(cmd.args, args, args_len);
    /* arguments point into the line itself, or are "" */
    if (args_len > 0)
        assert_true(cmd.args > line && cmd.args + args_len == line + len);
    else if (cmd.args < line || cmd.args > line + len)
        assert_string_equal(cmd.args, "");
}

#define PARSE_OK(lit, keyword, args)                                                               \
    parse_ok_n((lit), sizeof(lit) - 1, (keyword), (args), strlen(args))

static void parse_err_n(const char *line, size_t len, const char *want)
{
    struct pop3_command cmd;
    const char *error = NULL;
    if (pop3_parse_line(line, len, &cmd, &error))
        fail_msg("\"%.*s\" accepted as %s, expected: %s", (int)len, line, cmd.keyword, want);
    assert_non_null(error);
    assert_string_equal(error, want);
}

#define PARSE_ERR(lit, want) parse_err_n((lit), sizeof(lit) - 1, (want))

static void test_keywords_upper_cased(void **state)
{
    (void)state;
    PARSE_OK("CAPA", "CAPA", "");
    PARSE_OK("capa", "CAPA", "");
    PARSE_OK("sTlS", "STLS", "");
    PARSE_OK("quit", "QUIT", "");
    PARSE_OK("Z", "Z", "");
    /* the longest keyword that fits */
    PARSE_OK("abcdefgh", "ABCDEFGH", "");
}

static void test_arguments(void **state)
{
    (void)state;
    PARSE_OK("USER alice", "USER", "alice");
    PARSE_OK("user alice@example.com", "USER", "alice@example.com");
    /* a password may hold spaces, leading and trailing ones included */
    PARSE_OK("PASS correct horse battery", "PASS", "correct horse battery");
    PARSE_OK("PASS  two leading", "PASS", " two leading");
    PARSE_OK("PASS trailing ", "PASS", "trailing ");
    PARSE_OK("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "AUTH", "PLAIN AGFsaWNlAHNlY3JldA==");
    PARSE_OK("AUTH PLAIN =", "AUTH", "PLAIN =");
    PARSE_OK("PASS p\xc3\xa4ss\x80\xff", "PASS", "p\xc3\xa4ss\x80\xff");
    PARSE_OK("RETR 1", "RETR", "1");
    /* one space and nothing after it: empty arguments */
    PARSE_OK("USER ", "USER", "");
}

static void test_empty(void **state)
{
    (void)state;
    PARSE_ERR("", "Empty command");
    PARSE_ERR(" USER alice", "Empty command");
    PARSE_ERR(" ", "Empty command");
}

static void test_keyword_too_long(void **state)
{
    (void)state;
    PARSE_ERR("ABCDEFGHI", "Unknown command");
    PARSE_ERR("AUTHENTICATE PLAIN", "Unknown command");
}

static void test_keyword_not_letters(void **state)
{
    (void)state;
    PARSE_ERR("US3R alice", "Invalid command");
    PARSE_ERR("USER\talice", "Invalid command");
    PARSE_ERR("USER\r", "Invalid command");
    PARSE_ERR("X-FOO", "Invalid command");
    PARSE_ERR("\xc3\x9cSER a", "Invalid command");
    PARSE_ERR("US\0ER", "Invalid command");
    PARSE_ERR("[CAPA]", "Invalid command");
    /* which problem is seen first depends on where it is */
    PARSE_ERR("ABCDEFGH1", "Invalid command");
}

static void test_control_characters_in_arguments(void **state)
{
    (void)state;
    PARSE_ERR("PASS a\tb", "Control character in command");
    PARSE_ERR("PASS secret\r", "Control character in command");
    PARSE_ERR("PASS secret\n", "Control character in command");
    PARSE_ERR("PASS se\0cret", "Control character in command");
    PARSE_ERR("PASS \x1b[31m", "Control character in command");
    PARSE_ERR("PASS del\x7f", "Control character in command");
}

/* Only len bytes are read: the line need not be NUL-terminated, and what follows is ignored. */
static void test_length_bounds(void **state)
{
    (void)state;
    const char buf[] = "USER bob\r\nPASS x";
    parse_ok_n(buf, 8, "USER", "bob", 3);
    parse_ok_n(buf, 4, "USER", "", 0);
    char exact[4] = {'N', 'O', 'O', 'P'};
    parse_ok_n(exact, sizeof(exact), "NOOP", "", 0);
}

static int numbers(const char *args, uint64_t *out, int min, int max, const char **error)
{
    *error = NULL;
    return pop3_parse_numbers(args, strlen(args), out, min, max, error);
}

static void test_numbers(void **state)
{
    (void)state;
    uint64_t n[2] = {0, 0};
    const char *error;
    assert_int_equal(numbers("", n, 0, 1, &error), 0);
    assert_int_equal(numbers("1", n, 0, 1, &error), 1);
    assert_int_equal(n[0], 1);
    assert_int_equal(numbers("0", n, 1, 1, &error), 1); /* 0 parses; no message has it */
    assert_int_equal(n[0], 0);
    assert_int_equal(numbers("4294967296", n, 1, 1, &error), 1);
    assert_true(n[0] == 4294967296ULL);
    assert_int_equal(numbers("007", n, 1, 1, &error), 1);
    assert_int_equal(n[0], 7);
    assert_int_equal(numbers("12 0", n, 2, 2, &error), 2);
    assert_int_equal(n[0], 12);
    assert_int_equal(n[1], 0);
    /* extra spaces between and around are tolerated */
    assert_int_equal(numbers("  3   5  ", n, 2, 2, &error), 2);
    assert_int_equal(n[0], 3);
    assert_int_equal(n[1], 5);
    assert_int_equal(numbers("   ", n, 0, 1, &error), 0);
    /* too large for 64 bits saturates: "all lines" for TOP, no such message elsewhere */
    assert_int_equal(numbers("18446744073709551615", n, 1, 1, &error), 1);
    assert_true(n[0] == UINT64_MAX);
    assert_int_equal(numbers("18446744073709551616", n, 1, 1, &error), 1);
    assert_true(n[0] == UINT64_MAX);
    assert_int_equal(numbers("99999999999999999999999999999999 1", n, 2, 2, &error), 2);
    assert_true(n[0] == UINT64_MAX);
    assert_int_equal(n[1], 1);
}

static void test_numbers_refused(void **state)
{
    (void)state;
    uint64_t n[2];
    const char *error;
    assert_int_equal(numbers("", n, 1, 1, &error), -1);
    assert_string_equal(error, "Missing argument");
    assert_int_equal(numbers("1", n, 2, 2, &error), -1);
    assert_string_equal(error, "Missing argument");
    assert_int_equal(numbers("1 2", n, 0, 1, &error), -1);
    assert_string_equal(error, "Too many arguments");
    assert_int_equal(numbers("1", n, 0, 0, &error), -1);
    assert_string_equal(error, "Too many arguments");
    const char *bad[] = {"x", "-1", "+1", "1x", "1.5", "0x10", "1,2", "\xd9\xa1", "1 -2", "1e3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(numbers(bad[i], n, 0, 2, &error), -1);
        assert_string_equal(error, "Invalid number");
    }
    /* only len bytes are read */
    assert_int_equal(pop3_parse_numbers("12x", 2, n, 1, 1, &error), 1);
    assert_int_equal(n[0], 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keywords_upper_cased),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_keyword_too_long),
        cmocka_unit_test(test_keyword_not_letters),
        cmocka_unit_test(test_control_characters_in_arguments),
        cmocka_unit_test(test_length_bounds),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_numbers_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
