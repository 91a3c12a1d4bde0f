/*
 * Unit tests for the mutators beyond domains and users
 * (src/directory/directory_mutate.c): domain aliases, primary, catch-all,
 * forced removal, user properties, extra addresses, forwarding,
 * auto-reply, credentials and the secrets hook, aliases, groups and lists;
 * copy-on-write (the old snapshot never changes), the checks (collisions,
 * existence, loops), and that what they make saves and loads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dir_test.h"

static const char base[] =
	"<users>\n"
	"  <domain name=\"example.com\" primary=\"yes\">\n"
	"    <user name=\"john\"><password>" DT_HASH "</password></user>\n"
	"    <user name=\"mary\"/>\n"
	"  </domain>\n"
	"  <domain name=\"other.org\">\n"
	"    <user name=\"bob\"/>\n"
	"  </domain>\n"
	"</users>\n";

static struct directory *ok(struct directory *old, int ret, struct directory *next, char *error)
{
	if (ret < 0)
		fail_msg("mutation failed: %s", error);
	assert_non_null(next);
	directory_unref(&old);
	return next;
}

static void refused(int ret, struct directory *next, char *error, const char *expected)
{
	if (ret == 0)
		fail_msg("accepted, expected '%s'", expected);
	assert_null(next);
	if (strcmp(error, expected) != 0)
		fail_msg("got      '%s'\nexpected '%s'", error, expected);
	free(error);
}

/* The mutation (which writes next and error) must fail with expected;
 * a macro, so that next and error are read after the call. */
#define REFUSED(call, expected) do { \
	int r_; \
	next = NULL; \
	error = NULL; \
	r_ = (call); \
	refused(r_, next, error, expected); \
} while (0)

/* Saves dir to a temporary users.cfg and loads it back: same text. */
static void assert_saves(const struct directory *dir)
{
	char *d = dt_tmpdir(), *path = xasprintf("%s/%s", d, CFG_USERS), *error = NULL;
	struct directory *back = NULL;
	char *a, *b;

	if (directory_save(dir, path, &error) < 0)
		fail_msg("%s", error);
	if (directory_load(d, NULL, NULL, &back, &error) < 0)
		fail_msg("%s", error);
	a = directory_format(dir);
	b = directory_format(back);
	assert_string_equal(a, b);
	free(a);
	free(b);
	directory_unref(&back);
	free(path);
	dt_rmdir(d);
	free(d);
}

static void test_domains(void **state)
{
	struct directory *dir = dt_parse(base, NULL), *next = NULL, *old;
	char *error = NULL;
	int r;

	/* alias domains */
	r = directory_add_domain_alias(dir, "example.com", "Example.NET", &next, &error);
	old = directory_ref(dir);
	dir = ok(dir, r, next, error);
	assert_null(directory_find_local_domain(old, "example.net"));   /* copy on write */
	directory_unref(&old);
	assert_non_null(directory_find_user(dir, "john@example.net"));
	REFUSED(directory_add_domain_alias(dir, "example.com", "example.net", &next, &error),
		"example.net is already an alias domain of example.com");
	REFUSED(directory_add_domain_alias(dir, "other.org", "example.com", &next, &error),
		"example.com is already a domain");
	REFUSED(directory_add_domain_alias(dir, "nowhere.example", "x.example", &next, &error),
		"no domain nowhere.example");
	REFUSED(directory_add_domain_alias(dir, "example.com", "../x", &next, &error),
		"invalid alias domain name '../x'");
	REFUSED(directory_add_domain(dir, "EXAMPLE.net", false, &next, &error),
		"EXAMPLE.net is already an alias domain of example.com");
	REFUSED(directory_remove_domain(dir, "example.net", false, &next, &error),
		"example.net is an alias domain of example.com: remove it with domain alias remove");
	REFUSED(directory_remove_domain_alias(dir, "example.com", &next, &error),
		"no alias domain example.com");

	/* catch-all */
	r = directory_set_catch_all(dir, "example.com", "mary", &next, &error);
	dir = ok(dir, r, next, error);
	assert_string_equal(directory_find_domain(dir, "example.com")->catch_all, "mary@example.com");
	REFUSED(directory_set_catch_all(dir, "example.com", "ghost", &next, &error),
		"catch-all target ghost@example.com does not exist");
	REFUSED(directory_set_catch_all(dir, "example.com", "a b", &next, &error),
		"invalid catch-all target 'a b': contains characters not allowed in a mail address");
	r = directory_set_catch_all(dir, "example.net", "someone@remote.example", &next, &error);
	dir = ok(dir, r, next, error);
	assert_string_equal(directory_find_domain(dir, "example.com")->catch_all,
			    "someone@remote.example");
	assert_saves(dir);
	r = directory_set_catch_all(dir, "example.com", NULL, &next, &error);
	dir = ok(dir, r, next, error);
	assert_null(directory_find_domain(dir, "example.com")->catch_all);

	/* primary */
	assert_non_null(directory_find_user(dir, "john"));
	r = directory_set_primary_domain(dir, "other.org", &next, &error);
	dir = ok(dir, r, next, error);
	assert_string_equal(dir->primary->name, "other.org");
	assert_non_null(directory_find_user(dir, "bob"));
	assert_null(directory_find_user(dir, "john"));
	REFUSED(directory_set_primary_domain(dir, "example.net", &next, &error),
		"no domain example.net");

	r = directory_remove_domain_alias(dir, "EXAMPLE.NET", &next, &error);
	dir = ok(dir, r, next, error);
	assert_null(directory_find_local_domain(dir, "example.net"));
	directory_unref(&dir);
}

static void test_remove_domain_force(void **state)
{
	struct directory *dir = dt_parse(
		"<users>\n"
		"  <domain name=\"example.com\" primary=\"yes\">\n"
		"    <user name=\"john\"><alias>johnny@other.org</alias><alias>j</alias></user>\n"
		"    <group name=\"g\"><member>john</member><member>bob@other.org</member></group>\n"
		"    <alias name=\"a\"><target>bob@other.org</target></alias>\n"
		"  </domain>\n"
		"  <domain name=\"other.org\">\n"
		"    <alias-domain>other.net</alias-domain>\n"
		"    <user name=\"bob\"/>\n"
		"    <list name=\"l\"/>\n"
		"  </domain>\n"
		"</users>\n", NULL), *next = NULL;
	char *error = NULL;
	int r;

	REFUSED(directory_remove_domain(dir, "other.org", false, &next, &error),
		"domain other.org still has 1 user, 1 list; remove them first, or force the removal");
	REFUSED(directory_remove_domain(dir, "example.com", true, &next, &error),
		"example.com is the primary domain; it can only be removed last (make another "
		"domain primary first)");
	r = directory_remove_domain(dir, "other.org", true, &next, &error);
	dir = ok(dir, r, next, error);
	assert_int_equal(dir->domain_count, 1);
	assert_null(directory_find_local_domain(dir, "other.net"));
	/* what pointed into it: extra addresses and group members go, alias
	 * targets stay (they are now remote addresses) */
	assert_int_equal(directory_find_user(dir, "john")->aliases.count, 1);
	assert_int_equal(directory_find_group(dir, "g")->members.count, 1);
	assert_int_equal(directory_find_alias(dir, "a")->targets.count, 1);
	assert_saves(dir);
	directory_unref(&dir);
}

static void test_user_properties(void **state)
{
	struct directory *dir = dt_parse(base, NULL), *next = NULL;
	struct dir_user_update up = { .full_name = "John Q. Smith", .admin = DIR_SET_YES,
				      .enabled = DIR_SET_NO, .quota_storage = 1 << 20,
				      .quota_messages = -1 };
	const struct dir_user *u;
	char *error = NULL;
	int r;

	r = directory_update_user(dir, "john", &up, &next, &error);
	dir = ok(dir, r, next, error);
	u = directory_find_user(dir, "john");
	assert_string_equal(u->full_name, "John Q. Smith");
	assert_true(u->admin);
	assert_false(u->enabled);
	assert_int_equal(u->quota_storage, 1 << 20);
	assert_int_equal(u->quota_messages, 0);
	assert_non_null(u->password_hash);   /* untouched */
	up = (struct dir_user_update){ .full_name = " padded", .quota_storage = -1,
				       .quota_messages = -1 };
	REFUSED(directory_update_user(dir, "john", &up, &next, &error),
		"invalid full name: control characters, invalid UTF-8, leading or trailing spaces, "
		"or longer than 256 bytes");
	up.full_name = "bad \xff utf8";
	REFUSED(directory_update_user(dir, "john", &up, &next, &error),
		"invalid full name: control characters, invalid UTF-8, leading or trailing spaces, "
		"or longer than 256 bytes");
	up.full_name = NULL;
	REFUSED(directory_update_user(dir, "ghost", &up, &next, &error),
		"no user ghost");

	/* extra addresses */
	r = directory_add_user_alias(dir, "john", "J.Smith", &next, &error);
	dir = ok(dir, r, next, error);
	assert_string_equal(directory_find_user(dir, "john")->aliases.items[0], "J.Smith@example.com");
	REFUSED(directory_add_user_alias(dir, "john", "j.smith", &next, &error),
		"j.smith@example.com is already an extra address of john@example.com");
	REFUSED(directory_add_user_alias(dir, "mary", "j.smith", &next, &error),
		"address j.smith@example.com is already taken by an extra address of user "
		"john@example.com");
	REFUSED(directory_add_user_alias(dir, "mary", "john", &next, &error),
		"address john@example.com is already taken by user john@example.com");
	REFUSED(directory_add_user_alias(dir, "mary", "m@remote.example", &next, &error),
		"user mary: extra address m@remote.example is not in one of our domains");
	REFUSED(directory_add_user_alias(dir, "mary", "../m", &next, &error),
		"invalid extra address '../m': starts or ends with a dot");
	r = directory_add_user_alias(dir, "mary", "mary@other.org", &next, &error);
	dir = ok(dir, r, next, error);
	REFUSED(directory_remove_user_alias(dir, "mary", "nope", &next, &error),
		"nope@example.com is not an extra address of user mary@example.com");
	r = directory_remove_user_alias(dir, "mary", "MARY@other.org", &next, &error);
	dir = ok(dir, r, next, error);
	assert_int_equal(directory_find_user(dir, "mary")->aliases.count, 0);
	assert_saves(dir);
	directory_unref(&dir);
}

static void test_forward_and_autoreply(void **state)
{
	struct directory *dir = dt_parse(base, NULL), *next = NULL;
	const char *targets[] = { "mary", "john@home.example" };
	const char *loop[] = { "john" };
	const char *ghost[] = { "ghost" };
	const char *twice[] = { "a@x.example", "A@x.example" };
	struct dir_autoreply_spec spec = {
		.enabled = true, .subject = "  Away  ", .text = "Back soon.\r\nRegards,\r\n  John\r\n",
		.start = "2025-07-01", .end = "2025-07-14",
	};
	const struct dir_user *u;
	char *error = NULL;
	int r;

	r = directory_set_forward(dir, "john", targets, 2, true, &next, &error);
	dir = ok(dir, r, next, error);
	u = directory_find_user(dir, "john");
	assert_int_equal(u->forward.count, 2);
	assert_string_equal(u->forward.items[0], "mary@example.com");
	assert_true(u->forward_keep_copy);
	/* mary forwarding back to john would loop */
	REFUSED(directory_set_forward(dir, "mary", loop, 1, false, &next, &error),
		"refused: mary@example.com would loop: mail loop: mary@example.com -> "
		"john@example.com -> mary@example.com");
	REFUSED(directory_set_forward(dir, "mary", ghost, 1, false, &next, &error),
		"forwarding target ghost@example.com does not exist");
	REFUSED(directory_set_forward(dir, "mary", twice, 2, false, &next, &error),
		"forwarding target A@x.example given twice");
	r = directory_set_forward(dir, "john", NULL, 0, true, &next, &error);
	dir = ok(dir, r, next, error);
	assert_int_equal(directory_find_user(dir, "john")->forward.count, 0);
	assert_false(directory_find_user(dir, "john")->forward_keep_copy);

	r = directory_set_autoreply(dir, "john", &spec, &next, &error);
	dir = ok(dir, r, next, error);
	u = directory_find_user(dir, "john");
	assert_true(u->autoreply.enabled);
	assert_string_equal(u->autoreply.subject, "Away");
	assert_string_equal(u->autoreply.text, "Back soon.\nRegards,\n  John");
	assert_int_equal(u->autoreply.start_time, 1751328000);
	assert_int_equal(u->autoreply.end_time, 1751328000 + 14 * 86400);
	assert_saves(dir);
	/* off keeps the text; "" clears a date */
	spec = (struct dir_autoreply_spec){ .enabled = false, .start = "" };
	r = directory_set_autoreply(dir, "john", &spec, &next, &error);
	dir = ok(dir, r, next, error);
	u = directory_find_user(dir, "john");
	assert_false(u->autoreply.enabled);
	assert_string_equal(u->autoreply.text, "Back soon.\nRegards,\n  John");
	assert_null(u->autoreply.start);
	assert_int_equal(u->autoreply.start_time, 0);
	assert_string_equal(u->autoreply.end, "2025-07-14");
	spec = (struct dir_autoreply_spec){ .enabled = true, .start = "2025-08-01" };
	REFUSED(directory_set_autoreply(dir, "john", &spec, &next, &error),
		"auto-reply ends before it starts");
	spec = (struct dir_autoreply_spec){ .enabled = true, .end = "soon" };
	REFUSED(directory_set_autoreply(dir, "john", &spec, &next, &error),
		"auto-reply end 'soon' is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)");
	spec = (struct dir_autoreply_spec){ .enabled = true, .subject = "a\nb" };
	REFUSED(directory_set_autoreply(dir, "john", &spec, &next, &error),
		"auto-reply subject: contains control characters");
	spec = (struct dir_autoreply_spec){ .enabled = true, .text = "a\x01" "b" };
	REFUSED(directory_set_autoreply(dir, "john", &spec, &next, &error),
		"auto-reply text: contains control characters");
	assert_saves(dir);
	directory_unref(&dir);
}

/* ---- secrets ------------------------------------------------------------ */

static int hook_calls;
static bool hook_fails;

static int test_hook(const char *user, const char *domain, const char *password,
		     struct dir_secret **secrets_r, size_t *n_r, char **error_r)
{
	struct dir_secret *s;

	hook_calls++;
	if (hook_fails) {
		*error_r = xstrdup("no entropy today");
		return -1;
	}
	s = xcalloc(2, sizeof(*s));
	s[0].mechanism = xstrdup("SCRAM-SHA-256");
	s[0].value = xasprintf("scram:%s@%s:%zu", user, domain, strlen(password));
	s[1].mechanism = xstrdup("CRAM-MD5");
	s[1].value = xasprintf("cram:%s", user);
	*secrets_r = s;
	*n_r = 2;
	return 0;
}

static int bad_hook(const char *user, const char *domain, const char *password,
		    struct dir_secret **secrets_r, size_t *n_r, char **error_r)
{
	struct dir_secret *s = xcalloc(1, sizeof(*s));

	s[0].mechanism = xstrdup("SCRAM-SHA-256");
	s[0].value = xstrdup(password);   /* with a space: must be refused */
	*secrets_r = s;
	*n_r = 1;
	return 0;
}

static void test_secrets(void **state)
{
	struct directory *dir = dt_parse(base, NULL), *next = NULL;
	struct dir_user_spec spec = { .domain = "other.org", .name = "carol", .password = "pw 1" };
	struct dir_secret given[] = {
		{ .mechanism = "NTLM", .value = "8846F7EAEE8FB117AD06BDD830B7586C" },
		{ .mechanism = "DIGEST-MD5", .value = "abcdef" },
	};
	const struct dir_user *u;
	char *error = NULL, *text;
	int r;

	/* no hook: the hash only */
	r = directory_add_user(dir, &spec, &next, &error);
	dir = ok(dir, r, next, error);
	u = directory_find_user(dir, "carol@other.org");
	assert_int_equal(u->secret_count, 0);
	assert_true(directory_verify_password(u, "pw 1"));

	directory_set_secrets_hook(test_hook);
	hook_calls = 0;
	spec.name = "dave";
	r = directory_add_user(dir, &spec, &next, &error);
	dir = ok(dir, r, next, error);
	assert_int_equal(hook_calls, 1);
	u = directory_find_user(dir, "dave@other.org");
	assert_int_equal(u->secret_count, 2);
	assert_string_equal(directory_user_secret(u, "SCRAM-SHA-256")->value, "scram:dave@other.org:4");
	/* a new password replaces them */
	r = directory_set_password(dir, "dave@other.org", "longer pw", &next, &error);
	dir = ok(dir, r, next, error);
	u = directory_find_user(dir, "dave@other.org");
	assert_string_equal(directory_user_secret(u, "SCRAM-SHA-256")->value, "scram:dave@other.org:9");
	assert_true(directory_verify_password(u, "longer pw"));
	text = directory_format(dir);
	assert_non_null(strstr(text, "<secret mechanism=\"CRAM-MD5\">cram:dave</secret>"));
	assert_null(strstr(text, "longer pw"));
	free(text);
	assert_saves(dir);

	/* a failing hook fails the change */
	hook_fails = true;
	REFUSED(directory_set_password(dir, "dave@other.org", "x", &next, &error),
		"cannot derive the password's secrets: no entropy today");
	spec.name = "erin";
	REFUSED(directory_add_user(dir, &spec, &next, &error),
		"cannot derive the password's secrets: no entropy today");
	hook_fails = false;
	/* what a hook returns is checked; the value is never echoed */
	directory_set_secrets_hook(bad_hook);
	REFUSED(directory_set_password(dir, "dave@other.org", "two words", &next, &error),
		"the secrets hook returned an invalid or duplicate secret");

	/* without a hook a new password drops the old secrets */
	directory_set_secrets_hook(NULL);
	r = directory_set_password(dir, "dave@other.org", "again", &next, &error);
	dir = ok(dir, r, next, error);
	assert_int_equal(directory_find_user(dir, "dave@other.org")->secret_count, 0);

	/* set_credentials: the auth module's way in */
	r = directory_set_credentials(dir, "john", DT_HASH, given, 2, &next, &error);
	dir = ok(dir, r, next, error);
	u = directory_find_user(dir, "john");
	assert_string_equal(u->password_hash, DT_HASH);
	assert_string_equal(u->password_scheme, "yescrypt");
	assert_string_equal(directory_user_secret(u, "ntlm")->value, "8846F7EAEE8FB117AD06BDD830B7586C");
	assert_saves(dir);
	r = directory_set_credentials(dir, "john", DT_HASH, NULL, 0, &next, &error);
	dir = ok(dir, r, next, error);
	assert_int_equal(directory_find_user(dir, "john")->secret_count, 0);
	REFUSED(directory_set_credentials(dir, "john", "hunter2-plaintext", given, 2, &next, &error),
		"password is not a crypt hash (users.cfg holds hashes, never plaintext)");
	REFUSED(directory_set_credentials(dir, "john", NULL, given, 2, &next, &error),
		"no password hash");
	given[1].mechanism = "ntlm";
	REFUSED(directory_set_credentials(dir, "john", DT_HASH, given, 2, &next, &error),
		"invalid secret mechanism name (A-Z, 0-9, '-', '_')");
	given[1].mechanism = "NTLM";
	REFUSED(directory_set_credentials(dir, "john", DT_HASH, given, 2, &next, &error),
		"secret for NTLM given twice");
	given[1].mechanism = "PLAIN";
	given[1].value = "with space";
	REFUSED(directory_set_credentials(dir, "john", DT_HASH, given, 2, &next, &error),
		"secret for PLAIN is empty, too long or not printable ASCII");
	REFUSED(directory_set_credentials(dir, "ghost", DT_HASH, given, 0, &next, &error),
		"no user ghost");
	directory_unref(&dir);
}

/* ---- aliases, groups, lists --------------------------------------------- */

static void test_aliases(void **state)
{
	struct directory *dir = dt_parse(base, NULL), *next = NULL;
	const char *t1[] = { "john", "ops@remote.example" };
	const char *t2[] = { "mary" };
	const char *t3[] = { "postmaster" };
	const char *bad[] = { "x@@y" };
	const char *ghost[] = { "ghost" };
	const struct dir_alias *a;
	char *error = NULL;
	int r;

	r = directory_add_alias(dir, "postmaster", t1, 2, &next, &error);
	dir = ok(dir, r, next, error);
	a = directory_find_alias(dir, "postmaster@example.com");
	assert_int_equal(a->targets.count, 2);
	assert_string_equal(a->targets.items[0], "john@example.com");
	/* adding to an existing alias */
	r = directory_add_alias(dir, "PostMaster@example.com", t2, 1, &next, &error);
	dir = ok(dir, r, next, error);
	assert_int_equal(directory_find_alias(dir, "postmaster")->targets.count, 3);
	REFUSED(directory_add_alias(dir, "postmaster", t2, 1, &next, &error),
		"mary@example.com is already a target of postmaster@example.com");
	REFUSED(directory_add_alias(dir, "postmaster", NULL, 0, &next, &error),
		"alias postmaster@example.com already exists");
	REFUSED(directory_add_alias(dir, "new", NULL, 0, &next, &error),
		"alias new@example.com needs at least one target");
	REFUSED(directory_add_alias(dir, "john", t2, 1, &next, &error),
		"address john@example.com is already taken by user john@example.com");
	REFUSED(directory_add_alias(dir, "x@elsewhere.example", t2, 1, &next, &error),
		"elsewhere.example is not one of our domains (add it with domain add)");
	REFUSED(directory_add_alias(dir, "..", t2, 1, &next, &error),
		"invalid address '..': starts or ends with a dot");
	REFUSED(directory_add_alias(dir, "a/b@example.com", t2, 1, &next, &error),
		"invalid address 'a/b@example.com': contains '/'");
	REFUSED(directory_add_alias(dir, "new", bad, 1, &next, &error),
		"invalid target 'x@@y': more than one '@'");
	REFUSED(directory_add_alias(dir, "new", ghost, 1, &next, &error),
		"target ghost@example.com does not exist");
	REFUSED(directory_add_alias(dir, "postmaster", t3, 1, &next, &error),
		"refused: postmaster@example.com would loop: mail loop: postmaster@example.com -> "
		"postmaster@example.com");
	/* removing targets, then the alias */
	r = directory_remove_alias(dir, "postmaster", t2, 1, &next, &error);
	dir = ok(dir, r, next, error);
	assert_int_equal(directory_find_alias(dir, "postmaster")->targets.count, 2);
	REFUSED(directory_remove_alias(dir, "postmaster", t2, 1, &next, &error),
		"mary@example.com is not a target of postmaster@example.com");
	REFUSED(directory_remove_alias(dir, "nobody", NULL, 0, &next, &error),
		"no alias nobody");
	assert_saves(dir);
	r = directory_remove_alias(dir, "postmaster", t1, 2, &next, &error);  /* last ones */
	dir = ok(dir, r, next, error);
	assert_null(directory_find_alias(dir, "postmaster"));
	r = directory_add_alias(dir, "postmaster", t1, 2, &next, &error);
	dir = ok(dir, r, next, error);
	r = directory_remove_alias(dir, "postmaster", NULL, 0, &next, &error);
	dir = ok(dir, r, next, error);
	assert_null(directory_find_alias(dir, "postmaster"));
	directory_unref(&dir);
}

static void test_groups(void **state)
{
	struct directory *dir = dt_parse(base, NULL), *next = NULL;
	const char *m1[] = { "john", "bob@other.org" };
	const char *m2[] = { "mary" };
	const char *remote[] = { "x@remote.example" };
	const char *self[] = { "staff" };
	char *error = NULL;
	int r;

	r = directory_add_group(dir, "staff", NULL, 0, &next, &error);
	dir = ok(dir, r, next, error);
	assert_int_equal(directory_find_group(dir, "staff")->members.count, 0);
	REFUSED(directory_add_group(dir, "staff", NULL, 0, &next, &error),
		"group staff@example.com already exists");
	r = directory_add_group(dir, "staff", m1, 2, &next, &error);
	dir = ok(dir, r, next, error);
	r = directory_add_group(dir, "staff", m2, 1, &next, &error);
	dir = ok(dir, r, next, error);
	assert_int_equal(directory_find_group(dir, "staff")->members.count, 3);
	REFUSED(directory_add_group(dir, "staff", m2, 1, &next, &error),
		"mary@example.com is already a member of staff@example.com");
	REFUSED(directory_add_group(dir, "other", remote, 1, &next, &error),
		"group other: member x@remote.example is not a local address (a group holds local "
		"addresses; use an alias for others)");
	REFUSED(directory_add_group(dir, "staff", self, 1, &next, &error),
		"refused: staff@example.com would loop: mail loop: staff@example.com -> "
		"staff@example.com");
	REFUSED(directory_add_group(dir, "mary", NULL, 0, &next, &error),
		"address mary@example.com is already taken by user mary@example.com");
	r = directory_remove_group(dir, "staff", m2, 1, &next, &error);
	dir = ok(dir, r, next, error);
	assert_int_equal(directory_find_group(dir, "staff")->members.count, 2);
	assert_saves(dir);
	/* removing a user takes them out of groups */
	r = directory_remove_user(dir, "bob@other.org", &next, &error);
	dir = ok(dir, r, next, error);
	assert_int_equal(directory_find_group(dir, "staff")->members.count, 1);
	r = directory_remove_group(dir, "staff", NULL, 0, &next, &error);
	dir = ok(dir, r, next, error);
	assert_null(directory_find_group(dir, "staff"));
	REFUSED(directory_remove_group(dir, "staff", NULL, 0, &next, &error),
		"no group staff");
	directory_unref(&dir);
}

static void test_lists(void **state)
{
	struct directory *dir = dt_parse(base, NULL), *next = NULL;
	const char *members[] = { "john", "Friend@Remote.example" };
	const char *mods[] = { "mary" };
	struct dir_list_spec spec = { .address = "news", .posting = -1, .reply_to = -1,
				      .subscription_open = -1 };
	const struct dir_list *l;
	char *error = NULL;
	int r;

	r = directory_add_list(dir, &spec, &next, &error);
	dir = ok(dir, r, next, error);
	l = directory_find_list(dir, "news");
	assert_int_equal(l->posting, DIR_LIST_POST_MEMBERS);
	assert_true(l->subscription_open);
	REFUSED(directory_add_list(dir, &spec, &next, &error),
		"list news@example.com already exists");
	spec.posting = DIR_LIST_POST_MODERATED;
	REFUSED(directory_add_list(dir, &spec, &next, &error),
		"list news: posting is moderated but there is no <moderator>");
	spec.moderators = mods;
	spec.moderator_count = 1;
	spec.members = members;
	spec.member_count = 2;
	spec.reply_to = DIR_LIST_REPLY_TO_LIST;
	spec.description = "News";
	spec.subscription_open = 0;
	r = directory_add_list(dir, &spec, &next, &error);
	dir = ok(dir, r, next, error);
	l = directory_find_list(dir, "news");
	assert_int_equal(l->posting, DIR_LIST_POST_MODERATED);
	assert_int_equal(l->reply_to, DIR_LIST_REPLY_TO_LIST);
	assert_false(l->subscription_open);
	assert_int_equal(l->members.count, 2);
	assert_string_equal(l->members.items[1], "Friend@remote.example");
	assert_true(directory_list_has_moderator(dir, l, "MARY@example.com"));
	REFUSED(directory_add_list(dir, &spec, &next, &error),
		"john@example.com is already a member of news@example.com");
	/* the list's command addresses are taken */
	{
		struct dir_user_spec u = { .name = "news-subscribe" };

		REFUSED(directory_add_user(dir, &u, &next, &error),
			"address news-subscribe@example.com is already taken by the subscribe "
			"address of list news@example.com");
	}
	assert_saves(dir);
	/* the last moderator of a moderated list cannot just go */
	REFUSED(directory_remove_user(dir, "mary", &next, &error),
		"user mary@example.com is the only moderator of list news@example.com; add another "
		"moderator first");
	REFUSED(directory_remove_list(dir, "news", NULL, 0, mods, 1, &next, &error),
		"list news: posting is moderated but there is no <moderator>");
	/* removing a user takes them off the list */
	r = directory_remove_user(dir, "john", &next, &error);
	dir = ok(dir, r, next, error);
	assert_int_equal(directory_find_list(dir, "news")->members.count, 1);
	r = directory_remove_list(dir, "news", members + 1, 1, NULL, 0, &next, &error);
	dir = ok(dir, r, next, error);
	assert_int_equal(directory_find_list(dir, "news")->members.count, 0);
	REFUSED(directory_remove_list(dir, "news", members + 1, 1, NULL, 0, &next, &error),
		"Friend@remote.example is not a member of news@example.com");
	r = directory_remove_list(dir, "news", NULL, 0, NULL, 0, &next, &error);
	dir = ok(dir, r, next, error);
	assert_null(directory_find_list(dir, "news"));
	directory_unref(&dir);
}

/* Removing a domain that others point at, and then everything: the
 * snapshots stay consistent and load. */
static void test_old_snapshots_untouched(void **state)
{
	struct directory *d0 = dt_parse(base, NULL), *d1 = NULL, *d2 = NULL;
	const char *t[] = { "john" };
	char *error = NULL, *before = directory_format(d0), *after;

	assert_int_equal(directory_add_alias(d0, "a", t, 1, &d1, &error), 0);
	assert_int_equal(directory_remove_user(d1, "john", &d2, &error), 0);
	after = directory_format(d0);
	assert_string_equal(before, after);
	assert_non_null(directory_find_alias(d1, "a"));
	/* the alias stays and now resolves to nothing */
	assert_non_null(directory_find_alias(d2, "a"));
	{
		struct dir_resolution res;

		directory_resolve(d2, "a@example.com", '+', &res);
		assert_int_equal(res.kind, DIR_RESOLVE_UNKNOWN);
		directory_resolution_free(&res);
	}
	free(before);
	free(after);
	directory_unref(&d0);
	directory_unref(&d1);
	directory_unref(&d2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_remove_domain_force),
		cmocka_unit_test(test_user_properties),
		cmocka_unit_test(test_forward_and_autoreply),
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_aliases),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_old_snapshots_untouched),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
