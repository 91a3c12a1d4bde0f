/*
 * The protocol front ends compiled into this engine.  A service without a
 * handler is "not implemented" and its listeners are not opened.
 */
#ifndef PETREL_SERVICES_H
#define PETREL_SERVICES_H

#include <event2/event.h>

#include "admin/admin.h"
#include "core/evloop.h"
#include "core/net.h"

/* Registers every front end with net (before net_bind).  main_base is the
 * main thread's loop; *workers is the engine's worker pool, which may
 * still be NULL now (it is created after the privilege drop, before any
 * connection is accepted); engine holds the callbacks of the
 * administration commands (copied). */
void services_register(struct net *net, struct event_base *main_base,
		       struct worker_pool *const *workers, const struct admin_engine *engine);

struct store;
/* Gives the front ends that read mail (IMAP, POP3) the engine's message
 * store once it is open (after the privilege drop, before the first
 * connection), and NULL before it is freed. */
void services_set_store(struct store *store);

#endif
