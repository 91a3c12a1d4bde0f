/*
 * Per-IP limits of the SMTP server shared by every session: concurrent
 * connections per client address over smtp, submission and smtps, and
 * accepted messages per hour per client address.  Both tables are shared
 * by the event-loop threads under one mutex each, held for a hash lookup.
 */
#include "smtp/smtp_private.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth_limiter.h"
#include "core/net.h"
#include "core/str.h"

#define RATE_WINDOW 3600
#define RATE_BUCKETS 4096

unsigned smtp_exempt_parse(const char *value)
{
	static const struct {
		const char *word;
		unsigned flag;
	} words[] = {
		{ "message-rate", SMTP_EXEMPT_MESSAGE_RATE },
		{ "recipients", SMTP_EXEMPT_RECIPIENTS },
		{ "unknown-recipients", SMTP_EXEMPT_UNKNOWN_RECIPIENTS },
		{ "failed-commands", SMTP_EXEMPT_FAILED_COMMANDS },
	};
	char *copy = xstrdup(value), *save = NULL;
	unsigned flags = 0;

	for (char *w = strtok_r(copy, " \t,", &save); w != NULL; w = strtok_r(NULL, " \t,", &save)) {
		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
			if (strcmp(w, words[i].word) == 0)
				flags |= words[i].flag;
		}
	}
	free(copy);
	return flags;
}

/* ---- message rate ---- */

struct rate_entry {
	struct rate_entry *next;
	int64_t window_start;
	uint64_t count;
	char key[];
};

struct smtp_rate {
	pthread_mutex_t lock;
	smtp_clock_fn *clock;
	size_t max_entries, entries;
	struct rate_entry *buckets[RATE_BUCKETS];
};

static int64_t monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

struct smtp_rate *smtp_rate_new(size_t max_entries, smtp_clock_fn *clock)
{
	struct smtp_rate *r = xcalloc(1, sizeof(*r));

	pthread_mutex_init(&r->lock, NULL);
	r->clock = clock != NULL ? clock : monotonic_seconds;
	r->max_entries = max_entries;
	return r;
}

void smtp_rate_free(struct smtp_rate **ratep)
{
	struct smtp_rate *r = *ratep;

	if (r == NULL)
		return;
	*ratep = NULL;
	for (size_t i = 0; i < RATE_BUCKETS; i++) {
		while (r->buckets[i] != NULL) {
			struct rate_entry *e = r->buckets[i];

			r->buckets[i] = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static size_t key_hash(const char *key)
{
	uint32_t h = 2166136261u;

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h % RATE_BUCKETS;
}

/* Removes entries whose window is over.  Called locked. */
static void rate_sweep(struct smtp_rate *r, int64_t now)
{
	for (size_t i = 0; i < RATE_BUCKETS; i++) {
		for (struct rate_entry **pp = &r->buckets[i]; *pp != NULL;) {
			struct rate_entry *e = *pp;

			if (now - e->window_start >= RATE_WINDOW) {
				*pp = e->next;
				free(e);
				r->entries--;
			} else {
				pp = &e->next;
			}
		}
	}
}

/* The entry of key, its window renewed when over; created when create is
 * set and there is room.  Called locked. */
static struct rate_entry *rate_find(struct smtp_rate *r, const char *key, int64_t now, bool create)
{
	size_t h = key_hash(key);
	struct rate_entry *e;
	size_t klen;

	for (e = r->buckets[h]; e != NULL; e = e->next) {
		if (strcmp(e->key, key) == 0) {
			if (now - e->window_start >= RATE_WINDOW) {
				e->window_start = now;
				e->count = 0;
			}
			return e;
		}
	}
	if (!create)
		return NULL;
	if (r->entries >= r->max_entries) {
		rate_sweep(r, now);
		if (r->entries >= r->max_entries)
			return NULL;
	}
	klen = strlen(key);
	e = xmalloc(sizeof(*e) + klen + 1);
	memcpy(e->key, key, klen + 1);
	e->window_start = now;
	e->count = 0;
	e->next = r->buckets[h];
	r->buckets[h] = e;
	r->entries++;
	return e;
}

bool smtp_rate_allowed(struct smtp_rate *r, const char *ip, uint64_t max)
{
	char *key;
	struct rate_entry *e;
	bool ok;

	if (max == 0)
		return true;
	key = auth_limiter_ip_key(ip);
	pthread_mutex_lock(&r->lock);
	e = rate_find(r, key, r->clock(), false);
	ok = e == NULL || e->count < max;
	pthread_mutex_unlock(&r->lock);
	free(key);
	return ok;
}

void smtp_rate_count(struct smtp_rate *r, const char *ip)
{
	char *key = auth_limiter_ip_key(ip);
	struct rate_entry *e;

	pthread_mutex_lock(&r->lock);
	e = rate_find(r, key, r->clock(), true);
	/* @UNSAFE saturating: a count cannot wrap to 0 */
	if (e != NULL && e->count < UINT64_MAX)
		e->count++;
	pthread_mutex_unlock(&r->lock);
	free(key);
}

uint64_t smtp_rate_get(struct smtp_rate *r, const char *ip)
{
	char *key = auth_limiter_ip_key(ip);
	struct rate_entry *e;
	uint64_t n;

	pthread_mutex_lock(&r->lock);
	e = rate_find(r, key, r->clock(), false);
	n = e != NULL ? e->count : 0;
	pthread_mutex_unlock(&r->lock);
	free(key);
	return n;
}

size_t smtp_rate_entries(struct smtp_rate *r)
{
	size_t n;

	pthread_mutex_lock(&r->lock);
	n = r->entries;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* ---- connections per IP ---- */

static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ip_counter *conn_counter;

bool smtp_conn_acquire(const char *ip, unsigned max)
{
	unsigned n;

	pthread_mutex_lock(&conn_lock);
	if (conn_counter == NULL)
		conn_counter = ip_counter_new();
	n = ip_counter_acquire(conn_counter, ip, max);
	pthread_mutex_unlock(&conn_lock);
	return n != 0;
}

void smtp_conn_release(const char *ip)
{
	pthread_mutex_lock(&conn_lock);
	if (conn_counter == NULL)
		panic("smtp_conn_release: nothing acquired");
	ip_counter_release(conn_counter, ip);
	pthread_mutex_unlock(&conn_lock);
}
