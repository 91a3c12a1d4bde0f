/*
 * The pure, incremental IMAP command parser and the small grammars the
 * commands take apart further (sequence sets, dates, body sections); see
 * imap_parse.h for the contract and the limits.
 *
 * The parser is a byte-level state machine: every state can be left in the
 * middle of any token when the input runs out, and resumed with the next
 * piece, so feeding one byte at a time gives exactly what one write gives
 * (the unit tests check it).  Lists are tracked with an explicit stack of
 * max_depth entries: nothing here recurses on client input.
 */
#include "imap/imap_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"

/* A command buffer bigger than this (an APPEND message) is released after
 * the command, so an idle session does not keep a big allocation. */
#define IMAP_PARSER_KEEP (64 * 1024)
#define IMAP_ARGS_INITIAL 16

/* ---- character classes ---- */

/* ATOM-CHAR plus list wildcards, "]" and "\" (see imap_parse.h). */
static bool is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return c != '(' && c != ')' && c != '{' && c != '"';
}

/* tag = 1*<any ASTRING-CHAR except "+"> */
static bool is_tag_char(unsigned char c)
{
	return is_atom_char(c) && c != '+' && c != '%' && c != '*' && c != '\\';
}

/* ---- setup ---- */

static void clear_command(struct imap_parser *p)
{
	p->nargs = 0;
	buf_reset(&p->data);
	p->has_tag = false;
	p->tag_off = 0;
	p->name[0] = '\0';
	p->name_len = 0;
	p->depth = 0;
	p->line_len = 0;
	p->literal_total = 0;
	p->append_total = 0;
	p->error = IMAP_PERR_NONE;
	p->error_text = NULL;
	p->fatal = false;
	p->after_cr = false;
}

void imap_parser_init(struct imap_parser *p, const struct imap_parser_limits *limits)
{
	memset(p, 0, sizeof(*p));
	/* The data buffer is not capped by buf: the limits are accounted
	 * for here, before anything is stored. */
	buf_init(&p->data, SIZE_MAX / 4);
	p->state = IMAP_PS_LINE_START;
	imap_parser_set_limits(p, limits);
	clear_command(p);
}

void imap_parser_deinit(struct imap_parser *p)
{
	buf_deinit(&p->data);
	free(p->args);
	free(p->stack);
	p->args = NULL;
	p->stack = NULL;
	p->args_cap = 0;
}

void imap_parser_set_limits(struct imap_parser *p, const struct imap_parser_limits *limits)
{
	unsigned old_depth = p->limits.max_depth;

	if (limits->max_depth == 0 || limits->max_line == 0)
		panic("imap_parser_set_limits: zero limit");
	/* The stack is only resized between commands. */
	if (p->depth != 0)
		panic("imap_parser_set_limits: inside a command");
	p->limits = *limits;
	if (p->stack == NULL || old_depth != limits->max_depth) {
		free(p->stack);
		p->stack = xmallocarray(limits->max_depth, sizeof(*p->stack));
	}
}

void imap_parser_reset(struct imap_parser *p)
{
	if (p->state == IMAP_PS_DEAD)
		return;
	if (p->data.cap > IMAP_PARSER_KEEP) {
		buf_deinit(&p->data);
		buf_init(&p->data, SIZE_MAX / 4);
	}
	if (p->args_cap > 4096) {
		free(p->args);
		p->args = NULL;
		p->args_cap = 0;
	}
	clear_command(p);
	p->state = IMAP_PS_LINE_START;
}

void imap_parser_take_data(struct imap_parser *p, struct buf *data_r)
{
	if (p->state != IMAP_PS_DONE)
		panic("imap_parser_take_data: no command");
	*data_r = p->data;
	buf_init(&p->data, SIZE_MAX / 4);
	p->nargs = 0;
	p->has_tag = false;
}

bool imap_parser_idle(const struct imap_parser *p)
{
	return p->state == IMAP_PS_LINE_START && p->line_len == 0 && !p->after_cr;
}

const char *imap_parser_tag(const struct imap_parser *p)
{
	return p->has_tag ? p->data.data + p->tag_off : NULL;
}

uint64_t imap_parser_literal_size(const struct imap_parser *p)
{
	return p->lit_size;
}

/* ---- arguments ---- */

static uint32_t new_arg(struct imap_parser *p, enum imap_arg_type type)
{
	struct imap_arg *a;

	if (p->nargs == p->args_cap) {
		size_t cap = p->args_cap == 0 ? IMAP_ARGS_INITIAL : p->args_cap * 2;

		p->args = xreallocarray(p->args, cap, sizeof(*p->args));
		p->args_cap = cap;
	}
	a = &p->args[p->nargs];
	memset(a, 0, sizeof(*a));
	a->type = (uint8_t)type;
	a->off = p->data.len;
	a->end = p->nargs + 1;
	if (p->depth > 0)
		p->args[p->stack[p->depth - 1]].count++;
	return p->nargs++;
}

static void data_char(struct imap_parser *p, unsigned char c)
{
	if (buf_append_char(&p->data, (char)c) < 0)
		panic("imap parser: data buffer cap");
}

/* Ends the string argument cur: its length, then a NUL after it. */
static void end_string(struct imap_parser *p)
{
	struct imap_arg *a = &p->args[p->cur];

	a->len = p->data.len - a->off;
	data_char(p, '\0');
}

/* ---- errors ---- */

static enum imap_parse_result fail(struct imap_parser *p, enum imap_parse_error err,
				   const char *text)
{
	p->error = err;
	p->error_text = text;
	p->fatal = false;
	p->state = IMAP_PS_SKIP;
	p->skip_mark_len = 0;
	p->skip_mark_done = false;
	p->depth = 0;
	return IMAP_PARSE_ERROR;
}

static enum imap_parse_result fail_fatal(struct imap_parser *p, enum imap_parse_error err,
					 const char *text)
{
	p->error = err;
	p->error_text = text;
	p->fatal = true;
	p->state = IMAP_PS_DEAD;
	p->depth = 0;
	return IMAP_PARSE_ERROR;
}

/* An error found once the line has ended: nothing to skip. */
static enum imap_parse_result fail_at_eol(struct imap_parser *p, enum imap_parse_error err,
					  const char *text)
{
	p->error = err;
	p->error_text = text;
	p->fatal = false;
	p->state = IMAP_PS_LINE_START;
	p->line_len = 0;
	p->depth = 0;
	p->after_cr = false;
	return IMAP_PARSE_ERROR;
}

/* ---- UTF-8 in quoted strings (RFC 3629 table, no overlongs/surrogates) ---- */

/* Returns false when c cannot come next. */
static bool utf8_step(struct imap_parser *p, unsigned char c)
{
	if (p->utf8_need == 0) {
		if (c < 0x80)
			return true;
		if (c >= 0xc2 && c <= 0xdf)
			p->utf8_need = 1;
		else if (c >= 0xe0 && c <= 0xef)
			p->utf8_need = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			p->utf8_need = 3;
		else
			return false;
		p->utf8_first = c;
		p->utf8_seen = 0;
		return true;
	}
	if ((c & 0xc0) != 0x80)
		return false;
	if (p->utf8_seen == 0) {
		unsigned char f = p->utf8_first;

		if ((f == 0xe0 && c < 0xa0) || (f == 0xed && c > 0x9f) ||
		    (f == 0xf0 && c < 0x90) || (f == 0xf4 && c > 0x8f))
			return false;
	}
	p->utf8_seen++;
	p->utf8_need--;
	return true;
}

bool imap_utf8_valid(const char *s, size_t len)
{
	struct imap_parser p;

	memset(&p, 0, sizeof(p));
	for (size_t i = 0; i < len; i++) {
		if (!utf8_step(&p, (unsigned char)s[i]))
			return false;
	}
	return p.utf8_need == 0;
}

/* ---- the state machine ---- */

static bool name_is(const struct imap_parser *p, const char *name)
{
	return strcmp(p->name, name) == 0;
}

/* The atom being read is one whose "[" opens a body section. */
static bool atom_takes_section(const struct imap_parser *p)
{
	static const char *const prefixes[] = { "BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK",
						"BINARY.SIZE" };
	const struct imap_arg *a = &p->args[p->cur];
	const char *text = p->data.data + a->off;
	size_t len = p->data.len - a->off;

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		if (strlen(prefixes[i]) == len && strncasecmp(text, prefixes[i], len) == 0)
			return true;
	}
	return false;
}

/* The line ended (LF consumed) outside any token. */
static enum imap_parse_result end_of_line(struct imap_parser *p)
{
	if (p->depth > 0)
		return fail_at_eol(p, IMAP_PERR_SYNTAX, "Unclosed list (missing \")\")");
	p->state = IMAP_PS_DONE;
	return IMAP_PARSE_COMMAND;
}

/* "}" read: decides whether the literal may come. */
static enum imap_parse_result literal_closed(struct imap_parser *p, bool *stop_r)
{
	bool append = name_is(p, "APPEND") && p->depth == 0;
	size_t left = append ? p->limits.max_append - p->append_total
			     : p->limits.max_literal - p->literal_total;
	bool bad_number = p->lit_digits == 0 || p->lit_size > UINT32_MAX;

	*stop_r = false;
	if (p->lit_nonsync) {
		if (bad_number)
			return *stop_r = true, fail_fatal(p, IMAP_PERR_NONSYNC_TOO_BIG,
							  "Invalid literal size");
		if (p->limits.literal_minus && p->lit_size > IMAP_LITERAL_MINUS_MAX)
			return *stop_r = true, fail_fatal(p, IMAP_PERR_NONSYNC_TOO_BIG,
							  "[TOOBIG] Non-synchronizing literal over 4096 bytes "
							  "(LITERAL-)");
		if (p->lit_size > left)
			return *stop_r = true, fail_fatal(p, IMAP_PERR_NONSYNC_TOO_BIG,
							  "[TOOBIG] Literal too big");
	} else if (bad_number) {
		return *stop_r = true, fail(p, IMAP_PERR_SYNTAX, "Invalid literal size");
	}
	p->lit_append = append;
	p->state = IMAP_PS_LIT_CR;
	return IMAP_PARSE_MORE;
}

/* The line end after "{n}" / "{n+}": the literal starts. */
static enum imap_parse_result literal_start(struct imap_parser *p)
{
	bool append = p->lit_append;
	size_t left = append ? p->limits.max_append - p->append_total
			     : p->limits.max_literal - p->literal_total;

	if (p->lit_size > left) {
		/* Only a synchronizing literal gets here: refused before "+",
		 * and the client sends nothing more for this command. */
		return fail_at_eol(p, IMAP_PERR_LITERAL_TOO_BIG,
				   append ? "[TOOBIG] Message too big (APPENDLIMIT)" : "[TOOBIG] Literal too big");
	}
	if (append)
		p->append_total += (size_t)p->lit_size;
	else
		p->literal_total += (size_t)p->lit_size;
	p->lit_left = p->lit_size;
	p->cur = new_arg(p, IMAP_ARG_LITERAL);
	p->args[p->cur].flags = p->lit_flags;
	if (p->lit_nonsync) {
		p->state = p->lit_left > 0 ? IMAP_PS_LIT_DATA : IMAP_PS_AFTER_TOKEN;
		if (p->lit_left == 0)
			end_string(p);
		return IMAP_PARSE_MORE;
	}
	p->state = IMAP_PS_LIT_WAIT;
	return IMAP_PARSE_CONTINUE;
}

void imap_parser_literal_go(struct imap_parser *p)
{
	if (p->state != IMAP_PS_LIT_WAIT)
		panic("imap_parser_literal_go: no literal announced");
	if (p->lit_left > 0) {
		p->state = IMAP_PS_LIT_DATA;
	} else {
		end_string(p);
		p->state = IMAP_PS_AFTER_TOKEN;
	}
}

void imap_parser_literal_refuse(struct imap_parser *p)
{
	if (p->state != IMAP_PS_LIT_WAIT)
		panic("imap_parser_literal_refuse: no literal announced");
	p->state = IMAP_PS_LINE_START;
	p->line_len = 0;
	p->depth = 0;
	p->after_cr = false;
}

/* SKIP: notes "{n}" or "{n+}" just before the line end. */
static void skip_mark(struct imap_parser *p, unsigned char c)
{
	if (c == '{') {
		p->skip_mark[0] = '{';
		p->skip_mark_len = 1;
		p->skip_mark_done = false;
	} else if (p->skip_mark_len > 0 && !p->skip_mark_done &&
		   ((c >= '0' && c <= '9') || c == '+' || c == '}')) {
		if (p->skip_mark_len >= sizeof(p->skip_mark) - 1) {
			/* More digits than any valid size: still a literal
			 * the client will send, and far too big. */
			p->skip_mark[p->skip_mark_len - 1] = '9';
		} else {
			p->skip_mark[p->skip_mark_len++] = (char)c;
		}
		if (c == '}')
			p->skip_mark_done = true;
	} else if (c != '\r') {
		p->skip_mark_len = 0;
		p->skip_mark_done = false;
	}
}

/* SKIP reached a line end: a non-synchronizing literal announced there
 * is on its way and must be skipped too (RFC 7888). */
static enum imap_parse_result skip_line_end(struct imap_parser *p)
{
	bool nonsync = false;
	uint64_t n = 0;
	unsigned digits = 0;

	if (p->skip_mark_done && p->skip_mark_len >= 4 &&
	    p->skip_mark[p->skip_mark_len - 2] == '+') {
		nonsync = true;
		for (unsigned i = 1; i < p->skip_mark_len - 2; i++) {
			char c = p->skip_mark[i];

			if (c < '0' || c > '9') {
				nonsync = false;
				break;
			}
			if (n <= UINT32_MAX)
				n = n * 10 + (uint64_t)(c - '0');
			digits++;
		}
		if (digits == 0)
			nonsync = false;
	}
	p->skip_mark_len = 0;
	p->skip_mark_done = false;
	if (!nonsync) {
		p->state = IMAP_PS_LINE_START;
		p->line_len = 0;
		p->after_cr = false;
		return IMAP_PARSE_MORE;
	}
	if (n > p->limits.max_literal || digits > IMAP_MAX_LITERAL_DIGITS ||
	    (p->limits.literal_minus && n > IMAP_LITERAL_MINUS_MAX)) {
		/* Already answered BAD; the tag must not be answered twice. */
		p->has_tag = false;
		return fail_fatal(p, IMAP_PERR_NONSYNC_TOO_BIG, "[TOOBIG] Literal too big");
	}
	p->skip_left = n;
	p->state = n > 0 ? IMAP_PS_SKIP_LITERAL : IMAP_PS_SKIP;
	return IMAP_PARSE_MORE;
}

/*
 * In the loop below each byte is either consumed ("i++" then next), left
 * for another state ("continue" without i++: the state changed), or ends
 * the call ("goto out", consumed or not).
 */
enum imap_parse_result imap_parser_feed(struct imap_parser *p, const void *data, size_t len,
					size_t *used_r)
{
	const unsigned char *in = data;
	size_t i = 0;
	enum imap_parse_result res = IMAP_PARSE_MORE;

	while (i < len) {
		unsigned char c = in[i];

		switch (p->state) {
		case IMAP_PS_LIT_DATA: {
			/* Literal data is not line text: bulk copy. */
			size_t n = len - i;
			struct imap_arg *a = &p->args[p->cur];

			if (n > p->lit_left)
				n = (size_t)p->lit_left;
			if (memchr(in + i, '\0', n) != NULL)
				a->flags |= IMAP_AF_NUL;
			for (size_t k = 0; k < n && (a->flags & IMAP_AF_8BIT) == 0; k++) {
				if (in[i + k] >= 0x80)
					a->flags |= IMAP_AF_8BIT;
			}
			if (buf_append(&p->data, in + i, n) < 0)
				panic("imap parser: data buffer cap");
			i += n;
			p->lit_left -= n;
			if (p->lit_left == 0) {
				end_string(p);
				p->state = IMAP_PS_AFTER_TOKEN;
			}
			continue;
		}
		case IMAP_PS_SKIP_LITERAL: {
			size_t n = len - i;

			if (n > p->skip_left)
				n = (size_t)p->skip_left;
			i += n;
			p->skip_left -= n;
			if (p->skip_left == 0)
				p->state = IMAP_PS_SKIP;
			continue;
		}
		case IMAP_PS_DEAD:
			res = IMAP_PARSE_ERROR;
			goto out;
		case IMAP_PS_DONE:
			res = IMAP_PARSE_COMMAND;
			goto out;
		case IMAP_PS_LIT_WAIT:
			res = IMAP_PARSE_CONTINUE;
			goto out;
		default:
			break;
		}

		if (p->state == IMAP_PS_LINE_START && !p->after_cr && p->line_len == 0 &&
		    c != '\r' && c != '\n')
			clear_command(p);
		if (p->line_len >= p->limits.max_line) {
			/* A command already answered (being skipped) must not be
			 * answered again under its tag. */
			if (p->state == IMAP_PS_SKIP)
				p->has_tag = false;
			res = fail_fatal(p, IMAP_PERR_LINE_TOO_LONG, "Command line too long");
			goto out;
		}

		switch (p->state) {
		case IMAP_PS_LINE_START:
			if (c == '\n') {
				/* an empty line: ignored */
				p->line_len = 0;
				p->after_cr = false;
				i++;
				continue;
			}
			if (p->after_cr) {
				res = fail(p, IMAP_PERR_SYNTAX, "Bare CR");
				goto out;
			}
			if (c == '\r') {
				p->after_cr = true;
				p->line_len++;
				i++;
				continue;
			}
			if (!is_tag_char(c)) {
				res = fail(p, c == '\0' ? IMAP_PERR_NUL : IMAP_PERR_TAG, "Invalid tag");
				goto out;
			}
			p->tag_off = p->data.len;
			p->state = IMAP_PS_TAG;
			data_char(p, c);
			break;

		case IMAP_PS_TAG:
			if (c == ' ') {
				data_char(p, '\0');
				p->has_tag = true;
				p->state = IMAP_PS_NAME;
			} else if (c == '\r' || c == '\n') {
				data_char(p, '\0');
				p->has_tag = true;
				res = fail(p, IMAP_PERR_SYNTAX, "Missing command");
				goto out;  /* the skip state ends the line */
			} else if (is_tag_char(c)) {
				data_char(p, c);
			} else {
				res = fail(p, c == '\0' ? IMAP_PERR_NUL : IMAP_PERR_TAG, "Invalid tag");
				goto out;
			}
			break;

		case IMAP_PS_NAME:
			if (c == ' ' && p->name_len == 0) {
				break;  /* extra spaces */
			} else if (c == ' ' || c == '\r' || c == '\n') {
				if (p->name_len == 0) {
					res = fail(p, IMAP_PERR_SYNTAX, "Missing command");
					goto out;
				}
				p->name[p->name_len] = '\0';
				p->state = IMAP_PS_ARG_START;
				continue;
			} else if (is_atom_char(c) && c != '[' && c != ']' && c != '%' && c != '*' &&
				   c != '\\') {
				if (p->name_len >= IMAP_MAX_COMMAND_NAME) {
					res = fail(p, IMAP_PERR_SYNTAX, "Unknown command");
					goto out;
				}
				p->name[p->name_len++] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
			} else {
				res = fail(p, c == '\0' ? IMAP_PERR_NUL :
					   c >= 0x80 ? IMAP_PERR_8BIT : IMAP_PERR_SYNTAX,
					   "Invalid command name");
				goto out;
			}
			break;

		case IMAP_PS_AFTER_TOKEN:
			/* A token must be followed by SP, ")" or the line end. */
			if (c != ' ' && c != ')' && c != '\r' && c != '\n') {
				res = fail(p, IMAP_PERR_SYNTAX, "Missing space between arguments");
				goto out;
			}
			p->state = IMAP_PS_ARG_START;
			continue;

		case IMAP_PS_ARG_START:
			if (c == ' ') {
				break;
			} else if (c == '\r') {
				p->state = IMAP_PS_CR;
			} else if (c == '\n') {
				i++;
				res = end_of_line(p);
				goto out;
			} else if (c == '(') {
				uint32_t idx;

				if (p->depth >= p->limits.max_depth) {
					res = fail(p, IMAP_PERR_DEPTH, "Too deep nesting of lists");
					goto out;
				}
				idx = new_arg(p, IMAP_ARG_LIST);
				p->stack[p->depth++] = idx;
			} else if (c == ')') {
				uint32_t idx;

				if (p->depth == 0) {
					res = fail(p, IMAP_PERR_SYNTAX, "Unexpected \")\"");
					goto out;
				}
				idx = p->stack[--p->depth];
				p->args[idx].end = p->nargs;
				p->state = IMAP_PS_AFTER_TOKEN;
			} else if (c == '"') {
				p->cur = new_arg(p, IMAP_ARG_QUOTED);
				p->utf8_need = 0;
				p->state = IMAP_PS_QUOTED;
			} else if (c == '{' || c == '~') {
				p->lit_size = 0;
				p->lit_digits = 0;
				p->lit_nonsync = false;
				p->lit_flags = c == '~' ? IMAP_AF_LITERAL8 : 0;
				p->state = c == '~' ? IMAP_PS_LIT8_BRACE : IMAP_PS_LIT_SIZE;
			} else if (is_atom_char(c)) {
				p->cur = new_arg(p, IMAP_ARG_ATOM);
				data_char(p, c);
				p->state = IMAP_PS_ATOM;
			} else {
				res = fail(p, c == '\0' ? IMAP_PERR_NUL :
					   c >= 0x80 ? IMAP_PERR_8BIT : IMAP_PERR_SYNTAX,
					   c == '\0' ? "NUL byte in command" :
					   c >= 0x80 ? "8-bit byte in command" : "Invalid character");
				goto out;
			}
			break;

		case IMAP_PS_ATOM:
			if (c == ' ' || c == ')' || c == '\r' || c == '\n') {
				end_string(p);
				p->state = IMAP_PS_ARG_START;
				continue;
			} else if (c == '[' && atom_takes_section(p)) {
				data_char(p, c);
				p->bracket_quoted = false;
				p->state = IMAP_PS_BRACKET;
			} else if (is_atom_char(c)) {
				data_char(p, c);
			} else {
				res = fail(p, c == '\0' ? IMAP_PERR_NUL :
					   c >= 0x80 ? IMAP_PERR_8BIT : IMAP_PERR_SYNTAX,
					   c == '\0' ? "NUL byte in command" :
					   c >= 0x80 ? "8-bit byte in atom" : "Invalid character in atom");
				goto out;
			}
			break;

		case IMAP_PS_BRACKET:
			if (c < 0x20 || c >= 0x7f) {
				res = fail(p, c == '\0' ? IMAP_PERR_NUL :
					   c >= 0x80 ? IMAP_PERR_8BIT : IMAP_PERR_SYNTAX,
					   "Unterminated section \"[\"");
				goto out;
			}
			data_char(p, c);
			if (c == '"')
				p->bracket_quoted = !p->bracket_quoted;
			else if (c == ']' && !p->bracket_quoted)
				p->state = IMAP_PS_ATOM;
			break;

		case IMAP_PS_QUOTED:
			if (c == '"') {
				if (p->utf8_need != 0) {
					res = fail(p, IMAP_PERR_8BIT, "Invalid UTF-8 in quoted string");
					goto out;
				}
				end_string(p);
				p->state = IMAP_PS_AFTER_TOKEN;
			} else if (c == '\\' && p->utf8_need == 0) {
				p->state = IMAP_PS_QUOTED_ESC;
			} else if (c == '\0') {
				res = fail(p, IMAP_PERR_NUL, "NUL byte in quoted string");
				goto out;
			} else if (c == '\r' || c == '\n') {
				res = fail(p, IMAP_PERR_SYNTAX, "Unterminated quoted string");
				goto out;
			} else if (c >= 0x80 || p->utf8_need != 0) {
				if (!p->limits.utf8) {
					res = fail(p, IMAP_PERR_8BIT,
						   "8-bit data in quoted string (use a literal, or ENABLE UTF8=ACCEPT)");
					goto out;
				}
				if (!utf8_step(p, c)) {
					res = fail(p, IMAP_PERR_8BIT, "Invalid UTF-8 in quoted string");
					goto out;
				}
				p->args[p->cur].flags |= IMAP_AF_8BIT;
				data_char(p, c);
			} else {
				data_char(p, c);
			}
			break;

		case IMAP_PS_QUOTED_ESC:
			/* RFC 3501: only quoted-specials may be escaped. */
			if (c != '"' && c != '\\') {
				res = fail(p, c == '\0' ? IMAP_PERR_NUL : IMAP_PERR_SYNTAX,
					   "Invalid escape in quoted string");
				goto out;
			}
			data_char(p, c);
			p->state = IMAP_PS_QUOTED;
			break;

		case IMAP_PS_LIT8_BRACE:
			if (c != '{') {
				res = fail(p, IMAP_PERR_SYNTAX, "Invalid literal8");
				goto out;
			}
			p->state = IMAP_PS_LIT_SIZE;
			break;

		case IMAP_PS_LIT_SIZE:
			if (c >= '0' && c <= '9') {
				if (p->lit_digits >= IMAP_MAX_LITERAL_DIGITS) {
					res = fail(p, IMAP_PERR_SYNTAX, "Invalid literal size");
					goto out;
				}
				p->lit_digits++;
				/* Saturates past 32 bits: such sizes are refused. */
				if (p->lit_size <= UINT32_MAX)
					p->lit_size = p->lit_size * 10 + (uint64_t)(c - '0');
			} else if (c == '+') {
				p->lit_nonsync = true;
				p->lit_flags |= IMAP_AF_NONSYNC;
				p->state = IMAP_PS_LIT_CLOSE;
			} else if (c == '}') {
				bool stop;

				p->line_len++;
				i++;
				res = literal_closed(p, &stop);
				if (stop)
					goto out;
				continue;
			} else {
				res = fail(p, c == '\0' ? IMAP_PERR_NUL : IMAP_PERR_SYNTAX,
					   "Invalid literal size");
				goto out;
			}
			break;

		case IMAP_PS_LIT_CLOSE:
			if (c != '}') {
				res = fail(p, IMAP_PERR_SYNTAX, "Invalid literal size");
				goto out;
			} else {
				bool stop;

				p->line_len++;
				i++;
				res = literal_closed(p, &stop);
				if (stop)
					goto out;
				continue;
			}

		case IMAP_PS_LIT_CR:
			if (c == '\r') {
				p->state = IMAP_PS_LIT_LF;
				break;
			}
			if (c != '\n') {
				res = fail(p, IMAP_PERR_SYNTAX, "A literal size must end the line");
				goto out;
			}
			p->state = IMAP_PS_LIT_LF;
			continue;  /* bare LF */

		case IMAP_PS_LIT_LF:
			if (c != '\n') {
				res = fail(p, IMAP_PERR_SYNTAX, "Bare CR");
				goto out;
			}
			i++;
			p->line_len++;
			res = literal_start(p);
			if (res != IMAP_PARSE_MORE)
				goto out;
			continue;

		case IMAP_PS_CR:
			if (c != '\n') {
				res = fail(p, IMAP_PERR_SYNTAX, "Bare CR");
				goto out;
			}
			i++;
			res = end_of_line(p);
			goto out;

		case IMAP_PS_SKIP:
			i++;
			p->line_len++;
			if (c == '\n') {
				res = skip_line_end(p);
				if (res != IMAP_PARSE_MORE)
					goto out;
				continue;
			}
			skip_mark(p, c);
			continue;

		default:
			panic("imap_parser_feed: state %d", (int)p->state);
		}
		/* the byte was consumed as line text */
		p->line_len++;
		i++;
	}
	if (p->state == IMAP_PS_DONE)
		res = IMAP_PARSE_COMMAND;
	else if (p->state == IMAP_PS_LIT_WAIT)
		res = IMAP_PARSE_CONTINUE;
	else if (p->state == IMAP_PS_DEAD)
		res = IMAP_PARSE_ERROR;
out:
	*used_r = i;
	return res;
}

/* ---- argument access ---- */

void imap_args_top(const struct imap_parser *p, struct imap_args *it_r)
{
	it_r->p = p;
	it_r->i = 0;
	it_r->end = p->nargs;
}

void imap_args_list(const struct imap_parser *p, const struct imap_arg *arg, struct imap_args *it_r)
{
	uint32_t idx = (uint32_t)(arg - p->args);

	if (arg->type != IMAP_ARG_LIST)
		panic("imap_args_list: not a list");
	it_r->p = p;
	it_r->i = idx + 1;
	it_r->end = arg->end;
}

const struct imap_arg *imap_args_next(struct imap_args *it)
{
	const struct imap_arg *a;

	if (it->i >= it->end)
		return NULL;
	a = &it->p->args[it->i];
	it->i = a->end;
	return a;
}

const struct imap_arg *imap_args_peek(const struct imap_args *it)
{
	return it->i < it->end ? &it->p->args[it->i] : NULL;
}

size_t imap_args_left(const struct imap_args *it)
{
	size_t n = 0;

	for (uint32_t i = it->i; i < it->end; i = it->p->args[i].end)
		n++;
	return n;
}

const char *imap_arg_text(const struct imap_parser *p, const struct imap_arg *arg)
{
	if (arg->type == IMAP_ARG_LIST)
		return NULL;
	return p->data.data + arg->off;
}

bool imap_arg_atom_is(const struct imap_parser *p, const struct imap_arg *arg, const char *word)
{
	return arg != NULL && arg->type == IMAP_ARG_ATOM &&
	       strcasecmp(p->data.data + arg->off, word) == 0;
}

bool imap_arg_is_nil(const struct imap_parser *p, const struct imap_arg *arg)
{
	return imap_arg_atom_is(p, arg, "NIL");
}

const char *imap_arg_string(const struct imap_parser *p, const struct imap_arg *arg,
			    size_t *len_r)
{
	if (arg == NULL || (arg->type != IMAP_ARG_QUOTED && arg->type != IMAP_ARG_LITERAL) ||
	    (arg->flags & IMAP_AF_NUL) != 0)
		return NULL;
	if (len_r != NULL)
		*len_r = arg->len;
	return p->data.data + arg->off;
}

const char *imap_arg_astring(const struct imap_parser *p, const struct imap_arg *arg,
			     size_t *len_r)
{
	if (arg != NULL && arg->type == IMAP_ARG_ATOM) {
		/* ASTRING-CHAR: no list wildcards in an atom astring. */
		const char *t = p->data.data + arg->off;

		if (strpbrk(t, "%*") != NULL)
			return NULL;
		if (len_r != NULL)
			*len_r = arg->len;
		return t;
	}
	return imap_arg_string(p, arg, len_r);
}

bool imap_arg_nstring(const struct imap_parser *p, const struct imap_arg *arg,
		      const char **text_r, size_t *len_r)
{
	if (imap_arg_is_nil(p, arg)) {
		*text_r = NULL;
		*len_r = 0;
		return true;
	}
	*text_r = imap_arg_string(p, arg, len_r);
	return *text_r != NULL;
}

static int dump_string(struct buf *out, const char *s, size_t len)
{
	if (buf_append_char(out, '"') < 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int ret;

		if (c == '"' || c == '\\')
			ret = buf_printf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			ret = buf_printf(out, "\\x%02X", c);
		else
			ret = buf_append_char(out, (char)c);
		if (ret < 0)
			return -1;
	}
	return buf_append_char(out, '"');
}

int imap_parser_dump(const struct imap_parser *p, struct buf *out)
{
	/* Closing parentheses are owed at these indexes: a small fixed stack
	 * is enough because the parser's depth limit bounds it. */
	uint32_t *ends = xmallocarray(p->limits.max_depth + 1, sizeof(*ends));
	unsigned depth = 0;
	const char *tag = imap_parser_tag(p);
	int ret = 0;

	if (buf_printf(out, "%s %s", tag != NULL ? tag : "*", p->name) < 0)
		ret = -1;
	for (uint32_t i = 0; ret == 0 && i <= p->nargs; i++) {
		while (depth > 0 && ends[depth - 1] == i) {
			depth--;
			if (buf_append_char(out, ')') < 0)
				ret = -1;
		}
		if (i == p->nargs || ret < 0)
			break;
		const struct imap_arg *a = &p->args[i];
		bool first = i > 0 && p->args[i - 1].type == IMAP_ARG_LIST && p->args[i - 1].end > i;

		if (!first && buf_append_char(out, ' ') < 0) {
			ret = -1;
			break;
		}
		switch (a->type) {
		case IMAP_ARG_ATOM:
			ret = buf_append(out, p->data.data + a->off, a->len);
			break;
		case IMAP_ARG_QUOTED:
			ret = dump_string(out, p->data.data + a->off, a->len);
			break;
		case IMAP_ARG_LITERAL:
			ret = buf_append_str(out, (a->flags & IMAP_AF_LITERAL8) != 0 ? "L8" : "L");
			if (ret == 0)
				ret = dump_string(out, p->data.data + a->off, a->len);
			break;
		case IMAP_ARG_LIST:
			ret = buf_append_char(out, '(');
			if (a->end == i + 1) {
				if (ret == 0)
					ret = buf_append_char(out, ')');
			} else if (depth <= p->limits.max_depth) {
				ends[depth++] = a->end;
			}
			break;
		}
	}
	free(ends);
	return ret;
}

/* ---- sequence sets ---- */

/* Parses "*" or an nz-number at s[*pos]. */
static int seq_number(const char *s, size_t len, size_t *pos, uint32_t *n_r)
{
	size_t i = *pos;
	uint64_t v = 0;

	if (i < len && s[i] == '*') {
		*n_r = IMAP_SEQ_STAR;
		*pos = i + 1;
		return 0;
	}
	if (i >= len || s[i] < '1' || s[i] > '9')
		return -1;
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT32_MAX)
			return -1;
		i++;
	}
	*n_r = (uint32_t)v;
	*pos = i;
	return 0;
}

int imap_seqset_parse(const char *s, size_t len, bool allow_dollar, struct imap_seqset *set_r)
{
	size_t commas = 0, pos = 0;

	memset(set_r, 0, sizeof(*set_r));
	if (len == 1 && s[0] == '$') {
		if (!allow_dollar)
			return -1;
		set_r->dollar = true;
		return 0;
	}
	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++)
		commas += s[i] == ',';
	set_r->ranges = xmallocarray(commas + 1, sizeof(*set_r->ranges));
	for (;;) {
		uint32_t lo, hi;

		if (seq_number(s, len, &pos, &lo) < 0)
			goto fail;
		hi = lo;
		if (pos < len && s[pos] == ':') {
			pos++;
			if (seq_number(s, len, &pos, &hi) < 0)
				goto fail;
		}
		/* Ordered later, once "*" has a value. */
		set_r->ranges[set_r->count].lo = lo;
		set_r->ranges[set_r->count].hi = hi;
		set_r->count++;
		if (pos == len)
			return 0;
		if (s[pos] != ',')
			goto fail;
		pos++;
	}
fail:
	imap_seqset_free(set_r);
	return -1;
}

void imap_seqset_free(struct imap_seqset *set)
{
	free(set->ranges);
	set->ranges = NULL;
	set->count = 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct imap_seq_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo ? 1 : 0;
}

size_t imap_seqset_normalize(struct imap_seqset *set, uint32_t star_value)
{
	size_t n = 0;

	if (star_value == 0) {
		/* An empty mailbox: a range that reaches "*" matches nothing. */
		for (size_t i = 0; i < set->count; i++) {
			if (set->ranges[i].lo != IMAP_SEQ_STAR && set->ranges[i].hi != IMAP_SEQ_STAR)
				set->ranges[n++] = set->ranges[i];
		}
		set->count = n;
		n = 0;
	}
	for (size_t i = 0; i < set->count; i++) {
		struct imap_seq_range *r = &set->ranges[i];

		if (r->lo == IMAP_SEQ_STAR)
			r->lo = star_value;
		if (r->hi == IMAP_SEQ_STAR)
			r->hi = star_value;
		if (r->lo > r->hi) {
			uint32_t t = r->lo;

			r->lo = r->hi;
			r->hi = t;
		}
	}
	if (set->count == 0)
		return 0;
	qsort(set->ranges, set->count, sizeof(*set->ranges), range_cmp);
	for (size_t i = 1; i < set->count; i++) {
		struct imap_seq_range *last = &set->ranges[n];
		const struct imap_seq_range *r = &set->ranges[i];

		if (last->hi == UINT32_MAX || r->lo <= last->hi + 1) {
			if (r->hi > last->hi)
				last->hi = r->hi;
		} else {
			set->ranges[++n] = *r;
		}
	}
	set->count = n + 1;
	return set->count;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n)
{
	size_t lo = 0, hi = set->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct imap_seq_range *r = &set->ranges[mid];

		if (n < r->lo)
			hi = mid;
		else if (n > r->hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* ---- dates ---- */

static const char *const month_names[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dim[m - 1];
}

static int parse_digits(const char *s, size_t len, size_t *pos, unsigned min_digits,
			unsigned max_digits, unsigned *v_r)
{
	unsigned v = 0, n = 0;

	while (*pos < len && s[*pos] >= '0' && s[*pos] <= '9' && n < max_digits) {
		v = v * 10 + (unsigned)(s[*pos] - '0');
		(*pos)++;
		n++;
	}
	if (n < min_digits)
		return -1;
	*v_r = v;
	return 0;
}

/* "d-Mon-yyyy" at s[*pos]; a leading space pads a one-digit day. */
static int parse_date_part(const char *s, size_t len, size_t *pos, int64_t *y_r, unsigned *m_r,
			   unsigned *d_r)
{
	unsigned d, y, m = 0;

	if (*pos < len && s[*pos] == ' ')
		(*pos)++;
	if (parse_digits(s, len, pos, 1, 2, &d) < 0 || *pos + 5 > len || s[*pos] != '-')
		return -1;
	(*pos)++;
	for (unsigned i = 0; i < 12; i++) {
		if (strncasecmp(s + *pos, month_names[i], 3) == 0) {
			m = i + 1;
			break;
		}
	}
	if (m == 0)
		return -1;
	*pos += 3;
	if (*pos >= len || s[*pos] != '-')
		return -1;
	(*pos)++;
	if (parse_digits(s, len, pos, 4, 4, &y) < 0)
		return -1;
	if (y < 1900 || d < 1 || d > days_in_month(y, m))
		return -1;
	*y_r = y;
	*m_r = m;
	*d_r = d;
	return 0;
}

int imap_parse_date(const char *s, size_t len, int64_t *time_r)
{
	size_t pos = 0;
	int64_t y;
	unsigned m, d;

	if (parse_date_part(s, len, &pos, &y, &m, &d) < 0 || pos != len)
		return -1;
	*time_r = days_from_civil(y, m, d) * 86400;
	return 0;
}

int imap_parse_datetime(const char *s, size_t len, int64_t *time_r, int *tz_r)
{
	size_t pos = 0;
	int64_t y;
	unsigned m, d, hh, mm, ss, zone;
	int sign;

	if (parse_date_part(s, len, &pos, &y, &m, &d) < 0 || pos >= len || s[pos++] != ' ')
		return -1;
	if (parse_digits(s, len, &pos, 2, 2, &hh) < 0 || pos >= len || s[pos++] != ':' ||
	    parse_digits(s, len, &pos, 2, 2, &mm) < 0 || pos >= len || s[pos++] != ':' ||
	    parse_digits(s, len, &pos, 2, 2, &ss) < 0 || pos >= len || s[pos++] != ' ')
		return -1;
	if (pos >= len || (s[pos] != '+' && s[pos] != '-'))
		return -1;
	sign = s[pos++] == '-' ? -1 : 1;
	if (parse_digits(s, len, &pos, 4, 4, &zone) < 0 || pos != len)
		return -1;
	if (hh > 23 || mm > 59 || ss > 60 || zone % 100 > 59 || zone / 100 > 23)
		return -1;
	*tz_r = sign * (int)(zone / 100 * 60 + zone % 100);
	*time_r = days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss - *tz_r * 60;
	return 0;
}

int imap_format_datetime(struct buf *out, int64_t t, int tz)
{
	int64_t local = t + (int64_t)tz * 60;
	int64_t days = local >= 0 ? local / 86400 : (local - 86399) / 86400;
	int64_t secs = local - days * 86400;
	/* civil_from_days (Hinnant) */
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	int atz = tz < 0 ? -tz : tz;

	y += m <= 2;
	return buf_printf(out, "\"%02u-%s-%04lld %02lld:%02lld:%02lld %c%02d%02d\"", d,
			  month_names[m - 1], (long long)y, (long long)(secs / 3600),
			  (long long)(secs / 60 % 60), (long long)(secs % 60), tz < 0 ? '-' : '+',
			  atz / 60, atz % 60);
}

/* ---- FETCH body sections ---- */

void imap_section_free(struct imap_section *sec)
{
	for (size_t i = 0; i < sec->nfields; i++)
		free(sec->fields[i]);
	free(sec->fields);
	free(sec->echo);
	memset(sec, 0, sizeof(*sec));
}

static bool word_at(const char *s, size_t len, size_t pos, const char *word)
{
	size_t n = strlen(word);

	return pos + n <= len && strncasecmp(s + pos, word, n) == 0;
}

static bool is_field_char(unsigned char c)
{
	/* RFC 5322 ftext: printable US-ASCII except ":" */
	return c > 0x20 && c < 0x7f && c != ':' && c != '(' && c != ')' && c != '"';
}

/* "(f1 f2 ...)" at s[*pos] into sec->fields, echoed to echo. */
static int parse_header_list(const char *s, size_t len, size_t *pos, struct imap_section *sec,
			     struct buf *echo, const char **error_r)
{
	size_t i = *pos;

	if (i >= len || s[i] != '(') {
		*error_r = "Missing header field list";
		return -1;
	}
	i++;
	if (buf_append_char(echo, '(') < 0)
		goto toolong;
	for (;;) {
		size_t start;
		bool quoted = false;

		if (i < len && s[i] == '"') {
			quoted = true;
			i++;
		}
		start = i;
		while (i < len && is_field_char((unsigned char)s[i]))
			i++;
		if (i == start) {
			*error_r = "Invalid header field name";
			return -1;
		}
		if (sec->nfields >= IMAP_MAX_SECTION_FIELDS) {
			*error_r = "Too many header fields";
			return -1;
		}
		sec->fields = xreallocarray(sec->fields, sec->nfields + 1, sizeof(*sec->fields));
		sec->fields[sec->nfields++] = xstrndup(s + start, i - start);
		if ((sec->nfields > 1 && buf_append_char(echo, ' ') < 0) ||
		    buf_append(echo, s + start, i - start) < 0)
			goto toolong;
		if (quoted) {
			if (i >= len || s[i] != '"') {
				*error_r = "Invalid header field name";
				return -1;
			}
			i++;
		}
		if (i < len && s[i] == ' ') {
			while (i < len && s[i] == ' ')
				i++;
			if (i < len && s[i] == ')')
				break;
			continue;
		}
		break;
	}
	if (i >= len || s[i] != ')') {
		*error_r = "Unterminated header field list";
		return -1;
	}
	*pos = i + 1;
	if (buf_append_char(echo, ')') < 0)
		goto toolong;
	return 0;
toolong:
	*error_r = "Section too long";
	return -1;
}

int imap_section_parse(const char *atom, size_t len, struct imap_section *sec_r,
		       const char **error_r)
{
	static const struct {
		const char *word;
		enum imap_fetch_body_type type;
		const char *echo;
	} kinds[] = {
		{ "BODY.PEEK[", IMAP_BODY_PEEK, "BODY[" },
		{ "BODY[", IMAP_BODY, "BODY[" },
		{ "BINARY.PEEK[", IMAP_BINARY_PEEK, "BINARY[" },
		{ "BINARY.SIZE[", IMAP_BINARY_SIZE, "BINARY.SIZE[" },
		{ "BINARY[", IMAP_BINARY, "BINARY[" },
	};
	struct buf echo;
	size_t pos = 0;
	bool found = false, binary;

	memset(sec_r, 0, sizeof(*sec_r));
	buf_init(&echo, 8192);
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		if (word_at(atom, len, 0, kinds[k].word)) {
			sec_r->type = kinds[k].type;
			pos = strlen(kinds[k].word);
			if (buf_append_str(&echo, kinds[k].echo) < 0)
				panic("imap_section_parse: echo");
			found = true;
			break;
		}
	}
	if (!found) {
		*error_r = "Invalid FETCH item";
		goto fail;
	}
	binary = sec_r->type == IMAP_BINARY || sec_r->type == IMAP_BINARY_PEEK ||
		 sec_r->type == IMAP_BINARY_SIZE;
	sec_r->kind = IMAP_SECTION_ALL;
	/* section-part: nz-number *("." nz-number) */
	while (pos < len && atom[pos] >= '1' && atom[pos] <= '9') {
		uint64_t v = 0;
		size_t start = pos;

		while (pos < len && atom[pos] >= '0' && atom[pos] <= '9') {
			v = v * 10 + (uint64_t)(atom[pos] - '0');
			if (v > UINT32_MAX) {
				*error_r = "Invalid section number";
				goto fail;
			}
			pos++;
		}
		if (sec_r->nparts >= IMAP_MAX_SECTION_PARTS) {
			*error_r = "Section nested too deep";
			goto fail;
		}
		sec_r->parts[sec_r->nparts++] = (uint32_t)v;
		if (buf_append(&echo, atom + start, pos - start) < 0)
			goto toolong;
		if (pos < len && atom[pos] == '.') {
			if (pos + 1 < len && atom[pos + 1] >= '1' && atom[pos + 1] <= '9') {
				if (buf_append_char(&echo, '.') < 0)
					goto toolong;
				pos++;
				continue;
			}
			if (binary) {
				*error_r = "BINARY takes part numbers only";
				goto fail;
			}
			if (buf_append_char(&echo, '.') < 0)
				goto toolong;
			pos++;
			break;
		}
		break;
	}
	if (pos < len && atom[pos] != ']') {
		bool after_part = sec_r->nparts > 0;

		if (binary) {
			*error_r = "BINARY takes part numbers only";
			goto fail;
		}
		if (after_part && atom[pos - 1] != '.') {
			*error_r = "Invalid section";
			goto fail;
		}
		if (word_at(atom, len, pos, "HEADER.FIELDS.NOT")) {
			sec_r->kind = IMAP_SECTION_HEADER_FIELDS_NOT;
			pos += strlen("HEADER.FIELDS.NOT");
		} else if (word_at(atom, len, pos, "HEADER.FIELDS")) {
			sec_r->kind = IMAP_SECTION_HEADER_FIELDS;
			pos += strlen("HEADER.FIELDS");
		} else if (word_at(atom, len, pos, "HEADER")) {
			sec_r->kind = IMAP_SECTION_HEADER;
			pos += strlen("HEADER");
		} else if (word_at(atom, len, pos, "TEXT")) {
			sec_r->kind = IMAP_SECTION_TEXT;
			pos += strlen("TEXT");
		} else if (after_part && word_at(atom, len, pos, "MIME")) {
			sec_r->kind = IMAP_SECTION_MIME;
			pos += strlen("MIME");
		} else {
			*error_r = "Invalid section";
			goto fail;
		}
		if (buf_append_str(&echo, sec_r->kind == IMAP_SECTION_HEADER_FIELDS_NOT ? "HEADER.FIELDS.NOT" :
				   sec_r->kind == IMAP_SECTION_HEADER_FIELDS ? "HEADER.FIELDS" :
				   sec_r->kind == IMAP_SECTION_HEADER ? "HEADER" :
				   sec_r->kind == IMAP_SECTION_TEXT ? "TEXT" : "MIME") < 0)
			goto toolong;
		if (sec_r->kind == IMAP_SECTION_HEADER_FIELDS ||
		    sec_r->kind == IMAP_SECTION_HEADER_FIELDS_NOT) {
			if (pos >= len || atom[pos] != ' ') {
				*error_r = "Missing header field list";
				goto fail;
			}
			pos++;
			if (buf_append_char(&echo, ' ') < 0)
				goto toolong;
			if (parse_header_list(atom, len, &pos, sec_r, &echo, error_r) < 0)
				goto fail;
		}
	} else if (sec_r->nparts > 0 && atom[pos - 1] == '.') {
		*error_r = "Invalid section";
		goto fail;
	}
	if (pos >= len || atom[pos] != ']') {
		*error_r = "Invalid section";
		goto fail;
	}
	pos++;
	if (buf_append_char(&echo, ']') < 0)
		goto toolong;
	if (pos < len) {
		uint64_t off = 0, count = 0;
		unsigned digits = 0;

		if (atom[pos] != '<' || sec_r->type == IMAP_BINARY_SIZE) {
			*error_r = "Invalid partial";
			goto fail;
		}
		pos++;
		while (pos < len && atom[pos] >= '0' && atom[pos] <= '9') {
			off = off * 10 + (uint64_t)(atom[pos++] - '0');
			if (off > UINT32_MAX || ++digits > 10) {
				*error_r = "Invalid partial";
				goto fail;
			}
		}
		if (digits == 0 || pos >= len || atom[pos] != '.') {
			*error_r = "Invalid partial";
			goto fail;
		}
		pos++;
		digits = 0;
		while (pos < len && atom[pos] >= '0' && atom[pos] <= '9') {
			count = count * 10 + (uint64_t)(atom[pos++] - '0');
			if (count > UINT32_MAX || ++digits > 10) {
				*error_r = "Invalid partial";
				goto fail;
			}
		}
		if (digits == 0 || count == 0 || pos + 1 != len || atom[pos] != '>') {
			*error_r = "Invalid partial";
			goto fail;
		}
		sec_r->partial = true;
		sec_r->offset = off;
		sec_r->count = count;
		if (buf_printf(&echo, "<%llu>", (unsigned long long)off) < 0)
			goto toolong;
	}
	sec_r->echo = buf_steal(&echo);
	buf_deinit(&echo);
	return 0;
toolong:
	*error_r = "Section too long";
fail:
	buf_deinit(&echo);
	imap_section_free(sec_r);
	return -1;
}

/* ---- modified UTF-7 (RFC 3501 5.1.3) ---- */

static const char b64_mutf7[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static int utf8_put(struct buf *out, uint32_t cp)
{
	char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return buf_append(out, b, n);
}

int imap_utf7_to_utf8(const char *in, size_t len, struct buf *out)
{
	size_t start_len = out->len;
	size_t i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)in[i];
		uint32_t bits = 0, high = 0;
		unsigned nbits = 0;
		size_t start;

		if (c < 0x20 || c >= 0x7f)
			goto fail;
		if (c != '&') {
			if (buf_append_char(out, (char)c) < 0)
				goto fail;
			i++;
			continue;
		}
		i++;
		if (i < len && in[i] == '-') {
			if (buf_append_char(out, '&') < 0)
				goto fail;
			i++;
			continue;
		}
		start = i;
		while (i < len && in[i] != '-') {
			int v = b64_value((unsigned char)in[i]);

			if (v < 0)
				goto fail;
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits >= 16) {
				uint32_t u = (bits >> (nbits - 16)) & 0xffff;

				nbits -= 16;
				bits &= (1u << nbits) - 1;
				if (high != 0) {
					if (u < 0xdc00 || u > 0xdfff)
						goto fail;
					if (utf8_put(out, 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00)) < 0)
						goto fail;
					high = 0;
				} else if (u >= 0xd800 && u <= 0xdbff) {
					high = u;
				} else if (u >= 0xdc00 && u <= 0xdfff) {
					goto fail;
				} else {
					/* printable ASCII must not be encoded */
					if (u >= 0x20 && u < 0x7f)
						goto fail;
					if (utf8_put(out, u) < 0)
						goto fail;
				}
			}
			i++;
		}
		/* unterminated, empty, lone surrogate, or nonzero leftover bits */
		if (i >= len || i == start || high != 0 || nbits >= 6 || bits != 0)
			goto fail;
		i++;  /* '-' */
	}
	return 0;
fail:
	buf_truncate(out, start_len);
	return -1;
}

/* Decodes one UTF-8 sequence (input known valid). */
static uint32_t utf8_get(const unsigned char *s, size_t *i)
{
	uint32_t cp = s[*i];
	unsigned n = 0;

	if (cp >= 0xf0) {
		cp &= 0x07;
		n = 3;
	} else if (cp >= 0xe0) {
		cp &= 0x0f;
		n = 2;
	} else if (cp >= 0xc0) {
		cp &= 0x1f;
		n = 1;
	}
	(*i)++;
	while (n-- > 0)
		cp = (cp << 6) | (s[(*i)++] & 0x3f);
	return cp;
}

int imap_utf8_to_utf7(const char *in, size_t len, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t start_len = out->len, i = 0;

	if (!imap_utf8_valid(in, len))
		return -1;
	while (i < len) {
		uint32_t bits = 0;
		unsigned nbits = 0;

		if (s[i] >= 0x20 && s[i] < 0x7f) {
			if (buf_append_str(out, s[i] == '&' ? "&-" : (char[]){ (char)s[i], 0 }) < 0)
				goto fail;
			i++;
			continue;
		}
		if (buf_append_char(out, '&') < 0)
			goto fail;
		while (i < len && !(s[i] >= 0x20 && s[i] < 0x7f)) {
			uint32_t cp = utf8_get(s, &i);
			uint16_t units[2];
			unsigned nu = 1;

			if (cp >= 0x10000) {
				cp -= 0x10000;
				units[0] = (uint16_t)(0xd800 + (cp >> 10));
				units[1] = (uint16_t)(0xdc00 + (cp & 0x3ff));
				nu = 2;
			} else {
				units[0] = (uint16_t)cp;
			}
			for (unsigned k = 0; k < nu; k++) {
				bits = (bits << 16) | units[k];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					if (buf_append_char(out, b64_mutf7[(bits >> nbits) & 0x3f]) < 0)
						goto fail;
				}
				bits &= (1u << nbits) - 1;
			}
		}
		if (nbits > 0 && buf_append_char(out, b64_mutf7[(bits << (6 - nbits)) & 0x3f]) < 0)
			goto fail;
		if (buf_append_char(out, '-') < 0)
			goto fail;
	}
	return 0;
fail:
	buf_truncate(out, start_len);
	return -1;
}

/* ---- output ---- */

/* Longest string sent quoted rather than as a literal. */
#define IMAP_MAX_QUOTED 1024

int imap_append_string(struct buf *out, const char *s, size_t len, bool utf8)
{
	bool quoted = len <= IMAP_MAX_QUOTED;
	size_t start_len = out->len;

	for (size_t i = 0; quoted && i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0' || c == '\r' || c == '\n' || (c >= 0x80 && !utf8))
			quoted = false;
	}
	if (quoted && utf8 && !imap_utf8_valid(s, len))
		quoted = false;
	if (!quoted) {
		if (buf_printf(out, "{%zu}\r\n", len) < 0 || buf_append(out, s, len) < 0)
			goto fail;
		return 0;
	}
	if (buf_append_char(out, '"') < 0)
		goto fail;
	for (size_t i = 0; i < len; i++) {
		if ((s[i] == '"' || s[i] == '\\') && buf_append_char(out, '\\') < 0)
			goto fail;
		if (buf_append_char(out, s[i]) < 0)
			goto fail;
	}
	if (buf_append_char(out, '"') < 0)
		goto fail;
	return 0;
fail:
	buf_truncate(out, start_len);
	return -1;
}

int imap_append_nstring(struct buf *out, const char *s, size_t len, bool utf8)
{
	if (s == NULL)
		return buf_append_str(out, "NIL");
	return imap_append_string(out, s, len, utf8);
}
