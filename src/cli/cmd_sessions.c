/* posternctl sessions: the live sessions of the running server, from its control socket
 * (docs/posternctl.8). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "control_client.h"
#include "postern/util.h"

enum column {
    COL_ID,
    COL_PROTOCOL,
    COL_LISTENER,
    COL_CLIENT,
    COL_TLS,
    COL_STATE,
    COL_ACCOUNT,
    COL_MECHANISM,
    COL_CONNECTED,
    COL_LOGIN,
    COL_IN,
    COL_OUT,
    COLUMNS
};

static const char *const HEADINGS[COLUMNS] = {"ID",        "PROTOCOL",  "LISTENER", "CLIENT",
                                              "TLS",       "STATE",     "ACCOUNT",  "MECHANISM",
                                              "CONNECTED", "LOGGED IN", "BYTES IN", "BYTES OUT"};

static const char *text_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

/* "2026-05-01T12:00:00Z" as the server writes it. */
static bool parse_time(const char *s, time_t *t)
{
    struct tm tm = {0};
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (end == NULL || strcmp(end, "Z") != 0)
        return false;
    *t = timegm(&tm);
    return *t != (time_t)-1;
}

/* How long ago: "42s", "5m12s", "3h04m", "2d03h". */
static void format_age(const json_t *o, const char *key, time_t now, char *buf, size_t len)
{
    time_t t;
    if (!parse_time(json_string_value(json_object_get(o, key)), &t)) {
        snprintf(buf, len, "-");
        return;
    }
    long long s = now > t ? (long long)(now - t) : 0;
    if (s < 60)
        snprintf(buf, len, "%llds", s);
    else if (s < 3600)
        snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%lldh%02lldm", s / 3600, s / 60 % 60);
    else
        snprintf(buf, len, "%lldd%02lldh", s / 86400, s / 3600 % 24);
}

/* The answer's sessions come grouped by I/O thread; they are shown in the order of their ids. */
struct entry {
    json_int_t id;
    json_t *session;
};

static int by_id(const void *a, const void *b)
{
    json_int_t x = ((const struct entry *)a)->id, y = ((const struct entry *)b)->id;
    return x < y ? -1 : x > y;
}

#define CELL 128

/* A session as the table shows it. */
struct row {
    char cell[COLUMNS][CELL];
};

static void row_of(const json_t *s, time_t now, struct row *r)
{
    const json_t *tls = json_object_get(s, "tls");
    snprintf(r->cell[COL_ID], CELL, "%lld",
             (long long)json_integer_value(json_object_get(s, "id")));
    snprintf(r->cell[COL_PROTOCOL], CELL, "%s", text_of(s, "protocol"));
    snprintf(r->cell[COL_LISTENER], CELL, "%s", text_of(s, "listener"));
    snprintf(r->cell[COL_CLIENT], CELL, "%s:%lld", text_of(s, "client"),
             (long long)json_integer_value(json_object_get(s, "client_port")));
    snprintf(r->cell[COL_TLS], CELL, "%s", json_is_object(tls) ? text_of(tls, "version") : "none");
    snprintf(r->cell[COL_STATE], CELL, "%s", text_of(s, "state"));
    snprintf(r->cell[COL_ACCOUNT], CELL, "%s", text_of(s, "account"));
    snprintf(r->cell[COL_MECHANISM], CELL, "%s", text_of(s, "mechanism"));
    format_age(s, "connected_at", now, r->cell[COL_CONNECTED], CELL);
    format_age(s, "login_at", now, r->cell[COL_LOGIN], CELL);
    snprintf(r->cell[COL_IN], CELL, "%lld",
             (long long)json_integer_value(json_object_get(s, "bytes_in")));
    snprintf(r->cell[COL_OUT], CELL, "%lld",
             (long long)json_integer_value(json_object_get(s, "bytes_out")));
}

static void print_row(const char *const *cells, const size_t *width)
{
    for (int k = 0; k < COLUMNS; k++) {
        bool right = k == COL_ID || k == COL_IN || k == COL_OUT;
        if (k == COLUMNS - 1)
            printf("%*s\n", (int)width[k], cells[k]);
        else
            printf(right ? "%*s  " : "%-*s  ", (int)width[k], cells[k]);
    }
}

static void print_table(const struct entry *sessions, size_t n)
{
    struct row *rows = xcalloc(n ? n : 1, sizeof(struct row));
    size_t width[COLUMNS], authenticated = 0;
    for (int k = 0; k < COLUMNS; k++)
        width[k] = strlen(HEADINGS[k]);
    time_t now = time(NULL);
    for (size_t i = 0; i < n; i++) {
        row_of(sessions[i].session, now, &rows[i]);
        if (strcmp(rows[i].cell[COL_STATE], "authenticated") == 0)
            authenticated++;
        for (int k = 0; k < COLUMNS; k++)
            if (strlen(rows[i].cell[k]) > width[k])
                width[k] = strlen(rows[i].cell[k]);
    }
    print_row(HEADINGS, width);
    for (size_t i = 0; i < n; i++) {
        const char *cells[COLUMNS];
        for (int k = 0; k < COLUMNS; k++)
            cells[k] = rows[i].cell[k];
        print_row(cells, width);
    }
    printf("%zu session%s, %zu logged in\n", n, n == 1 ? "" : "s", authenticated);
    free(rows);
}

int cli_sessions(struct cli *cli)
{
    bool json = false;
    for (int i = 1; i < cli->argc; i++) {
        if (strcmp(cli->argv[i], "--format") == 0 && i + 1 < cli->argc) {
            const char *f = cli->argv[++i];
            if (strcmp(f, "table") == 0 || strcmp(f, "json") == 0) {
                json = strcmp(f, "json") == 0;
            } else {
                cli_error(cli, "--format: table or json, not '%s'", f);
                return CLI_USAGE;
            }
        } else {
            cli_error(cli, "unknown argument '%s'", cli->argv[i]);
            return CLI_USAGE;
        }
    }
    int status;
    json_t *answer = control_ask(cli, "SESSIONS", &status);
    if (answer == NULL)
        return status;
    json_t *sessions = json_object_get(answer, "sessions");
    size_t n = json_array_size(sessions);
    struct entry *rows = xcalloc(n ? n : 1, sizeof(struct entry));
    for (size_t i = 0; i < n; i++) {
        rows[i].session = json_array_get(sessions, i);
        rows[i].id = json_integer_value(json_object_get(rows[i].session, "id"));
    }
    qsort(rows, n, sizeof(struct entry), by_id);
    if (json) {
        json_t *sorted = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append(sorted, rows[i].session);
        json_t *out = json_pack("{s:o}", "sessions", sorted);
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(out);
    } else {
        print_table(rows, n);
    }
    free(rows);
    json_decref(answer);
    return CLI_OK;
}
