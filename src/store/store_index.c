/*
 * index.fld: one SQLite database per folder, beside #msgs.
 *
 * It is derived state, except for what no .eml file records (UIDs, flags,
 * keywords, modseqs), so:
 *  - WAL with synchronous=FULL: a commit is durable when it returns,
 *    because a UID or a \Seen that goes back after a power cut is visible
 *    to clients (UIDs must never repeat).  Group commit amortises the WAL
 *    fsync over concurrent deliveries.
 *  - A missing index.fld (deleted, or renamed to index.bad by an
 *    administrator) is rebuilt from the files at the next open; a corrupt
 *    one (SQLite reports it, or quick_check fails) is moved to
 *    index.corrupt and rebuilt, with a line in warning.log.  A rebuild reads
 *    what it can of the old file (UIDVALIDITY, UIDs, flags, keywords,
 *    modseqs, expunge history) so clients need not resync; without it a new
 *    UIDVALIDITY is chosen and files named <uid>.eml keep their number.
 *  - The rebuild writes index.tmp with synchronous off and renames it into
 *    place: a crash during it leaves the old state, never half an index.
 *  - A crash after a message was renamed into #msgs but before its index
 *    commit leaves #msgs/<uidnext>.eml: every open adopts such files.
 */
#include "store/store_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/str.h"

static const char schema_sql[] =
	"CREATE TABLE folder("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" uidvalidity INTEGER NOT NULL, uidnext INTEGER NOT NULL,"
	" highestmodseq INTEGER NOT NULL, first_recent_uid INTEGER NOT NULL DEFAULT 1,"
	" vanished_floor INTEGER NOT NULL DEFAULT 0,"
	" messages INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,"
	" unseen INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0,"
	" created INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE msgs("
	" uid INTEGER PRIMARY KEY, file TEXT NOT NULL UNIQUE,"
	" flags INTEGER NOT NULL, keywords INTEGER NOT NULL DEFAULT 0, modseq INTEGER NOT NULL,"
	" internal_date INTEGER NOT NULL, tz INTEGER NOT NULL DEFAULT 0,"
	" save_date INTEGER NOT NULL, size INTEGER NOT NULL, header_size INTEGER NOT NULL,"
	" guid TEXT NOT NULL, sent_date INTEGER NOT NULL DEFAULT 0, sent_tz INTEGER NOT NULL DEFAULT 0,"
	" message_id TEXT, in_reply_to TEXT, refs TEXT, subject TEXT, base_subject TEXT,"
	" from_text TEXT, to_text TEXT, cc_text TEXT, bcc_text TEXT,"
	" sort_from TEXT, sort_to TEXT, sort_cc TEXT, display_from TEXT, display_to TEXT,"
	" envelope TEXT, bodystructure TEXT, body TEXT, headers TEXT, preview TEXT,"
	" has_attachment INTEGER NOT NULL DEFAULT 0, pending INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX msgs_modseq ON msgs(modseq);"
	/* the indexer's work list: small, only rows still to index */
	"CREATE INDEX msgs_pending ON msgs(uid) WHERE pending != 0;"
	"CREATE TABLE expunged(uid INTEGER PRIMARY KEY, modseq INTEGER NOT NULL);"
	"CREATE INDEX expunged_modseq ON expunged(modseq);"
	"CREATE TABLE keywords(bit INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE);"
	"CREATE VIRTUAL TABLE fts USING fts5(hdr, body, content='',"
	" tokenize='unicode61 remove_diacritics 2');"
	/* Counters for STATUS and quota, kept by triggers so no code path
	 * can forget them. */
	"CREATE TRIGGER msgs_ins AFTER INSERT ON msgs BEGIN UPDATE folder SET"
	" messages = messages + 1, bytes = bytes + NEW.size,"
	" unseen = unseen + ((NEW.flags & 1) = 0), deleted = deleted + ((NEW.flags & 8) != 0); END;"
	"CREATE TRIGGER msgs_del AFTER DELETE ON msgs BEGIN UPDATE folder SET"
	" messages = messages - 1, bytes = bytes - OLD.size,"
	" unseen = unseen - ((OLD.flags & 1) = 0), deleted = deleted - ((OLD.flags & 8) != 0); END;"
	"CREATE TRIGGER msgs_upd AFTER UPDATE OF flags ON msgs BEGIN UPDATE folder SET"
	" unseen = unseen + ((NEW.flags & 1) = 0) - ((OLD.flags & 1) = 0),"
	" deleted = deleted + ((NEW.flags & 8) != 0) - ((OLD.flags & 8) != 0); END;";

/* Columns filled from the parsed message (mime_summarize), in the order
 * index_bind_summary binds them: for an UPDATE by the indexer. */
const char index_summary_columns[] =
	"header_size = ?, sent_date = ?, sent_tz = ?, message_id = ?, in_reply_to = ?, refs = ?,"
	" subject = ?, base_subject = ?, from_text = ?, to_text = ?, cc_text = ?, bcc_text = ?,"
	" sort_from = ?, sort_to = ?, sort_cc = ?, display_from = ?, display_to = ?, envelope = ?,"
	" bodystructure = ?, body = ?, headers = ?, preview = ?, has_attachment = ?";

static const char insert_sql[] =
	"INSERT INTO msgs(uid, file, flags, keywords, modseq, internal_date, tz, save_date, size,"
	" guid, pending, header_size, sent_date, sent_tz, message_id, in_reply_to, refs, subject,"
	" base_subject, from_text, to_text, cc_text, bcc_text, sort_from, sort_to, sort_cc,"
	" display_from, display_to, envelope, bodystructure, body, headers, preview, has_attachment)"
	" VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

/* Version 1 had no pending column: every row was fully indexed. */
static const char migrate_v1_sql[] =
	"ALTER TABLE msgs ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX msgs_pending ON msgs(uid) WHERE pending != 0;";

int db_exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

sqlite3_stmt *db_prepare(struct store_folder *f, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	return st;
}

int64_t sql_meta_int(sqlite3 *db, const char *column)
{
	char sql[128];
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	snprintf(sql, sizeof(sql), "SELECT %s FROM folder WHERE id = 1", column);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

int64_t db_meta_int(struct store_folder *f, const char *column)
{
	return sql_meta_int(f->db, column);
}

char *folder_file(const struct store_folder *f, const char *name)
{
	return xasprintf("%s/%s", f->dir, name);
}

char *folder_msg_path(const struct store_folder *f, const char *file)
{
	return xasprintf("%s/" STORE_MSGS_DIR "/%s", f->dir, file);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

int index_bind_summary(sqlite3_stmt *st, int i, const struct mime_summary *s)
{
	static const struct mime_summary none;

	if (s == NULL)
		s = &none;
	sqlite3_bind_int64(st, i++, (int64_t)s->header_size);
	sqlite3_bind_int64(st, i++, s->sent_date);
	sqlite3_bind_int(st, i++, s->sent_tz);
	bind_text(st, i++, s->message_id);
	bind_text(st, i++, s->in_reply_to);
	bind_text(st, i++, s->references);
	bind_text(st, i++, s->subject);
	bind_text(st, i++, s->base_subject);
	bind_text(st, i++, s->from);
	bind_text(st, i++, s->to);
	bind_text(st, i++, s->cc);
	bind_text(st, i++, s->bcc);
	bind_text(st, i++, s->sort_from);
	bind_text(st, i++, s->sort_to);
	bind_text(st, i++, s->sort_cc);
	bind_text(st, i++, s->display_from);
	bind_text(st, i++, s->display_to);
	bind_text(st, i++, s->envelope);
	bind_text(st, i++, s->bodystructure);
	bind_text(st, i++, s->body);
	bind_text(st, i++, s->headers);
	bind_text(st, i++, s->preview);
	sqlite3_bind_int(st, i++, s->has_attachment);
	return i;
}

/* One message row.  The full-text entry is always left to the indexer
 * (store_indexer.c): tokenizing the text was most of a delivery's CPU.
 * Without a summary (a lazy rebuild) the cached columns wait too. */
static int insert_row(sqlite3 *db, sqlite3_stmt **ins, uint32_t uid, const char *file,
		      uint32_t flags, uint64_t keywords, uint64_t modseq, int64_t internal_date,
		      int tz, int64_t save_date, uint64_t size, const char *guid,
		      const struct mime_summary *s)
{
	sqlite3_stmt *st;
	int rc, i = 1;

	if (*ins == NULL && sqlite3_prepare_v3(db, insert_sql, -1, SQLITE_PREPARE_PERSISTENT, ins, NULL) != SQLITE_OK)
		return sqlite3_errcode(db);
	st = *ins;
	sqlite3_bind_int64(st, i++, uid);
	bind_text(st, i++, file);
	sqlite3_bind_int64(st, i++, flags);
	sqlite3_bind_int64(st, i++, (int64_t)keywords);
	sqlite3_bind_int64(st, i++, (int64_t)modseq);
	sqlite3_bind_int64(st, i++, internal_date);
	sqlite3_bind_int(st, i++, tz);
	sqlite3_bind_int64(st, i++, save_date);
	sqlite3_bind_int64(st, i++, (int64_t)size);
	bind_text(st, i++, guid);
	sqlite3_bind_int(st, i++, s != NULL ? PENDING_FTS : PENDING_FTS | PENDING_CACHE);
	index_bind_summary(st, i, s);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int index_insert(struct store_folder *f, uint32_t uid, const char *file, uint32_t flags,
		 uint64_t keywords, uint64_t modseq, int64_t internal_date, int tz,
		 int64_t save_date, uint64_t size, const char *guid, const struct mime_summary *sum)
{
	return insert_row(f->db, &f->st_insert, uid, file, flags, keywords, modseq,
			  internal_date, tz, save_date, size, guid, sum);
}

/* --- keywords --- */

static bool keyword_valid(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > STORE_MAX_KEYWORD_LEN || k[0] == '\\')
		return false;
	for (; *k != '\0'; k++) {
		unsigned char c = (unsigned char)*k;

		/* IMAP atom: no SP, CTL, 8-bit or atom-specials. */
		if (c <= ' ' || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

int keywords_to_mask(struct store_folder *f, const char *const *keywords, bool create,
		     uint64_t *mask_r)
{
	uint64_t mask = 0;

	for (size_t i = 0; keywords != NULL && keywords[i] != NULL; i++) {
		sqlite3_stmt *st;
		int64_t bit = -1;

		if (!keyword_valid(keywords[i]))
			return -2;
		st = db_prepare(f, "SELECT bit FROM keywords WHERE name = ?");
		if (st == NULL)
			return -3;
		sqlite3_bind_text(st, 1, keywords[i], -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			bit = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		if (bit < 0 && create) {
			uint64_t used = 0;

			st = db_prepare(f, "SELECT bit FROM keywords");
			if (st == NULL)
				return -3;
			while (sqlite3_step(st) == SQLITE_ROW) {
				int64_t b = sqlite3_column_int64(st, 0);

				if (b >= 0 && b < STORE_MAX_KEYWORDS)
					used |= (uint64_t)1 << b;
			}
			sqlite3_finalize(st);
			for (int b = 0; b < STORE_MAX_KEYWORDS; b++) {
				if ((used & ((uint64_t)1 << b)) == 0) {
					bit = b;
					break;
				}
			}
			if (bit < 0)
				return -1;
			st = db_prepare(f, "INSERT INTO keywords(bit, name) VALUES (?, ?)");
			if (st == NULL)
				return -3;
			sqlite3_bind_int64(st, 1, bit);
			sqlite3_bind_text(st, 2, keywords[i], -1, SQLITE_STATIC);
			if (sqlite3_step(st) != SQLITE_DONE) {
				sqlite3_finalize(st);
				return -3;
			}
			sqlite3_finalize(st);
		}
		if (bit >= 0 && bit < STORE_MAX_KEYWORDS)
			mask |= (uint64_t)1 << bit;
	}
	*mask_r = mask;
	return 0;
}

/* --- reading message files --- */

/* Rewrites data with every bare LF as CRLF; returns NULL when there is
 * none. */
static char *crlf_normalize(const char *data, size_t len, size_t *len_r)
{
	size_t bare = 0;
	char *out, *o;

	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			bare++;
	}
	if (bare == 0)
		return NULL;
	out = o = xmalloc(len + bare + 1);   /* @UNSAFE: len + bare <= 2 * len */
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			*o++ = '\r';
		*o++ = data[i];
	}
	*o = '\0';
	*len_r = (size_t)(o - out);
	return out;
}

int index_read_message(struct store_folder *f, const char *path, char **data_r, size_t *len_r)
{
	char *data, *norm;
	size_t len, nlen;

	if (fileio_read_all(path, (size_t)1 << 31, &data, &len) < 0)
		return -1;
	norm = crlf_normalize(data, len, &nlen);
	if (norm != NULL) {
		const char *err;

		/* A file added by hand with LF line ends: the store keeps
		 * CRLF so that RFC822.SIZE is the file size and BODY[] is the
		 * file. */
		if (fileio_write_atomic(path, norm, nlen, STORE_FILE_MODE, &err) < 0) {
			log_warn("store", "folder=%s cannot normalise line ends of %s: %s", f->dir, path, err);
			free(norm);
			*data_r = data;
			*len_r = len;
			return 0;
		}
		free(data);
		data = norm;
		len = nlen;
	}
	*data_r = data;
	*len_r = len;
	return 0;
}

/* --- listing #msgs --- */

struct file_entry {
	char *name;
	uint32_t name_uid;            /* n of "<n>.eml", else 0 */
	int64_t mtime;
	uint64_t size;
	uint32_t uid;                 /* assigned */
};

static int cmp_entry_name(const void *a, const void *b)
{
	return strcmp(((const struct file_entry *)a)->name, ((const struct file_entry *)b)->name);
}

static uint32_t name_uid(const char *name)
{
	char digits[16];
	size_t n = strlen(name);
	int64_t v;

	if (n < 5 || n - 4 >= sizeof(digits) || strcmp(name + n - 4, ".eml") != 0 || name[0] == '0')
		return 0;
	memcpy(digits, name, n - 4);
	digits[n - 4] = '\0';
	if (str_to_i64(digits, 1, UINT32_MAX - 1, &v) < 0)
		return 0;
	return (uint32_t)v;
}

static int list_msgs(const char *msgs_dir, struct file_entry **files_r, size_t *count_r)
{
	DIR *d = opendir(msgs_dir);
	struct dirent *de;
	struct file_entry *files = NULL;
	size_t count = 0, cap = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (de->d_name[0] == '.' || de->d_name[0] == '#' || !str_has_suffix(de->d_name, ".eml"))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (count == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			files = xreallocarray(files, cap, sizeof(*files));
		}
		files[count].name = xstrdup(de->d_name);
		files[count].name_uid = name_uid(de->d_name);
		files[count].mtime = st.st_mtime;
		files[count].size = (uint64_t)st.st_size;
		files[count].uid = 0;
		count++;
	}
	closedir(d);
	if (count > 0)
		qsort(files, count, sizeof(*files), cmp_entry_name);
	*files_r = files;
	*count_r = count;
	return 0;
}

static void free_files(struct file_entry *files, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(files[i].name);
	free(files);
}

/* --- salvage --- */

struct salvage_row {
	char *file;
	uint32_t uid, flags;
	char *keywords;               /* space-separated names */
	uint64_t modseq;
	int64_t internal_date, save_date;
	int tz;
	char guid[33];
};

struct salvage {
	bool have_meta;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	bool have_expunged;
	struct salvage_row *rows;
	size_t count;
	uint32_t *expunged;
	uint64_t *expunged_modseq;
	size_t expunged_count;
	struct salvage_key {
		char key[65];
		uint32_t uid;
		int64_t time;
	} *keys;                      /* delivery keys */
	size_t key_count;
};

static int cmp_salvage(const void *a, const void *b)
{
	return strcmp(((const struct salvage_row *)a)->file, ((const struct salvage_row *)b)->file);
}

/* The delivery keys of the old index (none when it had no table). */
static void salvage_keys(sqlite3 *db, struct salvage *sv)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 0;

	if (sqlite3_prepare_v2(db, "SELECT key, uid, time FROM delivery_keys", -1, &st, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		int64_t uid = sqlite3_column_int64(st, 1);

		if (k == NULL || strlen(k) != 64 || strspn(k, "0123456789abcdef") != 64 || uid <= 0 ||
		    uid > UINT32_MAX)
			continue;
		if (sv->key_count == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			sv->keys = xreallocarray(sv->keys, cap, sizeof(*sv->keys));
		}
		memcpy(sv->keys[sv->key_count].key, k, 65);
		sv->keys[sv->key_count].uid = (uint32_t)uid;
		sv->keys[sv->key_count].time = sqlite3_column_int64(st, 2);
		sv->key_count++;
	}
	sqlite3_finalize(st);
}

/* Reads what it can of an old or damaged index; stops at the first error
 * and keeps what was read. */
static void salvage_read(const char *path, struct salvage *sv)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *kwnames[STORE_MAX_KEYWORDS] = { 0 };
	size_t cap = 0;

	memset(sv, 0, sizeof(*sv));
	if (access(path, F_OK) < 0)
		return;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto out;
	sqlite3_busy_timeout(db, 2000);
	if (sqlite3_prepare_v2(db, "SELECT uidvalidity, uidnext, highestmodseq FROM folder WHERE id = 1",
			       -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		int64_t uv = sqlite3_column_int64(st, 0), un = sqlite3_column_int64(st, 1);
		int64_t hm = sqlite3_column_int64(st, 2);

		if (uv > 0 && uv <= UINT32_MAX && un > 0 && un <= UINT32_MAX && hm >= 0) {
			sv->have_meta = true;
			sv->uidvalidity = (uint32_t)uv;
			sv->uidnext = (uint32_t)un;
			sv->highestmodseq = (uint64_t)hm;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	if (!sv->have_meta)
		goto out;
	if (sqlite3_prepare_v2(db, "SELECT bit, name FROM keywords", -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			int64_t b = sqlite3_column_int64(st, 0);
			const char *n = (const char *)sqlite3_column_text(st, 1);

			if (b >= 0 && b < STORE_MAX_KEYWORDS && n != NULL && kwnames[b] == NULL)
				kwnames[b] = xstrdup(n);
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT uid, file, flags, keywords, modseq, internal_date, tz,"
			       " save_date, guid FROM msgs", -1, &st, NULL) == SQLITE_OK) {
		int rc;

		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct salvage_row *r;
			int64_t uid = sqlite3_column_int64(st, 0);
			const char *file = (const char *)sqlite3_column_text(st, 1);
			const char *guid = (const char *)sqlite3_column_text(st, 8);
			uint64_t kw = (uint64_t)sqlite3_column_int64(st, 3);
			struct buf names;

			if (uid <= 0 || uid >= sv->uidnext || file == NULL || strchr(file, '/') != NULL)
				continue;
			if (sv->count == cap) {
				cap = cap == 0 ? 64 : cap * 2;
				sv->rows = xreallocarray(sv->rows, cap, sizeof(*sv->rows));
			}
			r = &sv->rows[sv->count++];
			memset(r, 0, sizeof(*r));
			r->uid = (uint32_t)uid;
			r->file = xstrdup(file);
			r->flags = (uint32_t)sqlite3_column_int64(st, 2) & STORE_F_ALL;
			r->modseq = (uint64_t)sqlite3_column_int64(st, 4);
			r->internal_date = sqlite3_column_int64(st, 5);
			r->tz = sqlite3_column_int(st, 6);
			r->save_date = sqlite3_column_int64(st, 7);
			if (guid != NULL && strlen(guid) == 32)
				memcpy(r->guid, guid, 33);
			buf_init(&names, 64 * (STORE_MAX_KEYWORD_LEN + 1));
			for (int b = 0; b < STORE_MAX_KEYWORDS; b++) {
				if ((kw & ((uint64_t)1 << b)) != 0 && kwnames[b] != NULL) {
					if ((names.len > 0 && buf_append_char(&names, ' ') < 0) ||
					    buf_append_str(&names, kwnames[b]) < 0)
						break;
				}
			}
			r->keywords = buf_steal(&names);
			buf_deinit(&names);
		}
		(void)rc;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT uid, modseq FROM expunged", -1, &st, NULL) == SQLITE_OK) {
		size_t ecap = 0;
		int rc;

		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (sv->expunged_count == ecap) {
				ecap = ecap == 0 ? 64 : ecap * 2;
				sv->expunged = xreallocarray(sv->expunged, ecap, sizeof(uint32_t));
				sv->expunged_modseq = xreallocarray(sv->expunged_modseq, ecap, sizeof(uint64_t));
			}
			sv->expunged[sv->expunged_count] = (uint32_t)sqlite3_column_int64(st, 0);
			sv->expunged_modseq[sv->expunged_count++] = (uint64_t)sqlite3_column_int64(st, 1);
		}
		sv->have_expunged = rc == SQLITE_DONE;
	}
	sqlite3_finalize(st);
	st = NULL;
	salvage_keys(db, sv);
out:
	for (int b = 0; b < STORE_MAX_KEYWORDS; b++)
		free(kwnames[b]);
	if (db != NULL)
		sqlite3_close(db);
	if (sv->count > 0)
		qsort(sv->rows, sv->count, sizeof(*sv->rows), cmp_salvage);
}

static void salvage_free(struct salvage *sv)
{
	for (size_t i = 0; i < sv->count; i++) {
		free(sv->rows[i].file);
		free(sv->rows[i].keywords);
	}
	free(sv->rows);
	free(sv->expunged);
	free(sv->expunged_modseq);
	free(sv->keys);
}

static void unlink_db_files(const char *path)
{
	char *p;

	unlink(path);
	p = xasprintf("%s-wal", path);
	unlink(p);
	free(p);
	p = xasprintf("%s-shm", path);
	unlink(p);
	free(p);
}

/* Renames path (with -wal, -shm) to to. */
static int move_db_files(const char *from, const char *to)
{
	char *a, *b;
	int ret = rename(from, to);

	if (ret < 0 && errno != ENOENT)
		return -1;
	a = xasprintf("%s-wal", from);
	b = xasprintf("%s-wal", to);
	if (rename(a, b) < 0)
		unlink(b);
	free(a);
	free(b);
	a = xasprintf("%s-shm", from);
	unlink(a);
	free(a);
	return 0;
}

static void configure_db(sqlite3 *db, bool fsync_on)
{
	sqlite3_busy_timeout(db, 10000);
	sqlite3_extended_result_codes(db, 0);
	db_exec(db, "PRAGMA journal_mode=WAL");
	db_exec(db, fsync_on ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF");
	db_exec(db, "PRAGMA cell_size_check=ON");
}

static int cmp_uid_then_index(const void *a, const void *b)
{
	const struct file_entry *const *x = a, *const *y = b;

	if ((*x)->uid != (*y)->uid)
		return (*x)->uid < (*y)->uid ? -1 : 1;
	return *x < *y ? -1 : *x > *y;
}

/* Duplicates (two names claiming one UID): the first in name order keeps
 * it, the others get new UIDs.  Sorted, not pairwise: a pairwise check
 * took seconds for 100 000 files. */
static void drop_duplicate_uids(struct file_entry *files, size_t nfiles)
{
	struct file_entry **byuid;

	if (nfiles < 2)
		return;
	byuid = xmallocarray(nfiles, sizeof(*byuid));
	for (size_t i = 0; i < nfiles; i++)
		byuid[i] = &files[i];
	qsort(byuid, nfiles, sizeof(*byuid), cmp_uid_then_index);
	for (size_t i = 1, prev = byuid[0]->uid; i < nfiles; i++) {
		uint32_t uid = byuid[i]->uid;

		if (uid != 0 && uid == prev)
			byuid[i]->uid = 0;
		prev = uid;
	}
	free(byuid);
}

struct index_db {
	sqlite3 *db;
	sqlite3_stmt *ins;
};

/* Builds index.tmp from the files (with what sv kept of the old index) and
 * renames it to index.fld. */
static enum store_status rebuild(struct store_folder *f, struct salvage *sv, uint32_t *count_r,
				 bool *new_uv_r, const char **error_r)
{
	struct store *store = f->user->store;
	char *tmp = folder_file(f, STORE_INDEX_TMP), *final = folder_file(f, STORE_INDEX);
	char *msgs_dir = folder_file(f, STORE_MSGS_DIR);
	struct file_entry *files = NULL;
	size_t nfiles = 0;
	struct index_db x = { 0 };
	enum store_status ret = STORE_E_TEMP;
	uint32_t uidvalidity, uidnext = 1, max_uid = 0;
	uint64_t modseq;
	int64_t now = time(NULL);
	bool keep = sv->have_meta;
	uint32_t added = 0;

	if (mkdir(msgs_dir, STORE_DIR_MODE) < 0 && errno != EEXIST) {
		*error_r = store_errf("cannot create %s: %s", msgs_dir, strerror(errno));
		goto out;
	}
	if (list_msgs(msgs_dir, &files, &nfiles) < 0) {
		*error_r = store_errf("cannot read %s: %s", msgs_dir, strerror(errno));
		goto out;
	}
	/* UIDs: from the old index when we have it, else from the names. */
	if (keep) {
		uidvalidity = sv->uidvalidity;
		uidnext = sv->uidnext;
		for (size_t i = 0; i < nfiles; i++) {
			struct salvage_row key = { .file = files[i].name };
			struct salvage_row *r = sv->count == 0 ? NULL : bsearch(&key, sv->rows, sv->count, sizeof(*sv->rows), cmp_salvage);

			if (r != NULL)
				files[i].uid = r->uid;
		}
	} else {
		uidvalidity = store_new_uidvalidity(store);
		for (size_t i = 0; i < nfiles; i++)
			files[i].uid = files[i].name_uid;
	}
	drop_duplicate_uids(files, nfiles);
	for (size_t i = 0; i < nfiles; i++) {
		if (files[i].uid > max_uid)
			max_uid = files[i].uid;
	}
	if (uidnext <= max_uid)
		uidnext = max_uid + 1;
	modseq = (keep ? sv->highestmodseq : 0) + 1;

	unlink_db_files(tmp);
	/* Mail is private: created 0600, and SQLite gives -wal and -shm the
	 * database file's mode. */
	{
		int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, STORE_FILE_MODE);

		if (fd >= 0)
			close(fd);
	}
	if (sqlite3_open_v2(tmp, &x.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		*error_r = store_errf("cannot create %s: %s", tmp, sqlite3_errmsg(x.db));
		goto out;
	}
	db_exec(x.db, "PRAGMA journal_mode=OFF");
	db_exec(x.db, "PRAGMA synchronous=OFF");
	if (db_exec(x.db, "BEGIN") != SQLITE_OK || db_exec(x.db, schema_sql) != SQLITE_OK) {
		*error_r = store_errf("cannot create %s: %s", tmp, sqlite3_errmsg(x.db));
		goto out;
	}
	{
		struct store_folder tf = *f;     /* keywords_to_mask works on tf.db */
		char sql[256];

		tf.db = x.db;
		snprintf(sql, sizeof(sql),
			 "INSERT INTO folder(id, uidvalidity, uidnext, highestmodseq, first_recent_uid,"
			 " vanished_floor, created) VALUES (1, %u, 1, %llu, 1, %llu, %lld)",
			 uidvalidity, (unsigned long long)modseq,
			 (unsigned long long)(keep && !sv->have_expunged ? modseq : 0), (long long)now);
		if (db_exec(x.db, sql) != SQLITE_OK)
			goto dberr;
		if (keep && sv->key_count > 0) {
			/* Exactly-once survives a rebuild: the queue may still
			 * redeliver a message this folder has. */
			sqlite3_stmt *st = NULL;

			if (delivery_keys_create(x.db) != SQLITE_OK ||
			    sqlite3_prepare_v2(x.db, "INSERT OR IGNORE INTO delivery_keys(key, uid, time)"
					       " VALUES (?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
				goto dberr;
			for (size_t i = 0; i < sv->key_count; i++) {
				sqlite3_bind_text(st, 1, sv->keys[i].key, -1, SQLITE_STATIC);
				sqlite3_bind_int64(st, 2, sv->keys[i].uid);
				sqlite3_bind_int64(st, 3, sv->keys[i].time);
				sqlite3_step(st);
				sqlite3_reset(st);
			}
			sqlite3_finalize(st);
		}
		if (keep && sv->have_expunged) {
			sqlite3_stmt *st = NULL;

			if (sqlite3_prepare_v2(x.db, "INSERT OR IGNORE INTO expunged(uid, modseq) VALUES (?, ?)",
					       -1, &st, NULL) != SQLITE_OK)
				goto dberr;
			for (size_t i = 0; i < sv->expunged_count; i++) {
				sqlite3_bind_int64(st, 1, sv->expunged[i]);
				sqlite3_bind_int64(st, 2, (int64_t)sv->expunged_modseq[i]);
				sqlite3_step(st);
				sqlite3_reset(st);
			}
			sqlite3_finalize(st);
		}
		/* Files without a UID get new ones, in arrival order. */
		for (size_t pass = 0; pass < 2; pass++) {
			for (size_t i = 0; i < nfiles; i++) {
				struct file_entry *fe = &files[i];
				struct salvage_row key = { .file = fe->name }, *r = NULL;
				char guid[33];
				uint64_t kw = 0;
				int rc;

				if ((pass == 0) != (fe->uid != 0))
					continue;
				if (fe->uid == 0)
					fe->uid = uidnext++;
				if (keep)
					r = sv->count == 0 ? NULL : bsearch(&key, sv->rows, sv->count, sizeof(*sv->rows), cmp_salvage);
				/* Lazy: what the listing gave; the file is read by
				 * the indexer, or by a FETCH that needs it first.
				 * Files of other names were put there by hand and
				 * may have LF line ends: they are rewritten with
				 * CRLF now, so that the size is right at once. */
				if (fe->name_uid == 0) {
					char *path = folder_msg_path(f, fe->name), *data;
					size_t len;

					if (index_read_message(f, path, &data, &len) == 0) {
						fe->size = len;
						free(data);
					}
					free(path);
				}
				if (r != NULL && r->keywords != NULL && *r->keywords != '\0') {
					char *copy = xstrdup(r->keywords), *save = NULL;
					const char *names[STORE_MAX_KEYWORDS + 1];
					size_t n = 0;

					for (char *t = strtok_r(copy, " ", &save); t != NULL && n < STORE_MAX_KEYWORDS;
					     t = strtok_r(NULL, " ", &save))
						names[n++] = t;
					names[n] = NULL;
					if (keywords_to_mask(&tf, names, true, &kw) != 0)
						kw = 0;
					free(copy);
				}
				if (r != NULL && r->guid[0] != '\0')
					memcpy(guid, r->guid, 33);
				else
					store_guid(guid);
				rc = insert_row(x.db, &x.ins, fe->uid, fe->name,
						r != NULL ? r->flags : 0, kw,
						r != NULL && r->modseq > 0 && r->modseq < modseq ? r->modseq : modseq,
						r != NULL ? r->internal_date : fe->mtime, r != NULL ? r->tz : 0,
						r != NULL ? r->save_date : now, fe->size, guid, NULL);
				if (rc != SQLITE_OK)
					goto dberr;
				if (r == NULL)
					added++;
			}
		}
		snprintf(sql, sizeof(sql), "UPDATE folder SET uidnext = %u, first_recent_uid = %u WHERE id = 1",
			 uidnext, keep ? uidnext : 1);
		if (db_exec(x.db, sql) != SQLITE_OK)
			goto dberr;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_INDEX_VERSION);
		if (db_exec(x.db, sql) != SQLITE_OK || db_exec(x.db, "COMMIT") != SQLITE_OK)
			goto dberr;
	}
	sqlite3_finalize(x.ins);
	x.ins = NULL;
	db_exec(x.db, "PRAGMA journal_mode=WAL");
	if (sqlite3_close(x.db) != SQLITE_OK) {
		x.db = NULL;
		*error_r = store_errf("cannot close %s", tmp);
		goto out;
	}
	x.db = NULL;
	if (store->set.fsync) {
		int fd = open(tmp, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || fsync(fd) < 0) {
			if (fd >= 0)
				close(fd);
			*error_r = store_errf("cannot fsync %s: %s", tmp, strerror(errno));
			goto out;
		}
		close(fd);
	}
	unlink_db_files(final);
	if (rename(tmp, final) < 0) {
		*error_r = store_errf("cannot rename %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (store_fsync_dir(store, f->dir) < 0) {
		*error_r = store_errf("cannot fsync %s: %s", f->dir, strerror(errno));
		goto out;
	}
	*count_r = (uint32_t)nfiles;
	*new_uv_r = !keep;
	(void)added;
	ret = STORE_OK;
	goto out;
dberr:
	*error_r = store_errf("cannot build %s: %s", tmp, sqlite3_errmsg(x.db));
	ret = sqlite3_errcode(x.db) == SQLITE_FULL ? STORE_E_NOSPACE : STORE_E_TEMP;
out:
	if (x.db != NULL) {
		sqlite3_finalize(x.ins);
		sqlite3_close(x.db);
	}
	if (ret != STORE_OK)
		unlink_db_files(tmp);
	free_files(files, nfiles);
	free(tmp);
	free(final);
	free(msgs_dir);
	return ret;
}

void folder_close_db(struct store_folder *f)
{
	folder_close_rdb(f);
	if (f->db == NULL)
		return;
	sqlite3_finalize(f->st_insert);
	sqlite3_finalize(f->st_fts);
	f->st_insert = f->st_fts = NULL;
	sqlite3_close(f->db);
	f->db = NULL;
}

void folder_mark_corrupt(struct store_folder *f, const char *what)
{
	char *path = folder_file(f, STORE_INDEX), *bad = folder_file(f, STORE_INDEX_CORRUPT);

	folder_close_db(f);
	log_warn("store", "folder=%s index corrupt (%s): moved to %s, rebuilding", f->dir, what,
		 STORE_INDEX_CORRUPT);
	unlink_db_files(bad);
	if (move_db_files(path, bad) < 0)
		unlink_db_files(path);
	free(path);
	free(bad);
}

enum store_status folder_db_error(struct store_folder *f, int rc, const char *what,
				  const char **error_r)
{
	const char *msg = f->db != NULL ? sqlite3_errmsg(f->db) : sqlite3_errstr(rc);

	*error_r = store_errf("%s: %s", what, msg);
	switch (rc & 0xff) {
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		folder_mark_corrupt(f, msg);
		return STORE_E_TEMP;
	case SQLITE_FULL:
		return STORE_E_NOSPACE;
	default:
		log_error("store", "folder=%s %s: %s", f->dir, what, msg);
		return STORE_E_TEMP;
	}
}

/* quick_check reads every page: 1.4 s for a 100 000-message index.  Run it
 * when the index was not closed cleanly (SQLite removes the -wal file when
 * the last connection closes; one left behind means a crash), and else
 * when it is cheap (small index) and this file has not passed it yet in
 * this run (store_checked.c).  Otherwise corruption is found when SQLite
 * reads a damaged page (cell_size_check is on), which moves the index
 * aside. */
static bool needs_check(struct store *store, const char *path, const struct stat *st)
{
	char *wal = xasprintf("%s-wal", path);
	bool crashed = access(wal, F_OK) == 0;

	free(wal);
	if (crashed)
		return true;
	return st->st_size < STORE_CHECK_MAX_BYTES &&
	       !store_checked_has(&store->checked, st->st_dev, st->st_ino);
}

/* Upgrades a version 1 index in place: one column with a default (no
 * rewrite of the table in SQLite) and a small index. */
static int migrate_v1(sqlite3 *db)
{
	char sql[64];
	int rc = db_exec(db, "BEGIN IMMEDIATE");

	if (rc != SQLITE_OK)
		return rc;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_INDEX_VERSION);
	rc = db_exec(db, migrate_v1_sql);
	if (rc == SQLITE_OK)
		rc = db_exec(db, sql);
	if (rc == SQLITE_OK)
		rc = db_exec(db, "COMMIT");
	if (rc != SQLITE_OK)
		db_exec(db, "ROLLBACK");
	return rc;
}

/* Opens index.fld, which exists; returns 0, or -1 when it is corrupt or of
 * another version (closed again). */
static int open_existing(struct store_folder *f, const char *path, bool fresh, const char **why_r)
{
	struct store *store = f->user->store;
	sqlite3_stmt *st;
	int version = -1;
	struct stat st_file;
	/* Before opening: opening creates the -wal file.  An index we have
	 * just built (fresh) needs no check. */
	bool known = stat(path, &st_file) == 0;
	bool check = !fresh && store->set.check_on_open &&
		     (!known || needs_check(store, path, &st_file));

	*why_r = "cannot open";
	if (sqlite3_open_v2(path, &f->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto bad;
	configure_db(f->db, store->set.fsync);
	search_register_functions(f, f->db);
	st = db_prepare(f, "PRAGMA user_version");
	if (st == NULL || sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		*why_r = sqlite3_errmsg(f->db);
		goto bad;
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version == 1 && migrate_v1(f->db) != SQLITE_OK) {
		*why_r = sqlite3_errmsg(f->db);
		goto bad;
	}
	if (version == 1)
		version = STORE_INDEX_VERSION;
	if (version != STORE_INDEX_VERSION) {
		*why_r = "index version";
		goto bad;
	}
	if (check) {
		st = db_prepare(f, "PRAGMA quick_check(1)");
		if (st == NULL || sqlite3_step(st) != SQLITE_ROW ||
		    strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
			*why_r = st != NULL && sqlite3_column_text(st, 0) != NULL ?
				store_errf("%s", (const char *)sqlite3_column_text(st, 0)) :
				sqlite3_errmsg(f->db);
			sqlite3_finalize(st);
			goto bad;
		}
		sqlite3_finalize(st);
		if (known)
			store_checked_add(&store->checked, st_file.st_dev, st_file.st_ino);
	}
	if (db_meta_int(f, "uidvalidity") <= 0) {
		*why_r = "no folder record";
		goto bad;
	}
	/* Indexes made before delivery keys get the table now. */
	if (delivery_keys_create(f->db) != SQLITE_OK) {
		*why_r = sqlite3_errmsg(f->db);
		goto bad;
	}
	/* Work left by a lazy rebuild or by deliveries before a restart. */
	st = db_prepare(f, "SELECT 1 FROM msgs WHERE pending != 0 LIMIT 1");
	f->idx_wanted = st != NULL && sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return 0;
bad:
	if (f->db != NULL) {
		char why[256];

		snprintf(why, sizeof(why), "%s", *why_r);
		*why_r = store_errf("%s", why);
		folder_close_db(f);
	}
	return -1;
}

/* Adopts #msgs/<uidnext>.eml files left by a crash between the rename and
 * the index commit; a keyed delivery's file gets its key back from its
 * extended attribute or its marker, so the queue's redelivery of it finds it (store_deliver.c). */
static void adopt_orphans(struct store_folder *f)
{
	for (;;) {
		int64_t uidnext = db_meta_int(f, "uidnext");
		int64_t modseq = db_meta_int(f, "highestmodseq") + 1;
		char name[32], *path, *data, guid[33], *marker = NULL;
		struct mime_summary sum;
		struct stat st;
		size_t len;
		int rc;

		if (uidnext <= 0)
			return;
		snprintf(name, sizeof(name), "%lld.eml", (long long)uidnext);
		path = folder_msg_path(f, name);
		if (stat(path, &st) < 0 || index_read_message(f, path, &data, &len) < 0) {
			free(path);
			return;
		}
		mime_summarize(data, len, &f->user->store->set.mime, false, &sum);
		store_guid(guid);
		db_exec(f->db, "BEGIN IMMEDIATE");
		rc = index_insert(f, (uint32_t)uidnext, name, 0, 0, (uint64_t)modseq, st.st_mtime, 0,
				  time(NULL), len, guid, &sum);
		if (rc == SQLITE_OK)
			rc = delivery_key_adopt(f, path, &st, (uint32_t)uidnext, &marker);
		free(path);
		if (rc == SQLITE_OK) {
			char sql[160];

			snprintf(sql, sizeof(sql), "UPDATE folder SET uidnext = %lld, highestmodseq = %lld WHERE id = 1",
				 (long long)uidnext + 1, (long long)modseq);
			rc = db_exec(f->db, sql);
		}
		rc = rc == SQLITE_OK ? db_exec(f->db, "COMMIT") : rc;
		mime_summary_deinit(&sum);
		free(data);
		if (rc != SQLITE_OK) {
			db_exec(f->db, "ROLLBACK");
			free(marker);
			return;
		}
		log_warn("store", "folder=%s adopted %s left by an interrupted delivery%s", f->dir, name,
			 marker != NULL ? " (delivery key kept)" : "");
		f->idx_wanted = true;
		if (marker != NULL)
			(void)fileio_unlink(marker);
		free(marker);
		user_usage_add(f->user, (int64_t)len, 1);
	}
}

/* Removes temp files of deliveries interrupted by a crash. */
static void clean_tmp(struct store_folder *f)
{
	DIR *d = opendir(f->dir);
	struct dirent *de;
	time_t now = time(NULL);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (!str_has_prefix(de->d_name, STORE_TMP_PREFIX))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && now - st.st_mtime > 3600)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

static enum store_status open_index(struct store_folder *f, const char **error_r)
{
	char *path = folder_file(f, STORE_INDEX);
	char *bad = folder_file(f, STORE_INDEX_BAD);
	char *corrupt = NULL;
	const char *salvage_from = NULL, *why = NULL;
	enum store_status ret = STORE_OK;
	struct stat st;
	bool rebuilt = false, new_uv = false;
	uint32_t count = 0;
	struct salvage sv;

	if (stat(f->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		*error_r = store_errf("folder does not exist");
		ret = STORE_E_NOTFOUND;
		goto out;
	}
	if (access(path, F_OK) == 0 && open_existing(f, path, false, &why) < 0) {
		corrupt = folder_file(f, STORE_INDEX_CORRUPT);
		log_warn("store", "folder=%s index unusable (%s): moved to %s, rebuilding", f->dir, why,
			 STORE_INDEX_CORRUPT);
		unlink_db_files(corrupt);
		move_db_files(path, corrupt);
		salvage_from = corrupt;
	}
	if (f->db == NULL) {
		/* Missing: an administrator's index.bad, or a corrupt one
		 * moved aside, gives back what can still be read. */
		if (salvage_from == NULL && access(bad, F_OK) == 0) {
			char *wal = xasprintf("%s-wal", path), *badwal = xasprintf("%s-wal", bad);

			/* A WAL left beside a renamed index belongs to it. */
			if (access(wal, F_OK) == 0 && access(badwal, F_OK) != 0)
				(void)rename(wal, badwal);
			free(wal);
			free(badwal);
			salvage_from = bad;
		}
		unlink_db_files(path);
		salvage_read(salvage_from != NULL ? salvage_from : "/nonexistent", &sv);
		ret = rebuild(f, &sv, &count, &new_uv, error_r);
		salvage_free(&sv);
		if (ret != STORE_OK)
			goto out;
		rebuilt = true;
		if (salvage_from == bad)
			unlink_db_files(bad);
		if (salvage_from != NULL || count > 0)
			log_warn("store", "folder=%s re-indexed %u messages from #msgs%s%s", f->dir, count,
				 salvage_from != NULL ? ", state kept from " : "",
				 salvage_from == bad ? STORE_INDEX_BAD : salvage_from != NULL ? STORE_INDEX_CORRUPT : "");
		else
			log_debug("store", "folder=%s new index", f->dir);
		if (open_existing(f, path, true, &why) < 0) {
			*error_r = store_errf("cannot open rebuilt index: %s", why);
			ret = STORE_E_TEMP;
			goto out;
		}
	}
	if (stat(path, &st) == 0) {
		f->index_dev = st.st_dev;
		f->index_ino = st.st_ino;
	}
	{
		uint32_t old_uv = f->uidvalidity;

		f->uidvalidity = (uint32_t)db_meta_int(f, "uidvalidity");
		if (old_uv != 0 && old_uv != f->uidvalidity)
			folder_post_event(f, STORE_EV_RESET, NULL, 0);
	}
	adopt_orphans(f);
	clean_tmp(f);
	(void)rebuilt;
out:
	free(path);
	free(bad);
	free(corrupt);
	return ret;
}

enum store_status folder_lock(struct store_folder *f, const char **error_r)
{
	char *path;
	struct stat st;
	enum store_status ret;

	pthread_mutex_lock(&f->lock);
	if (f->deleted) {
		pthread_mutex_unlock(&f->lock);
		*error_r = "folder has been deleted";
		return STORE_E_NOTFOUND;
	}
	if (f->db != NULL) {
		/* An administrator may rename index.fld to index.bad while we
		 * have it open: check it is still the same file. */
		path = folder_file(f, STORE_INDEX);
		if (stat(path, &st) == 0 && st.st_ino == f->index_ino && st.st_dev == f->index_dev) {
			free(path);
			return STORE_OK;
		}
		free(path);
		folder_close_db(f);
	}
	ret = open_index(f, error_r);
	if (ret != STORE_OK) {
		folder_close_db(f);
		pthread_mutex_unlock(&f->lock);
	}
	return ret;
}

void folder_unlock(struct store_folder *f)
{
	pthread_mutex_unlock(&f->lock);
}

/* --- incremental re-index --- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

enum store_status folder_reindex(struct store_folder *f, bool rebuild_all,
				 struct store_reindex_result *res, const char **error_r)
{
	char *msgs_dir = folder_file(f, STORE_MSGS_DIR);
	struct file_entry *files = NULL;
	size_t nfiles = 0, nrows = 0, cap = 0;
	struct { uint32_t uid; char *file; } *rows = NULL;
	uint32_t *gone = NULL, *added_uids = NULL;
	size_t ngone = 0, nadded = 0;
	enum store_status ret = STORE_E_TEMP;
	sqlite3_stmt *st;
	int64_t modseq, uidnext;
	int rc = SQLITE_OK;
	int64_t bytes_delta = 0, msgs_delta = 0;

	memset(res, 0, sizeof(*res));
	if (rebuild_all) {
		char *path = folder_file(f, STORE_INDEX), *bad = folder_file(f, STORE_INDEX_BAD);
		uint32_t old_uv = f->uidvalidity;
		int64_t before = db_meta_int(f, "bytes"), before_n = db_meta_int(f, "messages");

		/* The current index is the salvage source. */
		folder_close_db(f);
		unlink_db_files(bad);
		move_db_files(path, bad);
		free(path);
		free(bad);
		ret = open_index(f, error_r);
		if (ret == STORE_OK) {
			res->rebuilt = true;
			res->messages = (uint32_t)db_meta_int(f, "messages");
			res->uidvalidity_changed = old_uv != f->uidvalidity;
			user_usage_add(f->user, db_meta_int(f, "bytes") - before,
				       db_meta_int(f, "messages") - before_n);
		}
		free(msgs_dir);
		return ret;
	}
	if (list_msgs(msgs_dir, &files, &nfiles) < 0) {
		*error_r = store_errf("cannot read %s: %s", msgs_dir, strerror(errno));
		goto out;
	}
	st = db_prepare(f, "SELECT uid, file FROM msgs ORDER BY file");
	if (st == NULL) {
		ret = folder_db_error(f, sqlite3_errcode(f->db), "reindex", error_r);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (nrows == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			rows = xreallocarray(rows, cap, sizeof(*rows));
		}
		rows[nrows].uid = (uint32_t)sqlite3_column_int64(st, 0);
		rows[nrows].file = xstrdup((const char *)sqlite3_column_text(st, 1));
		nrows++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		ret = folder_db_error(f, rc, "reindex", error_r);
		goto out;
	}
	if ((rc = db_exec(f->db, "BEGIN IMMEDIATE")) != SQLITE_OK) {
		ret = folder_db_error(f, rc, "reindex", error_r);
		goto out;
	}
	modseq = db_meta_int(f, "highestmodseq") + 1;
	uidnext = db_meta_int(f, "uidnext");
	/* Merge the two sorted lists (strcmp order on both sides). */
	gone = xmallocarray(nrows + 1, sizeof(*gone));
	added_uids = xmallocarray(nfiles + 1, sizeof(*added_uids));
	for (size_t i = 0, j = 0; i < nrows || j < nfiles;) {
		int c = i >= nrows ? 1 : j >= nfiles ? -1 : strcmp(rows[i].file, files[j].name);

		if (c == 0) {
			i++;
			j++;
		} else if (c < 0) {
			/* indexed, file gone: removed by hand */
			gone[ngone++] = rows[i++].uid;
		} else {
			struct file_entry *fe = &files[j++];
			char *path = folder_msg_path(f, fe->name), *data, guid[33];
			struct mime_summary sum;
			size_t len;

			if (fe->name_uid != 0 && fe->name_uid < uidnext) {
				/* One of our names: was it expunged (its unlink lost
				 * in a crash)?  Then finish the expunge. */
				bool was_expunged = false;

				st = db_prepare(f, "SELECT 1 FROM expunged WHERE uid = ?");
				if (st != NULL) {
					sqlite3_bind_int64(st, 1, fe->name_uid);
					was_expunged = sqlite3_step(st) == SQLITE_ROW;
				}
				sqlite3_finalize(st);
				if (was_expunged) {
					(void)fileio_unlink(path);
					free(path);
					continue;
				}
			}
			if (index_read_message(f, path, &data, &len) < 0) {
				free(path);
				continue;
			}
			free(path);
			mime_summarize(data, len, &f->user->store->set.mime, false, &sum);
			store_guid(guid);
			rc = index_insert(f, (uint32_t)uidnext, fe->name, 0, 0, (uint64_t)modseq, fe->mtime, 0,
					  time(NULL), len, guid, &sum);
			mime_summary_deinit(&sum);
			free(data);
			if (rc != SQLITE_OK)
				break;
			added_uids[nadded++] = (uint32_t)uidnext++;
			bytes_delta += (int64_t)len;
			msgs_delta++;
		}
	}
	if (rc == SQLITE_OK && ngone > 0) {
		sqlite3_stmt *sz = db_prepare(f, "SELECT size FROM msgs WHERE uid = ?");
		sqlite3_stmt *del = db_prepare(f, "DELETE FROM msgs WHERE uid = ?");
		sqlite3_stmt *exp = db_prepare(f, "INSERT OR REPLACE INTO expunged(uid, modseq) VALUES (?, ?)");

		for (size_t i = 0; i < ngone && rc == SQLITE_OK && sz && del && exp; i++) {
			sqlite3_bind_int64(sz, 1, gone[i]);
			if (sqlite3_step(sz) == SQLITE_ROW)
				bytes_delta -= sqlite3_column_int64(sz, 0);
			sqlite3_reset(sz);
			sqlite3_bind_int64(del, 1, gone[i]);
			rc = sqlite3_step(del) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(f->db);
			sqlite3_reset(del);
			sqlite3_bind_int64(exp, 1, gone[i]);
			sqlite3_bind_int64(exp, 2, modseq);
			if (rc == SQLITE_OK)
				rc = sqlite3_step(exp) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(f->db);
			sqlite3_reset(exp);
			msgs_delta--;
		}
		if (sz == NULL || del == NULL || exp == NULL)
			rc = sqlite3_errcode(f->db);
		sqlite3_finalize(sz);
		sqlite3_finalize(del);
		sqlite3_finalize(exp);
	}
	if (rc == SQLITE_OK && (ngone > 0 || nadded > 0)) {
		char sql[160];

		snprintf(sql, sizeof(sql), "UPDATE folder SET uidnext = %lld, highestmodseq = %lld WHERE id = 1",
			 (long long)uidnext, (long long)modseq);
		rc = db_exec(f->db, sql);
	}
	if (rc == SQLITE_OK)
		rc = db_exec(f->db, "COMMIT");
	if (rc != SQLITE_OK) {
		db_exec(f->db, "ROLLBACK");
		ret = folder_db_error(f, rc, "reindex", error_r);
		goto out;
	}
	user_usage_add(f->user, bytes_delta, msgs_delta);
	if (nadded > 0)
		f->idx_wanted = true;
	if (ngone > 0)
		qsort(gone, ngone, sizeof(*gone), cmp_u32);
	if (ngone > 0)
		folder_post_event(f, STORE_EV_EXPUNGE, gone, ngone);
	if (nadded > 0)
		folder_post_event(f, STORE_EV_NEW, added_uids, nadded);
	if (ngone > 0 || nadded > 0)
		log_warn("store", "folder=%s reindex: %zu files added by hand, %zu removed", f->dir, nadded, ngone);
	res->added = (uint32_t)nadded;
	res->removed = (uint32_t)ngone;
	res->messages = (uint32_t)db_meta_int(f, "messages");
	ret = STORE_OK;
out:
	for (size_t i = 0; i < nrows; i++)
		free(rows[i].file);
	free(rows);
	free(gone);
	free(added_uids);
	free_files(files, nfiles);
	free(msgs_dir);
	return ret;
}
