/* PLAIN and LOGIN server exchanges with libgsasl; the credentials go to the auth pipeline. */
#include "postern/sasl.h"

#include <gsasl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/conn.h"
#include "postern/util.h"

/* One Gsasl handle per process, read-only after init; one Gsasl_session per exchange and
 * used by one thread at a time (TECHNOTES §1). */
static Gsasl *gsasl;

struct sasl_exchange {
    Gsasl_session *session;
    bool is_login; /* the LOGIN mechanism */
    bool started;  /* the first step has run */
    char *authid, *authzid, *password;
    size_t password_len;
    bool captured;
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
    struct sasl_exchange *x = xcalloc(1, sizeof(*x));
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
    if (x->password)
        wipe(x->password, x->password_len);
    free(x->password);
    free(x->authid);
    free(x->authzid);
    gsasl_finish(x->session);
    free(x);
}

bool sasl_continue(struct conn *c, void *session, struct sasl_exchange **x,
                   const struct auth_mech *m, const char *response, auth_done_fn done)
{
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
