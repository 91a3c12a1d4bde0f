/*
 * The control socket: a UNIX stream socket in the config dir (mode 0600)
 * through which petrelctl talks to the running engine.
 *
 * Protocol (docs/control-protocol.md): the client sends one JSON object
 * on one line, e.g. {"command":"status"}, and reads one JSON object on one
 * line back: {"ok":true, ...} or {"ok":false,"error":"reason"}.  Several
 * requests may follow on one connection.  A request longer than the
 * configured maximum, or one that is not a JSON object, gets an error
 * reply and the client is dropped; the engine never stops because of
 * what a control client sent (OpenSMTPD CVE-2025-62875).
 */
#ifndef PETREL_CONTROL_H
#define PETREL_CONTROL_H

#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>

#include "core/xmalloc.h"

/* Handles one request; returns a new JSON object (the reply).  Runs on the
 * main loop's thread.  NULL only after control_defer(): the reply comes
 * later. */
typedef json_t *control_dispatch_fn(json_t *request, void *context);

/* A reply owed to a client, for a request whose work runs elsewhere (a
 * password to hash on the worker pool): the client's further requests
 * wait, so replies stay in order. */
struct control_pending;

/* Only inside a dispatch call, which then returns NULL: the request being
 * dispatched is answered later with control_pending_reply. */
struct control_pending *control_defer(void);
/* On the main loop's thread: sends reply (reference taken) to the client
 * of pending if it is still connected, goes on with its next requests, and
 * frees pending. */
void control_pending_reply(struct control_pending *pending, json_t *reply);

struct control;

/* Creates the socket at path (an existing stale socket is replaced; a
 * socket that a live engine answers on is an error) with mode 0600.
 * Returns 0, or -1 with *error_r (caller frees). */
int control_open(struct event_base *base, const char *path, size_t max_request,
		 control_dispatch_fn *dispatch, void *context, struct control **control_r,
		 char **error_r) PETREL_MUST_CHECK;
void control_set_max_request(struct control *control, size_t max_request);
/* Closes the socket, drops clients and removes the socket file. */
void control_close(struct control **control);

/* Builds {"ok":false,"error":message}. */
json_t *control_error(const char *fmt, ...) PETREL_PRINTF(1, 2);
/* Builds {"ok":true}. */
json_t *control_ok(void);

#endif
