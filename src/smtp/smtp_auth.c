/*
 * SMTP AUTH (RFC 4954): the protocol's framing and reply codes around the
 * shared SASL glue of auth/auth_session.h.
 *
 * The mechanisms offered are sasl_mechanisms_offered(): PLAIN and LOGIN
 * only over TLS or from loopback.  Every start and step runs on the worker
 * pool through auth_session_submit (the engine call, and the limiter's
 * verdict: counting, security.log, the delay a failure reply must wait).
 * While a step runs it owns the SASL session, so a client that
 * disconnects meanwhile cannot free it under the worker.
 */
#include "smtp/smtp.h"
#include "smtp/smtp_private.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "auth/auth_session.h"
#include "auth/sasl.h"
#include "core/cfg.h"
#include "core/log.h"

#define SMTP_LOG "smtp"

static bool secure(const struct smtp_session *s)
{
	return s->conn->tls_active || s->conn->peer_is_loopback;
}

char *smtp_auth_mechanisms(const struct smtp_session *s)
{
	return sasl_mechanisms_offered(&s->conn->cfg->s, secure(s));
}

void smtp_sasl_free(struct auth_session **sasl)
{
	auth_session_free(sasl);
}

static void sasl_params(struct smtp_session *s, struct auth_session_params *params)
{
	*params = (struct auth_session_params){
		.cfg = s->conn->cfg,
		.service = "smtp",
		.log_service = "smtp",
		.local_ip = s->conn->local_ip,
		.peer_ip = s->conn->peer_ip,
		.net = smtp_globals.net,
		.conn_id = s->conn->id,
		.secure = secure(s),
	};
}

static const char *failure_reply(enum sasl_failure failure)
{
	switch (failure) {
	case SASL_FAIL_MECHANISM:
		return "504 5.5.4 Error: unrecognized authentication type";
	case SASL_FAIL_ENCRYPTION:
		return "538 5.7.11 Error: encryption required for requested authentication mechanism";
	case SASL_FAIL_SYNTAX:
		return "501 5.5.2 Error: cannot decode response";
	case SASL_FAIL_ABORTED:
		return "501 5.0.0 Error: authentication aborted";
	case SASL_FAIL_TEMPORARY:
		return "454 4.7.0 Error: temporary authentication failure";
	case SASL_FAIL_STATE:
		return "503 5.5.1 Error: no authentication in progress";
	case SASL_FAIL_CREDENTIALS:
	default:
		return "535 5.7.8 Error: authentication failed";
	}
}

static void auth_job_done(struct auth_step *step, struct conn *c, void *arg)
{
	struct smtp_session *s;

	(void)arg;
	if (c == NULL)
		return;
	s = c->session;
	s->flags &= ~SMTP_SF_JOB;
	smtp_sasl_free(&s->sasl);
	s->sasl = auth_step_take_session(step);
	switch (step->status) {
	case SASL_CONTINUE:
		smtp_reply(s, "334 %s", step->text);
		s->state = SMTP_STATE_AUTH;
		break;
	case SASL_SUCCESS:
		s->auth_user = step->identity;
		step->identity = NULL;
		net_conn_set_authenticated(c);
		log_info(SMTP_LOG, "conn=%llu ip=%s authenticated user=%s mechanism=%s",
			 (unsigned long long)c->id, c->peer_ip, s->auth_user, step->mech_name);
		smtp_reply_line(s, "235 2.7.0 Authentication successful");
		s->state = SMTP_STATE_COMMAND;
		break;
	default:
		smtp_reply_delayed(s, failure_reply(step->failure), step->delay_ms);
		return;
	}
	smtp_process_input(s);
}

static void auth_submit(struct smtp_session *s, bool start, const char *mech, size_t mech_len,
			const char *data, size_t len)
{
	char *mech_copy = mech != NULL ? xstrndup(mech, mech_len) : NULL;
	struct auth_step_request req = { .start = start, .mech = mech_copy, .data = data, .len = len };
	struct auth_session_params params;
	enum auth_submit_result r;

	sasl_params(s, &params);
	r = auth_session_submit(&s->sasl, &params, *smtp_globals.workers, s->conn->base, &req, NULL,
				auth_job_done, NULL);
	free(mech_copy);
	if (r == AUTH_SUBMIT_QUEUED) {
		s->flags |= SMTP_SF_JOB;
		s->state = SMTP_STATE_BUSY;
		return;
	}
	s->state = SMTP_STATE_COMMAND;
	smtp_reply_line(s, "454 4.7.0 Error: temporary authentication failure");
}

void smtp_do_auth(struct smtp_session *s, const char *args, size_t len)
{
	const char *mech, *initial, *error;
	size_t mech_len, initial_len;

	if (!(s->flags & SMTP_SF_ESMTP)) {
		smtp_reply_error(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->auth_user != NULL) {
		smtp_reply_error(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->in_mail) {
		smtp_reply_error(s, "503 5.5.1 Error: AUTH not allowed in a mail transaction");
		return;
	}
	if (smtp_parse_auth(args, len, &mech, &mech_len, &initial, &initial_len, &error) < 0) {
		smtp_reply_error(s, error);
		return;
	}
	if (auth_session_ip_locked(s->conn->cfg, SMTP_LOG, s->conn->id, s->conn->peer_ip)) {
		smtp_reply_error(s, "454 4.7.0 Error: temporary authentication failure");
		return;
	}
	auth_submit(s, true, mech, mech_len, initial, initial_len);
}

void smtp_auth_response(struct smtp_session *s, const char *line, size_t len)
{
	auth_submit(s, false, NULL, 0, line, len);
}

/* ---- delayed replies ---- */

static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	char *line = s->pending_reply;

	s->pending_reply = NULL;
	s->state = SMTP_STATE_COMMAND;
	if (line != NULL) {
		smtp_reply_error(s, line);
		free(line);
	}
	if (s->state != SMTP_STATE_CLOSING)
		smtp_process_input(s);
}

void smtp_reply_delayed(struct smtp_session *s, const char *line, int64_t delay_ms)
{
	struct timeval tv = { (time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000) };

	if (delay_ms <= 0) {
		s->state = SMTP_STATE_COMMAND;
		smtp_reply_error(s, line);
		if (s->state != SMTP_STATE_CLOSING)
			smtp_process_input(s);
		return;
	}
	free(s->pending_reply);
	s->pending_reply = xstrdup(line);
	s->state = SMTP_STATE_BUSY;
	if (s->timer != NULL)
		event_free(s->timer);
	s->timer = evtimer_new(s->conn->base, delay_cb, s);
	evtimer_add(s->timer, &tv);
}
