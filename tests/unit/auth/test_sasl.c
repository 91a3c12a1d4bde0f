/*
 * Unit tests for the SASL engine (src/auth/sasl_*.c): the RFC examples
 * replayed through the engine (RFC 5802 SCRAM-SHA-1, RFC 7677 SCRAM-SHA-256,
 * RFC 2195 CRAM-MD5, RFC 2831 DIGEST-MD5, [MS-NLMP] 4.2.2-4.2.4 NTLM),
 * full exchanges for every mechanism against test clients written here
 * (independent of the server code: OpenSSL's HMAC, PBKDF2 and MD5), a wrong
 * password and an unknown user for each, the offered list, and the hostile
 * rows of HOSTILE-INPUT.md 16 and 22 (PLAIN with 0/1/3+ NULs and empty
 * parts, bad base64, 64 KiB responses, abort then another mechanism, AUTH
 * twice, steps without an exchange).
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
#include "auth/sasl.h"
#include "core/base64.h"
#include "auth_test_backend.h"

struct fixture {
	struct tb tb;
	struct cfg *cfg;
	struct sasl_backend backend;
	struct sasl_params params;
	struct sasl_server *s;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	f->cfg = tb_cfg();
	f->tb.primary = "example.com";
	f->tb.realms[0] = "example.com";
	f->tb.realms[1] = "other.org";
	tb_add(&f->tb, "john", "example.com", "pencil");
	tb_add(&f->tb, "mary", "other.org", "s3cr\xc3\xa9t");
	tb_backend(&f->tb, &f->backend);
	f->params.cfg = f->cfg;
	f->params.service = "imap";
	f->params.hostname = "mail.example.com";
	f->params.local_address = "192.0.2.1";
	f->params.secure = true;
	f->s = sasl_server_new(&f->params, &f->backend);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sasl_server_free(&f->s);
	assert_null(f->s);
	tb_free(&f->tb);
	cfg_unref(&f->cfg);
	free(f);
	return 0;
}

/* A new server with changed params. */
static void renew(struct fixture *f)
{
	sasl_server_free(&f->s);
	f->s = sasl_server_new(&f->params, &f->backend);
}

/* ---- tiny crypto for the clients (OpenSSL, not our code) ---- */

static void hmac_md(const EVP_MD *md, const void *key, size_t klen, const void *data,
		    size_t len, unsigned char *out)
{
	unsigned int n;

	assert_non_null(HMAC(md, key, (int)klen, data, len, out, &n));
}

static void md5hex(const void *data, size_t len, char out[33])
{
	unsigned char h[16];
	unsigned int n;

	assert_int_equal(EVP_Digest(data, len, h, &n, EVP_md5(), NULL), 1);
	str_hex(h, 16, out);
}

static char *b64(const void *data, size_t len)
{
	size_t n = base64_encoded_len(len);
	char *out = xmalloc(n + 1);

	base64_encode(data, len, out, n + 1);
	return out;
}

/* ---- PLAIN and LOGIN ---- */

static enum sasl_status plain(struct fixture *f, const char *authz, const char *user,
			      const char *pass, struct sasl_reply *r)
{
	char msg[512];
	size_t n = 0;

	n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s", authz);
	msg[n++] = '\0';
	n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s", user);
	msg[n++] = '\0';
	n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s", pass);
	return sasl_server_start(f->s, "PLAIN", msg, n, true, r);
}

static void test_plain(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;

	assert_int_equal(plain(f, "", "john", "pencil", &r), SASL_SUCCESS);
	assert_string_equal(r.identity, "john@example.com");
	assert_string_equal(r.login, "john");
	assert_string_equal(r.account, "john");
	assert_false(sasl_server_in_progress(f->s));
	/* full address, any case */
	assert_int_equal(plain(f, "", "JOHN@Example.COM", "pencil", &r), SASL_SUCCESS);
	assert_string_equal(r.identity, "john@example.com");
	/* non-primary domain needs the address */
	assert_int_equal(plain(f, "", "mary@other.org", "s3cr\xc3\xa9t", &r), SASL_SUCCESS);
	assert_int_equal(plain(f, "", "mary", "s3cr\xc3\xa9t", &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	assert_string_equal(r.reason, "unknown user");
	/* wrong password */
	assert_int_equal(plain(f, "", "john", "Pencil", &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	assert_string_equal(r.reason, "wrong password");
	assert_null(r.identity);
	/* unknown user: the password check still runs (same work) */
	f->tb.verifies = 0;
	assert_int_equal(plain(f, "", "nobody", "pencil", &r), SASL_FAILURE);
	assert_int_equal(f->tb.verifies, 1);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	/* without initial response: empty challenge first */
	assert_int_equal(sasl_server_start(f->s, "plain", NULL, 0, false, &r), SASL_CONTINUE);
	assert_int_equal(r.len, 0);
	assert_int_equal(sasl_server_step(f->s, "\0john\0pencil", 12, &r), SASL_SUCCESS);
}

static void test_plain_authzid(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;

	/* the user's own names are fine */
	assert_int_equal(plain(f, "john", "john", "pencil", &r), SASL_SUCCESS);
	assert_int_equal(plain(f, "john@example.com", "john", "pencil", &r), SASL_SUCCESS);
	assert_int_equal(plain(f, "JOHN", "john@example.com", "pencil", &r), SASL_SUCCESS);
	/* someone else: refused (no master users) */
	assert_int_equal(plain(f, "mary@other.org", "john", "pencil", &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	assert_string_equal(r.reason, "authorization identity refused");
	assert_null(r.identity);
	assert_int_equal(plain(f, "nobody", "john", "pencil", &r), SASL_FAILURE);
}

static void test_plain_disabled_and_tempfail(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;

	f->tb.users[0].enabled = false;
	assert_int_equal(plain(f, "", "john", "pencil", &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	assert_string_equal(r.reason, "account disabled");
	f->tb.users[0].enabled = true;
	f->tb.fail_lookups = true;
	assert_int_equal(plain(f, "", "john", "pencil", &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_TEMPORARY);
	f->tb.fail_lookups = false;
}

/* HOSTILE-INPUT 22: PLAIN with 0, 1, 3+ NULs, empty parts, over-long
 * fields, bad UTF-8, 64 KiB: a clean failure each, never a lookup. */
static void test_plain_hostile(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *data;
		size_t len;
	} bad[] = {
		{ "", 0 },
		{ "johnpencil", 10 },
		{ "john\0pencil", 11 },
		{ "\0john\0pencil\0", 13 },
		{ "\0john\0pen\0cil", 13 },
		{ "\0\0\0\0", 4 },
		{ "\0\0pencil", 8 },
		{ "\0john\0", 6 },
		{ "\0\0", 2 },
		{ "\0john\0\xff\xfe", 8 },
		{ "\xc3\0john\0pencil", 13 },
	};
	struct sasl_reply r;
	char *big;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f->tb.lookups = 0;
		assert_int_equal(sasl_server_start(f->s, "PLAIN", bad[i].data, bad[i].len, true, &r),
				 SASL_FAILURE);
		assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
		assert_int_equal(f->tb.lookups, 0);
		assert_false(sasl_server_in_progress(f->s));
	}
	/* a 2000-byte user name and a 64 KiB password */
	big = xmalloc(70000);
	memset(big, 'a', 70000);
	big[0] = '\0';
	big[2001] = '\0';
	assert_int_equal(sasl_server_start(f->s, "PLAIN", big, 3000, true, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
	assert_int_equal(sasl_server_start(f->s, "PLAIN", big, 2002 + 64 * 1024 - 2003, true, &r),
			 SASL_FAILURE);
	/* over auth/max-response: refused before parsing */
	assert_int_equal(sasl_server_start(f->s, "PLAIN", big, 70000, true, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
	assert_string_equal(r.reason, "response too long");
	/* a login with control characters is "unknown", without a lookup */
	f->tb.lookups = 0;
	assert_int_equal(sasl_server_start(f->s, "PLAIN", "\0jo\rhn\0pencil", 13, true, &r),
			 SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	assert_int_equal(f->tb.lookups, 0);
	free(big);
}

static void test_login(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;

	assert_int_equal(sasl_server_start(f->s, "LOGIN", NULL, 0, false, &r), SASL_CONTINUE);
	assert_string_equal((const char *)r.data, "Username:");
	assert_int_equal(sasl_server_step(f->s, "john", 4, &r), SASL_CONTINUE);
	assert_string_equal((const char *)r.data, "Password:");
	assert_int_equal(sasl_server_step(f->s, "pencil", 6, &r), SASL_SUCCESS);
	assert_string_equal(r.identity, "john@example.com");
	/* user name as initial response */
	assert_int_equal(sasl_server_start(f->s, "LOGIN", "john", 4, true, &r), SASL_CONTINUE);
	assert_string_equal((const char *)r.data, "Password:");
	assert_int_equal(sasl_server_step(f->s, "wrong", 5, &r), SASL_FAILURE);
	assert_string_equal(r.reason, "wrong password");
	/* empty or NUL-bearing fields */
	assert_int_equal(sasl_server_start(f->s, "LOGIN", NULL, 0, false, &r), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(f->s, "", 0, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
	assert_int_equal(sasl_server_start(f->s, "LOGIN", "john", 4, true, &r), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(f->s, "pen\0cil", 7, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
}

/* Plaintext mechanisms: not offered, and refused, without a secure channel
 * unless auth/plaintext-without-tls. */
static void test_plaintext_needs_tls(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;
	char *list;

	f->params.secure = false;
	renew(f);
	list = sasl_mechanisms_offered(&f->cfg->s, false);
	assert_string_equal(list, "CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256 NTLM");
	free(list);
	assert_int_equal(plain(f, "", "john", "pencil", &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_ENCRYPTION);
	assert_int_equal(sasl_server_start(f->s, "LOGIN", NULL, 0, false, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_ENCRYPTION);
	f->cfg->s.auth_plaintext_without_tls = true;
	assert_int_equal(plain(f, "", "john", "pencil", &r), SASL_SUCCESS);
	list = sasl_mechanisms_offered(&f->cfg->s, false);
	assert_string_equal(list, "PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256 NTLM");
	free(list);
}

static void test_offered_list(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;
	char *list, *error = NULL;

	free(f->cfg->s.auth_mechanisms);
	f->cfg->s.auth_mechanisms = xstrdup(" scram-sha-256,PLAIN  plain GSSAPI\tcram-md5 ");
	list = sasl_mechanisms_offered(&f->cfg->s, true);
	/* GSSAPI needs a keytab; duplicates once; names canonical */
	assert_string_equal(list, "SCRAM-SHA-256 PLAIN CRAM-MD5");
	free(list);
	assert_true(sasl_mechanism_offered(&f->cfg->s, true, SASL_MECH_PLAIN));
	assert_false(sasl_mechanism_offered(&f->cfg->s, false, SASL_MECH_PLAIN));
	assert_false(sasl_mechanism_offered(&f->cfg->s, true, SASL_MECH_NTLM));
	assert_int_equal(sasl_check_settings(&f->cfg->s, &error), 0);
	/* a mechanism that exists but is not enabled */
	assert_int_equal(sasl_server_start(f->s, "NTLM", NULL, 0, false, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_MECHANISM);
	assert_int_equal(r.mech, SASL_MECH_NTLM);
	/* one that does not exist */
	assert_int_equal(sasl_server_start(f->s, "EXTERNAL", NULL, 0, false, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_MECHANISM);
	assert_null(sasl_mech_name(r.mech));
	assert_int_equal(sasl_server_start(f->s, NULL, NULL, 0, false, &r), SASL_FAILURE);
	/* GSSAPI with a keytab */
	free(f->cfg->s.auth_gssapi_keytab);
	f->cfg->s.auth_gssapi_keytab = xstrdup("krb5.keytab");
	list = sasl_mechanisms_offered(&f->cfg->s, false);
	assert_string_equal(list, "SCRAM-SHA-256 GSSAPI CRAM-MD5");
	free(list);
	/* a typo is caught by the check */
	free(f->cfg->s.auth_mechanisms);
	f->cfg->s.auth_mechanisms = xstrdup("PLAIN SCRAM-SHA256");
	assert_int_equal(sasl_check_settings(&f->cfg->s, &error), -1);
	assert_non_null(strstr(error, "SCRAM-SHA256"));
	free(error);
	free(f->cfg->s.auth_mechanisms);
	f->cfg->s.auth_mechanisms = xstrdup("none");
	assert_int_equal(sasl_check_settings(&f->cfg->s, &error), 0);
	list = sasl_mechanisms_offered(&f->cfg->s, true);
	assert_string_equal(list, "");
	free(list);
	/* the defaults: GSSAPI listed but off until a keytab is set */
	{
		struct cfg *d = cfg_new_default("/tmp");

		list = sasl_mechanisms_offered(&d->s, true);
		assert_string_equal(list, "PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 DIGEST-MD5 "
					  "NTLM");
		free(list);
		assert_int_equal(sasl_check_settings(&d->s, &error), 0);
		cfg_unref(&d);
	}
}

/* A typo in auth/mechanisms is a FILE:LINE error of mailserver.cfg once
 * petreld and petrelctl register the check with the parser. */
static void test_mechanisms_checked_at_load(void **state)
{
	const char *bad = "<?xml version=\"1.0\"?>\n<petrel>\n  <auth>\n"
			  "    <mechanisms>PLAIN SCRAM-SHA256</mechanisms>\n  </auth>\n</petrel>\n";
	const char *good = "<?xml version=\"1.0\"?>\n<petrel>\n  <auth>\n"
			   "    <mechanisms>plain scram-sha-256 none</mechanisms>\n  </auth>\n</petrel>\n";
	struct cfg *cfg = NULL;
	char *error = NULL;

	(void)state;
	cfg_set_value_check(sasl_cfg_check);
	assert_int_equal(cfg_parse("m.cfg", "/tmp", bad, strlen(bad), NULL, NULL, &cfg, &error), -1);
	assert_non_null(error);
	assert_non_null(strstr(error, "m.cfg:4: auth/mechanisms: unknown mechanism 'SCRAM-SHA256'"));
	free(error);
	error = NULL;
	assert_int_equal(cfg_parse("m.cfg", "/tmp", good, strlen(good), NULL, NULL, &cfg, &error), 0);
	cfg_unref(&cfg);
	cfg_set_value_check(NULL);
}

/* ---- CRAM-MD5 ---- */

static enum sasl_status cram_client(struct fixture *f, const char *user, const char *pass,
				    struct sasl_reply *r)
{
	unsigned char d[16];
	char hex[33], resp[600];

	if (sasl_server_start(f->s, "CRAM-MD5", NULL, 0, false, r) != SASL_CONTINUE)
		return r->status;
	hmac_md(EVP_md5(), pass, strlen(pass), r->data, r->len, d);
	str_hex(d, 16, hex);
	snprintf(resp, sizeof(resp), "%s %s", user, hex);
	return sasl_server_step(f->s, resp, strlen(resp), r);
}

/* RFC 2195 section 2, through the engine. */
static void test_cram_md5_rfc2195(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;
	const char *resp = "tim b913a602c7eda7a495b4e6e7334d3890";

	tb_add(&f->tb, "tim", "postoffice.reston.mci.net", "tanstaaftanstaaf");
	f->params.test_nonce = "1896.697170952";
	f->params.hostname = "postoffice.reston.mci.net";
	f->tb.primary = "postoffice.reston.mci.net";
	renew(f);
	assert_int_equal(sasl_server_start(f->s, "CRAM-MD5", NULL, 0, false, &r), SASL_CONTINUE);
	assert_string_equal((const char *)r.data, "<1896.697170952@postoffice.reston.mci.net>");
	assert_int_equal(sasl_server_step(f->s, resp, strlen(resp), &r), SASL_SUCCESS);
	assert_string_equal(r.identity, "tim@postoffice.reston.mci.net");
	/* upper-case hex is accepted */
	assert_int_equal(sasl_server_start(f->s, "CRAM-MD5", NULL, 0, false, &r), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(f->s, "tim B913A602C7EDA7A495B4E6E7334D3890", 36, &r),
			 SASL_SUCCESS);
}

static void test_cram_md5(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r, r2;
	char first[200];

	assert_int_equal(cram_client(f, "john", "pencil", &r), SASL_SUCCESS);
	assert_string_equal(r.identity, "john@example.com");
	assert_int_equal(cram_client(f, "mary@other.org", "s3cr\xc3\xa9t", &r), SASL_SUCCESS);
	assert_int_equal(cram_client(f, "john", "wrong", &r), SASL_FAILURE);
	assert_string_equal(r.reason, "wrong password");
	assert_int_equal(cram_client(f, "nobody", "pencil", &r), SASL_FAILURE);
	assert_string_equal(r.reason, "unknown user");
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	/* challenges differ each time */
	assert_int_equal(sasl_server_start(f->s, "CRAM-MD5", NULL, 0, false, &r), SASL_CONTINUE);
	snprintf(first, sizeof(first), "%s", (const char *)r.data);
	assert_int_equal(sasl_server_start(f->s, "CRAM-MD5", NULL, 0, false, &r2), SASL_CONTINUE);
	assert_string_not_equal(first, (const char *)r2.data);
	assert_non_null(strstr(first, "@mail.example.com>"));
	/* no secret stored (password set before secrets existed) */
	tb_set_secret(&f->tb.users[0], "CRAM-MD5", NULL);
	assert_int_equal(cram_client(f, "john", "pencil", &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	/* malformed responses */
	static const char *const bad[] = {
		"", "john", "john ", " b913a602c7eda7a495b4e6e7334d3890",
		"john b913a602c7eda7a495b4e6e7334d389", "john b913a602c7eda7a495b4e6e7334d38900",
		"john b913a602c7eda7a495b4e6e7334d389g",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sasl_server_start(f->s, "CRAM-MD5", NULL, 0, false, &r),
				 SASL_CONTINUE);
		assert_int_equal(sasl_server_step(f->s, bad[i], strlen(bad[i]), &r), SASL_FAILURE);
		assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
	}
	/* an initial response is refused */
	assert_int_equal(sasl_server_start(f->s, "CRAM-MD5", "x", 1, true, &r), SASL_FAILURE);
}

/* ---- DIGEST-MD5 ---- */

/* Extracts directive name's value from a challenge (quoted or not). */
static char *directive(const char *challenge, const char *name)
{
	char key[64];
	const char *p, *end;

	snprintf(key, sizeof(key), "%s=", name);
	p = strstr(challenge, key);
	if (p == NULL)
		return NULL;
	p += strlen(key);
	if (*p == '"') {
		end = strchr(++p, '"');
	} else {
		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
	}
	return xstrndup(p, (size_t)(end - p));
}

struct digest_opts {
	const char *user, *realm, *pass, *uri, *nc, *qop, *authzid, *nonce;
	const char *extra;      /* appended to the response */
};

/* RFC 2831 2.1.2.1: with charset=utf-8, text that fits ISO 8859-1 is
 * hashed in ISO 8859-1 (in place; our test strings use only U+00xx). */
static void latin1_if_possible(char *s)
{
	unsigned char *p = (unsigned char *)s, *o = p;

	for (unsigned char *q = p; *q != '\0'; q++)
		if (*q >= 0xc4)
			return;
	while (*p != '\0') {
		if (p[0] >= 0xc2 && p[1] != '\0') {
			*o++ = (unsigned char)(((p[0] & 0x03) << 6) | (p[1] & 0x3f));
			p += 2;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
}

static void digest_response(const char *nonce, const struct digest_opts *o, char *out,
			    size_t size)
{
	char ha1hex[33], a1[512], ha1_hex[33], a2hex[33], kd[1024], resp[33], a2[300];
	unsigned char ha1[16];
	unsigned int n;
	const char *cnonce = "OA6MHXh6VqTrRk", *nc = o->nc != NULL ? o->nc : "00000001";
	size_t a1len;

	snprintf(a1, sizeof(a1), "%s:%s:%s", o->user, o->realm, o->pass);
	latin1_if_possible(a1);
	assert_int_equal(EVP_Digest(a1, strlen(a1), ha1, &n, EVP_md5(), NULL), 1);
	(void)ha1hex;
	memcpy(a1, ha1, 16);
	a1len = 16 + (size_t)snprintf(a1 + 16, sizeof(a1) - 16, ":%s:%s%s%s", nonce, cnonce,
				      o->authzid != NULL ? ":" : "",
				      o->authzid != NULL ? o->authzid : "");
	md5hex(a1, a1len, ha1_hex);
	snprintf(a2, sizeof(a2), "AUTHENTICATE:%s", o->uri);
	md5hex(a2, strlen(a2), a2hex);
	snprintf(kd, sizeof(kd), "%s:%s:%s:%s:auth:%s", ha1_hex, nonce, nc, cnonce, a2hex);
	md5hex(kd, strlen(kd), resp);
	snprintf(out, size,
		 "charset=utf-8,username=\"%s\",realm=\"%s\",nonce=\"%s\",nc=%s,cnonce=\"%s\","
		 "digest-uri=\"%s\",response=%s,qop=%s%s%s%s%s",
		 o->user, o->realm, o->nonce != NULL ? o->nonce : nonce, nc, cnonce, o->uri, resp,
		 o->qop != NULL ? o->qop : "auth", o->authzid != NULL ? ",authzid=\"" : "",
		 o->authzid != NULL ? o->authzid : "", o->authzid != NULL ? "\"" : "",
		 o->extra != NULL ? o->extra : "");
}

static enum sasl_status digest_client(struct fixture *f, const struct digest_opts *o,
				      struct sasl_reply *r)
{
	char *nonce, resp[2048];
	enum sasl_status st;

	if (sasl_server_start(f->s, "DIGEST-MD5", NULL, 0, false, r) != SASL_CONTINUE)
		return r->status;
	nonce = directive((const char *)r->data, "nonce");
	assert_non_null(nonce);
	digest_response(nonce, o, resp, sizeof(resp));
	free(nonce);
	st = sasl_server_step(f->s, resp, strlen(resp), r);
	if (st != SASL_CONTINUE)
		return st;
	assert_true(strncmp((const char *)r->data, "rspauth=", 8) == 0);
	return sasl_server_step(f->s, "", 0, r);
}

/* RFC 2831 section 4's IMAP example, through the engine. */
static void test_digest_md5_rfc2831(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;
	const char *resp =
		"charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\","
		"nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\","
		"digest-uri=\"imap/elwood.innosoft.com\","
		"response=d388dad90d4bbd760a152321f2143af7,qop=auth";

	tb_add(&f->tb, "chris", "elwood.innosoft.com", "secret");
	f->tb.realms[0] = "elwood.innosoft.com";
	f->tb.realms[1] = NULL;
	tb_backend(&f->tb, &f->backend);
	f->params.test_nonce = "OA6MG9tEQGm2hh";
	f->params.hostname = "elwood.innosoft.com";
	renew(f);
	assert_int_equal(sasl_server_start(f->s, "DIGEST-MD5", NULL, 0, false, &r), SASL_CONTINUE);
	assert_string_equal((const char *)r.data,
			    "realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",qop=\"auth\","
			    "charset=utf-8,algorithm=md5-sess");
	assert_int_equal(sasl_server_step(f->s, resp, strlen(resp), &r), SASL_CONTINUE);
	assert_string_equal((const char *)r.data, "rspauth=ea40f60335c427b5527b84dbabcdfffd");
	assert_int_equal(sasl_server_step(f->s, "", 0, &r), SASL_SUCCESS);
	assert_string_equal(r.identity, "chris@elwood.innosoft.com");
	assert_string_equal(r.login, "chris");
	/* with success data the rspauth comes with the success */
	f->params.success_data = true;
	renew(f);
	assert_int_equal(sasl_server_start(f->s, "DIGEST-MD5", NULL, 0, false, &r), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(f->s, resp, strlen(resp), &r), SASL_SUCCESS);
	assert_string_equal((const char *)r.data, "rspauth=ea40f60335c427b5527b84dbabcdfffd");
	/* the same response again (replay) against a fixed nonce still needs
	 * a fresh exchange; with a random nonce it fails: see test_digest_md5 */
}

static void test_digest_md5(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;
	struct digest_opts o = { .user = "john", .realm = "example.com", .pass = "pencil",
				 .uri = "imap/mail.example.com" };
	char *nonce, resp[2048];

	assert_int_equal(digest_client(f, &o, &r), SASL_SUCCESS);
	assert_string_equal(r.identity, "john@example.com");
	/* the address as user name */
	o.user = "john@example.com";
	assert_int_equal(digest_client(f, &o, &r), SASL_SUCCESS);
	/* another domain: realm names it */
	o = (struct digest_opts){ .user = "mary", .realm = "other.org", .pass = "s3cr\xc3\xa9t",
				  .uri = "imap/192.0.2.1" };
	assert_int_equal(digest_client(f, &o, &r), SASL_SUCCESS);
	assert_string_equal(r.identity, "mary@other.org");
	/* curl's digest-uri: the realm as host */
	o.uri = "imap/other.org";
	assert_int_equal(digest_client(f, &o, &r), SASL_SUCCESS);
	/* wrong password, unknown user, wrong realm for the user */
	o = (struct digest_opts){ .user = "john", .realm = "example.com", .pass = "x",
				  .uri = "imap/mail.example.com" };
	assert_int_equal(digest_client(f, &o, &r), SASL_FAILURE);
	assert_string_equal(r.reason, "wrong password");
	o.user = "nobody";
	assert_int_equal(digest_client(f, &o, &r), SASL_FAILURE);
	assert_string_equal(r.reason, "unknown user");
	o = (struct digest_opts){ .user = "john@example.com", .realm = "other.org",
				  .pass = "pencil", .uri = "imap/mail.example.com" };
	assert_int_equal(digest_client(f, &o, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	/* authzid: own name fine, someone else's not */
	o = (struct digest_opts){ .user = "john", .realm = "example.com", .pass = "pencil",
				  .uri = "imap/mail.example.com", .authzid = "john@example.com" };
	assert_int_equal(digest_client(f, &o, &r), SASL_SUCCESS);
	o.authzid = "mary@other.org";
	assert_int_equal(digest_client(f, &o, &r), SASL_FAILURE);
	assert_string_equal(r.reason, "authorization identity refused");

	/* protocol checks: each a syntax failure */
	{
		struct digest_opts bad[] = {
			{ .uri = "smtp/mail.example.com" },   /* other service */
			{ .uri = "imap/evil.example.net" },   /* other host */
			{ .uri = "imap/example.org" },        /* not a realm we offered */
			{ .uri = "imap" },
			{ .nc = "00000002" },                 /* nonce count */
			{ .qop = "auth-int" },
			{ .nonce = "forged" },
			{ .extra = ",username=\"x\"" },      /* repeated directive */
			{ .extra = ",junk" },
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			struct digest_opts b = { .user = "john", .realm = "example.com",
						 .pass = "pencil",
						 .uri = bad[i].uri != NULL ? bad[i].uri
									   : "imap/mail.example.com",
						 .nc = bad[i].nc, .qop = bad[i].qop,
						 .nonce = bad[i].nonce, .extra = bad[i].extra };

			assert_int_equal(digest_client(f, &b, &r), SASL_FAILURE);
			assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
		}
	}
	/* replay: a good response against a new exchange (new nonce) fails */
	o = (struct digest_opts){ .user = "john", .realm = "example.com", .pass = "pencil",
				  .uri = "imap/mail.example.com" };
	assert_int_equal(sasl_server_start(f->s, "DIGEST-MD5", NULL, 0, false, &r), SASL_CONTINUE);
	nonce = directive((const char *)r.data, "nonce");
	digest_response(nonce, &o, resp, sizeof(resp));
	free(nonce);
	assert_int_equal(sasl_server_step(f->s, resp, strlen(resp), &r), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(f->s, "", 0, &r), SASL_SUCCESS);
	assert_int_equal(sasl_server_start(f->s, "DIGEST-MD5", NULL, 0, false, &r), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(f->s, resp, strlen(resp), &r), SASL_FAILURE);
	assert_string_equal(r.reason, "DIGEST-MD5 nonce does not match");
	/* the final step must be empty */
	assert_int_equal(sasl_server_start(f->s, "DIGEST-MD5", NULL, 0, false, &r), SASL_CONTINUE);
	nonce = directive((const char *)r.data, "nonce");
	digest_response(nonce, &o, resp, sizeof(resp));
	free(nonce);
	assert_int_equal(sasl_server_step(f->s, resp, strlen(resp), &r), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(f->s, "x", 1, &r), SASL_FAILURE);
	/* the challenge lists the realms, primary first */
	assert_int_equal(sasl_server_start(f->s, "DIGEST-MD5", NULL, 0, false, &r), SASL_CONTINUE);
	assert_true(strncmp((const char *)r.data, "realm=\"example.com\",realm=\"other.org\",", 38)
		    == 0);
}

static void test_digest_md5_hostile(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
		"", ",,,", "username", "username=", "username=\"john", "username=\"jo\\",
		"=x", "username=\"john\"x", "username=jo\"hn",
		"username=\"john\",realm=\"example.com\",nonce=\"n\"",   /* missing directives */
	};
	struct sasl_reply r;
	char *big = xmalloc(5000);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sasl_server_start(f->s, "DIGEST-MD5", NULL, 0, false, &r),
				 SASL_CONTINUE);
		assert_int_equal(sasl_server_step(f->s, bad[i], strlen(bad[i]), &r), SASL_FAILURE);
		assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
	}
	/* over RFC 2831's 4096 bytes */
	memset(big, 'a', 5000);
	memcpy(big, "username=\"", 10);
	assert_int_equal(sasl_server_start(f->s, "DIGEST-MD5", NULL, 0, false, &r), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(f->s, big, 5000, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
	/* NUL inside a quoted string */
	assert_int_equal(sasl_server_start(f->s, "DIGEST-MD5", NULL, 0, false, &r), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(f->s, "username=\"jo\0hn\"", 16, &r), SASL_FAILURE);
	/* subsequent authentication (an initial response): ignored, a fresh
	 * challenge (RFC 2831 section 2.2.2) */
	assert_int_equal(sasl_server_start(f->s, "DIGEST-MD5", "username=\"x\"", 12, true, &r),
			 SASL_CONTINUE);
	assert_non_null(strstr((const char *)r.data, "nonce=\""));
	free(big);
}

/* ---- SCRAM ---- */

struct scram_client {
	const EVP_MD *md;
	size_t len;
	char *first_bare;
	char *gs2;
	unsigned char server_sig[64];
};

/* Builds the client-final message from the server-first one. */
static char *scram_final(struct scram_client *c, const char *pass, const char *server_first,
			 const char *cbind_override)
{
	char *r = directive(server_first, "r"), *s = directive(server_first, "s"),
	     *i = directive(server_first, "i"), *without, *auth, *proof64, *final, *cb64;
	unsigned char salt[256], salted[64], ck[64], stored[64], sig[64], proof[64], sk[64];
	size_t salt_len;
	unsigned int n;

	assert_non_null(r);
	assert_non_null(s);
	assert_non_null(i);
	assert_int_equal(base64_decode(s, strlen(s), salt, sizeof(salt), &salt_len), 0);
	assert_int_equal(PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), salt, (int)salt_len, atoi(i),
					   c->md, (int)c->len, salted), 1);
	hmac_md(c->md, salted, c->len, "Client Key", 10, ck);
	assert_int_equal(EVP_Digest(ck, c->len, stored, &n, c->md, NULL), 1);
	cb64 = b64(c->gs2, strlen(c->gs2));
	without = xasprintf("c=%s,r=%s", cbind_override != NULL ? cbind_override : cb64, r);
	auth = xasprintf("%s,%s,%s", c->first_bare, server_first, without);
	hmac_md(c->md, stored, c->len, auth, strlen(auth), sig);
	for (size_t k = 0; k < c->len; k++)
		proof[k] = ck[k] ^ sig[k];
	hmac_md(c->md, salted, c->len, "Server Key", 10, sk);
	hmac_md(c->md, sk, c->len, auth, strlen(auth), c->server_sig);
	proof64 = b64(proof, c->len);
	final = xasprintf("%s,p=%s", without, proof64);
	free(proof64);
	free(auth);
	free(without);
	free(cb64);
	free(r);
	free(s);
	free(i);
	return final;
}

static enum sasl_status scram_client(struct fixture *f, const char *mech, const char *gs2,
				     const char *user, const char *pass, struct sasl_reply *r)
{
	struct scram_client c = { .md = strcmp(mech, "SCRAM-SHA-1") == 0 ? EVP_sha1()
									  : EVP_sha256() };
	char *first, *final, *v, *sig64;
	enum sasl_status st;

	c.len = (size_t)EVP_MD_get_size(c.md);
	c.gs2 = xstrdup(gs2);
	c.first_bare = xasprintf("n=%s,r=clientnonce123", user);
	first = xasprintf("%s%s", gs2, c.first_bare);
	st = sasl_server_start(f->s, mech, first, strlen(first), true, r);
	free(first);
	if (st != SASL_CONTINUE)
		goto out;
	final = scram_final(&c, pass, (const char *)r->data, NULL);
	st = sasl_server_step(f->s, final, strlen(final), r);
	free(final);
	if (st != SASL_CONTINUE)
		goto out;
	/* server-final: v= must be the signature we expect */
	v = directive((const char *)r->data, "v");
	sig64 = b64(c.server_sig, c.len);
	assert_string_equal(v, sig64);
	free(v);
	free(sig64);
	st = sasl_server_step(f->s, "", 0, r);
out:
	free(c.gs2);
	free(c.first_bare);
	return st;
}

/* RFC 5802 section 5 and RFC 7677 section 3, byte for byte. */
static void test_scram_rfc_examples(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;
	struct tb_user *u = tb_add(&f->tb, "user", "example.com", "pencil");
	unsigned char salt[32];
	size_t salt_len;
	char *v;
	const char *first1 = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
	const char *final1 = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
			     "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
	const char *first256 = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
	const char *final256 = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
			       "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

	assert_int_equal(base64_decode("QSXCR+Q6sek8bf92", 16, salt, sizeof(salt), &salt_len), 0);
	v = auth_scram_secret("SHA1", "pencil", salt, salt_len, 4096);
	tb_set_secret(u, "SCRAM-SHA-1", v);
	free(v);
	assert_int_equal(base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof(salt),
				       &salt_len), 0);
	v = auth_scram_secret("SHA256", "pencil", salt, salt_len, 4096);
	tb_set_secret(u, "SCRAM-SHA-256", v);
	free(v);

	f->params.test_nonce = "3rfcNHYJY1ZVvWVs7j";
	renew(f);
	assert_int_equal(sasl_server_start(f->s, "SCRAM-SHA-1", first1, strlen(first1), true, &r),
			 SASL_CONTINUE);
	assert_string_equal((const char *)r.data,
			    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
	assert_int_equal(sasl_server_step(f->s, final1, strlen(final1), &r), SASL_CONTINUE);
	assert_string_equal((const char *)r.data, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
	assert_int_equal(sasl_server_step(f->s, "", 0, &r), SASL_SUCCESS);
	assert_string_equal(r.identity, "user@example.com");

	f->params.test_nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
	f->params.success_data = true;
	renew(f);
	assert_int_equal(sasl_server_start(f->s, "SCRAM-SHA-256", first256, strlen(first256), true,
					   &r), SASL_CONTINUE);
	assert_string_equal((const char *)r.data,
			    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
			    "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
	assert_int_equal(sasl_server_step(f->s, final256, strlen(final256), &r), SASL_SUCCESS);
	assert_string_equal((const char *)r.data, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
	assert_string_equal(r.identity, "user@example.com");
}

static void test_scram(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;
	const char *mechs[] = { "SCRAM-SHA-1", "SCRAM-SHA-256" };

	for (int m = 0; m < 2; m++) {
		assert_int_equal(scram_client(f, mechs[m], "n,,", "john", "pencil", &r),
				 SASL_SUCCESS);
		assert_string_equal(r.identity, "john@example.com");
		assert_int_equal(scram_client(f, mechs[m], "y,,", "john", "pencil", &r),
				 SASL_SUCCESS);
		assert_int_equal(scram_client(f, mechs[m], "n,a=john@example.com,", "john",
					      "pencil", &r), SASL_SUCCESS);
		assert_int_equal(scram_client(f, mechs[m], "n,,", "mary@other.org",
					      "s3cr\xc3\xa9t", &r), SASL_SUCCESS);
		/* escaped saslname: "=2C" and "=3D" */
		assert_int_equal(scram_client(f, mechs[m], "n,,", "jo=2Chn", "pencil", &r),
				 SASL_FAILURE);
		assert_string_equal(r.login, "jo,hn");
		assert_int_equal(scram_client(f, mechs[m], "n,,", "john", "wrong", &r),
				 SASL_FAILURE);
		assert_string_equal(r.reason, "wrong password");
		assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
		assert_int_equal(scram_client(f, mechs[m], "n,,", "nobody", "pencil", &r),
				 SASL_FAILURE);
		assert_string_equal(r.reason, "unknown user");
		assert_int_equal(scram_client(f, mechs[m], "n,a=mary@other.org,", "john", "pencil",
					      &r), SASL_FAILURE);
		assert_string_equal(r.reason, "authorization identity refused");
	}
}

/* The stored keys come from the SASLprep'd password (RFC 5802 2.2): a
 * password set with U+00A0 works for a client that normalizes it to a
 * space; the unnormalized bytes do not. */
static void test_scram_saslprep(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;

	tb_add(&f->tb, "nina", "example.com", "open\xc2\xa0sesame");
	assert_int_equal(scram_client(f, "SCRAM-SHA-256", "n,,", "nina", "open sesame", &r),
			 SASL_SUCCESS);
	assert_string_equal(r.identity, "nina@example.com");
	assert_int_equal(scram_client(f, "SCRAM-SHA-1", "n,,", "nina", "open sesame", &r),
			 SASL_SUCCESS);
	assert_int_equal(scram_client(f, "SCRAM-SHA-256", "n,,", "nina", "open\xc2\xa0sesame",
				      &r), SASL_FAILURE);
	assert_string_equal(r.reason, "wrong password");
}

/* An unknown user gets a salt that looks real and is the same each time;
 * a known user's salt is its own. */
static void test_scram_unknown_user_salt(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;
	char *s1, *s2, *s3;
	const char *m1 = "n,,n=nobody,r=abc", *m2 = "n,,n=NOBODY,r=xyz", *m3 = "n,,n=john,r=abc";

	assert_int_equal(sasl_server_start(f->s, "SCRAM-SHA-256", m1, strlen(m1), true, &r),
			 SASL_CONTINUE);
	s1 = directive((const char *)r.data, "s");
	assert_int_equal(sasl_server_start(f->s, "SCRAM-SHA-256", m2, strlen(m2), true, &r),
			 SASL_CONTINUE);
	s2 = directive((const char *)r.data, "s");
	assert_non_null(strstr((const char *)r.data, ",i=4096"));
	assert_int_equal(sasl_server_start(f->s, "SCRAM-SHA-256", m3, strlen(m3), true, &r),
			 SASL_CONTINUE);
	s3 = directive((const char *)r.data, "s");
	assert_string_equal(s1, s2);
	assert_string_not_equal(s1, s3);
	assert_int_equal(strlen(s1), strlen(s3));
	free(s1);
	free(s2);
	free(s3);
}

static void test_scram_hostile(void **state)
{
	struct fixture *f = *state;
	static const char *const bad_first[] = {
		"", "n", "n,", "n,,", "x,,n=john,r=abc", "p=tls-unique,,n=john,r=abc",
		"n,,n=john", "n,,n=john,r=", "n,,n=,r=abc", "n,,r=abc,n=john", "n,,m=ext,n=john,r=abc",
		"n,,n=jo=2Xhn,r=abc", "n,,n=jo=hn,r=abc", "n,,n=john,r=a,b", "n,,n=john,r=a\x7f",
		"n,x=y,n=john,r=abc", "n,a=,n=john,r=abc", "n,,n=john\xff,r=abc",
	};
	struct sasl_reply r;
	struct scram_client c = { .md = EVP_sha256(), .len = 32 };
	char *final;

	for (size_t i = 0; i < sizeof(bad_first) / sizeof(bad_first[0]); i++) {
		assert_int_equal(sasl_server_start(f->s, "SCRAM-SHA-256", bad_first[i],
						   strlen(bad_first[i]), true, &r), SASL_FAILURE);
		assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
		assert_false(sasl_server_in_progress(f->s));
	}
	/* NUL in the first message */
	assert_int_equal(sasl_server_start(f->s, "SCRAM-SHA-256", "n,,n=jo\0hn,r=abc", 16, true, &r),
			 SASL_FAILURE);

	/* final message: wrong channel binding, wrong nonce, bad proof */
	c.gs2 = "n,,";
	c.first_bare = "n=john,r=abc";
	{
		const char *bad_final_cases[] = { "eSws", "biws=", "" };

		for (size_t i = 0; i < 3; i++) {
			assert_int_equal(sasl_server_start(f->s, "SCRAM-SHA-256", "n,,n=john,r=abc",
							   15, true, &r), SASL_CONTINUE);
			final = scram_final(&c, "pencil", (const char *)r.data, bad_final_cases[i]);
			assert_int_equal(sasl_server_step(f->s, final, strlen(final), &r),
					 SASL_FAILURE);
			assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
			free(final);
		}
	}
	static const char *const bad_final[] = {
		"", "c=biws", "c=biws,r=abc", "c=biws,r=abcSERVER,p=", "r=x,c=biws,p=AAAA",
		"c=biws,r=abcSERVER,p=AAAA", "c=biws,r=abcSERVER,p=!!!!",
		"c=biws,r=abcSERVER,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1",
	};
	f->params.test_nonce = "SERVER";
	renew(f);
	for (size_t i = 0; i < sizeof(bad_final) / sizeof(bad_final[0]); i++) {
		assert_int_equal(sasl_server_start(f->s, "SCRAM-SHA-256", "n,,n=john,r=abc", 15, true,
						   &r), SASL_CONTINUE);
		assert_int_equal(sasl_server_step(f->s, bad_final[i], strlen(bad_final[i]), &r),
				 SASL_FAILURE);
		assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
	}
	/* a well-formed proof that is wrong */
	assert_int_equal(sasl_server_start(f->s, "SCRAM-SHA-256", "n,,n=john,r=abc", 15, true, &r),
			 SASL_CONTINUE);
	final = xstrdup("c=biws,r=abcSERVER,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
	assert_int_equal(sasl_server_step(f->s, final, strlen(final), &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	free(final);
	/* a non-empty acknowledgement of the server signature */
	c.gs2 = "n,,";
	assert_int_equal(sasl_server_start(f->s, "SCRAM-SHA-256", "n,,n=john,r=abc", 15, true, &r),
			 SASL_CONTINUE);
	final = scram_final(&c, "pencil", (const char *)r.data, NULL);
	assert_int_equal(sasl_server_step(f->s, final, strlen(final), &r), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(f->s, "again", 5, &r), SASL_FAILURE);
	free(final);
}

/* ---- NTLM ---- */

#define NTLM_UNICODE 0x00000001u
#define NTLM_OEM 0x00000002u
#define NTLM_ESS 0x00080000u

static void put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static size_t ntlm_negotiate(unsigned char *out, uint32_t flags)
{
	memset(out, 0, 32);
	memcpy(out, "NTLMSSP", 8);
	put32(out + 8, 1);
	put32(out + 12, flags | 0x00000204u);
	return 32;
}

static size_t to_utf16(const char *s, unsigned char *out)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		out[n++] = (unsigned char)*s;
		out[n++] = 0;
	}
	return n;
}

/* An AUTHENTICATE message with the given fields (strings in UTF-16LE, or
 * OEM when oem). */
static size_t ntlm_authenticate(unsigned char *out, const unsigned char *lm, size_t lm_len,
				const unsigned char *nt, size_t nt_len, const char *domain,
				const char *user, bool oem)
{
	size_t off = 88, n;
	unsigned char tmp[512];

	memset(out, 0, 88);
	memcpy(out, "NTLMSSP", 8);
	put32(out + 8, 3);
#define FIELD(at, data, len) do { put16(out + (at), (unsigned)(len)); \
		put16(out + (at) + 2, (unsigned)(len)); put32(out + (at) + 4, (uint32_t)off); \
		memcpy(out + off, (data), (len)); off += (len); } while (0)
	FIELD(12, lm, lm_len);
	FIELD(20, nt, nt_len);
	n = oem ? strlen(domain) : to_utf16(domain, tmp);
	FIELD(28, oem ? (const unsigned char *)domain : tmp, n);
	n = oem ? strlen(user) : to_utf16(user, tmp);
	FIELD(36, oem ? (const unsigned char *)user : tmp, n);
	n = to_utf16("WORKSTATION", tmp);
	FIELD(44, tmp, n);
	FIELD(52, tmp, (size_t)0);
#undef FIELD
	put32(out + 60, 0x00088205u);
	return off;
}

/* The NTLMv2 response for the challenge message ch (our client). */
static size_t ntlmv2_response(const unsigned char *ch, size_t ch_len, const char *user,
			      const char *domain, const char *pass, unsigned char *out)
{
	unsigned char nt[16], owf[16], u16[512], blob[1024];
	size_t n = 0, ilen, ioff, blen = 0;
	char upper[256];

	assert_true(ch_len >= 48);
	assert_int_equal(auth_nt_hash(pass, nt), 0);
	for (size_t i = 0; user[i] != '\0'; i++)
		upper[i] = (char)(user[i] >= 'a' && user[i] <= 'z' ? user[i] - 32 : user[i]),
		upper[i + 1] = '\0';
	n = to_utf16(upper, u16);
	n += to_utf16(domain, u16 + n);
	hmac_md(EVP_md5(), nt, 16, u16, n, owf);
	ilen = (size_t)(ch[40] | ch[41] << 8);
	ioff = (size_t)(ch[44] | ch[45] << 8 | ch[46] << 16 | ch[47] << 24);
	assert_true(ioff + ilen <= ch_len);
	blob[blen++] = 1;
	blob[blen++] = 1;
	memset(blob + blen, 0, 6 + 8);
	blen += 14;
	memset(blob + blen, 0xaa, 8);
	blen += 8;
	memset(blob + blen, 0, 4);
	blen += 4;
	memcpy(blob + blen, ch + ioff, ilen);
	blen += ilen;
	memset(blob + blen, 0, 4);
	blen += 4;
	{
		unsigned char data[1100];

		memcpy(data, ch + 24, 8);
		memcpy(data + 8, blob, blen);
		hmac_md(EVP_md5(), owf, 16, data, 8 + blen, out);
	}
	memcpy(out + 16, blob, blen);
	return 16 + blen;
}

static enum sasl_status ntlm_client(struct fixture *f, const char *user, const char *domain,
				    const char *pass, bool initial, struct sasl_reply *r)
{
	unsigned char msg[2048], resp[1200];
	size_t n, rn;
	enum sasl_status st;
	unsigned char ch[2048];
	size_t ch_len;

	n = ntlm_negotiate(msg, NTLM_UNICODE | NTLM_ESS);
	if (initial) {
		st = sasl_server_start(f->s, "NTLM", msg, n, true, r);
	} else {
		st = sasl_server_start(f->s, "NTLM", NULL, 0, false, r);
		assert_int_equal(st, SASL_CONTINUE);
		assert_int_equal(r->len, 0);
		st = sasl_server_step(f->s, msg, n, r);
	}
	assert_int_equal(st, SASL_CONTINUE);
	ch_len = r->len;
	memcpy(ch, r->data, ch_len);
	assert_memory_equal(ch, "NTLMSSP\0\2\0\0\0", 12);
	rn = ntlmv2_response(ch, ch_len, user, domain, pass, resp);
	n = ntlm_authenticate(msg, (const unsigned char *)"", 0, resp, rn, domain, user, false);
	return sasl_server_step(f->s, msg, n, r);
}

static void test_ntlm(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;

	assert_int_equal(ntlm_client(f, "john", "WORKGROUP", "pencil", true, &r), SASL_SUCCESS);
	assert_string_equal(r.identity, "john@example.com");
	assert_string_equal(r.login, "john");
	assert_int_equal(ntlm_client(f, "john@example.com", "", "pencil", false, &r), SASL_SUCCESS);
	/* the domain field as mail domain */
	assert_int_equal(ntlm_client(f, "mary", "other.org", "s3cr\xc3\xa9t", true, &r),
			 SASL_SUCCESS);
	assert_string_equal(r.identity, "mary@other.org");
	assert_int_equal(ntlm_client(f, "john", "WORKGROUP", "wrong", true, &r), SASL_FAILURE);
	assert_string_equal(r.reason, "wrong password");
	assert_int_equal(ntlm_client(f, "nobody", "WORKGROUP", "pencil", true, &r), SASL_FAILURE);
	assert_string_equal(r.reason, "unknown user");
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
}

/* [MS-NLMP] 4.2.4: the NTLMv2 response computed in the specification
 * (user "User", domain "Domain", password "Password", server challenge
 * 0123456789abcdef, client challenge aa..aa, time 0, its target info) is
 * accepted; one flipped bit is not. */
static void test_ntlm_ms_nlmp_v2(void **state)
{
	struct fixture *f = *state;
	static const unsigned char proof[16] = { 0x68, 0xcd, 0x0a, 0xb8, 0x51, 0xe5, 0x1c, 0x96,
						 0xaa, 0xbc, 0x92, 0x7b, 0xeb, 0xef, 0x6a, 0x1c };
	static const unsigned char temp[] = {
		0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
		0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x0c, 0x00, 0x44, 0x00, 0x6f, 0x00,
		0x6d, 0x00, 0x61, 0x00, 0x69, 0x00, 0x6e, 0x00, 0x01, 0x00, 0x0c, 0x00,
		0x53, 0x00, 0x65, 0x00, 0x72, 0x00, 0x76, 0x00, 0x65, 0x00, 0x72, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };
	unsigned char nt[16 + sizeof(temp)], msg[1024], neg[32];
	struct sasl_reply r;
	size_t n;

	tb_add(&f->tb, "User", "example.com", "Password");
	f->params.test_nonce = "0123456789abcdef";
	renew(f);
	memcpy(nt, proof, 16);
	memcpy(nt + 16, temp, sizeof(temp));
	n = ntlm_negotiate(neg, NTLM_UNICODE);
	assert_int_equal(sasl_server_start(f->s, "NTLM", neg, n, true, &r), SASL_CONTINUE);
	assert_memory_equal(r.data + 24, "\x01\x23\x45\x67\x89\xab\xcd\xef", 8);
	n = ntlm_authenticate(msg, (const unsigned char *)"", 0, nt, sizeof(nt), "Domain", "User",
			      false);
	assert_int_equal(sasl_server_step(f->s, msg, n, &r), SASL_SUCCESS);
	assert_string_equal(r.identity, "user@example.com");

	nt[5] ^= 0x01;
	assert_int_equal(sasl_server_start(f->s, "NTLM", neg, 32, true, &r), SASL_CONTINUE);
	n = ntlm_authenticate(msg, (const unsigned char *)"", 0, nt, sizeof(nt), "Domain", "User",
			      false);
	assert_int_equal(sasl_server_step(f->s, msg, n, &r), SASL_FAILURE);
	assert_string_equal(r.reason, "wrong password");
}

/* [MS-NLMP] 4.2.2 and 4.2.3: NTLMv1 and NTLMv1 with extended session
 * security; refused by default, verified when auth/ntlm-v1 is on. */
static void test_ntlm_v1(void **state)
{
	struct fixture *f = *state;
	static const unsigned char v1[24] = {
		0x67, 0xc4, 0x30, 0x11, 0xf3, 0x02, 0x98, 0xa2, 0xad, 0x35, 0xec, 0xe6,
		0x4f, 0x16, 0x33, 0x1c, 0x44, 0xbd, 0xbe, 0xd9, 0x27, 0x84, 0x1f, 0x94 };
	static const unsigned char v1ess[24] = {
		0x75, 0x37, 0xf8, 0x03, 0xae, 0x36, 0x71, 0x28, 0xca, 0x45, 0x82, 0x04,
		0xbd, 0xe7, 0xca, 0xf8, 0x1e, 0x97, 0xed, 0x26, 0x83, 0x26, 0x72, 0x32 };
	unsigned char lm_ess[24] = { 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa };
	unsigned char msg[1024], neg[32];
	struct sasl_reply r;
	size_t n;

	tb_add(&f->tb, "User", "example.com", "Password");
	f->params.test_nonce = "0123456789abcdef";
	renew(f);
	/* refused by default */
	n = ntlm_negotiate(neg, NTLM_UNICODE);
	assert_int_equal(sasl_server_start(f->s, "NTLM", neg, n, true, &r), SASL_CONTINUE);
	n = ntlm_authenticate(msg, v1, 24, v1, 24, "Domain", "User", false);
	assert_int_equal(sasl_server_step(f->s, msg, n, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	assert_non_null(strstr(r.reason, "NTLMv1"));

	f->cfg->s.auth_ntlm_v1 = true;
	n = ntlm_negotiate(neg, NTLM_UNICODE);
	assert_int_equal(sasl_server_start(f->s, "NTLM", neg, n, true, &r), SASL_CONTINUE);
	n = ntlm_authenticate(msg, v1, 24, v1, 24, "Domain", "User", false);
	assert_int_equal(sasl_server_step(f->s, msg, n, &r), SASL_SUCCESS);
	/* with extended session security */
	n = ntlm_negotiate(neg, NTLM_UNICODE | NTLM_ESS);
	assert_int_equal(sasl_server_start(f->s, "NTLM", neg, n, true, &r), SASL_CONTINUE);
	n = ntlm_authenticate(msg, lm_ess, 24, v1ess, 24, "Domain", "User", false);
	assert_int_equal(sasl_server_step(f->s, msg, n, &r), SASL_SUCCESS);
	/* OEM strings */
	n = ntlm_negotiate(neg, NTLM_OEM);
	assert_int_equal(sasl_server_start(f->s, "NTLM", neg, n, true, &r), SASL_CONTINUE);
	assert_int_equal(r.data[20] & 3, NTLM_OEM);
	n = ntlm_authenticate(msg, v1, 24, v1, 24, "Domain", "User", true);
	assert_int_equal(sasl_server_step(f->s, msg, n, &r), SASL_SUCCESS);
	/* wrong one */
	n = ntlm_negotiate(neg, NTLM_UNICODE);
	assert_int_equal(sasl_server_start(f->s, "NTLM", neg, n, true, &r), SASL_CONTINUE);
	n = ntlm_authenticate(msg, v1ess, 24, v1ess, 24, "Domain", "User", false);
	assert_int_equal(sasl_server_step(f->s, msg, n, &r), SASL_FAILURE);
	f->cfg->s.auth_ntlm_v1 = false;
}

static void test_ntlm_hostile(void **state)
{
	struct fixture *f = *state;
	unsigned char msg[1024], neg[32], nt[64];
	struct sasl_reply r;
	size_t n;

	/* bad NEGOTIATE messages */
	static const struct {
		const char *data;
		size_t len;
	} bad_neg[] = {
		{ "", 0 }, { "NTLMSSP", 8 }, { "NTLMSSP\0\1\0\0\0", 12 },
		{ "NTLMSSP\0\2\0\0\0\1\0\0\0", 16 }, { "NTLMSSP\0\1\0\0\0\0\0\0\0", 16 },
		{ "ntlmssp\0\1\0\0\0\1\0\0\0", 16 },
	};
	for (size_t i = 0; i < sizeof(bad_neg) / sizeof(bad_neg[0]); i++) {
		assert_int_equal(sasl_server_start(f->s, "NTLM", bad_neg[i].data, bad_neg[i].len,
						   true, &r), SASL_FAILURE);
		assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
	}
	/* AUTHENTICATE with fields pointing outside the message */
	n = ntlm_negotiate(neg, NTLM_UNICODE);
	memset(nt, 0, sizeof(nt));
	nt[16] = nt[17] = 1;
	for (int field = 12; field <= 44; field += 8) {
		assert_int_equal(sasl_server_start(f->s, "NTLM", neg, n, true, &r), SASL_CONTINUE);
		size_t m = ntlm_authenticate(msg, nt, 24, nt, sizeof(nt), "D", "john", false);

		put32(msg + field + 4, 0xfffffff0u);
		assert_int_equal(sasl_server_step(f->s, msg, m, &r), SASL_FAILURE);
		assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
		assert_int_equal(sasl_server_start(f->s, "NTLM", neg, n, true, &r), SASL_CONTINUE);
		m = ntlm_authenticate(msg, nt, 24, nt, sizeof(nt), "D", "john", false);
		put16(msg + field, 0xffff);
		assert_int_equal(sasl_server_step(f->s, msg, m, &r), SASL_FAILURE);
		/* truncated */
		assert_int_equal(sasl_server_start(f->s, "NTLM", neg, n, true, &r), SASL_CONTINUE);
		assert_int_equal(sasl_server_step(f->s, msg, (size_t)field + 4, &r), SASL_FAILURE);
	}
	/* odd-length UTF-16 user, lone surrogate, NUL */
	{
		static const char *const users[] = { "a\0b", "\0\xdc", "\0\0" };
		static const size_t lens[] = { 3, 2, 2 };

		for (int i = 0; i < 3; i++) {
			size_t m;

			assert_int_equal(sasl_server_start(f->s, "NTLM", neg, n, true, &r),
					 SASL_CONTINUE);
			m = ntlm_authenticate(msg, nt, 0, nt, sizeof(nt), "D", "john", false);
			/* overwrite the user field with the raw bytes */
			put16(msg + 36, (unsigned)lens[i]);
			memcpy(msg + (msg[40] | msg[41] << 8), users[i], lens[i]);
			assert_int_equal(sasl_server_step(f->s, msg, m, &r), SASL_FAILURE);
			assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
		}
	}
	/* anonymous */
	assert_int_equal(sasl_server_start(f->s, "NTLM", neg, n, true, &r), SASL_CONTINUE);
	n = ntlm_authenticate(msg, nt, 0, nt, 0, "", "", false);
	assert_int_equal(sasl_server_step(f->s, msg, n, &r), SASL_FAILURE);
	assert_string_equal(r.reason, "anonymous NTLM refused");
	/* a v2 response too short for its blob, or with a wrong blob header */
	n = ntlm_negotiate(neg, NTLM_UNICODE);
	assert_int_equal(sasl_server_start(f->s, "NTLM", neg, n, true, &r), SASL_CONTINUE);
	n = ntlm_authenticate(msg, nt, 0, nt, 30, "D", "john", false);
	assert_int_equal(sasl_server_step(f->s, msg, n, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
	n = ntlm_negotiate(neg, NTLM_UNICODE);
	assert_int_equal(sasl_server_start(f->s, "NTLM", neg, n, true, &r), SASL_CONTINUE);
	nt[16] = 2;
	n = ntlm_authenticate(msg, nt, 0, nt, sizeof(nt), "D", "john", false);
	assert_int_equal(sasl_server_step(f->s, msg, n, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
}

/* ---- state discipline (HOSTILE-INPUT 22) and the base64 forms (16) ---- */

static void test_state_resets(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;

	/* step without an exchange */
	assert_int_equal(sasl_server_step(f->s, "x", 1, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_STATE);
	assert_int_equal(sasl_server_step_text(f->s, "*", 1, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_STATE);
	/* start LOGIN, abort, start PLAIN: no LOGIN state leaks */
	assert_int_equal(sasl_server_start_text(f->s, "LOGIN", NULL, 0, &r), SASL_CONTINUE);
	assert_string_equal(r.text, "VXNlcm5hbWU6");   /* "Username:" */
	assert_int_equal(sasl_server_step_text(f->s, "am9obg==", 8, &r), SASL_CONTINUE);
	assert_int_equal(sasl_server_step_text(f->s, "*", 1, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_ABORTED);
	assert_false(sasl_server_in_progress(f->s));
	assert_int_equal(sasl_server_start_text(f->s, "PLAIN", "AGpvaG4AcGVuY2ls", 16, &r),
			 SASL_SUCCESS);
	assert_string_equal(r.identity, "john@example.com");
	/* mechanism switch mid-exchange: SCRAM then LOGIN then PLAIN */
	assert_int_equal(sasl_server_start(f->s, "SCRAM-SHA-1", "n,,n=john,r=abc", 15, true, &r),
			 SASL_CONTINUE);
	assert_int_equal(sasl_server_start(f->s, "LOGIN", "john", 4, true, &r), SASL_CONTINUE);
	assert_string_equal((const char *)r.data, "Password:");
	assert_int_equal(sasl_server_start(f->s, "PLAIN", NULL, 0, false, &r), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(f->s, "\0john\0pencil", 12, &r), SASL_SUCCESS);
	/* AUTH twice after success: a fresh exchange (the front end answers
	 * 503 itself; the engine never carries anything over) */
	assert_int_equal(sasl_server_start(f->s, "PLAIN", "\0john\0wrong", 11, true, &r),
			 SASL_FAILURE);
	assert_null(r.identity);
	/* after a failure the next step is out of state */
	assert_int_equal(sasl_server_step(f->s, "\0john\0pencil", 12, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_STATE);
	/* abort without anything running is harmless */
	sasl_server_abort(f->s);
	sasl_server_abort(f->s);
}

static void test_base64_forms(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;
	static const char *const bad[] = {
		"=", "====", "AGpvaG4AcGVuY2ls=", "AGpvaG4A cGVuY2ls", "AGpvaG4AcGVuY2l",
		"AGpvaG4AcGVuY2ls\r", "AGpv-G4AcGVuY2ls", "AGpvaG4AcGVuY2l=", "\xc3\xa9\xc3\xa9",
	};
	char *big;

	/* "=" is an empty initial response: PLAIN then fails to parse */
	assert_int_equal(sasl_server_start_text(f->s, "PLAIN", "=", 1, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
	/* "=" for LOGIN: no user yet */
	assert_int_equal(sasl_server_start_text(f->s, "LOGIN", "=", 1, &r), SASL_CONTINUE);
	assert_string_equal(r.text, "VXNlcm5hbWU6");
	/* bad base64 in the initial response and in steps */
	for (size_t i = 1; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sasl_server_start_text(f->s, "PLAIN", bad[i], strlen(bad[i]), &r),
				 SASL_FAILURE);
		assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
		assert_int_equal(r.mech, SASL_MECH_PLAIN);
		assert_int_equal(sasl_server_start_text(f->s, "PLAIN", NULL, 0, &r), SASL_CONTINUE);
		assert_string_equal(r.text, "");
		assert_int_equal(sasl_server_step_text(f->s, bad[i], strlen(bad[i]), &r),
				 SASL_FAILURE);
		assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
		assert_false(sasl_server_in_progress(f->s));
	}
	/* 64 KiB and more of base64 */
	big = xmalloc(200000);
	memset(big, 'A', 200000);
	assert_int_equal(sasl_server_start_text(f->s, "PLAIN", big, 87384, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
	assert_int_equal(sasl_server_start_text(f->s, "PLAIN", big, 200000, &r), SASL_FAILURE);
	assert_string_equal(r.reason, "response too long");
	assert_int_equal(sasl_server_start_text(f->s, "PLAIN", NULL, 0, &r), SASL_CONTINUE);
	assert_int_equal(sasl_server_step_text(f->s, big, 200000, &r), SASL_FAILURE);
	assert_string_equal(r.reason, "response too long");
	/* exactly 64 KiB of zeros decodes (all NULs: a malformed PLAIN) */
	assert_int_equal(sasl_server_start_text(f->s, "PLAIN", big, 87380, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_SYNTAX);
	free(big);
	/* challenges come back in base64 */
	assert_int_equal(sasl_server_start_text(f->s, "CRAM-MD5", NULL, 0, &r), SASL_CONTINUE);
	{
		unsigned char dec[200];
		size_t n;

		assert_int_equal(base64_decode(r.text, strlen(r.text), dec, sizeof(dec), &n), 0);
		assert_int_equal(n, r.len);
		assert_memory_equal(dec, r.data, n);
	}
	/* a full SCRAM exchange over the text forms, with a lower-case name */
	{
		struct scram_client c = { .md = EVP_sha1(), .len = 20, .gs2 = "n,,",
					  .first_bare = "n=john,r=xyz" };
		char *first = b64("n,,n=john,r=xyz", 15), *final, *final64;
		unsigned char dec[300];
		size_t n;

		assert_int_equal(sasl_server_start_text(f->s, "scram-sha-1", first, strlen(first),
							&r), SASL_CONTINUE);
		assert_int_equal(base64_decode(r.text, strlen(r.text), dec, sizeof(dec) - 1, &n), 0);
		dec[n] = '\0';
		final = scram_final(&c, "pencil", (const char *)dec, NULL);
		final64 = b64(final, strlen(final));
		assert_int_equal(sasl_server_step_text(f->s, final64, strlen(final64), &r),
				 SASL_CONTINUE);
		assert_int_equal(sasl_server_step_text(f->s, "", 0, &r), SASL_SUCCESS);
		free(first);
		free(final);
		free(final64);
	}
}

/* Byte strings of every length 0..64 and a few patterns to every
 * mechanism's first and second step: no crash, a clean reply. */
static void test_garbage_every_mechanism(void **state)
{
	struct fixture *f = *state;
	const char *mechs[] = { "PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1",
				"SCRAM-SHA-256", "NTLM" };
	unsigned char data[64];
	struct sasl_reply r;

	for (size_t m = 0; m < sizeof(mechs) / sizeof(mechs[0]); m++) {
		for (size_t len = 0; len <= sizeof(data); len++) {
			for (int pat = 0; pat < 4; pat++) {
				for (size_t i = 0; i < len; i++)
					data[i] = (unsigned char)(pat == 0 ? 0 : pat == 1 ? 0xff
								  : pat == 2 ? ',' : i * 37);
				sasl_server_start(f->s, mechs[m], data, len, true, &r);
				if (r.status == SASL_CONTINUE)
					sasl_server_step(f->s, data, len, &r);
				if (r.status == SASL_CONTINUE)
					sasl_server_step(f->s, data, len, &r);
				assert_true(r.status == SASL_CONTINUE || r.status == SASL_FAILURE);
				sasl_server_start(f->s, mechs[m], NULL, 0, false, &r);
				if (r.status == SASL_CONTINUE)
					sasl_server_step(f->s, data, len, &r);
			}
		}
	}
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_plain),
		T(test_plain_authzid),
		T(test_plain_disabled_and_tempfail),
		T(test_plain_hostile),
		T(test_login),
		T(test_plaintext_needs_tls),
		T(test_offered_list),
		cmocka_unit_test(test_mechanisms_checked_at_load),
		T(test_cram_md5_rfc2195),
		T(test_cram_md5),
		T(test_digest_md5_rfc2831),
		T(test_digest_md5),
		T(test_digest_md5_hostile),
		T(test_scram_rfc_examples),
		T(test_scram),
		T(test_scram_saslprep),
		T(test_scram_unknown_user_salt),
		T(test_scram_hostile),
		T(test_ntlm),
		T(test_ntlm_ms_nlmp_v2),
		T(test_ntlm_v1),
		T(test_ntlm_hostile),
		T(test_state_resets),
		T(test_base64_forms),
		T(test_garbage_every_mechanism),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
