/*
 * The envelope file: a line-based text format, one key per line, every
 * value escaped (docs/queue.md).  Pure functions over buffers: the spool
 * code reads and writes files, the unit tests and fuzz/fuzz_queue_envelope.c
 * call these directly.
 *
 *   petrel-queue 1
 *   id 0190A1B2C3D4E5F6
 *   arrival 1767225600
 *   sender =john%40example.com
 *   envid -
 *   ...
 *   rcpt =mary%40example.net - 12 pending 0 1767225600 0 - - -
 *   end
 *
 * Why escaping and an end line: Exim's spool (CVE-2020-28026) let a
 * newline in a DSN parameter start a new spool line, i.e. inject a field;
 * here no value can hold a space, CR, LF or NUL after escaping, and the
 * parser refuses a file without its final "end" (a torn write or a
 * truncation: Postfix's END record rule), any unknown key, and any key
 * given twice, so a damaged envelope is quarantined rather than guessed.
 */
#include "queue/queue_private.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"

#define ENV_VERSION_LINE "petrel-queue 1"
/* Longest line of an envelope file (a recipient with every field escaped). */
#define ENV_MAX_LINE (32 * 1024)

static const char *const state_names[] = {
	[QUEUE_RCPT_PENDING] = "pending",
	[QUEUE_RCPT_DELIVERED] = "delivered",
	[QUEUE_RCPT_FAILED] = "failed",
	[QUEUE_RCPT_EXPANDED] = "expanded",
};

const char *queue_rcpt_state_str(enum queue_rcpt_state state)
{
	if ((unsigned)state >= sizeof(state_names) / sizeof(state_names[0]))
		return "?";
	return state_names[state];
}

static const char *const ret_names[] = {
	[QUEUE_RET_DEFAULT] = "default", [QUEUE_RET_FULL] = "full", [QUEUE_RET_HDRS] = "hdrs",
};

int queue_escape_append(struct buf *out, const char *value)
{
	if (value == NULL)
		return buf_append_char(out, '-');
	if (buf_append_char(out, '=') < 0)
		return -1;
	for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
		if (*p >= 0x21 && *p <= 0x7e && *p != '%') {
			if (buf_append_char(out, (char)*p) < 0)
				return -1;
		} else if (buf_printf(out, "%%%02X", *p) < 0) {
			return -1;
		}
	}
	return 0;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int queue_unescape(const char *token, size_t len, char **value_r)
{
	char *out;
	size_t o = 0;

	if (len == 1 && token[0] == '-') {
		*value_r = NULL;
		return 0;
	}
	if (len == 0 || token[0] != '=')
		return -1;
	out = xmalloc(len);
	for (size_t i = 1; i < len; i++) {
		unsigned char c = (unsigned char)token[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len)
				goto bad;
			hi = hexval((unsigned char)token[i + 1]);
			lo = hexval((unsigned char)token[i + 2]);
			/* NUL cannot be in a C string value: never written, refused. */
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (c < 0x21 || c > 0x7e) {
			goto bad;
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	*value_r = out;
	return 0;
bad:
	free(out);
	return -1;
}

static int put_kv(struct buf *out, const char *key, const char *value)
{
	if (buf_printf(out, "%s ", key) < 0 || queue_escape_append(out, value) < 0)
		return -1;
	return buf_append_char(out, '\n');
}

int queue_env_format(const struct queue_env *env, struct buf *out)
{
	if (buf_printf(out, ENV_VERSION_LINE "\nid %s\narrival %" PRId64 "\n", env->id,
		       env->arrival) < 0 ||
	    put_kv(out, "sender", env->sender) < 0 || put_kv(out, "envid", env->envid) < 0 ||
	    buf_printf(out, "ret %s\nsmtputf8 %d\nbody8bit %d\n", ret_names[env->ret],
		       env->smtputf8 ? 1 : 0, env->body_8bit ? 1 : 0) < 0 ||
	    put_kv(out, "client-ip", env->client_ip) < 0 || put_kv(out, "helo", env->helo) < 0 ||
	    put_kv(out, "auth", env->auth_user) < 0 ||
	    put_kv(out, "message-id", env->message_id) < 0 ||
	    buf_printf(out, "size %" PRIu64 "\nlast-notify %" PRId64 "\ndsn %d\n", env->size,
		       env->last_notify, env->is_dsn ? 1 : 0) < 0)
		return -1;
	for (size_t i = 0; i < env->rcpt_count; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];

		if (buf_append_str(out, "rcpt ") < 0 || queue_escape_append(out, r->address) < 0 ||
		    buf_append_char(out, ' ') < 0 || queue_escape_append(out, r->orcpt) < 0 ||
		    buf_printf(out, " %u %s %u %" PRId64 " %" PRId64 " %d ", r->notify,
			       queue_rcpt_state_str(r->state), r->attempts, r->next_attempt,
			       r->last_attempt, r->notified ? 1 : 0) < 0 ||
		    queue_escape_append(out, r->status) < 0 || buf_append_char(out, ' ') < 0 ||
		    queue_escape_append(out, r->diag) < 0 || buf_append_char(out, ' ') < 0 ||
		    queue_escape_append(out, r->relay) < 0 ||
		    buf_printf(out, " %d\n", r->direct ? 1 : 0) < 0)
			return -1;
	}
	return buf_append_str(out, "end\n");
}

void queue_env_free(struct queue_env *env)
{
	free(env->sender);
	free(env->envid);
	free(env->client_ip);
	free(env->helo);
	free(env->auth_user);
	free(env->message_id);
	for (size_t i = 0; i < env->rcpt_count; i++) {
		struct queue_rcpt *r = &env->rcpts[i];

		free(r->address);
		free(r->orcpt);
		free(r->status);
		free(r->diag);
		free(r->relay);
	}
	free(env->rcpts);
	memset(env, 0, sizeof(*env));
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void queue_env_copy(struct queue_env *dst, const struct queue_env *src)
{
	*dst = *src;
	dst->sender = dup_or_null(src->sender);
	dst->envid = dup_or_null(src->envid);
	dst->client_ip = dup_or_null(src->client_ip);
	dst->helo = dup_or_null(src->helo);
	dst->auth_user = dup_or_null(src->auth_user);
	dst->message_id = dup_or_null(src->message_id);
	dst->rcpts = src->rcpt_count > 0 ? xcalloc(src->rcpt_count, sizeof(*dst->rcpts)) : NULL;
	for (size_t i = 0; i < src->rcpt_count; i++) {
		const struct queue_rcpt *s = &src->rcpts[i];
		struct queue_rcpt *d = &dst->rcpts[i];

		*d = *s;
		d->address = dup_or_null(s->address);
		d->orcpt = dup_or_null(s->orcpt);
		d->status = dup_or_null(s->status);
		d->diag = dup_or_null(s->diag);
		d->relay = dup_or_null(s->relay);
	}
}

/* ---- parsing ---- */

/* Splits line[0..len) at single spaces; returns the count or -1 when
 * there are more than max fields or an empty one. */
static int split_fields(const char *line, size_t len, const char **f, size_t *fl, int max)
{
	int n = 0;
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i == len || line[i] == ' ') {
			if (i == start || n >= max)
				return -1;
			f[n] = line + start;
			fl[n] = i - start;
			n++;
			start = i + 1;
		}
	}
	return n;
}

static int parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *v)
{
	char tmp[32];

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return str_to_i64(tmp, min, max, v);
}

static bool token_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(s, word, len) == 0;
}

enum env_key {
	K_ID, K_ARRIVAL, K_SENDER, K_ENVID, K_RET, K_SMTPUTF8, K_BODY8, K_CLIENT, K_HELO, K_AUTH,
	K_MSGID, K_SIZE, K_LASTNOTIFY, K_DSN, K_COUNT
};
static const char *const key_names[K_COUNT] = {
	"id", "arrival", "sender", "envid", "ret", "smtputf8", "body8bit", "client-ip", "helo",
	"auth", "message-id", "size", "last-notify", "dsn",
};

static int parse_rcpt(const char **f, const size_t *fl, int n, struct queue_rcpt *r)
{
	int64_t v;
	bool found = false;

	/* rcpt ADDR ORCPT NOTIFY STATE ATTEMPTS NEXT LAST NOTIFIED STATUS DIAG RELAY DIRECT */
	if (n != 13)
		return -1;
	if (queue_unescape(f[1], fl[1], &r->address) < 0 || r->address == NULL)
		return -1;
	if (queue_unescape(f[2], fl[2], &r->orcpt) < 0)
		return -1;
	if (parse_i64(f[3], fl[3], 0, 0x0f, &v) < 0)
		return -1;
	r->notify = (unsigned)v;
	for (size_t s = 0; s < sizeof(state_names) / sizeof(state_names[0]); s++) {
		if (token_is(f[4], fl[4], state_names[s])) {
			r->state = (enum queue_rcpt_state)s;
			found = true;
		}
	}
	if (!found)
		return -1;
	if (parse_i64(f[5], fl[5], 0, 1000000000, &v) < 0)
		return -1;
	r->attempts = (unsigned)v;
	if (parse_i64(f[6], fl[6], 0, INT64_MAX, &r->next_attempt) < 0 ||
	    parse_i64(f[7], fl[7], 0, INT64_MAX, &r->last_attempt) < 0 ||
	    parse_i64(f[8], fl[8], 0, 1, &v) < 0)
		return -1;
	r->notified = v != 0;
	if (queue_unescape(f[9], fl[9], &r->status) < 0 ||
	    queue_unescape(f[10], fl[10], &r->diag) < 0 ||
	    queue_unescape(f[11], fl[11], &r->relay) < 0 ||
	    parse_i64(f[12], fl[12], 0, 1, &v) < 0)
		return -1;
	r->direct = v != 0;
	return 0;
}

static int parse_key(enum env_key k, const char *val, size_t vlen, struct queue_env *env)
{
	int64_t v;
	char **str = NULL;

	switch (k) {
	case K_ID:
		if (vlen != QUEUE_ID_LEN)
			return -1;
		for (size_t i = 0; i < vlen; i++) {
			if (!isxdigit((unsigned char)val[i]) || islower((unsigned char)val[i]))
				return -1;
		}
		memcpy(env->id, val, vlen);
		env->id[vlen] = '\0';
		return 0;
	case K_ARRIVAL:
		return parse_i64(val, vlen, 0, INT64_MAX, &env->arrival);
	case K_SIZE:
		if (parse_i64(val, vlen, 0, INT64_MAX, &v) < 0)
			return -1;
		env->size = (uint64_t)v;
		return 0;
	case K_LASTNOTIFY:
		return parse_i64(val, vlen, 0, INT64_MAX, &env->last_notify);
	case K_SMTPUTF8:
	case K_BODY8:
	case K_DSN:
		if (parse_i64(val, vlen, 0, 1, &v) < 0)
			return -1;
		if (k == K_SMTPUTF8)
			env->smtputf8 = v != 0;
		else if (k == K_BODY8)
			env->body_8bit = v != 0;
		else
			env->is_dsn = v != 0;
		return 0;
	case K_RET:
		for (size_t i = 0; i < 3; i++) {
			if (token_is(val, vlen, ret_names[i])) {
				env->ret = (enum queue_ret)i;
				return 0;
			}
		}
		return -1;
	case K_SENDER: str = &env->sender; break;
	case K_ENVID: str = &env->envid; break;
	case K_CLIENT: str = &env->client_ip; break;
	case K_HELO: str = &env->helo; break;
	case K_AUTH: str = &env->auth_user; break;
	case K_MSGID: str = &env->message_id; break;
	case K_COUNT: return -1;
	}
	if (queue_unescape(val, vlen, str) < 0)
		return -1;
	if (k == K_SENDER && *str == NULL)
		return -1;
	return 0;
}

int queue_env_parse(const char *data, size_t len, struct queue_env *env, const char **error_r)
{
	bool seen[K_COUNT] = { false };
	size_t pos = 0, cap = 0;
	bool ended = false, first = true;

	memset(env, 0, sizeof(*env));
	if (len > QUEUE_MAX_ENV_FILE) {
		*error_r = "envelope file too large";
		return -1;
	}
	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen;
		const char *f[13];
		size_t fl[13];
		int n;

		if (nl == NULL) {
			*error_r = "last line not terminated (truncated envelope)";
			goto fail;
		}
		llen = (size_t)(nl - line);
		pos += llen + 1;
		if (ended) {
			*error_r = "data after the end line";
			goto fail;
		}
		if (llen > ENV_MAX_LINE || memchr(line, '\0', llen) != NULL ||
		    memchr(line, '\r', llen) != NULL) {
			*error_r = "malformed line";
			goto fail;
		}
		if (first) {
			if (!token_is(line, llen, ENV_VERSION_LINE)) {
				*error_r = "not a petrel-queue 1 envelope";
				goto fail;
			}
			first = false;
			continue;
		}
		if (token_is(line, llen, "end")) {
			ended = true;
			continue;
		}
		n = split_fields(line, llen, f, fl, 13);
		if (n < 2) {
			*error_r = "malformed line";
			goto fail;
		}
		if (token_is(f[0], fl[0], "rcpt")) {
			if (env->rcpt_count >= QUEUE_MAX_RCPTS) {
				*error_r = "too many recipients";
				goto fail;
			}
			if (env->rcpt_count == cap) {
				cap = cap == 0 ? 4 : cap * 2;
				env->rcpts = xreallocarray(env->rcpts, cap, sizeof(*env->rcpts));
			}
			memset(&env->rcpts[env->rcpt_count], 0, sizeof(env->rcpts[0]));
			env->rcpt_count++;
			if (parse_rcpt(f, fl, n, &env->rcpts[env->rcpt_count - 1]) < 0) {
				*error_r = "malformed recipient line";
				goto fail;
			}
			continue;
		}
		{
			int k = -1;

			for (int i = 0; i < K_COUNT; i++) {
				if (token_is(f[0], fl[0], key_names[i]))
					k = i;
			}
			if (k < 0) {
				*error_r = "unknown key";
				goto fail;
			}
			if (seen[k] || n != 2) {
				*error_r = seen[k] ? "key given twice" : "malformed line";
				goto fail;
			}
			seen[k] = true;
			if (parse_key((enum env_key)k, f[1], fl[1], env) < 0) {
				*error_r = "malformed value";
				goto fail;
			}
		}
	}
	if (!ended) {
		*error_r = "no end line (truncated envelope)";
		goto fail;
	}
	for (int i = 0; i < K_COUNT; i++) {
		if (!seen[i]) {
			*error_r = "a key is missing";
			goto fail;
		}
	}
	if (env->rcpt_count == 0) {
		*error_r = "no recipients";
		goto fail;
	}
	return 0;
fail:
	queue_env_free(env);
	return -1;
}

bool queue_env_done(const struct queue_env *env)
{
	for (size_t i = 0; i < env->rcpt_count; i++) {
		if (env->rcpts[i].state == QUEUE_RCPT_PENDING || !env->rcpts[i].notified)
			return false;
	}
	return true;
}

char *queue_find_message_id(const char *data, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;

		if (llen == 0 || (llen == 1 && line[0] == '\r'))
			return NULL;  /* end of the header */
		if (llen >= 11 && strncasecmp(line, "Message-ID:", 11) == 0) {
			struct buf v;
			size_t p = pos + 11;
			char *s, *t;

			buf_init(&v, QUEUE_MAX_MESSAGE_ID + 8);
			/* The value and its continuation lines, unfolded. */
			for (;;) {
				const char *l = data + p;
				const char *e = memchr(l, '\n', len - p);
				size_t ll = e != NULL ? (size_t)(e - l) : len - p;

				if (ll > 0 && l[ll - 1] == '\r')
					ll--;
				for (size_t i = 0; i < ll; i++) {
					unsigned char c = (unsigned char)l[i];

					if (c == '\t')
						c = ' ';
					if (c < 0x20 || c == 0x7f || buf_append_char(&v, (char)c) < 0) {
						buf_deinit(&v);
						return NULL;
					}
				}
				if (e == NULL)
					break;
				p = (size_t)(e - data) + 1;
				if (p >= len || (data[p] != ' ' && data[p] != '\t'))
					break;
			}
			s = buf_steal(&v);
			t = str_trim(s);
			if (*t == '\0' || strlen(t) > QUEUE_MAX_MESSAGE_ID) {
				free(s);
				return NULL;
			}
			t = xstrdup(t);
			free(s);
			return t;
		}
		if (nl == NULL)
			return NULL;
		pos += llen + 1;
	}
	return NULL;
}

size_t queue_count_received(const char *data, size_t len)
{
	size_t pos = 0, n = 0;

	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;

		if (llen == 0 || (llen == 1 && line[0] == '\r'))
			break;  /* end of the header */
		/* "Received" then optional WSP then ':' (RFC 5322 obsolete
		 * syntax allows the WSP); continuation lines start with WSP. */
		if (llen >= 9 && strncasecmp(line, "Received", 8) == 0) {
			size_t k = 8;

			while (k < llen && (line[k] == ' ' || line[k] == '\t'))
				k++;
			if (k < llen && line[k] == ':')
				n++;
		}
		pos += llen + (nl != NULL ? 1 : 0);
	}
	return n;
}
