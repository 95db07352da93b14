/* Domain controllers from DNS: the SRV records AD registers for every DC
 * (_ldap._tcp.dc._msdcs.<domain>, MS-ADTS 6.3.2.3), ordered as RFC 2782 says. */
#include "postern/directory.h"

#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "postern/util.h"

/* A domain name as RFC 1035 allows it in a query: letters, digits, '-', '_' and dots, no
 * empty label. Anything else is a configuration error, not something to send to DNS. */
static bool valid_domain(const char *domain)
{
    size_t len = strlen(domain), label = 0;
    if (len == 0 || len > 200)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = domain[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0 || len > 1;
}

static int by_priority(const void *a, const void *b)
{
    const struct directory_srv *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority < y->priority ? -1 : 1;
    /* RFC 2782: zero-weight records first within a priority, so they are picked last only
     * when the random choice says so; the order among equals is the random choice below. */
    return (x->weight != 0) - (y->weight != 0);
}

void directory_srv_order(struct directory_srv *records, size_t n, uint32_t (*random_fn)(void))
{
    qsort(records, n, sizeof(*records), by_priority);
    /* RFC 2782's selection within each priority: pick by running sum of weights. */
    for (size_t start = 0; start < n;) {
        size_t end = start;
        while (end < n && records[end].priority == records[start].priority)
            end++;
        for (size_t i = start; i + 1 < end; i++) {
            uint64_t total = 0;
            for (size_t k = i; k < end; k++)
                total += records[k].weight;
            uint64_t pick = total ? random_fn() % (total + 1) : 0, sum = 0;
            size_t chosen = i;
            for (size_t k = i; k < end; k++) {
                sum += records[k].weight;
                if (sum >= pick) {
                    chosen = k;
                    break;
                }
            }
            struct directory_srv tmp = records[i];
            records[i] = records[chosen];
            records[chosen] = tmp;
        }
        start = end;
    }
}

static uint32_t random_u32(void)
{
    uint32_t v = 0;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
        v = (uint32_t)now_ms();
    return v;
}

int directory_parse_srv(const unsigned char *answer, size_t len, struct directory_srv **out,
                        size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    ns_msg msg;
    if (len > 65535 || ns_initparse(answer, (int)len, &msg) < 0)
        return -1;
    int count = ns_msg_count(msg, ns_s_an);
    struct directory_srv *records = xcalloc(count > 0 ? (size_t)count : 1, sizeof(*records));
    size_t n = 0;
    for (int i = 0; i < count; i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
            break;
        if (ns_rr_type(rr) != ns_t_srv || ns_rr_class(rr) != ns_c_in || ns_rr_rdlen(rr) < 7)
            continue;
        const unsigned char *rd = ns_rr_rdata(rr);
        struct directory_srv *r = &records[n];
        r->priority = (uint16_t)(rd[0] << 8 | rd[1]);
        r->weight = (uint16_t)(rd[2] << 8 | rd[3]);
        r->port = (uint16_t)(rd[4] << 8 | rd[5]);
        if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd + 6, r->target,
                               sizeof(r->target)) < 0)
            continue;
        /* "." as the target: the service is decidedly not available (RFC 2782). */
        if (r->port == 0 || strcmp(r->target, ".") == 0 || r->target[0] == '\0' ||
            !valid_domain(r->target))
            continue;
        n++;
    }
    *out = records;
    *n_out = n;
    return 0;
}

enum directory_status directory_discover(const char *domain, char ***uris, size_t *n_uris,
                                         char *err, size_t errlen)
{
    *uris = NULL;
    *n_uris = 0;
    if (domain == NULL || !valid_domain(domain)) {
        snprintf(err, errlen, "directory: '%s' is not a DNS domain name", domain ? domain : "");
        return DIRECTORY_ERROR;
    }
    char name[300];
    snprintf(name, sizeof(name), "_ldap._tcp.dc._msdcs.%s", domain);
    struct __res_state res;
    memset(&res, 0, sizeof(res));
    if (res_ninit(&res) != 0) {
        snprintf(err, errlen, "directory: cannot initialise the DNS resolver");
        return DIRECTORY_UNAVAILABLE;
    }
    /* Bounded: discovery runs at start and reload. */
    res.retrans = 2;
    res.retry = 2;
    unsigned char answer[NS_MAXMSG];
    int len = res_nquery(&res, name, ns_c_in, ns_t_srv, answer, sizeof(answer));
    int h_err = res.res_h_errno;
    res_nclose(&res);
    if (len < 0) {
        bool missing = h_err == HOST_NOT_FOUND || h_err == NO_DATA;
        snprintf(err, errlen, "directory: DNS SRV %s: %s", name,
                 missing ? "no such record" : "no answer from the DNS servers");
        return missing ? DIRECTORY_ERROR : DIRECTORY_UNAVAILABLE;
    }
    struct directory_srv *records;
    size_t n;
    if (directory_parse_srv(answer, (size_t)len, &records, &n) != 0 || n == 0) {
        if (n == 0)
            free(records);
        snprintf(err, errlen, "directory: DNS SRV %s: no usable record", name);
        return DIRECTORY_ERROR;
    }
    directory_srv_order(records, n, random_u32);
    *uris = xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        size_t cap = strlen(records[i].target) + 20;
        (*uris)[i] = xmalloc(cap);
        snprintf((*uris)[i], cap, "ldap://%s:%u", records[i].target, records[i].port);
    }
    *n_uris = n;
    free(records);
    return DIRECTORY_OK;
}
