/* src/store: the delivery group commit under load (store_deliver.c).  Many
 * threads deliver keyed messages into one folder with fsync on, so
 * leaders commit batches of several: every acknowledged delivery must be
 * in the index exactly once, under the UID it was given, with its file;
 * a failed fsync (a message file's or a batch's #msgs) fails only what it
 * covered and leaves no file behind that a restart would adopt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/fileio.h"
#include "store/store.h"

#define THREADS 8
#define PER_THREAD 40

struct ctx {
	char dir[64];
	char msgs[300];
	struct store *store;
	struct store_user *user;
	struct store_folder *f;
};

struct worker {
	struct ctx *c;
	int id, run;
	uint32_t uids[PER_THREAD];    /* 0: that delivery failed */
	int failed;
};

static void open_all(struct ctx *c)
{
	struct store_settings set;
	const char *err;

	store_settings_default(&set, c->dir);
	set.fsync = true;
	assert_int_equal(store_new(&set, &c->store, &err), 0);
	assert_int_equal(store_user_open(c->store, "example.com", "alice", &c->user, &err), STORE_OK);
	assert_int_equal(store_folder_open(c->user, "INBOX", &c->f, &err), STORE_OK);
}

static void close_all(struct ctx *c)
{
	store_folder_close(&c->f);
	store_user_unref(&c->user);
	store_free(&c->store);
}

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	strcpy(c->dir, "/tmp/petrel-gcommit-XXXXXX");
	assert_non_null(mkdtemp(c->dir));
	snprintf(c->msgs, sizeof(c->msgs), "%s/mail/example.com/alice/Inbox/#msgs", c->dir);
	open_all(c);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	char cmd[128];

	close_all(c);
	unsetenv("PETREL_FAULT");
	fileio_init_faults();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
	assert_int_equal(system(cmd), 0);
	free(c);
	return 0;
}

static void *deliver_worker(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		char msg[256], key[64];
		struct store_message m;
		const char *err;
		bool dup = false;
		uint32_t uid = 0;

		snprintf(msg, sizeof(msg), "From: t%d@example.org\r\nTo: alice@example.com\r\n"
			 "Subject: t%d-%d\r\n\r\nbody %d %d\r\n", w->id, w->id, i, w->id, i);
		snprintf(key, sizeof(key), "Q%d.%d.%d\nalice@example.com", w->run, w->id, i);
		m = (struct store_message){ msg, strlen(msg), 0, 0 };
		if (store_deliver_once(w->c->f, &m, key, &uid, &dup, &err) == STORE_OK && !dup)
			w->uids[i] = uid;
		else
			w->failed++;
	}
	return NULL;
}

static void run_workers(struct ctx *c, struct worker *w)
{
	static int runs;
	pthread_t th[THREADS];

	runs++;
	for (int t = 0; t < THREADS; t++) {
		w[t] = (struct worker){ .c = c, .id = t, .run = runs };
		assert_int_equal(pthread_create(&th[t], NULL, deliver_worker, &w[t]), 0);
	}
	for (int t = 0; t < THREADS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
}

static size_t count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' && strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* Every acknowledged delivery is in the index under its UID with its own
 * subject, nothing else is, and #msgs holds exactly those files.  Returns
 * the number of messages. */
static uint32_t check_consistent(struct ctx *c, const struct worker *w)
{
	struct store_folder_status st;
	struct store_page *page;
	const char *err;
	uint32_t acked = 0, max_uid = 0;

	assert_int_equal(store_folder_status(c->f, &st, &err), STORE_OK);
	for (int t = 0; t < THREADS; t++) {
		for (int i = 0; i < PER_THREAD; i++) {
			struct store_range r = { w[t].uids[i], w[t].uids[i] };
			struct store_uidset set = { &r, 1 };
			char want[32];

			if (w[t].uids[i] == 0)
				continue;
			acked++;
			if (w[t].uids[i] > max_uid)
				max_uid = w[t].uids[i];
			assert_int_equal(store_fetch(c->f, &set, 0, STORE_FETCH_THREAD, 0, 10, &page, &err),
					 STORE_OK);
			assert_int_equal(page->count, 1);
			snprintf(want, sizeof(want), "t%d-%d", t, i);
			assert_non_null(page->msgs[0].subject);
			assert_string_equal(page->msgs[0].subject, want);
			store_page_free(&page);
		}
	}
	assert_int_equal(st.messages, acked);
	assert_true(st.uidnext > max_uid);
	assert_int_equal(count_files(c->msgs, ""), acked);
	return acked;
}

static void test_many_threads_one_folder(void **state)
{
	struct ctx *c = *state;
	struct worker w[THREADS];

	run_workers(c, w);
	for (int t = 0; t < THREADS; t++)
		assert_int_equal(w[t].failed, 0);
	assert_int_equal(check_consistent(c, w), THREADS * PER_THREAD);
	/* UIDs are unique */
	for (int t = 0; t < THREADS; t++) {
		for (int i = 0; i < PER_THREAD; i++) {
			for (int u = t; u < THREADS; u++) {
				for (int j = u == t ? i + 1 : 0; j < PER_THREAD; j++)
					assert_int_not_equal(w[t].uids[i], w[u].uids[j]);
			}
		}
	}
	/* A restart finds the same folder: nothing left to adopt. */
	close_all(c);
	open_all(c);
	assert_int_equal(check_consistent(c, w), THREADS * PER_THREAD);
}

/* One fsync through core/fileio fails in the middle of the stream (a
 * message file's or a batch's #msgs): what it covered fails, the rest is
 * delivered, and no file of a failed delivery is left for the next open
 * to adopt. */
static void test_fsync_failure_mid_stream(void **state)
{
	struct ctx *c = *state;
	static const int failing[] = { 40, 97, 151 };

	for (size_t k = 0; k < sizeof(failing) / sizeof(failing[0]); k++) {
		struct worker w[THREADS];
		char spec[32];
		int failed = 0;
		uint32_t before, after;
		struct store_folder_status st;
		const char *err;

		assert_int_equal(store_folder_status(c->f, &st, &err), STORE_OK);
		before = st.messages;
		snprintf(spec, sizeof(spec), "fsync:%d", failing[k]);
		setenv("PETREL_FAULT", spec, 1);
		fileio_init_faults();
		run_workers(c, w);
		unsetenv("PETREL_FAULT");
		fileio_init_faults();
		for (int t = 0; t < THREADS; t++)
			failed += w[t].failed;
		assert_true(failed >= 1);
		assert_true(failed < THREADS * PER_THREAD);
		assert_int_equal(store_folder_status(c->f, &st, &err), STORE_OK);
		after = st.messages;
		assert_int_equal(after - before, THREADS * PER_THREAD - failed);
		close_all(c);
		open_all(c);
		assert_int_equal(store_folder_status(c->f, &st, &err), STORE_OK);
		assert_int_equal(st.messages, after);
		assert_int_equal(count_files(c->msgs, ""), after);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_many_threads_one_folder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_failure_mid_stream, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
