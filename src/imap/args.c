/* Typed arguments of STORE, APPEND, STATUS and ENABLE, flag lists and dates (RFC 3501 §6.3-6.4,
 * §9), and the character, number and UTF-8 helpers the other argument parsers share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args_internal.h"
#include "postern/imap_args.h"
#include "postern/util.h"

/* ---- shared helpers ---- */

bool args_is_atom_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\]", c);
}

bool args_is_atom(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!args_is_atom_char((unsigned char)s[i]))
            return false;
    return true;
}

bool args_number(const char *s, size_t len, uint64_t max, bool nonzero, uint64_t *out)
{
    if (len == 0 || (nonzero && s[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (nonzero && v == 0)
        return false;
    *out = v;
    return true;
}

bool args_equal(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && ascii_ncasecmp(s, word, len) == 0;
}

bool args_is_word(const struct imap_arg *a, const char *word)
{
    return a->type == IMAP_ARG_ATOM && args_equal(a->str, a->len, word);
}

int utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    if (len == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t need;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4, v = c & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= len)
            return 0;
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        v = v << 6 | (s[i] & 0x3f);
        /* refuse as early as possible, so that a cut prefix is never one that cannot end well */
        if (i == 1 && need == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0)))
            return -1;
        if (i == 1 && need == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90)))
            return -1;
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return -1;
    *cp = v;
    return (int)need;
}

size_t utf8_put(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

bool imap_command_rest(const char *buf, size_t len, size_t words, const char **rest,
                       size_t *rest_len)
{
    size_t i = 0;
    for (size_t w = 0; w < words; w++) {
        size_t start = i;
        while (i < len && buf[i] != ' ' && buf[i] != '\r' && buf[i] != '\n')
            i++;
        if (i == start || i >= len || buf[i] != ' ')
            return false;
        i++;
    }
    size_t end = len;
    if (end > i && buf[end - 1] == '\n')
        end--;
    if (end > i && buf[end - 1] == '\r')
        end--;
    *rest = buf + i;
    *rest_len = end - i;
    return true;
}

/* ---- flags ---- */

static const struct {
    const char *name;
    unsigned flag;
} system_flags[] = {
    {"\\Seen", IMAP_FLAG_SEEN},       {"\\Answered", IMAP_FLAG_ANSWERED},
    {"\\Flagged", IMAP_FLAG_FLAGGED}, {"\\Deleted", IMAP_FLAG_DELETED},
    {"\\Draft", IMAP_FLAG_DRAFT},     {"\\Recent", IMAP_FLAG_RECENT},
};

const char *imap_flag_name(unsigned flag)
{
    for (size_t i = 0; i < ARRAY_LEN(system_flags); i++)
        if (system_flags[i].flag == flag)
            return system_flags[i].name;
    return NULL;
}

bool imap_keyword_valid(const char *s, size_t len)
{
    return len <= IMAP_MAX_KEYWORD_LEN && args_is_atom(s, len);
}

/* One flag into out; RFC 3501 §9 flag: "\" system flag, flag-extension, or an atom keyword. */
static bool add_flag(const struct imap_arg *a, struct flag_list *out, const char **error)
{
    if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NIL) {
        *error = "Flags must be atoms";
        return false;
    }
    if (a->str[0] == '\\') {
        if (!args_is_atom(a->str + 1, a->len - 1)) {
            *error = "Invalid flag";
            return false;
        }
        for (size_t i = 0; i < ARRAY_LEN(system_flags); i++) {
            if (ascii_casecmp(a->str, system_flags[i].name) != 0)
                continue;
            /* \Recent is flag-fetch, not flag: the server alone sets it (§2.3.2) */
            if (system_flags[i].flag == IMAP_FLAG_RECENT) {
                *error = "\\Recent cannot be set by a client";
                return false;
            }
            out->system |= system_flags[i].flag;
            return true;
        }
        /* flag-extension: reserved for future RFCs, none of which this server knows */
        *error = "Unknown system flag";
        return false;
    }
    if (!args_is_atom(a->str, a->len)) {
        *error = "Invalid keyword";
        return false;
    }
    if (a->len > IMAP_MAX_KEYWORD_LEN) {
        *error = "Keyword too long";
        return false;
    }
    for (size_t i = 0; i < out->n_keywords; i++)
        if (ascii_casecmp(out->keywords[i], a->str) == 0)
            return true;
    out->keywords = xrealloc(out->keywords, (out->n_keywords + 1) * sizeof(*out->keywords));
    out->keywords[out->n_keywords++] = xstrndup(a->str, a->len);
    return true;
}

bool flag_list_parse(const struct imap_arg *flags, size_t n, struct flag_list *out,
                     const char **error)
{
    memset(out, 0, sizeof(*out));
    if (n > IMAP_MAX_FLAGS) {
        *error = "Too many flags";
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!add_flag(&flags[i], out, error)) {
            flag_list_free(out);
            return false;
        }
    }
    return true;
}

void flag_list_free(struct flag_list *flags)
{
    for (size_t i = 0; i < flags->n_keywords; i++)
        free(flags->keywords[i]);
    free(flags->keywords);
    memset(flags, 0, sizeof(*flags));
}

/* ---- STORE ---- */

/* RFC 7162 §3.1.3: store-modifier = "UNCHANGEDSINCE" SP mod-sequence-valzer. */
static bool store_modifiers(const struct imap_arg *list, struct store_request *out,
                            const char **error)
{
    if (list->list_len == 0) {
        *error = "Empty STORE modifier list";
        return false;
    }
    for (size_t i = 0; i < list->list_len; i += 2) {
        const struct imap_arg *name = &list->list[i];
        if (!args_is_word(name, "UNCHANGEDSINCE")) {
            *error = "Unknown STORE modifier";
            return false;
        }
        if (out->has_unchangedsince) {
            *error = "UNCHANGEDSINCE given twice";
            return false;
        }
        const struct imap_arg *value = i + 1 < list->list_len ? &list->list[i + 1] : NULL;
        if (value == NULL || value->type != IMAP_ARG_ATOM ||
            !args_number(value->str, value->len, MODSEQ_MAX, false, &out->unchangedsince)) {
            *error = "Invalid UNCHANGEDSINCE value";
            return false;
        }
        out->has_unchangedsince = true;
    }
    return true;
}

bool store_parse(const struct imap_arg *args, size_t n, struct store_request *out,
                 const char **error)
{
    memset(out, 0, sizeof(*out));
    size_t i = 0;
    if (i < n && args[i].type == IMAP_ARG_LIST) {
        if (!store_modifiers(&args[i], out, error))
            return false;
        i++;
    }
    if (i >= n || args[i].type != IMAP_ARG_ATOM) {
        *error = "Expected FLAGS, +FLAGS or -FLAGS";
        return false;
    }
    /* store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) */
    const char *op = args[i].str;
    size_t op_len = args[i].len;
    if (op_len > 0 && (op[0] == '+' || op[0] == '-')) {
        out->mode = op[0] == '+' ? STORE_ADD : STORE_REMOVE;
        op++, op_len--;
    }
    if (args_equal(op, op_len, "FLAGS.SILENT")) {
        out->silent = true;
    } else if (!args_equal(op, op_len, "FLAGS")) {
        *error = "Expected FLAGS, +FLAGS or -FLAGS";
        return false;
    }
    i++;
    if (i >= n) {
        *error = "Missing flags";
        return false;
    }
    if (args[i].type == IMAP_ARG_LIST) {
        if (i + 1 != n) {
            *error = "Unexpected argument after the flag list";
            return false;
        }
        return flag_list_parse(args[i].list, args[i].list_len, &out->flags, error);
    }
    return flag_list_parse(&args[i], n - i, &out->flags, error);
}

void store_request_free(struct store_request *req)
{
    flag_list_free(&req->flags);
}

/* ---- dates ---- */

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* Proleptic Gregorian calendar to days since 1970-01-01 and back (H. Hinnant's algorithms). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static bool digits(const char *s, size_t n, unsigned *out)
{
    uint64_t v;
    if (!args_number(s, n, 9999, false, &v))
        return false;
    *out = (unsigned)v;
    return true;
}

/* date-day "-" date-month "-" date-year, the day already read; checks the day exists. */
static bool month_year(const char *s, unsigned day, int64_t *out_day, unsigned *out_month,
                       int64_t *out_year)
{
    /* s points at "-Mon-yyyy" */
    if (s[0] != '-' || s[4] != '-')
        return false;
    unsigned m = 0;
    for (unsigned i = 0; i < 12; i++)
        if (ascii_ncasecmp(s + 1, months[i], 3) == 0)
            m = i + 1;
    unsigned y;
    if (m == 0 || !digits(s + 5, 4, &y))
        return false;
    if (day < 1 || day > days_in_month(y, m))
        return false;
    *out_day = days_from_civil(y, m, day);
    *out_month = m;
    *out_year = y;
    return true;
}

bool imap_date_parse(const char *s, size_t len, int64_t *day)
{
    /* date-text = date-day "-" date-month "-" date-year; date-day = 1*2DIGIT */
    size_t dlen = len == 10 ? 1 : len == 11 ? 2 : 0;
    unsigned d;
    int64_t y;
    unsigned m;
    if (dlen == 0 || !digits(s, dlen, &d))
        return false;
    return month_year(s + dlen, d, day, &m, &y);
}

bool imap_datetime_parse(const char *s, size_t len, struct imap_datetime *out)
{
    /* date-day-fixed "-" date-month "-" date-year SP time SP zone:
     * "dd-Mon-yyyy hh:mm:ss +zzzz" where dd is 2DIGIT or SP DIGIT */
    if (len != IMAP_DATETIME_LEN)
        return false;
    unsigned d, hh, mm, ss, zh, zm;
    if (s[0] == ' ' ? !digits(s + 1, 1, &d) : !digits(s, 2, &d))
        return false;
    int64_t day, y;
    unsigned m;
    if (!month_year(s + 2, d, &day, &m, &y))
        return false;
    if (s[11] != ' ' || s[14] != ':' || s[17] != ':' || s[20] != ' ' ||
        (s[21] != '+' && s[21] != '-'))
        return false;
    if (!digits(s + 12, 2, &hh) || !digits(s + 15, 2, &mm) || !digits(s + 18, 2, &ss) ||
        !digits(s + 22, 2, &zh) || !digits(s + 24, 2, &zm))
        return false;
    /* a leap second (ss 60) is taken as the next minute's first */
    if (hh > 23 || mm > 59 || ss > 60 || zh > 23 || zm > 59)
        return false;
    int zone = (int)(zh * 60 + zm) * (s[21] == '-' ? -1 : 1);
    out->zone_minutes = zone;
    out->utc = day * 86400 + (int64_t)hh * 3600 + (int64_t)mm * 60 + ss - (int64_t)zone * 60;
    return true;
}

void imap_datetime_format(const struct imap_datetime *dt, char *out)
{
    int64_t local = dt->utc + (int64_t)dt->zone_minutes * 60;
    int64_t day = floor_div(local, 86400);
    int64_t secs = local - day * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    int zone = dt->zone_minutes < 0 ? -dt->zone_minutes : dt->zone_minutes;
    int sec = (int)secs;
    /* years outside 0..9999 do not fit the form; they are cut, never overflow out */
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%2u-%s-%04lld %02d:%02d:%02d %c%02d%02d", d, months[m - 1],
             (long long)y, sec / 3600, sec / 60 % 60, sec % 60, dt->zone_minutes < 0 ? '-' : '+',
             zone / 60 % 100, zone % 60);
    memcpy(out, tmp, IMAP_DATETIME_LEN);
    out[IMAP_DATETIME_LEN] = '\0';
}

int64_t imap_day_of(int64_t utc, int zone_minutes)
{
    return floor_div(utc + (int64_t)zone_minutes * 60, 86400);
}

/* ---- APPEND ---- */

bool append_parse(const struct imap_arg *args, size_t n, size_t *used, struct append_message *out,
                  const char **error)
{
    /* append-message = [SP flag-list] [SP date-time] SP literal (RFC 3501 §9, RFC 3502) */
    memset(out, 0, sizeof(*out));
    size_t i = 0;
    if (i < n && args[i].type == IMAP_ARG_LIST) {
        if (!flag_list_parse(args[i].list, args[i].list_len, &out->flags, error))
            return false;
        out->has_flags = true;
        i++;
    }
    if (i < n && args[i].type == IMAP_ARG_QUOTED) {
        if (!imap_datetime_parse(args[i].str, args[i].len, &out->date)) {
            *error = "Invalid date-time";
            append_message_free(out);
            return false;
        }
        out->has_date = true;
        i++;
    }
    if (i >= n || args[i].type != IMAP_ARG_LITERAL) {
        *error = i < n ? "Expected flags, date-time or the message literal"
                       : "Missing the message literal";
        append_message_free(out);
        return false;
    }
    out->data = args[i].str;
    out->len = args[i].len;
    *used = i + 1;
    return true;
}

void append_message_free(struct append_message *msg)
{
    flag_list_free(&msg->flags);
    msg->has_flags = false;
}

/* ---- STATUS ---- */

static const struct {
    const char *name;
    unsigned item;
} status_items[] = {
    {"MESSAGES", STATUS_MESSAGES},
    {"RECENT", STATUS_RECENT},
    {"UIDNEXT", STATUS_UIDNEXT},
    {"UIDVALIDITY", STATUS_UIDVALIDITY},
    {"UNSEEN", STATUS_UNSEEN},
    {"SIZE", STATUS_SIZE},
    {"HIGHESTMODSEQ", STATUS_HIGHESTMODSEQ},
    {"DELETED", STATUS_DELETED},
};

bool status_parse(const struct imap_arg *list, unsigned *items, const char **error)
{
    /* "(" status-att *(SP status-att) ")" */
    *items = 0;
    if (list->type != IMAP_ARG_LIST || list->list_len == 0) {
        *error = "Expected a list of STATUS items";
        return false;
    }
    for (size_t i = 0; i < list->list_len; i++) {
        unsigned item = 0;
        for (size_t k = 0; k < ARRAY_LEN(status_items) && item == 0; k++)
            if (args_is_word(&list->list[i], status_items[k].name))
                item = status_items[k].item;
        if (item == 0) {
            *error = "Unknown STATUS item";
            return false;
        }
        *items |= item;
    }
    return true;
}

const char *status_item_name(unsigned item)
{
    for (size_t k = 0; k < ARRAY_LEN(status_items); k++)
        if (status_items[k].item == item)
            return status_items[k].name;
    return NULL;
}

/* ---- ENABLE ---- */

static const struct {
    const char *name;
    unsigned ext;
} extensions[] = {
    {"CONDSTORE", IMAP_EXT_CONDSTORE},
    {"QRESYNC", IMAP_EXT_QRESYNC},
    {"UTF8=ACCEPT", IMAP_EXT_UTF8_ACCEPT},
    {"IMAP4rev2", IMAP_EXT_IMAP4REV2},
};

bool enable_parse(const struct imap_arg *args, size_t n, unsigned *requested, const char **error)
{
    /* enable = "ENABLE" 1*(SP capability); capability = ("AUTH=" auth-type) / atom */
    *requested = 0;
    if (n == 0) {
        *error = "Missing capability names";
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (args[i].type != IMAP_ARG_ATOM || !args_is_atom(args[i].str, args[i].len)) {
            *error = "Capability names must be atoms";
            return false;
        }
        for (size_t k = 0; k < ARRAY_LEN(extensions); k++)
            if (args_is_word(&args[i], extensions[k].name))
                *requested |= extensions[k].ext;
    }
    return true;
}

const char *imap_extension_name(unsigned ext)
{
    for (size_t k = 0; k < ARRAY_LEN(extensions); k++)
        if (extensions[k].ext == ext)
            return extensions[k].name;
    return NULL;
}
