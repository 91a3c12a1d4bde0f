/* Unit tests for durable file writes and the fault seam (core/fileio.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/fileio.h"

static char dir[64];

static int setup_dir(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/petrel-fileio-XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown_dir(void **state)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d != NULL && (de = readdir(d)) != NULL) {
		char path[512];

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	if (d != NULL)
		closedir(d);
	return rmdir(dir);
}

static unsigned count_entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned n = 0;

	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static void test_atomic_write_and_read(void **state)
{
	char path[128], *data;
	const char *err;
	size_t len;
	struct stat st;

	snprintf(path, sizeof(path), "%s/a.cfg", dir);
	assert_int_equal(fileio_write_atomic(path, "one\n", 4, 0600, &err), 0);
	assert_int_equal(fileio_write_atomic(path, "two!\n", 5, 0640, &err), 0);
	assert_int_equal(fileio_read_all(path, 1024, &data, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(data, "two!\n");
	free(data);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	/* No temp file left behind. */
	assert_int_equal(count_entries(), 1);
	assert_int_equal(fileio_read_all(path, 3, &data, &len), -1);
	assert_int_equal(errno, EFBIG);
}

static void test_read_missing_file(void **state)
{
	char path[128], *data;
	size_t len;

	snprintf(path, sizeof(path), "%s/none", dir);
	assert_int_equal(fileio_read_all(path, 1024, &data, &len), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_mkdir_p(void **state)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "%s/x/y/z", dir);
	assert_int_equal(fileio_mkdir_p(path, 0750), 0);
	assert_int_equal(fileio_mkdir_p(path, 0750), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	rmdir(path);
	snprintf(path, sizeof(path), "%s/x/y", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/x", dir);
	rmdir(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_atomic_write_and_read, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_read_missing_file, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_mkdir_p, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
