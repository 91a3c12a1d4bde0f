/*
 * The spool directory, <store>/queue (docs/queue.md):
 *
 *   queue/tmp/<id>.eml       a message being written (never delivered)
 *   queue/<id>.eml           a committed message (CRLF text)
 *   queue/<id>.env           its envelope: the commit record
 *   queue/corrupt/           quarantined envelopes and their messages
 *
 * Commit order (queue_writer_commit): fsync the message in tmp/, rename it
 * to queue/<id>.eml, write the envelope to a temp name, fsync, rename to
 * queue/<id>.env, fsync the directory.  The .env's appearance is the
 * commit: a crash before leaves at most a .eml without .env, which was
 * never acknowledged and is removed at the next start.  Removal goes the
 * other way: .env first, then .eml.  All writes go through core/fileio so
 * that PETREL_FAULT can fail any write, fsync or rename (HOSTILE-INPUT 26).
 */
#include "queue/queue_private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/str.h"

#define SPOOL_FILE_MODE 0640

struct queue_writer {
	struct queue *queue;
	char id[QUEUE_ID_LEN + 1];
	char *tmp_path;
	int fd;
	uint64_t size;
	struct buf head;          /* the first bytes, to find Message-ID */
	bool is_dsn;
};

char *queue_spool_path(const char *dir, const char *id, const char *ext)
{
	return xasprintf("%s/%s%s", dir, id, ext);
}

void queue_new_id(char id[QUEUE_ID_LEN + 1])
{
	static atomic_uint counter;
	static unsigned salt;
	struct timespec ts;
	uint64_t usec;
	unsigned n;

	if (salt == 0) {
		unsigned r = 0;

		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
			r = (unsigned)getpid();
		salt = r | 1u;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	usec = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	n = atomic_fetch_add(&counter, 1) + salt;
	/* 44 bits of microseconds (~557 years), 20 bits of counter. */
	snprintf(id, QUEUE_ID_LEN + 1, "%011" PRIX64 "%05X", (uint64_t)(usec & 0xFFFFFFFFFFFull), n & 0xFFFFFu);
}

int queue_writer_new(struct queue *queue, struct queue_writer **writer_r, char **error_r)
{
	struct queue_writer *w = xcalloc(1, sizeof(*w));

	w->queue = queue;
	for (int tries = 0; tries < 5; tries++) {
		queue_new_id(w->id);
		free(w->tmp_path);
		w->tmp_path = xasprintf("%s/tmp/%s.eml", queue_dir(queue), w->id);
		w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			     SPOOL_FILE_MODE);
		if (w->fd >= 0 || errno != EEXIST)
			break;
	}
	if (w->fd < 0) {
		*error_r = xasprintf("cannot create %s: %s", w->tmp_path, strerror(errno));
		free(w->tmp_path);
		free(w);
		return -1;
	}
	buf_init(&w->head, QUEUE_HEADER_PEEK);
	*writer_r = w;
	return 0;
}

int queue_writer_write(struct queue_writer *w, const void *data, size_t len, char **error_r)
{
	if (w->head.len < QUEUE_HEADER_PEEK) {
		size_t room = QUEUE_HEADER_PEEK - w->head.len;

		if (buf_append(&w->head, data, len < room ? len : room) < 0)
			panic("queue: header peek overflow");
	}
	if (fileio_write_all(w->fd, data, len) < 0) {
		*error_r = xasprintf("cannot write %s: %s", w->tmp_path, strerror(errno));
		return -1;
	}
	w->size += len;
	return 0;
}

uint64_t queue_writer_size(const struct queue_writer *w)
{
	return w->size;
}

static void writer_free(struct queue_writer **wp)
{
	struct queue_writer *w = *wp;

	if (w == NULL)
		return;
	*wp = NULL;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp_path != NULL)
		unlink(w->tmp_path);
	free(w->tmp_path);
	buf_deinit(&w->head);
	free(w);
}

void queue_writer_abort(struct queue_writer **writer)
{
	writer_free(writer);
}

/* Client-supplied envelope values must be text: no control bytes (they
 * would reach SMTP commands), bounded. */
static bool value_ok(const char *s, size_t max, bool may_be_empty)
{
	size_t n = 0;

	if (s == NULL)
		return false;
	for (; *s != '\0'; s++, n++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f || n >= max)
			return false;
	}
	return may_be_empty || n > 0;
}

/* DSN parameters are printable (RFC 3461 4.2, 4.4 after xtext decoding)
 * but we keep whatever bytes they decode to, except NUL, escaped in the
 * envelope: what the client sent round-trips exactly. */
static bool param_ok(const char *s)
{
	return s == NULL || strlen(s) <= QUEUE_MAX_PARAM;
}

static int check_spec(const struct queue_envelope_spec *spec, const char **error_r)
{
	if (!value_ok(spec->sender, QUEUE_MAX_ADDRESS, true)) {
		*error_r = "invalid envelope sender";
		return -1;
	}
	if (spec->recipient_count == 0 || spec->recipient_count > QUEUE_MAX_RCPTS) {
		*error_r = "no recipients or too many";
		return -1;
	}
	if (!param_ok(spec->envid) || (unsigned)spec->ret > QUEUE_RET_HDRS) {
		*error_r = "invalid ENVID or RET";
		return -1;
	}
	for (size_t i = 0; i < spec->recipient_count; i++) {
		const struct queue_recipient_spec *r = &spec->recipients[i];

		if (!value_ok(r->address, QUEUE_MAX_ADDRESS, false) || strchr(r->address, ' ') != NULL) {
			*error_r = "invalid recipient address";
			return -1;
		}
		if (!param_ok(r->orcpt) || r->notify > 0x0f ||
		    ((r->notify & QUEUE_NOTIFY_NEVER) && (r->notify & ~QUEUE_NOTIFY_NEVER))) {
			*error_r = "invalid ORCPT or NOTIFY";
			return -1;
		}
	}
	return 0;
}

static char *opt_dup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* A small open-addressing set of addresses, case-insensitive. */
static uint64_t addr_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)tolower((unsigned char)*s)) * 1099511628211ull;
	return h;
}

static bool seen_before(const char **set, size_t size, const char *addr)
{
	size_t i = (size_t)(addr_hash(addr) % size);

	while (set[i] != NULL) {
		if (strcasecmp(set[i], addr) == 0)
			return true;
		i = (i + 1) % size;
	}
	set[i] = addr;
	return false;
}

static void env_from_spec(struct queue_env *env, const struct queue_writer *w,
			  const struct queue_envelope_spec *spec)
{
	size_t nseen = spec->recipient_count * 2 + 1;
	const char **seen = xcalloc(nseen, sizeof(*seen));

	int64_t now = (int64_t)time(NULL);
	size_t hlen = w->head.len;
	const char *end;

	memset(env, 0, sizeof(*env));
	memcpy(env->id, w->id, sizeof(env->id));
	env->arrival = now;
	env->sender = xstrdup(spec->sender);
	env->envid = opt_dup(spec->envid);
	env->ret = spec->ret;
	env->smtputf8 = spec->smtputf8;
	env->body_8bit = spec->body_8bit;
	env->client_ip = opt_dup(spec->client_ip);
	env->helo = opt_dup(spec->helo);
	env->auth_user = opt_dup(spec->auth_user);
	/* Only the header section: stop at the first empty line. */
	end = memmem(w->head.data != NULL ? w->head.data : "", hlen, "\r\n\r\n", 4);
	if (end != NULL)
		hlen = (size_t)(end - w->head.data) + 2;
	env->message_id = w->head.data != NULL ? queue_find_message_id(w->head.data, hlen) : NULL;
	env->size = w->size;
	env->is_dsn = w->is_dsn;
	env->rcpts = xcalloc(spec->recipient_count, sizeof(*env->rcpts));
	for (size_t i = 0; i < spec->recipient_count; i++) {
		struct queue_rcpt *r;

		/* The same recipient twice (RCPT repeated, two aliases of one
		 * address): one delivery (RFC 5321 3.3 lets a server drop
		 * duplicates; a mailbox wants one copy). */
		if (seen_before(seen, nseen, spec->recipients[i].address))
			continue;
		r = &env->rcpts[env->rcpt_count++];
		r->address = xstrdup(spec->recipients[i].address);
		r->orcpt = opt_dup(spec->recipients[i].orcpt);
		r->notify = spec->recipients[i].notify;
		r->state = QUEUE_RCPT_PENDING;
		r->next_attempt = now;
	}
	free(seen);
}

int queue_spool_write_env(const char *dir, const struct queue_env *env, char **error_r)
{
	struct buf text;
	char *path = queue_spool_path(dir, env->id, ".env");
	const char *err;
	int ret = 0;

	buf_init(&text, QUEUE_MAX_ENV_FILE);
	if (queue_env_format(env, &text) < 0) {
		*error_r = xstrdup("envelope too large");
		ret = -1;
	} else if (fileio_write_atomic(path, text.data, text.len, SPOOL_FILE_MODE, &err) < 0) {
		*error_r = xstrdup(err);
		ret = -1;
	}
	buf_deinit(&text);
	free(path);
	return ret;
}

void queue_spool_remove(const char *dir, const char *id)
{
	char *env = queue_spool_path(dir, id, ".env");
	char *eml = queue_spool_path(dir, id, ".eml");

	if (fileio_unlink(env) < 0 && errno != ENOENT)
		log_error("queue", "%s: cannot remove %s: %s", id, env, strerror(errno));
	if (fileio_unlink(eml) < 0 && errno != ENOENT)
		log_error("queue", "%s: cannot remove %s: %s", id, eml, strerror(errno));
	free(env);
	free(eml);
}

void queue_spool_quarantine(const char *dir, const char *name, const char *reason)
{
	size_t len = strlen(name);
	char *base = xstrndup(name, len > 4 ? len - 4 : len);

	for (int i = 0; i < 2; i++) {
		const char *ext = i == 0 ? ".env" : ".eml";
		char *from = queue_spool_path(dir, base, ext);
		char *to = xasprintf("%s/corrupt/%s%s", dir, base, ext);

		if (rename(from, to) < 0 && errno != ENOENT)
			log_error("queue", "cannot move %s to %s: %s", from, to, strerror(errno));
		free(from);
		free(to);
	}
	{
		char *esc = str_escape(base, 64);

		log_error("queue", "%s: envelope quarantined in queue/corrupt: %s", esc, reason);
		free(esc);
	}
	free(base);
}

/* Error paths keep the errno of the failure for the caller (SMTP tells
 * a full disk, 452 4.3.1, from other errors). */
static void writer_free_keep_errno(struct queue_writer **writer)
{
	int e = errno;

	writer_free(writer);
	errno = e;
}

static int writer_commit(struct queue_writer **writer, const struct queue_envelope_spec *spec,
			 char **queue_id_r, char **error_r)
{
	struct queue_writer *w = *writer;
	struct queue_env env;
	const char *dir = queue_dir(w->queue), *why;
	char *eml;

	if (check_spec(spec, &why) < 0) {
		*error_r = xstrdup(why);
		writer_free_keep_errno(writer);
		return -1;
	}
	if (fileio_fsync(w->fd) < 0) {
		*error_r = xasprintf("cannot fsync %s: %s", w->tmp_path, strerror(errno));
		writer_free_keep_errno(writer);
		return -1;
	}
	if (close(w->fd) < 0) {
		w->fd = -1;
		*error_r = xasprintf("cannot write %s: %s", w->tmp_path, strerror(errno));
		writer_free_keep_errno(writer);
		return -1;
	}
	w->fd = -1;
	eml = queue_spool_path(dir, w->id, ".eml");
	if (fileio_rename(w->tmp_path, eml) < 0) {
		*error_r = xasprintf("cannot rename %s: %s", w->tmp_path, strerror(errno));
		free(eml);
		writer_free_keep_errno(writer);
		return -1;
	}
	free(w->tmp_path);
	w->tmp_path = NULL;
	env_from_spec(&env, w, spec);
	if (queue_spool_write_env(dir, &env, error_r) < 0) {
		int e = errno;

		/* Nothing may stay: a 4xx was (will be) answered. */
		queue_spool_remove(dir, w->id);
		unlink(eml);
		free(eml);
		queue_env_free(&env);
		errno = e;
		writer_free_keep_errno(writer);
		return -1;
	}
	free(eml);
	*queue_id_r = xstrdup(w->id);
	{
		struct queue *q = w->queue;

		writer_free(writer);
		queue_sched_add(q, &env);
	}
	return 0;
}

int queue_writer_commit(struct queue_writer **writer, const struct queue_envelope_spec *envelope,
			char **queue_id_r, char **error_r)
{
	return writer_commit(writer, envelope, queue_id_r, error_r);
}

int queue_submit_text(struct queue *queue, const struct queue_envelope_spec *spec,
		      const char *data, size_t len, bool is_dsn, char **queue_id_r, char **error_r)
{
	struct queue_writer *w;

	if (queue_writer_new(queue, &w, error_r) < 0)
		return -1;
	w->is_dsn = is_dsn;
	if (queue_writer_write(w, data, len, error_r) < 0) {
		queue_writer_abort(&w);
		return -1;
	}
	return queue_writer_commit(&w, spec, queue_id_r, error_r);
}
