/* posternctl audit-log: a streamed summary of the audit trail in bounded memory (posternctl(8)). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "clitext.h"
#include "postern/util.h"
#include "topk.h"

/* The longest line taken as a record; audit.c writes at most 8 KiB. Longer ones are skipped to
 * their end without being buffered, and counted as malformed. */
#define LINE_MAX_BYTES ((size_t)64 * 1024)
#define READ_BUFFER ((size_t)1024 * 1024)
#define DEFAULT_CAPACITY 4096
#define SMALL_CAPACITY 256 /* reasons, mechanisms, event kinds: a few dozen in a sound log */
#define FIRST_BAD_LINES 5

enum malformed_kind { BAD_TOO_LONG, BAD_JSON, BAD_NOT_OBJECT, BAD_FIELD, BAD_TIME, BAD_KINDS };
static const char *const MALFORMED_NAMES[BAD_KINDS] = {"too_long", "not_json", "not_object",
                                                       "missing_field", "bad_time"};

/* Extra counters of the tables (struct topk_entry.extra). */
enum { X_REFUSED = 0, X_ALLOWED = 1, X_CLEARTEXT = 2 };
enum { X_PRIVILEGED = 0, X_ADMINISTRATOR = 1 };

struct summary {
    uint64_t lines, blank, skipped_before_since;
    uint64_t malformed, malformed_by_kind[BAD_KINDS];
    uint64_t first_bad[FIRST_BAD_LINES];
    size_t n_first_bad;
    uint64_t records, auth, allowed, refused, test_logins, unresolved;
    uint64_t clear_attempts, clear_allowed, clear_refused, clear_gate;
    uint64_t connections_refused, other_events;
    int64_t first_ms, last_ms;
    char first_time[40], last_time[40];
    struct topk reasons, mechanisms, clients, accounts, offender_clients, offender_logins;
    struct topk clear_accounts, clear_clients, privileged;
    struct topk refused_reasons, refused_clients, events;
};

/* ---- time ------------------------------------------------------------------------------ */

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* ISO 8601 as the audit log writes it and as people type it: YYYY-MM-DD, then optionally
 * [T or space]hh:mm[:ss[.fraction]], then optionally Z or +hh[:mm] / -hh[:mm]. Without an
 * offset the time is UTC, like every time in the audit log. */
static bool audit_time_parse(const char *s, size_t len, int64_t *ms_out)
{
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;
    if (len < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d))
        return false;
    size_t i = 10;
    if (i < len && (s[i] == 'T' || s[i] == 't' || s[i] == ' ')) {
        if (len < i + 6 || !digits(s + i + 1, 2, &h) || s[i + 3] != ':' ||
            !digits(s + i + 4, 2, &mi))
            return false;
        i += 6;
        if (i < len && s[i] == ':') {
            if (len < i + 3 || !digits(s + i + 1, 2, &sec))
                return false;
            i += 3;
            if (i < len && (s[i] == '.' || s[i] == ',')) {
                size_t n = 0;
                int scale = 100;
                for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, n++) {
                    ms += (s[i] - '0') * scale;
                    scale /= 10;
                }
                if (n == 0)
                    return false;
            }
        }
    }
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int oh, om = 0;
        if (len < i + 3 || !digits(s + i + 1, 2, &oh))
            return false;
        size_t j = i + 3;
        if (j < len && s[j] == ':')
            j++;
        if (j + 2 <= len && digits(s + j, 2, &om))
            j += 2;
        if (oh > 23 || om > 59)
            return false;
        off = (s[i] == '-' ? -1 : 1) * (oh * 60 + om);
        i = j;
    }
    if (i != len || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *ms_out = ((int64_t)t - (int64_t)off * 60) * 1000 + ms;
    return true;
}

/* --since: an ISO 8601 time, or a duration back from now: 90s, 30m, 24h, 7d, 2w. */
static bool parse_since(const char *s, int64_t *ms_out)
{
    size_t len = strlen(s);
    if (audit_time_parse(s, len, ms_out))
        return true;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (end == s || errno != 0 || *s == '-' || *s == '+' || strlen(end) != 1)
        return false;
    static const struct {
        char unit;
        int64_t seconds;
    } UNITS[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
    for (size_t i = 0; i < sizeof(UNITS) / sizeof(UNITS[0]); i++) {
        if (*end == UNITS[i].unit) {
            if (n > (unsigned long long)(INT64_MAX / 1000 / UNITS[i].seconds))
                return false;
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            *ms_out = ((int64_t)now.tv_sec - (int64_t)n * UNITS[i].seconds) * 1000;
            return true;
        }
    }
    return false;
}

static void format_ms(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms - (int64_t)t * 1000));
}

/* ---- reading --------------------------------------------------------------------------- */

struct line_reader {
    int fd;
    char *buf;
    size_t start, end;
    bool eof;
};

enum line_status { LINE_OK, LINE_TOO_LONG, LINE_EOF, LINE_ERROR };

/* The next line without its end; memory is the fixed buffer whatever the input. */
static enum line_status next_line(struct line_reader *r, const char **line, size_t *len)
{
    bool skipping = false;
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl != NULL) {
            *line = r->buf + r->start;
            *len = (size_t)(nl - *line);
            r->start = (size_t)(nl - r->buf) + 1;
            return skipping || *len > LINE_MAX_BYTES ? LINE_TOO_LONG : LINE_OK;
        }
        if (r->end - r->start > LINE_MAX_BYTES) {
            skipping = true; /* keep nothing of it */
            r->start = r->end = 0;
        }
        if (r->eof) {
            if (r->start == r->end && !skipping)
                return LINE_EOF;
            *line = r->buf + r->start;
            *len = r->end - r->start;
            r->start = r->end;
            return skipping ? LINE_TOO_LONG : LINE_OK;
        }
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        ssize_t n = read(r->fd, r->buf + r->end, READ_BUFFER - r->end);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return LINE_ERROR;
        }
        if (n == 0)
            r->eof = true;
        r->end += (size_t)n;
    }
}

/* ---- counting -------------------------------------------------------------------------- */

static void malformed(struct summary *s, enum malformed_kind kind)
{
    s->malformed++;
    s->malformed_by_kind[kind]++;
    if (s->n_first_bad < FIRST_BAD_LINES)
        s->first_bad[s->n_first_bad++] = s->lines;
}

static const char *string_field(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static struct topk_entry *add(struct topk *t, const char *key, const char *label)
{
    return topk_add(t, key, strlen(key), label);
}

/* Refusals that are the server's state, not the client's doing, make nobody an offender. */
static bool server_side_reason(const char *reason)
{
    static const char *const SERVER_SIDE[] = {"directory_unavailable", "directory_error",
                                              "server_busy", "directory_not_configured",
                                              "sasl_not_available"};
    for (size_t i = 0; i < sizeof(SERVER_SIDE) / sizeof(SERVER_SIDE[0]); i++)
        if (strcmp(reason, SERVER_SIDE[i]) == 0)
            return true;
    return false;
}

static void count_auth(struct summary *s, json_t *rec, const char *reason, bool allowed)
{
    const char *client = string_field(rec, "client");
    const char *mech = string_field(rec, "mechanism");
    const char *login = string_field(rec, "login");
    const char *dn = string_field(rec, "account_dn");
    const char *account = string_field(rec, "account");
    json_t *tls = json_object_get(rec, "tls");
    bool cleartext = json_is_false(tls);
    client = client ? client : "(none)";
    mech = mech ? mech : "(none)";
    login = login ? login : "";

    s->auth++;
    if (allowed)
        s->allowed++;
    else
        s->refused++;
    if (json_is_true(json_object_get(rec, "test")))
        s->test_logins++;

    add(&s->reasons, reason, NULL);
    add(&s->mechanisms, mech, NULL)->extra[X_REFUSED] += !allowed;
    struct topk_entry *e = add(&s->clients, client, NULL);
    e->extra[X_REFUSED] += !allowed;
    e->extra[X_CLEARTEXT] += cleartext;
    if (dn != NULL && dn[0] != '\0') {
        e = add(&s->accounts, dn, account);
        e->extra[X_REFUSED] += !allowed;
        e->extra[X_ALLOWED] += allowed;
        e->extra[X_CLEARTEXT] += allowed && cleartext;
    } else {
        s->unresolved++;
    }
    if (!allowed && !server_side_reason(reason)) {
        add(&s->offender_clients, client, NULL);
        /* AD compares names without case: JDoe and jdoe are one target */
        char key[TOPK_KEY_MAX + 1];
        size_t n = strnlen(login, TOPK_KEY_MAX);
        for (size_t i = 0; i < n; i++)
            key[i] = login[i] >= 'A' && login[i] <= 'Z' ? (char)(login[i] - 'A' + 'a') : login[i];
        key[n] = '\0';
        add(&s->offender_logins, key, NULL);
    }
    if (cleartext) {
        s->clear_attempts++;
        add(&s->clear_clients, client, NULL)->extra[X_REFUSED] += !allowed;
        if (allowed) {
            s->clear_allowed++;
            add(&s->clear_accounts, dn ? dn : login, account ? account : login);
        } else {
            s->clear_refused++;
            s->clear_gate += strcmp(reason, "plaintext_requires_tls") == 0;
        }
    }
    bool privileged = strcmp(reason, "privileged_account") == 0;
    bool administrator = strcmp(reason, "builtin_administrator") == 0;
    if (privileged || administrator) {
        e = add(&s->privileged, dn ? dn : login, account ? account : login);
        e->extra[X_PRIVILEGED] += privileged;
        e->extra[X_ADMINISTRATOR] += administrator;
    }
}

static void count_line(struct summary *s, const char *line, size_t len, int64_t since_ms)
{
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
        i++;
    if (i == len) {
        s->blank++;
        return;
    }
    json_error_t jerr;
    json_t *rec = json_loadb(line, len, JSON_DECODE_ANY, &jerr);
    if (rec == NULL) {
        malformed(s, BAD_JSON);
        return;
    }
    const char *event = string_field(rec, "event");
    const char *when = string_field(rec, "time");
    const char *reason = string_field(rec, "reason");
    const char *result = string_field(rec, "result");
    bool auth = event != NULL && strcmp(event, "auth") == 0;
    bool refused = event != NULL && strcmp(event, "connection_refused") == 0;
    int64_t ms;
    if (!json_is_object(rec)) {
        malformed(s, BAD_NOT_OBJECT);
    } else if (event == NULL || when == NULL ||
               (auth && (reason == NULL || result == NULL ||
                         (strcmp(result, "allow") != 0 && strcmp(result, "deny") != 0))) ||
               (refused && reason == NULL)) {
        malformed(s, BAD_FIELD);
    } else if (!audit_time_parse(when, strlen(when), &ms)) {
        malformed(s, BAD_TIME);
    } else if (ms < since_ms) {
        s->skipped_before_since++;
    } else {
        s->records++;
        if (s->records == 1 || ms < s->first_ms) {
            s->first_ms = ms;
            snprintf(s->first_time, sizeof(s->first_time), "%s", when);
        }
        if (s->records == 1 || ms > s->last_ms) {
            s->last_ms = ms;
            snprintf(s->last_time, sizeof(s->last_time), "%s", when);
        }
        if (auth) {
            count_auth(s, rec, reason, strcmp(result, "allow") == 0);
        } else if (refused) {
            const char *client = string_field(rec, "client");
            s->connections_refused++;
            add(&s->refused_reasons, reason, NULL);
            add(&s->refused_clients, client ? client : "(none)", NULL);
        } else {
            s->other_events++;
            add(&s->events, event, NULL);
        }
    }
    json_decref(rec);
}

static void summary_init(struct summary *s, size_t capacity)
{
    memset(s, 0, sizeof(*s));
    struct topk *big[] = {&s->clients,         &s->accounts,       &s->offender_clients,
                          &s->offender_logins, &s->clear_accounts, &s->clear_clients,
                          &s->privileged,      &s->refused_clients};
    struct topk *small[] = {&s->reasons, &s->mechanisms, &s->refused_reasons, &s->events};
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++)
        topk_init(big[i], capacity);
    for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++)
        topk_init(small[i], capacity < SMALL_CAPACITY ? capacity : SMALL_CAPACITY);
}

static void summary_free(struct summary *s)
{
    struct topk *all[] = {&s->reasons,         &s->mechanisms,       &s->clients,
                          &s->accounts,        &s->offender_clients, &s->offender_logins,
                          &s->clear_accounts,  &s->clear_clients,    &s->privileged,
                          &s->refused_reasons, &s->refused_clients,  &s->events};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        topk_free(all[i]);
}

/* ---- privileged accounts --------------------------------------------------------------- */

/* Allowed logins of a DN, from the accounts table: exact while that table is, else a lower
 * bound and the most that can be missing. */
struct allowed_count {
    uint64_t at_least;
    uint64_t up_to_more; /* 0: exact */
};

static struct allowed_count allowed_logins(const struct summary *s, const char *dn)
{
    struct allowed_count c = {0, 0};
    const struct topk_entry *e = topk_find(&s->accounts, dn, strlen(dn));
    if (e != NULL) {
        c.at_least = e->extra[X_ALLOWED];
        c.up_to_more = e->overcount;
    } else if (!topk_exact(&s->accounts)) {
        c.up_to_more = topk_min_count(&s->accounts);
    }
    return c;
}

/* ---- output: table --------------------------------------------------------------------- */

struct column {
    const char *head;
    int extra; /* index into extra[], or -1 for the count */
};

static uint64_t column_value(const struct topk_entry *e, const struct column *c)
{
    return c->extra < 0 ? e->count : e->extra[c->extra];
}

static void print_table(const char *title, const char *key_head, const struct topk *t,
                        const struct column *cols, size_t n_cols, size_t top, bool labels)
{
    if (t->total == 0)
        return;
    const struct topk_entry **sorted = xcalloc(t->n ? t->n : 1, sizeof(const struct topk_entry *));
    topk_sorted(t, sorted);
    size_t shown = t->n < top ? t->n : top;
    int width = (int)strlen(key_head);
    uint64_t shown_total = 0, overcount = 0;
    for (size_t i = 0; i < shown; i++) {
        int w = clitext_width(labels && sorted[i]->label ? sorted[i]->label : sorted[i]->key);
        width = w > width ? w : width;
        shown_total += sorted[i]->count;
        overcount = sorted[i]->overcount > overcount ? sorted[i]->overcount : overcount;
    }
    width = width > CLITEXT_COLUMN_MAX ? CLITEXT_COLUMN_MAX : width;
    printf("\n%s", title);
    if (!topk_exact(t))
        printf(" (approximate: more than %zu distinct; a count is at most %llu too high)", t->n,
               (unsigned long long)overcount);
    printf("\n  %-*s", width, key_head);
    for (size_t c = 0; c < n_cols; c++)
        printf("  %10s", cols[c].head);
    if (labels)
        printf("  DN");
    putchar('\n');
    for (size_t i = 0; i < shown; i++) {
        const struct topk_entry *e = sorted[i];
        printf("  ");
        clitext_print(stdout, labels && e->label ? e->label : e->key, width);
        for (size_t c = 0; c < n_cols; c++)
            printf("  %10llu", (unsigned long long)column_value(e, &cols[c]));
        if (labels) {
            printf("  ");
            clitext_print(stdout, e->key, 0);
        }
        putchar('\n');
    }
    if (t->total > shown_total) {
        char others[64];
        if (topk_exact(t))
            snprintf(others, sizeof(others), "(%zu others)", t->n - shown);
        else
            snprintf(others, sizeof(others), "(others)");
        printf("  %-*s  %10llu\n", width, others, (unsigned long long)(t->total - shown_total));
    }
    free(sorted);
}

static const char *percent(uint64_t part, uint64_t whole, char *buf, size_t len)
{
    if (whole == 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.1f%%", 100.0 * (double)part / (double)whole);
    return buf;
}

static void print_privileged(const struct summary *s, size_t top)
{
    printf("\nPrivileged accounts (refused as privileged_account or builtin_administrator):");
    if (s->privileged.total == 0) {
        printf(" none seen\n");
        return;
    }
    putchar('\n');
    const struct topk_entry **sorted = xcalloc(s->privileged.n, sizeof(const struct topk_entry *));
    topk_sorted(&s->privileged, sorted);
    size_t shown = s->privileged.n < top ? s->privileged.n : top;
    int width = 7;
    for (size_t i = 0; i < shown; i++) {
        int w = clitext_width(sorted[i]->label ? sorted[i]->label : sorted[i]->key);
        width = w > width ? w : width;
    }
    width = width > CLITEXT_COLUMN_MAX ? CLITEXT_COLUMN_MAX : width;
    printf("  %-*s  %10s  %10s  %10s  DN\n", width, "ACCOUNT", "PRIVILEGED", "BUILTIN", "ALLOWED");
    for (size_t i = 0; i < shown; i++) {
        const struct topk_entry *e = sorted[i];
        struct allowed_count a = allowed_logins(s, e->key);
        char allowed[48];
        if (a.up_to_more)
            snprintf(allowed, sizeof(allowed), "%llu..%llu", (unsigned long long)a.at_least,
                     (unsigned long long)a.at_least + (unsigned long long)a.up_to_more);
        else
            snprintf(allowed, sizeof(allowed), "%llu", (unsigned long long)a.at_least);
        printf("  ");
        clitext_print(stdout, e->label ? e->label : e->key, width);
        printf("  %10llu  %10llu  %10s%s  ", (unsigned long long)e->extra[X_PRIVILEGED],
               (unsigned long long)e->extra[X_ADMINISTRATOR], allowed,
               a.at_least || a.up_to_more ? " !" : "  ");
        clitext_print(stdout, e->key, 0);
        putchar('\n');
    }
    if (s->privileged.n > shown)
        printf("  (%zu more accounts)\n", s->privileged.n - shown);
    printf("  ALLOWED: logins of the same DN that succeeded (BlockPrivilegedAccounts off at the "
           "time, or the account not privileged then); \"!\" marks them.\n");
    free(sorted);
}

static void print_summary_table(const struct summary *s, const char *path, const char *since,
                                size_t top)
{
    char p1[16], p2[16];
    printf("audit-log: %s\n", path);
    printf("lines: %llu  records: %llu  malformed: %llu", (unsigned long long)s->lines,
           (unsigned long long)s->records, (unsigned long long)s->malformed);
    if (s->malformed) {
        printf(" (");
        for (int k = 0, first = 1; k < BAD_KINDS; k++)
            if (s->malformed_by_kind[k]) {
                printf("%s%s %llu", first ? "" : ", ", MALFORMED_NAMES[k],
                       (unsigned long long)s->malformed_by_kind[k]);
                first = 0;
            }
        printf("; first at line");
        for (size_t i = 0; i < s->n_first_bad; i++)
            printf("%s %llu", i ? "," : "", (unsigned long long)s->first_bad[i]);
        printf(")");
    }
    printf("  blank: %llu\n", (unsigned long long)s->blank);
    if (since)
        printf("since: %s (%llu earlier records skipped)\n", since,
               (unsigned long long)s->skipped_before_since);
    if (s->records)
        printf("period: %s .. %s\n", s->first_time, s->last_time);
    printf("\nAuthentication attempts: %llu  allowed: %llu  refused: %llu (%s)",
           (unsigned long long)s->auth, (unsigned long long)s->allowed,
           (unsigned long long)s->refused, percent(s->refused, s->auth, p1, sizeof(p1)));
    if (s->test_logins)
        printf("  of which posternctl test-login: %llu", (unsigned long long)s->test_logins);
    printf("\nAttempts that resolved to no account: %llu\n", (unsigned long long)s->unresolved);
    printf("Connections refused: %llu\n", (unsigned long long)s->connections_refused);
    if (s->other_events)
        printf("Other events: %llu\n", (unsigned long long)s->other_events);

    static const struct column COUNT[] = {{"ATTEMPTS", -1}};
    static const struct column REFUSED[] = {{"ATTEMPTS", -1}, {"REFUSED", X_REFUSED}};
    static const struct column CLIENT[] = {
        {"ATTEMPTS", -1}, {"REFUSED", X_REFUSED}, {"CLEARTEXT", X_CLEARTEXT}};
    static const struct column ACCOUNT[] = {{"ATTEMPTS", -1},
                                            {"ALLOWED", X_ALLOWED},
                                            {"REFUSED", X_REFUSED},
                                            {"CLEARTEXT", X_CLEARTEXT}};
    static const struct column FAILURES[] = {{"REFUSED", -1}};
    static const struct column LOGINS[] = {{"LOGINS", -1}};
    static const struct column CONNECTIONS[] = {{"COUNT", -1}};
    print_table("Attempts by reason", "REASON", &s->reasons, COUNT, 1, SIZE_MAX, false);
    print_table("Attempts by mechanism", "MECHANISM", &s->mechanisms, REFUSED, 2, top, false);
    print_table("Attempts by client address", "CLIENT", &s->clients, CLIENT, 3, top, false);
    print_table("Attempts by account", "ACCOUNT", &s->accounts, ACCOUNT, 4, top, true);
    print_table("Top offenders: refusals by client address", "CLIENT", &s->offender_clients,
                FAILURES, 1, top, false);
    print_table("Top offenders: refusals by login name (lower case)", "LOGIN", &s->offender_logins,
                FAILURES, 1, top, false);

    printf("\nCleartext sessions (tls false): attempts: %llu (%s)  allowed: %llu  refused: %llu "
           "(plaintext_requires_tls: %llu)\n",
           (unsigned long long)s->clear_attempts,
           percent(s->clear_attempts, s->auth, p2, sizeof(p2)),
           (unsigned long long)s->clear_allowed, (unsigned long long)s->clear_refused,
           (unsigned long long)s->clear_gate);
    print_table("Cleartext logins by account", "ACCOUNT", &s->clear_accounts, LOGINS, 1, top, true);
    print_table("Cleartext attempts by client address", "CLIENT", &s->clear_clients, REFUSED, 2,
                top, false);
    print_privileged(s, top);
    print_table("Connections refused by reason", "REASON", &s->refused_reasons, CONNECTIONS, 1,
                SIZE_MAX, false);
    print_table("Connections refused by client address", "CLIENT", &s->refused_clients, CONNECTIONS,
                1, top, false);
    print_table("Other events", "EVENT", &s->events, CONNECTIONS, 1, SIZE_MAX, false);
}

/* ---- output: JSON ---------------------------------------------------------------------- */

static json_t *json_table(const struct topk *t, const char *key_name, const char *const *names,
                          size_t n_names, size_t top, bool labels)
{
    const struct topk_entry **sorted = xcalloc(t->n ? t->n : 1, sizeof(const struct topk_entry *));
    topk_sorted(t, sorted);
    size_t shown = t->n < top ? t->n : top;
    uint64_t shown_total = 0;
    json_t *rows = json_array();
    for (size_t i = 0; i < shown; i++) {
        const struct topk_entry *e = sorted[i];
        json_t *row = json_object();
        if (labels) {
            json_object_set_new(row, key_name, e->label ? json_string(e->label) : json_null());
            json_object_set_new(row, "account_dn", json_string(e->key));
        } else {
            json_object_set_new(row, key_name, json_string(e->key));
        }
        json_object_set_new(row, "count", json_integer((json_int_t)e->count));
        for (size_t k = 0; k < n_names; k++)
            if (names[k] != NULL)
                json_object_set_new(row, names[k], json_integer((json_int_t)e->extra[k]));
        json_object_set_new(row, "overcount", json_integer((json_int_t)e->overcount));
        json_array_append_new(rows, row);
        shown_total += e->count;
    }
    free(sorted);
    json_t *o = json_object();
    json_object_set_new(o, "total", json_integer((json_int_t)t->total));
    json_object_set_new(o, "exact", json_boolean(topk_exact(t)));
    json_object_set_new(o, "distinct",
                        topk_exact(t) ? json_integer((json_int_t)t->n) : json_null());
    json_object_set_new(o, "top", rows);
    json_object_set_new(
        o, "others_count",
        json_integer((json_int_t)(t->total > shown_total ? t->total - shown_total : 0)));
    json_object_set_new(o, "others_keys",
                        topk_exact(t) ? json_integer((json_int_t)(t->n - shown)) : json_null());
    return o;
}

static json_t *json_privileged(const struct summary *s)
{
    const struct topk_entry **sorted =
        xcalloc(s->privileged.n ? s->privileged.n : 1, sizeof(const struct topk_entry *));
    topk_sorted(&s->privileged, sorted);
    json_t *rows = json_array();
    for (size_t i = 0; i < s->privileged.n; i++) {
        const struct topk_entry *e = sorted[i];
        struct allowed_count a = allowed_logins(s, e->key);
        json_t *row = json_object();
        json_object_set_new(row, "account", e->label ? json_string(e->label) : json_null());
        json_object_set_new(row, "account_dn", json_string(e->key));
        json_object_set_new(row, "privileged_account",
                            json_integer((json_int_t)e->extra[X_PRIVILEGED]));
        json_object_set_new(row, "builtin_administrator",
                            json_integer((json_int_t)e->extra[X_ADMINISTRATOR]));
        json_object_set_new(row, "allowed", json_integer((json_int_t)a.at_least));
        json_object_set_new(row, "allowed_exact", json_boolean(a.up_to_more == 0));
        json_object_set_new(row, "allowed_at_most",
                            json_integer((json_int_t)a.at_least + (json_int_t)a.up_to_more));
        json_array_append_new(rows, row);
    }
    free(sorted);
    return rows;
}

static void print_summary_json(const struct summary *s, const char *path, const char *since,
                               size_t top)
{
    static const char *const REFUSED[] = {"refused"};
    static const char *const CLIENT[] = {"refused", NULL, "cleartext"};
    static const char *const ACCOUNT[] = {"refused", "allowed", "cleartext_allowed"};
    json_t *malformed_kinds = json_object();
    for (int k = 0; k < BAD_KINDS; k++)
        json_object_set_new(malformed_kinds, MALFORMED_NAMES[k],
                            json_integer((json_int_t)s->malformed_by_kind[k]));
    json_t *first_bad = json_array();
    for (size_t i = 0; i < s->n_first_bad; i++)
        json_array_append_new(first_bad, json_integer((json_int_t)s->first_bad[i]));
    json_t *root =
        json_pack("{s:s, s:s?, s:I, s:I, s:I, s:{s:I, s:o, s:o}, s:I, s:s?, s:s?}", "file", path,
                  "since", since, "lines", (json_int_t)s->lines, "blank", (json_int_t)s->blank,
                  "records", (json_int_t)s->records, "malformed", "count", (json_int_t)s->malformed,
                  "by_kind", malformed_kinds, "first_lines", first_bad, "skipped_before_since",
                  (json_int_t)s->skipped_before_since, "first_time",
                  s->records ? s->first_time : NULL, "last_time", s->records ? s->last_time : NULL);
    json_object_set_new(root, "auth",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "attempts", (json_int_t)s->auth,
                                  "allowed", (json_int_t)s->allowed, "refused",
                                  (json_int_t)s->refused, "test_login", (json_int_t)s->test_logins,
                                  "unresolved", (json_int_t)s->unresolved));
    json_object_set_new(root, "by_reason",
                        json_table(&s->reasons, "reason", NULL, 0, SIZE_MAX, false));
    json_object_set_new(root, "by_mechanism",
                        json_table(&s->mechanisms, "mechanism", REFUSED, 1, top, false));
    json_object_set_new(root, "by_client",
                        json_table(&s->clients, "client", CLIENT, 3, top, false));
    json_object_set_new(root, "by_account",
                        json_table(&s->accounts, "account", ACCOUNT, 3, top, true));
    json_object_set_new(root, "top_offenders",
                        json_pack("{s:o, s:o}", "clients",
                                  json_table(&s->offender_clients, "client", NULL, 0, top, false),
                                  "logins",
                                  json_table(&s->offender_logins, "login", NULL, 0, top, false)));
    json_object_set_new(
        root, "cleartext",
        json_pack("{s:I, s:I, s:I, s:I, s:o, s:o}", "attempts", (json_int_t)s->clear_attempts,
                  "allowed", (json_int_t)s->clear_allowed, "refused", (json_int_t)s->clear_refused,
                  "plaintext_requires_tls", (json_int_t)s->clear_gate, "logins_by_account",
                  json_table(&s->clear_accounts, "account", NULL, 0, top, true), "by_client",
                  json_table(&s->clear_clients, "client", REFUSED, 1, top, false)));
    json_object_set_new(root, "privileged_accounts", json_privileged(s));
    json_object_set_new(
        root, "connections_refused",
        json_pack("{s:I, s:o, s:o}", "count", (json_int_t)s->connections_refused, "by_reason",
                  json_table(&s->refused_reasons, "reason", NULL, 0, SIZE_MAX, false), "by_client",
                  json_table(&s->refused_clients, "client", NULL, 0, top, false)));
    json_object_set_new(root, "other_events",
                        json_table(&s->events, "event", NULL, 0, SIZE_MAX, false));
    json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(root);
}

/* ---- the command ----------------------------------------------------------------------- */

static bool parse_count(const char *s, unsigned long min, unsigned long max, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int cli_audit_log(struct cli *cli)
{
    static const struct option OPTIONS[] = {{"since", required_argument, NULL, 's'},
                                            {"format", required_argument, NULL, 'f'},
                                            {"top", required_argument, NULL, 't'},
                                            {"capacity", required_argument, NULL, 'k'},
                                            {NULL, 0, NULL, 0}};
    const char *since = NULL;
    bool json = false;
    size_t top = 20, capacity = DEFAULT_CAPACITY;
    int64_t since_ms = INT64_MIN;
    int opt;
    optind = 0; /* a fresh scan of this command's own arguments */
    while ((opt = getopt_long(cli->argc, cli->argv, "+", OPTIONS, NULL)) != -1) {
        switch (opt) {
        case 's':
            since = optarg;
            if (!parse_since(optarg, &since_ms)) {
                cli_error(cli,
                          "--since: '%s' is neither an ISO 8601 time nor a duration like "
                          "24h or 7d",
                          optarg);
                return CLI_USAGE;
            }
            break;
        case 'f':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0) {
                cli_error(cli, "--format: table or json");
                return CLI_USAGE;
            }
            json = strcmp(optarg, "json") == 0;
            break;
        case 't':
            if (!parse_count(optarg, 1, 100000, &top)) {
                cli_error(cli, "--top: a number from 1 to 100000");
                return CLI_USAGE;
            }
            break;
        case 'k':
            if (!parse_count(optarg, 16, 10000000, &capacity)) {
                cli_error(cli, "--capacity: a number from 16 to 10000000");
                return CLI_USAGE;
            }
            break;
        default:
            return CLI_USAGE;
        }
    }
    if (cli->argc - optind > 1) {
        cli_error(cli, "one FILE at most");
        return CLI_USAGE;
    }
    const char *path = optind < cli->argc ? cli->argv[optind]
                       : cli->config      ? cli->config->audit_log
                                          : NULL;
    if (path == NULL && cli->config == NULL) {
        cli_error(cli, "%s", cli->config_error);
        return CLI_ERROR;
    }
    if (path == NULL) {
        cli_error(cli, "%s has no AuditLog; name the file", cli->config_path);
        return CLI_ERROR;
    }
    struct line_reader reader = {.fd = 0};
    if (strcmp(path, "-") != 0) {
        reader.fd = open(path, O_RDONLY | O_CLOEXEC);
        if (reader.fd < 0) {
            cli_error(cli, "%s: %s", path, strerror(errno));
            return CLI_ERROR;
        }
    }
    reader.buf = xmalloc(READ_BUFFER);
    struct summary s;
    summary_init(&s, capacity);
    const char *line;
    size_t len;
    enum line_status st;
    while ((st = next_line(&reader, &line, &len)) != LINE_EOF && st != LINE_ERROR) {
        s.lines++;
        if (st == LINE_TOO_LONG)
            malformed(&s, BAD_TOO_LONG);
        else
            count_line(&s, line, len, since_ms);
    }
    int saved = errno;
    if (reader.fd != 0)
        close(reader.fd);
    free(reader.buf);
    if (st == LINE_ERROR) {
        cli_error(cli, "%s: %s", path, strerror(saved));
        summary_free(&s);
        return CLI_ERROR;
    }
    char since_text[64];
    if (since)
        format_ms(since_ms, since_text, sizeof(since_text));
    if (json)
        print_summary_json(&s, path, since ? since_text : NULL, top);
    else
        print_summary_table(&s, path, since ? since_text : NULL, top);
    summary_free(&s);
    return CLI_OK;
}
