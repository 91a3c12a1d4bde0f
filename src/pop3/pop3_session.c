/*
 * The POP3 session: connection callbacks, the input loop, STLS, closing,
 * and authentication through the SASL engine (USER/PASS as PLAIN, AUTH
 * with any mechanism offered); see pop3.h for the process model.
 *
 * Input is read one command at a time: while a job runs (a password check,
 * a chunk of a message, the expunge at QUIT) or a failure reply is being
 * delayed, the session is busy and further input stays in the input buffer,
 * bounded by the read high-watermark.  That is all PIPELINING (RFC 2449)
 * needs: replies come in order.
 */
#include "pop3/pop3.h"
#include "pop3/pop3_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "auth/auth_session.h"
#include "core/log.h"
#include "core/recent_auth.h"
#include "directory/directory.h"
#include "store/store.h"

struct pop3_globals pop3g;

static void install_callbacks(struct pop3_session *s);

/* ---- output ---- */

void pop3_reply(struct pop3_session *s, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->conn->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

bool pop3_secure(const struct pop3_session *s)
{
	return s->conn->tls_active || s->conn->peer_is_loopback;
}

static void close_now(struct pop3_session *s)
{
	struct conn *c = s->conn;

	net_conn_close(&c);
}

void pop3_close_with(struct pop3_session *s, const char *line)
{
	struct bufferevent *bev = s->conn->bev;

	if (s->state == POP3_STATE_CLOSING || s->state == POP3_STATE_LINGER)
		return;
	if (line != NULL)
		pop3_reply(s, "%s", line);
	s->state = POP3_STATE_CLOSING;
	bufferevent_disable(bev, EV_READ);
	/* a write timeout disabled writing: the last reply must still go */
	bufferevent_enable(bev, EV_WRITE);
	/* the write callback closes once everything is out */
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_trigger(bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* The last reply has left our buffer: net.c sees it out and closes. */
static void finish(struct pop3_session *s)
{
	if (s->timer != NULL) {
		event_free(s->timer);
		s->timer = NULL;
	}
	s->state = POP3_STATE_LINGER;
	net_conn_finish(s->conn, s->stopping ? 0 : POP3_LINGER_SECONDS);
}

/* ---- delayed replies (authentication failures) ---- */

static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_session *s = arg;
	char *line = s->pending_reply;

	(void)fd;
	(void)what;
	s->pending_reply = NULL;
	s->busy = false;
	if (line != NULL) {
		pop3_reply(s, "%s", line);
		free(line);
	}
	if (s->stopping) {
		pop3_close_with(s, NULL);
		return;
	}
	pop3_process_input(s);
}

void pop3_reply_delayed(struct pop3_session *s, const char *line, int64_t delay_ms)
{
	struct timeval tv = { (time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000) };

	if (delay_ms <= 0) {
		s->busy = false;
		pop3_reply(s, "%s", line);
		if (s->stopping) {
			pop3_close_with(s, NULL);
			return;
		}
		pop3_process_input(s);
		return;
	}
	free(s->pending_reply);
	s->pending_reply = xstrdup(line);
	s->busy = true;
	if (s->timer != NULL)
		event_free(s->timer);
	s->timer = evtimer_new(s->conn->base, delay_cb, s);
	evtimer_add(s->timer, &tv);
}

/* ---- authentication ---- */

static void sasl_free(struct auth_session **sasl)
{
	auth_session_free(sasl);
}

static void sasl_params(struct pop3_session *s, struct auth_session_params *params)
{
	*params = (struct auth_session_params){
		.cfg = s->conn->cfg,
		.service = "pop",          /* RFC 5034 section 4 */
		.log_service = "pop3",
		.local_ip = s->conn->local_ip,
		.peer_ip = s->conn->peer_ip,
		.net = pop3g.net,
		.conn_id = s->conn->id,
		.secure = pop3_secure(s),
	};
}

/* What POP3 adds to a login: the maildrop, opened on the worker. */
struct auth_job {
	struct store *store;
	struct cfg *cfg;
	struct pop3_maildrop *drop;
	const char *drop_error;
	bool in_use;
};

static void auth_job_free(struct auth_job *job)
{
	pop3_maildrop_unref(&job->drop);
	cfg_unref(&job->cfg);
	free(job);
}

/* On a worker, after a successful SASL exchange: the maildrop. */
static void auth_job_success(struct auth_step *step, void *arg)
{
	struct auth_job *job = arg;

	if (job->store == NULL) {
		job->drop_error = "the message store is not open";
	} else if (pop3_maildrop_open(job->store, job->cfg, step->identity, &job->drop,
				      &job->drop_error, &job->in_use) < 0) {
		job->drop = NULL;
	}
}

static const char *failure_reply(enum sasl_failure failure)
{
	switch (failure) {
	case SASL_FAIL_MECHANISM:
		return "-ERR [AUTH] Unsupported authentication mechanism";
	case SASL_FAIL_ENCRYPTION:
		return "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections "
		       "(use STLS)";
	case SASL_FAIL_SYNTAX:
		return "-ERR Invalid base64 data or response too long";
	case SASL_FAIL_ABORTED:
		return "-ERR Authentication aborted";
	case SASL_FAIL_TEMPORARY:
		return "-ERR [SYS/TEMP] Temporary authentication failure";
	case SASL_FAIL_STATE:
		return "-ERR No authentication in progress";
	case SASL_FAIL_CREDENTIALS:
	default:
		return "-ERR [AUTH] Authentication failed";
	}
}

static void login_done(struct pop3_session *s, struct auth_step *step, struct auth_job *job)
{
	struct conn *c = s->conn;
	struct timeval tv = { (time_t)c->cfg->s.pop3_idle_timeout, 0 };

	s->identity = step->identity;
	step->identity = NULL;
	s->drop = job->drop;
	job->drop = NULL;
	free(s->user);
	s->user = NULL;
	sasl_free(&s->sasl);
	s->state = POP3_STATE_TRANSACTION;
	net_conn_set_authenticated(c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	pop_before_smtp_record(c->peer_ip);
	log_info(POP3_LOG, "conn=%llu ip=%s login user=%s mechanism=%s messages=%u size=%llu",
		 (unsigned long long)c->id, c->peer_ip, s->identity, step->mech_name, s->drop->count,
		 (unsigned long long)s->drop->total_size);
	pop3_reply(s, "+OK Logged in, %u messages (%llu octets)", s->drop->count,
		   (unsigned long long)s->drop->total_size);
}

static void auth_job_done(struct auth_step *step, struct conn *c, void *arg)
{
	struct auth_job *job = arg;
	struct pop3_session *s;

	if (c == NULL) {
		auth_job_free(job);
		return;
	}
	s = c->session;
	if (s->state == POP3_STATE_CLOSING || s->state == POP3_STATE_LINGER) {
		auth_job_free(job);
		return;
	}
	s->busy = false;
	sasl_free(&s->sasl);
	s->sasl = auth_step_take_session(step);
	switch (step->status) {
	case SASL_CONTINUE:
		/* RFC 5034 section 4: "+" SP base64 (an empty challenge is "+ ") */
		pop3_reply(s, "+ %s", step->text);
		s->state = POP3_STATE_SASL;
		/* a response may be far longer than a command (GSSAPI) */
		pop3_parser_set_max_line(&s->parser,
					 ((size_t)c->cfg->s.auth_max_response + 2) / 3 * 4 + 16);
		break;
	case SASL_SUCCESS:
		if (job->drop == NULL) {
			log_warn(POP3_LOG, "conn=%llu ip=%s user=%s maildrop not opened: %s",
				 (unsigned long long)c->id, c->peer_ip, step->identity,
				 job->drop_error != NULL ? job->drop_error : "?");
			s->state = POP3_STATE_AUTHORIZATION;
			free(s->user);
			s->user = NULL;
			pop3_reply(s, "%s", job->in_use ?
				   "-ERR [IN-USE] Mailbox is locked by another POP3 session" :
				   "-ERR [SYS/TEMP] Mailbox unavailable, try again later");
			break;
		}
		login_done(s, step, job);
		break;
	default:
		free(s->user);
		s->user = NULL;
		s->state = POP3_STATE_AUTHORIZATION;
		auth_job_free(job);
		pop3_reply_delayed(s, failure_reply(step->failure), step->delay_ms);
		return;
	}
	auth_job_free(job);
	if (s->stopping) {
		pop3_close_with(s, NULL);
		return;
	}
	pop3_process_input(s);
}

static void auth_submit(struct pop3_session *s, bool start, const char *mech, const char *data,
			size_t len, bool raw)
{
	struct auth_step_request req = {
		.start = start, .raw = raw, .mech = mech, .data = data, .len = len,
	};
	struct auth_session_params params;
	struct auth_job *job = xcalloc(1, sizeof(*job));
	enum auth_submit_result r;

	job->store = pop3g.store != NULL ? __atomic_load_n(pop3g.store, __ATOMIC_ACQUIRE) : NULL;
	job->cfg = cfg_ref(s->conn->cfg);
	sasl_params(s, &params);
	r = auth_session_submit(&s->sasl, &params, *pop3g.workers, s->conn->base, &req,
				auth_job_success, auth_job_done, job);
	if (r == AUTH_SUBMIT_QUEUED) {
		s->busy = true;
		return;
	}
	auth_job_free(job);
	s->state = POP3_STATE_AUTHORIZATION;
	pop3_reply(s, "%s", r == AUTH_SUBMIT_BUSY ? "-ERR [SYS/TEMP] Server busy, try again later" :
		   "-ERR [SYS/TEMP] Temporary authentication failure");
}

void pop3_auth_start(struct pop3_session *s, const char *mech, const char *initial,
		     size_t initial_len, bool raw_initial)
{
	if (auth_session_ip_locked(s->conn->cfg, POP3_LOG, s->conn->id, s->conn->peer_ip)) {
		free(s->user);
		s->user = NULL;
		pop3_reply(s, "-ERR [SYS/TEMP] Too many failed logins, try again later");
		return;
	}
	auth_submit(s, true, mech, initial, initial_len, raw_initial);
}

void pop3_auth_step(struct pop3_session *s, const char *line, size_t len)
{
	auth_submit(s, false, NULL, line, len, false);
}

/* ---- input ---- */

void pop3_process_input(struct pop3_session *s)
{
	struct conn *c = s->conn;
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (!s->busy && (s->state == POP3_STATE_AUTHORIZATION || s->state == POP3_STATE_SASL ||
			    s->state == POP3_STATE_TRANSACTION)) {
		struct evbuffer_iovec vec;
		enum pop3_parse_result res;
		size_t used;

		if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1 || vec.iov_len == 0)
			break;
		res = pop3_parser_feed(&s->parser, vec.iov_base, vec.iov_len, &used);
		evbuffer_drain(in, used);
		if (res == POP3_PARSE_MORE)
			continue;
		if (res == POP3_PARSE_TOO_LONG) {
			log_info(POP3_LOG, "conn=%llu ip=%s command line too long; closing",
				 (unsigned long long)c->id, c->peer_ip);
			evbuffer_drain(in, evbuffer_get_length(in));
			pop3_close_with(s, "-ERR Line too long");
			return;
		}
		if (s->state == POP3_STATE_SASL) {
			s->state = POP3_STATE_AUTHORIZATION;
			if (res == POP3_PARSE_ERROR)
				pop3_reply(s, "-ERR Invalid response");
			else
				pop3_auth_step(s, s->parser.line.data, s->parser.line.len);
			/* after the response is copied: back to command lines */
			pop3_parser_set_max_line(&s->parser, (size_t)c->cfg->s.pop3_max_line);
			continue;
		}
		if (res == POP3_PARSE_ERROR) {
			pop3_reply(s, "-ERR Invalid command line (NUL byte or bare CR)");
			if (++s->bad_commands >= (unsigned)c->cfg->s.pop3_max_bad_commands) {
				pop3_close_with(s, "-ERR Too many bad commands");
				return;
			}
			continue;
		}
		pop3_dispatch(s, s->parser.line.data, s->parser.line.len);
		if (s->bad_commands >= (unsigned)c->cfg->s.pop3_max_bad_commands &&
		    s->state != POP3_STATE_CLOSING) {
			pop3_close_with(s, "-ERR Too many bad commands");
			return;
		}
	}
	/* The output of a long answer (LIST of a big maildrop) is drained by
	 * the client before more input is read (write watermark). */
}

/* ---- STLS ---- */

static void do_stls(struct pop3_session *s)
{
	struct conn *c = s->conn;
	const char *error;
	struct timeval tv = { (time_t)c->cfg->s.limits_preauth_timeout, 0 };

	if (net_conn_starttls(c, &error) < 0) {
		/* HOSTILE-INPUT row 3: bytes sent with STLS in one packet
		 * (CVE-2011-0411) must never be read as if they came over
		 * TLS; the connection ends here. */
		log_security(POP3_LOG, "conn=%llu ip=%s STLS refused: %s; closing",
			     (unsigned long long)c->id, c->peer_ip, error);
		close_now(s);
		return;
	}
	/* RFC 2595 section 4: forget what was learnt before (USER). */
	free(s->user);
	s->user = NULL;
	sasl_free(&s->sasl);
	pop3_parser_deinit(&s->parser);
	pop3_parser_init(&s->parser, (size_t)c->cfg->s.pop3_max_line);
	s->state = POP3_STATE_AUTHORIZATION;
	install_callbacks(s);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	log_debug(POP3_LOG, "conn=%llu ip=%s STLS handshake started", (unsigned long long)c->id,
		  c->peer_ip);
}

/* ---- bufferevent callbacks ---- */

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct pop3_session *s = arg;

	if (s->state == POP3_STATE_CLOSING) {
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
		return;
	}
	if (s->state == POP3_STATE_STLS)
		return;  /* stays in the buffer: do_stls looks at it */
	pop3_process_input(s);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct pop3_session *s = arg;
	size_t pending = evbuffer_get_length(bufferevent_get_output(bev));

	switch (s->state) {
	case POP3_STATE_CLOSING:
		if (pending > 0)
			return;
		finish(s);
		return;
	case POP3_STATE_STLS:
		if (pending == 0)
			do_stls(s);
		return;
	default:
		if (s->retr != NULL) {
			pop3_retr_resume(s);
			return;
		}
		if (!s->busy)
			pop3_process_input(s);
		return;
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct pop3_session *s = arg;
	struct conn *c = s->conn;

	if ((what & BEV_EVENT_CONNECTED) != 0)
		return;
	if ((what & BEV_EVENT_TIMEOUT) != 0 && s->state != POP3_STATE_CLOSING) {
		log_info(POP3_LOG, "conn=%llu ip=%s %s timeout; closing (nothing deleted)",
			 (unsigned long long)c->id, c->peer_ip, (what & BEV_EVENT_WRITING) != 0 ? "write" :
			 c->authenticated ? "idle" : "pre-authentication");
		if ((what & BEV_EVENT_WRITING) != 0) {
			close_now(s);  /* the client does not read */
			return;
		}
		if (s->busy && (what & BEV_EVENT_READING) != 0) {
			/* a job runs (a slow disk): its reply comes */
			bufferevent_enable(bev, EV_READ);
			return;
		}
		pop3_close_with(s, "-ERR Autologout: idle for too long");
		return;
	}
	if ((what & BEV_EVENT_ERROR) != 0) {
		char text[256];
		const char *layer = net_bev_error(bev, text, sizeof(text));

		log_debug(POP3_LOG, "conn=%llu ip=%s closed on %s error: %s", (unsigned long long)c->id,
			  c->peer_ip, layer, text);
	} else if ((what & BEV_EVENT_EOF) != 0) {
		if (s->state == POP3_STATE_TRANSACTION)
			log_info(POP3_LOG, "conn=%llu ip=%s user=%s disconnected without QUIT; "
				 "nothing deleted", (unsigned long long)c->id, c->peer_ip, s->identity);
		else
			log_debug(POP3_LOG, "conn=%llu ip=%s closed by the client",
				  (unsigned long long)c->id, c->peer_ip);
	}
	close_now(s);
}

static void install_callbacks(struct pop3_session *s)
{
	struct bufferevent *bev = s->conn->bev;

	bufferevent_setcb(bev, read_cb, write_cb, event_cb, s);
	bufferevent_setwatermark(bev, EV_READ, 0, POP3_READ_HIGH_WATER);
	bufferevent_setwatermark(bev, EV_WRITE, POP3_WRITE_LOW_WATER, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* ---- the service handler ---- */

static void pop3_start(struct conn *conn)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));

	s->conn = conn;
	conn->session = s;
	pop3_parser_init(&s->parser, (size_t)conn->cfg->s.pop3_max_line);
	s->state = POP3_STATE_AUTHORIZATION;
	install_callbacks(s);
	/* No APOP timestamp: no stored secret allows APOP (docs/pop3.md). */
	pop3_reply(s, "+OK Petrel POP3 server ready");
}

/* Engine stop: an idle session says goodbye now; a busy one after its
 * reply.  Nothing is deleted either way. */
static void pop3_shutdown(struct conn *conn)
{
	struct pop3_session *s = conn->session;

	if (s == NULL) {
		net_conn_close(&conn);
		return;
	}
	s->stopping = true;
	if (s->state == POP3_STATE_CLOSING)
		return;
	if (s->state == POP3_STATE_LINGER)
		return;  /* net.c finishes it */
	if (!s->busy && s->retr == NULL) {
		if (s->state == POP3_STATE_STLS)
			net_conn_close(&conn);
		else
			pop3_close_with(s, "-ERR [SYS/TEMP] Server shutting down");
	}
}

static void pop3_free_session(struct conn *conn)
{
	struct pop3_session *s = conn->session;

	conn->session = NULL;
	if (s == NULL)
		return;
	if (s->timer != NULL)
		event_free(s->timer);
	free(s->pending_reply);
	free(s->user);
	free(s->identity);
	sasl_free(&s->sasl);
	pop3_retr_free(&s->retr);
	if (s->drop != NULL)
		pop3_maildrop_unlock(s->drop);
	pop3_maildrop_unref(&s->drop);
	pop3_parser_deinit(&s->parser);
	free(s);
}

static const struct service_handler pop3_handler = {
	.service = SERVICE_POP3,
	.start = pop3_start,
	.shutdown = pop3_shutdown,
	.free_session = pop3_free_session,
	.refuse_line = "-ERR [SYS/TEMP] Too many connections, try again later\r\n",
};

static const struct service_handler pop3s_handler = {
	.service = SERVICE_POP3S,
	.start = pop3_start,
	.shutdown = pop3_shutdown,
	.free_session = pop3_free_session,
	.refuse_line = NULL,      /* implicit TLS: nothing can be written before the handshake */
};

void pop3_register(const struct pop3_deps *deps)
{
	if (deps->net == NULL || deps->workers == NULL || deps->store == NULL)
		panic("pop3_register: missing dependency");
	pop3g.net = deps->net;
	pop3g.workers = deps->workers;
	pop3g.store = deps->store;
	net_register(deps->net, &pop3_handler);
	net_register(deps->net, &pop3s_handler);
}
