/* Unit tests for the pure helpers of list distribution and auto-replies
 * (queue/queue_msg.c): header fields, the list rewrite, addresses,
 * RFC 2047 words, tokens, pending records and notice text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/base64.h"
#include "queue/queue_list.h"

static const char MSG[] =
	"Received: from x\r\n"
	"Subject: Hello\r\n"
	" folded world\r\n"
	"from: Alice <alice@example.com>\r\n"
	"List-Id: Other <other.example.org>\r\n"
	"not a field line\r\n"
	"List-Id: <news.example.com>\r\n"
	"Reply-To: <elsewhere@example.net>\r\n"
	"Return-Path: <old@example.com>\r\n"
	"\r\n"
	"Subject: in the body\r\n";

static void test_header_len(void **state)
{
	(void)state;
	assert_int_equal(queue_msg_header_len("A: b\r\n\r\nbody", 12), 6);
	assert_int_equal(queue_msg_header_len("A: b\n\nbody", 10), 5);
	assert_int_equal(queue_msg_header_len("A: b\r\n", 6), 6);
	assert_int_equal(queue_msg_header_len("\r\nbody", 6), 0);
	assert_int_equal(queue_msg_header_len("", 0), 0);
}

static void test_header_get(void **state)
{
	char *v;

	(void)state;
	v = queue_msg_header(MSG, strlen(MSG), "subject");
	assert_string_equal(v, "Hello folded world");
	free(v);
	v = queue_msg_header(MSG, strlen(MSG), "From");
	assert_string_equal(v, "Alice <alice@example.com>");
	free(v);
	/* the first of two */
	v = queue_msg_header(MSG, strlen(MSG), "List-Id");
	assert_string_equal(v, "Other <other.example.org>");
	free(v);
	assert_null(queue_msg_header(MSG, strlen(MSG), "Subj"));
	assert_null(queue_msg_header(MSG, strlen(MSG), "Cc"));
	/* the body is not the header */
	assert_null(queue_msg_header("A: b\r\n\r\nCc: x\r\n", 16, "Cc"));
	/* a name with a space is not a field */
	assert_null(queue_msg_header("Sub ject: x\r\n\r\n", 15, "Sub ject"));
}

static void test_header_value_capped(void **state)
{
	size_t n = QUEUE_MSG_MAX_VALUE * 3;
	char *m = malloc(n + 20), *v;

	(void)state;
	memcpy(m, "X-Big: ", 7);
	memset(m + 7, 'a', n);
	memcpy(m + 7 + n, "\r\n\r\n", 4);
	v = queue_msg_header(m, n + 11, "X-Big");
	assert_int_equal(strlen(v), QUEUE_MSG_MAX_VALUE);
	free(v);
	free(m);
}

static void test_header_contains_and_prefix(void **state)
{
	(void)state;
	assert_true(queue_msg_header_contains(MSG, strlen(MSG), "List-Id", "<NEWS.example.com>"));
	assert_false(queue_msg_header_contains(MSG, strlen(MSG), "List-Id", "<news.example.org>"));
	assert_false(queue_msg_header_contains(MSG, strlen(MSG), "X-Loop", "news@example.com"));
	assert_true(queue_msg_has_field_prefix(MSG, strlen(MSG), "list-"));
	assert_false(queue_msg_has_field_prefix(MSG, strlen(MSG), "Mailing-List"));
}

static void test_rewrite(void **state)
{
	static const char *const drop[] = { "List-Id", "Return-Path", "Subject", NULL };
	size_t len;
	char *out = queue_msg_rewrite(MSG, strlen(MSG), drop, "X-New: 1\r\n", &len);

	(void)state;
	assert_int_equal(strlen(out), len);
	assert_non_null(strstr(out, "X-New: 1\r\nReceived: from x\r\nfrom: Alice"));
	assert_null(strstr(out, "List-Id"));
	assert_null(strstr(out, "Return-Path"));
	/* the folded continuation went with its field */
	assert_null(strstr(out, "folded world"));
	/* the body is untouched, a bad line kept */
	assert_non_null(strstr(out, "\r\n\r\nSubject: in the body\r\n"));
	assert_non_null(strstr(out, "not a field line\r\n"));
	free(out);
}

static void test_list_message(void **state)
{
	struct queue_list_headers h = {
		.list_address = "news@example.com", .list_id = "\"News\" <news.example.com>",
		.list_unsubscribe = "<mailto:news-unsubscribe@example.com>",
		.list_subscribe = "<mailto:news-subscribe@example.com>",
		.list_post = "<mailto:news@example.com>", .reply_to = "<news@example.com>",
	};
	size_t len;
	char *out = queue_list_message(MSG, strlen(MSG), &h, &len);
	char *v;
	static const char want[] = "List-Id: \"News\" <news.example.com>\r\n"
				   "List-Unsubscribe: <mailto:news-unsubscribe@example.com>\r\n"
				   "List-Subscribe: <mailto:news-subscribe@example.com>\r\n"
				   "List-Post: <mailto:news@example.com>\r\n"
				   "Precedence: list\r\nX-Loop: news@example.com\r\n"
				   "Reply-To: <news@example.com>\r\nReceived:";

	(void)state;
	assert_true(strncmp(out, want, strlen(want)) == 0);
	assert_null(strstr(out, "elsewhere"));
	assert_null(strstr(out, "other.example.org"));
	assert_null(strstr(out, "Return-Path"));
	v = queue_msg_header(out, len, "Subject");
	assert_string_equal(v, "Hello folded world");
	free(v);
	free(out);
	/* reply-to none: the sender's stays */
	h.reply_to = NULL;
	out = queue_list_message(MSG, strlen(MSG), &h, &len);
	assert_non_null(strstr(out, "Reply-To: <elsewhere@example.net>"));
	free(out);
}

static void test_first_address(void **state)
{
	static const struct { const char *in, *out; } rows[] = {
		{ "Alice <alice@example.com>", "alice@example.com" },
		{ "alice@example.com", "alice@example.com" },
		{ "alice@example.com (Alice)", "alice@example.com" },
		{ "\"A, B\" <ab@example.com>, c@example.com", "ab@example.com" },
		{ "  bob@example.com, c@example.com", "bob@example.com" },
		{ "<>", NULL },
		{ "nobody", NULL },
		{ "<a b@example.com>", NULL },
		{ "<@example.com>", NULL },
		{ "<alice@>", NULL },
		{ "Alice <alice@example.com", NULL },
		{ "", NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *a = queue_msg_first_address(rows[i].in);

		if (rows[i].out == NULL) {
			assert_null(a);
		} else {
			assert_non_null(a);
			assert_string_equal(a, rows[i].out);
		}
		free(a);
	}
	assert_null(queue_msg_first_address(NULL));
}

/* Decodes "=?UTF-8?B?...?=" words joined by CRLF SP. */
static char *decode_words(const char *s)
{
	size_t total = strlen(s) + 1, k = 0;
	char *out = calloc(1, total);

	while (*s != '\0') {
		const char *start = strstr(s, "=?UTF-8?B?"), *end;
		size_t n;

		assert_non_null(start);
		start += 10;
		end = strstr(start, "?=");
		assert_non_null(end);
		assert_true(end - start + 12 <= 75);
		assert_int_equal(base64_decode(start, (size_t)(end - start), out + k,
					       total - 1 - k, &n), 0);
		k += n;
		s = end + 2;
		if (strncmp(s, "\r\n ", 3) == 0)
			s += 3;
	}
	return out;
}

static void test_encode_words(void **state)
{
	const char *text = "Réunion: été à Zürich — encore une très longue ligne éèêë";
	char *e, *d;

	(void)state;
	e = queue_msg_encode_words("Plain subject");
	assert_string_equal(e, "Plain subject");
	free(e);
	e = queue_msg_encode_words(text);
	assert_true(strncmp(e, "=?UTF-8?B?", 10) == 0);
	assert_non_null(strstr(e, "\r\n =?UTF-8?B?"));
	d = decode_words(e);
	assert_string_equal(d, text);
	/* every word decodes to whole UTF-8 sequences */
	free(d);
	free(e);
	/* control bytes are encoded, never passed into a header */
	e = queue_msg_encode_words("a\r\nBcc: x");
	assert_null(strstr(e, "Bcc"));
	assert_null(strchr(e, '\r'));
	free(e);
}

static void test_tokens(void **state)
{
	unsigned char zero[16] = { 0 }, ones[16];
	char t[QUEUE_TOKEN_LEN + 1];
	bool approve;

	(void)state;
	memset(ones, 0xff, sizeof(ones));
	queue_token_encode(zero, t);
	assert_string_equal(t, "aaaaaaaaaaaaaaaaaaaaaaaaaa");
	queue_token_encode(ones, t);
	assert_string_equal(t, "77777777777777777777777774");
	assert_true(queue_token_valid(t));
	assert_true(queue_token_valid("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
	assert_false(queue_token_valid("abcdefghijklmnopqrstuvwxy"));    /* 25 */
	assert_false(queue_token_valid("abcdefghijklmnopqrstuvwxyz2"));  /* 27 */
	assert_false(queue_token_valid("abcdefghijklmnopqrstuvwxy1"));   /* not base32 */
	assert_false(queue_token_valid("abcdefghijklmnopqrstuvwxy/"));
	assert_false(queue_token_valid(""));

	assert_int_equal(queue_moderate_parse("approve-ABCDEFGHIJKLMNOPQRSTUVWXYZ", &approve, t), 0);
	assert_true(approve);
	assert_string_equal(t, "abcdefghijklmnopqrstuvwxyz");
	assert_int_equal(queue_moderate_parse("Reject-abcdefghijklmnopqrstuvwxyz", &approve, t), 0);
	assert_false(approve);
	assert_int_equal(queue_moderate_parse("approve", &approve, t), -1);
	assert_int_equal(queue_moderate_parse("approve-", &approve, t), -1);
	assert_int_equal(queue_moderate_parse("abcdefghijklmnopqrstuvwxyz", &approve, t), -1);
	assert_int_equal(queue_moderate_parse("approve-../../etc/passwdxxxxxxxxxxx", &approve, t),
			 -1);
	assert_int_equal(queue_moderate_parse(NULL, &approve, t), -1);
}

static void test_pending_roundtrip(void **state)
{
	struct queue_pending p = { .action = QUEUE_PENDING_MODERATE, .address = "a b%@x.example",
				   .created = 1767225600, .smtputf8 = true };
	struct queue_pending back;
	char *text = queue_pending_format(&p);

	(void)state;
	assert_int_equal(queue_pending_parse(text, strlen(text), &back), 0);
	assert_int_equal(back.action, QUEUE_PENDING_MODERATE);
	assert_string_equal(back.address, "a b%@x.example");
	assert_int_equal(back.created, 1767225600);
	assert_true(back.smtputf8);
	assert_false(back.body_8bit);
	queue_pending_free(&back);
	/* truncated at every length: refused */
	for (size_t n = 0; n < strlen(text); n++)
		assert_int_equal(queue_pending_parse(text, n, &back), -1);
	free(text);
	p.action = QUEUE_PENDING_SUBSCRIBE;
	p.address = "";
	text = queue_pending_format(&p);
	assert_int_equal(queue_pending_parse(text, strlen(text), &back), 0);
	assert_string_equal(back.address, "");
	queue_pending_free(&back);
	free(text);
}

static void test_pending_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"petrel-list-pending 2\naction subscribe\naddress =a@b\ncreated 1\nsmtputf8 0\nbody8bit 0\nend\n",
		"petrel-list-pending 1\naction join\naddress =a@b\ncreated 1\nsmtputf8 0\nbody8bit 0\nend\n",
		"petrel-list-pending 1\naction subscribe\naddress =a@b\naddress =c@d\ncreated 1\nsmtputf8 0\nbody8bit 0\nend\n",
		"petrel-list-pending 1\naction subscribe\naddress =a@b\ncreated -1\nsmtputf8 0\nbody8bit 0\nend\n",
		"petrel-list-pending 1\naction subscribe\naddress =a@b\ncreated 1\nsmtputf8 2\nbody8bit 0\nend\n",
		"petrel-list-pending 1\naction subscribe\naddress =a@b\ncreated 1\nsmtputf8 0\nend\n",
		"petrel-list-pending 1\naction subscribe\naddress =a@b\ncreated 1\nsmtputf8 0\nbody8bit 0\nx 1\nend\n",
		"petrel-list-pending 1\naction subscribe\naddress =a@b\ncreated 1\nsmtputf8 0\nbody8bit 0\nend\nmore\n",
		"petrel-list-pending 1\naction subscribe\naddress -\ncreated 1\nsmtputf8 0\nbody8bit 0\nend\n",
		"petrel-list-pending 1\naction subscribe\naddress a@b\ncreated 1\nsmtputf8 0\nbody8bit 0\nend\n",
	};
	struct queue_pending p;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(queue_pending_parse(bad[i], strlen(bad[i]), &p), -1);
		assert_null(p.address);
	}
}

static void test_notice_ascii(void **state)
{
	struct queue_notice n = {
		.from = "news-bounces@example.com", .from_name = "News (company)",
		.to = "bob@example.net", .reply_to = "news-subscribe+t@example.com",
		.subject = "Confirm", .text = "Line one\nLine two\n",
		.in_reply_to = "<orig@x>", .references = "<a@x> <b@x>",
		.message_id = "<me@example.com>", .date = 0,
	};
	size_t len;
	char *t = queue_notice_text(&n, &len);

	(void)state;
	assert_int_equal(strlen(t), len);
	assert_non_null(strstr(t, "From: \"News (company)\" <news-bounces@example.com>\r\n"));
	assert_non_null(strstr(t, "To: <bob@example.net>\r\n"));
	assert_non_null(strstr(t, "Reply-To: <news-subscribe+t@example.com>\r\n"));
	assert_non_null(strstr(t, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
	assert_non_null(strstr(t, "In-Reply-To: <orig@x>\r\nReferences: <a@x> <b@x>\r\n <orig@x>\r\n"));
	assert_non_null(strstr(t, "Auto-Submitted: auto-replied\r\n"));
	assert_non_null(strstr(t, "charset=us-ascii"));
	assert_non_null(strstr(t, "\r\n\r\nLine one\r\nLine two\r\n"));
	free(t);
}

static void test_notice_utf8(void **state)
{
	struct queue_notice n = {
		.from = "bob@example.com", .from_name = "Bob Müller", .to = "a@example.net",
		.subject = "Abwesend: Grüße", .text = "Zurück am Montag.\n",
		.in_reply_to = "<orig@x>", .references = "<bad\xc3\xa9@x>",
		.message_id = "<me@example.com>", .date = 86400,
	};
	size_t len;
	char *t = queue_notice_text(&n, &len);

	(void)state;
	for (size_t i = 0; i < len; i++)
		assert_true((unsigned char)t[i] < 0x80);  /* 7-bit on the wire */
	assert_non_null(strstr(t, "From: =?UTF-8?B?"));
	assert_non_null(strstr(t, "Subject: =?UTF-8?B?"));
	assert_non_null(strstr(t, "Content-Transfer-Encoding: base64"));
	/* 8-bit References are not copied; In-Reply-To still is */
	assert_non_null(strstr(t, "References: <orig@x>\r\n"));
	free(t);
	/* a Message-ID with a line break is never copied */
	n.in_reply_to = "<a@x>\r\nBcc: victim@example.com";
	t = queue_notice_text(&n, &len);
	assert_null(strstr(t, "Bcc:"));
	assert_null(strstr(t, "In-Reply-To"));
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_len),
		cmocka_unit_test(test_header_get),
		cmocka_unit_test(test_header_value_capped),
		cmocka_unit_test(test_header_contains_and_prefix),
		cmocka_unit_test(test_rewrite),
		cmocka_unit_test(test_list_message),
		cmocka_unit_test(test_first_address),
		cmocka_unit_test(test_encode_words),
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_pending_roundtrip),
		cmocka_unit_test(test_pending_rejects),
		cmocka_unit_test(test_notice_ascii),
		cmocka_unit_test(test_notice_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
