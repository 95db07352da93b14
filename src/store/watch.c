/* inotify watch of a mailbox for IDLE: deliveries (new/), other tools (cur/), other sessions
 * (the index's write-ahead log). */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "postern/util.h"

#define DIR_EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB)
#define WAL_NAME IDX_DB "-wal"

static void watch_wal(struct store_mailbox *mb)
{
    char *path = path_join(mb->idx->dir, WAL_NAME);
    mb->wd_wal = inotify_add_watch(mb->watch_fd, path, IN_MODIFY | IN_DELETE_SELF);
    free(path);
}

int store_watch_fd(struct store_mailbox *mb)
{
    if (mb->watch_fd >= 0)
        return mb->watch_fd;
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        store_errno(errno, "inotify for", mb->idx->name);
        return -1;
    }
    mb->watch_fd = fd;
    char *cur = path_join(mb->idx->dir, "cur");
    char *new = path_join(mb->idx->dir, "new");
    mb->wd_cur = inotify_add_watch(fd, cur, DIR_EVENTS);
    mb->wd_new = inotify_add_watch(fd, new, DIR_EVENTS);
    /* The maildir itself only to see the -wal file appear (a rebuild recreates it); the lock
     * file's writes are not watched, so sessions syncing do not wake each other. */
    mb->wd_dir = inotify_add_watch(fd, mb->idx->dir, IN_CREATE | IN_MOVED_TO);
    free(cur);
    free(new);
    if (mb->wd_cur < 0 || mb->wd_new < 0 || mb->wd_dir < 0) {
        store_errno(errno, "inotify watch of", mb->idx->name);
        close(fd);
        mb->watch_fd = -1;
        return -1;
    }
    watch_wal(mb);
    return fd;
}

/* An idling session may wait for hours with its index connection open; the pages that
 * connection cached (a dozen for a 100-message mailbox, 4 KB each) and its prepared statements
 * are most of its memory, and the kernel's page cache keeps the pages anyway. */
void store_watch_trim(struct store_mailbox *mb)
{
    idx_trim(mb->idx);
}

bool store_watch_drain(struct store_mailbox *mb)
{
    if (mb->watch_fd < 0)
        return false;
    bool relevant = false, rewatch = false;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(mb->watch_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                relevant = true;
            } else if (ev->wd == mb->wd_cur || ev->wd == mb->wd_new) {
                /* dot files are other tools' temporary names */
                relevant = relevant || ev->len == 0 || ev->name[0] != '.';
            } else if (ev->wd == mb->wd_wal) {
                relevant = true;
                if (ev->mask & (IN_IGNORED | IN_DELETE_SELF)) {
                    mb->wd_wal = -1;
                    rewatch = true;
                }
            } else if (ev->wd == mb->wd_dir && ev->len > 0 && strcmp(ev->name, WAL_NAME) == 0) {
                relevant = true;
                rewatch = true;
            }
        }
    }
    if (rewatch || mb->wd_wal < 0)
        watch_wal(mb);
    return relevant;
}
