/* IMAP IDLE (RFC 2177): the selected mailbox's inotify watch (store_watch_fd) in the I/O
 * thread's event loop; each wake-up syncs on a store worker and sends the untagged updates.
 * Without a watch the mailbox is polled every second. */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "postern/util.h"
#include "session_internal.h"

#define POLL_MS 1000
#define DONE_LINE_MAX 1024

struct idle_job {
    struct imap_job job;
    bool first;
    int fd; /* the watch, from the first run; -1: poll */
};

struct imap_idle {
    char *tag;
    struct idle_job *job; /* NULL in the authenticated state (nothing to watch) */
    struct conn_watch *watch;
    bool running;        /* the job is on a worker */
    bool ended;          /* DONE (or another line) came while it was */
    bool ended_done;     /* ... and it was DONE */
    unsigned generation; /* poll timers of an earlier IDLE do nothing */
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
    conn_watch_free(idle->watch);
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

static void idle_work(struct imap_job *j)
{
    struct idle_job *ij = (struct idle_job *)j;
    if (ij->first) {
        ij->first = false;
        ij->fd = store_watch_fd(j->mailbox);
    }
    if (ij->fd >= 0)
        store_watch_drain(j->mailbox);
    job_sync(j, true);
    store_watch_trim(j->mailbox); /* the session waits now */
}

static void wake(void *arg);

static void poll_fire(void *arg)
{
    struct poll_tick *t = arg;
    if (t->s->idle && t->s->idle->generation == t->generation)
        wake(t->s);
    free(t);
}

static void poll_later(struct imap_session *s)
{
    struct poll_tick *t = xmalloc(sizeof(*t));
    *t = (struct poll_tick){.s = s, .generation = s->idle->generation};
    conn_defer(s->conn, POLL_MS, poll_fire, t);
}

static void arm(struct imap_session *s)
{
    struct imap_idle *idle = s->idle;
    int fd = idle->job->fd;
    if (fd >= 0 && idle->watch == NULL)
        idle->watch = conn_watch_new(s->conn, fd, wake, s);
    else if (fd >= 0)
        conn_watch_arm(idle->watch);
    if (fd < 0 || idle->watch == NULL)
        poll_later(s);
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
    ij->fd = -1;
    ij->job.finish = idle_finish;
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
