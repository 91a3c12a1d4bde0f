/*
 * The scheduler: the in-memory view of the spool and the delivery threads.
 *
 * Every committed message is in exactly one of three lists: ready (due
 * now, FIFO), waiting (due later; promoted when its time comes) or active
 * (a delivery thread has it).  A delivery thread takes the first ready
 * message while fewer than queue/max-deliveries are active, works on a
 * private copy of its envelope without the lock (local recipients into
 * the store, remote ones grouped by domain through the outbound client,
 * at most queue/max-deliveries-per-domain connections per domain), then
 * writes the envelope back (or removes the message when every recipient is
 * final), queues the notices that became due, and puts the message back
 * in a list.  Delivery threads are blocking on purpose, like Postfix's
 * delivery agents: one thread, one connection, the thread count is the
 * concurrency limit, and neither the event loops nor the worker pool
 * (fsync of incoming mail) ever wait on a remote server.
 *
 * Crash safety: the envelope is rewritten after each attempt; a crash
 * between a delivery and that rewrite delivers again after the restart,
 * never loses.  A local delivery is idempotent (the store remembers the
 * queue id and recipient, store_deliver_once), so it is not stored twice;
 * a remote one may arrive twice (the receiving server cannot know).
 */
#include "queue/queue_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/cfg.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/str.h"
#include "outbound/outbound.h"
#include "queue/queue_list.h"

/* Largest message read into memory for local delivery and notices. */
#define QUEUE_MAX_MESSAGE_READ (1024ull * 1024 * 1024)
/* A notice includes the whole original message up to this size. */
#define QUEUE_DSN_MAX_FULL (10u * 1024 * 1024)
/* Wait at most this long between looks at the clock (ms). */
#define QUEUE_TICK_MS 1000
/* Most delivery threads, whatever the setting says. */
#define QUEUE_MAX_THREADS 1000

enum qlist { QL_READY, QL_WAITING, QL_ACTIVE, QL_COUNT };

struct qmsg {
	struct queue_env env;
	int64_t due;              /* earliest next attempt of a pending recipient */
	enum qlist list;
	bool deleted;             /* delete asked while active */
	bool run_now;             /* queue run asked while active */
	struct qmsg *prev, *next;
};

struct domain_slot {
	char *domain;
	unsigned active;
	struct domain_slot *next;
};

struct queue {
	char *dir;
	struct store *store;
	struct outbound *ob;
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* work may be available / state changed */
	struct cfg *cfg;            /* under lock */
	struct qmsg *head[QL_COUNT], *tail[QL_COUNT];
	size_t count[QL_COUNT];
	int64_t next_promote;       /* earliest due of the waiting list */
	struct domain_slot *domains;
	pthread_t *threads;
	size_t nthreads;
	bool started, stopping;
};

static struct queue *current_queue;

struct queue *queue_current(void)
{
	return __atomic_load_n(&current_queue, __ATOMIC_ACQUIRE);
}

void queue_set_current(struct queue *queue)
{
	__atomic_store_n(&current_queue, queue, __ATOMIC_RELEASE);
}

const char *queue_dir(struct queue *queue)
{
	return queue->dir;
}

/* ---- pure scheduling math ---- */

int64_t queue_next_retry(int64_t now, unsigned attempts, int64_t retry_interval,
			 int64_t max_interval)
{
	/* Exponential back-off per recipient: the first retry after
	 * retry_interval, then twice as long after each further failure, at
	 * most max_interval (never less than retry_interval).  A destination
	 * that is down for a day is not hammered, one that was down for a
	 * minute is tried again soon. */
	int64_t wait;

	if (retry_interval < 1)
		retry_interval = 1;
	if (max_interval < retry_interval)
		max_interval = retry_interval;
	wait = retry_interval;
	for (unsigned i = 1; i < attempts && wait < max_interval; i++)
		wait = wait > max_interval / 2 ? max_interval : wait * 2;
	if (wait > max_interval)
		wait = max_interval;
	if (now > INT64_MAX - wait)
		return INT64_MAX;
	return now + wait;
}

bool queue_expired(const struct queue_env *env, int64_t now, int64_t max_time)
{
	return now - env->arrival >= max_time;
}

bool queue_delay_due(const struct queue_env *env, int64_t now, int64_t notify_interval)
{
	int64_t since = env->last_notify > 0 ? env->last_notify : env->arrival;

	if (notify_interval <= 0 || env->is_dsn || env->sender[0] == '\0')
		return false;
	return now - since >= notify_interval;
}

bool queue_rcpt_wants(const struct queue_rcpt *rcpt, unsigned kind)
{
	if (rcpt->notify == 0)
		return kind == QUEUE_NOTIFY_FAILURE || kind == QUEUE_NOTIFY_DELAY;
	return (rcpt->notify & kind) != 0;
}

/* ---- lists (under lock) ---- */

static void list_remove(struct queue *q, struct qmsg *m)
{
	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		q->head[m->list] = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	else
		q->tail[m->list] = m->prev;
	m->prev = m->next = NULL;
	q->count[m->list]--;
}

static void list_append(struct queue *q, struct qmsg *m, enum qlist l)
{
	m->list = l;
	m->next = NULL;
	m->prev = q->tail[l];
	if (q->tail[l] != NULL)
		q->tail[l]->next = m;
	else
		q->head[l] = m;
	q->tail[l] = m;
	q->count[l]++;
}

static int64_t env_due(const struct queue_env *env)
{
	int64_t due = INT64_MAX;

	for (size_t i = 0; i < env->rcpt_count; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];

		if (r->state == QUEUE_RCPT_PENDING && r->next_attempt < due)
			due = r->next_attempt;
		else if (r->state != QUEUE_RCPT_PENDING && !r->notified)
			due = 0;
	}
	return due;
}

/* Files m in ready or waiting by its due time. */
static void place(struct queue *q, struct qmsg *m, int64_t now)
{
	m->due = env_due(&m->env);
	if (m->due <= now) {
		list_append(q, m, QL_READY);
	} else {
		list_append(q, m, QL_WAITING);
		if (m->due < q->next_promote)
			q->next_promote = m->due;
	}
}

/* Moves waiting messages whose time has come to ready. */
static void promote(struct queue *q, int64_t now)
{
	struct qmsg *m, *next;

	if (now < q->next_promote)
		return;
	q->next_promote = INT64_MAX;
	for (m = q->head[QL_WAITING]; m != NULL; m = next) {
		next = m->next;
		if (m->due <= now) {
			list_remove(q, m);
			list_append(q, m, QL_READY);
		} else if (m->due < q->next_promote) {
			q->next_promote = m->due;
		}
	}
}

static void qmsg_free(struct qmsg *m)
{
	queue_env_free(&m->env);
	free(m);
}

void queue_sched_add(struct queue *q, struct queue_env *env)
{
	struct qmsg *m = xcalloc(1, sizeof(*m));

	m->env = *env;
	memset(env, 0, sizeof(*env));
	pthread_mutex_lock(&q->lock);
	place(q, m, (int64_t)time(NULL));
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* ---- per-domain slots (under lock) ---- */

static bool domain_acquire(struct queue *q, const char *domain, unsigned max)
{
	struct domain_slot *d;

	for (d = q->domains; d != NULL; d = d->next) {
		if (strcasecmp(d->domain, domain) == 0)
			break;
	}
	if (d == NULL) {
		d = xcalloc(1, sizeof(*d));
		d->domain = xstrdup(domain);
		d->next = q->domains;
		q->domains = d;
	}
	if (d->active >= max)
		return false;
	d->active++;
	return true;
}

static void domain_release(struct queue *q, const char *domain)
{
	struct domain_slot **pp, *d;

	for (pp = &q->domains; (d = *pp) != NULL; pp = &d->next) {
		if (strcasecmp(d->domain, domain) == 0) {
			if (--d->active == 0) {
				*pp = d->next;
				free(d->domain);
				free(d);
			}
			return;
		}
	}
}

/* ---- one delivery ---- */

struct job {
	struct queue *q;
	struct cfg *cfg;             /* snapshot for this job */
	struct queue_env env;        /* private copy */
	char *msg;                   /* message text, read on demand */
	size_t msg_len;
	bool msg_failed;
	int64_t now;
};

static const char *domain_of(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : "";
}

static int job_read_message(struct job *j)
{
	char *path;

	if (j->msg != NULL)
		return 0;
	if (j->msg_failed)
		return -1;
	path = queue_spool_path(j->q->dir, j->env.id, ".eml");
	if (fileio_read_all(path, QUEUE_MAX_MESSAGE_READ, &j->msg, &j->msg_len) < 0) {
		log_error("queue", "%s: cannot read %s: %s", j->env.id, path, strerror(errno));
		j->msg_failed = true;
		free(path);
		return -1;
	}
	free(path);
	return 0;
}

static void set_str(char **field, const char *value)
{
	free(*field);
	*field = value != NULL && value[0] != '\0' ? xstrdup(value) : NULL;
}

/* One mail.log line per attempt per recipient. */
static void log_attempt(const struct job *j, const struct queue_rcpt *r, const char *relay,
			const char *tls, const char *state)
{
	char *addr = str_escape(r->address, 256);
	char *diag = str_escape(r->diag != NULL ? r->diag : "", 512);

	log_mail("queue", "%s: to=<%s> relay=%s tls=%s delay=%llds attempts=%u status=%s dsn=%s "
		 "reason=\"%s\"", j->env.id, addr, relay != NULL ? relay : "none",
		 tls != NULL && tls[0] != '\0' ? tls : "none",
		 (long long)(j->now - j->env.arrival), r->attempts, state,
		 r->status != NULL ? r->status : "-", diag);
	free(addr);
	free(diag);
}

/* Applies the outcome of one attempt to recipient r. */
static void apply_outcome(struct job *j, struct queue_rcpt *r, int code, const char *status,
			  const char *diag, const char *relay, const char *logrelay,
			  const char *tls)
{
	const char *state;

	r->attempts++;
	r->last_attempt = j->now;
	set_str(&r->status, status);
	set_str(&r->diag, diag);
	set_str(&r->relay, relay);
	if (code >= 200 && code < 300) {
		r->state = QUEUE_RCPT_DELIVERED;
		r->notified = j->env.is_dsn || j->env.sender[0] == '\0' ||
			      !queue_rcpt_wants(r, QUEUE_NOTIFY_SUCCESS);
		state = "sent";
	} else if (code >= 500) {
		r->state = QUEUE_RCPT_FAILED;
		r->notified = j->env.is_dsn || j->env.sender[0] == '\0' ||
			      !queue_rcpt_wants(r, QUEUE_NOTIFY_FAILURE);
		state = "bounced";
	} else if (queue_expired(&j->env, j->now, j->cfg->s.queue_max_time)) {
		char *d = xasprintf("%s (gave up: in the queue for longer than %llds)",
				    diag != NULL ? diag : "temporary failure",
				    (long long)j->cfg->s.queue_max_time);

		set_str(&r->diag, d);
		free(d);
		r->state = QUEUE_RCPT_FAILED;
		r->notified = j->env.is_dsn || j->env.sender[0] == '\0' ||
			      !queue_rcpt_wants(r, QUEUE_NOTIFY_FAILURE);
		state = "expired";
	} else {
		r->next_attempt = queue_next_retry(j->now, r->attempts, j->cfg->s.queue_retry_interval,
						   j->cfg->s.queue_max_retry_interval);
		state = "deferred";
	}
	log_attempt(j, r, logrelay, tls, state);
}

static void add_rcpt(struct queue_env *env, const char *address, const struct queue_rcpt *from,
		     bool direct, int64_t now)
{
	struct queue_rcpt *r;
	const struct queue_rcpt *orig;
	size_t from_index = (size_t)(from - env->rcpts);

	env->rcpts = xreallocarray(env->rcpts, env->rcpt_count + 1, sizeof(*env->rcpts));
	orig = &env->rcpts[from_index];  /* the array may have moved */
	r = &env->rcpts[env->rcpt_count++];
	memset(r, 0, sizeof(*r));
	r->address = xstrdup(address);
	r->orcpt = orig->orcpt != NULL ? xstrdup(orig->orcpt)
				       : xasprintf("rfc822;%s", orig->address);
	r->notify = orig->notify;
	r->state = QUEUE_RCPT_PENDING;
	r->next_attempt = now;
	r->direct = direct;
}

/* A mailbox over its quota defers (452 4.2.2) for queue/quota-defer-time
 * after the message was queued, then bounces (552 5.2.2), as the original
 * product's "bounce after N hours": the sender learns soon, not after
 * queue/max-time. */
static void over_quota_for_too_long(const struct job *j, struct queue_local_result *res)
{
	int64_t limit = j->cfg->s.queue_quota_defer_time;

	if (res->code != 452 || strcmp(res->status, "4.2.2") != 0 ||
	    !queue_expired(&j->env, j->now, limit))
		return;
	res->code = 552;
	snprintf(res->status, sizeof(res->status), "5.2.2");
	snprintf(res->text, sizeof(res->text),
		 "552 5.2.2 mailbox full: over quota for longer than %lld hours",
		 (long long)(limit / 3600));
	if (limit < 3600)
		snprintf(res->text, sizeof(res->text),
			 "552 5.2.2 mailbox full: over quota for longer than %llds", (long long)limit);
}

static void deliver_local(struct job *j, size_t i)
{
	struct queue_local_result res;
	struct queue_rcpt *r = &j->env.rcpts[i];

	if (job_read_message(j) < 0) {
		apply_outcome(j, r, 451, "4.3.0", "451 4.3.0 cannot read the queued message", NULL,
			      "local", NULL);
		return;
	}
	queue_local_deliver(j->q->store, j->env.id, r->address, r->direct, j->env.sender, j->msg, j->msg_len,
			    &res);
	if (res.list)  /* a mailing list or a list command (queue_list.c) */
		queue_list_deliver(j->q, j->cfg, &j->env, r->address, j->msg, j->msg_len, j->now,
				   &res);
	else if (res.code == 250 && res.user != NULL)
		queue_autoreply_consider(j->q, j->cfg, &j->env, res.user, j->msg, j->msg_len, j->now);
	if (res.code == 0) {
		/* Not local any more: goes out as a remote recipient. */
		queue_local_result_free(&res);
		return;
	}
	if (res.expanded_count > 0) {
		size_t limit = QUEUE_MAX_RCPTS - j->env.rcpt_count;

		if (res.expanded_count > limit) {
			apply_outcome(j, r, 554, "5.4.6", "554 5.4.6 too many recipients after expansion",
				      NULL, "local", NULL);
		} else {
			char *addr = str_escape(r->address, 256);

			for (size_t k = 0; k < res.expanded_count; k++)
				add_rcpt(&j->env, res.expanded[k], r, res.expanded_direct[k], j->now);
			r = &j->env.rcpts[i];
			r->attempts++;
			r->last_attempt = j->now;
			r->state = QUEUE_RCPT_EXPANDED;
			r->notified = j->env.is_dsn || j->env.sender[0] == '\0' ||
				      !queue_rcpt_wants(r, QUEUE_NOTIFY_SUCCESS);
			set_str(&r->status, "2.0.0");
			set_str(&r->diag, res.text);
			log_mail("queue", "%s: to=<%s> relay=local status=expanded targets=%zu",
				 j->env.id, addr, res.expanded_count);
			free(addr);
		}
	} else {
		over_quota_for_too_long(j, &res);
		apply_outcome(j, r, res.code, res.status, res.text, NULL, "local", NULL);
	}
	queue_local_result_free(&res);
}

static void fill_outbound_settings(const struct job *j, struct outbound_settings *set)
{
	const struct settings *s = &j->cfg->s;

	set->helo = s->server_hostname;
	set->dns_server = s->queue_dns_server;
	set->smtp_port = (uint16_t)s->queue_smtp_port;
	set->connect_timeout = (int)s->queue_connect_timeout;
	set->command_timeout = (int)s->queue_command_timeout;
	set->ca_file = s->queue_tls_ca_file;
	set->reuse_time = (int)s->queue_connection_reuse_time;
	set->cfg = j->cfg;
}

/* Delivers the due remote recipients of one domain (indices idx[0..n)). */
static void deliver_remote_group(struct job *j, const char *domain, const size_t *idx, size_t n)
{
	struct outbound_settings set;
	struct outbound_msg m = {
		.queue_id = j->env.id, .sender = j->env.sender, .envid = j->env.envid,
		.ret = (int)j->env.ret, .smtputf8 = j->env.smtputf8, .body_8bit = j->env.body_8bit,
		.size = j->env.size,
	};
	size_t max_rcpts = (size_t)j->cfg->s.queue_max_recipients;
	char *path = queue_spool_path(j->q->dir, j->env.id, ".eml");
	bool got;

	m.path = path;
	fill_outbound_settings(j, &set);
	pthread_mutex_lock(&j->q->lock);
	got = domain_acquire(j->q, domain, (unsigned)j->cfg->s.queue_max_deliveries_per_domain);
	pthread_mutex_unlock(&j->q->lock);
	if (!got) {
		/* Busy destination: not an attempt, try again in a moment. */
		for (size_t k = 0; k < n; k++)
			j->env.rcpts[idx[k]].next_attempt = j->now + 1;
		free(path);
		return;
	}
	for (size_t off = 0; off < n; off += max_rcpts) {
		size_t cnt = n - off < max_rcpts ? n - off : max_rcpts;
		struct outbound_rcpt *or = xcalloc(cnt, sizeof(*or));

		for (size_t k = 0; k < cnt; k++) {
			const struct queue_rcpt *r = &j->env.rcpts[idx[off + k]];

			or[k].address = r->address;
			or[k].orcpt = r->orcpt;
			or[k].notify = r->notify;
		}
		outbound_deliver(j->q->ob, &set, domain, &m, or, cnt);
		for (size_t k = 0; k < cnt; k++) {
			struct queue_rcpt *r = &j->env.rcpts[idx[off + k]];

			apply_outcome(j, r, or[k].code, or[k].status, or[k].text,
				      or[k].remote_said ? or[k].relay : NULL, or[k].relay, or[k].tls);
			/* RFC 3461 5.2: a next hop that took NOTIFY sends the
			 * success notice itself; we send "relayed" otherwise. */
			if (r->state == QUEUE_RCPT_DELIVERED && or[k].dsn_passed)
				r->notified = true;
		}
		free(or);
	}
	pthread_mutex_lock(&j->q->lock);
	domain_release(j->q, domain);
	pthread_mutex_unlock(&j->q->lock);
	free(path);
}

static int cmp_domain_idx(const void *a, const void *b, void *arg)
{
	const struct queue_env *env = arg;
	const size_t *x = a, *y = b;

	return strcasecmp(domain_of(env->rcpts[*x].address), domain_of(env->rcpts[*y].address));
}

static void sort_by_domain(size_t *idx, size_t n, const struct queue_env *env)
{
	/* Insertion sort: recipient lists per message are short; qsort_r's
	 * signature differs between C libraries. */
	for (size_t i = 1; i < n; i++) {
		size_t v = idx[i], k = i;

		while (k > 0 && cmp_domain_idx(&idx[k - 1], &v, (void *)env) > 0) {
			idx[k] = idx[k - 1];
			k--;
		}
		idx[k] = v;
	}
}

/* Queues a notice to the sender; marks nothing (the caller does). */
static void send_notice(struct job *j, enum queue_dsn_kind kind, const bool *which)
{
	struct queue_dsn_params p = { .reporting_mta = j->cfg->s.server_hostname, .now = j->now };
	struct queue_recipient_spec rs = { .address = j->env.sender, .orcpt = NULL,
					   .notify = QUEUE_NOTIFY_NEVER };
	struct queue_envelope_spec spec = {
		.sender = "", .envid = NULL, .ret = QUEUE_RET_DEFAULT,
		.smtputf8 = j->env.smtputf8, .body_8bit = j->env.body_8bit,
		.recipients = &rs, .recipient_count = 1,
	};
	char *text, *id = NULL, *error = NULL;
	size_t len;
	static const char empty[] = "\r\n";

	if (job_read_message(j) < 0) {
		text = queue_dsn_build(&j->env, kind, which, empty, 2, QUEUE_DSN_MAX_FULL, &p, &len);
	} else {
		text = queue_dsn_build(&j->env, kind, which, j->msg, j->msg_len, QUEUE_DSN_MAX_FULL,
				       &p, &len);
	}
	if (queue_submit_text(j->q, &spec, text, len, true, &id, &error) < 0) {
		log_error("queue", "%s: cannot queue the %s notice: %s", j->env.id,
			  kind == QUEUE_DSN_FAILURE ? "failure" : kind == QUEUE_DSN_DELAY ? "delay"
											: "success",
			  error);
		free(error);
	} else {
		char *to = str_escape(j->env.sender, 256);

		log_mail("queue", "%s: sender notice: kind=%s to=<%s> notice=%s", j->env.id,
			 kind == QUEUE_DSN_FAILURE ? "failure" : kind == QUEUE_DSN_DELAY ? "delay"
										 : "success",
			 to, id);
		free(to);
		free(id);
	}
	free(text);
}

static void notify(struct job *j)
{
	size_t n = j->env.rcpt_count;
	bool *fail = xcalloc(n, sizeof(bool)), *ok = xcalloc(n, sizeof(bool));
	bool *delay = xcalloc(n, sizeof(bool));
	bool any_fail = false, any_ok = false, any_delay = false, quiet;

	quiet = j->env.is_dsn || j->env.sender[0] == '\0';
	for (size_t i = 0; i < n; i++) {
		struct queue_rcpt *r = &j->env.rcpts[i];

		if (r->state == QUEUE_RCPT_PENDING || r->notified)
			continue;
		if (!quiet && r->state == QUEUE_RCPT_FAILED)
			fail[i] = any_fail = true;
		else if (!quiet)
			ok[i] = any_ok = true;
		r->notified = true;
	}
	if (!quiet && queue_delay_due(&j->env, j->now, j->cfg->s.queue_notify_interval)) {
		for (size_t i = 0; i < n; i++) {
			const struct queue_rcpt *r = &j->env.rcpts[i];

			if (r->state == QUEUE_RCPT_PENDING && r->attempts > 0 &&
			    queue_rcpt_wants(r, QUEUE_NOTIFY_DELAY))
				delay[i] = any_delay = true;
		}
		if (any_delay)
			j->env.last_notify = j->now;
	}
	if (any_fail)
		send_notice(j, QUEUE_DSN_FAILURE, fail);
	if (any_delay)
		send_notice(j, QUEUE_DSN_DELAY, delay);
	if (any_ok)
		send_notice(j, QUEUE_DSN_SUCCESS, ok);
	free(fail);
	free(ok);
	free(delay);
}

/* Counts the Received: fields of the queued message's header (its first
 * QUEUE_HEADER_PEEK bytes); 0 when it cannot be read (delivery then
 * reports the read error itself). */
static size_t job_hops(const struct job *j)
{
	char *path = queue_spool_path(j->q->dir, j->env.id, ".eml");
	char *buf = xmalloc(QUEUE_HEADER_PEEK);
	size_t len = 0, hops = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		while (len < QUEUE_HEADER_PEEK) {
			ssize_t n = read(fd, buf + len, QUEUE_HEADER_PEEK - len);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			len += (size_t)n;
		}
		close(fd);
		hops = queue_count_received(buf, len);
	}
	free(buf);
	free(path);
	return hops;
}

/* A message that has passed more than queue/max-hops servers is in a
 * loop (two servers forwarding to each other, an alias pointing at a
 * forward back here): every recipient bounces with 5.4.6.  Checked on the
 * first run only: the header does not change in the queue.  True when
 * the message was stopped. */
static bool hop_limit_reached(struct job *j)
{
	size_t hops, limit = (size_t)j->cfg->s.queue_max_hops;
	char diag[160];

	for (size_t i = 0; i < j->env.rcpt_count; i++) {
		if (j->env.rcpts[i].attempts > 0)
			return false;
	}
	hops = job_hops(j);
	if (hops <= limit)
		return false;
	snprintf(diag, sizeof(diag), "554 5.4.6 too many hops: %zu Received: header fields, "
		 "more than %zu (mail loop?)", hops, limit);
	for (size_t i = 0; i < j->env.rcpt_count; i++) {
		if (j->env.rcpts[i].state == QUEUE_RCPT_PENDING)
			apply_outcome(j, &j->env.rcpts[i], 554, "5.4.6", diag, NULL, "none", NULL);
	}
	return true;
}

static void run_job(struct job *j)
{
	size_t nremote = 0;
	size_t *remote;

	if (hop_limit_reached(j)) {
		notify(j);
		return;
	}

	/* Local recipients first (expansion may add remote ones). */
	for (size_t i = 0; i < j->env.rcpt_count && i < QUEUE_MAX_RCPTS; i++) {
		struct queue_rcpt *r = &j->env.rcpts[i];

		if (r->state != QUEUE_RCPT_PENDING || r->next_attempt > j->now)
			continue;
		if (r->direct || queue_local_is_local(r->address))
			deliver_local(j, i);
	}
	remote = xcalloc(j->env.rcpt_count + 1, sizeof(*remote));
	for (size_t i = 0; i < j->env.rcpt_count; i++) {
		const struct queue_rcpt *r = &j->env.rcpts[i];

		if (r->state == QUEUE_RCPT_PENDING && r->next_attempt <= j->now && !r->direct &&
		    !queue_local_is_local(r->address))
			remote[nremote++] = i;
	}
	sort_by_domain(remote, nremote, &j->env);
	for (size_t s = 0; s < nremote;) {
		size_t e = s + 1;
		const char *dom = domain_of(j->env.rcpts[remote[s]].address);

		while (e < nremote && strcasecmp(domain_of(j->env.rcpts[remote[e]].address), dom) == 0)
			e++;
		{
			char *d = xstrdup(dom);

			deliver_remote_group(j, d, remote + s, e - s);
			free(d);
		}
		s = e;
	}
	free(remote);
	notify(j);
}

/* Picks, runs and files back one message; called with the lock held,
 * returns with it held. */
static void process_one(struct queue *q, struct qmsg *m)
{
	struct job j;
	char *error = NULL;
	bool done;

	memset(&j, 0, sizeof(j));
	j.q = q;
	j.cfg = cfg_ref(q->cfg);
	queue_env_copy(&j.env, &m->env);
	pthread_mutex_unlock(&q->lock);

	j.now = (int64_t)time(NULL);
	run_job(&j);
	done = queue_env_done(&j.env);
	if (done) {
		queue_spool_remove(q->dir, j.env.id);
		log_mail("queue", "%s: removed (every recipient done)", j.env.id);
	} else if (queue_spool_write_env(q->dir, &j.env, &error) < 0) {
		/* The old envelope stays: those recipients will be tried again
		 * (a duplicate, never a loss). */
		log_error("queue", "%s: cannot update the envelope: %s", j.env.id, error);
		free(error);
	}
	free(j.msg);
	cfg_unref(&j.cfg);

	pthread_mutex_lock(&q->lock);
	list_remove(q, m);
	if (done || m->deleted) {
		if (m->deleted && !done)
			queue_spool_remove(q->dir, j.env.id);
		queue_env_free(&j.env);
		qmsg_free(m);
	} else {
		int64_t now = (int64_t)time(NULL);

		queue_env_free(&m->env);
		m->env = j.env;
		if (m->run_now) {
			for (size_t i = 0; i < m->env.rcpt_count; i++)
				m->env.rcpts[i].next_attempt = now;
			m->run_now = false;
		}
		place(q, m, now);
	}
	pthread_cond_broadcast(&q->cond);
}

static void *delivery_thread(void *arg)
{
	struct queue *q = arg;

	pthread_mutex_lock(&q->lock);
	while (!q->stopping) {
		int64_t now = (int64_t)time(NULL);
		size_t max = (size_t)q->cfg->s.queue_max_deliveries;
		struct qmsg *m;

		promote(q, now);
		m = q->head[QL_READY];
		if (m != NULL && q->count[QL_ACTIVE] < max) {
			list_remove(q, m);
			list_append(q, m, QL_ACTIVE);
			process_one(q, m);
			continue;
		}
		{
			struct timespec ts;
			int reuse = (int)q->cfg->s.queue_connection_reuse_time;

			pthread_mutex_unlock(&q->lock);
			outbound_expire(q->ob, reuse);
			pthread_mutex_lock(&q->lock);
			if (q->stopping || (q->head[QL_READY] != NULL && q->count[QL_ACTIVE] < max))
				continue;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += QUEUE_TICK_MS / 1000;
			pthread_cond_timedwait(&q->cond, &q->lock, &ts);
		}
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* ---- spool scan ---- */

static int prepare_dirs(const char *dir, char **error_r)
{
	static const char *const subdirs[] = { "", "/tmp", "/corrupt" };

	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s%s", dir, subdirs[i]);

		if (mkdir(p, 0750) < 0 && errno != EEXIST) {
			*error_r = xasprintf("cannot create %s: %s", p, strerror(errno));
			free(p);
			return -1;
		}
		free(p);
	}
	return 0;
}

static void clean_tmp(const char *dir)
{
	char *tmp = xasprintf("%s/tmp", dir);
	DIR *d = opendir(tmp);
	struct dirent *de;

	if (d != NULL) {
		while ((de = readdir(d)) != NULL) {
			char *p;

			if (de->d_name[0] == '.')
				continue;
			p = xasprintf("%s/%s", tmp, de->d_name);
			unlink(p);
			free(p);
		}
		closedir(d);
	}
	free(tmp);
}

static bool valid_id(const char *s, size_t len)
{
	if (len != QUEUE_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	}
	return true;
}

static void load_one(struct queue *q, const char *name, int64_t now)
{
	char *path = xasprintf("%s/%s", q->dir, name), *eml, *data = NULL;
	struct queue_env env;
	const char *why;
	size_t len;
	struct stat st;

	if (fileio_read_all(path, QUEUE_MAX_ENV_FILE, &data, &len) < 0) {
		queue_spool_quarantine(q->dir, name, strerror(errno));
		free(path);
		return;
	}
	free(path);
	if (queue_env_parse(data, len, &env, &why) < 0) {
		queue_spool_quarantine(q->dir, name, why);
		free(data);
		return;
	}
	free(data);
	if (strncmp(env.id, name, QUEUE_ID_LEN) != 0) {
		queue_spool_quarantine(q->dir, name, "id does not match the file name");
		queue_env_free(&env);
		return;
	}
	eml = queue_spool_path(q->dir, env.id, ".eml");
	if (stat(eml, &st) < 0) {
		queue_spool_quarantine(q->dir, name, "message file missing");
		queue_env_free(&env);
		free(eml);
		return;
	}
	free(eml);
	{
		struct qmsg *m = xcalloc(1, sizeof(*m));

		m->env = env;
		place(q, m, now);
	}
}

static void scan_spool(struct queue *q)
{
	DIR *d = opendir(q->dir);
	struct dirent *de;
	int64_t now = (int64_t)time(NULL);
	size_t loaded = 0;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len == QUEUE_ID_LEN + 4 && str_has_suffix(de->d_name, ".env") &&
		    valid_id(de->d_name, QUEUE_ID_LEN)) {
			load_one(q, de->d_name, now);
			loaded++;
		} else if (strstr(de->d_name, ".tmp.") != NULL) {
			char *p = xasprintf("%s/%s", q->dir, de->d_name);

			unlink(p);
			free(p);
		}
	}
	rewinddir(d);
	/* A message file without its envelope was never committed. */
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len == QUEUE_ID_LEN + 4 && str_has_suffix(de->d_name, ".eml")) {
			char *env = xasprintf("%s/%.*s.env", q->dir, QUEUE_ID_LEN, de->d_name);
			struct stat st;

			if (stat(env, &st) < 0 && errno == ENOENT) {
				char *p = xasprintf("%s/%s", q->dir, de->d_name);

				log_warn("queue", "%.*s: removing a message file without envelope "
					 "(an uncommitted write before a crash)", QUEUE_ID_LEN,
					 de->d_name);
				unlink(p);
				free(p);
			}
			free(env);
		}
	}
	closedir(d);
	if (loaded > 0)
		log_info("queue", "spool: %zu messages picked up", q->count[QL_READY] +
			 q->count[QL_WAITING]);
}

/* ---- life ---- */

int queue_new(const struct queue_params *params, struct queue **queue_r, char **error_r)
{
	struct queue *q = xcalloc(1, sizeof(*q));

	q->dir = xasprintf("%s/queue", params->store_dir);
	q->store = params->store;
	q->cfg = cfg_ref(params->cfg);
	q->next_promote = INT64_MAX;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	if (prepare_dirs(q->dir, error_r) < 0 || outbound_new(&q->ob, error_r) < 0) {
		queue_free(&q);
		return -1;
	}
	clean_tmp(q->dir);
	pthread_mutex_lock(&q->lock);
	scan_spool(q);
	pthread_mutex_unlock(&q->lock);
	*queue_r = q;
	return 0;
}

static void spawn_threads(struct queue *q, size_t want)
{
	if (want > QUEUE_MAX_THREADS)
		want = QUEUE_MAX_THREADS;
	if (want <= q->nthreads)
		return;
	q->threads = xreallocarray(q->threads, want, sizeof(*q->threads));
	for (size_t i = q->nthreads; i < want; i++) {
		if (pthread_create(&q->threads[i], NULL, delivery_thread, q) != 0)
			panic("queue: cannot start a delivery thread");
	}
	q->nthreads = want;
}

void queue_start(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->started = true;
	spawn_threads(q, (size_t)q->cfg->s.queue_max_deliveries);
	pthread_mutex_unlock(&q->lock);
}

void queue_reconfigure(struct queue *q, struct cfg *cfg)
{
	struct cfg *old;

	pthread_mutex_lock(&q->lock);
	old = q->cfg;
	q->cfg = cfg_ref(cfg);
	if (q->started)
		spawn_threads(q, (size_t)cfg->s.queue_max_deliveries);
	/* A shorter retry interval applies to waiting messages at once. */
	q->next_promote = 0;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	cfg_unref(&old);
}

void queue_free(struct queue **qp)
{
	struct queue *q = *qp;

	if (q == NULL)
		return;
	*qp = NULL;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	if (q->ob != NULL)
		outbound_shutdown(q->ob);
	for (size_t i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	free(q->threads);
	for (int l = 0; l < QL_COUNT; l++) {
		struct qmsg *m, *next;

		for (m = q->head[l]; m != NULL; m = next) {
			next = m->next;
			qmsg_free(m);
		}
	}
	while (q->domains != NULL) {
		struct domain_slot *d = q->domains;

		q->domains = d->next;
		free(d->domain);
		free(d);
	}
	outbound_free(&q->ob);
	cfg_unref(&q->cfg);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q->dir);
	free(q);
}

/* ---- management ---- */

size_t queue_count(struct queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->count[QL_READY] + q->count[QL_WAITING] + q->count[QL_ACTIVE];
	pthread_mutex_unlock(&q->lock);
	return n;
}

static json_t *jstr(const char *s)
{
	return s != NULL ? json_stringn(s, strlen(s)) : json_null();
}

static json_t *msg_json(const struct qmsg *m)
{
	const struct queue_env *e = &m->env;
	json_t *o = json_object(), *rcpts = json_array();
	int64_t next = INT64_MAX;
	bool deferred = false;

	for (size_t i = 0; i < e->rcpt_count; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];
		json_t *jr = json_object();

		json_object_set_new(jr, "address", jstr(r->address));
		json_object_set_new(jr, "orcpt", jstr(r->orcpt));
		json_object_set_new(jr, "notify", json_integer(r->notify));
		json_object_set_new(jr, "state", json_string(r->state == QUEUE_RCPT_PENDING &&
								     r->attempts > 0
								     ? "deferred"
								     : queue_rcpt_state_str(r->state)));
		json_object_set_new(jr, "attempts", json_integer(r->attempts));
		json_object_set_new(jr, "status", jstr(r->status));
		json_object_set_new(jr, "diagnostic", jstr(r->diag));
		json_object_set_new(jr, "next_attempt",
				    r->state == QUEUE_RCPT_PENDING ? json_integer(r->next_attempt)
								   : json_null());
		json_array_append_new(rcpts, jr);
		if (r->state == QUEUE_RCPT_PENDING) {
			if (r->next_attempt < next)
				next = r->next_attempt;
			if (r->attempts > 0)
				deferred = true;
		}
	}
	json_object_set_new(o, "id", json_string(e->id));
	json_object_set_new(o, "sender", jstr(e->sender));
	json_object_set_new(o, "recipients", rcpts);
	json_object_set_new(o, "size", json_integer((json_int_t)e->size));
	json_object_set_new(o, "status", json_string(m->list == QL_ACTIVE ? "active"
						     : deferred ? "deferred" : "queued"));
	json_object_set_new(o, "created", json_integer(e->arrival));
	json_object_set_new(o, "next_attempt", next == INT64_MAX ? json_null() : json_integer(next));
	json_object_set_new(o, "message_id", jstr(e->message_id));
	json_object_set_new(o, "envid", jstr(e->envid));
	json_object_set_new(o, "ret", json_string(e->ret == QUEUE_RET_FULL ? "full"
						  : e->ret == QUEUE_RET_HDRS ? "hdrs" : "default"));
	json_object_set_new(o, "notice", json_boolean(e->is_dsn));
	return o;
}

json_t *queue_list_json(struct queue *q)
{
	json_t *a = json_array();

	pthread_mutex_lock(&q->lock);
	for (int l = 0; l < QL_COUNT; l++) {
		for (const struct qmsg *m = q->head[l]; m != NULL; m = m->next) {
			if (!m->deleted)
				json_array_append_new(a, msg_json(m));
		}
	}
	pthread_mutex_unlock(&q->lock);
	return a;
}

static struct qmsg *find_locked(struct queue *q, const char *id)
{
	for (int l = 0; l < QL_COUNT; l++) {
		for (struct qmsg *m = q->head[l]; m != NULL; m = m->next) {
			if (strcmp(m->env.id, id) == 0 && !m->deleted)
				return m;
		}
	}
	return NULL;
}

static void delete_locked(struct queue *q, struct qmsg *m)
{
	if (m->list == QL_ACTIVE) {
		m->deleted = true;  /* the delivery thread removes it */
		return;
	}
	list_remove(q, m);
	queue_spool_remove(q->dir, m->env.id);
	log_mail("queue", "%s: deleted by the administrator", m->env.id);
	qmsg_free(m);
}

int queue_delete(struct queue *q, const char *id)
{
	struct qmsg *m;

	pthread_mutex_lock(&q->lock);
	m = find_locked(q, id);
	if (m != NULL)
		delete_locked(q, m);
	pthread_mutex_unlock(&q->lock);
	return m != NULL ? 0 : -1;
}

size_t queue_delete_all(struct queue *q)
{
	size_t n = 0;

	pthread_mutex_lock(&q->lock);
	for (int l = 0; l < QL_COUNT; l++) {
		struct qmsg *m, *next;

		for (m = q->head[l]; m != NULL; m = next) {
			next = m->next;
			if (!m->deleted) {
				delete_locked(q, m);
				n++;
			}
		}
	}
	pthread_mutex_unlock(&q->lock);
	return n;
}

static void make_due(struct queue *q, struct qmsg *m, int64_t now)
{
	if (m->list == QL_ACTIVE) {
		m->run_now = true;
		return;
	}
	for (size_t i = 0; i < m->env.rcpt_count; i++) {
		if (m->env.rcpts[i].state == QUEUE_RCPT_PENDING)
			m->env.rcpts[i].next_attempt = now;
	}
	list_remove(q, m);
	place(q, m, now);
}

size_t queue_run(struct queue *q, const char *id)
{
	int64_t now = (int64_t)time(NULL);
	size_t n = 0;

	pthread_mutex_lock(&q->lock);
	if (id != NULL) {
		struct qmsg *m = find_locked(q, id);

		if (m != NULL) {
			make_due(q, m, now);
			n = 1;
		}
	} else {
		struct qmsg *m, *next;

		for (m = q->head[QL_WAITING]; m != NULL; m = next) {
			next = m->next;
			make_due(q, m, now);
			n++;
		}
		n += q->count[QL_READY] + q->count[QL_ACTIVE];
	}
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return n;
}

bool queue_wait_idle(struct queue *q, int timeout_ms)
{
	struct timespec until;
	bool idle;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&q->lock);
	for (;;) {
		promote(q, (int64_t)time(NULL));
		idle = q->head[QL_READY] == NULL && q->count[QL_ACTIVE] == 0;
		if (idle || pthread_cond_timedwait(&q->cond, &q->lock, &until) == ETIMEDOUT)
			break;
	}
	idle = q->head[QL_READY] == NULL && q->count[QL_ACTIVE] == 0;
	pthread_mutex_unlock(&q->lock);
	return idle;
}
