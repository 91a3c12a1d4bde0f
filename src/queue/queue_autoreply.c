/*
 * Auto-reply ("vacation") at delivery: after a message went into a user's
 * mailbox, the user's auto-reply is sent to the envelope sender when
 * directory_autoreply_should_send says so (the rules are there, and in
 * docs/accounts.md "Auto-reply").  This file gathers what the rules need
 * from the message, keeps the per-sender memory and queues the answer.
 *
 * Memory: <store>/autoreply/<user address>/<SHA-256 of the sender> holds
 * the time of the last answer, written atomically, so one answer per
 * sender per interval survives restarts.  A process-wide mutex makes the
 * look-up, the decision and the record one step, so two delivery threads
 * delivering to the same user at once cannot both answer.
 *
 * The answer goes with the null sender (RFC 3834 3.3), carries
 * Auto-Submitted: auto-replied, In-Reply-To and References, and the
 * user's subject ("Auto: <original subject>" when none) and text.
 */
#include "queue/queue_list.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/cfg.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/str.h"
#include "directory/directory.h"
#include "queue/queue_private.h"

static pthread_mutex_t autoreply_lock = PTHREAD_MUTEX_INITIALIZER;

/* Header fields of the message the rules look at (owned). */
struct arhdrs {
	char *auto_submitted, *precedence, *list_id, *xars, *to, *cc, *spam_flag;
	char *subject, *message_id, *references;
};

static void read_headers(const char *msg, size_t len, struct arhdrs *h)
{
	h->auto_submitted = queue_msg_header(msg, len, "Auto-Submitted");
	h->precedence = queue_msg_header(msg, len, "Precedence");
	h->list_id = queue_msg_header(msg, len, "List-Id");
	h->xars = queue_msg_header(msg, len, "X-Auto-Response-Suppress");
	h->to = queue_msg_header(msg, len, "To");
	h->cc = queue_msg_header(msg, len, "Cc");
	h->spam_flag = queue_msg_header(msg, len, "X-Spam-Flag");
	h->subject = queue_msg_header(msg, len, "Subject");
	h->message_id = queue_msg_header(msg, len, "Message-ID");
	h->references = queue_msg_header(msg, len, "References");
}

static void free_headers(struct arhdrs *h)
{
	free(h->auto_submitted);
	free(h->precedence);
	free(h->list_id);
	free(h->xars);
	free(h->to);
	free(h->cc);
	free(h->spam_flag);
	free(h->subject);
	free(h->message_id);
	free(h->references);
}

static int64_t read_last(const char *path)
{
	char *data = NULL;
	size_t len;
	int64_t t = 0;

	if (fileio_read_all(path, 64, &data, &len) < 0)
		return 0;
	if (str_to_i64(data, 0, INT64_MAX, &t) < 0)
		t = 0;
	free(data);
	return t;
}

/* The text of the answer.  Newly allocated. */
static char *build_reply(const struct cfg *cfg, const struct queue_env *env,
			 const struct dir_user *u, const struct arhdrs *h, int64_t now,
			 size_t *len_r)
{
	char tok[QUEUE_TOKEN_LEN + 1];
	char *subject, *mid, *text;
	struct queue_notice n;

	if (u->autoreply.subject != NULL && u->autoreply.subject[0] != '\0')
		subject = xstrdup(u->autoreply.subject);
	else
		subject = xasprintf("Auto: %s", h->subject != NULL ? h->subject : "");
	queue_token_new(tok);
	mid = xasprintf("<autoreply.%s.%s@%s>", tok, env->id, cfg->s.server_hostname);
	memset(&n, 0, sizeof(n));
	n.from = u->address;
	n.from_name = u->full_name;
	n.to = env->sender;
	n.subject = subject;
	n.text = u->autoreply.text;
	n.in_reply_to = h->message_id;
	n.references = h->references;
	n.message_id = mid;
	n.date = now;
	text = queue_notice_text(&n, len_r);
	free(mid);
	free(subject);
	return text;
}

void queue_autoreply_consider(struct queue *q, struct cfg *cfg, const struct queue_env *env,
			      const char *user_address, const char *msg, size_t msg_len,
			      int64_t now)
{
	struct directory *dir = directory_current();
	const struct dir_user *u;
	struct dir_autoreply_msg m;
	struct arhdrs h;
	char hash[65], *store, *udir, *path, *text, *to, stamp[32];
	const char *reason, *error;
	int64_t last;
	size_t len;

	if (dir == NULL)
		return;
	u = directory_find_user(dir, user_address);
	if (u == NULL || !u->autoreply.enabled || env->sender[0] == '\0') {
		directory_unref(&dir);
		return;
	}
	memset(&h, 0, sizeof(h));
	read_headers(msg, msg_len, &h);
	memset(&m, 0, sizeof(m));
	m.sender = env->sender;
	m.auto_submitted = h.auto_submitted;
	m.precedence = h.precedence;
	m.list_id = h.list_id;
	m.other_list_headers = queue_msg_has_field_prefix(msg, msg_len, "List-") ||
			       queue_msg_has_field_prefix(msg, msg_len, "Mailing-List");
	m.x_auto_response_suppress = h.xars;
	m.to = h.to;
	m.cc = h.cc;
	m.spam = h.spam_flag != NULL && strncasecmp(h.spam_flag, "yes", 3) == 0;

	store = queue_store_dir(q);
	udir = xasprintf("%s/autoreply/%s", store, u->address);
	queue_address_hash(env->sender, hash);
	path = xasprintf("%s/%s", udir, hash);
	to = str_escape(env->sender, 256);

	pthread_mutex_lock(&autoreply_lock);
	last = read_last(path);
	if (!directory_autoreply_should_send(dir, u, &m, now, last, DIRECTORY_AUTOREPLY_INTERVAL,
					     &reason)) {
		log_debug("queue", "%s: auto-reply of <%s> to <%s> not sent: %s", env->id,
			  u->address, to, reason);
		goto unlock;
	}
	if (fileio_mkdir_p(udir, 0700) < 0) {
		log_error("queue", "%s: cannot create %s: %s", env->id, udir, strerror(errno));
		goto unlock;
	}
	/* Record first: a crash after it loses one answer, never sends two. */
	snprintf(stamp, sizeof(stamp), "%" PRId64, now);
	if (fileio_write_atomic(path, stamp, strlen(stamp), 0600, &error) < 0) {
		log_error("queue", "%s: cannot write %s: %s", env->id, path, error);
		goto unlock;
	}
	text = build_reply(cfg, env, u, &h, now, &len);
	if (queue_send_notice(q, env->id, env->sender, text, len, false) == 0)
		log_mail("queue", "%s: auto-reply of <%s> sent to <%s>", env->id, u->address, to);
	free(text);
unlock:
	pthread_mutex_unlock(&autoreply_lock);
	free(to);
	free(path);
	free(udir);
	free(store);
	free_headers(&h);
	directory_unref(&dir);
}
