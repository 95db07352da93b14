/* Single sign-on: the Kerberos acceptor (SASL GSSAPI, RFC 4752), NTLMSSP message inspection,
 * the pool of Samba ntlm_auth helpers, and how their identities name directory accounts. These
 * prove identities; the auth pipeline decides (docs/design.md). */
#ifndef POSTERN_SSO_H
#define POSTERN_SSO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "postern/auth.h"
#include "postern/config.h"
#include "postern/resolve.h"

/* ---- SASL base64 (RFC 4648 §4, padded, nothing else allowed) ----------------------------- */

/* Strict decoding: false for any character outside the alphabet, bad padding or non-zero pad
 * bits. *out is malloc'd (NUL-terminated for convenience), *outlen its length. */
bool sasl_b64_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen);
char *sasl_b64_encode(const unsigned char *in, size_t len);

/* ---- Kerberos: the acceptor's keys and one GSSAPI exchange --------------------------------- */

struct krb_acceptor;
/* Copies the keytab's keys into a MEMORY keytab (called at start, before privileges drop, and
 * on reload as User): the file may stay readable by the service user only. */
struct krb_acceptor *krb_acceptor_new(const struct kerberos_settings *k, char *err, size_t errlen);
void krb_acceptor_free(struct krb_acceptor *a);
size_t krb_acceptor_keys(const struct krb_acceptor *a);

struct krb_exchange;
/* One RFC 4752 exchange for a protocol's service name (imap, pop) under the rules of `k`
 * (HostName): tickets for other services or host names are refused. */
struct krb_exchange *krb_exchange_new(struct krb_acceptor *a, enum protocol protocol,
                                      const struct kerberos_settings *k);
/* The TLS session's tls-server-end-point data (RFC 5929), checked against the client's
 * channel bindings as ExtendedProtection says; without it (no TLS) "require" refuses. */
void krb_exchange_bind(struct krb_exchange *x, const unsigned char *tls_end_point, size_t len);
enum krb_step {
    KRB_STEP_CHALLENGE, /* send *out (may be empty) and wait for the next token */
    KRB_STEP_DONE,      /* the principal is proved; the authzid is known */
    KRB_STEP_FAILED,    /* *reason says why; *detail (static storage) what GSS-API said */
};
enum krb_step krb_exchange_step(struct krb_exchange *x, const unsigned char *in, size_t inlen,
                                unsigned char **out, size_t *outlen, enum auth_reason *reason,
                                char *detail, size_t detail_len);
const char *krb_exchange_principal(const struct krb_exchange *x); /* NULL before the proof */
const char *krb_exchange_authzid(const struct krb_exchange *x);   /* NULL or "" when none */
void krb_exchange_free(struct krb_exchange *x);

/* The service principal of the ticket in a GSS-API initial token (krb5 mechanism, AP-REQ):
 * service, host and realm, each at most part_len - 1 bytes of printable ASCII. Pure, for the
 * fuzzer; the sname is outside the ticket's encrypted part, so it only picks the key. */
bool krb_parse_ap_req_target(const unsigned char *tok, size_t len, char *service, char *host,
                             char *realm, size_t part_len);
/* RFC 4752 §3.1: the security layer message after the context, "no layer" (bit 1) offered and
 * chosen; the client's choice carries the authorization identity. Pure, for the fuzzer. */
bool krb_parse_layer_choice(const unsigned char *msg, size_t len, char **authzid);

/* ---- principals and NTLM identities to accounts --------------------------------------------- */

/* name@REALM (sAMAccountName) or an enterprise name user\@upn-suffix@REALM (UPN); the realm
 * must be one of `realms` (none: the DNS domain in upper case). Exactly one account, whose own
 * mailbox the session opens. */
void resolve_principal(struct directory *d, const struct domain_names *names,
                       const char *const *realms, size_t n_realms, const char *principal,
                       struct resolution *out, struct auth_trace *trace);
/* DOMAIN\user (NetBIOS or DNS domain), or user@upn with an empty domain. */
void resolve_ntlm_identity(struct directory *d, const struct domain_names *names,
                           const char *identity, struct resolution *out, struct auth_trace *trace);
/* Whether the authorization identity a client asked for is the account itself (its principal,
 * sAMAccountName, DOMAIN\name, UPN, mailbox alias or primary address). */
bool sso_authzid_is_own(const char *authzid, const char *principal, const struct account *a,
                        const struct domain_names *names);

/* ---- NTLMSSP (MS-NLMP 2.2.1) ---------------------------------------------------------------- */

#define NTLM_FLAG_UNICODE 0x00000001u

struct ntlm_authenticate {
    uint32_t flags;
    size_t lm_len, nt_len;
    char *domain, *user, *workstation; /* UTF-8 (from UTF-16LE, or OEM when not Unicode) */
};
/* A NEGOTIATE message (type 1): signature and type only. */
bool ntlm_parse_negotiate(const unsigned char *msg, size_t len);
/* An AUTHENTICATE message (type 3): every field inside the message, names valid UTF-16. */
bool ntlm_parse_authenticate(const unsigned char *msg, size_t len, struct ntlm_authenticate *out);
void ntlm_authenticate_clear(struct ntlm_authenticate *a);

/* Local NTLMv2 (for directories that hold NT hashes, e.g. OpenLDAP's sambaNTPassword): a
 * CHALLENGE with target information (without KEY_EXCH), and the check of an AUTHENTICATE
 * against it: NTProofStr from the NT hash, and the MIC when the client says it sent one.
 * LM and NTLMv1 never get here (ntlmv1_refused). */
size_t ntlm_make_challenge(const unsigned char server_challenge[8], const char *netbios_domain,
                           const char *netbios_host, const char *dns_domain, const char *dns_host,
                           uint64_t filetime, unsigned char *out, size_t outlen);
#define NTLM_CHALLENGE_MAX 2700
enum ntlm_verdict {
    NTLM_VERDICT_OK,
    NTLM_VERDICT_WRONG_PASSWORD, /* NTProofStr differs */
    NTLM_VERDICT_BAD_MIC,        /* the message was changed (or its MIC is missing) */
    NTLM_VERDICT_MALFORMED,
};
enum ntlm_verdict ntlm_verify_v2(const unsigned char nt_hash[16],
                                 const unsigned char server_challenge[8],
                                 const unsigned char *negotiate, size_t negotiate_len,
                                 const unsigned char *challenge, size_t challenge_len,
                                 const unsigned char *msg, size_t len);

/* ---- ntlm_auth helpers (squid-2.5-ntlmssp: YR/TT, KK/AF/NA, BH) ---------------------------- */

struct helper_pool;
struct helper;
struct helper_pool *helper_pool_new(const struct ntlm_settings *n);
void helper_pool_free(struct helper_pool *p);
/* An idle helper, or a new one while fewer than Helpers run; when all are leased, waits up to
 * wait_ms for one to come back if fewer than max_waiters workers wait already. NULL: none
 * can be had. Blocking (spawns, waits): workers only. */
struct helper *helper_lease(struct helper_pool *p, unsigned wait_ms, unsigned max_waiters);
/* Sends one request line, reads one reply line within HelperTimeout (poll on non-blocking
 * pipes). false: the helper wrote nothing usable (exited, timed out, line too long). */
bool helper_ask(struct helper_pool *p, struct helper *h, const char *request, char **reply);
/* Back to the pool; a helper that failed or may hold a half answer is ended instead. */
void helper_release(struct helper_pool *p, struct helper *h, bool reusable);
pid_t helper_pid(const struct helper *h);

enum ntlm_reply_kind { NTLM_REPLY_TT, NTLM_REPLY_AF, NTLM_REPLY_NA, NTLM_REPLY_BH, NTLM_REPLY_BAD };
/* One squid-2.5-ntlmssp reply line; *arg points into `line` (the blob, identity or status). */
enum ntlm_reply_kind ntlm_parse_reply(const char *line, const char **arg);
/* NT_STATUS_... text to its code and the audit reason (LOGON_FAILURE: invalid_credentials). */
enum auth_reason ntlm_status_reason(const char *status, unsigned *code);

#endif
