/*
 * The SASL glue every line-based front end (SMTP AUTH, IMAP AUTHENTICATE
 * and LOGIN, POP3 AUTH and USER/PASS) shares, so that each keeps only its
 * protocol's framing and reply codes.
 *
 * An auth_session is one connection's SASL server (auth/sasl.h) with what
 * it borrows: the directory snapshot and its backend, a configuration
 * reference and the local address.  auth_session_submit() runs one start
 * or step on the worker pool (PLAIN and LOGIN check a yescrypt hash, slow
 * on purpose): the engine call, the strict base64 decoding of text
 * responses, and on an outcome auth_limiter_conclude (success or failure
 * counted, failures to security.log, the delay the failure reply must
 * wait).  While a step runs it owns the session, so a client that
 * disconnects meanwhile cannot free it under the worker; the front end
 * takes it back in its done callback.  Client responses are wiped from
 * memory as soon as the engine has read them, and never logged.
 */
#ifndef PETREL_AUTH_SESSION_H
#define PETREL_AUTH_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/sasl.h"
#include "core/cfg.h"

struct conn;
struct event_base;
struct net;
struct worker_pool;

struct auth_session_params {
	struct cfg *cfg;             /* referenced for the session's life */
	/* SASL service name (struct sasl_params): "smtp", "imap", "pop". */
	const char *service;
	/* The service as security.log names it: "smtp", "imap", "pop3". */
	const char *log_service;
	const char *local_ip;        /* text form; NULL or "" when unknown */
	const char *peer_ip;         /* the client, for the limiter and the log */
	/* The connection, found again by id when a step is done (a job
	 * never holds a pointer to it: STYLE.md section 3). */
	struct net *net;
	uint64_t conn_id;
	bool secure;                 /* TLS or loopback */
};

struct auth_session;

/* A session on the current directory snapshot; NULL when no directory is
 * loaded (the front end answers with a temporary failure). */
struct auth_session *auth_session_new(const struct auth_session_params *params);
/* Ends any exchange (clearing secrets) and frees; NULLs *sessp. */
void auth_session_free(struct auth_session **sessp);

/* Whether ip is locked out by the shared limiter (auth/auth_limiter.h).
 * If so, writes the security.log line under log_category
 * ("conn=N ip=IP login refused: address locked out for Ss") and returns
 * true: the front end refuses the command without a password check. */
bool auth_session_ip_locked(const struct cfg *cfg, const char *log_category, uint64_t conn_id,
			    const char *ip);

/* One start or step of an exchange. */
struct auth_step_request {
	bool start;                  /* start (mech names the mechanism), else a step */
	/* start only: data is the raw initial response (IMAP LOGIN, POP3
	 * PASS made into PLAIN), not base64 text */
	bool raw;
	const char *mech;
	/* start: the initial response (NULL: none; "=": empty); step: the
	 * client's line, "*" aborting.  Copied. */
	const void *data;
	size_t len;
};

/* A step's outcome, handed to the done callback on the connection's
 * loop.  Front ends read the public fields and may steal text and
 * identity (set them NULL); the step is freed after the callback. */
struct auth_step {
	enum sasl_status status;     /* after the limiter's verdict */
	enum sasl_failure failure;   /* FAILURE only */
	int64_t delay_ms;            /* FAILURE: hold the reply this long */
	char *text;                  /* CONTINUE: the challenge in base64 */
	char *identity;              /* SUCCESS: the user's address */
	const char *mech_name;       /* "PLAIN", ...; "?" when none was valid */
	/* private to auth_session.c */
	struct auth_session *session;
	struct auth_step_request req;
	char *data;
	void (*on_success)(struct auth_step *step, void *ctx);
	void (*done)(struct auth_step *step, struct conn *c, void *ctx);
	void *ctx;
};

/* Gives the session back to the front end (done callback); NULL when it
 * was already taken. */
struct auth_session *auth_step_take_session(struct auth_step *step);

enum auth_submit_result {
	AUTH_SUBMIT_QUEUED = 0,
	AUTH_SUBMIT_UNAVAILABLE = -1,   /* no directory loaded */
	AUTH_SUBMIT_BUSY = -2,          /* the worker pool refused the job */
};

/*
 * Runs req on pool for *sessp (created from params first when NULL),
 * which the step then owns (*sessp becomes NULL).  On the worker, after a
 * SUCCESS, on_success(step, ctx) (may be NULL) does the front end's own
 * slow work (opening the user's store).  Then done(step, c, ctx) runs
 * on base's loop, c the connection or NULL when it has closed meanwhile;
 * it may take the session back (else it is freed with the step) and owns
 * ctx.  On an error nothing was queued: *sessp is left as
 * it was (or NULL), ctx untouched, and the front end answers with a
 * temporary failure.
 */
enum auth_submit_result auth_session_submit(struct auth_session **sessp,
					    const struct auth_session_params *params,
					    struct worker_pool *pool, struct event_base *base,
					    const struct auth_step_request *req,
					    void (*on_success)(struct auth_step *step, void *ctx),
					    void (*done)(struct auth_step *step, struct conn *c, void *ctx),
					    void *ctx)
	PETREL_MUST_CHECK;

/* The same step, synchronously on the calling thread (tests, and front
 * ends already on a worker).  Returns the step, to free with
 * auth_step_free; the session is in step->session until taken. */
struct auth_step *auth_session_run(struct auth_session **sessp,
				   const struct auth_step_request *req);
void auth_step_free(struct auth_step **stepp);

#endif
