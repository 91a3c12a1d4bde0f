/*
 * The IMAP server: IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051, after
 * ENABLE IMAP4rev2), service "imap" (143 plus the port offset, STARTTLS)
 * and "imaps" (993, implicit TLS).  docs/imap.md lists the extensions and
 * the settings.
 *
 * Process model: a connection lives on one event-loop thread (net.h).
 * Commands are read there by the pure incremental parser of imap_parse.h,
 * one at a time (pipelined commands wait in the input buffer, bounded by
 * the read high-watermark).  Everything that blocks — password checks,
 * every store call — runs on the worker pool and completes back on the
 * connection's loop, found again by connection id (STYLE.md §3).  Jobs
 * never point at the session: what they use (the user's and the folder's
 * store handles) is held by a reference-counted context the session and
 * its jobs share.
 *
 * Untagged updates (EXISTS, EXPUNGE or VANISHED, FETCH FLAGS) come from
 * the store's change notifications (store_watch), posted to the session's
 * loop: sent at once during IDLE, otherwise with the next command's
 * answer, where RFC 9051 section 7 allows them.
 *
 * Big answers (FETCH over 100 000 messages) are produced page by page:
 * a page of the index is read and formatted on a worker, written, and the
 * next page is read only once the client has taken most of the output
 * (bufferevent write watermark), so memory per session stays bounded.
 */
#ifndef PETREL_IMAP_H
#define PETREL_IMAP_H

#include "core/evloop.h"
#include "core/net.h"

struct store;

struct imap_deps {
	struct net *net;
	/* The engine's worker pool, read when needed (it is created after
	 * registration, before the first connection). */
	struct worker_pool *const *workers;
	/* The engine's message store, likewise; NULL while there is none:
	 * logins then fail temporarily. */
	struct store *const *store;
};

/* Registers the imap and imaps handlers with deps->net (before net_bind).
 * Call once per process. */
void imap_register(const struct imap_deps *deps);

#endif
