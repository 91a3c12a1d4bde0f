/* Event-loop threads and the worker pool; see evloop.h. */
#include "core/evloop.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/time.h>

#include <event2/thread.h>

struct evloop_thread {
	struct event_base *base;
	pthread_t thread;
};

struct evloop_pool {
	struct evloop_thread *threads;
	unsigned count;
	atomic_uint next;
};

void evloop_global_init(void)
{
	if (evthread_use_pthreads() < 0)
		panic("evthread_use_pthreads failed");
}

static void *evloop_thread_main(void *arg)
{
	struct evloop_thread *t = arg;

	event_base_loop(t->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

struct evloop_pool *evloop_pool_new(unsigned n)
{
	struct evloop_pool *pool = xcalloc(1, sizeof(*pool));

	if (n == 0)
		panic("evloop_pool_new: no threads");
	pool->threads = xcalloc(n, sizeof(*pool->threads));
	pool->count = n;
	for (unsigned i = 0; i < n; i++) {
		pool->threads[i].base = event_base_new();
		if (pool->threads[i].base == NULL)
			panic("event_base_new failed");
		if (pthread_create(&pool->threads[i].thread, NULL, evloop_thread_main,
				   &pool->threads[i]) != 0)
			panic("cannot start event-loop thread");
	}
	return pool;
}

static void evloop_break_cb(void *arg)
{
	event_base_loopbreak(arg);
}

void evloop_pool_free(struct evloop_pool **poolp)
{
	struct evloop_pool *pool = *poolp;

	if (pool == NULL)
		return;
	*poolp = NULL;
	/* event_base_loopbreak() before the thread has entered its loop
	 * would be forgotten (event_base_loop clears the flag); a callback
	 * queued on the base runs whenever the loop starts. */
	for (unsigned i = 0; i < pool->count; i++) {
		if (evloop_run_on(pool->threads[i].base, evloop_break_cb, pool->threads[i].base) < 0)
			panic("cannot stop event-loop thread");
	}
	for (unsigned i = 0; i < pool->count; i++) {
		pthread_join(pool->threads[i].thread, NULL);
		event_base_free(pool->threads[i].base);
	}
	free(pool->threads);
	free(pool);
}

unsigned evloop_pool_count(const struct evloop_pool *pool)
{
	return pool->count;
}

struct event_base *evloop_pool_next(struct evloop_pool *pool)
{
	unsigned i = atomic_fetch_add(&pool->next, 1) % pool->count;

	return pool->threads[i].base;
}

struct event_base *evloop_pool_base(struct evloop_pool *pool, unsigned i)
{
	if (i >= pool->count)
		panic("evloop_pool_base: %u out of range", i);
	return pool->threads[i].base;
}

struct evloop_call {
	evloop_fn *fn;
	void *arg;
};

static void evloop_call_cb(evutil_socket_t fd, short what, void *arg)
{
	struct evloop_call call = *(struct evloop_call *)arg;

	free(arg);
	call.fn(call.arg);
}

int evloop_run_on(struct event_base *base, evloop_fn *fn, void *arg)
{
	static const struct timeval now = { 0, 0 };
	struct evloop_call *call = xmalloc(sizeof(*call));

	call->fn = fn;
	call->arg = arg;
	if (event_base_once(base, -1, EV_TIMEOUT, evloop_call_cb, call, &now) < 0) {
		free(call);
		return -1;
	}
	return 0;
}

/* ---- worker pool ---- */

struct worker_job {
	struct worker_job *next;
	struct event_base *reply_base;
	evloop_fn *job, *done;
	void *arg;
};

struct worker_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct worker_job *head, *tail;
	size_t queued, running, max_queue;
	bool stopping;
	pthread_t *threads;
	unsigned thread_count;
};

static struct worker_job *worker_take(struct worker_pool *pool)
{
	struct worker_job *job;

	pthread_mutex_lock(&pool->lock);
	while (pool->head == NULL && !pool->stopping)
		pthread_cond_wait(&pool->cond, &pool->lock);
	job = pool->head;
	if (job != NULL) {
		pool->head = job->next;
		if (pool->head == NULL)
			pool->tail = NULL;
		pool->queued--;
		pool->running++;
	}
	pthread_mutex_unlock(&pool->lock);
	return job;
}

static void *worker_thread_main(void *arg)
{
	struct worker_pool *pool = arg;
	struct worker_job *job;

	while ((job = worker_take(pool)) != NULL) {
		job->job(job->arg);
		if (job->done != NULL) {
			if (job->reply_base == NULL) {
				job->done(job->arg);
			} else if (evloop_run_on(job->reply_base, job->done, job->arg) < 0) {
				/* The loop is gone (shutdown): completing on
				 * this thread is the only way not to leak. */
				job->done(job->arg);
			}
		}
		free(job);
		pthread_mutex_lock(&pool->lock);
		pool->running--;
		pthread_mutex_unlock(&pool->lock);
	}
	return NULL;
}

struct worker_pool *worker_pool_new(unsigned threads, size_t max_queue)
{
	struct worker_pool *pool = xcalloc(1, sizeof(*pool));

	if (threads == 0 || max_queue == 0)
		panic("worker_pool_new: empty pool");
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	pool->max_queue = max_queue;
	pool->threads = xcalloc(threads, sizeof(*pool->threads));
	pool->thread_count = threads;
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&pool->threads[i], NULL, worker_thread_main, pool) != 0)
			panic("cannot start worker thread");
	}
	return pool;
}

void worker_pool_free(struct worker_pool **poolp)
{
	struct worker_pool *pool = *poolp;

	if (pool == NULL)
		return;
	*poolp = NULL;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	/* worker_take() keeps handing out queued jobs until the queue is
	 * empty, so accepted work is finished, not dropped. */
	for (unsigned i = 0; i < pool->thread_count; i++)
		pthread_join(pool->threads[i], NULL);
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->cond);
	free(pool->threads);
	free(pool);
}

int worker_submit(struct worker_pool *pool, struct event_base *reply_base,
		  evloop_fn *job, evloop_fn *done, void *arg)
{
	struct worker_job *j;

	pthread_mutex_lock(&pool->lock);
	if (pool->stopping || pool->queued >= pool->max_queue) {
		pthread_mutex_unlock(&pool->lock);
		return -1;
	}
	j = xcalloc(1, sizeof(*j));
	j->reply_base = reply_base;
	j->job = job;
	j->done = done;
	j->arg = arg;
	if (pool->tail != NULL)
		pool->tail->next = j;
	else
		pool->head = j;
	pool->tail = j;
	pool->queued++;
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	return 0;
}

size_t worker_pool_pending(struct worker_pool *pool)
{
	size_t n;

	pthread_mutex_lock(&pool->lock);
	n = pool->queued + pool->running;
	pthread_mutex_unlock(&pool->lock);
	return n;
}
