/* posternd: the daemon's main(): options, configuration check, privileges, daemonising. */
#include <errno.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "postern/audit.h"
#include "postern/auth.h"
#include "postern/config.h"
#include "postern/sasl.h"
#include "postern/log.h"
#include "postern/server.h"
#include "postern/tls.h"
#include "postern/version.h"

#ifndef POSTERN_SYSCONFDIR
#define POSTERN_SYSCONFDIR "/etc/postern"
#endif

static void usage(FILE *out)
{
    fprintf(out, "usage: posternd [-c FILE] [-t] [-f] [-v]\n"
                 "  -c FILE  configuration file (default " POSTERN_SYSCONFDIR "/postern.conf)\n"
                 "  -t       check the configuration and the files it names, then exit\n"
                 "  -f       stay in the foreground\n"
                 "  -v       print the version and exit\n");
}

/* Switch to the configured user for good. Listeners are bound and keys loaded before this. */
static bool drop_privileges(const char *user)
{
    if (geteuid() != 0) {
        if (user) {
            struct passwd *pw = getpwnam(user);
            if (pw == NULL || pw->pw_uid != geteuid())
                log_warning("not started as root: staying uid %d instead of User %s",
                            (int)geteuid(), user);
        }
        return true;
    }
    if (user == NULL) {
        log_error("started as root without a User to switch to; refusing to serve as root");
        return false;
    }
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        log_error("User %s does not exist", user);
        return false;
    }
    if (pw->pw_uid == 0) {
        log_error("User %s is root; configure an unprivileged user", user);
        return false;
    }
    /* initgroups: supplementary groups such as ssl-cert keep key files readable on reload. */
    if (initgroups(user, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        log_error("cannot switch to User %s: %s", user, strerror(errno));
        return false;
    }
    if (setuid(0) == 0) {
        log_error("privileges could be regained after switching to %s", user);
        return false;
    }
    /* No core dumps with passwords in them; no ptrace by other processes of the same user. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    log_info("running as %s (uid %d, gid %d)", user, (int)pw->pw_uid, (int)pw->pw_gid);
    return true;
}

/* Descriptors one session may hold at once: its socket, and with a selected mailbox the
 * store's index (SQLite database, WAL, shared memory), its lock file, the inotify watch and a
 * message being sent -- measured at about 8 by the IMAP tests. */
#define FDS_PER_SESSION 10

/* Make room for MaxConnections sessions plus files, pipes and the directory's sockets. */
static void raise_fd_limit(const struct config *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = (rlim_t)c->max_connections * FDS_PER_SESSION + 256;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
        log_warning("open file limit is %llu, below %u descriptors for MaxConnections %u "
                    "(raise the hard limit, e.g. LimitNOFILE= in the systemd unit)",
                    (unsigned long long)rl.rlim_cur, (unsigned)want, c->max_connections);
}

static int ready_fd = -1;

/* In daemon mode the parent waits on a pipe so that start-up errors reach its exit code. */
static void notify_ready(void *arg)
{
    (void)arg;
    if (ready_fd >= 0) {
        char ok = 1;
        if (write(ready_fd, &ok, 1) < 0) {
            /* the parent is gone */
        }
        close(ready_fd);
        ready_fd = -1;
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
            if (null > STDERR_FILENO)
                close(null);
        }
    }
}

static int daemonize(void)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(p[1]);
        char ok = 0;
        ssize_t r = read(p[0], &ok, 1);
        _exit(r == 1 && ok == 1 ? 0 : 1);
    }
    close(p[0]);
    setsid();
    if (chdir("/") < 0)
        return -1;
    ready_fd = p[1];
    return 0;
}

static bool write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        log_error("PidFile %s: %s", path, strerror(errno));
        return false;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    return true;
}

int main(int argc, char **argv)
{
    const char *path = POSTERN_SYSCONFDIR "/postern.conf";
    bool check = false, foreground = false;
    int opt;
    while ((opt = getopt(argc, argv, "c:tfvh")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check = true;
            break;
        case 'f':
            foreground = true;
            break;
        case 'v':
            printf("posternd %s\n", POSTERN_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    /* An absolute path, so that SIGHUP still finds the file after the daemon's chdir("/"). */
    char abs_path[PATH_MAX];
    if (realpath(path, abs_path))
        path = abs_path;
    char err[CONFIG_ERROR_MAX];
    struct config *c = config_load(path, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "posternd: %s\n", err);
        return 1;
    }
    if (!sasl_global_init(err, sizeof(err))) {
        fprintf(stderr, "posternd: %s\n", err);
        return 1;
    }
    if (!tls_global_init(err, sizeof(err))) {
        fprintf(stderr, "posternd: %s\n", err);
        return 1;
    }
    struct tls_creds *creds = tls_creds_load(c, err, sizeof(err));
    if (creds == NULL && err[0]) {
        fprintf(stderr, "posternd: %s\n", err);
        return 1;
    }
    if (check) {
        /* The directory client too: its password file must be readable, its URIs valid. It
         * does not connect (a check must work while a domain controller is down). */
        struct auth_context *auth = auth_context_new(c, err, sizeof(err));
        if (auth == NULL && err[0]) {
            fprintf(stderr, "posternd: %s\n", err);
            return 1;
        }
        auth_context_unref(auth);
        printf("posternd: %s: configuration OK (%zu listeners)\n", path, c->n_listeners);
        tls_creds_unref(creds);
        config_unref(c);
        tls_global_deinit();
        return 0;
    }

    /* A daemon has no stderr once it serves: its log goes to syslog instead. */
    enum log_target target = foreground ? c->log_target : LOG_TARGET_SYSLOG;
    log_setup(foreground ? c->log_target : LOG_TARGET_STDERR, c->log_level, "posternd");
    signal(SIGPIPE, SIG_IGN);
    /* Listening starts before the loop installs its SIGHUP handler: a reload asked for in
     * between must not kill the daemon (the loop's handler replaces this). */
    signal(SIGHUP, SIG_IGN);
    raise_fd_limit(c);
    if (evthread_use_pthreads() < 0) {
        log_error("libevent has no thread support");
        return 1;
    }
    audit_set_syslog(c->audit_syslog);
    if (!audit_open(c->audit_log, err, sizeof(err))) {
        log_error("AuditLog %s", err);
        return 1;
    }
    /* The directory's service password is read here, before privileges are dropped. */
    struct auth_context *auth = auth_context_new(c, err, sizeof(err));
    if (auth == NULL && err[0]) {
        log_error("%s", err);
        return 1;
    }
    auth_context_publish(auth);
    auth_context_unref(auth);
    struct server *s = server_new(c, creds, err, sizeof(err));
    if (s == NULL) {
        log_error("%s", err);
        return 1;
    }
    if (!foreground && daemonize() < 0) {
        log_error("cannot become a daemon: %s", strerror(errno));
        return 1;
    }
    if (!foreground && c->log_target == LOG_TARGET_STDERR)
        log_info("daemon mode: logging to syslog (facility mail) from now on");
    if (!foreground)
        log_force_syslog(); /* also for later reloads */
    log_setup(target, c->log_level, "posternd");
    if (c->pid_file && !write_pid_file(c->pid_file))
        return 1;
    if (geteuid() == 0 && c->user && c->audit_log) {
        /* The audit file is reopened after log rotation (SIGHUP) by the unprivileged user. */
        struct passwd *pw = getpwnam(c->user);
        if (pw && chown(c->audit_log, pw->pw_uid, pw->pw_gid) < 0)
            log_warning("AuditLog %s: chown to %s: %s", c->audit_log, c->user, strerror(errno));
    }
    if (!drop_privileges(c->user))
        return 1;
    int rc = server_run(s, notify_ready, NULL);
    server_free(s);
    auth_context_publish(NULL);
    tls_creds_unref(creds);
    if (c->pid_file)
        unlink(c->pid_file);
    config_unref(c);
    audit_close();
    tls_global_deinit();
    sasl_global_deinit();
    return rc;
}
