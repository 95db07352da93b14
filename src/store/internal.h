/* What the store's files share: the per-mailbox index, file-name codec and disk helpers. */
#ifndef POSTERN_STORE_INTERNAL_H
#define POSTERN_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <sqlite3.h>

#include "postern/store.h"

/* Names of the store's own files. In a maildir: */
#define IDX_DB "postern.db"
#define IDX_LOCK "postern.lock"
#define IDX_UIDVALIDITY "postern-uidvalidity"
#define IDX_SPECIAL "postern-special-use"
#define MAILDIRFOLDER "maildirfolder" /* Maildir++ marks a folder with it */
/* At the account root: */
#define ROOT_LOCK "postern-root.lock"
#define ROOT_UIDVALIDITY_NEXT "postern-uidvalidity-next"
#define ROOT_SUBSCRIPTIONS "subscriptions"
#define ROOT_MARKER "postern-account"
#define ROOT_TRASH "postern-trash"
#define ROOT_POP3_LOCK "postern-pop3.lock"

#define LOCK_TIMEOUT_MS 30000
#define SQLITE_BUSY_MS 10000
#define TMP_MAX_AGE (36L * 3600) /* the Maildir spec's limit for stale tmp/ files */
#define TOMBSTONES_KEEP 20000    /* expunge tombstones kept for store_changes_since */

struct store_account {
    char *root;
};

/* One message row of the index. */
struct idx_row {
    uint32_t uid;
    char *fname;
    unsigned flags;
    char *keywords;
    uint64_t size, file_size;
    int64_t internaldate;
    uint64_t modseq;
    bool recent;
};

/* A per-mailbox index connection plus the lock that serialises writers (docs/store.md). */
#define IDX_CACHED_STMTS 12

struct idx {
    const struct store_account *account;
    char *name; /* canonical IMAP name */
    char *dir;  /* the maildir */
    int lock_fd, cur_fd, new_fd, tmp_fd;
    dev_t lock_dev;
    ino_t lock_ino;
    sqlite3 *db;
    sqlite3_stmt *insert_stmt;
    /* statements every sync or FETCH runs, prepared once per connection (idx_prepare_cached) */
    struct {
        const char *sql;
        sqlite3_stmt *stmt;
    } cached[IDX_CACHED_STMTS];
    dev_t db_dev;
    ino_t db_ino;
    bool locked;
    bool failed;          /* a locked operation failed half-way: leave the mailbox dirty */
    bool reopened;        /* the index was replaced (rebuilt) since the last lock */
    bool parked;          /* idx_park closed the connection and every descriptor */
    bool meta_seen;       /* `created` holds the meta of the index last locked */
    int64_t created;      /* meta "created": a rebuild gives a new one (0 in older indexes) */
    uint32_t uidvalidity; /* 0 until known */
    /* meta, valid while locked */
    uint32_t uidnext;
    uint64_t modseq, tomb_floor;
    int64_t cur_mtime;
    bool cur_trusted;
    bool fresh;        /* rebuilt: the next scan of cur/ adopts every U= */
    uint64_t uid_hint; /* UIDNEXT last written to the uidvalidity file */
    bool corrupt;      /* SQLite said the file is damaged: rebuild at the next lock */
    struct idx_saved {
        uint32_t uidnext;
        uint64_t modseq, tomb_floor, uid_hint;
        int64_t cur_mtime;
        bool cur_trusted, fresh;
    } saved; /* meta as of idx_begin, restored by idx_rollback */
};

/* A selected mailbox: an index connection and this session's view of it. */
struct store_mailbox {
    struct store_account *account;
    struct idx *idx;
    bool readonly;
    struct store_message *msgs; /* ascending UIDs */
    size_t count, cap;
    uint32_t recent;
    uint32_t uidnext;
    uint64_t view_modseq; /* every index change up to this one is in the view */
};

/* --- mailbox.c --- */
/* Take messages out of the view; expunged gets their sequence numbers, descending. */
void view_remove(struct store_mailbox *mb, const uint32_t *uids, size_t count,
                 struct store_expunged *expunged);
void view_set_flags(struct store_mailbox *mb, uint32_t uid, unsigned flags, const char *keywords,
                    uint64_t modseq);

/* --- transfer.c --- */
/* Move messages between two indexes (same: one mailbox); moved gets the source UIDs. */
enum store_status move_uids(struct idx *src, struct idx *dst, bool same, const uint32_t *uids,
                            size_t count, uint32_t *dest_uids, uint32_t **moved, size_t *nmoved);

/* --- index.c --- */
enum store_status idx_open(const struct store_account *account, const char *canonical,
                           struct idx **out);
void idx_close(struct idx *idx);
/* Take the mailbox's exclusive lock, recover from a crashed holder, bring the index up to date
 * with new/ and cur/ (full_rescan forces a scan of cur/). */
enum store_status idx_lock(struct idx *idx, bool full_rescan);
void idx_unlock(struct idx *idx);
enum store_status idx_begin(struct idx *idx);
enum store_status idx_commit(struct idx *idx);
void idx_rollback(struct idx *idx);
/* Allocate the next modseq inside a transaction (one per operation). */
uint64_t idx_next_modseq(struct idx *idx);
/* Write uidnext, modseq and the cur/ state into meta (inside a transaction). */
enum store_status idx_save_meta(struct idx *idx);
/* After this holder renamed or unlinked in cur/: remember cur/'s new mtime. */
void idx_note_cur_changed(struct idx *idx);
enum store_status idx_insert_row(struct idx *idx, const struct idx_row *row);
enum store_status idx_get_row(struct idx *idx, uint32_t uid, struct idx_row *row);
void idx_row_clear(struct idx_row *row);
/* Delete rows, leave tombstones with modseq. */
enum store_status idx_expunge_rows(struct idx *idx, const uint32_t *uids, size_t count,
                                   uint64_t modseq);
/* Keep the uidvalidity file's UIDNEXT hint >= uidnext (a rebuild must not reuse UIDs). */
void idx_save_uid_hint(struct idx *idx);
enum store_status idx_sqlite_status(struct idx *idx, int rc, const char *what);
/* Prepare a statement; on failure *stmt is NULL and the status says why. */
enum store_status idx_prepare(struct idx *idx, const char *sql, sqlite3_stmt **stmt);
/* The same, kept for the connection's life and found again by the address of `sql` (a string
 * literal). Hand it back with idx_release(), which resets it (a statement left stepping would
 * hold a read snapshot), never with sqlite3_finalize(). */
enum store_status idx_prepare_cached(struct idx *idx, const char *sql, sqlite3_stmt **stmt);
void idx_release(struct idx *idx, sqlite3_stmt *stmt);
/* Between operations, for a handle that will wait (IDLE): close the SQLite connection and
 * every descriptor. idx_lock() and the first statement open them again; a mailbox deleted or
 * renamed meanwhile is STORE_STALE then. */
void idx_park(struct idx *idx);
int64_t stat_mtime_ns(const struct stat *st);

/* --- maildir.c: file names and flags --- */
struct mfile {
    uint32_t uid;   /* 0: no U= */
    uint64_t vsize; /* W=, 0 if absent */
    bool has_vsize;
    size_t base_len;   /* name up to the info part (":2,") */
    unsigned flags;    /* from the info letters */
    const char *extra; /* info letters that are not ours (P, keywords of other tools) */
    size_t extra_len;
};
void mfile_parse(const char *name, struct mfile *m);
/* The name of a message with base (U=, W= and S= removed first), uid and flags, keeping the
 * foreign info letters of extra; NULL if it would not fit NAME_MAX. */
char *mfile_name(const char *base, size_t base_len, uint64_t file_size, uint64_t size, uint32_t uid,
                 unsigned flags, const char *extra, size_t extra_len);
/* A fresh unique base name (time, pid, counter, random, host). */
char *mfile_unique(void);
/* RFC822 size of a file: its size plus one per bare LF. */
enum store_status mfile_measure(int dirfd, const char *name, uint64_t *file_size, uint64_t *size,
                                int64_t *mtime);
void crlf_count(const unsigned char *p, size_t n, bool *last_cr, uint64_t *bare_lf);

/* --- keywords (maildir.c) --- */
/* Sorted, case-insensitively unique, space-separated. */
char *keywords_apply(const char *current, enum store_flag_op op, const char *const *keywords,
                     size_t count);
bool keywords_valid(const char *const *keywords, size_t count);

/* --- name.c --- */
/* ".a.b" for "a/b"; "" for INBOX. */
enum store_status name_to_disk(const char *canonical, char *out, size_t size);
bool disk_to_name(const char *disk, char *out, size_t size);
char *mailbox_dir(const struct store_account *account, const char *canonical);

/* --- fsutil.c --- */
void store_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
enum store_status store_errno(int err, const char *what, const char *path);
int fsync_dirfd(int fd);
int fsync_dir_path(const char *path);
int fsync_dirat(int dirfd, const char *name);
int mkdir_p(const char *path, mode_t mode);
enum store_status make_maildir(const char *path);
int rm_rf(const char *path);
int lock_wait(int fd, int timeout_ms);
const char *boot_id(void);
char *path_join(const char *a, const char *b);
/* Small state files, replaced atomically (tmp, fsync, rename, fsync dir). */
enum store_status write_file_atomic(const char *dir, const char *name, const char *content);
/* Reads up to size-1 bytes; returns false if the file is missing or unreadable. */
bool read_small_file(const char *dir, const char *name, char *buf, size_t size);
uint32_t uidvalidity_allocate(const struct store_account *account);
ssize_t write_all(int fd, const void *data, size_t len);

/* qsort that takes an empty array, which may then be NULL. */
static inline void sort_items(void *base, size_t n, size_t size,
                              int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}

/* Counters (struct store_io_counters), updated atomically. */
enum io_counter { IO_DIR_ENTRIES, IO_FILE_STATS, IO_RESCANS, IO_REBUILDS };
void io_count(enum io_counter which, uint64_t n);

#endif
