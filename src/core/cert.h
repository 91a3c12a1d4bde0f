/*
 * Certificate management: the file operations behind `petrelctl cert` and
 * `petrelctl setup`, and the PEM loading that the TLS layer (tls.c) shares.
 *
 * Nothing here touches a socket, a running engine or the config snapshot:
 * every function takes paths, works on files, and reports what went wrong
 * in a sentence that names the file.  The engine never calls the writing
 * functions; petrelctl does, then asks the engine to reload.
 *
 * Files in the certificate directory (<config-dir>/sslcert, see
 * docs/certificates.md):
 *
 *   server.crt    default certificate, PEM: server certificate, then chain
 *   server.key    its private key, PEM, mode 0600
 *   request.key   the pending key of a certificate request, mode 0600
 *   request.csr   the certificate request to give to a CA
 *   NAME.crt/.key per-host certificates selected by SNI (tls.c)
 *
 * Errors come back as newly allocated strings in *error_r, which the
 * caller frees (like cfg_load).  Every function leaves the OpenSSL error
 * queue of the calling thread empty, so a stale error cannot confuse a
 * later SSL_get_error() on the same thread.
 */
#ifndef PETREL_CERT_H
#define PETREL_CERT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/xmalloc.h"

#define CERT_SERVER_CRT "server.crt"
#define CERT_SERVER_KEY "server.key"
#define CERT_REQUEST_KEY "request.key"
#define CERT_REQUEST_CSR "request.csr"

/* Validity of a generated self-signed certificate when none is given:
 * 825 days is the longest that Apple platforms accept for a TLS server
 * certificate (iOS 13 / macOS 10.15), so the default certificate is not
 * refused by iPhones and Macs even once the user has chosen to trust it. */
#define CERT_DEFAULT_DAYS 825
#define CERT_MAX_DAYS 3650

/* Largest certificate or key file we read; real ones are a few KiB. */
#define CERT_MAX_FILE_SIZE (1024u * 1024)
/* Most certificates in one PEM file (server certificate plus chain). */
#define CERT_MAX_CHAIN 16
/* Longest host name (RFC 1035: 253 characters in text form). */
#define CERT_MAX_HOSTNAME 253
/* Size of a buffer for cert_time_iso(): "2026-11-29T08:19:41Z". */
#define CERT_TIME_MAX 32

/* Checks that hostname can go into a certificate: 1..253 characters of
 * letters, digits, '-' and '.', no empty label, optionally starting with
 * "*." (a wildcard, for requests), or an IPv4/IPv6 literal.  Returns 0, or
 * -1 with *error_r (caller frees). */
int cert_check_hostname(const char *hostname, char **error_r) PETREL_MUST_CHECK;

/* Creates a new RSA 2048 key and a self-signed certificate for hostname:
 * subject CN=hostname, subjectAltName DNS:hostname (IP:... for an address
 * literal) plus DNS:localhost when hostname is not localhost, a random
 * 128-bit serial, SHA-256, CA:FALSE, keyUsage digitalSignature and
 * keyEncipherment, extendedKeyUsage serverAuth, valid from one hour ago
 * for days days (1..CERT_MAX_DAYS).  The key is written first (mode 0600),
 * then the certificate (0644), each atomically; an existing pair is
 * replaced.  Returns 0, or -1 with *error_r. */
int cert_generate_self_signed(const char *hostname, const char *cert_path, const char *key_path,
			      int days, char **error_r) PETREL_MUST_CHECK;

/* Creates a new RSA 2048 key (key_path, mode 0600, written first) and a
 * certificate signing request for hostname (csr_path, PEM) with CN and
 * subjectAltName.  Both are replaced if they exist; petrelctl refuses to
 * replace a pending request unless told to.  Returns 0, or -1 with
 * *error_r. */
int cert_request(const char *hostname, const char *csr_path, const char *key_path,
		 char **error_r) PETREL_MUST_CHECK;

/* Installs a certificate issued by a CA into dir (the sslcert directory).
 *
 * cert_file holds the server certificate (PEM, or DER), optionally followed
 * by its chain (PEM); chain_file (nullable) holds more chain certificates.
 * Each chain certificate must have issued the one before it.  Refused with
 * a sentence naming the problem when a file is not a certificate, the
 * certificate is expired or not yet valid, or the chain is out of order.
 *
 * The certificate's public key decides what happens:
 *   - key_file given (nullable): the key must match; server.key is
 *     replaced by it and server.crt by the certificate (the way to bring a
 *     certificate and key made elsewhere, e.g. by certbot);
 *   - it matches dir/request.key (the pending key of cert_request): the
 *     pending key becomes server.key and the certificate server.crt, then
 *     request.key and request.csr are removed;
 *   - it matches dir/server.key (a renewal with the same key): only
 *     server.crt is replaced;
 *   - otherwise: refused, nothing changed.
 *
 * Replacing both files: server.key.new and server.crt.new are written and
 * fsynced first, then renamed over server.key and server.crt.  A crash
 * between the two renames leaves a new key beside the old certificate (the
 * engine then refuses to load them); request.key is removed only after
 * both renames, so running the same import again completes the change.
 *
 * On success *summary_r (nullable) gets a newly allocated one-line summary
 * ("mail.example.com, valid until 2027-03-01T12:00:00Z, issued by ...").
 * Returns 0, or -1 with *error_r; then nothing in dir changed, except when
 * the second rename fails, which the message says ("run the same import
 * again"). */
int cert_import(const char *cert_file, const char *chain_file, const char *key_file,
		const char *dir, char **summary_r, char **error_r) PETREL_MUST_CHECK;

/* Describes the certificate in path (the first of the file; the others are
 * counted as its chain): subject, issuer, names (subjectAltName DNS and IP
 * entries), validity in ISO 8601 UTC, SHA-256 fingerprint, key type and
 * bits, whether it is self-signed and whether it is expired.
 *
 * cert_describe_json sets *json_r to a new object (caller json_decref's):
 *   {"path", "subject", "issuer", "names": [..], "not_before", "not_after",
 *    "expired": bool, "sha256_fingerprint": "AB:CD:..", "key_type": "RSA",
 *    "key_bits": 2048, "self_signed": bool, "chain_length": n}
 * cert_describe sets *description_r to the same as "key: value" lines
 * (caller frees).  Client-controlled text (names from a CA we do not know)
 * is escaped.  Both return 0, or -1 with *error_r. */
int cert_describe_json(const char *path, json_t **json_r, char **error_r) PETREL_MUST_CHECK;
int cert_describe(const char *path, char **description_r, char **error_r) PETREL_MUST_CHECK;

/* --- Helpers shared with tls.c ---------------------------------------- */

/* Reads a PEM file holding a certificate followed by its chain (at most
 * CERT_MAX_CHAIN certificates).  Sets *cert_r (caller X509_free's) and,
 * when chain_r is not NULL, *chain_r (caller sk_X509_pop_free(chain,
 * X509_free)'s; empty when there is no chain).  Errors name the
 * file: "PATH: not a PEM certificate".  Returns 0 or -1 with *error_r. */
int cert_read_chain(const char *path, X509 **cert_r, STACK_OF(X509) **chain_r,
		    char **error_r) PETREL_MUST_CHECK;

/* Reads a PEM private key (unencrypted: the engine starts unattended, so
 * there is nobody to type a pass phrase; we never prompt).  Sets *key_r
 * (caller EVP_PKEY_free's).  Returns 0 or -1 with *error_r naming path. */
int cert_read_key(const char *path, EVP_PKEY **key_r, char **error_r) PETREL_MUST_CHECK;

/* True when key is the private key of cert's public key. */
bool cert_key_matches(X509 *cert, EVP_PKEY *key);

/* Formats t as ISO 8601 UTC ("2026-11-29T08:19:41Z") into buf (size >=
 * CERT_TIME_MAX).  Returns 0, or -1 ("?" in buf) for an invalid time. */
int cert_time_iso(const ASN1_TIME *t, char *buf, size_t size);

/* The DNS names a server certificate is valid for: its subjectAltName DNS
 * entries, or when it has none, its last subject CN (what X509_check_host
 * does).  Names are lower-cased; a name with a NUL byte, an empty one or
 * one longer than CERT_MAX_HOSTNAME is left out (the NUL-in-name attack on
 * certificate checks).  Sets *names_r to a new array of new strings (free
 * with cert_names_free) and returns the count (0: *names_r is NULL). */
size_t cert_dns_names(X509 *cert, char ***names_r);
void cert_names_free(char **names, size_t count);

#endif
