/* Client address rules: CIDR parsing and matching for IPv4 and IPv6 (AllowedClients). */
#ifndef POSTERN_ADDR_H
#define POSTERN_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An address normalised to 16 bytes; IPv4 is stored as an IPv4-mapped IPv6 address so that
 * a v4 client arriving on a dual-stack socket matches a v4 rule. */
struct ip_addr {
    uint8_t b[16];
};

struct cidr {
    struct ip_addr net;
    unsigned prefix; /* 0..128, in the mapped space */
};

struct cidr_list {
    struct cidr *v;
    size_t n;
};

bool addr_parse(const char *text, struct ip_addr *out);
bool cidr_parse(const char *text, struct cidr *out);
bool cidr_match(const struct cidr *rule, const struct ip_addr *a);
bool cidr_list_match(const struct cidr_list *rules, const struct ip_addr *a);
void addr_from_sockaddr(const struct sockaddr *sa, struct ip_addr *out, unsigned *port);
/* Text form ("192.0.2.1", "2001:db8::1"); buf must hold 46 bytes. */
const char *addr_to_text(const struct ip_addr *a, char *buf, size_t len);

#endif
