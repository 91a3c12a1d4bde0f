/*
 * The quota warning: after a local delivery, when the mailbox's storage or
 * message count went from below queue/quota-warning-percent of its quota
 * to at or above it, a short notice is written straight into the user's
 * INBOX.
 *
 * Once per crossing, with no state to keep: only the delivery that crosses
 * the line warns (usage before it was below, after it is not), so the
 * next deliveries above the line stay quiet, and a user who cleans up and
 * fills the mailbox again is warned again.  A usage that crosses through
 * IMAP APPEND or COPY does not warn (only mail from outside does).
 *
 * Written into the store directly, not queued: it is the store's own
 * notice, not mail from anyone, and going through SMTP would meet the
 * same full mailbox.  It counts in the usage but is never refused by the
 * quota (store_rcpt.ignore_quota).
 */
#include "queue/queue_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cfg.h"
#include "core/log.h"
#include "directory/directory.h"
#include "store/store.h"

/* True when used crossed pct% of max with the last delivery of delta. */
bool queue_quota_crossed(uint64_t used, uint64_t delta, uint64_t max, unsigned pct)
{
	/* @UNSAFE: max * pct fits: max is a quota in bytes (< 2^54), pct <= 100 */
	uint64_t line;

	if (max == 0 || pct == 0 || pct > 100 || max > (UINT64_MAX / 100))
		return false;
	line = (max * pct + 99) / 100;
	return used >= line && (used < delta || used - delta < line);
}

static char *warning_text(const struct dir_user *user, const struct store_quota *q, unsigned pct,
			  const char *hostname)
{
	char date[64], maxb[32], maxm[32];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	snprintf(maxb, sizeof(maxb), "%" PRIu64, q->max_bytes);
	snprintf(maxm, sizeof(maxm), "%" PRIu64, q->max_messages);
	return xasprintf("Return-Path: <>\r\n"
			"From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
			"To: <%s>\r\n"
			"Subject: Your mailbox is %u%% full\r\n"
			"Date: %s\r\n"
			"Message-ID: <quota.%lld.%s@%s>\r\n"
			"Auto-Submitted: auto-generated\r\n"
			"MIME-Version: 1.0\r\n"
			"Content-Type: text/plain; charset=us-ascii\r\n"
			"\r\n"
			"Your mailbox %s has reached %u%% of its quota.\r\n"
			"\r\n"
			"  storage:  %" PRIu64 " of %s bytes\r\n"
			"  messages: %" PRIu64 " of %s\r\n"
			"\r\n"
			"When it is full, new mail waits and is returned to its senders\r\n"
			"after a while. Please delete or archive messages you no longer need.\r\n",
			hostname, user->address, pct, date, (long long)now, user->name, hostname,
			user->address, pct, q->bytes, q->max_bytes != 0 ? maxb : "unlimited",
			q->messages, q->max_messages != 0 ? maxm : "unlimited");
}

void queue_quota_check(struct store_folder *inbox, const struct dir_user *user,
		       const struct store_quota *after, size_t msg_len)
{
	struct cfg *cfg;
	unsigned pct;
	char *text;

	if (after->max_bytes == 0 && after->max_messages == 0)
		return;
	cfg = cfg_current();
	if (cfg == NULL)
		return;
	pct = (unsigned)cfg->s.queue_quota_warning_percent;
	if (!queue_quota_crossed(after->bytes, msg_len, after->max_bytes, pct) &&
	    !queue_quota_crossed(after->messages, 1, after->max_messages, pct)) {
		cfg_unref(&cfg);
		return;
	}
	text = warning_text(user, after, pct, cfg->s.server_hostname);
	{
		struct store_message m = { .data = text, .len = strlen(text) };
		struct store_rcpt r = { .folder = inbox, .ignore_quota = true };

		store_deliver_many(&m, &r, 1);
		if (r.status == STORE_OK)
			log_mail("queue", "quota warning for %s: %u%% reached", user->address, pct);
		else
			log_warn("queue", "quota warning for %s not stored: %s", user->address, r.error);
	}
	free(text);
	cfg_unref(&cfg);
}
