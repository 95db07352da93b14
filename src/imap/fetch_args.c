/* FETCH attributes (RFC 3501 §6.4.5, §9 fetch-att and section; BINARY RFC 3516; MODSEQ and
 * CHANGEDSINCE RFC 7162) from parsed arguments or from the raw command text, and the names the
 * server echoes for them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args_internal.h"
#include "postern/imap_args.h"
#include "postern/util.h"

/* Text being read: one atom of imap_parse_command(), or the raw text after the sequence set. */
struct text {
    const char *p, *end;
    const char *error;
};

static bool fail(struct text *t, const char *why)
{
    if (t->error == NULL)
        t->error = why;
    return false;
}

static bool at(const struct text *t, char c)
{
    return t->p < t->end && *t->p == c;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A run of digits as a number up to max; nz-number when nonzero. The caller words the error. */
static bool number(struct text *t, uint64_t max, bool nonzero, uint64_t *out)
{
    const char *start = t->p;
    while (t->p < t->end && is_digit(*t->p))
        t->p++;
    return args_number(start, (size_t)(t->p - start), max, nonzero, out);
}

/* A run of letters, digits and dots: attribute names and section keywords. */
static size_t word(const struct text *t)
{
    const char *q = t->p;
    while (q < t->end &&
           ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || is_digit(*q) || *q == '.'))
        q++;
    return (size_t)(q - t->p);
}

/* RFC 5322 §3.6.8 field name: printable ASCII except ":". */
static bool field_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > FETCH_MAX_FIELD_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126 || s[i] == ':')
            return false;
    return true;
}

/* header-fld-name = astring: an atom, a quoted string or a literal (the last two only reach
 * here from the raw text; imap_parse_command() refuses them inside brackets). */
static bool field_name(struct text *t, char **out)
{
    if (at(t, '"')) {
        t->p++;
        char buf[FETCH_MAX_FIELD_LEN + 1];
        size_t len = 0;
        for (;;) {
            if (t->p >= t->end)
                return fail(t, "Unterminated quoted string");
            char c = *t->p++;
            if (c == '"')
                break;
            if (c == '\\') {
                if (t->p >= t->end || (*t->p != '"' && *t->p != '\\'))
                    return fail(t, "Invalid escape in quoted string");
                c = *t->p++;
            }
            if (len == FETCH_MAX_FIELD_LEN)
                return fail(t, "Header field name too long");
            buf[len++] = c;
        }
        if (!field_name_valid(buf, len))
            return fail(t, "Invalid header field name");
        *out = xstrndup(buf, len);
        return true;
    }
    if (at(t, '{')) {
        t->p++;
        uint64_t n;
        if (!number(t, FETCH_MAX_FIELD_LEN, false, &n))
            return fail(t, "Invalid literal in a header field list");
        if (at(t, '+'))
            t->p++;
        if (!at(t, '}'))
            return fail(t, "Invalid literal in a header field list");
        t->p++;
        if (at(t, '\r'))
            t->p++;
        if (!at(t, '\n'))
            return fail(t, "Invalid literal in a header field list");
        t->p++;
        if ((size_t)(t->end - t->p) < n)
            return fail(t, "Literal data missing");
        if (!field_name_valid(t->p, n))
            return fail(t, "Invalid header field name");
        *out = xstrndup(t->p, n);
        t->p += n;
        return true;
    }
    const char *start = t->p;
    while (t->p < t->end && args_is_atom_char((unsigned char)*t->p))
        t->p++;
    size_t len = (size_t)(t->p - start);
    if (len == 0)
        return fail(t, "Expected a header field name");
    if (!field_name_valid(start, len))
        return fail(t, len > FETCH_MAX_FIELD_LEN ? "Header field name too long"
                                                 : "Invalid header field name");
    *out = xstrndup(start, len);
    return true;
}

/* header-list = "(" header-fld-name *(SP header-fld-name) ")" */
static bool header_list(struct text *t, struct fetch_section *s)
{
    if (!at(t, ' '))
        return fail(t, "Expected a header field list");
    t->p++;
    if (!at(t, '('))
        return fail(t, "Expected a header field list");
    t->p++;
    for (;;) {
        if (s->n_fields == FETCH_MAX_HEADER_FIELDS)
            return fail(t, "Too many header field names");
        char *name;
        if (!field_name(t, &name))
            return false;
        s->fields = xrealloc(s->fields, (s->n_fields + 1) * sizeof(*s->fields));
        s->fields[s->n_fields++] = name;
        if (at(t, ')'))
            break;
        if (!at(t, ' ')) /* a byte no field name may hold: 8-bit, "%", ... */
            return fail(t, "Invalid header field name");
        t->p++;
    }
    t->p++;
    return true;
}

/* After "[": section-spec "]", or section-part "]" for BINARY (section-binary). */
static bool section(struct text *t, struct fetch_section *s, bool binary)
{
    bool after_part = false;
    if (t->p < t->end && is_digit(*t->p)) {
        /* section-part = nz-number *("." nz-number) */
        for (;;) {
            if (s->n_parts == FETCH_MAX_PART_DEPTH)
                return fail(t, "Section part numbers nested too deeply");
            uint64_t n;
            if (!number(t, UINT32_MAX, true, &n))
                return fail(t, "Invalid section part number");
            s->parts[s->n_parts++] = (uint32_t)n;
            if (!at(t, '.'))
                break;
            t->p++;
            if (t->p >= t->end || !is_digit(*t->p)) {
                after_part = true;
                break;
            }
        }
    }
    if (after_part && at(t, ']'))
        return fail(t, "Invalid section");
    if (!at(t, ']')) {
        if (binary)
            return fail(t, "BINARY takes part numbers only");
        if (s->n_parts > 0 && !after_part)
            return fail(t, "Invalid section");
        size_t len = word(t);
        const char *w = t->p;
        t->p += len;
        if (args_equal(w, len, "HEADER")) {
            s->text = SECTION_HEADER;
        } else if (args_equal(w, len, "TEXT")) {
            s->text = SECTION_TEXT;
        } else if (args_equal(w, len, "MIME")) {
            /* section-text = section-msgtext / "MIME": only after a part number */
            if (!after_part)
                return fail(t, "MIME needs a part number");
            s->text = SECTION_MIME;
        } else if (args_equal(w, len, "HEADER.FIELDS")) {
            s->text = SECTION_HEADER_FIELDS;
            if (!header_list(t, s))
                return false;
        } else if (args_equal(w, len, "HEADER.FIELDS.NOT")) {
            s->text = SECTION_HEADER_FIELDS_NOT;
            if (!header_list(t, s))
                return false;
        } else {
            return fail(t, "Invalid section");
        }
    }
    if (!at(t, ']'))
        return fail(t, "Expected ']' after the section");
    t->p++;
    return true;
}

/* "<" number "." nz-number ">" */
static bool partial(struct text *t, struct fetch_att *att)
{
    uint64_t origin, count;
    t->p++;
    if (!number(t, UINT32_MAX, false, &origin) || !at(t, '.'))
        return fail(t, "Invalid partial range");
    t->p++;
    if (!number(t, UINT32_MAX, true, &count) || !at(t, '>'))
        return fail(t, "Invalid partial range");
    t->p++;
    att->has_partial = true;
    att->origin = (uint32_t)origin;
    att->count = (uint32_t)count;
    return true;
}

static const struct {
    const char *name;
    enum fetch_item item;
    bool peek;
} att_names[] = {
    {"ENVELOPE", FETCH_ENVELOPE, false},
    {"FLAGS", FETCH_FLAGS, false},
    {"INTERNALDATE", FETCH_INTERNALDATE, false},
    {"RFC822", FETCH_RFC822, false},
    {"RFC822.HEADER", FETCH_RFC822_HEADER, false},
    {"RFC822.SIZE", FETCH_RFC822_SIZE, false},
    {"RFC822.TEXT", FETCH_RFC822_TEXT, false},
    {"BODY", FETCH_BODY, false},
    {"BODYSTRUCTURE", FETCH_BODYSTRUCTURE, false},
    {"UID", FETCH_UID, false},
    {"BODY.PEEK", FETCH_BODY_SECTION, true},
    {"BINARY", FETCH_BINARY, false},
    {"BINARY.PEEK", FETCH_BINARY, true},
    {"BINARY.SIZE", FETCH_BINARY_SIZE, false},
    {"MODSEQ", FETCH_MODSEQ, false},
};

static void att_free(struct fetch_att *att)
{
    for (size_t i = 0; i < att->section.n_fields; i++)
        free(att->section.fields[i]);
    free(att->section.fields);
    att->section.fields = NULL;
    att->section.n_fields = 0;
}

/* fetch-att; the caller checks what follows it. */
static bool fetch_att(struct text *t, struct fetch_att *att)
{
    memset(att, 0, sizeof(*att));
    size_t len = word(t);
    const char *w = t->p;
    size_t k = 0;
    while (k < ARRAY_LEN(att_names) && !args_equal(w, len, att_names[k].name))
        k++;
    if (k == ARRAY_LEN(att_names))
        return fail(t, "Unknown FETCH attribute");
    t->p += len;
    att->item = att_names[k].item;
    att->peek = att_names[k].peek;
    if (att->item == FETCH_BODY && at(t, '['))
        att->item = FETCH_BODY_SECTION;
    bool sectioned = att->item == FETCH_BODY_SECTION || att->item == FETCH_BINARY ||
                     att->item == FETCH_BINARY_SIZE;
    if (!sectioned)
        return true;
    if (!at(t, '['))
        return fail(t, "Expected a section");
    t->p++;
    if (!section(t, &att->section, att->item != FETCH_BODY_SECTION)) {
        att_free(att);
        return false;
    }
    if (at(t, '<')) {
        if (att->item == FETCH_BINARY_SIZE) {
            att_free(att);
            return fail(t, "BINARY.SIZE takes no partial range");
        }
        if (!partial(t, att)) {
            att_free(att);
            return false;
        }
    }
    return true;
}

/* ---- the request ---- */

static bool add_att(struct fetch_request *req, const struct fetch_att *att, const char **error)
{
    if (req->n_atts == FETCH_MAX_ATTS) {
        *error = "Too many FETCH attributes";
        return false;
    }
    req->atts = xrealloc(req->atts, (req->n_atts + 1) * sizeof(*req->atts));
    req->atts[req->n_atts++] = *att;
    return true;
}

/* ALL, FAST and FULL (RFC 3501 §6.4.5); only as the whole attribute specification. */
static bool macro(const char *w, size_t len, struct fetch_request *req)
{
    static const enum fetch_item fast[] = {FETCH_FLAGS, FETCH_INTERNALDATE, FETCH_RFC822_SIZE,
                                           FETCH_ENVELOPE, FETCH_BODY};
    size_t n = args_equal(w, len, "FAST")   ? 3
               : args_equal(w, len, "ALL")  ? 4
               : args_equal(w, len, "FULL") ? 5
                                            : 0;
    if (n == 0)
        return false;
    req->atts = xcalloc(n, sizeof(*req->atts));
    for (size_t i = 0; i < n; i++)
        req->atts[i].item = fast[i];
    req->n_atts = n;
    return true;
}

/* One attribute that must fill w[0..len) exactly (an atom of imap_parse_command()). */
static bool att_from_atom(const char *w, size_t len, struct fetch_request *req, const char **error)
{
    struct text t = {.p = w, .end = w + len};
    struct fetch_att att;
    if (!fetch_att(&t, &att)) {
        *error = t.error;
        return false;
    }
    if (t.p != t.end) {
        att_free(&att);
        *error = "Unexpected text after a FETCH attribute";
        return false;
    }
    if (!add_att(req, &att, error)) {
        att_free(&att);
        return false;
    }
    return true;
}

struct word {
    const char *s;
    size_t len;
};

/* fetch-modifier = "CHANGEDSINCE" SP mod-sequence-value / "VANISHED" (RFC 7162 §3.1.4, §3.2.6).
 * CHANGEDSINCE 0 is taken as "every change" (mod-sequence-valzer), as clients send it. */
static bool modifiers(const struct word *w, size_t n, struct fetch_request *req, const char **error)
{
    if (n == 0) {
        *error = "Empty FETCH modifier list";
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (args_equal(w[i].s, w[i].len, "CHANGEDSINCE")) {
            if (req->has_changedsince) {
                *error = "CHANGEDSINCE given twice";
                return false;
            }
            if (++i == n || !args_number(w[i].s, w[i].len, MODSEQ_MAX, false, &req->changedsince)) {
                *error = "Invalid CHANGEDSINCE value";
                return false;
            }
            req->has_changedsince = true;
        } else if (args_equal(w[i].s, w[i].len, "VANISHED")) {
            if (req->vanished) {
                *error = "VANISHED given twice";
                return false;
            }
            req->vanished = true;
        } else {
            *error = "Unknown FETCH modifier";
            return false;
        }
    }
    return true;
}

static bool fail_request(struct fetch_request *req)
{
    fetch_request_free(req);
    return false;
}

bool fetch_parse(const struct imap_arg *args, size_t n, struct fetch_request *out,
                 const char **error)
{
    memset(out, 0, sizeof(*out));
    if (n == 0) {
        *error = "Missing FETCH attributes";
        return false;
    }
    if (n > 2) {
        *error = "Unexpected argument after the FETCH attributes";
        return false;
    }
    const struct imap_arg *spec = &args[0];
    if (spec->type == IMAP_ARG_ATOM) {
        if (!macro(spec->str, spec->len, out) && !att_from_atom(spec->str, spec->len, out, error))
            return fail_request(out);
    } else if (spec->type == IMAP_ARG_LIST && spec->list_len > 0) {
        for (size_t i = 0; i < spec->list_len; i++) {
            const struct imap_arg *a = &spec->list[i];
            if (a->type != IMAP_ARG_ATOM) {
                *error = "Unknown FETCH attribute";
                return fail_request(out);
            }
            if (!att_from_atom(a->str, a->len, out, error))
                return fail_request(out);
        }
    } else {
        *error = "Expected FETCH attributes";
        return fail_request(out);
    }
    if (n == 2) {
        const struct imap_arg *m = &args[1];
        if (m->type != IMAP_ARG_LIST) {
            *error = "Unexpected argument after the FETCH attributes";
            return fail_request(out);
        }
        struct word w[4];
        if (m->list_len > ARRAY_LEN(w)) {
            *error = "Too many FETCH modifiers";
            return fail_request(out);
        }
        for (size_t i = 0; i < m->list_len; i++) {
            if (m->list[i].type != IMAP_ARG_ATOM) {
                *error = "Unknown FETCH modifier";
                return fail_request(out);
            }
            w[i].s = m->list[i].str;
            w[i].len = m->list[i].len;
        }
        if (!modifiers(w, m->list_len, out, error))
            return fail_request(out);
    }
    return true;
}

/* An attribute in the raw text, up to SP, ")" or the end. */
static bool att_from_text(struct text *t, struct fetch_request *req, const char **error)
{
    struct fetch_att att;
    if (!fetch_att(t, &att)) {
        *error = t->error;
        return false;
    }
    if (t->p < t->end && *t->p != ' ' && *t->p != ')') {
        att_free(&att);
        *error = "Unexpected text after a FETCH attribute";
        return false;
    }
    if (!add_att(req, &att, error)) {
        att_free(&att);
        return false;
    }
    return true;
}

bool fetch_parse_text(const char *text, size_t len, struct fetch_request *out, const char **error)
{
    memset(out, 0, sizeof(*out));
    struct text t = {.p = text, .end = text + len};
    if (t.p == t.end) {
        *error = "Missing FETCH attributes";
        return false;
    }
    if (at(&t, '(')) {
        t.p++;
        for (;;) {
            if (!att_from_text(&t, out, error))
                return fail_request(out);
            if (at(&t, ')'))
                break;
            /* a single space between attributes, never before ")" */
            if (!at(&t, ' ') || t.p + 1 >= t.end || t.p[1] == ' ' || t.p[1] == ')') {
                *error = at(&t, ' ') ? "Unexpected space" : "Missing ')'";
                return fail_request(out);
            }
            t.p++;
        }
        t.p++;
    } else {
        const char *w = t.p;
        while (t.p < t.end && *t.p != ' ')
            t.p++;
        if (!macro(w, (size_t)(t.p - w), out)) {
            t.p = w;
            if (!att_from_text(&t, out, error))
                return fail_request(out);
            if (at(&t, ')')) {
                *error = "Unexpected ')'";
                return fail_request(out);
            }
        }
    }
    if (t.p < t.end) {
        /* SP "(" fetch-modifier *(SP fetch-modifier) ")" */
        if (t.end - t.p < 3 || t.p[0] != ' ' || t.p[1] != '(' || t.end[-1] != ')') {
            *error = "Unexpected argument after the FETCH attributes";
            return fail_request(out);
        }
        t.p += 2;
        struct word w[4];
        size_t n = 0;
        for (;;) {
            const char *start = t.p;
            while (t.p < t.end - 1 && args_is_atom_char((unsigned char)*t.p))
                t.p++;
            if (t.p == start || n == ARRAY_LEN(w)) {
                *error = t.p == start ? "Unknown FETCH modifier" : "Too many FETCH modifiers";
                return fail_request(out);
            }
            w[n].s = start;
            w[n++].len = (size_t)(t.p - start);
            if (t.p == t.end - 1)
                break;
            if (*t.p != ' ') {
                *error = "Unknown FETCH modifier";
                return fail_request(out);
            }
            t.p++;
        }
        if (!modifiers(w, n, out, error))
            return fail_request(out);
    }
    return true;
}

bool fetch_sets_seen(const struct fetch_request *req)
{
    for (size_t i = 0; i < req->n_atts; i++) {
        const struct fetch_att *a = &req->atts[i];
        if (((a->item == FETCH_BODY_SECTION || a->item == FETCH_BINARY) && !a->peek) ||
            a->item == FETCH_RFC822 || a->item == FETCH_RFC822_TEXT)
            return true;
    }
    return false;
}

/* ---- echo names ---- */

struct buf {
    char *s;
    size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_u32(struct buf *b, uint32_t n)
{
    char tmp[12];
    int len = snprintf(tmp, sizeof(tmp), "%u", n);
    put(b, tmp, (size_t)len);
}

/* A field name as an atom when it is one, otherwise as a quoted string. */
static void put_field(struct buf *b, const char *f)
{
    size_t len = strlen(f);
    if (args_is_atom(f, len)) {
        put(b, f, len);
        return;
    }
    put(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        if (f[i] == '"' || f[i] == '\\')
            put(b, "\\", 1);
        put(b, &f[i], 1);
    }
    put(b, "\"", 1);
}

static void put_section(struct buf *b, const struct fetch_section *s)
{
    static const char *const texts[] = {
        [SECTION_WHOLE] = "",
        [SECTION_HEADER] = "HEADER",
        [SECTION_HEADER_FIELDS] = "HEADER.FIELDS",
        [SECTION_HEADER_FIELDS_NOT] = "HEADER.FIELDS.NOT",
        [SECTION_TEXT] = "TEXT",
        [SECTION_MIME] = "MIME",
    };
    put(b, "[", 1);
    for (size_t i = 0; i < s->n_parts; i++) {
        if (i > 0)
            put(b, ".", 1);
        put_u32(b, s->parts[i]);
    }
    if (s->text != SECTION_WHOLE) {
        if (s->n_parts > 0)
            put(b, ".", 1);
        puts_(b, texts[s->text]);
    }
    if (s->n_fields > 0) {
        put(b, " (", 2);
        for (size_t i = 0; i < s->n_fields; i++) {
            if (i > 0)
                put(b, " ", 1);
            put_field(b, s->fields[i]);
        }
        put(b, ")", 1);
    }
    put(b, "]", 1);
}

char *fetch_att_name(const struct fetch_att *att)
{
    static const char *const names[] = {
        [FETCH_ENVELOPE] = "ENVELOPE",           [FETCH_FLAGS] = "FLAGS",
        [FETCH_INTERNALDATE] = "INTERNALDATE",   [FETCH_RFC822] = "RFC822",
        [FETCH_RFC822_HEADER] = "RFC822.HEADER", [FETCH_RFC822_SIZE] = "RFC822.SIZE",
        [FETCH_RFC822_TEXT] = "RFC822.TEXT",     [FETCH_BODY] = "BODY",
        [FETCH_BODYSTRUCTURE] = "BODYSTRUCTURE", [FETCH_UID] = "UID",
        [FETCH_BODY_SECTION] = "BODY",           [FETCH_BINARY] = "BINARY",
        [FETCH_BINARY_SIZE] = "BINARY.SIZE",     [FETCH_MODSEQ] = "MODSEQ",
    };
    struct buf b = {0};
    puts_(&b, names[att->item]);
    if (att->item == FETCH_BODY_SECTION || att->item == FETCH_BINARY ||
        att->item == FETCH_BINARY_SIZE)
        put_section(&b, &att->section);
    /* RFC 3501 §7.4.2: BODY[<section>]<<origin octet>>, the count is not echoed */
    if (att->has_partial) {
        put(&b, "<", 1);
        put_u32(&b, att->origin);
        put(&b, ">", 1);
    }
    return b.s;
}

void fetch_request_free(struct fetch_request *req)
{
    for (size_t i = 0; i < req->n_atts; i++)
        att_free(&req->atts[i]);
    free(req->atts);
    memset(req, 0, sizeof(*req));
}
