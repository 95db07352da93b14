/* IMAP APPEND (RFC 3501 §6.3.11, UIDPLUS APPENDUID RFC 4315, APPENDLIMIT RFC 7889): the
 * message literal streams from the socket into the store (store_append_write) as it arrives,
 * a bounded chunk at a time, and is never whole in memory. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postern/log.h"
#include "postern/util.h"
#include "session_internal.h"

/* Data is written in chunks of this size; while a write runs, at most CHUNK_MAX more is
 * taken from the socket, then the socket waits (TCP backpressure). */
#define CHUNK ((size_t)256 * 1024)
#define CHUNK_MAX ((size_t)1024 * 1024)

struct imap_append {
    char *tag;
    char *mailbox;
    struct flag_list flags;
    int64_t date; /* 0: now */
    uint64_t size;
    bool nonsync;
    size_t text_after; /* where the command text continues in the reader's buffer */
    struct store_append *handle;
    struct evbuffer *chunk; /* received, not written yet */
    bool writing;           /* a write is on a worker */
    bool ended;             /* the command line has ended */
    enum store_status error;
    /* set: the command fails with this answer and the data is dropped */
    const char *refusal_status, *refusal;
};

/* The step on a worker: begin, or write a chunk. */
struct append_op {
    struct imap_session *s;
    struct store_account *account;
    char *mailbox;
    struct store_append *handle;
    struct evbuffer *data;
    enum store_status status;
    uint64_t conn_id;
};

static void refuse(struct imap_append *a, const char *status, const char *text)
{
    if (a->refusal == NULL) {
        a->refusal_status = status;
        a->refusal = text;
    }
}

void imap_append_free(struct imap_session *s)
{
    struct imap_append *a = s->append;
    if (a == NULL)
        return;
    store_append_abort(a->handle); /* no write is outstanding: the session waits for it */
    evbuffer_free(a->chunk);
    flag_list_free(&a->flags);
    free(a->tag);
    free(a->mailbox);
    free(a);
    s->append = NULL;
}

/* A refused APPEND without a file: the answer now. */
static void answer_refusal(struct imap_session *s)
{
    struct imap_append *a = s->append;
    if (strcmp(a->refusal_status, "BAD") == 0)
        imap_bad_command(s, a->tag, a->refusal);
    else
        imap_reply(s, a->tag, a->refusal_status, a->refusal);
    imap_append_free(s);
}

/* ---- the end: commit or abort, then the tagged answer ---- */

struct commit_job {
    struct imap_job job;
    struct store_append *handle;
    struct flag_list flags;
    int64_t date;
    const char *refusal_status, *refusal;
    enum store_status error;
};

static void commit_release(struct imap_job *j)
{
    struct commit_job *c = (struct commit_job *)j;
    store_append_abort(c->handle); /* only if the job never ran */
    flag_list_free(&c->flags);
}

static void commit_work(struct imap_job *j)
{
    struct commit_job *c = (struct commit_job *)j;
    struct store_append *h = c->handle;
    c->handle = NULL;
    if (c->refusal || c->error != STORE_OK) {
        store_append_abort(h);
        if (c->refusal)
            job_reply(j, c->refusal_status, c->refusal);
        else
            job_store_error(j, c->error, "APPEND", true);
        return;
    }
    uint32_t uidvalidity = 0, uid = 0;
    enum store_status st =
        store_append_commit(h, c->flags.system, (const char *const *)c->flags.keywords,
                            c->flags.n_keywords, (time_t)c->date, &uidvalidity, &uid);
    if (st != STORE_OK) {
        job_store_error(j, st, "APPEND", true);
        return;
    }
    job_sync(j, true); /* RFC 3501 §6.3.11: EXISTS when it went into the selected mailbox */
    out_printf(&j->out, "%s OK [APPENDUID %u %u] APPEND completed\r\n", j->tag, uidvalidity, uid);
}

/* Everything is written (or refused): hand the end to a job and forget the APPEND. */
static void finish(struct imap_session *s)
{
    struct imap_append *a = s->append;
    if (a->handle == NULL && a->refusal) {
        answer_refusal(s);
        imap_command_done(s);
        return;
    }
    struct commit_job *c = imap_job_new(s, a->tag, sizeof(*c), commit_work);
    c->job.release = commit_release;
    c->handle = a->handle;
    a->handle = NULL;
    c->flags = a->flags;
    memset(&a->flags, 0, sizeof(a->flags));
    c->date = a->date;
    c->refusal_status = a->refusal_status;
    c->refusal = a->refusal;
    c->error = a->error;
    imap_append_free(s);
    imap_job_submit(&c->job);
}

/* ---- writing ---- */

static void op_free(struct append_op *op)
{
    if (op->data)
        evbuffer_free(op->data);
    free(op->mailbox);
    free(op);
}

static void write_work(void *arg)
{
    struct append_op *op = arg;
    while (op->status == STORE_OK && evbuffer_get_length(op->data) > 0) {
        size_t n = evbuffer_get_contiguous_space(op->data);
        const void *p = evbuffer_pullup(op->data, (ev_ssize_t)n);
        op->status = store_append_write(op->handle, p, n);
        evbuffer_drain(op->data, n);
    }
}

static void maybe_write(struct imap_session *s, bool force);

/* After the line end: write what is left, then the end. */
static void write_rest_or_finish(struct imap_session *s)
{
    struct imap_append *a = s->append;
    if (evbuffer_get_length(a->chunk) > 0 && a->error == STORE_OK && !a->refusal)
        maybe_write(s, true); /* a full queue retries it later */
    if (!a->writing && (evbuffer_get_length(a->chunk) == 0 || a->error != STORE_OK || a->refusal))
        finish(s);
}

static void write_done(void *arg)
{
    struct append_op *op = arg;
    struct imap_session *s = op->s;
    struct imap_append *a = s->append;
    a->writing = false;
    if (op->status != STORE_OK && a->error == STORE_OK) {
        a->error = op->status;
        evbuffer_drain(a->chunk, evbuffer_get_length(a->chunk));
    }
    op_free(op);
    if (conn_is_closing(s->conn))
        return;
    conn_set_timeout(s->conn, imap_settings(s)->auth_timeout); /* data is flowing */
    if (a->ended) {
        write_rest_or_finish(s);
        return;
    }
    maybe_write(s, false);
    conn_pause_input(s->conn, false); /* take more data */
}

/* The store queue was full: try again shortly, data and all. */
static void retry_write(void *arg)
{
    struct imap_session *s = arg;
    if (conn_is_closing(s->conn) || s->append == NULL || s->append->writing)
        return;
    if (s->append->ended) {
        write_rest_or_finish(s);
        return;
    }
    maybe_write(s, s->reader.literal_left == 0 && !s->reader.streaming);
    conn_pause_input(s->conn, false);
}

static void maybe_write(struct imap_session *s, bool force)
{
    struct imap_append *a = s->append;
    size_t have = evbuffer_get_length(a->chunk);
    if (a->writing || a->handle == NULL || have == 0 || (have < CHUNK && !force))
        return;
    struct append_op *op = xcalloc(1, sizeof(*op));
    op->s = s;
    op->handle = a->handle;
    op->data = a->chunk;
    a->chunk = evbuffer_new();
    a->writing = true;
    if (!conn_submit_store(s->conn, write_work, write_done, op)) {
        evbuffer_prepend_buffer(a->chunk, op->data);
        a->writing = false;
        op_free(op);
        conn_defer(s->conn, 20, retry_write, s);
    }
}

void imap_append_data(struct imap_session *s, const char *data, size_t len)
{
    struct imap_append *a = s->append;
    if (a->refusal || a->error != STORE_OK)
        return; /* dropped: the answer will say why */
    evbuffer_add(a->chunk, data, len);
    maybe_write(s, s->reader.literal_left == 0);
}

bool imap_append_ready(const struct imap_session *s)
{
    const struct imap_append *a = s->append;
    return a->refusal || a->error != STORE_OK || evbuffer_get_length(a->chunk) < CHUNK_MAX;
}

void imap_append_end(struct imap_session *s)
{
    struct imap_append *a = s->append;
    /* after the literal only the line end may come (no MULTIAPPEND, no CATENATE) */
    size_t rest = s->reader.len - a->text_after;
    const char *p = s->reader.buf + a->text_after;
    if (!(rest == 1 && p[0] == '\n') && !(rest == 2 && p[0] == '\r' && p[1] == '\n'))
        refuse(a, "BAD", "Unexpected text after the message");
    a->ended = true;
    s->busy = true;
    conn_pause_input(s->conn, true);
    if (!a->writing) /* otherwise write_done goes on */
        write_rest_or_finish(s);
}

void imap_append_fail(struct imap_session *s, const char *status, const char *text)
{
    struct imap_append *a = s->append;
    refuse(a, status, text);
    a->ended = true;
    s->busy = true;
    conn_pause_input(s->conn, true);
    if (!a->writing)
        write_rest_or_finish(s);
}

/* ---- the start ---- */

static void begin_work(void *arg)
{
    struct append_op *op = arg;
    op->status = store_append_begin(op->account, op->mailbox, &op->handle);
    if (op->status != STORE_OK && op->status != STORE_NOT_FOUND)
        log_warning("conn %llu: APPEND to %s: %s: %s", (unsigned long long)op->conn_id, op->mailbox,
                    store_status_text(op->status), store_last_error());
}

static void begin_done(void *arg)
{
    struct append_op *op = arg;
    struct imap_session *s = op->s;
    struct imap_append *a = s->append;
    a->handle = op->handle;
    enum store_status st = op->status;
    op_free(op);
    s->busy = false;
    if (conn_is_closing(s->conn))
        return;
    if (st != STORE_OK) {
        refuse(a, "NO",
               st == STORE_NOT_FOUND      ? "[TRYCREATE] The mailbox does not exist"
               : st == STORE_NO_SPACE     ? "[OVERQUOTA] Not enough space for your mailbox"
               : st == STORE_INVALID_NAME ? "[CANNOT] Invalid mailbox name"
                                          : "[UNAVAILABLE] The mailbox store failed; try again");
        if (!a->nonsync) { /* the client waits for "+": the command ends here */
            imap_reader_reset(&s->reader);
            answer_refusal(s);
            imap_command_done(s);
            return;
        }
    } else if (!a->nonsync) {
        conn_printf(s->conn, "+ Ready for literal data\r\n");
    }
    conn_set_timeout(s->conn, imap_settings(s)->auth_timeout);
    conn_pause_input(s->conn, false);
}

/* [flag-list] [date-time] after the mailbox name. */
static void parse_options(struct imap_append *a, const struct imap_arg *args, size_t n)
{
    size_t i = 0;
    const char *error = NULL;
    if (i < n && args[i].type == IMAP_ARG_LIST) {
        if (!flag_list_parse(args[i].list, args[i].list_len, &a->flags, &error)) {
            refuse(a, "BAD", error);
            return;
        }
        i++;
    }
    if (i < n && args[i].type == IMAP_ARG_QUOTED) {
        struct imap_datetime dt;
        if (!imap_datetime_parse(args[i].str, args[i].len, &dt)) {
            refuse(a, "BAD", "Invalid date-time");
            return;
        }
        a->date = dt.utc > 0 ? dt.utc : 1;
        i++;
    }
    if (i < n)
        refuse(a, "BAD", "APPEND takes a mailbox, optional flags and date, and a literal");
}

/* The command text before the announced literal, parsed: is it APPEND's message? */
static bool parse_prefix(const struct imap_reader *r, struct imap_command *cmd)
{
    size_t end = r->marker_start;
    if (end > 0 && r->buf[end - 1] == ' ')
        end--;
    char *text = xmalloc(end + 3);
    memcpy(text, r->buf, end);
    memcpy(text + end, "\r\n", 3);
    const char *error;
    bool ok = imap_parse_command(text, end + 2, cmd, &error);
    free(text);
    if (!ok || ascii_casecmp(cmd->name, "APPEND") != 0 || cmd->n_args < 1) {
        imap_command_free(cmd);
        return false;
    }
    return true;
}

bool imap_append_literal(struct imap_session *s)
{
    struct imap_reader *r = &s->reader;
    struct imap_append *a = s->append;
    if (a) {
        /* a further literal after the message */
        refuse(a, "NO", "[CANNOT] One message per APPEND (MULTIAPPEND is not supported)");
        if (!r->announced_nonsync) { /* nothing more comes: the command ends here */
            imap_reader_reset(r);
            a->ended = true;
            s->busy = true;
            conn_pause_input(s->conn, true);
            if (!a->writing)
                finish(s);
            return true;
        }
        imap_reader_literal(r, true); /* its data is dropped */
        return true;
    }
    struct imap_command cmd;
    if (!parse_prefix(r, &cmd))
        return false;
    a = xcalloc(1, sizeof(*a));
    s->append = a;
    a->tag = xstrdup(cmd.tag);
    a->chunk = evbuffer_new();
    a->size = r->announced;
    a->nonsync = r->announced_nonsync;
    char *utf8 = NULL;
    const char *error = "Invalid mailbox name";
    if (!mailbox_name_parse(&cmd.args[0], IMAP_DELIMITER, false, &utf8, &error) ||
        !mutf7_encode(utf8, strlen(utf8), &a->mailbox, &error))
        refuse(a, "BAD", error);
    free(utf8);
    parse_options(a, cmd.args + 1, cmd.n_args - 1);
    imap_command_free(&cmd);
    if (s->account == NULL)
        refuse(a, "NO",
               "[UNAVAILABLE] This server has no mailbox storage configured (MailboxRoot)");
    if (a->size > imap_max_message_size(s))
        refuse(a, "NO", "[TOOBIG] The message is larger than this server accepts (APPENDLIMIT)");
    a->text_after = r->len;
    imap_reader_literal(r, true);
    if (a->refusal) {
        if (!a->nonsync) { /* the client sends nothing before "+" */
            imap_reader_reset(r);
            answer_refusal(s);
        }
        return true; /* {n+}: the data is dropped, the answer comes at the line end */
    }
    struct append_op *op = xcalloc(1, sizeof(*op));
    op->s = s;
    op->account = s->account;
    op->mailbox = xstrdup(a->mailbox);
    op->conn_id = conn_id(s->conn);
    s->busy = true;
    conn_pause_input(s->conn, true);
    if (!conn_submit_store(s->conn, begin_work, begin_done, op)) {
        op->status = STORE_BUSY;
        begin_done(op);
    }
    return true;
}

void cmd_append(struct imap_session *s, struct imap_command *cmd)
{
    /* reached only when the message was not a literal */
    imap_bad_command(s, cmd->tag,
                     "APPEND takes a mailbox, optional flags and date, and the message as a "
                     "literal");
}
