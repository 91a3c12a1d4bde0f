/* Administration API dispatch; see admin.h. */
#include "admin/admin.h"

#include <stdlib.h>
#include <string.h>

#include "admin/admin_queue.h"
#include "core/control.h"
#include "core/log.h"

typedef json_t *admin_handler_fn(json_t *request, const struct admin_engine *engine);

static json_t *admin_do_ping(json_t *request, const struct admin_engine *engine)
{
	return control_ok();
}

static json_t *admin_do_status(json_t *request, const struct admin_engine *engine)
{
	json_t *reply = control_ok();

	engine->status(engine->context, reply);
	return reply;
}

static json_t *admin_do_reload(json_t *request, const struct admin_engine *engine)
{
	char *error = NULL, *warnings = NULL;
	json_t *reply;

	if (engine->reload(engine->context, &error, &warnings) < 0) {
		reply = control_error("%s", error);
		free(error);
		free(warnings);
		return reply;
	}
	reply = control_ok();
	if (warnings != NULL)
		json_object_set_new(reply, "warnings", json_string(warnings));
	free(warnings);
	return reply;
}

static json_t *admin_do_stop(json_t *request, const struct admin_engine *engine)
{
	log_info("admin", "stop requested over the control socket");
	engine->stop(engine->context);
	return control_ok();
}

static const struct {
	const char *name;
	admin_handler_fn *handler;
} admin_commands[] = {
	{ "ping", admin_do_ping },
	{ "status", admin_do_status },
	{ "reload", admin_do_reload },
	{ "stop", admin_do_stop },
	{ "queue-list", admin_do_queue_list },
	{ "queue-delete", admin_do_queue_delete },
	{ "queue-run", admin_do_queue_run },
	{ "queue-inject", admin_do_queue_inject },
	/* directory (admin_directory.c; the commands are in directory_cmd.c) */
	{ "domain-list", admin_do_directory },
	{ "domain-show", admin_do_directory },
	{ "domain-add", admin_do_directory },
	{ "domain-remove", admin_do_directory },
	{ "domain-set", admin_do_directory },
	{ "domain-alias-add", admin_do_directory },
	{ "domain-alias-remove", admin_do_directory },
	{ "user-list", admin_do_directory },
	{ "user-show", admin_do_directory },
	{ "user-add", admin_do_directory },
	{ "user-remove", admin_do_directory },
	{ "user-passwd", admin_do_directory },
	{ "user-set", admin_do_directory },
	{ "user-alias-add", admin_do_directory },
	{ "user-alias-remove", admin_do_directory },
	{ "user-forward", admin_do_directory },
	{ "user-autoreply", admin_do_directory },
	{ "alias-list", admin_do_directory },
	{ "alias-add", admin_do_directory },
	{ "alias-remove", admin_do_directory },
	{ "group-list", admin_do_directory },
	{ "group-show", admin_do_directory },
	{ "group-add", admin_do_directory },
	{ "group-remove", admin_do_directory },
	{ "list-list", admin_do_directory },
	{ "list-show", admin_do_directory },
	{ "list-add", admin_do_directory },
	{ "list-remove", admin_do_directory },
	{ "resolve", admin_do_directory },
	/* mailbox store (admin_mailbox.c) */
	{ "mailbox-stats", admin_do_mailbox_stats },
	{ "mailbox-reindex", admin_do_mailbox_reindex },
	/* public folders (admin_public.c) */
	{ "public-create", admin_do_public_create },
	{ "public-list", admin_do_public_list },
	{ "public-setacl", admin_do_public_setacl },
};

bool admin_request_is_slow(json_t *request)
{
	const char *name = json_string_value(json_object_get(request, "command"));

	if (name == NULL || json_object_get(request, "password") == NULL)
		return false;
	return strcmp(name, "user-add") == 0 || strcmp(name, "user-passwd") == 0;
}

json_t *admin_dispatch(json_t *request, const struct admin_engine *engine)
{
	const char *name = json_string_value(json_object_get(request, "command"));

	if (name == NULL)
		return control_error("request has no \"command\" string");
	for (size_t i = 0; i < sizeof(admin_commands) / sizeof(admin_commands[0]); i++) {
		if (strcmp(admin_commands[i].name, name) == 0)
			return admin_commands[i].handler(request, engine);
	}
	return control_error("unknown command");
}
