/* posternctl's side of posternd's control socket (src/net/control.c): one request line, one
 * JSON answer. */
#ifndef POSTERN_CLI_CONTROL_CLIENT_H
#define POSTERN_CLI_CONTROL_CLIENT_H

#include <jansson.h>

#include "cli.h"

/* Sends `request` to the socket that the configuration's ControlSocket names and returns the
 * answer when it says "ok". Otherwise prints why (server not running, permission denied, the
 * server's error) and returns NULL with *status set to a cli_status. */
json_t *control_ask(const struct cli *cli, const char *request, int *status);

#endif
