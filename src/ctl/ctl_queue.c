/*
 * petrelctl queue list [--json] | queue delete ID|--all | queue run [ID]
 *          | queue inject --from SENDER --to RCPT [--to RCPT]... [--notify LIST]
 *                         [--orcpt TYPE;XTEXT] [--envid XTEXT] [--ret FULL|HDRS] FILE
 *
 * Talks to the running engine over the control socket (admin_queue.c).
 * inject resubmits a message file (for example one moved to
 * queue/corrupt/, or an .eml exported from elsewhere) through the queue's
 * normal commit; "-" reads the message from standard input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/fileio.h"
#include "ctl/ctl.h"

/* Largest message file inject reads (the control request limit applies too). */
#define CTL_INJECT_MAX (64u * 1024 * 1024)

static void print_time(json_t *v)
{
	char out[32];
	time_t t;
	struct tm tm;

	if (!json_is_integer(v)) {
		printf("%-20s", "-");
		return;
	}
	t = (time_t)json_integer_value(v);
	gmtime_r(&t, &tm);
	strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%-20s", out);
}

static int queue_list(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply, *msgs, *m;
	size_t i;
	int st;

	if (argc > 1)
		return ctl_usage("queue list takes no arguments besides --json");
	reply = ctl_request_ok(ctl, json_pack("{s:s}", "command", "queue-list"), &st);
	if (reply == NULL)
		return st;
	msgs = json_object_get(reply, "messages");
	if (ctl->json) {
		json_dumpf(msgs, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(reply);
		return CTL_OK;
	}
	if (json_array_size(msgs) == 0) {
		printf("the queue is empty\n");
		json_decref(reply);
		return CTL_OK;
	}
	printf("%-16s %9s %-20s %-20s %-8s %s\n", "ID", "SIZE", "CREATED", "NEXT ATTEMPT", "STATUS",
	       "SENDER / RECIPIENTS");
	json_array_foreach(msgs, i, m) {
		json_t *rcpts = json_object_get(m, "recipients"), *r;
		const char *sender = json_string_value(json_object_get(m, "sender"));
		const char *mid = json_string_value(json_object_get(m, "message_id"));
		size_t k;

		printf("%-16s %9lld ", json_string_value(json_object_get(m, "id")),
		       (long long)json_integer_value(json_object_get(m, "size")));
		print_time(json_object_get(m, "created"));
		putchar(' ');
		print_time(json_object_get(m, "next_attempt"));
		printf(" %-8s <%s>\n", json_string_value(json_object_get(m, "status")),
		       sender != NULL ? sender : "");
		json_array_foreach(rcpts, k, r) {
			const char *diag = json_string_value(json_object_get(r, "diagnostic"));

			printf("%78s<%s> %s%s%s\n", "", json_string_value(json_object_get(r, "address")),
			       json_string_value(json_object_get(r, "state")), diag != NULL ? ": " : "",
			       diag != NULL ? diag : "");
		}
		if (mid != NULL)
			printf("%78sMessage-ID: %s\n", "", mid);
	}
	json_decref(reply);
	return CTL_OK;
}

static int queue_delete(struct ctl *ctl, int argc, char **argv)
{
	json_t *req, *reply;
	int st;

	if (argc != 2)
		return ctl_usage("queue delete ID|--all");
	if (strcmp(argv[1], "--all") == 0)
		req = json_pack("{s:s,s:b}", "command", "queue-delete", "all", 1);
	else
		req = json_pack("{s:s,s:s}", "command", "queue-delete", "id", argv[1]);
	reply = ctl_request_ok(ctl, req, &st);
	if (reply == NULL)
		return st;
	if (ctl->json) {
		json_object_del(reply, "ok");
		json_dumpf(reply, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		printf("%lld message(s) deleted\n",
		       (long long)json_integer_value(json_object_get(reply, "deleted")));
	}
	json_decref(reply);
	return CTL_OK;
}

static int queue_run(struct ctl *ctl, int argc, char **argv)
{
	json_t *req, *reply;
	int st;

	if (argc > 2)
		return ctl_usage("queue run [ID]");
	if (argc == 2)
		req = json_pack("{s:s,s:s}", "command", "queue-run", "id", argv[1]);
	else
		req = json_pack("{s:s}", "command", "queue-run");
	reply = ctl_request_ok(ctl, req, &st);
	if (reply == NULL)
		return st;
	printf("%lld message(s) scheduled for delivery now\n",
	       (long long)json_integer_value(json_object_get(reply, "scheduled")));
	json_decref(reply);
	return CTL_OK;
}

static int read_input(const char *path, char **data_r, size_t *len_r)
{
	struct buf b;
	char chunk[65536];
	size_t n;

	if (strcmp(path, "-") != 0)
		return fileio_read_all(path, CTL_INJECT_MAX, data_r, len_r);
	buf_init(&b, CTL_INJECT_MAX);
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
		if (buf_append(&b, chunk, n) < 0) {
			buf_deinit(&b);
			errno = EFBIG;
			return -1;
		}
	}
	*len_r = b.len;
	*data_r = b.data != NULL ? buf_steal(&b) : xstrdup("");
	return 0;
}

static int queue_inject(struct ctl *ctl, int argc, char **argv)
{
	const char *from = NULL, *file = NULL, *notify = NULL, *orcpt = NULL, *envid = NULL;
	const char *ret = NULL;
	json_t *rcpts = json_array(), *req, *reply;
	struct buf b64;
	char *data;
	size_t len;
	int st;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (i + 1 < argc && strcmp(a, "--from") == 0)
			from = argv[++i];
		else if (i + 1 < argc && strcmp(a, "--to") == 0)
			json_array_append_new(rcpts, json_pack("{s:s}", "address", argv[++i]));
		else if (i + 1 < argc && strcmp(a, "--notify") == 0)
			notify = argv[++i];
		else if (i + 1 < argc && strcmp(a, "--orcpt") == 0)
			orcpt = argv[++i];
		else if (i + 1 < argc && strcmp(a, "--envid") == 0)
			envid = argv[++i];
		else if (i + 1 < argc && strcmp(a, "--ret") == 0)
			ret = argv[++i];
		else if (file == NULL && (a[0] != '-' || strcmp(a, "-") == 0))
			file = a;
		else {
			json_decref(rcpts);
			return ctl_usage("queue inject --from SENDER --to RCPT... [--notify LIST] "
					 "[--orcpt TYPE;XTEXT] [--envid XTEXT] [--ret FULL|HDRS] FILE");
		}
	}
	if (from == NULL || file == NULL || json_array_size(rcpts) == 0) {
		json_decref(rcpts);
		return ctl_usage("queue inject needs --from (\"\" for <>), at least one --to, and a file");
	}
	{
		size_t i;
		json_t *r;

		json_array_foreach(rcpts, i, r) {
			if (notify != NULL)
				json_object_set_new(r, "notify", json_string(notify));
			if (orcpt != NULL)
				json_object_set_new(r, "orcpt", json_string(orcpt));
		}
	}
	if (read_input(file, &data, &len) < 0) {
		json_decref(rcpts);
		return ctl_fail("%s: %s", file, strerror(errno));
	}
	buf_init(&b64, CTL_INJECT_MAX * 2);
	if (base64_encode_append(&b64, data, len) < 0) {
		free(data);
		json_decref(rcpts);
		buf_deinit(&b64);
		return ctl_fail("%s: too large", file);
	}
	free(data);
	req = json_pack("{s:s,s:s,s:o,s:s}", "command", "queue-inject", "sender", from,
			"recipients", rcpts, "data_base64", b64.data != NULL ? b64.data : "");
	buf_deinit(&b64);
	if (envid != NULL)
		json_object_set_new(req, "envid", json_string(envid));
	if (ret != NULL)
		json_object_set_new(req, "ret", json_string(ret));
	reply = ctl_request_ok(ctl, req, &st);
	if (reply == NULL)
		return st;
	if (ctl->json) {
		json_object_del(reply, "ok");
		json_dumpf(reply, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		printf("queued as %s\n", json_string_value(json_object_get(reply, "id")));
	}
	json_decref(reply);
	return CTL_OK;
}

int ctl_queue_main(struct ctl *ctl, int argc, char **argv)
{
	if (argc < 1)
		return ctl_usage("queue list [--json] | queue delete ID|--all | queue run [ID] | "
				 "queue inject ...");
	if (strcmp(argv[0], "list") == 0)
		return queue_list(ctl, argc, argv);
	if (strcmp(argv[0], "delete") == 0)
		return queue_delete(ctl, argc, argv);
	if (strcmp(argv[0], "run") == 0)
		return queue_run(ctl, argc, argv);
	if (strcmp(argv[0], "inject") == 0)
		return queue_inject(ctl, argc, argv);
	return ctl_usage("unknown queue command '%s'", argv[0]);
}
