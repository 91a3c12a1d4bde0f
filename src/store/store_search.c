/*
 * SEARCH and SORT over a folder's index.
 *
 * A search key tree becomes one SQL WHERE clause with bound parameters
 * (never text pasted into SQL).  Flags, dates, sizes, modseqs and UIDs are
 * columns; the usual header fields are cached decoded columns matched
 * case-insensitively (Unicode case folding); other header fields are read
 * from the message file by an SQL function; BODY and TEXT go through the
 * FTS5 table (whole words and word prefixes).  Nesting and the number of
 * keys are bounded (HOSTILE-INPUT row 19).
 */
#include "store/store_private.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/fileio.h"
#include "core/str.h"
#include "mime/mime_private.h"

/* --- SQL functions --- */

static bool icontains(const char *hay, const char *needle)
{
	char *h, *n;
	bool r;

	if (*needle == '\0')
		return true;
	h = g_utf8_casefold(hay, -1);
	n = g_utf8_casefold(needle, -1);
	r = strstr(h, n) != NULL;
	g_free(h);
	g_free(n);
	return r;
}

static void fn_icontains(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *hay = (const char *)sqlite3_value_text(argv[0]);
	const char *needle = (const char *)sqlite3_value_text(argv[1]);

	(void)argc;
	sqlite3_result_int(ctx, hay != NULL && needle != NULL && icontains(hay, needle));
}

/* petrel_header(file, field, needle): does a field of that name in the
 * message's header contain needle (after RFC 2047 decoding)? */
static void fn_header(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct store_folder *f = sqlite3_user_data(ctx);
	const char *file = (const char *)sqlite3_value_text(argv[0]);
	const char *field = (const char *)sqlite3_value_text(argv[1]);
	const char *needle = (const char *)sqlite3_value_text(argv[2]);
	struct mime_message m;
	char *path, *data;
	size_t len, flen;
	bool found = false;

	(void)argc;
	if (file == NULL || field == NULL || needle == NULL) {
		sqlite3_result_int(ctx, 0);
		return;
	}
	path = folder_msg_path(f, file);
	if (fileio_read_all(path, (size_t)1 << 31, &data, &len) < 0) {
		free(path);
		sqlite3_result_int(ctx, 0);
		return;
	}
	free(path);
	mime_scan(data, len, NULL, &m);
	flen = strlen(field);
	/* Walk the top header block line by line (bounded by its size). */
	for (size_t pos = 0, end = m.parts[0].body_start; pos < end && !found;) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', end - pos);
		size_t next = nl == NULL ? end : (size_t)(nl - data) + 1;

		if (next - pos > flen && strncasecmp(line, field, flen) == 0 && line[flen] == ':') {
			/* collect the folded value */
			struct buf v;
			size_t q = next;
			char *dec;

			buf_init(&v, MIME_MAX_FIELD_VALUE);
			if (buf_append(&v, line + flen + 1, next - pos - flen - 1) < 0)
				buf_truncate(&v, 0);
			while (q < end && (data[q] == ' ' || data[q] == '\t')) {
				const char *nl2 = memchr(data + q, '\n', end - q);
				size_t n2 = nl2 == NULL ? end : (size_t)(nl2 - data) + 1;

				if (buf_append(&v, data + q, n2 - q) < 0)
					break;
				q = n2;
			}
			for (size_t i = 0; i < v.len; i++) {
				if (v.data[i] == '\r' || v.data[i] == '\n' || v.data[i] == '\0')
					v.data[i] = ' ';
			}
			dec = g_mime_utils_header_decode_text(mime_parser_options(), v.data);
			found = icontains(dec != NULL ? dec : v.data, needle);
			g_free(dec);
			buf_deinit(&v);
			next = q;
		}
		pos = next;
	}
	mime_message_deinit(&m);
	free(data);
	sqlite3_result_int(ctx, found);
}

void search_register_functions(struct store_folder *f, sqlite3 *db)
{
	sqlite3_create_function(db, "petrel_icontains", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
				fn_icontains, NULL, NULL);
	sqlite3_create_function(db, "petrel_header", 3, SQLITE_UTF8, f, fn_header, NULL, NULL);
}

/* --- SQL generation --- */

struct bind {
	bool is_text;
	int64_t i;
	char *text;
};

struct gen {
	sqlite3 *db;                  /* the connection the query runs on */
	struct buf sql;
	struct bind *binds;
	size_t nbinds;
	unsigned keys;
	const char *error;
	enum store_status status;
};

static void sql(struct gen *g, const char *s)
{
	if (buf_append_str(&g->sql, s) < 0 && g->status == STORE_OK) {
		g->status = STORE_E_LIMIT;
		g->error = "search too complex";
	}
}

static void bind_i(struct gen *g, int64_t v)
{
	g->binds = xreallocarray(g->binds, g->nbinds + 1, sizeof(*g->binds));
	g->binds[g->nbinds++] = (struct bind){ false, v, NULL };
	sql(g, "?");
}

static void bind_t(struct gen *g, char *text)
{
	g->binds = xreallocarray(g->binds, g->nbinds + 1, sizeof(*g->binds));
	g->binds[g->nbinds++] = (struct bind){ true, 0, text };
	sql(g, "?");
}

static const struct {
	const char *field, *column;
} header_columns[] = {
	{ "subject", "subject" }, { "from", "from_text" }, { "to", "to_text" }, { "cc", "cc_text" },
	{ "bcc", "bcc_text" }, { "message-id", "message_id" }, { "in-reply-to", "in_reply_to" },
	{ "references", "refs" },
};

/* FTS5 query for a substring: the words as a phrase, the last one a
 * prefix.  NULL when the text has no word characters. */
static char *fts_query(const char *text, const char *column)
{
	struct buf q;
	bool any = false;

	for (const char *p = text; *p != '\0'; p++) {
		if (g_ascii_isalnum(*p) || (unsigned char)*p >= 0x80)
			any = true;
	}
	if (!any)
		return NULL;
	buf_init(&q, 64 * 1024);
	if (column != NULL && (buf_append_str(&q, column) < 0 || buf_append_str(&q, " : ") < 0))
		goto fail;
	if (buf_append_char(&q, '"') < 0)
		goto fail;
	for (const char *p = text; *p != '\0'; p++) {
		if (*p == '"' && buf_append_char(&q, '"') < 0)
			goto fail;
		if (buf_append_char(&q, *p) < 0)
			goto fail;
	}
	if (buf_append_str(&q, "\" *") < 0)
		goto fail;
	{
		char *r = buf_steal(&q);

		buf_deinit(&q);
		return r;
	}
fail:
	buf_deinit(&q);
	return NULL;
}

/* The bit of a keyword (compared case-insensitively), or -1. */
static int64_t keyword_bit(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st = NULL;
	int64_t bit = -1;

	if (sqlite3_prepare_v2(db, "SELECT bit FROM keywords WHERE name = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			bit = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return bit;
}

static void gen_key(struct gen *g, const struct store_search_key *k, unsigned depth)
{
	char tmp[160];

	if (g->status != STORE_OK)
		return;
	if (depth > STORE_SEARCH_MAX_DEPTH || ++g->keys > STORE_SEARCH_MAX_KEYS) {
		g->status = STORE_E_LIMIT;
		g->error = "search too complex";
		return;
	}
	switch (k->type) {
	case STORE_SK_ALL:
		sql(g, "1");
		break;
	case STORE_SK_AND:
	case STORE_SK_OR:
		if (k->child_count == 0) {
			sql(g, k->type == STORE_SK_AND ? "1" : "0");
			break;
		}
		sql(g, "(");
		for (size_t i = 0; i < k->child_count; i++) {
			if (i > 0)
				sql(g, k->type == STORE_SK_AND ? " AND " : " OR ");
			gen_key(g, &k->children[i], depth + 1);
		}
		sql(g, ")");
		break;
	case STORE_SK_NOT:
		if (k->child_count != 1) {
			g->status = STORE_E_INVALID;
			g->error = "NOT needs one key";
			break;
		}
		sql(g, "NOT (");
		gen_key(g, &k->children[0], depth + 1);
		sql(g, ")");
		break;
	case STORE_SK_UID:
		if (k->uids.count == 0) {
			sql(g, "0");
			break;
		}
		sql(g, "(");
		for (size_t i = 0; i < k->uids.count; i++) {
			if (i > 0)
				sql(g, " OR ");
			sql(g, "uid BETWEEN ");
			bind_i(g, k->uids.ranges[i].lo < k->uids.ranges[i].hi ? k->uids.ranges[i].lo : k->uids.ranges[i].hi);
			sql(g, " AND ");
			bind_i(g, k->uids.ranges[i].lo < k->uids.ranges[i].hi ? k->uids.ranges[i].hi : k->uids.ranges[i].lo);
		}
		sql(g, ")");
		break;
	case STORE_SK_FLAGS:
		snprintf(tmp, sizeof(tmp), "((flags & %u) = %u AND (flags & %u) = 0)", k->flags & STORE_F_ALL,
			 k->flags & STORE_F_ALL, k->not_flags & STORE_F_ALL);
		sql(g, tmp);
		break;
	case STORE_SK_KEYWORD: {
		int64_t bit = k->text != NULL ? keyword_bit(g->db, k->text) : -1;

		if (bit < 0 || bit >= STORE_MAX_KEYWORDS) {
			sql(g, "0");
			break;
		}
		sql(g, "(keywords & ");
		bind_i(g, (int64_t)((uint64_t)1 << bit));
		sql(g, ") != 0");
		break;
	}
	case STORE_SK_INTERNALDATE:
	case STORE_SK_SENTDATE:
	case STORE_SK_SAVEDATE:
	case STORE_SK_SIZE: {
		const char *col = k->type == STORE_SK_INTERNALDATE ? "internal_date" :
			k->type == STORE_SK_SAVEDATE ? "save_date" : k->type == STORE_SK_SIZE ? "size" :
			"(CASE WHEN sent_date != 0 THEN sent_date ELSE internal_date END)";

		snprintf(tmp, sizeof(tmp), "(%s >= ", col);
		sql(g, tmp);
		bind_i(g, k->lo);
		snprintf(tmp, sizeof(tmp), " AND %s < ", col);
		sql(g, tmp);
		bind_i(g, k->hi);
		sql(g, ")");
		break;
	}
	case STORE_SK_MODSEQ:
		sql(g, "modseq >= ");
		bind_i(g, k->lo);
		break;
	case STORE_SK_EMAILID:
		sql(g, "guid = ");
		bind_t(g, xstrdup(k->text != NULL ? k->text : ""));
		break;
	case STORE_SK_HEADER: {
		const char *col = NULL;

		if (k->field == NULL || k->text == NULL) {
			g->status = STORE_E_INVALID;
			g->error = "HEADER needs a field and a string";
			break;
		}
		for (size_t i = 0; i < sizeof(header_columns) / sizeof(header_columns[0]); i++) {
			if (strcasecmp(header_columns[i].field, k->field) == 0)
				col = header_columns[i].column;
		}
		if (col != NULL) {
			snprintf(tmp, sizeof(tmp), "petrel_icontains(%s, ", col);
			sql(g, tmp);
			bind_t(g, xstrdup(k->text));
			sql(g, ")");
		} else {
			sql(g, "petrel_header(file, ");
			bind_t(g, xstrdup(k->field));
			sql(g, ", ");
			bind_t(g, xstrdup(k->text));
			sql(g, ")");
		}
		break;
	}
	case STORE_SK_BODY:
	case STORE_SK_TEXT: {
		char *q = fts_query(k->text != NULL ? k->text : "", k->type == STORE_SK_BODY ? "body" : NULL);

		if (q == NULL) {
			sql(g, "1");     /* no words: every message contains "" */
			break;
		}
		sql(g, "uid IN (SELECT rowid FROM fts WHERE fts MATCH ");
		bind_t(g, q);
		sql(g, ")");
		break;
	}
	default:
		g->status = STORE_E_INVALID;
		g->error = "unknown search key";
	}
}

static void gen_free(struct gen *g)
{
	for (size_t i = 0; i < g->nbinds; i++)
		free(g->binds[i].text);
	free(g->binds);
	buf_deinit(&g->sql);
}

static const char *sort_expr(enum store_sort_key k)
{
	switch (k) {
	case STORE_SORT_ARRIVAL: return "internal_date";
	case STORE_SORT_CC: return "COALESCE(sort_cc, '') COLLATE NOCASE";
	case STORE_SORT_DATE: return "(CASE WHEN sent_date != 0 THEN sent_date ELSE internal_date END)";
	case STORE_SORT_FROM: return "COALESCE(sort_from, '') COLLATE NOCASE";
	case STORE_SORT_SIZE: return "size";
	case STORE_SORT_SUBJECT: return "COALESCE(base_subject, '') COLLATE NOCASE";
	case STORE_SORT_TO: return "COALESCE(sort_to, '') COLLATE NOCASE";
	case STORE_SORT_DISPLAYFROM: return "COALESCE(display_from, sort_from, '') COLLATE NOCASE";
	case STORE_SORT_DISPLAYTO: return "COALESCE(display_to, sort_to, '') COLLATE NOCASE";
	}
	return NULL;
}

/* Does the key read what the indexer derives from the files (full text,
 * cached header columns, Date:)?  Then its pending messages are indexed
 * first. */
static bool key_needs_index(const struct store_search_key *k, unsigned depth)
{
	if (depth > STORE_SEARCH_MAX_DEPTH)
		return false;
	switch (k->type) {
	case STORE_SK_AND:
	case STORE_SK_OR:
	case STORE_SK_NOT:
		for (size_t i = 0; i < k->child_count; i++) {
			if (key_needs_index(&k->children[i], depth + 1))
				return true;
		}
		return false;
	case STORE_SK_SENTDATE:
	case STORE_SK_HEADER:
	case STORE_SK_BODY:
	case STORE_SK_TEXT:
		return true;
	default:
		return false;
	}
}

static bool sort_needs_index(const struct store_sort *criteria, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (criteria[i].key != STORE_SORT_ARRIVAL && criteria[i].key != STORE_SORT_SIZE)
			return true;
	}
	return false;
}

/* Is any message of db's snapshot still waiting for the indexer? */
static bool any_pending(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	bool any = false;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM msgs WHERE pending != 0 LIMIT 1", -1, &st, NULL) == SQLITE_OK)
		any = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return any;
}

struct result {
	uint32_t *uids;
	size_t count;
	uint64_t hms;
};

/* Runs the search on db (locked by the caller).  Returns SQLITE_OK, a
 * SQLite error, or -1 with g->status / g->error for a key the store
 * refuses. */
static int query(sqlite3 *db, struct gen *g, const struct store_search_key *key,
		 const struct store_sort *criteria, size_t ncrit, struct result *res)
{
	sqlite3_stmt *st;
	size_t cap = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	g->db = db;
	buf_init(&g->sql, 4 * 1024 * 1024);
	sql(g, "SELECT uid, modseq FROM msgs WHERE ");
	gen_key(g, key, 0);
	sql(g, " ORDER BY ");
	for (size_t i = 0; i < ncrit; i++) {
		const char *e = sort_expr(criteria[i].key);

		if (e == NULL) {
			g->status = STORE_E_INVALID;
			g->error = "unknown sort key";
			break;
		}
		sql(g, e);
		sql(g, criteria[i].reverse ? " DESC, " : " ASC, ");
	}
	sql(g, "uid");
	if (g->status != STORE_OK)
		return -1;
	if (sqlite3_prepare_v2(db, g->sql.data, -1, &st, NULL) != SQLITE_OK)
		return sqlite3_errcode(db);
	for (size_t i = 0; i < g->nbinds; i++) {
		if (g->binds[i].is_text)
			sqlite3_bind_text(st, (int)i + 1, g->binds[i].text, -1, SQLITE_STATIC);
		else
			sqlite3_bind_int64(st, (int)i + 1, g->binds[i].i);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t ms = (uint64_t)sqlite3_column_int64(st, 1);

		if (res->count == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			res->uids = xreallocarray(res->uids, cap, sizeof(*res->uids));
		}
		res->uids[res->count++] = (uint32_t)sqlite3_column_int64(st, 0);
		if (ms > res->hms)
			res->hms = ms;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(res->uids);
		res->uids = NULL;
		res->count = 0;
		return rc;
	}
	return SQLITE_OK;
}

/* The last resort when deliveries keep adding pending messages between a
 * catch-up and the query: both under the folder lock, on the write
 * connection. */
static enum store_status run_locked(struct store_folder *f, const struct store_search_key *key,
				    const struct store_sort *criteria, size_t ncrit, struct result *res,
				    const char **error_r)
{
	struct gen g = { 0 };
	enum store_status ret = folder_lock(f, error_r);
	int rc;

	if (ret != STORE_OK)
		return ret;
	ret = folder_index_locked(f, error_r);
	if (ret != STORE_OK) {
		folder_unlock(f);
		return ret;
	}
	rc = query(f->db, &g, key, criteria, ncrit, res);
	if (rc < 0) {
		*error_r = g.error;
		ret = g.status;
	} else if ((rc & 0xff) == SQLITE_ERROR) {
		/* A malformed FTS query is the client's, not corruption. */
		*error_r = store_errf("search failed: %s", sqlite3_errmsg(f->db));
		ret = STORE_E_INVALID;
	} else if (rc != SQLITE_OK) {
		ret = folder_db_error(f, rc, "search", error_r);
	}
	folder_unlock(f);
	gen_free(&g);
	return ret;
}

/* SEARCH and SORT read through the folder's read connection, beside
 * writers (store_read.c).  A key that reads derived data first has the
 * folder's pending messages indexed (write side, store_indexer.c); when a
 * delivery slips in between, the catch-up runs again, and after a few
 * rounds both run under the folder lock.  So a search sees every message
 * delivered before it started. */
static enum store_status run(struct store_folder *f, const struct store_search_key *key,
			     const struct store_sort *criteria, size_t ncrit, uint32_t **uids_r,
			     size_t *count_r, uint64_t *hms_r, const char **error_r)
{
	bool needs = key_needs_index(key, 0) || sort_needs_index(criteria, ncrit);
	struct result res = { 0 };
	enum store_status ret = STORE_OK;

	for (int attempt = 0;; attempt++) {
		struct gen g = { 0 };
		int rc;

		if (needs && attempt == 3) {
			ret = run_locked(f, key, criteria, ncrit, &res, error_r);
			break;
		}
		if (needs && (ret = folder_index_all(f, error_r)) != STORE_OK)
			return ret;
		if ((ret = folder_rlock(f, error_r)) != STORE_OK)
			return ret;
		/* one snapshot for the pending check and the query */
		if ((rc = db_exec(f->rdb, "BEGIN")) != SQLITE_OK)
			return rdb_error(f, rc, "search", error_r);
		if (needs && any_pending(f->rdb)) {
			(void)db_exec(f->rdb, "COMMIT");
			folder_runlock(f);
			continue;
		}
		rc = query(f->rdb, &g, key, criteria, ncrit, &res);
		if (rc < 0) {
			(void)db_exec(f->rdb, "COMMIT");
			folder_runlock(f);
			*error_r = g.error;
			ret = g.status;
		} else if ((rc & 0xff) == SQLITE_ERROR) {
			*error_r = store_errf("search failed: %s", sqlite3_errmsg(f->rdb));
			(void)db_exec(f->rdb, "ROLLBACK");
			folder_runlock(f);
			ret = STORE_E_INVALID;
		} else if (rc != SQLITE_OK) {
			ret = rdb_error(f, rc, "search", error_r);
		} else {
			(void)db_exec(f->rdb, "COMMIT");
			folder_runlock(f);
		}
		gen_free(&g);
		break;
	}
	if (ret != STORE_OK)
		return ret;
	*uids_r = res.uids;
	*count_r = res.count;
	if (hms_r != NULL)
		*hms_r = res.hms;
	return STORE_OK;
}

enum store_status store_search(struct store_folder *f, const struct store_search_key *key,
			       uint32_t **uids_r, size_t *count_r, uint64_t *highestmodseq_r,
			       const char **error_r)
{
	return run(f, key, NULL, 0, uids_r, count_r, highestmodseq_r, error_r);
}

enum store_status store_sort(struct store_folder *f, const struct store_search_key *key,
			     const struct store_sort *criteria, size_t count, uint32_t **uids_r,
			     size_t *count_r, const char **error_r)
{
	return run(f, key, criteria, count, uids_r, count_r, NULL, error_r);
}
