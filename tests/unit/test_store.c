/* Unit tests for the mailbox store on real files and real SQLite: names, folders, messages,
 * deliveries by an MTA, other tools, index loss, concurrent handles, crashes (kill -9). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "postern/store.h"

/* --- helpers --- */

struct fixture {
    char dir[64];  /* the test's mkdtemp directory */
    char root[96]; /* the account root inside it */
    struct store_account *account;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup_in(void **state, const char *base)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/postern-store-XXXXXX", base);
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->root, sizeof f->root, "%s/mail/ab/user", f->dir);
    if (store_account_open(f->root, &f->account) != STORE_OK) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_in(state, "/tmp");
}

/* Creating 20 000 files costs 8 s on the CI machine's ext4 and 0.6 s on tmpfs; what the test
 * checks (no stat or readdir of message files on reopen) does not depend on the file system. */
static int setup_fast(void **state)
{
    struct stat st;
    return setup_in(state, stat("/dev/shm", &st) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                                                                                       : "/tmp");
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_account_close(f->account);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...)
{
    static _Thread_local char buf[4][512];
    static _Thread_local int next;
    char *p = buf[next++ % 4];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof buf[0], fmt, ap);
    va_end(ap);
    return p;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int count_files(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static uint32_t append(struct store_account *a, const char *mailbox, const char *text,
                       unsigned flags)
{
    struct store_append *ap;
    assert_int_equal(store_append_begin(a, mailbox, &ap), STORE_OK);
    assert_int_equal(store_append_write(ap, text, strlen(text)), STORE_OK);
    uint32_t uid = 0, uidvalidity = 0;
    assert_int_equal(store_append_commit(ap, flags, NULL, 0, 0, &uidvalidity, &uid), STORE_OK);
    assert_true(uid > 0 && uidvalidity > 0);
    return uid;
}

/* As an MTA delivers: write in tmp/, rename into new/, with a chosen mtime. */
static void deliver(const char *maildir, const char *name, const char *text, time_t mtime)
{
    char *tmp = pathf("%s/tmp/%s", maildir, name);
    FILE *fp = fopen(tmp, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    if (mtime != 0) {
        struct timespec t[2] = {{.tv_sec = mtime}, {.tv_sec = mtime}};
        assert_int_equal(utimensat(AT_FDCWD, tmp, t, 0), 0);
    }
    assert_int_equal(rename(tmp, pathf("%s/new/%s", maildir, name)), 0);
}

static char *read_message(struct store_mailbox *mb, uint32_t uid, struct store_message *info)
{
    int fd;
    assert_int_equal(store_open_message(mb, uid, &fd, info), STORE_OK);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + n, cap - n - 1)) > 0) {
        n += (size_t)r;
        if (n + 1 == cap) {
            char *bigger = realloc(buf, cap *= 2);
            assert_non_null(bigger);
            buf = bigger;
        }
    }
    close(fd);
    buf[n] = '\0';
    return buf;
}

static const struct store_folder *find_folder(const struct store_folder *list, size_t n,
                                              const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].name, name) == 0)
            return &list[i];
    return NULL;
}

/* --- names --- */

static void test_names(void **state)
{
    (void)state;
    char c[STORE_NAME_MAX + 1];
    const char *valid[] = {
        "INBOX", "Sent",         "a/b/c",      "v1.2",
        "&-",    "Entw&APw-rfe", "&ZeVnLIqe-", "&2D3eAA-" /* U+1F600 as a surrogate pair */,
        "a b",   "x&-y/z"};
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++)
        assert_int_equal(store_name_check(valid[i], c, sizeof c), STORE_OK);
    const char *invalid[] = {"",
                             "/a",
                             "a/",
                             "a//b",
                             ".a",
                             "a/.b",
                             "a/./b",
                             "a/..",
                             "a\tb",
                             "caf\xc3\xa9",
                             "a*",
                             "%",
                             "&",
                             "&Jjo",
                             "&AGE-" /* 'a' must be literal */,
                             "&2D0-" /* lone high surrogate */,
                             "&3gA-" /* lone low */,
                             "&AAE-" /* control */,
                             "&A-" /* 6 bits */,
                             "&AOl-" /* bits */};
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++)
        assert_int_equal(store_name_check(invalid[i], c, sizeof c), STORE_INVALID_NAME);
    char longname[STORE_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(store_name_check(longname, c, sizeof c), STORE_INVALID_NAME);
    assert_int_equal(store_name_check("inbox", c, sizeof c), STORE_OK);
    assert_string_equal(c, "INBOX");
    assert_int_equal(store_name_check("InBoX/Sub", c, sizeof c), STORE_OK);
    assert_string_equal(c, "INBOX/Sub");
    assert_int_equal(store_name_check("INBOXES", c, sizeof c), STORE_OK);
    assert_string_equal(c, "INBOXES");

    assert_true(store_keyword_valid("$Forwarded"));
    assert_true(store_keyword_valid("NonJunk"));
    assert_false(store_keyword_valid("\\Seen"));
    assert_false(store_keyword_valid("a b"));
    assert_false(store_keyword_valid("a]"));
    assert_false(store_keyword_valid(""));

    char out[256];
    assert_int_equal(store_expand_root("/var/mail/%k", "1f2e-33", out, sizeof out), STORE_OK);
    assert_string_equal(out, "/var/mail/1f2e-33");
    assert_int_equal(store_expand_root("/m/%1k/%2k/%k/100%%", "abcd", out, sizeof out), STORE_OK);
    assert_string_equal(out, "/m/a/ab/abcd/100%");
    assert_int_equal(store_expand_root("/m/%k", "a/b", out, sizeof out), STORE_INVALID_NAME);
    assert_int_equal(store_expand_root("/m/%k", ".hidden", out, sizeof out), STORE_INVALID_NAME);
    assert_int_equal(store_expand_root("/m/%k", "", out, sizeof out), STORE_INVALID_NAME);
    assert_int_equal(store_expand_root("/m/%5k", "abc", out, sizeof out), STORE_INVALID_NAME);
    assert_int_equal(store_expand_root("/m/%x", "abc", out, sizeof out), STORE_INVALID);
    assert_int_equal(store_expand_root("m/%k", "abc", out, sizeof out), STORE_INVALID);
    assert_int_equal(store_expand_root("/m/%k", "abc", out, 6), STORE_INVALID);
}

/* --- folders --- */

static void test_account_defaults(void **state)
{
    struct fixture *f = *state;
    struct store_folder *list;
    size_t n;
    assert_int_equal(store_list(f->account, &list, &n), STORE_OK);
    assert_int_equal(n, 5);
    assert_string_equal(list[0].name, "INBOX");
    const struct {
        const char *name;
        enum store_special special;
    } want[] = {{"Sent", STORE_SPECIAL_SENT},
                {"Drafts", STORE_SPECIAL_DRAFTS},
                {"Trash", STORE_SPECIAL_TRASH},
                {"Junk", STORE_SPECIAL_JUNK}};
    for (size_t i = 0; i < 4; i++) {
        const struct store_folder *x = find_folder(list, n, want[i].name);
        assert_non_null(x);
        assert_int_equal(x->special, want[i].special);
        assert_true(x->attrs & STORE_LIST_SUBSCRIBED);
        assert_true(x->attrs & STORE_LIST_HASNOCHILDREN);
        assert_true(exists(pathf("%s/.%s/cur", f->root, want[i].name)));
        assert_true(exists(pathf("%s/.%s/maildirfolder", f->root, want[i].name)));
    }
    assert_true(list[0].attrs & STORE_LIST_SUBSCRIBED);
    store_list_free(list, n);
    assert_true(exists(pathf("%s/cur", f->root)));
    assert_true(exists(pathf("%s/new", f->root)));
    assert_true(exists(pathf("%s/tmp", f->root)));

    /* a deleted default folder is not recreated on the next login */
    assert_int_equal(store_delete(f->account, "Junk"), STORE_OK);
    struct store_account *again;
    assert_int_equal(store_account_open(f->root, &again), STORE_OK);
    assert_int_equal(store_list(again, &list, &n), STORE_OK);
    assert_int_equal(n, 4);
    assert_null(find_folder(list, n, "Junk"));
    store_list_free(list, n);
    store_account_close(again);
}

static void test_create_delete_rename(void **state)
{
    struct fixture *f = *state;
    struct store_account *a = f->account;
    assert_int_equal(store_create(a, "a/b/c", STORE_SPECIAL_NONE), STORE_OK);
    assert_true(exists(pathf("%s/.a/cur", f->root)));
    assert_true(exists(pathf("%s/.a.b/cur", f->root)));
    assert_true(exists(pathf("%s/.a.b.c/cur", f->root)));
    assert_int_equal(store_create(a, "a/b", STORE_SPECIAL_NONE), STORE_EXISTS);
    assert_int_equal(store_create(a, "inbox", STORE_SPECIAL_NONE), STORE_EXISTS);
    assert_int_equal(store_create(a, "a//b", STORE_SPECIAL_NONE), STORE_INVALID_NAME);
    assert_int_equal(store_create(a, "v1.2", STORE_SPECIAL_ARCHIVE), STORE_OK);
    assert_true(exists(pathf("%s/.v1&AC4-2/cur", f->root)));
    assert_int_equal(store_create(a, "INBOX/Lists", STORE_SPECIAL_NONE), STORE_OK);
    assert_true(exists(pathf("%s/.INBOX.Lists/cur", f->root)));

    struct store_folder *list;
    size_t n;
    assert_int_equal(store_list(a, &list, &n), STORE_OK);
    assert_true(find_folder(list, n, "a")->attrs & STORE_LIST_HASCHILDREN);
    assert_true(find_folder(list, n, "a/b/c")->attrs & STORE_LIST_HASNOCHILDREN);
    assert_int_equal(find_folder(list, n, "v1.2")->special, STORE_SPECIAL_ARCHIVE);
    assert_true(find_folder(list, n, "INBOX")->attrs & STORE_LIST_HASCHILDREN);
    store_list_free(list, n);

    /* DELETE with children: the name stays as \Noselect (RFC 3501) */
    append(a, "a", "Subject: in a\r\n\r\nx\r\n", 0);
    assert_int_equal(store_delete(a, "a"), STORE_OK);
    assert_false(exists(pathf("%s/.a", f->root)));
    assert_int_equal(store_list(a, &list, &n), STORE_OK);
    const struct store_folder *fa = find_folder(list, n, "a");
    assert_non_null(fa);
    assert_true(fa->attrs & STORE_LIST_NOSELECT);
    assert_true(fa->attrs & STORE_LIST_HASCHILDREN);
    store_list_free(list, n);
    struct store_mailbox *mb;
    assert_int_equal(store_open(a, "a", false, &mb), STORE_NOT_FOUND);
    assert_int_equal(store_delete(a, "a"), STORE_INVALID); /* \Noselect with inferiors */
    assert_int_equal(store_delete(a, "nothing"), STORE_NOT_FOUND);
    assert_int_equal(store_delete(a, "INBOX"), STORE_INVALID);
    /* CREATE of the \Noselect name makes it a mailbox again, with a new UIDVALIDITY */
    assert_int_equal(store_create(a, "a", STORE_SPECIAL_NONE), STORE_OK);

    /* RENAME moves the children along */
    append(a, "a/b/c", "Subject: deep\r\n\r\nx\r\n", 0);
    assert_int_equal(store_rename(a, "a/b", "x/y"), STORE_OK);
    assert_false(exists(pathf("%s/.a.b", f->root)));
    assert_false(exists(pathf("%s/.a.b.c", f->root)));
    assert_true(exists(pathf("%s/.x/cur", f->root))); /* superior created */
    assert_true(exists(pathf("%s/.x.y/cur", f->root)));
    assert_true(exists(pathf("%s/.x.y.c/cur", f->root)));
    struct store_mailbox_status status;
    assert_int_equal(store_status(a, "x/y/c", &status), STORE_OK);
    assert_int_equal(status.messages, 1);
    assert_int_equal(store_rename(a, "x/y", "Sent"), STORE_EXISTS);
    assert_int_equal(store_rename(a, "x", "x/z"), STORE_INVALID);
    assert_int_equal(store_rename(a, "nothing", "else"), STORE_NOT_FOUND);
    assert_int_equal(store_rename(a, "Sent", "INBOX"), STORE_EXISTS);
    /* the special use travels with the folder */
    assert_int_equal(store_rename(a, "Sent", "Sent Items"), STORE_OK);
    assert_int_equal(store_list(a, &list, &n), STORE_OK);
    assert_int_equal(find_folder(list, n, "Sent Items")->special, STORE_SPECIAL_SENT);
    assert_null(find_folder(list, n, "Sent"));
    store_list_free(list, n);

    /* RENAME INBOX moves its messages and leaves INBOX empty; its children stay */
    append(a, "INBOX", "Subject: one\r\n\r\n1\r\n", STORE_SEEN);
    append(a, "INBOX", "Subject: two\r\n\r\n2\r\n", 0);
    assert_int_equal(store_rename(a, "INBOX", "Old"), STORE_OK);
    assert_int_equal(store_status(a, "INBOX", &status), STORE_OK);
    assert_int_equal(status.messages, 0);
    assert_int_equal(store_status(a, "Old", &status), STORE_OK);
    assert_int_equal(status.messages, 2);
    assert_int_equal(status.unseen, 1);
    assert_true(exists(pathf("%s/.INBOX.Lists/cur", f->root)));
    /* nothing is left behind in the trash */
    assert_int_equal(count_files(pathf("%s/postern-trash", f->root)), 0);
}

static void test_subscriptions(void **state)
{
    struct fixture *f = *state;
    struct store_account *a = f->account;
    assert_int_equal(store_subscribe(a, "Lists/postern"), STORE_OK); /* need not exist */
    assert_int_equal(store_subscribe(a, "Lists/postern"), STORE_OK);
    assert_int_equal(store_unsubscribe(a, "Junk"), STORE_OK);
    assert_int_equal(store_unsubscribe(a, "Junk"), STORE_NOT_FOUND);
    assert_int_equal(store_subscribe(a, "bad//name"), STORE_INVALID_NAME);
    assert_int_equal(store_subscribe(a, "inbox"), STORE_OK);
    char **names;
    size_t n;
    assert_int_equal(store_subscriptions(a, &names, &n), STORE_OK);
    const char *want[] = {"Drafts", "INBOX", "Lists/postern", "Sent", "Trash"};
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(names[i], want[i]);
    store_strings_free(names, n);
    /* persisted at the root, as Maildir++ tools expect */
    assert_true(exists(pathf("%s/subscriptions", f->root)));
}

/* --- messages --- */

static void test_append_read_status(void **state)
{
    struct fixture *f = *state;
    struct store_account *a = f->account;
    const char *crlf = "Subject: crlf\r\n\r\nline\r\n";
    const char *lf = "Subject: lf\n\nline one\nline two\n";
    uint32_t u1 = append(a, "INBOX", crlf, 0);
    struct store_append *ap;
    assert_int_equal(store_append_begin(a, "INBOX", &ap), STORE_OK);
    /* in pieces, with a CR/LF pair split across two writes */
    assert_int_equal(store_append_write(ap, "Subject: split\r", 15), STORE_OK);
    assert_int_equal(store_append_write(ap, "\n\r\nbody\n", 8), STORE_OK);
    const char *kw[] = {"$Forwarded", "Work"};
    uint32_t u2, uidvalidity;
    enum store_status s =
        store_append_commit(ap, STORE_SEEN | STORE_FLAGGED, kw, 2, 1000000000, &uidvalidity, &u2);
    if (s != STORE_OK)
        fail_msg("append: %s", store_last_error());
    uint32_t u3 = append(a, "INBOX", lf, STORE_DRAFT);
    assert_true(u1 < u2 && u2 < u3);
    assert_int_equal(store_append_begin(a, "Nonexistent", &ap), STORE_NOT_FOUND);
    assert_int_equal(store_append_begin(a, "INBOX", &ap), STORE_OK);
    assert_int_equal(store_append_write(ap, "x", 1), STORE_OK);
    assert_int_equal(store_append_commit(ap, 0, (const char *[]){"bad word"}, 1, 0, NULL, NULL),
                     STORE_INVALID_NAME);
    assert_int_equal(count_files(pathf("%s/tmp", f->root)), 0);

    struct store_mailbox_status st;
    assert_int_equal(store_status(a, "INBOX", &st), STORE_OK);
    assert_int_equal(st.messages, 3);
    assert_int_equal(st.unseen, 2);
    assert_int_equal(st.recent, 3);
    assert_int_equal(st.uidnext, u3 + 1);
    assert_int_equal(st.uidvalidity, uidvalidity);
    assert_int_equal(store_status(a, "Nope", &st), STORE_NOT_FOUND);

    struct store_mailbox *mb;
    assert_int_equal(store_open(a, "INBOX", false, &mb), STORE_OK);
    assert_int_equal(store_count(mb), 3);
    assert_int_equal(store_recent(mb), 3);
    assert_int_equal(store_uidvalidity(mb), uidvalidity);
    assert_int_equal(store_uidnext(mb), u3 + 1);
    const struct store_message *m = store_message(mb, 1);
    assert_int_equal(m->uid, u1);
    assert_int_equal(m->size, strlen(crlf));
    assert_false(m->needs_crlf);
    assert_true(m->recent);
    m = store_message(mb, 2);
    assert_int_equal(m->flags, STORE_SEEN | STORE_FLAGGED);
    assert_string_equal(m->keywords, "$Forwarded Work");
    assert_int_equal(m->internaldate, 1000000000);
    assert_int_equal(m->file_size, 23);
    assert_int_equal(m->size, 24); /* the final bare LF counts as CRLF */
    assert_true(m->needs_crlf);
    m = store_message(mb, 3);
    assert_int_equal(m->file_size, strlen(lf));
    assert_int_equal(m->size, strlen(lf) + 4);
    assert_true(m->needs_crlf);
    assert_null(store_message(mb, 4));
    assert_null(store_message(mb, 0));
    assert_int_equal(store_seq(mb, u3), 3);
    assert_int_equal(store_seq(mb, 999), 0);

    struct store_message info;
    char *text = read_message(mb, u3, &info);
    assert_string_equal(text, lf);
    assert_int_equal(info.size, strlen(lf) + 4);
    assert_true(info.needs_crlf);
    free(text);
    int fd;
    assert_int_equal(store_open_message(mb, 999, &fd, NULL), STORE_NOT_FOUND);
    /* file names carry UID, sizes and flags; the mtime is the internal date */
    DIR *d = opendir(pathf("%s/cur", f->root));
    struct dirent *e;
    int seen = 0;
    while ((e = readdir(d)) != NULL) {
        char want[64];
        snprintf(want, sizeof want, ",S=23,W=24,U=%u:2,FS", u2);
        if (strstr(e->d_name, want) != NULL) {
            struct stat sst;
            assert_int_equal(stat(pathf("%s/cur/%s", f->root, e->d_name), &sst), 0);
            assert_int_equal(sst.st_mtime, 1000000000);
            seen++;
        }
    }
    closedir(d);
    assert_int_equal(seen, 1);
    store_close(mb);

    /* \Recent went to that session; the next one sees none */
    assert_int_equal(store_open(a, "INBOX", false, &mb), STORE_OK);
    assert_int_equal(store_recent(mb), 0);
    store_close(mb);
}

static void test_delivery_pickup(void **state)
{
    struct fixture *f = *state;
    struct store_account *a = f->account;
    /* names in reverse order of delivery time: mtime decides */
    time_t t = time(NULL) - 100;
    deliver(f->root, "c-first", "Subject: 1\n\none\n", t);
    deliver(f->root, "b-second", "Subject: 2\n\ntwo\n", t + 10);
    deliver(f->root, "a-third", "Subject: 3\n\nthree\n", t + 20);
    struct store_mailbox *mb, *ro;
    assert_int_equal(store_open(a, "INBOX", true, &ro), STORE_OK); /* EXAMINE: no claim */
    assert_int_equal(store_recent(ro), 3);
    assert_int_equal(store_open(a, "INBOX", false, &mb), STORE_OK);
    assert_int_equal(store_count(mb), 3);
    assert_int_equal(store_recent(mb), 3);
    assert_int_equal(count_files(pathf("%s/new", f->root)), 0);
    assert_int_equal(count_files(pathf("%s/cur", f->root)), 3);
    const char *order[] = {"one\n", "two\n", "three\n"};
    for (uint32_t seq = 1; seq <= 3; seq++) {
        const struct store_message *m = store_message(mb, seq);
        assert_int_equal(m->uid, seq);
        assert_int_equal(m->internaldate, t + 10 * (time_t)(seq - 1));
        char *text = read_message(mb, m->uid, NULL);
        assert_non_null(strstr(text, order[seq - 1]));
        free(text);
    }
    /* a delivery while the mailbox is open: the next sync has it */
    deliver(f->root, "later", "Subject: 4\n\nfour\n", 0);
    struct store_changes ch;
    assert_int_equal(store_sync(mb, true, &ch), STORE_OK);
    assert_true(ch.exists_changed);
    assert_int_equal(ch.exists, 4);
    assert_int_equal(ch.recent, 4);
    assert_int_equal(ch.uidnext, 5);
    store_changes_free(&ch);
    assert_int_equal(store_message(mb, 4)->uid, 4);
    /* the read-only handle sees it, still \Recent: the writable one claimed it afterwards */
    assert_int_equal(store_sync(ro, true, &ch), STORE_OK);
    assert_int_equal(ch.exists, 4);
    store_changes_free(&ch);
    struct store_mailbox *third;
    assert_int_equal(store_open(a, "INBOX", false, &third), STORE_OK);
    assert_int_equal(store_recent(third), 0);
    store_close(third);
    assert_int_equal(
        store_set_flags(ro, (uint32_t[]){1}, 1, STORE_FLAGS_ADD, STORE_SEEN, NULL, 0, NULL),
        STORE_READONLY);
    assert_int_equal(store_expunge(ro, NULL, 0, NULL), STORE_READONLY);
    store_close(ro);
    store_close(mb);
}

static char *cur_name_of(const char *root, uint32_t uid)
{
    static char name[512];
    char want[32];
    snprintf(want, sizeof want, ",U=%u:", uid);
    DIR *d = opendir(pathf("%s/cur", root));
    struct dirent *e;
    name[0] = '\0';
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, want) != NULL)
            snprintf(name, sizeof name, "%s", e->d_name);
    closedir(d);
    return name;
}

static void test_flags_in_file_names(void **state)
{
    struct fixture *f = *state;
    struct store_account *a = f->account;
    uint32_t uid = append(a, "INBOX", "Subject: f\r\n\r\nx\r\n", 0);
    struct store_mailbox *mb;
    assert_int_equal(store_open(a, "INBOX", false, &mb), STORE_OK);
    uint64_t m1, m2, m3;
    assert_int_equal(store_set_flags(mb, &uid, 1, STORE_FLAGS_ADD,
                                     STORE_SEEN | STORE_FLAGGED | STORE_ANSWERED, NULL, 0, &m1),
                     STORE_OK);
    assert_non_null(strstr(cur_name_of(f->root, uid), ":2,FRS"));
    assert_int_equal(store_message(mb, 1)->flags, STORE_SEEN | STORE_FLAGGED | STORE_ANSWERED);
    assert_int_equal(store_message(mb, 1)->modseq, m1);
    const char *kw[] = {"Important"};
    assert_int_equal(store_set_flags(mb, &uid, 1, STORE_FLAGS_REMOVE, STORE_FLAGGED, kw, 0, &m2),
                     STORE_OK);
    assert_true(m2 > m1);
    assert_non_null(strstr(cur_name_of(f->root, uid), ":2,RS"));
    /* keywords live in the index only; the name does not change */
    assert_int_equal(store_set_flags(mb, &uid, 1, STORE_FLAGS_ADD, 0, kw, 1, &m3), STORE_OK);
    assert_true(m3 > m2);
    assert_string_equal(store_message(mb, 1)->keywords, "Important");
    assert_non_null(strstr(cur_name_of(f->root, uid), ":2,RS"));
    assert_int_equal(store_set_flags(mb, &uid, 1, STORE_FLAGS_REPLACE, STORE_DELETED | STORE_DRAFT,
                                     NULL, 0, &m3),
                     STORE_OK);
    assert_non_null(strstr(cur_name_of(f->root, uid), ":2,DT"));
    assert_string_equal(store_message(mb, 1)->keywords, "");
    /* a no-op change keeps the modseq */
    uint64_t m4;
    assert_int_equal(store_set_flags(mb, &uid, 1, STORE_FLAGS_ADD, STORE_DRAFT, NULL, 0, &m4),
                     STORE_OK);
    assert_int_equal(m4, m3);
    assert_int_equal(store_set_flags(mb, &uid, 1, STORE_FLAGS_ADD, 1u << 7, NULL, 0, NULL),
                     STORE_INVALID_NAME);
    store_close(mb);
}

static void test_other_tools(void **state)
{
    struct fixture *f = *state;
    struct store_account *a = f->account;
    uint32_t u1 = append(a, "INBOX", "Subject: 1\r\n\r\n1\r\n", 0);
    uint32_t u2 = append(a, "INBOX", "Subject: 2\r\n\r\n2\r\n", 0);
    struct store_mailbox *mb;
    assert_int_equal(store_open(a, "INBOX", false, &mb), STORE_OK);
    /* a mail reader renames a file to set \Seen, as mutt does */
    char old[512], renamed[600];
    snprintf(old, sizeof old, "%s", cur_name_of(f->root, u1));
    snprintf(renamed, sizeof renamed, "%.*s:2,S", (int)(strchr(old, ':') - old), old);
    assert_int_equal(rename(pathf("%s/cur/%s", f->root, old), pathf("%s/cur/%s", f->root, renamed)),
                     0);
    /* another removes a file, and a third drops one into cur/ without a UID */
    assert_int_equal(unlink(pathf("%s/cur/%s", f->root, cur_name_of(f->root, u2))), 0);
    FILE *fp = fopen(pathf("%s/cur/foreign.1:2,F", f->root), "w");
    fputs("Subject: foreign\n\nf\n", fp);
    fclose(fp);
    struct store_changes ch;
    assert_int_equal(store_sync(mb, false, &ch), STORE_OK);
    /* expunges held back: the message stays, marked */
    assert_int_equal(ch.expunged_count, 0);
    assert_true(store_message(mb, 2)->expunged);
    assert_int_equal(ch.flag_count, 1);
    assert_int_equal(ch.flag_seqs[0], 1);
    assert_int_equal(store_message(mb, 1)->flags, STORE_SEEN);
    assert_true(ch.exists_changed);
    assert_int_equal(ch.exists, 3);
    store_changes_free(&ch);
    assert_int_equal(store_sync(mb, true, &ch), STORE_OK);
    assert_int_equal(ch.expunged_count, 1);
    assert_int_equal(ch.expunged_seqs[0], 2);
    assert_int_equal(ch.exists, 2);
    store_changes_free(&ch);
    const struct store_message *m = store_message(mb, 2);
    assert_int_equal(m->uid, u2 + 1);
    assert_int_equal(m->flags, STORE_FLAGGED);
    assert_false(exists(pathf("%s/cur/foreign.1:2,F", f->root)));
    assert_non_null(strstr(cur_name_of(f->root, m->uid), "foreign.1,S="));
    store_close(mb);
}

static void snapshot(struct store_account *a, const char *name, uint32_t *uids, unsigned *flags,
                     size_t *n, uint32_t *uidvalidity, uint32_t *uidnext)
{
    struct store_mailbox *mb;
    assert_int_equal(store_open(a, name, false, &mb), STORE_OK);
    *n = store_count(mb);
    for (uint32_t i = 0; i < *n; i++) {
        uids[i] = store_message(mb, i + 1)->uid;
        flags[i] = store_message(mb, i + 1)->flags;
    }
    *uidvalidity = store_uidvalidity(mb);
    *uidnext = store_uidnext(mb);
    store_close(mb);
}

static void rebuild_case(struct fixture *f, bool garbage)
{
    struct store_account *a = f->account;
    uint32_t uids[16];
    for (int i = 0; i < 8; i++)
        uids[i] = append(a, "Drafts", "Subject: r\r\n\r\nr\r\n", i % 2 ? STORE_SEEN : 0);
    struct store_mailbox *mb;
    assert_int_equal(store_open(a, "Drafts", false, &mb), STORE_OK);
    assert_int_equal(
        store_set_flags(mb, &uids[2], 1, STORE_FLAGS_ADD, STORE_FLAGGED, NULL, 0, NULL), STORE_OK);
    /* the two highest UIDs go: a rebuild must still not hand them out again */
    assert_int_equal(
        store_set_flags(mb, &uids[6], 2, STORE_FLAGS_ADD, STORE_DELETED, NULL, 0, NULL), STORE_OK);
    assert_int_equal(store_expunge(mb, NULL, 0, NULL), STORE_OK);
    store_close(mb);
    uint32_t before[16], after[16], v1, v2, next1, next2;
    unsigned fl1[16], fl2[16];
    size_t n1, n2;
    snapshot(a, "Drafts", before, fl1, &n1, &v1, &next1);
    assert_int_equal(n1, 6);
    /* a session stays open across the rebuild */
    struct store_mailbox *keep;
    assert_int_equal(store_open(a, "Drafts", false, &keep), STORE_OK);
    uint64_t old_modseq = store_highest_modseq(keep);
    const char *db = pathf("%s/.Drafts/postern.db", f->root);
    if (garbage) {
        FILE *fp = fopen(db, "r+");
        for (int i = 0; i < 4096; i++)
            fputc(i * 7 % 251, fp);
        fclose(fp);
        unlink(pathf("%s-wal", db));
        unlink(pathf("%s-shm", db));
    } else {
        unlink(db);
        unlink(pathf("%s-wal", db));
        unlink(pathf("%s-shm", db));
    }
    struct store_io_counters c0, c1;
    store_io_counters(&c0);
    snapshot(a, "Drafts", after, fl2, &n2, &v2, &next2);
    store_io_counters(&c1);
    assert_true(c1.rebuilds > c0.rebuilds);
    assert_int_equal(n2, n1);
    assert_int_equal(v2, v1);
    assert_true(next2 >= next1);
    for (size_t i = 0; i < n1; i++) {
        assert_int_equal(after[i], before[i]);
        assert_int_equal(fl2[i], fl1[i]);
    }
    /* the open session notices the new index, and nothing changed for it */
    struct store_changes ch;
    assert_int_equal(store_sync(keep, true, &ch), STORE_OK);
    assert_int_equal(ch.expunged_count + ch.flag_count, 0);
    assert_false(ch.exists_changed);
    assert_true(ch.highest_modseq > old_modseq); /* modseqs never go back */
    store_changes_free(&ch);
    struct store_delta d;
    assert_int_equal(store_changes_since(keep, old_modseq, &d), STORE_TOO_OLD);
    assert_int_equal(store_count(keep), n1);
    char *text = read_message(keep, before[0], NULL);
    assert_string_equal(text, "Subject: r\r\n\r\nr\r\n");
    free(text);
    store_close(keep);
    /* above the expunged UIDs; the uidvalidity file keeps some to spare (UID_HINT_SPARE 64 in
     * src/store/index.c), so a rebuilt index may start a little higher */
    uint32_t fresh = append(a, "Drafts", "Subject: new\r\n\r\n", 0);
    assert_true(fresh >= next1 && fresh <= next1 + 64);
}

static void test_rebuild_lost_index(void **state)
{
    rebuild_case(*state, false);
}

static void test_rebuild_corrupt_index(void **state)
{
    rebuild_case(*state, true);
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "r"), *out = fopen(to, "w");
    assert_non_null(in);
    assert_non_null(out);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

/* A power loss can lose the index's last commits (synchronous=NORMAL) while the Maildir,
 * fsynced before each commit, keeps its state: put back an older index, as if the machine
 * had rebooted, and the first writer must rebuild the lost part from the file names. */
static void test_power_loss(void **state)
{
    struct fixture *f = *state;
    struct store_account *a = f->account;
    uint32_t u[6];
    for (int i = 1; i <= 3; i++)
        u[i] = append(a, "INBOX", "Subject: kept\r\n\r\n", 0);
    const char *db = pathf("%s/postern.db", f->root);
    char saved_db[600], saved_wal[600];
    snprintf(saved_db, sizeof saved_db, "%s/saved.db", f->dir);
    snprintf(saved_wal, sizeof saved_wal, "%s/saved.db-wal", f->dir);
    copy_file(db, saved_db);
    copy_file(pathf("%s-wal", db), saved_wal);
    /* what the power loss will take from the index */
    u[4] = append(a, "INBOX", "Subject: lost commit\r\n\r\n", 0);
    u[5] = append(a, "INBOX", "Subject: lost commit\r\n\r\n", 0);
    struct store_mailbox *mb;
    assert_int_equal(store_open(a, "INBOX", false, &mb), STORE_OK);
    assert_int_equal(store_set_flags(mb, &u[1], 1, STORE_FLAGS_ADD, STORE_FLAGGED, NULL, 0, NULL),
                     STORE_OK);
    assert_int_equal(store_set_flags(mb, (uint32_t[]){u[2], u[5]}, 2, STORE_FLAGS_ADD,
                                     STORE_DELETED, NULL, 0, NULL),
                     STORE_OK);
    assert_int_equal(store_expunge(mb, NULL, 0, NULL), STORE_OK);
    store_close(mb);
    /* the reboot: the old index is back, the lock file names another boot */
    copy_file(saved_db, db);
    copy_file(saved_wal, pathf("%s-wal", db));
    unlink(pathf("%s-shm", db));
    FILE *lock = fopen(pathf("%s/postern.lock", f->root), "w");
    fputs("00000000-0000-0000-0000-000000000000 0\n", lock);
    fclose(lock);
    assert_int_equal(store_open(a, "INBOX", false, &mb), STORE_OK);
    assert_int_equal(store_count(mb), 3);
    assert_int_equal(store_message(mb, 1)->uid, u[1]);
    assert_int_equal(store_message(mb, 1)->flags, STORE_FLAGGED); /* the file name's */
    assert_int_equal(store_message(mb, 2)->uid, u[3]);
    assert_int_equal(store_message(mb, 3)->uid, u[4]); /* kept its UID */
    /* u[5] is never handed out again (the uidvalidity file keeps up to 64 UIDs to spare) */
    uint32_t next = store_uidnext(mb);
    assert_true(next >= u[5] + 1 && next <= u[5] + 1 + 64);
    store_close(mb);
    assert_int_equal(append(a, "INBOX", "Subject: after\r\n\r\n", 0), next);
}

static void test_two_handles(void **state)
{
    struct fixture *f = *state;
    struct store_account *a = f->account;
    uint32_t uids[5];
    for (int i = 0; i < 5; i++)
        uids[i] = append(a, "INBOX", "Subject: h\r\n\r\nh\r\n", 0);
    struct store_mailbox *h1, *h2;
    assert_int_equal(store_open(a, "INBOX", false, &h1), STORE_OK);
    assert_int_equal(store_open(a, "INBOX", false, &h2), STORE_OK);
    uint64_t base = store_highest_modseq(h2);
    uint64_t m;
    assert_int_equal(store_set_flags(h1, &uids[1], 1, STORE_FLAGS_ADD, STORE_SEEN, NULL, 0, &m),
                     STORE_OK);
    assert_true(m > base);
    struct store_changes ch;
    assert_int_equal(store_sync(h2, true, &ch), STORE_OK);
    assert_int_equal(ch.flag_count, 1);
    assert_int_equal(ch.flag_seqs[0], 2);
    assert_false(ch.exists_changed);
    assert_int_equal(ch.highest_modseq, m);
    store_changes_free(&ch);
    assert_int_equal(store_message(h2, 2)->flags, STORE_SEEN);
    /* nothing new: nothing reported */
    assert_int_equal(store_sync(h2, true, &ch), STORE_OK);
    assert_int_equal(ch.flag_count + ch.expunged_count, 0);
    store_changes_free(&ch);

    /* h1 expunges 2 and 4, h2 is told in descending order */
    assert_int_equal(store_set_flags(h1, (uint32_t[]){uids[1], uids[3]}, 2, STORE_FLAGS_ADD,
                                     STORE_DELETED, NULL, 0, NULL),
                     STORE_OK);
    struct store_expunged ex;
    assert_int_equal(store_expunge(h1, NULL, 0, &ex), STORE_OK);
    assert_int_equal(ex.count, 2);
    assert_int_equal(ex.seqs[0], 4);
    assert_int_equal(ex.seqs[1], 2);
    assert_int_equal(store_count(h1), 3);
    store_expunged_free(&ex);
    uint32_t added = append(a, "INBOX", "Subject: new\r\n\r\n", 0);
    assert_int_equal(store_sync(h2, true, &ch), STORE_OK);
    assert_int_equal(ch.expunged_count, 2);
    assert_int_equal(ch.expunged_seqs[0], 4);
    assert_int_equal(ch.expunged_seqs[1], 2);
    assert_true(ch.exists_changed);
    assert_int_equal(ch.exists, 4);
    assert_int_equal(ch.recent, 1); /* h2 synced first: the new message is its \Recent */
    store_changes_free(&ch);
    assert_int_equal(store_sync(h1, true, &ch), STORE_OK);
    assert_int_equal(ch.recent, 3); /* its own, from the open; not the new one */
    assert_int_equal(ch.exists, 4);
    store_changes_free(&ch);

    /* the modseq query */
    struct store_delta d;
    assert_int_equal(store_changes_since(h2, base, &d), STORE_OK);
    assert_int_equal(d.new_count, 1);
    assert_int_equal(d.new_uids[0], added);
    assert_int_equal(d.expunged_count, 2);
    assert_int_equal(d.expunged_uids[0], uids[1]);
    assert_int_equal(d.expunged_uids[1], uids[3]);
    assert_int_equal(d.changed_count, 0); /* uids[1] changed, but it is gone */
    assert_int_equal(d.highest_modseq, store_highest_modseq(h2));
    store_delta_free(&d);
    assert_int_equal(store_changes_since(h2, 0, &d), STORE_TOO_OLD);
    assert_int_equal(store_changes_since(h2, store_highest_modseq(h2) + 100, &d), STORE_OK);
    assert_int_equal(d.new_count + d.changed_count + d.expunged_count, 0);
    store_delta_free(&d);

    /* UID EXPUNGE only touches the given \Deleted messages */
    assert_int_equal(store_set_flags(h1, (uint32_t[]){uids[0], uids[2]}, 2, STORE_FLAGS_ADD,
                                     STORE_DELETED, NULL, 0, NULL),
                     STORE_OK);
    assert_int_equal(store_expunge(h1, (uint32_t[]){uids[2], uids[4]}, 2, &ex), STORE_OK);
    assert_int_equal(ex.count, 1);
    assert_int_equal(ex.uids[0], uids[2]);
    store_expunged_free(&ex);
    assert_int_equal(store_seq(h1, uids[0]), 1);
    store_close(h1);
    store_close(h2);
}

static void test_stale_handles(void **state)
{
    struct fixture *f = *state;
    struct store_account *a = f->account;
    append(a, "Trash", "Subject: t\r\n\r\n", 0);
    struct store_mailbox *trash, *drafts;
    assert_int_equal(store_open(a, "Trash", false, &trash), STORE_OK);
    assert_int_equal(store_open(a, "Drafts", false, &drafts), STORE_OK);
    uint32_t old_validity = store_uidvalidity(trash);
    assert_int_equal(store_delete(a, "Trash"), STORE_OK);
    assert_int_equal(store_create(a, "Trash", STORE_SPECIAL_TRASH), STORE_OK);
    struct store_changes ch;
    assert_int_equal(store_sync(trash, true, &ch), STORE_STALE);
    uint32_t dest;
    assert_int_equal(store_rename(a, "Drafts", "Entw&APw-rfe"), STORE_OK);
    assert_int_equal(store_sync(drafts, true, &ch), STORE_STALE);
    assert_int_equal(store_set_flags(drafts, &dest, 0, STORE_FLAGS_ADD, 0, NULL, 0, NULL),
                     STORE_STALE);
    store_close(drafts);
    store_close(trash);
    /* the new Trash is another mailbox: another UIDVALIDITY (RFC 3501 §2.3.1.1) */
    assert_int_equal(store_open(a, "Trash", false, &trash), STORE_OK);
    assert_true(store_uidvalidity(trash) != old_validity);
    assert_int_equal(store_count(trash), 0);
    store_close(trash);
    assert_int_equal(store_open(a, "Entw&APw-rfe", false, &drafts), STORE_OK);
    store_close(drafts);
}

static void test_copy_move(void **state)
{
    struct fixture *f = *state;
    struct store_account *a = f->account;
    uint32_t u1 = append(a, "INBOX", "Subject: c1\r\n\r\n1\r\n", STORE_SEEN);
    uint32_t u2 = append(a, "INBOX", "Subject: c2\r\n\r\n2\r\n", 0);
    uint32_t u3 = append(a, "INBOX", "Subject: c3\r\n\r\n3\r\n", 0);
    struct store_mailbox *mb;
    assert_int_equal(store_open(a, "INBOX", false, &mb), STORE_OK);
    const char *kw[] = {"Tag"};
    assert_int_equal(store_set_flags(mb, &u1, 1, STORE_FLAGS_ADD, 0, kw, 1, NULL), STORE_OK);
    assert_int_equal(store_cache_set(mb, u1, STORE_CACHE_ENVELOPE, "(env)"), STORE_OK);
    uint32_t dest[3], dv;
    assert_int_equal(store_copy(mb, (uint32_t[]){u1, 999, u2}, 3, "Trash", &dv, dest), STORE_OK);
    assert_true(dest[0] > 0);
    assert_int_equal(dest[1], 0);
    assert_int_equal(dest[2], dest[0] + 1);
    assert_int_equal(store_copy(mb, &u1, 1, "Nope", &dv, dest), STORE_NOT_FOUND);
    /* a hard link: both names, one inode */
    struct stat st;
    assert_int_equal(stat(pathf("%s/cur/%s", f->root, cur_name_of(f->root, u1)), &st), 0);
    assert_int_equal(st.st_nlink, 2);
    struct store_mailbox *trash;
    assert_int_equal(store_open(a, "Trash", false, &trash), STORE_OK);
    assert_int_equal(store_uidvalidity(trash), dv);
    assert_int_equal(store_count(trash), 2);
    assert_int_equal(store_message(trash, 1)->flags, STORE_SEEN);
    assert_string_equal(store_message(trash, 1)->keywords, "Tag");
    assert_true(store_message(trash, 1)->recent);
    char *env;
    assert_int_equal(store_cache_get(trash, dest[0], STORE_CACHE_ENVELOPE, &env), STORE_OK);
    assert_string_equal(env, "(env)");
    free(env);
    assert_int_equal(store_cache_get(trash, dest[0], STORE_CACHE_BODYSTRUCTURE, &env),
                     STORE_NOT_FOUND);
    char *text = read_message(trash, dest[2], NULL);
    assert_string_equal(text, "Subject: c2\r\n\r\n2\r\n");
    free(text);

    /* MOVE: gone from the source view, in the destination under new UIDs */
    struct store_expunged ex;
    assert_int_equal(store_move(mb, (uint32_t[]){u3, u1}, 2, "Junk", &dv, dest, &ex), STORE_OK);
    assert_int_equal(ex.count, 2);
    assert_int_equal(ex.seqs[0], 3);
    assert_int_equal(ex.seqs[1], 1);
    store_expunged_free(&ex);
    assert_int_equal(store_count(mb), 1);
    assert_int_equal(store_message(mb, 1)->uid, u2);
    assert_true(dest[0] > 0 && dest[1] > 0 && dest[0] != dest[1]);
    struct store_mailbox *junk;
    assert_int_equal(store_open(a, "Junk", false, &junk), STORE_OK);
    assert_int_equal(store_count(junk), 2);
    text = read_message(junk, dest[0], NULL);
    assert_string_equal(text, "Subject: c3\r\n\r\n3\r\n");
    free(text);
    assert_string_equal(store_message(junk, store_seq(junk, dest[1]))->keywords, "Tag");
    /* another session on the source learns of the move as an expunge */
    struct store_changes ch;
    assert_int_equal(store_sync(trash, true, &ch), STORE_OK);
    store_changes_free(&ch);
    /* MOVE within a mailbox: a new UID */
    uint32_t nd;
    assert_int_equal(store_move(junk, &dest[0], 1, "Junk", &dv, &nd, &ex), STORE_OK);
    assert_int_equal(ex.count, 1);
    store_expunged_free(&ex);
    assert_true(nd > dest[1]);
    assert_int_equal(store_sync(junk, true, &ch), STORE_OK);
    assert_int_equal(ch.exists, 2);
    store_changes_free(&ch);
    assert_int_equal(store_message(junk, 2)->uid, nd);
    assert_int_equal(count_files(pathf("%s/.Junk/cur", f->root)), 2);
    store_close(junk);
    store_close(trash);
    store_close(mb);
}

static void count_fire(void *arg)
{
    (*(int *)arg)++;
}

/* What has come by now: events are read and watches fired. */
static void settle(struct store_notifier *n)
{
    struct pollfd p = {.fd = store_notifier_fd(n), .events = POLLIN};
    while (poll(&p, 1, 200) == 1)
        store_notifier_dispatch(n);
}

static void test_cache_and_watch(void **state)
{
    struct fixture *f = *state;
    struct store_account *a = f->account;
    uint32_t uid = append(a, "INBOX", "Subject: w\r\n\r\n", 0);
    struct store_mailbox *mb, *other;
    assert_int_equal(store_open(a, "INBOX", false, &mb), STORE_OK);
    assert_int_equal(store_open(a, "INBOX", false, &other), STORE_OK);
    char *v;
    assert_int_equal(store_cache_get(mb, uid, STORE_CACHE_BODYSTRUCTURE, &v), STORE_NOT_FOUND);
    assert_int_equal(store_cache_set(mb, uid, STORE_CACHE_BODYSTRUCTURE, "(\"text\")"), STORE_OK);
    assert_int_equal(store_cache_get(other, uid, STORE_CACHE_BODYSTRUCTURE, &v), STORE_OK);
    assert_string_equal(v, "(\"text\")");
    free(v);
    assert_int_equal(store_cache_set(mb, 999, STORE_CACHE_ENVELOPE, "x"), STORE_NOT_FOUND);

    struct store_notifier *n = store_notifier_new();
    assert_non_null(n);
    int fired = 0;
    struct store_watch *w = store_watch_add(n, mb, count_fire, &fired);
    assert_non_null(w);
    assert_false(store_watch_arm(w));
    /* a second session on the same mailbox shares the kernel's watches */
    int fired2 = 0;
    struct store_watch *w2 = store_watch_add(n, other, count_fire, &fired2);
    assert_non_null(w2);
    assert_false(store_watch_arm(w2));
    struct pollfd p = {.fd = store_notifier_fd(n), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0);
    /* an MTA delivers: both fire, once */
    deliver(f->root, "watched", "Subject: d\n\n", 0);
    assert_int_equal(poll(&p, 1, 2000), 1);
    settle(n);
    assert_int_equal(fired, 1);
    assert_int_equal(fired2, 1);
    struct store_changes ch;
    assert_int_equal(store_sync(mb, true, &ch), STORE_OK);
    store_changes_free(&ch);
    store_park(mb);
    settle(n); /* our own pickup: remembered, the watch was not armed */
    assert_int_equal(fired, 1);
    assert_true(store_watch_arm(w));
    assert_false(store_watch_arm(w));
    assert_true(store_watch_arm(w2));
    assert_false(store_watch_arm(w2));
    /* another session changes a keyword (index only) */
    assert_int_equal(
        store_set_flags(other, &uid, 1, STORE_FLAGS_ADD, 0, (const char *[]){"Later"}, 1, NULL),
        STORE_OK);
    settle(n);
    assert_int_equal(fired, 2);
    assert_int_equal(fired2, 2);
    assert_false(store_watch_arm(w));
    assert_false(store_watch_arm(w2));
    /* a session that only syncs (nothing new) wakes nobody, nor does parking */
    assert_int_equal(store_sync(other, true, &ch), STORE_OK);
    store_changes_free(&ch);
    store_park(other);
    settle(n);
    assert_int_equal(fired, 2);
    assert_int_equal(fired2, 2);
    /* the last watch of a mailbox removes the kernel's */
    store_watch_remove(w2);
    store_close(other);
    deliver(f->root, "watched2", "Subject: d\n\n", 0);
    settle(n);
    assert_int_equal(fired, 3);
    store_watch_remove(w);
    store_notifier_release(n);
    store_close(mb);
}

static int count_fds(void)
{
    return count_files("/proc/self/fd") - 1; /* opendir's own */
}

/* A handle parked (IDLE) holds no descriptor; the next operation opens them again and sees
 * what others did meanwhile, a rebuilt index included. */
static void test_park(void **state)
{
    struct fixture *f = *state;
    struct store_account *a = f->account;
    uint32_t uids[4];
    for (int i = 0; i < 4; i++)
        uids[i] = append(a, "INBOX", "Subject: p\r\n\r\nbody\r\n", 0);
    int fds0 = count_fds();
    struct store_mailbox *mb, *other;
    assert_int_equal(store_open(a, "INBOX", false, &mb), STORE_OK);
    int fds1 = count_fds();
    assert_true(fds1 >= fds0 + 7); /* db, WAL, shm, lock, cur, new, tmp */
    store_park(mb);
    store_park(mb); /* twice is once */
    /* its connection is kept as the mailbox's spare, once (not per handle) */
    assert_int_equal(count_fds(), fds1);
    store_spares_flush();
    assert_int_equal(count_fds(), fds0);

    /* changes while parked */
    assert_int_equal(store_open(a, "INBOX", false, &other), STORE_OK);
    assert_int_equal(
        store_set_flags(other, &uids[0], 1, STORE_FLAGS_ADD, STORE_FLAGGED, NULL, 0, NULL),
        STORE_OK);
    assert_int_equal(
        store_set_flags(other, &uids[1], 1, STORE_FLAGS_ADD, STORE_DELETED, NULL, 0, NULL),
        STORE_OK);
    assert_int_equal(store_expunge(other, &uids[1], 1, NULL), STORE_OK);
    struct store_changes ch;
    assert_int_equal(store_sync(mb, true, &ch), STORE_OK);
    assert_int_equal(ch.expunged_count, 1);
    assert_int_equal(ch.expunged_seqs[0], 2);
    assert_int_equal(ch.flag_count, 1);
    assert_int_equal(store_message(mb, ch.flag_seqs[0])->flags, STORE_FLAGGED);
    store_changes_free(&ch);
    store_park(other);
    store_park(mb); /* the spare is other's; mb's connection is closed */
    /* (SQLite defers the close of a database descriptor while another connection of the
     * process holds locks on the file, and reuses it at the next open: one more) */
    assert_in_range(count_fds(), fds1, fds1 + 1);
    assert_int_equal(store_sync(mb, true, &ch), STORE_OK); /* takes it */
    store_changes_free(&ch);
    assert_int_equal(store_sync(other, true, &ch), STORE_OK); /* opens its own */
    store_changes_free(&ch);
    assert_in_range(count_fds(), fds1 + 6, fds1 + 8);

    /* a read outside the lock after parking */
    store_spares_flush();
    store_park(mb);
    char *text = read_message(mb, uids[2], NULL);
    assert_string_equal(text, "Subject: p\r\n\r\nbody\r\n");
    free(text);
    assert_int_equal(store_set_flags(mb, &uids[2], 1, STORE_FLAGS_ADD, STORE_SEEN, NULL, 0, NULL),
                     STORE_OK);

    /* the index is lost while parked and a message file goes with it: the rebuilt index has no
     * tombstone for it, and the parked handle must still see it expunged */
    store_park(mb);
    store_close(other);
    store_spares_flush();
    const char *db = pathf("%s/postern.db", f->root);
    unlink(db);
    unlink(pathf("%s-wal", db));
    unlink(pathf("%s-shm", db));
    DIR *d = opendir(pathf("%s/cur", f->root));
    struct dirent *e;
    char victim[256] = "";
    char want[32];
    snprintf(want, sizeof want, ",U=%u:", uids[3]);
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, want) != NULL)
            snprintf(victim, sizeof victim, "%s", e->d_name);
    closedir(d);
    assert_true(victim[0] != '\0');
    assert_int_equal(unlink(pathf("%s/cur/%s", f->root, victim)), 0);
    assert_int_equal(store_open(a, "INBOX", false, &other), STORE_OK); /* rebuilds */
    store_close(other);
    assert_int_equal(store_sync(mb, true, &ch), STORE_OK);
    assert_int_equal(ch.expunged_count, 1);
    assert_int_equal(store_count(mb), 2);
    store_changes_free(&ch);

    /* renamed away while parked: the handle is stale, whatever is at its name now */
    assert_int_equal(store_create(a, "Box", STORE_SPECIAL_NONE), STORE_OK);
    struct store_mailbox *box;
    assert_int_equal(store_open(a, "Box", false, &box), STORE_OK);
    store_park(box);
    assert_int_equal(store_rename(a, "Box", "Box2"), STORE_OK);
    assert_int_equal(store_sync(box, true, &ch), STORE_STALE);
    store_close(box);
    assert_int_equal(store_open(a, "Box2", false, &box), STORE_OK);
    store_park(box);
    assert_int_equal(store_delete(a, "Box2"), STORE_OK);
    assert_int_equal(store_create(a, "Box2", STORE_SPECIAL_NONE), STORE_OK);
    assert_int_equal(store_sync(box, true, &ch), STORE_STALE);
    store_close(box);
    store_close(mb);
    store_spares_flush();
    assert_int_equal(count_fds(), fds0);
}

static void test_pop3_lock(void **state)
{
    struct fixture *f = *state;
    struct store_pop3_lock *lock;
    assert_int_equal(store_pop3_lock(f->account, &lock), STORE_OK);
    int to_parent[2], to_child[2];
    assert_int_equal(pipe(to_parent), 0);
    assert_int_equal(pipe(to_child), 0);
    pid_t pid = fork();
    if (pid == 0) {
        /* another process: a second POP3 session for the same mailbox */
        struct store_account *acc;
        struct store_pop3_lock *l2 = NULL;
        int rc = 0;
        if (store_account_open(f->root, &acc) != STORE_OK)
            _exit(10);
        if (store_pop3_lock(acc, &l2) != STORE_BUSY)
            rc = 11;
        char c;
        if (write(to_parent[1], "x", 1) != 1 || read(to_child[0], &c, 1) != 1)
            rc = 12;
        /* released by the parent: now ours */
        if (rc == 0 && store_pop3_lock(acc, &l2) != STORE_OK)
            rc = 13;
        store_pop3_unlock(l2);
        _exit(rc);
    }
    char c;
    assert_int_equal(read(to_parent[0], &c, 1), 1);
    /* a thread of this process is refused too (each lock is its own open file) */
    struct store_pop3_lock *again;
    assert_int_equal(store_pop3_lock(f->account, &again), STORE_BUSY);
    store_pop3_unlock(lock);
    assert_int_equal(write(to_child[1], "y", 1), 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(to_parent[0]);
    close(to_parent[1]);
    close(to_child[0]);
    close(to_child[1]);
}

/* --- scale --- */

static long maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void test_large_append_streams(void **state)
{
    struct fixture *f = *state;
    pid_t pid = fork();
    if (pid == 0) {
        /* in a child, so its peak RSS is this test's alone */
        struct store_account *acc;
        if (store_account_open(f->root, &acc) != STORE_OK)
            _exit(10);
        long before = maxrss_kb();
        char chunk[65536];
        for (size_t i = 0; i < sizeof chunk; i++)
            chunk[i] = i % 64 == 63 ? '\n' : 'a' + (char)(i % 26);
        struct store_append *ap;
        if (store_append_begin(acc, "INBOX", &ap) != STORE_OK)
            _exit(11);
        for (int i = 0; i < 800; i++) /* 52 428 800 octets */
            if (store_append_write(ap, chunk, sizeof chunk) != STORE_OK)
                _exit(12);
        uint32_t uid;
        if (store_append_commit(ap, 0, NULL, 0, 0, NULL, &uid) != STORE_OK)
            _exit(13);
        struct store_mailbox *mb;
        if (store_open(acc, "INBOX", false, &mb) != STORE_OK)
            _exit(14);
        struct store_message info;
        int fd;
        if (store_open_message(mb, uid, &fd, &info) != STORE_OK)
            _exit(15);
        uint64_t total = 0;
        ssize_t n;
        while ((n = read(fd, chunk, sizeof chunk)) > 0)
            total += (uint64_t)n;
        close(fd);
        if (total != 800ull * 65536 || info.file_size != total ||
            info.size != total + 800ull * 1024 || !info.needs_crlf)
            _exit(16);
        store_close(mb);
        long growth = maxrss_kb() - before;
        fprintf(stderr, "   50 MB append: peak RSS grew by %ld kB\n", growth);
        _exit(growth < 8L * 1024 ? 0 : 17);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_big_mailbox_opens_without_rescan(void **state)
{
    struct fixture *f = *state;
    struct store_account *a = f->account;
    struct store_mailbox *mb;
    /* an empty INBOX is seen once, then the MTA delivers 20 000 messages */
    assert_int_equal(store_open(a, "INBOX", false, &mb), STORE_OK);
    store_close(mb);
    usleep(100000);
    time_t t = time(NULL) - 20000;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 20000; i++) {
        char name[32], text[64];
        snprintf(name, sizeof name, "%d.M%dP1.mx", (int)t + i, i);
        snprintf(text, sizeof text, "Subject: %d\n\nbody %d\n", i, i);
        deliver(f->root, name, text, t + i);
    }
    double delivery = seconds_since(&t0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(store_open(a, "INBOX", false, &mb), STORE_OK);
    double pickup = seconds_since(&t0);
    assert_int_equal(store_count(mb), 20000);
    assert_int_equal(store_message(mb, 20000)->uid, 20000);
    assert_int_equal(store_message(mb, 1)->internaldate, t);
    store_close(mb);

    struct store_io_counters c0, c1;
    store_io_counters(&c0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(store_open(a, "INBOX", false, &mb), STORE_OK);
    double reopen = seconds_since(&t0);
    store_io_counters(&c1);
    assert_int_equal(store_count(mb), 20000);
    assert_int_equal(c1.rescans - c0.rescans, 0);
    assert_int_equal(c1.file_stats - c0.file_stats, 0);
    assert_int_equal(c1.dir_entries - c0.dir_entries, 0);
    /* a flag change does not make the next open rescan either */
    uint32_t uid = 777;
    assert_int_equal(store_set_flags(mb, &uid, 1, STORE_FLAGS_ADD, STORE_SEEN, NULL, 0, NULL),
                     STORE_OK);
    store_close(mb);
    store_io_counters(&c0);
    assert_int_equal(store_open(a, "INBOX", false, &mb), STORE_OK);
    store_io_counters(&c1);
    assert_int_equal(c1.rescans - c0.rescans, 0);
    assert_int_equal(store_message(mb, 777)->flags, STORE_SEEN);
    store_close(mb);
    struct store_mailbox_status status;
    assert_int_equal(store_status(a, "INBOX", &status), STORE_OK);
    assert_int_equal(status.messages, 20000);
    assert_int_equal(status.unseen, 19999);
    assert_int_equal(status.recent, 0);
    fprintf(stderr, "   20 000 messages: delivery %.2f s, pickup %.2f s, reopen %.3f s\n", delivery,
            pickup, reopen);
    assert_true(reopen < 2.0);
}

#define THREAD_APPENDS 25

struct thread_job {
    struct store_account *account;
    uint32_t uids[THREAD_APPENDS];
    int failures;
};

static void *append_thread(void *arg)
{
    struct thread_job *job = arg;
    for (int i = 0; i < THREAD_APPENDS; i++) {
        struct store_append *ap;
        uint32_t uid = 0;
        if (store_append_begin(job->account, "INBOX", &ap) != STORE_OK ||
            store_append_write(ap, "Subject: t\r\n\r\n", 14) != STORE_OK ||
            store_append_commit(ap, 0, NULL, 0, 0, NULL, &uid) != STORE_OK)
            job->failures++;
        job->uids[i] = uid;
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct fixture *f = *state;
    struct thread_job jobs[4] = {{.account = f->account},
                                 {.account = f->account},
                                 {.account = f->account},
                                 {.account = f->account}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, append_thread, &jobs[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char seen[256] = {0};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(jobs[i].failures, 0);
        for (int j = 0; j < THREAD_APPENDS; j++) {
            assert_true(jobs[i].uids[j] >= 1 && jobs[i].uids[j] <= 4 * THREAD_APPENDS);
            assert_false(seen[jobs[i].uids[j]]);
            seen[jobs[i].uids[j]] = 1;
        }
    }
    struct store_mailbox_status st;
    assert_int_equal(store_status(f->account, "INBOX", &st), STORE_OK);
    assert_int_equal(st.messages, 4 * THREAD_APPENDS);
    assert_int_equal(st.uidnext, 4 * THREAD_APPENDS + 1);
}

/* --- crash safety --- */

/* What the model expects of one message, identified by the X-Id header in its body. */
struct expect {
    int box; /* 0 INBOX, 1 Archive, -1 gone */
    uint32_t uid;
};

#define CRASH_IDS 100000
static const char *const crash_boxes[] = {"INBOX", "Archive"};

/* Test randomness only (xorshift): the crash test is reproducible from its seed. */
static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* The child: append, expunge and move at random, logging each operation before it starts
 * (lower case) and after it returned (upper case). It never stops: it is killed. */
static void crash_child(const char *root, const char *log_path, int round)
{
    struct store_account *acc;
    if (store_account_open(root, &acc) != STORE_OK)
        _exit(2);
    int log = open(log_path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    struct store_mailbox *mb;
    if (store_open(acc, "INBOX", false, &mb) != STORE_OK)
        _exit(3);
    rng_state = (uint32_t)getpid() * 2654435761u;
    char line[128];
    for (int i = 0;; i++) {
        int id = round * 1000 + i;
        int op = (int)(rng() % 4);
        struct store_changes ch;
        if (store_sync(mb, true, &ch) != STORE_OK)
            _exit(4);
        store_changes_free(&ch);
        uint32_t count = store_count(mb);
        if (op <= 1 || count < 3) {
            char text[64];
            snprintf(text, sizeof text, "Subject: crash\r\nX-Id: %d\r\n\r\nbody\r\n", id);
            dprintf(log, "a %d\n", id);
            struct store_append *ap;
            uint32_t uid;
            if (store_append_begin(acc, "INBOX", &ap) != STORE_OK ||
                store_append_write(ap, text, strlen(text)) != STORE_OK ||
                store_append_commit(ap, 0, NULL, 0, 0, NULL, &uid) != STORE_OK)
                _exit(5);
            snprintf(line, sizeof line, "A %d %u\n", id, uid);
        } else {
            uint32_t uid = store_message(mb, 1 + rng() % count)->uid;
            if (op == 2) {
                dprintf(log, "d %u\n", uid);
                if (store_set_flags(mb, &uid, 1, STORE_FLAGS_ADD, STORE_DELETED, NULL, 0, NULL) !=
                        STORE_OK ||
                    store_expunge(mb, &uid, 1, NULL) != STORE_OK)
                    _exit(6);
                snprintf(line, sizeof line, "D %u\n", uid);
            } else {
                uint32_t dest = 0;
                dprintf(log, "m %u\n", uid);
                if (store_move(mb, &uid, 1, "Archive", NULL, &dest, NULL) != STORE_OK)
                    _exit(7);
                snprintf(line, sizeof line, "M %u %u\n", uid, dest);
            }
        }
        if (write(log, line, strlen(line)) < 0)
            _exit(8);
    }
}

/* Every message actually present: X-Id -> (box, uid); asserts no id is there twice. */
static void crash_observe(struct store_account *acc, struct expect *seen, uint32_t *uidnext)
{
    for (int i = 0; i < CRASH_IDS; i++)
        seen[i] = (struct expect){-1, 0};
    for (int box = 0; box < 2; box++) {
        struct store_mailbox *mb;
        assert_int_equal(store_open(acc, crash_boxes[box], false, &mb), STORE_OK);
        uidnext[box] = store_uidnext(mb);
        for (uint32_t seq = 1; seq <= store_count(mb); seq++) {
            uint32_t uid = store_message(mb, seq)->uid;
            assert_true(uid < uidnext[box]);
            char *text = read_message(mb, uid, NULL);
            const char *x = strstr(text, "X-Id: ");
            assert_non_null(x);
            int id = (int)strtol(x + 6, NULL, 10);
            free(text);
            assert_true(id >= 0 && id < CRASH_IDS);
            if (seen[id].box != -1)
                fail_msg("message %d is in %s as %u and in %s as %u", id, crash_boxes[seen[id].box],
                         seen[id].uid, crash_boxes[box], uid);
            seen[id] = (struct expect){box, uid};
        }
        store_close(mb);
    }
}

static int id_of(const struct expect *model, int box, uint32_t uid)
{
    for (int i = 0; i < CRASH_IDS; i++)
        if (model[i].box == box && model[i].uid == uid)
            return i;
    return -1;
}

/* "<op> <n> [<n> ...]": the numbers after the operation letter. */
static int log_fields(const char *line, unsigned long *n)
{
    int count = 0;
    const char *p = line + 1;
    while (count < 3 && *p == ' ') {
        char *end;
        n[count++] = strtoul(p + 1, &end, 10);
        p = end;
    }
    return count;
}

static void test_crash_kill9(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_create(f->account, "Archive", STORE_SPECIAL_ARCHIVE), STORE_OK);
    struct expect *model = calloc(CRASH_IDS, sizeof *model);
    struct expect *seen = calloc(CRASH_IDS, sizeof *seen);
    for (int i = 0; i < CRASH_IDS; i++)
        model[i].box = -1;
    const char *log_path = pathf("%s/crash.log", f->dir);
    char log_copy[256];
    snprintf(log_copy, sizeof log_copy, "%s", log_path);
    int rounds = 60, total_ops = 0, in_flight = 0;
    for (int round = 1; round <= rounds; round++) {
        unlink(log_copy);
        pid_t pid = fork();
        if (pid == 0)
            crash_child(f->root, log_copy, round);
        usleep(5000 + rng() % 150000);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status))
            fail_msg("child exited with %d before being killed", WEXITSTATUS(status));
        /* replay the log on the model; the last started operation may or may not have
         * happened, the observed state decides which, and it must be one of the two */
        struct store_account *acc;
        assert_int_equal(store_account_open(f->root, &acc), STORE_OK);
        uint32_t uidnext[2];
        crash_observe(acc, seen, uidnext);
        FILE *log = fopen(log_copy, "r");
        char line[128], pending = 0;
        unsigned long pending_arg = 0, n[3];
        while (log != NULL && fgets(line, sizeof line, log) != NULL) {
            int nargs = log_fields(line, n);
            if (line[0] >= 'a' && line[0] <= 'z') {
                pending = line[0];
                pending_arg = nargs > 0 ? n[0] : 0;
                continue;
            }
            pending = 0;
            total_ops++;
            if (line[0] == 'A' && nargs == 2) {
                model[n[0]] = (struct expect){0, (uint32_t)n[1]};
            } else if (line[0] == 'D' && nargs == 1) {
                int id = id_of(model, 0, (uint32_t)n[0]);
                assert_true(id >= 0);
                model[id].box = -1;
            } else if (line[0] == 'M' && nargs == 2) {
                int id = id_of(model, 0, (uint32_t)n[0]);
                assert_true(id >= 0);
                model[id] = (struct expect){1, (uint32_t)n[1]};
            }
        }
        if (log != NULL)
            fclose(log);
        if (pending != 0)
            in_flight++;
        if (pending == 'a' && seen[pending_arg].box != -1) {
            assert_int_equal(seen[pending_arg].box, 0);
            model[pending_arg] = seen[pending_arg];
        } else if (pending == 'd' || pending == 'm') {
            int id = id_of(model, 0, (uint32_t)pending_arg);
            assert_true(id >= 0);
            if (seen[id].box == -1)
                assert_true(pending == 'd');
            if (seen[id].box == 1)
                assert_true(pending == 'm');
            if (seen[id].box == 0)
                assert_int_equal(seen[id].uid, model[id].uid);
            model[id] = seen[id];
        }
        /* now the model and the mailboxes must agree exactly */
        for (int i = 0; i < CRASH_IDS; i++) {
            if (model[i].box != seen[i].box || (seen[i].box >= 0 && model[i].uid != seen[i].uid))
                fail_msg("round %d: message %d expected in %d as %u, found in %d as %u", round, i,
                         model[i].box, model[i].uid, seen[i].box, seen[i].uid);
            if (seen[i].box >= 0)
                assert_true(seen[i].uid < uidnext[seen[i].box]);
        }
        store_account_close(acc);
    }
    fprintf(stderr, "   crash test: %d rounds, %d completed operations, %d killed mid-way\n",
            rounds, total_ops, in_flight);
    assert_true(total_ops > 2 * rounds);
    free(model);
    free(seen);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_large_append_streams),
        cmocka_unit_test(test_names),
        T(test_account_defaults),
        T(test_create_delete_rename),
        T(test_subscriptions),
        T(test_append_read_status),
        T(test_delivery_pickup),
        T(test_flags_in_file_names),
        T(test_other_tools),
        T(test_rebuild_lost_index),
        T(test_park),
        T(test_rebuild_corrupt_index),
        T(test_power_loss),
        T(test_two_handles),
        T(test_stale_handles),
        T(test_copy_move),
        T(test_cache_and_watch),
        T(test_pop3_lock),
        T(test_threads),
        cmocka_unit_test_setup_teardown(test_big_mailbox_opens_without_rescan, setup_fast,
                                        teardown),
        T(test_crash_kill9),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
