/*
 * The TLS layer (see tls.h): one SSL_CTX per configuration generation,
 * holding the policy and the default certificate, plus the per-host
 * certificates that the SNI callback installs on a connection's SSL.
 *
 * A context is built on startup and on each reload, on the main thread,
 * then published with tls_set_current(); the event-loop threads take
 * references when they accept a connection.  OpenSSL objects inside a
 * context are never modified after tls_ctx_new() returns, so readers need
 * no lock beyond OpenSSL's own.
 *
 * Why one SSL_CTX and per-connection certificates rather than one SSL_CTX
 * per host (SSL_set_SSL_CTX): every connection then has exactly the same
 * policy and one session cache, whatever certificate SNI picked.
 */
#include "core/tls.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/cert.h"
#include "core/cfg.h"
#include "core/log.h"
#include "core/str.h"

/* Warn this long before the default or a per-host certificate expires:
 * automated renewal (Let's Encrypt) runs at 30 days, so at 14 it failed. */
#define TLS_EXPIRY_WARNING_SECONDS (14 * 24 * 3600L)
/* Session id context: any constant; sessions are only resumed within the
 * context (and so the configuration generation) that created them. */
#define TLS_SESSION_ID_CONTEXT "petrel"

struct tls_cert {
	char *path;                /* certificate file, for logs and warnings */
	X509 *cert;
	EVP_PKEY *key;
	STACK_OF(X509) *chain;
	char **names;              /* lower-case DNS names (cert_dns_names) */
	size_t name_count;
};

struct tls_ctx {
	atomic_int refcount;
	SSL_CTX *ssl_ctx;
	struct tls_cert *certs;    /* certs[0] is the default certificate */
	size_t cert_count;
};

static void PETREL_PRINTF(2, 3) warnf(const struct tls_settings *s, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		panic("warnf: bad format");
	msg = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	(void)vsnprintf(msg, (size_t)n + 1, fmt, ap);
	va_end(ap);
	if (s->warn != NULL)
		s->warn(msg, s->warn_context);
	else
		log_warn("tls", "%s", msg);
	free(msg);
}

/* The reason of the last OpenSSL error, then the thread's queue emptied:
 * a stale error would make a later SSL_get_error() on this thread lie. */
static const char *ossl_reason(char *buf, size_t size)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

	if (str_copy(buf, reason != NULL ? reason : "unknown OpenSSL error", size) < 0)
		buf[0] = '\0';
	ERR_clear_error();
	return buf;
}

/* --- Reference counting and the SSL ex_data that holds a reference ---- */

static int ssl_ex_index = -1;
static pthread_once_t ssl_ex_once = PTHREAD_ONCE_INIT;

static void ssl_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct tls_ctx *ctx = ptr;

	tls_ctx_unref(&ctx);
}

static int ssl_ex_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d, int idx,
		      long argl, void *argp)
{
	/* SSL_dup copies the pointer: the copy needs its own reference. */
	if (*from_d != NULL)
		(void)tls_ctx_ref(*from_d);
	return 1;
}

static void ssl_ex_init(void)
{
	ssl_ex_index = SSL_get_ex_new_index(0, "petrel tls_ctx", NULL, ssl_ex_dup, ssl_ex_free);
	if (ssl_ex_index < 0)
		panic("SSL_get_ex_new_index failed");
}

static int ex_index(void)
{
	if (pthread_once(&ssl_ex_once, ssl_ex_init) != 0)
		panic("pthread_once failed");
	return ssl_ex_index;
}

struct tls_ctx *tls_ctx_ref(struct tls_ctx *ctx)
{
	int old = atomic_fetch_add(&ctx->refcount, 1);

	if (old <= 0)
		panic("tls_ctx_ref: reference count was %d", old);
	return ctx;
}

static void cert_deinit(struct tls_cert *c)
{
	free(c->path);
	X509_free(c->cert);
	EVP_PKEY_free(c->key);
	sk_X509_pop_free(c->chain, X509_free);
	cert_names_free(c->names, c->name_count);
	memset(c, 0, sizeof(*c));
}

static void ctx_free(struct tls_ctx *ctx)
{
	for (size_t i = 0; i < ctx->cert_count; i++)
		cert_deinit(&ctx->certs[i]);
	free(ctx->certs);
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

void tls_ctx_unref(struct tls_ctx **ctxp)
{
	struct tls_ctx *ctx = *ctxp;
	int old;

	if (ctx == NULL)
		return;
	*ctxp = NULL;
	old = atomic_fetch_sub(&ctx->refcount, 1);
	if (old <= 0)
		panic("tls_ctx_unref: reference count was %d", old);
	if (old == 1)
		ctx_free(ctx);
}

size_t tls_ctx_cert_count(const struct tls_ctx *ctx)
{
	return ctx->cert_count;
}

/* --- Name matching and SNI --------------------------------------------- */

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool ascii_iequal(const char *a, const char *b, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return false;
	}
	return true;
}

bool tls_name_match(const char *pattern, const char *name, size_t len)
{
	size_t plen = strlen(pattern);

	/* One trailing dot is the same name (absolute form). */
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > TLS_MAX_SNI || memchr(name, '\0', len) != NULL)
		return false;

	if (plen > 2 && pattern[0] == '*' && pattern[1] == '.') {
		const char *suffix = pattern + 1;            /* ".example.com" */
		size_t slen = plen - 1;
		const char *dot;

		/* "*.com": a wildcard needs at least two labels after it. */
		if (strchr(suffix + 1, '.') == NULL || strchr(suffix, '*') != NULL)
			return false;
		dot = memchr(name, '.', len);
		if (dot == NULL || dot == name)
			return false;
		return (size_t)(name + len - dot) == slen && ascii_iequal(dot, suffix, slen);
	}
	/* Partial wildcards ("f*.example.com") are not honoured (RFC 6125 6.4.3
	 * allows refusing them; browsers do). */
	if (strchr(pattern, '*') != NULL)
		return false;
	return plen == len && ascii_iequal(pattern, name, len);
}

/* The certificate for an SNI value: exact names first (the default
 * certificate included, so it wins when it names the host itself), then
 * wildcards.  NULL: no certificate names it. */
static const struct tls_cert *select_cert(const struct tls_ctx *ctx, const char *name, size_t len)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < ctx->cert_count; i++) {
			const struct tls_cert *c = &ctx->certs[i];

			for (size_t j = 0; j < c->name_count; j++) {
				bool wildcard = c->names[j][0] == '*';

				if (wildcard == (pass == 1) && tls_name_match(c->names[j], name, len))
					return c;
			}
		}
	}
	return NULL;
}

/* The SNI callback.  The name is client input (HOSTILE-INPUT row 24, Exim
 * CVE-2019-15846 was an SNI ending in a backslash): OpenSSL has already
 * refused empty names and names with a NUL byte; we read at most
 * TLS_MAX_SNI + 1 bytes of it, only compare it, and log it escaped. */
static int servername_cb(SSL *ssl, int *alert, void *arg)
{
	struct tls_ctx *ctx = SSL_get_ex_data(ssl, ex_index());
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const struct tls_cert *c;
	char *escaped;

	if (ctx == NULL || sni == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	c = select_cert(ctx, sni, strnlen(sni, TLS_MAX_SNI + 1));
	escaped = str_escape(sni, TLS_MAX_SNI);
	log_debug("tls", "sni=\"%s\" certificate=%s", escaped,
		  c != NULL ? c->path : "default (no match)");
	free(escaped);
	if (c == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	if (c != &ctx->certs[0]) {
		/* Clear first: otherwise a default RSA certificate would stay
		 * beside a per-host ECDSA one and could still be chosen. */
		SSL_certs_clear(ssl);
		if (SSL_use_cert_and_key(ssl, c->cert, c->key, c->chain, 1) != 1) {
			char reason[256];

			log_error("tls", "cannot use certificate %s: %s", c->path,
				  ossl_reason(reason, sizeof(reason)));
			*alert = SSL_AD_INTERNAL_ERROR;
			return SSL_TLSEXT_ERR_ALERT_FATAL;
		}
	}
	return SSL_TLSEXT_ERR_OK;
}

/* --- Building a context ------------------------------------------------ */

static int parse_min_version(const char *s, int *version_r, char **error_r)
{
	if (s == NULL || strcmp(s, "1.2") == 0) {
		*version_r = TLS1_2_VERSION;
		return 0;
	}
	if (strcmp(s, "1.3") == 0) {
		*version_r = TLS1_3_VERSION;
		return 0;
	}
	{
		char *esc = str_escape(s, 32);

		*error_r = xasprintf("tls min-version \"%s\" is not allowed (use 1.2 or 1.3)", esc);
		free(esc);
	}
	return -1;
}

/* Policy shared by server and client contexts (tls.h lists it). */
static int configure_common(SSL_CTX *c, int min_version, const char *ciphers, char **error_r)
{
	char reason[256];
	char *list;
	int ok;

	if (SSL_CTX_set_min_proto_version(c, min_version) != 1) {
		*error_r = xasprintf("cannot set the minimum TLS version: %s",
			  ossl_reason(reason, sizeof(reason)));
		return -1;
	}
	/* The protocol options repeat the minimum version, in case a
	 * system-wide openssl.cnf lowers MinProtocol behind our back.
	 * IGNORE_UNEXPECTED_EOF: with OpenSSL 3 a TCP close without
	 * close_notify is otherwise an SSL error, which libevent 2.1 reports as
	 * BEV_EVENT_ERROR even with allow_dirty_shutdown; mail protocols frame
	 * their own data, so such a close is just an EOF (see tls.h). */
	SSL_CTX_set_options(c, SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
			    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_clear_options(c, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
	/* Idle IMAP connections are many: give their buffers back. */
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set1_groups_list(c, TLS_GROUPS) != 1) {
		*error_r = xasprintf("cannot set the key exchange groups %s: %s", TLS_GROUPS,
			  ossl_reason(reason, sizeof(reason)));
		return -1;
	}
	list = xasprintf("%s:%s", ciphers, TLS_FORBIDDEN_CIPHERS);
	ok = SSL_CTX_set_cipher_list(c, list);
	free(list);
	if (ok != 1) {
		char *esc = str_escape(ciphers, 512);

		ERR_clear_error();
		*error_r = xasprintf("tls ciphers \"%s\": no usable cipher (weak ciphers are always removed)",
			  esc);
		free(esc);
		return -1;
	}
	/* DHE suites use the RFC 7919 groups matching the key size. */
	(void)SSL_CTX_set_dh_auto(c, 1);
	ERR_clear_error();
	return 0;
}

static void check_validity(const struct tls_settings *s, const char *path, X509 *x)
{
	char when[CERT_TIME_MAX];
	time_t soon = time(NULL) + TLS_EXPIRY_WARNING_SECONDS;

	if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
		(void)cert_time_iso(X509_get0_notAfter(x), when, sizeof(when));
		warnf(s, "%s: certificate expired on %s; clients that check certificates will refuse it",
		      path, when);
	} else if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0) {
		(void)cert_time_iso(X509_get0_notBefore(x), when, sizeof(when));
		warnf(s, "%s: certificate is not valid before %s; clients that check certificates "
		      "will refuse it", path, when);
	} else if (X509_cmp_time(X509_get0_notAfter(x), &soon) < 0) {
		(void)cert_time_iso(X509_get0_notAfter(x), when, sizeof(when));
		warnf(s, "%s: certificate expires soon, on %s", path, when);
	}
	ERR_clear_error();
}

/* Loads a certificate file and its key into c; errors name the files. */
static int load_pair(const char *cert_path, const char *key_path, struct tls_cert *c,
		     char **error_r)
{
	memset(c, 0, sizeof(*c));
	if (cert_read_chain(cert_path, &c->cert, &c->chain, error_r) < 0)
		return -1;
	c->path = xstrdup(cert_path);
	if (cert_read_key(key_path, &c->key, error_r) < 0)
		goto fail;
	if (!cert_key_matches(c->cert, c->key)) {
		*error_r = xasprintf("%s: key does not match certificate %s", key_path, cert_path);
		goto fail;
	}
	c->name_count = cert_dns_names(c->cert, &c->names);
	return 0;
fail:
	cert_deinit(c);
	return -1;
}

/* Checks that OpenSSL will use c on a connection (security level: an RSA
 * key under 2048 bits or a SHA-1 signature is refused there). */
static int probe_cert(SSL_CTX *ssl_ctx, const struct tls_cert *c, char **error_r)
{
	SSL *ssl = SSL_new(ssl_ctx);
	char reason[256];
	int ret = 0;

	if (ssl == NULL)
		panic("SSL_new failed: out of memory");
	SSL_certs_clear(ssl);
	if (SSL_use_cert_and_key(ssl, c->cert, c->key, c->chain, 1) != 1) {
		*error_r = xasprintf("%s: certificate not usable: %s", c->path,
			  ossl_reason(reason, sizeof(reason)));
		ret = -1;
	}
	SSL_free(ssl);
	return ret;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

/* The NAME of every NAME.crt in dir except server and request, sorted (so
 * the order, and which pair wins a tie, does not depend on readdir). */
static size_t list_sni_names(const struct tls_settings *s, char ***names_r)
{
	DIR *d = opendir(s->cert_dir);
	char **names = NULL;
	size_t count = 0, alloc = 0;
	struct dirent *de;

	*names_r = NULL;
	if (d == NULL) {
		if (errno != ENOENT)
			warnf(s, "%s: cannot read the certificate directory: %s", s->cert_dir,
			      strerror(errno));
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char *base;

		if (de->d_name[0] == '.' || len <= 4 || !str_has_suffix(de->d_name, ".crt"))
			continue;
		base = xstrndup(de->d_name, len - 4);
		if (strcmp(base, "server") == 0 || strcmp(base, "request") == 0) {
			free(base);
			continue;
		}
		if (count == TLS_MAX_SNI_CERTS) {
			warnf(s, "%s: more than %d per-host certificates; the others are not used",
			      s->cert_dir, TLS_MAX_SNI_CERTS);
			free(base);
			break;
		}
		if (count == alloc) {
			alloc = alloc == 0 ? 16 : alloc * 2;
			names = xreallocarray(names, alloc, sizeof(*names));
		}
		names[count++] = base;
	}
	closedir(d);
	if (count > 0)
		qsort(names, count, sizeof(*names), cmp_str);
	*names_r = names;
	return count;
}

static void load_sni_certs(struct tls_ctx *ctx, const struct tls_settings *s)
{
	char **names;
	size_t count = list_sni_names(s, &names);

	if (count > 0)
		ctx->certs = xreallocarray(ctx->certs, count + 1, sizeof(*ctx->certs));
	for (size_t i = 0; i < count; i++) {
		char *crt = xasprintf("%s/%s.crt", s->cert_dir, names[i]);
		char *key = xasprintf("%s/%s.key", s->cert_dir, names[i]);
		struct tls_cert *c = &ctx->certs[ctx->cert_count];
		struct stat st;
		char *error = NULL;

		if (same_file(crt, s->certificate)) {
			/* The default certificate has a name of its own. */
		} else if (stat(key, &st) < 0) {
			warnf(s, "%s: no key %s beside it; per-host certificate not used", crt, key);
		} else if (load_pair(crt, key, c, &error) < 0 || probe_cert(ctx->ssl_ctx, c, &error) < 0) {
			if (c->path != NULL)
				cert_deinit(c);
			warnf(s, "%s; per-host certificate not used", error);
		} else if (c->name_count == 0) {
			warnf(s, "%s: certificate names no host (no subjectAltName DNS entry); "
			      "per-host certificate not used", crt);
			cert_deinit(c);
		} else {
			check_validity(s, crt, c->cert);
			ctx->cert_count++;
		}
		free(error);
		free(crt);
		free(key);
		free(names[i]);
	}
	free(names);
}

int tls_ctx_new(const struct tls_settings *s, struct tls_ctx **ctx_r, char **error_r)
{
	struct tls_ctx *ctx;
	struct tls_cert *def;
	char reason[256];
	int min_version;

	if (parse_min_version(s->min_version, &min_version, error_r) < 0)
		return -1;
	if (s->certificate == NULL || s->key == NULL) {
		*error_r = xasprintf("no TLS certificate or key configured");
		return -1;
	}
	ctx = xcalloc(1, sizeof(*ctx));
	atomic_init(&ctx->refcount, 1);
	ctx->ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (ctx->ssl_ctx == NULL) {
		*error_r = xasprintf("cannot create a TLS context: %s", ossl_reason(reason, sizeof(reason)));
		goto fail;
	}
	if (configure_common(ctx->ssl_ctx, min_version,
			     s->ciphers != NULL ? s->ciphers : TLS_DEFAULT_CIPHERS, error_r) < 0)
		goto fail;
	if (s->prefer_server_ciphers)
		SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* No tickets: a ticket key living as long as the process would let
	 * whoever obtains it decrypt every recorded session resumed with it.
	 * The server-side cache gives resumption (TLS 1.3 then sends stateful
	 * tickets, which are just cache ids) and dies with this context. */
	SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx->ssl_ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx->ssl_ctx, TLS_SESSION_CACHE_SIZE);
	SSL_CTX_set_timeout(ctx->ssl_ctx, TLS_SESSION_TIMEOUT);
	if (SSL_CTX_set_session_id_context(ctx->ssl_ctx, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
					   sizeof(TLS_SESSION_ID_CONTEXT) - 1) != 1)
		panic("SSL_CTX_set_session_id_context failed");
	SSL_CTX_set_tlsext_servername_callback(ctx->ssl_ctx, servername_cb);

	/* The default certificate: must load. */
	ctx->certs = xcalloc(1, sizeof(*ctx->certs));
	def = &ctx->certs[0];
	if (load_pair(s->certificate, s->key, def, error_r) < 0)
		goto fail;
	ctx->cert_count = 1;
	if (SSL_CTX_use_cert_and_key(ctx->ssl_ctx, def->cert, def->key, def->chain, 1) != 1) {
		*error_r = xasprintf("%s: certificate not usable: %s", s->certificate,
			  ossl_reason(reason, sizeof(reason)));
		goto fail;
	}
	check_validity(s, s->certificate, def->cert);

	if (s->cert_dir != NULL)
		load_sni_certs(ctx, s);
	ERR_clear_error();
	*ctx_r = ctx;
	return 0;
fail:
	ctx_free(ctx);
	ERR_clear_error();
	return -1;
}

int tls_ctx_new_from_cfg(const struct cfg *cfg, tls_warning_fn *warn, void *warn_context,
			 struct tls_ctx **ctx_r, char **error_r)
{
	struct tls_settings s;
	char *cert = cfg_path(cfg, cfg->s.tls_certificate);
	char *key = cfg_path(cfg, cfg->s.tls_key);
	char *dir = cfg_path(cfg, "sslcert");
	int ret;

	memset(&s, 0, sizeof(s));
	s.certificate = cert;
	s.key = key;
	s.cert_dir = dir;
	s.min_version = cfg->s.tls_min_version;
	s.ciphers = cfg->s.tls_ciphers;
	s.prefer_server_ciphers = cfg->s.tls_prefer_server_ciphers;
	s.warn = warn;
	s.warn_context = warn_context;
	ret = tls_ctx_new(&s, ctx_r, error_r);
	free(cert);
	free(key);
	free(dir);
	return ret;
}

SSL *tls_ctx_new_ssl(struct tls_ctx *ctx)
{
	SSL *ssl = SSL_new(ctx->ssl_ctx);

	if (ssl == NULL)
		panic("SSL_new failed: out of memory");
	if (SSL_set_ex_data(ssl, ex_index(), tls_ctx_ref(ctx)) != 1)
		panic("SSL_set_ex_data failed: out of memory");
	return ssl;
}

char *tls_session_describe(const SSL *ssl)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);

	return xasprintf("%s %s", SSL_get_version(ssl),
			 cipher != NULL ? SSL_CIPHER_get_name(cipher) : "(no cipher)");
}

/* --- The current context ----------------------------------------------- */

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_ctx *current_ctx;

struct tls_ctx *tls_current(void)
{
	struct tls_ctx *ctx;

	pthread_mutex_lock(&current_lock);
	ctx = current_ctx != NULL ? tls_ctx_ref(current_ctx) : NULL;
	pthread_mutex_unlock(&current_lock);
	return ctx;
}

void tls_set_current(struct tls_ctx *ctx)
{
	struct tls_ctx *old;

	pthread_mutex_lock(&current_lock);
	old = current_ctx;
	current_ctx = ctx;
	pthread_mutex_unlock(&current_lock);
	/* Outside the lock: the last unref frees OpenSSL objects. */
	tls_ctx_unref(&old);
}

/* --- Client side (outbound SMTP) --------------------------------------- */

int tls_client_ctx_new(bool verify, const char *ca_file, SSL_CTX **ctx_r, char **error_r)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	char reason[256];

	if (c == NULL) {
		*error_r = xasprintf("cannot create a TLS context: %s", ossl_reason(reason, sizeof(reason)));
		return -1;
	}
	/* A broader list than the server's: for opportunistic TLS the
	 * alternative to an older cipher is plaintext (RFC 7435).  The
	 * forbidden suites stay forbidden. */
	if (configure_common(c, TLS1_2_VERSION, "DEFAULT", error_r) < 0)
		goto fail;
	if (verify) {
		int ok = ca_file != NULL ? SSL_CTX_load_verify_locations(c, ca_file, NULL)
					 : SSL_CTX_set_default_verify_paths(c);

		if (ok != 1) {
			*error_r = xasprintf("%s: cannot load CA certificates: %s",
				  ca_file != NULL ? ca_file : "system CA store",
				  ossl_reason(reason, sizeof(reason)));
			goto fail;
		}
		SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
	}
	ERR_clear_error();
	*ctx_r = c;
	return 0;
fail:
	SSL_CTX_free(c);
	ERR_clear_error();
	return -1;
}

int tls_client_new_ssl(SSL_CTX *ctx, const char *server_name, SSL **ssl_r, char **error_r)
{
	bool verify = (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) != 0;
	unsigned char addr[16];
	bool is_ip;
	SSL *ssl;

	if (server_name == NULL || server_name[0] == '\0' || strlen(server_name) > TLS_MAX_SNI) {
		*error_r = xasprintf("invalid TLS server name");
		return -1;
	}
	is_ip = inet_pton(AF_INET, server_name, addr) == 1 || inet_pton(AF_INET6, server_name, addr) == 1;
	ssl = SSL_new(ctx);
	if (ssl == NULL)
		panic("SSL_new failed: out of memory");
	/* RFC 6066 3: no SNI for an address literal. */
	if (!is_ip && SSL_set_tlsext_host_name(ssl, server_name) != 1)
		goto fail;
	if (verify) {
		/* Without a name to check, any valid certificate would pass:
		 * failing to set it is an error, never a silent skip. */
		if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name) != 1
			  : SSL_set1_host(ssl, server_name) != 1)
			goto fail;
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	}
	*ssl_r = ssl;
	return 0;
fail: {
	char *esc = str_escape(server_name, 80);

	*error_r = xasprintf("invalid TLS server name \"%s\"", esc);
	free(esc);
	SSL_free(ssl);
	ERR_clear_error();
	return -1;
}
}

/* --- libevent ------------------------------------------------------------ */

#define TLS_BEV_OPTIONS (BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS | BEV_OPT_THREADSAFE)

struct bufferevent *tls_bufferevent_accept(struct event_base *base, evutil_socket_t fd,
					   struct tls_ctx *ctx)
{
	SSL *ssl = tls_ctx_new_ssl(ctx);
	struct bufferevent *bev;

	bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, TLS_BEV_OPTIONS);
	/* libevent 2.1 fails here only when an allocation fails, and then it
	 * may or may not have freed ssl and closed fd: no clean way back. */
	if (bev == NULL)
		panic("bufferevent_openssl_socket_new failed: out of memory");
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

struct bufferevent *tls_bufferevent_starttls(struct bufferevent *underlying, struct tls_ctx *ctx)
{
	struct bufferevent *bev;
	SSL *ssl;

	/* CVE-2011-0411: plaintext pipelined after STARTTLS must never be
	 * read as if it came through TLS.  The caller checked; check again. */
	if (evbuffer_get_length(bufferevent_get_input(underlying)) != 0)
		return NULL;
	ssl = tls_ctx_new_ssl(ctx);
	bev = bufferevent_openssl_filter_new(bufferevent_get_base(underlying), underlying, ssl,
					     BUFFEREVENT_SSL_ACCEPTING, TLS_BEV_OPTIONS);
	if (bev == NULL)
		panic("bufferevent_openssl_filter_new failed: out of memory");
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}
