/*
 * The MIME structure scanner: one forward pass over the lines of a
 * message, with an explicit stack of open containers, so that nesting
 * never turns into recursion (Dovecot CVE-2020-12100) and the work is
 * O(lines x open boundaries), the latter bounded by MIME_MAX_DEPTH.
 *
 * Boundary rules (RFC 2046 5.1.1): a delimiter line is "--" boundary and
 * optional white space; a close delimiter is "--" boundary "--", after
 * which we accept anything (as GMime does).  The CRLF before a
 * delimiter belongs to the delimiter, not to the part.  Boundaries are
 * tried innermost first, so an outer boundary that is a prefix of an inner
 * one does not end the inner part, and an outer delimiter ends every part
 * nested inside it (a truncated inner multipart).
 */
#include "mime/mime.h"
#include "mime/mime_private.h"

#include <ctype.h>
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"

static const char *const field_names[MIME_F_COUNT] = {
	[MIME_F_CONTENT_TYPE] = "Content-Type",
	[MIME_F_CONTENT_TRANSFER_ENCODING] = "Content-Transfer-Encoding",
	[MIME_F_CONTENT_DISPOSITION] = "Content-Disposition",
	[MIME_F_CONTENT_ID] = "Content-ID",
	[MIME_F_CONTENT_DESCRIPTION] = "Content-Description",
	[MIME_F_CONTENT_LANGUAGE] = "Content-Language",
	[MIME_F_CONTENT_LOCATION] = "Content-Location",
	[MIME_F_CONTENT_MD5] = "Content-MD5",
	[MIME_F_DATE] = "Date",
	[MIME_F_SUBJECT] = "Subject",
	[MIME_F_FROM] = "From",
	[MIME_F_SENDER] = "Sender",
	[MIME_F_REPLY_TO] = "Reply-To",
	[MIME_F_TO] = "To",
	[MIME_F_CC] = "Cc",
	[MIME_F_BCC] = "Bcc",
	[MIME_F_IN_REPLY_TO] = "In-Reply-To",
	[MIME_F_MESSAGE_ID] = "Message-ID",
	[MIME_F_REFERENCES] = "References",
	[MIME_F_X_PRIORITY] = "X-Priority",
	[MIME_F_IMPORTANCE] = "Importance",
	[MIME_F_PRIORITY] = "Priority",
	[MIME_F_LIST_ID] = "List-Id",
};

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;
static GMimeParserOptions *parser_options;

static void gmime_init_once(void)
{
	g_mime_init();
	parser_options = g_mime_parser_options_new();
	g_mime_parser_options_set_rfc2047_compliance_mode(parser_options, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_address_compliance_mode(parser_options, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_parameter_compliance_mode(parser_options, GMIME_RFC_COMPLIANCE_LOOSE);
}

void mime_init(void)
{
	pthread_once(&gmime_once, gmime_init_once);
}

GMimeParserOptions *mime_parser_options(void)
{
	mime_init();
	return parser_options;
}

const char *mime_field_name(enum mime_field f)
{
	return (unsigned)f < MIME_F_COUNT ? field_names[f] : NULL;
}

static struct mime_limits process_limits = {
	.max_depth = MIME_MAX_DEPTH,
	.max_parts = MIME_MAX_PARTS,
	.max_header_scan = MIME_MAX_HEADER_SCAN,
	.max_field_value = MIME_MAX_FIELD_VALUE,
	.max_param_value = MIME_MAX_PARAM_VALUE,
	.max_addresses = MIME_MAX_ADDRESSES,
	.max_text = MIME_MAX_TEXT,
};

void mime_limits_default(struct mime_limits *l)
{
	*l = process_limits;
}

void mime_limits_set_default(const struct mime_limits *l)
{
	if (l->max_depth != 0)
		process_limits.max_depth = l->max_depth < MIME_MAX_DEPTH_CEILING ? l->max_depth
										  : MIME_MAX_DEPTH_CEILING;
	if (l->max_parts != 0)
		process_limits.max_parts = l->max_parts;
	if (l->max_header_scan != 0)
		process_limits.max_header_scan = l->max_header_scan;
	if (l->max_field_value != 0)
		process_limits.max_field_value = l->max_field_value;
	if (l->max_param_value != 0)
		process_limits.max_param_value = l->max_param_value;
	if (l->max_addresses != 0)
		process_limits.max_addresses = l->max_addresses;
	if (l->max_text != 0)
		process_limits.max_text = l->max_text;
}

enum scan_state { ST_HEADER, ST_BODY };

struct frame {
	uint32_t part;            /* the container */
	uint32_t child;           /* its open child, UINT32_MAX when none */
	bool closed;              /* multipart after its close delimiter */
};

struct scanner {
	const char *data;
	size_t len;
	const struct mime_limits *lim;
	struct mime_message *msg;
	size_t cap;
	struct frame stack[MIME_MAX_DEPTH_CEILING + 2];
	unsigned depth;           /* frames in stack */
	unsigned multiparts;      /* open, not closed multipart frames */
	uint32_t cur;             /* the part whose header or body we are in */
	enum scan_state state;
	size_t line_no;           /* lines before the current one */
	size_t *start_line;       /* per part: line number of body_start */
	size_t start_line_cap;
	/* field being collected in the current header */
	int field;                /* enum mime_field, -1 for one we ignore, -2 none */
	size_t field_start;
};

static uint32_t new_part(struct scanner *s, uint32_t parent, size_t hdr_start)
{
	struct mime_message *msg = s->msg;
	struct mime_part *p;

	if (msg->count == s->cap) {
		s->cap = s->cap == 0 ? 8 : s->cap * 2;
		msg->parts = xreallocarray(msg->parts, s->cap, sizeof(*msg->parts));
		s->start_line = xreallocarray(s->start_line, s->cap, sizeof(*s->start_line));
	}
	p = &msg->parts[msg->count];
	memset(p, 0, sizeof(*p));
	p->parent = parent;
	p->hdr_start = hdr_start;
	p->body_start = hdr_start;
	p->body_end = hdr_start;
	if (parent != UINT32_MAX) {
		struct mime_part *pp = &msg->parts[parent];

		pp->children++;
		p->depth = (uint16_t)(pp->depth + 1);
		if (pp->kind == MIME_KIND_MESSAGE)
			p->flags |= MIME_PF_MESSAGE_ROOT;
	} else {
		p->flags |= MIME_PF_MESSAGE_ROOT;
	}
	s->start_line[msg->count] = 0;
	return (uint32_t)msg->count++;
}

/* Offset where a part ends when the line at line_start ends it: the CRLF
 * (or LF) before the line belongs to the delimiter. */
static size_t end_before(const struct scanner *s, size_t line_start, size_t floor)
{
	size_t end = line_start;

	if (end >= 1 && s->data[end - 1] == '\n') {
		end--;
		if (end >= 1 && s->data[end - 1] == '\r')
			end--;
	}
	return end < floor ? floor : end;
}

static int field_lookup(const char *name, size_t len)
{
	for (int i = 0; i < MIME_F_COUNT; i++) {
		if (strlen(field_names[i]) == len && strncasecmp(field_names[i], name, len) == 0)
			return i;
	}
	return -1;
}

/* Records the field that ends at end (exclusive of its line end). */
static void field_finish(struct scanner *s, size_t end)
{
	struct mime_part *p = &s->msg->parts[s->cur];
	const char *colon;
	size_t off;
	int f = s->field;

	s->field = -2;
	if (f < 0)
		return;
	colon = memchr(s->data + s->field_start, ':', end - s->field_start);
	if (colon == NULL)
		return;
	off = (size_t)(colon - s->data) + 1;
	if (p->field_count[f] == 0) {
		p->fields[f].start = s->field_start;
		p->fields[f].off = off;
		p->fields[f].len = end - off;
	}
	if (p->field_count[f] < 255)
		p->field_count[f]++;
}

/* A header line [ls, le) (line end excluded) of the current part. */
static void header_line(struct scanner *s, size_t ls, size_t le)
{
	struct mime_part *p = &s->msg->parts[s->cur];
	const char *line = s->data + ls;
	size_t len = le - ls, name_len = 0;

	if (len > 0 && (line[0] == ' ' || line[0] == '\t'))
		return;                       /* continuation: the field goes on */
	if (s->field != -2)
		field_finish(s, end_before(s, ls, s->field_start));
	if (ls - p->hdr_start >= s->lim->max_header_scan)
		return;                       /* past the scan limit: size only */
	while (name_len < len && line[name_len] != ':' && (unsigned char)line[name_len] > ' ' &&
	       line[name_len] != 0x7f)
		name_len++;
	/* "Subject :" (RFC 822 obsolete syntax) is accepted. */
	{
		size_t c = name_len;

		while (c < len && (line[c] == ' ' || line[c] == '\t'))
			c++;
		if (name_len == 0 || c >= len || line[c] != ':')
			return;                   /* not a field: ignored */
	}
	s->field = field_lookup(line, name_len);
	s->field_start = ls;
}

static void str_lower_copy(char *dst, size_t dstsize, const char *src)
{
	size_t i = 0;

	for (; src != NULL && src[i] != '\0' && i + 1 < dstsize; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

static bool token_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c >= 0x7f || strchr("()<>@,;:\\\"/[]?=", c) != NULL)
			return false;
	}
	return true;
}

/* The header of the current part is complete: decide what the part is.
 * With can_open false (the part is being closed: its header was cut by a
 * delimiter or the end of data) a container stays a leaf. */
static void header_done(struct scanner *s, size_t body_start, bool can_open)
{
	struct mime_message *msg = s->msg;
	struct mime_part *p = &msg->parts[s->cur];
	struct mime_part *parent = p->parent == UINT32_MAX ? NULL : &msg->parts[p->parent];
	bool digest = parent != NULL && parent->kind == MIME_KIND_MULTIPART &&
		strcmp(parent->subtype, "digest") == 0;

	if (s->field != -2)
		field_finish(s, end_before(s, body_start, s->field_start));
	p->body_start = body_start;
	p->body_end = body_start;
	s->start_line[s->cur] = s->line_no + 1;
	strcpy(p->type, digest ? "message" : "text");
	strcpy(p->subtype, digest ? "rfc822" : "plain");
	if (p->field_count[MIME_F_CONTENT_TYPE] > 0) {
		char *v = mime_field_value(msg, p, MIME_F_CONTENT_TYPE, s->lim->max_param_value);
		GMimeContentType *ct = g_mime_content_type_parse(mime_parser_options(), v);
		const char *type = g_mime_content_type_get_media_type(ct);
		const char *subtype = g_mime_content_type_get_media_subtype(ct);
		const char *boundary = g_mime_content_type_get_parameter(ct, "boundary");

		/* GMime answers application/octet-stream for garbage; an
		 * unparsable value keeps the RFC 2045 default instead. */
		if (type != NULL && subtype != NULL && token_ok(type) && token_ok(subtype) &&
		    strchr(v, '/') != NULL) {
			str_lower_copy(p->type, sizeof(p->type), type);
			str_lower_copy(p->subtype, sizeof(p->subtype), subtype);
		}
		if (boundary != NULL && boundary[0] != '\0' && strlen(boundary) <= MIME_MAX_BOUNDARY)
			memcpy(p->boundary, boundary, strlen(boundary) + 1);
		g_object_unref(ct);
		free(v);
	}
	s->state = ST_BODY;
	if (!can_open)
		return;
	if (strcmp(p->type, "multipart") == 0) {
		if (p->boundary[0] == '\0') {
			p->flags |= MIME_PF_NO_BOUNDARY;
			return;
		}
		if (s->depth >= s->lim->max_depth || s->depth >= MIME_MAX_DEPTH_CEILING) {
			p->flags |= MIME_PF_CUT_DEPTH;
			msg->cut_depth = true;
			return;
		}
		p->kind = MIME_KIND_MULTIPART;
		s->stack[s->depth++] = (struct frame){ s->cur, UINT32_MAX, false };
		s->multiparts++;
		return;
	}
	if (strcmp(p->type, "message") == 0 &&
	    (strcmp(p->subtype, "rfc822") == 0 || strcmp(p->subtype, "global") == 0)) {
		uint32_t parent_idx = s->cur, child;

		if (s->depth >= s->lim->max_depth || s->depth >= MIME_MAX_DEPTH_CEILING) {
			p->flags |= MIME_PF_CUT_DEPTH;
			msg->cut_depth = true;
			return;
		}
		if (msg->count >= s->lim->max_parts) {
			p->flags |= MIME_PF_CUT_PARTS;
			msg->cut_parts = true;
			return;
		}
		p->kind = MIME_KIND_MESSAGE;
		child = new_part(s, parent_idx, body_start);
		s->stack[s->depth++] = (struct frame){ parent_idx, child, false };
		s->cur = child;
		s->state = ST_HEADER;
		s->field = -2;
	}
}

/* Ends part i at end; end_line is the number of lines before end's line.
 * Returns where it really ended (never before its body starts). */
static size_t close_part(struct scanner *s, uint32_t i, size_t end, size_t end_line)
{
	struct mime_part *p;

	/* The CRLF before a delimiter may come before this part's header
	 * (a message/rfc822 part whose body is empty): never end before the
	 * start.  Found by fuzz_mime_parse. */
	if (end < s->msg->parts[i].hdr_start)
		end = s->msg->parts[i].hdr_start;
	if (i == s->cur && s->state == ST_HEADER) {
		/* Header cut by a delimiter or the end of data: no body. */
		header_done(s, end, false);
		s->msg->parts[i].flags |= MIME_PF_NO_HEADER_END;
		s->start_line[i] = end_line;
	}
	p = &s->msg->parts[i];
	if (end < p->body_start)
		end = p->body_start;
	p->body_end = end;
	p->body_lines = end > p->body_start && end_line > s->start_line[i] ?
		end_line - s->start_line[i] : 0;
	return end;
}

/* Closes everything open inside frame k: the frames above it with their
 * open children, and frame k's own open child.  Invariant: for i < top,
 * stack[i].child == stack[i + 1].part. */
static void close_inside(struct scanner *s, unsigned k, size_t end, size_t end_line)
{
	/* A part whose header ended just before the delimiter ends after
	 * its (empty) body start: its container must not end before it. */
	while (s->depth > k + 1) {
		struct frame *fr = &s->stack[s->depth - 1];

		if (fr->child != UINT32_MAX) {
			size_t e = close_part(s, fr->child, end, end_line);

			if (e > end)
				end = e;
		}
		if (s->msg->parts[fr->part].kind == MIME_KIND_MULTIPART && !fr->closed)
			s->multiparts--;
		s->depth--;
	}
	if (s->stack[k].child != UINT32_MAX) {
		(void)close_part(s, s->stack[k].child, end, end_line);
		s->stack[k].child = UINT32_MAX;
	}
}

/* Does the line [ls, le) match the boundary of an open multipart?  Returns
 * the frame index, or -1; *close_r tells a close delimiter. */
static int match_boundary(const struct scanner *s, size_t ls, size_t le, bool *close_r)
{
	const char *line = s->data + ls;
	size_t len = le - ls;

	if (len < 3 || line[0] != '-' || line[1] != '-')
		return -1;
	for (int k = (int)s->depth - 1; k >= 0; k--) {
		const struct frame *fr = &s->stack[k];
		const struct mime_part *p = &s->msg->parts[fr->part];
		size_t blen;

		if (p->kind != MIME_KIND_MULTIPART || fr->closed)
			continue;
		blen = strlen(p->boundary);
		if (len - 2 >= blen && memcmp(line + 2, p->boundary, blen) == 0) {
			const char *rest = line + 2 + blen;
			size_t rlen = len - 2 - blen, i = 0;

			/* "--b--" and anything, or "--b" and white space only:
			 * "--b10" is not a delimiter of boundary "b1". */
			if (rlen >= 2 && rest[0] == '-' && rest[1] == '-') {
				*close_r = true;
				return k;
			}
			while (i < rlen && (rest[i] == ' ' || rest[i] == '\t'))
				i++;
			if (i == rlen) {
				*close_r = false;
				return k;
			}
		}
	}
	return -1;
}

void mime_scan(const char *data, size_t len, const struct mime_limits *limits,
	       struct mime_message *msg_r)
{
	struct mime_limits def;
	struct scanner s;
	size_t pos = 0;

	if (limits == NULL) {
		mime_limits_default(&def);
		limits = &def;
	}
	memset(msg_r, 0, sizeof(*msg_r));
	msg_r->data = data;
	msg_r->len = len;
	memset(&s, 0, sizeof(s));
	s.data = data;
	s.len = len;
	s.lim = limits;
	s.msg = msg_r;
	s.field = -2;
	s.cur = new_part(&s, UINT32_MAX, 0);
	s.state = ST_HEADER;

	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t next = nl == NULL ? len : (size_t)(nl - data) + 1;
		size_t le = nl == NULL ? len : (size_t)(nl - data);
		bool close = false;
		int k;

		if (le > pos && data[le - 1] == '\r')
			le--;
		if (s.multiparts > 0 && (k = match_boundary(&s, pos, le, &close)) >= 0) {
			struct frame *fr = &s.stack[k];

			if (close || s.msg->count < limits->max_parts) {
				close_inside(&s, (unsigned)k, end_before(&s, pos, 0), s.line_no);
				fr = &s.stack[k];
				s.cur = fr->part;
				s.state = ST_BODY;
				s.field = -2;
				if (close) {
					fr->closed = true;
					s.multiparts--;
				} else {
					fr->child = new_part(&s, fr->part, next);
					s.cur = fr->child;
					s.state = ST_HEADER;
				}
				s.line_no++;
				pos = next;
				continue;
			}
			/* Past the part limit: the delimiter is content. */
			s.msg->parts[fr->part].flags |= MIME_PF_CUT_PARTS;
			s.msg->cut_parts = true;
		}
		if (s.state == ST_HEADER) {
			if (le == pos)
				header_done(&s, next, true);
			else
				header_line(&s, pos, le);
		}
		s.line_no++;
		pos = next;
	}
	/* End of data: close everything still open. */
	if (s.depth == 0) {
		(void)close_part(&s, 0, len, s.line_no);
	} else {
		close_inside(&s, 0, len, s.line_no);
		s.depth = 0;
		(void)close_part(&s, 0, len, s.line_no);
	}
	/* Containers that ended up with no children are shown as leaves:
	 * BODYSTRUCTURE has no syntax for an empty multipart. */
	for (size_t i = 0; i < msg_r->count; i++) {
		struct mime_part *p = &msg_r->parts[i];

		if (p->kind != MIME_KIND_LEAF && p->children == 0) {
			p->kind = MIME_KIND_LEAF;
			p->flags |= MIME_PF_NO_BOUNDARY;
		}
	}
	free(s.start_line);
}

void mime_message_deinit(struct mime_message *msg)
{
	free(msg->parts);
	msg->parts = NULL;
	msg->count = 0;
}

char *mime_field_value(const struct mime_message *msg, const struct mime_part *part,
		       enum mime_field f, size_t max)
{
	const struct mime_slice *sl = &part->fields[f];
	const char *v = msg->data + sl->off;
	size_t n = sl->len, i = 0, o = 0;
	char *out;

	if (part->field_count[f] == 0)
		return NULL;
	while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n'))
		i++;
	out = xmalloc((n - i < max ? n - i : max) + 1);
	for (; i < n && o < max; i++) {
		char c = v[i];

		if (c == '\r' || c == '\n')
			continue;
		out[o++] = c == '\0' ? ' ' : c;
	}
	while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
		o--;
	out[o] = '\0';
	return out;
}

long mime_section_find(const struct mime_message *msg, const uint32_t *path, size_t depth)
{
	size_t cur = 0, ctx = 0;

	for (size_t d = 0; d < depth; d++) {
		uint32_t want = path[d], seen = 0;
		size_t i;

		if (want == 0)
			return -1;
		if (d > 0) {
			/* The parts of a message/rfc822 part are those of the
			 * message it holds (its only child, next in pre-order). */
			if (msg->parts[cur].kind == MIME_KIND_MESSAGE)
				ctx = cur + 1;
			else if (msg->parts[cur].kind == MIME_KIND_MULTIPART)
				ctx = cur;
			else
				return -1;
		}
		if (msg->parts[ctx].kind != MIME_KIND_MULTIPART) {
			/* A non-multipart message has one part, "1": its body. */
			if (want != 1)
				return -1;
			cur = ctx;
			continue;
		}
		for (i = ctx + 1; i < msg->count && msg->parts[i].depth > msg->parts[ctx].depth; i++) {
			if (msg->parts[i].parent == ctx && ++seen == want)
				break;
		}
		if (seen != want)
			return -1;
		cur = i;
	}
	return (long)cur;
}
