/*
 * Queue management through the administration API (the control socket of
 * petrelctl and HTTPS on 44337): list, delete, run now, and inject.
 *
 *   {"command":"queue-list"}                       -> {"ok":true,"messages":[...]}
 *   {"command":"queue-delete","id":"0190..."}      -> {"ok":true,"deleted":1}
 *   {"command":"queue-delete","all":true}          -> {"ok":true,"deleted":N}
 *   {"command":"queue-run"[,"id":"0190..."]}       -> {"ok":true,"scheduled":N}
 *   {"command":"queue-inject","sender":"a@b","recipients":["c@d" | {"address":
 *     "c@d","notify":"SUCCESS,FAILURE","orcpt":"rfc822;xtext"}...],
 *     "envid":"xtext","ret":"FULL"|"HDRS","smtputf8":false,"body_8bit":false,
 *     "data_base64":"..."}                         -> {"ok":true,"id":"0190..."}
 *
 * queue-inject is how an administrator resubmits a message file (one
 * taken out of queue/corrupt/, or exported from elsewhere): it goes
 * through the same writer and commit as mail from the SMTP server.  ENVID
 * and ORCPT are given as xtext, exactly as on the wire (RFC 3461 4), and
 * decoded here; NOTIFY as the RFC 3461 keyword list.  Bare LF line ends
 * in the data are turned into CRLF (files saved by editors).  The commit
 * fsyncs on the calling (main) thread: administrative, rare, bounded by
 * control/max-request.
 */
#include "admin/admin_queue.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/control.h"
#include "core/log.h"
#include "core/str.h"
#include "outbound/outbound.h"
#include "queue/queue.h"

/* Recipients one inject may name (the SMTP default limit). */
#define ADMIN_QUEUE_MAX_RCPTS 1000

static struct queue *need_queue(json_t **reply_r)
{
	struct queue *q = queue_current();

	if (q == NULL)
		*reply_r = control_error("the queue is not running");
	return q;
}

json_t *admin_do_queue_list(json_t *request, const struct admin_engine *engine)
{
	json_t *reply = NULL;
	struct queue *q = need_queue(&reply);

	if (q == NULL)
		return reply;
	reply = control_ok();
	json_object_set_new(reply, "messages", queue_list_json(q));
	return reply;
}

static bool valid_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'F')))
			return false;
	}
	return true;
}

json_t *admin_do_queue_delete(json_t *request, const struct admin_engine *engine)
{
	json_t *reply = NULL;
	struct queue *q = need_queue(&reply);
	const char *id = json_string_value(json_object_get(request, "id"));
	size_t n;

	if (q == NULL)
		return reply;
	if (json_is_true(json_object_get(request, "all"))) {
		n = queue_delete_all(q);
		log_info("admin", "queue: every message deleted (%zu)", n);
	} else if (id != NULL && valid_id(id)) {
		if (queue_delete(q, id) < 0)
			return control_error("no message %s in the queue", id);
		n = 1;
	} else {
		return control_error("queue-delete needs \"id\" (a queue id) or \"all\": true");
	}
	reply = control_ok();
	json_object_set_new(reply, "deleted", json_integer((json_int_t)n));
	return reply;
}

json_t *admin_do_queue_run(json_t *request, const struct admin_engine *engine)
{
	json_t *reply = NULL;
	struct queue *q = need_queue(&reply);
	json_t *jid = json_object_get(request, "id");
	const char *id = json_string_value(jid);
	size_t n;

	if (q == NULL)
		return reply;
	if (jid != NULL && !json_is_null(jid) && (id == NULL || !valid_id(id)))
		return control_error("queue-run: \"id\" is not a queue id");
	n = queue_run(q, id);
	if (id != NULL && n == 0)
		return control_error("no message %s in the queue", id);
	reply = control_ok();
	json_object_set_new(reply, "scheduled", json_integer((json_int_t)n));
	return reply;
}

/* RFC 3461 4.1 NOTIFY list; returns 0 or -1. */
static int parse_notify(const char *s, unsigned *notify_r)
{
	unsigned n = 0;
	char *copy = xstrdup(s), *save = NULL;

	for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		if (strcasecmp(tok, "NEVER") == 0)
			n |= QUEUE_NOTIFY_NEVER;
		else if (strcasecmp(tok, "SUCCESS") == 0)
			n |= QUEUE_NOTIFY_SUCCESS;
		else if (strcasecmp(tok, "FAILURE") == 0)
			n |= QUEUE_NOTIFY_FAILURE;
		else if (strcasecmp(tok, "DELAY") == 0)
			n |= QUEUE_NOTIFY_DELAY;
		else {
			free(copy);
			return -1;
		}
	}
	free(copy);
	if (n == 0 || ((n & QUEUE_NOTIFY_NEVER) && n != QUEUE_NOTIFY_NEVER))
		return -1;
	*notify_r = n;
	return 0;
}

/* xtext-decodes text into a new string; NUL is refused (no C string can
 * hold it, and RFC 3461 allows only printable characters). */
static int xtext_value(const char *text, char **value_r)
{
	struct buf b;

	buf_init(&b, 2048);
	if (outbound_xtext_decode(text, strlen(text), &b) < 0 || memchr(b.data, '\0', b.len) != NULL) {
		buf_deinit(&b);
		return -1;
	}
	*value_r = buf_steal(&b);
	if (*value_r == NULL)
		*value_r = xstrdup("");
	return 0;
}

json_t *admin_do_queue_inject(json_t *request, const struct admin_engine *engine)
{
	json_t *reply = NULL, *rcpts = json_object_get(request, "recipients"), *jr;
	struct queue *q = need_queue(&reply);
	const char *sender = json_string_value(json_object_get(request, "sender"));
	const char *envid_x = json_string_value(json_object_get(request, "envid"));
	const char *ret = json_string_value(json_object_get(request, "ret"));
	const char *b64 = json_string_value(json_object_get(request, "data_base64"));
	struct queue_recipient_spec *specs = NULL;
	char **owned = NULL;
	size_t n, nowned = 0, i;
	struct queue_envelope_spec env;
	struct buf raw, data;
	struct queue_writer *w = NULL;
	char *envid = NULL, *id = NULL, *error = NULL;

	if (q == NULL)
		return reply;
	memset(&env, 0, sizeof(env));
	buf_init(&raw, 1024u * 1024 * 1024);
	buf_init(&data, 1024u * 1024 * 1024);
	if (sender == NULL || !json_is_array(rcpts) || json_array_size(rcpts) == 0 || b64 == NULL) {
		reply = control_error("queue-inject needs \"sender\", \"recipients\" and \"data_base64\"");
		goto out;
	}
	n = json_array_size(rcpts);
	if (n > ADMIN_QUEUE_MAX_RCPTS) {
		reply = control_error("more than %d recipients", ADMIN_QUEUE_MAX_RCPTS);
		goto out;
	}
	specs = xcalloc(n, sizeof(*specs));
	owned = xcalloc(n + 1, sizeof(*owned));
	json_array_foreach(rcpts, i, jr) {
		const char *addr = json_is_string(jr) ? json_string_value(jr)
						     : json_string_value(json_object_get(jr, "address"));
		const char *notify = json_string_value(json_object_get(jr, "notify"));
		const char *orcpt = json_string_value(json_object_get(jr, "orcpt"));

		if (addr == NULL) {
			reply = control_error("recipient %zu has no address", i + 1);
			goto out;
		}
		specs[i].address = addr;
		if (notify != NULL && parse_notify(notify, &specs[i].notify) < 0) {
			reply = control_error("recipient %zu: bad NOTIFY", i + 1);
			goto out;
		}
		if (orcpt != NULL) {
			const char *semi = strchr(orcpt, ';');
			char *dec;

			if (semi == NULL || semi == orcpt || xtext_value(semi + 1, &dec) < 0) {
				reply = control_error("recipient %zu: bad ORCPT (type;xtext)", i + 1);
				goto out;
			}
			owned[nowned] = xasprintf("%.*s;%s", (int)(semi - orcpt), orcpt, dec);
			free(dec);
			specs[i].orcpt = owned[nowned++];
		}
	}
	if (envid_x != NULL && xtext_value(envid_x, &envid) < 0) {
		reply = control_error("bad ENVID (xtext)");
		goto out;
	}
	env.sender = sender;
	env.envid = envid;
	env.ret = ret == NULL ? QUEUE_RET_DEFAULT
		: strcasecmp(ret, "FULL") == 0 ? QUEUE_RET_FULL
		: strcasecmp(ret, "HDRS") == 0 ? QUEUE_RET_HDRS : (enum queue_ret)99;
	if ((unsigned)env.ret > QUEUE_RET_HDRS) {
		reply = control_error("bad RET (FULL or HDRS)");
		goto out;
	}
	env.smtputf8 = json_is_true(json_object_get(request, "smtputf8"));
	env.body_8bit = json_is_true(json_object_get(request, "body_8bit"));
	env.auth_user = "admin";
	env.recipients = specs;
	env.recipient_count = n;
	if (base64_decode_append(&raw, b64, strlen(b64)) < 0) {
		reply = control_error("data_base64 is not base64");
		goto out;
	}
	for (size_t k = 0; k < raw.len; k++) {
		if (raw.data[k] == '\n' && (k == 0 || raw.data[k - 1] != '\r') &&
		    buf_append_char(&data, '\r') < 0)
			break;
		if (buf_append_char(&data, raw.data[k]) < 0)
			break;
	}
	if (queue_writer_new(q, &w, &error) < 0 ||
	    queue_writer_write(w, data.data != NULL ? data.data : "", data.len, &error) < 0 ||
	    queue_writer_commit(&w, &env, &id, &error) < 0) {
		queue_writer_abort(&w);
		reply = control_error("cannot queue the message: %s", error);
		goto out;
	}
	{
		char *esc = str_escape(sender, 256);

		log_mail("queue", "%s: injected by the administrator from=<%s> size=%zu nrcpt=%zu", id,
			 esc, data.len, n);
		free(esc);
	}
	reply = control_ok();
	json_object_set_new(reply, "id", json_string(id));
out:
	for (size_t k = 0; k < nowned; k++)
		free(owned[k]);
	free(owned);
	free(specs);
	free(envid);
	free(id);
	free(error);
	buf_deinit(&raw);
	buf_deinit(&data);
	return reply;
}
