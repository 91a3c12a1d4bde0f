/*
 * Unit tests for address resolution (src/directory/directory_resolve.c):
 * users, extra addresses, case, alias domains, subaddresses, aliases and
 * their chains, groups, forwarding, lists and list commands, catch-all,
 * unknown and foreign addresses, loops, depth and expansion limits, and
 * the list headers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/buf.h"
#include "dir_test.h"

static const char world[] =
	"<users>\n"
	"  <domain name=\"example.com\" primary=\"yes\">\n"
	"    <alias-domain>example.net</alias-domain>\n"
	"    <user name=\"john\"><alias>j.smith</alias></user>\n"
	"    <user name=\"mary\"/>\n"
	"    <user name=\"off\"><enabled>no</enabled></user>\n"
	"    <user name=\"plus+name\"/>\n"
	"    <user name=\"away\"><forward><to>away@home.example</to></forward></user>\n"
	"    <user name=\"copy\"><forward keep-copy=\"yes\"><to>mary</to><to>Copy@Home.example</to></forward></user>\n"
	"    <user name=\"dangling\"><forward><to>ghost</to></forward></user>\n"
	"    <alias name=\"postmaster\"><target>john</target></alias>\n"
	"    <alias name=\"sales\"><target>info</target><target>partner@remote.example</target></alias>\n"
	"    <alias name=\"info\"><target>mary</target><target>JOHN@example.net</target></alias>\n"
	"    <alias name=\"both\"><target>john</target><target>j.smith</target><target>postmaster</target></alias>\n"
	"    <alias name=\"tagged\"><target>mary+archive</target></alias>\n"
	"    <alias name=\"nowhere\"><target>ghost1</target><target>ghost2</target></alias>\n"
	"    <alias name=\"to-list\"><target>news</target></alias>\n"
	"    <alias name=\"loop-a\"><target>loop-b</target></alias>\n"
	"    <alias name=\"loop-b\"><target>loop-a</target></alias>\n"
	"    <alias name=\"self\"><target>self</target></alias>\n"
	"    <user name=\"ping\"><forward><to>pong</to></forward></user>\n"
	"    <user name=\"pong\"><forward><to>ping</to></forward></user>\n"
	"    <group name=\"staff\"><member>john</member><member>mary</member><member>team</member></group>\n"
	"    <group name=\"team\"><member>mary</member><member>off</member></group>\n"
	"    <group name=\"ring1\"><member>ring2</member></group>\n"
	"    <group name=\"ring2\"><member>ring1</member></group>\n"
	"    <list name=\"news\" posting=\"anyone\"><description>News</description>"
	"<member>john</member><member>Ext@Remote.example</member></list>\n"
	"  </domain>\n"
	"  <domain name=\"other.org\">\n"
	"    <catch-all>john@example.com</catch-all>\n"
	"    <user name=\"john\"/>\n"
	"  </domain>\n"
	"</users>\n";

static struct directory *load_world(void)
{
	struct dt_warnings w = { .count = 0 };
	struct directory *dir = dt_parse(world, &w);

	/* the loops and dangling targets above are warned about */
	assert_true(w.count >= 5);
	dt_warnings_free(&w);
	return dir;
}

/* Resolves and checks kind and recipients ("local:a@b remote:c@d list:e@f",
 * in order, with "/detail" after a local one). */
static void expect(const struct directory *dir, const char *address, char sep,
		   enum dir_resolve_kind kind, const char *rcpts)
{
	struct dir_resolution res;
	struct buf b;

	directory_resolve(dir, address, sep, &res);
	buf_init(&b, 4096);
	for (size_t i = 0; i < res.rcpt_count; i++) {
		const struct dir_rcpt *r = &res.rcpts[i];

		assert_int_equal(buf_printf(&b, "%s%s:%s%s%s", i > 0 ? " " : "",
					    r->kind == DIR_RCPT_LOCAL ? "local"
					    : r->kind == DIR_RCPT_REMOTE ? "remote" : "list",
					    r->address, r->detail != NULL ? "/" : "",
					    r->detail != NULL ? r->detail : ""), 0);
	}
	if (res.kind != kind || strcmp(b.data != NULL ? b.data : "", rcpts) != 0)
		fail_msg("%s: got %s [%s] (%s), expected %s [%s]", address,
			 directory_resolve_kind_str(res.kind), b.data != NULL ? b.data : "",
			 res.error != NULL ? res.error : "", directory_resolve_kind_str(kind), rcpts);
	buf_deinit(&b);
	directory_resolution_free(&res);
}

static void test_users(void **state)
{
	struct directory *dir = load_world();
	struct dir_resolution res;

	expect(dir, "john@example.com", '+', DIR_RESOLVE_RECIPIENTS, "local:john@example.com");
	/* case-insensitive local part and domain; alias domain */
	expect(dir, "JoHn@EXAMPLE.com", '+', DIR_RESOLVE_RECIPIENTS, "local:john@example.com");
	expect(dir, "john@Example.NET", '+', DIR_RESOLVE_RECIPIENTS, "local:john@example.com");
	/* extra address, also through the alias domain */
	expect(dir, "j.smith@example.com", '+', DIR_RESOLVE_RECIPIENTS, "local:john@example.com");
	expect(dir, "J.Smith@example.net", '+', DIR_RESOLVE_RECIPIENTS, "local:john@example.com");
	/* the other john */
	expect(dir, "john@other.org", '+', DIR_RESOLVE_RECIPIENTS, "local:john@other.org");
	/* disabled users still receive mail */
	expect(dir, "off@example.com", '+', DIR_RESOLVE_RECIPIENTS, "local:off@example.com");

	directory_resolve(dir, "j.smith@example.net", '+', &res);
	assert_int_equal(res.entry, DIR_ENTRY_USER_ALIAS);
	assert_string_equal(res.user->address, "john@example.com");
	assert_string_equal(res.domain->name, "example.com");
	assert_null(res.detail);
	assert_false(res.catch_all);
	directory_resolution_free(&res);
	directory_unref(&dir);
}

static void test_subaddress(void **state)
{
	struct directory *dir = load_world();
	struct dir_resolution res;

	expect(dir, "john+lists@example.com", '+', DIR_RESOLVE_RECIPIENTS,
	       "local:john@example.com/lists");
	expect(dir, "john+a+b@example.com", '+', DIR_RESOLVE_RECIPIENTS,
	       "local:john@example.com/a+b");
	expect(dir, "john+@example.com", '+', DIR_RESOLVE_RECIPIENTS, "local:john@example.com/");
	/* no separator: no subaddressing */
	expect(dir, "john+lists@example.com", '\0', DIR_RESOLVE_UNKNOWN, "");
	/* another separator */
	expect(dir, "john-lists@example.com", '-', DIR_RESOLVE_RECIPIENTS,
	       "local:john@example.com/lists");
	expect(dir, "john-lists@example.com", '+', DIR_RESOLVE_UNKNOWN, "");
	/* an exact name with the separator wins */
	expect(dir, "plus+name@example.com", '+', DIR_RESOLVE_RECIPIENTS,
	       "local:plus+name@example.com");
	expect(dir, "plus+name+x@example.com", '+', DIR_RESOLVE_UNKNOWN, "");
	/* a separator first is not a subaddress */
	expect(dir, "+john@example.com", '+', DIR_RESOLVE_UNKNOWN, "");
	/* aliases take subaddresses too; the detail is not carried through */
	expect(dir, "postmaster+x@example.com", '+', DIR_RESOLVE_RECIPIENTS, "local:john@example.com");
	/* a subaddressed target keeps its detail */
	expect(dir, "tagged@example.com", '+', DIR_RESOLVE_RECIPIENTS,
	       "local:mary@example.com/archive");

	directory_resolve(dir, "John+Work@example.net", '+', &res);
	assert_string_equal(res.detail, "Work");
	assert_int_equal(res.entry, DIR_ENTRY_USER);
	directory_resolution_free(&res);
	directory_unref(&dir);
}

static void test_aliases(void **state)
{
	struct directory *dir = load_world();
	struct dir_resolution res;

	expect(dir, "postmaster@example.com", '+', DIR_RESOLVE_RECIPIENTS, "local:john@example.com");
	/* chain sales → info → mary, john; plus a remote target */
	expect(dir, "sales@example.com", '+', DIR_RESOLVE_RECIPIENTS,
	       "local:mary@example.com local:john@example.com remote:partner@remote.example");
	/* one mailbox reached three ways is delivered once */
	expect(dir, "both@example.com", '+', DIR_RESOLVE_RECIPIENTS, "local:john@example.com");
	/* an alias whose targets do not exist: unknown, with the count */
	directory_resolve(dir, "nowhere@example.com", '+', &res);
	assert_int_equal(res.kind, DIR_RESOLVE_UNKNOWN);
	assert_int_equal(res.entry, DIR_ENTRY_ALIAS);
	assert_int_equal(res.skipped, 2);
	directory_resolution_free(&res);
	directory_unref(&dir);
}

static void test_forwarding(void **state)
{
	struct directory *dir = load_world();
	struct dir_resolution res;

	expect(dir, "away@example.com", '+', DIR_RESOLVE_RECIPIENTS, "remote:away@home.example");
	expect(dir, "copy@example.com", '+', DIR_RESOLVE_RECIPIENTS,
	       "local:mary@example.com remote:Copy@home.example local:copy@example.com");
	/* a forward that reaches nowhere keeps the mail */
	directory_resolve(dir, "dangling@example.com", '+', &res);
	assert_int_equal(res.kind, DIR_RESOLVE_RECIPIENTS);
	assert_int_equal(res.rcpt_count, 1);
	assert_string_equal(res.rcpts[0].address, "dangling@example.com");
	assert_int_equal(res.skipped, 1);
	directory_resolution_free(&res);
	directory_unref(&dir);
}

static void test_groups(void **state)
{
	struct directory *dir = load_world();

	/* nested group, mary once, the disabled member included */
	expect(dir, "staff@example.com", '+', DIR_RESOLVE_RECIPIENTS,
	       "local:john@example.com local:mary@example.com local:off@example.com");
	expect(dir, "team@example.net", '+', DIR_RESOLVE_RECIPIENTS,
	       "local:mary@example.com local:off@example.com");
	directory_unref(&dir);
}

static void test_lists(void **state)
{
	struct directory *dir = load_world();
	struct dir_resolution res;
	char *h;

	directory_resolve(dir, "news@example.com", '+', &res);
	assert_int_equal(res.kind, DIR_RESOLVE_LIST);
	assert_int_equal(res.entry, DIR_ENTRY_LIST);
	assert_string_equal(res.list->address, "news@example.com");
	assert_int_equal(res.list->posting, DIR_LIST_POST_ANYONE);
	assert_int_equal(res.rcpt_count, 0);   /* delivery expands members */
	directory_resolution_free(&res);

	directory_resolve(dir, "News-Subscribe@example.net", '+', &res);
	assert_int_equal(res.kind, DIR_RESOLVE_LIST_COMMAND);
	assert_int_equal(res.command, DIR_LIST_SUBSCRIBE);
	assert_string_equal(res.list->address, "news@example.com");
	assert_null(res.detail);
	directory_resolution_free(&res);

	/* the confirmation token rides as a subaddress */
	directory_resolve(dir, "news-unsubscribe+Tok3n@example.com", '+', &res);
	assert_int_equal(res.kind, DIR_RESOLVE_LIST_COMMAND);
	assert_int_equal(res.command, DIR_LIST_UNSUBSCRIBE);
	assert_string_equal(res.detail, "Tok3n");
	directory_resolution_free(&res);

	/* the bounce and moderation addresses are list commands too */
	directory_resolve(dir, "news-bounces@example.com", '+', &res);
	assert_int_equal(res.kind, DIR_RESOLVE_LIST_COMMAND);
	assert_int_equal(res.entry, DIR_ENTRY_LIST_BOUNCES);
	assert_int_equal(res.command, DIR_LIST_BOUNCES);
	directory_resolution_free(&res);
	directory_resolve(dir, "news-moderate+approve-abc@example.net", '+', &res);
	assert_int_equal(res.kind, DIR_RESOLVE_LIST_COMMAND);
	assert_int_equal(res.entry, DIR_ENTRY_LIST_MODERATE);
	assert_int_equal(res.command, DIR_LIST_MODERATE);
	assert_string_equal(res.detail, "approve-abc");
	assert_string_equal(res.list->address, "news@example.com");
	directory_resolution_free(&res);

	/* a list behind an alias is a recipient of its own */
	expect(dir, "to-list@example.com", '+', DIR_RESOLVE_RECIPIENTS, "list:news@example.com");

	/* membership: local members through alias domains and any case */
	assert_true(directory_list_has_member(dir, res.list = directory_find_list(dir, "news"),
					      "JOHN@example.net"));
	assert_true(directory_list_has_member(dir, res.list, "ext@remote.example"));
	assert_false(directory_list_has_member(dir, res.list, "mary@example.com"));
	assert_false(directory_list_has_member(dir, res.list, ""));
	assert_false(directory_list_has_moderator(dir, res.list, "john@example.com"));

	h = directory_list_id(res.list);
	assert_string_equal(h, "\"News\" <news.example.com>");
	free(h);
	h = directory_list_unsubscribe(res.list);
	assert_string_equal(h, "<mailto:news-unsubscribe@example.com>");
	free(h);
	h = directory_list_subscribe(res.list);
	assert_string_equal(h, "<mailto:news-subscribe@example.com>");
	free(h);
	h = directory_list_post(res.list);
	assert_string_equal(h, "<mailto:news@example.com>");
	free(h);
	directory_unref(&dir);
}

static void test_list_id_encoding(void **state)
{
	struct directory *dir = dt_parse(
		"<users><domain name=\"example.com\" primary=\"yes\">"
		"<list name=\"a\"/>"
		"<list name=\"b\"><description>Caf\xc3\xa9 des \xc3\xa9l\xc3\xa8ves et des "
		"professeurs du lyc\xc3\xa9""e</description></list>"
		"</domain></users>", NULL);
	char *h = directory_list_id(directory_find_list(dir, "a"));

	assert_string_equal(h, "<a.example.com>");
	free(h);
	h = directory_list_id(directory_find_list(dir, "b"));
	/* encoded-words of at most 75 characters, UTF-8 sequences whole */
	assert_true(str_has_prefix(h, "=?UTF-8?B?"));
	assert_true(str_has_suffix(h, "?= <b.example.com>"));
	for (char *w = h; (w = strstr(w, "=?")) != NULL; w += 2)
		assert_true(strstr(w, "?=") - w + 2 <= 75);
	free(h);
	directory_unref(&dir);
}

static void test_catch_all(void **state)
{
	struct directory *dir = load_world();
	struct dir_resolution res;

	directory_resolve(dir, "anything@other.org", '+', &res);
	assert_int_equal(res.kind, DIR_RESOLVE_RECIPIENTS);
	assert_true(res.catch_all);
	assert_string_equal(res.rcpts[0].address, "john@example.com");
	directory_resolution_free(&res);
	/* only when nothing matches */
	expect(dir, "john@other.org", '+', DIR_RESOLVE_RECIPIENTS, "local:john@other.org");
	expect(dir, "john+x@other.org", '+', DIR_RESOLVE_RECIPIENTS, "local:john@other.org/x");
	/* off by default */
	expect(dir, "anything@example.com", '+', DIR_RESOLVE_UNKNOWN, "");
	directory_unref(&dir);
}

static void test_unknown_and_foreign(void **state)
{
	struct directory *dir = load_world();
	struct dir_resolution res;

	expect(dir, "nobody@example.com", '+', DIR_RESOLVE_UNKNOWN, "");
	expect(dir, "john@elsewhere.example", '+', DIR_RESOLVE_NOT_LOCAL, "");
	expect(dir, "john@example.com.evil.example", '+', DIR_RESOLVE_NOT_LOCAL, "");
	static const char *const invalid[] = {
		"", "john", "john@", "@example.com", "a@b@example.com", "../x@example.com",
		"x@example..com", "x y@example.com", "<john@example.com>", "john@example.com\r\n",
	};
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		directory_resolve(dir, invalid[i], '+', &res);
		if (res.kind != DIR_RESOLVE_INVALID)
			fail_msg("'%s' is %s", invalid[i], directory_resolve_kind_str(res.kind));
		assert_non_null(res.error);
		assert_null(res.domain);
		directory_resolution_free(&res);
	}
	directory_resolve(dir, NULL, '+', &res);
	assert_int_equal(res.kind, DIR_RESOLVE_INVALID);
	directory_resolution_free(&res);
	directory_unref(&dir);
}

static void test_loops(void **state)
{
	struct directory *dir = load_world();
	struct dir_resolution res;

	directory_resolve(dir, "loop-a@example.com", '+', &res);
	assert_int_equal(res.kind, DIR_RESOLVE_LOOP);
	assert_string_equal(res.error,
			    "mail loop: loop-a@example.com -> loop-b@example.com -> loop-a@example.com");
	assert_int_equal(res.rcpt_count, 0);
	assert_null(res.rcpts);
	directory_resolution_free(&res);

	expect(dir, "self@example.com", '+', DIR_RESOLVE_LOOP, "");
	expect(dir, "ping@example.com", '+', DIR_RESOLVE_LOOP, "");
	expect(dir, "ring1@example.com", '+', DIR_RESOLVE_LOOP, "");
	directory_unref(&dir);
}

/* Chains longer than the limit, and expansions wider than it, stop. */
static void test_limits(void **state)
{
	struct buf b;
	struct directory *dir;
	struct dir_resolution res;
	char *text;

	buf_init(&b, 4 << 20);
	assert_int_equal(buf_append_str(&b, "<users><domain name=\"example.com\" primary=\"yes\">"
					"<user name=\"end\"/>"), 0);
	/* a0 → a1 → ... → a30 → end */
	for (int i = 0; i < 30; i++)
		assert_int_equal(buf_printf(&b, "<alias name=\"a%d\"><target>a%d</target></alias>", i,
					    i + 1), 0);
	assert_int_equal(buf_append_str(&b, "<alias name=\"a30\"><target>end</target></alias>"), 0);
	/* wide: DIRECTORY_MAX_EXPANSION + 1 remote targets */
	assert_int_equal(buf_append_str(&b, "<alias name=\"wide\">"), 0);
	for (int i = 0; i <= DIRECTORY_MAX_EXPANSION; i++)
		assert_int_equal(buf_printf(&b, "<target>r%d@remote.example</target>", i), 0);
	assert_int_equal(buf_append_str(&b, "</alias>"), 0);
	/* a diamond lattice: 2^20 paths, but each node is expanded once */
	for (int i = 0; i < 20; i++)
		assert_int_equal(buf_printf(&b, "<group name=\"l%d\"><member>x%d</member><member>y%d</member></group>"
					    "<group name=\"x%d\"><member>l%d</member></group>"
					    "<group name=\"y%d\"><member>l%d</member></group>",
					    i, i, i, i, i + 1, i, i + 1), 0);
	assert_int_equal(buf_append_str(&b, "<group name=\"l20\"><member>end</member></group>"
					"</domain></users>"), 0);
	text = buf_steal(&b);
	{
		struct dt_warnings w = { .count = 0 };

		dir = dt_parse(text, &w);
		dt_warnings_free(&w);
	}
	free(text);

	expect(dir, "a15@example.com", '+', DIR_RESOLVE_RECIPIENTS, "local:end@example.com");
	directory_resolve(dir, "a0@example.com", '+', &res);
	assert_int_equal(res.kind, DIR_RESOLVE_LOOP);
	assert_string_equal(res.error, "mail loop: a0@example.com nests aliases, groups or forwards "
			    "deeper than 20");
	directory_resolution_free(&res);

	directory_resolve(dir, "wide@example.com", '+', &res);
	assert_int_equal(res.kind, DIR_RESOLVE_LOOP);
	assert_string_equal(res.error, "expansion of wide@example.com stopped after 1000 addresses");
	directory_resolution_free(&res);

	/* depth 41 through the lattice: too deep, but found quickly */
	directory_resolve(dir, "l0@example.com", '+', &res);
	assert_int_equal(res.kind, DIR_RESOLVE_LOOP);
	directory_resolution_free(&res);
	expect(dir, "l12@example.com", '+', DIR_RESOLVE_RECIPIENTS, "local:end@example.com");
	directory_unref(&dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_users),
		cmocka_unit_test(test_subaddress),
		cmocka_unit_test(test_aliases),
		cmocka_unit_test(test_forwarding),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_list_id_encoding),
		cmocka_unit_test(test_catch_all),
		cmocka_unit_test(test_unknown_and_foreign),
		cmocka_unit_test(test_loops),
		cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
