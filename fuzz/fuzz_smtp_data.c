/*
 * libFuzzer target for the SMTP message data state machine
 * (smtp_data_feed / smtp_data_finish in src/smtp/smtp_parse.c).
 *
 * The first byte picks the mode (DATA or BDAT) and a split pattern; the
 * rest is the client's data.  Properties:
 *   - split feeding (1..16-byte pieces by the pattern) gives the same
 *     output, the same consumed count and the same counters as one shot
 *     (HOSTILE-INPUT 21);
 *   - the output is CRLF text: no bare CR, no bare LF (what the queue
 *     stores never holds a line end that another MTA reads differently);
 *   - DATA ends only right after "\r\n.\r\n" (or ".\r\n" at the very
 *     start): SMTP smuggling, CVE-2023-51764;
 *   - counters are consistent (header bytes <= output bytes).
 *
 * Seeds: fuzz/corpus/smtp_data; dictionary: fuzz/smtp.dict.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t run(const char *in, size_t len, enum smtp_data_mode mode, unsigned pattern,
		  struct smtp_data_parser *p, struct buf *out)
{
	size_t used = 0, i = 0;

	smtp_data_init(p, mode);
	while (used < len && !p->ended) {
		size_t n = pattern == 0 ? len - used : 1 + ((pattern >> (i++ % 8)) & 15);

		if (n > len - used)
			n = len - used;
		used += smtp_data_feed(p, in + used, n, out);
	}
	if (mode == SMTP_DATA_RAW)
		smtp_data_finish(p, out);
	return used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_data_parser a, b;
	struct buf oa, ob;
	enum smtp_data_mode mode;
	unsigned pattern;
	const char *in;
	size_t len, ua, ub;

	if (size < 1)
		return 0;
	mode = (data[0] & 1) ? SMTP_DATA_RAW : SMTP_DATA_DOT;
	pattern = data[0] | 1u;
	in = (const char *)data + 1;
	len = size - 1;
	buf_init(&oa, 2 * len + 64);
	buf_init(&ob, 2 * len + 64);
	ua = run(in, len, mode, 0, &a, &oa);
	ub = run(in, len, mode, pattern * 2654435761u, &b, &ob);
	if (ua != ub || oa.len != ob.len || (oa.len > 0 && memcmp(oa.data, ob.data, oa.len) != 0) ||
	    a.ended != b.ended || a.bare != b.bare || a.header_bytes != b.header_bytes ||
	    a.max_line != b.max_line || a.out_bytes != oa.len)
		abort();
	for (size_t i = 0; i < oa.len; i++) {
		if (oa.data[i] == '\r' && (i + 1 >= oa.len || oa.data[i + 1] != '\n'))
			abort();
		if (oa.data[i] == '\n' && (i == 0 || oa.data[i - 1] != '\r'))
			abort();
	}
	if (a.header_bytes > a.out_bytes)
		abort();
	if (mode == SMTP_DATA_DOT && a.ended) {
		if (ua == 3) {
			if (memcmp(in, ".\r\n", 3) != 0)
				abort();
		} else if (ua < 5 || memcmp(in + ua - 5, "\r\n.\r\n", 5) != 0) {
			abort();
		}
	}
	buf_deinit(&oa);
	buf_deinit(&ob);
	return 0;
}
