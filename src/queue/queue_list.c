/*
 * Mailing lists at delivery: what happens when a queued message reaches a
 * list address or one of a list's command addresses (docs/accounts.md,
 * "Mailing lists"; docs/queue.md, "Mailing lists").
 *
 *  - NAME@DOMAIN: the posting policy (members: the envelope sender or the
 *    From: address must be a member, else the recipient fails with 5.7.1
 *    and the sender gets a failure notice; moderated: the post is held),
 *    then ONE new queued message to every member, with the list headers,
 *    the Reply-To policy, and the envelope sender NAME-bounces@DOMAIN.  The
 *    list recipient counts as delivered once that message is committed.
 *  - NAME-subscribe / NAME-unsubscribe [+TOKEN]: requests and confirmations.
 *  - NAME-moderate+approve-TOKEN / +reject-TOKEN: a moderator's decision.
 *  - NAME-bounces: notices about list mail; logged and dropped.
 *
 * Runs on a delivery thread, like the rest of local delivery; the files it
 * keeps (queue_list.h) are written atomically.  Expired requests and held
 * posts are swept whenever the list handles mail.
 */
#include "queue/queue_list.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cfg.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/str.h"
#include "directory/directory.h"
#include "directory/directory_cmd.h"
#include "queue/queue_private.h"

/* Largest held post or record we read back. */
#define LIST_MAX_HELD (1024ull * 1024 * 1024)
#define LIST_MAX_RECORD 8192

/* ---- shared with queue_autoreply.c ---- */

char *queue_store_dir(struct queue *q)
{
	const char *dir = queue_dir(q);
	const char *slash = strrchr(dir, '/');

	/* the spool is <store>/queue (queue_new) */
	if (slash == NULL)
		return xstrdup(".");
	return xstrndup(dir, (size_t)(slash - dir));
}

void queue_address_hash(const char *address, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *lower = xstrdup(address);

	for (char *p = lower; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	if (EVP_Digest(lower, strlen(lower), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		panic("queue_address_hash: SHA-256 failed");
	str_hex(md, 32, out);
	free(lower);
}

void queue_token_new(char out[QUEUE_TOKEN_LEN + 1])
{
	unsigned char raw[16];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		panic("queue_token_new: the OpenSSL random generator failed");
	queue_token_encode(raw, out);
}

int queue_send_notice(struct queue *q, const char *about_id, const char *to, const char *text,
		      size_t len, bool body_8bit)
{
	struct queue_recipient_spec rs = { .address = to, .orcpt = NULL,
					   .notify = QUEUE_NOTIFY_NEVER };
	struct queue_envelope_spec spec = {
		.sender = "", .ret = QUEUE_RET_HDRS, .body_8bit = body_8bit,
		.recipients = &rs, .recipient_count = 1,
	};
	char *id = NULL, *error = NULL, *esc = str_escape(to, 256);
	int ret = 0;

	/* RFC 3834 3.3: responses go with the null sender, so that nothing
	 * answers them back. */
	if (queue_submit_text(q, &spec, text, len, false, &id, &error) < 0) {
		log_error("queue", "%s: cannot queue a message to <%s>: %s", about_id, esc, error);
		free(error);
		ret = -1;
	} else {
		log_mail("queue", "%s: answer to=<%s> queued as %s", about_id, esc, id);
		free(id);
	}
	free(esc);
	return ret;
}

/* ---- small helpers ---- */

/* Everything one list delivery needs. */
struct lctx {
	struct queue *q;
	struct cfg *cfg;
	const struct queue_env *env;
	const char *msg;
	size_t msg_len;
	int64_t now;
	struct directory *dir;
	const struct dir_list *list;
	char *store;         /* <store> */
	char *list_dir;      /* <store>/lists/<list address> */
	char *local;         /* the list's local part */
	const char *domain;  /* the list's domain */
	char *esc_sender;    /* for logs */
	char *esc_list;
};

/* "NAME-suffix@DOMAIN" of the list.  Newly allocated. */
static char *list_addr(const struct lctx *c, const char *suffix)
{
	return xasprintf("%s%s@%s", c->local, suffix, c->domain);
}

static char *sub_path(const struct lctx *c, const char *sub, const char *name, const char *ext)
{
	return xasprintf("%s/%s/%s%s", c->list_dir, sub, name, ext);
}

static int ensure_dir(const struct lctx *c, const char *sub)
{
	char *d = xasprintf("%s/%s", c->list_dir, sub);
	int ret = fileio_mkdir_p(d, 0700);

	if (ret < 0)
		log_error("queue", "%s: cannot create %s: %s", c->env->id, d, strerror(errno));
	free(d);
	return ret;
}

static char *new_message_id(const struct lctx *c, const char *what)
{
	char t[QUEUE_TOKEN_LEN + 1];

	queue_token_new(t);
	return xasprintf("<%s.%s.%s@%s>", what, t, c->env->id, c->cfg->s.server_hostname);
}

/* Sends a short text from the list to one address (null sender). */
static void answer(const struct lctx *c, const char *to, const char *reply_to,
		   const char *subject, const char *text)
{
	/* from NAME-bounces: a reply to an answer must not post to the list,
	 * and auto-responders treat -bounces as a robot */
	char *from = list_addr(c, "-bounces");
	char *mid = new_message_id(c, "list");
	char *orig_mid = queue_msg_header(c->msg, c->msg_len, "Message-ID");
	struct queue_notice n = {
		.from = from, .from_name = c->list->description, .to = to, .reply_to = reply_to,
		.subject = subject, .text = text, .in_reply_to = orig_mid, .references = NULL,
		.message_id = mid, .date = c->now,
	};
	size_t len;
	char *body;

	body = queue_notice_text(&n, &len);
	(void)queue_send_notice(c->q, c->env->id, to, body, len, false);
	free(body);
	free(orig_mid);
	free(mid);
	free(from);
}

/* Mail that must never be answered (docs/accounts.md, list commands 4;
 * RFC 3834 2): the null sender, Auto-Submitted other than "no", bulk or
 * list precedence. */
static const char *unanswerable(const struct lctx *c)
{
	char *v;
	const char *why = NULL;

	if (c->env->sender[0] == '\0')
		return "null sender";
	if (!directory_valid_address(c->env->sender, NULL))
		return "the sender is not a valid address";
	v = queue_msg_header(c->msg, c->msg_len, "Auto-Submitted");
	if (v != NULL && strcasecmp(v, "no") != 0)
		why = "Auto-Submitted";
	free(v);
	v = queue_msg_header(c->msg, c->msg_len, "Precedence");
	if (why == NULL && v != NULL &&
	    (strcasecmp(v, "bulk") == 0 || strcasecmp(v, "junk") == 0 || strcasecmp(v, "list") == 0))
		why = "Precedence: bulk, junk or list";
	free(v);
	return why;
}

/* True when an answer to address is allowed now (at most one per
 * QUEUE_LIST_ANSWER_INTERVAL), and records it. */
static bool rate_ok(const struct lctx *c, const char *address)
{
	char hash[65], *path, *data = NULL, stamp[32];
	size_t len;
	int64_t last = 0;
	const char *error;
	bool ok = true;

	queue_address_hash(address, hash);
	if (ensure_dir(c, "answered") < 0)
		return false;  /* when unsure, stay quiet */
	path = sub_path(c, "answered", hash, "");
	if (fileio_read_all(path, 64, &data, &len) == 0) {
		if (str_to_i64(data, 0, INT64_MAX, &last) < 0)
			last = 0;
		free(data);
	}
	if (last > 0 && c->now >= last && c->now - last < QUEUE_LIST_ANSWER_INTERVAL)
		ok = false;
	if (ok) {
		snprintf(stamp, sizeof(stamp), "%" PRId64, c->now);
		if (fileio_write_atomic(path, stamp, strlen(stamp), 0600, &error) < 0) {
			log_error("queue", "%s: cannot write %s: %s", c->env->id, path, error);
			ok = false;
		}
	}
	free(path);
	return ok;
}

/* An answer to the sender of a list command, within the rules. */
static void answer_sender(const struct lctx *c, const char *reply_to, const char *subject,
			  const char *text)
{
	if (!rate_ok(c, c->env->sender)) {
		log_mail("queue", "%s: list=<%s> no answer to <%s>: answered less than an hour ago",
			 c->env->id, c->esc_list, c->esc_sender);
		return;
	}
	answer(c, c->env->sender, reply_to, subject, text);
}

/* ---- expiry ---- */

static int read_record(const char *path, struct queue_pending *p)
{
	char *data = NULL;
	size_t len;
	int ret;

	memset(p, 0, sizeof(*p));
	if (fileio_read_all(path, LIST_MAX_RECORD, &data, &len) < 0)
		return -1;
	ret = queue_pending_parse(data, len, p);
	free(data);
	return ret;
}

static int64_t file_mtime(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (int64_t)st.st_mtime : 0;
}

/* Removes requests older than QUEUE_LIST_PENDING_TIME and held posts older
 * than queue/list-moderation-time, with a log line each. */
static void sweep_dir(const struct lctx *c, const char *sub, int64_t max_age)
{
	char *d = xasprintf("%s/%s", c->list_dir, sub);
	DIR *dh = opendir(d);
	struct dirent *de;

	while (dh != NULL && (de = readdir(dh)) != NULL) {
		char *path, name[QUEUE_TOKEN_LEN + 1];
		struct queue_pending p;
		size_t n = strlen(de->d_name);
		bool held = strcmp(sub, "held") == 0;
		int64_t created;

		if (n < QUEUE_TOKEN_LEN || n > QUEUE_TOKEN_LEN + 5)
			continue;  /* ".", "..", temporary files */
		memcpy(name, de->d_name, QUEUE_TOKEN_LEN);
		name[QUEUE_TOKEN_LEN] = '\0';
		if (!queue_token_valid(name))
			continue;
		path = xasprintf("%s/%s", d, de->d_name);
		if (held && strcmp(de->d_name + QUEUE_TOKEN_LEN, ".eml") == 0) {
			/* a post whose record was never written (crash) or is gone */
			char *info = xasprintf("%s/%s.info", d, name);

			if (access(info, F_OK) != 0 && c->now - file_mtime(path) > max_age)
				(void)fileio_unlink(path);
			free(info);
			free(path);
			continue;
		}
		created = read_record(path, &p) == 0 ? p.created : file_mtime(path);
		if (c->now - created > max_age) {
			char *esc = str_escape(p.address != NULL ? p.address : "", 256);

			(void)fileio_unlink(path);
			if (held) {
				char *eml = xasprintf("%s/%s.eml", d, name);

				(void)fileio_unlink(eml);
				free(eml);
			}
			log_mail("queue", "%s: list=<%s> %s %s from <%s> expired: dropped", c->env->id,
				 c->esc_list, held ? "held post" : "request", name, esc);
			free(esc);
		}
		queue_pending_free(&p);
		free(path);
	}
	if (dh != NULL)
		closedir(dh);
	free(d);
}

/* ---- distribution ---- */

/* Reply-To for the list's policy, or NULL to keep the sender's. */
static char *reply_to_for(const struct dir_list *list, const char *msg, size_t len,
			  const char *sender)
{
	char *from, *addr;

	switch (list->reply_to) {
	case DIR_LIST_REPLY_TO_LIST:
		return xasprintf("<%s>", list->address);
	case DIR_LIST_REPLY_TO_SENDER:
		from = queue_msg_header(msg, len, "From");
		addr = queue_msg_first_address(from);
		free(from);
		if (addr == NULL && sender[0] != '\0')
			addr = xstrdup(sender);
		if (addr == NULL)
			return NULL;
		from = xasprintf("<%s>", addr);
		free(addr);
		return from;
	case DIR_LIST_REPLY_TO_NONE:
		break;
	}
	return NULL;
}

/* Commits one message to every member; 0, or -1 with res set (4xx). */
static int distribute(const struct lctx *c, const char *msg, size_t len, const char *sender,
		      bool smtputf8, bool body_8bit, struct queue_local_result *res)
{
	const struct dir_list *l = c->list;
	char *id_hdr = directory_list_id(l), *unsub = directory_list_unsubscribe(l);
	char *sub = directory_list_subscribe(l), *post = directory_list_post(l);
	char *reply_to = reply_to_for(l, msg, len, sender);
	char *bounces = list_addr(c, "-bounces");
	struct queue_list_headers h = {
		.list_address = l->address, .list_id = id_hdr, .list_unsubscribe = unsub,
		.list_subscribe = sub, .list_post = post, .reply_to = reply_to,
	};
	struct queue_recipient_spec *rs = xcalloc(l->members.count + 1, sizeof(*rs));
	struct queue_envelope_spec spec = {
		.sender = bounces, .ret = QUEUE_RET_HDRS, .smtputf8 = smtputf8,
		.body_8bit = body_8bit, .recipients = rs,
	};
	char *text, *qid = NULL, *error = NULL;
	size_t text_len;
	int ret = 0;

	for (size_t i = 0; i < l->members.count; i++) {
		const char *m = l->members.items[i];

		/* the list itself as its own member would only loop */
		if (strcasecmp(m, l->address) == 0) {
			log_mail("queue", "%s: list=<%s> member <%s> is the list itself: skipped",
				 c->env->id, c->esc_list, c->esc_list);
			continue;
		}
		rs[spec.recipient_count].address = m;
		/* failures come back to NAME-bounces (and are logged there);
		 * delay notices about a whole list would be noise */
		rs[spec.recipient_count].notify = QUEUE_NOTIFY_FAILURE;
		spec.recipient_count++;
	}
	if (spec.recipient_count == 0) {
		queue_local_set_result(res, 250, "2.0.0", "250 2.0.0 list %s has no members: nothing to send",
			l->address);
		goto out;
	}
	text = queue_list_message(msg, len, &h, &text_len);
	if (queue_submit_text(c->q, &spec, text, text_len, false, &qid, &error) < 0) {
		queue_local_set_result(res, 451, "4.3.0", "451 4.3.0 cannot queue the list message: %s", error);
		log_error("queue", "%s: list=<%s> cannot queue the distribution: %s", c->env->id,
			  c->esc_list, error);
		free(error);
		ret = -1;
	} else {
		queue_local_set_result(res, 250, "2.0.0", "250 2.0.0 distributed to %zu members of %s as %s",
			spec.recipient_count, l->address, qid);
		log_mail("queue", "%s: list=<%s> from=<%s> distributed to %zu members as %s",
			 c->env->id, c->esc_list, c->esc_sender, spec.recipient_count, qid);
		free(qid);
	}
	free(text);
out:
	free(rs);
	free(bounces);
	free(reply_to);
	free(id_hdr);
	free(unsub);
	free(sub);
	free(post);
	return ret;
}

/* True when the message has already been through this list. */
static bool is_loop(const struct lctx *c)
{
	char *id = xasprintf("<%s.%s>", c->local, c->domain);
	char *bounces = list_addr(c, "-bounces");
	bool loop;

	/* List-Id is "<NAME.DOMAIN>" (RFC 2919); X-Loop names the list. */
	loop = queue_msg_header_contains(c->msg, c->msg_len, "List-Id", id) ||
	       queue_msg_header_contains(c->msg, c->msg_len, "X-Loop", c->list->address) ||
	       strcasecmp(c->env->sender, bounces) == 0;
	free(id);
	free(bounces);
	return loop;
}

static bool poster_is_member(const struct lctx *c)
{
	char *from = queue_msg_header(c->msg, c->msg_len, "From");
	char *addr = queue_msg_first_address(from);
	bool ok;

	ok = (c->env->sender[0] != '\0' &&
	      directory_list_has_member(c->dir, c->list, c->env->sender)) ||
	     (addr != NULL && directory_list_has_member(c->dir, c->list, addr));
	free(from);
	free(addr);
	return ok;
}

static void hold(const struct lctx *c, struct queue_local_result *res);

static void post(const struct lctx *c, struct queue_local_result *res)
{
	if (is_loop(c)) {
		log_mail("queue", "%s: list=<%s> from=<%s> loop: the message already went through "
			 "this list", c->env->id, c->esc_list, c->esc_sender);
		queue_local_set_result(res, 554, "5.4.6", "554 5.4.6 mail loop: the message already went through "
			"list %s", c->list->address);
		return;
	}
	switch (c->list->posting) {
	case DIR_LIST_POST_MEMBERS:
		if (!poster_is_member(c)) {
			log_mail("queue", "%s: list=<%s> from=<%s> refused: not a member", c->env->id,
				 c->esc_list, c->esc_sender);
			queue_local_set_result(res, 550, "5.7.1", "550 5.7.1 only members may post to the list %s; "
				"the sender is not a member", c->list->address);
			return;
		}
		break;
	case DIR_LIST_POST_MODERATED:
		hold(c, res);
		return;
	case DIR_LIST_POST_ANYONE:
		break;
	}
	(void)distribute(c, c->msg, c->msg_len, c->env->sender, c->env->smtputf8,
			 c->env->body_8bit, res);
}

/* ---- moderation ---- */

static char *held_summary(const char *msg, size_t len, const char *name)
{
	char *v = queue_msg_header(msg, len, name);
	char *esc;

	if (v == NULL)
		return xstrdup("(none)");
	esc = str_escape(v, 200);
	free(v);
	return esc;
}

static void hold(const struct lctx *c, struct queue_local_result *res)
{
	struct queue_pending p = {
		.action = QUEUE_PENDING_MODERATE, .address = (char *)c->env->sender,
		.created = c->now, .smtputf8 = c->env->smtputf8, .body_8bit = c->env->body_8bit,
	};
	char token[QUEUE_TOKEN_LEN + 1], *eml, *info, *rec, *text, *subject;
	char *approve, *reject, *from_h, *subj_h;
	const char *error;
	int64_t days = (c->cfg->s.queue_list_moderation_time + 86399) / 86400;

	if (ensure_dir(c, "held") < 0) {
		queue_local_set_result(res, 451, "4.3.0", "451 4.3.0 cannot hold the post for moderation");
		return;
	}
	queue_token_new(token);
	eml = sub_path(c, "held", token, ".eml");
	info = sub_path(c, "held", token, ".info");
	rec = queue_pending_format(&p);
	/* the message first, then its record: the record is the commit */
	if (fileio_write_atomic(eml, c->msg, c->msg_len, 0600, &error) < 0 ||
	    fileio_write_atomic(info, rec, strlen(rec), 0600, &error) < 0) {
		(void)fileio_unlink(eml);
		queue_local_set_result(res, 451, "4.3.0", "451 4.3.0 cannot hold the post for moderation: %s", error);
		goto out;
	}
	approve = xasprintf("%s-moderate+approve-%s@%s", c->local, token, c->domain);
	reject = xasprintf("%s-moderate+reject-%s@%s", c->local, token, c->domain);
	from_h = held_summary(c->msg, c->msg_len, "From");
	subj_h = held_summary(c->msg, c->msg_len, "Subject");
	subject = xasprintf("%s: a post awaits approval", c->list->address);
	text = xasprintf("A message to the list %s needs a moderator's decision.\n\n"
			 "  From: %s\n  Subject: %s\n  Envelope sender: <%s>\n\n"
			 "To approve it (it is sent to the list), send any message to:\n  %s\n\n"
			 "To reject it (the sender is told), send any message to:\n  %s\n\n"
			 "Without a decision it is dropped after %" PRId64 " day%s.\n",
			 c->list->address, from_h, subj_h, c->esc_sender, approve, reject, days,
			 days == 1 ? "" : "s");
	for (size_t i = 0; i < c->list->moderators.count; i++)
		answer(c, c->list->moderators.items[i], NULL, subject, text);
	log_mail("queue", "%s: list=<%s> from=<%s> held for moderation: token=%s", c->env->id,
		 c->esc_list, c->esc_sender, token);
	queue_local_set_result(res, 250, "2.0.0", "250 2.0.0 held for the moderators of %s", c->list->address);
	free(text);
	free(subject);
	free(from_h);
	free(subj_h);
	free(approve);
	free(reject);
out:
	free(rec);
	free(eml);
	free(info);
}

static void moderate(const struct lctx *c, const char *detail, struct queue_local_result *res)
{
	char token[QUEUE_TOKEN_LEN + 1], *eml = NULL, *info = NULL, *msg = NULL;
	struct queue_pending p;
	bool approve;
	size_t len;

	memset(&p, 0, sizeof(p));
	queue_local_set_result(res, 250, "2.0.0", "250 2.0.0 moderation answer handled");
	if (queue_moderate_parse(detail, &approve, token) < 0) {
		log_mail("queue", "%s: list=<%s> from=<%s> moderation: no valid token", c->env->id,
			 c->esc_list, c->esc_sender);
		goto unknown;
	}
	eml = sub_path(c, "held", token, ".eml");
	info = sub_path(c, "held", token, ".info");
	if (read_record(info, &p) < 0 || p.action != QUEUE_PENDING_MODERATE ||
	    fileio_read_all(eml, LIST_MAX_HELD, &msg, &len) < 0) {
		log_mail("queue", "%s: list=<%s> from=<%s> moderation: unknown or expired token %s",
			 c->env->id, c->esc_list, c->esc_sender, token);
		goto unknown;
	}
	if (approve) {
		if (distribute(c, msg, len, p.address, p.smtputf8, p.body_8bit, res) < 0)
			goto out;  /* 4xx: the moderator's message is retried */
		log_mail("queue", "%s: list=<%s> held post %s approved by <%s>", c->env->id,
			 c->esc_list, token, c->esc_sender);
	} else {
		char *subj = queue_msg_header(msg, len, "Subject");
		char *s = str_escape(subj != NULL ? subj : "", 200);
		char *text = xasprintf("Your message to the list %s was not accepted by its "
				       "moderators.\n\n  Subject: %s\n", c->list->address, s);
		char *subject = xasprintf("Your post to %s was rejected", c->list->address);

		if (p.address[0] != '\0')
			answer(c, p.address, NULL, subject, text);
		log_mail("queue", "%s: list=<%s> held post %s rejected by <%s>", c->env->id,
			 c->esc_list, token, c->esc_sender);
		free(subject);
		free(text);
		free(s);
		free(subj);
		queue_local_set_result(res, 250, "2.0.0", "250 2.0.0 post rejected");
	}
	/* the record first: without it the post is never distributed again */
	(void)fileio_unlink(info);
	(void)fileio_unlink(eml);
	goto out;
unknown:
	if (unanswerable(c) == NULL)
		answer_sender(c, NULL, "Unknown or expired moderation token",
			      "There is no post waiting for this answer: it was decided already, "
			      "it expired, or the address is wrong.\nNothing was changed.\n");
out:
	queue_pending_free(&p);
	free(msg);
	free(eml);
	free(info);
}

/* ---- subscription ---- */

/* Applies the membership change the way `petrelctl list add|remove
 * --member` does: the same command code, users.cfg written atomically, the
 * new snapshot put into service.  0, or -1 with *error_r (caller frees). */
static int change_membership(const struct lctx *c, bool subscribe, const char *address,
			     char **error_r)
{
	json_t *req = json_pack("{s:s, s:s, s:[s]}", "command",
				subscribe ? "list-add" : "list-remove", "address", c->list->address,
				"members", address);
	struct directory *dir, *saved = NULL;
	json_t *reply;
	int ret = 0;

	directory_writer_lock();
	dir = directory_current();
	if (dir == NULL) {
		directory_writer_unlock();
		json_decref(req);
		*error_r = xstrdup("no directory loaded");
		return -1;
	}
	reply = directory_cmd_execute(dir, req, &saved);
	if (saved != NULL)
		directory_set_current(saved);
	directory_writer_unlock();
	if (!json_is_true(json_object_get(reply, "ok"))) {
		const char *e = json_string_value(json_object_get(reply, "error"));

		*error_r = xstrdup(e != NULL ? e : "refused");
		ret = -1;
	}
	json_decref(reply);
	json_decref(req);
	directory_unref(&dir);
	return ret;
}

static void request(const struct lctx *c, bool subscribe)
{
	const char *verb = subscribe ? "subscribe" : "unsubscribe";
	struct queue_pending p = {
		.action = subscribe ? QUEUE_PENDING_SUBSCRIBE : QUEUE_PENDING_UNSUBSCRIBE,
		.address = (char *)c->env->sender, .created = c->now,
	};
	char token[QUEUE_TOKEN_LEN + 1], *path, *rec, *confirm, *text, *subject;
	const char *error;
	bool member = directory_list_has_member(c->dir, c->list, c->env->sender);

	if (subscribe && !c->list->subscription_open) {
		log_mail("queue", "%s: list=<%s> subscribe from <%s> refused: closed list",
			 c->env->id, c->esc_list, c->esc_sender);
		answer_sender(c, NULL, "Subscription refused",
			      "This list is closed: it does not take subscriptions by mail.\n"
			      "Ask its administrator.\n");
		return;
	}
	if (subscribe == member) {
		log_mail("queue", "%s: list=<%s> %s from <%s>: nothing to do (%s)", c->env->id,
			 c->esc_list, verb, c->esc_sender, member ? "already a member" : "not a member");
		answer_sender(c, NULL, member ? "Already subscribed" : "Not subscribed",
			      member ? "This address is already subscribed to the list.\n"
				     : "This address is not subscribed to the list.\n");
		return;
	}
	if (ensure_dir(c, "pending") < 0)
		return;
	if (!rate_ok(c, c->env->sender)) {
		log_mail("queue", "%s: list=<%s> %s from <%s> ignored: answered less than an hour "
			 "ago", c->env->id, c->esc_list, verb, c->esc_sender);
		return;
	}
	queue_token_new(token);
	path = sub_path(c, "pending", token, "");
	rec = queue_pending_format(&p);
	if (fileio_write_atomic(path, rec, strlen(rec), 0600, &error) < 0) {
		log_error("queue", "%s: cannot write %s: %s", c->env->id, path, error);
		free(path);
		free(rec);
		return;
	}
	confirm = xasprintf("%s-%s+%s@%s", c->local, verb, token, c->domain);
	subject = xasprintf("Confirm: %s %s", verb, c->list->address);
	text = xasprintf("Someone (maybe you) asked to %s the address\n  %s\n%s the list %s.\n\n"
			 "To confirm, reply to this message, or send any message to:\n  %s\n\n"
			 "If you did not ask for this, ignore this message: nothing changes "
			 "without confirmation,\nand the request expires in 3 days.\n",
			 verb, c->env->sender, subscribe ? "to" : "from", c->list->address, confirm);
	answer(c, c->env->sender, confirm, subject, text);
	log_mail("queue", "%s: list=<%s> %s request from <%s>: confirmation sent", c->env->id,
		 c->esc_list, verb, c->esc_sender);
	free(text);
	free(subject);
	free(confirm);
	free(rec);
	free(path);
}

static void confirm(const struct lctx *c, bool subscribe, const char *token)
{
	const char *verb = subscribe ? "subscribe" : "unsubscribe";
	char *path = NULL, *error = NULL, *addr_esc;
	struct queue_pending p;
	char lower[QUEUE_TOKEN_LEN + 1];

	memset(&p, 0, sizeof(p));
	if (!queue_token_valid(token))
		goto unknown;
	for (size_t i = 0; i <= QUEUE_TOKEN_LEN; i++)
		lower[i] = token[i] >= 'A' && token[i] <= 'Z' ? (char)(token[i] - 'A' + 'a')
							      : token[i];
	path = sub_path(c, "pending", lower, "");
	if (read_record(path, &p) < 0 ||
	    p.action != (subscribe ? QUEUE_PENDING_SUBSCRIBE : QUEUE_PENDING_UNSUBSCRIBE))
		goto unknown;
	if (c->now - p.created > QUEUE_LIST_PENDING_TIME) {
		(void)fileio_unlink(path);
		goto unknown;
	}
	addr_esc = str_escape(p.address, 256);
	if (change_membership(c, subscribe, p.address, &error) < 0) {
		char *e = str_escape(error, 256);

		log_mail("queue", "%s: list=<%s> %s of <%s> confirmed but refused: %s", c->env->id,
			 c->esc_list, verb, addr_esc, e);
		free(e);
		free(error);
	} else {
		char *subject = xasprintf("%s: %s", c->list->address,
					  subscribe ? "welcome" : "goodbye");
		char *text = xasprintf(subscribe ? "The address %s is now subscribed to %s.\n"
						 : "The address %s is no longer subscribed to %s.\n",
				       p.address, c->list->address);

		log_mail("queue", "%s: list=<%s> %s of <%s> confirmed by <%s>", c->env->id,
			 c->esc_list, verb, addr_esc, c->esc_sender);
		/* to the address that changed, once per token: not rate limited */
		answer(c, p.address, NULL, subject, text);
		free(subject);
		free(text);
	}
	free(addr_esc);
	(void)fileio_unlink(path);
	goto out;
unknown:
	log_mail("queue", "%s: list=<%s> %s confirmation from <%s>: unknown or expired token",
		 c->env->id, c->esc_list, verb, c->esc_sender);
	answer_sender(c, NULL, "Unknown or expired confirmation",
		      "This confirmation does not match a request: it was used already, it "
		      "expired (after 3 days),\nor the address is wrong.  Nothing was changed.\n");
out:
	queue_pending_free(&p);
	free(path);
}

static void command(const struct lctx *c, enum dir_list_command cmd, const char *detail,
		    struct queue_local_result *res)
{
	const char *why;

	queue_local_set_result(res, 250, "2.0.0", "250 2.0.0 list command handled");
	switch (cmd) {
	case DIR_LIST_BOUNCES:
		log_mail("queue", "%s: list=<%s> bounce from <%s> about list mail: dropped",
			 c->env->id, c->esc_list, c->esc_sender);
		queue_local_set_result(res, 250, "2.0.0", "250 2.0.0 list bounce noted");
		return;
	case DIR_LIST_MODERATE:
		moderate(c, detail, res);
		return;
	case DIR_LIST_SUBSCRIBE:
	case DIR_LIST_UNSUBSCRIBE:
		break;
	}
	why = unanswerable(c);
	if (why != NULL) {
		log_mail("queue", "%s: list=<%s> command from <%s> ignored: %s", c->env->id,
			 c->esc_list, c->esc_sender, why);
		return;
	}
	if (detail != NULL)
		confirm(c, cmd == DIR_LIST_SUBSCRIBE, detail);
	else
		request(c, cmd == DIR_LIST_SUBSCRIBE);
}

void queue_list_deliver(struct queue *q, struct cfg *cfg, const struct queue_env *env,
			const char *address, const char *msg, size_t msg_len, int64_t now,
			struct queue_local_result *res)
{
	struct lctx c = { .q = q, .cfg = cfg, .env = env, .msg = msg, .msg_len = msg_len,
			  .now = now };
	struct dir_resolution rs;
	const char *at;

	queue_local_set_result(res, 451, "4.3.0", "451 4.3.0 directory not loaded");
	c.dir = directory_current();
	if (c.dir == NULL)
		return;
	directory_resolve(c.dir, address, DIRECTORY_DEFAULT_SEPARATOR, &rs);
	if ((rs.kind != DIR_RESOLVE_LIST && rs.kind != DIR_RESOLVE_LIST_COMMAND) ||
	    rs.list == NULL) {
		/* users.cfg changed in between: resolve again next time */
		queue_local_set_result(res, 451, "4.3.0", "451 4.3.0 the list changed meanwhile");
		goto out;
	}
	c.list = rs.list;
	at = strrchr(c.list->address, '@');
	c.local = xstrndup(c.list->address, (size_t)(at - c.list->address));
	c.domain = at + 1;
	c.store = queue_store_dir(q);
	c.list_dir = xasprintf("%s/lists/%s", c.store, c.list->address);
	c.esc_sender = str_escape(env->sender, 256);
	c.esc_list = str_escape(c.list->address, 256);
	sweep_dir(&c, "pending", QUEUE_LIST_PENDING_TIME);
	sweep_dir(&c, "held", c.cfg->s.queue_list_moderation_time);
	if (rs.kind == DIR_RESOLVE_LIST)
		post(&c, res);
	else
		command(&c, rs.command, rs.detail, res);
	free(c.local);
	free(c.store);
	free(c.list_dir);
	free(c.esc_sender);
	free(c.esc_list);
out:
	directory_resolution_free(&rs);
	directory_unref(&c.dir);
}
