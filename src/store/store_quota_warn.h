/*
 * The quota warning (store_quota_warn.c): the notice written into a
 * user's INBOX when a change takes the mailbox's storage or message count
 * from below a percentage of its quota to at or above it.  One place for
 * every way mail comes in: the queue's local delivery, IMAP APPEND and
 * IMAP COPY/MOVE.
 *
 * Like the rest of the store, these functions block: call them from a
 * worker.
 */
#ifndef PETREL_STORE_QUOTA_WARN_H
#define PETREL_STORE_QUOTA_WARN_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/* True when used (after a change that added delta) crossed pct% of max:
 * before the change it was below the line, after it it is not.  Never
 * for max 0 (no quota), pct 0 (warning off) or pct above 100. */
bool store_quota_crossed(uint64_t used, uint64_t delta, uint64_t max, unsigned pct);

/* After a change that added added_bytes and added_messages to user's
 * usage and left it at *after: when either crossed pct% of its limit,
 * writes the warning into the user's INBOX (counted in the usage, never
 * refused by the quota) and returns true.  address is the user's address
 * (the To: of the notice), hostname the server's name (From:).  Once per
 * crossing with no state kept: the next changes above the line stay
 * quiet. */
bool store_quota_warn(struct store_user *user, const char *address,
		      const struct store_quota *after, uint64_t added_bytes,
		      uint64_t added_messages, unsigned pct, const char *hostname);

/* The notice itself (exposed for tests): a complete RFC 5322 message,
 * allocated; now is its Date. */
char *store_quota_warn_text(const char *address, const struct store_quota *q, unsigned pct,
			    const char *hostname, int64_t now);

#endif
