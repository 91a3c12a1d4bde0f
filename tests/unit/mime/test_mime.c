/* src/mime: structure scanner, IMAP ENVELOPE/BODYSTRUCTURE, text
 * extraction, base subject, and the hostile inputs of HOSTILE-INPUT.md
 * rows 10-15 (each parsed on a 256 KiB stack, within a time bound). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/buf.h"
#include "mime/mime.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char simple[] =
	"From: \"J\xc3\xb6rg\" <j@x.de>\r\n"
	"To: a@b.c, undisclosed-recipients:;\r\n"
	"Subject: Re: [list] Fwd: =?utf-8?q?H=C3=A9llo?= (fwd)\r\n"
	"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n"
	"Message-ID: <abc@x>\r\n"
	"References: <a@x> <b@y>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
	"\r\n"
	"preamble\r\n"
	"--XX\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"\r\n"
	"Hello world\r\n"
	"line2\r\n"
	"--XX\r\n"
	"Content-Type: text/plain; name=\"a.txt\"\r\n"
	"Content-Disposition: attachment; filename=\"a.txt\"\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"c2VjcmV0d29yZCBpbiBhdHRhY2htZW50Cg==\r\n"
	"--XX\r\n"
	"Content-Type: message/rfc822\r\n"
	"\r\n"
	"From: x@y\r\n"
	"Subject: inner\r\n"
	"\r\n"
	"inner body\r\n"
	"--XX--\r\n"
	"epilogue\r\n";

static void test_summary(void **state)
{
	struct mime_summary s;

	mime_summarize(simple, sizeof(simple) - 1, NULL, true, &s);
	assert_string_equal(s.bodystructure,
		"((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 18 2 NIL NIL NIL NIL)"
		"(\"text\" \"plain\" (\"name\" \"a.txt\") NIL NIL \"BASE64\" 36 1 NIL"
		" (\"attachment\" (\"filename\" \"a.txt\")) NIL NIL)"
		"(\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 39 (NIL \"inner\" ((NIL NIL \"x\" \"y\"))"
		" ((NIL NIL \"x\" \"y\")) ((NIL NIL \"x\" \"y\")) NIL NIL NIL NIL NIL)"
		" (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 10 1 NIL NIL NIL NIL) 4"
		" NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"XX\") NIL NIL NIL)");
	assert_string_equal(s.body,
		"((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 18 2)"
		"(\"text\" \"plain\" (\"name\" \"a.txt\") NIL NIL \"BASE64\" 36 1)"
		"(\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 39 (NIL \"inner\" ((NIL NIL \"x\" \"y\"))"
		" ((NIL NIL \"x\" \"y\")) ((NIL NIL \"x\" \"y\")) NIL NIL NIL NIL NIL)"
		" (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 10 1) 4) \"mixed\")");
	/* 8-bit name re-encoded; group syntax; Sender/Reply-To default to From */
	assert_string_equal(s.envelope,
		"(\"Mon, 2 Mar 2026 10:00:00 +0100\" \"Re: [list] Fwd: =?utf-8?q?H=C3=A9llo?= (fwd)\""
		" ((\"=?UTF-8?b?SsO2cmc=?=\" NIL \"j\" \"x.de\")) ((\"=?UTF-8?b?SsO2cmc=?=\" NIL \"j\" \"x.de\"))"
		" ((\"=?UTF-8?b?SsO2cmc=?=\" NIL \"j\" \"x.de\"))"
		" ((NIL NIL \"a\" \"b.c\")(NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))"
		" NIL NIL NIL \"<abc@x>\")");
	assert_string_equal(s.subject, "Re: [list] Fwd: H\xc3\xa9llo (fwd)");
	assert_string_equal(s.base_subject, "H\xc3\xa9llo");
	assert_string_equal(s.sort_from, "j");
	assert_string_equal(s.display_from, "J\xc3\xb6rg");
	assert_string_equal(s.message_id, "<abc@x>");
	assert_string_equal(s.references, "<a@x> <b@y>");
	assert_int_equal(s.sent_date, 1772442000);
	assert_int_equal(s.sent_tz, 60);
	assert_string_equal(s.preview, "Hello world line2");
	assert_true(s.has_attachment);
	assert_non_null(strstr(s.text.data, "secretword in attachment"));
	assert_non_null(strstr(s.text.data, "inner body"));
	assert_non_null(s.headers);
	assert_true(strncmp(s.headers, "From: ", 6) == 0);
	assert_int_equal(s.header_size, strstr(simple, "\r\n\r\n") - simple + 4);
	mime_summary_deinit(&s);
}

static void test_sections(void **state)
{
	struct mime_message m;
	uint32_t p1[] = { 1 }, p3[] = { 3 }, p31[] = { 3, 1 }, p4[] = { 4 }, p11[] = { 1, 1 };
	long i;

	mime_scan(simple, sizeof(simple) - 1, NULL, &m);
	assert_int_equal(m.count, 5);  /* root, 2 texts, message, its root */
	i = mime_section_find(&m, p1, 1);
	assert_int_equal(i, 1);
	assert_memory_equal(simple + m.parts[i].body_start, "Hello world\r\nline2", 18);
	assert_int_equal(m.parts[i].body_end - m.parts[i].body_start, 18);
	i = mime_section_find(&m, p3, 1);
	assert_int_equal(m.parts[i].kind, MIME_KIND_MESSAGE);
	i = mime_section_find(&m, p31, 2);    /* body of the embedded message */
	assert_memory_equal(simple + m.parts[i].body_start, "inner body", 10);
	assert_int_equal(mime_section_find(&m, p4, 1), -1);
	assert_int_equal(mime_section_find(&m, p11, 2), -1);
	mime_message_deinit(&m);

	/* A non-multipart message: "1" is its body. */
	mime_scan("Subject: x\r\n\r\nbody", 18, NULL, &m);
	i = mime_section_find(&m, p1, 1);
	assert_int_equal(i, 0);
	assert_int_equal(m.parts[0].body_start, 14);
	mime_message_deinit(&m);
}

struct shape {
	const char *name;
	const char *msg;
	size_t parts;
	const char *bs_prefix;  /* start of BODYSTRUCTURE */
};

static const struct shape shapes[] = {
	{ "empty", "", 1, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 0 0" },
	{ "headers only, no blank line", "Subject: x\r\n", 1, "(\"text\" \"plain\"" },
	{ "LF line ends", "Content-Type: multipart/alternative; boundary=b\n\n--b\n\nA\n--b\n\nB\n--b--\n", 3,
	  "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 1 1" },
	{ "missing close delimiter", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nA\r\n", 2,
	  "((\"text\" \"plain\"" },
	{ "multipart without boundary", "Content-Type: multipart/mixed\r\n\r\nx", 1,
	  "(\"application\" \"octet-stream\"" },
	{ "multipart without parts", "Content-Type: multipart/mixed; boundary=b\r\n\r\nno parts", 1,
	  "(\"application\" \"octet-stream\"" },
	{ "digest default type", "Content-Type: multipart/digest; boundary=b\r\n\r\n--b\r\n\r\nSubject: d\r\n\r\nx\r\n--b--\r\n", 3,
	  "((\"message\" \"rfc822\"" },
	{ "outer boundary ends inner", "Content-Type: multipart/mixed; boundary=out\r\n\r\n--out\r\n"
	  "Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n\r\nI\r\n--out--\r\n", 3, "(((\"text\"" },
	{ "boundary prefix is not a boundary", "Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n\r\nx\r\n--b10\r\n--b1--\r\n", 2,
	  "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 8 2" },
	{ "garbage content type", "Content-Type: ;;;\r\n\r\nx", 1, "(\"text\" \"plain\"" },
	/* found by fuzz_mime_parse: a text part that decodes to nothing */
	{ "base64 decoding to nothing", "Content-Transfer-Encoding: base64\r\n\r\n!!!!\r\n", 1,
	  "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"BASE64\" 6 1" },
	{ "empty base64 part", "Content-Transfer-Encoding: base64\r\n\r\n", 1, "(\"text\" \"plain\"" },
	{ "header cut by boundary", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nSubject: x\r\n--b--\r\n", 2,
	  "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 0 0" },
};

static void test_shapes(void **state)
{
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		struct mime_message m;
		struct mime_summary s;
		size_t len = strlen(shapes[i].msg);

		mime_scan(shapes[i].msg, len, NULL, &m);
		if (m.count != shapes[i].parts)
			fail_msg("%s: %zu parts, want %zu", shapes[i].name, m.count, shapes[i].parts);
		for (size_t k = 0; k < m.count; k++) {
			assert_true(m.parts[k].hdr_start <= m.parts[k].body_start);
			assert_true(m.parts[k].body_start <= m.parts[k].body_end);
			assert_true(m.parts[k].body_end <= len);
		}
		mime_message_deinit(&m);
		mime_summarize(shapes[i].msg, len, NULL, true, &s);
		if (strncmp(s.bodystructure, shapes[i].bs_prefix, strlen(shapes[i].bs_prefix)) != 0)
			fail_msg("%s: %s", shapes[i].name, s.bodystructure);
		mime_summary_deinit(&s);
	}
}

static void test_base_subject(void **state)
{
	static const char *const cases[][2] = {
		{ "Re: hello", "hello" },
		{ "RE: Re: re: hello", "hello" },
		{ "Fwd: hello (fwd)", "hello" },
		{ "[list] Re: hello", "hello" },
		{ "Re [x]: hello", "hello" },
		{ "[fwd: hello]", "hello" },
		{ "  hello   world  ", "hello world" },
		{ "[only blob]", "[only blob]" },
		{ "Fw: FWD: Re:", "" },
		{ "Reply to this", "Reply to this" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *b = mime_base_subject(cases[i][0]);

		if (strcmp(b, cases[i][1]) != 0)
			fail_msg("\"%s\" -> \"%s\", want \"%s\"", cases[i][0], b, cases[i][1]);
		free(b);
	}
}

static void test_imap_string(void **state)
{
	struct buf b;

	buf_init(&b, 1024);
	mime_imap_string(&b, "a \"q\" \\", 7);
	assert_string_equal(b.data, "\"a \\\"q\\\" \\\\\"");
	buf_reset(&b);
	mime_imap_string(&b, "a\r\nb", 4);
	assert_string_equal(b.data, "{4}\r\na\r\nb");
	buf_reset(&b);
	mime_imap_string(&b, "a\0b", 3);       /* NUL never reaches a client */
	assert_string_equal(b.data, "\"ab\"");
	buf_reset(&b);
	mime_imap_string(&b, NULL, 0);
	assert_string_equal(b.data, "NIL");
	buf_deinit(&b);
}

static void test_broken_addresses(void **state)
{
	/* HOSTILE-INPUT row 15: every broken From still gives an ENVELOPE. */
	static const char *const froms[] = {
		"", "<>", "@", "a@", "@b", "\"unterminated", "(comment", "a:b:c:d;", "=?x?q?broken",
		"<a@b", "a@b>, , ,", "group: a@b, c@d;", "=?utf-8?b?////?= <x@y>", "\"\\\" <x@y>",
	};

	for (size_t i = 0; i < sizeof(froms) / sizeof(froms[0]); i++) {
		char msg[256];
		struct mime_summary s;

		snprintf(msg, sizeof(msg), "From: %s\r\nSubject: s\r\n\r\nbody", froms[i]);
		mime_summarize(msg, strlen(msg), NULL, true, &s);
		assert_non_null(s.envelope);
		assert_true(s.envelope[0] == '(' && s.envelope[strlen(s.envelope) - 1] == ')');
		mime_summary_deinit(&s);
	}
}

/* --- hostile inputs, on a small stack --- */

struct job {
	const char *data;
	size_t len;
	double seconds;
	size_t parts;
	bool cut;
	char *bodystructure_head;
};

static void *job_run(void *arg)
{
	struct job *j = arg;
	struct mime_summary s;
	struct mime_message m;
	double t = now();

	mime_scan(j->data, j->len, NULL, &m);
	j->parts = m.count;
	mime_message_deinit(&m);
	mime_summarize(j->data, j->len, NULL, true, &s);
	j->seconds = now() - t;
	j->cut = s.cut;
	j->bodystructure_head = strndup(s.bodystructure, 64);
	mime_summary_deinit(&s);
	return NULL;
}

/* Parses on a thread with a 256 KiB stack (HOSTILE-INPUT row 12). */
static void run_small_stack(struct job *j)
{
	pthread_attr_t attr;
	pthread_t th;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	assert_int_equal(pthread_create(&th, &attr, job_run, j), 0);
	pthread_join(th, NULL);
	pthread_attr_destroy(&attr);
}

static void test_deep_nesting(void **state)
{
	struct buf b;
	struct job j = { 0 };

	buf_init(&b, 64 * 1024 * 1024);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(buf_printf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i), 0);
	assert_int_equal(buf_append_str(&b, "Content-Type: text/plain\r\n\r\ndeep\r\n"), 0);
	j.data = b.data;
	j.len = b.len;
	run_small_stack(&j);
	assert_true(j.cut);
	assert_true(j.parts <= MIME_MAX_DEPTH + 2);
	assert_true(j.seconds < 2.0);
	free(j.bodystructure_head);
	buf_deinit(&b);

	/* message/rfc822 nested 10000 deep */
	buf_init(&b, 64 * 1024 * 1024);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(buf_append_str(&b, "Content-Type: message/rfc822\r\n\r\n"), 0);
	assert_int_equal(buf_append_str(&b, "\r\nx\r\n"), 0);
	j.data = b.data;
	j.len = b.len;
	run_small_stack(&j);
	assert_true(j.cut);
	assert_true(j.seconds < 2.0);
	free(j.bodystructure_head);
	buf_deinit(&b);
}

static void test_many_parts(void **state)
{
	struct buf b;
	struct job j = { 0 };

	buf_init(&b, 64 * 1024 * 1024);
	assert_int_equal(buf_append_str(&b, "Content-Type: multipart/mixed; boundary=z\r\n\r\n"), 0);
	for (int i = 0; i < 20000; i++) {
		/* the limit-th part is a message/rfc822 (Dovecot CVE-2020-25275) */
		if (i == MIME_MAX_PARTS - 2 || i == MIME_MAX_PARTS - 1 || i == MIME_MAX_PARTS)
			assert_int_equal(buf_append_str(&b, "--z\r\nContent-Type: message/rfc822\r\n\r\nSubject: m\r\n\r\nm\r\n"), 0);
		else
			assert_int_equal(buf_printf(&b, "--z\r\n\r\npart %d\r\n", i), 0);
	}
	assert_int_equal(buf_append_str(&b, "--z--\r\n"), 0);
	j.data = b.data;
	j.len = b.len;
	run_small_stack(&j);
	assert_true(j.cut);
	assert_true(j.parts <= MIME_MAX_PARTS);
	assert_true(j.seconds < 5.0);
	free(j.bodystructure_head);
	buf_deinit(&b);
}

static double to_lines(int n)
{
	struct buf b;
	struct job j = { 0 };

	buf_init(&b, 256 * 1024 * 1024);
	for (int i = 0; i < n; i++)
		assert_int_equal(buf_printf(&b, "To: user%d@example.com\r\n", i), 0);
	assert_int_equal(buf_append_str(&b, "Subject: many\r\n\r\nbody\r\n"), 0);
	j.data = b.data;
	j.len = b.len;
	run_small_stack(&j);
	free(j.bodystructure_head);
	buf_deinit(&b);
	return j.seconds;
}

static void test_many_to_lines(void **state)
{
	/* Dovecot CVE-2024-23184: 100k address lines must stay linear. */
	double t1 = to_lines(100000), t2 = to_lines(200000);

	assert_true(t1 < 2.0);
	assert_true(t2 < 2.0);
	assert_true(t2 < 4 * t1 + 0.05);
}

static void test_huge_header(void **state)
{
	struct buf b;
	struct job j = { 0 };

	/* One Subject folded over 200k lines, then a 10 MiB header block. */
	buf_init(&b, 256 * 1024 * 1024);
	assert_int_equal(buf_append_str(&b, "Subject: start"), 0);
	for (int i = 0; i < 200000; i++)
		assert_int_equal(buf_append_str(&b, "\r\n folded"), 0);
	assert_int_equal(buf_append_str(&b, "\r\n"), 0);
	while (b.len < 10 * 1024 * 1024)
		assert_int_equal(buf_append_str(&b, "X-Filler: 0123456789012345678901234567890123456789\r\n"), 0);
	assert_int_equal(buf_append_str(&b, "From: late@example.com\r\n\r\nbody\r\n"), 0);
	j.data = b.data;
	j.len = b.len;
	run_small_stack(&j);
	assert_true(j.seconds < 3.0);
	free(j.bodystructure_head);
	{
		struct mime_summary s;

		mime_summarize(b.data, b.len, NULL, false, &s);
		assert_int_equal(s.header_size, b.len - 6);
		assert_true(strlen(s.subject) <= MIME_MAX_FIELD_VALUE);
		assert_null(s.from);   /* past MIME_MAX_HEADER_SCAN: not seen */
		mime_summary_deinit(&s);
	}
	buf_deinit(&b);
}

static void test_nul_bytes(void **state)
{
	static const char msg[] = "Sub\0ject: a\0b\r\nFrom: x\0@y\r\nContent-Type: text/plain\r\n\r\nbody\0with nul\r\n";
	struct mime_summary s;

	mime_summarize(msg, sizeof(msg) - 1, NULL, true, &s);
	/* NUL never truncates what we cache: the strings stay well formed */
	assert_int_equal(s.envelope[strlen(s.envelope) - 1], ')');
	assert_int_equal(s.bodystructure[strlen(s.bodystructure) - 1], ')');
	assert_int_equal(s.header_size, (const char *)memmem(msg, sizeof(msg) - 1, "\r\n\r\n", 4) - msg + 4);
	assert_non_null(s.bodystructure);
	mime_summary_deinit(&s);
}

static void test_rfc2231_flood(void **state)
{
	struct buf b;
	struct job j = { 0 };

	buf_init(&b, 64 * 1024 * 1024);
	assert_int_equal(buf_append_str(&b, "Content-Type: text/plain; charset=us-ascii"), 0);
	for (int i = 0; i < 100000; i++)
		assert_int_equal(buf_printf(&b, ";\r\n name*%d*=abc%d", i, i), 0);
	assert_int_equal(buf_append_str(&b, "\r\nContent-Disposition: attachment"), 0);
	for (int i = 0; i < 100000; i++)
		assert_int_equal(buf_printf(&b, "; filename*%d*=x", 100000 - i), 0);
	assert_int_equal(buf_append_str(&b, "\r\n\r\nbody\r\n"), 0);
	j.data = b.data;
	j.len = b.len;
	run_small_stack(&j);
	assert_true(j.seconds < 2.0);
	assert_non_null(strstr(j.bodystructure_head, "\"text\" \"plain\""));
	free(j.bodystructure_head);
	buf_deinit(&b);
}

static void test_group_nesting(void **state)
{
	/* GMime's address parser recurses per nested group: 30 000 levels
	 * overflow a 256 KiB stack unless capped. */
	struct buf b;
	struct job j = { 0 };

	buf_init(&b, 64 * 1024 * 1024);
	assert_int_equal(buf_append_str(&b, "To: "), 0);
	for (int i = 0; i < 60000; i++)
		assert_int_equal(buf_append_str(&b, "a:"), 0);
	assert_int_equal(buf_append_str(&b, "\r\nFrom: "), 0);
	for (int i = 0; i < 30000; i++)
		assert_int_equal(buf_append_str(&b, "g:"), 0);
	assert_int_equal(buf_append_str(&b, "\r\n\r\nx"), 0);
	j.data = b.data;
	j.len = b.len;
	run_small_stack(&j);
	assert_true(j.seconds < 2.0);
	free(j.bodystructure_head);
	buf_deinit(&b);
}

static void test_fixtures(void **state)
{
	/* Every file in tests/fixtures/messages parses (good and hostile). */
	const char *dir = getenv("PETREL_TEST_DATA");
	char cmd[1024], path[1024];
	FILE *ls;
	unsigned n = 0;

	if (dir == NULL)
		skip();
	snprintf(cmd, sizeof(cmd), "ls %s/messages/*.eml 2>/dev/null", dir);
	ls = popen(cmd, "r");
	assert_non_null(ls);
	while (fgets(path, sizeof(path), ls) != NULL) {
		FILE *f;
		char *data;
		long len;
		struct job j = { 0 };

		path[strcspn(path, "\n")] = '\0';
		f = fopen(path, "rb");
		assert_non_null(f);
		fseek(f, 0, SEEK_END);
		len = ftell(f);
		rewind(f);
		data = malloc((size_t)len + 1);
		assert_int_equal(fread(data, 1, (size_t)len, f), (size_t)len);
		fclose(f);
		j.data = data;
		j.len = (size_t)len;
		run_small_stack(&j);
		assert_true(j.seconds < 2.0);
		assert_non_null(j.bodystructure_head);
		free(j.bodystructure_head);
		free(data);
		n++;
	}
	pclose(ls);
	assert_true(n >= 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_summary),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_shapes),
		cmocka_unit_test(test_base_subject),
		cmocka_unit_test(test_imap_string),
		cmocka_unit_test(test_broken_addresses),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_many_parts),
		cmocka_unit_test(test_many_to_lines),
		cmocka_unit_test(test_huge_header),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_rfc2231_flood),
		cmocka_unit_test(test_group_nesting),
		cmocka_unit_test(test_fixtures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
