/* A client connection: non-blocking socket, optional TLS, buffered input/output and a timer.
 * Everything here runs on the connection's own io_thread. Protocol modules see only this API;
 * they never touch sockets or GnuTLS. */
#ifndef POSTERN_CONN_H
#define POSTERN_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "postern/addr.h"
#include "postern/config.h"

struct conn;
struct evbuffer;
struct io_thread;
struct worker_pool;

/* What a protocol module provides. */
struct protocol_ops {
    /* The connection is ready for the greeting (after the handshake on implicit TLS). Returns
     * the protocol's session state. */
    void *(*open)(struct conn *c);
    /* New bytes are in conn_input(c). */
    void (*input)(void *session);
    /* The STARTTLS/STLS handshake completed. */
    void (*tls_ready)(void *session);
    /* The timer set with conn_set_timeout() expired. */
    void (*timeout)(void *session);
    /* The server is stopping: say goodbye (the connection is closed afterwards). */
    void (*shutdown)(void *session);
    void (*free)(void *session);
};

struct evbuffer *conn_input(struct conn *c);
void conn_write(struct conn *c, const void *data, size_t len);
/* Takes one LF-terminated line from the input: *line is malloc'd, NUL-terminated, without
 * CR LF (the caller wipes and frees it). 0: no complete line yet; -1: no line end within
 * `max` bytes (what is buffered is discarded); 1: a line. */
int conn_take_line(struct conn *c, size_t max, char **line, size_t *len);
void conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Send what is queued, then close. */
void conn_close(struct conn *c, const char *why);
bool conn_is_closing(const struct conn *c);
/* Queue the response (already written), discard any input pipelined behind the command, and
 * start the TLS handshake once the response has left in cleartext. */
void conn_starttls(struct conn *c);
bool conn_tls_active(const struct conn *c);
/* Stop or resume delivering input (e.g. while a worker job for this session runs). */
void conn_pause_input(struct conn *c, bool pause);
void conn_set_timeout(struct conn *c, unsigned seconds);

/* After a successful login: take one of `max` session slots of the account (keyed by a
 * rename-proof id); false when all are taken. The slot is released when the connection ends. */
bool conn_claim_account(struct conn *c, const char *account_key, unsigned max);
/* After a successful login: who the session belongs to (sAMAccountName, DN) and the SASL
 * mechanism (or LOGIN-COMMAND), for posternctl sessions and kick --account. */
void conn_set_identity(struct conn *c, const char *account, const char *account_dn,
                       const char *mechanism);

const struct listener_config *conn_listener(const struct conn *c);
const struct config *conn_config(const struct conn *c);
const struct protocol_settings *conn_protocol_settings(const struct conn *c);
const char *conn_peer_text(const struct conn *c);
const struct ip_addr *conn_peer(const struct conn *c);
unsigned conn_peer_port(const struct conn *c);
uint64_t conn_id(const struct conn *c);
const char *conn_tls_description(const struct conn *c, char *buf, size_t len);
/* RFC 5929 "tls-server-end-point" (the hash of our certificate) or RFC 9266 "tls-exporter"
 * channel binding data of the connection's TLS session, for SASL mechanisms that bind to it
 * (GSSAPI). *data is malloc'd; false without TLS or when GnuTLS cannot give it. */
bool conn_tls_channel_binding(const struct conn *c, bool exporter, unsigned char **data,
                              size_t *len);

/* Run `work` on the worker pool and `done` back on this connection's thread. The connection
 * and its session stay allocated until `done` has run, even if the client goes away meanwhile
 * (check conn_is_closing there). False when the pool's queue is full. */
bool conn_submit(struct conn *c, void (*work)(void *), void (*done)(void *), void *arg);
/* The same on the store's own pool (mailbox commands), so that a slow directory that keeps
 * the authentication workers busy never delays sessions already logged in. */
bool conn_submit_store(struct conn *c, void (*work)(void *), void (*done)(void *), void *arg);

/* Appends a whole buffer (emptied) to the output, in order with everything else written. */
void conn_write_buffer(struct conn *c, struct evbuffer *buf);
/* A range of a file to send (conn_write_file). */
struct conn_file_range {
    uint64_t offset, length; /* bytes of the file */
    bool crlf;        /* a LF without a CR before it is sent as CRLF (IMAP and POP3 speak CRLF;
                         Maildir files often hold LF) */
    bool dot_stuff;   /* POP3 (RFC 1939 §3): a line that begins with '.' gets another */
    bool nul_as_0x80; /* IMAP: a NUL byte goes out as 0x80 (a literal may not hold NUL,
                         RFC 3501 §4.3; what src/mime's copies and Dovecot send) */
    uint64_t skip;    /* of the bytes so produced, drop the first `skip` ... */
    uint64_t limit;   /* ... and send exactly `limit` (an IMAP literal's announced length), or
                         CONN_FILE_ALL: whatever the range produces */
};
#define CONN_FILE_ALL UINT64_MAX

/* Sends a range of the file fd (dup'ed; the caller keeps its own) as the socket drains, a
 * chunk at a time, in order with what is written before and after: a 50 MB message never
 * sits in memory. If the file delivers fewer bytes than an exact `limit` promised, the
 * connection is dropped. False if fd could not be duplicated. */
bool conn_write_file(struct conn *c, int fd, const struct conn_file_range *range);
/* Run fn(arg) on this connection's thread once the output written so far has nearly left:
 * no file range is pending and less than a chunk is buffered (at once if that is so now, or
 * once the connection has died). For producers that stream in batches, so that memory stays
 * bounded whatever the client's speed. One waiter at a time; the connection and its session
 * stay allocated until fn has run (check conn_is_closing in fn). */
void conn_when_drained(struct conn *c, void (*fn)(void *), void *arg);
/* A one-shot readability watch of fd (not owned) on this connection's thread: fn(arg) runs
 * once when fd is readable; conn_watch_arm() waits again. Free it before fd is closed and at
 * the latest when the session is freed. */
struct conn_watch;
struct conn_watch *conn_watch_new(struct conn *c, int fd, void (*fn)(void *), void *arg);
void conn_watch_arm(struct conn_watch *w);
void conn_watch_free(struct conn_watch *w);
/* The I/O thread the connection runs on, for what that thread's sessions share (IDLE's
 * inotify instance). */
struct io_thread *conn_io_thread(const struct conn *c);
/* Run fn(arg) on this connection's thread after `ms` milliseconds; the connection and its
 * session stay allocated until then (check conn_is_closing in fn). */
void conn_defer(struct conn *c, unsigned ms, void (*fn)(void *), void *arg);

#endif
