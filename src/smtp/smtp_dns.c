/*
 * smtp/check-sender-domain: does the envelope sender's domain exist in the
 * DNS (an MX, A or AAAA record)?  Through c-ares, against the same DNS
 * servers as delivery (queue/dns-server), synchronously: it runs on the
 * worker pool, one channel per check, each query bounded by c-ares' own
 * timeout and tries, as src/outbound/outbound_dns.c does.
 */
#include "smtp/smtp_private.h"

#include <ares.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DNS_TIMEOUT_MS 2000
#define DNS_TRIES 2
#define T_A 1
#define T_MX 15
#define T_AAAA 28

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;

static void ares_global_init(void)
{
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
		panic("c-ares: library init failed");
}

struct dns_query {
	int status;
	bool done;
	bool null_mx;             /* RFC 7505: "0 ." */
	int answers;
};

static void query_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;

	q->status = status;
	q->done = true;
	if (status != ARES_SUCCESS || abuf == NULL || alen <= 0)
		return;
	q->answers = abuf[6] << 8 | abuf[7];   /* ANCOUNT */
	if (q->answers == 0) {
		q->status = ARES_ENODATA;
		return;
	}
	{
		struct ares_mx_reply *mx = NULL;

		if (ares_parse_mx_reply(abuf, alen, &mx) == ARES_SUCCESS) {
			if (mx != NULL && mx->next == NULL && mx->host != NULL &&
			    (mx->host[0] == '\0' || strcmp(mx->host, ".") == 0))
				q->null_mx = true;
			ares_free_data(mx);
		}
	}
}

static void run_channel(ares_channel ch)
{
	for (;;) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		struct timeval tv, *tvp;
		int bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM), n = 0, ms;

		for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;

			/* Not ARES_GETSOCK_WRITABLE: it shifts a signed 1 into the
			 * sign bit for i == 15 (undefined behaviour). */
			if ((unsigned)bits & (1u << i))
				ev |= POLLIN;
			if ((unsigned)bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (ev == 0)
				continue;
			pfd[n].fd = socks[i];
			pfd[n].events = ev;
			pfd[n].revents = 0;
			n++;
		}
		if (n == 0)
			return;
		tvp = ares_timeout(ch, NULL, &tv);
		ms = tvp != NULL ? (int)(tvp->tv_sec * 1000 + tvp->tv_usec / 1000) : 1000;
		if (poll(pfd, (nfds_t)n, ms) < 0 && errno != EINTR)
			return;
		for (int i = 0; i < n; i++) {
			ares_socket_t r = (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) ? pfd[i].fd
											 : ARES_SOCKET_BAD;
			ares_socket_t w = (pfd[i].revents & POLLOUT) ? pfd[i].fd : ARES_SOCKET_BAD;

			if (r != ARES_SOCKET_BAD || w != ARES_SOCKET_BAD)
				ares_process_fd(ch, r, w);
		}
		ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	}
}

static void query(ares_channel ch, const char *name, int type, struct dns_query *q)
{
	memset(q, 0, sizeof(*q));
	ares_query(ch, name, 1 /* C_IN */, type, query_cb, q);
	run_channel(ch);
	if (!q->done)
		q->status = ARES_ETIMEOUT;
}

static bool definite_no(int status)
{
	return status == ARES_ENOTFOUND || status == ARES_ENODATA;
}

int smtp_dns_domain_check(const char *server, const char *domain)
{
	struct ares_options opts;
	ares_channel ch;
	struct dns_query mx, a, aaaa;
	int ret;

	pthread_once(&ares_once, ares_global_init);
	memset(&opts, 0, sizeof(opts));
	opts.timeout = DNS_TIMEOUT_MS;
	opts.tries = DNS_TRIES;
	if (ares_init_options(&ch, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES) != ARES_SUCCESS)
		return -1;
	if (server != NULL && strcmp(server, "system") != 0 &&
	    ares_set_servers_ports_csv(ch, server) != ARES_SUCCESS) {
		ares_destroy(ch);
		return -1;
	}
	query(ch, domain, T_MX, &mx);
	if (mx.status == ARES_SUCCESS) {
		ares_destroy(ch);
		return mx.null_mx ? 0 : 1;
	}
	query(ch, domain, T_A, &a);
	query(ch, domain, T_AAAA, &aaaa);
	ares_destroy(ch);
	if (a.status == ARES_SUCCESS || aaaa.status == ARES_SUCCESS)
		ret = 1;
	else if (definite_no(mx.status) && definite_no(a.status) && definite_no(aaaa.status))
		ret = 0;
	else
		ret = -1;
	return ret;
}
