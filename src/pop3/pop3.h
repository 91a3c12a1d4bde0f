/*
 * The POP3 server (RFC 1939, CAPA RFC 2449, STLS RFC 2595, SASL AUTH RFC
 * 5034): service "pop3" (110 plus the port offset, STLS) and "pop3s" (995,
 * implicit TLS).  docs/pop3.md is the administrator's reference.
 *
 * Process model: a connection lives on one event-loop thread (net.h).
 * Its command lines are read there by the pure parser of pop3_parse.h.
 * Everything that blocks runs on the worker pool and completes back on the
 * connection's loop, found again by connection id (STYLE.md §3): password
 * checks (the SASL engine of auth/sasl.h, through the shared brute-force
 * limiter), opening the maildrop (the folder of pop3/folder, default
 * INBOX), reading messages for RETR and TOP (in chunks, as the client
 * reads: a big message never sits in memory whole), and the expunge at
 * QUIT.
 *
 * Maildrop semantics: the message list is fixed at login (RFC 1939
 * section 8); DELE only marks, and the marked messages are expunged when
 * the client says QUIT in the TRANSACTION state.  A connection that drops,
 * times out or is closed at shutdown deletes nothing.  One POP3 session
 * per maildrop at a time ("-ERR [IN-USE]", RFC 2449).  UIDL is
 * "UIDVALIDITY.UID" from the store: stable for as long as the folder's
 * index keeps its UIDVALIDITY.
 *
 * A successful login records the client address for POP-before-SMTP
 * (core/recent_auth.h).
 */
#ifndef PETREL_POP3_H
#define PETREL_POP3_H

#include "core/evloop.h"
#include "core/net.h"

struct store;

struct pop3_deps {
	struct net *net;
	/* The engine's worker pool, read when needed (it is created after
	 * registration, before the first connection). */
	struct worker_pool *const *workers;
	/* The engine's message store, likewise read when needed; NULL
	 * while there is none: logins then fail temporarily. */
	struct store *const *store;
};

/* Registers the pop3 and pop3s handlers with deps->net (before net_bind).
 * Call once per process. */
void pop3_register(const struct pop3_deps *deps);

#endif
