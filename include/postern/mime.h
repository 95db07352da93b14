/* IMAP message structure (RFC 3501 §7.4.2, §6.4.5): ENVELOPE, BODY, BODYSTRUCTURE, the byte
 * ranges of every section and decoded text for SEARCH, computed by streaming over a message file
 * and answered the way Dovecot 2.3 answers them (docs/mime.md lists where we differ).
 *
 * Sizes and offsets: a message file may end its lines in LF or CRLF. Ranges (struct mime_range)
 * are raw byte offsets in the file; sizes (struct mime_size) count as if every line ended in
 * CRLF, which is what IMAP reports. octets = raw length + number of LFs without a CR before
 * them; mime_message_copy() turns a raw range into the bytes IMAP sends.
 *
 * Threads: call mime_init() once (it is idempotent and thread-safe); everything else is
 * reentrant, a struct mime_message belongs to one thread at a time. */
#ifndef POSTERN_MIME_H
#define POSTERN_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Deeper multiparts and message/rfc822 parts, and parts beyond the count, are not split
 * further: their body is one opaque leaf (Dovecot's max_nested_mime_parts, max_total). */
#define MIME_MAX_DEPTH 100
#define MIME_MAX_PARTS 10000
/* Header values kept for ENVELOPE and BODYSTRUCTURE are cut at this many bytes. */
#define MIME_MAX_HEADER_VALUE ((size_t)256 * 1024)

enum mime_error {
    MIME_OK = 0,
    MIME_ERR_IO,        /* the file could not be read (errno is kept) */
    MIME_ERR_NOT_FOUND, /* no such part or section */
    MIME_ERR_SINK,      /* the caller's sink refused the data */
    MIME_ERR_INIT,      /* mime_init() was not called or failed */
};
const char *mime_error_text(enum mime_error error);

/* g_mime_init() once per process. */
bool mime_init(void);

struct mime_range {
    uint64_t start, end; /* raw file offsets, [start, end) */
};

struct mime_size {
    uint64_t octets; /* CRLF-normalised */
    uint64_t lines;  /* line feeds */
};

enum mime_kind {
    MIME_KIND_LEAF,
    MIME_KIND_MULTIPART,
    MIME_KIND_MESSAGE, /* message/rfc822: its only child is the encapsulated message */
};

struct mime_part_info; /* parsed Content-* headers (and ENVELOPE of a message header) */

/* One node of the part tree, as Dovecot builds it: the root is the message (header = the
 * message header, body = the message text); the child of a message/rfc822 part is the
 * encapsulated message, whose header is that message's header. */
struct mime_part {
    enum mime_kind kind;
    unsigned depth;
    struct mime_range header; /* MIME header or message header, with its blank line if any */
    struct mime_range body;
    struct mime_size header_size, body_size;
    struct mime_part *parent, *children, *next;
    struct mime_part_info *info;
};

struct mime_message;

/* Analyse a message file (a regular file). open_fd() opens the file again through
 * /proc/self/fd: yours stays open and its offset is neither used nor moved. NULL with *error
 * (and errno) set on failure. */
struct mime_message *mime_message_open(const char *path, enum mime_error *error);
struct mime_message *mime_message_open_fd(int fd, enum mime_error *error);
/* Only the message's own header, for BODY[HEADER], BODY[HEADER.FIELDS (...)] and
 * RFC822.HEADER: reads up to the blank line. The result answers mime_message_section() for
 * the HEADER of part "" and mime_message_header_fields(); it has no parts, envelope or
 * structure, and mime_message_size() and the sizes of TEXT and the whole body are unknown. */
struct mime_message *mime_message_open_header(int fd, enum mime_error *error);
void mime_message_free(struct mime_message *msg);

const struct mime_part *mime_message_root(const struct mime_message *msg);
/* The message's own descriptor (read with pread only; do not close it). */
int mime_message_fd(const struct mime_message *msg);
/* RFC822.SIZE: the whole message, CRLF-normalised. */
uint64_t mime_message_size(const struct mime_message *msg);
/* The parenthesised IMAP strings, without the FETCH item name. They may contain literals
 * ({n}\r\n...), so use the length. Owned by msg. */
const char *mime_message_envelope(const struct mime_message *msg, size_t *len);
const char *mime_message_bodystructure(const struct mime_message *msg, size_t *len);
const char *mime_message_body(const struct mime_message *msg, size_t *len);

/* Part type as written in the message (lower-case defaults "text"/"plain" when missing),
 * a Content-Type parameter (first of that name, raw), the transfer encoding (or NULL). */
const char *mime_part_type(const struct mime_part *part);
const char *mime_part_subtype(const struct mime_part *part);
const char *mime_part_param(const struct mime_part *part, const char *name);
const char *mime_part_encoding(const struct mime_part *part);

/* RFC 3501 §6.4.5 part numbers: "" is the message, "1.2" as in BODY[1.2]. A non-multipart
 * message has only part 1 (its body); inside message/rfc822 the numbering continues in the
 * encapsulated message. NULL if there is no such part (IMAP then sends an empty string). */
const struct mime_part *mime_message_find_part(const struct mime_message *msg, const char *number);

enum mime_section_text {
    MIME_SECTION_BODY,   /* BODY[] (number "") or BODY[1.2]: the part's content */
    MIME_SECTION_HEADER, /* BODY[HEADER], BODY[2.HEADER] (2 must be message/rfc822) */
    MIME_SECTION_TEXT,   /* BODY[TEXT], BODY[2.TEXT] */
    MIME_SECTION_MIME,   /* BODY[1.2.MIME]: the part's MIME header */
};

/* The raw range and the normalised size of a section. HEADER.FIELDS uses the HEADER range
 * with mime_message_header_fields(). MIME_ERR_NOT_FOUND for a missing part, a HEADER/TEXT of a
 * part that is not message/rfc822, or MIME of the message itself. */
enum mime_error mime_message_section(const struct mime_message *msg, const char *number,
                                     enum mime_section_text text, struct mime_range *range,
                                     struct mime_size *size);

/* Receives output; false stops the copy with MIME_ERR_SINK. */
typedef bool (*mime_sink_fn)(void *ctx, const void *data, size_t len);

/* Stream the CRLF-normalised bytes [origin, origin + count) of a raw range (a partial fetch
 * <origin.count>; count UINT64_MAX for all). Never holds more than a buffer in memory. */
enum mime_error mime_message_copy(const struct mime_message *msg, const struct mime_range *range,
                                  uint64_t origin, uint64_t count, mime_sink_fn sink, void *ctx);

/* HEADER.FIELDS (names) or, with exclude, HEADER.FIELDS.NOT: the matching fields of a header
 * range, CRLF-normalised, followed by the blank line, as Dovecot sends them. Names compare
 * ASCII case-insensitively. Sends nothing but counts when sink is NULL; *octets gets the size. */
enum mime_error mime_message_header_fields(const struct mime_message *msg,
                                           const struct mime_range *header,
                                           const char *const *names, size_t n_names, bool exclude,
                                           mime_sink_fn sink, void *ctx, uint64_t *octets);

/* SEARCH HEADER/FROM/SUBJECT...: every value of a header of the message (not of inner
 * messages), unfolded, RFC 2047 words decoded and converted to UTF-8. NULL-terminated array
 * (empty when the header is missing), free with mime_strv_free(); NULL on I/O error. */
char **mime_message_header_decoded(const struct mime_message *msg, const char *name);
void mime_strv_free(char **values);

/* SEARCH BODY/TEXT: the text leaf parts (type text) (inner messages included) one after the other,
 * transfer encoding removed and converted to UTF-8 from their charset (unknown charsets are
 * read as ISO-8859-1), streamed through a small buffer. */
struct mime_text_iter;
struct mime_text_iter *mime_text_iter_new(const struct mime_message *msg);
/* Next bytes of UTF-8 text: > 0 bytes, 0 at the end, -1 on I/O error. Parts are separated by
 * a newline, so a match never spans two parts. */
ssize_t mime_text_iter_read(struct mime_text_iter *iter, char *buf, size_t len);
void mime_text_iter_free(struct mime_text_iter *iter);

/* Case-insensitive (Unicode case folding) substring search of a UTF-8 needle in the decoded
 * body text: 1 found, 0 not found, -1 I/O error. Memory stays at a few buffers. */
int mime_message_text_contains(const struct mime_message *msg, const char *needle);

/* ---- Building blocks, also for the IMAP layer ---- */

/* A growable byte string; data is always NUL-terminated (contents may hold NULs). */
struct mime_buf {
    char *data;
    size_t len, cap;
};
void mime_buf_add(struct mime_buf *buf, const void *data, size_t len);
void mime_buf_add_str(struct mime_buf *buf, const char *s);
void mime_buf_add_char(struct mime_buf *buf, char c);
void mime_buf_free(struct mime_buf *buf);

/* An IMAP string the way Dovecot writes one: quoted, with \" and \\ escapes, unless it holds
 * CR, LF, 8-bit bytes or more than 4 quote specials, then a literal {n}\r\n. NUL bytes become
 * U+FFFD. */
void mime_imap_string(struct mime_buf *out, const char *s, size_t len);
/* NIL for NULL. */
void mime_imap_nstring(struct mime_buf *out, const char *s, size_t len);
/* For text people read (ENVELOPE subject and display names): CR/LF dropped, runs of SP/TAB
 * become one space, leading and trailing blanks removed; literal when anything changed. */
void mime_imap_string_for_humans(struct mime_buf *out, const char *s, size_t len);

/* An RFC 5322 address-list header value as an ENVELOPE address list: "((name adl mailbox
 * host)...)" with (NIL NIL "group" NIL) ... (NIL NIL NIL NIL) for groups, NIL when empty.
 * Broken addresses get MISSING_MAILBOX / MISSING_DOMAIN, as Dovecot does. */
void mime_imap_address_list(struct mime_buf *out, const char *value, size_t len);

/* A Content-Type or Content-Disposition value: the token(s) and the parameters, RFC 2231
 * continuations merged into one raw value ("name*" "utf-8''..."), plain parameters first. */
struct mime_param {
    char *name, *value;
};
struct mime_content {
    char *type;    /* Content-Type: type; Content-Disposition: the disposition */
    char *subtype; /* Content-Type only; "" when there is no "/" */
    struct mime_param *params;
    size_t n_params;
};
/* false when there is no token at all (the header is then treated as missing). */
bool mime_content_parse(const char *value, size_t len, bool with_subtype, struct mime_content *out);
void mime_content_free(struct mime_content *content);

/* Content-Language: 1#Language-tag as a parenthesised list of IMAP strings; false (nothing
 * written) when there is no tag. */
bool mime_language_list(struct mime_buf *out, const char *value, size_t len);

#endif
