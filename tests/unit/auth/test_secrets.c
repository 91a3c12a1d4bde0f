/*
 * Unit tests for the derived secrets and the hash primitives of src/auth:
 * RFC 1320 MD4 vectors, RFC 1321 MD5 vectors and our resumable MD5 against
 * EVP's, CRAM-MD5 pads (RFC 2195's example, RFC 2104 long keys), the NT hash
 * of [MS-NLMP] 4.2.2.1.2, DIGEST-MD5's H(A1), SCRAM keys and the stored
 * formats, and auth_derive / auth_derive_secrets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/auth.h"
#include "auth/auth_private.h"
#include "core/base64.h"
#include "directory/directory.h"

static void hex_of(const void *data, size_t len, char *out)
{
	str_hex(data, len, out);
}

/* ---- MD4, RFC 1320 appendix A.5 ---- */

static void test_md4_rfc1320(void **state)
{
	static const struct {
		const char *in, *hex;
	} v[] = {
		{ "", "31d6cfe0d16ae931b73c59d7e0c089c0" },
		{ "a", "bde52cb31de33e46245e05fbdbd6fb24" },
		{ "abc", "a448017aaf21d8525fc10ae87aa6729d" },
		{ "message digest", "d9130a8164549fe818874806e1c7014b" },
		{ "abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9" },
		{ "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
		  "043f8582f241db351ce627e153e7f0e4" },
		{ "1234567890123456789012345678901234567890123456789012345678901234567890"
		  "1234567890", "e33b4ddc9c38f2199c3e7b164fcc0536" },
	};
	unsigned char h[16];
	char hex[33];

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		auth_md4(v[i].in, strlen(v[i].in), h);
		hex_of(h, 16, hex);
		assert_string_equal(hex, v[i].hex);
	}
}

/* ---- MD5, RFC 1321 appendix A.5, and against EVP ---- */

static void test_md5_rfc1321(void **state)
{
	static const struct {
		const char *in, *hex;
	} v[] = {
		{ "", "d41d8cd98f00b204e9800998ecf8427e" },
		{ "a", "0cc175b9c0f1b6a831c399e269772661" },
		{ "abc", "900150983cd24fb0d6963f7d28e17f72" },
		{ "message digest", "f96b697d7cb7938d525a2f31aaf161d0" },
		{ "abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b" },
		{ "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
		  "d174ab98d277d9f5a5611c2c9f419d9f" },
		{ "1234567890123456789012345678901234567890123456789012345678901234567890"
		  "1234567890", "57edf4a22be3c955ac49da2e2107b67a" },
	};
	struct auth_md5 ctx;
	unsigned char h[16];
	char hex[33];

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		auth_md5_init(&ctx);
		auth_md5_update(&ctx, v[i].in, strlen(v[i].in));
		auth_md5_final(&ctx, h);
		hex_of(h, 16, hex);
		assert_string_equal(hex, v[i].hex);
	}
}

static void test_md5_matches_evp(void **state)
{
	unsigned char data[300], mine[16], evp[16];
	unsigned int n;
	struct auth_md5 ctx;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7 + 3);
	for (size_t len = 0; len <= sizeof(data); len++) {
		/* one update, then byte-at-a-time, then uneven pieces */
		assert_int_equal(EVP_Digest(data, len, evp, &n, EVP_md5(), NULL), 1);
		auth_md5_init(&ctx);
		auth_md5_update(&ctx, data, len);
		auth_md5_final(&ctx, mine);
		assert_memory_equal(mine, evp, 16);
		auth_md5_init(&ctx);
		for (size_t i = 0; i < len; i++)
			auth_md5_update(&ctx, data + i, 1);
		auth_md5_final(&ctx, mine);
		assert_memory_equal(mine, evp, 16);
		auth_md5_init(&ctx);
		for (size_t i = 0; i < len; i += 13)
			auth_md5_update(&ctx, data + i, len - i < 13 ? len - i : 13);
		auth_md5_final(&ctx, mine);
		assert_memory_equal(mine, evp, 16);
	}
}

/* ---- CRAM-MD5 ---- */

/* RFC 2195 section 2's example. */
static void test_cram_md5_rfc2195(void **state)
{
	const char *challenge = "<1896.697170952@postoffice.reston.mci.net>";
	struct auth_cram_pads pads, parsed;
	unsigned char digest[16];
	char hex[33], *secret;

	(void)state;
	auth_cram_pads("tanstaaftanstaaf", 16, &pads);
	auth_cram_hmac(&pads, challenge, strlen(challenge), digest);
	hex_of(digest, 16, hex);
	assert_string_equal(hex, "b913a602c7eda7a495b4e6e7334d3890");

	/* The stored form parses back to the same pads. */
	secret = auth_cram_md5_secret("tanstaaftanstaaf");
	assert_int_equal(strlen(secret), 64);
	assert_int_equal(auth_cram_pads_parse(secret, &parsed), 0);
	assert_memory_equal(&parsed, &pads, sizeof(pads));
	/* Upper-case hex is accepted too; junk is not. */
	for (char *p = secret; *p != '\0'; p++)
		*p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
	assert_int_equal(auth_cram_pads_parse(secret, &parsed), 0);
	secret[10] = 'x';
	assert_int_equal(auth_cram_pads_parse(secret, &parsed), -1);
	secret[63] = '\0';
	assert_int_equal(auth_cram_pads_parse(secret, &parsed), -1);
	free(secret);
}

/* The pads give HMAC-MD5 for any key length, long keys hashed first
 * (RFC 2104 section 2). */
static void test_cram_md5_matches_hmac(void **state)
{
	unsigned char key[200], mine[16], ref[16];
	unsigned int n;
	const char *msg = "<123.456@host>";
	struct auth_cram_pads pads;

	(void)state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 31 + 1);
	for (size_t len = 0; len <= sizeof(key); len += 7) {
		auth_cram_pads(key, len, &pads);
		auth_cram_hmac(&pads, msg, strlen(msg), mine);
		assert_non_null(HMAC(EVP_md5(), key, (int)len, (const unsigned char *)msg,
				     strlen(msg), ref, &n));
		assert_memory_equal(mine, ref, 16);
	}
}

/* ---- NT hash, [MS-NLMP] 4.2.2.1.2 ---- */

static void test_nt_hash(void **state)
{
	unsigned char h[16];
	char hex[33];

	(void)state;
	assert_int_equal(auth_nt_hash("Password", h), 0);
	hex_of(h, 16, hex);
	assert_string_equal(hex, "a4f49c406510bdcab6824ee7c30fd852");
	/* Non-ASCII goes through UTF-16LE: "é" is e9 00; one astral
	 * character is a surrogate pair. */
	assert_int_equal(auth_nt_hash("\xc3\xa9", h), 0);
	{
		unsigned char ref[16], u16[2] = { 0xe9, 0x00 };

		auth_md4(u16, 2, ref);
		assert_memory_equal(h, ref, 16);
	}
	assert_int_equal(auth_nt_hash("\xf0\x9f\x98\x80", h), 0);
	{
		unsigned char ref[16], u16[4] = { 0x3d, 0xd8, 0x00, 0xde };

		auth_md4(u16, 4, ref);
		assert_memory_equal(h, ref, 16);
	}
	assert_int_equal(auth_nt_hash("\xff\xfe", h), -1);
}

/* ---- DIGEST-MD5 ---- */

static void test_digest_md5_secret(void **state)
{
	char *secret = auth_digest_md5_secret("chris", "Elwood.Innosoft.COM", "secret");
	unsigned char h[16];
	unsigned int n;
	char hex[33], want[200];
	const char *a1 = "chris:elwood.innosoft.com:secret";
	const char *a1b = "chris@elwood.innosoft.com:elwood.innosoft.com:secret";

	(void)state;
	assert_int_equal(EVP_Digest(a1, strlen(a1), h, &n, EVP_md5(), NULL), 1);
	hex_of(h, 16, hex);
	snprintf(want, sizeof(want), "elwood.innosoft.com:%s:", hex);
	assert_int_equal(EVP_Digest(a1b, strlen(a1b), h, &n, EVP_md5(), NULL), 1);
	hex_of(h, 16, hex);
	strcat(want, hex);
	assert_string_equal(secret, want);
	free(secret);

	/* RFC 2831 2.1.2.1: "é" fits ISO 8859-1, so it is hashed as one byte
	 * e9; a character beyond U+00FF keeps the whole input in UTF-8. */
	secret = auth_digest_md5_secret("u", "r.org", "\xc3\xa9");
	assert_int_equal(EVP_Digest("u:r.org:\xe9", 9, h, &n, EVP_md5(), NULL), 1);
	hex_of(h, 16, hex);
	assert_true(strncmp(secret + 6, hex, 32) == 0);
	free(secret);
	secret = auth_digest_md5_secret("u", "r.org", "\xc3\xa9\xe2\x82\xac");
	assert_int_equal(EVP_Digest("u:r.org:\xc3\xa9\xe2\x82\xac", 13, h, &n, EVP_md5(), NULL), 1);
	hex_of(h, 16, hex);
	assert_true(strncmp(secret + 6, hex, 32) == 0);
	free(secret);
}

/* ---- SCRAM ---- */

/* RFC 5802 section 5 and RFC 7677 section 3: the keys from the examples'
 * password and salt, checked through the stored format round trip and
 * against an independent computation. */
static void check_scram(const char *md, const char *salt64)
{
	unsigned char salt[64], salted[64], ck[64], sk[64], stored[64];
	size_t salt_len, len = strcmp(md, "SHA1") == 0 ? 20 : 32;
	const EVP_MD *evp = strcmp(md, "SHA1") == 0 ? EVP_sha1() : EVP_sha256();
	struct auth_scram_secret parsed;
	unsigned int n;
	char *value;

	assert_int_equal(base64_decode(salt64, strlen(salt64), salt, sizeof(salt), &salt_len), 0);
	value = auth_scram_secret(md, "pencil", salt, salt_len, 4096);
	assert_non_null(value);
	assert_true(strncmp(value, "4096,", 5) == 0);
	assert_non_null(strstr(value, salt64));
	assert_int_equal(auth_scram_secret_parse(md, value, &parsed), 0);
	assert_int_equal(parsed.iterations, 4096);
	assert_int_equal(parsed.salt_len, salt_len);
	assert_memory_equal(parsed.salt, salt, salt_len);

	assert_int_equal(PKCS5_PBKDF2_HMAC("pencil", 6, salt, (int)salt_len, 4096, evp, (int)len,
					   salted), 1);
	assert_non_null(HMAC(evp, salted, (int)len, (const unsigned char *)"Client Key", 10, ck, &n));
	assert_int_equal(EVP_Digest(ck, len, stored, &n, evp, NULL), 1);
	assert_non_null(HMAC(evp, salted, (int)len, (const unsigned char *)"Server Key", 10, sk, &n));
	assert_int_equal(parsed.keys.len, len);
	assert_memory_equal(parsed.keys.stored_key, stored, len);
	assert_memory_equal(parsed.keys.server_key, sk, len);
	free(value);
}

static void test_scram_keys(void **state)
{
	(void)state;
	check_scram("SHA1", "QSXCR+Q6sek8bf92");
	check_scram("SHA256", "W22ZaJ0SNY7soEsUEjb6gQ==");
}

static void test_scram_secret_parse_rejects(void **state)
{
	static const char *const bad[] = {
		"", "4096", "4096,", "4096,QSXCR+Q6sek8bf92", "4096,QSXCR+Q6sek8bf92,",
		"0,QSXCR+Q6sek8bf92,AAAAAAAAAAAAAAAAAAAAAAAAAAA=,AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"x,QSXCR+Q6sek8bf92,AAAAAAAAAAAAAAAAAAAAAAAAAAA=,AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"99999999999,QSXCR+Q6sek8bf92,AAAAAAAAAAAAAAAAAAAAAAAAAAA=,AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"4096,,AAAAAAAAAAAAAAAAAAAAAAAAAAA=,AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"4096,QSXCR+Q6sek8bf92,AAAA,AAAAAAAAAAAAAAAAAAAAAAAAAAA=",       /* short key */
		"4096,QSXCR+Q6sek8bf92,AAAAAAAAAAAAAAAAAAAAAAAAAAA=,AAAA*AAAAAAAAAAAAAAAAAAAAAA=",
		"4096,QSXCR+Q6sek8bf92,AAAAAAAAAAAAAAAAAAAAAAAAAAA=,AAAAAAAAAAAAAAAAAAAAAAAAAAA=,x",
	};
	struct auth_scram_secret r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(auth_scram_secret_parse("SHA1", bad[i], &r), -1);
	assert_int_equal(auth_scram_secret_parse("SHA1",
		"4096,QSXCR+Q6sek8bf92,AAAAAAAAAAAAAAAAAAAAAAAAAAA=,AAAAAAAAAAAAAAAAAAAAAAAAAAA=", &r), 0);
}

/* ---- derivation ---- */

static const char *find_secret(const struct auth_secret *list, size_t n, const char *mech)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i].mechanism, mech) == 0)
			return list[i].value;
	return NULL;
}

static void test_derive(void **state)
{
	struct auth_secret *list, *list2;
	size_t n, n2;
	char *error = NULL;
	const char *v;

	(void)state;
	assert_int_equal(auth_derive("john", "Example.com", "s3cret pass", &list, &n, &error), 0);
	assert_int_equal(n, 5);
	assert_non_null(find_secret(list, n, "SCRAM-SHA-1"));
	assert_non_null(find_secret(list, n, "SCRAM-SHA-256"));
	v = find_secret(list, n, "CRAM-MD5");
	assert_non_null(v);
	assert_int_equal(strlen(v), 64);
	v = find_secret(list, n, "DIGEST-MD5");
	assert_non_null(v);
	assert_true(strncmp(v, "example.com:", 12) == 0);
	v = find_secret(list, n, "NTLM");
	assert_non_null(v);
	assert_int_equal(strlen(v), 32);
	/* No value contains the password, nor any space (users.cfg's rule). */
	for (size_t i = 0; i < n; i++) {
		assert_null(strstr(list[i].value, "s3cret"));
		assert_null(strchr(list[i].value, ' '));
		assert_true(strlen(list[i].value) <= DIRECTORY_MAX_SECRET);
	}
	/* Fresh salts: two derivations differ for SCRAM, agree for the rest. */
	assert_int_equal(auth_derive("john", "Example.com", "s3cret pass", &list2, &n2, &error), 0);
	assert_string_not_equal(find_secret(list, n, "SCRAM-SHA-256"),
				find_secret(list2, n2, "SCRAM-SHA-256"));
	assert_string_equal(find_secret(list, n, "NTLM"), find_secret(list2, n2, "NTLM"));
	auth_secrets_free(&list, n);
	auth_secrets_free(&list2, n2);
	assert_null(list);
}

static void test_derive_rejects(void **state)
{
	struct auth_secret *list = NULL;
	size_t n = 99;
	char *error = NULL, *longpw = xmalloc(2000);

	(void)state;
	assert_int_equal(auth_derive("john", "example.com", "", &list, &n, &error), -1);
	assert_non_null(error);
	free(error);
	memset(longpw, 'a', 1999);
	longpw[1999] = '\0';
	assert_int_equal(auth_derive("john", "example.com", longpw, &list, &n, &error), -1);
	assert_null(strstr(error, "aaaa"));   /* never the password in the error */
	free(error);
	assert_int_equal(auth_derive("john", "example.com", "bad\xff", &list, &n, &error), -1);
	assert_null(strstr(error, "bad"));
	free(error);
	assert_null(list);
	assert_int_equal(n, 0);
	free(longpw);
}

/* The directory hook: same secrets, in the directory's types, and accepted
 * by directory_set_credentials (so users.cfg can store them). */
static void test_derive_secrets_hook(void **state)
{
	struct dir_secret *list;
	size_t n;
	char *error = NULL, *hash = NULL;
	struct directory *dir = directory_new_empty(), *d2 = NULL, *d3 = NULL;
	struct dir_user_spec spec = { .name = "john" };

	(void)state;
	assert_int_equal(auth_derive_secrets("john", "example.com", "pw", &list, &n, &error), 0);
	assert_int_equal(n, 5);
	assert_int_equal(directory_add_domain(dir, "example.com", true, &d2, &error), 0);
	assert_int_equal(directory_add_user(d2, &spec, &d3, &error), 0);
	directory_unref(&d2);
	assert_int_equal(directory_hash_password("pw", &hash, &error), 0);
	if (directory_set_credentials(d3, "john", hash, list, n, &d2, &error) < 0)
		fail_msg("directory_set_credentials: %s", error);
	{
		const struct dir_user *u = directory_find_user(d2, "john");

		assert_non_null(u);
		assert_non_null(directory_user_secret(u, "SCRAM-SHA-256"));
		assert_string_equal(directory_user_secret(u, "NTLM")->value, list[4].value);
	}
	directory_secrets_free(list, n);
	free(hash);
	directory_unref(&d2);
	directory_unref(&d3);
	directory_unref(&dir);
}

/* ---- helpers ---- */

static void test_utf8_and_utf16(void **state)
{
	struct buf b;
	unsigned char out[16];

	(void)state;
	assert_true(auth_utf8_valid("", 0));
	assert_true(auth_utf8_valid("h\xc3\xa9llo", 6));
	assert_false(auth_utf8_valid("\xc0\x80", 2));          /* overlong NUL */
	assert_false(auth_utf8_valid("\xed\xa0\x80", 3));      /* surrogate */
	assert_false(auth_utf8_valid("\xf4\x90\x80\x80", 4));  /* > U+10FFFF */
	assert_false(auth_utf8_valid("\xe2\x82", 2));          /* truncated */
	assert_false(auth_printable_name("a\tb", 3));
	assert_false(auth_printable_name("a\x7f", 2));
	assert_true(auth_printable_name("j\xc3\xb6rg@example.com", 17));
	assert_int_equal(auth_utf8_to_utf16le("ab", 2, out, 4), 4);
	assert_int_equal(auth_utf8_to_utf16le("abc", 3, out, 4), -1);   /* no room */
	auth_buf_init(&b, 64);
	assert_int_equal(auth_utf16le_to_utf8("a\0\xe9\0=\xd8\0\xde", 8, &b), 0);
	assert_string_equal(b.data, "a\xc3\xa9\xf0\x9f\x98\x80");
	buf_reset(&b);
	assert_int_equal(auth_utf16le_to_utf8("a", 1, &b), -1);             /* odd */
	assert_int_equal(auth_utf16le_to_utf8("\0\xdc", 2, &b), -1);        /* lone low */
	assert_int_equal(auth_utf16le_to_utf8("=\xd8" "a\0", 4, &b), -1);   /* lone high */
	assert_int_equal(auth_utf16le_to_utf8("\0\0", 2, &b), -1);          /* NUL */
	buf_deinit(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_md4_rfc1320),
		cmocka_unit_test(test_md5_rfc1321),
		cmocka_unit_test(test_md5_matches_evp),
		cmocka_unit_test(test_cram_md5_rfc2195),
		cmocka_unit_test(test_cram_md5_matches_hmac),
		cmocka_unit_test(test_nt_hash),
		cmocka_unit_test(test_digest_md5_secret),
		cmocka_unit_test(test_scram_keys),
		cmocka_unit_test(test_scram_secret_parse_rejects),
		cmocka_unit_test(test_derive),
		cmocka_unit_test(test_derive_rejects),
		cmocka_unit_test(test_derive_secrets_hook),
		cmocka_unit_test(test_utf8_and_utf16),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
