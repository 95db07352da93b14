/* POP3 (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 SASL): parsing and sessions. */
#ifndef POSTERN_POP3_H
#define POSTERN_POP3_H

#include <stdbool.h>
#include <stddef.h>

#include "postern/conn.h"

extern const struct protocol_ops pop3_protocol;

#define POP3_MAX_KEYWORD 8

struct pop3_command {
    char keyword[POP3_MAX_KEYWORD + 1]; /* upper-cased */
    const char *args;                   /* points into the line; "" when none */
    size_t args_len;
};

/* Parses one line without its CRLF. Keywords are letters only; arguments follow one space
 * and may not contain control characters. */
bool pop3_parse_line(const char *line, size_t len, struct pop3_command *cmd, const char **error);

#endif
