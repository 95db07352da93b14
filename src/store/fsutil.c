/* Disk helpers of the store: durable small files, directory fsync, locks, errors, counters. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "postern/util.h"

static _Thread_local char last_error[512];

const char *store_last_error(void)
{
    return last_error;
}

void store_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

const char *store_status_text(enum store_status status)
{
    switch (status) {
    case STORE_OK:
        return "ok";
    case STORE_NOT_FOUND:
        return "not found";
    case STORE_EXISTS:
        return "exists";
    case STORE_INVALID_NAME:
        return "invalid name";
    case STORE_INVALID:
        return "not allowed";
    case STORE_READONLY:
        return "read-only";
    case STORE_NO_SPACE:
        return "no space";
    case STORE_IO:
        return "I/O error";
    case STORE_CORRUPT:
        return "index corrupt";
    case STORE_BUSY:
        return "busy";
    case STORE_STALE:
        return "mailbox changed underneath";
    case STORE_TOO_OLD:
        return "modseq too old";
    }
    return "unknown";
}

enum store_status store_errno(int err, const char *what, const char *path)
{
    store_set_error("%s %s: %s", what, path ? path : "", strerror(err));
    switch (err) {
    case ENOSPC:
    case EDQUOT:
        return STORE_NO_SPACE;
    case ENOENT:
    case ENOTDIR:
        return STORE_NOT_FOUND;
    case EEXIST:
    case ENOTEMPTY:
        return STORE_EXISTS;
    case EWOULDBLOCK:
        return STORE_BUSY;
    default:
        return STORE_IO;
    }
}

static uint64_t counters[4];

void io_count(enum io_counter which, uint64_t n)
{
    __atomic_add_fetch(&counters[which], n, __ATOMIC_RELAXED);
}

void store_io_counters(struct store_io_counters *out)
{
    out->dir_entries = __atomic_load_n(&counters[IO_DIR_ENTRIES], __ATOMIC_RELAXED);
    out->file_stats = __atomic_load_n(&counters[IO_FILE_STATS], __ATOMIC_RELAXED);
    out->rescans = __atomic_load_n(&counters[IO_RESCANS], __ATOMIC_RELAXED);
    out->rebuilds = __atomic_load_n(&counters[IO_REBUILDS], __ATOMIC_RELAXED);
}

int fsync_dirfd(int fd)
{
    /* Some file systems refuse fsync on directories; the rename is then as durable as it gets. */
    if (fsync(fd) < 0 && errno != EINVAL && errno != EROFS)
        return -1;
    return 0;
}

int fsync_dirat(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync_dirfd(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int fsync_dir_path(const char *path)
{
    return fsync_dirat(AT_FDCWD, path);
}

char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

int mkdir_p(const char *path, mode_t mode)
{
    char *copy = xstrdup(path);
    for (char *p = copy + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(copy, mode) < 0 && errno != EEXIST) {
            int e = errno;
            free(copy);
            errno = e;
            return -1;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    free(copy);
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

enum store_status make_maildir(const char *path)
{
    static const char *const subdirs[] = {"tmp", "new", "cur"};
    bool created = false;
    if (mkdir(path, 0700) == 0)
        created = true;
    else if (errno != EEXIST)
        return store_errno(errno, "mkdir", path);
    for (size_t i = 0; i < ARRAY_LEN(subdirs); i++) {
        char *sub = path_join(path, subdirs[i]);
        int rc = mkdir(sub, 0700);
        int e = errno;
        free(sub);
        if (rc == 0)
            created = true;
        else if (e != EEXIST)
            return store_errno(e, "mkdir", path);
    }
    if (created && fsync_dir_path(path) < 0)
        return store_errno(errno, "fsync", path);
    return STORE_OK;
}

static int rm_rf_at(int parent, const char *name)
{
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return unlinkat(parent, name, 0) < 0 && errno != ENOENT ? -1 : 0;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) {
            if (rm_rf_at(dirfd(d), e->d_name) < 0)
                rc = -1;
        } else if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT) {
            rc = -1;
        }
    }
    closedir(d);
    if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = -1;
    return rc;
}

int rm_rf(const char *path)
{
    return rm_rf_at(AT_FDCWD, path);
}

int lock_wait(int fd, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    long pause_us = 50;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        if (now_ms() >= deadline) {
            errno = EWOULDBLOCK;
            return -1;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = pause_us * 1000};
        nanosleep(&ts, NULL);
        if (pause_us < 2000) /* holders keep it for milliseconds: poll often */
            pause_us *= 2;
    }
}

static pthread_once_t boot_once = PTHREAD_ONCE_INIT;
static char boot[40] = "unknown-boot";

static void boot_read(void)
{
    char buf[64];
    if (!read_small_file("/proc/sys/kernel/random", "boot_id", buf, sizeof buf))
        return;
    buf[strcspn(buf, "\n")] = '\0';
    if (strlen(buf) == 36)
        memcpy(boot, buf, 37);
}

const char *boot_id(void)
{
    pthread_once(&boot_once, boot_read);
    return boot;
}

ssize_t write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    return (ssize_t)len;
}

enum store_status write_file_atomic(const char *dir, const char *name, const char *content)
{
    char *tmpname = NULL;
    if (asprintf(&tmpname, "%s/.%s.%ld.tmp", dir, name, (long)getpid()) < 0)
        return store_errno(ENOMEM, "asprintf", name);
    char *final = path_join(dir, name);
    enum store_status st = STORE_OK;
    int fd = open(tmpname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        st = store_errno(errno, "create", tmpname);
        goto out;
    }
    if (write_all(fd, content, strlen(content)) < 0 || fsync(fd) < 0) {
        st = store_errno(errno, "write", tmpname);
        close(fd);
        unlink(tmpname);
        goto out;
    }
    close(fd);
    if (rename(tmpname, final) < 0) {
        st = store_errno(errno, "rename", final);
        unlink(tmpname);
        goto out;
    }
    if (fsync_dir_path(dir) < 0)
        st = store_errno(errno, "fsync", dir);
out:
    free(tmpname);
    free(final);
    return st;
}

bool read_small_file(const char *dir, const char *name, char *buf, size_t size)
{
    char *path = path_join(dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return false;
    size_t got = 0;
    while (got + 1 < size) {
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return true;
}

/* UIDVALIDITY must differ from every earlier mailbox of the same name (RFC 3501 §2.3.1.1): the
 * account keeps the last value handed out and never goes back, even if the clock does. The
 * counter file has its own lock so that no other lock is ever taken while holding it. */
uint32_t uidvalidity_allocate(const struct store_account *account)
{
    char *path = path_join(account->root, ROOT_UIDVALIDITY_NEXT);
    uint32_t value = (uint32_t)time(NULL);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0 && lock_wait(fd, LOCK_TIMEOUT_MS) == 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        unsigned long last = strtoul(buf, NULL, 10);
        if (last >= value && last < UINT32_MAX)
            value = (uint32_t)last + 1;
        int len = snprintf(buf, sizeof buf, "%u\n", value);
        if (pwrite(fd, buf, (size_t)len, 0) == len && ftruncate(fd, len) == 0)
            fsync(fd);
        flock(fd, LOCK_UN);
    }
    if (fd >= 0)
        close(fd);
    free(path);
    if (value == 0)
        value = 1;
    return value;
}
