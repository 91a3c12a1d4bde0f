/*
 * Brute-force protection; see auth_limiter.h for the policy.
 *
 * One hash table of entries keyed "i:<ip or /64>" and "a:<account>",
 * chained, grown by doubling; and one LRU list ordered by last failure
 * (head newest).  Entries whose window has passed and that are not locked
 * are dropped from the tail on every call, so the table holds only live
 * counts; past max_entries the tail is dropped whatever its state.
 * All under one mutex: each call is a couple of hash lookups.
 */
#include "auth/auth_limiter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth_private.h"
#include "core/log.h"

#define LIMITER_LOG "auth"
/* Login names in log lines are cut at this many bytes. */
#define LIMITER_LOG_MAX 256
#define LIMITER_MIN_BUCKETS 256

struct entry {
	struct entry *hnext;         /* hash chain */
	struct entry *prev, *next;   /* LRU list; head = newest failure */
	uint32_t hash;
	unsigned failures;
	int64_t last_failure;        /* ms */
	int64_t locked_until;        /* ms; 0 = not locked */
	char key[];
};

struct auth_limiter {
	pthread_mutex_t lock;
	struct auth_limiter_settings set;
	auth_clock_fn *clock;
	struct entry **buckets;
	size_t bucket_count;         /* power of two */
	size_t count;
	struct entry *head, *tail;
};

static int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void auth_limiter_settings_from(const struct settings *s, struct auth_limiter_settings *set_r)
{
	memset(set_r, 0, sizeof(*set_r));
	set_r->delay_after = (unsigned)s->auth_delay_after;
	set_r->failure_delay_ms = s->auth_failure_delay * 1000;
	set_r->max_delay_ms = s->auth_max_failure_delay * 1000;
	set_r->ip_lockout_failures = (unsigned)s->auth_ip_lockout_failures;
	set_r->ip_lockout_ms = s->auth_ip_lockout_time * 1000;
	set_r->account_lockout_failures = (unsigned)s->auth_account_lockout_failures;
	set_r->account_lockout_ms = s->auth_account_lockout_time * 1000;
	set_r->window_ms = s->auth_failure_window * 1000;
	set_r->max_entries = (size_t)s->auth_tracked_entries;
}

struct auth_limiter *auth_limiter_new(const struct auth_limiter_settings *set,
				      auth_clock_fn *clock)
{
	struct auth_limiter *l = xcalloc(1, sizeof(*l));

	if (pthread_mutex_init(&l->lock, NULL) != 0)
		panic("auth_limiter_new: pthread_mutex_init failed");
	l->set = *set;
	if (l->set.max_entries == 0)
		l->set.max_entries = 1;
	l->clock = clock != NULL ? clock : monotonic_ms;
	l->bucket_count = LIMITER_MIN_BUCKETS;
	l->buckets = xcalloc(l->bucket_count, sizeof(*l->buckets));
	return l;
}

void auth_limiter_free(struct auth_limiter **lp)
{
	struct auth_limiter *l = *lp;

	if (l == NULL)
		return;
	for (struct entry *e = l->head, *next; e != NULL; e = next) {
		next = e->next;
		free(e);
	}
	free(l->buckets);
	pthread_mutex_destroy(&l->lock);
	free(l);
	*lp = NULL;
}

void auth_limiter_configure(struct auth_limiter *l, const struct auth_limiter_settings *set)
{
	pthread_mutex_lock(&l->lock);
	l->set = *set;
	if (l->set.max_entries == 0)
		l->set.max_entries = 1;
	pthread_mutex_unlock(&l->lock);
}

/* ---- table ---- */

static uint32_t hash_key(const char *key)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h;
}

static void lru_unlink(struct auth_limiter *l, struct entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_head(struct auth_limiter *l, struct entry *e)
{
	e->prev = NULL;
	e->next = l->head;
	if (l->head != NULL)
		l->head->prev = e;
	l->head = e;
	if (l->tail == NULL)
		l->tail = e;
}

static void remove_entry(struct auth_limiter *l, struct entry *e)
{
	struct entry **pp = &l->buckets[e->hash & (l->bucket_count - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(l, e);
	l->count--;
	free(e);
}

/* An entry that no longer holds anything: its window has passed and it is
 * not locked. */
static bool expired(const struct auth_limiter *l, const struct entry *e, int64_t now)
{
	return e->locked_until <= now && now - e->last_failure >= l->set.window_ms;
}

static void sweep(struct auth_limiter *l, int64_t now)
{
	while (l->tail != NULL && expired(l, l->tail, now))
		remove_entry(l, l->tail);
}

/* The live entry for key, or NULL.  A lock that has run out ends with a
 * clean count (the client starts over, delays included). */
static struct entry *find(struct auth_limiter *l, const char *key, int64_t now)
{
	uint32_t h = hash_key(key);

	for (struct entry *e = l->buckets[h & (l->bucket_count - 1)]; e != NULL; e = e->hnext) {
		if (e->hash != h || strcmp(e->key, key) != 0)
			continue;
		if (expired(l, e, now)) {
			remove_entry(l, e);
			return NULL;
		}
		if (e->locked_until != 0 && e->locked_until <= now) {
			e->locked_until = 0;
			e->failures = 0;
		}
		return e;
	}
	return NULL;
}

static void grow(struct auth_limiter *l)
{
	size_t n = l->bucket_count * 2;
	struct entry **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < l->bucket_count; i++) {
		for (struct entry *e = l->buckets[i], *next; e != NULL; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(l->buckets);
	l->buckets = b;
	l->bucket_count = n;
}

static struct entry *find_or_add(struct auth_limiter *l, const char *key, int64_t now)
{
	struct entry *e = find(l, key, now);
	size_t len;

	if (e != NULL)
		return e;
	while (l->count >= l->set.max_entries && l->tail != NULL)
		remove_entry(l, l->tail);
	if (l->count >= l->bucket_count && l->bucket_count < ((size_t)1 << 26))
		grow(l);
	len = strlen(key);
	e = xcalloc(1, sizeof(*e) + len + 1);  /* @UNSAFE: key is bounded by SASL_MAX_LOGIN */
	memcpy(e->key, key, len + 1);
	e->hash = hash_key(key);
	e->hnext = l->buckets[e->hash & (l->bucket_count - 1)];
	l->buckets[e->hash & (l->bucket_count - 1)] = e;
	lru_push_head(l, e);
	l->count++;
	return e;
}

/* Counts one failure for key; returns true when it starts a lockout. */
static bool count_failure(struct auth_limiter *l, struct entry *e, unsigned threshold,
			  int64_t lockout_ms, int64_t now)
{
	if (e->failures < UINT32_MAX)
		e->failures++;
	e->last_failure = now;
	lru_unlink(l, e);
	lru_push_head(l, e);
	if (threshold > 0 && e->failures >= threshold && e->locked_until <= now) {
		e->locked_until = now + lockout_ms;
		return true;
	}
	return false;
}

/* ---- keys ---- */

char *auth_limiter_ip_key(const char *ip)
{
	struct in6_addr a6;
	struct in_addr a4;
	char text[INET6_ADDRSTRLEN];

	if (ip == NULL || *ip == '\0')
		return xstrdup("-");
	if (inet_pton(AF_INET, ip, &a4) == 1)
		return xstrdup(ip);
	if (inet_pton(AF_INET6, ip, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			if (inet_ntop(AF_INET, &a6.s6_addr[12], text, sizeof(text)) == NULL)
				panic("auth_limiter_ip_key: inet_ntop");
			return xstrdup(text);
		}
		memset(&a6.s6_addr[8], 0, 8);
		if (inet_ntop(AF_INET6, &a6, text, sizeof(text)) == NULL)
			panic("auth_limiter_ip_key: inet_ntop");
		return xasprintf("%s/64", text);
	}
	return xstrndup(ip, SASL_MAX_LOGIN);
}

static char *make_key(char kind, const char *value)
{
	return xasprintf("%c:%.*s", kind, SASL_MAX_LOGIN, value);
}

/* ---- queries ---- */

static bool locked(struct auth_limiter *l, const char *key, int64_t *retry_ms_r)
{
	int64_t now;
	struct entry *e;
	bool ret = false;

	pthread_mutex_lock(&l->lock);
	now = l->clock();
	sweep(l, now);
	e = find(l, key, now);
	if (e != NULL && e->locked_until > now) {
		ret = true;
		if (retry_ms_r != NULL)
			*retry_ms_r = e->locked_until - now;
	}
	pthread_mutex_unlock(&l->lock);
	return ret;
}

bool auth_limiter_ip_locked(struct auth_limiter *l, const char *ip, int64_t *retry_ms_r)
{
	char *ipkey = auth_limiter_ip_key(ip), *key = make_key('i', ipkey);
	bool ret = locked(l, key, retry_ms_r);

	free(key);
	free(ipkey);
	return ret;
}

bool auth_limiter_account_locked(struct auth_limiter *l, const char *account,
				 int64_t *retry_ms_r)
{
	char *key;
	bool ret;

	if (account == NULL)
		return false;
	key = make_key('a', account);
	ret = locked(l, key, retry_ms_r);
	free(key);
	return ret;
}

/* ---- logging ---- */

/* Client text for a quoted log value: log_msg escapes control bytes,
 * 8-bit bytes and backslashes itself; '"' would let a value close its
 * quotes and forge fields, so it becomes \x22.  Cut at LIMITER_LOG_MAX.
 * Newly allocated. */
static char *log_quote(const char *text)
{
	struct buf b;
	size_t n;

	if (text == NULL)
		return xstrdup("");
	n = strnlen(text, LIMITER_LOG_MAX + 1);
	buf_init(&b, LIMITER_LOG_MAX * 4 + 8);
	for (size_t i = 0; i < n && i < LIMITER_LOG_MAX; i++) {
		if ((text[i] == '"' ? buf_append_str(&b, "\\x22") : buf_append_char(&b, text[i])) < 0)
			panic("auth: log_quote");
	}
	if (n > LIMITER_LOG_MAX && buf_append_str(&b, "...") < 0)
		panic("auth: log_quote");
	return buf_steal(&b);
}

/* ---- failures and successes ---- */

int64_t auth_limiter_failure(struct auth_limiter *l, const struct auth_attempt *a)
{
	char *ipkey = auth_limiter_ip_key(a->ip), *ikey = make_key('i', ipkey), *akey = NULL;
	bool ip_lock, acct_lock = false;
	unsigned ip_failures, acct_failures = 0, n;
	int64_t now, delay = 0, ip_lock_ms, acct_lock_ms;
	struct entry *e;
	char *login, *account, *reason;

	pthread_mutex_lock(&l->lock);
	now = l->clock();
	sweep(l, now);
	e = find_or_add(l, ikey, now);
	ip_lock = count_failure(l, e, l->set.ip_lockout_failures, l->set.ip_lockout_ms, now);
	ip_failures = e->failures;
	if (a->account != NULL && *a->account != '\0') {
		akey = make_key('a', a->account);
		e = find_or_add(l, akey, now);
		acct_lock = count_failure(l, e, l->set.account_lockout_failures,
					  l->set.account_lockout_ms, now);
		acct_failures = e->failures;
	}
	n = ip_failures > acct_failures ? ip_failures : acct_failures;
	if (n > l->set.delay_after && l->set.failure_delay_ms > 0) {
		uint64_t steps = n - l->set.delay_after;

		delay = steps > (uint64_t)(l->set.max_delay_ms / l->set.failure_delay_ms) + 1
			? l->set.max_delay_ms : (int64_t)steps * l->set.failure_delay_ms;
		if (delay > l->set.max_delay_ms)
			delay = l->set.max_delay_ms;
	}
	ip_lock_ms = l->set.ip_lockout_ms;
	acct_lock_ms = l->set.account_lockout_ms;
	pthread_mutex_unlock(&l->lock);

	login = log_quote(a->login);
	account = log_quote(a->account);
	reason = log_quote(a->reason != NULL ? a->reason : "authentication failed");
	log_security(LIMITER_LOG, "service=%s session=%llu ip=%s login=\"%s\" mechanism=%s "
		     "authentication failed reason=\"%s\" failures=%u delay=%lldms",
		     a->service != NULL ? a->service : "-", (unsigned long long)a->session,
		     a->ip != NULL && *a->ip != '\0' ? a->ip : "-",
		     login, a->mechanism != NULL ? a->mechanism : "-", reason, n,
		     (long long)delay);
	if (ip_lock)
		log_security(LIMITER_LOG, "service=%s ip=%s lockout: %u failed logins, "
			     "authentication refused for %llds",
			     a->service != NULL ? a->service : "-", ipkey, ip_failures,
			     (long long)(ip_lock_ms / 1000));
	if (acct_lock)
		log_security(LIMITER_LOG, "service=%s ip=%s account=\"%s\" lockout: %u failed "
			     "logins, account locked for %llds",
			     a->service != NULL ? a->service : "-", ipkey, account, acct_failures,
			     (long long)(acct_lock_ms / 1000));
	free(reason);
	free(account);
	free(login);
	free(akey);
	free(ikey);
	free(ipkey);
	return delay;
}

void auth_limiter_success(struct auth_limiter *l, const struct auth_attempt *a)
{
	char *key;
	struct entry *e;
	int64_t now;

	if (a->account == NULL || *a->account == '\0')
		return;
	key = make_key('a', a->account);
	pthread_mutex_lock(&l->lock);
	now = l->clock();
	e = find(l, key, now);
	if (e != NULL && e->locked_until <= now)
		remove_entry(l, e);
	pthread_mutex_unlock(&l->lock);
	free(key);
}

enum sasl_status auth_limiter_conclude(struct auth_limiter *l, const char *service,
				       const char *ip, uint64_t session, struct sasl_reply *reply,
				       int64_t *delay_ms_r)
{
	struct auth_attempt a = {
		.service = service,
		.ip = ip,
		.session = session,
		.mechanism = sasl_mech_name(reply->mech),
		.login = reply->login,
		.account = reply->account,
		.reason = reply->reason,
	};

	*delay_ms_r = 0;
	if (reply->status == SASL_CONTINUE)
		return reply->status;
	if (reply->status == SASL_FAILURE && reply->failure == SASL_FAIL_TEMPORARY) {
		/* Our problem, not the client's (an unreadable keytab, a failed
		 * lookup): not counted, but the administrator must see it. */
		char *login = log_quote(reply->login), *reason = log_quote(reply->reason);

		log_warn(LIMITER_LOG, "service=%s session=%llu ip=%s login=\"%s\" mechanism=%s "
			 "authentication failed temporarily reason=\"%s\"",
			 service != NULL ? service : "-", (unsigned long long)session,
			 ip != NULL && *ip != '\0' ? ip : "-", login,
			 a.mechanism != NULL ? a.mechanism : "-", reason);
		free(reason);
		free(login);
		return reply->status;
	}
	if (reply->status == SASL_SUCCESS) {
		const char *why = NULL;

		if (auth_limiter_ip_locked(l, ip, NULL))
			why = "ip locked";
		else if (auth_limiter_account_locked(l, reply->account, NULL))
			why = "account locked";
		if (why == NULL) {
			auth_limiter_success(l, &a);
			return SASL_SUCCESS;
		}
		/* The right password during a lockout fails like a wrong one,
		 * so the lock cannot be used to test passwords. */
		reply->status = SASL_FAILURE;
		reply->failure = SASL_FAIL_CREDENTIALS;
		reply->reason = why;
		reply->identity = NULL;
		reply->data = (const unsigned char *)"";
		reply->len = 0;
		if (reply->text != NULL)
			reply->text = "";
		a.reason = why;
	}
	/* Only a credentials failure is a guess at the account's password;
	 * the rest (malformed, aborted, unknown mechanism) count for the IP. */
	if (reply->failure != SASL_FAIL_CREDENTIALS)
		a.account = NULL;
	*delay_ms_r = auth_limiter_failure(l, &a);
	return SASL_FAILURE;
}

/* ---- the shared limiter ---- */

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct auth_limiter *shared;
static struct auth_limiter_settings shared_set;

struct auth_limiter *auth_limiter_shared(const struct settings *s)
{
	struct auth_limiter_settings set;
	struct auth_limiter *l;

	auth_limiter_settings_from(s, &set);
	pthread_mutex_lock(&shared_lock);
	if (shared == NULL) {
		shared = auth_limiter_new(&set, NULL);
		shared_set = set;
	} else if (memcmp(&set, &shared_set, sizeof(set)) != 0) {
		auth_limiter_configure(shared, &set);
		shared_set = set;
	}
	l = shared;
	pthread_mutex_unlock(&shared_lock);
	return l;
}
