/*
 * The POP3 commands (RFC 1939, RFC 2449, RFC 5034) and their store work:
 * the maildrop opened at login, RETR/TOP streamed in chunks read on the
 * worker pool, and the expunge at QUIT.  See pop3.h for the semantics.
 */
#include "pop3/pop3.h"
#include "pop3/pop3_private.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "auth/sasl.h"
#include "core/log.h"
#include "directory/directory.h"
#include "store/store.h"

/* ---- maildrop locks: one POP3 session per maildrop (RFC 1939 8) ---- */

static pthread_mutex_t lock_mutex = PTHREAD_MUTEX_INITIALIZER;
static char **lock_keys;
static size_t lock_count, lock_cap;

static bool lock_acquire(const char *key)
{
	bool ok = true;

	pthread_mutex_lock(&lock_mutex);
	for (size_t i = 0; i < lock_count; i++) {
		if (strcmp(lock_keys[i], key) == 0) {
			ok = false;
			break;
		}
	}
	if (ok) {
		if (lock_count == lock_cap) {
			lock_cap = lock_cap == 0 ? 16 : lock_cap * 2;
			lock_keys = xreallocarray(lock_keys, lock_cap, sizeof(*lock_keys));
		}
		lock_keys[lock_count++] = xstrdup(key);
	}
	pthread_mutex_unlock(&lock_mutex);
	return ok;
}

static void lock_release(const char *key)
{
	pthread_mutex_lock(&lock_mutex);
	for (size_t i = 0; i < lock_count; i++) {
		if (strcmp(lock_keys[i], key) == 0) {
			free(lock_keys[i]);
			lock_keys[i] = lock_keys[--lock_count];
			break;
		}
	}
	if (lock_count == 0) {
		free(lock_keys);
		lock_keys = NULL;
		lock_cap = 0;
	}
	pthread_mutex_unlock(&lock_mutex);
}

/* ---- the maildrop ---- */

void pop3_maildrop_unlock(struct pop3_maildrop *drop)
{
	char *key = __atomic_exchange_n(&drop->lock_key, NULL, __ATOMIC_ACQ_REL);

	if (key != NULL) {
		lock_release(key);
		free(key);
	}
}

static void maildrop_destroy(struct pop3_maildrop *drop)
{
	store_folder_close(&drop->folder);
	store_user_unref(&drop->user);
	pop3_maildrop_unlock(drop);
	free(drop->msgs);
	free(drop);
}

static void maildrop_destroy_job(void *arg)
{
	maildrop_destroy(arg);
}

static struct pop3_maildrop *maildrop_ref(struct pop3_maildrop *drop)
{
	__atomic_add_fetch(&drop->refs, 1, __ATOMIC_RELAXED);
	return drop;
}

void pop3_maildrop_unref(struct pop3_maildrop **dropp)
{
	struct pop3_maildrop *drop = *dropp;
	struct worker_pool *pool;

	if (drop == NULL)
		return;
	*dropp = NULL;
	if (__atomic_sub_fetch(&drop->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	/* Closing a folder may touch the disk: not on an event loop. */
	pool = pop3g.workers != NULL ? *pop3g.workers : NULL;
	if (pool == NULL || worker_submit(pool, NULL, maildrop_destroy_job, NULL, drop) < 0)
		maildrop_destroy(drop);
}

int pop3_maildrop_open(struct store *store, const struct cfg *cfg, const char *identity,
		       struct pop3_maildrop **drop_r, const char **error_r, bool *in_use_r)
{
	const char *at = strrchr(identity, '@');
	const char *folder = cfg->s.pop3_folder[0] != '\0' ? cfg->s.pop3_folder : "INBOX";
	struct pop3_maildrop *drop;
	struct store_folder_status status;
	struct directory *dir;
	uint32_t after = 0;
	char *name;
	enum store_status st;

	*in_use_r = false;
	if (at == NULL || at == identity || at[1] == '\0') {
		*error_r = "identity is not an address";
		return -1;
	}
	drop = xcalloc(1, sizeof(*drop));
	drop->refs = 1;
	name = xstrndup(identity, (size_t)(at - identity));
	st = store_user_open(store, at + 1, name, &drop->user, error_r);
	free(name);
	if (st != STORE_OK)
		goto fail;
	dir = directory_current();
	if (dir != NULL) {
		const struct dir_user *du = directory_find_user(dir, identity);

		if (du != NULL)
			store_user_set_quota(drop->user, du->quota_storage, du->quota_messages);
		directory_unref(&dir);
	}
	drop->lock_key = xasprintf("%s\n%s", identity, folder);
	if (!lock_acquire(drop->lock_key)) {
		free(drop->lock_key);
		drop->lock_key = NULL;
		*in_use_r = true;
		*error_r = "maildrop locked by another POP3 session";
		goto fail;
	}
	st = store_folder_open(drop->user, folder, &drop->folder, error_r);
	if (st == STORE_OK)
		st = store_folder_status(drop->folder, &status, error_r);
	if (st != STORE_OK)
		goto fail;
	drop->uidvalidity = status.uidvalidity;
	for (;;) {
		struct store_page *page;

		st = store_fetch(drop->folder, NULL, 0, 0, after, POP3_LIST_PAGE, &page, error_r);
		if (st != STORE_OK)
			goto fail;
		drop->msgs = xreallocarray(drop->msgs, (size_t)drop->count + page->count + 1,
					   sizeof(*drop->msgs));
		for (size_t i = 0; i < page->count; i++) {
			struct pop3_msg *m = &drop->msgs[drop->count++];

			m->uid = page->msgs[i].uid;
			m->size = page->msgs[i].size;
			m->deleted = false;
			drop->total_size += m->size;
		}
		after = page->last_uid;
		if (!page->more || page->count == 0) {
			store_page_free(&page);
			break;
		}
		store_page_free(&page);
	}
	*drop_r = drop;
	return 0;
fail:
	maildrop_destroy(drop);
	return -1;
}

/* ---- helpers ---- */

static void bad(struct pop3_session *s, const char *text)
{
	s->bad_commands++;
	pop3_reply(s, "-ERR %s", text);
}

/* The message a number argument names, or NULL after replying -ERR. */
static struct pop3_msg *msg_arg(struct pop3_session *s, const char *arg, uint32_t *num_r)
{
	uint32_t n;
	struct pop3_msg *m;

	if (pop3_parse_number(arg, &n) < 0) {
		bad(s, "Invalid message number");
		return NULL;
	}
	if (n > s->drop->count) {
		pop3_reply(s, "-ERR No such message");
		return NULL;
	}
	m = &s->drop->msgs[n - 1];
	if (m->deleted) {
		pop3_reply(s, "-ERR Message is deleted");
		return NULL;
	}
	*num_r = n;
	return m;
}

static void stat_counts(const struct pop3_session *s, uint32_t *count_r, uint64_t *size_r)
{
	uint32_t n = 0;
	uint64_t size = 0;

	for (uint32_t i = 0; i < s->drop->count; i++) {
		if (!s->drop->msgs[i].deleted) {
			n++;
			size += s->drop->msgs[i].size;
		}
	}
	*count_r = n;
	*size_r = size;
}

void pop3_capa(struct pop3_session *s)
{
	struct conn *c = s->conn;
	bool pre = s->state != POP3_STATE_TRANSACTION;

	pop3_reply(s, "+OK Capability list follows");
	pop3_reply(s, "TOP");
	pop3_reply(s, "UIDL");
	pop3_reply(s, "RESP-CODES");
	pop3_reply(s, "AUTH-RESP-CODE");
	pop3_reply(s, "PIPELINING");
	if (pre) {
		char *mechs = sasl_mechanisms_offered(&c->cfg->s, pop3_secure(s));

		if (sasl_mechanism_offered(&c->cfg->s, pop3_secure(s), SASL_MECH_PLAIN))
			pop3_reply(s, "USER");
		if (mechs[0] != '\0')
			pop3_reply(s, "SASL %s", mechs);
		free(mechs);
		if (c->service == SERVICE_POP3 && !c->tls_active && c->tls != NULL)
			pop3_reply(s, "STLS");
	}
	pop3_reply(s, "EXPIRE NEVER");
	pop3_reply(s, "IMPLEMENTATION Petrel");
	pop3_reply(s, ".");
}

/* ---- RETR and TOP ---- */

struct pop3_retr {
	struct net *net;
	uint64_t conn_id;
	struct pop3_maildrop *drop;
	uint32_t uid;
	uint32_t num;
	int fd;
	uint64_t size;
	off_t offset;
	bool top;
	struct pop3_stuffer st;
	struct buf out;
	bool started;             /* "+OK" sent */
	bool finished;
	bool failed;
	const char *error;
};

void pop3_retr_free(struct pop3_retr **retrp)
{
	struct pop3_retr *r = *retrp;

	if (r == NULL)
		return;
	*retrp = NULL;
	if (r->fd >= 0)
		close(r->fd);
	buf_deinit(&r->out);
	pop3_maildrop_unref(&r->drop);
	free(r);
}

/* On a worker: opens the message the first time, reads one chunk. */
static void retr_run(void *arg)
{
	struct pop3_retr *r = arg;
	char *chunk;
	ssize_t n;

	if (r->fd < 0) {
		int fd;
		uint64_t size;
		enum store_status st = store_msg_open(r->drop->folder, r->uid, &fd, &size, &r->error);

		if (st != STORE_OK) {
			r->failed = true;
			r->finished = true;
			return;
		}
		r->fd = fd;
		r->size = size;
	}
	chunk = xmalloc(POP3_RETR_CHUNK);
	do {
		n = pread(r->fd, chunk, POP3_RETR_CHUNK, r->offset);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		r->failed = true;
		r->finished = true;
		r->error = "read error";
	} else if (n == 0) {
		r->finished = true;
	} else {
		r->offset += n;
		if (pop3_stuffer_add(&r->st, chunk, (size_t)n, &r->out) < 0)
			panic("pop3 retr: output buffer too small");
		if (pop3_stuffer_done(&r->st))
			r->finished = true;
	}
	if (r->finished && !r->failed && pop3_stuffer_finish(&r->st, &r->out) < 0)
		panic("pop3 retr: output buffer too small");
	free(chunk);
}

static void retr_submit(struct pop3_session *s, struct pop3_retr *r);

static void retr_done(void *arg)
{
	struct pop3_retr *r = arg;
	struct conn *c = net_conn_find(r->net, r->conn_id);
	struct pop3_session *s;
	struct evbuffer *out;

	if (c == NULL || c->session == NULL) {
		pop3_retr_free(&r);
		return;
	}
	s = c->session;
	if (s->state == POP3_STATE_CLOSING || s->state == POP3_STATE_LINGER) {
		pop3_retr_free(&r);
		return;
	}
	out = bufferevent_get_output(c->bev);
	if (r->failed) {
		if (!r->started) {
			/* expunged by another client since login, or a disk error */
			pop3_reply(s, "-ERR [SYS/TEMP] Message %u cannot be read: %s", r->num,
				   r->error != NULL ? r->error : "?");
			pop3_retr_free(&r);
			s->busy = false;
			if (s->stopping)
				pop3_close_with(s, NULL);
			else
				pop3_process_input(s);
			return;
		}
		/* Half a multi-line response cannot be taken back. */
		log_error(POP3_LOG, "conn=%llu ip=%s reading message uid=%u failed: %s; closing",
			  (unsigned long long)c->id, c->peer_ip, r->uid, r->error);
		pop3_retr_free(&r);
		net_conn_close(&c);
		return;
	}
	if (!r->started) {
		r->started = true;
		if (r->top)
			pop3_reply(s, "+OK Top of message follows");
		else
			pop3_reply(s, "+OK %llu octets", (unsigned long long)r->size);
	}
	evbuffer_add(out, r->out.data != NULL ? r->out.data : "", r->out.len);
	buf_reset(&r->out);
	if (r->finished) {
		pop3_retr_free(&r);
		s->busy = false;
		if (s->stopping)
			pop3_close_with(s, NULL);
		else
			pop3_process_input(s);
		return;
	}
	if (evbuffer_get_length(out) >= POP3_WRITE_HIGH_WATER) {
		/* the write callback resumes it once the client has read */
		s->retr = r;
		return;
	}
	retr_submit(s, r);
}

static void retr_submit(struct pop3_session *s, struct pop3_retr *r)
{
	struct worker_pool *pool = *pop3g.workers;

	if (pool == NULL || worker_submit(pool, s->conn->base, retr_run, retr_done, r) < 0) {
		struct conn *c = s->conn;

		if (!r->started) {
			pop3_retr_free(&r);
			s->busy = false;
			pop3_reply(s, "-ERR [SYS/TEMP] Server busy, try again later");
			return;
		}
		log_error(POP3_LOG, "conn=%llu ip=%s worker queue full during RETR; closing",
			  (unsigned long long)c->id, c->peer_ip);
		pop3_retr_free(&r);
		net_conn_close(&c);
		return;
	}
	s->busy = true;
}

void pop3_retr_resume(struct pop3_session *s)
{
	struct pop3_retr *r = s->retr;

	s->retr = NULL;
	if (r != NULL)
		retr_submit(s, r);
}

static void do_retr(struct pop3_session *s, const struct pop3_command *cmd, bool top)
{
	struct pop3_msg *m;
	struct pop3_retr *r;
	uint32_t num;
	uint64_t lines = 0;

	if (cmd->argc != (top ? 2u : 1u) || cmd->too_many_args) {
		bad(s, top ? "Usage: TOP msg n" : "Usage: RETR msg");
		return;
	}
	m = msg_arg(s, cmd->argv[0], &num);
	if (m == NULL)
		return;
	if (top) {
		const char *p = cmd->argv[1];

		if (*p == '\0' || strlen(p) > 19) {
			bad(s, "Invalid line count");
			return;
		}
		for (; *p != '\0'; p++) {
			if (*p < '0' || *p > '9') {
				bad(s, "Invalid line count");
				return;
			}
			lines = lines * 10 + (uint64_t)(*p - '0');
		}
	}
	r = xcalloc(1, sizeof(*r));
	r->net = pop3g.net;
	r->conn_id = s->conn->id;
	r->drop = maildrop_ref(s->drop);
	r->uid = m->uid;
	r->num = num;
	r->fd = -1;
	r->top = top;
	pop3_stuffer_init(&r->st, top, lines);
	/* a chunk can at most double (a bare LF or "." per byte) */
	buf_init(&r->out, 2 * POP3_RETR_CHUNK + 64);
	retr_submit(s, r);
}

/* ---- QUIT ---- */

struct quit_job {
	struct net *net;
	uint64_t conn_id;
	struct pop3_maildrop *drop;
	struct store_range *ranges;
	size_t count;
	enum store_status status;
	const char *error;
	size_t expunged;
};

static void quit_run(void *arg)
{
	struct quit_job *job = arg;
	struct store_uidset set = { job->ranges, job->count };
	uint32_t *uids = NULL;
	size_t n = 0;

	job->status = store_expunge(job->drop->folder, &set, false, &uids, &n, &job->error);
	job->expunged = n;
	free(uids);
}

static void quit_done(void *arg)
{
	struct quit_job *job = arg;
	struct conn *c = net_conn_find(job->net, job->conn_id);

	if (c != NULL && c->session != NULL) {
		struct pop3_session *s = c->session;

		s->busy = false;
		/* the next session may log in as soon as it reads the answer */
		pop3_maildrop_unlock(s->drop);
		if (job->status == STORE_OK) {
			log_info(POP3_LOG, "conn=%llu ip=%s user=%s logout deleted=%zu",
				 (unsigned long long)c->id, c->peer_ip, s->identity, job->expunged);
			pop3_close_with(s, "+OK Logging out, messages deleted");
		} else {
			log_error(POP3_LOG, "conn=%llu ip=%s user=%s expunge at QUIT failed: %s",
				  (unsigned long long)c->id, c->peer_ip, s->identity,
				  job->error != NULL ? job->error : store_status_str(job->status));
			pop3_close_with(s, "-ERR [SYS/TEMP] Some deleted messages were not removed");
		}
	}
	pop3_maildrop_unref(&job->drop);
	free(job->ranges);
	free(job);
}

static void do_quit(struct pop3_session *s)
{
	struct worker_pool *pool = *pop3g.workers;
	struct quit_job *job;
	size_t n = 0;

	if (s->state != POP3_STATE_TRANSACTION) {
		pop3_close_with(s, "+OK Logging out");
		return;
	}
	for (uint32_t i = 0; i < s->drop->count; i++)
		n += s->drop->msgs[i].deleted;
	if (n == 0) {
		log_info(POP3_LOG, "conn=%llu ip=%s user=%s logout deleted=0",
			 (unsigned long long)s->conn->id, s->conn->peer_ip, s->identity);
		pop3_maildrop_unlock(s->drop);
		pop3_close_with(s, "+OK Logging out");
		return;
	}
	/* RFC 1939 section 6: the UPDATE state */
	job = xcalloc(1, sizeof(*job));
	job->net = pop3g.net;
	job->conn_id = s->conn->id;
	job->drop = maildrop_ref(s->drop);
	job->ranges = xmallocarray(n, sizeof(*job->ranges));
	for (uint32_t i = 0; i < s->drop->count; i++) {
		if (s->drop->msgs[i].deleted) {
			job->ranges[job->count].lo = s->drop->msgs[i].uid;
			job->ranges[job->count].hi = s->drop->msgs[i].uid;
			job->count++;
		}
	}
	if (pool == NULL || worker_submit(pool, s->conn->base, quit_run, quit_done, job) < 0) {
		pop3_maildrop_unref(&job->drop);
		free(job->ranges);
		free(job);
		pop3_close_with(s, "-ERR [SYS/TEMP] Server busy; nothing was deleted");
		return;
	}
	s->busy = true;
	bufferevent_disable(s->conn->bev, EV_READ);
}

/* ---- dispatch ---- */

static void do_list(struct pop3_session *s, const struct pop3_command *cmd, bool uidl)
{
	struct evbuffer *out = bufferevent_get_output(s->conn->bev);
	struct pop3_maildrop *d = s->drop;

	if (cmd->argc > 1 || cmd->too_many_args) {
		bad(s, uidl ? "Usage: UIDL [msg]" : "Usage: LIST [msg]");
		return;
	}
	if (cmd->argc == 1) {
		uint32_t num;
		struct pop3_msg *m = msg_arg(s, cmd->argv[0], &num);

		if (m == NULL)
			return;
		if (uidl)
			pop3_reply(s, "+OK %u %u.%u", num, d->uidvalidity, m->uid);
		else
			pop3_reply(s, "+OK %u %llu", num, (unsigned long long)m->size);
		return;
	}
	if (uidl) {
		pop3_reply(s, "+OK Unique-ID listing follows");
	} else {
		uint32_t n;
		uint64_t size;

		stat_counts(s, &n, &size);
		pop3_reply(s, "+OK %u messages (%llu octets)", n, (unsigned long long)size);
	}
	for (uint32_t i = 0; i < d->count; i++) {
		if (d->msgs[i].deleted)
			continue;
		if (uidl)
			evbuffer_add_printf(out, "%u %u.%u\r\n", i + 1, d->uidvalidity, d->msgs[i].uid);
		else
			evbuffer_add_printf(out, "%u %llu\r\n", i + 1,
					    (unsigned long long)d->msgs[i].size);
	}
	evbuffer_add(out, ".\r\n", 3);
}

static void do_user(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (!sasl_mechanism_offered(&s->conn->cfg->s, pop3_secure(s), SASL_MECH_PLAIN)) {
		pop3_reply(s, "-ERR [AUTH] Plaintext authentication disallowed on non-secure "
			   "connections (use STLS)");
		return;
	}
	if (cmd->argc != 1 || cmd->too_many_args || strlen(cmd->argv[0]) > POP3_MAX_USER) {
		bad(s, "Usage: USER name");
		return;
	}
	free(s->user);
	s->user = xstrdup(cmd->argv[0]);
	pop3_reply(s, "+OK");
}

static void do_pass(struct pop3_session *s, const struct pop3_command *cmd)
{
	size_t ulen, len;
	char *plain;

	if (s->user == NULL) {
		pop3_reply(s, "-ERR USER first");
		return;
	}
	if (cmd->rest_len == 0 || cmd->rest_len > SASL_MAX_PASSWORD) {
		free(s->user);
		s->user = NULL;
		bad(s, "Usage: PASS password");
		return;
	}
	/* USER/PASS is PLAIN (RFC 4616) with the authorization identity empty:
	 * one code path, one limiter, one log line for every protocol. */
	ulen = strlen(s->user);
	len = 1 + ulen + 1 + cmd->rest_len;
	plain = xmalloc(len);
	plain[0] = '\0';
	memcpy(plain + 1, s->user, ulen);
	plain[1 + ulen] = '\0';
	memcpy(plain + 2 + ulen, cmd->rest, cmd->rest_len);
	pop3_auth_start(s, "PLAIN", plain, len, true);
	explicit_bzero(plain, len);
	free(plain);
}

static void do_auth(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (cmd->argc == 0) {
		/* not in RFC 5034, but what clients probe with (Dovecot too) */
		char *mechs = sasl_mechanisms_offered(&s->conn->cfg->s, pop3_secure(s));
		char *save = NULL;

		pop3_reply(s, "+OK");
		for (char *m = strtok_r(mechs, " ", &save); m != NULL; m = strtok_r(NULL, " ", &save))
			pop3_reply(s, "%s", m);
		pop3_reply(s, ".");
		free(mechs);
		return;
	}
	if (cmd->argc > 2 || cmd->too_many_args) {
		bad(s, "Usage: AUTH mechanism [initial-response]");
		return;
	}
	pop3_auth_start(s, cmd->argv[0], cmd->argc == 2 ? cmd->argv[1] : NULL,
			cmd->argc == 2 ? strlen(cmd->argv[1]) : 0, false);
}

static void do_stls(struct pop3_session *s)
{
	struct conn *c = s->conn;

	if (c->service != SERVICE_POP3 || c->tls_active) {
		pop3_reply(s, "-ERR TLS already active");
		return;
	}
	if (c->tls == NULL) {
		pop3_reply(s, "-ERR [SYS/TEMP] TLS not available");
		return;
	}
	pop3_reply(s, "+OK Begin TLS negotiation");
	s->state = POP3_STATE_STLS;
	/* the write callback starts TLS once the reply has left */
}

void pop3_dispatch(struct pop3_session *s, char *line, size_t len)
{
	struct pop3_command cmd;

	if (pop3_command_parse(line, len, &cmd) < 0) {
		bad(s, "Invalid command");
		return;
	}
	switch (cmd.id) {
	case POP3_CMD_CAPA:
		if (cmd.argc != 0) {
			bad(s, "CAPA takes no argument");
			return;
		}
		pop3_capa(s);
		return;
	case POP3_CMD_QUIT:
		if (cmd.argc != 0) {
			bad(s, "QUIT takes no argument");
			return;
		}
		do_quit(s);
		return;
	case POP3_CMD_NOOP:
		if (cmd.argc != 0) {
			bad(s, "NOOP takes no argument");
			return;
		}
		pop3_reply(s, "+OK");
		return;
	case POP3_CMD_UTF8:
		/* RFC 6856 is not offered (no UTF8 in CAPA) */
		bad(s, "Unknown command");
		return;
	default:
		break;
	}
	if (s->state == POP3_STATE_AUTHORIZATION) {
		switch (cmd.id) {
		case POP3_CMD_USER:
			do_user(s, &cmd);
			return;
		case POP3_CMD_PASS:
			do_pass(s, &cmd);
			return;
		case POP3_CMD_AUTH:
			do_auth(s, &cmd);
			return;
		case POP3_CMD_STLS:
			do_stls(s);
			return;
		case POP3_CMD_APOP:
			pop3_reply(s, "-ERR [AUTH] APOP is not available (use USER/PASS or AUTH)");
			return;
		case POP3_CMD_UNKNOWN:
			bad(s, "Unknown command");
			return;
		default:
			pop3_reply(s, "-ERR Not logged in");
			return;
		}
	}
	switch (cmd.id) {
	case POP3_CMD_STAT: {
		uint32_t n;
		uint64_t size;

		if (cmd.argc != 0) {
			bad(s, "STAT takes no argument");
			return;
		}
		stat_counts(s, &n, &size);
		pop3_reply(s, "+OK %u %llu", n, (unsigned long long)size);
		return;
	}
	case POP3_CMD_LIST:
		do_list(s, &cmd, false);
		return;
	case POP3_CMD_UIDL:
		do_list(s, &cmd, true);
		return;
	case POP3_CMD_RETR:
		do_retr(s, &cmd, false);
		return;
	case POP3_CMD_TOP:
		do_retr(s, &cmd, true);
		return;
	case POP3_CMD_DELE: {
		uint32_t num;
		struct pop3_msg *m;

		if (cmd.argc != 1 || cmd.too_many_args) {
			bad(s, "Usage: DELE msg");
			return;
		}
		m = msg_arg(s, cmd.argv[0], &num);
		if (m == NULL)
			return;
		m->deleted = true;
		pop3_reply(s, "+OK Marked to be deleted");
		return;
	}
	case POP3_CMD_RSET:
		if (cmd.argc != 0) {
			bad(s, "RSET takes no argument");
			return;
		}
		for (uint32_t i = 0; i < s->drop->count; i++)
			s->drop->msgs[i].deleted = false;
		pop3_reply(s, "+OK");
		return;
	case POP3_CMD_UNKNOWN:
		bad(s, "Unknown command");
		return;
	default:
		pop3_reply(s, "-ERR Already logged in");
		return;
	}
}
