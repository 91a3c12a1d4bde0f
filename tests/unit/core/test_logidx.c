/*
 * Unit tests for core/logidx.c: the index format, its search and rebuild
 * scan, the line grammar, and the reader and follower over files written
 * by hand (the writer's own tests are in test_log.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/fileio.h"
#include "core/logidx.h"

static char *tmpdir;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	char tmpl[] = "/tmp/petrel-logidx-XXXXXX";

	(void)state;
	if (mkdtemp(tmpl) == NULL)
		return -1;
	tmpdir = xstrdup(tmpl);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(tmpdir);
	tmpdir = NULL;
	return 0;
}

static char *tmp_path(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void append_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* Builds a log text of count lines "TIME INFO test: seq=N pad" in b, one
 * line per 10 ms from base_ms. */
static void make_log(struct buf *b, unsigned count, int64_t base_ms)
{
	for (unsigned i = 0; i < count; i++) {
		char ts[LOG_TIME_LEN + 1];

		log_time_format(base_ms + (int64_t)i * 10, ts);
		assert_int_equal(buf_printf(b, "%s INFO test: seq=%u pad=%.*s\n", ts, i,
					    (int)(i % 97), "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
					    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), 0);
	}
}

/* ---- encoding ---- */

static void test_header_roundtrip(void **state)
{
	unsigned char h[LOGIDX_HEADER_SIZE];
	int64_t created;

	(void)state;
	logidx_header_encode(h, 1795940381123);
	assert_memory_equal(h, "PLIDX\0\0\1", 8);
	assert_int_equal(logidx_header_decode(h, sizeof(h), &created), 0);
	assert_int_equal(created, 1795940381123);
	assert_int_equal(logidx_header_decode(h, sizeof(h) - 1, &created), -1);
	h[7] = 2; /* a future version is not ours */
	assert_int_equal(logidx_header_decode(h, sizeof(h), &created), -1);
}

static void test_entry_little_endian(void **state)
{
	static const unsigned char want[16] = {
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	struct logidx_entry e = { 0x0102030405060708ULL, -1 }, d;
	unsigned char raw[16];

	(void)state;
	logidx_entry_encode(raw, &e);
	assert_memory_equal(raw, want, 16);
	logidx_entry_decode(raw, &d);
	assert_true(d.offset == e.offset);
	assert_true(d.time_ms == -1);
}

static void test_parse_torn_entry(void **state)
{
	unsigned char img[LOGIDX_HEADER_SIZE + 2 * LOGIDX_ENTRY_SIZE + 7];
	struct logidx_entry e0 = { 0, 10 }, e1 = { 5000, 20 }, *e;
	int64_t created;
	size_t count;

	(void)state;
	memset(img, 0xee, sizeof(img));
	logidx_header_encode(img, 5);
	logidx_entry_encode(img + 16, &e0);
	logidx_entry_encode(img + 32, &e1);
	assert_int_equal(logidx_parse(img, sizeof(img), &created, &e, &count), 0);
	assert_int_equal(count, 2);
	assert_int_equal(created, 5);
	assert_true(e[1].offset == 5000 && e[1].time_ms == 20);
	free(e);
	assert_int_equal(logidx_parse(img, 16, &created, &e, &count), 0);
	assert_int_equal(count, 0);
	assert_null(e);
	img[0] = 'X';
	assert_int_equal(logidx_parse(img, sizeof(img), &created, &e, &count), -1);
}

static void test_valid_prefix(void **state)
{
	static const struct {
		struct logidx_entry e[4];
		size_t count;
		uint64_t size;
		size_t want;
	} rows[] = {
		{ { { 0, 1 }, { 4096, 2 }, { 9000, 3 } }, 3, 10000, 3 },
		{ { { 0, 1 }, { 4096, 2 }, { 9000, 3 } }, 3, 9000, 2 },      /* past the end */
		{ { { 1, 1 }, { 4096, 2 } }, 2, 10000, 0 },                  /* first not at 0 */
		{ { { 0, 1 }, { 4096, 2 }, { 4096, 3 } }, 3, 10000, 2 },     /* not increasing */
		{ { { 0, 1 }, { 8000, 2 }, { 5000, 3 }, { 9000, 4 } }, 4, 10000, 2 },
		{ { { 0, 1 } }, 1, 0, 0 },                                   /* empty log */
		{ { { 0, 1 } }, 0, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_int_equal(logidx_valid_prefix(rows[i].e, rows[i].count, rows[i].size), rows[i].want);
}

static void test_want_entry(void **state)
{
	(void)state;
	assert_true(logidx_want_entry(false, 0, 0));
	assert_true(logidx_want_entry(false, 0, 123));
	assert_false(logidx_want_entry(true, 0, 4095));
	assert_true(logidx_want_entry(true, 0, 4096));
	assert_false(logidx_want_entry(true, 8000, 8000));
	assert_false(logidx_want_entry(true, 8000, 100)); /* never backwards */
}

/* ---- search ---- */

static void test_search(void **state)
{
	static const struct logidx_entry e[] = { { 0, 100 }, { 5000, 200 }, { 9000, 300 }, { 13000, 300 } };
	static const struct { uint64_t off; bool found; size_t i; } offs[] = {
		{ 0, true, 0 }, { 4999, true, 0 }, { 5000, true, 1 }, { 8999, true, 1 },
		{ 9000, true, 2 }, { 1000000, true, 3 },
	};
	static const struct { int64_t t; bool found; size_t i; } times[] = {
		{ 50, false, 0 }, { 100, false, 0 }, { 101, true, 0 }, { 250, true, 1 },
		{ 300, true, 1 }, { 301, true, 3 },
	};
	size_t i;

	(void)state;
	for (size_t r = 0; r < sizeof(offs) / sizeof(offs[0]); r++) {
		assert_int_equal(logidx_find_offset(e, 4, offs[r].off, &i), offs[r].found);
		if (offs[r].found)
			assert_int_equal(i, offs[r].i);
	}
	for (size_t r = 0; r < sizeof(times) / sizeof(times[0]); r++) {
		assert_int_equal(logidx_find_time(e, 4, times[r].t, &i), times[r].found);
		if (times[r].found)
			assert_int_equal(i, times[r].i);
	}
	assert_false(logidx_find_offset(e, 0, 10, &i));
	assert_false(logidx_find_time(e, 0, 10, &i));
}

/* ---- rebuild scan ---- */

static void collect_entry(void *context, const struct logidx_entry *e)
{
	struct buf *b = context;

	assert_int_equal(buf_append(b, e, sizeof(*e)), 0);
}

static void test_builder_matches_rule(void **state)
{
	struct buf log, one, bytewise;
	const struct logidx_entry *e;
	struct logidx_builder b;
	size_t n;

	(void)state;
	buf_init(&log, 1 << 22);
	buf_init(&one, 1 << 20);
	buf_init(&bytewise, 1 << 20);
	make_log(&log, 3000, 1795940381123);

	logidx_builder_init(&b, 0, NULL);
	logidx_builder_feed(&b, log.data, log.len, collect_entry, &one);
	logidx_builder_init(&b, 0, NULL);
	for (size_t i = 0; i < log.len; i++)
		logidx_builder_feed(&b, log.data + i, 1, collect_entry, &bytewise);
	assert_int_equal(one.len, bytewise.len);
	assert_memory_equal(one.data, bytewise.data, one.len);

	e = (const struct logidx_entry *)(const void *)one.data;
	n = one.len / sizeof(*e);
	assert_true(n > log.len / 8192);
	assert_true(n <= log.len / LOGIDX_INTERVAL + 1);
	assert_int_equal(e[0].offset, 0);
	assert_int_equal(e[0].time_ms, 1795940381123);
	for (size_t i = 1; i < n; i++) {
		int64_t t;

		assert_int_equal(log.data[e[i].offset - 1], '\n');
		assert_true(e[i].offset - e[i - 1].offset >= LOGIDX_INTERVAL);
		/* the previous line start was still too close */
		assert_int_equal(log_time_parse(log.data + e[i].offset, LOG_TIME_LEN, &t), 0);
		assert_true(t == e[i].time_ms);
	}
	buf_deinit(&log);
	buf_deinit(&one);
	buf_deinit(&bytewise);
}

static void test_builder_bad_timestamps(void **state)
{
	const char *text = "garbage line\n2026-11-29T08:19:41.123Z INFO a: b\n";
	struct logidx_entry last = { 4000, 777 };
	struct logidx_builder b;
	struct buf out;
	const struct logidx_entry *e;

	(void)state;
	buf_init(&out, 4096);
	logidx_builder_init(&b, 0, NULL);
	logidx_builder_feed(&b, text, strlen(text), collect_entry, &out);
	assert_int_equal(out.len, sizeof(*e));
	e = (const void *)out.data;
	assert_int_equal(e[0].time_ms, 0); /* nothing earlier to borrow from */
	buf_reset(&out);
	/* Resuming after an entry: the next one inherits its time. */
	logidx_builder_init(&b, 5000, &last);
	logidx_builder_feed(&b, "\n\n", 2, collect_entry, &out);
	assert_int_equal(out.len, 0);
	logidx_builder_init(&b, 9096, &last);
	logidx_builder_feed(&b, "x\n", 2, collect_entry, &out);
	assert_int_equal(out.len, sizeof(*e));
	e = (const void *)out.data;
	assert_int_equal(e[0].offset, 9096);
	assert_int_equal(e[0].time_ms, 777);
	buf_deinit(&out);
}

/* ---- time stamps and lines ---- */

static void test_time_format_parse(void **state)
{
	static const struct { int64_t ms; const char *text; } rows[] = {
		{ 0, "1970-01-01T00:00:00.000Z" },
		{ 1795940381123, "2026-11-29T08:19:41.123Z" },
		{ 951868799999, "2000-02-29T23:59:59.999Z" },
		{ -1, "1969-12-31T23:59:59.999Z" },
	};
	static const char *const bad[] = {
		"2026-13-01T00:00:00.000Z", "2026-02-29T00:00:00.000Z", "1900-02-29T00:00:00.000Z",
		"2026-11-29T24:00:00.000Z", "2026-11-29T08:60:00.000Z", "2026-11-29 08:19:41.123Z",
		"2026-11-29T08:19:41.123+", "2026-11-29T08:19:41.12xZ", "2026-11-00T08:19:41.123Z",
		"2026-11-29T08:19:41.123",
	};
	char out[LOG_TIME_LEN + 1];
	int64_t t;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		log_time_format(rows[i].ms, out);
		assert_string_equal(out, rows[i].text);
		assert_int_equal(log_time_parse(rows[i].text, LOG_TIME_LEN, &t), 0);
		assert_true(t == rows[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(log_time_parse(bad[i], strlen(bad[i]), &t), -1);
	assert_int_equal(log_time_parse("2024-02-29T00:00:00.000Z", LOG_TIME_LEN, &t), 0);
	/* Clamped, never longer than LOG_TIME_LEN. */
	log_time_format(INT64_MAX, out);
	assert_string_equal(out, "9999-12-31T23:59:59.999Z");
	log_time_format(INT64_MIN, out);
	assert_string_equal(out, "0000-01-01T00:00:00.000Z");
	for (int64_t ms = -5000000000000; ms < 5000000000000; ms += 123456789011) {
		log_time_format(ms, out);
		assert_int_equal(log_time_parse(out, LOG_TIME_LEN, &t), 0);
		assert_true(t == ms);
	}
}

static void test_line_parse(void **state)
{
	const char *good = "2026-11-29T08:19:41.123Z WARN smtp: session=1 reason=a: b";
	static const char *const bad[] = {
		"2026-11-29T08:19:41.123Z NOTICE smtp: x", "2026-11-29T08:19:41.123Z WARN smtp x",
		"2026-11-29T08:19:41.123ZWARN smtp: x", "hello", "2026-11-29T08:19:41.123Z WARN",
	};
	struct log_line l;

	(void)state;
	assert_int_equal(log_line_parse(good, strlen(good), &l), 0);
	assert_true(l.time_ms == 1795940381123);
	assert_int_equal(l.level, LOG_LEVEL_WARN);
	assert_int_equal(l.level_len, 4);
	assert_int_equal(l.component_len, 4);
	assert_memory_equal(l.component, "smtp", 4);
	assert_int_equal(l.message_len, strlen("session=1 reason=a: b"));
	assert_memory_equal(l.message, "session=1 reason=a: b", l.message_len);
	assert_int_equal(log_line_parse("2026-11-29T08:19:41.123Z DEBUG c: ", 34, &l), 0);
	assert_int_equal(l.message_len, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(log_line_parse(bad[i], strlen(bad[i]), &l), -1);
}

static void test_icontains(void **state)
{
	(void)state;
	assert_true(log_line_icontains("Hello World", 11, "WORLD"));
	assert_true(log_line_icontains("Hello World", 11, ""));
	assert_false(log_line_icontains("Hello World", 5, "World"));
	assert_false(log_line_icontains("abc", 3, "abcd"));
	assert_true(log_line_icontains("a\0bc", 4, "BC"));
}

static void test_paths(void **state)
{
	char *p;

	(void)state;
	p = log_file_path("/s/logs", LOG_MAIL_FILE, 0);
	assert_string_equal(p, "/s/logs/mail.log");
	free(p);
	p = log_file_path("/s/logs", LOG_SECURITY_FILE, 3);
	assert_string_equal(p, "/s/logs/security.log.3");
	free(p);
	p = log_idx_path("/s/logs", LOG_ERROR_FILE, 0);
	assert_string_equal(p, "/s/logs/error.idx");
	free(p);
	p = log_idx_path("/s/logs", LOG_WARNING_FILE, 12);
	assert_string_equal(p, "/s/logs/warning.12.idx");
	free(p);
}

/* ---- reader ---- */

/* Reads every line backwards into a NUL-separated list, newest first. */
static size_t read_back(struct log_reader *r, struct buf *out, size_t max)
{
	const char *line, *error;
	size_t len, n = 0;
	int ret;

	while (n < max && (ret = log_reader_prev(r, &line, &len, &error)) == 1) {
		assert_int_equal(buf_append(out, line, len), 0);
		assert_int_equal(buf_append_char(out, '|'), 0);
		n++;
	}
	return n;
}

static void check_back(const char *content, const char *want)
{
	char *path = tmp_path("t.log");
	struct log_reader *r;
	const char *error;
	struct buf out;

	write_file(path, content, strlen(content));
	assert_int_equal(log_reader_open(path, NULL, &r, &error), 0);
	buf_init(&out, 1 << 20);
	read_back(r, &out, SIZE_MAX);
	assert_string_equal(out.data != NULL ? out.data : "", want);
	buf_deinit(&out);
	log_reader_free(&r);
	assert_null(r);
	free(path);
}

static void test_reader_small_files(void **state)
{
	(void)state;
	check_back("", "");
	check_back("a\nb\nc\n", "c|b|a|");
	check_back("a\n\nc\n", "c||a|");
	check_back("\n", "|");
	/* A line still being written belongs to --follow, not to the tail. */
	check_back("a\nb\nhalf", "b|a|");
	check_back("no newline at all", "");
}

static void test_reader_missing(void **state)
{
	char *path = tmp_path("nope.log");
	struct log_reader *r = NULL;
	const char *error;

	(void)state;
	assert_int_equal(log_reader_open(path, NULL, &r, &error), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(error, path));
	free(path);
}

/* Writes an index for log the way the writer would. */
static void write_index(const char *path, const struct buf *log, int64_t created)
{
	struct logidx_builder b;
	struct buf entries, img;
	unsigned char head[LOGIDX_HEADER_SIZE];

	buf_init(&entries, 1 << 24);
	buf_init(&img, 1 << 24);
	logidx_builder_init(&b, 0, NULL);
	logidx_builder_feed(&b, log->data, log->len, collect_entry, &entries);
	logidx_header_encode(head, created);
	assert_int_equal(buf_append(&img, head, sizeof(head)), 0);
	for (size_t i = 0; i < entries.len / sizeof(struct logidx_entry); i++) {
		unsigned char raw[LOGIDX_ENTRY_SIZE];

		logidx_entry_encode(raw, (const struct logidx_entry *)(const void *)entries.data + i);
		assert_int_equal(buf_append(&img, raw, sizeof(raw)), 0);
	}
	write_file(path, img.data, img.len);
	buf_deinit(&entries);
	buf_deinit(&img);
}

/* The last n lines of a make_log() log must be seq=count-1 .. count-n. */
static void check_tail(struct log_reader *r, unsigned count, unsigned n)
{
	const char *line, *error;
	size_t len;

	for (unsigned i = 0; i < n; i++) {
		char want[64];

		assert_int_equal(log_reader_prev(r, &line, &len, &error), 1);
		snprintf(want, sizeof(want), " seq=%u ", count - 1 - i);
		assert_non_null(memmem(line, len, want, strlen(want)));
		assert_int_equal(line[0], '2');
	}
}

static void test_reader_with_index(void **state)
{
	char *path = tmp_path("big.log"), *ipath = tmp_path("big.idx");
	struct log_reader *r;
	const char *error;
	struct buf log, out;
	unsigned count = 40000;

	(void)state;
	buf_init(&log, 1 << 24);
	make_log(&log, count, 1795940381123);
	write_file(path, log.data, log.len);
	write_index(ipath, &log, 1795940381123);

	assert_int_equal(log_reader_open(path, ipath, &r, &error), 0);
	assert_true(log_reader_end(r) == log.len);
	check_tail(r, count, 500);
	assert_true(log_reader_index_ok(r));
	assert_true(log_reader_bytes_read(r) < 256 * 1024);
	log_reader_free(&r);

	/* The whole file backwards equals the file. */
	assert_int_equal(log_reader_open(path, ipath, &r, &error), 0);
	buf_init(&out, 1 << 24);
	assert_int_equal(read_back(r, &out, SIZE_MAX), count);
	assert_true(log_reader_index_ok(r));
	log_reader_free(&r);
	buf_deinit(&out);
	buf_deinit(&log);
	free(path);
	free(ipath);
}

static void test_reader_wrong_index(void **state)
{
	char *path = tmp_path("w.log"), *ipath = tmp_path("w.idx");
	struct logidx_entry e[3] = { { 0, 0 }, { 0, 0 }, { 0, 0 } };
	unsigned char img[LOGIDX_HEADER_SIZE + 3 * LOGIDX_ENTRY_SIZE];
	struct log_reader *r;
	const char *error;
	struct buf log, out;
	unsigned count = 20000;

	(void)state;
	buf_init(&log, 1 << 24);
	make_log(&log, count, 1795940381123);
	write_file(path, log.data, log.len);
	/* Entries that are sorted and in range, but not at line starts. */
	e[1].offset = log.len / 2 + 3;
	e[2].offset = log.len - 300;
	logidx_header_encode(img, 0);
	for (int i = 0; i < 3; i++)
		logidx_entry_encode(img + 16 + 16 * i, &e[i]);
	write_file(ipath, img, sizeof(img));

	assert_int_equal(log_reader_open(path, ipath, &r, &error), 0);
	buf_init(&out, 1 << 24);
	assert_int_equal(read_back(r, &out, SIZE_MAX), count);
	assert_false(log_reader_index_ok(r));
	log_reader_free(&r);

	/* Garbage instead of an index: read as if there were none. */
	write_file(ipath, "garbage", 7);
	assert_int_equal(log_reader_open(path, ipath, &r, &error), 0);
	assert_false(log_reader_index_ok(r));
	check_tail(r, count, 100);
	log_reader_free(&r);
	buf_deinit(&out);
	buf_deinit(&log);
	free(path);
	free(ipath);
}

static void test_reader_find_time(void **state)
{
	char *path = tmp_path("t.log"), *ipath = tmp_path("t.idx");
	const int64_t base = 1795940381123;
	struct log_reader *r;
	const char *error;
	struct buf log;
	uint64_t off, with_idx_read;
	unsigned count = 30000;

	(void)state;
	buf_init(&log, 1 << 24);
	make_log(&log, count, base);
	write_file(path, log.data, log.len);
	write_index(ipath, &log, base);

	for (int pass = 0; pass < 2; pass++) {
		const char *idx = pass == 0 ? ipath : NULL;
		static const unsigned seqs[] = { 0, 1, 17, 12345, 29999 };

		for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
			char want[64];

			assert_int_equal(log_reader_open(path, idx, &r, &error), 0);
			/* 5 ms after line seq-1: the first line at or after is seq. */
			assert_int_equal(log_reader_find_time(r, base + (int64_t)seqs[i] * 10 - 5, &off,
							      &error), 0);
			snprintf(want, sizeof(want), " seq=%u ", seqs[i]);
			assert_true(off < log.len);
			assert_true(off == 0 || log.data[off - 1] == '\n');
			assert_non_null(memmem(log.data + off, 80, want, strlen(want)));
			with_idx_read = log_reader_bytes_read(r);
			if (pass == 0 && seqs[i] > 1000)
				assert_true(with_idx_read < 128 * 1024);
			log_reader_free(&r);
		}
	}
	assert_int_equal(log_reader_open(path, ipath, &r, &error), 0);
	assert_int_equal(log_reader_find_time(r, base + 10 * (int64_t)count, &off, &error), 0);
	assert_true(off == log.len);
	log_reader_free(&r);
	buf_deinit(&log);
	free(path);
	free(ipath);
}

/* ---- follower ---- */

static void follow_collect(void *context, const char *line, size_t len)
{
	struct buf *b = context;

	assert_int_equal(buf_append(b, line, len), 0);
	assert_int_equal(buf_append_char(b, '|'), 0);
}

static void test_follow_rotation(void **state)
{
	char *path = tmp_path("f.log"), *old = tmp_path("f.log.1");
	struct log_reader *r;
	struct log_follow *f;
	const char *error;
	struct buf got;

	(void)state;
	buf_init(&got, 1 << 20);
	write_file(path, "old1\nold2\npart", 14);
	assert_int_equal(log_reader_open(path, NULL, &r, &error), 0);
	assert_int_equal(log_follow_open(path, r, &f, &error), 0);
	log_reader_free(&r);
	assert_int_equal(log_follow_poll(f, follow_collect, &got, &error), 0);
	assert_string_equal(got.data != NULL ? got.data : "", "");
	append_file(path, "ial\nnew1\n");
	assert_int_equal(log_follow_poll(f, follow_collect, &got, &error), 0);
	assert_string_equal(got.data, "partial|new1|");
	/* A line lands in the old file just before it is rotated away. */
	append_file(path, "last-of-old\n");
	assert_int_equal(rename(path, old), 0);
	assert_int_equal(log_follow_poll(f, follow_collect, &got, &error), 0); /* path missing */
	append_file(path, "first-of-new\n");
	assert_int_equal(log_follow_poll(f, follow_collect, &got, &error), 0);
	assert_string_equal(got.data, "partial|new1|last-of-old|first-of-new|");
	/* Truncated in place: read again from the start. */
	write_file(path, "t1\n", 3);
	assert_int_equal(log_follow_poll(f, follow_collect, &got, &error), 0);
	assert_string_equal(got.data, "partial|new1|last-of-old|first-of-new|t1|");
	log_follow_free(&f);

	/* Following a file that does not exist yet. */
	unlink(path);
	buf_reset(&got);
	assert_int_equal(log_follow_open(path, NULL, &f, &error), 0);
	assert_int_equal(log_follow_poll(f, follow_collect, &got, &error), 0);
	append_file(path, "born\n");
	assert_int_equal(log_follow_poll(f, follow_collect, &got, &error), 0);
	assert_string_equal(got.data, "born|");
	log_follow_free(&f);
	buf_deinit(&got);
	free(path);
	free(old);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_roundtrip),
		cmocka_unit_test(test_entry_little_endian),
		cmocka_unit_test(test_parse_torn_entry),
		cmocka_unit_test(test_valid_prefix),
		cmocka_unit_test(test_want_entry),
		cmocka_unit_test(test_search),
		cmocka_unit_test(test_builder_matches_rule),
		cmocka_unit_test(test_builder_bad_timestamps),
		cmocka_unit_test(test_time_format_parse),
		cmocka_unit_test(test_line_parse),
		cmocka_unit_test(test_icontains),
		cmocka_unit_test(test_paths),
		cmocka_unit_test_setup_teardown(test_reader_small_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_with_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_wrong_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_find_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_follow_rotation, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
