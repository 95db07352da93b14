/* posternctl kick: end one session of the running server, or every session of an account,
 * through its control socket (docs/posternctl.8). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "control_client.h"

static bool is_session_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 19 || strspn(s, "0123456789") != n)
        return false;
    return strspn(s, "0") != n; /* 0 is no session */
}

static bool is_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

int cli_kick(struct cli *cli)
{
    const char *id = NULL, *account = NULL;
    for (int i = 1; i < cli->argc; i++) {
        if (strcmp(cli->argv[i], "--account") == 0 && i + 1 < cli->argc && account == NULL) {
            account = cli->argv[++i];
        } else if (cli->argv[i][0] != '-' && id == NULL) {
            id = cli->argv[i];
        } else {
            cli_error(cli, "unknown argument '%s'", cli->argv[i]);
            return CLI_USAGE;
        }
    }
    if ((id == NULL) == (account == NULL)) {
        cli_error(cli, "usage: kick SESSION-ID | kick --account NAME");
        return CLI_USAGE;
    }
    if (id && !is_session_id(id)) {
        cli_error(cli, "'%s' is not a session id (see posternctl sessions)", id);
        return CLI_USAGE;
    }
    if (account && (account[0] == '\0' || strlen(account) > 256 || !is_printable(account))) {
        cli_error(cli, "--account: not an account name");
        return CLI_USAGE;
    }
    char request[300];
    snprintf(request, sizeof(request), id ? "KICK %s" : "KICK-ACCOUNT %s", id ? id : account);
    int status;
    json_t *answer = control_ask(cli, request, &status);
    if (answer == NULL)
        return status;
    const json_t *ended = json_object_get(answer, "ended");
    size_t n = json_array_size(ended);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(ended, i);
        const char *who = json_string_value(json_object_get(s, "account"));
        printf("ended session %lld: %s from %s:%lld%s%s\n",
               (long long)json_integer_value(json_object_get(s, "id")),
               json_string_value(json_object_get(s, "protocol")),
               json_string_value(json_object_get(s, "client")),
               (long long)json_integer_value(json_object_get(s, "client_port")),
               who ? ", account " : " (not logged in)", who ? who : "");
    }
    json_decref(answer);
    if (n > 0)
        return CLI_OK;
    if (id) {
        cli_error(cli, "no session %s (see posternctl sessions)", id);
        return CLI_ERROR;
    }
    printf("no session of account %s\n", account);
    return CLI_OK;
}
