/*
 * The verified-credential cache; see auth_cache.h for what it promises.
 *
 * One hash table of entries keyed by identity, chained, grown by doubling,
 * and one LRU list (head most recently used).  The MAC is computed before
 * the mutex is taken: under it there is only a hash lookup, a constant-time
 * compare and a few pointer moves.
 */
#include "auth/auth_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth_private.h"

#define CACHE_KEY_LEN 32
#define CACHE_MIN_BUCKETS 256

struct entry {
	struct entry *hnext;         /* hash chain */
	struct entry *prev, *next;   /* LRU list; head = most recently used */
	uint32_t hash;
	int64_t expires;             /* ms, on the cache's clock */
	unsigned char mac[AUTH_SHA256_LEN];
	char identity[];
};

struct auth_cache {
	pthread_mutex_t lock;
	struct auth_cache_settings set;
	auth_clock_fn *clock;
	unsigned char key[CACHE_KEY_LEN];  /* set once at creation, then read-only */
	struct entry **buckets;
	size_t bucket_count;         /* power of two */
	size_t count;
	struct entry *head, *tail;
	uint64_t hits, misses;
};

static int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void auth_cache_settings_from(const struct settings *s, struct auth_cache_settings *set_r)
{
	memset(set_r, 0, sizeof(*set_r));
	set_r->ttl_ms = s->auth_cache_ttl * 1000;
	set_r->max_entries = (size_t)s->auth_cache_size;
}

struct auth_cache *auth_cache_new(const struct auth_cache_settings *set, auth_clock_fn *clock)
{
	struct auth_cache *c = xcalloc(1, sizeof(*c));

	if (pthread_mutex_init(&c->lock, NULL) != 0)
		panic("auth_cache_new: pthread_mutex_init failed");
	c->set = *set;
	if (c->set.max_entries == 0)
		c->set.max_entries = 1;
	c->clock = clock != NULL ? clock : monotonic_ms;
	auth_random(c->key, sizeof(c->key));
	c->bucket_count = CACHE_MIN_BUCKETS;
	c->buckets = xcalloc(c->bucket_count, sizeof(*c->buckets));
	return c;
}

static void entry_free(struct entry *e)
{
	explicit_bzero(e->mac, sizeof(e->mac));
	free(e);
}

/* ---- table ---- */

static uint32_t hash_identity(const char *s)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h;
}

static void lru_unlink(struct auth_cache *c, struct entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_head(struct auth_cache *c, struct entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head != NULL)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

static struct entry *find(struct auth_cache *c, const char *identity, uint32_t hash)
{
	for (struct entry *e = c->buckets[hash & (c->bucket_count - 1)]; e != NULL; e = e->hnext)
		if (e->hash == hash && strcmp(e->identity, identity) == 0)
			return e;
	return NULL;
}

static void remove_entry(struct auth_cache *c, struct entry *e)
{
	struct entry **pp = &c->buckets[e->hash & (c->bucket_count - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(c, e);
	c->count--;
	entry_free(e);
}

static void grow(struct auth_cache *c)
{
	size_t n = c->bucket_count * 2;
	struct entry **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < c->bucket_count; i++) {
		for (struct entry *e = c->buckets[i], *next; e != NULL; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->bucket_count = n;
}

static void evict_to(struct auth_cache *c, size_t max)
{
	while (c->count > max && c->tail != NULL)
		remove_entry(c, c->tail);
}

static void flush_locked(struct auth_cache *c)
{
	evict_to(c, 0);
}

void auth_cache_free(struct auth_cache **cp)
{
	struct auth_cache *c = *cp;

	if (c == NULL)
		return;
	flush_locked(c);
	free(c->buckets);
	explicit_bzero(c->key, sizeof(c->key));
	pthread_mutex_destroy(&c->lock);
	free(c);
	*cp = NULL;
}

void auth_cache_configure(struct auth_cache *c, const struct auth_cache_settings *set)
{
	pthread_mutex_lock(&c->lock);
	c->set = *set;
	if (c->set.max_entries == 0)
		c->set.max_entries = 1;
	if (c->set.ttl_ms <= 0)
		flush_locked(c);
	else
		evict_to(c, c->set.max_entries);
	pthread_mutex_unlock(&c->lock);
}

void auth_cache_flush(struct auth_cache *c)
{
	pthread_mutex_lock(&c->lock);
	flush_locked(c);
	pthread_mutex_unlock(&c->lock);
}

/* ---- the MAC ---- */

/* HMAC-SHA256(key, identity NUL stored_hash NUL password).  None of the
 * three can contain a NUL, so the input is unambiguous.  Returns false
 * when the digest is unavailable (the cache is then simply not used). */
static bool compute_mac(const struct auth_cache *c, const char *identity, const char *stored_hash,
			const char *password, unsigned char mac[AUTH_SHA256_LEN])
{
	size_t li = strlen(identity), lh = strlen(stored_hash), lp = strlen(password);
	size_t len = li + 1 + lh + 1 + lp;
	char *data = xmalloc(len);
	size_t n;

	memcpy(data, identity, li + 1);
	memcpy(data + li + 1, stored_hash, lh + 1);
	memcpy(data + li + 1 + lh + 1, password, lp);
	n = auth_hmac("SHA256", c->key, sizeof(c->key), data, len, mac);
	/* data holds the password: wipe it before it goes back to malloc. */
	explicit_bzero(data, len);
	free(data);
	return n == AUTH_SHA256_LEN;
}

/* Whether the cache is on, only to skip the MAC when it is off: the
 * decision is made again under the lock with the MAC in hand. */
static bool enabled(struct auth_cache *c)
{
	bool on;

	pthread_mutex_lock(&c->lock);
	on = c->set.ttl_ms > 0;
	pthread_mutex_unlock(&c->lock);
	return on;
}

bool auth_cache_lookup(struct auth_cache *c, const char *identity, const char *stored_hash,
		       const char *password)
{
	unsigned char mac[AUTH_SHA256_LEN];
	struct entry *e;
	uint32_t hash = hash_identity(identity);
	bool hit = false;
	int64_t now;

	if (!enabled(c) || !compute_mac(c, identity, stored_hash, password, mac))
		return false;
	pthread_mutex_lock(&c->lock);
	now = c->clock();
	e = c->set.ttl_ms > 0 ? find(c, identity, hash) : NULL;
	if (e != NULL && e->expires <= now) {
		remove_entry(c, e);
		e = NULL;
	}
	if (e != NULL && auth_equal(e->mac, mac, sizeof(mac))) {
		hit = true;
		lru_unlink(c, e);
		lru_push_head(c, e);
	}
	/* A different MAC is left alone: a wrong password must not evict the
	 * right one's entry, and a stale one (the hash changed) is replaced
	 * at the next successful check. */
	if (hit)
		c->hits++;
	else if (c->set.ttl_ms > 0)
		c->misses++;
	pthread_mutex_unlock(&c->lock);
	explicit_bzero(mac, sizeof(mac));
	return hit;
}

void auth_cache_remember(struct auth_cache *c, const char *identity, const char *stored_hash,
			 const char *password)
{
	unsigned char mac[AUTH_SHA256_LEN];
	uint32_t hash = hash_identity(identity);
	struct entry *e;

	if (!enabled(c) || !compute_mac(c, identity, stored_hash, password, mac))
		return;
	pthread_mutex_lock(&c->lock);
	if (c->set.ttl_ms > 0) {
		e = find(c, identity, hash);
		if (e == NULL) {
			size_t len = strlen(identity);

			e = xmalloc(sizeof(*e) + len + 1);
			memset(e, 0, sizeof(*e));
			memcpy(e->identity, identity, len + 1);
			e->hash = hash;
			if (c->count >= c->bucket_count)
				grow(c);
			e->hnext = c->buckets[hash & (c->bucket_count - 1)];
			c->buckets[hash & (c->bucket_count - 1)] = e;
			c->count++;
		} else {
			lru_unlink(c, e);
		}
		memcpy(e->mac, mac, sizeof(mac));
		e->expires = c->clock() + c->set.ttl_ms;
		lru_push_head(c, e);
		evict_to(c, c->set.max_entries);
	}
	pthread_mutex_unlock(&c->lock);
	explicit_bzero(mac, sizeof(mac));
}

void auth_cache_get_stats(struct auth_cache *c, struct auth_cache_stats *stats_r)
{
	pthread_mutex_lock(&c->lock);
	stats_r->hits = c->hits;
	stats_r->misses = c->misses;
	stats_r->entries = c->count;
	pthread_mutex_unlock(&c->lock);
}

/* ---- the process-wide cache ---- */

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct auth_cache *shared;
static struct auth_cache_settings shared_set;

struct auth_cache *auth_cache_shared(const struct settings *s)
{
	struct auth_cache_settings set;
	struct auth_cache *c;

	auth_cache_settings_from(s, &set);
	pthread_mutex_lock(&shared_lock);
	if (shared == NULL) {
		shared = auth_cache_new(&set, NULL);
		shared_set = set;
	} else if (memcmp(&set, &shared_set, sizeof(set)) != 0) {
		auth_cache_configure(shared, &set);
		shared_set = set;
	}
	c = shared;
	pthread_mutex_unlock(&shared_lock);
	return c;
}

void auth_cache_flush_shared(void)
{
	pthread_mutex_lock(&shared_lock);
	if (shared != NULL)
		auth_cache_flush(shared);
	pthread_mutex_unlock(&shared_lock);
}

void auth_cache_shared_stats(struct auth_cache_stats *stats_r)
{
	memset(stats_r, 0, sizeof(*stats_r));
	pthread_mutex_lock(&shared_lock);
	if (shared != NULL)
		auth_cache_get_stats(shared, stats_r);
	pthread_mutex_unlock(&shared_lock);
}
