/*
 * Small helpers for src/auth: constant-time comparison, UTF-8 and
 * UTF-16LE, randomness, and digests through OpenSSL's EVP interface.
 */
#include "auth/auth_private.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

bool auth_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

/* Decodes one UTF-8 sequence at p (n bytes left); returns its length and
 * the code point, or 0 when invalid (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
static size_t utf8_next(const unsigned char *p, size_t n, uint32_t *cp_r)
{
	uint32_t cp;
	size_t len;

	if (p[0] < 0x80) {
		*cp_r = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return len;
}

bool auth_utf8_valid(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint32_t cp;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_next(p + i, len - i, &cp);

		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

bool auth_printable_name(const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
	return auth_utf8_valid(data, len);
}

long auth_utf8_to_utf16le(const void *in, size_t len, unsigned char *out, size_t out_size)
{
	const unsigned char *p = in;
	size_t o = 0;
	uint32_t cp;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_next(p + i, len - i, &cp);

		if (n == 0)
			return -1;
		i += n;
		if (cp >= 0x10000) {
			uint32_t v = cp - 0x10000;
			uint16_t hi = (uint16_t)(0xd800 | (v >> 10)), lo = (uint16_t)(0xdc00 | (v & 0x3ff));

			if (o + 4 > out_size)
				return -1;
			out[o++] = (unsigned char)(hi & 0xff);
			out[o++] = (unsigned char)(hi >> 8);
			out[o++] = (unsigned char)(lo & 0xff);
			out[o++] = (unsigned char)(lo >> 8);
		} else {
			if (o + 2 > out_size)
				return -1;
			out[o++] = (unsigned char)(cp & 0xff);
			out[o++] = (unsigned char)(cp >> 8);
		}
	}
	return (long)o;
}

int auth_utf16le_to_utf8(const void *in, size_t len, struct buf *out)
{
	const unsigned char *p = in;

	if (len % 2 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 2) {
		uint32_t cp = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8;
		unsigned char u[4];
		size_t n;

		if (cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff))
			return -1;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			uint32_t lo;

			if (i + 4 > len)
				return -1;
			lo = (uint32_t)p[i + 2] | (uint32_t)p[i + 3] << 8;
			if (lo < 0xdc00 || lo > 0xdfff)
				return -1;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			i += 2;
		}
		if (cp < 0x80) {
			u[0] = (unsigned char)cp;
			n = 1;
		} else if (cp < 0x800) {
			u[0] = (unsigned char)(0xc0 | cp >> 6);
			u[1] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 2;
		} else if (cp < 0x10000) {
			u[0] = (unsigned char)(0xe0 | cp >> 12);
			u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
			u[2] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 3;
		} else {
			u[0] = (unsigned char)(0xf0 | cp >> 18);
			u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
			u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
			u[3] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 4;
		}
		if (buf_append(out, u, n) < 0)
			return -1;
	}
	return 0;
}

void auth_buf_init(struct buf *b, size_t max)
{
	buf_init(b, max);
	if (buf_append(b, "", 0) < 0)
		panic("auth_buf_init: maximum %zu", max);
}

void auth_random(void *buf, size_t len)
{
	if (len > 0 && RAND_bytes(buf, (int)len) != 1)
		panic("auth_random: the OpenSSL random generator failed");
}

static const EVP_MD *md_by_name(const char *md)
{
	if (strcmp(md, "MD5") == 0)
		return EVP_md5();
	if (strcmp(md, "SHA1") == 0)
		return EVP_sha1();
	if (strcmp(md, "SHA256") == 0)
		return EVP_sha256();
	panic("auth: unknown digest %s", md);
}

size_t auth_md_len(const char *md)
{
	int n = EVP_MD_get_size(md_by_name(md));

	return n > 0 && n <= AUTH_MAX_MD_LEN ? (size_t)n : 0;
}

size_t auth_digest(const char *md, const void *data, size_t len, unsigned char *out)
{
	unsigned int n = 0;

	if (EVP_Digest(data, len, out, &n, md_by_name(md), NULL) != 1)
		return 0;
	return n;
}

size_t auth_hmac(const char *md, const void *key, size_t key_len, const void *data, size_t len,
		 unsigned char *out)
{
	unsigned int n = 0;

	/* @UNSAFE: HMAC takes the key length as int; our keys are digests or
	 * passwords (bounded by SASL_MAX_PASSWORD). */
	if (key_len > SASL_MAX_PASSWORD * 4)
		panic("auth_hmac: key of %zu bytes", key_len);
	if (HMAC(md_by_name(md), key, (int)key_len, data, len, out, &n) == NULL)
		return 0;
	return n;
}
