/* POP3 (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 SASL): parsing, the maildrop and
 * sessions. */
#ifndef POSTERN_POP3_H
#define POSTERN_POP3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "postern/conn.h"
#include "postern/store.h"

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

/* The numeric arguments of LIST, RETR, DELE, TOP and UIDL (RFC 1939 §5, §7): between `min`
 * and `max` decimal numbers separated by spaces (extra spaces are tolerated). A number too
 * large for 64 bits is UINT64_MAX, which is no message and "all lines" for TOP. Returns how
 * many were read, or -1 (with *error set) when the arguments are not such a list. */
int pop3_parse_numbers(const char *args, size_t len, uint64_t *numbers, int min, int max,
                       const char **error);

/* --- Message files ---------------------------------------------------------------------- */

#define POP3_ALL_LINES UINT64_MAX

/* What RETR or TOP sends of a message file: its first `length` bytes. Unless the last of
 * them is LF, the sender ends the last line (CR LF, or LF after a CR) before the ".". */
struct pop3_extent {
    uint64_t length;
    int last_byte; /* -1: nothing */
};

/* RETR (body_lines POP3_ALL_LINES): the whole file. TOP (RFC 1939 §7): the header, the blank
 * line after it and at most body_lines lines of the body; a message without a blank line is
 * all header. Lines end at LF (CRLF and bare LF files alike). Reads fd with pread(), a chunk
 * at a time; false (errno set) when the file cannot be read. */
bool pop3_message_extent(int fd, uint64_t body_lines, struct pop3_extent *extent);

/* --- The maildrop (RFC 1939 §3): INBOX of one account, locked for one POP3 session -------- */

struct pop3_message {
    uint32_t uid;
    uint64_t size; /* octets as RETR sends them before dot-stuffing: CRLF line ends */
    bool seen;
    bool deleted; /* marked by DELE in this session */
};

/* Every call blocks: run them on the store workers. One thread at a time uses a maildrop. */
struct pop3_maildrop {
    struct store_account *account;
    struct store_pop3_lock *lock;
    struct store_mailbox *inbox;
    uint32_t uidvalidity;
    uint32_t count; /* messages in the listing, 1..count in POP3 numbering */
    struct pop3_message *messages;
};

/* Expands root_template with key (store_expand_root), opens the account, takes the POP3 lock
 * and opens INBOX; the listing is the INBOX as it is now. *in_use is set when another POP3
 * session holds the lock (STORE_BUSY from the lock itself, RFC 2449 [IN-USE]). */
enum store_status pop3_maildrop_open(const char *root_template, const char *key,
                                     struct pop3_maildrop **out, bool *in_use);
/* Releases the lock and closes everything; deletes nothing. NULL is fine. */
void pop3_maildrop_close(struct pop3_maildrop *drop);

/* An fd on message n (1-based) and its extent (see pop3_message_extent). mark_seen: set
 * \Seen if the message has not got it (RETR). STORE_NOT_FOUND: expunged by another
 * session meanwhile. */
enum store_status pop3_maildrop_retrieve(struct pop3_maildrop *drop, uint32_t n,
                                         uint64_t body_lines, bool mark_seen, int *fd,
                                         struct pop3_extent *extent);

/* The UPDATE state (RFC 1939 §6): expunges the messages marked deleted (as \Deleted, then
 * store_expunge of exactly those UIDs). *removed counts those now gone. Closes nothing. */
enum store_status pop3_maildrop_update(struct pop3_maildrop *drop, uint32_t *removed);

/* The unique-id of message n (RFC 1939 §7 UIDL): "<uidvalidity>.<uid>" in hex, so it is the
 * same in every session and after restarts, and changes when the mailbox is recreated. */
#define POP3_UIDL_MAX 24
void pop3_uidl(const struct pop3_maildrop *drop, uint32_t n, char *buf, size_t size);

#endif
