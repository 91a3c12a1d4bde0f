/*
 * The directory's administration commands as JSON requests (see
 * directory_cmd.h and docs/control-protocol.md): argument checks, the
 * mutator or the lookup, and the reply.
 */
#include "directory/directory_cmd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/str.h"

#define ESC_MAX 64
/* Most items one request may name (targets, members): far above any
 * real command line, a bound on what one request can make us do. */
#define CMD_MAX_ITEMS 10000

/* ---- replies ------------------------------------------------------------ */

static json_t *jstr(const char *s)
{
	json_t *j = json_string(s != NULL ? s : "");

	/* Everything in a snapshot is UTF-8; this only guards the reply. */
	return j != NULL ? j : json_string("?");
}

static json_t *ok_reply(void)
{
	return json_pack("{s:b}", "ok", 1);
}

static json_t *err_reply(const char *fmt, ...) PETREL_PRINTF(1, 2);
static json_t *err_reply(const char *fmt, ...)
{
	json_t *reply = json_pack("{s:b}", "ok", 0);
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		panic("directory_cmd: out of memory");
	va_end(ap);
	json_object_set_new(reply, "error", jstr(msg));
	free(msg);
	return reply;
}

/* Takes over error (a mutator's message). */
static json_t *err_take(char *error)
{
	json_t *reply = err_reply("%s", error != NULL ? error : "request failed");

	free(error);
	return reply;
}

static json_t *done(const char *fmt, ...) PETREL_PRINTF(1, 2);
static json_t *done(const char *fmt, ...)
{
	json_t *reply = ok_reply();
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		panic("directory_cmd: out of memory");
	va_end(ap);
	json_object_set_new(reply, "message", jstr(msg));
	free(msg);
	return reply;
}

/* ---- arguments ---------------------------------------------------------- */

struct args {
	json_t *request;
	json_t *error;        /* set by the first failing getter */
	const char **items;   /* arrays returned by get_list, freed at the end */
	size_t item_arrays;
	const char ***arrays;
};

static const char *get_str(struct args *a, const char *key, bool required)
{
	json_t *v = json_object_get(a->request, key);

	if (a->error != NULL)
		return NULL;
	if (v == NULL || json_is_null(v)) {
		if (required)
			a->error = err_reply("missing \"%s\"", key);
		return NULL;
	}
	if (!json_is_string(v)) {
		a->error = err_reply("\"%s\" must be a string", key);
		return NULL;
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		a->error = err_reply("\"%s\" contains a NUL byte", key);
		return NULL;
	}
	return json_string_value(v);
}

/* -1: absent; 0/1 */
static int get_bool(struct args *a, const char *key)
{
	json_t *v = json_object_get(a->request, key);

	if (a->error != NULL || v == NULL || json_is_null(v))
		return -1;
	if (!json_is_boolean(v)) {
		a->error = err_reply("\"%s\" must be true or false", key);
		return -1;
	}
	return json_is_true(v) ? 1 : 0;
}

/* -1: absent */
static int64_t get_count(struct args *a, const char *key)
{
	json_t *v = json_object_get(a->request, key);

	if (a->error != NULL || v == NULL || json_is_null(v))
		return -1;
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		a->error = err_reply("\"%s\" must be a number, 0 or more", key);
		return -1;
	}
	return (int64_t)json_integer_value(v);
}

/* An array of strings; *n_r = 0 and NULL when absent.  The pointers are
 * the request's, valid while it lives. */
static const char *const *get_list(struct args *a, const char *key, size_t *n_r)
{
	json_t *v = json_object_get(a->request, key), *item;
	const char **out;
	size_t i;

	*n_r = 0;
	if (a->error != NULL || v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_array(v)) {
		a->error = err_reply("\"%s\" must be an array of strings", key);
		return NULL;
	}
	if (json_array_size(v) > CMD_MAX_ITEMS) {
		a->error = err_reply("\"%s\" has more than %d items", key, CMD_MAX_ITEMS);
		return NULL;
	}
	if (json_array_size(v) == 0)
		return NULL;
	out = xmallocarray(json_array_size(v), sizeof(*out));
	json_array_foreach(v, i, item) {
		if (!json_is_string(item) ||
		    strlen(json_string_value(item)) != json_string_length(item)) {
			a->error = err_reply("\"%s\" must be an array of strings", key);
			free(out);
			return NULL;
		}
		out[i] = json_string_value(item);
	}
	a->arrays = xreallocarray(a->arrays, a->item_arrays + 1, sizeof(*a->arrays));
	a->arrays[a->item_arrays++] = out;
	*n_r = json_array_size(v);
	return out;
}

static void args_free(struct args *a)
{
	for (size_t i = 0; i < a->item_arrays; i++)
		free(a->arrays[i]);
	free(a->arrays);
}

static char *esc(const char *s)
{
	return str_escape(s != NULL ? s : "", ESC_MAX);
}

/* ---- views -------------------------------------------------------------- */

static json_t *strings_json(const struct dir_strings *s)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < s->count; i++)
		json_array_append_new(arr, jstr(s->items[i]));
	return arr;
}

static bool means_user(const struct directory *dir, const char *address, const struct dir_user *u)
{
	struct dir_resolution res;
	bool yes;

	/* Without expansion: what the address itself names. */
	if (directory_find_user(dir, address) == u)
		return true;
	directory_resolve(dir, address, '\0', &res);
	yes = res.user == u && (res.entry == DIR_ENTRY_USER || res.entry == DIR_ENTRY_USER_ALIAS);
	directory_resolution_free(&res);
	return yes;
}

json_t *directory_user_json(const struct directory *dir, const struct dir_user *u, bool full)
{
	const struct dir_autoreply *ar = &u->autoreply;
	json_t *o = json_object(), *secrets = json_array(), *login = json_array();

	json_object_set_new(o, "address", jstr(u->address));
	json_object_set_new(o, "name", jstr(u->name));
	json_object_set_new(o, "domain", jstr(u->domain->name));
	if (u->domain->primary)
		json_array_append_new(login, jstr(u->name));
	json_array_append_new(login, jstr(u->address));
	for (size_t i = 0; i < u->domain->alias_domains.count; i++) {
		char *a = xasprintf("%s@%s", u->name, u->domain->alias_domains.items[i]);

		json_array_append_new(login, jstr(a));
		free(a);
	}
	json_object_set_new(o, "login", login);
	json_object_set_new(o, "full_name", jstr(u->full_name));
	json_object_set_new(o, "enabled", json_boolean(u->enabled));
	json_object_set_new(o, "admin", json_boolean(u->admin));
	json_object_set_new(o, "quota_storage", json_integer((json_int_t)u->quota_storage));
	json_object_set_new(o, "quota_messages", json_integer((json_int_t)u->quota_messages));
	/* the scheme only: a hash is not for display */
	json_object_set_new(o, "password", u->password_scheme != NULL ? jstr(u->password_scheme)
								    : json_null());
	for (size_t i = 0; i < u->secret_count; i++)
		json_array_append_new(secrets, jstr(u->secrets[i].mechanism));
	json_object_set_new(o, "secrets", secrets);
	json_object_set_new(o, "aliases", strings_json(&u->aliases));
	json_object_set_new(o, "forward", json_pack("{s:o, s:b}", "targets", strings_json(&u->forward),
						    "keep_copy", u->forward_keep_copy));
	json_object_set_new(o, "auto_reply",
			    json_pack("{s:b, s:o, s:o, s:o, s:o}", "enabled", ar->enabled,
				      "subject", jstr(ar->subject), "text", jstr(ar->text),
				      "start", ar->start != NULL ? jstr(ar->start) : json_null(),
				      "end", ar->end != NULL ? jstr(ar->end) : json_null()));
	if (full && dir != NULL) {
		json_t *groups = json_array(), *lists = json_array(), *moderates = json_array();

		for (size_t i = 0; i < dir->domain_count; i++) {
			const struct dir_domain *d = dir->domains[i];

			for (size_t j = 0; j < d->group_count; j++) {
				for (size_t k = 0; k < d->groups[j]->members.count; k++) {
					if (means_user(dir, d->groups[j]->members.items[k], u)) {
						json_array_append_new(groups, jstr(d->groups[j]->address));
						break;
					}
				}
			}
			for (size_t j = 0; j < d->list_count; j++) {
				const struct dir_list *l = d->lists[j];

				for (size_t k = 0; k < l->members.count; k++) {
					if (means_user(dir, l->members.items[k], u)) {
						json_array_append_new(lists, jstr(l->address));
						break;
					}
				}
				for (size_t k = 0; k < l->moderators.count; k++) {
					if (means_user(dir, l->moderators.items[k], u)) {
						json_array_append_new(moderates, jstr(l->address));
						break;
					}
				}
			}
		}
		json_object_set_new(o, "groups", groups);
		json_object_set_new(o, "lists", lists);
		json_object_set_new(o, "moderates", moderates);
	}
	return o;
}

json_t *directory_domain_json(const struct dir_domain *d)
{
	char *realm = directory_domain_realm(d);
	json_t *o = json_pack("{s:o, s:b, s:o, s:o, s:s, s:b, s:I, s:I, s:I, s:I}",
			      "name", jstr(d->name), "primary", d->primary,
			      "alias_domains", strings_json(&d->alias_domains),
			      "catch_all", d->catch_all != NULL ? jstr(d->catch_all) : json_null(),
			      "realm", realm, "realm_default", d->realm == NULL,
			      "users", (json_int_t)d->user_count, "aliases", (json_int_t)d->alias_count,
			      "groups", (json_int_t)d->group_count, "lists", (json_int_t)d->list_count);

	free(realm);
	return o;
}

json_t *directory_alias_json(const struct dir_alias *a)
{
	return json_pack("{s:o, s:o, s:o}", "address", jstr(a->address),
			 "domain", jstr(a->domain->name), "targets", strings_json(&a->targets));
}

json_t *directory_group_json(const struct dir_group *g)
{
	return json_pack("{s:o, s:o, s:o}", "address", jstr(g->address),
			 "domain", jstr(g->domain->name), "members", strings_json(&g->members));
}

json_t *directory_list_json(const struct dir_list *l)
{
	char *id = directory_list_id(l), *unsub = directory_list_unsubscribe(l);
	char *sub = directory_list_subscribe(l), *post = directory_list_post(l);
	json_t *o = json_pack("{s:o, s:o, s:o, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o}",
			      "address", jstr(l->address), "domain", jstr(l->domain->name),
			      "description", jstr(l->description),
			      "posting", directory_list_posting_str(l->posting),
			      "reply_to", directory_list_reply_to_str(l->reply_to),
			      "subscription", l->subscription_open ? "open" : "closed",
			      "moderators", strings_json(&l->moderators),
			      "members", strings_json(&l->members),
			      "list_id", jstr(id), "list_unsubscribe", jstr(unsub),
			      "list_subscribe", jstr(sub), "list_post", jstr(post));

	free(id);
	free(unsub);
	free(sub);
	free(post);
	return o;
}

json_t *directory_resolution_json(const struct dir_resolution *res)
{
	json_t *o = json_object(), *rcpts = json_array();

	json_object_set_new(o, "result", jstr(directory_resolve_kind_str(res->kind)));
	if (res->kind == DIR_RESOLVE_RECIPIENTS || res->kind == DIR_RESOLVE_LIST ||
	    res->kind == DIR_RESOLVE_LIST_COMMAND || res->kind == DIR_RESOLVE_LOOP ||
	    (res->kind == DIR_RESOLVE_UNKNOWN && res->catch_all)) {
		if (!res->catch_all || res->user != NULL)
			json_object_set_new(o, "entry", jstr(directory_entry_kind_str(res->entry)));
	}
	if (res->domain != NULL)
		json_object_set_new(o, "domain", jstr(res->domain->name));
	if (res->user != NULL)
		json_object_set_new(o, "user", jstr(res->user->address));
	if (res->list != NULL)
		json_object_set_new(o, "list", jstr(res->list->address));
	if (res->kind == DIR_RESOLVE_LIST_COMMAND)
		json_object_set_new(o, "command",
				    jstr(res->command == DIR_LIST_SUBSCRIBE     ? "subscribe"
					 : res->command == DIR_LIST_UNSUBSCRIBE ? "unsubscribe"
					 : res->command == DIR_LIST_BOUNCES     ? "bounces"
										: "moderate"));
	if (res->detail != NULL)
		json_object_set_new(o, "detail", jstr(res->detail));
	json_object_set_new(o, "catch_all", json_boolean(res->catch_all));
	for (size_t i = 0; i < res->rcpt_count; i++) {
		const struct dir_rcpt *rc = &res->rcpts[i];
		json_t *r = json_pack("{s:s, s:o}", "kind",
				      rc->kind == DIR_RCPT_LOCAL ? "local"
				      : rc->kind == DIR_RCPT_REMOTE ? "remote" : "list",
				      "address", jstr(rc->address));

		if (rc->detail != NULL)
			json_object_set_new(r, "detail", jstr(rc->detail));
		json_array_append_new(rcpts, r);
	}
	json_object_set_new(o, "recipients", rcpts);
	json_object_set_new(o, "skipped", json_integer((json_int_t)res->skipped));
	if (res->error != NULL)
		json_object_set_new(o, "error", jstr(res->error));
	return o;
}

/* ---- commands ----------------------------------------------------------- */

typedef json_t *cmd_fn(const struct directory *dir, struct args *a, struct directory **changed_r);

/* The domain filter of the list commands: NULL (all) or a domain. */
static int domain_filter(const struct directory *dir, struct args *a,
			 const struct dir_domain **d_r)
{
	const char *name = get_str(a, "domain", false);

	*d_r = NULL;
	if (a->error != NULL)
		return -1;
	if (name == NULL)
		return 0;
	*d_r = directory_find_local_domain(dir, name);
	if (*d_r == NULL) {
		char *e = esc(name);

		a->error = err_reply("no domain %s", e);
		free(e);
		return -1;
	}
	return 0;
}

static json_t *cmd_domain_list(const struct directory *dir, struct args *a,
			       struct directory **changed_r)
{
	json_t *reply = ok_reply(), *arr = json_array();

	for (size_t i = 0; i < dir->domain_count; i++)
		json_array_append_new(arr, directory_domain_json(dir->domains[i]));
	json_object_set_new(reply, "domains", arr);
	return reply;
}

static json_t *cmd_domain_show(const struct directory *dir, struct args *a,
			       struct directory **changed_r)
{
	const char *name = get_str(a, "name", true);
	const struct dir_domain *d;
	json_t *reply;

	if (name == NULL)
		return NULL;
	d = directory_find_local_domain(dir, name);
	if (d == NULL) {
		char *e = esc(name);

		reply = err_reply("no domain %s", e);
		free(e);
		return reply;
	}
	reply = ok_reply();
	json_object_set_new(reply, "domain", directory_domain_json(d));
	return reply;
}

static json_t *cmd_domain_add(const struct directory *dir, struct args *a,
			      struct directory **changed_r)
{
	const char *name = get_str(a, "name", true);
	int primary = get_bool(a, "primary");
	char *error = NULL;

	if (a->error != NULL)
		return NULL;
	if (directory_add_domain(dir, name, primary == 1, changed_r, &error) < 0)
		return err_take(error);
	return done("domain %s added%s", name, (*changed_r)->primary != NULL &&
		    strcasecmp((*changed_r)->primary->name, name) == 0 ? " (primary)" : "");
}

static json_t *cmd_domain_remove(const struct directory *dir, struct args *a,
				 struct directory **changed_r)
{
	const char *name = get_str(a, "name", true);
	int force = get_bool(a, "force");
	char *error = NULL;

	if (a->error != NULL)
		return NULL;
	if (directory_remove_domain(dir, name, force == 1, changed_r, &error) < 0)
		return err_take(error);
	return done("domain %s removed", name);
}

static json_t *cmd_domain_set(const struct directory *dir, struct args *a,
			      struct directory **changed_r)
{
	const char *name = get_str(a, "name", true);
	int primary = get_bool(a, "primary");
	json_t *catch_all = json_object_get(a->request, "catch_all");
	json_t *realm = json_object_get(a->request, "realm");
	/* Two mutations in a row: the intermediate snapshot is ours.  The
	 * reference on dir only touches its (atomic) refcount. */
	struct directory *cur = directory_ref((struct directory *)dir), *next = NULL;
	char *error = NULL;

	if (a->error != NULL) {
		directory_unref(&cur);
		return NULL;
	}
	if (catch_all != NULL && !json_is_null(catch_all) && !json_is_string(catch_all)) {
		directory_unref(&cur);
		return err_reply("\"catch_all\" must be an address, or null or \"\" for off");
	}
	if (primary == 0) {
		directory_unref(&cur);
		return err_reply("exactly one domain is primary: make another domain primary instead");
	}
	if (realm != NULL && !json_is_null(realm) && !json_is_string(realm)) {
		directory_unref(&cur);
		return err_reply("\"realm\" must be a Kerberos realm, or null or \"\" for the default");
	}
	if (primary != 1 && catch_all == NULL && realm == NULL) {
		directory_unref(&cur);
		return err_reply("nothing to change (primary, catch_all, realm)");
	}
	if (primary == 1) {
		if (directory_set_primary_domain(cur, name, &next, &error) < 0)
			goto fail;
		directory_unref(&cur);
		cur = next;
	}
	if (catch_all != NULL) {
		const char *target = json_is_string(catch_all) ? json_string_value(catch_all) : NULL;

		if (target != NULL && target[0] == '\0')
			target = NULL;
		if (directory_set_catch_all(cur, name, target, &next, &error) < 0)
			goto fail;
		directory_unref(&cur);
		cur = next;
	}
	if (realm != NULL) {
		const char *r = json_is_string(realm) ? json_string_value(realm) : NULL;

		if (r != NULL && r[0] == '\0')
			r = NULL;
		if (directory_set_realm(cur, name, r, &next, &error) < 0)
			goto fail;
		directory_unref(&cur);
		cur = next;
	}
	*changed_r = cur;
	return done("domain %s changed", name);
fail:
	directory_unref(&cur);
	return err_take(error);
}

static json_t *cmd_domain_alias_add(const struct directory *dir, struct args *a,
				    struct directory **changed_r)
{
	const char *name = get_str(a, "name", true), *alias = get_str(a, "alias", true);
	char *error = NULL;

	if (a->error != NULL)
		return NULL;
	if (directory_add_domain_alias(dir, name, alias, changed_r, &error) < 0)
		return err_take(error);
	return done("%s is now an alias domain of %s", alias, name);
}

static json_t *cmd_domain_alias_remove(const struct directory *dir, struct args *a,
				       struct directory **changed_r)
{
	const char *alias = get_str(a, "alias", true);
	char *error = NULL;

	if (a->error != NULL)
		return NULL;
	if (directory_remove_domain_alias(dir, alias, changed_r, &error) < 0)
		return err_take(error);
	return done("alias domain %s removed", alias);
}

static json_t *cmd_user_list(const struct directory *dir, struct args *a,
			     struct directory **changed_r)
{
	const struct dir_domain *only;
	json_t *reply, *arr;

	if (domain_filter(dir, a, &only) < 0)
		return NULL;
	reply = ok_reply();
	arr = json_array();
	for (size_t i = 0; i < dir->domain_count; i++) {
		const struct dir_domain *d = dir->domains[i];

		if (only != NULL && d != only)
			continue;
		for (size_t j = 0; j < d->user_count; j++)
			json_array_append_new(arr, directory_user_json(dir, d->users[j], false));
	}
	json_object_set_new(reply, "users", arr);
	return reply;
}

static json_t *no_user(const char *login)
{
	char *e = esc(login);
	json_t *reply = err_reply("no user %s", e);

	free(e);
	return reply;
}

static json_t *cmd_user_show(const struct directory *dir, struct args *a,
			     struct directory **changed_r)
{
	const char *login = get_str(a, "address", true);
	const struct dir_user *u;
	json_t *reply;

	if (login == NULL)
		return NULL;
	u = directory_find_user(dir, login);
	if (u == NULL)
		return no_user(login);
	reply = ok_reply();
	json_object_set_new(reply, "user", directory_user_json(dir, u, true));
	return reply;
}

static json_t *cmd_user_add(const struct directory *dir, struct args *a,
			    struct directory **changed_r)
{
	const char *address = get_str(a, "address", true);
	struct dir_user_spec spec = { .domain = NULL };
	int admin = get_bool(a, "admin"), enabled = get_bool(a, "enabled");
	int64_t storage = get_count(a, "quota_storage"), messages = get_count(a, "quota_messages");
	const char *at;
	char *name = NULL, *error = NULL;
	json_t *reply;

	spec.password = get_str(a, "password", false);
	spec.password_hash = get_str(a, "password_hash", false);
	spec.full_name = get_str(a, "full_name", false);
	if (a->error != NULL)
		return NULL;
	at = strrchr(address, '@');
	if (at != NULL) {
		name = xstrndup(address, (size_t)(at - address));
		spec.domain = at + 1;
		if (spec.domain[0] == '\0') {
			free(name);
			return err_reply("invalid address: nothing after the '@'");
		}
	} else {
		name = xstrdup(address);
	}
	spec.name = name;
	spec.admin = admin == 1;
	spec.disabled = enabled == 0;
	spec.quota_storage = storage > 0 ? (uint64_t)storage : 0;
	spec.quota_messages = messages > 0 ? (uint64_t)messages : 0;
	if (directory_add_user(dir, &spec, changed_r, &error) < 0) {
		free(name);
		return err_take(error);
	}
	{
		const struct dir_user *u = directory_find_user(*changed_r, address);

		reply = done("user %s added", u != NULL ? u->address : address);
	}
	free(name);
	return reply;
}

static json_t *cmd_user_remove(const struct directory *dir, struct args *a,
			       struct directory **changed_r)
{
	const char *login = get_str(a, "address", true);
	const struct dir_user *u;
	char *error = NULL, *address;
	json_t *reply;

	if (login == NULL)
		return NULL;
	u = directory_find_user(dir, login);
	if (u == NULL)
		return no_user(login);
	address = xstrdup(u->address);
	if (directory_remove_user(dir, login, changed_r, &error) < 0) {
		free(address);
		return err_take(error);
	}
	reply = done("user %s removed (mail in the store is kept)", address);
	free(address);
	return reply;
}

static json_t *cmd_user_passwd(const struct directory *dir, struct args *a,
			       struct directory **changed_r)
{
	const char *login = get_str(a, "address", true), *password = get_str(a, "password", true);
	const struct dir_user *u;
	char *error = NULL;

	if (a->error != NULL)
		return NULL;
	u = directory_find_user(dir, login);
	if (u == NULL)
		return no_user(login);
	if (directory_set_password(dir, login, password, changed_r, &error) < 0)
		return err_take(error);
	return done("password of %s changed", u->address);
}

static json_t *cmd_user_set(const struct directory *dir, struct args *a,
			    struct directory **changed_r)
{
	const char *login = get_str(a, "address", true);
	struct dir_user_update up = { .full_name = get_str(a, "full_name", false) };
	int admin = get_bool(a, "admin"), enabled = get_bool(a, "enabled");
	const struct dir_user *u;
	char *error = NULL;

	up.quota_storage = get_count(a, "quota_storage");
	up.quota_messages = get_count(a, "quota_messages");
	if (a->error != NULL)
		return NULL;
	up.admin = admin < 0 ? DIR_KEEP : admin ? DIR_SET_YES : DIR_SET_NO;
	up.enabled = enabled < 0 ? DIR_KEEP : enabled ? DIR_SET_YES : DIR_SET_NO;
	if (up.full_name == NULL && up.admin == DIR_KEEP && up.enabled == DIR_KEEP &&
	    up.quota_storage < 0 && up.quota_messages < 0)
		return err_reply("nothing to change (full_name, admin, enabled, quota_storage, "
				 "quota_messages)");
	u = directory_find_user(dir, login);
	if (u == NULL)
		return no_user(login);
	if (directory_update_user(dir, login, &up, changed_r, &error) < 0)
		return err_take(error);
	return done("user %s changed", u->address);
}

static json_t *cmd_user_alias(const struct directory *dir, struct args *a,
			      struct directory **changed_r, bool add)
{
	const char *login = get_str(a, "address", true), *alias = get_str(a, "alias", true);
	const struct dir_user *u;
	char *error = NULL;
	int r;

	if (a->error != NULL)
		return NULL;
	u = directory_find_user(dir, login);
	if (u == NULL)
		return no_user(login);
	r = add ? directory_add_user_alias(dir, login, alias, changed_r, &error)
		: directory_remove_user_alias(dir, login, alias, changed_r, &error);
	if (r < 0)
		return err_take(error);
	return done("%s %s extra address %s", u->address, add ? "has the" : "no longer has the",
		    alias);
}

static json_t *cmd_user_alias_add(const struct directory *dir, struct args *a,
				  struct directory **changed_r)
{
	return cmd_user_alias(dir, a, changed_r, true);
}

static json_t *cmd_user_alias_remove(const struct directory *dir, struct args *a,
				     struct directory **changed_r)
{
	return cmd_user_alias(dir, a, changed_r, false);
}

static json_t *cmd_user_forward(const struct directory *dir, struct args *a,
				struct directory **changed_r)
{
	const char *login = get_str(a, "address", true);
	size_t n;
	const char *const *targets = get_list(a, "targets", &n);
	int keep = get_bool(a, "keep_copy");
	const struct dir_user *u;
	char *error = NULL;

	if (a->error != NULL)
		return NULL;
	u = directory_find_user(dir, login);
	if (u == NULL)
		return no_user(login);
	if (directory_set_forward(dir, login, targets, n, keep == 1, changed_r, &error) < 0)
		return err_take(error);
	if (n == 0)
		return done("forwarding of %s is off", u->address);
	return done("mail for %s is forwarded%s", u->address, keep == 1 ? " (keeping a copy)" : "");
}

static json_t *cmd_user_autoreply(const struct directory *dir, struct args *a,
				  struct directory **changed_r)
{
	const char *login = get_str(a, "address", true);
	struct dir_autoreply_spec spec = {
		.subject = get_str(a, "subject", false), .text = get_str(a, "text", false),
		.start = get_str(a, "start", false), .end = get_str(a, "end", false),
	};
	int enabled = get_bool(a, "enabled");
	const struct dir_user *u;
	char *error = NULL;

	if (a->error != NULL)
		return NULL;
	u = directory_find_user(dir, login);
	if (u == NULL)
		return no_user(login);
	spec.enabled = enabled < 0 ? u->autoreply.enabled : enabled == 1;
	if (directory_set_autoreply(dir, login, &spec, changed_r, &error) < 0)
		return err_take(error);
	return done("auto-reply of %s is %s", u->address, spec.enabled ? "on" : "off");
}

static json_t *cmd_alias_list(const struct directory *dir, struct args *a,
			      struct directory **changed_r)
{
	const struct dir_domain *only;
	json_t *reply, *arr;

	if (domain_filter(dir, a, &only) < 0)
		return NULL;
	reply = ok_reply();
	arr = json_array();
	for (size_t i = 0; i < dir->domain_count; i++) {
		const struct dir_domain *d = dir->domains[i];

		if (only != NULL && d != only)
			continue;
		for (size_t j = 0; j < d->alias_count; j++)
			json_array_append_new(arr, directory_alias_json(d->aliases[j]));
	}
	json_object_set_new(reply, "aliases", arr);
	return reply;
}

/* The address as stored: what the entry ended up as in the new snapshot. */
static char *stored_address(const struct directory *dir, const char *address)
{
	const char *at = strrchr(address, '@');
	const struct dir_domain *d;

	if (at == NULL)
		d = dir->primary;
	else
		d = directory_find_local_domain(dir, at + 1);
	if (d == NULL)
		return xstrdup(address);
	return at == NULL ? xasprintf("%s@%s", address, d->name)
			  : xasprintf("%.*s@%s", (int)(at - address), address, d->name);
}

static json_t *entry_done(const struct directory *dir, const char *what, const char *address,
			  const char *verb)
{
	char *full = stored_address(dir, address);
	json_t *reply;

	for (char *p = full; *p != '\0'; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	reply = done("%s %s %s", what, full, verb);
	free(full);
	return reply;
}

static json_t *cmd_alias_add(const struct directory *dir, struct args *a,
			     struct directory **changed_r)
{
	const char *address = get_str(a, "address", true);
	size_t n;
	const char *const *targets = get_list(a, "targets", &n);
	bool existed;
	char *error = NULL;

	if (a->error != NULL)
		return NULL;
	existed = directory_find_alias(dir, address) != NULL;
	if (directory_add_alias(dir, address, targets, n, changed_r, &error) < 0)
		return err_take(error);
	return entry_done(dir, "alias", address, existed ? "changed" : "added");
}

static json_t *cmd_alias_remove(const struct directory *dir, struct args *a,
				struct directory **changed_r)
{
	const char *address = get_str(a, "address", true);
	size_t n;
	const char *const *targets = get_list(a, "targets", &n);
	char *error = NULL;

	if (a->error != NULL)
		return NULL;
	if (directory_remove_alias(dir, address, targets, n, changed_r, &error) < 0)
		return err_take(error);
	return entry_done(dir, "alias", address,
			  n == 0 || directory_find_alias(*changed_r, address) == NULL
			  ? "removed" : "changed");
}

/* The reply of a "show" command: {"ok":true, kind: obj}, or "no KIND
 * ADDRESS" when obj is NULL (nothing of that kind has that address). */
static json_t *show_reply(const char *kind, const char *address, json_t *obj)
{
	json_t *reply;
	char *e;

	if (obj == NULL) {
		e = esc(address);
		reply = err_reply("no %s %s", kind, e);
		free(e);
		return reply;
	}
	reply = ok_reply();
	json_object_set_new(reply, kind, obj);
	return reply;
}

static json_t *cmd_group_list(const struct directory *dir, struct args *a,
			      struct directory **changed_r)
{
	const struct dir_domain *only;
	json_t *reply, *arr;

	if (domain_filter(dir, a, &only) < 0)
		return NULL;
	reply = ok_reply();
	arr = json_array();
	for (size_t i = 0; i < dir->domain_count; i++) {
		const struct dir_domain *d = dir->domains[i];

		if (only != NULL && d != only)
			continue;
		for (size_t j = 0; j < d->group_count; j++)
			json_array_append_new(arr, directory_group_json(d->groups[j]));
	}
	json_object_set_new(reply, "groups", arr);
	return reply;
}

static json_t *cmd_group_show(const struct directory *dir, struct args *a,
			      struct directory **changed_r)
{
	const char *address = get_str(a, "address", true);
	const struct dir_group *g;

	if (address == NULL)
		return NULL;
	g = directory_find_group(dir, address);
	return show_reply("group", address, g != NULL ? directory_group_json(g) : NULL);
}

static json_t *cmd_group_add(const struct directory *dir, struct args *a,
			     struct directory **changed_r)
{
	const char *address = get_str(a, "address", true);
	size_t n;
	const char *const *members = get_list(a, "members", &n);
	bool existed;
	char *error = NULL;

	if (a->error != NULL)
		return NULL;
	existed = directory_find_group(dir, address) != NULL;
	if (directory_add_group(dir, address, members, n, changed_r, &error) < 0)
		return err_take(error);
	return entry_done(dir, "group", address, existed ? "changed" : "added");
}

static json_t *cmd_group_remove(const struct directory *dir, struct args *a,
				struct directory **changed_r)
{
	const char *address = get_str(a, "address", true);
	size_t n;
	const char *const *members = get_list(a, "members", &n);
	char *error = NULL;

	if (a->error != NULL)
		return NULL;
	if (directory_remove_group(dir, address, members, n, changed_r, &error) < 0)
		return err_take(error);
	return entry_done(dir, "group", address, n == 0 ? "removed" : "changed");
}

static json_t *cmd_list_list(const struct directory *dir, struct args *a,
			     struct directory **changed_r)
{
	const struct dir_domain *only;
	json_t *reply, *arr;

	if (domain_filter(dir, a, &only) < 0)
		return NULL;
	reply = ok_reply();
	arr = json_array();
	for (size_t i = 0; i < dir->domain_count; i++) {
		const struct dir_domain *d = dir->domains[i];

		if (only != NULL && d != only)
			continue;
		for (size_t j = 0; j < d->list_count; j++)
			json_array_append_new(arr, directory_list_json(d->lists[j]));
	}
	json_object_set_new(reply, "lists", arr);
	return reply;
}

static json_t *cmd_list_show(const struct directory *dir, struct args *a,
			     struct directory **changed_r)
{
	const char *address = get_str(a, "address", true);
	const struct dir_list *l;

	if (address == NULL)
		return NULL;
	l = directory_find_list(dir, address);
	return show_reply("list", address, l != NULL ? directory_list_json(l) : NULL);
}

static json_t *cmd_list_add(const struct directory *dir, struct args *a,
			    struct directory **changed_r)
{
	struct dir_list_spec spec = { .posting = -1, .reply_to = -1, .subscription_open = -1 };
	const char *posting, *reply_to, *subscription;
	enum dir_list_posting pv;
	enum dir_list_reply_to rv;
	bool existed;
	char *error = NULL;

	spec.address = get_str(a, "address", true);
	spec.description = get_str(a, "description", false);
	posting = get_str(a, "posting", false);
	reply_to = get_str(a, "reply_to", false);
	subscription = get_str(a, "subscription", false);
	spec.members = get_list(a, "members", &spec.member_count);
	spec.moderators = get_list(a, "moderators", &spec.moderator_count);
	if (a->error != NULL)
		return NULL;
	if (posting != NULL) {
		if (directory_list_posting_parse(posting, &pv) < 0)
			return err_reply("posting must be members, anyone or moderated");
		spec.posting = (int)pv;
	}
	if (reply_to != NULL) {
		if (directory_list_reply_to_parse(reply_to, &rv) < 0)
			return err_reply("reply_to must be list, sender or none");
		spec.reply_to = (int)rv;
	}
	if (subscription != NULL) {
		if (strcasecmp(subscription, "open") != 0 && strcasecmp(subscription, "closed") != 0)
			return err_reply("subscription must be open or closed");
		spec.subscription_open = strcasecmp(subscription, "open") == 0;
	}
	existed = directory_find_list(dir, spec.address) != NULL;
	if (directory_add_list(dir, &spec, changed_r, &error) < 0)
		return err_take(error);
	return entry_done(dir, "list", spec.address, existed ? "changed" : "added");
}

static json_t *cmd_list_remove(const struct directory *dir, struct args *a,
			       struct directory **changed_r)
{
	const char *address = get_str(a, "address", true);
	size_t n, m;
	const char *const *members = get_list(a, "members", &n);
	const char *const *moderators = get_list(a, "moderators", &m);
	char *error = NULL;

	if (a->error != NULL)
		return NULL;
	if (directory_remove_list(dir, address, members, n, moderators, m, changed_r, &error) < 0)
		return err_take(error);
	return entry_done(dir, "list", address, n == 0 && m == 0 ? "removed" : "changed");
}

static json_t *cmd_resolve(const struct directory *dir, struct args *a,
			   struct directory **changed_r)
{
	const char *address = get_str(a, "address", true);
	const char *sep = get_str(a, "separator", false);
	struct dir_resolution res;
	json_t *reply, *view;

	if (a->error != NULL)
		return NULL;
	if (sep != NULL && strlen(sep) > 1)
		return err_reply("\"separator\" is one character, or \"\" for none");
	directory_resolve(dir, address, sep != NULL ? sep[0] : DIRECTORY_DEFAULT_SEPARATOR, &res);
	reply = ok_reply();
	json_object_set_new(reply, "address", jstr(address));
	view = directory_resolution_json(&res);
	json_object_update(reply, view);
	json_decref(view);
	directory_resolution_free(&res);
	return reply;
}

static const struct {
	const char *name;
	cmd_fn *fn;
	bool writes;
} commands[] = {
	{ "domain-list", cmd_domain_list, false },
	{ "domain-show", cmd_domain_show, false },
	{ "domain-add", cmd_domain_add, true },
	{ "domain-remove", cmd_domain_remove, true },
	{ "domain-set", cmd_domain_set, true },
	{ "domain-alias-add", cmd_domain_alias_add, true },
	{ "domain-alias-remove", cmd_domain_alias_remove, true },
	{ "user-list", cmd_user_list, false },
	{ "user-show", cmd_user_show, false },
	{ "user-add", cmd_user_add, true },
	{ "user-remove", cmd_user_remove, true },
	{ "user-passwd", cmd_user_passwd, true },
	{ "user-set", cmd_user_set, true },
	{ "user-alias-add", cmd_user_alias_add, true },
	{ "user-alias-remove", cmd_user_alias_remove, true },
	{ "user-forward", cmd_user_forward, true },
	{ "user-autoreply", cmd_user_autoreply, true },
	{ "alias-list", cmd_alias_list, false },
	{ "alias-add", cmd_alias_add, true },
	{ "alias-remove", cmd_alias_remove, true },
	{ "group-list", cmd_group_list, false },
	{ "group-show", cmd_group_show, false },
	{ "group-add", cmd_group_add, true },
	{ "group-remove", cmd_group_remove, true },
	{ "list-list", cmd_list_list, false },
	{ "list-show", cmd_list_show, false },
	{ "list-add", cmd_list_add, true },
	{ "list-remove", cmd_list_remove, true },
	{ "resolve", cmd_resolve, false },
};

static int find_command(const char *name)
{
	for (size_t i = 0; name != NULL && i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

bool directory_cmd_known(const char *name)
{
	return find_command(name) >= 0;
}

bool directory_cmd_writes(const char *name)
{
	int i = find_command(name);

	return i >= 0 && commands[i].writes;
}

json_t *directory_cmd_run(const struct directory *dir, json_t *request,
			  struct directory **changed_r)
{
	struct args a = { .request = request };
	int i = find_command(json_string_value(json_object_get(request, "command")));
	json_t *reply;

	*changed_r = NULL;
	if (i < 0)
		return err_reply("unknown command");
	reply = commands[i].fn(dir, &a, changed_r);
	if (reply == NULL) {
		/* an argument was wrong: no change */
		directory_unref(changed_r);
		reply = a.error != NULL ? a.error : err_reply("invalid request");
		a.error = NULL;
	}
	json_decref(a.error);
	args_free(&a);
	if (!json_is_true(json_object_get(reply, "ok")))
		directory_unref(changed_r);
	return reply;
}

json_t *directory_cmd_execute(const struct directory *dir, json_t *request,
			      struct directory **saved_r)
{
	struct directory *changed = NULL;
	json_t *reply = directory_cmd_run(dir, request, &changed);
	char *error = NULL;

	*saved_r = NULL;
	if (changed == NULL)
		return reply;
	if (dir->path == NULL) {
		json_decref(reply);
		directory_unref(&changed);
		return err_reply("the directory has no users.cfg to write to");
	}
	if (directory_save(changed, dir->path, &error) < 0) {
		json_decref(reply);
		directory_unref(&changed);
		return err_reply("%s; nothing changed", error);
	}
	free(error);
	*saved_r = changed;
	return reply;
}

char *directory_cmd_describe(json_t *request)
{
	static const char *const keys[] = { "name", "address", "alias", "domain", NULL };
	const char *command = json_string_value(json_object_get(request, "command"));
	struct buf b;
	int ret = 0;

	buf_init(&b, 4096);
	ret |= buf_append_str(&b, "command=");
	ret |= str_escape_append(&b, command != NULL ? command : "?",
				 strlen(command != NULL ? command : "?"), ESC_MAX);
	for (size_t i = 0; keys[i] != NULL; i++) {
		const char *v = json_string_value(json_object_get(request, keys[i]));

		if (v == NULL)
			continue;
		ret |= buf_printf(&b, " %s=", keys[i]);
		ret |= str_escape_append(&b, v, strlen(v), ESC_MAX);
	}
	if (ret != 0)
		panic("directory_cmd_describe: too long");
	return buf_steal(&b);
}
