/*
 * SEARCH (RFC 9051 6.4.4, ESEARCH RFC 4731, SEARCHRES RFC 5182, MODSEQ
 * RFC 7162), SORT and THREAD (RFC 5256), with their UID forms.
 *
 * The search program is parsed into the store's search key tree
 * (store.h); the store evaluates it with its indexes (full text through
 * SQLite FTS5).  Parsing recurses once per nesting level ("(", OR, NOT)
 * and stops at STORE_SEARCH_MAX_DEPTH levels and STORE_SEARCH_MAX_KEYS
 * keys, so 10 000 nested parentheses or ORs cost a bounded stack
 * (HOSTILE-INPUT row 19; the parser's own list depth limit is hit first
 * for parentheses).
 */
#include "imap/imap.h"
#include "imap/imap_private.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "mime/mime.h"

/* ---- key construction ---- */

struct key_arena {
	void **ptrs;
	size_t n, cap;
	size_t keys;
	const char *error;
	bool badcharset;
};

static void *arena_alloc(struct key_arena *a, size_t size)
{
	void *p = xcalloc(1, size);

	if (a->n == a->cap) {
		a->cap = a->cap == 0 ? 32 : a->cap * 2;
		a->ptrs = xreallocarray(a->ptrs, a->cap, sizeof(*a->ptrs));
	}
	a->ptrs[a->n++] = p;
	return p;
}

static char *arena_strdup(struct key_arena *a, const char *s, size_t len)
{
	char *p = arena_alloc(a, len + 1);

	memcpy(p, s, len);
	return p;
}

static void arena_free(struct key_arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->ptrs[i]);
	free(a->ptrs);
	memset(a, 0, sizeof(*a));
}

struct search_ctx {
	struct imap_session *s;
	struct imap_args *args;
	struct key_arena *arena;
	bool uses_modseq;
};

static int parse_key(struct search_ctx *c, const struct imap_arg *a, struct imap_args *rest,
		     unsigned depth, struct store_search_key *key);

static int fail(struct search_ctx *c, const char *error)
{
	if (c->arena->error == NULL)
		c->arena->error = error;
	return -1;
}

/* The keys of it (up to its end) as an AND. */
static int parse_list(struct search_ctx *c, struct imap_args *it, unsigned depth,
		      struct store_search_key *key)
{
	struct store_search_key *kids = NULL;
	size_t n = 0, cap = 0;
	const struct imap_arg *a;

	if (depth > STORE_SEARCH_MAX_DEPTH)
		return fail(c, "Search program nested too deep");
	while ((a = imap_args_next(it)) != NULL) {
		if (n == cap) {
			struct store_search_key *bigger;

			cap = cap == 0 ? 4 : cap * 2;
			bigger = arena_alloc(c->arena, cap * sizeof(*bigger));
			if (n > 0)
				memcpy(bigger, kids, n * sizeof(*kids));
			kids = bigger;
		}
		if (parse_key(c, a, it, depth, &kids[n]) < 0)
			return -1;
		n++;
	}
	if (n == 0)
		return fail(c, "Empty search program");
	if (n == 1) {
		*key = kids[0];
		return 0;
	}
	memset(key, 0, sizeof(*key));
	key->type = STORE_SK_AND;
	key->children = kids;
	key->child_count = n;
	return 0;
}

static const char *string_arg(struct search_ctx *c, struct imap_args *rest, size_t *len_r)
{
	const struct imap_arg *a = imap_args_next(rest);
	const char *t = imap_arg_astring(&c->s->parser, a, len_r);

	if (t == NULL) {
		fail(c, "Search key needs a string argument");
		return NULL;
	}
	return arena_strdup(c->arena, t, *len_r);
}

static int date_arg(struct search_ctx *c, struct imap_args *rest, int64_t *t_r)
{
	const struct imap_arg *a = imap_args_next(rest);
	const char *t;
	size_t len;

	t = imap_arg_astring(&c->s->parser, a, &len);
	if (t == NULL || imap_parse_date(t, len, t_r) < 0)
		return fail(c, "Invalid date in search key");
	return 0;
}

static int number_arg(struct search_ctx *c, struct imap_args *rest, uint64_t *n_r)
{
	const struct imap_arg *a = imap_args_next(rest);

	if (a == NULL || a->type != IMAP_ARG_ATOM ||
	    str_to_u64(imap_arg_text(&c->s->parser, a), n_r) < 0)
		return fail(c, "Invalid number in search key");
	return 0;
}

static void set_uids(struct search_ctx *c, struct store_search_key *key, const struct imap_seqset *set)
{
	struct store_range *r = arena_alloc(c->arena, (set->count + 1) * sizeof(*r));

	for (size_t i = 0; i < set->count; i++) {
		r[i].lo = set->ranges[i].lo;
		r[i].hi = set->ranges[i].hi;
	}
	key->type = STORE_SK_UID;
	key->uids.ranges = r;
	key->uids.count = set->count;
}

static void key_nothing(struct search_ctx *c, struct store_search_key *key)
{
	struct store_search_key *all = arena_alloc(c->arena, sizeof(*all));

	all->type = STORE_SK_ALL;
	memset(key, 0, sizeof(*key));
	key->type = STORE_SK_NOT;
	key->children = all;
	key->child_count = 1;
}

static void key_recent(struct search_ctx *c, struct store_search_key *key)
{
	const struct imap_selected *sel = c->s->sel;
	struct store_range *r;

	if (sel->recent_first > sel->recent_last) {
		key_nothing(c, key);
		return;
	}
	r = arena_alloc(c->arena, sizeof(*r));
	r->lo = sel->recent_first;
	r->hi = sel->recent_last;
	key->type = STORE_SK_UID;
	key->uids.ranges = r;
	key->uids.count = 1;
}

static void key_not(struct search_ctx *c, struct store_search_key *key)
{
	struct store_search_key *child = arena_alloc(c->arena, sizeof(*child));

	*child = *key;
	memset(key, 0, sizeof(*key));
	key->type = STORE_SK_NOT;
	key->children = child;
	key->child_count = 1;
}

static int parse_key(struct search_ctx *c, const struct imap_arg *a, struct imap_args *rest,
		     unsigned depth, struct store_search_key *key)
{
	static const struct {
		const char *name;
		uint32_t flags, not_flags;
	} flag_keys[] = {
		{ "ANSWERED", STORE_F_ANSWERED, 0 }, { "DELETED", STORE_F_DELETED, 0 },
		{ "DRAFT", STORE_F_DRAFT, 0 }, { "FLAGGED", STORE_F_FLAGGED, 0 },
		{ "SEEN", STORE_F_SEEN, 0 }, { "UNANSWERED", 0, STORE_F_ANSWERED },
		{ "UNDELETED", 0, STORE_F_DELETED }, { "UNDRAFT", 0, STORE_F_DRAFT },
		{ "UNFLAGGED", 0, STORE_F_FLAGGED }, { "UNSEEN", 0, STORE_F_SEEN },
	};
	static const struct {
		const char *name;
		const char *field;
	} header_keys[] = {
		{ "FROM", "From" }, { "TO", "To" }, { "CC", "Cc" }, { "BCC", "Bcc" },
		{ "SUBJECT", "Subject" },
	};
	struct imap_session *s = c->s;
	const char *t;
	size_t len;

	memset(key, 0, sizeof(*key));
	if (++c->arena->keys > STORE_SEARCH_MAX_KEYS)
		return fail(c, "Too many search keys");
	if (depth > STORE_SEARCH_MAX_DEPTH)
		return fail(c, "Search program nested too deep");
	if (a->type == IMAP_ARG_LIST) {
		struct imap_args it;

		imap_args_list(&s->parser, a, &it);
		return parse_list(c, &it, depth + 1, key);
	}
	if (a->type != IMAP_ARG_ATOM)
		return fail(c, "Invalid search key");
	t = imap_arg_text(&s->parser, a);
	for (size_t i = 0; i < sizeof(flag_keys) / sizeof(flag_keys[0]); i++) {
		if (strcasecmp(t, flag_keys[i].name) == 0) {
			key->type = STORE_SK_FLAGS;
			key->flags = flag_keys[i].flags;
			key->not_flags = flag_keys[i].not_flags;
			return 0;
		}
	}
	for (size_t i = 0; i < sizeof(header_keys) / sizeof(header_keys[0]); i++) {
		if (strcasecmp(t, header_keys[i].name) == 0) {
			key->type = STORE_SK_HEADER;
			key->field = header_keys[i].field;
			key->text = string_arg(c, rest, &len);
			return key->text == NULL ? -1 : 0;
		}
	}
	if (strcasecmp(t, "ALL") == 0) {
		key->type = STORE_SK_ALL;
	} else if (strcasecmp(t, "HEADER") == 0) {
		const char *field = string_arg(c, rest, &len);

		if (field == NULL || len == 0 || strchr(field, ':') != NULL)
			return fail(c, "Invalid header field name");
		key->type = STORE_SK_HEADER;
		key->field = field;
		key->text = string_arg(c, rest, &len);
		if (key->text == NULL)
			return -1;
	} else if (strcasecmp(t, "BODY") == 0 || strcasecmp(t, "TEXT") == 0) {
		key->type = strcasecmp(t, "BODY") == 0 ? STORE_SK_BODY : STORE_SK_TEXT;
		key->text = string_arg(c, rest, &len);
		if (key->text == NULL)
			return -1;
	} else if (strcasecmp(t, "KEYWORD") == 0 || strcasecmp(t, "UNKEYWORD") == 0) {
		key->type = STORE_SK_KEYWORD;
		key->text = string_arg(c, rest, &len);
		if (key->text == NULL)
			return -1;
		if (strcasecmp(t, "UNKEYWORD") == 0)
			key_not(c, key);
	} else if (strcasecmp(t, "BEFORE") == 0 || strcasecmp(t, "ON") == 0 ||
		   strcasecmp(t, "SINCE") == 0 || strcasecmp(t, "SENTBEFORE") == 0 ||
		   strcasecmp(t, "SENTON") == 0 || strcasecmp(t, "SENTSINCE") == 0) {
		int64_t day;
		bool sent = strncasecmp(t, "SENT", 4) == 0;
		const char *what = sent ? t + 4 : t;

		if (date_arg(c, rest, &day) < 0)
			return -1;
		key->type = sent ? STORE_SK_SENTDATE : STORE_SK_INTERNALDATE;
		if (strcasecmp(what, "BEFORE") == 0) {
			key->lo = INT64_MIN;
			key->hi = day;
		} else if (strcasecmp(what, "ON") == 0) {
			key->lo = day;
			key->hi = day + 86400;
		} else {
			key->lo = day;
			key->hi = INT64_MAX;
		}
	} else if (strcasecmp(t, "LARGER") == 0 || strcasecmp(t, "SMALLER") == 0) {
		uint64_t n;

		if (number_arg(c, rest, &n) < 0 || n > INT64_MAX - 1)
			return fail(c, "Invalid size in search key");
		key->type = STORE_SK_SIZE;
		if (strcasecmp(t, "LARGER") == 0) {
			key->lo = (int64_t)n + 1;
			key->hi = INT64_MAX;
		} else {
			key->lo = 0;
			key->hi = (int64_t)n;
		}
	} else if (strcasecmp(t, "NOT") == 0) {
		const struct imap_arg *n = imap_args_next(rest);

		if (n == NULL)
			return fail(c, "NOT needs a search key");
		if (parse_key(c, n, rest, depth + 1, key) < 0)
			return -1;
		key_not(c, key);
	} else if (strcasecmp(t, "OR") == 0) {
		struct store_search_key *kids = arena_alloc(c->arena, 2 * sizeof(*kids));
		const struct imap_arg *x = imap_args_next(rest);

		if (x == NULL || parse_key(c, x, rest, depth + 1, &kids[0]) < 0)
			return fail(c, "OR needs two search keys");
		x = imap_args_next(rest);
		if (x == NULL || parse_key(c, x, rest, depth + 1, &kids[1]) < 0)
			return fail(c, "OR needs two search keys");
		key->type = STORE_SK_OR;
		key->children = kids;
		key->child_count = 2;
	} else if (strcasecmp(t, "RECENT") == 0) {
		key_recent(c, key);
	} else if (strcasecmp(t, "OLD") == 0) {
		key_recent(c, key);
		key_not(c, key);
	} else if (strcasecmp(t, "NEW") == 0) {
		struct store_search_key *kids = arena_alloc(c->arena, 2 * sizeof(*kids));

		key_recent(c, &kids[0]);
		kids[1].type = STORE_SK_FLAGS;
		kids[1].not_flags = STORE_F_SEEN;
		key->type = STORE_SK_AND;
		key->children = kids;
		key->child_count = 2;
	} else if (strcasecmp(t, "UID") == 0) {
		struct imap_seqset set;
		const char *error;

		if (imap_resolve_set(s, imap_args_next(rest), true, &set, &error) < 0)
			return fail(c, error);
		set_uids(c, key, &set);
		imap_seqset_free(&set);
	} else if (strcasecmp(t, "MODSEQ") == 0) {
		/* RFC 7162 3.1.5: MODSEQ [entry-name entry-type] n */
		const struct imap_arg *x = imap_args_peek(rest);
		uint64_t n;

		if (x != NULL && x->type == IMAP_ARG_QUOTED) {
			imap_args_next(rest);
			x = imap_args_next(rest);
			if (x == NULL || x->type != IMAP_ARG_ATOM)
				return fail(c, "Invalid MODSEQ search key");
		}
		if (number_arg(c, rest, &n) < 0 || n > INT64_MAX)
			return -1;
		key->type = STORE_SK_MODSEQ;
		key->lo = (int64_t)n;
		c->uses_modseq = true;
		s->condstore = true;
	} else {
		/* a sequence set (or "$") */
		struct imap_seqset set;
		const char *error;
		bool all = false;

		if (imap_seqset_parse(t, a->len, false, &set) == 0) {
			/* "1:*" and the like: every message, without a UID
			 * list as long as the folder in the store's query */
			uint32_t count = s->sel->map->count;

			imap_seqset_normalize(&set, count);
			all = count > 0 && set.count == 1 && set.ranges[0].lo == 1 &&
			      set.ranges[0].hi == count;
			imap_seqset_free(&set);
		}
		if (all) {
			key->type = STORE_SK_ALL;
			return 0;
		}
		if (imap_resolve_set(s, a, false, &set, &error) < 0)
			return fail(c, "Unknown search key");
		set_uids(c, key, &set);
		imap_seqset_free(&set);
	}
	return 0;
}

/* ---- SEARCH ---- */

#define RET_MIN   0x01
#define RET_MAX   0x02
#define RET_ALL   0x04
#define RET_COUNT 0x08
#define RET_SAVE  0x10

struct search_data {
	struct key_arena arena;
	struct store_search_key key;
	unsigned ret;
	bool esearch;
	bool uses_modseq;
	enum { SEARCH, SORT, THREAD } kind;
	struct store_sort *criteria;
	size_t ncriteria;
	bool thread_refs;
	bool uid_form;            /* THREAD: show UIDs */
	uint32_t *uids;
	size_t count;
	uint64_t highestmodseq;
	char *thread;             /* THREAD: the formatted result */
};

static void search_cleanup(struct imap_job *job)
{
	struct search_data *d = job->data;

	arena_free(&d->arena);
	free(d->criteria);
	free(d->uids);
	free(d->thread);
	free(d);
}

static void thread_run(struct imap_job *job, struct search_data *d);

static void search_run(struct imap_job *job)
{
	struct search_data *d = job->data;
	const char *error;
	enum store_status st;

	if (d->kind == SORT)
		st = store_sort(job->mbox->folder, &d->key, d->criteria, d->ncriteria, &d->uids, &d->count,
				&error);
	else
		st = store_search(job->mbox->folder, &d->key, &d->uids, &d->count, &d->highestmodseq,
				  &error);
	if (st != STORE_OK) {
		imap_job_fail(job, st, error);
		return;
	}
	if (d->kind == THREAD)
		thread_run(job, d);
}

/* "1,3:5" of sorted numbers */
static void append_set(struct buf *out, const uint32_t *v, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		if (buf_printf(out, "%s%u", i > 0 ? "," : "", v[i]) < 0 ||
		    (j > i && buf_printf(out, ":%u", v[j]) < 0))
			panic("imap search: buffer");
		i = j + 1;
	}
}

static void search_done(struct imap_session *s, struct imap_job *job)
{
	struct search_data *d = job->data;
	struct imap_seqmap *m = s->sel->map;
	struct buf out;
	uint32_t *nums;
	size_t n = 0;
	const char *what = d->kind == SORT ? "SORT" : d->kind == THREAD ? "THREAD" : "SEARCH";

	if (job->status != STORE_OK) {
		imap_no_store(s, job->status, job->error, what);
		return;
	}
	buf_init(&out, SIZE_MAX / 4);
	if (d->kind == THREAD) {
		if (buf_printf(&out, "* THREAD %s\r\n", d->thread != NULL ? d->thread : "") < 0)
			panic("imap search: buffer");
		imap_write(s, out.data, out.len);
		buf_deinit(&out);
		imap_ok(s, "%sTHREAD completed", s->cmd_uid ? "UID " : "");
		return;
	}
	/* only what the client knows of; sequence numbers for SEARCH */
	nums = xmallocarray(d->count + 1, sizeof(*nums));
	for (size_t i = 0; i < d->count; i++) {
		uint32_t seq = imap_seqmap_find(m, d->uids[i]);

		if (seq == 0)
			continue;
		nums[n++] = s->cmd_uid ? d->uids[i] : seq;
	}
	if ((d->ret & RET_SAVE) != 0) {
		/* RFC 5182: "$" is the UIDs, whatever the command's form */
		struct imap_selected *sel = s->sel;

		imap_seqset_free(&sel->searchres);
		sel->searchres.ranges = xmallocarray(d->count + 1, sizeof(*sel->searchres.ranges));
		sel->searchres.count = 0;
		for (size_t i = 0; i < d->count; i++) {
			if (imap_seqmap_find(m, d->uids[i]) == 0)
				continue;
			sel->searchres.ranges[sel->searchres.count].lo = d->uids[i];
			sel->searchres.ranges[sel->searchres.count].hi = d->uids[i];
			sel->searchres.count++;
		}
		imap_seqset_normalize(&sel->searchres, 0);
		sel->has_searchres = true;
	}
	if (d->esearch && d->ret != RET_SAVE) {
		unsigned ret = d->ret == 0 ? RET_ALL : d->ret;
		uint32_t *sorted = nums;

		if (buf_printf(&out, "* ESEARCH (TAG \"%s\")%s", s->tag, s->cmd_uid ? " UID" : "") < 0)
			panic("imap search: buffer");
		if (n > 0) {
			if ((ret & RET_MIN) != 0 && buf_printf(&out, " MIN %u", sorted[0]) < 0)
				panic("imap search: buffer");
			if ((ret & RET_MAX) != 0 && buf_printf(&out, " MAX %u", sorted[n - 1]) < 0)
				panic("imap search: buffer");
			if ((ret & RET_ALL) != 0) {
				if (buf_append_str(&out, " ALL ") < 0)
					panic("imap search: buffer");
				append_set(&out, sorted, n);
			}
		}
		if ((ret & RET_COUNT) != 0 && buf_printf(&out, " COUNT %zu", n) < 0)
			panic("imap search: buffer");
		if (d->uses_modseq && n > 0 &&
		    buf_printf(&out, " MODSEQ %llu", (unsigned long long)d->highestmodseq) < 0)
			panic("imap search: buffer");
		if (buf_append_str(&out, "\r\n") < 0)
			panic("imap search: buffer");
	} else if (!d->esearch) {
		if (buf_append_str(&out, d->kind == SORT ? "* SORT" : "* SEARCH") < 0)
			panic("imap search: buffer");
		for (size_t i = 0; i < n; i++) {
			if (buf_printf(&out, " %u", nums[i]) < 0)
				panic("imap search: buffer");
		}
		if (d->uses_modseq && n > 0 &&
		    buf_printf(&out, " (MODSEQ %llu)", (unsigned long long)d->highestmodseq) < 0)
			panic("imap search: buffer");
		if (buf_append_str(&out, "\r\n") < 0)
			panic("imap search: buffer");
	}
	free(nums);
	imap_write(s, out.data != NULL ? out.data : "", out.len);
	buf_deinit(&out);
	imap_ok(s, "%s%s completed", s->cmd_uid ? "UID " : "", what);
}

/* [CHARSET x]: only UTF-8 and US-ASCII (and their aliases) */
static int charset(struct imap_session *s, struct imap_args *args, bool required)
{
	const struct imap_arg *a = imap_args_peek(args);
	const char *cs;
	size_t len;

	if (!required) {
		if (!imap_arg_atom_is(&s->parser, a, "CHARSET"))
			return 0;
		imap_args_next(args);
		a = imap_args_peek(args);
	}
	cs = imap_arg_astring(&s->parser, a, &len);
	if (cs == NULL)
		return -1;
	imap_args_next(args);
	if (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0 &&
	    strcasecmp(cs, "UTF8") != 0)
		return -2;
	return 0;
}

static struct search_data *search_prepare(struct imap_session *s, struct imap_args *args,
					  bool charset_required)
{
	struct search_data *d = xcalloc(1, sizeof(*d));
	struct search_ctx c = { s, args, &d->arena, false };
	int cs;

	cs = charset(s, args, charset_required);
	if (cs == -2) {
		free(d);
		imap_no(s, "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
		return NULL;
	}
	if (cs < 0 || imap_args_left(args) == 0) {
		free(d);
		imap_bad(s, "Invalid search program");
		return NULL;
	}
	if (parse_list(&c, args, 1, &d->key) < 0) {
		const char *error = d->arena.error != NULL ? d->arena.error : "Invalid search program";

		imap_bad(s, "%s", error);
		arena_free(&d->arena);
		free(d);
		return NULL;
	}
	d->uses_modseq = c.uses_modseq;
	return d;
}

void imap_cmd_search(struct imap_session *s, struct imap_args *args)
{
	const struct imap_arg *a = imap_args_peek(args);
	unsigned ret = 0;
	bool esearch = false;
	struct search_data *d;
	struct imap_job *job;

	if (imap_arg_atom_is(&s->parser, a, "RETURN")) {
		/* RFC 4731 ESEARCH */
		struct imap_args it;
		const struct imap_arg *o, *opts;

		imap_args_next(args);
		opts = imap_args_next(args);
		if (opts == NULL || opts->type != IMAP_ARG_LIST) {
			imap_bad(s, "Invalid RETURN options");
			return;
		}
		imap_args_list(&s->parser, opts, &it);
		while ((o = imap_args_next(&it)) != NULL) {
			if (imap_arg_atom_is(&s->parser, o, "MIN"))
				ret |= RET_MIN;
			else if (imap_arg_atom_is(&s->parser, o, "MAX"))
				ret |= RET_MAX;
			else if (imap_arg_atom_is(&s->parser, o, "ALL"))
				ret |= RET_ALL;
			else if (imap_arg_atom_is(&s->parser, o, "COUNT"))
				ret |= RET_COUNT;
			else if (imap_arg_atom_is(&s->parser, o, "SAVE"))
				ret |= RET_SAVE;
			else {
				imap_bad(s, "Unknown RETURN option");
				return;
			}
		}
		esearch = true;
	}
	if (s->rev2)
		esearch = true;  /* RFC 9051: SEARCH answers with ESEARCH */
	d = search_prepare(s, args, false);
	if (d == NULL)
		return;
	d->kind = SEARCH;
	d->ret = ret;
	d->esearch = esearch;
	job = imap_job_new(s, search_run, search_done);
	job->cleanup = search_cleanup;
	job->data = d;
	imap_job_submit(s, job);
}

/* ---- SORT ---- */

void imap_cmd_sort(struct imap_session *s, struct imap_args *args)
{
	static const struct {
		const char *name;
		enum store_sort_key key;
	} keys[] = {
		{ "ARRIVAL", STORE_SORT_ARRIVAL }, { "CC", STORE_SORT_CC }, { "DATE", STORE_SORT_DATE },
		{ "FROM", STORE_SORT_FROM }, { "SIZE", STORE_SORT_SIZE },
		{ "SUBJECT", STORE_SORT_SUBJECT }, { "TO", STORE_SORT_TO },
		{ "DISPLAYFROM", STORE_SORT_DISPLAYFROM }, { "DISPLAYTO", STORE_SORT_DISPLAYTO },
	};
	const struct imap_arg *crit = imap_args_next(args);
	struct store_sort *criteria = NULL;
	size_t n = 0;
	bool reverse = false;
	struct search_data *d;
	struct imap_job *job;
	struct imap_args it;
	const struct imap_arg *a;

	if (crit == NULL || crit->type != IMAP_ARG_LIST || crit->count == 0) {
		imap_bad(s, "Usage: SORT (criteria) charset search-keys");
		return;
	}
	criteria = xmallocarray(crit->count, sizeof(*criteria));
	imap_args_list(&s->parser, crit, &it);
	while ((a = imap_args_next(&it)) != NULL) {
		bool found = false;

		if (imap_arg_atom_is(&s->parser, a, "REVERSE")) {
			if (reverse)
				goto bad;
			reverse = true;
			continue;
		}
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			if (imap_arg_atom_is(&s->parser, a, keys[i].name)) {
				criteria[n].key = keys[i].key;
				criteria[n].reverse = reverse;
				n++;
				found = true;
				break;
			}
		}
		if (!found)
			goto bad;
		reverse = false;
	}
	if (reverse || n == 0)
		goto bad;
	d = search_prepare(s, args, true);
	if (d == NULL) {
		free(criteria);
		return;
	}
	d->kind = SORT;
	d->criteria = criteria;
	d->ncriteria = n;
	job = imap_job_new(s, search_run, search_done);
	job->cleanup = search_cleanup;
	job->data = d;
	imap_job_submit(s, job);
	return;
bad:
	free(criteria);
	imap_bad(s, "Invalid SORT criteria");
}

/* ---- THREAD (RFC 5256) ---- */

/* One container of the threading algorithm: a message, or a placeholder
 * for a message that is referenced but not in the result. */
struct tnode {
	uint32_t num;             /* shown: UID or sequence number; 0: placeholder */
	int64_t date;
	char *msgid;              /* NULL: none */
	char *base_subject;
	long parent, first_child, last_child, next_sibling;
	long hnext;               /* message-id hash chain */
};

struct thread_builder {
	struct tnode *n;
	size_t count, cap;
	long *hash;
	size_t hsize;
};

static unsigned long hash_str(const char *s)
{
	unsigned long h = 5381;

	for (; *s != '\0'; s++)
		h = h * 33 + (unsigned char)*s;
	return h;
}

static long tb_new(struct thread_builder *b)
{
	if (b->count == b->cap) {
		b->cap = b->cap == 0 ? 64 : b->cap * 2;
		b->n = xreallocarray(b->n, b->cap, sizeof(*b->n));
	}
	memset(&b->n[b->count], 0, sizeof(b->n[b->count]));
	b->n[b->count].parent = b->n[b->count].first_child = b->n[b->count].last_child = -1;
	b->n[b->count].next_sibling = b->n[b->count].hnext = -1;
	return (long)b->count++;
}

/* The container of a message id, created when new. */
static long tb_find(struct thread_builder *b, const char *id, bool *created_r)
{
	unsigned long h = hash_str(id) & (b->hsize - 1);
	long i;

	for (i = b->hash[h]; i >= 0; i = b->n[i].hnext) {
		if (strcmp(b->n[i].msgid, id) == 0) {
			*created_r = false;
			return i;
		}
	}
	i = tb_new(b);
	b->n[i].msgid = xstrdup(id);
	b->n[i].hnext = b->hash[h];
	b->hash[h] = i;
	*created_r = true;
	return i;
}

static bool tb_is_ancestor(const struct thread_builder *b, long anc, long node)
{
	for (long p = node; p >= 0; p = b->n[p].parent) {
		if (p == anc)
			return true;
	}
	return false;
}

static void tb_unlink(struct thread_builder *b, long c)
{
	long p = b->n[c].parent, prev = -1;

	if (p < 0)
		return;
	for (long k = b->n[p].first_child; k >= 0; prev = k, k = b->n[k].next_sibling) {
		if (k != c)
			continue;
		if (prev >= 0)
			b->n[prev].next_sibling = b->n[c].next_sibling;
		else
			b->n[p].first_child = b->n[c].next_sibling;
		if (b->n[p].last_child == c)
			b->n[p].last_child = prev;
		break;
	}
	b->n[c].parent = -1;
	b->n[c].next_sibling = -1;
}

static void tb_link(struct thread_builder *b, long c, long p)
{
	if (c == p || tb_is_ancestor(b, c, p))
		return;  /* would make a loop */
	tb_unlink(b, c);
	b->n[c].parent = p;
	if (b->n[p].last_child >= 0)
		b->n[b->n[p].last_child].next_sibling = c;
	else
		b->n[p].first_child = c;
	b->n[p].last_child = c;
}

/* The next "<id>" of a References/In-Reply-To value; newly allocated. */
static char *next_id(const char *s, size_t *pos)
{
	const char *lt, *gt;

	if (s == NULL)
		return NULL;
	lt = strchr(s + *pos, '<');
	if (lt == NULL)
		return NULL;
	gt = strchr(lt, '>');
	if (gt == NULL)
		return NULL;
	*pos = (size_t)(gt - s) + 1;
	return xstrndup(lt, (size_t)(gt - lt) + 1);
}

/* RFC 5256 REFERENCES steps 1 (A-C): link by References (In-Reply-To
 * when there is none). */
static void tb_add_refs(struct thread_builder *b, long me, const char *refs, const char *irt)
{
	const char *src = refs != NULL && strchr(refs, '<') != NULL ? refs : irt;
	size_t pos = 0;
	long prev = -1;
	char *id;
	unsigned n = 0;

	while ((id = next_id(src, &pos)) != NULL && n++ < 100) {
		bool created;
		long c = tb_find(b, id, &created);

		free(id);
		if (prev >= 0 && b->n[c].parent < 0 && c != me)
			tb_link(b, c, prev);
		prev = c;
	}
	free(id);
	/* the last reference is the parent, whatever linked before */
	if (prev >= 0 && prev != me)
		tb_link(b, me, prev);
	else
		tb_unlink(b, me);
}

static int tb_cmp_date(const struct thread_builder *b, long x, long y)
{
	const struct tnode *a = &b->n[x], *c = &b->n[y];

	if (a->date != c->date)
		return a->date < c->date ? -1 : 1;
	return a->num < c->num ? -1 : a->num > c->num;
}

/* The date of a (sub)thread: its first real message's. */
static int64_t tb_date(const struct thread_builder *b, long i)
{
	while (b->n[i].num == 0 && b->n[i].first_child >= 0)
		i = b->n[i].first_child;
	return b->n[i].date;
}

static int cmp_roots(const void *x, const void *y, void *ctx)
{
	const struct thread_builder *b = ctx;
	long i = *(const long *)x, j = *(const long *)y;
	int64_t a = tb_date(b, i), c = tb_date(b, j);

	if (a != c)
		return a < c ? -1 : 1;
	return tb_cmp_date(b, i, j);
}

/* Sorts the children of every node by date (insertion into arrays). */
static void tb_sort_children(struct thread_builder *b)
{
	long *kids = NULL;
	size_t cap = 0;

	for (size_t p = 0; p < b->count; p++) {
		size_t k = 0;

		for (long c = b->n[p].first_child; c >= 0; c = b->n[c].next_sibling) {
			if (k == cap) {
				cap = cap == 0 ? 16 : cap * 2;
				kids = xreallocarray(kids, cap, sizeof(*kids));
			}
			kids[k++] = c;
		}
		if (k < 2)
			continue;
		qsort_r(kids, k, sizeof(*kids), cmp_roots, b);
		b->n[p].first_child = kids[0];
		for (size_t i = 0; i + 1 < k; i++)
			b->n[kids[i]].next_sibling = kids[i + 1];
		b->n[kids[k - 1]].next_sibling = -1;
		b->n[p].last_child = kids[k - 1];
	}
	free(kids);
}

/* RFC 5256 step 4: placeholders go; their children move up (a root
 * placeholder with several children stays, as "((a)(b))"). */
static void tb_prune(struct thread_builder *b)
{
	for (size_t i = 0; i < b->count; i++) {
		long p = b->n[i].parent;
		unsigned kids = 0;

		if (b->n[i].num != 0)
			continue;
		for (long c = b->n[i].first_child; c >= 0; c = b->n[c].next_sibling)
			kids++;
		if (p < 0 && kids > 1)
			continue;
		while (b->n[i].first_child >= 0) {
			long c = b->n[i].first_child;

			tb_unlink(b, c);
			if (p >= 0)
				tb_link(b, c, p);
		}
		tb_unlink(b, (long)i);
	}
}

static void tb_put(struct buf *out, const char *text)
{
	if (buf_append_str(out, text) < 0)
		panic("imap thread: buffer");
}

/*
 * Writes one thread without recursion (a chain of 10 000 replies must not
 * mean 10 000 stack frames).  RFC 5256 section 4: members of a chain are
 * written in a row ("(1 2 3)"), a message with several replies is
 * followed by one parenthesised group per reply ("(1 (2)(3 4))").
 */
struct wframe {
	long node;
	long next;                /* next child to open; -2: chain not walked yet */
};

static void tb_write(const struct thread_builder *b, long root, struct buf *out)
{
	struct wframe *st;
	size_t sp = 0, cap = 32;

	st = xmallocarray(cap, sizeof(*st));
	tb_put(out, "(");
	st[sp].node = root;
	st[sp].next = -2;
	sp++;
	while (sp > 0) {
		struct wframe *f = &st[sp - 1];

		if (f->next == -2) {
			long n = f->node;

			for (;;) {
				long first = b->n[n].first_child;

				if (b->n[n].num != 0) {
					char num[16];

					snprintf(num, sizeof(num), "%s%u",
						 out->data[out->len - 1] == '(' ? "" : " ", b->n[n].num);
					tb_put(out, num);
				}
				if (first < 0) {
					f->next = -1;
					break;
				}
				if (b->n[first].next_sibling < 0) {
					n = first;  /* a single reply continues the chain */
					continue;
				}
				f->next = first;
				break;
			}
		}
		if (f->next < 0) {
			sp--;
			tb_put(out, ")");
			continue;
		}
		{
			long c = f->next;

			f->next = b->n[c].next_sibling < 0 ? -1 : b->n[c].next_sibling;
			if (f->next < 0 && b->n[c].next_sibling < 0)
				f->next = -1;
			tb_put(out, out->data[out->len - 1] >= '0' && out->data[out->len - 1] <= '9' ?
			       " (" : "(");
			if (sp == cap) {
				cap *= 2;
				st = xreallocarray(st, cap, sizeof(*st));
			}
			st[sp].node = c;
			st[sp].next = -2;
			sp++;
		}
	}
	free(st);
}

static int cmp_subject(const void *x, const void *y, void *ctx)
{
	const struct thread_builder *b = ctx;
	long i = *(const long *)x, j = *(const long *)y;
	int r = strcmp(b->n[i].base_subject, b->n[j].base_subject);

	return r != 0 ? r : tb_cmp_date(b, i, j);
}

static void thread_run(struct imap_job *job, struct search_data *d)
{
	struct thread_builder b;
	struct store_range *r = xmallocarray(d->count + 1, sizeof(*r));
	struct store_uidset set = { r, d->count };
	uint32_t after = 0;
	long *roots;
	size_t nroots = 0, nreal;
	struct buf out;
	const char *error;

	memset(&b, 0, sizeof(b));
	b.hsize = 64;
	while (b.hsize < 4 * (d->count + 1))
		b.hsize *= 2;
	b.hash = xmallocarray(b.hsize, sizeof(*b.hash));
	for (size_t i = 0; i < b.hsize; i++)
		b.hash[i] = -1;
	for (size_t i = 0; i < d->count; i++)
		r[i].lo = r[i].hi = d->uids[i];
	/* the matching messages, with their threading headers */
	while (d->count > 0) {
		struct store_page *page;

		if (store_fetch(job->mbox->folder, &set, 0, STORE_FETCH_THREAD, after, IMAP_FETCH_PAGE,
				&page, &error) != STORE_OK)
			break;
		for (size_t i = 0; i < page->count; i++) {
			const struct store_msg *m = &page->msgs[i];
			uint32_t seq = imap_seqmap_find(job->map, m->uid);
			bool created = true;
			long me;

			if (seq == 0)
				continue;
			/* a message id seen before (a duplicate, or a
			 * placeholder made by an earlier reference) */
			if (m->message_id != NULL && strchr(m->message_id, '<') != NULL) {
				me = tb_find(&b, m->message_id, &created);
				if (!created && b.n[me].num != 0)
					me = tb_new(&b);  /* duplicate id: its own container */
			} else {
				me = tb_new(&b);
			}
			b.n[me].num = d->uid_form ? m->uid : seq;
			b.n[me].date = m->sent_date != 0 ? m->sent_date : m->internal_date;
			b.n[me].base_subject = mime_base_subject(m->subject != NULL ? m->subject : "");
			if (d->thread_refs)
				tb_add_refs(&b, me, m->references, m->in_reply_to);
		}
		after = page->last_uid;
		if (!page->more || page->count == 0) {
			store_page_free(&page);
			break;
		}
		store_page_free(&page);
	}
	free(r);
	nreal = b.count;
	if (!d->thread_refs) {
		/* ORDEREDSUBJECT: by base subject; in each, the first (by
		 * date) is the parent of all the others */
		long *order = xmallocarray(b.count + 1, sizeof(*order));

		for (size_t i = 0; i < b.count; i++)
			order[i] = (long)i;
		qsort_r(order, b.count, sizeof(*order), cmp_subject, &b);
		for (size_t i = 0; i < b.count;) {
			size_t j = i + 1;

			while (j < b.count && strcmp(b.n[order[j]].base_subject,
						     b.n[order[i]].base_subject) == 0) {
				tb_link(&b, order[j], order[i]);
				j++;
			}
			i = j;
		}
		free(order);
	} else {
		tb_prune(&b);
	}
	(void)nreal;
	tb_sort_children(&b);
	roots = xmallocarray(b.count + 1, sizeof(*roots));
	for (size_t i = 0; i < b.count; i++) {
		if (b.n[i].parent < 0 && (b.n[i].num != 0 || b.n[i].first_child >= 0))
			roots[nroots++] = (long)i;
	}
	qsort_r(roots, nroots, sizeof(*roots), cmp_roots, &b);
	buf_init(&out, SIZE_MAX / 4);
	if (buf_append(&out, "", 0) < 0)
		panic("imap thread: buffer");
	for (size_t i = 0; i < nroots; i++)
		tb_write(&b, roots[i], &out);
	d->thread = buf_steal(&out);
	buf_deinit(&out);
	for (size_t i = 0; i < b.count; i++) {
		free(b.n[i].msgid);
		free(b.n[i].base_subject);
	}
	free(b.n);
	free(b.hash);
	free(roots);
}

void imap_cmd_thread(struct imap_session *s, struct imap_args *args)
{
	const struct imap_arg *alg = imap_args_next(args);
	struct search_data *d;
	struct imap_job *job;
	bool refs;

	if (imap_arg_atom_is(&s->parser, alg, "ORDEREDSUBJECT")) {
		refs = false;
	} else if (imap_arg_atom_is(&s->parser, alg, "REFERENCES")) {
		refs = true;
	} else {
		imap_bad(s, "Usage: THREAD ORDEREDSUBJECT|REFERENCES charset search-keys");
		return;
	}
	d = search_prepare(s, args, true);
	if (d == NULL)
		return;
	d->kind = THREAD;
	d->thread_refs = refs;
	d->uid_form = s->cmd_uid;
	job = imap_job_new(s, search_run, search_done);
	job->cleanup = search_cleanup;
	job->data = d;
	imap_job_submit(s, job);
}
