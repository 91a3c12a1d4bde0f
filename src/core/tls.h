/*
 * The TLS layer: server contexts built from the <tls> settings, SNI
 * selection between several certificates, the process-wide current
 * context that a reload swaps, a small client context for outbound SMTP,
 * and the two libevent constructors every front end uses (implicit TLS on
 * accept, and STARTTLS over an existing plaintext bufferevent).
 *
 * Policy that no setting can weaken (docs/certificates.md says why):
 *   - TLS 1.2 or newer only: SSLv3, TLS 1.0 and 1.1 are impossible;
 *   - no compression (CRIME), no renegotiation of any kind (client-initiated
 *     renegotiation is a CPU DoS and a history of bugs);
 *   - forward secrecy: ECDHE over X25519, P-256, P-384 (and DHE with the
 *     RFC 7919 groups when the cipher list allows it);
 *   - anonymous, NULL, export, DES, 3DES, RC4, MD5, PSK and SRP suites are
 *     removed from any configured cipher list;
 *   - no session tickets: resumption uses the server-side session cache,
 *     which dies with the context at each reload, so no long-lived ticket
 *     key can decrypt recorded sessions later (forward secrecy kept).
 *
 * Lifetimes: a struct tls_ctx is process-lifetime and reference counted;
 * every SSL made by tls_ctx_new_ssl() holds a reference until SSL_free, so
 * a reload may drop the old context while old sessions still use it.
 */
#ifndef PETREL_TLS_H
#define PETREL_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "core/xmalloc.h"

struct cfg;
struct tls_ctx;

/* Cipher list for TLS 1.2 when none is configured (the settings.def
 * default): ECDHE/DHE with AES-GCM or ChaCha20 only. */
#define TLS_DEFAULT_CIPHERS \
	"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!RC4:!3DES"
/* Appended to every configured list: these never come back. */
#define TLS_FORBIDDEN_CIPHERS \
	"!aNULL:!eNULL:!EXPORT:!LOW:!DES:!3DES:!RC4:!MD5:!PSK:!SRP:!aDSS"
/* Key exchange groups, in the server's order of preference. */
#define TLS_GROUPS "X25519:P-256:P-384"
/* Most per-host (SNI) certificates loaded from the certificate directory. */
#define TLS_MAX_SNI_CERTS 1000
/* Longest SNI value we try to match (RFC 6066: a DNS name, 255 bytes max). */
#define TLS_MAX_SNI 255
/* Server-side session cache: entries and lifetime (Postfix uses 3600 s). */
#define TLS_SESSION_CACHE_SIZE 20480
#define TLS_SESSION_TIMEOUT 3600

/* Receives the warnings of a load that still succeeds ("certificate
 * expired on ...", "per-host certificate skipped: ...").  */
typedef void tls_warning_fn(const char *warning, void *context);

struct tls_settings {
	const char *certificate;      /* default certificate: PEM, server cert then chain */
	const char *key;              /* its private key (PEM, unencrypted) */
	const char *cert_dir;         /* scanned for NAME.crt + NAME.key SNI pairs; NULL: none */
	const char *min_version;      /* "1.2" or "1.3"; NULL means "1.2" */
	const char *ciphers;          /* TLS 1.2 cipher list; NULL: TLS_DEFAULT_CIPHERS */
	bool prefer_server_ciphers;
	tls_warning_fn *warn;         /* NULL: warnings go to log_warn("tls", ...) */
	void *warn_context;
};

/* Builds a server context.  The default certificate and key must load and
 * match, or the call fails: "PATH: not a PEM certificate", "PATH: key does
 * not match certificate CERTPATH", "tls min-version \"1.0\" is not
 * allowed (use 1.2 or 1.3)".  An expired or not yet valid certificate
 * only warns: refusing to start would stop mail that needs no TLS (port 25
 * and clients that do not verify), and the warning tells the administrator.
 *
 * Every other NAME.crt in cert_dir with a NAME.key beside it is loaded as a
 * per-host certificate, except server.* and request.* (the default and a
 * pending request).  A pair that does not load is skipped with a warning:
 * the files are picked up by name, and a stray file must not stop mail.
 *
 * Returns 0 and a context with one reference in *ctx_r, or -1 and *error_r
 * (newly allocated, caller frees). */
int tls_ctx_new(const struct tls_settings *settings, struct tls_ctx **ctx_r,
		char **error_r) PETREL_MUST_CHECK;

/* Same, from a config snapshot: tls/certificate and tls/key resolved with
 * cfg_path(), the certificate directory <config_dir>/sslcert. */
int tls_ctx_new_from_cfg(const struct cfg *cfg, tls_warning_fn *warn, void *warn_context,
			 struct tls_ctx **ctx_r, char **error_r) PETREL_MUST_CHECK;

struct tls_ctx *tls_ctx_ref(struct tls_ctx *ctx);
/* Drops a reference and NULLs *ctx; NULL is allowed. */
void tls_ctx_unref(struct tls_ctx **ctx);

/* Number of certificates loaded (the default one plus per-host ones). */
size_t tls_ctx_cert_count(const struct tls_ctx *ctx);

/* A new server-side SSL for one connection; it holds a reference to ctx
 * until SSL_free.  SNI selects the certificate during the handshake.  The
 * caller owns the SSL (usually handing it to a bufferevent with
 * BEV_OPT_CLOSE_ON_FREE).  Never NULL: allocation failure panics. */
SSL *tls_ctx_new_ssl(struct tls_ctx *ctx);

/* True when name (len bytes, client input: any bytes) is matched by a
 * certificate name pattern (lower-case, from cert_dns_names): equal
 * ignoring ASCII case and one trailing dot, or pattern "*.example.com"
 * where name is one non-empty label followed by ".example.com".  The
 * wildcard covers exactly one label and only as the whole leftmost label;
 * "*.com" style patterns with fewer than two labels never match. */
bool tls_name_match(const char *pattern, const char *name, size_t len);

/* Short description of an established session for logs and Received:
 * headers: "TLSv1.3 TLS_AES_256_GCM_SHA384".  Newly allocated; caller
 * frees. */
char *tls_session_describe(const SSL *ssl);

/* The process-wide current context.  tls_current() returns a new
 * reference (caller tls_ctx_unref's) or NULL when none is set;
 * tls_set_current() takes over the caller's reference (ctx may be NULL)
 * and drops the previous context's.  New connections take tls_current();
 * the ones already open keep their context until they end. */
struct tls_ctx *tls_current(void);
void tls_set_current(struct tls_ctx *ctx);

/* A client context for outbound SMTP: TLS 1.2 or newer, the same groups
 * and forbidden suites, no compression or renegotiation.  With verify, the
 * peer certificate must chain to ca_file (PEM bundle) or, when ca_file is
 * NULL, to the system CA store; without verify (opportunistic STARTTLS, RFC
 * 7435) any certificate is accepted and the caller logs the outcome.
 * Returns 0 and *ctx_r (caller SSL_CTX_free's) or -1 and *error_r. */
int tls_client_ctx_new(bool verify, const char *ca_file, SSL_CTX **ctx_r,
		       char **error_r) PETREL_MUST_CHECK;

/* A client SSL for one connection to server_name (a host name, or an
 * address literal): sets SNI (not for an address literal, RFC 6066 3) and,
 * when ctx verifies, the name or address the certificate must carry.
 * Returns 0 and *ssl_r (caller SSL_free's, or hands it to a bufferevent),
 * or -1 and *error_r when the name cannot be used; never a verifying SSL
 * that would skip the name check. */
int tls_client_new_ssl(SSL_CTX *ctx, const char *server_name, SSL **ssl_r,
		       char **error_r) PETREL_MUST_CHECK;

/* Implicit TLS (SMTPS 465, IMAPS 993, POP3S 995, HTTPS, admin 44337):
 * wraps the accepted socket fd in a TLS bufferevent in accepting state
 * with BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS |
 * BEV_OPT_THREADSAFE.  Freeing the bufferevent closes fd and frees the SSL
 * (and so drops its context reference).  BEV_OPT_THREADSAFE only has
 * locks after evthread_use_pthreads().  Dirty shutdowns (TCP closed
 * without close_notify) are reported as BEV_EVENT_EOF: mail clients often
 * just close, and every mail protocol delimits its own data, so a
 * truncation cannot be mistaken for a complete message.  Never NULL:
 * libevent fails here only when it cannot allocate, and that panics. */
struct bufferevent *tls_bufferevent_accept(struct event_base *base, evutil_socket_t fd,
					   struct tls_ctx *ctx);

/* STARTTLS (SMTP 25/587, IMAP 143, POP3 110): starts the server side of a
 * handshake over the plaintext bufferevent underlying, which the returned
 * bufferevent then owns (BEV_OPT_CLOSE_ON_FREE, plus DEFER_CALLBACKS and
 * THREADSAFE sharing underlying's lock).  The caller sets its callbacks on
 * the returned bufferevent and forgets every protocol state learnt before
 * (RFC 3207 section 4.2).  libevent takes over underlying's callbacks and
 * clears its read watermark: set watermarks and timeouts on the returned
 * bufferevent.
 *
 * The caller must first have sent the "go ahead" reply, flushed it, and
 * checked that the input buffer of underlying is empty: bytes the client
 * sent after STARTTLS in the same plaintext packet would otherwise be read
 * as if they had come through TLS, letting a man in the middle inject
 * commands into the protected session (CVE-2011-0411, Postfix; the same
 * class hit many servers).  The right reaction to pipelined data is to drop
 * the connection.  As a last line of defence this function checks again:
 * when the input is not empty it returns NULL and underlying is untouched
 * and still the caller's.  Otherwise never NULL (allocation failure
 * panics). */
struct bufferevent *tls_bufferevent_starttls(struct bufferevent *underlying,
					     struct tls_ctx *ctx);

#endif
