/*
 * SMTP AUTH (RFC 4954) through the SASL engine (auth/sasl.h).
 *
 * The mechanisms offered are sasl_mechanisms_offered(): PLAIN and LOGIN
 * only over TLS or from loopback.  Every start and step runs on the worker
 * pool (PLAIN and LOGIN check a yescrypt hash, slow on purpose), and so
 * does auth_limiter_conclude, which records the outcome, logs failures to
 * security.log and says how long the failure reply must wait.  While a
 * job runs it owns the SASL server (and the configuration and directory
 * references the server borrows), so a client that disconnects meanwhile
 * cannot free it under the worker.  Client responses are never logged.
 */
#include "smtp/smtp.h"
#include "smtp/smtp_private.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "auth/auth_limiter.h"
#include "auth/sasl.h"
#include "core/cfg.h"
#include "core/log.h"
#include "directory/directory.h"

#define SMTP_LOG "smtp"

struct smtp_sasl {
	struct sasl_server *server;
	struct sasl_backend backend;
	struct directory *dir;
	struct cfg *cfg;
	char local_ip[INET6_ADDRSTRLEN];
};

static bool secure(const struct smtp_session *s)
{
	return s->conn->tls_active || s->conn->peer_is_loopback;
}

char *smtp_auth_mechanisms(const struct smtp_session *s)
{
	return sasl_mechanisms_offered(&s->conn->cfg->s, secure(s));
}

void smtp_sasl_free(struct smtp_sasl **saslp)
{
	struct smtp_sasl *sasl = *saslp;

	if (sasl == NULL)
		return;
	*saslp = NULL;
	sasl_server_free(&sasl->server);
	auth_directory_backend_deinit(&sasl->backend);
	directory_unref(&sasl->dir);
	cfg_unref(&sasl->cfg);
	free(sasl);
}

static struct smtp_sasl *sasl_new(struct smtp_session *s)
{
	struct smtp_sasl *sasl;
	struct sasl_params params;
	struct directory *dir = directory_current();

	if (dir == NULL)
		return NULL;
	sasl = xcalloc(1, sizeof(*sasl));
	sasl->dir = dir;
	sasl->cfg = cfg_ref(s->conn->cfg);
	memcpy(sasl->local_ip, s->conn->local_ip, sizeof(sasl->local_ip));
	auth_directory_backend_init(&sasl->backend, dir);
	memset(&params, 0, sizeof(params));
	params.cfg = sasl->cfg;
	params.service = "smtp";
	params.local_address = sasl->local_ip[0] != '\0' ? sasl->local_ip : NULL;
	params.secure = secure(s);
	params.success_data = false;
	sasl->server = sasl_server_new(&params, &sasl->backend);
	return sasl;
}

/* ---- the job ---- */

struct auth_job {
	struct net *net;
	uint64_t conn_id;
	struct smtp_sasl *sasl;
	char ip[INET6_ADDRSTRLEN];
	bool start;
	char *mech;
	char *data;               /* initial response or response line; NULL: none */
	size_t len;
	enum sasl_status status;
	enum sasl_failure failure;
	int64_t delay_ms;
	char *text;               /* CONTINUE: the challenge in base64 */
	char *identity;           /* SUCCESS */
	char *mech_name;
};

static void auth_job_free(struct auth_job *job)
{
	smtp_sasl_free(&job->sasl);
	free(job->mech);
	if (job->data != NULL) {
		explicit_bzero(job->data, job->len);
		free(job->data);
	}
	free(job->text);
	free(job->identity);
	free(job->mech_name);
	free(job);
}

static void auth_job_run(void *arg)
{
	struct auth_job *job = arg;
	struct sasl_reply reply;

	memset(&reply, 0, sizeof(reply));
	if (job->start)
		job->status = sasl_server_start_text(job->sasl->server, job->mech, job->data, job->len,
						     &reply);
	else
		job->status = sasl_server_step_text(job->sasl->server, job->data != NULL ? job->data : "",
						    job->len, &reply);
	if (job->data != NULL) {
		explicit_bzero(job->data, job->len);
		free(job->data);
		job->data = NULL;
	}
	if (job->status != SASL_CONTINUE)
		job->status = auth_limiter_conclude(auth_limiter_shared(&job->sasl->cfg->s), "smtp",
						    job->ip, job->conn_id, &reply, &job->delay_ms);
	job->failure = reply.failure;
	job->mech_name = xstrdup(sasl_mech_name(reply.mech) != NULL ? sasl_mech_name(reply.mech) : "?");
	if (job->status == SASL_CONTINUE)
		job->text = xstrdup(reply.text != NULL ? reply.text : "");
	else if (job->status == SASL_SUCCESS && reply.identity != NULL)
		job->identity = xstrdup(reply.identity);
	if (job->status == SASL_SUCCESS && job->identity == NULL) {
		job->status = SASL_FAILURE;
		job->failure = SASL_FAIL_TEMPORARY;
	}
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

static void auth_job_done(void *arg)
{
	struct auth_job *job = arg;
	struct conn *c = net_conn_find(job->net, job->conn_id);
	struct smtp_session *s;

	if (c == NULL || c->session == NULL) {
		auth_job_free(job);
		return;
	}
	s = c->session;
	s->flags &= ~SMTP_SF_JOB;
	smtp_sasl_free(&s->sasl);
	s->sasl = job->sasl;
	job->sasl = NULL;
	switch (job->status) {
	case SASL_CONTINUE:
		smtp_reply(s, "334 %s", job->text);
		s->state = SMTP_STATE_AUTH;
		break;
	case SASL_SUCCESS:
		s->auth_user = job->identity;
		job->identity = NULL;
		net_conn_set_authenticated(c);
		log_info(SMTP_LOG, "conn=%llu ip=%s authenticated user=%s mechanism=%s",
			 (unsigned long long)c->id, c->peer_ip, s->auth_user, job->mech_name);
		smtp_reply_line(s, "235 2.7.0 Authentication successful");
		s->state = SMTP_STATE_COMMAND;
		break;
	default: {
		const char *line = failure_reply(job->failure);
		int64_t delay = job->delay_ms;

		auth_job_free(job);
		smtp_reply_delayed(s, line, delay);
		return;
	}
	}
	auth_job_free(job);
	smtp_process_input(s);
}

static void auth_submit(struct smtp_session *s, bool start, const char *mech, size_t mech_len,
			const char *data, size_t len)
{
	struct worker_pool *pool = *smtp_globals.workers;
	struct auth_job *job;

	if (s->sasl == NULL)
		s->sasl = sasl_new(s);
	if (s->sasl == NULL) {
		s->state = SMTP_STATE_COMMAND;
		smtp_reply_line(s, "454 4.7.0 Error: temporary authentication failure");
		return;
	}
	job = xcalloc(1, sizeof(*job));
	job->net = smtp_globals.net;
	job->conn_id = s->conn->id;
	memcpy(job->ip, s->conn->peer_ip, sizeof(job->ip));
	job->start = start;
	job->mech = mech != NULL ? xstrndup(mech, mech_len) : NULL;
	if (data != NULL) {
		job->data = xstrndup(data, len);
		job->len = len;
	}
	job->sasl = s->sasl;
	s->sasl = NULL;
	if (pool == NULL || worker_submit(pool, s->conn->base, auth_job_run, auth_job_done, job) < 0) {
		s->sasl = job->sasl;
		job->sasl = NULL;
		auth_job_free(job);
		s->state = SMTP_STATE_COMMAND;
		smtp_reply_line(s, "454 4.7.0 Error: temporary authentication failure");
		return;
	}
	s->flags |= SMTP_SF_JOB;
	s->state = SMTP_STATE_BUSY;
}

void smtp_do_auth(struct smtp_session *s, const char *args, size_t len)
{
	const char *mech, *initial, *error;
	size_t mech_len, initial_len;
	int64_t retry;

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
	if (auth_limiter_ip_locked(auth_limiter_shared(&s->conn->cfg->s), s->conn->peer_ip, &retry)) {
		log_security(SMTP_LOG, "conn=%llu ip=%s AUTH refused: address locked out for %llds",
			     (unsigned long long)s->conn->id, s->conn->peer_ip,
			     (long long)(retry / 1000));
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
