/*
 * The administration API: one set of request handlers behind both the
 * control socket (petrelctl) and, later, HTTPS on port 44337.
 *
 * A request is a JSON object {"command": NAME, ...arguments}; the reply is
 * {"ok": true, ...results} or {"ok": false, "error": "reason"}.  The
 * commands and their arguments are listed in docs/control-protocol.md.
 *
 * The engine (petreld) supplies what the handlers need through struct
 * admin_engine, so this module does not depend on the program on top.
 */
#ifndef PETREL_ADMIN_H
#define PETREL_ADMIN_H

#include <stdbool.h>

#include <jansson.h>

struct store;

struct admin_engine {
	void *context;
	/* Fills status details into obj (services, uptime, connections...). */
	void (*status)(void *context, json_t *obj);
	/* Re-reads the configuration.  Returns 0, or -1 with *error_r
	 * ("FILE:LINE: reason", caller frees).  *warnings_r (caller frees,
	 * may stay NULL) carries what was accepted with a warning. */
	int (*reload)(void *context, char **error_r, char **warnings_r);
	/* Starts a graceful stop; returns at once. */
	void (*stop)(void *context);
	/* Where the engine keeps its message store (the mailbox-* commands);
	 * *store is NULL until the store is open.  A pointer to the engine's
	 * pointer, because this struct is copied before the store exists. */
	struct store *const *store;
};

/* Handles one request and returns a new reply object (never NULL). */
json_t *admin_dispatch(json_t *request, const struct admin_engine *engine);

/* True for a request whose work is slow on purpose: a password to hash
 * (yescrypt, and the derived secrets) in user-add or user-passwd.  Callers
 * run those through admin_dispatch on the worker pool, never on an event
 * loop; admin_dispatch is thread-safe for them (the directory commands
 * serialize their writers themselves). */
bool admin_request_is_slow(json_t *request);

/* The directory commands (admin_directory.c): domain-*, user-*, alias-*,
 * group-*, list-* and resolve.  A change is written to users.cfg and
 * swapped in (directory_set_current) before the reply. */
json_t *admin_do_directory(json_t *request, const struct admin_engine *engine);

/* The mailbox commands (admin_mailbox.c): mailbox-stats, mailbox-reindex. */
json_t *admin_do_mailbox_stats(json_t *request, const struct admin_engine *engine);
json_t *admin_do_mailbox_reindex(json_t *request, const struct admin_engine *engine);
/* Public folders (admin_public.c): public-create, public-list, public-setacl. */
json_t *admin_do_public_create(json_t *request, const struct admin_engine *engine);
json_t *admin_do_public_list(json_t *request, const struct admin_engine *engine);
json_t *admin_do_public_setacl(json_t *request, const struct admin_engine *engine);

#endif
