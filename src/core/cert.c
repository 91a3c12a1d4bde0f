/*
 * Certificate files: generation of the default self-signed certificate,
 * certificate requests, import of CA-issued certificates, descriptions
 * for `petrelctl cert show`, and the PEM loading shared with tls.c.
 *
 * Runs in petrelctl (and in setup), never on the engine's event loops; the
 * engine only uses the read helpers while it builds a TLS context.  Files
 * are written through the file I/O seam (fileio.h), private keys first and
 * with mode 0600, so that a crash never leaves a certificate whose key is
 * missing, and tests can fail the Nth write.
 *
 * OpenSSL constructors (X509_new, BIO_new, ...) fail only when memory runs
 * out, which panics like xmalloc (STYLE 3); operations that can fail for a
 * reason (a bad file, a weak key) become an error sentence.
 */
#include "core/cert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "core/buf.h"
#include "core/fileio.h"
#include "core/str.h"

/* RSA 2048: accepted by every mail client still in use (old Outlook, Java
 * and embedded clients included); see docs/certificates.md. */
#define CERT_RSA_BITS 2048
/* A new certificate is valid from an hour ago, so a client whose clock is
 * a little behind does not see a "not yet valid" certificate. */
#define CERT_BACKDATE_SECONDS 3600
/* Longest value for a subject CN (RFC 5280 ub-common-name). */
#define CERT_MAX_CN 64

static void *ossl_alloc(void *p, const char *what)
{
	if (p == NULL)
		panic("out of memory in OpenSSL (%s)", what);
	return p;
}

/* The reason of the most recent OpenSSL error on this thread, copied into
 * buf, then the queue is emptied. */
static const char *ossl_reason(char *buf, size_t size)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

	if (reason == NULL)
		reason = e != 0 ? "unknown OpenSSL error" : "unknown error";
	if (str_copy(buf, reason, size) < 0)
		buf[0] = '\0';
	ERR_clear_error();
	return buf;
}

/* PEM pass phrase callback: we never prompt (the engine starts without a
 * terminal, and petrelctl must not hang in a script).  Records that a pass
 * phrase was wanted, so the error can say the key is encrypted. */
static int no_password_cb(char *buf, int size, int rwflag, void *u)
{
	if (u != NULL)
		*(bool *)u = true;
	return -1;
}

static void wipe_free(char *data, size_t len)
{
	if (data == NULL)
		return;
	OPENSSL_cleanse(data, len);
	free(data);
}

static int read_file(const char *path, char **data_r, size_t *len_r, char **error_r)
{
	if (fileio_read_all(path, CERT_MAX_FILE_SIZE, data_r, len_r) == 0)
		return 0;
	if (errno == EFBIG)
		*error_r = xasprintf("%s: file too large (over %u bytes)", path, CERT_MAX_FILE_SIZE);
	else
		*error_r = xasprintf("%s: cannot read: %s", path, strerror(errno));
	return -1;
}

static bool file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* --- Reading ---------------------------------------------------------- */

/* Parses every PEM certificate in data into a new stack (at least one).
 * With allow_der, a file without any PEM block is tried as one DER
 * certificate (what some CAs hand out as .cer). */
static int parse_certs(const char *path, const char *data, size_t len, bool allow_der,
		       STACK_OF(X509) **certs_r, char **error_r)
{
	STACK_OF(X509) *certs = ossl_alloc(sk_X509_new_null(), "sk_X509_new_null");
	char reason[256];
	BIO *bio;

	if (len > INT32_MAX) {
		*error_r = xasprintf("%s: file too large", path);
		goto fail;
	}
	/* Matches BEGIN CERTIFICATE, X509 CERTIFICATE, TRUSTED CERTIFICATE; not
	 * a request.  Without one, PEM parsing would only produce an obscure
	 * message about whatever other block the file holds. */
	if (memmem(data, len, "CERTIFICATE-----", 16) == NULL)
		goto no_pem;
	bio = ossl_alloc(BIO_new_mem_buf(data, (int)len), "BIO_new_mem_buf");
	for (;;) {
		X509 *x = PEM_read_bio_X509(bio, NULL, no_password_cb, NULL);
		unsigned long e;

		if (x != NULL) {
			if (sk_X509_num(certs) >= CERT_MAX_CHAIN) {
				X509_free(x);
				BIO_free(bio);
				*error_r = xasprintf("%s: more than %d certificates", path, CERT_MAX_CHAIN);
				goto fail;
			}
			if (sk_X509_push(certs, x) <= 0)
				panic("out of memory in OpenSSL (sk_X509_push)");
			continue;
		}
		e = ERR_peek_last_error();
		if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
			/* End of the file (or no certificate at all). */
			ERR_clear_error();
			break;
		}
		BIO_free(bio);
		*error_r = xasprintf("%s: invalid PEM certificate %d: %s", path, sk_X509_num(certs) + 1,
			  ossl_reason(reason, sizeof(reason)));
		goto fail;
	}
	BIO_free(bio);
no_pem:
	if (sk_X509_num(certs) == 0 && allow_der && memmem(data, len, "-----BEGIN", 10) == NULL) {
		const unsigned char *p = (const unsigned char *)data;
		X509 *x = d2i_X509(NULL, &p, (long)len);

		if (x != NULL && p == (const unsigned char *)data + len) {
			if (sk_X509_push(certs, x) <= 0)
				panic("out of memory in OpenSSL (sk_X509_push)");
		} else {
			X509_free(x);
		}
		ERR_clear_error();
	}
	if (sk_X509_num(certs) == 0) {
		if (memmem(data, len, "CERTIFICATE REQUEST-----", 24) != NULL)
			*error_r = xasprintf("%s: not a PEM certificate but a certificate request (CSR): "
				  "give it to the CA and import the certificate it returns", path);
		else
			*error_r = xasprintf("%s: not a PEM certificate", path);
		goto fail;
	}
	*certs_r = certs;
	return 0;
fail:
	sk_X509_pop_free(certs, X509_free);
	return -1;
}

static int read_certs(const char *path, bool allow_der, STACK_OF(X509) **certs_r, char **error_r)
{
	char *data;
	size_t len;
	int ret;

	if (read_file(path, &data, &len, error_r) < 0)
		return -1;
	ret = parse_certs(path, data, len, allow_der, certs_r, error_r);
	free(data);
	return ret;
}

int cert_read_chain(const char *path, X509 **cert_r, STACK_OF(X509) **chain_r, char **error_r)
{
	STACK_OF(X509) *certs;

	if (read_certs(path, false, &certs, error_r) < 0)
		return -1;
	*cert_r = sk_X509_shift(certs);
	if (chain_r != NULL)
		*chain_r = certs;
	else
		sk_X509_pop_free(certs, X509_free);
	return 0;
}

static int parse_key(const char *path, const char *data, size_t len, EVP_PKEY **key_r,
		     char **error_r)
{
	bool wanted_password = false;
	char reason[256];
	EVP_PKEY *key;
	BIO *bio;
	unsigned long e;

	if (len > INT32_MAX) {
		*error_r = xasprintf("%s: file too large", path);
		return -1;
	}
	/* OpenSSL 3's decoders report a file without any key as "unsupported";
	 * look for the PEM label ourselves to say what is wrong. */
	if (memmem(data, len, "PRIVATE KEY-----", 16) == NULL) {
		*error_r = xasprintf("%s: not a PEM private key", path);
		return -1;
	}
	bio = ossl_alloc(BIO_new_mem_buf(data, (int)len), "BIO_new_mem_buf");
	key = PEM_read_bio_PrivateKey(bio, NULL, no_password_cb, &wanted_password);
	BIO_free(bio);
	if (key != NULL) {
		ERR_clear_error();
		*key_r = key;
		return 0;
	}
	e = ERR_peek_last_error();
	if (wanted_password) {
		ERR_clear_error();
		*error_r = xasprintf("%s: the private key is encrypted; the server needs it without a "
			  "pass phrase (openssl pkey -in %s -out NEWFILE)", path, path);
	} else if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
		ERR_clear_error();
		*error_r = xasprintf("%s: not a PEM private key", path);
	} else {
		*error_r = xasprintf("%s: invalid private key: %s", path,
			  ossl_reason(reason, sizeof(reason)));
	}
	return -1;
}

int cert_read_key(const char *path, EVP_PKEY **key_r, char **error_r)
{
	char *data;
	size_t len;
	int ret;

	if (read_file(path, &data, &len, error_r) < 0)
		return -1;
	ret = parse_key(path, data, len, key_r, error_r);
	wipe_free(data, len);
	return ret;
}

bool cert_key_matches(X509 *cert, EVP_PKEY *key)
{
	EVP_PKEY *pub = X509_get0_pubkey(cert);
	bool ret = pub != NULL && EVP_PKEY_eq(pub, key) == 1;

	ERR_clear_error();
	return ret;
}

int cert_time_iso(const ASN1_TIME *t, char *buf, size_t size)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		ERR_clear_error();
		if (size > 0 && str_copy(buf, "?", size) < 0)
			buf[0] = '\0';
		return -1;
	}
	return 0;
}

/* Lower-cased copy of a name from a certificate, or NULL when it cannot be
 * a host name (empty, too long, NUL inside: "good.com\0.evil.com"). */
static char *name_copy(const unsigned char *data, int len)
{
	char *s;

	if (data == NULL || len <= 0 || len > CERT_MAX_HOSTNAME || memchr(data, '\0', (size_t)len) != NULL)
		return NULL;
	s = xstrndup((const char *)data, (size_t)len);
	for (char *p = s; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	return s;
}

size_t cert_dns_names(X509 *cert, char ***names_r)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	char **names = NULL;
	size_t count = 0;
	bool saw_dns = false;

	if (gens != NULL) {
		int n = sk_GENERAL_NAME_num(gens);

		names = xmallocarray((size_t)(n > 0 ? n : 1), sizeof(*names));
		for (int i = 0; i < n; i++) {
			const GENERAL_NAME *gen = sk_GENERAL_NAME_value(gens, i);
			char *s;

			if (gen->type != GEN_DNS)
				continue;
			saw_dns = true;
			s = name_copy(ASN1_STRING_get0_data(gen->d.dNSName),
				      ASN1_STRING_length(gen->d.dNSName));
			if (s != NULL)
				names[count++] = s;
		}
		GENERAL_NAMES_free(gens);
	}
	if (!saw_dns) {
		/* No DNS entry in subjectAltName: fall back to the last CN (RFC
		 * 6125 6.4.4).  With one, even an unusable one, the CN is never
		 * looked at. */
		X509_NAME *subject = X509_get_subject_name(cert);
		int last = -1, i = -1;

		while ((i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0)
			last = i;
		if (last >= 0) {
			ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, last));
			unsigned char *utf8 = NULL;
			int len = ASN1_STRING_to_UTF8(&utf8, cn);
			char *s = len > 0 ? name_copy(utf8, len) : NULL;

			OPENSSL_free(utf8);
			if (s != NULL) {
				if (names == NULL)
					names = xmalloc(sizeof(*names));
				names[count++] = s;
			}
		}
	}
	ERR_clear_error();
	if (count == 0) {
		free(names);
		names = NULL;
	}
	*names_r = names;
	return count;
}

void cert_names_free(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

/* --- Writing ---------------------------------------------------------- */

static bool is_ip_literal(const char *s, unsigned char addr[16], int *len_r)
{
	if (inet_pton(AF_INET, s, addr) == 1) {
		*len_r = 4;
		return true;
	}
	if (inet_pton(AF_INET6, s, addr) == 1) {
		*len_r = 16;
		return true;
	}
	return false;
}

int cert_check_hostname(const char *hostname, char **error_r)
{
	unsigned char addr[16];
	size_t len = hostname != NULL ? strlen(hostname) : 0;
	size_t label = 0;
	const char *p;
	int addr_len;

	if (len == 0) {
		*error_r = xasprintf("empty host name");
		return -1;
	}
	if (is_ip_literal(hostname, addr, &addr_len))
		return 0;
	if (len > CERT_MAX_HOSTNAME)
		goto bad;
	p = hostname;
	if (p[0] == '*' && p[1] == '.')
		p += 2;
	for (; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '.') {
			if (label == 0)
				goto bad;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			goto bad;
		if (++label > 63)
			goto bad;
	}
	if (label == 0)
		goto bad;
	return 0;
bad: {
	char *esc = str_escape(hostname, 80);

	*error_r = xasprintf("invalid host name \"%s\": use letters, digits, '-' and '.' "
		  "(at most 253 characters, 63 per label), or an IP address", esc);
	free(esc);
	return -1;
}
}

static void add_general_name(GENERAL_NAMES *gens, const char *name)
{
	GENERAL_NAME *gen = ossl_alloc(GENERAL_NAME_new(), "GENERAL_NAME_new");
	unsigned char addr[16];
	int addr_len;

	if (is_ip_literal(name, addr, &addr_len)) {
		ASN1_OCTET_STRING *ip = ossl_alloc(ASN1_OCTET_STRING_new(), "ASN1_OCTET_STRING_new");

		if (ASN1_OCTET_STRING_set(ip, addr, addr_len) != 1)
			panic("out of memory in OpenSSL (ASN1_OCTET_STRING_set)");
		GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
	} else {
		ASN1_IA5STRING *dns = ossl_alloc(ASN1_IA5STRING_new(), "ASN1_IA5STRING_new");

		if (ASN1_STRING_set(dns, name, (int)strlen(name)) != 1)
			panic("out of memory in OpenSSL (ASN1_STRING_set)");
		GENERAL_NAME_set0_value(gen, GEN_DNS, dns);
	}
	if (sk_GENERAL_NAME_push(gens, gen) <= 0)
		panic("out of memory in OpenSSL (sk_GENERAL_NAME_push)");
}

/* subjectAltName for hostname (validated), plus localhost when asked. */
static X509_EXTENSION *make_san(const char *hostname, bool add_localhost)
{
	GENERAL_NAMES *gens = ossl_alloc(GENERAL_NAMES_new(), "GENERAL_NAMES_new");
	X509_EXTENSION *ext;

	add_general_name(gens, hostname);
	if (add_localhost && strcasecmp(hostname, "localhost") != 0)
		add_general_name(gens, "localhost");
	ext = ossl_alloc(X509V3_EXT_i2d(NID_subject_alt_name, 0, gens), "X509V3_EXT_i2d");
	GENERAL_NAMES_free(gens);
	return ext;
}

/* Subject "CN=hostname"; empty when the name is longer than a CN may be
 * (the subjectAltName carries it then, which is what clients check). */
static X509_NAME *make_subject(const char *hostname)
{
	X509_NAME *name = ossl_alloc(X509_NAME_new(), "X509_NAME_new");

	if (strlen(hostname) <= CERT_MAX_CN &&
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname,
				       -1, -1, 0) != 1)
		panic("out of memory in OpenSSL (X509_NAME_add_entry_by_txt)");
	return name;
}

static EVP_PKEY *generate_key(char **error_r)
{
	EVP_PKEY *key = EVP_RSA_gen(CERT_RSA_BITS);
	char reason[256];

	if (key == NULL)
		*error_r = xasprintf("cannot generate an RSA key: %s", ossl_reason(reason, sizeof(reason)));
	return key;
}

/* PEM encoding of key, in a BIO that wipes its memory when freed. */
static int write_key_file(const char *path, EVP_PKEY *key, char **error_r)
{
	BIO *bio = ossl_alloc(BIO_new(BIO_s_secmem()), "BIO_new");
	const char *werr;
	char reason[256];
	char *data;
	long len;
	int ret = -1;

	if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
		*error_r = xasprintf("%s: cannot encode the key: %s", path,
			  ossl_reason(reason, sizeof(reason)));
		goto out;
	}
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0)
		panic("write_key_file: empty PEM");
	if (fileio_write_atomic(path, data, (size_t)len, 0600, &werr) < 0) {
		*error_r = xasprintf("%s", werr);
		goto out;
	}
	ret = 0;
out:
	BIO_free(bio);
	return ret;
}

/* PEM of the certificates in order, written atomically with mode 0644. */
static int write_certs_file(const char *path, STACK_OF(X509) *certs, char **error_r)
{
	BIO *bio = ossl_alloc(BIO_new(BIO_s_mem()), "BIO_new");
	const char *werr;
	char reason[256];
	char *data;
	long len;
	int ret = -1;

	for (int i = 0; i < sk_X509_num(certs); i++) {
		if (PEM_write_bio_X509(bio, sk_X509_value(certs, i)) != 1) {
			*error_r = xasprintf("%s: cannot encode certificate: %s", path,
				  ossl_reason(reason, sizeof(reason)));
			goto out;
		}
	}
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0)
		panic("write_certs_file: empty PEM");
	if (fileio_write_atomic(path, data, (size_t)len, 0644, &werr) < 0) {
		*error_r = xasprintf("%s", werr);
		goto out;
	}
	ret = 0;
out:
	BIO_free(bio);
	return ret;
}

static int write_cert_file(const char *path, X509 *cert, char **error_r)
{
	STACK_OF(X509) *one = ossl_alloc(sk_X509_new_null(), "sk_X509_new_null");
	int ret;

	if (sk_X509_push(one, cert) <= 0)
		panic("out of memory in OpenSSL (sk_X509_push)");
	ret = write_certs_file(path, one, error_r);
	sk_X509_free(one);   /* cert stays the caller's */
	return ret;
}

static int set_random_serial(X509 *x, char **error_r)
{
	unsigned char rnd[16];
	char reason[256];
	BIGNUM *bn;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		*error_r = xasprintf("no random numbers: %s", ossl_reason(reason, sizeof(reason)));
		return -1;
	}
	/* Positive (RFC 5280 4.1.2.2) and never zero. */
	rnd[0] &= 0x7f;
	rnd[sizeof(rnd) - 1] |= 0x01;
	bn = ossl_alloc(BN_bin2bn(rnd, sizeof(rnd), NULL), "BN_bin2bn");
	if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		panic("out of memory in OpenSSL (BN_to_ASN1_INTEGER)");
	BN_free(bn);
	return 0;
}

static void add_ext_conf(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);

	if (ext == NULL)
		panic("cannot build extension %d=%s", nid, value);
	if (X509_add_ext(x, ext, -1) != 1)
		panic("out of memory in OpenSSL (X509_add_ext)");
	X509_EXTENSION_free(ext);
}

int cert_generate_self_signed(const char *hostname, const char *cert_path, const char *key_path,
			      int days, char **error_r)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	X509_NAME *name = NULL;
	X509_EXTENSION *san;
	X509V3_CTX v3;
	char reason[256];
	int ret = -1;

	if (cert_check_hostname(hostname, error_r) < 0)
		return -1;
	if (days < 1 || days > CERT_MAX_DAYS) {
		*error_r = xasprintf("validity of %d days: use 1 to %d days", days, CERT_MAX_DAYS);
		return -1;
	}
	if ((key = generate_key(error_r)) == NULL)
		return -1;

	x = ossl_alloc(X509_new(), "X509_new");
	if (X509_set_version(x, X509_VERSION_3) != 1)
		panic("X509_set_version failed");
	if (set_random_serial(x, error_r) < 0)
		goto out;
	if (X509_gmtime_adj(X509_getm_notBefore(x), -CERT_BACKDATE_SECONDS) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) == NULL) {
		*error_r = xasprintf("cannot set the validity: %s", ossl_reason(reason, sizeof(reason)));
		goto out;
	}
	name = make_subject(hostname);
	if (X509_set_subject_name(x, name) != 1 || X509_set_issuer_name(x, name) != 1 ||
	    X509_set_pubkey(x, key) != 1)
		panic("out of memory in OpenSSL (X509_set_*)");

	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	add_ext_conf(x, &v3, NID_basic_constraints, "critical,CA:FALSE");
	add_ext_conf(x, &v3, NID_key_usage, "critical,digitalSignature,keyEncipherment");
	add_ext_conf(x, &v3, NID_ext_key_usage, "serverAuth");
	add_ext_conf(x, &v3, NID_subject_key_identifier, "hash");
	san = make_san(hostname, true);
	if (X509_add_ext(x, san, -1) != 1)
		panic("out of memory in OpenSSL (X509_add_ext)");
	X509_EXTENSION_free(san);

	if (X509_sign(x, key, EVP_sha256()) <= 0) {
		*error_r = xasprintf("cannot sign the certificate: %s", ossl_reason(reason, sizeof(reason)));
		goto out;
	}
	/* Key first: a crash in between leaves a new key beside the old
	 * certificate, which the engine refuses with a clear message, rather
	 * than a certificate whose key does not exist anywhere. */
	if (write_key_file(key_path, key, error_r) < 0 ||
	    write_cert_file(cert_path, x, error_r) < 0)
		goto out;
	ret = 0;
out:
	X509_NAME_free(name);
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return ret;
}

int cert_request(const char *hostname, const char *csr_path, const char *key_path, char **error_r)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_REQ *req = NULL;
	X509_NAME *name = NULL;
	EVP_PKEY *key = NULL;
	const char *werr;
	char reason[256];
	BIO *bio = NULL;
	char *data;
	long len;
	int ret = -1;

	if (cert_check_hostname(hostname, error_r) < 0)
		return -1;
	if ((key = generate_key(error_r)) == NULL)
		return -1;

	req = ossl_alloc(X509_REQ_new(), "X509_REQ_new");
	name = make_subject(hostname);
	if (X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_subject_name(req, name) != 1 || X509_REQ_set_pubkey(req, key) != 1)
		panic("out of memory in OpenSSL (X509_REQ_set_*)");
	/* Only the host name: a public CA refuses a request naming localhost. */
	exts = ossl_alloc(sk_X509_EXTENSION_new_null(), "sk_X509_EXTENSION_new_null");
	if (sk_X509_EXTENSION_push(exts, make_san(hostname, false)) <= 0)
		panic("out of memory in OpenSSL (sk_X509_EXTENSION_push)");
	if (X509_REQ_add_extensions(req, exts) != 1)
		panic("out of memory in OpenSSL (X509_REQ_add_extensions)");
	if (X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
		*error_r = xasprintf("cannot sign the request: %s", ossl_reason(reason, sizeof(reason)));
		goto out;
	}
	bio = ossl_alloc(BIO_new(BIO_s_mem()), "BIO_new");
	if (PEM_write_bio_X509_REQ(bio, req) != 1) {
		*error_r = xasprintf("%s: cannot encode the request: %s", csr_path,
			  ossl_reason(reason, sizeof(reason)));
		goto out;
	}
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0)
		panic("cert_request: empty PEM");
	if (write_key_file(key_path, key, error_r) < 0)
		goto out;
	if (fileio_write_atomic(csr_path, data, (size_t)len, 0644, &werr) < 0) {
		*error_r = xasprintf("%s", werr);
		goto out;
	}
	ret = 0;
out:
	BIO_free(bio);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(name);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return ret;
}

/* --- Import ----------------------------------------------------------- */

static char *name_text(const X509_NAME *name)
{
	BIO *bio = ossl_alloc(BIO_new(BIO_s_mem()), "BIO_new");
	char *data, *s;
	long len;

	/* RFC 2253 form; its flags escape control characters and bytes >= 0x80
	 * (\C3\A9), so the text is printable ASCII, safe for a terminal, a log
	 * and JSON.  Anything else that slipped through becomes '?'. */
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0)
		(void)BIO_puts(bio, "?");
	len = BIO_get_mem_data(bio, &data);
	s = xstrndup(len > 0 ? data : "", len > 0 ? (size_t)len : 0);
	BIO_free(bio);
	ERR_clear_error();
	for (char *p = s; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	}
	return s;
}

enum import_key { IMPORT_KEY_FILE, IMPORT_KEY_PENDING, IMPORT_KEY_CURRENT };

/* Renames both .new files into place; see cert.h for the window. */
static int install_pair(const char *key_new, const char *key_path, const char *crt_new,
			const char *crt_path, char **error_r)
{
	if (fileio_rename(key_new, key_path) < 0) {
		*error_r = xasprintf("cannot rename %s to %s: %s", key_new, key_path, strerror(errno));
		return -1;
	}
	if (fileio_rename(crt_new, crt_path) < 0) {
		*error_r = xasprintf("%s was replaced but %s could not be (rename from %s: %s); "
			  "run the same import again to finish", key_path, crt_path, crt_new,
			  strerror(errno));
		return -1;
	}
	if (fileio_fsync_parent(crt_path) < 0) {
		*error_r = xasprintf("cannot fsync the directory of %s: %s", crt_path, strerror(errno));
		return -1;
	}
	return 0;
}

static char *import_summary(X509 *cert)
{
	char **names, until[CERT_TIME_MAX];
	size_t count = cert_dns_names(cert, &names);
	char *issuer = name_text(X509_get_issuer_name(cert));
	char *first = count > 0 ? str_escape(names[0], CERT_MAX_HOSTNAME) : xstrdup("(no name)");
	char *s;

	(void)cert_time_iso(X509_get0_notAfter(cert), until, sizeof(until));
	s = xasprintf("%s%s, valid until %s, issued by %s", first,
		      count > 1 ? " and other names" : "", until, issuer);
	free(first);
	free(issuer);
	cert_names_free(names, count);
	return s;
}

int cert_import(const char *cert_file, const char *chain_file, const char *key_file,
		const char *dir, char **summary_r, char **error_r)
{
	STACK_OF(X509) *certs = NULL, *more = NULL;
	EVP_PKEY *key = NULL, *pending = NULL, *current = NULL;
	char *request_key = xasprintf("%s/%s", dir, CERT_REQUEST_KEY);
	char *request_csr = xasprintf("%s/%s", dir, CERT_REQUEST_CSR);
	char *server_key = xasprintf("%s/%s", dir, CERT_SERVER_KEY);
	char *server_crt = xasprintf("%s/%s", dir, CERT_SERVER_CRT);
	char *key_new = xasprintf("%s/%s.new", dir, CERT_SERVER_KEY);
	char *crt_new = xasprintf("%s/%s.new", dir, CERT_SERVER_CRT);
	char when[CERT_TIME_MAX];
	enum import_key source = IMPORT_KEY_CURRENT;
	X509 *leaf;
	int ret = -1, bits;

	if (read_certs(cert_file, true, &certs, error_r) < 0)
		goto out;
	if (chain_file != NULL) {
		if (read_certs(chain_file, false, &more, error_r) < 0)
			goto out;
		while (sk_X509_num(more) > 0) {
			if (sk_X509_num(certs) >= CERT_MAX_CHAIN) {
				*error_r = xasprintf("%s: more than %d certificates in the chain", chain_file,
					  CERT_MAX_CHAIN);
				goto out;
			}
			if (sk_X509_push(certs, sk_X509_shift(more)) <= 0)
				panic("out of memory in OpenSSL (sk_X509_push)");
		}
	}
	leaf = sk_X509_value(certs, 0);

	/* Only the server certificate must be valid now: chains have carried
	 * expired cross-signatures that clients skip (Let's Encrypt, 2021). */
	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
		(void)cert_time_iso(X509_get0_notAfter(leaf), when, sizeof(when));
		*error_r = xasprintf("%s: certificate expired on %s", cert_file, when);
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) {
		(void)cert_time_iso(X509_get0_notBefore(leaf), when, sizeof(when));
		*error_r = xasprintf("%s: certificate is not valid before %s", cert_file, when);
		goto out;
	}
	/* A chain out of order makes clients fail in ways that are hard to
	 * trace back to the server; say it here instead. */
	for (int i = 1; i < sk_X509_num(certs); i++) {
		if (X509_check_issued(sk_X509_value(certs, i), sk_X509_value(certs, i - 1)) != X509_V_OK) {
			char *issuer = name_text(X509_get_issuer_name(sk_X509_value(certs, i - 1)));
			char *subject = name_text(X509_get_subject_name(sk_X509_value(certs, i)));

			*error_r = xasprintf("%s: chain out of order: certificate %d (%s) did not issue "
				  "certificate %d (issued by %s); put the server certificate first, then "
				  "the CA certificate that issued it, and so on",
				  chain_file != NULL ? chain_file : cert_file, i + 1, subject, i, issuer);
			free(issuer);
			free(subject);
			goto out;
		}
	}
	bits = X509_get0_pubkey(leaf) != NULL ? EVP_PKEY_get_security_bits(X509_get0_pubkey(leaf)) : 0;
	if (bits < 112) {
		*error_r = xasprintf("%s: the certificate's key is too weak (%d bits of security, "
			  "at least 112 needed: RSA 2048 or EC P-256)", cert_file, bits);
		goto out;
	}

	/* Which private key goes with it. */
	if (key_file != NULL) {
		if (cert_read_key(key_file, &key, error_r) < 0)
			goto out;
		if (!cert_key_matches(leaf, key)) {
			*error_r = xasprintf("%s: key does not match certificate %s", key_file, cert_file);
			goto out;
		}
		source = IMPORT_KEY_FILE;
	} else {
		bool have_pending = file_exists(request_key);

		if (have_pending && cert_read_key(request_key, &pending, error_r) < 0)
			goto out;
		if (pending != NULL && cert_key_matches(leaf, pending)) {
			source = IMPORT_KEY_PENDING;
			key = pending;
			pending = NULL;
		} else {
			if (file_exists(server_key)) {
				char *ignored = NULL;

				/* An unreadable current key only means "no match". */
				if (cert_read_key(server_key, &current, &ignored) < 0)
					free(ignored);
			}
			if (current == NULL || !cert_key_matches(leaf, current)) {
				if (have_pending)
					*error_r = xasprintf("%s: certificate does not match the pending key %s "
						  "nor the current key %s; run petrelctl cert request first "
						  "or import the matching key with --key FILE",
						  cert_file, request_key, server_key);
				else
					*error_r = xasprintf("%s: certificate does not match the current key %s "
						  "and no request is pending (%s); run petrelctl cert request "
						  "first or import the matching key with --key FILE",
						  cert_file, server_key, request_key);
				goto out;
			}
			source = IMPORT_KEY_CURRENT;
		}
	}

	if (source == IMPORT_KEY_CURRENT) {
		if (write_certs_file(server_crt, certs, error_r) < 0)
			goto out;
	} else {
		if (write_key_file(key_new, key, error_r) < 0)
			goto out;
		if (write_certs_file(crt_new, certs, error_r) < 0) {
			(void)fileio_unlink(key_new);
			goto out;
		}
		if (install_pair(key_new, server_key, crt_new, server_crt, error_r) < 0) {
			(void)fileio_unlink(key_new);
			(void)fileio_unlink(crt_new);
			goto out;
		}
		if (source == IMPORT_KEY_PENDING) {
			/* Only now: until here, running the import again redoes it. */
			(void)fileio_unlink(request_key);
			(void)fileio_unlink(request_csr);
			if (fileio_fsync_parent(request_key) < 0) {
				/* Only the removal may not be durable; a leftover
				 * request.key is harmless (it matches server.key). */
			}
		}
	}
	if (summary_r != NULL)
		*summary_r = import_summary(leaf);
	ret = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(more, X509_free);
	EVP_PKEY_free(key);
	EVP_PKEY_free(pending);
	EVP_PKEY_free(current);
	free(request_key);
	free(request_csr);
	free(server_key);
	free(server_crt);
	free(key_new);
	free(crt_new);
	ERR_clear_error();
	return ret;
}

/* --- Description ------------------------------------------------------ */

static void json_set_str(json_t *obj, const char *key, const char *value)
{
	if (json_object_set_new(obj, key, json_string(value)) < 0)
		panic("json_object_set_new(%s) failed", key);
}

static json_t *san_names_json(X509 *cert)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	json_t *names = json_array();

	if (names == NULL)
		panic("out of memory in jansson");
	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gen = sk_GENERAL_NAME_value(gens, i);
		char text[INET6_ADDRSTRLEN];
		struct buf b;

		if (gen->type == GEN_DNS) {
			/* Any bytes may be there: escape, and bound. */
			buf_init(&b, 4 * CERT_MAX_HOSTNAME + 16);
			if (str_escape_append(&b, ASN1_STRING_get0_data(gen->d.dNSName),
					      (size_t)ASN1_STRING_length(gen->d.dNSName),
					      CERT_MAX_HOSTNAME) == 0)
				json_array_append_new(names, json_string(b.data));
			buf_deinit(&b);
		} else if (gen->type == GEN_IPADD) {
			int len = ASN1_STRING_length(gen->d.iPAddress);
			const unsigned char *p = ASN1_STRING_get0_data(gen->d.iPAddress);

			if ((len == 4 && inet_ntop(AF_INET, p, text, sizeof(text)) != NULL) ||
			    (len == 16 && inet_ntop(AF_INET6, p, text, sizeof(text)) != NULL))
				json_array_append_new(names, json_string(text));
		}
	}
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
	return names;
}

static char *fingerprint(X509 *cert)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	struct buf b;

	if (X509_digest(cert, EVP_sha256(), md, &n) != 1)
		panic("X509_digest failed");
	buf_init(&b, 3 * EVP_MAX_MD_SIZE + 1);
	for (unsigned int i = 0; i < n; i++) {
		if (buf_printf(&b, "%s%02X", i > 0 ? ":" : "", md[i]) < 0)
			panic("fingerprint: buffer too small");
	}
	return buf_steal(&b);
}

int cert_describe_json(const char *path, json_t **json_r, char **error_r)
{
	STACK_OF(X509) *certs;
	char time_buf[CERT_TIME_MAX];
	EVP_PKEY *pub;
	json_t *obj;
	X509 *x;
	char *s;

	if (read_certs(path, true, &certs, error_r) < 0)
		return -1;
	x = sk_X509_value(certs, 0);
	obj = json_object();
	if (obj == NULL)
		panic("out of memory in jansson");
	json_set_str(obj, "path", path);
	s = name_text(X509_get_subject_name(x));
	json_set_str(obj, "subject", s);
	free(s);
	s = name_text(X509_get_issuer_name(x));
	json_set_str(obj, "issuer", s);
	free(s);
	(void)json_object_set_new(obj, "names", san_names_json(x));
	(void)cert_time_iso(X509_get0_notBefore(x), time_buf, sizeof(time_buf));
	json_set_str(obj, "not_before", time_buf);
	(void)cert_time_iso(X509_get0_notAfter(x), time_buf, sizeof(time_buf));
	json_set_str(obj, "not_after", time_buf);
	(void)json_object_set_new(obj, "expired",
				  json_boolean(X509_cmp_current_time(X509_get0_notAfter(x)) <= 0));
	s = fingerprint(x);
	json_set_str(obj, "sha256_fingerprint", s);
	free(s);
	pub = X509_get0_pubkey(x);
	if (pub != NULL) {
		const char *type = EVP_PKEY_get0_type_name(pub);

		json_set_str(obj, "key_type", type != NULL ? type : "unknown");
		(void)json_object_set_new(obj, "key_bits", json_integer(EVP_PKEY_get_bits(pub)));
	} else {
		json_set_str(obj, "key_type", "unknown");
		(void)json_object_set_new(obj, "key_bits", json_integer(0));
	}
	(void)json_object_set_new(obj, "self_signed", json_boolean(X509_self_signed(x, 1) == 1));
	(void)json_object_set_new(obj, "chain_length", json_integer(sk_X509_num(certs) - 1));
	sk_X509_pop_free(certs, X509_free);
	ERR_clear_error();
	*json_r = obj;
	return 0;
}

static const char *jstr(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL ? s : "?";
}

int cert_describe(const char *path, char **description_r, char **error_r)
{
	json_t *obj, *names;
	struct buf b;
	size_t i;
	json_t *name;
	int r = 0;

	if (cert_describe_json(path, &obj, error_r) < 0)
		return -1;
	buf_init(&b, 64 * 1024);
	r |= buf_printf(&b, "file:        %s\n", jstr(obj, "path"));
	r |= buf_printf(&b, "subject:     %s\n", jstr(obj, "subject"));
	r |= buf_printf(&b, "issuer:      %s\n", jstr(obj, "issuer"));
	r |= buf_append_str(&b, "names:       ");
	names = json_object_get(obj, "names");
	json_array_foreach(names, i, name)
		r |= buf_printf(&b, "%s%s", i > 0 ? ", " : "", json_string_value(name));
	if (json_array_size(names) == 0)
		r |= buf_append_str(&b, "(none)");
	r |= buf_printf(&b, "\nnot before:  %s\n", jstr(obj, "not_before"));
	r |= buf_printf(&b, "not after:   %s%s\n", jstr(obj, "not_after"),
			json_is_true(json_object_get(obj, "expired")) ? " (EXPIRED)" : "");
	r |= buf_printf(&b, "sha256:      %s\n", jstr(obj, "sha256_fingerprint"));
	r |= buf_printf(&b, "key:         %s %lld bits\n", jstr(obj, "key_type"),
			(long long)json_integer_value(json_object_get(obj, "key_bits")));
	r |= buf_printf(&b, "self-signed: %s\n",
			json_is_true(json_object_get(obj, "self_signed")) ? "yes" : "no");
	r |= buf_printf(&b, "chain:       %lld certificate(s) after it\n",
			(long long)json_integer_value(json_object_get(obj, "chain_length")));
	json_decref(obj);
	if (r != 0) {
		buf_deinit(&b);
		*error_r = xasprintf("%s: description too long", path);
		return -1;
	}
	*description_r = buf_steal(&b);
	return 0;
}
