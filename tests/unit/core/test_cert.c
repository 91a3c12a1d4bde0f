/* Unit tests for certificate files (core/cert.c): self-signed generation,
 * request + import with a test CA, refusals that change nothing on disk,
 * and descriptions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/cert.h"
#include "core/fileio.h"

static char dir[64];

/* The test CA (EC P-256: fast to generate). */
static EVP_PKEY *ca_key;
static X509 *ca_cert;
static long next_serial = 100;

static char *path_in(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static void remove_all(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d != NULL && (de = readdir(d)) != NULL) {
		char *p;

		if (de->d_name[0] == '.' && (de->d_name[1] == '\0' || strcmp(de->d_name, "..") == 0))
			continue;
		p = path_in(de->d_name);
		unlink(p);
		free(p);
	}
	if (d != NULL)
		closedir(d);
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

static int group_setup(void **state)
{
	X509_NAME *name;

	snprintf(dir, sizeof(dir), "/tmp/petrel-cert-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	ca_key = EVP_EC_gen("P-256");
	ca_cert = X509_new();
	if (ca_key == NULL || ca_cert == NULL)
		return -1;
	X509_set_version(ca_cert, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(ca_cert), 1);
	name = X509_get_subject_name(ca_cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"Petrel Test CA", -1,
				   -1, 0);
	X509_set_issuer_name(ca_cert, name);
	X509_gmtime_adj(X509_getm_notBefore(ca_cert), -86400);
	X509_gmtime_adj(X509_getm_notAfter(ca_cert), 365L * 86400);
	X509_set_pubkey(ca_cert, ca_key);
	add_ext(ca_cert, ca_cert, NID_basic_constraints, "critical,CA:TRUE");
	add_ext(ca_cert, ca_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
	add_ext(ca_cert, ca_cert, NID_subject_key_identifier, "hash");
	return X509_sign(ca_cert, ca_key, EVP_sha256()) > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	remove_all();
	rmdir(dir);
	X509_free(ca_cert);
	EVP_PKEY_free(ca_key);
	return 0;
}

static int test_teardown(void **state)
{
	remove_all();
	return 0;
}

/* A certificate for pubkey, signed by the test CA, valid from nb to na
 * seconds from now, with the subject and extensions of req if given. */
static X509 *issue(EVP_PKEY *pubkey, X509_REQ *req, long nb, long na)
{
	X509 *x = X509_new();

	assert_non_null(x);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), next_serial++);
	X509_set_issuer_name(x, X509_get_subject_name(ca_cert));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), nb));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), na));
	if (req != NULL) {
		STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);

		X509_set_subject_name(x, X509_REQ_get_subject_name(req));
		assert_int_equal(X509_set_pubkey(x, X509_REQ_get0_pubkey(req)), 1);
		for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++)
			assert_int_equal(X509_add_ext(x, sk_X509_EXTENSION_value(exts, i), -1), 1);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	} else {
		X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
					   (const unsigned char *)"stranger.example.com", -1, -1, 0);
		assert_int_equal(X509_set_pubkey(x, pubkey), 1);
		add_ext(x, ca_cert, NID_subject_alt_name, "DNS:stranger.example.com");
	}
	add_ext(x, ca_cert, NID_basic_constraints, "critical,CA:FALSE");
	add_ext(x, ca_cert, NID_authority_key_identifier, "keyid:always");
	assert_true(X509_sign(x, ca_key, EVP_sha256()) > 0);
	return x;
}

static X509_REQ *read_csr(const char *path)
{
	BIO *bio = BIO_new_file(path, "r");
	X509_REQ *req;

	assert_non_null(bio);
	req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(req);
	return req;
}

static void write_pem(const char *path, X509 *a, X509 *b)
{
	BIO *bio = BIO_new_file(path, "w");

	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_X509(bio, a), 1);
	if (b != NULL)
		assert_int_equal(PEM_write_bio_X509(bio, b), 1);
	BIO_free(bio);
}

static char *read_text(const char *path)
{
	char *data;
	size_t len;

	if (fileio_read_all(path, 1 << 20, &data, &len) < 0)
		return NULL;
	return data;
}

static bool exists(const char *name)
{
	char *p = path_in(name);
	bool ret = access(p, F_OK) == 0;

	free(p);
	return ret;
}

static mode_t file_mode(const char *name)
{
	char *p = path_in(name);
	struct stat st;

	assert_int_equal(stat(p, &st), 0);
	free(p);
	return st.st_mode & 07777;
}

static size_t count_certs(const char *path)
{
	const char *p = read_text(path);
	size_t n = 0;

	assert_non_null(p);
	for (const char *q = p; (q = strstr(q, "-----BEGIN CERTIFICATE-----")) != NULL; q++)
		n++;
	free((char *)p);
	return n;
}

static bool key_file_matches(const char *key_path, X509 *cert)
{
	EVP_PKEY *key = NULL;
	char *error = NULL;
	bool ret;

	if (cert_read_key(key_path, &key, &error) < 0) {
		free(error);
		return false;
	}
	ret = cert_key_matches(cert, key);
	EVP_PKEY_free(key);
	return ret;
}

/* Snapshot of the files in dir, to prove a refusal changed nothing. */
struct snapshot {
	char *names[16];
	char *data[16];
	size_t count;
};

static void snapshot_take(struct snapshot *s)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	memset(s, 0, sizeof(*s));
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char *p;

		if (de->d_name[0] == '.')
			continue;
		assert_true(s->count < 16);
		p = path_in(de->d_name);
		s->names[s->count] = xstrdup(de->d_name);
		s->data[s->count] = read_text(p);
		assert_non_null(s->data[s->count]);
		s->count++;
		free(p);
	}
	closedir(d);
}

static void snapshot_check_and_free(struct snapshot *s)
{
	struct snapshot now;

	snapshot_take(&now);
	assert_int_equal(now.count, s->count);
	for (size_t i = 0; i < s->count; i++) {
		bool found = false;

		for (size_t j = 0; j < now.count; j++) {
			if (strcmp(s->names[i], now.names[j]) == 0) {
				assert_string_equal(s->data[i], now.data[j]);
				found = true;
			}
		}
		if (!found)
			fail_msg("%s disappeared", s->names[i]);
	}
	for (size_t i = 0; i < s->count; i++) {
		free(s->names[i]);
		free(s->data[i]);
	}
	for (size_t i = 0; i < now.count; i++) {
		free(now.names[i]);
		free(now.data[i]);
	}
}

static void expect_import_error(const char *cert_file, const char *chain_file, const char *key_file,
				const char *needle)
{
	char *error = NULL, *summary = NULL;

	assert_int_equal(cert_import(cert_file, chain_file, key_file, dir, &summary, &error), -1);
	assert_null(summary);
	assert_non_null(error);
	if (strstr(error, needle) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", error, needle);
	assert_int_equal(ERR_peek_error(), 0);
	free(error);
}

/* --- Tests ------------------------------------------------------------- */

static void test_generate_self_signed(void **state)
{
	char *crt = path_in("server.crt"), *key = path_in("server.key");
	char *error = NULL, *text = NULL;
	json_t *json = NULL, *names;
	X509 *x = NULL;
	STACK_OF(X509) *chain = NULL;

	assert_int_equal(cert_generate_self_signed("mail.example.com", crt, key, CERT_DEFAULT_DAYS,
						   &error), 0);
	assert_int_equal(file_mode("server.key"), 0600);
	assert_int_equal(file_mode("server.crt"), 0644);
	assert_int_equal(cert_read_chain(crt, &x, &chain, &error), 0);
	assert_int_equal(sk_X509_num(chain), 0);
	assert_true(key_file_matches(key, x));
	/* Extensions a server certificate needs. */
	assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
	assert_int_equal(X509_check_ca(x), 0);
	assert_int_equal(X509_check_host(x, "mail.example.com", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_get_signature_nid(x), NID_sha256WithRSAEncryption);
	{
		const ASN1_INTEGER *serial = X509_get0_serialNumber(x);

		assert_true(serial->length >= 15 && serial->length <= 16);
		assert_int_equal(serial->type, V_ASN1_INTEGER);   /* positive */
	}
	{
		int days = 0, secs = 0;

		assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x),
						X509_get0_notAfter(x)), 1);
		assert_int_equal(days, CERT_DEFAULT_DAYS);
	}

	assert_int_equal(cert_describe_json(crt, &json, &error), 0);
	names = json_object_get(json, "names");
	assert_int_equal(json_array_size(names), 2);
	assert_string_equal(json_string_value(json_array_get(names, 0)), "mail.example.com");
	assert_string_equal(json_string_value(json_array_get(names, 1)), "localhost");
	assert_string_equal(json_string_value(json_object_get(json, "subject")), "CN=mail.example.com");
	assert_string_equal(json_string_value(json_object_get(json, "key_type")), "RSA");
	assert_int_equal(json_integer_value(json_object_get(json, "key_bits")), 2048);
	assert_true(json_is_true(json_object_get(json, "self_signed")));
	assert_true(json_is_false(json_object_get(json, "expired")));
	assert_int_equal(json_integer_value(json_object_get(json, "chain_length")), 0);
	{
		unsigned char md[32];
		unsigned int n;
		char hex[3 * 32 + 1];
		size_t off = 0;

		assert_int_equal(X509_digest(x, EVP_sha256(), md, &n), 1);
		for (unsigned int i = 0; i < n; i++)
			off += (size_t)snprintf(hex + off, sizeof(hex) - off, "%s%02X", i ? ":" : "", md[i]);
		assert_string_equal(json_string_value(json_object_get(json, "sha256_fingerprint")), hex);

		assert_int_equal(cert_describe(crt, &text, &error), 0);
		assert_non_null(strstr(text, hex));
		assert_non_null(strstr(text, "names:       mail.example.com, localhost\n"));
		assert_non_null(strstr(text, "self-signed: yes\n"));
		assert_non_null(strstr(text, "key:         RSA 2048 bits\n"));
	}
	free(text);
	json_decref(json);
	X509_free(x);
	sk_X509_pop_free(chain, X509_free);

	/* An address literal goes in as an IP name; "localhost" only once. */
	assert_int_equal(cert_generate_self_signed("192.0.2.7", crt, key, 1, &error), 0);
	assert_int_equal(cert_describe_json(crt, &json, &error), 0);
	names = json_object_get(json, "names");
	assert_int_equal(json_array_size(names), 2);
	assert_string_equal(json_string_value(json_array_get(names, 0)), "192.0.2.7");
	json_decref(json);
	assert_int_equal(cert_generate_self_signed("localhost", crt, key, 1, &error), 0);
	assert_int_equal(cert_describe_json(crt, &json, &error), 0);
	assert_int_equal(json_array_size(json_object_get(json, "names")), 1);
	json_decref(json);
	free(crt);
	free(key);
}

static void test_generate_refuses_bad_input(void **state)
{
	static const char *const bad[] = {
		"", "a..b", ".a", "a.", "a b", "a/b", "x\\", "-\n", "\xc3\xa9.com", "a*.example.com",
		"*.*.example.com", "*",
	};
	char *crt = path_in("server.crt"), *key = path_in("server.key");
	char *error = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(cert_generate_self_signed(bad[i], crt, key, 10, &error), -1);
		assert_non_null(error);
		free(error);
		error = NULL;
	}
	assert_int_equal(cert_generate_self_signed("ok.example.com", crt, key, 0, &error), -1);
	assert_non_null(strstr(error, "use 1 to"));
	free(error);
	error = NULL;
	assert_int_equal(cert_generate_self_signed("ok.example.com", crt, key, CERT_MAX_DAYS + 1,
						   &error), -1);
	free(error);
	error = NULL;
	assert_false(exists("server.crt"));
	assert_false(exists("server.key"));
	/* An unwritable place: the message says where. */
	assert_int_equal(cert_generate_self_signed("ok.example.com", "/nonexistent/dir/s.crt",
						   "/nonexistent/dir/s.key", 10, &error), -1);
	assert_non_null(strstr(error, "/nonexistent/dir/s.key"));
	free(error);
	free(crt);
	free(key);
}

/* The whole CA workflow: request, sign with the test CA, import. */
static void test_request_and_import(void **state)
{
	char *csr = path_in("request.csr"), *rkey = path_in("request.key");
	char *crt = path_in("server.crt"), *skey = path_in("server.key");
	char *issued = path_in("issued.pem"), *chain = path_in("chain.pem");
	char *error = NULL, *summary = NULL, *pem;
	X509_REQ *req;
	X509 *leaf, *got = NULL;
	STACK_OF(X509) *got_chain = NULL;

	/* A running installation has its self-signed default. */
	assert_int_equal(cert_generate_self_signed("mail.example.com", crt, skey, 10, &error), 0);
	assert_int_equal(cert_request("mail.example.com", csr, rkey, &error), 0);
	assert_int_equal(file_mode("request.key"), 0600);
	pem = read_text(csr);
	assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE REQUEST-----"));
	free(pem);
	req = read_csr(csr);
	{
		EVP_PKEY *pub = X509_REQ_get0_pubkey(req);

		assert_int_equal(X509_REQ_verify(req, pub), 1);
	}

	leaf = issue(NULL, req, -60, 90L * 86400);
	write_pem(issued, leaf, NULL);
	write_pem(chain, ca_cert, NULL);
	assert_int_equal(cert_import(issued, chain, NULL, dir, &summary, &error), 0);
	assert_non_null(summary);
	assert_non_null(strstr(summary, "mail.example.com"));
	assert_non_null(strstr(summary, "Petrel Test CA"));
	free(summary);

	/* The pending key is now the server key; the request is gone. */
	assert_false(exists("request.key"));
	assert_false(exists("request.csr"));
	assert_false(exists("server.key.new"));
	assert_false(exists("server.crt.new"));
	assert_int_equal(file_mode("server.key"), 0600);
	assert_true(key_file_matches(skey, leaf));
	assert_int_equal(count_certs(crt), 2);
	assert_int_equal(cert_read_chain(crt, &got, &got_chain, &error), 0);
	assert_int_equal(X509_cmp(got, leaf), 0);
	assert_int_equal(X509_cmp(sk_X509_value(got_chain, 0), ca_cert), 0);
	X509_free(got);
	sk_X509_pop_free(got_chain, X509_free);
	{
		json_t *json;

		assert_int_equal(cert_describe_json(crt, &json, &error), 0);
		assert_true(json_is_false(json_object_get(json, "self_signed")));
		assert_int_equal(json_integer_value(json_object_get(json, "chain_length")), 1);
		assert_string_equal(json_string_value(json_object_get(json, "issuer")), "CN=Petrel Test CA");
		json_decref(json);
	}

	/* A renewal for the same key replaces server.crt only. */
	{
		X509 *renewed = issue(NULL, req, -30, 180L * 86400);
		char *key_before = read_text(skey), *key_after;

		write_pem(issued, renewed, ca_cert);   /* chain in the same file */
		assert_int_equal(cert_import(issued, NULL, NULL, dir, NULL, &error), 0);
		assert_int_equal(cert_read_chain(crt, &got, NULL, &error), 0);
		assert_int_equal(X509_cmp(got, renewed), 0);
		key_after = read_text(skey);
		assert_string_equal(key_before, key_after);
		assert_int_equal(count_certs(crt), 2);
		X509_free(got);
		X509_free(renewed);
		free(key_before);
		free(key_after);
	}
	X509_REQ_free(req);
	X509_free(leaf);
	free(csr);
	free(rkey);
	free(crt);
	free(skey);
	free(issued);
	free(chain);
}

static void test_import_other_key_refused(void **state)
{
	char *csr = path_in("request.csr"), *rkey = path_in("request.key");
	char *crt = path_in("server.crt"), *skey = path_in("server.key");
	char *issued = path_in("issued.pem"), *msg;
	char *error = NULL;
	struct snapshot snap;
	EVP_PKEY *stranger = EVP_EC_gen("P-256");
	X509 *leaf;

	assert_non_null(stranger);
	assert_int_equal(cert_generate_self_signed("mail.example.com", crt, skey, 10, &error), 0);
	assert_int_equal(cert_request("mail.example.com", csr, rkey, &error), 0);
	leaf = issue(stranger, NULL, -60, 90L * 86400);
	write_pem(issued, leaf, ca_cert);

	snapshot_take(&snap);
	msg = xasprintf("certificate does not match the pending key %s", rkey);
	expect_import_error(issued, NULL, NULL, msg);
	free(msg);
	snapshot_check_and_free(&snap);

	/* Without a pending request it names the current key. */
	unlink(rkey);
	unlink(csr);
	snapshot_take(&snap);
	msg = xasprintf("certificate does not match the current key %s", skey);
	expect_import_error(issued, NULL, NULL, msg);
	free(msg);
	snapshot_check_and_free(&snap);

	/* --key with the wrong key: refused; with the right one: installed. */
	{
		char *wrong = path_in("wrong.key"), *right = path_in("right.key");
		BIO *bio = BIO_new_file(right, "w");

		assert_non_null(bio);
		assert_int_equal(PEM_write_bio_PrivateKey(bio, stranger, NULL, NULL, 0, NULL, NULL), 1);
		BIO_free(bio);
		bio = BIO_new_file(wrong, "w");
		{
			EVP_PKEY *other = EVP_EC_gen("P-256");

			assert_int_equal(PEM_write_bio_PrivateKey(bio, other, NULL, NULL, 0, NULL, NULL), 1);
			EVP_PKEY_free(other);
		}
		BIO_free(bio);
		snapshot_take(&snap);
		msg = xasprintf("%s: key does not match certificate %s", wrong, issued);
		expect_import_error(issued, NULL, wrong, msg);
		free(msg);
		snapshot_check_and_free(&snap);

		assert_int_equal(cert_import(issued, NULL, right, dir, NULL, &error), 0);
		assert_true(key_file_matches(skey, leaf));
		assert_int_equal(file_mode("server.key"), 0600);
		free(wrong);
		free(right);
	}
	X509_free(leaf);
	EVP_PKEY_free(stranger);
	free(csr);
	free(rkey);
	free(crt);
	free(skey);
	free(issued);
}

static void test_import_refusals(void **state)
{
	char *csr = path_in("request.csr"), *rkey = path_in("request.key");
	char *crt = path_in("server.crt"), *skey = path_in("server.key");
	char *issued = path_in("issued.pem"), *junk = path_in("junk.pem"), *msg;
	char *error = NULL;
	struct snapshot snap;
	X509_REQ *req;
	X509 *x;

	assert_int_equal(cert_generate_self_signed("mail.example.com", crt, skey, 10, &error), 0);
	assert_int_equal(cert_request("mail.example.com", csr, rkey, &error), 0);
	req = read_csr(csr);
	{
		FILE *f = fopen(junk, "w");

		assert_non_null(f);
		fputs("-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n", f);
		fclose(f);
	}
	snapshot_take(&snap);

	/* Not a certificate. */
	msg = xasprintf("%s: not a PEM certificate", junk);
	expect_import_error(junk, NULL, NULL, msg);
	free(msg);
	expect_import_error("/nonexistent/x.pem", NULL, NULL, "/nonexistent/x.pem: cannot read");
	msg = xasprintf("%s: not a PEM certificate but a certificate request", csr);
	expect_import_error(csr, NULL, NULL, msg);
	free(msg);
	/* Broken base64 inside a certificate block. */
	{
		FILE *f = fopen(issued, "w");

		assert_non_null(f);
		fputs("-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n", f);
		fclose(f);
		msg = xasprintf("%s: invalid PEM certificate 1: ", issued);
		expect_import_error(issued, NULL, NULL, msg);
		free(msg);
		unlink(issued);
	}

	/* Expired (notAfter in the past). */
	x = issue(NULL, req, -10L * 86400, -86400);
	write_pem(issued, x, NULL);
	expect_import_error(issued, NULL, NULL, "certificate expired on ");
	X509_free(x);

	/* Not yet valid. */
	x = issue(NULL, req, 86400, 10L * 86400);
	write_pem(issued, x, NULL);
	expect_import_error(issued, NULL, NULL, "certificate is not valid before ");

	/* A chain file that is not a certificate, and a chain out of order. */
	X509_free(x);
	x = issue(NULL, req, -60, 10L * 86400);
	write_pem(issued, x, NULL);
	msg = xasprintf("%s: not a PEM certificate", junk);
	expect_import_error(issued, junk, NULL, msg);
	free(msg);
	/* server.crt (self-signed) did not issue the leaf. */
	expect_import_error(issued, crt, NULL, "chain out of order");
	X509_free(x);
	unlink(issued);
	snapshot_check_and_free(&snap);

	X509_REQ_free(req);
	free(csr);
	free(rkey);
	free(crt);
	free(skey);
	free(issued);
	free(junk);
}

static void test_import_der(void **state)
{
	char *csr = path_in("request.csr"), *rkey = path_in("request.key");
	char *der = path_in("issued.cer");
	char *error = NULL;
	X509_REQ *req;
	X509 *x;
	BIO *bio;

	assert_int_equal(cert_request("der.example.com", csr, rkey, &error), 0);
	req = read_csr(csr);
	x = issue(NULL, req, -60, 10L * 86400);
	bio = BIO_new_file(der, "wb");
	assert_non_null(bio);
	assert_int_equal(i2d_X509_bio(bio, x), 1);
	BIO_free(bio);
	if (cert_import(der, NULL, NULL, dir, NULL, &error) < 0)
		fail_msg("%s", error);
	assert_false(exists("request.key"));
	X509_free(x);
	X509_REQ_free(req);
	free(csr);
	free(rkey);
	free(der);
}

static void test_describe_errors_and_escaping(void **state)
{
	char *p = path_in("odd.pem");
	char *error = NULL, *text = NULL;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	json_t *json;

	assert_int_equal(cert_describe("/nonexistent/c.pem", &text, &error), -1);
	assert_non_null(strstr(error, "/nonexistent/c.pem: cannot read"));
	free(error);

	/* Names with control characters, 8-bit bytes and a NUL. */
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
				   (const unsigned char *)"\xc3\xa9vil\x1b[0m", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	{
		GENERAL_NAMES *gens = GENERAL_NAMES_new();
		GENERAL_NAME *gen = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();

		ASN1_STRING_set(s, "good.com\0.evil\n", 15);
		GENERAL_NAME_set0_value(gen, GEN_DNS, s);
		sk_GENERAL_NAME_push(gens, gen);
		assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT), 1);
		GENERAL_NAMES_free(gens);
	}
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	write_pem(p, x, NULL);

	assert_int_equal(cert_describe_json(p, &json, &error), 0);
	assert_string_equal(json_string_value(json_array_get(json_object_get(json, "names"), 0)),
			    "good.com\\x00.evil\\n");
	{
		const char *subject = json_string_value(json_object_get(json, "subject"));

		for (const char *c = subject; *c != '\0'; c++)
			assert_true(*c >= 0x20 && *c < 0x7f);
	}
	assert_string_equal(json_string_value(json_object_get(json, "key_type")), "EC");
	json_decref(json);
	{
		char **names;

		/* The NUL name is no DNS name for SNI; the CN fallback is not
		 * used either, since a subjectAltName DNS entry exists. */
		assert_int_equal(cert_dns_names(x, &names), 0);
	}
	X509_free(x);
	EVP_PKEY_free(key);
	free(p);
}

/* Disk faults during an import (the file I/O seam, fileio.h).  Counting
 * from fileio_init_faults(): the first import writes server.key.new
 * (write 1, rename 1) and fails writing server.crt.new (write 2): nothing
 * may change.  The second writes both .new files (renames 2 and 3), renames
 * the key into place (4) and fails renaming the certificate (5): the
 * documented window; running the import again must finish the job. */
static void test_import_disk_faults(void **state)
{
	char *csr = path_in("request.csr"), *rkey = path_in("request.key");
	char *crt = path_in("server.crt"), *skey = path_in("server.key");
	char *issued = path_in("issued.pem");
	char *error = NULL;
	struct snapshot snap;
	X509_REQ *req;
	X509 *leaf, *got = NULL;

	assert_int_equal(cert_generate_self_signed("mail.example.com", crt, skey, 10, &error), 0);
	assert_int_equal(cert_request("mail.example.com", csr, rkey, &error), 0);
	req = read_csr(csr);
	leaf = issue(NULL, req, -60, 90L * 86400);
	write_pem(issued, leaf, ca_cert);

	assert_int_equal(setenv("PETREL_FAULT", "write:2,rename:5", 1), 0);
	fileio_init_faults();

	snapshot_take(&snap);
	expect_import_error(issued, NULL, NULL, "server.crt.new");
	snapshot_check_and_free(&snap);

	expect_import_error(issued, NULL, NULL, "run the same import again");
	assert_true(key_file_matches(skey, leaf));         /* the window */
	assert_true(exists("request.key"));
	assert_false(exists("server.key.new"));
	assert_false(exists("server.crt.new"));

	assert_int_equal(cert_import(issued, NULL, NULL, dir, NULL, &error), 0);
	assert_int_equal(cert_read_chain(crt, &got, NULL, &error), 0);
	assert_int_equal(X509_cmp(got, leaf), 0);
	assert_true(key_file_matches(skey, leaf));
	assert_false(exists("request.key"));
	assert_false(exists("request.csr"));

	X509_free(got);
	X509_free(leaf);
	X509_REQ_free(req);
	free(csr);
	free(rkey);
	free(crt);
	free(skey);
	free(issued);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_generate_self_signed, test_teardown),
		cmocka_unit_test_teardown(test_generate_refuses_bad_input, test_teardown),
		cmocka_unit_test_teardown(test_request_and_import, test_teardown),
		cmocka_unit_test_teardown(test_import_other_key_refused, test_teardown),
		cmocka_unit_test_teardown(test_import_refusals, test_teardown),
		cmocka_unit_test_teardown(test_import_der, test_teardown),
		cmocka_unit_test_teardown(test_describe_errors_and_escaping, test_teardown),
		/* Last: it arms the fault seam for the rest of the process. */
		cmocka_unit_test_teardown(test_import_disk_faults, test_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
