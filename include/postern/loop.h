/* Event-loop threads and the worker pool.
 *
 * Guarantees: an io_thread runs one libevent loop and nothing on it blocks; io_thread_post()
 * may be called from any thread and runs the function on the target loop, in posting order.
 * worker_submit() runs `work` on one of a bounded set of worker threads (where blocking calls
 * such as LDAP, GSS-API and helper pipes belong) and then `done` on the io_thread named in the
 * call, so connection state is only ever touched by its own io_thread. */
#ifndef POSTERN_LOOP_H
#define POSTERN_LOOP_H

#include <stdbool.h>

struct event_base;
struct io_thread;
struct worker_pool;

typedef void (*task_fn)(void *arg);

struct io_thread *io_thread_new(unsigned index);
bool io_thread_start(struct io_thread *t);
struct event_base *io_thread_base(struct io_thread *t);
unsigned io_thread_index(const struct io_thread *t);
void io_thread_post(struct io_thread *t, task_fn fn, void *arg);
/* Ask the loop to stop once it has run what is queued; then join and free. */
void io_thread_stop(struct io_thread *t);
void io_thread_join_free(struct io_thread *t);

struct worker_pool *worker_pool_new(unsigned threads, unsigned queue_max);
/* False when the queue is full (the caller refuses the request as temporarily unavailable). */
bool worker_submit(struct worker_pool *p, struct io_thread *reply_to, task_fn work, task_fn done,
                   void *arg);
void worker_pool_free(struct worker_pool *p);

#endif
