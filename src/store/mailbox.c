/* A selected mailbox: the session's view (sequence numbers), syncing it, flags, expunge, reads. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postern/util.h"

static const char no_keywords[] = "";

static void msg_set_keywords(struct store_message *m, const char *keywords)
{
    if (m->keywords != no_keywords)
        free((char *)m->keywords);
    m->keywords = keywords == NULL || keywords[0] == '\0' ? no_keywords : xstrdup(keywords);
}

static void view_clear(struct store_mailbox *mb)
{
    for (size_t i = 0; i < mb->count; i++)
        msg_set_keywords(&mb->msgs[i], NULL);
    free(mb->msgs);
    mb->msgs = NULL;
    mb->count = mb->cap = 0;
    mb->recent = 0;
}

static struct store_message *view_find(const struct store_mailbox *mb, uint32_t uid)
{
    size_t lo = 0, hi = mb->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mb->msgs[mid].uid == uid)
            return &mb->msgs[mid];
        if (mb->msgs[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static uint32_t view_max_uid(const struct store_mailbox *mb)
{
    return mb->count ? mb->msgs[mb->count - 1].uid : 0;
}

void view_set_flags(struct store_mailbox *mb, uint32_t uid, unsigned flags, const char *keywords,
                    uint64_t modseq)
{
    struct store_message *m = view_find(mb, uid);
    if (m == NULL)
        return;
    m->flags = flags;
    if (strcmp(m->keywords, keywords ? keywords : "") != 0)
        msg_set_keywords(m, keywords);
    m->modseq = modseq;
}

static int uid_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

void view_remove(struct store_mailbox *mb, const uint32_t *uids, size_t count,
                 struct store_expunged *expunged)
{
    uint32_t *sorted = xcalloc(count + 1, sizeof *sorted);
    if (count > 0)
        memcpy(sorted, uids, count * sizeof *uids);
    sort_items(sorted, count, sizeof *sorted, uid_desc);
    if (expunged != NULL) {
        expunged->seqs = xcalloc(count + 1, sizeof *expunged->seqs);
        expunged->uids = xcalloc(count + 1, sizeof *expunged->uids);
        expunged->count = 0;
    }
    /* descending: each sequence number is still valid when its EXPUNGE is sent */
    for (size_t i = 0; i < count; i++) {
        struct store_message *m = view_find(mb, sorted[i]);
        if (m == NULL)
            continue;
        size_t pos = (size_t)(m - mb->msgs);
        if (expunged != NULL) {
            expunged->seqs[expunged->count] = (uint32_t)pos + 1;
            expunged->uids[expunged->count++] = m->uid;
        }
        if (m->recent)
            mb->recent--;
        msg_set_keywords(m, NULL);
        memmove(m, m + 1, (mb->count - pos - 1) * sizeof *m);
        mb->count--;
    }
    free(sorted);
}

static void view_append(struct store_mailbox *mb, const struct store_message *m,
                        const char *keywords)
{
    if (mb->count == mb->cap) {
        mb->cap = mb->cap ? mb->cap * 2 : 64;
        mb->msgs = xrealloc(mb->msgs, mb->cap * sizeof *mb->msgs);
    }
    struct store_message *slot = &mb->msgs[mb->count++];
    *slot = *m;
    slot->keywords = no_keywords;
    msg_set_keywords(slot, keywords);
    if (slot->recent)
        mb->recent++;
}

/* New rows (UID above the view's highest) join the view; a writable handle claims their
 * \Recent, so exactly one session sees it (RFC 3501 §2.3.2). Inside a transaction. */
static enum store_status view_load_new(struct store_mailbox *mb, bool *added)
{
    struct idx *idx = mb->idx;
    uint32_t above = view_max_uid(mb);
    sqlite3_stmt *q;
    enum store_status st = idx_prepare_cached(idx,
                                              "SELECT uid, flags, keywords, size, file_size,"
                                              " internaldate, modseq, recent FROM msg WHERE uid > ?"
                                              " ORDER BY uid",
                                              &q);
    if (st != STORE_OK)
        return st;
    sqlite3_bind_int64(q, 1, above);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct store_message m = {
            .uid = (uint32_t)sqlite3_column_int64(q, 0),
            .flags = (unsigned)sqlite3_column_int(q, 1),
            .size = (uint64_t)sqlite3_column_int64(q, 3),
            .file_size = (uint64_t)sqlite3_column_int64(q, 4),
            .internaldate = (time_t)sqlite3_column_int64(q, 5),
            .modseq = (uint64_t)sqlite3_column_int64(q, 6),
            .recent = sqlite3_column_int(q, 7) != 0,
        };
        m.needs_crlf = m.size != m.file_size;
        view_append(mb, &m, (const char *)sqlite3_column_text(q, 2));
        *added = true;
    }
    idx_release(idx, q);
    if (rc != SQLITE_DONE)
        return idx_sqlite_status(idx, rc, "read messages");
    if (mb->readonly)
        return STORE_OK;
    st = idx_prepare_cached(idx, "UPDATE msg SET recent = 0 WHERE uid > ? AND recent = 1", &q);
    if (st != STORE_OK)
        return st;
    sqlite3_bind_int64(q, 1, above);
    rc = sqlite3_step(q);
    idx_release(idx, q);
    return rc == SQLITE_DONE ? STORE_OK : idx_sqlite_status(idx, rc, "claim recent");
}

enum store_status store_open(struct store_account *account, const char *name, bool readonly,
                             struct store_mailbox **out)
{
    char canonical[STORE_NAME_MAX + 1];
    enum store_status st = store_name_check(name, canonical, sizeof canonical);
    if (st != STORE_OK)
        return st;
    struct store_mailbox *mb = xcalloc(1, sizeof *mb);
    mb->account = account;
    mb->readonly = readonly;
    st = idx_open(account, canonical, &mb->idx);
    if (st == STORE_OK)
        st = idx_lock(mb->idx, false);
    if (st != STORE_OK) {
        store_close(mb);
        return st;
    }
    bool added = false;
    st = idx_begin(mb->idx);
    if (st == STORE_OK)
        st = view_load_new(mb, &added);
    if (st == STORE_OK)
        st = idx_commit(mb->idx);
    else
        idx_rollback(mb->idx);
    mb->view_modseq = mb->idx->modseq;
    mb->uidnext = mb->idx->uidnext;
    idx_unlock(mb->idx);
    if (st != STORE_OK) {
        store_close(mb);
        return st;
    }
    *out = mb;
    return STORE_OK;
}

void store_close(struct store_mailbox *mb)
{
    if (mb == NULL)
        return;
    view_clear(mb);
    idx_close(mb->idx);
    free(mb);
}

const char *store_mailbox_name(const struct store_mailbox *mb)
{
    return mb->idx->name;
}

bool store_readonly(const struct store_mailbox *mb)
{
    return mb->readonly;
}

uint32_t store_count(const struct store_mailbox *mb)
{
    return (uint32_t)mb->count;
}

uint32_t store_recent(const struct store_mailbox *mb)
{
    return mb->recent;
}

uint32_t store_uidvalidity(const struct store_mailbox *mb)
{
    return mb->idx->uidvalidity;
}

uint32_t store_uidnext(const struct store_mailbox *mb)
{
    return mb->uidnext;
}

uint64_t store_highest_modseq(const struct store_mailbox *mb)
{
    return mb->view_modseq;
}

const struct store_message *store_message(const struct store_mailbox *mb, uint32_t seq)
{
    return seq >= 1 && seq <= mb->count ? &mb->msgs[seq - 1] : NULL;
}

uint32_t store_seq(const struct store_mailbox *mb, uint32_t uid)
{
    const struct store_message *m = view_find(mb, uid);
    return m ? (uint32_t)(m - mb->msgs) + 1 : 0;
}

static void push_u32(uint32_t **arr, size_t *n, uint32_t v)
{
    *arr = xrealloc(*arr, (*n + 1) * sizeof **arr);
    (*arr)[(*n)++] = v;
}

/* Flag changes and expunges of messages in the view since view_modseq (inside a transaction).
 * full: the index was rebuilt or tombstones are gone, so compare every row. */
static enum store_status view_refresh(struct store_mailbox *mb, bool full, uint32_t **changed,
                                      size_t *nchanged)
{
    struct idx *idx = mb->idx;
    uint32_t max = view_max_uid(mb);
    if (max == 0)
        return STORE_OK;
    sqlite3_stmt *q;
    enum store_status st;
    if (full) {
        for (size_t i = 0; i < mb->count; i++)
            mb->msgs[i].expunged = true; /* until its row is seen */
        st = idx_prepare_cached(idx,
                                "SELECT uid, flags, keywords, modseq FROM msg WHERE uid <= ?"
                                " ORDER BY uid",
                                &q);
    } else {
        st = idx_prepare_cached(idx,
                                "SELECT uid, flags, keywords, modseq FROM msg WHERE uid <= ?"
                                " AND modseq > ? ORDER BY uid",
                                &q);
    }
    if (st != STORE_OK)
        return st;
    sqlite3_bind_int64(q, 1, max);
    if (!full)
        sqlite3_bind_int64(q, 2, (int64_t)mb->view_modseq);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct store_message *m = view_find(mb, (uint32_t)sqlite3_column_int64(q, 0));
        if (m == NULL)
            continue;
        if (full)
            m->expunged = false;
        unsigned flags = (unsigned)sqlite3_column_int(q, 1);
        const char *kw = (const char *)sqlite3_column_text(q, 2);
        if (kw == NULL)
            kw = "";
        if (flags != m->flags || strcmp(kw, m->keywords) != 0) {
            m->flags = flags;
            msg_set_keywords(m, kw);
            push_u32(changed, nchanged, m->uid);
        }
        m->modseq = (uint64_t)sqlite3_column_int64(q, 3);
    }
    idx_release(idx, q);
    if (rc != SQLITE_DONE)
        return idx_sqlite_status(idx, rc, "read changes");
    if (full)
        return STORE_OK;
    st = idx_prepare_cached(idx, "SELECT uid FROM expunged WHERE modseq > ? AND uid <= ?", &q);
    if (st != STORE_OK)
        return st;
    sqlite3_bind_int64(q, 1, (int64_t)mb->view_modseq);
    sqlite3_bind_int64(q, 2, max);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct store_message *m = view_find(mb, (uint32_t)sqlite3_column_int64(q, 0));
        if (m != NULL)
            m->expunged = true;
    }
    idx_release(idx, q);
    return rc == SQLITE_DONE ? STORE_OK : idx_sqlite_status(idx, rc, "read expunges");
}

static enum store_status do_sync(struct store_mailbox *mb, bool rescan, bool allow_expunges,
                                 struct store_changes *ch)
{
    memset(ch, 0, sizeof *ch);
    struct idx *idx = mb->idx;
    enum store_status st = idx_lock(idx, rescan);
    if (st != STORE_OK)
        return st;
    bool full = idx->reopened || mb->view_modseq < idx->tomb_floor;
    uint32_t *changed = NULL;
    size_t nchanged = 0;
    bool added = false;
    uint32_t before = (uint32_t)mb->count;
    st = idx_begin(idx);
    if (st == STORE_OK)
        st = view_refresh(mb, full, &changed, &nchanged);
    if (st == STORE_OK)
        st = view_load_new(mb, &added);
    if (st == STORE_OK)
        st = idx_commit(idx);
    else
        idx_rollback(idx);
    if (st == STORE_OK) {
        mb->view_modseq = idx->modseq;
        mb->uidnext = idx->uidnext;
    }
    idx_unlock(idx);
    if (st != STORE_OK) {
        free(changed);
        return st;
    }
    if (allow_expunges) {
        uint32_t *gone = NULL;
        size_t ngone = 0;
        for (size_t i = 0; i < mb->count; i++)
            if (mb->msgs[i].expunged)
                push_u32(&gone, &ngone, mb->msgs[i].uid);
        struct store_expunged ex = {0};
        view_remove(mb, gone, ngone, &ex);
        ch->expunged_seqs = ex.seqs;
        ch->expunged_count = ex.count;
        free(ex.uids);
        free(gone);
    }
    for (size_t i = 0; i < nchanged; i++) {
        const struct store_message *m = view_find(mb, changed[i]);
        if (m != NULL && !m->expunged)
            push_u32(&ch->flag_seqs, &ch->flag_count, (uint32_t)(m - mb->msgs) + 1);
    }
    free(changed);
    ch->exists_changed = added || (ch->expunged_count == 0 && mb->count != before);
    ch->exists = (uint32_t)mb->count;
    ch->recent = mb->recent;
    ch->uidnext = mb->uidnext;
    ch->highest_modseq = mb->view_modseq;
    return STORE_OK;
}

enum store_status store_sync(struct store_mailbox *mb, bool allow_expunges,
                             struct store_changes *changes)
{
    return do_sync(mb, false, allow_expunges, changes);
}

enum store_status store_rescan(struct store_mailbox *mb, struct store_changes *changes)
{
    return do_sync(mb, true, true, changes);
}

void store_changes_free(struct store_changes *ch)
{
    free(ch->expunged_seqs);
    free(ch->flag_seqs);
    memset(ch, 0, sizeof *ch);
}

static enum store_status collect_uids(struct idx *idx, const char *sql, uint64_t modseq,
                                      uint32_t **out, size_t *n)
{
    sqlite3_stmt *q;
    enum store_status st = idx_prepare(idx, sql, &q);
    if (st != STORE_OK)
        return st;
    sqlite3_bind_int64(q, 1, (int64_t)modseq);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        push_u32(out, n, (uint32_t)sqlite3_column_int64(q, 0));
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? STORE_OK : idx_sqlite_status(idx, rc, "read changes");
}

enum store_status store_changes_since(struct store_mailbox *mb, uint64_t modseq,
                                      struct store_delta *d)
{
    memset(d, 0, sizeof *d);
    struct idx *idx = mb->idx;
    enum store_status st = idx_lock(idx, false);
    if (st != STORE_OK)
        return st;
    if (modseq < idx->tomb_floor) {
        idx_unlock(idx);
        store_set_error("changes before modseq %llu are no longer known",
                        (unsigned long long)idx->tomb_floor);
        return STORE_TOO_OLD;
    }
    st = idx_begin(idx);
    if (st == STORE_OK)
        st = collect_uids(idx, "SELECT uid FROM msg WHERE added > ?1 ORDER BY uid", modseq,
                          &d->new_uids, &d->new_count);
    if (st == STORE_OK)
        st = collect_uids(idx, "SELECT uid FROM msg WHERE modseq > ?1 AND added <= ?1 ORDER BY uid",
                          modseq, &d->changed_uids, &d->changed_count);
    if (st == STORE_OK)
        st = collect_uids(idx, "SELECT uid FROM expunged WHERE modseq > ?1 ORDER BY uid", modseq,
                          &d->expunged_uids, &d->expunged_count);
    d->highest_modseq = idx->modseq;
    if (st == STORE_OK)
        st = idx_commit(idx);
    else
        idx_rollback(idx);
    idx_unlock(idx);
    if (st != STORE_OK)
        store_delta_free(d);
    return st;
}

void store_delta_free(struct store_delta *d)
{
    free(d->new_uids);
    free(d->changed_uids);
    free(d->expunged_uids);
    memset(d, 0, sizeof *d);
}

static unsigned apply_flags(unsigned current, enum store_flag_op op, unsigned flags)
{
    switch (op) {
    case STORE_FLAGS_ADD:
        return current | flags;
    case STORE_FLAGS_REMOVE:
        return current & ~flags;
    case STORE_FLAGS_REPLACE:
        break;
    }
    return flags;
}

/* One pass over uids under the lock; *missing counts messages whose file had been renamed
 * by another tool (retried after a rescan). */
static enum store_status set_flags_locked(struct store_mailbox *mb, const uint32_t *uids,
                                          size_t count, enum store_flag_op op, unsigned flags,
                                          const char *const *keywords, size_t keyword_count,
                                          uint32_t **missing, size_t *nmissing)
{
    struct idx *idx = mb->idx;
    sqlite3_stmt *upd;
    enum store_status st = idx_begin(idx);
    if (st != STORE_OK)
        return st;
    st = idx_prepare(
        idx, "UPDATE msg SET fname = ?, flags = ?, keywords = ?, modseq = ? WHERE uid = ?", &upd);
    uint64_t modseq = 0;
    bool renamed = false;
    for (size_t i = 0; i < count && st == STORE_OK; i++) {
        struct idx_row row;
        st = idx_get_row(idx, uids[i], &row);
        if (st == STORE_NOT_FOUND) {
            st = STORE_OK; /* expunged meanwhile: skipped (RFC 2180 §4.2) */
            continue;
        }
        if (st != STORE_OK)
            break;
        unsigned nflags = apply_flags(row.flags, op, flags);
        char *nkw = keyword_count > 0 || op == STORE_FLAGS_REPLACE
                        ? keywords_apply(row.keywords, op, keywords, keyword_count)
                        : xstrdup(row.keywords);
        char *fname = NULL;
        if (nflags != row.flags) {
            struct mfile m;
            mfile_parse(row.fname, &m);
            fname = mfile_name(row.fname, m.base_len, row.file_size, row.size, row.uid, nflags,
                               m.extra, m.extra_len);
            if (fname == NULL || renameat(idx->cur_fd, row.fname, idx->cur_fd, fname) < 0) {
                if (fname == NULL || errno != ENOENT) {
                    st = store_errno(fname ? errno : ENAMETOOLONG, "rename", row.fname);
                } else {
                    push_u32(missing, nmissing, row.uid);
                    idx->cur_trusted = false; /* someone else renamed it: rescan */
                }
                free(fname);
                free(nkw);
                idx_row_clear(&row);
                continue;
            }
            renamed = true;
        }
        if (nflags != row.flags || strcmp(nkw, row.keywords) != 0) {
            if (modseq == 0)
                modseq = idx_next_modseq(idx);
            sqlite3_bind_text(upd, 1, fname ? fname : row.fname, -1, SQLITE_STATIC);
            sqlite3_bind_int(upd, 2, (int)nflags);
            sqlite3_bind_text(upd, 3, nkw, -1, SQLITE_STATIC);
            sqlite3_bind_int64(upd, 4, (int64_t)modseq);
            sqlite3_bind_int64(upd, 5, row.uid);
            int rc = sqlite3_step(upd);
            sqlite3_reset(upd);
            if (rc != SQLITE_DONE)
                st = idx_sqlite_status(idx, rc, "update flags");
            else
                view_set_flags(mb, row.uid, nflags, nkw, modseq);
        }
        free(fname);
        free(nkw);
        idx_row_clear(&row);
    }
    sqlite3_finalize(upd);
    /* No fsync for flag renames: a crash or power loss that undoes one makes the next holder
     * rescan (crash marker, boot id), and the file name wins. */
    if (renamed && idx->cur_trusted)
        idx_note_cur_changed(idx);
    if (st == STORE_OK)
        st = idx_save_meta(idx);
    if (st == STORE_OK)
        st = idx_commit(idx);
    else
        idx_rollback(idx);
    return st;
}

enum store_status store_set_flags(struct store_mailbox *mb, const uint32_t *uids, size_t count,
                                  enum store_flag_op op, unsigned flags,
                                  const char *const *keywords, size_t keyword_count,
                                  uint64_t *modseq)
{
    if (mb->readonly) {
        store_set_error("mailbox is read-only");
        return STORE_READONLY;
    }
    if ((flags & ~STORE_FLAGS_ALL) != 0 || !keywords_valid(keywords, keyword_count)) {
        store_set_error("invalid flag or keyword");
        return STORE_INVALID_NAME;
    }
    struct idx *idx = mb->idx;
    uint32_t *missing = NULL;
    size_t nmissing = 0;
    enum store_status st = idx_lock(idx, false);
    if (st == STORE_OK) {
        st = set_flags_locked(mb, uids, count, op, flags, keywords, keyword_count, &missing,
                              &nmissing);
        idx_unlock(idx);
    }
    if (st == STORE_OK && nmissing > 0) {
        /* renamed by another tool under us: the rescan learns the new names */
        uint32_t *again = missing;
        size_t nagain = nmissing;
        missing = NULL;
        nmissing = 0;
        st = idx_lock(idx, true);
        if (st == STORE_OK) {
            st = set_flags_locked(mb, again, nagain, op, flags, keywords, keyword_count, &missing,
                                  &nmissing);
            idx_unlock(idx);
        }
        free(again);
    }
    free(missing);
    if (modseq != NULL)
        *modseq = idx->modseq;
    return st;
}

/* Unlink first, then the rows: a crash in between leaves rows without files, which the
 * recovery scan expunges; never a file without its row, which would come back. */
static enum store_status expunge_locked(struct store_mailbox *mb, const uint32_t *uids,
                                        size_t count, uint32_t **done, size_t *ndone, bool *retry)
{
    struct idx *idx = mb->idx;
    sqlite3_stmt *q;
    enum store_status st;
    /* before any file goes: a later index loss must not hand out these UIDs again */
    idx_save_uid_hint(idx);
    if (uids == NULL)
        st = idx_prepare(idx, "SELECT uid, fname FROM msg WHERE flags & 8 ORDER BY uid", &q);
    else
        st = idx_prepare(idx, "SELECT uid, fname FROM msg WHERE uid = ? AND flags & 8", &q);
    if (st != STORE_OK)
        return st;
    for (size_t i = 0; i < (uids ? count : 1) && st == STORE_OK; i++) {
        if (uids != NULL)
            sqlite3_bind_int64(q, 1, uids[i]);
        int rc;
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
            uint32_t uid = (uint32_t)sqlite3_column_int64(q, 0);
            const char *fname = (const char *)sqlite3_column_text(q, 1);
            if (fname != NULL && unlinkat(idx->cur_fd, fname, 0) < 0) {
                if (errno != ENOENT) {
                    st = store_errno(errno, "unlink", fname);
                    break;
                }
                *retry = true; /* renamed by another tool: rescan and try again */
                idx->cur_trusted = false;
                continue;
            }
            push_u32(done, ndone, uid);
        }
        if (st == STORE_OK && rc != SQLITE_DONE)
            st = idx_sqlite_status(idx, rc, "read deleted");
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    if (*ndone == 0)
        return st;
    if (fsync_dirfd(idx->cur_fd) < 0 && st == STORE_OK)
        st = store_errno(errno, "fsync cur of", idx->name);
    enum store_status st2 = idx_begin(idx);
    if (st2 == STORE_OK)
        st2 = idx_expunge_rows(idx, *done, *ndone, idx_next_modseq(idx));
    if (idx->cur_trusted)
        idx_note_cur_changed(idx);
    if (st2 == STORE_OK)
        st2 = idx_save_meta(idx);
    if (st2 == STORE_OK)
        st2 = idx_commit(idx);
    else
        idx_rollback(idx);
    return st != STORE_OK ? st : st2;
}

enum store_status store_expunge(struct store_mailbox *mb, const uint32_t *uids, size_t count,
                                struct store_expunged *expunged)
{
    if (expunged != NULL)
        memset(expunged, 0, sizeof *expunged);
    if (mb->readonly) {
        store_set_error("mailbox is read-only");
        return STORE_READONLY;
    }
    struct idx *idx = mb->idx;
    uint32_t *done = NULL;
    size_t ndone = 0;
    bool retry = false;
    enum store_status st = idx_lock(idx, false);
    if (st == STORE_OK) {
        st = expunge_locked(mb, uids, count, &done, &ndone, &retry);
        idx_unlock(idx);
    }
    if (st == STORE_OK && retry) {
        st = idx_lock(idx, true);
        if (st == STORE_OK) {
            retry = false;
            st = expunge_locked(mb, uids, count, &done, &ndone, &retry);
            idx_unlock(idx);
        }
    }
    view_remove(mb, done, ndone, expunged);
    if (expunged != NULL)
        expunged->modseq = idx->modseq;
    free(done);
    return st;
}

void store_expunged_free(struct store_expunged *expunged)
{
    free(expunged->seqs);
    free(expunged->uids);
    memset(expunged, 0, sizeof *expunged);
}

enum store_status store_open_message(struct store_mailbox *mb, uint32_t uid, int *fd,
                                     struct store_message *info)
{
    *fd = -1;
    struct idx *idx = mb->idx;
    enum store_status st = STORE_NOT_FOUND;
    /* Without the lock first; a miss (file renamed meanwhile, index rebuilt elsewhere) is
     * retried once with the lock, which brings the index up to date. */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt == 1) {
            st = idx_lock(idx, false);
            if (st != STORE_OK)
                return st;
        }
        struct idx_row row;
        st = idx_get_row(idx, uid, &row);
        if (st == STORE_OK) {
            *fd = openat(idx->cur_fd, row.fname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            if (*fd < 0)
                st = store_errno(errno, "open", row.fname);
            else if (info != NULL)
                *info = (struct store_message){.uid = uid,
                                               .flags = row.flags,
                                               .keywords = no_keywords,
                                               .size = row.size,
                                               .file_size = row.file_size,
                                               .needs_crlf = row.size != row.file_size,
                                               .internaldate = (time_t)row.internaldate,
                                               .modseq = row.modseq};
            idx_row_clear(&row);
        }
        if (attempt == 1)
            idx_unlock(idx);
        if (st != STORE_NOT_FOUND)
            break;
    }
    return st;
}

static const char *cache_column(enum store_cache_field field)
{
    return field == STORE_CACHE_ENVELOPE ? "envelope" : "bodystructure";
}

enum store_status store_cache_get(struct store_mailbox *mb, uint32_t uid,
                                  enum store_cache_field field, char **value)
{
    *value = NULL;
    char sql[80];
    snprintf(sql, sizeof sql, "SELECT %s FROM msg WHERE uid = ?", cache_column(field));
    sqlite3_stmt *q;
    enum store_status st = idx_prepare(mb->idx, sql, &q);
    if (st != STORE_OK)
        return st;
    sqlite3_bind_int64(q, 1, uid);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) {
        *value = xstrdup((const char *)sqlite3_column_text(q, 0));
        st = STORE_OK;
    } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        st = STORE_NOT_FOUND;
    } else {
        st = idx_sqlite_status(mb->idx, rc, "read cache");
    }
    sqlite3_finalize(q);
    return st;
}

/* A cache entry is not mailbox state: no lock and no modseq (a rebuild drops it, which only
 * means computing it again). */
enum store_status store_cache_set(struct store_mailbox *mb, uint32_t uid,
                                  enum store_cache_field field, const char *value)
{
    char sql[80];
    snprintf(sql, sizeof sql, "UPDATE msg SET %s = ? WHERE uid = ?", cache_column(field));
    sqlite3_stmt *q;
    enum store_status st = idx_prepare(mb->idx, sql, &q);
    if (st == STORE_OK) {
        sqlite3_bind_text(q, 1, value, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, uid);
        int rc = sqlite3_step(q);
        if (rc != SQLITE_DONE)
            st = idx_sqlite_status(mb->idx, rc, "write cache");
        else if (sqlite3_changes(mb->idx->db) == 0)
            st = STORE_NOT_FOUND;
        sqlite3_finalize(q);
    }
    return st;
}
