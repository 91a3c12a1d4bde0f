/*
 * The IMAP command parser: pure and incremental (STYLE.md §8).
 *
 * Bytes go in, in pieces of any size; out comes, for each command, its tag,
 * its name and a flat array of arguments (atoms, quoted strings, literals,
 * and parenthesised lists), or an error to answer with BAD.  No socket,
 * event loop, logging or global: the session (imap_session.c) feeds it from
 * its input buffer, the unit tests and the fuzzer call it directly.
 *
 * Limits, each a bound on what one client can make us hold or compute:
 *   - max_line: bytes of command text outside literal data, over the
 *     whole command (a command that continues after a literal counts as one
 *     line).  Past it the parser fails fatally: the session answers BAD and
 *     closes (HOSTILE-INPUT row 1, Exim CVE-2019-16928 is the class).
 *   - max_literal: sum of the literal sizes of one command, and
 *     max_append: of the top-level literals of APPEND (the message; RFC
 *     7889 APPENDLIMIT).  A synchronizing literal over the limit is refused
 *     before any "+" is sent (RFC 7888 section 4, RFC 7889): the parser
 *     never allocates what the client merely announces (Stalwart
 *     CVE-2025-61600).  A non-synchronizing literal over the limit, whose
 *     bytes are already on their way, is fatal.  Sizes that do not fit the
 *     32-bit number of RFC 3501 ({4294967296}, {18446744073709551616}) or
 *     that are not numbers ({-1}) are syntax errors (HOSTILE-INPUT row 18).
 *   - literal_minus: LITERAL- (RFC 7888): non-synchronizing literals of
 *     more than 4096 bytes are fatal.
 *   - max_depth: list nesting.  The parser keeps its own bounded stack and
 *     never recurses; "(" past the limit is an error and the rest of the
 *     line is skipped without being stored (HOSTILE-INPUT row 19, Dovecot
 *     CVE-2026-27857).
 *
 * Bytes: NUL is refused in atoms and quoted strings (Dovecot CVE-2019-11500
 * was an out-of-bounds write from a NUL in a quoted string); a literal may
 * hold NUL, which is recorded (IMAP_AF_NUL) so that the accessors refuse it
 * where a string is expected (imap_arg_astring).  8-bit bytes are refused
 * in atoms, and in quoted strings unless utf8 (RFC 6855 UTF8=ACCEPT), where
 * they must then be valid UTF-8.  Lines end in CRLF; a bare LF is accepted
 * as a line end (as Dovecot does), a bare CR is an error.
 *
 * Grammar accepted, beyond RFC 3501/9051 section 9 tokens:
 *   - atoms take every CHAR except SP, CTL, "(", ")", "{" and '"': list
 *     wildcards, "]" and "\" (flags) included, so that sequence sets, LIST
 *     patterns and flags are atoms the commands parse further;
 *   - after BODY, BODY.PEEK, BINARY, BINARY.PEEK and BINARY.SIZE the atom
 *     continues through a "[...]" section, spaces and parentheses included
 *     ("BODY.PEEK[HEADER.FIELDS (From To)]<0.100>" is one atom), which the
 *     FETCH parser takes apart (imap_fetch_section_parse);
 *   - "~{n}" is a literal8 (RFC 3516 BINARY);
 *   - several spaces between arguments are accepted; an empty line is
 *     ignored.
 */
#ifndef PETREL_IMAP_PARSE_H
#define PETREL_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"
#include "core/xmalloc.h"

/* RFC 7888 section 4: LITERAL- allows non-synchronizing literals up to
 * this many bytes. */
#define IMAP_LITERAL_MINUS_MAX 4096
/* Longest command name ("UID" "FETCH" are two words; the longest name we
 * know is GETQUOTAROOT). */
#define IMAP_MAX_COMMAND_NAME 32
/* Digits of a literal size: 4294967295 has 10; leading zeros are legal,
 * but twenty digits is all we read before calling the number too big. */
#define IMAP_MAX_LITERAL_DIGITS 20

struct imap_parser_limits {
	size_t max_line;          /* command text outside literals */
	size_t max_literal;       /* sum of literal sizes (other than APPEND messages) */
	size_t max_append;        /* APPEND: sum of top-level literal sizes */
	unsigned max_depth;       /* list nesting, >= 1 */
	bool literal_minus;       /* LITERAL- instead of LITERAL+ */
	bool utf8;                /* UTF8=ACCEPT: UTF-8 in quoted strings */
};

enum imap_arg_type {
	IMAP_ARG_ATOM,
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,
	IMAP_ARG_LIST,
};

/* Argument flags */
#define IMAP_AF_NUL      0x01   /* literal data holds NUL bytes */
#define IMAP_AF_8BIT     0x02   /* bytes >= 0x80 */
#define IMAP_AF_LITERAL8 0x04   /* "~{n}" */
#define IMAP_AF_NONSYNC  0x08   /* "{n+}" */

/*
 * One argument.  The arguments of a command form a flat array in document
 * order: a list is followed by its elements (and theirs), and its end is
 * the index just past its last descendant.  For every argument, end is the
 * index of its next sibling, so walking siblings never recurses.
 */
struct imap_arg {
	uint8_t type;             /* enum imap_arg_type */
	uint8_t flags;            /* IMAP_AF_* */
	uint32_t end;             /* index of the next sibling */
	uint32_t count;           /* LIST: direct elements */
	size_t off;               /* data offset in the parser's buffer (not for LIST) */
	size_t len;               /* data length; the data is followed by a NUL */
};

enum imap_parse_result {
	IMAP_PARSE_MORE,          /* every byte given was consumed: feed more */
	IMAP_PARSE_COMMAND,       /* a command is complete: handle it, then imap_parser_reset */
	IMAP_PARSE_CONTINUE,      /* a synchronizing literal was announced (and is within
				   * the limits): send "+ ...", then imap_parser_literal_go;
				   * or refuse the command and imap_parser_literal_refuse */
	IMAP_PARSE_ERROR,         /* the command is bad: answer BAD (tag may be NULL: "*");
				   * the parser skips the rest of it by itself; when
				   * fatal, close the connection after the answer */
};

enum imap_parse_error {
	IMAP_PERR_NONE,
	IMAP_PERR_SYNTAX,         /* BAD */
	IMAP_PERR_TAG,            /* no valid tag: "* BAD" */
	IMAP_PERR_LINE_TOO_LONG,  /* fatal */
	IMAP_PERR_LITERAL_TOO_BIG,/* synchronizing: NO [TOOBIG] for APPEND, BAD otherwise */
	IMAP_PERR_NONSYNC_TOO_BIG,/* fatal: BAD [TOOBIG] then BYE */
	IMAP_PERR_DEPTH,          /* BAD: lists nested too deep */
	IMAP_PERR_NUL,            /* BAD: NUL byte */
	IMAP_PERR_8BIT,           /* BAD: 8-bit byte where not allowed */
};

enum imap_parser_state_id {
	IMAP_PS_LINE_START,
	IMAP_PS_TAG,
	IMAP_PS_NAME,
	IMAP_PS_ARG_START,
	IMAP_PS_AFTER_TOKEN,
	IMAP_PS_ATOM,
	IMAP_PS_BRACKET,
	IMAP_PS_QUOTED,
	IMAP_PS_QUOTED_ESC,
	IMAP_PS_LIT8_BRACE,
	IMAP_PS_LIT_SIZE,
	IMAP_PS_LIT_CLOSE,
	IMAP_PS_LIT_CR,
	IMAP_PS_LIT_LF,
	IMAP_PS_LIT_WAIT,
	IMAP_PS_LIT_DATA,
	IMAP_PS_CR,
	IMAP_PS_DONE,
	IMAP_PS_SKIP,
	IMAP_PS_SKIP_LITERAL,
	IMAP_PS_DEAD,
};

struct imap_parser {
	struct imap_parser_limits limits;
	enum imap_parser_state_id state;

	/* The command, valid after IMAP_PARSE_COMMAND (tag and name as soon
	 * as they are read, e.g. with an error: see imap_parser_tag). */
	char name[IMAP_MAX_COMMAND_NAME + 1]; /* upper case; "" until read */
	struct imap_arg *args;
	uint32_t nargs;
	struct buf data;          /* argument text, each followed by a NUL */

	/* The error, valid after IMAP_PARSE_ERROR. */
	enum imap_parse_error error;
	const char *error_text;   /* static, for the BAD line */
	bool fatal;

	/* private */
	size_t args_cap;
	uint32_t *stack;          /* open lists, max_depth entries */
	unsigned depth;
	size_t line_len;          /* text outside literal data, whole command */
	size_t tag_off;
	bool has_tag;
	size_t name_len;
	size_t literal_total;     /* announced literal bytes (other) */
	size_t append_total;      /* announced APPEND message bytes */
	uint64_t lit_size;
	unsigned lit_digits;
	uint8_t lit_flags;
	bool lit_nonsync;
	bool lit_append;          /* counts against max_append */
	uint64_t lit_left;
	uint32_t cur;             /* the argument being read */
	uint8_t utf8_need;        /* continuation bytes still expected */
	uint8_t utf8_first;       /* lead byte of the sequence in progress */
	uint8_t utf8_seen;        /* continuation bytes seen of it */
	unsigned bracket_parens;
	bool bracket_quoted;
	/* SKIP: recognises "{n}" / "{n+}" at the end of a skipped line */
	char skip_mark[IMAP_MAX_LITERAL_DIGITS + 4];
	unsigned skip_mark_len;
	bool skip_mark_done;
	uint64_t skip_left;
	bool after_cr;
};

/* Initialises a parser with copies of limits.  Free with _deinit. */
void imap_parser_init(struct imap_parser *p, const struct imap_parser_limits *limits);
void imap_parser_deinit(struct imap_parser *p);
/* New limits (after login, ENABLE UTF8=ACCEPT); take effect at the next
 * command. */
void imap_parser_set_limits(struct imap_parser *p, const struct imap_parser_limits *limits);

/*
 * Feeds len bytes.  Consumes what it can and sets *used_r; stops right
 * after a command is complete, a synchronizing literal is announced, or an
 * error is found, leaving the rest for the next call.  After COMMAND the
 * arguments stay valid until imap_parser_reset, which must be called before
 * feeding the next command.  After ERROR keep feeding: the rest of the bad
 * command (up to its line end, with any non-synchronizing literal in it) is
 * skipped, and parsing goes on with the next command.  After a fatal error
 * the parser consumes nothing more.
 */
enum imap_parse_result imap_parser_feed(struct imap_parser *p, const void *data, size_t len,
					size_t *used_r) PETREL_MUST_CHECK;
/* After COMMAND: forget the command (and release a large buffer). */
void imap_parser_reset(struct imap_parser *p);
/* After COMMAND: moves the argument data (literals included) out to
 * *data_r (the caller deinits it) without copying, for an APPEND message
 * that a job stores after the session moved on.  The arguments and the
 * tag are gone afterwards; call imap_parser_reset as usual. */
void imap_parser_take_data(struct imap_parser *p, struct buf *data_r);
/* After CONTINUE: the "+" was sent; literal bytes follow. */
void imap_parser_literal_go(struct imap_parser *p);
/* After CONTINUE: the command was refused; the client will not send the
 * literal.  The parser waits for the next command. */
void imap_parser_literal_refuse(struct imap_parser *p);
/* The tag of the command being parsed (or just parsed, or refused), or
 * NULL when none was read.  Borrowed until the next feed or reset. */
const char *imap_parser_tag(const struct imap_parser *p);
/* True when no command has started (nothing buffered). */
bool imap_parser_idle(const struct imap_parser *p);
/* The size of the literal announced by the last CONTINUE. */
uint64_t imap_parser_literal_size(const struct imap_parser *p);

/*
 * Arguments.  A cursor walks the siblings of one level: the command's
 * arguments (imap_args_top) or the elements of a list (imap_args_list).
 */
struct imap_args {
	const struct imap_parser *p;
	uint32_t i, end;
};

void imap_args_top(const struct imap_parser *p, struct imap_args *it_r);
/* Elements of arg, which must be a list. */
void imap_args_list(const struct imap_parser *p, const struct imap_arg *arg, struct imap_args *it_r);
/* The next argument, or NULL at the end of the level. */
const struct imap_arg *imap_args_next(struct imap_args *it);
/* Arguments left at this level. */
size_t imap_args_left(const struct imap_args *it);
/* The next argument without consuming it, or NULL. */
const struct imap_arg *imap_args_peek(const struct imap_args *it);

/* The text of an atom, quoted string or literal (NUL-terminated, borrowed
 * from the parser); NULL for a list. */
const char *imap_arg_text(const struct imap_parser *p, const struct imap_arg *arg);
/* True for an atom equal to word, ignoring ASCII case. */
bool imap_arg_atom_is(const struct imap_parser *p, const struct imap_arg *arg, const char *word);
bool imap_arg_is_nil(const struct imap_parser *p, const struct imap_arg *arg);
/* astring (RFC 3501): atom, quoted string or literal without NUL.  Returns
 * the text or NULL. */
const char *imap_arg_astring(const struct imap_parser *p, const struct imap_arg *arg,
			     size_t *len_r);
/* string: quoted or literal without NUL. */
const char *imap_arg_string(const struct imap_parser *p, const struct imap_arg *arg,
			    size_t *len_r);
/* nstring: NIL (returns true, *text_r NULL) or a string. */
bool imap_arg_nstring(const struct imap_parser *p, const struct imap_arg *arg,
		      const char **text_r, size_t *len_r);

/* Writes the command in a canonical form for tests: TAG NAME then each
 * argument: atoms as they are, quoted strings and literals as "..." with
 * \" \\ and \xNN escapes (literals prefixed L, literal8 L8), lists in ().
 * Returns 0 or -1 when out is full. */
int imap_parser_dump(const struct imap_parser *p, struct buf *out) PETREL_MUST_CHECK;

/*
 * Sequence sets (RFC 3501 sequence-set, RFC 5182 "$").
 */

/* "*" in a range: the largest number in use, resolved later.  Zero is
 * never a valid nz-number, so it cannot be confused with one. */
#define IMAP_SEQ_STAR 0

struct imap_seq_range {
	uint32_t lo, hi;          /* as written ("5:3" is stored 3..5); STAR for "*" */
};

struct imap_seqset {
	struct imap_seq_range *ranges;
	size_t count;
	bool dollar;              /* "$": the saved SEARCH result (RFC 5182) */
};

/* Parses a sequence set: nz-numbers (1..4294967295, no leading zero),
 * "*", ranges "a:b" in any order, separated by ","; or "$" alone when
 * allow_dollar.  Returns 0, or -1 for anything else (empty, "0", "1,",
 * ",1", "1::2", "4294967296").  Free with imap_seqset_free. */
int imap_seqset_parse(const char *s, size_t len, bool allow_dollar, struct imap_seqset *set_r)
	PETREL_MUST_CHECK;
void imap_seqset_free(struct imap_seqset *set);
/* Resolves STAR to star_value (0 for an empty mailbox: "*" then matches
 * nothing), orders and merges the ranges.  Returns the number kept. */
size_t imap_seqset_normalize(struct imap_seqset *set, uint32_t star_value);
/* True when n is in the (normalized) set. */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n);

/*
 * Dates.
 */

/* RFC 3501 date-time "dd-Mon-yyyy hh:mm:ss +zzzz" (day may be " d").
 * Returns 0 with unix seconds and the zone in minutes east of UTC. */
int imap_parse_datetime(const char *s, size_t len, int64_t *time_r, int *tz_r) PETREL_MUST_CHECK;
/* RFC 3501 date "d-Mon-yyyy" (search keys): unix seconds of 00:00 UTC of
 * that day. */
int imap_parse_date(const char *s, size_t len, int64_t *time_r) PETREL_MUST_CHECK;
/* Appends "dd-Mon-yyyy hh:mm:ss +zzzz" (with the quotes) for t in zone tz. */
int imap_format_datetime(struct buf *out, int64_t t, int tz) PETREL_MUST_CHECK;

/*
 * FETCH body sections (RFC 3501 6.4.5, RFC 3516).
 */

enum imap_section_kind {
	IMAP_SECTION_ALL,         /* BODY[] / BODY[1.2] */
	IMAP_SECTION_HEADER,      /* [HEADER] */
	IMAP_SECTION_HEADER_FIELDS,
	IMAP_SECTION_HEADER_FIELDS_NOT,
	IMAP_SECTION_TEXT,
	IMAP_SECTION_MIME,        /* only after a part number */
};

/* Most part numbers in a section ("1.2.3"), and header fields listed. */
#define IMAP_MAX_SECTION_PARTS 64
#define IMAP_MAX_SECTION_FIELDS 256

enum imap_fetch_body_type { IMAP_BODY, IMAP_BODY_PEEK, IMAP_BINARY, IMAP_BINARY_PEEK,
			    IMAP_BINARY_SIZE };

struct imap_section {
	enum imap_fetch_body_type type;
	enum imap_section_kind kind;
	uint32_t parts[IMAP_MAX_SECTION_PARTS];
	size_t nparts;
	char **fields;            /* HEADER.FIELDS[.NOT]: names, owned */
	size_t nfields;
	bool partial;             /* <offset.count> given */
	uint64_t offset, count;
	/* The section as it is echoed in the response, "BODY[HEADER.FIELDS
	 * (FROM TO)]<0>": names as sent, partial offset only.  Owned. */
	char *echo;
};

/* Parses one FETCH body item atom (BODY[...], BODY.PEEK[...]<o.n>,
 * BINARY[...], BINARY.PEEK[...], BINARY.SIZE[...]).  Returns 0 or -1 with
 * *error_r (static). */
int imap_section_parse(const char *atom, size_t len, struct imap_section *sec_r,
		       const char **error_r) PETREL_MUST_CHECK;
void imap_section_free(struct imap_section *sec);

/*
 * Modified UTF-7 mailbox names (RFC 3501 5.1.3) <-> UTF-8.
 */

/* Decodes a mailbox name as a client sends it.  Returns 0, or -1 when it
 * is not valid modified UTF-7 (bad base64, "&" unterminated, encoded
 * printable ASCII, a lone surrogate, 8-bit bytes). */
int imap_utf7_to_utf8(const char *in, size_t len, struct buf *out) PETREL_MUST_CHECK;
/* Encodes a UTF-8 name for a client without UTF8=ACCEPT.  Returns 0, or
 * -1 for invalid UTF-8. */
int imap_utf8_to_utf7(const char *in, size_t len, struct buf *out) PETREL_MUST_CHECK;
/* Strict UTF-8. */
bool imap_utf8_valid(const char *s, size_t len);

/*
 * Output helpers.
 */

/* Appends s as an astring/string the client can parse back: an atom is
 * never used (so that "NIL" stays a string); a quoted string when short
 * 7-bit text without CR/LF (8-bit allowed with utf8), else a literal. */
int imap_append_string(struct buf *out, const char *s, size_t len, bool utf8) PETREL_MUST_CHECK;
/* Appends NIL for NULL, else imap_append_string. */
int imap_append_nstring(struct buf *out, const char *s, size_t len, bool utf8) PETREL_MUST_CHECK;

#endif
