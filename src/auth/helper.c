/* A pool of long-lived Samba ntlm_auth helpers (squid-2.5-ntlmssp) on non-blocking pipes. One
 * helper serves one NTLM exchange from NEGOTIATE to AUTHENTICATE (it keeps the challenge), so a
 * helper is leased for an exchange and goes back idle afterwards; one that exits, says BH or
 * does not answer in time is ended and replaced by a new one at the next lease (Dovecot's
 * mech-winbind restarts the same way, but blocks; here only workers wait, bounded by poll). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "postern/log.h"
#include "postern/sso.h"
#include "postern/util.h"

extern char **environ;

#define REPLY_MAX 65536 /* a CHALLENGE is a few hundred bytes; anything this long is broken */

struct helper {
    pid_t pid;
    int to_fd, from_fd; /* its stdin, its stdout; ours are non-blocking and close-on-exec */
    char *buf;          /* bytes read past the last reply line */
    size_t len;
    struct helper *next;
};

struct helper_pool {
    pthread_mutex_t lock;
    pthread_cond_t released; /* a helper went back idle, or a place to start one is free */
    unsigned waiting;        /* workers waiting in helper_lease() */
    char **argv;
    unsigned max, timeout_ms;
    unsigned running; /* leased + idle */
    struct helper *idle;
    pid_t *ended; /* helpers signalled but not yet reaped */
    size_t n_ended, cap_ended;
};

struct helper_pool *helper_pool_new(const struct ntlm_settings *n)
{
    struct helper_pool *p = xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->released, NULL);
    p->argv = xcalloc(n->n_helper_options + 3, sizeof(char *));
    p->argv[0] = xstrdup(n->helper);
    p->argv[1] = xstrdup("--helper-protocol=squid-2.5-ntlmssp");
    for (size_t i = 0; i < n->n_helper_options; i++)
        p->argv[2 + i] = xstrdup(n->helper_options[i]);
    p->max = n->max_helpers ? n->max_helpers : 1;
    p->timeout_ms = (n->helper_timeout ? n->helper_timeout : 10) * 1000u;
    return p;
}

pid_t helper_pid(const struct helper *h)
{
    return h->pid;
}

/* Reaps what has exited; with `wait_ms`, waits that long and then kills the rest. */
static void reap(struct helper_pool *p, unsigned wait_ms)
{
    uint64_t deadline = now_ms() + wait_ms;
    for (;;) {
        size_t keep = 0;
        for (size_t i = 0; i < p->n_ended; i++)
            if (waitpid(p->ended[i], NULL, WNOHANG) == 0)
                p->ended[keep++] = p->ended[i];
        p->n_ended = keep;
        if (keep == 0 || wait_ms == 0)
            return;
        if (now_ms() >= deadline) {
            for (size_t i = 0; i < p->n_ended; i++) {
                kill(p->ended[i], SIGKILL);
                waitpid(p->ended[i], NULL, 0);
            }
            p->n_ended = 0;
            return;
        }
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
}

/* Closing its stdin is how a squid helper is told to exit; a helper that misbehaved gets
 * SIGTERM too. Caller holds the lock. */
static void end_helper(struct helper_pool *p, struct helper *h, bool signal_it)
{
    if (signal_it)
        kill(h->pid, SIGTERM);
    close(h->to_fd);
    close(h->from_fd);
    if (p->n_ended == p->cap_ended) {
        p->cap_ended = p->cap_ended ? 2 * p->cap_ended : 8;
        p->ended = xrealloc(p->ended, p->cap_ended * sizeof(pid_t));
    }
    p->ended[p->n_ended++] = h->pid;
    p->running--;
    pthread_cond_signal(&p->released);
    free(h->buf);
    free(h);
}

/* The last reference to a pool may go on an I/O thread: the helpers (told to exit by EOF) are
 * waited for on a thread of their own. */
static void *reaper(void *arg)
{
    struct helper_pool *p = arg;
    reap(p, 2000);
    for (size_t i = 0; p->argv[i]; i++)
        free(p->argv[i]);
    free(p->argv);
    free(p->ended);
    pthread_cond_destroy(&p->released);
    pthread_mutex_destroy(&p->lock);
    free(p);
    return NULL;
}

void helper_pool_free(struct helper_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    while (p->idle) {
        struct helper *h = p->idle;
        p->idle = h->next;
        end_helper(p, h, false);
    }
    reap(p, 0);
    bool wait = p->n_ended > 0;
    pthread_mutex_unlock(&p->lock);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (!wait || pthread_create(&t, &attr, reaper, p) != 0)
        reaper(p); /* nothing to wait for (or no thread): at once */
    pthread_attr_destroy(&attr);
}

static struct helper *spawn_helper(struct helper_pool *p)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return NULL;
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        return NULL;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    /* dup2 clears close-on-exec on the copies: the helper gets exactly stdin and stdout */
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, p->argv[0], &fa, &attr, p->argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(in[0]);
    close(out[1]);
    if (rc != 0) {
        log_warning("ntlm: cannot start %s: %s", p->argv[0], strerror(rc));
        close(in[1]);
        close(out[0]);
        return NULL;
    }
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    struct helper *h = xcalloc(1, sizeof(*h));
    h->pid = pid;
    h->to_fd = in[1];
    h->from_fd = out[0];
    log_debug("ntlm: helper %s started (pid %ld)", p->argv[0], (long)pid);
    return h;
}

struct helper *helper_lease(struct helper_pool *p, unsigned wait_ms, unsigned max_waiters)
{
    pthread_mutex_lock(&p->lock);
    reap(p, 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(wait_ms / 1000);
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    struct helper *h = NULL;
    for (;;) {
        if ((h = p->idle) != NULL) {
            p->idle = h->next;
            h->next = NULL;
            /* an idle helper has nothing to say: output or a hang-up means it died (or was
             * killed) meanwhile */
            struct pollfd pfd = {.fd = h->from_fd, .events = POLLIN};
            if (poll(&pfd, 1, 0) != 0) {
                log_warning("ntlm: idle helper pid %ld has exited", (long)h->pid);
                end_helper(p, h, true);
                h = NULL;
                continue;
            }
            break;
        }
        if (p->running < p->max) {
            h = spawn_helper(p);
            if (h)
                p->running++;
            break;
        }
        /* Every helper serves an exchange whose client is answering its CHALLENGE, usually
         * within a round trip: wait a little, but never with so many workers that the
         * AUTHENTICATE steps (which release helpers) find none to run on. */
        if (p->waiting >= max_waiters)
            break;
        p->waiting++;
        int rc = pthread_cond_timedwait(&p->released, &p->lock, &until);
        p->waiting--;
        if (rc != 0)
            break;
    }
    unsigned running = p->running;
    pthread_mutex_unlock(&p->lock);
    if (h == NULL)
        log_warning("ntlm: no helper free (%u running, Helpers %u)", running, p->max);
    return h;
}

void helper_release(struct helper_pool *p, struct helper *h, bool reusable)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    if (reusable && h->len == 0) {
        h->next = p->idle;
        p->idle = h;
        pthread_cond_signal(&p->released);
    } else {
        end_helper(p, h, true);
        reap(p, 0);
    }
    pthread_mutex_unlock(&p->lock);
}

static int remaining(uint64_t deadline)
{
    uint64_t now = now_ms();
    return now >= deadline ? 0 : (int)(deadline - now);
}

bool helper_ask(struct helper_pool *p, struct helper *h, const char *request, char **reply)
{
    *reply = NULL;
    uint64_t deadline = now_ms() + p->timeout_ms;
    size_t len = strlen(request) + 1, sent = 0;
    char *line = xmalloc(len + 1);
    snprintf(line, len + 1, "%s\n", request);
    while (sent < len) {
        ssize_t n = write(h->to_fd, line + sent, len - sent);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        struct pollfd pfd = {.fd = h->to_fd, .events = POLLOUT};
        if (n < 0 && errno == EAGAIN && poll(&pfd, 1, remaining(deadline)) > 0 &&
            !(pfd.revents & (POLLERR | POLLHUP)))
            continue;
        log_warning("ntlm: helper pid %ld does not take requests (%s)", (long)h->pid,
                    n < 0 && errno != EAGAIN ? strerror(errno) : "timed out");
        free(line);
        return false;
    }
    free(line);
    for (;;) {
        char *nl = h->len ? memchr(h->buf, '\n', h->len) : NULL;
        if (nl) {
            size_t l = (size_t)(nl - h->buf);
            *reply = xstrndup(h->buf, l);
            memmove(h->buf, nl + 1, h->len - l - 1);
            h->len -= l + 1;
            return true;
        }
        if (h->len >= REPLY_MAX) {
            log_warning("ntlm: helper pid %ld wrote a line longer than %d bytes", (long)h->pid,
                        REPLY_MAX);
            return false;
        }
        struct pollfd pfd = {.fd = h->from_fd, .events = POLLIN};
        int wait = remaining(deadline);
        int ready = wait > 0 ? poll(&pfd, 1, wait) : 0;
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0) {
            log_warning("ntlm: helper pid %ld gave no answer within %u ms", (long)h->pid,
                        p->timeout_ms);
            return false;
        }
        if (h->buf == NULL)
            h->buf = xmalloc(REPLY_MAX + 1);
        ssize_t n = read(h->from_fd, h->buf + h->len, REPLY_MAX - h->len);
        if (n > 0) {
            h->len += (size_t)n;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            log_warning("ntlm: helper pid %ld exited", (long)h->pid);
            return false;
        }
    }
}
