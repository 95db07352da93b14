/* Unit tests of config_parse(): defaults, every directive, units, quoting, errors with lines. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postern/config.h"

/* The smallest valid configuration: most tests add to it. */
#define LISTENER_IMAP                                                                              \
    "listener imap {\n"                                                                            \
    "    Protocol imap\n"                                                                          \
    "    Address 127.0.0.1\n"                                                                      \
    "    Port 143\n"                                                                               \
    "}\n"

static char err[CONFIG_ERROR_MAX];

static struct config *parse(const char *text)
{
    return config_parse("t.conf", text, strlen(text), err, sizeof(err));
}

static struct config *parse_ok(const char *text)
{
    struct config *c = parse(text);
    if (c == NULL)
        fail_msg("unexpected error: %s", err);
    assert_string_equal(err, "");
    return c;
}

/* The whole message is compared: it must name the file, the line and the problem. */
static void expect_error(const char *text, const char *message)
{
    struct config *c = parse(text);
    if (c != NULL) {
        config_unref(c);
        fail_msg("accepted, expected: %s", message);
    }
    assert_string_equal(err, message);
}

/* ---- defaults -------------------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    struct config *c = parse_ok(LISTENER_IMAP);
    assert_string_equal(c->path, "t.conf");
    assert_int_equal(atomic_load(&c->refs), 1);
    assert_null(c->user);
    assert_null(c->pid_file);
    assert_null(c->audit_log);
    assert_int_equal(c->log_target, LOG_TARGET_STDERR);
    assert_int_equal(c->log_level, LOG_LEVEL_INFO);
    assert_int_equal(c->io_threads, 0);
    assert_int_equal(c->worker_threads, 8);
    assert_int_equal(c->worker_queue, 10000);
    assert_int_equal(c->max_connections, 10000);
    assert_int_equal(c->max_connections_per_ip, 100);
    assert_null(c->tls_certificate);
    assert_null(c->tls_key);
    assert_null(c->tls_chain);
    assert_non_null(c->tls_priority);
    assert_true(strncmp(c->tls_priority, "SECURE128:", 10) == 0);
    assert_non_null(strstr(c->tls_priority, "+VERS-TLS1.3"));
    assert_int_equal(c->tls_handshake_timeout, 10);

    const struct protocol_settings *imap = config_protocol(c, PROTOCOL_IMAP);
    const struct protocol_settings *pop3 = config_protocol(c, PROTOCOL_POP3);
    assert_ptr_equal(imap, &c->imap);
    assert_ptr_equal(pop3, &c->pop3);
    assert_int_equal(imap->login_type, LOGIN_TYPE_SECURE_LOGIN);
    assert_int_equal(pop3->login_type, LOGIN_TYPE_SECURE_LOGIN);
    assert_string_equal(imap->banner, "postern IMAP4 service ready");
    assert_string_equal(pop3->banner, "postern POP3 service ready");
    assert_int_equal(imap->max_command_size, 65536);
    assert_int_equal(pop3->max_command_size, 512);
    assert_int_equal(imap->max_literal_size, 65536);
    assert_int_equal(imap->max_bad_commands, 10);
    assert_int_equal(pop3->max_bad_commands, 10);
    assert_int_equal(imap->preauth_timeout, 60);
    assert_int_equal(pop3->preauth_timeout, 60);
    assert_int_equal(imap->auth_timeout, 1800);
    assert_int_equal(pop3->auth_timeout, 1800);
    assert_int_equal(imap->max_connections_per_user, 16);

    assert_int_equal(c->n_listeners, 1);
    const struct listener_config *l = &c->listeners[0];
    assert_string_equal(l->name, "imap");
    assert_int_equal(l->line, 1);
    assert_int_equal(l->protocol, PROTOCOL_IMAP);
    assert_string_equal(l->address, "127.0.0.1");
    assert_int_equal(l->port, 143);
    assert_int_equal(l->tls, TLS_MODE_NONE);
    assert_int_equal(l->allowed_clients.n, 0);
    assert_int_equal(l->max_connections, 0);
    assert_int_equal(l->max_connections_per_ip, 0);
    config_unref(c);
}

/* ---- directives ------------------------------------------------------------------------ */

static void test_global_directives(void **state)
{
    (void)state;
    struct config *c = parse_ok("User postern\n"                          /* 1 */
                                "LogTarget syslog\n"                      /* 2 */
                                "LogLevel debug\n"                        /* 3 */
                                "PidFile /run/postern.pid\n"              /* 4 */
                                "AuditLog /var/log/postern/audit.json\n"  /* 5 */
                                "IOThreads 4\n"                           /* 6 */
                                "WorkerThreads 32\n"                      /* 7 */
                                "WorkerQueue 5000\n"                      /* 8 */
                                "MaxConnections 2000\n"                   /* 9 */
                                "MaxConnectionFromSingleIP 20\n"          /* 10 */
                                "TLSCertificateFile /etc/postern/c.pem\n" /* 11 */
                                "TLSKeyFile /etc/postern/k.pem\n"         /* 12 */
                                "TLSChainFile /etc/postern/ca.pem\n"      /* 13 */
                                "TLSPriority NORMAL:-VERS-TLS1.0\n"       /* 14 */
                                "TLSHandshakeTimeout 30s\n"               /* 15 */
                                LISTENER_IMAP);
    assert_string_equal(c->user, "postern");
    assert_int_equal(c->log_target, LOG_TARGET_SYSLOG);
    assert_int_equal(c->log_level, LOG_LEVEL_DEBUG);
    assert_string_equal(c->pid_file, "/run/postern.pid");
    assert_string_equal(c->audit_log, "/var/log/postern/audit.json");
    assert_int_equal(c->io_threads, 4);
    assert_int_equal(c->worker_threads, 32);
    assert_int_equal(c->worker_queue, 5000);
    assert_int_equal(c->max_connections, 2000);
    assert_int_equal(c->max_connections_per_ip, 20);
    assert_string_equal(c->tls_certificate, "/etc/postern/c.pem");
    assert_string_equal(c->tls_key, "/etc/postern/k.pem");
    assert_string_equal(c->tls_chain, "/etc/postern/ca.pem");
    assert_string_equal(c->tls_priority, "NORMAL:-VERS-TLS1.0");
    assert_int_equal(c->tls_certificate_line, 11);
    assert_int_equal(c->tls_key_line, 12);
    assert_int_equal(c->tls_chain_line, 13);
    assert_int_equal(c->tls_priority_line, 14);
    assert_int_equal(c->tls_handshake_timeout, 30);
    assert_int_equal(c->listeners[0].line, 16);
    config_unref(c);
}

static void test_other_log_keywords(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum log_level level;
    } cases[] = {{"LogLevel error\n", LOG_LEVEL_ERROR},
                 {"LogLevel WARNING\n", LOG_LEVEL_WARNING},
                 {"LogLevel Info\n", LOG_LEVEL_INFO},
                 {"loglevel debug\n", LOG_LEVEL_DEBUG}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "LogTarget stderr\n%s%s", cases[i].text, LISTENER_IMAP);
        struct config *c = parse_ok(text);
        assert_int_equal(c->log_level, cases[i].level);
        assert_int_equal(c->log_target, LOG_TARGET_STDERR);
        config_unref(c);
    }
}

/* The worker queue is never shorter than the number of workers. */
/* postern.conf(5): an imap or pop3 block may appear more than once; its settings add up,
 * later ones replacing earlier ones. Listener names may be quoted. */
static void test_repeated_blocks_and_quoted_names(void **state)
{
    (void)state;
    struct config *c = parse_ok("imap {\n    LoginType plaintext-login\n    MaxBadCommands 3\n}\n"
                                "imap {\n    MaxBadCommands 5\n}\n"
                                "listener \"my imap\" {\n    Protocol imap\n    Address ::1\n"
                                "    Port 143\n}\n");
    assert_int_equal(c->imap.login_type, LOGIN_TYPE_PLAINTEXT_LOGIN);
    assert_int_equal(c->imap.max_bad_commands, 5);
    assert_string_equal(c->listeners[0].name, "my imap");
    config_unref(c);
}

/* postern.conf(5): "The numbers 1, 2 and 3 are not accepted as values" of LoginType. */
static void test_login_type_numbers_refused(void **state)
{
    (void)state;
    expect_error("pop3 {\n    LoginType 3\n}\n" LISTENER_IMAP,
                 "t.conf:2: LoginType: unknown value '3' (one of: plaintext-login, "
                 "plaintext-authentication, secure-login, PlainTextLogin, "
                 "PlainTextAuthentication, SecureLogin)");
}

static void test_worker_queue_raised_to_threads(void **state)
{
    (void)state;
    struct config *c = parse_ok("WorkerThreads 16\nWorkerQueue 4\n" LISTENER_IMAP);
    assert_int_equal(c->worker_threads, 16);
    assert_int_equal(c->worker_queue, 16);
    config_unref(c);
}

static void test_protocol_directives(void **state)
{
    (void)state;
    struct config *c = parse_ok("imap {\n"
                                "    LoginType plaintext-authentication\n"
                                "    Banner \"Example IMAP\"\n"
                                "    MaxCommandSize 8K\n"
                                "    MaxLiteralSize 1M\n"
                                "    MaxBadCommands 3\n"
                                "    PreAuthenticatedConnectionTimeout 2m\n"
                                "    AuthenticatedConnectionTimeout 1h\n"
                                "    MaxConnectionsPerUser 50\n"
                                "}\n"
                                "pop3 {\n"
                                "    LoginType plaintext-login\n"
                                "    Banner Hello\n"
                                "    MaxCommandSize 255\n"
                                "    MaxBadCommands 1000\n"
                                "    PreAuthenticatedConnectionTimeout 45s\n"
                                "    AuthenticatedConnectionTimeout 600\n"
                                "    MaxConnectionsPerUser 1\n"
                                "}\n" LISTENER_IMAP);
    assert_int_equal(c->imap.login_type, LOGIN_TYPE_PLAINTEXT_AUTHENTICATION);
    assert_string_equal(c->imap.banner, "Example IMAP");
    assert_int_equal(c->imap.max_command_size, 8192);
    assert_int_equal(c->imap.max_literal_size, 1024 * 1024);
    assert_int_equal(c->imap.max_bad_commands, 3);
    assert_int_equal(c->imap.preauth_timeout, 120);
    assert_int_equal(c->imap.auth_timeout, 3600);
    assert_int_equal(c->imap.max_connections_per_user, 50);
    assert_int_equal(c->pop3.login_type, LOGIN_TYPE_PLAINTEXT_LOGIN);
    assert_string_equal(c->pop3.banner, "Hello");
    assert_int_equal(c->pop3.max_command_size, 255);
    assert_int_equal(c->pop3.max_bad_commands, 1000);
    assert_int_equal(c->pop3.preauth_timeout, 45);
    assert_int_equal(c->pop3.auth_timeout, 600);
    assert_int_equal(c->pop3.max_connections_per_user, 1);
    /* the untouched POP3 literal limit keeps its default */
    assert_int_equal(c->pop3.max_literal_size, 65536);
    config_unref(c);
}

/* Without URI, the domain controllers of Domain come from DNS SRV records. */
static void test_directory_servers_from_dns(void **state)
{
    (void)state;
    struct config *c = parse_ok("directory {\n    Domain corp.example.com\n"
                                "    BaseDN DC=corp,DC=example,DC=com\n}\n" LISTENER_IMAP);
    assert_int_equal(c->directory.client.n_uris, 0);
    assert_string_equal(c->directory.client.discover_domain, "corp.example.com");
    config_unref(c);
    c = parse_ok("directory {\n    Domain corp.example.com\n    URI ldap://dc1\n"
                 "    BaseDN DC=corp,DC=example,DC=com\n}\n" LISTENER_IMAP);
    assert_null(c->directory.client.discover_domain);
    config_unref(c);
    expect_error("directory {\n    BaseDN DC=corp,DC=example,DC=com\n}\n" LISTENER_IMAP,
                 "t.conf:1: the directory block needs at least one URI, or a Domain whose "
                 "domain controllers DNS SRV records name");
    c = parse_ok(
        "directory {\n    URI ldap://dc1\n    BaseDN DC=corp\n"
        "    BindKeytab /etc/postern/ldap.keytab\n    BindPrincipal MAIL$@CORP\n}\n" LISTENER_IMAP);
    assert_string_equal(c->directory.client.keytab, "/etc/postern/ldap.keytab");
    assert_string_equal(c->directory.client.bind_principal, "MAIL$@CORP");
    config_unref(c);
    expect_error("directory {\n    URI ldap://dc1\n    BaseDN DC=corp\n    BindKeytab k\n"
                 "    BindDN CN=x\n    BindPasswordFile p\n}\n" LISTENER_IMAP,
                 "t.conf:1: BindKeytab (SASL GSSAPI) and BindDN (simple bind) exclude each other");
    expect_error("directory {\n    URI ldap://dc1\n    BaseDN DC=corp\n    BindPrincipal "
                 "p\n}\n" LISTENER_IMAP,
                 "t.conf:1: BindPrincipal needs BindKeytab");
}

static void test_mailbox_root(void **state)
{
    (void)state;
    struct config *c =
        parse_ok("MailboxRoot /var/lib/postern/mail/%2k/%k\nStoreThreads 4\n" LISTENER_IMAP);
    assert_string_equal(c->mailbox_root, "/var/lib/postern/mail/%2k/%k");
    assert_int_equal(c->store_threads, 4);
    config_unref(c);
    c = parse_ok(LISTENER_IMAP);
    assert_null(c->mailbox_root);
    assert_int_equal(c->store_threads, 8);
    config_unref(c);
    expect_error("MailboxRoot /var/mail/shared\n" LISTENER_IMAP,
                 "t.conf:1: MailboxRoot: '/var/mail/shared' must be an absolute path with %k "
                 "(the account's key)");
    expect_error("MailboxRoot mail/%k\n" LISTENER_IMAP,
                 "t.conf:1: MailboxRoot: 'mail/%k' must be an absolute path with %k "
                 "(the account's key)");
    expect_error("MailboxRoot /m/%%k\n" LISTENER_IMAP,
                 "t.conf:1: MailboxRoot: '/m/%%k' must be an absolute path with %k "
                 "(the account's key)");
}

/* POLICY.md §4: who may use a protocol, and who may open another's mailbox. */
static void test_enablement_and_delegation(void **state)
{
    (void)state;
    struct config *c =
        parse_ok("imap {\n"
                 "    AllowGroup \"CN=IMAP Users,OU=Groups,DC=example,DC=com\"\n"
                 "    AllowGroup \"CN=Staff,DC=example,DC=com\"\n"
                 "    AccountFilter \"(&(employeeType=staff)(!(title=intern)))\"\n"
                 "}\n"
                 "logins {\n    DelegateAttribute publicDelegates\n}\n" LISTENER_IMAP);
    assert_int_equal(c->imap.n_allow_groups, 2);
    assert_string_equal(c->imap.allow_groups[1], "CN=Staff,DC=example,DC=com");
    assert_string_equal(c->imap.account_filter, "(&(employeeType=staff)(!(title=intern)))");
    assert_null(c->pop3.account_filter);
    assert_int_equal(c->pop3.n_allow_groups, 0);
    assert_string_equal(c->logins.delegate_attribute, "publicDelegates");
    config_unref(c);
    expect_error("imap {\n    AccountFilter \"employeeType=staff\"\n}\n" LISTENER_IMAP,
                 "t.conf:2: AccountFilter: 'employeeType=staff' is not an LDAP filter like "
                 "(attribute=value)");
    expect_error(
        "imap {\n    AccountFilter \"(a=b))(c=d\"\n}\n" LISTENER_IMAP,
        "t.conf:2: AccountFilter: '(a=b))(c=d' is not an LDAP filter like (attribute=value)");
    expect_error("imap {\n    AccountFilter \"((a=b)\"\n}\n" LISTENER_IMAP,
                 "t.conf:2: AccountFilter: '((a=b)' is not an LDAP filter like (attribute=value)");
    expect_error("pop3 {\n    AllowGroup Staff\n}\n" LISTENER_IMAP,
                 "t.conf:2: AllowGroup: 'Staff' is not a distinguished name");
    expect_error("logins {\n    DelegateAttribute \"a b\"\n}\n" LISTENER_IMAP,
                 "t.conf:2: DelegateAttribute: 'a b' is not an attribute name");
}

static void test_listener_directives(void **state)
{
    (void)state;
    struct config *c = parse_ok("TLSCertificateFile c.pem\n"
                                "TLSKeyFile k.pem\n"
                                "listener pop3s {\n"
                                "    Protocol POP3\n"
                                "    Address ::1\n"
                                "    Port 995\n"
                                "    TLS implicit\n"
                                "    AllowedClients 10.0.0.0/8\n"
                                "    MaxConnections 500\n"
                                "    MaxConnectionFromSingleIP 5\n"
                                "}\n");
    assert_int_equal(c->n_listeners, 1);
    const struct listener_config *l = &c->listeners[0];
    assert_string_equal(l->name, "pop3s");
    assert_int_equal(l->line, 3);
    assert_int_equal(l->protocol, PROTOCOL_POP3);
    assert_string_equal(l->address, "::1");
    assert_int_equal(l->port, 995);
    assert_int_equal(l->tls, TLS_MODE_IMPLICIT);
    assert_int_equal(l->allowed_clients.n, 1);
    assert_int_equal(l->allowed_clients.v[0].prefix, 96 + 8);
    assert_int_equal(l->max_connections, 500);
    assert_int_equal(l->max_connections_per_ip, 5);
    config_unref(c);
}

static void test_several_listeners(void **state)
{
    (void)state;
    struct config *c = parse_ok("TLSCertificateFile c.pem\n"
                                "TLSKeyFile k.pem\n"
                                "listener imap {\n"
                                "    Protocol imap\n"
                                "    Address *\n"
                                "    Port 143\n"
                                "    TLS starttls\n"
                                "}\n"
                                "listener imaps {\n"
                                "    Protocol imap\n"
                                "    Address *\n"
                                "    Port 993\n"
                                "    TLS implicit\n"
                                "}\n"
                                "listener pop3 {\n"
                                "    Protocol pop3\n"
                                "    Address 127.0.0.1\n"
                                "    Port 110\n"
                                "    TLS none\n"
                                "}\n"
                                "# the same port on another address is a different socket\n"
                                "listener pop3-v6 {\n"
                                "    Protocol pop3\n"
                                "    Address ::1\n"
                                "    Port 110\n"
                                "}\n");
    assert_int_equal(c->n_listeners, 4);
    static const struct {
        const char *name;
        int line;
        enum protocol protocol;
        const char *address;
        unsigned port;
        enum tls_mode tls;
    } want[] = {{"imap", 3, PROTOCOL_IMAP, "*", 143, TLS_MODE_STARTTLS},
                {"imaps", 9, PROTOCOL_IMAP, "*", 993, TLS_MODE_IMPLICIT},
                {"pop3", 15, PROTOCOL_POP3, "127.0.0.1", 110, TLS_MODE_NONE},
                {"pop3-v6", 22, PROTOCOL_POP3, "::1", 110, TLS_MODE_NONE}};
    for (size_t i = 0; i < 4; i++) {
        const struct listener_config *l = &c->listeners[i];
        assert_string_equal(l->name, want[i].name);
        assert_int_equal(l->line, want[i].line);
        assert_int_equal(l->protocol, want[i].protocol);
        assert_string_equal(l->address, want[i].address);
        assert_int_equal(l->port, want[i].port);
        assert_int_equal(l->tls, want[i].tls);
    }
    config_unref(c);
}

static void test_allowed_clients(void **state)
{
    (void)state;
    struct config *c = parse_ok("listener imap {\n"
                                "    Protocol imap\n"
                                "    Address *\n"
                                "    Port 143\n"
                                "    AllowedClients 10.0.0.0/8 192.0.2.7\n"
                                "    AllowedClients 2001:db8::/32 ::1\n"
                                "}\n");
    const struct cidr_list *r = &c->listeners[0].allowed_clients;
    assert_int_equal(r->n, 4);
    assert_int_equal(r->v[0].prefix, 104);
    assert_int_equal(r->v[1].prefix, 128);
    assert_int_equal(r->v[2].prefix, 32);
    assert_int_equal(r->v[3].prefix, 128);
    static const struct {
        const char *addr;
        bool allowed;
    } probes[] = {
        {"10.200.3.4", true},
        {"11.0.0.1", false},
        {"192.0.2.7", true},
        {"192.0.2.8", false},
        {"2001:db8:ffff::1", true},
        {"2001:db9::1", false},
        {"::1", true},
        {"::2", false},
        {"::ffff:10.1.1.1", true},
    };
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        struct ip_addr a;
        assert_true(addr_parse(probes[i].addr, &a));
        if (cidr_list_match(r, &a) != probes[i].allowed)
            fail_msg("%s: expected %s", probes[i].addr, probes[i].allowed ? "allowed" : "denied");
    }
    config_unref(c);
}

/* LoginType takes the names of POLICY.md and Exchange's Set-ImapSettings spellings. */
static void test_login_type_spellings(void **state)
{
    (void)state;
    static const struct {
        const char *word;
        enum login_type type;
    } cases[] = {
        {"plaintext-login", LOGIN_TYPE_PLAINTEXT_LOGIN},
        {"plaintext-authentication", LOGIN_TYPE_PLAINTEXT_AUTHENTICATION},
        {"secure-login", LOGIN_TYPE_SECURE_LOGIN},
        {"PlainTextLogin", LOGIN_TYPE_PLAINTEXT_LOGIN},
        {"PlainTextAuthentication", LOGIN_TYPE_PLAINTEXT_AUTHENTICATION},
        {"SecureLogin", LOGIN_TYPE_SECURE_LOGIN},
        {"PLAINTEXT-LOGIN", LOGIN_TYPE_PLAINTEXT_LOGIN},
        {"securelogin", LOGIN_TYPE_SECURE_LOGIN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        /* start from a value different from the expected one */
        const char *other =
            cases[i].type == LOGIN_TYPE_PLAINTEXT_LOGIN ? "secure-login" : "plaintext-login";
        snprintf(text, sizeof(text), "pop3 {\nLoginType %s\nLoginType %s\n}\n%s", other,
                 cases[i].word, LISTENER_IMAP);
        struct config *c = parse_ok(text);
        assert_int_equal(c->pop3.login_type, cases[i].type);
        assert_int_equal(c->imap.login_type, LOGIN_TYPE_SECURE_LOGIN);
        config_unref(c);
    }
}

/* ---- units ----------------------------------------------------------------------------- */

static unsigned imap_number(const char *directive, const char *value)
{
    char text[512];
    snprintf(text, sizeof(text), "imap {\n%s %s\n}\n%s", directive, value, LISTENER_IMAP);
    struct config *c = parse_ok(text);
    unsigned v = 0;
    if (strcmp(directive, "MaxCommandSize") == 0)
        v = c->imap.max_command_size;
    else if (strcmp(directive, "MaxLiteralSize") == 0)
        v = c->imap.max_literal_size;
    else if (strcmp(directive, "PreAuthenticatedConnectionTimeout") == 0)
        v = c->imap.preauth_timeout;
    else if (strcmp(directive, "AuthenticatedConnectionTimeout") == 0)
        v = c->imap.auth_timeout;
    else
        fail_msg("no such directive in the test: %s", directive);
    config_unref(c);
    return v;
}

static void test_size_units(void **state)
{
    (void)state;
    assert_int_equal(imap_number("MaxCommandSize", "1024"), 1024);
    assert_int_equal(imap_number("MaxCommandSize", "2K"), 2048);
    assert_int_equal(imap_number("MaxCommandSize", "2k"), 2048);
    assert_int_equal(imap_number("MaxCommandSize", "1M"), 1048576);
    /* in a size, m is MiB (in a duration it is minutes) */
    assert_int_equal(imap_number("MaxCommandSize", "1m"), 1048576);
    assert_int_equal(imap_number("MaxLiteralSize", "64M"), 64u * 1024 * 1024);
    assert_int_equal(imap_number("MaxLiteralSize", "1"), 1);
    /* G is a unit: the error is about the range, not the unit */
    expect_error("imap {\nMaxLiteralSize 1G\n}\n" LISTENER_IMAP,
                 "t.conf:2: MaxLiteralSize: 1G is out of range (1..67108864)");
    expect_error("imap {\nMaxLiteralSize 65M\n}\n" LISTENER_IMAP,
                 "t.conf:2: MaxLiteralSize: 65M is out of range (1..67108864)");
}

static void test_duration_units(void **state)
{
    (void)state;
    assert_int_equal(imap_number("PreAuthenticatedConnectionTimeout", "90"), 90);
    assert_int_equal(imap_number("PreAuthenticatedConnectionTimeout", "90s"), 90);
    assert_int_equal(imap_number("PreAuthenticatedConnectionTimeout", "5m"), 300);
    assert_int_equal(imap_number("PreAuthenticatedConnectionTimeout", "1H"), 3600);
    assert_int_equal(imap_number("AuthenticatedConnectionTimeout", "24h"), 86400);
    assert_int_equal(imap_number("AuthenticatedConnectionTimeout", "30M"), 1800);
    struct config *c = parse_ok("TLSHandshakeTimeout 10m\n" LISTENER_IMAP);
    assert_int_equal(c->tls_handshake_timeout, 600);
    config_unref(c);
    expect_error("TLSHandshakeTimeout 11m\n" LISTENER_IMAP,
                 "t.conf:1: TLSHandshakeTimeout: 11m is out of range (1..600)");
    expect_error("imap {\nAuthenticatedConnectionTimeout 25h\n}\n" LISTENER_IMAP,
                 "t.conf:2: AuthenticatedConnectionTimeout: 25h is out of range (1..86400)");
}

static void test_unknown_units(void **state)
{
    (void)state;
    expect_error("imap {\nMaxCommandSize 4KB\n}\n" LISTENER_IMAP,
                 "t.conf:2: MaxCommandSize: unknown unit in '4KB' (use K, M or G)");
    expect_error("imap {\nMaxCommandSize 4s\n}\n" LISTENER_IMAP,
                 "t.conf:2: MaxCommandSize: unknown unit in '4s' (use K, M or G)");
    expect_error("imap {\nPreAuthenticatedConnectionTimeout 1K\n}\n" LISTENER_IMAP,
                 "t.conf:2: PreAuthenticatedConnectionTimeout: unknown unit in '1K' "
                 "(use s, m or h)");
    /* counts take no unit at all */
    expect_error("MaxConnections 2k\n" LISTENER_IMAP,
                 "t.conf:1: MaxConnections: unknown unit in '2k' (a plain number is expected)");
    expect_error("listener a {\nProtocol imap\nAddress *\nPort 143s\n}\n",
                 "t.conf:4: Port: unknown unit in '143s' (a plain number is expected)");
    expect_error("imap {\nMaxBadCommands 1K\n}\n" LISTENER_IMAP,
                 "t.conf:2: MaxBadCommands: unknown unit in '1K' (a plain number is expected)");
    expect_error("TLSHandshakeTimeout 10d\n" LISTENER_IMAP,
                 "t.conf:1: TLSHandshakeTimeout: unknown unit in '10d' (use s, m or h)");
}

/* ---- syntax ---------------------------------------------------------------------------- */

static void test_quoted_strings(void **state)
{
    (void)state;
    struct config *c = parse_ok("PidFile \"/run/with space/p.pid\"\n"
                                "User \"a\\\"b\\\\c\"\n"
                                "AuditLog \"C:\\temp\\a\"\n"
                                "imap {\n"
                                "    Banner \"Mail #1 \\\"here\\\"\" # trailing comment\n"
                                "}\n"
                                "pop3 { # comment after the brace\n"
                                "    Banner plain\n"
                                "}\n" LISTENER_IMAP);
    assert_string_equal(c->pid_file, "/run/with space/p.pid");
    /* \" and \\ are escapes */
    assert_string_equal(c->user, "a\"b\\c");
    /* any other backslash stays as it is */
    assert_string_equal(c->audit_log, "C:\\temp\\a");
    /* "#" inside quotes is text, after them a comment */
    assert_string_equal(c->imap.banner, "Mail #1 \"here\"");
    assert_string_equal(c->pop3.banner, "plain");
    config_unref(c);
}

static void test_quoted_banner_with_tab_rejected(void **state)
{
    (void)state;
    /* a quoted tab survives the tokenizer; the Banner check refuses it */
    expect_error("pop3 {\n    Banner \"a\tb\"\n}\n" LISTENER_IMAP,
                 "t.conf:2: Banner: only printable ASCII without brackets is allowed");
}

static void test_comments_and_blank_lines(void **state)
{
    (void)state;
    struct config *c = parse_ok("# postern.conf\n"
                                "\n"
                                "   # indented comment\n"
                                "User mail # who we run as\n"
                                "\t\n"
                                "listener imap { # plain IMAP\n"
                                "    # nothing here is a directive: Port 1\n"
                                "    Protocol imap\n"
                                "    Address 127.0.0.1 # loopback\n"
                                "    Port 143\n"
                                "} # end\n"
                                "# trailing comment without newline");
    assert_string_equal(c->user, "mail");
    assert_int_equal(c->listeners[0].line, 6);
    assert_int_equal(c->listeners[0].port, 143);
    config_unref(c);
}

static void test_crlf_and_case_insensitive_names(void **state)
{
    (void)state;
    struct config *c = parse_ok("user mail\r\n"
                                "IMAP {\r\n"
                                "    logintype PlainTextLogin\r\n"
                                "}\r\n"
                                "LISTENER a {\r\n"
                                "    protocol IMAP\r\n"
                                "    ADDRESS 127.0.0.1\r\n"
                                "    port 143\r\n"
                                "}");
    assert_string_equal(c->user, "mail");
    assert_int_equal(c->imap.login_type, LOGIN_TYPE_PLAINTEXT_LOGIN);
    assert_int_equal(c->listeners[0].line, 5);
    config_unref(c);
    expect_error("User a\r\n\r\nBogus 1\r\n" LISTENER_IMAP, "t.conf:3: unknown directive 'Bogus'");
}

/* ---- single sign-on ------------------------------------------------------------------- */

#define DIRECTORY_BLOCK "directory {\n    URI ldap://dc1\n    BaseDN DC=corp,DC=example,DC=com\n}\n"

static void test_kerberos_and_ntlm_blocks(void **state)
{
    (void)state;
    struct config *c = parse_ok(LISTENER_IMAP);
    assert_false(c->kerberos.configured);
    assert_false(c->ntlm.configured);
    assert_int_equal(c->kerberos.extended_protection, EXTENDED_PROTECTION_ALLOW);
    assert_string_equal(c->ntlm.helper, "/usr/bin/ntlm_auth");
    assert_int_equal(c->ntlm.max_helpers, 16);
    assert_int_equal(c->ntlm.helper_timeout, 10);
    config_unref(c);
    c = parse_ok(DIRECTORY_BLOCK "kerberos {\n    Keytab /etc/postern/postern.keytab\n"
                                 "    HostName mail.corp.example.com mail1.corp.example.com\n"
                                 "    HostName mail2.corp.example.com\n"
                                 "    Realm CORP.EXAMPLE.COM\n"
                                 "    ExtendedProtection require\n}\n"
                                 "ntlm {\n    Helper /opt/samba/bin/ntlm_auth\n"
                                 "    HelperOption --require-membership-of=CORP\\MailUsers\n"
                                 "    Helpers 12\n    HelperTimeout 1m\n}\n" LISTENER_IMAP);
    assert_true(c->kerberos.configured);
    assert_string_equal(c->kerberos.keytab, "/etc/postern/postern.keytab");
    assert_int_equal(c->kerberos.keytab_line, 6);
    assert_int_equal(c->kerberos.n_host_names, 3);
    assert_string_equal(c->kerberos.host_names[2], "mail2.corp.example.com");
    assert_int_equal(c->kerberos.n_realms, 1);
    assert_string_equal(c->kerberos.realms[0], "CORP.EXAMPLE.COM");
    assert_int_equal(c->kerberos.extended_protection, EXTENDED_PROTECTION_REQUIRE);
    assert_true(c->ntlm.configured);
    assert_string_equal(c->ntlm.helper, "/opt/samba/bin/ntlm_auth");
    assert_int_equal(c->ntlm.n_helper_options, 1);
    assert_string_equal(c->ntlm.helper_options[0], "--require-membership-of=CORP\\MailUsers");
    assert_int_equal(c->ntlm.max_helpers, 12);
    assert_int_equal(c->ntlm.helper_timeout, 60);
    assert_null(c->ntlm.nt_hash_attribute);
    config_unref(c);
    c = parse_ok(DIRECTORY_BLOCK "ntlm {\n    NTHashAttribute sambaNTPassword\n}\n" LISTENER_IMAP);
    assert_string_equal(c->ntlm.nt_hash_attribute, "sambaNTPassword");
    config_unref(c);
    expect_error(DIRECTORY_BLOCK "ntlm {\n    NTHashAttribute (x)\n}\n" LISTENER_IMAP,
                 "t.conf:6: NTHashAttribute: '(x)' is not an attribute name");
    expect_error(DIRECTORY_BLOCK "kerberos {\n    HostName a\n}\n" LISTENER_IMAP,
                 "t.conf:5: the kerberos block needs a Keytab");
    expect_error("kerberos {\n    Keytab k\n}\n" LISTENER_IMAP,
                 "t.conf:1: the kerberos block needs a directory block (principals name "
                 "accounts there)");
    expect_error("ntlm {\n}\n" LISTENER_IMAP, "t.conf:1: the ntlm block needs a directory block "
                                              "(NTLM identities name accounts there)");
    expect_error(DIRECTORY_BLOCK "ntlm {\n}\nntlm {\n}\n" LISTENER_IMAP,
                 "t.conf:7: the ntlm block is declared twice (first at line 5)");
    expect_error(DIRECTORY_BLOCK
                 "kerberos {\n    Keytab k\n    ExtendedProtection always\n}\n" LISTENER_IMAP,
                 "t.conf:7: ExtendedProtection: unknown value 'always' (one of: none, allow, "
                 "require)");
    expect_error(DIRECTORY_BLOCK "ntlm {\n    Helper ntlm_auth\n}\n" LISTENER_IMAP,
                 "t.conf:6: Helper: 'ntlm_auth' is not an absolute path");
    expect_error(DIRECTORY_BLOCK "kerberos {\n    Keytab k\n    Service imap\n}\n" LISTENER_IMAP,
                 "t.conf:7: unknown directive 'Service' in kerberos block");
}

/* ---- errors ---------------------------------------------------------------------------- */

static void test_error_unknown_directive(void **state)
{
    (void)state;
    expect_error("User a\nFrobnicate yes\n" LISTENER_IMAP,
                 "t.conf:2: unknown directive 'Frobnicate'");
    expect_error("imap {\n    LoginType secure-login\n    Port 143\n}\n" LISTENER_IMAP,
                 "t.conf:3: unknown directive 'Port' in imap block");
    /* MaxLiteralSize exists only for IMAP */
    expect_error("pop3 {\n    MaxLiteralSize 1K\n}\n" LISTENER_IMAP,
                 "t.conf:2: unknown directive 'MaxLiteralSize' in pop3 block");
    expect_error("listener a {\n    Protocol imap\n    Banner x\n}\n",
                 "t.conf:3: unknown directive 'Banner' in listener block");
    expect_error(LISTENER_IMAP "smtp {\n}\n",
                 "t.conf:6: unknown block 'smtp' (imap, pop3, directory, logins, kerberos, ntlm "
                 "or listener)");
}

static void test_error_bad_values(void **state)
{
    (void)state;
    expect_error("listener a {\nProtocol imap\nAddress *\nPort abc\n}\n",
                 "t.conf:4: Port: 'abc' is not a number");
    expect_error("listener a {\nProtocol imap\nAddress *\nPort -1\n}\n",
                 "t.conf:4: Port: '-1' is not a number");
    expect_error("listener a {\nProtocol imap\nAddress *\nPort \"\"\n}\n",
                 "t.conf:4: Port: '' is not a number");
    expect_error("listener a {\nProtocol imap\nAddress *\nPort 1 2\n}\n",
                 "t.conf:4: Port takes 1 value");
    expect_error("listener a {\nProtocol imap\nAddress *\nPort\n}\n",
                 "t.conf:4: Port takes 1 value");
    expect_error("listener a {\nProtocol smtp\n}\n",
                 "t.conf:2: Protocol: unknown value 'smtp' (one of: imap, pop3)");
    expect_error("listener a {\nProtocol imap\nTLS ssl\n}\n",
                 "t.conf:3: TLS: unknown value 'ssl' (one of: implicit, starttls, none)");
    expect_error("listener a {\nProtocol imap\nAddress localhost\n}\n",
                 "t.conf:3: Address: 'localhost' is not an IPv4 or IPv6 address (or *)");
    expect_error("imap {\nLoginType kerberos\n}\n" LISTENER_IMAP,
                 "t.conf:2: LoginType: unknown value 'kerberos' (one of: plaintext-login, "
                 "plaintext-authentication, secure-login, PlainTextLogin, "
                 "PlainTextAuthentication, SecureLogin)");
    expect_error("LogLevel verbose\n" LISTENER_IMAP,
                 "t.conf:1: LogLevel: unknown value 'verbose' (one of: error, warning, info, "
                 "debug)");
    expect_error("User\n" LISTENER_IMAP, "t.conf:1: User takes 1 value");
}

static void test_error_out_of_range(void **state)
{
    (void)state;
    expect_error("listener a {\nProtocol imap\nAddress *\nPort 65536\n}\n",
                 "t.conf:4: Port: 65536 is out of range (1..65535)");
    expect_error("listener a {\nProtocol imap\nAddress *\nPort 0\n}\n",
                 "t.conf:4: Port: 0 is out of range (1..65535)");
    /* larger than unsigned long long: strtoull's ERANGE, not a wrapped value */
    expect_error("listener a {\nProtocol imap\nAddress *\nPort 99999999999999999999999\n}\n",
                 "t.conf:4: Port: 99999999999999999999999 is out of range (1..65535)");
    /* a unit must not wrap a value into range: 2^54 K = 2^64 */
    expect_error("imap {\nMaxCommandSize 18014398509481984K\n}\n" LISTENER_IMAP,
                 "t.conf:2: MaxCommandSize: 18014398509481984K is out of range (1024..1048576)");
    expect_error("pop3 {\nMaxCommandSize 39\n}\n" LISTENER_IMAP,
                 "t.conf:2: MaxCommandSize: 39 is out of range (40..1048576)");
    expect_error("imap {\nMaxCommandSize 1023\n}\n" LISTENER_IMAP,
                 "t.conf:2: MaxCommandSize: 1023 is out of range (1024..1048576)");
    expect_error("imap {\nPreAuthenticatedConnectionTimeout 61m\n}\n" LISTENER_IMAP,
                 "t.conf:2: PreAuthenticatedConnectionTimeout: 61m is out of range (1..3600)");
    expect_error("WorkerThreads 0\n" LISTENER_IMAP,
                 "t.conf:1: WorkerThreads: 0 is out of range (1..1024)");
    expect_error("IOThreads 257\n" LISTENER_IMAP,
                 "t.conf:1: IOThreads: 257 is out of range (0..256)");
    expect_error("imap {\nMaxBadCommands 1001\n}\n" LISTENER_IMAP,
                 "t.conf:2: MaxBadCommands: 1001 is out of range (1..1000)");
}

static void test_error_quoting_and_tokens(void **state)
{
    (void)state;
    expect_error("User a\nPidFile \"/run/p.pid\n" LISTENER_IMAP,
                 "t.conf:2: unterminated quoted string");
    expect_error("User a\nPidFile \"/run/p.pid", "t.conf:2: unterminated quoted string");
    static const char nul_quoted[] = "User \"a\0b\"\n" LISTENER_IMAP;
    struct config *c = config_parse("t.conf", nul_quoted, sizeof(nul_quoted) - 1, err, sizeof(err));
    assert_null(c);
    assert_string_equal(err, "t.conf:1: NUL byte in quoted string");
    expect_error("User a\nPidFile a\x01b\n", "t.conf:2: control character in configuration");
    expect_error("listener a { Protocol imap\n}\n", "t.conf:1: unexpected text after '{'");
    expect_error(LISTENER_IMAP "imap {\n} User x\n", "t.conf:7: unexpected text after '}'");
    expect_error("listener a {\nProtocol imap }\n",
                 "t.conf:2: '}' must stand on a line of its own");
    expect_error("User a\n{\n", "t.conf:2: '{' without a block name");
    expect_error(LISTENER_IMAP "}\n", "t.conf:6: '}' without an open block");
    expect_error("imap extra {\n}\n" LISTENER_IMAP, "t.conf:1: the imap block takes no name");
    expect_error("listener {\n}\n", "t.conf:1: a listener block needs one name: listener NAME {");
    expect_error("listener a b {\n}\n",
                 "t.conf:1: a listener block needs one name: listener NAME {");

    /* a line holds at most 64 words, the directive included */
    char text[1024] = "AllowedClientsX";
    for (int i = 0; i < 64; i++)
        strcat(text, " 1");
    strcat(text, "\n");
    expect_error(text, "t.conf:1: too many values on one line (at most 64)");
}

static void test_error_blocks(void **state)
{
    (void)state;
    expect_error("User a\nlistener a {\n    Protocol imap\n    Port 143\n",
                 "t.conf:2: block opened here is never closed");
    expect_error("imap {\n", "t.conf:1: block opened here is never closed");
    expect_error("listener a {\n    Protocol imap\n    imap {\n    }\n}\n",
                 "t.conf:3: blocks cannot be nested");
}

static void test_error_incomplete_listeners(void **state)
{
    (void)state;
    expect_error("User a\nlistener a {\n    Protocol imap\n    Address *\n}\n",
                 "t.conf:2: listener a has no Port");
    expect_error("listener a {\n    Protocol imap\n    Port 143\n}\n",
                 "t.conf:1: listener a has no Address");
    expect_error("\nlistener a {\n    Address *\n    Port 143\n}\n",
                 "t.conf:2: listener a has no Protocol (imap or pop3)");
    expect_error("listener a {\n    Protocol imap\n    Address *\n    Port 993\n"
                 "    TLS implicit\n}\n",
                 "t.conf:1: listener a uses TLS but TLSCertificateFile and TLSKeyFile are not "
                 "set");
    /* a certificate without its key is not enough either */
    expect_error("TLSCertificateFile c.pem\nlistener b {\n    Protocol imap\n    Address *\n"
                 "    Port 143\n    TLS starttls\n}\n",
                 "t.conf:2: listener b uses TLS but TLSCertificateFile and TLSKeyFile are not "
                 "set");
}

static void test_error_duplicate_listeners(void **state)
{
    (void)state;
    expect_error(LISTENER_IMAP "listener IMAP {\n    Protocol imap\n    Address ::1\n"
                               "    Port 1143\n}\n",
                 "t.conf:6: listener IMAP is declared twice (first at line 1)");
    expect_error(LISTENER_IMAP "# another\nlistener other {\n    Protocol pop3\n"
                               "    Address 127.0.0.1\n    Port 143\n}\n",
                 "t.conf:7: listener other uses 127.0.0.1 port 143 like listener imap");
}

/* postern.conf(5): the address comparison is textual, so "*" and "0.0.0.0" on one port pass
 * the check (they collide only at bind time). */
static void test_duplicate_check_is_textual(void **state)
{
    (void)state;
    struct config *c = parse_ok("listener a {\n    Protocol imap\n    Address *\n    Port 143\n}\n"
                                "listener b {\n    Protocol imap\n    Address 0.0.0.0\n"
                                "    Port 143\n}\n");
    assert_int_equal(c->n_listeners, 2);
    config_unref(c);
}

static void test_error_bad_cidr(void **state)
{
    (void)state;
    expect_error("listener a {\n    Protocol imap\n    Address *\n    Port 143\n"
                 "    AllowedClients 10.0.0.0/8 10.0.0.0/33\n}\n",
                 "t.conf:5: AllowedClients: '10.0.0.0/33' is not an address or network");
    expect_error("listener a {\n    Protocol imap\n    AllowedClients example.com\n}\n",
                 "t.conf:3: AllowedClients: 'example.com' is not an address or network");
    expect_error("listener a {\n    Protocol imap\n    AllowedClients\n}\n",
                 "t.conf:3: AllowedClients takes one or more networks");
}

static void test_error_banner(void **state)
{
    (void)state;
    expect_error("imap {\n    Banner \"ready [now]\"\n}\n" LISTENER_IMAP,
                 "t.conf:2: Banner: only printable ASCII without brackets is allowed");
    expect_error("imap {\n    Banner \"a\x7f\"\n}\n" LISTENER_IMAP,
                 "t.conf:2: Banner: only printable ASCII without brackets is allowed");
    /* 8-bit text is not IMAP resp-text */
    expect_error("imap {\n    Banner \"caf\xc3\xa9\"\n}\n" LISTENER_IMAP,
                 "t.conf:2: Banner: only printable ASCII without brackets is allowed");
    char text[1024];
    char banner[202];
    memset(banner, 'b', 201);
    banner[201] = '\0';
    snprintf(text, sizeof(text), "imap {\n    Banner %s\n}\n%s", banner, LISTENER_IMAP);
    expect_error(text, "t.conf:2: Banner: longer than 200 characters");
    banner[200] = '\0';
    snprintf(text, sizeof(text), "imap {\n    Banner %s\n}\n%s", banner, LISTENER_IMAP);
    struct config *c = parse_ok(text);
    assert_int_equal(strlen(c->imap.banner), 200);
    config_unref(c);
}

static void test_error_no_listener(void **state)
{
    (void)state;
    expect_error("", "t.conf:1: no listener is configured");
    expect_error("# nothing\nUser mail", "t.conf:2: no listener is configured");
}

/* Only the first problem is reported, and a short buffer truncates it safely. */
static void test_error_first_only_and_truncated(void **state)
{
    (void)state;
    expect_error("Bogus 1\nAlsoBogus 2\n", "t.conf:1: unknown directive 'Bogus'");
    char small[10];
    memset(small, 'x', sizeof(small));
    const char *text = "Bogus 1\n";
    assert_null(config_parse("t.conf", text, strlen(text), small, sizeof(small)));
    assert_string_equal(small, "t.conf:1:");
    /* no buffer at all is allowed too */
    assert_null(config_parse("t.conf", text, strlen(text), NULL, 0));
}

/* ---- lifetime -------------------------------------------------------------------------- */

static void test_ref_unref(void **state)
{
    (void)state;
    struct config *c = parse_ok(LISTENER_IMAP);
    assert_ptr_equal(config_ref(c), c);
    assert_int_equal(atomic_load(&c->refs), 2);
    config_unref(c);
    assert_int_equal(atomic_load(&c->refs), 1);
    /* still usable after dropping one of two references (ASan checks the memory) */
    assert_string_equal(c->listeners[0].name, "imap");
    config_unref(c);
    config_unref(NULL);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/postern-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "User mail\n" LISTENER_IMAP;
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct config *c = config_load(path, err, sizeof(err));
    if (c == NULL)
        fail_msg("config_load: %s", err);
    assert_string_equal(c->path, path);
    assert_string_equal(c->user, "mail");
    config_unref(c);
    unlink(path);

    assert_null(config_load(path, err, sizeof(err)));
    char want[256];
    snprintf(want, sizeof(want), "%s: No such file or directory", path);
    assert_string_equal(err, want);
    assert_null(config_load("/tmp", err, sizeof(err)));
    assert_string_equal(err, "/tmp: not a regular file of at most 4 MiB");
}

/* postern.conf(5): relative file names are relative to the configuration file's directory. */
static void test_load_resolves_relative_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/postern-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/postern.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("TLSCertificateFile tls/cert.pem\n"
          "TLSKeyFile /etc/postern/key.pem\n"
          "TLSChainFile chain.pem\n"
          "AuditLog ../log/audit.log\n"
          "PidFile \"run dir/p.pid\"\n" LISTENER_IMAP,
          f);
    fclose(f);
    struct config *c = config_load(path, err, sizeof(err));
    if (c == NULL)
        fail_msg("config_load: %s", err);
    char want[128];
    snprintf(want, sizeof(want), "%s/tls/cert.pem", dir);
    assert_string_equal(c->tls_certificate, want);
    assert_string_equal(c->tls_key, "/etc/postern/key.pem");
    snprintf(want, sizeof(want), "%s/chain.pem", dir);
    assert_string_equal(c->tls_chain, want);
    snprintf(want, sizeof(want), "%s/../log/audit.log", dir);
    assert_string_equal(c->audit_log, want);
    snprintf(want, sizeof(want), "%s/run dir/p.pid", dir);
    assert_string_equal(c->pid_file, want);
    config_unref(c);
    unlink(path);
    rmdir(dir);

    /* config_parse itself leaves names as written */
    c = parse_ok("TLSChainFile chain.pem\n" LISTENER_IMAP);
    assert_string_equal(c->tls_chain, "chain.pem");
    config_unref(c);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(protocol_name(PROTOCOL_IMAP), "imap");
    assert_string_equal(protocol_name(PROTOCOL_POP3), "pop3");
    assert_string_equal(tls_mode_name(TLS_MODE_NONE), "none");
    assert_string_equal(tls_mode_name(TLS_MODE_STARTTLS), "starttls");
    assert_string_equal(tls_mode_name(TLS_MODE_IMPLICIT), "implicit");
    assert_string_equal(login_type_name(LOGIN_TYPE_PLAINTEXT_LOGIN), "plaintext-login");
    assert_string_equal(login_type_name(LOGIN_TYPE_PLAINTEXT_AUTHENTICATION),
                        "plaintext-authentication");
    assert_string_equal(login_type_name(LOGIN_TYPE_SECURE_LOGIN), "secure-login");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_global_directives),
        cmocka_unit_test(test_other_log_keywords),
        cmocka_unit_test(test_repeated_blocks_and_quoted_names),
        cmocka_unit_test(test_login_type_numbers_refused),
        cmocka_unit_test(test_worker_queue_raised_to_threads),
        cmocka_unit_test(test_protocol_directives),
        cmocka_unit_test(test_enablement_and_delegation),
        cmocka_unit_test(test_mailbox_root),
        cmocka_unit_test(test_directory_servers_from_dns),
        cmocka_unit_test(test_listener_directives),
        cmocka_unit_test(test_several_listeners),
        cmocka_unit_test(test_allowed_clients),
        cmocka_unit_test(test_login_type_spellings),
        cmocka_unit_test(test_size_units),
        cmocka_unit_test(test_duration_units),
        cmocka_unit_test(test_unknown_units),
        cmocka_unit_test(test_quoted_strings),
        cmocka_unit_test(test_quoted_banner_with_tab_rejected),
        cmocka_unit_test(test_comments_and_blank_lines),
        cmocka_unit_test(test_crlf_and_case_insensitive_names),
        cmocka_unit_test(test_error_unknown_directive),
        cmocka_unit_test(test_error_bad_values),
        cmocka_unit_test(test_error_out_of_range),
        cmocka_unit_test(test_error_quoting_and_tokens),
        cmocka_unit_test(test_error_blocks),
        cmocka_unit_test(test_error_incomplete_listeners),
        cmocka_unit_test(test_error_duplicate_listeners),
        cmocka_unit_test(test_duplicate_check_is_textual),
        cmocka_unit_test(test_kerberos_and_ntlm_blocks),
        cmocka_unit_test(test_error_bad_cidr),
        cmocka_unit_test(test_error_banner),
        cmocka_unit_test(test_error_no_listener),
        cmocka_unit_test(test_error_first_only_and_truncated),
        cmocka_unit_test(test_ref_unref),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_resolves_relative_files),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
