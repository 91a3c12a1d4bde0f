/*
 * Synchronous DNS queries through c-ares, for code that already runs off
 * the event loop (delivery threads, the worker pool): one channel per
 * look-up, driven by poll() until every query is answered or timed out.
 */
#ifndef PETREL_OUTBOUND_DNS_SYNC_H
#define PETREL_OUTBOUND_DNS_SYNC_H

#include <ares.h>
#include <stddef.h>

enum {
	DNS_TYPE_A = 1,
	DNS_TYPE_MX = 15,
	DNS_TYPE_AAAA = 28,
};

/* An answer: status is an ARES_* code; buf (malloc'ed, NULL unless
 * status is ARES_SUCCESS) is the raw DNS message for ares_parse_*. */
struct dns_answer {
	int status;
	unsigned char *buf;
	int len;
};

/* A channel asking `server` ("system" or NULL: /etc/resolv.conf; else
 * c-ares' "host[:port],..." list), each query bounded by timeout_ms and
 * tries.  On failure fills err and returns -1. */
int dns_sync_channel(const char *server, int timeout_ms, int tries, ares_channel *ch_r,
		     char *err, size_t errlen);

/* Runs one IN-class query of `type` for name to its end.  The caller
 * frees ans->buf. */
void dns_sync_query(ares_channel ch, const char *name, int type, struct dns_answer *ans);

#endif
