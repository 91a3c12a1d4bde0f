/*
 * GSSAPI (RFC 4752): Kerberos 5 through MIT's GSS-API, no security layer.
 *
 *   C: AP-REQ (gss_init_sec_context output)    S: AP-REP (mutual auth), or
 *   C: (empty)                                    nothing when not asked
 *   S: wrap(0x01 0xff 0xff 0xff)                 "no security layer"
 *   C: wrap(0x01 size[3] authzid)
 *
 * The service keys come from the keytab auth/gssapi-keytab (through
 * gss_acquire_cred_from, so the process's KRB5_KTNAME is not touched).
 * The acceptor principal is SERVICE/HOST: the service of the front end
 * ("imap", "smtp", "pop", "HTTP") and auth/gssapi-hostname ("default": the
 * host name; "*": any key in the keytab).  The client principal name@REALM is
 * mapped to a user through the backend: the domain whose Kerberos realm is
 * REALM, the user called name there.  Principals with an instance
 * (name/admin@REALM) are refused.
 *
 * The only file this reads is the keytab (at accept time); the replay
 * cache is MIT's default (KRB5RCACHEDIR / KRB5RCACHENAME).
 */
#include "auth/auth_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

enum gss_phase { GSS_CONTEXT, GSS_WAIT_EMPTY, GSS_LAYER };

struct gss_state {
	enum gss_phase phase;
	gss_cred_id_t cred;
	gss_ctx_id_t ctx;
	int found;
	struct sasl_user user;
};

static void gss_free(struct sasl_server *s)
{
	struct gss_state *st = s->mech_state;
	OM_uint32 minor;

	if (st == NULL)
		return;
	if (st->ctx != GSS_C_NO_CONTEXT)
		gss_delete_sec_context(&minor, &st->ctx, GSS_C_NO_BUFFER);
	if (st->cred != GSS_C_NO_CREDENTIAL)
		gss_release_cred(&minor, &st->cred);
	free(st);
	s->mech_state = NULL;
}

/* Fails with GSS-API's own words for (major, minor). */
static void gss_failure(struct sasl_server *s, enum sasl_failure failure, const char *what,
			OM_uint32 major, OM_uint32 minor)
{
	char text[200] = "";
	size_t used = 0;
	OM_uint32 ctx = 0, min2;
	gss_buffer_desc msg;
	int kinds[2] = { GSS_C_GSS_CODE, GSS_C_MECH_CODE };
	OM_uint32 codes[2] = { major, minor };

	for (int k = 0; k < 2; k++) {
		if (k == 1 && minor == 0)
			break;
		ctx = 0;
		do {
			msg.length = 0;
			msg.value = NULL;
			if (gss_display_status(&min2, codes[k], kinds[k], k == 1 ? (gss_OID)gss_mech_krb5 : GSS_C_NO_OID, &ctx, &msg) !=
			    GSS_S_COMPLETE)
				break;
			if (used + 3 < sizeof(text)) {
				int n = snprintf(text + used, sizeof(text) - used, "%s%.*s",
						 used > 0 ? "; " : "", (int)msg.length,
						 (const char *)msg.value);

				if (n > 0)
					used += (size_t)n < sizeof(text) - used ? (size_t)n
										: sizeof(text) - used - 1;
			}
			gss_release_buffer(&min2, &msg);
		} while (ctx != 0);
	}
	sasl_failf(s, failure, "GSSAPI %s: %s (major 0x%x, minor %u)", what, text,
		   (unsigned)major, (unsigned)minor);
}

static int acquire_cred(struct sasl_server *s, struct gss_state *st)
{
	const struct cfg *cfg = s->params.cfg;
	const char *host = cfg->s.auth_gssapi_hostname;
	char *keytab = cfg_path(cfg, cfg->s.auth_gssapi_keytab);
	gss_key_value_element_desc element = { .key = "keytab", .value = keytab };
	gss_key_value_set_desc store = { .count = 1, .elements = &element };
	gss_OID_desc krb5 = *gss_mech_krb5;
	gss_OID_set_desc mechs = { .count = 1, .elements = &krb5 };
	gss_name_t name = GSS_C_NO_NAME;
	OM_uint32 major, minor;

	/* A keytab we cannot read is the server's problem, not the client's:
	 * say so (temporary failure) instead of failing every ticket. */
	if (access(keytab, R_OK) != 0) {
		sasl_failf(s, SASL_FAIL_TEMPORARY, "GSSAPI keytab %s: %s", keytab, strerror(errno));
		free(keytab);
		return -1;
	}
	if (host == NULL || *host == '\0' || strcasecmp(host, "default") == 0)
		host = sasl_hostname(s);
	if (strcmp(host, "*") != 0) {
		char *service = xasprintf("%s@%s", s->params.service, host);
		gss_buffer_desc nb = { .length = strlen(service), .value = service };

		major = gss_import_name(&minor, &nb, GSS_C_NT_HOSTBASED_SERVICE, &name);
		free(service);
		if (GSS_ERROR(major)) {
			free(keytab);
			gss_failure(s, SASL_FAIL_TEMPORARY, "import_name", major, minor);
			return -1;
		}
	}
	major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, &mechs, GSS_C_ACCEPT, &store,
				      &st->cred, NULL, NULL);
	if (name != GSS_C_NO_NAME) {
		OM_uint32 ignored;

		gss_release_name(&ignored, &name);
	}
	free(keytab);
	if (GSS_ERROR(major)) {
		gss_failure(s, SASL_FAIL_TEMPORARY, "acquire_cred (keytab)", major, minor);
		return -1;
	}
	return 0;
}

/* Maps the authenticated principal to a user (st->found, st->user). */
static int map_principal(struct sasl_server *s, struct gss_state *st, gss_name_t src)
{
	gss_buffer_desc text = GSS_C_EMPTY_BUFFER;
	OM_uint32 major, minor;
	char *principal, *at, *login;

	major = gss_display_name(&minor, src, &text, NULL);
	if (GSS_ERROR(major)) {
		gss_failure(s, SASL_FAIL_CREDENTIALS, "display_name", major, minor);
		return -1;
	}
	principal = xstrndup(text.value, text.length);
	gss_release_buffer(&minor, &text);
	sasl_set_login(s, principal, strlen(principal));
	at = strrchr(principal, '@');
	if (at == NULL || at == principal || at[1] == '\0' ||
	    memchr(principal, '/', (size_t)(at - principal)) != NULL ||
	    memchr(principal, '\0', strlen(principal)) != NULL) {
		free(principal);
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "Kerberos principal with an instance or no realm");
		return -1;
	}
	*at = '\0';
	login = s->backend.principal_login != NULL
		? s->backend.principal_login(s->backend.context, principal, at + 1) : NULL;
	*at = '@';
	if (login == NULL) {
		free(principal);
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "no domain has the principal's realm");
		return -1;
	}
	st->found = sasl_lookup(s, login, &st->user);
	free(login);
	sasl_set_login(s, principal, strlen(principal));
	free(principal);
	if (st->found < 0)
		return -1;
	if (st->found == 0) {
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "unknown user");
		return -1;
	}
	return 0;
}

static void send_layers(struct sasl_server *s, struct gss_state *st)
{
	/* No security layer (bit 0x01); the size is what Dovecot sends. */
	unsigned char offer[4] = { 0x01, 0xff, 0xff, 0xff };
	gss_buffer_desc in = { .length = sizeof(offer), .value = offer }, out = GSS_C_EMPTY_BUFFER;
	OM_uint32 major, minor;

	major = gss_wrap(&minor, st->ctx, 0, GSS_C_QOP_DEFAULT, &in, NULL, &out);
	if (GSS_ERROR(major)) {
		gss_failure(s, SASL_FAIL_CREDENTIALS, "wrap", major, minor);
		return;
	}
	st->phase = GSS_LAYER;
	sasl_continue(s, out.value, out.length);
	gss_release_buffer(&minor, &out);
}

static void gss_context_step(struct sasl_server *s, const unsigned char *data, size_t len)
{
	struct gss_state *st = s->mech_state;
	gss_buffer_desc in = { .length = len, .value = (void *)data }, out = GSS_C_EMPTY_BUFFER;
	gss_name_t src = GSS_C_NO_NAME;
	OM_uint32 major, minor;

	if (len == 0) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "GSSAPI: empty token");
		return;
	}
	major = gss_accept_sec_context(&minor, &st->ctx, st->cred, &in, GSS_C_NO_CHANNEL_BINDINGS,
				       &src, NULL, &out, NULL, NULL, NULL);
	if (GSS_ERROR(major)) {
		OM_uint32 ignored;

		/* Release with another minor: the error's must survive. */
		if (out.length > 0)
			gss_release_buffer(&ignored, &out);
		if (src != GSS_C_NO_NAME)
			gss_release_name(&ignored, &src);
		gss_failure(s, SASL_FAIL_CREDENTIALS, "accept_sec_context", major, minor);
		return;
	}
	if (major & GSS_S_CONTINUE_NEEDED) {
		if (src != GSS_C_NO_NAME)
			gss_release_name(&minor, &src);
		sasl_continue(s, out.value, out.length);
		gss_release_buffer(&minor, &out);
		return;
	}
	if (map_principal(s, st, src) < 0) {
		gss_release_name(&minor, &src);
		gss_release_buffer(&minor, &out);
		return;
	}
	gss_release_name(&minor, &src);
	if (out.length > 0) {
		st->phase = GSS_WAIT_EMPTY;
		sasl_continue(s, out.value, out.length);
	} else {
		send_layers(s, st);
	}
	gss_release_buffer(&minor, &out);
}

static void gss_layer_step(struct sasl_server *s, const unsigned char *data, size_t len)
{
	struct gss_state *st = s->mech_state;
	gss_buffer_desc in = { .length = len, .value = (void *)data }, out = GSS_C_EMPTY_BUFFER;
	OM_uint32 major, minor;
	const unsigned char *p;

	major = gss_unwrap(&minor, st->ctx, &in, &out, NULL, NULL);
	if (GSS_ERROR(major)) {
		gss_failure(s, SASL_FAIL_SYNTAX, "unwrap", major, minor);
		return;
	}
	p = out.value;
	if (out.length < 4 || p[0] != 0x01) {
		gss_release_buffer(&minor, &out);
		sasl_fail(s, SASL_FAIL_SYNTAX, "GSSAPI: client chose a security layer we did not offer");
		return;
	}
	if (out.length - 4 > SASL_MAX_LOGIN || memchr(p + 4, '\0', out.length - 4) != NULL) {
		gss_release_buffer(&minor, &out);
		sasl_fail(s, SASL_FAIL_SYNTAX, "GSSAPI: malformed authorization identity");
		return;
	}
	if (sasl_authorize(s, &st->user, (const char *)p + 4, out.length - 4))
		sasl_success(s, NULL, 0);
	gss_release_buffer(&minor, &out);
}

static void gss_start(struct sasl_server *s, const unsigned char *initial, size_t len,
		      bool has_initial)
{
	struct gss_state *st = xcalloc(1, sizeof(*st));

	st->cred = GSS_C_NO_CREDENTIAL;
	st->ctx = GSS_C_NO_CONTEXT;
	st->phase = GSS_CONTEXT;
	s->mech_state = st;
	if (acquire_cred(s, st) < 0)
		return;
	if (!has_initial)
		sasl_continue(s, "", 0);
	else
		gss_context_step(s, initial, len);
}

static void gss_step(struct sasl_server *s, const unsigned char *data, size_t len)
{
	struct gss_state *st = s->mech_state;

	switch (st->phase) {
	case GSS_CONTEXT:
		gss_context_step(s, data, len);
		break;
	case GSS_WAIT_EMPTY:
		/* The client has taken our last context token; what it sends
		 * now carries nothing (RFC 4752 section 3.1). */
		send_layers(s, st);
		break;
	case GSS_LAYER:
		gss_layer_step(s, data, len);
		break;
	}
}

const struct sasl_mech_ops sasl_gssapi_ops = {
	.mech = SASL_MECH_GSSAPI,
	.name = "GSSAPI",
	.start = gss_start,
	.step = gss_step,
	.free_state = gss_free,
};
