/* libFuzzer target: FETCH attributes (fetch_parse on imap_parse_command's arguments,
 * fetch_parse_text on the raw text, fetch_att_name, fetch_sets_seen, imap_command_rest). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/imap.h"
#include "postern/imap_args.h"

/*
 * The input is what a client sends after "a FETCH 1 " (literals inline). The command
 * "a FETCH 1 <input>\r\n" goes through imap_parse_command() and fetch_parse(); the input alone
 * through fetch_parse_text(), the parser for what the generic one cannot represent. Where
 * imap_parse_command() accepts the command, both FETCH parsers must agree: both refuse, or
 * both accept the same attributes and modifiers. Every accepted attribute's echo name, made a
 * request again (the partial's count put back), must parse to the same attribute.
 */

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant violated: %s\n", what);
        abort();
    }
}

static bool same_att(const struct fetch_att *a, const struct fetch_att *b)
{
    if (a->item != b->item || a->peek != b->peek || a->has_partial != b->has_partial ||
        a->origin != b->origin || a->count != b->count)
        return false;
    const struct fetch_section *x = &a->section, *y = &b->section;
    if (x->n_parts != y->n_parts || x->text != y->text || x->n_fields != y->n_fields)
        return false;
    for (size_t i = 0; i < x->n_parts; i++)
        if (x->parts[i] != y->parts[i])
            return false;
    for (size_t i = 0; i < x->n_fields; i++)
        if (strcmp(x->fields[i], y->fields[i]) != 0)
            return false;
    return true;
}

static void check_request(const struct fetch_request *r)
{
    check(r->n_atts > 0 && r->n_atts <= FETCH_MAX_ATTS, "attribute count");
    bool seen = false;
    for (size_t i = 0; i < r->n_atts; i++) {
        const struct fetch_att *a = &r->atts[i];
        const struct fetch_section *s = &a->section;
        check(s->n_parts <= FETCH_MAX_PART_DEPTH, "part depth");
        check(s->n_fields <= FETCH_MAX_HEADER_FIELDS, "field count");
        check((s->n_fields > 0) ==
                  (s->text == SECTION_HEADER_FIELDS || s->text == SECTION_HEADER_FIELDS_NOT),
              "fields without HEADER.FIELDS");
        check(s->text != SECTION_MIME || s->n_parts > 0, "MIME without a part");
        for (size_t k = 0; k < s->n_parts; k++)
            check(s->parts[k] > 0, "part number 0");
        for (size_t k = 0; k < s->n_fields; k++) {
            size_t len = strlen(s->fields[k]);
            check(len > 0 && len <= FETCH_MAX_FIELD_LEN, "field length");
            check(strchr(s->fields[k], ':') == NULL, "colon in a field name");
        }
        check(!a->has_partial || a->count > 0, "partial count 0");
        if (a->item == FETCH_BINARY || a->item == FETCH_BINARY_SIZE)
            check(s->text == SECTION_WHOLE, "BINARY with a section text");
        check(a->item != FETCH_BINARY_SIZE || !a->has_partial, "BINARY.SIZE with a partial");
        if (((a->item == FETCH_BODY_SECTION || a->item == FETCH_BINARY) && !a->peek) ||
            a->item == FETCH_RFC822 || a->item == FETCH_RFC822_TEXT)
            seen = true;

        /* the echo name as a request: BODY[...]<origin> gets its count back */
        char *name = fetch_att_name(a);
        check(name != NULL && name[0] != '\0', "empty echo name");
        char request[8192];
        int n = snprintf(request, sizeof(request), "%s", name);
        if (a->has_partial) {
            char *lt = strrchr(request, '<');
            check(lt != NULL, "partial not echoed");
            n = (int)(lt - request);
            n += snprintf(request + n, sizeof(request) - (size_t)n, "<%u.%u>", a->origin, a->count);
        }
        free(name);
        if (n <= 0 || (size_t)n >= sizeof(request))
            continue;
        struct fetch_request again;
        const char *error = NULL;
        check(fetch_parse_text(request, (size_t)n, &again, &error), "echo name does not parse");
        check(again.n_atts == 1, "echo name is not one attribute");
        struct fetch_att want = *a;
        want.peek = false; /* BODY.PEEK[...] is echoed BODY[...] */
        check(same_att(&again.atts[0], &want), "echo name parses to another attribute");
        fetch_request_free(&again);
    }
    check(fetch_sets_seen(r) == seen, "fetch_sets_seen");
}

static void compare(const struct fetch_request *a, const struct fetch_request *b)
{
    check(a->n_atts == b->n_atts, "parsers differ on the attribute count");
    for (size_t i = 0; i < a->n_atts; i++)
        check(same_att(&a->atts[i], &b->atts[i]), "parsers differ on an attribute");
    check(a->has_changedsince == b->has_changedsince && a->changedsince == b->changedsince &&
              a->vanished == b->vanished,
          "parsers differ on the modifiers");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    static const char head[] = "a FETCH 1 ";
    size_t len = sizeof(head) - 1 + size + 2;
    char *buf = malloc(len + 1);
    check(buf != NULL, "out of memory");
    memcpy(buf, head, sizeof(head) - 1);
    memcpy(buf + sizeof(head) - 1, data, size);
    memcpy(buf + len - 2, "\r\n", 3); /* with a NUL after the command, as the reader leaves it */

    struct fetch_request by_text;
    const char *text_error = NULL;
    bool text_ok = fetch_parse_text((const char *)data, size, &by_text, &text_error);
    check(text_ok || text_error != NULL, "text error without message");
    if (text_ok)
        check_request(&by_text);

    struct imap_command cmd;
    const char *error = NULL;
    if (imap_parse_command(buf, len, &cmd, &error)) {
        /* the raw text the session would hand over is the input itself */
        const char *rest;
        size_t rest_len;
        check(imap_command_rest(buf, len, 3, &rest, &rest_len), "imap_command_rest failed");
        check(rest == buf + sizeof(head) - 1 && rest_len == size, "imap_command_rest text");

        struct fetch_request by_args;
        error = NULL;
        bool args_ok = fetch_parse(cmd.args + 1, cmd.n_args - 1, &by_args, &error);
        check(args_ok || error != NULL, "error without message");
        check(args_ok == text_ok, "the two FETCH parsers disagree");
        if (args_ok) {
            compare(&by_args, &by_text);
            fetch_request_free(&by_args);
        }
        check(by_args.atts == NULL && by_args.n_atts == 0, "request not cleared");
    }
    imap_command_free(&cmd);
    if (text_ok)
        fetch_request_free(&by_text);
    free(buf);
    return 0;
}
