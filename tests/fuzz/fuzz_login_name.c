/* libFuzzer target: login-name forms (login_name_parse) and the filter escaping of each part. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "postern/directory.h"
#include "postern/login.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *login = malloc(size + 1);
    memcpy(login, data, size);
    login[size] = '\0'; /* a NUL cuts the name, as the C string of an IMAP argument would */
    struct login_name n;
    const char *why;
    if (login_name_parse(login, &n, &why)) {
        /* every part must be non-empty and its escaped form free of filter metacharacters */
        const char *parts[] = {n.domain, n.name, n.alias};
        for (size_t i = 0; i < 3; i++) {
            if (parts[i] == NULL)
                continue;
            if (parts[i][0] == '\0')
                abort();
            char *esc = directory_escape_filter_value(parts[i], strlen(parts[i]));
            if (strpbrk(esc, "*()") != NULL)
                abort();
            free(esc);
        }
        if ((n.form == LOGIN_FORM_DOMAIN_NAME || n.form == LOGIN_FORM_DOMAIN_NAME_ALIAS) !=
            (n.domain != NULL))
            abort();
        login_name_free(&n);
    } else if (why == NULL) {
        abort();
    }
    free(login);
    return 0;
}
