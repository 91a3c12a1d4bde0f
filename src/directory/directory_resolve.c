/*
 * Address resolution for SMTP RCPT and delivery, and the facts about
 * mailing lists that delivery needs (headers, membership).
 *
 * Resolution walks aliases, groups and forwards depth first.  Each object
 * (user, alias, group) is expanded at most once per resolution: an object
 * met again on the current path is a loop and stops everything with LOOP;
 * an object met again on another branch (a diamond) adds nothing new.  So
 * the work is linear in what is reached, and it is bounded by
 * DIRECTORY_MAX_DEPTH and DIRECTORY_MAX_EXPANSION besides: no input can
 * make it hang.  Pure: no I/O, no locks, no logging.
 */
#include "directory/directory_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/buf.h"

struct seen {
	const void *object;
	bool on_path;
	bool delivered;        /* when done: whether it reached anything */
};

struct resolver {
	const struct directory *dir;
	char separator;
	struct dir_resolution *res;
	struct seen *seen;
	size_t seen_count;
	const char *path[DIRECTORY_MAX_DEPTH + 2];
	size_t depth;
	size_t expansions;
	bool stop;
};

static void stop(struct resolver *r, char *error)
{
	if (r->stop) {
		free(error);
		return;
	}
	r->stop = true;
	r->res->error = error;
}

static void stop_loop(struct resolver *r, const char *again)
{
	struct buf b;
	int ret = 0;

	buf_init(&b, 64 * 1024);
	ret |= buf_append_str(&b, "mail loop: ");
	for (size_t i = 0; i < r->depth; i++)
		ret |= buf_printf(&b, "%s -> ", r->path[i]);
	ret |= buf_append_str(&b, again);
	if (ret != 0)
		panic("directory_resolve: loop message too long");
	stop(r, buf_steal(&b));
}

/* Finds the entry for a local key, exactly or as base+separator+detail.
 * The detail is taken from address, the key's source, to keep its case
 * (a confirmation token, a folder name); the local parts line up since
 * the key is the same local part in lower case. */
static const struct dir_entry *lookup(const struct directory *dir, const char *key,
				      const char *address, char sep, char **detail_r)
{
	const struct dir_entry *e = dir_find_entry(dir, key);
	const char *at = strrchr(key, '@'), *s;
	char *base;

	*detail_r = NULL;
	if (e != NULL || sep == '\0')
		return e;
	s = memchr(key, sep, (size_t)(at - key));
	if (s == NULL || s == key)
		return NULL;
	base = xasprintf("%.*s%s", (int)(s - key), key, at);
	e = dir_find_entry(dir, base);
	free(base);
	if (e != NULL)
		*detail_r = xstrndup(address + (s - key) + 1, (size_t)(at - s - 1));
	return e;
}

static struct dir_rcpt *add_rcpt(struct dir_resolution *res)
{
	struct dir_rcpt *rc;

	res->rcpts = xreallocarray(res->rcpts, res->rcpt_count + 1, sizeof(*res->rcpts));
	rc = &res->rcpts[res->rcpt_count++];
	memset(rc, 0, sizeof(*rc));
	return rc;
}

static void add_local(struct resolver *r, const struct dir_user *u, const char *detail)
{
	struct dir_rcpt *rc;

	for (size_t i = 0; i < r->res->rcpt_count; i++) {
		if (r->res->rcpts[i].kind == DIR_RCPT_LOCAL && r->res->rcpts[i].user == u)
			return;
	}
	rc = add_rcpt(r->res);
	rc->kind = DIR_RCPT_LOCAL;
	rc->user = u;
	rc->address = xstrdup(u->address);
	rc->detail = detail != NULL ? xstrdup(detail) : NULL;
}

static void add_remote(struct resolver *r, const char *address)
{
	struct dir_rcpt *rc;

	for (size_t i = 0; i < r->res->rcpt_count; i++) {
		if (r->res->rcpts[i].kind == DIR_RCPT_REMOTE &&
		    strcasecmp(r->res->rcpts[i].address, address) == 0)
			return;
	}
	rc = add_rcpt(r->res);
	rc->kind = DIR_RCPT_REMOTE;
	rc->address = xstrdup(address);
}

static void add_list(struct resolver *r, const struct dir_list *l)
{
	struct dir_rcpt *rc;

	for (size_t i = 0; i < r->res->rcpt_count; i++) {
		if (r->res->rcpts[i].kind == DIR_RCPT_LIST && r->res->rcpts[i].list == l)
			return;
	}
	rc = add_rcpt(r->res);
	rc->kind = DIR_RCPT_LIST;
	rc->list = l;
	rc->address = xstrdup(l->address);
}

static struct seen *find_seen(struct resolver *r, const void *object)
{
	for (size_t i = 0; i < r->seen_count; i++) {
		if (r->seen[i].object == object)
			return &r->seen[i];
	}
	return NULL;
}

static size_t mark_on_path(struct resolver *r, const void *object, const char *address)
{
	r->seen = xreallocarray(r->seen, r->seen_count + 1, sizeof(*r->seen));
	r->seen[r->seen_count] = (struct seen){ .object = object, .on_path = true };
	r->path[r->depth++] = address;
	return r->seen_count++;
}

static void mark_done(struct resolver *r, size_t i, bool delivered)
{
	r->seen[i].on_path = false;
	r->seen[i].delivered = delivered;
	r->depth--;
}

static bool expand_entry(struct resolver *r, const struct dir_entry *e, const char *detail);

/* One target: local ones are looked up (and expanded), others go out.
 * Returns whether it delivers anywhere. */
static bool expand_address(struct resolver *r, const char *address)
{
	const struct dir_domain *d;
	const struct dir_entry *e;
	const char *reason;
	char *key, *detail;
	bool delivered = false;
	int local;

	if (r->stop)
		return false;
	if (++r->expansions > DIRECTORY_MAX_EXPANSION) {
		stop(r, xasprintf("expansion of %s stopped after %d addresses", r->path[0],
				  DIRECTORY_MAX_EXPANSION));
		return false;
	}
	local = dir_canonical(r->dir, address, &key, &d, &reason);
	if (local < 0) {
		r->res->skipped++;
		return false;
	}
	if (local == 0) {
		add_remote(r, address);
		return true;
	}
	e = lookup(r->dir, key, address, r->separator, &detail);
	if (e == NULL)
		r->res->skipped++;
	else
		delivered = expand_entry(r, e, detail);
	free(detail);
	free(key);
	return delivered;
}

static bool expand_all(struct resolver *r, const struct dir_strings *s)
{
	bool any = false;

	for (size_t i = 0; i < s->count && !r->stop; i++)
		any |= expand_address(r, s->items[i]);
	return any;
}

static bool expand_entry(struct resolver *r, const struct dir_entry *e, const char *detail)
{
	const struct seen *s;
	const char *address;
	bool delivered = false;
	size_t i;

	if (r->stop)
		return false;
	switch (e->kind) {
	case DIR_ENTRY_LIST:
		add_list(r, e->object);
		return true;
	case DIR_ENTRY_LIST_SUBSCRIBE:
	case DIR_ENTRY_LIST_UNSUBSCRIBE:
	case DIR_ENTRY_LIST_BOUNCES:
	case DIR_ENTRY_LIST_MODERATE:
		/* Only meaningful as an envelope recipient of its own. */
		r->res->skipped++;
		return false;
	case DIR_ENTRY_USER:
	case DIR_ENTRY_USER_ALIAS:
		address = ((const struct dir_user *)e->object)->address;
		break;
	case DIR_ENTRY_ALIAS:
		address = ((const struct dir_alias *)e->object)->address;
		break;
	case DIR_ENTRY_GROUP:
	default:
		address = ((const struct dir_group *)e->object)->address;
		break;
	}
	s = find_seen(r, e->object);
	if (s != NULL) {
		if (s->on_path)
			stop_loop(r, address);
		return s->delivered;
	}
	if (r->depth > DIRECTORY_MAX_DEPTH) {
		stop(r, xasprintf("mail loop: %s nests aliases, groups or forwards deeper than %d",
				  r->path[0], DIRECTORY_MAX_DEPTH));
		return false;
	}
	i = mark_on_path(r, e->object, address);
	switch (e->kind) {
	case DIR_ENTRY_USER:
	case DIR_ENTRY_USER_ALIAS: {
		const struct dir_user *u = e->object;

		if (u->forward.count > 0)
			delivered = expand_all(r, &u->forward);
		/* Forwarding that reaches nowhere keeps the mail here: never
		 * lose it to a dangling forward. */
		if (u->forward.count == 0 || u->forward_keep_copy || !delivered) {
			add_local(r, u, detail);
			delivered = true;
		}
		break;
	}
	case DIR_ENTRY_ALIAS:
		delivered = expand_all(r, &((const struct dir_alias *)e->object)->targets);
		break;
	case DIR_ENTRY_GROUP:
		delivered = expand_all(r, &((const struct dir_group *)e->object)->members);
		break;
	default:
		break;
	}
	mark_done(r, i, delivered);
	return delivered;
}

void directory_resolve(const struct directory *dir, const char *address, char separator,
		       struct dir_resolution *res)
{
	struct resolver r = { .dir = dir, .separator = separator, .res = res };
	const struct dir_domain *d;
	const struct dir_entry *e;
	const char *reason;
	char *key = NULL, *detail = NULL;
	int local;

	memset(res, 0, sizeof(*res));
	if (address == NULL || address[0] == '\0') {
		res->kind = DIR_RESOLVE_INVALID;
		res->error = xstrdup("empty address");
		return;
	}
	local = dir_canonical(dir, address, &key, &d, &reason);
	if (local < 0) {
		res->kind = DIR_RESOLVE_INVALID;
		res->error = xasprintf("invalid address: %s", reason);
		return;
	}
	if (local == 0) {
		res->kind = DIR_RESOLVE_NOT_LOCAL;
		return;
	}
	res->domain = d;
	e = lookup(dir, key, address, separator, &detail);
	res->detail = detail;
	r.path[0] = key;
	if (e == NULL) {
		/* The catch-all answers only when nothing else does. */
		if (d->catch_all != NULL) {
			res->catch_all = true;
			r.path[r.depth++] = key;
			(void)expand_address(&r, d->catch_all);
		}
	} else {
		res->entry = e->kind;
		switch (e->kind) {
		case DIR_ENTRY_LIST:
			res->kind = DIR_RESOLVE_LIST;
			res->list = e->object;
			goto out;
		case DIR_ENTRY_LIST_SUBSCRIBE:
		case DIR_ENTRY_LIST_UNSUBSCRIBE:
		case DIR_ENTRY_LIST_BOUNCES:
		case DIR_ENTRY_LIST_MODERATE:
			res->kind = DIR_RESOLVE_LIST_COMMAND;
			res->list = e->object;
			res->command = e->kind == DIR_ENTRY_LIST_SUBSCRIBE ? DIR_LIST_SUBSCRIBE
				       : e->kind == DIR_ENTRY_LIST_UNSUBSCRIBE ? DIR_LIST_UNSUBSCRIBE
				       : e->kind == DIR_ENTRY_LIST_BOUNCES ? DIR_LIST_BOUNCES
									   : DIR_LIST_MODERATE;
			goto out;
		case DIR_ENTRY_USER:
		case DIR_ENTRY_USER_ALIAS:
			res->user = e->object;
			break;
		default:
			break;
		}
		(void)expand_entry(&r, e, detail);
	}
	if (r.stop) {
		res->kind = DIR_RESOLVE_LOOP;
		for (size_t i = 0; i < res->rcpt_count; i++) {
			free(res->rcpts[i].address);
			free(res->rcpts[i].detail);
		}
		free(res->rcpts);
		res->rcpts = NULL;
		res->rcpt_count = 0;
	} else {
		res->kind = res->rcpt_count > 0 ? DIR_RESOLVE_RECIPIENTS : DIR_RESOLVE_UNKNOWN;
	}
out:
	free(r.seen);
	free(key);
}

void directory_resolution_free(struct dir_resolution *res)
{
	for (size_t i = 0; i < res->rcpt_count; i++) {
		free(res->rcpts[i].address);
		free(res->rcpts[i].detail);
	}
	free(res->rcpts);
	free(res->detail);
	free(res->error);
	memset(res, 0, sizeof(*res));
}

/* ---- names -------------------------------------------------------------- */

const char *directory_resolve_kind_str(enum dir_resolve_kind kind)
{
	switch (kind) {
	case DIR_RESOLVE_INVALID: return "invalid";
	case DIR_RESOLVE_NOT_LOCAL: return "not-local";
	case DIR_RESOLVE_UNKNOWN: return "unknown";
	case DIR_RESOLVE_LOOP: return "loop";
	case DIR_RESOLVE_RECIPIENTS: return "recipients";
	case DIR_RESOLVE_LIST: return "list";
	case DIR_RESOLVE_LIST_COMMAND: return "list-command";
	}
	return "?";
}

const char *directory_entry_kind_str(enum dir_entry_kind kind)
{
	switch (kind) {
	case DIR_ENTRY_USER: return "user";
	case DIR_ENTRY_USER_ALIAS: return "user-alias";
	case DIR_ENTRY_ALIAS: return "alias";
	case DIR_ENTRY_GROUP: return "group";
	case DIR_ENTRY_LIST: return "list";
	case DIR_ENTRY_LIST_SUBSCRIBE: return "list-subscribe";
	case DIR_ENTRY_LIST_UNSUBSCRIBE: return "list-unsubscribe";
	case DIR_ENTRY_LIST_BOUNCES: return "list-bounces";
	case DIR_ENTRY_LIST_MODERATE: return "list-moderate";
	}
	return "?";
}

const char *directory_list_posting_str(enum dir_list_posting posting)
{
	switch (posting) {
	case DIR_LIST_POST_MEMBERS: return "members";
	case DIR_LIST_POST_ANYONE: return "anyone";
	case DIR_LIST_POST_MODERATED: return "moderated";
	}
	return "?";
}

const char *directory_list_reply_to_str(enum dir_list_reply_to reply_to)
{
	switch (reply_to) {
	case DIR_LIST_REPLY_TO_NONE: return "none";
	case DIR_LIST_REPLY_TO_LIST: return "list";
	case DIR_LIST_REPLY_TO_SENDER: return "sender";
	}
	return "?";
}

int directory_list_posting_parse(const char *s, enum dir_list_posting *posting_r)
{
	for (int i = DIR_LIST_POST_MEMBERS; i <= DIR_LIST_POST_MODERATED; i++) {
		if (strcasecmp(s, directory_list_posting_str((enum dir_list_posting)i)) == 0) {
			*posting_r = (enum dir_list_posting)i;
			return 0;
		}
	}
	return -1;
}

int directory_list_reply_to_parse(const char *s, enum dir_list_reply_to *reply_to_r)
{
	for (int i = DIR_LIST_REPLY_TO_NONE; i <= DIR_LIST_REPLY_TO_SENDER; i++) {
		if (strcasecmp(s, directory_list_reply_to_str((enum dir_list_reply_to)i)) == 0) {
			*reply_to_r = (enum dir_list_reply_to)i;
			return 0;
		}
	}
	return -1;
}

/* ---- lists -------------------------------------------------------------- */

char *directory_list_id(const struct dir_list *list)
{
	const char *at = strrchr(list->address, '@');
	char *id = xasprintf("%.*s.%s", (int)(at - list->address), list->address, at + 1);
	bool ascii = true, plain = true;
	struct buf b;
	char *out;

	if (list->description[0] == '\0') {
		out = xasprintf("<%s>", id);
		free(id);
		return out;
	}
	for (const char *p = list->description; *p != '\0'; p++) {
		if ((unsigned char)*p >= 0x80)
			ascii = false;
		if (*p == '"' || *p == '\\')
			plain = false;
	}
	buf_init(&b, 4096);
	if (ascii) {
		/* a quoted-string phrase (RFC 5322 3.2.4) */
		int ret = buf_append_char(&b, '"');

		for (const char *p = list->description; *p != '\0'; p++) {
			if (!plain && (*p == '"' || *p == '\\'))
				ret |= buf_append_char(&b, '\\');
			ret |= buf_append_char(&b, *p);
		}
		ret |= buf_printf(&b, "\" <%s>", id);
		if (ret != 0)
			panic("directory_list_id: too long");
	} else {
		/* encoded-words (RFC 2047) for a non-ASCII description: at most
		 * 75 characters each, so 45 bytes of text, never splitting a
		 * UTF-8 sequence */
		const char *p = list->description;
		int ret = 0;

		while (*p != '\0') {
			size_t n = strlen(p);

			if (n > 45) {
				n = 45;
				while (n > 0 && ((unsigned char)p[n] & 0xc0) == 0x80)
					n--;
			}
			ret |= buf_append_str(&b, p == list->description ? "=?UTF-8?B?" : " =?UTF-8?B?");
			ret |= base64_encode_append(&b, p, n);
			ret |= buf_append_str(&b, "?=");
			p += n;
		}
		ret |= buf_printf(&b, " <%s>", id);
		if (ret != 0)
			panic("directory_list_id: too long");
	}
	free(id);
	return buf_steal(&b);
}

static char *list_mailto(const struct dir_list *list, const char *suffix)
{
	const char *at = strrchr(list->address, '@');

	return xasprintf("<mailto:%.*s%s%s>", (int)(at - list->address), list->address, suffix, at);
}

char *directory_list_unsubscribe(const struct dir_list *list)
{
	return list_mailto(list, "-unsubscribe");
}

char *directory_list_subscribe(const struct dir_list *list)
{
	return list_mailto(list, "-subscribe");
}

char *directory_list_post(const struct dir_list *list)
{
	return list_mailto(list, "");
}

/* address in comparable form: the canonical key when local, else lower case. */
static char *comparable(const struct directory *dir, const char *address)
{
	const struct dir_domain *d;
	const char *reason;
	char *key;

	if (dir_canonical(dir, address, &key, &d, &reason) == 1)
		return key;
	free(key);
	return dir_lower_dup(address);
}

static bool has_address(const struct directory *dir, const struct dir_strings *s,
			const char *address)
{
	char *want;
	bool found = false;

	if (address == NULL || address[0] == '\0')
		return false;
	want = comparable(dir, address);
	for (size_t i = 0; i < s->count && !found; i++) {
		char *have = comparable(dir, s->items[i]);

		found = strcmp(have, want) == 0;
		free(have);
	}
	free(want);
	return found;
}

bool directory_list_has_member(const struct directory *dir, const struct dir_list *list,
			       const char *address)
{
	return has_address(dir, &list->members, address);
}

bool directory_list_has_moderator(const struct directory *dir, const struct dir_list *list,
				  const char *address)
{
	return has_address(dir, &list->moderators, address);
}
