/* src/store: delivery, flags, expunge, copy/move, UIDs, self-healing
 * index, fault injection, concurrency, quota, search, folders,
 * notifications. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/fileio.h"
#include "store/store.h"

struct ctx {
	char dir[64];
	struct store *store;
	struct store_user *user;
};

static int rm_rf(const char *path)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct store_settings set;
	const char *err;

	strcpy(c->dir, "/tmp/petrel-store-XXXXXX");
	assert_non_null(mkdtemp(c->dir));
	store_settings_default(&set, c->dir);
	/* Deterministic: nothing indexes behind the tests' back (searches
	 * catch up themselves; test_store_index.c covers the thread). */
	set.background_index = false;
	assert_int_equal(store_new(&set, &c->store, &err), 0);
	assert_int_equal(store_user_open(c->store, "Example.COM", "alice", &c->user, &err), STORE_OK);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	store_user_unref(&c->user);
	store_free(&c->store);
	(void)rm_rf(c->dir);
	free(c);
	return 0;
}

static char *inbox_dir(struct ctx *c)
{
	char *p = malloc(256);

	snprintf(p, 256, "%s/mail/example.com/alice/Inbox", c->dir);
	return p;
}

static uint32_t deliver(struct store_folder *f, const char *text, uint32_t flags)
{
	struct store_message m = { text, strlen(text), 0, 0 };
	uint32_t uv, uid;
	const char *err;
	enum store_status st = store_deliver(f, &m, flags, NULL, &uv, &uid, &err);

	if (st != STORE_OK)
		fail_msg("deliver: %s: %s", store_status_str(st), err);
	assert_true(uv != 0);
	return uid;
}

static struct store_folder *open_folder(struct ctx *c, const char *name)
{
	struct store_folder *f;
	const char *err;
	enum store_status st = store_folder_open(c->user, name, &f, &err);

	if (st != STORE_OK)
		fail_msg("open %s: %s", name, err);
	return f;
}

static struct store_folder_status status(struct store_folder *f)
{
	struct store_folder_status st;
	const char *err;

	assert_int_equal(store_folder_status(f, &st, &err), STORE_OK);
	return st;
}

static size_t count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' && strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static const char msg1[] = "From: Alice <alice@example.com>\r\nTo: bob@example.org\r\n"
	"Subject: Pelican report\r\nX-Custom: tangerine\r\n\r\nThe pelican has landed.\r\n";
static const char msg2[] = "From: carol@example.com\nSubject: second\n\nLF only body\n";

static void test_first_access(void **state)
{
	struct ctx *c = *state;
	struct store_folder_info *list;
	size_t n;
	const char *err;
	static const char *const want[] = { "INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash" };
	static const enum store_role roles[] = {
		STORE_ROLE_INBOX, STORE_ROLE_ARCHIVE, STORE_ROLE_DRAFTS, STORE_ROLE_JUNK, STORE_ROLE_SENT,
		STORE_ROLE_TRASH,
	};

	assert_int_equal(store_folder_list(c->user, &list, &n, &err), STORE_OK);
	assert_int_equal(n, 6);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(list[i].name, want[i]);
		assert_int_equal(list[i].role, roles[i]);
		assert_true(list[i].exists && list[i].subscribed);
	}
	store_folder_list_free(&list, n);
}

static void test_deliver_read(void **state)
{
	struct ctx *c = *state;
	struct store_folder *f = open_folder(c, "inbox");
	struct store_page *page;
	const char *err;
	char buf[512];
	uint64_t size;
	int fd;
	ssize_t n;

	assert_int_equal(deliver(f, msg1, 0), 1);
	assert_int_equal(deliver(f, msg2, STORE_F_SEEN), 2);
	assert_int_equal(status(f).messages, 2);
	assert_int_equal(status(f).unseen, 1);
	assert_int_equal(status(f).uidnext, 3);
	assert_int_equal(status(f).first_unseen_uid, 1);
	assert_int_equal(status(f).role, STORE_ROLE_INBOX);
	assert_int_equal(store_fetch(f, NULL, 0, STORE_FETCH_ENVELOPE | STORE_FETCH_BODYSTRUCTURE |
				     STORE_FETCH_PREVIEW | STORE_FETCH_HEADERS, 0, 10, &page, &err), STORE_OK);
	assert_int_equal(page->count, 2);
	assert_int_equal(page->msgs[0].uid, 1);
	assert_int_equal(page->msgs[0].size, sizeof(msg1) - 1);
	assert_non_null(strstr(page->msgs[0].envelope, "\"Pelican report\""));
	assert_string_equal(page->msgs[0].preview, "The pelican has landed.");
	assert_non_null(strstr(page->msgs[0].headers, "Subject: Pelican report\r\n"));
	assert_int_equal(page->msgs[1].flags, STORE_F_SEEN);
	/* LF-only input is stored with CRLF: size is the file size */
	assert_int_equal(page->msgs[1].size, sizeof(msg2) - 1 + 4);
	assert_int_equal(page->msgs[0].header_size, strstr(msg1, "\r\n\r\n") - msg1 + 4);
	assert_int_equal(strlen(page->msgs[0].guid), 32);
	store_page_free(&page);
	/* paging */
	assert_int_equal(store_fetch(f, NULL, 0, 0, 0, 1, &page, &err), STORE_OK);
	assert_int_equal(page->count, 1);
	assert_true(page->more);
	assert_int_equal(page->last_uid, 1);
	store_page_free(&page);
	assert_int_equal(store_fetch(f, NULL, 0, 0, 1, 1, &page, &err), STORE_OK);
	assert_int_equal(page->msgs[0].uid, 2);
	store_page_free(&page);
	assert_int_equal(store_msg_open(f, 2, &fd, &size, &err), STORE_OK);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(n, (ssize_t)size);
	assert_memory_equal(buf, "From: carol@example.com\r\nSubject: second\r\n\r\nLF only body\r\n", size);
	assert_int_equal(store_msg_open(f, 99, &fd, &size, &err), STORE_E_NOTFOUND);
	{
		/* mail is private */
		char *d = inbox_dir(c), path[300];
		struct stat st;

		snprintf(path, sizeof(path), "%s/index.fld", d);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
		snprintf(path, sizeof(path), "%s/#msgs/1.eml", d);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
		free(d);
	}
	{
		uint32_t first, last;

		assert_int_equal(store_claim_recent(f, &first, &last, &err), STORE_OK);
		assert_int_equal(first, 1);
		assert_int_equal(last, 2);
		assert_int_equal(store_claim_recent(f, &first, &last, &err), STORE_OK);
		assert_true(first > last);
	}
	store_folder_close(&f);
}

static void test_flags_expunge(void **state)
{
	struct ctx *c = *state;
	struct store_folder *f = open_folder(c, "INBOX");
	struct store_flag_result res;
	struct store_range r1 = { 1, 1 }, r12 = { 1, 2 }, all = { 1, UINT32_MAX };
	struct store_uidset s1 = { &r1, 1 }, s12 = { &r12, 1 }, sall = { &all, 1 };
	const char *kw[] = { "$Forwarded", "Work", NULL };
	char **names;
	size_t nnames, n;
	uint32_t *uids;
	uint64_t ms0, ms1;
	const char *err;
	struct store_page *page;

	for (int i = 0; i < 3; i++)
		deliver(f, msg1, 0);
	ms0 = status(f).highestmodseq;
	assert_int_equal(store_set_flags(f, &s12, STORE_FLAGS_ADD, STORE_F_SEEN | STORE_F_FLAGGED, kw, 0,
					 &res, &err), STORE_OK);
	assert_int_equal(res.changed_count, 2);
	assert_true(res.modseq > ms0);
	assert_int_equal(res.changed[0].flags, STORE_F_SEEN | STORE_F_FLAGGED);
	assert_int_equal(res.changed[0].keywords, 3);
	ms1 = res.modseq;
	store_flag_result_free(&res);
	assert_int_equal(status(f).unseen, 1);
	assert_int_equal(status(f).highestmodseq, ms1);
	assert_int_equal(store_folder_keywords(f, &names, &nnames, &err), STORE_OK);
	assert_string_equal(names[0], "$Forwarded");
	assert_string_equal(names[1], "Work");
	store_keywords_free(&names, nnames);
	/* no change, no new modseq */
	assert_int_equal(store_set_flags(f, &s1, STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0, &res, &err), STORE_OK);
	assert_int_equal(res.changed_count, 0);
	store_flag_result_free(&res);
	/* CONDSTORE UNCHANGEDSINCE: message 1 changed at ms1 */
	assert_int_equal(store_set_flags(f, &sall, STORE_FLAGS_REMOVE, STORE_F_SEEN, NULL, ms0, &res, &err),
			 STORE_OK);
	assert_int_equal(res.modified_count, 2);
	assert_int_equal(res.changed_count, 0);
	store_flag_result_free(&res);
	/* CHANGEDSINCE */
	assert_int_equal(store_fetch(f, NULL, ms0, 0, 0, 100, &page, &err), STORE_OK);
	assert_int_equal(page->count, 2);
	store_page_free(&page);
	/* invalid keyword */
	{
		const char *bad[] = { "a b", NULL };

		assert_int_equal(store_set_flags(f, &s1, STORE_FLAGS_ADD, 0, bad, 0, NULL, &err), STORE_E_INVALID);
	}
	/* expunge: only \Deleted ones */
	assert_int_equal(store_set_flags(f, &s1, STORE_FLAGS_ADD, STORE_F_DELETED, NULL, 0, NULL, &err), STORE_OK);
	assert_int_equal(status(f).deleted, 1);
	ms1 = status(f).highestmodseq;
	assert_int_equal(store_expunge(f, NULL, true, &uids, &n, &err), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(uids[0], 1);
	free(uids);
	assert_int_equal(status(f).messages, 2);
	assert_int_equal(status(f).deleted, 0);
	assert_int_equal(store_vanished(f, ms1, NULL, &uids, &n, &err), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(uids[0], 1);
	free(uids);
	assert_int_equal(store_vanished(f, status(f).highestmodseq, NULL, &uids, &n, &err), STORE_OK);
	assert_int_equal(n, 0);
	free(uids);
	/* POP3-style expunge of a message without \Deleted */
	assert_int_equal(store_expunge(f, &s12, false, &uids, &n, &err), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(uids[0], 2);
	free(uids);
	assert_int_equal(status(f).messages, 1);
	store_folder_close(&f);
	{
		char path[300];
		char *d = inbox_dir(c);

		snprintf(path, sizeof(path), "%s/#msgs", d);
		assert_int_equal(count_files(path, ""), 1);
		free(d);
	}
}

static uint32_t uid_of_last(struct store_folder *f)
{
	return status(f).uidnext - 1;
}

static void test_uid_never_repeats(void **state)
{
	struct ctx *c = *state;
	struct store_folder *f = open_folder(c, "INBOX");
	struct store_range r = { 4, 5 };
	struct store_uidset s = { &r, 1 };
	struct store_reindex_result rr;
	const char *err;
	uint32_t uv;
	char *d = inbox_dir(c), path[300];

	for (int i = 0; i < 5; i++)
		deliver(f, msg1, 0);
	assert_int_equal(store_expunge(f, &s, false, NULL, NULL, &err), STORE_OK);
	assert_int_equal(deliver(f, msg1, 0), 6);
	uv = status(f).uidvalidity;
	/* incremental reindex */
	assert_int_equal(store_reindex_folder(c->user, "INBOX", false, &rr, &err), STORE_OK);
	assert_int_equal(rr.messages, 4);
	assert_int_equal(deliver(f, msg1, 0), 7);
	/* full rebuild keeps UIDVALIDITY and UIDNEXT */
	assert_int_equal(store_reindex_folder(c->user, "INBOX", true, &rr, &err), STORE_OK);
	assert_true(rr.rebuilt);
	assert_false(rr.uidvalidity_changed);
	assert_int_equal(status(f).uidvalidity, uv);
	assert_int_equal(deliver(f, msg1, 0), 8);
	store_folder_close(&f);
	/* deleted index: a new UIDVALIDITY, so no (uidvalidity, uid) repeats */
	snprintf(path, sizeof(path), "%s/index.fld", d);
	assert_int_equal(unlink(path), 0);
	f = open_folder(c, "INBOX");
	assert_true(status(f).uidvalidity != uv);
	assert_int_equal(status(f).messages, 6);
	assert_true(deliver(f, msg1, 0) > uid_of_last(f) - 1);
	store_folder_close(&f);
	free(d);
}

static void flip_bytes(const char *path, off_t off, size_t n)
{
	int fd = open(path, O_RDWR);
	char junk[8192];

	assert_true(fd >= 0);
	memset(junk, 0xA5, sizeof(junk));
	assert_int_equal(pwrite(fd, junk, n, off), (ssize_t)n);
	close(fd);
}

static void test_index_self_healing(void **state)
{
	struct ctx *c = *state;
	struct store_folder *f = open_folder(c, "INBOX");
	struct store_range r = { 2, 2 };
	struct store_uidset s = { &r, 1 };
	const char *err, *kw[] = { "Important", NULL };
	char *d = inbox_dir(c), idx[300], bad[300], corrupt[300];
	struct store_page *page;
	uint32_t uv;

	snprintf(idx, sizeof(idx), "%s/index.fld", d);
	snprintf(bad, sizeof(bad), "%s/index.bad", d);
	snprintf(corrupt, sizeof(corrupt), "%s/index.corrupt", d);
	for (int i = 0; i < 20; i++)
		deliver(f, i % 2 ? msg1 : msg2, 0);
	assert_int_equal(store_set_flags(f, &s, STORE_FLAGS_ADD, STORE_F_FLAGGED, kw, 0, NULL, &err), STORE_OK);
	uv = status(f).uidvalidity;
	store_folder_close(&f);

	/* 1. renamed to index.bad: rebuilt, UIDs, flags, keywords kept */
	assert_int_equal(rename(idx, bad), 0);
	f = open_folder(c, "INBOX");
	assert_int_equal(access(bad, F_OK), -1);
	assert_int_equal(status(f).uidvalidity, uv);
	assert_int_equal(status(f).messages, 20);
	assert_int_equal(status(f).uidnext, 21);
	assert_int_equal(store_fetch(f, &s, 0, 0, 0, 10, &page, &err), STORE_OK);
	assert_int_equal(page->count, 1);
	assert_int_equal(page->msgs[0].flags, STORE_F_FLAGGED);
	assert_int_equal(page->msgs[0].keywords, 1);
	store_page_free(&page);
	store_folder_close(&f);

	/* 2. header bytes flipped: not a database -> moved aside, rebuilt */
	flip_bytes(idx, 0, 100);
	f = open_folder(c, "INBOX");
	assert_int_equal(status(f).messages, 20);
	assert_int_equal(access(corrupt, F_OK), 0);
	store_folder_close(&f);

	/* 3. a page in the middle overwritten: quick_check catches it */
	{
		struct stat st;

		assert_int_equal(stat(idx, &st), 0);
		flip_bytes(idx, st.st_size / 2 / 4096 * 4096, 4096);
	}
	f = open_folder(c, "INBOX");
	assert_int_equal(status(f).messages, 20);
	assert_int_equal(deliver(f, msg1, 0), 21 + (status(f).uidvalidity != uv ? 0 : 0));
	store_folder_close(&f);

	/* 4. renamed while open: noticed at the next operation */
	f = open_folder(c, "INBOX");
	assert_int_equal(rename(idx, bad), 0);
	assert_int_equal(status(f).messages, 21);
	assert_int_equal(access(bad, F_OK), -1);
	store_folder_close(&f);
	free(d);
}

static void test_hand_added_and_removed(void **state)
{
	struct ctx *c = *state;
	struct store_folder *f = open_folder(c, "INBOX");
	struct store_reindex_result rr;
	struct store_search_key key = { .type = STORE_SK_BODY, .text = "marmalade" };
	char *d = inbox_dir(c), path[300], *data;
	size_t n, len;
	uint32_t *uids;
	uint64_t ms;
	const char *err;
	FILE *fp;

	deliver(f, msg1, 0);
	deliver(f, msg1, 0);
	snprintf(path, sizeof(path), "%s/#msgs/dropped-by-hand.eml", d);
	fp = fopen(path, "w");
	fputs("From: admin@example.com\nSubject: by hand\n\nOrange marmalade recipe\n", fp);
	fclose(fp);
	ms = status(f).highestmodseq;
	snprintf(path, sizeof(path), "%s/#msgs/1.eml", d);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(store_reindex_folder(c->user, "INBOX", false, &rr, &err), STORE_OK);
	assert_int_equal(rr.added, 1);
	assert_int_equal(rr.removed, 1);
	assert_int_equal(status(f).messages, 2);
	assert_int_equal(store_search(f, &key, &uids, &n, NULL, &err), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(uids[0], 3);
	free(uids);
	/* the file was normalised to CRLF */
	snprintf(path, sizeof(path), "%s/#msgs/dropped-by-hand.eml", d);
	assert_int_equal(fileio_read_all(path, 4096, &data, &len), 0);
	assert_non_null(strstr(data, "by hand\r\n\r\n"));
	free(data);
	assert_int_equal(store_vanished(f, ms, NULL, &uids, &n, &err), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(uids[0], 1);
	free(uids);
	store_folder_close(&f);
	free(d);
}

static void check_fault(struct ctx *c, const char *fault, enum store_status want)
{
	struct store_folder *f = open_folder(c, "INBOX");
	struct store_folder_status before = status(f), after;
	struct store_message m = { msg1, sizeof(msg1) - 1, 0, 0 };
	char *d = inbox_dir(c), msgs[300];
	size_t files_before;
	const char *err;
	enum store_status st;

	snprintf(msgs, sizeof(msgs), "%s/#msgs", d);
	files_before = count_files(msgs, "");
	setenv("PETREL_FAULT", fault, 1);
	fileio_init_faults();
	st = store_deliver(f, &m, 0, NULL, NULL, NULL, &err);
	unsetenv("PETREL_FAULT");
	fileio_init_faults();
	if (st != want)
		fail_msg("%s: got %s", fault, store_status_str(st));
	after = status(f);
	assert_int_equal(after.messages, before.messages);
	assert_int_equal(after.uidnext, before.uidnext);
	assert_int_equal(after.highestmodseq, before.highestmodseq);
	assert_int_equal(count_files(msgs, ""), files_before);
	assert_int_equal(count_files(d, "#tmp."), 0);
	/* and the next delivery works */
	deliver(f, msg1, 0);
	store_folder_close(&f);
	free(d);
}

static void test_fault_injection(void **state)
{
	struct ctx *c = *state;

	check_fault(c, "write:1", STORE_E_NOSPACE);   /* ENOSPC: 452 4.3.1 */
	check_fault(c, "fsync:1", STORE_E_TEMP);      /* the message file */
	check_fault(c, "fsync:2", STORE_E_TEMP);      /* the #msgs directory */
	check_fault(c, "rename:1", STORE_E_TEMP);
}

struct conc {
	struct store_folder *f;
	int id;
	unsigned events_new;
	pthread_mutex_t *lock;
};

static void *conc_deliver(void *arg)
{
	struct conc *k = arg;

	for (int i = 0; i < 40; i++)
		deliver(k->f, i % 2 ? msg1 : msg2, 0);
	return NULL;
}

static void *conc_flags(void *arg)
{
	struct conc *k = arg;
	const char *err;

	for (int i = 0; i < 40; i++) {
		enum store_status st = store_set_flags(k->f, NULL, i % 2 ? STORE_FLAGS_ADD : STORE_FLAGS_REMOVE,
						       k->id == 2 ? STORE_F_SEEN : STORE_F_FLAGGED, NULL, 0, NULL, &err);

		assert_int_equal(st, STORE_OK);
	}
	return NULL;
}

static void count_new(const struct store_event *ev, void *context)
{
	struct conc *k = context;

	if (ev->type == STORE_EV_NEW) {
		pthread_mutex_lock(k->lock);
		k->events_new += (unsigned)ev->count;
		pthread_mutex_unlock(k->lock);
	}
}

static void test_concurrency(void **state)
{
	struct ctx *c = *state;
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	struct conc k[4];
	pthread_t th[4];
	struct store_folder *f = open_folder(c, "INBOX");
	struct store_watch *w;
	struct store_page *page;
	const char *err;
	uint32_t unseen = 0;

	for (int i = 0; i < 4; i++) {
		k[i] = (struct conc){ .id = i, .lock = &lock };
		/* each thread opens the folder itself: one shared handle */
		k[i].f = open_folder(c, "INBOX");
		assert_ptr_equal(k[i].f, f);
	}
	w = store_watch(f, count_new, &k[0]);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, i < 2 ? conc_deliver : conc_flags, &k[i]), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	store_unwatch(&w);
	assert_int_equal(k[0].events_new, 80);
	assert_int_equal(status(f).messages, 80);
	assert_int_equal(status(f).uidnext, 81);
	assert_int_equal(store_fetch(f, NULL, 0, 0, 0, 1000, &page, &err), STORE_OK);
	assert_int_equal(page->count, 80);
	for (size_t i = 0; i < page->count; i++) {
		assert_int_equal(page->msgs[i].uid, i + 1);       /* no gap, no repeat */
		unseen += (page->msgs[i].flags & STORE_F_SEEN) == 0;
	}
	assert_int_equal(status(f).unseen, unseen);       /* counters agree */
	store_page_free(&page);
	for (int i = 0; i < 4; i++)
		store_folder_close(&k[i].f);
	store_folder_close(&f);
}

static void test_quota(void **state)
{
	struct ctx *c = *state;
	struct store_folder *f = open_folder(c, "INBOX"), *sent = open_folder(c, "Sent");
	struct store_message m = { msg1, sizeof(msg1) - 1, 0, 0 };
	struct store_quota q;
	struct store_range r = { 1, 1 };
	struct store_uidset s = { &r, 1 };
	const char *err;

	deliver(sent, msg1, 0);                     /* usage counts every folder */
	store_user_set_quota(c->user, 0, 3);
	deliver(f, msg1, 0);
	deliver(f, msg1, 0);
	assert_int_equal(store_deliver(f, &m, 0, NULL, NULL, NULL, &err), STORE_E_OVERQUOTA);
	assert_int_equal(store_user_quota(c->user, &q, &err), STORE_OK);
	assert_int_equal(q.messages, 3);
	assert_int_equal(q.bytes, 3 * (sizeof(msg1) - 1));
	assert_int_equal(store_expunge(f, &s, false, NULL, NULL, &err), STORE_OK);
	deliver(f, msg1, 0);
	/* bytes */
	store_user_set_quota(c->user, 4 * (sizeof(msg1) - 1) + 10, 0);
	deliver(f, msg1, 0);
	assert_int_equal(store_deliver(f, &m, 0, NULL, NULL, NULL, &err), STORE_E_OVERQUOTA);
	/* copy is charged too */
	assert_int_equal(store_copy(f, sent, NULL, false, NULL, &err), STORE_E_OVERQUOTA);
	store_user_set_quota(c->user, 0, 0);
	store_folder_close(&f);
	store_folder_close(&sent);
}

static const char with_attachment[] =
	"From: Dave <dave@example.net>\r\nTo: alice@example.com\r\nSubject: Bird list\r\n"
	"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
	"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
	"--b\r\nContent-Type: text/plain\r\n\r\nSeen today: one cormorant.\r\n"
	"--b\r\nContent-Type: text/plain; name=\"birds.txt\"\r\nContent-Disposition: attachment; filename=\"birds.txt\"\r\n"
	"Content-Transfer-Encoding: base64\r\n\r\n"
	"QSBsaXN0IG9mIGJpcmRzOiBhbGJhdHJvc3MsIHB1ZmZpbi4K\r\n"   /* "A list of birds: albatross, puffin.\n" */
	"--b--\r\n";

static size_t search_n(struct store_folder *f, const struct store_search_key *k, uint32_t *first)
{
	uint32_t *uids;
	size_t n;
	const char *err;
	enum store_status st = store_search(f, k, &uids, &n, NULL, &err);

	if (st != STORE_OK)
		fail_msg("search: %s", err);
	if (first != NULL)
		*first = n > 0 ? uids[0] : 0;
	free(uids);
	return n;
}

static void test_search(void **state)
{
	struct ctx *c = *state;
	struct store_folder *f = open_folder(c, "INBOX");
	uint32_t u1, u2, u3, first;
	struct store_range r = { 2, 3 };

	u1 = deliver(f, msg1, STORE_F_SEEN);
	u2 = deliver(f, with_attachment, 0);
	u3 = deliver(f, msg2, STORE_F_FLAGGED);
	{
		struct store_search_key k = { .type = STORE_SK_BODY, .text = "albatross" };

		assert_int_equal(search_n(f, &k, &first), 1);   /* base64 attachment */
		assert_int_equal(first, u2);
		k.text = "cormorant";
		assert_int_equal(search_n(f, &k, &first), 1);
		assert_int_equal(first, u2);
		k.text = "pelic";                               /* word prefix */
		assert_int_equal(search_n(f, &k, &first), 1);
		assert_int_equal(first, u1);
		k.text = "\"\"\"";                               /* no words: matches all */
		assert_int_equal(search_n(f, &k, NULL), 3);
		k.text = "zebra";
		assert_int_equal(search_n(f, &k, NULL), 0);
		k.type = STORE_SK_TEXT;
		k.text = "Dave";                                /* a header */
		assert_int_equal(search_n(f, &k, &first), 1);
		assert_int_equal(first, u2);
	}
	{
		struct store_search_key k = { .type = STORE_SK_HEADER, .field = "Subject", .text = "PELICAN" };

		assert_int_equal(search_n(f, &k, &first), 1);
		assert_int_equal(first, u1);
		k.field = "X-Custom";                            /* read from the file */
		k.text = "tanger";
		assert_int_equal(search_n(f, &k, &first), 1);
		assert_int_equal(first, u1);
		k.field = "from";
		k.text = "carol@";
		assert_int_equal(search_n(f, &k, &first), 1);
		assert_int_equal(first, u3);
	}
	{
		struct store_search_key kids[2] = {
			{ .type = STORE_SK_FLAGS, .flags = STORE_F_SEEN },
			{ .type = STORE_SK_FLAGS, .flags = STORE_F_FLAGGED },
		};
		struct store_search_key or = { .type = STORE_SK_OR, .children = kids, .child_count = 2 };
		struct store_search_key not = { .type = STORE_SK_NOT, .children = &or, .child_count = 1 };
		struct store_search_key uid = { .type = STORE_SK_UID, .uids = { &r, 1 } };
		struct store_search_key size = { .type = STORE_SK_SIZE, .lo = 0, .hi = 100 };
		struct store_search_key date = { .type = STORE_SK_SENTDATE, .lo = 1795478400, .hi = 1795564800 };

		assert_int_equal(search_n(f, &or, NULL), 2);
		assert_int_equal(search_n(f, &not, &first), 1);
		assert_int_equal(first, u2);
		assert_int_equal(search_n(f, &uid, NULL), 2);
		assert_int_equal(search_n(f, &size, &first), 1);
		assert_int_equal(first, u3);
		assert_int_equal(search_n(f, &date, &first), 1);
		assert_int_equal(first, u2);
	}
	{
		/* 10k nested NOTs: refused, not a deep recursion */
		struct store_search_key *keys = calloc(10000, sizeof(*keys));
		uint32_t *uids;
		size_t n;
		const char *err;

		for (int i = 0; i < 9999; i++)
			keys[i] = (struct store_search_key){ .type = STORE_SK_NOT, .children = &keys[i + 1], .child_count = 1 };
		keys[9999].type = STORE_SK_ALL;
		assert_int_equal(store_search(f, keys, &uids, &n, NULL, &err), STORE_E_LIMIT);
		free(keys);
	}
	{
		struct store_search_key all = { .type = STORE_SK_ALL };
		struct store_sort crit[] = { { STORE_SORT_SUBJECT, false } };
		uint32_t *uids;
		size_t n;
		const char *err;

		assert_int_equal(store_sort(f, &all, crit, 1, &uids, &n, &err), STORE_OK);
		assert_int_equal(n, 3);
		assert_int_equal(uids[0], u2);   /* Bird list, Pelican report, second */
		assert_int_equal(uids[1], u1);
		assert_int_equal(uids[2], u3);
		free(uids);
		crit[0] = (struct store_sort){ STORE_SORT_SIZE, true };
		assert_int_equal(store_sort(f, &all, crit, 1, &uids, &n, &err), STORE_OK);
		assert_int_equal(uids[0], u2);
		free(uids);
	}
	store_folder_close(&f);
}

static void test_copy_move(void **state)
{
	struct ctx *c = *state;
	struct store_folder *in = open_folder(c, "INBOX"), *ar = open_folder(c, "Archive");
	struct store_copy_map map;
	struct store_range r = { 1, 2 };
	struct store_uidset s = { &r, 1 };
	const char *err, *kw[] = { "Work", NULL };
	struct store_page *p1, *p2;
	char path[300];
	struct stat st;

	deliver(in, msg1, STORE_F_SEEN);
	deliver(in, msg2, 0);
	deliver(in, msg2, 0);
	assert_int_equal(store_set_flags(in, &s, STORE_FLAGS_ADD, 0, kw, 0, NULL, &err), STORE_OK);
	assert_int_equal(store_copy(in, ar, &s, false, &map, &err), STORE_OK);
	assert_int_equal(map.count, 2);
	assert_int_equal(map.src_uids[0], 1);
	assert_int_equal(map.dst_uids[0], 1);
	assert_int_equal(map.dst_uidvalidity, status(ar).uidvalidity);
	store_copy_map_free(&map);
	assert_int_equal(status(ar).messages, 2);
	assert_int_equal(status(in).messages, 3);
	assert_int_equal(store_fetch(in, &s, 0, 0, 0, 10, &p1, &err), STORE_OK);
	assert_int_equal(store_fetch(ar, NULL, 0, 0, 0, 10, &p2, &err), STORE_OK);
	assert_int_equal(p2->msgs[0].flags, STORE_F_SEEN);
	assert_int_equal(p2->msgs[0].keywords, 1);
	assert_string_equal(p1->msgs[0].guid, p2->msgs[0].guid);
	store_page_free(&p1);
	store_page_free(&p2);
	/* hard link: one inode */
	snprintf(path, sizeof(path), "%s/mail/example.com/alice/Archive/#msgs/1.eml", c->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_nlink, 2);
	/* move */
	assert_int_equal(store_copy(in, ar, NULL, true, &map, &err), STORE_OK);
	assert_int_equal(map.count, 3);
	assert_int_equal(map.dst_uids[2], 5);
	store_copy_map_free(&map);
	assert_int_equal(status(in).messages, 0);
	assert_int_equal(status(ar).messages, 5);
	store_folder_close(&in);
	store_folder_close(&ar);
}

static void test_folders(void **state)
{
	struct ctx *c = *state;
	struct store_folder_info *list;
	size_t n;
	const char *err;
	struct store_folder *f, *child;
	char path[400];
	struct stat st;
	static const char *const hostile[] = {
		"../x", "a/../../b", "..", "x/..", "a\rb", "a\nb", "/abs", "a//b", "",
	};

	assert_int_equal(store_folder_create(c->user, "Projects/2026/Q1", STORE_ROLE_NONE, &err), STORE_OK);
	assert_int_equal(store_folder_create(c->user, "Projects", STORE_ROLE_NONE, &err), STORE_E_EXISTS);
	assert_int_equal(store_folder_create(c->user, "100% #1 .x", STORE_ROLE_NONE, &err), STORE_OK);
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
		assert_int_equal(store_folder_create(c->user, hostile[i], STORE_ROLE_NONE, &err), STORE_E_INVALID);
	snprintf(path, sizeof(path), "%s/mail/example.com/x", c->dir);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(store_folder_subscribe(c->user, "Projects/2026", true, &err), STORE_OK);
	assert_int_equal(store_folder_subscribe(c->user, "Ghost", true, &err), STORE_OK);
	assert_int_equal(store_folder_list(c->user, &list, &n, &err), STORE_OK);
	{
		bool seen_projects = false, seen_ghost = false, seen_pct = false;

		for (size_t i = 0; i < n; i++) {
			if (strcmp(list[i].name, "Projects") == 0) {
				seen_projects = true;
				assert_true(list[i].has_children);
			}
			if (strcmp(list[i].name, "Ghost") == 0) {
				seen_ghost = true;
				assert_false(list[i].exists);
			}
			if (strcmp(list[i].name, "100% #1 .x") == 0)
				seen_pct = true;
		}
		assert_true(seen_projects && seen_ghost && seen_pct);
	}
	store_folder_list_free(&list, n);

	/* rename with subfolders, while a child is open */
	child = open_folder(c, "Projects/2026/Q1");
	deliver(child, msg1, 0);
	assert_int_equal(store_folder_rename(c->user, "Projects", "Work/Old", &err), STORE_OK);
	assert_int_equal(store_folder_open(c->user, "Projects/2026/Q1", &f, &err), STORE_E_NOTFOUND);
	f = open_folder(c, "Work/Old/2026/Q1");
	assert_ptr_equal(f, child);
	assert_int_equal(status(f).messages, 1);
	deliver(child, msg1, 0);                    /* the open handle follows */
	assert_int_equal(status(f).messages, 2);
	store_folder_close(&f);
	store_folder_close(&child);
	assert_int_equal(store_folder_rename(c->user, "Work", "Work/Inside", &err), STORE_E_NOPERM);
	/* role follows a rename */
	assert_int_equal(store_folder_rename(c->user, "Sent", "Sent Items", &err), STORE_OK);
	f = open_folder(c, "Sent Items");
	assert_int_equal(status(f).role, STORE_ROLE_SENT);
	store_folder_close(&f);
	/* delete */
	assert_int_equal(store_folder_delete(c->user, "INBOX", &err), STORE_E_NOPERM);
	assert_int_equal(store_folder_delete(c->user, "Work/Old", &err), STORE_E_NOPERM);
	assert_int_equal(store_folder_delete(c->user, "Work/Old/2026/Q1", &err), STORE_OK);
	assert_int_equal(store_folder_delete(c->user, "Work/Old/2026/Q1", &err), STORE_E_NOTFOUND);
	/* recreated: a different UIDVALIDITY */
	{
		uint32_t uv;

		assert_int_equal(store_folder_create(c->user, "Tmp", STORE_ROLE_NONE, &err), STORE_OK);
		f = open_folder(c, "Tmp");
		uv = status(f).uidvalidity;
		store_folder_close(&f);
		assert_int_equal(store_folder_delete(c->user, "Tmp", &err), STORE_OK);
		assert_int_equal(store_folder_create(c->user, "Tmp", STORE_ROLE_NONE, &err), STORE_OK);
		f = open_folder(c, "Tmp");
		assert_true(status(f).uidvalidity != uv);
		store_folder_close(&f);
	}
	/* RENAME INBOX moves its messages */
	f = open_folder(c, "INBOX");
	deliver(f, msg1, 0);
	assert_int_equal(store_folder_rename(c->user, "INBOX", "Old Inbox", &err), STORE_OK);
	assert_int_equal(status(f).messages, 0);
	store_folder_close(&f);
	f = open_folder(c, "Old Inbox");
	assert_int_equal(status(f).messages, 1);
	store_folder_close(&f);
}

static void test_hostile_users(void **state)
{
	struct ctx *c = *state;
	struct store_user *u;
	const char *err;
	char path[300];
	struct stat st;

	/* escaped, never a path: "..", "../../etc" stay inside mail/ */
	assert_int_equal(store_user_open(c->store, "example.com", "..", &u, &err), STORE_OK);
	store_user_unref(&u);
	assert_int_equal(store_user_open(c->store, "..", "../../etc/passwd", &u, &err), STORE_OK);
	store_user_unref(&u);
	snprintf(path, sizeof(path), "%s/mail/example.com/%%2E.", c->dir);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/etc", c->dir);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(store_user_open(c->store, "example.com", "a\rb", &u, &err), STORE_E_INVALID);
	assert_int_equal(store_user_open(c->store, "", "x", &u, &err), STORE_E_INVALID);
}

static void test_deliver_many(void **state)
{
	struct ctx *c = *state;
	struct store_user *bob, *carol;
	struct store_folder *f[3];
	struct store_rcpt r[3];
	struct store_message m = { with_attachment, sizeof(with_attachment) - 1, 0, 0 };
	const char *err;
	char path[300];
	struct stat st;

	assert_int_equal(store_user_open(c->store, "example.com", "bob", &bob, &err), STORE_OK);
	assert_int_equal(store_user_open(c->store, "example.com", "carol", &carol, &err), STORE_OK);
	store_user_set_quota(carol, 0, 1);
	assert_int_equal(store_folder_open(c->user, "INBOX", &f[0], &err), STORE_OK);
	assert_int_equal(store_folder_open(bob, "INBOX", &f[1], &err), STORE_OK);
	assert_int_equal(store_folder_open(carol, "INBOX", &f[2], &err), STORE_OK);
	deliver(f[2], msg1, 0);                           /* carol is now full */
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 3; i++)
		r[i].folder = f[i];
	store_deliver_many(&m, r, 3);
	assert_int_equal(r[0].status, STORE_OK);
	assert_int_equal(r[1].status, STORE_OK);
	assert_int_equal(r[2].status, STORE_E_OVERQUOTA);
	snprintf(path, sizeof(path), "%s/mail/example.com/bob/Inbox/#msgs/1.eml", c->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_nlink, 2);                 /* alice's and bob's */
	assert_int_equal(count_files(c->dir, "#tmp."), 0);
	for (int i = 0; i < 3; i++)
		store_folder_close(&f[i]);
	store_user_unref(&bob);
	store_user_unref(&carol);
}

struct evlog {
	enum store_event_type types[16];
	uint32_t first_uid[16];
	int n;
	struct store_watch *self;
};

static void on_event(const struct store_event *ev, void *context)
{
	struct evlog *l = context;

	if (l->n < 16) {
		l->types[l->n] = ev->type;
		l->first_uid[l->n] = ev->count > 0 ? ev->uids[0] : 0;
		l->n++;
	}
	if (ev->type == STORE_EV_EXPUNGE)
		store_unwatch(&l->self);             /* allowed from inside */
}

static void test_notifications(void **state)
{
	struct ctx *c = *state;
	struct store_folder *f = open_folder(c, "INBOX");
	struct evlog l = { 0 };
	const char *err;

	l.self = store_watch(f, on_event, &l);
	deliver(f, msg1, 0);
	assert_int_equal(store_set_flags(f, NULL, STORE_FLAGS_ADD, STORE_F_DELETED, NULL, 0, NULL, &err), STORE_OK);
	assert_int_equal(store_expunge(f, NULL, true, NULL, NULL, &err), STORE_OK);
	deliver(f, msg1, 0);                           /* not seen: unwatched */
	assert_int_equal(l.n, 3);
	assert_int_equal(l.types[0], STORE_EV_NEW);
	assert_int_equal(l.first_uid[0], 1);
	assert_int_equal(l.types[1], STORE_EV_FLAGS);
	assert_int_equal(l.types[2], STORE_EV_EXPUNGE);
	assert_null(l.self);
	store_folder_close(&f);
}

static void test_hostile_delivery(void **state)
{
	struct ctx *c = *state;
	struct store_folder *f = open_folder(c, "INBOX");
	struct buf b;
	struct store_page *page;
	const char *err;

	buf_init(&b, 64 * 1024 * 1024);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(buf_printf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i), 0);
	deliver(f, b.data, 0);
	buf_reset(&b);
	assert_int_equal(buf_append_str(&b, "Content-Type: multipart/mixed; boundary=z\r\n\r\n"), 0);
	for (int i = 0; i < 20000; i++)
		assert_int_equal(buf_printf(&b, "--z\r\n\r\n%d\r\n", i), 0);
	deliver(f, b.data, 0);
	assert_int_equal(store_fetch(f, NULL, 0, STORE_FETCH_BODYSTRUCTURE, 0, 10, &page, &err), STORE_OK);
	assert_int_equal(page->count, 2);
	assert_non_null(page->msgs[1].bodystructure);
	store_page_free(&page);
	buf_deinit(&b);
	store_folder_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_first_access, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags_expunge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uid_never_repeats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_self_healing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hand_added_and_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_injection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_users, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notifications, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_delivery, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
