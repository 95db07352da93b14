/* libFuzzer target: the postern.conf parser (config_parse) and the model it builds. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/config.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant violated: %s\n", what);
        abort();
    }
}

/* A refused configuration names "fuzz.conf:LINE: " with a line that exists (or the one just
 * after the last line break, for problems found at the end). */
static void check_error(const char *err, const uint8_t *data, size_t size)
{
    static const char prefix[] = "fuzz.conf:";
    check(strncmp(err, prefix, sizeof(prefix) - 1) == 0, "error does not name the file");
    const char *p = err + sizeof(prefix) - 1;
    char *end;
    long line = strtol(p, &end, 10);
    check(end != p && *end == ':' && end[1] == ' ' && end[2] != '\0', "error has no line");
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    check(line >= 1 && (size_t)line <= lines, "error names a line that does not exist");
}

static void check_config(const struct config *c)
{
    check(c->n_listeners >= 1, "no listener");
    for (size_t i = 0; i < c->n_listeners; i++) {
        const struct listener_config *l = &c->listeners[i];
        check(l->name && l->name[0], "listener without name");
        check(l->address && l->address[0], "listener without address");
        check(l->port >= 1 && l->port <= 65535, "listener port");
        check(l->line >= 1, "listener line");
        check(l->tls == TLS_MODE_NONE || (c->tls_certificate && c->tls_key),
              "TLS listener without certificate");
        for (size_t j = 0; j < l->allowed_clients.n; j++)
            check(l->allowed_clients.v[j].prefix <= 128, "prefix");
    }
    check(c->worker_queue >= c->worker_threads, "worker queue shorter than workers");
    /* a banner goes into a protocol line: printable ASCII without brackets */
    const char *banners[] = {c->imap.banner, c->pop3.banner};
    for (size_t i = 0; i < 2; i++) {
        check(banners[i] && banners[i][0] && strlen(banners[i]) <= 200, "banner length");
        for (const unsigned char *b = (const unsigned char *)banners[i]; *b; b++)
            check(*b >= 0x20 && *b < 0x7f && *b != '[' && *b != ']', "banner character");
    }
    check(c->imap.max_command_size >= 1024 && c->pop3.max_command_size >= 40, "command size");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy without a terminating NUL: ASan catches any read past the end */
    char *text = malloc(size ? size : 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    char err[CONFIG_ERROR_MAX];
    memset(err, 'x', sizeof(err));
    struct config *c = config_parse("fuzz.conf", text, size, err, sizeof(err));
    check(memchr(err, '\0', sizeof(err)) != NULL, "error not terminated");
    if (c == NULL) {
        check_error(err, data, size);
    } else {
        check(err[0] == '\0', "error text on success");
        check_config(c);
        /* a second reference keeps it alive after the first is dropped */
        config_ref(c);
        config_unref(c);
        check(c->listeners[0].name != NULL, "freed too early");
        config_unref(c);
    }
    free(text);
    return 0;
}
