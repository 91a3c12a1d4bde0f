/*
 * POP3 pure parts: line reader, command tokenizer and the multi-line
 * response encoder; see pop3_parse.h.  Each works on pieces of any size
 * and gives the same result whatever the split (HOSTILE-INPUT row 21:
 * a dot at a packet boundary once ended Outlook Express's RETR early).
 */
#include "pop3/pop3_parse.h"

#include <string.h>
#include <strings.h>

/* ---- lines ---- */

void pop3_parser_init(struct pop3_parser *p, size_t max_line)
{
	memset(p, 0, sizeof(*p));
	if (max_line < 3)
		panic("pop3_parser_init: max_line %zu", max_line);
	p->max_line = max_line;
	buf_init(&p->line, max_line);
}

void pop3_parser_deinit(struct pop3_parser *p)
{
	buf_deinit(&p->line);
}

void pop3_parser_set_max_line(struct pop3_parser *p, size_t max_line)
{
	if (max_line < 3)
		panic("pop3_parser_set_max_line: %zu", max_line);
	p->max_line = max_line;
	p->line.max = max_line;
	if (p->line.len > max_line)
		buf_truncate(&p->line, max_line);
}

enum pop3_parse_result pop3_parser_feed(struct pop3_parser *p, const void *data, size_t len,
					size_t *used_r)
{
	const unsigned char *in = data;
	size_t i = 0;

	*used_r = 0;
	if (p->dead)
		return POP3_PARSE_TOO_LONG;
	if (p->ready) {
		/* the previous line was handed out: start a new one */
		buf_reset(&p->line);
		p->ready = false;
		p->bad = false;
		p->after_cr = false;
	}
	while (i < len) {
		const unsigned char *nl = memchr(in + i, '\n', len - i);
		size_t span = nl != NULL ? (size_t)(nl - (in + i)) : len - i;

		for (size_t k = 0; k < span; k++) {
			unsigned char c = in[i + k];

			if (p->after_cr)
				p->bad = true;  /* CR not followed by LF */
			p->after_cr = c == '\r';
			if (c == '\0')
				p->bad = true;
		}
		/* The line and its CRLF must fit in max_line (a trailing CR
		 * may be the first half of that CRLF). */
		if (p->line.len + span > p->max_line - 2 + (p->after_cr ? 1 : 0) ||
		    buf_append(&p->line, in + i, span) < 0) {
			p->dead = true;
			*used_r = i;
			return POP3_PARSE_TOO_LONG;
		}
		i += span;
		if (nl == NULL)
			break;
		i++;  /* the LF */
		if (p->after_cr)
			buf_truncate(&p->line, p->line.len - 1);
		p->ready = true;
		*used_r = i;
		return p->bad ? POP3_PARSE_ERROR : POP3_PARSE_LINE;
	}
	*used_r = i;
	return POP3_PARSE_MORE;
}

/* ---- commands ---- */

static const struct {
	const char *name;
	enum pop3_cmd id;
} pop3_commands[] = {
	{ "USER", POP3_CMD_USER }, { "PASS", POP3_CMD_PASS }, { "APOP", POP3_CMD_APOP },
	{ "AUTH", POP3_CMD_AUTH }, { "STLS", POP3_CMD_STLS }, { "CAPA", POP3_CMD_CAPA },
	{ "QUIT", POP3_CMD_QUIT }, { "STAT", POP3_CMD_STAT }, { "LIST", POP3_CMD_LIST },
	{ "RETR", POP3_CMD_RETR }, { "DELE", POP3_CMD_DELE }, { "NOOP", POP3_CMD_NOOP },
	{ "RSET", POP3_CMD_RSET }, { "TOP", POP3_CMD_TOP }, { "UIDL", POP3_CMD_UIDL },
	{ "UTF8", POP3_CMD_UTF8 },
};

int pop3_command_parse(char *line, size_t len, struct pop3_command *cmd_r)
{
	size_t i = 0, klen = 0;
	bool eight_ok;

	memset(cmd_r, 0, sizeof(*cmd_r));
	if (len == 0 || memchr(line, '\0', len) != NULL)
		return -1;
	while (i < len && line[i] != ' ') {
		char c = line[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) || klen >= POP3_MAX_KEYWORD)
			return -1;
		cmd_r->keyword[klen++] = (char)(c >= 'a' ? c - 32 : c);
		i++;
	}
	if (klen == 0)
		return -1;
	cmd_r->keyword[klen] = '\0';
	cmd_r->id = POP3_CMD_UNKNOWN;
	for (size_t k = 0; k < sizeof(pop3_commands) / sizeof(pop3_commands[0]); k++) {
		if (strcmp(pop3_commands[k].name, cmd_r->keyword) == 0) {
			cmd_r->id = pop3_commands[k].id;
			break;
		}
	}
	eight_ok = cmd_r->id == POP3_CMD_USER || cmd_r->id == POP3_CMD_PASS ||
		   cmd_r->id == POP3_CMD_APOP;
	for (size_t k = 0; k < len; k++) {
		if ((unsigned char)line[k] >= 0x80 && !eight_ok)
			return -1;
		if ((unsigned char)line[k] < 0x20 && line[k] != '\t')
			return -1;
	}
	if (i == len) {
		cmd_r->rest = line + len;
		return 0;
	}
	/* line[i] == ' ' */
	i++;
	cmd_r->rest = line + i;
	cmd_r->rest_len = len - i;
	if (cmd_r->id == POP3_CMD_PASS)
		return 0;  /* PASS takes the rest of the line as it is */
	while (i <= len) {
		size_t start = i;

		while (i < len && line[i] != ' ')
			i++;
		if (i == start)
			return -1;  /* empty argument: two spaces, or a trailing one */
		if (cmd_r->argc < POP3_MAX_ARGS)
			cmd_r->argv[cmd_r->argc++] = line + start;
		else
			cmd_r->too_many_args = true;
		if (i == len)
			break;
		line[i++] = '\0';
	}
	return 0;
}

int pop3_parse_number(const char *s, uint32_t *n_r)
{
	uint64_t v = 0;
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (; *s != '\0'; s++, n++) {
		if (*s < '0' || *s > '9' || n >= 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v == 0 || v > UINT32_MAX)
		return -1;
	*n_r = (uint32_t)v;
	return 0;
}

/* ---- multi-line responses ---- */

void pop3_stuffer_init(struct pop3_stuffer *st, bool top, uint64_t top_lines)
{
	memset(st, 0, sizeof(*st));
	st->line_start = true;
	st->top = top;
	st->lines_left = top_lines;
}

bool pop3_stuffer_done(const struct pop3_stuffer *st)
{
	return st->done;
}

/* A line ended: header/body bookkeeping for TOP. */
static void line_ended(struct pop3_stuffer *st)
{
	if (!st->in_body) {
		if (st->line_empty) {
			st->in_body = true;
			if (st->top && st->lines_left == 0)
				st->done = true;
		}
	} else if (st->top) {
		if (st->lines_left > 0)
			st->lines_left--;
		if (st->lines_left == 0)
			st->done = true;
	}
	st->line_start = true;
	st->prev_cr = false;
}

int pop3_stuffer_add(struct pop3_stuffer *st, const void *data, size_t len, struct buf *out)
{
	const char *d = data;
	size_t i = 0;

	while (i < len && !st->done) {
		const char *nl;
		size_t span;

		if (st->line_start) {
			/* RFC 1939 section 3: byte-stuff a leading "." */
			if (d[i] == '.' && buf_append_char(out, '.') < 0)
				return -1;
			st->line_start = false;
			st->line_empty = true;
			st->prev_cr = false;
		}
		nl = memchr(d + i, '\n', len - i);
		span = nl != NULL ? (size_t)(nl - (d + i)) : len - i;
		if (span > 0) {
			if (buf_append(out, d + i, span) < 0)
				return -1;
			for (size_t k = 0; st->line_empty && k < span; k++) {
				if (d[i + k] != '\r')
					st->line_empty = false;
			}
			st->prev_cr = d[i + span - 1] == '\r';
			i += span;
		}
		if (nl != NULL) {
			/* a bare LF becomes CRLF */
			if (!st->prev_cr && buf_append_char(out, '\r') < 0)
				return -1;
			if (buf_append_char(out, '\n') < 0)
				return -1;
			i++;
			line_ended(st);
		}
	}
	return 0;
}

int pop3_stuffer_finish(struct pop3_stuffer *st, struct buf *out)
{
	if (!st->line_start) {
		if (buf_append_str(out, st->prev_cr ? "\n" : "\r\n") < 0)
			return -1;
		st->line_start = true;
	}
	return buf_append_str(out, ".\r\n");
}
