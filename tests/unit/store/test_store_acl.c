/* store_acl.c: RFC 4314 rights strings, the #acl file format, rights
 * evaluation (users, groups, anyone, negative entries), SETACL changes,
 * and the files on disk (atomic write, rename and delete with the
 * folder, the owners' list, the public pseudo-user). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/store.h"

static uint32_t rights(const char *s)
{
	uint32_t r = 0xdead;

	assert_int_equal(store_acl_rights_parse(s, strlen(s), &r), 0);
	return r;
}

static void test_rights_parse(void **state)
{
	static const char *const bad[] = { "z", "L", "l r", "+l", "-l", "l\n", "1", "lrswipkxteaZ",
					   "\xc3\xa9" };
	char out[STORE_ACL_RIGHTS_MAX];
	uint32_t r;

	(void)state;
	assert_int_equal(rights(""), 0);
	assert_int_equal(rights("l"), STORE_ACL_L);
	assert_int_equal(rights("lrswipkxtea"), STORE_ACL_ALL);
	assert_int_equal(rights("rl"), STORE_ACL_L | STORE_ACL_R);
	assert_int_equal(rights("lll"), STORE_ACL_L);
	/* obsolete rights (RFC 4314 2.1.1): c = k x, d = t e */
	assert_int_equal(rights("c"), STORE_ACL_K | STORE_ACL_X);
	assert_int_equal(rights("d"), STORE_ACL_T | STORE_ACL_E);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(store_acl_rights_parse(bad[i], strlen(bad[i]), &r), -1);
	/* NUL inside the string */
	assert_int_equal(store_acl_rights_parse("l\0r", 3, &r), -1);

	assert_string_equal(store_acl_rights_format(0, out), "");
	assert_string_equal(store_acl_rights_format(STORE_ACL_ALL, out), "lrswipkxtecda");
	assert_string_equal(store_acl_rights_format(rights("rl"), out), "lr");
	/* c and d are shown when one member is held */
	assert_string_equal(store_acl_rights_format(STORE_ACL_K, out), "kc");
	assert_string_equal(store_acl_rights_format(STORE_ACL_E | STORE_ACL_L, out), "led");
	/* every mask round-trips, except that c and d read back bring all
	 * their members: the price of RFC 4314 2.1.1's compatibility */
	for (uint32_t m = 0; m <= STORE_ACL_ALL; m++) {
		uint32_t want = m;

		if ((m & (STORE_ACL_K | STORE_ACL_X)) != 0)
			want |= STORE_ACL_K | STORE_ACL_X;
		if ((m & (STORE_ACL_T | STORE_ACL_E)) != 0)
			want |= STORE_ACL_T | STORE_ACL_E;
		assert_int_equal(rights(store_acl_rights_format(m, out)), want);
	}
}

static void test_identifier_valid(void **state)
{
	char big[STORE_ACL_MAX_IDENTIFIER + 2];

	(void)state;
	assert_true(store_acl_identifier_valid("anyone", 6));
	assert_true(store_acl_identifier_valid("bob@example.com", 15));
	assert_false(store_acl_identifier_valid("", 0));
	assert_false(store_acl_identifier_valid("-bob", 4));
	assert_false(store_acl_identifier_valid("b b", 3));
	assert_false(store_acl_identifier_valid("b\tb", 3));
	assert_false(store_acl_identifier_valid("b\rb", 3));
	assert_false(store_acl_identifier_valid("b\0b", 3));
	assert_false(store_acl_identifier_valid("b\"b", 3));
	assert_false(store_acl_identifier_valid("b\\b", 3));
	assert_false(store_acl_identifier_valid("b\x7f", 2));
	assert_false(store_acl_identifier_valid("\xc3\xa9", 2));
	memset(big, 'a', sizeof(big));
	assert_true(store_acl_identifier_valid(big, STORE_ACL_MAX_IDENTIFIER));
	assert_false(store_acl_identifier_valid(big, STORE_ACL_MAX_IDENTIFIER + 1));
}

static void test_apply_and_eval(void **state)
{
	struct store_acl acl = { NULL, 0 };
	const char *groups[] = { "team@example.com" };

	(void)state;
	assert_int_equal(store_acl_apply(&acl, "Bob@Example.com", false, STORE_ACL_REPLACE,
					 rights("lr"), 10), 0);
	assert_int_equal(acl.count, 1);
	assert_string_equal(acl.entries[0].identifier, "bob@example.com");
	assert_int_equal(store_acl_eval(&acl, "bob@example.com", NULL, 0), rights("lr"));
	assert_int_equal(store_acl_eval(&acl, "BOB@example.com", NULL, 0), rights("lr"));
	assert_int_equal(store_acl_eval(&acl, "carol@example.com", NULL, 0), 0);
	/* add, remove */
	assert_int_equal(store_acl_apply(&acl, "bob@example.com", false, STORE_ACL_ADD, rights("si"),
					 10), 0);
	assert_int_equal(store_acl_eval(&acl, "bob@example.com", NULL, 0), rights("lrsi"));
	assert_int_equal(store_acl_apply(&acl, "bob@example.com", false, STORE_ACL_REMOVE, rights("r"),
					 10), 0);
	assert_int_equal(store_acl_eval(&acl, "bob@example.com", NULL, 0), rights("lsi"));
	/* groups and anyone add up */
	assert_int_equal(store_acl_apply(&acl, "team@example.com", false, STORE_ACL_REPLACE,
					 rights("rw"), 10), 0);
	assert_int_equal(store_acl_apply(&acl, "anyone", false, STORE_ACL_REPLACE, rights("p"), 10), 0);
	assert_int_equal(store_acl_eval(&acl, "bob@example.com", groups, 1), rights("lsirwp"));
	assert_int_equal(store_acl_eval(&acl, "carol@example.com", groups, 1), rights("rwp"));
	assert_int_equal(store_acl_eval(&acl, "dave@example.com", NULL, 0), rights("p"));
	/* a negative entry takes away, whatever gave */
	assert_int_equal(store_acl_apply(&acl, "bob@example.com", true, STORE_ACL_REPLACE, rights("wp"),
					 10), 0);
	assert_int_equal(acl.count, 4);
	assert_int_equal(store_acl_eval(&acl, "bob@example.com", groups, 1), rights("lsir"));
	/* the limit counts new entries only */
	assert_int_equal(store_acl_apply(&acl, "x@example.com", false, STORE_ACL_REPLACE, rights("l"),
					 4), -1);
	assert_int_equal(store_acl_apply(&acl, "anyone", false, STORE_ACL_ADD, rights("l"), 4), 0);
	/* an entry left empty goes; an empty new one is never made */
	assert_int_equal(store_acl_apply(&acl, "anyone", false, STORE_ACL_REPLACE, 0, 4), 0);
	assert_int_equal(acl.count, 3);
	assert_int_equal(store_acl_apply(&acl, "y@example.com", false, STORE_ACL_REMOVE, rights("l"),
					 4), 0);
	assert_int_equal(acl.count, 3);
	store_acl_free(&acl);
}

static void test_file_format(void **state)
{
	static const char *const bad[] = {
		"bob@x\n",                 /* no tab */
		"bob@x\tlz\n",             /* bad right */
		"bob@x\t\n",               /* no rights */
		"\tlr\n",                  /* no identifier */
		"b b\tlr\n",
		"bob@x\tlr\nbob@x\tr\n",   /* twice */
		"--bob@x\tlr\n",
		"bob@x\tl\tr\n",
		"b\x01@x\tlr\n",
	};
	struct store_acl acl;
	char *text;

	(void)state;
	assert_int_equal(store_acl_parse("", 0, &acl), 0);
	assert_int_equal(acl.count, 0);
	{
		const char *in = "bob@x\tlr\n-bob@x\tw\nanyone\tl\n\nteam@x\tlrcd";

		assert_int_equal(store_acl_parse(in, strlen(in), &acl), 0);
	}
	assert_int_equal(acl.count, 4);
	assert_true(acl.entries[1].negative);
	assert_int_equal(acl.entries[3].rights, rights("lrkxte"));
	text = store_acl_format(&acl);
	assert_string_equal(text, "bob@x\tlr\n-bob@x\tw\nanyone\tl\nteam@x\tlrkxte\n");
	store_acl_free(&acl);
	/* what is written reads back the same */
	assert_int_equal(store_acl_parse(text, strlen(text), &acl), 0);
	assert_int_equal(acl.count, 4);
	store_acl_free(&acl);
	free(text);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		acl.count = 99;
		assert_int_equal(store_acl_parse(bad[i], strlen(bad[i]), &acl), -1);
	}
}

/* ---- on disk ---- */

struct ctx {
	char dir[64];
	struct store *store;
	struct store_user *user;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct store_settings set;
	const char *err;

	strcpy(c->dir, "/tmp/petrel-acl-XXXXXX");
	assert_non_null(mkdtemp(c->dir));
	store_settings_default(&set, c->dir);
	set.fsync = false;
	assert_int_equal(store_new(&set, &c->store, &err), 0);
	assert_int_equal(store_user_open(c->store, "example.com", "alice", &c->user, &err), STORE_OK);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	char cmd[128];

	store_user_unref(&c->user);
	store_free(&c->store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
	assert_int_equal(system(cmd), 0);
	free(c);
	return 0;
}

static bool exists(struct ctx *c, const char *rel)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/mail/%s", c->dir, rel);
	return stat(path, &st) == 0;
}

static void test_disk(void **state)
{
	struct ctx *c = *state;
	struct store_acl acl;
	struct store_acl_owner *owners;
	size_t n;
	bool present = true;
	const char *err;

	assert_int_equal(store_folder_create(c->user, "Projects", STORE_ROLE_NONE, &err), STORE_OK);
	assert_int_equal(store_acl_get(c->user, "Projects", &acl, &present, &err), STORE_OK);
	assert_int_equal(acl.count, 0);
	assert_false(present);
	assert_int_equal(store_acl_get(c->user, "Nope", &acl, NULL, &err), STORE_E_NOTFOUND);
	assert_int_equal(store_acl_set(c->user, "Nope", "bob@example.com", false, STORE_ACL_REPLACE,
				       rights("lr"), 10, &err), STORE_E_NOTFOUND);
	assert_int_equal(store_acl_set(c->user, "../x", "bob@example.com", false, STORE_ACL_REPLACE,
				       rights("lr"), 10, &err), STORE_E_INVALID);
	assert_int_equal(store_acl_set(c->user, "Projects", "b b", false, STORE_ACL_REPLACE,
				       rights("lr"), 10, &err), STORE_E_INVALID);
	/* no owner listed before anything is shared */
	assert_int_equal(store_acl_owners(c->store, &owners, &n, &err), STORE_OK);
	assert_int_equal(n, 0);

	assert_int_equal(store_acl_set(c->user, "Projects", "bob@example.com", false,
				       STORE_ACL_REPLACE, rights("lr"), 2, &err), STORE_OK);
	assert_true(exists(c, "example.com/alice/Projects/#acl"));
	assert_int_equal(store_acl_set(c->user, "Projects", "anyone", false, STORE_ACL_REPLACE,
				       rights("l"), 2, &err), STORE_OK);
	assert_int_equal(store_acl_set(c->user, "Projects", "carol@example.com", false,
				       STORE_ACL_REPLACE, rights("l"), 2, &err), STORE_E_LIMIT);
	assert_int_equal(store_acl_get(c->user, "Projects", &acl, &present, &err), STORE_OK);
	assert_true(present);
	assert_int_equal(acl.count, 2);
	assert_int_equal(store_acl_eval(&acl, "bob@example.com", NULL, 0), rights("lr"));
	store_acl_free(&acl);
	/* INBOX too (its directory is "Inbox") */
	assert_int_equal(store_acl_set(c->user, "inbox", "bob@example.com", false, STORE_ACL_REPLACE,
				       rights("l"), 2, &err), STORE_OK);
	assert_true(exists(c, "example.com/alice/Inbox/#acl"));
	/* the owner is listed once */
	assert_int_equal(store_acl_owners(c->store, &owners, &n, &err), STORE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(owners[0].domain, "example.com");
	assert_string_equal(owners[0].user, "alice");
	store_acl_owners_free(&owners, n);

	/* the ACL moves with the folder, and is not a folder itself */
	assert_int_equal(store_folder_rename(c->user, "Projects", "Work", &err), STORE_OK);
	assert_int_equal(store_acl_get(c->user, "Work", &acl, &present, &err), STORE_OK);
	assert_int_equal(acl.count, 2);
	store_acl_free(&acl);
	{
		struct store_folder_info *list;
		size_t count;

		assert_int_equal(store_folder_list(c->user, &list, &count, &err), STORE_OK);
		for (size_t i = 0; i < count; i++)
			assert_null(strstr(list[i].name, "acl"));
		store_folder_list_free(&list, count);
	}
	/* removing every entry removes the file */
	assert_int_equal(store_acl_set(c->user, "Work", "bob@example.com", false, STORE_ACL_REPLACE,
				       0, 2, &err), STORE_OK);
	assert_int_equal(store_acl_set(c->user, "Work", "anyone", false, STORE_ACL_REMOVE,
				       rights("l"), 2, &err), STORE_OK);
	assert_false(exists(c, "example.com/alice/Work/#acl"));
	/* a damaged file grants nothing and is reported */
	{
		char path[512];
		FILE *f;

		snprintf(path, sizeof(path), "%s/mail/example.com/alice/Work/#acl", c->dir);
		f = fopen(path, "w");
		assert_non_null(f);
		fputs("bob@example.com\tlrZ\n", f);
		fclose(f);
		assert_int_equal(store_acl_get(c->user, "Work", &acl, NULL, &err), STORE_E_TEMP);
		assert_int_equal(acl.count, 0);
	}
	/* deleted with the folder */
	assert_int_equal(store_folder_delete(c->user, "Work", &err), STORE_OK);
	assert_false(exists(c, "example.com/alice/Work"));
}

/* Every successful change raises the ACL generation (sessions holding
 * rights compare it); a refused one does not. */
static void test_generation(void **state)
{
	struct ctx *c = *state;
	const char *err;
	uint64_t g0, g1;

	assert_int_equal(store_folder_create(c->user, "Gen", STORE_ROLE_NONE, &err), STORE_OK);
	g0 = store_acl_generation();
	assert_int_equal(store_acl_set(c->user, "Nope", "bob@example.com", false, STORE_ACL_REPLACE,
				       rights("lr"), 10, &err), STORE_E_NOTFOUND);
	assert_int_equal(store_acl_generation(), g0);
	assert_int_equal(store_acl_set(c->user, "Gen", "bob@example.com", false, STORE_ACL_REPLACE,
				       rights("lr"), 10, &err), STORE_OK);
	g1 = store_acl_generation();
	assert_true(g1 > g0);
	/* removing the last entry (the file goes) is a change too */
	assert_int_equal(store_acl_set(c->user, "Gen", "bob@example.com", false, STORE_ACL_REPLACE,
				       0, 10, &err), STORE_OK);
	assert_true(store_acl_generation() > g1);
}

static void test_public_user(void **state)
{
	struct ctx *c = *state;
	struct store_user *pub;
	struct store_folder_info *list;
	size_t count;
	const char *err;

	assert_int_equal(store_user_open(c->store, "example.com", STORE_PUBLIC_USER, &pub, &err),
			 STORE_OK);
	/* no INBOX, no special-use folders: only what administrators make */
	assert_int_equal(store_folder_list(pub, &list, &count, &err), STORE_OK);
	assert_int_equal(count, 0);
	store_folder_list_free(&list, count);
	assert_int_equal(store_folder_create(pub, "News", STORE_ROLE_NONE, &err), STORE_OK);
	assert_int_equal(store_folder_list(pub, &list, &count, &err), STORE_OK);
	assert_int_equal(count, 1);
	assert_string_equal(list[0].name, "News");
	store_folder_list_free(&list, count);
	/* the directory name is escaped: no user directory can be it */
	assert_true(exists(c, "example.com/%23public/News"));
	store_user_unref(&pub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rights_parse),
		cmocka_unit_test(test_identifier_valid),
		cmocka_unit_test(test_apply_and_eval),
		cmocka_unit_test(test_file_format),
		cmocka_unit_test_setup_teardown(test_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_public_user, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
