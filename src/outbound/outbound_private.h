/*
 * Internals of the outbound client: name resolution (outbound_dns.c) and
 * the SMTP session (outbound_session.c).
 */
#ifndef PETREL_OUTBOUND_PRIVATE_H
#define PETREL_OUTBOUND_PRIVATE_H

#include <netinet/in.h>

#include "outbound/outbound.h"

/* One address to try, in order. */
struct ob_dest {
	char host[256];          /* the exchanger's name (TLS name check, logs) */
	int pref;
	int family;              /* AF_INET or AF_INET6 */
	unsigned char addr[16];
};

struct ob_resolve {
	struct ob_dest *dests;
	size_t count;
	/* on failure: */
	int code;                /* 4xx: DNS trouble; 5xx: no such domain, null MX */
	char status[16];
	char text[300];
};

/* Resolves name: with use_mx its MX records (then its A/AAAA), else the
 * host's A/AAAA; "[address]" literals directly.  Returns 0 with at least
 * one destination, or -1 with res->code/status/text.  Free with
 * ob_resolve_free either way. */
int ob_resolve(const char *server, const char *name, bool use_mx, struct ob_resolve *res);
void ob_resolve_free(struct ob_resolve *res);

/* Loop checks (outbound_parse.c, pure).  True when a greeting's text
 * ("mx.example.net ESMTP ...") starts with our host name me: we are
 * talking to ourselves. */
bool ob_greets_as_me(const char *text, const char *me);
/* Drops the destinations not strictly preferred to our own host name me
 * among the exchangers; -1 when we are the best one (the mail would loop),
 * else 0 (res unchanged when me is not an exchanger). */
int ob_drop_self(struct ob_resolve *res, const char *me);

#endif
