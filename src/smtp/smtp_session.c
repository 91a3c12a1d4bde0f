/*
 * The SMTP session: one per connection, on its event-loop thread for
 * life.  It reads command lines (capped before they are copied, STYLE.md
 * §4), message data (DATA until CRLF.CRLF, BDAT chunks by count) and
 * SASL responses, feeds them to the pure parsers (smtp_parse.c) and the
 * command handlers (smtp_cmds.c, smtp_auth.c), and streams accepted data
 * into a queue writer.  The 250 after the data is sent only when
 * queue_writer_commit, run on the worker pool, returned 0.
 *
 * Flow control: the read high-watermark stops reading from a client that
 * sends faster than we handle (a commit in flight, a slow disk), and input
 * is not processed while more than SMTP_OUTPUT_HIGH_WATER bytes of replies
 * wait for a client that does not read them; so memory per session is
 * bounded whatever the client does (HOSTILE-INPUT 1, 9).
 *
 * Asynchronous work never holds a pointer to the session: a job carries
 * the connection id and owns everything it works on (the writer, a copy
 * of the envelope); its completion looks the connection up and drops the
 * result when the session is gone (STYLE.md §3).
 */
#include "smtp/smtp.h"
#include "smtp/smtp_private.h"

#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "core/log.h"
#include "core/str.h"
#include "core/tls.h"
#include "queue/queue.h"

#define SMTP_LOG "smtp"
/* Input buffered before the socket is no longer read. */
#define SMTP_READ_HIGH_WATER (256 * 1024)
/* Replies waiting for a client that does not read them: past this, input
 * is not processed until they drain (RFC 2920 deadlock avoidance is the
 * client's job; our memory is ours). */
#define SMTP_OUTPUT_HIGH_WATER (256 * 1024)
/* Data fed to the parser at once; its output buffer holds 2 * this + 3. */
#define SMTP_FEED_MAX (16 * 1024)
#define SMTP_CHUNK_MAX (2 * SMTP_FEED_MAX + 16 * 1024)
/* Client text in logs, at most this long. */
#define SMTP_LOG_MAX 200
/* Recipients named in a mail.log line. */
#define SMTP_LOG_RCPTS 10

struct smtp_globals smtp_globals;

static void smtp_start(struct conn *conn);
static void smtp_install_callbacks(struct smtp_session *s);
static void smtp_shutdown(struct conn *conn);
static void smtp_free_session(struct conn *conn);

static const struct service_handler smtp_handlers[] = {
	{ SERVICE_SMTP, smtp_start, smtp_shutdown, smtp_free_session,
	  "421 4.7.0 Too many connections, try again later\r\n" },
	{ SERVICE_SUBMISSION, smtp_start, smtp_shutdown, smtp_free_session,
	  "421 4.7.0 Too many connections, try again later\r\n" },
	{ SERVICE_SMTPS, smtp_start, smtp_shutdown, smtp_free_session, NULL },
};

void smtp_register(const struct smtp_deps *deps)
{
	if (deps->net == NULL || deps->workers == NULL)
		panic("smtp_register: missing dependency");
	smtp_globals.net = deps->net;
	smtp_globals.workers = deps->workers;
	if (smtp_globals.rate == NULL)
		smtp_globals.rate = smtp_rate_new(100000, NULL);
	for (size_t i = 0; i < sizeof(smtp_handlers) / sizeof(smtp_handlers[0]); i++)
		net_register(deps->net, &smtp_handlers[i]);
}

bool smtp_is_submission(const struct smtp_session *s)
{
	/* RFC 8314 3.3: port 465 is message submission over implicit TLS. */
	return s->conn->service == SERVICE_SUBMISSION || s->conn->service == SERVICE_SMTPS;
}

char *smtp_log_text(const char *text, size_t len)
{
	struct buf b;

	buf_init(&b, SMTP_LOG_MAX * 4 + 8);
	for (size_t i = 0; i < len && i < SMTP_LOG_MAX; i++) {
		/* log_msg escapes control and 8-bit bytes; a '"' would let a
		 * value close its quotes and forge fields. */
		int ret = text[i] == '"' ? buf_append_str(&b, "\\x22") : buf_append_char(&b, text[i]);

		if (ret < 0)
			panic("smtp_log_text: size computation wrong");
	}
	if (len > SMTP_LOG_MAX && buf_append_str(&b, "...") < 0)
		panic("smtp_log_text: size computation wrong");
	if (b.data == NULL)
		return xstrdup("");
	return buf_steal(&b);
}

/* ---- replies ---- */

void smtp_reply_line(struct smtp_session *s, const char *line)
{
	struct evbuffer *out = bufferevent_get_output(s->conn->bev);

	evbuffer_add(out, line, strlen(line));
	evbuffer_add(out, "\r\n", 2);
}

void smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->conn->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

void smtp_close_with(struct smtp_session *s, const char *line)
{
	struct timeval tv = { 10, 0 };

	if (s->state == SMTP_STATE_CLOSING)
		return;
	if (line != NULL)
		smtp_reply_line(s, line);
	s->state = SMTP_STATE_CLOSING;
	/* Whatever else the client sends is not read; the reply gets 10
	 * seconds to leave. */
	bufferevent_disable(s->conn->bev, EV_READ);
	bufferevent_set_timeouts(s->conn->bev, NULL, &tv);
	bufferevent_enable(s->conn->bev, EV_WRITE);
	/* Nothing to write: the write callback would not come by itself. */
	if (evbuffer_get_length(bufferevent_get_output(s->conn->bev)) == 0)
		bufferevent_trigger(s->conn->bev, EV_WRITE,
				    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

void smtp_reply_error(struct smtp_session *s, const char *line)
{
	const struct settings *set = &s->conn->cfg->s;

	smtp_reply_line(s, line);
	if (s->auth_user != NULL && (s->exempt & SMTP_EXEMPT_FAILED_COMMANDS))
		return;
	if (++s->failed_commands >= (unsigned)set->smtp_max_failed_commands) {
		log_security(SMTP_LOG, "conn=%llu ip=%s too many failed commands limit=%lld; closing",
			     (unsigned long long)s->conn->id, s->conn->peer_ip,
			     (long long)set->smtp_max_failed_commands);
		smtp_close_with(s, "421 4.7.0 Error: too many errors; closing connection");
	}
}

/* ---- transaction ---- */

static void rcpts_free(struct smtp_rcpt *rcpts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rcpts[i].address);
		free(rcpts[i].orcpt);
	}
	free(rcpts);
}

void smtp_txn_reset(struct smtp_session *s)
{
	if (s->writer != NULL)
		queue_writer_abort(&s->writer);
	rcpts_free(s->rcpts, s->rcpt_count);
	s->rcpts = NULL;
	s->rcpt_count = s->rcpt_alloc = 0;
	s->rcpt_accepted = 0;
	s->in_mail = false;
	s->rcpt_limit_logged = false;
	s->bdat_txn = false;
	s->bdat_failed = false;
	s->bdat_last = false;
	s->bdat_remaining = 0;
	s->data_error = NULL;
	s->discarded = 0;
	s->received_len = 0;
	memset(&s->sender, 0, sizeof(s->sender));
	memset(&s->mail, 0, sizeof(s->mail));
	buf_reset(&s->chunk);
}

void smtp_session_reset(struct smtp_session *s)
{
	smtp_txn_reset(s);
	free(s->helo);
	s->helo = NULL;
	s->flags &= ~SMTP_SF_ESMTP;
	free(s->auth_user);
	s->auth_user = NULL;
	smtp_sasl_free(&s->sasl);
}

/* ---- Received: and the message ---- */

static void rfc5322_date(char *out, size_t size)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t now = time(NULL);
	struct tm tm;

	if (gmtime_r(&now, &tm) == NULL) {
		snprintf(out, size, "Thu, 1 Jan 1970 00:00:00 +0000");
		return;
	}
	snprintf(out, size, "%s, %d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
		 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The EHLO name as it may appear in a header: anything outside a
 * host-name-ish set becomes '?'. */
static void safe_helo(const char *helo, char *out, size_t size)
{
	size_t i = 0;

	for (; helo != NULL && helo[i] != '\0' && i + 1 < size; i++) {
		unsigned char c = (unsigned char)helo[i];

		out[i] = (char)(((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				 (c >= '0' && c <= '9') || strchr(".-_:[]", c) != NULL) ? c : '?');
	}
	out[i] = '\0';
	if (i == 0)
		snprintf(out, size, "unknown");
}

static char *tls_describe(const struct smtp_session *s)
{
	SSL *ssl;

	if (!s->conn->tls_active)
		return NULL;
	ssl = bufferevent_openssl_get_ssl(s->conn->bev);
	return ssl != NULL ? tls_session_describe(ssl) : NULL;
}

static int build_received(struct smtp_session *s, struct buf *out)
{
	char date[64], helo[SMTP_MAX_HELO + 1], with[16];
	char *tls = tls_describe(s);
	bool v6 = strchr(s->conn->peer_ip, ':') != NULL;
	int ret = 0;

	rfc5322_date(date, sizeof(date));
	safe_helo(s->helo, helo, sizeof(helo));
	/* RFC 3848 / RFC 6531 7.7 protocol types */
	snprintf(with, sizeof(with), "%s%s%s",
		 s->mail.smtputf8 ? "UTF8SMTP" : (s->flags & SMTP_SF_ESMTP) ? "ESMTP" : "SMTP",
		 tls != NULL ? "S" : "", s->auth_user != NULL ? "A" : "");
	ret |= buf_printf(out, "Received: from %s ([%s%s])\r\n\tby %s (Petrel) with %s\r\n", helo,
			  v6 ? "IPv6:" : "", s->conn->peer_ip, s->conn->cfg->s.server_hostname, with);
	if (tls != NULL)
		ret |= buf_printf(out, "\t(%s)\r\n", tls);
	if (s->auth_user != NULL)
		ret |= buf_printf(out, "\t(authenticated as %s)\r\n", s->auth_user);
	if (s->rcpt_count == 1)
		ret |= buf_printf(out, "\tfor <%s>; %s\r\n", s->rcpts[0].address, date);
	else
		ret |= buf_printf(out, "\t; %s\r\n", date);
	free(tls);
	return ret == 0 ? 0 : -1;
}

#define SMTP_REPLY_NOSPACE "452 4.3.1 Insufficient system storage, try again later"

/* A full spool (RFC 3463 4.3.1) is told apart from other write errors. */
static bool no_space(int err)
{
	return err == ENOSPC || err == EDQUOT;
}

int smtp_message_begin(struct smtp_session *s, const char **error_r)
{
	struct queue *q = queue_current();
	char *error = NULL;

	if (q == NULL) {
		log_error(SMTP_LOG, "conn=%llu no mail queue: refusing the message", (unsigned long long)s->conn->id);
		*error_r = "451 4.3.0 Error: mail queue unavailable, try again later";
		return -1;
	}
	if (queue_writer_new(q, &s->writer, &error) < 0) {
		log_error(SMTP_LOG, "conn=%llu cannot start a queue file: %s",
			  (unsigned long long)s->conn->id, error);
		free(error);
		s->writer = NULL;
		*error_r = "452 4.3.1 Insufficient system storage, try again later";
		return -1;
	}
	buf_reset(&s->chunk);
	if (build_received(s, &s->chunk) < 0)
		panic("smtp: Received: header larger than the chunk buffer");
	s->received_len = s->chunk.len;
	if (queue_writer_write(s->writer, s->chunk.data, s->chunk.len, &error) < 0) {
		int e = errno;

		log_error(SMTP_LOG, "conn=%llu queue file write error: %s", (unsigned long long)s->conn->id,
			  error);
		free(error);
		queue_writer_abort(&s->writer);
		*error_r = no_space(e) ? SMTP_REPLY_NOSPACE
			: "451 4.3.0 Error: queue file write error, try again later";
		return -1;
	}
	buf_reset(&s->chunk);
	s->data_error = NULL;
	s->discarded = 0;
	return 0;
}

static uint64_t header_size(const struct smtp_data_parser *p)
{
	return p->header_bytes + (p->in_header ? p->line_len : 0);
}

/* Stores parser output: the limits first, then the writer.  After a
 * refusal the data is read and thrown away until its end; a client that
 * sends more than another maximum size after that is cut off. */
static void data_store(struct smtp_session *s, const char *data, size_t len)
{
	const struct settings *set = &s->conn->cfg->s;
	char *error = NULL;

	/* The octets of a refused BDAT chunk: read, checked for nothing,
	 * dropped (its reply is already decided). */
	if (s->writer == NULL && s->data_error == NULL)
		return;
	if (s->data_error == NULL) {
		if (s->received_len + s->data.out_bytes > (uint64_t)set->smtp_max_message_size) {
			s->data_error = "552 5.3.4 Error: message size exceeds the fixed maximum message size";
			log_security(SMTP_LOG, "conn=%llu ip=%s message size limit hit limit=%lld",
				     (unsigned long long)s->conn->id, s->conn->peer_ip,
				     (long long)set->smtp_max_message_size);
		} else if (header_size(&s->data) > (uint64_t)set->smtp_max_header_size) {
			s->data_error = "552 5.3.4 Error: message header section too large";
			log_security(SMTP_LOG, "conn=%llu ip=%s header size limit hit limit=%lld",
				     (unsigned long long)s->conn->id, s->conn->peer_ip,
				     (long long)set->smtp_max_header_size);
		} else if (s->writer != NULL && len > 0 &&
			   queue_writer_write(s->writer, data, len, &error) < 0) {
			int e = errno;

			log_error(SMTP_LOG, "conn=%llu queue file write error: %s",
				  (unsigned long long)s->conn->id, error);
			free(error);
			s->data_error = no_space(e) ? SMTP_REPLY_NOSPACE
				: "451 4.3.0 Error: queue file write error, try again later";
		}
		if (s->data_error != NULL && s->writer != NULL)
			queue_writer_abort(&s->writer);
		if (s->data_error == NULL)
			return;
	}
	s->discarded += len;
	if (s->discarded > (uint64_t)set->smtp_max_message_size) {
		log_security(SMTP_LOG, "conn=%llu ip=%s kept sending after the message was refused; closing",
			     (unsigned long long)s->conn->id, s->conn->peer_ip);
		smtp_close_with(s, s->data_error);
	}
}

/* ---- the commit, on the worker pool ---- */

struct commit_job {
	struct net *net;
	uint64_t conn_id;
	struct queue_writer *writer;
	struct queue_envelope_spec env;
	struct queue_recipient_spec *rspecs;
	struct smtp_rcpt *rcpts;
	size_t rcpt_count;
	char *sender, *envid, *helo, *auth_user, *tls;
	char ip[INET6_ADDRSTRLEN];
	uint64_t size;
	int ret;
	int err;                  /* errno of a failed commit */
	char *queue_id;
	char *error;
};

static void commit_job_free(struct commit_job *job)
{
	if (job->writer != NULL)
		queue_writer_abort(&job->writer);
	rcpts_free(job->rcpts, job->rcpt_count);
	free(job->rspecs);
	free(job->sender);
	free(job->envid);
	free(job->helo);
	free(job->auth_user);
	free(job->tls);
	free(job->queue_id);
	free(job->error);
	free(job);
}

static void log_accepted(const struct commit_job *job)
{
	struct buf rcpts;
	char *sender = smtp_log_text(job->sender, strlen(job->sender));

	buf_init(&rcpts, 16 * 1024);
	for (size_t i = 0; i < job->rcpt_count && i < SMTP_LOG_RCPTS; i++) {
		char *r = smtp_log_text(job->rcpts[i].address, strlen(job->rcpts[i].address));

		if (buf_printf(&rcpts, "%s<%s>", i > 0 ? "," : "", r) < 0)
			panic("log_accepted: recipients too long");
		free(r);
	}
	if (job->rcpt_count > SMTP_LOG_RCPTS && buf_printf(&rcpts, ",...") < 0)
		panic("log_accepted: recipients too long");
	log_mail(SMTP_LOG, "conn=%llu queue_id=%s accepted ip=%s sender=<%s> nrcpt=%zu rcpts=%s "
		 "size=%llu tls=\"%s\" auth=%s", (unsigned long long)job->conn_id, job->queue_id,
		 job->ip, sender, job->rcpt_count, rcpts.data, (unsigned long long)job->size,
		 job->tls != NULL ? job->tls : "none", job->auth_user != NULL ? job->auth_user : "-");
	buf_deinit(&rcpts);
	free(sender);
}

static void commit_run(void *arg)
{
	struct commit_job *job = arg;

	job->ret = queue_writer_commit(&job->writer, &job->env, &job->queue_id, &job->error);
	job->err = job->ret < 0 ? errno : 0;
	job->writer = NULL;
	/* Logged here, before the queue's own lines about the message. */
	if (job->ret == 0)
		log_accepted(job);
}

static void commit_done(void *arg)
{
	struct commit_job *job = arg;
	struct conn *c = net_conn_find(job->net, job->conn_id);
	struct smtp_session *s;

	if (job->ret != 0) {
		log_error(SMTP_LOG, "conn=%llu ip=%s cannot queue the message: %s",
			  (unsigned long long)job->conn_id, job->ip, job->error != NULL ? job->error : "?");
	}
	if (c == NULL || c->session == NULL) {
		if (job->ret == 0)
			log_warn(SMTP_LOG, "conn=%llu queue_id=%s client left before the 250 reply "
				 "(it may send the message again)", (unsigned long long)job->conn_id,
				 job->queue_id);
		commit_job_free(job);
		return;
	}
	s = c->session;
	s->flags &= ~SMTP_SF_JOB;
	if (job->ret == 0) {
		smtp_reply(s, "250 2.0.0 Ok: queued as %s", job->queue_id);
		smtp_rate_count(smtp_globals.rate, c->peer_ip);
		s->messages++;
	} else if (no_space(job->err)) {
		smtp_reply_line(s, SMTP_REPLY_NOSPACE);
	} else {
		smtp_reply_line(s, "451 4.3.0 Error: could not queue the message, try again later");
	}
	commit_job_free(job);
	smtp_txn_reset(s);
	s->state = SMTP_STATE_COMMAND;
	smtp_process_input(s);
}

static void commit_start(struct smtp_session *s)
{
	struct worker_pool *pool = *smtp_globals.workers;
	struct commit_job *job = xcalloc(1, sizeof(*job));

	job->net = smtp_globals.net;
	job->conn_id = s->conn->id;
	job->writer = s->writer;
	s->writer = NULL;
	job->rcpts = s->rcpts;
	job->rcpt_count = s->rcpt_count;
	s->rcpts = NULL;
	s->rcpt_count = s->rcpt_alloc = 0;
	job->rspecs = xcalloc(job->rcpt_count, sizeof(*job->rspecs));
	for (size_t i = 0; i < job->rcpt_count; i++) {
		job->rspecs[i].address = job->rcpts[i].address;
		job->rspecs[i].orcpt = job->rcpts[i].orcpt;
		/* SMTP_NOTIFY_* and QUEUE_NOTIFY_* are the same bits. */
		job->rspecs[i].notify = job->rcpts[i].notify;
	}
	job->sender = xstrdup(s->sender.address);
	job->envid = s->mail.has_envid ? xstrdup(s->mail.envid) : NULL;
	job->helo = s->helo != NULL ? xstrdup(s->helo) : NULL;
	job->auth_user = s->auth_user != NULL ? xstrdup(s->auth_user) : NULL;
	job->tls = tls_describe(s);
	memcpy(job->ip, s->conn->peer_ip, sizeof(job->ip));
	job->size = s->data.out_bytes + s->received_len;
	job->env.sender = job->sender;
	job->env.envid = job->envid;
	job->env.ret = s->mail.ret == SMTP_RET_FULL ? QUEUE_RET_FULL
		: s->mail.ret == SMTP_RET_HDRS ? QUEUE_RET_HDRS : QUEUE_RET_DEFAULT;
	job->env.smtputf8 = s->mail.smtputf8;
	job->env.body_8bit = s->mail.body == SMTP_BODY_8BITMIME;
	job->env.client_ip = job->ip;
	job->env.helo = job->helo;
	job->env.auth_user = job->auth_user;
	job->env.recipients = job->rspecs;
	job->env.recipient_count = job->rcpt_count;
	if (pool == NULL || worker_submit(pool, s->conn->base, commit_run, commit_done, job) < 0) {
		log_warn(SMTP_LOG, "conn=%llu worker pool full: message refused for now",
			 (unsigned long long)s->conn->id);
		commit_job_free(job);
		smtp_reply_line(s, "451 4.3.0 Error: server busy, try again later");
		smtp_txn_reset(s);
		s->state = SMTP_STATE_COMMAND;
		return;
	}
	s->flags |= SMTP_SF_JOB;
	s->state = SMTP_STATE_BUSY;
}

static void log_rejected(struct smtp_session *s, const char *reply)
{
	char *sender = smtp_log_text(s->sender.address, s->sender.len);

	log_mail(SMTP_LOG, "conn=%llu rejected ip=%s sender=<%s> nrcpt=%zu size=%llu reason=\"%s\"",
		 (unsigned long long)s->conn->id, s->conn->peer_ip, sender, s->rcpt_count,
		 (unsigned long long)s->data.out_bytes, reply);
	free(sender);
}

void smtp_message_end(struct smtp_session *s)
{
	const char *refusal;

	if (s->data.mode == SMTP_DATA_RAW) {
		buf_reset(&s->chunk);
		smtp_data_finish(&s->data, &s->chunk);
		data_store(s, s->chunk.data, s->chunk.len);
		if (s->state == SMTP_STATE_CLOSING)
			return;
	}
	refusal = s->data_error;
	if (refusal == NULL && s->data.bare &&
	    strcmp(s->conn->cfg->s.smtp_bare_line_ends, "reject") == 0)
		refusal = "554 5.6.0 Error: bare CR or LF in the message (RFC 5321 2.3.8); "
			  "lines must end with CRLF";
	if (refusal != NULL) {
		log_rejected(s, refusal);
		smtp_reply_line(s, refusal);
		smtp_txn_reset(s);
		s->state = SMTP_STATE_COMMAND;
		return;
	}
	commit_start(s);
}

/* ---- input ---- */

/* Reads one line into s->line (without its line end).  Returns 1, 0 when
 * more input is needed, -1 when the line would be longer than max, -2 for
 * a line that ends in a bare LF. */
static int read_line(struct smtp_session *s, size_t max)
{
	struct evbuffer *in = bufferevent_get_input(s->conn->bev);
	size_t avail = evbuffer_get_length(in), n;
	struct evbuffer_ptr pos;
	unsigned char *p;

	if (avail == 0)
		return 0;
	pos = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (pos.pos < 0)
		return avail >= max ? -1 : 0;
	n = (size_t)pos.pos + 1;
	if (n > max)
		return -1;
	p = evbuffer_pullup(in, (ev_ssize_t)n);
	buf_reset(&s->line);
	if (buf_append(&s->line, p, n - 1) < 0)
		panic("smtp read_line: line buffer smaller than the limit");
	evbuffer_drain(in, n);
	if (s->line.len == 0 || s->line.data[s->line.len - 1] != '\r')
		return -2;
	buf_truncate(&s->line, s->line.len - 1);
	return 1;
}

/* The line limit before the line is complete: AUTH lines may be longer
 * (RFC 4954 4). */
static size_t line_limit(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->conn->bev);
	unsigned char *p;

	if (s->state == SMTP_STATE_AUTH)
		return SMTP_MAX_AUTH_LINE;
	if (evbuffer_get_length(in) >= 5 && (p = evbuffer_pullup(in, 5)) != NULL &&
	    strncasecmp((const char *)p, "AUTH ", 5) == 0)
		return SMTP_MAX_AUTH_LINE;
	return (size_t)s->conn->cfg->s.smtp_max_command_line;
}

static bool handle_line(struct smtp_session *s)
{
	int r = read_line(s, line_limit(s));

	if (r == 0)
		return false;
	if (r == -1) {
		log_security(SMTP_LOG, "conn=%llu ip=%s command line too long; closing",
			     (unsigned long long)s->conn->id, s->conn->peer_ip);
		smtp_close_with(s, "500 5.5.2 Error: line too long");
		return false;
	}
	if (r == -2) {
		/* Postfix 3.9 smtpd_forbid_bare_newline: a bare LF in a
		 * command is how smuggling attempts start (HOSTILE-INPUT 2). */
		log_security(SMTP_LOG, "conn=%llu ip=%s bare LF in a command; closing",
			     (unsigned long long)s->conn->id, s->conn->peer_ip);
		smtp_close_with(s, "500 5.5.2 Error: bare LF in command; lines must end with CRLF");
		return false;
	}
	if (s->state == SMTP_STATE_AUTH)
		smtp_auth_response(s, s->line.data, s->line.len);
	else
		smtp_dispatch(s, s->line.data, s->line.len);
	return true;
}

/* Feeds buffered DATA input to the parser. */
static bool handle_data(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->conn->bev);
	struct evbuffer_iovec vec;
	size_t take, used;

	if (evbuffer_get_length(in) == 0 || evbuffer_peek(in, -1, NULL, &vec, 1) < 1 ||
	    vec.iov_len == 0)
		return false;
	take = vec.iov_len < SMTP_FEED_MAX ? vec.iov_len : SMTP_FEED_MAX;
	if (s->data.mode == SMTP_DATA_RAW && take > s->bdat_remaining)
		take = (size_t)s->bdat_remaining;
	buf_reset(&s->chunk);
	used = smtp_data_feed(&s->data, vec.iov_base, take, &s->chunk);
	evbuffer_drain(in, used);
	data_store(s, s->chunk.data, s->chunk.len);
	if (s->state == SMTP_STATE_CLOSING)
		return false;
	if (s->data.mode == SMTP_DATA_DOT) {
		if (s->data.ended)
			smtp_message_end(s);
		return true;
	}
	s->bdat_remaining -= used;
	if (s->bdat_remaining > 0)
		return true;
	smtp_bdat_chunk_end(s);
	return true;
}

void smtp_bdat_chunk_end(struct smtp_session *s)
{
	s->state = SMTP_STATE_COMMAND;
	if (s->bdat_failed) {
		smtp_reply_line(s, s->bdat_error != NULL ? s->bdat_error
				: "503 5.5.1 Error: previous BDAT failed; send RSET");
		s->bdat_error = NULL;
		if (s->bdat_last)
			smtp_txn_reset(s);
		return;
	}
	if (s->bdat_last) {
		smtp_message_end(s);
		return;
	}
	if (s->data_error != NULL) {
		/* Refused mid-message: RFC 3030 says the client stops sending
		 * chunks after a failure; the rest is discarded. */
		log_rejected(s, s->data_error);
		smtp_reply_line(s, s->data_error);
		s->bdat_failed = true;
		return;
	}
	smtp_reply(s, "250 2.0.0 Ok: %llu octets received",
		   (unsigned long long)(s->data.out_bytes));
}

void smtp_process_input(struct smtp_session *s)
{
	for (;;) {
		struct evbuffer *out = bufferevent_get_output(s->conn->bev);
		bool progress;

		if ((s->flags & SMTP_SF_STOPPING) && s->state == SMTP_STATE_COMMAND && !s->in_mail &&
		    !(s->flags & SMTP_SF_JOB)) {
			smtp_close_with(s, "421 4.3.2 Service shutting down, closing connection");
			return;
		}
		if (evbuffer_get_length(out) > SMTP_OUTPUT_HIGH_WATER)
			return;   /* resumed by the write callback */
		switch (s->state) {
		case SMTP_STATE_COMMAND:
		case SMTP_STATE_AUTH:
			progress = handle_line(s);
			break;
		case SMTP_STATE_DATA:
		case SMTP_STATE_BDAT:
			progress = handle_data(s);
			break;
		default:
			progress = false;
			break;
		}
		if (!progress) {
			/* The client closed its side after its last command
			 * (".\r\nQUIT\r\n" then shutdown): everything it
			 * sent has been answered; now close. */
			if ((s->flags & SMTP_SF_EOF) && !(s->flags & SMTP_SF_JOB) &&
			    s->state != SMTP_STATE_BUSY && s->state != SMTP_STATE_CLOSING)
				smtp_close_with(s, NULL);
			return;
		}
	}
}

/* ---- bufferevent callbacks ---- */

static void send_greeting(struct smtp_session *s)
{
	smtp_reply(s, "220 %s ESMTP Petrel", s->conn->cfg->s.server_hostname);
	s->state = SMTP_STATE_COMMAND;
}

static void smtp_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	switch (s->state) {
	case SMTP_STATE_GREETING:
		/* HOSTILE-INPUT 4: a client that talks before the greeting is
		 * not waiting for replies: a bot that pipelines blindly. */
		log_security(SMTP_LOG, "conn=%llu ip=%s talked before the greeting; closing",
			     (unsigned long long)s->conn->id, s->conn->peer_ip);
		evbuffer_drain(in, evbuffer_get_length(in));
		smtp_close_with(s, "554 5.5.0 Error: SMTP protocol synchronization "
				"(talking before the greeting)");
		return;
	case SMTP_STATE_CLOSING:
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	default:
		smtp_process_input(s);
	}
}

static void close_now(struct smtp_session *s)
{
	struct conn *c = s->conn;

	net_conn_close(&c);
}

static void do_starttls(struct smtp_session *s)
{
	struct conn *c = s->conn;
	const char *error;
	struct timeval tv = { (time_t)c->cfg->s.smtp_timeout, 0 };

	if (net_conn_starttls(c, &error) < 0) {
		log_security(SMTP_LOG, "conn=%llu ip=%s STARTTLS refused: %s; closing",
			     (unsigned long long)c->id, c->peer_ip, error);
		close_now(s);
		return;
	}
	smtp_session_reset(s);
	s->state = SMTP_STATE_COMMAND;
	smtp_install_callbacks(s);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	log_debug(SMTP_LOG, "conn=%llu ip=%s STARTTLS handshake started", (unsigned long long)c->id,
		  c->peer_ip);
}

static void smtp_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	switch (s->state) {
	case SMTP_STATE_CLOSING:
		/* net.c sees the reply through TLS and closes. */
		if (s->timer != NULL) {
			event_free(s->timer);
			s->timer = NULL;
		}
		net_conn_finish(s->conn, 0);
		return;
	case SMTP_STATE_STARTTLS:
		do_starttls(s);
		return;
	default:
		smtp_process_input(s);
	}
}

static void smtp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	struct conn *c = s->conn;

	if ((what & BEV_EVENT_CONNECTED) != 0) {
		log_debug(SMTP_LOG, "conn=%llu TLS handshake done", (unsigned long long)c->id);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) != 0 && s->state != SMTP_STATE_CLOSING) {
		log_info(SMTP_LOG, "conn=%llu ip=%s timeout; closing", (unsigned long long)c->id,
			 c->peer_ip);
		if (s->flags & SMTP_SF_JOB) {
			/* The reply of the job will come; just wait for it. */
			bufferevent_enable(bev, EV_READ);
			return;
		}
		smtp_close_with(s, "421 4.4.2 Error: timeout exceeded; closing connection");
		return;
	}
	if ((what & BEV_EVENT_ERROR) != 0) {
		char text[256];
		const char *layer = net_bev_error(bev, text, sizeof(text));

		log_debug(SMTP_LOG, "conn=%llu ip=%s closed on %s error: %s", (unsigned long long)c->id,
			  c->peer_ip, layer, text);
	} else if ((what & BEV_EVENT_EOF) != 0) {
		if (s->state != SMTP_STATE_CLOSING && !(s->flags & SMTP_SF_EOF) &&
		    ((s->flags & SMTP_SF_JOB) || s->state == SMTP_STATE_BUSY ||
		     evbuffer_get_length(bufferevent_get_input(bev)) > 0)) {
			/* Commands still to answer, or a commit whose 250 the
			 * client waits for: finish them first. */
			s->flags |= SMTP_SF_EOF;
			bufferevent_disable(bev, EV_READ);
			if (!(s->flags & SMTP_SF_JOB) && s->state != SMTP_STATE_BUSY)
				smtp_process_input(s);
			return;
		}
		if (s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT || s->in_mail)
			log_mail(SMTP_LOG, "conn=%llu ip=%s lost connection in a mail transaction",
				 (unsigned long long)c->id, c->peer_ip);
		log_debug(SMTP_LOG, "conn=%llu ip=%s closed by the client", (unsigned long long)c->id,
			  c->peer_ip);
	}
	close_now(s);
}

static void smtp_install_callbacks(struct smtp_session *s)
{
	struct bufferevent *bev = s->conn->bev;

	bufferevent_setcb(bev, smtp_read_cb, smtp_write_cb, smtp_event_cb, s);
	bufferevent_setwatermark(bev, EV_READ, 0, SMTP_READ_HIGH_WATER);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void greeting_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	if (s->state != SMTP_STATE_GREETING)
		return;
	send_greeting(s);
	smtp_process_input(s);
}

/* ---- the service handler ---- */

static void smtp_start(struct conn *conn)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	const struct settings *set = &conn->cfg->s;
	struct timeval tv = { (time_t)set->smtp_timeout, 0 };

	s->conn = conn;
	conn->session = s;
	buf_init(&s->line, SMTP_MAX_AUTH_LINE + 2);
	buf_init(&s->chunk, SMTP_CHUNK_MAX);
	s->exempt = smtp_exempt_parse(set->smtp_authenticated_exempt);
	s->state = SMTP_STATE_COMMAND;
	smtp_install_callbacks(s);
	bufferevent_set_timeouts(conn->bev, &tv, &tv);
	if (!smtp_conn_acquire(conn->peer_ip, (unsigned)set->smtp_max_connections_per_ip)) {
		log_security(SMTP_LOG, "conn=%llu ip=%s too many SMTP connections from this address "
			     "limit=%lld", (unsigned long long)conn->id, conn->peer_ip,
			     (long long)set->smtp_max_connections_per_ip);
		smtp_close_with(s, "421 4.7.0 Error: too many connections from your address");
		return;
	}
	s->flags |= SMTP_SF_CONN_LIMIT;
	log_debug(SMTP_LOG, "conn=%llu service=%s ip=%s session started", (unsigned long long)conn->id,
		  service_info(conn->service)->name, conn->peer_ip);
	if (conn->service == SERVICE_SMTP && set->smtp_greeting_delay > 0) {
		struct timeval delay = { (time_t)set->smtp_greeting_delay, 0 };

		s->state = SMTP_STATE_GREETING;
		s->timer = evtimer_new(conn->base, greeting_cb, s);
		evtimer_add(s->timer, &delay);
		return;
	}
	send_greeting(s);
}

/* Engine stop: an idle session is told so and closed; one in the middle
 * of a transaction finishes it, then gets the same words. */
static void smtp_shutdown(struct conn *conn)
{
	struct smtp_session *s = conn->session;

	if (s == NULL) {
		net_conn_close(&conn);
		return;
	}
	s->flags |= SMTP_SF_STOPPING;
	switch (s->state) {
	case SMTP_STATE_GREETING:
	case SMTP_STATE_AUTH:
	case SMTP_STATE_COMMAND:
		if (!s->in_mail || s->state != SMTP_STATE_COMMAND)
			smtp_close_with(s, "421 4.3.2 Service shutting down, closing connection");
		break;
	default:
		break;
	}
}

static void smtp_free_session(struct conn *conn)
{
	struct smtp_session *s = conn->session;

	conn->session = NULL;
	if (s == NULL)
		return;
	if (s->timer != NULL)
		event_free(s->timer);
	smtp_txn_reset(s);
	smtp_sasl_free(&s->sasl);
	free(s->helo);
	free(s->auth_user);
	free(s->pending_reply);
	buf_deinit(&s->line);
	buf_deinit(&s->chunk);
	if (s->flags & SMTP_SF_CONN_LIMIT)
		smtp_conn_release(conn->peer_ip);
	free(s);
}
