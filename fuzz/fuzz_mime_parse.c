/*
 * libFuzzer target for src/mime: structure scan, ENVELOPE, BODYSTRUCTURE,
 * text extraction of arbitrary bytes (what the store does at delivery, and
 * its indexer and lazy FETCH afterwards).
 *
 * Properties checked on every input:
 *   - no crash, leak or sanitizer report, whatever the bytes;
 *   - every part's offsets are ordered and inside the message, children
 *     follow their parent in pre-order, depth and count stay within the
 *     limits;
 *   - ENVELOPE, BODYSTRUCTURE and BODY are one balanced parenthesised
 *     list (quoted strings and literals skipped), so they can be sent to
 *     IMAP clients as they are;
 *   - the extracted text is valid UTF-8 and within MIME_MAX_TEXT.
 * Run with a small stack (-rss_limit_mb and ulimit -s 256) to check that
 * nothing recurses without bound.
 */
#include <glib.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks that s is exactly one balanced IMAP list. */
static void check_list(const char *s)
{
	long depth = 0;
	size_t i = 0, n = strlen(s);

	if (n == 0 || s[0] != '(')
		abort();
	while (i < n) {
		char c = s[i];

		if (c == '"') {
			for (i++; i < n && s[i] != '"'; i++) {
				if (s[i] == '\\')
					i++;
				if (s[i] == '\r' || s[i] == '\n')
					abort();
			}
			if (i >= n)
				abort();
			i++;
			continue;
		}
		if (c == '{') {
			char *end;
			unsigned long len = strtoul(s + i + 1, &end, 10);

			if (end[0] != '}' || end[1] != '\r' || end[2] != '\n')
				abort();
			i = (size_t)(end - s) + 3 + len;
			if (i > n)
				abort();
			continue;
		}
		if (c == '(')
			depth++;
		if (c == ')' && --depth == 0 && i != n - 1)
			abort();
		if (depth < 0)
			abort();
		i++;
	}
	if (depth != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	struct mime_message m;
	struct mime_summary s;
	struct mime_limits lim;

	/* Small limits so that the edges are reached with small inputs. */
	mime_limits_default(&lim);
	lim.max_depth = 8;
	lim.max_parts = 50;
	lim.max_header_scan = 4096;
	lim.max_text = 8192;

	mime_scan(msg, size, &lim, &m);
	if (m.count == 0 || m.count > lim.max_parts + 1)
		abort();
	for (size_t i = 0; i < m.count; i++) {
		const struct mime_part *p = &m.parts[i];

		if (p->hdr_start > p->body_start || p->body_start > p->body_end || p->body_end > size)
			abort();
		if (p->depth > lim.max_depth + 1)
			abort();
		if (i > 0 && (p->parent >= i || m.parts[p->parent].depth + 1 != p->depth))
			abort();
		if (i > 0 && (p->hdr_start < m.parts[p->parent].body_start ||
			      p->body_end > m.parts[p->parent].body_end))
			abort();
	}
	mime_message_deinit(&m);

	mime_summarize(msg, size, &lim, true, &s);
	check_list(s.envelope);
	check_list(s.bodystructure);
	check_list(s.body);
	if (s.text.len > lim.max_text + 8 || !g_utf8_validate(s.text.data ? s.text.data : "", -1, NULL))
		abort();
	mime_summary_deinit(&s);
	return 0;
}
