/*
 * libFuzzer target for src/pop3/pop3_parse.c.
 *
 * The input is used twice: as a client's command stream (line reader and
 * tokenizer; one write and one byte at a time must agree), and as a
 * message given to the RETR/TOP encoder, whose output must not depend on
 * the chunk boundaries and must be a valid multi-line response: every
 * line ends in CRLF, no line is a lone "." before the end, and undoing
 * the dot-stuffing gives back the message (with bare LFs as CRLF).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/pop3_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void lines(const uint8_t *in, size_t len, size_t chunk, struct buf *out)
{
	struct pop3_parser p;
	size_t pos = 0;

	pop3_parser_init(&p, 64);
	while (pos < len) {
		size_t piece = chunk == 0 || chunk > len - pos ? len - pos : chunk;

		while (piece > 0) {
			size_t used;
			enum pop3_parse_result r = pop3_parser_feed(&p, in + pos, piece, &used);

			if (used > piece)
				abort();
			pos += used;
			piece -= used;
			if (r == POP3_PARSE_LINE) {
				struct pop3_command cmd;
				char *copy = malloc(p.line.len + 1);

				if (copy == NULL)
					abort();
				memcpy(copy, p.line.data, p.line.len + 1);
				if (pop3_command_parse(copy, p.line.len, &cmd) == 0) {
					uint32_t n;

					for (size_t i = 0; i < cmd.argc; i++)
						(void)pop3_parse_number(cmd.argv[i], &n);
				}
				free(copy);
				if (buf_append_str(out, "L:") < 0 ||
				    buf_append(out, p.line.data, p.line.len) < 0 ||
				    buf_append_char(out, '\n') < 0)
					abort();
			} else if (r == POP3_PARSE_ERROR) {
				if (buf_append_str(out, "E\n") < 0)
					abort();
			} else if (r == POP3_PARSE_TOO_LONG) {
				if (buf_append_str(out, "T\n") < 0)
					abort();
				goto done;
			} else if (piece != 0) {
				abort();
			}
		}
	}
done:
	if (p.line.cap > 128)
		abort();
	pop3_parser_deinit(&p);
}

static void encode(const uint8_t *in, size_t len, bool top, uint64_t n, size_t chunk,
		   struct buf *out)
{
	struct pop3_stuffer st;
	size_t pos = 0;

	pop3_stuffer_init(&st, top, n);
	while (pos < len && !pop3_stuffer_done(&st)) {
		size_t piece = chunk == 0 || chunk > len - pos ? len - pos : chunk;

		if (pop3_stuffer_add(&st, in + pos, piece, out) < 0)
			abort();
		pos += piece;
	}
	if (pop3_stuffer_finish(&st, out) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf a, b;
	bool top = size > 0 && (data[0] & 1) != 0;
	uint64_t n = size > 0 ? data[0] >> 1 : 0;

	buf_init(&a, 1 << 24);
	buf_init(&b, 1 << 24);
	lines(data, size, 0, &a);
	lines(data, size, 1, &b);
	if (a.len != b.len || (a.len > 0 && memcmp(a.data, b.data, a.len) != 0))
		abort();
	buf_reset(&a);
	buf_reset(&b);
	encode(data, size, top, n, 0, &a);
	encode(data, size, top, n, 3, &b);
	if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		abort();
	/* the response: CRLF lines, ending with the only lone "." */
	if (a.len < 3 || memcmp(a.data + a.len - 3, ".\r\n", 3) != 0)
		abort();
	for (size_t i = 0, start = 0; i < a.len; i++) {
		if (a.data[i] != '\n')
			continue;
		if (i == 0 || a.data[i - 1] != '\r')
			abort();
		if (i - start == 2 && a.data[start] == '.' && i + 1 != a.len)
			abort();
		start = i + 1;
	}
	if (!top) {
		/* un-stuff and compare with the message, LF made CRLF */
		struct buf orig, back;
		size_t i = 0;

		buf_init(&orig, 1 << 24);
		buf_init(&back, 1 << 24);
		for (size_t k = 0; k < size; k++) {
			if (data[k] == '\n' && (k == 0 || data[k - 1] != '\r') && buf_append_char(&orig, '\r') < 0)
				abort();
			if (buf_append_char(&orig, (char)data[k]) < 0)
				abort();
		}
		while (i < a.len - 3) {
			if (a.data[i] == '.' && (i == 0 || a.data[i - 1] == '\n'))
				i++;
			if (buf_append_char(&back, a.data[i]) < 0)
				abort();
			i++;
		}
		/* the encoder may add a final CRLF (or LF after a bare CR) */
		if (back.len < orig.len || (orig.len > 0 && memcmp(back.data, orig.data, orig.len) != 0))
			abort();
		buf_deinit(&orig);
		buf_deinit(&back);
	}
	buf_deinit(&a);
	buf_deinit(&b);
	return 0;
}
