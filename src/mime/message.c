/* The part tree of a message file, built in one streaming pass (a fixed buffer, never the
 * body in memory), and what IMAP derives from it: ENVELOPE, BODY, BODYSTRUCTURE, sections,
 * CRLF-normalised copies and HEADER.FIELDS. Boundaries and headers are recognised the way
 * Dovecot 2.3's message parser recognises them. */
#include "postern/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "postern/util.h"

#define READ_BUF ((size_t)64 * 1024)
/* RFC 2046 allows 70; longer ones are matched up to this many bytes of a line. */
#define MAX_BOUNDARY 1000u

enum field {
    F_CONTENT_TYPE,
    F_CONTENT_TRANSFER_ENCODING,
    F_CONTENT_ID,
    F_CONTENT_DESCRIPTION,
    F_CONTENT_MD5,
    F_CONTENT_DISPOSITION,
    F_CONTENT_LANGUAGE,
    F_CONTENT_LOCATION,
    F_FIRST_ENVELOPE,
    F_DATE = F_FIRST_ENVELOPE,
    F_SUBJECT,
    F_FROM,
    F_SENDER,
    F_REPLY_TO,
    F_TO,
    F_CC,
    F_BCC,
    F_IN_REPLY_TO,
    F_MESSAGE_ID,
    F_COUNT,
};

static const char *const FIELD_NAMES[F_COUNT] = {
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-ID",
    "Content-Description",
    "Content-MD5",
    "Content-Disposition",
    "Content-Language",
    "Content-Location",
    "Date",
    "Subject",
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Bcc",
    "In-Reply-To",
    "Message-ID",
};

struct header_value {
    struct mime_buf text; /* unfolded, without the name and the blanks after the colon */
    bool set;
};

struct mime_part_info {
    struct header_value fields[F_COUNT];
    struct mime_content ctype;
    bool has_ctype;
    bool message_header; /* the root, or the child of a message/rfc822 part */
    bool digest_child;   /* default type message/rfc822 (RFC 2046 §5.1.5) */
    struct mime_buf envelope;
};

struct mime_message {
    int fd;
    uint64_t file_size;
    bool header_only; /* mime_message_open_header() */
    struct mime_part *root;
    struct mime_buf envelope, bodystructure, body;
};

const char *mime_error_text(enum mime_error error)
{
    switch (error) {
    case MIME_OK:
        return "ok";
    case MIME_ERR_IO:
        return "cannot read the message";
    case MIME_ERR_NOT_FOUND:
        return "no such section";
    case MIME_ERR_SINK:
        return "output refused";
    case MIME_ERR_INIT:
        return "mime_init() not called";
    }
    return "unknown error";
}

/* ---- reading a file range in segments: lines, or pieces of lines longer than the buffer ---- */

struct reader {
    int fd;
    uint64_t next, limit; /* file offset of the next read; end of the range */
    unsigned char *buf;
    size_t pos, len;
    bool io_error;
    /* the current segment */
    uint64_t seg_off;
    const unsigned char *seg;
    size_t seg_len;  /* with its newline */
    unsigned seg_nl; /* 0: no newline (more of the line follows, or EOF), 1: LF, 2: CRLF */
    bool seg_first;  /* starts a line */
    bool at_line_start;
};

static void reader_init(struct reader *r, int fd, uint64_t start, uint64_t limit)
{
    memset(r, 0, sizeof(*r));
    r->fd = fd;
    r->next = start;
    r->limit = limit;
    r->buf = xmalloc(READ_BUF);
    r->at_line_start = true;
}

static void reader_free(struct reader *r)
{
    free(r->buf);
    r->buf = NULL;
}

static void reader_fill(struct reader *r)
{
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
    }
    while (r->len < READ_BUF && r->next < r->limit) {
        size_t want = READ_BUF - r->len;
        if ((uint64_t)want > r->limit - r->next)
            want = (size_t)(r->limit - r->next);
        ssize_t n = pread(r->fd, r->buf + r->len, want, (off_t)r->next);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                r->io_error = true;
            r->limit = r->next; /* a file that shrank ends here */
            break;
        }
        r->len += (size_t)n;
        r->next += (uint64_t)n;
        break;
    }
}

/* The next segment; false at the end of the range. */
static bool reader_next(struct reader *r)
{
    if (r->seg != NULL) {
        r->pos += r->seg_len;
        r->at_line_start = r->seg_nl > 0;
        r->seg = NULL;
    }
    const unsigned char *lf = NULL;
    for (;;) {
        if (r->pos < r->len)
            lf = memchr(r->buf + r->pos, '\n', r->len - r->pos);
        if (lf != NULL || r->next >= r->limit || (r->pos == 0 && r->len == READ_BUF))
            break;
        size_t before = r->len - r->pos;
        reader_fill(r);
        if (r->len == before && r->pos == 0 && r->next >= r->limit)
            break;
    }
    if (r->pos >= r->len)
        return false;
    r->seg = r->buf + r->pos;
    r->seg_off = r->next - (r->len - r->pos);
    r->seg_first = r->at_line_start;
    if (lf != NULL) {
        r->seg_len = (size_t)(lf - r->seg) + 1;
        r->seg_nl = r->seg_len >= 2 && lf[-1] == '\r' ? 2 : 1;
    } else {
        r->seg_len = r->len - r->pos;
        r->seg_nl = 0;
        /* keep a CR for the next segment, where it may start a CRLF */
        if (r->seg_len > 1 && r->seg[r->seg_len - 1] == '\r' && r->next < r->limit)
            r->seg_len--;
    }
    return true;
}

/* ---- the scan ---- */

/* A position with the line feeds before it, to turn ranges into normalised sizes. */
struct pos {
    uint64_t off, lf, bare_lf;
};

struct boundary {
    const char *text;
    size_t len;
};

enum end_kind { END_EOF, END_BOUNDARY };

struct part_end {
    enum end_kind kind;
    size_t level; /* index in the boundary stack */
    bool final;
    struct pos at; /* the end of the part: before the newline ahead of the boundary line */
};

struct scanner {
    struct reader rd;
    bool have_seg;
    uint64_t lf, bare_lf; /* before the current segment */
    unsigned prev_nl;     /* newline of the line before the current one */
    struct boundary bounds[MIME_MAX_DEPTH + 1];
    size_t n_bounds;
    size_t n_parts;
};

static void scan_advance(struct scanner *s)
{
    if (s->have_seg) {
        if (s->rd.seg_nl > 0) {
            s->lf++;
            if (s->rd.seg_nl == 1)
                s->bare_lf++;
        }
        s->prev_nl = s->rd.seg_nl;
    }
    s->have_seg = reader_next(&s->rd);
}

static struct pos scan_here(const struct scanner *s)
{
    struct pos p = {s->have_seg ? s->rd.seg_off : s->rd.limit, s->lf, s->bare_lf};
    return p;
}

/* Where the current line starts, less the newline that ends the line before it: that newline
 * belongs to a boundary line (RFC 2046 §5.1.1). Never before floor. */
static struct pos scan_before_newline(const struct scanner *s, struct pos floor)
{
    struct pos p = scan_here(s);
    if (s->prev_nl > 0) {
        p.off -= s->prev_nl;
        p.lf--;
        if (s->prev_nl == 1)
            p.bare_lf--;
    }
    return p.off < floor.off ? floor : p;
}

static struct mime_size size_between(struct pos a, struct pos b)
{
    struct mime_size size = {(b.off - a.off) + (b.bare_lf - a.bare_lf), b.lf - a.lf};
    return size;
}

static size_t content_len(const struct reader *rd)
{
    return rd->seg_len - rd->seg_nl;
}

/* Is the current line a boundary of an enclosing multipart? Innermost first, and by prefix:
 * "--b" followed by anything is a boundary line, "--b--" the last one (as Dovecot reads it). */
static bool scan_boundary(const struct scanner *s, size_t *level, bool *final)
{
    const struct reader *rd = &s->rd;
    if (!s->have_seg || !rd->seg_first || s->n_bounds == 0)
        return false;
    size_t len = content_len(rd);
    if (len < 2 || rd->seg[0] != '-' || rd->seg[1] != '-')
        return false;
    for (size_t i = s->n_bounds; i-- > 0;) {
        const struct boundary *b = &s->bounds[i];
        if (len >= 2 + b->len && memcmp(rd->seg + 2, b->text, b->len) == 0) {
            *level = i;
            *final = len >= 4 + b->len && rd->seg[2 + b->len] == '-' && rd->seg[3 + b->len] == '-';
            return true;
        }
    }
    return false;
}

static struct part_end scan_to_boundary(struct scanner *s, struct pos floor)
{
    struct part_end end = {0};
    for (; s->have_seg; scan_advance(s)) {
        if (scan_boundary(s, &end.level, &end.final)) {
            end.kind = END_BOUNDARY;
            end.at = scan_before_newline(s, floor);
            return end;
        }
    }
    end.kind = END_EOF;
    end.at = scan_here(s);
    return end;
}

static int field_index(const unsigned char *name, size_t len, bool message_header)
{
    size_t n = message_header ? F_COUNT : F_FIRST_ENVELOPE;
    for (size_t i = 0; i < n; i++) {
        if (strlen(FIELD_NAMES[i]) == len &&
            ascii_ncasecmp((const char *)name, FIELD_NAMES[i], len) == 0)
            return (int)i;
    }
    return -1;
}

static void keep_value(struct header_value *v, const unsigned char *data, size_t len)
{
    if (v->text.len >= MIME_MAX_HEADER_VALUE)
        return;
    if (len > MIME_MAX_HEADER_VALUE - v->text.len)
        len = MIME_MAX_HEADER_VALUE - v->text.len;
    mime_buf_add(&v->text, data, len);
}

/* Which occurrence counts: the first Content-* header, the last envelope header (Dovecot). */
static struct header_value *start_field(struct mime_part_info *info, const unsigned char *line,
                                        size_t len)
{
    const unsigned char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return NULL;
    size_t name_len = (size_t)(colon - line);
    while (name_len > 0 && (line[name_len - 1] == ' ' || line[name_len - 1] == '\t'))
        name_len--;
    int i = field_index(line, name_len, info->message_header);
    if (i < 0)
        return NULL;
    struct header_value *v = &info->fields[i];
    if (v->set && i < F_FIRST_ENVELOPE)
        return NULL;
    v->set = true;
    v->text.len = 0;
    mime_buf_add(&v->text, "", 0);
    const unsigned char *value = colon + 1, *end = line + len;
    while (value < end && (*value == ' ' || *value == '\t'))
        value++;
    keep_value(v, value, (size_t)(end - value));
    return v;
}

/* Reads the header of a part; returns true when a boundary line ended it (then *end is set). */
static bool scan_header(struct scanner *s, struct mime_part *part, struct part_end *end)
{
    struct mime_part_info *info = part->info;
    struct pos start = scan_here(s);
    struct header_value *cur = NULL;
    for (; s->have_seg; scan_advance(s)) {
        const struct reader *rd = &s->rd;
        size_t len = content_len(rd);
        if (rd->seg_first) {
            if (scan_boundary(s, &end->level, &end->final)) {
                end->kind = END_BOUNDARY;
                end->at = scan_before_newline(s, start);
                part->header.start = start.off;
                part->header.end = end->at.off;
                part->header_size = size_between(start, end->at);
                return true;
            }
            if (len == 0 && rd->seg_nl > 0) { /* the blank line */
                scan_advance(s);
                break;
            }
            if (rd->seg[0] == ' ' || rd->seg[0] == '\t') {
                if (cur != NULL)
                    keep_value(cur, rd->seg, len);
            } else {
                cur = start_field(info, rd->seg, len);
            }
        } else if (cur != NULL) {
            keep_value(cur, rd->seg, len);
        }
    }
    struct pos here = scan_here(s);
    part->header.start = start.off;
    part->header.end = here.off;
    part->header_size = size_between(start, here);
    end->at = here;
    return false;
}

static const struct mime_param *find_param(const struct mime_content *c, const char *name)
{
    for (size_t i = 0; i < c->n_params; i++) {
        if (ascii_casecmp(c->params[i].name, name) == 0)
            return &c->params[i];
    }
    return NULL;
}

static void write_envelope(struct mime_buf *out, const struct mime_part_info *info);

static struct mime_part *new_part(struct scanner *s, struct mime_part *parent, bool message_header,
                                  bool digest_child)
{
    struct mime_part *part = xcalloc(1, sizeof(*part));
    part->info = xcalloc(1, sizeof(*part->info));
    part->info->message_header = message_header;
    part->info->digest_child = digest_child;
    part->parent = parent;
    part->depth = parent ? parent->depth + 1 : 0;
    if (parent != NULL) {
        struct mime_part **tail = &parent->children;
        while (*tail != NULL)
            tail = &(*tail)->next;
        *tail = part;
    }
    s->n_parts++;
    return part;
}

static void classify(struct scanner *s, struct mime_part *part)
{
    struct mime_part_info *info = part->info;
    const struct header_value *ct = &info->fields[F_CONTENT_TYPE];
    if (ct->set)
        info->has_ctype = mime_content_parse(ct->text.data, ct->text.len, true, &info->ctype);
    bool split = part->depth < MIME_MAX_DEPTH && s->n_parts < MIME_MAX_PARTS;
    part->kind = MIME_KIND_LEAF;
    if (info->has_ctype) {
        if (ascii_casecmp(info->ctype.type, "multipart") == 0 && split)
            part->kind = MIME_KIND_MULTIPART;
        else if (ascii_casecmp(info->ctype.type, "message") == 0 &&
                 ascii_casecmp(info->ctype.subtype, "rfc822") == 0 && split)
            part->kind = MIME_KIND_MESSAGE;
    } else if (info->digest_child && split) {
        part->kind = MIME_KIND_MESSAGE;
    }
    if (info->message_header)
        write_envelope(&info->envelope, info);
}

static struct part_end scan_part(struct scanner *s, struct mime_part *part);

static struct part_end scan_multipart(struct scanner *s, struct mime_part *part, struct pos body)
{
    const struct mime_param *b = find_param(&part->info->ctype, "boundary");
    bool digest = ascii_casecmp(part->info->ctype.subtype, "digest") == 0;
    size_t own = s->n_bounds;
    bool pushed = false;
    if (b != NULL && b->value[0] != '\0' && strlen(b->value) <= MAX_BOUNDARY) {
        s->bounds[own].text = b->value;
        s->bounds[own].len = strlen(b->value);
        s->n_bounds++;
        pushed = true;
    }
    struct part_end end = scan_to_boundary(s, body); /* the preamble */
    while (pushed && end.kind == END_BOUNDARY && end.level == own) {
        scan_advance(s); /* the boundary line */
        if (end.final) {
            /* the epilogue; the final boundary line keeps its newline */
            s->n_bounds = own;
            return scan_to_boundary(s, scan_here(s));
        }
        if (s->n_parts >= MIME_MAX_PARTS) {
            end = scan_to_boundary(s, scan_here(s));
            continue;
        }
        struct mime_part *child = new_part(s, part, false, digest);
        end = scan_part(s, child);
    }
    if (pushed)
        s->n_bounds = own;
    return end;
}

static struct part_end scan_part(struct scanner *s, struct mime_part *part)
{
    struct part_end end = {0};
    struct pos body;
    if (scan_header(s, part, &end)) {
        /* a boundary cut the header short: the body is empty, and a message/rfc822 part
         * still holds a message, with an empty header */
        classify(s, part);
        part->body.start = part->body.end = end.at.off;
        if (part->kind == MIME_KIND_MESSAGE) {
            struct mime_part *inner = new_part(s, part, true, false);
            inner->header.start = inner->header.end = end.at.off;
            inner->body = inner->header;
            classify(s, inner);
        }
        return end;
    }
    body = end.at;
    classify(s, part);
    part->body.start = body.off;
    if (part->kind == MIME_KIND_MESSAGE) {
        struct mime_part *inner = new_part(s, part, true, false);
        end = scan_part(s, inner);
    } else if (part->kind == MIME_KIND_MULTIPART) {
        end = scan_multipart(s, part, body);
    } else {
        end = scan_to_boundary(s, body);
    }
    if (end.at.off < body.off)
        end.at = body;
    part->body.end = end.at.off;
    part->body_size = size_between(body, end.at);
    return end;
}

/* ---- ENVELOPE, BODY, BODYSTRUCTURE ---- */

static const struct header_value *field(const struct mime_part_info *info, enum field f)
{
    return info->fields[f].set ? &info->fields[f] : NULL;
}

static void add_value(struct mime_buf *out, const struct header_value *v)
{
    if (v == NULL)
        mime_buf_add_str(out, "NIL");
    else
        mime_imap_string(out, v->text.data, v->text.len);
}

static void add_addresses(struct mime_buf *out, const struct header_value *v)
{
    if (v == NULL)
        mime_buf_add_str(out, "NIL");
    else
        mime_imap_address_list(out, v->text.data, v->text.len);
}

static void write_envelope(struct mime_buf *out, const struct mime_part_info *info)
{
    struct mime_buf from = {0}, addr = {0};
    mime_buf_add_char(out, '(');
    add_value(out, field(info, F_DATE));
    mime_buf_add_char(out, ' ');
    const struct header_value *subject = field(info, F_SUBJECT);
    if (subject == NULL)
        mime_buf_add_str(out, "NIL");
    else
        mime_imap_string_for_humans(out, subject->text.data, subject->text.len);
    add_addresses(&from, field(info, F_FROM));
    mime_buf_add_char(out, ' ');
    mime_buf_add(out, from.data, from.len);
    /* Sender and Reply-To default to From, also when they hold no address (RFC 3501 §7.4.2) */
    for (enum field f = F_SENDER; f <= F_BCC; f++) {
        addr.len = 0;
        add_addresses(&addr, field(info, f));
        mime_buf_add_char(out, ' ');
        if (f <= F_REPLY_TO && strcmp(addr.data, "NIL") == 0)
            mime_buf_add(out, from.data, from.len);
        else
            mime_buf_add(out, addr.data, addr.len);
    }
    mime_buf_add_char(out, ' ');
    add_value(out, field(info, F_IN_REPLY_TO));
    mime_buf_add_char(out, ' ');
    add_value(out, field(info, F_MESSAGE_ID));
    mime_buf_add_char(out, ')');
    mime_buf_free(&from);
    mime_buf_free(&addr);
}

static void add_cstring(struct mime_buf *out, const char *s)
{
    mime_imap_string(out, s, strlen(s));
}

static void add_params(struct mime_buf *out, const struct mime_content *c, bool default_charset)
{
    bool charset = false;
    if (c == NULL || c->n_params == 0) {
        mime_buf_add_str(out, default_charset ? "(\"charset\" \"us-ascii\")" : "NIL");
        return;
    }
    mime_buf_add_char(out, '(');
    for (size_t i = 0; i < c->n_params; i++) {
        if (i > 0)
            mime_buf_add_char(out, ' ');
        add_cstring(out, c->params[i].name);
        mime_buf_add_char(out, ' ');
        add_cstring(out, c->params[i].value);
        charset = charset || ascii_casecmp(c->params[i].name, "charset") == 0;
    }
    if (default_charset && !charset)
        mime_buf_add_str(out, " \"charset\" \"us-ascii\"");
    mime_buf_add_char(out, ')');
}

/* body-ext: disposition, language, location (md5 comes before them for leaves) */
static void add_extension(struct mime_buf *out, const struct mime_part_info *info)
{
    const struct header_value *v = field(info, F_CONTENT_DISPOSITION);
    struct mime_content disp;
    mime_buf_add_char(out, ' ');
    if (v != NULL && mime_content_parse(v->text.data, v->text.len, false, &disp)) {
        mime_buf_add_char(out, '(');
        add_cstring(out, disp.type);
        mime_buf_add_char(out, ' ');
        add_params(out, &disp, false);
        mime_buf_add_char(out, ')');
        mime_content_free(&disp);
    } else {
        mime_buf_add_str(out, "NIL");
    }
    mime_buf_add_char(out, ' ');
    v = field(info, F_CONTENT_LANGUAGE);
    if (v == NULL || !mime_language_list(out, v->text.data, v->text.len))
        mime_buf_add_str(out, "NIL");
    mime_buf_add_char(out, ' ');
    add_value(out, field(info, F_CONTENT_LOCATION));
}

static void write_structure(struct mime_buf *out, const struct mime_part *part, bool extended);

static const char EMPTY_BODY[] =
    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0";

static void write_multipart(struct mime_buf *out, const struct mime_part *part, bool extended)
{
    const struct mime_part_info *info = part->info;
    if (part->children == NULL) {
        /* a multipart without parts is not allowed: one empty text/plain, as Dovecot */
        mime_buf_add_str(out, EMPTY_BODY);
        mime_buf_add_str(out, extended ? " NIL NIL NIL NIL)" : ")");
    }
    for (const struct mime_part *c = part->children; c != NULL; c = c->next)
        write_structure(out, c, extended);
    mime_buf_add_char(out, ' ');
    add_cstring(out, info->ctype.subtype);
    if (!extended)
        return;
    mime_buf_add_char(out, ' ');
    add_params(out, &info->ctype, false);
    add_extension(out, info);
}

static void write_leaf(struct mime_buf *out, const struct mime_part *part, bool extended)
{
    const struct mime_part_info *info = part->info;
    const struct mime_content *ct = info->has_ctype ? &info->ctype : NULL;
    bool message = part->kind == MIME_KIND_MESSAGE;
    bool text = !message && (ct == NULL || ascii_casecmp(ct->type, "text") == 0);
    if (message) {
        mime_buf_add_str(out, "\"message\" \"rfc822\"");
    } else if (ct == NULL) {
        mime_buf_add_str(out, "\"text\" \"plain\"");
    } else if ((ascii_casecmp(ct->type, "message") == 0 &&
                ascii_casecmp(ct->subtype, "rfc822") == 0) ||
               ascii_casecmp(ct->type, "multipart") == 0) {
        /* nested beyond MIME_MAX_DEPTH: sent as opaque data, so that clients do not look for
         * the envelope or the parts we did not read */
        mime_buf_add_str(out, "\"application\" \"octet-stream\"");
    } else {
        add_cstring(out, ct->type);
        mime_buf_add_char(out, ' ');
        add_cstring(out, ct->subtype);
    }
    mime_buf_add_char(out, ' ');
    add_params(out, ct, text);
    mime_buf_add_char(out, ' ');
    add_value(out, field(info, F_CONTENT_ID));
    mime_buf_add_char(out, ' ');
    add_value(out, field(info, F_CONTENT_DESCRIPTION));
    mime_buf_add_char(out, ' ');
    const struct header_value *enc = field(info, F_CONTENT_TRANSFER_ENCODING);
    struct mime_content token;
    if (enc != NULL && mime_content_parse(enc->text.data, enc->text.len, false, &token)) {
        add_cstring(out, token.type);
        mime_content_free(&token);
    } else if (enc != NULL) {
        mime_buf_add_str(out, "\"\"");
    } else {
        mime_buf_add_str(out, "\"7bit\"");
    }
    char num[64];
    snprintf(num, sizeof(num), " %llu", (unsigned long long)part->body_size.octets);
    mime_buf_add_str(out, num);
    if (message && part->children != NULL) {
        mime_buf_add_char(out, ' ');
        mime_buf_add(out, part->children->info->envelope.data, part->children->info->envelope.len);
        mime_buf_add_char(out, ' ');
        write_structure(out, part->children, extended);
    }
    if (text || message) {
        snprintf(num, sizeof(num), " %llu", (unsigned long long)part->body_size.lines);
        mime_buf_add_str(out, num);
    }
    if (!extended)
        return;
    mime_buf_add_char(out, ' ');
    add_value(out, field(info, F_CONTENT_MD5));
    add_extension(out, info);
}

static void write_structure(struct mime_buf *out, const struct mime_part *part, bool extended)
{
    mime_buf_add_char(out, '(');
    if (part->kind == MIME_KIND_MULTIPART)
        write_multipart(out, part, extended);
    else
        write_leaf(out, part, extended);
    mime_buf_add_char(out, ')');
}

/* ---- the message ---- */

static void free_part(struct mime_part *part)
{
    while (part != NULL) {
        struct mime_part *next = part->next;
        free_part(part->children);
        for (size_t i = 0; i < F_COUNT; i++)
            mime_buf_free(&part->info->fields[i].text);
        mime_content_free(&part->info->ctype);
        mime_buf_free(&part->info->envelope);
        free(part->info);
        free(part);
        part = next;
    }
}

/* Header values are needed only while the strings are built; keep the parsed Content-Type
 * (SEARCH needs the charset and the encoding) and drop the rest. */
static void drop_values(struct mime_part *part)
{
    for (; part != NULL; part = part->next) {
        drop_values(part->children);
        for (size_t i = 0; i < F_COUNT; i++) {
            if (i != F_CONTENT_TRANSFER_ENCODING)
                mime_buf_free(&part->info->fields[i].text);
        }
        mime_buf_free(&part->info->envelope);
    }
}

/* header_only: the root header and nothing after it (a HEADER.FIELDS fetch of a 2 MB message
 * reads its first kilobytes); the root is then a leaf whose body runs to the end of the file,
 * of unknown size, and has no parts, envelope or structure. */
static struct mime_message *open_scan(int fd, bool header_only, enum mime_error *error)
{
    /* a new open file description, so that GMime's seeks (search.c) never move the offset of
     * the caller's descriptor; a plain duplicate where /proc is missing, and for a header-only
     * analysis, which is read with pread alone and never reaches GMime (no path lookup in /proc
     * for each message of a HEADER.FIELDS fetch) */
    char proc_path[64];
    snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", fd);
    int own = fd < 0 || header_only ? -1 : open(proc_path, O_RDONLY | O_CLOEXEC);
    if (own < 0 && fd >= 0)
        own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    struct stat st;
    if (own < 0 || fstat(own, &st) != 0 || !S_ISREG(st.st_mode)) {
        int saved = own < 0 ? errno : S_ISREG(st.st_mode) ? errno : EINVAL;
        if (own >= 0)
            close(own);
        errno = saved;
        *error = MIME_ERR_IO;
        return NULL;
    }
    struct mime_message *msg = xcalloc(1, sizeof(*msg));
    msg->fd = own;
    msg->file_size = (uint64_t)st.st_size;
    msg->header_only = header_only;

    struct scanner *s = xcalloc(1, sizeof(*s));
    reader_init(&s->rd, own, 0, msg->file_size);
    scan_advance(s);
    msg->root = new_part(s, NULL, true, false);
    if (header_only) {
        struct part_end end = {0};
        (void)scan_header(s, msg->root, &end); /* no boundaries: ends at the blank line or EOF */
        msg->root->kind = MIME_KIND_LEAF;
        msg->root->body.start = end.at.off;
        msg->root->body.end = msg->file_size;
    } else {
        (void)scan_part(s, msg->root);
        msg->file_size = s->rd.limit;
    }
    bool io_error = s->rd.io_error;
    reader_free(&s->rd);
    free(s);
    if (io_error) {
        mime_message_free(msg);
        *error = MIME_ERR_IO;
        return NULL;
    }
    if (!header_only) {
        mime_buf_add(&msg->envelope, msg->root->info->envelope.data, msg->root->info->envelope.len);
        write_structure(&msg->bodystructure, msg->root, true);
        write_structure(&msg->body, msg->root, false);
    }
    drop_values(msg->root);
    *error = MIME_OK;
    return msg;
}

struct mime_message *mime_message_open_fd(int fd, enum mime_error *error)
{
    return open_scan(fd, false, error);
}

struct mime_message *mime_message_open_header(int fd, enum mime_error *error)
{
    return open_scan(fd, true, error);
}

struct mime_message *mime_message_open(const char *path, enum mime_error *error)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error = MIME_ERR_IO;
        return NULL;
    }
    struct mime_message *msg = mime_message_open_fd(fd, error);
    int saved = errno;
    close(fd);
    errno = saved;
    return msg;
}

void mime_message_free(struct mime_message *msg)
{
    if (msg == NULL)
        return;
    free_part(msg->root);
    mime_buf_free(&msg->envelope);
    mime_buf_free(&msg->bodystructure);
    mime_buf_free(&msg->body);
    close(msg->fd);
    free(msg);
}

int mime_message_fd(const struct mime_message *msg)
{
    return msg->fd;
}

const struct mime_part *mime_message_root(const struct mime_message *msg)
{
    return msg->root;
}

uint64_t mime_message_size(const struct mime_message *msg)
{
    return msg->root->header_size.octets + msg->root->body_size.octets;
}

static const char *buf_out(const struct mime_buf *b, size_t *len)
{
    if (len != NULL)
        *len = b->len;
    return b->data;
}

const char *mime_message_envelope(const struct mime_message *msg, size_t *len)
{
    return buf_out(&msg->envelope, len);
}

const char *mime_message_bodystructure(const struct mime_message *msg, size_t *len)
{
    return buf_out(&msg->bodystructure, len);
}

const char *mime_message_body(const struct mime_message *msg, size_t *len)
{
    return buf_out(&msg->body, len);
}

const char *mime_part_type(const struct mime_part *part)
{
    if (part->kind == MIME_KIND_MESSAGE)
        return "message";
    return part->info->has_ctype ? part->info->ctype.type : "text";
}

const char *mime_part_subtype(const struct mime_part *part)
{
    if (part->kind == MIME_KIND_MESSAGE)
        return "rfc822";
    return part->info->has_ctype ? part->info->ctype.subtype : "plain";
}

const char *mime_part_param(const struct mime_part *part, const char *name)
{
    const struct mime_param *p =
        part->info->has_ctype ? find_param(&part->info->ctype, name) : NULL;
    return p ? p->value : NULL;
}

const char *mime_part_encoding(const struct mime_part *part)
{
    const struct header_value *v = field(part->info, F_CONTENT_TRANSFER_ENCODING);
    return v ? v->text.data : NULL;
}

/* ---- sections ---- */

const struct mime_part *mime_message_find_part(const struct mime_message *msg, const char *number)
{
    const struct mime_part *part = msg->root;
    const char *p = number;
    while (*p != '\0' && part != NULL) {
        if (*p < '1' || *p > '9')
            return NULL;
        unsigned long n = 0;
        while (*p >= '0' && *p <= '9') {
            n = n * 10 + (unsigned long)(*p++ - '0');
            if (n > MIME_MAX_PARTS)
                return NULL;
        }
        if (*p == '.' && p[1] != '\0')
            p++;
        else if (*p != '\0')
            return NULL;
        bool more = *p != '\0';
        if (part->kind == MIME_KIND_MULTIPART) {
            part = part->children;
            while (part != NULL && --n > 0)
                part = part->next;
        } else if (n != 1 || (more && part->kind != MIME_KIND_MESSAGE)) {
            /* only 1 in a non-multipart, and nothing below it unless it is a message */
            return NULL;
        }
        if (part != NULL && part->kind == MIME_KIND_MESSAGE && more)
            part = part->children;
    }
    return part;
}

enum mime_error mime_message_section(const struct mime_message *msg, const char *number,
                                     enum mime_section_text text, struct mime_range *range,
                                     struct mime_size *size)
{
    const struct mime_part *part = mime_message_find_part(msg, number);
    if (part == NULL)
        return MIME_ERR_NOT_FOUND;
    if (text == MIME_SECTION_HEADER || text == MIME_SECTION_TEXT) {
        /* of the message itself, or of the message in a message/rfc822 part */
        if (number[0] != '\0') {
            if (part->kind != MIME_KIND_MESSAGE || part->children == NULL)
                return MIME_ERR_NOT_FOUND;
            part = part->children;
        }
    }
    switch (text) {
    case MIME_SECTION_BODY:
        if (number[0] == '\0') {
            range->start = part->header.start;
            range->end = part->body.end;
            size->octets = part->header_size.octets + part->body_size.octets;
            size->lines = part->header_size.lines + part->body_size.lines;
            return MIME_OK;
        }
        *range = part->body;
        *size = part->body_size;
        return MIME_OK;
    case MIME_SECTION_TEXT:
        *range = part->body;
        *size = part->body_size;
        return MIME_OK;
    case MIME_SECTION_MIME:
        if (number[0] == '\0')
            return MIME_ERR_NOT_FOUND;
        /* fall through */
    case MIME_SECTION_HEADER:
        *range = part->header;
        *size = part->header_size;
        return MIME_OK;
    }
    return MIME_ERR_NOT_FOUND;
}

/* ---- output ---- */

struct normaliser {
    mime_sink_fn sink;
    void *ctx;
    uint64_t skip, left; /* output bytes still to drop, then to send */
    bool failed;
};

static void emit(struct normaliser *n, const unsigned char *data, size_t len)
{
    if (n->failed || len == 0)
        return;
    if (n->skip >= len) {
        n->skip -= len;
        return;
    }
    data += n->skip;
    len -= (size_t)n->skip;
    n->skip = 0;
    if ((uint64_t)len > n->left)
        len = (size_t)n->left;
    n->left -= len;
    if (len > 0 && n->sink != NULL && !n->sink(n->ctx, data, len))
        n->failed = true;
}

/* Text without NULs: an IMAP literal may not hold one (RFC 3501 §4.3), so each becomes 0x80,
 * the byte Dovecot sends; sizes do not change. */
static void emit_text(struct normaliser *n, const unsigned char *data, size_t len)
{
    const unsigned char *nul;
    while (len > 0 && (nul = memchr(data, '\0', len)) != NULL) {
        size_t before = (size_t)(nul - data);
        emit(n, data, before);
        emit(n, (const unsigned char *)"\x80", 1);
        data += before + 1;
        len -= before + 1;
    }
    emit(n, data, len);
}

/* One segment with its bare LF turned into CRLF. */
static void emit_segment(struct normaliser *n, const struct reader *rd)
{
    if (rd->seg_nl == 1) {
        emit_text(n, rd->seg, rd->seg_len - 1);
        emit(n, (const unsigned char *)"\r\n", 2);
    } else {
        emit_text(n, rd->seg, rd->seg_len);
    }
}

enum mime_error mime_message_copy(const struct mime_message *msg, const struct mime_range *range,
                                  uint64_t origin, uint64_t count, mime_sink_fn sink, void *ctx)
{
    if (range->start > range->end || range->end > msg->file_size)
        return MIME_ERR_NOT_FOUND;
    struct normaliser n = {sink, ctx, origin, count, false};
    struct reader rd;
    reader_init(&rd, msg->fd, range->start, range->end);
    while (n.left > 0 && !n.failed && reader_next(&rd))
        emit_segment(&n, &rd);
    bool io_error = rd.io_error;
    reader_free(&rd);
    return io_error ? MIME_ERR_IO : n.failed ? MIME_ERR_SINK : MIME_OK;
}

static bool name_listed(const unsigned char *name, size_t len, const char *const *names,
                        size_t n_names)
{
    for (size_t i = 0; i < n_names; i++) {
        if (strlen(names[i]) == len && ascii_ncasecmp((const char *)name, names[i], len) == 0)
            return true;
    }
    return false;
}

enum mime_error mime_message_header_fields(const struct mime_message *msg,
                                           const struct mime_range *header,
                                           const char *const *names, size_t n_names, bool exclude,
                                           mime_sink_fn sink, void *ctx, uint64_t *octets)
{
    if (header->start > header->end || header->end > msg->file_size)
        return MIME_ERR_NOT_FOUND;
    struct normaliser n = {sink, ctx, 0, UINT64_MAX, false};
    struct reader rd;
    bool selected = false, ended = true, blank_line = false;
    reader_init(&rd, msg->fd, header->start, header->end);
    while (!n.failed && reader_next(&rd)) {
        size_t len = content_len(&rd);
        if (rd.seg_first && len == 0 && rd.seg_nl > 0) {
            blank_line = true; /* sent below */
            break;
        }
        if (rd.seg_first && rd.seg[0] != ' ' && rd.seg[0] != '\t') {
            const unsigned char *colon = memchr(rd.seg, ':', len);
            size_t name_len = colon ? (size_t)(colon - rd.seg) : len;
            while (name_len > 0 && (rd.seg[name_len - 1] == ' ' || rd.seg[name_len - 1] == '\t'))
                name_len--;
            selected = (colon != NULL && name_listed(rd.seg, name_len, names, n_names)) != exclude;
        }
        if (selected) {
            emit_segment(&n, &rd);
            ended = rd.seg_nl > 0;
        }
    }
    if (!ended) /* the header ended without a newline (at a boundary or at EOF) */
        emit(&n, (const unsigned char *)"\r\n", 2);
    /* Dovecot ends HEADER.FIELDS with the blank line even when the header had none, and
     * HEADER.FIELDS.NOT only when it had one */
    if (blank_line || !exclude)
        emit(&n, (const unsigned char *)"\r\n", 2);
    bool io_error = rd.io_error;
    reader_free(&rd);
    if (octets != NULL)
        *octets = UINT64_MAX - n.left;
    return io_error ? MIME_ERR_IO : n.failed ? MIME_ERR_SINK : MIME_OK;
}
