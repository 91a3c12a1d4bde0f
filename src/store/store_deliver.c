/*
 * Local delivery, IMAP APPEND, COPY and MOVE.
 *
 * Durability (STYLE.md §5, DESIGN.md): the message is written to a temp
 * file in the folder directory and fsynced; then, in one index transaction
 * per batch, each message is renamed (or hard-linked) to #msgs/<uid>.eml,
 * #msgs is fsynced once, the rows are inserted and the transaction commits
 * (WAL fsync).  Only then does the caller acknowledge.  Every failure
 * removes what it made: no partial file, index unchanged.
 *
 * Group commit: concurrent deliveries to one folder each write and fsync
 * their own temp file in parallel, then queue; the first in line becomes
 * the leader and commits everything queued in one transaction (one #msgs
 * fsync, one WAL fsync), the others wait for its result.
 *
 * Delivery keys (store_deliver_once, docs/decisions.md): a keyed delivery
 * records SHA-256(key) in the delivery_keys table in the same transaction
 * as its message row, so a redelivery after a crash (the queue had not yet
 * recorded the success) finds it and writes nothing.  For the crash
 * between the rename into #msgs and the commit, the key must be on disk
 * with the file before the rename is: it is an extended attribute of the
 * temp file (STORE_KEY_XATTR), set before the file's own fsync, so it
 * costs no flush of its own.  Where the file system has no user xattrs,
 * the file gets a second link "#tmp.dk.<hash>.<guid>" in the folder
 * directory instead, which costs a directory fsync per batch before the
 * renames; the marker is removed after the commit.  The open that adopts
 * an orphan reads the attribute, or finds the marker by inode, and
 * records the key.
 */
#include "store/store_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/str.h"

struct pending {
	struct pending *next;
	/* in */
	const char *src;              /* temp file (renamed) or shared file (linked) */
	bool link;
	uint32_t flags;
	const char *const *keywords;  /* names, or NULL */
	uint64_t kwmask_src;          /* unused */
	int64_t internal_date, save_date;
	int tz;
	uint64_t size;
	const char *guid;
	const struct mime_summary *sum;
	const char *key;              /* hash of the delivery key, or NULL */
	bool key_in_file;             /* src carries key as STORE_KEY_XATTR: no marker */
	/* out */
	bool duplicate;               /* key known: uid is the first delivery's */
	struct pending *dup_of;       /* same key earlier in the batch */
	char *marker;                 /* second link while committing */
	bool done;
	enum store_status status;
	const char *error;            /* errbuf, or NULL */
	char errbuf[256];             /* the leader writes it, this thread reads it */
	uint32_t uid;
	char *final;
};

static char *folder_dir_copy(struct store_folder *f)
{
	char *d;

	pthread_mutex_lock(&f->lock);
	d = xstrdup(f->dir);
	pthread_mutex_unlock(&f->lock);
	return d;
}

/* Marks p failed with its own copy of the message: the leader's error
 * buffer (store_errf) is overwritten by its next call while p's thread
 * reads. */
static void PETREL_PRINTF(3, 4) pending_fail(struct pending *p, enum store_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->errbuf, sizeof(p->errbuf), fmt, ap);
	va_end(ap);
	p->status = st;
	p->error = p->errbuf;
}

static void fail_all(struct pending *batch, enum store_status st, const char *error)
{
	for (struct pending *p = batch; p != NULL; p = p->next) {
		if (p->final != NULL) {
			(void)fileio_unlink(p->final);
			free(p->final);
			p->final = NULL;
		}
		if (p->marker != NULL) {
			(void)fileio_unlink(p->marker);
			free(p->marker);
			p->marker = NULL;
		}
		if (p->status == STORE_OK)
			pending_fail(p, st, "%s", error);
	}
}

void store_delivery_key_hash(const char *key, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (EVP_Digest(key, strlen(key), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		panic("store: SHA-256 failed");
	str_hex(md, sizeof(md), out);
}

int delivery_keys_create(sqlite3 *db)
{
	return db_exec(db, "CREATE TABLE IF NOT EXISTS delivery_keys(key TEXT PRIMARY KEY,"
		       " uid INTEGER NOT NULL, time INTEGER NOT NULL) WITHOUT ROWID;"
		       "CREATE INDEX IF NOT EXISTS delivery_keys_time ON delivery_keys(time);");
}

/* 1 and *uid_r when the folder knows hash, 0 when not, -1 on a database
 * error (folder locked). */
static int key_known(struct store_folder *f, const char *hash, uint32_t *uid_r)
{
	sqlite3_stmt *st = db_prepare(f, "SELECT uid FROM delivery_keys WHERE key = ?");
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*uid_r = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int key_record(struct store_folder *f, const char *hash, uint32_t uid, int64_t now)
{
	sqlite3_stmt *st = db_prepare(f, "INSERT OR IGNORE INTO delivery_keys(key, uid, time) VALUES (?,?,?)");
	int rc;

	if (st == NULL)
		return sqlite3_errcode(f->db);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int64(st, 3, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Forgets keys older than the setting, at most once an hour per folder
 * (folder locked, in a transaction).  A failure only delays it. */
static void keys_prune(struct store_folder *f, int64_t now)
{
	int64_t ttl = f->user->store->set.delivery_key_ttl;
	char sql[128];

	if (ttl <= 0 || now - f->keys_pruned < 3600)
		return;
	snprintf(sql, sizeof(sql), "DELETE FROM delivery_keys WHERE time < %lld", (long long)(now - ttl));
	if (db_exec(f->db, sql) == SQLITE_OK)
		f->keys_pruned = now;
}

static bool is_key_hash(const char *hash)
{
	return strlen(hash) == 64 && strspn(hash, "0123456789abcdef") == 64;
}

int delivery_key_adopt(struct store_folder *f, const char *path, const struct stat *file, uint32_t uid,
		       char **marker_r)
{
	DIR *d;
	struct dirent *de;
	int rc = SQLITE_OK;
	size_t plen = strlen(STORE_KEY_MARKER_PREFIX);
	unsigned char attr[32];

	*marker_r = NULL;
	if (getxattr(path, STORE_KEY_XATTR, attr, sizeof(attr)) == (ssize_t)sizeof(attr)) {
		char hash[65];

		str_hex(attr, sizeof(attr), hash);
		return key_record(f, hash, uid, time(NULL));
	}
	d = opendir(f->dir);
	if (d == NULL)
		return SQLITE_OK;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		char hash[65];

		if (!str_has_prefix(de->d_name, STORE_KEY_MARKER_PREFIX) || strlen(de->d_name) < plen + 65 ||
		    de->d_name[plen + 64] != '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    st.st_ino != file->st_ino || st.st_dev != file->st_dev)
			continue;
		memcpy(hash, de->d_name + plen, 64);
		hash[64] = '\0';
		if (!is_key_hash(hash))
			continue;
		rc = key_record(f, hash, uid, time(NULL));
		*marker_r = folder_file(f, de->d_name);
		break;
	}
	closedir(d);
	return rc;
}

/* Before the renames: looks up the batch's keys and links each new keyed
 * file to its marker.  Returns SQLITE_OK or the error that fails the batch;
 * *markers_r says whether a marker was made. */
static int batch_keys(struct store_folder *f, struct pending *batch, bool *markers_r)
{
	*markers_r = false;
	for (struct pending *p = batch; p != NULL; p = p->next) {
		char guid[33];
		int k;

		if (p->key == NULL)
			continue;
		k = key_known(f, p->key, &p->uid);
		if (k < 0)
			return sqlite3_errcode(f->db) != SQLITE_OK ? sqlite3_errcode(f->db) : SQLITE_ERROR;
		if (k > 0) {
			p->duplicate = true;
			continue;
		}
		for (struct pending *q = batch; q != p; q = q->next) {
			if (q->key != NULL && !q->duplicate && q->dup_of == NULL && strcmp(q->key, p->key) == 0)
				p->dup_of = q;
		}
		if (p->dup_of != NULL || p->key_in_file)
			continue;
		store_guid(guid);
		p->marker = xasprintf("%s/" STORE_KEY_MARKER_PREFIX "%s.%s", f->dir, p->key, guid);
		if (link(p->src, p->marker) < 0) {
			pending_fail(p, store_errno_status(errno), "cannot store message: %s", strerror(errno));
			free(p->marker);
			p->marker = NULL;
			continue;
		}
		*markers_r = true;
	}
	return SQLITE_OK;
}

/* After the commit: markers go, duplicates inside the batch get the UID
 * (or the failure) of the first delivery with their key. */
static void batch_keys_done(struct pending *batch)
{
	for (struct pending *p = batch; p != NULL; p = p->next) {
		if (p->marker != NULL) {
			(void)fileio_unlink(p->marker);
			free(p->marker);
			p->marker = NULL;
		}
		if (p->dup_of != NULL) {
			p->duplicate = p->dup_of->status == STORE_OK;
			p->uid = p->dup_of->uid;
			p->status = p->dup_of->status;
			p->error = NULL;
			if (p->dup_of->error != NULL)
				pending_fail(p, p->dup_of->status, "%s", p->dup_of->error);
		}
	}
}

/* The leader's work: one transaction for the whole batch. */
static void commit_batch(struct store_folder *f, struct pending *batch)
{
	const char *error;
	enum store_status st = folder_lock(f, &error);
	int64_t uidnext, modseq, now = time(NULL);
	char *msgs_dir;
	uint32_t *uids = NULL;
	size_t nuids = 0, nok = 0;
	bool markers;
	int rc;

	for (struct pending *p = batch; p != NULL; p = p->next) {
		p->status = STORE_OK;
		p->final = NULL;
		p->marker = NULL;
		p->duplicate = false;
		p->dup_of = NULL;
	}
	if (st != STORE_OK) {
		fail_all(batch, st, error);
		return;
	}
	if ((rc = db_exec(f->db, "BEGIN IMMEDIATE")) != SQLITE_OK) {
		st = folder_db_error(f, rc, "deliver", &error);
		fail_all(batch, st, error);
		folder_unlock(f);
		return;
	}
	uidnext = db_meta_int(f, "uidnext");
	modseq = db_meta_int(f, "highestmodseq") + 1;
	msgs_dir = folder_file(f, STORE_MSGS_DIR);
	if ((rc = batch_keys(f, batch, &markers)) != SQLITE_OK) {
		st = folder_db_error(f, rc, "deliver", &error);
		goto rollback;
	}
	/* The markers are on disk before any file they name is in #msgs. */
	if (markers && store_fsync_dir(f->user->store, f->dir) < 0) {
		st = store_errno_status(errno);
		error = store_errf("cannot fsync %s: %s", f->dir, strerror(errno));
		goto rollback;
	}
	for (struct pending *p = batch; p != NULL; p = p->next) {
		char name[32];
		struct stat sb;
		int r;

		if (p->status != STORE_OK || p->duplicate || p->dup_of != NULL)
			continue;
		for (;;) {
			snprintf(name, sizeof(name), "%lld.eml", (long long)uidnext);
			p->final = folder_msg_path(f, name);
			/* Taken by a stray file: never overwrite. */
			if (lstat(p->final, &sb) < 0)
				break;
			free(p->final);
			uidnext++;
		}
		r = p->link ? link(p->src, p->final) : fileio_rename(p->src, p->final);
		if (r < 0) {
			pending_fail(p, store_errno_status(errno), "cannot store message: %s", strerror(errno));
			free(p->final);
			p->final = NULL;
			continue;
		}
		p->uid = (uint32_t)uidnext++;
		nok++;
	}
	if (nok > 0 && store_fsync_dir(f->user->store, msgs_dir) < 0) {
		st = store_errno_status(errno);
		error = store_errf("cannot fsync %s: %s", msgs_dir, strerror(errno));
		goto rollback;
	}
	for (struct pending *p = batch; p != NULL; p = p->next) {
		uint64_t kw = 0;
		int k;
		const char *base;

		if (p->status != STORE_OK || p->final == NULL)
			continue;
		k = keywords_to_mask(f, p->keywords, true, &kw);
		if (k == -3) {
			st = folder_db_error(f, sqlite3_errcode(f->db), "deliver", &error);
			goto rollback;
		}
		if (k != 0)
			kw = 0;    /* an APPEND keyword past the limit is dropped, not the mail */
		base = strrchr(p->final, '/') + 1;
		rc = index_insert(f, p->uid, base, p->flags & STORE_F_ALL, kw, (uint64_t)modseq,
				  p->internal_date, p->tz, p->save_date, p->size, p->guid, p->sum);
		if (rc == SQLITE_OK && p->key != NULL)
			rc = key_record(f, p->key, p->uid, now);
		if (rc != SQLITE_OK) {
			st = folder_db_error(f, rc, "deliver", &error);
			goto rollback;
		}
		uids = xreallocarray(uids, nuids + 1, sizeof(*uids));
		uids[nuids++] = p->uid;
	}
	for (struct pending *p = batch; p != NULL; p = p->next) {
		if (p->key != NULL) {
			keys_prune(f, now);
			break;
		}
	}
	{
		char sql[160];

		snprintf(sql, sizeof(sql), "UPDATE folder SET uidnext = %lld, highestmodseq = %lld WHERE id = 1",
			 (long long)uidnext, (long long)(nuids > 0 ? modseq : modseq - 1));
		if ((rc = db_exec(f->db, sql)) != SQLITE_OK || (rc = db_exec(f->db, "COMMIT")) != SQLITE_OK) {
			st = folder_db_error(f, rc, "deliver", &error);
			goto rollback;
		}
	}
	for (struct pending *p = batch; p != NULL; p = p->next) {
		free(p->final);
		p->final = NULL;
	}
	batch_keys_done(batch);
	if (nuids > 0)
		folder_post_event(f, STORE_EV_NEW, uids, nuids);
	folder_unlock(f);
	free(uids);
	free(msgs_dir);
	return;
rollback:
	if (f->db != NULL)
		db_exec(f->db, "ROLLBACK");
	fail_all(batch, st, error);
	batch_keys_done(batch);
	folder_unlock(f);
	free(uids);
	free(msgs_dir);
}

/* Queues p and waits until a leader (maybe this thread) has committed it. */
static void group_commit(struct store_folder *f, struct pending *p)
{
	p->next = NULL;
	p->done = false;
	pthread_mutex_lock(&f->commit_lock);
	if (f->queue_tail != NULL)
		f->queue_tail->next = p;
	else
		f->queue = p;
	f->queue_tail = p;
	while (!p->done) {
		if (!f->leader) {
			struct pending *batch = f->queue;

			f->leader = true;
			f->queue = f->queue_tail = NULL;
			pthread_mutex_unlock(&f->commit_lock);
			commit_batch(f, batch);
			pthread_mutex_lock(&f->commit_lock);
			for (struct pending *q = batch, *next; q != NULL; q = next) {
				next = q->next;
				q->done = true;
			}
			f->leader = false;
			pthread_cond_broadcast(&f->commit_cond);
		} else {
			pthread_cond_wait(&f->commit_cond, &f->commit_lock);
		}
	}
	pthread_mutex_unlock(&f->commit_lock);
	folder_dispatch(f);
	/* The full-text entry is the indexer's (store_indexer.c). */
	if (p->status == STORE_OK && !p->duplicate)
		folder_index_later(f);
}

/* Writes data to a new temp file in dir and fsyncs it.  key_hash, when
 * not NULL, goes into the file's STORE_KEY_XATTR before the fsync;
 * *key_set_r says whether the file system took it.  Returns the path
 * (caller frees) or NULL with *st_r / *error_r; nothing is left behind. */
static char *write_temp(struct store *store, const char *dir, const char *data, size_t len,
			const char *key_hash, bool *key_set_r, enum store_status *st_r, const char **error_r)
{
	char guid[33], *path;
	int fd;

	if (key_set_r != NULL)
		*key_set_r = false;
	store_guid(guid);
	path = xasprintf("%s/" STORE_TMP_PREFIX "%s", dir, guid);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, STORE_FILE_MODE);
	if (fd < 0) {
		*st_r = errno == ENOENT ? STORE_E_NOTFOUND : store_errno_status(errno);
		*error_r = store_errf("cannot create message file: %s", strerror(errno));
		free(path);
		return NULL;
	}
	/* ENOTSUP (no user xattrs here) and the like: the caller falls back
	 * to a marker link. */
	if (key_hash != NULL) {
		unsigned char md[32];

		*key_set_r = str_unhex(key_hash, strlen(key_hash), md, sizeof(md)) == 0 &&
			     fileio_fsetxattr(fd, STORE_KEY_XATTR, md, sizeof(md)) == 0;
	}
	if (fileio_write_all(fd, data, len) < 0 || store_fsync_fd(store, fd) < 0) {
		*st_r = store_errno_status(errno);
		*error_r = store_errf("cannot write message file: %s", strerror(errno));
		close(fd);
		(void)fileio_unlink(path);
		free(path);
		return NULL;
	}
	if (close(fd) < 0) {
		*st_r = store_errno_status(errno);
		*error_r = store_errf("cannot write message file: %s", strerror(errno));
		(void)fileio_unlink(path);
		free(path);
		return NULL;
	}
	return path;
}

/* CRLF copy of data when it has bare LFs (NULL when it has none). */
static char *normalize(const char *data, size_t len, size_t *len_r)
{
	size_t bare = 0;
	char *out, *o;

	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			bare++;
	}
	if (bare == 0)
		return NULL;
	out = o = xmalloc(len + bare + 1);   /* @UNSAFE: at most 2 * len */
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			*o++ = '\r';
		*o++ = data[i];
	}
	*len_r = (size_t)(o - out);
	return out;
}

/* A keyed delivery the folder already has: 1 (and r filled), 0, or -1
 * with r's status set. */
static int deliver_known(struct store_rcpt *r, const char *hash)
{
	struct store_folder *f = r->folder;
	const char *error;
	enum store_status st = folder_lock(f, &error);
	int k;

	if (st != STORE_OK) {
		r->status = st;
		r->error = error;
		return -1;
	}
	k = key_known(f, hash, &r->uid);
	if (k < 0) {
		r->status = folder_db_error(f, sqlite3_errcode(f->db), "deliver", &r->error);
	} else if (k > 0) {
		r->status = STORE_OK;
		r->error = NULL;
		r->duplicate = true;
		r->uidvalidity = f->uidvalidity;
	}
	folder_unlock(f);
	return k;
}

/* One recipient of store_deliver_many. */
static void deliver_one(struct store *store, struct store_rcpt *r, const struct store_message *msg,
			const char *data, size_t len, const char *shared, const char *guid,
			const struct mime_summary *sum, int64_t now)
{
	struct store_folder *f = r->folder;
	struct pending p = { 0 };
	char *tmp = NULL, hash[65];
	const char *error = NULL;
	enum store_status st;

	if (r->delivery_key != NULL) {
		store_delivery_key_hash(r->delivery_key, hash);
		p.key = hash;
		/* Before anything is written: a redelivery costs one lookup,
		 * and is not refused by a quota the first delivery filled. */
		if (deliver_known(r, hash) != 0)
			return;
	}
	if (r->ignore_quota) {
		memset(&r->quota, 0, sizeof(r->quota));
		user_usage_add(f->user, (int64_t)len, 1);
		st = STORE_OK;
	} else {
		st = user_usage_reserve(f->user, len, 1, &r->quota, &error);
	}
	if (st != STORE_OK) {
		r->status = st;
		r->error = error;
		return;
	}
	p.link = shared != NULL;
	if (shared != NULL) {
		p.src = shared;
	} else {
		char *dir = folder_dir_copy(f);

		tmp = write_temp(store, dir, data, len, p.key, &p.key_in_file, &st, &error);
		free(dir);
		if (tmp == NULL) {
			user_usage_add(f->user, -(int64_t)len, -1);
			r->status = st;
			r->error = error;
			return;
		}
		p.src = tmp;
	}
	p.flags = r->flags;
	p.keywords = r->keywords;
	p.internal_date = msg->internal_date != 0 ? msg->internal_date : now;
	p.tz = msg->tz;
	p.save_date = now;
	p.size = len;
	p.guid = guid;
	p.sum = sum;
	group_commit(f, &p);
	if (p.status != STORE_OK && p.link && (p.status == STORE_E_TEMP)) {
		/* A hard link can fail across file systems (EXDEV) or
		 * past the link limit: one write for this recipient. */
		char *dir = folder_dir_copy(f);

		tmp = write_temp(store, dir, data, len, p.key, &p.key_in_file, &st, &error);
		free(dir);
		if (tmp != NULL) {
			p.src = tmp;
			p.link = false;
			group_commit(f, &p);
		}
	}
	if (tmp != NULL && (p.status != STORE_OK || p.duplicate))
		(void)fileio_unlink(tmp);
	free(tmp);
	if (p.status != STORE_OK || p.duplicate)
		user_usage_add(f->user, -(int64_t)len, -1);
	if (p.status != STORE_OK) {
		r->status = p.status;
		r->error = store_errf("%s", p.error != NULL ? p.error : "not delivered");
		return;
	}
	r->status = STORE_OK;
	r->error = NULL;
	r->uid = p.uid;
	r->duplicate = p.duplicate;
	pthread_mutex_lock(&f->lock);
	r->uidvalidity = f->uidvalidity;
	pthread_mutex_unlock(&f->lock);
}

void store_deliver_many(const struct store_message *msg, struct store_rcpt *rcpts, size_t count)
{
	struct store *store;
	size_t len = msg->len, nlen = 0;
	char *norm, *shared = NULL, guid[33];
	const char *data = msg->data, *error = NULL;
	enum store_status st = STORE_OK;
	struct mime_summary sum;
	int64_t now = time(NULL);

	if (count == 0)
		return;
	for (size_t i = 0; i < count; i++) {
		rcpts[i].status = STORE_E_TEMP;
		rcpts[i].error = "not delivered";
		rcpts[i].uid = rcpts[i].uidvalidity = 0;
		rcpts[i].duplicate = false;
	}
	store = rcpts[0].folder->user->store;
	norm = normalize(msg->data, msg->len, &nlen);
	if (norm != NULL) {
		data = norm;
		len = nlen;
	}
	if (store->set.max_message_size != 0 && len > store->set.max_message_size) {
		for (size_t i = 0; i < count; i++) {
			rcpts[i].status = STORE_E_TOOBIG;
			rcpts[i].error = "message too big";
		}
		free(norm);
		return;
	}
	/* Parsed once for every recipient; the text for the full-text index
	 * is extracted later by the indexer, off the delivery path. */
	mime_summarize(data, len, &store->set.mime, false, &sum);
	store_guid(guid);
	if (count > 1 && store->set.hardlinks) {
		char *dir = folder_dir_copy(rcpts[0].folder);

		shared = write_temp(store, dir, data, len, NULL, NULL, &st, &error);
		free(dir);
		if (shared == NULL) {
			for (size_t i = 0; i < count; i++) {
				rcpts[i].status = st;
				rcpts[i].error = error;
			}
			goto out;
		}
	}
	for (size_t i = 0; i < count; i++)
		deliver_one(store, &rcpts[i], msg, data, len, shared, guid, &sum, now);
out:
	if (shared != NULL) {
		(void)fileio_unlink(shared);
		free(shared);
	}
	mime_summary_deinit(&sum);
	free(norm);
}

enum store_status store_deliver(struct store_folder *f, const struct store_message *msg,
				uint32_t flags, const char *const *keywords, uint32_t *uidvalidity_r,
				uint32_t *uid_r, const char **error_r)
{
	struct store_rcpt r = { .folder = f, .flags = flags, .keywords = keywords };

	store_deliver_many(msg, &r, 1);
	if (r.status != STORE_OK) {
		*error_r = r.error;
		return r.status;
	}
	if (uidvalidity_r != NULL)
		*uidvalidity_r = r.uidvalidity;
	if (uid_r != NULL)
		*uid_r = r.uid;
	return STORE_OK;
}

enum store_status store_deliver_once(struct store_folder *f, const struct store_message *msg,
				     const char *key, uint32_t *uid_r, bool *duplicate_r,
				     const char **error_r)
{
	struct store_rcpt r = { .folder = f, .delivery_key = key };

	store_deliver_many(msg, &r, 1);
	if (r.status != STORE_OK) {
		*error_r = r.error;
		return r.status;
	}
	if (uid_r != NULL)
		*uid_r = r.uid;
	if (duplicate_r != NULL)
		*duplicate_r = r.duplicate;
	return STORE_OK;
}

/* --- copy and move --- */

struct copy_row {
	uint32_t uid;
	char *path;
	uint32_t flags;
	uint64_t keywords;
	int64_t internal_date;
	int tz;
	uint64_t size;
	char guid[33];
};

enum store_status store_copy(struct store_folder *src, struct store_folder *dst,
			     const struct store_uidset *uids, bool move, struct store_copy_map *map,
			     const char **error_r)
{
	struct store_copy_map m = { 0 };
	struct copy_row *rows = NULL;
	size_t nrows = 0;
	char *kwnames[STORE_MAX_KEYWORDS] = { 0 };
	uint32_t *list = NULL;
	size_t n = 0;
	enum store_status ret;
	uint64_t total = 0;
	bool same_user = src->user == dst->user;
	sqlite3_stmt *st;
	int rc;

	/* 1. Read the source rows (source locked only for this). */
	ret = folder_lock(src, error_r);
	if (ret != STORE_OK)
		return ret;
	if ((rc = folder_collect_uids(src, uids, NULL, &list, &n)) != SQLITE_OK) {
		ret = folder_db_error(src, rc, "copy", error_r);
		folder_unlock(src);
		return ret;
	}
	st = db_prepare(src, "SELECT bit, name FROM keywords");
	while (st != NULL && sqlite3_step(st) == SQLITE_ROW) {
		int64_t b = sqlite3_column_int64(st, 0);

		if (b >= 0 && b < STORE_MAX_KEYWORDS && kwnames[b] == NULL)
			kwnames[b] = xstrdup((const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	rows = xcalloc(n + 1, sizeof(*rows));
	st = db_prepare(src, "SELECT file, flags, keywords, internal_date, tz, size, guid FROM msgs WHERE uid = ?");
	for (size_t i = 0; st != NULL && i < n; i++) {
		sqlite3_bind_int64(st, 1, list[i]);
		if (sqlite3_step(st) == SQLITE_ROW) {
			struct copy_row *r = &rows[nrows++];
			const char *g = (const char *)sqlite3_column_text(st, 6);

			r->uid = list[i];
			r->path = folder_msg_path(src, (const char *)sqlite3_column_text(st, 0));
			r->flags = (uint32_t)sqlite3_column_int64(st, 1);
			r->keywords = (uint64_t)sqlite3_column_int64(st, 2);
			r->internal_date = sqlite3_column_int64(st, 3);
			r->tz = sqlite3_column_int(st, 4);
			r->size = (uint64_t)sqlite3_column_int64(st, 5);
			if (g != NULL && strlen(g) == 32)
				memcpy(r->guid, g, 33);
			else
				store_guid(r->guid);
			total += r->size;
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	folder_unlock(src);
	free(list);

	/* 2. Quota: a move inside one user's mailbox does not grow it. */
	if (!(move && same_user) && nrows > 0) {
		ret = user_usage_reserve(dst->user, total, nrows, NULL, error_r);
		if (ret != STORE_OK)
			goto out;
	}
	m.src_uids = xcalloc(nrows + 1, sizeof(uint32_t));
	m.dst_uids = xcalloc(nrows + 1, sizeof(uint32_t));

	/* 3. Each message goes through the delivery commit: hard link, new
	 * UID, flags and keywords kept. */
	for (size_t i = 0; i < nrows; i++) {
		struct copy_row *r = &rows[i];
		struct mime_summary sum;
		struct pending p = { 0 };
		const char *names[STORE_MAX_KEYWORDS + 1];
		size_t nk = 0;
		char *data;
		size_t len;

		if (fileio_read_all(r->path, (size_t)1 << 31, &data, &len) < 0) {
			/* gone meanwhile (expunged, removed by hand): skip */
			if (!(move && same_user))
				user_usage_add(dst->user, -(int64_t)r->size, -1);
			continue;
		}
		mime_summarize(data, len, &dst->user->store->set.mime, false, &sum);
		for (int b = 0; b < STORE_MAX_KEYWORDS; b++) {
			if ((r->keywords & ((uint64_t)1 << b)) != 0 && kwnames[b] != NULL)
				names[nk++] = kwnames[b];
		}
		names[nk] = NULL;
		p.src = r->path;
		p.link = true;
		p.flags = r->flags;
		p.keywords = names;
		p.internal_date = r->internal_date;
		p.tz = r->tz;
		p.save_date = time(NULL);
		p.size = len;
		p.guid = r->guid;
		p.sum = &sum;
		group_commit(dst, &p);
		if (p.status != STORE_OK) {
			/* cannot link (another file system): one write */
			char *dir = folder_dir_copy(dst);
			enum store_status wst;
			const char *werr;
			char *tmp = write_temp(dst->user->store, dir, data, len, NULL, NULL, &wst, &werr);

			free(dir);
			if (tmp != NULL) {
				p.src = tmp;
				p.link = false;
				group_commit(dst, &p);
				if (p.status != STORE_OK)
					(void)fileio_unlink(tmp);
				free(tmp);
			}
		}
		mime_summary_deinit(&sum);
		free(data);
		if (p.status != STORE_OK) {
			if (!(move && same_user)) {
				for (size_t j = i; j < nrows; j++)
					user_usage_add(dst->user, -(int64_t)rows[j].size, -1);
			}
			*error_r = store_errf("%s", p.error != NULL ? p.error : "not copied");
			ret = p.status;
			goto out;
		}
		m.src_uids[m.count] = r->uid;
		m.dst_uids[m.count] = p.uid;
		m.count++;
	}
	pthread_mutex_lock(&dst->lock);
	m.dst_uidvalidity = dst->uidvalidity;
	pthread_mutex_unlock(&dst->lock);

	/* 4. Move: expunge the copied originals only now. */
	if (move && m.count > 0) {
		struct store_range *ranges = xmallocarray(m.count, sizeof(*ranges));
		struct store_uidset set = { ranges, m.count };

		for (size_t i = 0; i < m.count; i++)
			ranges[i] = (struct store_range){ m.src_uids[i], m.src_uids[i] };
		ret = store_expunge(src, &set, false, NULL, NULL, error_r);
		free(ranges);
		if (ret == STORE_OK && same_user) {
			/* store_expunge subtracted the usage the copy did not add */
			user_usage_add(dst->user, (int64_t)total, (int64_t)m.count);
		}
		if (ret != STORE_OK)
			goto out;
	}
	ret = STORE_OK;
out:
	for (size_t i = 0; i < nrows; i++)
		free(rows[i].path);
	free(rows);
	for (int b = 0; b < STORE_MAX_KEYWORDS; b++)
		free(kwnames[b]);
	if (ret == STORE_OK && map != NULL) {
		*map = m;
	} else {
		store_copy_map_free(&m);
	}
	return ret;
}

void store_copy_map_free(struct store_copy_map *map)
{
	free(map->src_uids);
	free(map->dst_uids);
	memset(map, 0, sizeof(*map));
}
