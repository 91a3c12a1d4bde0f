/*
 * Delivery status notifications: RFC 3464 multipart/report messages
 * (RFC 6522) built from an envelope and its message text.  Pure: the
 * scheduler decides when a notice is due and queues the text with the
 * null sender (so a notice about a notice can never be sent: RFC 3461
 * 6.2, RFC 5321 6.1).
 *
 * Every value that came from a client or a remote server is made safe for
 * a header line here: ENVID and ORCPT are xtext-encoded (RFC 3464 2.2.1,
 * 2.3.2), diagnostic text keeps printable ASCII only, so nothing can start
 * a new header field in the report.
 */
#include "queue/queue_private.h"
#include "queue/queue_list.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/str.h"
#include "outbound/outbound.h"

/* Largest notice we build (the original message is cut to headers above
 * max_full anyway). */
#define DSN_MAX (256u * 1024 * 1024)

/* Printable ASCII only (a remote reply's text, our own messages). */
static int put_safe(struct buf *b, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (buf_append_char(b, c >= 0x20 && c < 0x7f ? (char)c : '?') < 0)
			return -1;
	}
	return 0;
}

static int put_xtext(struct buf *b, const char *s)
{
	return outbound_xtext_encode(b, s);
}

static bool is_ascii(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s >= 0x80)
			return false;
	}
	return true;
}

static const char *action_of(const struct queue_rcpt *r, enum queue_dsn_kind kind)
{
	if (kind == QUEUE_DSN_DELAY)
		return "delayed";
	if (kind == QUEUE_DSN_FAILURE)
		return "failed";
	if (r->state == QUEUE_RCPT_EXPANDED)
		return "expanded";
	/* Delivered to a remote host that did not take over DSN: "relayed"
	 * (RFC 3464 2.3.3); into a local mailbox: "delivered". */
	return r->relay != NULL ? "relayed" : "delivered";
}

static int put_rcpt_fields(struct buf *b, const struct queue_env *env, const struct queue_rcpt *r,
			   enum queue_dsn_kind kind, int64_t now, int64_t max_until)
{
	char date[64];
	const char *status = r->status != NULL ? r->status
		: kind == QUEUE_DSN_FAILURE ? "5.0.0" : kind == QUEUE_DSN_DELAY ? "4.0.0" : "2.0.0";
	int ret = 0;

	ret |= buf_append_str(b, "\r\n");
	if (r->orcpt != NULL) {
		const char *semi = strchr(r->orcpt, ';');

		ret |= buf_append_str(b, "Original-Recipient: ");
		if (semi != NULL && semi != r->orcpt) {
			ret |= put_safe(b, "rfc822");
			ret |= buf_append_char(b, ';');
			ret |= put_xtext(b, semi + 1);
		} else {
			ret |= buf_append_str(b, "rfc822;");
			ret |= put_xtext(b, r->orcpt);
		}
		ret |= buf_append_str(b, "\r\n");
	}
	/* RFC 6533: a UTF-8 address is of type utf-8. */
	ret |= buf_append_str(b, is_ascii(r->address) ? "Final-Recipient: rfc822; "
						      : "Final-Recipient: utf-8; ");
	ret |= buf_append_str(b, r->address);  /* checked at commit: no control bytes */
	ret |= buf_printf(b, "\r\nAction: %s\r\nStatus: ", action_of(r, kind));
	ret |= put_safe(b, status);
	ret |= buf_append_str(b, "\r\n");
	if (r->relay != NULL) {
		ret |= buf_append_str(b, "Remote-MTA: dns; ");
		ret |= put_safe(b, r->relay);
		ret |= buf_append_str(b, "\r\n");
	}
	if (r->diag != NULL) {
		ret |= buf_append_str(b, r->relay != NULL ? "Diagnostic-Code: smtp; "
							  : "Diagnostic-Code: X-Petrel; ");
		ret |= put_safe(b, r->diag);
		ret |= buf_append_str(b, "\r\n");
	}
	if (r->last_attempt > 0) {
		str_date_utc(r->last_attempt, "+0000", date, sizeof(date));
		ret |= buf_printf(b, "Last-Attempt-Date: %s\r\n", date);
	}
	if (kind == QUEUE_DSN_DELAY) {
		str_date_utc(max_until > 0 ? max_until : now, "+0000", date, sizeof(date));
		ret |= buf_printf(b, "Will-Retry-Until: %s\r\n", date);
	}
	(void)env;
	return ret == 0 ? 0 : -1;
}

char *queue_dsn_build(const struct queue_env *env, enum queue_dsn_kind kind, const bool *which,
		      const char *msg, size_t msg_len, uint64_t max_full,
		      const struct queue_dsn_params *p, size_t *len_r)
{
	struct buf b;
	char date[64], boundary[96], arrival[64];
	const char *subject, *intro;
	size_t hdr_len = msg_len;
	bool headers_only;
	int ret = 0;

	buf_init(&b, DSN_MAX);
	if (p->boundary != NULL)
		snprintf(boundary, sizeof(boundary), "%s", p->boundary);
	else
		snprintf(boundary, sizeof(boundary), "%s.%" PRId64 "/%s", env->id, p->now,
			 p->reporting_mta);
	str_date_utc(p->now, "+0000", date, sizeof(date));
	str_date_utc(env->arrival, "+0000", arrival, sizeof(arrival));
	switch (kind) {
	case QUEUE_DSN_FAILURE:
		subject = "Undelivered Mail Returned to Sender";
		intro = "Your message could not be delivered to one or more recipients.\r\n"
			"It is attached below, with the reasons in the delivery report.";
		break;
	case QUEUE_DSN_DELAY:
		subject = "Delayed Mail (still being retried)";
		intro = "Your message has not been delivered to one or more recipients yet.\r\n"
			"This is only a warning: delivery will be retried, you need not send it again.";
		break;
	default:
		subject = "Successful Mail Delivery Report";
		intro = "Your message was delivered to the recipients listed in the report.";
		break;
	}
	ret |= buf_printf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", p->reporting_mta);
	ret |= buf_append_str(&b, "To: <");
	ret |= buf_append_str(&b, env->sender);
	ret |= buf_printf(&b, ">\r\nSubject: %s\r\nDate: %s\r\n", subject, date);
	ret |= buf_printf(&b, "Message-ID: <%s.%" PRId64 ".dsn@%s>\r\n", env->id, p->now,
			  p->reporting_mta);
	ret |= buf_append_str(&b, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	ret |= buf_printf(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
			      "\tboundary=\"%s\"\r\n\r\n", boundary);
	ret |= buf_append_str(&b, "This is a MIME-encapsulated message.\r\n\r\n");
	/* 1: the human-readable part. */
	ret |= buf_printf(&b, "--%s\r\nContent-Description: Notification\r\n"
			      "Content-Type: text/plain; charset=us-ascii\r\n\r\n", boundary);
	ret |= buf_printf(&b, "This is the mail system at host %s.\r\n\r\n%s\r\n\r\n",
			  p->reporting_mta, intro);
	for (size_t i = 0; i < env->rcpt_count; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];

		if (!which[i])
			continue;
		ret |= buf_append_str(&b, "<");
		ret |= put_safe(&b, r->address);
		ret |= buf_append_str(&b, ">: ");
		ret |= put_safe(&b, r->diag != NULL ? r->diag : action_of(r, kind));
		ret |= buf_append_str(&b, "\r\n");
	}
	ret |= buf_append_str(&b, "\r\n");
	/* 2: the machine-readable report. */
	ret |= buf_printf(&b, "--%s\r\nContent-Description: Delivery report\r\n"
			      "Content-Type: message/delivery-status\r\n\r\n", boundary);
	ret |= buf_printf(&b, "Reporting-MTA: dns; %s\r\n", p->reporting_mta);
	if (env->envid != NULL) {
		ret |= buf_append_str(&b, "Original-Envelope-Id: ");
		ret |= put_xtext(&b, env->envid);
		ret |= buf_append_str(&b, "\r\n");
	}
	ret |= buf_printf(&b, "Arrival-Date: %s\r\n", arrival);
	for (size_t i = 0; i < env->rcpt_count; i++) {
		if (which[i])
			ret |= put_rcpt_fields(&b, env, &env->rcpts[i], kind, p->now, 0);
	}
	ret |= buf_append_str(&b, "\r\n");
	/* 3: the message, or its header (RET=HDRS, delay notices, success
	 * notices unless RET=FULL, very large messages). */
	headers_only = env->ret == QUEUE_RET_HDRS || kind == QUEUE_DSN_DELAY ||
		       (kind == QUEUE_DSN_SUCCESS && env->ret != QUEUE_RET_FULL) ||
		       (uint64_t)msg_len > max_full;
	if (headers_only) {
		const char *end = memmem(msg, msg_len, "\r\n\r\n", 4);

		hdr_len = end != NULL ? (size_t)(end - msg) + 2 : msg_len;
	}
	ret |= buf_printf(&b, "--%s\r\nContent-Description: %s\r\nContent-Type: %s\r\n\r\n",
			  boundary, headers_only ? "Message headers" : "Undelivered message",
			  headers_only ? "text/rfc822-headers" : "message/rfc822");
	ret |= buf_append(&b, msg, hdr_len);
	if (hdr_len < 2 || msg[hdr_len - 2] != '\r' || msg[hdr_len - 1] != '\n')
		ret |= buf_append_str(&b, "\r\n");
	ret |= buf_printf(&b, "\r\n--%s--\r\n", boundary);
	if (ret != 0)
		panic("queue_dsn_build: notice larger than %u bytes", DSN_MAX);
	*len_r = b.len;
	return buf_steal(&b);
}
