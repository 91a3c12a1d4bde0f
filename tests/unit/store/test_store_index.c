/* src/store: the indexer (store_indexer.c).  Deliveries leave the
 * full-text entry pending and the indexer fills it; a search never misses
 * a delivered message; a rebuild from the files is lazy and FETCH gives the
 * same answers as an eagerly built index; delivery keys survive
 * --rebuild; a version 1 index is upgraded in place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/store.h"

struct ctx {
	char dir[64];
	char inbox[256];
	struct store *store;
	struct store_user *user;
	struct store_folder *f;
};

static const char *const msgs[] = {
	"From: Ann Example <ann@example.org>\r\nTo: alice@example.com\r\n"
	"Subject: =?UTF-8?Q?Caf=C3=A9?= plans\r\nDate: Sun, 29 Nov 2026 08:00:00 +0100\r\n"
	"Message-ID: <one@example.org>\r\n\r\nLet us meet for a flamingo breakfast.\r\n",

	"From: bob@example.net\r\nTo: alice@example.com, carol@example.com\r\nSubject: report\r\n"
	"Date: Mon, 30 Nov 2026 09:00:00 +0000\r\nMessage-ID: <two@example.net>\r\n"
	"In-Reply-To: <one@example.org>\r\nMIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
	"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe quarterly walrus figures.\r\n"
	"--b1\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Disposition: attachment;"
	" filename=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n",

	"From: carol@example.com\r\nSubject: no date here\r\n\r\nJust a pangolin.\r\n",
};
#define NMSGS (sizeof(msgs) / sizeof(msgs[0]))

static void open_all(struct ctx *c, bool background)
{
	struct store_settings set;
	const char *err;

	store_settings_default(&set, c->dir);
	set.fsync = false;
	set.background_index = background;
	assert_int_equal(store_new(&set, &c->store, &err), 0);
	assert_int_equal(store_user_open(c->store, "example.com", "alice", &c->user, &err), STORE_OK);
	assert_int_equal(store_folder_open(c->user, "INBOX", &c->f, &err), STORE_OK);
}

static void close_all(struct ctx *c)
{
	store_folder_close(&c->f);
	store_user_unref(&c->user);
	store_free(&c->store);
	assert_null(c->store);
}

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	strcpy(c->dir, "/tmp/petrel-sidx-XXXXXX");
	assert_non_null(mkdtemp(c->dir));
	snprintf(c->inbox, sizeof(c->inbox), "%s/mail/example.com/alice/Inbox", c->dir);
	open_all(c, false);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	char cmd[128];

	if (c->store != NULL)
		close_all(c);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
	assert_int_equal(system(cmd), 0);
	free(c);
	return 0;
}

static uint32_t deliver(struct store_folder *f, const char *m)
{
	struct store_message sm = { m, strlen(m), 0, 0 };
	uint32_t uid = 0;
	const char *err;

	assert_int_equal(store_deliver(f, &sm, 0, NULL, NULL, &uid, &err), STORE_OK);
	return uid;
}

static size_t pending(struct store_folder *f, bool run)
{
	size_t left = 99;
	const char *err;

	assert_int_equal(store_folder_index_pending(f, run, &left, &err), STORE_OK);
	return left;
}

static size_t search_count(struct store_folder *f, enum store_search_type type, const char *field,
			   const char *text, uint32_t *first_r)
{
	struct store_search_key k = { .type = type, .field = field, .text = text };
	uint32_t *uids;
	size_t n;
	const char *err;

	assert_int_equal(store_search(f, &k, &uids, &n, NULL, &err), STORE_OK);
	if (first_r != NULL)
		*first_r = n > 0 ? uids[0] : 0;
	free(uids);
	return n;
}

#define ALL_FIELDS (STORE_FETCH_ENVELOPE | STORE_FETCH_BODYSTRUCTURE | STORE_FETCH_BODY | \
		    STORE_FETCH_HEADERS | STORE_FETCH_PREVIEW | STORE_FETCH_THREAD)

/* The answers for fields of every message, as one string. */
static char *fetch_fields(struct store_folder *f, uint32_t fields)
{
	struct store_page *page;
	const char *err;
	struct buf b;

	buf_init(&b, 1 << 20);
	assert_int_equal(store_fetch(f, NULL, 0, fields, 0, 100, &page, &err), STORE_OK);
	for (size_t i = 0; i < page->count; i++) {
		const struct store_msg *m = &page->msgs[i];
		const char *s[] = { m->envelope, m->bodystructure, m->body, m->headers, m->preview,
				    m->message_id, m->in_reply_to, m->references, m->subject };

		assert_int_equal(buf_printf(&b, "uid %u size %llu hsize %llu sent %lld\n", m->uid,
					    (unsigned long long)m->size, (unsigned long long)m->header_size,
					    (long long)m->sent_date), 0);
		for (size_t j = 0; j < sizeof(s) / sizeof(s[0]); j++)
			assert_int_equal(buf_printf(&b, "%zu: %s\n", j, s[j] != NULL ? s[j] : "(null)"), 0);
	}
	store_page_free(&page);
	return buf_steal(&b);
}

/* Every cached answer of every message. */
static char *fetch_all(struct store_folder *f)
{
	return fetch_fields(f, ALL_FIELDS);
}

/* Delivery leaves the text for the indexer; the indexer fills it. */
static void test_pending_indexed(void **state)
{
	struct ctx *c = *state;

	for (size_t i = 0; i < NMSGS; i++)
		deliver(c->f, msgs[i]);
	assert_int_equal(pending(c->f, false), NMSGS);
	assert_int_equal(pending(c->f, true), 0);
	assert_int_equal(search_count(c->f, STORE_SK_BODY, NULL, "walrus", NULL), 1);
	/* nothing left, and a second pass changes nothing */
	assert_int_equal(pending(c->f, true), 0);
	assert_int_equal(search_count(c->f, STORE_SK_TEXT, NULL, "flamingo", NULL), 1);
}

/* A search right after a delivery finds it: the search catches up. */
static void test_search_finds_just_delivered(void **state)
{
	struct ctx *c = *state;
	uint32_t uid = deliver(c->f, msgs[0]), found = 0;

	assert_int_equal(pending(c->f, false), 1);
	assert_int_equal(search_count(c->f, STORE_SK_BODY, NULL, "flamingo", &found), 1);
	assert_int_equal(found, uid);
	assert_int_equal(pending(c->f, false), 0);
	/* keys that need no derived data do not index */
	deliver(c->f, msgs[1]);
	assert_int_equal(search_count(c->f, STORE_SK_ALL, NULL, NULL, NULL), 2);
	assert_int_equal(pending(c->f, false), 1);
	/* SORT by subject needs the cache: it is there after delivery */
	{
		struct store_search_key all = { .type = STORE_SK_ALL };
		struct store_sort by = { STORE_SORT_SUBJECT, false };
		uint32_t *uids;
		size_t n;
		const char *err;

		assert_int_equal(store_sort(c->f, &all, &by, 1, &uids, &n, &err), STORE_OK);
		assert_int_equal(n, 2);
		assert_int_equal(uids[0], 1);     /* "Café plans" < "report" */
		free(uids);
	}
}

struct racer {
	struct store_folder *f;
	int id;
	int found, missed;
};

static void *deliver_and_search(void *arg)
{
	struct racer *r = arg;

	for (int i = 0; i < 40; i++) {
		char m[256], word[32];
		uint32_t uid, first = 0;

		snprintf(word, sizeof(word), "okapi%dx%d", r->id, i);
		snprintf(m, sizeof(m), "From: x@example.org\r\nSubject: race %d\r\n\r\nA %s in the text.\r\n",
			 i, word);
		uid = deliver(r->f, m);
		if (search_count(r->f, STORE_SK_BODY, NULL, word, &first) == 1 && first == uid)
			r->found++;
		else
			r->missed++;
	}
	return NULL;
}

/* With the background thread on, deliveries and searches in parallel: a
 * search after a delivery returned always finds it, and in the end
 * nothing is left pending. */
static void test_background_and_race(void **state)
{
	struct ctx *c = *state;
	struct racer r[3] = { 0 };
	pthread_t th[3];

	close_all(c);
	open_all(c, true);
	for (int i = 0; i < 3; i++) {
		r[i].f = c->f;
		r[i].id = i;
		assert_int_equal(pthread_create(&th[i], NULL, deliver_and_search, &r[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(r[i].missed, 0);
		assert_int_equal(r[i].found, 40);
	}
	/* the thread finishes the rest on its own */
	deliver(c->f, msgs[2]);
	for (int i = 0; i < 100 && pending(c->f, false) > 0; i++)
		usleep(50 * 1000);
	assert_int_equal(pending(c->f, false), 0);
	assert_int_equal(search_count(c->f, STORE_SK_BODY, NULL, "pangolin", NULL), 1);
	/* stopping the store with work queued drops its references */
	deliver(c->f, msgs[0]);
	close_all(c);
	open_all(c, false);
	assert_int_equal(search_count(c->f, STORE_SK_BODY, NULL, "flamingo", NULL), 1);
}

static void remove_index(struct ctx *c, bool keep_as_bad)
{
	char a[300], b[300];

	snprintf(a, sizeof(a), "%s/index.fld", c->inbox);
	if (keep_as_bad) {
		snprintf(b, sizeof(b), "%s/index.bad", c->inbox);
		assert_int_equal(rename(a, b), 0);
	} else {
		assert_int_equal(unlink(a), 0);
	}
	snprintf(a, sizeof(a), "%s/index.fld-wal", c->inbox);
	(void)unlink(a);
	snprintf(a, sizeof(a), "%s/index.fld-shm", c->inbox);
	(void)unlink(a);
}

/* A rebuild reads no file: FETCH parses what it needs for its answer, the
 * indexer stores it; the answers equal those of the eager index. */
static void test_lazy_rebuild_same_answers(void **state)
{
	struct ctx *c = *state;
	char *eager, *lazy, *indexed;
	struct store_folder_status st;
	const char *err;

	for (size_t i = 0; i < NMSGS; i++)
		deliver(c->f, msgs[i]);
	assert_int_equal(pending(c->f, true), 0);
	eager = fetch_all(c->f);
	close_all(c);

	remove_index(c, false);
	open_all(c, false);
	assert_int_equal(store_folder_status(c->f, &st, &err), STORE_OK);
	assert_int_equal(st.messages, NMSGS);
	assert_int_equal(pending(c->f, false), NMSGS);
	lazy = fetch_all(c->f);
	assert_string_equal(lazy, eager);
	/* the read path stored nothing */
	assert_int_equal(pending(c->f, false), NMSGS);
	/* a search on cached columns and on the text catches up first */
	assert_int_equal(search_count(c->f, STORE_SK_HEADER, "Subject", "café", NULL), 1);
	assert_int_equal(pending(c->f, false), 0);
	assert_int_equal(search_count(c->f, STORE_SK_BODY, NULL, "walrus", NULL), 1);
	indexed = fetch_all(c->f);
	assert_string_equal(indexed, eager);
	free(eager);
	free(lazy);
	free(indexed);
}

/* A listing that asks for header fields only (ENVELOPE, the cached
 * headers, the threading fields) reads only each file's header after a
 * lazy rebuild; the answers must be the same as from the full files. */
static void test_lazy_rebuild_header_fields(void **state)
{
	struct ctx *c = *state;
	const uint32_t fields = STORE_FETCH_ENVELOPE | STORE_FETCH_HEADERS | STORE_FETCH_THREAD;
	char *eager, *lazy, *boundary, *refs;
	size_t k;

	for (size_t i = 0; i < NMSGS; i++)
		deliver(c->f, msgs[i]);
	/* The empty line across the first read's end (8192 bytes), and a
	 * header of several reads. */
	boundary = malloc(9000);
	assert_non_null(boundary);
	k = (size_t)snprintf(boundary, 9000, "From: dan@example.com\r\nSubject: boundary\r\nX-Pad: ");
	memset(boundary + k, 'p', 8189 - k);
	strcpy(boundary + 8189, "\r\n\r\nbody after the boundary\r\n");
	assert_int_equal(boundary[8191], '\r');
	refs = malloc(40000);
	assert_non_null(refs);
	k = (size_t)snprintf(refs, 40000, "From: eve@example.com\r\nSubject: many references\r\nReferences:");
	for (int i = 0; i < 1000; i++)
		k += (size_t)snprintf(refs + k, 40000 - k, " <%d@example.org>\r\n", i);
	snprintf(refs + k, 40000 - k, "Message-ID: <refs@example.org>\r\n\r\nbody\r\n");
	deliver(c->f, boundary);
	deliver(c->f, refs);
	free(boundary);
	free(refs);
	assert_int_equal(pending(c->f, true), 0);
	eager = fetch_fields(c->f, fields);
	close_all(c);

	remove_index(c, false);
	open_all(c, false);
	assert_int_equal(pending(c->f, false), NMSGS + 2);
	lazy = fetch_fields(c->f, fields);
	assert_string_equal(lazy, eager);
	free(eager);
	free(lazy);
}

/* A file added by hand with LF line ends: the lazy row has the file's
 * size; indexing rewrites it with CRLF and corrects size and usage. */
static void test_lazy_rebuild_lf_file(void **state)
{
	struct ctx *c = *state;
	static const char lf[] = "From: admin@example.com\nSubject: by hand\n\nOrange marmalade\n";
	struct store_folder_status st;
	struct store_quota q;
	const char *err;
	char path[300];
	FILE *fp;

	deliver(c->f, msgs[0]);
	close_all(c);
	snprintf(path, sizeof(path), "%s/#msgs/7.eml", c->inbox);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(lf, fp);
	fclose(fp);
	remove_index(c, true);
	open_all(c, false);
	assert_int_equal(store_folder_status(c->f, &st, &err), STORE_OK);
	assert_int_equal(st.messages, 2);
	assert_int_equal(st.size, strlen(msgs[0]) + strlen(lf));
	assert_int_equal(search_count(c->f, STORE_SK_BODY, NULL, "marmalade", NULL), 1);
	assert_int_equal(store_folder_status(c->f, &st, &err), STORE_OK);
	assert_int_equal(st.size, strlen(msgs[0]) + strlen(lf) + 4);   /* 4 bare LFs */
	assert_int_equal(store_user_quota(c->user, &q, &err), STORE_OK);
	assert_int_equal(q.bytes, strlen(msgs[0]) + strlen(lf) + 4);
}

/* petrelctl mailbox reindex --rebuild keeps the exactly-once keys. */
static void test_keys_survive_rebuild(void **state)
{
	struct ctx *c = *state;
	struct store_message m = { msgs[1], strlen(msgs[1]), 0, 0 };
	struct store_reindex_result rr;
	uint32_t uid, again;
	bool dup = true;
	const char *err;

	deliver(c->f, msgs[0]);
	assert_int_equal(store_deliver_once(c->f, &m, "Q123:alice@example.com", &uid, &dup, &err), STORE_OK);
	assert_false(dup);
	assert_int_equal(store_reindex_folder(c->user, "INBOX", true, &rr, &err), STORE_OK);
	assert_true(rr.rebuilt);
	assert_false(rr.uidvalidity_changed);
	assert_int_equal(rr.messages, 2);
	assert_int_equal(store_deliver_once(c->f, &m, "Q123:alice@example.com", &again, &dup, &err), STORE_OK);
	assert_true(dup);
	assert_int_equal(again, uid);
	/* another key is still a new delivery */
	assert_int_equal(store_deliver_once(c->f, &m, "Q124:alice@example.com", &again, &dup, &err), STORE_OK);
	assert_false(dup);
	assert_int_equal(again, uid + 1);
}

/* An index of version 1 (no pending column) opens and is upgraded in
 * place: flags kept, new deliveries indexed. */
static void test_upgrade_v1(void **state)
{
	struct ctx *c = *state;
	struct store_range r = { 1, 1 };
	struct store_uidset set = { &r, 1 };
	struct store_page *page;
	const char *err;
	char path[300];
	sqlite3 *db;

	deliver(c->f, msgs[0]);
	assert_int_equal(store_set_flags(c->f, &set, STORE_FLAGS_ADD, STORE_F_FLAGGED, NULL, 0, NULL, &err),
			 STORE_OK);
	assert_int_equal(pending(c->f, true), 0);
	close_all(c);
	snprintf(path, sizeof(path), "%s/index.fld", c->inbox);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP INDEX msgs_pending; ALTER TABLE msgs DROP COLUMN pending;"
				      " PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	open_all(c, false);
	assert_int_equal(store_fetch(c->f, &set, 0, 0, 0, 10, &page, &err), STORE_OK);
	assert_int_equal(page->count, 1);
	assert_int_equal(page->msgs[0].flags, STORE_F_FLAGGED);
	store_page_free(&page);
	assert_int_equal(pending(c->f, false), 0);
	deliver(c->f, msgs[1]);
	assert_int_equal(search_count(c->f, STORE_SK_BODY, NULL, "walrus", NULL), 1);
	assert_int_equal(search_count(c->f, STORE_SK_BODY, NULL, "flamingo", NULL), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pending_indexed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_finds_just_delivered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_background_and_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lazy_rebuild_same_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lazy_rebuild_header_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lazy_rebuild_lf_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_survive_rebuild, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_v1, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
