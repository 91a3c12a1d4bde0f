/*
 * The SASL server's dispatcher: mechanism names and the offered list, the
 * exchange state shared by every mechanism, and the base64 line forms.
 * The mechanisms themselves are sasl_<mech>.c; each implements start and
 * step over raw bytes and ends every call with one reply.
 *
 * State discipline (HOSTILE-INPUT row 22): an exchange is either idle or
 * owned by exactly one mechanism; starting again, aborting, failing or
 * succeeding frees the mechanism's state through its own free_state
 * before anything else happens, so no mechanism ever sees another one's
 * state (Postfix CVE-2011-1720 was a state shared across a mechanism
 * switch).
 */
#include "auth/auth_private.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/str.h"

/* Largest challenge we build (GSSAPI tokens are the big ones, and small). */
#define SASL_MAX_CHALLENGE (64 * 1024)

static const struct sasl_mech_ops *const mech_table[SASL_MECH_COUNT] = {
	[SASL_MECH_PLAIN] = &sasl_plain_ops,
	[SASL_MECH_LOGIN] = &sasl_login_ops,
	[SASL_MECH_CRAM_MD5] = &sasl_cram_md5_ops,
	[SASL_MECH_DIGEST_MD5] = &sasl_digest_md5_ops,
	[SASL_MECH_SCRAM_SHA_1] = &sasl_scram_sha_1_ops,
	[SASL_MECH_SCRAM_SHA_256] = &sasl_scram_sha_256_ops,
	[SASL_MECH_NTLM] = &sasl_ntlm_ops,
	[SASL_MECH_GSSAPI] = &sasl_gssapi_ops,
};

const char *sasl_mech_name(enum sasl_mech mech)
{
	if ((unsigned)mech >= SASL_MECH_COUNT)
		return NULL;
	return mech_table[mech]->name;
}

int sasl_mech_parse(const char *name, size_t len, enum sasl_mech *mech_r)
{
	for (int i = 0; i < SASL_MECH_COUNT; i++) {
		const char *n = mech_table[i]->name;

		if (strlen(n) == len && strncasecmp(n, name, len) == 0) {
			*mech_r = (enum sasl_mech)i;
			return 0;
		}
	}
	return -1;
}

bool sasl_mech_is_plaintext(enum sasl_mech mech)
{
	return mech == SASL_MECH_PLAIN || mech == SASL_MECH_LOGIN;
}

/* ---- the offered list ---- */

bool sasl_gssapi_configured(const struct settings *s)
{
	const char *k = s->auth_gssapi_keytab;

	return k != NULL && *k != '\0' && strcasecmp(k, "none") != 0;
}

/* Calls fn for each mechanism of auth/mechanisms that is available on
 * this connection, in order, without duplicates. */
static void each_offered(const struct settings *s, bool secure,
			 void (*fn)(enum sasl_mech mech, void *ctx), void *ctx)
{
	const char *p = s->auth_mechanisms != NULL ? s->auth_mechanisms : "";
	bool seen[SASL_MECH_COUNT] = { false };

	while (*p != '\0') {
		size_t len;
		enum sasl_mech mech;

		while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\n' || *p == '\r')
			p++;
		len = strcspn(p, " \t,\r\n");
		if (len == 0)
			break;
		if (sasl_mech_parse(p, len, &mech) == 0 && !seen[mech]) {
			seen[mech] = true;
			if (sasl_mech_is_plaintext(mech) && !secure && !s->auth_plaintext_without_tls)
				;
			else if (mech == SASL_MECH_GSSAPI && !sasl_gssapi_configured(s))
				;
			else
				fn(mech, ctx);
		}
		p += len;
	}
}

static void append_name(enum sasl_mech mech, void *ctx)
{
	struct buf *b = ctx;

	if ((b->len > 0 && buf_append_char(b, ' ') < 0) ||
	    buf_append_str(b, sasl_mech_name(mech)) < 0)
		panic("sasl_mechanisms_offered: list too long");
}

char *sasl_mechanisms_offered(const struct settings *s, bool secure)
{
	struct buf b;

	buf_init(&b, 1024);
	each_offered(s, secure, append_name, &b);
	return buf_steal(&b);
}

struct offered_query {
	enum sasl_mech mech;
	bool found;
};

static void match_mech(enum sasl_mech mech, void *ctx)
{
	struct offered_query *q = ctx;

	if (mech == q->mech)
		q->found = true;
}

bool sasl_mechanism_offered(const struct settings *s, bool secure, enum sasl_mech mech)
{
	struct offered_query q = { .mech = mech, .found = false };

	each_offered(s, secure, match_mech, &q);
	return q.found;
}

int sasl_check_mechanisms(const char *list, char **error_r)
{
	const char *p = list != NULL ? list : "";

	while (*p != '\0') {
		size_t len;
		enum sasl_mech mech;

		while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\n' || *p == '\r')
			p++;
		len = strcspn(p, " \t,\r\n");
		if (len == 0)
			break;
		if (len == 4 && strncasecmp(p, "none", 4) == 0) {
			p += len;
			continue;   /* "none": no mechanism (the file cannot say "") */
		}
		if (sasl_mech_parse(p, len, &mech) < 0) {
			char *word = xstrndup(p, len < 64 ? len : 64), *esc = str_escape(word, 64);

			*error_r = xasprintf("unknown mechanism '%s' (known: PLAIN LOGIN CRAM-MD5 "
					     "DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256 NTLM GSSAPI)", esc);
			free(esc);
			free(word);
			return -1;
		}
		p += len;
	}
	return 0;
}

int sasl_check_settings(const struct settings *s, char **error_r)
{
	char *reason;

	if (sasl_check_mechanisms(s->auth_mechanisms, &reason) == 0)
		return 0;
	*error_r = xasprintf("auth/mechanisms: %s", reason);
	free(reason);
	return -1;
}

int sasl_cfg_check(const char *path, const char *value, char **reason_r)
{
	if (strcmp(path, "auth/mechanisms") == 0)
		return sasl_check_mechanisms(value, reason_r);
	return 0;
}

/* ---- server ---- */

static void wipe_buf(struct buf *b)
{
	if (b->data != NULL && b->len > 0)
		explicit_bzero(b->data, b->len);
	buf_reset(b);
}

static void free_str(char **s)
{
	if (*s != NULL) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

struct sasl_server *sasl_server_new(const struct sasl_params *params,
				    const struct sasl_backend *backend)
{
	struct sasl_server *s = xcalloc(1, sizeof(*s));

	if (params->cfg == NULL || params->service == NULL)
		panic("sasl_server_new: cfg and service are required");
	s->params = *params;
	s->backend = *backend;
	s->max_response = (size_t)params->cfg->s.auth_max_response;
	if (s->max_response == 0)
		s->max_response = SASL_DEFAULT_MAX_RESPONSE;
	auth_buf_init(&s->out, SASL_MAX_CHALLENGE);
	auth_buf_init(&s->text, base64_encoded_len(SASL_MAX_CHALLENGE));
	auth_buf_init(&s->in, s->max_response);
	return s;
}

/* Ends the running exchange, if any: the mechanism frees its state. */
static void end_exchange(struct sasl_server *s)
{
	if (s->ops != NULL && s->ops->free_state != NULL)
		s->ops->free_state(s);
	s->ops = NULL;
	s->mech_state = NULL;
}

/* Forgets everything of the previous exchange (start, free). */
static void reset(struct sasl_server *s)
{
	end_exchange(s);
	wipe_buf(&s->out);
	wipe_buf(&s->text);
	wipe_buf(&s->in);
	free_str(&s->login);
	free_str(&s->account);
	free_str(&s->identity);
	memset(&s->reply, 0, sizeof(s->reply));
	s->replied = false;
}

void sasl_server_free(struct sasl_server **sp)
{
	struct sasl_server *s = *sp;

	if (s == NULL)
		return;
	reset(s);
	buf_deinit(&s->out);
	buf_deinit(&s->text);
	buf_deinit(&s->in);
	free(s);
	*sp = NULL;
}

bool sasl_server_in_progress(const struct sasl_server *s)
{
	return s->ops != NULL;
}

const char *sasl_hostname(const struct sasl_server *s)
{
	if (s->params.hostname != NULL && *s->params.hostname != '\0')
		return s->params.hostname;
	return s->params.cfg->s.server_hostname;
}

/* ---- reply helpers ---- */

static void begin_reply(struct sasl_server *s)
{
	wipe_buf(&s->out);
	wipe_buf(&s->text);
	s->replied = false;
	s->reply.status = SASL_FAILURE;
	s->reply.failure = SASL_FAIL_NONE;
	s->reply.reason = NULL;
}

void sasl_continue(struct sasl_server *s, const void *challenge, size_t len)
{
	if (s->replied)
		panic("sasl: %s replied twice", s->ops != NULL ? s->ops->name : "?");
	wipe_buf(&s->out);
	if (buf_append(&s->out, challenge, len) < 0)
		panic("sasl: %s challenge of %zu bytes", s->ops->name, len);
	s->reply.status = SASL_CONTINUE;
	s->replied = true;
}

void sasl_fail(struct sasl_server *s, enum sasl_failure failure, const char *reason)
{
	if (s->replied)
		panic("sasl: %s replied twice", s->ops != NULL ? s->ops->name : "?");
	wipe_buf(&s->out);
	s->reply.status = SASL_FAILURE;
	s->reply.failure = failure;
	s->reply.reason = reason;
	s->replied = true;
	free_str(&s->identity);
}

void sasl_failf(struct sasl_server *s, enum sasl_failure failure, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->reason_buf, sizeof(s->reason_buf), fmt, ap);
	va_end(ap);
	sasl_fail(s, failure, s->reason_buf);
}

bool sasl_authorize(struct sasl_server *s, const struct sasl_user *user, const char *authzid,
		    size_t authzid_len)
{
	if (!user->enabled) {
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "account disabled");
		return false;
	}
	if (authzid != NULL && authzid_len > 0) {
		/* RFC 4616 section 2: an authorization identity other than the
		 * user's own needs a right to act as someone else; there is no
		 * such right (no master users), so it must name the same user:
		 * the login given, the address, or another name of the user. */
		char *z = xstrndup(authzid, authzid_len);
		struct sasl_user other;
		bool same = str_iequal(z, user->identity) ||
			    (s->login != NULL && str_iequal(z, s->login));

		if (!same && authzid_len <= SASL_MAX_LOGIN &&
		    auth_printable_name(authzid, authzid_len) &&
		    s->backend.lookup(s->backend.context, z, &other) == 1)
			same = str_iequal(other.identity, user->identity);
		free(z);
		if (!same) {
			sasl_fail(s, SASL_FAIL_CREDENTIALS, "authorization identity refused");
			return false;
		}
	}
	free_str(&s->identity);
	s->identity = xstrdup(user->identity);
	return true;
}

void sasl_success(struct sasl_server *s, const void *data, size_t len)
{
	if (s->replied)
		panic("sasl: %s replied twice", s->ops != NULL ? s->ops->name : "?");
	if (s->identity == NULL)
		panic("sasl: %s succeeded without sasl_authorize", s->ops->name);
	wipe_buf(&s->out);
	if (len > 0 && buf_append(&s->out, data, len) < 0)
		panic("sasl: %s success data of %zu bytes", s->ops->name, len);
	s->reply.status = SASL_SUCCESS;
	s->replied = true;
}

void sasl_set_login(struct sasl_server *s, const char *login, size_t len)
{
	free_str(&s->login);
	free_str(&s->account);
	if (len > SASL_MAX_LOGIN)
		len = SASL_MAX_LOGIN;
	s->login = xstrndup(login, len);
	if (s->backend.account_key != NULL) {
		s->account = s->backend.account_key(s->backend.context, s->login);
	} else {
		s->account = xstrdup(s->login);
		for (char *p = s->account; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	}
}

int sasl_lookup(struct sasl_server *s, const char *login, struct sasl_user *user_r)
{
	size_t len = strlen(login);
	const char *reason;
	char *prepared;
	int ret;

	sasl_set_login(s, login, len);
	/* A name no user can have is "unknown" without asking: control
	 * characters, bad UTF-8, over-long. */
	if (len == 0 || len > SASL_MAX_LOGIN || !auth_printable_name(login, len))
		return 0;
	/* The authcid is SASLprep'd (query rule) like the password; one it
	 * refuses names nobody. */
	if (auth_saslprep(login, false, &prepared, &reason) < 0)
		return 0;
	ret = s->backend.lookup(s->backend.context, prepared, user_r);
	free(prepared);
	if (ret < 0) {
		sasl_fail(s, SASL_FAIL_TEMPORARY, "user lookup failed");
		return -1;
	}
	return ret > 0 ? 1 : 0;
}

/* Fills the public reply after a mechanism's call. */
static enum sasl_status finish_reply(struct sasl_server *s, struct sasl_reply *reply_r)
{
	if (!s->replied)
		panic("sasl: %s did not reply", s->ops != NULL ? s->ops->name : "?");
	wipe_buf(&s->in);
	if (s->reply.status != SASL_CONTINUE)
		end_exchange(s);
	s->reply.data = (const unsigned char *)s->out.data;
	s->reply.len = s->out.len;
	s->reply.text = NULL;
	s->reply.identity = s->reply.status == SASL_SUCCESS ? s->identity : NULL;
	s->reply.login = s->login;
	s->reply.account = s->account;
	*reply_r = s->reply;
	return reply_r->status;
}

/* A failure decided here, outside any mechanism. */
static enum sasl_status fail_now(struct sasl_server *s, enum sasl_failure failure,
				 const char *reason, struct sasl_reply *reply_r)
{
	end_exchange(s);
	begin_reply(s);
	sasl_fail(s, failure, reason);
	return finish_reply(s, reply_r);
}

enum sasl_status sasl_server_start(struct sasl_server *s, const char *mechanism,
				   const void *initial, size_t initial_len, bool has_initial,
				   struct sasl_reply *reply_r)
{
	const struct settings *set = &s->params.cfg->s;
	enum sasl_mech mech;

	reset(s);
	begin_reply(s);
	if (mechanism == NULL || sasl_mech_parse(mechanism, strlen(mechanism), &mech) < 0) {
		s->reply.mech = SASL_MECH_COUNT;
		return fail_now(s, SASL_FAIL_MECHANISM, "unknown mechanism", reply_r);
	}
	s->reply.mech = mech;
	if (!sasl_mechanism_offered(set, true, mech))
		return fail_now(s, SASL_FAIL_MECHANISM, "mechanism not enabled", reply_r);
	if (!sasl_mechanism_offered(set, s->params.secure, mech))
		return fail_now(s, SASL_FAIL_ENCRYPTION, "plaintext mechanism without TLS", reply_r);
	if (has_initial && initial_len > s->max_response)
		return fail_now(s, SASL_FAIL_SYNTAX, "response too long", reply_r);
	s->ops = mech_table[mech];
	s->ops->start(s, has_initial ? initial : NULL, has_initial ? initial_len : 0, has_initial);
	return finish_reply(s, reply_r);
}

enum sasl_status sasl_server_step(struct sasl_server *s, const void *data, size_t len,
				  struct sasl_reply *reply_r)
{
	begin_reply(s);
	if (s->ops == NULL)
		return fail_now(s, SASL_FAIL_STATE, "no authentication in progress", reply_r);
	if (len > s->max_response)
		return fail_now(s, SASL_FAIL_SYNTAX, "response too long", reply_r);
	s->ops->step(s, data, len);
	return finish_reply(s, reply_r);
}

void sasl_server_abort(struct sasl_server *s)
{
	end_exchange(s);
	wipe_buf(&s->out);
	wipe_buf(&s->in);
}

/* ---- base64 line forms ---- */

/* Fills reply_r->text with the base64 of the reply's data. */
static enum sasl_status with_text(struct sasl_server *s, enum sasl_status status,
				  struct sasl_reply *reply_r)
{
	wipe_buf(&s->text);
	if (base64_encode_append(&s->text, s->out.data, s->out.len) < 0)
		panic("sasl: challenge too long to encode");
	reply_r->text = s->text.data;
	s->reply.text = s->text.data;
	return status;
}

/* Decodes a client line strictly into s->in.  Returns 0, or -1 with the
 * reason. */
static int decode_line(struct sasl_server *s, const char *line, size_t len, const char **reason_r)
{
	wipe_buf(&s->in);
	if (base64_decoded_max(len) > s->max_response + 2) {
		*reason_r = "response too long";
		return -1;
	}
	if (base64_decode_append(&s->in, line, len) < 0) {
		*reason_r = base64_decoded_max(len) > s->max_response ? "response too long"
								       : "invalid base64";
		return -1;
	}
	return 0;
}

enum sasl_status sasl_server_start_text(struct sasl_server *s, const char *mechanism,
					const char *initial, size_t initial_len,
					struct sasl_reply *reply_r)
{
	enum sasl_status st;
	const char *reason;
	char *copy;
	size_t n;

	if (initial == NULL)
		return with_text(s, sasl_server_start(s, mechanism, NULL, 0, false, reply_r), reply_r);
	if (initial_len == 1 && initial[0] == '=')
		return with_text(s, sasl_server_start(s, mechanism, "", 0, true, reply_r), reply_r);
	if (decode_line(s, initial, initial_len, &reason) < 0) {
		enum sasl_mech mech;

		reset(s);
		begin_reply(s);
		s->reply.mech = mechanism != NULL &&
			sasl_mech_parse(mechanism, strlen(mechanism), &mech) == 0 ? mech
										 : SASL_MECH_COUNT;
		return with_text(s, fail_now(s, SASL_FAIL_SYNTAX, reason, reply_r), reply_r);
	}
	/* sasl_server_start resets s->in: hand it a copy. */
	n = s->in.len;
	copy = xmalloc(n + 1);
	memcpy(copy, s->in.data, n + 1);
	wipe_buf(&s->in);
	st = sasl_server_start(s, mechanism, copy, n, true, reply_r);
	explicit_bzero(copy, n + 1);
	free(copy);
	return with_text(s, st, reply_r);
}

enum sasl_status sasl_server_step_text(struct sasl_server *s, const char *line, size_t len,
				       struct sasl_reply *reply_r)
{
	const char *reason;

	if (len == 1 && line[0] == '*') {
		/* RFC 4422 section 3.5: the client aborts the exchange. */
		if (s->ops == NULL) {
			begin_reply(s);
			return with_text(s, fail_now(s, SASL_FAIL_STATE,
						     "no authentication in progress", reply_r),
					 reply_r);
		}
		begin_reply(s);
		end_exchange(s);
		sasl_fail(s, SASL_FAIL_ABORTED, "aborted by the client");
		return with_text(s, finish_reply(s, reply_r), reply_r);
	}
	if (s->ops == NULL) {
		begin_reply(s);
		return with_text(s, fail_now(s, SASL_FAIL_STATE, "no authentication in progress",
					     reply_r),
				 reply_r);
	}
	if (decode_line(s, line, len, &reason) < 0) {
		begin_reply(s);
		return with_text(s, fail_now(s, SASL_FAIL_SYNTAX, reason, reply_r), reply_r);
	}
	begin_reply(s);
	s->ops->step(s, (const unsigned char *)s->in.data, s->in.len);
	return with_text(s, finish_reply(s, reply_r), reply_r);
}
