/*
 * The SMTP client session (RFC 5321 client side, RFC 3207 STARTTLS, RFC
 * 2920 PIPELINING, RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8,
 * RFC 3461 DSN, RFC 4954 AUTH PLAIN/LOGIN), blocking, on a delivery
 * thread.  Every read and write is bounded by queue/command-timeout
 * (SO_RCVTIMEO/SO_SNDTIMEO), the connect by queue/connect-timeout.
 *
 * Decisions (docs/queue.md):
 *  - 8-bit mail (BODY=8BITMIME) to a server without 8BITMIME, and
 *    SMTPUTF8 mail to a server without SMTPUTF8, are bounced with a clear
 *    5.6.3 / 5.6.7 rather than downgraded (RFC 6152 3 allows either;
 *    converting MIME is where mail gets damaged).
 *  - STARTTLS is attempted whenever offered, unless the route says
 *    tls="none"; a failed handshake counts as a temporary failure of that
 *    host and the next one is tried.
 *  - AUTH only over TLS unless the route says tls="none" (the
 *    administrator's explicit choice, e.g. a relay on loopback).
 *  - Idle connections are kept queue/connection-reuse-time seconds, keyed
 *    by destination, and reused with RSET for the next message.
 */
#include "outbound/outbound_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/base64.h"
#include "core/str.h"
#include "core/tls.h"

/* Idle connections kept at most. */
#define OB_MAX_CACHED 64
/* Messages sent over one connection before it is closed. */
#define OB_MAX_REUSE 100
#define NOTIFY_NEVER 0x01u
#define NOTIFY_SUCCESS 0x02u
#define NOTIFY_FAILURE 0x04u
#define NOTIFY_DELAY 0x08u

struct ob_conn {
	int fd;
	SSL *ssl;
	struct buf in;             /* bytes read but not parsed yet */
	struct outbound_caps caps;
	char key[512];             /* destination key for reuse */
	char relay[320];
	char tls[96];
	bool auth_done;
	unsigned uses;
	time_t idle_since;
	struct outbound *ob;       /* for the registry of live connections */
	struct ob_conn *next;      /* in the idle cache */
	struct ob_conn *lprev, *lnext;  /* in ob->live */
};

struct outbound {
	pthread_mutex_t lock;
	SSL_CTX *ctx_may;          /* no verification (opportunistic) */
	SSL_CTX *ctx_verify;       /* lazily, for ca_file */
	char *verify_ca;
	struct ob_conn *idle;      /* cache */
	size_t idle_count;
	struct ob_conn *live;      /* every open connection (shutdown aborts them) */
	bool stopping;
};

/* An outcome for every recipient still without one. */
struct outcome {
	int code;
	char status[16];
	char text[OUTBOUND_MAX_TEXT + 1];
	bool remote;
};

static void set_outcome(struct outcome *o, int code, const char *status, bool remote,
			const char *fmt, ...) PETREL_PRINTF(5, 6);
static void set_outcome(struct outcome *o, int code, const char *status, bool remote,
			const char *fmt, ...)
{
	va_list ap;

	o->code = code;
	o->remote = remote;
	snprintf(o->status, sizeof(o->status), "%s", status);
	va_start(ap, fmt);
	vsnprintf(o->text, sizeof(o->text), fmt, ap);
	va_end(ap);
}

/* The outcome of a server reply. */
static void reply_outcome(struct outcome *o, const struct outbound_reply *r, const char *what)
{
	const char *st = r->enhanced;
	char made[16];

	if (st[0] == '\0') {
		snprintf(made, sizeof(made), "%d.0.0", r->code / 100);
		st = made;
	}
	set_outcome(o, r->code, st, true, "%d %s %s (in reply to %s)", r->code, st, r->text, what);
}

int outbound_new(struct outbound **ob_r, char **error_r)
{
	struct outbound *ob = xcalloc(1, sizeof(*ob));

	if (tls_client_ctx_new(false, NULL, &ob->ctx_may, error_r) < 0) {
		free(ob);
		return -1;
	}
	pthread_mutex_init(&ob->lock, NULL);
	*ob_r = ob;
	return 0;
}

static void conn_close(struct ob_conn *c, bool quit);

void outbound_free(struct outbound **obp)
{
	struct outbound *ob = *obp;

	if (ob == NULL)
		return;
	*obp = NULL;
	while (ob->idle != NULL) {
		struct ob_conn *c = ob->idle;

		ob->idle = c->next;
		conn_close(c, true);
	}
	SSL_CTX_free(ob->ctx_may);
	if (ob->ctx_verify != NULL)
		SSL_CTX_free(ob->ctx_verify);
	free(ob->verify_ca);
	pthread_mutex_destroy(&ob->lock);
	free(ob);
}

/* ---- I/O ---- */

static int conn_write(struct ob_conn *c, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n;

		if (c->ssl != NULL) {
			int r = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);

			if (r <= 0) {
				ERR_clear_error();
				return -1;
			}
			n = r;
		} else {
			n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int conn_fill(struct ob_conn *c)
{
	char tmp[8192];
	ssize_t n;

	for (;;) {
		if (c->ssl != NULL) {
			int r = SSL_read(c->ssl, tmp, sizeof(tmp));

			if (r <= 0) {
				ERR_clear_error();
				return -1;
			}
			n = r;
		} else {
			n = recv(c->fd, tmp, sizeof(tmp), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
		}
		break;
	}
	/* More than a whole reply's worth is never needed: the parser
	 * decides on OUTBOUND_MAX_REPLY bytes. */
	if (c->in.len + (size_t)n > OUTBOUND_MAX_REPLY + sizeof(tmp))
		return -1;
	return buf_append(&c->in, tmp, (size_t)n) < 0 ? -1 : 0;
}

/* Reads one reply.  raw (may be NULL) gets its bytes.  Returns 0, or -1
 * with o set (connection lost, timeout, malformed reply). */
static int read_reply(struct ob_conn *c, struct outbound_reply *r, struct buf *raw, struct outcome *o)
{
	for (;;) {
		size_t used;
		const char *err;
		enum outbound_reply_result res = outbound_reply_parse(c->in.data != NULL ? c->in.data : "",
							      c->in.len, r, &used, &err);

		if (res == OUTBOUND_REPLY_DONE) {
			if (raw != NULL) {
				buf_reset(raw);
				if (buf_append(raw, c->in.data, used) < 0)
					panic("outbound: raw reply buffer");
			}
			buf_consume(&c->in, used);
			return 0;
		}
		if (res == OUTBOUND_REPLY_BAD) {
			set_outcome(o, 451, "4.5.0", false,
				    "malformed reply from %s: %s (session aborted)", c->relay, err);
			return -1;
		}
		if (conn_fill(c) < 0) {
			set_outcome(o, 451, "4.4.2", false, "lost connection with %s (%s)", c->relay,
				    errno == EAGAIN || errno == EWOULDBLOCK ? "timeout" : "closed");
			return -1;
		}
	}
}

static int command(struct ob_conn *c, const char *line, struct outbound_reply *r, struct buf *raw,
		   struct outcome *o)
{
	if (conn_write(c, line, strlen(line)) < 0) {
		set_outcome(o, 451, "4.4.2", false, "lost connection with %s while sending", c->relay);
		return -1;
	}
	return read_reply(c, r, raw, o);
}

static void live_add(struct outbound *ob, struct ob_conn *c)
{
	pthread_mutex_lock(&ob->lock);
	c->ob = ob;
	c->lprev = NULL;
	c->lnext = ob->live;
	if (ob->live != NULL)
		ob->live->lprev = c;
	ob->live = c;
	if (ob->stopping)
		shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&ob->lock);
}

static void live_remove(struct ob_conn *c)
{
	struct outbound *ob = c->ob;

	if (ob == NULL)
		return;
	pthread_mutex_lock(&ob->lock);
	if (c->lprev != NULL)
		c->lprev->lnext = c->lnext;
	else
		ob->live = c->lnext;
	if (c->lnext != NULL)
		c->lnext->lprev = c->lprev;
	pthread_mutex_unlock(&ob->lock);
	c->ob = NULL;
}

void outbound_shutdown(struct outbound *ob)
{
	pthread_mutex_lock(&ob->lock);
	ob->stopping = true;
	for (struct ob_conn *c = ob->live; c != NULL; c = c->lnext)
		shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&ob->lock);
}

static void conn_close(struct ob_conn *c, bool quit)
{
	if (c == NULL)
		return;
	live_remove(c);
	if (quit && c->fd >= 0) {
		struct outbound_reply r;
		struct outcome o;

		if (conn_write(c, "QUIT\r\n", 6) == 0)
			(void)read_reply(c, &r, NULL, &o);
	}
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	buf_deinit(&c->in);
	free(c);
}

static int connect_timeout(const struct ob_dest *d, uint16_t port, int timeout, char *err,
			   size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, rc, soerr = 0;
	socklen_t el = sizeof(soerr);
	struct pollfd pfd;

	memset(&ss, 0, sizeof(ss));
	if (d->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, d->addr, 4);
		sl = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, d->addr, 16);
		sl = sizeof(*s6);
	}
	fd = socket(d->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (struct sockaddr *)&ss, sl);
	if (rc < 0 && errno != EINPROGRESS) {
		snprintf(err, errlen, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	if (rc < 0) {
		pfd.fd = fd;
		pfd.events = POLLOUT;
		do {
			rc = poll(&pfd, 1, timeout * 1000);
		} while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			snprintf(err, errlen, "connection timed out");
			close(fd);
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) < 0 || soerr != 0) {
			snprintf(err, errlen, "%s", strerror(soerr != 0 ? soerr : errno));
			close(fd);
			return -1;
		}
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

static void set_timeouts(int fd, int seconds)
{
	struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static SSL_CTX *verify_ctx(struct outbound *ob, const char *ca_file, char **error_r)
{
	const char *ca = ca_file == NULL || strcmp(ca_file, "system") == 0 ? NULL : ca_file;
	SSL_CTX *ctx;

	pthread_mutex_lock(&ob->lock);
	if (ob->ctx_verify != NULL &&
	    ((ca == NULL && ob->verify_ca == NULL) ||
	     (ca != NULL && ob->verify_ca != NULL && strcmp(ca, ob->verify_ca) == 0))) {
		ctx = ob->ctx_verify;
		SSL_CTX_up_ref(ctx);
		pthread_mutex_unlock(&ob->lock);
		return ctx;
	}
	if (tls_client_ctx_new(true, ca, &ctx, error_r) < 0) {
		pthread_mutex_unlock(&ob->lock);
		return NULL;
	}
	if (ob->ctx_verify != NULL)
		SSL_CTX_free(ob->ctx_verify);
	free(ob->verify_ca);
	ob->ctx_verify = ctx;
	ob->verify_ca = ca != NULL ? xstrdup(ca) : NULL;
	SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&ob->lock);
	return ctx;
}

static int ehlo(struct ob_conn *c, const char *helo, struct outcome *o)
{
	struct outbound_reply r;
	struct buf raw;
	char *line = xasprintf("EHLO %s\r\n", helo);
	int ret = -1;

	buf_init(&raw, OUTBOUND_MAX_REPLY + 16);
	if (command(c, line, &r, &raw, o) < 0)
		goto out;
	if (r.code == 250) {
		outbound_caps_parse(raw.data, raw.len, &c->caps);
		ret = 0;
		goto out;
	}
	/* An old server: HELO (no extensions). */
	free(line);
	line = xasprintf("HELO %s\r\n", helo);
	if (command(c, line, &r, NULL, o) < 0)
		goto out;
	if (r.code != 250) {
		reply_outcome(o, &r, "HELO");
		goto out;
	}
	memset(&c->caps, 0, sizeof(c->caps));
	ret = 0;
out:
	free(line);
	buf_deinit(&raw);
	return ret;
}

/* STARTTLS and the handshake; 0 or -1 with o. */
static int starttls(struct outbound *ob, struct ob_conn *c, const struct outbound_settings *set,
		    enum cfg_route_tls policy, const char *name, struct outcome *o)
{
	struct outbound_reply r;
	SSL_CTX *ctx;
	SSL *ssl;
	char *error = NULL;

	if (command(c, "STARTTLS\r\n", &r, NULL, o) < 0)
		return -1;
	if (r.code != 220) {
		reply_outcome(o, &r, "STARTTLS");
		o->code = 451;  /* try another host, not a bounce */
		return -1;
	}
	/* Bytes after the 220 were sent in the clear before TLS: a man in
	 * the middle could have put them there (CVE-2011-0411, reversed). */
	if (c->in.len > 0) {
		set_outcome(o, 451, "4.7.0", false, "%s sent data after 220 to STARTTLS", c->relay);
		return -1;
	}
	if (policy == CFG_ROUTE_TLS_VERIFY) {
		ctx = verify_ctx(ob, set->ca_file, &error);
		if (ctx == NULL) {
			set_outcome(o, 451, "4.7.5", false, "TLS: %s", error);
			free(error);
			return -1;
		}
	} else {
		ctx = ob->ctx_may;
		SSL_CTX_up_ref(ctx);
	}
	if (tls_client_new_ssl(ctx, name, &ssl, &error) < 0) {
		SSL_CTX_free(ctx);
		set_outcome(o, 451, "4.7.5", false, "TLS: %s", error);
		free(error);
		return -1;
	}
	SSL_CTX_free(ctx);
	SSL_set_fd(ssl, c->fd);
	if (SSL_connect(ssl) != 1) {
		long v = SSL_get_verify_result(ssl);
		char reason[200];

		if (v != X509_V_OK)
			snprintf(reason, sizeof(reason), "certificate: %s",
				 X509_verify_cert_error_string(v));
		else
			snprintf(reason, sizeof(reason), "%s",
				 ERR_reason_error_string(ERR_peek_error()) != NULL
				 ? ERR_reason_error_string(ERR_peek_error()) : "handshake failed");
		ERR_clear_error();
		SSL_free(ssl);
		set_outcome(o, 451, v != X509_V_OK ? "4.7.5" : "4.7.0", false,
			    "TLS with %s failed: %s", c->relay, reason);
		return -1;
	}
	c->ssl = ssl;
	{
		char *d = tls_session_describe(ssl);

		snprintf(c->tls, sizeof(c->tls), "%s%s", d,
			 policy == CFG_ROUTE_TLS_VERIFY ? " verified" : "");
		free(d);
	}
	return 0;
}

static int auth(struct ob_conn *c, const struct route_config *route, struct outcome *o)
{
	struct outbound_reply r;
	struct buf b, line;
	int ret = -1;

	buf_init(&b, 16384);
	buf_init(&line, 32768);
	if (c->caps.auth_plain) {
		if (buf_append_char(&b, '\0') < 0 || buf_append_str(&b, route->auth_user) < 0 ||
		    buf_append_char(&b, '\0') < 0 || buf_append_str(&b, route->auth_password) < 0 ||
		    buf_append_str(&line, "AUTH PLAIN ") < 0 ||
		    base64_encode_append(&line, b.data, b.len) < 0 || buf_append_str(&line, "\r\n") < 0)
			goto toolong;
		if (command(c, line.data, &r, NULL, o) < 0)
			goto out;
	} else if (c->caps.auth_login) {
		if (command(c, "AUTH LOGIN\r\n", &r, NULL, o) < 0)
			goto out;
		if (r.code != 334)
			goto refused;
		if (base64_encode_append(&line, route->auth_user, strlen(route->auth_user)) < 0 ||
		    buf_append_str(&line, "\r\n") < 0)
			goto toolong;
		if (command(c, line.data, &r, NULL, o) < 0)
			goto out;
		if (r.code != 334)
			goto refused;
		buf_reset(&line);
		if (base64_encode_append(&line, route->auth_password, strlen(route->auth_password)) < 0 ||
		    buf_append_str(&line, "\r\n") < 0)
			goto toolong;
		if (command(c, line.data, &r, NULL, o) < 0)
			goto out;
	} else {
		set_outcome(o, 451, "4.7.0", false, "%s offers neither AUTH PLAIN nor LOGIN", c->relay);
		goto out;
	}
	if (r.code == 235) {
		ret = 0;
		goto out;
	}
refused:
	/* Our credentials are refused: the administrator must act; keep the
	 * mail (4xx) rather than bounce it. */
	reply_outcome(o, &r, "AUTH");
	o->code = 451;
	o->status[0] = '4';
	goto out;
toolong:
	set_outcome(o, 451, "4.7.0", false, "AUTH credentials too long");
out:
	explicit_bzero(b.data != NULL ? b.data : (char[1]){ 0 }, b.len);
	buf_deinit(&b);
	buf_deinit(&line);
	return ret;
}

/* Opens a session to d and brings it to the MAIL stage. */
static struct ob_conn *conn_open(struct outbound *ob, const struct outbound_settings *set,
				 const struct route_config *route, const struct ob_dest *d,
				 uint16_t port, const char *key, struct outcome *o)
{
	struct ob_conn *c;
	struct outbound_reply r;
	char ip[INET6_ADDRSTRLEN], err[256];
	enum cfg_route_tls policy = route != NULL ? route->tls : CFG_ROUTE_TLS_MAY;
	int fd;

	inet_ntop(d->family, d->addr, ip, sizeof(ip));
	fd = connect_timeout(d, port, set->connect_timeout, err, sizeof(err));
	if (fd < 0) {
		set_outcome(o, 451, "4.4.1", false, "cannot connect to %s[%s]:%u: %s", d->host, ip,
			    (unsigned)port, err);
		return NULL;
	}
	set_timeouts(fd, set->command_timeout);
	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	buf_init(&c->in, OUTBOUND_MAX_REPLY + 16384);
	live_add(ob, c);
	snprintf(c->relay, sizeof(c->relay), "%s[%s]:%u", d->host, ip, (unsigned)port);
	snprintf(c->tls, sizeof(c->tls), "none");
	snprintf(c->key, sizeof(c->key), "%s", key);
	if (read_reply(c, &r, NULL, o) < 0)
		goto fail;
	if (r.code != 220) {
		reply_outcome(o, &r, "the greeting");
		goto fail;
	}
	if (ob_greets_as_me(r.text, set->helo)) {
		/* We have connected to ourselves (an MX, route or smart host
		 * that leads back here, on any of our addresses): sending
		 * would loop until the hop limit.  Postfix does the same. */
		set_outcome(o, 554, "5.4.6", false, "mail loops back to myself: %s greeted us with "
			    "our own host name %s", c->relay, set->helo);
		goto fail;
	}
	if (ehlo(c, set->helo, o) < 0)
		goto fail;
	if (policy != CFG_ROUTE_TLS_NONE && c->caps.starttls) {
		if (starttls(ob, c, set, policy, d->host, o) < 0)
			goto fail;
		if (ehlo(c, set->helo, o) < 0)
			goto fail;
	} else if (policy == CFG_ROUTE_TLS_ENCRYPT || policy == CFG_ROUTE_TLS_VERIFY) {
		set_outcome(o, 451, "4.7.4", false, "TLS is required for this destination but %s "
			    "does not offer STARTTLS", c->relay);
		goto fail;
	}
	if (route != NULL && route->auth_user != NULL) {
		if (c->ssl == NULL && policy != CFG_ROUTE_TLS_NONE) {
			set_outcome(o, 451, "4.7.0", false, "not sending credentials to %s without TLS",
				    c->relay);
			goto fail;
		}
		if (auth(c, route, o) < 0)
			goto fail;
		c->auth_done = true;
	}
	return c;
fail:
	conn_close(c, false);
	return NULL;
}

/* ---- the transaction ---- */

static int add_xtext_param(struct buf *b, const char *name, const char *value)
{
	if (buf_append_str(b, name) < 0)
		return -1;
	return outbound_xtext_encode(b, value);
}

static int send_body(struct ob_conn *c, const char *path, struct outcome *o)
{
	char in[65536];
	struct buf out;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool bol = true;
	char prev = '\0';
	ssize_t n;
	int ret = -1;

	if (fd < 0) {
		set_outcome(o, 451, "4.3.0", false, "cannot read the queued message: %s",
			    strerror(errno));
		return -1;
	}
	buf_init(&out, 2 * sizeof(in) + 16);
	while ((n = read(fd, in, sizeof(in))) > 0) {
		buf_reset(&out);
		for (ssize_t i = 0; i < n; i++) {
			char ch = in[i];
			int r = 0;

			/* Dot-stuffing (RFC 5321 4.5.2); a bare LF is sent as CRLF. */
			if (bol && ch == '.')
				r |= buf_append_char(&out, '.');
			if (ch == '\n' && prev != '\r')
				r |= buf_append_char(&out, '\r');
			r |= buf_append_char(&out, ch);
			if (r != 0)
				panic("outbound: body buffer");
			bol = ch == '\n';
			prev = ch;
		}
		if (conn_write(c, out.data, out.len) < 0) {
			set_outcome(o, 451, "4.4.2", false, "lost connection with %s while sending data",
				    c->relay);
			goto out;
		}
	}
	if (n < 0) {
		set_outcome(o, 451, "4.3.0", false, "cannot read the queued message: %s",
			    strerror(errno));
		goto out;
	}
	if (conn_write(c, bol ? ".\r\n" : "\r\n.\r\n", bol ? 3 : 5) < 0) {
		set_outcome(o, 451, "4.4.2", false, "lost connection with %s while sending data",
			    c->relay);
		goto out;
	}
	ret = 0;
out:
	buf_deinit(&out);
	close(fd);
	return ret;
}

enum txn_result { TXN_DONE, TXN_CONN_FAILED };

/* One transaction on an open session.  Sets rcpts' outcomes (those that
 * the server answered) and returns TXN_DONE, or TXN_CONN_FAILED with o
 * (nothing decided: try the next host) — the session is then unusable.
 * *reusable is set when the session may carry another message. */
static enum txn_result transaction(struct ob_conn *c, const struct outbound_msg *msg,
				   struct outbound_rcpt *rcpts, size_t count, struct outcome *o,
				   bool *reusable)
{
	struct buf cmd;
	struct outbound_reply r;
	bool *accepted = xcalloc(count, sizeof(bool));
	size_t naccepted = 0;
	bool pipe = c->caps.pipelining;
	enum txn_result ret = TXN_CONN_FAILED;
	struct outcome mail_o;

	*reusable = false;
	buf_init(&cmd, 1024 * 1024);
	/* What the server cannot take is decided before MAIL. */
	if (msg->body_8bit && !c->caps.eightbitmime) {
		set_outcome(o, 554, "5.6.3", false, "%s does not support 8BITMIME and the message has "
			    "8-bit content; it was not converted (conversion could damage it)", c->relay);
		goto all_failed;
	}
	if (msg->smtputf8 && !c->caps.smtputf8) {
		set_outcome(o, 553, "5.6.7", false, "%s does not support SMTPUTF8, which this message "
			    "needs", c->relay);
		goto all_failed;
	}
	if (c->caps.size && c->caps.max_size > 0 && msg->size > c->caps.max_size) {
		set_outcome(o, 552, "5.3.4", false, "message size %llu exceeds the limit of %s (%llu)",
			    (unsigned long long)msg->size, c->relay,
			    (unsigned long long)c->caps.max_size);
		goto all_failed;
	}
	{
		int e = 0;

		e |= buf_append_str(&cmd, "MAIL FROM:<");
		e |= buf_append_str(&cmd, msg->sender);
		e |= buf_append_char(&cmd, '>');
		if (c->caps.size)
			e |= buf_printf(&cmd, " SIZE=%llu", (unsigned long long)msg->size);
		if (msg->body_8bit)
			e |= buf_append_str(&cmd, " BODY=8BITMIME");
		if (msg->smtputf8)
			e |= buf_append_str(&cmd, " SMTPUTF8");
		if (c->caps.dsn) {
			if (msg->ret == 1)
				e |= buf_append_str(&cmd, " RET=FULL");
			else if (msg->ret == 2)
				e |= buf_append_str(&cmd, " RET=HDRS");
			if (msg->envid != NULL)
				e |= add_xtext_param(&cmd, " ENVID=", msg->envid);
		}
		e |= buf_append_str(&cmd, "\r\n");
		if (e != 0)
			goto toolong;
	}
	if (!pipe) {
		if (command(c, cmd.data, &r, NULL, o) < 0)
			goto out;
		if (r.code != 250)
			goto mail_refused;
		buf_reset(&cmd);
	}
	for (size_t i = 0; i < count; i++) {
		int e = 0;

		e |= buf_append_str(&cmd, "RCPT TO:<");
		e |= buf_append_str(&cmd, rcpts[i].address);
		e |= buf_append_char(&cmd, '>');
		if (c->caps.dsn) {
			unsigned n = rcpts[i].notify;

			if (n & NOTIFY_NEVER) {
				e |= buf_append_str(&cmd, " NOTIFY=NEVER");
			} else if (n != 0) {
				const char *sep = " NOTIFY=";

				if (n & NOTIFY_SUCCESS) {
					e |= buf_printf(&cmd, "%sSUCCESS", sep);
					sep = ",";
				}
				if (n & NOTIFY_FAILURE) {
					e |= buf_printf(&cmd, "%sFAILURE", sep);
					sep = ",";
				}
				if (n & NOTIFY_DELAY)
					e |= buf_printf(&cmd, "%sDELAY", sep);
			}
			if (rcpts[i].orcpt != NULL) {
				const char *semi = strchr(rcpts[i].orcpt, ';');

				if (semi != NULL && semi != rcpts[i].orcpt) {
					e |= buf_printf(&cmd, " ORCPT=%.*s;", (int)(semi - rcpts[i].orcpt),
							rcpts[i].orcpt);
					e |= outbound_xtext_encode(&cmd, semi + 1);
				} else {
					e |= add_xtext_param(&cmd, " ORCPT=rfc822;", rcpts[i].orcpt);
				}
			}
		}
		e |= buf_append_str(&cmd, "\r\n");
		if (e != 0)
			goto toolong;
		if (!pipe) {
			if (command(c, cmd.data, &r, NULL, o) < 0)
				goto out;
			buf_reset(&cmd);
			if (r.code == 250 || r.code == 251) {
				accepted[i] = true;
				naccepted++;
			} else {
				struct outcome ro;

				reply_outcome(&ro, &r, "RCPT TO");
				rcpts[i].code = ro.code;
				snprintf(rcpts[i].status, sizeof(rcpts[i].status), "%s", ro.status);
				snprintf(rcpts[i].text, sizeof(rcpts[i].text), "%s", ro.text);
				rcpts[i].remote_said = true;
			}
		}
	}
	if (pipe) {
		/* RFC 2920: MAIL, every RCPT and DATA in one write. */
		if (buf_append_str(&cmd, "DATA\r\n") < 0)
			goto toolong;
		if (conn_write(c, cmd.data, cmd.len) < 0) {
			set_outcome(o, 451, "4.4.2", false, "lost connection with %s while sending",
				    c->relay);
			goto out;
		}
		if (read_reply(c, &r, NULL, o) < 0)
			goto out;
		if (r.code != 250) {
			reply_outcome(&mail_o, &r, "MAIL FROM");
			/* Read and drop the RCPT and DATA replies. */
			for (size_t i = 0; i <= count; i++) {
				if (read_reply(c, &r, NULL, o) < 0)
					goto out;
			}
			*o = mail_o;
			if (o->code >= 500)
				goto all_failed;
			goto out;
		}
		for (size_t i = 0; i < count; i++) {
			if (read_reply(c, &r, NULL, o) < 0)
				goto out;
			if (r.code == 250 || r.code == 251) {
				accepted[i] = true;
				naccepted++;
			} else {
				struct outcome ro;

				reply_outcome(&ro, &r, "RCPT TO");
				rcpts[i].code = ro.code;
				snprintf(rcpts[i].status, sizeof(rcpts[i].status), "%s", ro.status);
				snprintf(rcpts[i].text, sizeof(rcpts[i].text), "%s", ro.text);
				rcpts[i].remote_said = true;
			}
		}
		if (read_reply(c, &r, NULL, o) < 0)
			goto out;
		if (r.code != 354) {
			if (naccepted > 0) {
				reply_outcome(o, &r, "DATA");
				goto accepted_get_o;
			}
			ret = TXN_DONE;
			*reusable = true;
			goto rset;
		}
		if (naccepted == 0) {
			/* RFC 2920 3.1: DATA was accepted for no recipient;
			 * end it empty. */
			if (command(c, ".\r\n", &r, NULL, o) < 0)
				goto out;
			ret = TXN_DONE;
			*reusable = true;
			goto rset;
		}
	} else {
		if (naccepted == 0) {
			ret = TXN_DONE;
			*reusable = true;
			goto rset;
		}
		if (command(c, "DATA\r\n", &r, NULL, o) < 0)
			goto out;
		if (r.code != 354) {
			reply_outcome(o, &r, "DATA");
			goto accepted_get_o;
		}
	}
	if (send_body(c, msg->path, o) < 0)
		goto out;
	if (read_reply(c, &r, NULL, o) < 0)
		goto out;
	reply_outcome(o, &r, "end of data");
	*reusable = r.code == 250;
accepted_get_o:
	for (size_t i = 0; i < count; i++) {
		if (!accepted[i])
			continue;
		rcpts[i].code = o->code;
		snprintf(rcpts[i].status, sizeof(rcpts[i].status), "%s", o->status);
		snprintf(rcpts[i].text, sizeof(rcpts[i].text), "%s", o->text);
		rcpts[i].remote_said = o->remote;
		rcpts[i].dsn_passed = c->caps.dsn;
	}
	ret = TXN_DONE;
	goto out;
rset:
	if (command(c, "RSET\r\n", &r, NULL, o) < 0 || r.code != 250)
		*reusable = false;
	goto out;
mail_refused:
	reply_outcome(o, &r, "MAIL FROM");
	if (o->code < 500)
		goto out;  /* 4xx: another host may take it */
all_failed:
	for (size_t i = 0; i < count; i++) {
		rcpts[i].code = o->code;
		snprintf(rcpts[i].status, sizeof(rcpts[i].status), "%s", o->status);
		snprintf(rcpts[i].text, sizeof(rcpts[i].text), "%s", o->text);
		rcpts[i].remote_said = o->remote;
	}
	ret = TXN_DONE;
	*reusable = o->code >= 500 && o->remote;
	goto out;
toolong:
	set_outcome(o, 554, "5.5.4", false, "envelope too long for one command");
	goto all_failed;
out:
	buf_deinit(&cmd);
	free(accepted);
	return ret;
}

/* ---- cache ---- */

static struct ob_conn *cache_take(struct outbound *ob, const char *key)
{
	struct ob_conn **pp, *c;

	pthread_mutex_lock(&ob->lock);
	for (pp = &ob->idle; (c = *pp) != NULL; pp = &c->next) {
		if (strcmp(c->key, key) == 0) {
			*pp = c->next;
			c->next = NULL;
			ob->idle_count--;
			break;
		}
	}
	pthread_mutex_unlock(&ob->lock);
	return c;
}

static void cache_put(struct outbound *ob, struct ob_conn *c)
{
	c->idle_since = time(NULL);
	pthread_mutex_lock(&ob->lock);
	if (ob->idle_count >= OB_MAX_CACHED) {
		pthread_mutex_unlock(&ob->lock);
		conn_close(c, true);
		return;
	}
	c->next = ob->idle;
	ob->idle = c;
	ob->idle_count++;
	pthread_mutex_unlock(&ob->lock);
}

void outbound_expire(struct outbound *ob, int max_idle)
{
	struct ob_conn *old = NULL, **pp, *c;
	time_t now = time(NULL);

	pthread_mutex_lock(&ob->lock);
	for (pp = &ob->idle; (c = *pp) != NULL;) {
		if (now - c->idle_since >= max_idle) {
			*pp = c->next;
			ob->idle_count--;
			c->next = old;
			old = c;
		} else {
			pp = &c->next;
		}
	}
	pthread_mutex_unlock(&ob->lock);
	while (old != NULL) {
		c = old;
		old = c->next;
		conn_close(c, true);
	}
}

/* ---- delivery ---- */

static void finish(struct outbound_rcpt *rcpts, size_t count, const struct outcome *o,
		   const char *relay, const char *tls)
{
	for (size_t i = 0; i < count; i++) {
		if (rcpts[i].code == 0) {
			rcpts[i].code = o->code;
			snprintf(rcpts[i].status, sizeof(rcpts[i].status), "%s", o->status);
			snprintf(rcpts[i].text, sizeof(rcpts[i].text), "%s", o->text);
			rcpts[i].remote_said = o->remote;
		}
		snprintf(rcpts[i].relay, sizeof(rcpts[i].relay), "%s", relay);
		snprintf(rcpts[i].tls, sizeof(rcpts[i].tls), "%s", tls);
	}
}

void outbound_deliver(struct outbound *ob, const struct outbound_settings *set, const char *domain,
		      const struct outbound_msg *msg, struct outbound_rcpt *rcpts, size_t count)
{
	const struct route_config *route = set->cfg != NULL ? cfg_route_find(set->cfg, domain) : NULL;
	const char *target = route != NULL && route->host != NULL ? route->host : domain;
	bool use_mx = route == NULL || route->host == NULL;
	uint16_t port = route != NULL && route->port != 0 ? route->port : set->smtp_port;
	struct outcome o;
	struct ob_resolve res;
	char key[512];
	struct ob_conn *c;
	bool reusable;

	for (size_t i = 0; i < count; i++) {
		rcpts[i].code = 0;
		rcpts[i].remote_said = false;
		rcpts[i].dsn_passed = false;
	}
	set_outcome(&o, 451, "4.4.1", false, "no destination tried");
	snprintf(key, sizeof(key), "%s|%s|%u|%d|%s", domain, target, (unsigned)port,
		 route != NULL ? (int)route->tls : 0,
		 route != NULL && route->auth_user != NULL ? route->auth_user : "");
	/* A cached session to this destination first. */
	while (set->reuse_time > 0 && (c = cache_take(ob, key)) != NULL) {
		struct outbound_reply r;

		if (time(NULL) - c->idle_since < set->reuse_time &&
		    command(c, "RSET\r\n", &r, NULL, &o) == 0 && r.code == 250) {
			set_timeouts(c->fd, set->command_timeout);
			if (transaction(c, msg, rcpts, count, &o, &reusable) == TXN_DONE) {
				finish(rcpts, count, &o, c->relay, c->tls);
				if (reusable && set->reuse_time > 0 && ++c->uses < OB_MAX_REUSE)
					cache_put(ob, c);
				else
					conn_close(c, true);
				return;
			}
			/* The cached session broke mid-way: what the server
			 * did not answer is tried afresh below. */
		}
		conn_close(c, false);
		for (size_t i = 0; i < count; i++)
			rcpts[i].code = 0;
	}
	if (ob_resolve(set->dns_server, target, use_mx, &res) < 0) {
		set_outcome(&o, res.code, res.status, false, "%s", res.text);
		ob_resolve_free(&res);
		finish(rcpts, count, &o, "none", "none");
		return;
	}
	if (use_mx && ob_drop_self(&res, set->helo) < 0) {
		set_outcome(&o, 554, "5.4.6", false, "mail for %s loops back to myself: %s is its "
			    "best mail exchanger", domain, set->helo);
		ob_resolve_free(&res);
		finish(rcpts, count, &o, "none", "none");
		return;
	}
	{
		char last_relay[320] = "none", last_tls[96] = "none";

		for (size_t i = 0; i < res.count; i++) {
			c = conn_open(ob, set, route, &res.dests[i], port, key, &o);
			if (c == NULL) {
				/* A 5xx greeting from the last host is final; else next. */
				continue;
			}
			snprintf(last_relay, sizeof(last_relay), "%s", c->relay);
			snprintf(last_tls, sizeof(last_tls), "%s", c->tls);
			if (transaction(c, msg, rcpts, count, &o, &reusable) == TXN_DONE) {
				finish(rcpts, count, &o, c->relay, c->tls);
				if (reusable && set->reuse_time > 0)
					cache_put(ob, c);
				else
					conn_close(c, true);
				ob_resolve_free(&res);
				return;
			}
			conn_close(c, false);
			for (size_t k = 0; k < count; k++)
				rcpts[k].code = 0;
		}
		/* Every host failed: a 5xx from the last one is final; a
		 * connection problem stays temporary. */
		if (o.code < 400)
			set_outcome(&o, 451, "4.4.1", false, "no usable mail exchanger");
		finish(rcpts, count, &o, last_relay, last_tls);
	}
	ob_resolve_free(&res);
}
