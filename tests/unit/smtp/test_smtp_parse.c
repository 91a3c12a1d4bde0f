/*
 * Unit tests for src/smtp/smtp_parse.c: command lines, paths, ESMTP
 * parameters (HOSTILE-INPUT 8: malformed parameter strings give 501/555
 * only), xtext (HOSTILE-INPUT 5: CR, LF, NUL never decoded into an
 * envelope), BDAT/AUTH arguments, and the DATA state machine (SMTP
 * smuggling, CVE-2023-51764; byte-at-a-time equals one-shot, HOSTILE-INPUT
 * 21; header size and line lengths, HOSTILE-INPUT 10).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_private.h"

/* ---- command lines ---- */

static void test_parse_command_verbs(void **state)
{
	static const struct {
		const char *line;
		enum smtp_cmd_id id;
		const char *args;
	} rows[] = {
		{ "EHLO client.example", SMTP_CMD_EHLO, "client.example" },
		{ "ehlo x", SMTP_CMD_EHLO, "x" },
		{ "HELO x", SMTP_CMD_HELO, "x" },
		{ "MAIL FROM:<a@b.c>", SMTP_CMD_MAIL, "FROM:<a@b.c>" },
		{ "rcpt TO:<a@b.c>", SMTP_CMD_RCPT, "TO:<a@b.c>" },
		{ "DATA", SMTP_CMD_DATA, "" },
		{ "BDAT 10 LAST", SMTP_CMD_BDAT, "10 LAST" },
		{ "RSET", SMTP_CMD_RSET, "" },
		{ "NOOP", SMTP_CMD_NOOP, "" },
		{ "NOOP hello", SMTP_CMD_NOOP, "hello" },
		{ "QUIT", SMTP_CMD_QUIT, "" },
		{ "VRFY x", SMTP_CMD_VRFY, "x" },
		{ "EXPN x", SMTP_CMD_EXPN, "x" },
		{ "HELP", SMTP_CMD_HELP, "" },
		{ "STARTTLS", SMTP_CMD_STARTTLS, "" },
		{ "AUTH PLAIN", SMTP_CMD_AUTH, "PLAIN" },
		{ "GET / HTTP/1.0", SMTP_CMD_FORBIDDEN, "/ HTTP/1.0" },
		{ "CONNECT host:25 HTTP/1.0", SMTP_CMD_FORBIDDEN, "host:25 HTTP/1.0" },
		/* must reject: unknown or malformed verbs */
		{ "", SMTP_CMD_UNKNOWN, "" },
		{ " EHLO x", SMTP_CMD_UNKNOWN, "" },
		{ "EHLOX x", SMTP_CMD_UNKNOWN, "" },
		{ "MAIL", SMTP_CMD_MAIL, "" },
		{ "XEXCH50 1 2", SMTP_CMD_UNKNOWN, "" },
		{ "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", SMTP_CMD_UNKNOWN, "" },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct smtp_command cmd;

		smtp_parse_command(rows[i].line, strlen(rows[i].line), &cmd);
		assert_int_equal(cmd.id, rows[i].id);
		assert_int_equal(cmd.args_len, strlen(rows[i].args));
		assert_memory_equal(cmd.args, rows[i].args, cmd.args_len);
	}
}

static void test_check_line_rejects_nul_cr_lf(void **state)
{
	const char *error;

	assert_int_equal(smtp_check_line("NOOP", 4, &error), 0);
	assert_int_equal(smtp_check_line("NO\0OP", 5, &error), -1);
	assert_true(strncmp(error, "500 5.5.2", 9) == 0);
	assert_int_equal(smtp_check_line("NOOP\rRSET", 9, &error), -1);
	assert_true(strncmp(error, "500 5.5.2", 9) == 0);
	assert_int_equal(smtp_check_line("NOOP\nRSET", 9, &error), -1);
	assert_true(strncmp(error, "500 5.5.2", 9) == 0);
}

/* ---- paths ---- */

static void test_parse_mail_paths(void **state)
{
	static const struct {
		const char *args;
		bool esmtp;
		const char *code;       /* NULL: accepted */
		const char *address;
	} rows[] = {
		{ "FROM:<john@example.com>", true, NULL, "john@example.com" },
		{ "from:<john@example.com>", true, NULL, "john@example.com" },
		{ "FROM: <john@example.com>", true, NULL, "john@example.com" },
		{ "FROM:<>", true, NULL, "" },
		{ "FROM:<@relay.example,@r2.example:john@example.com>", true, NULL, "john@example.com" },
		{ "FROM:<\"john smith\"@example.com>", true, NULL, "\"john smith\"@example.com" },
		{ "FROM:<\"a>b\"@example.com>", true, NULL, "\"a>b\"@example.com" },
		{ "FROM:<john@[192.0.2.1]>", true, NULL, "john@[192.0.2.1]" },
		{ "FROM:<john@[IPv6:2001:db8::1]>", true, NULL, "john@[IPv6:2001:db8::1]" },
		{ "FROM:<a.b+c@x-y.example>", true, NULL, "a.b+c@x-y.example" },
		{ "FROM:<j\xc3\xb6rg@example.com> SMTPUTF8", true, NULL, "j\xc3\xb6rg@example.com" },
		{ "FROM:<a@b.c> SIZE=1000 BODY=8BITMIME", true, NULL, "a@b.c" },
		/* HOSTILE-INPUT 7: shell metacharacters are atext; they stay data */
		{ "FROM:<`id`@example.com>", true, NULL, "`id`@example.com" },
		{ "FROM:<|cmd@example.com>", true, NULL, "|cmd@example.com" },
		/* must reject */
		{ "FROM:<;sleep 3;>", true, "501", NULL },
		{ "FROM:john@example.com", true, "501", NULL },
		{ "FROM:<john@example.com", true, "501", NULL },
		{ "FROM:<john>", true, "501", NULL },
		{ "FROM:<john@>", true, "501", NULL },
		{ "FROM:<@example.com>", true, "501", NULL },
		{ "FROM:<john@@example.com>", true, "501", NULL },
		{ "FROM:<john..doe@example.com>", true, "501", NULL },
		{ "FROM:<.john@example.com>", true, "501", NULL },
		{ "FROM:<john.@example.com>", true, "501", NULL },
		{ "FROM:<john@-example.com>", true, "501", NULL },
		{ "FROM:<john@example-.com>", true, "501", NULL },
		{ "FROM:<john@example..com>", true, "501", NULL },
		{ "FROM:<john@exa mple.com>", true, "501", NULL },
		{ "FROM:<john doe@example.com>", true, "501", NULL },
		{ "FROM:<john@[300.1.1.1]>", true, "501", NULL },
		{ "FROM:<john@[IPv6:zz]>", true, "501", NULL },
		{ "FROM:<\"unterminated@example.com>", true, "501", NULL },
		{ "FROM:<j\xc3\xb6rg@example.com>", true, "553", NULL },
		{ "FROM:<j\xc3(rg@example.com> SMTPUTF8", true, "501", NULL },
		{ "FROM:<j\xc0\xafrg@example.com> SMTPUTF8", true, "501", NULL },
		{ "FROM:<a@b.c>junk", true, "501", NULL },
		{ "FROM:<a@b.c> SIZE=10", false, "555", NULL },
		{ "TO:<a@b.c>", true, "501", NULL },
		{ "FROM", true, "501", NULL },
		{ "", true, "501", NULL },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct smtp_path path;
		struct smtp_mail_params params;
		const char *error = NULL;
		int ret = smtp_parse_mail(rows[i].args, strlen(rows[i].args), rows[i].esmtp, &path,
					  &params, &error);

		if (rows[i].code == NULL) {
			if (ret != 0)
				fail_msg("row %zu '%s' refused: %s", i, rows[i].args, error);
			assert_string_equal(path.address, rows[i].address);
			assert_int_equal(path.len, strlen(rows[i].address));
		} else {
			if (ret == 0)
				fail_msg("row %zu '%s' accepted", i, rows[i].args);
			if (strncmp(error, rows[i].code, 3) != 0)
				fail_msg("row %zu '%s': %s, expected %s", i, rows[i].args, error,
					 rows[i].code);
			/* every reply has an enhanced status code */
			assert_true(error[3] == ' ' && (error[4] == '4' || error[4] == '5') &&
				    error[5] == '.');
		}
	}
}

static void test_parse_path_length_limits(void **state)
{
	char args[1200];
	struct smtp_path path;
	struct smtp_rcpt_params params;
	const char *error;

	/* 64-octet local part: fine; 65: refused */
	snprintf(args, sizeof(args), "TO:<%.*s@example.com>", 64,
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(smtp_parse_rcpt(args, strlen(args), true, &path, &params, &error), 0);
	snprintf(args, sizeof(args), "TO:<%.*s@example.com>", 65,
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(smtp_parse_rcpt(args, strlen(args), true, &path, &params, &error), -1);
	/* a path over 256 octets */
	memset(args, 'a', sizeof(args));
	memcpy(args, "TO:<x@", 6);
	for (size_t i = 6; i < 1100; i += 10)
		args[i + 9] = '.';
	memcpy(args + 1100, ".com>", 6);
	assert_int_equal(smtp_parse_rcpt(args, strlen(args), true, &path, &params, &error), -1);
	assert_true(strncmp(error, "501", 3) == 0);
	/* postmaster without a domain, RCPT only */
	assert_int_equal(smtp_parse_rcpt("TO:<Postmaster>", 15, true, &path, &params, &error), 0);
	assert_true(path.postmaster);
	assert_int_equal(smtp_parse_rcpt("TO:<>", 5, true, &path, &params, &error), -1);
}

/* ---- ESMTP parameters (HOSTILE-INPUT 8) ---- */

static const char *const bad_mail_params[] = {
	"=", "\"", "SIZE=", "SIZE", "SIZE=-1", "SIZE=1x", "SIZE=18446744073709551616",
	"SIZE=99999999999999999999999", "SIZE=1 SIZE=2", "SIZE=0x10", "SIZE= 10",
	"BODY=", "BODY", "BODY=BINARYMIME", "BODY=9BIT", "BODY=7BIT BODY=7BIT",
	"SMTPUTF8=yes", "SMTPUTF8 SMTPUTF8", "RET=", "RET=ALL", "RET=FULL RET=HDRS",
	"ENVID=", "ENVID", "ENVID=a+0Ab", "ENVID=a+0Db", "ENVID=a+00b", "ENVID=+0", "ENVID=+",
	"ENVID=+zz", "ENVID=+0a", "ENVID=a=b", "ENVID=x ENVID=y",
	"ENVID=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	"AUTH=", "AUTH=a+0D+0Ab", "AUTH=<> AUTH=<>", "XFOO=1", "X-", "-X=1", "=1", "A==1",
	"FOO BAR BAZ", "NOTIFY=NEVER", "ORCPT=rfc822;a@b",
	"A B C D E F G H I J K L M N O P Q R", "SIZE=1\x7f", "\xff=1", "SIZE=\xc3\xa9",
	"SIZE=1 BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=x AUTH=<> SIZE=2",
};

static const char *const bad_rcpt_params[] = {
	"NOTIFY=", "NOTIFY", "NOTIFY=NEVER,SUCCESS", "NOTIFY=SUCCESS,SUCCESS", "NOTIFY=ALWAYS",
	"NOTIFY=SUCCESS,", "NOTIFY=,SUCCESS", "NOTIFY=NEVER NOTIFY=NEVER", "ORCPT=", "ORCPT",
	"ORCPT=rfc822", "ORCPT=;a@b", "ORCPT=rfc822;", "ORCPT=rfc822;a+0Ab", "ORCPT=rfc822;a+0D+0A",
	"ORCPT=rfc822;a+00", "ORCPT=rfc822;+4", "ORCPT=rf c822;a", "ORCPT=rfc822;a ORCPT=rfc822;b",
	"SIZE=10", "BODY=8BITMIME", "X=1",
};

static void test_malformed_params_give_501_or_555(void **state)
{
	char args[2048];

	for (size_t i = 0; i < sizeof(bad_mail_params) / sizeof(bad_mail_params[0]); i++) {
		struct smtp_path path;
		struct smtp_mail_params params;
		const char *error = NULL;

		snprintf(args, sizeof(args), "FROM:<a@example.com> %s", bad_mail_params[i]);
		if (smtp_parse_mail(args, strlen(args), true, &path, &params, &error) == 0)
			fail_msg("MAIL params '%s' accepted", bad_mail_params[i]);
		if (strncmp(error, "501 ", 4) != 0 && strncmp(error, "555 ", 4) != 0)
			fail_msg("MAIL params '%s': %s", bad_mail_params[i], error);
	}
	for (size_t i = 0; i < sizeof(bad_rcpt_params) / sizeof(bad_rcpt_params[0]); i++) {
		struct smtp_path path;
		struct smtp_rcpt_params params;
		const char *error = NULL;

		snprintf(args, sizeof(args), "TO:<a@example.com> %s", bad_rcpt_params[i]);
		if (smtp_parse_rcpt(args, strlen(args), true, &path, &params, &error) == 0)
			fail_msg("RCPT params '%s' accepted", bad_rcpt_params[i]);
		if (strncmp(error, "501 ", 4) != 0 && strncmp(error, "555 ", 4) != 0)
			fail_msg("RCPT params '%s': %s", bad_rcpt_params[i], error);
	}
}

static void test_many_params_bounded(void **state)
{
	/* 10 000 parameters: refused without reading them all into memory. */
	size_t len = 10000 * 4 + 64;
	char *args = malloc(len);
	struct smtp_path path;
	struct smtp_mail_params params;
	const char *error;
	size_t n;

	assert_non_null(args);
	n = (size_t)snprintf(args, len, "FROM:<a@example.com>");
	for (int i = 0; i < 10000; i++)
		n += (size_t)snprintf(args + n, len - n, " X=1");
	assert_int_equal(smtp_parse_mail(args, n, true, &path, &params, &error), -1);
	assert_true(strncmp(error, "501", 3) == 0 || strncmp(error, "555", 3) == 0);
	free(args);
}

static void test_good_params(void **state)
{
	struct smtp_path path;
	struct smtp_mail_params mp;
	struct smtp_rcpt_params rp;
	const char *error;
	const char *mail = "FROM:<a@example.com> SIZE=18446744073709551615 BODY=8bitmime "
			   "smtputf8 RET=HDRS ENVID=QQ+2B314+3Dx AUTH=<>";
	const char *rcpt = "TO:<b@example.com> NOTIFY=success,delay ORCPT=rfc822;b+40example.com";

	assert_int_equal(smtp_parse_mail(mail, strlen(mail), true, &path, &mp, &error), 0);
	assert_true(mp.has_size);
	assert_true(mp.size == UINT64_MAX);
	assert_int_equal(mp.body, SMTP_BODY_8BITMIME);
	assert_true(mp.smtputf8);
	assert_int_equal(mp.ret, SMTP_RET_HDRS);
	assert_string_equal(mp.envid, "QQ+314=x");
	assert_string_equal(mp.auth, "<>");
	assert_int_equal(smtp_parse_rcpt(rcpt, strlen(rcpt), true, &path, &rp, &error), 0);
	assert_int_equal(rp.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY);
	assert_string_equal(rp.orcpt, "rfc822;b@example.com");
	assert_int_equal(smtp_parse_rcpt("TO:<b@x.y> NOTIFY=NEVER", 23, true, &path, &rp, &error), 0);
	assert_int_equal(rp.notify, SMTP_NOTIFY_NEVER);
}

/* ---- xtext (HOSTILE-INPUT 5) ---- */

static void test_xtext(void **state)
{
	char out[16];
	size_t n;
	struct buf b;

	assert_int_equal(smtp_xtext_decode("abc", 3, out, sizeof(out), &n), 0);
	assert_string_equal(out, "abc");
	assert_int_equal(smtp_xtext_decode("a+2Bb", 5, out, sizeof(out), &n), 0);
	assert_string_equal(out, "a+b");
	assert_int_equal(n, 3);
	assert_int_equal(smtp_xtext_decode("", 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	/* must reject: control bytes, malformed escapes, overflow */
	assert_int_equal(smtp_xtext_decode("+0A", 3, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_xtext_decode("+0D", 3, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_xtext_decode("+00", 3, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_xtext_decode("+7F", 3, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_xtext_decode("+2b", 3, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_xtext_decode("+2", 2, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_xtext_decode("a=b", 3, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_xtext_decode("a b", 3, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_xtext_decode("0123456789abcdef", 16, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_xtext_decode("0123456789abcde", 15, out, sizeof(out), &n), 0);
	/* round trip of every printable byte */
	buf_init(&b, 1024);
	for (int c = 0x20; c < 0x7f; c++) {
		char one = (char)c;

		buf_reset(&b);
		assert_int_equal(smtp_xtext_encode(&b, &one, 1), 0);
		assert_int_equal(smtp_xtext_decode(b.data, b.len, out, sizeof(out), &n), 0);
		assert_int_equal(n, 1);
		assert_int_equal(out[0], one);
	}
	buf_deinit(&b);
}

static void test_bdat_auth_helo_args(void **state)
{
	uint64_t size;
	bool last;
	const char *error, *mech, *init;
	size_t mlen, ilen;

	assert_int_equal(smtp_parse_bdat("100", 3, &size, &last, &error), 0);
	assert_true(size == 100 && !last);
	assert_int_equal(smtp_parse_bdat("0 LAST", 6, &size, &last, &error), 0);
	assert_true(size == 0 && last);
	assert_int_equal(smtp_parse_bdat("", 0, &size, &last, &error), -1);
	assert_int_equal(smtp_parse_bdat("-1", 2, &size, &last, &error), -1);
	assert_int_equal(smtp_parse_bdat("1 LASTX", 7, &size, &last, &error), -1);
	assert_int_equal(smtp_parse_bdat("99999999999999999999999", 23, &size, &last, &error), -1);
	assert_int_equal(smtp_parse_bdat("1  LAST", 7, &size, &last, &error), -1);

	assert_int_equal(smtp_parse_auth("PLAIN", 5, &mech, &mlen, &init, &ilen, &error), 0);
	assert_true(mlen == 5 && init == NULL);
	assert_int_equal(smtp_parse_auth("PLAIN AGpvaG4AcHc=", 18, &mech, &mlen, &init, &ilen, &error), 0);
	assert_true(ilen == 12 && strncmp(init, "AGpvaG4AcHc=", 12) == 0);
	assert_int_equal(smtp_parse_auth("PLAIN =", 7, &mech, &mlen, &init, &ilen, &error), 0);
	assert_int_equal(smtp_parse_auth("", 0, &mech, &mlen, &init, &ilen, &error), -1);
	assert_int_equal(smtp_parse_auth("PLAIN ", 6, &mech, &mlen, &init, &ilen, &error), -1);
	assert_int_equal(smtp_parse_auth("PLAIN a b", 9, &mech, &mlen, &init, &ilen, &error), -1);
	assert_int_equal(smtp_parse_auth("PL:IN", 5, &mech, &mlen, &init, &ilen, &error), -1);
	assert_int_equal(smtp_parse_auth("ABCDEFGHIJKLMNOPQRSTU", 21, &mech, &mlen, &init, &ilen, &error), -1);

	assert_int_equal(smtp_parse_helo("client.example", 14, &error), 0);
	assert_int_equal(smtp_parse_helo("[192.0.2.1]", 11, &error), 0);
	assert_int_equal(smtp_parse_helo("", 0, &error), -1);
	assert_int_equal(smtp_parse_helo("a b", 3, &error), -1);
	assert_int_equal(smtp_parse_helo("a\x80", 2, &error), -1);
}

/* ---- DATA ---- */

struct data_case {
	const char *in;
	enum smtp_data_mode mode;
	const char *out;          /* output when ended (DOT) or after finish (RAW) */
	bool ended;               /* DOT: the terminator was found */
	size_t consumed;          /* DOT: bytes consumed; 0 = all */
	bool bare;
};

static const struct data_case data_cases[] = {
	{ ".\r\n", SMTP_DATA_DOT, "", true, 3, false },
	{ "a\r\n.\r\n", SMTP_DATA_DOT, "a\r\n", true, 0, false },
	{ "a\r\n.\r\nMAIL FROM:<x@y>\r\n", SMTP_DATA_DOT, "a\r\n", true, 6, false },
	{ "..a\r\n.\r\n", SMTP_DATA_DOT, ".a\r\n", true, 0, false },
	{ "a\r\n..\r\n.\r\n", SMTP_DATA_DOT, "a\r\n.\r\n", true, 0, false },
	{ "Subject: x\r\n\r\nbody\r\n.\r\n", SMTP_DATA_DOT, "Subject: x\r\n\r\nbody\r\n", true, 0, false },
	/* SMTP smuggling: none of these ends the data (CVE-2023-51764) */
	{ "a\n.\nMAIL FROM:<x@y>\r\n", SMTP_DATA_DOT, "a\r\n\r\nMAIL FROM:<x@y>\r\n", false, 0, true },
	{ "a\r\n.\nMAIL FROM:<x@y>\r\n", SMTP_DATA_DOT, "a\r\n\r\nMAIL FROM:<x@y>\r\n", false, 0, true },
	{ "a\n.\r\nMAIL FROM:<x@y>\r\n", SMTP_DATA_DOT, "a\r\n\r\nMAIL FROM:<x@y>\r\n", false, 0, true },
	{ "a\r.\r\nMAIL FROM:<x@y>\r\n", SMTP_DATA_DOT, "a\r\n\r\nMAIL FROM:<x@y>\r\n", false, 0, true },
	{ "a\r\n.\rMAIL\r\n", SMTP_DATA_DOT, "a\r\n\r\nMAIL\r\n", false, 0, true },
	/* ... but a real CRLF.CRLF after them does */
	{ "a\n.\r\n.\r\n", SMTP_DATA_DOT, "a\r\n\r\n", true, 0, true },
	{ "a\nb\r\n.\r\n", SMTP_DATA_DOT, "a\r\nb\r\n", true, 0, true },
	{ "a\rb\r\n.\r\n", SMTP_DATA_DOT, "a\r\nb\r\n", true, 0, true },
	{ "a\r\n\r\n.\r\n", SMTP_DATA_DOT, "a\r\n\r\n", true, 0, false },
	/* RAW (BDAT): dots are data, lines are normalized, the end is the caller's */
	{ "a\r\n.\r\nb", SMTP_DATA_RAW, "a\r\n.\r\nb\r\n", false, 0, false },
	{ "a\nb\r", SMTP_DATA_RAW, "a\r\nb\r\n", false, 0, true },
	{ "", SMTP_DATA_RAW, "", false, 0, false },
};

static void run_data_case(const struct data_case *dc, size_t step, struct buf *out,
			  struct smtp_data_parser *p, size_t *consumed_r)
{
	size_t len = strlen(dc->in), used = 0;

	smtp_data_init(p, dc->mode);
	buf_reset(out);
	while (used < len && !p->ended) {
		size_t n = len - used < step ? len - used : step;
		size_t c = smtp_data_feed(p, dc->in + used, n, out);

		assert_true(c <= n);
		used += c;
		if (c < n)
			assert_true(p->ended);
	}
	if (dc->mode == SMTP_DATA_RAW)
		smtp_data_finish(p, out);
	*consumed_r = used;
}

static void test_data_cases_every_split(void **state)
{
	struct buf out;

	buf_init(&out, 4096);
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
		const struct data_case *dc = &data_cases[i];

		for (size_t step = 1; step <= strlen(dc->in) + 1; step++) {
			struct smtp_data_parser p;
			size_t consumed;

			run_data_case(dc, step, &out, &p, &consumed);
			if (p.ended != dc->ended)
				fail_msg("case %zu step %zu: ended %d", i, step, p.ended);
			if (dc->ended && dc->consumed != 0 && consumed != dc->consumed)
				fail_msg("case %zu step %zu: consumed %zu", i, step, consumed);
			if (out.len != strlen(dc->out) ||
			    (out.len > 0 && memcmp(out.data, dc->out, out.len) != 0))
				fail_msg("case %zu step %zu: output '%s'", i, step,
					 out.len > 0 ? out.data : "");
			assert_int_equal(p.bare, dc->bare);
			assert_int_equal(p.out_bytes, out.len);
		}
	}
	buf_deinit(&out);
}

/* Random messages: byte at a time and random splits equal one shot. */
static void test_data_random_splits(void **state)
{
	static const char alphabet[] = { '\r', '\n', '.', 'a', ' ', ':', 'H' };
	struct buf one, many;
	uint32_t x = 12345;

	buf_init(&one, 1 << 16);
	buf_init(&many, 1 << 16);
	for (int round = 0; round < 2000; round++) {
		char in[256];
		size_t len, used1, usedn = 0;
		struct smtp_data_parser p1, pn;

		x = x * 1103515245u + 12345u;
		len = (x >> 16) % sizeof(in);
		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			in[i] = alphabet[(x >> 16) % sizeof(alphabet)];
		}
		smtp_data_init(&p1, round % 2 ? SMTP_DATA_DOT : SMTP_DATA_RAW);
		smtp_data_init(&pn, p1.mode);
		buf_reset(&one);
		buf_reset(&many);
		used1 = smtp_data_feed(&p1, in, len, &one);
		while (usedn < len && !pn.ended) {
			size_t n;

			x = x * 1103515245u + 12345u;
			n = 1 + (x >> 16) % 7;
			if (n > len - usedn)
				n = len - usedn;
			usedn += smtp_data_feed(&pn, in + usedn, n, &many);
		}
		if (p1.mode == SMTP_DATA_RAW) {
			smtp_data_finish(&p1, &one);
			smtp_data_finish(&pn, &many);
		}
		assert_int_equal(used1, usedn);
		assert_int_equal(p1.ended, pn.ended);
		assert_int_equal(p1.bare, pn.bare);
		assert_int_equal(p1.header_bytes, pn.header_bytes);
		assert_int_equal(p1.max_line, pn.max_line);
		assert_int_equal(one.len, many.len);
		if (one.len > 0)
			assert_memory_equal(one.data, many.data, one.len);
		/* the output is always CRLF text: no bare CR or LF */
		for (size_t i = 0; i < one.len; i++) {
			if (one.data[i] == '\r')
				assert_true(i + 1 < one.len && one.data[i + 1] == '\n');
			if (one.data[i] == '\n')
				assert_true(i > 0 && one.data[i - 1] == '\r');
		}
	}
	buf_deinit(&one);
	buf_deinit(&many);
}

static void test_data_header_and_lines(void **state)
{
	struct smtp_data_parser p;
	struct buf out;
	const char *msg = "Subject: hi\r\n folded\r\n\r\nbody line that is long\r\n.\r\n";

	buf_init(&out, 4096);
	smtp_data_init(&p, SMTP_DATA_DOT);
	assert_int_equal(smtp_data_feed(&p, msg, strlen(msg), &out), strlen(msg));
	assert_true(p.ended);
	assert_int_equal(p.header_bytes, strlen("Subject: hi\r\n folded\r\n"));
	assert_false(p.in_header);
	assert_int_equal(p.max_line, strlen("body line that is long"));
	buf_deinit(&out);
}

/* A header folded over 200k lines grows header_bytes without bound in
 * the parser; the session compares it with smtp/max-header-size. */
static void test_data_folded_header_counted(void **state)
{
	struct smtp_data_parser p;
	struct buf out;
	const char *fold = " x\r\n";

	buf_init(&out, 4096);
	smtp_data_init(&p, SMTP_DATA_DOT);
	assert_int_equal(smtp_data_feed(&p, "X-A: a\r\n", 8, &out), 8);
	for (int i = 0; i < 200000; i++) {
		buf_reset(&out);
		assert_int_equal(smtp_data_feed(&p, fold, 4, &out), 4);
	}
	assert_true(p.in_header);
	assert_int_equal(p.header_bytes, 8 + 200000ull * 4);
	buf_deinit(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_command_verbs),
		cmocka_unit_test(test_check_line_rejects_nul_cr_lf),
		cmocka_unit_test(test_parse_mail_paths),
		cmocka_unit_test(test_parse_path_length_limits),
		cmocka_unit_test(test_malformed_params_give_501_or_555),
		cmocka_unit_test(test_many_params_bounded),
		cmocka_unit_test(test_good_params),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_bdat_auth_helo_args),
		cmocka_unit_test(test_data_cases_every_split),
		cmocka_unit_test(test_data_random_splits),
		cmocka_unit_test(test_data_header_and_lines),
		cmocka_unit_test(test_data_folded_header_counted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
