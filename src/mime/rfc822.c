/* RFC 5322 / RFC 2045 header values: CFWS, atoms, quoted strings, addresses for ENVELOPE and
 * Content-Type parameters with RFC 2231 continuations, parsed the way Dovecot 2.3 parses them
 * (its recovery from broken input decides what IMAP clients see, so we recover the same way). */
#include "postern/mime.h"

#include <stdlib.h>
#include <string.h>

#include "postern/util.h"

static const char REPLACEMENT_CHAR[] = "\xef\xbf\xbd";

/* A cursor over one unfolded header value. comment gets the text of the last comment passed,
 * which names an address written as "user@host (Name)". */
struct lexer {
    const unsigned char *p, *end;
    struct mime_buf comment;
};

enum { LEX_ERROR = -1, LEX_END = 0, LEX_MORE = 1 };

static bool is_atext(unsigned char c)
{
    if (c >= 0x80)
        return true; /* 8-bit text in headers is common and Dovecot reads it as atext */
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* RFC 2045 token: atext without the tspecials "/=?", and the dot. */
static bool is_token(unsigned char c)
{
    return c == '.' || (is_atext(c) && c != '/' && c != '=' && c != '?');
}

static int lex_state(const struct lexer *lx)
{
    return lx->p < lx->end ? LEX_MORE : LEX_END;
}

static int skip_comment(struct lexer *lx)
{
    unsigned level = 1;
    lx->comment.len = 0;
    for (lx->p++; lx->p < lx->end; lx->p++) {
        unsigned char c = *lx->p;
        if (c == '(') {
            level++;
        } else if (c == ')') {
            if (--level == 0) {
                lx->p++;
                mime_buf_add(&lx->comment, "", 0);
                return lex_state(lx);
            }
        } else if (c == '\\' && lx->p + 1 < lx->end && lx->p[1] != '\r' && lx->p[1] != '\n' &&
                   lx->p[1] != '\0') {
            c = *++lx->p;
        } else if (c == '\\') {
            if (lx->p + 1 >= lx->end)
                return LEX_ERROR;
        } else if (c == '\r' || c == '\n') {
            continue;
        } else if (c == '\0') {
            mime_buf_add(&lx->comment, REPLACEMENT_CHAR, 3);
            continue;
        }
        mime_buf_add_char(&lx->comment, (char)c);
    }
    return LEX_ERROR; /* no closing parenthesis */
}

/* CFWS: blanks, line breaks and comments. */
static int skip_cfws(struct lexer *lx)
{
    while (lx->p < lx->end) {
        unsigned char c = *lx->p;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            lx->p++;
        } else if (c == '(') {
            if (skip_comment(lx) == LEX_ERROR) {
                lx->p = lx->end;
                return LEX_ERROR;
            }
        } else {
            break;
        }
    }
    return lex_state(lx);
}

static int quoted_string(struct lexer *lx, struct mime_buf *out)
{
    for (lx->p++; lx->p < lx->end; lx->p++) {
        unsigned char c = *lx->p;
        if (c == '"') {
            lx->p++;
            return skip_cfws(lx);
        }
        if (c == '\r' && lx->p + 1 < lx->end && lx->p[1] != '\n')
            return LEX_ERROR;
        if (c == '\r' || c == '\n')
            continue; /* folding */
        if (c == '\0') {
            mime_buf_add(out, REPLACEMENT_CHAR, 3);
            continue;
        }
        if (c == '\\') {
            if (lx->p + 1 >= lx->end)
                return LEX_ERROR;
            if (lx->p[1] != '\r' && lx->p[1] != '\n' && lx->p[1] != '\0')
                c = *++lx->p;
        }
        mime_buf_add_char(out, (char)c);
    }
    return LEX_ERROR; /* no closing quote */
}

static int run_of(struct lexer *lx, struct mime_buf *out, bool (*accept)(unsigned char), bool dots)
{
    const unsigned char *start = lx->p;
    while (lx->p < lx->end && (accept(*lx->p) || (dots && *lx->p == '.')))
        lx->p++;
    mime_buf_add(out, start, (size_t)(lx->p - start));
    return skip_cfws(lx);
}

static int atom(struct lexer *lx, struct mime_buf *out)
{
    if (lx->p >= lx->end || !is_atext(*lx->p))
        return LEX_ERROR;
    return run_of(lx, out, is_atext, false);
}

static int token(struct lexer *lx, struct mime_buf *out)
{
    return run_of(lx, out, is_token, false);
}

/* dot-atom, with blanks allowed around the dots as RFC 822 did. */
static int dot_atom(struct lexer *lx, struct mime_buf *out)
{
    if (lx->p >= lx->end || !is_atext(*lx->p))
        return LEX_ERROR;
    for (;;) {
        const unsigned char *start = lx->p;
        while (lx->p < lx->end && is_atext(*lx->p))
            lx->p++;
        mime_buf_add(out, start, (size_t)(lx->p - start));
        if (lx->p >= lx->end)
            return LEX_END;
        int r = skip_cfws(lx);
        if (r <= 0 || *lx->p != '.')
            return r;
        lx->p++;
        mime_buf_add_char(out, '.');
        if ((r = skip_cfws(lx)) <= 0)
            return r;
    }
}

/* phrase = 1*word / obs-phrase: words joined by one space; may be empty (LEX_MORE) when the
 * next character starts no word, so that "<a@b>" reads as a name-addr without a name. */
static int phrase(struct lexer *lx, struct mime_buf *out)
{
    if (lx->p >= lx->end)
        return LEX_END;
    if (*lx->p == '.')
        return LEX_ERROR;
    for (;;) {
        int r = *lx->p == '"' ? quoted_string(lx, out) : run_of(lx, out, is_atext, true);
        if (r <= 0)
            return r;
        if (!is_atext(*lx->p) && *lx->p != '"' && *lx->p != '.')
            return skip_cfws(lx);
        mime_buf_add_char(out, ' ');
    }
}

/* "@" domain, a dot-atom or a [domain literal]. */
static int domain(struct lexer *lx, struct mime_buf *out)
{
    lx->p++;
    if (skip_cfws(lx) <= 0)
        return LEX_ERROR;
    if (*lx->p != '[')
        return dot_atom(lx, out);
    const unsigned char *start = lx->p;
    for (; lx->p < lx->end; lx->p++) {
        if (*lx->p == '\\' && lx->p + 1 < lx->end) {
            lx->p++;
        } else if (*lx->p == ']') {
            lx->p++;
            mime_buf_add(out, start, (size_t)(lx->p - start));
            return skip_cfws(lx);
        }
    }
    return LEX_ERROR;
}

/* ---- addresses ---- */

struct address {
    char *name, *route, *mailbox, *domain; /* NULL = NIL */
    bool invalid;
};

struct address_parser {
    struct lexer lx;
    struct mime_buf word;
    struct address cur;
    struct address *list;
    size_t n, cap;
};

static char *word_copy(const struct mime_buf *word)
{
    return xstrndup(word->len ? word->data : "", word->len);
}

static void push_address(struct address_parser *ap)
{
    if (ap->n == ap->cap) {
        ap->cap = ap->cap ? ap->cap * 2 : 8;
        ap->list = xrealloc(ap->list, ap->cap * sizeof(*ap->list));
    }
    ap->list[ap->n++] = ap->cur;
    memset(&ap->cur, 0, sizeof(ap->cur));
}

static void set_field(char **field, char *value)
{
    free(*field);
    *field = value;
}

static void push_fixed_address(struct address_parser *ap)
{
    if (ap->cur.mailbox == NULL)
        ap->cur.mailbox = xstrdup("MISSING_MAILBOX");
    if (ap->cur.domain == NULL || ap->cur.domain[0] == '\0')
        set_field(&ap->cur.domain, xstrdup("MISSING_DOMAIN"));
    push_address(ap);
}

static int local_part(struct address_parser *ap)
{
    ap->word.len = 0;
    int r = *ap->lx.p == '"' ? quoted_string(&ap->lx, &ap->word) : dot_atom(&ap->lx, &ap->word);
    if (r < 0)
        return LEX_ERROR;
    set_field(&ap->cur.mailbox, word_copy(&ap->word));
    return r;
}

static int address_domain(struct address_parser *ap)
{
    ap->word.len = 0;
    int r = domain(&ap->lx, &ap->word);
    if (r < 0)
        return LEX_ERROR;
    set_field(&ap->cur.domain, word_copy(&ap->word));
    return r;
}

/* obs-route: "@a,@b:" becomes the adl "@a,@b". LEX_MORE when a route was read. */
static int route(struct address_parser *ap)
{
    struct mime_buf adl = {0};
    int r;
    for (;;) {
        if (ap->lx.p >= ap->lx.end) {
            r = LEX_END;
            break;
        }
        if (*ap->lx.p != '@') {
            set_field(&ap->cur.route, word_copy(&adl));
            r = LEX_MORE;
            break;
        }
        if (adl.len > 0)
            mime_buf_add_char(&adl, ',');
        mime_buf_add_char(&adl, '@');
        ap->word.len = 0;
        if ((r = domain(&ap->lx, &ap->word)) <= 0)
            break;
        mime_buf_add(&adl, ap->word.data, ap->word.len);
        while (skip_cfws(&ap->lx) > 0 && *ap->lx.p == ',')
            ap->lx.p++;
    }
    mime_buf_free(&adl);
    return r;
}

static int angle_addr(struct address_parser *ap)
{
    ap->lx.p++; /* '<' */
    if (skip_cfws(&ap->lx) <= 0)
        return LEX_ERROR;
    if (*ap->lx.p == '@') {
        if (route(ap) > 0 && *ap->lx.p == ':') {
            ap->lx.p++;
        } else {
            set_field(&ap->cur.route, xstrdup("INVALID_ROUTE"));
            if (ap->lx.p >= ap->lx.end)
                return LEX_ERROR;
        }
        if (skip_cfws(&ap->lx) <= 0)
            return LEX_ERROR;
    }
    if (*ap->lx.p != '>') { /* "<>" has neither mailbox nor domain */
        if (local_part(ap) <= 0)
            return LEX_ERROR;
        if (*ap->lx.p == '@' && address_domain(ap) <= 0)
            return LEX_ERROR;
    }
    if (*ap->lx.p != '>')
        return LEX_ERROR;
    ap->lx.p++;
    return skip_cfws(&ap->lx);
}

static int name_addr(struct address_parser *ap)
{
    ap->word.len = 0;
    if (phrase(&ap->lx, &ap->word) <= 0 || *ap->lx.p != '<')
        return LEX_ERROR;
    if (ap->word.len > 0)
        set_field(&ap->cur.name, word_copy(&ap->word));
    if (angle_addr(ap) < 0) {
        set_field(&ap->cur.domain, xstrdup("SYNTAX_ERROR"));
        ap->cur.invalid = true;
    }
    return lex_state(&ap->lx);
}

static int addr_spec(struct address_parser *ap)
{
    bool quoted = *ap->lx.p == '"';
    bool domain_tried = false;
    ap->lx.comment.len = 0;
    int r = local_part(ap);
    if (r <= 0)
        ap->cur.invalid = true;
    if (r != 0 && ap->lx.p < ap->lx.end && *ap->lx.p == '@') {
        domain_tried = true;
        int d = address_domain(ap);
        if (d <= 0)
            r = d;
    }
    if (ap->lx.comment.len > 0) {
        set_field(&ap->cur.name, word_copy(&ap->lx.comment));
    } else if (!domain_tried) {
        /* "user" alone is a mailbox; "John Smith" without an address is a display name */
        size_t before = ap->word.len + 1;
        mime_buf_add_char(&ap->word, ' ');
        (void)phrase(&ap->lx, &ap->word);
        if (ap->word.len != before) {
            set_field(&ap->cur.mailbox, NULL);
            set_field(&ap->cur.name, word_copy(&ap->word));
        } else if (!quoted) {
            set_field(&ap->cur.domain, xstrdup(""));
        }
        ap->cur.invalid = true;
        r = LEX_ERROR;
    }
    return r;
}

static int mailbox(struct address_parser *ap)
{
    const unsigned char *start = ap->lx.p;
    int r = name_addr(ap);
    if (r < 0) {
        ap->lx.p = start;
        r = addr_spec(ap);
        if (ap->cur.invalid && ap->cur.name == NULL && ap->cur.mailbox != NULL &&
            ap->cur.domain == NULL) {
            ap->cur.name = ap->cur.mailbox;
            ap->cur.mailbox = NULL;
        }
    }
    push_fixed_address(ap);
    return r;
}

static int group(struct address_parser *ap)
{
    ap->word.len = 0;
    if (phrase(&ap->lx, &ap->word) <= 0 || *ap->lx.p != ':')
        return LEX_ERROR;
    /* from here on it is a group, whatever follows */
    ap->lx.p++;
    int r = skip_cfws(&ap->lx);
    ap->cur.mailbox = word_copy(&ap->word);
    push_address(ap);
    if (r > 0 && *ap->lx.p != ';') {
        for (;;) {
            (void)mailbox(ap);
            if (ap->lx.p >= ap->lx.end || *ap->lx.p != ',')
                break;
            ap->lx.p++;
            if (skip_cfws(&ap->lx) <= 0) {
                r = LEX_ERROR;
                break;
            }
        }
    }
    if (r >= 0) {
        if (ap->lx.p >= ap->lx.end || *ap->lx.p != ';') {
            r = LEX_ERROR;
        } else {
            ap->lx.p++;
            r = skip_cfws(&ap->lx);
        }
    }
    push_address(ap); /* (NIL NIL NIL NIL) ends the group */
    return r == LEX_END ? LEX_END : LEX_MORE;
}

static void free_address(struct address *a)
{
    free(a->name);
    free(a->route);
    free(a->mailbox);
    free(a->domain);
}

static void parse_address_list(struct address_parser *ap)
{
    if (skip_cfws(&ap->lx) <= 0)
        return;
    for (;;) {
        const unsigned char *start = ap->lx.p;
        int r = group(ap);
        if (r < 0) {
            ap->lx.p = start;
            r = mailbox(ap);
        }
        if (r == LEX_END || ap->lx.p >= ap->lx.end || *ap->lx.p != ',')
            return;
        ap->lx.p++;
        r = skip_cfws(&ap->lx);
        if (r < 0)
            push_fixed_address(ap); /* ends in garbage */
        if (r <= 0)
            return;
    }
}

static void add_nstring(struct mime_buf *out, const char *s)
{
    mime_imap_nstring(out, s, s ? strlen(s) : 0);
}

void mime_imap_address_list(struct mime_buf *out, const char *value, size_t len)
{
    struct address_parser ap = {
        .lx = {(const unsigned char *)value, (const unsigned char *)value + len, {0}}};
    parse_address_list(&ap);
    if (ap.n == 0) {
        mime_buf_add_str(out, "NIL");
    } else {
        mime_buf_add_char(out, '(');
        for (size_t i = 0; i < ap.n; i++) {
            const struct address *a = &ap.list[i];
            mime_buf_add_char(out, '(');
            if (a->name == NULL)
                mime_buf_add_str(out, "NIL");
            else
                mime_imap_string_for_humans(out, a->name, strlen(a->name));
            mime_buf_add_char(out, ' ');
            add_nstring(out, a->route);
            mime_buf_add_char(out, ' ');
            add_nstring(out, a->mailbox);
            mime_buf_add_char(out, ' ');
            add_nstring(out, a->domain);
            mime_buf_add_char(out, ')');
        }
        mime_buf_add_char(out, ')');
    }
    for (size_t i = 0; i < ap.n; i++)
        free_address(&ap.list[i]);
    free_address(&ap.cur); /* what a broken address left unpushed */
    free(ap.list);
    mime_buf_free(&ap.word);
    mime_buf_free(&ap.lx.comment);
}

/* ---- Content-Type / Content-Disposition ---- */

/* One parameter as written; RFC 2231 sections are merged after all are read. */
struct raw_param {
    char *name, *value;
    bool sectioned; /* name*N or name* */
    bool extended;  /* the section's value is charset'lang'%XX */
    unsigned long index;
    size_t order;
};

/* ";" attribute "=" value; LEX_ERROR for a broken one (the caller skips a byte and retries). */
static int content_param(struct lexer *lx, struct mime_buf *name, struct mime_buf *value)
{
    name->len = value->len = 0;
    if (lx->p >= lx->end)
        return LEX_END;
    if (*lx->p != ';')
        return LEX_ERROR;
    lx->p++;
    if (skip_cfws(lx) <= 0 || token(lx, name) <= 0 || *lx->p != '=')
        return LEX_ERROR;
    lx->p++;
    int r = skip_cfws(lx);
    if (r <= 0)
        return r < 0 ? LEX_ERROR : LEX_MORE; /* no value */
    if (*lx->p == '"') {
        r = quoted_string(lx, value);
    } else if (*lx->p == '=') {
        /* name==?utf-8?q?...?= : an encoded word where a token belongs, kept as written */
        const unsigned char *start = lx->p;
        while (lx->p < lx->end && !strchr("; \t\r\n", *lx->p))
            lx->p++;
        mime_buf_add(value, start, (size_t)(lx->p - start));
        r = LEX_MORE;
    } else {
        r = token(lx, value);
    }
    return r < 0 ? LEX_ERROR : LEX_MORE;
}

static int compare_sections(const void *a, const void *b)
{
    const struct raw_param *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static void add_param(struct mime_content *out, char *name, char *value)
{
    out->params = xrealloc(out->params, (out->n_params + 1) * sizeof(*out->params));
    out->params[out->n_params].name = name;
    out->params[out->n_params].value = value;
    out->n_params++;
}

/* name*0*=us-ascii'en'a; name*1=b -> "name*" "us-ascii'en'ab": sections are joined raw, in
 * order, and the name keeps a "*" when the first section is extended. */
static void read_params(struct lexer *lx, struct mime_content *out)
{
    struct mime_buf name = {0}, value = {0};
    struct raw_param *sections = NULL;
    size_t n_sections = 0;
    for (size_t order = 0;; order++) {
        int r = content_param(lx, &name, &value);
        if (r == LEX_END)
            break;
        if (r < 0) {
            if (lx->p >= lx->end)
                break;
            lx->p++;
            continue;
        }
        char *star = memchr(name.data, '*', name.len);
        if (star == NULL) {
            add_param(out, word_copy(&name), word_copy(&value));
            continue;
        }
        struct raw_param s = {.sectioned = true, .order = order};
        s.name = xstrndup(name.data, (size_t)(star - name.data));
        const char *rest = star + 1;
        if (*rest >= '0' && *rest <= '9') {
            char *after;
            s.index = strtoul(rest, &after, 10);
            rest = after;
            s.extended = *rest == '*';
        } else {
            s.extended = true; /* name*=charset'lang'value */
        }
        s.value = word_copy(&value);
        sections = xrealloc(sections, (n_sections + 1) * sizeof(*sections));
        sections[n_sections++] = s;
    }
    if (n_sections > 0)
        qsort(sections, n_sections, sizeof(*sections), compare_sections);
    for (size_t i = 0; i < n_sections;) {
        size_t j = i;
        struct mime_buf joined = {0};
        unsigned long next = 0;
        for (; j < n_sections && strcmp(sections[j].name, sections[i].name) == 0; j++) {
            if (sections[j].index == next) {
                mime_buf_add_str(&joined, sections[j].value);
                next++;
            }
        }
        if (next > 0) {
            size_t len = strlen(sections[i].name);
            char *merged_name = xmalloc(len + 2);
            memcpy(merged_name, sections[i].name, len);
            merged_name[len] = sections[i].extended ? '*' : '\0';
            merged_name[len + 1] = '\0';
            add_param(out, merged_name, word_copy(&joined));
        }
        mime_buf_free(&joined);
        i = j;
    }
    for (size_t i = 0; i < n_sections; i++) {
        free(sections[i].name);
        free(sections[i].value);
    }
    free(sections);
    mime_buf_free(&name);
    mime_buf_free(&value);
}

bool mime_content_parse(const char *value, size_t len, bool with_subtype, struct mime_content *out)
{
    struct lexer lx = {(const unsigned char *)value, (const unsigned char *)value + len, {0}};
    struct mime_buf word = {0};
    memset(out, 0, sizeof(*out));
    bool ok = false;
    if (skip_cfws(&lx) > 0 && token(&lx, &word) >= 0 && word.len > 0) {
        ok = true;
        out->type = word_copy(&word);
        bool params = true;
        if (with_subtype) {
            word.len = 0;
            /* a type without "/subtype" is kept, its parameters are not read */
            if (lx.p < lx.end && *lx.p == '/') {
                lx.p++;
                params = skip_cfws(&lx) > 0 && token(&lx, &word) >= 0;
            } else {
                params = false;
            }
            out->subtype = word_copy(&word);
        }
        if (params)
            read_params(&lx, out);
    }
    mime_buf_free(&word);
    mime_buf_free(&lx.comment);
    return ok;
}

void mime_content_free(struct mime_content *content)
{
    free(content->type);
    free(content->subtype);
    for (size_t i = 0; i < content->n_params; i++) {
        free(content->params[i].name);
        free(content->params[i].value);
    }
    free(content->params);
    memset(content, 0, sizeof(*content));
}

bool mime_language_list(struct mime_buf *out, const char *value, size_t len)
{
    struct lexer lx = {(const unsigned char *)value, (const unsigned char *)value + len, {0}};
    struct mime_buf word = {0};
    size_t n = 0;
    (void)skip_cfws(&lx);
    for (;;) {
        word.len = 0;
        if (atom(&lx, &word) < 0)
            break;
        mime_buf_add_str(out, n++ ? " " : "(");
        mime_imap_string(out, word.data, word.len);
        if (lx.p >= lx.end || *lx.p != ',')
            break;
        lx.p++;
        (void)skip_cfws(&lx);
    }
    if (n > 0)
        mime_buf_add_char(out, ')');
    mime_buf_free(&word);
    mime_buf_free(&lx.comment);
    return n > 0;
}
