/*
 * The delivery queue: the spool in <store>/queue and the scheduler that
 * delivers what is in it (local recipients into the store, remote ones
 * through the outbound SMTP client), with retries and delivery status
 * notifications (RFC 3464).
 *
 * Only this module writes the spool.  A front end (the SMTP server, the
 * webmail, the engine's own notices) hands a message over with a
 * queue_writer: write the message bytes, then commit with the envelope.
 * queue_writer_commit() returns only after the message file and its
 * envelope are fsynced and renamed into place (and the directory fsynced):
 * from then on the message survives a crash, and the SMTP server may send
 * its 250 with the returned queue id.  Commit blocks on disk I/O: call it
 * from the worker pool, never from an event loop.
 *
 * Threading: a struct queue is shared by all threads; writers are owned by
 * one thread at a time.
 */
#ifndef PETREL_QUEUE_H
#define PETREL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/xmalloc.h"

struct queue;
struct queue_writer;

/* RFC 3461 NOTIFY= flags; none given means the default (FAILURE,DELAY). */
#define QUEUE_NOTIFY_NEVER   0x01u
#define QUEUE_NOTIFY_SUCCESS 0x02u
#define QUEUE_NOTIFY_FAILURE 0x04u
#define QUEUE_NOTIFY_DELAY   0x08u

enum queue_ret { QUEUE_RET_DEFAULT, QUEUE_RET_FULL, QUEUE_RET_HDRS };

struct queue_recipient_spec {
	const char *address;      /* envelope recipient, as accepted (UTF-8 allowed with SMTPUTF8) */
	const char *orcpt;        /* RFC 3461 ORCPT, decoded ("rfc822;user@example.com"), or NULL */
	unsigned notify;          /* QUEUE_NOTIFY_* or 0 for the default */
};

struct queue_envelope_spec {
	const char *sender;       /* envelope sender; "" is the null sender <> */
	const char *envid;        /* RFC 3461 ENVID, decoded, or NULL */
	enum queue_ret ret;
	bool smtputf8;            /* SMTPUTF8 was given on MAIL FROM */
	bool body_8bit;           /* BODY=8BITMIME (or BINARYMIME) */
	const char *client_ip;    /* where it came from (for logs and Received:), or NULL when local */
	const char *helo;         /* the client's EHLO/HELO name, or NULL */
	const char *auth_user;    /* the authenticated user, or NULL */
	const struct queue_recipient_spec *recipients;
	size_t recipient_count;   /* >= 1 */
};

/* Starts a new message in the spool (a temporary file nobody else sees).
 * Returns 0, or -1 with *error_r (caller frees) — e.g. the disk is full:
 * the SMTP server answers 452 4.3.1. */
int queue_writer_new(struct queue *queue, struct queue_writer **writer_r, char **error_r)
	PETREL_MUST_CHECK;
/* Appends message bytes (RFC 5322 text with CRLF line ends, already
 * un-dot-stuffed).  Returns 0, or -1 with *error_r (caller frees). */
int queue_writer_write(struct queue_writer *writer, const void *data, size_t len, char **error_r)
	PETREL_MUST_CHECK;
/* Makes the message durable and hands it to the scheduler.  On success
 * the writer is freed, *writer set to NULL, and *queue_id_r (caller
 * frees) names the message for logs and the 250 reply.  On failure
 * nothing is left in the spool and the writer is freed too: the caller
 * answers with a temporary error (451 4.3.0). */
int queue_writer_commit(struct queue_writer **writer, const struct queue_envelope_spec *envelope,
			char **queue_id_r, char **error_r) PETREL_MUST_CHECK;
/* Drops an uncommitted message (client gave up, RSET, size limit). */
void queue_writer_abort(struct queue_writer **writer);
/* Bytes written so far. */
uint64_t queue_writer_size(const struct queue_writer *writer);

/* ---- the queue itself (queue_sched.c) ---- */

struct cfg;
struct store;

struct queue_params {
	const char *store_dir;    /* the spool is <store_dir>/queue (created if missing) */
	struct cfg *cfg;          /* settings snapshot; the queue takes its own reference */
	struct store *store;      /* local delivery; NULL: local recipients are deferred
				   * (4.3.0) until a store is given */
};

/* Creates the queue: prepares <store>/queue (tmp/, corrupt/), reads every
 * envelope in the spool (a crash or restart leaves the spool as it was:
 * uncommitted temp files are removed, a message file without its envelope
 * was never acknowledged and is removed, a damaged envelope is moved with
 * its message to queue/corrupt/ and logged), but delivers nothing yet.
 * Returns 0, or -1 with *error_r (caller frees). */
int queue_new(const struct queue_params *params, struct queue **queue_r, char **error_r)
	PETREL_MUST_CHECK;
/* Starts the delivery threads (after the privilege drop). */
void queue_start(struct queue *queue);
/* Applies a new settings snapshot (reload): limits and intervals take
 * effect for the next pick; more delivery threads are started when
 * queue/max-deliveries grew. */
void queue_reconfigure(struct queue *queue, struct cfg *cfg);
/* Stops the threads (deliveries in flight finish their current SMTP
 * transaction or time out), frees everything.  The spool stays. */
void queue_free(struct queue **queue);

/* The engine's queue, for front ends and the admin API (borrowed; valid
 * from queue_set_current(q) until queue_set_current(NULL)). */
struct queue *queue_current(void);
void queue_set_current(struct queue *queue);

/* Messages in the queue (status). */
size_t queue_count(struct queue *queue);

/* ---- management (petrelctl queue ..., the admin API) ---- */

struct json_t;
/* An array with one object per message: id, sender, recipients (address,
 * state, attempts, status, diagnostic, next attempt), size, status
 * ("active", "deferred", "queued"), created, next attempt, Message-ID,
 * envid.  New reference. */
struct json_t *queue_list_json(struct queue *queue);
/* Deletes one message (no notice is sent); 0, or -1 when there is no such
 * message. */
int queue_delete(struct queue *queue, const char *id) PETREL_MUST_CHECK;
/* Deletes every message; returns how many. */
size_t queue_delete_all(struct queue *queue);
/* Makes one message (id) or all (NULL) due now; returns how many. */
size_t queue_run(struct queue *queue, const char *id);
/* Waits until nothing is due now and no delivery runs, or timeout_ms;
 * true when idle.  For tests and benchmarks. */
bool queue_wait_idle(struct queue *queue, int timeout_ms);

#endif
