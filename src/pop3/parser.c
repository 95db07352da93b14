/* POP3 command lines: "KEYWORD [SP arguments]" (RFC 1939 §3, RFC 2449 §3), and the numeric
 * arguments of the TRANSACTION commands. */
#include <stdint.h>
#include <string.h>

#include "postern/pop3.h"

bool pop3_parse_line(const char *line, size_t len, struct pop3_command *cmd, const char **error)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->args = "";
    size_t k = 0;
    while (k < len && line[k] != ' ') {
        char c = line[k];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
            *error = "Invalid command";
            return false;
        }
        if (k == POP3_MAX_KEYWORD) {
            *error = "Unknown command";
            return false;
        }
        cmd->keyword[k++] = (char)(c & ~0x20);
    }
    if (k == 0) {
        *error = "Empty command";
        return false;
    }
    cmd->keyword[k] = '\0';
    if (k == len)
        return true;
    const char *args = line + k + 1;
    size_t alen = len - k - 1;
    for (size_t i = 0; i < alen; i++) {
        unsigned char c = (unsigned char)args[i];
        if (c < 0x20 || c == 0x7f) {
            *error = "Control character in command";
            return false;
        }
    }
    cmd->args = args;
    cmd->args_len = alen;
    return true;
}

int pop3_parse_numbers(const char *args, size_t len, uint64_t *numbers, int min, int max,
                       const char **error)
{
    int count = 0;
    size_t i = 0;
    for (;;) {
        while (i < len && args[i] == ' ')
            i++;
        if (i == len)
            break;
        if (count == max) {
            *error = "Too many arguments";
            return -1;
        }
        uint64_t value = 0;
        size_t start = i;
        while (i < len && args[i] >= '0' && args[i] <= '9') {
            unsigned digit = (unsigned)(args[i] - '0');
            value = value > (UINT64_MAX - digit) / 10 ? UINT64_MAX : value * 10 + digit;
            i++;
        }
        if (i == start || (i < len && args[i] != ' ')) {
            *error = "Invalid number";
            return -1;
        }
        numbers[count++] = value;
    }
    if (count < min) {
        *error = "Missing argument";
        return -1;
    }
    return count;
}
