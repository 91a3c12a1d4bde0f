/*
 * Internals of the POP3 server shared by pop3_session.c (connection,
 * input, authentication) and pop3_cmds.c (the commands and their store
 * work).
 */
#ifndef PETREL_POP3_PRIVATE_H
#define PETREL_POP3_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "core/net.h"
#include "pop3/pop3.h"
#include "pop3/pop3_parse.h"

#define POP3_LOG "pop3"
/* Input buffered while a command runs; past it the socket is not read. */
#define POP3_READ_HIGH_WATER (64 * 1024)
/* Output above which a RETR stops reading the message until the client
 * has taken some (and the watermark at which it resumes). */
#define POP3_WRITE_HIGH_WATER (512 * 1024)
#define POP3_WRITE_LOW_WATER (128 * 1024)
/* Bytes of a message read per worker job for RETR and TOP. */
#define POP3_RETR_CHUNK (128 * 1024)
/* Longest user name kept from USER (SASL_MAX_LOGIN). */
#define POP3_MAX_USER 512
/* After the last reply, what the client still sends is read and dropped
 * this long before closing, so the close does not reset the connection and
 * destroy the reply (Apache's lingering close). */
#define POP3_LINGER_SECONDS 2
/* Messages read per store page when the maildrop opens. */
#define POP3_LIST_PAGE 2000

enum pop3_state {
	POP3_STATE_AUTHORIZATION,
	POP3_STATE_SASL,             /* reading AUTH response lines */
	POP3_STATE_TRANSACTION,
	POP3_STATE_STLS,             /* "+OK" sent, waiting for it to drain */
	POP3_STATE_CLOSING,          /* last reply sent, closing when drained */
	POP3_STATE_LINGER,           /* net_conn_finish() sees the last reply out */
};

struct pop3_msg {
	uint32_t uid;
	bool deleted;
	uint64_t size;
};

/* The messages of a logged-in session, shared with the jobs that use its
 * store handles (reference counted; the last reference closes the folder
 * on a worker and releases the maildrop lock). */
struct pop3_maildrop {
	int refs;                    /* atomic */
	struct store_user *user;
	struct store_folder *folder;
	char *lock_key;
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	uint32_t count;
	uint64_t total_size;
};

struct auth_session;
struct pop3_retr;

struct pop3_session {
	struct conn *conn;
	struct pop3_parser parser;
	enum pop3_state state;
	bool busy;                   /* a job or a delayed reply is pending: input waits */
	bool stopping;               /* the engine stops: close after the current reply */
	unsigned bad_commands;
	char *user;                  /* from USER, until PASS */
	struct auth_session *sasl;      /* SASL server (owned by a job while it runs) */
	struct event *timer;         /* delayed failure reply */
	char *pending_reply;
	char *identity;              /* after login */
	struct pop3_maildrop *drop;  /* after login */
	struct pop3_retr *retr;      /* RETR/TOP waiting for the output to drain */
	bool utf8;                   /* RFC 6856 UTF8 (accepted, nothing changes for us) */
};

struct pop3_globals {
	struct net *net;
	struct worker_pool *const *workers;
	struct store *const *store;
};
extern struct pop3_globals pop3g;

/* pop3_session.c */
void pop3_reply(struct pop3_session *s, const char *fmt, ...) PETREL_PRINTF(2, 3);
/* Sends line (no CRLF) and closes once it is written. */
void pop3_close_with(struct pop3_session *s, const char *line);
/* Continues with buffered input (after a job). */
void pop3_process_input(struct pop3_session *s);
/* Replies line after delay_ms, input waiting meanwhile. */
void pop3_reply_delayed(struct pop3_session *s, const char *line, int64_t delay_ms);
/* True on TLS or loopback (plaintext logins allowed). */
bool pop3_secure(const struct pop3_session *s);
/* Starts a SASL exchange or feeds it (AUTH, PASS). */
void pop3_auth_start(struct pop3_session *s, const char *mech, const char *initial,
		     size_t initial_len, bool raw_initial);
void pop3_auth_step(struct pop3_session *s, const char *line, size_t len);

/* pop3_cmds.c */
void pop3_dispatch(struct pop3_session *s, char *line, size_t len);
/* The maildrop of identity (worker thread).  Returns 0, or -1 with
 * *error_r (static) and *in_use_r set when another session holds it. */
int pop3_maildrop_open(struct store *store, const struct cfg *cfg, const char *identity,
		       struct pop3_maildrop **drop_r, const char **error_r, bool *in_use_r);
void pop3_maildrop_unref(struct pop3_maildrop **drop);
/* Releases the maildrop lock now (QUIT), before the store handles go. */
void pop3_maildrop_unlock(struct pop3_maildrop *drop);
/* Cancels a RETR waiting for the output (session ending). */
void pop3_retr_free(struct pop3_retr **retr);
/* The write callback's part: resumes a RETR when the output drained. */
void pop3_retr_resume(struct pop3_session *s);
/* The CAPA lines (without the final "."). */
void pop3_capa(struct pop3_session *s);

#endif
