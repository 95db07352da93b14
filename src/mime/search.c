/* SEARCH support through GMime: decoded header values, and the decoded text of text parts
 * streamed through GMime filter streams over the message file (nothing held but buffers). */
#include "postern/mime.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postern/util.h"

#define TEXT_CHUNK ((size_t)64 * 1024)

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool initialised;

static void init_gmime(void)
{
    g_mime_init();
    initialised = true;
}

bool mime_init(void)
{
    pthread_once(&init_once, init_gmime);
    return initialised;
}

/* ---- headers ---- */

static bool collect(void *ctx, const void *data, size_t len)
{
    mime_buf_add(ctx, data, len);
    return true;
}

void mime_strv_free(char **values)
{
    if (values == NULL)
        return;
    for (char **v = values; *v != NULL; v++)
        free(*v);
    free(values);
}

/* Value of one "Name: value\r\n\tmore\r\n" field: after the colon and its blanks, unfolded. */
static char *unfold_value(const char *field, size_t len)
{
    const char *colon = memchr(field, ':', len);
    const char *p = colon ? colon + 1 : field + len, *end = field + len;
    struct mime_buf value = {0};
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    for (; p < end; p++) {
        if (*p != '\r' && *p != '\n')
            mime_buf_add_char(&value, *p);
    }
    mime_buf_add(&value, "", 0);
    return value.data;
}

static char *decode_value(const char *raw)
{
    /* GMime converts the encoded words, and 8-bit text in no declared charset, to UTF-8 */
    char *decoded = g_mime_utils_header_decode_text(NULL, raw);
    char *copy = xstrdup(decoded ? decoded : raw);
    g_free(decoded);
    return copy;
}

char **mime_message_header_decoded(const struct mime_message *msg, const char *name)
{
    struct mime_buf fields = {0};
    struct mime_range header;
    struct mime_size size;
    if (!mime_init() ||
        mime_message_section(msg, "", MIME_SECTION_HEADER, &header, &size) != MIME_OK ||
        mime_message_header_fields(msg, &header, &name, 1, false, collect, &fields, NULL) !=
            MIME_OK) {
        mime_buf_free(&fields);
        return NULL;
    }
    size_t n = 0, cap = 4;
    char **values = xcalloc(cap, sizeof(*values));
    /* fields are CRLF-normalised; a field starts at a line not starting with a blank */
    size_t start = 0, end = fields.len >= 2 ? fields.len - 2 : 0; /* drop the blank line */
    while (start < end) {
        size_t next = start;
        do {
            const char *lf = memchr(fields.data + next, '\n', end - next);
            next = lf ? (size_t)(lf - fields.data) + 1 : end;
        } while (next < end && (fields.data[next] == ' ' || fields.data[next] == '\t'));
        char *raw = unfold_value(fields.data + start, next - start);
        if (n + 1 >= cap) {
            cap *= 2;
            values = xrealloc(values, cap * sizeof(*values));
        }
        values[n++] = decode_value(raw);
        values[n] = NULL;
        free(raw);
        start = next;
    }
    mime_buf_free(&fields);
    return values;
}

/* ---- body text ---- */

struct mime_text_iter {
    const struct mime_message *msg;
    const struct mime_part *next_part; /* walk position */
    GMimeStream *file;                 /* the message file */
    GMimeStream *text;                 /* the decoded current part, or NULL */
    bool separator;                    /* a newline is owed between two parts */
};

static const struct mime_part *walk_next(const struct mime_part *part)
{
    if (part->children != NULL)
        return part->children;
    while (part != NULL && part->next == NULL)
        part = part->parent;
    return part ? part->next : NULL;
}

static bool is_text_leaf(const struct mime_part *part)
{
    return part->kind == MIME_KIND_LEAF && ascii_casecmp(mime_part_type(part), "text") == 0;
}

static GMimeStream *open_part_text(struct mime_text_iter *it, const struct mime_part *part)
{
    GMimeStream *raw =
        g_mime_stream_substream(it->file, (gint64)part->body.start, (gint64)part->body.end);
    GMimeStream *filtered = g_mime_stream_filter_new(raw);
    g_object_unref(raw);
    const char *encoding = mime_part_encoding(part);
    if (encoding != NULL) {
        struct mime_content token;
        GMimeContentEncoding e = GMIME_CONTENT_ENCODING_DEFAULT;
        if (mime_content_parse(encoding, strlen(encoding), false, &token)) {
            e = g_mime_content_encoding_from_string(token.type);
            mime_content_free(&token);
        }
        if (e == GMIME_CONTENT_ENCODING_BASE64 || e == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
            e == GMIME_CONTENT_ENCODING_UUENCODE) {
            GMimeFilter *decoder = g_mime_filter_basic_new(e, FALSE);
            g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered), decoder);
            g_object_unref(decoder);
        }
    }
    const char *charset = mime_part_param(part, "charset");
    if (charset == NULL || charset[0] == '\0')
        charset = "us-ascii";
    const char *canon = g_mime_charset_canon_name(charset);
    if (ascii_casecmp(canon, "utf-8") != 0 && ascii_casecmp(canon, "us-ascii") != 0) {
        GMimeFilter *convert = g_mime_filter_charset_new(canon, "UTF-8");
        if (convert == NULL) /* unknown charset: every byte stays a character */
            convert = g_mime_filter_charset_new("iso-8859-1", "UTF-8");
        if (convert != NULL) {
            g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered), convert);
            g_object_unref(convert);
        }
    }
    return filtered;
}

struct mime_text_iter *mime_text_iter_new(const struct mime_message *msg)
{
    if (!mime_init())
        return NULL;
    int fd = dup(mime_message_fd(msg));
    if (fd < 0)
        return NULL;
    struct mime_text_iter *it = xcalloc(1, sizeof(*it));
    it->msg = msg;
    it->next_part = mime_message_root(msg);
    it->file = g_mime_stream_fs_new(fd); /* owns fd */
    return it;
}

ssize_t mime_text_iter_read(struct mime_text_iter *it, char *buf, size_t len)
{
    if (len == 0)
        return 0;
    for (;;) {
        if (it->text != NULL) {
            ssize_t n = g_mime_stream_read(it->text, buf, len);
            if (n > 0)
                return n;
            g_object_unref(it->text);
            it->text = NULL;
            if (n < 0)
                return -1;
            it->separator = true;
        }
        if (it->separator) {
            it->separator = false;
            buf[0] = '\n';
            return 1;
        }
        while (it->next_part != NULL && !is_text_leaf(it->next_part))
            it->next_part = walk_next(it->next_part);
        if (it->next_part == NULL)
            return 0;
        it->text = open_part_text(it, it->next_part);
        it->next_part = walk_next(it->next_part);
    }
}

void mime_text_iter_free(struct mime_text_iter *it)
{
    if (it == NULL)
        return;
    if (it->text != NULL)
        g_object_unref(it->text);
    g_object_unref(it->file);
    free(it);
}

/* Bytes of buf[0..len) up to the last complete UTF-8 sequence. */
static size_t complete_utf8(const char *buf, size_t len)
{
    size_t i = len, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)buf[i - 1] & 0xc0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return len;
    unsigned char lead = (unsigned char)buf[i - 1];
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    return back + 1 >= need ? len : i - 1;
}

static bool window_contains(const char *data, size_t len, const char *folded_needle)
{
    gchar *valid = g_utf8_make_valid(data, (gssize)len);
    gchar *folded = g_utf8_casefold(valid, -1);
    bool found = strstr(folded, folded_needle) != NULL;
    g_free(folded);
    g_free(valid);
    return found;
}

int mime_message_text_contains(const struct mime_message *msg, const char *needle)
{
    if (!mime_init())
        return -1;
    gchar *valid_needle = g_utf8_make_valid(needle, -1);
    gchar *folded_needle = g_utf8_casefold(valid_needle, -1);
    g_free(valid_needle);
    if (folded_needle[0] == '\0') {
        g_free(folded_needle);
        return 1;
    }
    struct mime_text_iter *it = mime_text_iter_new(msg);
    if (it == NULL) {
        g_free(folded_needle);
        return -1;
    }
    /* the window keeps the end of the previous chunk, so a match may span two reads; the
     * needle's unfolded form is at most a few times longer than its folded form */
    size_t keep = 4 * strlen(folded_needle) + 8;
    char *window = xmalloc(keep + TEXT_CHUNK);
    size_t have = 0;
    int result = 0;
    for (;;) {
        ssize_t n = mime_text_iter_read(it, window + have, TEXT_CHUNK);
        if (n < 0) {
            result = -1;
            break;
        }
        have += (size_t)n;
        size_t usable = n == 0 ? have : complete_utf8(window, have);
        if (window_contains(window, usable, folded_needle)) {
            result = 1;
            break;
        }
        if (n == 0)
            break;
        size_t tail = have > keep ? keep : have;
        size_t from = complete_utf8(window, have - tail); /* start the kept text on a character */
        memmove(window, window + from, have - from);
        have -= from;
    }
    free(window);
    mime_text_iter_free(it);
    g_free(folded_needle);
    return result;
}
