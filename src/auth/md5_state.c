/*
 * MD5 (RFC 1321) with its chaining state exposed, for CRAM-MD5.
 *
 * CRAM-MD5 (RFC 2195) is HMAC-MD5 keyed with the password.  To avoid
 * storing the password, we store what Dovecot's CRAM-MD5 scheme stores:
 * the MD5 chaining states after the first block of each HMAC hash, that is
 * after (key ^ ipad) and after (key ^ opad).  Verifying a response resumes
 * MD5 from those states.  EVP does not expose or accept MD5 chaining
 * states, and OpenSSL 3 deprecates MD5_Init and its MD5_CTX fields, so we
 * carry MD5's compression function ourselves; the tests compare it with
 * EVP's MD5 for every length from 0 to 300 and against RFC 1321's
 * vectors.  Everything else that needs MD5 uses EVP.
 */
#include "auth/auth_private.h"

#include <string.h>

#define F(x, y, z) (((x) & (y)) | (~(x) & (z)))
#define G(x, y, z) (((x) & (z)) | ((y) & ~(z)))
#define H(x, y, z) ((x) ^ (y) ^ (z))
#define I(x, y, z) ((y) ^ ((x) | ~(z)))
#define ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

/* T[i] = floor(2^32 * |sin(i + 1)|), RFC 1321 section 3.4. */
static const uint32_t T[64] = {
	0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
	0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
	0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
	0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
	0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
	0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
	0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
	0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};
static const int S[4][4] = { { 7, 12, 17, 22 }, { 5, 9, 14, 20 }, { 4, 11, 16, 23 }, { 6, 10, 15, 21 } };

static void md5_block(uint32_t state[4], const unsigned char block[64])
{
	uint32_t x[16], a = state[0], b = state[1], c = state[2], d = state[3];

	for (int i = 0; i < 16; i++)
		x[i] = (uint32_t)block[4 * i] | (uint32_t)block[4 * i + 1] << 8 |
		       (uint32_t)block[4 * i + 2] << 16 | (uint32_t)block[4 * i + 3] << 24;
	for (int i = 0; i < 64; i++) {
		uint32_t f, tmp;
		int k, round = i / 16;

		switch (round) {
		case 0: f = F(b, c, d); k = i; break;
		case 1: f = G(b, c, d); k = (5 * i + 1) % 16; break;
		case 2: f = H(b, c, d); k = (3 * i + 5) % 16; break;
		default: f = I(b, c, d); k = (7 * i) % 16; break;
		}
		tmp = d;
		d = c;
		c = b;
		b = b + ROTL(a + f + T[i] + x[k], S[round][i % 4]);
		a = tmp;
	}
	state[0] += a;
	state[1] += b;
	state[2] += c;
	state[3] += d;
	explicit_bzero(x, sizeof(x));
}

void auth_md5_init(struct auth_md5 *ctx)
{
	static const uint32_t iv[4] = { 0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u };

	memcpy(ctx->state, iv, sizeof(iv));
	ctx->total = 0;
	ctx->fill = 0;
}

void auth_md5_resume(struct auth_md5 *ctx, const uint32_t state[4], uint64_t total)
{
	if (total % 64 != 0)
		panic("auth_md5_resume: %llu bytes is not a whole number of blocks",
		      (unsigned long long)total);
	memcpy(ctx->state, state, sizeof(ctx->state));
	ctx->total = total;
	ctx->fill = 0;
}

void auth_md5_update(struct auth_md5 *ctx, const void *data, size_t len)
{
	const unsigned char *p = data;

	ctx->total += len;
	if (ctx->fill > 0) {
		size_t n = 64 - ctx->fill < len ? 64 - ctx->fill : len;

		memcpy(ctx->block + ctx->fill, p, n);
		ctx->fill += n;
		p += n;
		len -= n;
		if (ctx->fill < 64)
			return;
		md5_block(ctx->state, ctx->block);
		ctx->fill = 0;
	}
	for (; len >= 64; p += 64, len -= 64)
		md5_block(ctx->state, p);
	memcpy(ctx->block, p, len);
	ctx->fill = len;
}

void auth_md5_final(struct auth_md5 *ctx, unsigned char out[AUTH_MD5_LEN])
{
	static const unsigned char pad[64] = { 0x80 };
	unsigned char len_le[8];
	uint64_t bits = ctx->total * 8;

	for (int i = 0; i < 8; i++)
		len_le[i] = (unsigned char)(bits >> (8 * i));
	auth_md5_update(ctx, pad, ctx->fill < 56 ? 56 - ctx->fill : 120 - ctx->fill);
	auth_md5_update(ctx, len_le, 8);
	if (ctx->fill != 0)
		panic("auth_md5_final: padding left %zu bytes", ctx->fill);
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			out[4 * i + j] = (unsigned char)(ctx->state[i] >> (8 * j));
	explicit_bzero(ctx, sizeof(*ctx));
}
