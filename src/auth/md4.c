/*
 * MD4 (RFC 1320), for the NT hash that NTLM needs: MD4(UTF-16LE(password)).
 *
 * OpenSSL 3 moved MD4 into its "legacy" provider, which is not loaded by
 * default and may be missing from a minimal install; loading it into the
 * default library context would also enable every other legacy algorithm
 * for the whole process.  MD4 is thirty lines, has test vectors in the RFC
 * (tests/unit/auth/test_secrets.c checks all seven), and is used here only
 * to derive a stored secret, so we carry our own.  Not constant-time
 * sensitive: its input is the password being set or the NTLM user's own
 * password-derived key, never an attacker's guess compared in a loop.
 */
#include "auth/auth_private.h"

#include <string.h>

#define F(x, y, z) (((x) & (y)) | (~(x) & (z)))
#define G(x, y, z) (((x) & (y)) | ((x) & (z)) | ((y) & (z)))
#define H(x, y, z) ((x) ^ (y) ^ (z))
#define ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void md4_block(uint32_t state[4], const unsigned char block[64])
{
	uint32_t x[16], a = state[0], b = state[1], c = state[2], d = state[3];

	for (int i = 0; i < 16; i++)
		x[i] = le32(block + 4 * i);

#define R1(a, b, c, d, k, s) a = ROTL(a + F(b, c, d) + x[k], s)
#define R2(a, b, c, d, k, s) a = ROTL(a + G(b, c, d) + x[k] + 0x5a827999u, s)
#define R3(a, b, c, d, k, s) a = ROTL(a + H(b, c, d) + x[k] + 0x6ed9eba1u, s)
	for (int i = 0; i < 16; i += 4) {
		R1(a, b, c, d, i, 3);
		R1(d, a, b, c, i + 1, 7);
		R1(c, d, a, b, i + 2, 11);
		R1(b, c, d, a, i + 3, 19);
	}
	for (int i = 0; i < 4; i++) {
		R2(a, b, c, d, i, 3);
		R2(d, a, b, c, i + 4, 5);
		R2(c, d, a, b, i + 8, 9);
		R2(b, c, d, a, i + 12, 13);
	}
	static const int order[4] = { 0, 2, 1, 3 };
	for (int j = 0; j < 4; j++) {
		int i = order[j];

		R3(a, b, c, d, i, 3);
		R3(d, a, b, c, i + 8, 9);
		R3(c, d, a, b, i + 4, 11);
		R3(b, c, d, a, i + 12, 15);
	}
#undef R1
#undef R2
#undef R3
	state[0] += a;
	state[1] += b;
	state[2] += c;
	state[3] += d;
	explicit_bzero(x, sizeof(x));
}

void auth_md4(const void *data, size_t len, unsigned char out[AUTH_MD4_LEN])
{
	uint32_t state[4] = { 0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u };
	const unsigned char *p = data;
	unsigned char tail[128];
	size_t rest = len % 64, tail_len;
	uint64_t bits = (uint64_t)len * 8;

	for (size_t i = 0; i + 64 <= len; i += 64)
		md4_block(state, p + i);
	/* Padding: 0x80, zeros to 56 mod 64, then the bit length (LE). */
	memset(tail, 0, sizeof(tail));
	if (rest > 0)
		memcpy(tail, p + len - rest, rest);
	tail[rest] = 0x80;
	tail_len = rest < 56 ? 64 : 128;
	for (int i = 0; i < 8; i++)
		tail[tail_len - 8 + i] = (unsigned char)(bits >> (8 * i));
	md4_block(state, tail);
	if (tail_len == 128)
		md4_block(state, tail + 64);
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			out[4 * i + j] = (unsigned char)(state[i] >> (8 * j));
	explicit_bzero(tail, sizeof(tail));
	explicit_bzero(state, sizeof(state));
}
