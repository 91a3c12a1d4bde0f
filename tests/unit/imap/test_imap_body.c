/*
 * Unit tests for src/imap/imap_body.c: FETCH body sections and BINARY cut
 * out of a message in memory (table-driven, with sections that do not
 * exist and encodings that cannot be decoded).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imap/imap_private.h"

static const char simple[] =
	"From: a@example.org\r\n"
	"Subject: hello\r\n"
	"X-Folded: one\r\n"
	"  two\r\n"
	"To: b@example.org\r\n"
	"\r\n"
	"line one\r\n"
	"line two\r\n";

static const char mixed[] =
	"From: a@example.org\r\n"
	"Content-Type: multipart/mixed; boundary=\"B\"\r\n"
	"\r\n"
	"preamble\r\n"
	"--B\r\n"
	"Content-Type: text/plain\r\n"
	"\r\n"
	"part one\r\n"
	"--B\r\n"
	"Content-Type: message/rfc822\r\n"
	"\r\n"
	"Subject: inner\r\n"
	"From: c@example.org\r\n"
	"\r\n"
	"inner body\r\n"
	"--B\r\n"
	"Content-Type: application/octet-stream\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"AAEC\r\n"
	"Aw==\r\n"
	"--B\r\n"
	"Content-Type: text/plain\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"a=3Db soft=\r\n"
	"wrap =XY\r\n"
	"--B\r\n"
	"Content-Type: text/plain\r\n"
	"Content-Transfer-Encoding: x-uuencode\r\n"
	"\r\n"
	"begin 644 x\r\n"
	"--B--\r\n";

static const char no_blank[] = "Subject: no body\r\nX-A: b";

struct body_case {
	const char *msg;
	const char *section;          /* the FETCH item */
	const char *expect;           /* the answer, literal included */
	size_t expect_len;            /* 0: strlen */
	bool unknown_cte;
};

static const struct body_case cases[] = {
	{ simple, "BODY[]", NULL, 0, false },  /* whole message: checked below */
	{ simple, "BODY[HEADER]",
	  "BODY[HEADER] {80}\r\nFrom: a@example.org\r\nSubject: hello\r\nX-Folded: one\r\n  two\r\n"
	  "To: b@example.org\r\n\r\n", 0, false },
	{ simple, "BODY[TEXT]", "BODY[TEXT] {20}\r\nline one\r\nline two\r\n", 0, false },
	{ simple, "BODY[1]", "BODY[1] {20}\r\nline one\r\nline two\r\n", 0, false },
	{ simple, "BODY[2]", "BODY[2] NIL", 0, false },
	{ simple, "BODY[HEADER.FIELDS (subject X-FOLDED)]",
	  "BODY[HEADER.FIELDS (subject X-FOLDED)] {40}\r\nSubject: hello\r\nX-Folded: one\r\n  two\r\n\r\n",
	  0, false },
	{ simple, "BODY[HEADER.FIELDS.NOT (Subject X-Folded)]",
	  "BODY[HEADER.FIELDS.NOT (Subject X-Folded)] {42}\r\nFrom: a@example.org\r\n"
	  "To: b@example.org\r\n\r\n", 0, false },
	{ simple, "BODY[HEADER.FIELDS (Nope)]", "BODY[HEADER.FIELDS (Nope)] {2}\r\n\r\n", 0, false },
	{ simple, "BODY[TEXT]<5.8>", "BODY[TEXT]<5> {8}\r\none\r\nlin", 0, false },
	{ simple, "BODY[TEXT]<100.8>", "BODY[TEXT]<100> {0}\r\n", 0, false },
	{ simple, "BODY[1.MIME]", "BODY[1.MIME] {80}\r\nFrom: a@example.org\r\nSubject: hello\r\n"
	  "X-Folded: one\r\n  two\r\nTo: b@example.org\r\n\r\n", 0, false },
	{ mixed, "BODY[1]", "BODY[1] {8}\r\npart one", 0, false },
	{ mixed, "BODY[1.MIME]", "BODY[1.MIME] {28}\r\nContent-Type: text/plain\r\n\r\n", 0, false },
	{ mixed, "BODY[2.HEADER]", "BODY[2.HEADER] {39}\r\nSubject: inner\r\nFrom: c@example.org\r\n\r\n",
	  0, false },
	{ mixed, "BODY[2.TEXT]", "BODY[2.TEXT] {10}\r\ninner body", 0, false },
	{ mixed, "BODY[2.1]", "BODY[2.1] {10}\r\ninner body", 0, false },
	{ mixed, "BODY[1.HEADER]", "BODY[1.HEADER] NIL", 0, false },
	{ mixed, "BODY[9]", "BODY[9] NIL", 0, false },
	{ mixed, "BODY[3]", "BODY[3] {10}\r\nAAEC\r\nAw==", 0, false },
	{ mixed, "BINARY[3]", "BINARY[3] ~{4}\r\n\x00\x01\x02\x03", 20, false },
	{ mixed, "BINARY[3]<1.2>", "BINARY[3]<1> {2}\r\n\x01\x02", 0, false },
	{ mixed, "BINARY[4]", "BINARY[4] {16}\r\na=b softwrap =XY", 0, false },
	{ mixed, "BINARY[5]", "BINARY[5] NIL", 0, true },
	{ no_blank, "BODY[HEADER]", "BODY[HEADER] {28}\r\nSubject: no body\r\nX-A: b\r\n\r\n", 0, false },
	{ no_blank, "BODY[TEXT]", "BODY[TEXT] {0}\r\n", 0, false },
};

static void run_case(const struct body_case *c)
{
	struct imap_section sec;
	const char *error;
	struct evbuffer *out = evbuffer_new();
	bool unknown = false;
	size_t len, elen;
	char *got;

	assert_non_null(out);
	if (imap_section_parse(c->section, strlen(c->section), &sec, &error) < 0)
		fail_msg("%s: %s", c->section, error);
	assert_int_equal(imap_body_section(c->msg, strlen(c->msg), &sec, out, &unknown), 0);
	len = evbuffer_get_length(out);
	got = malloc(len + 1);
	assert_non_null(got);
	evbuffer_remove(out, got, len);
	got[len] = '\0';
	if (c->expect == NULL) {
		char *want;

		if (asprintf(&want, "BODY[] {%zu}\r\n%s", strlen(c->msg), c->msg) < 0)
			abort();
		assert_string_equal(got, want);
		free(want);
	} else {
		elen = c->expect_len != 0 ? c->expect_len : strlen(c->expect);
		if (len != elen || memcmp(got, c->expect, elen) != 0)
			fail_msg("%s: got '%s' (%zu bytes)", c->section, got, len);
	}
	assert_int_equal(unknown, c->unknown_cte);
	free(got);
	evbuffer_free(out);
	imap_section_free(&sec);
}

static void test_sections(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

static void test_binary_size(void **state)
{
	static const struct {
		const char *section;
		int ret;
		uint64_t size;
	} rows[] = {
		{ "BINARY.SIZE[3]", 0, 4 }, { "BINARY.SIZE[4]", 0, 16 }, { "BINARY.SIZE[1]", 0, 8 },
		{ "BINARY.SIZE[9]", -1, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct imap_section sec;
		const char *error;
		uint64_t size = 0;
		bool unknown = false;

		assert_int_equal(imap_section_parse(rows[i].section, strlen(rows[i].section), &sec, &error), 0);
		assert_int_equal(imap_body_binary_size(mixed, strlen(mixed), &sec, &size, &unknown),
				 rows[i].ret);
		if (rows[i].ret == 0)
			assert_int_equal(size, rows[i].size);
		imap_section_free(&sec);
	}
}

/* HOSTILE-INPUT row 12: deep nesting costs a bounded stack; every
 * section answers. */
static void test_deep_message(void **state)
{
	size_t depth = 10000, len = 0, cap = depth * 40 + 64;
	char *msg = malloc(cap);
	struct imap_section sec;
	const char *error;
	struct evbuffer *out = evbuffer_new();
	bool unknown = false;

	(void)state;
	assert_non_null(msg);
	for (size_t i = 0; i < depth; i++)
		len += (size_t)snprintf(msg + len, cap - len, "Content-Type: message/rfc822\r\n\r\n");
	len += (size_t)snprintf(msg + len, cap - len, "Subject: x\r\n\r\nbody\r\n");
	assert_int_equal(imap_section_parse("BODY[1.1.1.1.1.TEXT]", 20, &sec, &error), 0);
	assert_int_equal(imap_body_section(msg, len, &sec, out, &unknown), 0);
	assert_true(evbuffer_get_length(out) > 0);
	imap_section_free(&sec);
	evbuffer_free(out);
	free(msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_binary_size),
		cmocka_unit_test(test_deep_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
