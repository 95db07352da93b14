/* libFuzzer target: DNS SRV answers for domain-controller discovery (directory_parse_srv),
 * then RFC 2782 ordering of whatever was accepted. DNS answers are network bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/directory.h"

static uint32_t counter;
static uint32_t next_random(void)
{
    return counter++ * 2654435761u;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct directory_srv *records = NULL;
    size_t n = 0;
    if (directory_parse_srv(data, size, &records, &n) != 0) {
        free(records);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = strnlen(records[i].target, sizeof(records[i].target));
        if (len == 0 || len >= sizeof(records[i].target) || records[i].port == 0)
            abort();
    }
    directory_srv_order(records, n, next_random);
    for (size_t i = 1; i < n; i++)
        if (records[i - 1].priority > records[i].priority)
            abort();
    free(records);
    return 0;
}
