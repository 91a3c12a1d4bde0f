/*
 * The SMTP server: services smtp (25, STARTTLS), submission (587,
 * STARTTLS, AUTH required before MAIL) and smtps (465, implicit TLS,
 * submission as RFC 8314 defines it: AUTH required too).
 *
 * Process model: petreld registers the three handlers with the network
 * layer (core/net.h) at start; each connection then runs on its event-loop
 * thread as a struct smtp_session (smtp_session.c).  Work that blocks runs
 * on the engine's worker pool and completes back on the session's loop:
 * queue_writer_commit (fsync: the 250 after DATA/BDAT is sent only after
 * it returned 0) and SASL steps (password hashing).  Recipients are
 * resolved through the directory (directory_current()) at RCPT time;
 * accepted mail goes to the queue (queue_current()).
 *
 * Settings: the <smtp> section of mailserver.cfg (settings.def and
 * <relay-networks>), the auth section for SASL; docs/smtp.md explains
 * them.
 */
#ifndef PETREL_SMTP_H
#define PETREL_SMTP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/evloop.h"
#include "core/net.h"

struct smtp_deps {
	struct net *net;
	/* The engine's worker pool; *workers may still be NULL at register
	 * time (it is created after the privilege drop). */
	struct worker_pool *const *workers;
};

/* Registers the smtp, submission and smtps handlers with deps->net
 * (before net_bind).  Call once. */
void smtp_register(const struct smtp_deps *deps);

/*
 * POP-before-SMTP (smtp/pop-before-smtp): the SMTP server asks this
 * function whether ip logged in over POP3 or IMAP within the last
 * window_s seconds.  The engine installs it (the POP3 and IMAP front ends
 * record logins; no front end calls another).  Without one, or with the
 * setting at 0, POP-before-SMTP never allows relaying.  Called on event
 * loops: must be thread-safe and quick.
 */
typedef bool smtp_recent_login_fn(const char *ip, int64_t window_s);
void smtp_set_recent_login_lookup(smtp_recent_login_fn *fn);

#endif
