/*
 * What the store caches per message, computed once at delivery or
 * re-index from a mime_scan() result: IMAP ENVELOPE / BODYSTRUCTURE /
 * BODY text, sort and thread keys, decoded addresses, a preview and the
 * text for the full-text index.
 *
 * GMime parses single header values here, each capped first
 * (MIME_MAX_FIELD_VALUE, MIME_MAX_PARAM_VALUE, MIME_MAX_ADDRESS_COLONS), and
 * decodes transfer encodings and charsets.  Recursion follows the part tree,
 * whose depth the scanner bounds by MIME_MAX_DEPTH.
 */
#include "mime/mime.h"
#include "mime/mime_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"

/* Our own bounds make overflow of these buffers impossible: a failure is
 * our bug. */
#define OUT_MAX ((size_t)1 << 30)

static void put(struct buf *b, const void *p, size_t n)
{
	if (buf_append(b, p, n) < 0)
		panic("mime: summary buffer over %zu bytes", b->max);
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static bool is_ascii(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s >= 0x80)
			return false;
	}
	return true;
}

void mime_imap_string(struct buf *out, const char *s, size_t len)
{
	bool quoted = len <= 1024;
	size_t n = 0;

	if (s == NULL) {
		puts_(out, "NIL");
		return;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0')
			continue;
		n++;
		if (c == '\r' || c == '\n' || c >= 0x80)
			quoted = false;
	}
	if (quoted) {
		put(out, "\"", 1);
		for (size_t i = 0; i < len; i++) {
			if (s[i] == '\0')
				continue;
			if (s[i] == '"' || s[i] == '\\')
				put(out, "\\", 1);
			put(out, &s[i], 1);
		}
		put(out, "\"", 1);
		return;
	}
	{
		char hdr[32];
		size_t start = 0;

		snprintf(hdr, sizeof(hdr), "{%zu}\r\n", n);
		puts_(out, hdr);
		for (size_t i = 0; i <= len; i++) {
			if (i == len || s[i] == '\0') {
				put(out, s + start, i - start);
				start = i + 1;
			}
		}
	}
}

static void imap_cstr(struct buf *b, const char *s)
{
	mime_imap_string(b, s, s == NULL ? 0 : strlen(s));
}

static char *field(const struct mime_message *m, const struct mime_part *p, enum mime_field f,
		   size_t max)
{
	return mime_field_value(m, p, f, max);
}

/* --- addresses --- */

/* GMime's address parser recurses once per nested group: keep at most
 * MIME_MAX_ADDRESS_COLONS colons (the rest become spaces). */
static InternetAddressList *parse_addresses(char *value)
{
	unsigned colons = 0;

	if (value == NULL)
		return NULL;
	for (char *p = value; *p != '\0'; p++) {
		if (*p == ':' && ++colons > MIME_MAX_ADDRESS_COLONS)
			*p = ' ';
	}
	return internet_address_list_parse(mime_parser_options(), value);
}

static void addr_name(struct buf *b, const char *name)
{
	char *enc;

	if (name == NULL || *name == '\0') {
		puts_(b, "NIL");
		return;
	}
	if (is_ascii(name)) {
		imap_cstr(b, name);
		return;
	}
	/* ENVELOPE strings are 7-bit: re-encode what GMime decoded. */
	enc = g_mime_utils_header_encode_phrase(NULL, name, "utf-8");
	imap_cstr(b, enc);
	g_free(enc);
}

static void addr_mailbox(struct buf *b, InternetAddress *ia)
{
	InternetAddressMailbox *mb = INTERNET_ADDRESS_MAILBOX(ia);
	const char *addr = mb->addr != NULL ? mb->addr : "";

	put(b, "(", 1);
	addr_name(b, ia->name);
	puts_(b, " NIL ");
	if (mb->at >= 0 && (size_t)mb->at <= strlen(addr)) {
		if (mb->at == 0)
			imap_cstr(b, "MISSING_MAILBOX");
		else
			mime_imap_string(b, addr, (size_t)mb->at);
		put(b, " ", 1);
		imap_cstr(b, addr[mb->at + 1] != '\0' ? addr + mb->at + 1 : "MISSING_DOMAIN");
	} else {
		/* No domain: NIL here would mean a group (RFC 3501 7.4.2). */
		imap_cstr(b, *addr != '\0' ? addr : "MISSING_MAILBOX");
		puts_(b, " \"MISSING_DOMAIN\"");
	}
	put(b, ")", 1);
}

/* Appends the address list; returns the number of entries written. */
static unsigned address_list(struct buf *b, InternetAddressList *list, unsigned max)
{
	unsigned n = 0;
	int len = list == NULL ? 0 : internet_address_list_length(list);

	if (len == 0) {
		puts_(b, "NIL");
		return 0;
	}
	put(b, "(", 1);
	for (int i = 0; i < len && n < max; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);

		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			InternetAddressList *members =
				internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia));
			int mlen = members == NULL ? 0 : internet_address_list_length(members);

			puts_(b, "(NIL NIL ");
			imap_cstr(b, ia->name != NULL ? ia->name : "");
			puts_(b, " NIL)");
			n++;
			for (int j = 0; j < mlen && n < max; j++) {
				InternetAddress *m = internet_address_list_get_address(members, j);

				if (INTERNET_ADDRESS_IS_MAILBOX(m)) {
					addr_mailbox(b, m);
					n++;
				}
			}
			puts_(b, "(NIL NIL NIL NIL)");
			n++;
		} else if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
			addr_mailbox(b, ia);
			n++;
		}
	}
	put(b, ")", 1);
	return n;
}

static InternetAddressMailbox *first_mailbox(InternetAddressList *list)
{
	int len = list == NULL ? 0 : internet_address_list_length(list);

	for (int i = 0; i < len; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);

		if (INTERNET_ADDRESS_IS_MAILBOX(ia))
			return INTERNET_ADDRESS_MAILBOX(ia);
		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			InternetAddressMailbox *mb =
				first_mailbox(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)));

			if (mb != NULL)
				return mb;
		}
	}
	return NULL;
}

static char *lower_dup(const char *s, size_t n)
{
	char *r = xstrndup(s, n);

	for (char *p = r; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

static char *sort_key(InternetAddressList *list)
{
	InternetAddressMailbox *mb = first_mailbox(list);

	if (mb == NULL || mb->addr == NULL)
		return NULL;
	return lower_dup(mb->addr, mb->at >= 0 ? (size_t)mb->at : strlen(mb->addr));
}

static char *display_key(InternetAddressList *list)
{
	InternetAddressMailbox *mb = first_mailbox(list);
	const char *name;

	if (mb == NULL)
		return NULL;
	name = ((InternetAddress *)mb)->name;
	if (name != NULL && *name != '\0')
		return xstrdup(name);
	return mb->addr != NULL ? xstrdup(mb->addr) : NULL;
}

static char *list_text(InternetAddressList *list)
{
	char *s, *r;

	if (list == NULL || internet_address_list_length(list) == 0)
		return NULL;
	s = internet_address_list_to_string(list, NULL, FALSE);
	r = s != NULL ? xstrdup(s) : NULL;
	g_free(s);
	return r;
}

static const enum mime_field addr_fields[] = {
	MIME_F_FROM, MIME_F_SENDER, MIME_F_REPLY_TO, MIME_F_TO, MIME_F_CC, MIME_F_BCC
};
#define ADDR_FIELDS (sizeof(addr_fields) / sizeof(addr_fields[0]))

static void envelope(struct buf *b, const struct mime_message *m, const struct mime_part *p,
		     const struct mime_limits *lim)
{
	InternetAddressList *lists[ADDR_FIELDS];
	char *v;

	put(b, "(", 1);
	v = field(m, p, MIME_F_DATE, lim->max_field_value);
	imap_cstr(b, v);
	free(v);
	put(b, " ", 1);
	v = field(m, p, MIME_F_SUBJECT, lim->max_field_value);
	imap_cstr(b, v);
	free(v);
	for (size_t i = 0; i < ADDR_FIELDS; i++) {
		v = field(m, p, addr_fields[i], lim->max_field_value);
		lists[i] = parse_addresses(v);
		free(v);
	}
	for (size_t i = 0; i < ADDR_FIELDS; i++) {
		InternetAddressList *l = lists[i];

		/* Sender and Reply-To default to From (RFC 3501 7.4.2). */
		if ((addr_fields[i] == MIME_F_SENDER || addr_fields[i] == MIME_F_REPLY_TO) &&
		    (l == NULL || internet_address_list_length(l) == 0))
			l = lists[0];
		put(b, " ", 1);
		address_list(b, l, lim->max_addresses);
	}
	for (size_t i = 0; i < ADDR_FIELDS; i++) {
		if (lists[i] != NULL)
			g_object_unref(lists[i]);
	}
	put(b, " ", 1);
	v = field(m, p, MIME_F_IN_REPLY_TO, lim->max_field_value);
	imap_cstr(b, v);
	free(v);
	put(b, " ", 1);
	v = field(m, p, MIME_F_MESSAGE_ID, lim->max_field_value);
	imap_cstr(b, v);
	free(v);
	put(b, ")", 1);
}

/* --- body structure --- */

static void pct_encode(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || strchr("!#$&+-.^_`|~", c) != NULL) {
			put(b, s, 1);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			put(b, e, 3);
		}
	}
}

/* ("name" "value" ...) with at most MIME_MAX_PARAMS entries; non-ASCII
 * values are given in RFC 2231 form (name* "utf-8''%XX"), as Dovecot does. */
static void param_list(struct buf *b, GMimeParamList *list, bool add_charset)
{
	int n = list == NULL ? 0 : g_mime_param_list_length(list);
	int shown = 0;

	if (n == 0 && !add_charset) {
		puts_(b, "NIL");
		return;
	}
	put(b, "(", 1);
	if (add_charset) {
		puts_(b, "\"charset\" \"us-ascii\"");
		shown++;
	}
	for (int i = 0; i < n && shown < MIME_MAX_PARAMS; i++) {
		GMimeParam *prm = g_mime_param_list_get_parameter_at(list, i);
		const char *name = g_mime_param_get_name(prm);
		const char *value = g_mime_param_get_value(prm);
		char *v;

		if (name == NULL || value == NULL || *name == '\0' || !is_ascii(name))
			continue;
		v = xstrndup(value, MIME_MAX_PARAM_LEN);
		if (shown++ > 0)
			put(b, " ", 1);
		if (is_ascii(v)) {
			imap_cstr(b, name);
			put(b, " ", 1);
			imap_cstr(b, v);
		} else {
			struct buf t;

			buf_init(&t, OUT_MAX);
			puts_(&t, name);
			put(&t, "*", 1);
			mime_imap_string(b, t.data, t.len);
			buf_reset(&t);
			puts_(&t, "utf-8''");
			pct_encode(&t, v);
			put(b, " ", 1);
			mime_imap_string(b, t.data, t.len);
			buf_deinit(&t);
		}
		free(v);
	}
	if (shown == 0) {
		/* every parameter was skipped: "()" is not valid syntax */
		buf_truncate(b, b->len - 1);
		puts_(b, "NIL");
		return;
	}
	put(b, ")", 1);
}

static void lower_token(struct buf *b, const char *s)
{
	char *t = lower_dup(s, strlen(s));

	imap_cstr(b, t);
	free(t);
}

static void disposition(struct buf *b, const struct mime_message *m, const struct mime_part *p,
			const struct mime_limits *lim)
{
	char *v = field(m, p, MIME_F_CONTENT_DISPOSITION, lim->max_param_value);
	GMimeContentDisposition *cd;
	const char *d;

	if (v == NULL || *v == '\0') {
		free(v);
		puts_(b, "NIL");
		return;
	}
	cd = g_mime_content_disposition_parse(mime_parser_options(), v);
	d = g_mime_content_disposition_get_disposition(cd);
	put(b, "(", 1);
	lower_token(b, d != NULL && *d != '\0' ? d : "attachment");
	put(b, " ", 1);
	param_list(b, g_mime_content_disposition_get_parameters(cd), false);
	put(b, ")", 1);
	g_object_unref(cd);
	free(v);
}

static void language(struct buf *b, const struct mime_message *m, const struct mime_part *p,
		     const struct mime_limits *lim)
{
	char *v = field(m, p, MIME_F_CONTENT_LANGUAGE, lim->max_param_value);
	char *tok[MIME_MAX_PARAMS];
	size_t n = 0;

	if (v != NULL) {
		for (char *s = v, *save = NULL, *t; (t = strtok_r(s, ", \t", &save)) != NULL; s = NULL) {
			if (n < MIME_MAX_PARAMS)
				tok[n++] = t;
		}
	}
	if (n == 0)
		puts_(b, "NIL");
	else if (n == 1)
		imap_cstr(b, tok[0]);
	else {
		put(b, "(", 1);
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				put(b, " ", 1);
			imap_cstr(b, tok[i]);
		}
		put(b, ")", 1);
	}
	free(v);
}

static void simple_field(struct buf *b, const struct mime_message *m, const struct mime_part *p,
			 enum mime_field f, const struct mime_limits *lim)
{
	char *v = field(m, p, f, lim->max_param_value);

	imap_cstr(b, v);
	free(v);
}

static char *transfer_encoding(const struct mime_message *m, const struct mime_part *p)
{
	char *v = field(m, p, MIME_F_CONTENT_TRANSFER_ENCODING, 256);
	size_t n = 0;

	if (v != NULL) {
		while (v[n] != '\0' && (isalnum((unsigned char)v[n]) || v[n] == '-' || v[n] == '_')) {
			v[n] = (char)toupper((unsigned char)v[n]);
			n++;
		}
		v[n] = '\0';
	}
	if (n == 0) {
		free(v);
		return xstrdup("7BIT");
	}
	return v;
}

static bool shown_as_leaf_octets(const struct mime_part *p)
{
	return p->kind == MIME_KIND_LEAF &&
		(strcmp(p->type, "multipart") == 0 ||
		 (strcmp(p->type, "message") == 0 &&
		  (strcmp(p->subtype, "rfc822") == 0 || strcmp(p->subtype, "global") == 0)));
}

static GMimeContentType *part_content_type(const struct mime_message *m, const struct mime_part *p,
					   const struct mime_limits *lim)
{
	char *v = field(m, p, MIME_F_CONTENT_TYPE, lim->max_param_value);
	GMimeContentType *ct;

	if (v == NULL)
		return NULL;
	ct = g_mime_content_type_parse(mime_parser_options(), v);
	free(v);
	return ct;
}

static void body_structure(struct buf *b, const struct mime_message *m, size_t idx, bool ext,
			   const struct mime_limits *lim)
{
	const struct mime_part *p = &m->parts[idx];
	GMimeContentType *ct = part_content_type(m, p, lim);
	GMimeParamList *params = ct != NULL ? g_mime_content_type_get_parameters(ct) : NULL;
	char num[32];

	put(b, "(", 1);
	if (p->kind == MIME_KIND_MULTIPART) {
		for (size_t i = idx + 1; i < m->count && m->parts[i].depth > p->depth; i++) {
			if (m->parts[i].parent == idx)
				body_structure(b, m, i, ext, lim);
		}
		put(b, " ", 1);
		imap_cstr(b, p->subtype);
		if (ext) {
			put(b, " ", 1);
			param_list(b, params, false);
			put(b, " ", 1);
			disposition(b, m, p, lim);
			put(b, " ", 1);
			language(b, m, p, lim);
			put(b, " ", 1);
			simple_field(b, m, p, MIME_F_CONTENT_LOCATION, lim);
		}
	} else {
		bool octets = shown_as_leaf_octets(p);
		bool text = !octets && strcmp(p->type, "text") == 0;
		char *enc = transfer_encoding(m, p);

		imap_cstr(b, octets ? "application" : p->type);
		put(b, " ", 1);
		imap_cstr(b, octets ? "octet-stream" : p->subtype);
		put(b, " ", 1);
		param_list(b, params, text && ct == NULL);
		put(b, " ", 1);
		simple_field(b, m, p, MIME_F_CONTENT_ID, lim);
		put(b, " ", 1);
		simple_field(b, m, p, MIME_F_CONTENT_DESCRIPTION, lim);
		put(b, " ", 1);
		imap_cstr(b, enc);
		free(enc);
		snprintf(num, sizeof(num), " %zu", p->body_end - p->body_start);
		puts_(b, num);
		if (p->kind == MIME_KIND_MESSAGE) {
			put(b, " ", 1);
			envelope(b, m, &m->parts[idx + 1], lim);
			put(b, " ", 1);
			body_structure(b, m, idx + 1, ext, lim);
		}
		if (text || p->kind == MIME_KIND_MESSAGE) {
			snprintf(num, sizeof(num), " %zu", p->body_lines);
			puts_(b, num);
		}
		if (ext) {
			put(b, " ", 1);
			simple_field(b, m, p, MIME_F_CONTENT_MD5, lim);
			put(b, " ", 1);
			disposition(b, m, p, lim);
			put(b, " ", 1);
			language(b, m, p, lim);
			put(b, " ", 1);
			simple_field(b, m, p, MIME_F_CONTENT_LOCATION, lim);
		}
	}
	put(b, ")", 1);
	if (ct != NULL)
		g_object_unref(ct);
}

/* --- text --- */

static char *to_utf8(const char *data, size_t len, const char *charset)
{
	char *r = NULL;

	/* An empty body (a buf that never allocated) has no data pointer. */
	if (data == NULL || len == 0)
		return xstrdup("");

	if (charset != NULL && *charset != '\0' && g_ascii_strcasecmp(charset, "utf-8") != 0 &&
	    g_ascii_strcasecmp(charset, "us-ascii") != 0) {
		iconv_t cd = g_mime_iconv_open("UTF-8", g_mime_charset_iconv_name(charset));

		if (cd != (iconv_t)-1) {
			char *c = g_mime_iconv_strndup(cd, data, len);

			g_mime_iconv_close(cd);
			if (c != NULL) {
				char *v = g_utf8_make_valid(c, -1);

				r = xstrdup(v);
				g_free(v);
				g_free(c);
				return r;
			}
		}
	}
	{
		/* UTF-8 or unknown: keep what is valid.  Legacy 8-bit text
		 * without a charset is read as Latin-1 (RFC 2045 says ASCII;
		 * real mail says otherwise). */
		if (!g_utf8_validate(data, (gssize)len, NULL) && charset == NULL) {
			gsize out_len = 0;
			char *c = g_convert(data, (gssize)len, "UTF-8", "ISO-8859-1", NULL, &out_len, NULL);

			if (c != NULL) {
				r = xstrdup(c);
				g_free(c);
				return r;
			}
		}
		{
			char *v = g_utf8_make_valid(data, (gssize)len);

			r = xstrdup(v);
			g_free(v);
		}
	}
	return r;
}

/* Strips tags, script and style, and the common entities. */
static void html_to_text(struct buf *out, const char *s, size_t max)
{
	bool in_tag = false;
	const char *skip_until = NULL;

	for (; *s != '\0' && out->len < max; s++) {
		if (skip_until != NULL) {
			if (strncasecmp(s, skip_until, strlen(skip_until)) == 0) {
				s += strlen(skip_until) - 1;
				skip_until = NULL;
			}
			continue;
		}
		if (in_tag) {
			if (*s == '>')
				in_tag = false;
			continue;
		}
		if (*s == '<') {
			if (strncasecmp(s, "<script", 7) == 0)
				skip_until = "</script>";
			else if (strncasecmp(s, "<style", 6) == 0)
				skip_until = "</style>";
			else
				in_tag = true;
			put(out, " ", 1);
			continue;
		}
		if (*s == '&') {
			static const struct { const char *ent, *text; } ents[] = {
				{ "&amp;", "&" }, { "&lt;", "<" }, { "&gt;", ">" },
				{ "&quot;", "\"" }, { "&nbsp;", " " }, { "&#39;", "'" },
			};
			bool done = false;

			for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
				size_t n = strlen(ents[i].ent);

				if (strncasecmp(s, ents[i].ent, n) == 0) {
					puts_(out, ents[i].text);
					s += n - 1;
					done = true;
					break;
				}
			}
			if (done)
				continue;
		}
		put(out, s, 1);
	}
}

/* Decoded, UTF-8 text of a leaf part, at most about max bytes of it;
 * newly allocated, or NULL. */
static char *part_text(const struct mime_message *m, size_t idx, size_t max,
		       const struct mime_limits *lim)
{
	const struct mime_part *p = &m->parts[idx];
	char *enc = transfer_encoding(m, p);
	GMimeContentEncoding ce = g_mime_content_encoding_from_string(enc);
	GMimeContentType *ct = part_content_type(m, p, lim);
	const char *charset = ct != NULL ? g_mime_content_type_get_parameter(ct, "charset") : NULL;
	const char *in = m->data + p->body_start;
	size_t in_len = p->body_end - p->body_start;
	struct buf dec;
	char *utf8, *result;

	free(enc);
	buf_init(&dec, OUT_MAX);
	if (ce == GMIME_CONTENT_ENCODING_BASE64 || ce == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
	    ce == GMIME_CONTENT_ENCODING_UUENCODE) {
		GMimeEncoding st;
		char outbuf[8192];

		g_mime_encoding_init_decode(&st, ce);
		/* 2048 input bytes decode to at most ~2048 output bytes. */
		while (in_len > 0 && dec.len < max) {
			size_t n = in_len < 2048 ? in_len : 2048;
			size_t o = g_mime_encoding_step(&st, in, n, outbuf);

			put(&dec, outbuf, o);
			in += n;
			in_len -= n;
		}
	} else {
		put(&dec, in, in_len < max ? in_len : max);
	}
	if (dec.len > max)
		buf_truncate(&dec, max);
	utf8 = to_utf8(dec.data, dec.len, charset);
	buf_deinit(&dec);
	if (strcmp(p->subtype, "html") == 0) {
		struct buf t;

		buf_init(&t, OUT_MAX);
		html_to_text(&t, utf8, max);
		free(utf8);
		utf8 = buf_steal(&t);
		buf_deinit(&t);
	}
	result = utf8;
	if (ct != NULL)
		g_object_unref(ct);
	return result;
}

static bool text_leaf(const struct mime_part *p)
{
	return p->kind == MIME_KIND_LEAF && !shown_as_leaf_octets(p) &&
		(strcmp(p->type, "text") == 0 ||
		 (strcmp(p->type, "message") == 0 && strcmp(p->subtype, "delivery-status") == 0));
}

static char *attachment_name(const struct mime_message *m, const struct mime_part *p,
			     const struct mime_limits *lim)
{
	char *v = field(m, p, MIME_F_CONTENT_DISPOSITION, lim->max_param_value);
	char *r = NULL;

	if (v != NULL) {
		GMimeContentDisposition *cd = g_mime_content_disposition_parse(mime_parser_options(), v);
		const char *fn = g_mime_content_disposition_get_parameter(cd, "filename");

		if (fn != NULL && *fn != '\0')
			r = xstrndup(fn, MIME_MAX_PARAM_LEN);
		g_object_unref(cd);
		free(v);
	}
	if (r == NULL) {
		GMimeContentType *ct = part_content_type(m, p, lim);
		const char *n = ct != NULL ? g_mime_content_type_get_parameter(ct, "name") : NULL;

		if (n != NULL && *n != '\0')
			r = xstrndup(n, MIME_MAX_PARAM_LEN);
		if (ct != NULL)
			g_object_unref(ct);
	}
	return r;
}

static bool is_attachment(const struct mime_message *m, const struct mime_part *p,
			  const struct mime_limits *lim)
{
	char *v = field(m, p, MIME_F_CONTENT_DISPOSITION, 64);
	bool att = v != NULL && strncasecmp(v, "attachment", 10) == 0;

	free(v);
	return att;
}

static void preview_from(char **preview_r, const char *text)
{
	struct buf b;
	size_t chars = 0;
	bool space = false;

	buf_init(&b, OUT_MAX);
	for (const char *s = text; *s != '\0' && chars < MIME_PREVIEW_CHARS;) {
		gunichar c = g_utf8_get_char(s);
		const char *next = g_utf8_next_char(s);

		if (g_unichar_isspace(c) || c < 0x20) {
			space = b.len > 0;
		} else {
			if (space) {
				put(&b, " ", 1);
				chars++;
				space = false;
			}
			if (chars < MIME_PREVIEW_CHARS) {
				put(&b, s, (size_t)(next - s));
				chars++;
			}
		}
		s = next;
	}
	*preview_r = b.len > 0 ? buf_steal(&b) : NULL;
	buf_deinit(&b);
}

/* --- headers cache --- */

static const enum mime_field cached_fields[] = {
	MIME_F_DATE, MIME_F_SUBJECT, MIME_F_FROM, MIME_F_SENDER, MIME_F_REPLY_TO, MIME_F_TO,
	MIME_F_CC, MIME_F_BCC, MIME_F_IN_REPLY_TO, MIME_F_MESSAGE_ID, MIME_F_REFERENCES,
	MIME_F_CONTENT_TYPE, MIME_F_X_PRIORITY, MIME_F_IMPORTANCE, MIME_F_PRIORITY, MIME_F_LIST_ID,
};
#define CACHED_FIELDS (sizeof(cached_fields) / sizeof(cached_fields[0]))

static char *cached_headers(const struct mime_message *m)
{
	const struct mime_part *p = &m->parts[0];
	const struct mime_slice *order[CACHED_FIELDS];
	size_t n = 0, total = 0;
	struct buf b;

	for (size_t i = 0; i < CACHED_FIELDS; i++) {
		enum mime_field f = cached_fields[i];

		if (p->field_count[f] > 1)
			return NULL;     /* HEADER.FIELDS wants every occurrence */
		if (p->field_count[f] == 1) {
			size_t k = n++;

			/* keep message order: insertion sort by offset */
			while (k > 0 && order[k - 1]->start > p->fields[f].start) {
				order[k] = order[k - 1];
				k--;
			}
			order[k] = &p->fields[f];
			total += p->fields[f].off + p->fields[f].len - p->fields[f].start + 2;
		}
	}
	if (total > MIME_MAX_CACHED_HEADERS)
		return NULL;
	buf_init(&b, OUT_MAX);
	for (size_t i = 0; i < n; i++) {
		put(&b, m->data + order[i]->start, order[i]->off + order[i]->len - order[i]->start);
		put(&b, "\r\n", 2);
	}
	{
		char *r = buf_steal(&b);

		buf_deinit(&b);
		return r;
	}
}

/* --- message ids --- */

static char *msgid_list(const char *value, int max)
{
	GMimeReferences *refs;
	struct buf b;
	int n;

	if (value == NULL)
		return NULL;
	refs = g_mime_references_parse(mime_parser_options(), value);
	n = refs == NULL ? 0 : g_mime_references_length(refs);
	buf_init(&b, OUT_MAX);
	for (int i = 0; i < n && i < max; i++) {
		const char *id = g_mime_references_get_message_id(refs, i);

		if (id == NULL || *id == '\0')
			continue;
		if (b.len > 0)
			put(&b, " ", 1);
		put(&b, "<", 1);
		puts_(&b, id);
		put(&b, ">", 1);
	}
	if (refs != NULL)
		g_mime_references_free(refs);
	if (b.len == 0) {
		buf_deinit(&b);
		return NULL;
	}
	{
		char *r = buf_steal(&b);

		buf_deinit(&b);
		return r;
	}
}

static char *decode_text(const char *v)
{
	char *d, *r;

	if (v == NULL)
		return NULL;
	d = g_mime_utils_header_decode_text(mime_parser_options(), v);
	if (d == NULL)
		return xstrdup(v);
	{
		char *valid = g_utf8_make_valid(d, -1);

		r = xstrdup(valid);
		g_free(valid);
	}
	g_free(d);
	return r;
}

/* Appends s (made valid UTF-8: parameter values decoded by GMime may hold
 * any bytes; found by fuzz_mime_parse) and cuts at max on a character
 * boundary. */
static void add_search_header(struct buf *b, const char *s, size_t max)
{
	char *v;
	size_t n;

	if (s == NULL || b->len >= max)
		return;
	if (b->len > 0)
		put(b, "\n", 1);
	v = g_utf8_make_valid(s, -1);
	n = strlen(v);
	if (n > max - b->len) {
		n = max - b->len;
		while (n > 0 && ((unsigned char)v[n] & 0xc0) == 0x80)
			n--;
	}
	put(b, v, n);
	g_free(v);
}

void mime_summarize(const char *data, size_t len, const struct mime_limits *limits,
		    bool want_text, struct mime_summary *sum)
{
	struct mime_limits def;
	struct mime_message m;
	struct buf b;
	InternetAddressList *from, *to, *cc, *bcc;
	char *v;

	if (limits == NULL) {
		mime_limits_default(&def);
		limits = &def;
	}
	mime_init();
	memset(sum, 0, sizeof(*sum));
	buf_init(&sum->text, limits->max_text + 8);
	buf_init(&sum->header_text, limits->max_text + 8);
	mime_scan(data, len, limits, &m);
	sum->cut = m.cut_depth || m.cut_parts;
	sum->header_size = m.parts[0].body_start;

	buf_init(&b, OUT_MAX);
	envelope(&b, &m, &m.parts[0], limits);
	sum->envelope = buf_steal(&b);
	body_structure(&b, &m, 0, true, limits);
	sum->bodystructure = buf_steal(&b);
	body_structure(&b, &m, 0, false, limits);
	sum->body = buf_steal(&b);
	buf_deinit(&b);
	sum->headers = cached_headers(&m);

	v = field(&m, &m.parts[0], MIME_F_MESSAGE_ID, limits->max_field_value);
	sum->message_id = msgid_list(v, 1);
	free(v);
	v = field(&m, &m.parts[0], MIME_F_IN_REPLY_TO, limits->max_field_value);
	sum->in_reply_to = msgid_list(v, 1);
	free(v);
	v = field(&m, &m.parts[0], MIME_F_REFERENCES, limits->max_field_value);
	sum->references = msgid_list(v, 100);
	free(v);
	v = field(&m, &m.parts[0], MIME_F_SUBJECT, limits->max_field_value);
	sum->subject = decode_text(v);
	free(v);
	sum->base_subject = sum->subject != NULL ? mime_base_subject(sum->subject) : NULL;
	v = field(&m, &m.parts[0], MIME_F_DATE, 1024);
	if (v != NULL) {
		GDateTime *dt = g_mime_utils_header_decode_date(v);

		if (dt != NULL) {
			sum->sent_date = g_date_time_to_unix(dt);
			sum->sent_tz = (int)(g_date_time_get_utc_offset(dt) / G_TIME_SPAN_MINUTE);
			g_date_time_unref(dt);
		}
		free(v);
	}
	{
		enum mime_field f[4] = { MIME_F_FROM, MIME_F_TO, MIME_F_CC, MIME_F_BCC };
		InternetAddressList **l[4] = { &from, &to, &cc, &bcc };

		for (int i = 0; i < 4; i++) {
			v = field(&m, &m.parts[0], f[i], limits->max_field_value);
			*l[i] = parse_addresses(v);
			free(v);
		}
	}
	sum->from = list_text(from);
	sum->to = list_text(to);
	sum->cc = list_text(cc);
	sum->bcc = list_text(bcc);
	sum->sort_from = sort_key(from);
	sum->sort_to = sort_key(to);
	sum->sort_cc = sort_key(cc);
	sum->display_from = display_key(from);
	sum->display_to = display_key(to);
	if (from != NULL)
		g_object_unref(from);
	if (to != NULL)
		g_object_unref(to);
	if (cc != NULL)
		g_object_unref(cc);
	if (bcc != NULL)
		g_object_unref(bcc);

	/* Attachments, text and preview. */
	for (size_t i = 0; i < m.count; i++) {
		const struct mime_part *p = &m.parts[i];
		char *name;

		if (p->kind != MIME_KIND_LEAF)
			continue;
		name = attachment_name(&m, p, limits);
		if (name != NULL || is_attachment(&m, p, limits))
			sum->has_attachment = true;
		if (want_text && name != NULL)
			add_search_header(&sum->text, name, limits->max_text);
		free(name);
		if (!text_leaf(p))
			continue;
		if (sum->preview == NULL && strcmp(p->type, "text") == 0 &&
		    (strcmp(p->subtype, "plain") == 0 || strcmp(p->subtype, "html") == 0)) {
			char *t = part_text(&m, i, 16384, limits);

			preview_from(&sum->preview, t);
			free(t);
		}
		if (want_text && sum->text.len < limits->max_text) {
			char *t = part_text(&m, i, limits->max_text - sum->text.len, limits);

			add_search_header(&sum->text, t, limits->max_text);
			free(t);
		}
	}
	if (want_text) {
		add_search_header(&sum->header_text, sum->subject, limits->max_text);
		add_search_header(&sum->header_text, sum->from, limits->max_text);
		add_search_header(&sum->header_text, sum->to, limits->max_text);
		add_search_header(&sum->header_text, sum->cc, limits->max_text);
		add_search_header(&sum->header_text, sum->bcc, limits->max_text);
	}
	mime_message_deinit(&m);
}

void mime_summary_deinit(struct mime_summary *s)
{
	char **strs[] = {
		&s->envelope, &s->bodystructure, &s->body, &s->headers, &s->message_id,
		&s->in_reply_to, &s->references, &s->subject, &s->base_subject, &s->from, &s->to,
		&s->cc, &s->bcc, &s->sort_from, &s->sort_to, &s->sort_cc, &s->display_from,
		&s->display_to, &s->preview,
	};

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
	buf_deinit(&s->text);
	buf_deinit(&s->header_text);
}

/* --- RFC 5256 base subject --- */

static bool strip_trailer(char *s)
{
	size_t n = strlen(s);
	bool changed = false;

	for (;;) {
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
			s[--n] = '\0';
			changed = true;
		}
		if (n >= 5 && strncasecmp(s + n - 5, "(fwd)", 5) == 0) {
			n -= 5;
			s[n] = '\0';
			changed = true;
			continue;
		}
		return changed;
	}
}

/* Length of a subj-blob "[...]" WSP* at s, or 0. */
static size_t blob_len(const char *s)
{
	size_t i = 1;

	if (s[0] != '[')
		return 0;
	while (s[i] != '\0' && s[i] != '[' && s[i] != ']')
		i++;
	if (s[i] != ']')
		return 0;
	i++;
	while (s[i] == ' ' || s[i] == '\t')
		i++;
	return i;
}

/* Length of a subj-refwd ("re" / "fw" / "fwd") WSP* [blob] ":" at s, or 0. */
static size_t refwd_len(const char *s)
{
	size_t i;

	if (strncasecmp(s, "re", 2) == 0)
		i = 2;
	else if (strncasecmp(s, "fwd", 3) == 0)
		i = 3;
	else if (strncasecmp(s, "fw", 2) == 0)
		i = 2;
	else
		return 0;
	while (s[i] == ' ' || s[i] == '\t')
		i++;
	i += blob_len(s + i);
	if (s[i] != ':')
		return 0;
	return i + 1;
}

/* Removes subj-leader repeatedly, and a leading blob when it does not leave
 * the subject empty (RFC 5256 2.1 steps 3-5). */
static bool strip_leader(char *s)
{
	bool changed = false, again = true;

	while (again) {
		size_t i = 0, r;

		again = false;
		while (s[i] == ' ' || s[i] == '\t')
			i++;
		{
			size_t j = i, bl;

			while ((bl = blob_len(s + j)) > 0)
				j += bl;
			r = refwd_len(s + j);
			if (r > 0)
				i = j + r;
		}
		if (i > 0) {
			memmove(s, s + i, strlen(s + i) + 1);
			changed = again = true;
			continue;
		}
		r = blob_len(s);
		if (r > 0 && s[r] != '\0') {
			memmove(s, s + r, strlen(s + r) + 1);
			changed = again = true;
		}
	}
	return changed;
}

char *mime_base_subject(const char *subject)
{
	char *s = xmalloc(strlen(subject) + 1);
	size_t o = 0;
	bool space = false;

	/* (1) white space runs become one space */
	for (const char *p = subject; *p != '\0'; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			space = true;
			continue;
		}
		if (space && o > 0)
			s[o++] = ' ';
		space = false;
		s[o++] = *p;
	}
	s[o] = '\0';
	for (;;) {
		size_t n;

		strip_trailer(s);                         /* (2) */
		while (strip_leader(s))                   /* (3)-(5) */
			;
		n = strlen(s);
		/* (6) "[fwd: ... ]" */
		if (n >= 6 && strncasecmp(s, "[fwd:", 5) == 0 && s[n - 1] == ']') {
			s[n - 1] = '\0';
			memmove(s, s + 5, n - 5);
			continue;
		}
		break;
	}
	return s;
}
