/* IMAP IDLE (RFC 2177): a watch of the selected mailbox on the I/O thread's one inotify
 * instance (a store_notifier, shared by the thread's sessions); each wake-up syncs on a store
 * worker and sends the untagged updates. Without a watch the mailbox is polled every second.
 * While it waits the session holds no descriptor but its socket (store_park). */
#include <event2/buffer.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "postern/log.h"
#include "postern/loop.h"
#include "postern/util.h"
#include "session_internal.h"

#define POLL_MS 1000
#define DONE_LINE_MAX 1024

struct idle_job {
    struct imap_job job;
    bool first;
    struct store_notifier *notifier; /* the I/O thread's (a reference), or NULL: poll */
    struct store_watch *watch;       /* added by the first run; NULL: poll */
};

struct imap_idle {
    char *tag;
    struct idle_job *job; /* NULL in the authenticated state (nothing to watch) */
    bool running;         /* the job is on a worker */
    bool ended;           /* DONE (or another line) came while it was */
    bool ended_done;      /* ... and it was DONE */
    unsigned generation;  /* poll timers of an earlier IDLE do nothing */
};

/* A poll timer, tied to one IDLE. */
struct poll_tick {
    struct imap_session *s;
    unsigned generation;
};

void imap_idle_free(struct imap_session *s)
{
    struct imap_idle *idle = s->idle;
    if (idle == NULL)
        return;
    if (idle->job && !idle->running)
        imap_job_free(&idle->job->job);
    free(idle->tag);
    free(idle);
    s->idle = NULL;
}

/* IDLE ends with its tagged answer; the session reads commands again. */
static void end_idle(struct imap_session *s, bool done)
{
    char *tag = xstrdup(s->idle->tag);
    imap_idle_free(s);
    if (done)
        imap_reply(s, tag, "OK", "IDLE terminated");
    else
        imap_bad_command(s, tag, "Expected DONE to end IDLE");
    free(tag);
    imap_command_done(s);
}

/* --- the I/O thread's notifier --- */

struct thread_notifier {
    struct store_notifier *notifier;
    struct event *ev;
};

static pthread_key_t notifier_key;
static pthread_once_t notifier_once = PTHREAD_ONCE_INIT;

/* When the I/O thread ends (its event base still exists then); watches still held by
 * sessions freed later keep the notifier itself alive. */
static void thread_notifier_free(void *arg)
{
    struct thread_notifier *tn = arg;
    event_free(tn->ev);
    store_notifier_release(tn->notifier);
    free(tn);
}

static void make_key(void)
{
    pthread_key_create(&notifier_key, thread_notifier_free);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    store_notifier_dispatch(((struct thread_notifier *)arg)->notifier);
}

/* The notifier of the thread the connection runs on, made at its first IDLE; NULL if inotify
 * is unavailable (then sessions poll). */
static struct store_notifier *thread_notifier(struct conn *c)
{
    pthread_once(&notifier_once, make_key);
    struct thread_notifier *tn = pthread_getspecific(notifier_key);
    if (tn != NULL)
        return tn->notifier;
    struct store_notifier *n = store_notifier_new();
    if (n == NULL) {
        log_warning("IDLE: no inotify instance, sessions poll: %s", store_last_error());
        return NULL;
    }
    tn = xcalloc(1, sizeof(*tn));
    tn->notifier = n;
    tn->ev = event_new(io_thread_base(conn_io_thread(c)), store_notifier_fd(n),
                       EV_READ | EV_PERSIST, on_notify, tn);
    if (tn->ev == NULL || event_add(tn->ev, NULL) < 0 ||
        pthread_setspecific(notifier_key, tn) != 0) {
        if (tn->ev)
            event_free(tn->ev);
        store_notifier_release(n);
        free(tn);
        return NULL;
    }
    return n;
}

static void wake(void *arg);

static void idle_work(struct imap_job *j)
{
    struct idle_job *ij = (struct idle_job *)j;
    if (ij->first) {
        ij->first = false;
        /* before the sync, so that no change after it goes unnoticed */
        if (ij->notifier != NULL && j->mailbox != NULL)
            ij->watch = store_watch_add(ij->notifier, j->mailbox, wake, j->s);
        if (ij->notifier != NULL && ij->watch == NULL)
            log_warning("conn %llu: IDLE polls %s: %s", (unsigned long long)j->conn_id,
                        store_mailbox_name(j->mailbox), store_last_error());
    }
    job_sync(j, true);
    if (j->mailbox != NULL)
        store_park(j->mailbox); /* the session waits now */
}

/* On the I/O thread, when the job is freed. */
static void idle_release(struct imap_job *j)
{
    struct idle_job *ij = (struct idle_job *)j;
    store_watch_remove(ij->watch);
    store_notifier_release(ij->notifier);
}

static void poll_fire(void *arg)
{
    struct poll_tick *t = arg;
    if (t->s->idle && t->s->idle->generation == t->generation)
        wake(t->s);
    free(t);
}

static void wake_later(struct imap_session *s, unsigned ms)
{
    struct poll_tick *t = xmalloc(sizeof(*t));
    *t = (struct poll_tick){.s = s, .generation = s->idle->generation};
    conn_defer(s->conn, ms, poll_fire, t);
}

static void arm(struct imap_session *s)
{
    struct store_watch *w = s->idle->job->watch;
    if (w == NULL)
        wake_later(s, POLL_MS);
    else if (store_watch_arm(w)) /* changed while the sync ran; not from inside job_done */
        wake_later(s, 0);
}

static void idle_finish(struct imap_job *j)
{
    struct imap_session *s = j->s;
    struct imap_idle *idle = s->idle;
    if (idle == NULL)
        return; /* already ended (the connection is closing) */
    idle->running = false;
    if (conn_is_closing(s->conn)) {
        idle->job = NULL; /* freed by job_done */
        return;
    }
    if (idle->ended) {
        char *tag = xstrdup(idle->tag);
        bool done = idle->ended_done;
        idle->job = NULL;
        imap_idle_free(s);
        if (done)
            imap_reply(s, tag, "OK", "IDLE terminated");
        else
            imap_bad_command(s, tag, "Expected DONE to end IDLE");
        free(tag);
        return; /* job_done frees the job and ends the command */
    }
    j->keep = true;
    arm(s);
    conn_pause_input(s->conn, false); /* DONE */
}

static void wake(void *arg)
{
    struct imap_session *s = arg;
    struct imap_idle *idle = s->idle;
    if (conn_is_closing(s->conn) || idle == NULL || idle->job == NULL || idle->running)
        return;
    idle->running = true;
    imap_job_resubmit(&idle->job->job);
}

void cmd_idle(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->n_args != 0) {
        imap_bad_command(s, cmd->tag, "Unexpected arguments");
        return;
    }
    struct imap_idle *idle = xcalloc(1, sizeof(*idle));
    idle->tag = xstrdup(cmd->tag);
    idle->generation = ++s->idle_generation;
    s->idle = idle;
    s->busy = true;
    conn_printf(s->conn, "+ idling\r\n");
    if (s->selected == NULL)
        return; /* the authenticated state: nothing changes that IDLE reports */
    struct idle_job *ij = imap_job_new(s, cmd->tag, sizeof(*ij), idle_work);
    ij->first = true;
    ij->notifier = thread_notifier(s->conn);
    if (ij->notifier != NULL)
        store_notifier_ref(ij->notifier);
    ij->job.finish = idle_finish;
    ij->job.release = idle_release;
    idle->job = ij;
    idle->running = true;
    if (!imap_job_submit(&ij->job)) { /* answered NO; the job is gone */
        idle->job = NULL;
        imap_idle_free(s);
    }
}

void imap_idle_input(struct imap_session *s)
{
    /* after DONE the rest waits for the answer; it is the next commands */
    while (s->idle && !s->idle->ended && !conn_is_closing(s->conn)) {
        char *line = NULL;
        size_t len = 0;
        int r = conn_take_line(s->conn, DONE_LINE_MAX, &line, &len);
        if (r == 0)
            return;
        bool done = r > 0 && len == 4 && ascii_ncasecmp(line, "DONE", 4) == 0;
        free(line);
        if (!s->idle->running) {
            end_idle(s, done);
            return;
        }
        /* answered when the running sync has finished: its updates come first */
        s->idle->ended = true;
        s->idle->ended_done = done;
        return;
    }
}
