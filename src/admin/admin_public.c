/*
 * Public folders of a domain in the administration API (docs/imap.md
 * "Shared folders", docs/control-protocol.md): the folders of the store's
 * pseudo-user #public that every user of the domain sees under
 * "Public Folders/" in IMAP.
 *
 *   {"command":"public-create","domain":"example.com","folder":"News"}
 *       -> {"ok":true}
 *   {"command":"public-list","domain":"example.com"}
 *       -> {"ok":true,"domain":"example.com","folders":[{"name":"News",
 *           "acl":[{"identifier":"anyone","rights":"lr"}],"default":true}...]}
 *   {"command":"public-setacl","domain":"example.com","folder":"News",
 *    "identifier":"anyone"|"-user@x"|"group@x","rights":"lrs"|"+w"|"-w"|""}
 *       -> {"ok":true}
 *
 * The domain must be one of users.cfg; identifiers are "anyone" or a user
 * or group address the directory knows; the folder name goes through the
 * store's checks.  Like the mailbox commands these run on the main thread.
 */
#include "admin/admin.h"

#include <stdlib.h>
#include <string.h>

#include "core/control.h"
#include "core/log.h"
#include "directory/directory.h"
#include "store/store.h"

/* The #public mailbox of request's "domain", or NULL with *reply_r. */
static struct store_user *open_public(json_t *request, const struct admin_engine *engine,
				      char **domain_r, json_t **reply_r)
{
	json_t *jdom = json_object_get(request, "domain");
	const char *name = json_string_value(jdom);
	struct store *store = engine->store != NULL ? *engine->store : NULL;
	struct directory *dir;
	const struct dir_domain *dom;
	struct store_user *su = NULL;
	const char *error = "";
	enum store_status st;

	if (name == NULL || name[0] == '\0' || strlen(name) != json_string_length(jdom)) {
		*reply_r = control_error("the request needs \"domain\": a domain of users.cfg");
		return NULL;
	}
	if (store == NULL) {
		*reply_r = control_error("the message store is not open");
		return NULL;
	}
	dir = directory_current();
	dom = dir != NULL ? directory_find_domain(dir, name) : NULL;
	if (dom == NULL) {
		*reply_r = control_error("no domain %s in users.cfg", name);
		directory_unref(&dir);
		return NULL;
	}
	st = store_user_open(store, dom->name, STORE_PUBLIC_USER, &su, &error);
	if (st != STORE_OK)
		*reply_r = control_error("public folders of %s: %s (%s)", dom->name,
					 store_status_str(st), error);
	else
		*domain_r = xstrdup(dom->name);
	directory_unref(&dir);
	return st == STORE_OK ? su : NULL;
}

static const char *folder_arg(json_t *request, json_t **reply_r)
{
	json_t *j = json_object_get(request, "folder");
	const char *folder = json_string_value(j), *reason;

	if (folder == NULL || strlen(folder) != json_string_length(j) ||
	    !store_folder_name_valid(folder, &reason)) {
		*reply_r = control_error("the request needs \"folder\": a valid folder name");
		return NULL;
	}
	return folder;
}

json_t *admin_do_public_create(json_t *request, const struct admin_engine *engine)
{
	json_t *reply = NULL;
	const char *folder = folder_arg(request, &reply), *error = "";
	struct store_user *su;
	enum store_status st;
	char *domain;

	if (folder == NULL)
		return reply;
	su = open_public(request, engine, &domain, &reply);
	if (su == NULL)
		return reply;
	st = store_folder_create(su, folder, STORE_ROLE_NONE, &error);
	store_user_unref(&su);
	if (st != STORE_OK)
		reply = control_error("public folder %s of %s: %s (%s)", folder, domain,
				      store_status_str(st), error);
	else
		log_info("admin", "public folder %s of %s created", folder, domain);
	free(domain);
	return reply != NULL ? reply : json_pack("{s:b}", "ok", 1);
}

json_t *admin_do_public_list(json_t *request, const struct admin_engine *engine)
{
	json_t *reply = NULL, *folders;
	struct store_folder_info *list;
	struct store_user *su;
	size_t count;
	const char *error = "";
	char *domain;
	enum store_status st;

	su = open_public(request, engine, &domain, &reply);
	if (su == NULL)
		return reply;
	st = store_folder_list(su, &list, &count, &error);
	if (st != STORE_OK) {
		store_user_unref(&su);
		reply = control_error("public folders of %s: %s (%s)", domain, store_status_str(st), error);
		free(domain);
		return reply;
	}
	folders = json_array();
	for (size_t i = 0; i < count; i++) {
		struct store_acl acl;
		bool present = false;
		json_t *entries = json_array();
		char r[STORE_ACL_RIGHTS_MAX];

		if (!list[i].exists)
			continue;
		if (store_acl_get(su, list[i].name, &acl, &present, &error) == STORE_OK) {
			for (size_t k = 0; k < acl.count; k++) {
				char *id = xasprintf("%s%s", acl.entries[k].negative ? "-" : "",
						     acl.entries[k].identifier);

				json_array_append_new(entries, json_pack("{s:s,s:s}", "identifier", id,
						"rights", store_acl_rights_format(acl.entries[k].rights, r)));
				free(id);
			}
			store_acl_free(&acl);
		}
		if (!present)
			json_array_append_new(entries, json_pack("{s:s,s:s}", "identifier", "anyone",
								 "rights", "lr"));
		json_array_append_new(folders, json_pack("{s:s,s:o,s:b}", "name", list[i].name, "acl",
							 entries, "default", !present));
	}
	store_folder_list_free(&list, count);
	store_user_unref(&su);
	reply = json_pack("{s:b,s:s,s:o}", "ok", 1, "domain", domain, "folders", folders);
	free(domain);
	return reply;
}

json_t *admin_do_public_setacl(json_t *request, const struct admin_engine *engine)
{
	json_t *reply = NULL;
	const char *folder = folder_arg(request, &reply), *error = "";
	const char *id = json_string_value(json_object_get(request, "identifier"));
	const char *rights = json_string_value(json_object_get(request, "rights"));
	enum store_acl_mod mod = STORE_ACL_REPLACE;
	bool negative = false;
	char *canon = NULL, *domain = NULL;
	struct store_user *su;
	struct directory *dir;
	enum store_status st;
	uint32_t bits;

	if (folder == NULL)
		return reply;
	if (id != NULL && id[0] == '-') {
		negative = true;
		id++;
	}
	if (id == NULL || !store_acl_identifier_valid(id, strlen(id)))
		return control_error("the request needs \"identifier\": anyone, a user or a group");
	if (rights != NULL && (rights[0] == '+' || rights[0] == '-')) {
		mod = rights[0] == '+' ? STORE_ACL_ADD : STORE_ACL_REMOVE;
		rights++;
	}
	if (rights == NULL || store_acl_rights_parse(rights, strlen(rights), &bits) < 0)
		return control_error("\"rights\" must be letters of lrswipkxteacd, "
				     "with + to add or - to remove");
	dir = directory_current();
	if (strcmp(id, STORE_ACL_ANYONE) == 0) {
		canon = xstrdup(id);
	} else if (dir != NULL && directory_find_user(dir, id) != NULL && strchr(id, '@') != NULL) {
		canon = xstrdup(directory_find_user(dir, id)->address);
	} else if (dir != NULL && directory_find_group(dir, id) != NULL && strchr(id, '@') != NULL) {
		canon = xstrdup(directory_find_group(dir, id)->address);
	}
	directory_unref(&dir);
	if (canon == NULL)
		return control_error("unknown identifier %s: not anyone, a user or a group", id);
	su = open_public(request, engine, &domain, &reply);
	if (su == NULL) {
		free(canon);
		return reply;
	}
	st = store_acl_set(su, folder, canon, negative, mod, bits, STORE_ACL_MAX_ENTRIES, &error);
	store_user_unref(&su);
	if (st != STORE_OK)
		reply = control_error("public folder %s of %s: %s (%s)", folder, domain,
				      store_status_str(st), error);
	else
		log_info("admin", "public folder %s of %s: ACL of %s%s changed", folder, domain,
			 negative ? "-" : "", canon);
	free(canon);
	free(domain);
	return reply != NULL ? reply : json_pack("{s:b}", "ok", 1);
}
