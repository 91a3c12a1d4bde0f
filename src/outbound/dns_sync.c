/*
 * Synchronous c-ares queries (see dns_sync.h).  Used by outbound delivery
 * (MX and address look-ups) and by SMTP's sender-domain check.
 */
#include "outbound/dns_sync.h"

#include "core/log.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;

static void ares_global_init(void)
{
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
		panic("c-ares: library init failed");
}

struct pending {
	struct dns_answer *ans;
	bool done;
};

static void query_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct pending *p = arg;

	(void)timeouts;
	p->done = true;
	p->ans->status = status;
	if (status == ARES_SUCCESS && abuf != NULL && alen > 0) {
		p->ans->buf = xmalloc((size_t)alen);
		memcpy(p->ans->buf, abuf, (size_t)alen);
		p->ans->len = alen;
	}
}

/* The poll() set for the channel's sockets; 0 when nothing is pending. */
static int channel_pollfds(ares_channel ch, struct pollfd *pfd)
{
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	int bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM), n = 0;

	for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
		short ev = 0;

		/* Not ARES_GETSOCK_READABLE/WRITABLE: they shift a signed 1
		 * into the sign bit for i == 15 (undefined behaviour). */
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
	return n;
}

static void run_channel(ares_channel ch)
{
	for (;;) {
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		struct timeval tv, *tvp;
		int n = channel_pollfds(ch, pfd), ms;

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
		/* Timeouts are handled by a call with no sockets. */
		ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	}
}

int dns_sync_channel(const char *server, int timeout_ms, int tries, ares_channel *ch_r,
		     char *err, size_t errlen)
{
	struct ares_options opts;
	int rc;

	pthread_once(&ares_once, ares_global_init);
	memset(&opts, 0, sizeof(opts));
	opts.timeout = timeout_ms;
	opts.tries = tries;
	rc = ares_init_options(ch_r, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "DNS resolver: %s", ares_strerror(rc));
		return -1;
	}
	if (server != NULL && strcmp(server, "system") != 0) {
		rc = ares_set_servers_ports_csv(*ch_r, server);
		if (rc != ARES_SUCCESS) {
			snprintf(err, errlen, "DNS server setting '%s': %s", server, ares_strerror(rc));
			ares_destroy(*ch_r);
			return -1;
		}
	}
	return 0;
}

void dns_sync_query(ares_channel ch, const char *name, int type, struct dns_answer *ans)
{
	struct pending p = { .ans = ans };

	memset(ans, 0, sizeof(*ans));
	ares_query(ch, name, 1 /* C_IN */, type, query_cb, &p);
	run_channel(ch);
	if (!p.done)
		ans->status = ARES_ETIMEOUT;
}
