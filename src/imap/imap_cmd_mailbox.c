/*
 * IMAP mailbox commands: LIST (with LIST-EXTENDED RFC 5258, SPECIAL-USE
 * RFC 6154, LIST-STATUS RFC 5819), LSUB, STATUS (STATUS=SIZE RFC 8438),
 * CREATE (CREATE-SPECIAL-USE), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
 * SELECT and EXAMINE (CONDSTORE and QRESYNC, RFC 7162), CLOSE, UNSELECT
 * (RFC 3691), EXPUNGE and UID EXPUNGE (UIDPLUS RFC 4315), APPEND (UIDPLUS,
 * APPENDLIMIT RFC 7889, BINARY literal8 RFC 3516, UTF8 RFC 6855), and the
 * QUOTA commands (RFC 9208).
 *
 * Every store call runs in a job on the worker pool (imap_private.h).
 */
#include "imap/imap.h"
#include "imap/imap_private.h"
#include "imap/imap_acl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "core/log.h"
#include "core/str.h"
#include "directory/directory.h"

/* ---- names ---- */

/* The store name of a mailbox argument, or NULL after answering BAD. */
static char *mailbox_arg(struct imap_session *s, const struct imap_arg *arg)
{
	const char *text;
	size_t len;
	struct buf name;

	text = imap_arg_astring(&s->parser, arg, &len);
	if (text == NULL) {
		imap_bad(s, "Invalid mailbox name");
		return NULL;
	}
	buf_init(&name, STORE_MAX_FOLDER_NAME * 4 + 16);
	if (len > STORE_MAX_FOLDER_NAME * 4 || imap_name_in(s, text, len, &name) < 0) {
		buf_deinit(&name);
		imap_bad(s, "Invalid mailbox name (not %s)", s->utf8 ? "UTF-8" : "modified UTF-7");
		return NULL;
	}
	if (name.len == 0) {
		buf_deinit(&name);
		imap_no(s, "[CANNOT] Empty mailbox name");
		return NULL;
	}
	return buf_steal(&name);
}

/* ---- STATUS items ---- */

#define ST_MESSAGES      0x001
#define ST_RECENT        0x002
#define ST_UIDNEXT       0x004
#define ST_UIDVALIDITY   0x008
#define ST_UNSEEN        0x010
#define ST_DELETED       0x020
#define ST_SIZE          0x040
#define ST_HIGHESTMODSEQ 0x080
#define ST_APPENDLIMIT   0x100

static const struct {
	const char *name;
	unsigned bit;
} status_items[] = {
	{ "MESSAGES", ST_MESSAGES }, { "RECENT", ST_RECENT }, { "UIDNEXT", ST_UIDNEXT },
	{ "UIDVALIDITY", ST_UIDVALIDITY }, { "UNSEEN", ST_UNSEEN }, { "DELETED", ST_DELETED },
	{ "SIZE", ST_SIZE }, { "HIGHESTMODSEQ", ST_HIGHESTMODSEQ }, { "APPENDLIMIT", ST_APPENDLIMIT },
};

static int parse_status_items(const struct imap_parser *p, const struct imap_arg *list,
			      unsigned *items_r)
{
	struct imap_args it;
	const struct imap_arg *a;

	*items_r = 0;
	if (list == NULL || list->type != IMAP_ARG_LIST || list->count == 0)
		return -1;
	imap_args_list(p, list, &it);
	while ((a = imap_args_next(&it)) != NULL) {
		bool found = false;

		for (size_t i = 0; i < sizeof(status_items) / sizeof(status_items[0]); i++) {
			if (imap_arg_atom_is(p, a, status_items[i].name)) {
				*items_r |= status_items[i].bit;
				found = true;
			}
		}
		if (!found)
			return -1;
	}
	return 0;
}

static void format_status(struct buf *out, unsigned items, const struct store_folder_status *st,
			  uint64_t appendlimit)
{
	bool first = true;
	int ret = buf_append_char(out, '(');

#define ITEM(bit, fmt, val) \
	if ((items & (bit)) != 0) { \
		ret |= buf_printf(out, "%s" fmt, first ? "" : " ", val); \
		first = false; \
	}
	ITEM(ST_MESSAGES, "MESSAGES %u", st->messages);
	ITEM(ST_RECENT, "RECENT %u", 0u);
	ITEM(ST_UIDNEXT, "UIDNEXT %u", st->uidnext);
	ITEM(ST_UIDVALIDITY, "UIDVALIDITY %u", st->uidvalidity);
	ITEM(ST_UNSEEN, "UNSEEN %u", st->unseen);
	ITEM(ST_DELETED, "DELETED %u", st->deleted);
	ITEM(ST_SIZE, "SIZE %llu", (unsigned long long)st->size);
	ITEM(ST_HIGHESTMODSEQ, "HIGHESTMODSEQ %llu", (unsigned long long)st->highestmodseq);
	ITEM(ST_APPENDLIMIT, "APPENDLIMIT %llu", (unsigned long long)appendlimit);
#undef ITEM
	ret |= buf_append_char(out, ')');
	if (ret != 0)
		panic("imap status: buffer");
}

/* Worker: "* STATUS name (...)" into out, or the failure in the job. */
static enum store_status status_one(struct imap_job *job, const char *name, unsigned items,
				    uint64_t appendlimit, struct buf *line, const char **error_r)
{
	struct store_folder *f;
	struct store_folder_status st;
	enum store_status ret;

	ret = imap_acl_open(job->user, name, STORE_ACL_R, &f, NULL, error_r);
	if (ret != STORE_OK)
		return ret;
	ret = store_folder_status(f, &st, error_r);
	store_folder_close(&f);
	if (ret != STORE_OK)
		return ret;
	if (buf_append_str(line, "* STATUS ") < 0)
		panic("imap status: buffer");
	{
		/* the job carries the session's UTF8 state */
		struct imap_session fake;

		memset(&fake, 0, sizeof(fake));
		fake.utf8 = job->utf8;
		if (imap_name_out(&fake, name, line) < 0)
			return STORE_E_INVALID;
	}
	if (buf_append_char(line, ' ') < 0)
		panic("imap status: buffer");
	format_status(line, items, &st, appendlimit);
	if (buf_append_str(line, "\r\n") < 0)
		panic("imap status: buffer");
	return STORE_OK;
}

/* ---- simple mailbox operations: CREATE DELETE RENAME (UN)SUBSCRIBE STATUS ---- */

enum mbox_op { OP_CREATE, OP_DELETE, OP_RENAME, OP_SUBSCRIBE, OP_UNSUBSCRIBE, OP_STATUS };

struct mbox_data {
	enum mbox_op op;
	char *name, *to;
	enum store_role role;
	unsigned items;
	uint64_t appendlimit;
};

static void mbox_cleanup(struct imap_job *job)
{
	struct mbox_data *d = job->data;

	free(d->name);
	free(d->to);
	free(d);
}

/* CREATE DELETE RENAME SUBSCRIBE with the rights they need (RFC 4314
 * section 4) on another user's or a public folder. */
static enum store_status mbox_acl_op(struct imap_job *job, struct mbox_data *d,
				     const char **error_r)
{
	struct imap_target t, to;
	enum store_status st;
	bool shared;

	st = imap_acl_resolve(job->user, d->name, &t, error_r);
	if (st != STORE_OK)
		return st;
	shared = t.ns != IMAP_NS_PERSONAL;
	switch (d->op) {
	case OP_CREATE:
		if (shared && (t.parent_rights & STORE_ACL_K) == 0) {
			*error_r = imap_acl_denied;
			st = STORE_E_NOPERM;
		} else {
			st = store_folder_create(t.owner, t.folder, d->role, error_r);
		}
		break;
	case OP_DELETE:
		st = shared ? imap_acl_need(&t, STORE_ACL_X, error_r) : STORE_OK;
		if (st == STORE_OK)
			st = store_folder_delete(t.owner, t.folder, error_r);
		break;
	case OP_RENAME:
		st = shared ? imap_acl_need(&t, STORE_ACL_X, error_r) : STORE_OK;
		if (st != STORE_OK)
			break;
		st = imap_acl_resolve(job->user, d->to, &to, error_r);
		if (st != STORE_OK)
			break;
		if (to.owner != t.owner) {
			*error_r = "cannot move a folder to another mailbox";
			st = STORE_E_NOPERM;
		} else if (to.ns != IMAP_NS_PERSONAL && (to.parent_rights & STORE_ACL_K) == 0) {
			*error_r = imap_acl_denied;
			st = STORE_E_NOPERM;
		} else {
			st = store_folder_rename(t.owner, t.folder, to.folder, error_r);
		}
		imap_target_free(&to);
		break;
	default:
		/* subscriptions are the user's own, whoever owns the folder */
		if (shared && d->op == OP_SUBSCRIBE)
			st = imap_acl_need(&t, STORE_ACL_L, error_r);
		if (st == STORE_OK)
			st = store_folder_subscribe(job->user->user, d->name, d->op == OP_SUBSCRIBE,
						    error_r);
		break;
	}
	imap_target_free(&t);
	return st;
}

static void mbox_run(struct imap_job *job)
{
	struct mbox_data *d = job->data;
	const char *error = NULL;
	enum store_status st = STORE_OK;

	switch (d->op) {
	case OP_CREATE:
	case OP_DELETE:
	case OP_RENAME:
	case OP_SUBSCRIBE:
	case OP_UNSUBSCRIBE:
		st = mbox_acl_op(job, d, &error);
		break;
	case OP_STATUS: {
		struct buf line;

		buf_init(&line, SIZE_MAX / 4);
		st = status_one(job, d->name, d->items, d->appendlimit, &line, &error);
		if (st == STORE_OK)
			evbuffer_add(job->out, line.data, line.len);
		buf_deinit(&line);
		break;
	}
	}
	if (st != STORE_OK)
		imap_job_fail(job, st, error);
}

static const char *const op_names[] = { "CREATE", "DELETE", "RENAME", "SUBSCRIBE",
					"UNSUBSCRIBE", "STATUS" };

static void mbox_done(struct imap_session *s, struct imap_job *job)
{
	struct mbox_data *d = job->data;

	evbuffer_add_buffer(bufferevent_get_output(s->conn->bev), job->out);
	if (job->status != STORE_OK) {
		if (d->op == OP_STATUS && job->status == STORE_E_NOTFOUND)
			imap_no(s, "[NONEXISTENT] Mailbox does not exist");
		else
			imap_no_store(s, job->status, job->error, op_names[d->op]);
		return;
	}
	if (d->op == OP_RENAME && s->sel != NULL && strcmp(s->sel->name, d->name) == 0) {
		free(s->sel->name);
		s->sel->name = xstrdup(d->to);
	}
	imap_ok(s, "%s completed", op_names[d->op]);
}

static void submit_mbox(struct imap_session *s, struct mbox_data *d)
{
	struct imap_job *job = imap_job_new(s, mbox_run, mbox_done);

	job->cleanup = mbox_cleanup;
	job->data = d;
	imap_job_submit(s, job);
}

void imap_cmd_create(struct imap_session *s, struct imap_args *args)
{
	const struct imap_arg *a = imap_args_next(args), *opt = imap_args_next(args);
	struct mbox_data *d;
	enum store_role role = STORE_ROLE_NONE;
	char *name;

	if (a == NULL || imap_args_left(args) != 0) {
		imap_bad(s, "Usage: CREATE mailbox [(USE (attributes))]");
		return;
	}
	if (opt != NULL) {
		/* RFC 6154 CREATE-SPECIAL-USE: (USE (\Sent)) */
		struct imap_args it, uit;
		const struct imap_arg *kw, *uses, *u;

		if (opt->type != IMAP_ARG_LIST) {
			imap_bad(s, "Invalid CREATE parameters");
			return;
		}
		imap_args_list(&s->parser, opt, &it);
		kw = imap_args_next(&it);
		uses = imap_args_next(&it);
		if (!imap_arg_atom_is(&s->parser, kw, "USE") || uses == NULL ||
		    uses->type != IMAP_ARG_LIST || imap_args_left(&it) != 0) {
			imap_bad(s, "Invalid CREATE parameters");
			return;
		}
		imap_args_list(&s->parser, uses, &uit);
		while ((u = imap_args_next(&uit)) != NULL) {
			enum store_role r = u->type == IMAP_ARG_ATOM ?
					    store_role_parse(imap_arg_text(&s->parser, u)) : STORE_ROLE_NONE;

			if (r == STORE_ROLE_NONE || r == STORE_ROLE_INBOX || role != STORE_ROLE_NONE) {
				imap_no(s, "[USEATTR] Unsupported special-use attribute");
				return;
			}
			role = r;
		}
	}
	name = mailbox_arg(s, a);
	if (name == NULL)
		return;
	if (strcmp(name, "INBOX") == 0) {
		free(name);
		imap_no(s, "[ALREADYEXISTS] INBOX always exists");
		return;
	}
	d = xcalloc(1, sizeof(*d));
	d->op = OP_CREATE;
	d->name = name;
	d->role = role;
	submit_mbox(s, d);
}

static void one_mailbox_op(struct imap_session *s, struct imap_args *args, enum mbox_op op)
{
	const struct imap_arg *a = imap_args_next(args);
	struct mbox_data *d;
	char *name;

	if (a == NULL || imap_args_left(args) != 0) {
		imap_bad(s, "Usage: %s mailbox", op_names[op]);
		return;
	}
	name = mailbox_arg(s, a);
	if (name == NULL)
		return;
	if (op == OP_DELETE && s->sel != NULL && strcmp(s->sel->name, name) == 0) {
		/* deleting the selected mailbox: this session leaves it first
		 * instead of getting a BYE from its own deletion */
		imap_unselect(s);
	}
	d = xcalloc(1, sizeof(*d));
	d->op = op;
	d->name = name;
	submit_mbox(s, d);
}

void imap_cmd_delete(struct imap_session *s, struct imap_args *args)
{
	one_mailbox_op(s, args, OP_DELETE);
}

void imap_cmd_subscribe(struct imap_session *s, struct imap_args *args)
{
	one_mailbox_op(s, args, OP_SUBSCRIBE);
}

void imap_cmd_unsubscribe(struct imap_session *s, struct imap_args *args)
{
	one_mailbox_op(s, args, OP_UNSUBSCRIBE);
}

void imap_cmd_rename(struct imap_session *s, struct imap_args *args)
{
	const struct imap_arg *a = imap_args_next(args), *b = imap_args_next(args);
	struct mbox_data *d;
	char *from, *to;

	if (a == NULL || b == NULL || imap_args_left(args) != 0) {
		imap_bad(s, "Usage: RENAME from to");
		return;
	}
	from = mailbox_arg(s, a);
	if (from == NULL)
		return;
	to = mailbox_arg(s, b);
	if (to == NULL) {
		free(from);
		return;
	}
	d = xcalloc(1, sizeof(*d));
	d->op = OP_RENAME;
	d->name = from;
	d->to = to;
	submit_mbox(s, d);
}

void imap_cmd_status(struct imap_session *s, struct imap_args *args)
{
	const struct imap_arg *a = imap_args_next(args), *list = imap_args_next(args);
	struct mbox_data *d;
	unsigned items;
	char *name;

	if (a == NULL || imap_args_left(args) != 0 ||
	    parse_status_items(&s->parser, list, &items) < 0) {
		imap_bad(s, "Usage: STATUS mailbox (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE "
			 "HIGHESTMODSEQ RECENT APPENDLIMIT)");
		return;
	}
	name = mailbox_arg(s, a);
	if (name == NULL)
		return;
	d = xcalloc(1, sizeof(*d));
	d->op = OP_STATUS;
	d->name = name;
	d->items = items;
	d->appendlimit = (uint64_t)s->conn->cfg->s.imap_append_limit;
	submit_mbox(s, d);
}

/* ---- LIST and LSUB ---- */

#define LS_SUBSCRIBED     0x01  /* selection */
#define LS_RECURSIVEMATCH 0x02
#define LS_SPECIALUSE     0x04
#define LR_SUBSCRIBED     0x10  /* return */
#define LR_CHILDREN       0x20
#define LR_SPECIALUSE     0x40
#define LR_STATUS         0x80

struct list_data {
	char **patterns;
	size_t npatterns;
	unsigned opts;
	unsigned status_items;
	uint64_t appendlimit;
	bool lsub;
	bool extended;
};

static void list_cleanup(struct imap_job *job)
{
	struct list_data *d = job->data;

	for (size_t i = 0; i < d->npatterns; i++)
		free(d->patterns[i]);
	free(d->patterns);
	free(d);
}

/* RFC 3501 6.3.8: "*" matches anything, "%" anything but the separator.
 * Dynamic programming over one row: O(name x pattern) time, no recursion;
 * consecutive wildcards are folded first. */
static bool list_match(const char *pat, const char *name)
{
	size_t plen = strlen(pat), nlen = strlen(name);
	bool *row, *next, ok;

	/* the literal text before the first wildcard must match: most names
	 * fail here */
	for (size_t i = 0; i < plen && pat[i] != '*' && pat[i] != '%'; i++) {
		if (i >= nlen || pat[i] != name[i])
			return false;
	}
	row = xcalloc(nlen + 1, sizeof(bool));
	next = xcalloc(nlen + 1, sizeof(bool));
	row[0] = true;
	for (size_t p = 0; p < plen; p++) {
		char c = pat[p];

		if (c == '*') {
			bool reach = false;

			for (size_t n = 0; n <= nlen; n++) {
				reach = reach || row[n];
				next[n] = reach;
			}
		} else if (c == '%') {
			/* "%" takes any run of characters without "/" */
			for (size_t n = 0; n <= nlen; n++)
				next[n] = row[n] || (n > 0 && name[n - 1] != '/' && next[n - 1]);
		} else {
			next[0] = false;
			for (size_t n = 1; n <= nlen; n++)
				next[n] = row[n - 1] && name[n - 1] == c;
		}
		{
			bool *t = row;

			row = next;
			next = t;
		}
	}
	ok = row[nlen];
	free(row);
	free(next);
	return ok;
}

static bool any_pattern_matches(const struct list_data *d, const char *name)
{
	for (size_t i = 0; i < d->npatterns; i++) {
		if (list_match(d->patterns[i], name))
			return true;
	}
	return false;
}

static void list_run(struct imap_job *job)
{
	struct list_data *d = job->data;
	struct store_folder_info *list;
	struct imap_session fake;
	size_t count;
	const char *error;
	enum store_status st;
	struct buf line;

	memset(&fake, 0, sizeof(fake));
	fake.utf8 = job->utf8;
	st = store_folder_list(job->user->user, &list, &count, &error);
	if (st != STORE_OK) {
		imap_job_fail(job, st, error);
		return;
	}
	imap_acl_list_merge(job->user, &list, &count);
	buf_init(&line, SIZE_MAX / 4);
	for (size_t i = 0; i < count; i++) {
		const struct store_folder_info *f = &list[i];
		const char *role = store_role_attr(f->role);
		bool subscribed_sel = (d->opts & LS_SUBSCRIBED) != 0 || d->lsub;
		bool match = any_pattern_matches(d, f->name);
		bool childinfo = false;
		int ret = 0;

		if (!match)
			continue;
		if (subscribed_sel && !f->subscribed) {
			/* RECURSIVEMATCH: a parent whose child is subscribed
			 * is listed with CHILDINFO (RFC 5258 section 4) */
			if ((d->opts & LS_RECURSIVEMATCH) == 0)
				continue;
			for (size_t k = 0; k < count; k++) {
				size_t n = strlen(f->name);

				if (list[k].subscribed && strncmp(list[k].name, f->name, n) == 0 &&
				    list[k].name[n] == '/') {
					childinfo = true;
					break;
				}
			}
			if (!childinfo)
				continue;
		}
		/* a namespace level of imap_acl.c: listed as \Noselect */
		bool level = !f->exists && f->has_children;

		if (!subscribed_sel && !f->exists && !level)
			continue;
		if ((d->opts & LS_SPECIALUSE) != 0 && role == NULL)
			continue;
		buf_reset(&line);
		ret |= buf_printf(&line, "* %s (", d->lsub ? "LSUB" : "LIST");
		{
			bool first = true;

#define ATTR(text) do { ret |= buf_printf(&line, "%s%s", first ? "" : " ", text); first = false; } while (0)
			if (!f->exists) {
				ATTR(d->lsub || level ? "\\Noselect" : "\\NonExistent");
			}
			if (!d->lsub)
				ATTR(f->has_children ? "\\HasChildren" : "\\HasNoChildren");
			if (!d->lsub && ((d->opts & (LR_SUBSCRIBED | LS_SUBSCRIBED)) != 0) && f->subscribed)
				ATTR("\\Subscribed");
			if (role != NULL && !d->lsub)
				ATTR(role);
#undef ATTR
		}
		ret |= buf_append_str(&line, ") \"/\" ");
		if (ret != 0 || imap_name_out(&fake, f->name, &line) < 0)
			continue;  /* a name this client cannot receive */
		if (childinfo && buf_append_str(&line, " (\"CHILDINFO\" (\"SUBSCRIBED\"))") < 0)
			panic("imap list: buffer");
		if (buf_append_str(&line, "\r\n") < 0)
			panic("imap list: buffer");
		evbuffer_add(job->out, line.data, line.len);
		if ((d->opts & LR_STATUS) != 0 && f->exists) {
			/* RFC 5819: a failure to read one folder is not an error */
			buf_reset(&line);
			if (status_one(job, f->name, d->status_items, d->appendlimit, &line, &error) ==
			    STORE_OK)
				evbuffer_add(job->out, line.data, line.len);
		}
	}
	buf_deinit(&line);
	store_folder_list_free(&list, count);
}

static void list_done(struct imap_session *s, struct imap_job *job)
{
	struct list_data *d = job->data;

	evbuffer_add_buffer(bufferevent_get_output(s->conn->bev), job->out);
	if (job->status != STORE_OK) {
		imap_no_store(s, job->status, job->error, d->lsub ? "LSUB" : "LIST");
		return;
	}
	imap_ok(s, "%s completed", d->lsub ? "LSUB" : "LIST");
}

/* Adds reference + pattern (client form) to d->patterns as UTF-8. */
static int add_pattern(struct imap_session *s, struct list_data *d, const char *ref, size_t rlen,
		       const char *pat, size_t plen)
{
	struct buf joined, name;

	buf_init(&joined, SIZE_MAX / 4);
	if (buf_append(&joined, ref, rlen) < 0 || buf_append(&joined, pat, plen) < 0)
		panic("imap list: buffer");
	buf_init(&name, SIZE_MAX / 4);
	if (imap_name_in(s, joined.len > 0 ? joined.data : "", joined.len, &name) < 0) {
		buf_deinit(&joined);
		buf_deinit(&name);
		return -1;
	}
	buf_deinit(&joined);
	d->patterns = xreallocarray(d->patterns, d->npatterns + 1, sizeof(*d->patterns));
	d->patterns[d->npatterns++] = buf_steal(&name);
	buf_deinit(&name);
	return 0;
}

static const char *pattern_text(const struct imap_parser *p, const struct imap_arg *a, size_t *len_r)
{
	if (a == NULL)
		return NULL;
	if (a->type == IMAP_ARG_ATOM) {
		*len_r = a->len;
		return imap_arg_text(p, a);
	}
	return imap_arg_string(p, a, len_r);
}

static void list_common(struct imap_session *s, struct imap_args *args, bool lsub)
{
	const struct imap_arg *a = imap_args_next(args);
	struct list_data *d = xcalloc(1, sizeof(*d));
	const char *ref, *pat;
	size_t rlen, plen;
	struct imap_job *job;

	d->lsub = lsub;
	d->appendlimit = (uint64_t)s->conn->cfg->s.imap_append_limit;
	if (!lsub && a != NULL && a->type == IMAP_ARG_LIST) {
		/* LIST-EXTENDED selection options */
		struct imap_args it;
		const struct imap_arg *o;

		d->extended = true;
		imap_args_list(&s->parser, a, &it);
		while ((o = imap_args_next(&it)) != NULL) {
			if (imap_arg_atom_is(&s->parser, o, "SUBSCRIBED"))
				d->opts |= LS_SUBSCRIBED;
			else if (imap_arg_atom_is(&s->parser, o, "RECURSIVEMATCH"))
				d->opts |= LS_RECURSIVEMATCH;
			else if (imap_arg_atom_is(&s->parser, o, "SPECIAL-USE"))
				d->opts |= LS_SPECIALUSE;
			else if (imap_arg_atom_is(&s->parser, o, "REMOTE"))
				;
			else
				goto bad;
		}
		if ((d->opts & LS_RECURSIVEMATCH) != 0 && (d->opts & LS_SUBSCRIBED) == 0)
			goto bad;  /* RFC 5258: RECURSIVEMATCH needs another option */
		a = imap_args_next(args);
	}
	ref = imap_arg_astring(&s->parser, a, &rlen);
	a = imap_args_next(args);
	if (ref == NULL || a == NULL)
		goto bad;
	if (a->type == IMAP_ARG_LIST && !lsub) {
		struct imap_args it;
		const struct imap_arg *p;

		imap_args_list(&s->parser, a, &it);
		if (imap_args_left(&it) == 0)
			goto bad;
		while ((p = imap_args_next(&it)) != NULL) {
			pat = pattern_text(&s->parser, p, &plen);
			if (pat == NULL)
				goto bad;
			(void)add_pattern(s, d, ref, rlen, pat, plen);
		}
	} else {
		pat = pattern_text(&s->parser, a, &plen);
		if (pat == NULL)
			goto bad;
		if (plen == 0 && !lsub && !d->extended) {
			/* RFC 3501: the hierarchy delimiter and root */
			list_cleanup(&(struct imap_job){ .data = d });
			imap_printf(s, "* LIST (\\Noselect) \"/\" \"\"\r\n");
			imap_ok(s, "LIST completed");
			return;
		}
		(void)add_pattern(s, d, ref, rlen, pat, plen);
	}
	a = imap_args_next(args);
	if (a != NULL) {
		/* LIST-EXTENDED return options */
		struct imap_args it;
		const struct imap_arg *o, *opts = imap_args_next(args);

		if (lsub || !imap_arg_atom_is(&s->parser, a, "RETURN") || opts == NULL ||
		    opts->type != IMAP_ARG_LIST || imap_args_left(args) != 0)
			goto bad;
		imap_args_list(&s->parser, opts, &it);
		while ((o = imap_args_next(&it)) != NULL) {
			if (imap_arg_atom_is(&s->parser, o, "SUBSCRIBED")) {
				d->opts |= LR_SUBSCRIBED;
			} else if (imap_arg_atom_is(&s->parser, o, "CHILDREN")) {
				d->opts |= LR_CHILDREN;
			} else if (imap_arg_atom_is(&s->parser, o, "SPECIAL-USE")) {
				d->opts |= LR_SPECIALUSE;
			} else if (imap_arg_atom_is(&s->parser, o, "STATUS")) {
				if (parse_status_items(&s->parser, imap_args_next(&it), &d->status_items) < 0)
					goto bad;
				d->opts |= LR_STATUS;
			} else {
				goto bad;
			}
		}
	}
	job = imap_job_new(s, list_run, list_done);
	job->cleanup = list_cleanup;
	job->data = d;
	imap_job_submit(s, job);
	return;
bad:
	list_cleanup(&(struct imap_job){ .data = d });
	imap_bad(s, lsub ? "Usage: LSUB reference pattern" :
		 "Usage: LIST [(options)] reference pattern [RETURN (options)]");
}

void imap_cmd_list(struct imap_session *s, struct imap_args *args)
{
	list_common(s, args, false);
}

void imap_cmd_lsub(struct imap_session *s, struct imap_args *args)
{
	list_common(s, args, true);
}

/* ---- SELECT and EXAMINE ---- */

struct select_data {
	char *name;
	bool readonly;
	uint64_t gen;
	bool claim_recent;
	/* QRESYNC (RFC 7162 3.2.5) */
	bool qresync;
	uint32_t q_uidvalidity;
	uint64_t q_modseq;
	struct store_range *q_known;
	size_t q_known_count;
	/* results */
	struct imap_mbox *mbox;
	struct imap_seqmap *map;
	struct store_folder_status st;
	char **keywords;
	uint32_t recent_first, recent_last;
	uint32_t rights;
	bool shared;              /* another user's or a public folder */
	bool examine;             /* EXAMINE: read-only whatever the rights */
	uint64_t acl_gen, dir_gen;  /* when the rights were computed */
};

static void select_cleanup(struct imap_job *job)
{
	struct select_data *d = job->data;

	free(d->name);
	free(d->q_known);
	imap_mbox_unref(&d->mbox);
	imap_seqmap_unref(&d->map);
	store_keywords_free(&d->keywords, STORE_MAX_KEYWORDS);
	free(d);
}

static void append_uid_ranges(struct buf *out, const uint32_t *uids, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (buf_printf(out, "%s%u", i > 0 ? "," : "", uids[i]) < 0 ||
		    (j > i && buf_printf(out, ":%u", uids[j]) < 0))
			panic("imap: uid set");
		i = j + 1;
	}
}

/* Worker: the QRESYNC part of SELECT (VANISHED (EARLIER), then FETCH of
 * what changed since the client's MODSEQ). */
static void select_qresync(struct imap_job *job, struct select_data *d)
{
	struct store_uidset known = { d->q_known, d->q_known_count };
	uint32_t *uids = NULL, after = 0;
	size_t n = 0;
	const char *error;
	struct buf line;

	if (d->q_uidvalidity != d->st.uidvalidity || d->q_modseq == 0)
		return;  /* the client must resync in full */
	buf_init(&line, SIZE_MAX / 4);
	if (store_vanished(d->mbox->folder, d->q_modseq, d->q_known != NULL ? &known : NULL, &uids, &n,
			   &error) == STORE_OK && n > 0) {
		if (buf_append_str(&line, "* VANISHED (EARLIER) ") < 0)
			panic("imap: buffer");
		append_uid_ranges(&line, uids, n);
		if (buf_append_str(&line, "\r\n") < 0)
			panic("imap: buffer");
		evbuffer_add(job->out, line.data, line.len);
	}
	free(uids);
	for (;;) {
		struct store_page *page;

		if (store_fetch(d->mbox->folder, d->q_known != NULL ? &known : NULL, d->q_modseq, 0, after,
				IMAP_FETCH_PAGE, &page, &error) != STORE_OK)
			break;
		for (size_t i = 0; i < page->count; i++) {
			const struct store_msg *m = &page->msgs[i];
			uint32_t seq = imap_seqmap_find(d->map, m->uid);

			if (seq == 0)
				continue;
			buf_reset(&line);
			if (buf_printf(&line, "* %u FETCH (UID %u ", seq, m->uid) < 0)
				panic("imap: buffer");
			imap_append_flags(&line, m->flags, m->keywords, d->keywords,
					  m->uid >= d->recent_first && m->uid <= d->recent_last &&
					  !job->rev2);
			if (buf_printf(&line, " MODSEQ (%llu))\r\n", (unsigned long long)m->modseq) < 0)
				panic("imap: buffer");
			evbuffer_add(job->out, line.data, line.len);
		}
		after = page->last_uid;
		if (!page->more || page->count == 0) {
			store_page_free(&page);
			break;
		}
		store_page_free(&page);
	}
	buf_deinit(&line);
}

static void select_run(struct imap_job *job)
{
	struct select_data *d = job->data;
	struct store_folder *f;
	const char *error;
	size_t kwcount, count;
	enum store_status st;
	struct imap_target t;

	/* read before the rights: a change made meanwhile makes the session
	 * compute them again before its next command */
	d->acl_gen = store_acl_generation();
	d->dir_gen = directory_generation();
	st = imap_acl_open_target(job->user, d->name, STORE_ACL_R, &t, &f, &error);
	if (st != STORE_OK) {
		imap_job_fail(job, st, error);
		return;
	}
	d->rights = t.rights;
	d->shared = t.ns != IMAP_NS_PERSONAL;
	imap_target_free(&t);
	if ((d->rights & (STORE_ACL_S | STORE_ACL_W | STORE_ACL_T | STORE_ACL_E)) == 0) {
		/* RFC 4314 4: nothing the user may change: read-only */
		d->readonly = true;
		d->claim_recent = false;
	}
	d->mbox = xcalloc(1, sizeof(*d->mbox));
	d->mbox->refs = 1;
	d->mbox->user = imap_user_ref(job->user);
	d->mbox->folder = f;
	/* watch first, then read: nothing that happens in between is lost */
	imap_watch_start(d->mbox, job->net, job->conn_id, job->base, d->gen);
	st = store_folder_status(f, &d->st, &error);
	if (st == STORE_OK)
		st = store_folder_keywords(f, &d->keywords, &kwcount, &error);
	if (st == STORE_OK && d->claim_recent)
		st = store_claim_recent(f, &d->recent_first, &d->recent_last, &error);
	if (st != STORE_OK) {
		imap_job_fail(job, st, error);
		return;
	}
	if (!d->claim_recent) {
		d->recent_first = 1;
		d->recent_last = 0;
	}
	d->map = imap_seqmap_new();
	/* UIDs and MODSEQs only: 12 bytes a message, not its row */
	st = store_folder_uids(f, &d->map->uids, &d->map->modseqs, &count, &error);
	if (st != STORE_OK) {
		imap_job_fail(job, st, error);
		return;
	}
	d->map->count = d->map->cap = (uint32_t)count;
	if (d->qresync)
		select_qresync(job, d);
}

void imap_put_permanentflags(const struct imap_selected *sel, struct buf *line)
{
	if (buf_append_str(line, "* OK [PERMANENT") < 0)
		panic("imap: buffer");
	if (!sel->readonly) {
		/* the flags the user's rights allow (RFC 4314 4) */
		bool w = (sel->rights & STORE_ACL_W) != 0;
		uint32_t mask = ((sel->rights & STORE_ACL_S) != 0 ? STORE_F_SEEN : 0) |
				((sel->rights & STORE_ACL_T) != 0 ? STORE_F_DELETED : 0) |
				(w ? STORE_F_ALL & ~(STORE_F_SEEN | STORE_F_DELETED) : 0);

		imap_append_flags(line, mask, w ? ~(uint64_t)0 : 0, sel->keywords, false);
		/* "\*": new keywords may be created */
		buf_truncate(line, line->len - 1);
		if (buf_append_str(line, w ? (mask != 0 ? " \\*)] Flags permitted\r\n" :
					      "\\*)] Flags permitted\r\n") :
				   ")] Flags permitted\r\n") < 0)
			panic("imap: buffer");
	} else if (buf_append_str(line, "FLAGS ()] Read-only mailbox\r\n") < 0) {
		panic("imap: buffer");
	}
}

static void select_done(struct imap_session *s, struct imap_job *job)
{
	struct select_data *d = job->data;
	struct imap_selected *sel = s->next_sel;
	struct buf line;
	uint32_t recent = 0, unseen_seq = 0;

	s->next_sel = NULL;
	if (job->status != STORE_OK || sel == NULL || sel->gen != d->gen) {
		imap_selected_free(&sel);
		if (job->status == STORE_E_NOTFOUND)
			imap_no(s, "[NONEXISTENT] Mailbox does not exist");
		else
			imap_no_store(s, job->status, job->error, "SELECT");
		return;
	}
	sel->mbox = d->mbox;
	d->mbox = NULL;
	sel->map = d->map;
	d->map = NULL;
	sel->keywords = d->keywords;
	d->keywords = NULL;
	sel->name = d->name;
	d->name = NULL;
	sel->readonly = d->readonly;
	sel->examined = d->examine;
	sel->rights = d->rights;
	sel->shared = d->shared;
	sel->acl_gen = d->acl_gen;
	sel->dir_gen = d->dir_gen;
	sel->uidvalidity = d->st.uidvalidity;
	sel->uidnext = d->st.uidnext;
	sel->highestmodseq = d->st.highestmodseq;
	sel->recent_first = d->recent_first;
	sel->recent_last = d->recent_last;
	s->sel = sel;
	s->state = IMAP_STATE_SELECTED;
	for (uint32_t i = 0; i < sel->map->count; i++) {
		if (sel->map->uids[i] >= sel->recent_first && sel->map->uids[i] <= sel->recent_last)
			recent++;
	}
	if (d->st.first_unseen_uid != 0)
		unseen_seq = imap_seqmap_find(sel->map, d->st.first_unseen_uid);

	buf_init(&line, SIZE_MAX / 4);
	if (buf_append_str(&line, "* ") < 0)
		panic("imap: buffer");
	imap_append_flags(&line, STORE_F_ALL, ~(uint64_t)0, sel->keywords, false);
	if (buf_append_str(&line, "\r\n") < 0)
		panic("imap: buffer");
	imap_put_permanentflags(sel, &line);
	imap_write(s, line.data, line.len);
	buf_deinit(&line);
	imap_printf(s, "* %u EXISTS\r\n", sel->map->count);
	if (!s->rev2) {
		imap_printf(s, "* %u RECENT\r\n", recent);
		if (unseen_seq != 0)
			imap_printf(s, "* OK [UNSEEN %u] First unseen\r\n", unseen_seq);
	}
	imap_printf(s, "* OK [UIDVALIDITY %u] UIDs valid\r\n", sel->uidvalidity);
	imap_printf(s, "* OK [UIDNEXT %u] Predicted next UID\r\n", sel->uidnext);
	imap_printf(s, "* OK [HIGHESTMODSEQ %llu] Highest\r\n", (unsigned long long)sel->highestmodseq);
	if (s->rev2) {
		struct buf name;

		/* RFC 9051 6.3.2: the mailbox name as the server knows it */
		buf_init(&name, SIZE_MAX / 4);
		if (imap_name_out(s, sel->name, &name) == 0)
			imap_printf(s, "* LIST () \"/\" %s\r\n", name.data);
		buf_deinit(&name);
	}
	evbuffer_add_buffer(bufferevent_get_output(s->conn->bev), job->out);
	imap_ok(s, "[%s] %s completed", sel->readonly ? "READ-ONLY" : "READ-WRITE",
		sel->readonly ? "EXAMINE" : "SELECT");
}

/* Parses a known-uids set (UIDs, no "*"/"$" semantics needed beyond
 * ranges) into store ranges. */
static int parse_uid_ranges(const char *text, size_t len, struct store_range **r_r, size_t *n_r)
{
	struct imap_seqset set;

	if (imap_seqset_parse(text, len, false, &set) < 0)
		return -1;
	imap_seqset_normalize(&set, UINT32_MAX);
	*r_r = xmallocarray(set.count + 1, sizeof(**r_r));
	for (size_t i = 0; i < set.count; i++) {
		(*r_r)[i].lo = set.ranges[i].lo;
		(*r_r)[i].hi = set.ranges[i].hi;
	}
	*n_r = set.count;
	imap_seqset_free(&set);
	return 0;
}

static void select_common(struct imap_session *s, struct imap_args *args, bool readonly)
{
	const struct imap_arg *a = imap_args_next(args), *params = imap_args_next(args);
	struct select_data *d;
	struct imap_job *job;
	char *name;

	if (a == NULL || imap_args_left(args) != 0 || (params != NULL && params->type != IMAP_ARG_LIST)) {
		imap_bad(s, "Usage: %s mailbox [(CONDSTORE | QRESYNC (...))]",
			 readonly ? "EXAMINE" : "SELECT");
		return;
	}
	d = xcalloc(1, sizeof(*d));
	if (params != NULL) {
		struct imap_args it;
		const struct imap_arg *p;

		imap_args_list(&s->parser, params, &it);
		while ((p = imap_args_next(&it)) != NULL) {
			if (imap_arg_atom_is(&s->parser, p, "CONDSTORE")) {
				s->condstore = true;
			} else if (imap_arg_atom_is(&s->parser, p, "QRESYNC") && s->qresync) {
				const struct imap_arg *q = imap_args_next(&it), *x;
				struct imap_args qit;
				uint64_t v;
				const char *t;

				if (q == NULL || q->type != IMAP_ARG_LIST)
					goto bad;
				imap_args_list(&s->parser, q, &qit);
				x = imap_args_next(&qit);
				if (x == NULL || x->type != IMAP_ARG_ATOM ||
				    str_to_u64(imap_arg_text(&s->parser, x), &v) < 0 || v == 0 ||
				    v > UINT32_MAX)
					goto bad;
				d->q_uidvalidity = (uint32_t)v;
				x = imap_args_next(&qit);
				if (x == NULL || x->type != IMAP_ARG_ATOM ||
				    str_to_u64(imap_arg_text(&s->parser, x), &v) < 0)
					goto bad;
				d->q_modseq = v;
				x = imap_args_next(&qit);
				if (x != NULL && x->type == IMAP_ARG_ATOM) {
					t = imap_arg_text(&s->parser, x);
					if (parse_uid_ranges(t, x->len, &d->q_known, &d->q_known_count) < 0)
						goto bad;
					x = imap_args_next(&qit);
				}
				/* the sequence match data is an optimisation we skip */
				if (x != NULL && x->type != IMAP_ARG_LIST)
					goto bad;
				d->qresync = true;
			} else {
				goto bad;
			}
		}
	}
	name = mailbox_arg(s, a);
	if (name == NULL) {
		free(d->q_known);
		free(d);
		return;
	}
	if (s->sel != NULL) {
		/* RFC 7162 3.2.11, RFC 9051 7.1: the previous one is closed
		 * (without expunging) */
		imap_unselect(s);
		imap_printf(s, "* OK [CLOSED] Previous mailbox closed\r\n");
	}
	d->name = name;
	d->readonly = readonly;
	d->examine = readonly;
	d->gen = ++s->sel_gen;
	d->claim_recent = !readonly && !s->rev2;
	imap_selected_free(&s->next_sel);
	s->next_sel = xcalloc(1, sizeof(*s->next_sel));
	s->next_sel->gen = d->gen;
	job = imap_job_new(s, select_run, select_done);
	job->cleanup = select_cleanup;
	job->data = d;
	imap_job_submit(s, job);
	return;
bad:
	free(d->q_known);
	free(d);
	imap_bad(s, "Invalid SELECT parameters");
}

void imap_cmd_select(struct imap_session *s, struct imap_args *args)
{
	select_common(s, args, false);
}

void imap_cmd_examine(struct imap_session *s, struct imap_args *args)
{
	select_common(s, args, true);
}

/* ---- CLOSE, UNSELECT, EXPUNGE ---- */

struct expunge_data {
	struct store_range *ranges;   /* UID EXPUNGE; NULL: every \Deleted */
	size_t count;
	uint32_t *uids;
	size_t nuids;
	bool close;
};

static void expunge_cleanup(struct imap_job *job)
{
	struct expunge_data *d = job->data;

	free(d->ranges);
	free(d->uids);
	free(d);
}

static void expunge_run(struct imap_job *job)
{
	struct expunge_data *d = job->data;
	struct store_uidset set = { d->ranges, d->count };
	const char *error;
	enum store_status st;

	st = store_expunge(job->mbox->folder, d->ranges != NULL ? &set : NULL, true, &d->uids,
			   &d->nuids, &error);
	if (st != STORE_OK)
		imap_job_fail(job, st, error);
}

static void expunge_done(struct imap_session *s, struct imap_job *job)
{
	struct expunge_data *d = job->data;
	struct imap_uidvec vanished = { NULL, 0, 0 };

	imap_seqmap_unref(&job->map);
	if (d->close) {
		/* CLOSE: silently, even when the expunge failed (RFC 9051 6.4.1) */
		imap_unselect(s);
		imap_ok(s, "CLOSE completed");
		return;
	}
	if (job->status != STORE_OK) {
		imap_no_store(s, job->status, job->error, "EXPUNGE");
		return;
	}
	if (s->sel != NULL) {
		for (size_t i = d->nuids; i > 0; i--)
			imap_expunge_uid(s, d->uids[i - 1], s->qresync ? &vanished : NULL);
		imap_send_vanished(s, &vanished, false);
		imap_uidvec_free(&vanished);
	}
	imap_ok(s, "EXPUNGE completed");
}

static void submit_expunge(struct imap_session *s, struct expunge_data *d)
{
	struct imap_job *job = imap_job_new(s, expunge_run, expunge_done);

	job->cleanup = expunge_cleanup;
	job->data = d;
	imap_job_submit(s, job);
}

void imap_cmd_close(struct imap_session *s, struct imap_args *args)
{
	struct expunge_data *d;

	if (imap_args_left(args) != 0) {
		imap_bad(s, "CLOSE takes no arguments");
		return;
	}
	if (s->sel->readonly || (s->sel->rights & STORE_ACL_E) == 0) {
		/* without "e" CLOSE just closes (RFC 4314 4) */
		imap_unselect(s);
		imap_ok(s, "CLOSE completed");
		return;
	}
	d = xcalloc(1, sizeof(*d));
	d->close = true;
	submit_expunge(s, d);
}

void imap_cmd_unselect(struct imap_session *s, struct imap_args *args)
{
	if (imap_args_left(args) != 0) {
		imap_bad(s, "UNSELECT takes no arguments");
		return;
	}
	imap_unselect(s);
	imap_ok(s, "UNSELECT completed");
}

void imap_cmd_expunge(struct imap_session *s, struct imap_args *args)
{
	struct expunge_data *d;

	if (s->cmd_uid ? imap_args_left(args) != 1 : imap_args_left(args) != 0) {
		imap_bad(s, s->cmd_uid ? "Usage: UID EXPUNGE uid-set" : "EXPUNGE takes no arguments");
		return;
	}
	if ((s->sel->rights & STORE_ACL_E) == 0) {
		imap_no(s, "[NOPERM] EXPUNGE: permission denied");
		return;
	}
	if (s->sel->readonly) {
		imap_no(s, "[READ-ONLY] Mailbox is read-only");
		return;
	}
	d = xcalloc(1, sizeof(*d));
	if (s->cmd_uid) {
		struct imap_seqset set;
		const char *error;

		if (imap_resolve_set(s, imap_args_next(args), true, &set, &error) < 0) {
			free(d);
			imap_bad(s, "%s", error);
			return;
		}
		d->ranges = xmallocarray(set.count + 1, sizeof(*d->ranges));
		for (size_t i = 0; i < set.count; i++) {
			d->ranges[i].lo = set.ranges[i].lo;
			d->ranges[i].hi = set.ranges[i].hi;
		}
		d->count = set.count;
		imap_seqset_free(&set);
		if (d->count == 0) {
			expunge_cleanup(&(struct imap_job){ .data = d });
			imap_ok(s, "EXPUNGE completed");
			return;
		}
	}
	submit_expunge(s, d);
}

/* ---- APPEND ---- */

struct append_data {
	char *name;
	struct buf data;          /* the parser's buffer, taken over */
	size_t off, len;
	uint32_t flags;
	const char **keywords;    /* point into data */
	int64_t date;
	int tz;
	uint32_t uidvalidity, uid;
	bool selected;            /* the target is the selected mailbox */
};

static void append_cleanup(struct imap_job *job)
{
	struct append_data *d = job->data;

	free(d->name);
	buf_deinit(&d->data);
	free(d->keywords);
	free(d);
}

static void append_run(struct imap_job *job)
{
	struct append_data *d = job->data;
	struct store_folder *f;
	struct store_message msg;
	struct imap_target t;
	const char *error;
	enum store_status st;

	st = imap_acl_open_target(job->user, d->name, STORE_ACL_I, &t, &f, &error);
	if (st != STORE_OK) {
		imap_job_fail(job, st, error);
		return;
	}
	memset(&msg, 0, sizeof(msg));
	msg.data = d->data.data + d->off;
	msg.len = d->len;
	msg.internal_date = d->date;
	msg.tz = d->tz;
	{
		/* one recipient of store_deliver_many: it tells the usage the
		 * append left, counted under the store's lock, so exactly one
		 * append crosses the warning line */
		struct store_rcpt r = { .folder = f, .flags = d->flags,
					.keywords = (const char *const *)d->keywords };

		store_deliver_many(&msg, &r, 1);
		st = r.status;
		error = r.error;
		d->uidvalidity = r.uidvalidity;
		d->uid = r.uid;
		store_folder_close(&f);
		if (st == STORE_OK)
			imap_acl_quota_warn(&t, &r.quota, msg.len, 1);
	}
	imap_target_free(&t);
	if (st != STORE_OK)
		imap_job_fail(job, st, error);
}

static void append_done(struct imap_session *s, struct imap_job *job)
{
	struct append_data *d = job->data;

	if (job->status == STORE_E_NOTFOUND) {
		imap_no(s, "[TRYCREATE] Mailbox does not exist");
		return;
	}
	if (job->status != STORE_OK) {
		imap_no_store(s, job->status, job->error, "APPEND");
		return;
	}
	log_debug(IMAP_LOG, "conn=%llu user=%s appended uid=%u size=%zu", (unsigned long long)s->conn->id,
		  s->identity, d->uid, d->len);
	imap_ok(s, "[APPENDUID %u %u] APPEND completed", d->uidvalidity, d->uid);
}

void imap_cmd_append(struct imap_session *s, struct imap_args *args)
{
	const struct imap_arg *mb = imap_args_next(args), *a = imap_args_next(args), *msg = NULL;
	struct append_data *d;
	const char *error;
	struct imap_job *job;
	size_t nkw = 0;
	char *name;

	if (mb == NULL || a == NULL)
		goto bad;
	d = xcalloc(1, sizeof(*d));
	if (a->type == IMAP_ARG_LIST) {
		if (imap_parse_flags(&s->parser, a, &d->flags, &d->keywords, &nkw, &error) < 0) {
			free(d);
			imap_bad(s, "%s", error);
			return;
		}
		a = imap_args_next(args);
	}
	if (a != NULL && a->type == IMAP_ARG_QUOTED) {
		if (imap_parse_datetime(imap_arg_text(&s->parser, a), a->len, &d->date, &d->tz) < 0) {
			free(d->keywords);
			free(d);
			imap_bad(s, "Invalid date-time");
			return;
		}
		a = imap_args_next(args);
	}
	if (a != NULL && imap_arg_atom_is(&s->parser, a, "UTF8")) {
		/* RFC 6855: UTF8 (~{n}message) */
		const struct imap_arg *l = imap_args_next(args);
		struct imap_args it;

		if (!s->utf8 || l == NULL || l->type != IMAP_ARG_LIST || l->count != 1)
			goto bad_free;
		imap_args_list(&s->parser, l, &it);
		a = imap_args_next(&it);
		if ((a->flags & IMAP_AF_LITERAL8) == 0)
			goto bad_free;
	}
	msg = a;
	if (msg == NULL || msg->type != IMAP_ARG_LITERAL || imap_args_left(args) != 0) {
		/* MULTIAPPEND and CATENATE are not offered */
		goto bad_free;
	}
	if ((msg->flags & IMAP_AF_NUL) != 0 && (msg->flags & IMAP_AF_LITERAL8) == 0) {
		/* RFC 3516: NUL needs a literal8 (BINARY) */
		free(d->keywords);
		free(d);
		imap_no(s, "[UNKNOWN-CTE] NUL bytes need a literal8 (~{n})");
		return;
	}
	if (msg->len == 0) {
		free(d->keywords);
		free(d);
		imap_no(s, "[CANNOT] Empty message");
		return;
	}
	name = mailbox_arg(s, mb);
	if (name == NULL) {
		free(d->keywords);
		free(d);
		return;
	}
	d->name = name;
	d->off = msg->off;
	d->len = msg->len;
	/* keywords point into the parser's data, which moves with it */
	imap_parser_take_data(&s->parser, &d->data);
	job = imap_job_new(s, append_run, append_done);
	job->cleanup = append_cleanup;
	job->data = d;
	imap_job_submit(s, job);
	return;
bad_free:
	free(d->keywords);
	free(d);
bad:
	imap_bad(s, "Usage: APPEND mailbox [(flags)] [\"date-time\"] literal");
}

/* ---- QUOTA (RFC 9208) ----
 *
 * One quota root per mailbox owner: "" for the user's own folders, and
 * "Other Users/<owner's address>" for the folders another user shares
 * (it is the owner's quota that an APPEND there fills).  Public folders
 * have no quota root.  A non-owner sees a root's figures when he has a
 * right on the folder asked for (GETQUOTAROOT) or on at least one folder
 * of its owner (GETQUOTA); otherwise the answer is the one for a folder
 * or a root that does not exist (RFC 4314 6).
 */

struct quota_data {
	char *name;               /* GETQUOTAROOT's mailbox (store form) */
	char *root;               /* the quota root (asked for, or found); NULL: none */
	bool getroot;
	struct store_quota q;
};

static void quota_cleanup(struct imap_job *job)
{
	struct quota_data *d = job->data;

	free(d->name);
	free(d->root);
	free(d);
}

/* GETQUOTAROOT: the folder's owner, with the user's right to see it. */
static enum store_status quota_root_of(struct imap_job *job, struct quota_data *d,
				       const char **error_r)
{
	struct imap_target t;
	enum store_status st;

	st = imap_acl_resolve(job->user, d->name, &t, error_r);
	if (st != STORE_OK)
		return st;
	if (t.ns == IMAP_NS_PERSONAL) {
		struct store_folder *f;

		st = store_folder_open(t.owner, t.folder, &f, error_r);
		if (st == STORE_OK)
			store_folder_close(&f);
	} else {
		st = imap_acl_need(&t, 0, error_r);
	}
	if (st == STORE_OK && t.ns != IMAP_NS_PUBLIC_FOLDERS) {
		d->root = t.ns == IMAP_NS_PERSONAL ? xstrdup("") :
			  xasprintf(IMAP_NS_OTHER "/%s", t.owner_id);
		st = store_user_quota(t.owner, &d->q, error_r);
	}
	imap_target_free(&t);
	return st;
}

/* GETQUOTA: "" or "Other Users/<owner>". */
static enum store_status quota_of_root(struct imap_job *job, struct quota_data *d,
				       const char **error_r)
{
	size_t olen = strlen(IMAP_NS_OTHER);
	struct store_user *owner;
	enum store_status st;

	if (d->root[0] == '\0')
		return store_user_quota(job->user->user, &d->q, error_r);
	if (strncmp(d->root, IMAP_NS_OTHER "/", olen + 1) != 0 ||
	    strchr(d->root + olen + 1, '/') != NULL) {
		*error_r = "no such quota root";
		return STORE_E_NOTFOUND;
	}
	st = imap_acl_owner_open(job->user, d->root + olen + 1, &owner, error_r);
	if (st != STORE_OK)
		return st;
	st = store_user_quota(owner, &d->q, error_r);
	store_user_unref(&owner);
	return st;
}

static void quota_run(struct imap_job *job)
{
	struct quota_data *d = job->data;
	const char *error;
	enum store_status st;

	st = d->getroot ? quota_root_of(job, d, &error) : quota_of_root(job, d, &error);
	if (st != STORE_OK)
		imap_job_fail(job, st, error);
}

/* A quota root as a quoted string (addresses may hold '"' or '\\'). */
static void put_root(struct buf *line, const char *root)
{
	if (buf_append_char(line, '"') < 0)
		panic("imap quota: buffer");
	for (const char *p = root; *p != '\0'; p++) {
		if ((*p == '"' || *p == '\\') && buf_append_char(line, '\\') < 0)
			panic("imap quota: buffer");
		if (buf_append_char(line, *p) < 0)
			panic("imap quota: buffer");
	}
	if (buf_append_char(line, '"') < 0)
		panic("imap quota: buffer");
}

static void quota_line(struct imap_session *s, const char *root, const struct store_quota *q)
{
	struct buf line;
	bool first = true;

	buf_init(&line, 4096);
	if (buf_append_str(&line, "* QUOTA ") < 0)
		panic("imap quota: buffer");
	put_root(&line, root);
	if (buf_append_str(&line, " (") < 0)
		panic("imap quota: buffer");
	if (q->max_bytes > 0) {
		/* STORAGE is in units of 1024 octets */
		if (buf_printf(&line, "STORAGE %llu %llu", (unsigned long long)((q->bytes + 1023) / 1024),
			       (unsigned long long)(q->max_bytes / 1024)) < 0)
			panic("imap quota: buffer");
		first = false;
	}
	if (q->max_messages > 0 &&
	    buf_printf(&line, "%sMESSAGE %llu %llu", first ? "" : " ", (unsigned long long)q->messages,
		       (unsigned long long)q->max_messages) < 0)
		panic("imap quota: buffer");
	if (buf_append_str(&line, ")\r\n") < 0)
		panic("imap quota: buffer");
	imap_write(s, line.data, line.len);
	buf_deinit(&line);
}

static void quota_done(struct imap_session *s, struct imap_job *job)
{
	struct quota_data *d = job->data;
	bool limited = d->root != NULL && (d->q.max_bytes > 0 || d->q.max_messages > 0);

	if (job->status != STORE_OK) {
		if (job->status == STORE_E_NOTFOUND)
			imap_no(s, d->getroot ? "[NONEXISTENT] Mailbox does not exist" :
				"[NONEXISTENT] No such quota root");
		else
			imap_no_store(s, job->status, job->error,
				      d->getroot ? "GETQUOTAROOT" : "GETQUOTA");
		return;
	}
	if (d->getroot) {
		struct buf line;

		buf_init(&line, SIZE_MAX / 4);
		if (buf_append_str(&line, "* QUOTAROOT ") < 0 || imap_name_out(s, d->name, &line) < 0)
			panic("imap quota: buffer");
		if (limited) {
			if (buf_append_char(&line, ' ') < 0)
				panic("imap quota: buffer");
			put_root(&line, d->root);
		}
		if (buf_append_str(&line, "\r\n") < 0)
			panic("imap quota: buffer");
		imap_write(s, line.data, line.len);
		buf_deinit(&line);
		if (limited)
			quota_line(s, d->root, &d->q);
		imap_ok(s, "GETQUOTAROOT completed");
		return;
	}
	if (!limited) {
		imap_no(s, "[NONEXISTENT] No such quota root");
		return;
	}
	quota_line(s, d->root, &d->q);
	imap_ok(s, "GETQUOTA completed");
}

void imap_cmd_getquotaroot(struct imap_session *s, struct imap_args *args)
{
	const struct imap_arg *a = imap_args_next(args);
	struct quota_data *d;
	struct imap_job *job;
	char *name;

	if (a == NULL || imap_args_left(args) != 0) {
		imap_bad(s, "Usage: GETQUOTAROOT mailbox");
		return;
	}
	name = mailbox_arg(s, a);
	if (name == NULL)
		return;
	d = xcalloc(1, sizeof(*d));
	d->name = name;
	d->getroot = true;
	job = imap_job_new(s, quota_run, quota_done);
	job->cleanup = quota_cleanup;
	job->data = d;
	imap_job_submit(s, job);
}

void imap_cmd_getquota(struct imap_session *s, struct imap_args *args)
{
	const struct imap_arg *a = imap_args_next(args);
	struct quota_data *d;
	struct imap_job *job;
	const char *root;
	size_t len;

	root = imap_arg_astring(&s->parser, a, &len);
	if (root == NULL || imap_args_left(args) != 0) {
		imap_bad(s, "Usage: GETQUOTA root");
		return;
	}
	d = xcalloc(1, sizeof(*d));
	d->root = xstrndup(root, len);
	job = imap_job_new(s, quota_run, quota_done);
	job->cleanup = quota_cleanup;
	job->data = d;
	imap_job_submit(s, job);
}

void imap_cmd_setquota(struct imap_session *s, struct imap_args *args)
{
	(void)args;
	/* quotas are the administrator's (users.cfg, petrelctl user) */
	imap_no(s, "[NOPERM] Quotas are set by the administrator");
}
