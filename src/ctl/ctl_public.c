/*
 * petrelctl public create DOMAIN FOLDER
 * petrelctl public list DOMAIN [--json]
 * petrelctl public setacl DOMAIN FOLDER IDENTIFIER RIGHTS
 *
 * The public folders of a domain (docs/imap.md "Shared folders"), through
 * the running engine (admin_public.c), which owns the store's handles.
 */
#include <stdio.h>
#include <string.h>

#include "ctl/ctl.h"

static int public_list(struct ctl *ctl, json_t *reply)
{
	json_t *f, *e;
	size_t i, k;

	if (ctl->json) {
		json_object_del(reply, "ok");
		json_dumpf(reply, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
		return CTL_OK;
	}
	json_array_foreach(json_object_get(reply, "folders"), i, f) {
		printf("%s", json_string_value(json_object_get(f, "name")));
		json_array_foreach(json_object_get(f, "acl"), k, e) {
			printf(" %s=%s", json_string_value(json_object_get(e, "identifier")),
			       json_string_value(json_object_get(e, "rights")));
		}
		printf("%s\n", json_is_true(json_object_get(f, "default")) ? " (default)" : "");
	}
	return CTL_OK;
}

int ctl_public_main(struct ctl *ctl, int argc, char **argv)
{
	json_t *req, *reply;
	int st;

	if (argc == 3 && strcmp(argv[0], "create") == 0)
		req = json_pack("{s:s,s:s,s:s}", "command", "public-create", "domain", argv[1],
				"folder", argv[2]);
	else if (argc == 2 && strcmp(argv[0], "list") == 0)
		req = json_pack("{s:s,s:s}", "command", "public-list", "domain", argv[1]);
	else if (argc == 5 && strcmp(argv[0], "setacl") == 0)
		req = json_pack("{s:s,s:s,s:s,s:s,s:s}", "command", "public-setacl", "domain", argv[1],
				"folder", argv[2], "identifier", argv[3], "rights", argv[4]);
	else
		return ctl_usage("public create DOMAIN FOLDER | public list DOMAIN | "
				 "public setacl DOMAIN FOLDER IDENTIFIER RIGHTS");
	if (req == NULL)
		return ctl_usage("arguments must be UTF-8");
	reply = ctl_request_ok(ctl, req, &st);
	if (reply == NULL)
		return st;
	if (strcmp(argv[0], "list") == 0)
		st = public_list(ctl, reply);
	json_decref(reply);
	return st;
}
