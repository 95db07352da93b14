/* The Kerberos acceptor: service keys in a MEMORY keytab, and SASL GSSAPI exchanges (RFC 4752)
 * through MIT's GSS-API directly, so that every failure has its own reason and the ticket's
 * service name is checked against the protocol and HostName. */
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/log.h"
#include "postern/sso.h"
#include "postern/util.h"

struct krb_acceptor {
    krb5_context krb5;
    krb5_keytab memory; /* open for the acceptor's whole life: MEMORY keytabs die with it */
    char memory_name[64];
    size_t n_keys;
};

struct krb_acceptor *krb_acceptor_new(const struct kerberos_settings *k, char *err, size_t errlen)
{
    struct krb_acceptor *a = xcalloc(1, sizeof(*a));
    krb5_error_code ret = krb5_init_context(&a->krb5);
    if (ret != 0) {
        snprintf(err, errlen, "kerberos: cannot initialise Kerberos (%d)", ret);
        free(a);
        return NULL;
    }
    snprintf(a->memory_name, sizeof(a->memory_name), "MEMORY:postern-acceptor-%p", (void *)a);
    char file_name[PATH_MAX + 8];
    snprintf(file_name, sizeof(file_name), "FILE:%s", k->keytab);
    krb5_keytab file = NULL;
    krb5_kt_cursor cursor;
    if ((ret = krb5_kt_resolve(a->krb5, a->memory_name, &a->memory)) != 0 ||
        (ret = krb5_kt_resolve(a->krb5, file_name, &file)) != 0 ||
        (ret = krb5_kt_start_seq_get(a->krb5, file, &cursor)) != 0) {
        const char *msg = krb5_get_error_message(a->krb5, ret);
        snprintf(err, errlen, "kerberos: keytab %s: %s", k->keytab, msg);
        krb5_free_error_message(a->krb5, msg);
        if (file != NULL)
            krb5_kt_close(a->krb5, file);
        krb_acceptor_free(a);
        return NULL;
    }
    krb5_keytab_entry entry;
    while ((ret = krb5_kt_next_entry(a->krb5, file, &entry, &cursor)) == 0) {
        ret = krb5_kt_add_entry(a->krb5, a->memory, &entry);
        krb5_free_keytab_entry_contents(a->krb5, &entry);
        if (ret != 0)
            break;
        a->n_keys++;
    }
    krb5_kt_end_seq_get(a->krb5, file, &cursor);
    krb5_kt_close(a->krb5, file);
    if (ret != 0 && ret != KRB5_KT_END) {
        const char *msg = krb5_get_error_message(a->krb5, ret);
        snprintf(err, errlen, "kerberos: keytab %s: %s", k->keytab, msg);
        krb5_free_error_message(a->krb5, msg);
        krb_acceptor_free(a);
        return NULL;
    }
    if (a->n_keys == 0) {
        snprintf(err, errlen, "kerberos: keytab %s holds no keys", k->keytab);
        krb_acceptor_free(a);
        return NULL;
    }
    return a;
}

void krb_acceptor_free(struct krb_acceptor *a)
{
    if (a == NULL)
        return;
    if (a->memory != NULL)
        krb5_kt_close(a->krb5, a->memory);
    krb5_free_context(a->krb5);
    free(a);
}

size_t krb_acceptor_keys(const struct krb_acceptor *a)
{
    return a->n_keys;
}

/* ---- one exchange ------------------------------------------------------------------------- */

enum krb_state {
    KX_CONTEXT,    /* GSS tokens until the context is established */
    KX_WAIT_EMPTY, /* the last context token went out; RFC 4752 wants an empty reply */
    KX_WAIT_LAYER, /* the wrapped layer offer went out; the wrapped choice comes back */
    KX_DONE,
};

struct krb_exchange {
    struct krb_acceptor *acceptor;
    enum protocol protocol;
    const struct kerberos_settings *rules;
    enum krb_state state;
    gss_cred_id_t cred;
    gss_ctx_id_t ctx;
    char *principal, *authzid;
    unsigned char *bindings; /* "tls-server-end-point:" + data, or NULL */
    size_t bindings_len;
};

void krb_exchange_bind(struct krb_exchange *x, const unsigned char *tls_end_point, size_t len)
{
    static const char PREFIX[] = "tls-server-end-point:"; /* RFC 5056 §2.1, RFC 5929 §4 */
    free(x->bindings);
    x->bindings_len = sizeof(PREFIX) - 1 + len;
    x->bindings = xmalloc(x->bindings_len);
    memcpy(x->bindings, PREFIX, sizeof(PREFIX) - 1);
    memcpy(x->bindings + sizeof(PREFIX) - 1, tls_end_point, len);
}

struct krb_exchange *krb_exchange_new(struct krb_acceptor *a, enum protocol protocol,
                                      const struct kerberos_settings *k)
{
    struct krb_exchange *x = xcalloc(1, sizeof(*x));
    x->acceptor = a;
    x->protocol = protocol;
    x->rules = k;
    x->cred = GSS_C_NO_CREDENTIAL;
    x->ctx = GSS_C_NO_CONTEXT;
    return x;
}

void krb_exchange_free(struct krb_exchange *x)
{
    if (x == NULL)
        return;
    OM_uint32 minor;
    if (x->ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&minor, &x->ctx, GSS_C_NO_BUFFER);
    if (x->cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&minor, &x->cred);
    free(x->principal);
    free(x->authzid);
    free(x->bindings);
    free(x);
}

const char *krb_exchange_principal(const struct krb_exchange *x)
{
    return x->principal;
}

const char *krb_exchange_authzid(const struct krb_exchange *x)
{
    return x->authzid;
}

/* What GSS-API says, major then minor, for the log. */
static void gss_text(OM_uint32 major, OM_uint32 minor, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        OM_uint32 code = pass == 0 ? major : minor, m, ctx = 0;
        if (pass == 1 && minor == 0)
            break;
        do {
            gss_buffer_desc text = GSS_C_EMPTY_BUFFER;
            if (GSS_ERROR(gss_display_status(&m, code, pass == 0 ? GSS_C_GSS_CODE : GSS_C_MECH_CODE,
                                             GSS_C_NO_OID, &ctx, &text)))
                break;
            if (used < len)
                used += (size_t)snprintf(out + used, len - used, "%s%.*s", used ? "; " : "",
                                         (int)text.length, (const char *)text.value);
            gss_release_buffer(&m, &text);
        } while (ctx != 0);
    }
}

/* MIT reports the Kerberos error code as the minor status of the krb5 mechanism. */
static enum auth_reason reason_of(OM_uint32 major, OM_uint32 minor)
{
    switch ((krb5_error_code)minor) {
    case KRB5KRB_AP_ERR_SKEW:
        return AUTH_REASON_KRB_CLOCK_SKEW;
    case KRB5KRB_AP_ERR_REPEAT:
        return AUTH_REASON_KRB_REPLAY;
    case KRB5KRB_AP_ERR_TKT_EXPIRED:
        return AUTH_REASON_KRB_TICKET_EXPIRED;
    case KRB5KRB_AP_ERR_NOKEY:
    case KRB5KRB_AP_ERR_BADKEYVER:
    case KRB5KRB_AP_ERR_BAD_INTEGRITY:
    case KRB5_KT_KVNONOTFOUND:
        return AUTH_REASON_KRB_KEY_MISMATCH;
    case KRB5_KT_NOTFOUND:
    case KRB5KRB_AP_WRONG_PRINC:
    case KRB5KRB_AP_ERR_NOT_US:
        return AUTH_REASON_KRB_WRONG_SERVICE;
    case KRB5KRB_AP_ERR_MSG_TYPE:
    case KRB5KRB_AP_ERR_BADVERSION:
    case KRB5KRB_AP_ERR_MODIFIED:
    case KRB5_BADMSGTYPE:
    case ASN1_BAD_ID:
    case ASN1_BAD_LENGTH:
    case ASN1_BAD_FORMAT:
    case ASN1_OVERRUN:
    case ASN1_MISSING_FIELD:
    case ASN1_MISPLACED_FIELD:
    case ASN1_TYPE_MISMATCH:
    case ASN1_PARSE_ERROR:
        return AUTH_REASON_KRB_INVALID_TOKEN;
    default:
        break;
    }
    switch (GSS_ROUTINE_ERROR(major)) {
    case GSS_S_DEFECTIVE_TOKEN:
    case GSS_S_BAD_MECH:
    case GSS_S_BAD_SIG:
        return AUTH_REASON_KRB_INVALID_TOKEN;
    case GSS_S_DUPLICATE_TOKEN:
        return AUTH_REASON_KRB_REPLAY;
    case GSS_S_CREDENTIALS_EXPIRED:
        return AUTH_REASON_KRB_TICKET_EXPIRED;
    case GSS_S_NO_CRED:
        return AUTH_REASON_KRB_WRONG_SERVICE;
    default:
        return AUTH_REASON_KRB_ERROR;
    }
}

static char *display_name(gss_name_t name)
{
    OM_uint32 minor;
    gss_buffer_desc text = GSS_C_EMPTY_BUFFER;
    if (GSS_ERROR(gss_display_name(&minor, name, &text, NULL)))
        return NULL;
    char *s = xstrndup(text.value, text.length);
    gss_release_buffer(&minor, &text);
    return s;
}

/* service/host@REALM of the ticket: the protocol's service name (RFC 3501 §6.2.2 "imap",
 * RFC 5034 §4 "pop") and, when HostName lists any, one of those host names. */
static bool target_allowed(const struct krb_exchange *x, const char *target)
{
    const char *service = x->protocol == PROTOCOL_IMAP ? "imap" : "pop";
    size_t sl = strlen(service);
    if (target == NULL || strncmp(target, service, sl) != 0 || target[sl] != '/')
        return false;
    const char *host = target + sl + 1;
    size_t hl = strcspn(host, "@/");
    if (host[hl] != '@' || hl == 0)
        return false;
    if (x->rules == NULL || x->rules->n_host_names == 0)
        return true;
    for (size_t i = 0; i < x->rules->n_host_names; i++) {
        const char *h = x->rules->host_names[i];
        if (strlen(h) == hl && ascii_ncasecmp(h, host, hl) == 0)
            return true;
    }
    return false;
}

/* ---- the ticket's service name (RFC 4121 §4.1, RFC 4120 §5.3 and §5.5.1) ------------------ */

/* One DER element with a one-byte tag: its tag and contents; *p moves past it. */
static bool der_next(const unsigned char **p, const unsigned char *end, unsigned char *tag,
                     const unsigned char **content, size_t *len)
{
    if (end - *p < 2)
        return false;
    const unsigned char *q = *p;
    *tag = *q++;
    if ((*tag & 0x1f) == 0x1f)
        return false; /* multi-byte tags do not occur here */
    size_t l = *q++;
    if (l & 0x80) {
        size_t n = l & 0x7f;
        if (n == 0 || n > 4 || (size_t)(end - q) < n)
            return false;
        l = 0;
        for (size_t i = 0; i < n; i++)
            l = l << 8 | *q++;
    }
    if ((size_t)(end - q) < l)
        return false;
    *content = q;
    *len = l;
    *p = q + l;
    return true;
}

/* The contents of the element tagged `want` among a SEQUENCE's elements. */
static bool der_field(const unsigned char *seq, size_t len, unsigned char want,
                      const unsigned char **content, size_t *clen)
{
    const unsigned char *p = seq, *end = seq + len;
    unsigned char tag;
    while (p < end) {
        if (!der_next(&p, end, &tag, content, clen))
            return false;
        if (tag == want)
            return true;
    }
    return false;
}

/* Contents of exactly one element with `tag` filling [p, p+len). */
static bool der_only(const unsigned char *p, size_t len, unsigned char tag,
                     const unsigned char **content, size_t *clen)
{
    const unsigned char *q = p;
    unsigned char t;
    return der_next(&q, p + len, &t, content, clen) && t == tag && q == p + len;
}

/* A principal's name component or realm as text: printable ASCII without the characters the
 * display form would have to escape. */
static bool name_part(const unsigned char *p, size_t len, char *out, size_t outlen)
{
    if (len == 0 || len >= outlen)
        return false;
    for (size_t i = 0; i < len; i++)
        if (p[i] <= 0x20 || p[i] >= 0x7f || p[i] == '/' || p[i] == '@' || p[i] == '\\')
            return false;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

bool krb_parse_ap_req_target(const unsigned char *tok, size_t len, char *service, char *host,
                             char *realm, size_t part_len)
{
    static const unsigned char KRB5_OID[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02};
    const unsigned char *c, *oid;
    size_t clen, oidlen;
    const unsigned char *p;
    unsigned char tag;
    /* InitialContextToken: [APPLICATION 0] { mech OID, TOK_ID 01 00, AP-REQ } */
    if (!der_only(tok, len, 0x60, &c, &clen))
        return false;
    p = c;
    if (!der_next(&p, c + clen, &tag, &oid, &oidlen) || tag != 0x06 || oidlen != sizeof(KRB5_OID) ||
        memcmp(oid, KRB5_OID, oidlen) != 0)
        return false;
    if (c + clen - p < 2 || p[0] != 0x01 || p[1] != 0x00)
        return false;
    p += 2;
    const unsigned char *ap, *seq, *t, *tkt, *tseq, *r, *rs, *sn, *snseq, *names;
    size_t aplen, seqlen, tlen, tktlen, tseqlen, rlen, rslen, snlen, snseqlen, nameslen;
    /* AP-REQ ::= [APPLICATION 14] SEQUENCE { ..., ticket [3] Ticket, ... }
     * Ticket ::= [APPLICATION 1] SEQUENCE { tkt-vno [0], realm [1], sname [2], enc-part [3] } */
    if (!der_only(p, (size_t)(c + clen - p), 0x6e, &ap, &aplen) ||
        !der_only(ap, aplen, 0x30, &seq, &seqlen) || !der_field(seq, seqlen, 0xa3, &t, &tlen) ||
        !der_only(t, tlen, 0x61, &tkt, &tktlen) || !der_only(tkt, tktlen, 0x30, &tseq, &tseqlen) ||
        !der_field(tseq, tseqlen, 0xa1, &r, &rlen) || !der_only(r, rlen, 0x1b, &rs, &rslen) ||
        !name_part(rs, rslen, realm, part_len) || !der_field(tseq, tseqlen, 0xa2, &sn, &snlen) ||
        !der_only(sn, snlen, 0x30, &snseq, &snseqlen) ||
        !der_field(snseq, snseqlen, 0xa1, &names, &nameslen))
        return false;
    /* PrincipalName's name-string: SEQUENCE OF KerberosString, here exactly service and host */
    const unsigned char *ns, *part[2];
    size_t nslen, partlen[2];
    if (!der_only(names, nameslen, 0x30, &ns, &nslen))
        return false;
    p = ns;
    for (int i = 0; i < 2; i++)
        if (!der_next(&p, ns + nslen, &tag, &part[i], &partlen[i]) || tag != 0x1b)
            return false;
    return p == ns + nslen && name_part(part[0], partlen[0], service, part_len) &&
           name_part(part[1], partlen[1], host, part_len);
}

/* Credentials for exactly the ticket's principal (no DNS, no guessing among keys that AD
 * shares between a machine's SPNs: MIT then checks the ticket is for it). */
static bool acquire(struct krb_exchange *x, const char *principal, char *detail, size_t detail_len)
{
    gss_key_value_element_desc element = {"keytab", x->acceptor->memory_name};
    gss_key_value_set_desc store = {.count = 1, .elements = &element};
    gss_OID_set_desc mechs = {.count = 1, .elements = (gss_OID)gss_mech_krb5};
    OM_uint32 minor;
    gss_name_t name = GSS_C_NO_NAME;
    gss_buffer_desc buf = {.length = strlen(principal), .value = (void *)principal};
    OM_uint32 major = gss_import_name(&minor, &buf, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
    if (!GSS_ERROR(major))
        major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, &mechs, GSS_C_ACCEPT, &store,
                                      &x->cred, NULL, NULL);
    gss_release_name(&minor, &name);
    if (GSS_ERROR(major)) {
        gss_text(major, minor, detail, detail_len);
        return false;
    }
    return true;
}

/* The wrapped 4-byte layer offer: "no security layer" (1), maximum message size 0. */
static bool layer_offer(struct krb_exchange *x, unsigned char **out, size_t *outlen, char *detail,
                        size_t detail_len)
{
    unsigned char offer[4] = {1, 0, 0, 0};
    gss_buffer_desc in = {.length = sizeof(offer), .value = offer}, wrapped = GSS_C_EMPTY_BUFFER;
    OM_uint32 minor;
    OM_uint32 major = gss_wrap(&minor, x->ctx, 0, GSS_C_QOP_DEFAULT, &in, NULL, &wrapped);
    if (GSS_ERROR(major)) {
        gss_text(major, minor, detail, detail_len);
        return false;
    }
    *out = xmalloc(wrapped.length ? wrapped.length : 1);
    memcpy(*out, wrapped.value, wrapped.length);
    *outlen = wrapped.length;
    gss_release_buffer(&minor, &wrapped);
    return true;
}

bool krb_parse_layer_choice(const unsigned char *msg, size_t len, char **authzid)
{
    *authzid = NULL;
    /* exactly the one layer offered, and a client buffer size (ignored without a layer) */
    if (len < 4 || msg[0] != 1)
        return false;
    for (size_t i = 4; i < len; i++)
        if (msg[i] == 0)
            return false; /* an authzid is UTF-8 text, never with NUL */
    *authzid = xstrndup((const char *)msg + 4, len - 4);
    return true;
}

enum krb_step krb_exchange_step(struct krb_exchange *x, const unsigned char *in, size_t inlen,
                                unsigned char **out, size_t *outlen, enum auth_reason *reason,
                                char *detail, size_t detail_len)
{
    *out = NULL;
    *outlen = 0;
    *reason = AUTH_REASON_NONE;
    detail[0] = '\0';
    OM_uint32 major, minor;
    switch (x->state) {
    case KX_CONTEXT: {
        if (inlen == 0) {
            *reason = AUTH_REASON_KRB_INVALID_TOKEN;
            snprintf(detail, detail_len, "empty GSS-API token");
            return KRB_STEP_FAILED;
        }
        if (x->cred == GSS_C_NO_CREDENTIAL) {
            char service[256], host[256], realm[256], target[800];
            if (!krb_parse_ap_req_target(in, inlen, service, host, realm, sizeof(service))) {
                *reason = AUTH_REASON_KRB_INVALID_TOKEN;
                snprintf(detail, detail_len, "not a Kerberos AP-REQ for a service/host name");
                return KRB_STEP_FAILED;
            }
            snprintf(target, sizeof(target), "%s/%s@%s", service, host, realm);
            if (!target_allowed(x, target)) {
                *reason = AUTH_REASON_KRB_WRONG_SERVICE;
                snprintf(detail, detail_len, "ticket for %s", target);
                return KRB_STEP_FAILED;
            }
            if (!acquire(x, target, detail, detail_len)) {
                *reason = AUTH_REASON_KRB_WRONG_SERVICE; /* no key for it in the keytab */
                return KRB_STEP_FAILED;
            }
        }
        gss_buffer_desc token = {.length = inlen, .value = (void *)in}, reply = GSS_C_EMPTY_BUFFER;
        gss_name_t client = GSS_C_NO_NAME;
        enum extended_protection ep =
            x->rules ? x->rules->extended_protection : EXTENDED_PROTECTION_NONE;
        /* MIT (1.19+) accepts a client that sends no bindings and then leaves
         * GSS_C_CHANNEL_BOUND_FLAG unset; bindings that differ fail with GSS_S_BAD_BINDINGS. */
        struct gss_channel_bindings_struct cb = {
            .initiator_addrtype = GSS_C_AF_UNSPEC,
            .acceptor_addrtype = GSS_C_AF_UNSPEC,
            .application_data = {.length = x->bindings_len, .value = x->bindings}};
        bool bind = ep != EXTENDED_PROTECTION_NONE && x->bindings != NULL;
        OM_uint32 flags = 0;
        major = gss_accept_sec_context(&minor, &x->ctx, x->cred, &token,
                                       bind ? &cb : GSS_C_NO_CHANNEL_BINDINGS, &client, NULL,
                                       &reply, &flags, NULL, NULL);
        if (GSS_ERROR(major)) {
            *reason = GSS_ROUTINE_ERROR(major) == GSS_S_BAD_BINDINGS
                          ? AUTH_REASON_CHANNEL_BINDING_MISMATCH
                          : reason_of(major, minor);
            gss_text(major, minor, detail, detail_len);
            gss_release_buffer(&minor, &reply);
            gss_release_name(&minor, &client);
            return KRB_STEP_FAILED;
        }
        if (reply.length > 0) {
            *out = xmalloc(reply.length);
            memcpy(*out, reply.value, reply.length);
            *outlen = reply.length;
        }
        gss_release_buffer(&minor, &reply);
        if (major & GSS_S_CONTINUE_NEEDED) {
            gss_release_name(&minor, &client);
            return KRB_STEP_CHALLENGE;
        }
        x->principal = display_name(client);
        gss_release_name(&minor, &client);
        if (ep == EXTENDED_PROTECTION_REQUIRE && !(bind && (flags & GSS_C_CHANNEL_BOUND_FLAG))) {
            *reason = AUTH_REASON_CHANNEL_BINDING_REQUIRED;
            snprintf(detail, detail_len, "no channel binding to the TLS session");
            free(*out);
            *out = NULL;
            *outlen = 0;
            return KRB_STEP_FAILED;
        }
        if (x->principal == NULL) {
            *reason = AUTH_REASON_KRB_ERROR;
            snprintf(detail, detail_len, "the client principal has no name");
            free(*out);
            *out = NULL;
            *outlen = 0;
            return KRB_STEP_FAILED;
        }
        if (*outlen > 0) { /* mutual authentication: the AP-REP goes first */
            x->state = KX_WAIT_EMPTY;
            return KRB_STEP_CHALLENGE;
        }
        x->state = KX_WAIT_LAYER;
        if (!layer_offer(x, out, outlen, detail, detail_len)) {
            *reason = AUTH_REASON_KRB_ERROR;
            return KRB_STEP_FAILED;
        }
        return KRB_STEP_CHALLENGE;
    }
    case KX_WAIT_EMPTY:
        if (inlen != 0) {
            *reason = AUTH_REASON_KRB_INVALID_TOKEN;
            snprintf(detail, detail_len, "data where RFC 4752 wants an empty response");
            return KRB_STEP_FAILED;
        }
        x->state = KX_WAIT_LAYER;
        if (!layer_offer(x, out, outlen, detail, detail_len)) {
            *reason = AUTH_REASON_KRB_ERROR;
            return KRB_STEP_FAILED;
        }
        return KRB_STEP_CHALLENGE;
    case KX_WAIT_LAYER: {
        gss_buffer_desc wrapped = {.length = inlen, .value = (void *)in},
                        plain = GSS_C_EMPTY_BUFFER;
        major = gss_unwrap(&minor, x->ctx, &wrapped, &plain, NULL, NULL);
        if (GSS_ERROR(major)) {
            *reason = reason_of(major, minor);
            if (*reason == AUTH_REASON_KRB_ERROR)
                *reason = AUTH_REASON_KRB_INVALID_TOKEN;
            gss_text(major, minor, detail, detail_len);
            return KRB_STEP_FAILED;
        }
        bool ok = krb_parse_layer_choice(plain.value, plain.length, &x->authzid);
        gss_release_buffer(&minor, &plain);
        if (!ok) {
            *reason = AUTH_REASON_KRB_INVALID_TOKEN;
            snprintf(detail, detail_len, "security layer choice is not \"none\"");
            return KRB_STEP_FAILED;
        }
        x->state = KX_DONE;
        return KRB_STEP_DONE;
    }
    case KX_DONE:
        break;
    }
    *reason = AUTH_REASON_KRB_INVALID_TOKEN;
    snprintf(detail, detail_len, "data after the exchange ended");
    return KRB_STEP_FAILED;
}
