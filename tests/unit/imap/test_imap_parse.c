/*
 * Unit tests for src/imap/imap_parse.c: the incremental command parser
 * (table-driven, with must-reject rows; every row is also fed one byte at
 * a time, split at every point, and in random pieces, which must give the
 * same transcript as one write), sequence sets, dates, body sections,
 * modified UTF-7 and the string writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imap/imap_parse.h"

static const struct imap_parser_limits default_limits = {
	.max_line = 1024,
	.max_literal = 4096,
	.max_append = 100000,
	.max_depth = 8,
	.literal_minus = false,
	.utf8 = false,
};

static const char *const error_names[] = {
	"NONE", "SYNTAX", "TAG", "LINE_TOO_LONG", "LITERAL_TOO_BIG", "NONSYNC_TOO_BIG",
	"DEPTH", "NUL", "8BIT",
};

/*
 * Runs input through a parser in pieces of chunk bytes (0: one write;
 * SIZE_MAX-1: split once at split), answering every CONTINUE with "go" (or
 * refusing it when refuse), and writes one transcript line per event:
 *   C:<dump>   a command
 *   +          a continuation request
 *   E:<code>:<tag>[:fatal]
 */
struct feed_plan {
	size_t chunk;            /* 0: all at once */
	size_t split;            /* with chunk SIZE_MAX: two pieces, cut here */
	unsigned seed;           /* with chunk 1 and seed != 0: random pieces */
};

static void transcript(const char *in, size_t len, const struct imap_parser_limits *lim,
		       bool refuse, const struct feed_plan *plan, struct buf *out)
{
	struct imap_parser p;
	size_t pos = 0;
	unsigned rnd = plan->seed;

	imap_parser_init(&p, lim);
	while (pos < len) {
		size_t piece = len - pos;

		if (plan->chunk == SIZE_MAX)
			piece = pos < plan->split ? plan->split - pos : len - pos;
		else if (plan->seed != 0) {
			rnd = rnd * 1103515245u + 12345u;
			piece = 1 + (rnd >> 16) % 7;
		} else if (plan->chunk != 0)
			piece = plan->chunk;
		if (piece > len - pos)
			piece = len - pos;
		if (piece == 0)
			piece = 1;
		while (piece > 0) {
			size_t used = 0;
			enum imap_parse_result r = imap_parser_feed(&p, in + pos, piece, &used);

			assert_true(used <= piece);
			pos += used;
			piece -= used;
			if (r == IMAP_PARSE_COMMAND) {
				assert_int_equal(buf_append_str(out, "C:"), 0);
				assert_int_equal(imap_parser_dump(&p, out), 0);
				assert_int_equal(buf_append_char(out, '\n'), 0);
				imap_parser_reset(&p);
			} else if (r == IMAP_PARSE_CONTINUE) {
				assert_int_equal(buf_append_str(out, "+\n"), 0);
				if (refuse)
					imap_parser_literal_refuse(&p);
				else
					imap_parser_literal_go(&p);
			} else if (r == IMAP_PARSE_ERROR) {
				const char *tag = imap_parser_tag(&p);

				assert_int_equal(buf_printf(out, "E:%s:%s%s\n", error_names[p.error],
							    tag != NULL ? tag : "*",
							    p.fatal ? ":fatal" : ""), 0);
				if (p.fatal)
					goto done;
			} else {
				assert_int_equal(piece, 0);
				break;
			}
		}
	}
done:
	imap_parser_deinit(&p);
}

struct parse_case {
	const char *name;
	const char *input;
	size_t len;               /* 0: strlen */
	const char *expect;
	const struct imap_parser_limits *limits;   /* NULL: default_limits */
	bool refuse;
};

static const struct imap_parser_limits utf8_limits = {
	.max_line = 1024, .max_literal = 4096, .max_append = 100000, .max_depth = 8, .utf8 = true,
};
static const struct imap_parser_limits minus_limits = {
	.max_line = 1024, .max_literal = 100000, .max_append = 100000, .max_depth = 8,
	.literal_minus = true,
};
static const struct imap_parser_limits small_append = {
	.max_line = 1024, .max_literal = 100, .max_append = 1000, .max_depth = 8,
};
static const struct imap_parser_limits big_line = {
	.max_line = 300000, .max_literal = 4096, .max_append = 100000, .max_depth = 8,
};

static const struct parse_case cases[] = {
	/* accepted */
	{ "noop", "a NOOP\r\n", 0, "C:a NOOP\n", NULL, false },
	{ "lower case name", "a1 noop\r\n", 0, "C:a1 NOOP\n", NULL, false },
	{ "bare LF ends a line", "a NOOP\n", 0, "C:a NOOP\n", NULL, false },
	{ "empty lines ignored", "\r\n\n\r\na NOOP\r\n", 0, "C:a NOOP\n", NULL, false },
	{ "pipelined", "a NOOP\r\nb CAPABILITY\r\n", 0, "C:a NOOP\nC:b CAPABILITY\n", NULL, false },
	{ "login atoms", "a LOGIN user pass\r\n", 0, "C:a LOGIN user pass\n", NULL, false },
	{ "quoted with escapes", "a LOGIN \"us\\\"er\" \"p\\\\w d\"\r\n", 0,
	  "C:a LOGIN \"us\\\"er\" \"p\\\\w d\"\n", NULL, false },
	{ "empty quoted", "a LOGIN \"\" \"\"\r\n", 0, "C:a LOGIN \"\" \"\"\n", NULL, false },
	{ "literals sync and nonsync", "a LOGIN {4}\r\nuser {4+}\r\npass\r\n", 0,
	  "+\nC:a LOGIN L\"user\" L\"pass\"\n", NULL, false },
	{ "zero literal", "a LOGIN {0}\r\n {0+}\r\n\r\n", 0, "+\nC:a LOGIN L\"\" L\"\"\n", NULL,
	  false },
	{ "literal with CRLF inside", "a APPEND INBOX {7}\r\nab\r\ncd.\r\n", 0,
	  "+\nC:a APPEND INBOX L\"ab\\x0D\\x0Acd.\"\n", NULL, false },
	{ "literal8 with NUL", "a APPEND INBOX ~{3}\r\na\0b\r\n", 26,
	  "+\nC:a APPEND INBOX L8\"a\\x00b\"\n", NULL, false },
	{ "append with flags and date",
	  "A003 APPEND saved-messages (\\Seen) \"17-Jul-1996 02:44:25 -0700\" {5+}\r\nhello\r\n", 0,
	  "C:A003 APPEND saved-messages (\\Seen) \"17-Jul-1996 02:44:25 -0700\" L\"hello\"\n", NULL,
	  false },
	{ "fetch list", "a UID FETCH 1:*,5 (FLAGS UID RFC822.SIZE)\r\n", 0,
	  "C:a UID FETCH 1:*,5 (FLAGS UID RFC822.SIZE)\n", NULL, false },
	{ "nested lists", "a X (() (a (b)) c)\r\n", 0, "C:a X (() (a (b)) c)\n", NULL, false },
	{ "body section is one atom",
	  "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (From To)]<0.100> BODY[1.2.MIME])\r\n", 0,
	  "C:a FETCH 1 (BODY.PEEK[HEADER.FIELDS (From To)]<0.100> BODY[1.2.MIME])\n", NULL, false },
	{ "gmail-style mailbox atom", "a SELECT [Gmail]/Sent\r\n", 0, "C:a SELECT [Gmail]/Sent\n",
	  NULL, false },
	{ "list wildcards", "a LIST \"\" %/*\r\n", 0, "C:a LIST \"\" %/*\n", NULL, false },
	{ "flags", "a STORE 1 +FLAGS.SILENT (\\Seen \\Deleted $Junk)\r\n", 0,
	  "C:a STORE 1 +FLAGS.SILENT (\\Seen \\Deleted $Junk)\n", NULL, false },
	{ "extra spaces", "a  NOOP  x   y\r\n", 0, "C:a NOOP x y\n", NULL, false },
	{ "utf8 quoted with UTF8=ACCEPT", "a SELECT \"Entw\xc3\xbcrfe\"\r\n", 0,
	  "C:a SELECT \"Entw\\xC3\\xBCrfe\"\n", &utf8_limits, false },
	{ "tag with ]", "a] NOOP\r\n", 0, "C:a] NOOP\n", NULL, false },
	{ "list then atom", "a X (a)b\r\n", 0, "E:SYNTAX:a\n", NULL, false },
	{ "literal in list", "a X (a {1+}\r\nb c)\r\n", 0, "C:a X (a L\"b\" c)\n", NULL, false },
	{ "literal then more", "a X {1}\r\nb {2}\r\ncd e\r\n", 0, "+\n+\nC:a X L\"b\" L\"cd\" e\n",
	  NULL, false },

	/* rejected: HOSTILE-INPUT row 14, NUL */
	{ "NUL in quoted login", "a LOGIN \"a\0b\" x\r\nb NOOP\r\n", 25, "E:NUL:a\nC:b NOOP\n", NULL,
	  false },
	{ "NUL in quoted mailbox", "a SELECT \"in\0box\"\r\nb NOOP\r\n", 27, "E:NUL:a\nC:b NOOP\n",
	  NULL, false },
	{ "NUL in atom", "a SELECT in\0box\r\nb NOOP\r\n", 25, "E:NUL:a\nC:b NOOP\n", NULL,
	  false },
	{ "NUL in tag", "a\0 NOOP\r\nb NOOP\r\n", 17, "E:NUL:*\nC:b NOOP\n", NULL, false },
	{ "NUL in name", "a NO\0OP\r\nb NOOP\r\n", 17, "E:NUL:a\nC:b NOOP\n", NULL, false },
	/* 8-bit */
	{ "8-bit quoted without UTF8=ACCEPT", "a SELECT \"Entw\xc3\xbcrfe\"\r\nb NOOP\r\n", 0,
	  "E:8BIT:a\nC:b NOOP\n", NULL, false },
	{ "invalid UTF-8 quoted", "a SELECT \"\xc3\x28\"\r\nb NOOP\r\n", 0,
	  "E:8BIT:a\nC:b NOOP\n", &utf8_limits, false },
	{ "overlong UTF-8 quoted", "a SELECT \"\xc0\xaf\"\r\nb NOOP\r\n", 0, "E:8BIT:a\nC:b NOOP\n",
	  &utf8_limits, false },
	{ "surrogate UTF-8 quoted", "a SELECT \"\xed\xa0\x80\"\r\nb NOOP\r\n", 0,
	  "E:8BIT:a\nC:b NOOP\n", &utf8_limits, false },
	{ "truncated UTF-8 quoted", "a SELECT \"\xe2\x82\"\r\nb NOOP\r\n", 0,
	  "E:8BIT:a\nC:b NOOP\n", &utf8_limits, false },
	{ "8-bit atom", "a SELECT Entw\xc3\xbcrfe\r\nb NOOP\r\n", 0, "E:8BIT:a\nC:b NOOP\n",
	  &utf8_limits, false },
	/* HOSTILE-INPUT row 18: literal announcements */
	{ "literal 2^32", "a APPEND INBOX {4294967296}\r\nb NOOP\r\n", 0,
	  "E:SYNTAX:a\nC:b NOOP\n", NULL, false },
	{ "literal 2^64", "a APPEND INBOX {18446744073709551616}\r\nb NOOP\r\n", 0,
	  "E:SYNTAX:a\nC:b NOOP\n", NULL, false },
	{ "literal 21 digits", "a APPEND INBOX {000000000000000000001}\r\nb NOOP\r\n", 0,
	  "E:SYNTAX:a\nC:b NOOP\n", NULL, false },
	{ "literal -1", "a APPEND INBOX {-1}\r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n", NULL,
	  false },
	{ "literal empty size", "a LOGIN {}\r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n", NULL,
	  false },
	{ "nonsync 100000000", "a APPEND INBOX {100000000+}\r\nxxxx", 0,
	  "E:NONSYNC_TOO_BIG:a:fatal\n", NULL, false },
	{ "nonsync 2^32", "a APPEND INBOX {4294967296+}\r\nxxxx", 0,
	  "E:NONSYNC_TOO_BIG:a:fatal\n", NULL, false },
	{ "nonsync 5000 under LITERAL-", "a APPEND INBOX {5000+}\r\nxxxx", 0,
	  "E:NONSYNC_TOO_BIG:a:fatal\n", &minus_limits, false },
	{ "nonsync 4096 under LITERAL-", "a LOGIN {4096+}\r\n", 0, "", &minus_limits, false },
	{ "sync 5000 under LITERAL-", "a APPEND INBOX {5000}\r\n", 0, "+\n", &minus_limits, false },
	{ "sync append over APPENDLIMIT", "a APPEND INBOX {1001}\r\nb NOOP\r\n", 0,
	  "E:LITERAL_TOO_BIG:a\nC:b NOOP\n", &small_append, false },
	{ "sync append at APPENDLIMIT", "a APPEND INBOX {1000}\r\n", 0, "+\n", &small_append, false },
	{ "sync login literal over max", "a LOGIN {101}\r\nb NOOP\r\n", 0,
	  "E:LITERAL_TOO_BIG:a\nC:b NOOP\n", &small_append, false },
	{ "literals add up", "a LOGIN {60+}\r\n"
	  "012345678901234567890123456789012345678901234567890123456789 {41}\r\nb NOOP\r\n", 0,
	  "E:LITERAL_TOO_BIG:a\nC:b NOOP\n", &small_append, false },
	{ "append literal in list is not the message", "a APPEND INBOX ({101}\r\nb NOOP\r\n", 0,
	  "E:LITERAL_TOO_BIG:a\nC:b NOOP\n", &small_append, false },
	{ "refused literal", "a APPEND INBOX {5}\r\nb NOOP\r\n", 0, "+\nC:b NOOP\n", NULL, true },
	{ "literal not at line end", "a LOGIN {3}x\r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n",
	  NULL, false },
	{ "literal8 without brace", "a X ~3\r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n", NULL,
	  false },
	/* HOSTILE-INPUT row 19: nesting */
	{ "nesting at limit", "a X ((((((((a))))))))\r\n", 0, "C:a X ((((((((a))))))))\n", NULL,
	  false },
	{ "nesting over limit", "a X (((((((((a)))))))))\r\nb NOOP\r\n", 0,
	  "E:DEPTH:a\nC:b NOOP\n", NULL, false },
	{ "unclosed list", "a X (a\r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n", NULL, false },
	{ "unexpected close", "a X a)\r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n", NULL, false },
	/* syntax */
	{ "bare CR", "a NOOP\rb\r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n", NULL, false },
	{ "bare CR at line start", "\rb NOOP\r\nc NOOP\r\n", 0, "E:SYNTAX:*\nC:c NOOP\n", NULL,
	  false },
	{ "plus tag", "+ NOOP\r\nb NOOP\r\n", 0, "E:TAG:*\nC:b NOOP\n", NULL, false },
	{ "star tag", "* NOOP\r\nb NOOP\r\n", 0, "E:TAG:*\nC:b NOOP\n", NULL, false },
	{ "missing command", "a\r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n", NULL, false },
	{ "missing command after space", "a \r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n", NULL,
	  false },
	{ "name too long", "a ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ\r\nb NOOP\r\n", 0,
	  "E:SYNTAX:a\nC:b NOOP\n", NULL, false },
	{ "bad escape", "a X \"\\a\"\r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n", NULL, false },
	{ "unterminated quoted", "a X \"abc\r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n", NULL,
	  false },
	{ "no space after quoted", "a X \"a\"b\r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n", NULL,
	  false },
	{ "paren in atom", "a X a(b\r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n", NULL, false },
	{ "brace in atom", "a X a{b\r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n", NULL, false },
	{ "control char", "a X a\x01z\r\nb NOOP\r\n", 0, "E:SYNTAX:a\nC:b NOOP\n", NULL, false },
	{ "unterminated section", "a FETCH 1 BODY[HEADER\r\nb NOOP\r\n", 0,
	  "E:SYNTAX:a\nC:b NOOP\n", NULL, false },
	/* the rest of a bad command is skipped, literals included (RFC 7888) */
	{ "skip nonsync literal", "a X \"\0\" {5+}\r\nb NOOP\r\nc NOOP\r\n", 30,
	  "E:NUL:a\nC:c NOOP\n", NULL, false },
	{ "skip nonsync literal then more line", "a X ) {3+}\r\nabc x {2+}\r\nzz\r\nc NOOP\r\n", 0,
	  "E:SYNTAX:a\nC:c NOOP\n", NULL, false },
	{ "skip ends at sync literal", "a X ) {3}\r\nc NOOP\r\n", 0, "E:SYNTAX:a\nC:c NOOP\n", NULL,
	  false },
	{ "skipped nonsync too big", "a X ) {99999+}\r\nxxx", 0, "E:SYNTAX:a\nE:NONSYNC_TOO_BIG:*:fatal\n",
	  NULL, false },
	/* HOSTILE-INPUT row 1 */
	{ "line too long", NULL, 0, "E:LINE_TOO_LONG:a:fatal\n", NULL, false },
};

static char *long_line(size_t n, size_t *len_r)
{
	char *s = malloc(n + 3);

	assert_non_null(s);
	memcpy(s, "a NOOP ", 7);
	memset(s + 7, 'x', n - 5);
	s[n + 2] = '\0';
	*len_r = n + 2;
	return s;
}

static void check_case(const struct parse_case *c)
{
	const struct imap_parser_limits *lim = c->limits != NULL ? c->limits : &default_limits;
	size_t len = c->len;
	char *owned = NULL;
	const char *in = c->input;
	struct buf once, other;
	struct feed_plan plan = { 0, 0, 0 };

	if (in == NULL) {
		owned = long_line(2000, &len);
		in = owned;
	} else if (len == 0) {
		len = strlen(in);
	}
	buf_init(&once, 1 << 20);
	buf_init(&other, 1 << 20);
	transcript(in, len, lim, c->refuse, &plan, &once);
	if (strcmp(once.data != NULL ? once.data : "", c->expect) != 0)
		fail_msg("%s: got\n%s\nexpected\n%s", c->name, once.data != NULL ? once.data : "",
			 c->expect);
	/* one byte at a time */
	plan.chunk = 1;
	transcript(in, len, lim, c->refuse, &plan, &other);
	if (strcmp(other.data != NULL ? other.data : "", c->expect) != 0)
		fail_msg("%s (bytewise): got\n%s", c->name, other.data);
	/* every split point */
	for (size_t split = 1; split < len && len < 600; split++) {
		buf_reset(&other);
		plan.chunk = SIZE_MAX;
		plan.split = split;
		transcript(in, len, lim, c->refuse, &plan, &other);
		if (strcmp(other.data != NULL ? other.data : "", c->expect) != 0)
			fail_msg("%s (split %zu): got\n%s", c->name, split, other.data);
	}
	/* random pieces */
	for (unsigned seed = 1; seed < 20; seed++) {
		buf_reset(&other);
		plan.chunk = 1;
		plan.seed = seed;
		transcript(in, len, lim, c->refuse, &plan, &other);
		if (strcmp(other.data != NULL ? other.data : "", c->expect) != 0)
			fail_msg("%s (seed %u): got\n%s", c->name, seed, other.data);
	}
	buf_deinit(&once);
	buf_deinit(&other);
	free(owned);
}

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i]);
}

/* HOSTILE-INPUT row 19: 100k "(" cost a bounded stack, and the parser
 * holds only max_depth lists. */
static void test_deep_nesting(void **state)
{
	size_t n = 100000, len;
	char *in = malloc(n + 32);
	struct buf out;
	struct feed_plan plan = { 0, 0, 0 };

	(void)state;
	assert_non_null(in);
	memcpy(in, "a ID ", 5);
	memset(in + 5, '(', n);
	memcpy(in + 5 + n, "\r\nb NOOP\r\n", 11);
	len = strlen(in);
	buf_init(&out, 4096);
	transcript(in, len, &big_line, false, &plan, &out);
	assert_string_equal(out.data, "E:DEPTH:a\nC:b NOOP\n");
	/* with the default line limit the line itself is too long */
	buf_reset(&out);
	transcript(in, len, &default_limits, false, &plan, &out);
	assert_string_equal(out.data, "E:DEPTH:a\nE:LINE_TOO_LONG:*:fatal\n");
	buf_deinit(&out);
	free(in);
}

/* A 1 MiB line with and without CRLF: fatal at the limit, and the parser
 * never holds more than the limit. */
static void test_long_line_memory(void **state)
{
	size_t len;
	char *in = long_line(1 << 20, &len);
	struct imap_parser p;
	size_t used;

	(void)state;
	imap_parser_init(&p, &default_limits);
	assert_int_equal(imap_parser_feed(&p, in, len, &used), IMAP_PARSE_ERROR);
	assert_true(p.fatal);
	assert_int_equal(p.error, IMAP_PERR_LINE_TOO_LONG);
	assert_true(used <= default_limits.max_line);
	assert_true(p.data.cap <= 2 * default_limits.max_line + 64);
	/* dead: consumes nothing more */
	assert_int_equal(imap_parser_feed(&p, "\r\n", 2, &used), IMAP_PARSE_ERROR);
	assert_int_equal(used, 0);
	imap_parser_deinit(&p);
	free(in);
}

/* An announced literal is not allocated before its bytes arrive. */
static void test_literal_not_preallocated(void **state)
{
	static const struct imap_parser_limits lim = {
		.max_line = 1024, .max_literal = 4096, .max_append = 1u << 30, .max_depth = 8,
	};
	const char *in = "a APPEND INBOX {1000000000}\r\n";
	struct imap_parser p;
	size_t used;

	(void)state;
	imap_parser_init(&p, &lim);
	assert_int_equal(imap_parser_feed(&p, in, strlen(in), &used), IMAP_PARSE_CONTINUE);
	assert_int_equal(imap_parser_literal_size(&p), 1000000000);
	assert_true(p.data.cap < 4096);
	imap_parser_literal_go(&p);
	assert_int_equal(imap_parser_feed(&p, "abc", 3, &used), IMAP_PARSE_MORE);
	assert_true(p.data.cap < 4096);
	imap_parser_deinit(&p);
}

static void test_accessors(void **state)
{
	const char *in = "t1 LOGIN {4}\r\nj\0hn \"NIL\" NIL x%y (a b) ~{1}\r\nz\r\n";
	size_t len = 48, used, pos = 0, n;
	struct imap_parser p;
	struct imap_args it, sub;
	const struct imap_arg *a;
	const char *t;
	enum imap_parse_result r;

	(void)state;
	imap_parser_init(&p, &default_limits);
	r = imap_parser_feed(&p, in, len, &used);
	assert_int_equal(r, IMAP_PARSE_CONTINUE);
	pos += used;
	imap_parser_literal_go(&p);
	r = imap_parser_feed(&p, in + pos, len - pos, &used);
	assert_int_equal(r, IMAP_PARSE_CONTINUE);
	pos += used;
	imap_parser_literal_go(&p);
	r = imap_parser_feed(&p, in + pos, len - pos, &used);
	assert_int_equal(r, IMAP_PARSE_COMMAND);
	assert_int_equal(pos + used, len);
	assert_string_equal(imap_parser_tag(&p), "t1");
	assert_string_equal(p.name, "LOGIN");

	imap_args_top(&p, &it);
	assert_int_equal(imap_args_left(&it), 6);
	a = imap_args_next(&it);          /* literal with NUL: not a string */
	assert_int_equal(a->type, IMAP_ARG_LITERAL);
	assert_true((a->flags & IMAP_AF_NUL) != 0);
	assert_null(imap_arg_astring(&p, a, &n));
	a = imap_args_next(&it);          /* "NIL" is a string, not NIL */
	assert_false(imap_arg_is_nil(&p, a));
	assert_string_equal(imap_arg_astring(&p, a, &n), "NIL");
	assert_true(imap_arg_nstring(&p, a, &t, &n));
	assert_string_equal(t, "NIL");
	a = imap_args_next(&it);          /* NIL */
	assert_true(imap_arg_is_nil(&p, a));
	assert_true(imap_arg_nstring(&p, a, &t, &n));
	assert_null(t);
	assert_string_equal(imap_arg_astring(&p, a, &n), "NIL");
	a = imap_args_next(&it);          /* x%y: an atom, not an astring */
	assert_null(imap_arg_astring(&p, a, &n));
	assert_string_equal(imap_arg_text(&p, a), "x%y");
	a = imap_args_next(&it);
	assert_int_equal(a->type, IMAP_ARG_LIST);
	assert_int_equal(a->count, 2);
	imap_args_list(&p, a, &sub);
	assert_true(imap_arg_atom_is(&p, imap_args_next(&sub), "A"));
	assert_true(imap_arg_atom_is(&p, imap_args_peek(&sub), "b"));
	assert_non_null(imap_args_next(&sub));
	assert_null(imap_args_next(&sub));
	a = imap_args_next(&it);
	assert_true((a->flags & IMAP_AF_LITERAL8) != 0);
	assert_string_equal(imap_arg_string(&p, a, &n), "z");
	assert_null(imap_args_next(&it));
	imap_parser_reset(&p);
	assert_true(imap_parser_idle(&p));
	imap_parser_deinit(&p);
}

/* ---- sequence sets ---- */

static void test_seqset(void **state)
{
	static const struct {
		const char *in;
		uint32_t star;
		const char *expect;  /* normalized "lo-hi,..." or NULL: rejected */
	} rows[] = {
		{ "1", 10, "1-1" },
		{ "1:*", 10, "1-10" },
		{ "*", 10, "10-10" },
		{ "5:3", 10, "3-5" },
		{ "*:4", 10, "4-10" },
		{ "1,3,2", 10, "1-3" },
		{ "1:3,2:5,9", 10, "1-5,9-9" },
		{ "4294967295", 10, "4294967295-4294967295" },
		{ "1:*", 0, "" },
		{ "*", 0, "" },
		{ "3:*", 0, "" },
		{ "3,1:*", 0, "3-3" },
		{ "", 10, NULL },
		{ "0", 10, NULL },
		{ "0:5", 10, NULL },
		{ "01", 10, NULL },
		{ "1,", 10, NULL },
		{ ",1", 10, NULL },
		{ "1::2", 10, NULL },
		{ "1:", 10, NULL },
		{ "4294967296", 10, NULL },
		{ "99999999999999999999", 10, NULL },
		{ "-1", 10, NULL },
		{ "1 2", 10, NULL },
		{ "a", 10, NULL },
		{ "$", 10, NULL },       /* not allowed in this table */
		{ "$,1", 10, NULL },
		{ "**", 10, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct imap_seqset set;
		int ret = imap_seqset_parse(rows[i].in, strlen(rows[i].in), false, &set);
		char out[256] = "";

		if (rows[i].expect == NULL) {
			if (ret == 0)
				fail_msg("seqset '%s' accepted", rows[i].in);
			continue;
		}
		if (ret != 0)
			fail_msg("seqset '%s' refused", rows[i].in);
		imap_seqset_normalize(&set, rows[i].star);
		for (size_t k = 0; k < set.count; k++) {
			size_t l = strlen(out);

			snprintf(out + l, sizeof(out) - l, "%s%u-%u", k > 0 ? "," : "",
				 set.ranges[k].lo, set.ranges[k].hi);
		}
		if (strcmp(out, rows[i].expect) != 0)
			fail_msg("seqset '%s': got '%s' expected '%s'", rows[i].in, out, rows[i].expect);
		imap_seqset_free(&set);
	}
}

static void test_seqset_dollar_contains(void **state)
{
	struct imap_seqset set;

	(void)state;
	assert_int_equal(imap_seqset_parse("$", 1, true, &set), 0);
	assert_true(set.dollar);
	imap_seqset_free(&set);
	assert_int_equal(imap_seqset_parse("2:4,10,20:*", 11, true, &set), 0);
	imap_seqset_normalize(&set, 25);
	assert_false(imap_seqset_contains(&set, 1));
	assert_true(imap_seqset_contains(&set, 2));
	assert_true(imap_seqset_contains(&set, 4));
	assert_false(imap_seqset_contains(&set, 5));
	assert_true(imap_seqset_contains(&set, 10));
	assert_true(imap_seqset_contains(&set, 25));
	assert_false(imap_seqset_contains(&set, 26));
	imap_seqset_free(&set);
}

/* ---- dates ---- */

static void test_dates(void **state)
{
	int64_t t;
	int tz;
	struct buf b;

	(void)state;
	assert_int_equal(imap_parse_datetime("17-Jul-1996 02:44:25 -0700", 26, &t, &tz), 0);
	assert_int_equal(t, 837596665);
	assert_int_equal(tz, -420);
	assert_int_equal(imap_parse_datetime(" 7-Jul-1996 02:44:25 +0000", 26, &t, &tz), 0);
	assert_int_equal(t, 836707465);
	assert_int_equal(imap_parse_datetime("7-jul-1996 02:44:25 +0000", 25, &t, &tz), 0);
	assert_int_equal(imap_parse_datetime("29-Feb-2024 00:00:00 +0100", 26, &t, &tz), 0);
	assert_int_equal(t, 1709161200);
	assert_int_equal(imap_parse_datetime("29-Feb-2023 00:00:00 +0100", 26, &t, &tz), -1);
	assert_int_equal(imap_parse_datetime("32-Jan-2024 00:00:00 +0100", 26, &t, &tz), -1);
	assert_int_equal(imap_parse_datetime("01-Foo-2024 00:00:00 +0100", 26, &t, &tz), -1);
	assert_int_equal(imap_parse_datetime("01-Jan-2024 24:00:00 +0100", 26, &t, &tz), -1);
	assert_int_equal(imap_parse_datetime("01-Jan-2024 00:00:00 0100", 25, &t, &tz), -1);
	assert_int_equal(imap_parse_datetime("01-Jan-2024 00:00:00 +0160", 26, &t, &tz), -1);
	assert_int_equal(imap_parse_datetime("01-Jan-2024 00:00:00 +01000", 27, &t, &tz), -1);
	assert_int_equal(imap_parse_datetime("", 0, &t, &tz), -1);
	assert_int_equal(imap_parse_date("1-Feb-1994", 10, &t), 0);
	assert_int_equal(t, 760060800);
	assert_int_equal(imap_parse_date("01-Feb-1994", 11, &t), 0);
	assert_int_equal(imap_parse_date("1-Feb-94", 8, &t), -1);
	assert_int_equal(imap_parse_date("1-Feb-1994x", 11, &t), -1);

	buf_init(&b, 128);
	assert_int_equal(imap_format_datetime(&b, 837596665, -420), 0);
	assert_string_equal(b.data, "\"17-Jul-1996 02:44:25 -0700\"");
	buf_reset(&b);
	assert_int_equal(imap_format_datetime(&b, 0, 0), 0);
	assert_string_equal(b.data, "\"01-Jan-1970 00:00:00 +0000\"");
	buf_reset(&b);
	assert_int_equal(imap_format_datetime(&b, 1709161200, 60), 0);
	assert_string_equal(b.data, "\"29-Feb-2024 00:00:00 +0100\"");
	buf_deinit(&b);
}

/* ---- sections ---- */

static void test_sections(void **state)
{
	static const struct {
		const char *in;
		const char *echo;        /* NULL: rejected */
		int kind;
		size_t nparts;
		size_t nfields;
	} rows[] = {
		{ "BODY[]", "BODY[]", IMAP_SECTION_ALL, 0, 0 },
		{ "body.peek[]", "BODY[]", IMAP_SECTION_ALL, 0, 0 },
		{ "BODY[HEADER]", "BODY[HEADER]", IMAP_SECTION_HEADER, 0, 0 },
		{ "BODY[TEXT]<0.2048>", "BODY[TEXT]<0>", IMAP_SECTION_TEXT, 0, 0 },
		{ "BODY[1.2.3]", "BODY[1.2.3]", IMAP_SECTION_ALL, 3, 0 },
		{ "BODY[1.MIME]", "BODY[1.MIME]", IMAP_SECTION_MIME, 1, 0 },
		{ "BODY[2.HEADER]", "BODY[2.HEADER]", IMAP_SECTION_HEADER, 1, 0 },
		{ "BODY.PEEK[HEADER.FIELDS (From To \"Subject\")]<10.20>",
		  "BODY[HEADER.FIELDS (From To Subject)]<10>", IMAP_SECTION_HEADER_FIELDS, 0, 3 },
		{ "BODY[1.HEADER.FIELDS.NOT (X-A)]", "BODY[1.HEADER.FIELDS.NOT (X-A)]",
		  IMAP_SECTION_HEADER_FIELDS_NOT, 1, 1 },
		{ "BINARY[1]", "BINARY[1]", IMAP_SECTION_ALL, 1, 0 },
		{ "BINARY.PEEK[]<0.10>", "BINARY[]<0>", IMAP_SECTION_ALL, 0, 0 },
		{ "BINARY.SIZE[2]", "BINARY.SIZE[2]", IMAP_SECTION_ALL, 1, 0 },
		{ "BODY[MIME]", NULL, 0, 0, 0 },
		{ "BODY[0]", NULL, 0, 0, 0 },
		{ "BODY[1.]", NULL, 0, 0, 0 },
		{ "BODY[1..2]", NULL, 0, 0, 0 },
		{ "BODY[HEADER.FIELDS]", NULL, 0, 0, 0 },
		{ "BODY[HEADER.FIELDS ()]", NULL, 0, 0, 0 },
		{ "BODY[HEADER.FIELDS (a:b)]", NULL, 0, 0, 0 },
		{ "BODY[TEXTX]", NULL, 0, 0, 0 },
		{ "BODY[]<0>", NULL, 0, 0, 0 },
		{ "BODY[]<0.0>", NULL, 0, 0, 0 },
		{ "BODY[]<.5>", NULL, 0, 0, 0 },
		{ "BODY[]<0.5>x", NULL, 0, 0, 0 },
		{ "BODY[]<99999999999.5>", NULL, 0, 0, 0 },
		{ "BINARY[HEADER]", NULL, 0, 0, 0 },
		{ "BINARY[1.MIME]", NULL, 0, 0, 0 },
		{ "BINARY.SIZE[1]<0.5>", NULL, 0, 0, 0 },
		{ "BODY[", NULL, 0, 0, 0 },
		{ "BODYX[]", NULL, 0, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct imap_section sec;
		const char *err = NULL;
		int ret = imap_section_parse(rows[i].in, strlen(rows[i].in), &sec, &err);

		if (rows[i].echo == NULL) {
			if (ret == 0)
				fail_msg("section '%s' accepted", rows[i].in);
			assert_non_null(err);
			continue;
		}
		if (ret != 0)
			fail_msg("section '%s' refused: %s", rows[i].in, err);
		assert_string_equal(sec.echo, rows[i].echo);
		assert_int_equal(sec.kind, rows[i].kind);
		assert_int_equal(sec.nparts, rows[i].nparts);
		assert_int_equal(sec.nfields, rows[i].nfields);
		imap_section_free(&sec);
	}
}

/* ---- modified UTF-7 ---- */

static void test_utf7(void **state)
{
	static const struct {
		const char *utf7, *utf8;
	} pairs[] = {
		{ "INBOX", "INBOX" },
		{ "&-", "&" },
		{ "a&-b", "a&b" },
		{ "Entw&APw-rfe", "Entw\xc3\xbcrfe" },
		{ "&ZeVnLIqe-", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
		{ "~peter/mail/&U,BTFw-/&ZeVnLIqe-",
		  "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
		{ "&2D3eAA-", "\xf0\x9f\x98\x80" },
	};
	static const char *const bad[] = {
		"&", "&AGE-", "&Jjo", "&Jjo!-", "&2D0-", "&3gA-", "\xc3\xbc", "a\tb", "&Jj-",
	};
	struct buf b;

	(void)state;
	buf_init(&b, 1024);
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		buf_reset(&b);
		assert_int_equal(imap_utf7_to_utf8(pairs[i].utf7, strlen(pairs[i].utf7), &b), 0);
		assert_string_equal(b.data, pairs[i].utf8);
		buf_reset(&b);
		assert_int_equal(imap_utf8_to_utf7(pairs[i].utf8, strlen(pairs[i].utf8), &b), 0);
		assert_string_equal(b.data, pairs[i].utf7);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&b);
		if (imap_utf7_to_utf8(bad[i], strlen(bad[i]), &b) == 0)
			fail_msg("utf7 '%s' accepted", bad[i]);
		assert_int_equal(b.len, 0);
	}
	buf_reset(&b);
	assert_int_equal(imap_utf8_to_utf7("\xc3", 1, &b), -1);
	buf_deinit(&b);
}

static void test_append_string(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(imap_append_string(&b, "NIL", 3, false), 0);
	assert_string_equal(b.data, "\"NIL\"");
	buf_reset(&b);
	assert_int_equal(imap_append_string(&b, "a\"b\\c", 5, false), 0);
	assert_string_equal(b.data, "\"a\\\"b\\\\c\"");
	buf_reset(&b);
	assert_int_equal(imap_append_string(&b, "a\r\nb", 4, false), 0);
	assert_string_equal(b.data, "{4}\r\na\r\nb");
	buf_reset(&b);
	assert_int_equal(imap_append_string(&b, "\xc3\xbc", 2, false), 0);
	assert_string_equal(b.data, "{2}\r\n\xc3\xbc");
	buf_reset(&b);
	assert_int_equal(imap_append_string(&b, "\xc3\xbc", 2, true), 0);
	assert_string_equal(b.data, "\"\xc3\xbc\"");
	buf_reset(&b);
	assert_int_equal(imap_append_nstring(&b, NULL, 0, false), 0);
	assert_string_equal(b.data, "NIL");
	buf_deinit(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_long_line_memory),
		cmocka_unit_test(test_literal_not_preallocated),
		cmocka_unit_test(test_accessors),
		cmocka_unit_test(test_seqset),
		cmocka_unit_test(test_seqset_dollar_contains),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_utf7),
		cmocka_unit_test(test_append_string),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
