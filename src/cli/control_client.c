/* posternctl's side of the control socket: connect, send one request line, read the answer. */
#include "control_client.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "postern/util.h"

#define ANSWER_TIMEOUT_MS 15000
#define MAX_ANSWER ((size_t)256 * 1024 * 1024)

static void permission_denied(const struct cli *cli, const char *path)
{
    cli_error(cli,
              "permission denied on %s: run as root, as the server's User, or as a member of "
              "the socket's group",
              path);
}

static int connect_to(const struct cli *cli, const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sun.sun_path)) {
        cli_error(cli, "ControlSocket %s: path too long", path);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        cli_error(cli, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
        return fd;
    int e = errno;
    close(fd);
    if (e == ENOENT)
        cli_error(cli, "posternd is not running (no control socket %s)", path);
    else if (e == ECONNREFUSED)
        cli_error(cli, "posternd is not running (%s is left over from an earlier run)", path);
    else if (e == EACCES || e == EPERM)
        permission_denied(cli, path);
    else
        cli_error(cli, "cannot connect to %s: %s", path, strerror(e));
    return -1;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Everything up to the server's close, within ANSWER_TIMEOUT_MS. */
static char *read_answer(const struct cli *cli, int fd, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, ANSWER_TIMEOUT_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            cli_error(cli, "posternd did not answer within %d s", ANSWER_TIMEOUT_MS / 1000);
            break;
        }
        if (r < 0) {
            cli_error(cli, "poll: %s", strerror(errno));
            break;
        }
        if (n == cap) {
            if (cap >= MAX_ANSWER) {
                cli_error(cli, "the answer is larger than %zu bytes", MAX_ANSWER);
                break;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t got = recv(fd, buf + n, cap - n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            cli_error(cli, "reading the answer: %s", strerror(errno));
            break;
        }
        if (got == 0) {
            *len = n;
            return buf;
        }
        n += (size_t)got;
    }
    free(buf);
    return NULL;
}

json_t *control_ask(const struct cli *cli, const char *request, int *status)
{
    *status = CLI_ERROR;
    const char *path = cli->config->control_socket;
    if (path == NULL) {
        cli_error(cli, "%s says ControlSocket none: the server has no control socket",
                  cli->config_path);
        return NULL;
    }
    int fd = connect_to(cli, path);
    if (fd < 0)
        return NULL;
    size_t len = 0;
    /* A server that turns us away answers and closes at once, perhaps before the request has
     * left: its answer is still there to read. */
    bool sent = send_all(fd, request, strlen(request)) && send_all(fd, "\n", 1);
    int send_errno = errno;
    char *text = read_answer(cli, fd, &len);
    close(fd);
    if (text && len == 0 && !sent) {
        free(text);
        text = NULL;
        cli_error(cli, "sending the request to %s: %s", path, strerror(send_errno));
    }
    if (text == NULL)
        return NULL;
    json_error_t jerr;
    json_t *answer = json_loadb(text, len, 0, &jerr);
    free(text);
    if (answer == NULL || !json_is_object(answer)) {
        cli_error(cli, "posternd's answer is not a JSON object%s%s", answer ? "" : ": ",
                  answer ? "" : jerr.text);
        json_decref(answer);
        return NULL;
    }
    if (!json_is_true(json_object_get(answer, "ok"))) {
        const char *why = json_string_value(json_object_get(answer, "error"));
        if (why && strcmp(why, "permission denied") == 0)
            permission_denied(cli, path);
        else
            cli_error(cli, "posternd: %s", why ? why : "request failed");
        json_decref(answer);
        return NULL;
    }
    *status = CLI_OK;
    return answer;
}
