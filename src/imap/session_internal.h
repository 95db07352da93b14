/* What the files of the IMAP session share: the session, the command table's handlers, and
 * store jobs (work on a store worker, response text built there, written on the I/O thread). */
#ifndef POSTERN_IMAP_SESSION_INTERNAL_H
#define POSTERN_IMAP_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "postern/conn.h"
#include "postern/imap.h"
#include "postern/imap_args.h"
#include "postern/store.h"

struct evbuffer;
struct sasl_exchange;
struct auth_mech;

#define IMAP_DELIMITER '/'

enum imap_state {
    IMAP_NOT_AUTHENTICATED = 1 << 0,
    IMAP_AUTHENTICATED = 1 << 1,
    IMAP_SELECTED = 1 << 2,
};

struct imap_append; /* append.c */
struct imap_idle;   /* idle.c */

struct imap_session {
    struct conn *conn;
    enum imap_state state;
    struct imap_reader reader;
    unsigned bad_commands;
    bool waiting; /* a command waits for the auth pipeline; input is paused */
    unsigned auth_failures;
    char *waiting_tag;
    struct sasl_exchange *sasl; /* AUTHENTICATE in progress: lines are SASL responses */
    const struct auth_mech *sasl_mech;

    /* After login. The handles are lent to one store job at a time (`busy`), and touched by
     * nothing else meanwhile; they are closed when the session is freed, which happens only
     * once no job is outstanding. */
    struct store_account *account; /* NULL: no MailboxRoot, every mailbox command refused */
    struct store_mailbox *selected;
    bool busy;                  /* a command runs: its job, its output, APPEND or IDLE */
    struct imap_append *append; /* APPEND whose message is streaming in */
    struct imap_idle *idle;     /* IDLE in progress: input lines are "DONE" */
    unsigned idle_generation;   /* counts IDLE commands: timers of an earlier one are stale */
};

/* ---- session.c ---- */
const struct protocol_settings *imap_settings(const struct imap_session *s);
void imap_reply(struct imap_session *s, const char *tag, const char *status, const char *text);
void imap_bad_command(struct imap_session *s, const char *tag, const char *why);
/* The command has ended: re-arm the idle timer and go on with buffered input. */
void imap_command_done(struct imap_session *s);
/* Mailbox commands need a store; false (and NO [UNAVAILABLE] sent) without one. */
bool imap_need_store(struct imap_session *s, const char *tag);
uint64_t imap_max_message_size(const struct imap_session *s);

/* ---- job.c: output built on a worker ---- */

/* Response bytes in order: text, and ranges of message files streamed from disk. */
struct imap_output {
    struct out_segment {
        struct evbuffer *text; /* or */
        int fd;                /* >= 0: a file range (fd owned) */
        struct conn_file_range range;
    } * segs;
    size_t n, cap;
};
struct evbuffer *out_text(struct imap_output *o);
void out_printf(struct imap_output *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void out_add(struct imap_output *o, const void *data, size_t len);
/* A range of fd (duplicated; the caller keeps its own). False if it could not be. */
bool out_file(struct imap_output *o, int fd, const struct conn_file_range *range);
size_t out_text_length(const struct imap_output *o);
size_t out_files(const struct imap_output *o);
/* On the I/O thread: hand everything to the connection, in order; o is emptied. */
void out_flush(struct conn *c, struct imap_output *o);
void out_free(struct imap_output *o);

/* An astring as IMAP sends a mailbox name: quoted, or a literal for 8-bit or CR/LF. */
void out_astring(struct imap_output *o, const char *s);
/* (\Seen \Answered ... keyword ...), \Recent when recent. */
void out_flags(struct imap_output *o, unsigned flags, const char *keywords, bool recent);

struct imap_job;
typedef void (*imap_job_fn)(struct imap_job *j);

/* One command's work on the store pool. The worker may use the lent handles and the job's
 * own fields, never the session or the connection. */
struct imap_job {
    struct imap_session *s; /* for `done`, on the I/O thread */
    uint64_t conn_id;       /* for log lines on the worker */
    char *tag;
    struct store_account *account; /* lent */
    struct store_mailbox *mailbox; /* lent: the selected mailbox, or NULL */
    struct imap_output out;
    bool stale;          /* the selected mailbox is gone: the session ends (BYE) */
    bool fatal;          /* the response could not be completed: the connection ends */
    imap_job_fn work;    /* on a worker */
    imap_job_fn finish;  /* on the I/O thread after the output was queued, or NULL */
    imap_job_fn release; /* frees the command's own data, or NULL */
    bool keep;           /* set by finish: the command goes on (batches); do not free */
};

/* A job for the session's current command; `size` is the size of the structure that embeds
 * struct imap_job as its first member. */
void *imap_job_new(struct imap_session *s, const char *tag, size_t size, imap_job_fn work);
/* Submits the job and marks the session busy until it is done. On a full queue the command
 * is refused (NO [UNAVAILABLE]), the job freed and false returned. */
bool imap_job_submit(struct imap_job *j);
/* Submits again (the next batch of a command that goes on). */
void imap_job_resubmit(struct imap_job *j);
void imap_job_free(struct imap_job *j);

/* On the worker: the untagged responses for what changed in the selected mailbox since the
 * last sync (RFC 3501 §7.4.1: EXPUNGE only when allow_expunges). */
void job_sync(struct imap_job *j, bool allow_expunges);
/* On the worker: "tag NO [code] text" for a store failure; `what` names the operation for the
 * log; trycreate: a missing destination is [TRYCREATE] (COPY, APPEND). */
void job_store_error(struct imap_job *j, enum store_status st, const char *what, bool trycreate);
void job_reply(struct imap_job *j, const char *status, const char *text);

/* Message numbers of the selected mailbox (on the worker). The set must be resolved here,
 * where the view is; a sequence number beyond the view is an error (false, *error set). */
bool job_resolve_set(struct imap_job *j, struct seqset *set, bool uid, uint32_t **uids,
                     size_t *count, const char **error);
/* "1:3,5" for the UIDs src (ascending) and their counterparts dst, in the same order and
 * skipping zeros (COPYUID, RFC 4315). */
void out_uid_pairs(struct imap_output *o, const uint32_t *src, const uint32_t *dst, size_t n);

/* ---- mailbox name of an argument: modified UTF-7 as the store keeps it ---- */
bool imap_mailbox_arg(struct imap_session *s, const char *tag, const struct imap_arg *arg,
                      char **name);

/* ---- command handlers (one file per group) ---- */
typedef void imap_command_fn(struct imap_session *s, struct imap_command *cmd);
/* mailboxes.c */
imap_command_fn cmd_select, cmd_examine, cmd_create, cmd_delete, cmd_rename, cmd_subscribe,
    cmd_unsubscribe, cmd_list, cmd_lsub, cmd_status, cmd_namespace, cmd_enable, cmd_check,
    cmd_close, cmd_unselect;
void imap_noop_selected(struct imap_session *s, const char *tag);
/* fetch.c */
imap_command_fn cmd_fetch;
void imap_fetch(struct imap_session *s, const char *tag, bool uid, const struct imap_arg *set,
                struct fetch_request *req);
/* messages.c */
imap_command_fn cmd_store, cmd_expunge, cmd_copy, cmd_move, cmd_search, cmd_uid;
/* append.c */
imap_command_fn cmd_append;
/* A literal is announced after login: true when APPEND takes it (streamed). */
bool imap_append_literal(struct imap_session *s);
void imap_append_data(struct imap_session *s, const char *data, size_t len);
/* Whether streamed data can be taken now (false: wait for a write to finish). */
bool imap_append_ready(const struct imap_session *s);
/* The command line after the literal has ended. */
void imap_append_end(struct imap_session *s);
/* The command cannot end well (an over-long line after the message): nothing is stored and
 * the APPEND is answered with status and text. */
void imap_append_fail(struct imap_session *s, const char *status, const char *text);
void imap_append_free(struct imap_session *s);
/* idle.c */
imap_command_fn cmd_idle;
void imap_idle_input(struct imap_session *s);
void imap_idle_free(struct imap_session *s);

#endif
