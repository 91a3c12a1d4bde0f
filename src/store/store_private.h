/*
 * Internals of src/store shared between its files.
 *
 * Lock order (never take an earlier lock while holding a later one):
 *   store->lock  >  user->lock  >  folder->lock  >  leaf locks
 * Leaf locks are taken alone, never with another leaf lock, and never held
 * while calling out: store->uv_lock, user->usage_lock, folder->commit_lock,
 * folder->ev_lock, folder->watch_lock.
 *
 *  - store->lock: the list of open users and their reference counts.
 *  - user->lock: the folder tree (create, rename, delete), subscriptions,
 *    roles, the list of open folders and their reference counts.
 *  - folder->lock: the SQLite connection and everything in index.fld.
 *  - folder->rlock: the read-only connection (store_read.c).  Taken after
 *    folder->lock when both are held; a reader holding rlock never waits
 *    for folder->lock, so reads do not queue behind a writer's fsync.
 *  - folder->ilock: one indexing pass at a time per folder
 *    (store_indexer.c).  Taken before folder->lock, never while holding it.
 *  - store->idx_lock: the indexer's queue of folders (a leaf lock).
 */
#ifndef PETREL_STORE_PRIVATE_H
#define PETREL_STORE_PRIVATE_H

#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "store/store.h"

#define STORE_MSGS_DIR "#msgs"
#define STORE_INDEX "index.fld"
#define STORE_INDEX_BAD "index.bad"
#define STORE_INDEX_CORRUPT "index.corrupt"
#define STORE_INDEX_TMP "index.tmp"
#define STORE_SUBSCRIPTIONS "#subscriptions"
#define STORE_SPECIAL_USE "#special-use"
#define STORE_UIDVALIDITY_FILE "#uidvalidity"
#define STORE_TMP_PREFIX "#tmp."
/* A second link to a keyed delivery's file while it is being committed:
 * "#tmp.dk.<key hash>.<guid>" in the folder directory (store_deliver.c). */
#define STORE_KEY_MARKER_PREFIX "#tmp.dk."
/* The same key kept on the file itself (the 32 bytes of the SHA-256),
 * where the file system has user extended attributes: then no marker is
 * needed (store_deliver.c).  Name and value are short enough to live in
 * an ext4 inode of the default size, with no block of their own. */
#define STORE_KEY_XATTR "user.petrel.dk"
#define STORE_DELETED_PREFIX "#deleted."
/* msgs.pending: what is still to be derived from the file (the indexer,
 * store_indexer.c, fills it in batches).  FTS: the full-text entry;
 * CACHE: the cached columns (envelope, structure, headers, sort keys:
 * after a lazy rebuild only). */
#define PENDING_FTS 1
#define PENDING_CACHE 2
/* Indexes below this size get PRAGMA quick_check at their first open in
 * an engine run (store_checked.c). */
#define STORE_CHECK_MAX_BYTES (64 * 1024 * 1024)
#define STORE_DIR_MODE 0700
#define STORE_FILE_MODE 0600

/* Index files already verified in this run (store_checked.c). */
struct checked_file;
struct store_checked {
	pthread_mutex_t lock;
	struct checked_file *files;   /* open addressing, cap a power of two */
	size_t cap, count;
};

void store_checked_init(struct store_checked *c);
void store_checked_deinit(struct store_checked *c);
bool store_checked_has(struct store_checked *c, dev_t dev, ino_t ino);
void store_checked_add(struct store_checked *c, dev_t dev, ino_t ino);

struct store {
	char *root;
	char *mail_dir;
	struct store_settings set;
	pthread_mutex_t lock;
	struct store_user *users;
	pthread_mutex_t uv_lock;
	uint32_t last_uidvalidity;
	/* the background indexer (store_indexer.c) */
	pthread_mutex_t idx_lock;
	pthread_cond_t idx_cond;
	pthread_t idx_thread;
	bool idx_running, idx_stop;
	struct store_folder **idx_queue;   /* referenced folders (idx_lock) */
	size_t idx_count, idx_cap;
	struct store_checked checked;
};

struct store_user {
	struct store *store;
	struct store_user *next;
	int refcount;                 /* store->lock */
	char *domain, *name;
	char *dir;                    /* absolute */
	pthread_mutex_t lock;
	struct store_folder *folders; /* open folders (user->lock) */
	char *roles[STORE_ROLE_COUNT];/* folder name per role (user->lock) */
	pthread_mutex_t usage_lock;
	bool usage_valid;
	uint64_t used_bytes, used_messages;
	uint64_t max_bytes, max_messages;
};

struct ev_node {
	struct ev_node *next;
	struct store_event ev;
	uint32_t *uids;               /* owned */
};

struct store_watch {
	struct store_watch *next;
	struct store_folder *folder;
	store_watch_fn *fn;
	void *context;
	bool removed;
	unsigned running;             /* calls in progress (watch_lock) */
	pthread_t runner;
};

struct pending;

struct store_folder {
	struct store_user *user;      /* referenced */
	struct store_folder *next;
	int refcount;                 /* user->lock */
	char *name;                   /* folder->lock and user->lock to change */
	char *dir;
	pthread_mutex_t lock;
	sqlite3 *db;
	sqlite3_stmt *st_insert, *st_fts;  /* cached for delivery */
	dev_t index_dev;
	ino_t index_ino;
	/* read connection (store_read.c), of the index file rdb_dev/rdb_ino */
	pthread_mutex_t rlock;
	sqlite3 *rdb;
	dev_t rdb_dev;
	ino_t rdb_ino;
	bool deleted;
	/* indexing (store_indexer.c) */
	pthread_mutex_t ilock;
	bool idx_queued;              /* in store->idx_queue (store->idx_lock) */
	int64_t idx_since, idx_last;  /* queued at, last delivery at (ms; idx_lock) */
	bool idx_wanted;              /* pending rows seen at open (folder->lock) */
	uint32_t uidvalidity;         /* of the open index */
	int64_t keys_pruned;          /* last prune of old delivery keys (folder->lock) */
	/* group commit */
	pthread_mutex_t commit_lock;
	pthread_cond_t commit_cond;
	struct pending *queue, *queue_tail;
	bool leader;
	/* notifications */
	pthread_mutex_t ev_lock;
	struct ev_node *ev_head, *ev_tail;
	bool dispatching;
	pthread_mutex_t watch_lock;
	pthread_cond_t watch_cond;
	struct store_watch *watches;
};

/* A thread-local error text: formats into a per-thread buffer and returns
 * it (valid until the next call in this thread). */
const char *store_errf(const char *fmt, ...) PETREL_PRINTF(1, 2);

/* Maps errno of a failed write/fsync/rename to a status. */
enum store_status store_errno_status(int err);

/* A new UIDVALIDITY, larger than every earlier one of this store. */
uint32_t store_new_uidvalidity(struct store *store);

/* --- store_index.c --- */

/* Locks the folder and makes sure its index is open and current (reopens
 * after a rename, rebuilds when index.fld is missing, renamed, corrupt).
 * On failure the folder is unlocked. */
enum store_status folder_lock(struct store_folder *f, const char **error_r) PETREL_MUST_CHECK;
void folder_unlock(struct store_folder *f);
/* Closes the connection (folder locked). */
void folder_close_db(struct store_folder *f);
/* Called when SQLite reports corruption: moves the index aside so that the
 * next folder_lock rebuilds it (folder locked). */
void folder_mark_corrupt(struct store_folder *f, const char *what);
/* Maps a SQLite failure to a status (and handles corruption). */
enum store_status folder_db_error(struct store_folder *f, int rc, const char *what,
				  const char **error_r);

int db_exec(sqlite3 *db, const char *sql);
sqlite3_stmt *db_prepare(struct store_folder *f, const char *sql);
/* One integer column of the folder row (id 1) through db; -1 when absent. */
int64_t sql_meta_int(sqlite3 *db, const char *column);
int64_t db_meta_int(struct store_folder *f, const char *column);

/* Inserts one message row (folder locked, in a transaction).  Its
 * full-text entry is left to the indexer (pending FTS); sum NULL leaves
 * the cached columns empty too (pending CACHE). */
int index_insert(struct store_folder *f, uint32_t uid, const char *file, uint32_t flags,
		 uint64_t keywords, uint64_t modseq, int64_t internal_date, int tz,
		 int64_t save_date, uint64_t size, const char *guid, const struct mime_summary *sum);
/* Binds the cached columns of sum to st from index i on (NULLs when sum is
 * NULL); returns the next index.  Shared with the indexer's UPDATE. */
int index_bind_summary(sqlite3_stmt *st, int i, const struct mime_summary *sum);
/* The cached columns, in index_bind_summary's order. */
extern const char index_summary_columns[];

/* Keyword names -> mask, creating bits (folder locked, in a transaction).
 * Returns 0, or -1 when the folder has no free bit left. */
int keywords_to_mask(struct store_folder *f, const char *const *keywords, bool create,
		     uint64_t *mask_r);

/* Delivery keys (store_deliver.c): the table, created when missing (an
 * index from before it), and the key of an adopted file (path, stat
 * file) from its extended attribute or its marker (folder locked, in a
 * transaction). */
int delivery_keys_create(sqlite3 *db);
int delivery_key_adopt(struct store_folder *f, const char *path, const struct stat *file, uint32_t uid,
		       char **marker_r);

/* Incremental or full re-index (folder locked). */
enum store_status folder_reindex(struct store_folder *f, bool rebuild,
				 struct store_reindex_result *result, const char **error_r);

/* Reads a message file, normalises bare LF to CRLF (rewriting the file
 * when needed) and summarizes it. */
int index_read_message(struct store_folder *f, const char *path, char **data_r, size_t *len_r);

/* --- store_indexer.c --- */

/* Starts and stops the background indexer thread (store_new, store_free).
 * Stopping drops the queued folders' references. */
void indexer_start(struct store *store);
void indexer_stop(struct store *store);
/* Queues the folder for the background indexer (no folder lock held). */
void folder_index_later(struct store_folder *f);
/* Queues it when its open found pending rows (no folder lock held). */
void folder_index_if_wanted(struct store_folder *f);
/* Indexes every pending message of the folder now, in batches (no folder
 * lock held). */
enum store_status folder_index_all(struct store_folder *f, const char **error_r) PETREL_MUST_CHECK;
/* Indexes the pending messages while the folder is locked (the last resort
 * of a search racing with deliveries). */
enum store_status folder_index_locked(struct store_folder *f, const char **error_r) PETREL_MUST_CHECK;

/* --- store_read.c --- */

/* Takes the read connection, opening it (through folder_lock) when it is
 * not open or the index file changed.  On failure nothing is held. */
enum store_status folder_rlock(struct store_folder *f, const char **error_r) PETREL_MUST_CHECK;
void folder_runlock(struct store_folder *f);
/* Closes the read connection (folder->lock held, rlock not). */
void folder_close_rdb(struct store_folder *f);
sqlite3_stmt *rdb_prepare(struct store_folder *f, const char *sql);
int64_t rdb_meta_int(struct store_folder *f, const char *column);
/* Maps a failure on the read connection to a status; releases rlock (and
 * moves a corrupt index aside through folder_db_error). */
enum store_status rdb_error(struct store_folder *f, int rc, const char *what, const char **error_r);

/* --- store_search.c --- */

/* SQL functions used by search (on every new connection). */
void search_register_functions(struct store_folder *f, sqlite3 *db);

/* --- store_folder.c --- */

void folder_post_event(struct store_folder *f, enum store_event_type type, const uint32_t *uids,
		       size_t count);
/* Delivers queued events (no lock held). */
void folder_dispatch(struct store_folder *f);
/* Collects the existing UIDs of a set (folder locked). */
int folder_collect_uids(struct store_folder *f, const struct store_uidset *set, const char *extra_where,
			uint32_t **uids_r, size_t *count_r);

/* --- store.c --- */

/* Adds a signed delta to the user's usage (if computed). */
void user_usage_add(struct store_user *u, int64_t bytes, int64_t messages);
/* Reserves room for a delivery; STORE_E_OVERQUOTA when it does not fit. */
enum store_status user_usage_reserve(struct store_user *u, uint64_t bytes, uint64_t messages,
				     struct store_quota *after_r, const char **error_r);
enum store_role user_role_of(struct store_user *u, const char *name);

/* Path helpers */
char *folder_file(const struct store_folder *f, const char *name);
char *folder_msg_path(const struct store_folder *f, const char *file);
/* A random 128-bit hex id (33 bytes with NUL). */
void store_guid(char out[33]);
/* fsyncs a directory (through the fault seam) unless fsync is off. */
int store_fsync_dir(const struct store *store, const char *dir);
int store_fsync_fd(const struct store *store, int fd);

#endif
