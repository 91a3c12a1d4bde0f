/*
 * Unit tests for src/smtp/smtp_limits.c and smtp_relay.c: the per-IP
 * message rate (fixed windows, IPv6 /64 grouping, bounded memory, counters
 * at their edges: HOSTILE-INPUT 9), the per-IP connection count, the
 * authenticated-exempt words, relay networks (loopback is not trusted) and
 * the submission sender check against a directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/cfg.h"
#include "directory/directory.h"
#include "smtp/smtp.h"
#include "smtp/smtp_private.h"

static int64_t fake_now;

static int64_t fake_clock(void)
{
	return fake_now;
}

static void test_rate_windows(void **state)
{
	struct smtp_rate *r = smtp_rate_new(100, fake_clock);

	fake_now = 1000;
	assert_true(smtp_rate_allowed(r, "192.0.2.1", 2));
	smtp_rate_count(r, "192.0.2.1");
	assert_true(smtp_rate_allowed(r, "192.0.2.1", 2));
	smtp_rate_count(r, "192.0.2.1");
	assert_false(smtp_rate_allowed(r, "192.0.2.1", 2));
	assert_true(smtp_rate_allowed(r, "192.0.2.2", 2));
	assert_true(smtp_rate_allowed(r, "192.0.2.1", 0));   /* 0: no limit */
	/* the window ends an hour after it began */
	fake_now += 3599;
	assert_false(smtp_rate_allowed(r, "192.0.2.1", 2));
	fake_now += 1;
	assert_true(smtp_rate_allowed(r, "192.0.2.1", 2));
	assert_int_equal(smtp_rate_get(r, "192.0.2.1"), 0);
	smtp_rate_free(&r);
	assert_null(r);
}

static void test_rate_ipv6_per_64(void **state)
{
	struct smtp_rate *r = smtp_rate_new(100, fake_clock);

	fake_now = 5;
	smtp_rate_count(r, "2001:db8:1:2::1");
	smtp_rate_count(r, "2001:db8:1:2:ffff::9");
	assert_int_equal(smtp_rate_get(r, "2001:db8:1:2::77"), 2);
	assert_int_equal(smtp_rate_get(r, "2001:db8:1:3::1"), 0);
	smtp_rate_free(&r);
}

static void test_rate_memory_bounded(void **state)
{
	struct smtp_rate *r = smtp_rate_new(50, fake_clock);
	char ip[32];

	fake_now = 0;
	for (int i = 0; i < 1000; i++) {
		snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
		smtp_rate_count(r, ip);
	}
	assert_int_equal(smtp_rate_entries(r), 50);
	/* after the windows expire, new addresses are tracked again */
	fake_now = 4000;
	smtp_rate_count(r, "192.0.2.99");
	assert_int_equal(smtp_rate_get(r, "192.0.2.99"), 1);
	assert_true(smtp_rate_entries(r) <= 50);
	smtp_rate_free(&r);
}

static void test_rate_count_saturates(void **state)
{
	struct smtp_rate *r = smtp_rate_new(10, fake_clock);

	fake_now = 0;
	for (int i = 0; i < 10; i++)
		smtp_rate_count(r, "192.0.2.1");
	assert_int_equal(smtp_rate_get(r, "192.0.2.1"), 10);
	assert_false(smtp_rate_allowed(r, "192.0.2.1", 10));
	assert_true(smtp_rate_allowed(r, "192.0.2.1", UINT64_MAX));
	smtp_rate_free(&r);
}

static void test_conn_counter(void **state)
{
	assert_true(smtp_conn_acquire("192.0.2.7", 2));
	assert_true(smtp_conn_acquire("192.0.2.7", 2));
	assert_false(smtp_conn_acquire("192.0.2.7", 2));
	assert_true(smtp_conn_acquire("192.0.2.8", 2));
	smtp_conn_release("192.0.2.7");
	assert_true(smtp_conn_acquire("192.0.2.7", 2));
	smtp_conn_release("192.0.2.7");
	smtp_conn_release("192.0.2.7");
	smtp_conn_release("192.0.2.8");
}

static void test_exempt_words(void **state)
{
	assert_int_equal(smtp_exempt_parse("none"), 0);
	assert_int_equal(smtp_exempt_parse("message-rate"), SMTP_EXEMPT_MESSAGE_RATE);
	assert_int_equal(smtp_exempt_parse("recipients  unknown-recipients,failed-commands"),
			 SMTP_EXEMPT_RECIPIENTS | SMTP_EXEMPT_UNKNOWN_RECIPIENTS |
			 SMTP_EXEMPT_FAILED_COMMANDS);
}

static struct cfg *cfg_with(const char *xml)
{
	struct cfg *cfg = NULL;
	char *error = NULL;

	if (cfg_parse("test.cfg", "/tmp", xml, strlen(xml), NULL, NULL, &cfg, &error) < 0)
		fail_msg("config refused: %s", error);
	return cfg;
}

static void test_relay_networks(void **state)
{
	struct cfg *cfg = cfg_with("<petrel><smtp><relay-networks>"
				   "<network>192.0.2.0/24</network><network>2001:db8::/32</network>"
				   "<network>198.51.100.7</network>"
				   "</relay-networks></smtp></petrel>");

	assert_int_equal(cfg->relay_network_count, 3);
	assert_string_equal(cfg->relay_networks[2].text, "198.51.100.7/32");
	assert_int_equal(smtp_relay_check(cfg, "192.0.2.200", false), SMTP_RELAY_NETWORK);
	assert_int_equal(smtp_relay_check(cfg, "::ffff:192.0.2.1", false), SMTP_RELAY_NETWORK);
	assert_int_equal(smtp_relay_check(cfg, "192.0.3.1", false), SMTP_RELAY_DENIED);
	assert_int_equal(smtp_relay_check(cfg, "2001:db8:ffff::1", false), SMTP_RELAY_NETWORK);
	assert_int_equal(smtp_relay_check(cfg, "2001:db9::1", false), SMTP_RELAY_DENIED);
	assert_int_equal(smtp_relay_check(cfg, "198.51.100.7", false), SMTP_RELAY_NETWORK);
	assert_int_equal(smtp_relay_check(cfg, "198.51.100.8", false), SMTP_RELAY_DENIED);
	/* loopback is a secure channel for logins, never a relay right */
	assert_int_equal(smtp_relay_check(cfg, "127.0.0.1", false), SMTP_RELAY_DENIED);
	assert_int_equal(smtp_relay_check(cfg, "::1", false), SMTP_RELAY_DENIED);
	assert_int_equal(smtp_relay_check(cfg, "127.0.0.1", true), SMTP_RELAY_AUTHENTICATED);
	cfg_unref(&cfg);
}

static bool recent_yes(const char *ip, int64_t window)
{
	return strcmp(ip, "203.0.113.5") == 0 && window == 600;
}

static void test_pop_before_smtp(void **state)
{
	struct cfg *cfg = cfg_with("<petrel><smtp><pop-before-smtp>10m</pop-before-smtp></smtp></petrel>");
	struct cfg *off = cfg_with("<petrel/>");

	assert_int_equal(smtp_relay_check(cfg, "203.0.113.5", false), SMTP_RELAY_DENIED);
	smtp_set_recent_login_lookup(recent_yes);
	assert_int_equal(smtp_relay_check(cfg, "203.0.113.5", false), SMTP_RELAY_POP_BEFORE_SMTP);
	assert_int_equal(smtp_relay_check(cfg, "203.0.113.6", false), SMTP_RELAY_DENIED);
	assert_int_equal(smtp_relay_check(off, "203.0.113.5", false), SMTP_RELAY_DENIED);
	smtp_set_recent_login_lookup(NULL);
	cfg_unref(&cfg);
	cfg_unref(&off);
}

static void test_relay_network_must_reject(void **state)
{
	static const char *const bad[] = {
		"10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "300.0.0.0/8", "x",
		"2001:db8::1/32", "2001:db8::/129", "::ffff:10.0.0.0/104", "", "10.0.0.0/8/8",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char xml[256];
		struct cfg *cfg = NULL;
		char *error = NULL;

		snprintf(xml, sizeof(xml),
			 "<petrel><smtp><relay-networks><network>%s</network></relay-networks></smtp></petrel>",
			 bad[i]);
		if (cfg_parse("test.cfg", "/tmp", xml, strlen(xml), NULL, NULL, &cfg, &error) == 0)
			fail_msg("network '%s' accepted", bad[i]);
		assert_non_null(strstr(error, "relay-networks"));
		free(error);
	}
}

static void test_relay_networks_round_trip(void **state)
{
	struct cfg *cfg = cfg_with("<petrel><smtp><relay-networks><network>10.0.0.0/8</network>"
				   "</relay-networks><bare-line-ends>reject</bare-line-ends></smtp></petrel>");
	char *text = cfg_format(cfg);
	struct cfg *again = cfg_with(text);

	assert_true(cfg_equal(cfg, again));
	assert_non_null(strstr(text, "<network>10.0.0.0/8</network>"));
	assert_string_equal(again->s.smtp_bare_line_ends, "reject");
	free(text);
	cfg_unref(&cfg);
	cfg_unref(&again);
}

static const char users_xml[] =
	"<users><domain name=\"example.test\" primary=\"yes\">"
	"<alias-domain>example.net</alias-domain>"
	"<user name=\"john\"><alias>j.smith@example.test</alias></user>"
	"<user name=\"mary\"/>"
	"<alias name=\"sales\"><target>john@example.test</target></alias>"
	"<group name=\"staff\"><member>john@example.test</member><member>mary@example.test</member></group>"
	"<list name=\"news\"><moderator>mary@example.test</moderator>"
	"<member>john@example.test</member></list>"
	"</domain></users>";

static void test_sender_owned(void **state)
{
	struct directory *dir = NULL;
	char *error = NULL;

	if (directory_parse("users.cfg", users_xml, strlen(users_xml), NULL, NULL, &dir, &error) < 0)
		fail_msg("users.cfg refused: %s", error);
	assert_true(smtp_sender_owned(dir, "john@example.test", "john@example.test"));
	assert_true(smtp_sender_owned(dir, "john@example.test", "John@Example.Test"));
	assert_true(smtp_sender_owned(dir, "john@example.test", "john@example.net"));
	assert_true(smtp_sender_owned(dir, "john@example.test", "j.smith@example.test"));
	assert_true(smtp_sender_owned(dir, "john@example.test", "sales@example.test"));
	assert_true(smtp_sender_owned(dir, "john@example.test", "staff@example.test"));
	assert_true(smtp_sender_owned(dir, "john@example.test", ""));
	assert_true(smtp_sender_owned(dir, "mary@example.test", "news@example.test"));
	/* must reject */
	assert_false(smtp_sender_owned(dir, "john@example.test", "news@example.test"));
	assert_false(smtp_sender_owned(dir, "mary@example.test", "john@example.test"));
	assert_false(smtp_sender_owned(dir, "mary@example.test", "sales@example.test"));
	assert_false(smtp_sender_owned(dir, "john@example.test", "ceo@elsewhere.example"));
	assert_false(smtp_sender_owned(dir, "john@example.test", "nobody@example.test"));
	assert_false(smtp_sender_owned(dir, "ghost@example.test", "ghost@example.test"));
	directory_unref(&dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_windows),
		cmocka_unit_test(test_rate_ipv6_per_64),
		cmocka_unit_test(test_rate_memory_bounded),
		cmocka_unit_test(test_rate_count_saturates),
		cmocka_unit_test(test_conn_counter),
		cmocka_unit_test(test_exempt_words),
		cmocka_unit_test(test_relay_networks),
		cmocka_unit_test(test_pop_before_smtp),
		cmocka_unit_test(test_relay_network_must_reject),
		cmocka_unit_test(test_relay_networks_round_trip),
		cmocka_unit_test(test_sender_owned),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
