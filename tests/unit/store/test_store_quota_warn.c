/* src/store/store_quota_warn.c: when a change crosses the warning line, and the notice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_quota_warn.h"

static void test_crossed(void **state)
{
	(void)state;
	/* 90% of 10 messages is 9: only the step from 8 to 9 crosses. */
	assert_false(store_quota_crossed(8, 1, 10, 90));
	assert_true(store_quota_crossed(9, 1, 10, 90));
	assert_false(store_quota_crossed(10, 1, 10, 90));
	/* A big message jumping over the line crosses it once. */
	assert_true(store_quota_crossed(950, 600, 1000, 90));
	assert_false(store_quota_crossed(960, 10, 1000, 90));
	/* Rounded up: 90% of 15 is 13.5, the line is 14. */
	assert_false(store_quota_crossed(13, 1, 15, 90));
	assert_true(store_quota_crossed(14, 1, 15, 90));
	/* No quota, warning off, nonsense percentages: never. */
	assert_false(store_quota_crossed(9, 1, 0, 90));
	assert_false(store_quota_crossed(9, 1, 10, 0));
	assert_false(store_quota_crossed(9, 1, 10, 101));
	/* delta larger than used (usage was recounted meanwhile). */
	assert_true(store_quota_crossed(9, 20, 10, 90));
	/* 100%: the delivery that fills the mailbox. */
	assert_true(store_quota_crossed(10, 1, 10, 100));
	/* Huge quotas do not overflow. */
	assert_false(store_quota_crossed(1, 1, UINT64_MAX, 90));
}

static void test_text(void **state)
{
	struct store_quota q = { .bytes = 950, .messages = 3, .max_bytes = 1000, .max_messages = 0 };
	char *t = store_quota_warn_text("bob@example.test", &q, 90, "mx.example.test", 0);

	(void)state;
	assert_non_null(strstr(t, "To: <bob@example.test>\r\n"));
	assert_non_null(strstr(t, "Subject: Your mailbox is 90% full\r\n"));
	assert_non_null(strstr(t, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
	assert_non_null(strstr(t, "storage:  950 of 1000 bytes"));
	assert_non_null(strstr(t, "messages: 3 of unlimited"));
	assert_non_null(strstr(t, "Auto-Submitted: auto-generated\r\n"));
	/* the address never reaches the Message-ID */
	{
		const char *mid = strstr(t, "Message-ID: <quota.0."), *eol = strstr(mid, "\r\n");

		assert_true(strstr(mid, "bob@") > eol);
	}
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crossed),
		cmocka_unit_test(test_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
