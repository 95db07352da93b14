/* The server: listeners on the main thread, connections spread over io_threads, reload, stop. */
#ifndef POSTERN_SERVER_H
#define POSTERN_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "postern/config.h"

struct server;
struct tls_creds;

/* Binds every listener of `c` (needs privileges for ports < 1024). */
struct server *server_new(struct config *c, struct tls_creds *creds, char *err, size_t errlen);
/* Starts the io_threads and worker pool; runs the main loop until SIGTERM/SIGINT. SIGHUP
 * reloads the configuration file and certificates. `ready` is called once serving. */
int server_run(struct server *s, void (*ready)(void *), void *arg);
void server_free(struct server *s);

#endif
