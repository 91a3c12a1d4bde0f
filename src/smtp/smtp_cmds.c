/*
 * The SMTP command table and handlers.  Each handler checks its command
 * (smtp_check_<verb> style: it replies only on refusal) and then acts.
 * Replies always carry an RFC 3463 enhanced status code.
 *
 * Client errors are counted (smtp/max-failed-commands, then 421 and a
 * close); commands that do no work (NOOP, RSET, VRFY, HELP, repeated
 * EHLO) are counted separately (smtp/max-junk-commands), as Postfix does.
 */
#include "smtp/smtp.h"
#include "smtp/smtp_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "core/log.h"
#include "core/str.h"
#include "directory/directory.h"

#define SMTP_LOG "smtp"

static const struct settings *settings(const struct smtp_session *s)
{
	return &s->conn->cfg->s;
}

static bool input_pending(const struct smtp_session *s)
{
	return evbuffer_get_length(bufferevent_get_input(s->conn->bev)) > 0;
}

/* Counts a command that does no work; closes past the limit.  Returns
 * true when the session is closing. */
static bool count_junk(struct smtp_session *s)
{
	if (++s->junk_commands > (unsigned)settings(s)->smtp_max_junk_commands) {
		log_security(SMTP_LOG, "conn=%llu ip=%s too many NOOP/RSET/VRFY/HELP/EHLO commands "
			     "limit=%lld; closing", (unsigned long long)s->conn->id, s->conn->peer_ip,
			     (long long)settings(s)->smtp_max_junk_commands);
		smtp_close_with(s, "421 4.7.0 Error: too many commands without mail; closing connection");
		return true;
	}
	return false;
}

/* RFC 2920 3.1: EHLO, HELO, DATA (and STARTTLS, which has its own rule)
 * end a group: a client that sends more before our reply is not an SMTP
 * client waiting for replies (Postfix smtpd_forbid_unauth_pipelining;
 * HOSTILE-INPUT 4).  Authenticated clients are trusted to pipeline. */
static bool pipelining_violation(struct smtp_session *s, const char *verb)
{
	if (s->auth_user != NULL || !input_pending(s))
		return false;
	log_security(SMTP_LOG, "conn=%llu ip=%s sent data after %s before the reply "
		     "(illegal pipelining); closing", (unsigned long long)s->conn->id,
		     s->conn->peer_ip, verb);
	smtp_close_with(s, "554 5.5.0 Error: SMTP protocol synchronization");
	return true;
}

/* ---- EHLO / HELO ---- */

static void do_helo(struct smtp_session *s, const struct smtp_command *cmd, bool esmtp)
{
	const struct settings *set = settings(s);
	const char *error;
	struct buf r;
	char *mechs;

	if (smtp_parse_helo(cmd->args, cmd->args_len, &error) < 0) {
		smtp_reply_error(s, esmtp ? error : "501 5.5.4 Syntax: HELO hostname");
		return;
	}
	if (s->helo != NULL && count_junk(s))
		return;
	if (pipelining_violation(s, esmtp ? "EHLO" : "HELO"))
		return;
	/* RFC 5321 4.1.4: EHLO in the middle of a transaction resets it. */
	smtp_txn_reset(s);
	free(s->helo);
	s->helo = xstrndup(cmd->args, cmd->args_len);
	if (!esmtp) {
		s->flags &= ~SMTP_SF_ESMTP;
		smtp_reply(s, "250 %s", set->server_hostname);
		return;
	}
	s->flags |= SMTP_SF_ESMTP;
	buf_init(&r, 4096);
	mechs = smtp_auth_mechanisms(s);
	if (buf_printf(&r, "250-%s\r\n250-PIPELINING\r\n250-SIZE %lld\r\n250-8BITMIME\r\n"
		       "250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n", set->server_hostname,
		       (long long)set->smtp_max_message_size) < 0 ||
	    (!s->conn->tls_active && s->conn->tls != NULL &&
	     buf_append_str(&r, "250-STARTTLS\r\n") < 0) ||
	    (mechs[0] != '\0' && s->auth_user == NULL && buf_printf(&r, "250-AUTH %s\r\n", mechs) < 0) ||
	    buf_append_str(&r, "250-DSN\r\n250 CHUNKING") < 0)
		panic("smtp: EHLO reply too long");
	smtp_reply_line(s, r.data);
	free(mechs);
	buf_deinit(&r);
}

/* ---- MAIL ---- */

static void mail_accept(struct smtp_session *s, const struct smtp_path *path,
			const struct smtp_mail_params *params)
{
	s->sender = *path;
	s->mail = *params;
	s->in_mail = true;
	smtp_reply_line(s, "250 2.1.0 Ok");
}

/* smtp/check-sender-domain, on the worker pool. */
struct dns_job {
	struct net *net;
	uint64_t conn_id;
	char *server;
	struct smtp_path path;
	struct smtp_mail_params params;
	int result;
};

static void dns_job_run(void *arg)
{
	struct dns_job *job = arg;

	job->result = smtp_dns_domain_check(job->server, job->path.address + job->path.at + 1);
}

static void dns_job_done(void *arg)
{
	struct dns_job *job = arg;
	struct conn *c = net_conn_find(job->net, job->conn_id);
	struct smtp_session *s;

	if (c == NULL || c->session == NULL) {
		free(job->server);
		free(job);
		return;
	}
	s = c->session;
	s->flags &= ~SMTP_SF_JOB;
	s->state = SMTP_STATE_COMMAND;
	if (job->result > 0) {
		mail_accept(s, &job->path, &job->params);
	} else {
		char *esc = smtp_log_text(job->path.address, job->path.len);

		log_mail(SMTP_LOG, "conn=%llu rejected ip=%s sender=<%s> reason=\"sender domain %s\"",
			 (unsigned long long)c->id, c->peer_ip, esc,
			 job->result == 0 ? "not found in DNS" : "DNS failure");
		free(esc);
		if (job->result == 0)
			smtp_reply_error(s, "550 5.1.8 Error: sender address rejected: domain not found");
		else
			smtp_reply_line(s, "451 4.4.3 Error: sender address rejected: temporary DNS "
					"failure, try again later");
	}
	free(job->server);
	free(job);
	if (s->state != SMTP_STATE_CLOSING)
		smtp_process_input(s);
}

static void dns_check_start(struct smtp_session *s, const struct smtp_path *path,
			    const struct smtp_mail_params *params)
{
	struct worker_pool *pool = *smtp_globals.workers;
	struct dns_job *job = xcalloc(1, sizeof(*job));

	job->net = smtp_globals.net;
	job->conn_id = s->conn->id;
	job->server = xstrdup(settings(s)->queue_dns_server);
	job->path = *path;
	job->params = *params;
	if (pool == NULL || worker_submit(pool, s->conn->base, dns_job_run, dns_job_done, job) < 0) {
		free(job->server);
		free(job);
		smtp_reply_line(s, "451 4.3.0 Error: server busy, try again later");
		return;
	}
	s->flags |= SMTP_SF_JOB;
	s->state = SMTP_STATE_BUSY;
}

static void do_mail(struct smtp_session *s, const struct smtp_command *cmd)
{
	const struct settings *set = settings(s);
	struct smtp_path path;
	struct smtp_mail_params params;
	const char *error;

	if (s->helo == NULL) {
		smtp_reply_error(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->in_mail) {
		smtp_reply_error(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (smtp_is_submission(s) && s->auth_user == NULL) {
		smtp_reply_error(s, "530 5.7.0 Error: authentication required");
		return;
	}
	if (smtp_parse_mail(cmd->args, cmd->args_len, (s->flags & SMTP_SF_ESMTP) != 0, &path, &params,
			    &error) < 0) {
		smtp_reply_error(s, error);
		return;
	}
	if (params.has_size && params.size > (uint64_t)set->smtp_max_message_size) {
		log_mail(SMTP_LOG, "conn=%llu rejected ip=%s announced size=%llu over limit=%lld",
			 (unsigned long long)s->conn->id, s->conn->peer_ip,
			 (unsigned long long)params.size, (long long)set->smtp_max_message_size);
		smtp_reply_line(s, "552 5.3.4 Error: message size exceeds the fixed maximum message size");
		return;
	}
	if (!(s->auth_user != NULL && (s->exempt & SMTP_EXEMPT_MESSAGE_RATE)) &&
	    !smtp_rate_allowed(smtp_globals.rate, s->conn->peer_ip,
			       (uint64_t)set->smtp_max_messages_per_hour)) {
		log_security(SMTP_LOG, "conn=%llu ip=%s message rate limit hit limit=%lld/hour",
			     (unsigned long long)s->conn->id, s->conn->peer_ip,
			     (long long)set->smtp_max_messages_per_hour);
		smtp_reply_line(s, "450 4.7.1 Error: too many messages from your address; try again later");
		return;
	}
	if (s->auth_user != NULL && set->smtp_submission_sender_check) {
		struct directory *dir = directory_current();
		bool owned = smtp_sender_owned(dir, s->auth_user, path.address);

		directory_unref(&dir);
		if (!owned) {
			char *esc = smtp_log_text(path.address, path.len);

			log_security(SMTP_LOG, "conn=%llu ip=%s user=%s sender=<%s> refused: "
				     "not an address of the user", (unsigned long long)s->conn->id,
				     s->conn->peer_ip, s->auth_user, esc);
			free(esc);
			smtp_reply_error(s, "553 5.7.1 Error: sender address not owned by the "
					 "authenticated user");
			return;
		}
	}
	if (set->smtp_check_sender_domain && !path.null &&
	    path.address[path.at + 1] != '[') {
		struct directory *dir = directory_current();
		bool local = dir != NULL &&
			directory_find_local_domain(dir, path.address + path.at + 1) != NULL;

		directory_unref(&dir);
		if (!local) {
			dns_check_start(s, &path, &params);
			return;
		}
	}
	mail_accept(s, &path, &params);
}

/* ---- RCPT ---- */

static void add_rcpt(struct smtp_session *s, const char *address, const struct smtp_rcpt_params *p,
		     bool local)
{
	struct smtp_rcpt *r;

	s->rcpt_accepted++;
	/* The same address twice is delivered once (as Postfix's cleanup
	 * does); the limit still counts every accepted RCPT. */
	for (size_t i = 0; i < s->rcpt_count; i++) {
		if (strcmp(s->rcpts[i].address, address) == 0)
			return;
	}
	if (s->rcpt_count == s->rcpt_alloc) {
		size_t n = s->rcpt_alloc == 0 ? 8 : s->rcpt_alloc * 2;

		s->rcpts = xreallocarray(s->rcpts, n, sizeof(*s->rcpts));
		s->rcpt_alloc = n;
	}
	r = &s->rcpts[s->rcpt_count++];
	r->address = xstrdup(address);
	r->orcpt = p->has_orcpt ? xstrdup(p->orcpt) : NULL;
	r->notify = p->notify;
	r->local = local;
}

static void unknown_rcpt(struct smtp_session *s, const char *address, const char *reply)
{
	const struct settings *set = settings(s);
	char *esc = smtp_log_text(address, strlen(address));

	log_mail(SMTP_LOG, "conn=%llu rejected ip=%s rcpt=<%s> reason=\"%s\"",
		 (unsigned long long)s->conn->id, s->conn->peer_ip, esc, reply);
	free(esc);
	smtp_reply_error(s, reply);
	if (s->state == SMTP_STATE_CLOSING ||
	    (s->auth_user != NULL && (s->exempt & SMTP_EXEMPT_UNKNOWN_RECIPIENTS)))
		return;
	if (++s->unknown_rcpts >= (unsigned)set->smtp_max_unknown_recipients) {
		log_security(SMTP_LOG, "conn=%llu ip=%s too many unknown recipients limit=%lld; closing",
			     (unsigned long long)s->conn->id, s->conn->peer_ip,
			     (long long)set->smtp_max_unknown_recipients);
		smtp_close_with(s, "421 4.7.0 Error: too many unknown recipients; closing connection");
	}
}

static void do_rcpt(struct smtp_session *s, const struct smtp_command *cmd)
{
	const struct settings *set = settings(s);
	struct smtp_path path;
	struct smtp_rcpt_params params;
	struct dir_resolution res;
	struct directory *dir;
	const char *error, *domain;
	char address[SMTP_MAX_PATH + 64];
	bool local = false, refuse_unknown = false;
	enum smtp_relay relay;

	if (!s->in_mail) {
		smtp_reply_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (smtp_parse_rcpt(cmd->args, cmd->args_len, (s->flags & SMTP_SF_ESMTP) != 0, &path,
			    &params, &error) < 0) {
		smtp_reply_error(s, error);
		return;
	}
	if (path.utf8 && !s->mail.smtputf8) {
		smtp_reply_error(s, "553 5.6.7 Error: non-ASCII recipient needs SMTPUTF8 on MAIL FROM");
		return;
	}
	/* HOSTILE-INPUT 9: the count is checked before anything is kept. */
	if (s->rcpt_accepted >= (uint64_t)set->smtp_max_recipients &&
	    !(s->auth_user != NULL && (s->exempt & SMTP_EXEMPT_RECIPIENTS))) {
		if (!s->rcpt_limit_logged) {
			s->rcpt_limit_logged = true;
			log_security(SMTP_LOG, "conn=%llu ip=%s too many recipients limit=%lld",
				     (unsigned long long)s->conn->id, s->conn->peer_ip,
				     (long long)set->smtp_max_recipients);
		}
		smtp_reply_line(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	dir = directory_current();
	if (path.postmaster) {
		/* RFC 5321 4.5.1: <postmaster> is always accepted. */
		snprintf(address, sizeof(address), "postmaster@%s",
			 dir != NULL && dir->primary != NULL ? dir->primary->name
							    : set->server_hostname);
		directory_unref(&dir);
		add_rcpt(s, address, &params, true);
		smtp_reply_line(s, "250 2.1.5 Ok");
		return;
	}
	snprintf(address, sizeof(address), "%s", path.address);
	domain = path.address + path.at + 1;
	if (dir == NULL) {
		directory_unref(&dir);
		smtp_reply_line(s, "451 4.3.0 Error: directory unavailable, try again later");
		return;
	}
	directory_resolve(dir, address, DIRECTORY_DEFAULT_SEPARATOR, &res);
	switch (res.kind) {
	case DIR_RESOLVE_RECIPIENTS:
	case DIR_RESOLVE_LIST:
	case DIR_RESOLVE_LIST_COMMAND:
		local = true;
		break;
	case DIR_RESOLVE_UNKNOWN:
		refuse_unknown = true;
		break;
	case DIR_RESOLVE_INVALID:
		/* An address the directory cannot hold (a quoted local part...):
		 * unknown in our domains, the relay rules decide elsewhere. */
		refuse_unknown = directory_find_local_domain(dir, domain) != NULL;
		break;
	case DIR_RESOLVE_LOOP:
		log_warn(SMTP_LOG, "conn=%llu rcpt resolution stopped: %s", (unsigned long long)s->conn->id,
			 res.error != NULL ? res.error : "loop");
		directory_resolution_free(&res);
		directory_unref(&dir);
		smtp_reply_line(s, "451 4.4.6 Error: mail forwarding loop for this address, try again later");
		return;
	case DIR_RESOLVE_NOT_LOCAL:
	default:
		break;
	}
	directory_resolution_free(&res);
	directory_unref(&dir);
	if (refuse_unknown) {
		unknown_rcpt(s, address, "550 5.1.1 Error: recipient address rejected: user unknown");
		return;
	}
	if (!local) {
		relay = smtp_relay_check(s->conn->cfg, s->conn->peer_ip, s->auth_user != NULL);
		if (relay == SMTP_RELAY_DENIED) {
			char *esc = smtp_log_text(address, strlen(address));

			log_security(SMTP_LOG, "conn=%llu ip=%s relay denied rcpt=<%s>",
				     (unsigned long long)s->conn->id, s->conn->peer_ip, esc);
			log_mail(SMTP_LOG, "conn=%llu rejected ip=%s rcpt=<%s> reason=\"relay denied\"",
				 (unsigned long long)s->conn->id, s->conn->peer_ip, esc);
			free(esc);
			smtp_reply_error(s, "554 5.7.1 Error: relay access denied");
			return;
		}
		log_debug(SMTP_LOG, "conn=%llu relay allowed by %s", (unsigned long long)s->conn->id,
			  smtp_relay_str(relay));
	}
	add_rcpt(s, address, &params, local);
	smtp_reply_line(s, "250 2.1.5 Ok");
}

/* ---- DATA and BDAT ---- */

static void do_data(struct smtp_session *s, const struct smtp_command *cmd)
{
	const char *error;

	if (cmd->args_len > 0) {
		smtp_reply_error(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!s->in_mail) {
		smtp_reply_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->rcpt_count == 0) {
		smtp_reply_error(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (s->bdat_txn) {
		smtp_reply_error(s, "503 5.5.1 Error: DATA in a BDAT transaction");
		return;
	}
	if (pipelining_violation(s, "DATA"))
		return;
	if (smtp_message_begin(s, &error) < 0) {
		smtp_reply_line(s, error);
		smtp_txn_reset(s);
		return;
	}
	smtp_data_init(&s->data, SMTP_DATA_DOT);
	s->state = SMTP_STATE_DATA;
	smtp_reply_line(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void do_bdat(struct smtp_session *s, const struct smtp_command *cmd)
{
	const struct settings *set = settings(s);
	uint64_t size, so_far;
	bool last;
	const char *error;

	if (smtp_parse_bdat(cmd->args, cmd->args_len, &size, &last, &error) < 0) {
		/* Without a size the octets that follow cannot be skipped. */
		smtp_close_with(s, error);
		return;
	}
	so_far = s->bdat_txn ? s->data.out_bytes + s->received_len : 0;
	if (size > (uint64_t)set->smtp_max_message_size ||
	    so_far + size > (uint64_t)set->smtp_max_message_size + 2) {
		/* Reading it all only to refuse it would cost what the limit
		 * exists to save (RFC 3030 lets the server close here). */
		log_security(SMTP_LOG, "conn=%llu ip=%s BDAT chunk over the message size limit=%lld; "
			     "closing", (unsigned long long)s->conn->id, s->conn->peer_ip,
			     (long long)set->smtp_max_message_size);
		smtp_close_with(s, "552 5.3.4 Error: message size exceeds the fixed maximum message size");
		return;
	}
	s->bdat_remaining = size;
	s->bdat_last = last;
	s->state = SMTP_STATE_BDAT;
	if (!s->in_mail || s->rcpt_count == 0 || s->bdat_failed) {
		/* The octets are read and dropped, then this is the reply. */
		if (!s->bdat_failed)
			s->bdat_error = !s->in_mail ? "503 5.5.1 Error: need MAIL command"
					: "554 5.5.1 Error: no valid recipients";
		s->bdat_failed = true;
		if (!s->bdat_txn)
			smtp_data_init(&s->data, SMTP_DATA_RAW);
		s->failed_commands++;
	} else if (!s->bdat_txn) {
		s->bdat_txn = true;
		if (smtp_message_begin(s, &error) < 0) {
			s->bdat_failed = true;
			s->bdat_error = error;
		}
		smtp_data_init(&s->data, SMTP_DATA_RAW);
	}
	if (size == 0)
		smtp_bdat_chunk_end(s);
}

/* ---- the rest ---- */

static void do_starttls(struct smtp_session *s, const struct smtp_command *cmd)
{
	if (cmd->args_len > 0) {
		smtp_reply_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->conn->tls_active) {
		smtp_reply_error(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (s->conn->tls == NULL) {
		smtp_reply_line(s, "454 4.7.0 Error: TLS not available");
		return;
	}
	if (s->in_mail) {
		smtp_reply_error(s, "503 5.5.1 Error: STARTTLS not allowed in a mail transaction");
		return;
	}
	smtp_reply_line(s, "220 2.0.0 Ready to start TLS");
	if (input_pending(s)) {
		/* CVE-2011-0411: bytes sent with STARTTLS in clear text must
		 * never be read as if they came through TLS: drop. */
		log_security(SMTP_LOG, "conn=%llu ip=%s sent data after STARTTLS before the TLS "
			     "handshake (command injection); closing", (unsigned long long)s->conn->id,
			     s->conn->peer_ip);
		evbuffer_drain(bufferevent_get_input(s->conn->bev),
			       evbuffer_get_length(bufferevent_get_input(s->conn->bev)));
		smtp_close_with(s, NULL);
		return;
	}
	s->state = SMTP_STATE_STARTTLS;
	bufferevent_disable(s->conn->bev, EV_READ);
}

void smtp_dispatch(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_command cmd;
	const char *error;

	if (smtp_check_line(line, len, &error) < 0) {
		smtp_reply_error(s, error);
		return;
	}
	smtp_parse_command(line, len, &cmd);
	log_debug(SMTP_LOG, "conn=%llu command %s", (unsigned long long)s->conn->id,
		  smtp_cmd_name(cmd.id));
	switch (cmd.id) {
	case SMTP_CMD_EHLO:
		do_helo(s, &cmd, true);
		break;
	case SMTP_CMD_HELO:
		do_helo(s, &cmd, false);
		break;
	case SMTP_CMD_MAIL:
		do_mail(s, &cmd);
		break;
	case SMTP_CMD_RCPT:
		do_rcpt(s, &cmd);
		break;
	case SMTP_CMD_DATA:
		do_data(s, &cmd);
		break;
	case SMTP_CMD_BDAT:
		do_bdat(s, &cmd);
		break;
	case SMTP_CMD_RSET:
		if (cmd.args_len > 0) {
			smtp_reply_error(s, "501 5.5.4 Syntax: RSET");
			break;
		}
		smtp_txn_reset(s);
		if (!count_junk(s))
			smtp_reply_line(s, "250 2.0.0 Ok");
		break;
	case SMTP_CMD_NOOP:
		if (!count_junk(s))
			smtp_reply_line(s, "250 2.0.0 Ok");
		break;
	case SMTP_CMD_QUIT:
		smtp_close_with(s, "221 2.0.0 Bye");
		break;
	case SMTP_CMD_VRFY:
		if (cmd.args_len == 0) {
			smtp_reply_error(s, "501 5.5.4 Syntax: VRFY address");
			break;
		}
		/* RFC 5321 3.5.3: 252 when we will not say. */
		if (!count_junk(s))
			smtp_reply_line(s, "252 2.5.2 Cannot VRFY user, but will accept the message "
					"and attempt delivery");
		break;
	case SMTP_CMD_EXPN:
		if (!count_junk(s))
			smtp_reply_line(s, "502 5.5.1 Error: EXPN not available");
		break;
	case SMTP_CMD_HELP:
		if (!count_junk(s))
			smtp_reply_line(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP "
					"QUIT VRFY HELP STARTTLS AUTH; see RFC 5321");
		break;
	case SMTP_CMD_STARTTLS:
		do_starttls(s, &cmd);
		break;
	case SMTP_CMD_AUTH:
		smtp_do_auth(s, cmd.args, cmd.args_len);
		break;
	case SMTP_CMD_FORBIDDEN:
		log_security(SMTP_LOG, "conn=%llu ip=%s sent an HTTP or proxy request to the SMTP "
			     "port; closing", (unsigned long long)s->conn->id, s->conn->peer_ip);
		smtp_close_with(s, "221 2.7.0 Error: this is an SMTP server; closing connection");
		break;
	default:
		smtp_reply_error(s, "500 5.5.1 Error: command not recognized");
		break;
	}
}
