/* mimeprobe: print what src/mime computes for a message file, byte for byte, so that
 * tests/integration/test_mime_reference.py can compare it with Dovecot's FETCH answers.
 *
 *   mimeprobe FILE envelope|bodystructure|body|size|parts|text
 *   mimeprobe FILE fetch SECTION [ORIGIN COUNT]   SECTION as in BODY[SECTION]:
 *                                                 "", "1.2", "2.MIME", "HEADER",
 *                                                 "2.HEADER.FIELDS (FROM SUBJECT)", ...
 *   mimeprobe FILE decoded HEADER-NAME            one decoded value per line
 *   mimeprobe FILE contains NEEDLE                prints 1 or 0
 * Exit status 0, 1 for a missing section (nothing printed), 2 for errors. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/mime.h"

static bool to_stdout(void *ctx, const void *data, size_t len)
{
    (void)ctx;
    return fwrite(data, 1, len, stdout) == len;
}

static const char *kind_name(enum mime_kind kind)
{
    return kind == MIME_KIND_MULTIPART ? "multipart"
           : kind == MIME_KIND_MESSAGE ? "message"
                                       : "leaf";
}

static void print_parts(const struct mime_part *part, const char *number)
{
    for (unsigned i = 1; part != NULL; part = part->next, i++) {
        char here[512];
        if (part->parent == NULL)
            snprintf(here, sizeof(here), "%s", "(message)");
        else if (part->parent->kind == MIME_KIND_MESSAGE)
            snprintf(here, sizeof(here), "%s(message)", number);
        else
            snprintf(here, sizeof(here), "%s%s%u", number, number[0] ? "." : "", i);
        printf("%-16s %-9s %s/%s header %" PRIu64 "-%" PRIu64 " (%" PRIu64 " octets, %" PRIu64
               " lines) body %" PRIu64 "-%" PRIu64 " (%" PRIu64 " octets, %" PRIu64 " lines)\n",
               here, kind_name(part->kind), mime_part_type(part), mime_part_subtype(part),
               part->header.start, part->header.end, part->header_size.octets,
               part->header_size.lines, part->body.start, part->body.end, part->body_size.octets,
               part->body_size.lines);
        /* children of the root and of inner messages continue the parent's numbering */
        const char *child_prefix = here;
        char prefix[512];
        if (part->parent == NULL)
            child_prefix = "";
        else if (part->parent->kind == MIME_KIND_MESSAGE)
            child_prefix = number;
        snprintf(prefix, sizeof(prefix), "%s", child_prefix);
        print_parts(part->children, prefix);
    }
}

/* BODY[SECTION]: a part number, then HEADER, TEXT, MIME or HEADER.FIELDS[.NOT] (names). */
static int fetch(struct mime_message *msg, const char *section, uint64_t origin, uint64_t count)
{
    char number[256] = "";
    const char *p = section;
    size_t n = 0;
    while ((isdigit((unsigned char)*p) || *p == '.') && n + 1 < sizeof(number)) {
        if (*p == '.' && !isdigit((unsigned char)p[1]))
            break;
        number[n++] = *p++;
    }
    number[n] = '\0';
    if (*p == '.')
        p++;
    enum mime_section_text text = MIME_SECTION_BODY;
    bool fields = false, exclude = false;
    if (strcmp(p, "") == 0) {
        text = MIME_SECTION_BODY;
    } else if (strcmp(p, "HEADER") == 0) {
        text = MIME_SECTION_HEADER;
    } else if (strcmp(p, "TEXT") == 0) {
        text = MIME_SECTION_TEXT;
    } else if (strcmp(p, "MIME") == 0) {
        text = MIME_SECTION_MIME;
    } else if (strncmp(p, "HEADER.FIELDS.NOT (", 19) == 0) {
        text = MIME_SECTION_HEADER;
        fields = exclude = true;
        p += 19;
    } else if (strncmp(p, "HEADER.FIELDS (", 15) == 0) {
        text = MIME_SECTION_HEADER;
        fields = true;
        p += 15;
    } else {
        fprintf(stderr, "mimeprobe: bad section %s\n", section);
        return 2;
    }
    struct mime_range range;
    struct mime_size size;
    enum mime_error e = mime_message_section(msg, number, text, &range, &size);
    if (e != MIME_OK)
        return 1;
    if (!fields)
        return mime_message_copy(msg, &range, origin, count, to_stdout, NULL) == MIME_OK ? 0 : 2;
    char *names[64], *list = strdup(p), *save = NULL;
    size_t n_names = 0;
    for (char *tok = strtok_r(list, " )", &save); tok && n_names < 64;
         tok = strtok_r(NULL, " )", &save))
        names[n_names++] = tok;
    e = mime_message_header_fields(msg, &range, (const char *const *)names, n_names, exclude,
                                   to_stdout, NULL, NULL);
    free(list);
    return e == MIME_OK ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: mimeprobe FILE COMMAND [ARGS]\n");
        return 2;
    }
    if (!mime_init()) {
        fprintf(stderr, "mimeprobe: mime_init failed\n");
        return 2;
    }
    enum mime_error error;
    struct mime_message *msg = mime_message_open(argv[1], &error);
    if (msg == NULL) {
        fprintf(stderr, "mimeprobe: %s: %s\n", argv[1], mime_error_text(error));
        return 2;
    }
    const char *cmd = argv[2];
    int status = 0;
    size_t len;
    const char *s = NULL;
    if (strcmp(cmd, "envelope") == 0) {
        s = mime_message_envelope(msg, &len);
    } else if (strcmp(cmd, "bodystructure") == 0) {
        s = mime_message_bodystructure(msg, &len);
    } else if (strcmp(cmd, "body") == 0) {
        s = mime_message_body(msg, &len);
    } else if (strcmp(cmd, "size") == 0) {
        printf("%" PRIu64 "\n", mime_message_size(msg));
    } else if (strcmp(cmd, "parts") == 0) {
        print_parts(mime_message_root(msg), "");
    } else if (strcmp(cmd, "fetch") == 0 && (argc == 4 || argc == 6)) {
        uint64_t origin = argc == 6 ? strtoull(argv[4], NULL, 10) : 0;
        uint64_t count = argc == 6 ? strtoull(argv[5], NULL, 10) : UINT64_MAX;
        status = fetch(msg, argv[3], origin, count);
    } else if (strcmp(cmd, "decoded") == 0 && argc == 4) {
        char **values = mime_message_header_decoded(msg, argv[3]);
        for (char **v = values; v && *v; v++)
            printf("%s\n", *v);
        status = values ? 0 : 2;
        mime_strv_free(values);
    } else if (strcmp(cmd, "contains") == 0 && argc == 4) {
        int r = mime_message_text_contains(msg, argv[3]);
        printf("%d\n", r);
        status = r < 0 ? 2 : 0;
    } else if (strcmp(cmd, "text") == 0) {
        struct mime_text_iter *it = mime_text_iter_new(msg);
        char buf[4096];
        ssize_t n;
        while (it && (n = mime_text_iter_read(it, buf, sizeof(buf))) > 0)
            fwrite(buf, 1, (size_t)n, stdout);
        mime_text_iter_free(it);
    } else {
        fprintf(stderr, "mimeprobe: unknown command %s\n", cmd);
        status = 2;
    }
    if (s != NULL)
        fwrite(s, 1, len, stdout);
    mime_message_free(msg);
    return status;
}
