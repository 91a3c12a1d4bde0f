/*
 * Brute-force protection: failed logins counted per client IP address and
 * per account, shared by every protocol.
 *
 * Past auth/delay-after failures (from the IP or for the account, whichever
 * has more) each further failure is answered after a growing delay; at
 * auth/ip-lockout-failures an IP address is refused outright for
 * auth/ip-lockout-time, and at auth/account-lockout-failures an account
 * cannot log in for auth/account-lockout-time (its correct password is
 * refused like a wrong one, so the lock does not reveal the password
 * either).  Counts are forgotten auth/failure-window after the last
 * failure.  IPv6 clients are counted per /64, since one host usually owns
 * a whole /64.
 *
 * The limiter never sleeps: it returns the delay, and the front end holds
 * its reply for that long with a timer on its event loop.  Every failure
 * and every lockout is written to security.log with the service, IP,
 * login name (escaped and quoted), mechanism and reason; never the
 * password or any part of the client's response.
 *
 * Memory is bounded: at most auth/tracked-entries IPs and accounts are
 * remembered; past that, the one whose last failure is oldest is
 * forgotten.  Thread-safe: one mutex, held for a hash lookup.
 */
#ifndef PETREL_AUTH_LIMITER_H
#define PETREL_AUTH_LIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/sasl.h"
#include "core/cfg.h"

struct auth_limiter_settings {
	unsigned delay_after;            /* failures before replies are delayed */
	int64_t failure_delay_ms;        /* added per failure past delay_after */
	int64_t max_delay_ms;            /* cap of the delay */
	unsigned ip_lockout_failures;    /* 0 = never lock an IP */
	int64_t ip_lockout_ms;
	unsigned account_lockout_failures; /* 0 = never lock an account */
	int64_t account_lockout_ms;
	int64_t window_ms;               /* counts forgotten after this long */
	size_t max_entries;              /* IPs + accounts remembered */
};

/* The limiter's settings from the auth/ rows of mailserver.cfg. */
void auth_limiter_settings_from(const struct settings *s, struct auth_limiter_settings *set_r);

/* Test seam: a monotonic clock in milliseconds. */
typedef int64_t auth_clock_fn(void);

/* A limiter; clock NULL means CLOCK_MONOTONIC. */
struct auth_limiter *auth_limiter_new(const struct auth_limiter_settings *set,
				      auth_clock_fn *clock);
void auth_limiter_free(struct auth_limiter **limiter);
/* New settings; what is counted so far is kept. */
void auth_limiter_configure(struct auth_limiter *limiter, const struct auth_limiter_settings *set);

/* The process-wide limiter every front end shares, created at the first
 * call and reconfigured whenever s differs from the settings it has (so a
 * reload takes effect without any call from the engine).  Never NULL. */
struct auth_limiter *auth_limiter_shared(const struct settings *s);

/* Whether ip is locked out now; if so *retry_ms_r (may be NULL) is how
 * long it stays so.  Front ends ask before starting an exchange, and refuse
 * the AUTH command (SMTP 454 4.7.0, IMAP NO [UNAVAILABLE]) without spending
 * a password check. */
bool auth_limiter_ip_locked(struct auth_limiter *limiter, const char *ip, int64_t *retry_ms_r);
/* The same for an account key (see struct auth_attempt). */
bool auth_limiter_account_locked(struct auth_limiter *limiter, const char *account,
				 int64_t *retry_ms_r);

/* One login attempt, for counting and for the log line. */
struct auth_attempt {
	const char *service;    /* "smtp", "imap", "admin-api", ... */
	const char *ip;         /* client address, text form */
	uint64_t session;       /* connection id for the log; 0 for none */
	const char *mechanism;  /* "PLAIN", ...; NULL when none was valid */
	const char *login;      /* as the client gave it (raw); NULL if unknown */
	/* The counting key of the account: login in lower case, with the
	 * primary domain added to a bare name (so "john" and "john@primary"
	 * are one account, whether the user exists or not).  NULL: not
	 * counted per account. */
	const char *account;
	const char *reason;     /* for the log: "wrong password", ... */
};

/* Records a failure and logs it (and the lockout it may start).  Returns
 * the delay in milliseconds the reply must wait (0 for none). */
int64_t auth_limiter_failure(struct auth_limiter *limiter, const struct auth_attempt *attempt);
/* Records a success: the account's count starts over (the IP's does not,
 * so that one known password does not launder guesses at others). */
void auth_limiter_success(struct auth_limiter *limiter, const struct auth_attempt *attempt);

/* The usual end of a SASL exchange, for front ends: turns a SUCCESS for a
 * locked account or IP into a FAILURE (SASL_FAIL_CREDENTIALS, reason
 * "account locked"/"ip locked"), records success or failure, logs
 * failures, and returns the possibly changed status with *delay_ms_r the
 * delay to apply before replying (0 on success).  A CONTINUE is returned
 * unchanged; so is a temporary failure, which is not counted but logged to
 * warning.log (it is the server's problem: an unreadable keytab...). */
enum sasl_status auth_limiter_conclude(struct auth_limiter *limiter, const char *service,
				       const char *ip, uint64_t session, struct sasl_reply *reply,
				       int64_t *delay_ms_r);

/* Counting key for an IP: IPv4 as is (IPv4-mapped IPv6 too), IPv6 as
 * its /64 ("2001:db8:1:2::/64"), anything else as given.  Newly
 * allocated. */
char *auth_limiter_ip_key(const char *ip);

#endif
