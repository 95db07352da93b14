/* postern-loadgen: drives one IMAP or POP3 workload against one server from one process with
 * libevent and GnuTLS, and prints what it measured as one JSON object (see bench/README.md). */
#include "loadgen.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Errors printed to standard error in one run; the rest are only counted. */
#define MAX_PRINTED_ERRORS 20

uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void lg_error(struct lg *lg, const char *fmt, ...)
{
    if (lg->printed_errors >= MAX_PRINTED_ERRORS)
        return;
    if (++lg->printed_errors == MAX_PRINTED_ERRORS) {
        fprintf(stderr, "loadgen: more errors follow; only counted\n");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

void lg_record(struct lg *lg, enum op_kind k, uint64_t start_us)
{
    if (!lg->measuring)
        return;
    hist_add(&lg->stats.op[k], now_us() - start_us);
    if (k != OP_CONNECT && k != OP_SESSION && k != OP_SESSION_LOGIN)
        lg->stats.commands++;
}

static bool is_prime(const struct lg *lg)
{
    return lg->opt.workload == WL_IMAP_PRIME || lg->opt.workload == WL_POP3_PRIME;
}

static void start_session(struct lg *lg)
{
    if (lg->opt.workload == WL_POP3 || lg->opt.workload == WL_POP3_PRIME)
        pop3_start_session(lg);
    else
        imap_start_session(lg);
}

int lg_user_take(struct lg *lg)
{
    int count = lg->opt.user_count;
    if (is_prime(lg)) {
        if (lg->next_user >= count) {
            lg->pass_done = true;
            return -1;
        }
        return lg->opt.user_first + lg->next_user++;
    }
    for (int i = 0; i < count; i++) {
        int u = lg->next_user;
        lg->next_user = (lg->next_user + 1) % count;
        if (!lg->user_busy[u]) {
            lg->user_busy[u] = 1;
            return lg->opt.user_first + u;
        }
    }
    return -1;
}

void lg_user_name(const struct lg *lg, int user, char *buf, size_t size)
{
    snprintf(buf, size, "%s%0*d", lg->opt.user_prefix, lg->opt.user_digits, user);
}

void lg_user_put(struct lg *lg, int user)
{
    if (!is_prime(lg))
        lg->user_busy[user - lg->opt.user_first] = 0;
}

/* A session went all the way to its logout: it counts, and its duration is recorded. */
void lg_session_completed(struct lg *lg, uint64_t t_connect)
{
    if (lg->measuring)
        lg->stats.sessions++;
    lg_record(lg, OP_SESSION, t_connect);
}

/* A session ended (or failed): the next one starts at once, so `concurrency` stay in flight. */
void lg_session_ended(struct lg *lg)
{
    if (lg->stopping)
        return;
    if (is_prime(lg) && lg->pass_done) {
        if (lg->active == 0)
            event_base_loopexit(lg->base, NULL);
        return;
    }
    start_session(lg);
    if (is_prime(lg) && lg->pass_done && lg->active == 0)
        event_base_loopexit(lg->base, NULL);
}

static void retry_start(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lg *lg = arg;
    if (!lg->stopping)
        start_session(lg);
}

void lg_session_failed_to_start(struct lg *lg)
{
    struct timeval tv = {0, 20000};
    event_base_once(lg->base, -1, EV_TIMEOUT, retry_start, lg, &tv);
}

static void on_warm(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lg *lg = arg;
    memset(&lg->stats, 0, sizeof lg->stats);
    lg->measuring = true;
}

static void on_end(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lg *lg = arg;
    lg->stopping = true;
    event_base_loopexit(lg->base, NULL);
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct lg *lg = arg;
    static char buf[256];
    static size_t have;
    ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
    if (n <= 0) {
        imap_idle_command(lg, "quit");
        return;
    }
    have += (size_t)n;
    buf[have] = '\0';
    char *nl;
    while ((nl = strchr(buf, '\n')) != NULL) {
        *nl = '\0';
        imap_idle_command(lg, buf);
        size_t used = (size_t)(nl - buf) + 1;
        memmove(buf, nl + 1, have - used + 1);
        have -= used;
    }
    if (have == sizeof buf - 1)
        have = 0; /* an over-long line is dropped */
}

static void print_op(const struct histogram *h, const char *name, bool *first)
{
    if (h->count == 0)
        return;
    printf("%s\"%s\":{\"n\":%" PRIu64 ",\"mean_ms\":%.3f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"max_ms\":%.3f,\"sum_us\":%.0f,\"max_us\":%" PRIu64 ",\"buckets\":[",
           *first ? "" : ",", name, h->count, h->sum_us / (double)h->count / 1000.0,
           (double)hist_percentile(h, 50) / 1000.0, (double)hist_percentile(h, 99) / 1000.0,
           (double)h->max_us / 1000.0, h->sum_us, h->max_us);
    /* the non-empty buckets, so that runs of several processes can be merged */
    bool first_bucket = true;
    for (unsigned b = 0; b < HIST_POW * HIST_SUB; b++) {
        if (h->bucket[b] == 0)
            continue;
        printf("%s[%u,%" PRIu64 "]", first_bucket ? "" : ",", b, h->bucket[b]);
        first_bucket = false;
    }
    printf("]}");
    *first = false;
}

static void print_report(const struct lg *lg, const char *workload, double seconds)
{
    const struct lg_stats *st = &lg->stats;
    printf("{\"event\":\"result\",\"workload\":\"%s\",\"seconds\":%.3f,\"concurrency\":%d,"
           "\"sessions\":%" PRIu64 ",\"logins\":%" PRIu64 ",\"commands\":%" PRIu64
           ",\"bytes\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"connect_errors\":%" PRIu64
           ",\"tls\":\"%s\",\"ops\":{",
           workload, seconds, lg->opt.concurrency, st->sessions, st->logins, st->commands,
           st->bytes, st->errors, st->connect_errors, lg->tls_desc);
    bool first = true;
    for (int k = 0; k < OP_KINDS; k++)
        print_op(&st->op[k], op_name((enum op_kind)k), &first);
    printf("}}\n");
    fflush(stdout);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: postern-loadgen --workload imap-login|imap-mixed|imap-idle|imap-prime|pop3|"
            "pop3-prime\n"
            "       --port N [--host 127.0.0.1] [--no-tls] [--ca FILE] [--priority STRING]\n"
            "       [--users FIRST:COUNT] [--user-prefix bench] [--user-digits 5] [--password PW]\n"
            "       [--concurrency N] [--duration S] [--warmup S] [--sources N]\n"
            "       [--sessions N] [--iterations N] [--idle-ms MS] [--timeout S] [--seed N]\n");
    exit(2);
}

static const struct {
    const char *name;
    enum workload w;
} workloads[] = {
    {"imap-login", WL_IMAP_LOGIN},
    {"imap-mixed", WL_IMAP_MIXED},
    {"imap-idle", WL_IMAP_IDLE},
    {"imap-prime", WL_IMAP_PRIME},
    {"pop3", WL_POP3},
    {"pop3-prime", WL_POP3_PRIME},
};

static double number(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || v < 0)
        usage();
    return v;
}

/* FIRST:COUNT */
static bool user_range(const char *arg, int *first, int *count)
{
    char *end;
    long f = strtol(arg, &end, 10);
    if (end == arg || *end != ':' || f < 0 || f > 9999999)
        return false;
    const char *c = end + 1;
    long n = strtol(c, &end, 10);
    if (end == c || *end != '\0' || n < 1 || n > 9999999)
        return false;
    *first = (int)f;
    *count = (int)n;
    return true;
}

static const char *parse_options(struct lg_options *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"workload", required_argument, NULL, 'w'},
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"no-tls", no_argument, NULL, 'T'},
        {"ca", required_argument, NULL, 'C'},
        {"priority", required_argument, NULL, 'P'},
        {"users", required_argument, NULL, 'u'},
        {"user-prefix", required_argument, NULL, 'f'},
        {"password", required_argument, NULL, 'k'},
        {"concurrency", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'W'},
        {"sources", required_argument, NULL, 's'},
        {"sessions", required_argument, NULL, 'n'},
        {"iterations", required_argument, NULL, 'i'},
        {"idle-ms", required_argument, NULL, 'I'},
        {"timeout", required_argument, NULL, 't'},
        {"seed", required_argument, NULL, 'S'},
        {"user-digits", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct lg_options){
        .host = "127.0.0.1",
        .tls = true,
        .priority = "NORMAL",
        .concurrency = 16,
        .duration = 10,
        .warmup = 1,
        .user_prefix = "bench",
        .user_digits = 5,
        .user_first = 0,
        .user_count = 100,
        .password = "Bench-Pass-1",
        .sources = 8,
        .sessions = 100,
        .iterations = 5,
        .idle_ms = 20,
        .timeout = 60,
        .seed = 1,
    };
    const char *name = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'w':
            name = optarg;
            break;
        case 'H':
            o->host = optarg;
            break;
        case 'p':
            o->port = (int)number(optarg);
            break;
        case 'T':
            o->tls = false;
            break;
        case 'C':
            o->ca_file = optarg;
            break;
        case 'P':
            o->priority = optarg;
            break;
        case 'u':
            if (!user_range(optarg, &o->user_first, &o->user_count))
                usage();
            break;
        case 'f':
            o->user_prefix = optarg;
            break;
        case 'D':
            o->user_digits = (int)number(optarg);
            break;
        case 'k':
            o->password = optarg;
            break;
        case 'c':
            o->concurrency = (int)number(optarg);
            break;
        case 'd':
            o->duration = number(optarg);
            break;
        case 'W':
            o->warmup = number(optarg);
            break;
        case 's':
            o->sources = (int)number(optarg);
            break;
        case 'n':
            o->sessions = (int)number(optarg);
            break;
        case 'i':
            o->iterations = (int)number(optarg);
            break;
        case 'I':
            o->idle_ms = (int)number(optarg);
            break;
        case 't':
            o->timeout = number(optarg);
            break;
        case 'S':
            o->seed = (unsigned)number(optarg);
            break;
        default:
            usage();
        }
    }
    if (name == NULL || o->port <= 0 || o->port > 65535 || o->concurrency < 1 ||
        o->iterations < 1 || o->sources > 250)
        usage();
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++) {
        if (strcmp(name, workloads[i].name) == 0) {
            o->workload = workloads[i].w;
            return name;
        }
    }
    usage();
    return NULL;
}

/* Room for every session's socket; the hard limit is what it is. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int setup_tls(struct lg *lg)
{
    if (gnutls_certificate_allocate_credentials(&lg->creds) < 0)
        return -1;
    if (lg->opt.ca_file && gnutls_certificate_set_x509_trust_file(lg->creds, lg->opt.ca_file,
                                                                  GNUTLS_X509_FMT_PEM) < 0) {
        fprintf(stderr, "loadgen: cannot read CA file %s\n", lg->opt.ca_file);
        return -1;
    }
    const char *err = NULL;
    if (gnutls_priority_init(&lg->prio, lg->opt.priority, &err) < 0) {
        fprintf(stderr, "loadgen: bad priority string at %s\n", err ? err : "?");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct lg lg; /* the histograms are large: not on the stack */
    const char *name = parse_options(&lg.opt, argc, argv);
    srandom(lg.opt.seed);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    if (gnutls_global_init() < 0 || setup_tls(&lg) < 0)
        return 1;
    lg.user_busy = calloc((size_t)lg.opt.user_count, 1);
    lg.base = event_base_new();
    if (lg.user_busy == NULL || lg.base == NULL)
        return 1;

    struct event *warm = NULL, *end = NULL, *input = NULL;
    bool timed = !is_prime(&lg) && lg.opt.workload != WL_IMAP_IDLE;
    if (timed) {
        struct timeval tw = {(time_t)lg.opt.warmup,
                             (suseconds_t)((lg.opt.warmup - (double)(time_t)lg.opt.warmup) * 1e6)};
        double total = lg.opt.warmup + lg.opt.duration;
        struct timeval te = {(time_t)total, (suseconds_t)((total - (double)(time_t)total) * 1e6)};
        warm = evtimer_new(lg.base, on_warm, &lg);
        end = evtimer_new(lg.base, on_end, &lg);
        evtimer_add(warm, &tw);
        evtimer_add(end, &te);
    } else {
        lg.measuring = true;
    }
    if (lg.opt.workload == WL_IMAP_IDLE) {
        input = event_new(lg.base, 0, EV_READ | EV_PERSIST, on_stdin, &lg);
        event_add(input, NULL);
    }

    uint64_t t0 = now_us();
    int first = lg.opt.workload == WL_IMAP_IDLE ? 1 : lg.opt.concurrency;
    for (int i = 0; i < first; i++)
        start_session(&lg);
    event_base_dispatch(lg.base);
    double seconds = timed ? lg.opt.duration : (double)(now_us() - t0) / 1e6;
    print_report(&lg, name, seconds);

    if (warm)
        event_free(warm);
    if (end)
        event_free(end);
    if (input)
        event_free(input);
    /* sessions still open are dropped with the process */
    return 0;
}
