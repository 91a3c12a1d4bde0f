/*
 * DIGEST-MD5 (RFC 2831), authentication only (qop=auth; no integrity or
 * confidentiality layer), no subsequent authentication (an attempt at it
 * gets a fresh challenge).  RFC 6331 made the
 * mechanism historic; it is here for old clients, and off unless listed in
 * auth/mechanisms (it is by default, for compatibility).
 *
 *   S: realm="example.com",nonce="...",qop="auth",charset=utf-8,algorithm=md5-sess
 *   C: username="john",realm="example.com",nonce="...",cnonce="...",nc=00000001,
 *      qop=auth,digest-uri="imap/mail.example.com",response=HEX,charset=utf-8
 *   S: rspauth=HEX
 *   C: (empty)
 *
 * Identity: username and realm together name the user.  "john" in realm
 * "example.com" is john@example.com; a username that is already an
 * address is taken as it is and the realm must be its domain.  The stored
 * secret has H(name:realm:password) and H(address:realm:password), the
 * two forms clients send.
 *
 * Checks: our nonce exactly, nc 00000001 (one authentication per nonce,
 * so a replayed response fails), cnonce present, qop auth, digest-uri
 * naming our service and this host or the address the client connected
 * to, or one of the realms we offered (curl puts the realm there), each
 * directive at most once, the response at most 4096 bytes (RFC 2831
 * section 2.1.2).
 */
#include "auth/auth_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"

#define DIGEST_NONCE_BYTES 24
#define DIGEST_MAX_NAME 32

enum digest_phase { DIGEST_RESPONSE, DIGEST_WAIT_EMPTY };

struct digest_state {
	enum digest_phase phase;
	char *nonce;
	char *rspauth;
};

static void digest_free(struct sasl_server *s)
{
	struct digest_state *st = s->mech_state;

	if (st == NULL)
		return;
	free(st->nonce);
	free(st->rspauth);
	free(st);
	s->mech_state = NULL;
}

/* Appends value as a quoted-string (RFC 2831 section 7.2). */
static int append_quoted(struct buf *b, const char *value)
{
	int ret = buf_append_char(b, '"');

	for (const char *p = value; *p != '\0' && ret == 0; p++) {
		if (*p == '"' || *p == '\\')
			ret |= buf_append_char(b, '\\');
		ret |= buf_append_char(b, *p);
	}
	return ret | buf_append_char(b, '"');
}

static void digest_start(struct sasl_server *s, const unsigned char *initial, size_t len,
			 bool has_initial)
{
	struct digest_state *st = xcalloc(1, sizeof(*st));
	unsigned char raw[DIGEST_NONCE_BYTES];
	char nonce[64];
	struct buf b;

	s->mech_state = st;
	/* An initial response is an attempt at subsequent authentication
	 * (RFC 2831 section 2.2), which we do not support: section 2.2.2 says
	 * to ignore it and answer with a fresh challenge, as for a first
	 * authentication (Cyrus' client tries it on its second login). */
	(void)initial;
	(void)len;
	(void)has_initial;
	if (s->params.test_nonce != NULL) {
		st->nonce = xstrdup(s->params.test_nonce);
	} else {
		auth_random(raw, sizeof(raw));
		base64_encode(raw, sizeof(raw), nonce, sizeof(nonce));
		st->nonce = xstrdup(nonce);
	}
	buf_init(&b, SASL_DIGEST_MAX_CHALLENGE);
	/* As many realms as fit: a client whose realm is not listed can still
	 * send it. */
	for (const char *const *r = s->backend.digest_realms; r != NULL && *r != NULL; r++) {
		size_t before = b.len;

		if (buf_append_str(&b, "realm=") < 0 || append_quoted(&b, *r) < 0 ||
		    buf_append_char(&b, ',') < 0 || b.len > SASL_DIGEST_MAX_CHALLENGE - 256) {
			buf_truncate(&b, before);
			break;
		}
	}
	if (buf_append_str(&b, "nonce=") < 0 || append_quoted(&b, st->nonce) < 0 ||
	    buf_append_str(&b, ",qop=\"auth\",charset=utf-8,algorithm=md5-sess") < 0)
		panic("digest: challenge too long");
	sasl_continue(s, b.data, b.len);
	buf_deinit(&b);
}

/* The directives we look at; each may appear once. */
enum digest_field {
	DF_USERNAME, DF_REALM, DF_NONCE, DF_CNONCE, DF_NC, DF_QOP, DF_DIGEST_URI, DF_RESPONSE,
	DF_CHARSET, DF_AUTHZID, DF_COUNT
};
static const char *const field_names[DF_COUNT] = {
	"username", "realm", "nonce", "cnonce", "nc", "qop", "digest-uri", "response", "charset",
	"authzid",
};

struct digest_response {
	char *v[DF_COUNT];
};

static void response_free(struct digest_response *r)
{
	for (int i = 0; i < DF_COUNT; i++)
		free(r->v[i]);
}

static bool is_lws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Parses "name=value,name=value" (RFC 2831 section 7.1 #rule, values
 * token or quoted-string).  Returns 0, or -1 with *reason_r. */
static int parse_response(const char *p, size_t len, struct digest_response *r,
			  const char **reason_r)
{
	const char *end = p + len;

	memset(r, 0, sizeof(*r));
	while (p < end) {
		const char *name;
		size_t name_len;
		struct buf value;
		int field = -1;

		while (p < end && (is_lws(*p) || *p == ','))
			p++;
		if (p == end)
			break;
		name = p;
		while (p < end && *p != '=' && !is_lws(*p) && *p != ',')
			p++;
		name_len = (size_t)(p - name);
		while (p < end && is_lws(*p))
			p++;
		if (name_len == 0 || name_len > DIGEST_MAX_NAME || p == end || *p != '=') {
			*reason_r = "malformed DIGEST-MD5 directive";
			return -1;
		}
		p++;
		while (p < end && is_lws(*p))
			p++;
		buf_init(&value, SASL_DIGEST_MAX_RESPONSE);
		if (p < end && *p == '"') {
			p++;
			while (p < end && *p != '"') {
				if (*p == '\\') {
					p++;
					if (p == end)
						break;
				}
				if (*p == '\0' || buf_append_char(&value, *p) < 0) {
					buf_deinit(&value);
					*reason_r = "malformed DIGEST-MD5 quoted string";
					return -1;
				}
				p++;
			}
			if (p == end) {
				buf_deinit(&value);
				*reason_r = "unterminated DIGEST-MD5 quoted string";
				return -1;
			}
			p++;
		} else {
			const char *v = p;

			while (p < end && *p != ',' && !is_lws(*p)) {
				if (*p == '"' || *p == '\0') {
					buf_deinit(&value);
					*reason_r = "malformed DIGEST-MD5 token";
					return -1;
				}
				p++;
			}
			if (buf_append(&value, v, (size_t)(p - v)) < 0)
				panic("digest: token longer than the response");
		}
		while (p < end && is_lws(*p))
			p++;
		if (p < end && *p != ',') {
			buf_deinit(&value);
			*reason_r = "malformed DIGEST-MD5 response: junk after a value";
			return -1;
		}
		for (int i = 0; i < DF_COUNT; i++)
			if (strlen(field_names[i]) == name_len &&
			    strncasecmp(field_names[i], name, name_len) == 0)
				field = i;
		if (field >= 0) {
			if (r->v[field] != NULL) {
				buf_deinit(&value);
				*reason_r = "DIGEST-MD5 directive repeated";
				return -1;
			}
			r->v[field] = buf_steal(&value);
		}
		buf_deinit(&value);
	}
	return 0;
}

/* digest-uri = serv-type "/" host [ "/" serv-name ]: our service, and
 * this host by name, by the address the client reached, or by a realm we
 * offered. */
static bool digest_uri_ok(const struct sasl_server *s, const char *uri)
{
	const char *slash = strchr(uri, '/'), *host, *host_end;
	size_t host_len;
	const char *local = s->params.local_address, *name = sasl_hostname(s);

	if (slash == NULL || (size_t)(slash - uri) != strlen(s->params.service) ||
	    strncasecmp(uri, s->params.service, (size_t)(slash - uri)) != 0)
		return false;
	host = slash + 1;
	host_end = strchr(host, '/');
	host_len = host_end != NULL ? (size_t)(host_end - host) : strlen(host);
	if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
		host++;
		host_len -= 2;
	}
	if (host_len == 0)
		return false;
	if (strlen(name) == host_len && strncasecmp(name, host, host_len) == 0)
		return true;
	if (local != NULL && strlen(local) == host_len && strncasecmp(local, host, host_len) == 0)
		return true;
	/* curl builds the digest-uri from the realm, not the host
	 * ("smtp/example.com"): a realm we offered names us too.  The nonce is
	 * ours and good once, so nothing can be relayed from elsewhere. */
	for (const char *const *r = s->backend.digest_realms; r != NULL && *r != NULL; r++)
		if (strlen(*r) == host_len && strncasecmp(*r, host, host_len) == 0)
			return true;
	return false;
}

/* HEX(H(data)) with our MD5. */
static void md5_hex(const void *data, size_t len, char out[33])
{
	struct auth_md5 ctx;
	unsigned char h[AUTH_MD5_LEN];

	auth_md5_init(&ctx);
	auth_md5_update(&ctx, data, len);
	auth_md5_final(&ctx, h);
	str_hex(h, sizeof(h), out);
}

/* The response value (RFC 2831 section 2.1.2.1) for HA1 = H(user:realm:pass)
 * (binary); a2_prefix is "AUTHENTICATE" for the client's response and ""
 * for rspauth. */
static void digest_compute(const unsigned char ha1[AUTH_MD5_LEN],
			   const struct digest_response *r, const char *a2_prefix, char out[33])
{
	struct buf b;
	char a1_hex[33], a2_hex[33];
	int ret = 0;

	buf_init(&b, 4 * SASL_DIGEST_MAX_RESPONSE);
	/* A1 = { H(user:realm:pass), ":", nonce, ":", cnonce [":" authzid] } */
	ret |= buf_append(&b, ha1, AUTH_MD5_LEN);
	ret |= buf_printf(&b, ":%s:%s", r->v[DF_NONCE], r->v[DF_CNONCE]);
	if (r->v[DF_AUTHZID] != NULL && *r->v[DF_AUTHZID] != '\0')
		ret |= buf_printf(&b, ":%s", r->v[DF_AUTHZID]);
	if (ret != 0)
		panic("digest: A1");
	md5_hex(b.data, b.len, a1_hex);
	explicit_bzero(b.data, b.len);
	buf_reset(&b);
	/* A2 = { "AUTHENTICATE:", digest-uri-value } (qop auth) */
	if (buf_printf(&b, "%s:%s", a2_prefix, r->v[DF_DIGEST_URI]) < 0)
		panic("digest: A2");
	md5_hex(b.data, b.len, a2_hex);
	buf_reset(&b);
	/* KD(HEX(H(A1)), nonce ":" nc ":" cnonce ":" qop ":" HEX(H(A2))) */
	if (buf_printf(&b, "%s:%s:%s:%s:auth:%s", a1_hex, r->v[DF_NONCE], r->v[DF_NC],
		       r->v[DF_CNONCE], a2_hex) < 0)
		panic("digest: KD");
	md5_hex(b.data, b.len, out);
	explicit_bzero(b.data, b.len);
	explicit_bzero(a1_hex, sizeof(a1_hex));
	buf_deinit(&b);
}

static void digest_response(struct sasl_server *s, const unsigned char *data, size_t len)
{
	struct digest_state *st = s->mech_state;
	struct digest_response r;
	const char *reason, *user_name, *realm, *secret = NULL;
	unsigned char ha1[AUTH_MD5_LEN];
	char want[33], *login;
	struct sasl_user user;
	bool have_secret = false, match;
	int found;

	if (len > SASL_DIGEST_MAX_RESPONSE) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "DIGEST-MD5 response over 4096 bytes");
		return;
	}
	if (parse_response((const char *)data, len, &r, &reason) < 0) {
		response_free(&r);
		sasl_fail(s, SASL_FAIL_SYNTAX, reason);
		return;
	}
	user_name = r.v[DF_USERNAME];
	realm = r.v[DF_REALM] != NULL ? r.v[DF_REALM] : "";
	if (user_name != NULL && *user_name != '\0')
		sasl_set_login(s, user_name, strlen(user_name));
	if (user_name == NULL || *user_name == '\0' || r.v[DF_NONCE] == NULL ||
	    r.v[DF_CNONCE] == NULL || *r.v[DF_CNONCE] == '\0' || r.v[DF_NC] == NULL ||
	    r.v[DF_DIGEST_URI] == NULL || r.v[DF_RESPONSE] == NULL) {
		response_free(&r);
		sasl_fail(s, SASL_FAIL_SYNTAX, "DIGEST-MD5 response lacks a required directive");
		return;
	}
	if (r.v[DF_QOP] != NULL && strcasecmp(r.v[DF_QOP], "auth") != 0)
		reason = "DIGEST-MD5 qop other than auth";
	else if (r.v[DF_CHARSET] != NULL && strcasecmp(r.v[DF_CHARSET], "utf-8") != 0)
		reason = "DIGEST-MD5 charset other than utf-8";
	else if (strlen(r.v[DF_NONCE]) != strlen(st->nonce) ||
		 !auth_equal(r.v[DF_NONCE], st->nonce, strlen(st->nonce)))
		reason = "DIGEST-MD5 nonce does not match";
	else if (strcmp(r.v[DF_NC], "00000001") != 0)
		reason = "DIGEST-MD5 nonce count is not 00000001";
	else if (!digest_uri_ok(s, r.v[DF_DIGEST_URI]))
		reason = "DIGEST-MD5 digest-uri names another service or host";
	else if (strlen(r.v[DF_RESPONSE]) != 32)
		reason = "malformed DIGEST-MD5 response value";
	else if (!auth_utf8_valid(user_name, strlen(user_name)) || !auth_utf8_valid(realm, strlen(realm)))
		reason = "DIGEST-MD5 names are not UTF-8";
	else
		reason = NULL;
	if (reason != NULL) {
		response_free(&r);
		sasl_fail(s, SASL_FAIL_SYNTAX, reason);
		return;
	}

	login = strchr(user_name, '@') != NULL || *realm == '\0'
		? xstrdup(user_name) : xasprintf("%s@%s", user_name, realm);
	found = sasl_lookup(s, login, &user);
	free(login);
	if (found < 0) {
		response_free(&r);
		return;
	}
	/* Keep the name the client typed in the log, not our completion. */
	sasl_set_login(s, user_name, strlen(user_name));
	if (found == 1)
		secret = s->backend.secret(s->backend.context, &user, AUTH_SECRET_DIGEST_MD5);
	if (secret != NULL) {
		/* "realm:HEX(name form):HEX(address form)" */
		const char *c1 = strchr(secret, ':'), *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
		bool address_form = strchr(user_name, '@') != NULL;

		if (c1 != NULL && c2 != NULL && (size_t)(c1 - secret) == strlen(realm) &&
		    strncmp(secret, realm, strlen(realm)) == 0 && c2 - c1 - 1 == 32 &&
		    strlen(c2 + 1) == 32 &&
		    str_unhex(address_form ? c2 + 1 : c1 + 1, 32, ha1, sizeof(ha1)) == 0)
			have_secret = true;
	}
	if (!have_secret)
		memset(ha1, 0, sizeof(ha1));  /* dummy: same work */
	digest_compute(ha1, &r, "AUTHENTICATE", want);
	match = have_secret && auth_equal(want, r.v[DF_RESPONSE], 32);
	if (!match && have_secret) {
		/* RFC 2831 says LHEX; be lenient about case. */
		char lower[33];

		for (int i = 0; i < 33; i++)
			lower[i] = (char)(r.v[DF_RESPONSE][i] >= 'A' && r.v[DF_RESPONSE][i] <= 'F'
					  ? r.v[DF_RESPONSE][i] + 32 : r.v[DF_RESPONSE][i]);
		match = auth_equal(want, lower, 32);
	}
	if (found != 1)
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "unknown user");
	else if (!have_secret)
		sasl_fail(s, SASL_FAIL_CREDENTIALS,
			  "no DIGEST-MD5 secret stored for the user in this realm");
	else if (!match)
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "wrong password");
	else if (sasl_authorize(s, &user, r.v[DF_AUTHZID],
				r.v[DF_AUTHZID] != NULL ? strlen(r.v[DF_AUTHZID]) : 0)) {
		char rsp[33];

		digest_compute(ha1, &r, "", rsp);
		st->rspauth = xasprintf("rspauth=%s", rsp);
		if (s->params.success_data) {
			sasl_success(s, st->rspauth, strlen(st->rspauth));
		} else {
			st->phase = DIGEST_WAIT_EMPTY;
			sasl_continue(s, st->rspauth, strlen(st->rspauth));
		}
	}
	explicit_bzero(ha1, sizeof(ha1));
	explicit_bzero(want, sizeof(want));
	response_free(&r);
}

static void digest_step(struct sasl_server *s, const unsigned char *data, size_t len)
{
	struct digest_state *st = s->mech_state;

	if (st->phase == DIGEST_RESPONSE) {
		digest_response(s, data, len);
	} else if (len != 0) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "DIGEST-MD5: expected an empty response");
	} else {
		sasl_success(s, NULL, 0);
	}
}

const struct sasl_mech_ops sasl_digest_md5_ops = {
	.mech = SASL_MECH_DIGEST_MD5,
	.name = "DIGEST-MD5",
	.start = digest_start,
	.step = digest_step,
	.free_state = digest_free,
};
