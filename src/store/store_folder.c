/*
 * Operations on an open folder: status, paged fetch, flags, expunge,
 * VANISHED, \Recent, message files, and change notifications.
 *
 * Every change is one SQLite transaction under the folder lock; it takes
 * modseq = HIGHESTMODSEQ + 1 for every message it touches and raises
 * HIGHESTMODSEQ (RFC 7162).  Events are queued under the folder lock, in
 * commit order, and delivered after it is released by whichever thread
 * finds the queue non-empty and nobody dispatching (folder_dispatch).
 */
#include "store/store_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"

/* --- events --- */

void folder_post_event(struct store_folder *f, enum store_event_type type, const uint32_t *uids,
		       size_t count)
{
	struct ev_node *n = xcalloc(1, sizeof(*n));

	n->ev.type = type;
	if (f->db != NULL) {
		n->ev.modseq = (uint64_t)db_meta_int(f, "highestmodseq");
		n->ev.uidnext = (uint32_t)db_meta_int(f, "uidnext");
	}
	n->ev.uidvalidity = f->uidvalidity;
	if (count > 0) {
		n->uids = xmallocarray(count, sizeof(*uids));
		memcpy(n->uids, uids, count * sizeof(*uids));
	}
	n->ev.uids = n->uids;
	n->ev.count = count;
	pthread_mutex_lock(&f->ev_lock);
	if (f->ev_tail != NULL)
		f->ev_tail->next = n;
	else
		f->ev_head = n;
	f->ev_tail = n;
	pthread_mutex_unlock(&f->ev_lock);
}

void folder_dispatch(struct store_folder *f)
{
	pthread_mutex_lock(&f->ev_lock);
	if (f->dispatching) {
		/* The running dispatcher will deliver ours, in order. */
		pthread_mutex_unlock(&f->ev_lock);
		return;
	}
	f->dispatching = true;
	while (f->ev_head != NULL) {
		struct ev_node *n = f->ev_head;

		f->ev_head = n->next;
		if (f->ev_head == NULL)
			f->ev_tail = NULL;
		pthread_mutex_unlock(&f->ev_lock);
		/* Call each live watch without holding any store lock. */
		pthread_mutex_lock(&f->watch_lock);
		for (struct store_watch *w = f->watches; w != NULL; w = w->next) {
			if (w->removed)
				continue;
			w->running++;
			w->runner = pthread_self();
			pthread_mutex_unlock(&f->watch_lock);
			w->fn(&n->ev, w->context);
			pthread_mutex_lock(&f->watch_lock);
			w->running--;
			pthread_cond_broadcast(&f->watch_cond);
		}
		/* Free watches removed meanwhile once nobody runs them. */
		for (struct store_watch **pp = &f->watches; *pp != NULL;) {
			struct store_watch *w = *pp;

			if (w->removed && w->running == 0) {
				*pp = w->next;
				free(w);
			} else {
				pp = &w->next;
			}
		}
		pthread_mutex_unlock(&f->watch_lock);
		free(n->uids);
		free(n);
		pthread_mutex_lock(&f->ev_lock);
	}
	f->dispatching = false;
	pthread_mutex_unlock(&f->ev_lock);
}

struct store_watch *store_watch(struct store_folder *f, store_watch_fn *fn, void *context)
{
	struct store_watch *w = xcalloc(1, sizeof(*w));

	w->folder = f;
	w->fn = fn;
	w->context = context;
	pthread_mutex_lock(&f->watch_lock);
	w->next = f->watches;
	f->watches = w;
	pthread_mutex_unlock(&f->watch_lock);
	return w;
}

void store_unwatch(struct store_watch **watch)
{
	struct store_watch *w = *watch;
	struct store_folder *f;

	if (w == NULL)
		return;
	*watch = NULL;
	f = w->folder;
	pthread_mutex_lock(&f->watch_lock);
	w->removed = true;
	/* Wait for a call in progress, unless it is this thread's own. */
	while (w->running > 0 && !pthread_equal(w->runner, pthread_self()))
		pthread_cond_wait(&f->watch_cond, &f->watch_lock);
	if (w->running == 0) {
		for (struct store_watch **pp = &f->watches; *pp != NULL; pp = &(*pp)->next) {
			if (*pp == w) {
				*pp = w->next;
				free(w);
				break;
			}
		}
	}
	pthread_mutex_unlock(&f->watch_lock);
}

/* --- UID sets --- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_range(const void *a, const void *b)
{
	const struct store_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorted, merged copy of a set (NULL set: [1, UINT32_MAX]). */
static struct store_range *normalize(const struct store_uidset *set, size_t *n_r)
{
	struct store_range *r;
	size_t n = 0;

	if (set == NULL) {
		r = xmalloc(sizeof(*r));
		r->lo = 1;
		r->hi = UINT32_MAX;
		*n_r = 1;
		return r;
	}
	r = xmallocarray(set->count + 1, sizeof(*r));
	for (size_t i = 0; i < set->count; i++) {
		struct store_range x = set->ranges[i];

		if (x.lo > x.hi) {
			uint32_t t = x.lo;

			x.lo = x.hi;
			x.hi = t;
		}
		r[n++] = x;
	}
	if (n > 0)
		qsort(r, n, sizeof(*r), cmp_range);
	{
		size_t m = 0;

		for (size_t i = 0; i < n; i++) {
			if (m > 0 && (r[m - 1].hi == UINT32_MAX || r[i].lo <= r[m - 1].hi + 1)) {
				if (r[i].hi > r[m - 1].hi)
					r[m - 1].hi = r[i].hi;
			} else {
				r[m++] = r[i];
			}
		}
		n = m;
	}
	*n_r = n;
	return r;
}

int folder_collect_uids(struct store_folder *f, const struct store_uidset *set, const char *extra,
			uint32_t **uids_r, size_t *count_r)
{
	size_t nr, n = 0, cap = 0;
	struct store_range *r = normalize(set, &nr);
	uint32_t *uids = NULL;
	char sql[256];
	sqlite3_stmt *st;
	int rc = SQLITE_OK;

	snprintf(sql, sizeof(sql), "SELECT uid FROM msgs WHERE uid BETWEEN ? AND ?%s%s ORDER BY uid",
		 extra != NULL ? " AND " : "", extra != NULL ? extra : "");
	st = db_prepare(f, sql);
	if (st == NULL) {
		free(r);
		return sqlite3_errcode(f->db);
	}
	for (size_t i = 0; i < nr && rc == SQLITE_OK; i++) {
		sqlite3_bind_int64(st, 1, r[i].lo);
		sqlite3_bind_int64(st, 2, r[i].hi);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (n == cap) {
				cap = cap == 0 ? 64 : cap * 2;
				uids = xreallocarray(uids, cap, sizeof(*uids));
			}
			uids[n++] = (uint32_t)sqlite3_column_int64(st, 0);
		}
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	free(r);
	if (rc != SQLITE_OK) {
		free(uids);
		return rc;
	}
	*uids_r = uids;
	*count_r = n;
	return SQLITE_OK;
}

/* --- status --- */

enum store_status store_folder_status(struct store_folder *f, struct store_folder_status *st,
				      const char **error_r)
{
	enum store_status ret = folder_rlock(f, error_r);
	sqlite3_stmt *q;
	int rc;

	if (ret != STORE_OK)
		return ret;
	memset(st, 0, sizeof(*st));
	/* one read transaction: the counters and the first unseen agree */
	if ((rc = db_exec(f->rdb, "BEGIN")) != SQLITE_OK)
		return rdb_error(f, rc, "status", error_r);
	q = rdb_prepare(f, "SELECT messages, unseen, deleted, uidvalidity, uidnext, highestmodseq, bytes"
			" FROM folder WHERE id = 1");
	if (q == NULL || sqlite3_step(q) != SQLITE_ROW) {
		rc = sqlite3_errcode(f->rdb);
		sqlite3_finalize(q);
		return rdb_error(f, rc, "status", error_r);
	}
	st->messages = (uint32_t)sqlite3_column_int64(q, 0);
	st->unseen = (uint32_t)sqlite3_column_int64(q, 1);
	st->deleted = (uint32_t)sqlite3_column_int64(q, 2);
	st->uidvalidity = (uint32_t)sqlite3_column_int64(q, 3);
	st->uidnext = (uint32_t)sqlite3_column_int64(q, 4);
	st->highestmodseq = (uint64_t)sqlite3_column_int64(q, 5);
	st->size = (uint64_t)sqlite3_column_int64(q, 6);
	sqlite3_finalize(q);
	if (st->unseen > 0) {
		q = rdb_prepare(f, "SELECT uid FROM msgs WHERE (flags & 1) = 0 ORDER BY uid LIMIT 1");
		if (q != NULL && sqlite3_step(q) == SQLITE_ROW)
			st->first_unseen_uid = (uint32_t)sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
	}
	(void)db_exec(f->rdb, "COMMIT");
	folder_runlock(f);
	pthread_mutex_lock(&f->user->lock);
	st->role = user_role_of(f->user, f->name);
	pthread_mutex_unlock(&f->user->lock);
	return STORE_OK;
}

/* --- fetch --- */

static const char *page_str(struct store_page *p, sqlite3_stmt *st, int col, size_t *offsets, size_t *k)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);

	if (t == NULL) {
		offsets[(*k)++] = SIZE_MAX;
		return NULL;
	}
	offsets[(*k)++] = p->strings.len;
	if (buf_append(&p->strings, t, (size_t)n) < 0 || buf_append_char(&p->strings, '\0') < 0)
		panic("store: page strings over limit");
	return NULL;
}

#define PAGE_STRS 9
/* Fields that come from the parsed file (NULL on a lazily rebuilt row). */
#define FETCH_DERIVED (STORE_FETCH_ENVELOPE | STORE_FETCH_BODYSTRUCTURE | STORE_FETCH_BODY | \
		       STORE_FETCH_HEADERS | STORE_FETCH_PREVIEW | STORE_FETCH_THREAD)

/* A fetched row whose cached columns the indexer has not filled yet. */
struct lazy_row {
	size_t i;                     /* in the page */
	char *path;
};

static void page_put(struct store_page *p, const char *s, size_t *offsets, size_t k)
{
	if (s == NULL) {
		offsets[k] = SIZE_MAX;
		return;
	}
	offsets[k] = p->strings.len;
	if (buf_append_str(&p->strings, s) < 0 || buf_append_char(&p->strings, '\0') < 0)
		panic("store: page strings over limit");
}

/* Past this, a header is read with the rest of the file. */
#define HEADER_READ_MAX (1024 * 1024)
#define HEADER_READ_CHUNK 8192

/* The empty line that ends a header, in data[from..len): the offset just
 * after it, or 0.  A line end then an empty line ("\n\r\n" or "\n\n") ends
 * it however the lines end. */
static size_t header_end(const char *data, size_t from, size_t len)
{
	for (size_t i = from; i + 1 < len; i++) {
		if (data[i] != '\n')
			continue;
		if (data[i + 1] == '\n')
			return i + 2;
		if (data[i + 1] == '\r' && i + 2 < len && data[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Reads the message file at path up to and with the empty line that ends
 * its header: what ENVELOPE and the header fields need, a few hundred
 * bytes instead of the whole message.  Without such a line in the first
 * HEADER_READ_MAX bytes, the whole file.  0, or -1 with errno. */
static int read_header_part(const char *path, char **data_r, size_t *len_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0, cap = HEADER_READ_CHUNK, end = 0;
	char *data;

	if (fd < 0)
		return -1;
	data = xmalloc(cap + 1);
	for (;;) {
		ssize_t n;

		if (len == cap) {
			cap *= 2;
			data = xrealloc(data, cap + 1);
		}
		n = read(fd, data + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			free(data);
			close(fd);
			errno = err;
			return -1;
		}
		if (n == 0)
			break;                       /* the whole file is a header */
		end = header_end(data, len > 2 ? len - 2 : 0, len + (size_t)n);
		len += (size_t)n;
		if (end > 0) {
			len = end;
			break;
		}
		if (len > HEADER_READ_MAX) {
			free(data);
			close(fd);
			return fileio_read_all(path, (size_t)1 << 31, data_r, len_r);
		}
	}
	close(fd);
	data[len] = '\0';
	*data_r = data;
	*len_r = len;
	return 0;
}

/* Parses the files of rows a lazy rebuild left without their cache, for
 * this answer only: the read connection cannot write, and the indexer
 * (queued here) stores them.  When only header fields are asked for, only
 * the header is read.  No lock is held. */
static void fetch_lazy(struct store_folder *f, struct store_page *p, uint32_t fields, size_t *offs,
		       struct lazy_row *lazy, size_t nlazy)
{
	bool header_only = (fields & (STORE_FETCH_BODYSTRUCTURE | STORE_FETCH_BODY | STORE_FETCH_PREVIEW)) == 0;

	for (size_t j = 0; j < nlazy; j++) {
		struct store_msg *m = &p->msgs[lazy[j].i];
		struct mime_summary sum;
		char *data;
		size_t len, k = lazy[j].i * PAGE_STRS;
		int r = header_only ? read_header_part(lazy[j].path, &data, &len)
				    : fileio_read_all(lazy[j].path, (size_t)1 << 31, &data, &len);

		if (r < 0)
			continue;          /* removed by hand: a re-index expunges it */
		mime_summarize(data, len, &f->user->store->set.mime, false, &sum);
		free(data);
		m->header_size = sum.header_size;
		m->sent_date = sum.sent_date;
		page_put(p, fields & STORE_FETCH_ENVELOPE ? sum.envelope : NULL, offs, k);
		page_put(p, fields & STORE_FETCH_BODYSTRUCTURE ? sum.bodystructure : NULL, offs, k + 1);
		page_put(p, fields & STORE_FETCH_BODY ? sum.body : NULL, offs, k + 2);
		page_put(p, fields & STORE_FETCH_HEADERS ? sum.headers : NULL, offs, k + 3);
		page_put(p, fields & STORE_FETCH_PREVIEW ? sum.preview : NULL, offs, k + 4);
		page_put(p, fields & STORE_FETCH_THREAD ? sum.message_id : NULL, offs, k + 5);
		page_put(p, fields & STORE_FETCH_THREAD ? sum.in_reply_to : NULL, offs, k + 6);
		page_put(p, fields & STORE_FETCH_THREAD ? sum.references : NULL, offs, k + 7);
		page_put(p, fields & STORE_FETCH_THREAD ? sum.subject : NULL, offs, k + 8);
		mime_summary_deinit(&sum);
	}
	for (size_t j = 0; j < nlazy; j++)
		free(lazy[j].path);
	free(lazy);
	if (nlazy > 0)
		folder_index_later(f);
}

enum store_status store_fetch(struct store_folder *f, const struct store_uidset *uids,
			      uint64_t changedsince, uint32_t fields, uint32_t after_uid, size_t max,
			      struct store_page **page_r, const char **error_r)
{
	struct store_page *p;
	size_t nr, *offs;
	struct store_range *r;
	sqlite3_stmt *st;
	enum store_status ret;
	int rc = SQLITE_OK;
	char sql[1024];
	struct lazy_row *lazy = NULL;
	size_t nlazy = 0;

	if (max == 0)
		max = 1;
	snprintf(sql, sizeof(sql),
		 "SELECT uid, flags, keywords, modseq, internal_date, tz, save_date, size, header_size,"
		 " sent_date, guid, %s, %s, %s, %s, %s, %s, %s, %s, %s, pending, file FROM msgs"
		 " WHERE uid BETWEEN ? AND ? AND modseq > ? ORDER BY uid LIMIT ?",
		 fields & STORE_FETCH_ENVELOPE ? "envelope" : "NULL",
		 fields & STORE_FETCH_BODYSTRUCTURE ? "bodystructure" : "NULL",
		 fields & STORE_FETCH_BODY ? "body" : "NULL",
		 fields & STORE_FETCH_HEADERS ? "headers" : "NULL",
		 fields & STORE_FETCH_PREVIEW ? "preview" : "NULL",
		 fields & STORE_FETCH_THREAD ? "message_id" : "NULL",
		 fields & STORE_FETCH_THREAD ? "in_reply_to" : "NULL",
		 fields & STORE_FETCH_THREAD ? "refs" : "NULL",
		 fields & STORE_FETCH_THREAD ? "subject" : "NULL");
	ret = folder_rlock(f, error_r);
	if (ret != STORE_OK)
		return ret;
	/* one read transaction: highestmodseq is that of the rows read */
	if ((rc = db_exec(f->rdb, "BEGIN")) != SQLITE_OK)
		return rdb_error(f, rc, "fetch", error_r);
	st = rdb_prepare(f, sql);
	if (st == NULL)
		return rdb_error(f, sqlite3_errcode(f->rdb), "fetch", error_r);
	p = xcalloc(1, sizeof(*p));
	buf_init(&p->strings, SIZE_MAX / 2);
	p->msgs = xcalloc(max, sizeof(*p->msgs));
	offs = xcalloc(max * PAGE_STRS, sizeof(*offs));
	p->highestmodseq = (uint64_t)rdb_meta_int(f, "highestmodseq");
	r = normalize(uids, &nr);
	for (size_t i = 0; i < nr && p->count < max && rc == SQLITE_OK; i++) {
		uint32_t lo = r[i].lo;

		if (r[i].hi <= after_uid)
			continue;
		if (lo <= after_uid)
			lo = after_uid + 1;
		sqlite3_bind_int64(st, 1, lo);
		sqlite3_bind_int64(st, 2, r[i].hi);
		sqlite3_bind_int64(st, 3, (int64_t)changedsince);
		sqlite3_bind_int64(st, 4, (int64_t)(max - p->count));
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct store_msg *m = &p->msgs[p->count];
			const char *guid = (const char *)sqlite3_column_text(st, 10);
			size_t k = p->count * PAGE_STRS;

			m->uid = (uint32_t)sqlite3_column_int64(st, 0);
			m->flags = (uint32_t)sqlite3_column_int64(st, 1);
			m->keywords = (uint64_t)sqlite3_column_int64(st, 2);
			m->modseq = (uint64_t)sqlite3_column_int64(st, 3);
			m->internal_date = sqlite3_column_int64(st, 4);
			m->tz = sqlite3_column_int(st, 5);
			m->save_date = sqlite3_column_int64(st, 6);
			m->size = (uint64_t)sqlite3_column_int64(st, 7);
			m->header_size = (uint64_t)sqlite3_column_int64(st, 8);
			m->sent_date = sqlite3_column_int64(st, 9);
			if (guid != NULL && strlen(guid) < sizeof(m->guid))
				memcpy(m->guid, guid, strlen(guid) + 1);
			for (int c = 11; c < 11 + PAGE_STRS; c++)
				page_str(p, st, c, offs, &k);
			if ((sqlite3_column_int(st, 20) & PENDING_CACHE) != 0 && (fields & FETCH_DERIVED) != 0) {
				/* the path under rlock: f->dir is stable while the
				 * read connection is current */
				lazy = xreallocarray(lazy, nlazy + 1, sizeof(*lazy));
				lazy[nlazy].i = p->count;
				lazy[nlazy].path = folder_msg_path(f, (const char *)sqlite3_column_text(st, 21));
				nlazy++;
			}
			p->count++;
			p->last_uid = m->uid;
		}
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
		sqlite3_reset(st);
	}
	free(r);
	sqlite3_finalize(st);
	if (rc != SQLITE_OK) {
		ret = rdb_error(f, rc, "fetch", error_r);
		free(offs);
		p->count = 0;
		store_page_free(&p);
		for (size_t j = 0; j < nlazy; j++)
			free(lazy[j].path);
		free(lazy);
		return ret;
	}
	(void)db_exec(f->rdb, "COMMIT");
	folder_runlock(f);
	fetch_lazy(f, p, fields, offs, lazy, nlazy);
	/* Strings are pointers into one buffer, fixed once it stops growing. */
	for (size_t i = 0; i < p->count; i++) {
		const char **dst[PAGE_STRS] = {
			&p->msgs[i].envelope, &p->msgs[i].bodystructure, &p->msgs[i].body,
			&p->msgs[i].headers, &p->msgs[i].preview, &p->msgs[i].message_id,
			&p->msgs[i].in_reply_to, &p->msgs[i].references, &p->msgs[i].subject,
		};

		for (int c = 0; c < PAGE_STRS; c++) {
			size_t o = offs[i * PAGE_STRS + (size_t)c];

			*dst[c] = o == SIZE_MAX ? NULL : p->strings.data + o;
		}
	}
	free(offs);
	p->more = p->count == max;
	*page_r = p;
	return STORE_OK;
}

struct uid_modseq {
	uint32_t uid;
	uint64_t modseq;
};

static int cmp_uid_modseq(const void *a, const void *b)
{
	uint32_t x = ((const struct uid_modseq *)a)->uid, y = ((const struct uid_modseq *)b)->uid;

	return x < y ? -1 : x > y;
}

enum store_status store_folder_uids(struct store_folder *f, uint32_t **uids_r,
				    uint64_t **modseqs_r, size_t *count_r, const char **error_r)
{
	struct uid_modseq *v = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	enum store_status ret;
	int rc;

	ret = folder_rlock(f, error_r);
	if (ret != STORE_OK)
		return ret;
	/* msgs_modseq holds (modseq, uid): a scan of it is a few hundred
	 * pages for 100 000 messages, where the table is tens of thousands */
	st = rdb_prepare(f, "SELECT uid, modseq FROM msgs INDEXED BY msgs_modseq");
	if (st == NULL)
		return rdb_error(f, sqlite3_errcode(f->rdb), "uids", error_r);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap == 0 ? 1024 : cap * 2;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[n].uid = (uint32_t)sqlite3_column_int64(st, 0);
		v[n].modseq = (uint64_t)sqlite3_column_int64(st, 1);
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return rdb_error(f, rc, "uids", error_r);
	}
	folder_runlock(f);
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_uid_modseq);
	*uids_r = xmallocarray(n + 1, sizeof(**uids_r));
	*modseqs_r = xmallocarray(n + 1, sizeof(**modseqs_r));
	for (size_t i = 0; i < n; i++) {
		(*uids_r)[i] = v[i].uid;
		(*modseqs_r)[i] = v[i].modseq;
	}
	free(v);
	*count_r = n;
	return STORE_OK;
}

void store_page_free(struct store_page **page)
{
	struct store_page *p = *page;

	if (p == NULL)
		return;
	buf_deinit(&p->strings);
	free(p->msgs);
	free(p);
	*page = NULL;
}

enum store_status store_folder_keywords(struct store_folder *f, char ***names_r, size_t *count_r,
					const char **error_r)
{
	enum store_status ret = folder_rlock(f, error_r);
	char **names;
	sqlite3_stmt *st;

	if (ret != STORE_OK)
		return ret;
	names = xcalloc(STORE_MAX_KEYWORDS, sizeof(*names));
	st = rdb_prepare(f, "SELECT bit, name FROM keywords");
	while (st != NULL && sqlite3_step(st) == SQLITE_ROW) {
		int64_t b = sqlite3_column_int64(st, 0);

		if (b >= 0 && b < STORE_MAX_KEYWORDS && names[b] == NULL)
			names[b] = xstrdup((const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	folder_runlock(f);
	*names_r = names;
	*count_r = STORE_MAX_KEYWORDS;
	return STORE_OK;
}

void store_keywords_free(char ***names, size_t count)
{
	if (*names == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free((*names)[i]);
	free(*names);
	*names = NULL;
}

enum store_status store_msg_open(struct store_folder *f, uint32_t uid, int *fd_r, uint64_t *size_r,
				 const char **error_r)
{
	enum store_status ret = folder_lock(f, error_r);
	sqlite3_stmt *st;
	char *path = NULL;
	int fd;
	struct stat sb;

	if (ret != STORE_OK)
		return ret;
	st = db_prepare(f, "SELECT file FROM msgs WHERE uid = ?");
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, uid);
		if (sqlite3_step(st) == SQLITE_ROW)
			path = folder_msg_path(f, (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	folder_unlock(f);
	if (path == NULL) {
		*error_r = "no such message";
		return STORE_E_NOTFOUND;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		/* Removed by hand: the next re-index expunges it. */
		if (fd >= 0)
			close(fd);
		*error_r = "message file is missing";
		return STORE_E_NOTFOUND;
	}
	*fd_r = fd;
	*size_r = (uint64_t)sb.st_size;
	return STORE_OK;
}

enum store_status store_claim_recent(struct store_folder *f, uint32_t *first_r, uint32_t *last_r,
				     const char **error_r)
{
	enum store_status ret = folder_lock(f, error_r);
	int64_t first, next;
	char sql[96];

	if (ret != STORE_OK)
		return ret;
	first = db_meta_int(f, "first_recent_uid");
	next = db_meta_int(f, "uidnext");
	*first_r = (uint32_t)first;
	*last_r = (uint32_t)(next - 1);
	if (next > first) {
		snprintf(sql, sizeof(sql), "UPDATE folder SET first_recent_uid = %lld WHERE id = 1", (long long)next);
		if (db_exec(f->db, sql) != SQLITE_OK) {
			ret = folder_db_error(f, sqlite3_errcode(f->db), "recent", error_r);
			folder_unlock(f);
			return ret;
		}
	}
	folder_unlock(f);
	return STORE_OK;
}

/* --- flags --- */

enum store_status store_set_flags(struct store_folder *f, const struct store_uidset *uids,
				  enum store_flag_op op, uint32_t flags, const char *const *keywords,
				  uint64_t unchangedsince, struct store_flag_result *result,
				  const char **error_r)
{
	struct store_flag_result res = { 0 };
	enum store_status ret;
	uint32_t *list = NULL;
	size_t n = 0;
	uint64_t kw = 0;
	int64_t modseq;
	sqlite3_stmt *get = NULL, *upd = NULL;
	int rc, k;

	flags &= STORE_F_ALL;
	ret = folder_lock(f, error_r);
	if (ret != STORE_OK)
		return ret;
	if ((rc = db_exec(f->db, "BEGIN IMMEDIATE")) != SQLITE_OK)
		goto dberr;
	k = keywords_to_mask(f, keywords, op != STORE_FLAGS_REMOVE, &kw);
	if (k == -1 || k == -2) {
		db_exec(f->db, "ROLLBACK");
		folder_unlock(f);
		*error_r = k == -1 ? "too many keywords in this folder" : "invalid keyword";
		return k == -1 ? STORE_E_LIMIT : STORE_E_INVALID;
	}
	if (k != 0) {
		rc = sqlite3_errcode(f->db);
		goto dberr;
	}
	if ((rc = folder_collect_uids(f, uids, NULL, &list, &n)) != SQLITE_OK)
		goto dberr;
	modseq = db_meta_int(f, "highestmodseq") + 1;
	get = db_prepare(f, "SELECT flags, keywords, modseq FROM msgs WHERE uid = ?");
	upd = db_prepare(f, "UPDATE msgs SET flags = ?, keywords = ?, modseq = ? WHERE uid = ?");
	if (get == NULL || upd == NULL) {
		rc = sqlite3_errcode(f->db);
		goto dberr;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t of, nf;
		uint64_t ok, nk, oms;

		sqlite3_bind_int64(get, 1, list[i]);
		if ((rc = sqlite3_step(get)) != SQLITE_ROW) {
			sqlite3_reset(get);
			goto dberr;
		}
		of = (uint32_t)sqlite3_column_int64(get, 0);
		ok = (uint64_t)sqlite3_column_int64(get, 1);
		oms = (uint64_t)sqlite3_column_int64(get, 2);
		sqlite3_reset(get);
		if (unchangedsince != 0 && oms > unchangedsince) {
			res.modified = xreallocarray(res.modified, res.modified_count + 1, sizeof(uint32_t));
			res.modified[res.modified_count++] = list[i];
			continue;
		}
		switch (op) {
		case STORE_FLAGS_REPLACE: nf = flags; nk = kw; break;
		case STORE_FLAGS_ADD: nf = of | flags; nk = ok | kw; break;
		default: nf = of & ~flags; nk = ok & ~kw; break;
		}
		if (nf == of && nk == ok)
			continue;
		sqlite3_bind_int64(upd, 1, nf);
		sqlite3_bind_int64(upd, 2, (int64_t)nk);
		sqlite3_bind_int64(upd, 3, modseq);
		sqlite3_bind_int64(upd, 4, list[i]);
		rc = sqlite3_step(upd);
		sqlite3_reset(upd);
		if (rc != SQLITE_DONE)
			goto dberr;
		res.changed = xreallocarray(res.changed, res.changed_count + 1, sizeof(*res.changed));
		res.changed[res.changed_count++] = (struct store_flag_change){ list[i], nf, nk, (uint64_t)modseq };
	}
	rc = SQLITE_OK;
	if (res.changed_count > 0) {
		char sql[96];

		snprintf(sql, sizeof(sql), "UPDATE folder SET highestmodseq = %lld WHERE id = 1", (long long)modseq);
		rc = db_exec(f->db, sql);
		res.modseq = (uint64_t)modseq;
	}
	if (rc == SQLITE_OK)
		rc = db_exec(f->db, "COMMIT");
	if (rc != SQLITE_OK)
		goto dberr;
	sqlite3_finalize(get);
	sqlite3_finalize(upd);
	if (res.changed_count > 0) {
		uint32_t *changed = xmallocarray(res.changed_count, sizeof(uint32_t));

		for (size_t i = 0; i < res.changed_count; i++)
			changed[i] = res.changed[i].uid;
		folder_post_event(f, STORE_EV_FLAGS, changed, res.changed_count);
		free(changed);
	}
	folder_unlock(f);
	folder_dispatch(f);
	free(list);
	if (result != NULL)
		*result = res;
	else
		store_flag_result_free(&res);
	return STORE_OK;
dberr:
	sqlite3_finalize(get);
	sqlite3_finalize(upd);
	db_exec(f->db, "ROLLBACK");
	ret = folder_db_error(f, rc, "set flags", error_r);
	folder_unlock(f);
	free(list);
	store_flag_result_free(&res);
	return ret;
}

void store_flag_result_free(struct store_flag_result *r)
{
	free(r->changed);
	free(r->modified);
	memset(r, 0, sizeof(*r));
}

/* --- expunge --- */

enum store_status store_expunge(struct store_folder *f, const struct store_uidset *uids,
				bool only_deleted, uint32_t **uids_r, size_t *count_r,
				const char **error_r)
{
	enum store_status ret;
	uint32_t *list = NULL;
	char **files = NULL;
	size_t n = 0;
	int64_t modseq, bytes = 0;
	sqlite3_stmt *get = NULL, *del = NULL, *exp = NULL;
	int rc;

	ret = folder_lock(f, error_r);
	if (ret != STORE_OK)
		return ret;
	if ((rc = db_exec(f->db, "BEGIN IMMEDIATE")) != SQLITE_OK)
		goto dberr;
	rc = folder_collect_uids(f, uids, only_deleted ? "(flags & 8) != 0" : NULL, &list, &n);
	if (rc != SQLITE_OK)
		goto dberr;
	modseq = db_meta_int(f, "highestmodseq") + 1;
	files = xcalloc(n + 1, sizeof(*files));
	get = db_prepare(f, "SELECT file, size FROM msgs WHERE uid = ?");
	del = db_prepare(f, "DELETE FROM msgs WHERE uid = ?");
	exp = db_prepare(f, "INSERT OR REPLACE INTO expunged(uid, modseq) VALUES (?, ?)");
	if (get == NULL || del == NULL || exp == NULL) {
		rc = sqlite3_errcode(f->db);
		goto dberr;
	}
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(get, 1, list[i]);
		if (sqlite3_step(get) == SQLITE_ROW) {
			files[i] = xstrdup((const char *)sqlite3_column_text(get, 0));
			bytes += sqlite3_column_int64(get, 1);
		}
		sqlite3_reset(get);
		sqlite3_bind_int64(del, 1, list[i]);
		rc = sqlite3_step(del);
		sqlite3_reset(del);
		if (rc != SQLITE_DONE)
			goto dberr;
		sqlite3_bind_int64(exp, 1, list[i]);
		sqlite3_bind_int64(exp, 2, modseq);
		rc = sqlite3_step(exp);
		sqlite3_reset(exp);
		if (rc != SQLITE_DONE)
			goto dberr;
	}
	rc = SQLITE_OK;
	if (n > 0) {
		char sql[96];

		snprintf(sql, sizeof(sql), "UPDATE folder SET highestmodseq = %lld WHERE id = 1", (long long)modseq);
		rc = db_exec(f->db, sql);
	}
	if (rc == SQLITE_OK)
		rc = db_exec(f->db, "COMMIT");
	if (rc != SQLITE_OK)
		goto dberr;
	sqlite3_finalize(get);
	sqlite3_finalize(del);
	sqlite3_finalize(exp);
	/* Files go after the commit: a crash in between leaves files whose
	 * UID is in `expunged`, which the next re-index removes. */
	for (size_t i = 0; i < n; i++) {
		if (files[i] != NULL) {
			char *path = folder_msg_path(f, files[i]);

			if (fileio_unlink(path) < 0 && errno != ENOENT)
				log_warn("store", "folder=%s cannot remove %s: %s", f->dir, path, strerror(errno));
			free(path);
			free(files[i]);
		}
	}
	free(files);
	if (n > 0)
		folder_post_event(f, STORE_EV_EXPUNGE, list, n);
	folder_unlock(f);
	folder_dispatch(f);
	user_usage_add(f->user, -bytes, -(int64_t)n);
	if (uids_r != NULL) {
		*uids_r = list;
		*count_r = n;
	} else {
		free(list);
	}
	return STORE_OK;
dberr:
	sqlite3_finalize(get);
	sqlite3_finalize(del);
	sqlite3_finalize(exp);
	db_exec(f->db, "ROLLBACK");
	ret = folder_db_error(f, rc, "expunge", error_r);
	folder_unlock(f);
	for (size_t i = 0; files != NULL && i < n; i++)
		free(files[i]);
	free(files);
	free(list);
	return ret;
}

enum store_status store_vanished(struct store_folder *f, uint64_t since, const struct store_uidset *uids,
				 uint32_t **uids_r, size_t *count_r, const char **error_r)
{
	enum store_status ret = folder_lock(f, error_r);
	size_t nr, n = 0, cap = 0;
	struct store_range *r;
	uint32_t *out = NULL;
	int64_t floor_ms, uidnext;
	sqlite3_stmt *st;
	int rc = SQLITE_OK;

	if (ret != STORE_OK)
		return ret;
	floor_ms = db_meta_int(f, "vanished_floor");
	uidnext = db_meta_int(f, "uidnext");
	r = normalize(uids, &nr);
	if ((int64_t)since < floor_ms) {
		/* History lost: every missing UID below UIDNEXT. */
		st = db_prepare(f, "SELECT uid FROM msgs WHERE uid BETWEEN ? AND ? ORDER BY uid");
		for (size_t i = 0; st != NULL && i < nr; i++) {
			int64_t lo = r[i].lo, hi = r[i].hi < uidnext ? r[i].hi : uidnext - 1, next = lo;

			if (hi < lo)
				continue;
			sqlite3_bind_int64(st, 1, lo);
			sqlite3_bind_int64(st, 2, hi);
			for (;;) {
				int64_t u = (rc = sqlite3_step(st)) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : hi + 1;

				for (; next < u && n < 10000000; next++) {
					if (n == cap) {
						cap = cap == 0 ? 64 : cap * 2;
						out = xreallocarray(out, cap, sizeof(*out));
					}
					out[n++] = (uint32_t)next;
				}
				next = u + 1;
				if (rc != SQLITE_ROW)
					break;
			}
			sqlite3_reset(st);
		}
	} else {
		st = db_prepare(f, "SELECT uid FROM expunged WHERE uid BETWEEN ? AND ? AND modseq > ? ORDER BY uid");
		for (size_t i = 0; st != NULL && i < nr; i++) {
			sqlite3_bind_int64(st, 1, r[i].lo);
			sqlite3_bind_int64(st, 2, r[i].hi);
			sqlite3_bind_int64(st, 3, (int64_t)since);
			while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
				if (n == cap) {
					cap = cap == 0 ? 64 : cap * 2;
					out = xreallocarray(out, cap, sizeof(*out));
				}
				out[n++] = (uint32_t)sqlite3_column_int64(st, 0);
			}
			sqlite3_reset(st);
		}
	}
	if (st == NULL)
		rc = sqlite3_errcode(f->db);
	sqlite3_finalize(st);
	free(r);
	if (rc != SQLITE_DONE && rc != SQLITE_OK) {
		ret = folder_db_error(f, rc, "vanished", error_r);
		folder_unlock(f);
		free(out);
		return ret;
	}
	folder_unlock(f);
	if (n > 0)
		qsort(out, n, sizeof(*out), cmp_u32);
	*uids_r = out;
	*count_r = n;
	return STORE_OK;
}
