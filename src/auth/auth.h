/*
 * Authentication: the secrets stored for each user, the interface through
 * which the SASL engine (auth/sasl.h) finds users, and its glue to the
 * directory (users.cfg).  Brute-force protection is auth/auth_limiter.h.
 *
 * What is stored (docs/authentication.md has the formats and reasons):
 * the directory keeps a yescrypt hash for PLAIN and LOGIN, and, for the
 * challenge-response mechanisms, one derived secret per mechanism, each a
 * string "value" under a mechanism name.  They are derived when a password
 * is set (auth_derive_secrets, registered with the directory as its
 * secrets hook) and never from anything but the password:
 *
 *   SCRAM-SHA-1    "ITER,SALT,STOREDKEY,SERVERKEY" (RFC 5802 section 3;
 *   SCRAM-SHA-256   SALT and keys in base64; Dovecot's format)
 *   CRAM-MD5       64 hex digits: the MD5 states after key^ipad and
 *                  key^opad (Dovecot's CRAM-MD5 scheme)
 *   DIGEST-MD5     "REALM:HEX1:HEX2": H(name:REALM:password) and
 *                  H(name@domain:REALM:password), REALM the domain
 *                  (in ISO 8859-1 when all three fit it: RFC 2831 2.1.2.1)
 *   NTLM           32 hex digits: MD4(UTF-16LE(password)), the NT hash
 *
 * None is the password, but the CRAM-MD5, DIGEST-MD5 and NTLM values are
 * password equivalents for their own mechanism (whoever reads them can log
 * in with that mechanism), which is why users.cfg is mode 0600 and why an
 * administrator may leave those mechanisms out of auth/mechanisms.
 */
#ifndef PETREL_AUTH_H
#define PETREL_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/xmalloc.h"
#include "directory/directory.h"   /* struct dir_secret, directory_set_secrets_hook */

/* Mechanism names of the stored secrets (also the SASL names). */
#define AUTH_SECRET_SCRAM_SHA_1 "SCRAM-SHA-1"
#define AUTH_SECRET_SCRAM_SHA_256 "SCRAM-SHA-256"
#define AUTH_SECRET_CRAM_MD5 "CRAM-MD5"
#define AUTH_SECRET_DIGEST_MD5 "DIGEST-MD5"
#define AUTH_SECRET_NTLM "NTLM"

/* PBKDF2 iterations for new SCRAM secrets: RFC 7677 section 4 asks for at
 * least 4096.  Stored secrets carry their own count, so raising this later
 * only affects passwords set afterwards. */
#define AUTH_SCRAM_ITERATIONS 4096
/* Salt length for new SCRAM secrets (RFC 5802 leaves it open; 16 bytes is
 * what Dovecot and Cyrus use). */
#define AUTH_SCRAM_SALT_LEN 16
/* Largest iteration count accepted from a stored secret: a bound on the
 * work one hand-edited users.cfg line can cause at each login. */
#define AUTH_SCRAM_MAX_ITERATIONS 10000000

/* One derived secret, as auth_derive returns them. */
struct auth_secret {
	char *mechanism;         /* AUTH_SECRET_* */
	char *value;             /* format above */
};

/* Derives every secret for user name@domain with password (UTF-8, used
 * SASLprep'd for SCRAM, raw bytes for CRAM-MD5, DIGEST-MD5 and NTLM; see
 * docs/authentication.md).  The SCRAM salts are
 * fresh random bytes.  Returns 0 with *secrets_r (an array of *n_r, free
 * with auth_secrets_free), or -1 with *error_r (caller frees) for an empty
 * or too long password (DIRECTORY_MAX_PASSWORD) or a crypto failure.
 * Never puts the password in *error_r. */
int auth_derive(const char *user, const char *domain, const char *password,
		struct auth_secret **secrets_r, size_t *n_r, char **error_r) PETREL_MUST_CHECK;
void auth_secrets_free(struct auth_secret **secrets, size_t n);

/* The same, in the directory's types: this is the directory's secrets hook
 * (directory_secrets_fn), registered at startup by petreld and petrelctl
 * with directory_set_secrets_hook(auth_derive_secrets).  *secrets_r is an
 * array of *n_r struct dir_secret whose strings and array are allocated
 * with malloc (the directory frees them). */
int auth_derive_secrets(const char *user, const char *domain, const char *password,
			struct dir_secret **secrets_r, size_t *n_r, char **error_r);

/* SASLprep (RFC 4013, libidn's profile) of UTF-8 text.  stored: the
 * stored-strings rule (unassigned code points refused), else the query
 * rule.  Returns 0 with *out_r (malloc'ed, caller wipes and frees), or -1
 * with *reason_r (static text that never contains the input) for invalid
 * UTF-8, prohibited characters, a bidi error, or an empty result. */
int auth_saslprep(const char *in, bool stored, char **out_r, const char **reason_r)
	PETREL_MUST_CHECK;

/* The directory's password-prepare hook (directory_prepare_fn), registered
 * at startup by petreld and petrelctl beside auth_derive_secrets: the
 * yescrypt hash is made from, and checked against, the SASLprep'd
 * password. */
int auth_prepare_password(const char *password, bool stored, char **prepared_r, char **error_r);

/* Derivation pieces, exposed for the tests and for the RFC vectors.
 * auth_scram_secret formats a SCRAM value for a given salt and count;
 * md is "SHA1" or "SHA256".  Returns a newly allocated string, or NULL when
 * the digest is unavailable. */
char *auth_scram_secret(const char *md, const char *password, const void *salt, size_t salt_len,
			unsigned iterations);
/* CRAM-MD5 value (64 lower-case hex digits), newly allocated. */
char *auth_cram_md5_secret(const char *password);
/* DIGEST-MD5 value "realm:HEX1:HEX2" for user@domain (realm = domain in
 * lower case), newly allocated. */
char *auth_digest_md5_secret(const char *user, const char *domain, const char *password);
/* NT hash of password: MD4 of its UTF-16LE form.  Returns 0, or -1 when
 * password is not valid UTF-8. */
int auth_nt_hash(const char *password, unsigned char out[16]) PETREL_MUST_CHECK;

/* The brute-force limiter's key of the account login names (struct
 * auth_attempt): lower case, a bare name completed with dir's primary
 * domain, the same whether the user exists or not.  dir may be NULL.
 * Newly allocated. */
char *auth_account_key(const struct directory *dir, const char *login);

/* The Kerberos realm of a mail domain: the directory's per-domain setting
 * when it has one, else the domain in upper case (the usual convention).
 * Newly allocated. */
char *auth_domain_realm(const struct directory *dir, const char *domain);

#endif
