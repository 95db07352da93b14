/* io_thread: one libevent loop per thread, plus a cross-thread task queue feeding it. */
#include "postern/loop.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdlib.h>

#include "postern/log.h"
#include "postern/util.h"

struct task {
    task_fn fn;
    void *arg;
    struct task *next;
};

struct io_thread {
    unsigned index;
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct event *wakeup; /* activated from other threads to drain `queue` */
    pthread_mutex_t lock;
    struct task *head, *tail;
    bool stopping;
};

static void drain_queue(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct io_thread *t = arg;
    pthread_mutex_lock(&t->lock);
    struct task *list = t->head;
    t->head = t->tail = NULL;
    bool stopping = t->stopping;
    pthread_mutex_unlock(&t->lock);
    while (list) {
        struct task *next = list->next;
        list->fn(list->arg);
        free(list);
        list = next;
    }
    if (stopping)
        event_base_loopbreak(t->base);
}

struct io_thread *io_thread_new(unsigned index)
{
    struct io_thread *t = xcalloc(1, sizeof(*t));
    t->index = index;
    t->base = event_base_new();
    if (t->base == NULL) {
        free(t);
        return NULL;
    }
    t->wakeup = event_new(t->base, -1, 0, drain_queue, t);
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

static void *io_thread_main(void *arg)
{
    struct io_thread *t = arg;
    /* EVLOOP_NO_EXIT_ON_EMPTY: an idle thread keeps waiting for posted work. */
    event_base_loop(t->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

bool io_thread_start(struct io_thread *t)
{
    if (pthread_create(&t->thread, NULL, io_thread_main, t) != 0)
        return false;
    t->started = true;
    return true;
}

struct event_base *io_thread_base(struct io_thread *t)
{
    return t->base;
}

unsigned io_thread_index(const struct io_thread *t)
{
    return t->index;
}

void io_thread_post(struct io_thread *t, task_fn fn, void *arg)
{
    struct task *task = xmalloc(sizeof(*task));
    task->fn = fn;
    task->arg = arg;
    task->next = NULL;
    pthread_mutex_lock(&t->lock);
    if (t->tail)
        t->tail->next = task;
    else
        t->head = task;
    t->tail = task;
    pthread_mutex_unlock(&t->lock);
    event_active(t->wakeup, EV_READ, 0);
}

void io_thread_stop(struct io_thread *t)
{
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    pthread_mutex_unlock(&t->lock);
    event_active(t->wakeup, EV_READ, 0);
}

void io_thread_join_free(struct io_thread *t)
{
    if (t->started)
        pthread_join(t->thread, NULL);
    /* Tasks posted after the loop ended (late worker replies) still run, so that their
     * memory is released. */
    drain_queue(-1, 0, t);
    event_free(t->wakeup);
    event_base_free(t->base);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* ---- worker pool -------------------------------------------------------------------------- */

struct job {
    task_fn work, done;
    void *arg;
    struct io_thread *reply_to;
    struct job *next;
};

struct worker_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *head, *tail;
    unsigned queued, queue_max;
    unsigned n_threads;
    pthread_t *threads;
    bool stopping;
};

static void *worker_main(void *arg)
{
    struct worker_pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (p->head == NULL && !p->stopping)
            pthread_cond_wait(&p->cond, &p->lock);
        struct job *job = p->head;
        if (job == NULL) { /* stopping and drained */
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        p->head = job->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->lock);
        job->work(job->arg);
        io_thread_post(job->reply_to, job->done, job->arg);
        free(job);
    }
}

struct worker_pool *worker_pool_new(unsigned threads, unsigned queue_max)
{
    struct worker_pool *p = xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->queue_max = queue_max;
    p->threads = xcalloc(threads, sizeof(pthread_t));
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            log_error("cannot start worker thread %u of %u", i + 1, threads);
            break;
        }
        p->n_threads++;
    }
    if (p->n_threads == 0) {
        worker_pool_free(p);
        return NULL;
    }
    return p;
}

bool worker_submit(struct worker_pool *p, struct io_thread *reply_to, task_fn work, task_fn done,
                   void *arg)
{
    pthread_mutex_lock(&p->lock);
    if (p->stopping || p->queued >= p->queue_max) {
        pthread_mutex_unlock(&p->lock);
        return false;
    }
    struct job *job = xmalloc(sizeof(*job));
    *job = (struct job){.work = work, .done = done, .arg = arg, .reply_to = reply_to};
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    p->queued++;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return true;
}

/* Finishes the queued jobs (their replies go to io_threads that must still exist), then joins. */
void worker_pool_free(struct worker_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
