/*
 * The indexer: derives from the message files what delivery and a lazy
 * rebuild leave for later (msgs.pending): the full-text entry (FTS5) and,
 * after a rebuild from a directory listing, the cached columns (envelope,
 * body structure, headers, sort and thread keys, preview).
 *
 * Why later: tokenizing a message's text into FTS5 (and extracting it)
 * was most of a delivery's CPU; a rebuild that parsed every file took
 * 41 s for 100 000 messages before the first SELECT could answer.  The
 * pending mark is written in the delivery's own transaction, so a crash
 * loses no indexing work; the work is done in batches (one transaction
 * each) by
 *  - a background thread per store (queue of referenced folders, run at a
 *    lower CPU priority, a short delay so that batches fill up);
 *  - a SEARCH or SORT that needs derived data, synchronously, for its
 *    folder's pending messages first (store_search.c), so that a search
 *    never misses a delivered message.
 *
 * A batch reads its work list under the folder lock, parses the files
 * without any lock (deliveries go on meanwhile), then writes the results
 * in one transaction.  A row is only updated while still pending, so two
 * passes never index one message twice; folder->ilock keeps passes on one
 * folder apart so the parsing is not done twice either.  The indexer's
 * commits are not fsynced (synchronous=NORMAL for that transaction): a
 * crash may lose them, which only leaves the rows pending again; the next
 * delivery's WAL fsync covers them.
 */
#include "store/store_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

/* A batch: at most this many messages, and stops past this much text.
 * Its commit (the FTS inserts) holds the folder lock, which deliveries
 * wait for: small batches keep that wait short. */
#define INDEX_BATCH_MSGS 100
#define INDEX_BATCH_TEXT (1024u * 1024)
/* The background thread indexes a folder once no delivery has come for
 * this long, so that a burst of deliveries does not share the folder lock
 * and the disk with it; but at the latest this long after it was queued.
 * (A search never waits for it: it catches up itself.) */
#define INDEX_QUIET_MS 200
#define INDEX_MAX_WAIT_MS 3000
/* Nice value of the background thread: deliveries and sessions first. */
#define INDEX_NICE 10

struct job {
	uint32_t uid;
	int pending;
	uint64_t size;
	char *file, *path;
	bool ok;                      /* the file was read */
	size_t len;
	struct mime_summary sum;
};

static void jobs_free(struct job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(jobs[i].file);
		free(jobs[i].path);
		if (jobs[i].ok)
			mime_summary_deinit(&jobs[i].sum);
	}
	free(jobs);
}

/* The next batch's work list (folder locked). */
static int jobs_list(struct store_folder *f, struct job **jobs_r, size_t *n_r)
{
	sqlite3_stmt *st = db_prepare(f, "SELECT uid, pending, file, size FROM msgs"
				      " WHERE pending != 0 ORDER BY uid LIMIT ?");
	struct job *jobs;
	size_t n = 0;
	int rc;

	if (st == NULL)
		return sqlite3_errcode(f->db);
	jobs = xcalloc(INDEX_BATCH_MSGS, sizeof(*jobs));
	sqlite3_bind_int(st, 1, INDEX_BATCH_MSGS);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < INDEX_BATCH_MSGS) {
		jobs[n].uid = (uint32_t)sqlite3_column_int64(st, 0);
		jobs[n].pending = sqlite3_column_int(st, 1);
		jobs[n].file = xstrdup((const char *)sqlite3_column_text(st, 2));
		jobs[n].path = folder_msg_path(f, jobs[n].file);
		jobs[n].size = (uint64_t)sqlite3_column_int64(st, 3);
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		jobs_free(jobs, n);
		return rc;
	}
	*jobs_r = jobs;
	*n_r = n;
	return SQLITE_OK;
}

/* Reads and parses the files of jobs[0..n); returns how many were done
 * before the text bound (at least one). */
static size_t jobs_parse(struct store_folder *f, struct job *jobs, size_t n)
{
	const struct mime_limits *lim = &f->user->store->set.mime;
	size_t text = 0, i;

	for (i = 0; i < n && (i == 0 || text < INDEX_BATCH_TEXT); i++) {
		char *data;

		/* index_read_message turns bare LF of a file added by hand
		 * into CRLF (RFC822.SIZE is the file size). */
		if (index_read_message(f, jobs[i].path, &data, &jobs[i].len) < 0) {
			log_warn("store", "folder=%s cannot read %s: %s (not indexed)", f->dir, jobs[i].path,
				 strerror(errno));
			continue;
		}
		mime_summarize(data, jobs[i].len, lim, true, &jobs[i].sum);
		free(data);
		jobs[i].ok = true;
		text += jobs[i].sum.text.len + jobs[i].sum.header_text.len;
	}
	return i;
}

static int fts_insert(struct store_folder *f, const struct job *j)
{
	sqlite3_stmt *st;
	int rc;

	if (f->st_fts == NULL &&
	    sqlite3_prepare_v3(f->db, "INSERT INTO fts(rowid, hdr, body) VALUES (?, ?, ?)", -1,
			       SQLITE_PREPARE_PERSISTENT, &f->st_fts, NULL) != SQLITE_OK)
		return sqlite3_errcode(f->db);
	st = f->st_fts;
	sqlite3_bind_int64(st, 1, j->uid);
	sqlite3_bind_text(st, 2, j->sum.header_text.data != NULL ? j->sum.header_text.data : "",
			  (int)j->sum.header_text.len, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, j->sum.text.data != NULL ? j->sum.text.data : "", (int)j->sum.text.len,
			  SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Is the message's file still there (folder locked: f->dir is current)? */
static bool file_exists(struct store_folder *f, const char *file)
{
	char *path = folder_msg_path(f, file);
	bool ok = access(path, F_OK) == 0;

	free(path);
	return ok;
}

/* Writes one parsed message (folder locked, in a transaction).  Only a row
 * still pending as listed is touched; *changed_r counts it. */
static int job_store(struct store_folder *f, sqlite3_stmt *cache, sqlite3_stmt *done,
		     const struct job *j, int64_t *bytes_delta, size_t *changed_r)
{
	sqlite3_stmt *st;
	int rc;

	/* Unreadable but there (a folder renamed meanwhile, a transient
	 * error): stays pending for the next pass. */
	if (!j->ok && file_exists(f, j->file))
		return SQLITE_OK;
	if (j->ok && (j->pending & PENDING_CACHE) != 0) {
		int i = index_bind_summary(cache, 1, &j->sum);

		sqlite3_bind_int64(cache, i++, (int64_t)j->len);
		sqlite3_bind_int64(cache, i++, j->uid);
		sqlite3_bind_int(cache, i, j->pending);
		st = cache;
	} else {
		/* FTS only, or an unreadable file: nothing more to hope for
		 * from it until a re-index. */
		sqlite3_bind_int64(done, 1, j->uid);
		sqlite3_bind_int(done, 2, j->pending);
		st = done;
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return rc;
	if (sqlite3_changes(f->db) == 0)
		return SQLITE_OK;      /* indexed meanwhile, or expunged */
	(*changed_r)++;
	if (st == cache && j->len != j->size)
		*bytes_delta += (int64_t)j->len - (int64_t)j->size;
	if (j->ok && (j->pending & PENDING_FTS) != 0)
		return fts_insert(f, j);
	return SQLITE_OK;
}

/* Commits the parsed jobs (folder locked); *changed_r rows were indexed. */
static int jobs_commit(struct store_folder *f, const struct job *jobs, size_t n, int64_t *bytes_delta,
		       size_t *changed_r)
{
	char sql[1024];
	sqlite3_stmt *cache = NULL, *done = NULL;
	bool fsync_on = f->user->store->set.fsync;
	int rc;

	snprintf(sql, sizeof(sql), "UPDATE msgs SET %s, size = ?, pending = 0 WHERE uid = ? AND pending = ?",
		 index_summary_columns);
	/* Not fsynced: losing this commit only leaves the rows pending. */
	if (fsync_on)
		(void)db_exec(f->db, "PRAGMA synchronous=NORMAL");
	if ((rc = db_exec(f->db, "BEGIN IMMEDIATE")) != SQLITE_OK)
		goto out;
	cache = db_prepare(f, sql);
	done = db_prepare(f, "UPDATE msgs SET pending = 0 WHERE uid = ? AND pending = ?");
	if (cache == NULL || done == NULL) {
		rc = sqlite3_errcode(f->db);
		goto out;
	}
	for (size_t i = 0; i < n && rc == SQLITE_OK; i++)
		rc = job_store(f, cache, done, &jobs[i], bytes_delta, changed_r);
	if (rc == SQLITE_OK && *bytes_delta != 0) {
		snprintf(sql, sizeof(sql), "UPDATE folder SET bytes = bytes + %lld WHERE id = 1",
			 (long long)*bytes_delta);
		rc = db_exec(f->db, sql);
	}
	if (rc == SQLITE_OK)
		rc = db_exec(f->db, "COMMIT");
out:
	sqlite3_finalize(cache);
	sqlite3_finalize(done);
	if (rc != SQLITE_OK) {
		db_exec(f->db, "ROLLBACK");
		*bytes_delta = 0;
		*changed_r = 0;
	}
	if (fsync_on)
		(void)db_exec(f->db, "PRAGMA synchronous=FULL");
	return rc;
}

/* One batch.  locked: the caller holds the folder lock for all of it;
 * otherwise ilock is held and the files are parsed unlocked.  *more_r says
 * whether pending rows may remain. */
static enum store_status index_batch(struct store_folder *f, bool locked, bool *more_r,
				     const char **error_r)
{
	struct job *jobs = NULL;
	size_t n = 0, parsed, changed = 0;
	enum store_status ret = STORE_OK;
	int64_t bytes_delta = 0;
	dev_t dev;
	ino_t ino;
	int rc;

	*more_r = false;
	if (!locked && (ret = folder_lock(f, error_r)) != STORE_OK)
		return ret;
	if ((rc = jobs_list(f, &jobs, &n)) != SQLITE_OK) {
		ret = folder_db_error(f, rc, "index", error_r);
		goto unlock;
	}
	dev = f->index_dev;
	ino = f->index_ino;
	if (n == 0)
		goto unlock;
	if (!locked)
		folder_unlock(f);
	parsed = jobs_parse(f, jobs, n);
	if (!locked && (ret = folder_lock(f, error_r)) != STORE_OK)
		goto out;
	/* The index was replaced meanwhile (a rebuild): the UIDs listed may
	 * name other files now; the next pass starts again. */
	if (f->index_dev == dev && f->index_ino == ino) {
		rc = jobs_commit(f, jobs, parsed, &bytes_delta, &changed);
		if (rc != SQLITE_OK) {
			ret = folder_db_error(f, rc, "index", error_r);
			goto unlock;
		}
		/* No progress (every file unreadable for now): stop rather
		 * than list the same rows again at once. */
		*more_r = changed > 0 || parsed < n;
	} else {
		*more_r = true;
	}
unlock:
	if (!locked)
		folder_unlock(f);
out:
	if (bytes_delta != 0)
		user_usage_add(f->user, bytes_delta, 0);
	jobs_free(jobs, n);
	return ret;
}

enum store_status folder_index_all(struct store_folder *f, const char **error_r)
{
	enum store_status ret = STORE_OK;
	bool more = true;

	pthread_mutex_lock(&f->ilock);
	while (more && ret == STORE_OK)
		ret = index_batch(f, false, &more, error_r);
	pthread_mutex_unlock(&f->ilock);
	return ret;
}

enum store_status folder_index_locked(struct store_folder *f, const char **error_r)
{
	enum store_status ret = STORE_OK;
	bool more = true;

	while (more && ret == STORE_OK && f->db != NULL)
		ret = index_batch(f, true, &more, error_r);
	return ret;
}

enum store_status store_folder_index_pending(struct store_folder *f, bool run, size_t *left_r,
					     const char **error_r)
{
	enum store_status ret = run ? folder_index_all(f, error_r) : STORE_OK;
	sqlite3_stmt *st;

	if (ret != STORE_OK)
		return ret;
	if ((ret = folder_lock(f, error_r)) != STORE_OK)
		return ret;
	st = db_prepare(f, "SELECT count(*) FROM msgs WHERE pending != 0");
	*left_r = st != NULL && sqlite3_step(st) == SQLITE_ROW ? (size_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	folder_unlock(f);
	return STORE_OK;
}

/* --- the background thread --- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void folder_index_later(struct store_folder *f)
{
	struct store *s = f->user->store;
	int64_t now = now_ms();

	pthread_mutex_lock(&s->idx_lock);
	if (!s->idx_running || s->idx_stop || f->idx_queued) {
		f->idx_last = now;
		pthread_mutex_unlock(&s->idx_lock);
		return;
	}
	f->idx_queued = true;
	f->idx_since = f->idx_last = now;
	pthread_mutex_unlock(&s->idx_lock);
	/* The queue's own reference: the folder stays open until indexed. */
	pthread_mutex_lock(&f->user->lock);
	f->refcount++;
	pthread_mutex_unlock(&f->user->lock);
	pthread_mutex_lock(&s->idx_lock);
	if (s->idx_count == s->idx_cap) {
		s->idx_cap = s->idx_cap == 0 ? 16 : s->idx_cap * 2;
		s->idx_queue = xreallocarray(s->idx_queue, s->idx_cap, sizeof(*s->idx_queue));
	}
	s->idx_queue[s->idx_count++] = f;
	pthread_cond_signal(&s->idx_cond);
	pthread_mutex_unlock(&s->idx_lock);
}

void folder_index_if_wanted(struct store_folder *f)
{
	bool wanted;

	pthread_mutex_lock(&f->lock);
	wanted = f->idx_wanted;
	f->idx_wanted = false;
	pthread_mutex_unlock(&f->lock);
	if (wanted)
		folder_index_later(f);
}

/* Waits ms or until stopped or signalled (idx_lock held). */
static void idx_sleep(struct store *s, int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	(void)pthread_cond_timedwait(&s->idx_cond, &s->idx_lock, &ts);
}

/* Takes the first queued folder that is due (idx_lock held); NULL and
 * *wait_r (ms) when none is yet. */
static struct store_folder *idx_take(struct store *s, int64_t *wait_r)
{
	int64_t now = now_ms();

	*wait_r = INDEX_MAX_WAIT_MS;
	for (size_t i = 0; i < s->idx_count; i++) {
		struct store_folder *f = s->idx_queue[i];
		int64_t due = f->idx_last + INDEX_QUIET_MS;

		if (f->idx_since + INDEX_MAX_WAIT_MS < due)
			due = f->idx_since + INDEX_MAX_WAIT_MS;
		if (due <= now) {
			memmove(s->idx_queue + i, s->idx_queue + i + 1,
				(s->idx_count - i - 1) * sizeof(*s->idx_queue));
			s->idx_count--;
			/* Deliveries from now on queue it again. */
			f->idx_queued = false;
			return f;
		}
		if (due - now < *wait_r)
			*wait_r = due - now;
	}
	return NULL;
}

static void *indexer_main(void *arg)
{
	struct store *s = arg;

	/* Linux: a thread's nice value is its own. */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), INDEX_NICE);
	pthread_mutex_lock(&s->idx_lock);
	while (!s->idx_stop) {
		struct store_folder *f;
		const char *err;
		bool more = true;

		int64_t wait;

		if (s->idx_count == 0) {
			pthread_cond_wait(&s->idx_cond, &s->idx_lock);
			continue;
		}
		f = idx_take(s, &wait);
		if (f == NULL) {
			idx_sleep(s, wait);
			continue;
		}
		pthread_mutex_unlock(&s->idx_lock);
		while (more) {
			enum store_status st;

			/* ilock per batch: a search waiting to catch up takes
			 * its turn between two. */
			pthread_mutex_lock(&f->ilock);
			st = index_batch(f, false, &more, &err);
			pthread_mutex_unlock(&f->ilock);
			if (st != STORE_OK) {
				/* Deleted, renamed away, disk trouble: the rows stay
				 * pending for a later pass or a search. */
				log_debug("store", "background indexing stopped: %s", err);
				break;
			}
			pthread_mutex_lock(&s->idx_lock);
			if (s->idx_stop)
				more = false;
			pthread_mutex_unlock(&s->idx_lock);
		}
		store_folder_close(&f);
		pthread_mutex_lock(&s->idx_lock);
	}
	pthread_mutex_unlock(&s->idx_lock);
	return NULL;
}

void indexer_start(struct store *s)
{
	pthread_mutex_init(&s->idx_lock, NULL);
	pthread_cond_init(&s->idx_cond, NULL);
	if (!s->set.background_index)
		return;
	if (pthread_create(&s->idx_thread, NULL, indexer_main, s) != 0) {
		log_warn("store", "cannot start the background indexer: %s (searches index on demand)",
			 strerror(errno));
		return;
	}
	s->idx_running = true;
}

void indexer_stop(struct store *s)
{
	pthread_mutex_lock(&s->idx_lock);
	s->idx_stop = true;
	pthread_cond_broadcast(&s->idx_cond);
	pthread_mutex_unlock(&s->idx_lock);
	if (s->idx_running)
		pthread_join(s->idx_thread, NULL);
	s->idx_running = false;
	/* Folders still queued: their work stays pending in their index. */
	for (size_t i = 0; i < s->idx_count; i++) {
		s->idx_queue[i]->idx_queued = false;
		store_folder_close(&s->idx_queue[i]);
	}
	free(s->idx_queue);
	s->idx_queue = NULL;
	s->idx_count = s->idx_cap = 0;
}
