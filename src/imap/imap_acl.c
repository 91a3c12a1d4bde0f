/*
 * Shared and public folders (RFC 4314 ACL, RFC 2342 NAMESPACE).
 *
 * Three namespaces (docs/imap.md "Shared folders"):
 *   ""                   the user's own folders: every right, always;
 *   "Other Users/"       "Other Users/<address>/<folder>": another user's
 *                        folder, with the rights its ACL grants;
 *   "Public Folders/"    "Public Folders/<folder>": the folders of the
 *                        user's domain's public mailbox (the store's
 *                        pseudo-user #public).
 *
 * Every command that names a mailbox goes through imap_acl_resolve on the
 * worker: it maps the name to an owner's mailbox and a folder there, and
 * computes the user's rights from the folder's ACL (store_acl.c), the
 * user's groups (users.cfg, through the directory) and, for public
 * folders, the domain's administrators (every right) and the default
 * "anyone lr" when a public folder has no ACL of its own.
 *
 * A user without any right on a folder is told what a user would be told
 * for a folder that does not exist (RFC 4314 section 6: the ACL must not
 * reveal that a mailbox exists); a user with some right but not the one a
 * command needs gets NO [NOPERM].
 *
 * Also here: the commands SETACL DELETEACL GETACL LISTRIGHTS MYRIGHTS.
 */
#include "imap/imap.h"
#include "imap/imap_acl.h"
#include "imap/imap_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/cfg.h"
#include "core/log.h"
#include "directory/directory.h"
#include "store/store_quota_warn.h"

/* Groups a user can be a member of, counted for one rights check. */
#define IMAP_ACL_MAX_GROUPS 1000

const char imap_acl_denied[] = "permission denied";

/* ---- who is asking ---- */

struct acl_who {
	const char *identity;
	char **groups;
	size_t ngroups;
	char *domain;             /* the user's domain, lower case */
	bool admin;               /* an administrator of that domain */
};

static void who_load(const char *identity, struct acl_who *w)
{
	struct directory *dir = directory_current();
	const char *at = strrchr(identity, '@');

	memset(w, 0, sizeof(*w));
	w->identity = identity;
	w->domain = xstrdup(at != NULL ? at + 1 : "");
	for (char *p = w->domain; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	if (dir == NULL)
		return;
	{
		const struct dir_user *du = directory_find_user(dir, identity);

		w->admin = du != NULL && du->admin;
	}
	{
		/* the user's groups, nested ones included (directory_groups.c) */
		struct cfg *cfg = cfg_current();
		unsigned depth = cfg != NULL ? (unsigned)cfg->s.directory_max_group_depth : 1;
		const char **groups;
		size_t n = directory_user_groups(dir, identity, depth, IMAP_ACL_MAX_GROUPS, &groups);

		cfg_unref(&cfg);
		w->groups = xcalloc(n + 1, sizeof(*w->groups));
		for (size_t i = 0; i < n; i++)
			w->groups[i] = xstrdup(groups[i]);
		w->ngroups = n;
		free(groups);
	}
	directory_unref(&dir);
}

static void who_free(struct acl_who *w)
{
	for (size_t i = 0; i < w->ngroups; i++)
		free(w->groups[i]);
	free(w->groups);
	free(w->domain);
}

/* ---- names ---- */

/* "Other Users/bob@x/rest" -> kind, owner address (or NULL) and rest (or
 * NULL when the name is a namespace level, not a folder). */
static enum imap_ns split_name(const char *name, char **owner_r, const char **rest_r)
{
	size_t olen = strlen(IMAP_NS_OTHER), plen = strlen(IMAP_NS_PUBLIC);

	*owner_r = NULL;
	*rest_r = name;
	if (strncmp(name, IMAP_NS_OTHER, olen) == 0 && (name[olen] == '\0' || name[olen] == '/')) {
		const char *o = name + olen, *slash;

		*rest_r = NULL;
		if (*o == '\0' || o[1] == '\0')
			return IMAP_NS_OTHER_USERS;
		o++;
		slash = strchr(o, '/');
		*owner_r = xstrndup(o, slash != NULL ? (size_t)(slash - o) : strlen(o));
		if (slash != NULL && slash[1] != '\0')
			*rest_r = slash + 1;
		return IMAP_NS_OTHER_USERS;
	}
	if (strncmp(name, IMAP_NS_PUBLIC, plen) == 0 && (name[plen] == '\0' || name[plen] == '/')) {
		*rest_r = name[plen] == '/' && name[plen + 1] != '\0' ? name + plen + 1 : NULL;
		return IMAP_NS_PUBLIC_FOLDERS;
	}
	return IMAP_NS_PERSONAL;
}

/* The rights of w on folder of t->owner (which must exist). */
static enum store_status folder_rights(const struct imap_target *t, const struct acl_who *w,
				       const char *folder, uint32_t *rights_r, const char **error_r)
{
	struct store_acl acl;
	bool present;
	enum store_status st;

	if (t->ns == IMAP_NS_PERSONAL) {
		*rights_r = STORE_ACL_ALL;
		return STORE_OK;
	}
	st = store_acl_get(t->owner, folder, &acl, &present, error_r);
	if (st != STORE_OK)
		return st;
	if (t->ns == IMAP_NS_PUBLIC_FOLDERS && w->admin)
		*rights_r = STORE_ACL_ALL;
	else if (t->ns == IMAP_NS_PUBLIC_FOLDERS && !present)
		*rights_r = IMAP_ACL_PUBLIC_DEFAULT;
	else
		*rights_r = store_acl_eval(&acl, w->identity, (const char *const *)w->groups,
					   w->ngroups);
	store_acl_free(&acl);
	return STORE_OK;
}

/* The rights on the parent of folder: where CREATE and RENAME put it. */
static enum store_status parent_rights(const struct imap_target *t, const struct acl_who *w,
				       const char *folder, uint32_t *rights_r, const char **error_r)
{
	const char *slash = strrchr(folder, '/');
	enum store_status st;
	char *parent;

	if (slash == NULL) {
		/* the namespace's root: only the public one may take new
		 * folders, from the domain's administrators */
		*rights_r = t->ns == IMAP_NS_PERSONAL ? STORE_ACL_ALL :
			    t->ns == IMAP_NS_PUBLIC_FOLDERS && w->admin ? STORE_ACL_ALL :
			    t->ns == IMAP_NS_PUBLIC_FOLDERS ? IMAP_ACL_PUBLIC_DEFAULT : 0;
		return STORE_OK;
	}
	parent = xstrndup(folder, (size_t)(slash - folder));
	st = folder_rights(t, w, parent, rights_r, error_r);
	free(parent);
	if (st == STORE_E_NOTFOUND) {
		*rights_r = 0;
		st = STORE_OK;
	}
	return st;
}

void imap_target_free(struct imap_target *t)
{
	if (t->owner != NULL)
		store_user_unref(&t->owner);
	free(t->folder);
	free(t->owner_id);
	memset(t, 0, sizeof(*t));
}

enum store_status imap_acl_resolve(struct imap_user *u, const char *name, struct imap_target *t,
				   const char **error_r)
{
	struct acl_who w;
	char *owner = NULL;
	const char *rest;
	enum store_status st = STORE_OK;

	memset(t, 0, sizeof(*t));
	t->ns = split_name(name, &owner, &rest);
	if (t->ns == IMAP_NS_PERSONAL) {
		t->owner = store_user_ref(u->user);
		t->folder = xstrdup(name);
		t->owner_id = xstrdup(u->identity);
		t->rights = STORE_ACL_ALL;
		t->parent_rights = STORE_ACL_ALL;
		t->exists = true;
		return STORE_OK;
	}
	if (rest == NULL) {
		/* a namespace level ("Other Users/bob"): not a folder */
		free(owner);
		*error_r = "no such folder";
		return STORE_E_NOTFOUND;
	}
	who_load(u->identity, &w);
	if (t->ns == IMAP_NS_OTHER_USERS) {
		struct directory *dir = directory_current();
		const struct dir_user *du = dir != NULL ? directory_find_user(dir, owner) : NULL;
		const char *at = du != NULL ? strrchr(du->address, '@') : NULL;

		if (at == NULL || strchr(owner, '@') == NULL) {
			st = STORE_E_NOTFOUND;
			*error_r = "no such folder";
		} else {
			char *local = xstrndup(du->address, (size_t)(at - du->address));

			t->owner_id = xstrdup(du->address);
			st = store_user_open(imap_store(), at + 1, local, &t->owner, error_r);
			free(local);
			/* the owner's quota applies to what others put into
			 * the owner's folders (the handle may be fresh) */
			if (st == STORE_OK)
				store_user_set_quota(t->owner, du->quota_storage,
						     du->quota_messages);
			if (strcasecmp(du->address, u->identity) == 0)
				t->ns = IMAP_NS_PERSONAL;  /* one's own, by the long way */
		}
		directory_unref(&dir);
	} else {
		st = store_user_open(imap_store(), w.domain, STORE_PUBLIC_USER, &t->owner, error_r);
	}
	free(owner);
	if (st == STORE_OK) {
		t->folder = xstrdup(rest);
		st = folder_rights(t, &w, rest, &t->rights, error_r);
		t->exists = st == STORE_OK;
		if (st == STORE_E_NOTFOUND) {
			t->rights = 0;
			st = STORE_OK;
		}
	}
	if (st == STORE_OK)
		st = parent_rights(t, &w, rest, &t->parent_rights, error_r);
	who_free(&w);
	if (st != STORE_OK)
		imap_target_free(t);
	return st;
}

enum store_status imap_acl_need(const struct imap_target *t, uint32_t need, const char **error_r)
{
	if (!t->exists || t->rights == 0) {
		*error_r = "no such folder";
		return STORE_E_NOTFOUND;
	}
	if ((t->rights & need) != need) {
		*error_r = imap_acl_denied;
		return STORE_E_NOPERM;
	}
	return STORE_OK;
}

enum store_status imap_acl_open_target(struct imap_user *u, const char *name, uint32_t need,
				       struct imap_target *t, struct store_folder **folder_r,
				       const char **error_r)
{
	enum store_status st;

	st = imap_acl_resolve(u, name, t, error_r);
	if (st != STORE_OK)
		return st;
	if (t->ns == IMAP_NS_PERSONAL)
		st = STORE_OK;  /* the store says whether it exists */
	else
		st = imap_acl_need(t, need, error_r);
	if (st == STORE_OK)
		st = store_folder_open(t->owner, t->folder, folder_r, error_r);
	if (st != STORE_OK) {
		uint32_t rights = t->rights;

		imap_target_free(t);
		t->rights = rights;
	}
	return st;
}

enum store_status imap_acl_open(struct imap_user *u, const char *name, uint32_t need,
				struct store_folder **folder_r, uint32_t *rights_r,
				const char **error_r)
{
	struct imap_target t;
	enum store_status st;

	st = imap_acl_open_target(u, name, need, &t, folder_r, error_r);
	if (rights_r != NULL)
		*rights_r = t.rights;
	if (st == STORE_OK)
		imap_target_free(&t);
	return st;
}

/* ---- quota ---- */

void imap_acl_quota_warn(const struct imap_target *t, const struct store_quota *after,
			 uint64_t added_bytes, uint64_t added_messages)
{
	struct cfg *cfg;

	/* public folders have no quota and nobody to warn */
	if (t->owner_id == NULL || (after->max_bytes == 0 && after->max_messages == 0))
		return;
	cfg = cfg_current();
	if (cfg == NULL)
		return;
	(void)store_quota_warn(t->owner, t->owner_id, after, added_bytes, added_messages,
			       (unsigned)cfg->s.queue_quota_warning_percent, cfg->s.server_hostname);
	cfg_unref(&cfg);
}

enum store_status imap_acl_owner_open(struct imap_user *u, const char *owner,
				      struct store_user **owner_r, const char **error_r)
{
	struct directory *dir = directory_current();
	const struct dir_user *du = dir != NULL ? directory_find_user(dir, owner) : NULL;
	const char *at = du != NULL ? strrchr(du->address, '@') : NULL;
	struct store_folder_info *list = NULL;
	size_t count = 0;
	enum store_status st;
	struct imap_target t;
	struct acl_who w;
	bool seen = false;

	*owner_r = NULL;
	if (at == NULL || strchr(owner, '@') == NULL) {
		directory_unref(&dir);
		*error_r = "no such quota root";
		return STORE_E_NOTFOUND;
	}
	memset(&t, 0, sizeof(t));
	t.ns = IMAP_NS_OTHER_USERS;
	{
		char *local = xstrndup(du->address, (size_t)(at - du->address));

		st = store_user_open(imap_store(), at + 1, local, &t.owner, error_r);
		free(local);
	}
	if (st == STORE_OK) {
		store_user_set_quota(t.owner, du->quota_storage, du->quota_messages);
		if (strcasecmp(du->address, u->identity) == 0)
			seen = true;  /* one's own */
		else
			st = store_folder_list(t.owner, &list, &count, error_r);
	}
	directory_unref(&dir);
	if (st == STORE_OK && !seen) {
		/* any right on any of the owner's folders (RFC 4314 6: the
		 * answer must not tell that a mailbox one cannot see exists) */
		who_load(u->identity, &w);
		for (size_t i = 0; i < count && !seen; i++) {
			uint32_t rights = 0;
			const char *error;

			seen = list[i].exists &&
			       folder_rights(&t, &w, list[i].name, &rights, &error) == STORE_OK &&
			       rights != 0;
		}
		who_free(&w);
		store_folder_list_free(&list, count);
	}
	if (st == STORE_OK && !seen) {
		*error_r = "no such quota root";
		st = STORE_E_NOTFOUND;
	}
	if (st == STORE_OK)
		*owner_r = t.owner;
	else if (t.owner != NULL)
		store_user_unref(&t.owner);
	return st;
}

/* ---- LIST: the folders of others ---- */

static void add_info(struct store_folder_info **list, size_t *n, char *name, bool exists,
		     bool children)
{
	struct store_folder_info *f;

	*list = xreallocarray(*list, *n + 1, sizeof(**list));
	f = &(*list)[(*n)++];
	memset(f, 0, sizeof(*f));
	f->name = name;
	f->exists = exists;
	f->has_children = children;
}

/* Adds prefix/<folder> for each folder of owner on which w has "l"; the
 * prefix itself is added (\Noselect) when anything is. */
static void list_owner(struct store_user *owner, enum imap_ns ns, const char *prefix,
		       const struct acl_who *w, struct store_folder_info **out, size_t *n)
{
	struct store_folder_info *list;
	size_t count, start = *n;
	const char *error;
	struct imap_target t;
	bool *visible;

	if (store_folder_list(owner, &list, &count, &error) != STORE_OK)
		return;
	memset(&t, 0, sizeof(t));
	t.owner = owner;
	t.ns = ns;
	/* one ACL read per folder; the list is sorted, so a folder's
	 * children follow it */
	visible = xcalloc(count + 1, sizeof(*visible));
	for (size_t i = 0; i < count; i++) {
		uint32_t rights;

		visible[i] = list[i].exists &&
			     folder_rights(&t, w, list[i].name, &rights, &error) == STORE_OK &&
			     (rights & STORE_ACL_L) != 0;
	}
	for (size_t i = 0; i < count; i++) {
		size_t len = strlen(list[i].name);
		bool children = false;

		if (!visible[i])
			continue;
		for (size_t k = i + 1; k < count && !children; k++) {
			children = visible[k] && strncmp(list[k].name, list[i].name, len) == 0 &&
				   list[k].name[len] == '/';
		}
		add_info(out, n, xasprintf("%s/%s", prefix, list[i].name), true, children);
	}
	free(visible);
	store_folder_list_free(&list, count);
	if (*n > start)
		add_info(out, n, xstrdup(prefix), false, true);
}

void imap_acl_list_shared(struct imap_user *u, struct store_folder_info **list_r, size_t *count_r)
{
	struct store_folder_info *out = NULL;
	struct store_acl_owner *owners;
	size_t n = 0, nowners = 0, before;
	struct store_user *su;
	struct acl_who w;
	const char *error;

	who_load(u->identity, &w);
	before = n;
	if (store_acl_owners(imap_store(), &owners, &nowners, &error) == STORE_OK) {
		for (size_t i = 0; i < nowners; i++) {
			char *address = xasprintf("%s@%s", owners[i].user, owners[i].domain), *prefix;

			if (owners[i].user[0] == '#' || strcasecmp(address, u->identity) == 0 ||
			    store_user_open(imap_store(), owners[i].domain, owners[i].user, &su,
					    &error) != STORE_OK) {
				free(address);
				continue;
			}
			prefix = xasprintf(IMAP_NS_OTHER "/%s", address);
			list_owner(su, IMAP_NS_OTHER_USERS, prefix, &w, &out, &n);
			free(prefix);
			free(address);
			store_user_unref(&su);
		}
		store_acl_owners_free(&owners, nowners);
	}
	if (n > before)
		add_info(&out, &n, xstrdup(IMAP_NS_OTHER), false, true);
	if (w.domain[0] != '\0' &&
	    store_user_open(imap_store(), w.domain, STORE_PUBLIC_USER, &su, &error) == STORE_OK) {
		list_owner(su, IMAP_NS_PUBLIC_FOLDERS, IMAP_NS_PUBLIC, &w, &out, &n);
		store_user_unref(&su);
	}
	who_free(&w);
	*list_r = out;
	*count_r = n;
}

/* ---- rights of the selected folder during a session ----
 *
 * RFC 4314 5.1.1 lets a server keep the rights of SELECT until the next
 * SELECT; we do not: a revoked right must stop working at once.  Every
 * ACL change raises store_acl_generation() and every users.cfg change
 * directory_generation(); before reading a new command, a session on a
 * shared folder whose rights were computed under older values computes
 * them again (one ACL read, on a worker) and tells the client:
 *   - no "r" any more (or the folder is gone from the user's view):
 *     untagged BYE and the connection closes (RFC 4314 5.1.1 allows it;
 *     the other choice, NO to every command until the folder is closed,
 *     is handled badly by most clients);
 *   - read-write became read-only or back (SELECT, not EXAMINE): an
 *     untagged OK [READ-ONLY] or [READ-WRITE] (RFC 3501 7.1);
 *   - the flags the user may change differ: OK [PERMANENTFLAGS].
 * The command that follows runs with the new rights: STORE, EXPUNGE,
 * COPY/MOVE out answer NO [NOPERM] for a right that is gone.  In IDLE the
 * same check runs before the store's changes are told and at each
 * keepalive, so nothing of the folder reaches a user who lost "r".
 */

struct refresh_data {
	char *name;
	bool idle;                /* started during IDLE: back to IDLE after */
	uint64_t sel_gen;
	uint64_t acl_gen, dir_gen;
	uint32_t rights;          /* 0: no right, or the folder is gone */
};

static void refresh_cleanup(struct imap_job *job)
{
	struct refresh_data *d = job->data;

	free(d->name);
	free(d);
}

bool imap_acl_rights_stale(const struct imap_session *s)
{
	const struct imap_selected *sel = s->sel;

	return s->state == IMAP_STATE_SELECTED && sel != NULL && sel->shared &&
	       (sel->acl_gen != store_acl_generation() || sel->dir_gen != directory_generation());
}

static void refresh_run(struct imap_job *job)
{
	struct refresh_data *d = job->data;
	struct imap_target t;
	const char *error;

	d->acl_gen = store_acl_generation();
	d->dir_gen = directory_generation();
	d->rights = 0;
	/* a failure (a damaged #acl) grants nothing: fail closed */
	if (imap_acl_resolve(job->user, d->name, &t, &error) == STORE_OK) {
		d->rights = t.exists ? t.rights : 0;
		imap_target_free(&t);
	}
}

/* Applies the new rights; false when the session is closing. */
static bool refresh_apply(struct imap_session *s, const struct refresh_data *d)
{
	struct imap_selected *sel = s->sel;
	bool was_readonly;
	struct buf before, after;

	if (sel == NULL || sel->gen != d->sel_gen)
		return true;  /* another selection since: it has its own rights */
	sel->acl_gen = d->acl_gen;
	sel->dir_gen = d->dir_gen;
	if ((d->rights & STORE_ACL_R) == 0) {
		log_info(IMAP_LOG, "conn=%llu user=%s read right on the selected mailbox revoked: closing",
			 (unsigned long long)s->conn->id, s->identity);
		imap_close_with(s, "Access to the selected mailbox was revoked");
		return false;
	}
	if (d->rights == sel->rights)
		return true;
	buf_init(&before, SIZE_MAX / 4);
	buf_init(&after, SIZE_MAX / 4);
	imap_put_permanentflags(sel, &before);
	was_readonly = sel->readonly;
	sel->rights = d->rights;
	if (!sel->examined)
		sel->readonly = (d->rights & (STORE_ACL_S | STORE_ACL_W | STORE_ACL_T | STORE_ACL_E)) == 0;
	if (sel->readonly != was_readonly)
		imap_printf(s, "* OK [%s] Rights changed\r\n", sel->readonly ? "READ-ONLY" : "READ-WRITE");
	imap_put_permanentflags(sel, &after);
	if (before.len != after.len || memcmp(before.data, after.data, after.len) != 0)
		imap_write(s, after.data, after.len);
	buf_deinit(&before);
	buf_deinit(&after);
	return true;
}

static void refresh_done(struct imap_session *s, struct imap_job *job)
{
	struct refresh_data *d = job->data;

	if (d->idle)
		s->syncing = false;
	if (!refresh_apply(s, d) || !d->idle)
		return;
	/* as after an IDLE flag sync (imap_session.c): back to IDLE, tell
	 * what the store notified meanwhile, then a DONE that came */
	if (s->mode == IMAP_MODE_COMMAND && s->idle_tag != NULL)
		s->mode = IMAP_MODE_IDLE;
	if (s->mode == IMAP_MODE_IDLE && s->sel != NULL && imap_sync_pending(s))
		imap_sync(s, true, NULL);
	if (s->mode == IMAP_MODE_IDLE)
		imap_process_input(s);
}

void imap_acl_rights_refresh(struct imap_session *s)
{
	struct refresh_data *d = xcalloc(1, sizeof(*d));
	struct imap_job *job;

	d->name = xstrdup(s->sel->name);
	d->sel_gen = s->sel->gen;
	d->idle = s->mode == IMAP_MODE_IDLE;
	job = imap_job_new(s, refresh_run, refresh_done);
	job->cleanup = refresh_cleanup;
	job->data = d;
	if (d->idle)
		s->syncing = true;  /* no IDLE sync meanwhile */
	imap_job_submit(s, job);
	/* a refused job leaves stale rights: do not go on with them */
	if (s->mode != IMAP_MODE_BUSY) {
		s->syncing = false;
		imap_close_with(s, "Server busy, try again later");
	}
}

/* ---- the ACL commands ---- */

enum acl_cmd { ACL_SET, ACL_DELETE, ACL_GET, ACL_LIST, ACL_MY };

static const char *const acl_names[] = { "SETACL", "DELETEACL", "GETACL", "LISTRIGHTS",
					 "MYRIGHTS" };

struct acl_data {
	enum acl_cmd cmd;
	char *name;               /* store form */
	char *client_name;        /* as the client wrote it (echoed) */
	char *identifier;
	bool negative;
	enum store_acl_mod mod;
	uint32_t rights;
	size_t max_entries;
};

static void acl_cleanup(struct imap_job *job)
{
	struct acl_data *d = job->data;

	free(d->name);
	free(d->client_name);
	free(d->identifier);
	free(d);
}

/* An identifier as an atom when it can be one, else a quoted string
 * (identifiers have no '"' or '\\'). */
static void put_astring(struct buf *out, const char *text)
{
	bool atom = text[0] != '\0';

	for (const char *p = text; *p != '\0' && atom; p++) {
		if (strchr("(){ %*\"\\]", *p) != NULL || (unsigned char)*p < 0x21 ||
		    (unsigned char)*p > 0x7e)
			atom = false;
	}
	if (buf_printf(out, atom ? "%s" : "\"%s\"", text) < 0)
		panic("imap acl: buffer");
}

static void put_rights(struct buf *out, uint32_t rights)
{
	char r[STORE_ACL_RIGHTS_MAX];

	put_astring(out, store_acl_rights_format(rights, r));
}

/* Checks an identifier for SETACL/DELETEACL: "anyone", or a user or group
 * the directory knows (stored as its address, lower case). */
static bool identifier_known(const char *id, char **canon_r)
{
	struct directory *dir;
	const struct dir_user *du;
	const struct dir_group *dg;
	bool ok = false;

	if (strcmp(id, STORE_ACL_ANYONE) == 0) {
		*canon_r = xstrdup(id);
		return true;
	}
	dir = directory_current();
	if (dir == NULL)
		return false;
	du = strchr(id, '@') != NULL ? directory_find_user(dir, id) : NULL;
	dg = strchr(id, '@') != NULL ? directory_find_group(dir, id) : NULL;
	if (du != NULL) {
		*canon_r = xstrdup(du->address);
		ok = true;
	} else if (dg != NULL) {
		*canon_r = xstrdup(dg->address);
		ok = true;
	}
	directory_unref(&dir);
	return ok;
}

/* "* WHAT mailbox" (the mailbox as the client's form quotes it). */
static void acl_line_start(struct buf *line, const char *what, const char *client_name)
{
	if (buf_printf(line, "* %s ", what) < 0 || buf_append_str(line, client_name) < 0)
		panic("imap acl: buffer");
}

static void acl_run(struct imap_job *job)
{
	struct acl_data *d = job->data;
	struct imap_target t;
	const char *error;
	enum store_status st;
	uint32_t need;
	struct buf line;

	st = imap_acl_resolve(job->user, d->name, &t, &error);
	if (st != STORE_OK) {
		imap_job_fail(job, st, error);
		return;
	}
	if (t.ns == IMAP_NS_PERSONAL) {
		/* the owner: the folder must exist */
		struct store_acl acl;

		st = store_acl_get(t.owner, t.folder, &acl, NULL, &error);
		if (st == STORE_OK)
			store_acl_free(&acl);
	} else {
		/* MYRIGHTS: any right; the others need "a" (RFC 4314 4) */
		need = d->cmd == ACL_MY ? 0 : STORE_ACL_A;
		st = imap_acl_need(&t, need, &error);
	}
	if (st != STORE_OK) {
		imap_job_fail(job, st, error);
		imap_target_free(&t);
		return;
	}
	buf_init(&line, SIZE_MAX / 4);
	switch (d->cmd) {
	case ACL_SET:
	case ACL_DELETE:
		if (t.owner_id != NULL && strcasecmp(d->identifier, t.owner_id) == 0) {
			imap_job_fail(job, STORE_E_NOPERM, "the owner's rights cannot change");
			break;
		}
		st = store_acl_set(t.owner, t.folder, d->identifier, d->negative,
				   d->cmd == ACL_DELETE ? STORE_ACL_REPLACE : d->mod,
				   d->cmd == ACL_DELETE ? 0 : d->rights, d->max_entries, &error);
		if (st != STORE_OK)
			imap_job_fail(job, st, error);
		break;
	case ACL_GET: {
		struct store_acl acl;
		bool present;

		st = store_acl_get(t.owner, t.folder, &acl, &present, &error);
		if (st != STORE_OK) {
			imap_job_fail(job, st, error);
			break;
		}
		acl_line_start(&line, "ACL", d->client_name);
		if (t.ns != IMAP_NS_PUBLIC_FOLDERS && t.owner_id != NULL) {
			/* the owner's implicit rights come first */
			if (buf_append_char(&line, ' ') < 0)
				panic("imap acl: buffer");
			put_astring(&line, t.owner_id);
			if (buf_append_char(&line, ' ') < 0)
				panic("imap acl: buffer");
			put_rights(&line, STORE_ACL_ALL);
		} else if (!present) {
			if (buf_printf(&line, " %s ", STORE_ACL_ANYONE) < 0)
				panic("imap acl: buffer");
			put_rights(&line, IMAP_ACL_PUBLIC_DEFAULT);
		}
		for (size_t i = 0; i < acl.count; i++) {
			if (buf_printf(&line, " %s", acl.entries[i].negative ? "-" : "") < 0)
				panic("imap acl: buffer");
			put_astring(&line, acl.entries[i].identifier);
			if (buf_append_char(&line, ' ') < 0)
				panic("imap acl: buffer");
			put_rights(&line, acl.entries[i].rights);
		}
		store_acl_free(&acl);
		if (buf_append_str(&line, "\r\n") < 0)
			panic("imap acl: buffer");
		evbuffer_add(job->out, line.data, line.len);
		break;
	}
	case ACL_LIST:
		acl_line_start(&line, "LISTRIGHTS", d->client_name);
		if (buf_append_char(&line, ' ') < 0)
			panic("imap acl: buffer");
		put_astring(&line, d->identifier);
		if (t.owner_id != NULL && t.ns != IMAP_NS_PUBLIC_FOLDERS &&
		    strcasecmp(d->identifier, t.owner_id) == 0) {
			/* the owner always has everything */
			if (buf_append_char(&line, ' ') < 0)
				panic("imap acl: buffer");
			put_rights(&line, STORE_ACL_ALL);
		} else {
			/* nothing is required; each right can be granted on its
			 * own (c and d are not listed: they are k x and t e) */
			if (buf_append_str(&line, " \"\" l r s w i p k x t e a") < 0)
				panic("imap acl: buffer");
		}
		if (buf_append_str(&line, "\r\n") < 0)
			panic("imap acl: buffer");
		evbuffer_add(job->out, line.data, line.len);
		break;
	case ACL_MY:
		acl_line_start(&line, "MYRIGHTS", d->client_name);
		if (buf_append_char(&line, ' ') < 0)
			panic("imap acl: buffer");
		put_rights(&line, t.rights);
		if (buf_append_str(&line, "\r\n") < 0)
			panic("imap acl: buffer");
		evbuffer_add(job->out, line.data, line.len);
		break;
	}
	buf_deinit(&line);
	imap_target_free(&t);
}

static void acl_done(struct imap_session *s, struct imap_job *job)
{
	struct acl_data *d = job->data;

	evbuffer_add_buffer(bufferevent_get_output(s->conn->bev), job->out);
	if (job->status == STORE_E_NOTFOUND) {
		imap_no(s, "[NONEXISTENT] Mailbox does not exist");
		return;
	}
	if (job->status != STORE_OK) {
		imap_no_store(s, job->status, job->error, acl_names[d->cmd]);
		return;
	}
	if (d->cmd == ACL_SET || d->cmd == ACL_DELETE)
		log_info(IMAP_LOG, "conn=%llu user=%s %s identifier=%s", (unsigned long long)s->conn->id,
			 s->identity, acl_names[d->cmd], d->identifier);
	imap_ok(s, "%s completed", acl_names[d->cmd]);
}

/* Mailbox argument: the store name and the client's text (quoted for the
 * echo).  Returns -1 after answering. */
static int acl_mailbox(struct imap_session *s, const struct imap_arg *a, struct acl_data *d)
{
	const char *text;
	size_t len;
	struct buf name;

	text = imap_arg_astring(&s->parser, a, &len);
	buf_init(&name, STORE_MAX_FOLDER_NAME * 4 + 16);
	if (text == NULL || len > STORE_MAX_FOLDER_NAME * 4 || imap_name_in(s, text, len, &name) < 0 ||
	    name.len == 0) {
		buf_deinit(&name);
		imap_bad(s, "Invalid mailbox name");
		return -1;
	}
	d->name = buf_steal(&name);
	buf_deinit(&name);
	buf_init(&name, SIZE_MAX / 4);
	if (imap_name_out(s, d->name, &name) < 0) {
		buf_deinit(&name);
		imap_bad(s, "Invalid mailbox name");
		return -1;
	}
	d->client_name = buf_steal(&name);
	buf_deinit(&name);
	return 0;
}

static void acl_command(struct imap_session *s, struct imap_args *args, enum acl_cmd cmd)
{
	static const unsigned nargs[] = { 3, 2, 1, 2, 1 };
	static const char *const usage[] = {
		"Usage: SETACL mailbox identifier rights",
		"Usage: DELETEACL mailbox identifier",
		"Usage: GETACL mailbox",
		"Usage: LISTRIGHTS mailbox identifier",
		"Usage: MYRIGHTS mailbox",
	};
	const struct imap_arg *mb = imap_args_next(args), *id = NULL, *rights = NULL;
	struct acl_data *d;
	struct imap_job *job;

	if (mb == NULL || imap_args_left(args) != nargs[cmd] - 1) {
		imap_bad(s, "%s", usage[cmd]);
		return;
	}
	if (nargs[cmd] >= 2)
		id = imap_args_next(args);
	if (nargs[cmd] >= 3)
		rights = imap_args_next(args);
	d = xcalloc(1, sizeof(*d));
	d->cmd = cmd;
	d->max_entries = (size_t)s->conn->cfg->s.imap_max_acl_entries;
	if (id != NULL) {
		size_t len;
		const char *text = imap_arg_astring(&s->parser, id, &len);

		if (text != NULL && len > 0 && text[0] == '-') {
			d->negative = true;
			text++;
			len--;
		}
		if (text == NULL || !store_acl_identifier_valid(text, len)) {
			acl_cleanup(&(struct imap_job){ .data = d });
			imap_bad(s, "Invalid identifier");
			return;
		}
		d->identifier = xstrndup(text, len);
		if (d->negative && cmd == ACL_LIST) {
			acl_cleanup(&(struct imap_job){ .data = d });
			imap_bad(s, "Invalid identifier");
			return;
		}
		if (cmd == ACL_SET || cmd == ACL_DELETE) {
			char *canon;

			if (!identifier_known(d->identifier, &canon)) {
				acl_cleanup(&(struct imap_job){ .data = d });
				imap_no(s, "[CANNOT] Unknown identifier: not anyone, a user or a group");
				return;
			}
			free(d->identifier);
			d->identifier = canon;
		}
	}
	if (rights != NULL) {
		size_t len;
		const char *text = imap_arg_astring(&s->parser, rights, &len);

		d->mod = STORE_ACL_REPLACE;
		if (text != NULL && len > 0 && (text[0] == '+' || text[0] == '-')) {
			d->mod = text[0] == '+' ? STORE_ACL_ADD : STORE_ACL_REMOVE;
			text++;
			if (--len == 0)
				text = NULL;  /* "+" or "-" alone changes nothing: a mistake */
		}
		if (text == NULL || store_acl_rights_parse(text, len, &d->rights) < 0) {
			/* RFC 4314 3.1: an unknown right is BAD */
			acl_cleanup(&(struct imap_job){ .data = d });
			imap_bad(s, "Invalid rights (known: lrswipkxteacd)");
			return;
		}
	}
	if (acl_mailbox(s, mb, d) < 0) {
		acl_cleanup(&(struct imap_job){ .data = d });
		return;
	}
	job = imap_job_new(s, acl_run, acl_done);
	job->cleanup = acl_cleanup;
	job->data = d;
	imap_job_submit(s, job);
}

void imap_cmd_setacl(struct imap_session *s, struct imap_args *args)
{
	acl_command(s, args, ACL_SET);
}

void imap_cmd_deleteacl(struct imap_session *s, struct imap_args *args)
{
	acl_command(s, args, ACL_DELETE);
}

void imap_cmd_getacl(struct imap_session *s, struct imap_args *args)
{
	acl_command(s, args, ACL_GET);
}

void imap_cmd_listrights(struct imap_session *s, struct imap_args *args)
{
	acl_command(s, args, ACL_LIST);
}

void imap_cmd_myrights(struct imap_session *s, struct imap_args *args)
{
	acl_command(s, args, ACL_MY);
}

static bool under_shared_prefix(const char *name)
{
	char *owner;
	const char *rest;
	enum imap_ns ns = split_name(name, &owner, &rest);

	free(owner);
	return ns != IMAP_NS_PERSONAL;
}

void imap_acl_list_merge(struct imap_user *u, struct store_folder_info **list, size_t *count)
{
	struct store_folder_info *shared, *own = *list, *out;
	size_t nshared, n = 0;

	imap_acl_list_shared(u, &shared, &nshared);
	out = xmallocarray(*count + nshared + 1, sizeof(*out));
	for (size_t i = 0; i < *count; i++) {
		/* the user's subscriptions to shared folders are in the
		 * user's own list: they mark the shared entries */
		if (!under_shared_prefix(own[i].name)) {
			out[n++] = own[i];
			own[i].name = NULL;
		}
	}
	for (size_t i = 0; i < nshared; i++) {
		for (size_t k = 0; k < *count; k++) {
			if (own[k].name != NULL && own[k].subscribed &&
			    strcmp(own[k].name, shared[i].name) == 0)
				shared[i].subscribed = true;
		}
		out[n++] = shared[i];
	}
	free(shared);
	store_folder_list_free(list, *count);
	*list = out;
	*count = n;
}
