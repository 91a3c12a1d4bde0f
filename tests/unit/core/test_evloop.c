/* Unit tests for the event-loop pool, the worker pool and the per-IP
 * connection counters (core/evloop.c, core/net.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/evloop.h"
#include "core/net.h"

struct job_state {
	atomic_int ran_on_worker;
	atomic_int done_on_loop;
	pthread_t loop_thread;
	atomic_int wrong_thread;
};

struct job {
	struct job_state *st;
};

static void record_loop_thread(void *arg)
{
	struct job_state *st = arg;

	st->loop_thread = pthread_self();
}

static void job_run(void *arg)
{
	struct job *j = arg;

	atomic_fetch_add(&j->st->ran_on_worker, 1);
}

static void job_done(void *arg)
{
	struct job *j = arg;

	if (!pthread_equal(pthread_self(), j->st->loop_thread))
		atomic_fetch_add(&j->st->wrong_thread, 1);
	atomic_fetch_add(&j->st->done_on_loop, 1);
	free(j);
}

static void wait_for(atomic_int *v, int want)
{
	for (int i = 0; i < 5000 && atomic_load(v) < want; i++)
		usleep(1000);
}

static void test_worker_completions_run_on_loop(void **state)
{
	struct evloop_pool *loops = evloop_pool_new(1);
	struct worker_pool *workers = worker_pool_new(4, 1000);
	struct event_base *base = evloop_pool_base(loops, 0);
	struct job_state st;

	memset(&st, 0, sizeof(st));
	assert_int_equal(evloop_run_on(base, record_loop_thread, &st), 0);
	usleep(50 * 1000);
	for (int i = 0; i < 200; i++) {
		struct job *j = xcalloc(1, sizeof(*j));

		j->st = &st;
		assert_int_equal(worker_submit(workers, base, job_run, job_done, j), 0);
	}
	wait_for(&st.done_on_loop, 200);
	assert_int_equal(atomic_load(&st.ran_on_worker), 200);
	assert_int_equal(atomic_load(&st.done_on_loop), 200);
	assert_int_equal(atomic_load(&st.wrong_thread), 0);
	worker_pool_free(&workers);
	evloop_pool_free(&loops);
	assert_null(workers);
	assert_null(loops);
}

static pthread_mutex_t block_lock = PTHREAD_MUTEX_INITIALIZER;

static void job_block(void *arg)
{
	pthread_mutex_lock(&block_lock);
	pthread_mutex_unlock(&block_lock);
}

static void test_worker_queue_is_bounded(void **state)
{
	struct worker_pool *workers = worker_pool_new(1, 3);
	int accepted = 0;

	pthread_mutex_lock(&block_lock);
	/* One job runs (blocked), three wait; the rest are refused. */
	for (int i = 0; i < 10; i++) {
		if (worker_submit(workers, NULL, job_block, NULL, NULL) == 0)
			accepted++;
		usleep(i == 0 ? 20000 : 0);
	}
	assert_int_equal(accepted, 4);
	assert_int_equal(worker_pool_pending(workers), 4);
	pthread_mutex_unlock(&block_lock);
	/* Freeing finishes what was accepted. */
	worker_pool_free(&workers);
}

static void test_loops_round_robin(void **state)
{
	struct evloop_pool *loops = evloop_pool_new(3);
	struct event_base *a = evloop_pool_next(loops);
	struct event_base *b = evloop_pool_next(loops);
	struct event_base *c = evloop_pool_next(loops);

	assert_ptr_not_equal(a, b);
	assert_ptr_not_equal(b, c);
	assert_ptr_equal(evloop_pool_next(loops), a);
	assert_int_equal(evloop_pool_count(loops), 3);
	evloop_pool_free(&loops);
}

static void test_ip_counter_limits(void **state)
{
	struct ip_counter *ctr = ip_counter_new();

	assert_int_equal(ip_counter_acquire(ctr, "192.0.2.1", 2), 1);
	assert_int_equal(ip_counter_acquire(ctr, "192.0.2.1", 2), 2);
	assert_int_equal(ip_counter_acquire(ctr, "192.0.2.1", 2), 0);
	assert_int_equal(ip_counter_acquire(ctr, "2001:db8::1", 2), 1);
	assert_int_equal(ip_counter_get(ctr, "192.0.2.1"), 2);
	ip_counter_release(ctr, "192.0.2.1");
	assert_int_equal(ip_counter_acquire(ctr, "192.0.2.1", 2), 2);
	ip_counter_release(ctr, "192.0.2.1");
	ip_counter_release(ctr, "192.0.2.1");
	assert_int_equal(ip_counter_get(ctr, "192.0.2.1"), 0);
	/* A limit of zero refuses without creating an entry. */
	assert_int_equal(ip_counter_acquire(ctr, "198.51.100.7", 0), 0);
	assert_int_equal(ip_counter_get(ctr, "198.51.100.7"), 0);
	ip_counter_free(&ctr);
	assert_null(ctr);
}

static void test_ip_counter_many_addresses(void **state)
{
	struct ip_counter *ctr = ip_counter_new();
	char ip[64];

	for (int i = 0; i < 5000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		assert_int_equal(ip_counter_acquire(ctr, ip, 1), 1);
	}
	for (int i = 0; i < 5000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		assert_int_equal(ip_counter_get(ctr, ip), 1);
		ip_counter_release(ctr, ip);
	}
	ip_counter_free(&ctr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_worker_completions_run_on_loop),
		cmocka_unit_test(test_worker_queue_is_bounded),
		cmocka_unit_test(test_loops_round_robin),
		cmocka_unit_test(test_ip_counter_limits),
		cmocka_unit_test(test_ip_counter_many_addresses),
	};

	evloop_global_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
