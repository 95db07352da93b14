/* The directory client: pooled LDAP connections with failover, TLS and timeouts; account
 * searches, password checks by simple bind, and the domain's names from the rootDSE. */
#include "postern/directory.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>
#include <ldap.h>
#include <sasl/sasl.h>

#include "postern/log.h"
#include "postern/util.h"

#include "internal.h"

#define DEFAULT_NETWORK_TIMEOUT 5
#define DEFAULT_OPERATION_TIMEOUT 10
#define DEFAULT_POOL_SIZE 4
/* The service password file holds one line; anything longer is not a password file. */
#define PASSWORD_FILE_MAX 4096
/* AD drops connections idle for MaxConnIdleTime (900 s by default) and firewalls forget idle
 * flows; a connection idle this long is replaced before use rather than found dead by a
 * request that then has to wait for the failure. */
#define IDLE_LIMIT_MS (UINT64_C(5) * 60 * 1000)
/* After the service account's bind was refused, lookups fail at once for a while instead of
 * binding again: every refused bind counts towards the account's lockout, and a wrong password
 * file would otherwise lock postern's own account out after a few logins. Doubles each time. */
#define SERVICE_HOLDOFF_FIRST_MS (UINT64_C(60) * 1000)
#define SERVICE_HOLDOFF_MAX_MS (UINT64_C(15) * 60 * 1000)
/* Debian's (and most distributions') directory of trusted CA certificates. */
#define SYSTEM_CA_DIR "/etc/ssl/certs"
/* supportedCapabilities value LDAP_CAP_ACTIVE_DIRECTORY_OID (MS-ADTS 3.1.1.3.4.3.1). */
#define AD_CAPABILITY_OID "1.2.840.113556.1.4.800"

enum pool_kind {
    POOL_LOOKUP,    /* bound as the service account (or anonymous): searches only */
    POOL_USER_BIND, /* whoever bound last; used for nothing but binds */
};

/* One pooled connection. `busy` is guarded by directory.lock; everything else belongs to the
 * thread that checked the slot out. */
struct slot {
    LDAP *ld; /* NULL: not connected */
    size_t uri;
    uint64_t last_used_ms;
    bool busy;
};

struct pool {
    enum pool_kind kind;
    const char *name;
    struct slot *slots;
    size_t n_slots;
    pthread_cond_t freed;
};

enum uri_transport { URI_LDAP, URI_LDAPS, URI_LDAPI };

struct directory {
    char **uris;
    enum uri_transport *transports;
    size_t n_uris;
    char *base_dn;
    char *bind_dn; /* NULL: anonymous lookups */
    /* Kept (and wiped on free) because every reconnect of a lookup connection binds again. */
    char *bind_password;
    size_t bind_password_len;
    /* SASL GSSAPI instead of a simple bind: credentials from a keytab, tickets in a private
     * in-memory cache (see service_credentials). */
    char *gss_principal; /* the credentials' principal, as the directory must see it */
    char *keytab;
    /* The keytab's keys, copied at start (as root) into a MEMORY keytab that lives as long as
     * this handle is open: the file may stay readable by root only. */
    krb5_context krb5;
    krb5_keytab memory_keytab;
    char memory_keytab_name[64];
    enum directory_tls tls;
    char *ca_file;
    bool verify_certificate;
    unsigned network_timeout;
    unsigned operation_timeout;

    pthread_mutex_t lock; /* slot.busy of both pools, `preferred` and the hold-off */
    size_t preferred;     /* where new connections go first: the last server that worked */
    uint64_t service_holdoff_until_ms;
    uint64_t service_holdoff_ms;
    struct pool lookup;
    struct pool user_bind;
};

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                              */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static struct timeval seconds(unsigned s)
{
    struct timeval tv = {.tv_sec = (time_t)s, .tv_usec = 0};
    return tv;
}

/* Failures that say "this server, or our connection to it, is gone": the connection is
 * dropped and the request goes to the next server. busy (51) and unavailable (52) come from
 * a server that answers but will not serve, e.g. a DC that is shutting down. */
static bool is_server_failure(int rc)
{
    return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT ||
           rc == LDAP_BUSY || rc == LDAP_UNAVAILABLE;
}

/* The server's diagnostic text for the last operation on ld, for logs ("" if none). */
static char *diagnostic(LDAP *ld)
{
    char *msg = NULL;
    if (ld == NULL || ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &msg) != LDAP_OPT_SUCCESS)
        return NULL;
    return msg;
}

static void log_ldap_failure(const char *uri, const char *what, int rc, LDAP *ld)
{
    char *diag = diagnostic(ld);
    log_warning("directory: %s: %s: %s (%d)%s%s", uri, what, ldap_err2string(rc), rc,
                diag && *diag ? ": " : "", diag && *diag ? diag : "");
    ldap_memfree(diag);
}

/* Waits for the whole answer to msgid for at most operation_timeout. An expired wait
 * abandons the request: the connection is then in an unknown state and the caller drops it. */
static int wait_result(struct directory *d, LDAP *ld, int msgid, LDAPMessage **res)
{
    struct timeval tv = seconds(d->operation_timeout);
    *res = NULL;
    int n = ldap_result(ld, msgid, LDAP_MSG_ALL, &tv, res);
    if (n == 0) {
        ldap_abandon_ext(ld, msgid, NULL, NULL);
        return LDAP_TIMEOUT;
    }
    if (n < 0 || *res == NULL) {
        int rc = LDAP_SERVER_DOWN;
        ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &rc);
        if (*res != NULL) {
            ldap_msgfree(*res);
            *res = NULL;
        }
        return rc != LDAP_SUCCESS ? rc : LDAP_SERVER_DOWN;
    }
    return LDAP_SUCCESS;
}

/* Waits for the answer to `msgid` (bounded by our timeout) and returns its result code, or
 * the libldap error that prevented one; *diag gets the diagnostic message if asked for. */
static int operation_result(struct directory *d, LDAP *ld, int msgid, char **diag)
{
    LDAPMessage *res;
    int rc = wait_result(d, ld, msgid, &res);
    if (rc != LDAP_SUCCESS)
        return rc;
    int code = LDAP_OTHER;
    rc = ldap_parse_result(ld, res, &code, NULL, diag, NULL, NULL, 1);
    return rc != LDAP_SUCCESS ? rc : code;
}

/* A simple bind with an explicit timeout (ldap_sasl_bind_s would wait as long as
 * LDAP_OPT_TIMEOUT says, which the API does not promise for every synchronous call).
 * *diag gets the server's diagnostic message (AD's "... data 52e ..."), to be ldap_memfree'd. */
static int simple_bind(struct directory *d, LDAP *ld, const char *dn, const char *password,
                       size_t password_len, char **diag)
{
    /* libldap only reads the credentials; pointing at the caller's buffer avoids a copy that
     * would need wiping (libldap's own BER buffer is freed unwiped; nothing to be done). */
    struct berval cred = {.bv_len = password_len, .bv_val = (char *)password};
    int msgid = -1;
    if (diag != NULL)
        *diag = NULL;
    int rc = ldap_sasl_bind(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, &msgid);
    return rc != LDAP_SUCCESS ? rc : operation_result(d, ld, msgid, diag);
}

/* StartTLS as two steps, so that the extended operation gets our timeout; the handshake
 * itself is bounded by LDAP_OPT_NETWORK_TIMEOUT. */
static int start_tls(struct directory *d, LDAP *ld)
{
    int msgid = -1;
    int rc = ldap_start_tls(ld, NULL, NULL, &msgid);
    if (rc == LDAP_SUCCESS)
        rc = operation_result(d, ld, msgid, NULL);
    return rc != LDAP_SUCCESS ? rc : ldap_install_tls(ld);
}

/* ------------------------------------------------------------------------------------------ */
/* Connections                                                                                */

static bool uses_tls(const struct directory *d, size_t uri)
{
    return d->transports[uri] == URI_LDAPS ||
           (d->transports[uri] == URI_LDAP && d->tls == DIRECTORY_TLS_STARTTLS);
}

#define SET_OPTION(ld, opt, value)                                                                 \
    do {                                                                                           \
        if (ldap_set_option((ld), (opt), (value)) != LDAP_OPT_SUCCESS) {                           \
            *failed = #opt;                                                                        \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

/* Every option is set on the handle itself, so /etc/ldap/ldap.conf and ~/.ldaprc change
 * nothing (they only fill in the library's global defaults, which a handle inherits). */
static bool set_options(const struct directory *d, LDAP *ld, size_t uri, const char **failed)
{
    int version = LDAP_VERSION3;
    int deref = LDAP_DEREF_NEVER;
    int no_limit = LDAP_NO_LIMIT;
    struct timeval net = seconds(d->network_timeout);
    struct timeval op = seconds(d->operation_timeout);
    /* Unacknowledged data for longer than a whole operation may take means a dead peer. */
    unsigned int tcp_user_timeout = d->operation_timeout * 1000u;

    SET_OPTION(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
    /* AD answers subtree searches at the domain root with references into the
     * Configuration NC (TECHNOTES §4); chasing them would bind elsewhere anonymously. */
    SET_OPTION(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    SET_OPTION(ld, LDAP_OPT_RESTART, LDAP_OPT_ON);
    SET_OPTION(ld, LDAP_OPT_DEREF, &deref);
    SET_OPTION(ld, LDAP_OPT_SIZELIMIT, &no_limit);
    SET_OPTION(ld, LDAP_OPT_TIMELIMIT, &no_limit);
    SET_OPTION(ld, LDAP_OPT_NETWORK_TIMEOUT, &net);
    SET_OPTION(ld, LDAP_OPT_TIMEOUT, &op);
    SET_OPTION(ld, LDAP_OPT_TCP_USER_TIMEOUT, &tcp_user_timeout);
    if (!uses_tls(d, uri))
        return true;

    int require = d->verify_certificate ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER;
    int min_protocol = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2;
    int is_server = 0;
    SET_OPTION(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &require);
    SET_OPTION(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &min_protocol);
    /* Only our CA file, and never a client certificate picked up from a user's ldaprc.
     * Without a CA file, the system's trust store: libldap's GnuTLS code never calls
     * gnutls_certificate_set_x509_system_trust(), so with neither file nor directory it would
     * trust nothing at all. */
    SET_OPTION(ld, LDAP_OPT_X_TLS_CACERTFILE, d->ca_file);
    SET_OPTION(ld, LDAP_OPT_X_TLS_CACERTDIR, d->ca_file ? NULL : SYSTEM_CA_DIR);
    SET_OPTION(ld, LDAP_OPT_X_TLS_CERTFILE, NULL);
    SET_OPTION(ld, LDAP_OPT_X_TLS_KEYFILE, NULL);
    /* Per-handle TLS options take effect only with a new context; without it the CA above
     * is ignored and StartTLS fails with -11 (TECHNOTES §4). Must come last. */
    SET_OPTION(ld, LDAP_OPT_X_TLS_NEWCTX, &is_server);
    return true;
}

#undef SET_OPTION

static bool service_credentials(struct directory *d, gss_cred_id_t *out);

struct gssapi_bind_state {
    gss_cred_id_t cred;
    bool cred_set;
};

/* Cyrus SASL's GSSAPI client asks for an authorization identity before it starts GSS-API;
 * that question is the first moment the connection's SASL context exists, which
 * LDAP_OPT_X_SASL_GSS_CREDS needs, so the credentials are handed over here. The answer to
 * every question is empty: the identity is the credentials'. */
static int sasl_interact(LDAP *ld, unsigned flags, void *defaults, void *in)
{
    (void)flags;
    struct gssapi_bind_state *state = defaults;
    if (!state->cred_set) {
        if (ldap_set_option(ld, LDAP_OPT_X_SASL_GSS_CREDS, (void *)state->cred) != LDAP_OPT_SUCCESS)
            return LDAP_LOCAL_ERROR;
        state->cred_set = true;
    }
    for (sasl_interact_t *i = in; i->id != SASL_CB_LIST_END; i++) {
        i->result = "";
        i->len = 0;
    }
    return LDAP_SUCCESS;
}

/* The service bind by SASL GSSAPI (RFC 4752). The service principal is ldap/<host of the
 * URI>, not a reverse-DNS name (NOCANON): DNS need not agree with AD's SPNs. Over TLS no SASL
 * security layer (AD refuses one inside TLS); in clear text sign and seal are required. */
static int gssapi_bind(struct directory *d, LDAP *ld, size_t uri)
{
    const char *secprops = uses_tls(d, uri) ? "minssf=0,maxssf=0" : "minssf=56";
    if (ldap_set_option(ld, LDAP_OPT_X_SASL_NOCANON, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_X_SASL_SECPROPS, secprops) != LDAP_OPT_SUCCESS)
        return LDAP_LOCAL_ERROR;
    struct gssapi_bind_state state = {.cred = GSS_C_NO_CREDENTIAL};
    if (!service_credentials(d, &state.cred))
        return LDAP_LOCAL_ERROR;
    int rc = ldap_sasl_interactive_bind_s(ld, NULL, "GSSAPI", NULL, NULL, LDAP_SASL_QUIET,
                                          sasl_interact, &state);
    /* The security context outlives the credentials: they are needed for the bind only. */
    OM_uint32 minor;
    gss_release_cred(&minor, &state.cred);
    if (rc != LDAP_SUCCESS)
        return rc;
    /* Never a bind with whatever default credentials the process environment holds: the
     * identity must be the keytab's. */
    char *user = NULL;
    ldap_get_option(ld, LDAP_OPT_X_SASL_USERNAME, &user);
    bool ours = state.cred_set && user != NULL && strcmp(user, d->gss_principal) == 0;
    if (!ours)
        log_error("directory: SASL GSSAPI bound as %s, not as %s from %s", user ? user : "?",
                  d->gss_principal, d->keytab);
    ldap_memfree(user);
    return ours ? LDAP_SUCCESS : LDAP_LOCAL_ERROR;
}

/* A new handle to one server: options, TCP (and TLS), then the service bind for lookups.
 * Returns an LDAP result code; *ld is set only on success. */
static int open_handle(struct directory *d, enum pool_kind kind, size_t uri, LDAP **out)
{
    const char *name = d->uris[uri];
    LDAP *ld = NULL;
    *out = NULL;
    int rc = ldap_initialize(&ld, name);
    if (rc != LDAP_SUCCESS) {
        log_warning("directory: %s: ldap_initialize: %s", name, ldap_err2string(rc));
        return rc;
    }
    const char *failed = NULL;
    if (!set_options(d, ld, uri, &failed)) {
        log_warning("directory: %s: cannot set %s", name, failed);
        ldap_unbind_ext(ld, NULL, NULL);
        return LDAP_LOCAL_ERROR;
    }
    if (d->transports[uri] == URI_LDAP && d->tls == DIRECTORY_TLS_STARTTLS) {
        rc = start_tls(d, ld);
        if (rc != LDAP_SUCCESS) {
            log_ldap_failure(name, "StartTLS", rc, ld);
            ldap_unbind_ext(ld, NULL, NULL);
            /* The server answered but refused TLS (or our CA refused its certificate, which
             * libldap reports as a connect error): either way this server is unusable. */
            return is_server_failure(rc) ? rc : LDAP_CONNECT_ERROR;
        }
    } else {
        /* ldaps:// does its TLS handshake here. */
        rc = ldap_connect(ld);
        if (rc != LDAP_SUCCESS) {
            log_ldap_failure(name, "connect", rc, ld);
            ldap_unbind_ext(ld, NULL, NULL);
            return rc;
        }
    }
    if (kind == POOL_LOOKUP && d->gss_principal != NULL) {
        rc = gssapi_bind(d, ld, uri);
        if (rc != LDAP_SUCCESS) {
            char *diag = diagnostic(ld);
            log_warning("directory: %s: SASL GSSAPI bind with %s: %s (%d)%s%s", name, d->keytab,
                        ldap_err2string(rc), rc, diag && *diag ? ": " : "",
                        diag && *diag ? diag : "");
            ldap_memfree(diag);
            ldap_unbind_ext(ld, NULL, NULL);
            return rc;
        }
    } else if (kind == POOL_LOOKUP && d->bind_dn != NULL) {
        char *diag = NULL;
        rc = simple_bind(d, ld, d->bind_dn, d->bind_password, d->bind_password_len, &diag);
        if (rc != LDAP_SUCCESS) {
            unsigned sub = directory_ad_subcode(diag);
            log_warning("directory: %s: bind as %s: %s (%d)%s%s", name, d->bind_dn,
                        ldap_err2string(rc), rc, diag && *diag ? ": " : "",
                        diag && *diag ? diag : "");
            if (sub != 0)
                log_warning("directory: %s: service account bind refused, AD reason 0x%x", name,
                            sub);
            ldap_memfree(diag);
            ldap_unbind_ext(ld, NULL, NULL);
            return rc;
        }
        ldap_memfree(diag);
    }
    log_debug("directory: %s: connected (%s)", name, kind == POOL_LOOKUP ? "lookup" : "user bind");
    *out = ld;
    return LDAP_SUCCESS;
}

static size_t preferred_server(struct directory *d)
{
    pthread_mutex_lock(&d->lock);
    size_t p = d->preferred;
    pthread_mutex_unlock(&d->lock);
    return p;
}

static void set_preferred(struct directory *d, size_t uri)
{
    pthread_mutex_lock(&d->lock);
    d->preferred = uri;
    pthread_mutex_unlock(&d->lock);
}

/* A server failed a request on a fresh connection: new connections go to the next one. */
static void server_failed(struct directory *d, size_t uri)
{
    pthread_mutex_lock(&d->lock);
    if (d->preferred == uri)
        d->preferred = (uri + 1) % d->n_uris;
    pthread_mutex_unlock(&d->lock);
}

/* Is the service bind on hold after a refusal? */
static bool service_bind_held(struct directory *d)
{
    pthread_mutex_lock(&d->lock);
    bool held = d->service_holdoff_until_ms != 0 && now_ms() < d->service_holdoff_until_ms;
    pthread_mutex_unlock(&d->lock);
    return held;
}

static void service_bind_result(struct directory *d, bool refused)
{
    pthread_mutex_lock(&d->lock);
    if (!refused) {
        d->service_holdoff_ms = 0;
        d->service_holdoff_until_ms = 0;
    } else if (d->service_holdoff_until_ms != 0 && now_ms() < d->service_holdoff_until_ms) {
        /* Binds that were under way when the hold-off began: one refusal, not several. */
    } else {
        d->service_holdoff_ms = d->service_holdoff_ms == 0 ? SERVICE_HOLDOFF_FIRST_MS
                                : d->service_holdoff_ms * 2 > SERVICE_HOLDOFF_MAX_MS
                                    ? SERVICE_HOLDOFF_MAX_MS
                                    : d->service_holdoff_ms * 2;
        d->service_holdoff_until_ms = now_ms() + d->service_holdoff_ms;
        log_error("directory: the service account %s was refused; no new lookup connections "
                  "for %llu s",
                  d->bind_dn, (unsigned long long)(d->service_holdoff_ms / 1000));
    }
    pthread_mutex_unlock(&d->lock);
}

/* Connects s to the first server that works, starting at `start` and going round the list
 * in order. DIRECTORY_UNAVAILABLE when none could be reached; DIRECTORY_ERROR when a server
 * answered but refused us for a reason another server would share (our service credentials;
 * trying them on every server would only bring the service account closer to lockout). */
static enum directory_status connect_slot(struct directory *d, struct pool *p, struct slot *s,
                                          size_t start)
{
    bool service_bind = p->kind == POOL_LOOKUP && (d->bind_dn != NULL || d->gss_principal != NULL);
    if (service_bind && service_bind_held(d))
        return DIRECTORY_ERROR;
    enum directory_status status = DIRECTORY_UNAVAILABLE;
    for (size_t k = 0; k < d->n_uris; k++) {
        size_t uri = (start + k) % d->n_uris;
        LDAP *ld;
        int rc = open_handle(d, p->kind, uri, &ld);
        if (rc == LDAP_SUCCESS) {
            s->ld = ld;
            s->uri = uri;
            set_preferred(d, uri);
            if (service_bind)
                service_bind_result(d, false);
            return DIRECTORY_OK;
        }
        if (rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_INAPPROPRIATE_AUTH ||
            rc == LDAP_CONFIDENTIALITY_REQUIRED || rc == LDAP_STRONG_AUTH_REQUIRED ||
            rc == LDAP_UNWILLING_TO_PERFORM || rc == LDAP_INVALID_DN_SYNTAX) {
            if (service_bind && rc == LDAP_INVALID_CREDENTIALS)
                service_bind_result(d, true);
            return DIRECTORY_ERROR;
        }
        if (!is_server_failure(rc))
            status = DIRECTORY_ERROR;
    }
    return status;
}

static void drop_handle(struct slot *s)
{
    if (s->ld != NULL)
        ldap_unbind_ext(s->ld, NULL, NULL);
    s->ld = NULL;
}

/* Takes a free slot of p, preferring one that is connected; waits while all are busy, but
 * not longer than one connect plus one operation would take. NULL when the wait expired. */
static struct slot *checkout(struct directory *d, struct pool *p)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)d->network_timeout + (time_t)d->operation_timeout;

    pthread_mutex_lock(&d->lock);
    for (;;) {
        struct slot *pick = NULL;
        for (size_t i = 0; i < p->n_slots; i++) {
            struct slot *s = &p->slots[i];
            if (s->busy)
                continue;
            if (s->ld != NULL) {
                pick = s;
                break;
            }
            if (pick == NULL)
                pick = s;
        }
        if (pick != NULL) {
            pick->busy = true;
            pthread_mutex_unlock(&d->lock);
            return pick;
        }
        if (pthread_cond_timedwait(&p->freed, &d->lock, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&d->lock);
            return NULL;
        }
    }
}

static void checkin(struct directory *d, struct pool *p, struct slot *s)
{
    pthread_mutex_lock(&d->lock);
    s->busy = false;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&d->lock);
}

/* An operation on a checked-out connection. It returns an LDAP result code and must be
 * repeatable: after a server failure it runs again on another connection. */
typedef int (*directory_op)(struct directory *d, LDAP *ld, void *ctx);

/* Runs op on a connection of pool p, reconnecting transparently: a connection that failed
 * after lying idle in the pool may simply have been closed by the server, so it is replaced
 * without counting as a retry; a fresh connection that fails moves `preferred` on, and the
 * request is retried once on the next server. *code gets op's result code. */
static enum directory_status run_op(struct directory *d, struct pool *p, directory_op op, void *ctx,
                                    int *code, const char **server)
{
    *code = LDAP_OTHER;
    struct slot *s = checkout(d, p);
    if (s == NULL) {
        log_warning("directory: all %zu %s connections stayed busy for %u s", p->n_slots, p->name,
                    d->network_timeout + d->operation_timeout);
        return DIRECTORY_UNAVAILABLE;
    }
    if (s->ld != NULL && now_ms() - s->last_used_ms > IDLE_LIMIT_MS)
        drop_handle(s);

    enum directory_status status;
    bool retried = false;
    for (;;) {
        bool fresh = false;
        if (s->ld == NULL) {
            status = connect_slot(d, p, s, preferred_server(d));
            if (status != DIRECTORY_OK)
                break;
            fresh = true;
        }
        int rc = op(d, s->ld, ctx);
        if (!is_server_failure(rc)) {
            *code = rc;
            if (server != NULL)
                *server = d->uris[s->uri];
            s->last_used_ms = now_ms();
            /* A client-side decoding or encoding failure leaves the stream unusable. */
            if (rc == LDAP_DECODING_ERROR || rc == LDAP_ENCODING_ERROR || rc == LDAP_LOCAL_ERROR)
                drop_handle(s);
            status = DIRECTORY_OK;
            break;
        }
        log_ldap_failure(d->uris[s->uri], p->name, rc, s->ld);
        size_t failed = s->uri;
        drop_handle(s);
        if (fresh) {
            server_failed(d, failed);
            if (retried) {
                status = DIRECTORY_UNAVAILABLE;
                break;
            }
            retried = true;
        }
    }
    checkin(d, p, s);
    return status;
}

/* ------------------------------------------------------------------------------------------ */
/* Setup                                                                                      */

/* The first line of the file, without its line end. The read buffer is wiped; the caller
 * owns (and wipes) the result. */
static char *read_password_file(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        set_err(err, errlen, "bind password file %s: %s", path, strerror(errno));
        return NULL;
    }
    char buf[PASSWORD_FILE_MAX + 1] = {0};
    size_t have = 0;
    bool failed = false;
    while (have < sizeof(buf) && memchr(buf, '\n', have) == NULL) {
        ssize_t n = read(fd, buf + have, sizeof(buf) - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            set_err(err, errlen, "bind password file %s: %s", path, strerror(errno));
            failed = true;
            break;
        }
        if (n == 0)
            break;
        have += (size_t)n;
    }
    close(fd);
    char *password = NULL;
    if (!failed) {
        char *nl = memchr(buf, '\n', have);
        size_t n = nl != NULL ? (size_t)(nl - buf) : have;
        if (nl == NULL && have == sizeof(buf)) {
            set_err(err, errlen, "bind password file %s: first line longer than %d bytes", path,
                    PASSWORD_FILE_MAX);
        } else {
            if (n > 0 && buf[n - 1] == '\r')
                n--;
            if (n == 0)
                /* An empty password would make the service bind an unauthenticated (anonymous)
                 * bind, RFC 4513 §5.1.2. */
                set_err(err, errlen, "bind password file %s: the first line is empty", path);
            else if (memchr(buf, '\0', n) != NULL)
                set_err(err, errlen, "bind password file %s: NUL byte in the password", path);
            else {
                password = xstrndup(buf, n);
                *len = n;
            }
        }
    }
    wipe(buf, sizeof(buf));
    return password;
}

static bool parse_uri(const char *uri, enum uri_transport *transport, char *err, size_t errlen)
{
    /* ldap_initialize would take a list; postern needs to know which server answered. */
    if (uri == NULL || *uri == '\0' || strpbrk(uri, " \t,") != NULL) {
        set_err(err, errlen, "directory URI \"%s\": give one server per URI", uri ? uri : "");
        return false;
    }
    LDAPURLDesc *lud = NULL;
    if (ldap_url_parse(uri, &lud) != LDAP_URL_SUCCESS) {
        set_err(err, errlen, "directory URI \"%s\": not an LDAP URI (scheme ldap, ldaps or ldapi)",
                uri);
        return false;
    }
    bool ok = true;
    if (strcmp(lud->lud_scheme, "ldap") == 0)
        *transport = URI_LDAP;
    else if (strcmp(lud->lud_scheme, "ldaps") == 0)
        *transport = URI_LDAPS;
    else if (strcmp(lud->lud_scheme, "ldapi") == 0)
        *transport = URI_LDAPI;
    else
        ok = false;
    if (!ok)
        set_err(err, errlen, "directory URI \"%s\": scheme must be ldap, ldaps or ldapi", uri);
    else if ((lud->lud_dn != NULL && *lud->lud_dn != '\0') || lud->lud_attrs != NULL ||
             lud->lud_filter != NULL || lud->lud_exts != NULL) {
        set_err(err, errlen, "directory URI \"%s\": name only the server (base_dn is separate)",
                uri);
        ok = false;
    }
    ldap_free_urldesc(lud);
    return ok;
}

static void pool_init(struct pool *p, enum pool_kind kind, const char *name, size_t n)
{
    p->kind = kind;
    p->name = name;
    p->n_slots = n;
    p->slots = xcalloc(n, sizeof(*p->slots));
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->freed, &attr);
    pthread_condattr_destroy(&attr);
}

static void pool_destroy(struct pool *p)
{
    if (p->slots == NULL)
        return;
    for (size_t i = 0; i < p->n_slots; i++)
        drop_handle(&p->slots[i]);
    free(p->slots);
    p->slots = NULL;
    pthread_cond_destroy(&p->freed);
}

/* libldap sets up its global defaults and its TLS library on first use; the TLS part
 * (tls_init() in libldap/tls2.c) notes that first use in a plain static counter, without a
 * lock. The first directory_new() runs at start-up, before any worker thread exists, so that
 * first use happens here (calls on reloads find it done). Building one TLS context also loads
 * the CA file, which makes a wrong path a configuration error now, not failed logins later. */
static bool prepare_library(struct directory *d, char *err, size_t errlen)
{
    int version = 0;
    ldap_get_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &version);
    for (size_t i = 0; i < d->n_uris; i++) {
        if (!uses_tls(d, i))
            continue;
        LDAP *ld = NULL;
        if (ldap_initialize(&ld, d->uris[i]) != LDAP_SUCCESS) {
            set_err(err, errlen, "directory URI \"%s\": ldap_initialize failed", d->uris[i]);
            return false;
        }
        const char *failed = NULL;
        bool ok = set_options(d, ld, i, &failed);
        ldap_unbind_ext(ld, NULL, NULL);
        if (!ok) {
            if (strcmp(failed, "LDAP_OPT_X_TLS_NEWCTX") == 0)
                set_err(err, errlen, "directory TLS: cannot load CA file %s",
                        d->ca_file ? d->ca_file : SYSTEM_CA_DIR);
            else
                set_err(err, errlen, "directory: cannot set %s", failed);
            return false;
        }
        break; /* every URI gets the same TLS settings */
    }
    return true;
}

static struct directory *directory_configure(const struct directory_config *cfg, char **uris,
                                             size_t n_uris, char *err, size_t errlen);
static void gss_message(OM_uint32 status, int type, char *out, size_t outlen)
{
    OM_uint32 minor, ctx = 0;
    gss_buffer_desc text = GSS_C_EMPTY_BUFFER;
    size_t used = strlen(out);
    do {
        if (gss_display_status(&minor, status, type, GSS_C_NO_OID, &ctx, &text) != GSS_S_COMPLETE)
            break;
        used += (size_t)snprintf(out + used, used < outlen ? outlen - used : 0, "%s%.*s",
                                 used ? "; " : "", (int)text.length, (const char *)text.value);
        gss_release_buffer(&minor, &text);
    } while (ctx != 0 && used < outlen);
}

/* Copies every entry of the keytab file into the MEMORY keytab `name` and picks the
 * principal: `wanted` if the keytab has keys for it, else the first entry's. */
static bool load_keytab(struct directory *d, const char *path, const char *name, const char *wanted,
                        char *err, size_t errlen)
{
    krb5_error_code ret = krb5_init_context(&d->krb5);
    if (ret != 0) {
        set_err(err, errlen, "directory: Kerberos: cannot initialise (%d)", ret);
        d->krb5 = NULL;
        return false;
    }
    krb5_principal want = NULL;
    if (wanted != NULL && krb5_parse_name(d->krb5, wanted, &want) != 0) {
        set_err(err, errlen, "directory: BindPrincipal %s is not a Kerberos principal", wanted);
        return false;
    }
    char file_name[PATH_MAX + 8];
    snprintf(file_name, sizeof(file_name), "FILE:%s", path);
    krb5_keytab file = NULL;
    krb5_kt_cursor cursor;
    krb5_keytab_entry entry;
    size_t copied = 0;
    if ((ret = krb5_kt_resolve(d->krb5, name, &d->memory_keytab)) != 0 ||
        (ret = krb5_kt_resolve(d->krb5, file_name, &file)) != 0 ||
        (ret = krb5_kt_start_seq_get(d->krb5, file, &cursor)) != 0) {
        const char *msg = krb5_get_error_message(d->krb5, ret);
        set_err(err, errlen, "directory: keytab %s: %s", path, msg);
        krb5_free_error_message(d->krb5, msg);
        if (file != NULL)
            krb5_kt_close(d->krb5, file);
        krb5_free_principal(d->krb5, want);
        return false;
    }
    while ((ret = krb5_kt_next_entry(d->krb5, file, &entry, &cursor)) == 0) {
        bool pick = want ? krb5_principal_compare(d->krb5, entry.principal, want)
                         : d->gss_principal == NULL;
        char *text = NULL;
        if (pick && d->gss_principal == NULL &&
            krb5_unparse_name(d->krb5, entry.principal, &text) == 0) {
            d->gss_principal = xstrdup(text);
            krb5_free_unparsed_name(d->krb5, text);
        }
        ret = krb5_kt_add_entry(d->krb5, d->memory_keytab, &entry);
        krb5_free_keytab_entry_contents(d->krb5, &entry);
        if (ret != 0)
            break;
        copied++;
    }
    krb5_kt_end_seq_get(d->krb5, file, &cursor);
    krb5_kt_close(d->krb5, file);
    krb5_free_principal(d->krb5, want);
    if (ret != 0 && ret != KRB5_KT_END) {
        const char *msg = krb5_get_error_message(d->krb5, ret);
        set_err(err, errlen, "directory: keytab %s: %s", path, msg);
        krb5_free_error_message(d->krb5, msg);
        return false;
    }
    if (copied == 0) {
        set_err(err, errlen, "directory: keytab %s holds no keys", path);
        return false;
    }
    if (d->gss_principal == NULL) {
        set_err(err, errlen, "directory: keytab %s holds no keys for %s", path, wanted);
        return false;
    }
    return true;
}

/* The keys are read here, at start and before privileges drop, into a MEMORY keytab: the
 * file may stay readable by root only. Credentials come from them at the first bind (the
 * KDC need not be up when postern starts). */
static bool load_service_keys(struct directory *d, const struct directory_config *cfg, char *err,
                              size_t errlen)
{
    snprintf(d->memory_keytab_name, sizeof(d->memory_keytab_name), "MEMORY:postern-directory-%p",
             (void *)d);
    if (!load_keytab(d, cfg->keytab, d->memory_keytab_name, cfg->bind_principal, err, errlen))
        return false;
    d->keytab = xstrdup(cfg->keytab);
    log_info("directory: service binds by SASL GSSAPI as %s (keytab %s)", d->gss_principal,
             d->keytab);
    return true;
}

/* Initiator credentials for the keytab's principal (MIT's cred store, krb5 1.11+), for one
 * bind. The tickets live in a MEMORY ccache of this directory client, so acquiring is only a
 * look into it while they are valid; once they expired, it gets a new TGT from the keys. A
 * handle kept for good would not: MIT refreshes such a handle's TGT only at set times and
 * never after a failed try, so every new connection failed ("Ticket expired") from the first
 * expiry on, also when the KDC had only been away for a moment. */
static bool service_credentials(struct directory *d, gss_cred_id_t *out)
{
    char ccache[64];
    snprintf(ccache, sizeof(ccache), "MEMORY:postern-directory-%p", (void *)d);
    gss_key_value_element_desc elements[] = {{"client_keytab", d->memory_keytab_name},
                                             {"ccache", ccache}};
    gss_key_value_set_desc store = {.count = 2, .elements = elements};
    OM_uint32 major, minor;
    gss_name_t name = GSS_C_NO_NAME;
    gss_buffer_desc buf = {.length = strlen(d->gss_principal), .value = d->gss_principal};
    major = gss_import_name(&minor, &buf, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
    gss_OID_set_desc mechs = {.count = 1, .elements = (gss_OID)gss_mech_krb5};
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    OM_uint32 lifetime = 0;
    if (!GSS_ERROR(major))
        major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE,
                                      &store, &cred, NULL, &lifetime);
    gss_release_name(&minor, &name);
    if (!GSS_ERROR(major) && lifetime == 0) {
        /* Expired tickets and no new ones (the KDC did not answer): no bind with them. */
        gss_release_cred(&minor, &cred);
        log_warning("directory: the Kerberos tickets of %s expired and the KDC gave no new ones "
                    "for the keys of %s",
                    d->gss_principal, d->keytab);
        return false;
    }
    if (GSS_ERROR(major)) {
        char why[512] = "";
        gss_message(major, GSS_C_GSS_CODE, why, sizeof(why));
        gss_message(minor, GSS_C_MECH_CODE, why, sizeof(why));
        log_warning("directory: no Kerberos credentials for %s from %s: %s", d->gss_principal,
                    d->keytab, why);
        return false;
    }
    *out = cred;
    return true;
}

struct directory *directory_new(const struct directory_config *cfg, char *err, size_t errlen)
{
    set_err(err, errlen, "%s", "");
    if (cfg == NULL)
        return NULL;
    char **uris = cfg->uris;
    size_t n_uris = cfg->n_uris;
    char **discovered = NULL;
    if (n_uris == 0 && cfg->discover_domain != NULL) {
        if (directory_discover(cfg->discover_domain, &discovered, &n_uris, err, errlen) !=
            DIRECTORY_OK)
            return NULL;
        uris = discovered;
        for (size_t i = 0; i < n_uris; i++)
            log_info("directory: domain controller %s (DNS SRV of %s)", uris[i],
                     cfg->discover_domain);
    }
    if (n_uris == 0 || uris == NULL) {
        set_err(err, errlen, "directory: no server URI configured");
        return NULL;
    }
    struct directory *d = directory_configure(cfg, uris, n_uris, err, errlen);
    for (size_t i = 0; discovered != NULL && i < n_uris; i++)
        free(discovered[i]);
    free(discovered);
    return d;
}

static struct directory *directory_configure(const struct directory_config *cfg, char **uris,
                                             size_t n_uris, char *err, size_t errlen)
{
    if (cfg->base_dn == NULL || *cfg->base_dn == '\0') {
        set_err(err, errlen, "directory: no base DN configured");
        return NULL;
    }
    bool have_bind_dn = cfg->bind_dn != NULL && *cfg->bind_dn != '\0';
    if (have_bind_dn && (cfg->bind_password_file == NULL || *cfg->bind_password_file == '\0')) {
        set_err(err, errlen, "directory: bind DN %s has no password file", cfg->bind_dn);
        return NULL;
    }

    struct directory *d = xcalloc(1, sizeof(*d));
    d->n_uris = n_uris;
    d->uris = xcalloc(n_uris, sizeof(*d->uris));
    d->transports = xcalloc(n_uris, sizeof(*d->transports));
    pthread_mutex_init(&d->lock, NULL);
    pool_init(&d->lookup, POOL_LOOKUP, "lookup",
              cfg->pool_size ? cfg->pool_size : DEFAULT_POOL_SIZE);
    pool_init(&d->user_bind, POOL_USER_BIND, "user bind",
              cfg->pool_size ? cfg->pool_size : DEFAULT_POOL_SIZE);
    for (size_t i = 0; i < n_uris; i++) {
        if (!parse_uri(uris[i], &d->transports[i], err, errlen)) {
            directory_free(d);
            return NULL;
        }
        d->uris[i] = xstrdup(uris[i]);
    }
    d->base_dn = xstrdup(cfg->base_dn);
    d->tls = cfg->tls;
    d->ca_file = cfg->ca_file && *cfg->ca_file ? xstrdup(cfg->ca_file) : NULL;
    d->verify_certificate = cfg->verify_certificate;
    d->network_timeout = cfg->network_timeout ? cfg->network_timeout : DEFAULT_NETWORK_TIMEOUT;
    d->operation_timeout =
        cfg->operation_timeout ? cfg->operation_timeout : DEFAULT_OPERATION_TIMEOUT;
    if (have_bind_dn) {
        d->bind_dn = xstrdup(cfg->bind_dn);
        d->bind_password =
            read_password_file(cfg->bind_password_file, &d->bind_password_len, err, errlen);
        if (d->bind_password == NULL) {
            directory_free(d);
            return NULL;
        }
    }
    if (cfg->keytab != NULL && !load_service_keys(d, cfg, err, errlen)) {
        directory_free(d);
        return NULL;
    }
    if (!prepare_library(d, err, errlen)) {
        directory_free(d);
        return NULL;
    }
    for (size_t i = 0; i < d->n_uris; i++) {
        if (d->transports[i] == URI_LDAP && d->tls == DIRECTORY_TLS_NONE)
            log_warning("directory: %s: no TLS, passwords cross the network in clear text",
                        d->uris[i]);
        else if (uses_tls(d, i) && !d->verify_certificate)
            log_warning("directory: %s: server certificate is not verified", d->uris[i]);
    }
    return d;
}

void directory_free(struct directory *d)
{
    if (d == NULL)
        return;
    pool_destroy(&d->lookup);
    pool_destroy(&d->user_bind);
    pthread_mutex_destroy(&d->lock);
    if (d->bind_password != NULL) {
        wipe(d->bind_password, d->bind_password_len);
        free(d->bind_password);
    }
    free(d->keytab);
    free(d->gss_principal);
    if (d->memory_keytab != NULL)
        krb5_kt_close(d->krb5, d->memory_keytab);
    if (d->krb5 != NULL)
        krb5_free_context(d->krb5);
    for (size_t i = 0; i < d->n_uris; i++)
        free(d->uris[i]);
    free(d->uris);
    free(d->transports);
    free(d->base_dn);
    free(d->bind_dn);
    free(d->ca_file);
    free(d);
}

/* ------------------------------------------------------------------------------------------ */
/* Decoding entries                                                                           */

static const char *const ACCOUNT_ATTRS[] = {
    "sAMAccountName",
    "userPrincipalName",
    "mailNickname",
    "mail",
    "proxyAddresses",
    "objectGUID",
    "entryUUID",
    "objectSid",
    "userAccountControl",
    /* Constructed on AD: returned only when asked for by name (TECHNOTES §5). */
    "msDS-User-Account-Control-Computed",
    "accountExpires",
    "lockoutTime",
    "pwdLastSet",
    "adminCount",
    "primaryGroupID",
    "objectClass",
    /* Operational on OpenLDAP (memberof overlay): also only by name. */
    "memberOf",
    "protocolSettings",
    NULL,
};

/* Why an entry could not be decoded, for the log. */
struct decode_error {
    const char *attr;
    const char *why;
};

static void decode_fail(struct decode_error *e, const char *attr, const char *why)
{
    if (e->attr == NULL) {
        e->attr = attr;
        e->why = why;
    }
}

/* A text value as a C string; NULL (and an error) if it contains a NUL, which would make
 * the string compare equal to a different name. */
static char *value_string(const struct berval *v, const char *attr, struct decode_error *e)
{
    if (v->bv_len > 0 && memchr(v->bv_val, '\0', v->bv_len) != NULL) {
        decode_fail(e, attr, "NUL byte in value");
        return NULL;
    }
    return xstrndup(v->bv_val, v->bv_len);
}

static char *get_string(LDAP *ld, LDAPMessage *entry, const char *attr, struct decode_error *e)
{
    struct berval **vals = ldap_get_values_len(ld, entry, attr);
    if (vals == NULL)
        return NULL;
    char *s = vals[0] != NULL ? value_string(vals[0], attr, e) : NULL;
    ldap_value_free_len(vals);
    return s;
}

static char **get_strings(LDAP *ld, LDAPMessage *entry, const char *attr, size_t *n,
                          struct decode_error *e)
{
    *n = 0;
    struct berval **vals = ldap_get_values_len(ld, entry, attr);
    if (vals == NULL)
        return NULL;
    size_t count = (size_t)ldap_count_values_len(vals);
    char **out = xcalloc(count, sizeof(*out));
    for (size_t i = 0; i < count; i++) {
        char *s = value_string(vals[i], attr, e);
        if (s != NULL)
            out[(*n)++] = s;
    }
    ldap_value_free_len(vals);
    return out;
}

/* An INTEGER attribute. Absent: *present = false and true is returned. Present but not a
 * number: false, so that the caller refuses the entry instead of reading "never expires"
 * or "not disabled" into garbage. */
static bool get_int64(LDAP *ld, LDAPMessage *entry, const char *attr, int64_t *out, bool *present,
                      struct decode_error *e)
{
    *present = false;
    *out = 0;
    struct berval **vals = ldap_get_values_len(ld, entry, attr);
    if (vals == NULL)
        return true;
    bool ok = vals[0] == NULL || directory_parse_int64(vals[0]->bv_val, vals[0]->bv_len, out);
    *present = ok && vals[0] != NULL;
    ldap_value_free_len(vals);
    if (!ok)
        decode_fail(e, attr, "not an integer");
    return ok;
}

/* userAccountControl and the computed flags are 32-bit; AD's INTEGER syntax is signed, so a
 * value with the top bit set may come as a negative number. */
static bool get_flags(LDAP *ld, LDAPMessage *entry, const char *attr, uint32_t *out, bool *present,
                      struct decode_error *e)
{
    int64_t v;
    if (!get_int64(ld, entry, attr, &v, present, e))
        return false;
    if (v < INT32_MIN || v > (int64_t)UINT32_MAX) {
        decode_fail(e, attr, "out of 32-bit range");
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static bool has_value(char **values, size_t n, const char *wanted)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_casecmp(values[i], wanted) == 0)
            return true;
    return false;
}

/* AD returns at most MaxValRange (1500) values of an attribute at once, the rest under
 * "memberOf;range=0-1499". A truncated memberOf would hide admin-group membership, so such
 * an entry is refused rather than decoded partially. */
static bool has_ranged_attribute(LDAP *ld, LDAPMessage *entry)
{
    BerElement *ber = NULL;
    bool ranged = false;
    for (char *a = ldap_first_attribute(ld, entry, &ber); a != NULL;
         a = ldap_next_attribute(ld, entry, ber)) {
        if (strstr(a, ";range=") != NULL || strstr(a, ";Range=") != NULL)
            ranged = true;
        ldap_memfree(a);
    }
    if (ber != NULL)
        ber_free(ber, 0);
    return ranged;
}

static struct account *decode_account(LDAP *ld, LDAPMessage *entry, struct decode_error *e)
{
    struct account *a = xcalloc(1, sizeof(*a));
    char *dn = ldap_get_dn(ld, entry);
    if (dn == NULL) {
        decode_fail(e, "dn", "missing");
        account_free(a);
        return NULL;
    }
    a->dn = xstrdup(dn);
    ldap_memfree(dn);

    if (has_ranged_attribute(ld, entry))
        decode_fail(e, "memberOf", "more values than one answer holds (;range=)");
    a->sam_account_name = get_string(ld, entry, "sAMAccountName", e);
    a->upn = get_string(ld, entry, "userPrincipalName", e);
    a->alias = get_string(ld, entry, "mailNickname", e);
    a->mail = get_string(ld, entry, "mail", e);
    a->proxy_addresses = get_strings(ld, entry, "proxyAddresses", &a->n_proxy_addresses, e);
    a->member_of = get_strings(ld, entry, "memberOf", &a->n_member_of, e);
    a->protocol_settings = get_strings(ld, entry, "protocolSettings", &a->n_protocol_settings, e);

    struct berval **vals = ldap_get_values_len(ld, entry, "objectGUID");
    char text[DIRECTORY_SID_TEXT_MAX];
    if (vals != NULL && vals[0] != NULL) {
        if (directory_format_guid((const unsigned char *)vals[0]->bv_val, vals[0]->bv_len, text,
                                  sizeof(text)))
            a->guid = xstrdup(text);
        else
            decode_fail(e, "objectGUID", "not 16 bytes");
    }
    ldap_value_free_len(vals);
    if (a->guid == NULL && (vals = ldap_get_values_len(ld, entry, "entryUUID")) != NULL) {
        if (vals[0] != NULL &&
            directory_normalize_uuid(vals[0]->bv_val, vals[0]->bv_len, text, sizeof(text)))
            a->guid = xstrdup(text);
        else
            decode_fail(e, "entryUUID", "not a UUID");
        ldap_value_free_len(vals);
    }

    if ((vals = ldap_get_values_len(ld, entry, "objectSid")) != NULL) {
        if (vals[0] != NULL && directory_parse_sid((const unsigned char *)vals[0]->bv_val,
                                                   vals[0]->bv_len, text, sizeof(text), &a->rid)) {
            a->sid = xstrdup(text);
            a->has_sid = true;
        } else {
            decode_fail(e, "objectSid", "not a SID");
        }
        ldap_value_free_len(vals);
    }

    bool present;
    int64_t v;
    get_flags(ld, entry, "userAccountControl", &a->user_account_control, &a->has_uac, e);
    get_flags(ld, entry, "msDS-User-Account-Control-Computed", &a->uac_computed,
              &a->has_uac_computed, e);
    get_int64(ld, entry, "accountExpires", &a->account_expires, &present, e);
    get_int64(ld, entry, "lockoutTime", &a->lockout_time, &present, e);
    get_int64(ld, entry, "pwdLastSet", &a->pwd_last_set, &a->has_pwd_last_set, e);
    if (get_int64(ld, entry, "adminCount", &v, &present, e)) {
        if (v < INT_MIN || v > INT_MAX)
            decode_fail(e, "adminCount", "out of range");
        else
            a->admin_count = (int)v;
    }
    if (get_int64(ld, entry, "primaryGroupID", &v, &present, e)) {
        if (v < 0 || v > UINT32_MAX)
            decode_fail(e, "primaryGroupID", "out of range");
        else
            a->primary_group_rid = (uint32_t)v;
    }

    size_t n_classes = 0;
    char **classes = get_strings(ld, entry, "objectClass", &n_classes, e);
    /* UF_WORKSTATION_TRUST_ACCOUNT 0x1000, UF_SERVER_TRUST_ACCOUNT 0x2000 (MS-ADTS 2.2.16). */
    size_t sam_len = a->sam_account_name ? strlen(a->sam_account_name) : 0;
    a->is_computer = has_value(classes, n_classes, "computer") ||
                     (sam_len > 0 && a->sam_account_name[sam_len - 1] == '$') ||
                     (a->has_uac && (a->user_account_control & 0x3000u) != 0);
    for (size_t i = 0; i < n_classes; i++)
        free(classes[i]);
    free(classes);

    if (e->attr != NULL) {
        account_free(a);
        return NULL;
    }
    return a;
}

/* ------------------------------------------------------------------------------------------ */
/* Account search                                                                             */

struct find_ctx {
    const char *filter;
    size_t max;
    struct account **accounts;
    size_t n_accounts;
    size_t n_matched;
    char *bad_dn; /* an entry that could not be decoded */
    struct decode_error error;
    char *diag;
};

static void find_reset(struct find_ctx *f)
{
    directory_free_accounts(f->accounts, f->n_accounts);
    f->accounts = NULL;
    f->n_accounts = 0;
    f->n_matched = 0;
    free(f->bad_dn);
    f->bad_dn = NULL;
    f->error.attr = f->error.why = NULL;
    ldap_memfree(f->diag);
    f->diag = NULL;
}

static int find_op(struct directory *d, LDAP *ld, void *arg)
{
    struct find_ctx *f = arg;
    find_reset(f);
    /* One more than wanted, so that an ambiguous name shows as n_matched > max. */
    int sizelimit = f->max >= INT_MAX ? LDAP_NO_LIMIT : (int)f->max + 1;
    struct timeval limit = seconds(d->operation_timeout);
    int msgid = -1;
    int rc = ldap_search_ext(ld, d->base_dn, LDAP_SCOPE_SUBTREE, f->filter, (char **)ACCOUNT_ATTRS,
                             0, NULL, NULL, &limit, sizelimit, &msgid);
    if (rc != LDAP_SUCCESS)
        return rc;
    LDAPMessage *res;
    rc = wait_result(d, ld, msgid, &res);
    if (rc != LDAP_SUCCESS)
        return rc;
    size_t capacity = f->max < 16 ? f->max : 16;
    if (capacity > 0)
        f->accounts = xcalloc(capacity, sizeof(struct account *));
    int code = LDAP_OTHER;
    for (LDAPMessage *m = ldap_first_message(ld, res); m != NULL; m = ldap_next_message(ld, m)) {
        switch (ldap_msgtype(m)) {
        case LDAP_RES_SEARCH_ENTRY: {
            f->n_matched++;
            if (f->n_accounts >= f->max || f->bad_dn != NULL)
                break;
            struct account *a = decode_account(ld, m, &f->error);
            if (a == NULL) {
                char *dn = ldap_get_dn(ld, m);
                f->bad_dn = xstrdup(dn ? dn : "");
                ldap_memfree(dn);
                break;
            }
            if (f->n_accounts == capacity) {
                capacity *= 2;
                f->accounts = xrealloc(f->accounts, capacity * sizeof(struct account *));
            }
            f->accounts[f->n_accounts++] = a;
            break;
        }
        case LDAP_RES_SEARCH_REFERENCE:
            /* AD's continuation references at the domain root (TECHNOTES §4); not followed. */
            break;
        case LDAP_RES_SEARCH_RESULT:
            if (ldap_parse_result(ld, m, &code, NULL, &f->diag, NULL, NULL, 0) != LDAP_SUCCESS)
                code = LDAP_DECODING_ERROR;
            break;
        default:
            break;
        }
    }
    ldap_msgfree(res);
    return code;
}

enum directory_status directory_find_accounts(struct directory *d, const char *filter,
                                              struct account ***accounts, size_t *n_accounts,
                                              size_t max, size_t *n_matched, const char **server)
{
    *accounts = NULL;
    *n_accounts = 0;
    if (n_matched != NULL)
        *n_matched = 0;
    if (server != NULL)
        *server = NULL;
    if (d == NULL || filter == NULL)
        return DIRECTORY_ERROR;

    struct find_ctx f = {.filter = filter, .max = max};
    int code;
    const char *uri = NULL;
    enum directory_status status = run_op(d, &d->lookup, find_op, &f, &code, &uri);
    if (server != NULL)
        *server = uri;
    if (status == DIRECTORY_OK) {
        /* A size limit reached with the entries in hand is how ambiguity shows. */
        if (code != LDAP_SUCCESS && code != LDAP_SIZELIMIT_EXCEEDED) {
            log_warning("directory: %s: search: %s (%d)%s%s", uri, ldap_err2string(code), code,
                        f.diag && *f.diag ? ": " : "", f.diag && *f.diag ? f.diag : "");
            log_debug("directory: %s: failed filter %s", uri, filter);
            status = DIRECTORY_ERROR;
        } else if (f.bad_dn != NULL) {
            log_warning("directory: %s: account %s refused: %s %s", uri, f.bad_dn, f.error.attr,
                        f.error.why);
            status = DIRECTORY_ERROR;
        }
    }
    if (status == DIRECTORY_OK && f.n_accounts > 0) {
        /* No match gives NULL, not an empty array a caller might not free. */
        *accounts = f.accounts;
        *n_accounts = f.n_accounts;
        f.accounts = NULL;
        f.n_accounts = 0;
    }
    if (status == DIRECTORY_OK && n_matched != NULL)
        *n_matched = f.n_matched;
    find_reset(&f);
    return status;
}

void directory_free_accounts(struct account **accounts, size_t n)
{
    if (accounts == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        account_free(accounts[i]);
    free(accounts);
}

/* ------------------------------------------------------------------------------------------ */
/* Password verification                                                                      */

struct verify_ctx {
    const char *dn;
    const char *password;
    size_t password_len;
    char *diag;
};

static int verify_op(struct directory *d, LDAP *ld, void *arg)
{
    struct verify_ctx *v = arg;
    ldap_memfree(v->diag);
    v->diag = NULL;
    return simple_bind(d, ld, v->dn, v->password, v->password_len, &v->diag);
}

enum directory_status directory_verify_password(struct directory *d, const char *dn,
                                                const char *password, size_t password_len,
                                                unsigned *ad_subcode, const char **server)
{
    if (ad_subcode != NULL)
        *ad_subcode = 0;
    if (server != NULL)
        *server = NULL;
    /* A DN with an empty password is an unauthenticated bind that "succeeds" as anonymous
     * (RFC 4513 §5.1.2; AD does that): never let it reach the server. */
    if (password == NULL || password_len == 0)
        return DIRECTORY_INVALID_CREDENTIALS;
    /* An empty DN with a password is an anonymous bind on some servers; there is no account
     * without a DN anyway. */
    if (d == NULL || dn == NULL || *dn == '\0')
        return DIRECTORY_ERROR;

    struct verify_ctx v = {.dn = dn, .password = password, .password_len = password_len};
    int code;
    const char *uri = NULL;
    enum directory_status status = run_op(d, &d->user_bind, verify_op, &v, &code, &uri);
    if (server != NULL)
        *server = uri;
    if (status == DIRECTORY_OK) {
        if (code == LDAP_SUCCESS) {
            status = DIRECTORY_OK;
        } else if (code == LDAP_INVALID_CREDENTIALS) {
            /* AD's reason (52e, 533, 775, ...) is only in the diagnostic text (TECHNOTES §5);
             * slapd's is empty. */
            if (ad_subcode != NULL)
                *ad_subcode = directory_ad_subcode(v.diag);
            status = DIRECTORY_INVALID_CREDENTIALS;
        } else {
            log_warning("directory: %s: bind as %s: %s (%d)%s%s", uri, dn, ldap_err2string(code),
                        code, v.diag && *v.diag ? ": " : "", v.diag && *v.diag ? v.diag : "");
            status = DIRECTORY_ERROR;
        }
    }
    ldap_memfree(v.diag);
    return status;
}

/* ------------------------------------------------------------------------------------------ */
/* Naming: rootDSE and the domain's crossRef                                                  */

struct naming_ctx {
    struct directory_naming out;
    char *default_nc;
    char *config_nc;
    char **naming_contexts;
    size_t n_naming_contexts;
};

static void naming_ctx_reset(struct naming_ctx *n)
{
    directory_naming_free(&n->out);
    free(n->default_nc);
    free(n->config_nc);
    for (size_t i = 0; i < n->n_naming_contexts; i++)
        free(n->naming_contexts[i]);
    free(n->naming_contexts);
    memset(n, 0, sizeof(*n));
}

/* A search that reads only the first entry; *entry_out (to ldap_msgfree via *res_out) is NULL
 * when there was none. Returns the LDAP result code. */
static int search_first(struct directory *d, LDAP *ld, const char *base, int scope,
                        const char *filter, const char *const *attrs, LDAPMessage **res_out,
                        LDAPMessage **entry_out)
{
    *res_out = NULL;
    *entry_out = NULL;
    struct timeval limit = seconds(d->operation_timeout);
    int msgid = -1;
    int rc = ldap_search_ext(ld, base, scope, filter, (char **)attrs, 0, NULL, NULL, &limit,
                             LDAP_NO_LIMIT, &msgid);
    if (rc != LDAP_SUCCESS)
        return rc;
    LDAPMessage *res;
    rc = wait_result(d, ld, msgid, &res);
    if (rc != LDAP_SUCCESS)
        return rc;
    int code = LDAP_OTHER;
    for (LDAPMessage *m = ldap_first_message(ld, res); m != NULL; m = ldap_next_message(ld, m)) {
        int type = ldap_msgtype(m);
        if (type == LDAP_RES_SEARCH_ENTRY && *entry_out == NULL)
            *entry_out = m;
        else if (type == LDAP_RES_SEARCH_RESULT &&
                 ldap_parse_result(ld, m, &code, NULL, NULL, NULL, NULL, 0) != LDAP_SUCCESS)
            code = LDAP_DECODING_ERROR;
    }
    *res_out = res;
    return code;
}

static char *normalize_dn(const char *dn)
{
    char *out = NULL;
    if (ldap_dn_normalize(dn, LDAP_DN_FORMAT_LDAPV3, &out, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS ||
        out == NULL)
        return xstrdup(dn);
    char *copy = xstrdup(out);
    ldap_memfree(out);
    return copy;
}

/* Is dn equal to suffix or below it? Compared ASCII-case-insensitively after normalising
 * the spacing, which is how AD's DNs differ in practice ("DC=corp, DC=example"). */
static bool dn_within(const char *dn, const char *suffix)
{
    char *a = normalize_dn(dn);
    char *b = normalize_dn(suffix);
    size_t la = strlen(a), lb = strlen(b);
    bool within = lb > 0 && la >= lb && ascii_casecmp(a + la - lb, b) == 0 &&
                  (la == lb || a[la - lb - 1] == ',');
    free(a);
    free(b);
    return within;
}

/* The naming context that holds base_dn: a crossRef's nCName names a whole domain, and
 * base_dn may well be an OU below it. Falls back to base_dn itself. */
static const char *domain_dn(struct directory *d, const struct naming_ctx *n)
{
    if (n->default_nc != NULL && dn_within(d->base_dn, n->default_nc))
        return n->default_nc;
    const char *best = NULL;
    for (size_t i = 0; i < n->n_naming_contexts; i++)
        if (dn_within(d->base_dn, n->naming_contexts[i]) &&
            (best == NULL || strlen(n->naming_contexts[i]) > strlen(best)))
            best = n->naming_contexts[i];
    return best != NULL ? best : d->base_dn;
}

static int naming_op(struct directory *d, LDAP *ld, void *arg)
{
    struct naming_ctx *n = arg;
    naming_ctx_reset(n);
    struct decode_error e = {0};
    LDAPMessage *res, *entry;

    static const char *const root_attrs[] = {"supportedCapabilities", "defaultNamingContext",
                                             "namingContexts", "configurationNamingContext", NULL};
    int rc = search_first(d, ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", root_attrs, &res, &entry);
    if (rc != LDAP_SUCCESS || entry == NULL) {
        ldap_msgfree(res);
        return rc != LDAP_SUCCESS ? rc : LDAP_NO_SUCH_OBJECT;
    }
    size_t n_caps = 0;
    char **caps = get_strings(ld, entry, "supportedCapabilities", &n_caps, &e);
    n->out.is_active_directory = has_value(caps, n_caps, AD_CAPABILITY_OID);
    for (size_t i = 0; i < n_caps; i++)
        free(caps[i]);
    free(caps);
    n->default_nc = get_string(ld, entry, "defaultNamingContext", &e);
    n->config_nc = get_string(ld, entry, "configurationNamingContext", &e);
    n->naming_contexts = get_strings(ld, entry, "namingContexts", &n->n_naming_contexts, &e);
    ldap_msgfree(res);

    /* MS-ADTS 6.1.1.2.1.1: the domain's crossRef lives one level under CN=Partitions of the
     * Configuration NC. The lab directory keeps that tree under its base DN. */
    const char *domain = domain_dn(d, n);
    size_t len = n->config_nc != NULL ? strlen(n->config_nc) : strlen(domain);
    char *partitions = xmalloc(len + 40);
    if (n->config_nc != NULL)
        snprintf(partitions, len + 40, "CN=Partitions,%s", n->config_nc);
    else
        snprintf(partitions, len + 40, "cn=Partitions,cn=Configuration,%s", domain);
    char *escaped = directory_escape_filter_value(domain, strlen(domain));
    size_t flen = strlen(escaped) + 64;
    char *filter = xmalloc(flen);
    snprintf(filter, flen, "(&(objectClass=crossRef)(nCName=%s))", escaped);
    free(escaped);

    static const char *const crossref_attrs[] = {"nETBIOSName", "dnsRoot", NULL};
    rc = search_first(d, ld, partitions, LDAP_SCOPE_ONELEVEL, filter, crossref_attrs, &res, &entry);
    free(filter);
    if (rc == LDAP_SUCCESS && entry != NULL) {
        n->out.netbios = get_string(ld, entry, "nETBIOSName", &e);
        n->out.dns_domain = get_string(ld, entry, "dnsRoot", &e);
    }
    ldap_msgfree(res);
    if (is_server_failure(rc)) {
        free(partitions);
        return rc;
    }
    if (rc != LDAP_SUCCESS)
        log_debug("directory: no crossRef for %s under %s: %s", domain, partitions,
                  ldap_err2string(rc));

    static const char *const suffix_attrs[] = {"uPNSuffixes", NULL};
    rc = search_first(d, ld, partitions, LDAP_SCOPE_BASE, "(objectClass=*)", suffix_attrs, &res,
                      &entry);
    if (rc == LDAP_SUCCESS && entry != NULL)
        n->out.upn_suffixes = get_strings(ld, entry, "uPNSuffixes", &n->out.n_upn_suffixes, &e);
    ldap_msgfree(res);
    free(partitions);
    if (is_server_failure(rc))
        return rc;
    /* Whatever the Partitions container does not say stays NULL: not every directory has one. */
    return LDAP_SUCCESS;
}

enum directory_status directory_read_naming(struct directory *d, struct directory_naming *out)
{
    memset(out, 0, sizeof(*out));
    if (d == NULL)
        return DIRECTORY_ERROR;
    struct naming_ctx n;
    memset(&n, 0, sizeof(n));
    int code;
    const char *uri = NULL;
    enum directory_status status = run_op(d, &d->lookup, naming_op, &n, &code, &uri);
    if (status == DIRECTORY_OK && code != LDAP_SUCCESS) {
        log_warning("directory: %s: rootDSE: %s (%d)", uri, ldap_err2string(code), code);
        status = DIRECTORY_ERROR;
    }
    if (status == DIRECTORY_OK) {
        *out = n.out;
        memset(&n.out, 0, sizeof(n.out));
    }
    naming_ctx_reset(&n);
    return status;
}

void directory_naming_free(struct directory_naming *n)
{
    if (n == NULL)
        return;
    free(n->netbios);
    free(n->dns_domain);
    for (size_t i = 0; i < n->n_upn_suffixes; i++)
        free(n->upn_suffixes[i]);
    free(n->upn_suffixes);
    memset(n, 0, sizeof(*n));
}

/* ------------------------------------------------------------------------------------------ */
/* Rule checks on one entry                                                                   */

struct match_ctx {
    const char *dn;
    const char *filter;
    bool matches;
    char *diag;
};

static int match_op(struct directory *d, LDAP *ld, void *arg)
{
    struct match_ctx *m = arg;
    m->matches = false;
    static const char *const no_attrs[] = {LDAP_NO_ATTRS, NULL};
    LDAPMessage *res, *entry;
    int rc = search_first(d, ld, m->dn, LDAP_SCOPE_BASE, m->filter, no_attrs, &res, &entry);
    m->matches = rc == LDAP_SUCCESS && entry != NULL;
    ldap_msgfree(res);
    return rc;
}

enum directory_status directory_entry_matches(struct directory *d, const char *dn,
                                              const char *filter, bool *matches,
                                              const char **server)
{
    *matches = false;
    if (server != NULL)
        *server = NULL;
    if (d == NULL || dn == NULL || filter == NULL)
        return DIRECTORY_ERROR;
    struct match_ctx m = {.dn = dn, .filter = filter};
    int code;
    const char *uri = NULL;
    enum directory_status status = run_op(d, &d->lookup, match_op, &m, &code, &uri);
    if (server != NULL)
        *server = uri;
    /* A base search of an entry that is gone is "no match", not a failure. */
    if (status == DIRECTORY_OK && code != LDAP_SUCCESS && code != LDAP_NO_SUCH_OBJECT) {
        log_warning("directory: %s: filter %s on %s: %s (%d)", uri, filter, dn,
                    ldap_err2string(code), code);
        status = DIRECTORY_ERROR;
    }
    if (status == DIRECTORY_OK)
        *matches = m.matches;
    return status;
}

/* One value of one attribute of an entry, read as the service account: for secrets the account
 * decoder never reads (an NT hash for local NTLMv2 verification). */
struct value_ctx {
    const char *dn;
    const char *attribute;
    unsigned char *out;
    size_t max, len;
    bool found;
};

static int value_op(struct directory *d, LDAP *ld, void *arg)
{
    struct value_ctx *v = arg;
    v->found = false;
    const char *attrs[] = {v->attribute, NULL};
    LDAPMessage *res, *entry;
    int rc = search_first(d, ld, v->dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, &res, &entry);
    struct berval **vals = entry ? ldap_get_values_len(ld, entry, v->attribute) : NULL;
    if (rc == LDAP_SUCCESS && vals && vals[0] && vals[0]->bv_len <= v->max) {
        memcpy(v->out, vals[0]->bv_val, vals[0]->bv_len);
        v->len = vals[0]->bv_len;
        v->found = true;
    }
    if (vals && vals[0])
        wipe(vals[0]->bv_val, vals[0]->bv_len);
    ldap_value_free_len(vals);
    ldap_msgfree(res);
    return rc;
}

enum directory_status directory_read_value(struct directory *d, const char *dn,
                                           const char *attribute, unsigned char *out, size_t max,
                                           size_t *len)
{
    *len = 0;
    if (d == NULL || dn == NULL || attribute == NULL)
        return DIRECTORY_ERROR;
    struct value_ctx v = {.dn = dn, .attribute = attribute, .out = out, .max = max};
    int code;
    const char *uri = NULL;
    enum directory_status status = run_op(d, &d->lookup, value_op, &v, &code, &uri);
    if (status == DIRECTORY_OK && code != LDAP_SUCCESS && code != LDAP_NO_SUCH_OBJECT) {
        log_warning("directory: %s: reading %s of %s: %s (%d)", uri, attribute, dn,
                    ldap_err2string(code), code);
        status = DIRECTORY_ERROR;
    }
    if (status == DIRECTORY_OK && !v.found)
        status = DIRECTORY_NOT_FOUND;
    *len = v.len;
    return status;
}

/* ------------------------------------------------------------------------------------------ */
/* Paged scans (RFC 2696): AD answers at most MaxPageSize (1000) entries per search otherwise */

struct scan_ctx {
    const char *filter;
    unsigned page_size;
    directory_scan_fn fn;
    void *arg;
    size_t delivered;
    bool stopped;
    char *bad_dn;
    struct decode_error error;
};

/* Tells the server to drop its paging state: the same search with page size 0 and the cookie. */
static void end_paged_search(struct directory *d, LDAP *ld, const char *filter,
                             struct berval *cookie)
{
    LDAPControl *end = NULL;
    if (ldap_create_page_control(ld, 0, cookie, 1, &end) != LDAP_SUCCESS)
        return;
    LDAPControl *server_controls[] = {end, NULL};
    LDAPMessage *res = NULL;
    struct timeval limit = seconds(d->operation_timeout);
    if (ldap_search_ext_s(ld, d->base_dn, LDAP_SCOPE_SUBTREE, filter, (char **)ACCOUNT_ATTRS, 0,
                          server_controls, NULL, &limit, LDAP_NO_LIMIT, &res) != LDAP_SUCCESS)
        log_debug("directory: ending a paged search failed");
    ldap_msgfree(res);
    ldap_control_free(end);
}

/* One search, page after page, on one connection: the cookie belongs to the server that gave
 * it. A server failure after entries were handed out cannot be repeated elsewhere without
 * handing them out twice, so it ends the scan. */
static int scan_op(struct directory *d, LDAP *ld, void *arg)
{
    struct scan_ctx *s = arg;
    if (s->delivered > 0)
        return LDAP_OTHER;
    struct berval cookie = {0, NULL};
    int code = LDAP_SUCCESS;
    for (;;) {
        LDAPControl *page = NULL;
        int rc = ldap_create_page_control(ld, s->page_size, &cookie, 1, &page);
        ber_memfree(cookie.bv_val);
        cookie.bv_val = NULL;
        cookie.bv_len = 0;
        if (rc != LDAP_SUCCESS)
            return rc;
        LDAPControl *server_controls[] = {page, NULL};
        struct timeval limit = seconds(d->operation_timeout);
        int msgid = -1;
        rc = ldap_search_ext(ld, d->base_dn, LDAP_SCOPE_SUBTREE, s->filter, (char **)ACCOUNT_ATTRS,
                             0, server_controls, NULL, &limit, LDAP_NO_LIMIT, &msgid);
        ldap_control_free(page);
        if (rc != LDAP_SUCCESS)
            return rc;
        LDAPMessage *res;
        rc = wait_result(d, ld, msgid, &res);
        if (rc != LDAP_SUCCESS)
            return rc;
        code = LDAP_OTHER;
        for (LDAPMessage *m = ldap_first_message(ld, res); m != NULL;
             m = ldap_next_message(ld, m)) {
            int type = ldap_msgtype(m);
            if (type == LDAP_RES_SEARCH_ENTRY && !s->stopped && s->bad_dn == NULL) {
                struct account *a = decode_account(ld, m, &s->error);
                if (a == NULL) {
                    char *dn = ldap_get_dn(ld, m);
                    s->bad_dn = xstrdup(dn ? dn : "");
                    ldap_memfree(dn);
                    continue;
                }
                s->delivered++;
                if (!s->fn(a, s->arg))
                    s->stopped = true;
            } else if (type == LDAP_RES_SEARCH_RESULT) {
                LDAPControl **controls = NULL;
                if (ldap_parse_result(ld, m, &code, NULL, NULL, NULL, &controls, 0) !=
                    LDAP_SUCCESS) {
                    code = LDAP_DECODING_ERROR;
                } else {
                    LDAPControl *c = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, controls, NULL);
                    ber_int_t estimate;
                    if (c != NULL &&
                        ldap_parse_pageresponse_control(ld, c, &estimate, &cookie) != LDAP_SUCCESS)
                        code = LDAP_DECODING_ERROR;
                }
                ldap_controls_free(controls);
            }
        }
        ldap_msgfree(res);
        bool more = cookie.bv_len > 0;
        if (code != LDAP_SUCCESS || s->stopped || s->bad_dn != NULL || !more) {
            if (more && code == LDAP_SUCCESS)
                end_paged_search(d, ld, s->filter, &cookie);
            ber_memfree(cookie.bv_val);
            return code;
        }
    }
}

enum directory_status directory_scan_accounts(struct directory *d, const char *filter,
                                              unsigned page_size, directory_scan_fn fn, void *arg,
                                              size_t *n_scanned, const char **server)
{
    if (n_scanned != NULL)
        *n_scanned = 0;
    if (server != NULL)
        *server = NULL;
    if (d == NULL || filter == NULL || fn == NULL)
        return DIRECTORY_ERROR;
    struct scan_ctx s = {
        .filter = filter, .page_size = page_size ? page_size : 500, .fn = fn, .arg = arg};
    int code;
    const char *uri = NULL;
    enum directory_status status = run_op(d, &d->lookup, scan_op, &s, &code, &uri);
    if (server != NULL)
        *server = uri;
    if (status == DIRECTORY_OK && s.bad_dn != NULL) {
        log_warning("directory: %s: account %s refused: %s %s", uri, s.bad_dn, s.error.attr,
                    s.error.why);
        status = DIRECTORY_ERROR;
    } else if (status == DIRECTORY_OK && code != LDAP_SUCCESS) {
        log_warning("directory: %s: paged search: %s (%d)", uri, ldap_err2string(code), code);
        status = DIRECTORY_ERROR;
    } else if (status != DIRECTORY_OK && s.delivered > 0) {
        status = DIRECTORY_ERROR;
    }
    free(s.bad_dn);
    if (n_scanned != NULL)
        *n_scanned = s.delivered;
    return status;
}
