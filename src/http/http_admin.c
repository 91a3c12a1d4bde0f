/*
 * The admin API session over HTTPS; see http_admin.h for the process
 * model and docs/admin-api.md for the protocol.
 *
 * One request at a time per connection: a session is READING (feeding
 * the pure parser from the input buffer), AUTHENTICATING (a worker checks
 * the password), DISPATCHING (the command runs on the main thread),
 * WRITING (the response drains) or LINGERING (after a response that ends
 * the connection, net_conn_finish() sees it out and closes).  Bytes that arrive while the session is not
 * READING stay in the input buffer, bounded by the read high-watermark,
 * and are parsed once the response has been written (pipelining).
 *
 * Asynchronous work never holds a pointer to the session: jobs carry the
 * connection id and look the connection up when they complete; a closed
 * connection's result is dropped (STYLE.md §3).
 */
#include "http/http_admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "auth/auth.h"
#include "auth/auth_limiter.h"
#include "core/log.h"
#include "core/str.h"
#include "directory/directory.h"
#include "http/http_private.h"

#define ADMIN_LOG "admin-api"
/* Text of GET /. */
#define ADMIN_BANNER "Petrel administration API\n"
#define ADMIN_AUTHENTICATE "WWW-Authenticate: Basic realm=\"Petrel\", charset=\"UTF-8\"\r\n"
/* Input buffered while a request is being answered; past it the socket
 * is not read (STYLE.md §4: a slow consumer stops reading). */
#define ADMIN_READ_HIGH_WATER (64 * 1024)
/* Decoded Basic credentials: an address (64 + 1 + 253) and a password
 * (DIRECTORY_MAX_PASSWORD), with room to spare. */
#define ADMIN_MAX_CREDENTIALS 2048
/* Failed logins on one connection before it is closed. */
#define ADMIN_MAX_AUTH_FAILURES 3
/* How long a closing connection's input is read and discarded. */
#define ADMIN_LINGER_SECONDS 2
/* Login names and commands are logged escaped, at most this long. */
#define ADMIN_LOG_MAX 256

/* Set once by http_admin_register; read-only afterwards. */
static struct {
	struct net *net;
	struct event_base *main_base;
	struct worker_pool *const *workers;
	struct admin_engine engine;
} admin;

enum admin_state {
	ADMIN_READING,
	ADMIN_AUTHENTICATING,
	ADMIN_DISPATCHING,
	ADMIN_WRITING,
	ADMIN_LINGERING,
};

struct admin_session {
	struct conn *conn;
	struct http_req_parser parser;
	enum admin_state state;
	bool close_after_write;   /* the response being written is the last */
	bool stopping;            /* the engine stops: close after the response */
	bool continue_sent;       /* "100 Continue" sent for this request */
	unsigned auth_failures;
	struct event *delay;      /* AUTHENTICATING: the 401 held by the limiter */
};

/* A password check, run on a worker thread. */
enum auth_result {
	AUTH_BAD_PASSWORD, AUTH_UNKNOWN_USER, AUTH_DISABLED, AUTH_LOCKED, AUTH_NOT_ADMIN, AUTH_OK
};

struct auth_job {
	struct net *net;
	uint64_t conn_id;
	struct cfg *cfg;          /* the limiter's settings */
	char ip[INET6_ADDRSTRLEN];
	char *login;
	char *password;           /* cleared and freed as soon as it is checked */
	enum auth_result result;
	int64_t delay_ms;         /* a failure's reply waits this long */
	char *address;            /* the user's address when the login names one */
};

/* A command, run on the main thread; the reply goes back to the loop. */
struct admin_call {
	struct net *net;
	uint64_t conn_id;
	struct event_base *conn_base;
	json_t *request;
	json_t *reply;
	char *user;               /* the administrator's address, for the log */
	char ip[INET6_ADDRSTRLEN];
};

static void admin_process_input(struct admin_session *s);

/* ---- helpers ---- */

/* Client text for a quoted log value: log_msg escapes control bytes,
 * 8-bit bytes and backslashes itself; only '"' is left, which would let a
 * value close its quotes and forge key=value fields, so it becomes \x22
 * (shown as \\x22 once log_msg has escaped the backslash).  Cut at
 * ADMIN_LOG_MAX bytes.  Newly allocated. */
static char *log_quote(const char *text, size_t len)
{
	struct buf b;
	size_t n = len < ADMIN_LOG_MAX ? len : ADMIN_LOG_MAX;

	buf_init(&b, ADMIN_LOG_MAX * 4 + 8);
	for (size_t i = 0; i < n; i++) {
		int ret = text[i] == '"' ? buf_append_str(&b, "\\x22") : buf_append_char(&b, text[i]);

		if (ret < 0)
			panic("log_quote: size computation wrong");
	}
	if (len > n && buf_append_str(&b, "...") < 0)
		panic("log_quote: size computation wrong");
	return buf_steal(&b);
}

static void set_timeouts(struct conn *c, int64_t seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };

	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

/* ---- responses ---- */

/*
 * Queues a response and moves to WRITING.  extra_headers is NULL or
 * complete header lines.  The connection closes after the response when
 * close is set, when the request could not be parsed (its framing is lost),
 * when the client asked for it, or when the engine is stopping.
 */
static void admin_respond(struct admin_session *s, int status, const char *content_type,
			  const char *body, size_t body_len, const char *extra_headers, bool close)
{
	struct evbuffer *out = bufferevent_get_output(s->conn->bev);
	const struct http_req_parser *rp = &s->parser;
	bool head = rp->complete && rp->req.method == HTTP_HEAD;
	char date[64];

	if (close || !rp->complete || !rp->req.keep_alive || s->stopping ||
	    s->auth_failures >= ADMIN_MAX_AUTH_FAILURES)
		s->close_after_write = true;
	str_date_utc((int64_t)time(NULL), "GMT", date, sizeof(date));
	evbuffer_add_printf(out,
			    "HTTP/1.1 %d %s\r\n"
			    "Date: %s\r\n"
			    "Content-Type: %s\r\n"
			    "Content-Length: %zu\r\n"
			    "Cache-Control: no-store\r\n"
			    "X-Content-Type-Options: nosniff\r\n"
			    "Connection: %s\r\n"
			    "%s"
			    "\r\n",
			    status, http_status_reason(status), date, content_type, body_len,
			    s->close_after_write ? "close" : "keep-alive",
			    extra_headers != NULL ? extra_headers : "");
	if (!head && body_len > 0)
		evbuffer_add(out, body, body_len);
	s->state = ADMIN_WRITING;
}

/* Sends obj (reference taken over) as the JSON body. */
static void admin_respond_json(struct admin_session *s, int status, json_t *obj,
			       const char *extra_headers, bool close)
{
	char *text = json_dumps(obj, JSON_COMPACT);
	char *body;

	json_decref(obj);
	if (text == NULL) {
		status = 500;
		text = xstrdup("{\"ok\":false,\"error\":\"internal error encoding the reply\"}");
	}
	body = xasprintf("%s\n", text);
	free(text);
	admin_respond(s, status, "application/json", body, strlen(body), extra_headers, close);
	free(body);
}

static void admin_respond_error(struct admin_session *s, int status, const char *error,
				const char *extra_headers, bool close)
{
	admin_respond_json(s, status, json_pack("{s:b, s:s}", "ok", 0, "error", error),
			   extra_headers, close);
}

static void admin_unauthorized(struct admin_session *s, const char *error)
{
	admin_respond_error(s, 401, error, ADMIN_AUTHENTICATE, false);
}

/* ---- the command, on the main thread ---- */

static void admin_call_free(struct admin_call *call)
{
	json_decref(call->request);
	json_decref(call->reply);
	free(call->user);
	free(call);
}

/* On the connection's loop: sends the reply, unless the connection is gone. */
static void admin_call_reply(void *arg)
{
	struct admin_call *call = arg;
	struct conn *c = net_conn_find(call->net, call->conn_id);
	struct admin_session *s;
	json_t *reply;

	if (c == NULL || c->session == NULL) {
		admin_call_free(call);
		return;
	}
	s = c->session;
	if (s->state != ADMIN_DISPATCHING)
		panic("admin_call_reply: conn=%llu in state %d", (unsigned long long)c->id, s->state);
	reply = call->reply;
	call->reply = NULL;
	/* The request was understood and authorised; a command that fails
	 * (unknown command, configuration refused by reload) is 422. */
	admin_respond_json(s, json_is_true(json_object_get(reply, "ok")) ? 200 : 422, reply,
			   NULL, false);
	admin_call_free(call);
}

/* Runs the command and logs it. */
static void admin_call_exec(void *arg)
{
	struct admin_call *call = arg;
	const char *command = json_string_value(json_object_get(call->request, "command"));
	char *quoted = log_quote(command != NULL ? command : "", command != NULL ? strlen(command) : 0);

	call->reply = admin_dispatch(call->request, &admin.engine);
	log_info(ADMIN_LOG, "conn=%llu ip=%s user=%s command=\"%s\" ok=%s",
		 (unsigned long long)call->conn_id, call->ip, call->user, quoted,
		 json_is_true(json_object_get(call->reply, "ok")) ? "yes" : "no");
	free(quoted);
}

/* On the main thread: admin_dispatch may touch the engine's state. */
static void admin_call_main(void *arg)
{
	struct admin_call *call = arg;

	admin_call_exec(call);
	if (evloop_run_on(call->conn_base, admin_call_reply, call) < 0)
		admin_call_free(call);
}

/* Sends call to the main thread, or, for a password to hash, to the
 * worker pool (admin_request_is_slow): never an event loop's work. */
static int admin_call_submit(struct admin_call *call)
{
	struct worker_pool *pool = *admin.workers;

	if (!admin_request_is_slow(call->request))
		return evloop_run_on(admin.main_base, admin_call_main, call);
	if (pool == NULL)
		return -1;
	return worker_submit(pool, call->conn_base, admin_call_exec, admin_call_reply, call);
}

/* After a successful login: parse the body and send the command to the
 * main thread. */
static void admin_run_command(struct admin_session *s, const char *user)
{
	struct conn *c = s->conn;
	const struct buf *body = &s->parser.req.body;
	struct admin_call *call;
	json_error_t jerr;
	json_t *request;

	if (!c->authenticated) {
		/* From now on the idle timeout applies, and the connection is
		 * not closed to make room for others. */
		net_conn_set_authenticated(c);
		set_timeouts(c, c->cfg->s.limits_idle_timeout);
	}
	request = json_loadb(body->len > 0 ? body->data : "", body->len, JSON_REJECT_DUPLICATES,
			     &jerr);
	if (request == NULL || !json_is_object(request)) {
		json_decref(request);
		admin_respond_error(s, 400, "the request body is not a JSON object", NULL, false);
		return;
	}
	call = xcalloc(1, sizeof(*call));
	call->net = admin.net;
	call->conn_id = c->id;
	call->conn_base = c->base;
	call->request = request;
	call->user = xstrdup(user);
	memcpy(call->ip, c->peer_ip, sizeof(call->ip));
	if (admin_call_submit(call) < 0) {
		admin_call_free(call);
		admin_respond_error(s, 503, "server busy, try again later", "Retry-After: 5\r\n", false);
		return;
	}
	s->state = ADMIN_DISPATCHING;
}

/* ---- authentication, on the worker pool ---- */

static void auth_job_free(struct auth_job *job)
{
	if (job->password != NULL) {
		explicit_bzero(job->password, strlen(job->password));
		free(job->password);
	}
	cfg_unref(&job->cfg);
	free(job->login);
	free(job->address);
	free(job);
}

static const char *auth_reason(enum auth_result r)
{
	switch (r) {
	case AUTH_UNKNOWN_USER: return "unknown user";
	case AUTH_BAD_PASSWORD: return "wrong password";
	case AUTH_DISABLED: return "account disabled";
	case AUTH_LOCKED: return "account locked";
	case AUTH_NOT_ADMIN: return "not an administrator";
	default: return "ok";
	}
}

/* The shared brute-force limiter (auth/auth_limiter.h), as for the mail
 * protocols: a locked account is refused like a wrong password, a right
 * password clears the account's count, and a failure is counted for the
 * IP and the account, logged to security.log and answered late. */
static void auth_job_count(struct auth_job *job, struct auth_limiter *limiter,
			   const struct directory *dir)
{
	char *account = auth_account_key(dir, job->login);
	struct auth_attempt attempt = {
		.service = ADMIN_LOG, .ip = job->ip, .session = job->conn_id, .mechanism = "BASIC",
		.login = job->login, .account = account,
	};

	if ((job->result == AUTH_OK || job->result == AUTH_NOT_ADMIN) &&
	    auth_limiter_account_locked(limiter, account, NULL))
		job->result = AUTH_LOCKED;
	attempt.reason = auth_reason(job->result);
	if (job->result == AUTH_OK || job->result == AUTH_NOT_ADMIN)
		auth_limiter_success(limiter, &attempt);
	else
		job->delay_ms = auth_limiter_failure(limiter, &attempt);
	free(account);
}

/* On a worker thread: yescrypt is slow on purpose. */
static void auth_job_run(void *arg)
{
	struct auth_job *job = arg;
	struct directory *dir = directory_current();
	const struct dir_user *user = dir != NULL ? directory_find_user(dir, job->login) : NULL;
	/* With user NULL this does the same work, so that timing does not
	 * tell which users exist. */
	bool match = directory_verify_password(user, job->password);

	explicit_bzero(job->password, strlen(job->password));
	free(job->password);
	job->password = NULL;
	if (user == NULL)
		job->result = AUTH_UNKNOWN_USER;
	else if (!match)
		job->result = AUTH_BAD_PASSWORD;
	else if (!user->enabled)
		job->result = AUTH_DISABLED;
	else if (!user->admin)
		job->result = AUTH_NOT_ADMIN;
	else
		job->result = AUTH_OK;
	if (user != NULL)
		job->address = xstrdup(user->address);
	auth_job_count(job, auth_limiter_shared(&job->cfg->s), dir);
	directory_unref(&dir);
}

/* Logs a refused login to security.log: ip and login, never the password.
 * (Failures of the password check are logged by the limiter.) */
static void log_auth_failure(const struct conn *c, const char *login, size_t login_len,
			     const char *reason)
{
	char *quoted = log_quote(login, login_len);

	log_security(ADMIN_LOG, "conn=%llu ip=%s login=\"%s\" authentication failed reason=\"%s\"",
		     (unsigned long long)c->id, c->peer_ip, quoted, reason);
	free(quoted);
}

/* The limiter's delay is over: the 401 goes out. */
static void auth_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct admin_session *s = arg;

	(void)fd;
	(void)what;
	event_free(s->delay);
	s->delay = NULL;
	admin_unauthorized(s, "invalid user name or password");
}

static void auth_failed(struct admin_session *s, int64_t delay_ms)
{
	struct timeval tv = { (time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000) };

	s->auth_failures++;
	if (delay_ms <= 0) {
		admin_unauthorized(s, "invalid user name or password");
		return;
	}
	s->delay = evtimer_new(s->conn->base, auth_delay_cb, s);
	if (s->delay == NULL || evtimer_add(s->delay, &tv) < 0) {
		if (s->delay != NULL)
			event_free(s->delay);
		s->delay = NULL;
		admin_unauthorized(s, "invalid user name or password");
	}
}

/* On the connection's loop (or, when the loops are gone at shutdown, on
 * the worker: the connection is then gone too). */
static void auth_job_done(void *arg)
{
	struct auth_job *job = arg;
	struct conn *c = net_conn_find(job->net, job->conn_id);
	struct admin_session *s;

	if (c == NULL || c->session == NULL) {
		auth_job_free(job);
		return;
	}
	s = c->session;
	if (s->state != ADMIN_AUTHENTICATING)
		panic("auth_job_done: conn=%llu in state %d", (unsigned long long)c->id, s->state);
	switch (job->result) {
	case AUTH_OK:
		admin_run_command(s, job->address);
		break;
	case AUTH_NOT_ADMIN:
		log_auth_failure(c, job->login, strlen(job->login), auth_reason(job->result));
		admin_respond_error(s, 403, "this user is not an administrator", NULL, false);
		break;
	default:
		auth_failed(s, job->delay_ms);
		break;
	}
	auth_job_free(job);
}

/* An address locked out by the limiter gets no password check at all. */
static bool admin_ip_locked(struct admin_session *s)
{
	struct conn *c = s->conn;
	int64_t retry;
	char *retry_after;

	if (!auth_limiter_ip_locked(auth_limiter_shared(&c->cfg->s), c->peer_ip, &retry))
		return false;
	log_security(ADMIN_LOG, "conn=%llu ip=%s login refused: address locked out for %llds",
		     (unsigned long long)c->id, c->peer_ip, (long long)(retry / 1000));
	retry_after = xasprintf("Retry-After: %lld\r\n", (long long)(retry + 999) / 1000);
	admin_respond_error(s, 429, "too many failed logins, try again later", retry_after, true);
	free(retry_after);
	return true;
}

static void admin_authenticate(struct admin_session *s)
{
	struct conn *c = s->conn;
	const struct http_request *req = &s->parser.req;
	struct worker_pool *pool = *admin.workers;
	struct auth_job *job;
	const char *error;
	char *user, *password;

	if (!req->has_authorization) {
		/* The usual first request of a client (RFC 9110 11.6.1
		 * challenge): not worth a security.log line. */
		admin_unauthorized(s, "authentication required");
		return;
	}
	if (admin_ip_locked(s))
		return;
	if (http_basic_decode(req->authorization.len > 0 ? req->authorization.data : "",
			      req->authorization.len,
			      ADMIN_MAX_CREDENTIALS, &user, &password, &error) < 0) {
		struct auth_attempt attempt = {
			.service = ADMIN_LOG, .ip = c->peer_ip, .session = c->id,
			.mechanism = "BASIC", .reason = error,
		};

		/* Counted for the IP only (no account to speak of), and
		 * logged by the limiter. */
		auth_failed(s, auth_limiter_failure(auth_limiter_shared(&c->cfg->s), &attempt));
		return;
	}
	job = xcalloc(1, sizeof(*job));
	job->net = admin.net;
	job->conn_id = c->id;
	job->cfg = cfg_ref(c->cfg);
	memcpy(job->ip, c->peer_ip, sizeof(job->ip));
	job->login = user;
	job->password = password;
	if (pool == NULL || worker_submit(pool, c->base, auth_job_run, auth_job_done, job) < 0) {
		auth_job_free(job);
		admin_respond_error(s, 503, "server busy, try again later", "Retry-After: 5\r\n", false);
		return;
	}
	s->state = ADMIN_AUTHENTICATING;
}

/* ---- requests ---- */

static void admin_handle_request(struct admin_session *s)
{
	const char *allow;
	char *extra;

	switch (http_admin_route(&s->parser.req, &allow)) {
	case HTTP_ADMIN_BANNER:
		admin_respond(s, 200, "text/plain; charset=utf-8", ADMIN_BANNER,
			      strlen(ADMIN_BANNER), NULL, false);
		break;
	case HTTP_ADMIN_API:
		admin_authenticate(s);
		break;
	case HTTP_ADMIN_METHOD_NOT_ALLOWED:
		extra = xasprintf("Allow: %s\r\n", allow);
		admin_respond_error(s, 405, "method not allowed", extra, false);
		free(extra);
		break;
	case HTTP_ADMIN_UNSUPPORTED_TYPE:
		admin_respond_error(s, 415, "the request body must be JSON "
				    "(Content-Type: application/json)", NULL, false);
		break;
	case HTTP_ADMIN_LENGTH_REQUIRED:
		admin_respond_error(s, 411, "Content-Length required", NULL, false);
		break;
	case HTTP_ADMIN_NOT_FOUND:
	default:
		admin_respond_error(s, 404, "not found (the API is POST " HTTP_ADMIN_API_PATH ")",
				    NULL, false);
		break;
	}
}

/* Feeds buffered input to the parser while the session is READING. */
static void admin_process_input(struct admin_session *s)
{
	struct conn *c = s->conn;
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (s->state == ADMIN_READING) {
		struct evbuffer_iovec vec;
		enum http_req_result res;
		size_t used;

		if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1 || vec.iov_len == 0)
			break;
		res = http_req_parser_feed(&s->parser, vec.iov_base, vec.iov_len, &used);
		evbuffer_drain(in, used);
		if (res == HTTP_REQ_COMPLETE) {
			admin_handle_request(s);
		} else if (res == HTTP_REQ_ERROR) {
			log_debug(ADMIN_LOG, "conn=%llu ip=%s request refused status=%d reason=\"%s\"",
				  (unsigned long long)c->id, c->peer_ip, s->parser.error_status,
				  s->parser.error);
			admin_respond_error(s, s->parser.error_status, s->parser.error, NULL, true);
		}
	}
	/* RFC 9110 10.1.1: a client that waits for "100 Continue" gets it
	 * once the headers passed their checks (413 would have been sent). */
	if (s->state == ADMIN_READING && s->parser.headers_done && s->parser.req.expect_continue &&
	    !s->continue_sent) {
		s->continue_sent = true;
		evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
	}
}

/* ---- bufferevent callbacks ---- */

static void admin_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	admin_process_input(arg);
}

static void admin_write_cb(struct bufferevent *bev, void *arg)
{
	struct admin_session *s = arg;
	struct conn *c = s->conn;

	if (s->state != ADMIN_WRITING || evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	if (s->close_after_write) {
		s->state = ADMIN_LINGERING;
		net_conn_finish(c, s->stopping ? 0 : ADMIN_LINGER_SECONDS);
		return;
	}
	http_req_parser_reset(&s->parser);
	s->continue_sent = false;
	s->state = ADMIN_READING;
	/* Requests pipelined meanwhile are waiting in the input buffer. */
	admin_process_input(s);
}

static void admin_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct admin_session *s = arg;
	struct conn *c = s->conn;

	if ((what & BEV_EVENT_ERROR) != 0) {
		char text[256];
		const char *layer = net_bev_error(bev, text, sizeof(text));

		log_debug(ADMIN_LOG, "conn=%llu ip=%s closed on %s error: %s", (unsigned long long)c->id,
			  c->peer_ip, layer, text);
	} else if ((what & BEV_EVENT_TIMEOUT) != 0) {
		log_debug(ADMIN_LOG, "conn=%llu ip=%s closed: %s timeout", (unsigned long long)c->id,
			  c->peer_ip, c->authenticated ? "idle" : "pre-authentication");
	} else if ((what & BEV_EVENT_EOF) != 0) {
		log_debug(ADMIN_LOG, "conn=%llu ip=%s closed by the client", (unsigned long long)c->id,
			  c->peer_ip);
	} else {
		return;
	}
	net_conn_close(&c);
}

/* ---- the service handler ---- */

static void admin_start(struct conn *conn)
{
	struct admin_session *s = xcalloc(1, sizeof(*s));

	s->conn = conn;
	s->state = ADMIN_READING;
	http_req_parser_init(&s->parser, (size_t)conn->cfg->s.control_max_request);
	conn->session = s;
	bufferevent_setcb(conn->bev, admin_read_cb, admin_write_cb, admin_event_cb, s);
	bufferevent_setwatermark(conn->bev, EV_READ, 0, ADMIN_READ_HIGH_WATER);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
}

/* Engine stop: an idle connection closes now; one with a request in
 * flight finishes it, answers with "Connection: close", then closes. */
static void admin_shutdown(struct conn *conn)
{
	struct admin_session *s = conn->session;

	if (s == NULL) {
		net_conn_close(&conn);
		return;
	}
	s->stopping = true;
	if (s->state == ADMIN_READING && http_req_parser_idle(&s->parser) &&
	    evbuffer_get_length(bufferevent_get_input(conn->bev)) == 0)
		net_conn_close(&conn);
}

static void admin_free_session(struct conn *conn)
{
	struct admin_session *s = conn->session;

	conn->session = NULL;
	if (s == NULL)
		return;
	if (s->delay != NULL)
		event_free(s->delay);
	http_req_parser_deinit(&s->parser);
	free(s);
}

static const struct service_handler admin_handler = {
	.service = SERVICE_ADMIN,
	.start = admin_start,
	.shutdown = admin_shutdown,
	.free_session = admin_free_session,
	.refuse_line = NULL,      /* implicit TLS: nothing can be written before the handshake */
};

void http_admin_register(const struct http_admin_deps *deps)
{
	if (deps->net == NULL || deps->main_base == NULL || deps->workers == NULL ||
	    deps->engine == NULL)
		panic("http_admin_register: missing dependency");
	admin.net = deps->net;
	admin.main_base = deps->main_base;
	admin.workers = deps->workers;
	admin.engine = *deps->engine;
	net_register(deps->net, &admin_handler);
}
