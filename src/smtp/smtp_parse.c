/*
 * The SMTP server's pure parsers: command lines, paths (RFC 5321 4.1.2,
 * RFC 6531 for SMTPUTF8), ESMTP parameters (SIZE, BODY, SMTPUTF8, RET,
 * ENVID, AUTH, NOTIFY, ORCPT), xtext (RFC 3461 4), BDAT and AUTH
 * arguments, and the message data state machine.
 *
 * Everything here works on bytes with explicit lengths and bounds, holds
 * no state beyond what the caller passes, and never logs: smtp_session.c
 * calls it on client input, and so do the unit tests and the fuzzers.
 * Every refusal is a complete reply line with an enhanced status code.
 */
#include "smtp/smtp_private.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

/* ---- command lines ---- */

static const struct {
	const char *verb;
	enum smtp_cmd_id id;
} verbs[] = {
	{ "HELO", SMTP_CMD_HELO }, { "EHLO", SMTP_CMD_EHLO }, { "MAIL", SMTP_CMD_MAIL },
	{ "RCPT", SMTP_CMD_RCPT }, { "DATA", SMTP_CMD_DATA }, { "BDAT", SMTP_CMD_BDAT },
	{ "RSET", SMTP_CMD_RSET }, { "NOOP", SMTP_CMD_NOOP }, { "QUIT", SMTP_CMD_QUIT },
	{ "VRFY", SMTP_CMD_VRFY }, { "EXPN", SMTP_CMD_EXPN }, { "HELP", SMTP_CMD_HELP },
	{ "STARTTLS", SMTP_CMD_STARTTLS }, { "AUTH", SMTP_CMD_AUTH },
	/* HTTP methods and proxy requests sent to a mail port. */
	{ "GET", SMTP_CMD_FORBIDDEN }, { "POST", SMTP_CMD_FORBIDDEN },
	{ "HEAD", SMTP_CMD_FORBIDDEN }, { "PUT", SMTP_CMD_FORBIDDEN },
	{ "CONNECT", SMTP_CMD_FORBIDDEN }, { "OPTIONS", SMTP_CMD_FORBIDDEN },
};

const char *smtp_cmd_name(enum smtp_cmd_id id)
{
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (verbs[i].id == id && id != SMTP_CMD_FORBIDDEN)
			return verbs[i].verb;
	}
	return id == SMTP_CMD_FORBIDDEN ? "FORBIDDEN" : "UNKNOWN";
}

int smtp_check_line(const char *line, size_t len, const char **error_r)
{
	for (size_t i = 0; i < len; i++) {
		switch (line[i]) {
		case '\0':
			*error_r = "500 5.5.2 Syntax error: NUL byte in command";
			return -1;
		case '\r':
			*error_r = "500 5.5.2 Syntax error: bare CR in command";
			return -1;
		case '\n':
			*error_r = "500 5.5.2 Syntax error: bare LF in command";
			return -1;
		default:
			break;
		}
	}
	return 0;
}

void smtp_parse_command(const char *line, size_t len, struct smtp_command *cmd_r)
{
	size_t vlen = 0;

	cmd_r->id = SMTP_CMD_UNKNOWN;
	cmd_r->args = "";
	cmd_r->args_len = 0;
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	if (vlen == 0 || vlen > SMTP_MAX_VERB)
		return;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strlen(verbs[i].verb) == vlen && strncasecmp(verbs[i].verb, line, vlen) == 0) {
			cmd_r->id = verbs[i].id;
			break;
		}
	}
	if (cmd_r->id == SMTP_CMD_UNKNOWN)
		return;
	if (vlen < len) {
		cmd_r->args = line + vlen + 1;
		cmd_r->args_len = len - vlen - 1;
	}
}

/* ---- character classes ---- */

static bool is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5322 atext. */
static bool is_atext(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Length of the well-formed UTF-8 sequence of 2..4 bytes at s (no
 * overlongs, no surrogates, at most U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* ---- domains and address literals ---- */

bool smtp_valid_address_literal(const char *s, size_t len)
{
	char tmp[SMTP_MAX_DOMAIN + 1];
	unsigned char bin[16];
	size_t i;

	if (len < 3 || len > SMTP_MAX_DOMAIN || s[0] != '[' || s[len - 1] != ']')
		return false;
	memcpy(tmp, s + 1, len - 2);
	tmp[len - 2] = '\0';
	if (memchr(tmp, '\0', len - 2) != NULL)
		return false;
	if (strncasecmp(tmp, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, tmp + 5, bin) == 1;
	if (inet_pton(AF_INET, tmp, bin) == 1)
		return true;
	/* General-address-literal: Standardized-tag ":" 1*dcontent, the tag
	 * Ldh-str; dcontent %d33-90 / %d94-126. */
	for (i = 0; tmp[i] != '\0' && tmp[i] != ':'; i++) {
		unsigned char c = (unsigned char)tmp[i];

		if (!is_alpha(c) && !is_digit(c) && c != '-')
			return false;
	}
	if (i == 0 || tmp[i] != ':' || tmp[i + 1] == '\0' || tmp[i - 1] == '-')
		return false;
	for (size_t j = i + 1; tmp[j] != '\0'; j++) {
		unsigned char c = (unsigned char)tmp[j];

		if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']')
			return false;
	}
	return true;
}

bool smtp_valid_domain(const char *s, size_t len, bool utf8)
{
	size_t label = 0;
	bool last_hyphen = false;

	if (len == 0 || len > SMTP_MAX_DOMAIN)
		return false;
	if (s[0] == '[')
		return smtp_valid_address_literal(s, len);
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || last_hyphen)
				return false;
			label = 0;
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t n = utf8 ? utf8_seq((const unsigned char *)s + i, len - i) : 0;

			if (n == 0)
				return false;
			i += n;
			label += n;
			last_hyphen = false;
		} else if (is_alpha(c) || is_digit(c)) {
			i++;
			label++;
			last_hyphen = false;
		} else if (c == '-' && label > 0) {
			i++;
			label++;
			last_hyphen = true;
		} else {
			return false;
		}
		if (label > 63)
			return false;
	}
	return label > 0 && !last_hyphen;
}

int smtp_parse_helo(const char *args, size_t len, const char **error_r)
{
	if (len == 0) {
		*error_r = "501 5.5.4 Syntax: EHLO hostname";
		return -1;
	}
	if (len > SMTP_MAX_HELO) {
		*error_r = "501 5.5.4 Syntax: EHLO hostname (name too long)";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)args[i];

		if (c <= ' ' || c >= 0x7f) {
			*error_r = "501 5.5.4 Syntax: EHLO hostname (one name, printable ASCII)";
			return -1;
		}
	}
	return 0;
}

/* ---- paths ---- */

/* Local-part (Dot-string or Quoted-string) at s[0..len); returns its
 * length, or 0 when malformed.  *utf8 is set when it has non-ASCII. */
static size_t parse_local_part(const char *s, size_t len, bool *utf8)
{
	size_t i = 0;

	if (len > 0 && s[0] == '"') {
		for (i = 1; i < len; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c == '"')
				return i + 1;
			if (c == '\\') {
				if (i + 1 >= len || (unsigned char)s[i + 1] < 32 ||
				    (unsigned char)s[i + 1] > 126)
					return 0;
				i++;
			} else if (c >= 0x80) {
				size_t n = utf8_seq((const unsigned char *)s + i, len - i);

				if (n == 0)
					return 0;
				*utf8 = true;
				i += n - 1;
			} else if (c < 32 || c > 126) {
				return 0;
			}
		}
		return 0;
	}
	/* Dot-string: atoms separated by single dots. */
	for (;;) {
		size_t start = i;

		while (i < len) {
			unsigned char c = (unsigned char)s[i];

			if (is_atext(c)) {
				i++;
			} else if (c >= 0x80) {
				size_t n = utf8_seq((const unsigned char *)s + i, len - i);

				if (n == 0)
					return 0;
				*utf8 = true;
				i += n;
			} else {
				break;
			}
		}
		if (i == start)
			return 0;
		if (i < len && s[i] == '.') {
			i++;
			continue;
		}
		return i;
	}
}

/* Skips an A-d-l source route "@a,@b:" (RFC 5321 4.1.2: accepted and
 * ignored, C.2).  Returns the bytes to skip, 0 for none, or -1. */
static int skip_source_route(const char *s, size_t len, size_t *skip_r)
{
	size_t i = 0;

	*skip_r = 0;
	if (len == 0 || s[0] != '@')
		return 0;
	for (;;) {
		size_t start;

		if (i >= len || s[i] != '@')
			return -1;
		start = ++i;
		while (i < len && s[i] != ',' && s[i] != ':')
			i++;
		if (i >= len || !smtp_valid_domain(s + start, i - start, false))
			return -1;
		if (s[i] == ':') {
			*skip_r = i + 1;
			return 0;
		}
		i++;
	}
}

int smtp_parse_path(const char *s, size_t len, bool allow_null, bool allow_postmaster,
		    struct smtp_path *path_r, size_t *used_r, const char **error_r)
{
	const char *end;
	size_t inner, skip, lp, dlen;
	const char *p;
	bool utf8 = false;

	memset(path_r, 0, sizeof(*path_r));
	if (len < 2 || s[0] != '<') {
		*error_r = "501 5.5.4 Syntax: the address must be in angle brackets <user@domain>";
		return -1;
	}
	end = memchr(s, '>', len < SMTP_MAX_PATH + 1 ? len : SMTP_MAX_PATH + 1);
	/* A quoted local part may hold '>': find the closing bracket after it. */
	if (len > 2 && s[1] == '"') {
		size_t i = 2;

		while (i < len && s[i] != '"') {
			if (s[i] == '\\')
				i++;
			i++;
		}
		end = i < len ? memchr(s + i, '>', len - i) : NULL;
	}
	if (end == NULL) {
		*error_r = len > SMTP_MAX_PATH
			? "501 5.1.3 Address too long"
			: "501 5.5.4 Syntax: missing '>' after the address";
		return -1;
	}
	inner = (size_t)(end - s) - 1;
	*used_r = inner + 2;
	if (*used_r > SMTP_MAX_PATH) {
		*error_r = "501 5.1.3 Address too long";
		return -1;
	}
	p = s + 1;
	if (inner == 0) {
		if (!allow_null) {
			*error_r = "501 5.1.3 Null address not allowed here";
			return -1;
		}
		path_r->null = true;
		return 0;
	}
	if (allow_postmaster && inner == 10 && strncasecmp(p, "postmaster", 10) == 0) {
		memcpy(path_r->address, "postmaster", 10);
		path_r->len = 10;
		path_r->postmaster = true;
		return 0;
	}
	if (skip_source_route(p, inner, &skip) < 0) {
		*error_r = "501 5.1.3 Bad source route in address";
		return -1;
	}
	p += skip;
	inner -= skip;
	lp = parse_local_part(p, inner, &utf8);
	if (lp == 0 || lp >= inner || p[lp] != '@') {
		*error_r = "501 5.1.3 Bad address syntax (expected <local-part@domain>)";
		return -1;
	}
	if (lp > SMTP_MAX_LOCAL_PART) {
		*error_r = "501 5.1.3 Local part of the address too long";
		return -1;
	}
	dlen = inner - lp - 1;
	if (!smtp_valid_domain(p + lp + 1, dlen, true)) {
		*error_r = "501 5.1.3 Bad domain in address";
		return -1;
	}
	for (size_t i = 0; i < dlen; i++) {
		if ((unsigned char)p[lp + 1 + i] >= 0x80)
			utf8 = true;
	}
	memcpy(path_r->address, p, inner);
	path_r->address[inner] = '\0';
	path_r->len = inner;
	path_r->at = lp;
	path_r->utf8 = utf8;
	return 0;
}

/* ---- xtext ---- */

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int smtp_xtext_decode(const char *in, size_t len, char *out, size_t out_size, size_t *out_len_r)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '+') {
			int hi, lo;

			if (len - i < 3)
				return -1;
			hi = hexval((unsigned char)in[i + 1]);
			lo = hexval((unsigned char)in[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
			if (c < 0x20 || c == 0x7f)
				return -1;
		} else if (c < '!' || c > '~' || c == '=') {
			return -1;
		}
		if (n + 1 >= out_size)
			return -1;
		out[n++] = (char)c;
	}
	if (out_size == 0)
		return -1;
	out[n] = '\0';
	*out_len_r = n;
	return 0;
}

int smtp_xtext_encode(struct buf *out, const char *in, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		int ret;

		if (c < '!' || c > '~' || c == '+' || c == '=')
			ret = buf_printf(out, "+%02X", c);
		else
			ret = buf_append_char(out, (char)c);
		if (ret < 0)
			return -1;
	}
	return 0;
}

/* ---- ESMTP parameters ---- */

struct param {
	const char *key;
	size_t key_len;
	const char *value;        /* NULL when no '=' */
	size_t value_len;
};

/* Splits "KEY[=VALUE] KEY[=VALUE]..." (one or more spaces between).
 * RFC 5321 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-");
 * esmtp-value = 1*(%d33-60 / %d62-126), and UTF-8 with SMTPUTF8 (RFC 6531
 * 3.3).  Returns the count or -1 with *error_r. */
static int split_params(const char *s, size_t len, struct param *params, const char **error_r)
{
	size_t i = 0;
	int n = 0;

	for (;;) {
		struct param *pm;

		while (i < len && s[i] == ' ')
			i++;
		if (i >= len)
			return n;
		if (n >= SMTP_MAX_PARAMS) {
			*error_r = "501 5.5.4 Too many parameters";
			return -1;
		}
		pm = &params[n++];
		pm->key = s + i;
		while (i < len && s[i] != ' ' && s[i] != '=')
			i++;
		pm->key_len = (size_t)(s + i - pm->key);
		if (pm->key_len == 0 || pm->key_len > 32) {
			*error_r = "501 5.5.4 Syntax error in parameters";
			return -1;
		}
		for (size_t k = 0; k < pm->key_len; k++) {
			unsigned char c = (unsigned char)pm->key[k];

			if (!is_alpha(c) && !is_digit(c) && !(c == '-' && k > 0)) {
				*error_r = "501 5.5.4 Syntax error in parameter name";
				return -1;
			}
		}
		pm->value = NULL;
		pm->value_len = 0;
		if (i < len && s[i] == '=') {
			pm->value = s + ++i;
			while (i < len && s[i] != ' ') {
				unsigned char c = (unsigned char)s[i];

				if (c < 33 || c == '=' || c == 0x7f) {
					*error_r = "501 5.5.4 Syntax error in parameter value";
					return -1;
				}
				i++;
			}
			pm->value_len = (size_t)(s + i - pm->value);
			if (pm->value_len == 0) {
				*error_r = "501 5.5.4 Syntax error: empty parameter value";
				return -1;
			}
		}
	}
}

static bool key_is(const struct param *pm, const char *name)
{
	return strlen(name) == pm->key_len && strncasecmp(pm->key, name, pm->key_len) == 0;
}

static bool value_is(const struct param *pm, const char *v)
{
	return pm->value != NULL && strlen(v) == pm->value_len &&
	       strncasecmp(pm->value, v, pm->value_len) == 0;
}

/* "FROM:" / "TO:" then optional spaces then the path; returns the offset
 * of the path or -1. */
static int skip_prefix(const char *args, size_t len, const char *prefix)
{
	size_t plen = strlen(prefix), i;

	if (len < plen || strncasecmp(args, prefix, plen) != 0)
		return -1;
	i = plen;
	/* RFC 5321 has no space here; many clients send one (Postfix accepts). */
	while (i < len && i < plen + 8 && args[i] == ' ')
		i++;
	return (int)i;
}

/* After the path: nothing, or at least one space then parameters. */
static int params_start(const char *args, size_t len, size_t pos, const char **error_r)
{
	if (pos < len && args[pos] != ' ') {
		*error_r = "501 5.5.4 Syntax error: junk after the address";
		return -1;
	}
	return 0;
}

int smtp_parse_mail(const char *args, size_t len, bool esmtp, struct smtp_path *path_r,
		    struct smtp_mail_params *params_r, const char **error_r)
{
	struct param params[SMTP_MAX_PARAMS];
	int off = skip_prefix(args, len, "FROM:"), n;
	size_t used, pos;
	bool seen_size = false, seen_body = false, seen_ret = false;

	memset(params_r, 0, sizeof(*params_r));
	if (off < 0) {
		*error_r = "501 5.5.4 Syntax: MAIL FROM:<address>";
		return -1;
	}
	if (smtp_parse_path(args + off, len - (size_t)off, true, false, path_r, &used, error_r) < 0)
		return -1;
	pos = (size_t)off + used;
	if (params_start(args, len, pos, error_r) < 0)
		return -1;
	n = split_params(args + pos, len - pos, params, error_r);
	if (n < 0)
		return -1;
	if (n > 0 && !esmtp) {
		*error_r = "555 5.5.4 Parameters need EHLO";
		return -1;
	}
	for (int i = 0; i < n; i++) {
		const struct param *pm = &params[i];

		if (key_is(pm, "SIZE")) {
			uint64_t v = 0;

			if (seen_size) {
				*error_r = "501 5.5.4 Duplicate SIZE parameter";
				return -1;
			}
			seen_size = true;
			if (pm->value == NULL || pm->value_len > SMTP_MAX_SIZE_DIGITS) {
				*error_r = "501 5.5.4 Syntax: SIZE=number";
				return -1;
			}
			for (size_t k = 0; k < pm->value_len; k++) {
				unsigned d = (unsigned char)pm->value[k] - '0';

				if (d > 9) {
					*error_r = "501 5.5.4 Syntax: SIZE=number";
					return -1;
				}
				/* @UNSAFE overflow check before v * 10 + d */
				if (v > (UINT64_MAX - d) / 10) {
					*error_r = "501 5.5.4 SIZE value out of range";
					return -1;
				}
				v = v * 10 + d;
			}
			params_r->has_size = true;
			params_r->size = v;
		} else if (key_is(pm, "BODY")) {
			if (seen_body) {
				*error_r = "501 5.5.4 Duplicate BODY parameter";
				return -1;
			}
			seen_body = true;
			if (value_is(pm, "7BIT")) {
				params_r->body = SMTP_BODY_7BIT;
			} else if (value_is(pm, "8BITMIME")) {
				params_r->body = SMTP_BODY_8BITMIME;
			} else {
				*error_r = "555 5.5.4 Unsupported BODY type (7BIT or 8BITMIME)";
				return -1;
			}
		} else if (key_is(pm, "SMTPUTF8")) {
			if (params_r->smtputf8) {
				*error_r = "501 5.5.4 Duplicate SMTPUTF8 parameter";
				return -1;
			}
			if (pm->value != NULL) {
				*error_r = "501 5.5.4 SMTPUTF8 takes no value";
				return -1;
			}
			params_r->smtputf8 = true;
		} else if (key_is(pm, "RET")) {
			if (seen_ret) {
				*error_r = "501 5.5.4 Duplicate RET parameter";
				return -1;
			}
			seen_ret = true;
			if (value_is(pm, "FULL")) {
				params_r->ret = SMTP_RET_FULL;
			} else if (value_is(pm, "HDRS")) {
				params_r->ret = SMTP_RET_HDRS;
			} else {
				*error_r = "501 5.5.4 Syntax: RET=FULL or RET=HDRS";
				return -1;
			}
		} else if (key_is(pm, "ENVID")) {
			size_t dl;

			if (params_r->has_envid) {
				*error_r = "501 5.5.4 Duplicate ENVID parameter";
				return -1;
			}
			if (pm->value == NULL ||
			    smtp_xtext_decode(pm->value, pm->value_len, params_r->envid,
					      sizeof(params_r->envid), &dl) < 0) {
				*error_r = "501 5.5.4 Syntax: ENVID=xtext (printable, at most 100 characters)";
				return -1;
			}
			params_r->has_envid = true;
		} else if (key_is(pm, "AUTH")) {
			size_t dl;

			if (params_r->has_auth) {
				*error_r = "501 5.5.4 Duplicate AUTH parameter";
				return -1;
			}
			if (pm->value == NULL ||
			    smtp_xtext_decode(pm->value, pm->value_len, params_r->auth,
					      sizeof(params_r->auth), &dl) < 0) {
				*error_r = "501 5.5.4 Syntax: AUTH=xtext";
				return -1;
			}
			params_r->has_auth = true;
		} else {
			*error_r = "555 5.5.4 Unsupported MAIL parameter";
			return -1;
		}
	}
	if (path_r->utf8 && !params_r->smtputf8) {
		*error_r = "553 5.6.7 Non-ASCII address needs the SMTPUTF8 parameter";
		return -1;
	}
	return 0;
}

/* NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY, each once. */
static int parse_notify(const struct param *pm, unsigned *notify_r)
{
	size_t i = 0;
	unsigned v = 0;

	if (pm->value == NULL)
		return -1;
	while (i <= pm->value_len) {
		size_t start = i;
		unsigned bit;

		while (i < pm->value_len && pm->value[i] != ',')
			i++;
		if (i - start == 5 && strncasecmp(pm->value + start, "NEVER", 5) == 0)
			bit = SMTP_NOTIFY_NEVER;
		else if (i - start == 7 && strncasecmp(pm->value + start, "SUCCESS", 7) == 0)
			bit = SMTP_NOTIFY_SUCCESS;
		else if (i - start == 7 && strncasecmp(pm->value + start, "FAILURE", 7) == 0)
			bit = SMTP_NOTIFY_FAILURE;
		else if (i - start == 5 && strncasecmp(pm->value + start, "DELAY", 5) == 0)
			bit = SMTP_NOTIFY_DELAY;
		else
			return -1;
		if (v & bit)
			return -1;
		v |= bit;
		i++;
	}
	if ((v & SMTP_NOTIFY_NEVER) && v != SMTP_NOTIFY_NEVER)
		return -1;
	*notify_r = v;
	return 0;
}

int smtp_parse_rcpt(const char *args, size_t len, bool esmtp, struct smtp_path *path_r,
		    struct smtp_rcpt_params *params_r, const char **error_r)
{
	struct param params[SMTP_MAX_PARAMS];
	int off = skip_prefix(args, len, "TO:"), n;
	size_t used, pos;

	memset(params_r, 0, sizeof(*params_r));
	if (off < 0) {
		*error_r = "501 5.5.4 Syntax: RCPT TO:<address>";
		return -1;
	}
	if (smtp_parse_path(args + off, len - (size_t)off, false, true, path_r, &used, error_r) < 0)
		return -1;
	pos = (size_t)off + used;
	if (params_start(args, len, pos, error_r) < 0)
		return -1;
	n = split_params(args + pos, len - pos, params, error_r);
	if (n < 0)
		return -1;
	if (n > 0 && !esmtp) {
		*error_r = "555 5.5.4 Parameters need EHLO";
		return -1;
	}
	for (int i = 0; i < n; i++) {
		const struct param *pm = &params[i];

		if (key_is(pm, "NOTIFY")) {
			if (params_r->notify != 0) {
				*error_r = "501 5.5.4 Duplicate NOTIFY parameter";
				return -1;
			}
			if (parse_notify(pm, &params_r->notify) < 0) {
				*error_r = "501 5.5.4 Syntax: NOTIFY=NEVER or NOTIFY=SUCCESS,FAILURE,DELAY";
				return -1;
			}
		} else if (key_is(pm, "ORCPT")) {
			const char *semi;
			size_t tlen, dl;

			if (params_r->has_orcpt) {
				*error_r = "501 5.5.4 Duplicate ORCPT parameter";
				return -1;
			}
			semi = pm->value != NULL ? memchr(pm->value, ';', pm->value_len) : NULL;
			tlen = semi != NULL ? (size_t)(semi - pm->value) : 0;
			if (semi == NULL || tlen == 0 || tlen > 32 || tlen + 1 >= pm->value_len) {
				*error_r = "501 5.5.4 Syntax: ORCPT=addr-type;xtext";
				return -1;
			}
			for (size_t k = 0; k < tlen; k++) {
				unsigned char c = (unsigned char)pm->value[k];

				if (!is_alpha(c) && !is_digit(c) && !(c == '-' && k > 0)) {
					*error_r = "501 5.5.4 Syntax: ORCPT=addr-type;xtext";
					return -1;
				}
			}
			memcpy(params_r->orcpt, pm->value, tlen + 1);
			if (smtp_xtext_decode(semi + 1, pm->value_len - tlen - 1,
					      params_r->orcpt + tlen + 1,
					      sizeof(params_r->orcpt) - tlen - 1, &dl) < 0) {
				*error_r = "501 5.5.4 Syntax: ORCPT=addr-type;xtext (printable, at most 500 characters)";
				return -1;
			}
			params_r->has_orcpt = true;
		} else {
			*error_r = "555 5.5.4 Unsupported RCPT parameter";
			return -1;
		}
	}
	return 0;
}

int smtp_parse_bdat(const char *args, size_t len, uint64_t *size_r, bool *last_r,
		    const char **error_r)
{
	size_t i = 0;
	uint64_t v = 0;

	*last_r = false;
	while (i < len && is_digit((unsigned char)args[i])) {
		unsigned d = (unsigned char)args[i] - '0';

		if (i >= SMTP_MAX_SIZE_DIGITS || v > (UINT64_MAX - d) / 10) {
			*error_r = "501 5.5.4 BDAT size out of range";
			return -1;
		}
		v = v * 10 + d;
		i++;
	}
	if (i == 0) {
		*error_r = "501 5.5.4 Syntax: BDAT size [LAST]";
		return -1;
	}
	if (i < len) {
		if (len - i == 5 && strncasecmp(args + i, " LAST", 5) == 0) {
			*last_r = true;
		} else {
			*error_r = "501 5.5.4 Syntax: BDAT size [LAST]";
			return -1;
		}
	}
	*size_r = v;
	return 0;
}

int smtp_parse_auth(const char *args, size_t len, const char **mech_r, size_t *mech_len_r,
		    const char **initial_r, size_t *initial_len_r, const char **error_r)
{
	size_t i = 0;

	while (i < len && args[i] != ' ') {
		unsigned char c = (unsigned char)args[i];

		/* RFC 4422 3.1: 1..20 of A-Z 0-9 - _ (either case accepted). */
		if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_') {
			*error_r = "501 5.5.4 Syntax: AUTH mechanism [initial-response]";
			return -1;
		}
		i++;
	}
	if (i == 0 || i > 20) {
		*error_r = "501 5.5.4 Syntax: AUTH mechanism [initial-response]";
		return -1;
	}
	*mech_r = args;
	*mech_len_r = i;
	*initial_r = NULL;
	*initial_len_r = 0;
	if (i < len) {
		if (i + 1 >= len || memchr(args + i + 1, ' ', len - i - 1) != NULL) {
			*error_r = "501 5.5.4 Syntax: AUTH mechanism [initial-response]";
			return -1;
		}
		*initial_r = args + i + 1;
		*initial_len_r = len - i - 1;
	}
	return 0;
}

/* ---- message data ---- */

enum {
	D_BOL,        /* at the start of a line */
	D_TEXT,       /* inside a line */
	D_CR,         /* a CR inside a line: CRLF or bare CR? */
	D_DOT,        /* DOT mode: "." at the start of a line */
	D_DOT_CR,     /* DOT mode: ".\r" at the start of a line */
};

void smtp_data_init(struct smtp_data_parser *p, enum smtp_data_mode mode)
{
	memset(p, 0, sizeof(*p));
	p->mode = mode;
	p->state = D_BOL;
	p->prev_crlf = true;      /* the CRLF of the DATA command line */
	p->in_header = true;
}

static void out_bytes(struct smtp_data_parser *p, struct buf *out, const char *data, size_t n)
{
	if (buf_append(out, data, n) < 0)
		panic("smtp_data_feed: output buffer too small");
	p->out_bytes += n;
	p->line_len += n;
	if (p->in_header)
		p->header_bytes += n;
}

/* Ends the current line; real: it ended with CRLF (not a normalized bare
 * CR or LF). */
static void out_eol(struct smtp_data_parser *p, struct buf *out, bool real)
{
	if (buf_append(out, "\r\n", 2) < 0)
		panic("smtp_data_feed: output buffer too small");
	p->out_bytes += 2;
	if (p->in_header) {
		if (p->line_len == 0)
			p->in_header = false;   /* the empty line ends the header */
		else
			p->header_bytes += 2;
	}
	if (p->line_len > p->max_line)
		p->max_line = p->line_len;
	p->line_len = 0;
	p->lines++;
	p->prev_crlf = real;
	if (!real)
		p->bare = true;
	p->state = D_BOL;
}

size_t smtp_data_feed(struct smtp_data_parser *p, const char *in, size_t len, struct buf *out)
{
	size_t i = 0;

	/* @UNSAFE 2 * len + 3 cannot overflow: len is a chunk in memory. */
	if (out->max - out->len < 2 * len + 3)
		panic("smtp_data_feed: output buffer too small");
	if (p->ended)
		return 0;
	while (i < len) {
		unsigned char c = (unsigned char)in[i];

		switch (p->state) {
		case D_BOL:
			if (p->mode == SMTP_DATA_DOT && c == '.') {
				p->state = D_DOT;
				i++;
				continue;
			}
			p->state = D_TEXT;
			continue;   /* the same byte, as text */
		case D_TEXT: {
			size_t start = i;

			/* Fast path: the run of ordinary bytes. */
			while (i < len && in[i] != '\r' && in[i] != '\n')
				i++;
			if (i > start)
				out_bytes(p, out, in + start, i - start);
			if (i >= len)
				break;
			if (in[i] == '\r') {
				p->state = D_CR;
			} else {
				out_eol(p, out, false);   /* bare LF */
			}
			i++;
			continue;
		}
		case D_CR:
			if (c == '\n') {
				out_eol(p, out, true);
				i++;
			} else {
				out_eol(p, out, false);   /* bare CR; c starts a line */
			}
			continue;
		case D_DOT:
			if (c == '\r') {
				p->state = D_DOT_CR;
				i++;
				continue;
			}
			/* Dot-stuffing: the leading dot goes (RFC 5321 4.5.2);
			 * c is ordinary text, or a bare LF ending a "." line. */
			p->state = D_TEXT;
			continue;
		case D_DOT_CR:
			if (c == '\n') {
				i++;
				if (p->prev_crlf) {
					/* CRLF "." CRLF: the end of the data. */
					p->ended = true;
					if (p->line_len > p->max_line)
						p->max_line = p->line_len;
					return i;
				}
				/* "." after a bare line end: content (smuggling). */
				out_eol(p, out, true);
			} else {
				out_eol(p, out, false);   /* "." then bare CR */
			}
			continue;
		default:
			panic("smtp_data_feed: bad state %d", p->state);
		}
	}
	return i;
}

void smtp_data_finish(struct smtp_data_parser *p, struct buf *out)
{
	if (out->max - out->len < 3)
		panic("smtp_data_finish: output buffer too small");
	switch (p->state) {
	case D_CR:
	case D_DOT_CR:
		out_eol(p, out, false);
		break;
	case D_TEXT:
		if (p->line_len > 0) {
			out_eol(p, out, true);
		}
		break;
	case D_DOT:
		out_eol(p, out, true);
		break;
	default:
		break;
	}
	p->state = D_BOL;
}
