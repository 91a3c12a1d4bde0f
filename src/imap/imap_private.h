/*
 * Internals of the IMAP server shared by its files:
 *
 *   imap_session.c      connection, input loop, responses, jobs, STARTTLS,
 *                       COMPRESS, IDLE, untagged updates from the store
 *   imap_cmd_auth.c     CAPABILITY NOOP LOGOUT LOGIN AUTHENTICATE STARTTLS
 *                       ID ENABLE NAMESPACE COMPRESS
 *   imap_cmd_mailbox.c  LIST LSUB STATUS CREATE DELETE RENAME (UN)SUBSCRIBE
 *                       SELECT EXAMINE CLOSE UNSELECT EXPUNGE APPEND
 *                       GETQUOTA GETQUOTAROOT
 *   imap_cmd_fetch.c    FETCH STORE COPY MOVE (and their UID forms)
 *   imap_cmd_search.c   SEARCH SORT THREAD
 *   imap_body.c         body sections read from message files
 *   imap_acl.c          shared and public folders: namespaces, rights,
 *                       SETACL DELETEACL GETACL LISTRIGHTS MYRIGHTS
 *
 * Threads: the session and everything it points to belong to the
 * connection's loop thread.  A job (struct imap_job) runs on a worker with
 * its own references to what it uses (imap_user, imap_mbox, imap_seqmap),
 * and its completion runs on the loop, after looking the connection up by
 * id.  While a job runs the session is busy: it reads no command and
 * changes nothing a job may read (the sequence map in particular).
 */
#ifndef PETREL_IMAP_PRIVATE_H
#define PETREL_IMAP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/net.h"
#include "imap/imap.h"
#include "imap/imap_parse.h"
#include "store/store.h"

#define IMAP_LOG "imap"
/* Input buffered while a command runs; past it the socket is not read. */
#define IMAP_READ_HIGH_WATER (256 * 1024)
/* Output above which a streaming answer (FETCH) pauses until the client
 * has read it down to the low watermark. */
#define IMAP_WRITE_HIGH_WATER (1024 * 1024)
#define IMAP_WRITE_LOW_WATER (256 * 1024)
/* Messages per store page for FETCH, and the output after which a FETCH
 * job ends its page early (big bodies). */
#define IMAP_FETCH_PAGE 500
#define IMAP_FETCH_OUT_MAX (512 * 1024)
/* Before login: longest command line.  AUTHENTICATE with SASL-IR may
 * carry a big GSSAPI ticket, so auth/max-response (in base64) fits. */
#define IMAP_PREAUTH_MAX_LINE 8192
/* Before login: literal bytes per command (LOGIN user and password). */
#define IMAP_PREAUTH_MAX_LITERAL 8192
/* RFC 2971 section 3.3: at most 30 field-value pairs; fields 30 bytes,
 * values 1024 bytes. */
#define IMAP_ID_MAX_PAIRS 30
/* Longest raw line (AUTHENTICATE response, DONE). */
#define IMAP_MAX_RAW_LINE (96 * 1024)
/* After the last answer the write side is shut and what the client still
 * sends is read and dropped this long, so that closing does not reset the
 * connection and destroy the answer in flight (Apache's lingering close). */
#define IMAP_LINGER_SECONDS 2

enum imap_state {
	IMAP_STATE_NOT_AUTH,
	IMAP_STATE_AUTH,
	IMAP_STATE_SELECTED,
	IMAP_STATE_LOGOUT,
};

enum imap_mode {
	IMAP_MODE_COMMAND,        /* reading commands */
	IMAP_MODE_BUSY,           /* a job or a delayed reply: input waits */
	IMAP_MODE_SASL,           /* reading AUTHENTICATE response lines */
	IMAP_MODE_IDLE,           /* in IDLE, reading DONE */
	IMAP_MODE_STARTTLS,       /* "OK" sent, waiting for it to drain */
	IMAP_MODE_CLOSING,        /* last reply sent, closing when drained */
	IMAP_MODE_LINGER,         /* net_conn_finish() sees the last reply out */
};

/* A logged-in user's store handle, shared with jobs.  The last reference
 * releases the handle on a worker. */
struct imap_user {
	int refs;                 /* atomic */
	struct store_user *user;
	char *identity;           /* "name@domain" */
};

struct imap_watch_ctx;

/* An open folder, shared with jobs; the last reference unwatches and
 * closes it on a worker. */
struct imap_mbox {
	int refs;                 /* atomic */
	struct imap_user *user;
	struct store_folder *folder;
	struct store_watch *watch;
	struct imap_watch_ctx *wctx;
};

/* Sequence numbers -> UIDs (and the last MODSEQ the client was told of
 * each message, to send a flag change once).  Read by jobs, changed by
 * the session only when no job runs. */
struct imap_seqmap {
	int refs;                 /* atomic */
	uint32_t *uids;
	uint64_t *modseqs;
	uint32_t count, cap;
};

/* A growable array of UIDs. */
struct imap_uidvec {
	uint32_t *v;
	size_t n, cap;
};

struct imap_selected {
	struct imap_mbox *mbox;
	uint64_t gen;             /* tells notifications for an older selection apart */
	char *name;               /* store name (UTF-8) */
	bool readonly;
	bool examined;            /* EXAMINE: read-only whatever the rights */
	uint32_t rights;          /* RFC 4314 rights of the user (STORE_ACL_*) */
	/* another user's or a public folder: rights are computed again when
	 * an ACL or the directory changed since (imap_acl_rights_stale) */
	bool shared;
	uint64_t acl_gen, dir_gen;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	struct imap_seqmap *map;
	uint32_t recent_first, recent_last;   /* \Recent claimed at SELECT */
	char **keywords;          /* STORE_MAX_KEYWORDS names, NULL when unused */
	/* changes notified by the store, not yet told to the client */
	struct imap_uidvec p_new, p_expunged, p_flags;
	uint64_t p_modseq;
	bool p_reset;             /* UIDVALIDITY changed: the client must reselect */
	bool p_deleted;           /* the folder was deleted */
	struct imap_seqset searchres; /* "$" (RFC 5182), as UIDs, normalized */
	bool has_searchres;
};

struct auth_session;
struct imap_job;

struct imap_session {
	struct conn *conn;
	struct imap_parser parser;
	enum imap_state state;
	enum imap_mode mode;
	bool stopping;            /* the engine stops: close after the current answer */
	bool syncing;             /* a flag-change job runs for IDLE */
	unsigned bad_commands;
	struct event *timer;      /* delayed reply, IDLE keepalive, close polling */
	char *pending_tagged;     /* a tagged line held back (failure delay) */
	/* enabled (RFC 5161) */
	bool rev2, condstore, qresync, utf8;
	/* the command being run */
	char *tag;
	char cmd_name[IMAP_MAX_COMMAND_NAME + 8];
	bool cmd_uid;             /* a UID command */
	/* authentication */
	struct auth_session *sasl;
	struct buf line;          /* raw lines: AUTHENTICATE responses, DONE */
	char *identity;
	struct imap_user *user;
	/* SELECTED */
	struct imap_selected *sel;
	struct imap_selected *next_sel;   /* being selected: collects notifications */
	uint64_t sel_gen;
	/* IDLE */
	char *idle_tag;
	/* a streaming job waiting for the output to drain */
	struct imap_job *paused;
	bool compressed;
	bool counted_user;        /* counted in the per-user connection limit */
};

/* ---- globals ---- */

struct imap_globals {
	struct net *net;
	struct worker_pool *const *workers;
	struct store *const *store;
};
extern struct imap_globals imapg;

struct store *imap_store(void);
struct worker_pool *imap_workers(void);

/* ---- jobs ---- */

typedef void imap_job_fn(struct imap_job *job);
typedef void imap_job_done_fn(struct imap_session *s, struct imap_job *job);
typedef void imap_job_cleanup_fn(struct imap_job *job);

struct imap_job {
	struct net *net;
	uint64_t conn_id;
	struct event_base *base;
	imap_job_fn *run;                 /* on a worker */
	imap_job_done_fn *done;           /* on the loop, session alive */
	imap_job_cleanup_fn *cleanup;     /* frees data; any thread */
	char *tag;
	struct imap_user *user;           /* references, or NULL */
	struct imap_mbox *mbox;
	struct imap_seqmap *map;
	struct evbuffer *out;             /* untagged lines made on the worker */
	enum store_status status;
	char *error;                      /* the store's reason, copied */
	bool keep;                        /* done() kept the job (resubmitted or paused) */
	bool rev2, utf8, condstore, qresync;
	void *data;                       /* the command's own */
};

/* A new job for the current command (tag copied, user and selected mbox
 * and map referenced when the session has them). */
struct imap_job *imap_job_new(struct imap_session *s, imap_job_fn *run, imap_job_done_fn *done);
void imap_job_free(struct imap_job *job);
/* Queues the job; the session is busy until done() runs.  On failure the
 * job is freed and the command answered NO [UNAVAILABLE]. */
void imap_job_submit(struct imap_session *s, struct imap_job *job);
/* From a job's done(): queues the same job again (the next page).
 * Returns 0, or -1 when the pool refuses (the job is left to be freed). */
int imap_job_resubmit(struct imap_session *s, struct imap_job *job);
/* Records a store failure in the job (status and a copy of error). */
void imap_job_fail(struct imap_job *job, enum store_status st, const char *error);

struct imap_user *imap_user_ref(struct imap_user *u);
void imap_user_unref(struct imap_user **u);
struct imap_mbox *imap_mbox_ref(struct imap_mbox *m);
void imap_mbox_unref(struct imap_mbox **m);
struct imap_seqmap *imap_seqmap_new(void);
struct imap_seqmap *imap_seqmap_ref(struct imap_seqmap *m);
void imap_seqmap_unref(struct imap_seqmap **m);
void imap_seqmap_append(struct imap_seqmap *m, uint32_t uid, uint64_t modseq);
/* Sequence number (1-based) of uid, or 0. */
uint32_t imap_seqmap_find(const struct imap_seqmap *m, uint32_t uid);

void imap_uidvec_add(struct imap_uidvec *v, uint32_t uid);
void imap_uidvec_free(struct imap_uidvec *v);

/* ---- output ---- */

void imap_printf(struct imap_session *s, const char *fmt, ...) PETREL_PRINTF(2, 3);
void imap_write(struct imap_session *s, const void *data, size_t len);
/* The tagged answer of the current command; frees the tag.  OK answers
 * first send what the store notified, where RFC 9051 allows it. */
void imap_ok(struct imap_session *s, const char *fmt, ...) PETREL_PRINTF(2, 3);
void imap_no(struct imap_session *s, const char *fmt, ...) PETREL_PRINTF(2, 3);
/* BAD counts towards imap/max-bad-commands. */
void imap_bad(struct imap_session *s, const char *fmt, ...) PETREL_PRINTF(2, 3);
/* NO with the response code of a store status (one mapping for every
 * command: store.h's table). */
void imap_no_store(struct imap_session *s, enum store_status st, const char *error,
		   const char *what);
const char *imap_store_code(enum store_status st);
/* The tagged line after delay_ms (authentication failures). */
void imap_tagged_delayed(struct imap_session *s, const char *line, int64_t delay_ms);
/* Sends an untagged BYE and closes once it is written. */
void imap_close_with(struct imap_session *s, const char *bye);
/* Continues with buffered input (after a job). */
void imap_process_input(struct imap_session *s);
/* COMPRESS: installs the deflate layer right after the OK. */
void imap_compress_start(struct imap_session *s);
/* STARTTLS: after its OK, switch once it has left. */
void imap_switch_after_ok(struct imap_session *s, enum imap_mode mode);
/* The selection's sequence map, made private first when a job still
 * holds it (copy on write). */
struct imap_seqmap *imap_seqmap_writable(struct imap_session *s);
/* Per-user connection counts (imap/max-connections-per-user):
 * acquire returns false when the user is at the limit. */
bool imap_user_count_acquire(const char *identity, unsigned max);
void imap_user_count_release(const char *identity);
/* TLS or loopback. */
bool imap_secure(const struct imap_session *s);
/* The capability list (no "* CAPABILITY" prefix). */
void imap_capabilities(struct imap_session *s, struct buf *out);
/* Parser limits for the session's state and settings. */
void imap_apply_limits(struct imap_session *s);

/* Mailbox names: the client's form (modified UTF-7, or UTF-8 after
 * ENABLE UTF8=ACCEPT) to the store's (UTF-8, INBOX in capitals) and back.
 * imap_name_in returns 0 or -1 (BAD). */
int imap_name_in(struct imap_session *s, const char *name, size_t len, struct buf *out);
int imap_name_out(const struct imap_session *s, const char *name, struct buf *out);

/* Flags */
void imap_append_flags(struct buf *out, uint32_t flags, uint64_t keywords, char **names,
		       bool recent);
/* Parses a flag list or a single flag; keywords are collected (borrowed
 * from the parser).  Returns 0 or -1 with *error_r. */
int imap_parse_flags(const struct imap_parser *p, const struct imap_arg *arg, uint32_t *flags_r,
		     const char ***keywords_r, size_t *nkeywords_r, const char **error_r);

/* Sequence sets resolved against the session's view: UIDs (normalized
 * ranges) of the messages a set names.  For a sequence set, numbers past
 * the message count make it invalid (-1, BAD).  "$" takes the saved
 * search result. */
int imap_resolve_set(struct imap_session *s, const struct imap_arg *arg, bool uid,
		     struct imap_seqset *uids_r, const char **error_r);

/* ---- untagged updates ---- */

/* True when the store notified changes not yet sent. */
bool imap_sync_pending(const struct imap_session *s);
/* Sends what is pending: expunges (when allowed), new messages, flag
 * changes (a job).  Calls then(s) when done (at once when nothing needs a
 * job). */
typedef void imap_then_fn(struct imap_session *s);
void imap_sync(struct imap_session *s, bool allow_expunge, imap_then_fn *then);
void imap_selected_free(struct imap_selected **sel);
/* Forgets the selected folder (CLOSE, UNSELECT, SELECT, LOGOUT). */
void imap_unselect(struct imap_session *s);
/* Starts watching mbox for the selection gen (called by SELECT's job on
 * the worker, before the message list is read). */
void imap_watch_start(struct imap_mbox *mbox, struct net *net, uint64_t conn_id,
		      struct event_base *base, uint64_t gen);
/* Removes uid from the selection and writes "* n EXPUNGE" (or adds it to
 * vanished for QRESYNC).  Returns false when it was not there. */
bool imap_expunge_uid(struct imap_session *s, uint32_t uid, struct imap_uidvec *vanished);
/* Writes "* VANISHED uid-set" for the collected UIDs. */
void imap_send_vanished(struct imap_session *s, struct imap_uidvec *v, bool earlier);

/* ---- commands ---- */

typedef void imap_cmd_fn(struct imap_session *s, struct imap_args *args);

/* imap_cmd_auth.c */
imap_cmd_fn imap_cmd_capability, imap_cmd_noop, imap_cmd_logout, imap_cmd_login,
	imap_cmd_authenticate, imap_cmd_starttls, imap_cmd_id, imap_cmd_enable,
	imap_cmd_namespace, imap_cmd_compress, imap_cmd_idle;
void imap_sasl_line(struct imap_session *s, const char *line, size_t len);
void imap_sasl_free(struct auth_session **sasl);
/* Finishes an IDLE on DONE. */
void imap_idle_done(struct imap_session *s);
void imap_idle_keepalive_cb(evutil_socket_t fd, short what, void *arg);

/* imap_cmd_mailbox.c */
imap_cmd_fn imap_cmd_list, imap_cmd_lsub, imap_cmd_status, imap_cmd_create, imap_cmd_delete,
	imap_cmd_rename, imap_cmd_subscribe, imap_cmd_unsubscribe, imap_cmd_select,
	imap_cmd_examine, imap_cmd_close, imap_cmd_unselect, imap_cmd_expunge, imap_cmd_append,
	imap_cmd_getquota, imap_cmd_getquotaroot, imap_cmd_setquota, imap_cmd_check;

/* imap_cmd_mailbox.c: "* OK [PERMANENTFLAGS (...)] ...\r\n" for the
 * selection's rights. */
void imap_put_permanentflags(const struct imap_selected *sel, struct buf *line);

/* imap_acl.c */
/* True when the selection is a shared folder whose rights may have changed
 * since they were computed (an ACL or users.cfg changed). */
bool imap_acl_rights_stale(const struct imap_session *s);
/* Computes the selection's rights again on a worker (the session is busy
 * meanwhile) and tells the client what changed: READ-ONLY/READ-WRITE and
 * PERMANENTFLAGS, or BYE when the read right is gone (RFC 4314 5.1.1). */
void imap_acl_rights_refresh(struct imap_session *s);
imap_cmd_fn imap_cmd_setacl, imap_cmd_deleteacl, imap_cmd_getacl, imap_cmd_listrights,
	imap_cmd_myrights;

/* imap_cmd_fetch.c */
imap_cmd_fn imap_cmd_fetch, imap_cmd_store, imap_cmd_copy, imap_cmd_move;
/* Resumes a paused streaming job (write callback). */
void imap_resume_paused(struct imap_session *s);

/* imap_cmd_search.c */
imap_cmd_fn imap_cmd_search, imap_cmd_sort, imap_cmd_thread;

/* imap_body.c: appends the literal of a body section of the message in
 * data[0..len) to out (the whole BODY[...] value, "NIL" for a part that
 * does not exist).  For BINARY, *unknown_cte_r is set when a part's
 * encoding cannot be decoded (NO [UNKNOWN-CTE]). */
int imap_body_section(const char *data, size_t len, const struct imap_section *sec,
		      struct evbuffer *out, bool *unknown_cte_r);
/* BINARY.SIZE of a part: decoded size. */
int imap_body_binary_size(const char *data, size_t len, const struct imap_section *sec,
			  uint64_t *size_r, bool *unknown_cte_r);

#endif
