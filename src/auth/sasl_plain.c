/*
 * PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login-00): the two
 * mechanisms that send the password itself, checked against the yescrypt
 * hash through the backend.  Offered only over TLS or loopback unless
 * auth/plaintext-without-tls (the dispatcher enforces it).
 *
 * PLAIN's message is exactly three fields separated by two NULs:
 * [authzid] NUL authcid NUL passwd.  Anything else -- no NUL, one NUL,
 * three or more, an empty authcid or password, fields over their limits,
 * invalid UTF-8 -- is a malformed response, never a crash and never a
 * partial parse (HOSTILE-INPUT row 22; Dovecot CVE-2020-12674 was a
 * zero-length field).
 */
#include "auth/auth_private.h"

#include <stdlib.h>
#include <string.h>

/* Checks password against user (NULL: unknown, same work) and replies. */
static void check_password(struct sasl_server *s, int found, const struct sasl_user *user,
			   const char *password, const char *authzid, size_t authzid_len)
{
	bool ok = s->backend.verify_password(s->backend.context, found == 1 ? user : NULL, password);

	if (found != 1)
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "unknown user");
	else if (!ok)
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "wrong password");
	else if (sasl_authorize(s, user, authzid, authzid_len))
		sasl_success(s, NULL, 0);
}

/* ---- PLAIN ---- */

static void plain_message(struct sasl_server *s, const unsigned char *data, size_t len)
{
	const unsigned char *nul1, *nul2;
	size_t zlen, clen, plen;
	char *authcid, *password;
	struct sasl_user user;
	int found;

	nul1 = memchr(data, '\0', len);
	nul2 = nul1 != NULL ? memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - data)) : NULL;
	if (nul1 == NULL || nul2 == NULL) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed PLAIN response: fewer than two NULs");
		return;
	}
	if (memchr(nul2 + 1, '\0', len - (size_t)(nul2 + 1 - data)) != NULL) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed PLAIN response: more than two NULs");
		return;
	}
	zlen = (size_t)(nul1 - data);
	clen = (size_t)(nul2 - nul1 - 1);
	plen = len - (size_t)(nul2 + 1 - data);
	if (clen > 0)
		sasl_set_login(s, (const char *)nul1 + 1, clen);
	if (clen == 0 || plen == 0) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed PLAIN response: empty user or password");
		return;
	}
	if (zlen > SASL_MAX_LOGIN || clen > SASL_MAX_LOGIN || plen > SASL_MAX_PASSWORD) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed PLAIN response: field too long");
		return;
	}
	if (!auth_utf8_valid(data, zlen) || !auth_utf8_valid(nul1 + 1, clen) ||
	    !auth_utf8_valid(nul2 + 1, plen)) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed PLAIN response: invalid UTF-8");
		return;
	}
	authcid = xstrndup((const char *)nul1 + 1, clen);
	password = xstrndup((const char *)nul2 + 1, plen);
	found = sasl_lookup(s, authcid, &user);
	if (found >= 0)
		check_password(s, found, &user, password, (const char *)data, zlen);
	explicit_bzero(password, plen);
	free(password);
	free(authcid);
}

static void plain_start(struct sasl_server *s, const unsigned char *initial, size_t len,
			bool has_initial)
{
	if (!has_initial)
		sasl_continue(s, "", 0);  /* RFC 4616: empty challenge, then the message */
	else
		plain_message(s, initial, len);
}

static void plain_step(struct sasl_server *s, const unsigned char *data, size_t len)
{
	plain_message(s, data, len);
}

const struct sasl_mech_ops sasl_plain_ops = {
	.mech = SASL_MECH_PLAIN,
	.name = "PLAIN",
	.start = plain_start,
	.step = plain_step,
	.free_state = NULL,
};

/* ---- LOGIN ---- */

struct login_state {
	char *user;              /* NULL until the first response */
};

static void login_free(struct sasl_server *s)
{
	struct login_state *st = s->mech_state;

	if (st == NULL)
		return;
	free(st->user);
	free(st);
	s->mech_state = NULL;
}

static void login_user(struct sasl_server *s, const unsigned char *data, size_t len)
{
	struct login_state *st = s->mech_state;

	if (len > 0)
		sasl_set_login(s, (const char *)data, len);
	if (len == 0 || len > SASL_MAX_LOGIN || memchr(data, '\0', len) != NULL ||
	    !auth_utf8_valid(data, len)) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed LOGIN user name");
		return;
	}
	st->user = xstrndup((const char *)data, len);
	sasl_continue(s, "Password:", 9);
}

static void login_start(struct sasl_server *s, const unsigned char *initial, size_t len,
			bool has_initial)
{
	s->mech_state = xcalloc(1, sizeof(struct login_state));
	/* Some clients (Outlook) send the user name as an initial response;
	 * an empty one means none. */
	if (has_initial && len > 0)
		login_user(s, initial, len);
	else
		sasl_continue(s, "Username:", 9);
}

static void login_step(struct sasl_server *s, const unsigned char *data, size_t len)
{
	struct login_state *st = s->mech_state;
	struct sasl_user user;
	char *password;
	int found;

	if (st->user == NULL) {
		login_user(s, data, len);
		return;
	}
	if (len == 0 || len > SASL_MAX_PASSWORD || memchr(data, '\0', len) != NULL ||
	    !auth_utf8_valid(data, len)) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed LOGIN password");
		return;
	}
	password = xstrndup((const char *)data, len);
	found = sasl_lookup(s, st->user, &user);
	if (found >= 0)
		check_password(s, found, &user, password, NULL, 0);
	explicit_bzero(password, len);
	free(password);
}

const struct sasl_mech_ops sasl_login_ops = {
	.mech = SASL_MECH_LOGIN,
	.name = "LOGIN",
	.start = login_start,
	.step = login_step,
	.free_state = login_free,
};
