/*
 * GSSAPI (RFC 4752) against a real MIT KDC: the test creates a realm in a
 * temporary directory (kdb5_util create -s), adds principals and a service
 * keytab with kadmin.local, starts krb5kdc on a free loopback port, gets
 * tickets with kinit and a password, and then plays the client with
 * gss_init_sec_context against sasl_server.
 *
 * Needs Debian's krb5-kdc, krb5-admin-server and krb5-user (installed by
 * scripts/install-deps.sh).  When they are missing, or the KDC cannot run
 * here, every test is skipped and the reason printed.
 *
 * The realm's configuration comes from the templates in tests/fixtures/krb5.
 * The krb5 library reads KRB5_CONFIG at each new context; the test sets it
 * (and KRB5_KDC_PROFILE, KRB5RCACHEDIR) once, before any GSS call.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "auth/sasl.h"
#include "core/fileio.h"
#include "auth_test_backend.h"

#define REALM "PETREL.TEST"
#define HOST "mail.petrel.test"
#define USER_PASSWORD "kerberos-pw-1"

static struct {
	bool ready;
	char skip_reason[512];
	char dir[64];
	pid_t kdc;
	int port;
} kdc;

/* MIT krb5 1.20 leaks the principal it builds in gss_acquire_cred_from
 * when the keytab has no key for the requested acceptor (96 bytes per
 * failure, inside libkrb5; on that error we get no credential to release).
 * test_gssapi_bad_keytab_and_tokens provokes it on purpose: tell
 * LeakSanitizer (only linked in sanitizer builds) that it is not ours. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:krb5_build_principal_alloc_va\n";
}

/* ---- the KDC ---- */

static const char *find_tool(const char *name)
{
	static char path[256];
	const char *dirs[] = { "/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin",
			       "/usr/local/bin" };

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dirs[i], name);
		if (access(path, X_OK) == 0)
			return path;
	}
	return NULL;
}

/* A port free on 127.0.0.1 for both TCP and UDP (a race with other
 * processes is possible, and then the KDC fails to start: skipped). */
static int free_port(void)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		struct sockaddr_in a = { .sin_family = AF_INET };
		socklen_t len = sizeof(a);
		int t = socket(AF_INET, SOCK_STREAM, 0), u, port;

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (t < 0 || bind(t, (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    getsockname(t, (struct sockaddr *)&a, &len) < 0) {
			if (t >= 0)
				close(t);
			continue;
		}
		port = ntohs(a.sin_port);
		u = socket(AF_INET, SOCK_DGRAM, 0);
		if (u >= 0 && bind(u, (struct sockaddr *)&a, sizeof(a)) == 0) {
			close(u);
			close(t);
			return port;
		}
		if (u >= 0)
			close(u);
		close(t);
	}
	return -1;
}

static int write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", kdc.dir, name);
	FILE *f = fopen(path, "w");
	int ret = -1;

	if (f != NULL) {
		ret = fputs(text, f) < 0 ? -1 : 0;
		if (fclose(f) != 0)
			ret = -1;
	}
	free(path);
	return ret;
}

/* Copies tests/fixtures/krb5/NAME into the realm directory with @REALM@,
 * @DIR@ and @PORT@ replaced. */
static int copy_template(const char *name, const char *to)
{
	const char *data = getenv("PETREL_TEST_DATA");
	char *path = xasprintf("%s/krb5/%s", data != NULL ? data : "tests/fixtures", name);
	char *text, port[16];
	size_t len;
	struct buf out;
	int ret;

	if (fileio_read_all(path, 1 << 20, &text, &len) < 0) {
		free(path);
		return -1;
	}
	free(path);
	snprintf(port, sizeof(port), "%d", kdc.port);
	buf_init(&out, 1 << 20);
	for (const char *p = text; *p != '\0';) {
		if (strncmp(p, "@REALM@", 7) == 0) {
			ret = buf_append_str(&out, REALM);
			p += 7;
		} else if (strncmp(p, "@DIR@", 5) == 0) {
			ret = buf_append_str(&out, kdc.dir);
			p += 5;
		} else if (strncmp(p, "@PORT@", 6) == 0) {
			ret = buf_append_str(&out, port);
			p += 6;
		} else {
			ret = buf_append_char(&out, *p++);
		}
		if (ret < 0)
			return -1;
	}
	ret = write_file(to, out.data);
	buf_deinit(&out);
	free(text);
	return ret;
}

/* Runs a shell command with the realm's environment; input (may be NULL)
 * goes to its stdin.  Output goes to DIR/cmd.log.  Returns the exit code. */
static int run(const char *input, const char *fmt, ...) PETREL_PRINTF(2, 3);
static int run(const char *input, const char *fmt, ...)
{
	va_list ap;
	char cmd[2048], full[2300];
	FILE *p;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "(%s) >>%s/cmd.log 2>&1", cmd, kdc.dir);
	p = popen(full, "w");
	if (p == NULL)
		return -1;
	if (input != NULL)
		fputs(input, p);
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool kdc_listening(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)kdc.port) };
	int s = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (s >= 0)
		close(s);
	return ok;
}

static int skip_all(const char *fmt, ...) PETREL_PRINTF(1, 2);
static int skip_all(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(kdc.skip_reason, sizeof(kdc.skip_reason), fmt, ap);
	va_end(ap);
	fprintf(stderr, "test_gssapi: skipping: %s\n", kdc.skip_reason);
	kdc.ready = false;
	return 0;
}

static int group_setup(void **state)
{
	const char *tools[] = { "krb5kdc", "kdb5_util", "kadmin.local", "kinit" };
	char *env;

	(void)state;
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
		if (find_tool(tools[i]) == NULL)
			return skip_all("%s not found: install krb5-kdc, krb5-admin-server and "
					"krb5-user (scripts/install-deps.sh)", tools[i]);
	snprintf(kdc.dir, sizeof(kdc.dir), "/tmp/petrel-krb5-XXXXXX");
	if (mkdtemp(kdc.dir) == NULL)
		return skip_all("mkdtemp: %s", strerror(errno));
	kdc.port = free_port();
	if (kdc.port < 0)
		return skip_all("no free loopback port for the KDC");

	if (copy_template("krb5.conf.in", "krb5.conf") < 0 ||
	    copy_template("kdc.conf.in", "kdc.conf") < 0 || write_file("kadm5.acl", "") < 0)
		return skip_all("cannot read tests/fixtures/krb5 templates (PETREL_TEST_DATA=%s)",
				getenv("PETREL_TEST_DATA") != NULL ? getenv("PETREL_TEST_DATA")
								   : "unset");

	env = xasprintf("%s/krb5.conf", kdc.dir);
	setenv("KRB5_CONFIG", env, 1);
	free(env);
	env = xasprintf("%s/kdc.conf", kdc.dir);
	setenv("KRB5_KDC_PROFILE", env, 1);
	free(env);
	setenv("KRB5RCACHEDIR", kdc.dir, 1);
	env = xasprintf("FILE:%s/default.cc", kdc.dir);
	setenv("KRB5CCNAME", env, 1);
	free(env);

	if (run(NULL, "kdb5_util create -s -r " REALM " -P master-pw-1") != 0)
		return skip_all("kdb5_util create failed (see %s/cmd.log)", kdc.dir);
	if (run(NULL, "kadmin.local -r " REALM " -q 'addprinc -pw " USER_PASSWORD " john' && "
		      "kadmin.local -r " REALM " -q 'addprinc -pw " USER_PASSWORD " john/admin' && "
		      "kadmin.local -r " REALM " -q 'addprinc -pw " USER_PASSWORD " ghost' && "
		      "kadmin.local -r " REALM " -q 'addprinc -randkey imap/" HOST "' && "
		      "kadmin.local -r " REALM " -q 'addprinc -randkey smtp/" HOST "' && "
		      "kadmin.local -r " REALM " -q 'ktadd -k %s/imap.keytab imap/" HOST "' && "
		      "kadmin.local -r " REALM " -q 'ktadd -k %s/all.keytab -norandkey imap/"
		      HOST " smtp/" HOST "'", kdc.dir, kdc.dir) != 0)
		return skip_all("kadmin.local failed (see %s/cmd.log)", kdc.dir);

	kdc.kdc = fork();
	if (kdc.kdc < 0)
		return skip_all("fork: %s", strerror(errno));
	if (kdc.kdc == 0) {
		char *log = xasprintf("%s/krb5kdc.out", kdc.dir);
		FILE *f = freopen(log, "w", stdout);

		(void)f;
		dup2(STDOUT_FILENO, STDERR_FILENO);
		execl(find_tool("krb5kdc"), "krb5kdc", "-n", "-r", REALM, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100 && !kdc_listening(); i++) {
		int st;

		if (waitpid(kdc.kdc, &st, WNOHANG) == kdc.kdc) {
			kdc.kdc = 0;
			return skip_all("krb5kdc exited at start (see %s/krb5kdc.out)", kdc.dir);
		}
		usleep(50 * 1000);
	}
	if (!kdc_listening())
		return skip_all("krb5kdc does not listen on 127.0.0.1:%d", kdc.port);

	/* Tickets, with the password through kinit's stdin. */
	if (run(USER_PASSWORD "\n", "KRB5CCNAME=FILE:%s/john.cc kinit john@" REALM, kdc.dir) != 0 ||
	    run(USER_PASSWORD "\n", "KRB5CCNAME=FILE:%s/admin.cc kinit john/admin@" REALM,
		kdc.dir) != 0 ||
	    run(USER_PASSWORD "\n", "KRB5CCNAME=FILE:%s/ghost.cc kinit ghost@" REALM, kdc.dir) != 0)
		return skip_all("kinit failed (see %s/cmd.log)", kdc.dir);
	/* a wrong password gets no ticket at all: Kerberos refuses it at the
	 * KDC, before any server sees anything */
	if (run("wrong-password\n", "KRB5CCNAME=FILE:%s/bad.cc kinit john@" REALM, kdc.dir) == 0)
		return skip_all("kinit accepted a wrong password?");
	kdc.ready = true;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (kdc.kdc > 0) {
		kill(kdc.kdc, SIGTERM);
		waitpid(kdc.kdc, NULL, 0);
	}
	if (kdc.dir[0] != '\0' && getenv("PETREL_KEEP_KDC") == NULL) {
		char *cmd = xasprintf("rm -rf '%s'", kdc.dir);

		if (system(cmd) != 0)
			fprintf(stderr, "test_gssapi: could not remove %s\n", kdc.dir);
		free(cmd);
	}
	return 0;
}

/* ---- the client ---- */

struct client {
	gss_cred_id_t cred;
	gss_ctx_id_t ctx;
	gss_name_t target;
};

static void client_init(struct client *c, const char *ccache, const char *target)
{
	OM_uint32 major, minor;
	char *cc = xasprintf("FILE:%s/%s", kdc.dir, ccache);
	gss_key_value_element_desc el = { .key = "ccache", .value = cc };
	gss_key_value_set_desc store = { .count = 1, .elements = &el };
	gss_buffer_desc name = { .length = strlen(target), .value = (void *)target };

	c->ctx = GSS_C_NO_CONTEXT;
	major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
				      GSS_C_INITIATE, &store, &c->cred, NULL, NULL);
	assert_false(GSS_ERROR(major));
	major = gss_import_name(&minor, &name, GSS_C_NT_HOSTBASED_SERVICE, &c->target);
	assert_false(GSS_ERROR(major));
	free(cc);
}

static void client_free(struct client *c)
{
	OM_uint32 minor;

	if (c->ctx != GSS_C_NO_CONTEXT)
		gss_delete_sec_context(&minor, &c->ctx, GSS_C_NO_BUFFER);
	gss_release_cred(&minor, &c->cred);
	gss_release_name(&minor, &c->target);
}

/* One gss_init_sec_context call; returns the major status and the token. */
static OM_uint32 client_step(struct client *c, const void *in, size_t in_len,
			     gss_buffer_desc *out)
{
	gss_buffer_desc input = { .length = in_len, .value = (void *)in };
	OM_uint32 minor;

	return gss_init_sec_context(&minor, c->cred, &c->ctx, c->target, (gss_OID)gss_mech_krb5,
				    GSS_C_MUTUAL_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_INTEG_FLAG, 0,
				    GSS_C_NO_CHANNEL_BINDINGS, in_len > 0 ? &input : GSS_C_NO_BUFFER,
				    NULL, out, NULL, NULL);
}

/* The whole exchange; authzid may be NULL.  Returns the final status. */
static enum sasl_status exchange(struct sasl_server *s, const char *ccache, const char *target,
				 const char *authzid, struct sasl_reply *r)
{
	struct client c;
	gss_buffer_desc out = GSS_C_EMPTY_BUFFER, wrapped = GSS_C_EMPTY_BUFFER, plain;
	OM_uint32 major, minor;
	unsigned char layer[300];
	enum sasl_status st;
	int rounds = 0;

	client_init(&c, ccache, target);
	major = client_step(&c, NULL, 0, &out);
	assert_false(GSS_ERROR(major));
	st = sasl_server_start(s, "GSSAPI", out.value, out.length, true, r);
	gss_release_buffer(&minor, &out);
	/* context establishment: feed server tokens until our side is done */
	while (st == SASL_CONTINUE && (major & GSS_S_CONTINUE_NEEDED) && rounds++ < 5) {
		major = client_step(&c, r->data, r->len, &out);
		assert_false(GSS_ERROR(major));
		st = sasl_server_step(s, out.value, out.length, r);
		gss_release_buffer(&minor, &out);
	}
	if (st != SASL_CONTINUE)
		goto out;
	/* the server's security layer offer */
	{
		gss_buffer_desc in = { .length = r->len, .value = (void *)r->data };
		const unsigned char *p;

		major = gss_unwrap(&minor, c.ctx, &in, &plain, NULL, NULL);
		assert_false(GSS_ERROR(major));
		assert_int_equal(plain.length, 4);
		p = plain.value;
		assert_true(p[0] & 0x01);   /* "no security layer" offered */
		gss_release_buffer(&minor, &plain);
	}
	layer[0] = 0x01;
	layer[1] = layer[2] = layer[3] = 0;
	if (authzid != NULL)
		memcpy(layer + 4, authzid, strlen(authzid));
	{
		gss_buffer_desc in = { .length = 4 + (authzid != NULL ? strlen(authzid) : 0),
				       .value = layer };

		major = gss_wrap(&minor, c.ctx, 0, GSS_C_QOP_DEFAULT, &in, NULL, &wrapped);
		assert_false(GSS_ERROR(major));
	}
	st = sasl_server_step(s, wrapped.value, wrapped.length, r);
	gss_release_buffer(&minor, &wrapped);
out:
	client_free(&c);
	return st;
}

/* ---- tests ---- */

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
	free(f->cfg->s.auth_gssapi_keytab);
	f->cfg->s.auth_gssapi_keytab = xasprintf("%s/imap.keytab", kdc.dir);
	f->tb.primary = "petrel.test";
	tb_add(&f->tb, "john", "petrel.test", "yescrypt-only");
	tb_add(&f->tb, "mary", "petrel.test", "x");
	tb_backend(&f->tb, &f->backend);
	f->params.cfg = f->cfg;
	f->params.service = "imap";
	f->params.hostname = HOST;
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

#define NEED_KDC() do { if (!kdc.ready) { print_message("skipped: %s\n", kdc.skip_reason); \
	skip(); } } while (0)

static void test_gssapi_login(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;
	char *list;

	NEED_KDC();
	list = sasl_mechanisms_offered(&f->cfg->s, true);
	assert_non_null(strstr(list, "GSSAPI"));
	free(list);
	assert_int_equal(exchange(f->s, "john.cc", "imap@" HOST, NULL, &r), SASL_SUCCESS);
	assert_string_equal(r.identity, "john@petrel.test");
	assert_string_equal(r.login, "john@" REALM);
	/* the user's own address as authzid */
	assert_int_equal(exchange(f->s, "john.cc", "imap@" HOST, "john@petrel.test", &r),
			 SASL_SUCCESS);
	/* with success data nothing changes (GSSAPI has none) */
	f->params.success_data = true;
	sasl_server_free(&f->s);
	f->s = sasl_server_new(&f->params, &f->backend);
	assert_int_equal(exchange(f->s, "john.cc", "imap@" HOST, NULL, &r), SASL_SUCCESS);
}

static void test_gssapi_refusals(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;

	NEED_KDC();
	/* someone else's identity */
	assert_int_equal(exchange(f->s, "john.cc", "imap@" HOST, "mary@petrel.test", &r),
			 SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	assert_string_equal(r.reason, "authorization identity refused");
	/* a principal with an instance */
	assert_int_equal(exchange(f->s, "admin.cc", "imap@" HOST, NULL, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	assert_non_null(strstr(r.reason, "instance"));
	/* a principal with no user */
	assert_int_equal(exchange(f->s, "ghost.cc", "imap@" HOST, NULL, &r), SASL_FAILURE);
	assert_string_equal(r.reason, "unknown user");
	/* a disabled user */
	f->tb.users[0].enabled = false;
	assert_int_equal(exchange(f->s, "john.cc", "imap@" HOST, NULL, &r), SASL_FAILURE);
	assert_string_equal(r.reason, "account disabled");
	f->tb.users[0].enabled = true;
	/* a ticket for another service is refused by the imap acceptor... */
	free(f->cfg->s.auth_gssapi_keytab);
	f->cfg->s.auth_gssapi_keytab = xasprintf("%s/all.keytab", kdc.dir);
	assert_int_equal(exchange(f->s, "john.cc", "smtp@" HOST, NULL, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	assert_non_null(strstr(r.reason, "accept_sec_context"));
	/* ... but accepted with gssapi-hostname "*" (any key in the keytab) */
	free(f->cfg->s.auth_gssapi_hostname);
	f->cfg->s.auth_gssapi_hostname = xstrdup("*");
	assert_int_equal(exchange(f->s, "john.cc", "smtp@" HOST, NULL, &r), SASL_SUCCESS);
}

static void test_gssapi_bad_keytab_and_tokens(void **state)
{
	struct fixture *f = *state;
	struct sasl_reply r;
	static const unsigned char junk[] = { 0x60, 0x82, 0xff, 0xff, 0x06, 0x09, 0x2a };

	NEED_KDC();
	/* garbage tokens */
	assert_int_equal(sasl_server_start(f->s, "GSSAPI", junk, sizeof(junk), true, &r),
			 SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
	assert_int_equal(sasl_server_start(f->s, "GSSAPI", "", 0, true, &r), SASL_FAILURE);
	assert_int_equal(sasl_server_start(f->s, "GSSAPI", NULL, 0, false, &r), SASL_CONTINUE);
	assert_int_equal(r.len, 0);
	assert_int_equal(sasl_server_step(f->s, "hello", 5, &r), SASL_FAILURE);
	/* a keytab that does not exist: the server's problem, temporary */
	free(f->cfg->s.auth_gssapi_keytab);
	f->cfg->s.auth_gssapi_keytab = xasprintf("%s/missing.keytab", kdc.dir);
	assert_int_equal(exchange(f->s, "john.cc", "imap@" HOST, NULL, &r), SASL_FAILURE);
	assert_int_equal(r.failure, SASL_FAIL_TEMPORARY);
	assert_non_null(strstr(r.reason, "missing.keytab"));
	/* a host name the keytab has no key for */
	free(f->cfg->s.auth_gssapi_keytab);
	f->cfg->s.auth_gssapi_keytab = xasprintf("%s/imap.keytab", kdc.dir);
	f->params.hostname = "other.petrel.test";
	sasl_server_free(&f->s);
	f->s = sasl_server_new(&f->params, &f->backend);
	assert_int_equal(exchange(f->s, "john.cc", "imap@" HOST, NULL, &r), SASL_FAILURE);
	/* a replayed AP-REQ: the second server refuses it (replay cache) */
	{
		struct client c;
		gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
		struct sasl_server *other;
		OM_uint32 minor;

		f->params.hostname = HOST;
		sasl_server_free(&f->s);
		f->s = sasl_server_new(&f->params, &f->backend);
		other = sasl_server_new(&f->params, &f->backend);
		client_init(&c, "john.cc", "imap@" HOST);
		assert_false(GSS_ERROR(client_step(&c, NULL, 0, &out)));
		assert_int_equal(sasl_server_start(f->s, "GSSAPI", out.value, out.length, true, &r),
				 SASL_CONTINUE);
		assert_int_equal(sasl_server_start(other, "GSSAPI", out.value, out.length, true, &r),
				 SASL_FAILURE);
		assert_int_equal(r.failure, SASL_FAIL_CREDENTIALS);
		assert_non_null(strstr(r.reason, "replay"));
		gss_release_buffer(&minor, &out);
		client_free(&c);
		sasl_server_free(&other);
		/* a security-layer message that is not a wrapped token */
		assert_int_equal(exchange(f->s, "john.cc", "imap@" HOST, NULL, &r), SASL_SUCCESS);
	}
	/* abort mid-exchange and start again: no state carried over */
	{
		struct client c;
		gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
		OM_uint32 minor;

		f->params.hostname = HOST;
		sasl_server_free(&f->s);
		f->s = sasl_server_new(&f->params, &f->backend);
		client_init(&c, "john.cc", "imap@" HOST);
		assert_false(GSS_ERROR(client_step(&c, NULL, 0, &out)));
		assert_int_equal(sasl_server_start(f->s, "GSSAPI", out.value, out.length, true, &r),
				 SASL_CONTINUE);
		gss_release_buffer(&minor, &out);
		client_free(&c);
		assert_int_equal(sasl_server_step_text(f->s, "*", 1, &r), SASL_FAILURE);
		assert_int_equal(r.failure, SASL_FAIL_ABORTED);
		assert_int_equal(exchange(f->s, "john.cc", "imap@" HOST, NULL, &r), SASL_SUCCESS);
	}
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_gssapi_login),
		T(test_gssapi_refusals),
		T(test_gssapi_bad_keytab_and_tokens),
	};
#undef T

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
