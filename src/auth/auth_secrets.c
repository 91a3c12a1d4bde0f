/*
 * Deriving the per-mechanism secrets from a password, when the password is
 * set (the directory calls auth_derive_secrets through its hook), and
 * parsing them back at login.  Formats: auth.h and docs/authentication.md.
 */
#include "auth/auth_private.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/base64.h"
#include "core/str.h"

/* ---- CRAM-MD5 ---- */

void auth_cram_pads(const void *key, size_t key_len, struct auth_cram_pads *pads_r)
{
	unsigned char k[64], block[64];
	struct auth_md5 ctx;

	memset(k, 0, sizeof(k));
	if (key_len > 64) {
		/* RFC 2104: a key longer than the block is hashed first. */
		auth_md5_init(&ctx);
		auth_md5_update(&ctx, key, key_len);
		auth_md5_final(&ctx, k);
	} else if (key_len > 0) {
		memcpy(k, key, key_len);
	}
	for (int i = 0; i < 64; i++)
		block[i] = k[i] ^ 0x36;
	auth_md5_init(&ctx);
	auth_md5_update(&ctx, block, 64);
	memcpy(pads_r->inner, ctx.state, sizeof(pads_r->inner));
	for (int i = 0; i < 64; i++)
		block[i] = k[i] ^ 0x5c;
	auth_md5_init(&ctx);
	auth_md5_update(&ctx, block, 64);
	memcpy(pads_r->outer, ctx.state, sizeof(pads_r->outer));
	explicit_bzero(&ctx, sizeof(ctx));
	explicit_bzero(k, sizeof(k));
	explicit_bzero(block, sizeof(block));
}

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

char *auth_cram_md5_secret(const char *password)
{
	struct auth_cram_pads pads;
	unsigned char raw[32];
	char *hex = xmalloc(65);

	auth_cram_pads(password, strlen(password), &pads);
	for (int i = 0; i < 4; i++) {
		put_le32(raw + 4 * i, pads.inner[i]);
		put_le32(raw + 16 + 4 * i, pads.outer[i]);
	}
	str_hex(raw, sizeof(raw), hex);
	explicit_bzero(&pads, sizeof(pads));
	explicit_bzero(raw, sizeof(raw));
	return hex;
}

int auth_cram_pads_parse(const char *value, struct auth_cram_pads *pads_r)
{
	unsigned char raw[32];

	if (str_unhex(value, strlen(value), raw, sizeof(raw)) < 0)
		return -1;
	for (int i = 0; i < 4; i++) {
		pads_r->inner[i] = get_le32(raw + 4 * i);
		pads_r->outer[i] = get_le32(raw + 16 + 4 * i);
	}
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

void auth_cram_hmac(const struct auth_cram_pads *pads, const void *data, size_t len,
		    unsigned char out[AUTH_MD5_LEN])
{
	struct auth_md5 ctx;
	unsigned char inner[AUTH_MD5_LEN];

	auth_md5_resume(&ctx, pads->inner, 64);
	auth_md5_update(&ctx, data, len);
	auth_md5_final(&ctx, inner);
	auth_md5_resume(&ctx, pads->outer, 64);
	auth_md5_update(&ctx, inner, sizeof(inner));
	auth_md5_final(&ctx, out);
	explicit_bzero(inner, sizeof(inner));
}

/* ---- SCRAM ---- */

int auth_scram_keys(const char *md, const char *password, size_t password_len,
		    const void *salt, size_t salt_len, unsigned iterations,
		    struct auth_scram_keys *keys_r)
{
	const EVP_MD *evp = strcmp(md, "SHA1") == 0 ? EVP_sha1() : EVP_sha256();
	unsigned char salted[AUTH_MAX_MD_LEN], client_key[AUTH_MAX_MD_LEN];
	size_t len = auth_md_len(md);
	int ret = -1;

	if (len == 0 || iterations == 0 || iterations > AUTH_SCRAM_MAX_ITERATIONS ||
	    password_len > SASL_MAX_PASSWORD || salt_len > INT_MAX)
		return -1;
	/* SaltedPassword := Hi(Normalize(password), salt, i), RFC 5802 2.2. */
	if (PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)salt_len, (int)iterations,
			      evp, (int)len, salted) != 1)
		goto out;
	keys_r->len = len;
	/* ClientKey := HMAC(SaltedPassword, "Client Key"); StoredKey := H(ClientKey);
	 * ServerKey := HMAC(SaltedPassword, "Server Key"). */
	if (auth_hmac(md, salted, len, "Client Key", 10, client_key) != len ||
	    auth_digest(md, client_key, len, keys_r->stored_key) != len ||
	    auth_hmac(md, salted, len, "Server Key", 10, keys_r->server_key) != len)
		goto out;
	ret = 0;
out:
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client_key, sizeof(client_key));
	return ret;
}

char *auth_scram_secret(const char *md, const char *password, const void *salt, size_t salt_len,
			unsigned iterations)
{
	struct auth_scram_keys keys;
	struct buf b;
	char *result = NULL;
	int ret = 0;

	if (auth_scram_keys(md, password, strlen(password), salt, salt_len, iterations, &keys) < 0)
		return NULL;
	buf_init(&b, 1024);
	ret |= buf_printf(&b, "%u,", iterations);
	ret |= base64_encode_append(&b, salt, salt_len);
	ret |= buf_append_char(&b, ',');
	ret |= base64_encode_append(&b, keys.stored_key, keys.len);
	ret |= buf_append_char(&b, ',');
	ret |= base64_encode_append(&b, keys.server_key, keys.len);
	if (ret == 0)
		result = buf_steal(&b);
	buf_deinit(&b);
	explicit_bzero(&keys, sizeof(keys));
	return result;
}

/* Decodes one base64 field of exactly want bytes (want 0: any length up to
 * out_size). */
static int decode_field(const char *text, size_t len, unsigned char *out, size_t out_size,
			size_t want, size_t *len_r)
{
	size_t n;

	if (base64_decode(text, len, out, out_size, &n) < 0 || (want != 0 && n != want) || n == 0)
		return -1;
	*len_r = n;
	return 0;
}

int auth_scram_secret_parse(const char *md, const char *value, struct auth_scram_secret *r)
{
	const char *p = value, *comma;
	size_t len = auth_md_len(md), n;
	int64_t iter;
	char num[16];

	if (len == 0)
		return -1;
	comma = strchr(p, ',');
	if (comma == NULL || comma == p || (size_t)(comma - p) >= sizeof(num))
		return -1;
	memcpy(num, p, (size_t)(comma - p));
	num[comma - p] = '\0';
	if (str_to_i64(num, 1, AUTH_SCRAM_MAX_ITERATIONS, &iter) < 0)
		return -1;
	r->iterations = (unsigned)iter;
	p = comma + 1;
	comma = strchr(p, ',');
	if (comma == NULL ||
	    decode_field(p, (size_t)(comma - p), r->salt, sizeof(r->salt), 0, &r->salt_len) < 0)
		return -1;
	p = comma + 1;
	comma = strchr(p, ',');
	if (comma == NULL ||
	    decode_field(p, (size_t)(comma - p), r->keys.stored_key, len, len, &n) < 0)
		return -1;
	p = comma + 1;
	if (decode_field(p, strlen(p), r->keys.server_key, len, len, &n) < 0)
		return -1;
	r->keys.len = len;
	return 0;
}

/* ---- DIGEST-MD5 and NTLM ---- */

static char *lower_dup(const char *s)
{
	char *r = xstrdup(s);

	for (char *p = r; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

/* hex of MD5(user ":" realm ":" password): RFC 2831 2.1.2.1's
 * { username-value, ":", realm-value, ":", passwd }. */
static void digest_a1_hex(const char *user, const char *realm, const char *password, char out[33])
{
	struct auth_md5 ctx;
	unsigned char h[AUTH_MD5_LEN];

	/* Our MD5 rather than EVP's so that derivation works where EVP's MD5 is
	 * not available (FIPS): the secret is then stored and usable later. */
	auth_md5_init(&ctx);
	auth_md5_update(&ctx, user, strlen(user));
	auth_md5_update(&ctx, ":", 1);
	auth_md5_update(&ctx, realm, strlen(realm));
	auth_md5_update(&ctx, ":", 1);
	auth_md5_update(&ctx, password, strlen(password));
	auth_md5_final(&ctx, h);
	str_hex(h, sizeof(h), out);
	explicit_bzero(h, sizeof(h));
}

/* The ISO 8859-1 form of UTF-8 text, or NULL when a character is beyond
 * U+00FF (or the text is not UTF-8).  Newly allocated. */
static char *utf8_to_latin1(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = xmalloc(strlen(s) + 1), *o = out;

	while (*p != '\0') {
		if (p[0] < 0x80) {
			*o++ = (char)*p++;
		} else if ((p[0] == 0xc2 || p[0] == 0xc3) && (p[1] & 0xc0) == 0x80) {
			*o++ = (char)(((p[0] & 0x03) << 6) | (p[1] & 0x3f));
			p += 2;
		} else {
			free(out);
			return NULL;
		}
	}
	*o = '\0';
	return out;
}

/* HEX(H(user:realm:password)) as RFC 2831 section 2.1.2.1 says the client
 * computes it with charset=utf-8: when user, realm and password can all be
 * written in ISO 8859-1 they are hashed in ISO 8859-1, else in UTF-8. */
static void digest_a1_hex_charset(const char *user, const char *realm, const char *password,
				  char out[33])
{
	char *u = utf8_to_latin1(user), *r = utf8_to_latin1(realm), *p = utf8_to_latin1(password);

	if (u != NULL && r != NULL && p != NULL)
		digest_a1_hex(u, r, p, out);
	else
		digest_a1_hex(user, realm, password, out);
	if (p != NULL)
		explicit_bzero(p, strlen(p));
	free(u);
	free(r);
	free(p);
}

char *auth_digest_md5_secret(const char *user, const char *domain, const char *password)
{
	char *realm = lower_dup(domain), *address = xasprintf("%s@%s", user, realm);
	char h1[33], h2[33], *r;

	digest_a1_hex_charset(user, realm, password, h1);
	digest_a1_hex_charset(address, realm, password, h2);
	r = xasprintf("%s:%s:%s", realm, h1, h2);
	explicit_bzero(h1, sizeof(h1));
	explicit_bzero(h2, sizeof(h2));
	free(address);
	free(realm);
	return r;
}

int auth_nt_hash(const char *password, unsigned char out[16])
{
	size_t len = strlen(password);
	unsigned char *u16;
	long n;

	if (len > SASL_MAX_PASSWORD)
		return -1;
	u16 = xmalloc(2 * len + 2);
	n = auth_utf8_to_utf16le(password, len, u16, 2 * len + 2);
	if (n >= 0)
		auth_md4(u16, (size_t)n, out);
	explicit_bzero(u16, 2 * len + 2);
	free(u16);
	return n < 0 ? -1 : 0;
}

/* ---- all of them ---- */

void auth_secrets_free(struct auth_secret **secrets, size_t n)
{
	if (*secrets == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free((*secrets)[i].mechanism);
		if ((*secrets)[i].value != NULL) {
			explicit_bzero((*secrets)[i].value, strlen((*secrets)[i].value));
			free((*secrets)[i].value);
		}
	}
	free(*secrets);
	*secrets = NULL;
}

int auth_derive(const char *user, const char *domain, const char *password,
		struct auth_secret **secrets_r, size_t *n_r, char **error_r)
{
	struct auth_secret *list;
	unsigned char salt[AUTH_SCRAM_SALT_LEN], nt[16];
	size_t n = 0, len = strlen(password);
	char hex[33], *prepared;
	static const struct {
		const char *mech, *md;
	} scram[] = { { AUTH_SECRET_SCRAM_SHA_1, "SHA1" }, { AUTH_SECRET_SCRAM_SHA_256, "SHA256" } };

	*secrets_r = NULL;
	*n_r = 0;
	if (len == 0 || len > SASL_MAX_PASSWORD) {
		*error_r = xasprintf("the password must be 1 to %d bytes long", SASL_MAX_PASSWORD);
		return -1;
	}
	if (!auth_utf8_valid(password, len)) {
		*error_r = xstrdup("the password is not valid UTF-8");
		return -1;
	}
	if (user == NULL || *user == '\0' || domain == NULL || *domain == '\0') {
		*error_r = xstrdup("deriving secrets needs a user name and a domain");
		return -1;
	}
	/* SaltedPassword := Hi(Normalize(password), ...): RFC 5802 2.2. */
	if (auth_prepare_password(password, true, &prepared, error_r) < 0)
		return -1;
	list = xcalloc(5, sizeof(*list));
	for (size_t i = 0; i < 2; i++) {
		auth_random(salt, sizeof(salt));
		list[n].mechanism = xstrdup(scram[i].mech);
		list[n].value = auth_scram_secret(scram[i].md, prepared, salt, sizeof(salt),
						  AUTH_SCRAM_ITERATIONS);
		if (list[n++].value == NULL) {
			explicit_bzero(prepared, strlen(prepared));
			free(prepared);
			auth_secrets_free(&list, n);
			*error_r = xasprintf("cannot derive the %s secret: digest unavailable",
					     scram[i].mech);
			return -1;
		}
	}
	explicit_bzero(prepared, strlen(prepared));
	free(prepared);
	/* CRAM-MD5, DIGEST-MD5 and NTLM clients send HMACs of the password as
	 * typed (their RFCs have no SASLprep): raw bytes. */
	list[n].mechanism = xstrdup(AUTH_SECRET_CRAM_MD5);
	list[n++].value = auth_cram_md5_secret(password);
	list[n].mechanism = xstrdup(AUTH_SECRET_DIGEST_MD5);
	list[n++].value = auth_digest_md5_secret(user, domain, password);
	if (auth_nt_hash(password, nt) < 0)
		panic("auth_derive: UTF-8 checked above");
	str_hex(nt, sizeof(nt), hex);
	list[n].mechanism = xstrdup(AUTH_SECRET_NTLM);
	list[n++].value = xstrdup(hex);
	explicit_bzero(nt, sizeof(nt));
	explicit_bzero(hex, sizeof(hex));
	*secrets_r = list;
	*n_r = n;
	return 0;
}
