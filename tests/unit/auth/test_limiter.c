/*
 * Unit tests for brute-force protection (src/auth/auth_limiter.c), with an
 * injected clock: delays past the threshold and their cap, IP and account
 * lockouts and their end, the failure window, IPv6 /64 grouping, the
 * memory bound, conclude() on SASL replies, the shared limiter following
 * the settings, concurrent use, and the security.log lines (escaped login,
 * mechanism, never the password).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth_limiter.h"
#include "core/fileio.h"
#include "core/log.h"

static int64_t now_ms;
/* Failure lines go to a scratch log directory, not the test's stderr. */
static char scratch[] = "/tmp/petrel-auth-limiter-XXXXXX";

static int64_t test_clock(void)
{
	return now_ms;
}

static struct auth_limiter_settings defaults(void)
{
	struct auth_limiter_settings s = {
		.delay_after = 3,
		.failure_delay_ms = 2000,
		.max_delay_ms = 15000,
		.ip_lockout_failures = 20,
		.ip_lockout_ms = 900000,
		.account_lockout_failures = 10,
		.account_lockout_ms = 300000,
		.window_ms = 900000,
		.max_entries = 1000,
	};

	return s;
}

static int64_t do_fail(struct auth_limiter *l, const char *ip, const char *account)
{
	struct auth_attempt a = { .service = "imap", .ip = ip, .mechanism = "PLAIN",
				  .login = account, .account = account,
				  .reason = "wrong password" };

	return auth_limiter_failure(l, &a);
}

static void test_delays(void **state)
{
	struct auth_limiter_settings s = defaults();
	struct auth_limiter *l;

	(void)state;
	now_ms = 1000000;
	l = auth_limiter_new(&s, test_clock);
	/* three free failures, then 2 s more each, capped at 15 s */
	assert_int_equal(do_fail(l, "192.0.2.1", "john"), 0);
	assert_int_equal(do_fail(l, "192.0.2.1", "john"), 0);
	assert_int_equal(do_fail(l, "192.0.2.1", "john"), 0);
	assert_int_equal(do_fail(l, "192.0.2.1", "john"), 2000);
	assert_int_equal(do_fail(l, "192.0.2.1", "john"), 4000);
	for (int i = 0; i < 3; i++)
		do_fail(l, "192.0.2.1", "mary");
	assert_int_equal(do_fail(l, "192.0.2.1", "mary"), 12000);   /* the IP's 9th */
	assert_int_equal(do_fail(l, "192.0.2.1", "mary"), 14000);
	assert_int_equal(do_fail(l, "192.0.2.1", "mary"), 15000);   /* capped */
	/* another IP, another account: nothing */
	assert_int_equal(do_fail(l, "192.0.2.2", "carl"), 0);
	/* the account counts across IPs */
	assert_int_equal(do_fail(l, "192.0.2.3", "john"), 6000);   /* john's 6th, ip's 1st */
	/* delays off */
	s.failure_delay_ms = 0;
	auth_limiter_configure(l, &s);
	assert_int_equal(do_fail(l, "192.0.2.1", "john"), 0);
	auth_limiter_free(&l);
	assert_null(l);
}

static void test_ip_lockout(void **state)
{
	struct auth_limiter_settings s = defaults();
	struct auth_limiter *l;
	int64_t retry = 0;

	(void)state;
	now_ms = 5000000;
	l = auth_limiter_new(&s, test_clock);
	for (int i = 0; i < 19; i++) {
		char account[32];

		snprintf(account, sizeof(account), "user%d", i);   /* spread: no account lock */
		do_fail(l, "198.51.100.7", account);
	}
	assert_false(auth_limiter_ip_locked(l, "198.51.100.7", NULL));
	do_fail(l, "198.51.100.7", NULL);
	assert_true(auth_limiter_ip_locked(l, "198.51.100.7", &retry));
	assert_int_equal(retry, 900000);
	assert_false(auth_limiter_ip_locked(l, "198.51.100.8", NULL));
	now_ms += 899999;
	assert_true(auth_limiter_ip_locked(l, "198.51.100.7", &retry));
	assert_int_equal(retry, 1);
	now_ms += 1;
	assert_false(auth_limiter_ip_locked(l, "198.51.100.7", NULL));
	/* after the lockout the count starts over: no delay at once */
	assert_int_equal(do_fail(l, "198.51.100.7", NULL), 0);
	auth_limiter_free(&l);
}

static void test_account_lockout(void **state)
{
	struct auth_limiter_settings s = defaults();
	struct auth_limiter *l;
	struct sasl_reply r;
	int64_t delay, retry;

	(void)state;
	now_ms = 1;
	l = auth_limiter_new(&s, test_clock);
	/* ten failures from ten IPs lock the account */
	for (int i = 0; i < 10; i++) {
		char ip[32];

		snprintf(ip, sizeof(ip), "203.0.113.%d", i + 1);
		do_fail(l, ip, "john@example.com");
	}
	assert_true(auth_limiter_account_locked(l, "john@example.com", &retry));
	assert_int_equal(retry, 300000);
	assert_false(auth_limiter_account_locked(l, "mary@example.com", NULL));
	assert_false(auth_limiter_account_locked(l, NULL, NULL));
	/* the right password now fails like a wrong one */
	memset(&r, 0, sizeof(r));
	r.status = SASL_SUCCESS;
	r.mech = SASL_MECH_SCRAM_SHA_256;
	r.identity = "john@example.com";
	r.login = "john";
	r.account = "john@example.com";
	r.data = (const unsigned char *)"v=xyz";
	r.len = 5;
	assert_int_equal(auth_limiter_conclude(l, "imap", "203.0.113.99", 7, &r, &delay),
			 SASL_FAILURE);
	assert_int_equal(r.status, SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	assert_string_equal(r.reason, "account locked");
	assert_null(r.identity);
	assert_int_equal(r.len, 0);
	assert_true(delay > 0);
	/* and works again afterwards */
	now_ms += 300000;
	r.status = SASL_SUCCESS;
	r.identity = "john@example.com";
	assert_int_equal(auth_limiter_conclude(l, "imap", "203.0.113.99", 7, &r, &delay),
			 SASL_SUCCESS);
	assert_int_equal(delay, 0);
	auth_limiter_free(&l);
}

static void test_success_resets_account(void **state)
{
	struct auth_limiter_settings s = defaults();
	struct auth_limiter *l;
	struct auth_attempt ok = { .service = "smtp", .ip = "192.0.2.9", .account = "john" };

	(void)state;
	now_ms = 1;
	s.ip_lockout_failures = 0;
	l = auth_limiter_new(&s, test_clock);
	for (int i = 0; i < 9; i++)
		do_fail(l, "192.0.2.9", "john");
	auth_limiter_success(l, &ok);
	/* the account starts over, the IP does not */
	assert_int_equal(do_fail(l, "192.0.2.10", "john"), 0);
	assert_int_equal(do_fail(l, "192.0.2.9", "other"), 7 * 2000 > 15000 ? 15000 : 7 * 2000);
	assert_false(auth_limiter_account_locked(l, "john", NULL));
	auth_limiter_free(&l);
}

static void test_window_expiry(void **state)
{
	struct auth_limiter_settings s = defaults();
	struct auth_limiter *l;

	(void)state;
	now_ms = 1;
	l = auth_limiter_new(&s, test_clock);
	for (int i = 0; i < 5; i++)
		do_fail(l, "192.0.2.1", "john");
	now_ms += 899999;
	assert_int_equal(do_fail(l, "192.0.2.1", "john"), 3 * 2000);   /* 6th, still counted */
	now_ms += 900000;
	assert_int_equal(do_fail(l, "192.0.2.1", "john"), 0);          /* forgotten */
	auth_limiter_free(&l);
}

static void test_ipv6_prefix(void **state)
{
	struct auth_limiter_settings s = defaults();
	struct auth_limiter *l;
	char *k;

	(void)state;
	k = auth_limiter_ip_key("2001:db8:1:2:3:4:5:6");
	assert_string_equal(k, "2001:db8:1:2::/64");
	free(k);
	k = auth_limiter_ip_key("::ffff:192.0.2.1");
	assert_string_equal(k, "192.0.2.1");
	free(k);
	k = auth_limiter_ip_key("192.0.2.1");
	assert_string_equal(k, "192.0.2.1");
	free(k);
	k = auth_limiter_ip_key("");
	assert_string_equal(k, "-");
	free(k);
	k = auth_limiter_ip_key("not an address");
	assert_string_equal(k, "not an address");
	free(k);

	now_ms = 1;
	s.ip_lockout_failures = 4;
	l = auth_limiter_new(&s, test_clock);
	do_fail(l, "2001:db8:1:2::1", NULL);
	do_fail(l, "2001:db8:1:2::2", NULL);
	do_fail(l, "2001:db8:1:2:ffff::3", NULL);
	assert_false(auth_limiter_ip_locked(l, "2001:db8:1:2::9", NULL));
	do_fail(l, "2001:db8:1:2:1:2:3:4", NULL);
	assert_true(auth_limiter_ip_locked(l, "2001:db8:1:2::9", NULL));
	assert_false(auth_limiter_ip_locked(l, "2001:db8:1:3::1", NULL));
	auth_limiter_free(&l);
}

/* Memory is bounded: past max_entries the oldest failure is forgotten. */
static void test_memory_bound(void **state)
{
	struct auth_limiter_settings s = defaults();
	struct auth_limiter *l;

	(void)state;
	now_ms = 1;
	s.max_entries = 100;
	l = auth_limiter_new(&s, test_clock);
	for (int i = 0; i < 5; i++)
		do_fail(l, "10.0.0.1", NULL);
	assert_int_equal(do_fail(l, "10.0.0.1", NULL), 3 * 2000);
	for (int i = 0; i < 20000; i++) {
		char ip[32];

		now_ms++;
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		if (i != 1)
			do_fail(l, ip, NULL);
	}
	/* 10.0.0.1 was pushed out: it starts over */
	assert_int_equal(do_fail(l, "10.0.0.1", NULL), 0);
	auth_limiter_free(&l);
}

static void test_conclude(void **state)
{
	struct auth_limiter_settings s = defaults();
	struct auth_limiter *l;
	struct sasl_reply r;
	int64_t delay;

	(void)state;
	now_ms = 1;
	s.delay_after = 0;
	l = auth_limiter_new(&s, test_clock);
	memset(&r, 0, sizeof(r));
	/* CONTINUE and temporary failures are not counted */
	r.status = SASL_CONTINUE;
	assert_int_equal(auth_limiter_conclude(l, "imap", "192.0.2.1", 1, &r, &delay),
			 SASL_CONTINUE);
	assert_int_equal(delay, 0);
	r.status = SASL_FAILURE;
	r.failure = SASL_FAIL_TEMPORARY;
	assert_int_equal(auth_limiter_conclude(l, "imap", "192.0.2.1", 1, &r, &delay),
			 SASL_FAILURE);
	assert_int_equal(delay, 0);
	/* a malformed response counts for the IP only */
	r.failure = SASL_FAIL_SYNTAX;
	r.mech = SASL_MECH_PLAIN;
	r.account = "john";
	assert_int_equal(auth_limiter_conclude(l, "imap", "192.0.2.1", 1, &r, &delay),
			 SASL_FAILURE);
	assert_int_equal(delay, 2000);
	assert_int_equal(do_fail(l, "192.0.2.200", "john"), 2000);   /* john's first */
	/* a credentials failure counts for both */
	r.failure = SASL_FAIL_CREDENTIALS;
	assert_int_equal(auth_limiter_conclude(l, "imap", "192.0.2.1", 1, &r, &delay),
			 SASL_FAILURE);
	assert_int_equal(delay, 4000);
	assert_int_equal(do_fail(l, "192.0.2.201", "john"), 6000);   /* john's third */
	/* an unknown mechanism has no name */
	r.mech = SASL_MECH_COUNT;
	r.failure = SASL_FAIL_MECHANISM;
	assert_int_equal(auth_limiter_conclude(l, "imap", "192.0.2.1", 1, &r, &delay),
			 SASL_FAILURE);
	/* a locked IP turns a success into a failure too */
	s.ip_lockout_failures = 3;
	auth_limiter_configure(l, &s);
	do_fail(l, "192.0.2.1", NULL);
	memset(&r, 0, sizeof(r));
	r.status = SASL_SUCCESS;
	r.identity = "john@example.com";
	r.account = "john@example.com";
	r.text = "dj14eXo=";
	assert_int_equal(auth_limiter_conclude(l, "imap", "192.0.2.1", 1, &r, &delay),
			 SASL_FAILURE);
	assert_string_equal(r.reason, "ip locked");
	assert_string_equal(r.text, "");
	auth_limiter_free(&l);
}

static void test_shared(void **state)
{
	struct cfg *cfg = cfg_new_default("/tmp");
	struct auth_limiter *a, *b;

	(void)state;
	a = auth_limiter_shared(&cfg->s);
	cfg->s.auth_delay_after = 0;
	b = auth_limiter_shared(&cfg->s);
	assert_ptr_equal(a, b);
	/* the new setting took effect: the first failure is delayed */
	assert_int_equal(do_fail(b, "192.0.2.77", NULL), 2000);
	cfg_unref(&cfg);
}

/* Four threads failing at once: every failure is counted exactly once. */
struct thread_arg {
	struct auth_limiter *l;
	int64_t max_delay;
};

static void *hammer(void *p)
{
	struct thread_arg *t = p;

	for (int i = 0; i < 2000; i++) {
		char ip[32];
		int64_t d;

		snprintf(ip, sizeof(ip), "10.1.%d.%d", (i / 250) % 4, i % 250);
		d = do_fail(t->l, ip, "shared-account");
		if (d > t->max_delay)
			t->max_delay = d;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct auth_limiter_settings s = defaults();
	struct auth_limiter *l;
	pthread_t th[4];
	struct thread_arg args[4];
	int64_t max = 0;

	(void)state;
	now_ms = 1;
	s.delay_after = 0;
	s.failure_delay_ms = 1;
	s.max_delay_ms = 1000000;
	s.account_lockout_failures = 0;
	s.ip_lockout_failures = 0;
	l = auth_limiter_new(&s, test_clock);
	for (int i = 0; i < 4; i++) {
		args[i].l = l;
		args[i].max_delay = 0;
		assert_int_equal(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		if (args[i].max_delay > max)
			max = args[i].max_delay;
	}
	assert_int_equal(max, 8000);
	auth_limiter_free(&l);
}

/* security.log: one line per failure and per lockout; login escaped and
 * quoted, the quote character unable to forge fields; no password. */
static void test_security_log(void **state)
{
	struct auth_limiter_settings s = defaults();
	struct auth_limiter *l;
	struct log_config lc;
	char dir[] = "/tmp/petrel-auth-log-XXXXXX", *path, *text;
	const char *err;
	size_t len;
	struct auth_attempt a = { .service = "smtp", .ip = "192.0.2.5", .session = 42,
				  .mechanism = "LOGIN", .login = "ev\"il\r\nx=1",
				  .account = "ev\"il\r\nx=1", .reason = "wrong password" };

	(void)state;
	assert_non_null(mkdtemp(dir));
	memset(&lc, 0, sizeof(lc));
	for (int i = 0; i < LOG_FILE_COUNT; i++)
		lc.files[i].keep = 1;
	assert_int_equal(log_open(dir, &lc, &err), 0);
	now_ms = 1;
	s.account_lockout_failures = 2;
	l = auth_limiter_new(&s, test_clock);
	auth_limiter_failure(l, &a);
	auth_limiter_failure(l, &a);
	assert_int_equal(log_open(scratch, &lc, &err), 0);
	path = xasprintf("%s/security.log", dir);
	assert_int_equal(fileio_read_all(path, 1 << 20, &text, &len), 0);
	assert_non_null(strstr(text, "service=smtp session=42 ip=192.0.2.5 "
				     "login=\"ev\\\\x22il\\r\\nx=1\" mechanism=LOGIN "
				     "authentication failed reason=\"wrong password\" failures=1"));
	assert_non_null(strstr(text, "failures=2"));
	assert_non_null(strstr(text, "account=\"ev\\\\x22il\\r\\nx=1\" lockout: 2 failed logins"));
	/* exactly three lines */
	{
		int lines = 0;

		for (size_t i = 0; i < len; i++)
			lines += text[i] == '\n';
		assert_int_equal(lines, 3);
	}
	free(text);
	unlink(path);
	free(path);
	{
		char *cmd = xasprintf("rm -rf %s", dir);

		assert_int_equal(system(cmd), 0);
		free(cmd);
	}
	auth_limiter_free(&l);
}


static int group_setup(void **state)
{
	struct log_config lc;
	const char *err;

	(void)state;
	memset(&lc, 0, sizeof(lc));
	for (int i = 0; i < LOG_FILE_COUNT; i++)
		lc.files[i].keep = 1;
	if (mkdtemp(scratch) == NULL || log_open(scratch, &lc, &err) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	char *cmd = xasprintf("rm -rf %s", scratch);

	(void)state;
	log_close();
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", scratch);
	free(cmd);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delays),
		cmocka_unit_test(test_ip_lockout),
		cmocka_unit_test(test_account_lockout),
		cmocka_unit_test(test_success_resets_account),
		cmocka_unit_test(test_window_expiry),
		cmocka_unit_test(test_ipv6_prefix),
		cmocka_unit_test(test_memory_bound),
		cmocka_unit_test(test_conclude),
		cmocka_unit_test(test_shared),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_security_log),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
