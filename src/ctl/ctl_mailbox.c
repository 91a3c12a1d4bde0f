/*
 * petrelctl mailbox stats ADDRESS [--json]
 * petrelctl mailbox reindex ADDRESS [FOLDER] [--rebuild] [--json]
 *
 * Talks to the running engine over the control socket (admin_mailbox.c):
 * the store's handles are shared by every session of the engine, so the
 * re-index and the figures come from the process that owns them.
 */
#include <stdio.h>
#include <string.h>

#include "ctl/ctl.h"

static void print_json(json_t *reply)
{
	json_object_del(reply, "ok");
	json_dumpf(reply, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	putchar('\n');
}

static long long num(json_t *obj, const char *key)
{
	return (long long)json_integer_value(json_object_get(obj, key));
}

/* "12 of 500 (2%)" or "12 (no limit)". */
static void print_usage_line(const char *what, json_t *quota, const char *used, const char *max,
			     const char *percent)
{
	long long limit = num(quota, max);

	if (limit == 0)
		printf("  %-9s %lld (no limit)\n", what, num(quota, used));
	else
		printf("  %-9s %lld of %lld (%lld%%)\n", what, num(quota, used), limit,
		       num(quota, percent));
}

static int mailbox_stats(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply, *folders, *f, *quota;
	size_t i;
	int st;

	if (argc != 2)
		return ctl_usage("mailbox stats ADDRESS [--json]");
	reply = ctl_request_ok(ctl, json_pack("{s:s,s:s}", "command", "mailbox-stats", "address", argv[1]),
			&st);
	if (reply == NULL)
		return st;
	if (ctl->json) {
		print_json(reply);
		json_decref(reply);
		return CTL_OK;
	}
	folders = json_object_get(reply, "folders");
	printf("mailbox of %s\n", json_string_value(json_object_get(reply, "address")));
	printf("%-24s %-9s %8s %8s %12s %11s %8s\n", "FOLDER", "ROLE", "MESSAGES", "UNSEEN", "SIZE",
	       "UIDVALIDITY", "UIDNEXT");
	json_array_foreach(folders, i, f) {
		const char *role = json_string_value(json_object_get(f, "role"));

		printf("%-24s %-9s %8lld %8lld %12lld %11lld %8lld\n",
		       json_string_value(json_object_get(f, "name")), role != NULL ? role : "",
		       num(f, "messages"), num(f, "unseen"), num(f, "size"), num(f, "uidvalidity"),
		       num(f, "uidnext"));
	}
	printf("total: %lld messages, %lld bytes (indexes %lld bytes)\n", num(reply, "messages"),
	       num(reply, "size"), num(reply, "index_size"));
	quota = json_object_get(reply, "quota");
	printf("quota:\n");
	print_usage_line("storage", quota, "bytes", "max_bytes", "bytes_percent");
	print_usage_line("messages", quota, "messages", "max_messages", "messages_percent");
	json_decref(reply);
	return CTL_OK;
}

static int mailbox_reindex(struct ctl *ctl, int argc, char **argv)
{
	const char *address = NULL, *folder = NULL;
	bool rebuild = false;
	json_t *req, *reply, *f;
	size_t i;
	int st;

	bool options = true;

	for (int k = 1; k < argc; k++) {
		if (options && strcmp(argv[k], "--") == 0)
			options = false;
		else if (options && strcmp(argv[k], "--rebuild") == 0)
			rebuild = true;
		else if (options && argv[k][0] == '-' && argv[k][1] != '\0')
			return ctl_usage("mailbox reindex: unknown option %s", argv[k]);
		else if (address == NULL)
			address = argv[k];
		else if (folder == NULL)
			folder = argv[k];
		else
			return ctl_usage("mailbox reindex ADDRESS [FOLDER] [--rebuild]");
	}
	if (address == NULL)
		return ctl_usage("mailbox reindex ADDRESS [FOLDER] [--rebuild]");
	req = json_pack("{s:s,s:s,s:b}", "command", "mailbox-reindex", "address", address,
			"rebuild", rebuild);
	if (folder != NULL)
		json_object_set_new(req, "folder", json_string(folder));
	reply = ctl_request_ok(ctl, req, &st);
	if (reply == NULL)
		return st;
	if (ctl->json) {
		print_json(reply);
		json_decref(reply);
		return CTL_OK;
	}
	json_array_foreach(json_object_get(reply, "folders"), i, f) {
		printf("%s: %lld messages, %lld added, %lld removed%s%s\n",
		       json_string_value(json_object_get(f, "name")), num(f, "messages"),
		       num(f, "added"), num(f, "removed"),
		       json_is_true(json_object_get(f, "rebuilt")) ? ", index rebuilt" : "",
		       json_is_true(json_object_get(f, "uidvalidity_changed")) ? ", new UIDVALIDITY"
									   : "");
	}
	json_decref(reply);
	return CTL_OK;
}

int ctl_mailbox_main(struct ctl *ctl, int argc, char **argv)
{
	if (argc < 1)
		return ctl_usage("mailbox stats|reindex ADDRESS ...");
	if (strcmp(argv[0], "stats") == 0)
		return mailbox_stats(ctl, argc, argv);
	if (strcmp(argv[0], "reindex") == 0)
		return mailbox_reindex(ctl, argc, argv);
	return ctl_usage("unknown mailbox command '%s'", argv[0]);
}
