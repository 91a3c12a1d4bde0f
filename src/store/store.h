/*
 * The message store: folders of .eml files with a SQLite index each.
 *
 * Layout (DESIGN.md, docs/store.md):
 *
 *   <root>/mail/<domain>/<user>/#subscriptions, #special-use
 *   <root>/mail/<domain>/<user>/<folder>/#msgs/<uid>.eml   one message each, CRLF
 *   <root>/mail/<domain>/<user>/<folder>/index.fld         SQLite, WAL
 *   <root>/mail/<domain>/<user>/<folder>/<subfolder>/...
 *
 * Every front end (IMAP, POP3, webmail, the queue's local delivery, admin)
 * reads and writes mail through this API only.
 *
 * Threading contract
 *  - Every function blocks (disk, fsync, SQLite): call them from the worker
 *    pool, never from an event-loop thread.
 *  - Handles (struct store_user, struct store_folder) are reference counted
 *    and shared: opening the same folder twice, from any thread, returns the
 *    same object.  Every function is thread-safe.  Operations on one folder
 *    are serialised by a per-folder lock held for one transaction at a time;
 *    concurrent deliveries to one folder are committed together (group
 *    commit: one directory fsync and one WAL fsync for the batch).
 *  - Change notifications (store_watch) are called after the commit, with
 *    no store lock held, possibly on another thread than the one that made
 *    the change, one at a time per folder and in commit order.  A callback
 *    must not block; it should post to its session's event loop
 *    (evloop_run_on) and let the session ask store_fetch(changedsince) /
 *    store_vanished what changed.  It may call store functions, but
 *    store_unwatch of its own watch from inside the callback is the only
 *    way to unwatch there.
 *  - store_new starts one thread of its own, the indexer (full-text index
 *    and lazily rebuilt caches, settings.background_index); it holds
 *    references to the folders it has queued, which store_free drops.
 *
 * Errors: functions return enum store_status (STORE_OK = 0) and, on
 * failure, a reason in *error_r: a static or thread-local string valid
 * until the next store call of this thread.  Callers map the status to
 * their protocol in one place; the table below is the contract.
 *
 * Ownership: strings and arrays returned through *_r parameters are newly
 * allocated and freed by the caller with the matching *_free function
 * unless said otherwise.
 */
#ifndef PETREL_STORE_H
#define PETREL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "mime/mime.h"

/* Longest directory name (NAME_MAX). */
#define STORE_MAX_DIR_NAME 255
/* Longest folder name in bytes, and most levels ("a/b/c" is 3). */
#define STORE_MAX_FOLDER_NAME 1024
#define STORE_MAX_FOLDER_DEPTH 32
/* Folders per user: bounds LIST and the quota scan. */
#define STORE_MAX_FOLDERS 5000
/* Directory of INBOX. */
#define STORE_INBOX_DIR "Inbox"
/* Keywords per folder (a 64-bit mask per message; Cyrus has 128) and the
 * longest keyword. */
#define STORE_MAX_KEYWORDS 64
#define STORE_MAX_KEYWORD_LEN 128
/* Messages per transaction of a copy, move or expunge of many messages:
 * bounds how long a folder is locked. */
#define STORE_BATCH 1000
/* Search expressions: nesting and number of keys (HOSTILE-INPUT row 19). */
#define STORE_SEARCH_MAX_DEPTH 32
#define STORE_SEARCH_MAX_KEYS 1000
/* Schema version of index.fld (PRAGMA user_version).  Version 1 (no
 * pending column) is upgraded in place at open; any other is rebuilt,
 * keeping UIDs and flags. */
#define STORE_INDEX_VERSION 2

enum store_status {
	STORE_OK = 0,
	STORE_E_TEMP,       /* I/O error, index being rebuilt: SMTP 451 4.3.0, IMAP NO [UNAVAILABLE] */
	STORE_E_NOSPACE,    /* the file system is full: 452 4.3.1, IMAP NO [LIMIT] */
	STORE_E_OVERQUOTA,  /* the user's quota: 452 4.2.2 (552 5.2.2 after the queue's retries), IMAP NO [OVERQUOTA] */
	STORE_E_TOOBIG,     /* over the message size limit: 552 5.3.4, IMAP NO [TOOBIG] */
	STORE_E_NOTFOUND,   /* no such folder or message: 550 5.1.1, IMAP NO [NONEXISTENT] */
	STORE_E_EXISTS,     /* folder exists: IMAP NO [ALREADYEXISTS] */
	STORE_E_INVALID,    /* bad name or argument: IMAP NO [CANNOT] (BAD if syntax) */
	STORE_E_NOPERM,     /* not allowed (delete INBOX, rename into itself): IMAP NO [CANNOT] */
	STORE_E_LIMIT,      /* a store limit (keywords, folders, depth): IMAP NO [LIMIT] */
};

/* "ok", "temporary failure", ... */
const char *store_status_str(enum store_status st);

/* System flags (RFC 3501 2.3.2; \Recent is per session, see store_claim_recent). */
#define STORE_F_SEEN     0x01
#define STORE_F_ANSWERED 0x02
#define STORE_F_FLAGGED  0x04
#define STORE_F_DELETED  0x08
#define STORE_F_DRAFT    0x10
#define STORE_F_ALL      0x1f

/* Special-use roles (RFC 6154); INBOX is always "INBOX". */
enum store_role {
	STORE_ROLE_NONE, STORE_ROLE_INBOX, STORE_ROLE_SENT, STORE_ROLE_DRAFTS,
	STORE_ROLE_TRASH, STORE_ROLE_JUNK, STORE_ROLE_ARCHIVE, STORE_ROLE_COUNT
};
/* "\\Sent" ... (NULL for NONE and INBOX); default folder name "Sent" ... */
const char *store_role_attr(enum store_role role);
const char *store_role_default_name(enum store_role role);
/* Parses "\\Sent" (case-insensitive); returns STORE_ROLE_NONE if unknown. */
enum store_role store_role_parse(const char *attr);

struct store;
struct store_user;
struct store_folder;
struct store_watch;

struct store_settings {
	const char *root;             /* store dir (must exist); mail/ is created in it */
	struct mime_limits mime;
	uint64_t max_message_size;    /* deliveries above it: STORE_E_TOOBIG; 0 = none */
	bool fsync;                   /* false only for tests and benchmarks */
	bool hardlinks;               /* share one file between recipients (store_deliver_many) */
	bool check_on_open;           /* PRAGMA quick_check when a folder index is first opened,
				       * if under 64 MiB or not closed cleanly */
	int64_t delivery_key_ttl;     /* seconds a delivery key is remembered (store_deliver_once) */
	/* A thread that fills the full-text index (and, after a lazy
	 * rebuild, the cache) in the background.  Off: only searches and
	 * store_folder_index_pending do it. */
	bool background_index;
};

/* Defaults: MIME limits, 100 MiB messages, fsync, hard links, check,
 * background indexing. */
void store_settings_default(struct store_settings *set, const char *root);

/* Opens the store (creates root/mail).  Returns 0 or -1 with *error_r. */
int store_new(const struct store_settings *set, struct store **store_r, const char **error_r)
	PETREL_MUST_CHECK;
/* Every user handle must have been released. */
void store_free(struct store **store);

/* --- users --------------------------------------------------------------- */

/* Opens a user's mailbox, creating it with INBOX and the special-use
 * folders (Sent, Drafts, Trash, Junk, Archive; roles recorded, subscribed)
 * at first access.  domain and user are path components: they are escaped
 * like folder names, never trusted.  Returns a new reference. */
enum store_status store_user_open(struct store *store, const char *domain, const char *user,
				  struct store_user **user_r, const char **error_r) PETREL_MUST_CHECK;
struct store_user *store_user_ref(struct store_user *user);
void store_user_unref(struct store_user **user);

/* The quota from users.cfg: 0 = unlimited.  Applies to every later
 * delivery, append and copy into this user's folders. */
void store_user_set_quota(struct store_user *user, uint64_t max_bytes, uint64_t max_messages);

struct store_quota {
	uint64_t bytes, messages;          /* in use */
	uint64_t max_bytes, max_messages;  /* 0 = unlimited */
};
/* Usage is summed from the folder indexes once, then kept up to date in
 * memory by every change (O(1) per delivery). */
enum store_status store_user_quota(struct store_user *user, struct store_quota *quota_r,
				   const char **error_r) PETREL_MUST_CHECK;

/* --- folders ------------------------------------------------------------- */

/* Names are UTF-8 with '/' separating levels (the IMAP front end converts
 * modified UTF-7).  INBOX is case-insensitive.  Names with control
 * characters, empty levels, "." or ".." levels are refused
 * (STORE_E_INVALID). */
bool store_folder_name_valid(const char *name, const char **reason_r);
bool store_is_inbox(const char *name);

struct store_folder_info {
	char *name;
	enum store_role role;
	bool exists;              /* false: subscribed only (LIST \NonExistent) */
	bool subscribed;
	bool has_children;
};
/* All folders and subscriptions, sorted by name (INBOX first). */
enum store_status store_folder_list(struct store_user *user, struct store_folder_info **list_r,
				    size_t *count_r, const char **error_r) PETREL_MUST_CHECK;
void store_folder_list_free(struct store_folder_info **list, size_t count);

/* Creates a folder (and missing parents).  role may be STORE_ROLE_NONE
 * (CREATE-SPECIAL-USE passes one; a role already held by another folder
 * moves to this one). */
enum store_status store_folder_create(struct store_user *user, const char *name,
				      enum store_role role, const char **error_r) PETREL_MUST_CHECK;
/* Deletes a folder and its messages.  INBOX and folders with subfolders
 * are refused (STORE_E_NOPERM); open handles get STORE_EV_DELETED and
 * STORE_E_NOTFOUND afterwards. */
enum store_status store_folder_delete(struct store_user *user, const char *name,
				      const char **error_r) PETREL_MUST_CHECK;
/* Renames a folder with its subfolders; roles and subscriptions follow.
 * Renaming INBOX moves its messages into a new folder (RFC 3501 6.3.5). */
enum store_status store_folder_rename(struct store_user *user, const char *from, const char *to,
				      const char **error_r) PETREL_MUST_CHECK;
enum store_status store_folder_subscribe(struct store_user *user, const char *name, bool subscribe,
					 const char **error_r) PETREL_MUST_CHECK;

/* Opens a folder: a new reference to the shared handle.  The index is
 * opened, checked, and rebuilt first when missing, renamed to index.bad, or
 * corrupt (the corrupt file is kept as index.corrupt, a warning logged). */
enum store_status store_folder_open(struct store_user *user, const char *name,
				    struct store_folder **folder_r, const char **error_r)
	PETREL_MUST_CHECK;
void store_folder_close(struct store_folder **folder);

struct store_folder_status {
	uint32_t messages, unseen, deleted;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	uint64_t size;                /* bytes (STATUS=SIZE) */
	uint32_t first_unseen_uid;    /* 0 when none */
	enum store_role role;
};
enum store_status store_folder_status(struct store_folder *folder,
				      struct store_folder_status *status_r, const char **error_r)
	PETREL_MUST_CHECK;

/* --- UID sets ------------------------------------------------------------- */

struct store_range {
	uint32_t lo, hi;          /* inclusive; lo <= hi */
};
/* A set of UIDs as ranges (any order, may overlap).  A NULL set means
 * every message. */
struct store_uidset {
	const struct store_range *ranges;
	size_t count;
};

/* --- delivery -------------------------------------------------------------- */

struct store_message {
	const void *data;             /* the message; bare LF is stored as CRLF */
	size_t len;
	int64_t internal_date;        /* unix seconds; 0 = now */
	int tz;                       /* minutes east of UTC of internal_date */
};

/* Delivers one message into a folder (local delivery, IMAP APPEND): temp
 * file in the folder, fsync, rename into #msgs, fsync the directory, then
 * the index transaction.  On failure nothing is left behind and the index
 * is unchanged.  *uidvalidity_r and *uid_r (either may be NULL) give
 * APPENDUID. */
enum store_status store_deliver(struct store_folder *folder, const struct store_message *msg,
				uint32_t flags, const char *const *keywords, uint32_t *uidvalidity_r,
				uint32_t *uid_r, const char **error_r) PETREL_MUST_CHECK;

struct store_rcpt {
	struct store_folder *folder;  /* in */
	uint32_t flags;               /* in */
	const char *const *keywords;  /* in, may be NULL */
	enum store_status status;     /* out */
	const char *error;            /* out, static string */
	uint32_t uidvalidity, uid;    /* out */
	/* in, may be NULL: makes the delivery idempotent (store_deliver_once) */
	const char *delivery_key;
	bool ignore_quota;            /* in: counted in the usage but never refused (notices) */
	bool duplicate;               /* out: the key was known, nothing was written */
	/* out: the user's usage right after this delivery was counted (all
	 * zero when the user has no quota): for quota warnings */
	struct store_quota quota;
};
/* Delivers one message to many folders: parsed once, written once, and
 * hard-linked into each folder (settings.hardlinks; one write each
 * otherwise).  Each recipient gets its own status: one over quota does not
 * fail the others. */
void store_deliver_many(const struct store_message *msg, struct store_rcpt *rcpts, size_t count);

/* Idempotent local delivery (the queue's): key names one delivery (queue
 * id and recipient) and is recorded in the folder's index in the same
 * transaction as the message.  Delivering again with a key the folder
 * knows writes nothing and returns STORE_OK with the UID of the first
 * delivery and *duplicate_r true (the message may have been expunged
 * since).  A crash between the rename into #msgs and the index commit is
 * covered too: the adopted file gets its key back (docs/store.md).  Keys
 * are forgotten after settings.delivery_key_ttl. */
enum store_status store_deliver_once(struct store_folder *folder, const struct store_message *msg,
				     const char *key, uint32_t *uid_r, bool *duplicate_r,
				     const char **error_r) PETREL_MUST_CHECK;
/* The hash a key is recorded under (64 hex digits and NUL); exposed for
 * tests. */
void store_delivery_key_hash(const char *key, char out[65]);

/* --- reading ------------------------------------------------------------- */

/* What store_fetch fills besides the always-present fields. */
#define STORE_FETCH_ENVELOPE      0x01
#define STORE_FETCH_BODYSTRUCTURE 0x02
#define STORE_FETCH_BODY          0x04
#define STORE_FETCH_HEADERS       0x08  /* cached selected header fields */
#define STORE_FETCH_PREVIEW       0x10
#define STORE_FETCH_THREAD        0x20  /* message_id, in_reply_to, references, subject */

struct store_msg {
	uint32_t uid;
	uint32_t flags;               /* STORE_F_* */
	uint64_t keywords;            /* bit i = store_folder_keywords()[i] */
	uint64_t modseq;
	int64_t internal_date;
	int tz;
	int64_t save_date;            /* RFC 8514 SAVEDATE */
	uint64_t size;                /* RFC822.SIZE: the file's size */
	uint64_t header_size;         /* RFC822.HEADER size */
	int64_t sent_date;            /* Date: (0 when none) */
	char guid[33];                /* stable across copy and move (EMAILID) */
	/* Owned by the page; NULL when not asked or absent. */
	const char *envelope, *bodystructure, *body, *headers, *preview;
	const char *message_id, *in_reply_to, *references, *subject;
};

struct store_page {
	struct store_msg *msgs;
	size_t count;
	uint32_t last_uid;            /* pass as after_uid for the next page */
	bool more;                    /* another page may follow */
	uint64_t highestmodseq;       /* of the folder when the page was read */
	struct buf strings;           /* internal */
};

/* One page of at most max messages with a UID in uids (NULL: all), above
 * after_uid, and with modseq > changedsince (0: any), in UID order.  Pages
 * bound memory and lock time, so a FETCH over 100 000 messages streams.
 * A message whose cache a lazy rebuild left empty is parsed for the page
 * when fields ask for cached items (header_size and sent_date then too). */
enum store_status store_fetch(struct store_folder *folder, const struct store_uidset *uids,
			      uint64_t changedsince, uint32_t fields, uint32_t after_uid, size_t max,
			      struct store_page **page_r, const char **error_r) PETREL_MUST_CHECK;
void store_page_free(struct store_page **page);

/* Every message's UID, ascending, with its MODSEQ: what SELECT needs for
 * its sequence map, read from the modseq index without the message rows.
 * Free both arrays. */
enum store_status store_folder_uids(struct store_folder *folder, uint32_t **uids_r,
				    uint64_t **modseqs_r, size_t *count_r,
				    const char **error_r) PETREL_MUST_CHECK;

/* The folder's keyword names by bit (names_r[i] NULL when unused);
 * *count_r is STORE_MAX_KEYWORDS.  Free with store_keywords_free. */
enum store_status store_folder_keywords(struct store_folder *folder, char ***names_r,
					size_t *count_r, const char **error_r) PETREL_MUST_CHECK;
void store_keywords_free(char ***names, size_t count);

/* Opens a message file read-only for streaming (the file never changes;
 * an expunge after the open does not disturb the reader).  The caller
 * closes *fd_r. */
enum store_status store_msg_open(struct store_folder *folder, uint32_t uid, int *fd_r,
				 uint64_t *size_r, const char **error_r) PETREL_MUST_CHECK;

/* \Recent (IMAP4rev1): the first caller after new messages arrive gets
 * them.  Sets [*first_r, *last_r] (empty when *first_r > *last_r). */
enum store_status store_claim_recent(struct store_folder *folder, uint32_t *first_r,
				     uint32_t *last_r, const char **error_r) PETREL_MUST_CHECK;

/* --- changes --------------------------------------------------------------- */

enum store_flag_op { STORE_FLAGS_REPLACE, STORE_FLAGS_ADD, STORE_FLAGS_REMOVE };

struct store_flag_change {
	uint32_t uid;
	uint32_t flags;
	uint64_t keywords;
	uint64_t modseq;
};

struct store_flag_result {
	struct store_flag_change *changed;   /* messages whose flags changed */
	size_t changed_count;
	uint32_t *modified;                  /* UNCHANGEDSINCE failed (CONDSTORE [MODIFIED]) */
	size_t modified_count;
	uint64_t modseq;                     /* of this change (0 when nothing changed) */
};

/* Changes flags and keywords of the messages in uids in one transaction;
 * each changed message gets a new modseq.  unchangedsince (0: none) skips
 * messages whose modseq is higher (RFC 7162 3.1.3).  A new keyword past
 * STORE_MAX_KEYWORDS fails with STORE_E_LIMIT.  result may be NULL. */
enum store_status store_set_flags(struct store_folder *folder, const struct store_uidset *uids,
				  enum store_flag_op op, uint32_t flags, const char *const *keywords,
				  uint64_t unchangedsince, struct store_flag_result *result,
				  const char **error_r) PETREL_MUST_CHECK;
void store_flag_result_free(struct store_flag_result *result);

/* Expunges the messages in uids (NULL: all) that have \Deleted, or all of
 * them when only_deleted is false (POP3 DELE).  The index commits first,
 * then the files are removed.  *uids_r (may be NULL) gets the expunged
 * UIDs, sorted. */
enum store_status store_expunge(struct store_folder *folder, const struct store_uidset *uids,
				bool only_deleted, uint32_t **uids_r, size_t *count_r,
				const char **error_r) PETREL_MUST_CHECK;

/* UIDs expunged with a modseq > since and within uids (NULL: any), for
 * QRESYNC VANISHED.  When the history before since was lost (index rebuilt
 * from a salvaged copy), every UID below UIDNEXT that does not exist is
 * reported, which RFC 7162 allows. */
enum store_status store_vanished(struct store_folder *folder, uint64_t since,
				 const struct store_uidset *uids, uint32_t **uids_r, size_t *count_r,
				 const char **error_r) PETREL_MUST_CHECK;

struct store_copy_map {
	uint32_t dst_uidvalidity;
	uint32_t *src_uids, *dst_uids;     /* COPYUID, in source UID order */
	size_t count;
};
/* Copies (or moves) the messages in uids to dst: hard links, flags and
 * keywords kept, new UIDs.  A move expunges the source messages after the
 * copy has committed: a crash in between leaves a duplicate, never a loss.
 * map may be NULL. */
enum store_status store_copy(struct store_folder *src, struct store_folder *dst,
			     const struct store_uidset *uids, bool move, struct store_copy_map *map,
			     const char **error_r) PETREL_MUST_CHECK;
void store_copy_map_free(struct store_copy_map *map);

/* --- search and sort --------------------------------------------------------- */

enum store_search_type {
	STORE_SK_ALL,
	STORE_SK_AND,             /* children */
	STORE_SK_OR,              /* children (any number >= 1) */
	STORE_SK_NOT,             /* one child */
	STORE_SK_UID,             /* uids */
	STORE_SK_FLAGS,           /* every flag in flags is set, every one in not_flags clear */
	STORE_SK_KEYWORD,         /* text is set */
	STORE_SK_INTERNALDATE,    /* lo <= internal date < hi (unix seconds) */
	STORE_SK_SENTDATE,        /* lo <= Date: < hi */
	STORE_SK_SAVEDATE,        /* lo <= save date < hi */
	STORE_SK_SIZE,            /* lo <= size < hi */
	STORE_SK_MODSEQ,          /* modseq >= lo */
	STORE_SK_HEADER,          /* header field contains text (case-insensitive) */
	STORE_SK_BODY,            /* full text: body and attachment text */
	STORE_SK_TEXT,            /* full text: headers and body */
	STORE_SK_EMAILID,         /* guid equals text */
};

struct store_search_key {
	enum store_search_type type;
	const char *field;        /* HEADER: "Subject" ... */
	const char *text;
	uint32_t flags, not_flags;
	int64_t lo, hi;
	struct store_uidset uids;
	const struct store_search_key *children;
	size_t child_count;
};

/* The UIDs matching key, sorted.  Full-text keys match whole words and word
 * prefixes (SQLite FTS5, unicode61, diacritics folded): "deliv" finds
 * "delivery", not "redelivery".  *highestmodseq_r (may be NULL) is the
 * highest modseq among the results (CONDSTORE SEARCH).  Keys that need the
 * full text or cached headers first index the folder's messages that are
 * not yet indexed, so every message delivered before the call is seen. */
enum store_status store_search(struct store_folder *folder, const struct store_search_key *key,
			       uint32_t **uids_r, size_t *count_r, uint64_t *highestmodseq_r,
			       const char **error_r) PETREL_MUST_CHECK;

enum store_sort_key {
	STORE_SORT_ARRIVAL, STORE_SORT_CC, STORE_SORT_DATE, STORE_SORT_FROM, STORE_SORT_SIZE,
	STORE_SORT_SUBJECT, STORE_SORT_TO, STORE_SORT_DISPLAYFROM, STORE_SORT_DISPLAYTO
};
struct store_sort {
	enum store_sort_key key;
	bool reverse;
};
/* RFC 5256 SORT over the search result; ties by UID. */
enum store_status store_sort(struct store_folder *folder, const struct store_search_key *key,
			     const struct store_sort *criteria, size_t count, uint32_t **uids_r,
			     size_t *count_r, const char **error_r) PETREL_MUST_CHECK;

/* --- notifications ---------------------------------------------------------- */

enum store_event_type {
	STORE_EV_NEW,             /* uids delivered, appended, copied in */
	STORE_EV_EXPUNGE,         /* uids expunged */
	STORE_EV_FLAGS,           /* uids changed flags or keywords */
	STORE_EV_RESET,           /* index rebuilt with a new UIDVALIDITY: resync */
	STORE_EV_DELETED,         /* folder deleted */
	STORE_EV_RENAMED,         /* folder renamed (it stays open) */
};

struct store_event {
	enum store_event_type type;
	uint64_t modseq;          /* HIGHESTMODSEQ after the change */
	uint32_t uidvalidity, uidnext;
	const uint32_t *uids;     /* borrowed for the call */
	size_t count;
};

typedef void store_watch_fn(const struct store_event *event, void *context);

/* Calls fn for every change of folder until store_unwatch.  See the
 * threading contract above. */
struct store_watch *store_watch(struct store_folder *folder, store_watch_fn *fn, void *context);
/* After it returns, fn is not running and will not be called again (from
 * inside fn itself it only prevents later calls). */
void store_unwatch(struct store_watch **watch);

/* --- administration ----------------------------------------------------------- */

/* Messages whose full-text entry (or, after a lazy rebuild, cached
 * envelope and structure) is not yet made: *left_r after indexing them all
 * now when run is true.  Deliveries leave this to a background thread
 * (settings.background_index); a SEARCH that needs it catches up first. */
#define STORE_HAVE_INDEX_PENDING 1
enum store_status store_folder_index_pending(struct store_folder *folder, bool run, size_t *left_r,
					     const char **error_r) PETREL_MUST_CHECK;

struct store_reindex_result {
	uint32_t messages;        /* in the index afterwards */
	uint32_t added;           /* files found that were not indexed */
	uint32_t removed;         /* index entries whose file was gone */
	bool rebuilt;             /* a new index was built */
	bool uidvalidity_changed;
};
/* Compares a folder's index with its #msgs (files added or removed by
 * hand); rebuild builds a new index from the files, keeping UIDs, flags
 * and UIDVALIDITY from the old one as far as it can be read.  For
 * petrelctl mailbox reindex. */
enum store_status store_reindex_folder(struct store_user *user, const char *name, bool rebuild,
				       struct store_reindex_result *result_r, const char **error_r)
	PETREL_MUST_CHECK;

struct store_folder_stats {
	char *name;
	enum store_role role;
	uint32_t messages, unseen;
	uint64_t bytes;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	uint64_t index_bytes;     /* index.fld with its WAL */
};
struct store_mailbox_stats {
	struct store_folder_stats *folders;
	size_t count;
	uint64_t messages, bytes, index_bytes;
	struct store_quota quota;
};
/* Per-folder and total figures (petrelctl mailbox stats).  Opens every
 * folder (which re-indexes those that need it). */
enum store_status store_mailbox_stats(struct store_user *user, struct store_mailbox_stats *stats_r,
				      const char **error_r) PETREL_MUST_CHECK;
void store_mailbox_stats_free(struct store_mailbox_stats *stats);

/* --- access control lists (RFC 4314), store_acl.c ------------------------------ */

/* Rights of RFC 4314 section 2.1, one bit each.  The obsolete "c" and "d"
 * are not bits: "c" means k and x, "d" means t and e (the first reading
 * of RFC 4314 2.1.1), and both are shown whenever one of their members is
 * held. */
#define STORE_ACL_L 0x001         /* lookup: LIST, SUBSCRIBE */
#define STORE_ACL_R 0x002         /* read: SELECT, EXAMINE, STATUS, FETCH, SEARCH, COPY from */
#define STORE_ACL_S 0x004         /* keep \Seen */
#define STORE_ACL_W 0x008         /* write other flags and keywords */
#define STORE_ACL_I 0x010         /* insert: APPEND, COPY/MOVE into */
#define STORE_ACL_P 0x020         /* post (advisory) */
#define STORE_ACL_K 0x040         /* create child folders */
#define STORE_ACL_X 0x080         /* delete or rename the folder */
#define STORE_ACL_T 0x100         /* set and clear \Deleted */
#define STORE_ACL_E 0x200         /* expunge */
#define STORE_ACL_A 0x400         /* administer: SETACL, DELETEACL, GETACL, LISTRIGHTS */
#define STORE_ACL_ALL 0x7ff
/* The rights string of every right with c and d: "lrswipkxtecda" + NUL. */
#define STORE_ACL_RIGHTS_MAX 16
/* The identifier that matches every user (RFC 4314 section 2). */
#define STORE_ACL_ANYONE "anyone"
/* Longest identifier: an address (RFC 5321 path limit less the brackets). */
#define STORE_ACL_MAX_IDENTIFIER 254
/* Hard bound on entries per folder, whatever the setting says. */
#define STORE_ACL_MAX_ENTRIES 10000
/* The pseudo-user that owns a domain's public folders (the directory
 * refuses user names beginning with '#'). */
#define STORE_PUBLIC_USER "#public"

struct store_acl_entry {
	char *identifier;         /* "anyone", or an address in lower case */
	bool negative;            /* "-identifier": rights taken away */
	uint32_t rights;          /* STORE_ACL_* */
};
struct store_acl {
	struct store_acl_entry *entries;
	size_t count;
};
void store_acl_free(struct store_acl *acl);

/* Pure helpers (unit-tested and fuzzed). */
/* Parses a rights string ("lrs"; "c" and "d" expanded; "" is no rights).
 * Returns 0, or -1 for any byte that is not a right (RFC 4314 3.1: BAD). */
int store_acl_rights_parse(const char *text, size_t len, uint32_t *rights_r) PETREL_MUST_CHECK;
/* Writes the rights in the canonical order "lrswipkxtecda" (c and d when
 * one of their members is there); returns out. */
const char *store_acl_rights_format(uint32_t rights, char out[STORE_ACL_RIGHTS_MAX]);
/* An identifier: 1..STORE_ACL_MAX_IDENTIFIER bytes of printable ASCII
 * without space, '"', '\\' or a leading '-'. */
bool store_acl_identifier_valid(const char *id, size_t len);
/* The rights of a user: the union of the positive entries for "anyone",
 * the user's identity and each of groups, less the union of the negative
 * ones (RFC 4314 section 2).  Identities compare case-insensitively. */
uint32_t store_acl_eval(const struct store_acl *acl, const char *identity,
			const char *const *groups, size_t ngroups);
/* SETACL in memory: how rights change the entry (identifier, negative). */
enum store_acl_mod { STORE_ACL_REPLACE, STORE_ACL_ADD, STORE_ACL_REMOVE };
/* Applies one change; an entry left with no rights is removed.  Returns 0,
 * or -1 when a new entry would make more than max_entries. */
int store_acl_apply(struct store_acl *acl, const char *identifier, bool negative,
		    enum store_acl_mod mod, uint32_t rights, size_t max_entries) PETREL_MUST_CHECK;
/* The #acl file: one "identifier<TAB>rights" line per entry, negative
 * identifiers with a leading '-'.  Parse returns 0, or -1 for a line that
 * is not valid (the whole file is then refused: no half-read ACL). */
int store_acl_parse(const char *data, size_t len, struct store_acl *acl_r) PETREL_MUST_CHECK;
char *store_acl_format(const struct store_acl *acl);

/* The folder's ACL (empty, *present_r false, when it has none of its own).
 * STORE_E_NOTFOUND when the folder does not exist.  present_r may be NULL. */
enum store_status store_acl_get(struct store_user *user, const char *folder, struct store_acl *acl_r,
				bool *present_r, const char **error_r) PETREL_MUST_CHECK;
/* A counter raised by every successful store_acl_set (any folder, any
 * user; never by a hand edit of an #acl file): a cached rights value
 * computed when it read g is stale once it differs from g. */
uint64_t store_acl_generation(void);
/* Changes one entry and writes the folder's #acl atomically (temp file,
 * fsync, rename, fsync of the directory); an empty ACL removes the file.
 * The owner is recorded in the store's list of owners who share
 * (store_acl_owners).  STORE_E_LIMIT past max_entries. */
enum store_status store_acl_set(struct store_user *user, const char *folder, const char *identifier,
				bool negative, enum store_acl_mod mod, uint32_t rights,
				size_t max_entries, const char **error_r) PETREL_MUST_CHECK;

struct store_acl_owner {
	char *domain, *user;
};
/* Every owner who ever set an ACL entry (mail/#acl-owners; a hint: an
 * owner whose folders no longer have an ACL stays listed). */
enum store_status store_acl_owners(struct store *store, struct store_acl_owner **owners_r,
				   size_t *count_r, const char **error_r) PETREL_MUST_CHECK;
void store_acl_owners_free(struct store_acl_owner **owners, size_t count);


/* --- names (pure, store_name.c) ------------------------------------------------ */

/* Escapes one level of a folder name (any bytes, len > 0) into a directory
 * name appended to out.  Returns 0, or -1 (out unchanged) when len is 0 or
 * the result would exceed STORE_MAX_DIR_NAME. */
int store_name_escape(const char *name, size_t len, struct buf *out) PETREL_MUST_CHECK;
/* The inverse: accepts only what store_name_escape produces.  Returns 0 or
 * -1 (out unchanged). */
int store_name_unescape(const char *dirname, size_t len, struct buf *out) PETREL_MUST_CHECK;
/* Folder name -> path relative to the user's directory ("INBOX/a b" ->
 * "Inbox/a b").  Checks store_folder_name_valid.  Returns 0 or -1. */
int store_folder_path(const char *name, struct buf *out, const char **reason_r) PETREL_MUST_CHECK;
/* Relative path -> folder name; -1 for a path that no name produces. */
int store_folder_name_from_path(const char *path, struct buf *out) PETREL_MUST_CHECK;
/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool store_utf8_valid(const char *s, size_t len);

#endif
