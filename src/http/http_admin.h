/*
 * The administration API over HTTPS (service "admin", port 44337 plus the
 * port offset, implicit TLS): the same JSON requests as the control socket
 * (src/admin/admin.h), posted to /api/v1 by an administrator who logs in
 * with HTTP Basic.  docs/admin-api.md is the reference for clients.
 *
 * Process model: a connection lives on one event-loop thread (net.h).
 * Its requests are read there, one at a time, by the pure parser of
 * http_private.h.  Password checks (yescrypt, deliberately slow) run on
 * the worker pool; the command itself runs on the main thread, where the
 * engine's state lives (a reload re-binds listeners); the reply comes
 * back to the connection's loop by connection id, and is dropped if the
 * connection has closed meanwhile.
 */
#ifndef PETREL_HTTP_ADMIN_H
#define PETREL_HTTP_ADMIN_H

#include <event2/event.h>

#include "admin/admin.h"
#include "core/evloop.h"
#include "core/net.h"

struct http_admin_deps {
	struct net *net;
	/* The main thread's loop: admin commands run there. */
	struct event_base *main_base;
	/* Where the engine keeps its worker pool.  The pool is created after
	 * registration (threads start only after the privilege drop), so the
	 * handler reads *workers when it needs it; connections are accepted
	 * only once it is set. */
	struct worker_pool *const *workers;
	/* The engine's callbacks; copied.  Its context must live as long as
	 * the net. */
	const struct admin_engine *engine;
};

/* Registers the admin service's handler with deps->net (before net_bind).
 * Call once per process: the handler keeps deps in a process-wide
 * variable, since struct service_handler carries no context. */
void http_admin_register(const struct http_admin_deps *deps);

#endif
