/* The auth pipeline: gate (transport policy), then the directory steps on the worker pool,
 * then exactly one audit event and the result back to the protocol. */
#include "postern/auth.h"

#include <stdlib.h>
#include <string.h>

#include "postern/audit.h"
#include "postern/conn.h"
#include "postern/policy.h"
#include "postern/util.h"

const struct auth_mech AUTH_MECHS[] = {
    {"PLAIN", MECH_PLAINTEXT},
    {"LOGIN", MECH_PLAINTEXT},
};
const size_t AUTH_MECHS_COUNT = ARRAY_LEN(AUTH_MECHS);
const struct auth_mech AUTH_MECH_LOGIN_COMMAND = {"LOGIN-COMMAND", MECH_PLAINTEXT};

const struct auth_mech *auth_mech_find(const char *name)
{
    for (size_t i = 0; i < AUTH_MECHS_COUNT; i++)
        if (ascii_casecmp(AUTH_MECHS[i].name, name) == 0)
            return &AUTH_MECHS[i];
    return NULL;
}

const char *auth_reason_code(enum auth_reason r)
{
    switch (r) {
    case AUTH_REASON_NONE:
        return "ok";
    case AUTH_REASON_PLAINTEXT_REQUIRES_TLS:
        return "plaintext_requires_tls";
    case AUTH_REASON_MECH_UNSUPPORTED:
        return "mechanism_unsupported";
    case AUTH_REASON_INVALID_INPUT:
        return "invalid_input";
    case AUTH_REASON_NO_DIRECTORY:
        return "directory_not_configured";
    case AUTH_REASON_SERVER_BUSY:
        return "server_busy";
    }
    return "unknown";
}

struct auth_attempt *auth_attempt_new(struct conn *c, const struct auth_mech *mech,
                                      const char *mech_name, const char *login, const char *secret,
                                      size_t secret_len)
{
    struct auth_attempt *a = xcalloc(1, sizeof(*a));
    const struct listener_config *l = conn_listener(c);
    a->conn_id = conn_id(c);
    a->protocol = l->protocol;
    a->listener = l->name;
    a->tls = conn_tls_active(c);
    a->peer = *conn_peer(c);
    a->peer_port = conn_peer_port(c);
    a->mech = mech;
    a->mech_name = xstrdup(mech ? mech->name : mech_name ? mech_name : "");
    a->login_type = conn_protocol_settings(c)->login_type;
    a->login = xstrdup(login ? login : "");
    if (secret) {
        a->secret = xstrndup(secret, secret_len);
        a->secret_len = secret_len;
    }
    return a;
}

void auth_attempt_free(struct auth_attempt *a)
{
    if (a == NULL)
        return;
    if (a->secret)
        wipe(a->secret, a->secret_len);
    free(a->secret);
    free(a->login);
    free(a->mech_name);
    free(a);
}

struct pending {
    struct conn *conn;
    void *session;
    struct auth_attempt *attempt;
    struct auth_result result;
    auth_done_fn done;
};

/* The directory part of the pipeline. The directory client arrives with the directory-auth
 * issue; until then no account can be resolved, so every attempt that passes the gate ends as
 * "directory_not_configured" — never as a success. */
static void run_directory_steps(void *arg)
{
    struct pending *p = arg;
    p->result.allow = false;
    p->result.reason = AUTH_REASON_NO_DIRECTORY;
}

static void finish(struct pending *p)
{
    if (p->attempt->secret)
        wipe(p->attempt->secret, p->attempt->secret_len);
    audit_auth(p->attempt, &p->result);
    p->done(p->session, p->attempt, &p->result);
    auth_attempt_free(p->attempt);
    free(p);
}

static void directory_steps_done(void *arg)
{
    finish(arg);
}

void auth_start(struct conn *c, void *session, struct auth_attempt *a, auth_done_fn done)
{
    struct pending *p = xcalloc(1, sizeof(*p));
    *p = (struct pending){.conn = c, .session = session, .attempt = a, .done = done};
    if (a->mech == NULL) {
        p->result.reason = AUTH_REASON_MECH_UNSUPPORTED;
        finish(p);
        return;
    }
    /* The gate: credentials that LoginType forbids here are never checked (POLICY.md §2). */
    if (!policy_mech_allowed(a->login_type, a->tls, a->mech)) {
        p->result.reason = AUTH_REASON_PLAINTEXT_REQUIRES_TLS;
        finish(p);
        return;
    }
    if (!conn_submit(c, run_directory_steps, directory_steps_done, p)) {
        p->result.reason = AUTH_REASON_SERVER_BUSY;
        finish(p);
    }
}
