/* Unit tests for the spool: commit, fault injection through the file I/O
 * seam (HOSTILE-INPUT 26), and the start-up scan with quarantine
 * (HOSTILE-INPUT 27).  The delivery threads are never started here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/cfg.h"
#include "core/fileio.h"
#include "queue/queue_private.h"

static char root[256];

static size_t count_files(const char *sub, const char *suffix)
{
	char *path = xasprintf("%s/queue%s", root, sub);
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0;

	free(path);
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' && (suffix == NULL || strstr(de->d_name, suffix) != NULL))
			n++;
	}
	closedir(d);
	return n;
}

static struct queue *open_queue(void)
{
	struct cfg *cfg = cfg_new_default("/tmp");
	struct queue_params p = { .store_dir = root, .cfg = cfg, .store = NULL };
	struct queue *q = NULL;
	char *error = NULL;

	assert_int_equal(queue_new(&p, &q, &error), 0);
	cfg_unref(&cfg);
	return q;
}

static int commit_one(struct queue *q, const char *rcpt, char **id_r)
{
	static const char msg[] = "From: a@b\r\nMessage-ID: <spool@test>\r\n\r\nbody\r\n";
	struct queue_recipient_spec rs[] = { { .address = rcpt }, { .address = rcpt },
					     { .address = "other@example.net" } };
	struct queue_envelope_spec spec = { .sender = "a@b", .recipients = rs, .recipient_count = 3 };
	struct queue_writer *w = NULL;
	char *error = NULL;
	int ret;

	if (queue_writer_new(q, &w, &error) < 0) {
		free(error);
		return -1;
	}
	if (queue_writer_write(w, msg, sizeof(msg) - 1, &error) < 0) {
		queue_writer_abort(&w);
		free(error);
		return -1;
	}
	assert_int_equal(queue_writer_size(w), sizeof(msg) - 1);
	ret = queue_writer_commit(&w, &spec, id_r, &error);
	assert_null(w);
	free(error);
	return ret;
}

static int setup(void **state)
{
	snprintf(root, sizeof(root), "/tmp/petrel-unit-queue-%ld", (long)getpid());
	mkdir(root, 0755);
	return 0;
}

static int teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", root);

	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", root);
	free(cmd);
	return 0;
}

static void test_commit_and_list(void **state)
{
	struct queue *q = open_queue();
	char *id = NULL;
	json_t *list, *m;

	assert_int_equal(commit_one(q, "x@example.net", &id), 0);
	assert_int_equal(strlen(id), QUEUE_ID_LEN);
	assert_int_equal(count_files("", ".eml"), 1);
	assert_int_equal(count_files("", ".env"), 1);
	assert_int_equal(count_files("/tmp", NULL), 0);
	assert_int_equal(queue_count(q), 1);
	list = queue_list_json(q);
	m = json_array_get(list, 0);
	assert_string_equal(json_string_value(json_object_get(m, "id")), id);
	assert_string_equal(json_string_value(json_object_get(m, "message_id")), "<spool@test>");
	/* the duplicate recipient was dropped */
	assert_int_equal(json_array_size(json_object_get(m, "recipients")), 2);
	json_decref(list);
	assert_int_equal(queue_delete(q, id), 0);
	assert_int_equal(queue_delete(q, id), -1);
	assert_int_equal(count_files("", ".eml") + count_files("", ".env"), 0);
	free(id);
	queue_free(&q);
}

static void test_faults_leave_nothing(void **state)
{
	static const char *const faults[] = { "write:1", "fsync:1", "fsync:2", "fsync:3",
					      "rename:1", "rename:2" };
	struct queue *q = open_queue();

	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		char *id = NULL;

		setenv("PETREL_FAULT", faults[i], 1);
		fileio_init_faults();
		assert_int_equal(commit_one(q, "x@example.net", &id), -1);
		assert_null(id);
		assert_int_equal(count_files("", ".eml") + count_files("", ".env"), 0);
		assert_int_equal(count_files("", ".tmp."), 0);
		assert_int_equal(count_files("/tmp", NULL), 0);
		assert_int_equal(queue_count(q), 0);
	}
	unsetenv("PETREL_FAULT");
	fileio_init_faults();
	queue_free(&q);
}

static void test_scan_after_crash(void **state)
{
	struct queue *q = open_queue();
	char *good = NULL, *bad = NULL, *path, *data;
	size_t len;
	FILE *f;

	assert_int_equal(commit_one(q, "good@example.net", &good), 0);
	assert_int_equal(commit_one(q, "bad@example.net", &bad), 0);
	queue_free(&q);
	/* A torn envelope, an orphan message, a stray temp file. */
	path = xasprintf("%s/queue/%s.env", root, bad);
	assert_int_equal(fileio_read_all(path, 1 << 20, &data, &len), 0);
	f = fopen(path, "w");
	fwrite(data, 1, len / 2, f);
	fclose(f);
	free(data);
	free(path);
	path = xasprintf("%s/queue/0000000000000001.eml", root);
	f = fopen(path, "w");
	fputs("orphan\r\n", f);
	fclose(f);
	free(path);
	path = xasprintf("%s/queue/tmp/0000000000000002.eml", root);
	f = fopen(path, "w");
	fputs("half", f);
	fclose(f);
	free(path);

	q = open_queue();
	assert_int_equal(queue_count(q), 1);
	{
		json_t *list = queue_list_json(q);

		assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")),
				    good);
		json_decref(list);
	}
	assert_int_equal(count_files("/corrupt", ".env"), 1);
	assert_int_equal(count_files("/corrupt", ".eml"), 1);
	assert_int_equal(count_files("", ".eml"), 1);    /* the orphan is gone */
	assert_int_equal(count_files("/tmp", NULL), 0);
	assert_int_equal(queue_delete_all(q), 1);
	queue_free(&q);
	free(good);
	free(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commit_and_list),
		cmocka_unit_test(test_faults_leave_nothing),
		cmocka_unit_test(test_scan_after_crash),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
