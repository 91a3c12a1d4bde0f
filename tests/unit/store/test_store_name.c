/* store_name.c: folder name <-> directory escaping (table, round trip,
 * must-reject rows; HOSTILE-INPUT row 29). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "store/store.h"

static const struct {
	const char *name;
	const char *path;        /* NULL: refused */
} table[] = {
	{ "INBOX", "Inbox" },
	{ "inbox", "Inbox" },
	{ "InBoX/sub", "Inbox/sub" },
	{ "Archive/Inbox", "Archive/Inbox" },
	{ "Sent", "Sent" },
	{ "a b", "a b" },
	{ "100%", "100%25" },
	{ "%41", "%2541" },
	{ "a/b/c", "a/b/c" },
	{ "#msgs", "%23msgs" },
	{ "a/#msgs", "a/%23msgs" },
	{ "x#y", "x#y" },
	{ ".hidden", "%2Ehidden" },
	{ "a.b", "a.b" },
	{ "...x", "%2E..x" },
	{ "index.fld", "%69ndex.fld" },
	{ "index.bad", "%69ndex.bad" },
	{ "index", "index" },
	{ "indexes", "indexes" },
	{ "Entw\xc3\xbcrfe", "Entw\xc3\xbcrfe" },
	{ "\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac" },
	{ "~user", "~user" },
	{ "a\\b", "a\\b" },
	/* refused */
	{ "", NULL },
	{ "/", NULL },
	{ "/a", NULL },
	{ "a/", NULL },
	{ "a//b", NULL },
	{ ".", NULL },
	{ "..", NULL },
	{ "../x", NULL },
	{ "a/../../b", NULL },
	{ "a/./b", NULL },
	{ "a\rb", NULL },
	{ "a\nb", NULL },
	{ "a\tb", NULL },
	{ "\x7f", NULL },
	{ "\xff", NULL },
	{ "\xc0\xaf", NULL },             /* overlong '/' */
	{ "\xed\xa0\x80", NULL },         /* surrogate */
};

static void test_table(void **state)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct buf out, back;
		const char *reason = NULL;
		int ret;

		buf_init(&out, 4096);
		buf_init(&back, 4096);
		ret = store_folder_path(table[i].name, &out, &reason);
		if (table[i].path == NULL) {
			if (ret == 0)
				fail_msg("\"%s\" accepted as \"%s\"", table[i].name, out.data);
			assert_non_null(reason);
		} else {
			if (ret != 0)
				fail_msg("\"%s\" refused: %s", table[i].name, reason);
			if (strcmp(out.data, table[i].path) != 0)
				fail_msg("\"%s\" -> \"%s\", want \"%s\"", table[i].name, out.data, table[i].path);
			assert_int_equal(store_folder_name_from_path(out.data, &back), 0);
			if (store_is_inbox(table[i].name))
				assert_string_equal(back.data, "INBOX");
			else if (strncasecmp(table[i].name, "INBOX/", 6) == 0)
				assert_string_equal(back.data + 6, table[i].name + 6);
			else
				assert_string_equal(back.data, table[i].name);
		}
		buf_deinit(&out);
		buf_deinit(&back);
	}
}

/* Directory names that no folder name produces are not folders. */
static void test_non_canonical(void **state)
{
	static const char *const bad[] = {
		"%2e", "%41", "a%2", "a%zz", "a%", "index.fld", ".x", "#x", "inbox", "INBOX",
		"a%2Fb/../c", "%00", "x\xff", "", "Inbox/", "/x",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf out;

		buf_init(&out, 4096);
		if (store_folder_name_from_path(bad[i], &out) == 0)
			fail_msg("\"%s\" decoded to \"%s\"", bad[i], out.data);
		buf_deinit(&out);
	}
}

/* Every byte string of one level round-trips through the escaping, and the
 * result is one safe directory name. */
static void test_component_round_trip(void **state)
{
	unsigned seed = 12345;

	for (int n = 0; n < 20000; n++) {
		char name[40];
		size_t len = 1 + (size_t)(n % 39);
		struct buf esc, back;

		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			/* bias toward interesting bytes */
			name[i] = (seed >> 16) % 5 == 0 ? "%/.#i\0\r\n\xc3\xa9"[(seed >> 8) % 11] : (char)(seed >> 16);
		}
		buf_init(&esc, 4096);
		buf_init(&back, 4096);
		assert_int_equal(store_name_escape(name, len, &esc), 0);
		assert_null(memchr(esc.data, '/', esc.len));
		assert_null(memchr(esc.data, '\0', esc.len));
		assert_true(esc.data[0] != '.' && esc.data[0] != '#');
		assert_false(strncmp(esc.data, "index.", 6) == 0);
		assert_true(store_utf8_valid(esc.data, esc.len));
		assert_int_equal(store_name_unescape(esc.data, esc.len, &back), 0);
		assert_int_equal(back.len, len);
		assert_memory_equal(back.data, name, len);
		buf_deinit(&esc);
		buf_deinit(&back);
	}
}

static void test_limits(void **state)
{
	char longname[300];
	struct buf out;
	const char *reason;
	char deep[200] = "";

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	buf_init(&out, 4096);
	assert_int_equal(store_folder_path(longname, &out, &reason), -1);   /* > NAME_MAX */
	longname[STORE_MAX_DIR_NAME] = '\0';
	assert_int_equal(store_folder_path(longname, &out, &reason), 0);
	buf_reset(&out);
	/* 85 '%' escape to 255 bytes exactly; 86 do not fit */
	memset(longname, '%', 86);
	longname[86] = '\0';
	assert_int_equal(store_folder_path(longname, &out, &reason), -1);
	longname[85] = '\0';
	assert_int_equal(store_folder_path(longname, &out, &reason), 0);
	buf_reset(&out);
	for (int i = 0; i < STORE_MAX_FOLDER_DEPTH + 1; i++)
		strcat(deep, i == 0 ? "d" : "/d");
	assert_false(store_folder_name_valid(deep, &reason));
	buf_deinit(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_non_canonical),
		cmocka_unit_test(test_component_round_trip),
		cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
