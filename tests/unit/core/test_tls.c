/* Unit tests for the TLS layer (core/tls.c): loading, policy, SNI, and
 * in-memory handshakes between a client SSL and the server SSL over a BIO
 * pair, plus the two libevent constructors over a socketpair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/cert.h"
#include "core/fileio.h"
#include "core/tls.h"

static char dir[64];        /* scanned certificate directory */
static char other_dir[80];  /* files that must not be scanned */

static char *path_in(const char *d, const char *name)
{
	return xasprintf("%s/%s", d, name);
}

static void write_file(const char *path, const char *data)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(data, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void copy_file(const char *from, const char *to)
{
	char *data;
	size_t len;
	FILE *f;

	assert_int_equal(fileio_read_all(from, 1 << 20, &data, &len), 0);
	f = fopen(to, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	free(data);
}

static void generate(const char *d, const char *base, const char *host)
{
	char *crt = xasprintf("%s/%s.crt", d, base), *key = xasprintf("%s/%s.key", d, base);
	char *error = NULL;

	if (cert_generate_self_signed(host, crt, key, 30, &error) < 0)
		fail_msg("generate %s: %s", host, error);
	free(crt);
	free(key);
}

static void remove_tree(const char *d)
{
	DIR *dh = opendir(d);
	struct dirent *de;

	while (dh != NULL && (de = readdir(dh)) != NULL) {
		char *p;
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		p = path_in(d, de->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			remove_tree(p);
		else
			unlink(p);
		free(p);
	}
	if (dh != NULL)
		closedir(dh);
	rmdir(d);
}

static int group_setup(void **state)
{
	char *p, *q;

	snprintf(dir, sizeof(dir), "/tmp/petrel-tls-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(other_dir, sizeof(other_dir), "%s/other", dir);
	if (mkdir(other_dir, 0700) < 0)
		return -1;
	generate(dir, "server", "mail.example.com");
	generate(dir, "other", "other.example.org");
	generate(dir, "wild", "*.wild.example.net");
	/* Not loaded: a pending request, a certificate without key, junk. */
	p = path_in(dir, "other.crt");
	q = path_in(dir, "request.crt");
	copy_file(p, q);
	free(q);
	q = path_in(dir, "stray.crt");
	copy_file(p, q);
	free(q);
	free(p);
	p = path_in(dir, "other.key");
	q = path_in(dir, "request.key");
	copy_file(p, q);
	free(q);
	free(p);
	p = path_in(dir, "broken.crt");
	write_file(p, "this is not a certificate\n");
	free(p);
	p = path_in(dir, "broken.key");
	write_file(p, "nor is this a key\n");
	free(p);
	/* Outside the scanned directory. */
	generate(other_dir, "alt", "alt.example.com");
	return 0;
}

static int group_teardown(void **state)
{
	remove_tree(dir);
	return 0;
}

/* Collects warnings in one string, one per line. */
struct warnings {
	char text[8192];
	size_t len;
	int count;
};

static void collect_warning(const char *warning, void *context)
{
	struct warnings *w = context;
	int n = snprintf(w->text + w->len, sizeof(w->text) - w->len, "%s\n", warning);

	if (n > 0 && (size_t)n < sizeof(w->text) - w->len)
		w->len += (size_t)n;
	w->count++;
}

static void settings_init(struct tls_settings *s, struct warnings *w)
{
	static char crt[128], key[128];

	snprintf(crt, sizeof(crt), "%s/server.crt", dir);
	snprintf(key, sizeof(key), "%s/server.key", dir);
	memset(s, 0, sizeof(*s));
	s->certificate = crt;
	s->key = key;
	s->cert_dir = dir;
	s->min_version = "1.2";
	s->ciphers = TLS_DEFAULT_CIPHERS;
	s->prefer_server_ciphers = true;
	memset(w, 0, sizeof(*w));
	s->warn = collect_warning;
	s->warn_context = w;
}

static struct tls_ctx *new_ctx(const struct tls_settings *s)
{
	struct tls_ctx *ctx = NULL;
	char *error = NULL;

	if (tls_ctx_new(s, &ctx, &error) < 0)
		fail_msg("tls_ctx_new: %s", error);
	assert_int_equal(ERR_peek_error(), 0);
	return ctx;
}

static void expect_error(const struct tls_settings *s, const char *needle)
{
	struct tls_ctx *ctx = NULL;
	char *error = NULL;

	assert_int_equal(tls_ctx_new(s, &ctx, &error), -1);
	assert_null(ctx);
	assert_non_null(error);
	if (strstr(error, needle) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", error, needle);
	assert_int_equal(ERR_peek_error(), 0);
	free(error);
}

/* --- Loading ------------------------------------------------------------ */

static void test_load_default_and_sni(void **state)
{
	struct tls_settings s;
	struct warnings w;
	struct tls_ctx *ctx;

	settings_init(&s, &w);
	ctx = new_ctx(&s);
	/* server + other + wild; not request, stray (no key) or broken. */
	assert_int_equal(tls_ctx_cert_count(ctx), 3);
	assert_non_null(strstr(w.text, "stray.crt: no key"));
	assert_non_null(strstr(w.text, "broken.crt: not a PEM certificate"));
	assert_null(strstr(w.text, "request"));
	assert_int_equal(w.count, 2);
	tls_ctx_unref(&ctx);
	assert_null(ctx);

	/* Without a directory: only the default certificate. */
	s.cert_dir = NULL;
	ctx = new_ctx(&s);
	assert_int_equal(tls_ctx_cert_count(ctx), 1);
	tls_ctx_unref(&ctx);
	tls_ctx_unref(&ctx);   /* NULL is fine */
}

static void test_key_mismatch(void **state)
{
	struct tls_settings s;
	struct warnings w;
	char *key = path_in(dir, "other.key"), *msg;

	settings_init(&s, &w);
	s.key = key;
	msg = xasprintf("%s: key does not match certificate %s", key, s.certificate);
	expect_error(&s, msg);
	free(msg);
	free(key);
}

static void test_not_a_certificate(void **state)
{
	struct tls_settings s;
	struct warnings w;
	char *crt = path_in(other_dir, "notcert.pem"), *msg;

	write_file(crt, "hello\nworld\n");
	settings_init(&s, &w);
	s.certificate = crt;
	msg = xasprintf("%s: not a PEM certificate", crt);
	expect_error(&s, msg);
	free(msg);

	/* A key where the certificate should be. */
	settings_init(&s, &w);
	s.certificate = s.key;
	msg = xasprintf("%s: not a PEM certificate", s.key);
	expect_error(&s, msg);
	free(msg);

	/* A certificate where the key should be. */
	settings_init(&s, &w);
	s.key = s.certificate;
	msg = xasprintf("%s: not a PEM private key", s.certificate);
	expect_error(&s, msg);
	free(msg);

	/* Missing file. */
	settings_init(&s, &w);
	s.certificate = "/nonexistent/petrel.crt";
	expect_error(&s, "/nonexistent/petrel.crt: cannot read");
	unlink(crt);
	free(crt);
}

static void test_encrypted_key_refused(void **state)
{
	struct tls_settings s;
	struct warnings w;
	char *keyfile = path_in(other_dir, "enc.key");
	EVP_PKEY *key = NULL;
	char *error = NULL;
	BIO *bio;

	settings_init(&s, &w);
	assert_int_equal(cert_read_key(s.key, &key, &error), 0);
	bio = BIO_new_file(keyfile, "w");
	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, key, EVP_aes_128_cbc(), "secret", 6,
						       NULL, NULL), 1);
	BIO_free(bio);
	EVP_PKEY_free(key);
	s.key = keyfile;
	expect_error(&s, "the private key is encrypted");
	unlink(keyfile);
	free(keyfile);
}

static void test_min_version(void **state)
{
	static const char *const bad[] = { "1.0", "1.1", "1", "", "1.4", "tls1.2", "1.2 ", "SSLv3" };
	struct tls_settings s;
	struct warnings w;
	struct tls_ctx *ctx;

	settings_init(&s, &w);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s.min_version = bad[i];
		expect_error(&s, "is not allowed (use 1.2 or 1.3)");
	}
	s.min_version = "1.0";
	expect_error(&s, "tls min-version \"1.0\" is not allowed");
	s.min_version = "1.3";
	ctx = new_ctx(&s);
	tls_ctx_unref(&ctx);
	s.min_version = NULL;
	ctx = new_ctx(&s);
	tls_ctx_unref(&ctx);
}

static void test_ciphers(void **state)
{
	struct tls_settings s;
	struct warnings w;
	struct tls_ctx *ctx;

	settings_init(&s, &w);
	s.ciphers = "NO-SUCH-CIPHER";
	expect_error(&s, "no usable cipher");
	/* Only forbidden suites: nothing is left. */
	s.ciphers = "RC4-MD5:DES-CBC3-SHA:aNULL";
	expect_error(&s, "no usable cipher");
	s.ciphers = NULL;
	ctx = new_ctx(&s);
	tls_ctx_unref(&ctx);
}

/* Re-signs a copy of the default certificate with validity in the past. */
static char *make_expired_copy(void)
{
	struct tls_settings s;
	struct warnings w;
	char *out = path_in(other_dir, "expired.crt");
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	char *error = NULL;
	BIO *bio;

	settings_init(&s, &w);
	assert_int_equal(cert_read_chain(s.certificate, &x, NULL, &error), 0);
	assert_int_equal(cert_read_key(s.key, &key, &error), 0);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -10L * 86400));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), -2L * 86400));
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	bio = BIO_new_file(out, "w");
	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_X509(bio, x), 1);
	BIO_free(bio);
	X509_free(x);
	EVP_PKEY_free(key);
	return out;
}

static void test_expired_loads_with_warning(void **state)
{
	struct tls_settings s;
	struct warnings w;
	struct tls_ctx *ctx;
	char *crt = make_expired_copy();

	settings_init(&s, &w);
	s.certificate = crt;
	s.cert_dir = NULL;
	ctx = new_ctx(&s);
	assert_int_equal(w.count, 1);
	assert_non_null(strstr(w.text, "certificate expired on "));
	assert_non_null(strstr(w.text, crt));
	tls_ctx_unref(&ctx);
	unlink(crt);
	free(crt);
}

static void test_expiring_soon_warns(void **state)
{
	struct tls_settings s;
	struct warnings w;
	struct tls_ctx *ctx;
	char *crt = path_in(other_dir, "soon.crt"), *key = path_in(other_dir, "soon.key");
	char *error = NULL;

	assert_int_equal(cert_generate_self_signed("soon.example.com", crt, key, 3, &error), 0);
	settings_init(&s, &w);
	s.certificate = crt;
	s.key = key;
	s.cert_dir = NULL;
	ctx = new_ctx(&s);
	assert_non_null(strstr(w.text, "certificate expires soon"));
	tls_ctx_unref(&ctx);
	unlink(crt);
	unlink(key);
	free(crt);
	free(key);
}

/* --- Handshakes over a BIO pair ----------------------------------------- */

struct hs_result {
	bool ok;
	unsigned long server_error;   /* first OpenSSL error on the server side */
	char peer_cn[256];            /* CN of the certificate the client got */
	char *description;            /* tls_session_describe(server) */
};

static SSL_CTX *client_ctx_new(int min, int max)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());

	assert_non_null(c);
	if (min != 0 || max != 0) {
		/* Old versions need security level 0 in OpenSSL 3, or the
		 * client would not even offer them. */
		SSL_CTX_set_security_level(c, 0);
		assert_int_equal(SSL_CTX_set_cipher_list(c, "DEFAULT:@SECLEVEL=0"), 1);
		assert_int_equal(SSL_CTX_set_min_proto_version(c, min), 1);
		assert_int_equal(SSL_CTX_set_max_proto_version(c, max), 1);
	}
	SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
	return c;
}

static int step(SSL *ssl, bool *done)
{
	int r, e;

	if (*done)
		return 0;
	r = SSL_do_handshake(ssl);
	if (r == 1) {
		*done = true;
		return 0;
	}
	e = SSL_get_error(ssl, r);
	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/* Runs a handshake between a new client SSL (from cctx, with sni when not
 * NULL; sni_len lets a test send any bytes) and server (consumed). */
static void handshake(SSL_CTX *cctx, SSL *server, const char *sni, struct hs_result *res)
{
	SSL *client = SSL_new(cctx);
	BIO *cbio, *sbio;
	bool cdone = false, sdone = false;

	memset(res, 0, sizeof(*res));
	assert_non_null(client);
	assert_int_equal(BIO_new_bio_pair(&cbio, 0, &sbio, 0), 1);
	SSL_set_bio(client, cbio, cbio);
	SSL_set_bio(server, sbio, sbio);
	SSL_set_connect_state(client);
	SSL_set_accept_state(server);
	if (sni != NULL)
		assert_int_equal(SSL_set_tlsext_host_name(client, sni), 1);
	for (int i = 0; i < 50 && !(cdone && sdone); i++) {
		if (step(client, &cdone) < 0)
			break;
		if (step(server, &sdone) < 0) {
			res->server_error = ERR_peek_error();
			break;
		}
	}
	ERR_clear_error();
	res->ok = cdone && sdone;
	if (res->ok) {
		X509 *peer = SSL_get0_peer_certificate(client);

		assert_non_null(peer);
		assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName,
						      res->peer_cn, sizeof(res->peer_cn)) > 0);
		res->description = tls_session_describe(server);
	}
	SSL_free(client);
	SSL_free(server);
}

static struct tls_ctx *default_ctx(const char *min_version)
{
	struct tls_settings s;
	struct warnings w;

	settings_init(&s, &w);
	s.min_version = min_version;
	return new_ctx(&s);
}

static void test_handshake_tls13(void **state)
{
	struct tls_ctx *ctx = default_ctx("1.2");
	SSL_CTX *cctx = client_ctx_new(0, 0);
	struct hs_result res;

	handshake(cctx, tls_ctx_new_ssl(ctx), NULL, &res);
	assert_true(res.ok);
	assert_string_equal(res.peer_cn, "mail.example.com");
	assert_non_null(res.description);
	assert_true(strncmp(res.description, "TLSv1.3 TLS_", 12) == 0);
	free(res.description);
	SSL_CTX_free(cctx);
	tls_ctx_unref(&ctx);
}

static void test_handshake_tls12(void **state)
{
	struct tls_ctx *ctx = default_ctx("1.2");
	SSL_CTX *cctx = client_ctx_new(TLS1_2_VERSION, TLS1_2_VERSION);
	struct hs_result res;

	handshake(cctx, tls_ctx_new_ssl(ctx), NULL, &res);
	assert_true(res.ok);
	/* Forward secrecy, AEAD: what the default list allows. */
	assert_true(strncmp(res.description, "TLSv1.2 ECDHE-RSA-", 18) == 0);
	assert_true(strstr(res.description, "GCM") != NULL ||
		    strstr(res.description, "CHACHA20") != NULL);
	free(res.description);
	SSL_CTX_free(cctx);
	tls_ctx_unref(&ctx);
}

static void test_old_versions_refused(void **state)
{
	static const int versions[] = { TLS1_VERSION, TLS1_1_VERSION };
	struct tls_ctx *ctx = default_ctx("1.2");
	struct hs_result res;

	for (size_t i = 0; i < 2; i++) {
		SSL_CTX *cctx = client_ctx_new(versions[i], versions[i]);

		handshake(cctx, tls_ctx_new_ssl(ctx), NULL, &res);
		assert_false(res.ok);
		/* Refused by the server because of the version, not by accident. */
		assert_int_equal(ERR_GET_REASON(res.server_error), SSL_R_UNSUPPORTED_PROTOCOL);
		SSL_CTX_free(cctx);
	}
	tls_ctx_unref(&ctx);

	/* min-version 1.3 refuses a TLS 1.2 client. */
	ctx = default_ctx("1.3");
	{
		SSL_CTX *cctx = client_ctx_new(TLS1_2_VERSION, TLS1_2_VERSION);

		handshake(cctx, tls_ctx_new_ssl(ctx), NULL, &res);
		assert_false(res.ok);
		assert_int_equal(ERR_GET_REASON(res.server_error), SSL_R_UNSUPPORTED_PROTOCOL);
		SSL_CTX_free(cctx);
	}
	tls_ctx_unref(&ctx);
}

static void test_sni_selects_certificate(void **state)
{
	static const struct {
		const char *sni;
		const char *cn;
	} rows[] = {
		{ "other.example.org", "other.example.org" },
		{ "OTHER.Example.ORG", "other.example.org" },
		{ "other.example.org.", "other.example.org" },
		{ "a.wild.example.net", "*.wild.example.net" },
		{ "MAIL-1.Wild.Example.Net", "*.wild.example.net" },
		/* The wildcard covers one label only. */
		{ "b.a.wild.example.net", "mail.example.com" },
		{ "wild.example.net", "mail.example.com" },
		{ ".wild.example.net", "mail.example.com" },
		{ "mail.example.com", "mail.example.com" },
		{ "localhost", "mail.example.com" },
		{ "unknown.test", "mail.example.com" },
		{ "other.example.org.evil", "mail.example.com" },
		{ "xother.example.org", "mail.example.com" },
	};
	struct tls_ctx *ctx = default_ctx("1.2");
	SSL_CTX *cctx13 = client_ctx_new(0, 0);
	SSL_CTX *cctx12 = client_ctx_new(TLS1_2_VERSION, TLS1_2_VERSION);
	struct hs_result res;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		for (int v = 0; v < 2; v++) {
			handshake(v == 0 ? cctx13 : cctx12, tls_ctx_new_ssl(ctx), rows[i].sni, &res);
			if (!res.ok)
				fail_msg("SNI \"%s\": handshake failed", rows[i].sni);
			if (strcmp(res.peer_cn, rows[i].cn) != 0)
				fail_msg("SNI \"%s\": got %s, expected %s", rows[i].sni, res.peer_cn,
					 rows[i].cn);
			free(res.description);
		}
	}
	SSL_CTX_free(cctx13);
	SSL_CTX_free(cctx12);
	tls_ctx_unref(&ctx);
}

/* HOSTILE-INPUT row 24: odd SNI values complete with the default cert. */
static void test_sni_hostile_values(void **state)
{
	char long_name[256];
	char long_labels[256];
	const char *rows[] = {
		"x\\", "\\", "x\\\\", "\xc3\xa9xample.com", "\xff\xfe\x80", "a..b", "..", ".",
		"*", "*.", "*.wild.example.net.", "%s%n%x", "\x1b[31mred", "-", "a b",
		long_name, long_labels,
	};
	struct tls_ctx *ctx = default_ctx("1.2");
	SSL_CTX *cctx = client_ctx_new(0, 0);
	struct hs_result res;

	memset(long_name, 'a', 255);
	long_name[255] = '\0';
	for (size_t i = 0; i < 255; i++)
		long_labels[i] = i % 2 == 0 ? 'b' : '.';
	long_labels[255] = '\0';
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		handshake(cctx, tls_ctx_new_ssl(ctx), rows[i], &res);
		if (!res.ok)
			fail_msg("SNI row %zu: handshake failed", i);
		/* A literal "*.wild..." is just a name the wildcard covers. */
		if (strncmp(rows[i], "*.wild", 6) == 0)
			assert_string_equal(res.peer_cn, "*.wild.example.net");
		else
			assert_string_equal(res.peer_cn, "mail.example.com");
		free(res.description);
	}
	SSL_CTX_free(cctx);
	tls_ctx_unref(&ctx);
}

static void test_name_match(void **state)
{
	static const struct {
		const char *pattern, *name;
		bool match;
	} rows[] = {
		{ "mail.example.com", "mail.example.com", true },
		{ "mail.example.com", "MAIL.EXAMPLE.COM", true },
		{ "mail.example.com", "mail.example.com.", true },
		{ "mail.example.com", "mail.example.com..", false },
		{ "mail.example.com", "mail.example.co", false },
		{ "mail.example.com", "mail.example.comx", false },
		{ "mail.example.com", "", false },
		{ "mail.example.com", ".", false },
		{ "*.example.com", "a.example.com", true },
		{ "*.example.com", "A-1.EXAMPLE.com", true },
		{ "*.example.com", "example.com", false },
		{ "*.example.com", ".example.com", false },
		{ "*.example.com", "a.b.example.com", false },
		{ "*.example.com", "a.example.com.", true },
		{ "*.example.com", "aexample.com", false },
		{ "*.com", "example.com", false },
		{ "*.", "a.", false },
		{ "*", "a", false },
		{ "f*.example.com", "foo.example.com", false },
		{ "*.*.example.com", "a.b.example.com", false },
		{ "\xc3\xa9.com", "\xc3\x89.com", false },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		bool got = tls_name_match(rows[i].pattern, rows[i].name, strlen(rows[i].name));

		if (got != rows[i].match)
			fail_msg("tls_name_match(\"%s\", \"%s\") = %d", rows[i].pattern, rows[i].name, got);
	}
	/* Length is what counts, not a NUL: embedded NUL never matches. */
	assert_false(tls_name_match("a.example.com", "a.example.com\0x", 15));
	assert_true(tls_name_match("a.example.com", "a.example.comXYZ", 13));
}

/* An SSL keeps its context alive after the last other reference is gone
 * (a reload while connections are in their handshake). */
static void test_ssl_outlives_ctx(void **state)
{
	struct tls_ctx *ctx = default_ctx("1.2");
	SSL_CTX *cctx = client_ctx_new(0, 0);
	SSL *server = tls_ctx_new_ssl(ctx);
	struct hs_result res;

	tls_ctx_unref(&ctx);
	handshake(cctx, server, "other.example.org", &res);
	assert_true(res.ok);
	assert_string_equal(res.peer_cn, "other.example.org");
	free(res.description);
	SSL_CTX_free(cctx);
}

static void test_current(void **state)
{
	struct tls_ctx *a = default_ctx("1.2"), *b = default_ctx("1.3"), *cur;

	assert_null(tls_current());
	tls_set_current(tls_ctx_ref(a));
	cur = tls_current();
	assert_ptr_equal(cur, a);
	tls_ctx_unref(&cur);
	/* Swap: the holder of the old one keeps a working context. */
	cur = tls_current();
	tls_set_current(tls_ctx_ref(b));
	tls_ctx_unref(&a);
	{
		SSL *ssl = tls_ctx_new_ssl(cur);

		SSL_free(ssl);
	}
	tls_ctx_unref(&cur);
	cur = tls_current();
	assert_ptr_equal(cur, b);
	tls_ctx_unref(&cur);
	tls_set_current(NULL);
	assert_null(tls_current());
	tls_ctx_unref(&b);
}

/* --- Client context ---------------------------------------------------- */

static void test_client_ctx(void **state)
{
	struct tls_ctx *ctx = default_ctx("1.2");
	char *ca = path_in(dir, "server.crt");
	SSL_CTX *cctx = NULL;
	SSL *client = NULL, *server;
	char *error = NULL;
	BIO *cbio, *sbio;
	bool cdone = false, sdone = false;
	static const char *const names[] = { "mail.example.com", "wrong.example.com" };

	assert_int_equal(tls_client_ctx_new(true, "/nonexistent/ca.pem", &cctx, &error), -1);
	assert_non_null(strstr(error, "/nonexistent/ca.pem: cannot load CA certificates"));
	free(error);
	error = NULL;
	assert_int_equal(tls_client_ctx_new(false, NULL, &cctx, &error), 0);
	assert_int_equal(tls_client_new_ssl(cctx, "", &client, &error), -1);
	free(error);
	error = NULL;
	assert_int_equal(tls_client_new_ssl(cctx, "192.0.2.1", &client, &error), 0);
	SSL_free(client);
	SSL_CTX_free(cctx);

	/* Verifying against the self-signed certificate as the only anchor. */
	assert_int_equal(tls_client_ctx_new(true, ca, &cctx, &error), 0);
	X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(cctx), X509_V_FLAG_PARTIAL_CHAIN);
	for (int i = 0; i < 2; i++) {
		cdone = sdone = false;
		assert_int_equal(tls_client_new_ssl(cctx, names[i], &client, &error), 0);
		server = tls_ctx_new_ssl(ctx);
		assert_int_equal(BIO_new_bio_pair(&cbio, 0, &sbio, 0), 1);
		SSL_set_bio(client, cbio, cbio);
		SSL_set_bio(server, sbio, sbio);
		SSL_set_connect_state(client);
		SSL_set_accept_state(server);
		for (int j = 0; j < 50 && !(cdone && sdone); j++) {
			if (step(client, &cdone) < 0 || step(server, &sdone) < 0)
				break;
		}
		ERR_clear_error();
		if (i == 0) {
			assert_true(cdone && sdone);
			assert_int_equal(SSL_get_verify_result(client), X509_V_OK);
		} else {
			assert_false(cdone);
			assert_int_equal(SSL_get_verify_result(client), X509_V_ERR_HOSTNAME_MISMATCH);
		}
		SSL_free(client);
		SSL_free(server);
	}
	SSL_CTX_free(cctx);
	free(ca);
	tls_ctx_unref(&ctx);
}

/* --- libevent ---------------------------------------------------------- */

struct bev_test {
	struct event_base *base;
	struct bufferevent *server, *client;
	char received[64];
	size_t received_len;
	short server_events;
	char *description;
};

static void server_read_cb(struct bufferevent *bev, void *arg)
{
	struct bev_test *t = arg;
	size_t n = bufferevent_read(bev, t->received + t->received_len,
				    sizeof(t->received) - 1 - t->received_len);

	t->received_len += n;
	t->received[t->received_len] = '\0';
	if (strstr(t->received, "hello\r\n") != NULL && t->description == NULL) {
		t->description = tls_session_describe(bufferevent_openssl_get_ssl(bev));
		/* End the stream without close_notify: a dirty shutdown.  (Not
		 * close(): unread data there would make it a reset.) */
		assert_int_equal(shutdown(bufferevent_getfd(t->client), SHUT_WR), 0);
	}
}

static void server_event_cb(struct bufferevent *bev, short events, void *arg)
{
	struct bev_test *t = arg;

	if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		t->server_events = events;
		event_base_loopexit(t->base, NULL);
	}
}

static void client_event_cb(struct bufferevent *bev, short events, void *arg)
{
	struct bev_test *t = arg;

	if (events & BEV_EVENT_CONNECTED)
		assert_int_equal(bufferevent_write(bev, "hello\r\n", 7), 0);
	else if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		event_base_loopexit(t->base, NULL);
}

static void run_exchange(struct bev_test *t, int client_fd)
{
	SSL_CTX *cctx = client_ctx_new(0, 0);
	struct timeval limit = { 10, 0 };

	t->client = bufferevent_openssl_socket_new(t->base, client_fd, SSL_new(cctx),
						   BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(t->client);
	bufferevent_setcb(t->server, server_read_cb, NULL, server_event_cb, t);
	bufferevent_setcb(t->client, NULL, NULL, client_event_cb, t);
	assert_int_equal(bufferevent_enable(t->server, EV_READ | EV_WRITE), 0);
	assert_int_equal(bufferevent_enable(t->client, EV_READ | EV_WRITE), 0);
	event_base_loopexit(t->base, &limit);
	assert_int_equal(event_base_dispatch(t->base), 0);
	bufferevent_free(t->client);
	bufferevent_free(t->server);
	SSL_CTX_free(cctx);

	assert_string_equal(t->received, "hello\r\n");
	assert_non_null(t->description);
	assert_true(strncmp(t->description, "TLSv1.3 ", 8) == 0);
	free(t->description);
	/* The client closed without close_notify: EOF, not an error. */
	assert_int_equal(t->server_events & (BEV_EVENT_EOF | BEV_EVENT_ERROR), BEV_EVENT_EOF);
	ERR_clear_error();
}

static void test_bufferevent_accept(void **state)
{
	struct tls_ctx *ctx = default_ctx("1.2");
	struct bev_test t;
	int fds[2];

	memset(&t, 0, sizeof(t));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	assert_int_equal(evutil_make_socket_nonblocking(fds[0]), 0);
	assert_int_equal(evutil_make_socket_nonblocking(fds[1]), 0);
	t.base = event_base_new();
	assert_non_null(t.base);
	t.server = tls_bufferevent_accept(t.base, fds[0], ctx);
	assert_non_null(t.server);
	/* The bufferevent's SSL holds its own reference. */
	tls_ctx_unref(&ctx);
	run_exchange(&t, fds[1]);
	event_base_free(t.base);
}

static void plain_read_cb(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_input(bev)) >= 6)
		event_base_loopbreak(arg);
}

static void test_bufferevent_starttls(void **state)
{
	struct tls_ctx *ctx = default_ctx("1.2");
	struct bufferevent *plain;
	struct bev_test t;
	int fds[2];

	memset(&t, 0, sizeof(t));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	assert_int_equal(evutil_make_socket_nonblocking(fds[0]), 0);
	assert_int_equal(evutil_make_socket_nonblocking(fds[1]), 0);
	t.base = event_base_new();
	assert_non_null(t.base);
	plain = bufferevent_socket_new(t.base, fds[0], BEV_OPT_CLOSE_ON_FREE | BEV_OPT_THREADSAFE);
	assert_non_null(plain);

	/* CVE-2011-0411: pipelined plaintext after STARTTLS is refused and
	 * the plaintext bufferevent is left to the caller, unchanged. */
	assert_int_equal(write(fds[1], "RSET\r\n", 6), 6);
	bufferevent_setcb(plain, plain_read_cb, NULL, NULL, t.base);
	assert_int_equal(bufferevent_enable(plain, EV_READ), 0);
	assert_int_equal(event_base_dispatch(t.base), 0);
	assert_int_equal(bufferevent_disable(plain, EV_READ), 0);
	bufferevent_setcb(plain, NULL, NULL, NULL, NULL);
	assert_null(tls_bufferevent_starttls(plain, ctx));
	assert_int_equal(evbuffer_get_length(bufferevent_get_input(plain)), 6);
	assert_int_equal(evbuffer_drain(bufferevent_get_input(plain), 6), 0);

	t.server = tls_bufferevent_starttls(plain, ctx);
	assert_non_null(t.server);
	tls_ctx_unref(&ctx);
	run_exchange(&t, fds[1]);   /* frees t.server and with it plain */
	event_base_free(t.base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_default_and_sni),
		cmocka_unit_test(test_key_mismatch),
		cmocka_unit_test(test_not_a_certificate),
		cmocka_unit_test(test_encrypted_key_refused),
		cmocka_unit_test(test_min_version),
		cmocka_unit_test(test_ciphers),
		cmocka_unit_test(test_expired_loads_with_warning),
		cmocka_unit_test(test_expiring_soon_warns),
		cmocka_unit_test(test_handshake_tls13),
		cmocka_unit_test(test_handshake_tls12),
		cmocka_unit_test(test_old_versions_refused),
		cmocka_unit_test(test_sni_selects_certificate),
		cmocka_unit_test(test_sni_hostile_values),
		cmocka_unit_test(test_name_match),
		cmocka_unit_test(test_ssl_outlives_ctx),
		cmocka_unit_test(test_current),
		cmocka_unit_test(test_client_ctx),
		cmocka_unit_test(test_bufferevent_accept),
		cmocka_unit_test(test_bufferevent_starttls),
	};

	if (evthread_use_pthreads() < 0)
		return 1;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
