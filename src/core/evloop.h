/*
 * Event-loop threads and the worker pool.
 *
 * Network I/O runs on a few libevent loops, each in its own thread (one per
 * core by default); a connection is placed on one loop when it is accepted
 * and stays there for life, so its callbacks never run concurrently.
 *
 * Work that blocks (fsync, SQLite transactions, scanner round trips,
 * password hashing) goes to the worker pool: a bounded queue served by a
 * fixed number of threads.  When a job is done, its completion callback is
 * run on the event loop that submitted it, so session state is only ever
 * touched from the session's own loop.  The job's argument must not point
 * at a session that may be freed meanwhile: carry a session id and look it
 * up in the completion (STYLE.md §3).
 */
#ifndef PETREL_EVLOOP_H
#define PETREL_EVLOOP_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "core/xmalloc.h"

/* Must be called once, before any event_base is created. */
void evloop_global_init(void);

struct evloop_pool;

/* Starts n loop threads (n >= 1).  Returns the pool; never fails except
 * by panic (thread creation failure at start is not survivable). */
struct evloop_pool *evloop_pool_new(unsigned n);
/* Stops every loop (pending callbacks are dropped), joins the threads,
 * frees the bases.  Connections must have been closed before. */
void evloop_pool_free(struct evloop_pool **pool);
unsigned evloop_pool_count(const struct evloop_pool *pool);
/* Returns the loops in round-robin order (thread-safe). */
struct event_base *evloop_pool_next(struct evloop_pool *pool);
struct event_base *evloop_pool_base(struct evloop_pool *pool, unsigned i);

typedef void evloop_fn(void *arg);
/* Runs fn(arg) on base's thread soon.  Safe from any thread.  Returns 0,
 * or -1 if the callback could not be scheduled (arg is not consumed). */
int evloop_run_on(struct event_base *base, evloop_fn *fn, void *arg) PETREL_MUST_CHECK;

struct worker_pool;

/* Starts threads workers; at most max_queue jobs may wait. */
struct worker_pool *worker_pool_new(unsigned threads, size_t max_queue);
/* Lets queued jobs finish, then joins the threads (their completions are
 * posted to their loops, which must still be running to deliver them). */
void worker_pool_free(struct worker_pool **pool);

/*
 * Queues job(arg) for a worker thread, then done(arg) on reply_base's
 * loop (done may be NULL; reply_base may be NULL to run done on the worker
 * thread itself).  Returns 0, or -1 when the queue is full or the pool is
 * stopping — the caller answers with a temporary error; nothing was queued.
 */
int worker_submit(struct worker_pool *pool, struct event_base *reply_base,
		  evloop_fn *job, evloop_fn *done, void *arg) PETREL_MUST_CHECK;
/* Jobs waiting plus running, for status. */
size_t worker_pool_pending(struct worker_pool *pool);

#endif
