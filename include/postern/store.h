/* The mailbox store: Maildir++ folders with a per-mailbox SQLite index of UIDs, flags and modseqs.
 *
 * Every call blocks (run it on a worker thread). An account or mailbox handle is used by one
 * thread at a time; any number of handles, in any number of threads and processes, may be open
 * on the same mailbox. Errors are values: a status code, and store_last_error() for the detail
 * (per thread). docs/store.md describes the on-disk layout and the crash-safety argument. */
#ifndef POSTERN_STORE_H
#define POSTERN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum store_status {
    STORE_OK = 0,
    STORE_NOT_FOUND,    /* no such mailbox (or \Noselect), message expunged */
    STORE_EXISTS,       /* the mailbox (or one of the renamed children) exists */
    STORE_INVALID_NAME, /* mailbox name, keyword or account key refused */
    STORE_INVALID,      /* not allowed: DELETE INBOX, rename into itself, bad argument */
    STORE_READONLY,     /* the handle was opened read-only (EXAMINE) */
    STORE_NO_SPACE,     /* ENOSPC or EDQUOT */
    STORE_IO,           /* any other system error */
    STORE_CORRUPT,      /* the index is damaged; it is rebuilt from the Maildir on next use */
    STORE_BUSY,         /* a lock is held elsewhere (POP3 in use, or a lock timed out) */
    STORE_STALE,        /* the mailbox was deleted, renamed or recreated: close the handle */
    STORE_TOO_OLD,      /* store_changes_since: tombstones that old are gone; resync fully */
};

/* System flags (RFC 3501 §2.3.2). \Recent is separate: see struct store_message. */
enum store_flag {
    STORE_SEEN = 1u << 0,
    STORE_ANSWERED = 1u << 1,
    STORE_FLAGGED = 1u << 2,
    STORE_DELETED = 1u << 3,
    STORE_DRAFT = 1u << 4,
};
#define STORE_FLAGS_ALL 0x1fu

/* SPECIAL-USE (RFC 6154) of a folder. */
enum store_special {
    STORE_SPECIAL_NONE = 0,
    STORE_SPECIAL_SENT,
    STORE_SPECIAL_DRAFTS,
    STORE_SPECIAL_TRASH,
    STORE_SPECIAL_JUNK,
    STORE_SPECIAL_ARCHIVE,
};

/* LIST attributes (RFC 3501 §7.2.2, RFC 3348). */
enum store_list_attr {
    STORE_LIST_NOSELECT = 1u << 0, /* an implied parent: only its children exist */
    STORE_LIST_HASCHILDREN = 1u << 1,
    STORE_LIST_HASNOCHILDREN = 1u << 2,
    STORE_LIST_SUBSCRIBED = 1u << 3,
};

#define STORE_NAME_MAX 200    /* bytes of a mailbox name (modified UTF-7) */
#define STORE_KEYWORD_MAX 100 /* bytes of one keyword */
#define STORE_KEYWORDS_PER_MESSAGE 64

struct store_account;
struct store_mailbox;
struct store_append;
struct store_pop3_lock;

const char *store_status_text(enum store_status status);
/* Detail of the last failure in this thread ("" if none). */
const char *store_last_error(void);

/* --- Account ----------------------------------------------------------------------------- */

/* Expand a root template: %k is the key, %1k..%9k its first 1..9 characters, %% a '%'.
 * The template must be absolute; keys with '/', a leading '.' or control characters are
 * refused (STORE_INVALID_NAME). */
enum store_status store_expand_root(const char *tmpl, const char *key, char *out, size_t size);

/* Open an account's store at root (created with its parents if missing). On first use the
 * folders INBOX, Sent, Drafts, Trash and Junk are created and subscribed. */
enum store_status store_account_open(const char *root, struct store_account **out);
void store_account_close(struct store_account *account);

/* Validate a mailbox name (RFC 3501 §5.1, modified UTF-7 §5.1.3) and write its canonical form
 * (INBOX in capitals) to canonical. */
enum store_status store_name_check(const char *name, char *canonical, size_t size);
bool store_keyword_valid(const char *keyword);

/* Superior names are created as needed (RFC 3501 CREATE). */
enum store_status store_create(struct store_account *account, const char *name,
                               enum store_special special);
/* Deleting a name with children removes its messages and leaves it \Noselect (RFC 3501
 * DELETE); deleting a \Noselect name with children is STORE_INVALID, INBOX too. */
enum store_status store_delete(struct store_account *account, const char *name);
/* Children move along; RENAME INBOX moves its messages to a new mailbox (RFC 3501 RENAME). */
enum store_status store_rename(struct store_account *account, const char *from, const char *to);

struct store_folder {
    char *name;
    unsigned attrs; /* enum store_list_attr */
    enum store_special special;
};
/* Every name, INBOX first, then sorted; implied parents as \Noselect. */
enum store_status store_list(struct store_account *account, struct store_folder **folders,
                             size_t *count);
void store_list_free(struct store_folder *folders, size_t count);

enum store_status store_subscribe(struct store_account *account, const char *name);
enum store_status store_unsubscribe(struct store_account *account, const char *name);
enum store_status store_subscriptions(struct store_account *account, char ***names, size_t *count);
void store_strings_free(char **names, size_t count);

struct store_mailbox_status {
    uint32_t messages, recent, unseen, uidnext, uidvalidity;
    uint64_t highest_modseq;
};
enum store_status store_status(struct store_account *account, const char *name,
                               struct store_mailbox_status *status);

/* POP3 exclusive access to INBOX across processes; STORE_BUSY while another holds it. */
enum store_status store_pop3_lock(struct store_account *account, struct store_pop3_lock **out);
void store_pop3_unlock(struct store_pop3_lock *lock);

/* --- Appending (streams: the message never sits in memory) ---------------------------------- */

enum store_status store_append_begin(struct store_account *account, const char *mailbox,
                                     struct store_append **out);
enum store_status store_append_write(struct store_append *append, const void *data, size_t len);
/* Consumes append whatever the result. internaldate 0 means now. */
enum store_status store_append_commit(struct store_append *append, unsigned flags,
                                      const char *const *keywords, size_t keyword_count,
                                      time_t internaldate, uint32_t *uidvalidity, uint32_t *uid);
void store_append_abort(struct store_append *append);

/* --- A selected mailbox -------------------------------------------------------------------- */

/* One message of a handle's view; valid until the next call that changes the view. */
struct store_message {
    uint32_t uid;
    unsigned flags;       /* enum store_flag */
    const char *keywords; /* space-separated, "" for none */
    bool recent;          /* \Recent in this session */
    bool expunged;        /* expunged elsewhere, not yet announced (store_sync without expunges) */
    uint64_t size;        /* RFC822.SIZE: octets with CRLF line ends */
    uint64_t file_size;   /* octets on disk */
    bool needs_crlf;      /* the file has bare LFs: convert LF to CRLF when sending */
    time_t internaldate;
    uint64_t modseq;
};

/* readonly: EXAMINE (no flag changes, \Recent is not claimed). */
enum store_status store_open(struct store_account *account, const char *name, bool readonly,
                             struct store_mailbox **out);
void store_close(struct store_mailbox *mailbox);

const char *store_mailbox_name(const struct store_mailbox *mailbox);
bool store_readonly(const struct store_mailbox *mailbox);
uint32_t store_count(const struct store_mailbox *mailbox);
uint32_t store_recent(const struct store_mailbox *mailbox);
uint32_t store_uidvalidity(const struct store_mailbox *mailbox);
uint32_t store_uidnext(const struct store_mailbox *mailbox);
uint64_t store_highest_modseq(const struct store_mailbox *mailbox);
/* seq is 1-based; NULL when out of range. */
const struct store_message *store_message(const struct store_mailbox *mailbox, uint32_t seq);
/* Sequence number of uid in the view, 0 if absent. */
uint32_t store_seq(const struct store_mailbox *mailbox, uint32_t uid);

/* What store_sync changed in the view, for untagged EXPUNGE / EXISTS / RECENT / FETCH. */
struct store_changes {
    uint32_t *expunged_seqs; /* descending: send each as "* n EXPUNGE" in this order */
    size_t expunged_count;
    uint32_t *flag_seqs; /* ascending, after the expunges: flags or keywords changed */
    size_t flag_count;
    bool exists_changed; /* send "* exists EXISTS" and "* recent RECENT" */
    uint32_t exists, recent;
    uint32_t uidnext;
    uint64_t highest_modseq;
};
/* Bring the index up to date with the disk (deliveries in new/, changes by other tools) and
 * the view up to date with the index. With allow_expunges false (RFC 3501 §7.4.1: during
 * FETCH, STORE, SEARCH) expunged messages stay in the view marked expunged. */
enum store_status store_sync(struct store_mailbox *mailbox, bool allow_expunges,
                             struct store_changes *changes);
void store_changes_free(struct store_changes *changes);
/* Full rescan of cur/ even when its mtime says nothing changed; then like store_sync. */
enum store_status store_rescan(struct store_mailbox *mailbox, struct store_changes *changes);

/* The index's changes after modseq, independent of the view. */
struct store_delta {
    uint32_t *new_uids, *changed_uids, *expunged_uids; /* ascending */
    size_t new_count, changed_count, expunged_count;
    uint64_t highest_modseq;
};
enum store_status store_changes_since(struct store_mailbox *mailbox, uint64_t modseq,
                                      struct store_delta *delta);
void store_delta_free(struct store_delta *delta);

enum store_flag_op { STORE_FLAGS_ADD, STORE_FLAGS_REMOVE, STORE_FLAGS_REPLACE };
/* Messages expunged meanwhile are skipped. The view shows the new flags at once; *modseq is
 * the modseq given to the change. */
enum store_status store_set_flags(struct store_mailbox *mailbox, const uint32_t *uids, size_t count,
                                  enum store_flag_op op, unsigned flags,
                                  const char *const *keywords, size_t keyword_count,
                                  uint64_t *modseq);

struct store_expunged {
    uint32_t *seqs; /* descending, as "* n EXPUNGE" must be sent */
    uint32_t *uids; /* the same messages */
    size_t count;
    uint64_t modseq;
};
/* uids NULL: every \Deleted message (EXPUNGE); else only the \Deleted ones among uids (UID
 * EXPUNGE, RFC 4315). The view loses them at once. */
enum store_status store_expunge(struct store_mailbox *mailbox, const uint32_t *uids, size_t count,
                                struct store_expunged *expunged);
void store_expunged_free(struct store_expunged *expunged);

/* dest_uids[i] is the new UID of uids[i], 0 if that message was gone (COPYUID, RFC 4315).
 * Copies are hard links where the file system allows. */
enum store_status store_copy(struct store_mailbox *mailbox, const uint32_t *uids, size_t count,
                             const char *dest, uint32_t *dest_uidvalidity, uint32_t *dest_uids);
/* MOVE (RFC 6851): one rename per message, so a message is never in both or neither place;
 * the moved messages leave the view as in store_expunge. */
enum store_status store_move(struct store_mailbox *mailbox, const uint32_t *uids, size_t count,
                             const char *dest, uint32_t *dest_uidvalidity, uint32_t *dest_uids,
                             struct store_expunged *expunged);

/* A read-only fd (O_CLOEXEC) on the message file; info (may be NULL) gets size and
 * needs_crlf. The caller streams and closes it. */
enum store_status store_open_message(struct store_mailbox *mailbox, uint32_t uid, int *fd,
                                     struct store_message *info);

/* Cached ENVELOPE and BODYSTRUCTURE strings, opaque to the store. get: STORE_NOT_FOUND when
 * not cached; *value is malloc'ed. */
enum store_cache_field { STORE_CACHE_ENVELOPE, STORE_CACHE_BODYSTRUCTURE };
enum store_status store_cache_get(struct store_mailbox *mailbox, uint32_t uid,
                                  enum store_cache_field field, char **value);
enum store_status store_cache_set(struct store_mailbox *mailbox, uint32_t uid,
                                  enum store_cache_field field, const char *value);

/* Change notification (IDLE). A notifier is one inotify instance that many watches share,
 * with one kernel watch per directory however many sessions watch the mailbox: a session in
 * IDLE costs no descriptor. It has an owner thread, which polls store_notifier_fd() for
 * readability and then calls store_notifier_dispatch(); watches are added on any thread
 * (the path lookups may block: a store worker), armed and removed on the owner's. */
struct store_notifier;
struct store_watch;
/* NULL when inotify is unavailable (store_last_error() says why). */
struct store_notifier *store_notifier_new(void);
int store_notifier_fd(const struct store_notifier *notifier);
/* References (the owner has one): the notifier lives on until the last is released and its
 * last watch removed. */
void store_notifier_ref(struct store_notifier *notifier);
void store_notifier_release(struct store_notifier *notifier);
/* Watch new/, cur/ and the index of the mailbox; NULL on error (e.g. the kernel's watch
 * limit). The watch starts disarmed: changes from now on are remembered for store_watch_arm. */
struct store_watch *store_watch_add(struct store_notifier *notifier, struct store_mailbox *mailbox,
                                    void (*fn)(void *), void *arg);
/* fn(arg) runs once, in store_notifier_dispatch, at the next change. True instead (and not
 * armed) when a change came since the watch fired or was added: sync now, then arm again. */
bool store_watch_arm(struct store_watch *watch);
void store_watch_remove(struct store_watch *watch);
/* Reads the pending events and runs fn of every armed watch whose mailbox changed (all of
 * them after an overflow of the kernel's queue). A fn may remove its own watch only. */
void store_notifier_dispatch(struct store_notifier *notifier);
/* For a handle that will wait (IDLE): close its index connection and every descriptor and
 * drop the view's spare room; the next operation opens them again. */
void store_park(struct store_mailbox *mailbox);
/* A few connections of parked handles are kept for the next handle of the same mailbox
 * (docs/store.md): this closes them (tests that count descriptors, a stop). */
void store_spares_flush(void);

/* Process-wide I/O counters, for tests and metrics. */
struct store_io_counters {
    uint64_t dir_entries; /* message names read from new/ and cur/ */
    uint64_t file_stats;  /* stat() of message files */
    uint64_t rescans;     /* full scans of cur/ */
    uint64_t rebuilds;    /* indexes rebuilt from the Maildir */
};
void store_io_counters(struct store_io_counters *counters);

#endif
