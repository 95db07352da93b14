/* GnuTLS credentials and per-connection sessions: TLS 1.2/1.3 only, ALPN, session tickets. */
#include "postern/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "postern/log.h"
#include "postern/util.h"

struct tls_creds {
    atomic_int refs;
    gnutls_certificate_credentials_t cert;
    gnutls_priority_t priority;
};

/* One ticket key per process: resumption survives certificate reloads. */
static gnutls_datum_t ticket_key;

bool tls_global_init(char *err, size_t errlen)
{
    int rc = gnutls_global_init();
    if (rc < 0) {
        snprintf(err, errlen, "gnutls_global_init: %s", gnutls_strerror(rc));
        return false;
    }
    rc = gnutls_session_ticket_key_generate(&ticket_key);
    if (rc < 0) {
        snprintf(err, errlen, "session ticket key: %s", gnutls_strerror(rc));
        return false;
    }
    return true;
}

void tls_global_deinit(void)
{
    if (ticket_key.data) {
        wipe(ticket_key.data, ticket_key.size);
        gnutls_free(ticket_key.data);
        ticket_key.data = NULL;
    }
    gnutls_global_deinit();
}

/* Reads a PEM file whole; *line names the directive for messages. */
static bool read_file(const char *cfg, int line, const char *what, const char *path,
                      gnutls_datum_t *out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > 1024L * 1024) {
        snprintf(err, errlen, "%s:%d: %s %s: %s", cfg, line, what, path,
                 fd < 0 ? strerror(errno) : "not a regular file of at most 1 MiB");
        if (fd >= 0)
            close(fd);
        return false;
    }
    out->data = gnutls_malloc((size_t)sb.st_size + 1);
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, out->data + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != (size_t)sb.st_size) {
        snprintf(err, errlen, "%s:%d: %s %s: short read", cfg, line, what, path);
        gnutls_free(out->data);
        out->data = NULL;
        return false;
    }
    out->size = (unsigned)got;
    return true;
}

struct tls_creds *tls_creds_load(const struct config *c, char *err, size_t errlen)
{
    err[0] = '\0';
    bool needed = false;
    for (size_t i = 0; i < c->n_listeners; i++)
        needed |= c->listeners[i].tls != TLS_MODE_NONE;
    if (!needed)
        return NULL;

    struct tls_creds *t = xcalloc(1, sizeof(*t));
    atomic_init(&t->refs, 1);
    gnutls_datum_t cert = {0}, key = {0}, chain = {0};
    const char *where = NULL;
    int rc = gnutls_priority_init2(&t->priority, c->tls_priority, &where, 0);
    if (rc < 0) {
        snprintf(err, errlen, "%s:%d: TLSPriority: %s near '%.20s'", c->path, c->tls_priority_line,
                 gnutls_strerror(rc), where ? where : "");
        goto fail;
    }
    if (!read_file(c->path, c->tls_certificate_line, "TLSCertificateFile", c->tls_certificate,
                   &cert, err, errlen) ||
        !read_file(c->path, c->tls_key_line, "TLSKeyFile", c->tls_key, &key, err, errlen))
        goto fail;
    if (c->tls_chain) {
        if (!read_file(c->path, c->tls_chain_line, "TLSChainFile", c->tls_chain, &chain, err,
                       errlen))
            goto fail;
        /* GnuTLS takes the chain as further certificates after the leaf in one PEM blob. */
        unsigned char *both = gnutls_malloc(cert.size + 1 + chain.size);
        memcpy(both, cert.data, cert.size);
        both[cert.size] = '\n';
        memcpy(both + cert.size + 1, chain.data, chain.size);
        gnutls_free(cert.data);
        cert.data = both;
        cert.size += 1 + chain.size;
    }
    gnutls_certificate_allocate_credentials(&t->cert);
    rc = gnutls_certificate_set_x509_key_mem2(t->cert, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        snprintf(err, errlen, "%s:%d: TLSCertificateFile %s / TLSKeyFile %s: %s", c->path,
                 c->tls_certificate_line, c->tls_certificate, c->tls_key, gnutls_strerror(rc));
        goto fail;
    }
    gnutls_certificate_set_known_dh_params(t->cert, GNUTLS_SEC_PARAM_HIGH);
    if (key.data)
        wipe(key.data, key.size);
    gnutls_free(key.data);
    gnutls_free(cert.data);
    gnutls_free(chain.data);
    return t;
fail:
    if (key.data)
        wipe(key.data, key.size);
    gnutls_free(key.data);
    gnutls_free(cert.data);
    gnutls_free(chain.data);
    tls_creds_unref(t);
    return NULL;
}

struct tls_creds *tls_creds_ref(struct tls_creds *t)
{
    atomic_fetch_add(&t->refs, 1);
    return t;
}

void tls_creds_unref(struct tls_creds *t)
{
    if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    if (t->cert)
        gnutls_certificate_free_credentials(t->cert);
    if (t->priority)
        gnutls_priority_deinit(t->priority);
    free(t);
}

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_creds *current;

void tls_creds_publish(struct tls_creds *t)
{
    pthread_mutex_lock(&current_lock);
    struct tls_creds *old = current;
    current = t ? tls_creds_ref(t) : NULL;
    pthread_mutex_unlock(&current_lock);
    tls_creds_unref(old);
}

struct tls_creds *tls_creds_current(void)
{
    pthread_mutex_lock(&current_lock);
    struct tls_creds *t = current ? tls_creds_ref(current) : NULL;
    pthread_mutex_unlock(&current_lock);
    return t;
}

gnutls_session_t tls_session_new(struct tls_creds *t, int fd, enum protocol p)
{
    gnutls_session_t s;
    if (gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0)
        return NULL;
    gnutls_priority_set(s, t->priority);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, t->cert);
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_IGNORE);
    gnutls_session_ticket_enable_server(s, &ticket_key);
    /* ALPACA mitigation: a client that offers ALPN must offer this protocol; one that offers
     * only another protocol (http/1.1) is refused. Clients without ALPN are fine. */
    gnutls_datum_t alpn = {(unsigned char *)(p == PROTOCOL_IMAP ? "imap" : "pop3"), 4};
    gnutls_alpn_set_protocols(s, &alpn, 1, GNUTLS_ALPN_MANDATORY | GNUTLS_ALPN_SERVER_PRECEDENCE);
    gnutls_transport_set_int(s, fd);
    return s;
}
