/* Unit tests for the envelope format, Message-ID extraction, scheduling
 * math and DSN text (queue/queue_env.c, queue_sched.c, queue_dsn.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "queue/queue_private.h"

static void make_env(struct queue_env *e, const char *sender, const char *envid,
		     const char *rcpt, const char *orcpt)
{
	memset(e, 0, sizeof(*e));
	strcpy(e->id, "0190A1B2C3D4E5F6");
	e->arrival = 1767225600;
	e->sender = strdup(sender);
	e->envid = envid != NULL ? strdup(envid) : NULL;
	e->ret = QUEUE_RET_HDRS;
	e->smtputf8 = true;
	e->client_ip = strdup("192.0.2.1");
	e->helo = strdup("client.example");
	e->message_id = strdup("<abc@example>");
	e->size = 1234;
	e->rcpt_count = 2;
	e->rcpts = calloc(2, sizeof(*e->rcpts));
	e->rcpts[0].address = strdup(rcpt);
	e->rcpts[0].orcpt = orcpt != NULL ? strdup(orcpt) : NULL;
	e->rcpts[0].notify = QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE;
	e->rcpts[0].next_attempt = 1767225600;
	e->rcpts[1].address = strdup("second@example.net");
	e->rcpts[1].state = QUEUE_RCPT_FAILED;
	e->rcpts[1].attempts = 3;
	e->rcpts[1].status = strdup("5.1.1");
	e->rcpts[1].diag = strdup("550 5.1.1 no such user (in reply to RCPT TO)");
	e->rcpts[1].relay = strdup("mx.example.net[192.0.2.9]:25");
	e->rcpts[1].notified = true;
	e->rcpts[1].direct = true;
}

static void assert_env_equal(const struct queue_env *a, const struct queue_env *b)
{
	assert_string_equal(a->id, b->id);
	assert_int_equal(a->arrival, b->arrival);
	assert_string_equal(a->sender, b->sender);
	if (a->envid == NULL)
		assert_null(b->envid);
	else
		assert_string_equal(a->envid, b->envid);
	assert_int_equal(a->ret, b->ret);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->rcpt_count, b->rcpt_count);
	for (size_t i = 0; i < a->rcpt_count; i++) {
		const struct queue_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];

		assert_string_equal(x->address, y->address);
		if (x->orcpt == NULL)
			assert_null(y->orcpt);
		else
			assert_string_equal(x->orcpt, y->orcpt);
		assert_int_equal(x->notify, y->notify);
		assert_int_equal(x->state, y->state);
		assert_int_equal(x->attempts, y->attempts);
		assert_int_equal(x->notified, y->notified);
		assert_int_equal(x->direct, y->direct);
	}
}

static size_t count_lines(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += s[i] == '\n';
	return n;
}

/* HOSTILE-INPUT 5: CR, LF, space, '%', 8-bit in client values round-trip
 * byte-exact and never add a line or a field. */
static void test_env_round_trip_hostile(void **state)
{
	static const char *const values[] = {
		"plain", "", "with space", "cr\rlf\nboth\r\n", "pct%41%", "-", "=", "end",
		"rcpt =x@y - 0 pending 0 0 0 0 - - - 0", "\xc3\xa9t\xc3\xa9", "\x01\x7f\xff",
		"a\nend\nrcpt =evil@x",
	};

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		struct queue_env e, back;
		struct buf b, b2;
		const char *err;

		make_env(&e, values[i], values[i], "rcpt@example.net", values[i]);
		buf_init(&b, 1 << 20);
		assert_int_equal(queue_env_format(&e, &b), 0);
		/* version + 14 keys + 2 recipients + end */
		assert_int_equal(count_lines(b.data, b.len), 18);
		assert_int_equal(queue_env_parse(b.data, b.len, &back, &err), 0);
		assert_env_equal(&e, &back);
		buf_init(&b2, 1 << 20);
		assert_int_equal(queue_env_format(&back, &b2), 0);
		assert_int_equal(b.len, b2.len);
		assert_memory_equal(b.data, b2.data, b.len);
		buf_deinit(&b);
		buf_deinit(&b2);
		queue_env_free(&e);
		queue_env_free(&back);
	}
}

/* HOSTILE-INPUT 27: every truncation and a flipped byte are refused. */
static void test_env_truncated_and_corrupt(void **state)
{
	struct queue_env e, back;
	struct buf b;
	const char *err;

	make_env(&e, "a@b", NULL, "c@d", NULL);
	buf_init(&b, 1 << 20);
	assert_int_equal(queue_env_format(&e, &b), 0);
	for (size_t n = 0; n < b.len; n++)
		assert_int_equal(queue_env_parse(b.data, n, &back, &err), -1);
	/* A line duplicated, an unknown key, junk after end. */
	{
		struct buf t;

		buf_init(&t, 1 << 20);
		assert_int_equal(buf_append(&t, b.data, b.len), 0);
		assert_int_equal(buf_append_str(&t, "x\n"), 0);
		assert_int_equal(queue_env_parse(t.data, t.len, &back, &err), -1);
		buf_deinit(&t);
	}
	for (size_t i = 0; i < b.len; i++) {
		char saved = b.data[i];

		/* Flipping bytes never crashes; most flips are refused. */
		b.data[i] = (char)(saved ^ 0x20);
		if (queue_env_parse(b.data, b.len, &back, &err) == 0)
			queue_env_free(&back);
		b.data[i] = '\0';
		assert_int_equal(queue_env_parse(b.data, b.len, &back, &err), -1);
		b.data[i] = saved;
	}
	assert_int_equal(queue_env_parse(b.data, b.len, &back, &err), 0);
	queue_env_free(&back);
	buf_deinit(&b);
	queue_env_free(&e);
}

static void test_escape(void **state)
{
	struct buf b;
	char *v;

	buf_init(&b, 256);
	assert_int_equal(queue_escape_append(&b, NULL), 0);
	assert_string_equal(b.data, "-");
	buf_reset(&b);
	assert_int_equal(queue_escape_append(&b, "a b%\r\n"), 0);
	assert_string_equal(b.data, "=a%20b%25%0D%0A");
	assert_int_equal(queue_unescape(b.data, b.len, &v), 0);
	assert_string_equal(v, "a b%\r\n");
	free(v);
	assert_int_equal(queue_unescape("=%00", 4, &v), -1);
	assert_int_equal(queue_unescape("=%4", 3, &v), -1);
	assert_int_equal(queue_unescape("=%4g", 4, &v), -1);
	assert_int_equal(queue_unescape("x", 1, &v), -1);
	assert_int_equal(queue_unescape("=", 1, &v), 0);
	assert_string_equal(v, "");
	free(v);
	buf_deinit(&b);
}

static void test_message_id(void **state)
{
	static const char h1[] = "From: a@b\r\nMessage-ID: <x@y>\r\nSubject: s\r\n\r\nbody";
	static const char h2[] = "From: a@b\r\nmessage-id:\r\n <folded@y>\r\n\r\n";
	static const char h3[] = "From: a@b\r\n\r\nMessage-ID: <in-body@y>\r\n";
	static const char h4[] = "Message-ID: <a\x01@y>\r\n\r\n";
	char *id;

	id = queue_find_message_id(h1, sizeof(h1) - 1);
	assert_string_equal(id, "<x@y>");
	free(id);
	id = queue_find_message_id(h2, sizeof(h2) - 1);
	assert_string_equal(id, "<folded@y>");
	free(id);
	assert_null(queue_find_message_id(h3, sizeof(h3) - 1));
	assert_null(queue_find_message_id(h4, sizeof(h4) - 1));
}

static void test_count_received(void **state)
{
	static const char h[] = "Received: from a\r\n\tby b; date\r\nreceived : x\r\n"
				"X-Received: no\r\nReceived-SPF: pass\r\nSubject: Received: no\r\n"
				"RECEIVED:y\r\n\r\nReceived: in the body\r\n";
	static const char cut[] = "Received: a\r\nReceived: b\r\nRecei";

	(void)state;
	assert_int_equal(queue_count_received(h, sizeof(h) - 1), 3);
	assert_int_equal(queue_count_received(cut, sizeof(cut) - 1), 2);
	assert_int_equal(queue_count_received("", 0), 0);
	assert_int_equal(queue_count_received("Received", 8), 0);
	assert_int_equal(queue_count_received("\r\nReceived: x\r\n", 14), 0);
}

static void test_sched_math(void **state)
{
	struct queue_env e;
	struct queue_rcpt r = { 0 };

	make_env(&e, "a@b", NULL, "c@d", NULL);
	assert_int_equal(queue_next_retry(100, 1, 60, 3600), 160);
	assert_int_equal(queue_next_retry(INT64_MAX - 10, 1, 60, 3600), INT64_MAX);
	assert_int_equal(queue_next_retry(100, 1, 0, 0), 101);
	/* exponential back-off: 60, 120, 240, ... up to the maximum */
	assert_int_equal(queue_next_retry(100, 0, 60, 3600), 160);
	assert_int_equal(queue_next_retry(100, 2, 60, 3600), 220);
	assert_int_equal(queue_next_retry(100, 3, 60, 3600), 340);
	assert_int_equal(queue_next_retry(100, 6, 60, 3600), 100 + 1920);
	assert_int_equal(queue_next_retry(100, 7, 60, 3600), 100 + 3600);
	assert_int_equal(queue_next_retry(100, 4000000000u, 60, 3600), 100 + 3600);
	assert_int_equal(queue_next_retry(INT64_MAX - 100, 40, 900, INT64_MAX), INT64_MAX);
	/* a maximum below the base interval: the base interval */
	assert_int_equal(queue_next_retry(100, 5, 60, 10), 160);
	assert_false(queue_expired(&e, e.arrival + 99, 100));
	assert_true(queue_expired(&e, e.arrival + 100, 100));
	assert_false(queue_delay_due(&e, e.arrival + 10, 0));
	assert_false(queue_delay_due(&e, e.arrival + 9, 10));
	assert_true(queue_delay_due(&e, e.arrival + 10, 10));
	e.last_notify = e.arrival + 10;
	assert_false(queue_delay_due(&e, e.arrival + 19, 10));
	assert_true(queue_delay_due(&e, e.arrival + 20, 10));
	free(e.sender);
	e.sender = strdup("");
	assert_false(queue_delay_due(&e, e.arrival + 1000, 10));
	/* NOTIFY defaults to FAILURE,DELAY (RFC 3461 4.1) */
	assert_true(queue_rcpt_wants(&r, QUEUE_NOTIFY_FAILURE));
	assert_true(queue_rcpt_wants(&r, QUEUE_NOTIFY_DELAY));
	assert_false(queue_rcpt_wants(&r, QUEUE_NOTIFY_SUCCESS));
	r.notify = QUEUE_NOTIFY_NEVER;
	assert_false(queue_rcpt_wants(&r, QUEUE_NOTIFY_FAILURE));
	r.notify = QUEUE_NOTIFY_SUCCESS;
	assert_true(queue_rcpt_wants(&r, QUEUE_NOTIFY_SUCCESS));
	assert_false(queue_rcpt_wants(&r, QUEUE_NOTIFY_DELAY));
	queue_env_free(&e);
}

static void test_dsn_format(void **state)
{
	static const char msg[] = "From: a@b\r\nSubject: hi\r\nMessage-ID: <m@b>\r\n\r\nbody line\r\n";
	struct queue_env e;
	bool which[2] = { false, true };
	struct queue_dsn_params p = { .reporting_mta = "mail.example.test", .now = 1767229200,
				      .boundary = "BOUNDARY" };
	size_t len;
	char *dsn;

	/* ENVID and ORCPT with CR LF must not start header fields. */
	make_env(&e, "sender@example.test", "env\r\nX-Injected: 1", "c@d", NULL);
	free(e.rcpts[1].orcpt);
	e.rcpts[1].orcpt = strdup("rfc822;orig\r\nX-Injected: 2");
	e.ret = QUEUE_RET_FULL;
	dsn = queue_dsn_build(&e, QUEUE_DSN_FAILURE, which, msg, sizeof(msg) - 1, 1 << 20, &p, &len);
	assert_non_null(strstr(dsn, "To: <sender@example.test>\r\n"));
	assert_non_null(strstr(dsn, "Content-Type: multipart/report; report-type=delivery-status;"));
	assert_non_null(strstr(dsn, "Auto-Submitted: auto-replied\r\n"));
	assert_non_null(strstr(dsn, "Reporting-MTA: dns; mail.example.test\r\n"));
	assert_non_null(strstr(dsn, "Original-Envelope-Id: env+0D+0AX-Injected:+201\r\n"));
	assert_non_null(strstr(dsn, "Original-Recipient: rfc822;orig+0D+0AX-Injected:+202\r\n"));
	assert_non_null(strstr(dsn, "Final-Recipient: rfc822; second@example.net\r\nAction: failed\r\n"
				    "Status: 5.1.1\r\nRemote-MTA: dns; mx.example.net[192.0.2.9]:25\r\n"
				    "Diagnostic-Code: smtp; 550 5.1.1 no such user"));
	assert_null(strstr(dsn, "\r\nX-Injected"));
	assert_null(strstr(dsn, "c@d"));  /* not selected */
	assert_non_null(strstr(dsn, "Content-Type: message/rfc822\r\n\r\nFrom: a@b\r\n"));
	assert_non_null(strstr(dsn, "body line\r\n"));
	assert_non_null(strstr(dsn, "\r\n--BOUNDARY--\r\n"));
	for (size_t i = 0; i < len; i++) {
		if (dsn[i] == '\n')
			assert_int_equal(dsn[i - 1], '\r');
	}
	free(dsn);
	/* Delay notices carry only the header, and say so. */
	dsn = queue_dsn_build(&e, QUEUE_DSN_DELAY, which, msg, sizeof(msg) - 1, 1 << 20, &p, &len);
	assert_non_null(strstr(dsn, "Action: delayed\r\n"));
	assert_non_null(strstr(dsn, "Will-Retry-Until: "));
	assert_non_null(strstr(dsn, "Content-Type: text/rfc822-headers\r\n"));
	assert_null(strstr(dsn, "body line"));
	free(dsn);
	queue_env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_env_round_trip_hostile),
		cmocka_unit_test(test_env_truncated_and_corrupt),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_message_id),
		cmocka_unit_test(test_count_received),
		cmocka_unit_test(test_sched_math),
		cmocka_unit_test(test_dsn_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
