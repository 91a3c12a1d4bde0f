/*
 * POP-before-SMTP records; see recent_auth.h.  A chained hash table of
 * addresses, with a list ordered by last login (most recent first) for
 * eviction, all under one mutex.
 */
#include "core/recent_auth.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

#define RECENT_AUTH_BUCKETS 16384

struct recent_entry {
	struct recent_entry *hnext;          /* bucket chain */
	struct recent_entry *newer, *older;  /* by last login */
	int64_t when;
	char ip[INET6_ADDRSTRLEN];
};

static pthread_mutex_t recent_lock = PTHREAD_MUTEX_INITIALIZER;
static struct recent_entry *buckets[RECENT_AUTH_BUCKETS];
static struct recent_entry *newest, *oldest;
static size_t recent_count;
static recent_auth_clock_fn *recent_clock;

static int64_t clock_now(void)
{
	struct timespec ts;
	recent_auth_clock_fn *fn = __atomic_load_n(&recent_clock, __ATOMIC_ACQUIRE);

	if (fn != NULL)
		return fn();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

void pop_before_smtp_set_clock(recent_auth_clock_fn *fn)
{
	__atomic_store_n(&recent_clock, fn, __ATOMIC_RELEASE);
}

static unsigned hash_ip(const char *ip)
{
	unsigned h = 2166136261u;

	for (; *ip != '\0'; ip++)
		h = (h ^ (unsigned char)*ip) * 16777619u;
	return h % RECENT_AUTH_BUCKETS;
}

/* Called locked. */
static struct recent_entry **find(const char *ip)
{
	struct recent_entry **pp = &buckets[hash_ip(ip)];

	while (*pp != NULL && strcmp((*pp)->ip, ip) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void unlink_age(struct recent_entry *e)
{
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		newest = e->older;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		oldest = e->newer;
	e->newer = e->older = NULL;
}

static void push_newest(struct recent_entry *e)
{
	e->older = newest;
	e->newer = NULL;
	if (newest != NULL)
		newest->newer = e;
	newest = e;
	if (oldest == NULL)
		oldest = e;
}

static void drop(struct recent_entry *e)
{
	struct recent_entry **pp = find(e->ip);

	*pp = e->hnext;
	unlink_age(e);
	free(e);
	recent_count--;
}

void pop_before_smtp_record(const char *ip)
{
	struct recent_entry **pp, *e;
	int64_t now = clock_now();

	if (ip == NULL || ip[0] == '\0' || strlen(ip) >= INET6_ADDRSTRLEN)
		return;
	pthread_mutex_lock(&recent_lock);
	pp = find(ip);
	e = *pp;
	if (e != NULL) {
		unlink_age(e);
	} else {
		if (recent_count >= RECENT_AUTH_MAX)
			drop(oldest);
		e = xcalloc(1, sizeof(*e));
		memcpy(e->ip, ip, strlen(ip) + 1);
		e->hnext = buckets[hash_ip(ip)];
		buckets[hash_ip(ip)] = e;
		recent_count++;
	}
	e->when = now;
	push_newest(e);
	pthread_mutex_unlock(&recent_lock);
}

bool pop_before_smtp_check(const char *ip, time_t window)
{
	struct recent_entry *e;
	bool ok = false;
	int64_t now = clock_now();

	if (ip == NULL || window <= 0 || strlen(ip) >= INET6_ADDRSTRLEN)
		return false;
	pthread_mutex_lock(&recent_lock);
	e = *find(ip);
	if (e != NULL) {
		if (now - e->when <= (int64_t)window)
			ok = true;
	}
	/* Entries older than any sane window go: keeps memory low when
	 * logins are rare (one day is the setting's maximum). */
	while (oldest != NULL && now - oldest->when > 86400)
		drop(oldest);
	pthread_mutex_unlock(&recent_lock);
	return ok;
}

size_t pop_before_smtp_count(void)
{
	size_t n;

	pthread_mutex_lock(&recent_lock);
	n = recent_count;
	pthread_mutex_unlock(&recent_lock);
	return n;
}

void pop_before_smtp_clear(void)
{
	pthread_mutex_lock(&recent_lock);
	while (oldest != NULL)
		drop(oldest);
	pthread_mutex_unlock(&recent_lock);
}
