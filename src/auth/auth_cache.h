/*
 * The verified-credential cache: after a PLAIN or LOGIN password (IMAP
 * LOGIN, POP3 USER/PASS, SMTP AUTH PLAIN/LOGIN...) has been checked
 * against the user's yescrypt hash, remember that it matched, so that the
 * same user with the same password skips yescrypt for auth/cache-ttl
 * (Dovecot's auth_cache; docs/authentication.md "Credential cache",
 * docs/decisions.md).
 *
 * What is kept per user (by canonical identity, the address): the
 * HMAC-SHA256, under a random key made when the cache is created (so per
 * process, never on disk), of the identity, the stored hash string and the
 * SASLprep'd password; and when that stops counting.  Never the password.
 *
 * The cache can only say "this is the password that matched this stored
 * hash"; it never refuses.  A miss (no entry, expired, or a different
 * MAC) falls through to the full yescrypt check.  Because the stored hash
 * is inside the MAC, a password set again (a fresh salt: a new hash) by
 * any route misses at once.  Only successes of enabled users are
 * remembered; whether the user is enabled, the authorization identity and
 * the account lockout are all decided after, and independently of, the
 * password check.
 *
 * Memory is bounded: at most auth/cache-size users; past that the least
 * recently used is forgotten.  Thread-safe (the password checks run on
 * the worker pool): one mutex, held for a hash lookup; the HMAC is
 * computed outside it.
 */
#ifndef PETREL_AUTH_CACHE_H
#define PETREL_AUTH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth_limiter.h"   /* auth_clock_fn */
#include "core/cfg.h"

struct auth_cache_settings {
	int64_t ttl_ms;              /* 0: the cache is off */
	size_t max_entries;          /* users remembered at most */
};

/* The cache's settings from auth/cache-ttl and auth/cache-size. */
void auth_cache_settings_from(const struct settings *s, struct auth_cache_settings *set_r);

/* A cache with a fresh random key; clock NULL means CLOCK_MONOTONIC. */
struct auth_cache *auth_cache_new(const struct auth_cache_settings *set, auth_clock_fn *clock);
/* Wipes and frees; NULLs *cache. */
void auth_cache_free(struct auth_cache **cache);
/* New settings: a smaller size evicts the least recently used now, a ttl
 * of 0 forgets everything. */
void auth_cache_configure(struct auth_cache *cache, const struct auth_cache_settings *set);

/* The process-wide cache, created at the first call and reconfigured
 * whenever s differs from the settings it has.  Never NULL. */
struct auth_cache *auth_cache_shared(const struct settings *s);
/* Forgets everything in the process-wide cache, if there is one (the
 * engine calls it on reload). */
void auth_cache_flush_shared(void);

/* Whether password (SASLprep'd) is the one that last matched stored_hash
 * for identity, within the ttl.  Counts a hit or a miss. */
bool auth_cache_lookup(struct auth_cache *cache, const char *identity, const char *stored_hash,
		       const char *password);
/* Remembers that password matched stored_hash for identity (call only
 * after a successful full check); replaces the user's entry and restarts
 * its ttl. */
void auth_cache_remember(struct auth_cache *cache, const char *identity, const char *stored_hash,
			 const char *password);
/* Forgets everything. */
void auth_cache_flush(struct auth_cache *cache);

struct auth_cache_stats {
	uint64_t hits;               /* lookups that skipped yescrypt */
	uint64_t misses;             /* lookups that fell through (cache on) */
	size_t entries;              /* users remembered now */
};
void auth_cache_get_stats(struct auth_cache *cache, struct auth_cache_stats *stats_r);
/* The same for the process-wide cache (zeros when there is none yet). */
void auth_cache_shared_stats(struct auth_cache_stats *stats_r);

#endif
