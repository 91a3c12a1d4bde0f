/*
 * SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677), without channel
 * binding (no -PLUS variants yet).
 *
 *   C: gs2-header client-first-message-bare   "n,,n=user,r=cnonce"
 *   S: server-first-message                    "r=cnonce+snonce,s=SALT,i=4096"
 *   C: client-final-message                    "c=biws,r=cnonce+snonce,p=PROOF"
 *   S: server-final-message                    "v=SIGNATURE"
 *
 * Verification uses StoredKey and ServerKey only (auth.h): the client's
 * proof XOR HMAC(StoredKey, AuthMessage) must hash to StoredKey.
 *
 * Channel-binding flag: "n" (client does not support it) and "y" (client
 * does, but thinks we do not -- true, since we offer no -PLUS) are
 * accepted; "p=..." asks for binding we do not offer and fails.  The
 * c= attribute of the final message must be exactly the base64 of the
 * gs2 header the client sent first (RFC 5802 section 7).
 *
 * An unknown user, or one without this secret, gets a salt derived from a
 * per-process random key and the user name, so that the same name always
 * gets the same salt and the server-first message does not tell whether
 * the user exists; the proof then cannot match.
 */
#include "auth/auth_private.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"

/* Nonces, user names and attribute values beyond these are refused. */
#define SCRAM_MAX_NONCE 512
#define SCRAM_SERVER_NONCE_BYTES 18

enum scram_phase { SCRAM_FIRST, SCRAM_FINAL, SCRAM_WAIT_EMPTY };

struct scram_state {
	const char *md;             /* "SHA1" or "SHA256" */
	enum scram_phase phase;
	char *gs2_header;           /* as the client sent it, e.g. "n,," */
	char *authzid;              /* decoded, NULL when none */
	char *client_first_bare;
	char *server_first;
	char *nonce;                /* client nonce + server nonce */
	struct auth_scram_secret secret;
	bool have_secret;
	int found;                  /* sasl_lookup's result */
	struct sasl_user user;
	char *server_final;
};

static unsigned char fake_key[32];
static pthread_once_t fake_key_once = PTHREAD_ONCE_INIT;

static void fake_key_init(void)
{
	auth_random(fake_key, sizeof(fake_key));
}

static void free_wipe(char **p)
{
	if (*p != NULL) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

static void scram_free(struct sasl_server *s)
{
	struct scram_state *st = s->mech_state;

	if (st == NULL)
		return;
	free_wipe(&st->gs2_header);
	free_wipe(&st->authzid);
	free_wipe(&st->client_first_bare);
	free_wipe(&st->server_first);
	free_wipe(&st->nonce);
	free_wipe(&st->server_final);
	explicit_bzero(st, sizeof(*st));
	free(st);
	s->mech_state = NULL;
}

/* Decodes a saslname (RFC 5802 section 5.1: "=2C" is ',', "=3D" is '=',
 * any other '=' is an error).  Returns a newly allocated string, or NULL. */
static char *saslname_decode(const char *p, size_t len)
{
	char *out = xmalloc(len + 1);
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '=') {
			if (i + 2 < len && p[i + 1] == '2' && (p[i + 2] == 'C' || p[i + 2] == 'c'))
				out[o++] = ',';
			else if (i + 2 < len && p[i + 1] == '3' &&
				 (p[i + 2] == 'D' || p[i + 2] == 'd'))
				out[o++] = '=';
			else
				goto bad;
			i += 2;
		} else if (p[i] == '\0' || p[i] == ',') {
			goto bad;
		} else {
			out[o++] = p[i];
		}
	}
	out[o] = '\0';
	if (!auth_utf8_valid(out, o))
		goto bad;
	return out;
bad:
	free(out);
	return NULL;
}

/* printable = %x21-2B / %x2D-7E (RFC 5802 section 7): a nonce. */
static bool nonce_valid(const char *p, size_t len)
{
	if (len == 0 || len > SCRAM_MAX_NONCE)
		return false;
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return true;
}

/* [ "," ALPHA "=" value ]* from p (at a comma or the end) to end
 * (RFC 5802 section 7: extensions). */
static bool extensions_valid(const char *p, const char *end)
{
	while (p < end) {
		const char *next;

		if (*p != ',' || end - p < 3 ||
		    !((p[1] >= 'a' && p[1] <= 'z') || (p[1] >= 'A' && p[1] <= 'Z')) || p[2] != '=')
			return false;
		next = memchr(p + 1, ',', (size_t)(end - p - 1));
		p = next != NULL ? next : end;
	}
	return true;
}

/* The salt and keys to use for a user without a usable secret. */
static void fake_secret(struct scram_state *st, const char *mech_name, const char *login)
{
	unsigned char h[AUTH_SHA256_LEN];
	struct buf b;

	pthread_once(&fake_key_once, fake_key_init);
	buf_init(&b, SASL_MAX_LOGIN + 64);
	if (buf_append_str(&b, mech_name) < 0 || buf_append_char(&b, '\n') < 0 ||
	    buf_append_str(&b, login) < 0)
		panic("scram: fake salt input");
	for (char *p = b.data; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	if (auth_hmac("SHA256", fake_key, sizeof(fake_key), b.data, b.len, h) != sizeof(h))
		panic("scram: HMAC-SHA256 unavailable");
	buf_deinit(&b);
	memcpy(st->secret.salt, h, AUTH_SCRAM_SALT_LEN);
	st->secret.salt_len = AUTH_SCRAM_SALT_LEN;
	st->secret.iterations = AUTH_SCRAM_ITERATIONS;
	st->secret.keys.len = auth_md_len(st->md);
	auth_random(st->secret.keys.stored_key, sizeof(st->secret.keys.stored_key));
	auth_random(st->secret.keys.server_key, sizeof(st->secret.keys.server_key));
	st->have_secret = false;
}

static void scram_client_first(struct sasl_server *s, const unsigned char *data, size_t len)
{
	struct scram_state *st = s->mech_state;
	const char *msg = (const char *)data, *end = msg + len, *p, *bare, *comma;
	char *login = NULL, snonce_raw[SCRAM_SERVER_NONCE_BYTES], snonce[64], salt64[400];
	const char *secret_value = NULL;
	struct buf b;

	if (len == 0 || memchr(data, '\0', len) != NULL) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed SCRAM client-first message");
		return;
	}
	/* gs2-cbind-flag */
	if (len >= 2 && msg[0] == 'p' && msg[1] == '=') {
		sasl_fail(s, SASL_FAIL_SYNTAX, "SCRAM channel binding requested but not offered");
		return;
	}
	if (len < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',') {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed SCRAM gs2 header");
		return;
	}
	p = msg + 2;
	comma = memchr(p, ',', (size_t)(end - p));
	if (comma == NULL) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed SCRAM gs2 header");
		return;
	}
	if (comma > p) {
		if (comma - p < 3 || p[0] != 'a' || p[1] != '=' ||
		    (size_t)(comma - p - 2) > SASL_MAX_LOGIN ||
		    (st->authzid = saslname_decode(p + 2, (size_t)(comma - p - 2))) == NULL) {
			sasl_fail(s, SASL_FAIL_SYNTAX, "malformed SCRAM authzid");
			return;
		}
	}
	bare = comma + 1;
	st->gs2_header = xstrndup(msg, (size_t)(bare - msg));
	st->client_first_bare = xstrndup(bare, (size_t)(end - bare));
	/* client-first-message-bare: [m=...,] n=saslname,r=nonce[,ext...] */
	p = bare;
	if (end - p >= 2 && p[0] == 'm' && p[1] == '=') {
		sasl_fail(s, SASL_FAIL_SYNTAX, "SCRAM mandatory extension not supported");
		return;
	}
	comma = memchr(p, ',', (size_t)(end - p));
	if (end - p < 3 || p[0] != 'n' || p[1] != '=' || comma == NULL ||
	    (size_t)(comma - p - 2) > SASL_MAX_LOGIN || comma - p < 3 ||
	    (login = saslname_decode(p + 2, (size_t)(comma - p - 2))) == NULL) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed SCRAM user name");
		return;
	}
	sasl_set_login(s, login, strlen(login));
	p = comma + 1;
	comma = memchr(p, ',', (size_t)(end - p));
	if (comma == NULL)
		comma = end;
	if (end - p < 2 || p[0] != 'r' || p[1] != '=' || !nonce_valid(p + 2, (size_t)(comma - p - 2))) {
		free(login);
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed SCRAM client nonce");
		return;
	}
	/* Extensions after the nonce are ignored (RFC 5802 section 5.1), but
	 * must have their syntax: ALPHA "=" value. */
	if (!extensions_valid(comma, end)) {
		free(login);
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed SCRAM extension");
		return;
	}
	buf_init(&b, SCRAM_MAX_NONCE * 2 + 8);
	if (buf_append(&b, p + 2, (size_t)(comma - p - 2)) < 0)
		panic("scram: nonce");
	if (s->params.test_nonce != NULL) {
		if (buf_append_str(&b, s->params.test_nonce) < 0)
			panic("scram: test nonce too long");
	} else {
		auth_random(snonce_raw, sizeof(snonce_raw));
		base64_encode(snonce_raw, sizeof(snonce_raw), snonce, sizeof(snonce));
		if (buf_append_str(&b, snonce) < 0)
			panic("scram: nonce");
	}
	st->nonce = buf_steal(&b);
	buf_deinit(&b);

	st->found = sasl_lookup(s, login, &st->user);
	if (st->found < 0) {
		free(login);
		return;
	}
	if (st->found == 1)
		secret_value = s->backend.secret(s->backend.context, &st->user, s->ops->name);
	if (secret_value != NULL && auth_scram_secret_parse(st->md, secret_value, &st->secret) == 0)
		st->have_secret = true;
	else
		fake_secret(st, s->ops->name, login);
	free(login);

	base64_encode(st->secret.salt, st->secret.salt_len, salt64, sizeof(salt64));
	st->server_first = xasprintf("r=%s,s=%s,i=%u", st->nonce, salt64, st->secret.iterations);
	st->phase = SCRAM_FINAL;
	sasl_continue(s, st->server_first, strlen(st->server_first));
}

static void scram_client_final(struct sasl_server *s, const unsigned char *data, size_t len)
{
	struct scram_state *st = s->mech_state;
	const char *msg = (const char *)data, *end = msg + len, *p, *comma, *proof_at;
	unsigned char cbind[512], proof[AUTH_MAX_MD_LEN], sig[AUTH_MAX_MD_LEN],
		client_key[AUTH_MAX_MD_LEN], stored[AUTH_MAX_MD_LEN];
	size_t mdlen = st->secret.keys.len, n, without_proof_len;
	char sig64[128];
	struct buf auth_message;
	bool match;

	if (len == 0 || memchr(data, '\0', len) != NULL) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed SCRAM client-final message");
		return;
	}
	/* c=base64(gs2-header) */
	comma = memchr(msg, ',', len);
	if (len < 2 || msg[0] != 'c' || msg[1] != '=' || comma == NULL ||
	    base64_decode(msg + 2, (size_t)(comma - msg - 2), cbind, sizeof(cbind), &n) < 0 ||
	    n != strlen(st->gs2_header) || memcmp(cbind, st->gs2_header, n) != 0) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "SCRAM channel binding data does not match");
		return;
	}
	/* r=nonce, exactly ours */
	p = comma + 1;
	comma = memchr(p, ',', (size_t)(end - p));
	if (comma == NULL || end - p < 2 || p[0] != 'r' || p[1] != '=' ||
	    (size_t)(comma - p - 2) != strlen(st->nonce) ||
	    !auth_equal(p + 2, st->nonce, strlen(st->nonce))) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "SCRAM nonce does not match");
		return;
	}
	/* ... [,extensions] ,p=proof: the proof is the last attribute. */
	proof_at = NULL;
	for (const char *q = end; q > comma; q--) {
		if (q[-1] == ',' && q + 1 < end && q[0] == 'p' && q[1] == '=') {
			proof_at = q;
			break;
		}
	}
	if (proof_at == NULL || memchr(proof_at, ',', (size_t)(end - proof_at)) != NULL ||
	    base64_decode(proof_at + 2, (size_t)(end - proof_at - 2), proof, sizeof(proof), &n) < 0 ||
	    n != mdlen) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed SCRAM proof");
		return;
	}
	if (!extensions_valid(comma, proof_at - 1)) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed SCRAM extension");
		return;
	}
	without_proof_len = (size_t)(proof_at - 1 - msg);

	/* AuthMessage := client-first-message-bare + "," + server-first-message +
	 *                "," + client-final-message-without-proof */
	buf_init(&auth_message, 3 * s->max_response + 1024);
	if (buf_append_str(&auth_message, st->client_first_bare) < 0 ||
	    buf_append_char(&auth_message, ',') < 0 ||
	    buf_append_str(&auth_message, st->server_first) < 0 ||
	    buf_append_char(&auth_message, ',') < 0 ||
	    buf_append(&auth_message, msg, without_proof_len) < 0)
		panic("scram: AuthMessage");
	/* ClientSignature := HMAC(StoredKey, AuthMessage)
	 * ClientKey := ClientProof XOR ClientSignature; H(ClientKey) == StoredKey? */
	if (auth_hmac(st->md, st->secret.keys.stored_key, mdlen, auth_message.data,
		      auth_message.len, sig) != mdlen)
		panic("scram: HMAC unavailable");
	for (size_t i = 0; i < mdlen; i++)
		client_key[i] = proof[i] ^ sig[i];
	if (auth_digest(st->md, client_key, mdlen, stored) != mdlen)
		panic("scram: digest unavailable");
	match = auth_equal(stored, st->secret.keys.stored_key, mdlen) && st->have_secret;
	/* ServerSignature := HMAC(ServerKey, AuthMessage) */
	if (auth_hmac(st->md, st->secret.keys.server_key, mdlen, auth_message.data,
		      auth_message.len, sig) != mdlen)
		panic("scram: HMAC unavailable");
	buf_deinit(&auth_message);
	explicit_bzero(client_key, sizeof(client_key));
	explicit_bzero(stored, sizeof(stored));

	if (st->found != 1) {
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "unknown user");
		return;
	}
	if (!st->have_secret) {
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "no SCRAM secret stored for the user");
		return;
	}
	if (!match) {
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "wrong password");
		return;
	}
	if (!sasl_authorize(s, &st->user, st->authzid,
			    st->authzid != NULL ? strlen(st->authzid) : 0))
		return;
	base64_encode(sig, mdlen, sig64, sizeof(sig64));
	st->server_final = xasprintf("v=%s", sig64);
	if (s->params.success_data) {
		sasl_success(s, st->server_final, strlen(st->server_final));
	} else {
		st->phase = SCRAM_WAIT_EMPTY;
		sasl_continue(s, st->server_final, strlen(st->server_final));
	}
}

static void scram_start(struct sasl_server *s, const unsigned char *initial, size_t len,
			bool has_initial)
{
	struct scram_state *st = xcalloc(1, sizeof(*st));

	st->md = s->ops->mech == SASL_MECH_SCRAM_SHA_1 ? "SHA1" : "SHA256";
	st->phase = SCRAM_FIRST;
	s->mech_state = st;
	if (!has_initial)
		sasl_continue(s, "", 0);
	else
		scram_client_first(s, initial, len);
}

static void scram_step(struct sasl_server *s, const unsigned char *data, size_t len)
{
	struct scram_state *st = s->mech_state;

	switch (st->phase) {
	case SCRAM_FIRST:
		scram_client_first(s, data, len);
		break;
	case SCRAM_FINAL:
		scram_client_final(s, data, len);
		break;
	case SCRAM_WAIT_EMPTY:
		/* RFC 4422 section 5: the client acknowledges the server's
		 * final message with an empty response. */
		if (len != 0)
			sasl_fail(s, SASL_FAIL_SYNTAX, "SCRAM: expected an empty response");
		else
			sasl_success(s, NULL, 0);
		break;
	}
}

const struct sasl_mech_ops sasl_scram_sha_1_ops = {
	.mech = SASL_MECH_SCRAM_SHA_1,
	.name = "SCRAM-SHA-1",
	.start = scram_start,
	.step = scram_step,
	.free_state = scram_free,
};

const struct sasl_mech_ops sasl_scram_sha_256_ops = {
	.mech = SASL_MECH_SCRAM_SHA_256,
	.name = "SCRAM-SHA-256",
	.start = scram_start,
	.step = scram_step,
	.free_state = scram_free,
};
