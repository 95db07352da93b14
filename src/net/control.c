/* The control socket: where posternctl lists the live sessions and ends some. A Unix socket on
 * the main thread's loop; one request line, one JSON answer, then the socket closes. */
#include "control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conn_internal.h"
#include "postern/audit.h"
#include "postern/log.h"
#include "postern/loop.h"
#include "postern/util.h"

#define MAX_REQUEST 1024 /* bytes of the request line */
#define MAX_ACCOUNT 256  /* bytes of KICK-ACCOUNT's name */
#define MAX_CLIENTS 16   /* posternctl runs at once; more are turned away */
#define DEADLINE_S 10    /* from accept to the last byte of the answer */

enum request_kind { REQUEST_SESSIONS, REQUEST_KICK, REQUEST_KICK_ACCOUNT };

struct control {
    char *path;
    int fd;
    dev_t dev; /* the socket this server made: only that one is removed at stop */
    ino_t ino;
    gid_t group; /* the socket's group: its members may use it */
    struct event_base *base;
    struct evconnlistener *evl;
    struct io_thread **threads;
    struct conn_list *lists;
    unsigned n_threads;
    struct client *clients;
    unsigned n_clients;
    struct request *requests; /* waiting for the io_threads */
    bool stopped;
};

/* One posternctl connection, on the main thread. */
struct client {
    struct control *ctl;
    struct client *prev, *next;
    struct bufferevent *bev;
    struct event *deadline;
    uid_t uid;
    pid_t pid;
    bool refused;            /* not allowed (peer_allowed): every request is refused */
    struct request *request; /* NULL before the request line and after the answer */
};

/* What one io_thread contributes to a request: JSON objects, comma-separated. */
struct part {
    struct request *request;
    struct conn_list *list;
    struct evbuffer *out;
    unsigned count;
};

/* The join: every io_thread gets a part; the last one to finish wakes the main thread. Only
 * the main thread frees a request: when `done` has run, or after the io_threads are joined. */
struct request {
    struct control *ctl;
    struct request *prev, *next;
    struct client *client; /* NULL once the client has gone: the answer is dropped */
    enum request_kind kind;
    uint64_t id;   /* KICK */
    char *account; /* KICK-ACCOUNT */
    uid_t uid;     /* who asked, for the log lines of ended sessions */
    struct event *done;
    atomic_uint remaining;
    struct part *parts;
    unsigned n_parts;
};

/* ---- JSON ------------------------------------------------------------------------------- */

static void json_string(struct evbuffer *b, const char *s)
{
    if (s == NULL) {
        evbuffer_add(b, "null", 4);
        return;
    }
    size_t n = strlen(s), cap = 6 * n + 1;
    char *text = xmalloc(cap);
    audit_json_escape(text, cap, s, n);
    evbuffer_add_printf(b, "\"%s\"", text);
    free(text);
}

static void json_time(struct evbuffer *b, time_t t)
{
    struct tm tm;
    char text[32];
    if (t == 0 || gmtime_r(&t, &tm) == NULL ||
        strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        evbuffer_add(b, "null", 4);
        return;
    }
    evbuffer_add_printf(b, "\"%s\"", text);
}

static void json_session(struct evbuffer *b, const struct conn_info *i)
{
    evbuffer_add_printf(b, "{\"id\":%" PRIu64 ",\"protocol\":\"%s\",\"listener\":", i->id,
                        protocol_name(i->protocol));
    json_string(b, i->listener);
    evbuffer_add(b, ",\"client\":", 10);
    json_string(b, i->peer);
    evbuffer_add_printf(b, ",\"client_port\":%u,\"tls\":", i->peer_port);
    if (i->tls_version) {
        evbuffer_add(b, "{\"version\":", 11);
        json_string(b, i->tls_version);
        evbuffer_add(b, ",\"cipher\":", 10);
        json_string(b, i->tls_cipher);
        evbuffer_add(b, "}", 1);
    } else {
        evbuffer_add(b, "null", 4);
    }
    evbuffer_add_printf(b, ",\"state\":\"%s\",\"account\":", i->state);
    json_string(b, i->account);
    evbuffer_add(b, ",\"account_dn\":", 14);
    json_string(b, i->account_dn);
    evbuffer_add(b, ",\"mechanism\":", 13);
    json_string(b, i->mechanism);
    evbuffer_add(b, ",\"connected_at\":", 16);
    json_time(b, i->connected_at);
    evbuffer_add(b, ",\"login_at\":", 12);
    json_time(b, i->login_at);
    evbuffer_add_printf(b, ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 "}", i->bytes_in,
                        i->bytes_out);
}

/* ---- on the io_threads -------------------------------------------------------------------- */

static void describe_one(struct conn *c, void *arg)
{
    struct part *p = arg;
    struct conn_info info;
    conn_describe(c, &info);
    if (p->count++ > 0)
        evbuffer_add(p->out, ",", 1);
    json_session(p->out, &info);
}

/* sAMAccountName or DN, without regard to ASCII case (as the directory compares them). */
static bool account_matches(const struct conn_info *i, const char *name)
{
    return (i->account && ascii_casecmp(i->account, name) == 0) ||
           (i->account_dn && ascii_casecmp(i->account_dn, name) == 0);
}

static void kick_one(struct conn *c, void *arg)
{
    struct part *p = arg;
    const struct request *r = p->request;
    struct conn_info info;
    conn_describe(c, &info);
    bool match = r->kind == REQUEST_KICK ? info.id == r->id : account_matches(&info, r->account);
    if (!match || strcmp(info.state, "closing") == 0)
        return;
    log_info("conn %" PRIu64 " from %s: ended by posternctl kick (uid %u)%s%s", info.id, info.peer,
             (unsigned)r->uid, info.account ? ": account " : "", info.account ? info.account : "");
    if (p->count++ > 0)
        evbuffer_add(p->out, ",", 1);
    json_session(p->out, &info);
    conn_end(c, "ended by posternctl kick");
}

static void gather(void *arg)
{
    struct part *p = arg;
    struct request *r = p->request;
    conn_list_visit(p->list, r->kind == REQUEST_SESSIONS ? describe_one : kick_one, p);
    /* After this decrement only the last thread may touch the request, to wake the main
     * thread; the main thread frees it only after that wakeup has run. */
    if (atomic_fetch_sub(&r->remaining, 1) == 1)
        event_active(r->done, EV_TIMEOUT, 0);
}

/* ---- on the main thread ------------------------------------------------------------------- */

static void request_free(struct request *r)
{
    struct control *ctl = r->ctl;
    if (ctl->requests == r)
        ctl->requests = r->next;
    else
        r->prev->next = r->next;
    if (r->next)
        r->next->prev = r->prev;
    if (r->client)
        r->client->request = NULL;
    for (unsigned i = 0; i < r->n_parts; i++)
        evbuffer_free(r->parts[i].out);
    free(r->parts);
    event_free(r->done);
    free(r->account);
    free(r);
}

static void client_free(struct client *cl)
{
    struct control *ctl = cl->ctl;
    if (ctl->clients == cl)
        ctl->clients = cl->next;
    else
        cl->prev->next = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    ctl->n_clients--;
    if (cl->request)
        cl->request->client = NULL; /* its answer is dropped when it comes */
    /* Closing a Unix socket with unread input resets the connection, and the peer may lose
     * the answer: what a client sent beyond its request is read and dropped first. */
    char junk[4096];
    for (int i = 0; i < 64; i++)
        if (recv(bufferevent_getfd(cl->bev), junk, sizeof(junk), MSG_DONTWAIT) <= 0)
            break;
    bufferevent_free(cl->bev);
    event_free(cl->deadline);
    free(cl);
}

static void on_written(struct bufferevent *bev, void *arg)
{
    (void)bev;
    client_free(arg);
}

static void on_client_event(struct bufferevent *bev, short what, void *arg);

/* The answer is queued: close once it has left. */
static void send_answer(struct client *cl)
{
    bufferevent_disable(cl->bev, EV_READ);
    bufferevent_setcb(cl->bev, NULL, on_written, on_client_event, cl);
    bufferevent_enable(cl->bev, EV_WRITE);
}

static void answer_error(struct client *cl, const char *error)
{
    struct evbuffer *out = bufferevent_get_output(cl->bev);
    evbuffer_add(out, "{\"ok\":false,\"error\":", 20);
    json_string(out, error);
    evbuffer_add(out, "}\n", 2);
    send_answer(cl);
}

static void request_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct request *r = arg;
    struct client *cl = r->client;
    if (cl) {
        struct evbuffer *out = bufferevent_get_output(cl->bev);
        unsigned total = 0;
        evbuffer_add_printf(out, "{\"ok\":true,\"%s\":[",
                            r->kind == REQUEST_SESSIONS ? "sessions" : "ended");
        for (unsigned i = 0; i < r->n_parts; i++) {
            if (r->parts[i].count == 0)
                continue;
            if (total > 0)
                evbuffer_add(out, ",", 1);
            evbuffer_add_buffer(out, r->parts[i].out);
            total += r->parts[i].count;
        }
        evbuffer_add(out, "]}\n", 3);
        if (r->kind != REQUEST_SESSIONS)
            log_info("control socket: uid %u: %u session%s ended", (unsigned)cl->uid, total,
                     total == 1 ? "" : "s");
        cl->request = NULL;
        r->client = NULL;
        send_answer(cl);
    }
    request_free(r);
}

static void start_request(struct client *cl, enum request_kind kind, uint64_t id,
                          const char *account)
{
    struct control *ctl = cl->ctl;
    struct request *r = xcalloc(1, sizeof(*r));
    r->ctl = ctl;
    r->client = cl;
    r->kind = kind;
    r->id = id;
    r->account = account ? xstrdup(account) : NULL;
    r->uid = cl->uid;
    r->done = event_new(ctl->base, -1, 0, request_done, r);
    r->n_parts = ctl->n_threads;
    r->parts = xcalloc(r->n_parts, sizeof(*r->parts));
    atomic_init(&r->remaining, r->n_parts);
    r->next = ctl->requests;
    if (r->next)
        r->next->prev = r;
    ctl->requests = r;
    cl->request = r;
    for (unsigned i = 0; i < r->n_parts; i++)
        r->parts[i] = (struct part){.request = r, .list = &ctl->lists[i], .out = evbuffer_new()};
    for (unsigned i = 0; i < r->n_parts; i++)
        io_thread_post(ctl->threads[i], gather, &r->parts[i]);
}

/* "SESSIONS", "KICK <id>" or "KICK-ACCOUNT <name>"; the keyword in any ASCII case. */
static void handle_request(struct client *cl, char *line, size_t len)
{
    char shown[MAX_REQUEST + 1];
    size_t n = len < MAX_REQUEST ? len : MAX_REQUEST;
    for (size_t i = 0; i < n; i++) /* nothing the client sent may forge a log line */
        shown[i] = (unsigned char)line[i] < 0x20 || line[i] == 0x7f ? '?' : line[i];
    shown[n] = '\0';
    if (cl->refused) {
        log_warning("control socket: refused uid %u (pid %d): not root, not the server's user "
                    "and not in group %u: %s",
                    (unsigned)cl->uid, (int)cl->pid, (unsigned)cl->ctl->group, shown);
        answer_error(cl, "permission denied");
        return;
    }
    log_info("control socket: uid %u (pid %d): %s", (unsigned)cl->uid, (int)cl->pid, shown);
    if (len > MAX_REQUEST || strlen(line) != len) {
        answer_error(cl, "malformed request");
        return;
    }
    if (ascii_casecmp(line, "SESSIONS") == 0) {
        start_request(cl, REQUEST_SESSIONS, 0, NULL);
        return;
    }
    if (ascii_ncasecmp(line, "KICK ", 5) == 0) {
        const char *digits = line + 5;
        uint64_t id = 0;
        bool ok = digits[0] != '\0' && strlen(digits) <= 19;
        for (const char *d = digits; ok && *d; d++) {
            ok = *d >= '0' && *d <= '9';
            id = id * 10 + (uint64_t)(*d - '0');
        }
        if (!ok || id == 0) {
            answer_error(cl, "KICK takes a session id");
            return;
        }
        start_request(cl, REQUEST_KICK, id, NULL);
        return;
    }
    if (ascii_ncasecmp(line, "KICK-ACCOUNT ", 13) == 0) {
        const char *name = line + 13;
        bool ok = name[0] != '\0' && strlen(name) <= MAX_ACCOUNT;
        for (const char *ch = name; ok && *ch; ch++)
            ok = (unsigned char)*ch >= 0x20 && *ch != 0x7f;
        if (!ok) {
            answer_error(cl, "KICK-ACCOUNT takes an account name");
            return;
        }
        start_request(cl, REQUEST_KICK_ACCOUNT, 0, name);
        return;
    }
    answer_error(cl, "unknown request (SESSIONS, KICK id, KICK-ACCOUNT name)");
}

static void on_client_read(struct bufferevent *bev, void *arg)
{
    struct client *cl = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len;
    char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
    if (line == NULL) {
        if (evbuffer_get_length(in) > MAX_REQUEST)
            answer_error(cl, "request too long");
        return;
    }
    bufferevent_disable(bev, EV_READ);
    handle_request(cl, line, len);
    free(line);
}

static void on_client_event(struct bufferevent *bev, short what, void *arg)
{
    struct client *cl = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    /* A request without its line end, then the end of input, is a request too. */
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && cl->request == NULL && len > 0 &&
        len <= MAX_REQUEST) {
        char *line = xmalloc(len + 1);
        evbuffer_remove(in, line, len);
        line[len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        bufferevent_disable(bev, EV_READ);
        handle_request(cl, line, len);
        free(line);
        return;
    }
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && cl->request) {
        bufferevent_disable(bev, EV_READ); /* half-closed: the answer can still be sent */
        return;
    }
    client_free(cl);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct client *cl = arg;
    log_info("control socket: uid %u (pid %d): no request or answer within %d s, closed",
             (unsigned)cl->uid, (int)cl->pid, DEADLINE_S);
    client_free(cl);
}

/* The socket's mode is the access control; this repeats it so that a mode loosened by
 * mistake opens nothing: root, the server's own user, and members of the socket's group. */
static bool peer_allowed(const struct control *ctl, int fd, const struct ucred *peer)
{
    if (peer->uid == 0 || peer->uid == geteuid() || peer->gid == ctl->group)
        return true;
    socklen_t len = 0;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &len) < 0 && errno != ERANGE)
        return false;
    if (len == 0)
        return false;
    gid_t *groups = xmalloc(len);
    bool member = false;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
        for (size_t i = 0; i < len / sizeof(gid_t) && !member; i++)
            member = groups[i] == ctl->group;
    free(groups);
    return member;
}

/* Best effort: the answer, then what the client sent is dropped before the close (which would
 * otherwise reset the connection and could lose the answer). */
static void turn_away(int fd, const char *answer)
{
    char junk[4096];
    if (send(fd, answer, strlen(answer), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        /* posternctl is gone already */
    }
    shutdown(fd, SHUT_WR);
    for (int i = 0; i < 64; i++)
        if (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) <= 0)
            break;
    close(fd);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)evl;
    (void)sa;
    (void)salen;
    struct control *ctl = arg;
    struct ucred peer;
    socklen_t len = sizeof(peer);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0) {
        log_warning("control socket: no peer credentials: %s", strerror(errno));
        close(fd);
        return;
    }
    if (ctl->n_clients >= MAX_CLIENTS) {
        log_warning("control socket: uid %u (pid %d) turned away: %d requests running",
                    (unsigned)peer.uid, (int)peer.pid, MAX_CLIENTS);
        turn_away(fd, "{\"ok\":false,\"error\":\"busy, try again\"}\n");
        return;
    }
    struct bufferevent *bev = bufferevent_socket_new(ctl->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        close(fd);
        return;
    }
    struct client *cl = xcalloc(1, sizeof(*cl));
    /* A refused peer is told so after its request line (and the line is logged). */
    *cl = (struct client){.ctl = ctl,
                          .bev = bev,
                          .uid = peer.uid,
                          .pid = peer.pid,
                          .refused = !peer_allowed(ctl, fd, &peer)};
    cl->deadline = evtimer_new(ctl->base, on_deadline, cl);
    struct timeval tv = {.tv_sec = DEADLINE_S, .tv_usec = 0};
    evtimer_add(cl->deadline, &tv);
    cl->next = ctl->clients;
    if (cl->next)
        cl->next->prev = cl;
    ctl->clients = cl;
    ctl->n_clients++;
    /* Past the high-water mark nothing more is read: the line is either there or too long. */
    bufferevent_setwatermark(bev, EV_READ, 0, MAX_REQUEST + 2);
    bufferevent_setcb(bev, on_client_read, NULL, on_client_event, cl);
    bufferevent_enable(bev, EV_READ);
}

/* ---- creation and removal ----------------------------------------------------------------- */

/* Refuses what is not a socket and a socket some process still accepts on; removes the rest. */
static bool clear_path(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return true;
        snprintf(err, errlen, "ControlSocket %s: %s", path, strerror(errno));
        return false;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "ControlSocket %s exists and is not a socket; not removing it", path);
        return false;
    }
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "ControlSocket %s: socket: %s", path, strerror(errno));
        return false;
    }
    int rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    int e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN) {
        snprintf(err, errlen, "ControlSocket %s: another server is answering on it", path);
        return false;
    }
    if (e != ECONNREFUSED) {
        snprintf(err, errlen, "ControlSocket %s: cannot tell whether it is in use: %s", path,
                 strerror(e));
        return false;
    }
    if (unlink(path) < 0) {
        snprintf(err, errlen, "ControlSocket %s: cannot remove the stale socket: %s", path,
                 strerror(errno));
        return false;
    }
    log_info("control socket %s: removed a stale socket", path);
    return true;
}

/* A missing parent directory is created for User, so that User can remove the socket at stop;
 * one that exists is left as it is. */
static bool ensure_directory(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    bool ok = true;
    if (slash && slash != dir) {
        *slash = '\0';
        struct stat st;
        if (stat(dir, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "ControlSocket %s: %s is not a directory", path, dir);
                ok = false;
            }
        } else if (errno != ENOENT || mkdir(dir, 0755) < 0) {
            snprintf(err, errlen, "ControlSocket %s: directory %s: %s", path, dir, strerror(errno));
            ok = false;
        } else if (geteuid() == 0 && chown(dir, uid, gid) < 0) {
            snprintf(err, errlen, "ControlSocket %s: chown %s: %s", path, dir, strerror(errno));
            ok = false;
        }
    }
    free(dir);
    return ok;
}

struct control *control_open(const struct config *c, char *err, size_t errlen)
{
    err[0] = '\0';
    const char *path = c->control_socket;
    if (path == NULL)
        return NULL;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "ControlSocket %s: longer than %zu bytes", path,
                 sizeof(sun.sun_path) - 1);
        return NULL;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    /* The owner is the user the server runs as, so that it can remove the socket at stop. */
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (geteuid() == 0 && c->user) {
        const struct passwd *pw = getpwnam(c->user);
        if (pw == NULL) {
            snprintf(err, errlen, "User %s does not exist", c->user);
            return NULL;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    if (!ensure_directory(path, uid, gid, err, errlen) || !clear_path(path, err, errlen))
        return NULL;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "ControlSocket %s: socket: %s", path, strerror(errno));
        return NULL;
    }
    /* Born 0600 (no thread runs yet, so the umask is ours), then handed to User's group. */
    mode_t mask = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(mask);
    struct stat st;
    if (rc < 0 || (geteuid() == 0 && chown(path, uid, gid) < 0) || chmod(path, 0660) < 0 ||
        listen(fd, 16) < 0 || stat(path, &st) < 0) {
        snprintf(err, errlen, "ControlSocket %s: %s", path, strerror(errno));
        if (rc == 0)
            unlink(path);
        close(fd);
        return NULL;
    }
    struct control *ctl = xcalloc(1, sizeof(*ctl));
    ctl->path = xstrdup(path);
    ctl->fd = fd;
    ctl->dev = st.st_dev;
    ctl->ino = st.st_ino;
    ctl->group = st.st_gid; /* User's group, or the directory's if that is set-group-id */
    return ctl;
}

const char *control_path(const struct control *ctl)
{
    return ctl->path;
}

bool control_start(struct control *ctl, struct event_base *base, struct io_thread **threads,
                   struct conn_list *lists, unsigned n_threads)
{
    ctl->base = base;
    ctl->threads = threads;
    ctl->lists = lists;
    ctl->n_threads = n_threads;
    /* backlog 0: the socket listens already */
    ctl->evl = evconnlistener_new(base, on_accept, ctl,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, ctl->fd);
    if (ctl->evl == NULL)
        return false;
    ctl->fd = -1; /* the listener's now */
    log_info("control socket %s: posternctl sessions and kick", ctl->path);
    return true;
}

void control_stop(struct control *ctl)
{
    if (ctl == NULL || ctl->stopped)
        return;
    ctl->stopped = true;
    if (ctl->evl)
        evconnlistener_free(ctl->evl);
    ctl->evl = NULL;
    if (ctl->fd >= 0)
        close(ctl->fd);
    ctl->fd = -1;
    for (struct client *cl = ctl->clients, *next; cl; cl = next) {
        next = cl->next;
        client_free(cl);
    }
    /* Only our own socket: a server started since (after a stale-socket check) keeps its. */
    struct stat st;
    if (lstat(ctl->path, &st) == 0 && st.st_dev == ctl->dev && st.st_ino == ctl->ino &&
        unlink(ctl->path) < 0)
        log_info("control socket %s: cannot remove it (%s); the next start replaces it", ctl->path,
                 strerror(errno));
}

void control_free(struct control *ctl)
{
    if (ctl == NULL)
        return;
    control_stop(ctl);
    for (struct request *r = ctl->requests, *next; r; r = next) {
        next = r->next;
        request_free(r);
    }
    free(ctl->path);
    free(ctl);
}
