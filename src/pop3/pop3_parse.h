/*
 * POP3 pure parts (STYLE.md §8): the command line reader, the command
 * tokenizer, and the encoder that turns message bytes into a multi-line
 * response (dot-stuffing, TOP's header-plus-n-lines cut, the final ".").
 * No sockets, event loop, logging or globals; pop3_session.c drives them,
 * the unit tests and the fuzzer call them directly.
 *
 * Lines (RFC 1939 section 3, RFC 2449 section 4): a command line is at
 * most max_line bytes with its CRLF (RFC 2449 says 255; the setting
 * allows more for long SASL initial responses).  A longer line is fatal:
 * the session answers -ERR and closes (HOSTILE-INPUT row 1).  A bare LF
 * ends a line as CRLF does (old clients); a CR not followed by LF, and a
 * NUL anywhere, make the line an error (row 14).
 */
#ifndef PETREL_POP3_PARSE_H
#define PETREL_POP3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/xmalloc.h"

/* RFC 2449 section 4: command lines up to 255 octets with CRLF. */
#define POP3_RFC_MAX_LINE 255
/* RFC 1939: a keyword is 3 or 4 characters, each argument at most 40
 * (RFC 2449: up to 255 octets for the whole line). */
#define POP3_MAX_KEYWORD 4
#define POP3_MAX_ARGS 3

enum pop3_parse_result {
	POP3_PARSE_MORE,          /* all input consumed, no complete line */
	POP3_PARSE_LINE,          /* a line is ready in p->line (without its line end) */
	POP3_PARSE_ERROR,         /* a bad line (NUL, bare CR), skipped; answer -ERR */
	POP3_PARSE_TOO_LONG,      /* fatal: answer -ERR and close */
};

struct pop3_parser {
	size_t max_line;          /* bytes including the line end */
	struct buf line;          /* the line read, NUL-terminated */
	/* private */
	bool after_cr;
	bool bad;                 /* the line holds a NUL or a bare CR */
	bool dead;
	bool ready;
};

void pop3_parser_init(struct pop3_parser *p, size_t max_line);
void pop3_parser_deinit(struct pop3_parser *p);
/* A new limit (larger during a SASL exchange); from the next line. */
void pop3_parser_set_max_line(struct pop3_parser *p, size_t max_line);
/* Consumes bytes up to and including the end of one line; sets *used_r.
 * After LINE the line stays in p->line until the next feed. */
enum pop3_parse_result pop3_parser_feed(struct pop3_parser *p, const void *data, size_t len,
					size_t *used_r) PETREL_MUST_CHECK;

enum pop3_cmd {
	POP3_CMD_UNKNOWN,
	POP3_CMD_USER, POP3_CMD_PASS, POP3_CMD_APOP, POP3_CMD_AUTH, POP3_CMD_STLS,
	POP3_CMD_CAPA, POP3_CMD_QUIT, POP3_CMD_STAT, POP3_CMD_LIST, POP3_CMD_RETR,
	POP3_CMD_DELE, POP3_CMD_NOOP, POP3_CMD_RSET, POP3_CMD_TOP, POP3_CMD_UIDL,
	POP3_CMD_UTF8,
};

struct pop3_command {
	enum pop3_cmd id;
	char keyword[POP3_MAX_KEYWORD + 1];   /* upper case */
	size_t argc;
	const char *argv[POP3_MAX_ARGS];      /* point into the line (NULs written) */
	/* The text after the keyword and one space, untouched: PASS takes
	 * the rest of the line, spaces included (RFC 1939 allows clients to
	 * send passwords with spaces; most servers take the whole rest). */
	const char *rest;
	size_t rest_len;
	bool too_many_args;
};

/* Splits line (modified in place: NULs replace the spaces) into a keyword
 * and arguments separated by single spaces.  Returns 0, or -1 for an empty
 * line, a keyword that is not 1..4 letters, an empty argument (two
 * spaces), or 8-bit bytes outside the arguments of USER, PASS and APOP.
 * More than POP3_MAX_ARGS arguments sets too_many_args (the commands
 * refuse them; PASS does not look). */
int pop3_command_parse(char *line, size_t len, struct pop3_command *cmd_r) PETREL_MUST_CHECK;

/* Parses a message number argument: 1..4294967295, digits only.
 * Returns 0 or -1. */
int pop3_parse_number(const char *s, uint32_t *n_r) PETREL_MUST_CHECK;

/*
 * The multi-line response encoder: message bytes in (any chunks), the
 * response body out.  Lines beginning with "." get one more (RFC 1939
 * section 3), whatever chunk boundary falls before or after the dot; a
 * bare LF becomes CRLF; the response always ends with CRLF "." CRLF, the
 * last line of the message being completed when it has no line end.  In
 * TOP mode only the header, the empty line and top_lines body lines are
 * sent.
 */
struct pop3_stuffer {
	bool line_start;          /* the next byte begins a line */
	bool prev_cr;             /* the last byte written was a CR */
	bool in_body;
	bool line_empty;          /* the current line has no byte yet but maybe CR */
	bool top;
	uint64_t lines_left;      /* TOP: body lines still to send */
	bool done;                /* TOP reached its count: the rest is dropped */
};

void pop3_stuffer_init(struct pop3_stuffer *st, bool top, uint64_t top_lines);
/* Encodes len bytes of the message into out.  Returns 0, or -1 when out is
 * full (it then holds part of the encoding: use a big enough out). */
int pop3_stuffer_add(struct pop3_stuffer *st, const void *data, size_t len, struct buf *out)
	PETREL_MUST_CHECK;
/* Ends the response: completes the last line and appends ".\r\n". */
int pop3_stuffer_finish(struct pop3_stuffer *st, struct buf *out) PETREL_MUST_CHECK;
/* True when TOP needs no more input. */
bool pop3_stuffer_done(const struct pop3_stuffer *st);

#endif
