/*
 * Unit tests for src/core/recent_auth.c (POP-before-SMTP records):
 * windows, refresh, the bound on remembered addresses, and concurrent use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>

#include <cmocka.h>

#include "core/recent_auth.h"

static int64_t fake_now;

static int64_t fake_clock(void)
{
	return __atomic_load_n(&fake_now, __ATOMIC_RELAXED);
}

static int setup(void **state)
{
	(void)state;
	fake_now = 1000;
	pop_before_smtp_set_clock(fake_clock);
	pop_before_smtp_clear();
	return 0;
}

static void test_window(void **state)
{
	(void)state;
	assert_false(pop_before_smtp_check("192.0.2.1", 600));
	pop_before_smtp_record("192.0.2.1");
	assert_true(pop_before_smtp_check("192.0.2.1", 600));
	assert_false(pop_before_smtp_check("192.0.2.2", 600));
	assert_false(pop_before_smtp_check("192.0.2.1", 0));
	fake_now += 600;
	assert_true(pop_before_smtp_check("192.0.2.1", 600));
	fake_now += 1;
	assert_false(pop_before_smtp_check("192.0.2.1", 600));
	/* a new login refreshes */
	pop_before_smtp_record("192.0.2.1");
	assert_true(pop_before_smtp_check("192.0.2.1", 600));
	pop_before_smtp_record("2001:db8::1");
	assert_true(pop_before_smtp_check("2001:db8::1", 10));
	assert_int_equal(pop_before_smtp_count(), 2);
	/* junk is ignored */
	pop_before_smtp_record("");
	pop_before_smtp_record(NULL);
	pop_before_smtp_record("0123456789012345678901234567890123456789012345678901234567890");
	assert_int_equal(pop_before_smtp_count(), 2);
	assert_false(pop_before_smtp_check(NULL, 10));
}

static void test_bounded(void **state)
{
	char ip[64];

	(void)state;
	for (unsigned i = 0; i < RECENT_AUTH_MAX + 100; i++) {
		snprintf(ip, sizeof(ip), "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		pop_before_smtp_record(ip);
	}
	assert_int_equal(pop_before_smtp_count(), RECENT_AUTH_MAX);
	/* the oldest went first */
	assert_false(pop_before_smtp_check("10.0.0.0", 600));
	assert_false(pop_before_smtp_check("10.0.0.99", 600));
	assert_true(pop_before_smtp_check("10.0.0.100", 600));
	snprintf(ip, sizeof(ip), "10.%u.%u.%u", ((RECENT_AUTH_MAX + 99) >> 16) & 255,
		 ((RECENT_AUTH_MAX + 99) >> 8) & 255, (RECENT_AUTH_MAX + 99) & 255);
	assert_true(pop_before_smtp_check(ip, 600));
	/* entries older than a day are dropped on look-ups */
	fake_now += 86401;
	assert_false(pop_before_smtp_check("10.0.0.100", 86400));
	assert_int_equal(pop_before_smtp_count(), 0);
}

static void *hammer(void *arg)
{
	char ip[64];
	unsigned base = *(unsigned *)arg;

	for (unsigned i = 0; i < 20000; i++) {
		snprintf(ip, sizeof(ip), "172.16.%u.%u", base, i & 255);
		pop_before_smtp_record(ip);
		(void)pop_before_smtp_check(ip, 60);
	}
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t t[4];
	unsigned ids[4] = { 1, 2, 3, 4 };

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &ids[i]), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(pop_before_smtp_count(), 4 * 256);
	assert_true(pop_before_smtp_check("172.16.3.17", 60));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_window, setup),
		cmocka_unit_test_setup(test_bounded, setup),
		cmocka_unit_test_setup(test_threads, setup),
	};
	int ret = cmocka_run_group_tests(tests, NULL, NULL);

	pop_before_smtp_clear();
	return ret;
}
