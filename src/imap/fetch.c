/* IMAP FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2): message data from the store and
 * src/mime, bodies streamed from their files, answered in batches so that memory stays small
 * whatever the client's speed. ENVELOPE and BODYSTRUCTURE are cached in the store. */
#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "postern/log.h"
#include "postern/mime.h"
#include "postern/util.h"
#include "session_internal.h"

/* One batch stops after this much response text or this many streamed ranges; the next is
 * computed once the connection has sent nearly all of it (conn_when_drained). */
#define BATCH_TEXT ((size_t)256 * 1024)
#define BATCH_FILES 16
/* Sections up to this size are copied into the response text; larger ones are streamed. */
#define INLINE_MAX ((uint64_t)64 * 1024)

struct fetch_job {
    struct imap_job job;
    struct fetch_request req;
    struct seqset set;
    bool uid; /* UID FETCH */
    bool resolved;
    uint32_t *uids;
    bool *seen_added; /* \Seen set by this FETCH: FLAGS is echoed (RFC 3501 §6.4.5) */
    size_t n, next;
    bool flags_requested, uid_requested, needs_mime, needs_file;
    bool needs_header; /* the message's own header only (mime_message_open_header) */
    bool vanished;     /* a message's file was gone: OK [EXPUNGEISSUED] */
};

/* What one message needs while its response is built. */
struct fetch_message {
    uint32_t seq, uid;
    const struct store_message *view;
    int fd;
    struct store_message info;
    struct mime_message *mime;
    bool header_only; /* mime from mime_message_open_header() */
    char *envelope, *bodystructure;
};

static void fetch_release(struct imap_job *j)
{
    struct fetch_job *f = (struct fetch_job *)j;
    fetch_request_free(&f->req);
    seqset_free(&f->set);
    free(f->uids);
    free(f->seen_added);
}

/* ---- sections ---- */

/* Appends the bytes IMAP sends for raw [offset, offset + length) of fd — a LF without CR
 * before it as CRLF, NUL as 0x80 (as src/mime and conn_write_file do) — dropping the first
 * `skip` and keeping at most `limit`. Returns the number of bytes appended. */
static uint64_t copy_normalised(int fd, uint64_t offset, uint64_t length, uint64_t skip,
                                uint64_t limit, struct evbuffer *out)
{
    unsigned char raw[16384], conv[2 * sizeof(raw)];
    bool prev_cr = false;
    uint64_t sent = 0;
    while (length > 0 && sent < limit) {
        size_t want = length < sizeof(raw) ? (size_t)length : sizeof(raw);
        ssize_t r = pread(fd, raw, want, (off_t)offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        offset += (uint64_t)r;
        length -= (uint64_t)r;
        size_t n = 0;
        for (ssize_t k = 0; k < r; k++) {
            if (raw[k] == '\n' && !prev_cr)
                conv[n++] = '\r';
            conv[n++] = raw[k] == '\0' ? 0x80 : raw[k];
            prev_cr = raw[k] == '\r';
        }
        size_t from = 0;
        if (skip > 0) {
            from = skip < n ? (size_t)skip : n;
            skip -= from;
        }
        size_t give = n - from;
        if (give > limit - sent)
            give = (size_t)(limit - sent);
        evbuffer_add(out, conv + from, give);
        sent += give;
    }
    return sent;
}

static bool buf_sink(void *ctx, const void *data, size_t len)
{
    mime_buf_add(ctx, data, len);
    return true;
}

/* The literal of a section: [origin, origin + count) of its `octets` normalised bytes. */
static void out_section(struct fetch_job *f, const struct fetch_att *a, int fd,
                        const struct mime_range *range, uint64_t octets)
{
    struct imap_output *o = &f->job.out;
    uint64_t start = 0, len = octets;
    if (a->has_partial) {
        start = a->origin < octets ? a->origin : octets;
        len = octets - start < a->count ? octets - start : a->count;
    }
    if (len <= INLINE_MAX) {
        struct evbuffer *tmp = evbuffer_new();
        if (len > 0)
            copy_normalised(fd, range->start, range->end - range->start, start, len, tmp);
        /* what was read is what is announced, even if the file changed meanwhile */
        out_printf(o, "{%zu}\r\n", evbuffer_get_length(tmp));
        evbuffer_add_buffer(out_text(o), tmp);
        evbuffer_free(tmp);
        return;
    }
    struct conn_file_range cr = {.offset = range->start,
                                 .length = range->end - range->start,
                                 .crlf = true,
                                 .nul_as_0x80 = true,
                                 .skip = start,
                                 .limit = len};
    out_printf(o, "{%llu}\r\n", (unsigned long long)len);
    if (!out_file(o, fd, &cr)) {
        /* announced but cannot be streamed (out of descriptors): the response cannot be
         * completed, so the connection ends after what was built */
        log_error("conn %llu: cannot duplicate a message descriptor: %s",
                  (unsigned long long)f->job.conn_id, strerror(errno));
        f->job.fatal = true;
    }
}

static void out_inline(struct fetch_job *f, const struct fetch_att *a, const char *data, size_t len)
{
    uint64_t start = 0, n = len;
    if (a->has_partial) {
        start = a->origin < len ? a->origin : len;
        n = len - start < a->count ? len - start : a->count;
    }
    out_printf(&f->job.out, "{%llu}\r\n", (unsigned long long)n);
    out_add(&f->job.out, data + start, (size_t)n);
}

static void part_number(const struct fetch_section *sec, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sec->n_parts && n < size; i++)
        n += (size_t)snprintf(out + n, size - n, "%s%u", i ? "." : "", sec->parts[i]);
}

/* BODY[section]<partial>, RFC822, RFC822.HEADER, RFC822.TEXT. */
static void out_body_section(struct fetch_job *f, struct fetch_message *fm,
                             const struct fetch_att *a)
{
    struct fetch_section whole = {.text = SECTION_WHOLE};
    struct fetch_section header = {.text = SECTION_HEADER};
    struct fetch_section text = {.text = SECTION_TEXT};
    const struct fetch_section *sec = a->item == FETCH_RFC822          ? &whole
                                      : a->item == FETCH_RFC822_HEADER ? &header
                                      : a->item == FETCH_RFC822_TEXT   ? &text
                                                                       : &a->section;
    if (sec->n_parts == 0 && sec->text == SECTION_WHOLE && (fm->mime == NULL || fm->header_only)) {
        /* the whole message: the index knows its normalised size */
        struct mime_range all = {0, fm->info.file_size};
        out_section(f, a, fm->fd, &all, fm->info.size);
        return;
    }
    char number[FETCH_MAX_PART_DEPTH * 11 + 1];
    part_number(sec, number, sizeof(number));
    enum mime_section_text t = sec->text == SECTION_HEADER  ? MIME_SECTION_HEADER
                               : sec->text == SECTION_TEXT  ? MIME_SECTION_TEXT
                               : sec->text == SECTION_MIME  ? MIME_SECTION_MIME
                               : sec->text == SECTION_WHOLE ? MIME_SECTION_BODY
                                                            : MIME_SECTION_HEADER;
    struct mime_range range;
    struct mime_size size;
    enum mime_error e = mime_message_section(fm->mime, number, t, &range, &size);
    if (e != MIME_OK) {
        /* a section that does not exist is empty, as Dovecot answers it */
        out_printf(&f->job.out, "{0}\r\n");
        return;
    }
    if (sec->text == SECTION_HEADER_FIELDS || sec->text == SECTION_HEADER_FIELDS_NOT) {
        struct mime_buf b = {0};
        uint64_t octets = 0;
        e = mime_message_header_fields(fm->mime, &range, (const char *const *)sec->fields,
                                       sec->n_fields, sec->text == SECTION_HEADER_FIELDS_NOT,
                                       buf_sink, &b, &octets);
        out_inline(f, a, e == MIME_OK && b.data ? b.data : "", e == MIME_OK ? b.len : 0);
        mime_buf_free(&b);
        return;
    }
    out_section(f, a, mime_message_fd(fm->mime), &range, size.octets);
}

/* ENVELOPE or BODYSTRUCTURE from the cache, computed and cached on a miss. */
static char *cached(struct fetch_job *f, struct fetch_message *fm, enum store_cache_field field)
{
    char *value = NULL;
    if (store_cache_get(f->job.mailbox, fm->uid, field, &value) == STORE_OK)
        return value;
    return NULL;
}

static void compute_cached(struct fetch_job *f, struct fetch_message *fm)
{
    size_t len;
    if (fm->envelope == NULL) {
        const char *e = mime_message_envelope(fm->mime, &len);
        fm->envelope = xstrndup(e, len);
        store_cache_set(f->job.mailbox, fm->uid, STORE_CACHE_ENVELOPE, fm->envelope);
    }
    if (fm->bodystructure == NULL) {
        const char *b = mime_message_bodystructure(fm->mime, &len);
        fm->bodystructure = xstrndup(b, len);
        store_cache_set(f->job.mailbox, fm->uid, STORE_CACHE_BODYSTRUCTURE, fm->bodystructure);
    }
}

static bool att_wanted(const struct fetch_request *req, enum fetch_item item)
{
    for (size_t i = 0; i < req->n_atts; i++)
        if (req->atts[i].item == item)
            return true;
    return false;
}

/* Everything the message's response needs, before any of it is written: a message whose file
 * has gone (expunged elsewhere) is left out whole. */
static bool prepare_message(struct fetch_job *f, struct fetch_message *fm)
{
    struct store_mailbox *mb = f->job.mailbox;
    bool want_env = att_wanted(&f->req, FETCH_ENVELOPE);
    bool want_bs = att_wanted(&f->req, FETCH_BODYSTRUCTURE);
    if (want_env)
        fm->envelope = cached(f, fm, STORE_CACHE_ENVELOPE);
    if (want_bs)
        fm->bodystructure = cached(f, fm, STORE_CACHE_BODYSTRUCTURE);
    bool need_mime =
        f->needs_mime || (want_env && !fm->envelope) || (want_bs && !fm->bodystructure);
    if (!f->needs_file && !need_mime && !f->needs_header)
        return true;
    enum store_status st = store_open_message(mb, fm->uid, &fm->fd, &fm->info);
    if (st != STORE_OK) {
        if (st != STORE_NOT_FOUND)
            log_warning("conn %llu: FETCH of UID %u in %s: %s: %s",
                        (unsigned long long)f->job.conn_id, fm->uid, store_mailbox_name(mb),
                        store_status_text(st), store_last_error());
        return false;
    }
    struct stat sb;
    if (!need_mime && (fstat(fm->fd, &sb) < 0 || (uint64_t)sb.st_size != fm->info.file_size))
        need_mime = true; /* changed behind the index's back: measure it afresh */
    if (need_mime || f->needs_header) {
        enum mime_error e;
        fm->header_only = !need_mime;
        fm->mime = fm->header_only ? mime_message_open_header(fm->fd, &e)
                                   : mime_message_open_fd(fm->fd, &e);
        if (fm->mime == NULL) {
            log_warning("conn %llu: FETCH of UID %u in %s: %s", (unsigned long long)f->job.conn_id,
                        fm->uid, store_mailbox_name(mb), mime_error_text(e));
            return false;
        }
        if (fm->header_only)
            return true; /* the file is the size the index says: so is the message */
        if ((want_env && !fm->envelope) || (want_bs && !fm->bodystructure))
            compute_cached(f, fm);
        /* the whole message is sent with the sizes of this very reading */
        fm->info.size = mime_message_size(fm->mime);
    }
    return true;
}

static void release_message(struct fetch_message *fm)
{
    mime_message_free(fm->mime);
    if (fm->fd >= 0)
        close(fm->fd);
    free(fm->envelope);
    free(fm->bodystructure);
}

static void fetch_one(struct fetch_job *f, size_t index)
{
    struct store_mailbox *mb = f->job.mailbox;
    struct fetch_message fm = {.uid = f->uids[index], .fd = -1};
    fm.seq = store_seq(mb, fm.uid);
    fm.view = store_message(mb, fm.seq);
    if (fm.view == NULL)
        return;
    if (!prepare_message(f, &fm)) {
        f->vanished = true;
        release_message(&fm);
        return;
    }
    struct imap_output *o = &f->job.out;
    out_printf(o, "* %u FETCH (", fm.seq);
    bool first = true;
    if (f->uid && !f->uid_requested) {
        out_printf(o, "UID %u", fm.uid);
        first = false;
    }
    for (size_t i = 0; i < f->req.n_atts; i++) {
        const struct fetch_att *a = &f->req.atts[i];
        if (!first)
            out_add(o, " ", 1);
        first = false;
        char date[IMAP_DATETIME_LEN + 1];
        size_t len;
        switch (a->item) {
        case FETCH_UID:
            out_printf(o, "UID %u", fm.uid);
            break;
        case FETCH_FLAGS:
            out_printf(o, "FLAGS ");
            out_flags(o, fm.view->flags, fm.view->keywords, fm.view->recent);
            break;
        case FETCH_INTERNALDATE:
            imap_datetime_format(
                &(struct imap_datetime){.utc = (int64_t)fm.view->internaldate, .zone_minutes = 0},
                date);
            out_printf(o, "INTERNALDATE \"%s\"", date);
            break;
        case FETCH_RFC822_SIZE:
            out_printf(o, "RFC822.SIZE %llu",
                       (unsigned long long)(fm.mime && !fm.header_only ? mime_message_size(fm.mime)
                                                                       : fm.view->size));
            break;
        case FETCH_ENVELOPE:
            out_printf(o, "ENVELOPE %s", fm.envelope ? fm.envelope : "NIL");
            break;
        case FETCH_BODYSTRUCTURE:
            out_printf(o, "BODYSTRUCTURE %s", fm.bodystructure ? fm.bodystructure : "NIL");
            break;
        case FETCH_BODY: {
            const char *body = mime_message_body(fm.mime, &len);
            out_printf(o, "BODY ");
            out_add(o, body, len);
            break;
        }
        case FETCH_RFC822:
        case FETCH_RFC822_HEADER:
        case FETCH_RFC822_TEXT:
        case FETCH_BODY_SECTION: {
            char *name = fetch_att_name(a);
            out_printf(o, "%s ", name);
            free(name);
            out_body_section(f, &fm, a);
            break;
        }
        case FETCH_BINARY:
        case FETCH_BINARY_SIZE:
        case FETCH_MODSEQ:
            break; /* refused by imap_fetch() */
        }
    }
    if (f->seen_added && f->seen_added[index] && !f->flags_requested) {
        out_printf(o, "%sFLAGS ", first ? "" : " ");
        out_flags(o, fm.view->flags, fm.view->keywords, fm.view->recent);
    }
    out_add(o, ")\r\n", 3);
    release_message(&fm);
}

/* \Seen for every message a non-PEEK body fetch reads, in one store call, before the
 * responses, so that they show it. */
static void set_seen(struct fetch_job *f)
{
    struct store_mailbox *mb = f->job.mailbox;
    if (!fetch_sets_seen(&f->req) || store_readonly(mb))
        return;
    uint32_t *unseen = xcalloc(f->n + 1, sizeof(*unseen));
    size_t k = 0;
    f->seen_added = xcalloc(f->n + 1, sizeof(*f->seen_added));
    for (size_t i = 0; i < f->n; i++) {
        const struct store_message *m = store_message(mb, store_seq(mb, f->uids[i]));
        if (m && !(m->flags & STORE_SEEN) && !m->expunged) {
            unseen[k++] = f->uids[i];
            f->seen_added[i] = true;
        }
    }
    if (k > 0) {
        enum store_status st =
            store_set_flags(mb, unseen, k, STORE_FLAGS_ADD, STORE_SEEN, NULL, 0, NULL);
        if (st != STORE_OK) {
            log_warning("conn %llu: FETCH could not set \\Seen: %s: %s",
                        (unsigned long long)f->job.conn_id, store_status_text(st),
                        store_last_error());
            memset(f->seen_added, 0, (f->n + 1) * sizeof(*f->seen_added));
        }
    }
    free(unseen);
}

static void fetch_work(struct imap_job *j)
{
    struct fetch_job *f = (struct fetch_job *)j;
    if (!f->resolved) {
        f->resolved = true;
        mime_init();
        const char *error = NULL;
        if (!job_resolve_set(j, &f->set, f->uid, &f->uids, &f->n, &error)) {
            job_reply(j, "BAD", error);
            f->next = f->n = 0;
            return;
        }
        set_seen(f);
    }
    while (f->next < f->n && out_text_length(&j->out) < BATCH_TEXT &&
           out_files(&j->out) < BATCH_FILES)
        fetch_one(f, f->next++);
    if (f->next < f->n)
        return;
    /* RFC 3501 §7.4.1: no EXPUNGE during FETCH; UID FETCH may have them */
    job_sync(j, f->uid);
    if (f->vanished)
        job_reply(j, "OK",
                  "[EXPUNGEISSUED] Some messages were expunged meanwhile and are "
                  "left out");
    else
        job_reply(j, "OK", f->uid ? "UID FETCH completed" : "FETCH completed");
}

static void fetch_next_batch(void *arg)
{
    imap_job_resubmit(arg);
}

static void fetch_finish(struct imap_job *j)
{
    struct fetch_job *f = (struct fetch_job *)j;
    if (f->next < f->n && !conn_is_closing(j->s->conn)) {
        j->keep = true;
        conn_set_timeout(j->s->conn, imap_settings(j->s)->auth_timeout); /* still active */
        conn_when_drained(j->s->conn, fetch_next_batch, j);
    }
}

void imap_fetch(struct imap_session *s, const char *tag, bool uid, const struct imap_arg *set,
                struct fetch_request *req)
{
    struct fetch_job *f = imap_job_new(s, tag, sizeof(*f), fetch_work);
    f->job.release = fetch_release;
    f->job.finish = fetch_finish;
    f->req = *req;
    memset(req, 0, sizeof(*req));
    f->uid = uid;
    const char *error = NULL;
    if (!seqset_parse_arg(set, &f->set, &error)) {
        imap_bad_command(s, tag, error);
        imap_job_free(&f->job);
        return;
    }
    if (f->set.last_result) {
        imap_bad_command(s, tag, "SEARCHRES ($) is not supported");
        imap_job_free(&f->job);
        return;
    }
    if (f->req.has_changedsince || f->req.vanished) {
        imap_bad_command(s, tag, "CONDSTORE and QRESYNC are not supported");
        imap_job_free(&f->job);
        return;
    }
    for (size_t i = 0; i < f->req.n_atts; i++) {
        const struct fetch_att *a = &f->req.atts[i];
        switch (a->item) {
        case FETCH_BINARY:
        case FETCH_BINARY_SIZE:
        case FETCH_MODSEQ:
            imap_bad_command(s, tag, "BINARY and MODSEQ are not supported");
            imap_job_free(&f->job);
            return;
        case FETCH_FLAGS:
            f->flags_requested = true;
            break;
        case FETCH_UID:
            f->uid_requested = true;
            break;
        case FETCH_BODY:
            f->needs_file = f->needs_mime = true;
            break;
        case FETCH_RFC822:
            f->needs_file = true;
            break;
        case FETCH_RFC822_HEADER:
            f->needs_file = f->needs_header = true;
            break;
        case FETCH_RFC822_TEXT:
            f->needs_file = f->needs_mime = true;
            break;
        case FETCH_BODY_SECTION:
            f->needs_file = true;
            if (a->section.n_parts == 0 &&
                (a->section.text == SECTION_HEADER || a->section.text == SECTION_HEADER_FIELDS ||
                 a->section.text == SECTION_HEADER_FIELDS_NOT))
                f->needs_header = true;
            else if (a->section.n_parts > 0 || a->section.text != SECTION_WHOLE)
                f->needs_mime = true;
            break;
        default:
            break;
        }
    }
    imap_job_submit(&f->job);
}

void cmd_fetch(struct imap_session *s, struct imap_command *cmd)
{
    struct fetch_request req;
    const char *error = NULL;
    if (cmd->n_args < 2) {
        imap_bad_command(s, cmd->tag, "FETCH takes a sequence set and attributes");
        return;
    }
    if (!fetch_parse(cmd->args + 1, cmd->n_args - 1, &req, &error)) {
        imap_bad_command(s, cmd->tag, error);
        return;
    }
    imap_fetch(s, cmd->tag, false, &cmd->args[0], &req);
}
