/*
 * Unit tests for core/base64.c: RFC 4648 vectors, round trips of every
 * length 0..16 over several byte patterns, every placement of '=' in
 * inputs of 1..16 characters, non-alphabet bytes at every position,
 * non-canonical pad bits, and output bounds (HOSTILE-INPUT row 16, Exim
 * CVE-2018-6789).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/base64.h"
#include "core/buf.h"

static const struct {
	const char *plain;
	const char *encoded;
} rfc4648_vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static void test_base64_rfc4648_vectors(void **state)
{
	for (size_t i = 0; i < sizeof(rfc4648_vectors) / sizeof(rfc4648_vectors[0]); i++) {
		const char *plain = rfc4648_vectors[i].plain, *enc = rfc4648_vectors[i].encoded;
		char out[64];
		unsigned char dec[64];
		size_t n;

		assert_int_equal(base64_encoded_len(strlen(plain)), strlen(enc));
		assert_int_equal(base64_encode(plain, strlen(plain), out, sizeof(out)), strlen(enc));
		assert_string_equal(out, enc);
		assert_int_equal(base64_decode(enc, strlen(enc), dec, sizeof(dec), &n), 0);
		assert_int_equal(n, strlen(plain));
		assert_memory_equal(dec, plain, n);
		assert_true(base64_is_valid(enc, strlen(enc)));
	}
}

/* Fills buf with pattern p: zeros, 0xff, counting, pseudo-random. */
static void fill_pattern(unsigned char *buf, size_t len, int p)
{
	uint32_t x = 0x12345678u + (uint32_t)len;

	for (size_t i = 0; i < len; i++) {
		switch (p) {
		case 0: buf[i] = 0x00; break;
		case 1: buf[i] = 0xff; break;
		case 2: buf[i] = (unsigned char)i; break;
		default:
			x = x * 1103515245u + 12345u;
			buf[i] = (unsigned char)(x >> 16);
		}
	}
}

static void test_base64_round_trip_lengths_0_to_16(void **state)
{
	for (size_t len = 0; len <= 16; len++) {
		for (int p = 0; p < 4; p++) {
			unsigned char in[16], dec[16 + 4];
			char enc[32];
			size_t elen, n;

			fill_pattern(in, len, p);
			elen = base64_encode(in, len, enc, sizeof(enc));
			assert_int_equal(elen, (len + 2) / 3 * 4);
			assert_int_equal(enc[elen], '\0');
			/* Exactly the needed output size is enough... */
			assert_int_equal(base64_decode(enc, elen, dec, len, &n), 0);
			assert_int_equal(n, len);
			assert_memory_equal(dec, in, len);
			/* ...and one byte less is refused without writing past it. */
			if (len > 0) {
				memset(dec, 0xa5, sizeof(dec));
				assert_int_equal(base64_decode(enc, elen, dec, len - 1, &n), -1);
				for (size_t i = len - 1; i < sizeof(dec); i++)
					assert_int_equal(dec[i], 0xa5);
			}
			/* Padding count matches the length. */
			if (len % 3 == 1)
				assert_true(elen >= 2 && enc[elen - 1] == '=' && enc[elen - 2] == '=');
			else if (len % 3 == 2)
				assert_true(enc[elen - 1] == '=' && enc[elen - 2] != '=');
			else if (len > 0)
				assert_true(enc[elen - 1] != '=');
		}
	}
}

/*
 * Every placement of one, two or three '=' characters in an input of
 * 1..16 characters made of 'A' (value 0, so the pad-bit rule never
 * interferes): accepted exactly when the length is a multiple of 4 and
 * the '=' are the last one or two characters.
 */
static void check_pad_mask(size_t len, uint32_t mask)
{
	char in[17];
	unsigned char out[16];
	size_t n;
	bool expect;
	int ret;

	for (size_t i = 0; i < len; i++)
		in[i] = (mask & (1u << i)) != 0 ? '=' : 'A';
	in[len] = '\0';
	expect = len % 4 == 0 &&
		 (mask == 0 || mask == 1u << (len - 1) || mask == (3u << (len - 2)));
	ret = base64_decode(in, len, out, sizeof(out), &n);
	if (expect != (ret == 0))
		fail_msg("input \"%s\": expected %s", in, expect ? "accept" : "reject");
	assert_int_equal(base64_is_valid(in, len), expect);
	if (expect) {
		size_t pads = (size_t)__builtin_popcount(mask);

		assert_int_equal(n, len / 4 * 3 - pads);
	}
}

static void test_base64_padding_placements(void **state)
{
	for (size_t len = 1; len <= 16; len++) {
		for (size_t a = 0; a < len; a++) {
			check_pad_mask(len, 0);
			check_pad_mask(len, 1u << a);
			for (size_t b = a + 1; b < len; b++) {
				check_pad_mask(len, 1u << a | 1u << b);
				for (size_t c = b + 1; c < len; c++)
					check_pad_mask(len, 1u << a | 1u << b | 1u << c);
			}
		}
	}
}

/* Lengths that are not a multiple of 4 are refused (padding required). */
static void test_base64_unpadded_rejected(void **state)
{
	static const char *const bad[] = { "Z", "Zg", "Zg=", "Zm8", "Zm9vY", "Zm9vYg", "Zm9vYg=",
					   "Zm9vYmE", "=", "==", "===", "=====" };
	unsigned char out[16];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(base64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n), -1);
}

/* "====" and '=' anywhere but the end of the last group. */
static void test_base64_bad_padding(void **state)
{
	static const char *const bad[] = { "====", "A===", "=AAA", "AA=A", "A=A=", "AA==AAAA",
					   "AAA=AAAA", "Zg==Zg==", "Zm8=Zm8=", "Zg===" };
	unsigned char out[16];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (base64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

/* RFC 4648 section 3.5: the unused bits before the padding must be 0. */
static void test_base64_non_canonical_rejected(void **state)
{
	static const char *const bad[] = { "Zh==", "Zv==", "Zm9=", "Zm/=", "AB==", "AAB=" };
	unsigned char out[16];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (base64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n) == 0)
			fail_msg("accepted non-canonical \"%s\"", bad[i]);
	}
	assert_int_equal(base64_decode("Zg==", 4, out, sizeof(out), &n), 0);
	assert_int_equal(base64_decode("AAA=", 4, out, sizeof(out), &n), 0);
}

/* Each non-alphabet byte at each position of a valid 16-character input. */
static void test_base64_non_alphabet_bytes(void **state)
{
	static const unsigned char bad[] = { 0x00, ' ', '\t', '\r', '\n', '-', '_', '.', ':',
					     '*', '!', '@', 0x7f, 0x80, 0xc3, 0xff };
	const char *valid = "Zm9vYmFyYmF6cXV4"; /* "foobarbazqux" */
	unsigned char out[16];
	size_t n;

	assert_int_equal(base64_decode(valid, 16, out, sizeof(out), &n), 0);
	assert_int_equal(n, 12);
	for (size_t pos = 0; pos < 16; pos++) {
		for (size_t b = 0; b < sizeof(bad); b++) {
			char in[16];

			memcpy(in, valid, 16);
			in[pos] = (char)bad[b];
			if (base64_decode(in, 16, out, sizeof(out), &n) == 0)
				fail_msg("accepted byte 0x%02x at %zu", bad[b], pos);
		}
	}
	/* Line breaks and surrounding white space are not base64 here. */
	assert_false(base64_is_valid("Zm9v\r\nYmFy", 10));
	assert_false(base64_is_valid(" Zm9vYmFy", 9));
	assert_false(base64_is_valid("Zm9vYmFy\n", 9));
}

static void test_base64_buf_variants(void **state)
{
	struct buf b;
	char big_enc[8];

	buf_init(&b, 6);
	assert_int_equal(base64_decode_append(&b, "Zm9vYmFy", 8), 0);
	assert_int_equal(b.len, 6);
	assert_string_equal(b.data, "foobar");
	/* Past the maximum: refused, unchanged. */
	assert_int_equal(base64_decode_append(&b, "Zg==", 4), -1);
	assert_int_equal(b.len, 6);
	buf_reset(&b);
	assert_int_equal(base64_decode_append(&b, "Zg=", 3), -1);
	assert_int_equal(base64_decode_append(&b, "", 0), 0);
	assert_int_equal(b.len, 0);
	/* Embedded NUL decodes (binary-safe); callers that forbid it check. */
	assert_int_equal(base64_decode_append(&b, "AGE=", 4), 0);
	assert_int_equal(b.len, 2);
	assert_int_equal(b.data[0], '\0');
	assert_int_equal(b.data[1], 'a');
	buf_deinit(&b);

	buf_init(&b, 8);
	assert_int_equal(base64_encode_append(&b, "foobar", 6), 0);
	assert_string_equal(b.data, "Zm9vYmFy");
	assert_int_equal(base64_encode_append(&b, "f", 1), -1);
	assert_string_equal(b.data, "Zm9vYmFy");
	buf_deinit(&b);
	assert_int_equal(base64_encode("", 0, big_enc, 1), 0);
	assert_string_equal(big_enc, "");
}

/* 64 KiB of pseudo-random bytes, as a hostile AUTH payload would be. */
static void test_base64_64k(void **state)
{
	size_t len = 64 * 1024, elen = base64_encoded_len(len), n;
	unsigned char *in = malloc(len), *out = malloc(len);
	char *enc = malloc(elen + 1);

	assert_non_null(in);
	assert_non_null(out);
	assert_non_null(enc);
	fill_pattern(in, len, 3);
	assert_int_equal(base64_encode(in, len, enc, elen + 1), elen);
	assert_int_equal(base64_decode(enc, elen, out, len, &n), 0);
	assert_int_equal(n, len);
	assert_memory_equal(in, out, len);
	/* A bad byte at the very end is still found. */
	enc[elen - 1] = '*';
	assert_int_equal(base64_decode(enc, elen, out, len, &n), -1);
	free(in);
	free(out);
	free(enc);
}

static void test_base64_sizes(void **state)
{
	assert_int_equal(base64_encoded_len(0), 0);
	assert_int_equal(base64_encoded_len(1), 4);
	assert_int_equal(base64_encoded_len(3), 4);
	assert_int_equal(base64_encoded_len(4), 8);
	assert_int_equal(base64_decoded_max(0), 0);
	assert_int_equal(base64_decoded_max(4), 3);
	assert_int_equal(base64_decoded_max(7), 3);
	assert_int_equal(base64_decoded_max(16), 12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64_rfc4648_vectors),
		cmocka_unit_test(test_base64_round_trip_lengths_0_to_16),
		cmocka_unit_test(test_base64_padding_placements),
		cmocka_unit_test(test_base64_unpadded_rejected),
		cmocka_unit_test(test_base64_bad_padding),
		cmocka_unit_test(test_base64_non_canonical_rejected),
		cmocka_unit_test(test_base64_non_alphabet_bytes),
		cmocka_unit_test(test_base64_buf_variants),
		cmocka_unit_test(test_base64_64k),
		cmocka_unit_test(test_base64_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
