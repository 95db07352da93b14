/* The configuration model of postern.conf and its parser (see docs/postern.conf.5). */
#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "postern/addr.h"
#include "postern/directory.h"
#include "postern/log.h"
#include "postern/login.h"

enum protocol { PROTOCOL_IMAP, PROTOCOL_POP3 };
enum tls_mode { TLS_MODE_NONE, TLS_MODE_STARTTLS, TLS_MODE_IMPLICIT };

/* Exchange's LoginType values (Set-ImapSettings / Set-PopSettings), POLICY.md §2. */
enum login_type {
    LOGIN_TYPE_PLAINTEXT_LOGIN = 1,
    LOGIN_TYPE_PLAINTEXT_AUTHENTICATION = 2,
    LOGIN_TYPE_SECURE_LOGIN = 3,
};

/* Settings of one protocol service (the "imap { }" and "pop3 { }" blocks). */
struct protocol_settings {
    enum login_type login_type;
    int login_type_line; /* where LoginType was set; 0: the default */
    char *banner;
    unsigned max_command_size; /* bytes of one command line (IMAP: without literals) */
    unsigned max_literal_size; /* IMAP: one literal before authentication */
    unsigned max_message_size; /* IMAP: the largest message APPEND takes (streamed) */
    unsigned max_bad_commands; /* consecutive bad commands before disconnecting */
    unsigned preauth_timeout;  /* PreAuthenticatedConnectionTimeout, seconds */
    unsigned auth_timeout;     /* AuthenticatedConnectionTimeout, seconds */
    unsigned max_connections_per_user;
    /* Who may use the protocol at all (POLICY.md §4), on top of Exchange's protocolSettings:
     * the account must match this LDAP filter, and be a member of one of these groups. */
    char *account_filter;
    char **allow_groups;
    size_t n_allow_groups;
};

struct listener_config {
    char *name;
    int line; /* where it was declared, for messages */
    enum protocol protocol;
    char *address;
    unsigned port;
    enum tls_mode tls;
    struct cidr_list allowed_clients; /* empty: everyone */
    unsigned max_connections;         /* 0: only the global limit */
    unsigned max_connections_per_ip;  /* 0: only the global limit */
    int address_line, tls_line;       /* for posternctl check-config; 0: not set */
};

/* The "directory { }" block: where accounts live (docs/postern.conf.5). */
struct directory_settings {
    bool configured;
    int line;
    struct directory_config client;
    char *domain;  /* DNS domain name; NULL: as the directory says */
    char *netbios; /* NetBIOS domain name; NULL: as the directory says */
    char **upn_suffixes;
    size_t n_upn_suffixes;
    int tls_line, verify_line, keytab_line; /* for posternctl check-config; 0: not set */
};

/* Exchange's ExtendedProtectionPolicy for GSSAPI over TLS: whether the client's channel
 * bindings (RFC 5929 tls-server-end-point) are checked, and whether they are required. */
enum extended_protection {
    EXTENDED_PROTECTION_NONE,    /* bindings are ignored */
    EXTENDED_PROTECTION_ALLOW,   /* checked when the client sends them (the default) */
    EXTENDED_PROTECTION_REQUIRE, /* a client must send them, and they must match */
};

/* The "kerberos { }" block: GSSAPI logins (RFC 4752) with the service keys of a keytab that
 * adcli or `net ads keytab` wrote (docs/join.md). */
struct kerberos_settings {
    bool configured;
    int line;
    char *keytab;      /* read at start, before privileges drop */
    char **host_names; /* HostName: the <host> of imap/<host> and pop/<host>; none: any */
    size_t n_host_names;
    char **realms; /* Realm: whose principals may log in; none: the domain's DNS name */
    size_t n_realms;
    enum extended_protection extended_protection;
    int keytab_line;
};

/* The "ntlm { }" block: NTLM logins verified by Samba's ntlm_auth helpers (winbind). */
struct ntlm_settings {
    bool configured;
    int line;
    char *helper;          /* the ntlm_auth program */
    char **helper_options; /* HelperOption: more arguments, e.g. --require-membership-of=... */
    size_t n_helper_options;
    unsigned max_helpers;    /* helper processes at most (one per exchange in progress) */
    unsigned helper_timeout; /* seconds a helper may take to answer */
    /* NTHashAttribute: verify NTLMv2 here from the account's NT hash in this attribute
     * (OpenLDAP with Samba's schema: sambaNTPassword) instead of through ntlm_auth */
    char *nt_hash_attribute;
};

/* The "logins { }" block: which login names work and how refusals behave (POLICY.md). */
struct login_settings {
    struct login_rules rules;
    bool block_privileged;      /* adminCount=1 and Domain/Enterprise/Schema Admins */
    unsigned failure_delay_ms;  /* every refusal waits this long before it is answered */
    unsigned max_auth_failures; /* failed logins before the connection is closed */
    unsigned penalty_after;     /* failures per address or name before penalties (0: off) */
    unsigned penalty_max_ms;    /* longest penalty */
    /* DOMAIN\name\alias (exchange2003): the mailbox's attribute listing the DNs (of accounts
     * or groups) allowed to open it; NULL: msExchDelegateListLink. */
    char *delegate_attribute;
    int profile_line, form_line[LOGIN_FORM_COUNT]; /* for posternctl check-config; 0: not set */
};

struct config {
    atomic_int refs;
    char *path;
    char *user; /* unprivileged user to run as; NULL: stay who we are */
    enum log_target log_target;
    enum log_level log_level;
    char *pid_file;
    /* Unix socket for posternctl sessions/kick (src/net/control.c); NULL: none ("none") */
    char *control_socket;
    char *audit_log;
    bool audit_syslog;
    unsigned io_threads; /* 0: one per core */
    unsigned worker_threads;
    unsigned worker_queue;
    unsigned store_threads;
    /* Where an account's mailboxes live: %k is its rename-proof key (objectGUID/entryUUID),
     * %1k..%9k the key's first characters (store_expand_root). */
    char *mailbox_root;
    unsigned max_connections;
    unsigned max_connections_per_ip;
    char *tls_certificate;
    char *tls_key;
    char *tls_chain;
    char *tls_priority;
    unsigned tls_handshake_timeout;
    /* lines of the TLS directives, for messages about the files they name */
    int tls_certificate_line, tls_key_line, tls_chain_line, tls_priority_line;
    struct protocol_settings imap;
    struct protocol_settings pop3;
    struct directory_settings directory;
    struct login_settings logins;
    struct kerberos_settings kerberos;
    struct ntlm_settings ntlm;
    struct listener_config *listeners;
    size_t n_listeners;
};

#define CONFIG_ERROR_MAX 512
/* Where posternd listens for posternctl unless ControlSocket says otherwise. */
#define CONFIG_DEFAULT_CONTROL_SOCKET "/run/postern/control"

/* Parse a configuration from memory; `path` names it in messages. On failure returns NULL and
 * writes "path:line: problem" into err. */
struct config *config_parse(const char *path, const char *text, size_t len, char *err,
                            size_t errlen);
struct config *config_load(const char *path, char *err, size_t errlen);
struct config *config_ref(struct config *c);
void config_unref(struct config *c);

const struct protocol_settings *config_protocol(const struct config *c, enum protocol p);
const char *protocol_name(enum protocol p);
const char *tls_mode_name(enum tls_mode m);
const char *login_type_name(enum login_type t);

#endif
