/*
 * The quota warning after a local delivery: the queue's side of
 * store_quota_warn.c (the rule, the notice and its delivery live in the
 * store, shared with IMAP APPEND and COPY).  This file only supplies the
 * settings: queue/quota-warning-percent and the server's host name.
 */
#include "queue/queue_private.h"

#include "core/cfg.h"
#include "directory/directory.h"
#include "store/store_quota_warn.h"

void queue_quota_check(struct store_user *user, const struct dir_user *du,
		       const struct store_quota *after, size_t msg_len)
{
	struct cfg *cfg;

	if (after->max_bytes == 0 && after->max_messages == 0)
		return;
	cfg = cfg_current();
	if (cfg == NULL)
		return;
	(void)store_quota_warn(user, du->address, after, msg_len, 1,
			       (unsigned)cfg->s.queue_quota_warning_percent,
			       cfg->s.server_hostname);
	cfg_unref(&cfg);
}
