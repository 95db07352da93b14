/* IMAP strings for FETCH answers: a byte buffer, quoted strings and literals chosen as Dovecot
 * chooses them, and the "for humans" form of subjects and display names. */
#include "postern/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/util.h"

/* More quote specials than this and a literal is shorter (Dovecot's QUOTED_MAX_ESCAPE_CHARS). */
#define MAX_QUOTED_ESCAPES 4

static const char REPLACEMENT_CHAR[] = "\xef\xbf\xbd"; /* U+FFFD, for NUL bytes */

void mime_buf_add(struct mime_buf *buf, const void *data, size_t len)
{
    if (buf->len + len + 1 > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 64;
        while (cap < buf->len + len + 1)
            cap *= 2;
        buf->data = xrealloc(buf->data, cap);
        buf->cap = cap;
    }
    if (len > 0)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
}

void mime_buf_add_str(struct mime_buf *buf, const char *s)
{
    mime_buf_add(buf, s, strlen(s));
}

void mime_buf_add_char(struct mime_buf *buf, char c)
{
    mime_buf_add(buf, &c, 1);
}

void mime_buf_free(struct mime_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

static void add_literal(struct mime_buf *out, const char *s, size_t len)
{
    char head[32];
    int n = snprintf(head, sizeof(head), "{%zu}\r\n", len);
    mime_buf_add(out, head, (size_t)n);
    mime_buf_add(out, s, len);
}

/* NUL cannot travel in an IMAP string; Dovecot 2.3 sends U+FFFD in its place. */
static bool replace_nuls(const char *s, size_t len, struct mime_buf *copy)
{
    if (memchr(s, '\0', len) == NULL)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0')
            mime_buf_add(copy, REPLACEMENT_CHAR, 3);
        else
            mime_buf_add_char(copy, s[i]);
    }
    return true;
}

static void add_string(struct mime_buf *out, const char *s, size_t len)
{
    unsigned escapes = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            if (++escapes <= MAX_QUOTED_ESCAPES)
                continue;
        } else if (c != '\r' && c != '\n' && c < 0x80) {
            continue;
        }
        add_literal(out, s, len);
        return;
    }
    mime_buf_add_char(out, '"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            mime_buf_add_char(out, '\\');
        mime_buf_add_char(out, s[i]);
    }
    mime_buf_add_char(out, '"');
}

void mime_imap_string(struct mime_buf *out, const char *s, size_t len)
{
    struct mime_buf copy = {0};
    if (replace_nuls(s, len, &copy)) {
        add_string(out, copy.data, copy.len);
        mime_buf_free(&copy);
        return;
    }
    add_string(out, s, len);
}

void mime_imap_nstring(struct mime_buf *out, const char *s, size_t len)
{
    if (s == NULL)
        mime_buf_add_str(out, "NIL");
    else
        mime_imap_string(out, s, len);
}

void mime_imap_string_for_humans(struct mime_buf *out, const char *s, size_t len)
{
    struct mime_buf text = {0};
    bool blank = true; /* at the start, or after a blank: drop further blanks */
    bool plain = true; /* could go out as a quoted string unchanged */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n')
            continue;
        if (c == ' ' || c == '\t') {
            if (!blank)
                mime_buf_add_char(&text, ' ');
            blank = true;
            continue;
        }
        blank = false;
        if (c == '\0') {
            mime_buf_add(&text, REPLACEMENT_CHAR, 3);
            continue;
        }
        if (c == '"' || c == '\\' || c >= 0x80)
            plain = false;
        mime_buf_add_char(&text, (char)c);
    }
    if (blank && text.len > 0)
        text.len--; /* the trailing blank */
    if (plain && text.len == len && (len == 0 || memcmp(text.data, s, len) == 0)) {
        mime_buf_add_char(out, '"');
        mime_buf_add(out, s, len);
        mime_buf_add_char(out, '"');
    } else if (text.len == 0) {
        mime_buf_add_str(out, "\"\"");
    } else {
        add_literal(out, text.data, text.len);
    }
    mime_buf_free(&text);
}
