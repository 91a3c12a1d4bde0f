/*
 * SASLprep (RFC 4013): the section 3 examples, the stored/query rules, and
 * a password with a non-ASCII space set through the directory API, then
 * checked by PLAIN and LOGIN through the real directory backend.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/auth_private.h"
#include "auth/sasl.h"
#include "core/cfg.h"
#include "directory/directory.h"

static void expect_prep(const char *in, const char *want)
{
	const char *reason = NULL;
	char *out = NULL;

	if (auth_saslprep(in, true, &out, &reason) < 0)
		fail_msg("SASLprep refused a valid string: %s", reason);
	assert_string_equal(out, want);
	free(out);
}

static void expect_refused(const char *in, bool stored)
{
	const char *reason = NULL;
	char *out = (char *)"untouched";

	assert_int_equal(auth_saslprep(in, stored, &out, &reason), -1);
	assert_null(out);
	assert_non_null(reason);
}

/* RFC 4013 section 3, examples 1-7. */
static void test_rfc4013_examples(void **state)
{
	(void)state;
	expect_prep("I\xc2\xadX", "IX");          /* SOFT HYPHEN mapped to nothing */
	expect_prep("user", "user");
	expect_prep("USER", "USER");              /* case preserved */
	expect_prep("\xc2\xaa", "a");             /* ORDINAL INDICATOR, NFKC */
	expect_prep("\xe2\x85\xa8", "IX");        /* ROMAN NUMERAL NINE, NFKC */
	expect_refused("\x07", true);             /* prohibited character */
	expect_refused("\x07", false);
	expect_refused("\xd8\xa7" "1", true);     /* bidi: RandALCat not at the end */
	expect_refused("\xd8\xa7" "1", false);
}

static void test_spaces_and_rules(void **state)
{
	(void)state;
	expect_prep("a\xc2\xa0" "b", "a b");       /* NO-BREAK SPACE -> SPACE */
	expect_prep("a\xe2\x80\x83" "b", "a b");   /* EM SPACE -> SPACE */
	expect_prep("pencil", "pencil");
	expect_refused("\xc2\xad", true);          /* only mapped-to-nothing: empty */
	expect_refused("\xc3\x28", false);         /* invalid UTF-8 */
	expect_refused("a\xef\xbf\xbf", true);     /* U+FFFF: non-character */
	/* U+0221 is unassigned in Unicode 3.2: a query may carry it, a stored
	 * string may not (RFC 4013 2.5). */
	{
		const char *reason;
		char *out;

		assert_int_equal(auth_saslprep("x\xc8\xa1", false, &out, &reason), 0);
		free(out);
		expect_refused("x\xc8\xa1", true);
	}
}

static struct cfg *test_cfg(void)
{
	struct cfg *cfg = cfg_new_default("/tmp");

	free(cfg->s.auth_mechanisms);
	cfg->s.auth_mechanisms = xstrdup("PLAIN LOGIN SCRAM-SHA-256");
	return cfg;
}

struct fixture {
	struct directory *dir;
	struct cfg *cfg;
	struct sasl_backend backend;
	struct sasl_params params;
	struct sasl_server *s;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct directory *d0 = directory_new_empty(), *d1 = NULL;
	struct dir_user_spec spec = { .name = "nina", .password = "open\xc2\xa0sesame" };
	char *error = NULL;

	directory_set_secrets_hook(auth_derive_secrets);
	directory_set_prepare_hook(auth_prepare_password);
	assert_int_equal(directory_add_domain(d0, "example.com", true, &d1, &error), 0);
	if (directory_add_user(d1, &spec, &f->dir, &error) < 0)
		fail_msg("directory_add_user: %s", error);
	directory_unref(&d0);
	directory_unref(&d1);
	f->cfg = test_cfg();
	auth_directory_backend_init(&f->backend, f->dir);
	f->params.cfg = f->cfg;
	f->params.service = "imap";
	f->params.hostname = "mail.example.com";
	f->params.local_address = "192.0.2.1";
	f->params.secure = true;
	f->s = sasl_server_new(&f->params, &f->backend);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sasl_server_free(&f->s);
	auth_directory_backend_deinit(&f->backend);
	directory_unref(&f->dir);
	cfg_unref(&f->cfg);
	directory_set_prepare_hook(NULL);
	directory_set_secrets_hook(NULL);
	free(f);
	return 0;
}

static enum sasl_status plain(struct fixture *f, const char *user, const char *pass,
			      struct sasl_reply *r)
{
	char msg[256];
	size_t n = 0;

	msg[n++] = '\0';
	n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s", user);
	msg[n++] = '\0';
	n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s", pass);
	return sasl_server_start(f->s, "PLAIN", msg, n, true, r);
}

/* Set with U+00A0; PLAIN accepts the U+00A0 and the ASCII space forms. */
static void test_plain_nbsp_password(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;

	assert_int_equal(plain(f, "nina", "open\xc2\xa0sesame", &r), SASL_SUCCESS);
	assert_string_equal(r.identity, "nina@example.com");
	assert_int_equal(plain(f, "nina", "open sesame", &r), SASL_SUCCESS);
	assert_int_equal(plain(f, "nina", "open\xe2\x80\x83sesame", &r), SASL_SUCCESS);
	/* A soft hyphen in the user name is mapped to nothing. */
	assert_int_equal(plain(f, "ni\xc2\xadna", "open sesame", &r), SASL_SUCCESS);
	assert_int_equal(plain(f, "nina", "opensesame", &r), SASL_FAILURE);
	assert_string_equal(r.reason, "wrong password");
	/* Refused by SASLprep: the same failure as a wrong password. */
	assert_int_equal(plain(f, "nina", "open\x07sesame", &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	assert_string_equal(r.reason, "wrong password");
	assert_int_equal(plain(f, "nina", "\xd8\xa7" "1", &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
}

static void test_login_nbsp_password(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;

	assert_int_equal(sasl_server_start(f->s, "LOGIN", "nina", 4, true, &r), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(f->s, "open sesame", 11, &r), SASL_SUCCESS);
}

/* Passwords SASLprep refuses are refused when set, with a clear message,
 * and nothing changes. */
static void test_set_refused(void **state)
{
	struct fixture *f = *state;
	struct directory *d = NULL;
	char *error = NULL;

	assert_int_equal(directory_set_password(f->dir, "nina", "bad\x07pw", &d, &error), -1);
	assert_null(d);
	assert_non_null(strstr(error, "SASLprep"));
	assert_null(strstr(error, "bad"));
	free(error);
	error = NULL;
	assert_int_equal(directory_set_password(f->dir, "nina", "\xd8\xa7" "1", &d, &error), -1);
	assert_non_null(strstr(error, "bidirectional"));
	free(error);
	error = NULL;
	assert_int_equal(directory_set_password(f->dir, "nina", "\xc2\xad", &d, &error), -1);
	free(error);
	error = NULL;
	/* The old password still works. */
	assert_true(directory_verify_password(directory_find_user(f->dir, "nina"), "open sesame"));
	assert_false(directory_verify_password(directory_find_user(f->dir, "nina"), "bad\x07pw"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4013_examples),
		cmocka_unit_test(test_spaces_and_rules),
		cmocka_unit_test_setup_teardown(test_plain_nbsp_password, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_nbsp_password, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
