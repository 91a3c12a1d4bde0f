/*
 * The outbound SMTP client: the queue's remote delivery agent.
 *
 * outbound_deliver() takes one message and the recipients of one
 * destination domain, finds where to send them (a static route or smart
 * host from <routes>, else the domain's MX records through c-ares, else
 * its A/AAAA records), connects in preference order, always attempts
 * STARTTLS when offered (RFC 7435 opportunistic TLS; a route may require
 * TLS or a verified certificate), uses PIPELINING, SIZE, 8BITMIME,
 * SMTPUTF8 and DSN when the server offers them, authenticates to a smart
 * host (AUTH PLAIN or LOGIN, only over TLS unless the route says
 * tls="none"), and reports a status per recipient.
 *
 * Threading: a delivery blocks (DNS, connect, the SMTP dialogue, each
 * bounded by a timeout) and runs on one of the queue's delivery threads,
 * never on an event loop.  Like Postfix's smtp(8) processes, each delivery
 * thread holds at most one connection; the number of threads is the
 * concurrency limit.  struct outbound is shared by all delivery threads.
 *
 * Peer input is hostile (HOSTILE-INPUT row 6, OpenSMTPD CVE-2020-8794):
 * replies go through the pure parser below, which refuses NUL, bare CR or
 * LF, and replies longer than OUTBOUND_MAX_REPLY; such a session is
 * aborted with a temporary status and nothing of the reply reaches the
 * queue record except a sanitised, bounded text.
 */
#ifndef PETREL_OUTBOUND_H
#define PETREL_OUTBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/cfg.h"
#include "core/xmalloc.h"

/* Longest reply (all lines of one multi-line reply, CRLFs included) we
 * read from a server before aborting the session.  Real replies are a few
 * hundred bytes; EHLO with many extensions about 1 KiB. */
#define OUTBOUND_MAX_REPLY (64 * 1024)
/* Longest single reply line (RFC 5321 4.5.3.1.5 says 512; be lenient). */
#define OUTBOUND_MAX_REPLY_LINE 4096
/* Longest reply text we keep (for logs, the envelope and DSNs). */
#define OUTBOUND_MAX_TEXT 512
/* MX hosts and addresses per host tried for one delivery. */
#define OUTBOUND_MAX_MX 10
#define OUTBOUND_MAX_ADDRS 4

/* ---- the reply parser (pure; outbound_parse.c) ---- */

struct outbound_reply {
	int code;                 /* 200..599 */
	char enhanced[16];        /* "5.1.1" when the first line has one, else "" */
	char text[OUTBOUND_MAX_TEXT + 1];  /* lines joined by a space, code and enhanced code
					    * removed, non-printable bytes as '?', cut */
	size_t lines;
};

enum outbound_reply_result { OUTBOUND_REPLY_DONE, OUTBOUND_REPLY_MORE, OUTBOUND_REPLY_BAD };

/* Parses one complete reply at the start of data[0..len).  Returns
 * OUTBOUND_REPLY_DONE with *reply and *consumed_r (bytes of the reply, CRLFs
 * included); OUTBOUND_REPLY_MORE when the reply is not complete yet and may
 * still become valid (the caller reads more; it must stop at
 * OUTBOUND_MAX_REPLY, and the parser says BAD itself when len exceeds
 * it); OUTBOUND_REPLY_BAD with *error_r (static) for a malformed reply: not
 * three digits, codes differing between lines, a NUL, a bare CR or LF, a
 * line longer than OUTBOUND_MAX_REPLY_LINE, or too long overall. */
enum outbound_reply_result outbound_reply_parse(const char *data, size_t len, struct outbound_reply *reply,
					size_t *consumed_r, const char **error_r);

/* What an EHLO reply offers. */
struct outbound_caps {
	bool esmtp;
	bool pipelining, size, eightbitmime, smtputf8, dsn, starttls, enhancedstatuscodes;
	bool auth_plain, auth_login;
	uint64_t max_size;        /* SIZE n; 0 = not given or unlimited */
};

/* Reads the capability lines of an EHLO reply's raw text (data[0..len)
 * is the whole reply, already accepted by outbound_reply_parse).  Pure. */
void outbound_caps_parse(const char *data, size_t len, struct outbound_caps *caps);

/* RFC 3461 xtext: encodes s (appends); decodes text into out (returns 0,
 * or -1 on a bad "+XX" or a forbidden byte). */
int outbound_xtext_encode(struct buf *out, const char *s) PETREL_MUST_CHECK;
int outbound_xtext_decode(const char *text, size_t len, struct buf *out) PETREL_MUST_CHECK;

/* ---- delivery ---- */

struct outbound;

struct outbound_settings {
	const char *helo;          /* our host name for EHLO */
	const char *dns_server;    /* "system" or "ADDR[:PORT][,ADDR[:PORT]...]" */
	uint16_t smtp_port;        /* port of MX hosts (25; tests use another) */
	int connect_timeout;       /* seconds */
	int command_timeout;       /* seconds */
	const char *ca_file;       /* "system" or a PEM bundle for verify */
	int reuse_time;            /* seconds an idle connection is kept for reuse; 0 = never */
	const struct cfg *cfg;     /* for <routes>; borrowed for the call */
};

struct outbound_msg {
	const char *queue_id;
	const char *sender;        /* "" = null sender */
	const char *envid;         /* decoded, or NULL */
	int ret;                   /* 0 default, 1 FULL, 2 HDRS */
	bool smtputf8, body_8bit;
	const char *path;          /* the spool file: CRLF text, not dot-stuffed */
	uint64_t size;
};

struct outbound_rcpt {
	const char *address;
	const char *orcpt;         /* decoded "type;addr", or NULL */
	unsigned notify;           /* RFC 3461 NOTIFY bits as QUEUE_NOTIFY_* (0x01 NEVER, 0x02
				    * SUCCESS, 0x04 FAILURE, 0x08 DELAY); 0 = not given */
	/* out: */
	int code;                  /* SMTP code: 250 delivered; 4xx retry; 5xx failed */
	char status[16];           /* enhanced status "5.1.1" (made up when the server gives none) */
	char text[OUTBOUND_MAX_TEXT + 1];  /* what happened, for logs and DSNs */
	char relay[320];           /* "mx.example.net[192.0.2.1]:25" or "none" */
	char tls[96];              /* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "none" */
	bool remote_said;          /* the text came from the remote server (Remote-MTA) */
	bool dsn_passed;           /* the server took DSN parameters: it notifies from now on */
};

int outbound_new(struct outbound **ob_r, char **error_r) PETREL_MUST_CHECK;
/* Closes cached connections. */
void outbound_free(struct outbound **ob);
/* Delivers msg to rcpts (all in domain); fills each rcpt's outcome.
 * Never fails as a call: every problem becomes a recipient status. */
void outbound_deliver(struct outbound *ob, const struct outbound_settings *set, const char *domain,
		      const struct outbound_msg *msg, struct outbound_rcpt *rcpts, size_t count);
/* Engine stop: aborts every connection in use (their deliveries end with
 * a temporary failure at once instead of waiting for timeouts). */
void outbound_shutdown(struct outbound *ob);
/* Closes cached connections idle for longer than max_idle seconds. */
void outbound_expire(struct outbound *ob, int max_idle);

#endif
