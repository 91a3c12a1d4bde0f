/* Control socket transport; see control.h. */
#include "core/control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "core/log.h"
#include "core/str.h"

/* A client that sends nothing for this long is dropped. */
#define CONTROL_CLIENT_TIMEOUT 300

struct control_client {
	struct control *control;
	struct bufferevent *bev;
	struct control_client *prev, *next;
	uint64_t id;
	bool closing;   /* reply queued; close once written */
	bool waiting;   /* a deferred reply is owed: further requests wait */
};

struct control {
	struct evconnlistener *evl;
	char *path;
	size_t max_request;
	control_dispatch_fn *dispatch;
	void *context;
	struct control_client *clients;
	uint64_t next_id;
	unsigned pending;  /* deferred replies outstanding */
	bool closed;       /* control_close ran; freed with the last pending */
};

struct control_pending {
	struct control *control;
	uint64_t client_id;
};

/* The client whose request is being dispatched (main thread only). */
static struct control_client *dispatching;

json_t *control_error(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

json_t *control_ok(void)
{
	return json_pack("{s:b}", "ok", 1);
}

static void client_free(struct control_client *cl)
{
	struct control *ctl = cl->control;

	if (cl->prev != NULL)
		cl->prev->next = cl->next;
	else
		ctl->clients = cl->next;
	if (cl->next != NULL)
		cl->next->prev = cl->prev;
	bufferevent_free(cl->bev);
	free(cl);
}

static void client_send(struct control_client *cl, json_t *reply)
{
	char *text = json_dumps(reply, JSON_COMPACT);

	json_decref(reply);
	if (text == NULL)
		text = xstrdup("{\"ok\":false,\"error\":\"internal error encoding reply\"}");
	evbuffer_add(bufferevent_get_output(cl->bev), text, strlen(text));
	evbuffer_add(bufferevent_get_output(cl->bev), "\n", 1);
	free(text);
}

/* Sends a final error and closes once it is written. */
static void client_reject(struct control_client *cl, const char *reason)
{
	log_security("control", "control client dropped: %s", reason);
	client_send(cl, control_error("%s", reason));
	cl->closing = true;
	bufferevent_disable(cl->bev, EV_READ);
}

static void client_handle_line(struct control_client *cl, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr), *reply;

	if (req == NULL || !json_is_object(req)) {
		json_decref(req);
		client_reject(cl, "request is not a JSON object");
		return;
	}
	dispatching = cl;
	reply = cl->control->dispatch(req, cl->control->context);
	dispatching = NULL;
	if (reply != NULL)
		client_send(cl, reply);
	else if (!cl->waiting)
		client_send(cl, control_error("internal error: no reply"));
	json_decref(req);
}

struct control_pending *control_defer(void)
{
	struct control_pending *p;

	if (dispatching == NULL)
		panic("control_defer outside a dispatch call");
	p = xcalloc(1, sizeof(*p));
	p->control = dispatching->control;
	p->client_id = dispatching->id;
	p->control->pending++;
	dispatching->waiting = true;
	return p;
}

static void client_read_cb(struct bufferevent *bev, void *arg);

void control_pending_reply(struct control_pending *p, json_t *reply)
{
	struct control *ctl = p->control;
	struct control_client *cl = NULL;

	if (!ctl->closed)
		for (cl = ctl->clients; cl != NULL && cl->id != p->client_id; cl = cl->next)
			;
	free(p);
	ctl->pending--;
	if (cl == NULL) {
		json_decref(reply);
		if (ctl->closed && ctl->pending == 0)
			free(ctl);
		return;
	}
	client_send(cl, reply);
	cl->waiting = false;
	if (cl != dispatching)
		client_read_cb(cl->bev, cl);   /* requests that arrived meanwhile */
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
	struct control_client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!cl->closing && !cl->waiting) {
		size_t eol_len = 0;
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		char *line;

		if (eol.pos < 0) {
			if (evbuffer_get_length(in) > cl->control->max_request)
				client_reject(cl, "request too long");
			return;
		}
		if ((size_t)eol.pos > cl->control->max_request) {
			client_reject(cl, "request too long");
			return;
		}
		line = xmalloc((size_t)eol.pos + 1);
		evbuffer_remove(in, line, (size_t)eol.pos);
		evbuffer_drain(in, eol_len);
		line[eol.pos] = '\0';
		if (eol.pos > 0)
			client_handle_line(cl, line, (size_t)eol.pos);
		free(line);
	}
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
	struct control_client *cl = arg;

	if (cl->closing)
		client_free(cl);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	client_free(arg);
}

static void control_accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
			      struct sockaddr *sa, int socklen, void *arg)
{
	struct control *ctl = arg;
	struct control_client *cl = xcalloc(1, sizeof(*cl));
	struct timeval tv = { CONTROL_CLIENT_TIMEOUT, 0 };

	cl->control = ctl;
	cl->id = ++ctl->next_id;
	cl->bev = bufferevent_socket_new(evconnlistener_get_base(evl), fd, BEV_OPT_CLOSE_ON_FREE);
	if (cl->bev == NULL) {
		close(fd);
		free(cl);
		return;
	}
	cl->next = ctl->clients;
	if (ctl->clients != NULL)
		ctl->clients->prev = cl;
	ctl->clients = cl;
	bufferevent_setcb(cl->bev, client_read_cb, client_write_cb, client_event_cb, cl);
	bufferevent_set_timeouts(cl->bev, &tv, NULL);
	/* Stop reading past the limit: a client streaming garbage is cut off
	 * by client_read_cb, never buffered without bound. */
	bufferevent_setwatermark(cl->bev, EV_READ, 0, ctl->max_request + 2);
	bufferevent_enable(cl->bev, EV_READ | EV_WRITE);
	(void)sa;
	(void)socklen;
}

/* True when something answers on the socket at path. */
static bool socket_is_live(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return false;
	live = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return live;
}

int control_open(struct event_base *base, const char *path, size_t max_request,
		 control_dispatch_fn *dispatch, void *context, struct control **control_r,
		 char **error_r)
{
	struct sockaddr_un sun;
	struct control *ctl;
	evutil_socket_t fd;
	mode_t old_umask;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) < 0) {
		*error_r = xasprintf("%s: control socket path too long (at most %zu bytes); "
				     "use a shorter config dir or set <control><socket>",
				     path, sizeof(sun.sun_path) - 1);
		return -1;
	}
	if (socket_is_live(&sun)) {
		*error_r = xasprintf("%s: another petreld is already running with this config dir "
				     "(stop it with petrelctl stop)", path);
		return -1;
	}
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = xasprintf("%s: cannot create control socket: %s", path, strerror(errno));
		return -1;
	}
	/* Created 0600 from the start: no window where others may connect. */
	old_umask = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 16) < 0) {
		int err = errno;

		umask(old_umask);
		close(fd);
		*error_r = xasprintf("%s: cannot create control socket: %s", path, strerror(err));
		return -1;
	}
	umask(old_umask);
	ctl = xcalloc(1, sizeof(*ctl));
	ctl->path = xstrdup(path);
	ctl->max_request = max_request;
	ctl->dispatch = dispatch;
	ctl->context = context;
	ctl->evl = evconnlistener_new(base, control_accept_cb, ctl,
				      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (ctl->evl == NULL) {
		close(fd);
		unlink(path);
		free(ctl->path);
		free(ctl);
		*error_r = xasprintf("%s: cannot listen on control socket", path);
		return -1;
	}
	*control_r = ctl;
	return 0;
}

void control_set_max_request(struct control *control, size_t max_request)
{
	control->max_request = max_request;
}

void control_close(struct control **controlp)
{
	struct control *ctl = *controlp;

	if (ctl == NULL)
		return;
	*controlp = NULL;
	while (ctl->clients != NULL)
		client_free(ctl->clients);
	evconnlistener_free(ctl->evl);
	unlink(ctl->path);
	free(ctl->path);
	ctl->path = NULL;
	/* A reply still owed finds no client and frees ctl at the last. */
	ctl->closed = true;
	if (ctl->pending == 0)
		free(ctl);
}
