/*
 * POP-before-SMTP: the client addresses that logged in over POP3 or IMAP
 * recently, for the SMTP server's relay check (smtp/pop-before-smtp).
 *
 * The POP3 and IMAP servers record an address after each successful
 * login; the SMTP server asks whether an address logged in within a
 * window.  No front end calls another (DESIGN.md): they meet here, in
 * core, through two functions.
 *
 * Thread-safe (one mutex, held for a hash lookup).  Bounded: at most
 * RECENT_AUTH_MAX addresses are remembered; past that the one that logged
 * in longest ago is forgotten, so a flood of logins from many addresses
 * costs a fixed amount of memory and can only shorten other addresses'
 * windows.  The clock is monotonic (a change of the system time neither
 * extends nor cuts a window).
 */
#ifndef PETREL_RECENT_AUTH_H
#define PETREL_RECENT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Addresses remembered at most. */
#define RECENT_AUTH_MAX 65536

/* Records a successful login from ip (text form, as struct conn has it;
 * longer than an IPv6 address is ignored). */
void pop_before_smtp_record(const char *ip);
/* True when ip logged in within the last window seconds (window <= 0:
 * never). */
bool pop_before_smtp_check(const char *ip, time_t window);

/* Number of addresses remembered (tests, status). */
size_t pop_before_smtp_count(void);
/* Forgets everything (tests). */
void pop_before_smtp_clear(void);
/* Test seam: a clock in seconds; NULL restores CLOCK_MONOTONIC. */
typedef int64_t recent_auth_clock_fn(void);
void pop_before_smtp_set_clock(recent_auth_clock_fn *fn);

#endif
