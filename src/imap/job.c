/* IMAP store jobs: a command's work on the store pool, its response built there and written
 * on the I/O thread in order (text and streamed file ranges), and the untagged updates of the
 * selected mailbox (RFC 3501 §7.4.1). */
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postern/log.h"
#include "postern/util.h"
#include "session_internal.h"

/* ---- output ---- */

static struct out_segment *new_segment(struct imap_output *o)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 4;
        o->segs = xrealloc(o->segs, o->cap * sizeof(*o->segs));
    }
    struct out_segment *seg = &o->segs[o->n++];
    memset(seg, 0, sizeof(*seg));
    seg->fd = -1;
    return seg;
}

struct evbuffer *out_text(struct imap_output *o)
{
    if (o->n == 0 || o->segs[o->n - 1].fd >= 0)
        new_segment(o)->text = evbuffer_new();
    return o->segs[o->n - 1].text;
}

void out_printf(struct imap_output *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(out_text(o), fmt, ap);
    va_end(ap);
}

void out_add(struct imap_output *o, const void *data, size_t len)
{
    evbuffer_add(out_text(o), data, len);
}

bool out_file(struct imap_output *o, int fd, const struct conn_file_range *range)
{
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0)
        return false;
    struct out_segment *seg = new_segment(o);
    seg->fd = own;
    seg->range = *range;
    return true;
}

size_t out_text_length(const struct imap_output *o)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n; i++)
        if (o->segs[i].text)
            n += evbuffer_get_length(o->segs[i].text);
    return n;
}

size_t out_files(const struct imap_output *o)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n; i++)
        n += o->segs[i].fd >= 0;
    return n;
}

void out_flush(struct conn *c, struct imap_output *o)
{
    bool broken = false;
    for (size_t i = 0; i < o->n; i++) {
        struct out_segment *seg = &o->segs[i];
        if (broken || conn_is_closing(c)) {
            /* nothing more may follow a literal that could not be sent */
        } else if (seg->text) {
            conn_write_buffer(c, seg->text);
        } else if (!conn_write_file(c, seg->fd, &seg->range)) {
            /* a literal's length was announced: the stream cannot go on without its bytes */
            log_error("conn %llu: cannot send a message file: %s", (unsigned long long)conn_id(c),
                      strerror(errno));
            conn_close(c, "cannot send a message file");
            broken = true;
        }
    }
    out_free(o);
}

void out_free(struct imap_output *o)
{
    for (size_t i = 0; i < o->n; i++) {
        if (o->segs[i].text)
            evbuffer_free(o->segs[i].text);
        if (o->segs[i].fd >= 0)
            close(o->segs[i].fd);
    }
    free(o->segs);
    memset(o, 0, sizeof(*o));
}

void out_astring(struct imap_output *o, const char *s)
{
    size_t len = strlen(s);
    bool literal = false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80 || s[i] == '\r' || s[i] == '\n')
            literal = true;
    if (literal) {
        out_printf(o, "{%zu}\r\n", len);
        out_add(o, s, len);
        return;
    }
    struct evbuffer *b = out_text(o);
    evbuffer_add(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            evbuffer_add(b, "\\", 1);
        evbuffer_add(b, &s[i], 1);
    }
    evbuffer_add(b, "\"", 1);
}

void out_flags(struct imap_output *o, unsigned flags, const char *keywords, bool recent)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{STORE_SEEN, "\\Seen"},
                 {STORE_ANSWERED, "\\Answered"},
                 {STORE_FLAGGED, "\\Flagged"},
                 {STORE_DELETED, "\\Deleted"},
                 {STORE_DRAFT, "\\Draft"}};
    struct evbuffer *b = out_text(o);
    bool first = true;
    evbuffer_add(b, "(", 1);
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        if (flags & names[i].bit) {
            evbuffer_add_printf(b, "%s%s", first ? "" : " ", names[i].name);
            first = false;
        }
    }
    if (recent) {
        evbuffer_add_printf(b, "%s\\Recent", first ? "" : " ");
        first = false;
    }
    if (keywords && keywords[0]) {
        evbuffer_add_printf(b, "%s%s", first ? "" : " ", keywords);
    }
    evbuffer_add(b, ")", 1);
}

void out_uid_pairs(struct imap_output *o, const uint32_t *src, const uint32_t *dst, size_t n)
{
    /* runs where both sides go up by one become a:b */
    struct evbuffer *b = out_text(o);
    bool first = true;
    for (size_t i = 0; i < n;) {
        if (dst[i] == 0) {
            i++;
            continue;
        }
        size_t j = i;
        while (j + 1 < n && dst[j + 1] != 0 && src[j + 1] == src[j] + 1 && dst[j + 1] == dst[j] + 1)
            j++;
        if (j == i)
            evbuffer_add_printf(b, "%s%u", first ? "" : ",", src[i]);
        else
            evbuffer_add_printf(b, "%s%u:%u", first ? "" : ",", src[i], src[j]);
        first = false;
        i = j + 1;
    }
}

/* ---- jobs ---- */

void *imap_job_new(struct imap_session *s, const char *tag, size_t size, imap_job_fn work)
{
    struct imap_job *j = xcalloc(1, size);
    j->s = s;
    j->conn_id = conn_id(s->conn);
    j->tag = xstrdup(tag);
    j->account = s->account;
    j->mailbox = s->selected;
    j->work = work;
    return j;
}

void imap_job_free(struct imap_job *j)
{
    if (j == NULL)
        return;
    if (j->release)
        j->release(j);
    out_free(&j->out);
    free(j->tag);
    free(j);
}

static void job_work(void *arg)
{
    struct imap_job *j = arg;
    j->work(j);
}

static void job_done(void *arg)
{
    struct imap_job *j = arg;
    struct imap_session *s = j->s;
    j->keep = false;
    out_flush(s->conn, &j->out);
    if (j->finish)
        j->finish(j); /* after the output: a batch waits for it to drain */
    if (j->fatal)
        conn_close(s->conn, "a response could not be completed");
    if (j->stale && !conn_is_closing(s->conn)) {
        /* RFC 3501 §7.1.5: the mailbox was deleted or renamed by another session */
        conn_printf(s->conn, "* BYE [UNAVAILABLE] The selected mailbox was deleted or renamed "
                             "elsewhere\r\n");
        conn_close(s->conn, "selected mailbox went away");
    }
    if (j->keep)
        return;
    imap_job_free(j);
    imap_command_done(s);
}

bool imap_job_submit(struct imap_job *j)
{
    struct imap_session *s = j->s;
    s->busy = true;
    conn_pause_input(s->conn, true);
    if (!conn_submit_store(s->conn, job_work, job_done, j)) {
        imap_reply(s, j->tag, "NO", "[UNAVAILABLE] The server is busy; try again shortly");
        imap_job_free(j);
        imap_command_done(s);
        return false;
    }
    return true;
}

static void resubmit_later(void *arg)
{
    imap_job_resubmit(arg);
}

void imap_job_resubmit(struct imap_job *j)
{
    struct imap_session *s = j->s;
    if (conn_is_closing(s->conn)) {
        imap_job_free(j);
        imap_command_done(s);
        return;
    }
    /* the command has started answering: a full queue only delays it */
    if (!conn_submit_store(s->conn, job_work, job_done, j))
        conn_defer(s->conn, 20, resubmit_later, j);
}

void job_reply(struct imap_job *j, const char *status, const char *text)
{
    out_printf(&j->out, "%s %s %s\r\n", j->tag, status, text);
}

void job_store_error(struct imap_job *j, enum store_status st, const char *what, bool trycreate)
{
    const char *text;
    switch (st) {
    case STORE_NOT_FOUND:
        text = trycreate ? "[TRYCREATE] The mailbox does not exist"
                         : "[NONEXISTENT] The mailbox does not exist";
        break;
    case STORE_EXISTS:
        text = "[ALREADYEXISTS] The mailbox already exists";
        break;
    case STORE_INVALID_NAME:
        text = "[CANNOT] Invalid mailbox name, flag or keyword";
        break;
    case STORE_INVALID:
        text = "[CANNOT] This operation is not allowed on this mailbox";
        break;
    case STORE_READONLY:
        text = "[READ-ONLY] The mailbox is read-only (EXAMINE)";
        break;
    case STORE_NO_SPACE:
        text = "[OVERQUOTA] Not enough space for your mailbox";
        break;
    case STORE_BUSY:
        text = "[INUSE] The mailbox is in use; try again shortly";
        break;
    case STORE_STALE:
        j->stale = true;
        text = "[UNAVAILABLE] The mailbox was deleted or renamed elsewhere";
        break;
    case STORE_CORRUPT:
        text = "[SERVERBUG] The mailbox index was damaged; it is being rebuilt, try again";
        break;
    default:
        text = "[UNAVAILABLE] The mailbox store failed; try again later";
        break;
    }
    if (st == STORE_IO || st == STORE_CORRUPT || st == STORE_NO_SPACE || st == STORE_BUSY)
        log_warning("conn %llu: %s: %s: %s", (unsigned long long)j->conn_id, what,
                    store_status_text(st), store_last_error());
    else
        log_debug("conn %llu: %s: %s: %s", (unsigned long long)j->conn_id, what,
                  store_status_text(st), store_last_error());
    job_reply(j, "NO", text);
}

void job_sync(struct imap_job *j, bool allow_expunges)
{
    if (j->mailbox == NULL || j->stale)
        return;
    struct store_changes ch;
    enum store_status st = store_sync(j->mailbox, allow_expunges, &ch);
    if (st == STORE_STALE) {
        j->stale = true;
        return;
    }
    if (st != STORE_OK) {
        log_warning("conn %llu: sync of %s: %s: %s", (unsigned long long)j->conn_id,
                    store_mailbox_name(j->mailbox), store_status_text(st), store_last_error());
        return;
    }
    for (size_t i = 0; i < ch.expunged_count; i++)
        out_printf(&j->out, "* %u EXPUNGE\r\n", ch.expunged_seqs[i]);
    if (ch.exists_changed)
        out_printf(&j->out, "* %u EXISTS\r\n* %u RECENT\r\n", ch.exists, ch.recent);
    for (size_t i = 0; i < ch.flag_count; i++) {
        const struct store_message *m = store_message(j->mailbox, ch.flag_seqs[i]);
        if (m == NULL)
            continue;
        out_printf(&j->out, "* %u FETCH (UID %u FLAGS ", ch.flag_seqs[i], m->uid);
        out_flags(&j->out, m->flags, m->keywords, m->recent);
        out_add(&j->out, ")\r\n", 3);
    }
    store_changes_free(&ch);
}

/* The first position in the view whose UID is >= uid (1-based; count + 1 when none). */
static uint32_t seq_at_or_after(const struct store_mailbox *mb, uint32_t uid)
{
    uint32_t lo = 1, hi = store_count(mb) + 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (store_message(mb, mid)->uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool job_resolve_set(struct imap_job *j, struct seqset *set, bool uid, uint32_t **uids,
                     size_t *count, const char **error)
{
    const struct store_mailbox *mb = j->mailbox;
    uint32_t n = store_count(mb);
    *uids = NULL;
    *count = 0;
    if (uid) {
        seqset_resolve(set, n ? store_message(mb, n)->uid : 0);
        size_t cap = 0;
        for (size_t r = 0; r < set->n_ranges; r++) {
            for (uint32_t seq = seq_at_or_after(mb, set->ranges[r].lo); seq <= n; seq++) {
                uint32_t u = store_message(mb, seq)->uid;
                if (u > set->ranges[r].hi)
                    break;
                if (*count == cap) {
                    cap = cap ? cap * 2 : 64;
                    *uids = xrealloc(*uids, cap * sizeof(**uids));
                }
                (*uids)[(*count)++] = u;
            }
        }
        return true;
    }
    seqset_resolve(set, n);
    if (set->n_ranges > 0 && set->ranges[set->n_ranges - 1].hi > n) {
        *error = "Invalid message sequence number";
        return false;
    }
    uint64_t total = seqset_count(set);
    *uids = xcalloc(total + 1, sizeof(**uids));
    struct seqset_iter it;
    uint32_t seq;
    for (seqset_iter_init(&it); seqset_next(set, &it, &seq);)
        (*uids)[(*count)++] = store_message(mb, seq)->uid;
    return true;
}
