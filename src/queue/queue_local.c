/*
 * Local delivery: what a recipient in one of our domains means (the
 * directory), and putting the message into the mailbox (the store).  This
 * is the one place that knows both APIs, so a change in either is a change
 * here only.
 *
 * Resolution happens again at delivery time, not only at RCPT: users.cfg
 * may have changed while the message waited.  An alias, group or forward
 * that leads elsewhere is "expanded": its targets become new recipients
 * of the same queued message (each tracked on its own, with the original
 * address as ORCPT), so a remote target goes out through the SMTP client
 * and a partial failure retries only what failed.
 *
 * Runs on a delivery thread: both the directory snapshot and the store are
 * thread-safe, and the store blocks (fsync), which is what these threads
 * are for.
 */
#include "queue/queue_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory/directory.h"
#include "store/store.h"

void queue_local_set_result(struct queue_local_result *res, int code, const char *status,
			    const char *fmt, ...)
{
	va_list ap;

	res->code = code;
	snprintf(res->status, sizeof(res->status), "%s", status);
	va_start(ap, fmt);
	vsnprintf(res->text, sizeof(res->text), fmt, ap);
	va_end(ap);
}

bool queue_local_is_local(const char *address)
{
	const char *at = strrchr(address, '@');
	struct directory *dir;
	bool local;

	if (at == NULL)
		return true;  /* a bare name means the primary domain */
	dir = directory_current();
	if (dir == NULL)
		return false;
	local = directory_find_local_domain(dir, at + 1) != NULL;
	directory_unref(&dir);
	return local;
}

void queue_local_result_free(struct queue_local_result *res)
{
	for (size_t i = 0; i < res->expanded_count; i++)
		free(res->expanded[i]);
	free(res->expanded);
	free(res->expanded_direct);
	res->expanded = NULL;
	res->expanded_direct = NULL;
	res->expanded_count = 0;
	free(res->user);
	res->user = NULL;
}

static int map_store_status(enum store_status st, struct queue_local_result *res,
			    const char *error)
{
	switch (st) {
	case STORE_OK:
		return 0;
	case STORE_E_OVERQUOTA:
		queue_local_set_result(res, 452, "4.2.2", "452 4.2.2 mailbox full: %s", error);
		return -1;
	case STORE_E_TOOBIG:
		queue_local_set_result(res, 552, "5.3.4", "552 5.3.4 message too big for the mailbox: %s", error);
		return -1;
	case STORE_E_NOSPACE:
		queue_local_set_result(res, 452, "4.3.1", "452 4.3.1 insufficient system storage: %s", error);
		return -1;
	default:
		queue_local_set_result(res, 451, "4.3.0", "451 4.3.0 mailbox unavailable: %s", error);
		return -1;
	}
}

/* key: the queue id and recipient (store_deliver_once): a redelivery
 * after a crash finds the first delivery and writes nothing. */
static void deliver_to_user(struct store *store, const struct dir_user *user, const char *key,
			    const char *msg, size_t msg_len, struct queue_local_result *res)
{
	struct store_user *su = NULL;
	struct store_folder *folder = NULL;
	struct store_message m = { .data = msg, .len = msg_len, .internal_date = 0, .tz = 0 };
	const char *error = NULL;
	enum store_status st;

	st = store_user_open(store, user->domain->name, user->name, &su, &error);
	if (map_store_status(st, res, error) < 0)
		return;
	store_user_set_quota(su, user->quota_storage, user->quota_messages);
	st = store_folder_open(su, "INBOX", &folder, &error);
	if (map_store_status(st, res, error) == 0) {
		struct store_rcpt r = { .folder = folder, .delivery_key = key };

		store_deliver_many(&m, &r, 1);
		if (map_store_status(r.status, res, r.error) == 0) {
			queue_local_set_result(res, 250, "2.0.0", "250 2.0.0 %s mailbox of %s",
				   r.duplicate ? "already delivered to" : "delivered to", user->address);
			if (!r.duplicate)
				queue_quota_check(su, user, &r.quota, msg_len);
		}
		store_folder_close(&folder);
	}
	store_user_unref(&su);
}

static void deliver_with_path(struct store *store, const struct dir_user *user, const char *key,
			      const char *sender, const char *msg, size_t msg_len,
			      struct queue_local_result *res)
{
	/* RFC 5321 4.4: the final delivery adds Return-Path. */
	char *with_path = xasprintf("Return-Path: <%s>\r\n", sender);
	size_t with_len = strlen(with_path);
	char *full = xmalloc(with_len + msg_len + 1);

	memcpy(full, with_path, with_len);
	memcpy(full + with_len, msg, msg_len);
	deliver_to_user(store, user, key, full, with_len + msg_len, res);
	if (res->code == 250)
		res->user = xstrdup(user->address);  /* auto-reply (queue_autoreply.c) */
	free(full);
	free(with_path);
}

void queue_local_deliver(struct store *store, const char *queue_id, const char *address, bool direct,
			 const char *sender, const char *msg, size_t msg_len,
			 struct queue_local_result *res)
{
	struct directory *dir = directory_current();
	struct dir_resolution rs;
	char *key = xasprintf("%s\n%s", queue_id, address);

	memset(res, 0, sizeof(*res));
	if (dir == NULL) {
		queue_local_set_result(res, 451, "4.3.0", "451 4.3.0 directory not loaded");
		free(key);
		return;
	}
	if (direct) {
		const struct dir_user *u = directory_find_user(dir, address);

		if (u == NULL)
			queue_local_set_result(res, 550, "5.1.1", "550 5.1.1 no such user here: %s", address);
		else if (store == NULL)
			queue_local_set_result(res, 451, "4.3.0", "451 4.3.0 message store not available");
		else
			deliver_with_path(store, u, key, sender, msg, msg_len, res);
		directory_unref(&dir);
		free(key);
		return;
	}
	directory_resolve(dir, address, DIRECTORY_DEFAULT_SEPARATOR, &rs);
	switch (rs.kind) {
	case DIR_RESOLVE_INVALID:
		queue_local_set_result(res, 553, "5.1.3", "553 5.1.3 invalid address: %s",
			   rs.error != NULL ? rs.error : address);
		goto out;
	case DIR_RESOLVE_NOT_LOCAL:
		/* The domain went away from users.cfg meanwhile: not ours to
		 * decide; the caller sends it out as a remote recipient. */
		queue_local_set_result(res, 0, "", "not local");
		goto out;
	case DIR_RESOLVE_UNKNOWN:
		queue_local_set_result(res, 550, "5.1.1", "550 5.1.1 no such user here: %s", address);
		goto out;
	case DIR_RESOLVE_LOOP:
		queue_local_set_result(res, 554, "5.4.6", "554 5.4.6 forwarding loop: %s",
			   rs.error != NULL ? rs.error : address);
		goto out;
	case DIR_RESOLVE_LIST:
	case DIR_RESOLVE_LIST_COMMAND:
		/* The posting policy needs the envelope and the queue: the
		 * caller hands it to queue_list_deliver (queue_list.c). */
		queue_local_set_result(res, 451, "4.3.0", "451 4.3.0 mailing list");
		res->list = true;
		goto out;
	case DIR_RESOLVE_RECIPIENTS:
		break;
	}
	if (store == NULL) {
		queue_local_set_result(res, 451, "4.3.0", "451 4.3.0 message store not available");
		goto out;
	}
	/* Exactly the mailbox of the user the address names: deliver.
	 * Anything else: the targets become recipients of their own. */
	if (rs.rcpt_count == 1 && rs.rcpts[0].kind == DIR_RCPT_LOCAL &&
	    strcasecmp(rs.rcpts[0].address, address) == 0) {
		deliver_with_path(store, rs.rcpts[0].user, key, sender, msg, msg_len, res);
		goto out;
	}
	if (rs.rcpt_count == 1 && rs.rcpts[0].kind == DIR_RCPT_LOCAL && rs.rcpts[0].user != NULL &&
	    rs.user == rs.rcpts[0].user && rs.entry != DIR_ENTRY_ALIAS &&
	    rs.entry != DIR_ENTRY_GROUP) {
		/* user+detail@, an extra address of the user, or another
		 * spelling of the login: the user's mailbox. */
		deliver_with_path(store, rs.rcpts[0].user, key, sender, msg, msg_len, res);
		goto out;
	}
	if (rs.rcpt_count == 0) {
		queue_local_set_result(res, 550, "5.1.1", "550 5.1.1 address has no valid targets: %s", address);
		goto out;
	}
	res->expanded = xcalloc(rs.rcpt_count, sizeof(char *));
	res->expanded_direct = xcalloc(rs.rcpt_count, sizeof(bool));
	for (size_t i = 0; i < rs.rcpt_count; i++) {
		if (rs.rcpts[i].kind == DIR_RCPT_LIST) {
			/* A list reached through an alias: a recipient of its own. */
			res->expanded_direct[res->expanded_count] = false;
		} else {
			res->expanded_direct[res->expanded_count] = rs.rcpts[i].kind == DIR_RCPT_LOCAL;
		}
		res->expanded[res->expanded_count++] = xstrdup(rs.rcpts[i].address);
	}
	queue_local_set_result(res, 250, "2.0.0", "250 2.0.0 expanded to %s recipients",
		   rs.rcpt_count == 1 ? "1" : "several");
out:
	directory_resolution_free(&rs);
	directory_unref(&dir);
	free(key);
}
