/*
 * FETCH body sections (RFC 3501 6.4.5, RFC 9051 6.4.5) and BINARY (RFC
 * 3516), cut out of a message held in memory (the caller maps the file).
 * The structure comes from mime_scan (src/mime): iterative, bounded depth
 * and part count, so a hostile message costs a bounded stack and time
 * (HOSTILE-INPUT rows 12 and 15), and every message has sections.
 *
 * Pure: no I/O, no logging; the unit tests call these directly.
 */
#include "imap/imap.h"
#include "imap/imap_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "mime/mime.h"

/* The part a section names, or -1 when it does not exist.  For HEADER,
 * TEXT and HEADER.FIELDS after a part number, the part must be a
 * message/rfc822 and its embedded message is meant. */
static long find_part(const struct mime_message *msg, const struct imap_section *sec)
{
	long idx;

	if (sec->nparts == 0)
		return 0;
	idx = mime_section_find(msg, sec->parts, sec->nparts);
	if (idx < 0)
		return -1;
	switch (sec->kind) {
	case IMAP_SECTION_HEADER:
	case IMAP_SECTION_HEADER_FIELDS:
	case IMAP_SECTION_HEADER_FIELDS_NOT:
	case IMAP_SECTION_TEXT:
		if (msg->parts[idx].kind != MIME_KIND_MESSAGE || (size_t)idx + 1 >= msg->count)
			return -1;
		return idx + 1;
	default:
		return idx;
	}
}

static bool field_listed(const struct imap_section *sec, const char *name, size_t len)
{
	for (size_t i = 0; i < sec->nfields; i++) {
		if (strlen(sec->fields[i]) == len && strncasecmp(sec->fields[i], name, len) == 0)
			return true;
	}
	return false;
}

/* HEADER.FIELDS[.NOT]: the listed (or unlisted) fields of the header block
 * [start, end), each with its continuation lines, then the empty line. */
static void filter_fields(const char *data, size_t start, size_t end, const struct imap_section *sec,
			  struct buf *out)
{
	bool not = sec->kind == IMAP_SECTION_HEADER_FIELDS_NOT;
	size_t pos = start;

	while (pos < end) {
		size_t fstart = pos, fend, nlen = 0;
		const char *colon;

		/* the empty line ends the block */
		if (data[pos] == '\n' || (data[pos] == '\r' && pos + 1 < end && data[pos + 1] == '\n'))
			break;
		/* the field: this line and every continuation line */
		fend = pos;
		do {
			const char *nl = memchr(data + fend, '\n', end - fend);

			fend = nl != NULL ? (size_t)(nl - data) + 1 : end;
		} while (fend < end && (data[fend] == ' ' || data[fend] == '\t'));
		colon = memchr(data + fstart, ':', fend - fstart);
		if (colon != NULL) {
			nlen = (size_t)(colon - (data + fstart));
			while (nlen > 0 && (data[fstart + nlen - 1] == ' ' || data[fstart + nlen - 1] == '\t'))
				nlen--;
		}
		if (colon != NULL && field_listed(sec, data + fstart, nlen) != not) {
			if (buf_append(out, data + fstart, fend - fstart) < 0)
				panic("imap body: buffer");
			/* a last line without its line end still ends in CRLF */
			if (data[fend - 1] != '\n' && buf_append_str(out, "\r\n") < 0)
				panic("imap body: buffer");
		}
		pos = fend;
	}
	if (buf_append_str(out, "\r\n") < 0)
		panic("imap body: buffer");
}

/* ---- decoding for BINARY ---- */

enum cte { CTE_IDENTITY, CTE_BASE64, CTE_QP, CTE_UNKNOWN };

static enum cte part_cte(const struct mime_message *msg, const struct mime_part *part)
{
	char *v = mime_field_value(msg, part, MIME_F_CONTENT_TRANSFER_ENCODING, 64);
	enum cte c = CTE_UNKNOWN;
	char *p;

	if (v == NULL || v[0] == '\0') {
		free(v);
		return CTE_IDENTITY;
	}
	for (p = v; *p != '\0'; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	if (strcmp(v, "7bit") == 0 || strcmp(v, "8bit") == 0 || strcmp(v, "binary") == 0)
		c = CTE_IDENTITY;
	else if (strcmp(v, "base64") == 0)
		c = CTE_BASE64;
	else if (strcmp(v, "quoted-printable") == 0)
		c = CTE_QP;
	free(v);
	return c;
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* MIME base64 (RFC 2045 6.8): line breaks and junk between symbols are
 * skipped, "=" ends the data.  out may be NULL to count only. */
static size_t decode_base64(const char *in, size_t len, struct buf *out)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int v;

		if (in[i] == '=')
			break;
		v = b64val((unsigned char)in[i]);
		if (v < 0)
			continue;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (out != NULL && buf_append_char(out, (char)((acc >> bits) & 0xff)) < 0)
				panic("imap body: buffer");
			n++;
			acc &= (1u << bits) - 1;
		}
	}
	return n;
}

/* Quoted-printable (RFC 2045 6.7), leniently: a bad escape stays as it is. */
static size_t decode_qp(const char *in, size_t len, struct buf *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c == '=') {
			size_t j = i + 1;

			/* soft line break: "=" then white space then CRLF */
			while (j < len && (in[j] == ' ' || in[j] == '\t'))
				j++;
			if (j < len && (in[j] == '\r' || in[j] == '\n')) {
				if (in[j] == '\r' && j + 1 < len && in[j + 1] == '\n')
					j++;
				i = j;
				continue;
			}
			if (j == len) {
				i = j;
				continue;
			}
			if (i + 2 < len && str_hex_digit(in[i + 1]) >= 0 && str_hex_digit(in[i + 2]) >= 0) {
				c = (char)(str_hex_digit(in[i + 1]) * 16 + str_hex_digit(in[i + 2]));
				i += 2;
			}
		}
		if (out != NULL && buf_append_char(out, c) < 0)
			panic("imap body: buffer");
		n++;
	}
	return n;
}

/* ---- sections ---- */

struct cut {
	size_t start, len;        /* a slice of the message ... */
	struct buf made;          /* ... or bytes made here (made.data != NULL) */
	bool nil;
};

static void cut_section(const char *data, size_t len, const struct mime_message *msg,
			const struct imap_section *sec, struct cut *c, bool *unknown_cte_r)
{
	long idx = find_part(msg, sec);
	const struct mime_part *p;
	bool binary = sec->type == IMAP_BINARY || sec->type == IMAP_BINARY_PEEK ||
		      sec->type == IMAP_BINARY_SIZE;

	memset(c, 0, sizeof(*c));
	if (idx < 0) {
		c->nil = true;
		return;
	}
	p = &msg->parts[idx];
	switch (sec->kind) {
	case IMAP_SECTION_ALL:
		if (sec->nparts == 0) {
			c->start = 0;
			c->len = len;
		} else {
			c->start = p->body_start;
			c->len = p->body_end - p->body_start;
		}
		if (binary && sec->nparts > 0 && p->kind == MIME_KIND_LEAF) {
			enum cte cte = part_cte(msg, p);

			if (cte == CTE_UNKNOWN) {
				*unknown_cte_r = true;
				c->nil = true;
				return;
			}
			if (cte != CTE_IDENTITY) {
				buf_init(&c->made, SIZE_MAX / 4);
				if (cte == CTE_BASE64)
					decode_base64(data + c->start, c->len, &c->made);
				else
					decode_qp(data + c->start, c->len, &c->made);
				/* an empty result still needs data */
				if (c->made.data == NULL && buf_append(&c->made, "", 0) < 0)
					panic("imap body: buffer");
			}
		}
		break;
	case IMAP_SECTION_HEADER:
	case IMAP_SECTION_MIME:
		c->start = p->hdr_start;
		c->len = p->body_start - p->hdr_start;
		if ((p->flags & MIME_PF_NO_HEADER_END) != 0) {
			/* the header lacks its empty line: add one */
			buf_init(&c->made, SIZE_MAX / 4);
			if (buf_append(&c->made, data + c->start, c->len) < 0 ||
			    (c->len > 0 && data[c->start + c->len - 1] != '\n' &&
			     buf_append_str(&c->made, "\r\n") < 0) ||
			    buf_append_str(&c->made, "\r\n") < 0)
				panic("imap body: buffer");
		}
		break;
	case IMAP_SECTION_HEADER_FIELDS:
	case IMAP_SECTION_HEADER_FIELDS_NOT:
		buf_init(&c->made, SIZE_MAX / 4);
		filter_fields(data, p->hdr_start, p->body_start, sec, &c->made);
		break;
	case IMAP_SECTION_TEXT:
		c->start = p->body_start;
		c->len = p->body_end - p->body_start;
		break;
	}
}

static void add_literal(struct evbuffer *out, const char *bytes, size_t len)
{
	bool nul = memchr(bytes, '\0', len) != NULL;

	/* RFC 3516: NUL needs literal8 */
	evbuffer_add_printf(out, "%s{%zu}\r\n", nul ? "~" : "", len);
	evbuffer_add(out, bytes, len);
}

int imap_body_section(const char *data, size_t len, const struct imap_section *sec,
		      struct evbuffer *out, bool *unknown_cte_r)
{
	struct mime_limits limits;
	struct mime_message msg;
	struct cut c;
	const char *bytes;
	size_t blen;

	mime_limits_default(&limits);
	mime_scan(data, len, &limits, &msg);
	cut_section(data, len, &msg, sec, &c, unknown_cte_r);
	mime_message_deinit(&msg);
	evbuffer_add_printf(out, "%s ", sec->echo);
	if (c.nil) {
		buf_deinit(&c.made);
		evbuffer_add(out, "NIL", 3);
		return 0;
	}
	if (c.made.data != NULL) {
		bytes = c.made.data;
		blen = c.made.len;
	} else {
		bytes = data + c.start;
		blen = c.len;
	}
	if (sec->partial) {
		/* RFC 3501: an origin past the end gives an empty string */
		if (sec->offset >= blen) {
			blen = 0;
		} else {
			bytes += sec->offset;
			blen -= (size_t)sec->offset;
			if (blen > sec->count)
				blen = (size_t)sec->count;
		}
	}
	add_literal(out, bytes, blen);
	buf_deinit(&c.made);
	return 0;
}

int imap_body_binary_size(const char *data, size_t len, const struct imap_section *sec,
			  uint64_t *size_r, bool *unknown_cte_r)
{
	struct mime_limits limits;
	struct mime_message msg;
	struct cut c;

	mime_limits_default(&limits);
	mime_scan(data, len, &limits, &msg);
	cut_section(data, len, &msg, sec, &c, unknown_cte_r);
	mime_message_deinit(&msg);
	if (c.nil) {
		buf_deinit(&c.made);
		return -1;
	}
	*size_r = c.made.data != NULL ? c.made.len : c.len;
	buf_deinit(&c.made);
	return 0;
}
