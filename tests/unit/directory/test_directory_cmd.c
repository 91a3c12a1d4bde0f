/*
 * Unit tests for the directory's JSON commands (src/directory/
 * directory_cmd.c), the code behind both the admin API and petrelctl's
 * offline mode: every command's reply, argument checks, that a failed
 * command changes nothing, the save to users.cfg, and that passwords
 * never show in replies, descriptions or the file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "core/fileio.h"
#include "dir_test.h"
#include "directory/directory_cmd.h"

static const char base[] =
	"<users>\n"
	"  <domain name=\"example.com\" primary=\"yes\">\n"
	"    <user name=\"admin\"><admin>yes</admin></user>\n"
	"  </domain>\n"
	"</users>\n";

struct fixture {
	char *dir;
	char *path;
	struct directory *current;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	const char *werr;
	char *error = NULL;

	f->dir = dt_tmpdir();
	f->path = xasprintf("%s/%s", f->dir, CFG_USERS);
	assert_int_equal(fileio_write_atomic(f->path, base, strlen(base), 0600, &werr), 0);
	if (directory_load(f->dir, NULL, NULL, &f->current, &error) < 0)
		fail_msg("%s", error);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	directory_unref(&f->current);
	dt_rmdir(f->dir);
	free(f->dir);
	free(f->path);
	free(f);
	return 0;
}

/* Runs a request given as JSON text through execute (saving), and makes
 * the result current.  Returns the reply. */
static json_t *run(struct fixture *f, const char *text)
{
	json_error_t jerr;
	json_t *req = json_loads(text, JSON_ALLOW_NUL, &jerr), *reply;
	struct directory *saved = NULL;

	if (req == NULL)
		fail_msg("bad JSON in the test: %s", text);
	reply = directory_cmd_execute(f->current, req, &saved);
	json_decref(req);
	if (saved != NULL) {
		directory_unref(&f->current);
		f->current = saved;
	}
	return reply;
}

static void run_ok(struct fixture *f, const char *text, const char *message)
{
	json_t *reply = run(f, text);

	if (!json_is_true(json_object_get(reply, "ok")))
		fail_msg("%s: %s", text, json_string_value(json_object_get(reply, "error")));
	if (message != NULL)
		assert_string_equal(json_string_value(json_object_get(reply, "message")), message);
	json_decref(reply);
}

static void run_fails(struct fixture *f, const char *text, const char *error)
{
	char *before, *after;
	size_t len;
	json_t *reply;

	assert_int_equal(fileio_read_all(f->path, 1 << 20, &before, &len), 0);
	reply = run(f, text);
	if (json_is_true(json_object_get(reply, "ok")))
		fail_msg("%s: succeeded, expected '%s'", text, error);
	if (strcmp(json_string_value(json_object_get(reply, "error")), error) != 0)
		fail_msg("%s:\n got      '%s'\n expected '%s'", text,
			 json_string_value(json_object_get(reply, "error")), error);
	json_decref(reply);
	/* the file is untouched */
	assert_int_equal(fileio_read_all(f->path, 1 << 20, &after, &len), 0);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void test_commands(void **state)
{
	struct fixture *f = *state;
	json_t *reply, *u;
	char *file;
	size_t len;
	struct stat st;

	run_ok(f, "{\"command\":\"domain-add\",\"name\":\"other.org\"}", "domain other.org added");
	run_ok(f, "{\"command\":\"domain-alias-add\",\"name\":\"example.com\",\"alias\":\"example.net\"}",
	       "example.net is now an alias domain of example.com");
	run_ok(f, "{\"command\":\"user-add\",\"address\":\"John@Example.com\",\"password\":\"s3cret pw\","
	       "\"quota_storage\":1048576,\"admin\":false,\"full_name\":\"John Smith\"}",
	       "user john@example.com added");
	run_ok(f, "{\"command\":\"user-add\",\"address\":\"john@other.org\",\"password\":\"x-pass\","
	       "\"enabled\":false}", "user john@other.org added");
	run_ok(f, "{\"command\":\"user-passwd\",\"address\":\"john\",\"password\":\"n3w pass\"}",
	       "password of john@example.com changed");
	assert_true(directory_verify_password(directory_find_user(f->current, "john"), "n3w pass"));
	run_ok(f, "{\"command\":\"user-set\",\"address\":\"john\",\"quota_messages\":500}",
	       "user john@example.com changed");
	run_ok(f, "{\"command\":\"user-alias-add\",\"address\":\"john\",\"alias\":\"j.smith\"}",
	       "john@example.com has the extra address j.smith");
	run_ok(f, "{\"command\":\"user-forward\",\"address\":\"john@other.org\",\"targets\":[\"john@example.com\"],"
	       "\"keep_copy\":true}", "mail for john@other.org is forwarded (keeping a copy)");
	run_ok(f, "{\"command\":\"user-autoreply\",\"address\":\"john\",\"enabled\":true,"
	       "\"subject\":\"Away\",\"text\":\"Back\\r\\nsoon\",\"end\":\"2030-01-01\"}",
	       "auto-reply of john@example.com is on");
	run_ok(f, "{\"command\":\"alias-add\",\"address\":\"Postmaster\",\"targets\":[\"admin\",\"ops@remote.example\"]}",
	       "alias postmaster@example.com added");
	run_ok(f, "{\"command\":\"group-add\",\"address\":\"staff@example.net\",\"members\":[\"john\",\"admin\"]}",
	       "group staff@example.com added");
	run_ok(f, "{\"command\":\"list-add\",\"address\":\"news\",\"members\":[\"john\",\"x@remote.example\"],"
	       "\"posting\":\"moderated\",\"moderators\":[\"admin\"],\"reply_to\":\"list\","
	       "\"description\":\"News\",\"subscription\":\"closed\"}", "list news@example.com added");
	run_ok(f, "{\"command\":\"domain-set\",\"name\":\"other.org\",\"catch_all\":\"john@other.org\"}",
	       "domain other.org changed");

	/* user-show: every property, membership included, no hash */
	reply = run(f, "{\"command\":\"user-show\",\"address\":\"JOHN@example.net\"}");
	u = json_object_get(reply, "user");
	assert_string_equal(json_string_value(json_object_get(u, "address")), "john@example.com");
	assert_string_equal(json_string_value(json_object_get(u, "full_name")), "John Smith");
	assert_string_equal(json_string_value(json_object_get(u, "password")), "yescrypt");
	assert_int_equal(json_integer_value(json_object_get(u, "quota_storage")), 1048576);
	assert_int_equal(json_integer_value(json_object_get(u, "quota_messages")), 500);
	assert_string_equal(json_string_value(json_array_get(json_object_get(u, "aliases"), 0)),
			    "j.smith@example.com");
	assert_string_equal(json_string_value(json_object_get(json_object_get(u, "auto_reply"), "text")),
			    "Back\nsoon");
	assert_string_equal(json_string_value(json_array_get(json_object_get(u, "groups"), 0)),
			    "staff@example.com");
	assert_string_equal(json_string_value(json_array_get(json_object_get(u, "lists"), 0)),
			    "news@example.com");
	assert_int_equal(json_array_size(json_object_get(u, "login")), 3);
	{
		char *dump = json_dumps(reply, 0);

		assert_null(strstr(dump, "$y$"));
		free(dump);
	}
	json_decref(reply);

	reply = run(f, "{\"command\":\"user-list\",\"domain\":\"other.org\"}");
	assert_int_equal(json_array_size(json_object_get(reply, "users")), 1);
	assert_false(json_is_true(json_object_get(json_array_get(json_object_get(reply, "users"), 0),
						  "enabled")));
	json_decref(reply);
	reply = run(f, "{\"command\":\"user-list\"}");
	assert_int_equal(json_array_size(json_object_get(reply, "users")), 3);
	json_decref(reply);
	reply = run(f, "{\"command\":\"domain-list\"}");
	assert_int_equal(json_array_size(json_object_get(reply, "domains")), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(reply,
			    "domains"), 1), "catch_all")), "john@other.org");
	json_decref(reply);
	reply = run(f, "{\"command\":\"list-show\",\"address\":\"news\"}");
	assert_string_equal(json_string_value(json_object_get(json_object_get(reply, "list"), "list_id")),
			    "\"News\" <news.example.com>");
	json_decref(reply);
	reply = run(f, "{\"command\":\"resolve\",\"address\":\"staff+x@example.net\"}");
	assert_string_equal(json_string_value(json_object_get(reply, "result")), "recipients");
	assert_string_equal(json_string_value(json_object_get(reply, "entry")), "group");
	assert_int_equal(json_array_size(json_object_get(reply, "recipients")), 2);
	json_decref(reply);
	reply = run(f, "{\"command\":\"resolve\",\"address\":\"news-subscribe+t@example.com\"}");
	assert_string_equal(json_string_value(json_object_get(reply, "result")), "list-command");
	assert_string_equal(json_string_value(json_object_get(reply, "command")), "subscribe");
	assert_string_equal(json_string_value(json_object_get(reply, "detail")), "t");
	json_decref(reply);

	/* the file: written, private, readable, no plaintext */
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(fileio_read_all(f->path, 1 << 20, &file, &len), 0);
	assert_null(strstr(file, "n3w pass"));
	assert_null(strstr(file, "s3cret"));
	assert_non_null(strstr(file, "    <alias name=\"Postmaster\">\n"));
	assert_non_null(strstr(file, "<alias-domain>example.net</alias-domain>"));
	free(file);

	/* removals */
	run_ok(f, "{\"command\":\"group-remove\",\"address\":\"staff\",\"members\":[\"admin\"]}",
	       "group staff@example.com changed");
	run_ok(f, "{\"command\":\"list-remove\",\"address\":\"news\",\"members\":[\"x@remote.example\"]}",
	       "list news@example.com changed");
	run_ok(f, "{\"command\":\"alias-remove\",\"address\":\"postmaster\"}",
	       "alias postmaster@example.com removed");
	run_ok(f, "{\"command\":\"user-remove\",\"address\":\"john@other.org\"}",
	       "user john@other.org removed (mail in the store is kept)");
	run_ok(f, "{\"command\":\"domain-set\",\"name\":\"other.org\",\"catch_all\":null}",
	       "domain other.org changed");
	run_ok(f, "{\"command\":\"domain-remove\",\"name\":\"other.org\"}", "domain other.org removed");
	run_ok(f, "{\"command\":\"domain-alias-remove\",\"alias\":\"example.net\"}",
	       "alias domain example.net removed");
	run_ok(f, "{\"command\":\"user-forward\",\"address\":\"john\",\"targets\":[]}",
	       "forwarding of john@example.com is off");
}

static void test_refusals(void **state)
{
	struct fixture *f = *state;
	json_t *reply;
	char *d;

	run_fails(f, "{\"command\":\"frobnicate\"}", "unknown command");
	run_fails(f, "{}", "unknown command");
	run_fails(f, "{\"command\":\"user-add\"}", "missing \"address\"");
	run_fails(f, "{\"command\":\"user-add\",\"address\":5}", "\"address\" must be a string");
	run_fails(f, "{\"command\":\"user-add\",\"address\":\"..\",\"password\":\"x\"}",
		  "invalid user name '..': starts or ends with a dot");
	run_fails(f, "{\"command\":\"user-add\",\"address\":\"a/b\",\"password\":\"x\"}",
		  "invalid user name 'a/b': contains '/'");
	run_fails(f, "{\"command\":\"user-add\",\"address\":\"../../etc/passwd@example.com\","
		  "\"password\":\"x\"}", "invalid user name '../../etc/passwd': starts or ends with a dot");
	run_fails(f, "{\"command\":\"user-add\",\"address\":\"x@..\",\"password\":\"x\"}",
		  "no domain ..");
	run_fails(f, "{\"command\":\"user-add\",\"address\":\"x@\",\"password\":\"x\"}",
		  "invalid address: nothing after the '@'");
	run_fails(f, "{\"command\":\"user-add\",\"address\":\"x@nowhere.example\",\"password\":\"x\"}",
		  "no domain nowhere.example");
	run_fails(f, "{\"command\":\"user-add\",\"address\":\"admin\",\"password\":\"x\"}",
		  "user admin@example.com already exists");
	run_fails(f, "{\"command\":\"user-add\",\"address\":\"x\",\"password\":\"\"}", "empty password");
	run_fails(f, "{\"command\":\"user-add\",\"address\":\"x\",\"password_hash\":\"plaintext-pw\"}",
		  "password is not a crypt hash (users.cfg holds hashes, never plaintext)");
	run_fails(f, "{\"command\":\"user-add\",\"address\":\"x\",\"quota_storage\":-1}",
		  "\"quota_storage\" must be a number, 0 or more");
	run_fails(f, "{\"command\":\"user-add\",\"address\":\"x\",\"admin\":\"yes\"}",
		  "\"admin\" must be true or false");
	run_fails(f, "{\"command\":\"user-add\",\"address\":\"a\\u0000b\"}",
		  "\"address\" contains a NUL byte");
	run_fails(f, "{\"command\":\"user-passwd\",\"address\":\"ghost\",\"password\":\"x\"}",
		  "no user ghost");
	run_fails(f, "{\"command\":\"user-show\",\"address\":\"ghost\\r\\n\"}", "no user ghost\\r\\n");
	run_fails(f, "{\"command\":\"user-set\",\"address\":\"admin\"}",
		  "nothing to change (full_name, admin, enabled, quota_storage, quota_messages)");
	run_fails(f, "{\"command\":\"domain-add\",\"name\":\"a/b\"}", "invalid domain name 'a/b'");
	run_fails(f, "{\"command\":\"domain-add\",\"name\":\"..\"}", "invalid domain name '..'");
	run_fails(f, "{\"command\":\"domain-add\",\"name\":\"example.com\"}",
		  "domain example.com already exists");
	run_fails(f, "{\"command\":\"domain-remove\",\"name\":\"example.com\"}",
		  "domain example.com still has 1 user; remove them first, or force the removal");
	run_fails(f, "{\"command\":\"domain-set\",\"name\":\"example.com\",\"primary\":false}",
		  "exactly one domain is primary: make another domain primary instead");
	run_fails(f, "{\"command\":\"alias-add\",\"address\":\"a\",\"targets\":\"b\"}",
		  "\"targets\" must be an array of strings");
	run_fails(f, "{\"command\":\"alias-add\",\"address\":\"a\",\"targets\":[1]}",
		  "\"targets\" must be an array of strings");
	run_fails(f, "{\"command\":\"alias-add\",\"address\":\"admin\",\"targets\":[\"x@remote.example\"]}",
		  "address admin@example.com is already taken by user admin@example.com");
	run_fails(f, "{\"command\":\"group-add\",\"address\":\"g\",\"members\":[\"ghost\"]}",
		  "member ghost@example.com does not exist");
	run_fails(f, "{\"command\":\"list-add\",\"address\":\"l\",\"posting\":\"all\"}",
		  "posting must be members, anyone or moderated");
	run_fails(f, "{\"command\":\"list-add\",\"address\":\"l\",\"reply_to\":\"me\"}",
		  "reply_to must be list, sender or none");
	run_fails(f, "{\"command\":\"resolve\",\"address\":\"x\",\"separator\":\"++\"}",
		  "\"separator\" is one character, or \"\" for none");

	/* a read-only request never writes */
	reply = run(f, "{\"command\":\"resolve\",\"address\":\"nobody@example.com\"}");
	assert_string_equal(json_string_value(json_object_get(reply, "result")), "unknown");
	json_decref(reply);

	/* a directory with no file cannot be changed */
	{
		struct directory *mem = directory_new_empty(), *saved = NULL;
		json_t *req = json_pack("{s:s, s:s}", "command", "domain-add", "name", "a.example");

		reply = directory_cmd_execute(mem, req, &saved);
		assert_null(saved);
		assert_string_equal(json_string_value(json_object_get(reply, "error")),
				    "the directory has no users.cfg to write to");
		json_decref(reply);
		json_decref(req);
		directory_unref(&mem);
	}

	/* descriptions for logs: no password, escaped */
	{
		json_t *req = json_pack("{s:s, s:s, s:s}", "command", "user-passwd", "address",
					"john\r\n@example.com", "password", "hunter2");

		d = directory_cmd_describe(req);
		assert_string_equal(d, "command=user-passwd address=john\\r\\n@example.com");
		free(d);
		json_decref(req);
	}
	assert_true(directory_cmd_known("user-add"));
	assert_false(directory_cmd_known("status"));
	assert_true(directory_cmd_writes("list-remove"));
	assert_false(directory_cmd_writes("user-show"));
	assert_false(directory_cmd_writes(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
