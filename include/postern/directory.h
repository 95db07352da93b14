/* The directory client: a pool of LDAP connections to AD or OpenLDAP (failover, TLS,
 * timeouts), account lookups and password verification by simple bind. Every function here
 * blocks and must run on a worker thread, never on an io_thread. */
#ifndef POSTERN_DIRECTORY_H
#define POSTERN_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum directory_tls {
    DIRECTORY_TLS_STARTTLS, /* ldap:// URIs upgraded with StartTLS (the default) */
    DIRECTORY_TLS_NONE,     /* ldap:// in cleartext (tests, or an IPsec-protected network) */
};
/* ldaps:// URIs always use TLS, whatever `tls` says. */

struct directory_config {
    char **uris; /* tried in order; the next one when a server is down */
    size_t n_uris;
    /* No URIs: the domain controllers of this DNS domain, from its SRV records. */
    char *discover_domain;
    char *base_dn;
    char *bind_dn;            /* service account for lookups; NULL: anonymous lookups */
    char *bind_password_file; /* first line is the password */
    /* Or a SASL GSSAPI bind with the keys of this keytab (the machine account of a joined
     * server): no password in a file. bind_principal picks the key; NULL: the first. */
    char *keytab;
    char *bind_principal;
    enum directory_tls tls;
    char *ca_file;              /* CA certificates for verifying the server */
    bool verify_certificate;    /* default true */
    unsigned network_timeout;   /* seconds to connect */
    unsigned operation_timeout; /* seconds for one search or bind */
    unsigned pool_size;         /* connections kept for lookups (and as many for binds) */
};

/* An account as postern's policy needs it; every field is decoded from the directory. */
struct account {
    char *dn;
    char *sam_account_name; /* sAMAccountName */
    char *upn;              /* userPrincipalName, or NULL */
    char *alias;            /* mailNickname, or NULL */
    char *mail;             /* mail, or NULL */
    char **proxy_addresses; /* proxyAddresses values as stored ("SMTP:a@b", "smtp:c@d") */
    size_t n_proxy_addresses;
    char *guid; /* objectGUID (or entryUUID) as lower-case 8-4-4-4-12 text, or NULL */
    bool has_sid;
    uint32_t rid; /* last sub-authority of objectSid */
    char *sid;    /* objectSid as "S-1-5-21-...", or NULL */
    bool has_uac;
    uint32_t user_account_control;
    bool has_uac_computed;
    uint32_t uac_computed;   /* msDS-User-Account-Control-Computed */
    int64_t account_expires; /* FILETIME; 0 when absent (0 and INT64_MAX mean never) */
    int64_t lockout_time;    /* FILETIME; 0 when absent */
    bool has_pwd_last_set;
    int64_t pwd_last_set;       /* FILETIME; 0 = must change */
    int admin_count;            /* adminCount, 0 when absent */
    uint32_t primary_group_rid; /* primaryGroupID (513 Domain Users), 0 when absent */
    bool is_computer;           /* objectClass computer, or sAMAccountName ending in '$' */
    char **member_of;           /* memberOf DNs (direct groups) */
    size_t n_member_of;
    char **protocol_settings; /* Exchange protocolSettings values */
    size_t n_protocol_settings;
};

void account_free(struct account *a);

/* Decoders for directory values, exposed for unit tests and fuzzing. */
bool directory_parse_sid(const unsigned char *bytes, size_t len, char *text, size_t textlen,
                         uint32_t *rid);
bool directory_parse_int64(const char *text, size_t len, int64_t *out);
bool directory_format_guid(const unsigned char *bytes, size_t len, char *out, size_t outlen);
/* AD puts the reason for a failed simple bind into the diagnostic message as
 * "... data 52e, ..."; returns that hex number, or 0 if there is none. */
unsigned directory_ad_subcode(const char *diagnostic);
/* RFC 4515 escaping of a value for use inside a filter; returns a new string. */
char *directory_escape_filter_value(const char *value, size_t len);

enum directory_status {
    DIRECTORY_OK,
    DIRECTORY_INVALID_CREDENTIALS, /* bind: resultCode 49 */
    DIRECTORY_UNAVAILABLE,         /* no server answered in time */
    DIRECTORY_ERROR,               /* anything else (protocol error, size limit, ...) */
    DIRECTORY_NOT_FOUND,           /* directory_read_value(): no such value (or too long) */
};

struct directory;

struct directory *directory_new(const struct directory_config *cfg, char *err, size_t errlen);
void directory_free(struct directory *d);

/* Subtree search under base_dn with `filter` (the caller escapes values), returning at most
 * `max` accounts (more matches are still counted in *n_matched so that callers can refuse
 * ambiguous names). *server names the URI that answered (static storage of d). */
enum directory_status directory_find_accounts(struct directory *d, const char *filter,
                                              struct account ***accounts, size_t *n_accounts,
                                              size_t max, size_t *n_matched, const char **server);
void directory_free_accounts(struct account **accounts, size_t n);

/* Simple bind as `dn` with `password` on a connection that is never the lookup connection.
 * An empty password is refused here without contacting the server (it would be an
 * unauthenticated bind, RFC 4513 §5.1.2). *ad_subcode gets AD's reason (0x52e, 0x533, ...)
 * or 0. */
enum directory_status directory_verify_password(struct directory *d, const char *dn,
                                                const char *password, size_t password_len,
                                                unsigned *ad_subcode, const char **server);

/* Does the entry `dn` match `filter` (a base search)? For rules such as "member of the IMAP
 * users group" or an administrator's own filter. An entry that does not exist does not match. */
enum directory_status directory_entry_matches(struct directory *d, const char *dn,
                                              const char *filter, bool *matches,
                                              const char **server);

/* The first value of `attribute` of the entry `dn` (a base search as the service account),
 * at most `max` bytes into out: for secrets that account lookups never read (an NT hash for
 * local NTLMv2 verification). DIRECTORY_NOT_FOUND when there is none. */
enum directory_status directory_read_value(struct directory *d, const char *dn,
                                           const char *attribute, unsigned char *out, size_t max,
                                           size_t *len);

/* Every account under base_dn that matches `filter`, page by page (RFC 2696 paged results, as
 * AD requires beyond MaxPageSize): fn gets each decoded account, owns it (account_free), and
 * returns false to stop. Memory stays bounded by one page. *n_scanned counts the accounts
 * handed out. A server failure in the middle ends the scan with an error; it is not repeated
 * on the next server, which would hand out the same accounts again. */
typedef bool (*directory_scan_fn)(struct account *a, void *arg);
enum directory_status directory_scan_accounts(struct directory *d, const char *filter,
                                              unsigned page_size, directory_scan_fn fn, void *arg,
                                              size_t *n_scanned, const char **server);

/* Domain controllers from DNS (_ldap._tcp.dc._msdcs.<domain> SRV records), as ldap:// URIs
 * in RFC 2782 order (priority, then weighted random). DIRECTORY_ERROR when the domain has no
 * such records, DIRECTORY_UNAVAILABLE when DNS did not answer; err says which. */
enum directory_status directory_discover(const char *domain, char ***uris, size_t *n_uris,
                                         char *err, size_t errlen);
struct directory_srv {
    uint16_t priority, weight, port;
    char target[1025];
};
/* The SRV records of a DNS answer (exposed for unit tests and fuzzing); -1 if the message is
 * malformed. Records with target "." or port 0 are left out. */
int directory_parse_srv(const unsigned char *answer, size_t len, struct directory_srv **out,
                        size_t *n_out);
void directory_srv_order(struct directory_srv *records, size_t n, uint32_t (*random_fn)(void));

/* Base search of the rootDSE and, on AD, the crossRef of the domain: NetBIOS name, DNS name
 * and UPN suffixes. Fields are NULL when the directory does not say. */
struct directory_naming {
    char *netbios;
    char *dns_domain;
    char **upn_suffixes;
    size_t n_upn_suffixes;
    bool is_active_directory; /* rootDSE has supportedCapabilities 1.2.840.113556.1.4.800 */
};
enum directory_status directory_read_naming(struct directory *d, struct directory_naming *out);
void directory_naming_free(struct directory_naming *n);

#endif
