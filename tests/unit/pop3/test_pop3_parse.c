/*
 * Unit tests for src/pop3/pop3_parse.c: the line reader (table with
 * must-reject rows, fed one byte at a time and split at every point), the
 * command tokenizer, and the multi-line response encoder, whose output must
 * not depend on where the message is cut into chunks (HOSTILE-INPUT row 21).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pop3/pop3_parse.h"

#define S(x) x, sizeof(x) - 1

/* Feeds in pieces (chunk 0: all; SIZE_MAX: split at split), writes
 * "L:<line>" / "E" / "T" (too long, then stop) per event. */
static void line_transcript(const char *in, size_t len, size_t max_line, size_t chunk,
			    size_t split, struct buf *out)
{
	struct pop3_parser p;
	size_t pos = 0;

	pop3_parser_init(&p, max_line);
	while (pos < len) {
		size_t piece = chunk == 0 ? len - pos : chunk == SIZE_MAX ?
			       (pos < split ? split - pos : len - pos) : chunk;

		if (piece > len - pos)
			piece = len - pos;
		while (piece > 0) {
			size_t used;
			enum pop3_parse_result r = pop3_parser_feed(&p, in + pos, piece, &used);

			pos += used;
			piece -= used;
			if (r == POP3_PARSE_LINE) {
				assert_int_equal(buf_printf(out, "L:%s\n", p.line.data), 0);
			} else if (r == POP3_PARSE_ERROR) {
				assert_int_equal(buf_append_str(out, "E\n"), 0);
			} else if (r == POP3_PARSE_TOO_LONG) {
				assert_int_equal(buf_append_str(out, "T\n"), 0);
				goto done;
			} else {
				assert_int_equal(piece, 0);
			}
		}
	}
done:
	pop3_parser_deinit(&p);
}

static void test_lines(void **state)
{
	static const struct {
		const char *name;
		const char *in;
		size_t len;
		size_t max;
		const char *expect;
	} rows[] = {
		{ "one line", S("USER john\r\n"), 255, "L:USER john\n" },
		{ "two lines", S("STAT\r\nQUIT\r\n"), 255, "L:STAT\nL:QUIT\n" },
		{ "bare LF", S("STAT\nQUIT\n"), 255, "L:STAT\nL:QUIT\n" },
		{ "empty line", S("\r\nSTAT\r\n"), 255, "L:\nL:STAT\n" },
		{ "incomplete", S("STAT"), 255, "" },
		{ "exactly max", S("123456789\r\n"), 11, "L:123456789\n" },
		{ "one over max", S("1234567890\r\n"), 11, "T\n" },
		{ "over max without CRLF", S("12345678901234567890"), 11, "T\n" },
		{ "NUL", S("US\0ER x\r\nSTAT\r\n"), 255, "E\nL:STAT\n" },
		{ "bare CR", S("USER\rx\r\nSTAT\r\n"), 255, "E\nL:STAT\n" },
		{ "CR CR LF", S("USER\r\r\nSTAT\r\n"), 255, "E\nL:STAT\n" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct buf once, other;

		buf_init(&once, 4096);
		buf_init(&other, 4096);
		line_transcript(rows[i].in, rows[i].len, rows[i].max, 0, 0, &once);
		if (strcmp(once.len > 0 ? once.data : "", rows[i].expect) != 0)
			fail_msg("%s: got '%s'", rows[i].name, once.data);
		line_transcript(rows[i].in, rows[i].len, rows[i].max, 1, 0, &other);
		if (strcmp(other.len > 0 ? other.data : "", rows[i].expect) != 0)
			fail_msg("%s (bytewise): got '%s'", rows[i].name, other.data);
		for (size_t s = 1; s < rows[i].len; s++) {
			buf_reset(&other);
			line_transcript(rows[i].in, rows[i].len, rows[i].max, SIZE_MAX, s, &other);
			if (strcmp(other.len > 0 ? other.data : "", rows[i].expect) != 0)
				fail_msg("%s (split %zu): got '%s'", rows[i].name, s, other.data);
		}
		buf_deinit(&once);
		buf_deinit(&other);
	}
}

/* HOSTILE-INPUT row 1: USER + 1 MiB; the parser holds at most max_line. */
static void test_long_user(void **state)
{
	size_t n = 1 << 20, used;
	char *in = malloc(n + 8);
	struct pop3_parser p;

	(void)state;
	assert_non_null(in);
	memcpy(in, "USER ", 5);
	memset(in + 5, 'a', n);
	pop3_parser_init(&p, 255);
	assert_int_equal(pop3_parser_feed(&p, in, n + 5, &used), POP3_PARSE_TOO_LONG);
	assert_true(p.line.cap <= 512);
	assert_int_equal(pop3_parser_feed(&p, "\r\n", 2, &used), POP3_PARSE_TOO_LONG);
	assert_int_equal(used, 0);
	pop3_parser_deinit(&p);
	free(in);
}

static void test_commands(void **state)
{
	static const struct {
		const char *line;
		int ok;
		enum pop3_cmd id;
		size_t argc;
		const char *arg0, *arg1;
		const char *rest;
		bool too_many;
	} rows[] = {
		{ "STAT", 0, POP3_CMD_STAT, 0, NULL, NULL, "", false },
		{ "stat", 0, POP3_CMD_STAT, 0, NULL, NULL, "", false },
		{ "RETR 1", 0, POP3_CMD_RETR, 1, "1", NULL, "1", false },
		{ "TOP 1 10", 0, POP3_CMD_TOP, 2, "1", "10", "1 10", false },
		{ "PASS a b  c ", 0, POP3_CMD_PASS, 0, NULL, NULL, "a b  c ", false },
		{ "PASS p\xc3\xa4ss", 0, POP3_CMD_PASS, 0, NULL, NULL, "p\xc3\xa4ss", false },
		{ "USER j\xc3\xb6rg", 0, POP3_CMD_USER, 1, "j\xc3\xb6rg", NULL, "j\xc3\xb6rg", false },
		{ "AUTH PLAIN AGEAYg==", 0, POP3_CMD_AUTH, 2, "PLAIN", "AGEAYg==", "PLAIN AGEAYg==",
		  false },
		{ "LIST 1 2 3 4", 0, POP3_CMD_LIST, 3, "1", "2", "1 2 3 4", true },
		{ "XTND", 0, POP3_CMD_UNKNOWN, 0, NULL, NULL, "", false },
		{ "", -1, 0, 0, NULL, NULL, NULL, false },
		{ " STAT", -1, 0, 0, NULL, NULL, NULL, false },
		{ "STATS", -1, 0, 0, NULL, NULL, NULL, false },
		{ "ST4T", -1, 0, 0, NULL, NULL, NULL, false },
		{ "RETR  1", -1, 0, 0, NULL, NULL, NULL, false },
		{ "RETR 1 ", -1, 0, 0, NULL, NULL, NULL, false },
		{ "RETR \xc3\xa4", -1, 0, 0, NULL, NULL, NULL, false },
		{ "RETR 1\x01", -1, 0, 0, NULL, NULL, NULL, false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char line[256];
		struct pop3_command cmd;
		int ret;

		snprintf(line, sizeof(line), "%s", rows[i].line);
		ret = pop3_command_parse(line, strlen(line), &cmd);
		if (ret != rows[i].ok)
			fail_msg("'%s': returned %d", rows[i].line, ret);
		if (ret < 0)
			continue;
		assert_int_equal(cmd.id, rows[i].id);
		assert_int_equal(cmd.argc, rows[i].argc);
		if (rows[i].arg0 != NULL)
			assert_string_equal(cmd.argv[0], rows[i].arg0);
		if (rows[i].arg1 != NULL)
			assert_string_equal(cmd.argv[1], rows[i].arg1);
		if (rows[i].id == POP3_CMD_PASS)
			assert_memory_equal(cmd.rest, rows[i].rest, cmd.rest_len);
		assert_int_equal(cmd.too_many_args, rows[i].too_many);
	}
}

static void test_numbers(void **state)
{
	uint32_t n;

	(void)state;
	assert_int_equal(pop3_parse_number("1", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pop3_parse_number("4294967295", &n), 0);
	assert_int_equal(n, 4294967295u);
	assert_int_equal(pop3_parse_number("4294967296", &n), -1);
	assert_int_equal(pop3_parse_number("0", &n), -1);
	assert_int_equal(pop3_parse_number("-1", &n), -1);
	assert_int_equal(pop3_parse_number("1a", &n), -1);
	assert_int_equal(pop3_parse_number("", &n), -1);
	assert_int_equal(pop3_parse_number("00000000001", &n), -1);
}

/* Encodes msg in chunks of chunk bytes (0: one piece; SIZE_MAX: two
 * pieces cut at split). */
static void stuff(const char *msg, size_t len, bool top, uint64_t lines, size_t chunk,
		  size_t split, struct buf *out)
{
	struct pop3_stuffer st;
	size_t pos = 0;

	pop3_stuffer_init(&st, top, lines);
	while (pos < len && !pop3_stuffer_done(&st)) {
		size_t piece = chunk == 0 ? len - pos : chunk == SIZE_MAX ?
			       (pos < split ? split - pos : len - pos) : chunk;

		if (piece > len - pos)
			piece = len - pos;
		assert_int_equal(pop3_stuffer_add(&st, msg + pos, piece, out), 0);
		pos += piece;
	}
	assert_int_equal(pop3_stuffer_finish(&st, out), 0);
}

static void test_stuffing(void **state)
{
	static const struct {
		const char *name;
		const char *msg;
		bool top;
		uint64_t lines;
		const char *expect;
	} rows[] = {
		{ "plain", "Subject: a\r\n\r\nbody\r\n", false, 0, "Subject: a\r\n\r\nbody\r\n.\r\n" },
		{ "dots", ".a\r\n..b\r\nc.\r\n.\r\n", false, 0, "..a\r\n...b\r\nc.\r\n..\r\n.\r\n" },
		{ "dot lines in body", "S: x\r\n\r\n.\r\n.\r\nend\r\n", false, 0,
		  "S: x\r\n\r\n..\r\n..\r\nend\r\n.\r\n" },
		{ "no final CRLF", "S: x\r\n\r\nbody", false, 0, "S: x\r\n\r\nbody\r\n.\r\n" },
		{ "final bare CR", "S: x\r\n\r\nbody\r", false, 0, "S: x\r\n\r\nbody\r\n.\r\n" },
		{ "bare LF", "S: x\n\n.a\nb", false, 0, "S: x\r\n\r\n..a\r\nb\r\n.\r\n" },
		{ "empty message", "", false, 0, ".\r\n" },
		{ "top 0", "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n", true, 0, "A: 1\r\nB: 2\r\n\r\n.\r\n" },
		{ "top 1", "A: 1\r\n\r\n.l1\r\nl2\r\n", true, 1, "A: 1\r\n\r\n..l1\r\n.\r\n" },
		{ "top more than body", "A: 1\r\n\r\nl1\r\n", true, 5, "A: 1\r\n\r\nl1\r\n.\r\n" },
		{ "top no body", "A: 1\r\n", true, 5, "A: 1\r\n.\r\n" },
		{ "top with bare LF", "A: 1\n\nl1\nl2\n", true, 1, "A: 1\r\n\r\nl1\r\n.\r\n" },
		{ "top counts empty body lines", "A: 1\r\n\r\n\r\n\r\nx\r\n", true, 2,
		  "A: 1\r\n\r\n\r\n\r\n.\r\n" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t len = strlen(rows[i].msg);
		struct buf out;

		buf_init(&out, 1 << 16);
		stuff(rows[i].msg, len, rows[i].top, rows[i].lines, 0, 0, &out);
		if (strcmp(out.data, rows[i].expect) != 0)
			fail_msg("%s: got '%s'", rows[i].name, out.data);
		buf_reset(&out);
		stuff(rows[i].msg, len, rows[i].top, rows[i].lines, 1, 0, &out);
		if (strcmp(out.data, rows[i].expect) != 0)
			fail_msg("%s (bytewise): got '%s'", rows[i].name, out.data);
		for (size_t s = 1; s < len; s++) {
			buf_reset(&out);
			stuff(rows[i].msg, len, rows[i].top, rows[i].lines, SIZE_MAX, s, &out);
			if (strcmp(out.data, rows[i].expect) != 0)
				fail_msg("%s (split %zu): got '%s'", rows[i].name, s, out.data);
		}
		buf_deinit(&out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_long_user),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_stuffing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
