/*
 * The front ends' shared SASL glue; see auth_session.h.
 */
#include "auth/auth_session.h"

#include <stdlib.h>
#include <string.h>

#include "auth/auth_cache.h"
#include "auth/auth_limiter.h"
#include "core/evloop.h"
#include "core/log.h"
#include "core/net.h"
#include "directory/directory.h"

struct auth_session {
	struct sasl_server *server;
	struct sasl_backend backend;
	struct directory *dir;
	struct cfg *cfg;
	char *log_service;
	char *local_ip;
	char *peer_ip;
	struct net *net;
	uint64_t conn_id;
};

struct auth_session *auth_session_new(const struct auth_session_params *params)
{
	struct auth_session *sess;
	struct sasl_params sp;
	struct directory *dir = directory_current();

	if (dir == NULL)
		return NULL;
	sess = xcalloc(1, sizeof(*sess));
	sess->dir = dir;
	sess->cfg = cfg_ref(params->cfg);
	sess->log_service = xstrdup(params->log_service);
	if (params->local_ip != NULL && params->local_ip[0] != '\0')
		sess->local_ip = xstrdup(params->local_ip);
	sess->peer_ip = xstrdup(params->peer_ip != NULL ? params->peer_ip : "");
	sess->net = params->net;
	sess->conn_id = params->conn_id;
	auth_directory_backend_init(&sess->backend, dir);
	auth_directory_backend_set_cache(&sess->backend, auth_cache_shared(&sess->cfg->s));
	memset(&sp, 0, sizeof(sp));
	sp.cfg = sess->cfg;
	sp.service = params->service;
	sp.local_address = sess->local_ip;
	sp.secure = params->secure;
	/* None of the line protocols can carry data with its success reply
	 * (RFC 4954, RFC 9051, RFC 5034): SCRAM's last message is a
	 * challenge. */
	sp.success_data = false;
	sess->server = sasl_server_new(&sp, &sess->backend);
	return sess;
}

void auth_session_free(struct auth_session **sessp)
{
	struct auth_session *sess = *sessp;

	if (sess == NULL)
		return;
	*sessp = NULL;
	sasl_server_free(&sess->server);
	auth_directory_backend_deinit(&sess->backend);
	directory_unref(&sess->dir);
	cfg_unref(&sess->cfg);
	free(sess->log_service);
	free(sess->local_ip);
	free(sess->peer_ip);
	free(sess);
}

bool auth_session_ip_locked(const struct cfg *cfg, const char *log_category, uint64_t conn_id,
			    const char *ip)
{
	int64_t retry;

	if (!auth_limiter_ip_locked(auth_limiter_shared(&cfg->s), ip, &retry))
		return false;
	log_security(log_category, "conn=%llu ip=%s login refused: address locked out for %llds",
		     (unsigned long long)conn_id, ip, (long long)(retry / 1000));
	return true;
}

/* ---- steps ---- */

static void wipe_data(struct auth_step *step)
{
	if (step->data == NULL)
		return;
	explicit_bzero(step->data, step->req.len);
	free(step->data);
	step->data = NULL;
}

void auth_step_free(struct auth_step **stepp)
{
	struct auth_step *step = *stepp;

	if (step == NULL)
		return;
	*stepp = NULL;
	auth_session_free(&step->session);
	wipe_data(step);
	free((char *)step->req.mech);
	free(step->text);
	free(step->identity);
	free(step);
}

struct auth_session *auth_step_take_session(struct auth_step *step)
{
	struct auth_session *sess = step->session;

	step->session = NULL;
	return sess;
}

/* The request, copied: the data NUL-terminated (the _text calls want a
 * string; raw data may hold NULs, hence the length). */
static struct auth_step *step_new(const struct auth_step_request *req)
{
	struct auth_step *step = xcalloc(1, sizeof(*step));

	step->req = *req;
	step->req.mech = req->mech != NULL ? xstrdup(req->mech) : NULL;
	step->req.data = NULL;
	if (req->data != NULL) {
		step->data = xmalloc(req->len + 1);
		memcpy(step->data, req->data, req->len);
		step->data[req->len] = '\0';
	} else {
		step->req.len = 0;
	}
	step->mech_name = "?";
	return step;
}

/* The engine call and the limiter's verdict; any thread. */
static void step_run(struct auth_step *step)
{
	struct sasl_server *server = step->session->server;
	struct sasl_reply reply;
	const char *name;

	memset(&reply, 0, sizeof(reply));
	if (step->req.start && step->req.raw)
		step->status = sasl_server_start(server, step->req.mech, step->data, step->req.len,
						 true, &reply);
	else if (step->req.start)
		step->status = sasl_server_start_text(server, step->req.mech, step->data,
						      step->req.len, &reply);
	else
		step->status = sasl_server_step_text(server, step->data != NULL ? step->data : "",
						     step->req.len, &reply);
	wipe_data(step);
	if (step->status != SASL_CONTINUE)
		step->status = auth_limiter_conclude(auth_limiter_shared(&step->session->cfg->s),
						     step->session->log_service, step->session->peer_ip,
						     step->session->conn_id, &reply, &step->delay_ms);
	step->failure = reply.failure;
	name = sasl_mech_name(reply.mech);
	step->mech_name = name != NULL ? name : "?";
	if (step->status == SASL_CONTINUE)
		step->text = xstrdup(reply.text != NULL ? reply.text : "");
	else if (step->status == SASL_SUCCESS && reply.identity != NULL)
		step->identity = xstrdup(reply.identity);
	if (step->status == SASL_SUCCESS && step->identity == NULL) {
		step->status = SASL_FAILURE;
		step->failure = SASL_FAIL_TEMPORARY;
	}
}

struct auth_step *auth_session_run(struct auth_session **sessp,
				   const struct auth_step_request *req)
{
	struct auth_step *step = step_new(req);

	step->session = *sessp;
	*sessp = NULL;
	step_run(step);
	return step;
}

/* On a worker. */
static void step_job(void *arg)
{
	struct auth_step *step = arg;

	step_run(step);
	if (step->status == SASL_SUCCESS && step->on_success != NULL)
		step->on_success(step, step->ctx);
}

/* On the connection's loop. */
static void step_done(void *arg)
{
	struct auth_step *step = arg;
	struct conn *c = net_conn_find(step->session->net, step->session->conn_id);

	step->done(step, c != NULL && c->session != NULL ? c : NULL, step->ctx);
	auth_step_free(&step);
}

enum auth_submit_result auth_session_submit(struct auth_session **sessp,
					    const struct auth_session_params *params,
					    struct worker_pool *pool, struct event_base *base,
					    const struct auth_step_request *req,
					    void (*on_success)(struct auth_step *step, void *ctx),
					    void (*done)(struct auth_step *step, struct conn *c, void *ctx),
					    void *ctx)
{
	struct auth_step *step;

	if (*sessp == NULL)
		*sessp = auth_session_new(params);
	if (*sessp == NULL)
		return AUTH_SUBMIT_UNAVAILABLE;
	if (pool == NULL)
		return AUTH_SUBMIT_BUSY;
	step = step_new(req);
	step->session = *sessp;
	step->on_success = on_success;
	step->done = done;
	step->ctx = ctx;
	if (worker_submit(pool, base, step_job, step_done, step) < 0) {
		step->session = NULL;
		auth_step_free(&step);
		return AUTH_SUBMIT_BUSY;
	}
	*sessp = NULL;
	return AUTH_SUBMIT_QUEUED;
}
