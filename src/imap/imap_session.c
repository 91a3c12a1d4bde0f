/*
 * The IMAP session: connection callbacks, the input loop (commands through
 * the pure parser, literal continuations, raw lines for AUTHENTICATE and
 * IDLE), the command table, tagged answers, jobs on the worker pool,
 * STARTTLS, COMPRESS=DEFLATE, and the untagged updates that come from the
 * store's notifications.  See imap.h for the process model and
 * imap_private.h for who owns what.
 */
#include "imap/imap.h"
#include "imap/imap_private.h"
#include "imap/imap_acl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <zlib.h>

#include "core/log.h"
#include "core/str.h"

struct imap_globals imapg;

struct store *imap_store(void)
{
	return imapg.store != NULL ? __atomic_load_n(imapg.store, __ATOMIC_ACQUIRE) : NULL;
}

struct worker_pool *imap_workers(void)
{
	return imapg.workers != NULL ? *imapg.workers : NULL;
}

static void install_callbacks(struct imap_session *s);
static void close_now(struct imap_session *s);

/* ---- shared objects ---- */

static void user_destroy(void *arg)
{
	struct imap_user *u = arg;

	store_user_unref(&u->user);
	free(u->identity);
	free(u);
}

struct imap_user *imap_user_ref(struct imap_user *u)
{
	__atomic_add_fetch(&u->refs, 1, __ATOMIC_RELAXED);
	return u;
}

/* Runs fn(arg) on a worker: releasing store handles may touch the disk
 * and must not block a loop.  Inline when there is no pool (shutdown). */
static void run_on_worker(evloop_fn *fn, void *arg)
{
	struct worker_pool *pool = imap_workers();

	if (pool == NULL || worker_submit(pool, NULL, fn, NULL, arg) < 0)
		fn(arg);
}

void imap_user_unref(struct imap_user **up)
{
	struct imap_user *u = *up;

	if (u == NULL)
		return;
	*up = NULL;
	if (__atomic_sub_fetch(&u->refs, 1, __ATOMIC_ACQ_REL) == 0)
		run_on_worker(user_destroy, u);
}

struct imap_watch_ctx {
	struct net *net;
	uint64_t conn_id;
	struct event_base *base;
	uint64_t gen;
};

static void mbox_destroy(void *arg)
{
	struct imap_mbox *m = arg;

	store_unwatch(&m->watch);
	free(m->wctx);
	store_folder_close(&m->folder);
	imap_user_unref(&m->user);
	free(m);
}

struct imap_mbox *imap_mbox_ref(struct imap_mbox *m)
{
	__atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
	return m;
}

void imap_mbox_unref(struct imap_mbox **mp)
{
	struct imap_mbox *m = *mp;

	if (m == NULL)
		return;
	*mp = NULL;
	if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0)
		run_on_worker(mbox_destroy, m);
}

struct imap_seqmap *imap_seqmap_new(void)
{
	struct imap_seqmap *m = xcalloc(1, sizeof(*m));

	m->refs = 1;
	return m;
}

struct imap_seqmap *imap_seqmap_ref(struct imap_seqmap *m)
{
	__atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
	return m;
}

void imap_seqmap_unref(struct imap_seqmap **mp)
{
	struct imap_seqmap *m = *mp;

	if (m == NULL)
		return;
	*mp = NULL;
	if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		free(m->uids);
		free(m->modseqs);
		free(m);
	}
}

void imap_seqmap_append(struct imap_seqmap *m, uint32_t uid, uint64_t modseq)
{
	if (m->count == m->cap) {
		m->cap = m->cap == 0 ? 64 : m->cap * 2;
		m->uids = xreallocarray(m->uids, m->cap, sizeof(*m->uids));
		m->modseqs = xreallocarray(m->modseqs, m->cap, sizeof(*m->modseqs));
	}
	m->uids[m->count] = uid;
	m->modseqs[m->count] = modseq;
	m->count++;
}

struct imap_seqmap *imap_seqmap_writable(struct imap_session *s)
{
	struct imap_seqmap *m = s->sel->map, *copy;

	if (__atomic_load_n(&m->refs, __ATOMIC_ACQUIRE) == 1)
		return m;
	copy = imap_seqmap_new();
	copy->cap = m->count > 0 ? m->count : 1;
	copy->count = m->count;
	copy->uids = xmallocarray(copy->cap, sizeof(*copy->uids));
	copy->modseqs = xmallocarray(copy->cap, sizeof(*copy->modseqs));
	if (m->count > 0) {
		memcpy(copy->uids, m->uids, m->count * sizeof(*m->uids));
		memcpy(copy->modseqs, m->modseqs, m->count * sizeof(*m->modseqs));
	}
	imap_seqmap_unref(&s->sel->map);
	s->sel->map = copy;
	return copy;
}

uint32_t imap_seqmap_find(const struct imap_seqmap *m, uint32_t uid)
{
	uint32_t lo = 0, hi = m->count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (m->uids[mid] < uid)
			lo = mid + 1;
		else if (m->uids[mid] > uid)
			hi = mid;
		else
			return mid + 1;
	}
	return 0;
}

void imap_uidvec_add(struct imap_uidvec *v, uint32_t uid)
{
	if (v->n == v->cap) {
		v->cap = v->cap == 0 ? 16 : v->cap * 2;
		v->v = xreallocarray(v->v, v->cap, sizeof(*v->v));
	}
	v->v[v->n++] = uid;
}

void imap_uidvec_free(struct imap_uidvec *v)
{
	free(v->v);
	memset(v, 0, sizeof(*v));
}

/* ---- jobs ---- */

struct imap_job *imap_job_new(struct imap_session *s, imap_job_fn *run, imap_job_done_fn *done)
{
	struct imap_job *job = xcalloc(1, sizeof(*job));

	job->net = imapg.net;
	job->conn_id = s->conn->id;
	job->base = s->conn->base;
	job->run = run;
	job->done = done;
	job->tag = s->tag != NULL ? xstrdup(s->tag) : NULL;
	if (s->user != NULL)
		job->user = imap_user_ref(s->user);
	if (s->sel != NULL) {
		job->mbox = imap_mbox_ref(s->sel->mbox);
		job->map = imap_seqmap_ref(s->sel->map);
	}
	job->out = evbuffer_new();
	if (job->out == NULL)
		panic("imap_job_new: evbuffer_new");
	job->rev2 = s->rev2;
	job->utf8 = s->utf8;
	job->condstore = s->condstore;
	job->qresync = s->qresync;
	return job;
}

void imap_job_free(struct imap_job *job)
{
	if (job == NULL)
		return;
	if (job->cleanup != NULL)
		job->cleanup(job);
	free(job->tag);
	free(job->error);
	imap_user_unref(&job->user);
	imap_mbox_unref(&job->mbox);
	imap_seqmap_unref(&job->map);
	if (job->out != NULL)
		evbuffer_free(job->out);
	free(job);
}

void imap_job_fail(struct imap_job *job, enum store_status st, const char *error)
{
	job->status = st;
	free(job->error);
	job->error = xstrdup(error != NULL ? error : store_status_str(st));
}

static void job_run(void *arg)
{
	struct imap_job *job = arg;

	job->run(job);
}

static void job_done(void *arg)
{
	struct imap_job *job = arg;
	struct conn *c = net_conn_find(job->net, job->conn_id);
	struct imap_session *s;

	if (c == NULL || c->session == NULL) {
		imap_job_free(job);
		return;
	}
	s = c->session;
	if (s->mode == IMAP_MODE_CLOSING || s->mode == IMAP_MODE_LINGER) {
		/* closing already (timeout, shutdown): the answer is moot */
		imap_job_free(job);
		return;
	}
	if (s->mode == IMAP_MODE_BUSY)
		s->mode = IMAP_MODE_COMMAND;
	job->keep = false;
	job->done(s, job);
	if (!job->keep)
		imap_job_free(job);
	if (s->mode == IMAP_MODE_COMMAND) {
		if (s->stopping && s->tag == NULL) {
			imap_close_with(s, "Server shutting down");
			return;
		}
		imap_process_input(s);
	}
}

void imap_job_submit(struct imap_session *s, struct imap_job *job)
{
	struct worker_pool *pool = imap_workers();

	if (pool == NULL || worker_submit(pool, s->conn->base, job_run, job_done, job) < 0) {
		imap_job_free(job);
		if (s->tag != NULL)
			imap_no(s, "[UNAVAILABLE] Server busy, try again later");
		return;
	}
	s->mode = IMAP_MODE_BUSY;
}

int imap_job_resubmit(struct imap_session *s, struct imap_job *job)
{
	struct worker_pool *pool = imap_workers();

	if (pool == NULL || worker_submit(pool, s->conn->base, job_run, job_done, job) < 0)
		return -1;
	job->keep = true;  /* from done(): the job lives on */
	s->mode = IMAP_MODE_BUSY;
	return 0;
}

/* ---- output ---- */

void imap_printf(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(s->conn->bev), fmt, ap);
	va_end(ap);
}

void imap_write(struct imap_session *s, const void *data, size_t len)
{
	evbuffer_add(bufferevent_get_output(s->conn->bev), data, len);
}

static void write_tagged(struct imap_session *s, const char *line)
{
	imap_printf(s, "%s\r\n", line);
}

static void held_tagged_send(struct imap_session *s)
{
	char *line = s->pending_tagged;

	s->pending_tagged = NULL;
	if (line != NULL) {
		write_tagged(s, line);
		free(line);
	}
}

/* EXPUNGE may not be sent while answering FETCH, STORE and SEARCH by
 * sequence number (RFC 9051 7.5.1; SORT and THREAD alike, RFC 5256):
 * the client's numbers would shift under it. */
static bool expunge_allowed(const struct imap_session *s)
{
	static const char *const forbidden[] = { "FETCH", "STORE", "SEARCH", "SORT", "THREAD" };

	if (s->cmd_uid)
		return true;
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
		if (strcmp(s->cmd_name, forbidden[i]) == 0)
			return false;
	}
	return true;
}

static void tagged(struct imap_session *s, const char *status, const char *fmt, va_list ap)
	PETREL_PRINTF(3, 0);

static void tagged(struct imap_session *s, const char *status, const char *fmt, va_list ap)
{
	char *text, *line;

	if (vasprintf(&text, fmt, ap) < 0)
		panic("imap: vasprintf");
	line = xasprintf("%s %s %s", s->tag != NULL ? s->tag : "*", status, text);
	free(text);
	free(s->tag);
	s->tag = NULL;
	if (strcmp(status, "OK") == 0 && s->sel != NULL && imap_sync_pending(s)) {
		free(s->pending_tagged);
		s->pending_tagged = line;
		imap_sync(s, expunge_allowed(s), held_tagged_send);
		return;
	}
	write_tagged(s, line);
	free(line);
}

void imap_ok(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tagged(s, "OK", fmt, ap);
	va_end(ap);
}

void imap_no(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tagged(s, "NO", fmt, ap);
	va_end(ap);
}

void imap_bad(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	s->bad_commands++;
	va_start(ap, fmt);
	tagged(s, "BAD", fmt, ap);
	va_end(ap);
}

const char *imap_store_code(enum store_status st)
{
	switch (st) {
	case STORE_E_TEMP: return "[UNAVAILABLE]";
	case STORE_E_NOSPACE: return "[LIMIT]";
	case STORE_E_OVERQUOTA: return "[OVERQUOTA]";
	case STORE_E_TOOBIG: return "[TOOBIG]";
	case STORE_E_NOTFOUND: return "[NONEXISTENT]";
	case STORE_E_EXISTS: return "[ALREADYEXISTS]";
	case STORE_E_INVALID: return "[CANNOT]";
	case STORE_E_NOPERM: return "[CANNOT]";
	case STORE_E_LIMIT: return "[LIMIT]";
	default: return "[SERVERBUG]";
	}
}

void imap_no_store(struct imap_session *s, enum store_status st, const char *error,
		   const char *what)
{
	char *text = str_escape(error != NULL ? error : store_status_str(st), 200);

	if (st == STORE_E_TEMP)
		log_warn(IMAP_LOG, "conn=%llu user=%s %s failed: %s", (unsigned long long)s->conn->id,
			 s->identity != NULL ? s->identity : "-", what, text);
	/* The store's reasons are static text for the user's eyes; our own
	 * escaping keeps CR/LF out of the line. */
	/* a rights check (imap_acl.c) is NOPERM, not the store's CANNOT */
	imap_no(s, "%s %s: %s",
		st == STORE_E_NOPERM && error != NULL && strcmp(error, imap_acl_denied) == 0 ?
		"[NOPERM]" : imap_store_code(st), what, text);
	free(text);
}

static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;
	char *line = s->pending_tagged;

	(void)fd;
	(void)what;
	s->pending_tagged = NULL;
	if (line != NULL) {
		write_tagged(s, line);
		free(line);
	}
	s->mode = IMAP_MODE_COMMAND;
	if (s->stopping) {
		imap_close_with(s, "Server shutting down");
		return;
	}
	imap_process_input(s);
}

void imap_tagged_delayed(struct imap_session *s, const char *line, int64_t delay_ms)
{
	struct timeval tv = { (time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000) };

	free(s->tag);
	s->tag = NULL;
	if (delay_ms <= 0) {
		write_tagged(s, line);
		return;
	}
	free(s->pending_tagged);
	s->pending_tagged = xstrdup(line);
	s->mode = IMAP_MODE_BUSY;
	if (s->timer != NULL)
		event_free(s->timer);
	s->timer = evtimer_new(s->conn->base, delay_cb, s);
	evtimer_add(s->timer, &tv);
}

bool imap_secure(const struct imap_session *s)
{
	return s->conn->tls_active || s->conn->peer_is_loopback;
}

/* ---- closing ---- */

static void close_now(struct imap_session *s)
{
	struct conn *c = s->conn;

	net_conn_close(&c);
}

/* The last reply has left our buffer: net.c sees it out and closes. */
static void finish(struct imap_session *s)
{
	if (s->timer != NULL) {
		event_free(s->timer);
		s->timer = NULL;
	}
	s->mode = IMAP_MODE_LINGER;
	net_conn_finish(s->conn, s->stopping ? 0 : IMAP_LINGER_SECONDS);
}

void imap_close_with(struct imap_session *s, const char *bye)
{
	struct bufferevent *bev = s->conn->bev;

	if (s->mode == IMAP_MODE_CLOSING || s->mode == IMAP_MODE_LINGER)
		return;
	if (bye != NULL)
		imap_printf(s, "* BYE %s\r\n", bye);
	s->mode = IMAP_MODE_CLOSING;
	bufferevent_disable(bev, EV_READ);
	/* a write timeout disabled writing: the BYE must still go */
	bufferevent_enable(bev, EV_WRITE);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_trigger(bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* ---- limits ---- */

void imap_apply_limits(struct imap_session *s)
{
	const struct settings *set = &s->conn->cfg->s;
	struct imap_parser_limits lim;

	memset(&lim, 0, sizeof(lim));
	lim.max_depth = (unsigned)set->imap_max_depth;
	lim.literal_minus = !set->imap_literal_plus;
	lim.utf8 = s->utf8;
	if (s->state == IMAP_STATE_NOT_AUTH) {
		/* HOSTILE-INPUT rows 1, 18, 19: before login, little to hold. */
		/* AUTHENTICATE with SASL-IR carries the whole initial
		 * response (auth/max-response, in base64) on the line */
		size_t sasl_line = ((size_t)set->auth_max_response + 2) / 3 * 4 + 1024;

		lim.max_line = sasl_line > IMAP_PREAUTH_MAX_LINE ? sasl_line : IMAP_PREAUTH_MAX_LINE;
		lim.max_literal = IMAP_PREAUTH_MAX_LITERAL;
		lim.max_append = 0;
	} else {
		lim.max_line = (size_t)set->imap_max_line;
		lim.max_literal = (size_t)set->imap_max_literal;
		lim.max_append = (size_t)set->imap_append_limit;
	}
	if (imap_parser_idle(&s->parser) || s->parser.state == IMAP_PS_DONE ||
	    s->parser.state == IMAP_PS_LINE_START)
		imap_parser_set_limits(&s->parser, &lim);
}

/* ---- the command table ---- */

#define S_NA (1u << IMAP_STATE_NOT_AUTH)
#define S_AU (1u << IMAP_STATE_AUTH)
#define S_SE (1u << IMAP_STATE_SELECTED)
#define S_ANY (S_NA | S_AU | S_SE)
#define S_LOG (S_AU | S_SE)

struct imap_command {
	const char *name;
	imap_cmd_fn *fn;
	unsigned states;
	bool uid;                 /* also "UID name" */
	bool literal_ok;          /* may take a synchronizing literal */
};

static const struct imap_command commands[] = {
	{ "CAPABILITY", imap_cmd_capability, S_ANY, false, false },
	{ "NOOP", imap_cmd_noop, S_ANY, false, false },
	{ "LOGOUT", imap_cmd_logout, S_ANY, false, false },
	{ "ID", imap_cmd_id, S_ANY, false, true },
	{ "STARTTLS", imap_cmd_starttls, S_NA, false, false },
	{ "LOGIN", imap_cmd_login, S_NA, false, true },
	{ "AUTHENTICATE", imap_cmd_authenticate, S_NA, false, false },
	{ "ENABLE", imap_cmd_enable, S_LOG, false, false },
	{ "NAMESPACE", imap_cmd_namespace, S_LOG, false, false },
	{ "COMPRESS", imap_cmd_compress, S_LOG, false, false },
	{ "IDLE", imap_cmd_idle, S_LOG, false, false },
	{ "LIST", imap_cmd_list, S_LOG, false, true },
	{ "LSUB", imap_cmd_lsub, S_LOG, false, true },
	{ "STATUS", imap_cmd_status, S_LOG, false, true },
	{ "CREATE", imap_cmd_create, S_LOG, false, true },
	{ "DELETE", imap_cmd_delete, S_LOG, false, true },
	{ "RENAME", imap_cmd_rename, S_LOG, false, true },
	{ "SUBSCRIBE", imap_cmd_subscribe, S_LOG, false, true },
	{ "UNSUBSCRIBE", imap_cmd_unsubscribe, S_LOG, false, true },
	{ "SELECT", imap_cmd_select, S_LOG, false, true },
	{ "EXAMINE", imap_cmd_examine, S_LOG, false, true },
	{ "APPEND", imap_cmd_append, S_LOG, false, true },
	{ "GETQUOTA", imap_cmd_getquota, S_LOG, false, true },
	{ "GETQUOTAROOT", imap_cmd_getquotaroot, S_LOG, false, true },
	{ "SETQUOTA", imap_cmd_setquota, S_LOG, false, true },
	{ "SETACL", imap_cmd_setacl, S_LOG, false, true },
	{ "DELETEACL", imap_cmd_deleteacl, S_LOG, false, true },
	{ "GETACL", imap_cmd_getacl, S_LOG, false, true },
	{ "LISTRIGHTS", imap_cmd_listrights, S_LOG, false, true },
	{ "MYRIGHTS", imap_cmd_myrights, S_LOG, false, true },
	{ "CHECK", imap_cmd_check, S_SE, false, false },
	{ "CLOSE", imap_cmd_close, S_SE, false, false },
	{ "UNSELECT", imap_cmd_unselect, S_SE, false, false },
	{ "EXPUNGE", imap_cmd_expunge, S_SE, true, false },
	{ "FETCH", imap_cmd_fetch, S_SE, true, false },
	{ "STORE", imap_cmd_store, S_SE, true, true },
	{ "COPY", imap_cmd_copy, S_SE, true, true },
	{ "MOVE", imap_cmd_move, S_SE, true, true },
	{ "SEARCH", imap_cmd_search, S_SE, true, true },
	{ "SORT", imap_cmd_sort, S_SE, true, true },
	{ "THREAD", imap_cmd_thread, S_SE, true, true },
};

static const struct imap_command *find_command(const char *name, bool uid)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcasecmp(commands[i].name, name) == 0 && (!uid || commands[i].uid))
			return &commands[i];
	}
	return NULL;
}

/* The command of the parser's current command line (UID resolved), or
 * NULL.  *uid_r tells a UID command. */
static const struct imap_command *current_command(struct imap_session *s, struct imap_args *args,
						  bool *uid_r)
{
	const char *name = s->parser.name;

	*uid_r = false;
	if (strcmp(name, "UID") == 0) {
		const struct imap_arg *a = imap_args_next(args);

		if (a == NULL || a->type != IMAP_ARG_ATOM)
			return NULL;
		*uid_r = true;
		return find_command(imap_arg_text(&s->parser, a), true);
	}
	return find_command(name, false);
}

static void run_command(struct imap_session *s)
{
	const struct imap_command *cmd;
	struct imap_args args;
	bool uid;

	free(s->tag);
	s->tag = xstrdup(imap_parser_tag(&s->parser));
	imap_args_top(&s->parser, &args);
	cmd = current_command(s, &args, &uid);
	s->cmd_uid = uid;
	snprintf(s->cmd_name, sizeof(s->cmd_name), "%s", cmd != NULL ? cmd->name : s->parser.name);
	if (cmd == NULL) {
		imap_bad(s, "Unknown command");
		return;
	}
	if ((cmd->states & (1u << s->state)) == 0) {
		if (s->state == IMAP_STATE_NOT_AUTH)
			imap_bad(s, "Log in first");
		else if (cmd->states == S_SE)
			imap_bad(s, "No mailbox selected");
		else
			imap_bad(s, "Command not valid in this state");
		return;
	}
	cmd->fn(s, &args);
}

/* A synchronizing literal was announced: may it come? */
static bool literal_allowed(struct imap_session *s)
{
	struct imap_args args;
	const struct imap_command *cmd;
	bool uid;

	imap_args_top(&s->parser, &args);
	cmd = current_command(s, &args, &uid);
	return cmd != NULL && cmd->literal_ok && (cmd->states & (1u << s->state)) != 0;
}

/* ---- raw lines (AUTHENTICATE responses, DONE) ---- */

/* Reads one line into s->line (without the line end).  Returns 1 when a
 * line is ready, 0 when more input is needed, -1 when it is too long. */
static int read_raw_line(struct imap_session *s, struct evbuffer *in)
{
	struct evbuffer_ptr eol;
	size_t eol_len = 0, n;

	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (eol.pos < 0) {
		/* the line stays in the input buffer (bounded by the read
		 * watermark) until its end comes */
		n = evbuffer_get_length(in);
		return n > IMAP_MAX_RAW_LINE ? -1 : 0;
	}
	n = (size_t)eol.pos;
	if (n > IMAP_MAX_RAW_LINE)
		return -1;
	buf_reset(&s->line);
	if (n > 0) {
		char *tmp = xmalloc(n);

		evbuffer_remove(in, tmp, n);
		if (buf_append(&s->line, tmp, n) < 0)
			panic("imap: raw line cap");
		free(tmp);
	}
	evbuffer_drain(in, eol_len);
	if (s->line.len > 0 && s->line.data[s->line.len - 1] == '\r')
		buf_truncate(&s->line, s->line.len - 1);
	return 1;
}

/* ---- input ---- */

static void parse_error(struct imap_session *s)
{
	const char *tag = imap_parser_tag(&s->parser);
	const struct imap_parser *p = &s->parser;
	struct conn *c = s->conn;

	s->bad_commands++;
	if (p->error == IMAP_PERR_LITERAL_TOO_BIG && strcmp(p->name, "APPEND") == 0 &&
	    s->state != IMAP_STATE_NOT_AUTH)
		imap_printf(s, "%s NO %s\r\n", tag != NULL ? tag : "*", p->error_text);
	else
		imap_printf(s, "%s BAD %s\r\n", tag != NULL ? tag : "*", p->error_text);
	if (p->fatal) {
		log_info(IMAP_LOG, "conn=%llu ip=%s closing: %s", (unsigned long long)c->id,
			 c->peer_ip, p->error_text);
		imap_close_with(s, p->error == IMAP_PERR_LINE_TOO_LONG ? "Command line too long" :
				"Literal too big");
	}
}

void imap_process_input(struct imap_session *s)
{
	struct conn *c = s->conn;
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (s->mode == IMAP_MODE_COMMAND || s->mode == IMAP_MODE_SASL ||
	       s->mode == IMAP_MODE_IDLE) {
		struct evbuffer_iovec vec;
		enum imap_parse_result res;
		size_t used;

		if (s->bad_commands >= (unsigned)c->cfg->s.imap_max_bad_commands) {
			imap_close_with(s, "Too many invalid commands");
			return;
		}
		if (s->mode == IMAP_MODE_SASL || s->mode == IMAP_MODE_IDLE) {
			int r = read_raw_line(s, in);

			if (r == 0)
				break;
			if (r < 0) {
				imap_close_with(s, "Line too long");
				return;
			}
			if (s->mode == IMAP_MODE_SASL) {
				imap_sasl_line(s, s->line.data != NULL ? s->line.data : "", s->line.len);
			} else if (s->line.len == 4 && strncasecmp(s->line.data, "DONE", 4) == 0) {
				imap_idle_done(s);
			} else {
				/* RFC 2177: anything but DONE ends IDLE with BAD */
				free(s->tag);
				s->tag = s->idle_tag;
				s->idle_tag = NULL;
				if (s->timer != NULL)
					event_del(s->timer);
				s->mode = IMAP_MODE_COMMAND;
				imap_bad(s, "Expected DONE");
			}
			continue;
		}
		if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1 || vec.iov_len == 0)
			break;
		/* a new command on a shared folder whose ACL (or the user's
		 * groups) changed: its rights first (imap_acl.c) */
		if (imap_parser_idle(&s->parser) && imap_acl_rights_stale(s)) {
			imap_acl_rights_refresh(s);
			break;
		}
		res = imap_parser_feed(&s->parser, vec.iov_base, vec.iov_len, &used);
		evbuffer_drain(in, used);
		switch (res) {
		case IMAP_PARSE_MORE:
			break;
		case IMAP_PARSE_COMMAND:
			run_command(s);
			imap_parser_reset(&s->parser);
			if (s->mode != IMAP_MODE_CLOSING)
				imap_apply_limits(s);
			break;
		case IMAP_PARSE_CONTINUE:
			if (literal_allowed(s)) {
				imap_printf(s, "+ Ready for literal data\r\n");
				imap_parser_literal_go(&s->parser);
			} else {
				const char *tag = imap_parser_tag(&s->parser);

				s->bad_commands++;
				imap_printf(s, "%s BAD %s\r\n", tag != NULL ? tag : "*",
					    s->state == IMAP_STATE_NOT_AUTH ? "Log in first" :
					    "Command not valid here");
				imap_parser_literal_refuse(&s->parser);
			}
			break;
		case IMAP_PARSE_ERROR:
			parse_error(s);
			break;
		}
	}
}

/* ---- STARTTLS and COMPRESS, once their OK has left ---- */

static void do_starttls(struct imap_session *s)
{
	struct conn *c = s->conn;
	const char *error;
	struct timeval tv = { (time_t)c->cfg->s.limits_preauth_timeout, 0 };

	if (net_conn_starttls(c, &error) < 0) {
		/* HOSTILE-INPUT row 3 (CVE-2011-0411, Dovecot CVE-2021-33515):
		 * a command written with STARTTLS in one packet is never read
		 * as if it came over TLS; the connection ends here. */
		log_security(IMAP_LOG, "conn=%llu ip=%s STARTTLS refused: %s; closing",
			     (unsigned long long)c->id, c->peer_ip, error);
		close_now(s);
		return;
	}
	/* RFC 9051 6.2.1: forget everything learnt before (capabilities). */
	imap_parser_deinit(&s->parser);
	memset(&s->parser, 0, sizeof(s->parser));
	imap_sasl_free(&s->sasl);
	s->mode = IMAP_MODE_COMMAND;
	{
		struct imap_parser_limits lim = { .max_line = IMAP_PREAUTH_MAX_LINE,
						  .max_literal = IMAP_PREAUTH_MAX_LITERAL,
						  .max_depth = 8 };

		imap_parser_init(&s->parser, &lim);
	}
	imap_apply_limits(s);
	install_callbacks(s);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	log_debug(IMAP_LOG, "conn=%llu ip=%s STARTTLS handshake started", (unsigned long long)c->id,
		  c->peer_ip);
}

struct imap_zlib {
	z_stream in, out;
};

static void zlib_free(void *ctx)
{
	struct imap_zlib *z = ctx;

	inflateEnd(&z->in);
	deflateEnd(&z->out);
	free(z);
}

/* Inflates client data, never past the room the read watermark leaves
 * (limit), so a small compressed input cannot blow up in memory. */
static enum bufferevent_filter_result zlib_in(struct evbuffer *src, struct evbuffer *dst,
					      ev_ssize_t limit, enum bufferevent_flush_mode mode,
					      void *ctx)
{
	struct imap_zlib *z = ctx;
	size_t produced = 0;
	size_t room = limit > 0 ? (size_t)limit : 64 * 1024;

	(void)mode;
	while (evbuffer_get_length(src) > 0 && produced < room) {
		struct evbuffer_iovec in_vec, out_vec;
		int ret;
		size_t consumed, made;

		if (evbuffer_peek(src, -1, NULL, &in_vec, 1) < 1)
			break;
		if (evbuffer_reserve_space(dst, 16 * 1024, &out_vec, 1) < 1)
			return BEV_ERROR;
		if (out_vec.iov_len > room - produced)
			out_vec.iov_len = room - produced;
		z->in.next_in = in_vec.iov_base;
		z->in.avail_in = (uInt)in_vec.iov_len;
		z->in.next_out = out_vec.iov_base;
		z->in.avail_out = (uInt)out_vec.iov_len;
		ret = inflate(&z->in, Z_SYNC_FLUSH);
		if (ret != Z_OK && ret != Z_BUF_ERROR && ret != Z_STREAM_END)
			return BEV_ERROR;
		consumed = in_vec.iov_len - z->in.avail_in;
		made = out_vec.iov_len - z->in.avail_out;
		out_vec.iov_len = made;
		evbuffer_commit_space(dst, &out_vec, 1);
		evbuffer_drain(src, consumed);
		produced += made;
		if (consumed == 0 && made == 0)
			break;
		if (ret == Z_STREAM_END)
			return BEV_ERROR;  /* the client may not end the stream */
	}
	return BEV_OK;
}

static enum bufferevent_filter_result zlib_out(struct evbuffer *src, struct evbuffer *dst,
					       ev_ssize_t limit, enum bufferevent_flush_mode mode,
					       void *ctx)
{
	struct imap_zlib *z = ctx;

	(void)limit;
	(void)mode;
	while (evbuffer_get_length(src) > 0) {
		struct evbuffer_iovec in_vec;

		if (evbuffer_peek(src, -1, NULL, &in_vec, 1) < 1)
			break;
		z->out.next_in = in_vec.iov_base;
		z->out.avail_in = (uInt)in_vec.iov_len;
		do {
			struct evbuffer_iovec out_vec;

			if (evbuffer_reserve_space(dst, 16 * 1024, &out_vec, 1) < 1)
				return BEV_ERROR;
			z->out.next_out = out_vec.iov_base;
			z->out.avail_out = (uInt)out_vec.iov_len;
			/* a sync flush per write: every answer reaches the
			 * client at once (RFC 4978 section 4) */
			if (deflate(&z->out, evbuffer_get_length(src) == in_vec.iov_len ? Z_SYNC_FLUSH :
				    Z_NO_FLUSH) == Z_STREAM_ERROR)
				return BEV_ERROR;
			out_vec.iov_len -= z->out.avail_out;
			evbuffer_commit_space(dst, &out_vec, 1);
		} while (z->out.avail_out == 0);
		evbuffer_drain(src, in_vec.iov_len);
	}
	return BEV_OK;
}

void imap_compress_start(struct imap_session *s)
{
	struct conn *c = s->conn;
	struct imap_zlib *z = xcalloc(1, sizeof(*z));
	struct bufferevent *fbev;
	struct timeval tv = { (time_t)c->cfg->s.imap_idle_timeout, 0 };

	/* The OK just written stays in the plain bufferevent below the
	 * filter, and leaves uncompressed; everything after is compressed.
	 * Bytes already buffered were sent before the client could see the
	 * OK: a client that does not wait (RFC 4978 section 3). */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) != 0) {
		free(z);
		log_info(IMAP_LOG, "conn=%llu ip=%s data after COMPRESS before it took effect; "
			 "closing", (unsigned long long)c->id, c->peer_ip);
		close_now(s);
		return;
	}
	/* RFC 4978 section 4: raw deflate (RFC 1951), no zlib header */
	if (inflateInit2(&z->in, -15) != Z_OK) {
		free(z);
		close_now(s);
		return;
	}
	if (deflateInit2(&z->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		inflateEnd(&z->in);
		free(z);
		close_now(s);
		return;
	}
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	fbev = bufferevent_filter_new(c->bev, zlib_in, zlib_out,
				      BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, zlib_free, z);
	if (fbev == NULL)
		panic("imap: bufferevent_filter_new");
	c->bev = fbev;
	s->compressed = true;
	s->mode = IMAP_MODE_COMMAND;
	install_callbacks(s);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

/* ---- bufferevent callbacks ---- */

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct imap_session *s = arg;

	if (s->mode == IMAP_MODE_CLOSING) {
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
		return;
	}
	if (s->mode == IMAP_MODE_STARTTLS)
		return;  /* left in the buffer: looked at when the switch happens */
	imap_process_input(s);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct imap_session *s = arg;
	size_t pending = evbuffer_get_length(bufferevent_get_output(bev));

	switch (s->mode) {
	case IMAP_MODE_CLOSING:
		if (pending > 0)
			return;
		finish(s);
		return;
	case IMAP_MODE_STARTTLS:
		if (pending == 0)
			do_starttls(s);
		return;
	default:
		if (s->paused != NULL) {
			imap_resume_paused(s);
			return;
		}
		if (s->mode == IMAP_MODE_COMMAND)
			imap_process_input(s);
		return;
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct imap_session *s = arg;
	struct conn *c = s->conn;

	if ((what & BEV_EVENT_CONNECTED) != 0)
		return;
	if ((what & BEV_EVENT_TIMEOUT) != 0 && s->mode != IMAP_MODE_CLOSING) {
		if (s->mode == IMAP_MODE_BUSY && (what & BEV_EVENT_READING) != 0) {
			/* a job is running: its answer comes; keep waiting */
			bufferevent_enable(bev, EV_READ);
			return;
		}
		log_info(IMAP_LOG, "conn=%llu ip=%s %s timeout; closing", (unsigned long long)c->id,
			 c->peer_ip, (what & BEV_EVENT_WRITING) != 0 ? "write" :
			 c->authenticated ? "idle" : "pre-authentication");
		if ((what & BEV_EVENT_WRITING) != 0) {
			/* the client does not read: nothing more can reach it */
			close_now(s);
			return;
		}
		imap_close_with(s, "Autologout; idle for too long");
		return;
	}
	if ((what & BEV_EVENT_ERROR) != 0) {
		char text[256];
		const char *layer = net_bev_error(bev, text, sizeof(text));

		log_debug(IMAP_LOG, "conn=%llu ip=%s closed on %s error: %s", (unsigned long long)c->id,
			  c->peer_ip, layer, text);
	} else if ((what & BEV_EVENT_EOF) != 0) {
		log_debug(IMAP_LOG, "conn=%llu ip=%s closed by the client", (unsigned long long)c->id,
			  c->peer_ip);
	}
	close_now(s);
}

static void install_callbacks(struct imap_session *s)
{
	struct bufferevent *bev = s->conn->bev;

	bufferevent_setcb(bev, read_cb, write_cb, event_cb, s);
	bufferevent_setwatermark(bev, EV_READ, 0, IMAP_READ_HIGH_WATER);
	bufferevent_setwatermark(bev, EV_WRITE, IMAP_WRITE_LOW_WATER, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

void imap_switch_after_ok(struct imap_session *s, enum imap_mode mode)
{
	s->mode = mode;
	if (evbuffer_get_length(bufferevent_get_output(s->conn->bev)) == 0)
		bufferevent_trigger(s->conn->bev, EV_WRITE,
				    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* ---- untagged updates from the store ---- */

struct imap_note {
	struct net *net;
	uint64_t conn_id;
	uint64_t gen;
	enum store_event_type type;
	uint64_t modseq;
	uint32_t uidvalidity, uidnext;
	uint32_t *uids;
	size_t count;
};

static void idle_sync(struct imap_session *s);

/* On the session's loop. */
static void note_apply(void *arg)
{
	struct imap_note *n = arg;
	struct conn *c = net_conn_find(n->net, n->conn_id);
	struct imap_session *s = c != NULL ? c->session : NULL;
	struct imap_selected *sel = NULL;

	/* the selection, or the one being made (its job registered the
	 * watch before reading the message list) */
	if (s != NULL && s->sel != NULL && s->sel->gen == n->gen)
		sel = s->sel;
	else if (s != NULL && s->next_sel != NULL && s->next_sel->gen == n->gen)
		sel = s->next_sel;
	if (sel == NULL)
		goto out;
	switch (n->type) {
	case STORE_EV_NEW:
		for (size_t i = 0; i < n->count; i++)
			imap_uidvec_add(&sel->p_new, n->uids[i]);
		break;
	case STORE_EV_EXPUNGE:
		for (size_t i = 0; i < n->count; i++)
			imap_uidvec_add(&sel->p_expunged, n->uids[i]);
		break;
	case STORE_EV_FLAGS:
		for (size_t i = 0; i < n->count; i++)
			imap_uidvec_add(&sel->p_flags, n->uids[i]);
		break;
	case STORE_EV_RESET:
		sel->p_reset = true;
		break;
	case STORE_EV_DELETED:
		sel->p_deleted = true;
		break;
	case STORE_EV_RENAMED:
		break;
	}
	if (n->modseq > sel->p_modseq)
		sel->p_modseq = n->modseq;
	if (sel == s->sel && s->mode == IMAP_MODE_IDLE && !s->syncing)
		idle_sync(s);
out:
	free(n->uids);
	free(n);
}

/* Any thread, no store lock held: copy and post. */
static void watch_cb(const struct store_event *ev, void *context)
{
	struct imap_watch_ctx *w = context;
	struct imap_note *n = xcalloc(1, sizeof(*n));

	n->net = w->net;
	n->conn_id = w->conn_id;
	n->gen = w->gen;
	n->type = ev->type;
	n->modseq = ev->modseq;
	n->uidvalidity = ev->uidvalidity;
	n->uidnext = ev->uidnext;
	if (ev->count > 0) {
		n->uids = xmallocarray(ev->count, sizeof(*n->uids));
		memcpy(n->uids, ev->uids, ev->count * sizeof(*n->uids));
		n->count = ev->count;
	}
	if (evloop_run_on(w->base, note_apply, n) < 0) {
		free(n->uids);
		free(n);
	}
}

void imap_watch_start(struct imap_mbox *mbox, struct net *net, uint64_t conn_id,
		      struct event_base *base, uint64_t gen)
{
	struct imap_watch_ctx *w = xcalloc(1, sizeof(*w));

	w->net = net;
	w->conn_id = conn_id;
	w->base = base;
	w->gen = gen;
	mbox->wctx = w;
	mbox->watch = store_watch(mbox->folder, watch_cb, w);
}

bool imap_sync_pending(const struct imap_session *s)
{
	const struct imap_selected *sel = s->sel;

	return sel != NULL && (sel->p_new.n > 0 || sel->p_expunged.n > 0 || sel->p_flags.n > 0 ||
			       sel->p_reset || sel->p_deleted);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void append_uidset(struct buf *out, const uint32_t *uids, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (buf_printf(out, "%s%u", i > 0 ? "," : "", uids[i]) < 0 ||
		    (j > i && buf_printf(out, ":%u", uids[j]) < 0))
			panic("imap: uid set");
		i = j + 1;
	}
}

void imap_send_vanished(struct imap_session *s, struct imap_uidvec *v, bool earlier)
{
	struct buf out;

	if (v->n == 0)
		return;
	qsort(v->v, v->n, sizeof(*v->v), cmp_u32);
	buf_init(&out, SIZE_MAX / 4);
	if (buf_printf(&out, "* VANISHED %s", earlier ? "(EARLIER) " : "") < 0)
		panic("imap: vanished");
	append_uidset(&out, v->v, v->n);
	if (buf_append_str(&out, "\r\n") < 0)
		panic("imap: vanished");
	imap_write(s, out.data, out.len);
	buf_deinit(&out);
}

bool imap_expunge_uid(struct imap_session *s, uint32_t uid, struct imap_uidvec *vanished)
{
	struct imap_seqmap *m = s->sel->map;
	uint32_t seq = imap_seqmap_find(m, uid);

	if (seq == 0)
		return false;
	m = imap_seqmap_writable(s);
	memmove(m->uids + seq - 1, m->uids + seq, (m->count - seq) * sizeof(*m->uids));
	memmove(m->modseqs + seq - 1, m->modseqs + seq, (m->count - seq) * sizeof(*m->modseqs));
	m->count--;
	if (vanished != NULL)
		imap_uidvec_add(vanished, uid);
	else
		imap_printf(s, "* %u EXPUNGE\r\n", seq);
	return true;
}

/* The flag changes: a job reads the current flags of the changed
 * messages; its completion writes FETCH FLAGS for those whose MODSEQ the
 * client has not seen. */
struct sync_data {
	struct store_range *ranges;
	size_t count;
	struct store_msg *msgs;
	size_t nmsgs;
	char **keywords;
	imap_then_fn *then;
	bool idle;
};

static void sync_cleanup(struct imap_job *job)
{
	struct sync_data *d = job->data;

	free(d->ranges);
	free(d->msgs);
	store_keywords_free(&d->keywords, STORE_MAX_KEYWORDS);
	free(d);
}

static void sync_run(struct imap_job *job)
{
	struct sync_data *d = job->data;
	struct store_uidset set = { d->ranges, d->count };
	uint32_t after = 0;
	size_t kwcount;
	const char *error;
	enum store_status st;

	st = store_folder_keywords(job->mbox->folder, &d->keywords, &kwcount, &error);
	if (st != STORE_OK) {
		imap_job_fail(job, st, error);
		return;
	}
	for (;;) {
		struct store_page *page;

		st = store_fetch(job->mbox->folder, &set, 0, 0, after, IMAP_FETCH_PAGE, &page, &error);
		if (st != STORE_OK) {
			imap_job_fail(job, st, error);
			return;
		}
		d->msgs = xreallocarray(d->msgs, d->nmsgs + page->count + 1, sizeof(*d->msgs));
		for (size_t i = 0; i < page->count; i++) {
			struct store_msg *m = &d->msgs[d->nmsgs++];

			memset(m, 0, sizeof(*m));
			m->uid = page->msgs[i].uid;
			m->flags = page->msgs[i].flags;
			m->keywords = page->msgs[i].keywords;
			m->modseq = page->msgs[i].modseq;
		}
		after = page->last_uid;
		if (!page->more || page->count == 0) {
			store_page_free(&page);
			break;
		}
		store_page_free(&page);
	}
}

static void sync_done(struct imap_session *s, struct imap_job *job)
{
	struct sync_data *d = job->data;
	imap_then_fn *then = d->then;
	bool idle = d->idle;

	s->syncing = false;
	imap_seqmap_unref(&job->map);
	if (s->sel != NULL && job->status == STORE_OK) {
		struct imap_seqmap *m = s->sel->map;
		struct buf line;

		buf_init(&line, SIZE_MAX / 4);
		for (size_t i = 0; i < d->nmsgs; i++) {
			uint32_t seq = imap_seqmap_find(m, d->msgs[i].uid);

			if (seq == 0 || d->msgs[i].modseq <= m->modseqs[seq - 1])
				continue;
			m->modseqs[seq - 1] = d->msgs[i].modseq;
			buf_reset(&line);
			if (buf_printf(&line, "* %u FETCH (", seq) < 0)
				panic("imap: sync");
			imap_append_flags(&line, d->msgs[i].flags, d->msgs[i].keywords, d->keywords,
					  d->msgs[i].uid >= s->sel->recent_first &&
					  d->msgs[i].uid <= s->sel->recent_last && !s->rev2);
			if ((s->cmd_uid || s->qresync || idle) &&
			    buf_printf(&line, " UID %u", d->msgs[i].uid) < 0)
				panic("imap: sync");
			if (s->condstore && buf_printf(&line, " MODSEQ (%llu)",
						       (unsigned long long)d->msgs[i].modseq) < 0)
				panic("imap: sync");
			if (buf_append_str(&line, ")\r\n") < 0)
				panic("imap: sync");
			imap_write(s, line.data, line.len);
		}
		buf_deinit(&line);
	}
	if (idle) {
		if (s->mode == IMAP_MODE_COMMAND && s->idle_tag != NULL)
			s->mode = IMAP_MODE_IDLE;
		if (s->sel != NULL && imap_sync_pending(s))
			idle_sync(s);
		/* a DONE that came meanwhile waits in the input */
		if (s->mode == IMAP_MODE_IDLE)
			imap_process_input(s);
		return;
	}
	if (then != NULL)
		then(s);
}

void imap_sync(struct imap_session *s, bool allow_expunge, imap_then_fn *then)
{
	struct imap_selected *sel = s->sel;
	struct imap_uidvec vanished = { NULL, 0, 0 };
	uint32_t before;
	struct sync_data *d;
	struct imap_job *job;
	bool idle = s->mode == IMAP_MODE_IDLE;

	if (sel == NULL) {
		if (then != NULL)
			then(s);
		return;
	}
	if (sel->p_deleted || sel->p_reset) {
		/* RFC 9051 7.1: the folder is gone or its UIDs changed; the
		 * client must start over. */
		imap_printf(s, "* BYE %s\r\n", sel->p_deleted ? "The selected mailbox was deleted" :
			    "The selected mailbox changed its UIDVALIDITY; reselect");
		free(s->pending_tagged);
		s->pending_tagged = NULL;
		imap_close_with(s, NULL);
		return;
	}
	if (allow_expunge && sel->p_expunged.n > 0) {
		qsort(sel->p_expunged.v, sel->p_expunged.n, sizeof(uint32_t), cmp_u32);
		/* highest first, so the numbers sent stay right as each goes */
		for (size_t i = sel->p_expunged.n; i > 0; i--)
			imap_expunge_uid(s, sel->p_expunged.v[i - 1], s->qresync ? &vanished : NULL);
		imap_uidvec_free(&sel->p_expunged);
		if (s->qresync)
			imap_send_vanished(s, &vanished, false);
		imap_uidvec_free(&vanished);
	}
	before = sel->map->count;
	if (sel->p_new.n > 0) {
		qsort(sel->p_new.v, sel->p_new.n, sizeof(uint32_t), cmp_u32);
		for (size_t i = 0; i < sel->p_new.n; i++) {
			uint32_t last = sel->map->count > 0 ? sel->map->uids[sel->map->count - 1] : 0;

			if (sel->p_new.v[i] > last)
				imap_seqmap_append(imap_seqmap_writable(s), sel->p_new.v[i], 0);
			if (sel->p_new.v[i] >= sel->uidnext)
				sel->uidnext = sel->p_new.v[i] + 1;
		}
		imap_uidvec_free(&sel->p_new);
		if (sel->map->count != before)
			imap_printf(s, "* %u EXISTS\r\n", sel->map->count);
	}
	if (sel->p_modseq > sel->highestmodseq)
		sel->highestmodseq = sel->p_modseq;
	if (sel->p_flags.n == 0) {
		if (then != NULL)
			then(s);
		return;
	}
	/* flag changes need the flags: a job */
	qsort(sel->p_flags.v, sel->p_flags.n, sizeof(uint32_t), cmp_u32);
	d = xcalloc(1, sizeof(*d));
	d->ranges = xmallocarray(sel->p_flags.n, sizeof(*d->ranges));
	for (size_t i = 0; i < sel->p_flags.n; i++) {
		if (i > 0 && sel->p_flags.v[i] == sel->p_flags.v[i - 1])
			continue;
		if (imap_seqmap_find(sel->map, sel->p_flags.v[i]) == 0)
			continue;
		d->ranges[d->count].lo = d->ranges[d->count].hi = sel->p_flags.v[i];
		d->count++;
	}
	imap_uidvec_free(&sel->p_flags);
	if (d->count == 0) {
		free(d->ranges);
		free(d);
		if (then != NULL)
			then(s);
		return;
	}
	d->then = then;
	d->idle = idle;
	job = imap_job_new(s, sync_run, sync_done);
	job->cleanup = sync_cleanup;
	job->data = d;
	s->syncing = true;
	imap_job_submit(s, job);
	if (s->mode != IMAP_MODE_BUSY) {
		/* not queued: the answer goes out without the flags */
		s->syncing = false;
		if (idle)
			s->mode = IMAP_MODE_IDLE;
		else if (then != NULL)
			then(s);
	}
}

static void idle_sync(struct imap_session *s)
{
	/* nothing of a shared folder before its rights are known again:
	 * the refresh tells what is pending when it is done (imap_acl.c) */
	if (imap_acl_rights_stale(s)) {
		imap_acl_rights_refresh(s);
		return;
	}
	imap_sync(s, true, NULL);
}

void imap_selected_free(struct imap_selected **selp)
{
	struct imap_selected *sel = *selp;

	if (sel == NULL)
		return;
	*selp = NULL;
	imap_mbox_unref(&sel->mbox);
	imap_seqmap_unref(&sel->map);
	free(sel->name);
	store_keywords_free(&sel->keywords, STORE_MAX_KEYWORDS);
	imap_uidvec_free(&sel->p_new);
	imap_uidvec_free(&sel->p_expunged);
	imap_uidvec_free(&sel->p_flags);
	imap_seqset_free(&sel->searchres);
	free(sel);
}

void imap_unselect(struct imap_session *s)
{
	imap_selected_free(&s->sel);
	if (s->state == IMAP_STATE_SELECTED)
		s->state = IMAP_STATE_AUTH;
}

/* ---- the service handler ---- */

static void imap_start(struct conn *conn)
{
	struct imap_session *s = xcalloc(1, sizeof(*s));
	struct imap_parser_limits lim = { .max_line = IMAP_PREAUTH_MAX_LINE,
					  .max_literal = IMAP_PREAUTH_MAX_LITERAL, .max_depth = 8 };
	struct buf caps;

	s->conn = conn;
	conn->session = s;
	s->state = IMAP_STATE_NOT_AUTH;
	s->mode = IMAP_MODE_COMMAND;
	buf_init(&s->line, IMAP_MAX_RAW_LINE + 2);
	imap_parser_init(&s->parser, &lim);
	imap_apply_limits(s);
	install_callbacks(s);
	buf_init(&caps, 4096);
	imap_capabilities(s, &caps);
	/* RFC 9051 7.1.1: the capabilities in the greeting save a round trip */
	imap_printf(s, "* OK [CAPABILITY %s] Petrel IMAP server ready\r\n", caps.data);
	buf_deinit(&caps);
}

/* Engine stop: an idle or waiting session says BYE now; one with a
 * command in flight finishes it first. */
static void imap_shutdown(struct conn *conn)
{
	struct imap_session *s = conn->session;

	if (s == NULL) {
		net_conn_close(&conn);
		return;
	}
	s->stopping = true;
	switch (s->mode) {
	case IMAP_MODE_CLOSING:
		return;
	case IMAP_MODE_LINGER:
		return;  /* net.c finishes it */
	case IMAP_MODE_BUSY:
		if (s->paused == NULL && s->tag != NULL)
			return;  /* the job's completion closes */
		/* fall through */
	default:
		if (s->mode == IMAP_MODE_STARTTLS) {
			net_conn_close(&conn);
			return;
		}
		imap_close_with(s, "Server shutting down");
	}
}

static void imap_free_session(struct conn *conn)
{
	struct imap_session *s = conn->session;

	conn->session = NULL;
	if (s == NULL)
		return;
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->paused != NULL)
		imap_job_free(s->paused);
	imap_unselect(s);
	imap_selected_free(&s->next_sel);
	if (s->counted_user && s->identity != NULL)
		imap_user_count_release(s->identity);
	imap_user_unref(&s->user);
	imap_sasl_free(&s->sasl);
	free(s->pending_tagged);
	free(s->tag);
	free(s->idle_tag);
	free(s->identity);
	buf_deinit(&s->line);
	imap_parser_deinit(&s->parser);
	free(s);
}

static const struct service_handler imap_handler = {
	.service = SERVICE_IMAP,
	.start = imap_start,
	.shutdown = imap_shutdown,
	.free_session = imap_free_session,
	.refuse_line = "* BYE Too many connections, try again later\r\n",
};

static const struct service_handler imaps_handler = {
	.service = SERVICE_IMAPS,
	.start = imap_start,
	.shutdown = imap_shutdown,
	.free_session = imap_free_session,
	.refuse_line = NULL,      /* implicit TLS: nothing can be written before the handshake */
};

void imap_register(const struct imap_deps *deps)
{
	if (deps->net == NULL || deps->workers == NULL || deps->store == NULL)
		panic("imap_register: missing dependency");
	imapg.net = deps->net;
	imapg.workers = deps->workers;
	imapg.store = deps->store;
	net_register(deps->net, &imap_handler);
	net_register(deps->net, &imaps_handler);
}
