/* libFuzzer target: POP3 command lines (pop3_parse_line), whole input and line by line. */
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
