/* Parses one assembled IMAP command into tag, name and arguments: atoms, quoted strings,
 * literals, NIL and parenthesised lists (RFC 3501 §4, §9; RFC 7888 literals). Atoms may carry
 * a bracketed section with spaces, as in BODY[HEADER.FIELDS (FROM TO)]<0.100>. */
#include <stdlib.h>
#include <string.h>

#include "postern/imap.h"
#include "postern/util.h"

struct cursor {
    const char *p, *end;
    const char *error;
    size_t n_args; /* over all lists, against IMAP_MAX_ARGS */
};

static bool is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* ATOM-CHAR minus the specials that start or end other tokens; "\" and "*", "%" and "]" are
 * kept because flags (\Seen), sequence sets (1:*) and LIST patterns need them. */
static bool is_atom_char(unsigned char c)
{
    return !is_ctl(c) && c != ' ' && c != '(' && c != ')' && c != '{' && c != '"';
}

static bool is_tag_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\+", c);
}

static bool at_line_end(const struct cursor *cur)
{
    return (cur->p < cur->end && *cur->p == '\n') ||
           (cur->end - cur->p >= 2 && cur->p[0] == '\r' && cur->p[1] == '\n');
}

static bool fail(struct cursor *cur, const char *why)
{
    if (cur->error == NULL)
        cur->error = why;
    return false;
}

static bool parse_atom(struct cursor *cur, struct imap_arg *arg)
{
    const char *start = cur->p;
    int depth = 0; /* inside [...] spaces and parentheses belong to the atom */
    while (cur->p < cur->end) {
        unsigned char c = (unsigned char)*cur->p;
        if (c == '[') {
            depth++;
        } else if (c == ']' && depth > 0) {
            depth--;
        } else if (depth > 0 && (c == ' ' || c == '(' || c == ')')) {
            /* part of a section specification */
        } else if (!is_atom_char(c)) {
            break;
        }
        if (depth > IMAP_MAX_LIST_DEPTH)
            return fail(cur, "Too deeply nested brackets");
        cur->p++;
    }
    if (depth != 0)
        return fail(cur, "Unbalanced brackets");
    if (cur->p == start)
        return fail(cur, "Expected an atom");
    arg->len = (size_t)(cur->p - start);
    arg->str = xstrndup(start, arg->len);
    arg->type =
        arg->len == 3 && ascii_ncasecmp(start, "NIL", 3) == 0 ? IMAP_ARG_NIL : IMAP_ARG_ATOM;
    return true;
}

static bool parse_quoted(struct cursor *cur, struct imap_arg *arg)
{
    cur->p++; /* opening quote */
    size_t cap = 32, len = 0;
    char *s = xmalloc(cap);
    for (;;) {
        if (cur->p >= cur->end || *cur->p == '\r' || *cur->p == '\n') {
            free(s);
            return fail(cur, "Unterminated quoted string");
        }
        char c = *cur->p++;
        if (c == '"')
            break;
        if (c == '\\') {
            if (cur->p >= cur->end || (*cur->p != '"' && *cur->p != '\\')) {
                free(s);
                return fail(cur, "Invalid escape in quoted string");
            }
            c = *cur->p++;
        } else if (c == '\0') {
            free(s);
            return fail(cur, "NUL in quoted string");
        }
        if (len + 2 > cap)
            s = xrealloc(s, cap *= 2);
        s[len++] = c;
    }
    s[len] = '\0';
    arg->type = IMAP_ARG_QUOTED;
    arg->str = s;
    arg->len = len;
    return true;
}

static bool parse_literal(struct cursor *cur, struct imap_arg *arg)
{
    cur->p++; /* { */
    size_t v = 0;
    const char *digits = cur->p;
    while (cur->p < cur->end && *cur->p >= '0' && *cur->p <= '9') {
        if (cur->p - digits >= 10)
            return fail(cur, "Literal size too large");
        v = v * 10 + (size_t)(*cur->p - '0');
        cur->p++;
    }
    if (cur->p == digits)
        return fail(cur, "Invalid literal size");
    if (cur->p < cur->end && *cur->p == '+')
        cur->p++;
    if (cur->p >= cur->end || *cur->p != '}')
        return fail(cur, "Invalid literal");
    cur->p++;
    if (cur->p < cur->end && *cur->p == '\r')
        cur->p++;
    if (cur->p >= cur->end || *cur->p != '\n')
        return fail(cur, "Literal must end its line");
    cur->p++;
    if ((size_t)(cur->end - cur->p) < v)
        return fail(cur, "Literal data missing");
    if (memchr(cur->p, '\0', v))
        return fail(cur, "NUL in literal");
    arg->type = IMAP_ARG_LITERAL;
    arg->str = xstrndup(cur->p, v);
    arg->len = v;
    cur->p += v;
    return true;
}

static bool parse_args(struct cursor *cur, struct imap_arg **out, size_t *n_out, int depth);

static bool parse_one(struct cursor *cur, struct imap_arg *arg, int depth)
{
    memset(arg, 0, sizeof(*arg));
    if (++cur->n_args > IMAP_MAX_ARGS)
        return fail(cur, "Too many arguments");
    char c = *cur->p;
    if (c == '"')
        return parse_quoted(cur, arg);
    if (c == '{')
        return parse_literal(cur, arg);
    if (c == '(') {
        if (depth >= IMAP_MAX_LIST_DEPTH)
            return fail(cur, "Too deeply nested lists");
        cur->p++;
        arg->type = IMAP_ARG_LIST;
        if (!parse_args(cur, &arg->list, &arg->list_len, depth + 1))
            return false;
        if (cur->p >= cur->end || *cur->p != ')')
            return fail(cur, "Missing ')'");
        cur->p++;
        return true;
    }
    if (c == ')')
        return fail(cur, "Unexpected ')'");
    return parse_atom(cur, arg);
}

static void free_args(struct imap_arg *args, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (args[i].str && args[i].type == IMAP_ARG_LITERAL)
            wipe(args[i].str, args[i].len);
        free(args[i].str);
        free_args(args[i].list, args[i].list_len);
    }
    free(args);
}

/* Arguments separated by single spaces, up to the line end (depth 0) or ")" (in a list). */
static bool parse_args(struct cursor *cur, struct imap_arg **out, size_t *n_out, int depth)
{
    size_t n = 0, cap = 0;
    struct imap_arg *args = NULL;
    bool first = true;
    for (;;) {
        if (cur->p >= cur->end)
            break;
        if (depth > 0 && *cur->p == ')')
            break;
        if (depth == 0 && at_line_end(cur))
            break;
        /* After the command name and between list items, exactly one space. */
        if (depth == 0 || !first) {
            if (*cur->p != ' ') {
                fail(cur, "Expected a space between arguments");
                goto bad;
            }
            cur->p++;
            if (cur->p >= cur->end || *cur->p == ' ' || at_line_end(cur) ||
                (depth > 0 && *cur->p == ')')) {
                fail(cur, "Unexpected space");
                goto bad;
            }
        }
        first = false;
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            args = xrealloc(args, cap * sizeof(*args));
        }
        if (!parse_one(cur, &args[n], depth)) {
            n++; /* free what was partly filled */
            goto bad;
        }
        n++;
    }
    *out = args;
    *n_out = n;
    return true;
bad:
    free_args(args, n);
    *out = NULL;
    *n_out = 0;
    return false;
}

bool imap_parse_command(const char *buf, size_t len, struct imap_command *cmd, const char **error)
{
    memset(cmd, 0, sizeof(*cmd));
    struct cursor cur = {.p = buf, .end = buf + len};
    const char *t = cur.p;
    while (cur.p < cur.end && is_tag_char((unsigned char)*cur.p))
        cur.p++;
    if (cur.p == t || cur.p >= cur.end || (*cur.p != ' ' && !at_line_end(&cur))) {
        *error = "Invalid tag";
        return false;
    }
    cmd->tag = xstrndup(t, (size_t)(cur.p - t));
    if (at_line_end(&cur) || cur.p + 1 >= cur.end) {
        *error = "Missing command";
        return false;
    }
    cur.p++; /* space */
    const char *name = cur.p;
    while (cur.p < cur.end &&
           ((*cur.p >= 'A' && *cur.p <= 'Z') || (*cur.p >= 'a' && *cur.p <= 'z')))
        cur.p++;
    if (cur.p == name || cur.p >= cur.end || (*cur.p != ' ' && !at_line_end(&cur))) {
        *error = "Invalid command name";
        return false;
    }
    cmd->name = xstrndup(name, (size_t)(cur.p - name));
    if (!parse_args(&cur, &cmd->args, &cmd->n_args, 0)) {
        *error = cur.error ? cur.error : "Invalid arguments";
        return false;
    }
    if (!at_line_end(&cur)) {
        *error = cur.p < cur.end && *cur.p == ')' ? "Unexpected ')'" : "Missing line end";
        return false;
    }
    cur.p += *cur.p == '\r' ? 2 : 1;
    if (cur.p != cur.end) {
        *error = "Data after the end of the command";
        return false;
    }
    return true;
}

void imap_command_free(struct imap_command *cmd)
{
    free(cmd->tag);
    free(cmd->name);
    free_args(cmd->args, cmd->n_args);
    memset(cmd, 0, sizeof(*cmd));
}

bool imap_arg_is_string(const struct imap_arg *a)
{
    return a->type == IMAP_ARG_QUOTED || a->type == IMAP_ARG_LITERAL;
}

bool imap_arg_is_astring(const struct imap_arg *a)
{
    return a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_NIL || imap_arg_is_string(a);
}
