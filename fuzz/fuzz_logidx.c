/*
 * libFuzzer target for the pure half of core/logidx.c: the index file
 * decoder, its validation and searches, the rebuild scanner (one-shot and
 * in random chunks must agree), the line parser and the time stamp
 * round trip.  Input: arbitrary bytes, read both as an index image and as
 * log text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/logidx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct collected {
	struct logidx_entry *e;
	size_t count, cap;
};

static void collect(void *context, const struct logidx_entry *e)
{
	struct collected *c = context;

	if (c->count == c->cap) {
		c->cap = c->cap == 0 ? 16 : c->cap * 2;
		c->e = xreallocarray(c->e, c->cap, sizeof(*c->e));
	}
	c->e[c->count++] = *e;
}

static void fuzz_index_image(const uint8_t *data, size_t size)
{
	struct logidx_entry *e;
	int64_t created;
	size_t count, valid, i;

	if (logidx_parse(data, size, &created, &e, &count) < 0)
		return;
	valid = logidx_valid_prefix(e, count, (uint64_t)size * 4096);
	if (valid > count)
		abort();
	if (valid > 0) {
		if (logidx_find_offset(e, valid, e[valid - 1].offset, &i) && i != valid - 1)
			abort();
		(void)logidx_find_time(e, valid, created, &i);
	}
	(void)logidx_find_offset(e, count, (uint64_t)created, &i);
	free(e);
}

static void fuzz_log_text(const uint8_t *data, size_t size)
{
	struct collected one = { 0 }, chunked = { 0 };
	struct logidx_builder b;
	size_t pos = 0, step = size > 0 ? data[0] % 7 + 1 : 1;

	logidx_builder_init(&b, 0, NULL);
	logidx_builder_feed(&b, data, size, collect, &one);
	logidx_builder_init(&b, 0, NULL);
	while (pos < size) {
		size_t n = size - pos < step ? size - pos : step;

		logidx_builder_feed(&b, data + pos, n, collect, &chunked);
		pos += n;
	}
	if (one.count != chunked.count ||
	    (one.count > 0 && memcmp(one.e, chunked.e, one.count * sizeof(*one.e)) != 0))
		abort();
	for (size_t i = 0; i < one.count; i++) {
		if (one.e[i].offset >= size || (one.e[i].offset > 0 && data[one.e[i].offset - 1] != '\n'))
			abort();
	}
	if (logidx_valid_prefix(one.e, one.count, size) != one.count)
		abort();
	free(one.e);
	free(chunked.e);
}

static void fuzz_lines(const uint8_t *data, size_t size)
{
	struct log_line l;
	int64_t t;
	char out[LOG_TIME_LEN + 1];

	if (log_line_parse((const char *)data, size, &l) == 0 &&
	    (l.message + l.message_len != (const char *)data + size))
		abort();
	if (log_time_parse((const char *)data, size, &t) == 0) {
		log_time_format(t, out);
		if (memcmp(out, data, LOG_TIME_LEN) != 0)
			abort();
	}
	(void)log_line_icontains((const char *)data, size, "needle");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_index_image(data, size);
	fuzz_log_text(data, size);
	fuzz_lines(data, size);
	return 0;
}
