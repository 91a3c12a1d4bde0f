/*
 * Strict base64 (RFC 4648 section 4); see base64.h for what "strict"
 * means and why.  Pure functions over buffers: no allocation except in
 * the buf variants, no global state beyond the constant tables.
 */
#include "core/base64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char base64_alphabet[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* One more than the value of each byte in the alphabet; 0 for every other
 * byte ('=' is handled apart).  A table rather than range arithmetic: one
 * lookup per byte, and 8-bit bytes index it safely as unsigned char. */
#define B64_INVALID 0xff
static const uint8_t base64_values[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
	['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15,
	['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
	['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29,
	['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
	['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43,
	['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50,
	['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
	['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

size_t base64_encoded_len(size_t len)
{
	size_t groups = len / 3 + (len % 3 != 0);

	/* @UNSAFE: groups * 4 must not wrap. */
	if (groups > SIZE_MAX / 4)
		panic("base64_encoded_len: %zu bytes is too large to encode", len);
	return groups * 4;
}

size_t base64_decoded_max(size_t len)
{
	return len / 4 * 3;
}

size_t base64_encode(const void *data, size_t len, char *out, size_t out_size)
{
	const unsigned char *in = data;
	size_t need = base64_encoded_len(len), o = 0, i = 0;

	if (out_size <= need)
		panic("base64_encode: output of %zu bytes, %zu needed", out_size, need + 1);
	for (; len - i >= 3; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = base64_alphabet[v >> 18];
		out[o++] = base64_alphabet[(v >> 12) & 0x3f];
		out[o++] = base64_alphabet[(v >> 6) & 0x3f];
		out[o++] = base64_alphabet[v & 0x3f];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[o++] = base64_alphabet[v >> 18];
		out[o++] = base64_alphabet[(v >> 12) & 0x3f];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[o++] = base64_alphabet[v >> 18];
		out[o++] = base64_alphabet[(v >> 12) & 0x3f];
		out[o++] = base64_alphabet[(v >> 6) & 0x3f];
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

int base64_encode_append(struct buf *out, const void *data, size_t len)
{
	size_t need = base64_encoded_len(len);
	char *tmp;
	int ret;

	if (need > out->max - out->len)
		return -1;
	tmp = xmalloc(need + 1);
	base64_encode(data, len, tmp, need + 1);
	ret = buf_append(out, tmp, need);
	free(tmp);
	return ret;
}

/*
 * The one decoding loop.  With out == NULL nothing is written (validation
 * only) and out_size is ignored.  Every check that can fail is done
 * before the bytes of a group are written.
 */
static int base64_decode_into(const char *in, size_t len, unsigned char *out,
			      size_t out_size, size_t *out_len_r)
{
	size_t o = 0;

	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		const unsigned char *g = (const unsigned char *)in + i;
		bool last = i + 4 == len;
		/* Values minus one: B64_INVALID (0xff) for a byte outside the
		 * alphabet, '=' included. */
		uint8_t a = (uint8_t)(base64_values[g[0]] - 1), b = (uint8_t)(base64_values[g[1]] - 1);
		uint8_t c = (uint8_t)(base64_values[g[2]] - 1), d = (uint8_t)(base64_values[g[3]] - 1);
		size_t n;
		uint32_t v;

		/* The first two symbols of a group are never padding. */
		if (a == B64_INVALID || b == B64_INVALID)
			return -1;
		if (c != B64_INVALID && d != B64_INVALID) {
			n = 3;
		} else if (last && c != B64_INVALID && g[3] == '=') {
			/* "xyz=": 2 bytes; the low 2 bits of z are unused and must be 0. */
			if ((c & 0x03) != 0)
				return -1;
			n = 2;
			d = 0;
		} else if (last && g[2] == '=' && g[3] == '=') {
			/* "xy==": 1 byte; the low 4 bits of y must be 0. */
			if ((b & 0x0f) != 0)
				return -1;
			n = 1;
			c = d = 0;
		} else {
			/* A bad byte, '=' before the last group, or "x=y=". */
			return -1;
		}
		if (out != NULL) {
			if (n > out_size - o)
				return -1;
			v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
			out[o] = (unsigned char)(v >> 16);
			if (n > 1)
				out[o + 1] = (unsigned char)(v >> 8);
			if (n > 2)
				out[o + 2] = (unsigned char)v;
		}
		o += n;
	}
	*out_len_r = o;
	return 0;
}

int base64_decode(const char *in, size_t len, void *out, size_t out_size, size_t *out_len_r)
{
	if (out == NULL)
		panic("base64_decode: NULL output");
	return base64_decode_into(in, len, out, out_size, out_len_r);
}

bool base64_is_valid(const char *in, size_t len)
{
	size_t n;

	return base64_decode_into(in, len, NULL, 0, &n) == 0;
}

int base64_decode_append(struct buf *out, const char *in, size_t len)
{
	size_t max = base64_decoded_max(len), n;
	unsigned char *tmp;
	int ret = -1;

	if (len % 4 != 0)
		return -1;
	/* max + 1: xmalloc(0) is a bug by our rules, and len may be 0. */
	tmp = xmalloc(max + 1);
	if (base64_decode_into(in, len, tmp, max, &n) == 0)
		ret = buf_append(out, tmp, n);
	free(tmp);
	return ret;
}
