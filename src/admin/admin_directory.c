/*
 * The administration API's directory commands (domain-*, user-*, alias-*,
 * group-*, list-*, resolve; docs/control-protocol.md).
 *
 * The commands themselves live in src/directory/directory_cmd.c, shared
 * with petrelctl's offline mode; here they are applied to the running
 * engine: take the current snapshot, run the command, write users.cfg
 * atomically and swap the new snapshot in, so a change is live at once
 * and survives a restart.  Writers are serialized by a mutex (the handlers
 * run on the main thread today; the lock keeps that an implementation
 * detail).  The log line names the command and its target, never a
 * password.
 */
#include "admin/admin.h"

#include <stdlib.h>

#include "core/log.h"
#include "core/str.h"
#include "directory/directory.h"
#include "directory/directory_cmd.h"

json_t *admin_do_directory(json_t *request, const struct admin_engine *engine)
{
	const char *name = json_string_value(json_object_get(request, "command"));
	bool writes = directory_cmd_writes(name);
	struct directory *dir, *saved = NULL;
	json_t *reply;
	char *what;

	if (writes)
		directory_writer_lock();
	dir = directory_current();
	if (dir == NULL) {
		if (writes)
			directory_writer_unlock();
		return json_pack("{s:b, s:s}", "ok", 0, "error", "no directory loaded");
	}
	reply = directory_cmd_execute(dir, request, &saved);
	if (saved != NULL)
		directory_set_current(saved);
	if (writes) {
		directory_writer_unlock();
		what = directory_cmd_describe(request);
		if (json_is_true(json_object_get(reply, "ok")))
			log_info("admin", "directory changed %s", what);
		else {
			const char *error = json_string_value(json_object_get(reply, "error"));
			char *reason = str_escape(error != NULL ? error : "", 256);

			log_warn("admin", "directory change refused %s reason=%s", what, reason);
			free(reason);
		}
		free(what);
	}
	directory_unref(&dir);
	return reply;
}
