/*
 * The read connection of a folder.
 *
 * Writers commit with synchronous=FULL while holding folder->lock, so a
 * reader that took the same lock waited for the writer's fsync (tens of
 * milliseconds on a busy disk).  WAL lets readers run beside a writer on
 * another connection: SELECT, FETCH and STATUS read through this one,
 * under their own lock, and never wait for a commit; so do SEARCH and SORT,
 * after the write side has indexed what they need (store_search.c).
 *
 * A read transaction that starts after a commit returned sees it, and
 * change notifications are posted after the commit, so a session that is
 * told of a change and then reads sees it; one that read before the commit
 * is told of it afterwards, as before.
 *
 * The connection is opened through folder_lock, which rebuilds or reopens
 * the index when needed; it belongs to one index file (device and inode)
 * and is reopened when an administrator or a rebuild replaced that file.
 */
#include "store/store_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/str.h"

/* Bytes of index.fld the read connection maps (SQLite caps it at its
 * compile-time SQLITE_MAX_MMAP_SIZE). */
#define STORE_READ_MMAP "1073741824"

void folder_close_rdb(struct store_folder *f)
{
	pthread_mutex_lock(&f->rlock);
	if (f->rdb != NULL) {
		sqlite3_close(f->rdb);
		f->rdb = NULL;
	}
	pthread_mutex_unlock(&f->rlock);
}

/* Is the open read connection still on index.fld?  (rlock held) */
static bool rdb_current(struct store_folder *f)
{
	char *path;
	struct stat st;
	bool same;

	if (f->rdb == NULL)
		return false;
	path = folder_file(f, STORE_INDEX);
	same = stat(path, &st) == 0 && st.st_ino == f->rdb_ino && st.st_dev == f->rdb_dev;
	free(path);
	return same;
}

/* Opens the read connection (folder->lock and rlock held, index open). */
static enum store_status rdb_open(struct store_folder *f, const char **error_r)
{
	char *path = folder_file(f, STORE_INDEX);
	int rc = sqlite3_open_v2(path, &f->rdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);

	free(path);
	if (rc != SQLITE_OK) {
		*error_r = store_errf("cannot open index for reading: %s",
				      f->rdb != NULL ? sqlite3_errmsg(f->rdb) : sqlite3_errstr(rc));
		sqlite3_close(f->rdb);
		f->rdb = NULL;
		return STORE_E_TEMP;
	}
	sqlite3_busy_timeout(f->rdb, 10000);
	sqlite3_extended_result_codes(f->rdb, 0);
	/* this connection never writes */
	(void)db_exec(f->rdb, "PRAGMA query_only=ON");
	search_register_functions(f, f->rdb);
	(void)db_exec(f->rdb, "PRAGMA cell_size_check=ON");
	/* Pages read through a mapping, not one pread() and copy each: a
	 * FETCH over 100 000 messages reads tens of thousands of pages.
	 * Address space only; the pages are the kernel's page cache. */
	(void)db_exec(f->rdb, "PRAGMA mmap_size=" STORE_READ_MMAP);
	f->rdb_dev = f->index_dev;
	f->rdb_ino = f->index_ino;
	return STORE_OK;
}

enum store_status folder_rlock(struct store_folder *f, const char **error_r)
{
	enum store_status ret;

	pthread_mutex_lock(&f->rlock);
	if (rdb_current(f))
		return STORE_OK;
	pthread_mutex_unlock(&f->rlock);
	/* Slow path: folder_lock opens, reopens or rebuilds the index (and
	 * closes a stale read connection through folder_close_db). */
	ret = folder_lock(f, error_r);
	if (ret != STORE_OK)
		return ret;
	pthread_mutex_lock(&f->rlock);
	if (f->rdb != NULL && (f->rdb_ino != f->index_ino || f->rdb_dev != f->index_dev)) {
		sqlite3_close(f->rdb);
		f->rdb = NULL;
	}
	ret = f->rdb != NULL ? STORE_OK : rdb_open(f, error_r);
	folder_unlock(f);
	if (ret != STORE_OK)
		pthread_mutex_unlock(&f->rlock);
	return ret;
}

void folder_runlock(struct store_folder *f)
{
	pthread_mutex_unlock(&f->rlock);
}

sqlite3_stmt *rdb_prepare(struct store_folder *f, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(f->rdb, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	return st;
}

int64_t rdb_meta_int(struct store_folder *f, const char *column)
{
	return sql_meta_int(f->rdb, column);
}

enum store_status rdb_error(struct store_folder *f, int rc, const char *what, const char **error_r)
{
	enum store_status ret;
	const char *why;

	*error_r = store_errf("%s: %s", what, sqlite3_errmsg(f->rdb));
	if ((rc & 0xff) != SQLITE_CORRUPT && (rc & 0xff) != SQLITE_NOTADB) {
		ret = (rc & 0xff) == SQLITE_FULL ? STORE_E_NOSPACE : STORE_E_TEMP;
		(void)db_exec(f->rdb, "ROLLBACK");
		folder_runlock(f);
		return ret;
	}
	/* Corrupt: drop this connection, and let the writer's side move the
	 * index aside so that the next open rebuilds it. */
	sqlite3_close(f->rdb);
	f->rdb = NULL;
	folder_runlock(f);
	if (folder_lock(f, &why) == STORE_OK) {
		(void)folder_db_error(f, rc, what, &why);
		folder_unlock(f);
	}
	return STORE_E_TEMP;
}
