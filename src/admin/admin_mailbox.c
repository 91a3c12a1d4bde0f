/*
 * Mailbox commands of the administration API (docs/control-protocol.md,
 * docs/store.md): figures per folder, and the re-index that picks up
 * .eml files added or removed by hand.
 *
 *   {"command":"mailbox-stats","address":"a@b"}
 *       -> {"ok":true,"address":"a@b","folders":[{name,role,messages,unseen,
 *           size,uidvalidity,uidnext,highestmodseq,index_size}...],
 *           "messages":N,"size":B,"index_size":B,"quota":{...}}
 *   {"command":"mailbox-reindex","address":"a@b"[,"folder":"INBOX"][,"rebuild":true]}
 *       -> {"ok":true,"address":"a@b","folders":[{name,messages,added,removed,
 *           rebuilt,uidvalidity_changed}...]}
 *
 * The address is a login name (directory_find_user: bare names mean the
 * primary domain), so the mailbox is the one local delivery writes to.  A
 * folder name goes through the store's own check (store_folder_name_valid:
 * no "." or ".." levels, no control characters) before any path is built,
 * and the store escapes every level again, so no request reaches outside
 * mail/.
 *
 * The store blocks (disk, SQLite); like queue-inject these run on the main
 * thread: administrative and rare.  A re-index of a very large folder holds
 * the control socket for its duration (docs/store.md has the figures).
 */
#include "admin/admin.h"

#include <stdlib.h>
#include <string.h>

#include "core/control.h"
#include "core/log.h"
#include "core/str.h"
#include "directory/directory.h"
#include "store/store.h"

/* Opens the mailbox of the user that request's "address" names, with the
 * quota from users.cfg.  Returns the user handle, or NULL with *reply_r. */
static struct store_user *open_mailbox(json_t *request, const struct admin_engine *engine,
				       char **address_r, json_t **reply_r)
{
	json_t *jaddr = json_object_get(request, "address");
	const char *address = json_string_value(jaddr);
	struct store *store = engine->store != NULL ? *engine->store : NULL;
	struct directory *dir;
	const struct dir_user *du;
	struct store_user *su = NULL;
	const char *error = NULL;
	enum store_status st;

	if (address == NULL || address[0] == '\0' || strlen(address) != json_string_length(jaddr)) {
		*reply_r = control_error("the request needs \"address\": a user's address");
		return NULL;
	}
	if (store == NULL) {
		*reply_r = control_error("the message store is not open");
		return NULL;
	}
	dir = directory_current();
	if (dir == NULL) {
		*reply_r = control_error("the directory (users.cfg) is not loaded");
		return NULL;
	}
	du = directory_find_user(dir, address);
	if (du == NULL) {
		*reply_r = control_error("no user %s: not a login name in users.cfg", address);
		directory_unref(&dir);
		return NULL;
	}
	/* The same directory names as local delivery (queue_local.c). */
	st = store_user_open(store, du->domain->name, du->name, &su, &error);
	if (st != STORE_OK) {
		*reply_r = control_error("mailbox of %s: %s (%s)", du->address, store_status_str(st),
					 error != NULL ? error : "");
		directory_unref(&dir);
		return NULL;
	}
	store_user_set_quota(su, du->quota_storage, du->quota_messages);
	*address_r = xstrdup(du->address);
	directory_unref(&dir);
	return su;
}

static const char *role_name(enum store_role role)
{
	if (role == STORE_ROLE_INBOX)
		return "INBOX";
	return store_role_attr(role);
}

static json_t *quota_json(const struct store_quota *q)
{
	json_t *o = json_pack("{s:I,s:I,s:I,s:I}", "bytes", (json_int_t)q->bytes, "messages",
			      (json_int_t)q->messages, "max_bytes", (json_int_t)q->max_bytes,
			      "max_messages", (json_int_t)q->max_messages);

	/* Percentages of the limits (integer, rounded down); null when unlimited. */
	json_object_set_new(o, "bytes_percent",
			    q->max_bytes == 0 ? json_null()
					      : json_integer((json_int_t)(q->bytes * 100 / q->max_bytes)));
	json_object_set_new(o, "messages_percent",
			    q->max_messages == 0
				    ? json_null()
				    : json_integer((json_int_t)(q->messages * 100 / q->max_messages)));
	return o;
}

json_t *admin_do_mailbox_stats(json_t *request, const struct admin_engine *engine)
{
	json_t *reply = NULL, *folders;
	char *address = NULL;
	struct store_user *su = open_mailbox(request, engine, &address, &reply);
	struct store_mailbox_stats stats;
	const char *error = NULL;
	enum store_status st;

	if (su == NULL)
		return reply;
	st = store_mailbox_stats(su, &stats, &error);
	if (st != STORE_OK) {
		reply = control_error("mailbox of %s: %s (%s)", address, store_status_str(st),
				      error != NULL ? error : "");
		goto out;
	}
	folders = json_array();
	for (size_t i = 0; i < stats.count; i++) {
		const struct store_folder_stats *f = &stats.folders[i];
		const char *role = role_name(f->role);

		json_array_append_new(
			folders,
			json_pack("{s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "name", f->name, "role",
				  role != NULL ? json_string(role) : json_null(), "messages",
				  (json_int_t)f->messages, "unseen", (json_int_t)f->unseen, "size",
				  (json_int_t)f->bytes, "uidvalidity", (json_int_t)f->uidvalidity,
				  "uidnext", (json_int_t)f->uidnext, "highestmodseq",
				  (json_int_t)f->highestmodseq, "index_size", (json_int_t)f->index_bytes));
	}
	reply = control_ok();
	json_object_set_new(reply, "address", json_string(address));
	json_object_set_new(reply, "folders", folders);
	json_object_set_new(reply, "messages", json_integer((json_int_t)stats.messages));
	json_object_set_new(reply, "size", json_integer((json_int_t)stats.bytes));
	json_object_set_new(reply, "index_size", json_integer((json_int_t)stats.index_bytes));
	json_object_set_new(reply, "quota", quota_json(&stats.quota));
	store_mailbox_stats_free(&stats);
out:
	store_user_unref(&su);
	free(address);
	return reply;
}

static json_t *reindex_one(struct store_user *su, const char *name, bool rebuild,
			   const char **error_r, enum store_status *st_r)
{
	struct store_reindex_result r;

	memset(&r, 0, sizeof(r));
	*st_r = store_reindex_folder(su, name, rebuild, &r, error_r);
	if (*st_r != STORE_OK)
		return NULL;
	return json_pack("{s:s,s:I,s:I,s:I,s:b,s:b}", "name", name, "messages",
			 (json_int_t)r.messages, "added", (json_int_t)r.added, "removed",
			 (json_int_t)r.removed, "rebuilt", r.rebuilt, "uidvalidity_changed",
			 r.uidvalidity_changed);
}

json_t *admin_do_mailbox_reindex(json_t *request, const struct admin_engine *engine)
{
	json_t *jfolder = json_object_get(request, "folder");
	const char *folder = json_string_value(jfolder);
	bool rebuild = json_is_true(json_object_get(request, "rebuild"));
	json_t *reply = NULL, *done, *one;
	char *address = NULL;
	struct store_user *su;
	struct store_folder_info *list = NULL;
	size_t n = 0;
	const char *error = NULL, *reason = NULL;
	enum store_status st = STORE_OK;

	/* The name is checked before the mailbox is even opened: a refused
	 * name creates nothing on disk. */
	if (jfolder != NULL && !json_is_null(jfolder)) {
		if (folder == NULL || strlen(folder) != json_string_length(jfolder))
			return control_error("\"folder\" must be a folder name");
		if (!store_folder_name_valid(folder, &reason))
			return control_error("invalid folder name: %s", reason);
	}
	su = open_mailbox(request, engine, &address, &reply);
	if (su == NULL)
		return reply;
	done = json_array();
	if (folder != NULL) {
		one = reindex_one(su, folder, rebuild, &error, &st);
		if (one == NULL)
			goto fail;
		json_array_append_new(done, one);
	} else {
		st = store_folder_list(su, &list, &n, &error);
		if (st != STORE_OK)
			goto fail;
		for (size_t i = 0; i < n; i++) {
			if (!list[i].exists)
				continue;
			folder = list[i].name;
			one = reindex_one(su, folder, rebuild, &error, &st);
			if (one == NULL)
				goto fail;
			json_array_append_new(done, one);
		}
	}
	log_info("admin", "mailbox=%s folder=%s re-indexed%s", address,
		 list == NULL ? folder : "(all)", rebuild ? " (rebuilt)" : "");
	reply = control_ok();
	json_object_set_new(reply, "address", json_string(address));
	json_object_set_new(reply, "folders", done);
	goto out;
fail:
	reply = control_error("mailbox of %s, folder %s: %s (%s)", address, folder,
			      store_status_str(st), error != NULL ? error : "");
	json_decref(done);
out:
	store_folder_list_free(&list, n);
	store_user_unref(&su);
	free(address);
	return reply;
}
