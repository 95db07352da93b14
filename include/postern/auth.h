/* The one authentication pipeline: every login of every protocol and mechanism becomes one
 * auth_attempt, produces one auth_result and one audit event (ARCHITECTURE.md). */
#ifndef POSTERN_AUTH_H
#define POSTERN_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "postern/addr.h"
#include "postern/config.h"

struct conn;
struct directory;

/* Security properties of a SASL mechanism; policy reads them, the mechanism never decides. */
enum mech_flags {
    MECH_PLAINTEXT = 1 << 0, /* the secret crosses the connection as it is */
    MECH_KERBEROS = 1 << 1,  /* proves a Kerberos principal; needs the kerberos block */
    MECH_NTLM = 1 << 2,      /* proves a Windows identity; needs the ntlm block */
};

struct auth_mech {
    const char *name;
    unsigned flags;
};

/* Mechanisms this server implements, in the order they are advertised. */
extern const struct auth_mech AUTH_MECHS[];
extern const size_t AUTH_MECHS_COUNT;
const struct auth_mech *auth_mech_find(const char *name);
/* The mechanism IMAP LOGIN and POP3 USER/PASS count as. */
extern const struct auth_mech AUTH_MECH_LOGIN_COMMAND;
/* Whether the running server can do `m` at all: GSSAPI needs the keys of a kerberos block,
 * NTLM the helpers of an ntlm block (as the published auth context has them). Mechanisms that
 * are not available are neither advertised nor started (mechanism_unsupported). */
bool auth_mech_available(const struct auth_mech *m);

/* Stable reason codes for the audit log; the protocol turns them into response codes. */
enum auth_reason {
    AUTH_REASON_NONE,
    AUTH_REASON_PLAINTEXT_REQUIRES_TLS, /* LoginType forbids it on this connection */
    AUTH_REASON_MECH_UNSUPPORTED,
    AUTH_REASON_SASL_NOT_AVAILABLE, /* a known mechanism whose exchange is not implemented yet */
    AUTH_REASON_INVALID_INPUT,      /* malformed SASL message */
    AUTH_REASON_AUTHZID_REFUSED,    /* PLAIN authorization identity other than the user's */
    AUTH_REASON_NO_DIRECTORY,       /* no directory is configured: nobody can be verified */
    AUTH_REASON_SERVER_BUSY,        /* the worker pool's queue is full */
    /* login-name resolution (POLICY.md §1) */
    AUTH_REASON_INVALID_LOGIN_NAME,
    AUTH_REASON_FORM_REFUSED,
    AUTH_REASON_UNKNOWN_DOMAIN,
    AUTH_REASON_UNKNOWN_ACCOUNT,
    AUTH_REASON_AMBIGUOUS_LOGIN,
    AUTH_REASON_ALIAS_NOT_ACCOUNT_NAME,
    AUTH_REASON_UNKNOWN_MAILBOX,
    /* accounts that never get a session (POLICY.md §3, §4) */
    AUTH_REASON_EMPTY_PASSWORD,
    AUTH_REASON_BUILTIN_ADMINISTRATOR,
    AUTH_REASON_GUEST_ACCOUNT,
    AUTH_REASON_KRBTGT_ACCOUNT,
    AUTH_REASON_DEFAULT_ACCOUNT,
    AUTH_REASON_COMPUTER_ACCOUNT,
    AUTH_REASON_ACCOUNT_DISABLED,
    AUTH_REASON_ACCOUNT_LOCKED,
    AUTH_REASON_ACCOUNT_EXPIRED,
    AUTH_REASON_PASSWORD_MUST_CHANGE,
    AUTH_REASON_PASSWORD_EXPIRED,
    AUTH_REASON_PRIVILEGED_ACCOUNT,
    AUTH_REASON_PROTOCOL_DISABLED,
    AUTH_REASON_PROTOCOL_NOT_ALLOWED,  /* the protocol's AccountFilter / AllowGroup rule */
    AUTH_REASON_MAILBOX_ACCESS_DENIED, /* DOMAIN\name\alias without delegation to it */
    /* the directory's verdict on the password (AD sub-codes where it gives one) */
    AUTH_REASON_INVALID_CREDENTIALS,
    AUTH_REASON_LOGON_HOURS,
    AUTH_REASON_WORKSTATION_RESTRICTION,
    AUTH_REASON_SESSION_LIMIT,  /* MaxConnectionsPerUser sessions of the account exist */
    AUTH_REASON_PENALTY_CLIENT, /* too many failures from this address: not even asked */
    AUTH_REASON_PENALTY_LOGIN,  /* too many failures for this login name */
    AUTH_REASON_DIRECTORY_UNAVAILABLE,
    AUTH_REASON_DIRECTORY_ERROR,
    /* single sign-on: Kerberos (GSSAPI) and NTLM */
    AUTH_REASON_UNKNOWN_REALM,            /* a principal of a realm that names no account here */
    AUTH_REASON_KRB_WRONG_SERVICE,        /* a ticket for another service or host name */
    AUTH_REASON_KRB_INVALID_TOKEN,        /* truncated or garbage GSS-API token */
    AUTH_REASON_KRB_CLOCK_SKEW,           /* the client's clock and ours disagree */
    AUTH_REASON_KRB_REPLAY,               /* an authenticator seen before */
    AUTH_REASON_KRB_TICKET_EXPIRED,       /* the service ticket's lifetime is over */
    AUTH_REASON_KRB_KEY_MISMATCH,         /* the keytab lacks the ticket's key (stale keytab) */
    AUTH_REASON_KRB_ERROR,                /* any other GSS-API failure (logged) */
    AUTH_REASON_CHANNEL_BINDING_MISMATCH, /* the client bound to another TLS session */
    AUTH_REASON_CHANNEL_BINDING_REQUIRED, /* ExtendedProtection require, and no binding */
    AUTH_REASON_NTLM_V1_REFUSED,          /* LM or NTLMv1 response (MS-NLMP; crackable) */
    AUTH_REASON_NTLM_ANONYMOUS,           /* an anonymous NTLM AUTHENTICATE */
    AUTH_REASON_NTLM_IDENTITY_MISMATCH,   /* the DC verified someone else than was asked */
    AUTH_REASON_NTLM_HELPER_UNAVAILABLE,  /* no ntlm_auth answer (exited, BH, timeout, none free) */
    AUTH_REASON_NTLM_MIC_MISMATCH,        /* local NTLMv2: the messages were changed */
    AUTH_REASON_NTLM_NO_HASH,             /* local NTLMv2: the account has no NT hash */
};

const char *auth_reason_code(enum auth_reason r);
/* Whether a refusal counts towards MaxAuthFailures: a verdict on the credentials, not the
 * transport gate, an unknown mechanism or an unavailable directory. */
bool auth_reason_is_failure(enum auth_reason r);
/* Whether a refusal is the server's trouble, to be answered like directory_unavailable (IMAP
 * [UNAVAILABLE], POP3 [SYS/TEMP]): the directory, the worker queue, our keytab or helpers. */
bool auth_reason_is_temporary(enum auth_reason r);

struct auth_attempt {
    /* where and how */
    uint64_t conn_id;
    enum protocol protocol;
    const char *listener;
    bool tls;
    struct ip_addr peer;
    unsigned peer_port;
    char *tls_desc;               /* TLS version and cipher, or NULL */
    const struct auth_mech *mech; /* NULL: the client named a mechanism we do not have */
    char *mech_name;              /* as the client named it (for the audit trail) */
    enum login_type login_type;
    /* what the client said; the secret is wiped by auth_attempt_free() */
    char *login;
    char *secret;
    size_t secret_len;
    bool test; /* posternctl test-login: the audit record says so */
    /* Single sign-on: the login is a Kerberos principal or an NTLM DOMAIN\user. */
    bool authenticated;             /* the mechanism has proved the login already (GSSAPI) */
    struct auth_verifier *verifier; /* proves it after the policy steps (NTLM); owned */
    char *authzid;                  /* authorization identity the client asked for, or NULL */
};

struct account;
/* A proof of identity that runs on a worker after resolution and policy (NTLM: the DC checks
 * the client's AUTHENTICATE only for an account that may log in). */
struct auth_verifier {
    /* The account the identity resolved to: AUTH_REASON_NONE when the proof holds for it;
     * *code gets the DC's status (NT_STATUS) for the audit record. */
    enum auth_reason (*verify)(struct auth_verifier *v, const struct account *account,
                               const char *netbios, unsigned *code);
    void (*free)(struct auth_verifier *v);
};

struct auth_result {
    bool allow;
    enum auth_reason reason;
    /* what the directory steps found out, for the audit trail (NULL/0 when not reached) */
    const char *form; /* login form detected */
    char *account_dn;
    char *account_name; /* sAMAccountName */
    char *account_upn;
    char *mailbox;       /* the alias whose mailbox the session opens */
    char *mailbox_key;   /* rename-proof id: objectGUID / entryUUID of the mailbox owner */
    char *server;        /* directory URI that answered (a copy) */
    unsigned ad_subcode; /* AD's bind diagnostic (0x52e, 0x533, ...) */
    uint64_t latency_ms;
};

/* The directory and rules the pipeline uses; built from the configuration at start-up and on
 * reload, then published for new attempts (reference counted, like TLS credentials). */
struct auth_context;
/* ---- the pipeline without a connection: posternctl explain / test-login ---- */

/* Every step of a decision as it happens: rule, verdict ("pass" or a reason code, or a
 * description) and detail (filters sent, accounts found). NULL in the server. */
struct auth_trace {
    void (*step)(struct auth_trace *t, const char *rule, const char *verdict, const char *detail);
};
void auth_trace_step(struct auth_trace *t, const char *rule, const char *verdict, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

/* An attempt as if a client had sent it; mech_name NULL or "LOGIN-COMMAND" is IMAP LOGIN /
 * POP3 USER+PASS. */
struct auth_attempt *auth_attempt_offline(enum protocol protocol, bool tls,
                                          enum login_type login_type, const char *mech_name,
                                          const char *login, const char *secret, size_t secret_len);
/* The same steps as the server (gate, resolution, policy), then the password only if
 * `verify`; nothing of the running server's state (penalties, session counts). */
void auth_decide_offline(struct auth_context *ctx, const struct config *c, struct auth_attempt *a,
                         bool verify, struct auth_trace *t, struct auth_result *r);
void auth_result_clear(struct auth_result *r);

struct auth_context *auth_context_new(const struct config *c, char *err, size_t errlen);
struct auth_context *auth_context_ref(struct auth_context *ctx);
/* The single sign-on parts of a context (NULL without a kerberos / ntlm block). */
struct krb_acceptor *auth_context_krb(struct auth_context *ctx);
struct helper_pool *auth_context_ntlm(struct auth_context *ctx);
void auth_context_publish(struct auth_context *ctx);
void auth_context_unref(struct auth_context *ctx);
/* What a reload with this configuration would change about the context. */
enum auth_context_change {
    AUTH_CONTEXT_SAME,
    AUTH_CONTEXT_SECRETS_CHANGED,  /* same settings; BindPasswordFile or BindKeytab changed */
    AUTH_CONTEXT_SETTINGS_CHANGED, /* the directory block differs */
};
enum auth_context_change auth_context_compare(const struct auth_context *ctx,
                                              const struct config *c);
struct auth_context *auth_context_current(void);
/* For posternctl audit-directory: the context's directory client, and the domain's names and
 * privileged groups (read from the directory once per context; false when it cannot be). */
struct directory *auth_context_directory(struct auth_context *ctx);
struct domain_names;
bool auth_context_domain(struct auth_context *ctx, const struct config *c,
                         struct domain_names *names, const char *const **privileged_groups,
                         size_t *n_privileged_groups, bool *is_active_directory);

/* A new attempt describing connection c; login and secret are copied. `mech` may be NULL for
 * an unknown mechanism called `mech_name` (then refused as mechanism_unsupported). */
struct auth_attempt *auth_attempt_new(struct conn *c, const struct auth_mech *mech,
                                      const char *mech_name, const char *login, const char *secret,
                                      size_t secret_len);
void auth_attempt_free(struct auth_attempt *a);

typedef void (*auth_done_fn)(void *session, struct auth_attempt *a, const struct auth_result *r);

/* Runs the pipeline: transport policy at once on the calling io_thread, the directory work on
 * the worker pool; `done` runs on the connection's thread with the result (possibly before
 * auth_start returns) after the audit event has been written. Takes ownership of a. */
void auth_start(struct conn *c, void *session, struct auth_attempt *a, auth_done_fn done);
/* An attempt the protocol already refuses (malformed SASL, authorization identity): audited
 * and answered like every refusal, after FailureDelay. Takes ownership of a. */
void auth_refuse(struct conn *c, void *session, struct auth_attempt *a, enum auth_reason reason,
                 auth_done_fn done);

#endif
