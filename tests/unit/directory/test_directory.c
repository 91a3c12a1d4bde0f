/*
 * Unit tests for users.cfg (src/directory/directory.c): names, parsing and
 * its errors and warnings, the primary-domain login rule, password hashes,
 * writing and round trips, the mutators, and the fixture files
 * tests/fixtures/config/users-*.cfg.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/str.h"
#include "directory/directory.h"

/* ---- helpers ------------------------------------------------------------ */

struct warnings {
	char *list[16];
	size_t count;
};

static void collect_warning(const char *warning, void *context)
{
	struct warnings *w = context;

	if (w->count < 16)
		w->list[w->count++] = xstrdup(warning);
}

static void warnings_free(struct warnings *w)
{
	for (size_t i = 0; i < w->count; i++)
		free(w->list[i]);
	w->count = 0;
}

static struct directory *must_parse(const char *text, struct warnings *w)
{
	struct warnings local = { .count = 0 };
	struct directory *dir = NULL;
	char *error = NULL;

	if (directory_parse("u.cfg", text, strlen(text), collect_warning, w != NULL ? w : &local,
			    &dir, &error) < 0)
		fail_msg("error: %s\nin:\n%s", error, text);
	warnings_free(&local);
	return dir;
}

static char *must_fail(const char *text)
{
	struct directory *dir = NULL;
	char *error = NULL;

	if (directory_parse("u.cfg", text, strlen(text), NULL, NULL, &dir, &error) == 0)
		fail_msg("parsed, expected an error:\n%s", text);
	assert_null(dir);
	assert_non_null(error);
	return error;
}

static char *fixture_path(const char *rel)
{
	const char *data = getenv("PETREL_TEST_DATA");

	return xasprintf("%s/%s", data != NULL ? data : "tests/fixtures", rel);
}

/* The ```xml block after "<!-- EXAMPLE: NAME -->" in docs/configuration.md;
 * newly allocated. */
static char *docs_example(const char *name)
{
	char *path = fixture_path("../../docs/configuration.md");
	char *doc, *marker = xasprintf("<!-- EXAMPLE: %s -->\n```xml\n", name);
	char *start, *end, *block;
	size_t len;

	if (fileio_read_all(path, 1 << 22, &doc, &len) < 0)
		fail_msg("%s: cannot read", path);
	start = strstr(doc, marker);
	if (start == NULL)
		fail_msg("%s: no example marked %s", path, name);
	start += strlen(marker);
	end = strstr(start, "```");
	assert_non_null(end);
	block = xstrndup(start, (size_t)(end - start));
	free(marker);
	free(doc);
	free(path);
	return block;
}

static struct directory *load_fixture(const char *name)
{
	char *path = fixture_path(name), *data, *error = NULL;
	struct directory *dir = NULL;
	size_t len;

	assert_int_equal(fileio_read_all(path, CFG_MAX_FILE_SIZE, &data, &len), 0);
	if (directory_parse(path, data, len, NULL, NULL, &dir, &error) < 0)
		fail_msg("%s", error);
	free(data);
	free(path);
	return dir;
}

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/petrel-test-dir-XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	return xstrdup(tmpl);
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			char *p = xasprintf("%s/%s", dir, e->d_name);

			unlink(p);
			free(p);
		}
	}
	closedir(d);
	rmdir(dir);
}

/* ---- names -------------------------------------------------------------- */

static void test_user_names(void **state)
{
	static const char *const good[] = {
		"john", "John.Smith", "a", "x_y-z+tag", "o'brien", "1234",
		"a234567890123456789012345678901234567890123456789012345678901234",  /* 64 */
		"!#$%&'*+-=?^_`{|}~",
	};
	static const struct { const char *name; const char *reason; } bad[] = {
		{ "", "empty" },
		{ "a2345678901234567890123456789012345678901234567890123456789012345",
		  "longer than 64 characters" },
		{ "a/b", "contains '/'" },
		{ "..", "starts or ends with a dot" },
		{ ".hidden", "starts or ends with a dot" },
		{ "end.", "starts or ends with a dot" },
		{ "a..b", "contains '..'" },
		{ "john@example.com", "contains '@'" },
		{ "a\tb", "contains control characters" },
		{ "a\x7f", "contains control characters" },
		{ "jos\xc3\xa9", "contains non-ASCII characters" },
		{ "a b", "contains characters not allowed in a mail address" },
		{ "a\\b", "contains characters not allowed in a mail address" },
		{ "a\"b", "contains characters not allowed in a mail address" },
		{ "a:b", "contains characters not allowed in a mail address" },
		{ "<a>", "contains characters not allowed in a mail address" },
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const char *reason = "unset";

		if (!directory_valid_user_name(good[i], &reason))
			fail_msg("rejected '%s': %s", good[i], reason);
		assert_null(reason);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *reason = NULL;

		if (directory_valid_user_name(bad[i].name, &reason))
			fail_msg("accepted '%s'", bad[i].name);
		assert_string_equal(reason, bad[i].reason);
	}
	assert_true(directory_valid_domain_name("example.com"));
	assert_false(directory_valid_domain_name("example..com"));
	assert_false(directory_valid_domain_name("ex ample.com"));
}

/* ---- parsing and lookups ------------------------------------------------ */

static void test_primary_domain_rule(void **state)
{
	struct directory *dir = load_fixture("config/users-good-two-domains.cfg");
	const struct dir_user *u;

	assert_int_equal(dir->domain_count, 2);
	assert_int_equal(dir->user_count, 5);
	assert_string_equal(dir->primary->name, "example.com");

	/* primary domain: bare name or full address, any case */
	u = directory_find_user(dir, "john");
	assert_non_null(u);
	assert_string_equal(u->domain->name, "example.com");
	assert_string_equal(u->full_name, "John Smith & Sons");
	assert_ptr_equal(directory_find_user(dir, "john@example.com"), u);
	assert_ptr_equal(directory_find_user(dir, "JOHN@Example.COM"), u);
	assert_ptr_equal(directory_find_user(dir, "John"), u);
	assert_int_equal(u->quota_storage, 500ull << 20);
	assert_int_equal(u->quota_messages, 100000);
	assert_false(u->admin);
	assert_true(u->enabled);

	/* the other john: only with his domain */
	u = directory_find_user(dir, "john@other.org");
	assert_non_null(u);
	assert_string_equal(u->domain->name, "Other.ORG");
	assert_string_equal(u->name, "John");
	assert_string_equal(u->address, "john@other.org");
	assert_ptr_equal(directory_find_user(dir, "JOHN@OTHER.org"), u);

	/* mary exists only in the other domain: no bare-name login */
	assert_null(directory_find_user(dir, "mary"));
	assert_non_null(directory_find_user(dir, "mary@other.org"));
	assert_null(directory_find_user(dir, "mary@example.com"));

	/* unknown users and junk */
	assert_null(directory_find_user(dir, "nobody"));
	assert_null(directory_find_user(dir, "john@unknown.net"));
	assert_null(directory_find_user(dir, ""));
	assert_null(directory_find_user(dir, NULL));
	assert_null(directory_find_user(dir, "john@"));
	assert_null(directory_find_user(dir, "@example.com"));
	assert_null(directory_find_user(dir, "john@example.com@example.com"));

	u = directory_find_user(dir, "admin");
	assert_true(u->admin);
	assert_string_equal(u->password_scheme, "yescrypt");

	u = directory_find_user(dir, "nopass");
	assert_false(u->enabled);
	assert_null(u->password_hash);
	assert_false(directory_verify_password(u, "anything"));

	assert_non_null(directory_find_domain(dir, "other.org"));
	assert_non_null(directory_find_domain(dir, "EXAMPLE.com"));
	assert_null(directory_find_domain(dir, "example.net"));
	directory_unref(&dir);
}

static void test_verify_fixture_passwords(void **state)
{
	struct directory *dir = load_fixture("config/users-good-two-domains.cfg");
	static const struct { const char *login, *password; } rows[] = {
		{ "admin", "admin-secret" },
		{ "john", "john-example" },
		{ "john@other.org", "john-other" },
		{ "mary@other.org", "mary-other" },   /* sha512-crypt, scheme "crypt" */
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct dir_user *u = directory_find_user(dir, rows[i].login);

		assert_non_null(u);
		assert_true(directory_verify_password(u, rows[i].password));
		/* each john has his own password */
		for (size_t j = 0; j < sizeof(rows) / sizeof(rows[0]); j++) {
			if (j != i)
				assert_false(directory_verify_password(u, rows[j].password));
		}
		assert_false(directory_verify_password(u, ""));
		assert_false(directory_verify_password(u, NULL));
	}
	/* unknown user: false, after the same work */
	assert_false(directory_verify_password(NULL, "admin-secret"));
	directory_unref(&dir);
}

static void test_known_answer(void **state)
{
	/* SHA-crypt specification test vector ("Hello world!", salt "saltstring"). */
	const char *text =
		"<users><domain name=\"example.com\" primary=\"yes\"><user name=\"u\">"
		"<password scheme=\"crypt\">$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnI"
		"FNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1</password></user></domain></users>";
	struct directory *dir = must_parse(text, NULL);
	const struct dir_user *u = directory_find_user(dir, "u");

	assert_true(directory_verify_password(u, "Hello world!"));
	assert_false(directory_verify_password(u, "Hello world"));
	directory_unref(&dir);
}

static void test_hash_password(void **state)
{
	const char *pw = "correct horse battery staple";
	char *h1 = NULL, *h2 = NULL, *error = NULL;
	struct dir_user u = { .password_hash = NULL };
	char *long_pw;

	assert_int_equal(directory_hash_password(pw, &h1, &error), 0);
	assert_int_equal(directory_hash_password(pw, &h2, &error), 0);
	assert_true(str_has_prefix(h1, "$y$"));
	assert_string_not_equal(h1, pw);
	assert_null(strstr(h1, pw));
	assert_null(strstr(h1, "horse"));
	assert_string_not_equal(h1, h2);   /* fresh salt each time */
	u.password_hash = h1;
	assert_true(directory_verify_password(&u, pw));
	assert_false(directory_verify_password(&u, "correct horse battery stapl"));
	assert_false(directory_verify_password(&u, "Correct horse battery staple"));
	u.password_hash = h2;
	assert_true(directory_verify_password(&u, pw));
	free(h1);
	free(h2);

	assert_int_equal(directory_hash_password("", &h1, &error), -1);
	assert_string_equal(error, "empty password");
	free(error);
	long_pw = xmalloc(DIRECTORY_MAX_PASSWORD + 2);
	memset(long_pw, 'a', DIRECTORY_MAX_PASSWORD + 1);
	long_pw[DIRECTORY_MAX_PASSWORD + 1] = '\0';
	assert_int_equal(directory_hash_password(long_pw, &h1, &error), -1);
	free(error);
	free(long_pw);
}

struct error_case {
	const char *name;
	const char *text;
	const char *error;
};

#define D1 "<users><domain name=\"example.com\" primary=\"yes\">\n"
#define D1_END "</domain></users>"
#define HASH "$y$j9T$ckHhsDBZkAEX9G1lm9GDU0$68tl1YTEixHTCZFsFyLh8MNJMcIXBSaZPMB8B9Btos0"

static const struct error_case error_cases[] = {
	{ "wrong root", "<petrel/>", "u.cfg:1: root element is <petrel>, expected <users>" },
	{ "doctype",
	  "<!DOCTYPE users [<!ENTITY a \"b\">]>\n<users/>",
	  "u.cfg:1: DOCTYPE not allowed (configuration files take no DTD or entities)" },
	{ "malformed", "<users>\n<domain>\n</users>",
	  "u.cfg:3: Opening and ending tag mismatch: domain line 2 and users" },
	{ "domain without name", "<users>\n<domain primary=\"yes\"/></users>",
	  "u.cfg:2: <domain> without a name attribute" },
	{ "invalid domain", "<users>\n<domain name=\"exa mple.com\" primary=\"yes\"/></users>",
	  "u.cfg:2: invalid domain name 'exa mple.com'" },
	{ "duplicate domain, any case",
	  "<users>\n<domain name=\"example.com\" primary=\"yes\"/>\n<domain name=\"EXAMPLE.COM\"/></users>",
	  "u.cfg:3: domain EXAMPLE.COM given twice (first at line 2)" },
	{ "bad primary", "<users>\n<domain name=\"example.com\" primary=\"maybe\"/></users>",
	  "u.cfg:2: domain example.com: primary 'maybe' is not yes or no" },
	{ "no primary", "<users>\n<domain name=\"example.com\"/></users>",
	  "u.cfg:2: no primary domain: mark exactly one <domain primary=\"yes\">" },
	{ "two primaries",
	  "<users>\n<domain name=\"a.example\" primary=\"yes\"/>\n<domain name=\"b.example\" primary=\"1\"/></users>",
	  "u.cfg:3: domain b.example is primary, but so is a.example (line 2): exactly one domain is primary" },
	{ "user without name", D1 "<user/>" D1_END, "u.cfg:2: <user> without a name attribute" },
	{ "slash", D1 "<user name=\"a/b\"/>" D1_END, "u.cfg:2: invalid user name 'a/b': contains '/'" },
	{ "dotdot", D1 "<user name=\"..\"/>" D1_END,
	  "u.cfg:2: invalid user name '..': starts or ends with a dot" },
	{ "at", D1 "<user name=\"a@b\"/>" D1_END, "u.cfg:2: invalid user name 'a@b': contains '@'" },
	{ "store's own", D1 "<user name=\"#public\"/>" D1_END,
	  "u.cfg:2: invalid user name '#public': starts with '#' (reserved: #public owns the public folders)" },
	{ "control", D1 "<user name=\"a&#9;b\"/>" D1_END,
	  "u.cfg:2: invalid user name 'a\\tb': contains control characters" },
	{ "too long",
	  D1 "<user name=\"a2345678901234567890123456789012345678901234567890123456789012345\"/>" D1_END,
	  "u.cfg:2: invalid user name 'a234567890123456789012345678901234567890123456789012345678901234...': "
	  "longer than 64 characters" },
	{ "duplicate user, any case", D1 "<user name=\"john\"/>\n\n<user name=\"John\"/>" D1_END,
	  "u.cfg:4: user John given twice in domain example.com (first at line 2)" },
	{ "plaintext password", D1 "<user name=\"j\">\n<password>secret123</password></user>" D1_END,
	  "u.cfg:3: user j: password is not a crypt hash (users.cfg holds hashes, never plaintext)" },
	{ "plaintext with yescrypt scheme",
	  D1 "<user name=\"j\">\n<password scheme=\"yescrypt\">$y$nothash</password></user>" D1_END,
	  "u.cfg:3: user j: password is not a crypt hash (users.cfg holds hashes, never plaintext)" },
	{ "short yescrypt digest",
	  D1 "<user name=\"j\">\n<password>$y$j9T$ckHhsDBZkAEX9G1lm9GDU0$68tl1YTEixHTCZFsFyLh8MNJMcIXBSaZPMB8B9Bto</password></user>" D1_END,
	  "u.cfg:3: user j: password is not a crypt hash (users.cfg holds hashes, never plaintext)" },
	{ "unknown method",
	  D1 "<user name=\"j\">\n<password>$zz$abcdefgh$68tl1YTEixHTCZFsFyLh8MNJMcIXBSaZPMB8B9Btos0</password></user>" D1_END,
	  "u.cfg:3: user j: password is not a crypt hash (users.cfg holds hashes, never plaintext)" },
	{ "empty password", D1 "<user name=\"j\">\n<password scheme=\"yescrypt\"></password></user>" D1_END,
	  "u.cfg:3: user j: password is not a crypt hash (users.cfg holds hashes, never plaintext)" },
	{ "scheme mismatch",
	  D1 "<user name=\"j\">\n<password scheme=\"yescrypt\">$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1</password></user>" D1_END,
	  "u.cfg:3: user j: password scheme is yescrypt but the hash is not a yescrypt hash ($y$)" },
	{ "unknown scheme",
	  D1 "<user name=\"j\">\n<password scheme=\"plain\">" HASH "</password></user>" D1_END,
	  "u.cfg:3: user j: unknown password scheme (yescrypt or crypt)" },
	{ "password twice",
	  D1 "<user name=\"j\">\n<password>" HASH "</password>\n<password>" HASH "</password></user>" D1_END,
	  "u.cfg:4: user j: <password> given twice (first at line 3)" },
	{ "bad admin", D1 "<user name=\"j\">\n<admin>sure</admin></user>" D1_END,
	  "u.cfg:3: user j: <admin> 'sure' is not yes or no" },
	{ "enabled twice", D1 "<user name=\"j\">\n<enabled>yes</enabled><enabled>no</enabled></user>" D1_END,
	  "u.cfg:3: user j: <enabled> given twice (first at line 3)" },
	{ "bad quota", D1 "<user name=\"j\">\n<quota storage=\"-1\"/></user>" D1_END,
	  "u.cfg:3: user j: quota storage: '-1' is not a size (a number with an optional K, M, G or T suffix)" },
	{ "quota overflow", D1 "<user name=\"j\">\n<quota storage=\"99999999999T\"/></user>" D1_END,
	  "u.cfg:3: user j: quota storage: value 99999999999T out of range 0..9223372036854775807" },
	{ "bad messages", D1 "<user name=\"j\">\n<quota messages=\"1K\"/></user>" D1_END,
	  "u.cfg:3: user j: quota messages: '1K' is not an integer" },
	{ "full name control", D1 "<user name=\"j\">\n<full-name>a&#9;b</full-name></user>" D1_END,
	  "u.cfg:3: user j: full name contains control characters" },
};

static void test_error_table(void **state)
{
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		char *error = must_fail(error_cases[i].text);

		if (strcmp(error, error_cases[i].error) != 0)
			fail_msg("%s:\n got      '%s'\n expected '%s'", error_cases[i].name, error,
				 error_cases[i].error);
		/* the plaintext never appears in a message */
		assert_null(strstr(error, "secret123"));
		free(error);
	}
}

static void test_warnings(void **state)
{
	const char *text =
		"<users>\n"
		"  <group name=\"staff\"/>\n"
		"  <domain name=\"example.com\" primary=\"yes\" colour=\"red\">\n"
		"    <mailbox name=\"postmaster\"/>\n"
		"    <user name=\"j\" uid=\"5\">\n"
		"      <shell>/bin/sh</shell> stray\n"
		"      <quota storage=\"1G\" files=\"3\"/>\n"
		"    </user>\n"
		"  </domain>\n"
		"</users>\n";
	static const char *const expected[] = {
		"u.cfg:2: unknown element <group> (ignored)",
		"u.cfg:3: unknown attribute colour on <domain> (ignored)",
		"u.cfg:4: unknown element <mailbox> (ignored)",
		"u.cfg:5: unknown attribute uid on <user> (ignored)",
		"u.cfg:6: unknown element <shell> (ignored)",
		"u.cfg:6: unexpected text inside <user> (ignored)",
		"u.cfg:7: unknown attribute files on <quota> (ignored)",
	};
	struct warnings w = { .count = 0 };
	struct directory *dir = must_parse(text, &w);

	assert_int_equal(directory_find_user(dir, "j")->quota_storage, 1ull << 30);
	if (w.count != sizeof(expected) / sizeof(expected[0])) {
		for (size_t i = 0; i < w.count; i++)
			fprintf(stderr, "warning: %s\n", w.list[i]);
		fail_msg("%zu warnings", w.count);
	}
	for (size_t i = 0; i < w.count; i++)
		assert_string_equal(w.list[i], expected[i]);
	warnings_free(&w);
	directory_unref(&dir);
}

static void test_legacy_hash_warns(void **state)
{
	/* MD5-crypt: loads (users can still log in) but is flagged. */
	const char *text = D1 "<user name=\"old\">\n<password>$1$saltsalt$4px9i58NU2Z2/vZOUlGjq.</password>"
		"</user>" D1_END;
	struct warnings w = { .count = 0 };
	struct directory *dir = must_parse(text, &w);

	assert_true(directory_verify_password(directory_find_user(dir, "old"), "x"));
	assert_int_equal(w.count, 1);
	assert_string_equal(w.list[0], "u.cfg:3: user old: password hash uses a weak, legacy method; "
			    "set a new password");
	warnings_free(&w);
	directory_unref(&dir);
}

static void test_empty(void **state)
{
	struct directory *dir = must_parse("<users/>", NULL);

	assert_int_equal(dir->domain_count, 0);
	assert_null(dir->primary);
	assert_null(directory_find_user(dir, "admin"));
	assert_null(directory_find_user(dir, "admin@example.com"));
	directory_unref(&dir);
}

static void test_refcount(void **state)
{
	struct directory *dir = directory_new_empty();
	struct directory *other = directory_ref(dir);

	assert_int_equal(dir->refcount, 2);
	directory_unref(&other);
	assert_null(other);
	assert_int_equal(dir->refcount, 1);
	directory_unref(&dir);
	assert_null(dir);
	directory_unref(&dir);

	/* the current snapshot */
	assert_null(directory_current());
	dir = directory_new_empty();
	directory_set_current(directory_ref(dir));
	other = directory_current();
	assert_ptr_equal(other, dir);
	assert_int_equal(dir->refcount, 3);
	directory_unref(&other);
	directory_set_current(NULL);
	assert_null(directory_current());
	assert_int_equal(dir->refcount, 1);
	directory_unref(&dir);
}

/* ---- writing ------------------------------------------------------------ */

static void test_write_new(void **state)
{
	char *dirpath = make_tmpdir();
	char *path = xasprintf("%s/%s", dirpath, CFG_USERS);
	const char *password = "Tr0ub4dor&3-unique";
	struct directory *dir = NULL;
	const struct dir_user *u;
	char *error = NULL, *data;
	size_t len;
	struct stat st;

	if (directory_write_new(path, "example.com", "admin", password, &error) < 0)
		fail_msg("%s", error);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(fileio_read_all(path, 1 << 20, &data, &len), 0);
	assert_null(strstr(data, "Tr0ub4dor"));          /* never the plaintext */
	assert_non_null(strstr(data, "<password scheme=\"yescrypt\">$y$"));
	assert_non_null(strstr(data, "\n  <domain name=\"example.com\" primary=\"yes\">\n"
			       "    <user name=\"admin\">\n"
			       "      <full-name>Administrator</full-name>\n"));
	assert_non_null(strstr(data, "      <admin>yes</admin>\n      <enabled>yes</enabled>\n"
			       "      <quota storage=\"0\" messages=\"0\"/>\n    </user>\n"));
	free(data);

	if (directory_load(dirpath, NULL, NULL, &dir, &error) < 0)
		fail_msg("%s", error);
	assert_string_equal(dir->path, path);
	u = directory_find_user(dir, "admin");
	assert_non_null(u);
	assert_true(u->admin);
	assert_true(u->enabled);
	assert_true(directory_verify_password(u, password));
	assert_false(directory_verify_password(u, "wrong"));
	assert_ptr_equal(directory_find_user(dir, "admin@EXAMPLE.com"), u);
	directory_unref(&dir);

	/* refused: nothing is written */
	unlink(path);
	assert_int_equal(directory_write_new(path, "bad domain", "admin", "x", &error), -1);
	assert_string_equal(error, "invalid domain name 'bad domain'");
	free(error);
	assert_int_equal(directory_write_new(path, "example.com", "ad/min", "x", &error), -1);
	assert_string_equal(error, "invalid user name 'ad/min': contains '/'");
	free(error);
	assert_int_equal(directory_write_new(path, "example.com", "admin", "", &error), -1);
	assert_string_equal(error, "empty password");
	free(error);
	assert_int_equal(stat(path, &st), -1);

	assert_int_equal(directory_load(dirpath, NULL, NULL, &dir, &error), -1);
	assert_non_null(strstr(error, "users.cfg: cannot read: No such file or directory"));
	free(error);

	free(path);
	remove_dir(dirpath);
	free(dirpath);
}

/* Parse → format → parse → format is stable, and saving keeps the order. */
static void test_format_round_trip(void **state)
{
	struct directory *dir = load_fixture("config/users-good-two-domains.cfg"), *back = NULL;
	char *dirpath = make_tmpdir();
	char *path = xasprintf("%s/%s", dirpath, CFG_USERS);
	char *t1 = directory_format(dir), *t2, *error = NULL;
	struct stat st;

	if (directory_parse("x", t1, strlen(t1), NULL, NULL, &back, &error) < 0)
		fail_msg("%s\n%s", error, t1);
	t2 = directory_format(back);
	assert_string_equal(t1, t2);
	/* order: domains and users as in the file */
	assert_true(strstr(t1, "name=\"example.com\"") < strstr(t1, "name=\"Other.ORG\""));
	assert_true(strstr(t1, "name=\"admin\"") < strstr(t1, "name=\"john\""));
	assert_true(strstr(t1, "name=\"john\"") < strstr(t1, "name=\"nopass\""));
	assert_non_null(strstr(t1, "<full-name>John Smith &amp; Sons</full-name>"));
	assert_non_null(strstr(t1, "<quota storage=\"500M\" messages=\"100000\"/>"));
	assert_non_null(strstr(t1, "<password scheme=\"crypt\">$6$"));
	assert_null(strchr(t1, '\t'));

	if (directory_save(dir, path, &error) < 0)
		fail_msg("%s", error);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	directory_unref(&back);
	assert_int_equal(directory_load(dirpath, NULL, NULL, &back, &error), 0);
	free(t2);
	t2 = directory_format(back);
	assert_string_equal(t1, t2);
	assert_true(directory_verify_password(directory_find_user(back, "john@other.org"), "john-other"));

	free(t1);
	free(t2);
	directory_unref(&back);
	directory_unref(&dir);
	unlink(path);
	free(path);
	remove_dir(dirpath);
	free(dirpath);
}

/* ---- mutators ----------------------------------------------------------- */

static void test_mutators(void **state)
{
	struct directory *d0 = directory_new_empty(), *d1 = NULL, *d2 = NULL, *d3 = NULL, *d4 = NULL;
	struct directory *d5 = NULL, *d6 = NULL, *d7 = NULL;
	struct dir_user_spec john = { .name = "john", .password = "pw-one", .full_name = "John" };
	struct dir_user_spec john2 = { .domain = "other.org", .name = "john", .password = "pw-two",
				       .quota_storage = 1024, .disabled = true };
	const struct dir_user *u;
	char *error = NULL;
	char *hash_before;

	/* no domain yet */
	assert_int_equal(directory_add_user(d0, &john, &d1, &error), -1);
	assert_string_equal(error, "no domain yet: add one first");
	free(error);

	/* the first domain becomes primary even when not asked */
	assert_int_equal(directory_add_domain(d0, "example.com", false, &d1, &error), 0);
	assert_int_equal(d0->domain_count, 0);       /* the old snapshot is untouched */
	assert_true(d1->domains[0]->primary);
	assert_ptr_equal(d1->primary, d1->domains[0]);
	assert_int_equal(directory_add_domain(d1, "EXAMPLE.COM", false, &d2, &error), -1);
	assert_string_equal(error, "domain EXAMPLE.COM already exists");
	free(error);
	assert_int_equal(directory_add_domain(d1, "other.org", true, &d2, &error), -1);
	assert_string_equal(error, "example.com is already the primary domain");
	free(error);
	assert_int_equal(directory_add_domain(d1, "-bad", false, &d2, &error), -1);
	free(error);
	assert_int_equal(directory_add_domain(d1, "other.org", false, &d2, &error), 0);
	assert_false(d2->domains[1]->primary);

	/* two johns */
	assert_int_equal(directory_add_user(d2, &john, &d3, &error), 0);
	assert_int_equal(directory_add_user(d3, &john2, &d4, &error), 0);
	assert_int_equal(directory_add_user(d4, &john, &d5, &error), -1);
	assert_string_equal(error, "user john@example.com already exists");
	free(error);
	john.domain = "nowhere.net";
	assert_int_equal(directory_add_user(d4, &john, &d5, &error), -1);
	assert_string_equal(error, "no domain nowhere.net");
	free(error);
	john.domain = NULL;
	assert_null(directory_find_user(d3, "john@other.org"));
	u = directory_find_user(d4, "john");
	assert_string_equal(u->domain->name, "example.com");
	assert_string_equal(u->full_name, "John");
	assert_true(u->enabled);
	assert_true(directory_verify_password(u, "pw-one"));
	u = directory_find_user(d4, "john@other.org");
	assert_false(u->enabled);
	assert_int_equal(u->quota_storage, 1024);
	assert_true(directory_verify_password(u, "pw-two"));
	assert_false(directory_verify_password(u, "pw-one"));

	/* invalid specs */
	{
		struct dir_user_spec bad = { .name = "x/y" };
		struct dir_user_spec both = { .name = "z", .password = "a", .password_hash = "$y$x" };
		struct dir_user_spec plain = { .name = "z", .password_hash = "hunter2xyz" };
		struct dir_user_spec ctl = { .name = "z", .full_name = "a\nb" };

		assert_int_equal(directory_add_user(d4, &bad, &d5, &error), -1);
		assert_string_equal(error, "invalid user name 'x/y': contains '/'");
		free(error);
		assert_int_equal(directory_add_user(d4, &both, &d5, &error), -1);
		free(error);
		assert_int_equal(directory_add_user(d4, &plain, &d5, &error), -1);
		assert_null(strstr(error, "hunter2xyz"));
		free(error);
		assert_int_equal(directory_add_user(d4, &ctl, &d5, &error), -1);
		free(error);
		assert_null(d5);
	}

	/* passwords */
	hash_before = xstrdup(directory_find_user(d4, "john")->password_hash);
	assert_int_equal(directory_set_password(d4, "john", "pw-three", &d5, &error), 0);
	assert_true(directory_verify_password(directory_find_user(d5, "john"), "pw-three"));
	assert_false(directory_verify_password(directory_find_user(d5, "john"), "pw-one"));
	assert_string_equal(directory_find_user(d4, "john")->password_hash, hash_before);
	assert_true(directory_verify_password(directory_find_user(d5, "john@other.org"), "pw-two"));
	free(hash_before);
	assert_int_equal(directory_set_password(d4, "ghost", "x", &d6, &error), -1);
	assert_string_equal(error, "no user ghost");
	free(error);
	assert_int_equal(directory_set_password(d4, "john", "", &d6, &error), -1);
	free(error);

	/* removing */
	assert_int_equal(directory_remove_domain(d5, "other.org", false, &d6, &error), -1);
	assert_string_equal(error, "domain other.org still has 1 user; remove them first, or force "
			    "the removal");
	free(error);
	assert_int_equal(directory_remove_user(d5, "john@other.org", &d6, &error), 0);
	assert_null(directory_find_user(d6, "john@other.org"));
	assert_non_null(directory_find_user(d5, "john@other.org"));
	assert_non_null(directory_find_user(d6, "john"));
	assert_int_equal(directory_remove_user(d6, "john@other.org", &d7, &error), -1);
	free(error);
	assert_int_equal(directory_remove_domain(d6, "example.com", false, &d7, &error), -1);
	free(error);
	assert_int_equal(directory_remove_domain(d6, "other.org", false, &d7, &error), 0);
	assert_int_equal(d7->domain_count, 1);
	assert_int_equal(d7->user_count, 1);

	/* what the mutators make saves and loads */
	{
		char *dirpath = make_tmpdir();
		char *path = xasprintf("%s/%s", dirpath, CFG_USERS);
		struct directory *back = NULL;
		char *a, *b;

		assert_int_equal(directory_save(d5, path, &error), 0);
		assert_int_equal(directory_load(dirpath, NULL, NULL, &back, &error), 0);
		a = directory_format(d5);
		b = directory_format(back);
		assert_string_equal(a, b);
		free(a);
		free(b);
		directory_unref(&back);
		unlink(path);
		free(path);
		remove_dir(dirpath);
		free(dirpath);
	}

	directory_unref(&d0);
	directory_unref(&d1);
	directory_unref(&d2);
	directory_unref(&d3);
	directory_unref(&d4);
	directory_unref(&d5);
	directory_unref(&d6);
	directory_unref(&d7);
}

/* ---- fixtures ----------------------------------------------------------- */

static void test_fixtures(void **state)
{
	char *dirpath = fixture_path("config");
	DIR *d = opendir(dirpath);
	struct dirent *e;
	int good = 0, bad = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		bool is_good = str_has_prefix(e->d_name, "users-good-");
		bool is_bad = str_has_prefix(e->d_name, "users-bad-");
		struct directory *dir = NULL;
		char *path, *data, *error = NULL;
		size_t len;

		if (!is_good && !is_bad)
			continue;
		path = xasprintf("%s/%s", dirpath, e->d_name);
		assert_int_equal(fileio_read_all(path, CFG_MAX_FILE_SIZE, &data, &len), 0);
		if (is_good) {
			struct warnings w = { .count = 0 };

			if (directory_parse(path, data, len, collect_warning, &w, &dir, &error) < 0)
				fail_msg("%s", error);
			if (w.count != 0)
				fail_msg("%s", w.list[0]);
			directory_unref(&dir);
			good++;
		} else {
			const char *m = strstr(data, "<!-- expect: ");
			char *expect, *end, *full;

			assert_non_null(m);
			expect = xstrdup(m + 13);
			end = strstr(expect, " -->");
			assert_non_null(end);
			*end = '\0';
			full = str_has_prefix(expect, "FILE") ? xasprintf("%s%s", path, expect + 4)
				: xstrdup(expect);
			if (directory_parse(path, data, len, NULL, NULL, &dir, &error) == 0)
				fail_msg("%s parsed", e->d_name);
			if (strcmp(error, full) != 0)
				fail_msg("%s:\n got      '%s'\n expected '%s'", e->d_name, error, full);
			free(error);
			free(expect);
			free(full);
			bad++;
		}
		free(data);
		free(path);
	}
	closedir(d);
	free(dirpath);
	assert_true(good >= 2);
	assert_true(bad >= 5);
}

static void test_docs_example(void **state)
{
	char *text = docs_example("users.cfg");
	struct warnings w = { .count = 0 };
	struct directory *dir = must_parse(text, &w);

	assert_int_equal(w.count, 0);
	assert_true(directory_verify_password(directory_find_user(dir, "admin"), "admin-secret"));
	assert_string_equal(directory_find_user(dir, "john")->domain->name, "example.com");
	assert_string_equal(directory_find_user(dir, "john@example.org")->domain->name, "example.org");
	/* the example shows every element */
	assert_ptr_equal(directory_find_user(dir, "john@example.net"), directory_find_user(dir, "john"));
	assert_true(directory_find_user(dir, "john")->autoreply.enabled);
	assert_non_null(directory_find_alias(dir, "postmaster"));
	assert_int_equal(directory_find_group(dir, "staff")->members.count, 2);
	assert_int_equal(directory_find_list(dir, "news")->posting, DIR_LIST_POST_MODERATED);
	assert_string_equal(directory_find_domain(dir, "example.org")->catch_all, "admin@example.com");
	directory_unref(&dir);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_user_names),
		cmocka_unit_test(test_primary_domain_rule),
		cmocka_unit_test(test_verify_fixture_passwords),
		cmocka_unit_test(test_known_answer),
		cmocka_unit_test(test_hash_password),
		cmocka_unit_test(test_error_table),
		cmocka_unit_test(test_warnings),
		cmocka_unit_test(test_legacy_hash_warns),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_write_new),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_mutators),
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_docs_example),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
