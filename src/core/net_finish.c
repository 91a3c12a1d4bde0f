/*
 * The end of a connection after its last reply (net_conn_finish): wait
 * until the layers under the top bufferevent have written that reply,
 * shut the write side, then read and drop what the client still sends for
 * a short while before closing.  One implementation for every service;
 * also the text of a bufferevent's error for the services' close logs.
 */
#include "core/net.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>

/* How long the layers below get to write the last reply. */
#define FINISH_POLL_MS 20
#define FINISH_POLLS 100

/* Bytes still waiting in the layers under the top bufferevent (TLS
 * filter, COMPRESS filter, socket). */
static size_t lower_pending(struct bufferevent *bev)
{
	size_t n = 0;

	for (struct bufferevent *b = bufferevent_get_underlying(bev); b != NULL;
	     b = bufferevent_get_underlying(b))
		n += evbuffer_get_length(bufferevent_get_output(b));
	return n;
}

static void finish_close(struct conn *c)
{
	net_conn_close(&c);
}

static void linger_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	evbuffer_drain(in, evbuffer_get_length(in));
	/* A client that keeps sending does not keep us here. */
	if (time(NULL) >= c->linger_until)
		finish_close(c);
}

/* EOF, an error or the read timeout: the normal end. */
static void finish_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	finish_close(arg);
}

static void linger_start(struct conn *c)
{
	struct bufferevent *low = c->bev, *u;
	struct timeval tv = { (time_t)c->linger_seconds, 0 };
	evutil_socket_t fd;

	if (c->linger_seconds == 0) {
		finish_close(c);
		return;
	}
	while ((u = bufferevent_get_underlying(low)) != NULL)
		low = u;
	fd = bufferevent_getfd(low);
	if (fd < 0 || shutdown(fd, SHUT_WR) < 0) {
		finish_close(c);
		return;
	}
	c->linger_until = time(NULL) + (time_t)c->linger_seconds;
	bufferevent_setcb(c->bev, linger_read_cb, NULL, finish_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
	bufferevent_set_timeouts(c->bev, &tv, NULL);
	bufferevent_disable(c->bev, EV_WRITE);
	bufferevent_enable(c->bev, EV_READ);
	evbuffer_drain(bufferevent_get_input(c->bev),
		       evbuffer_get_length(bufferevent_get_input(c->bev)));
}

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct timeval tv = { 0, FINISH_POLL_MS * 1000 };

	(void)fd;
	(void)what;
	if (lower_pending(c->bev) > 0 && c->finish_polls < FINISH_POLLS) {
		c->finish_polls++;
		evtimer_add(c->finish_timer, &tv);
		return;
	}
	linger_start(c);
}

void net_conn_finish(struct conn *c, unsigned linger_seconds)
{
	struct timeval now = { 0, 0 };

	if (c->finishing)
		return;
	c->finishing = true;
	c->linger_seconds = linger_seconds;
	/* Nothing more is read or written for the protocol. */
	bufferevent_setcb(c->bev, NULL, NULL, finish_event_cb, c);
	bufferevent_disable(c->bev, EV_READ);
	if (lower_pending(c->bev) == 0) {
		linger_start(c);
		return;
	}
	c->finish_timer = evtimer_new(c->base, poll_cb, c);
	if (c->finish_timer == NULL) {
		finish_close(c);
		return;
	}
	evtimer_add(c->finish_timer, &now);
}

void net_conn_finish_hurry(struct conn *c)
{
	c->linger_seconds = 0;
	if (c->linger_until != 0)
		finish_close(c);
}

const char *net_bev_error(struct bufferevent *bev, char *text, size_t len)
{
	unsigned long err = bufferevent_get_openssl_error(bev);

	if (err != 0)
		ERR_error_string_n(err, text, len);
	else
		snprintf(text, len, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	while (bufferevent_get_openssl_error(bev) != 0)
		;
	return err != 0 ? "TLS" : "socket";
}
