/* Fault injection through the file seam: a failed fsync or rename leaves
 * the old file intact and no temp file behind (core/fileio.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/fileio.h"

static void check_failed_write_keeps_old(const char *fault)
{
	char dir[] = "/tmp/petrel-fault-XXXXXX", path[128], *data;
	const char *err = NULL;
	size_t len;
	DIR *d;
	struct dirent *de;
	unsigned n = 0;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/users.cfg", dir);
	assert_int_equal(fileio_write_atomic(path, "old", 3, 0600, &err), 0);
	setenv("PETREL_FAULT", fault, 1);
	fileio_init_faults();
	assert_int_equal(fileio_write_atomic(path, "new", 3, 0600, &err), -1);
	assert_non_null(err);
	assert_int_equal(fileio_read_all(path, 100, &data, &len), 0);
	assert_string_equal(data, "old");
	free(data);
	d = opendir(dir);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(n, 1);
	unsetenv("PETREL_FAULT");
	fileio_init_faults();
	unlink(path);
	rmdir(dir);
}

/* fileio_init_faults() resets the call counters: "x:1" fails the next x. */
static void test_fsync_failure(void **state)
{
	check_failed_write_keeps_old("fsync:1");
}

static void test_write_failure(void **state)
{
	check_failed_write_keeps_old("write:1");
}

static void test_rename_failure(void **state)
{
	check_failed_write_keeps_old("rename:1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fsync_failure),
		cmocka_unit_test(test_write_failure),
		cmocka_unit_test(test_rename_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
