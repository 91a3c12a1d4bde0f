/*
 * Unit tests for the users.cfg elements beyond domains and users
 * (src/directory/directory_parse.c, directory_format.c, directory.c):
 * alias domains, catch-all, secrets, extra addresses, forwarding,
 * auto-reply, aliases, groups and lists — parsing, writing and round
 * trips, the errors ("must reject" rows, with file:line) and warnings.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dir_test.h"

static const char full_example[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<users>\n"
	"  <domain name=\"example.com\" primary=\"yes\">\n"
	"    <alias-domain>Example.NET</alias-domain>\n"
	"    <catch-all>postmaster</catch-all>\n"
	"    <user name=\"john\">\n"
	"      <full-name>John Smith</full-name>\n"
	"      <password scheme=\"yescrypt\">" DT_HASH "</password>\n"
	"      <secret mechanism=\"SCRAM-SHA-256\">c2VjcmV0:a2V5</secret>\n"
	"      <secret mechanism=\"CRAM-MD5\">0123abcd</secret>\n"
	"      <quota storage=\"2G\" messages=\"1000\"/>\n"
	"      <alias>j.smith</alias>\n"
	"      <alias>johnny@Other.org</alias>\n"
	"      <forward keep-copy=\"yes\"><to>john@home.example</to><to>mary</to></forward>\n"
	"      <auto-reply enabled=\"yes\" start=\"2025-07-01\" end=\"2025-07-14T18:00:00+02:00\">\n"
	"        <subject>Away &amp; out</subject>\n"
	"        <text>Line one\n"
	"  Line two\tend</text>\n"
	"      </auto-reply>\n"
	"    </user>\n"
	"    <user name=\"mary\"/>\n"
	"    <alias name=\"postmaster\"><target>john</target><target>ops@remote.example</target></alias>\n"
	"    <group name=\"staff\"><member>john</member><member>mary@example.net</member></group>\n"
	"    <list name=\"news\" posting=\"moderated\" reply-to=\"list\" subscription=\"closed\">\n"
	"      <description>Company \"news\"</description>\n"
	"      <moderator>john</moderator>\n"
	"      <member>mary</member><member>Friend@Remote.Example</member>\n"
	"    </list>\n"
	"  </domain>\n"
	"  <domain name=\"other.org\">\n"
	"    <group name=\"empty\"/>\n"
	"    <list name=\"open\"/>\n"
	"  </domain>\n"
	"</users>\n";

static void test_full_model(void **state)
{
	struct directory *dir = dt_parse(full_example, NULL);
	const struct dir_domain *d = directory_find_domain(dir, "example.com");
	const struct dir_user *u = directory_find_user(dir, "john");
	const struct dir_alias *a;
	const struct dir_group *g;
	const struct dir_list *l;
	char *id;

	/* domain */
	assert_int_equal(d->alias_domains.count, 1);
	assert_string_equal(d->alias_domains.items[0], "example.net");
	assert_string_equal(d->catch_all, "postmaster@example.com");
	assert_ptr_equal(directory_find_local_domain(dir, "EXAMPLE.net"), d);
	assert_null(directory_find_domain(dir, "example.net"));   /* not a domain of its own */
	assert_null(directory_find_local_domain(dir, "example.org"));

	/* user */
	assert_non_null(u);
	assert_int_equal(u->secret_count, 2);
	assert_string_equal(directory_user_secret(u, "scram-sha-256")->value, "c2VjcmV0:a2V5");
	assert_string_equal(directory_user_secret(u, "CRAM-MD5")->value, "0123abcd");
	assert_null(directory_user_secret(u, "NTLM"));
	assert_int_equal(u->quota_storage, 2ull << 30);
	assert_int_equal(u->quota_messages, 1000);
	assert_int_equal(u->aliases.count, 2);
	assert_string_equal(u->aliases.items[0], "j.smith@example.com");
	assert_string_equal(u->aliases.items[1], "johnny@other.org");
	assert_int_equal(u->forward.count, 2);
	assert_string_equal(u->forward.items[0], "john@home.example");
	assert_string_equal(u->forward.items[1], "mary@example.com");
	assert_true(u->forward_keep_copy);
	assert_true(u->autoreply.enabled);
	assert_string_equal(u->autoreply.subject, "Away & out");
	assert_string_equal(u->autoreply.text, "Line one\n  Line two\tend");
	assert_string_equal(u->autoreply.start, "2025-07-01");
	assert_int_equal(u->autoreply.start_time, 1751328000);
	assert_int_equal(u->autoreply.end_time, 1752508800 + 1);
	/* login through the alias domain; extra addresses are not logins */
	assert_ptr_equal(directory_find_user(dir, "JOHN@example.NET"), u);
	assert_null(directory_find_user(dir, "j.smith@example.com"));
	assert_false(directory_find_user(dir, "mary")->autoreply.enabled);
	assert_int_equal(directory_find_user(dir, "mary")->autoreply.end_time, INT64_MAX);

	/* alias, group, list */
	a = directory_find_alias(dir, "postmaster@example.net");
	assert_non_null(a);
	assert_int_equal(a->targets.count, 2);
	assert_string_equal(a->targets.items[0], "john@example.com");
	g = directory_find_group(dir, "staff");
	assert_non_null(g);
	assert_string_equal(g->members.items[1], "mary@example.net");
	assert_int_equal(directory_find_group(dir, "empty@other.org")->members.count, 0);
	assert_null(directory_find_group(dir, "postmaster"));
	l = directory_find_list(dir, "news@example.com");
	assert_non_null(l);
	assert_int_equal(l->posting, DIR_LIST_POST_MODERATED);
	assert_int_equal(l->reply_to, DIR_LIST_REPLY_TO_LIST);
	assert_false(l->subscription_open);
	assert_string_equal(l->members.items[1], "Friend@remote.example");   /* local part kept */
	id = directory_list_id(l);
	assert_string_equal(id, "\"Company \\\"news\\\"\" <news.example.com>");
	free(id);
	l = directory_find_list(dir, "open@other.org");
	assert_int_equal(l->posting, DIR_LIST_POST_MEMBERS);
	assert_int_equal(l->reply_to, DIR_LIST_REPLY_TO_NONE);
	assert_true(l->subscription_open);

	dt_assert_round_trip(dir);
	directory_unref(&dir);
}

/* The written form: every element, in a fixed order, qualified. */
static void test_format(void **state)
{
	struct directory *dir = dt_parse(full_example, NULL);
	char *text = directory_format(dir);
	static const char *const expected[] = {
		"  <domain name=\"example.com\" primary=\"yes\">\n"
		"    <alias-domain>example.net</alias-domain>\n"
		"    <catch-all>postmaster@example.com</catch-all>\n"
		"    <user name=\"john\">\n"
		"      <full-name>John Smith</full-name>\n"
		"      <password scheme=\"yescrypt\">" DT_HASH "</password>\n"
		"      <secret mechanism=\"SCRAM-SHA-256\">c2VjcmV0:a2V5</secret>\n"
		"      <secret mechanism=\"CRAM-MD5\">0123abcd</secret>\n"
		"      <admin>no</admin>\n"
		"      <enabled>yes</enabled>\n"
		"      <quota storage=\"2G\" messages=\"1000\"/>\n"
		"      <alias>j.smith@example.com</alias>\n"
		"      <alias>johnny@other.org</alias>\n"
		"      <forward keep-copy=\"yes\">\n"
		"        <to>john@home.example</to>\n"
		"        <to>mary@example.com</to>\n"
		"      </forward>\n"
		"      <auto-reply enabled=\"yes\" start=\"2025-07-01\" end=\"2025-07-14T18:00:00+02:00\">\n"
		"        <subject>Away &amp; out</subject>\n"
		"        <text>Line one\n  Line two\tend</text>\n"
		"      </auto-reply>\n"
		"    </user>\n",
		"    <alias name=\"postmaster\">\n"
		"      <target>john@example.com</target>\n"
		"      <target>ops@remote.example</target>\n"
		"    </alias>\n"
		"    <group name=\"staff\">\n"
		"      <member>john@example.com</member>\n"
		"      <member>mary@example.net</member>\n"
		"    </group>\n"
		"    <list name=\"news\" posting=\"moderated\" reply-to=\"list\" subscription=\"closed\">\n"
		"      <description>Company &quot;news&quot;</description>\n"
		"      <moderator>john@example.com</moderator>\n"
		"      <member>mary@example.com</member>\n"
		"      <member>Friend@remote.example</member>\n"
		"    </list>\n"
		"  </domain>\n",
		"  <domain name=\"other.org\" primary=\"no\">\n"
		"    <group name=\"empty\"/>\n"
		"    <list name=\"open\" posting=\"members\" reply-to=\"none\" subscription=\"open\"/>\n"
		"  </domain>\n",
		/* a user without the new elements looks as before */
		"    <user name=\"mary\">\n"
		"      <admin>no</admin>\n"
		"      <enabled>yes</enabled>\n"
		"      <quota storage=\"0\" messages=\"0\"/>\n"
		"    </user>\n",
	};

	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		if (strstr(text, expected[i]) == NULL)
			fail_msg("missing:\n%s\nin:\n%s", expected[i], text);
	}
	assert_null(strchr(strstr(text, "<users>"), '\r'));
	free(text);
	directory_unref(&dir);
}

/* A disabled auto-reply with its text is kept; an empty one disappears. */
static void test_autoreply_kept_when_off(void **state)
{
	struct directory *dir = dt_parse(
		"<users><domain name=\"example.com\" primary=\"yes\">"
		"<user name=\"a\"><auto-reply enabled=\"no\"><text>Later</text></auto-reply></user>"
		"<user name=\"b\"><auto-reply enabled=\"no\"/></user>"
		"</domain></users>", NULL);
	char *text = directory_format(dir);

	assert_false(directory_find_user(dir, "a")->autoreply.enabled);
	assert_non_null(strstr(text, "<auto-reply enabled=\"no\">\n        <text>Later</text>"));
	assert_int_equal(strstr(strstr(text, "<user name=\"b\">"), "</user>") -
			 strstr(text, "<user name=\"b\">"),
			 strlen("<user name=\"b\">\n      <admin>no</admin>\n      <enabled>yes</enabled>\n"
				"      <quota storage=\"0\" messages=\"0\"/>\n    "));
	dt_assert_round_trip(dir);
	free(text);
	directory_unref(&dir);
}

struct error_case {
	const char *name;
	const char *text;
	const char *error;
};

#define D1 "<users><domain name=\"example.com\" primary=\"yes\">\n"
#define D1_END "</domain></users>"

static const struct error_case error_cases[] = {
	/* domains */
	{ "alias domain invalid", D1 "<alias-domain>bad..name</alias-domain>" D1_END,
	  "u.cfg:2: domain example.com: invalid alias domain name 'bad..name'" },
	{ "alias domain is the domain", D1 "<alias-domain>EXAMPLE.com</alias-domain>" D1_END,
	  "u.cfg:1: domain example.com: alias domain example.com is already the domain example.com (line 1)" },
	{ "alias domain is another domain",
	  "<users>\n<domain name=\"a.example\" primary=\"yes\"><alias-domain>b.example</alias-domain></domain>\n"
	  "<domain name=\"b.example\"/></users>",
	  "u.cfg:3: domain b.example is already an alias domain of a.example (line 2)" },
	{ "alias domain twice",
	  D1 "<alias-domain>x.example</alias-domain><alias-domain>X.example</alias-domain>" D1_END,
	  "u.cfg:1: domain example.com: alias domain x.example given twice" },
	{ "alias domain of two domains",
	  "<users>\n<domain name=\"a.example\" primary=\"yes\"><alias-domain>c.example</alias-domain></domain>\n"
	  "<domain name=\"b.example\"><alias-domain>c.example</alias-domain></domain></users>",
	  "u.cfg:3: domain b.example: alias domain c.example is already an alias domain of a.example (line 2)" },
	{ "catch-all invalid", D1 "<catch-all>a b@example.com</catch-all>" D1_END,
	  "u.cfg:2: domain example.com: catch-all 'a b@example.com' is not a valid address: "
	  "contains characters not allowed in a mail address" },
	{ "catch-all twice", D1 "<catch-all>a</catch-all>\n<catch-all>b</catch-all>" D1_END,
	  "u.cfg:3: domain example.com: <catch-all> given twice (first at line 2)" },
	/* secrets */
	{ "secret without mechanism", D1 "<user name=\"j\">\n<secret>x</secret></user>" D1_END,
	  "u.cfg:3: user j: <secret> without a mechanism attribute" },
	{ "secret bad mechanism", D1 "<user name=\"j\">\n<secret mechanism=\"scram sha\">x</secret></user>" D1_END,
	  "u.cfg:3: user j: secret mechanism 'scram sha' is not a SASL mechanism name (A-Z, 0-9, '-', '_')" },
	{ "secret twice",
	  D1 "<user name=\"j\">\n<secret mechanism=\"NTLM\">a</secret>\n<secret mechanism=\"NTLM\">b</secret></user>" D1_END,
	  "u.cfg:4: user j: secret for NTLM given twice" },
	{ "secret with space (not echoed)",
	  D1 "<user name=\"j\">\n<secret mechanism=\"NTLM\">hunter2 secret123</secret></user>" D1_END,
	  "u.cfg:3: user j: secret for NTLM is empty, too long or not printable ASCII" },
	{ "secret empty", D1 "<user name=\"j\">\n<secret mechanism=\"NTLM\"></secret></user>" D1_END,
	  "u.cfg:3: user j: secret for NTLM is empty, too long or not printable ASCII" },
	/* extra addresses */
	{ "extra address invalid", D1 "<user name=\"j\">\n<alias>a..b</alias></user>" D1_END,
	  "u.cfg:3: user j: extra address 'a..b' is not a valid address: contains '..'" },
	{ "extra address twice", D1 "<user name=\"j\">\n<alias>x</alias>\n<alias>X@example.com</alias></user>" D1_END,
	  "u.cfg:4: user j: extra address X@example.com given twice" },
	{ "extra address not ours", D1 "<user name=\"j\">\n<alias>x@elsewhere.example</alias></user>" D1_END,
	  "u.cfg:2: user j: extra address x@elsewhere.example is not in one of our domains" },
	{ "extra address in an alias domain",
	  D1 "<alias-domain>example.net</alias-domain>\n<user name=\"j\">\n<alias>x@example.net</alias></user>" D1_END,
	  "u.cfg:3: user j: extra address x@example.net is in example.net, an alias domain of "
	  "example.com: use the address in example.com" },
	{ "extra address is another user", D1 "<user name=\"j\"/>\n<user name=\"k\"><alias>j</alias></user>" D1_END,
	  "u.cfg:3: an extra address of user k: address j@example.com is already taken by user j (line 2)" },
	/* forwarding */
	{ "forward twice", D1 "<user name=\"j\">\n<forward/>\n<forward/></user>" D1_END,
	  "u.cfg:4: user j: <forward> given twice (first at line 3)" },
	{ "forward invalid", D1 "<user name=\"j\">\n<forward><to>@x</to></forward></user>" D1_END,
	  "u.cfg:3: user j: forwarding target '@x' is not a valid address: nothing before the '@'" },
	{ "forward empty target", D1 "<user name=\"j\">\n<forward><to> </to></forward></user>" D1_END,
	  "u.cfg:3: user j: empty <to>" },
	{ "forward duplicate", D1 "<user name=\"j\">\n<forward><to>a@x.example</to>\n<to>A@X.example</to></forward></user>" D1_END,
	  "u.cfg:4: user j: forwarding target A@x.example given twice" },
	{ "forward keep-copy", D1 "<user name=\"j\">\n<forward keep-copy=\"perhaps\"/></user>" D1_END,
	  "u.cfg:3: user j: forward keep-copy 'perhaps' is not yes or no" },
	/* auto-reply */
	{ "auto-reply bad date", D1 "<user name=\"j\">\n<auto-reply start=\"2025-02-30\"/></user>" D1_END,
	  "u.cfg:3: user j: auto-reply start '2025-02-30' is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)" },
	{ "auto-reply bad end", D1 "<user name=\"j\">\n<auto-reply end=\"tomorrow\"/></user>" D1_END,
	  "u.cfg:3: user j: auto-reply end 'tomorrow' is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)" },
	{ "auto-reply backwards",
	  D1 "<user name=\"j\">\n<auto-reply start=\"2025-07-02\" end=\"2025-07-01\"/></user>" D1_END,
	  "u.cfg:3: user j: auto-reply ends before it starts" },
	{ "auto-reply enabled", D1 "<user name=\"j\">\n<auto-reply enabled=\"si\"/></user>" D1_END,
	  "u.cfg:3: user j: auto-reply enabled 'si' is not yes or no" },
	{ "auto-reply subject control",
	  D1 "<user name=\"j\">\n<auto-reply>\n<subject>a&#10;b</subject></auto-reply></user>" D1_END,
	  "u.cfg:4: user j: auto-reply <subject> contains control characters" },
	{ "auto-reply text CR", D1 "<user name=\"j\">\n<auto-reply>\n<text>a&#13;b</text></auto-reply></user>" D1_END,
	  "u.cfg:4: user j: auto-reply <text> contains control characters" },
	{ "auto-reply twice", D1 "<user name=\"j\">\n<auto-reply/>\n<auto-reply/></user>" D1_END,
	  "u.cfg:4: user j: <auto-reply> given twice (first at line 3)" },
	/* aliases */
	{ "alias without name", D1 "<alias><target>a</target></alias>" D1_END,
	  "u.cfg:2: <alias> without a name attribute" },
	{ "alias path traversal", D1 "<alias name=\"../x\"><target>a</target></alias>" D1_END,
	  "u.cfg:2: invalid alias name '../x': starts or ends with a dot" },
	{ "alias slash", D1 "<alias name=\"a/b\"><target>a</target></alias>" D1_END,
	  "u.cfg:2: invalid alias name 'a/b': contains '/'" },
	{ "alias without target", D1 "\n<alias name=\"x\"/>" D1_END,
	  "u.cfg:3: alias x has no <target>" },
	{ "alias target invalid", D1 "<alias name=\"x\">\n<target>a@b@c.example</target></alias>" D1_END,
	  "u.cfg:3: alias x: target 'a@b@c.example' is not a valid address: more than one '@'" },
	{ "alias target twice", D1 "<alias name=\"x\">\n<target>a</target>\n<target>A</target></alias>" D1_END,
	  "u.cfg:4: alias x: target A@example.com given twice" },
	{ "alias is a user", D1 "<user name=\"x\"/>\n<alias name=\"X\"><target>a@b.example</target></alias>" D1_END,
	  "u.cfg:3: alias X: address x@example.com is already taken by user x (line 2)" },
	{ "alias twice", D1 "<alias name=\"x\"><target>a@b.example</target></alias>\n"
	  "<alias name=\"x\"><target>c@b.example</target></alias>" D1_END,
	  "u.cfg:3: alias x: address x@example.com is already taken by alias x (line 2)" },
	/* groups */
	{ "group member remote", D1 "<group name=\"g\">\n<member>a@remote.example</member></group>" D1_END,
	  "u.cfg:2: group g: member a@remote.example is not a local address (a group holds local "
	  "addresses; use an alias for others)" },
	{ "group member twice", D1 "<group name=\"g\">\n<member>a</member>\n<member>a@EXAMPLE.COM</member></group>" D1_END,
	  "u.cfg:4: group g: member a@example.com given twice" },
	{ "group is a list", D1 "<list name=\"g\"/>\n<group name=\"g\"/>" D1_END,
	  "u.cfg:3: group g: address g@example.com is already taken by list g (line 2)" },
	{ "group control name", D1 "<group name=\"a&#13;b\"/>" D1_END,
	  "u.cfg:2: invalid group name 'a\\rb': contains control characters" },
	/* lists */
	{ "list bad posting", D1 "<list name=\"l\" posting=\"everyone\"/>" D1_END,
	  "u.cfg:2: list l: posting 'everyone' is not members, anyone or moderated" },
	{ "list bad reply-to", D1 "<list name=\"l\" reply-to=\"author\"/>" D1_END,
	  "u.cfg:2: list l: reply-to 'author' is not list, sender or none" },
	{ "list bad subscription", D1 "<list name=\"l\" subscription=\"maybe\"/>" D1_END,
	  "u.cfg:2: list l: subscription 'maybe' is not open or closed" },
	{ "moderated without moderator", D1 "<list name=\"l\" posting=\"moderated\"/>" D1_END,
	  "u.cfg:2: list l: posting is moderated but there is no <moderator>" },
	{ "list member twice", D1 "<list name=\"l\">\n<member>a@x.example</member><member>a@x.example</member></list>" D1_END,
	  "u.cfg:3: list l: member a@x.example given twice" },
	{ "list command collides with a user", D1 "<user name=\"news-subscribe\"/>\n<list name=\"news\"/>" D1_END,
	  "u.cfg:3: the subscribe address of list news: address news-subscribe@example.com is already "
	  "taken by user news-subscribe (line 2)" },
	{ "list bounce address collides with an alias", D1 "<alias name=\"news-bounces\"><target>x@remote.example</target></alias>\n<list name=\"news\"/>" D1_END,
	  "u.cfg:3: the bounce address of list news: address news-bounces@example.com is already "
	  "taken by alias news-bounces (line 2)" },
	{ "list description control", D1 "<list name=\"l\">\n<description>a&#9;b</description></list>" D1_END,
	  "u.cfg:3: list l: description contains control characters" },
	{ "list description twice", D1 "<list name=\"l\">\n<description>a</description>\n<description>b</description></list>" D1_END,
	  "u.cfg:4: list l: <description> given twice (first at line 3)" },
};

static void test_error_table(void **state)
{
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		char *error = dt_parse_error(error_cases[i].text);

		if (strcmp(error, error_cases[i].error) != 0)
			fail_msg("%s:\n got      '%s'\n expected '%s'", error_cases[i].name, error,
				 error_cases[i].error);
		assert_null(strstr(error, "hunter2"));
		assert_null(strstr(error, "secret123"));
		free(error);
	}
}

static void test_warnings(void **state)
{
	const char *text =
		D1
		"<catch-all>nobody</catch-all>\n"
		"<user name=\"j\"><forward><to>ghost</to></forward></user>\n"
		"<alias name=\"a\"><target>b</target></alias>\n"
		"<alias name=\"b\"><target>a</target></alias>\n"
		"<group name=\"g\"><member>missing</member><member>j+tag</member></group>\n"
		"<list name=\"l\"><member>gone</member></list>\n"
		"<user name=\"k\"><alias>k2</alias><shoe/></user>\n"
		D1_END;
	static const char *const expected[] = {
		"u.cfg:8: unknown element <shoe> (ignored)",
		"u.cfg:1: domain example.com: catch-all nobody@example.com does not exist",
		"u.cfg:3: user j: forwarding target ghost@example.com does not exist",
		"u.cfg:4: alias a@example.com: mail loop: a@example.com -> b@example.com -> a@example.com",
		"u.cfg:5: alias b@example.com: mail loop: b@example.com -> a@example.com -> b@example.com",
		"u.cfg:6: group g: member missing@example.com does not exist",
		"u.cfg:7: list l: member gone@example.com does not exist",
	};
	struct dt_warnings w = { .count = 0 };
	struct directory *dir = dt_parse(text, &w);

	if (w.count != sizeof(expected) / sizeof(expected[0])) {
		for (size_t i = 0; i < w.count; i++)
			fprintf(stderr, "warning: %s\n", w.list[i]);
		fail_msg("%zu warnings", w.count);
	}
	for (size_t i = 0; i < w.count; i++)
		assert_string_equal(w.list[i], expected[i]);
	dt_warnings_free(&w);
	directory_unref(&dir);
}

/* Hostile names never parse (HOSTILE-INPUT row 29: nothing may name a
 * path outside the mail root). */
static void test_hostile_names(void **state)
{
	static const char *const names[] = {
		"..", "../etc", "a/../../b", "/etc/passwd", ".hidden", "a\\b", "a b", "",
		"a2345678901234567890123456789012345678901234567890123456789012345",
	};
	static const char *const elements[] = { "user", "alias", "group", "list" };

	for (size_t e = 0; e < sizeof(elements) / sizeof(elements[0]); e++) {
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			char *text = xasprintf(D1 "<%s name=\"%s\"><target>x@y.example</target></%s>" D1_END,
					       elements[e], names[i], elements[e]);
			char *error = dt_parse_error(text);

			assert_non_null(strstr(error, "u.cfg:2: invalid "));
			free(error);
			free(text);
		}
	}
	assert_false(directory_valid_address("../x@example.com", NULL));
	assert_false(directory_valid_address("x@../example.com", NULL));
	assert_false(directory_valid_address("x@example.com/..", NULL));
	assert_false(directory_valid_address("x", NULL));
	assert_false(directory_valid_address("x@", NULL));
	assert_false(directory_valid_address("@example.com", NULL));
	assert_false(directory_valid_address("\"quoted\"@example.com", NULL));
	assert_false(directory_valid_address("x@[127.0.0.1]", NULL));
	assert_true(directory_valid_address("first.last+tag@sub.example.com", NULL));
}

static void test_dates(void **state)
{
	static const struct {
		const char *text;
		int ok;
		int64_t start, end;
	} rows[] = {
		{ "2025-07-01", 1, 1751328000, 1751328000 + 86400 },
		{ "1970-01-01", 1, 0, 86400 },
		{ "2024-02-29", 1, 1709164800, 1709164800 + 86400 },
		{ "2025-07-14T16:00:00Z", 1, 1752508800, 1752508801 },
		{ "2025-07-14T18:00:00+02:00", 1, 1752508800, 1752508801 },
		{ "2025-07-14T14:30:00-01:30", 1, 1752508800, 1752508801 },
		{ "9999-12-31", 1, 253402214400, 253402214400 + 86400 },
		{ "2023-02-29", 0, 0, 0 },
		{ "2025-13-01", 0, 0, 0 },
		{ "2025-00-10", 0, 0, 0 },
		{ "1969-12-31", 0, 0, 0 },
		{ "2025-7-1", 0, 0, 0 },
		{ "2025-07-01T25:00:00Z", 0, 0, 0 },
		{ "2025-07-01T10:00:00", 0, 0, 0 },
		{ "2025-07-01T10:00:00+2:00", 0, 0, 0 },
		{ "2025-07-01 junk", 0, 0, 0 },
		{ "", 0, 0, 0 },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int64_t s = -1, e = -1;
		int r = directory_parse_date(rows[i].text, &s, &e);

		if ((r == 0) != rows[i].ok)
			fail_msg("%s: %d", rows[i].text, r);
		if (rows[i].ok) {
			assert_int_equal(s, rows[i].start);
			assert_int_equal(e, rows[i].end);
		}
	}
}

/* The per-file index: huge lists stay fast (duplicate checks sort). */
static void test_many_members(void **state)
{
	struct buf b;
	struct directory *dir;
	char *text;

	buf_init(&b, 16 << 20);
	assert_int_equal(buf_append_str(&b, D1 "<list name=\"big\">"), 0);
	for (int i = 0; i < 50000; i++)
		assert_int_equal(buf_printf(&b, "<member>m%d@remote.example</member>", i), 0);
	assert_int_equal(buf_append_str(&b, "</list>" D1_END), 0);
	text = buf_steal(&b);
	dir = dt_parse(text, NULL);
	assert_int_equal(directory_find_list(dir, "big")->members.count, 50000);
	directory_unref(&dir);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_model),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_autoreply_kept_when_off),
		cmocka_unit_test(test_error_table),
		cmocka_unit_test(test_warnings),
		cmocka_unit_test(test_hostile_names),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_many_members),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
