/* The set of index files already verified in this run (store_checked.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store_private.h"

static void test_add_and_find(void **state)
{
	struct store_checked c;

	(void)state;
	store_checked_init(&c);
	assert_false(store_checked_has(&c, 1, 100));
	store_checked_add(&c, 1, 100);
	assert_true(store_checked_has(&c, 1, 100));
	/* the same inode on another device is another file */
	assert_false(store_checked_has(&c, 2, 100));
	assert_false(store_checked_has(&c, 1, 101));
	store_checked_add(&c, 1, 100);
	assert_int_equal(c.count, 1);
	store_checked_deinit(&c);
}

static void test_growth_keeps_every_file(void **state)
{
	struct store_checked c;

	(void)state;
	store_checked_init(&c);
	for (ino_t i = 1; i <= 20000; i++)
		store_checked_add(&c, 7, i * 4096);
	assert_int_equal(c.count, 20000);
	for (ino_t i = 1; i <= 20000; i++)
		assert_true(store_checked_has(&c, 7, i * 4096));
	assert_false(store_checked_has(&c, 7, 3));
	/* never more than half full, so a miss ends at an empty slot */
	assert_true(c.count * 2 <= c.cap);
	store_checked_deinit(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_and_find),
		cmocka_unit_test(test_growth_keeps_every_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
