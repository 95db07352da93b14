/* The POP3 maildrop on the mailbox store: lock, listing, retrieval and the UPDATE state.
 * Everything here blocks and runs on a store worker, never on an I/O thread. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postern/log.h"
#include "postern/pop3.h"
#include "postern/store.h"
#include "postern/util.h"

enum store_status pop3_maildrop_open(const char *root_template, const char *key,
                                     struct pop3_maildrop **out, bool *in_use)
{
    *out = NULL;
    *in_use = false;
    char root[PATH_MAX];
    enum store_status st = store_expand_root(root_template, key, root, sizeof(root));
    if (st != STORE_OK)
        return st;
    struct pop3_maildrop *drop = xcalloc(1, sizeof(*drop));
    st = store_account_open(root, &drop->account);
    /* RFC 1939 §4: the lock comes first, so that two sessions never list the same maildrop */
    if (st == STORE_OK) {
        st = store_pop3_lock(drop->account, &drop->lock);
        *in_use = st == STORE_BUSY;
    }
    /* Writable, as Dovecot's POP3 opens it: the session claims \Recent, and can set \Seen and
     * expunge. */
    if (st == STORE_OK)
        st = store_open(drop->account, "INBOX", false, &drop->inbox);
    if (st != STORE_OK) {
        pop3_maildrop_close(drop);
        return st;
    }
    drop->uidvalidity = store_uidvalidity(drop->inbox);
    drop->count = store_count(drop->inbox);
    drop->messages = xcalloc(drop->count ? drop->count : 1, sizeof(*drop->messages));
    for (uint32_t n = 1; n <= drop->count; n++) {
        const struct store_message *m = store_message(drop->inbox, n);
        drop->messages[n - 1] = (struct pop3_message){
            .uid = m->uid, .size = m->size, .seen = (m->flags & STORE_SEEN) != 0};
    }
    *out = drop;
    return STORE_OK;
}

void pop3_maildrop_close(struct pop3_maildrop *drop)
{
    if (drop == NULL)
        return;
    store_close(drop->inbox);
    store_pop3_unlock(drop->lock);
    store_account_close(drop->account);
    free(drop->messages);
    free(drop);
}

enum store_status pop3_maildrop_retrieve(struct pop3_maildrop *drop, uint32_t n,
                                         uint64_t body_lines, bool mark_seen, int *fd,
                                         struct pop3_extent *extent)
{
    *fd = -1;
    struct pop3_message *m = &drop->messages[n - 1];
    enum store_status st = store_open_message(drop->inbox, m->uid, fd, NULL);
    if (st != STORE_OK)
        return st;
    if (!pop3_message_extent(*fd, body_lines, extent)) {
        log_warning("pop3: cannot read the message file of UID %u: %s", m->uid, strerror(errno));
        close(*fd);
        *fd = -1;
        return STORE_IO;
    }
    if (mark_seen && !m->seen) {
        /* A failure here costs the flag, not the message: the retrieval goes on. */
        if (store_set_flags(drop->inbox, &m->uid, 1, STORE_FLAGS_ADD, STORE_SEEN, NULL, 0, NULL) ==
            STORE_OK)
            m->seen = true;
        else
            log_warning("pop3: cannot set \\Seen on UID %u: %s", m->uid, store_last_error());
    }
    return STORE_OK;
}

enum store_status pop3_maildrop_update(struct pop3_maildrop *drop, uint32_t *removed)
{
    *removed = 0;
    uint32_t *uids = xcalloc(drop->count ? drop->count : 1, sizeof(*uids));
    size_t count = 0;
    for (uint32_t i = 0; i < drop->count; i++)
        if (drop->messages[i].deleted)
            uids[count++] = drop->messages[i].uid;
    enum store_status st = STORE_OK;
    if (count > 0) {
        /* store_expunge removes only \Deleted messages. A crash between the two steps leaves
         * them flagged but present: the next session lists them again, as RFC 1939 wants
         * for a QUIT that was never answered. */
        st = store_set_flags(drop->inbox, uids, count, STORE_FLAGS_ADD, STORE_DELETED, NULL, 0,
                             NULL);
        struct store_expunged gone = {0};
        if (st == STORE_OK)
            st = store_expunge(drop->inbox, uids, count, &gone);
        *removed = (uint32_t)gone.count;
        store_expunged_free(&gone);
    }
    free(uids);
    return st;
}

void pop3_uidl(const struct pop3_maildrop *drop, uint32_t n, char *buf, size_t size)
{
    snprintf(buf, size, "%x.%x", drop->uidvalidity, drop->messages[n - 1].uid);
}
