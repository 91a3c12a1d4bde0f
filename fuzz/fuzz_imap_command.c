/*
 * libFuzzer target for src/imap/imap_parse.c.
 *
 * The first byte picks the limits (LITERAL-, UTF8=ACCEPT, small or large
 * limits); the rest is a client's byte stream.  Properties checked:
 *   - the parser never reads or writes out of bounds (ASan), never
 *     consumes more than it is given, and holds at most what the limits
 *     allow;
 *   - feeding one byte at a time gives the same transcript as one write;
 *   - every argument of every command goes through the command-level
 *     parsers (sequence sets, sections, dates, modified UTF-7) and the
 *     string writer, whose output parses back to the same string.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_args(const struct imap_parser *p)
{
	for (uint32_t i = 0; i < p->nargs; i++) {
		const struct imap_arg *a = &p->args[i];
		const char *t = imap_arg_text(p, a);
		struct imap_seqset set;
		struct imap_section sec;
		const char *err;
		struct buf b;
		int64_t tm;
		int tz;

		if (t == NULL)
			continue;
		if (a->end != i + 1)
			abort();
		if (imap_seqset_parse(t, a->len, true, &set) == 0) {
			imap_seqset_normalize(&set, 1000);
			imap_seqset_free(&set);
		}
		if (imap_section_parse(t, a->len, &sec, &err) == 0)
			imap_section_free(&sec);
		(void)imap_parse_datetime(t, a->len, &tm, &tz);
		(void)imap_parse_date(t, a->len, &tm);
		buf_init(&b, 1 << 20);
		if (imap_utf7_to_utf8(t, a->len, &b) == 0) {
			struct buf back;

			buf_init(&back, 1 << 20);
			if (imap_utf8_to_utf7(b.data != NULL ? b.data : "", b.len, &back) != 0)
				abort();
			buf_deinit(&back);
		}
		buf_reset(&b);
		if (imap_append_string(&b, t, a->len, false) != 0)
			abort();
		buf_deinit(&b);
	}
}

static void run(const uint8_t *in, size_t len, const struct imap_parser_limits *lim, bool bytewise,
		struct buf *out)
{
	struct imap_parser p;
	size_t pos = 0;

	imap_parser_init(&p, lim);
	while (pos < len) {
		size_t piece = bytewise ? 1 : len - pos;

		while (piece > 0) {
			size_t used;
			enum imap_parse_result r = imap_parser_feed(&p, in + pos, piece, &used);

			if (used > piece)
				abort();
			pos += used;
			piece -= used;
			if (r == IMAP_PARSE_COMMAND) {
				if (!bytewise)
					check_args(&p);
				if (buf_append_str(out, "C:") < 0 || imap_parser_dump(&p, out) < 0 ||
				    buf_append_char(out, '\n') < 0)
					abort();
				imap_parser_reset(&p);
			} else if (r == IMAP_PARSE_CONTINUE) {
				if (buf_append_str(out, "+\n") < 0)
					abort();
				/* refuse odd-sized literals to cover both paths */
				if (imap_parser_literal_size(&p) % 2 == 1)
					imap_parser_literal_refuse(&p);
				else
					imap_parser_literal_go(&p);
			} else if (r == IMAP_PARSE_ERROR) {
				const char *tag = imap_parser_tag(&p);

				if (buf_printf(out, "E:%d:%s:%d\n", (int)p.error, tag != NULL ? tag : "*",
					       p.fatal) < 0)
					abort();
				if (p.fatal)
					goto done;
			} else if (piece != 0) {
				abort();
			}
		}
	}
done:
	if (p.data.len > lim->max_line * 2 + lim->max_literal + lim->max_append + 64)
		abort();
	imap_parser_deinit(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_parser_limits lim = {
		.max_line = 2048, .max_literal = 8192, .max_append = 65536, .max_depth = 16,
	};
	struct buf a, b;

	if (size == 0)
		return 0;
	lim.literal_minus = (data[0] & 1) != 0;
	lim.utf8 = (data[0] & 2) != 0;
	if ((data[0] & 4) != 0) {
		lim.max_line = 64;
		lim.max_literal = 16;
		lim.max_append = 32;
		lim.max_depth = 2;
	}
	buf_init(&a, 1 << 24);
	buf_init(&b, 1 << 24);
	run(data + 1, size - 1, &lim, false, &a);
	run(data + 1, size - 1, &lim, true, &b);
	if (a.len != b.len || (a.len > 0 && memcmp(a.data, b.data, a.len) != 0))
		abort();
	buf_deinit(&a);
	buf_deinit(&b);
	return 0;
}
