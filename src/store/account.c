/* An account's folder tree: default folders, CREATE/DELETE/RENAME, LIST, subscriptions, STATUS,
 * and the POP3 lock. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "postern/util.h"

static const struct {
    const char *name;
    enum store_special special;
} default_folders[] = {
    {"Sent", STORE_SPECIAL_SENT},
    {"Drafts", STORE_SPECIAL_DRAFTS},
    {"Trash", STORE_SPECIAL_TRASH},
    {"Junk", STORE_SPECIAL_JUNK},
};

static const char *const special_names[] = {
    [STORE_SPECIAL_NONE] = "",           [STORE_SPECIAL_SENT] = "\\Sent",
    [STORE_SPECIAL_DRAFTS] = "\\Drafts", [STORE_SPECIAL_TRASH] = "\\Trash",
    [STORE_SPECIAL_JUNK] = "\\Junk",     [STORE_SPECIAL_ARCHIVE] = "\\Archive",
};

/* --- the account root's lock: serialises changes to the folder tree and subscriptions --- */

static int root_lock(const struct store_account *account, enum store_status *st)
{
    char *path = path_join(account->root, ROOT_LOCK);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(path);
    if (fd < 0) {
        *st = store_errno(errno, "open lock of", account->root);
        return -1;
    }
    if (lock_wait(fd, LOCK_TIMEOUT_MS) < 0) {
        *st = store_errno(errno, "lock", account->root);
        close(fd);
        return -1;
    }
    *st = STORE_OK;
    return fd;
}

static void root_unlock(int fd)
{
    flock(fd, LOCK_UN);
    close(fd);
}

static bool folder_exists(const char *dir)
{
    char *cur = path_join(dir, "cur");
    struct stat st;
    bool ok = stat(cur, &st) == 0 && S_ISDIR(st.st_mode);
    free(cur);
    return ok;
}

/* Canonical names of the folder directories at the root (INBOX not included). */
static enum store_status disk_folders(const struct store_account *account, char ***names,
                                      size_t *count)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(account->root);
    if (d == NULL)
        return store_errno(errno, "read", account->root);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char name[STORE_NAME_MAX + 1];
        if (e->d_name[0] != '.' || !disk_to_name(e->d_name, name, sizeof name))
            continue;
        if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
            continue;
        char *dir = path_join(account->root, e->d_name);
        bool ok = folder_exists(dir);
        free(dir);
        if (!ok)
            continue;
        *names = xrealloc(*names, (*count + 1) * sizeof **names);
        (*names)[(*count)++] = xstrdup(name);
    }
    closedir(d);
    return STORE_OK;
}

void store_strings_free(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

static bool has_prefix_child(const char *name, const char *parent)
{
    size_t n = strlen(parent);
    return strncmp(name, parent, n) == 0 && name[n] == '/';
}

/* A new folder is built in the trash directory and renamed into place, so it appears whole or
 * not at all. Called with the root lock. */
static enum store_status create_folder(const struct store_account *account, const char *canonical,
                                       enum store_special special)
{
    char *dir = mailbox_dir(account, canonical);
    if (dir == NULL)
        return STORE_INVALID_NAME;
    enum store_status st = STORE_OK;
    char *trash = path_join(account->root, ROOT_TRASH);
    char *unique = mfile_unique();
    char *stage = path_join(trash, unique);
    free(unique);
    mkdir(trash, 0700);
    st = make_maildir(stage);
    if (st == STORE_OK) {
        char buf[64];
        snprintf(buf, sizeof buf, "%u 1\n", uidvalidity_allocate(account));
        st = write_file_atomic(stage, IDX_UIDVALIDITY, buf);
    }
    if (st == STORE_OK)
        st = write_file_atomic(stage, MAILDIRFOLDER, "");
    if (st == STORE_OK && special != STORE_SPECIAL_NONE) {
        char buf[32];
        snprintf(buf, sizeof buf, "%s\n", special_names[special]);
        st = write_file_atomic(stage, IDX_SPECIAL, buf);
    }
    if (st == STORE_OK && rename(stage, dir) < 0)
        st = store_errno(errno == ENOTEMPTY ? EEXIST : errno, "create", canonical);
    if (st == STORE_OK && fsync_dir_path(account->root) < 0)
        st = store_errno(errno, "fsync", account->root);
    if (st != STORE_OK)
        rm_rf(stage);
    free(stage);
    free(trash);
    free(dir);
    return st;
}

/* Superiors of name that do not exist yet are created (RFC 3501 CREATE, RENAME). */
static enum store_status create_superiors(const struct store_account *account, const char *name)
{
    char prefix[STORE_NAME_MAX + 1];
    for (const char *p = strchr(name, '/'); p != NULL; p = strchr(p + 1, '/')) {
        size_t n = (size_t)(p - name);
        memcpy(prefix, name, n);
        prefix[n] = '\0';
        if (strcmp(prefix, "INBOX") == 0)
            continue;
        char *dir = mailbox_dir(account, prefix);
        bool exists = dir != NULL && folder_exists(dir);
        free(dir);
        if (exists)
            continue;
        enum store_status st = create_folder(account, prefix, STORE_SPECIAL_NONE);
        if (st != STORE_OK && st != STORE_EXISTS)
            return st;
    }
    return STORE_OK;
}

enum store_status store_create(struct store_account *account, const char *name,
                               enum store_special special)
{
    char canonical[STORE_NAME_MAX + 1];
    enum store_status st = store_name_check(name, canonical, sizeof canonical);
    if (st != STORE_OK)
        return st;
    if (strcmp(canonical, "INBOX") == 0) {
        store_set_error("INBOX always exists");
        return STORE_EXISTS;
    }
    if ((unsigned)special > STORE_SPECIAL_ARCHIVE)
        return STORE_INVALID;
    int lock = root_lock(account, &st);
    if (lock < 0)
        return st;
    char *dir = mailbox_dir(account, canonical);
    if (folder_exists(dir)) {
        store_set_error("mailbox %s exists", canonical);
        st = STORE_EXISTS;
    }
    free(dir);
    if (st == STORE_OK)
        st = create_superiors(account, canonical);
    if (st == STORE_OK)
        st = create_folder(account, canonical, special);
    root_unlock(lock);
    return st;
}

/* Take a folder out of the tree: wait for its operations (its lock), then one rename into the
 * trash directory, then remove the files at leisure. */
static enum store_status remove_folder(const struct store_account *account, const char *dir)
{
    char *lock_path = path_join(dir, IDX_LOCK);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(lock_path);
    if (fd >= 0 && lock_wait(fd, LOCK_TIMEOUT_MS) < 0) {
        close(fd);
        return store_errno(errno, "lock", dir);
    }
    char *trash = path_join(account->root, ROOT_TRASH);
    mkdir(trash, 0700);
    char *unique = mfile_unique();
    char *target = path_join(trash, unique);
    enum store_status st = STORE_OK;
    if (rename(dir, target) < 0 || fsync_dir_path(account->root) < 0)
        st = store_errno(errno, "delete", dir);
    if (fd >= 0)
        close(fd);
    if (st == STORE_OK)
        rm_rf(target);
    free(unique);
    free(target);
    free(trash);
    return st;
}

enum store_status store_delete(struct store_account *account, const char *name)
{
    char canonical[STORE_NAME_MAX + 1];
    enum store_status st = store_name_check(name, canonical, sizeof canonical);
    if (st != STORE_OK)
        return st;
    if (strcmp(canonical, "INBOX") == 0) {
        store_set_error("INBOX cannot be deleted");
        return STORE_INVALID;
    }
    int lock = root_lock(account, &st);
    if (lock < 0)
        return st;
    char *dir = mailbox_dir(account, canonical);
    if (!folder_exists(dir)) {
        char **names;
        size_t n;
        bool children = false;
        st = disk_folders(account, &names, &n);
        for (size_t i = 0; i < n; i++)
            children = children || has_prefix_child(names[i], canonical);
        store_strings_free(names, n);
        if (st == STORE_OK) {
            /* RFC 3501 DELETE: a \Noselect name with inferiors cannot be deleted */
            store_set_error(children ? "%s has children and no messages of its own"
                                     : "no mailbox %s",
                            canonical);
            st = children ? STORE_INVALID : STORE_NOT_FOUND;
        }
    } else {
        /* with children it becomes \Noselect: only the children keep the name alive */
        st = remove_folder(account, dir);
    }
    free(dir);
    root_unlock(lock);
    return st;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* RENAME INBOX (RFC 3501): its messages move to a new mailbox; INBOX stays, empty. */
static enum store_status rename_inbox(struct store_account *account, const char *to)
{
    enum store_status st = store_create(account, to, STORE_SPECIAL_NONE);
    if (st != STORE_OK)
        return st;
    struct idx *src = NULL, *dst = NULL;
    st = idx_open(account, "INBOX", &src);
    if (st == STORE_OK)
        st = idx_open(account, to, &dst);
    uint32_t *uids = NULL;
    size_t n = 0;
    if (st == STORE_OK)
        st = idx_lock(src, false);
    if (st == STORE_OK) {
        sqlite3_stmt *q;
        st = idx_prepare(src, "SELECT uid FROM msg ORDER BY uid", &q);
        while (st == STORE_OK && sqlite3_step(q) == SQLITE_ROW) {
            uids = xrealloc(uids, (n + 1) * sizeof *uids);
            uids[n++] = (uint32_t)sqlite3_column_int64(q, 0);
        }
        sqlite3_finalize(q);
        idx_unlock(src);
    }
    if (st == STORE_OK && n > 0) {
        uint32_t *dest_uids = xcalloc(n, sizeof *dest_uids);
        uint32_t *moved = NULL;
        size_t nmoved = 0;
        st = move_uids(src, dst, false, uids, n, dest_uids, &moved, &nmoved);
        free(moved);
        free(dest_uids);
    }
    free(uids);
    idx_close(src);
    idx_close(dst);
    return st;
}

struct rename_pair {
    char *from_dir, *to_dir;
    int lock_fd;
};

static int pair_cmp(const void *a, const void *b)
{
    return strcmp(((const struct rename_pair *)a)->from_dir,
                  ((const struct rename_pair *)b)->from_dir);
}

enum store_status store_rename(struct store_account *account, const char *from, const char *to)
{
    char src[STORE_NAME_MAX + 1], dst[STORE_NAME_MAX + 1];
    enum store_status st = store_name_check(from, src, sizeof src);
    if (st == STORE_OK)
        st = store_name_check(to, dst, sizeof dst);
    if (st != STORE_OK)
        return st;
    if (strcmp(dst, "INBOX") == 0 || strcmp(src, dst) == 0) {
        store_set_error("mailbox %s exists", dst);
        return STORE_EXISTS;
    }
    if (has_prefix_child(dst, src)) {
        store_set_error("cannot rename %s into itself", src);
        return STORE_INVALID;
    }
    if (strcmp(src, "INBOX") == 0)
        return rename_inbox(account, dst);
    int lock = root_lock(account, &st);
    if (lock < 0)
        return st;
    char **names;
    size_t n;
    st = disk_folders(account, &names, &n);
    struct rename_pair *pairs = xcalloc(n + 1, sizeof *pairs);
    size_t np = 0;
    size_t slen = strlen(src);
    for (size_t i = 0; i < n && st == STORE_OK; i++) {
        if (strcmp(names[i], dst) == 0 || has_prefix_child(names[i], dst)) {
            store_set_error("mailbox %s exists", names[i]);
            st = STORE_EXISTS;
        }
        if (strcmp(names[i], src) != 0 && !has_prefix_child(names[i], src))
            continue;
        char target[STORE_NAME_MAX + 1], *t = NULL;
        if (asprintf(&t, "%s%s", dst, names[i] + slen) < 0 ||
            store_name_check(t, target, sizeof target) != STORE_OK) {
            store_set_error("new name of %s is too long", names[i]);
            st = STORE_INVALID_NAME;
        } else {
            pairs[np].from_dir = mailbox_dir(account, names[i]);
            pairs[np].to_dir = mailbox_dir(account, target);
            pairs[np++].lock_fd = -1;
        }
        free(t);
    }
    if (st == STORE_OK && np == 0) {
        store_set_error("no mailbox %s", src);
        st = STORE_NOT_FOUND;
    }
    if (st == STORE_OK)
        st = create_superiors(account, dst);
    /* wait for every operation in the moving folders, locks in the global (path) order */
    sort_items(pairs, np, sizeof *pairs, pair_cmp);
    for (size_t i = 0; i < np && st == STORE_OK; i++) {
        char *lp = path_join(pairs[i].from_dir, IDX_LOCK);
        pairs[i].lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        free(lp);
        if (pairs[i].lock_fd >= 0 && lock_wait(pairs[i].lock_fd, LOCK_TIMEOUT_MS) < 0)
            st = store_errno(errno, "lock", pairs[i].from_dir);
    }
    /* Maildir++ folders are siblings at the root: one rename each. A crash in between leaves
     * some children under the old name, every message intact. */
    for (size_t i = 0; i < np && st == STORE_OK; i++)
        if (rename(pairs[i].from_dir, pairs[i].to_dir) < 0)
            st = store_errno(errno == ENOTEMPTY ? EEXIST : errno, "rename", pairs[i].from_dir);
    if (np > 0 && fsync_dir_path(account->root) < 0 && st == STORE_OK)
        st = store_errno(errno, "fsync", account->root);
    for (size_t i = 0; i < np; i++) {
        if (pairs[i].lock_fd >= 0)
            close(pairs[i].lock_fd);
        free(pairs[i].from_dir);
        free(pairs[i].to_dir);
    }
    free(pairs);
    store_strings_free(names, n);
    root_unlock(lock);
    return st;
}

/* --- subscriptions: one name per line in <root>/subscriptions --- */

static void read_subscriptions(const struct store_account *account, char ***names, size_t *count)
{
    *names = NULL;
    *count = 0;
    char *path = path_join(account->root, ROOT_SUBSCRIPTIONS);
    FILE *f = fopen(path, "re");
    free(path);
    if (f == NULL)
        return;
    char line[STORE_NAME_MAX + 8];
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        char canonical[STORE_NAME_MAX + 1];
        if (store_name_check(line, canonical, sizeof canonical) != STORE_OK)
            continue;
        *names = xrealloc(*names, (*count + 1) * sizeof **names);
        (*names)[(*count)++] = xstrdup(canonical);
    }
    fclose(f);
}

static enum store_status write_subscriptions(const struct store_account *account, char **names,
                                             size_t count)
{
    sort_items(names, count, sizeof *names, str_cmp);
    size_t len = 1;
    for (size_t i = 0; i < count; i++)
        len += strlen(names[i]) + 1;
    char *buf = xmalloc(len);
    size_t o = 0;
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
            continue;
        size_t l = strlen(names[i]);
        memcpy(buf + o, names[i], l);
        o += l;
        buf[o++] = '\n';
    }
    buf[o] = '\0';
    enum store_status st = write_file_atomic(account->root, ROOT_SUBSCRIPTIONS, buf);
    free(buf);
    return st;
}

static enum store_status change_subscription(struct store_account *account, const char *name,
                                             bool subscribe)
{
    char canonical[STORE_NAME_MAX + 1];
    enum store_status st = store_name_check(name, canonical, sizeof canonical);
    if (st != STORE_OK)
        return st;
    int lock = root_lock(account, &st);
    if (lock < 0)
        return st;
    char **names;
    size_t n;
    read_subscriptions(account, &names, &n);
    size_t found = n;
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], canonical) == 0)
            found = i;
    if (subscribe && found == n) {
        names = xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = xstrdup(canonical);
        st = write_subscriptions(account, names, n);
    } else if (!subscribe && found < n) {
        free(names[found]);
        names[found] = names[--n];
        st = write_subscriptions(account, names, n);
    } else if (!subscribe) {
        store_set_error("not subscribed to %s", canonical);
        st = STORE_NOT_FOUND;
    }
    store_strings_free(names, n);
    root_unlock(lock);
    return st;
}

enum store_status store_subscribe(struct store_account *account, const char *name)
{
    return change_subscription(account, name, true);
}

enum store_status store_unsubscribe(struct store_account *account, const char *name)
{
    return change_subscription(account, name, false);
}

enum store_status store_subscriptions(struct store_account *account, char ***names, size_t *count)
{
    read_subscriptions(account, names, count);
    sort_items(*names, *count, sizeof **names, str_cmp);
    return STORE_OK;
}

/* --- LIST --- */

static enum store_special read_special(const struct store_account *account, const char *name)
{
    char *dir = mailbox_dir(account, name);
    char buf[32];
    bool ok = dir != NULL && read_small_file(dir, IDX_SPECIAL, buf, sizeof buf);
    free(dir);
    if (!ok)
        return STORE_SPECIAL_NONE;
    buf[strcspn(buf, "\r\n")] = '\0';
    for (size_t i = 1; i < ARRAY_LEN(special_names); i++)
        if (ascii_casecmp(buf, special_names[i]) == 0)
            return (enum store_special)i;
    return STORE_SPECIAL_NONE;
}

static int folder_cmp(const void *a, const void *b)
{
    const char *x = ((const struct store_folder *)a)->name;
    const char *y = ((const struct store_folder *)b)->name;
    bool xi = strcmp(x, "INBOX") == 0, yi = strcmp(y, "INBOX") == 0;
    if (xi || yi)
        return yi - xi;
    return strcmp(x, y);
}

enum store_status store_list(struct store_account *account, struct store_folder **folders,
                             size_t *count)
{
    *folders = NULL;
    *count = 0;
    char **names;
    size_t n;
    enum store_status st = disk_folders(account, &names, &n);
    if (st != STORE_OK)
        return st;
    /* every name, plus INBOX, plus implied parents (\Noselect) */
    size_t cap = n + 1;
    for (size_t i = 0; i < n; i++)
        for (const char *p = names[i]; (p = strchr(p, '/')) != NULL; p++)
            cap++;
    struct store_folder *list = xcalloc(cap, sizeof *list);
    size_t m = 0;
    list[m++].name = xstrdup("INBOX");
    for (size_t i = 0; i < n; i++)
        list[m++].name = xstrdup(names[i]);
    for (size_t i = 0; i < n; i++) {
        for (const char *p = strchr(names[i], '/'); p != NULL; p = strchr(p + 1, '/')) {
            char *parent = xstrndup(names[i], (size_t)(p - names[i]));
            bool known = false;
            for (size_t j = 0; j < m && !known; j++)
                known = strcmp(list[j].name, parent) == 0;
            if (known) {
                free(parent);
                continue;
            }
            list[m].name = parent;
            list[m++].attrs = STORE_LIST_NOSELECT;
        }
    }
    char **subs;
    size_t nsubs;
    read_subscriptions(account, &subs, &nsubs);
    for (size_t i = 0; i < m; i++) {
        bool children = false, subscribed = false;
        for (size_t j = 0; j < m && !children; j++)
            children = has_prefix_child(list[j].name, list[i].name);
        for (size_t j = 0; j < nsubs && !subscribed; j++)
            subscribed = strcmp(subs[j], list[i].name) == 0;
        list[i].attrs |= children ? STORE_LIST_HASCHILDREN : STORE_LIST_HASNOCHILDREN;
        if (subscribed)
            list[i].attrs |= STORE_LIST_SUBSCRIBED;
        if (!(list[i].attrs & STORE_LIST_NOSELECT) && i > 0)
            list[i].special = read_special(account, list[i].name);
    }
    store_strings_free(subs, nsubs);
    store_strings_free(names, n);
    sort_items(list, m, sizeof *list, folder_cmp);
    *folders = list;
    *count = m;
    return STORE_OK;
}

void store_list_free(struct store_folder *folders, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(folders[i].name);
    free(folders);
}

/* --- STATUS --- */

enum store_status store_status(struct store_account *account, const char *name,
                               struct store_mailbox_status *status)
{
    memset(status, 0, sizeof *status);
    char canonical[STORE_NAME_MAX + 1];
    enum store_status st = store_name_check(name, canonical, sizeof canonical);
    if (st != STORE_OK)
        return st;
    struct idx *idx;
    st = idx_open(account, canonical, &idx);
    if (st != STORE_OK)
        return st;
    st = idx_lock(idx, false);
    if (st == STORE_OK) {
        sqlite3_stmt *q;
        st = idx_prepare(idx, "SELECT messages, recent, unseen FROM counts", &q);
        if (st == STORE_OK) {
            int rc = sqlite3_step(q);
            if (rc == SQLITE_ROW) {
                status->messages = (uint32_t)sqlite3_column_int64(q, 0);
                status->recent = (uint32_t)sqlite3_column_int64(q, 1);
                status->unseen = (uint32_t)sqlite3_column_int64(q, 2);
            } else {
                st = idx_sqlite_status(idx, rc, "status");
            }
            sqlite3_finalize(q);
        }
        status->uidnext = idx->uidnext;
        status->uidvalidity = idx->uidvalidity;
        status->highest_modseq = idx->modseq;
        idx_unlock(idx);
    }
    idx_close(idx);
    return st;
}

/* --- the account --- */

static void empty_trash(const struct store_account *account)
{
    char *trash = path_join(account->root, ROOT_TRASH);
    DIR *d = opendir(trash);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *p = path_join(trash, e->d_name);
            rm_rf(p);
            free(p);
        }
        closedir(d);
    }
    free(trash);
}

static bool trash_empty(const struct store_account *account)
{
    char *trash = path_join(account->root, ROOT_TRASH);
    DIR *d = opendir(trash);
    free(trash);
    if (d == NULL)
        return true;
    bool empty = true;
    struct dirent *e;
    while (empty && (e = readdir(d)) != NULL)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* First use of an account: the default folders with their SPECIAL-USE, subscribed. Later:
 * what a crashed CREATE or DELETE left in the trash directory goes. */
static enum store_status account_setup(struct store_account *account)
{
    char marker[8];
    enum store_status st = STORE_OK;
    if (read_small_file(account->root, ROOT_MARKER, marker, sizeof marker)) {
        if (!trash_empty(account)) {
            int lock = root_lock(account, &st);
            if (lock >= 0) {
                empty_trash(account);
                root_unlock(lock);
            }
        }
        return STORE_OK;
    }
    int lock = root_lock(account, &st);
    if (lock < 0)
        return st;
    if (!read_small_file(account->root, ROOT_MARKER, marker, sizeof marker)) {
        empty_trash(account); /* leftovers of a crashed create or delete */
        char **subs;
        size_t n;
        read_subscriptions(account, &subs, &n);
        subs = xrealloc(subs, (n + 1 + ARRAY_LEN(default_folders)) * sizeof *subs);
        subs[n++] = xstrdup("INBOX");
        for (size_t i = 0; i < ARRAY_LEN(default_folders) && st == STORE_OK; i++) {
            char *dir = mailbox_dir(account, default_folders[i].name);
            if (!folder_exists(dir))
                st = create_folder(account, default_folders[i].name, default_folders[i].special);
            free(dir);
            subs[n++] = xstrdup(default_folders[i].name);
        }
        if (st == STORE_OK)
            st = write_subscriptions(account, subs, n);
        if (st == STORE_OK)
            st = write_file_atomic(account->root, ROOT_MARKER, "1\n");
        store_strings_free(subs, n);
    }
    root_unlock(lock);
    return st;
}

enum store_status store_account_open(const char *root, struct store_account **out)
{
    if (root[0] != '/') {
        store_set_error("mail root %s is not absolute", root);
        return STORE_INVALID;
    }
    struct store_account *account = xcalloc(1, sizeof *account);
    account->root = xstrdup(root);
    size_t len = strlen(account->root);
    while (len > 1 && account->root[len - 1] == '/')
        account->root[--len] = '\0';
    enum store_status st = STORE_OK;
    if (mkdir_p(account->root, 0700) < 0)
        st = store_errno(errno, "create", account->root);
    if (st == STORE_OK)
        st = make_maildir(account->root);
    if (st == STORE_OK)
        st = account_setup(account);
    if (st != STORE_OK) {
        store_account_close(account);
        return st;
    }
    *out = account;
    return STORE_OK;
}

void store_account_close(struct store_account *account)
{
    if (account == NULL)
        return;
    free(account->root);
    free(account);
}

/* --- POP3 --- */

struct store_pop3_lock {
    int fd;
};

enum store_status store_pop3_lock(struct store_account *account, struct store_pop3_lock **out)
{
    char *path = path_join(account->root, ROOT_POP3_LOCK);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(path);
    if (fd < 0)
        return store_errno(errno, "open POP3 lock of", account->root);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        enum store_status st = store_errno(errno, "POP3 lock of", account->root);
        close(fd);
        return st;
    }
    struct store_pop3_lock *lock = xcalloc(1, sizeof *lock);
    lock->fd = fd;
    *out = lock;
    return STORE_OK;
}

void store_pop3_unlock(struct store_pop3_lock *lock)
{
    if (lock == NULL)
        return;
    flock(lock->fd, LOCK_UN);
    close(lock->fd);
    free(lock);
}
