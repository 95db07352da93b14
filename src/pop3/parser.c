/* POP3 command lines: "KEYWORD [SP arguments]" (RFC 1939 §3, RFC 2449 §3). */
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
