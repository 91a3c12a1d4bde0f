/*
 * Mailing lists and auto-replies at delivery time (docs/accounts.md,
 * "Mailing lists" and "Auto-reply"; docs/queue.md, "Mailing lists").
 *
 *   queue_msg.c        pure: header fields of a queued message, the list
 *                      headers and Reply-To rewrite, tokens, the text of
 *                      the messages we generate (confirmations, moderation
 *                      notices, auto-replies).  Unit-tested and fuzzed.
 *   queue_list.c       a recipient that is a list or a list command: the
 *                      posting policy, distribution as one new queued
 *                      message, moderation, subscription by mail.
 *   queue_autoreply.c  after delivery into a user's mailbox: the vacation
 *                      answer and the per-sender memory of it.
 *
 * State on disk, all under the store directory:
 *   lists/<list address>/pending/<TOKEN>       a subscription request
 *   lists/<list address>/held/<TOKEN>.eml      a post waiting for a moderator
 *   lists/<list address>/held/<TOKEN>.info     ... its record (the commit)
 *   lists/<list address>/answered/<HASH>       when an address was last answered
 *   autoreply/<user address>/<HASH>            when the user last answered a sender
 * Every file is written atomically (temp, fsync, rename, fsync dir).
 */
#ifndef PETREL_QUEUE_LIST_H
#define PETREL_QUEUE_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/xmalloc.h"

/* A token: 128 random bits in lower-case base32 (RFC 4648 alphabet),
 * without padding: 26 characters, safe in a local part and a file name. */
#define QUEUE_TOKEN_LEN 26
/* A subscription request is valid this long (docs/accounts.md). */
#define QUEUE_LIST_PENDING_TIME (3 * 24 * 3600)
/* Answers to list commands go to one address at most once per this long. */
#define QUEUE_LIST_ANSWER_INTERVAL 3600
/* Longest header value we take out of a message (unfolded). */
#define QUEUE_MSG_MAX_VALUE (8 * 1024)
/* Header bytes we look at (the rest of a huge header block is kept but not
 * searched: HOSTILE-INPUT row 10). */
#define QUEUE_MSG_MAX_HEADER_SCAN (1024 * 1024)

/* ---- pure helpers (queue_msg.c) ---- */

/* Length of the header fields of msg: msg[0..n) are the fields (each line
 * with its line end), msg[n..] starts with the empty line that ends them,
 * or n == len when there is none. */
size_t queue_msg_header_len(const char *msg, size_t len);

/* The first field called name (case-insensitive): its value unfolded
 * (line ends removed), trimmed, at most QUEUE_MSG_MAX_VALUE bytes.  Newly
 * allocated, or NULL when there is no such field. */
char *queue_msg_header(const char *msg, size_t len, const char *name);

/* True when some field called name has needle in its value
 * (case-insensitive). */
bool queue_msg_header_contains(const char *msg, size_t len, const char *name, const char *needle);

/* True when some field name begins with prefix (case-insensitive). */
bool queue_msg_has_field_prefix(const char *msg, size_t len, const char *prefix);

/* A copy of msg without the fields named in drop (NULL-terminated,
 * case-insensitive), with add (complete fields, CRLF line ends) put first.
 * *len_r is the length.  Newly allocated. */
char *queue_msg_rewrite(const char *msg, size_t len, const char *const *drop, const char *add,
			size_t *len_r);

/* The address in an address header value: the first "<...>", or else the
 * first word with an '@'.  Newly allocated, or NULL when there is none or
 * it holds white space or control bytes. */
char *queue_msg_first_address(const char *value);

/* Encodes a header value as RFC 2047 "B" encoded-words in UTF-8 when it is
 * not plain printable ASCII; the words are at most 75 characters, joined
 * by CRLF SP (folding), and never split a UTF-8 sequence.  Newly allocated. */
char *queue_msg_encode_words(const char *utf8);

/* Writes the token for raw[16] into out. */
void queue_token_encode(const unsigned char raw[16], char out[QUEUE_TOKEN_LEN + 1]);
/* True when s is a token (any case). */
bool queue_token_valid(const char *s);
/* "approve-TOKEN" or "reject-TOKEN" (any case): 0 with *approve_r and the
 * token in lower case, or -1. */
int queue_moderate_parse(const char *detail, bool *approve_r, char token[QUEUE_TOKEN_LEN + 1])
	PETREL_MUST_CHECK;

/* The record of a subscription request or of a held post. */
enum queue_pending_action {
	QUEUE_PENDING_SUBSCRIBE,
	QUEUE_PENDING_UNSUBSCRIBE,
	QUEUE_PENDING_MODERATE,
};
struct queue_pending {
	enum queue_pending_action action;
	char *address;           /* who (un)subscribes; the poster's envelope sender ("" <>) */
	int64_t created;
	bool smtputf8, body_8bit;  /* of a held post */
};
/* Text of the record ("action subscribe\naddress =a@b\n..."; values
 * escaped as in the queue envelope).  Newly allocated. */
char *queue_pending_format(const struct queue_pending *p);
/* Strict parse; 0, or -1 (p zeroed).  Free with queue_pending_free. */
int queue_pending_parse(const char *data, size_t len, struct queue_pending *p) PETREL_MUST_CHECK;
void queue_pending_free(struct queue_pending *p);

/* Header fields a list puts on its mail. */
struct queue_list_headers {
	const char *list_address;    /* news@example.com */
	const char *list_id;         /* directory_list_id() */
	const char *list_unsubscribe, *list_subscribe, *list_post;
	const char *reply_to;        /* the Reply-To to set, or NULL to keep the sender's */
};
/* The fields, with CRLF line ends: List-Id, List-Unsubscribe,
 * List-Subscribe, List-Post, Precedence: list, X-Loop and Reply-To when
 * set.  Newly allocated. */
char *queue_list_headers_text(const struct queue_list_headers *h);
/* The message a list distributes: msg without the fields a list replaces
 * (List-*, Precedence, Return-Path, and Reply-To when h->reply_to is set),
 * with the list's fields first.  Newly allocated, *len_r its length. */
char *queue_list_message(const char *msg, size_t len, const struct queue_list_headers *h,
			 size_t *len_r);

/* A short text message from us (confirmations, refusals, moderation
 * notices, auto-replies). */
struct queue_notice {
	const char *from;            /* address */
	const char *from_name;       /* phrase (UTF-8), or NULL */
	const char *to;              /* address */
	const char *reply_to;        /* address, or NULL */
	const char *subject;         /* UTF-8; encoded when not ASCII */
	const char *text;            /* UTF-8, LF or CRLF line ends */
	const char *in_reply_to;     /* a Message-ID ("<...>"), or NULL */
	const char *references;      /* the original References value, or NULL */
	const char *message_id;      /* ours, "<...>" */
	int64_t date;
};
/* RFC 5322 text with CRLF line ends, Auto-Submitted: auto-replied, a
 * base64 UTF-8 body when the text is not ASCII.  Newly allocated. */
char *queue_notice_text(const struct queue_notice *n, size_t *len_r);

/* ---- delivery (queue_list.c, queue_autoreply.c) ---- */

struct queue;
struct cfg;
struct queue_env;
struct queue_local_result;

/* Delivers the message of env to address, a list or a list command (what
 * queue_local_deliver reported with res->list): checks the posting
 * policy, distributes, holds for moderation or answers the command, and
 * fills res (250 when the recipient is done: distributed, held, answered
 * or dropped on purpose; 4xx to try again; 5xx to bounce). */
void queue_list_deliver(struct queue *q, struct cfg *cfg, const struct queue_env *env,
			const char *address, const char *msg, size_t msg_len, int64_t now,
			struct queue_local_result *res);

/* After msg was delivered into the mailbox of the user at user_address:
 * sends the user's auto-reply to the envelope sender when
 * directory_autoreply_should_send says so, and remembers when. */
void queue_autoreply_consider(struct queue *q, struct cfg *cfg, const struct queue_env *env,
			      const char *user_address, const char *msg, size_t msg_len,
			      int64_t now);

/* The store directory of a queue (the parent of its spool).  Newly
 * allocated. */
char *queue_store_dir(struct queue *q);
/* Commits a message we generate (a list answer, an auto-reply) to one
 * recipient with the null sender.  0 or -1 (logged). */
int queue_send_notice(struct queue *q, const char *about_id, const char *to, const char *text,
		      size_t len, bool body_8bit);
/* Lower-case hex SHA-256 of the lower-cased address (a file name). */
void queue_address_hash(const char *address, char out[65]);
/* A new random token. */
void queue_token_new(char out[QUEUE_TOKEN_LEN + 1]);

#endif
