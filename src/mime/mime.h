/*
 * MIME glue: GMime behind our limits.
 *
 * Two layers, both pure functions over a buffer (no I/O, no logging, no
 * globals except GMime's one-time initialisation), so that they are unit
 * tested and fuzzed on their own (STYLE.md §8):
 *
 *  - mime_scan() walks the structure of a message: header blocks, multipart
 *    boundaries, message/rfc822 parts.  It is our own code, iterative, with
 *    an explicit stack bounded by MIME_MAX_DEPTH and a part count bounded by
 *    MIME_MAX_PARTS, because GMime's parser recurses once per nesting level
 *    (Dovecot CVE-2020-12100 is the class) and re-parses every address
 *    header each time one is added (Dovecot CVE-2024-23184).  It yields byte
 *    offsets of every part, which is what IMAP BODY[section] needs, and the
 *    first occurrence of the header fields we care about.
 *
 *  - mime_summarize() builds what the store caches at delivery: IMAP
 *    ENVELOPE, BODYSTRUCTURE and BODY, sort and thread keys, decoded
 *    addresses for search, a preview, and the text of text parts for the
 *    full-text index.  GMime parses each header value we give it (addresses,
 *    RFC 2047 words, RFC 2231 parameters, dates, message ids) and decodes
 *    base64/quoted-printable and charsets; every value is capped before it
 *    reaches GMime.
 *
 * Thread safety: all functions may be called from any thread at the same
 * time; mime_init() runs GMime's initialisation once (it is called by the
 * functions below that need it, and may be called early by main()).
 *
 * Limits (HOSTILE-INPUT.md rows 10-15).  Past a limit the message is never
 * rejected here: the structure is cut in the same way Dovecot does it, and
 * the rest is kept as content, so every message still has a valid
 * BODYSTRUCTURE and the mailbox still opens.
 */
#ifndef PETREL_MIME_H
#define PETREL_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/xmalloc.h"

/* Nesting of multipart and message/rfc822 parts.  Deeper containers are
 * shown as application/octet-stream leaves (Dovecot: 100; CVE-2020-12100).
 * The default of the setting store/mime-max-depth; the scanner's explicit
 * stack has room for MIME_MAX_DEPTH_CEILING, the most the setting allows. */
#define MIME_MAX_DEPTH 64
#define MIME_MAX_DEPTH_CEILING 256
/* Parts per message; past it boundaries are no longer split and the rest
 * is the body of the last part (Dovecot: 10000; CVE-2020-25275). */
#define MIME_MAX_PARTS 10000
/* Bytes of one header block searched for fields; the block may be longer
 * (its size is still exact), fields past this are not seen
 * (Dovecot CVE-2024-23185, Exim CVE-2020-28020). */
#define MIME_MAX_HEADER_SCAN (1024 * 1024)
/* Bytes of one unfolded field value handed to GMime (200k folded lines). */
#define MIME_MAX_FIELD_VALUE (64 * 1024)
/* Bytes of a Content-Type or Content-Disposition value parsed: bounds an
 * RFC 2231 continuation flood (Dovecot CVE-2026-27859). */
#define MIME_MAX_PARAM_VALUE (8 * 1024)
/* Parameters shown per part in BODYSTRUCTURE, and bytes of each value. */
#define MIME_MAX_PARAMS 32
#define MIME_MAX_PARAM_LEN 1024
/* ':' characters of one address field handed to GMime: its address parser
 * recurses once per nested group ("a:a:a:...": stack overflow). */
#define MIME_MAX_ADDRESS_COLONS 64
/* Addresses (group markers included) per ENVELOPE field. */
#define MIME_MAX_ADDRESSES 1000
/* Longest boundary we honour (RFC 2046 allows 70). */
#define MIME_MAX_BOUNDARY 200
/* Bytes of decoded text extracted for full-text search per message. */
#define MIME_MAX_TEXT (1024 * 1024)
/* Characters of the preview (RFC 8970 allows up to 256). */
#define MIME_PREVIEW_CHARS 200
/* Selected header fields cached per message; past this nothing is cached
 * and FETCH reads the file. */
#define MIME_MAX_CACHED_HEADERS (8 * 1024)

struct mime_limits {
	unsigned max_depth;
	unsigned max_parts;
	size_t max_header_scan;
	size_t max_field_value;
	size_t max_param_value;
	unsigned max_addresses;
	size_t max_text;
};

/* Fills l with the process's limits: the MIME_MAX_* constants, or what
 * mime_limits_set_default() set.  Every scan of one message must use the
 * same structural limits (the store's cached BODYSTRUCTURE and the IMAP
 * server's BODY[section] scan number parts alike), so they are process-wide
 * settings read once at startup. */
void mime_limits_default(struct mime_limits *l);
/* Sets the process's limits (petreld at startup, before any thread scans;
 * not safe to call while others scan).  max_depth is capped at
 * MIME_MAX_DEPTH_CEILING; zero values keep the constants. */
void mime_limits_set_default(const struct mime_limits *l);

/* Runs GMime's global initialisation once (thread-safe, idempotent). */
void mime_init(void);

/* Header fields the scanner records (first occurrence and a count). */
enum mime_field {
	MIME_F_CONTENT_TYPE,
	MIME_F_CONTENT_TRANSFER_ENCODING,
	MIME_F_CONTENT_DISPOSITION,
	MIME_F_CONTENT_ID,
	MIME_F_CONTENT_DESCRIPTION,
	MIME_F_CONTENT_LANGUAGE,
	MIME_F_CONTENT_LOCATION,
	MIME_F_CONTENT_MD5,
	MIME_F_DATE,
	MIME_F_SUBJECT,
	MIME_F_FROM,
	MIME_F_SENDER,
	MIME_F_REPLY_TO,
	MIME_F_TO,
	MIME_F_CC,
	MIME_F_BCC,
	MIME_F_IN_REPLY_TO,
	MIME_F_MESSAGE_ID,
	MIME_F_REFERENCES,
	MIME_F_X_PRIORITY,
	MIME_F_IMPORTANCE,
	MIME_F_PRIORITY,
	MIME_F_LIST_ID,
	MIME_F_COUNT
};

/* Canonical spelling of a field name ("Content-Type"). */
const char *mime_field_name(enum mime_field f);

enum mime_kind {
	MIME_KIND_LEAF,
	MIME_KIND_MULTIPART,
	MIME_KIND_MESSAGE       /* message/rfc822 or message/global: one child */
};

/* Part flags */
#define MIME_PF_MESSAGE_ROOT 0x01  /* its header is a message header (root, or child of MESSAGE) */
#define MIME_PF_CUT_DEPTH    0x02  /* container shown as a leaf: MIME_MAX_DEPTH */
#define MIME_PF_CUT_PARTS    0x04  /* children past MIME_MAX_PARTS are in the last part's body */
#define MIME_PF_NO_BOUNDARY  0x08  /* multipart without a usable boundary: a leaf */
#define MIME_PF_NO_HEADER_END 0x10 /* header block ended without an empty line */

struct mime_slice {
	size_t start;             /* of the field name */
	size_t off;               /* of the value, just after the colon */
	size_t len;               /* 0 and off 0 when absent */
};

struct mime_part {
	uint32_t parent;          /* index in mime_message.parts; UINT32_MAX for the root */
	uint32_t children;        /* direct children */
	uint16_t depth;           /* root 0 */
	uint8_t kind;             /* enum mime_kind */
	uint8_t flags;            /* MIME_PF_* */
	size_t hdr_start;         /* header block: [hdr_start, body_start) incl. the empty line */
	size_t body_start;
	size_t body_end;          /* body: [body_start, body_end) */
	size_t body_lines;        /* lines of the body (IMAP body-fld-lines) */
	char type[64];            /* lower case media type, "text" when absent */
	char subtype[64];         /* lower case subtype, "plain" when absent */
	char boundary[MIME_MAX_BOUNDARY + 1]; /* multipart only */
	struct mime_slice fields[MIME_F_COUNT];
	uint8_t field_count[MIME_F_COUNT]; /* occurrences seen, capped at 255 */
};

/* A scanned message.  Parts are in pre-order (IMAP section order): a
 * part's children follow it, each child's subtree before the next child. */
struct mime_message {
	const char *data;         /* borrowed: the buffer given to mime_scan */
	size_t len;
	struct mime_part *parts;  /* owned */
	size_t count;             /* >= 1 */
	bool cut_depth, cut_parts;
};

/* Scans data (any bytes; CRLF or LF line ends).  Never fails and never
 * allocates more than O(count) parts.  msg borrows data, which must outlive
 * it; free with mime_message_deinit. */
void mime_scan(const char *data, size_t len, const struct mime_limits *limits,
	       struct mime_message *msg_r);
void mime_message_deinit(struct mime_message *msg);

/* Unfolds a field value (removes CR/LF, NUL becomes a space), trims
 * white space at both ends, and keeps at most max bytes of the result.
 * Returns a newly allocated string. */
char *mime_field_value(const struct mime_message *msg, const struct mime_part *part,
		       enum mime_field f, size_t max);

/* Finds the part of an IMAP section number ("1.2.3" given as {1,2,3}):
 * the rules of RFC 3501 6.4.5, including that the parts of a
 * message/rfc822 part are those of its embedded message and that "1" of a
 * non-multipart message is its body.  Returns the index, or -1. */
long mime_section_find(const struct mime_message *msg, const uint32_t *path, size_t depth);

/* What the store caches for a message (all strings newly allocated, NUL
 * terminated, UTF-8 where decoded; NULL when absent). */
struct mime_summary {
	char *envelope;           /* IMAP ENVELOPE, "(...)" */
	char *bodystructure;      /* IMAP BODYSTRUCTURE with extension data */
	char *body;               /* IMAP BODY (no extension data) */
	char *headers;            /* selected raw fields, "Name: value\r\n"...; NULL if
				   * over MIME_MAX_CACHED_HEADERS or a field repeats */
	char *message_id;         /* "<id>" */
	char *in_reply_to;        /* "<id>" (first) */
	char *references;         /* "<a> <b> ..." (at most 100) */
	char *subject;            /* decoded */
	char *base_subject;       /* RFC 5256 base subject */
	char *from, *to, *cc, *bcc;  /* decoded "Name <a@b>, ..." for search */
	char *sort_from, *sort_to, *sort_cc;  /* RFC 5256: first addr-mailbox, lower case */
	char *display_from, *display_to;      /* RFC 5957 */
	char *preview;            /* RFC 8970, at most MIME_PREVIEW_CHARS characters */
	int64_t sent_date;        /* unix seconds of Date:, 0 when missing or invalid */
	int sent_tz;              /* its offset, minutes east of UTC */
	size_t header_size;       /* bytes of the top header block */
	bool has_attachment;      /* a part with disposition attachment or a file name */
	bool cut;                 /* a structure limit was hit */
	struct buf text;          /* body and attachment text for search (want_text) */
	struct buf header_text;   /* subject and addresses for search (want_text) */
};

/* Scans and summarizes data.  want_text also fills text/header_text (at
 * most limits->max_text bytes).  Never fails; free with mime_summary_deinit. */
void mime_summarize(const char *data, size_t len, const struct mime_limits *limits,
		    bool want_text, struct mime_summary *sum_r);
void mime_summary_deinit(struct mime_summary *sum);

/* RFC 5256 section 2.1 base subject of a decoded subject; newly allocated. */
char *mime_base_subject(const char *subject);

/* Appends s as an IMAP string: NIL for NULL, a quoted string when it is
 * short 7-bit text, else a literal.  NUL bytes are dropped. */
void mime_imap_string(struct buf *out, const char *s, size_t len);

#endif
