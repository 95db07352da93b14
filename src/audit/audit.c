/* Audit trail: JSON lines appended with one write(2) each, so concurrent events never mix. */
#include "postern/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "postern/auth.h"
#include "postern/log.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int audit_fd = -1;
static bool to_syslog;

void audit_set_syslog(bool on)
{
    pthread_mutex_lock(&lock);
    to_syslog = on;
    pthread_mutex_unlock(&lock);
}

bool audit_open(const char *path, char *err, size_t errlen)
{
    int fd = -1;
    if (path) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return false;
        }
    }
    pthread_mutex_lock(&lock);
    int old = audit_fd;
    audit_fd = fd;
    pthread_mutex_unlock(&lock);
    if (old >= 0)
        close(old);
    return true;
}

void audit_close(void)
{
    char err[8];
    audit_open(NULL, err, sizeof(err));
}

/* Length of the valid UTF-8 sequence at s[0..len), or 0 if it is not one (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
    size_t n;
    unsigned min;
    unsigned cp;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2, min = 0x80, cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3, min = 0x800, cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4, min = 0x10000, cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

size_t audit_json_escape(char *out, size_t outlen, const char *in, size_t inlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (outlen == 0)
        return 0;
    for (size_t i = 0; i < inlen;) {
        const unsigned char *ch = (const unsigned char *)in + i;
        char buf[8];
        size_t n, used = 1;
        if (*ch == '"' || *ch == '\\') {
            buf[0] = '\\';
            buf[1] = (char)*ch;
            n = 2;
        } else if (*ch < 0x20 || *ch == 0x7f) {
            buf[0] = '\\';
            buf[1] = 'u';
            buf[2] = '0';
            buf[3] = '0';
            buf[4] = hex[*ch >> 4];
            buf[5] = hex[*ch & 15];
            n = 6;
        } else if (*ch < 0x80) {
            buf[0] = (char)*ch;
            n = 1;
        } else if ((used = utf8_sequence(ch, inlen - i)) > 0) {
            /* UTF-8 names (AD allows them) stay readable; the record stays valid JSON. */
            memcpy(buf, ch, used);
            n = used;
        } else {
            /* A byte that is not UTF-8 becomes U+FFFD: the audit line must stay valid JSON,
             * and such a login can never match a directory name anyway. */
            static const char replacement[6] = {'\\', 'u', 'f', 'f', 'f', 'd'};
            memcpy(buf, replacement, sizeof(replacement));
            n = sizeof(replacement);
            used = 1;
        }
        if (o + n >= outlen)
            break; /* truncation never splits an escape or a character */
        memcpy(out + o, buf, n);
        o += n;
        i += used;
    }
    out[o] = '\0';
    return o;
}

static void timestamp(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

static void emit(const char *line, size_t len)
{
    pthread_mutex_lock(&lock);
    if (audit_fd >= 0 && write(audit_fd, line, len) != (ssize_t)len)
        log_error("audit log: write failed: %s", strerror(errno));
    if (to_syslog) /* the same JSON, without its line end; authpriv keeps it from mail logs */
        syslog(LOG_AUTHPRIV | LOG_INFO, "%.*s", (int)(len > 0 ? len - 1 : 0), line);
    pthread_mutex_unlock(&lock);
}

void audit_connection_refused(const struct listener_config *l, const struct ip_addr *peer,
                              unsigned peer_port, const char *reason)
{
    char ts[64], client[48], name[256], line[1024];
    timestamp(ts, sizeof(ts));
    addr_to_text(peer, client, sizeof(client));
    audit_json_escape(name, sizeof(name), l->name, strlen(l->name));
    int n =
        snprintf(line, sizeof(line),
                 "{\"time\":\"%s\",\"event\":\"connection_refused\",\"listener\":\"%s\","
                 "\"protocol\":\"%s\",\"client\":\"%s\",\"client_port\":%u,\"reason\":\"%s\"}\n",
                 ts, name, protocol_name(l->protocol), client, peer_port, reason);
    if (n > 0 && (size_t)n < sizeof(line))
        emit(line, (size_t)n);
}

/* Appends ,"key":"escaped value" when the value exists. */
static size_t field(char *line, size_t o, size_t cap, const char *key, const char *value)
{
    if (value == NULL || o >= cap)
        return o;
    char esc[1100];
    audit_json_escape(esc, sizeof(esc), value, strlen(value));
    int n = snprintf(line + o, cap - o, ",\"%s\":\"%s\"", key, esc);
    return n > 0 ? o + (size_t)n : o;
}

void audit_auth(const struct auth_attempt *a, const struct auth_result *r)
{
    char ts[64], client[48], name[256], mech[128], login[1024], line[8192];
    timestamp(ts, sizeof(ts));
    if (a->test)
        snprintf(client, sizeof(client), "local");
    else
        addr_to_text(&a->peer, client, sizeof(client));
    audit_json_escape(name, sizeof(name), a->listener, strlen(a->listener));
    audit_json_escape(login, sizeof(login), a->login, strlen(a->login));
    audit_json_escape(mech, sizeof(mech), a->mech_name, strlen(a->mech_name));
    int n = snprintf(line, sizeof(line),
                     "{\"time\":\"%s\",\"event\":\"auth\",\"conn\":%llu,\"listener\":\"%s\","
                     "\"protocol\":\"%s\",\"client\":\"%s\",\"client_port\":%u,\"tls\":%s,"
                     "\"login_type\":\"%s\",\"mechanism\":\"%s\",\"login\":\"%s\","
                     "\"result\":\"%s\",\"reason\":\"%s\",\"latency_ms\":%llu",
                     ts, (unsigned long long)a->conn_id, name, protocol_name(a->protocol), client,
                     a->peer_port, a->tls ? "true" : "false", login_type_name(a->login_type), mech,
                     login, r->allow ? "allow" : "deny", auth_reason_code(r->reason),
                     (unsigned long long)r->latency_ms);
    if (n <= 0 || (size_t)n >= sizeof(line))
        return;
    size_t o = (size_t)n;
    o = field(line, o, sizeof(line), "tls_session", a->tls_desc);
    o = field(line, o, sizeof(line), "form", r->form);
    o = field(line, o, sizeof(line), "account_dn", r->account_dn);
    o = field(line, o, sizeof(line), "account", r->account_name);
    o = field(line, o, sizeof(line), "upn", r->account_upn);
    o = field(line, o, sizeof(line), "mailbox", r->mailbox);
    o = field(line, o, sizeof(line), "directory_server", r->server);
    if (r->ad_subcode && o < sizeof(line))
        o += (size_t)snprintf(line + o, sizeof(line) - o, ",\"ad_subcode\":\"%x\"", r->ad_subcode);
    if (a->test && o + 12 < sizeof(line))
        o += (size_t)snprintf(line + o, sizeof(line) - o, ",\"test\":true");
    if (o + 3 > sizeof(line))
        return;
    line[o++] = '}';
    line[o++] = '\n';
    emit(line, o);
    log_info("auth: conn %llu %s %s mech=%s login=\"%s\" -> %s (%s)",
             (unsigned long long)a->conn_id, protocol_name(a->protocol), client, mech, login,
             r->allow ? "allow" : "deny", auth_reason_code(r->reason));
}
