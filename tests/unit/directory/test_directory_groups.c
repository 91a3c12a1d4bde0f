/* src/directory/directory_groups.c: a user's groups, nested ones included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dir_test.h"

static const char world[] =
	"<users>\n"
	"  <domain name=\"example.com\" primary=\"yes\">\n"
	"    <user name=\"ann\"/>\n"
	"    <user name=\"bob\"/>\n"
	"    <user name=\"cid\"/>\n"
	/* chain: ann in g1, g1 in g2, ..., g4 in g5 */
	"    <group name=\"g1\"><member>ann</member></group>\n"
	"    <group name=\"g2\"><member>g1</member><member>bob</member></group>\n"
	"    <group name=\"g3\"><member>G2@Example.com</member></group>\n"
	"    <group name=\"g4\"><member>g3</member></group>\n"
	"    <group name=\"g5\"><member>g4</member></group>\n"
	/* cycle: cid in r1, r1 in r2, r2 in r3, r3 in r1 */
	"    <group name=\"r1\"><member>cid</member><member>r3</member></group>\n"
	"    <group name=\"r2\"><member>r1</member></group>\n"
	"    <group name=\"r3\"><member>r2</member></group>\n"
	/* a group that names itself */
	"    <group name=\"me\"><member>me</member><member>bob</member></group>\n"
	"  </domain>\n"
	"  <domain name=\"other.org\">\n"
	"    <group name=\"far\"><member>g1@example.com</member></group>\n"
	"  </domain>\n"
	"</users>\n";

/* Cycles and deep chains make users.cfg warn (mail loops): expected. */
static struct directory *parse(const char *text)
{
	struct dt_warnings w = { .count = 0 };
	struct directory *dir = dt_parse(text, &w);

	dt_warnings_free(&w);
	return dir;
}

/* True when groups[0..n) holds exactly the addresses of want (NULL-ended). */
static bool same_set(const char **groups, size_t n, const char *const *want)
{
	size_t count = 0;

	for (; want[count] != NULL; count++) {
		bool found = false;

		for (size_t i = 0; i < n && !found; i++)
			found = strcmp(groups[i], want[count]) == 0;
		if (!found)
			return false;
	}
	return count == n;
}

static void test_direct_only(void **state)
{
	struct directory *dir = parse(world);
	const char **g;
	size_t n;

	(void)state;
	n = directory_user_groups(dir, "ann@example.com", 1, 100, &g);
	assert_true(same_set(g, n, (const char *const[]){ "g1@example.com", NULL }));
	free(g);
	n = directory_user_groups(dir, "bob@example.com", 1, 100, &g);
	assert_true(same_set(g, n, (const char *const[]){ "g2@example.com", "me@example.com", NULL }));
	free(g);
	directory_unref(&dir);
}

static void test_nested(void **state)
{
	struct directory *dir = parse(world);
	const char **g;
	size_t n;

	(void)state;
	/* the whole chain, and a group of another domain, case-insensitive */
	n = directory_user_groups(dir, "ANN@example.com", 8, 100, &g);
	assert_true(same_set(g, n, (const char *const[]){ "g1@example.com", "g2@example.com",
		"g3@example.com", "g4@example.com", "g5@example.com", "far@other.org", NULL }));
	/* direct groups come first */
	assert_string_equal(g[0], "g1@example.com");
	free(g);
	/* the depth limit cuts the chain: 3 levels are g1 (and far), g2, g3 */
	n = directory_user_groups(dir, "ann@example.com", 3, 100, &g);
	assert_true(same_set(g, n, (const char *const[]){ "g1@example.com", "far@other.org",
		"g2@example.com", "g3@example.com", NULL }));
	free(g);
	/* the count limit too */
	n = directory_user_groups(dir, "ann@example.com", 8, 2, &g);
	assert_int_equal(n, 2);
	free(g);
	directory_unref(&dir);
}

static void test_cycles(void **state)
{
	struct directory *dir = parse(world);
	const char **g;
	size_t n;

	(void)state;
	/* each group of the ring once, whatever the depth */
	n = directory_user_groups(dir, "cid@example.com", 64, 1000, &g);
	assert_true(same_set(g, n, (const char *const[]){ "r1@example.com", "r2@example.com",
		"r3@example.com", NULL }));
	free(g);
	/* a group that is its own member */
	n = directory_user_groups(dir, "bob@example.com", 64, 1000, &g);
	assert_true(same_set(g, n, (const char *const[]){ "g2@example.com", "me@example.com",
		"g3@example.com", "g4@example.com", "g5@example.com", NULL }));
	free(g);
	directory_unref(&dir);
}

static void test_nobody(void **state)
{
	struct directory *dir = parse(world);
	const char **g = (const char **)1;

	(void)state;
	assert_int_equal(directory_user_groups(dir, "nobody@example.com", 8, 100, &g), 0);
	assert_null(g);
	assert_int_equal(directory_user_groups(NULL, "ann@example.com", 8, 100, &g), 0);
	assert_int_equal(directory_user_groups(dir, "ann@example.com", 0, 100, &g), 0);
	directory_unref(&dir);
}

/* A deep chain of 2000 groups: bounded by the depth, no recursion. */
static void test_deep_chain(void **state)
{
	struct buf text;
	struct directory *dir;
	const char **g;
	size_t n;

	(void)state;
	buf_init(&text, SIZE_MAX / 4);
	assert_int_equal(buf_append_str(&text, "<users><domain name=\"example.com\" primary=\"yes\">"
				       "<user name=\"ann\"/><group name=\"c0\"><member>ann</member></group>"), 0);
	for (int i = 1; i < 2000; i++)
		assert_int_equal(buf_printf(&text, "<group name=\"c%d\"><member>c%d</member></group>", i,
					    i - 1), 0);
	assert_int_equal(buf_append_str(&text, "</domain></users>"), 0);
	dir = parse(text.data);
	n = directory_user_groups(dir, "ann@example.com", 64, 1000, &g);
	assert_int_equal(n, 64);
	free(g);
	directory_unref(&dir);
	buf_deinit(&text);
}

/* The generation moves with every new current snapshot: rights computed
 * from the old one (a user's groups) are known to be stale. */
static void test_generation(void **state)
{
	uint64_t g0 = directory_generation();

	(void)state;
	directory_set_current(parse(world));
	assert_true(directory_generation() > g0);
	g0 = directory_generation();
	directory_set_current(NULL);
	assert_true(directory_generation() > g0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_direct_only),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_cycles),
		cmocka_unit_test(test_nobody),
		cmocka_unit_test(test_deep_chain),
		cmocka_unit_test(test_generation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
