/* libFuzzer target: POP3 command lines (pop3_parse_line), whole input and line by line, and
 * the message numbers of their arguments (pop3_parse_numbers). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/pop3.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant violated: %s\n", what);
        abort();
    }
}

/* The numbers are the digit runs of an argument text made only of digits and spaces. */
static void numbers(const char *args, size_t len)
{
    uint64_t n[3];
    const char *error = NULL;
    int count = pop3_parse_numbers(args, len, n, 0, 3, &error);
    size_t runs = 0, other = 0;
    for (size_t i = 0; i < len; i++) {
        bool digit = args[i] >= '0' && args[i] <= '9';
        if (digit && (i == 0 || args[i - 1] == ' '))
            runs++;
        other += !digit && args[i] != ' ';
    }
    if (count < 0) {
        check(error != NULL, "numbers refused without a message");
        check(other > 0 || runs > 3, "digits and spaces refused");
        return;
    }
    check(other == 0 && (size_t)count == runs, "numbers not the digit runs");
    for (int i = 0; i < count; i++) {
        /* small values read back exactly; the rest saturate */
        char text[32];
        snprintf(text, sizeof(text), "%llu", (unsigned long long)n[i]);
        check(n[i] == UINT64_MAX || memmem(args, len, text, strlen(text)) != NULL,
              "number not in the text");
    }
}

static void parse(const char *line, size_t len)
{
    struct pop3_command cmd;
    const char *error = NULL;
    if (!pop3_parse_line(line, len, &cmd, &error)) {
        check(error != NULL, "error without message");
        return;
    }
    size_t k = strlen(cmd.keyword);
    check(k >= 1 && k <= POP3_MAX_KEYWORD, "keyword length");
    for (size_t i = 0; i < k; i++)
        check(cmd.keyword[i] >= 'A' && cmd.keyword[i] <= 'Z', "keyword not upper-case letters");
    numbers(cmd.args, cmd.args_len);
    if (cmd.args_len == 0)
        return;
    /* arguments are the rest of the line after one space, without control characters */
    check(cmd.args == line + k + 1 && line[k] == ' ', "arguments not after one space");
    check(k + 1 + cmd.args_len == len, "arguments not up to the end of the line");
    for (size_t i = 0; i < cmd.args_len; i++) {
        unsigned char c = (unsigned char)cmd.args[i];
        check(c >= 0x20 && c != 0x7f, "control character in arguments");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy: ASan then catches any read past the line */
    char *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    parse(copy, size);
    /* the session splits at LF and drops a CR before it */
    size_t start = 0;
    for (size_t i = 0; i < size; i++) {
        if (copy[i] != '\n')
            continue;
        size_t n = i - start;
        if (n > 0 && copy[start + n - 1] == '\r')
            n--;
        parse(copy + start, n);
        start = i + 1;
    }
    free(copy);
    return 0;
}
