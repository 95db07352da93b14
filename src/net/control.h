/* Private to src/net: the control socket that posternctl sessions and kick talk to. */
#ifndef POSTERN_CONTROL_H
#define POSTERN_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "postern/config.h"

struct conn_list;
struct event_base;
struct io_thread;

struct control;

/* Before the privilege drop: refuses a path that is not a socket and a socket another server
 * still answers on, removes a stale one, creates a missing parent directory (for User), binds,
 * and gives the socket to User and User's group with mode 0660. NULL with `err` empty when
 * ControlSocket is none; NULL with `err` set on failure. */
struct control *control_open(const struct config *c, char *err, size_t errlen);
/* Serves requests on the main thread's loop; each request visits every io_thread's
 * connection list on that thread (io_thread_post) and is answered once all have replied. */
bool control_start(struct control *ctl, struct event_base *base, struct io_thread **threads,
                   struct conn_list *lists, unsigned n_threads);
const char *control_path(const struct control *ctl);
/* The main loop has ended: stop accepting, drop the clients, remove the socket. */
void control_stop(struct control *ctl);
/* Once no io_thread runs any more (their tasks refer to pending requests): free the rest. */
void control_free(struct control *ctl);

#endif
