/* SASL exchanges: the password mechanisms (PLAIN, LOGIN) through GNU libgsasl, which parses the
 * client's messages (its validation callback only hands the credentials over); GSSAPI with the
 * Kerberos acceptor (src/auth/krb.c) and NTLM with an ntlm_auth helper (src/auth/helper.c).
 * The decision stays with the auth pipeline. Runs on io_threads: nothing here blocks; an NTLM
 * helper is asked on a worker while the exchange waits (lines that come meanwhile stay
 * buffered). */
#ifndef POSTERN_SASL_H
#define POSTERN_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "postern/auth.h"

struct sasl_exchange;

bool sasl_global_init(char *err, size_t errlen);
void sasl_global_deinit(void);

/* NULL if libgsasl has no server side for `mechanism`, or GSSAPI / NTLM are not configured. */
struct sasl_exchange *sasl_start(const char *mechanism);

enum sasl_step_result {
    SASL_STEP_CHALLENGE, /* send *challenge (base64, may be empty) and wait for a response */
    SASL_STEP_DONE,      /* the credentials are captured */
    SASL_STEP_INVALID,   /* malformed response (bad base64, wrong PLAIN layout, ...) */
};

/* `response` is base64 without CRLF, or NULL when the client sent no initial response.
 * *challenge is set (malloc'd) for SASL_STEP_CHALLENGE. */
enum sasl_step_result sasl_step(struct sasl_exchange *x, const char *response, char **challenge);

const char *sasl_authid(const struct sasl_exchange *x);
const char *sasl_authzid(const struct sasl_exchange *x); /* NULL when none was given */
const char *sasl_password(const struct sasl_exchange *x, size_t *len);

/* Wipes the captured password. */
void sasl_free(struct sasl_exchange *x);

struct auth_mech;
struct conn;

/* One step of an AUTHENTICATE (IMAP) or AUTH (POP3) exchange, shared by both protocols:
 * either sends the next "+ challenge" line and returns true (the next client line is the
 * response), or ends the exchange (freeing *x) and hands the outcome to the auth pipeline,
 * which calls `done` — then returns false. */
/* Takes the client's next line of a running exchange from the connection's input and acts on
 * it: a response goes to sasl_continue(); "*" cancels and an over-long line aborts (both free
 * *x and leave the answer to the protocol). */
enum sasl_line {
    SASL_LINE_NONE,      /* no complete line yet */
    SASL_LINE_HANDLED,   /* the exchange continues, or ended in the pipeline */
    SASL_LINE_CANCELLED, /* "*" */
    SASL_LINE_TOO_LONG,  /* more than 64 KiB without a line end */
};
enum sasl_line sasl_take_line(struct conn *c, void *session, struct sasl_exchange **x,
                              const struct auth_mech *m, auth_done_fn done);

bool sasl_continue(struct conn *c, void *session, struct sasl_exchange **x,
                   const struct auth_mech *m, const char *response,
                   void (*done)(void *session, struct auth_attempt *a,
                                const struct auth_result *r));

#endif
