/* Unit tests for struct buf and the string helpers (core/buf.c, core/str.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/str.h"

static void test_buf_append_and_cap(void **state)
{
	struct buf b;

	buf_init(&b, 8);
	assert_int_equal(buf_append_str(&b, "abcd"), 0);
	assert_int_equal(buf_append_str(&b, "efgh"), 0);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "abcdefgh");
	/* One byte past the cap fails and leaves the buffer unchanged. */
	assert_int_equal(buf_append_char(&b, 'x'), -1);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "abcdefgh");
	buf_deinit(&b);
}

static void test_buf_binary_safe(void **state)
{
	struct buf b;
	const char data[] = { 'a', '\0', 'b', '\0' };

	buf_init(&b, 64);
	assert_int_equal(buf_append(&b, data, sizeof(data)), 0);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, data, 4);
	assert_int_equal(b.data[4], '\0');
	buf_deinit(&b);
}

static void test_buf_printf_cap(void **state)
{
	struct buf b;

	buf_init(&b, 10);
	assert_int_equal(buf_printf(&b, "%d-%s", 42, "ok"), 0);
	assert_string_equal(b.data, "42-ok");
	assert_int_equal(buf_printf(&b, "%s", "123456"), -1);
	assert_string_equal(b.data, "42-ok");
	assert_int_equal(buf_printf(&b, "%s", "12345"), 0);
	assert_string_equal(b.data, "42-ok12345");
	buf_deinit(&b);
}

static void test_buf_consume_truncate_steal(void **state)
{
	struct buf b;
	char *s;

	buf_init(&b, 100);
	assert_int_equal(buf_append_str(&b, "hello world"), 0);
	buf_consume(&b, 6);
	assert_string_equal(b.data, "world");
	buf_truncate(&b, 3);
	assert_string_equal(b.data, "wor");
	s = buf_steal(&b);
	assert_string_equal(s, "wor");
	assert_int_equal(b.len, 0);
	free(s);
	s = buf_steal(&b);
	assert_string_equal(s, "");
	free(s);
	buf_deinit(&b);
}

static void test_buf_grows_large(void **state)
{
	struct buf b;
	char chunk[1000];

	memset(chunk, 'z', sizeof(chunk));
	buf_init(&b, 1000 * 1000);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), 0);
	assert_int_equal(b.len, 1000 * 1000);
	assert_int_equal(buf_append_char(&b, 'z'), -1);
	assert_true(b.cap <= 1000 * 1000 + 1);
	buf_deinit(&b);
}

static void test_buf_max_near_size_max(void **state)
{
	struct buf b;

	/* A huge maximum must not overflow the size arithmetic. */
	buf_init(&b, SIZE_MAX - 1);
	assert_int_equal(buf_append_str(&b, "x"), 0);
	buf_deinit(&b);
}

static void test_str_copy(void **state)
{
	char small[4];

	assert_int_equal(str_copy(small, "abc", sizeof(small)), 0);
	assert_string_equal(small, "abc");
	assert_int_equal(str_copy(small, "abcd", sizeof(small)), -1);
	assert_string_equal(small, "");
}

static void test_str_to_i64(void **state)
{
	static const struct {
		const char *in;
		int64_t min, max;
		int ret;
		int64_t val;
	} rows[] = {
		{ "0", 0, 10, 0, 0 },
		{ "10", 0, 10, 0, 10 },
		{ "11", 0, 10, -1, 0 },
		{ "-1", 0, 10, -1, 0 },
		{ "", 0, 10, -1, 0 },
		{ " 5", 0, 10, -1, 0 },
		{ "5 ", 0, 10, -1, 0 },
		{ "5x", 0, 10, -1, 0 },
		{ "99999999999999999999", INT64_MIN, INT64_MAX, -1, 0 },
		{ "-9223372036854775808", INT64_MIN, INT64_MAX, 0, INT64_MIN },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int64_t v = 0;

		assert_int_equal(str_to_i64(rows[i].in, rows[i].min, rows[i].max, &v), rows[i].ret);
		if (rows[i].ret == 0)
			assert_int_equal(v, rows[i].val);
	}
}

static void test_str_to_u64_and_bool(void **state)
{
	uint64_t v;
	bool b;

	assert_int_equal(str_to_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(str_to_u64("18446744073709551616", &v), -1);
	assert_int_equal(str_to_u64("-1", &v), -1);
	assert_int_equal(str_to_bool("YES", &b), 0);
	assert_true(b);
	assert_int_equal(str_to_bool("off", &b), 0);
	assert_false(b);
	assert_int_equal(str_to_bool("maybe", &b), -1);
}

static void test_str_escape(void **state)
{
	char *s = str_escape("a\r\nb\x01\xff\\", 100);

	assert_string_equal(s, "a\\r\\nb\\x01\\xff\\\\");
	free(s);
	s = str_escape("abcdefgh", 3);
	assert_string_equal(s, "abc...");
	free(s);
}

static void test_str_trim_split(void **state)
{
	char text[] = "  a:b::c  ";
	char *fields[8];
	char *t = str_trim(text);
	size_t n;

	assert_string_equal(t, "a:b::c");
	n = str_split(t, ':', fields, 8);
	assert_int_equal(n, 4);
	assert_string_equal(fields[0], "a");
	assert_string_equal(fields[2], "");
	assert_string_equal(fields[3], "c");
	assert_true(str_has_prefix("petrel", "pet"));
	assert_false(str_has_prefix("pe", "pet"));
	assert_true(str_has_suffix("x.eml", ".eml"));
	assert_false(str_has_suffix("eml", ".eml"));
}

/* Mail and HTTP dates in UTC, with English day and month names, truncated
 * safely. */
static void test_str_date_utc(void **state)
{
	char out[64];

	(void)state;
	str_date_utc(0, "+0000", out, sizeof(out));
	assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 +0000");
	str_date_utc(1795939200, "+0000", out, sizeof(out));
	assert_string_equal(out, "Sun, 29 Nov 2026 08:00:00 +0000");
	str_date_utc(1709251199, "GMT", out, sizeof(out));
	assert_string_equal(out, "Thu, 29 Feb 2024 23:59:59 GMT");
	str_date_utc(0, "+0000", out, 10);
	assert_string_equal(out, "Thu, 01 J");
}

static void test_str_hex(void **state)
{
	const unsigned char bytes[] = { 0x00, 0x7f, 0xa5, 0xff };
	unsigned char back[4];
	char out[9];

	(void)state;
	str_hex(bytes, sizeof(bytes), out);
	assert_string_equal(out, "007fa5ff");
	assert_int_equal(str_unhex("007FA5ff", 8, back, sizeof(back)), 0);
	assert_memory_equal(back, bytes, sizeof(bytes));
	assert_int_equal(str_unhex("007fa5f", 7, back, sizeof(back)), -1);
	assert_int_equal(str_unhex("007fa5fg", 8, back, sizeof(back)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_append_and_cap),
		cmocka_unit_test(test_buf_binary_safe),
		cmocka_unit_test(test_buf_printf_cap),
		cmocka_unit_test(test_buf_consume_truncate_steal),
		cmocka_unit_test(test_buf_grows_large),
		cmocka_unit_test(test_buf_max_near_size_max),
		cmocka_unit_test(test_str_copy),
		cmocka_unit_test(test_str_to_i64),
		cmocka_unit_test(test_str_to_u64_and_bool),
		cmocka_unit_test(test_str_escape),
		cmocka_unit_test(test_str_trim_split),
		cmocka_unit_test(test_str_date_utc),
		cmocka_unit_test(test_str_hex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
