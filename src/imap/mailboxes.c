/* IMAP commands on mailboxes as a whole (RFC 3501 §6.3, §6.4.1-2): SELECT, EXAMINE, CREATE,
 * DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST and LSUB (with CHILDREN and SPECIAL-USE
 * attributes, RFC 3348 and RFC 6154), STATUS, NAMESPACE (RFC 2342), ENABLE (RFC 5161), CHECK,
 * NOOP, CLOSE and UNSELECT (RFC 3691). */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "postern/util.h"
#include "session_internal.h"

/* A mailbox command: one or two names, and for SELECT the handle it opened. */
struct mailbox_job {
    struct imap_job job;
    char *name, *name2;
    bool readonly;
    struct store_mailbox *owned; /* SELECT: the handle to close first; CLOSE: the one closed */
    struct store_mailbox *opened;
    unsigned items; /* STATUS */
    struct list_pattern *pattern;
};

static void mailbox_job_release(struct imap_job *j)
{
    struct mailbox_job *m = (struct mailbox_job *)j;
    free(m->name);
    free(m->name2);
    store_close(m->owned); /* only if the job never ran (a full queue) */
    store_close(m->opened);
    list_pattern_free(m->pattern);
}

static struct mailbox_job *mailbox_job(struct imap_session *s, const char *tag, imap_job_fn work)
{
    struct mailbox_job *m = imap_job_new(s, tag, sizeof(*m), work);
    m->job.release = mailbox_job_release;
    return m;
}

/* After the command's own work: updates of the selected mailbox, then the tagged OK. */
static void ok_after_sync(struct imap_job *j, const char *text)
{
    job_sync(j, true);
    job_reply(j, "OK", text);
}

/* ---- SELECT / EXAMINE ---- */

/* The keywords used in the mailbox, for FLAGS (RFC 3501 §7.2.6). */
static void out_mailbox_flags(struct imap_output *o, const struct store_mailbox *mb)
{
    char **seen = NULL;
    size_t n = 0;
    uint32_t count = store_count(mb);
    for (uint32_t seq = 1; seq <= count && n < (size_t)STORE_KEYWORDS_PER_MESSAGE * 4; seq++) {
        const char *kw = store_message(mb, seq)->keywords;
        while (*kw) {
            size_t len = strcspn(kw, " ");
            bool known = false;
            for (size_t i = 0; i < n && !known; i++)
                known = strlen(seen[i]) == len && ascii_ncasecmp(seen[i], kw, len) == 0;
            if (!known && len > 0) {
                seen = xrealloc(seen, (n + 1) * sizeof(*seen));
                seen[n++] = xstrndup(kw, len);
            }
            kw += len;
            while (*kw == ' ')
                kw++;
        }
    }
    out_printf(o, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    for (size_t i = 0; i < n; i++) {
        out_printf(o, " %s", seen[i]);
        free(seen[i]);
    }
    free(seen);
    out_printf(o, ")\r\n");
}

static void select_work(struct imap_job *j)
{
    struct mailbox_job *m = (struct mailbox_job *)j;
    struct store_mailbox *mb = NULL;
    enum store_status st = store_open(j->account, m->name, m->readonly, &mb);
    /* Closed after the new handle is open: when it was the last connection to its index,
     * closing first made SQLite rebuild the WAL's shared index from the whole WAL at the open
     * (up to 1000 pages read and checksummed; a re-SELECT took 8 ms instead of 1 in bench/). */
    store_close(m->owned);
    m->owned = NULL;
    if (st != STORE_OK) {
        job_store_error(j, st, m->readonly ? "EXAMINE" : "SELECT", false);
        return;
    }
    m->opened = mb;
    struct imap_output *o = &j->out;
    out_mailbox_flags(o, mb);
    if (m->readonly)
        out_printf(o, "* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
    else
        out_printf(o, "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] "
                      "Flags permitted\r\n");
    uint32_t count = store_count(mb);
    out_printf(o, "* %u EXISTS\r\n* %u RECENT\r\n", count, store_recent(mb));
    for (uint32_t seq = 1; seq <= count; seq++) {
        if (!(store_message(mb, seq)->flags & STORE_SEEN)) {
            out_printf(o, "* OK [UNSEEN %u] First unseen message\r\n", seq);
            break;
        }
    }
    out_printf(o, "* OK [UIDVALIDITY %u] UIDs valid\r\n", store_uidvalidity(mb));
    out_printf(o, "* OK [UIDNEXT %u] Predicted next UID\r\n", store_uidnext(mb));
    out_printf(o, "%s OK [%s] %s completed\r\n", j->tag, m->readonly ? "READ-ONLY" : "READ-WRITE",
               m->readonly ? "EXAMINE" : "SELECT");
}

static void select_finish(struct imap_job *j)
{
    struct mailbox_job *m = (struct mailbox_job *)j;
    struct imap_session *s = j->s;
    if (m->opened) {
        s->selected = m->opened;
        s->state = IMAP_SELECTED;
        m->opened = NULL;
    }
}

static void select_or_examine(struct imap_session *s, struct imap_command *cmd, bool readonly)
{
    char *name;
    if (cmd->n_args != 1) {
        imap_bad_command(s, cmd->tag,
                         readonly ? "EXAMINE takes a mailbox name" : "SELECT takes a mailbox name");
        return;
    }
    if (!imap_mailbox_arg(s, cmd->tag, &cmd->args[0], &name))
        return;
    /* RFC 3501 §6.3.1: the mailbox selected so far is closed whatever happens (without
     * expunging), so the session is in the authenticated state until the new one opens */
    struct store_mailbox *old = s->selected;
    s->selected = NULL;
    s->state = IMAP_AUTHENTICATED;
    if (!imap_need_store(s, cmd->tag)) {
        free(name);
        return;
    }
    struct mailbox_job *m = mailbox_job(s, cmd->tag, select_work);
    m->name = name;
    m->readonly = readonly;
    m->owned = old;
    m->job.mailbox = NULL;
    m->job.finish = select_finish;
    imap_job_submit(&m->job);
}

void cmd_select(struct imap_session *s, struct imap_command *cmd)
{
    select_or_examine(s, cmd, false);
}

void cmd_examine(struct imap_session *s, struct imap_command *cmd)
{
    select_or_examine(s, cmd, true);
}

/* ---- CLOSE / UNSELECT ---- */

static void close_work(struct imap_job *j)
{
    struct mailbox_job *m = (struct mailbox_job *)j;
    /* CLOSE expunges silently (RFC 3501 §6.4.2); UNSELECT does not (RFC 3691) */
    if (!m->readonly && !store_readonly(m->owned)) {
        struct store_expunged ex;
        enum store_status st = store_expunge(m->owned, NULL, 0, &ex);
        store_expunged_free(&ex);
        if (st != STORE_OK && st != STORE_STALE) {
            job_store_error(j, st, "CLOSE", false);
            store_close(m->owned);
            m->owned = NULL;
            return;
        }
    }
    store_close(m->owned);
    m->owned = NULL;
    job_reply(j, "OK", m->readonly ? "UNSELECT completed" : "CLOSE completed");
}

static void close_or_unselect(struct imap_session *s, struct imap_command *cmd, bool unselect)
{
    if (cmd->n_args != 0) {
        imap_bad_command(s, cmd->tag, "Unexpected arguments");
        return;
    }
    struct mailbox_job *m = mailbox_job(s, cmd->tag, close_work);
    m->owned = s->selected;
    m->readonly = unselect;
    m->job.mailbox = NULL;
    s->selected = NULL;
    s->state = IMAP_AUTHENTICATED;
    imap_job_submit(&m->job);
}

void cmd_close(struct imap_session *s, struct imap_command *cmd)
{
    close_or_unselect(s, cmd, false);
}

void cmd_unselect(struct imap_session *s, struct imap_command *cmd)
{
    close_or_unselect(s, cmd, true);
}

/* ---- NOOP / CHECK in the selected state: the updates are the answer ---- */

static void noop_work(struct imap_job *j)
{
    struct mailbox_job *m = (struct mailbox_job *)j;
    ok_after_sync(j, m->name);
}

static void sync_command(struct imap_session *s, const char *tag, const char *done_text)
{
    struct mailbox_job *m = mailbox_job(s, tag, noop_work);
    m->name = xstrdup(done_text);
    imap_job_submit(&m->job);
}

void imap_noop_selected(struct imap_session *s, const char *tag)
{
    sync_command(s, tag, "NOOP completed");
}

void cmd_check(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->n_args != 0) {
        imap_bad_command(s, cmd->tag, "Unexpected arguments");
        return;
    }
    sync_command(s, cmd->tag, "CHECK completed");
}

/* ---- CREATE / DELETE / RENAME / SUBSCRIBE / UNSUBSCRIBE ---- */

static void create_work(struct imap_job *j)
{
    struct mailbox_job *m = (struct mailbox_job *)j;
    enum store_status st = store_create(j->account, m->name, STORE_SPECIAL_NONE);
    if (st != STORE_OK)
        job_store_error(j, st, "CREATE", false);
    else
        ok_after_sync(j, "CREATE completed");
}

static void delete_work(struct imap_job *j)
{
    struct mailbox_job *m = (struct mailbox_job *)j;
    enum store_status st = store_delete(j->account, m->name);
    if (st == STORE_INVALID)
        job_reply(j, "NO",
                  strcmp(m->name, "INBOX") == 0
                      ? "[CANNOT] INBOX cannot be deleted"
                      : "[CANNOT] The mailbox has children and holds no messages of its own");
    else if (st != STORE_OK)
        job_store_error(j, st, "DELETE", false);
    else
        ok_after_sync(j, "DELETE completed");
}

static void rename_work(struct imap_job *j)
{
    struct mailbox_job *m = (struct mailbox_job *)j;
    enum store_status st = store_rename(j->account, m->name, m->name2);
    if (st == STORE_INVALID)
        job_reply(j, "NO", "[CANNOT] A mailbox cannot be renamed into itself");
    else if (st != STORE_OK)
        job_store_error(j, st, "RENAME", false);
    else
        ok_after_sync(j, "RENAME completed");
}

static void subscribe_work(struct imap_job *j)
{
    struct mailbox_job *m = (struct mailbox_job *)j;
    enum store_status st =
        m->readonly ? store_unsubscribe(j->account, m->name) : store_subscribe(j->account, m->name);
    if (st != STORE_OK)
        job_store_error(j, st, m->readonly ? "UNSUBSCRIBE" : "SUBSCRIBE", false);
    else
        ok_after_sync(j, m->readonly ? "UNSUBSCRIBE completed" : "SUBSCRIBE completed");
}

/* Whether name is the selected mailbox or lies below it. */
static bool touches_selected(const struct imap_session *s, const char *name)
{
    if (s->selected == NULL)
        return false;
    char canonical[STORE_NAME_MAX + 1];
    if (store_name_check(name, canonical, sizeof(canonical)) != STORE_OK)
        return false;
    const char *sel = store_mailbox_name(s->selected);
    size_t n = strlen(canonical);
    return strncmp(sel, canonical, n) == 0 && (sel[n] == '\0' || sel[n] == IMAP_DELIMITER);
}

static bool one_mailbox(struct imap_session *s, struct imap_command *cmd, const char *usage,
                        char **name)
{
    if (cmd->n_args != 1) {
        imap_bad_command(s, cmd->tag, usage);
        return false;
    }
    if (!imap_mailbox_arg(s, cmd->tag, &cmd->args[0], name))
        return false;
    if (!imap_need_store(s, cmd->tag)) {
        free(*name);
        return false;
    }
    return true;
}

void cmd_create(struct imap_session *s, struct imap_command *cmd)
{
    char *name;
    if (!one_mailbox(s, cmd, "CREATE takes a mailbox name", &name))
        return;
    /* RFC 3501 §6.3.3: a trailing delimiter only says children are intended */
    size_t len = strlen(name);
    while (len > 1 && name[len - 1] == IMAP_DELIMITER)
        name[--len] = '\0';
    struct mailbox_job *m = mailbox_job(s, cmd->tag, create_work);
    m->name = name;
    imap_job_submit(&m->job);
}

void cmd_delete(struct imap_session *s, struct imap_command *cmd)
{
    char *name;
    if (!one_mailbox(s, cmd, "DELETE takes a mailbox name", &name))
        return;
    char canonical[STORE_NAME_MAX + 1];
    if (s->selected && store_name_check(name, canonical, sizeof(canonical)) == STORE_OK &&
        strcmp(store_mailbox_name(s->selected), canonical) == 0) {
        imap_reply(s, cmd->tag, "NO",
                   "[INUSE] The mailbox is selected in this session; CLOSE or UNSELECT it first");
        free(name);
        return;
    }
    struct mailbox_job *m = mailbox_job(s, cmd->tag, delete_work);
    m->name = name;
    imap_job_submit(&m->job);
}

void cmd_rename(struct imap_session *s, struct imap_command *cmd)
{
    char *from, *to;
    if (cmd->n_args != 2) {
        imap_bad_command(s, cmd->tag, "RENAME takes two mailbox names");
        return;
    }
    if (!imap_mailbox_arg(s, cmd->tag, &cmd->args[0], &from))
        return;
    if (!imap_mailbox_arg(s, cmd->tag, &cmd->args[1], &to)) {
        free(from);
        return;
    }
    if (!imap_need_store(s, cmd->tag)) {
        free(from);
        free(to);
        return;
    }
    if (touches_selected(s, from)) {
        imap_reply(s, cmd->tag, "NO",
                   "[INUSE] The mailbox (or one below it) is selected in this session; CLOSE or "
                   "UNSELECT it first");
        free(from);
        free(to);
        return;
    }
    struct mailbox_job *m = mailbox_job(s, cmd->tag, rename_work);
    m->name = from;
    m->name2 = to;
    imap_job_submit(&m->job);
}

static void subscription(struct imap_session *s, struct imap_command *cmd, bool unsubscribe)
{
    char *name;
    if (!one_mailbox(s, cmd,
                     unsubscribe ? "UNSUBSCRIBE takes a mailbox name"
                                 : "SUBSCRIBE takes a mailbox name",
                     &name))
        return;
    struct mailbox_job *m = mailbox_job(s, cmd->tag, subscribe_work);
    m->name = name;
    m->readonly = unsubscribe;
    imap_job_submit(&m->job);
}

void cmd_subscribe(struct imap_session *s, struct imap_command *cmd)
{
    subscription(s, cmd, false);
}

void cmd_unsubscribe(struct imap_session *s, struct imap_command *cmd)
{
    subscription(s, cmd, true);
}

/* ---- LIST / LSUB ---- */

/* Names are matched as UTF-8 (the pattern too), and sent as the store keeps them. */
static bool name_matches(const struct list_pattern *p, const char *mutf7)
{
    char *utf8 = NULL;
    const char *error;
    bool match = mutf7_decode(mutf7, strlen(mutf7), &utf8, &error) ? list_pattern_match(p, utf8)
                                                                   : list_pattern_match(p, mutf7);
    free(utf8);
    return match;
}

static void out_list_line(struct imap_output *o, const char *what, unsigned attrs,
                          enum store_special special, const char *name)
{
    static const char *const specials[] = {
        [STORE_SPECIAL_SENT] = "\\Sent",       [STORE_SPECIAL_DRAFTS] = "\\Drafts",
        [STORE_SPECIAL_TRASH] = "\\Trash",     [STORE_SPECIAL_JUNK] = "\\Junk",
        [STORE_SPECIAL_ARCHIVE] = "\\Archive",
    };
    const char *parts[4];
    size_t n = 0;
    if (attrs & STORE_LIST_NOSELECT)
        parts[n++] = "\\Noselect";
    if (attrs & STORE_LIST_HASCHILDREN)
        parts[n++] = "\\HasChildren";
    else if (attrs & STORE_LIST_HASNOCHILDREN)
        parts[n++] = "\\HasNoChildren";
    if (special > STORE_SPECIAL_NONE && (size_t)special < ARRAY_LEN(specials))
        parts[n++] = specials[special];
    out_printf(o, "* %s (", what);
    for (size_t i = 0; i < n; i++)
        out_printf(o, "%s%s", i ? " " : "", parts[i]);
    out_printf(o, ") \"%c\" ", IMAP_DELIMITER);
    out_astring(o, name);
    out_add(o, "\r\n", 2);
}

static void list_work(struct imap_job *j)
{
    struct mailbox_job *m = (struct mailbox_job *)j;
    struct store_folder *folders;
    size_t n;
    enum store_status st = store_list(j->account, &folders, &n);
    if (st != STORE_OK) {
        job_store_error(j, st, "LIST", false);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (name_matches(m->pattern, folders[i].name))
            out_list_line(&j->out, "LIST", folders[i].attrs, folders[i].special, folders[i].name);
    store_list_free(folders, n);
    ok_after_sync(j, "LIST completed");
}

static const struct store_folder *find_folder(const struct store_folder *f, size_t n,
                                              const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(f[i].name, name) == 0)
            return &f[i];
    return NULL;
}

static bool in_list(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static void lsub_work(struct imap_job *j)
{
    struct mailbox_job *m = (struct mailbox_job *)j;
    struct store_folder *folders;
    size_t n, nsubs;
    char **subs;
    enum store_status st = store_list(j->account, &folders, &n);
    if (st != STORE_OK) {
        job_store_error(j, st, "LSUB", false);
        return;
    }
    st = store_subscriptions(j->account, &subs, &nsubs);
    if (st != STORE_OK) {
        store_list_free(folders, n);
        job_store_error(j, st, "LSUB", false);
        return;
    }
    char **parents = NULL; /* already sent as \Noselect */
    size_t nparents = 0;
    for (size_t i = 0; i < nsubs; i++) {
        const struct store_folder *f = find_folder(folders, n, subs[i]);
        if (name_matches(m->pattern, subs[i])) {
            unsigned attrs = f ? f->attrs & STORE_LIST_NOSELECT : STORE_LIST_NOSELECT;
            out_list_line(&j->out, "LSUB", attrs, STORE_SPECIAL_NONE, subs[i]);
            continue;
        }
        /* RFC 3501 §6.3.9: "%" matching a parent of a subscribed name lists the parent as
         * \Noselect when it is not subscribed itself */
        for (char *slash = strchr(subs[i], IMAP_DELIMITER); slash;
             slash = strchr(slash + 1, IMAP_DELIMITER)) {
            char *parent = xstrndup(subs[i], (size_t)(slash - subs[i]));
            if (!in_list(subs, nsubs, parent) && !in_list(parents, nparents, parent) &&
                name_matches(m->pattern, parent)) {
                out_list_line(&j->out, "LSUB", STORE_LIST_NOSELECT, STORE_SPECIAL_NONE, parent);
                parents = xrealloc(parents, (nparents + 1) * sizeof(*parents));
                parents[nparents++] = parent;
            } else {
                free(parent);
            }
        }
    }
    store_strings_free(parents, nparents);
    store_strings_free(subs, nsubs);
    store_list_free(folders, n);
    ok_after_sync(j, "LSUB completed");
}

/* A LIST argument (list-mailbox: atom with wildcards, or string) decoded to UTF-8. */
static bool list_arg(const struct imap_arg *a, char **out)
{
    if (!imap_arg_is_astring(a) || memchr(a->str, '\0', a->len))
        return false;
    const char *error;
    if (mutf7_decode(a->str, a->len, out, &error))
        return true;
    *out = xstrndup(a->str, a->len); /* not modified UTF-7: matched as it is */
    return true;
}

static void list_or_lsub(struct imap_session *s, struct imap_command *cmd, bool lsub)
{
    if (cmd->n_args != 2 || cmd->args[0].type == IMAP_ARG_LIST) {
        imap_bad_command(s, cmd->tag,
                         lsub ? "LSUB takes a reference and a mailbox pattern"
                              : "LIST takes a reference and a mailbox pattern (LIST-EXTENDED is "
                                "not supported)");
        return;
    }
    char *reference, *pattern;
    if (!list_arg(&cmd->args[0], &reference)) {
        imap_bad_command(s, cmd->tag, "Invalid reference name");
        return;
    }
    if (!list_arg(&cmd->args[1], &pattern)) {
        free(reference);
        imap_bad_command(s, cmd->tag, "Invalid mailbox pattern");
        return;
    }
    if (pattern[0] == '\0') {
        /* RFC 3501 §6.3.8: the hierarchy delimiter and the root */
        if (!lsub)
            conn_printf(s->conn, "* LIST (\\Noselect) \"%c\" \"\"\r\n", IMAP_DELIMITER);
        imap_reply(s, cmd->tag, "OK", lsub ? "LSUB completed" : "LIST completed");
        free(reference);
        free(pattern);
        return;
    }
    char *combined = list_pattern_combine(reference, pattern, IMAP_DELIMITER);
    free(reference);
    free(pattern);
    const char *error = NULL;
    struct list_pattern *p = list_pattern_new(combined, IMAP_DELIMITER, &error);
    free(combined);
    if (p == NULL) {
        imap_bad_command(s, cmd->tag, error);
        return;
    }
    if (!imap_need_store(s, cmd->tag)) {
        list_pattern_free(p);
        return;
    }
    struct mailbox_job *m = mailbox_job(s, cmd->tag, lsub ? lsub_work : list_work);
    m->pattern = p;
    imap_job_submit(&m->job);
}

void cmd_list(struct imap_session *s, struct imap_command *cmd)
{
    list_or_lsub(s, cmd, false);
}

void cmd_lsub(struct imap_session *s, struct imap_command *cmd)
{
    list_or_lsub(s, cmd, true);
}

/* ---- STATUS ---- */

static void status_work(struct imap_job *j)
{
    struct mailbox_job *m = (struct mailbox_job *)j;
    struct store_mailbox_status st;
    enum store_status rc = store_status(j->account, m->name, &st);
    if (rc != STORE_OK) {
        job_store_error(j, rc, "STATUS", false);
        return;
    }
    static const unsigned order[] = {STATUS_MESSAGES,    STATUS_RECENT, STATUS_UIDNEXT,
                                     STATUS_UIDVALIDITY, STATUS_UNSEEN, STATUS_HIGHESTMODSEQ};
    out_printf(&j->out, "* STATUS ");
    out_astring(&j->out, m->name);
    out_printf(&j->out, " (");
    bool first = true;
    for (size_t i = 0; i < ARRAY_LEN(order); i++) {
        if (!(m->items & order[i]))
            continue;
        unsigned long long v = order[i] == STATUS_MESSAGES      ? st.messages
                               : order[i] == STATUS_RECENT      ? st.recent
                               : order[i] == STATUS_UIDNEXT     ? st.uidnext
                               : order[i] == STATUS_UIDVALIDITY ? st.uidvalidity
                               : order[i] == STATUS_UNSEEN      ? st.unseen
                                                                : st.highest_modseq;
        out_printf(&j->out, "%s%s %llu", first ? "" : " ", status_item_name(order[i]), v);
        first = false;
    }
    out_printf(&j->out, ")\r\n");
    ok_after_sync(j, "STATUS completed");
}

void cmd_status(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->n_args != 2) {
        imap_bad_command(s, cmd->tag, "STATUS takes a mailbox name and a list of items");
        return;
    }
    unsigned items;
    const char *error = NULL;
    if (!status_parse(&cmd->args[1], &items, &error)) {
        imap_bad_command(s, cmd->tag, error);
        return;
    }
    if (items & (STATUS_SIZE | STATUS_DELETED)) {
        imap_bad_command(s, cmd->tag, "STATUS SIZE and DELETED are not supported");
        return;
    }
    char *name;
    if (!imap_mailbox_arg(s, cmd->tag, &cmd->args[0], &name))
        return;
    if (!imap_need_store(s, cmd->tag)) {
        free(name);
        return;
    }
    struct mailbox_job *m = mailbox_job(s, cmd->tag, status_work);
    m->name = name;
    m->items = items;
    imap_job_submit(&m->job);
}

/* ---- NAMESPACE / ENABLE ---- */

void cmd_namespace(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->n_args != 0) {
        imap_bad_command(s, cmd->tag, "Unexpected arguments");
        return;
    }
    /* one personal namespace, no other users' or shared ones (RFC 2342) */
    conn_printf(s->conn, "* NAMESPACE ((\"\" \"%c\")) NIL NIL\r\n", IMAP_DELIMITER);
    imap_reply(s, cmd->tag, "OK", "NAMESPACE completed");
}

void cmd_enable(struct imap_session *s, struct imap_command *cmd)
{
    unsigned requested;
    const char *error = NULL;
    if (!enable_parse(cmd->args, cmd->n_args, &requested, &error)) {
        imap_bad_command(s, cmd->tag, error);
        return;
    }
    /* None of CONDSTORE, QRESYNC, UTF8=ACCEPT, IMAP4rev2 is offered, so none is enabled; the
     * untagged ENABLED lists what was (RFC 5161 §3.1). */
    conn_printf(s->conn, "* ENABLED\r\n");
    imap_reply(s, cmd->tag, "OK", "ENABLE completed");
}
