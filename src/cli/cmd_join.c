/* posternctl join: make postern a member of an Active Directory domain with adcli (docs/join.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "postern/util.h"

extern char **environ;

#define MAX_HOSTS 16

struct join_request {
    const char *domain, *realm, *dc, *computer, *user, *keytab, *adcli;
    const char *hosts[MAX_HOSTS];
    size_t n_hosts;
};

/* Runs adcli (stdin, the administrator's password, is passed on); its exit status. */
static int run(char *const argv[])
{
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
    if (rc != 0) {
        fprintf(stderr, "posternctl join: cannot run %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *arg(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 4;
    char *s = xmalloc(n);
    snprintf(s, n, "--%s=%s", name, value);
    return s;
}

static int parse(struct cli *cli, struct join_request *q)
{
    const struct config *c = cli->config;
    *q = (struct join_request){.computer = NULL,
                               .user = "Administrator",
                               .adcli = "/usr/sbin/adcli",
                               .keytab = c && c->kerberos.keytab ? c->kerberos.keytab : NULL};
    for (int i = 1; i < cli->argc; i++) {
        const char *a = cli->argv[i], *v = i + 1 < cli->argc ? cli->argv[i + 1] : NULL;
        const char **slot = strcmp(a, "--domain") == 0          ? &q->domain
                            : strcmp(a, "--realm") == 0         ? &q->realm
                            : strcmp(a, "--dc") == 0            ? &q->dc
                            : strcmp(a, "--computer-name") == 0 ? &q->computer
                            : strcmp(a, "--user") == 0          ? &q->user
                            : strcmp(a, "--keytab") == 0        ? &q->keytab
                            : strcmp(a, "--adcli") == 0         ? &q->adcli
                                                                : NULL;
        if (strcmp(a, "--host") == 0 && v) {
            if (q->n_hosts == MAX_HOSTS) {
                cli_error(cli, "at most %d --host", MAX_HOSTS);
                return CLI_USAGE;
            }
            q->hosts[q->n_hosts++] = v;
            i++;
        } else if (slot && v) {
            *slot = v;
            i++;
        } else {
            cli_error(cli, "unknown or incomplete option '%s'", a);
            return CLI_USAGE;
        }
    }
    /* the kerberos block's host names serve when none are given */
    if (q->n_hosts == 0 && c)
        for (size_t i = 0; i < c->kerberos.n_host_names && i < MAX_HOSTS; i++)
            q->hosts[q->n_hosts++] = c->kerberos.host_names[i];
    if (q->domain == NULL && c && c->directory.domain)
        q->domain = c->directory.domain;
    if (q->domain == NULL || q->n_hosts == 0 || q->keytab == NULL) {
        cli_error(cli, "needs --domain, --host (or HostName) and --keytab (or a kerberos "
                       "block's Keytab)");
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_join(struct cli *cli)
{
    struct join_request q;
    int st = parse(cli, &q);
    if (st != CLI_OK)
        return st;
    /* adcli writes a new keytab beside the old one; it replaces the old one only when the
     * join worked and the file belongs to the service user. */
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.join", q.keytab);
    unlink(tmp);
    char *argv[20 + 2 * MAX_HOSTS];
    size_t n = 0;
    argv[n++] = (char *)q.adcli;
    argv[n++] = "join";
    argv[n++] = arg("domain", q.domain);
    if (q.realm)
        argv[n++] = arg("domain-realm", q.realm);
    if (q.dc)
        argv[n++] = arg("domain-controller", q.dc);
    if (q.computer)
        argv[n++] = arg("computer-name", q.computer);
    argv[n++] = arg("host-fqdn", q.hosts[0]);
    argv[n++] = "--service-name=imap"; /* RFC 3501 §6.2.2 */
    argv[n++] = "--service-name=pop";  /* RFC 5034 §4 (not "pop3") */
    /* Further names (load-balanced front ends) get their SPNs now, while adcli acts as the
     * administrator: AD lets a computer account itself set SPNs only for its own dNSHostName
     * (validated write), so a later `adcli update` could not. */
    for (size_t h = 1; h < q.n_hosts; h++) {
        char spn[600];
        snprintf(spn, sizeof(spn), "imap/%s", q.hosts[h]);
        argv[n++] = arg("add-service-principal", spn);
        snprintf(spn, sizeof(spn), "pop/%s", q.hosts[h]);
        argv[n++] = arg("add-service-principal", spn);
    }
    argv[n++] = arg("host-keytab", tmp);
    argv[n++] = arg("login-user", q.user);
    argv[n++] = "--stdin-password";
    argv[n] = NULL;
    int rc = run(argv);
    for (size_t i = 2; i < n; i++)
        if (strncmp(argv[i], "--service-name", 14) != 0 && strcmp(argv[i], "--stdin-password") != 0)
            free(argv[i]);
    if (rc != 0) {
        cli_error(cli, "adcli join failed (%d); nothing was changed here", rc);
        unlink(tmp);
        return CLI_ERROR;
    }
    /* readable by the service user only (posternd reads it at start as root, at reload as
     * User) */
    const char *user = cli->config ? cli->config->user : NULL;
    struct passwd *pw = user ? getpwnam(user) : NULL;
    if (chmod(tmp, 0600) < 0 || (pw && chown(tmp, pw->pw_uid, pw->pw_gid) < 0) ||
        rename(tmp, q.keytab) < 0) {
        cli_error(cli, "%s: %s", q.keytab, strerror(errno));
        unlink(tmp);
        return CLI_ERROR;
    }
    printf("joined %s as %s$: SPNs imap/ and pop/ for", q.domain,
           q.computer ? q.computer : "(the host name's first label)");
    for (size_t h = 0; h < q.n_hosts; h++)
        printf(" %s", q.hosts[h]);
    printf("; keys in %s (mode 0600%s%s)\n\n", q.keytab, pw ? ", owner " : "", pw ? user : "");
    printf("kerberos {\n    Keytab %s\n    HostName", q.keytab);
    for (size_t h = 0; h < q.n_hosts; h++)
        printf(" %s", q.hosts[h]);
    printf("\n}\n");
    return CLI_OK;
}
