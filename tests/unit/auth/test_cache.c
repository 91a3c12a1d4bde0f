/*
 * Unit tests for the verified-credential cache (src/auth/auth_cache.c),
 * with an injected clock: a hit, misses on a wrong password, another user
 * or a changed stored hash, expiry, the LRU bound, ttl 0, reconfiguring,
 * concurrent use; then through the real directory backend and PLAIN: the
 * second login is a hit, a password set again misses at once and the old
 * one fails, a disabled user is refused even with an entry.
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

#include "auth/auth.h"
#include "auth/auth_cache.h"
#include "auth/sasl.h"
#include "core/cfg.h"
#include "directory/directory.h"

#define HASH_A "$y$j9T$saltsaltsaltsalt$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "$y$j9T$othersaltothers$bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static int64_t now_ms;

static int64_t test_clock(void)
{
	return now_ms;
}

static struct auth_cache *new_cache(int64_t ttl_ms, size_t max)
{
	struct auth_cache_settings set = { .ttl_ms = ttl_ms, .max_entries = max };

	now_ms = 1000000;
	return auth_cache_new(&set, test_clock);
}

static struct auth_cache_stats stats(struct auth_cache *c)
{
	struct auth_cache_stats st;

	auth_cache_get_stats(c, &st);
	return st;
}

static void test_hit_and_misses(void **state)
{
	struct auth_cache *c = new_cache(300000, 100);

	(void)state;
	assert_false(auth_cache_lookup(c, "john@example.com", HASH_A, "secret"));
	auth_cache_remember(c, "john@example.com", HASH_A, "secret");
	assert_true(auth_cache_lookup(c, "john@example.com", HASH_A, "secret"));
	/* A wrong password, a longer or shorter one, another user. */
	assert_false(auth_cache_lookup(c, "john@example.com", HASH_A, "Secret"));
	assert_false(auth_cache_lookup(c, "john@example.com", HASH_A, "secret1"));
	assert_false(auth_cache_lookup(c, "john@example.com", HASH_A, "secre"));
	assert_false(auth_cache_lookup(c, "mary@example.com", HASH_A, "secret"));
	/* A wrong password did not evict the right one. */
	assert_true(auth_cache_lookup(c, "john@example.com", HASH_A, "secret"));
	assert_int_equal(stats(c).hits, 2);
	assert_int_equal(stats(c).misses, 5);
	assert_int_equal(stats(c).entries, 1);
	auth_cache_free(&c);
	assert_null(c);
}

/* The stored hash is inside the MAC: a password set again (new hash) by
 * any route misses at once, even with the old password. */
static void test_changed_hash_misses(void **state)
{
	struct auth_cache *c = new_cache(300000, 100);

	(void)state;
	auth_cache_remember(c, "john@example.com", HASH_A, "secret");
	assert_false(auth_cache_lookup(c, "john@example.com", HASH_B, "secret"));
	assert_false(auth_cache_lookup(c, "john@example.com", HASH_B, "new"));
	/* A full check of the new password replaces the entry. */
	auth_cache_remember(c, "john@example.com", HASH_B, "new");
	assert_true(auth_cache_lookup(c, "john@example.com", HASH_B, "new"));
	assert_false(auth_cache_lookup(c, "john@example.com", HASH_A, "secret"));
	assert_int_equal(stats(c).entries, 1);
	auth_cache_free(&c);
}

static void test_expiry(void **state)
{
	struct auth_cache *c = new_cache(300000, 100);

	(void)state;
	auth_cache_remember(c, "john@example.com", HASH_A, "secret");
	now_ms += 299999;
	assert_true(auth_cache_lookup(c, "john@example.com", HASH_A, "secret"));
	/* A hit does not extend the ttl: the password is checked in full at
	 * least once per ttl. */
	now_ms += 1;
	assert_false(auth_cache_lookup(c, "john@example.com", HASH_A, "secret"));
	assert_int_equal(stats(c).entries, 0);
	auth_cache_remember(c, "john@example.com", HASH_A, "secret");
	assert_true(auth_cache_lookup(c, "john@example.com", HASH_A, "secret"));
	auth_cache_free(&c);
}

static void test_lru_bound(void **state)
{
	struct auth_cache *c = new_cache(300000, 3);
	char id[64];

	(void)state;
	auth_cache_remember(c, "u0@example.com", HASH_A, "p0");
	auth_cache_remember(c, "u1@example.com", HASH_A, "p1");
	auth_cache_remember(c, "u2@example.com", HASH_A, "p2");
	/* u0 used again: u1 is now the least recently used. */
	assert_true(auth_cache_lookup(c, "u0@example.com", HASH_A, "p0"));
	auth_cache_remember(c, "u3@example.com", HASH_A, "p3");
	assert_int_equal(stats(c).entries, 3);
	assert_false(auth_cache_lookup(c, "u1@example.com", HASH_A, "p1"));
	assert_true(auth_cache_lookup(c, "u0@example.com", HASH_A, "p0"));
	assert_true(auth_cache_lookup(c, "u2@example.com", HASH_A, "p2"));
	assert_true(auth_cache_lookup(c, "u3@example.com", HASH_A, "p3"));
	/* Many more users (the table grows) never exceed the bound. */
	for (int i = 0; i < 2000; i++) {
		snprintf(id, sizeof(id), "many%d@example.com", i);
		auth_cache_remember(c, id, HASH_A, "p");
		assert_true(stats(c).entries <= 3);
	}
	assert_true(auth_cache_lookup(c, "many1999@example.com", HASH_A, "p"));
	assert_false(auth_cache_lookup(c, "many1996@example.com", HASH_A, "p"));
	auth_cache_free(&c);

	/* Without a small bound the table grows past its first buckets. */
	c = new_cache(300000, 100000);
	for (int i = 0; i < 3000; i++) {
		snprintf(id, sizeof(id), "grow%d@example.com", i);
		auth_cache_remember(c, id, HASH_A, id);
	}
	assert_int_equal(stats(c).entries, 3000);
	for (int i = 0; i < 3000; i += 7) {
		snprintf(id, sizeof(id), "grow%d@example.com", i);
		assert_true(auth_cache_lookup(c, id, HASH_A, id));
	}
	auth_cache_free(&c);
}

static void test_ttl_zero_disables(void **state)
{
	struct auth_cache *c = new_cache(0, 100);
	struct auth_cache_settings on = { .ttl_ms = 60000, .max_entries = 100 };
	struct auth_cache_settings off = { .ttl_ms = 0, .max_entries = 100 };
	struct auth_cache_settings small = { .ttl_ms = 60000, .max_entries = 1 };

	(void)state;
	auth_cache_remember(c, "john@example.com", HASH_A, "secret");
	assert_false(auth_cache_lookup(c, "john@example.com", HASH_A, "secret"));
	assert_int_equal(stats(c).entries, 0);
	/* Off: lookups are not even counted as misses. */
	assert_int_equal(stats(c).misses, 0);

	auth_cache_configure(c, &on);
	auth_cache_remember(c, "john@example.com", HASH_A, "secret");
	auth_cache_remember(c, "mary@example.com", HASH_A, "secret");
	assert_true(auth_cache_lookup(c, "john@example.com", HASH_A, "secret"));
	/* Shrinking evicts now; turning off forgets everything. */
	auth_cache_configure(c, &small);
	assert_int_equal(stats(c).entries, 1);
	auth_cache_configure(c, &off);
	assert_int_equal(stats(c).entries, 0);
	auth_cache_configure(c, &on);
	assert_false(auth_cache_lookup(c, "john@example.com", HASH_A, "secret"));
	auth_cache_remember(c, "john@example.com", HASH_A, "secret");
	auth_cache_flush(c);
	assert_false(auth_cache_lookup(c, "john@example.com", HASH_A, "secret"));
	auth_cache_free(&c);
}

/* The process-wide cache: created once, flushed by the reload hook,
 * switched off by a ttl of 0 in new settings. */
static void test_shared_follows_settings(void **state)
{
	struct cfg *cfg = cfg_new_default("/tmp");
	struct auth_cache *c = auth_cache_shared(&cfg->s), *again;
	struct auth_cache_stats st;

	(void)state;
	assert_non_null(c);
	auth_cache_remember(c, "john@example.com", HASH_A, "secret");
	assert_true(auth_cache_lookup(c, "john@example.com", HASH_A, "secret"));
	auth_cache_shared_stats(&st);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.hits, 1);
	auth_cache_flush_shared();
	assert_false(auth_cache_lookup(c, "john@example.com", HASH_A, "secret"));
	cfg->s.auth_cache_ttl = 0;
	again = auth_cache_shared(&cfg->s);
	assert_ptr_equal(again, c);
	auth_cache_remember(c, "john@example.com", HASH_A, "secret");
	assert_false(auth_cache_lookup(c, "john@example.com", HASH_A, "secret"));
	cfg_unref(&cfg);
}

struct thread_arg {
	struct auth_cache *cache;
	int id;
	int hits;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	char id[64];

	for (int i = 0; i < 2000; i++) {
		snprintf(id, sizeof(id), "t%d-%d@example.com", a->id, i % 50);
		if (auth_cache_lookup(a->cache, id, HASH_A, "pw"))
			a->hits++;
		else
			auth_cache_remember(a->cache, id, HASH_A, "pw");
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct auth_cache *c = new_cache(300000, 120);
	pthread_t t[4];
	struct thread_arg a[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		a[i] = (struct thread_arg){ .cache = c, .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, thread_main, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_true(stats(c).entries <= 120);
	assert_int_equal(stats(c).hits, (uint64_t)(a[0].hits + a[1].hits + a[2].hits + a[3].hits));
	auth_cache_free(&c);
}

/* ---- through the directory backend and PLAIN ---- */

struct fixture {
	struct directory *dir;
	struct cfg *cfg;
	struct auth_cache *cache;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct directory *d0 = directory_new_empty(), *d1 = NULL;
	struct dir_user_spec spec = { .name = "john", .password = "old secret" };
	char *error = NULL;

	directory_set_secrets_hook(auth_derive_secrets);
	directory_set_prepare_hook(auth_prepare_password);
	assert_int_equal(directory_add_domain(d0, "example.com", true, &d1, &error), 0);
	if (directory_add_user(d1, &spec, &f->dir, &error) < 0)
		fail_msg("directory_add_user: %s", error);
	directory_unref(&d0);
	directory_unref(&d1);
	f->cfg = cfg_new_default("/tmp");
	f->cache = new_cache(300000, 100);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	directory_unref(&f->dir);
	cfg_unref(&f->cfg);
	auth_cache_free(&f->cache);
	directory_set_prepare_hook(NULL);
	directory_set_secrets_hook(NULL);
	free(f);
	return 0;
}

/* One PLAIN login on snapshot dir, as a session does it. */
static enum sasl_status plain(struct fixture *f, struct directory *dir, const char *user,
			      const char *pass)
{
	struct sasl_backend backend;
	struct sasl_params params = { .cfg = f->cfg, .service = "imap",
				      .hostname = "mail.example.com", .secure = true };
	struct sasl_server *s;
	struct sasl_reply r;
	enum sasl_status st;
	char msg[256];
	size_t n = 0;

	auth_directory_backend_init(&backend, dir);
	auth_directory_backend_set_cache(&backend, f->cache);
	s = sasl_server_new(&params, &backend);
	msg[n++] = '\0';
	n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s", user);
	msg[n++] = '\0';
	n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s", pass);
	st = sasl_server_start(s, "PLAIN", msg, n, true, &r);
	sasl_server_free(&s);
	auth_directory_backend_deinit(&backend);
	return st;
}

static void test_backend_second_login_hits(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(plain(f, f->dir, "john", "old secret"), SASL_SUCCESS);
	assert_int_equal(stats(f->cache).hits, 0);
	assert_int_equal(stats(f->cache).entries, 1);
	assert_int_equal(plain(f, f->dir, "john@example.com", "old secret"), SASL_SUCCESS);
	assert_int_equal(stats(f->cache).hits, 1);
	/* SASLprep'd: a NO-BREAK SPACE is the same password, and a hit. */
	assert_int_equal(plain(f, f->dir, "JOHN", "old\xc2\xa0secret"), SASL_SUCCESS);
	assert_int_equal(stats(f->cache).hits, 2);
	/* A wrong password is a miss, then fails the full check. */
	assert_int_equal(plain(f, f->dir, "john", "old secreT"), SASL_FAILURE);
	assert_int_equal(stats(f->cache).hits, 2);
	/* Failures are not remembered, unknown users not looked up. */
	assert_int_equal(plain(f, f->dir, "nobody", "old secret"), SASL_FAILURE);
	assert_int_equal(stats(f->cache).entries, 1);
}

static void test_backend_password_change(void **state)
{
	struct fixture *f = *state;
	struct directory *changed = NULL;
	char *error = NULL;

	assert_int_equal(plain(f, f->dir, "john", "old secret"), SASL_SUCCESS);
	if (directory_set_password(f->dir, "john", "new secret", &changed, &error) < 0)
		fail_msg("directory_set_password: %s", error);
	assert_int_equal(plain(f, changed, "john", "old secret"), SASL_FAILURE);
	assert_int_equal(plain(f, changed, "john", "new secret"), SASL_SUCCESS);
	assert_int_equal(plain(f, changed, "john", "new secret"), SASL_SUCCESS);
	assert_int_equal(stats(f->cache).hits, 1);
	assert_int_equal(plain(f, changed, "john", "old secret"), SASL_FAILURE);
	directory_unref(&changed);
}

static void test_backend_disabled_user(void **state)
{
	struct fixture *f = *state;
	struct dir_user_update off = { .enabled = DIR_SET_NO, .quota_storage = -1,
				       .quota_messages = -1 };
	struct directory *disabled = NULL;
	char *error = NULL;

	assert_int_equal(plain(f, f->dir, "john", "old secret"), SASL_SUCCESS);
	if (directory_update_user(f->dir, "john", &off, &disabled, &error) < 0)
		fail_msg("directory_update_user: %s", error);
	/* Same stored hash, so the cache says yes to the password; the
	 * account check after it still refuses. */
	assert_int_equal(plain(f, disabled, "john", "old secret"), SASL_FAILURE);
	assert_int_equal(stats(f->cache).hits, 1);
	/* A disabled user's success is never remembered. */
	auth_cache_flush(f->cache);
	assert_int_equal(plain(f, disabled, "john", "old secret"), SASL_FAILURE);
	assert_int_equal(stats(f->cache).entries, 0);
	directory_unref(&disabled);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_and_misses),
		cmocka_unit_test(test_changed_hash_misses),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_lru_bound),
		cmocka_unit_test(test_ttl_zero_disables),
		cmocka_unit_test(test_shared_follows_settings),
		cmocka_unit_test(test_threads),
		cmocka_unit_test_setup_teardown(test_backend_second_login_hits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_password_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_disabled_user, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
