/* CIDR rules for AllowedClients: parse "192.0.2.0/24", "2001:db8::/32" or a bare address. */
#include "postern/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t V4_MAPPED_PREFIX[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_v4_mapped(const struct ip_addr *a)
{
    return memcmp(a->b, V4_MAPPED_PREFIX, 12) == 0;
}

/* Parses an address; *v4 tells the caller which family it was written in. */
static bool parse_family(const char *text, struct ip_addr *out, bool *v4)
{
    struct in_addr a4;
    if (inet_pton(AF_INET, text, &a4) == 1) {
        memcpy(out->b, V4_MAPPED_PREFIX, 12);
        memcpy(out->b + 12, &a4, 4);
        *v4 = true;
        return true;
    }
    if (inet_pton(AF_INET6, text, out->b) == 1) {
        *v4 = false;
        return true;
    }
    return false;
}

bool addr_parse(const char *text, struct ip_addr *out)
{
    bool v4;
    return parse_family(text, out, &v4);
}

bool cidr_parse(const char *text, struct cidr *out)
{
    char host[64];
    const char *slash = strchr(text, '/');
    size_t hl = slash ? (size_t)(slash - text) : strlen(text);
    if (hl == 0 || hl >= sizeof(host))
        return false;
    memcpy(host, text, hl);
    host[hl] = '\0';
    bool v4;
    if (!parse_family(host, &out->net, &v4))
        return false;
    unsigned max = v4 ? 32 : 128, prefix = max;
    if (slash) {
        const char *p = slash + 1;
        if (*p < '0' || *p > '9' || strlen(p) > 3)
            return false;
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (*end != '\0' || v > max)
            return false;
        prefix = (unsigned)v;
    }
    out->prefix = v4 ? prefix + 96 : prefix;
    /* Clear host bits so that "10.1.2.3/8" means 10.0.0.0/8. */
    for (unsigned bit = out->prefix; bit < 128; bit++)
        out->net.b[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
    return true;
}

bool cidr_match(const struct cidr *rule, const struct ip_addr *a)
{
    unsigned full = rule->prefix / 8, rest = rule->prefix % 8;
    if (memcmp(rule->net.b, a->b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (rule->net.b[full] & mask) == (a->b[full] & mask);
}

bool cidr_list_match(const struct cidr_list *rules, const struct ip_addr *a)
{
    for (size_t i = 0; i < rules->n; i++)
        if (cidr_match(&rules->v[i], a))
            return true;
    return false;
}

void addr_from_sockaddr(const struct sockaddr *sa, struct ip_addr *out, unsigned *port)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memcpy(out->b, V4_MAPPED_PREFIX, 12);
        memcpy(out->b + 12, &s4->sin_addr, 4);
        if (port)
            *port = ntohs(s4->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        memcpy(out->b, &s6->sin6_addr, 16);
        if (port)
            *port = ntohs(s6->sin6_port);
    }
}

const char *addr_to_text(const struct ip_addr *a, char *buf, size_t len)
{
    if (is_v4_mapped(a))
        return inet_ntop(AF_INET, a->b + 12, buf, (socklen_t)len);
    return inet_ntop(AF_INET6, a->b, buf, (socklen_t)len);
}
