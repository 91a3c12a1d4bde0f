/* src/store: idempotent delivery with a delivery key (store_deliver_once):
 * a redelivery stores nothing, a crash between the rename into #msgs and
 * the index commit keeps the key through adoption (from the file's
 * extended attribute, or from a marker link where the file system has no
 * user xattrs), keys are forgotten after their time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/fileio.h"
#include "store/store.h"

struct ctx {
	char dir[64];
	char inbox[256];
	struct store *store;
	struct store_user *user;
	struct store_folder *f;
	int64_t ttl;
};

static const char msg[] = "From: a@example.org\r\nTo: alice@example.com\r\nSubject: once\r\n"
	"Message-ID: <once@example.org>\r\n\r\nOnly once, please.\r\n";

static void open_all(struct ctx *c)
{
	struct store_settings set;
	const char *err;

	store_settings_default(&set, c->dir);
	set.delivery_key_ttl = c->ttl;
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

	strcpy(c->dir, "/tmp/petrel-dkey-XXXXXX");
	assert_non_null(mkdtemp(c->dir));
	snprintf(c->inbox, sizeof(c->inbox), "%s/mail/example.com/alice/Inbox", c->dir);
	c->ttl = 10 * 86400;
	open_all(c);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	char cmd[128];

	close_all(c);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
	assert_int_equal(system(cmd), 0);
	free(c);
	return 0;
}

static size_t count_prefix(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static size_t count_msgs(struct ctx *c)
{
	char msgs[300];

	snprintf(msgs, sizeof(msgs), "%s/#msgs", c->inbox);
	return count_prefix(msgs, "") - 2;  /* . and .. */
}

static uint32_t once(struct ctx *c, const char *key, bool *dup_r)
{
	struct store_message m = { msg, sizeof(msg) - 1, 0, 0 };
	uint32_t uid = 0;
	const char *err = NULL;
	enum store_status st = store_deliver_once(c->f, &m, key, &uid, dup_r, &err);

	if (st != STORE_OK)
		fail_msg("deliver_once: %s: %s", store_status_str(st), err);
	return uid;
}

static uint32_t messages(struct ctx *c)
{
	struct store_folder_status st;
	const char *err;

	assert_int_equal(store_folder_status(c->f, &st, &err), STORE_OK);
	return st.messages;
}

static void test_redelivery_stores_nothing(void **state)
{
	struct ctx *c = *state;
	struct store_quota q;
	const char *err;
	bool dup = true;
	uint32_t uid1, uid2;

	uid1 = once(c, "Q1\nalice@example.com", &dup);
	assert_false(dup);
	assert_int_equal(store_user_quota(c->user, &q, &err), STORE_OK);
	assert_int_equal(q.messages, 1);
	uid2 = once(c, "Q1\nalice@example.com", &dup);
	assert_true(dup);
	assert_int_equal(uid2, uid1);
	assert_int_equal(messages(c), 1);
	assert_int_equal(count_msgs(c), 1);
	assert_int_equal(count_prefix(c->inbox, "#tmp."), 0);   /* temp and marker gone */
	assert_int_equal(store_user_quota(c->user, &q, &err), STORE_OK);
	assert_int_equal(q.messages, 1);                        /* not counted twice */
	/* Another recipient or another queued message is another delivery. */
	assert_int_not_equal(once(c, "Q1\nbob@example.com", &dup), uid1);
	assert_false(dup);
	assert_int_not_equal(once(c, "Q2\nalice@example.com", &dup), uid1);
	assert_false(dup);
	assert_int_equal(messages(c), 3);
	/* The key survives a restart (it is in index.fld). */
	close_all(c);
	open_all(c);
	assert_int_equal(once(c, "Q1\nalice@example.com", &dup), uid1);
	assert_true(dup);
	assert_int_equal(messages(c), 3);
}

static void test_expunged_still_known(void **state)
{
	struct ctx *c = *state;
	struct store_range r;
	struct store_uidset set = { &r, 1 };
	const char *err;
	bool dup;
	uint32_t uid = once(c, "Q3\nalice@example.com", &dup);

	r.lo = r.hi = uid;
	assert_int_equal(store_set_flags(c->f, &set, STORE_FLAGS_ADD, STORE_F_DELETED, NULL, 0, NULL, &err),
			 STORE_OK);
	assert_int_equal(store_expunge(c->f, &set, false, NULL, NULL, &err), STORE_OK);
	assert_int_equal(messages(c), 0);
	/* The user deleted it; a late redelivery must not bring it back. */
	assert_int_equal(once(c, "Q3\nalice@example.com", &dup), uid);
	assert_true(dup);
	assert_int_equal(messages(c), 0);
}

/* What a crash between the rename into #msgs and the index commit leaves:
 * #msgs/<uidnext>.eml and its marker "#tmp.dk.<hash>.<guid>" (a second
 * link) in the folder directory. */
static void make_interrupted(struct ctx *c, const char *key, uint32_t uid, bool with_marker)
{
	char path[400], marker[400], hash[65];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/#msgs/%u.eml", c->inbox, uid);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(msg, 1, sizeof(msg) - 1, fp), sizeof(msg) - 1);
	assert_int_equal(fclose(fp), 0);
	if (with_marker) {
		store_delivery_key_hash(key, hash);
		snprintf(marker, sizeof(marker), "%s/#tmp.dk.%s.0123456789abcdef0123456789abcdef", c->inbox,
			 hash);
		assert_int_equal(link(path, marker), 0);
	}
}

static void test_adopted_file_keeps_its_key(void **state)
{
	struct ctx *c = *state;
	bool dup;
	uint32_t first = once(c, "Q4\nalice@example.com", &dup);

	close_all(c);
	make_interrupted(c, "Q5\nalice@example.com", first + 1, true);
	open_all(c);
	/* Adopted at the open, with its key: the queue's redelivery after
	 * the restart finds it. */
	assert_int_equal(messages(c), 2);
	assert_int_equal(count_prefix(c->inbox, "#tmp.dk."), 0);
	assert_int_equal(once(c, "Q5\nalice@example.com", &dup), first + 1);
	assert_true(dup);
	assert_int_equal(messages(c), 2);
	assert_int_equal(count_msgs(c), 2);

	/* A file without a marker (IMAP APPEND, or a marker lost) is adopted
	 * as before; its delivery is then not recognised. */
	close_all(c);
	make_interrupted(c, "Q6\nalice@example.com", first + 2, false);
	open_all(c);
	assert_int_equal(messages(c), 3);
	assert_int_equal(once(c, "Q6\nalice@example.com", &dup), first + 3);
	assert_false(dup);
}

static void test_marker_of_another_file_ignored(void **state)
{
	struct ctx *c = *state;
	char other[400], marker[400], hash[65];
	bool dup;
	FILE *fp;
	uint32_t first = once(c, "Q7\nalice@example.com", &dup);

	close_all(c);
	/* A marker left by a delivery that crashed before its rename (a
	 * different inode) must not lend its key to an unrelated orphan. */
	snprintf(other, sizeof(other), "%s/#tmp.0123", c->inbox);
	fp = fopen(other, "wb");
	assert_non_null(fp);
	assert_int_equal(fclose(fp), 0);
	store_delivery_key_hash("Q8\nalice@example.com", hash);
	snprintf(marker, sizeof(marker), "%s/#tmp.dk.%s.00112233445566778899aabbccddeeff", c->inbox, hash);
	assert_int_equal(link(other, marker), 0);
	make_interrupted(c, "Q9\nalice@example.com", first + 1, false);
	open_all(c);
	assert_int_equal(messages(c), 2);
	assert_int_equal(once(c, "Q8\nalice@example.com", &dup), first + 2);
	assert_false(dup);
}

/* Whether the test directory takes user extended attributes (ext4, XFS,
 * btrfs do; tmpfs before Linux 6.6 does not). */
static bool xattrs_supported(struct ctx *c)
{
	char probe[300];
	FILE *fp;
	bool ok;

	snprintf(probe, sizeof(probe), "%s/probe", c->dir);
	fp = fopen(probe, "wb");
	assert_non_null(fp);
	assert_int_equal(fclose(fp), 0);
	ok = setxattr(probe, "user.petrel.probe", "x", 1, 0) == 0;
	if (!ok)
		assert_true(errno == ENOTSUP || errno == EPERM);
	unlink(probe);
	return ok;
}

/* The SHA-256 of key as the 32 bytes store_deliver_once puts on the file. */
static void key_bytes(const char *key, unsigned char out[32])
{
	char hash[65];

	store_delivery_key_hash(key, hash);
	for (int i = 0; i < 32; i++) {
		unsigned v;

		assert_int_equal(sscanf(hash + 2 * i, "%2x", &v), 1);
		out[i] = (unsigned char)v;
	}
}

static void test_key_kept_on_the_file(void **state)
{
	struct ctx *c = *state;
	char path[400];
	unsigned char want[32], got[64];
	bool dup;
	uint32_t uid;

	if (!xattrs_supported(c)) {
		print_message("skipped: /tmp takes no user xattrs here, deliveries use the marker link\n");
		skip();
		return;
	}
	uid = once(c, "QX\nalice@example.com", &dup);
	snprintf(path, sizeof(path), "%s/#msgs/%u.eml", c->inbox, uid);
	key_bytes("QX\nalice@example.com", want);
	assert_int_equal(getxattr(path, "user.petrel.dk", got, sizeof(got)), 32);
	assert_memory_equal(got, want, 32);
	assert_int_equal(count_prefix(c->inbox, "#tmp."), 0);
}

/* A crash after the rename, before the commit, with the key only in the
 * file's attribute (no marker was needed): the adoption finds it. */
static void test_adopted_file_keeps_its_xattr_key(void **state)
{
	struct ctx *c = *state;
	char path[400];
	unsigned char k[32];
	bool dup;
	uint32_t first;

	if (!xattrs_supported(c)) {
		print_message("skipped: /tmp takes no user xattrs here, deliveries use the marker link\n");
		skip();
		return;
	}
	first = once(c, "QY\nalice@example.com", &dup);
	close_all(c);
	make_interrupted(c, "QZ\nalice@example.com", first + 1, false);
	snprintf(path, sizeof(path), "%s/#msgs/%u.eml", c->inbox, first + 1);
	key_bytes("QZ\nalice@example.com", k);
	assert_int_equal(setxattr(path, "user.petrel.dk", k, sizeof(k), 0), 0);
	open_all(c);
	assert_int_equal(messages(c), 2);
	assert_int_equal(once(c, "QZ\nalice@example.com", &dup), first + 1);
	assert_true(dup);
	assert_int_equal(count_msgs(c), 2);
}

/* Where setting the attribute fails (PETREL_FAULT=xattr:1 plays a file
 * system without user xattrs), the delivery goes through the marker link:
 * it still succeeds, leaves no marker behind, and its key is known. */
static void test_no_xattr_falls_back_to_marker(void **state)
{
	struct ctx *c = *state;
	char path[400];
	unsigned char got[64];
	bool dup;
	uint32_t uid;

	setenv("PETREL_FAULT", "xattr:1", 1);
	fileio_init_faults();
	uid = once(c, "QW\nalice@example.com", &dup);
	unsetenv("PETREL_FAULT");
	fileio_init_faults();
	assert_false(dup);
	snprintf(path, sizeof(path), "%s/#msgs/%u.eml", c->inbox, uid);
	assert_true(getxattr(path, "user.petrel.dk", got, sizeof(got)) < 0);
	assert_int_equal(count_prefix(c->inbox, "#tmp."), 0);
	assert_int_equal(once(c, "QW\nalice@example.com", &dup), uid);
	assert_true(dup);
	assert_int_equal(messages(c), 1);
}

static void test_keys_expire(void **state)
{
	struct ctx *c = *state;
	bool dup;
	uint32_t uid;

	close_all(c);
	c->ttl = 1;
	open_all(c);
	uid = once(c, "QA\nalice@example.com", &dup);
	assert_false(dup);
	assert_int_equal(once(c, "QA\nalice@example.com", &dup), uid);
	assert_true(dup);
	sleep(3);
	/* Pruned by the next keyed delivery of a newly opened folder. */
	close_all(c);
	open_all(c);
	(void)once(c, "QB\nalice@example.com", &dup);
	assert_int_not_equal(once(c, "QA\nalice@example.com", &dup), uid);
	assert_false(dup);
}

static void test_hash(void **state)
{
	char a[65], b[65];

	(void)state;
	store_delivery_key_hash("Q1\nalice@example.com", a);
	store_delivery_key_hash("Q1\nalice@example.co", b);
	assert_int_equal(strlen(a), 64);
	assert_int_equal(strspn(a, "0123456789abcdef"), 64);
	assert_string_not_equal(a, b);
	/* SHA-256 of "abc" (FIPS 180-2 example). */
	store_delivery_key_hash("abc", a);
	assert_string_equal(a, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash),
		cmocka_unit_test_setup_teardown(test_redelivery_stores_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunged_still_known, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopted_file_keeps_its_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_marker_of_another_file_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_kept_on_the_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopted_file_keeps_its_xattr_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_xattr_falls_back_to_marker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_expire, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
