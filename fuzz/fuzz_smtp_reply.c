/*
 * libFuzzer target for the outbound client's reply parser and EHLO
 * capability parser (outbound/outbound_parse.c): what a hostile remote
 * server says (HOSTILE-INPUT row 6, OpenSMTPD CVE-2020-8794).
 *
 * Properties checked on every input:
 *   - no read outside the input (ASan; the input is copied into an
 *     exactly-sized buffer);
 *   - a DONE reply consumed at most the input, has a code in 200..599, a
 *     text of printable ASCII only (nothing that could start a new line
 *     in a log, an envelope or a DSN), at most OUTBOUND_MAX_TEXT bytes;
 *   - feeding the input byte by byte gives the same result as at once;
 *   - MORE is never returned past OUTBOUND_MAX_REPLY bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "outbound/outbound.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size > 0 ? size : 1);
	struct outbound_reply r, r2;
	struct outbound_caps caps;
	const char *err;
	size_t used = 0, used2 = 0;
	enum outbound_reply_result res, res2 = OUTBOUND_REPLY_MORE;

	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	res = outbound_reply_parse(in, size, &r, &used, &err);
	if (res == OUTBOUND_REPLY_DONE) {
		if (used > size || r.code < 200 || r.code > 599 || strlen(r.text) > OUTBOUND_MAX_TEXT)
			abort();
		for (const char *p = r.text; *p != '\0'; p++) {
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				abort();
		}
		outbound_caps_parse(in, used, &caps);
	}
	if (res == OUTBOUND_REPLY_MORE && size > OUTBOUND_MAX_REPLY)
		abort();
	/* Incremental: the first prefix that is not MORE decides. */
	for (size_t n = 0; n <= size && size <= 4096; n++) {
		res2 = outbound_reply_parse(in, n, &r2, &used2, &err);
		if (res2 != OUTBOUND_REPLY_MORE)
			break;
	}
	if (size <= 4096 && res != OUTBOUND_REPLY_MORE) {
		if (res2 != res)
			abort();
		if (res == OUTBOUND_REPLY_DONE && (used2 != used || strcmp(r.text, r2.text) != 0))
			abort();
	}
	free(in);
	return 0;
}
