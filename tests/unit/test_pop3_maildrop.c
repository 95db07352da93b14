/* Unit tests of the POP3 maildrop on a real store in a temporary directory: the listing, the
 * lock, retrieval with \Seen, UIDL, and UPDATE deleting exactly the marked messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "postern/pop3.h"
#include "postern/store.h"

#define KEY "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

struct fixture {
    char dir[64];
    char tmpl[96];   /* MailboxRoot */
    char inbox[160]; /* the account's root: INBOX's Maildir */
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/postern-pop3-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->tmpl, sizeof(f->tmpl), "%s/mail/%%2k/%%k", f->dir);
    snprintf(f->inbox, sizeof(f->inbox), "%s/mail/0f/%s", f->dir, KEY);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* An MTA's delivery: tmp/, then new/; mtimes one second apart keep the order. */
static void deliver(struct fixture *f, const char *message, int n)
{
    char tmp[256], dst[256];
    snprintf(tmp, sizeof(tmp), "%s/tmp/%d.M%dP1.test", f->inbox, 1700000000 + n, n);
    snprintf(dst, sizeof(dst), "%s/new/%d.M%dP1.test", f->inbox, 1700000000 + n, n);
    FILE *fp = fopen(tmp, "w");
    assert_non_null(fp);
    fputs(message, fp);
    fclose(fp);
    struct timespec times[2] = {{.tv_sec = 1700000000 + n}, {.tv_sec = 1700000000 + n}};
    assert_int_equal(utimensat(AT_FDCWD, tmp, times, 0), 0);
    assert_int_equal(rename(tmp, dst), 0);
}

static struct pop3_maildrop *open_drop(struct fixture *f)
{
    struct pop3_maildrop *drop = NULL;
    bool in_use = true;
    enum store_status st = pop3_maildrop_open(f->tmpl, KEY, &drop, &in_use);
    if (st != STORE_OK)
        fail_msg("open: %s: %s", store_status_text(st), store_last_error());
    assert_false(in_use);
    return drop;
}

static const char *const MESSAGES[] = {
    "Subject: one\r\n\r\nbody\r\n",
    "Subject: two\n\nline\nline\n",
    "Subject: three\n\nno newline",
};

static struct pop3_maildrop *open_three(struct fixture *f)
{
    /* the first open creates the account; then three deliveries */
    pop3_maildrop_close(open_drop(f));
    for (int i = 0; i < 3; i++)
        deliver(f, MESSAGES[i], i);
    return open_drop(f);
}

static void test_listing(void **state)
{
    struct fixture *f = *state;
    struct pop3_maildrop *drop = open_three(f);
    assert_int_equal(drop->count, 3);
    /* sizes with CRLF line ends, as RETR sends them */
    assert_int_equal(drop->messages[0].size, 22);
    assert_int_equal(drop->messages[1].size, 28);
    assert_int_equal(drop->messages[2].size, 28);
    assert_true(drop->messages[0].uid < drop->messages[1].uid);
    assert_true(drop->messages[1].uid < drop->messages[2].uid);
    char a[POP3_UIDL_MAX], b[POP3_UIDL_MAX], want[POP3_UIDL_MAX];
    pop3_uidl(drop, 1, a, sizeof(a));
    pop3_uidl(drop, 2, b, sizeof(b));
    snprintf(want, sizeof(want), "%x.%x", drop->uidvalidity, drop->messages[0].uid);
    assert_string_equal(a, want);
    assert_string_not_equal(a, b);
    pop3_maildrop_close(drop);
    /* the same unique-ids in the next session */
    drop = open_drop(f);
    pop3_uidl(drop, 1, b, sizeof(b));
    assert_string_equal(a, b);
    pop3_maildrop_close(drop);
}

static void test_lock(void **state)
{
    struct fixture *f = *state;
    struct pop3_maildrop *drop = open_drop(f), *second = NULL;
    bool in_use = false;
    assert_int_equal(pop3_maildrop_open(f->tmpl, KEY, &second, &in_use), STORE_BUSY);
    assert_true(in_use);
    assert_null(second);
    pop3_maildrop_close(drop);
    pop3_maildrop_close(open_drop(f));
}

static void test_bad_key_and_root(void **state)
{
    struct fixture *f = *state;
    struct pop3_maildrop *drop = NULL;
    bool in_use = true;
    assert_int_equal(pop3_maildrop_open(f->tmpl, "../x", &drop, &in_use), STORE_INVALID_NAME);
    assert_false(in_use);
    assert_null(drop);
    char root[128];
    snprintf(root, sizeof(root), "%s/file", f->dir);
    FILE *fp = fopen(root, "w");
    fclose(fp);
    snprintf(root, sizeof(root), "%s/file/%%k", f->dir); /* below a regular file */
    assert_int_not_equal(pop3_maildrop_open(root, KEY, &drop, &in_use), STORE_OK);
    assert_null(drop);
    pop3_maildrop_close(NULL);
}

static char *read_fd(int fd, uint64_t len)
{
    char *buf = calloc(1, len + 1);
    assert_int_equal(pread(fd, buf, len, 0), (ssize_t)len);
    return buf;
}

static unsigned flags_of(struct fixture *f, uint32_t uid)
{
    struct store_account *account;
    struct store_mailbox *inbox;
    char root[160];
    snprintf(root, sizeof(root), "%s", f->inbox);
    assert_int_equal(store_account_open(root, &account), STORE_OK);
    assert_int_equal(store_open(account, "INBOX", true, &inbox), STORE_OK);
    const struct store_message *m = store_message(inbox, store_seq(inbox, uid));
    assert_non_null(m);
    unsigned flags = m->flags;
    store_close(inbox);
    store_account_close(account);
    return flags;
}

static void test_retrieve(void **state)
{
    struct fixture *f = *state;
    struct pop3_maildrop *drop = open_three(f);
    int fd;
    struct pop3_extent e;
    /* TOP: a preview, \Seen stays off */
    assert_int_equal(pop3_maildrop_retrieve(drop, 2, 1, false, &fd, &e), STORE_OK);
    char *text = read_fd(fd, e.length);
    assert_string_equal(text, "Subject: two\n\nline\n");
    free(text);
    close(fd);
    assert_false(drop->messages[1].seen);
    assert_int_equal(flags_of(f, drop->messages[1].uid) & STORE_SEEN, 0);
    /* RETR: all of it, and \Seen */
    assert_int_equal(pop3_maildrop_retrieve(drop, 3, POP3_ALL_LINES, true, &fd, &e), STORE_OK);
    text = read_fd(fd, e.length);
    assert_string_equal(text, MESSAGES[2]);
    assert_int_equal(e.last_byte, 'e');
    free(text);
    close(fd);
    assert_true(drop->messages[2].seen);
    assert_int_equal(flags_of(f, drop->messages[2].uid) & STORE_SEEN, STORE_SEEN);
    pop3_maildrop_close(drop);
}

static size_t files_in(struct fixture *f)
{
    size_t n = 0;
    for (int i = 0; i < 2; i++) {
        char path[200];
        snprintf(path, sizeof(path), "%s/%s", f->inbox, i ? "cur" : "new");
        DIR *d = opendir(path);
        assert_non_null(d);
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
            n += de->d_name[0] != '.';
        closedir(d);
    }
    return n;
}

static void test_update(void **state)
{
    struct fixture *f = *state;
    struct pop3_maildrop *drop = open_three(f);
    uint32_t kept = drop->messages[1].uid, removed = 99;
    /* nothing marked: nothing happens */
    assert_int_equal(pop3_maildrop_update(drop, &removed), STORE_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(files_in(f), 3);
    pop3_maildrop_close(drop);
    /* a session that ends without UPDATE deletes nothing */
    drop = open_drop(f);
    drop->messages[0].deleted = drop->messages[2].deleted = true;
    pop3_maildrop_close(drop);
    assert_int_equal(files_in(f), 3);
    assert_int_equal(flags_of(f, kept) & STORE_DELETED, 0);
    /* UPDATE: exactly the marked ones */
    drop = open_drop(f);
    assert_int_equal(drop->count, 3);
    drop->messages[0].deleted = drop->messages[2].deleted = true;
    assert_int_equal(pop3_maildrop_update(drop, &removed), STORE_OK);
    assert_int_equal(removed, 2);
    pop3_maildrop_close(drop);
    assert_int_equal(files_in(f), 1);
    drop = open_drop(f);
    assert_int_equal(drop->count, 1);
    assert_int_equal(drop->messages[0].uid, kept);
    pop3_maildrop_close(drop);
}

/* A message \Deleted by an IMAP client is listed and left alone unless DELE'd. */
static void test_imap_deleted_flag_is_not_ours(void **state)
{
    struct fixture *f = *state;
    struct pop3_maildrop *drop = open_three(f);
    uint32_t uid = drop->messages[0].uid;
    assert_int_equal(
        store_set_flags(drop->inbox, &uid, 1, STORE_FLAGS_ADD, STORE_DELETED, NULL, 0, NULL),
        STORE_OK);
    pop3_maildrop_close(drop);
    drop = open_drop(f);
    assert_int_equal(drop->count, 3);
    drop->messages[1].deleted = true;
    uint32_t removed;
    assert_int_equal(pop3_maildrop_update(drop, &removed), STORE_OK);
    assert_int_equal(removed, 1);
    pop3_maildrop_close(drop);
    assert_int_equal(files_in(f), 2);
}

static uint32_t recent_seen_by_imap(struct fixture *f)
{
    struct store_account *account;
    struct store_mailbox *inbox;
    assert_int_equal(store_account_open(f->inbox, &account), STORE_OK);
    assert_int_equal(store_open(account, "INBOX", true, &inbox), STORE_OK); /* EXAMINE */
    uint32_t recent = store_recent(inbox);
    store_close(inbox);
    store_account_close(account);
    return recent;
}

/* A POP3 session takes \Recent as a SELECT would (Dovecot's POP3 does the same). */
static void test_recent_is_claimed(void **state)
{
    struct fixture *f = *state;
    pop3_maildrop_close(open_drop(f));
    deliver(f, MESSAGES[0], 0);
    deliver(f, MESSAGES[1], 1);
    assert_int_equal(recent_seen_by_imap(f), 2);
    pop3_maildrop_close(open_drop(f));
    assert_int_equal(recent_seen_by_imap(f), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_listing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_key_and_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retrieve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_imap_deleted_flag_is_not_ours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recent_is_claimed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
