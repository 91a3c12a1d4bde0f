/*
 * Inside src/auth: hash primitives, encoding helpers, and the SASL server
 * structure that the per-mechanism files (sasl_*.c) share.
 */
#ifndef PETREL_AUTH_PRIVATE_H
#define PETREL_AUTH_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "auth/sasl.h"
#include "core/buf.h"
#include "core/str.h"
#include "core/xmalloc.h"

#define AUTH_MD4_LEN 16
#define AUTH_MD5_LEN 16
#define AUTH_SHA1_LEN 20
#define AUTH_SHA256_LEN 32
#define AUTH_MAX_MD_LEN 64

/* MD4 of data (md4.c). */
void auth_md4(const void *data, size_t len, unsigned char out[AUTH_MD4_LEN]);

/* MD5 with resumable chaining state (md5_state.c), for CRAM-MD5. */
struct auth_md5 {
	uint32_t state[4];
	uint64_t total;          /* bytes hashed so far */
	unsigned char block[64];
	size_t fill;             /* bytes waiting in block */
};
void auth_md5_init(struct auth_md5 *ctx);
/* Continues from a chaining state reached after total bytes (a multiple
 * of 64). */
void auth_md5_resume(struct auth_md5 *ctx, const uint32_t state[4], uint64_t total);
void auth_md5_update(struct auth_md5 *ctx, const void *data, size_t len);
/* Writes the digest and wipes ctx. */
void auth_md5_final(struct auth_md5 *ctx, unsigned char out[AUTH_MD5_LEN]);

/* The CRAM-MD5 secret as its two MD5 states. */
struct auth_cram_pads {
	uint32_t inner[4];       /* after one block of key ^ ipad */
	uint32_t outer[4];       /* after one block of key ^ opad */
};
void auth_cram_pads(const void *key, size_t key_len, struct auth_cram_pads *pads_r);
/* Parses the stored value (64 hex digits; Dovecot's byte order: each
 * 32-bit word little-endian, inner a b c d then outer). */
int auth_cram_pads_parse(const char *value, struct auth_cram_pads *pads_r) PETREL_MUST_CHECK;
/* HMAC-MD5 of data resumed from the pads. */
void auth_cram_hmac(const struct auth_cram_pads *pads, const void *data, size_t len,
		    unsigned char out[AUTH_MD5_LEN]);

/* One-shot digests and HMAC through EVP; md is "MD5", "SHA1", "SHA256".
 * Return the output length, or 0 when the digest is unavailable (a FIPS
 * build without MD5): callers treat that as a failed authentication. */
size_t auth_digest(const char *md, const void *data, size_t len, unsigned char *out);
size_t auth_hmac(const char *md, const void *key, size_t key_len, const void *data, size_t len,
		 unsigned char *out);
/* Digest length of md, or 0. */
size_t auth_md_len(const char *md);

/* The SCRAM keys derived from a password. */
struct auth_scram_keys {
	size_t len;                                  /* digest length */
	unsigned char stored_key[AUTH_MAX_MD_LEN];
	unsigned char server_key[AUTH_MAX_MD_LEN];
};
/* PBKDF2 then the RFC 5802 keys.  Returns 0 or -1 (digest unavailable). */
int auth_scram_keys(const char *md, const char *password, size_t password_len,
		    const void *salt, size_t salt_len, unsigned iterations,
		    struct auth_scram_keys *keys_r) PETREL_MUST_CHECK;
/* A parsed stored SCRAM value. */
struct auth_scram_secret {
	unsigned iterations;
	unsigned char salt[256];
	size_t salt_len;
	struct auth_scram_keys keys;
};
int auth_scram_secret_parse(const char *md, const char *value, struct auth_scram_secret *r)
	PETREL_MUST_CHECK;


/* Constant-time equality of two equal-length byte strings. */
bool auth_equal(const void *a, const void *b, size_t len);

/* True when data[0..len) is valid UTF-8 (no overlongs, no surrogates). */
bool auth_utf8_valid(const void *data, size_t len);
/* True when s[0..len) has no NUL, no C0 control and no DEL: a login name. */
bool auth_printable_name(const void *data, size_t len);
/* UTF-8 to UTF-16LE (out holds 2 * len bytes at least; a code point takes
 * at most 2 bytes per input byte).  Returns the output length, or -1 on
 * invalid UTF-8. */
long auth_utf8_to_utf16le(const void *in, size_t len, unsigned char *out, size_t out_size);
/* UTF-16LE to UTF-8, appended to out; -1 on an odd length, an unpaired
 * surrogate, a NUL, or out's maximum. */
int auth_utf16le_to_utf8(const void *in, size_t len, struct buf *out) PETREL_MUST_CHECK;

/* buf_init, and the data allocated at once, so that b->data is a valid
 * empty string even before the first append. */
void auth_buf_init(struct buf *b, size_t max);

/* Fills buf with cryptographically random bytes; panics if the CSPRNG
 * fails (nothing sensible can continue). */
void auth_random(void *buf, size_t len);

/*
 * The SASL server.
 */

struct sasl_mech_ops {
	enum sasl_mech mech;
	const char *name;
	/* Starts; has_initial tells an absent initial response from an empty
	 * one.  Sets the reply through sasl_continue/succeed/fail. */
	void (*start)(struct sasl_server *s, const unsigned char *initial, size_t len,
		      bool has_initial);
	void (*step)(struct sasl_server *s, const unsigned char *data, size_t len);
	/* Frees s->mech_state, wiping what must not linger. */
	void (*free_state)(struct sasl_server *s);
};

extern const struct sasl_mech_ops sasl_plain_ops, sasl_login_ops, sasl_cram_md5_ops,
	sasl_digest_md5_ops, sasl_scram_sha_1_ops, sasl_scram_sha_256_ops, sasl_ntlm_ops,
	sasl_gssapi_ops;

struct sasl_server {
	struct sasl_params params;
	struct sasl_backend backend;
	const struct sasl_mech_ops *ops;   /* NULL: no exchange running */
	void *mech_state;                  /* the mechanism's, freed by its free_state */
	struct buf out;                    /* the challenge or success data */
	struct buf text;                   /* out in base64 (the _text calls) */
	struct buf in;                     /* decoded response (the _text calls) */
	char *login;                       /* the login the client gave */
	char *account;                     /* its account key */
	char *identity;                    /* after SUCCESS */
	struct sasl_reply reply;
	bool replied;                      /* a mechanism set the reply */
	char reason_buf[256];              /* sasl_failf's reason */
	size_t max_response;
};

/* Reply helpers for the mechanisms; each step ends in exactly one of
 * sasl_continue, sasl_success or sasl_fail.  sasl_continue copies the
 * challenge.  sasl_authorize checks a verified user (enabled, and the
 * authorization identity the client asked for, if any: it must name the
 * same user) and remembers the identity; it returns false after setting a
 * failure.  sasl_success ends the exchange with the authorized identity and
 * optional additional data.  sasl_fail ends it. */
void sasl_continue(struct sasl_server *s, const void *challenge, size_t len);
bool sasl_authorize(struct sasl_server *s, const struct sasl_user *user, const char *authzid,
		    size_t authzid_len);
void sasl_success(struct sasl_server *s, const void *data, size_t len);
void sasl_fail(struct sasl_server *s, enum sasl_failure failure, const char *reason);
/* sasl_fail with a formatted reason (kept in the server until the next
 * call); for reasons that carry a library's message, never client data. */
void sasl_failf(struct sasl_server *s, enum sasl_failure failure, const char *fmt, ...)
	PETREL_PRINTF(3, 4);
/* Records the login the client gave (for the reply and the log). */
void sasl_set_login(struct sasl_server *s, const char *login, size_t len);
/* Looks a login up: 1 found (and *user_r), 0 unknown or not loginable
 * name, -1 temporary failure (the reply is then set: FAILURE). */
int sasl_lookup(struct sasl_server *s, const char *login, struct sasl_user *user_r);
/* True when auth/gssapi-keytab names a keytab (not "none"). */
bool sasl_gssapi_configured(const struct settings *s);
/* The host name for challenges: params.hostname or server/hostname. */
const char *sasl_hostname(const struct sasl_server *s);

#endif
