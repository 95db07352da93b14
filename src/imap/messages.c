/* IMAP commands on messages of the selected mailbox (RFC 3501 §6.4): STORE, EXPUNGE, COPY,
 * MOVE (RFC 6851), SEARCH (with ESEARCH results, RFC 4731) and the UID forms, with the UIDPLUS
 * response codes and UID EXPUNGE (RFC 4315). */
#include <event2/buffer.h>
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postern/log.h"
#include "postern/mime.h"
#include "postern/util.h"
#include "session_internal.h"

/* The store's flag bits are IMAP's (enum imap_flag), so they cross over unchanged. */
_Static_assert((unsigned)STORE_SEEN == (unsigned)IMAP_FLAG_SEEN &&
                   (unsigned)STORE_ANSWERED == (unsigned)IMAP_FLAG_ANSWERED &&
                   (unsigned)STORE_FLAGGED == (unsigned)IMAP_FLAG_FLAGGED &&
                   (unsigned)STORE_DELETED == (unsigned)IMAP_FLAG_DELETED &&
                   (unsigned)STORE_DRAFT == (unsigned)IMAP_FLAG_DRAFT,
               "store and IMAP flag bits differ");

struct message_job {
    struct imap_job job;
    bool uid;
    struct seqset set;
    bool has_set;
    struct store_request store;
    char *dest; /* COPY / MOVE */
    bool move;
    struct search_program search;
};

static void message_job_release(struct imap_job *j)
{
    struct message_job *m = (struct message_job *)j;
    if (m->has_set)
        seqset_free(&m->set);
    store_request_free(&m->store);
    free(m->dest);
    search_program_free(&m->search);
}

static struct message_job *message_job(struct imap_session *s, const char *tag, bool uid,
                                       imap_job_fn work)
{
    struct message_job *m = imap_job_new(s, tag, sizeof(*m), work);
    m->job.release = message_job_release;
    m->uid = uid;
    return m;
}

/* Parses the sequence set argument into the job; false (BAD sent, job freed) if invalid. */
static bool take_set(struct message_job *m, const struct imap_arg *arg)
{
    const char *error = NULL;
    if (!seqset_parse_arg(arg, &m->set, &error)) {
        imap_bad_command(m->job.s, m->job.tag, error);
        imap_job_free(&m->job);
        return false;
    }
    m->has_set = true;
    if (m->set.last_result) {
        imap_bad_command(m->job.s, m->job.tag, "SEARCHRES ($) is not supported");
        imap_job_free(&m->job);
        return false;
    }
    return true;
}

static const char *done_text(const struct message_job *m, const char *name)
{
    static __thread char text[64];
    snprintf(text, sizeof(text), "%s%s completed", m->uid ? "UID " : "", name);
    return text;
}

/* ---- STORE ---- */

static void store_work(struct imap_job *j)
{
    struct message_job *m = (struct message_job *)j;
    uint32_t *uids;
    size_t n;
    const char *error = NULL;
    if (!job_resolve_set(j, &m->set, m->uid, &uids, &n, &error)) {
        job_reply(j, "BAD", error);
        return;
    }
    enum store_flag_op op = m->store.mode == STORE_ADD      ? STORE_FLAGS_ADD
                            : m->store.mode == STORE_REMOVE ? STORE_FLAGS_REMOVE
                                                            : STORE_FLAGS_REPLACE;
    enum store_status st = STORE_OK;
    if (n > 0)
        st = store_set_flags(j->mailbox, uids, n, op, m->store.flags.system,
                             (const char *const *)m->store.flags.keywords,
                             m->store.flags.n_keywords, NULL);
    if (st != STORE_OK) {
        free(uids);
        job_store_error(j, st, "STORE", false);
        return;
    }
    if (!m->store.silent) {
        for (size_t i = 0; i < n; i++) {
            uint32_t seq = store_seq(j->mailbox, uids[i]);
            const struct store_message *msg = store_message(j->mailbox, seq);
            if (msg == NULL)
                continue;
            out_printf(&j->out, "* %u FETCH (", seq);
            if (m->uid)
                out_printf(&j->out, "UID %u ", msg->uid);
            out_printf(&j->out, "FLAGS ");
            out_flags(&j->out, msg->flags, msg->keywords, msg->recent);
            out_add(&j->out, ")\r\n", 3);
        }
    }
    free(uids);
    job_sync(j, m->uid); /* RFC 3501 §7.4.1: no EXPUNGE during STORE */
    job_reply(j, "OK", done_text(m, "STORE"));
}

static void store_command(struct imap_session *s, const char *tag, bool uid,
                          const struct imap_arg *args, size_t n)
{
    if (n < 3) {
        imap_bad_command(s, tag, "STORE takes a sequence set, an item and flags");
        return;
    }
    struct message_job *m = message_job(s, tag, uid, store_work);
    const char *error = NULL;
    if (!store_parse(args + 1, n - 1, &m->store, &error)) {
        imap_bad_command(s, tag, error);
        imap_job_free(&m->job);
        return;
    }
    if (m->store.has_unchangedsince) {
        imap_bad_command(s, tag, "CONDSTORE is not supported");
        imap_job_free(&m->job);
        return;
    }
    if (!take_set(m, &args[0]))
        return;
    if (store_readonly(s->selected)) {
        imap_reply(s, tag, "NO", "[READ-ONLY] The mailbox is read-only (EXAMINE)");
        imap_job_free(&m->job);
        return;
    }
    imap_job_submit(&m->job);
}

void cmd_store(struct imap_session *s, struct imap_command *cmd)
{
    store_command(s, cmd->tag, false, cmd->args, cmd->n_args);
}

/* ---- EXPUNGE / UID EXPUNGE ---- */

static void expunge_work(struct imap_job *j)
{
    struct message_job *m = (struct message_job *)j;
    uint32_t *uids = NULL;
    size_t n = 0;
    const char *error = NULL;
    if (m->has_set && !job_resolve_set(j, &m->set, true, &uids, &n, &error)) {
        job_reply(j, "BAD", error);
        return;
    }
    struct store_expunged ex = {0};
    enum store_status st = STORE_OK;
    if (!m->has_set || n > 0)
        st = store_expunge(j->mailbox, uids, n, &ex);
    free(uids);
    for (size_t i = 0; i < ex.count; i++)
        out_printf(&j->out, "* %u EXPUNGE\r\n", ex.seqs[i]);
    store_expunged_free(&ex);
    if (st != STORE_OK) {
        job_store_error(j, st, "EXPUNGE", false);
        return;
    }
    job_sync(j, true);
    job_reply(j, "OK", done_text(m, "EXPUNGE"));
}

static void expunge_command(struct imap_session *s, const char *tag, bool uid,
                            const struct imap_arg *args, size_t n)
{
    if (n != (uid ? 1u : 0u)) {
        imap_bad_command(s, tag, uid ? "UID EXPUNGE takes a UID set" : "Unexpected arguments");
        return;
    }
    if (store_readonly(s->selected)) {
        imap_reply(s, tag, "NO", "[READ-ONLY] The mailbox is read-only (EXAMINE)");
        return;
    }
    struct message_job *m = message_job(s, tag, uid, expunge_work);
    if (uid && !take_set(m, &args[0]))
        return;
    imap_job_submit(&m->job);
}

void cmd_expunge(struct imap_session *s, struct imap_command *cmd)
{
    expunge_command(s, cmd->tag, false, cmd->args, cmd->n_args);
}

/* ---- COPY / MOVE ---- */

static void copy_work(struct imap_job *j)
{
    struct message_job *m = (struct message_job *)j;
    uint32_t *uids;
    size_t n;
    const char *error = NULL;
    if (!job_resolve_set(j, &m->set, m->uid, &uids, &n, &error)) {
        job_reply(j, "BAD", error);
        return;
    }
    const char *name = m->move ? "MOVE" : "COPY";
    if (n == 0) {
        free(uids);
        job_sync(j, true);
        job_reply(j, "OK",
                  m->uid ? (m->move ? "UID MOVE completed, nothing to move"
                                    : "UID COPY completed, nothing to copy")
                         : done_text(m, name));
        return;
    }
    uint32_t uidvalidity = 0;
    uint32_t *dest_uids = xcalloc(n, sizeof(*dest_uids));
    struct store_expunged ex = {0};
    enum store_status st =
        m->move ? store_move(j->mailbox, uids, n, m->dest, &uidvalidity, dest_uids, &ex)
                : store_copy(j->mailbox, uids, n, m->dest, &uidvalidity, dest_uids);
    if (st != STORE_OK) {
        store_expunged_free(&ex);
        free(uids);
        free(dest_uids);
        job_store_error(j, st, name, true);
        return;
    }
    bool any = false;
    for (size_t i = 0; i < n; i++)
        any = any || dest_uids[i] != 0;
    struct imap_output *o = &j->out;
    if (m->move && any) {
        /* RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs */
        out_printf(o, "* OK [COPYUID %u ", uidvalidity);
        out_uid_pairs(o, uids, dest_uids, n);
        out_printf(o, " ");
        out_uid_pairs(o, dest_uids, dest_uids, n);
        out_printf(o, "] Moved\r\n");
    }
    for (size_t i = 0; i < ex.count; i++)
        out_printf(o, "* %u EXPUNGE\r\n", ex.seqs[i]);
    store_expunged_free(&ex);
    job_sync(j, true);
    if (!m->move && any) {
        out_printf(o, "%s OK [COPYUID %u ", j->tag, uidvalidity);
        out_uid_pairs(o, uids, dest_uids, n);
        out_printf(o, " ");
        out_uid_pairs(o, dest_uids, dest_uids, n);
        out_printf(o, "] %s\r\n", done_text(m, name));
    } else {
        job_reply(j, "OK", done_text(m, name));
    }
    free(uids);
    free(dest_uids);
}

static void copy_command(struct imap_session *s, const char *tag, bool uid, bool move,
                         const struct imap_arg *args, size_t n)
{
    if (n != 2) {
        imap_bad_command(s, tag,
                         move ? "MOVE takes a sequence set and a mailbox name"
                              : "COPY takes a sequence set and a mailbox name");
        return;
    }
    char *dest;
    if (!imap_mailbox_arg(s, tag, &args[1], &dest))
        return;
    struct message_job *m = message_job(s, tag, uid, copy_work);
    m->dest = dest;
    m->move = move;
    if (!take_set(m, &args[0]))
        return;
    if (move && store_readonly(s->selected)) {
        imap_reply(s, tag, "NO", "[READ-ONLY] The mailbox is read-only (EXAMINE)");
        imap_job_free(&m->job);
        return;
    }
    imap_job_submit(&m->job);
}

void cmd_copy(struct imap_session *s, struct imap_command *cmd)
{
    copy_command(s, cmd->tag, false, false, cmd->args, cmd->n_args);
}

void cmd_move(struct imap_session *s, struct imap_command *cmd)
{
    copy_command(s, cmd->tag, false, true, cmd->args, cmd->n_args);
}

/* ---- SEARCH ---- */

/* A message as the evaluator sees it; the file is opened only when a key needs it. */
struct search_ctx {
    struct message_job *m;
    uint32_t uid;
    int fd;
    struct mime_message *mime;
    bool failed;
    struct header_cache {
        char *name;
        char **values;
    } headers[8];
    size_t n_headers;
    char **keywords;
};

static bool ctx_open(struct search_ctx *c)
{
    if (c->mime)
        return true;
    if (c->failed)
        return false;
    if (store_open_message(c->m->job.mailbox, c->uid, &c->fd, NULL) != STORE_OK) {
        c->failed = true;
        return false;
    }
    enum mime_error e;
    c->mime = mime_message_open_fd(c->fd, &e);
    c->failed = c->mime == NULL;
    return !c->failed;
}

static char **ctx_header(struct search_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->n_headers; i++)
        if (ascii_casecmp(c->headers[i].name, name) == 0)
            return c->headers[i].values;
    if (!ctx_open(c))
        return NULL;
    char **values = mime_message_header_decoded(c->mime, name);
    if (c->n_headers == ARRAY_LEN(c->headers)) { /* forget the oldest */
        free(c->headers[0].name);
        mime_strv_free(c->headers[0].values);
        memmove(c->headers, c->headers + 1, (ARRAY_LEN(c->headers) - 1) * sizeof(c->headers[0]));
        c->n_headers--;
    }
    c->headers[c->n_headers].name = xstrdup(name);
    c->headers[c->n_headers++].values = values;
    return values;
}

static const char *search_header(const struct search_message *sm, const char *name, size_t index)
{
    char **values = ctx_header(sm->ctx, name);
    if (values == NULL)
        return NULL;
    for (size_t i = 0; values[i]; i++)
        if (i == index)
            return values[i];
    return NULL;
}

static bool scan_sink(void *ctx, const void *data, size_t len)
{
    return !search_scan_feed(ctx, data, len); /* stop once found */
}

static bool search_contains(const struct search_message *sm, enum search_text_part part,
                            const struct search_string *needle)
{
    struct search_ctx *c = sm->ctx;
    if (!ctx_open(c))
        return false;
    if (part == SEARCH_PART_TEXT) {
        /* the header as it is, then the decoded values people search for */
        struct search_scan scan;
        search_scan_init(&scan, needle);
        const struct mime_part *root = mime_message_root(c->mime);
        mime_message_copy(c->mime, &root->header, 0, UINT64_MAX, scan_sink, &scan);
        if (search_scan_end(&scan))
            return true;
        static const char *const fields[] = {"Subject", "From", "To", "Cc", "Bcc", "Reply-To"};
        for (size_t f = 0; f < ARRAY_LEN(fields); f++) {
            char **values = ctx_header(c, fields[f]);
            for (size_t i = 0; values && values[i]; i++)
                if (search_string_find(needle, values[i], strlen(values[i])))
                    return true;
        }
    }
    return mime_message_text_contains(c->mime, needle->text) == 1;
}

static void ctx_free(struct search_ctx *c)
{
    for (size_t i = 0; i < c->n_headers; i++) {
        free(c->headers[i].name);
        mime_strv_free(c->headers[i].values);
    }
    mime_message_free(c->mime);
    if (c->fd >= 0)
        close(c->fd);
    if (c->keywords) {
        for (size_t i = 0; c->keywords[i]; i++)
            free(c->keywords[i]);
        free(c->keywords);
    }
}

static bool uses_sent_date(const struct search_key *k)
{
    if ((k->type == SEARCH_BEFORE || k->type == SEARCH_ON || k->type == SEARCH_SINCE) &&
        k->field == SEARCH_DATE_SENT)
        return true;
    for (size_t i = 0; i < k->n_children; i++)
        if (uses_sent_date(&k->children[i]))
            return true;
    return false;
}

/* The Date: header's day in its own zone (RFC 3501 SENTBEFORE/SENTON/SENTSINCE). */
static bool sent_day(struct search_ctx *c, int64_t *day)
{
    char **values = ctx_header(c, "Date");
    if (values == NULL || values[0] == NULL)
        return false;
    GDateTime *dt = g_mime_utils_header_decode_date(values[0]);
    if (dt == NULL)
        return false;
    int64_t utc = g_date_time_to_unix(dt);
    int zone = (int)(g_date_time_get_utc_offset(dt) / G_TIME_SPAN_MINUTE);
    g_date_time_unref(dt);
    *day = imap_day_of(utc, zone);
    return true;
}

static void search_work(struct imap_job *j)
{
    struct message_job *m = (struct message_job *)j;
    struct store_mailbox *mb = j->mailbox;
    mime_init();
    uint32_t count = store_count(mb);
    search_resolve(&m->search, count, count ? store_message(mb, count)->uid : 0);
    bool sent = uses_sent_date(&m->search.root);
    struct seqset result = {0};
    uint64_t matches = 0;
    uint32_t min = 0, max = 0;
    struct imap_output *o = &j->out;
    bool esearch = m->search.esearch;
    if (!esearch)
        out_printf(o, "* SEARCH");
    for (uint32_t seq = 1; seq <= count; seq++) {
        const struct store_message *msg = store_message(mb, seq);
        struct search_ctx c = {.m = m, .uid = msg->uid, .fd = -1};
        size_t nkw = 0;
        for (const char *p = msg->keywords; *p;) {
            size_t len = strcspn(p, " ");
            c.keywords = xrealloc(c.keywords, (nkw + 2) * sizeof(*c.keywords));
            c.keywords[nkw++] = xstrndup(p, len);
            c.keywords[nkw] = NULL;
            p += len;
            while (*p == ' ')
                p++;
        }
        struct search_message sm = {
            .seq = seq,
            .uid = msg->uid,
            .flags = msg->flags | (msg->recent ? IMAP_FLAG_RECENT : 0),
            .keywords = (const char *const *)c.keywords,
            .n_keywords = nkw,
            .size = msg->size,
            .internal_day = imap_day_of((int64_t)msg->internaldate, 0),
            .modseq = msg->modseq,
            .header = search_header,
            .contains = search_contains,
            .ctx = &c,
        };
        if (sent)
            sm.has_sent_day = sent_day(&c, &sm.sent_day);
        if (search_eval(&m->search, &sm)) {
            uint32_t v = m->uid ? msg->uid : seq;
            matches++;
            if (min == 0)
                min = v;
            max = v;
            if (esearch)
                seqset_add(&result, v, v);
            else
                out_printf(o, " %u", v);
        }
        ctx_free(&c);
    }
    if (esearch) {
        out_printf(o, "* ESEARCH (TAG ");
        out_astring(o, j->tag);
        out_printf(o, ")%s", m->uid ? " UID" : "");
        unsigned r = m->search.returns;
        if ((r & SEARCH_RETURN_MIN) && matches)
            out_printf(o, " MIN %u", min);
        if ((r & SEARCH_RETURN_MAX) && matches)
            out_printf(o, " MAX %u", max);
        if (r & SEARCH_RETURN_COUNT)
            out_printf(o, " COUNT %llu", (unsigned long long)matches);
        if ((r & SEARCH_RETURN_ALL) && matches) {
            char *all = seqset_format(&result);
            out_printf(o, " ALL %s", all);
            free(all);
        }
    }
    out_printf(o, "\r\n");
    seqset_free(&result);
    job_sync(j, m->uid); /* RFC 3501 §7.4.1: no EXPUNGE during SEARCH */
    job_reply(j, "OK", done_text(m, "SEARCH"));
}

static void search_command(struct imap_session *s, const char *tag, bool uid,
                           const struct imap_arg *args, size_t n)
{
    struct message_job *m = message_job(s, tag, uid, search_work);
    const char *error = "Invalid SEARCH";
    switch (search_parse(args, n, &m->search, &error)) {
    case SEARCH_OK:
        break;
    case SEARCH_BADCHARSET:
        imap_reply(s, tag, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
        imap_job_free(&m->job);
        return;
    case SEARCH_BAD:
        imap_bad_command(s, tag, error);
        imap_job_free(&m->job);
        return;
    }
    if (m->search.uses_last_result || (m->search.returns & SEARCH_RETURN_SAVE)) {
        imap_bad_command(s, tag, "SEARCHRES ($, SAVE) is not supported");
        imap_job_free(&m->job);
        return;
    }
    if (m->search.uses_modseq) {
        imap_bad_command(s, tag, "CONDSTORE (MODSEQ) is not supported");
        imap_job_free(&m->job);
        return;
    }
    imap_job_submit(&m->job);
}

void cmd_search(struct imap_session *s, struct imap_command *cmd)
{
    search_command(s, cmd->tag, false, cmd->args, cmd->n_args);
}

/* ---- UID ---- */

void cmd_uid(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->n_args < 1 || cmd->args[0].type != IMAP_ARG_ATOM) {
        imap_bad_command(s, cmd->tag, "UID takes a command");
        return;
    }
    const char *what = cmd->args[0].str;
    const struct imap_arg *args = cmd->args + 1;
    size_t n = cmd->n_args - 1;
    if (ascii_casecmp(what, "FETCH") == 0) {
        if (n < 2) {
            imap_bad_command(s, cmd->tag, "UID FETCH takes a UID set and attributes");
            return;
        }
        struct fetch_request req;
        const char *error = NULL;
        if (!fetch_parse(args + 1, n - 1, &req, &error)) {
            imap_bad_command(s, cmd->tag, error);
            return;
        }
        imap_fetch(s, cmd->tag, true, &args[0], &req);
    } else if (ascii_casecmp(what, "STORE") == 0) {
        store_command(s, cmd->tag, true, args, n);
    } else if (ascii_casecmp(what, "COPY") == 0) {
        copy_command(s, cmd->tag, true, false, args, n);
    } else if (ascii_casecmp(what, "MOVE") == 0) {
        copy_command(s, cmd->tag, true, true, args, n);
    } else if (ascii_casecmp(what, "SEARCH") == 0) {
        search_command(s, cmd->tag, true, args, n);
    } else if (ascii_casecmp(what, "EXPUNGE") == 0) {
        expunge_command(s, cmd->tag, true, args, n);
    } else {
        imap_bad_command(s, cmd->tag, "Unknown UID command");
    }
}
