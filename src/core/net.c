/*
 * Listeners, connection limits and the connection registry; see net.h.
 *
 * Accepting runs on the main thread: it is cheap (limits, one allocation)
 * and keeps the limit bookkeeping in one place.  Everything after that
 * runs on the connection's loop thread.  The registry (a list, oldest
 * first) and the counters are shared, under net->lock.
 */
#include "core/net.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/listener.h>

#include "core/log.h"
#include "core/str.h"
#include "core/tls.h"

#define NET_LISTEN_BACKLOG 511
#define IP_COUNTER_BUCKETS 1024

/* ---- per-IP counters ---- */

struct ip_count {
	struct ip_count *next;
	unsigned count;
	char ip[INET6_ADDRSTRLEN];
};

struct ip_counter {
	struct ip_count *buckets[IP_COUNTER_BUCKETS];
};

static unsigned ip_hash(const char *ip)
{
	unsigned h = 2166136261u;

	for (; *ip != '\0'; ip++)
		h = (h ^ (unsigned char)*ip) * 16777619u;
	return h % IP_COUNTER_BUCKETS;
}

struct ip_counter *ip_counter_new(void)
{
	return xcalloc(1, sizeof(struct ip_counter));
}

void ip_counter_free(struct ip_counter **ctrp)
{
	struct ip_counter *ctr = *ctrp;

	if (ctr == NULL)
		return;
	*ctrp = NULL;
	for (unsigned i = 0; i < IP_COUNTER_BUCKETS; i++) {
		while (ctr->buckets[i] != NULL) {
			struct ip_count *c = ctr->buckets[i];

			ctr->buckets[i] = c->next;
			free(c);
		}
	}
	free(ctr);
}

static struct ip_count **ip_counter_find(struct ip_counter *ctr, const char *ip)
{
	struct ip_count **pp = &ctr->buckets[ip_hash(ip)];

	while (*pp != NULL && strcmp((*pp)->ip, ip) != 0)
		pp = &(*pp)->next;
	return pp;
}

unsigned ip_counter_acquire(struct ip_counter *ctr, const char *ip, unsigned max)
{
	struct ip_count **pp = ip_counter_find(ctr, ip);

	if (*pp == NULL) {
		if (max == 0)
			return 0;
		*pp = xcalloc(1, sizeof(**pp));
		if (str_copy((*pp)->ip, ip, sizeof((*pp)->ip)) < 0)
			panic("ip_counter_acquire: address too long");
	}
	if ((*pp)->count >= max)
		return 0;
	return ++(*pp)->count;
}

void ip_counter_release(struct ip_counter *ctr, const char *ip)
{
	struct ip_count **pp = ip_counter_find(ctr, ip);
	struct ip_count *c = *pp;

	if (c == NULL || c->count == 0)
		panic("ip_counter_release: %s not counted", ip);
	if (--c->count == 0) {
		*pp = c->next;
		free(c);
	}
}

unsigned ip_counter_get(struct ip_counter *ctr, const char *ip)
{
	struct ip_count *c = *ip_counter_find(ctr, ip);

	return c == NULL ? 0 : c->count;
}

/* ---- listeners ---- */

struct listener {
	struct listener *next;
	struct net *net;
	enum service_id service;
	char *address;               /* as configured: "*" or a literal */
	uint16_t port;               /* effective (offset applied) */
	struct evconnlistener *evl;  /* owns the socket */
	bool seen;                   /* scratch for net_reconfigure */
};

struct net {
	struct event_base *main_base;
	struct evloop_pool *loops;
	const struct service_handler *handlers[SERVICE_COUNT];
	struct listener *listeners;
	bool accepting;

	pthread_mutex_t lock;        /* protects everything below */
	struct conn *oldest, *newest;
	unsigned conn_count;
	struct ip_counter *per_ip;
	unsigned max_conns, max_per_ip;
	int64_t preauth_timeout;
	uint64_t next_id;
};

struct net *net_new(struct event_base *main_base, struct evloop_pool *loops)
{
	struct net *net = xcalloc(1, sizeof(*net));

	net->main_base = main_base;
	net->loops = loops;
	pthread_mutex_init(&net->lock, NULL);
	net->per_ip = ip_counter_new();
	net->next_id = 1;
	net->max_conns = 2000;
	net->max_per_ip = 50;
	net->preauth_timeout = 60;
	return net;
}

static void listener_free(struct listener *l)
{
	if (l->evl != NULL)
		evconnlistener_free(l->evl);
	free(l->address);
	free(l);
}

void net_free(struct net **netp)
{
	struct net *net = *netp;

	if (net == NULL)
		return;
	*netp = NULL;
	while (net->listeners != NULL) {
		struct listener *l = net->listeners;

		net->listeners = l->next;
		listener_free(l);
	}
	ip_counter_free(&net->per_ip);
	pthread_mutex_destroy(&net->lock);
	free(net);
}

void net_set_loops(struct net *net, struct evloop_pool *loops)
{
	net->loops = loops;
}

void net_register(struct net *net, const struct service_handler *handler)
{
	net->handlers[handler->service] = handler;
}

bool net_has_handler(const struct net *net, enum service_id service)
{
	return net->handlers[service] != NULL;
}

static void net_apply_limits(struct net *net, const struct cfg *cfg)
{
	pthread_mutex_lock(&net->lock);
	net->max_conns = (unsigned)cfg->s.limits_max_connections;
	net->max_per_ip = (unsigned)cfg->s.limits_max_connections_per_ip;
	net->preauth_timeout = cfg->s.limits_preauth_timeout;
	pthread_mutex_unlock(&net->lock);
}

/* Formats the peer of sa into ip (v4-mapped IPv6 shown as plain IPv4). */
static void sockaddr_to_ip(const struct sockaddr *sa, char ip[INET6_ADDRSTRLEN], uint16_t *port_r)
{
	ip[0] = '\0';
	*port_r = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, INET6_ADDRSTRLEN);
		*port_r = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip, INET6_ADDRSTRLEN);
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, ip, INET6_ADDRSTRLEN);
		*port_r = ntohs(in6->sin6_port);
	}
}

static bool ip_is_loopback(const char *ip)
{
	return str_has_prefix(ip, "127.") || strcmp(ip, "::1") == 0;
}

/* Creates a bound, listening, non-blocking socket.  Returns the fd or -1
 * with errno set. */
static evutil_socket_t listen_socket(const char *address, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	evutil_socket_t fd;
	int family, one = 1, zero = 0;

	memset(&ss, 0, sizeof(ss));
	if (strcmp(address, "*") == 0 || strchr(address, ':') != NULL) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		family = AF_INET6;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		if (strcmp(address, "*") == 0)
			in6->sin6_addr = in6addr_any;
		else if (inet_pton(AF_INET6, address, &in6->sin6_addr) != 1)
			return errno = EINVAL, -1;
		len = sizeof(*in6);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		family = AF_INET;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		if (inet_pton(AF_INET, address, &in->sin_addr) != 1)
			return errno = EINVAL, -1;
		len = sizeof(*in);
	}
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && family == AF_INET6 && strcmp(address, "*") == 0 && errno == EAFNOSUPPORT) {
		/* No IPv6 on this host: "*" means all IPv4 addresses. */
		return listen_socket("0.0.0.0", port);
	}
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6 && strcmp(address, "*") == 0)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, NET_LISTEN_BACKLOG) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static void net_accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
			  struct sockaddr *sa, int socklen, void *arg);

static const char *bind_advice(int err)
{
	switch (err) {
	case EADDRINUSE:
		return "another program (perhaps another mail server) uses this port: stop it, "
		       "or change the port or disable the service in mailserver.cfg <services>";
	case EACCES:
		return "ports below 1024 need root: start petreld as root (it drops privileges "
		       "after binding), or set <server><port-offset> in mailserver.cfg";
	case EADDRNOTAVAIL:
		return "this machine has no such address: fix <listen address=...> in mailserver.cfg";
	default:
		return "check <services> in mailserver.cfg";
	}
}

static int listener_open(struct net *net, enum service_id id, const char *address,
			 uint16_t port, struct listener **l_r, char **error_r)
{
	struct listener *l;
	evutil_socket_t fd = listen_socket(address, port);

	if (fd < 0) {
		int err = errno;

		*error_r = xasprintf("%s: cannot listen on %s:%u: %s; %s", service_info(id)->name,
				     address, port, strerror(err), bind_advice(err));
		return -1;
	}
	l = xcalloc(1, sizeof(*l));
	l->net = net;
	l->service = id;
	l->address = xstrdup(address);
	l->port = port;
	l->evl = evconnlistener_new(net->main_base, net_accept_cb, l,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED,
				    -1, fd);
	if (l->evl == NULL) {
		close(fd);
		free(l->address);
		free(l);
		*error_r = xasprintf("%s: cannot create listener on %s:%u", service_info(id)->name,
				     address, port);
		return -1;
	}
	*l_r = l;
	return 0;
}

static struct listener *listener_find(struct net *net, enum service_id id, const char *address,
				      uint16_t port)
{
	for (struct listener *l = net->listeners; l != NULL; l = l->next) {
		if (l->service == id && l->port == port && strcmp(l->address, address) == 0)
			return l;
	}
	return NULL;
}

int net_bind(struct net *net, const struct cfg *cfg, char **error_r)
{
	net_apply_limits(net, cfg);
	for (int id = 0; id < SERVICE_COUNT; id++) {
		const struct service_config *sc = &cfg->services[id];

		if (!sc->enabled || net->handlers[id] == NULL)
			continue;
		for (size_t i = 0; i < sc->listen_count; i++) {
			struct listener *l;
			uint16_t port = cfg_listen_port(cfg, &sc->listen[i]);

			if (listener_open(net, (enum service_id)id, sc->listen[i].address, port,
					  &l, error_r) < 0) {
				while (net->listeners != NULL) {
					l = net->listeners;
					net->listeners = l->next;
					listener_free(l);
				}
				return -1;
			}
			l->next = net->listeners;
			net->listeners = l;
		}
	}
	return 0;
}

void net_start(struct net *net)
{
	net->accepting = true;
	for (struct listener *l = net->listeners; l != NULL; l = l->next)
		evconnlistener_enable(l->evl);
}

void net_reconfigure(struct net *net, const struct cfg *cfg, char **warnings_r)
{
	struct buf warnings;

	buf_init(&warnings, 64 * 1024);
	net_apply_limits(net, cfg);
	for (struct listener *l = net->listeners; l != NULL; l = l->next)
		l->seen = false;
	for (int id = 0; id < SERVICE_COUNT; id++) {
		const struct service_config *sc = &cfg->services[id];

		if (!sc->enabled || net->handlers[id] == NULL)
			continue;
		for (size_t i = 0; i < sc->listen_count; i++) {
			uint16_t port = cfg_listen_port(cfg, &sc->listen[i]);
			struct listener *l = listener_find(net, (enum service_id)id,
							   sc->listen[i].address, port);
			char *error;

			if (l != NULL) {
				l->seen = true;
				continue;
			}
			if (listener_open(net, (enum service_id)id, sc->listen[i].address, port,
					  &l, &error) < 0) {
				if (buf_printf(&warnings, "%s%s", warnings.len > 0 ? "; " : "", error) < 0) {
					/* warnings are capped; the log has the rest */
				}
				log_warn("net", "reload: %s", error);
				free(error);
				continue;
			}
			l->seen = true;
			l->next = net->listeners;
			net->listeners = l;
			if (net->accepting)
				evconnlistener_enable(l->evl);
			log_info("net", "reload: now listening service=%s address=%s port=%u",
				 service_info(l->service)->name, l->address, l->port);
		}
	}
	for (struct listener **pp = &net->listeners; *pp != NULL;) {
		struct listener *l = *pp;

		if (l->seen) {
			pp = &l->next;
			continue;
		}
		log_info("net", "reload: no longer listening service=%s address=%s port=%u",
			 service_info(l->service)->name, l->address, l->port);
		*pp = l->next;
		listener_free(l);
	}
	*warnings_r = warnings.len > 0 ? buf_steal(&warnings) : NULL;
	buf_deinit(&warnings);
}

void net_stop_accepting(struct net *net)
{
	net->accepting = false;
	while (net->listeners != NULL) {
		struct listener *l = net->listeners;

		net->listeners = l->next;
		listener_free(l);
	}
}

/* ---- connections ---- */

static void conn_attach(void *arg);
static void conn_kick(void *arg);

/* Writes the service's refusal line without blocking, then closes. */
static void refuse_connection(struct net *net, enum service_id id, evutil_socket_t fd)
{
	const struct service_handler *h = net->handlers[id];

	if (h->refuse_line != NULL && service_info(id)->tls != SERVICE_TLS_IMPLICIT) {
		ssize_t n = send(fd, h->refuse_line, strlen(h->refuse_line), MSG_DONTWAIT | MSG_NOSIGNAL);

		(void)n; /* best effort: the client is being turned away anyway */
	}
	close(fd);
}

/* Finds the oldest connection that has not logged in.  Called locked. */
static struct conn *oldest_preauth(struct net *net)
{
	for (struct conn *c = net->oldest; c != NULL; c = c->next) {
		if (!c->authenticated)
			return c;
	}
	return NULL;
}

struct conn_ref {
	struct net *net;
	uint64_t id;
};

/* Decides under the lock whether a new connection from ip may be accepted;
 * when the server is full, the oldest pre-auth connection is told to go
 * (Dovecot's rule: a flood of idle connections must not lock out real
 * users).  Returns the new count, or 0 when refused. */
static int admit_connection(struct net *net, const char *ip, struct conn_ref *kick_r,
			    struct event_base **kick_base_r, const char **reason_r)
{
	if (net->conn_count >= net->max_conns) {
		struct conn *victim = oldest_preauth(net);

		if (victim == NULL) {
			*reason_r = "too many connections";
			return -1;
		}
		kick_r->net = net;
		kick_r->id = victim->id;
		*kick_base_r = victim->base;
	}
	if (ip_counter_acquire(net->per_ip, ip, net->max_per_ip) == 0) {
		*kick_base_r = NULL;
		*reason_r = "too many connections from this address";
		return -1;
	}
	return 0;
}

/* Replies leave in one write each (a bufferevent flushes its whole
 * buffer), so Nagle's algorithm only adds delay: a reply's last segment
 * would wait for the ACK of the one before, which the client's delayed ACK
 * holds back 40 ms. */
static void set_nodelay(evutil_socket_t fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		log_debug("net", "TCP_NODELAY: %s", strerror(errno));
}

static void net_accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
			  struct sockaddr *sa, int socklen, void *arg)
{
	struct listener *l = arg;
	struct net *net = l->net;
	struct conn_ref kick = { NULL, 0 };
	struct event_base *kick_base = NULL;
	struct sockaddr_storage local;
	socklen_t local_len = sizeof(local);
	const char *reason = NULL;
	struct conn *c;
	char ip[INET6_ADDRSTRLEN];
	uint16_t port;

	sockaddr_to_ip(sa, ip, &port);
	pthread_mutex_lock(&net->lock);
	if (!net->accepting || admit_connection(net, ip, &kick, &kick_base, &reason) < 0) {
		pthread_mutex_unlock(&net->lock);
		log_security("net", "connection refused service=%s ip=%s reason=\"%s\"",
			     service_info(l->service)->name, ip,
			     reason != NULL ? reason : "shutting down");
		refuse_connection(net, l->service, fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->id = net->next_id++;
	c->net = net;
	c->fd = fd;
	set_nodelay(fd);
	c->service = l->service;
	c->handler = net->handlers[l->service];
	c->base = evloop_pool_next(net->loops);
	c->started = time(NULL);
	memcpy(c->peer_ip, ip, sizeof(ip));
	c->peer_port = port;
	c->peer_is_loopback = ip_is_loopback(ip);
	if (getsockname(fd, (struct sockaddr *)&local, &local_len) == 0)
		sockaddr_to_ip((struct sockaddr *)&local, c->local_ip, &c->local_port);
	c->prev = net->newest;
	if (net->newest != NULL)
		net->newest->next = c;
	else
		net->oldest = c;
	net->newest = c;
	net->conn_count++;
	pthread_mutex_unlock(&net->lock);

	c->cfg = cfg_current();
	if (service_info(c->service)->tls != SERVICE_TLS_NONE)
		c->tls = tls_current();
	if (kick_base != NULL) {
		struct conn_ref *ref = xmalloc(sizeof(*ref));

		*ref = kick;
		if (evloop_run_on(kick_base, conn_kick, ref) < 0)
			free(ref);
	}
	if (evloop_run_on(c->base, conn_attach, c) < 0)
		panic("cannot schedule new connection on its loop");
	(void)evl;
	(void)socklen;
}

static void conn_attach(void *arg)
{
	struct conn *c = arg;
	struct timeval tv = { (time_t)c->cfg->s.limits_preauth_timeout, 0 };

	if (service_info(c->service)->tls == SERVICE_TLS_IMPLICIT) {
		if (c->tls == NULL) {
			log_error("net", "conn=%llu service=%s no TLS certificate loaded; closing",
				  (unsigned long long)c->id, service_info(c->service)->name);
			close(c->fd);
			c->fd = -1;
			net_conn_close(&c);
			return;
		}
		c->bev = tls_bufferevent_accept(c->base, c->fd, c->tls);
		c->tls_active = true;
	} else {
		c->bev = bufferevent_socket_new(c->base, c->fd,
						BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	}
	if (c->bev == NULL) {
		log_error("net", "conn=%llu cannot create bufferevent", (unsigned long long)c->id);
		close(c->fd);
		c->fd = -1;
		net_conn_close(&c);
		return;
	}
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	log_debug("net", "conn=%llu service=%s accepted ip=%s port=%u",
		  (unsigned long long)c->id, service_info(c->service)->name, c->peer_ip, c->peer_port);
	c->handler->start(c);
}

/* Looks a connection up by id; called on its loop, so the result stays
 * valid for the rest of the callback. */
static struct conn *conn_lookup(struct net *net, uint64_t id)
{
	struct conn *found = NULL;

	pthread_mutex_lock(&net->lock);
	for (struct conn *c = net->oldest; c != NULL; c = c->next) {
		if (c->id == id) {
			found = c;
			break;
		}
	}
	pthread_mutex_unlock(&net->lock);
	return found;
}

struct conn *net_conn_find(struct net *net, uint64_t id)
{
	return conn_lookup(net, id);
}

static void conn_kick(void *arg)
{
	struct conn_ref *ref = arg;
	struct conn *c = conn_lookup(ref->net, ref->id);

	free(ref);
	if (c == NULL || c->authenticated)
		return;
	log_security("net", "conn=%llu service=%s ip=%s closed to make room (server full, not logged in)",
		     (unsigned long long)c->id, service_info(c->service)->name, c->peer_ip);
	net_conn_close(&c);
}

static void conn_shutdown(void *arg)
{
	struct conn_ref *ref = arg;
	struct conn *c = conn_lookup(ref->net, ref->id);

	free(ref);
	if (c == NULL)
		return;
	if (c->finishing)
		net_conn_finish_hurry(c);
	else if (c->handler->shutdown != NULL)
		c->handler->shutdown(c);
	else
		net_conn_close(&c);
}

static void conn_force_close(void *arg)
{
	struct conn_ref *ref = arg;
	struct conn *c = conn_lookup(ref->net, ref->id);

	free(ref);
	if (c != NULL) {
		log_warn("net", "conn=%llu service=%s ip=%s closed at shutdown timeout",
			 (unsigned long long)c->id, service_info(c->service)->name, c->peer_ip);
		net_conn_close(&c);
	}
}

/* Posts fn to the loop of every live connection. */
static void net_post_all(struct net *net, evloop_fn *fn)
{
	pthread_mutex_lock(&net->lock);
	for (struct conn *c = net->oldest; c != NULL; c = c->next) {
		struct conn_ref *ref = xmalloc(sizeof(*ref));

		ref->net = net;
		ref->id = c->id;
		if (evloop_run_on(c->base, fn, ref) < 0)
			free(ref);
	}
	pthread_mutex_unlock(&net->lock);
}

void net_shutdown_connections(struct net *net)
{
	net_post_all(net, conn_shutdown);
}

void net_close_all(struct net *net)
{
	net_post_all(net, conn_force_close);
}

unsigned net_connection_count(struct net *net)
{
	unsigned n;

	pthread_mutex_lock(&net->lock);
	n = net->conn_count;
	pthread_mutex_unlock(&net->lock);
	return n;
}

void net_conn_close(struct conn **connp)
{
	struct conn *c = *connp;
	struct net *net;

	if (c == NULL)
		return;
	*connp = NULL;
	net = c->net;
	if (c->handler->free_session != NULL && c->session != NULL)
		c->handler->free_session(c);
	if (c->finish_timer != NULL)
		event_free(c->finish_timer);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	else if (c->fd >= 0)
		close(c->fd);
	cfg_unref(&c->cfg);
	if (c->tls != NULL)
		tls_ctx_unref(&c->tls);

	pthread_mutex_lock(&net->lock);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		net->oldest = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		net->newest = c->prev;
	net->conn_count--;
	ip_counter_release(net->per_ip, c->peer_ip);
	pthread_mutex_unlock(&net->lock);
	log_debug("net", "conn=%llu closed", (unsigned long long)c->id);
	free(c);
}

void net_conn_set_authenticated(struct conn *conn)
{
	pthread_mutex_lock(&conn->net->lock);
	conn->authenticated = true;
	pthread_mutex_unlock(&conn->net->lock);
}

int net_conn_starttls(struct conn *conn, const char **error_r)
{
	struct bufferevent *tls_bev;

	if (conn->tls_active) {
		*error_r = "TLS already active";
		return -1;
	}
	if (conn->tls == NULL) {
		*error_r = "no TLS certificate loaded";
		return -1;
	}
	/* CVE-2011-0411: bytes that arrived with the STARTTLS command were
	 * sent in clear text; they must never be taken as coming over TLS. */
	if (evbuffer_get_length(bufferevent_get_input(conn->bev)) != 0) {
		*error_r = "client sent data after STARTTLS before the TLS handshake";
		return -1;
	}
	tls_bev = tls_bufferevent_starttls(conn->bev, conn->tls);
	if (tls_bev == NULL) {
		*error_r = "cannot start TLS";
		return -1;
	}
	conn->bev = tls_bev;
	conn->tls_active = true;
	return 0;
}

json_t *net_status_json(struct net *net, const struct cfg *cfg)
{
	static const char *const tls_names[] = { "none", "starttls", "implicit" };
	json_t *arr = json_array();

	for (int id = 0; id < SERVICE_COUNT; id++) {
		const struct service_config *sc = &cfg->services[id];
		const struct service_info *info = service_info((enum service_id)id);

		for (size_t i = 0; i < sc->listen_count; i++) {
			uint16_t port = cfg_listen_port(cfg, &sc->listen[i]);
			const char *state;

			if (net->handlers[id] == NULL)
				state = "not implemented";
			else if (!sc->enabled)
				state = "disabled";
			else if (listener_find(net, (enum service_id)id, sc->listen[i].address, port) != NULL)
				state = net->accepting ? "listening" : "starting";
			else
				state = "not listening";
			json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:s, s:s}",
							     "service", info->name,
							     "address", sc->listen[i].address,
							     "port", (int)port,
							     "tls", tls_names[info->tls],
							     "state", state));
		}
	}
	return arr;
}
