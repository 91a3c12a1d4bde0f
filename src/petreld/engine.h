/*
 * The engine: wires the modules together, owns the process-wide objects
 * (configuration snapshots, TLS context, event loops, worker pool,
 * listeners, control socket) and runs the main loop until stopped.
 */
#ifndef PETREL_ENGINE_H
#define PETREL_ENGINE_H

#include <stdbool.h>

struct engine_options {
	const char *config_dir;   /* absolute */
	bool foreground;
	/* Called once the engine serves (or has failed to start): message is
	 * NULL on success.  Used to release the waiting parent when
	 * daemonizing. */
	void (*ready)(const char *error, void *context);
	void *ready_context;
};

/* Runs the engine until it is stopped.  Returns the exit status: 0 after
 * a clean stop, 1 when it could not start (after calling ready(error)). */
int engine_run(const struct engine_options *options);

#endif
