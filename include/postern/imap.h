/* IMAP4rev1 (RFC 3501, RFC 9051 where compatible): command assembly, parsing and sessions. */
#ifndef POSTERN_IMAP_H
#define POSTERN_IMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "postern/conn.h"

extern const struct protocol_ops imap_protocol;

/* ---- command assembly: a command line plus its literals (RFC 3501 §4.3, RFC 7888) ---- */

enum imap_read_status {
    IMAP_READ_MORE,            /* everything consumed; need more bytes */
    IMAP_READ_COMMAND,         /* a complete command is in the buffer */
    IMAP_READ_CONTINUE,        /* a synchronizing literal was announced: send "+ " */
    IMAP_READ_LINE_TOO_LONG,   /* the line exceeded the limit and was discarded to its end;
                                  `nonsync`: it announced a literal that follows anyway */
    IMAP_READ_LITERAL_TOO_BIG, /* refused literal; `nonsync` tells whether data will follow */
    /* Only with `offer_literals`: */
    IMAP_READ_LITERAL,     /* a literal of `announced` bytes is announced ({ at marker_start
                              in buf); decide with imap_reader_literal() before feeding on */
    IMAP_READ_STREAM_DATA, /* data[0..*used) is data of a streamed literal, for the caller */
};

struct imap_reader {
    char *buf;
    size_t len, cap;
    size_t line_start;    /* where the current line began in buf (after any literal) */
    size_t line_bytes;    /* command text (not literal data) in this command so far */
    size_t literal_bytes; /* literal data in this command so far */
    size_t literal_left;  /* bytes of literal data still to come */
    size_t max_line, max_literal;
    bool discarding; /* skipping to the end of an over-long line */
    char tail[32];   /* the last bytes of the line being discarded: does it announce {n+}? */
    size_t tail_len;
    bool nonsync; /* the refused literal was non-synchronizing */
    /* Streaming (APPEND after login): the caller sees each literal announcement and may take
     * its data itself instead of having it buffered with the command. */
    bool offer_literals;
    size_t announced;       /* IMAP_READ_LITERAL: the size announced */
    bool announced_nonsync; /* ... and whether it is {n+} */
    size_t marker_start;    /* ... and where its "{" is in buf */
    bool deciding;          /* IMAP_READ_LITERAL returned, imap_reader_literal() not yet called */
    bool streaming;         /* literal_left bytes go to the caller as IMAP_READ_STREAM_DATA */
};

void imap_reader_init(struct imap_reader *r, size_t max_line, size_t max_literal);
void imap_reader_free(struct imap_reader *r);
/* Start the next command (after IMAP_READ_COMMAND or an error). */
void imap_reader_reset(struct imap_reader *r);
/* Consumes bytes from data; *used says how many. Stops after each status other than MORE. */
enum imap_read_status imap_reader_feed(struct imap_reader *r, const char *data, size_t len,
                                       size_t *used);
/* After IMAP_READ_LITERAL: buffer the literal with the command (stream false; the limits apply
 * and the result is CONTINUE for {n}, MORE for {n+} or LITERAL_TOO_BIG) or hand its data to the
 * caller (stream true; CONTINUE for {n}, whose "+" the caller sends when it is ready, MORE for
 * {n+}). Data of a streamed literal never enters buf and counts against no reader limit; the
 * command text after it does. */
enum imap_read_status imap_reader_literal(struct imap_reader *r, bool stream);
/* The tag at the start of the buffered command, for error replies ("*" if none). */
void imap_reader_tag(const struct imap_reader *r, char *out, size_t outlen);

/* ---- parsing of an assembled command ---- */

enum imap_arg_type {
    IMAP_ARG_ATOM,
    IMAP_ARG_QUOTED,
    IMAP_ARG_LITERAL,
    IMAP_ARG_NIL,
    IMAP_ARG_LIST,
};

struct imap_arg {
    enum imap_arg_type type;
    char *str; /* NUL-terminated text of atoms, strings and literals; "NIL" for NIL */
    size_t len;
    struct imap_arg *list; /* IMAP_ARG_LIST */
    size_t list_len;
};

struct imap_command {
    char *tag;
    char *name; /* as sent; compare case-insensitively */
    struct imap_arg *args;
    size_t n_args;
};

#define IMAP_MAX_LIST_DEPTH 32
#define IMAP_MAX_ARGS 10000

/* Parses buf[0..len) (one command, ending in CRLF or LF, literals inline). Returns true on
 * success; otherwise *error says what is wrong and cmd->tag holds the tag if it was valid. */
bool imap_parse_command(const char *buf, size_t len, struct imap_command *cmd, const char **error);
void imap_command_free(struct imap_command *cmd);
/* An astring (atom, quoted string or literal) — what LOGIN and most commands take. */
bool imap_arg_is_astring(const struct imap_arg *a);
bool imap_arg_is_string(const struct imap_arg *a);

#endif
