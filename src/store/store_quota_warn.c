/*
 * The quota warning: when a change (local delivery, IMAP APPEND, COPY or
 * MOVE into a user's folder) takes the mailbox's storage or message count
 * from below the warning percentage of its quota (queue/quota-warning-
 * percent) to at or above it, a short notice is written straight into the
 * user's INBOX.
 *
 * Once per crossing, with no state to keep: only the change that crosses
 * the line warns (usage before it was below, after it is not), so the
 * next changes above the line stay quiet, and a user who cleans up and
 * fills the mailbox again is warned again.
 *
 * Written into the store directly, not queued: it is the store's own
 * notice, not mail from anyone, and going through SMTP would meet the
 * same full mailbox.  It counts in the usage but is never refused by the
 * quota (store_rcpt.ignore_quota).  The callers pass the percentage and
 * the host name: the store reads no configuration.
 */
#include "store/store_quota_warn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/str.h"

bool store_quota_crossed(uint64_t used, uint64_t delta, uint64_t max, unsigned pct)
{
	/* @UNSAFE: max * pct fits: max <= UINT64_MAX / 100 is checked, pct <= 100 */
	uint64_t line;

	if (max == 0 || pct == 0 || pct > 100 || max > (UINT64_MAX / 100))
		return false;
	line = (max * pct + 99) / 100;
	return used >= line && (used < delta || used - delta < line);
}

char *store_quota_warn_text(const char *address, const struct store_quota *q, unsigned pct,
			    const char *hostname, int64_t now)
{
	char date[64], maxb[32], maxm[32];
	uint32_t h = 2166136261u;

	str_date_utc(now, "+0000", date, sizeof(date));
	snprintf(maxb, sizeof(maxb), "%" PRIu64, q->max_bytes);
	snprintf(maxm, sizeof(maxm), "%" PRIu64, q->max_messages);
	/* Message-ID: the time and a hash of the address (an address may
	 * hold characters a msg-id may not) */
	for (const char *p = address; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return xasprintf("Return-Path: <>\r\n"
			"From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
			"To: <%s>\r\n"
			"Subject: Your mailbox is %u%% full\r\n"
			"Date: %s\r\n"
			"Message-ID: <quota.%lld.%08lx@%s>\r\n"
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
			hostname, address, pct, date, (long long)now,
			(unsigned long)h, hostname,
			address, pct, q->bytes, q->max_bytes != 0 ? maxb : "unlimited",
			q->messages, q->max_messages != 0 ? maxm : "unlimited");
}

bool store_quota_warn(struct store_user *user, const char *address,
		      const struct store_quota *after, uint64_t added_bytes,
		      uint64_t added_messages, unsigned pct, const char *hostname)
{
	struct store_folder *inbox;
	const char *error;
	char *text;
	bool stored;

	if (after->max_bytes == 0 && after->max_messages == 0)
		return false;
	if (!store_quota_crossed(after->bytes, added_bytes, after->max_bytes, pct) &&
	    !store_quota_crossed(after->messages, added_messages, after->max_messages, pct))
		return false;
	if (store_folder_open(user, "INBOX", &inbox, &error) != STORE_OK) {
		log_warn("store", "quota warning for %s not stored: %s", address, error);
		return false;
	}
	text = store_quota_warn_text(address, after, pct, hostname, (int64_t)time(NULL));
	{
		struct store_message m = { .data = text, .len = strlen(text) };
		struct store_rcpt r = { .folder = inbox, .ignore_quota = true };

		store_deliver_many(&m, &r, 1);
		stored = r.status == STORE_OK;
		if (stored)
			log_mail("store", "quota warning for %s: %u%% reached", address, pct);
		else
			log_warn("store", "quota warning for %s not stored: %s", address, r.error);
	}
	free(text);
	store_folder_close(&inbox);
	return stored;
}
