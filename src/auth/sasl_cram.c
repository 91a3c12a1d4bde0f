/*
 * CRAM-MD5 (RFC 2195): the server sends "<random.time@host>", the client
 * answers "user SP hex(HMAC-MD5(password, challenge))".  We verify from the
 * stored MD5 pads (auth.h), never from the password.
 *
 * No initial response (the challenge comes first).  The user name is
 * everything before the last space, so a name with spaces still parses;
 * the digest is exactly 32 hex digits (either case accepted).  An unknown
 * user, or one without a CRAM-MD5 secret (password set before secrets were
 * derived), is checked against a dummy secret so that the work and the
 * reply are the same as for a wrong password.
 */
#include "auth/auth_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cram_state {
	char *challenge;
};

static void cram_free(struct sasl_server *s)
{
	struct cram_state *st = s->mech_state;

	if (st == NULL)
		return;
	free(st->challenge);
	free(st);
	s->mech_state = NULL;
}

static void cram_start(struct sasl_server *s, const unsigned char *initial, size_t len,
		       bool has_initial)
{
	struct cram_state *st = xcalloc(1, sizeof(*st));

	s->mech_state = st;
	if (has_initial && len > 0) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "CRAM-MD5 takes no initial response");
		return;
	}
	if (s->params.test_nonce != NULL) {
		st->challenge = xasprintf("<%s@%s>", s->params.test_nonce, sasl_hostname(s));
	} else {
		uint64_t r;

		auth_random(&r, sizeof(r));
		/* RFC 2195 suggests "<pid.timestamp@host>"; a random number in
		 * place of the pid makes the challenge unpredictable. */
		st->challenge = xasprintf("<%" PRIu64 ".%lld@%s>", r, (long long)time(NULL),
					  sasl_hostname(s));
	}
	sasl_continue(s, st->challenge, strlen(st->challenge));
}

static void cram_step(struct sasl_server *s, const unsigned char *data, size_t len)
{
	struct cram_state *st = s->mech_state;
	const unsigned char *sp = NULL;
	unsigned char want[AUTH_MD5_LEN], got[AUTH_MD5_LEN];
	struct auth_cram_pads pads;
	struct sasl_user user;
	const char *secret = NULL;
	char *login;
	bool have_secret = false, match;
	int found;

	for (size_t i = len; i > 0; i--) {
		if (data[i - 1] == ' ') {
			sp = data + i - 1;
			break;
		}
	}
	if (sp == NULL || sp == data || len - (size_t)(sp - data) - 1 != 2 * AUTH_MD5_LEN ||
	    str_unhex((const char *)sp + 1, 2 * AUTH_MD5_LEN, got, sizeof(got)) < 0 ||
	    memchr(data, '\0', (size_t)(sp - data)) != NULL) {
		if (sp != NULL && sp != data)
			sasl_set_login(s, (const char *)data, (size_t)(sp - data));
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed CRAM-MD5 response");
		return;
	}
	login = xstrndup((const char *)data, (size_t)(sp - data));
	found = sasl_lookup(s, login, &user);
	free(login);
	if (found < 0)
		return;
	if (found == 1)
		secret = s->backend.secret(s->backend.context, &user, AUTH_SECRET_CRAM_MD5);
	if (secret != NULL && auth_cram_pads_parse(secret, &pads) == 0)
		have_secret = true;
	else
		auth_cram_pads("", 0, &pads);  /* dummy: same work */
	auth_cram_hmac(&pads, st->challenge, strlen(st->challenge), want);
	match = auth_equal(want, got, sizeof(want)) && have_secret;
	explicit_bzero(&pads, sizeof(pads));
	explicit_bzero(want, sizeof(want));
	if (found != 1)
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "unknown user");
	else if (!have_secret)
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "no CRAM-MD5 secret stored for the user");
	else if (!match)
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "wrong password");
	else if (sasl_authorize(s, &user, NULL, 0))
		sasl_success(s, NULL, 0);
}

const struct sasl_mech_ops sasl_cram_md5_ops = {
	.mech = SASL_MECH_CRAM_MD5,
	.name = "CRAM-MD5",
	.start = cram_start,
	.step = cram_step,
	.free_state = cram_free,
};
