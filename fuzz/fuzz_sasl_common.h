/*
 * Shared by the SASL fuzz targets (fuzz_sasl_scram.c, fuzz_sasl_digest.c,
 * fuzz_sasl_ntlm.c): one in-memory user with secrets fixed at start-up (a
 * fixed SCRAM salt, so the seeds can carry valid proofs), fixed server
 * nonces (sasl_params.test_nonce), and a driver that feeds a list of client
 * messages to one exchange, in raw or in base64 line form.
 *
 * Input layout: byte 0 is a flags byte (see FUZZ_SASL_*), the rest is a
 * sequence of client messages, each a 2-byte little-endian length and
 * that many bytes (a short last message takes what is left).
 *
 * Properties checked beyond memory safety: a reply is always CONTINUE,
 * SUCCESS or FAILURE; SUCCESS names our user; after SUCCESS or FAILURE no
 * exchange is in progress; a challenge in line form is the base64 of the
 * raw one.
 */
#ifndef PETREL_FUZZ_SASL_COMMON_H
#define PETREL_FUZZ_SASL_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/sasl.h"
#include "core/base64.h"
#include "core/cfg.h"
#include "core/str.h"

#define FUZZ_SASL_TEXT 0x01        /* messages are base64 lines (step_text) */
#define FUZZ_SASL_SUCCESS_DATA 0x02
#define FUZZ_SASL_NTLM_V1 0x04
#define FUZZ_SASL_ALT 0x08         /* the target's second mechanism (SCRAM-SHA-1) */
#define FUZZ_SASL_NO_INITIAL 0x10  /* start without an initial response */

#define FUZZ_USER "john"
#define FUZZ_DOMAIN "example.com"
#define FUZZ_PASSWORD "pencil"
/* base64 "QSXCR+Q6sek8bf92", RFC 5802's example salt */
static const unsigned char fuzz_salt[] = { 0x41, 0x25, 0xc2, 0x47, 0xe4, 0x3a, 0xb1, 0xe9,
					   0x3c, 0x6d, 0xff, 0x76 };

static struct {
	struct cfg *cfg;
	char *secrets[5];         /* SCRAM-SHA-1, SCRAM-SHA-256, CRAM-MD5, DIGEST-MD5, NTLM */
	const char *realms[2];
} fz;

static const char *const fuzz_mechs[5] = { "SCRAM-SHA-1", "SCRAM-SHA-256", "CRAM-MD5",
					   "DIGEST-MD5", "NTLM" };

static int fz_lookup(void *context, const char *login, struct sasl_user *user_r)
{
	(void)context;
	if (!str_iequal(login, FUZZ_USER) && !str_iequal(login, FUZZ_USER "@" FUZZ_DOMAIN))
		return 0;
	user_r->identity = FUZZ_USER "@" FUZZ_DOMAIN;
	user_r->name = FUZZ_USER;
	user_r->domain = FUZZ_DOMAIN;
	user_r->realm = "EXAMPLE.COM";
	user_r->enabled = true;
	user_r->handle = &fz;
	return 1;
}

static bool fz_verify(void *context, const struct sasl_user *user, const char *password)
{
	(void)context;
	return user != NULL && strcmp(password, FUZZ_PASSWORD) == 0;
}

static const char *fz_secret(void *context, const struct sasl_user *user, const char *mechanism)
{
	(void)context;
	(void)user;
	for (int i = 0; i < 5; i++)
		if (strcmp(mechanism, fuzz_mechs[i]) == 0)
			return fz.secrets[i];
	return NULL;
}

static void fuzz_sasl_init(void)
{
	unsigned char nt[16];
	char hex[33];

	if (fz.cfg != NULL)
		return;
	fz.cfg = cfg_new_default("/tmp");
	free(fz.cfg->s.auth_mechanisms);
	fz.cfg->s.auth_mechanisms = xstrdup("PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 "
					    "SCRAM-SHA-256 NTLM");
	free(fz.cfg->s.server_hostname);
	fz.cfg->s.server_hostname = xstrdup("mail.example.com");
	fz.secrets[0] = auth_scram_secret("SHA1", FUZZ_PASSWORD, fuzz_salt, sizeof(fuzz_salt),
					  AUTH_SCRAM_ITERATIONS);
	fz.secrets[1] = auth_scram_secret("SHA256", FUZZ_PASSWORD, fuzz_salt, sizeof(fuzz_salt),
					  AUTH_SCRAM_ITERATIONS);
	fz.secrets[2] = auth_cram_md5_secret(FUZZ_PASSWORD);
	fz.secrets[3] = auth_digest_md5_secret(FUZZ_USER, FUZZ_DOMAIN, FUZZ_PASSWORD);
	if (auth_nt_hash(FUZZ_PASSWORD, nt) < 0)
		abort();
	for (int i = 0; i < 16; i++) {
		hex[2 * i] = "0123456789abcdef"[nt[i] >> 4];
		hex[2 * i + 1] = "0123456789abcdef"[nt[i] & 15];
	}
	hex[32] = '\0';
	fz.secrets[4] = xstrdup(hex);
	fz.realms[0] = FUZZ_DOMAIN;
	fz.realms[1] = NULL;
}

static void check_reply(struct sasl_server *s, enum sasl_status st, const struct sasl_reply *r)
{
	if (getenv("FUZZ_SASL_VERBOSE") != NULL)
		fprintf(stderr, "reply: status %d reason %s\n", r->status,
			r->reason != NULL ? r->reason : "-");
	if (st != r->status)
		abort();
	switch (st) {
	case SASL_CONTINUE:
		if (!sasl_server_in_progress(s))
			abort();
		break;
	case SASL_SUCCESS:
		if (r->identity == NULL || strcmp(r->identity, FUZZ_USER "@" FUZZ_DOMAIN) != 0 ||
		    sasl_server_in_progress(s))
			abort();
		break;
	case SASL_FAILURE:
		if (r->failure == SASL_FAIL_NONE || r->reason == NULL || r->identity != NULL ||
		    sasl_server_in_progress(s))
			abort();
		break;
	default:
		abort();
	}
	if (r->text != NULL) {
		unsigned char *dec = malloc(r->len + 3);
		size_t n;

		if (dec == NULL || base64_decode(r->text, strlen(r->text), dec, r->len + 2, &n) < 0 ||
		    n != r->len || memcmp(dec, r->data, n) != 0)
			abort();
		free(dec);
	}
}

/* Runs one exchange of mech with the messages in data. */
static void fuzz_sasl_run(const char *mech, const char *nonce, const uint8_t *data, size_t size)
{
	struct sasl_backend backend = {
		.lookup = fz_lookup,
		.verify_password = fz_verify,
		.secret = fz_secret,
		.digest_realms = fz.realms,
	};
	struct sasl_params params = {
		.cfg = fz.cfg,
		.service = "imap",
		.hostname = "mail.example.com",
		.local_address = "192.0.2.1",
		.secure = true,
		.test_nonce = nonce,
	};
	struct sasl_server *s;
	struct sasl_reply r;
	enum sasl_status st;
	uint8_t flags;
	bool first = true;

	if (size < 1)
		return;
	flags = data[0];
	data++;
	size--;
	params.success_data = (flags & FUZZ_SASL_SUCCESS_DATA) != 0;
	fz.cfg->s.auth_ntlm_v1 = (flags & FUZZ_SASL_NTLM_V1) != 0;
	s = sasl_server_new(&params, &backend);
	if (flags & FUZZ_SASL_NO_INITIAL) {
		st = (flags & FUZZ_SASL_TEXT) ? sasl_server_start_text(s, mech, NULL, 0, &r)
					      : sasl_server_start(s, mech, NULL, 0, false, &r);
		check_reply(s, st, &r);
		first = false;
	}
	while (size > 0) {
		size_t len = size >= 2 ? (size_t)(data[0] | data[1] << 8) : 0;
		const uint8_t *msg = data + (size >= 2 ? 2 : size);

		size -= size >= 2 ? 2 : size;
		if (len > size)
			len = size;
		if (first) {
			st = (flags & FUZZ_SASL_TEXT)
				? sasl_server_start_text(s, mech, (const char *)msg, len, &r)
				: sasl_server_start(s, mech, msg, len, true, &r);
			first = false;
		} else {
			st = (flags & FUZZ_SASL_TEXT)
				? sasl_server_step_text(s, (const char *)msg, len, &r)
				: sasl_server_step(s, msg, len, &r);
		}
		check_reply(s, st, &r);
		data = msg + len;
		size -= len;
		if (st != SASL_CONTINUE && size > 0 && (flags & FUZZ_SASL_TEXT) == 0) {
			/* what a client sends after the end: a clean state error */
			st = sasl_server_step(s, data, size, &r);
			if (st != SASL_FAILURE || r.failure != SASL_FAIL_STATE)
				abort();
			break;
		}
	}
	sasl_server_free(&s);
}

#endif
