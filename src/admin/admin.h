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

#include <jansson.h>

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
};

/* Handles one request and returns a new reply object (never NULL). */
json_t *admin_dispatch(json_t *request, const struct admin_engine *engine);

#endif
