/*
 * Pure parsers of what a remote SMTP server says: replies (RFC 5321 4.2,
 * multi-line, RFC 3463 enhanced status codes) and EHLO capabilities, plus
 * RFC 3461 xtext.  No I/O, no logging, no globals: the session code,
 * the unit tests and fuzz/fuzz_smtp_reply.c call these directly.
 *
 * The reply parser is strict because the peer is hostile: OpenSMTPD
 * CVE-2020-8794 read past a buffer on a multi-line reply and let a
 * newline from the reply reach the envelope file.  Here a reply with NUL,
 * bare CR or LF, a bad code, or more than OUTBOUND_MAX_REPLY bytes is BAD
 * and the session is dropped; the kept text has only printable ASCII.
 */
#include "outbound/outbound_private.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"

static bool is_code(const char *p)
{
	return p[0] >= '2' && p[0] <= '5' && isdigit((unsigned char)p[1]) &&
	       isdigit((unsigned char)p[2]);
}

/* "X.Y.Z" with X = class, Y 1-3 digits, Z 1-3 digits (RFC 3463 2);
 * returns its length, or 0. */
static size_t enhanced_len(const char *p, size_t len, char class_digit)
{
	size_t i = 0, n;

	if (len < 5 || p[0] != class_digit || p[1] != '.')
		return 0;
	i = 2;
	for (n = 0; i < len && isdigit((unsigned char)p[i]) && n < 3; i++, n++)
		;
	if (n == 0 || i >= len || p[i] != '.')
		return 0;
	i++;
	for (n = 0; i < len && isdigit((unsigned char)p[i]) && n < 3; i++, n++)
		;
	if (n == 0)
		return 0;
	if (i < len && p[i] != ' ')
		return 0;
	return i;
}

static void text_append(struct outbound_reply *r, size_t *tlen, const char *p, size_t len)
{
	if (*tlen > 0 && *tlen < OUTBOUND_MAX_TEXT && len > 0)
		r->text[(*tlen)++] = ' ';
	for (size_t i = 0; i < len && *tlen < OUTBOUND_MAX_TEXT; i++) {
		unsigned char c = (unsigned char)p[i];

		r->text[(*tlen)++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	r->text[*tlen] = '\0';
}

enum outbound_reply_result outbound_reply_parse(const char *data, size_t len, struct outbound_reply *reply,
					size_t *consumed_r, const char **error_r)
{
	size_t pos = 0, tlen = 0;
	int code = 0;

	memset(reply, 0, sizeof(*reply));
	for (;;) {
		const char *line = data + pos;
		size_t avail = len - pos, llen;
		const char *end;
		char sep;

		/* Look for the end of this line, checking every byte. */
		end = NULL;
		for (size_t i = 0; i < avail; i++) {
			char c = line[i];

			if (c == '\0') {
				*error_r = "NUL in reply";
				return OUTBOUND_REPLY_BAD;
			}
			if (c == '\n') {
				*error_r = "bare LF in reply";
				return OUTBOUND_REPLY_BAD;
			}
			if (c == '\r') {
				if (i + 1 >= avail)
					break;  /* maybe CRLF across reads */
				if (line[i + 1] != '\n') {
					*error_r = "bare CR in reply";
					return OUTBOUND_REPLY_BAD;
				}
				end = line + i;
				break;
			}
			if (i >= OUTBOUND_MAX_REPLY_LINE) {
				*error_r = "reply line too long";
				return OUTBOUND_REPLY_BAD;
			}
		}
		if (end == NULL) {
			if (avail > OUTBOUND_MAX_REPLY_LINE) {
				*error_r = "reply line too long";
				return OUTBOUND_REPLY_BAD;
			}
			if (len >= OUTBOUND_MAX_REPLY) {
				*error_r = "reply too long";
				return OUTBOUND_REPLY_BAD;
			}
			return OUTBOUND_REPLY_MORE;
		}
		llen = (size_t)(end - line);
		if (pos + llen + 2 > OUTBOUND_MAX_REPLY) {
			*error_r = "reply too long";
			return OUTBOUND_REPLY_BAD;
		}
		if (llen < 3 || !is_code(line)) {
			*error_r = "reply line without a status code";
			return OUTBOUND_REPLY_BAD;
		}
		sep = llen > 3 ? line[3] : ' ';
		if (sep != ' ' && sep != '-') {
			*error_r = "reply code not followed by space or hyphen";
			return OUTBOUND_REPLY_BAD;
		}
		{
			int c = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');

			if (code == 0) {
				code = c;
			} else if (c != code) {
				*error_r = "reply lines with different codes";
				return OUTBOUND_REPLY_BAD;
			}
		}
		{
			const char *t = llen > 4 ? line + 4 : line + llen;
			size_t tl = llen > 4 ? llen - 4 : 0;
			size_t el = enhanced_len(t, tl, line[0]);

			if (el > 0) {
				if (reply->lines == 0 && el < sizeof(reply->enhanced)) {
					memcpy(reply->enhanced, t, el);
					reply->enhanced[el] = '\0';
				}
				t += el;
				tl -= el;
				while (tl > 0 && *t == ' ') {
					t++;
					tl--;
				}
			}
			text_append(reply, &tlen, t, tl);
		}
		reply->lines++;
		pos += llen + 2;
		if (sep == ' ') {
			reply->code = code;
			*consumed_r = pos;
			return OUTBOUND_REPLY_DONE;
		}
	}
}

static bool keyword_is(const char *p, size_t len, const char *kw, const char **rest_r)
{
	size_t kl = strlen(kw);

	if (len < kl || strncasecmp(p, kw, kl) != 0)
		return false;
	if (len > kl && p[kl] != ' ' && p[kl] != '=')
		return false;
	*rest_r = p + kl;
	return true;
}

void outbound_caps_parse(const char *data, size_t len, struct outbound_caps *caps)
{
	size_t pos = 0, lineno = 0;

	memset(caps, 0, sizeof(*caps));
	caps->esmtp = true;
	while (pos + 2 <= len) {
		const char *line = data + pos, *cr = memchr(line, '\r', len - pos), *rest;
		size_t llen;

		if (cr == NULL)
			break;
		llen = (size_t)(cr - line);
		pos += llen + 2;
		if (lineno++ == 0 || llen < 4)
			continue;  /* the greeting line names the host */
		line += 4;
		llen -= 4;
		if (keyword_is(line, llen, "PIPELINING", &rest))
			caps->pipelining = true;
		else if (keyword_is(line, llen, "8BITMIME", &rest))
			caps->eightbitmime = true;
		else if (keyword_is(line, llen, "SMTPUTF8", &rest))
			caps->smtputf8 = true;
		else if (keyword_is(line, llen, "DSN", &rest))
			caps->dsn = true;
		else if (keyword_is(line, llen, "STARTTLS", &rest))
			caps->starttls = true;
		else if (keyword_is(line, llen, "ENHANCEDSTATUSCODES", &rest))
			caps->enhancedstatuscodes = true;
		else if (keyword_is(line, llen, "SIZE", &rest)) {
			uint64_t v = 0;
			const char *end = line + llen;

			caps->size = true;
			while (rest < end && *rest == ' ')
				rest++;
			for (; rest < end && isdigit((unsigned char)*rest); rest++) {
				if (v > (UINT64_MAX - 9) / 10) {
					v = 0;
					break;
				}
				v = v * 10 + (uint64_t)(*rest - '0');
			}
			caps->max_size = v;
		} else if (keyword_is(line, llen, "AUTH", &rest)) {
			const char *end = line + llen;

			while (rest < end) {
				const char *w;

				while (rest < end && (*rest == ' ' || *rest == '='))
					rest++;
				w = rest;
				while (rest < end && *rest != ' ')
					rest++;
				if (rest - w == 5 && strncasecmp(w, "PLAIN", 5) == 0)
					caps->auth_plain = true;
				if (rest - w == 5 && strncasecmp(w, "LOGIN", 5) == 0)
					caps->auth_login = true;
			}
		}
	}
}

int outbound_xtext_encode(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x21 && c <= 0x7e && c != '+' && c != '=') {
			if (buf_append_char(out, (char)c) < 0)
				return -1;
		} else if (buf_printf(out, "+%02X", c) < 0) {
			return -1;
		}
	}
	return 0;
}

int outbound_xtext_decode(const char *text, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c == '+') {
			int hi, lo;

			if (i + 2 >= len)
				return -1;
			hi = str_hex_digit(text[i + 1]);
			lo = str_hex_digit(text[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			if (buf_append_char(out, (char)(hi * 16 + lo)) < 0)
				return -1;
			i += 2;
		} else if (c < 0x21 || c > 0x7e || c == '=') {
			return -1;
		} else if (buf_append_char(out, (char)c) < 0) {
			return -1;
		}
	}
	return 0;
}

/* ---- loop checks (pure; used by outbound_session.c) ---- */

/* True when a greeting's text ("mx.example.net ESMTP ...") starts with
 * our own host name. */
bool ob_greets_as_me(const char *text, const char *me)
{
	size_t n = strcspn(text, " ");

	if (me == NULL || me[0] == '\0' || n != strlen(me))
		return false;
	return strncasecmp(text, me, n) == 0;
}

/* RFC 5321 5.1: when our own host name is among the domain's exchangers,
 * only the ones strictly preferred to us may be used; when we are the best
 * exchanger, the mail loops back to us (the domain is not local, or it
 * would not be here).  Returns -1 then, else 0 with res trimmed. */
int ob_drop_self(struct ob_resolve *res, const char *me)
{
	int self_pref = INT_MAX;
	size_t n = 0;

	if (me == NULL || me[0] == '\0')
		return 0;
	for (size_t i = 0; i < res->count; i++) {
		if (strcasecmp(res->dests[i].host, me) == 0 && res->dests[i].pref < self_pref)
			self_pref = res->dests[i].pref;
	}
	if (self_pref == INT_MAX)
		return 0;
	for (size_t i = 0; i < res->count; i++) {
		if (res->dests[i].pref < self_pref)
			res->dests[n++] = res->dests[i];
	}
	res->count = n;
	return n > 0 ? 0 : -1;
}
