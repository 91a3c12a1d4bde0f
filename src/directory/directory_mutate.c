/*
 * Mutators: each makes a deep copy of a snapshot, edits the copy, and runs
 * the same checks a loaded file passes (dir_finish) before handing it
 * back; the original is never touched, so readers need no lock.  What a
 * mutator adds is also checked for existence (local targets and members)
 * and for mail loops, which a hand-edited file only gets warnings for.
 */
#include "directory/directory_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"

/* ---- copying ------------------------------------------------------------ */

static void copy_secrets(struct dir_user *c, const struct dir_user *u)
{
	c->secrets = NULL;
	c->secret_count = 0;
	if (u->secret_count == 0)
		return;
	c->secrets = xmallocarray(u->secret_count, sizeof(*c->secrets));
	for (size_t i = 0; i < u->secret_count; i++) {
		c->secrets[i].mechanism = xstrdup(u->secrets[i].mechanism);
		c->secrets[i].value = xstrdup(u->secrets[i].value);
	}
	c->secret_count = u->secret_count;
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static struct dir_user *user_copy(const struct dir_user *u)
{
	struct dir_user *c = xcalloc(1, sizeof(*c));

	c->name = xstrdup(u->name);
	c->address = xstrdup(u->address);
	c->full_name = xstrdup(u->full_name);
	c->password_scheme = dup_or_null(u->password_scheme);
	c->password_hash = dup_or_null(u->password_hash);
	copy_secrets(c, u);
	c->enabled = u->enabled;
	c->admin = u->admin;
	c->quota_storage = u->quota_storage;
	c->quota_messages = u->quota_messages;
	dir_strings_copy(&c->aliases, &u->aliases);
	dir_strings_copy(&c->forward, &u->forward);
	c->forward_keep_copy = u->forward_keep_copy;
	c->autoreply = u->autoreply;
	c->autoreply.subject = xstrdup(u->autoreply.subject);
	c->autoreply.text = xstrdup(u->autoreply.text);
	c->autoreply.start = dup_or_null(u->autoreply.start);
	c->autoreply.end = dup_or_null(u->autoreply.end);
	c->line = u->line;
	return c;
}

static struct dir_domain *domain_copy(const struct dir_domain *d)
{
	struct dir_domain *nd = xcalloc(1, sizeof(*nd));

	nd->name = xstrdup(d->name);
	nd->primary = d->primary;
	nd->line = d->line;
	dir_strings_copy(&nd->alias_domains, &d->alias_domains);
	nd->catch_all = dup_or_null(d->catch_all);
	nd->realm = dup_or_null(d->realm);
	for (size_t j = 0; j < d->user_count; j++)
		dir_domain_add_user(nd, user_copy(d->users[j]));
	for (size_t j = 0; j < d->alias_count; j++) {
		const struct dir_alias *a = d->aliases[j];
		struct dir_alias *na = xcalloc(1, sizeof(*na));

		na->name = xstrdup(a->name);
		na->address = xstrdup(a->address);
		dir_strings_copy(&na->targets, &a->targets);
		na->line = a->line;
		dir_domain_add_alias(nd, na);
	}
	for (size_t j = 0; j < d->group_count; j++) {
		const struct dir_group *g = d->groups[j];
		struct dir_group *ng = xcalloc(1, sizeof(*ng));

		ng->name = xstrdup(g->name);
		ng->address = xstrdup(g->address);
		dir_strings_copy(&ng->members, &g->members);
		ng->line = g->line;
		dir_domain_add_group(nd, ng);
	}
	for (size_t j = 0; j < d->list_count; j++) {
		const struct dir_list *l = d->lists[j];
		struct dir_list *nl = xcalloc(1, sizeof(*nl));

		nl->name = xstrdup(l->name);
		nl->address = xstrdup(l->address);
		nl->description = xstrdup(l->description);
		nl->posting = l->posting;
		nl->reply_to = l->reply_to;
		nl->subscription_open = l->subscription_open;
		dir_strings_copy(&nl->moderators, &l->moderators);
		dir_strings_copy(&nl->members, &l->members);
		nl->line = l->line;
		dir_domain_add_list(nd, nl);
	}
	return nd;
}

/* A deep copy with refcount 1 and its indexes, optionally without one
 * domain. */
static struct directory *dir_copy(const struct directory *dir, const struct dir_domain *skip)
{
	struct directory *c = directory_new_empty();
	struct dir_check check = { .path = NULL };

	c->path = dup_or_null(dir->path);
	for (size_t i = 0; i < dir->domain_count; i++) {
		if (dir->domains[i] != skip)
			dir_add_domain_ptr(c, domain_copy(dir->domains[i]));
	}
	if (skip == NULL && dir_finish(c, &check) < 0)
		panic("directory: a valid snapshot does not copy: %s", check.error);
	free(check.error);
	return c;
}

/* The copy's domain for dir's domain d (same position). */
static struct dir_domain *domain_in(struct directory *c, const struct directory *dir,
				    const struct dir_domain *d)
{
	for (size_t i = 0; i < dir->domain_count; i++) {
		if (dir->domains[i] == d)
			return c->domains[i];
	}
	panic("directory: domain lost in copy");
}

/* Rechecks c; on success hands it over in *dir_r.  fresh: what the
 * mutation added or changed (named first in a collision), or NULL. */
static int commit_fresh(struct directory *c, const void *fresh, struct directory **dir_r,
			char **error_r)
{
	struct dir_check check = { .path = NULL, .fresh = fresh };

	if (dir_finish(c, &check) < 0) {
		*error_r = check.error;
		directory_unref(&c);
		return -1;
	}
	*dir_r = c;
	return 0;
}

static int commit(struct directory *c, struct directory **dir_r, char **error_r)
{
	return commit_fresh(c, NULL, dir_r, error_r);
}

/* Refuses c (and frees it) if address now resolves to a loop. */
static int check_no_loop(struct directory **c, const char *address, char **error_r)
{
	struct dir_resolution res;
	int ret = 0;

	directory_resolve(*c, address, DIRECTORY_DEFAULT_SEPARATOR, &res);
	if (res.kind == DIR_RESOLVE_LOOP) {
		*error_r = xasprintf("refused: %s would loop: %s", address, res.error);
		directory_unref(c);
		ret = -1;
	}
	directory_resolution_free(&res);
	return ret;
}

/* ---- arguments ---------------------------------------------------------- */

static char *esc(const char *s)
{
	return str_escape(s != NULL ? s : "", DIR_ESC_MAX);
}

static int no_such(char **error_r, const char *what, const char *name)
{
	char *e = esc(name);

	*error_r = xasprintf("no %s %s", what, e);
	free(e);
	return -1;
}

/* The domain and local part of an address for a new or existing entry:
 * bare names mean the primary domain; an alias domain means its domain. */
static int entry_address(const struct directory *dir, const char *address,
			 const struct dir_domain **d_r, char **name_r, char **error_r)
{
	const char *reason, *at;
	char *full, *e;

	if (address == NULL || address[0] == '\0') {
		*error_r = xstrdup("empty address");
		return -1;
	}
	if (strchr(address, '@') == NULL) {
		if (dir->primary == NULL) {
			*error_r = xstrdup("no domain yet: add one first");
			return -1;
		}
		full = xasprintf("%s@%s", address, dir->primary->name);
	} else {
		full = xstrdup(address);
	}
	if (!directory_valid_address(full, &reason)) {
		e = esc(address);
		*error_r = xasprintf("invalid address '%s': %s", e, reason);
		free(e);
		free(full);
		return -1;
	}
	at = strrchr(full, '@');
	*d_r = directory_find_local_domain(dir, at + 1);
	if (*d_r == NULL) {
		*error_r = xasprintf("%s is not one of our domains (add it with domain add)", at + 1);
		free(full);
		return -1;
	}
	*name_r = xstrndup(full, (size_t)(at - full));
	free(full);
	return 0;
}

/* targets[0..n) qualified with domain, validated, without duplicates
 * (among themselves and, when have is given, with what is there). */
static int new_addresses(const char *const *items, size_t n, const char *domain, const char *role,
			 const struct dir_strings *have, const char *owner,
			 struct dir_strings *out, char **error_r)
{
	const char *reason;

	out->items = NULL;
	out->count = 0;
	for (size_t i = 0; i < n; i++) {
		char *full, *e;

		if (items[i] == NULL || items[i][0] == '\0') {
			*error_r = xasprintf("empty %s", role);
			goto fail;
		}
		full = dir_qualify(items[i], domain);
		if (!directory_valid_address(full, &reason)) {
			e = esc(items[i]);
			*error_r = xasprintf("invalid %s '%s': %s", role, e, reason);
			free(e);
			free(full);
			goto fail;
		}
		if (dir_strings_find(out, full) >= 0) {
			*error_r = xasprintf("%s %s given twice", role, full);
			free(full);
			goto fail;
		}
		if (have != NULL && dir_strings_find(have, full) >= 0) {
			*error_r = xasprintf("%s is already %s %s of %s", full,
					     strchr("aeiou", role[0]) != NULL ? "an" : "a", role, owner);
			free(full);
			goto fail;
		}
		dir_strings_add_owned(out, full);
	}
	return 0;
fail:
	dir_strings_free(out);
	return -1;
}

/* Local addresses among s must exist in c. */
static int check_exist(struct directory **c, const struct dir_strings *s, const char *role,
		       char **error_r)
{
	for (size_t i = 0; i < s->count; i++) {
		const struct dir_domain *d;
		const char *reason;
		char *key;
		int r = dir_canonical(*c, s->items[i], &key, &d, &reason);
		bool missing = r == 1 && !dir_key_exists(*c, key);

		free(key);
		if (missing) {
			*error_r = xasprintf("%s %s does not exist", role, s->items[i]);
			directory_unref(c);
			return -1;
		}
	}
	return 0;
}

static int find_user_or_fail(const struct directory *dir, const char *login,
			     const struct dir_user **u_r, char **error_r)
{
	*u_r = directory_find_user(dir, login);
	if (*u_r == NULL)
		return no_such(error_r, "user", login);
	return 0;
}

/* The copy's user for dir's user u. */
static struct dir_user *user_in(struct directory *c, const struct dir_user *u)
{
	struct dir_user *cu = (struct dir_user *)directory_find_user(c, u->address);

	if (cu == NULL)
		panic("directory: user lost in copy");
	return cu;
}

static bool valid_full_name(const char *s)
{
	const char *reason;
	size_t len = strlen(s);

	return dir_valid_text(s, DIRECTORY_MAX_FULL_NAME, false, &reason) &&
	       (len == 0 || (s[0] != ' ' && s[len - 1] != ' '));
}

/* ---- domains ------------------------------------------------------------ */

int directory_add_domain(const struct directory *dir, const char *name, bool primary,
			 struct directory **dir_r, char **error_r)
{
	const struct dir_domain *have;
	struct directory *c;
	struct dir_domain *d;

	*dir_r = NULL;
	if (name == NULL || !directory_valid_domain_name(name)) {
		char *e = esc(name);

		*error_r = xasprintf("invalid domain name '%s'", e);
		free(e);
		return -1;
	}
	if (directory_find_domain(dir, name) != NULL) {
		*error_r = xasprintf("domain %s already exists", name);
		return -1;
	}
	have = directory_find_local_domain(dir, name);
	if (have != NULL) {
		*error_r = xasprintf("%s is already an alias domain of %s", name, have->name);
		return -1;
	}
	if (primary && dir->primary != NULL) {
		*error_r = xasprintf("%s is already the primary domain", dir->primary->name);
		return -1;
	}
	c = dir_copy(dir, NULL);
	d = xcalloc(1, sizeof(*d));
	d->name = xstrdup(name);
	d->primary = primary || dir->domain_count == 0;
	dir_add_domain_ptr(c, d);
	return commit_fresh(c, d, dir_r, error_r);
}

static void count_phrase(struct buf *b, size_t n, const char *one, const char *many)
{
	if (n > 0 && buf_printf(b, "%s%zu %s", b->len > 0 ? ", " : "", n, n == 1 ? one : many) < 0)
		panic("directory: message too long");
}

/* Drops from every domain of c what lies in the removed domain d (its name
 * and alias domains): users' extra addresses and group members. */
static void drop_references(struct directory *c, const struct dir_domain *d)
{
	for (size_t i = 0; i < c->domain_count; i++) {
		struct dir_domain *cd = c->domains[i];

		for (size_t j = 0; j < cd->user_count; j++) {
			struct dir_strings *s = &cd->users[j]->aliases;

			for (size_t k = s->count; k-- > 0;) {
				const char *dom = strrchr(s->items[k], '@') + 1;

				if (strcasecmp(dom, d->name) == 0 || dir_strings_find(&d->alias_domains, dom) >= 0)
					dir_strings_remove_at(s, k);
			}
		}
		for (size_t j = 0; j < cd->group_count; j++) {
			struct dir_strings *s = &cd->groups[j]->members;

			for (size_t k = s->count; k-- > 0;) {
				const char *dom = strrchr(s->items[k], '@') + 1;

				if (strcasecmp(dom, d->name) == 0 || dir_strings_find(&d->alias_domains, dom) >= 0)
					dir_strings_remove_at(s, k);
			}
		}
	}
}

int directory_remove_domain(const struct directory *dir, const char *name, bool force,
			    struct directory **dir_r, char **error_r)
{
	const struct dir_domain *d = name != NULL ? directory_find_domain(dir, name) : NULL;
	struct directory *c;

	*dir_r = NULL;
	if (d == NULL) {
		const struct dir_domain *of = name != NULL ? directory_find_local_domain(dir, name) : NULL;

		if (of != NULL) {
			*error_r = xasprintf("%s is an alias domain of %s: remove it with domain alias "
					     "remove", name, of->name);
			return -1;
		}
		return no_such(error_r, "domain", name);
	}
	if (!force && d->user_count + d->alias_count + d->group_count + d->list_count > 0) {
		struct buf b;

		buf_init(&b, 1024);
		count_phrase(&b, d->user_count, "user", "users");
		count_phrase(&b, d->alias_count, "alias", "aliases");
		count_phrase(&b, d->group_count, "group", "groups");
		count_phrase(&b, d->list_count, "list", "lists");
		*error_r = xasprintf("domain %s still has %s; remove them first, or force the removal",
				     d->name, b.data);
		buf_deinit(&b);
		return -1;
	}
	if (d->primary && dir->domain_count > 1) {
		*error_r = xasprintf("%s is the primary domain; it can only be removed last (make "
				     "another domain primary first)", d->name);
		return -1;
	}
	c = dir_copy(dir, d);
	drop_references(c, d);
	return commit(c, dir_r, error_r);
}

int directory_set_primary_domain(const struct directory *dir, const char *name,
				 struct directory **dir_r, char **error_r)
{
	const struct dir_domain *d = name != NULL ? directory_find_domain(dir, name) : NULL;
	struct directory *c;

	*dir_r = NULL;
	if (d == NULL)
		return no_such(error_r, "domain", name);
	c = dir_copy(dir, NULL);
	for (size_t i = 0; i < c->domain_count; i++)
		c->domains[i]->primary = dir->domains[i] == d;
	return commit(c, dir_r, error_r);
}

int directory_add_domain_alias(const struct directory *dir, const char *domain,
			       const char *alias, struct directory **dir_r, char **error_r)
{
	const struct dir_domain *d = domain != NULL ? directory_find_domain(dir, domain) : NULL;
	const struct dir_domain *have;
	struct dir_domain *cd;
	struct directory *c;

	*dir_r = NULL;
	if (d == NULL)
		return no_such(error_r, "domain", domain);
	if (alias == NULL || !directory_valid_domain_name(alias)) {
		char *e = esc(alias);

		*error_r = xasprintf("invalid alias domain name '%s'", e);
		free(e);
		return -1;
	}
	have = directory_find_local_domain(dir, alias);
	if (have != NULL) {
		*error_r = strcasecmp(have->name, alias) == 0
			? xasprintf("%s is already a domain", alias)
			: xasprintf("%s is already an alias domain of %s", alias, have->name);
		return -1;
	}
	c = dir_copy(dir, NULL);
	cd = domain_in(c, dir, d);
	dir_strings_add_owned(&cd->alias_domains, dir_lower_dup(alias));
	return commit_fresh(c, cd, dir_r, error_r);
}

int directory_remove_domain_alias(const struct directory *dir, const char *alias,
				  struct directory **dir_r, char **error_r)
{
	const struct dir_domain *d = alias != NULL ? directory_find_local_domain(dir, alias) : NULL;
	struct dir_domain *cd;
	struct directory *c;

	*dir_r = NULL;
	if (d == NULL || strcasecmp(d->name, alias) == 0)
		return no_such(error_r, "alias domain", alias);
	c = dir_copy(dir, NULL);
	cd = domain_in(c, dir, d);
	dir_strings_remove_at(&cd->alias_domains, (size_t)dir_strings_find(&cd->alias_domains, alias));
	return commit(c, dir_r, error_r);
}

int directory_set_realm(const struct directory *dir, const char *domain, const char *realm,
			struct directory **dir_r, char **error_r)
{
	const struct dir_domain *d = domain != NULL ? directory_find_local_domain(dir, domain) : NULL;
	struct dir_domain *cd;
	struct directory *c;

	*dir_r = NULL;
	if (d == NULL)
		return no_such(error_r, "domain", domain);
	if (realm != NULL && !directory_valid_realm(realm)) {
		*error_r = xasprintf("domain %s: the realm must be 1 to 253 letters, digits, '.', "
				     "'-' or '_'", d->name);
		return -1;
	}
	c = dir_copy(dir, NULL);
	cd = domain_in(c, dir, d);
	free(cd->realm);
	cd->realm = dup_or_null(realm);
	return commit(c, dir_r, error_r);
}

int directory_set_catch_all(const struct directory *dir, const char *domain, const char *target,
			    struct directory **dir_r, char **error_r)
{
	const struct dir_domain *d = domain != NULL ? directory_find_local_domain(dir, domain) : NULL;
	struct dir_strings t = { .items = NULL, .count = 0 };
	struct dir_domain *cd;
	struct directory *c;

	*dir_r = NULL;
	if (d == NULL)
		return no_such(error_r, "domain", domain);
	if (target != NULL &&
	    new_addresses(&target, 1, d->name, "catch-all target", NULL, NULL, &t, error_r) < 0)
		return -1;
	c = dir_copy(dir, NULL);
	cd = domain_in(c, dir, d);
	free(cd->catch_all);
	cd->catch_all = t.count > 0 ? xstrdup(t.items[0]) : NULL;
	if (commit(c, dir_r, error_r) < 0 || check_exist(dir_r, &t, "catch-all target", error_r) < 0) {
		dir_strings_free(&t);
		return -1;
	}
	dir_strings_free(&t);
	return 0;
}

/* ---- users -------------------------------------------------------------- */

int directory_add_user(const struct directory *dir, const struct dir_user_spec *spec,
		       struct directory **dir_r, char **error_r)
{
	const struct dir_domain *d;
	struct directory *c;
	struct dir_user *u;
	struct dir_secret *secrets = NULL;
	size_t secret_count = 0;
	const char *reason;
	char *hash = NULL, *address;
	bool legacy;

	*dir_r = NULL;
	d = spec->domain != NULL ? directory_find_local_domain(dir, spec->domain) : dir->primary;
	if (d == NULL) {
		char *e = esc(spec->domain);

		*error_r = spec->domain != NULL ? xasprintf("no domain %s", e)
			: xstrdup("no domain yet: add one first");
		free(e);
		return -1;
	}
	if (spec->name == NULL || !directory_valid_user_name(spec->name, &reason)) {
		char *e = esc(spec->name);

		*error_r = xasprintf("invalid user name '%s': %s", e,
				     spec->name != NULL ? reason : "empty");
		free(e);
		return -1;
	}
	address = dir_make_address(spec->name, d->name);
	if (directory_find_user(dir, address) != NULL) {
		*error_r = xasprintf("user %s already exists", address);
		free(address);
		return -1;
	}
	if (spec->full_name != NULL && !valid_full_name(spec->full_name)) {
		*error_r = xasprintf("invalid full name: control characters, invalid UTF-8, leading or "
				     "trailing spaces, or longer than %d bytes", DIRECTORY_MAX_FULL_NAME);
		free(address);
		return -1;
	}
	if (spec->quota_storage > INT64_MAX || spec->quota_messages > INT64_MAX) {
		*error_r = xstrdup("quota too large");
		free(address);
		return -1;
	}
	if (spec->password != NULL && spec->password_hash != NULL) {
		*error_r = xstrdup("give a password or a password hash, not both");
		free(address);
		return -1;
	}
	if (spec->password_hash != NULL) {
		if (!dir_check_scheme(strncmp(spec->password_hash, "$y$", 3) == 0 ? "yescrypt" : "crypt",
				      spec->password_hash, &legacy, &reason)) {
			*error_r = xstrdup(reason);
			free(address);
			return -1;
		}
		hash = xstrdup(spec->password_hash);
	}
	if (spec->password != NULL &&
	    (directory_hash_password(spec->password, &hash, error_r) < 0 ||
	     dir_derive_secrets(spec->name, d->name, spec->password, &secrets, &secret_count,
				error_r) < 0)) {
		free(hash);
		free(address);
		return -1;
	}
	c = dir_copy(dir, NULL);
	u = xcalloc(1, sizeof(*u));
	u->name = xstrdup(spec->name);
	u->address = address;
	u->full_name = xstrdup(spec->full_name != NULL ? spec->full_name : "");
	if (hash != NULL) {
		u->password_scheme = xstrdup(strncmp(hash, "$y$", 3) == 0 ? "yescrypt" : "crypt");
		u->password_hash = hash;
	}
	u->secrets = secrets;
	u->secret_count = secret_count;
	u->enabled = !spec->disabled;
	u->admin = spec->admin;
	u->quota_storage = spec->quota_storage;
	u->quota_messages = spec->quota_messages;
	u->autoreply.subject = xstrdup("");
	u->autoreply.text = xstrdup("");
	u->autoreply.end_time = INT64_MAX;
	dir_domain_add_user(domain_in(c, dir, d), u);
	return commit_fresh(c, u, dir_r, error_r);
}

/* Whether member (an address) means user u in dir. */
static bool means_user(const struct directory *dir, const char *member, const struct dir_user *u)
{
	const struct dir_domain *d;
	const struct dir_entry *e;
	const char *reason;
	char *key;
	bool yes = false;

	if (dir_canonical(dir, member, &key, &d, &reason) == 1) {
		e = dir_find_entry(dir, key);
		yes = e != NULL && (e->kind == DIR_ENTRY_USER || e->kind == DIR_ENTRY_USER_ALIAS) &&
		      e->object == u;
	}
	free(key);
	return yes;
}

static void drop_user_from(const struct directory *dir, struct dir_strings *s,
			   const struct dir_user *u)
{
	for (size_t k = s->count; k-- > 0;) {
		if (means_user(dir, s->items[k], u))
			dir_strings_remove_at(s, k);
	}
}

int directory_remove_user(const struct directory *dir, const char *login,
			  struct directory **dir_r, char **error_r)
{
	const struct dir_user *u;
	struct directory *c;
	struct dir_domain *cd;

	*dir_r = NULL;
	if (find_user_or_fail(dir, login, &u, error_r) < 0)
		return -1;
	/* A moderated list must keep a moderator. */
	for (size_t i = 0; i < dir->domain_count; i++) {
		for (size_t j = 0; j < dir->domains[i]->list_count; j++) {
			const struct dir_list *l = dir->domains[i]->lists[j];
			size_t left = 0;

			if (l->posting != DIR_LIST_POST_MODERATED)
				continue;
			for (size_t k = 0; k < l->moderators.count; k++)
				left += !means_user(dir, l->moderators.items[k], u);
			if (left == 0) {
				*error_r = xasprintf("user %s is the only moderator of list %s; add "
						     "another moderator first", u->address, l->address);
				return -1;
			}
		}
	}
	c = dir_copy(dir, NULL);
	/* Membership is the user's: it goes with the user.  The index of c
	 * still holds the user while we look. */
	for (size_t i = 0; i < c->domain_count; i++) {
		cd = c->domains[i];
		for (size_t j = 0; j < cd->group_count; j++)
			drop_user_from(c, &cd->groups[j]->members, user_in(c, u));
		for (size_t j = 0; j < cd->list_count; j++) {
			drop_user_from(c, &cd->lists[j]->members, user_in(c, u));
			drop_user_from(c, &cd->lists[j]->moderators, user_in(c, u));
		}
	}
	cd = domain_in(c, dir, u->domain);
	for (size_t j = 0; j < cd->user_count; j++) {
		if (strcmp(cd->users[j]->address, u->address) == 0) {
			dir_user_free(cd->users[j]);
			memmove(&cd->users[j], &cd->users[j + 1],
				(cd->user_count - j - 1) * sizeof(*cd->users));
			cd->user_count--;
			break;
		}
	}
	return commit(c, dir_r, error_r);
}

static void set_secrets(struct dir_user *u, struct dir_secret *secrets, size_t n)
{
	directory_secrets_free(u->secrets, u->secret_count);
	u->secrets = secrets;
	u->secret_count = n;
}

int directory_set_password(const struct directory *dir, const char *login,
			   const char *password, struct directory **dir_r, char **error_r)
{
	const struct dir_user *u;
	struct dir_secret *secrets = NULL;
	size_t n = 0;
	struct directory *c;
	struct dir_user *cu;
	char *hash;

	*dir_r = NULL;
	if (find_user_or_fail(dir, login, &u, error_r) < 0)
		return -1;
	if (password == NULL) {
		*error_r = xstrdup("empty password");
		return -1;
	}
	if (directory_hash_password(password, &hash, error_r) < 0)
		return -1;
	if (dir_derive_secrets(u->name, u->domain->name, password, &secrets, &n, error_r) < 0) {
		free(hash);
		return -1;
	}
	c = dir_copy(dir, NULL);
	/* c is ours and not yet published: editing it in place is fine. */
	cu = user_in(c, u);
	free(cu->password_scheme);
	free(cu->password_hash);
	cu->password_scheme = xstrdup("yescrypt");
	cu->password_hash = hash;
	/* The old secrets were derived from the old password. */
	set_secrets(cu, secrets, n);
	return commit(c, dir_r, error_r);
}

int directory_set_credentials(const struct directory *dir, const char *login, const char *hash,
			      const struct dir_secret *secrets, size_t n, struct directory **dir_r,
			      char **error_r)
{
	const struct dir_user *u;
	struct dir_secret *copy = NULL;
	const char *reason;
	struct directory *c;
	struct dir_user *cu;
	bool legacy;

	*dir_r = NULL;
	if (find_user_or_fail(dir, login, &u, error_r) < 0)
		return -1;
	if (hash == NULL || !dir_check_scheme(strncmp(hash, "$y$", 3) == 0 ? "yescrypt" : "crypt",
					      hash, &legacy, &reason)) {
		*error_r = xstrdup(hash == NULL ? "no password hash" : reason);
		return -1;
	}
	if (n > DIRECTORY_MAX_SECRETS) {
		*error_r = xasprintf("more than %d secrets", DIRECTORY_MAX_SECRETS);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (secrets[i].mechanism == NULL || !dir_valid_mechanism(secrets[i].mechanism)) {
			*error_r = xstrdup("invalid secret mechanism name (A-Z, 0-9, '-', '_')");
			return -1;
		}
		if (secrets[i].value == NULL || !dir_valid_secret_value(secrets[i].value)) {
			*error_r = xasprintf("secret for %s is empty, too long or not printable ASCII",
					     secrets[i].mechanism);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcasecmp(secrets[i].mechanism, secrets[j].mechanism) == 0) {
				*error_r = xasprintf("secret for %s given twice", secrets[i].mechanism);
				return -1;
			}
		}
	}
	if (n > 0) {
		copy = xmallocarray(n, sizeof(*copy));
		for (size_t i = 0; i < n; i++) {
			copy[i].mechanism = xstrdup(secrets[i].mechanism);
			copy[i].value = xstrdup(secrets[i].value);
		}
	}
	c = dir_copy(dir, NULL);
	cu = user_in(c, u);
	free(cu->password_scheme);
	free(cu->password_hash);
	cu->password_scheme = xstrdup(strncmp(hash, "$y$", 3) == 0 ? "yescrypt" : "crypt");
	cu->password_hash = xstrdup(hash);
	set_secrets(cu, copy, n);
	return commit(c, dir_r, error_r);
}

int directory_update_user(const struct directory *dir, const char *login,
			  const struct dir_user_update *update, struct directory **dir_r,
			  char **error_r)
{
	const struct dir_user *u;
	struct directory *c;
	struct dir_user *cu;

	*dir_r = NULL;
	if (find_user_or_fail(dir, login, &u, error_r) < 0)
		return -1;
	if (update->full_name != NULL && !valid_full_name(update->full_name)) {
		*error_r = xasprintf("invalid full name: control characters, invalid UTF-8, leading or "
				     "trailing spaces, or longer than %d bytes", DIRECTORY_MAX_FULL_NAME);
		return -1;
	}
	if (update->quota_storage < -1 || update->quota_messages < -1) {
		*error_r = xstrdup("a quota cannot be negative");
		return -1;
	}
	c = dir_copy(dir, NULL);
	cu = user_in(c, u);
	if (update->full_name != NULL) {
		free(cu->full_name);
		cu->full_name = xstrdup(update->full_name);
	}
	if (update->admin != DIR_KEEP)
		cu->admin = update->admin == DIR_SET_YES;
	if (update->enabled != DIR_KEEP)
		cu->enabled = update->enabled == DIR_SET_YES;
	if (update->quota_storage >= 0)
		cu->quota_storage = (uint64_t)update->quota_storage;
	if (update->quota_messages >= 0)
		cu->quota_messages = (uint64_t)update->quota_messages;
	return commit(c, dir_r, error_r);
}

int directory_add_user_alias(const struct directory *dir, const char *login,
			     const char *address, struct directory **dir_r, char **error_r)
{
	const struct dir_user *u;
	struct dir_strings add;
	struct directory *c;
	struct dir_user *cu;

	*dir_r = NULL;
	if (find_user_or_fail(dir, login, &u, error_r) < 0 ||
	    new_addresses(&address, 1, u->domain->name, "extra address", &u->aliases, u->address,
			  &add, error_r) < 0)
		return -1;
	c = dir_copy(dir, NULL);
	cu = user_in(c, u);
	dir_strings_add_owned(&cu->aliases, add.items[0]);
	free(add.items);
	return commit_fresh(c, cu, dir_r, error_r);
}

int directory_remove_user_alias(const struct directory *dir, const char *login,
				const char *address, struct directory **dir_r, char **error_r)
{
	const struct dir_user *u;
	struct directory *c;
	struct dir_user *cu;
	char *full;
	long i;

	*dir_r = NULL;
	if (find_user_or_fail(dir, login, &u, error_r) < 0)
		return -1;
	if (address == NULL || address[0] == '\0') {
		*error_r = xstrdup("empty extra address");
		return -1;
	}
	full = dir_qualify(address, u->domain->name);
	i = dir_strings_find(&u->aliases, full);
	if (i < 0) {
		char *e = esc(full);

		*error_r = xasprintf("%s is not an extra address of user %s", e, u->address);
		free(e);
		free(full);
		return -1;
	}
	free(full);
	c = dir_copy(dir, NULL);
	cu = user_in(c, u);
	dir_strings_remove_at(&cu->aliases, (size_t)i);
	return commit(c, dir_r, error_r);
}

int directory_set_forward(const struct directory *dir, const char *login,
			  const char *const *targets, size_t n, bool keep_copy,
			  struct directory **dir_r, char **error_r)
{
	const struct dir_user *u;
	struct dir_strings t;
	struct directory *c;
	struct dir_user *cu;
	char *address;
	int ret;

	*dir_r = NULL;
	if (find_user_or_fail(dir, login, &u, error_r) < 0 ||
	    new_addresses(targets, n, u->domain->name, "forwarding target", NULL, NULL, &t,
			  error_r) < 0)
		return -1;
	c = dir_copy(dir, NULL);
	cu = user_in(c, u);
	dir_strings_free(&cu->forward);
	cu->forward = t;
	cu->forward_keep_copy = n > 0 && keep_copy;
	address = xstrdup(u->address);
	ret = commit(c, dir_r, error_r);
	if (ret == 0) {
		const struct dir_user *nu = directory_find_user(*dir_r, address);

		if (check_exist(dir_r, &nu->forward, "forwarding target", error_r) < 0 ||
		    check_no_loop(dir_r, address, error_r) < 0)
			ret = -1;
	}
	free(address);
	return ret;
}

/* Subject or text: CRLF and CR become LF, white space trimmed at both ends. */
static char *normalize_text(const char *s)
{
	char *out = xmalloc(strlen(s) + 1), *o = out, *t;

	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '\r') {
			*o++ = '\n';
			if (p[1] == '\n')
				p++;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	t = xstrdup(str_trim(out));
	free(out);
	return t;
}

int directory_set_autoreply(const struct directory *dir, const char *login,
			    const struct dir_autoreply_spec *spec, struct directory **dir_r,
			    char **error_r)
{
	const struct dir_user *u;
	struct dir_autoreply a;
	struct directory *c;
	struct dir_user *cu;
	const char *reason;
	int64_t t0, t1;

	*dir_r = NULL;
	if (find_user_or_fail(dir, login, &u, error_r) < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.enabled = spec->enabled;
	a.subject = normalize_text(spec->subject != NULL ? spec->subject : u->autoreply.subject);
	a.text = normalize_text(spec->text != NULL ? spec->text : u->autoreply.text);
	a.start_time = u->autoreply.start_time;
	a.end_time = u->autoreply.end_time;
	if (!dir_valid_text(a.subject, DIRECTORY_MAX_SUBJECT, false, &reason)) {
		*error_r = xasprintf("auto-reply subject: %s", reason);
		goto fail;
	}
	if (!dir_valid_text(a.text, DIRECTORY_MAX_TEXT, true, &reason)) {
		*error_r = xasprintf("auto-reply text: %s", reason);
		goto fail;
	}
	if (spec->start == NULL) {
		a.start = dup_or_null(u->autoreply.start);
	} else if (spec->start[0] == '\0') {
		a.start_time = 0;
	} else if (directory_parse_date(spec->start, &t0, &t1) < 0) {
		char *e = esc(spec->start);

		*error_r = xasprintf("auto-reply start '%s' is not a date (YYYY-MM-DD or "
				     "YYYY-MM-DDTHH:MM:SSZ)", e);
		free(e);
		goto fail;
	} else {
		a.start = xstrdup(spec->start);
		a.start_time = t0;
	}
	if (spec->end == NULL) {
		a.end = dup_or_null(u->autoreply.end);
	} else if (spec->end[0] == '\0') {
		a.end_time = INT64_MAX;
	} else if (directory_parse_date(spec->end, &t0, &t1) < 0) {
		char *e = esc(spec->end);

		*error_r = xasprintf("auto-reply end '%s' is not a date (YYYY-MM-DD or "
				     "YYYY-MM-DDTHH:MM:SSZ)", e);
		free(e);
		goto fail;
	} else {
		a.end = xstrdup(spec->end);
		a.end_time = t1;
	}
	if (a.start != NULL && a.end != NULL && a.end_time <= a.start_time) {
		*error_r = xstrdup("auto-reply ends before it starts");
		goto fail;
	}
	c = dir_copy(dir, NULL);
	cu = user_in(c, u);
	dir_autoreply_free(&cu->autoreply);
	cu->autoreply = a;
	return commit(c, dir_r, error_r);
fail:
	dir_autoreply_free(&a);
	return -1;
}

/* ---- aliases, groups, lists --------------------------------------------- */

int directory_add_alias(const struct directory *dir, const char *address,
			const char *const *targets, size_t n, struct directory **dir_r,
			char **error_r)
{
	const struct dir_domain *d;
	const struct dir_alias *have;
	struct dir_alias *ca;
	struct dir_strings t;
	struct directory *c;
	char *name, *key;
	int ret;

	*dir_r = NULL;
	if (entry_address(dir, address, &d, &name, error_r) < 0)
		return -1;
	key = dir_make_address(name, d->name);
	have = directory_find_alias(dir, key);
	if (n == 0) {
		*error_r = have != NULL ? xasprintf("alias %s already exists", key)
					: xasprintf("alias %s needs at least one target", key);
		goto fail;
	}
	if (new_addresses(targets, n, d->name, "target", have != NULL ? &have->targets : NULL, key,
			  &t, error_r) < 0)
		goto fail;
	c = dir_copy(dir, NULL);
	if (have != NULL) {
		ca = (struct dir_alias *)directory_find_alias(c, key);
		for (size_t i = 0; i < t.count; i++)
			dir_strings_add(&ca->targets, t.items[i]);
	} else {
		ca = xcalloc(1, sizeof(*ca));
		ca->name = name;
		name = NULL;
		ca->address = xstrdup(key);
		dir_strings_copy(&ca->targets, &t);
		dir_domain_add_alias(domain_in(c, dir, d), ca);
	}
	ret = commit_fresh(c, ca, dir_r, error_r);
	if (ret == 0 && (check_exist(dir_r, &t, "target", error_r) < 0 ||
			 check_no_loop(dir_r, key, error_r) < 0))
		ret = -1;
	dir_strings_free(&t);
	free(name);
	free(key);
	return ret;
fail:
	free(name);
	free(key);
	return -1;
}

/* Removes items[0..n) (qualified with domain) from s; each must be there. */
static int remove_items(struct dir_strings *s, const char *const *items, size_t n,
			const char *domain, const char *role, const char *owner, char **error_r)
{
	for (size_t i = 0; i < n; i++) {
		char *full = dir_qualify(items[i] != NULL ? items[i] : "", domain);
		long k = dir_strings_find(s, full);

		if (k < 0) {
			char *e = esc(full);

			*error_r = xasprintf("%s is not a %s of %s", e, role, owner);
			free(e);
			free(full);
			return -1;
		}
		dir_strings_remove_at(s, (size_t)k);
		free(full);
	}
	return 0;
}

/* Removes the entry at index i of an array of pointers. */
#define REMOVE_AT(array, count, i, free_fn) do { \
	free_fn((array)[i]); \
	memmove(&(array)[i], &(array)[(i) + 1], ((count) - (i) - 1) * sizeof(*(array))); \
	(count)--; \
} while (0)

int directory_remove_alias(const struct directory *dir, const char *address,
			   const char *const *targets, size_t n, struct directory **dir_r,
			   char **error_r)
{
	const struct dir_alias *a = directory_find_alias(dir, address != NULL ? address : "");
	struct dir_domain *cd;
	struct directory *c;

	*dir_r = NULL;
	if (a == NULL)
		return no_such(error_r, "alias", address);
	c = dir_copy(dir, NULL);
	cd = domain_in(c, dir, a->domain);
	for (size_t j = 0; j < cd->alias_count; j++) {
		struct dir_alias *ca = cd->aliases[j];

		if (strcmp(ca->address, a->address) != 0)
			continue;
		if (remove_items(&ca->targets, targets, n, cd->name, "target", a->address,
				 error_r) < 0) {
			directory_unref(&c);
			return -1;
		}
		if (n == 0 || ca->targets.count == 0)
			REMOVE_AT(cd->aliases, cd->alias_count, j, dir_alias_free);
		break;
	}
	return commit(c, dir_r, error_r);
}

int directory_add_group(const struct directory *dir, const char *address,
			const char *const *members, size_t n, struct directory **dir_r,
			char **error_r)
{
	const struct dir_domain *d;
	const struct dir_group *have;
	struct dir_group *cg;
	struct dir_strings m;
	struct directory *c;
	char *name, *key;
	int ret;

	*dir_r = NULL;
	if (entry_address(dir, address, &d, &name, error_r) < 0)
		return -1;
	key = dir_make_address(name, d->name);
	have = directory_find_group(dir, key);
	if (have != NULL && n == 0) {
		*error_r = xasprintf("group %s already exists", key);
		free(name);
		free(key);
		return -1;
	}
	if (new_addresses(members, n, d->name, "member", have != NULL ? &have->members : NULL, key,
			  &m, error_r) < 0) {
		free(name);
		free(key);
		return -1;
	}
	c = dir_copy(dir, NULL);
	if (have != NULL) {
		cg = (struct dir_group *)directory_find_group(c, key);
		for (size_t i = 0; i < m.count; i++)
			dir_strings_add(&cg->members, m.items[i]);
	} else {
		cg = xcalloc(1, sizeof(*cg));
		cg->name = name;
		name = NULL;
		cg->address = xstrdup(key);
		dir_strings_copy(&cg->members, &m);
		dir_domain_add_group(domain_in(c, dir, d), cg);
	}
	ret = commit_fresh(c, cg, dir_r, error_r);
	if (ret == 0 && (check_exist(dir_r, &m, "member", error_r) < 0 ||
			 check_no_loop(dir_r, key, error_r) < 0))
		ret = -1;
	dir_strings_free(&m);
	free(name);
	free(key);
	return ret;
}

int directory_remove_group(const struct directory *dir, const char *address,
			   const char *const *members, size_t n, struct directory **dir_r,
			   char **error_r)
{
	const struct dir_group *g = directory_find_group(dir, address != NULL ? address : "");
	struct dir_domain *cd;
	struct directory *c;

	*dir_r = NULL;
	if (g == NULL)
		return no_such(error_r, "group", address);
	c = dir_copy(dir, NULL);
	cd = domain_in(c, dir, g->domain);
	for (size_t j = 0; j < cd->group_count; j++) {
		struct dir_group *cg = cd->groups[j];

		if (strcmp(cg->address, g->address) != 0)
			continue;
		if (remove_items(&cg->members, members, n, cd->name, "member", g->address,
				 error_r) < 0) {
			directory_unref(&c);
			return -1;
		}
		if (n == 0)
			REMOVE_AT(cd->groups, cd->group_count, j, dir_group_free);
		break;
	}
	return commit(c, dir_r, error_r);
}

int directory_add_list(const struct directory *dir, const struct dir_list_spec *spec,
		       struct directory **dir_r, char **error_r)
{
	const struct dir_domain *d;
	const struct dir_list *have;
	struct dir_strings m = { NULL, 0 }, mod = { NULL, 0 };
	struct dir_list *cl;
	struct directory *c;
	const char *reason;
	char *name, *key;
	bool changes;
	int ret = -1;

	*dir_r = NULL;
	if (entry_address(dir, spec->address, &d, &name, error_r) < 0)
		return -1;
	key = dir_make_address(name, d->name);
	have = directory_find_list(dir, key);
	changes = spec->description != NULL || spec->posting >= 0 || spec->reply_to >= 0 ||
		  spec->subscription_open >= 0 || spec->member_count > 0 || spec->moderator_count > 0;
	if (have != NULL && !changes) {
		*error_r = xasprintf("list %s already exists", key);
		goto out;
	}
	if (spec->description != NULL &&
	    !dir_valid_text(spec->description, DIRECTORY_MAX_DESCRIPTION, false, &reason)) {
		*error_r = xasprintf("list description: %s", reason);
		goto out;
	}
	if (spec->posting > DIR_LIST_POST_MODERATED || spec->reply_to > DIR_LIST_REPLY_TO_SENDER ||
	    spec->subscription_open > 1) {
		*error_r = xstrdup("invalid list policy");
		goto out;
	}
	if (new_addresses(spec->members, spec->member_count, d->name, "member",
			  have != NULL ? &have->members : NULL, key, &m, error_r) < 0 ||
	    new_addresses(spec->moderators, spec->moderator_count, d->name, "moderator",
			  have != NULL ? &have->moderators : NULL, key, &mod, error_r) < 0)
		goto out;
	c = dir_copy(dir, NULL);
	if (have != NULL) {
		cl = (struct dir_list *)directory_find_list(c, key);
	} else {
		cl = xcalloc(1, sizeof(*cl));
		cl->name = name;
		name = NULL;
		cl->address = xstrdup(key);
		cl->description = xstrdup("");
		cl->subscription_open = true;
		dir_domain_add_list(domain_in(c, dir, d), cl);
	}
	if (spec->description != NULL) {
		free(cl->description);
		cl->description = xstrdup(spec->description);
	}
	if (spec->posting >= 0)
		cl->posting = (enum dir_list_posting)spec->posting;
	if (spec->reply_to >= 0)
		cl->reply_to = (enum dir_list_reply_to)spec->reply_to;
	if (spec->subscription_open >= 0)
		cl->subscription_open = spec->subscription_open == 1;
	for (size_t i = 0; i < m.count; i++)
		dir_strings_add(&cl->members, m.items[i]);
	for (size_t i = 0; i < mod.count; i++)
		dir_strings_add(&cl->moderators, mod.items[i]);
	ret = commit_fresh(c, cl, dir_r, error_r);
	if (ret == 0 && (check_exist(dir_r, &m, "member", error_r) < 0 ||
			 check_exist(dir_r, &mod, "moderator", error_r) < 0))
		ret = -1;
out:
	dir_strings_free(&m);
	dir_strings_free(&mod);
	free(name);
	free(key);
	return ret;
}

int directory_remove_list(const struct directory *dir, const char *address,
			  const char *const *members, size_t n,
			  const char *const *moderators, size_t m,
			  struct directory **dir_r, char **error_r)
{
	const struct dir_list *l = directory_find_list(dir, address != NULL ? address : "");
	struct dir_domain *cd;
	struct directory *c;

	*dir_r = NULL;
	if (l == NULL)
		return no_such(error_r, "list", address);
	c = dir_copy(dir, NULL);
	cd = domain_in(c, dir, l->domain);
	for (size_t j = 0; j < cd->list_count; j++) {
		struct dir_list *cl = cd->lists[j];

		if (strcmp(cl->address, l->address) != 0)
			continue;
		if (remove_items(&cl->members, members, n, cd->name, "member", l->address,
				 error_r) < 0 ||
		    remove_items(&cl->moderators, moderators, m, cd->name, "moderator", l->address,
				 error_r) < 0) {
			directory_unref(&c);
			return -1;
		}
		if (n == 0 && m == 0)
			REMOVE_AT(cd->lists, cd->list_count, j, dir_list_free);
		break;
	}
	return commit(c, dir_r, error_r);
}
