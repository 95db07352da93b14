/* Messages entering a mailbox: APPEND (streamed to tmp/), COPY (hard links) and MOVE (renames). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "postern/util.h"

/* A message file waiting in the destination's tmp/ for its UID. */
struct staged {
    char *tmpname;
    unsigned flags;
    char *keywords;
    uint64_t size, file_size;
    int64_t internaldate;
    char *envelope, *bodystructure;
    size_t slot; /* index into the caller's dest_uids */
};

static void staged_free(struct staged *s, size_t n, int tmp_fd)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i].tmpname != NULL && tmp_fd >= 0)
            unlinkat(tmp_fd, s[i].tmpname, 0);
        free(s[i].tmpname);
        free(s[i].keywords);
        free(s[i].envelope);
        free(s[i].bodystructure);
    }
    free(s);
}

static enum store_status set_cache(struct idx *idx, uint32_t uid, const char *envelope,
                                   const char *bodystructure)
{
    if (envelope == NULL && bodystructure == NULL)
        return STORE_OK;
    sqlite3_stmt *q;
    enum store_status st =
        idx_prepare(idx, "UPDATE msg SET envelope = ?, bodystructure = ? WHERE uid = ?", &q);
    if (st != STORE_OK)
        return st;
    sqlite3_bind_text(q, 1, envelope, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, bodystructure, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, uid);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? STORE_OK : idx_sqlite_status(idx, rc, "copy cache");
}

static void get_cache(struct idx *idx, uint32_t uid, char **envelope, char **bodystructure)
{
    *envelope = *bodystructure = NULL;
    sqlite3_stmt *q;
    if (idx_prepare(idx, "SELECT envelope, bodystructure FROM msg WHERE uid = ?", &q) != STORE_OK)
        return;
    sqlite3_bind_int64(q, 1, uid);
    if (sqlite3_step(q) == SQLITE_ROW) {
        if (sqlite3_column_type(q, 0) != SQLITE_NULL)
            *envelope = xstrdup((const char *)sqlite3_column_text(q, 0));
        if (sqlite3_column_type(q, 1) != SQLITE_NULL)
            *bodystructure = xstrdup((const char *)sqlite3_column_text(q, 1));
    }
    sqlite3_finalize(q);
}

/* Staged files get UIDs and move from tmp/ to cur/ in one transaction. A crash after a rename
 * leaves a file whose U= is at least the committed UIDNEXT: recovery adopts it. */
static enum store_status commit_staged(struct idx *dst, struct staged *s, size_t n,
                                       uint32_t *dest_uids)
{
    enum store_status st = idx_lock(dst, false);
    if (st != STORE_OK)
        return st;
    st = idx_begin(dst);
    uint64_t modseq = idx_next_modseq(dst);
    bool renamed = false;
    for (size_t i = 0; i < n && st == STORE_OK; i++) {
        uint32_t uid;
        if (dst->uidnext >= UINT32_MAX) {
            store_set_error("UIDs of %s are exhausted", dst->name);
            st = STORE_NO_SPACE;
            break;
        }
        uid = dst->uidnext++;
        char *fname = mfile_name(s[i].tmpname, strlen(s[i].tmpname), s[i].file_size, s[i].size, uid,
                                 s[i].flags, "", 0);
        if (fname == NULL || renameat(dst->tmp_fd, s[i].tmpname, dst->cur_fd, fname) < 0) {
            st = store_errno(fname ? errno : ENAMETOOLONG, "rename", s[i].tmpname);
            free(fname);
            break;
        }
        renamed = true;
        free(s[i].tmpname);
        s[i].tmpname = NULL; /* in cur/ now */
        struct idx_row row = {.uid = uid,
                              .fname = fname,
                              .flags = s[i].flags,
                              .keywords = s[i].keywords,
                              .size = s[i].size,
                              .file_size = s[i].file_size,
                              .internaldate = s[i].internaldate,
                              .modseq = modseq,
                              .recent = true};
        st = idx_insert_row(dst, &row);
        if (st == STORE_OK)
            st = set_cache(dst, uid, s[i].envelope, s[i].bodystructure);
        if (dest_uids != NULL)
            dest_uids[s[i].slot] = uid;
        free(fname);
    }
    if (renamed && fsync_dirfd(dst->cur_fd) < 0 && st == STORE_OK)
        st = store_errno(errno, "fsync cur of", dst->name);
    if (renamed && dst->cur_trusted)
        idx_note_cur_changed(dst);
    if (st == STORE_OK)
        st = idx_save_meta(dst);
    if (st == STORE_OK)
        st = idx_commit(dst);
    else
        idx_rollback(dst);
    idx_unlock(dst);
    return st;
}

/* --- APPEND --- */

struct store_append {
    struct store_account *account;
    char name[STORE_NAME_MAX + 1];
    int tmp_fd, fd;
    char *tmpname;
    uint64_t bytes, bare_lf;
    bool last_cr;
    enum store_status error;
};

enum store_status store_append_begin(struct store_account *account, const char *mailbox,
                                     struct store_append **out)
{
    struct store_append *a = xcalloc(1, sizeof *a);
    a->account = account;
    a->tmp_fd = a->fd = -1;
    enum store_status st = store_name_check(mailbox, a->name, sizeof a->name);
    char *dir = st == STORE_OK ? mailbox_dir(account, a->name) : NULL;
    if (dir != NULL) {
        char *tmp = path_join(dir, "tmp");
        char *cur = path_join(dir, "cur");
        struct stat cst;
        a->tmp_fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (a->tmp_fd < 0 || stat(cur, &cst) < 0)
            st = store_errno(errno, "no such mailbox", a->name);
        free(tmp);
        free(cur);
        free(dir);
    }
    if (st == STORE_OK) {
        a->tmpname = mfile_unique();
        a->fd = openat(a->tmp_fd, a->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (a->fd < 0)
            st = store_errno(errno, "create in tmp of", a->name);
    }
    if (st != STORE_OK) {
        store_append_abort(a);
        return st;
    }
    *out = a;
    return STORE_OK;
}

enum store_status store_append_write(struct store_append *a, const void *data, size_t len)
{
    if (a->error != STORE_OK)
        return a->error;
    if (write_all(a->fd, data, len) < 0) {
        a->error = store_errno(errno, "write in tmp of", a->name);
        return a->error;
    }
    crlf_count(data, len, &a->last_cr, &a->bare_lf);
    a->bytes += len;
    return STORE_OK;
}

void store_append_abort(struct store_append *a)
{
    if (a == NULL)
        return;
    if (a->fd >= 0)
        close(a->fd);
    if (a->tmpname != NULL && a->tmp_fd >= 0)
        unlinkat(a->tmp_fd, a->tmpname, 0);
    if (a->tmp_fd >= 0)
        close(a->tmp_fd);
    free(a->tmpname);
    free(a);
}

enum store_status store_append_commit(struct store_append *a, unsigned flags,
                                      const char *const *keywords, size_t keyword_count,
                                      time_t internaldate, uint32_t *uidvalidity, uint32_t *uid)
{
    enum store_status st = a->error;
    if (st == STORE_OK &&
        ((flags & ~STORE_FLAGS_ALL) != 0 || !keywords_valid(keywords, keyword_count))) {
        store_set_error("invalid flag or keyword");
        st = STORE_INVALID_NAME;
    }
    /* The internal date lives in the file's mtime too, so a rebuilt index keeps it. */
    struct timespec times[2] = {{.tv_sec = internaldate ? internaldate : time(NULL)},
                                {.tv_sec = internaldate ? internaldate : time(NULL)}};
    if (st == STORE_OK && (futimens(a->fd, times) < 0 || fsync(a->fd) < 0))
        st = store_errno(errno, "fsync in tmp of", a->name);
    if (st == STORE_OK && close(a->fd) < 0)
        st = store_errno(errno, "close in tmp of", a->name);
    a->fd = -1;
    struct idx *idx = NULL;
    if (st == STORE_OK)
        st = idx_open(a->account, a->name, &idx);
    if (st == STORE_OK) {
        struct staged *s = xcalloc(1, sizeof *s);
        s->tmpname = a->tmpname;
        a->tmpname = NULL;
        s->flags = flags;
        s->keywords = keywords_apply("", STORE_FLAGS_REPLACE, keywords, keyword_count);
        s->file_size = a->bytes;
        s->size = a->bytes + a->bare_lf;
        s->internaldate = times[0].tv_sec;
        uint32_t new_uid = 0;
        st = commit_staged(idx, s, 1, &new_uid);
        staged_free(s, 1, idx->tmp_fd);
        if (st == STORE_OK) {
            if (uid != NULL)
                *uid = new_uid;
            if (uidvalidity != NULL)
                *uidvalidity = idx->uidvalidity;
        }
    }
    idx_close(idx);
    store_append_abort(a);
    return st;
}

/* --- COPY and MOVE --- */

static enum store_status copy_file(int from_dir, const char *from, int to_dir, const char *to)
{
    int in = openat(from_dir, from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return store_errno(errno, "open", from);
    int out = openat(to_dir, to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        enum store_status st = store_errno(errno, "create", to);
        close(in);
        return st;
    }
    enum store_status st = STORE_OK;
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (n > 0 && write_all(out, buf, (size_t)n) < 0)) {
            st = store_errno(errno, "copy", from);
            break;
        }
        if (n == 0)
            break;
    }
    struct stat ist;
    if (st == STORE_OK && fstat(in, &ist) == 0) {
        struct timespec times[2] = {ist.st_atim, ist.st_mtim};
        futimens(out, times);
    }
    if (st == STORE_OK && fsync(out) < 0)
        st = store_errno(errno, "fsync", to);
    close(in);
    if (close(out) < 0 && st == STORE_OK)
        st = store_errno(errno, "close", to);
    if (st != STORE_OK)
        unlinkat(to_dir, to, 0);
    return st;
}

static enum store_status open_dest(struct store_mailbox *mb, const char *dest, struct idx **out,
                                   bool *same)
{
    char canonical[STORE_NAME_MAX + 1];
    enum store_status st = store_name_check(dest, canonical, sizeof canonical);
    if (st != STORE_OK)
        return st;
    *same = strcmp(canonical, mb->idx->name) == 0;
    if (*same) {
        *out = mb->idx;
        return STORE_OK;
    }
    return idx_open(mb->account, canonical, out);
}

enum store_status store_copy(struct store_mailbox *mb, const uint32_t *uids, size_t count,
                             const char *dest, uint32_t *dest_uidvalidity, uint32_t *dest_uids)
{
    struct idx *dst, *src = mb->idx;
    bool same;
    enum store_status st = open_dest(mb, dest, &dst, &same);
    if (st != STORE_OK)
        return st;
    for (size_t i = 0; i < count; i++)
        dest_uids[i] = 0;
    struct staged *s = xcalloc(count + 1, sizeof *s);
    size_t n = 0;
    /* 1: link (or copy) the source files into the destination's tmp/, under the source's
     * lock so that their names stay put */
    st = idx_lock(src, false);
    for (size_t i = 0; i < count && st == STORE_OK; i++) {
        struct idx_row row;
        enum store_status rs = idx_get_row(src, uids[i], &row);
        if (rs == STORE_NOT_FOUND)
            continue; /* expunged meanwhile: not copied, 0 in dest_uids */
        if (rs != STORE_OK) {
            st = rs;
            break;
        }
        struct staged *t = &s[n];
        t->tmpname = mfile_unique();
        if (linkat(src->cur_fd, row.fname, dst->tmp_fd, t->tmpname, 0) < 0) {
            if (errno == ENOENT) {
                free(t->tmpname);
                t->tmpname = NULL;
                idx_row_clear(&row);
                continue;
            }
            rs = copy_file(src->cur_fd, row.fname, dst->tmp_fd, t->tmpname);
            if (rs != STORE_OK) {
                free(t->tmpname);
                t->tmpname = NULL;
                idx_row_clear(&row);
                st = rs == STORE_NOT_FOUND ? STORE_OK : rs;
                continue;
            }
        }
        t->flags = row.flags;
        t->keywords = row.keywords;
        row.keywords = NULL;
        t->size = row.size;
        t->file_size = row.file_size;
        t->internaldate = row.internaldate;
        t->slot = i;
        get_cache(src, row.uid, &t->envelope, &t->bodystructure);
        n++;
        idx_row_clear(&row);
    }
    if (src->locked)
        idx_unlock(src);
    /* 2: number them in the destination */
    if (st == STORE_OK && n > 0)
        st = commit_staged(dst, s, n, dest_uids);
    if (st == STORE_OK && dest_uidvalidity != NULL)
        *dest_uidvalidity = dst->uidvalidity;
    staged_free(s, n, dst->tmp_fd);
    if (!same)
        idx_close(dst);
    if (st != STORE_OK)
        for (size_t i = 0; i < count; i++)
            dest_uids[i] = 0;
    return st;
}

/* Across file systems a rename is impossible: copy, then unlink (not atomic; documented). */
static enum store_status move_file(struct idx *src, const char *from, struct idx *dst,
                                   const char *to)
{
    if (renameat(src->cur_fd, from, dst->cur_fd, to) == 0)
        return STORE_OK;
    if (errno != EXDEV)
        return store_errno(errno, "rename", from);
    char *tmp = mfile_unique();
    enum store_status st = copy_file(src->cur_fd, from, dst->tmp_fd, tmp);
    if (st == STORE_OK && renameat(dst->tmp_fd, tmp, dst->cur_fd, to) < 0) {
        st = store_errno(errno, "rename", tmp);
        unlinkat(dst->tmp_fd, tmp, 0);
    }
    if (st == STORE_OK && (fsync_dirfd(dst->cur_fd) < 0 || unlinkat(src->cur_fd, from, 0) < 0))
        st = store_errno(errno, "move", from);
    free(tmp);
    return st;
}

/* The move itself, both mailboxes locked. Each file is renamed from the source's cur/ into the
 * destination's cur/ with its new U=, so it is in exactly one of them at every moment. The
 * destination commits first; a crash before either commit is repaired by the recovery scans
 * (the destination adopts the U= files, the source expunges rows whose file left). */
static enum store_status move_locked(struct idx *src, struct idx *dst, bool same,
                                     const uint32_t *uids, size_t count, uint32_t *dest_uids,
                                     uint32_t **moved, size_t *nmoved)
{
    enum store_status st = idx_begin(src);
    if (st == STORE_OK && !same)
        st = idx_begin(dst);
    if (st != STORE_OK) {
        idx_rollback(src);
        return st;
    }
    uint64_t dst_modseq = idx_next_modseq(dst);
    bool renamed = false;
    idx_save_uid_hint(src); /* as before an expunge */
    for (size_t i = 0; i < count && st == STORE_OK; i++) {
        struct idx_row row;
        enum store_status rs = idx_get_row(src, uids[i], &row);
        if (rs == STORE_NOT_FOUND)
            continue;
        if (rs != STORE_OK) {
            st = rs;
            break;
        }
        if (dst->uidnext >= UINT32_MAX) {
            idx_row_clear(&row);
            store_set_error("UIDs of %s are exhausted", dst->name);
            st = STORE_NO_SPACE;
            break;
        }
        uint32_t uid = dst->uidnext++;
        struct mfile m;
        mfile_parse(row.fname, &m);
        char *fname = mfile_name(row.fname, m.base_len, row.file_size, row.size, uid, row.flags,
                                 m.extra, m.extra_len);
        rs = fname ? move_file(src, row.fname, dst, fname) : STORE_INVALID_NAME;
        if (rs == STORE_NOT_FOUND) {
            dst->uidnext--; /* renamed by another tool: left where it is */
            src->cur_trusted = false;
        } else if (rs != STORE_OK) {
            dst->uidnext--;
            st = rs;
        } else {
            renamed = true;
            char *env, *body;
            get_cache(src, row.uid, &env, &body);
            struct idx_row nrow = row;
            nrow.uid = uid;
            nrow.fname = fname;
            nrow.modseq = dst_modseq;
            nrow.recent = true;
            st = idx_insert_row(dst, &nrow);
            if (st == STORE_OK)
                st = set_cache(dst, uid, env, body);
            free(env);
            free(body);
            dest_uids[i] = uid;
            *moved = xrealloc(*moved, (*nmoved + 1) * sizeof **moved);
            (*moved)[(*nmoved)++] = row.uid;
        }
        free(fname);
        idx_row_clear(&row);
    }
    if (renamed && (fsync_dirfd(dst->cur_fd) < 0 || (!same && fsync_dirfd(src->cur_fd) < 0)) &&
        st == STORE_OK)
        st = store_errno(errno, "fsync cur of", dst->name);
    if (st == STORE_OK && *nmoved > 0)
        st = idx_expunge_rows(src, *moved, *nmoved, same ? dst_modseq : idx_next_modseq(src));
    if (renamed) {
        if (dst->cur_trusted)
            idx_note_cur_changed(dst);
        if (!same && src->cur_trusted)
            idx_note_cur_changed(src);
    }
    if (st == STORE_OK)
        st = idx_save_meta(dst);
    if (st == STORE_OK && !same)
        st = idx_save_meta(src);
    if (st == STORE_OK)
        st = idx_commit(dst);
    if (st == STORE_OK && !same)
        st = idx_commit(src);
    if (st != STORE_OK) {
        idx_rollback(dst);
        if (!same)
            idx_rollback(src);
    }
    return st;
}

/* Lock two mailboxes in one global order (by path) so that crossing moves cannot deadlock. */
static enum store_status lock_pair(struct idx *a, struct idx *b, bool same)
{
    if (same)
        return idx_lock(a, false);
    struct idx *first = strcmp(a->dir, b->dir) < 0 ? a : b;
    struct idx *second = first == a ? b : a;
    enum store_status st = idx_lock(first, false);
    if (st != STORE_OK)
        return st;
    st = idx_lock(second, false);
    if (st != STORE_OK)
        idx_unlock(first);
    return st;
}

enum store_status move_uids(struct idx *src, struct idx *dst, bool same, const uint32_t *uids,
                            size_t count, uint32_t *dest_uids, uint32_t **moved, size_t *nmoved)
{
    for (size_t i = 0; i < count; i++)
        dest_uids[i] = 0;
    enum store_status st = lock_pair(src, dst, same);
    if (st != STORE_OK)
        return st;
    st = move_locked(src, dst, same, uids, count, dest_uids, moved, nmoved);
    if (st != STORE_OK) {
        for (size_t i = 0; i < count; i++)
            dest_uids[i] = 0;
        free(*moved);
        *moved = NULL;
        *nmoved = 0;
    }
    idx_unlock(src);
    if (!same)
        idx_unlock(dst);
    return st;
}

enum store_status store_move(struct store_mailbox *mb, const uint32_t *uids, size_t count,
                             const char *dest, uint32_t *dest_uidvalidity, uint32_t *dest_uids,
                             struct store_expunged *expunged)
{
    if (expunged != NULL)
        memset(expunged, 0, sizeof *expunged);
    if (mb->readonly) {
        store_set_error("mailbox is read-only");
        return STORE_READONLY;
    }
    struct idx *dst;
    bool same;
    enum store_status st = open_dest(mb, dest, &dst, &same);
    if (st != STORE_OK)
        return st;
    uint32_t *moved = NULL;
    size_t nmoved = 0;
    st = move_uids(mb->idx, dst, same, uids, count, dest_uids, &moved, &nmoved);
    if (st == STORE_OK && dest_uidvalidity != NULL)
        *dest_uidvalidity = dst->uidvalidity;
    view_remove(mb, moved, nmoved, expunged);
    if (expunged != NULL)
        expunged->modseq = mb->idx->modseq;
    free(moved);
    if (!same)
        idx_close(dst);
    return st;
}
