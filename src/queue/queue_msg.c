/*
 * Pure helpers for list distribution and auto-replies: reading header
 * fields of a queued message, rewriting its header block, tokens, the
 * records of pending requests, and the text of the short messages the
 * server sends on its own.  No I/O, no logging, no globals: the unit tests
 * (tests/unit/queue/test_queue_msg.c) and the fuzzer call them directly.
 *
 * Header values come from anyone on the Internet: every value is bounded
 * (QUEUE_MSG_MAX_VALUE, QUEUE_MSG_MAX_HEADER_SCAN), and nothing taken from
 * a message is copied into a header we write unless it is checked first
 * (addresses by queue_msg_first_address; subjects re-encoded).
 */
#include "queue/queue_list.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/str.h"
#include "queue/queue_private.h"

/* Largest message text we build around a list post (the post itself is
 * bounded by the spool's own limits). */
#define MSG_MAX_OUT (2ull * 1024 * 1024 * 1024)
/* Largest notice text. */
#define NOTICE_MAX (1024 * 1024)

/* ---- header fields ---- */

/* Length of the line at msg[pos..] including its line end. */
static size_t line_len(const char *msg, size_t len, size_t pos)
{
	const char *nl = memchr(msg + pos, '\n', len - pos);

	return nl != NULL ? (size_t)(nl - (msg + pos)) + 1 : len - pos;
}

static bool blank_line(const char *p, size_t n)
{
	return (n == 2 && p[0] == '\r' && p[1] == '\n') || (n == 1 && p[0] == '\n');
}

size_t queue_msg_header_len(const char *msg, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		size_t n = line_len(msg, len, pos);

		if (blank_line(msg + pos, n))
			return pos;
		pos += n;
	}
	return len;
}

/* One field: [start, end) with its continuation lines; name [start,
 * start + name_len). */
struct field {
	size_t start, end, name_len;
};

/* The next field at or after *pos within the header block hlen; false at
 * the end.  A line without a colon (not a field) is skipped as a field of
 * its own with name_len 0, so a malformed line never merges with its
 * neighbours. */
static bool next_field(const char *msg, size_t hlen, size_t *pos, struct field *f)
{
	size_t p = *pos, n;
	const char *colon;

	if (p >= hlen)
		return false;
	f->start = p;
	n = line_len(msg, hlen, p);
	colon = memchr(msg + p, ':', n);
	f->name_len = colon != NULL ? (size_t)(colon - (msg + p)) : 0;
	for (size_t i = 0; i < f->name_len; i++) {
		unsigned char c = (unsigned char)msg[p + i];

		if (c <= ' ' || c >= 0x7f) {
			f->name_len = 0;  /* RFC 5322 2.2: printable, no space */
			break;
		}
	}
	p += n;
	while (p < hlen && (msg[p] == ' ' || msg[p] == '\t'))
		p += line_len(msg, hlen, p);
	f->end = p;
	*pos = p;
	return true;
}

static bool field_is(const char *msg, const struct field *f, const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n && strncasecmp(msg + f->start, name, n) == 0;
}

/* The unfolded, trimmed value of f, at most QUEUE_MSG_MAX_VALUE bytes. */
static char *field_value(const char *msg, const struct field *f)
{
	size_t start = f->start + f->name_len + 1, k = 0;
	char *out = xmalloc(QUEUE_MSG_MAX_VALUE + 1);

	while (start < f->end && (msg[start] == ' ' || msg[start] == '\t'))
		start++;

	for (size_t i = start; i < f->end && k < QUEUE_MSG_MAX_VALUE; i++) {
		if (msg[i] == '\r' || msg[i] == '\n')
			continue;
		out[k++] = msg[i] == '\t' ? ' ' : msg[i];
	}
	out[k] = '\0';
	{
		char *t = str_trim(out);

		if (t != out)
			memmove(out, t, strlen(t) + 1);
	}
	return out;
}

static size_t scan_len(const char *msg, size_t len)
{
	size_t hlen = queue_msg_header_len(msg, len < QUEUE_MSG_MAX_HEADER_SCAN ? len
										: QUEUE_MSG_MAX_HEADER_SCAN);

	return hlen;
}

char *queue_msg_header(const char *msg, size_t len, const char *name)
{
	size_t hlen = scan_len(msg, len), pos = 0;
	struct field f;

	while (next_field(msg, hlen, &pos, &f)) {
		if (f.name_len > 0 && field_is(msg, &f, name))
			return field_value(msg, &f);
	}
	return NULL;
}

static bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	if (n == 0)
		return true;
	for (; *hay != '\0'; hay++) {
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	}
	return false;
}

bool queue_msg_header_contains(const char *msg, size_t len, const char *name, const char *needle)
{
	size_t hlen = scan_len(msg, len), pos = 0;
	struct field f;

	while (next_field(msg, hlen, &pos, &f)) {
		if (f.name_len > 0 && field_is(msg, &f, name)) {
			char *v = field_value(msg, &f);
			bool found = contains_ci(v, needle);

			free(v);
			if (found)
				return true;
		}
	}
	return false;
}

bool queue_msg_has_field_prefix(const char *msg, size_t len, const char *prefix)
{
	size_t hlen = scan_len(msg, len), pos = 0, n = strlen(prefix);
	struct field f;

	while (next_field(msg, hlen, &pos, &f)) {
		if (f.name_len >= n && strncasecmp(msg + f.start, prefix, n) == 0)
			return true;
	}
	return false;
}

static bool dropped(const char *msg, const struct field *f, const char *const *drop)
{
	for (size_t i = 0; drop != NULL && drop[i] != NULL; i++) {
		if (field_is(msg, f, drop[i]))
			return true;
	}
	return false;
}

char *queue_msg_rewrite(const char *msg, size_t len, const char *const *drop, const char *add,
			size_t *len_r)
{
	/* The whole header block is rewritten, not only the scanned part:
	 * a field past the scan limit must not survive a drop. */
	size_t hlen = queue_msg_header_len(msg, len), pos = 0;
	struct field f;
	struct buf b;
	int ret = 0;

	buf_init(&b, MSG_MAX_OUT);
	ret |= buf_append_str(&b, add != NULL ? add : "");
	while (next_field(msg, hlen, &pos, &f)) {
		if (f.name_len > 0 && dropped(msg, &f, drop))
			continue;
		ret |= buf_append(&b, msg + f.start, f.end - f.start);
	}
	ret |= buf_append(&b, msg + hlen, len - hlen);
	if (ret != 0)
		panic("queue_msg_rewrite: message too large");
	*len_r = b.len;
	return buf_steal(&b);
}

/* ---- addresses ---- */

static bool clean_address(const char *a, size_t n)
{
	const char *at;

	if (n == 0 || n > QUEUE_MAX_ADDRESS)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];

		if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ',' || c == '"' ||
		    c == '(' || c == ')')
			return false;
	}
	at = memchr(a, '@', n);
	return at != NULL && at != a && at != a + n - 1;
}

char *queue_msg_first_address(const char *value)
{
	const char *lt = value != NULL ? strchr(value, '<') : NULL;

	if (value == NULL)
		return NULL;
	if (lt != NULL) {
		const char *gt = strchr(lt, '>');

		if (gt == NULL || !clean_address(lt + 1, (size_t)(gt - lt - 1)))
			return NULL;
		return xstrndup(lt + 1, (size_t)(gt - lt - 1));
	}
	/* a bare addr-spec, maybe with a comment: the first word with '@' */
	for (const char *p = value; *p != '\0';) {
		size_t n;

		while (*p == ' ' || *p == ',')
			p++;
		n = strcspn(p, " ,");
		if (n > 0 && memchr(p, '@', n) != NULL)
			return clean_address(p, n) ? xstrndup(p, n) : NULL;
		p += n;
	}
	return NULL;
}

/* ---- RFC 2047 ---- */

static bool plain_ascii(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < ' ' || c >= 0x7f)
			return false;
	}
	return true;
}

char *queue_msg_encode_words(const char *utf8)
{
	struct buf b;
	const char *p = utf8;
	int ret = 0;

	if (plain_ascii(utf8))
		return xstrdup(utf8);
	buf_init(&b, NOTICE_MAX);
	/* 45 bytes of text are 60 of base64: with "=?UTF-8?B?" and "?=", 72
	 * characters, inside RFC 2047's 75. */
	while (*p != '\0') {
		size_t n = strlen(p);

		if (n > 45) {
			n = 45;
			while (n > 1 && ((unsigned char)p[n] & 0xc0) == 0x80)
				n--;
		}
		ret |= buf_append_str(&b, p == utf8 ? "=?UTF-8?B?" : "\r\n =?UTF-8?B?");
		ret |= base64_encode_append(&b, p, n);
		ret |= buf_append_str(&b, "?=");
		p += n;
	}
	if (ret != 0)
		panic("queue_msg_encode_words: too long");
	return buf_steal(&b);
}

/* ---- tokens ---- */

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

void queue_token_encode(const unsigned char raw[16], char out[QUEUE_TOKEN_LEN + 1])
{
	unsigned bits = 0, acc = 0;
	size_t k = 0;

	for (size_t i = 0; i < 16; i++) {
		acc = (acc << 8) | raw[i];
		bits += 8;
		while (bits >= 5) {
			out[k++] = b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[k++] = b32[(acc << (5 - bits)) & 31];
	out[k] = '\0';
}

bool queue_token_valid(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		char c = s[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7')))
			return false;
	}
	return n == QUEUE_TOKEN_LEN;
}

int queue_moderate_parse(const char *detail, bool *approve_r, char token[QUEUE_TOKEN_LEN + 1])
{
	const char *t;

	if (detail == NULL)
		return -1;
	if (strncasecmp(detail, "approve-", 8) == 0) {
		*approve_r = true;
		t = detail + 8;
	} else if (strncasecmp(detail, "reject-", 7) == 0) {
		*approve_r = false;
		t = detail + 7;
	} else {
		return -1;
	}
	if (!queue_token_valid(t))
		return -1;
	for (size_t i = 0; i <= QUEUE_TOKEN_LEN; i++)
		token[i] = t[i] >= 'A' && t[i] <= 'Z' ? (char)(t[i] - 'A' + 'a') : t[i];
	return 0;
}

/* ---- pending records ---- */

static const char *const action_names[] = { "subscribe", "unsubscribe", "moderate" };

char *queue_pending_format(const struct queue_pending *p)
{
	struct buf b;
	int ret = 0;

	buf_init(&b, 4096);
	ret |= buf_printf(&b, "petrel-list-pending 1\naction %s\naddress ", action_names[p->action]);
	ret |= queue_escape_append(&b, p->address);
	ret |= buf_printf(&b, "\ncreated %" PRId64 "\nsmtputf8 %d\nbody8bit %d\nend\n", p->created,
			  p->smtputf8 ? 1 : 0, p->body_8bit ? 1 : 0);
	if (ret != 0)
		panic("queue_pending_format: too long");
	return buf_steal(&b);
}

void queue_pending_free(struct queue_pending *p)
{
	free(p->address);
	memset(p, 0, sizeof(*p));
}

static int parse_line(struct queue_pending *p, const char *key, const char *value, size_t vlen)
{
	char tmp[32];
	int64_t v;

	if (strcmp(key, "address") == 0) {
		if (p->address != NULL || queue_unescape(value, vlen, &p->address) < 0 ||
		    p->address == NULL)
			return -1;
		return 0;
	}
	if (vlen == 0 || vlen >= sizeof(tmp))
		return -1;
	memcpy(tmp, value, vlen);
	tmp[vlen] = '\0';
	if (strcmp(key, "action") == 0) {
		for (size_t i = 0; i < 3; i++) {
			if (strcmp(tmp, action_names[i]) == 0) {
				p->action = (enum queue_pending_action)i;
				return 0;
			}
		}
		return -1;
	}
	if (str_to_i64(tmp, 0, INT64_MAX, &v) < 0)
		return -1;
	if (strcmp(key, "created") == 0)
		p->created = v;
	else if (strcmp(key, "smtputf8") == 0 && v <= 1)
		p->smtputf8 = v == 1;
	else if (strcmp(key, "body8bit") == 0 && v <= 1)
		p->body_8bit = v == 1;
	else
		return -1;
	return 0;
}

int queue_pending_parse(const char *data, size_t len, struct queue_pending *p)
{
	static const char *const keys[] = { "action", "address", "created", "smtputf8",
					    "body8bit" };
	unsigned seen = 0;
	size_t pos = 0;
	bool ended = false, first = true;

	memset(p, 0, sizeof(*p));
	while (pos < len && !ended) {
		const char *line = data + pos, *nl = memchr(line, '\n', len - pos), *sp;
		size_t n, klen;
		char key[16];
		size_t k;

		if (nl == NULL)
			goto fail;  /* truncated */
		n = (size_t)(nl - line);
		pos += n + 1;
		if (first) {
			if (n != 21 || memcmp(line, "petrel-list-pending 1", 21) != 0)
				goto fail;
			first = false;
			continue;
		}
		if (n == 3 && memcmp(line, "end", 3) == 0) {
			ended = true;
			break;
		}
		sp = memchr(line, ' ', n);
		if (sp == NULL)
			goto fail;
		klen = (size_t)(sp - line);
		if (klen == 0 || klen >= sizeof(key))
			goto fail;
		memcpy(key, line, klen);
		key[klen] = '\0';
		for (k = 0; k < 5 && strcmp(key, keys[k]) != 0; k++)
			;
		if (k == 5 || (seen & (1u << k)) != 0)
			goto fail;
		seen |= 1u << k;
		if (parse_line(p, key, sp + 1, n - klen - 1) < 0)
			goto fail;
	}
	if (!ended || pos != len || seen != 0x1f)
		goto fail;
	return 0;
fail:
	queue_pending_free(p);
	return -1;
}

/* ---- list headers ---- */

char *queue_list_headers_text(const struct queue_list_headers *h)
{
	struct buf b;
	int ret = 0;

	buf_init(&b, NOTICE_MAX);
	ret |= buf_printf(&b, "List-Id: %s\r\n", h->list_id);
	ret |= buf_printf(&b, "List-Unsubscribe: %s\r\n", h->list_unsubscribe);
	ret |= buf_printf(&b, "List-Subscribe: %s\r\n", h->list_subscribe);
	ret |= buf_printf(&b, "List-Post: %s\r\n", h->list_post);
	ret |= buf_append_str(&b, "Precedence: list\r\n");
	ret |= buf_printf(&b, "X-Loop: %s\r\n", h->list_address);
	if (h->reply_to != NULL)
		ret |= buf_printf(&b, "Reply-To: %s\r\n", h->reply_to);
	if (ret != 0)
		panic("queue_list_headers_text: too long");
	return buf_steal(&b);
}

char *queue_list_message(const char *msg, size_t len, const struct queue_list_headers *h,
			 size_t *len_r)
{
	static const char *const drop[] = {
		"List-Id", "List-Unsubscribe", "List-Subscribe", "List-Post", "List-Help",
		"List-Owner", "List-Archive", "Precedence", "Return-Path", NULL,
	};
	static const char *const drop_reply[] = {
		"List-Id", "List-Unsubscribe", "List-Subscribe", "List-Post", "List-Help",
		"List-Owner", "List-Archive", "Precedence", "Return-Path", "Reply-To", NULL,
	};
	char *add = queue_list_headers_text(h);
	char *out = queue_msg_rewrite(msg, len, h->reply_to != NULL ? drop_reply : drop, add, len_r);

	free(add);
	return out;
}

/* ---- notices ---- */

/* A References value we may copy: printable ASCII message ids only. */
static bool safe_ids(const char *s)
{
	return s != NULL && s[0] != '\0' && plain_ascii(s) && strlen(s) <= 4096;
}

/* Appends text with every line end as CRLF. */
static int append_crlf(struct buf *b, const char *text)
{
	int ret = 0;

	for (const char *p = text; *p != '\0'; p++) {
		if (*p == '\r')
			continue;
		if (*p == '\n')
			ret |= buf_append_str(b, "\r\n");
		else
			ret |= buf_append_char(b, *p);
	}
	return ret;
}

/* ASCII text that may go as 7bit: tabs and line ends allowed, lines of at
 * most 998 characters (RFC 5322 2.1.1). */
static bool plain_ascii_lines(const char *s)
{
	size_t line = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\n') {
			line = 0;
			continue;
		}
		if ((c < ' ' && c != '\t' && c != '\r') || c >= 0x7f || ++line > 998)
			return false;
	}
	return true;
}

static int append_body(struct buf *b, const char *text)
{
	int ret = 0;

	if (plain_ascii_lines(text)) {
		ret |= buf_append_str(b, "Content-Type: text/plain; charset=us-ascii\r\n"
					 "Content-Transfer-Encoding: 7bit\r\n\r\n");
		ret |= append_crlf(b, text);
		ret |= buf_append_str(b, "\r\n");
	} else {
		struct buf t;

		/* base64 keeps the message 7-bit, so it goes through servers
		 * without 8BITMIME unchanged. */
		buf_init(&t, NOTICE_MAX);
		ret |= append_crlf(&t, text);
		ret |= buf_append_str(&t, "\r\n");
		ret |= buf_append_str(b, "Content-Type: text/plain; charset=UTF-8\r\n"
					 "Content-Transfer-Encoding: base64\r\n\r\n");
		for (size_t off = 0; off < t.len; off += 57) {
			ret |= base64_encode_append(b, t.data + off, t.len - off < 57 ? t.len - off : 57);
			ret |= buf_append_str(b, "\r\n");
		}
		buf_deinit(&t);
	}
	return ret;
}

char *queue_notice_text(const struct queue_notice *n, size_t *len_r)
{
	char date[64];
	struct buf b;
	char *subject = queue_msg_encode_words(n->subject != NULL ? n->subject : "");
	int ret = 0;

	buf_init(&b, NOTICE_MAX * 2);
	str_date_utc(n->date, "+0000", date, sizeof(date));
	if (n->from_name != NULL && n->from_name[0] != '\0') {
		char *name = queue_msg_encode_words(n->from_name);

		if (strcmp(name, n->from_name) == 0 && strpbrk(name, "\"\\()<>@,;:[].") != NULL) {
			ret |= buf_append_str(&b, "From: \"");
			for (const char *p = name; *p != '\0'; p++) {
				if (*p == '"' || *p == '\\')
					ret |= buf_append_char(&b, '\\');
				ret |= buf_append_char(&b, *p);
			}
			ret |= buf_printf(&b, "\" <%s>\r\n", n->from);
		} else {
			ret |= buf_printf(&b, "From: %s <%s>\r\n", name, n->from);
		}
		free(name);
	} else {
		ret |= buf_printf(&b, "From: <%s>\r\n", n->from);
	}
	ret |= buf_printf(&b, "To: <%s>\r\n", n->to);
	if (n->reply_to != NULL)
		ret |= buf_printf(&b, "Reply-To: <%s>\r\n", n->reply_to);
	ret |= buf_printf(&b, "Subject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n", subject, date,
			  n->message_id);
	if (safe_ids(n->in_reply_to)) {
		ret |= buf_printf(&b, "In-Reply-To: %s\r\n", n->in_reply_to);
		if (safe_ids(n->references))
			ret |= buf_printf(&b, "References: %s\r\n %s\r\n", n->references,
					  n->in_reply_to);
		else
			ret |= buf_printf(&b, "References: %s\r\n", n->in_reply_to);
	}
	/* RFC 3834 5: so that other responders do not answer us. */
	ret |= buf_append_str(&b, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	ret |= append_body(&b, n->text != NULL ? n->text : "");
	free(subject);
	if (ret != 0)
		panic("queue_notice_text: too long");
	*len_r = b.len;
	return buf_steal(&b);
}
