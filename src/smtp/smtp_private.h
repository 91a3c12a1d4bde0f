/*
 * Inside the SMTP server: limits, the pure parsers (smtp_parse.c), the
 * session (smtp_session.c), the command handlers (smtp_cmds.c), relay
 * policy (smtp_relay.c) and the per-IP limits (smtp_limits.c).
 *
 * The parsers are pure functions over bytes: no sockets, no libevent, no
 * logging, no globals.  The session calls them; the unit tests
 * (tests/unit/smtp) and the fuzzers (fuzz/fuzz_smtp_*.c) call them too.
 *
 * Replies: a parser that refuses its input says why with a complete
 * static reply line without CRLF ("501 5.5.4 Syntax: ..."), so that the
 * session sends it as it is and the tests can check the code.  Every
 * reply carries an RFC 3463 enhanced status code.
 */
#ifndef PETREL_SMTP_PRIVATE_H
#define PETREL_SMTP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/xmalloc.h"

/* ---- limits (each with its reason; settings override where noted) ---- */

/* RFC 5321 4.5.3.1.3: a path is at most 256 octets, brackets included. */
#define SMTP_MAX_PATH 256
/* RFC 5321 4.5.3.1.1 / 4.5.3.1.2. */
#define SMTP_MAX_LOCAL_PART 64
#define SMTP_MAX_DOMAIN 255
/* RFC 4954 4: an AUTH command line or SASL response line may be 12288
 * octets, CRLF included (smtp/max-command-line applies to the others). */
#define SMTP_MAX_AUTH_LINE 12288
/* Most ESMTP parameters on one MAIL or RCPT: we know 6 for MAIL and 2 for
 * RCPT; more can only be duplicates or junk (Exim CVE-2020-28022 class). */
#define SMTP_MAX_PARAMS 16
/* RFC 3461 4.4: ENVID at most 100 characters. */
#define SMTP_MAX_ENVID 100
/* RFC 3461 4.2: ORCPT at most 500 characters. */
#define SMTP_MAX_ORCPT 500
/* AUTH= of MAIL (RFC 4954 5): an address. */
#define SMTP_MAX_AUTH_PARAM 512
/* EHLO/HELO argument: a domain (255) or an address literal. */
#define SMTP_MAX_HELO 255
/* Longest verb we look at. */
#define SMTP_MAX_VERB 16
/* SIZE= digits: 20 hold any uint64_t; more is junk. */
#define SMTP_MAX_SIZE_DIGITS 20

/* ---- commands ---- */

enum smtp_cmd_id {
	SMTP_CMD_UNKNOWN,
	SMTP_CMD_HELO,
	SMTP_CMD_EHLO,
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_BDAT,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_VRFY,
	SMTP_CMD_EXPN,
	SMTP_CMD_HELP,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH,
	/* Not SMTP: a web client or proxy talking to the mail port (Postfix
	 * smtpd_forbidden_commands); answered with 221 and a close. */
	SMTP_CMD_FORBIDDEN,
	SMTP_CMD_COUNT
};

struct smtp_command {
	enum smtp_cmd_id id;
	const char *args;         /* into the line: after the verb and one space; "" when none */
	size_t args_len;
};

/* Splits a command line (without its CRLF) into verb and arguments.
 * Never fails: an unknown or malformed verb gives SMTP_CMD_UNKNOWN.  The
 * caller has already refused NUL, CR and LF in the line
 * (smtp_check_line); args points into line. */
void smtp_parse_command(const char *line, size_t len, struct smtp_command *cmd_r);

/* Checks a command line (without CRLF) for bytes no command may hold: NUL,
 * CR, LF (HOSTILE-INPUT 2, 14).  Returns 0, or -1 with *error_r a reply. */
int smtp_check_line(const char *line, size_t len, const char **error_r) PETREL_MUST_CHECK;

/* Name of a command for logs ("MAIL"); "UNKNOWN" for others. */
const char *smtp_cmd_name(enum smtp_cmd_id id);

/* ---- paths ---- */

struct smtp_path {
	char address[SMTP_MAX_PATH];  /* "local@domain", source route dropped; "" for <> */
	size_t len;
	bool null;                /* <> */
	bool postmaster;          /* RCPT TO:<postmaster> (RFC 5321 4.5.1), address "postmaster" */
	bool utf8;                /* has non-ASCII (needs SMTPUTF8) */
	size_t at;                /* offset of the '@' in address (0 for null/postmaster) */
};

/* Parses "<path>" at the start of s[0..len), allowing "<>" (MAIL) and/or
 * "<postmaster>" (RCPT) as flagged.  UTF-8 in the local part and domain
 * is accepted when well formed (SMTPUTF8 is checked by the caller once the
 * parameters are known: path->utf8).  On success *used_r is the length of
 * the path including its brackets.  Returns 0, or -1 with *error_r. */
int smtp_parse_path(const char *s, size_t len, bool allow_null, bool allow_postmaster,
		    struct smtp_path *path_r, size_t *used_r, const char **error_r) PETREL_MUST_CHECK;

/* True when s[0..len) is a domain (RFC 5321 Domain; U-labels when utf8)
 * or an address literal ([IPv4], [IPv6:...], [tag:text]). */
bool smtp_valid_domain(const char *s, size_t len, bool utf8);
bool smtp_valid_address_literal(const char *s, size_t len);

/* EHLO/HELO argument: a domain or an address literal; for interoperability
 * any 1..255 printable ASCII characters without spaces are accepted (RFC
 * 5321 4.1.4: a server must not refuse mail for a bad EHLO name).
 * Returns 0, or -1 with *error_r. */
int smtp_parse_helo(const char *args, size_t len, const char **error_r) PETREL_MUST_CHECK;

/* ---- ESMTP parameters ---- */

enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_ret { SMTP_RET_NONE, SMTP_RET_FULL, SMTP_RET_HDRS };

struct smtp_mail_params {
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	bool has_envid;
	char envid[SMTP_MAX_ENVID + 1];   /* decoded xtext, printable ASCII */
	bool has_auth;
	char auth[SMTP_MAX_AUTH_PARAM + 1];   /* decoded; "<>" allowed */
};

#define SMTP_NOTIFY_NEVER   0x01u
#define SMTP_NOTIFY_SUCCESS 0x02u
#define SMTP_NOTIFY_FAILURE 0x04u
#define SMTP_NOTIFY_DELAY   0x08u

struct smtp_rcpt_params {
	unsigned notify;          /* SMTP_NOTIFY_*; 0 when not given */
	bool has_orcpt;
	char orcpt[SMTP_MAX_ORCPT + 1];   /* "rfc822;user@example.com", decoded */
};

/* Parses MAIL FROM arguments: "FROM:<path> params".  args is what follows
 * the verb.  esmtp: the session said EHLO (parameters allowed).  Returns
 * 0, or -1 with *error_r (501 syntax, 555 unknown or unsupported
 * parameter, 553 bad address). */
int smtp_parse_mail(const char *args, size_t len, bool esmtp, struct smtp_path *path_r,
		    struct smtp_mail_params *params_r, const char **error_r) PETREL_MUST_CHECK;
/* The same for RCPT TO. */
int smtp_parse_rcpt(const char *args, size_t len, bool esmtp, struct smtp_path *path_r,
		    struct smtp_rcpt_params *params_r, const char **error_r) PETREL_MUST_CHECK;

/* RFC 3461 4: decodes xtext into out (out_size bytes, NUL-terminated).
 * Strict: xchar is '!'..'~' except '+' and '='; "+XX" with two upper-case
 * hex digits.  Refuses (-1) malformed text, a result that does not fit,
 * and decoded control characters (NUL, CR, LF, any < 0x20, DEL): such
 * bytes have no business in an envelope id or an original recipient, and
 * keeping them out keeps the spool's records intact (Exim CVE-2020-28026).
 * Returns 0 and *out_len_r, or -1. */
int smtp_xtext_decode(const char *in, size_t len, char *out, size_t out_size, size_t *out_len_r)
	PETREL_MUST_CHECK;
/* Encodes bytes as xtext into out (capped buffer).  Returns buf_append's. */
int smtp_xtext_encode(struct buf *out, const char *in, size_t len) PETREL_MUST_CHECK;

/* BDAT arguments: "SIZE [LAST]".  Returns 0, or -1 with *error_r. */
int smtp_parse_bdat(const char *args, size_t len, uint64_t *size_r, bool *last_r,
		    const char **error_r) PETREL_MUST_CHECK;

/* AUTH arguments: "MECH [initial-response]".  *mech_r and *initial_r point
 * into args (initial NULL when none).  Returns 0, or -1 with *error_r. */
int smtp_parse_auth(const char *args, size_t len, const char **mech_r, size_t *mech_len_r,
		    const char **initial_r, size_t *initial_len_r, const char **error_r)
	PETREL_MUST_CHECK;

/* ---- message data ---- */

enum smtp_data_mode {
	SMTP_DATA_DOT,            /* DATA: dot-stuffed, ends at CRLF.CRLF */
	SMTP_DATA_RAW,            /* BDAT: counted chunks, no dots */
};

enum smtp_bare_policy { SMTP_BARE_NORMALIZE, SMTP_BARE_REJECT };

/*
 * The message data state machine: un-dot-stuffs (DATA), finds the end
 * (DATA: only CRLF.CRLF, RFC 5321 4.1.1.4; SMTP smuggling, CVE-2023-51764:
 * "\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n" are content, never the end),
 * turns bare LF and bare CR into CRLF (both policies: what is stored is
 * always CRLF text; with SMTP_BARE_REJECT the message is marked bare and
 * the session refuses it), and measures the header section and the longest
 * line.  Incremental: any split of the input into chunks gives the same
 * output and the same result as one chunk (HOSTILE-INPUT 21).
 */
struct smtp_data_parser {
	enum smtp_data_mode mode;
	int state;                /* private */
	bool prev_crlf;           /* the last line ended with a real CRLF (or start) */
	bool in_header;           /* still in the header section */
	bool ended;               /* DOT: the terminator was seen */
	bool bare;                /* a bare CR or LF was seen (and normalized) */
	uint64_t out_bytes;       /* bytes produced (the message size) */
	uint64_t header_bytes;    /* bytes of the header section, its lines' CRLF included */
	uint64_t line_len;        /* current output line, without CRLF */
	uint64_t max_line;        /* longest output line seen, without CRLF */
	uint64_t lines;
};

void smtp_data_init(struct smtp_data_parser *p, enum smtp_data_mode mode);

/* Feeds in[0..len).  Output bytes are appended to out; out must have room
 * for 2 * len + 3 bytes more (normalizing a bare CR or LF adds a byte; a
 * pending "." or CR may be flushed): the function panics otherwise (our
 * bug, not input).  Returns the number of input bytes consumed: all of
 * them, except in DOT mode when the terminator ends the data, where the
 * count stops right after its LF (the rest belongs to the next command). */
size_t smtp_data_feed(struct smtp_data_parser *p, const char *in, size_t len, struct buf *out);

/* RAW mode at the end of the last chunk: flushes a pending CR (as bare)
 * and ends an unterminated last line with CRLF, so that what is stored is
 * CRLF text.  Appends at most 3 bytes. */
void smtp_data_finish(struct smtp_data_parser *p, struct buf *out);

/* ---- limits (smtp_limits.c) ---- */

/* smtp/authenticated-exempt words. */
#define SMTP_EXEMPT_MESSAGE_RATE       0x01u
#define SMTP_EXEMPT_RECIPIENTS         0x02u
#define SMTP_EXEMPT_UNKNOWN_RECIPIENTS 0x04u
#define SMTP_EXEMPT_FAILED_COMMANDS    0x08u

/* The SMTP_EXEMPT_* flags of a smtp/authenticated-exempt value (the
 * config parser has validated it; unknown words are ignored). */
unsigned smtp_exempt_parse(const char *value);

/* Per-IP message counts in fixed one-hour windows (smtp/max-messages-
 * per-hour).  IPv6 clients are counted per /64.  Memory is bounded: at
 * most max_entries addresses are tracked; when the table is full, expired
 * windows are swept, and if none expired the new address is not counted
 * (fail open: a flood of addresses must not block the others).
 * Thread-safe. */
struct smtp_rate;
typedef int64_t smtp_clock_fn(void);  /* seconds, monotonic */
struct smtp_rate *smtp_rate_new(size_t max_entries, smtp_clock_fn *clock);
void smtp_rate_free(struct smtp_rate **rate);
/* True when ip has sent fewer than max messages in its current window
 * (max 0: no limit). */
bool smtp_rate_allowed(struct smtp_rate *rate, const char *ip, uint64_t max);
/* Counts one accepted message from ip. */
void smtp_rate_count(struct smtp_rate *rate, const char *ip);
/* Messages counted for ip in its current window. */
uint64_t smtp_rate_get(struct smtp_rate *rate, const char *ip);
size_t smtp_rate_entries(struct smtp_rate *rate);

/* Concurrent SMTP connections per IP (smtp/max-connections-per-ip), over
 * the three SMTP services.  Thread-safe. */
bool smtp_conn_acquire(const char *ip, unsigned max);
void smtp_conn_release(const char *ip);

/* ---- sender domain check (smtp_dns.c) ---- */

/* Blocking (run it on the worker pool): 1 when domain has an MX, A or
 * AAAA record, 0 when it has none (NXDOMAIN, no records, or a null MX),
 * -1 when the DNS did not answer.  server: queue/dns-server ("system" or
 * a c-ares server list). */
int smtp_dns_domain_check(const char *server, const char *domain);

/* ---- relay policy (smtp_relay.c) ---- */

struct cfg;
struct directory;

enum smtp_relay {
	SMTP_RELAY_DENIED,
	SMTP_RELAY_AUTHENTICATED,   /* SMTP AUTH */
	SMTP_RELAY_NETWORK,         /* smtp <relay-networks> */
	SMTP_RELAY_POP_BEFORE_SMTP,
};

/* May a client at ip (authenticated or not) send to a domain that is not
 * ours?  Loopback is not special: it relays only when listed. */
enum smtp_relay smtp_relay_check(const struct cfg *cfg, const char *ip, bool authenticated);
const char *smtp_relay_str(enum smtp_relay relay);

/* Submission sender check: is sender (an envelope address) one that the
 * authenticated user identity (name@domain, lower case) may use?  Its
 * own address, its extra addresses, an alias or group that leads to it,
 * and a mailing list it moderates.  Case-insensitive, alias domains work.
 * The null sender is allowed (bounces and notifications). */
bool smtp_sender_owned(const struct directory *dir, const char *identity, const char *sender);

/* ---- the session (smtp_session.c, smtp_cmds.c) ---- */

struct conn;
struct queue_writer;
struct auth_session;
struct event;
struct smtp_rate;

enum smtp_state {
	SMTP_STATE_GREETING,      /* greeting delay running: any input is an early talker */
	SMTP_STATE_COMMAND,       /* reading command lines */
	SMTP_STATE_DATA,          /* reading DATA until CRLF.CRLF */
	SMTP_STATE_BDAT,          /* reading the octets of a BDAT chunk */
	SMTP_STATE_AUTH,          /* reading a SASL response line */
	SMTP_STATE_BUSY,          /* waiting for the worker pool or a timer; input waits */
	SMTP_STATE_STARTTLS,      /* "220" queued: wrap in TLS once it is written */
	SMTP_STATE_CLOSING,       /* last reply queued: close once it is written */
};

/* Session flags (SMTP_SF_*). */
#define SMTP_SF_ESMTP      0x0001u   /* EHLO (not HELO) */
#define SMTP_SF_STOPPING   0x0002u   /* the engine stops: close when idle */
#define SMTP_SF_CONN_LIMIT 0x0004u   /* holds a smtp_conn_acquire count */
#define SMTP_SF_JOB        0x0008u   /* a worker job refers to this session */
#define SMTP_SF_EOF        0x0010u   /* the client shut its side: finish, then close */

struct smtp_rcpt {
	char *address;
	char *orcpt;              /* NULL when not given */
	unsigned notify;
	bool local;
};

struct smtp_session {
	struct conn *conn;
	enum smtp_state state;
	unsigned flags;
	char *helo;               /* EHLO/HELO argument; NULL before it */
	char *auth_user;          /* authorized identity after AUTH */
	unsigned exempt;          /* SMTP_EXEMPT_* from the settings */

	/* the mail transaction */
	bool in_mail;
	struct smtp_path sender;
	struct smtp_mail_params mail;
	struct smtp_rcpt *rcpts;
	size_t rcpt_count, rcpt_alloc;
	uint64_t rcpt_accepted;   /* RCPT commands accepted, duplicates included */
	bool rcpt_limit_logged;
	bool bdat_txn;            /* BDAT used in this transaction */
	bool bdat_failed;         /* a BDAT chunk failed: discard the rest */
	bool bdat_last;
	uint64_t bdat_remaining;  /* octets of the current chunk still to read */
	struct smtp_data_parser data;
	struct queue_writer *writer;
	uint64_t received_len;    /* bytes of our Received: header */
	const char *data_error;   /* the refusal to send at the end of the data */
	const char *bdat_error;   /* the reply of a BDAT chunk refused before it was read */
	uint64_t discarded;       /* bytes read and thrown away after a refusal */
	struct buf chunk;         /* parser output before it goes to the writer */
	struct buf line;          /* the current command line */

	/* counters */
	unsigned failed_commands, unknown_rcpts, junk_commands;
	uint64_t messages;

	/* SASL (smtp_auth.c); NULL before the first AUTH and while a
	 * worker job owns it */
	struct auth_session *sasl;
	char *pending_reply;      /* a reply held back by a failure delay */

	struct event *timer;      /* greeting delay, failure delays, closing */
};

/* smtp_session.c */
extern struct smtp_globals {
	struct net *net;
	struct worker_pool *const *workers;
	struct smtp_rate *rate;
} smtp_globals;

/* Queues one reply line (CRLF added). */
void smtp_reply(struct smtp_session *s, const char *fmt, ...) PETREL_PRINTF(2, 3);
/* Queues a complete reply line (CRLF added) as it is. */
void smtp_reply_line(struct smtp_session *s, const char *line);
/* Replies, counts a failed command and closes at the limit. */
void smtp_reply_error(struct smtp_session *s, const char *line);
/* Queues a last reply and closes the connection once it is written. */
void smtp_close_with(struct smtp_session *s, const char *line);
/* Ends the mail transaction (aborting an uncommitted message). */
void smtp_txn_reset(struct smtp_session *s);
/* Forgets what the client said before STARTTLS (RFC 3207 4.2). */
void smtp_session_reset(struct smtp_session *s);
/* Dispatches one command line (without CRLF). */
void smtp_dispatch(struct smtp_session *s, const char *line, size_t len);
/* Starts DATA/BDAT storage: writer and Received: header.  Returns 0, or
 * -1 with *error_r a reply. */
int smtp_message_begin(struct smtp_session *s, const char **error_r);
/* At the end of a BDAT chunk's octets: reply, or end the message. */
void smtp_bdat_chunk_end(struct smtp_session *s);
/* After the end of DATA or the last BDAT chunk: refuse or commit. */
void smtp_message_end(struct smtp_session *s);
/* smtp_auth.c: AUTH (RFC 4954) through the SASL engine.  smtp_do_auth
 * handles the command, smtp_auth_response a response line in
 * SMTP_STATE_AUTH; both run the engine on the worker pool. */
void smtp_do_auth(struct smtp_session *s, const char *args, size_t len);
void smtp_auth_response(struct smtp_session *s, const char *line, size_t len);
/* The mechanisms to announce in EHLO ("" for none); caller frees. */
char *smtp_auth_mechanisms(const struct smtp_session *s);
void smtp_sasl_free(struct auth_session **sasl);
/* Sends a reply after delay_ms (0: now), then continues with input. */
void smtp_reply_delayed(struct smtp_session *s, const char *line, int64_t delay_ms);
/* Processes buffered input as far as the state allows. */
void smtp_process_input(struct smtp_session *s);
/* True when the session is a submission session (AUTH required). */
bool smtp_is_submission(const struct smtp_session *s);
/* Escaped, bounded copy of client text for logs (caller frees). */
char *smtp_log_text(const char *text, size_t len);

#endif
