/* SASL server exchanges for both protocols: PLAIN and LOGIN parsed by libgsasl, GSSAPI with the
 * Kerberos acceptor, NTLM through an ntlm_auth helper; what they yield goes to the pipeline. */
#include "postern/sasl.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gsasl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "postern/conn.h"
#include "postern/directory.h"
#include "postern/log.h"
#include "postern/sso.h"
#include "postern/util.h"

/* One Gsasl handle per process, read-only after init; one Gsasl_session per exchange and
 * used by one thread at a time (TECHNOTES §1). */
static Gsasl *gsasl;

enum exchange_kind { KIND_GSASL, KIND_GSSAPI, KIND_NTLM };

struct sasl_exchange {
    /* PLAIN, LOGIN */
    Gsasl_session *session;
    char *authid, *authzid, *password;
    size_t password_len;
    /* GSSAPI, NTLM: the context whose keys or helpers the exchange uses (a reference) */
    struct auth_context *ctx;
    struct krb_exchange *krb;
    struct helper *helper;       /* NTLM: leased from NEGOTIATE on (it keeps the challenge) */
    struct conn_watch *deadline; /* NTLM: HelperTimeout for the client's AUTHENTICATE */
    /* local NTLMv2 (NTHashAttribute): our challenge and the messages the MIC covers */
    unsigned char *negotiate, *challenge_msg;
    size_t negotiate_len, challenge_len;
    unsigned char server_challenge[8];
    bool local;
    unsigned long long conn_id;
    enum exchange_kind kind;
    int deadline_fd;
    bool is_login;          /* the LOGIN mechanism */
    bool started;           /* the first step has run */
    bool captured;          /* the validation callback has the credentials */
    bool have_authenticate; /* NTLM: the CHALLENGE went out, the AUTHENTICATE comes next */
    bool in_flight;         /* NTLM: the helper is asked on a worker; lines wait */
    bool orphaned;          /* freed while in flight: the worker's answer frees it */
};

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/* GSASL_VALIDATE_SIMPLE (PLAIN, LOGIN): keep the credentials and let the exchange complete;
 * the pipeline, not libgsasl, decides. */
static int callback(Gsasl *ctx, Gsasl_session *s, Gsasl_property prop)
{
    (void)ctx;
    if (prop != GSASL_VALIDATE_SIMPLE)
        return GSASL_NO_CALLBACK;
    struct sasl_exchange *x = gsasl_session_hook_get(s);
    const char *authid = gsasl_property_fast(s, GSASL_AUTHID);
    const char *password = gsasl_property_fast(s, GSASL_PASSWORD);
    if (x == NULL || authid == NULL || password == NULL)
        return GSASL_AUTHENTICATION_ERROR;
    x->authid = xstrdup(authid);
    x->authzid = dup_or_null(gsasl_property_fast(s, GSASL_AUTHZID));
    x->password_len = strlen(password);
    x->password = xstrndup(password, x->password_len);
    x->captured = true;
    return GSASL_OK;
}

bool sasl_global_init(char *err, size_t errlen)
{
    int rc = gsasl_init(&gsasl);
    if (rc != GSASL_OK) {
        snprintf(err, errlen, "libgsasl: %s", gsasl_strerror(rc));
        return false;
    }
    gsasl_callback_set(gsasl, callback);
    return true;
}

void sasl_global_deinit(void)
{
    if (gsasl)
        gsasl_done(gsasl);
    gsasl = NULL;
}

struct sasl_exchange *sasl_start(const char *mechanism)
{
    bool gssapi = ascii_casecmp(mechanism, "GSSAPI") == 0;
    if (gssapi || ascii_casecmp(mechanism, "NTLM") == 0) {
        struct auth_context *ctx = auth_context_current();
        if (gssapi ? auth_context_krb(ctx) == NULL : auth_context_ntlm(ctx) == NULL) {
            auth_context_unref(ctx);
            return NULL;
        }
        struct sasl_exchange *x = xcalloc(1, sizeof(*x));
        x->kind = gssapi ? KIND_GSSAPI : KIND_NTLM;
        x->ctx = ctx;
        x->deadline_fd = -1;
        return x;
    }
    struct sasl_exchange *x = xcalloc(1, sizeof(*x));
    x->deadline_fd = -1;
    if (gsasl == NULL || gsasl_server_start(gsasl, mechanism, &x->session) != GSASL_OK) {
        free(x);
        return NULL;
    }
    gsasl_session_hook_set(x->session, x);
    x->is_login = strcmp(mechanism, "LOGIN") == 0;
    return x;
}

enum sasl_step_result sasl_step(struct sasl_exchange *x, const char *response, char **challenge)
{
    if (x->kind != KIND_GSASL)
        return SASL_STEP_INVALID; /* those need the connection: sasl_continue() */
    char *out = NULL; /* set only on OK/NEEDS_MORE (TECHNOTES §1: never free a stale one) */
    if (!x->started && x->is_login && response && *response) {
        /* libgsasl's LOGIN ignores an initial response and asks "User Name" first; clients
         * (curl) send the user name as the initial response: answer that prompt with it. */
        int rc0 = gsasl_step64(x->session, NULL, &out);
        if (out)
            gsasl_free(out);
        out = NULL;
        if (rc0 != GSASL_NEEDS_MORE)
            return SASL_STEP_INVALID;
    }
    x->started = true;
    int rc = gsasl_step64(x->session, response, &out);
    if (rc == GSASL_NEEDS_MORE) {
        *challenge = xstrdup(out ? out : "");
        gsasl_free(out);
        return SASL_STEP_CHALLENGE;
    }
    if (out)
        gsasl_free(out);
    return rc == GSASL_OK && x->captured ? SASL_STEP_DONE : SASL_STEP_INVALID;
}

const char *sasl_authid(const struct sasl_exchange *x)
{
    return x->authid;
}

const char *sasl_authzid(const struct sasl_exchange *x)
{
    return x->authzid;
}

const char *sasl_password(const struct sasl_exchange *x, size_t *len)
{
    *len = x->password_len;
    return x->password;
}

void sasl_free(struct sasl_exchange *x)
{
    if (x == NULL)
        return;
    if (x->in_flight) {
        x->orphaned = true; /* a worker still uses it */
        return;
    }
    if (x->password)
        wipe(x->password, x->password_len);
    free(x->password);
    free(x->authid);
    free(x->authzid);
    if (x->session)
        gsasl_finish(x->session);
    krb_exchange_free(x->krb);
    free(x->negotiate);
    free(x->challenge_msg);
    conn_watch_free(x->deadline);
    if (x->deadline_fd >= 0)
        close(x->deadline_fd);
    /* a helper that sent a CHALLENGE starts afresh with the next YR */
    helper_release(auth_context_ntlm(x->ctx), x->helper, true);
    auth_context_unref(x->ctx);
    free(x);
}

/* ---- GSSAPI and NTLM ------------------------------------------------------------------------ */

/* Ends the exchange the session holds in *slot and refuses the attempt (audited, answered
 * after FailureDelay like every refusal). */
static void refuse(struct conn *c, void *session, struct sasl_exchange **slot,
                   const struct auth_mech *m, const char *login, enum auth_reason reason,
                   auth_done_fn done)
{
    struct auth_attempt *a = auth_attempt_new(c, m, NULL, login ? login : "", NULL, 0);
    struct sasl_exchange *x = *slot;
    *slot = NULL;
    sasl_free(x);
    auth_refuse(c, session, a, reason, done);
}

static void send_challenge(struct conn *c, const unsigned char *data, size_t len)
{
    char *b64 = sasl_b64_encode(data, len);
    conn_printf(c, "+ %s\r\n", b64);
    free(b64);
}

static bool gssapi_continue(struct conn *c, void *session, struct sasl_exchange **slot,
                            const struct auth_mech *m, const char *response, auth_done_fn done)
{
    struct sasl_exchange *x = *slot;
    if (x->krb == NULL) {
        x->krb = krb_exchange_new(auth_context_krb(x->ctx), conn_listener(c)->protocol,
                                  &conn_config(c)->kerberos);
        unsigned char *end_point;
        size_t len;
        if (conn_config(c)->kerberos.extended_protection != EXTENDED_PROTECTION_NONE &&
            conn_tls_channel_binding(c, false, &end_point, &len)) {
            krb_exchange_bind(x->krb, end_point, len);
            free(end_point);
        }
    }
    if (response == NULL) { /* no initial response: the client's first token comes next */
        conn_printf(c, "+ \r\n");
        return true;
    }
    unsigned char *in, *out;
    size_t inlen, outlen;
    if (!sasl_b64_decode(response, strlen(response), &in, &inlen)) {
        refuse(c, session, slot, m, "", AUTH_REASON_INVALID_INPUT, done);
        return false;
    }
    enum auth_reason reason;
    char detail[512];
    enum krb_step st =
        krb_exchange_step(x->krb, in, inlen, &out, &outlen, &reason, detail, sizeof(detail));
    free(in);
    if (st == KRB_STEP_CHALLENGE) {
        send_challenge(c, out, outlen);
        free(out);
        return true;
    }
    const char *principal = krb_exchange_principal(x->krb);
    if (st == KRB_STEP_FAILED) {
        log_info("conn %llu: GSSAPI refused (%s)%s%s: %s", (unsigned long long)conn_id(c),
                 auth_reason_code(reason), principal ? " for " : "", principal ? principal : "",
                 detail);
        char *login = principal ? xstrdup(principal) : NULL;
        refuse(c, session, slot, m, login, reason, done);
        free(login);
        return false;
    }
    struct auth_attempt *a = auth_attempt_new(c, m, NULL, principal, NULL, 0);
    a->authenticated = true;
    const char *authzid = krb_exchange_authzid(x->krb);
    a->authzid = authzid && *authzid ? xstrdup(authzid) : NULL;
    *slot = NULL;
    sasl_free(x);
    auth_start(c, session, a, done);
    return false;
}

/* NEGOTIATE -> the helper's CHALLENGE, on a worker (a helper may be started or slow). */
struct ntlm_job {
    struct sasl_exchange *x;
    struct sasl_exchange **slot;
    struct conn *conn;
    void *session;
    const struct auth_mech *mech;
    auth_done_fn done;
    char *request;
    char *challenge;               /* base64 from "TT", or NULL */
    unsigned wait_ms, max_waiters; /* for a helper, when all are leased */
};

static void ntlm_negotiate_work(void *arg)
{
    struct ntlm_job *j = arg;
    struct sasl_exchange *x = j->x;
    struct helper_pool *pool = auth_context_ntlm(x->ctx);
    /* a helper that died while idle and was not noticed at the lease is noticed here: one
     * more try with another */
    for (int tries = 0; tries < 2 && j->challenge == NULL; tries++) {
        if (x->helper == NULL &&
            (x->helper = helper_lease(pool, j->wait_ms, j->max_waiters)) == NULL)
            return;
        char *reply;
        if (!helper_ask(pool, x->helper, j->request, &reply)) {
            helper_release(pool, x->helper, false);
            x->helper = NULL;
            continue;
        }
        const char *arg2;
        enum ntlm_reply_kind kind = ntlm_parse_reply(reply, &arg2);
        if (kind == NTLM_REPLY_TT) {
            j->challenge = xstrdup(arg2);
        } else {
            log_warning("ntlm: helper pid %ld answered a NEGOTIATE with \"%.80s\"",
                        (long)helper_pid(x->helper), reply);
            helper_release(pool, x->helper, false);
            x->helper = NULL;
            tries = 2;
        }
        free(reply);
    }
}

/* A client that never answers the CHALLENGE must not keep its helper (there are only
 * Helpers of them) for the whole PreAuthenticatedConnectionTimeout: after HelperTimeout the
 * helper goes back, and a late AUTHENTICATE is refused. The clock is a timerfd under a
 * conn_watch, which the exchange cancels when it ends (a conn_defer() timer could not be
 * cancelled, and would keep the connection allocated). */
static void ntlm_deadline_passed(void *arg)
{
    struct sasl_exchange *x = arg;
    if (x->helper && !x->in_flight) {
        log_info("conn %llu: NTLM: no AUTHENTICATE in time; its helper is free again",
                 (unsigned long long)x->conn_id);
        helper_release(auth_context_ntlm(x->ctx), x->helper, true);
        x->helper = NULL;
    }
}

static void ntlm_deadline_start(struct sasl_exchange *x, struct conn *c, unsigned seconds)
{
    x->deadline_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec when = {.it_value = {.tv_sec = (time_t)seconds}};
    if (x->deadline_fd < 0 || timerfd_settime(x->deadline_fd, 0, &when, NULL) < 0 ||
        (x->deadline = conn_watch_new(c, x->deadline_fd, ntlm_deadline_passed, x)) == NULL) {
        log_warning("conn %llu: NTLM: no timer for the exchange: %s",
                    (unsigned long long)conn_id(c), strerror(errno));
        if (x->deadline_fd >= 0)
            close(x->deadline_fd);
        x->deadline_fd = -1;
        return;
    }
    x->conn_id = conn_id(c);
}

static void ntlm_negotiate_done(void *arg)
{
    struct ntlm_job *j = arg;
    struct sasl_exchange *x = j->x;
    x->in_flight = false;
    if (x->orphaned) {
        sasl_free(x);
    } else if (!conn_is_closing(j->conn)) {
        if (j->challenge) {
            x->have_authenticate = true;
            conn_printf(j->conn, "+ %s\r\n", j->challenge);
            ntlm_deadline_start(x, j->conn, conn_config(j->conn)->ntlm.helper_timeout);
            conn_pause_input(j->conn, false); /* lines that came early are taken now */
        } else {
            conn_pause_input(j->conn, true);
            refuse(j->conn, j->session, j->slot, j->mech, "", AUTH_REASON_NTLM_HELPER_UNAVAILABLE,
                   j->done);
        }
    }
    free(j->request);
    free(j->challenge);
    free(j);
}

/* The AUTHENTICATE goes to the DC only after resolution and policy (auth_verifier). */
struct ntlm_verifier {
    struct auth_verifier base;
    struct auth_context *ctx;
    struct helper *helper;
    char *request; /* "KK <base64>" */
};

static enum auth_reason ntlm_verify(struct auth_verifier *v, const struct account *account,
                                    const char *netbios, unsigned *code)
{
    struct ntlm_verifier *nv = (struct ntlm_verifier *)v;
    struct helper_pool *pool = auth_context_ntlm(nv->ctx);
    char *reply;
    *code = 0;
    if (!helper_ask(pool, nv->helper, nv->request, &reply)) {
        helper_release(pool, nv->helper, false);
        nv->helper = NULL;
        return AUTH_REASON_NTLM_HELPER_UNAVAILABLE;
    }
    const char *arg;
    enum ntlm_reply_kind kind = ntlm_parse_reply(reply, &arg);
    enum auth_reason r = AUTH_REASON_NTLM_HELPER_UNAVAILABLE;
    if (kind == NTLM_REPLY_AF) {
        /* "DOMAIN\name" as winbind names the account that proved itself: the one resolved */
        const char *slash = strrchr(arg, '\\');
        const char *name = slash ? slash + 1 : arg;
        bool same_domain = slash == NULL || netbios == NULL ||
                           ((size_t)(slash - arg) == strlen(netbios) &&
                            ascii_ncasecmp(arg, netbios, strlen(netbios)) == 0);
        r = same_domain && account->sam_account_name &&
                    ascii_casecmp(name, account->sam_account_name) == 0
                ? AUTH_REASON_NONE
                : AUTH_REASON_NTLM_IDENTITY_MISMATCH;
        if (r != AUTH_REASON_NONE)
            log_warning("ntlm: the DC verified %s for %s", arg, account->dn);
    } else if (kind == NTLM_REPLY_NA) {
        r = ntlm_status_reason(arg, code);
    } else {
        log_warning("ntlm: helper pid %ld answered an AUTHENTICATE with \"%.80s\"",
                    (long)helper_pid(nv->helper), reply);
    }
    free(reply);
    helper_release(pool, nv->helper, kind == NTLM_REPLY_AF || kind == NTLM_REPLY_NA);
    nv->helper = NULL;
    return r;
}

static void ntlm_verifier_free(struct auth_verifier *v)
{
    struct ntlm_verifier *nv = (struct ntlm_verifier *)v;
    helper_release(auth_context_ntlm(nv->ctx), nv->helper, true);
    wipe(nv->request, strlen(nv->request));
    free(nv->request);
    auth_context_unref(nv->ctx);
    free(nv);
}

/* Local NTLMv2: the AUTHENTICATE checked on a worker from the account's NT hash, read then
 * (as the service account) and wiped after use. */
struct local_verifier {
    struct auth_verifier base;
    struct auth_context *ctx;
    char *attribute;
    unsigned char *negotiate, *challenge, *authenticate;
    size_t negotiate_len, challenge_len, authenticate_len;
    unsigned char server_challenge[8];
};

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static enum auth_reason local_verify(struct auth_verifier *v, const struct account *account,
                                     const char *netbios, unsigned *code)
{
    (void)netbios;
    (void)code;
    struct local_verifier *lv = (struct local_verifier *)v;
    unsigned char raw[64], hash[16];
    size_t len = 0;
    enum directory_status st = directory_read_value(auth_context_directory(lv->ctx), account->dn,
                                                    lv->attribute, raw, sizeof(raw), &len);
    if (st == DIRECTORY_UNAVAILABLE)
        return AUTH_REASON_DIRECTORY_UNAVAILABLE;
    if (st == DIRECTORY_ERROR)
        return AUTH_REASON_DIRECTORY_ERROR;
    bool ok = st == DIRECTORY_OK && (len == 16 || len == 32);
    if (ok && len == 16) {
        memcpy(hash, raw, 16); /* binary */
    } else {
        for (size_t i = 0; ok && i < 16; i++) { /* sambaNTPassword: 32 hex digits */
            int hi = hex_value(raw[2 * i]), lo = hex_value(raw[2 * i + 1]);
            ok = hi >= 0 && lo >= 0;
            hash[i] = ok ? (unsigned char)((unsigned)hi << 4 | (unsigned)lo) : 0;
        }
    }
    wipe(raw, sizeof(raw));
    if (!ok) {
        wipe(hash, sizeof(hash));
        return AUTH_REASON_NTLM_NO_HASH;
    }
    enum ntlm_verdict verdict =
        ntlm_verify_v2(hash, lv->server_challenge, lv->negotiate, lv->negotiate_len, lv->challenge,
                       lv->challenge_len, lv->authenticate, lv->authenticate_len);
    wipe(hash, sizeof(hash));
    switch (verdict) {
    case NTLM_VERDICT_OK:
        return AUTH_REASON_NONE;
    case NTLM_VERDICT_WRONG_PASSWORD:
        return AUTH_REASON_INVALID_CREDENTIALS;
    case NTLM_VERDICT_BAD_MIC:
        return AUTH_REASON_NTLM_MIC_MISMATCH;
    case NTLM_VERDICT_MALFORMED:
        break;
    }
    return AUTH_REASON_INVALID_INPUT;
}

static void local_verifier_free(struct auth_verifier *v)
{
    struct local_verifier *lv = (struct local_verifier *)v;
    auth_context_unref(lv->ctx);
    free(lv->attribute);
    free(lv->negotiate);
    free(lv->challenge);
    free(lv->authenticate);
    free(lv);
}

static unsigned char *copy_bytes(const unsigned char *p, size_t len)
{
    unsigned char *c = xmalloc(len ? len : 1);
    memcpy(c, p, len);
    return c;
}

/* Our own CHALLENGE: a fresh random server challenge, the domain's names as target info. */
static bool local_challenge(struct sasl_exchange *x, struct conn *c, const unsigned char *neg,
                            size_t neg_len)
{
    const struct config *cfg = conn_config(c);
    char host[256] = "postern", nb_host[16];
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "postern");
    size_t i = 0;
    for (; host[i] && host[i] != '.' && i < sizeof(nb_host) - 1; i++)
        nb_host[i] = (char)(host[i] >= 'a' && host[i] <= 'z' ? host[i] - 32 : host[i]);
    nb_host[i] = '\0';
    const char *domain = cfg->directory.domain ? cfg->directory.domain : host;
    const char *netbios = cfg->directory.netbios ? cfg->directory.netbios : nb_host;
    if (gnutls_rnd(GNUTLS_RND_NONCE, x->server_challenge, sizeof(x->server_challenge)) < 0)
        return false;
    unsigned char out[NTLM_CHALLENGE_MAX];
    uint64_t filetime = ((uint64_t)time(NULL) + 11644473600ULL) * 10000000ULL;
    size_t len = ntlm_make_challenge(x->server_challenge, netbios, nb_host, domain, host, filetime,
                                     out, sizeof(out));
    if (len == 0)
        return false;
    x->negotiate = copy_bytes(neg, neg_len);
    x->negotiate_len = neg_len;
    x->challenge_msg = copy_bytes(out, len);
    x->challenge_len = len;
    x->local = true;
    x->have_authenticate = true;
    send_challenge(c, out, len);
    return true;
}

/* The AUTHENTICATE is in: the exchange ends and one attempt runs the pipeline with the
 * verifier that checks the response (the DC through ntlm_auth, or the NT hash here). */
static bool ntlm_start(struct conn *c, void *session, struct sasl_exchange **slot,
                       const struct auth_mech *m, char *identity, struct auth_verifier *verifier,
                       auth_done_fn done)
{
    struct auth_attempt *a = auth_attempt_new(c, m, NULL, identity, NULL, 0);
    free(identity);
    a->verifier = verifier;
    sasl_free(*slot);
    *slot = NULL;
    auth_start(c, session, a, done);
    return false;
}

static bool ntlm_continue(struct conn *c, void *session, struct sasl_exchange **slot,
                          const struct auth_mech *m, const char *response, auth_done_fn done)
{
    struct sasl_exchange *x = *slot;
    if (response == NULL) { /* MS-OXIMAP4 2.2.1: "+ ", then the NEGOTIATE */
        conn_printf(c, "+ \r\n");
        return true;
    }
    unsigned char *msg;
    size_t len;
    if (!sasl_b64_decode(response, strlen(response), &msg, &len)) {
        refuse(c, session, slot, m, "", AUTH_REASON_INVALID_INPUT, done);
        return false;
    }
    if (!x->have_authenticate) {
        bool ok = ntlm_parse_negotiate(msg, len);
        if (ok && conn_config(c)->ntlm.nt_hash_attribute != NULL) {
            ok = local_challenge(x, c, msg, len);
            free(msg);
            if (ok)
                return true;
            refuse(c, session, slot, m, "", AUTH_REASON_NTLM_HELPER_UNAVAILABLE, done);
            return false;
        }
        free(msg);
        if (!ok) {
            refuse(c, session, slot, m, "", AUTH_REASON_INVALID_INPUT, done);
            return false;
        }
        struct ntlm_job *j = xcalloc(1, sizeof(*j));
        *j = (struct ntlm_job){
            .x = x, .slot = slot, .conn = c, .session = session, .mech = m, .done = done};
        size_t n = strlen(response) + 4;
        j->request = xmalloc(n);
        snprintf(j->request, n, "YR %s", response);
        /* at most half the workers wait for a helper; the others run the AUTHENTICATE steps
         * that give helpers back */
        j->wait_ms = conn_config(c)->ntlm.helper_timeout * 1000u;
        j->max_waiters = conn_config(c)->worker_threads / 2;
        x->in_flight = true;
        if (!conn_submit(c, ntlm_negotiate_work, ntlm_negotiate_done, j)) {
            x->in_flight = false;
            free(j->request);
            free(j);
            refuse(c, session, slot, m, "", AUTH_REASON_SERVER_BUSY, done);
            return false;
        }
        return true; /* the CHALLENGE is sent when the helper has answered */
    }
    struct ntlm_authenticate am;
    bool ok = ntlm_parse_authenticate(msg, len, &am);
    if (!ok) {
        free(msg);
        refuse(c, session, slot, m, "", AUTH_REASON_INVALID_INPUT, done);
        return false;
    }
    unsigned char *authenticate = msg; /* local NTLMv2 checks it whole */
    size_t authenticate_len = len;
    if (!x->local && x->helper == NULL) { /* the deadline took it: the challenge is gone */
        free(authenticate);
        ntlm_authenticate_clear(&am);
        refuse(c, session, slot, m, "", AUTH_REASON_NTLM_HELPER_UNAVAILABLE, done);
        return false;
    }
    size_t n = strlen(am.domain) + strlen(am.user) + 2;
    char *identity = xmalloc(n);
    snprintf(identity, n, "%s%s%s", am.domain, am.domain[0] ? "\\" : "", am.user);
    enum auth_reason early = AUTH_REASON_NONE;
    if (am.user[0] == '\0')
        early = AUTH_REASON_NTLM_ANONYMOUS; /* no anonymous login of any kind (POLICY.md §3) */
    else if (am.nt_len <= 24)
        early = AUTH_REASON_NTLM_V1_REFUSED; /* LM or NTLMv1: 24 bytes; NTLMv2 is longer */
    ntlm_authenticate_clear(&am);
    if (early != AUTH_REASON_NONE) {
        free(authenticate);
        refuse(c, session, slot, m, identity, early, done);
        free(identity);
        return false;
    }
    if (x->local) {
        struct local_verifier *lv = xcalloc(1, sizeof(*lv));
        *lv = (struct local_verifier){.base = {.verify = local_verify, .free = local_verifier_free},
                                      .ctx = auth_context_ref(x->ctx),
                                      .attribute = xstrdup(conn_config(c)->ntlm.nt_hash_attribute),
                                      .negotiate = x->negotiate,
                                      .negotiate_len = x->negotiate_len,
                                      .challenge = x->challenge_msg,
                                      .challenge_len = x->challenge_len,
                                      .authenticate = authenticate,
                                      .authenticate_len = authenticate_len};
        memcpy(lv->server_challenge, x->server_challenge, sizeof(lv->server_challenge));
        x->negotiate = x->challenge_msg = NULL;
        return ntlm_start(c, session, slot, m, identity, &lv->base, done);
    }
    free(authenticate);
    struct ntlm_verifier *v = xcalloc(1, sizeof(*v));
    v->base.verify = ntlm_verify;
    v->base.free = ntlm_verifier_free;
    v->ctx = auth_context_ref(x->ctx);
    v->helper = x->helper;
    x->helper = NULL;
    n = strlen(response) + 4;
    v->request = xmalloc(n);
    snprintf(v->request, n, "KK %s", response);
    return ntlm_start(c, session, slot, m, identity, &v->base, done);
}

bool sasl_continue(struct conn *c, void *session, struct sasl_exchange **x,
                   const struct auth_mech *m, const char *response, auth_done_fn done)
{
    if ((*x)->kind == KIND_GSSAPI)
        return gssapi_continue(c, session, x, m, response, done);
    if ((*x)->kind == KIND_NTLM)
        return ntlm_continue(c, session, x, m, response, done);
    char *challenge = NULL;
    enum sasl_step_result st = sasl_step(*x, response, &challenge);
    if (st == SASL_STEP_CHALLENGE) {
        /* "+ " with the space even when empty (RFC 3501 §7.5, RFC 5034 §4) */
        conn_printf(c, "+ %s\r\n", challenge);
        free(challenge);
        return true;
    }
    struct sasl_exchange *done_x = *x;
    *x = NULL;
    if (st == SASL_STEP_INVALID) {
        auth_refuse(c, session, auth_attempt_new(c, m, NULL, "", NULL, 0),
                    AUTH_REASON_INVALID_INPUT, done);
        sasl_free(done_x);
        return false;
    }
    size_t len;
    const char *password = sasl_password(done_x, &len);
    const char *authid = sasl_authid(done_x), *authzid = sasl_authzid(done_x);
    struct auth_attempt *a = auth_attempt_new(c, m, NULL, authid, password, len);
    /* PLAIN's authorization identity: empty or the user's own until delegated access is
     * designed (POLICY.md §1: no logging on to another user's mailbox). */
    if (authzid && *authzid && strcmp(authzid, authid) != 0)
        auth_refuse(c, session, a, AUTH_REASON_AUTHZID_REFUSED, done);
    else
        auth_start(c, session, a, done);
    sasl_free(done_x);
    return false;
}

enum sasl_line sasl_take_line(struct conn *c, void *session, struct sasl_exchange **x,
                              const struct auth_mech *m, auth_done_fn done)
{
    if ((*x)->in_flight)
        return SASL_LINE_NONE; /* the helper has not answered: the line waits in the buffer */
    char *line;
    size_t len;
    int got = conn_take_line(c, 65536, &line, &len);
    if (got == 0)
        return SASL_LINE_NONE;
    if (got < 0 || strcmp(line, "*") == 0) {
        sasl_free(*x);
        *x = NULL;
        if (got > 0) {
            wipe(line, len);
            free(line);
        }
        return got < 0 ? SASL_LINE_TOO_LONG : SASL_LINE_CANCELLED;
    }
    /* input stays paused while the pipeline works; the protocol keeps its commands waiting */
    conn_pause_input(c, true);
    if (sasl_continue(c, session, x, m, line, done))
        conn_pause_input(c, false);
    wipe(line, len);
    free(line);
    return SASL_LINE_HANDLED;
}
