/* Unit tests for the outbound reply parser, EHLO capabilities and xtext
 * (outbound/outbound_parse.c), including HOSTILE-INPUT row 6. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "outbound/outbound.h"
#include "outbound/outbound_private.h"

static enum outbound_reply_result parse(const char *s, size_t len, struct outbound_reply *r,
					size_t *used)
{
	const char *err = NULL;

	return outbound_reply_parse(s, len, r, used, &err);
}

static void test_reply_table(void **state)
{
	static const struct {
		const char *in;
		enum outbound_reply_result res;
		int code;
		const char *enhanced;
		const char *text;
	} rows[] = {
		{ "250 OK\r\n", OUTBOUND_REPLY_DONE, 250, "", "OK" },
		{ "250\r\n", OUTBOUND_REPLY_DONE, 250, "", "" },
		{ "550 5.1.1 <x@y>: no such user\r\n", OUTBOUND_REPLY_DONE, 550, "5.1.1", "<x@y>: no such user" },
		{ "250-mx.example.net\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", OUTBOUND_REPLY_DONE, 250, "",
		  "mx.example.net PIPELINING SIZE 1000" },
		{ "451-4.3.0 a\r\n451 4.3.0 b\r\n", OUTBOUND_REPLY_DONE, 451, "4.3.0", "a b" },
		/* enhanced code class must match the reply class */
		{ "250 5.1.1 odd\r\n", OUTBOUND_REPLY_DONE, 250, "", "5.1.1 odd" },
		{ "354 go ahead\r\n", OUTBOUND_REPLY_DONE, 354, "", "go ahead" },
		/* 8-bit text is kept as '?' */
		{ "250 caf\xc3\xa9\r\n", OUTBOUND_REPLY_DONE, 250, "", "caf??" },
		/* incomplete */
		{ "250-first\r\n", OUTBOUND_REPLY_MORE, 0, NULL, NULL },
		{ "250 OK\r", OUTBOUND_REPLY_MORE, 0, NULL, NULL },
		{ "25", OUTBOUND_REPLY_MORE, 0, NULL, NULL },
		{ "", OUTBOUND_REPLY_MORE, 0, NULL, NULL },
		/* must reject */
		{ "250-a\r\n251 b\r\n", OUTBOUND_REPLY_BAD, 0, NULL, NULL },
		{ "abc def\r\n", OUTBOUND_REPLY_BAD, 0, NULL, NULL },
		{ "250x\r\n", OUTBOUND_REPLY_BAD, 0, NULL, NULL },
		{ "150 no\r\n", OUTBOUND_REPLY_BAD, 0, NULL, NULL },
		{ "650 no\r\n", OUTBOUND_REPLY_BAD, 0, NULL, NULL },
		{ "250 OK\n", OUTBOUND_REPLY_BAD, 0, NULL, NULL },
		{ "250-a\n250 b\r\n", OUTBOUND_REPLY_BAD, 0, NULL, NULL },
		{ "250 a\rb\r\n", OUTBOUND_REPLY_BAD, 0, NULL, NULL },
		{ "\r\n", OUTBOUND_REPLY_BAD, 0, NULL, NULL },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct outbound_reply r;
		size_t used = 0;
		enum outbound_reply_result res = parse(rows[i].in, strlen(rows[i].in), &r, &used);

		assert_int_equal(res, rows[i].res);
		if (res == OUTBOUND_REPLY_DONE) {
			assert_int_equal(r.code, rows[i].code);
			assert_string_equal(r.enhanced, rows[i].enhanced);
			assert_string_equal(r.text, rows[i].text);
			assert_int_equal(used, strlen(rows[i].in));
		}
	}
}

static void test_reply_nul(void **state)
{
	static const char in[] = "250-ok\r\n250-a\0b\r\n250 c\r\n";
	struct outbound_reply r;
	size_t used;

	assert_int_equal(parse(in, sizeof(in) - 1, &r, &used), OUTBOUND_REPLY_BAD);
}

/* HOSTILE-INPUT 6: 64 KiB of "250-" lines and no final line. */
static void test_reply_flood(void **state)
{
	struct buf b;
	struct outbound_reply r;
	size_t used;
	enum outbound_reply_result res = OUTBOUND_REPLY_MORE;

	buf_init(&b, 1024 * 1024);
	while (b.len <= OUTBOUND_MAX_REPLY + 100) {
		assert_int_equal(buf_append_str(&b, "250-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n"), 0);
		res = parse(b.data, b.len, &r, &used);
		if (res != OUTBOUND_REPLY_MORE)
			break;
	}
	assert_int_equal(res, OUTBOUND_REPLY_BAD);
	assert_true(b.len <= OUTBOUND_MAX_REPLY + 100);
	buf_deinit(&b);
}

static void test_reply_long_line(void **state)
{
	char *s = malloc(OUTBOUND_MAX_REPLY_LINE + 100);
	struct outbound_reply r;
	size_t used;

	memcpy(s, "250 ", 4);
	memset(s + 4, 'x', OUTBOUND_MAX_REPLY_LINE + 50);
	assert_int_equal(parse(s, OUTBOUND_MAX_REPLY_LINE + 54, &r, &used), OUTBOUND_REPLY_BAD);
	free(s);
}

/* Byte at a time must equal one shot (STYLE.md §8). */
static void test_reply_byte_at_a_time(void **state)
{
	static const char in[] = "250-mx.example.net Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
				 "250-STARTTLS\r\n250 DSN\r\nEXTRA";
	size_t full = sizeof(in) - 1 - 5;
	struct outbound_reply once, r;
	size_t used_once, used;

	assert_int_equal(parse(in, sizeof(in) - 1, &once, &used_once), OUTBOUND_REPLY_DONE);
	assert_int_equal(used_once, full);
	for (size_t n = 0; n < full; n++)
		assert_int_equal(parse(in, n, &r, &used), OUTBOUND_REPLY_MORE);
	assert_int_equal(parse(in, full, &r, &used), OUTBOUND_REPLY_DONE);
	assert_int_equal(used, used_once);
	assert_string_equal(r.text, once.text);
}

static void test_caps(void **state)
{
	static const char in[] = "250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
				 "250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH LOGIN PLAIN\r\n"
				 "250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250 DSN\r\n";
	struct outbound_caps c;

	outbound_caps_parse(in, sizeof(in) - 1, &c);
	assert_true(c.pipelining && c.size && c.eightbitmime && c.smtputf8 && c.dsn);
	assert_true(c.starttls && c.enhancedstatuscodes && c.auth_plain && c.auth_login);
	assert_int_equal(c.max_size, 10240000);

	outbound_caps_parse("250-x\r\n250 SIZE\r\n", 17, &c);
	assert_true(c.size);
	assert_int_equal(c.max_size, 0);
	assert_false(c.pipelining);
	/* a keyword prefix is not the keyword */
	outbound_caps_parse("250-x\r\n250 PIPELININGX\r\n", 24, &c);
	assert_false(c.pipelining);
}

static void test_xtext(void **state)
{
	struct buf b;

	buf_init(&b, 1024);
	assert_int_equal(outbound_xtext_encode(&b, "a+b=c d\r\n\x01\xff"), 0);
	assert_string_equal(b.data, "a+2Bb+3Dc+20d+0D+0A+01+FF");
	buf_reset(&b);
	assert_int_equal(outbound_xtext_decode("a+2Bb+3Dc+20d+0D+0A", 19, &b), 0);
	assert_string_equal(b.data, "a+b=c d\r\n");
	buf_reset(&b);
	assert_int_equal(outbound_xtext_decode("+00", 3, &b), 0);
	assert_int_equal(b.len, 1);
	assert_int_equal(b.data[0], '\0');
	buf_reset(&b);
	assert_int_equal(outbound_xtext_decode("+0", 2, &b), -1);
	assert_int_equal(outbound_xtext_decode("+", 1, &b), -1);
	assert_int_equal(outbound_xtext_decode("+GG", 3, &b), -1);
	assert_int_equal(outbound_xtext_decode("a=b", 3, &b), -1);
	assert_int_equal(outbound_xtext_decode("a b", 3, &b), -1);
	buf_deinit(&b);
}

static void test_loop_checks(void **state)
{
	struct ob_dest d[4];
	struct ob_resolve res = { .dests = d, .count = 4 };

	(void)state;
	assert_true(ob_greets_as_me("mail.example.test ESMTP Petrel", "mail.example.test"));
	assert_true(ob_greets_as_me("MAIL.Example.TEST", "mail.example.test"));
	assert_false(ob_greets_as_me("mail.example.test.evil ESMTP", "mail.example.test"));
	assert_false(ob_greets_as_me("mail.example ESMTP", "mail.example.test"));
	assert_false(ob_greets_as_me("", "mail.example.test"));
	assert_false(ob_greets_as_me("x ESMTP", ""));

	/* mx1 (5) is preferred to us (10): only mx1 stays, not mx3 (20) */
	memset(d, 0, sizeof(d));
	snprintf(d[0].host, sizeof(d[0].host), "mx1.test");
	d[0].pref = 5;
	snprintf(d[1].host, sizeof(d[1].host), "Me.Test");
	d[1].pref = 10;
	snprintf(d[2].host, sizeof(d[2].host), "mx1.test");
	d[2].pref = 5;
	snprintf(d[3].host, sizeof(d[3].host), "mx3.test");
	d[3].pref = 20;
	assert_int_equal(ob_drop_self(&res, "me.test"), 0);
	assert_int_equal(res.count, 2);
	assert_string_equal(d[0].host, "mx1.test");
	assert_string_equal(d[1].host, "mx1.test");
	/* not an exchanger: unchanged */
	res.count = 2;
	assert_int_equal(ob_drop_self(&res, "other.test"), 0);
	assert_int_equal(res.count, 2);
	/* we are the best (equal preference counts as not better): loop */
	d[1].pref = 5;
	snprintf(d[1].host, sizeof(d[1].host), "me.test");
	assert_int_equal(ob_drop_self(&res, "me.test"), -1);
	assert_int_equal(res.count, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_table),
		cmocka_unit_test(test_reply_nul),
		cmocka_unit_test(test_reply_flood),
		cmocka_unit_test(test_reply_long_line),
		cmocka_unit_test(test_reply_byte_at_a_time),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_loop_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
