/*
 * Listeners and client connections, shared by every protocol front end.
 *
 * The engine binds one listening socket per configured address of each
 * enabled service that has a handler (a service without a handler is not
 * implemented yet, and is not opened).  Connections are accepted on the
 * main thread, checked against the connection limits (total, per client
 * IP), then handed to one event-loop thread for life, where the service's
 * handler takes over the bufferevent.
 *
 * Ownership: struct conn belongs to its loop thread; only that thread
 * touches it, and net_conn_close() frees it.  Other threads refer to a
 * connection by its id (net_conn_post()).
 */
#ifndef PETREL_NET_H
#define PETREL_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "core/cfg.h"
#include "core/evloop.h"

struct tls_ctx;
struct conn;

/* What a protocol front end gives the engine for one service. */
struct service_handler {
	enum service_id service;
	/* Called on the connection's loop with the bufferevent ready (for
	 * implicit TLS the handshake runs inside it).  The handler installs
	 * its callbacks and stores its session in conn->session. */
	void (*start)(struct conn *conn);
	/* Called on the connection's loop when the engine stops: finish what
	 * is in flight, say goodbye, then net_conn_close().  NULL: closed at
	 * once. */
	void (*shutdown)(struct conn *conn);
	/* Called from net_conn_close() before the bufferevent is freed, to
	 * free conn->session.  May be NULL. */
	void (*free_session)(struct conn *conn);
	/* Written (plain-text services only) before closing a connection that
	 * the limits refuse, e.g. "421 4.7.0 Too many connections\r\n". */
	const char *refuse_line;
};

struct conn {
	uint64_t id;
	enum service_id service;
	const struct service_handler *handler;
	struct event_base *base;
	struct bufferevent *bev;      /* owned; closes the socket */
	struct cfg *cfg;              /* snapshot reference taken at accept */
	struct tls_ctx *tls;          /* reference, for STARTTLS or implicit TLS */
	char peer_ip[INET6_ADDRSTRLEN];
	uint16_t peer_port;
	char local_ip[INET6_ADDRSTRLEN];
	uint16_t local_port;
	bool peer_is_loopback;        /* a secure channel for logins, never a relay right */
	bool tls_active;
	bool authenticated;           /* set by the protocol: pre-auth sessions are closed first when full */
	time_t started;
	void *session;                /* the protocol's state, freed by handler->free_session */
	evutil_socket_t fd;
	/* private to net.c and net_finish.c */
	struct net *net;
	struct conn *prev, *next;     /* the registry, oldest first */
	bool finishing;               /* net_conn_finish() owns the bufferevent */
	unsigned linger_seconds;
	unsigned finish_polls;
	time_t linger_until;          /* 0 until the write side is shut */
	struct event *finish_timer;
};

struct net;

/* Creates the network layer over an event-loop pool; main_base runs the
 * listeners.  Nothing is bound yet. */
struct net *net_new(struct event_base *main_base, struct evloop_pool *loops);
void net_free(struct net **net);

/* Sets the loops connections are placed on (before net_start). */
void net_set_loops(struct net *net, struct evloop_pool *loops);

/* Registers the handler of a service (before net_bind). */
void net_register(struct net *net, const struct service_handler *handler);
bool net_has_handler(const struct net *net, enum service_id service);

/* Binds every listener of cfg's enabled services that have handlers.
 * Returns 0, or -1 with *error_r (caller frees) naming the service,
 * address and port, and what to do; nothing stays bound on failure. */
int net_bind(struct net *net, const struct cfg *cfg, char **error_r) PETREL_MUST_CHECK;
/* Starts accepting (after the privilege drop and daemonizing). */
void net_start(struct net *net);
/* Applies a new configuration: limits at once; listeners that appear are
 * bound (failures are returned as warnings in *warnings_r, caller frees,
 * NULL if none), listeners that disappear are closed. */
void net_reconfigure(struct net *net, const struct cfg *cfg, char **warnings_r);
/* Stops accepting and asks every connection to finish (handler->shutdown). */
void net_stop_accepting(struct net *net);
void net_shutdown_connections(struct net *net);
/* Closes every remaining connection at once (after the shutdown timeout). */
void net_close_all(struct net *net);
unsigned net_connection_count(struct net *net);

/* One line per listening socket: "smtp *:25 (STARTTLS)".  Array of
 * objects {service, address, port, tls, state} for status --json. */
json_t *net_status_json(struct net *net, const struct cfg *cfg);

/* The live connection with this id, or NULL when it has closed (ids are
 * never reused).  Call it only on that connection's loop thread: the
 * result is then valid until the current callback returns.  This is how
 * the completion of asynchronous work finds its session (STYLE.md §3). */
struct conn *net_conn_find(struct net *net, uint64_t id);

/* Closes and frees a connection (on its loop).  Sets *conn to NULL. */
void net_conn_close(struct conn **conn);
/* Ends a connection whose last reply is in the top bufferevent's output
 * buffer or already gone from it: once the layers below (TLS, COMPRESS)
 * have written it too (polled every 20 ms, for 2 s at most), shuts the
 * write side and, for linger_seconds, reads and drops what the client
 * still sends, then closes.  Closing at once after the last reply would
 * let the kernel answer bytes still in flight from the client with a RST
 * that destroys that reply (Apache's lingering close).  linger_seconds 0
 * closes as soon as the reply has left.  Takes over the bufferevent's
 * callbacks: the protocol must have freed its own timers and must not
 * write again; the engine's shutdown shortens the linger instead of
 * calling the service's shutdown handler. */
void net_conn_finish(struct conn *conn, unsigned linger_seconds);
/* For net.c at engine shutdown: close a finishing connection as soon as
 * its last reply has left. */
void net_conn_finish_hurry(struct conn *conn);
/* Why a bufferevent reported BEV_EVENT_ERROR, for a log line: writes
 * OpenSSL's or the socket's error text to text and returns "TLS" or
 * "socket".  Empties the bufferevent's OpenSSL error queue. */
const char *net_bev_error(struct bufferevent *bev, char *text, size_t len);
/* Marks the connection authenticated (it will no longer be dropped to
 * make room for new connections). */
void net_conn_set_authenticated(struct conn *conn);
/* Starts TLS on a plain connection (STARTTLS).  The caller has sent its
 * "go ahead" reply; this refuses (-1, *error_r static) when the client
 * already sent more bytes after the command: such bytes were written
 * before the handshake and must not be read as if they came over TLS
 * (CVE-2011-0411).  On success conn->bev is the TLS bufferevent and the
 * caller must reset its protocol state and re-install its callbacks. */
int net_conn_starttls(struct conn *conn, const char **error_r) PETREL_MUST_CHECK;

/* Limits, exposed for unit tests: a table of connection counts per IP. */
struct ip_counter;
struct ip_counter *ip_counter_new(void);
void ip_counter_free(struct ip_counter **ctr);
/* Increments ip's count unless it is at max; returns the new count, or 0
 * when refused. */
unsigned ip_counter_acquire(struct ip_counter *ctr, const char *ip, unsigned max);
void ip_counter_release(struct ip_counter *ctr, const char *ip);
unsigned ip_counter_get(struct ip_counter *ctr, const char *ip);

#endif
