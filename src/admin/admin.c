/* Administration API dispatch; see admin.h. */
#include "admin/admin.h"

#include <stdlib.h>
#include <string.h>

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
};

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
