/*
 * Where to send mail for a domain: MX records through c-ares (RFC 5321
 * 5.1), then the domain's own A/AAAA records when it has no MX (the
 * implicit MX), each exchanger's addresses in preference order (equal
 * preferences shuffled), IPv6 and IPv4.  A null MX (RFC 7505) is a
 * permanent failure.  The DNS server is a setting so that tests can point
 * it at a dnsmasq on loopback.
 *
 * Runs on a delivery thread, through dns_sync.c: one c-ares channel per
 * look-up, each query bounded by c-ares' own timeout and tries.
 */
#include "outbound/outbound_private.h"
#include "outbound/dns_sync.h"

#include <arpa/inet.h>
#include <ares.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

/* Per query: c-ares timeout (ms) and tries; a look-up is a few queries. */
#define DNS_TIMEOUT_MS 3000
#define DNS_TRIES 2

static void add_addr(struct ob_dest **list, size_t *n, size_t *cap, const char *host, int pref,
		     int family, const void *addr)
{
	struct ob_dest *d;

	if (*n >= OUTBOUND_MAX_MX * OUTBOUND_MAX_ADDRS)
		return;
	if (*n == *cap) {
		*cap = *cap == 0 ? 8 : *cap * 2;
		*list = xreallocarray(*list, *cap, sizeof(**list));
	}
	d = &(*list)[(*n)++];
	memset(d, 0, sizeof(*d));
	snprintf(d->host, sizeof(d->host), "%s", host);
	d->pref = pref;
	d->family = family;
	memcpy(d->addr, addr, family == AF_INET6 ? 16 : 4);
}

/* A and AAAA of host.  Returns the ares status of the better answer. */
static int host_addrs(ares_channel ch, const char *host, int pref, struct ob_dest **list,
		      size_t *n, size_t *cap)
{
	struct dns_answer q4, q6;
	size_t before = *n;
	int st = ARES_ENODATA;

	dns_sync_query(ch, host, DNS_TYPE_AAAA, &q6);
	dns_sync_query(ch, host, DNS_TYPE_A, &q4);
	if (q6.status == ARES_SUCCESS) {
		struct ares_addr6ttl a6[OUTBOUND_MAX_ADDRS];
		int na = OUTBOUND_MAX_ADDRS;

		if (ares_parse_aaaa_reply(q6.buf, q6.len, NULL, a6, &na) == ARES_SUCCESS) {
			for (int i = 0; i < na; i++)
				add_addr(list, n, cap, host, pref, AF_INET6, &a6[i].ip6addr);
		}
	}
	if (q4.status == ARES_SUCCESS) {
		struct ares_addrttl a4[OUTBOUND_MAX_ADDRS];
		int na = OUTBOUND_MAX_ADDRS;

		if (ares_parse_a_reply(q4.buf, q4.len, NULL, a4, &na) == ARES_SUCCESS) {
			for (int i = 0; i < na; i++)
				add_addr(list, n, cap, host, pref, AF_INET, &a4[i].ipaddr);
		}
	}
	if (*n > before)
		st = ARES_SUCCESS;
	else if (q4.status == ARES_ENOTFOUND && q6.status == ARES_ENOTFOUND)
		st = ARES_ENOTFOUND;
	else if (q4.status != ARES_SUCCESS && q4.status != ARES_ENODATA &&
		 q4.status != ARES_ENOTFOUND)
		st = q4.status;
	free(q4.buf);
	free(q6.buf);
	return st;
}

static void fail(struct ob_resolve *res, int code, const char *status, const char *fmt, ...)
	PETREL_PRINTF(4, 5);
static void fail(struct ob_resolve *res, int code, const char *status, const char *fmt, ...)
{
	va_list ap;

	res->code = code;
	snprintf(res->status, sizeof(res->status), "%s", status);
	va_start(ap, fmt);
	vsnprintf(res->text, sizeof(res->text), fmt, ap);
	va_end(ap);
}

static int mx_cmp(const void *a, const void *b)
{
	const struct ares_mx_reply *const *x = a, *const *y = b;

	return (int)(*x)->priority - (int)(*y)->priority;
}

int ob_resolve(const char *server, const char *name, bool use_mx, struct ob_resolve *res)
{
	ares_channel ch;
	size_t cap = 0;
	char err[256];

	memset(res, 0, sizeof(*res));
	/* An address literal: "[192.0.2.1]", "[IPv6:2001:db8::1]". */
	if (name[0] == '[') {
		char tmp[INET6_ADDRSTRLEN + 8];
		const char *a = name + 1;
		size_t len = strlen(a);
		unsigned char bin[16];

		if (len > 5 && strncasecmp(a, "IPv6:", 5) == 0) {
			a += 5;
			len -= 5;
		}
		if (len < 2 || a[len - 1] != ']' || len - 1 >= sizeof(tmp)) {
			fail(res, 550, "5.1.2", "bad address literal");
			return -1;
		}
		memcpy(tmp, a, len - 1);
		tmp[len - 1] = '\0';
		if (inet_pton(AF_INET, tmp, bin) == 1)
			add_addr(&res->dests, &res->count, &cap, tmp, 0, AF_INET, bin);
		else if (inet_pton(AF_INET6, tmp, bin) == 1)
			add_addr(&res->dests, &res->count, &cap, tmp, 0, AF_INET6, bin);
		else {
			fail(res, 550, "5.1.2", "bad address literal");
			return -1;
		}
		return 0;
	}
	if (dns_sync_channel(server, DNS_TIMEOUT_MS, DNS_TRIES, &ch, err, sizeof(err)) < 0) {
		fail(res, 451, "4.4.3", "%s", err);
		return -1;
	}
	if (use_mx) {
		struct dns_answer q;
		struct ares_mx_reply *mx = NULL;

		dns_sync_query(ch, name, DNS_TYPE_MX, &q);
		if (q.status == ARES_SUCCESS &&
		    ares_parse_mx_reply(q.buf, q.len, &mx) == ARES_SUCCESS && mx != NULL) {
			struct ares_mx_reply *sorted[OUTBOUND_MAX_MX];
			size_t nmx = 0;
			int last = ARES_ENODATA;

			for (struct ares_mx_reply *m = mx; m != NULL && nmx < OUTBOUND_MAX_MX; m = m->next)
				sorted[nmx++] = m;
			/* Shuffle, then a stable sort keeps equal preferences
			 * in random order (RFC 5321 5.1). */
			for (size_t i = nmx; i > 1; i--) {
				unsigned r = 0;
				size_t k;
				struct ares_mx_reply *t;

				if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
					r = (unsigned)i;
				k = r % i;
				t = sorted[i - 1];
				sorted[i - 1] = sorted[k];
				sorted[k] = t;
			}
			for (size_t i = 1; i < nmx; i++) {
				for (size_t k = i; k > 0 && mx_cmp(&sorted[k - 1], &sorted[k]) > 0; k--) {
					struct ares_mx_reply *t = sorted[k];

					sorted[k] = sorted[k - 1];
					sorted[k - 1] = t;
				}
			}
			if (nmx == 1 && (sorted[0]->host[0] == '\0' || strcmp(sorted[0]->host, ".") == 0)) {
				fail(res, 556, "5.1.10", "domain %s accepts no mail (null MX)", name);
				ares_free_data(mx);
				free(q.buf);
				ares_destroy(ch);
				return -1;
			}
			for (size_t i = 0; i < nmx; i++) {
				if (sorted[i]->host[0] == '\0')
					continue;
				last = host_addrs(ch, sorted[i]->host, sorted[i]->priority, &res->dests,
						  &res->count, &cap);
			}
			ares_free_data(mx);
			free(q.buf);
			ares_destroy(ch);
			if (res->count == 0) {
				fail(res, 451, "4.4.3", "no address for the mail exchangers of %s", name);
				(void)last;
				return -1;
			}
			return 0;
		}
		free(q.buf);
		if (q.status == ARES_ENOTFOUND) {
			ares_destroy(ch);
			fail(res, 550, "5.1.2", "domain %s not found in DNS", name);
			return -1;
		}
		if (q.status != ARES_SUCCESS && q.status != ARES_ENODATA) {
			ares_destroy(ch);
			snprintf(err, sizeof(err), "MX look-up of %s failed: %s", name,
				 ares_strerror(q.status));
			fail(res, 451, "4.4.3", "%s", err);
			return -1;
		}
		/* No MX: the domain itself (RFC 5321 5.1 implicit MX). */
	}
	{
		int st = host_addrs(ch, name, 0, &res->dests, &res->count, &cap);

		ares_destroy(ch);
		if (res->count > 0)
			return 0;
		if (use_mx && (st == ARES_ENOTFOUND || st == ARES_ENODATA)) {
			fail(res, 550, "5.1.2", "host or domain %s not found in DNS", name);
			return -1;
		}
		snprintf(err, sizeof(err), "address look-up of %s failed: %s", name,
			 st == ARES_ENODATA ? "no address" : ares_strerror(st));
		fail(res, 451, "4.4.3", "%s", err);
		return -1;
	}
}

void ob_resolve_free(struct ob_resolve *res)
{
	free(res->dests);
	res->dests = NULL;
	res->count = 0;
}
