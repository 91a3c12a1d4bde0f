/*
 * smtp/check-sender-domain: does the envelope sender's domain exist in the
 * DNS (an MX, A or AAAA record)?  Through c-ares, against the same DNS
 * servers as delivery (queue/dns-server), synchronously: it runs on the
 * worker pool, one channel per check, each query bounded by c-ares' own
 * timeout and tries (src/outbound/dns_sync.c).
 */
#include "smtp/smtp_private.h"
#include "outbound/dns_sync.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define DNS_TIMEOUT_MS 2000
#define DNS_TRIES 2

/* A query's status, ARES_ENODATA when the answer section is empty; and
 * whether the answer is a null MX (RFC 7505: a single "0 ."). */
static int check_query(ares_channel ch, const char *name, int type, bool *null_mx_r)
{
	struct dns_answer a;
	int status;

	dns_sync_query(ch, name, type, &a);
	status = a.status;
	if (status == ARES_SUCCESS && a.len >= 12 && (a.buf[6] << 8 | a.buf[7]) == 0)
		status = ARES_ENODATA;      /* ANCOUNT 0 */
	if (status == ARES_SUCCESS && null_mx_r != NULL) {
		struct ares_mx_reply *mx = NULL;

		if (ares_parse_mx_reply(a.buf, a.len, &mx) == ARES_SUCCESS) {
			if (mx != NULL && mx->next == NULL && mx->host != NULL &&
			    (mx->host[0] == '\0' || strcmp(mx->host, ".") == 0))
				*null_mx_r = true;
			ares_free_data(mx);
		}
	}
	free(a.buf);
	return status;
}

static bool definite_no(int status)
{
	return status == ARES_ENOTFOUND || status == ARES_ENODATA;
}

int smtp_dns_domain_check(const char *server, const char *domain)
{
	ares_channel ch;
	char err[256];
	bool null_mx = false;
	int mx, a, aaaa;

	if (dns_sync_channel(server, DNS_TIMEOUT_MS, DNS_TRIES, &ch, err, sizeof(err)) < 0)
		return -1;
	mx = check_query(ch, domain, DNS_TYPE_MX, &null_mx);
	if (mx == ARES_SUCCESS) {
		ares_destroy(ch);
		return null_mx ? 0 : 1;
	}
	a = check_query(ch, domain, DNS_TYPE_A, NULL);
	aaaa = check_query(ch, domain, DNS_TYPE_AAAA, NULL);
	ares_destroy(ch);
	if (a == ARES_SUCCESS || aaaa == ARES_SUCCESS)
		return 1;
	if (definite_no(mx) && definite_no(a) && definite_no(aaaa))
		return 0;
	return -1;
}
