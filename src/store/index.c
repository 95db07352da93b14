/* The per-mailbox index: SQLite file, writer lock, crash recovery, rebuild, and syncing it with
 * new/ and cur/. docs/store.md gives the argument for why the steps are in this order. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "postern/log.h"
#include "postern/util.h"

#define SCHEMA_VERSION 1

static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE msg(uid INTEGER PRIMARY KEY, fname TEXT NOT NULL, flags INTEGER NOT NULL,"
    " keywords TEXT NOT NULL DEFAULT '', size INTEGER NOT NULL, file_size INTEGER NOT NULL,"
    " internaldate INTEGER NOT NULL, modseq INTEGER NOT NULL, added INTEGER NOT NULL,"
    " recent INTEGER NOT NULL,"
    " envelope TEXT, bodystructure TEXT);"
    "CREATE INDEX msg_modseq ON msg(modseq);"
    "CREATE TABLE expunged(uid INTEGER PRIMARY KEY, modseq INTEGER NOT NULL);"
    "CREATE INDEX expunged_modseq ON expunged(modseq);"
    /* STATUS in O(1): counts kept by triggers in the same transactions */
    "CREATE TABLE counts(id INTEGER PRIMARY KEY CHECK (id = 1), messages INTEGER NOT NULL,"
    " unseen INTEGER NOT NULL, recent INTEGER NOT NULL);"
    "INSERT INTO counts VALUES(1, 0, 0, 0);"
    "CREATE TRIGGER msg_insert AFTER INSERT ON msg BEGIN UPDATE counts SET"
    " messages = messages + 1, unseen = unseen + ((NEW.flags & 1) = 0),"
    " recent = recent + NEW.recent; END;"
    "CREATE TRIGGER msg_delete AFTER DELETE ON msg BEGIN UPDATE counts SET"
    " messages = messages - 1, unseen = unseen - ((OLD.flags & 1) = 0),"
    " recent = recent - OLD.recent; END;"
    "CREATE TRIGGER msg_update AFTER UPDATE OF flags, recent ON msg BEGIN UPDATE counts SET"
    " unseen = unseen - ((OLD.flags & 1) = 0) + ((NEW.flags & 1) = 0),"
    " recent = recent - OLD.recent + NEW.recent; END;";

int64_t stat_mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

enum store_status idx_sqlite_status(struct idx *idx, int rc, const char *what)
{
    store_set_error("index of %s: %s: %s", idx->name, what,
                    idx->db ? sqlite3_errmsg(idx->db) : sqlite3_errstr(rc));
    switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        idx->corrupt = true;
        idx->failed = true;
        return STORE_CORRUPT;
    case SQLITE_FULL:
        return STORE_NO_SPACE;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return STORE_BUSY;
    default:
        return STORE_IO;
    }
}

static int ensure_open(struct idx *idx);

enum store_status idx_prepare(struct idx *idx, const char *sql, sqlite3_stmt **stmt)
{
    *stmt = NULL;
    int rc = ensure_open(idx);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(idx->db, sql, -1, stmt, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(*stmt);
        *stmt = NULL;
        return idx_sqlite_status(idx, rc, "prepare");
    }
    return STORE_OK;
}

static enum store_status exec(struct idx *idx, const char *sql)
{
    int rc = ensure_open(idx);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(idx->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? STORE_OK : idx_sqlite_status(idx, rc, sql);
}

/* Parsing SQL was a quarter of the server's CPU time in the benchmark's mixed IMAP workload
 * (perf): every FETCH looked each message up with a freshly prepared statement, every sync
 * prepared its queries again. */
static int prepare_cached(struct idx *idx, const char *sql, sqlite3_stmt **stmt)
{
    *stmt = NULL;
    int rc = ensure_open(idx); /* first: a spare connection brings its statements */
    if (rc != SQLITE_OK)
        return rc;
    size_t free_slot = IDX_CACHED_STMTS;
    for (size_t i = 0; i < IDX_CACHED_STMTS; i++) {
        if (idx->cached[i].sql == sql) {
            *stmt = idx->cached[i].stmt;
            return SQLITE_OK;
        }
        if (idx->cached[i].sql == NULL && free_slot == IDX_CACHED_STMTS)
            free_slot = i;
    }
    rc = sqlite3_prepare_v3(idx->db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(*stmt);
        *stmt = NULL;
        return rc;
    }
    if (free_slot < IDX_CACHED_STMTS) { /* else it is finalized by idx_release */
        idx->cached[free_slot].sql = sql;
        idx->cached[free_slot].stmt = *stmt;
    }
    return SQLITE_OK;
}

enum store_status idx_prepare_cached(struct idx *idx, const char *sql, sqlite3_stmt **stmt)
{
    int rc = prepare_cached(idx, sql, stmt);
    return rc == SQLITE_OK ? STORE_OK : idx_sqlite_status(idx, rc, "prepare");
}

void idx_release(struct idx *idx, sqlite3_stmt *stmt)
{
    for (size_t i = 0; i < IDX_CACHED_STMTS; i++) {
        if (idx->cached[i].stmt == stmt && stmt != NULL) {
            sqlite3_reset(stmt);
            sqlite3_clear_bindings(stmt);
            return;
        }
    }
    sqlite3_finalize(stmt);
}

/* BEGIN and COMMIT, once per sync: prepared once too. */
static enum store_status exec_cached(struct idx *idx, const char *sql)
{
    sqlite3_stmt *q;
    int rc = prepare_cached(idx, sql, &q);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    enum store_status st = rc == SQLITE_OK ? STORE_OK : idx_sqlite_status(idx, rc, sql);
    if (q != NULL)
        idx_release(idx, q);
    return st;
}

static void close_fds(struct idx *idx)
{
    int *fds[] = {&idx->lock_fd, &idx->cur_fd, &idx->new_fd, &idx->tmp_fd};
    for (size_t i = 0; i < ARRAY_LEN(fds); i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
}

/* The lock file and the three directories. `first`: a new handle, which creates the lock file
 * and learns its identity; otherwise (after idx_park) the lock file must be the one this
 * handle had, or the mailbox was deleted or renamed meanwhile. */
static enum store_status open_fds(struct idx *idx, bool first)
{
    int dfd = open(idx->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        if (!first && (errno == ENOENT || errno == ENOTDIR)) {
            store_set_error("mailbox %s was deleted or renamed", idx->name);
            return STORE_STALE;
        }
        return store_errno(errno, "open mailbox", idx->name);
    }
    idx->cur_fd = openat(dfd, "cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    idx->new_fd = openat(dfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    idx->tmp_fd = openat(dfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    idx->lock_fd =
        openat(dfd, IDX_LOCK, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (first ? O_CREAT : 0), 0600);
    int e = errno;
    close(dfd);
    enum store_status st = STORE_OK;
    struct stat lst;
    if (idx->cur_fd < 0 || idx->new_fd < 0 || idx->tmp_fd < 0) {
        st = store_errno(ENOENT, "open maildir of", idx->name);
    } else if (idx->lock_fd < 0 || fstat(idx->lock_fd, &lst) < 0) {
        st = store_errno(idx->lock_fd < 0 ? e : errno, "open lock of", idx->name);
    } else if (first) {
        idx->lock_dev = lst.st_dev;
        idx->lock_ino = lst.st_ino;
    } else if (lst.st_dev != idx->lock_dev || lst.st_ino != idx->lock_ino) {
        store_set_error("mailbox %s was deleted or renamed", idx->name);
        st = STORE_STALE;
    }
    if (st != STORE_OK) {
        if (!first && st == STORE_NOT_FOUND) {
            store_set_error("mailbox %s was deleted or renamed", idx->name);
            st = STORE_STALE;
        }
        close_fds(idx);
    }
    return st;
}

enum store_status idx_open(const struct store_account *account, const char *canonical,
                           struct idx **out)
{
    char *dir = mailbox_dir(account, canonical);
    if (dir == NULL)
        return STORE_INVALID_NAME;
    struct idx *idx = xcalloc(1, sizeof *idx);
    idx->account = account;
    idx->name = xstrdup(canonical);
    idx->dir = dir;
    idx->lock_fd = idx->cur_fd = idx->new_fd = idx->tmp_fd = -1;
    enum store_status st = open_fds(idx, true);
    if (st != STORE_OK) {
        idx_close(idx);
        return st;
    }
    *out = idx;
    return STORE_OK;
}

static bool take_spare(struct idx *idx);

/* After idx_park: a spare connection to the mailbox, or the descriptors again (not the
 * connection, which needs the lock). */
static enum store_status unpark(struct idx *idx)
{
    if (!idx->parked)
        return STORE_OK;
    if (take_spare(idx)) {
        idx->parked = false;
        return STORE_OK;
    }
    enum store_status st = open_fds(idx, false);
    if (st == STORE_OK)
        idx->parked = false;
    return st;
}

static void forget_statements(struct idx *idx)
{
    sqlite3_finalize(idx->insert_stmt);
    idx->insert_stmt = NULL;
    for (size_t i = 0; i < IDX_CACHED_STMTS; i++) {
        sqlite3_finalize(idx->cached[i].stmt);
        idx->cached[i].sql = NULL;
        idx->cached[i].stmt = NULL;
    }
}

static void db_close(struct idx *idx)
{
    forget_statements(idx);
    if (idx->db != NULL)
        sqlite3_close_v2(idx->db);
    idx->db = NULL;
}

static bool db_is_current(const struct idx *idx)
{
    char *path = path_join(idx->dir, IDX_DB);
    struct stat st;
    bool same = stat(path, &st) == 0 && st.st_dev == idx->db_dev && st.st_ino == idx->db_ino;
    free(path);
    return same;
}

/* A WAL beyond this is checkpointed and removed by the connection that closes last. */
#define PARK_WAL_MAX ((off_t)128 * 1024)

/* A session in IDLE may wait for hours, and the bench/ idle workload holds 10,000 of them: its
 * SQLite connection (schema, statements, pages, the mapping of the WAL index: about half of
 * the session's memory) and seven descriptors (database, WAL, shared memory, lock file, cur/,
 * new/, tmp/) are given up while it waits (idx_park).
 *
 * When every connection to an index is closed, the next one to open rebuilds the WAL index
 * from the whole WAL, up to the 1000 pages of an automatic checkpoint (a SELECT measured 8 ms
 * instead of 1). So once the WAL is larger than PARK_WAL_MAX, the connection that closes last
 * checkpoints and removes it, as SQLite does by default. Not below: removing and creating the
 * WAL and shared-memory files at every wake-up of a mailbox's sessions, and the checkpoint's
 * two fsyncs, made a sync after IDLE ten times slower. The removal is by name: it is allowed
 * only under the mailbox lock, on the current index file (no rebuild can replace it meanwhile;
 * a connection left on a replaced index keeps PERSIST_WAL and removes nothing), and SQLite
 * does it only when it gets the database's exclusive lock, i.e. when no other connection, in
 * any thread or process, is open. If the mailbox lock is busy, the connection is just closed.
 * A removal is not a change that IDLE reports (the maildir watch takes only writes). */
#define PARK_WAL_MAX ((off_t)128 * 1024)

static void release_connection(struct idx *idx)
{
    if (idx->db != NULL) {
        char *wal = path_join(idx->dir, IDX_DB "-wal");
        struct stat wst;
        bool big = stat(wal, &wst) == 0 && wst.st_size > PARK_WAL_MAX;
        free(wal);
        bool locked = big && flock(idx->lock_fd, LOCK_EX | LOCK_NB) == 0;
        if (locked && db_is_current(idx)) {
            int persist = 0;
            sqlite3_file_control(idx->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
            sqlite3_db_config(idx->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
        }
        db_close(idx);
        if (locked)
            flock(idx->lock_fd, LOCK_UN);
    }
    close_fds(idx);
}

/* Opening the connection again cost a woken session more than its sync: the descriptors,
 * SQLite's open, the schema, a dozen statements to prepare (about 600 us of CPU against 150
 * for the sync). New mail wakes every session of a mailbox at once, so the connection that the
 * first one parks is what the next one needs: a few such spares are kept, at most one per
 * mailbox, the least recently parked closed first. SPARES_MAX bounds their descriptors. */
#define SPARES_MAX 64

static pthread_mutex_t spares_lock = PTHREAD_MUTEX_INITIALIZER;
static struct idx *spares[SPARES_MAX]; /* oldest first */
static size_t nspares;

static void swap_int(int *a, int *b)
{
    int t = *a;
    *a = *b;
    *b = t;
}

/* The connection and the descriptors, between two handles of the same mailbox. */
static void swap_connection(struct idx *a, struct idx *b)
{
    swap_int(&a->lock_fd, &b->lock_fd);
    swap_int(&a->cur_fd, &b->cur_fd);
    swap_int(&a->new_fd, &b->new_fd);
    swap_int(&a->tmp_fd, &b->tmp_fd);
    sqlite3 *db = a->db;
    a->db = b->db;
    b->db = db;
    sqlite3_stmt *ins = a->insert_stmt;
    a->insert_stmt = b->insert_stmt;
    b->insert_stmt = ins;
    for (size_t i = 0; i < IDX_CACHED_STMTS; i++) {
        const char *sql = a->cached[i].sql;
        sqlite3_stmt *stmt = a->cached[i].stmt;
        a->cached[i] = b->cached[i];
        b->cached[i].sql = sql;
        b->cached[i].stmt = stmt;
    }
    dev_t dev = a->db_dev;
    ino_t ino = a->db_ino;
    a->db_dev = b->db_dev;
    a->db_ino = b->db_ino;
    b->db_dev = dev;
    b->db_ino = ino;
}

static bool same_mailbox(const struct idx *a, const struct idx *b)
{
    return a->lock_dev == b->lock_dev && a->lock_ino == b->lock_ino && strcmp(a->dir, b->dir) == 0;
}

static bool take_spare(struct idx *idx)
{
    struct idx *spare = NULL;
    pthread_mutex_lock(&spares_lock);
    for (size_t i = 0; i < nspares; i++) {
        if (same_mailbox(spares[i], idx)) {
            spare = spares[i];
            memmove(&spares[i], &spares[i + 1], (nspares - i - 1) * sizeof(struct idx *));
            nspares--;
            break;
        }
    }
    pthread_mutex_unlock(&spares_lock);
    if (spare == NULL)
        return false;
    swap_connection(idx, spare);
    idx_close(spare);
    return true;
}

/* Keeps the handle's connection as a spare; false if there is one for the mailbox already. */
static bool give_spare(struct idx *idx)
{
    struct idx *spare = xcalloc(1, sizeof *spare);
    spare->name = xstrdup(idx->name);
    spare->dir = xstrdup(idx->dir);
    spare->lock_dev = idx->lock_dev;
    spare->lock_ino = idx->lock_ino;
    spare->lock_fd = spare->cur_fd = spare->new_fd = spare->tmp_fd = -1;
    struct idx *evict = NULL;
    bool kept = true;
    pthread_mutex_lock(&spares_lock);
    for (size_t i = 0; i < nspares && kept; i++)
        kept = !same_mailbox(spares[i], idx);
    if (kept) {
        swap_connection(idx, spare);
        if (nspares == SPARES_MAX) {
            evict = spares[0];
            memmove(&spares[0], &spares[1], (nspares - 1) * sizeof(struct idx *));
            nspares--;
        }
        spares[nspares++] = spare;
    }
    pthread_mutex_unlock(&spares_lock);
    if (!kept) {
        idx_close(spare);
    } else if (evict != NULL) {
        release_connection(evict);
        idx_close(evict);
    }
    return kept;
}

void store_spares_flush(void)
{
    pthread_mutex_lock(&spares_lock);
    size_t n = nspares;
    struct idx *all[SPARES_MAX];
    memcpy(all, spares, n * sizeof(struct idx *));
    nspares = 0;
    pthread_mutex_unlock(&spares_lock);
    for (size_t i = 0; i < n; i++) {
        release_connection(all[i]);
        idx_close(all[i]);
    }
}

void idx_park(struct idx *idx)
{
    if (idx->parked || idx->locked)
        return;
    if (idx->db == NULL || !give_spare(idx))
        release_connection(idx);
    close_fds(idx); /* a handle without a connection had its descriptors still */
    idx->parked = true;
}

void idx_close(struct idx *idx)
{
    if (idx == NULL)
        return;
    if (idx->locked)
        idx_unlock(idx);
    db_close(idx);
    close_fds(idx);
    free(idx->name);
    free(idx->dir);
    free(idx);
}

/* Every selected mailbox keeps its connection open (IDLE included), so per-connection memory
 * is per-session memory. By default SQLite gives each connection's page cache 20 pages up
 * front in one block (about 87 KB, all of it touched); without that block a connection holds
 * only the pages it has read -- a few for an index of this size. Must run before SQLite's
 * first use in the process; if something else initialised SQLite first, it is a no-op. */
static void sqlite_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
    /* Memory statistics take one process-wide mutex on every SQLite allocation; the store
     * threads queued on it (perf: futex waits under sqlite3Malloc). Nothing reads them. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* Open the SQLite file (called with the lock held, so no rebuild can swap it meanwhile). */
static enum store_status db_open(struct idx *idx)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_setup);
    char *path = path_join(idx->dir, IDX_DB);
    /* created private first: SQLite gives the -wal and -shm files the same mode */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0)
        close(fd);
    int rc = sqlite3_open_v2(
        path, &idx->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        enum store_status st = idx_sqlite_status(idx, rc, "open");
        db_close(idx);
        free(path);
        return st;
    }
    sqlite3_busy_timeout(idx->db, SQLITE_BUSY_MS);
    /* A connection left on a rebuilt (unlinked) index must never delete the -wal or -shm of
     * its successor by name when it closes. */
    int persist = 1;
    sqlite3_file_control(idx->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    /* Short-lived connections (APPEND, STATUS) must not pay for a checkpoint on close. */
    sqlite3_db_config(idx->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    /* NORMAL: a commit survives kill -9 but not necessarily a power loss. The Maildir is
     * fsynced before each commit and after a reboot the first holder rescans it (boot id in
     * the lock file), so a lost commit is rebuilt from the file names (docs/store.md). */
    /* wal_autocheckpoint: the first connection after all were closed (a SELECT after login)
     * rebuilds the WAL index by reading the whole WAL, which is kept (above); at SQLite's
     * default of 1,000 pages that was up to 4 MB read and a SELECT 1.5 ms slower at 2 MB. */
    int rc2 = sqlite3_exec(
        idx->db,
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=200;", NULL,
        NULL, NULL);
    enum store_status st = rc2 == SQLITE_OK ? STORE_OK : idx_sqlite_status(idx, rc2, "open");
    struct stat dst;
    if (st == STORE_OK && stat(path, &dst) == 0) {
        idx->db_dev = dst.st_dev;
        idx->db_ino = dst.st_ino;
    } else if (st == STORE_OK) {
        st = store_errno(errno, "stat", path);
    }
    free(path);
    return st;
}

/* The connection idx_park closed, for a statement outside the lock (FETCH after IDLE): opened
 * under the lock, as every connection is, so that it cannot meet a rebuild half-way. Whether
 * the index was rebuilt meanwhile, the next idx_lock() tells from meta's "created". */
static int ensure_open(struct idx *idx)
{
    if (idx->db != NULL)
        return SQLITE_OK;
    if (unpark(idx) != STORE_OK)
        return SQLITE_CANTOPEN;
    if (idx->db != NULL) /* a spare */
        return SQLITE_OK;
    bool take = !idx->locked;
    if (take && lock_wait(idx->lock_fd, LOCK_TIMEOUT_MS) < 0)
        return SQLITE_BUSY;
    enum store_status st = db_open(idx);
    if (take)
        flock(idx->lock_fd, LOCK_UN);
    return st == STORE_OK && idx->db != NULL ? SQLITE_OK : SQLITE_CANTOPEN;
}

static enum store_status meta_load(struct idx *idx)
{
    sqlite3_stmt *q;
    int prc = prepare_cached(idx, "SELECT key, value FROM meta", &q);
    if (prc != SQLITE_OK) {
        enum store_status st = idx_sqlite_status(idx, prc, "read meta");
        return prc == SQLITE_ERROR ? STORE_CORRUPT : st; /* no meta table: not our index */
    }
    int64_t version = 0, uidvalidity = 0, uidnext = 0, created = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(q, 0);
        int64_t v = sqlite3_column_int64(q, 1);
        if (key == NULL)
            continue;
        if (strcmp(key, "version") == 0)
            version = v;
        else if (strcmp(key, "uidvalidity") == 0)
            uidvalidity = v;
        else if (strcmp(key, "uidnext") == 0)
            uidnext = v;
        else if (strcmp(key, "modseq") == 0)
            idx->modseq = (uint64_t)v;
        else if (strcmp(key, "tomb_floor") == 0)
            idx->tomb_floor = (uint64_t)v;
        else if (strcmp(key, "cur_mtime") == 0)
            idx->cur_mtime = v;
        else if (strcmp(key, "cur_trusted") == 0)
            idx->cur_trusted = v != 0;
        else if (strcmp(key, "fresh") == 0)
            idx->fresh = v != 0;
        else if (strcmp(key, "uid_hint") == 0)
            idx->uid_hint = (uint64_t)v;
        else if (strcmp(key, "created") == 0)
            created = v;
    }
    idx_release(idx, q);
    if (rc != SQLITE_DONE)
        return idx_sqlite_status(idx, rc, "read meta");
    if (version != SCHEMA_VERSION || uidvalidity <= 0 || uidvalidity > UINT32_MAX || uidnext <= 0 ||
        uidnext > UINT32_MAX) {
        store_set_error("index of %s has no valid meta data", idx->name);
        return STORE_CORRUPT;
    }
    if (idx->uidvalidity != 0 && idx->uidvalidity != (uint32_t)uidvalidity) {
        store_set_error("UIDVALIDITY of %s changed", idx->name);
        return STORE_STALE;
    }
    /* Replaced since the last lock. While the handle had its connection open, the file's
     * identity said so (idx_attach); after idx_park the old file's inode number may be the
     * new one's. */
    if (idx->meta_seen && created != idx->created)
        idx->reopened = true;
    idx->created = created;
    idx->meta_seen = true;
    idx->uidvalidity = (uint32_t)uidvalidity;
    idx->uidnext = (uint32_t)uidnext;
    return STORE_OK;
}

enum store_status idx_save_meta(struct idx *idx)
{
    sqlite3_stmt *q;
    enum store_status st =
        idx_prepare(idx, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", &q);
    if (st != STORE_OK)
        return st;
    const struct {
        const char *key;
        int64_t value;
    } rows[] = {
        {"uidnext", idx->uidnext},
        {"modseq", (int64_t)idx->modseq},
        {"tomb_floor", (int64_t)idx->tomb_floor},
        {"cur_mtime", idx->cur_mtime},
        {"cur_trusted", idx->cur_trusted},
        {"fresh", idx->fresh},
        {"uid_hint", (int64_t)idx->uid_hint},
        {"created", idx->created},
    };
    for (size_t i = 0; i < ARRAY_LEN(rows) && st == STORE_OK; i++) {
        sqlite3_bind_text(q, 1, rows[i].key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, rows[i].value);
        int rc = sqlite3_step(q);
        if (rc != SQLITE_DONE)
            st = idx_sqlite_status(idx, rc, "write meta");
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    return st;
}

enum store_status idx_begin(struct idx *idx)
{
    idx->saved =
        (struct idx_saved){idx->uidnext,   idx->modseq,      idx->tomb_floor, idx->uid_hint,
                           idx->cur_mtime, idx->cur_trusted, idx->fresh};
    return exec_cached(idx, "BEGIN IMMEDIATE");
}

enum store_status idx_commit(struct idx *idx)
{
    enum store_status st = exec_cached(idx, "COMMIT");
    if (st != STORE_OK)
        idx_rollback(idx);
    return st;
}

void idx_rollback(struct idx *idx)
{
    if (idx->db != NULL && !sqlite3_get_autocommit(idx->db))
        sqlite3_exec(idx->db, "ROLLBACK", NULL, NULL, NULL);
    idx->uidnext = idx->saved.uidnext;
    idx->modseq = idx->saved.modseq;
    idx->tomb_floor = idx->saved.tomb_floor;
    idx->uid_hint = idx->saved.uid_hint;
    idx->cur_mtime = idx->saved.cur_mtime;
    idx->cur_trusted = idx->saved.cur_trusted;
    idx->fresh = idx->saved.fresh;
    /* files may have moved already: the next holder rescans */
    idx->failed = true;
}

uint64_t idx_next_modseq(struct idx *idx)
{
    return ++idx->modseq;
}

void idx_note_cur_changed(struct idx *idx)
{
    struct stat st;
    if (fstat(idx->cur_fd, &st) == 0)
        idx->cur_mtime = stat_mtime_ns(&st);
}

/* --- UIDVALIDITY file: "<uidvalidity> <uidnext hint>", survives the index --- */

static bool uid_file_read(struct idx *idx, uint32_t *uidvalidity, uint32_t *hint)
{
    char buf[64];
    if (!read_small_file(idx->dir, IDX_UIDVALIDITY, buf, sizeof buf))
        return false;
    char *end;
    unsigned long v = strtoul(buf, &end, 10), h = 1;
    if (*end == ' ')
        h = strtoul(end + 1, &end, 10);
    if (v == 0 || v > UINT32_MAX || h == 0 || h > UINT32_MAX || (*end != '\n' && *end != '\0'))
        return false;
    *uidvalidity = (uint32_t)v;
    *hint = (uint32_t)h;
    return true;
}

static enum store_status uid_file_write(struct idx *idx, uint32_t uidvalidity, uint32_t hint)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%u %u\n", uidvalidity, hint);
    return write_file_atomic(idx->dir, IDX_UIDVALIDITY, buf);
}

/* The file is written with some UIDs to spare, so that a mailbox where messages come and go
 * (APPEND, then EXPUNGE) does not write and fsync it before every expunge. An index lost or
 * rolled back by a crash then starts UIDNEXT up to UID_HINT_SPARE higher than it would have:
 * a gap in the UIDs, which IMAP allows (RFC 3501 §2.3.1.1: ascending, not contiguous). */
#define UID_HINT_SPARE 64

void idx_save_uid_hint(struct idx *idx)
{
    if (idx->uid_hint >= idx->uidnext)
        return;
    /* never lower: after a lost commit the file may be ahead of the index */
    uint32_t uidvalidity, hint;
    if (uid_file_read(idx, &uidvalidity, &hint) && hint >= idx->uidnext) {
        idx->uid_hint = hint;
        return;
    }
    uint32_t spare =
        idx->uidnext < UINT32_MAX - UID_HINT_SPARE ? idx->uidnext + UID_HINT_SPARE : UINT32_MAX;
    if (uid_file_write(idx, idx->uidvalidity, spare) == STORE_OK)
        idx->uid_hint = spare;
}

/* --- rebuild --- */

static void unlink_db_files(struct idx *idx)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < ARRAY_LEN(suffixes); i++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s", IDX_DB, suffixes[i]);
        char *path = path_join(idx->dir, name);
        unlink(path);
        free(path);
    }
}

/* A fresh index from the Maildir: UIDVALIDITY and the UIDNEXT floor come from the uidvalidity
 * file, UIDs from the U= of the file names (adopted by the next scan of cur/, see fresh). */
static enum store_status idx_rebuild(struct idx *idx)
{
    io_count(IO_REBUILDS, 1);
    db_close(idx);
    unlink_db_files(idx);
    idx->corrupt = false;
    enum store_status st = db_open(idx);
    if (st != STORE_OK)
        return st;
    uint32_t uidvalidity, hint;
    if (!uid_file_read(idx, &uidvalidity, &hint)) {
        uidvalidity = idx->uidvalidity ? idx->uidvalidity : uidvalidity_allocate(idx->account);
        hint = 1;
        st = uid_file_write(idx, uidvalidity, hint);
        if (st != STORE_OK)
            return st;
    }
    if (idx->uidvalidity != 0 && idx->uidvalidity != uidvalidity) {
        store_set_error("UIDVALIDITY of %s changed", idx->name);
        return STORE_STALE;
    }
    st = idx_begin(idx);
    if (st != STORE_OK)
        return st;
    st = exec(idx, schema_sql);
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO meta VALUES('version', %d), ('uidvalidity', %u), ('uidnext', %u)",
             SCHEMA_VERSION, uidvalidity, hint);
    if (st == STORE_OK)
        st = exec(idx, sql);
    idx->uidvalidity = uidvalidity;
    idx->uidnext = hint;
    /* Modseqs never go back, even when the index is lost: a rebuilt one counts on from the
     * clock in microseconds (above any count of single steps), and changes from before it
     * are unknown (STORE_TOO_OLD). */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    idx->modseq = (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000;
    idx->tomb_floor = idx->modseq;
    idx->created = (int64_t)idx->modseq;
    idx->cur_mtime = 0;
    idx->cur_trusted = false;
    idx->fresh = true;
    idx->uid_hint = hint;
    if (st == STORE_OK)
        st = idx_save_meta(idx);
    if (st == STORE_OK)
        st = idx_commit(idx);
    else
        idx_rollback(idx);
    if (st == STORE_OK)
        idx->reopened = true;
    return st;
}

/* Attach to the current index file: (re)open it if needed, rebuild it if it is unusable. */
static enum store_status idx_attach(struct idx *idx, bool check)
{
    char *path = path_join(idx->dir, IDX_DB);
    struct stat st;
    bool present = stat(path, &st) == 0;
    free(path);
    if (idx->db != NULL && (!present || st.st_dev != idx->db_dev || st.st_ino != idx->db_ino)) {
        db_close(idx); /* replaced by a rebuild elsewhere */
        idx->reopened = true;
    }
    enum store_status s = STORE_OK;
    if (idx->db == NULL)
        s = db_open(idx);
    if (s == STORE_OK && idx->corrupt)
        s = STORE_CORRUPT;
    if (s == STORE_OK && check) {
        sqlite3_stmt *q;
        s = idx_prepare(idx, "PRAGMA quick_check", &q);
        if (s == STORE_OK) {
            int rc = sqlite3_step(q);
            const char *r = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : NULL;
            if (r == NULL || strcmp(r, "ok") != 0)
                s = rc == SQLITE_ROW ? STORE_CORRUPT : idx_sqlite_status(idx, rc, "check");
            sqlite3_finalize(q);
        }
    }
    if (s == STORE_OK)
        s = meta_load(idx);
    if (s == STORE_CORRUPT) {
        if (present)
            log_warning("store: rebuilding the index of %s: %s", idx->dir, store_last_error());
        s = idx_rebuild(idx);
        if (s == STORE_OK)
            s = meta_load(idx);
    }
    return s;
}

/* --- rows --- */

enum store_status idx_insert_row(struct idx *idx, const struct idx_row *row)
{
    if (idx->insert_stmt == NULL) {
        enum store_status st = idx_prepare(
            idx,
            "INSERT INTO msg(uid, fname, flags, keywords, size, file_size,"
            " internaldate, modseq, added, recent) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &idx->insert_stmt);
        if (st != STORE_OK)
            return st;
    }
    sqlite3_stmt *q = idx->insert_stmt;
    sqlite3_bind_int64(q, 1, row->uid);
    sqlite3_bind_text(q, 2, row->fname, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, (int)row->flags);
    sqlite3_bind_text(q, 4, row->keywords ? row->keywords : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, (int64_t)row->size);
    sqlite3_bind_int64(q, 6, (int64_t)row->file_size);
    sqlite3_bind_int64(q, 7, row->internaldate);
    sqlite3_bind_int64(q, 8, (int64_t)row->modseq);
    sqlite3_bind_int64(q, 9, (int64_t)row->modseq);
    sqlite3_bind_int(q, 10, row->recent);
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_DONE ? STORE_OK : idx_sqlite_status(idx, rc, "insert");
}

enum store_status idx_get_row(struct idx *idx, uint32_t uid, struct idx_row *row)
{
    memset(row, 0, sizeof *row);
    sqlite3_stmt *q;
    enum store_status st =
        idx_prepare_cached(idx,
                           "SELECT fname, flags, keywords, size, file_size,"
                           " internaldate, modseq, recent FROM msg WHERE uid = ?",
                           &q);
    if (st != STORE_OK)
        return st;
    sqlite3_bind_int64(q, 1, uid);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        row->uid = uid;
        row->fname = xstrdup((const char *)sqlite3_column_text(q, 0));
        row->flags = (unsigned)sqlite3_column_int(q, 1);
        const char *kw = (const char *)sqlite3_column_text(q, 2);
        row->keywords = xstrdup(kw ? kw : "");
        row->size = (uint64_t)sqlite3_column_int64(q, 3);
        row->file_size = (uint64_t)sqlite3_column_int64(q, 4);
        row->internaldate = sqlite3_column_int64(q, 5);
        row->modseq = (uint64_t)sqlite3_column_int64(q, 6);
        row->recent = sqlite3_column_int(q, 7) != 0;
        st = STORE_OK;
    } else if (rc == SQLITE_DONE) {
        store_set_error("message UID %u of %s is gone", uid, idx->name);
        st = STORE_NOT_FOUND;
    } else {
        st = idx_sqlite_status(idx, rc, "read message");
    }
    idx_release(idx, q);
    return st;
}

void idx_row_clear(struct idx_row *row)
{
    free(row->fname);
    free(row->keywords);
    memset(row, 0, sizeof *row);
}

enum store_status idx_expunge_rows(struct idx *idx, const uint32_t *uids, size_t count,
                                   uint64_t modseq)
{
    /* If the index is lost later, UIDNEXT must still be above the UIDs expunged here. */
    idx_save_uid_hint(idx);
    sqlite3_stmt *del, *tomb;
    enum store_status st = idx_prepare(idx, "DELETE FROM msg WHERE uid = ?", &del);
    if (st != STORE_OK)
        return st;
    st = idx_prepare(idx, "INSERT OR REPLACE INTO expunged(uid, modseq) VALUES(?, ?)", &tomb);
    for (size_t i = 0; i < count && st == STORE_OK; i++) {
        sqlite3_bind_int64(del, 1, uids[i]);
        int rc = sqlite3_step(del);
        sqlite3_reset(del);
        if (rc == SQLITE_DONE) {
            sqlite3_bind_int64(tomb, 1, uids[i]);
            sqlite3_bind_int64(tomb, 2, (int64_t)modseq);
            rc = sqlite3_step(tomb);
            sqlite3_reset(tomb);
        }
        if (rc != SQLITE_DONE)
            st = idx_sqlite_status(idx, rc, "expunge");
    }
    sqlite3_finalize(del);
    sqlite3_finalize(tomb);
    if (st != STORE_OK)
        return st;
    /* Tombstones only serve store_changes_since; the oldest go once there are too many and
     * the floor says that asking about them needs a full resync. */
    sqlite3_stmt *q;
    st = idx_prepare(idx, "SELECT count(*) FROM expunged", &q);
    if (st != STORE_OK)
        return st;
    int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    if (n <= TOMBSTONES_KEEP + TOMBSTONES_KEEP / 4)
        return STORE_OK;
    st = idx_prepare(idx, "SELECT modseq FROM expunged ORDER BY modseq DESC LIMIT 1 OFFSET ?", &q);
    if (st != STORE_OK)
        return st;
    sqlite3_bind_int(q, 1, TOMBSTONES_KEEP);
    if (sqlite3_step(q) == SQLITE_ROW) {
        uint64_t floor = (uint64_t)sqlite3_column_int64(q, 0);
        char sql[96];
        snprintf(sql, sizeof sql, "DELETE FROM expunged WHERE modseq <= %" PRIu64, floor);
        st = exec(idx, sql);
        if (floor > idx->tomb_floor)
            idx->tomb_floor = floor;
    }
    sqlite3_finalize(q);
    return st;
}

static bool uid_alloc(struct idx *idx, uint32_t *uid)
{
    if (idx->uidnext >= UINT32_MAX) {
        store_set_error("UIDs of %s are exhausted", idx->name);
        return false;
    }
    *uid = idx->uidnext++;
    return true;
}

/* --- scanning new/ and cur/ --- */

struct scan_file {
    char *name;
    struct mfile m;
    int64_t mtime;
    uint64_t file_size, size;
};

static void scan_free(struct scan_file *files, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(files[i].name);
    free(files);
}

/* Names in a directory, without dot files (ours, and tmp names of other tools). */
static enum store_status scan_dir(int dirfd, const char *what, struct scan_file **out,
                                  size_t *count)
{
    *out = NULL;
    *count = 0;
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        enum store_status st = store_errno(errno, "read", what);
        if (fd >= 0)
            close(fd);
        return st;
    }
    size_t cap = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 64;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        struct scan_file *f = &(*out)[(*count)++];
        memset(f, 0, sizeof *f);
        f->name = xstrdup(e->d_name);
    }
    int e2 = errno;
    closedir(d);
    io_count(IO_DIR_ENTRIES, *count);
    if (e2 != 0) {
        scan_free(*out, *count);
        *out = NULL;
        *count = 0;
        return store_errno(e2, "readdir", what);
    }
    return STORE_OK;
}

static int by_uid_name(const void *a, const void *b)
{
    const struct scan_file *x = a, *y = b;
    if (x->m.uid != y->m.uid)
        return x->m.uid < y->m.uid ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Maildir delivery order: oldest first, then by name. */
static int by_mtime_name(const void *a, const void *b)
{
    const struct scan_file *x = a, *y = b;
    if (x->mtime != y->mtime)
        return x->mtime < y->mtime ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Give a message found on disk (new/, or cur/ without a usable U=) a UID: rename it to carry
 * U=, W= and S=, and insert its row. A crash after the rename leaves a file whose U= is at
 * least the committed UIDNEXT, which the recovery scan adopts. */
static enum store_status assign(struct idx *idx, int from_fd, struct scan_file *f, uint64_t modseq,
                                bool *renamed)
{
    uint32_t uid;
    if (!uid_alloc(idx, &uid))
        return STORE_NO_SPACE;
    char *fname = mfile_name(f->name, f->m.base_len, f->file_size, f->size, uid, f->m.flags,
                             f->m.extra, f->m.extra_len);
    if (fname == NULL) { /* too long with our fields: a fresh base */
        char *base = mfile_unique();
        fname = mfile_name(base, strlen(base), f->file_size, f->size, uid, f->m.flags, f->m.extra,
                           f->m.extra_len);
        free(base);
    }
    if (renameat(from_fd, f->name, idx->cur_fd, fname) < 0) {
        int e = errno;
        free(fname);
        idx->uidnext--; /* nothing carries this UID yet */
        if (e == ENOENT)
            return STORE_OK; /* another process or tool took it */
        return store_errno(e, "rename", f->name);
    }
    *renamed = true;
    struct idx_row row = {.uid = uid,
                          .fname = fname,
                          .flags = f->m.flags,
                          .keywords = NULL,
                          .size = f->size,
                          .file_size = f->file_size,
                          .internaldate = f->mtime,
                          .modseq = modseq,
                          .recent = true};
    enum store_status st = idx_insert_row(idx, &row);
    free(fname);
    return st;
}

static void clean_tmp(struct idx *idx)
{
    struct scan_file *files;
    size_t n;
    if (scan_dir(idx->tmp_fd, "tmp", &files, &n) != STORE_OK)
        return;
    /* ctime, not mtime: an APPEND sets the mtime of its file in tmp/ to the internal date */
    time_t limit = time(NULL) - TMP_MAX_AGE;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (fstatat(idx->tmp_fd, files[i].name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && st.st_ctime < limit)
            unlinkat(idx->tmp_fd, files[i].name, 0);
    }
    scan_free(files, n);
}

struct known {
    uint32_t uid;
    char *fname;
    bool matched;
};

static struct known *find_known(struct known *rows, size_t n, uint32_t uid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rows[mid].uid == uid)
            return &rows[mid];
        if (rows[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static enum store_status load_known(struct idx *idx, struct known **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    sqlite3_stmt *q;
    enum store_status st = idx_prepare(idx, "SELECT uid, fname FROM msg ORDER BY uid", &q);
    if (st != STORE_OK)
        return st;
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*count == cap) {
            cap = cap ? cap * 2 : 256;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        const char *fname = (const char *)sqlite3_column_text(q, 1);
        (*out)[(*count)++] = (struct known){(uint32_t)sqlite3_column_int64(q, 0),
                                            xstrdup(fname ? fname : ""), false};
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? STORE_OK : idx_sqlite_status(idx, rc, "read messages");
}

static void known_free(struct known *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rows[i].fname);
    free(rows);
}

static int64_t now_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* How long after a change a directory's mtime is final: any later change gets another mtime.
 * Sub-second timestamps tick at most every few ms (jiffies); whole seconds mean a file system
 * with 1 s (ext3 small inodes) or 2 s (FAT) resolution. */
static int64_t trust_window_ns(int64_t mtime_ns)
{
    return mtime_ns % 1000000000 != 0 ? 50000000 : 2000000000;
}

/* Reconcile the index with every name in cur/: flags changed by other tools, files removed,
 * files adopted (U= from a crashed writer or a lost index), files without U= numbered. */
static enum store_status rescan_cur(struct idx *idx)
{
    io_count(IO_RESCANS, 1);
    struct scan_file *files = NULL;
    size_t nfiles = 0;
    int64_t before = 0, after = -1;
    enum store_status st = STORE_OK;
    /* A listing taken while cur/ changed may miss a renamed file: take it again. */
    for (int attempt = 0; attempt < 3 && before != after; attempt++) {
        scan_free(files, nfiles);
        struct stat cst;
        if (fstat(idx->cur_fd, &cst) < 0)
            return store_errno(errno, "stat cur of", idx->name);
        before = stat_mtime_ns(&cst);
        st = scan_dir(idx->cur_fd, "cur", &files, &nfiles);
        if (st != STORE_OK)
            return st;
        after = fstat(idx->cur_fd, &cst) == 0 ? stat_mtime_ns(&cst) : -1;
    }
    clean_tmp(idx);
    struct known *rows;
    size_t nrows;
    st = load_known(idx, &rows, &nrows);
    if (st != STORE_OK) {
        scan_free(files, nfiles);
        return st;
    }
    for (size_t i = 0; i < nfiles; i++)
        mfile_parse(files[i].name, &files[i].m);
    sort_items(files, nfiles, sizeof *files, by_uid_name);

    st = idx_begin(idx);
    uint64_t modseq = 0;
    bool renamed = false;
    size_t nunknown = 0;
    struct scan_file *unknown = xcalloc(nfiles + 1, sizeof *unknown);
    sqlite3_stmt *upd = NULL;
    if (st == STORE_OK)
        st =
            idx_prepare(idx, "UPDATE msg SET fname = ?, flags = ?, modseq = ? WHERE uid = ?", &upd);
    uint32_t last_adopted = 0;
    for (size_t i = 0; i < nfiles && st == STORE_OK; i++) {
        struct scan_file *f = &files[i];
        struct known *k = f->m.uid ? find_known(rows, nrows, f->m.uid) : NULL;
        if (k != NULL && !k->matched) {
            size_t klen = strcspn(k->fname, ":");
            if (strcmp(k->fname, f->name) == 0) {
                k->matched = true;
                continue;
            }
            if (klen == f->m.base_len && memcmp(k->fname, f->name, klen) == 0) {
                /* renamed by another tool: its flags are the truth now */
                k->matched = true;
                if (modseq == 0)
                    modseq = idx_next_modseq(idx);
                sqlite3_bind_text(upd, 1, f->name, -1, SQLITE_STATIC);
                sqlite3_bind_int(upd, 2, (int)f->m.flags);
                sqlite3_bind_int64(upd, 3, (int64_t)modseq);
                sqlite3_bind_int64(upd, 4, k->uid);
                int rc = sqlite3_step(upd);
                sqlite3_reset(upd);
                if (rc != SQLITE_DONE)
                    st = idx_sqlite_status(idx, rc, "update flags");
                continue;
            }
        }
        bool adopt = k == NULL && f->m.uid != 0 && f->m.uid < UINT32_MAX - 1 &&
                     f->m.uid != last_adopted && (idx->fresh || f->m.uid >= idx->uidnext);
        if (!adopt) {
            unknown[nunknown++] = *f;
            f->name = NULL; /* moved */
            continue;
        }
        struct stat fst;
        io_count(IO_FILE_STATS, 1);
        if (fstatat(idx->cur_fd, f->name, &fst, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(fst.st_mode))
            continue;
        uint64_t size = f->m.vsize, file_size = (uint64_t)fst.st_size;
        int64_t mtime = fst.st_mtime;
        if (!f->m.has_vsize &&
            mfile_measure(idx->cur_fd, f->name, &file_size, &size, &mtime) != STORE_OK)
            continue;
        if (modseq == 0)
            modseq = idx_next_modseq(idx);
        struct idx_row row = {.uid = f->m.uid,
                              .fname = f->name,
                              .flags = f->m.flags,
                              .size = size,
                              .file_size = file_size,
                              .internaldate = mtime,
                              .modseq = modseq,
                              .recent = !idx->fresh};
        st = idx_insert_row(idx, &row);
        last_adopted = f->m.uid;
        if (f->m.uid >= idx->uidnext)
            idx->uidnext = f->m.uid + 1;
    }
    sqlite3_finalize(upd);

    /* rows without a file: removed by another tool (or by a writer that crashed) */
    uint32_t *gone = xcalloc(nrows + 1, sizeof *gone);
    size_t ngone = 0;
    for (size_t i = 0; i < nrows; i++)
        if (!rows[i].matched)
            gone[ngone++] = rows[i].uid;
    if (st == STORE_OK && ngone > 0) {
        if (modseq == 0)
            modseq = idx_next_modseq(idx);
        st = idx_expunge_rows(idx, gone, ngone, modseq);
    }
    free(gone);

    /* files without a usable UID, numbered in delivery order */
    for (size_t i = 0; i < nunknown && st == STORE_OK; i++) {
        struct scan_file *f = &unknown[i];
        if (mfile_measure(idx->cur_fd, f->name, &f->file_size, &f->size, &f->mtime) != STORE_OK)
            f->mtime = INT64_MAX; /* vanished or unreadable: skipped below */
    }
    sort_items(unknown, nunknown, sizeof *unknown, by_mtime_name);
    for (size_t i = 0; i < nunknown && st == STORE_OK; i++) {
        if (unknown[i].mtime == INT64_MAX)
            continue;
        if (modseq == 0)
            modseq = idx_next_modseq(idx);
        st = assign(idx, idx->cur_fd, &unknown[i], modseq, &renamed);
    }
    if (st == STORE_OK && renamed && fsync_dirfd(idx->cur_fd) < 0)
        st = store_errno(errno, "fsync cur of", idx->name);

    /* cur/ is trusted when the listing was consistent and old enough that a later change in
     * the same timestamp tick is impossible. */
    idx->cur_trusted = before == after && now_realtime_ns() - before >= trust_window_ns(before);
    idx->cur_mtime = before;
    if (renamed)
        idx_note_cur_changed(idx);
    idx->fresh = false;
    /* an unchanged scan writes nothing, so that watchers (IDLE) are not woken for nothing */
    bool meta_changed = modseq != 0 || idx->uidnext != idx->saved.uidnext ||
                        idx->cur_mtime != idx->saved.cur_mtime ||
                        idx->cur_trusted != idx->saved.cur_trusted || idx->saved.fresh ||
                        idx->tomb_floor != idx->saved.tomb_floor ||
                        idx->uid_hint != idx->saved.uid_hint;
    if (st == STORE_OK && meta_changed)
        st = idx_save_meta(idx);
    if (st == STORE_OK)
        st = idx_commit(idx);
    else
        idx_rollback(idx);
    scan_free(unknown, nunknown);
    scan_free(files, nfiles);
    known_free(rows, nrows);
    return st;
}

/* Deliveries in new/ (by an MTA, or left by another tool) get UIDs in delivery order. new/ is
 * empty after every pickup, so reading it is the cheap check. */
static enum store_status pickup_new(struct idx *idx)
{
    struct scan_file *files;
    size_t n;
    enum store_status st = scan_dir(idx->new_fd, "new", &files, &n);
    if (st != STORE_OK || n == 0)
        return st;
    size_t keep = 0;
    for (size_t i = 0; i < n; i++) {
        struct scan_file *f = &files[i];
        if (mfile_measure(idx->new_fd, f->name, &f->file_size, &f->size, &f->mtime) != STORE_OK) {
            free(f->name);
            continue;
        }
        mfile_parse(f->name, &f->m);
        files[keep++] = *f;
    }
    sort_items(files, keep, sizeof *files, by_mtime_name);
    st = idx_begin(idx);
    uint64_t modseq = idx_next_modseq(idx);
    bool renamed = false;
    for (size_t i = 0; i < keep && st == STORE_OK; i++)
        st = assign(idx, idx->new_fd, &files[i], modseq, &renamed);
    if (st == STORE_OK && renamed && (fsync_dirfd(idx->cur_fd) < 0 || fsync_dirfd(idx->new_fd) < 0))
        st = store_errno(errno, "fsync", idx->name);
    if (renamed)
        idx_note_cur_changed(idx);
    if (st == STORE_OK)
        st = idx_save_meta(idx);
    if (st == STORE_OK)
        st = idx_commit(idx);
    else
        idx_rollback(idx);
    scan_free(files, keep);
    return st;
}

/* After a crash or power loss the index may have lost commits; UIDNEXT must still not go
 * below what the uidvalidity file recorded before any expunge. */
static enum store_status recover_uidnext(struct idx *idx)
{
    uint32_t uidvalidity, hint;
    if (!uid_file_read(idx, &uidvalidity, &hint) || hint <= idx->uidnext)
        return STORE_OK;
    enum store_status st = idx_begin(idx);
    idx->uidnext = hint;
    if (st == STORE_OK)
        st = idx_save_meta(idx);
    if (st == STORE_OK)
        st = idx_commit(idx);
    else
        idx_rollback(idx);
    return st;
}

/* --- the lock and its crash marker --- */

/* The lock file holds "<boot id> <0|1>": 1 while a holder may have the Maildir and the index
 * out of step. Finding 1, or another boot's id (a power loss), means recovery first. */
static bool marker_clean(struct idx *idx)
{
    char want[64], have[64];
    int n = snprintf(want, sizeof want, "%s 0\n", boot_id());
    ssize_t got = pread(idx->lock_fd, have, sizeof have, 0);
    return got == n && memcmp(want, have, (size_t)n) == 0;
}

static int marker_write(struct idx *idx, bool dirty)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%s %d\n", boot_id(), dirty ? 1 : 0);
    return pwrite(idx->lock_fd, buf, (size_t)n, 0) == n ? 0 : -1;
}

enum store_status idx_lock(struct idx *idx, bool full_rescan)
{
    enum store_status pst = unpark(idx);
    if (pst != STORE_OK)
        return pst;
    if (lock_wait(idx->lock_fd, LOCK_TIMEOUT_MS) < 0) {
        if (errno == EWOULDBLOCK) {
            store_set_error("mailbox %s stayed locked for %d s", idx->name, LOCK_TIMEOUT_MS / 1000);
            return STORE_BUSY;
        }
        return store_errno(errno, "lock", idx->name);
    }
    idx->locked = true;
    idx->failed = false;
    idx->reopened = false;
    enum store_status st = STORE_OK;
    char *lock_path = path_join(idx->dir, IDX_LOCK);
    struct stat lst;
    if (stat(lock_path, &lst) < 0 || lst.st_dev != idx->lock_dev || lst.st_ino != idx->lock_ino) {
        store_set_error("mailbox %s was deleted or renamed", idx->name);
        st = STORE_STALE;
    }
    free(lock_path);
    bool recover = false;
    if (st == STORE_OK) {
        recover = !marker_clean(idx);
        if (marker_write(idx, true) < 0)
            st = store_errno(errno, "write lock of", idx->name);
    }
    if (st == STORE_OK)
        st = idx_attach(idx, recover);
    if (st == STORE_OK) {
        struct stat cst;
        if (fstat(idx->cur_fd, &cst) < 0) {
            st = store_errno(errno, "stat cur of", idx->name);
        } else {
            bool clean = idx->cur_trusted && !idx->fresh && stat_mtime_ns(&cst) == idx->cur_mtime;
            if (recover || full_rescan || !clean)
                st = rescan_cur(idx);
        }
    }
    /* after the scan, which adopts files at or above the index's UIDNEXT */
    if (st == STORE_OK && recover)
        st = recover_uidnext(idx);
    if (st == STORE_OK)
        st = pickup_new(idx);
    if (st != STORE_OK) {
        if (st != STORE_STALE)
            idx->failed = true;
        idx_unlock(idx);
    }
    return st;
}

void idx_unlock(struct idx *idx)
{
    if (!idx->locked)
        return;
    if (!idx->failed)
        marker_write(idx, false);
    flock(idx->lock_fd, LOCK_UN);
    idx->locked = false;
}
