/* src/queue/queue_quota.c: when a delivery crosses the warning line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "queue/queue_private.h"

static void test_crossed(void **state)
{
	(void)state;
	/* 90% of 10 messages is 9: only the step from 8 to 9 crosses. */
	assert_false(queue_quota_crossed(8, 1, 10, 90));
	assert_true(queue_quota_crossed(9, 1, 10, 90));
	assert_false(queue_quota_crossed(10, 1, 10, 90));
	/* A big message jumping over the line crosses it once. */
	assert_true(queue_quota_crossed(950, 600, 1000, 90));
	assert_false(queue_quota_crossed(960, 10, 1000, 90));
	/* Rounded up: 90% of 15 is 13.5, the line is 14. */
	assert_false(queue_quota_crossed(13, 1, 15, 90));
	assert_true(queue_quota_crossed(14, 1, 15, 90));
	/* No quota, warning off, nonsense percentages: never. */
	assert_false(queue_quota_crossed(9, 1, 0, 90));
	assert_false(queue_quota_crossed(9, 1, 10, 0));
	assert_false(queue_quota_crossed(9, 1, 10, 101));
	/* delta larger than used (usage was recounted meanwhile). */
	assert_true(queue_quota_crossed(9, 20, 10, 90));
	/* 100%: the delivery that fills the mailbox. */
	assert_true(queue_quota_crossed(10, 1, 10, 100));
	/* Huge quotas do not overflow. */
	assert_false(queue_quota_crossed(1, 1, UINT64_MAX, 90));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crossed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
