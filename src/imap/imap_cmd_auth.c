/*
 * IMAP commands of any state and of authentication: CAPABILITY, NOOP,
 * LOGOUT, ID (RFC 2971), STARTTLS, LOGIN, AUTHENTICATE (with SASL-IR, RFC
 * 4959), ENABLE (RFC 5161), NAMESPACE (RFC 2342), COMPRESS (RFC 4978) and
 * IDLE (RFC 2177).
 *
 * LOGIN is SASL PLAIN with an empty authorization identity, so that every
 * login goes through one engine, one brute-force limiter and one log line
 * (auth/auth_session.h).  The SASL work and the opening of
 * the user's store run on the worker pool; while a job runs it owns the
 * SASL server, so a disconnect cannot free it under the worker.
 */
#include "imap/imap.h"
#include "imap/imap_private.h"
#include "imap/imap_acl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>

#include "auth/auth_session.h"
#include "core/log.h"
#include "core/recent_auth.h"
#include "core/str.h"
#include "directory/directory.h"

/* ---- simple commands ---- */

static bool no_args(struct imap_session *s, struct imap_args *args)
{
	if (imap_args_left(args) != 0) {
		imap_bad(s, "%s takes no arguments", s->cmd_name);
		return false;
	}
	return true;
}

void imap_cmd_capability(struct imap_session *s, struct imap_args *args)
{
	struct buf caps;

	if (!no_args(s, args))
		return;
	buf_init(&caps, 4096);
	imap_capabilities(s, &caps);
	imap_printf(s, "* CAPABILITY %s\r\n", caps.data);
	buf_deinit(&caps);
	imap_ok(s, "Capability completed");
}

void imap_cmd_noop(struct imap_session *s, struct imap_args *args)
{
	/* HOSTILE-INPUT row 20 (Dovecot CVE-2020-10957): arguments are
	 * refused, never looked into. */
	if (!no_args(s, args))
		return;
	imap_ok(s, "NOOP completed");
}

void imap_cmd_check(struct imap_session *s, struct imap_args *args)
{
	if (!no_args(s, args))
		return;
	imap_ok(s, "CHECK completed");
}

void imap_cmd_logout(struct imap_session *s, struct imap_args *args)
{
	if (!no_args(s, args))
		return;
	imap_printf(s, "* BYE Logging out\r\n");
	imap_printf(s, "%s OK Logout completed\r\n", s->tag);
	free(s->tag);
	s->tag = NULL;
	s->state = IMAP_STATE_LOGOUT;
	imap_close_with(s, NULL);
}

void imap_cmd_namespace(struct imap_session *s, struct imap_args *args)
{
	if (!no_args(s, args))
		return;
	/* personal, other users', shared (public) namespaces (imap_acl.c) */
	imap_printf(s, "* NAMESPACE ((\"\" \"/\")) ((\"" IMAP_NS_OTHER "/\" \"/\")) "
		    "((\"" IMAP_NS_PUBLIC "/\" \"/\"))\r\n");
	imap_ok(s, "Namespace completed");
}

void imap_cmd_id(struct imap_session *s, struct imap_args *args)
{
	const struct imap_arg *a = imap_args_next(args);
	struct buf info;

	if (a == NULL || imap_args_left(args) != 0 ||
	    (a->type != IMAP_ARG_LIST && !imap_arg_is_nil(&s->parser, a))) {
		imap_bad(s, "Usage: ID (field value ...) or ID NIL");
		return;
	}
	buf_init(&info, 4096);
	if (a->type == IMAP_ARG_LIST) {
		struct imap_args it;
		const struct imap_arg *f, *v;
		unsigned pairs = 0;

		imap_args_list(&s->parser, a, &it);
		if (imap_args_left(&it) % 2 != 0) {
			buf_deinit(&info);
			imap_bad(s, "ID takes field-value pairs");
			return;
		}
		while ((f = imap_args_next(&it)) != NULL) {
			const char *field, *value;
			size_t flen, vlen;

			v = imap_args_next(&it);
			field = imap_arg_string(&s->parser, f, &flen);
			if (field == NULL || !imap_arg_nstring(&s->parser, v, &value, &vlen) ||
			    ++pairs > IMAP_ID_MAX_PAIRS || flen > 30 || vlen > 1024) {
				buf_deinit(&info);
				imap_bad(s, "Invalid ID parameters (RFC 2971: at most 30 pairs, "
					 "fields of 30 bytes, values of 1024)");
				return;
			}
			if (info.len < 512) {
				if (buf_printf(&info, "%s%s=", info.len > 0 ? " " : "", field) < 0 ||
				    str_escape_append(&info, value != NULL ? value : "NIL",
						      value != NULL ? vlen : 3, 64) < 0) {
					/* the log line is capped; the rest is not kept */
				}
			}
		}
	}
	if (info.len > 0)
		log_debug(IMAP_LOG, "conn=%llu ip=%s client id: %s", (unsigned long long)s->conn->id,
			  s->conn->peer_ip, info.data);
	buf_deinit(&info);
	imap_printf(s, "* ID (\"name\" \"Petrel\" \"vendor\" \"Petrel\")\r\n");
	imap_ok(s, "ID completed");
}

void imap_cmd_enable(struct imap_session *s, struct imap_args *args)
{
	const struct imap_arg *a;
	struct buf enabled;

	if (imap_args_left(args) == 0) {
		imap_bad(s, "Usage: ENABLE capability ...");
		return;
	}
	buf_init(&enabled, 1024);
	while ((a = imap_args_next(args)) != NULL) {
		const char *name = a->type == IMAP_ARG_ATOM ? imap_arg_text(&s->parser, a) : NULL;
		const char *word = NULL;

		if (name == NULL) {
			buf_deinit(&enabled);
			imap_bad(s, "ENABLE takes capability names");
			return;
		}
		if (strcasecmp(name, "CONDSTORE") == 0 && !s->condstore) {
			s->condstore = true;
			word = "CONDSTORE";
		} else if (strcasecmp(name, "QRESYNC") == 0 && !s->qresync) {
			s->qresync = true;
			s->condstore = true;
			word = "QRESYNC";
		} else if (strcasecmp(name, "IMAP4rev2") == 0 && !s->rev2) {
			s->rev2 = true;
			word = "IMAP4rev2";
		} else if (strcasecmp(name, "UTF8=ACCEPT") == 0 && !s->utf8) {
			s->utf8 = true;
			word = "UTF8=ACCEPT";
		}
		/* RFC 5161: unknown names are ignored */
		if (word != NULL && buf_printf(&enabled, " %s", word) < 0)
			panic("imap enable: buffer");
	}
	imap_printf(s, "* ENABLED%s\r\n", enabled.len > 0 ? enabled.data : "");
	buf_deinit(&enabled);
	imap_apply_limits(s);
	imap_ok(s, "Enabled");
}

void imap_cmd_starttls(struct imap_session *s, struct imap_args *args)
{
	struct conn *c = s->conn;

	if (!no_args(s, args))
		return;
	if (c->service != SERVICE_IMAP || c->tls_active) {
		imap_bad(s, "TLS is already active");
		return;
	}
	if (c->tls == NULL) {
		imap_no(s, "[UNAVAILABLE] TLS is not available");
		return;
	}
	imap_ok(s, "Begin TLS negotiation now");
	imap_switch_after_ok(s, IMAP_MODE_STARTTLS);
}

void imap_cmd_compress(struct imap_session *s, struct imap_args *args)
{
	const struct imap_arg *a = imap_args_next(args);

	if (a == NULL || imap_args_left(args) != 0 || !imap_arg_atom_is(&s->parser, a, "DEFLATE")) {
		imap_bad(s, "Usage: COMPRESS DEFLATE");
		return;
	}
	if (!s->conn->cfg->s.imap_compress) {
		imap_no(s, "Compression is not enabled");
		return;
	}
	if (s->compressed) {
		imap_no(s, "[COMPRESSIONACTIVE] Compression is already active");
		return;
	}
	imap_ok(s, "DEFLATE active");
	imap_compress_start(s);
}

/* ---- IDLE ---- */

void imap_idle_keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;

	(void)fd;
	(void)what;
	if (s->mode == IMAP_MODE_IDLE || (s->mode == IMAP_MODE_BUSY && s->idle_tag != NULL))
		imap_printf(s, "* OK Still here\r\n");
	/* rights of a shared folder changed while nothing else happened */
	if (s->mode == IMAP_MODE_IDLE && !s->syncing && imap_acl_rights_stale(s))
		imap_acl_rights_refresh(s);
}

void imap_cmd_idle(struct imap_session *s, struct imap_args *args)
{
	int64_t keep = s->conn->cfg->s.imap_idle_keepalive;

	if (!no_args(s, args))
		return;
	imap_printf(s, "+ idling\r\n");
	s->idle_tag = s->tag;
	s->tag = NULL;
	s->mode = IMAP_MODE_IDLE;
	if (keep > 0) {
		struct timeval tv = { (time_t)keep, 0 };

		if (s->timer != NULL)
			event_free(s->timer);
		s->timer = event_new(s->conn->base, -1, EV_PERSIST, imap_idle_keepalive_cb, s);
		evtimer_add(s->timer, &tv);
	}
	/* what happened before IDLE is told at once (RFC 2177) */
	if (s->sel != NULL && imap_sync_pending(s))
		imap_sync(s, true, NULL);
}

void imap_idle_done(struct imap_session *s)
{
	if (s->timer != NULL) {
		event_free(s->timer);
		s->timer = NULL;
	}
	free(s->tag);
	s->tag = s->idle_tag;
	s->idle_tag = NULL;
	s->mode = IMAP_MODE_COMMAND;
	snprintf(s->cmd_name, sizeof(s->cmd_name), "IDLE");
	s->cmd_uid = false;
	imap_ok(s, "IDLE terminated");
}

/* ---- authentication ---- */

void imap_sasl_free(struct auth_session **sasl)
{
	auth_session_free(sasl);
}

static void sasl_params(struct imap_session *s, struct auth_session_params *params)
{
	*params = (struct auth_session_params){
		.cfg = s->conn->cfg,
		.service = "imap",
		.log_service = "imap",
		.local_ip = s->conn->local_ip,
		.peer_ip = s->conn->peer_ip,
		.net = imapg.net,
		.conn_id = s->conn->id,
		.secure = imap_secure(s),
	};
}

/* What IMAP adds to a login: the user's store, opened on the worker. */
struct auth_job {
	struct store *store;
	unsigned max_per_user;
	struct imap_user *user;
	const char *user_error;
	bool too_many;
};

static void auth_job_free(struct auth_job *job)
{
	imap_user_unref(&job->user);
	free(job);
}

/* Worker: opens the user's mailbox store after a successful login. */
static void open_user(struct auth_job *job, const char *identity)
{
	const char *at = strrchr(identity, '@');
	struct store_user *su;
	struct directory *dir;
	char *name;
	enum store_status st;

	if (job->store == NULL) {
		job->user_error = "the message store is not open";
		return;
	}
	if (at == NULL || at == identity) {
		job->user_error = "identity is not an address";
		return;
	}
	name = xstrndup(identity, (size_t)(at - identity));
	st = store_user_open(job->store, at + 1, name, &su, &job->user_error);
	free(name);
	if (st != STORE_OK)
		return;
	dir = directory_current();
	if (dir != NULL) {
		const struct dir_user *du = directory_find_user(dir, identity);

		if (du != NULL)
			store_user_set_quota(su, du->quota_storage, du->quota_messages);
		directory_unref(&dir);
	}
	job->user = xcalloc(1, sizeof(*job->user));
	job->user->refs = 1;
	job->user->user = su;
	job->user->identity = xstrdup(identity);
}

/* Worker, after a successful SASL exchange. */
static void auth_job_success(struct auth_step *step, void *arg)
{
	struct auth_job *job = arg;

	if (!imap_user_count_acquire(step->identity, job->max_per_user)) {
		job->too_many = true;
		return;
	}
	open_user(job, step->identity);
	if (job->user == NULL)
		imap_user_count_release(step->identity);
}

static void failure_line(struct imap_session *s, enum sasl_failure failure, int64_t delay)
{
	char *line;
	const char *text;

	switch (failure) {
	case SASL_FAIL_MECHANISM:
		text = "NO [CANNOT] Unsupported authentication mechanism";
		break;
	case SASL_FAIL_ENCRYPTION:
		text = "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure "
		       "connections (use STARTTLS)";
		break;
	case SASL_FAIL_SYNTAX:
		text = "BAD Invalid base64 data or response too long";
		break;
	case SASL_FAIL_ABORTED:
		text = "BAD Authentication aborted";
		break;
	case SASL_FAIL_TEMPORARY:
		text = "NO [UNAVAILABLE] Temporary authentication failure";
		break;
	case SASL_FAIL_STATE:
		text = "BAD No authentication in progress";
		break;
	case SASL_FAIL_CREDENTIALS:
	default:
		text = "NO [AUTHENTICATIONFAILED] Authentication failed";
		break;
	}
	line = xasprintf("%s %s", s->tag != NULL ? s->tag : "*", text);
	imap_tagged_delayed(s, line, delay);
	free(line);
}

static void login_done(struct imap_session *s, struct auth_step *step, struct auth_job *job)
{
	struct conn *c = s->conn;
	struct timeval tv = { (time_t)c->cfg->s.imap_idle_timeout, 0 };
	struct buf caps;

	s->identity = step->identity;
	step->identity = NULL;
	s->user = job->user;
	job->user = NULL;
	s->counted_user = true;
	imap_sasl_free(&s->sasl);
	s->state = IMAP_STATE_AUTH;
	net_conn_set_authenticated(c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	pop_before_smtp_record(c->peer_ip);
	imap_apply_limits(s);
	log_info(IMAP_LOG, "conn=%llu ip=%s login user=%s mechanism=%s%s", (unsigned long long)c->id,
		 c->peer_ip, s->identity, step->mech_name, c->tls_active ? " tls" : "");
	buf_init(&caps, 4096);
	imap_capabilities(s, &caps);
	imap_ok(s, "[CAPABILITY %s] Logged in", caps.data);
	buf_deinit(&caps);
}

/* A job whose connection is gone: the store and the per-user count go. */
static void auth_job_drop(struct auth_job *job)
{
	if (job->user != NULL)
		imap_user_count_release(job->user->identity);
	auth_job_free(job);
}

static void auth_job_done(struct auth_step *step, struct conn *c, void *arg)
{
	struct auth_job *job = arg;
	struct imap_session *s;

	if (c == NULL) {
		auth_job_drop(job);
		return;
	}
	s = c->session;
	if (s->mode == IMAP_MODE_CLOSING || s->mode == IMAP_MODE_LINGER) {
		auth_job_drop(job);
		return;
	}
	s->mode = IMAP_MODE_COMMAND;
	imap_sasl_free(&s->sasl);
	s->sasl = auth_step_take_session(step);
	switch (step->status) {
	case SASL_CONTINUE:
		/* RFC 9051 7.5: "+" SP base64, "+ " for an empty challenge */
		imap_printf(s, "+ %s\r\n", step->text);
		s->mode = IMAP_MODE_SASL;
		break;
	case SASL_SUCCESS:
		if (job->too_many) {
			log_warn(IMAP_LOG, "conn=%llu ip=%s user=%s refused: too many connections",
				 (unsigned long long)c->id, c->peer_ip, step->identity);
			imap_no(s, "[LIMIT] Too many connections for this user");
		} else if (job->user == NULL) {
			log_warn(IMAP_LOG, "conn=%llu ip=%s user=%s mailbox not opened: %s",
				 (unsigned long long)c->id, c->peer_ip, step->identity,
				 job->user_error != NULL ? job->user_error : "?");
			imap_no(s, "[UNAVAILABLE] Mailbox unavailable, try again later");
		} else {
			login_done(s, step, job);
		}
		break;
	default:
		failure_line(s, step->failure, step->delay_ms);
		break;
	}
	auth_job_free(job);
	if (s->mode == IMAP_MODE_COMMAND) {
		if (s->stopping) {
			imap_close_with(s, "Server shutting down");
			return;
		}
		imap_process_input(s);
	}
}

static void auth_submit(struct imap_session *s, bool start, const char *mech, const char *data,
			size_t len, bool raw)
{
	struct auth_step_request req = {
		.start = start, .raw = raw, .mech = mech, .data = data, .len = len,
	};
	struct auth_session_params params;
	struct auth_job *job = xcalloc(1, sizeof(*job));
	enum auth_submit_result r;

	job->store = imap_store();
	job->max_per_user = (unsigned)s->conn->cfg->s.imap_max_connections_per_user;
	sasl_params(s, &params);
	r = auth_session_submit(&s->sasl, &params, imap_workers(), s->conn->base, &req,
				auth_job_success, auth_job_done, job);
	if (r == AUTH_SUBMIT_QUEUED) {
		s->mode = IMAP_MODE_BUSY;
		return;
	}
	auth_job_free(job);
	s->mode = IMAP_MODE_COMMAND;
	imap_no(s, r == AUTH_SUBMIT_BUSY ? "[UNAVAILABLE] Server busy, try again later" :
		"[UNAVAILABLE] Temporary authentication failure");
}

static bool ip_locked(struct imap_session *s)
{
	if (!auth_session_ip_locked(s->conn->cfg, IMAP_LOG, s->conn->id, s->conn->peer_ip))
		return false;
	imap_no(s, "[UNAVAILABLE] Too many failed logins, try again later");
	return true;
}

void imap_cmd_login(struct imap_session *s, struct imap_args *args)
{
	const char *user, *pass;
	size_t ulen, plen, len;
	char *plain;

	if (imap_args_left(args) != 2) {
		imap_bad(s, "Usage: LOGIN user password");
		return;
	}
	user = imap_arg_astring(&s->parser, imap_args_next(args), &ulen);
	pass = imap_arg_astring(&s->parser, imap_args_next(args), &plen);
	if (user == NULL || pass == NULL || ulen == 0 || ulen > SASL_MAX_LOGIN ||
	    plen > SASL_MAX_PASSWORD) {
		/* NUL inside (HOSTILE-INPUT row 14), a list, a wildcard */
		imap_bad(s, "Invalid user name or password argument");
		return;
	}
	if (!sasl_mechanism_offered(&s->conn->cfg->s, imap_secure(s), SASL_MECH_PLAIN)) {
		imap_no(s, "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure "
			"connections (use STARTTLS)");
		return;
	}
	if (ip_locked(s))
		return;
	len = 1 + ulen + 1 + plen;
	plain = xmalloc(len);
	plain[0] = '\0';
	memcpy(plain + 1, user, ulen);
	plain[1 + ulen] = '\0';
	memcpy(plain + 2 + ulen, pass, plen);
	auth_submit(s, true, "PLAIN", plain, len, true);
	explicit_bzero(plain, len);
	free(plain);
}

void imap_cmd_authenticate(struct imap_session *s, struct imap_args *args)
{
	const struct imap_arg *m = imap_args_next(args), *ir = imap_args_next(args);
	const char *mech, *initial = NULL;

	if (m == NULL || m->type != IMAP_ARG_ATOM || imap_args_left(args) != 0 ||
	    (ir != NULL && ir->type != IMAP_ARG_ATOM)) {
		imap_bad(s, "Usage: AUTHENTICATE mechanism [initial-response]");
		return;
	}
	mech = imap_arg_text(&s->parser, m);
	if (ir != NULL)
		initial = imap_arg_text(&s->parser, ir);
	if (ip_locked(s))
		return;
	auth_submit(s, true, mech, initial, initial != NULL ? ir->len : 0, false);
}

void imap_sasl_line(struct imap_session *s, const char *line, size_t len)
{
	auth_submit(s, false, NULL, line, len, false);
}
