/*
 * Interoperability: Cyrus SASL's client plugins (Debian's libsasl2-2 and
 * libsasl2-modules, the code behind many real mail clients and tools)
 * authenticate against our sasl_server with every mechanism they share
 * with us: PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM-SHA-1, SCRAM-SHA-256,
 * NTLM.  Our own test clients (test_sasl.c) share our reading of the RFCs;
 * this one does not.
 *
 * libsasl2 is loaded with dlopen, so neither the product nor the build
 * depends on it; without it the tests are skipped and say why.  The few
 * declarations needed are Cyrus SASL v2's stable ABI (sasl/sasl.h), copied
 * here so that libsasl2-dev is not needed either.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sasl.h"
#include "auth_test_backend.h"

/* ---- the parts of sasl/sasl.h we use (prefixed: ours has SASL_CONTINUE
 * too) ---- */

#define CY_SASL_OK 0
#define CY_SASL_CONTINUE 1
#define CY_SASL_INTERACT 2
#define CY_SASL_CB_LIST_END 0
#define CY_SASL_CB_GETOPT 1
#define CY_SASL_CB_USER 0x4001
#define CY_SASL_CB_AUTHNAME 0x4002
#define CY_SASL_CB_PASS 0x4004
#define CY_SASL_CB_GETREALM 0x4008
#define CY_SASL_SEC_PROPS 101

typedef struct sasl_conn sasl_conn_t;
typedef struct sasl_interact sasl_interact_t;
typedef struct {
	unsigned long id;
	int (*proc)(void);
	void *context;
} sasl_callback_t;
typedef struct {
	unsigned long len;
	unsigned char data[1];
} sasl_secret_t;
typedef struct {
	unsigned min_ssf, max_ssf, maxbufsize, security_flags;
	const char **property_names, **property_values;
} sasl_security_properties_t;

static struct {
	void *lib;
	char reason[256];
	int (*client_init)(const sasl_callback_t *);
	int (*client_new)(const char *, const char *, const char *, const char *,
			  const sasl_callback_t *, unsigned, sasl_conn_t **);
	int (*client_start)(sasl_conn_t *, const char *, sasl_interact_t **, const char **,
			    unsigned *, const char **);
	int (*client_step)(sasl_conn_t *, const char *, unsigned, sasl_interact_t **,
			   const char **, unsigned *);
	int (*setprop)(sasl_conn_t *, int, const void *);
	void (*dispose)(sasl_conn_t **);
	const char *(*errdetail)(sasl_conn_t *);
} cy;

/* ---- client callbacks ---- */

struct creds {
	const char *authname;
	const char *authzid;
	const char *password;
	const char *realm;        /* NULL: the first one offered */
	const char *ntlm_v2;      /* "yes" to make the NTLM plugin send NTLMv2 */
	sasl_secret_t *secret;
};

static int cb_simple(void *context, int id, const char **result, unsigned *len)
{
	struct creds *c = context;

	*result = id == CY_SASL_CB_AUTHNAME ? c->authname : c->authzid != NULL ? c->authzid : "";
	if (len != NULL)
		*len = (unsigned)strlen(*result);
	return CY_SASL_OK;
}

static int cb_pass(sasl_conn_t *conn, void *context, int id, sasl_secret_t **psecret)
{
	struct creds *c = context;
	size_t n = strlen(c->password);

	(void)conn;
	(void)id;
	free(c->secret);
	c->secret = xcalloc(1, sizeof(*c->secret) + n);
	c->secret->len = n;
	memcpy(c->secret->data, c->password, n);
	*psecret = c->secret;
	return CY_SASL_OK;
}

static int cb_realm(void *context, int id, const char **avail, const char **result)
{
	struct creds *c = context;

	(void)id;
	*result = c->realm != NULL ? c->realm : avail != NULL && avail[0] != NULL ? avail[0] : "";
	return CY_SASL_OK;
}

static int cb_getopt(void *context, const char *plugin, const char *option, const char **result,
		     unsigned *len)
{
	struct creds *c = context;

	(void)plugin;
	if (strcmp(option, "reauth_timeout") == 0) {
		/* No DIGEST-MD5 client reauth cache: each exchange starts from
		 * our challenge, not from the previous test's state. */
		*result = "0";
		if (len != NULL)
			*len = 1;
		return CY_SASL_OK;
	}
	if (strcmp(option, "ntlm_v2") == 0 && c->ntlm_v2 != NULL) {
		*result = c->ntlm_v2;
		if (len != NULL)
			*len = (unsigned)strlen(*result);
		return CY_SASL_OK;
	}
	return -1;   /* SASL_FAIL: no such option */
}

static int group_setup(void **state)
{
	static const sasl_callback_t none[] = { { CY_SASL_CB_LIST_END, NULL, NULL } };

	(void)state;
	cy.lib = dlopen("libsasl2.so.2", RTLD_NOW | RTLD_LOCAL);
	if (cy.lib == NULL) {
		snprintf(cy.reason, sizeof(cy.reason), "libsasl2.so.2 not available (%s): install "
			 "libsasl2-2 and libsasl2-modules", dlerror());
		fprintf(stderr, "test_cyrus_interop: skipping: %s\n", cy.reason);
		return 0;
	}
#define SYM(field, name) *(void **)&cy.field = dlsym(cy.lib, name)
	SYM(client_init, "sasl_client_init");
	SYM(client_new, "sasl_client_new");
	SYM(client_start, "sasl_client_start");
	SYM(client_step, "sasl_client_step");
	SYM(setprop, "sasl_setprop");
	SYM(dispose, "sasl_dispose");
	SYM(errdetail, "sasl_errdetail");
#undef SYM
	if (cy.client_init == NULL || cy.client_new == NULL || cy.client_start == NULL ||
	    cy.client_step == NULL || cy.setprop == NULL || cy.dispose == NULL ||
	    cy.client_init(none) != CY_SASL_OK) {
		snprintf(cy.reason, sizeof(cy.reason), "libsasl2 did not initialise");
		dlclose(cy.lib);
		cy.lib = NULL;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	/* libsasl2 keeps its plugins loaded; leave the library mapped. */
	return 0;
}

/* ---- the exchange ---- */

/* sasl_callback_t's proc is a generic function pointer (the C way of
 * sasl.h); void (*)(void) is the cast GCC accepts between function types. */
#define CB(fn) ((int (*)(void))(void (*)(void))(fn))

struct fixture {
	struct tb tb;
	struct cfg *cfg;
	struct sasl_backend backend;
	struct sasl_params params;
	struct sasl_server *s;
	char host[64];
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	f->cfg = tb_cfg();
	f->tb.primary = "example.com";
	f->tb.realms[0] = "example.com";
	f->tb.realms[1] = "other.org";
	tb_add(&f->tb, "john", "example.com", "pencil 42");
	tb_add(&f->tb, "mary", "other.org", "s3cr\xc3\xa9t");
	tb_backend(&f->tb, &f->backend);
	f->params.cfg = f->cfg;
	f->params.service = "imap";
	f->params.hostname = "mail.example.com";
	f->params.secure = true;
	f->s = sasl_server_new(&f->params, &f->backend);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sasl_server_free(&f->s);
	tb_free(&f->tb);
	cfg_unref(&f->cfg);
	free(f);
	return 0;
}

/* Runs Cyrus' client for mech against our server until one side ends.
 * Returns our final status. */
static enum sasl_status cyrus(struct fixture *f, const char *mech, struct creds *c,
			      struct sasl_reply *r)
{
	sasl_callback_t cbs[] = {
		{ CY_SASL_CB_AUTHNAME, CB(cb_simple), c },
		{ CY_SASL_CB_USER, CB(cb_simple), c },
		{ CY_SASL_CB_PASS, CB(cb_pass), c },
		{ CY_SASL_CB_GETREALM, CB(cb_realm), c },
		{ CY_SASL_CB_GETOPT, CB(cb_getopt), c },
		{ CY_SASL_CB_LIST_END, NULL, NULL },
	};
	sasl_security_properties_t props = { .min_ssf = 0, .max_ssf = 0, .maxbufsize = 65536 };
	sasl_conn_t *conn = NULL;
	const char *out = NULL, *chosen = NULL;
	unsigned out_len = 0;
	enum sasl_status st;
	int rc, rounds = 0;

	/* A host name of its own for every exchange: Cyrus' DIGEST-MD5 client
	 * keeps per-process state per server name (its reauthentication
	 * cache), and with it answers a later challenge with realm=<host>. */
	static unsigned serial;

	snprintf(f->host, sizeof(f->host), "mail%u.example.com", ++serial);
	f->params.hostname = f->host;
	sasl_server_free(&f->s);
	f->s = sasl_server_new(&f->params, &f->backend);
	rc = cy.client_new("imap", f->host, NULL, NULL, cbs, 0, &conn);
	assert_int_equal(rc, CY_SASL_OK);
	assert_int_equal(cy.setprop(conn, CY_SASL_SEC_PROPS, &props), CY_SASL_OK);
	rc = cy.client_start(conn, mech, NULL, &out, &out_len, &chosen);
	if (rc != CY_SASL_OK && rc != CY_SASL_CONTINUE)
		fail_msg("sasl_client_start(%s): %d %s", mech, rc,
			 cy.errdetail != NULL ? cy.errdetail(conn) : "");
	if (getenv("CYRUS_DEBUG") != NULL)
		print_message("start %s: rc %d out %p len %u\n", mech, rc, (const void *)out, out_len);
	assert_string_equal(chosen, mech);
	st = sasl_server_start(f->s, mech, out, out_len, out != NULL, r);
	if (getenv("CYRUS_DEBUG") != NULL)
		print_message("server: %d %s len %zu %.*s\n", st, r->reason, r->len, (int)r->len, (const char *)r->data);
	while (st == SASL_CONTINUE && rounds++ < 10) {
		rc = cy.client_step(conn, (const char *)r->data, (unsigned)r->len, NULL, &out,
				    &out_len);
		if (rc != CY_SASL_OK && rc != CY_SASL_CONTINUE) {
			print_message("cyrus client step (%s): %d %s\n", mech, rc,
				      cy.errdetail != NULL ? cy.errdetail(conn) : "");
			sasl_server_abort(f->s);
			st = SASL_FAILURE;
			r->status = SASL_FAILURE;
			r->reason = "client refused the server";
			break;
		}
		if (getenv("CYRUS_DEBUG") != NULL)
			print_message("client: %.*s\n", (int)out_len, out != NULL ? out : "");
		st = sasl_server_step(f->s, out, out_len, r);
	}
	/* On success with additional data, the client must accept it too. */
	if (st == SASL_SUCCESS && r->len > 0) {
		rc = cy.client_step(conn, (const char *)r->data, (unsigned)r->len, NULL, &out,
				    &out_len);
		assert_int_equal(rc, CY_SASL_OK);
	}
	cy.dispose(&conn);
	free(c->secret);
	c->secret = NULL;
	return st;
}

#define NEED_CYRUS() do { if (cy.lib == NULL) { print_message("skipped: %s\n", cy.reason); \
	skip(); } } while (0)

static void test_cyrus_all_mechanisms(void **state)
{
	struct fixture *f = *state;
	const char *mechs[] = { "PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1",
				"SCRAM-SHA-256" };
	struct sasl_reply r;

	NEED_CYRUS();
	for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++) {
		struct creds good = { .authname = "john", .password = "pencil 42", .realm = "example.com" };
		struct creds bad = { .authname = "john", .password = "pencil 43", .realm = "example.com" };
		struct creds other = { .authname = "mary@other.org", .password = "s3cr\xc3\xa9t",
				       .realm = "other.org" };

		print_message("%s\n", mechs[i]);
		if (cyrus(f, mechs[i], &good, &r) != SASL_SUCCESS)
			fail_msg("%s: %s", mechs[i], r.reason);
		assert_string_equal(r.identity, "john@example.com");
		assert_int_equal(cyrus(f, mechs[i], &bad, &r), SASL_FAILURE);
		assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
		if (cyrus(f, mechs[i], &other, &r) != SASL_SUCCESS)
			fail_msg("%s (other domain): %s", mechs[i], r.reason);
		assert_string_equal(r.identity, "mary@other.org");
	}
}

static void test_cyrus_success_data(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;
	const char *mechs[] = { "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256" };

	NEED_CYRUS();
	f->params.success_data = true;
	sasl_server_free(&f->s);
	f->s = sasl_server_new(&f->params, &f->backend);
	for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++) {
		struct creds good = { .authname = "john", .password = "pencil 42", .realm = "example.com" };

		if (cyrus(f, mechs[i], &good, &r) != SASL_SUCCESS)
			fail_msg("%s: %s", mechs[i], r.reason);
		assert_true(r.len > 0);
	}
}

static void test_cyrus_authzid(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;
	const char *mechs[] = { "PLAIN", "DIGEST-MD5", "SCRAM-SHA-256" };

	NEED_CYRUS();
	for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++) {
		struct creds self = { .authname = "john", .authzid = "john@example.com", .realm = "example.com",
				      .password = "pencil 42" };
		struct creds other = { .authname = "john", .authzid = "mary@other.org", .realm = "example.com",
				       .password = "pencil 42" };

		assert_int_equal(cyrus(f, mechs[i], &self, &r), SASL_SUCCESS);
		assert_int_equal(cyrus(f, mechs[i], &other, &r), SASL_FAILURE);
		assert_string_equal(r.reason, "authorization identity refused");
	}
}

static void test_cyrus_ntlm(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;
	struct creds v2 = { .authname = "john", .password = "pencil 42", .ntlm_v2 = "yes" };
	struct creds v2bad = { .authname = "john", .password = "wrong", .ntlm_v2 = "yes" };
	struct creds v1 = { .authname = "john", .password = "pencil 42", .ntlm_v2 = "no" };

	NEED_CYRUS();
	if (cyrus(f, "NTLM", &v2, &r) != SASL_SUCCESS)
		fail_msg("NTLMv2: %s", r.reason);
	assert_string_equal(r.identity, "john@example.com");
	assert_int_equal(cyrus(f, "NTLM", &v2bad, &r), SASL_FAILURE);
	assert_string_equal(r.reason, "wrong password");
	/* Cyrus' default is NTLMv1: refused unless auth/ntlm-v1 */
	assert_int_equal(cyrus(f, "NTLM", &v1, &r), SASL_FAILURE);
	assert_non_null(strstr(r.reason, "NTLMv1"));
	f->cfg->s.auth_ntlm_v1 = true;
	if (cyrus(f, "NTLM", &v1, &r) != SASL_SUCCESS)
		fail_msg("NTLMv1: %s", r.reason);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_cyrus_all_mechanisms),
		T(test_cyrus_success_data),
		T(test_cyrus_authzid),
		T(test_cyrus_ntlm),
	};
#undef T

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
