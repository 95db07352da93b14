/* dirprobe: drives the directory client (src/directory) from the command line and prints JSON,
 * so that tests/integration/test_directory_client.py can check it against a real slapd.
 *
 *   dirprobe [options] COMMAND ARG...     one command
 *   dirprobe [options] -                  commands from stdin, one per line, fields split by TAB;
 *                                         one directory (and its pools) serves them all
 * options: -H URI (repeat, in order)  -b BASE  -D BINDDN  -y PASSWORDFILE  -N (no TLS; default
 *          StartTLS)  -C CAFILE  -k (do not verify the certificate)  -n NET_TIMEOUT
 *          -t OP_TIMEOUT  -p POOL_SIZE  -v (debug log on stderr)
 * commands: find FILTER [MAX] | find-eq ATTR VALUE [MAX] | verify DN PASSWORD | naming |
 *           escape VALUE | stress THREADS ROUNDS FILTER DN PASSWORD | sleep MS
 */
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "postern/directory.h"
#include "postern/log.h"
#include "postern/util.h"

static const char *const STATUS[] = {"OK", "INVALID_CREDENTIALS", "UNAVAILABLE", "ERROR"};

static void json_string(FILE *f, const char *s)
{
    if (s == NULL) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_strings(FILE *f, char **v, size_t n)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputc(',', f);
        json_string(f, v[i]);
    }
    fputc(']', f);
}

static void json_account(FILE *f, const struct account *a)
{
    fputs("{\"dn\":", f);
    json_string(f, a->dn);
    fputs(",\"sam_account_name\":", f);
    json_string(f, a->sam_account_name);
    fputs(",\"upn\":", f);
    json_string(f, a->upn);
    fputs(",\"alias\":", f);
    json_string(f, a->alias);
    fputs(",\"mail\":", f);
    json_string(f, a->mail);
    fputs(",\"proxy_addresses\":", f);
    json_strings(f, a->proxy_addresses, a->n_proxy_addresses);
    fputs(",\"guid\":", f);
    json_string(f, a->guid);
    fputs(",\"sid\":", f);
    json_string(f, a->sid);
    fprintf(f, ",\"has_sid\":%s,\"rid\":%u", a->has_sid ? "true" : "false", a->rid);
    fprintf(f, ",\"has_uac\":%s,\"uac\":%u", a->has_uac ? "true" : "false",
            a->user_account_control);
    fprintf(f, ",\"has_uac_computed\":%s,\"uac_computed\":%u",
            a->has_uac_computed ? "true" : "false", a->uac_computed);
    fprintf(f, ",\"account_expires\":%lld,\"lockout_time\":%lld", (long long)a->account_expires,
            (long long)a->lockout_time);
    fprintf(f, ",\"has_pwd_last_set\":%s,\"pwd_last_set\":%lld",
            a->has_pwd_last_set ? "true" : "false", (long long)a->pwd_last_set);
    fprintf(f, ",\"admin_count\":%d,\"is_computer\":%s", a->admin_count,
            a->is_computer ? "true" : "false");
    fputs(",\"member_of\":", f);
    json_strings(f, a->member_of, a->n_member_of);
    fputs(",\"protocol_settings\":", f);
    json_strings(f, a->protocol_settings, a->n_protocol_settings);
    fputc('}', f);
}

static uint64_t elapsed(uint64_t since)
{
    return now_ms() - since;
}

static void do_find(struct directory *d, const char *filter, size_t max)
{
    uint64_t t0 = now_ms();
    struct account **accounts = NULL;
    size_t n = 0, matched = 0;
    const char *server = NULL;
    enum directory_status st =
        directory_find_accounts(d, filter, &accounts, &n, max, &matched, &server);
    printf("{\"status\":\"%s\",\"ms\":%llu,\"server\":", STATUS[st],
           (unsigned long long)elapsed(t0));
    json_string(stdout, server);
    printf(",\"n_matched\":%zu,\"accounts\":[", matched);
    for (size_t i = 0; i < n; i++) {
        if (i)
            putchar(',');
        json_account(stdout, accounts[i]);
    }
    printf("]}\n");
    directory_free_accounts(accounts, n);
}

static void do_verify(struct directory *d, const char *dn, const char *password)
{
    uint64_t t0 = now_ms();
    unsigned sub = 0;
    const char *server = NULL;
    enum directory_status st =
        directory_verify_password(d, dn, password, strlen(password), &sub, &server);
    printf("{\"status\":\"%s\",\"ms\":%llu,\"ad_subcode\":%u,\"server\":", STATUS[st],
           (unsigned long long)elapsed(t0), sub);
    json_string(stdout, server);
    printf("}\n");
}

static void do_matches(struct directory *d, const char *dn, const char *filter)
{
    uint64_t t0 = now_ms();
    bool matches = false;
    const char *server = NULL;
    enum directory_status st = directory_entry_matches(d, dn, filter, &matches, &server);
    printf("{\"status\":\"%s\",\"ms\":%llu,\"matches\":%s,\"server\":", STATUS[st],
           (unsigned long long)elapsed(t0), matches ? "true" : "false");
    json_string(stdout, server);
    printf("}\n");
}

struct scan_state {
    size_t stop_after, seen;
    bool first;
};

static bool print_scanned(struct account *a, void *arg)
{
    struct scan_state *s = arg;
    if (!s->first)
        putchar(',');
    s->first = false;
    json_string(stdout, a->dn);
    account_free(a);
    return ++s->seen != s->stop_after;
}

static void do_scan(struct directory *d, const char *filter, unsigned page, size_t stop_after)
{
    uint64_t t0 = now_ms();
    struct scan_state s = {.stop_after = stop_after, .first = true};
    size_t n = 0;
    const char *server = NULL;
    printf("{\"dns\":[");
    enum directory_status st =
        directory_scan_accounts(d, filter, page, print_scanned, &s, &n, &server);
    printf("],\"status\":\"%s\",\"ms\":%llu,\"n_scanned\":%zu,\"server\":", STATUS[st],
           (unsigned long long)elapsed(t0), n);
    json_string(stdout, server);
    printf("}\n");
}

static void do_naming(struct directory *d)
{
    uint64_t t0 = now_ms();
    struct directory_naming n;
    enum directory_status st = directory_read_naming(d, &n);
    printf("{\"status\":\"%s\",\"ms\":%llu,\"netbios\":", STATUS[st],
           (unsigned long long)elapsed(t0));
    json_string(stdout, n.netbios);
    printf(",\"dns_domain\":");
    json_string(stdout, n.dns_domain);
    printf(",\"upn_suffixes\":");
    json_strings(stdout, n.upn_suffixes, n.n_upn_suffixes);
    printf(",\"is_active_directory\":%s}\n", n.is_active_directory ? "true" : "false");
    directory_naming_free(&n);
}

/* Many threads at once through a small pool: every answer must still be the right one. */
struct stress {
    struct directory *d;
    const char *filter, *dn, *password;
    unsigned rounds;
    pthread_mutex_t lock;
    unsigned ok, wrong;
};

static void *stress_thread(void *arg)
{
    struct stress *s = arg;
    size_t len = strlen(s->password);
    char *bad = xmalloc(len + 2);
    memcpy(bad, s->password, len);
    bad[len] = 'x';
    bad[len + 1] = '\0';
    for (unsigned i = 0; i < s->rounds; i++) {
        struct account **a = NULL;
        size_t n = 0, matched = 0;
        bool good =
            directory_find_accounts(s->d, s->filter, &a, &n, 1, &matched, NULL) == DIRECTORY_OK &&
            n == 1 && matched == 1 && strcmp(a[0]->dn, s->dn) == 0;
        directory_free_accounts(a, n);
        unsigned sub;
        good = good &&
               directory_verify_password(s->d, s->dn, s->password, len, &sub, NULL) == DIRECTORY_OK;
        good = good && directory_verify_password(s->d, s->dn, bad, len + 1, &sub, NULL) ==
                           DIRECTORY_INVALID_CREDENTIALS;
        pthread_mutex_lock(&s->lock);
        if (good)
            s->ok++;
        else
            s->wrong++;
        pthread_mutex_unlock(&s->lock);
    }
    free(bad);
    return NULL;
}

static void do_stress(struct directory *d, unsigned threads, unsigned rounds, const char *filter,
                      const char *dn, const char *password)
{
    uint64_t t0 = now_ms();
    struct stress s = {.d = d, .filter = filter, .dn = dn, .password = password, .rounds = rounds};
    pthread_mutex_init(&s.lock, NULL);
    pthread_t *tids = xcalloc(threads, sizeof(*tids));
    for (unsigned i = 0; i < threads; i++)
        pthread_create(&tids[i], NULL, stress_thread, &s);
    for (unsigned i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    free(tids);
    pthread_mutex_destroy(&s.lock);
    printf("{\"status\":\"OK\",\"ms\":%llu,\"ok\":%u,\"wrong\":%u}\n",
           (unsigned long long)elapsed(t0), s.ok, s.wrong);
}

static int run(struct directory *d, char **argv, int argc)
{
    if (argc < 1)
        return 2;
    const char *cmd = argv[0];
    if (strcmp(cmd, "find") == 0 && argc >= 2) {
        do_find(d, argv[1], argc >= 3 ? strtoul(argv[2], NULL, 10) : 1);
    } else if (strcmp(cmd, "find-eq") == 0 && argc >= 3) {
        char *v = directory_escape_filter_value(argv[2], strlen(argv[2]));
        size_t n = strlen(argv[1]) + strlen(v) + 4;
        char *filter = xmalloc(n);
        snprintf(filter, n, "(%s=%s)", argv[1], v);
        do_find(d, filter, argc >= 4 ? strtoul(argv[3], NULL, 10) : 1);
        free(filter);
        free(v);
    } else if (strcmp(cmd, "verify") == 0 && argc >= 3) {
        do_verify(d, argv[1], argv[2]);
    } else if (strcmp(cmd, "matches") == 0 && argc >= 3) {
        do_matches(d, argv[1], argv[2]);
    } else if (strcmp(cmd, "scan") == 0 && argc >= 3) {
        do_scan(d, argv[1], (unsigned)strtoul(argv[2], NULL, 10),
                argc >= 4 ? strtoul(argv[3], NULL, 10) : 0);
    } else if (strcmp(cmd, "naming") == 0) {
        do_naming(d);
    } else if (strcmp(cmd, "escape") == 0 && argc >= 2) {
        char *v = directory_escape_filter_value(argv[1], strlen(argv[1]));
        printf("{\"status\":\"OK\",\"escaped\":");
        json_string(stdout, v);
        printf("}\n");
        free(v);
    } else if (strcmp(cmd, "stress") == 0 && argc >= 6) {
        do_stress(d, (unsigned)strtoul(argv[1], NULL, 10), (unsigned)strtoul(argv[2], NULL, 10),
                  argv[3], argv[4], argv[5]);
    } else if (strcmp(cmd, "sleep") == 0 && argc >= 2) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 0};
        unsigned long ms = strtoul(argv[1], NULL, 10);
        ts.tv_sec = (time_t)(ms / 1000);
        ts.tv_nsec = (long)(ms % 1000) * 1000000L;
        nanosleep(&ts, NULL);
        printf("{\"status\":\"OK\"}\n");
    } else {
        fprintf(stderr, "dirprobe: bad command \"%s\" (%d arguments)\n", cmd, argc - 1);
        return 2;
    }
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    /* As posternd does: a write to a connection the server closed must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    char *uris[16];
    struct directory_config cfg = {
        .uris = uris,
        .tls = DIRECTORY_TLS_STARTTLS,
        .verify_certificate = true,
        .network_timeout = 2,
        .operation_timeout = 2,
        .pool_size = 2,
    };
    bool verbose = false;
    int opt;
    while ((opt = getopt(argc, argv, "+H:d:b:D:y:K:P:NC:kn:t:p:v")) != -1) {
        switch (opt) {
        case 'H':
            if (cfg.n_uris < 16)
                uris[cfg.n_uris++] = optarg;
            break;
        case 'd':
            cfg.discover_domain = optarg;
            break;
        case 'K':
            cfg.keytab = optarg;
            break;
        case 'P':
            cfg.bind_principal = optarg;
            break;
        case 'b':
            cfg.base_dn = optarg;
            break;
        case 'D':
            cfg.bind_dn = optarg;
            break;
        case 'y':
            cfg.bind_password_file = optarg;
            break;
        case 'N':
            cfg.tls = DIRECTORY_TLS_NONE;
            break;
        case 'C':
            cfg.ca_file = optarg;
            break;
        case 'k':
            cfg.verify_certificate = false;
            break;
        case 'n':
            cfg.network_timeout = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 't':
            cfg.operation_timeout = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'p':
            cfg.pool_size = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'v':
            verbose = true;
            break;
        default:
            return 2;
        }
    }
    log_setup(LOG_TARGET_STDERR, verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING, "dirprobe");
    if (optind >= argc) {
        fprintf(stderr, "dirprobe: no command\n");
        return 2;
    }
    char err[256];
    struct directory *d = directory_new(&cfg, err, sizeof(err));
    if (d == NULL) {
        printf("{\"status\":\"NEW_FAILED\",\"error\":");
        json_string(stdout, err);
        printf("}\n");
        return 1;
    }
    int rc = 0;
    if (strcmp(argv[optind], "-") != 0) {
        rc = run(d, argv + optind, argc - optind);
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, stdin)) > 0) {
            if (line[n - 1] == '\n')
                line[n - 1] = '\0';
            char *fields[8];
            int nf = 0;
            for (char *p = line, *tab; nf < 8; p = tab + 1) {
                fields[nf++] = p;
                if ((tab = strchr(p, '\t')) == NULL)
                    break;
                *tab = '\0';
            }
            if ((rc = run(d, fields, nf)) != 0)
                break;
        }
        free(line);
    }
    directory_free(d);
    return rc;
}
