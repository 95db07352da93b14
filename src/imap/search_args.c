/* SEARCH arguments (RFC 3501 §6.4.4 search-key; ESEARCH RETURN RFC 4731; SAVE and "$" RFC 5182;
 * MODSEQ RFC 7162 §3.1.5) into a tree of keys, with UN*, NEW, OLD rewritten to NOT, AND. */
#include <stdlib.h>
#include <string.h>

#include "args_internal.h"
#include "postern/imap_args.h"
#include "postern/util.h"

struct cursor {
    const struct imap_arg *args;
    size_t n, i;
    const char *error;
    struct search_program *prog;
};

static bool fail(struct cursor *c, const char *why)
{
    if (c->error == NULL)
        c->error = why;
    return false;
}

static const struct imap_arg *next_arg(struct cursor *c, const char *missing)
{
    if (c->i >= c->n) {
        fail(c, missing);
        return NULL;
    }
    return &c->args[c->i++];
}

enum key_form {
    FORM_NONE,    /* no parameter */
    FORM_FLAG,    /* a system flag, or its negation (UN...) */
    FORM_STRING,  /* astring: BODY, TEXT, and the header shortcuts */
    FORM_HEADER,  /* field name and astring */
    FORM_KEYWORD, /* flag-keyword */
    FORM_DATE,
    FORM_NUMBER,
    FORM_UIDSET,
    FORM_NOT,
    FORM_OR,
    FORM_MODSEQ,
};

static const struct {
    const char *name;
    enum key_form form;
    enum search_key_type type;
    unsigned flag;      /* FORM_FLAG */
    bool negate;        /* UN... */
    const char *header; /* FORM_STRING: the field the shortcut searches */
    enum search_date_field field;
} keys[] = {
    {"ALL", FORM_NONE, SEARCH_ALL, 0, false, NULL, 0},
    {"NEW", FORM_NONE, SEARCH_AND, 0, false, NULL, 0},
    {"OLD", FORM_NONE, SEARCH_NOT, 0, false, NULL, 0},
    {"ANSWERED", FORM_FLAG, SEARCH_FLAG, IMAP_FLAG_ANSWERED, false, NULL, 0},
    {"DELETED", FORM_FLAG, SEARCH_FLAG, IMAP_FLAG_DELETED, false, NULL, 0},
    {"DRAFT", FORM_FLAG, SEARCH_FLAG, IMAP_FLAG_DRAFT, false, NULL, 0},
    {"FLAGGED", FORM_FLAG, SEARCH_FLAG, IMAP_FLAG_FLAGGED, false, NULL, 0},
    {"RECENT", FORM_FLAG, SEARCH_FLAG, IMAP_FLAG_RECENT, false, NULL, 0},
    {"SEEN", FORM_FLAG, SEARCH_FLAG, IMAP_FLAG_SEEN, false, NULL, 0},
    {"UNANSWERED", FORM_FLAG, SEARCH_FLAG, IMAP_FLAG_ANSWERED, true, NULL, 0},
    {"UNDELETED", FORM_FLAG, SEARCH_FLAG, IMAP_FLAG_DELETED, true, NULL, 0},
    {"UNDRAFT", FORM_FLAG, SEARCH_FLAG, IMAP_FLAG_DRAFT, true, NULL, 0},
    {"UNFLAGGED", FORM_FLAG, SEARCH_FLAG, IMAP_FLAG_FLAGGED, true, NULL, 0},
    {"UNSEEN", FORM_FLAG, SEARCH_FLAG, IMAP_FLAG_SEEN, true, NULL, 0},
    {"KEYWORD", FORM_KEYWORD, SEARCH_KEYWORD, 0, false, NULL, 0},
    {"UNKEYWORD", FORM_KEYWORD, SEARCH_KEYWORD, 0, true, NULL, 0},
    {"BCC", FORM_STRING, SEARCH_HEADER, 0, false, "BCC", 0},
    {"CC", FORM_STRING, SEARCH_HEADER, 0, false, "CC", 0},
    {"FROM", FORM_STRING, SEARCH_HEADER, 0, false, "FROM", 0},
    {"SUBJECT", FORM_STRING, SEARCH_HEADER, 0, false, "SUBJECT", 0},
    {"TO", FORM_STRING, SEARCH_HEADER, 0, false, "TO", 0},
    {"BODY", FORM_STRING, SEARCH_BODY, 0, false, NULL, 0},
    {"TEXT", FORM_STRING, SEARCH_TEXT, 0, false, NULL, 0},
    {"HEADER", FORM_HEADER, SEARCH_HEADER, 0, false, NULL, 0},
    {"BEFORE", FORM_DATE, SEARCH_BEFORE, 0, false, NULL, SEARCH_DATE_INTERNAL},
    {"ON", FORM_DATE, SEARCH_ON, 0, false, NULL, SEARCH_DATE_INTERNAL},
    {"SINCE", FORM_DATE, SEARCH_SINCE, 0, false, NULL, SEARCH_DATE_INTERNAL},
    {"SENTBEFORE", FORM_DATE, SEARCH_BEFORE, 0, false, NULL, SEARCH_DATE_SENT},
    {"SENTON", FORM_DATE, SEARCH_ON, 0, false, NULL, SEARCH_DATE_SENT},
    {"SENTSINCE", FORM_DATE, SEARCH_SINCE, 0, false, NULL, SEARCH_DATE_SENT},
    {"LARGER", FORM_NUMBER, SEARCH_LARGER, 0, false, NULL, 0},
    {"SMALLER", FORM_NUMBER, SEARCH_SMALLER, 0, false, NULL, 0},
    {"UID", FORM_UIDSET, SEARCH_UID, 0, false, NULL, 0},
    {"NOT", FORM_NOT, SEARCH_NOT, 0, false, NULL, 0},
    {"OR", FORM_OR, SEARCH_OR, 0, false, NULL, 0},
    {"MODSEQ", FORM_MODSEQ, SEARCH_MODSEQ, 0, false, NULL, 0},
};

static void key_free(struct search_key *k)
{
    for (size_t i = 0; i < k->n_children; i++)
        key_free(&k->children[i]);
    free(k->children);
    seqset_free(&k->set);
    free(k->keyword);
    free(k->header);
    search_string_free(&k->needle);
    memset(k, 0, sizeof(*k));
}

static struct search_key *add_children(struct search_key *k, size_t n)
{
    k->children = xcalloc(n, sizeof(*k->children));
    k->n_children = n;
    return k->children;
}

static bool parse_key(struct cursor *c, struct search_key *k, int depth);

/* A string argument: astring (atom, quoted string, literal). */
static const struct imap_arg *string_arg(struct cursor *c)
{
    const struct imap_arg *a = next_arg(c, "Missing search string");
    if (a != NULL && !imap_arg_is_astring(a)) {
        fail(c, "Expected a search string");
        return NULL;
    }
    return a;
}

static bool field_name_valid(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126 || s[i] == ':')
            return false;
    return true;
}

static bool set_key(struct cursor *c, const struct imap_arg *a, struct search_key *k, bool uid)
{
    const char *error = NULL;
    if (!seqset_parse_arg(a, &k->set, &error))
        return fail(c, error);
    k->type = uid ? SEARCH_UID : SEARCH_SEQSET;
    if (k->set.last_result)
        c->prog->uses_last_result = true;
    return true;
}

/* MODSEQ [entry-name entry-type-req] mod-sequence-valzer; the entry (a per-flag mod-sequence)
 * is checked and then ignored: this server keeps one mod-sequence per message (§3.1.5). */
static bool modseq_key(struct cursor *c, struct search_key *k)
{
    const struct imap_arg *a = next_arg(c, "Missing MODSEQ value");
    if (a == NULL)
        return false;
    if (a->type == IMAP_ARG_QUOTED) {
        /* entry-flag-name = DQUOTE "/flags/" attr-flag DQUOTE */
        if (a->len <= 7 || ascii_ncasecmp(a->str, "/flags/", 7) != 0)
            return fail(c, "Invalid MODSEQ entry name");
        const struct imap_arg *t = next_arg(c, "Missing MODSEQ entry type");
        if (t == NULL)
            return false;
        if (!args_is_word(t, "priv") && !args_is_word(t, "shared") && !args_is_word(t, "all"))
            return fail(c, "Invalid MODSEQ entry type");
        a = next_arg(c, "Missing MODSEQ value");
        if (a == NULL)
            return false;
    }
    if (a->type != IMAP_ARG_ATOM || !args_number(a->str, a->len, MODSEQ_MAX, false, &k->number))
        return fail(c, "Invalid MODSEQ value");
    k->type = SEARCH_MODSEQ;
    c->prog->uses_modseq = true;
    return true;
}

static bool keyword_key(struct cursor *c, struct search_key *k)
{
    const struct imap_arg *a = next_arg(c, "Missing keyword");
    if (a == NULL)
        return false;
    if ((a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NIL) ||
        !imap_keyword_valid(a->str, a->len))
        return fail(c, "Invalid keyword");
    k->type = SEARCH_KEYWORD;
    k->keyword = xstrndup(a->str, a->len);
    return true;
}

/* The key named by table row r, its parameters taken from the cursor. */
static bool named_key(struct cursor *c, size_t r, struct search_key *k, int depth)
{
    struct search_key *inner = k;
    if (keys[r].negate) {
        k->type = SEARCH_NOT;
        inner = add_children(k, 1);
    }
    switch (keys[r].form) {
    case FORM_NONE:
        k->type = keys[r].type;
        if (k->type == SEARCH_AND) { /* NEW: RECENT and UNSEEN */
            struct search_key *ch = add_children(k, 2);
            ch[0].type = SEARCH_FLAG;
            ch[0].flag = IMAP_FLAG_RECENT;
            ch[1].type = SEARCH_NOT;
            add_children(&ch[1], 1)->type = SEARCH_FLAG;
            ch[1].children[0].flag = IMAP_FLAG_SEEN;
        } else if (k->type == SEARCH_NOT) { /* OLD: not RECENT */
            add_children(k, 1)->type = SEARCH_FLAG;
            k->children[0].flag = IMAP_FLAG_RECENT;
        }
        return true;
    case FORM_FLAG:
        inner->type = SEARCH_FLAG;
        inner->flag = keys[r].flag;
        return true;
    case FORM_KEYWORD:
        return keyword_key(c, inner);
    case FORM_STRING: {
        const struct imap_arg *a = string_arg(c);
        if (a == NULL)
            return false;
        k->type = keys[r].type;
        if (keys[r].header != NULL)
            k->header = xstrdup(keys[r].header);
        search_string_init(&k->needle, a->str, a->len);
        return true;
    }
    case FORM_HEADER: {
        const struct imap_arg *name = string_arg(c);
        if (name == NULL)
            return false;
        if (!field_name_valid(name->str, name->len))
            return fail(c, "Invalid header field name");
        const struct imap_arg *value = string_arg(c);
        if (value == NULL)
            return false;
        k->type = SEARCH_HEADER;
        k->header = xstrndup(name->str, name->len);
        search_string_init(&k->needle, value->str, value->len);
        return true;
    }
    case FORM_DATE: {
        /* date = date-text / DQUOTE date-text DQUOTE */
        const struct imap_arg *a = next_arg(c, "Missing date");
        if (a == NULL)
            return false;
        if ((a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_QUOTED) ||
            !imap_date_parse(a->str, a->len, &k->day))
            return fail(c, "Invalid date");
        k->type = keys[r].type;
        k->field = keys[r].field;
        return true;
    }
    case FORM_NUMBER: {
        /* number64 (RFC 9051); RFC 3501 had 32 bits */
        const struct imap_arg *a = next_arg(c, "Missing size");
        if (a == NULL)
            return false;
        if (a->type != IMAP_ARG_ATOM || !args_number(a->str, a->len, INT64_MAX, false, &k->number))
            return fail(c, "Invalid size");
        k->type = keys[r].type;
        return true;
    }
    case FORM_UIDSET: {
        const struct imap_arg *a = next_arg(c, "Missing UID set");
        return a != NULL && set_key(c, a, k, true);
    }
    case FORM_NOT:
        k->type = SEARCH_NOT;
        return parse_key(c, add_children(k, 1), depth + 1);
    case FORM_OR: {
        k->type = SEARCH_OR;
        struct search_key *ch = add_children(k, 2);
        return parse_key(c, &ch[0], depth + 1) && parse_key(c, &ch[1], depth + 1);
    }
    case FORM_MODSEQ:
        return modseq_key(c, k);
    }
    return fail(c, "Unknown search key");
}

static bool parse_list(struct cursor *c, const struct imap_arg *args, size_t n,
                       struct search_key *k, int depth)
{
    /* "(" search-key *(SP search-key) ")": an AND of the keys */
    k->type = SEARCH_AND;
    struct cursor sub = {.args = args, .n = n, .prog = c->prog};
    size_t cap = 0;
    while (sub.i < sub.n) {
        if (k->n_children == cap) {
            cap = cap ? 2 * cap : 4;
            k->children = xrealloc(k->children, cap * sizeof(*k->children));
        }
        struct search_key *ch = &k->children[k->n_children++];
        memset(ch, 0, sizeof(*ch));
        if (!parse_key(&sub, ch, depth))
            return fail(c, sub.error);
    }
    return true;
}

static bool parse_key(struct cursor *c, struct search_key *k, int depth)
{
    if (depth > SEARCH_MAX_DEPTH)
        return fail(c, "Search keys nested too deeply");
    const struct imap_arg *a = next_arg(c, "Missing search key");
    if (a == NULL)
        return false;
    if (a->type == IMAP_ARG_LIST) {
        if (a->list_len == 0)
            return fail(c, "Empty search key list");
        return parse_list(c, a->list, a->list_len, k, depth + 1);
    }
    if (a->type != IMAP_ARG_ATOM)
        return fail(c, "Expected a search key");
    char first = a->str[0];
    if ((first >= '0' && first <= '9') || first == '*' || first == '$')
        return set_key(c, a, k, false);
    for (size_t r = 0; r < ARRAY_LEN(keys); r++)
        if (args_is_word(a, keys[r].name))
            return named_key(c, r, k, depth);
    return fail(c, "Unknown search key");
}

/* RETURN (MIN MAX ALL COUNT SAVE) (RFC 4731 §3.1, RFC 5182 §2) */
static bool return_options(struct cursor *c, const struct imap_arg *list)
{
    static const struct {
        const char *name;
        unsigned bit;
    } opts[] = {
        {"MIN", SEARCH_RETURN_MIN},     {"MAX", SEARCH_RETURN_MAX},   {"ALL", SEARCH_RETURN_ALL},
        {"COUNT", SEARCH_RETURN_COUNT}, {"SAVE", SEARCH_RETURN_SAVE},
    };
    if (list == NULL || list->type != IMAP_ARG_LIST)
        return fail(c, "Expected a list of RETURN options");
    c->prog->esearch = true;
    for (size_t i = 0; i < list->list_len; i++) {
        unsigned bit = 0;
        for (size_t k = 0; k < ARRAY_LEN(opts) && bit == 0; k++)
            if (args_is_word(&list->list[i], opts[k].name))
                bit = opts[k].bit;
        if (bit == 0)
            return fail(c, "Unknown RETURN option");
        c->prog->returns |= bit;
    }
    /* RFC 4731 §3.1: "RETURN ()" is "RETURN (ALL)" */
    if (list->list_len == 0)
        c->prog->returns = SEARCH_RETURN_ALL;
    return true;
}

enum search_status search_parse(const struct imap_arg *args, size_t n, struct search_program *out,
                                const char **error)
{
    memset(out, 0, sizeof(*out));
    out->root.type = SEARCH_AND;
    struct cursor c = {.args = args, .n = n, .prog = out};
    if (c.i < n && args_is_word(&args[c.i], "RETURN")) {
        c.i++;
        if (!return_options(&c, c.i < n ? &args[c.i] : NULL))
            goto bad;
        c.i++;
    }
    if (c.i < n && args_is_word(&args[c.i], "CHARSET")) {
        c.i++;
        const struct imap_arg *cs = string_arg(&c);
        if (cs == NULL)
            goto bad;
        if (ascii_casecmp(cs->str, "UTF-8") == 0) {
            out->charset = SEARCH_CHARSET_UTF8;
        } else if (ascii_casecmp(cs->str, "US-ASCII") == 0) {
            out->charset = SEARCH_CHARSET_US_ASCII;
        } else {
            /* §6.4.4: an unsupported charset is NO [BADCHARSET], not BAD */
            search_program_free(out);
            *error = "Unsupported charset";
            return SEARCH_BADCHARSET;
        }
    }
    if (c.i >= n) {
        fail(&c, "Missing search keys");
        goto bad;
    }
    if (!parse_list(&c, args + c.i, n - c.i, &out->root, 0))
        goto bad;
    return SEARCH_OK;
bad:
    search_program_free(out);
    *error = c.error;
    return SEARCH_BAD;
}

static void resolve(struct search_key *k, uint32_t max_seq, uint32_t max_uid)
{
    if (k->type == SEARCH_SEQSET)
        seqset_resolve(&k->set, max_seq);
    else if (k->type == SEARCH_UID)
        seqset_resolve(&k->set, max_uid);
    for (size_t i = 0; i < k->n_children; i++)
        resolve(&k->children[i], max_seq, max_uid);
}

void search_resolve(struct search_program *prog, uint32_t max_seq, uint32_t max_uid)
{
    resolve(&prog->root, max_seq, max_uid);
}

void search_program_free(struct search_program *prog)
{
    key_free(&prog->root);
    memset(prog, 0, sizeof(*prog));
}
