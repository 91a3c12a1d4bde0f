/*
 * The engine's life: start (configuration, logs, TLS, listeners, control
 * socket, privilege drop, threads), reload, and graceful stop.
 *
 * Everything here runs on the main thread.  The main event loop runs the
 * listeners' accept callbacks, the control socket, the signal handlers and
 * the shutdown timer; client connections run on the event-loop threads.
 */
#include "petreld/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <event2/event.h>

#include "admin/admin.h"
#include "auth/auth.h"
#include "auth/auth_cache.h"
#include "auth/sasl.h"
#include "core/cfg.h"
#include "core/control.h"
#include "core/evloop.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/net.h"
#include "core/str.h"
#include "core/tls.h"
#include "directory/directory.h"
#include "petreld/services.h"
#include "queue/queue.h"
#include "store/store.h"

#define PETREL_VERSION "0.1.0"

struct engine {
	const struct engine_options *options;
	struct event_base *main_base;
	struct evloop_pool *loops;
	struct worker_pool *workers;
	struct net *net;
	struct control *control;
	struct store *store;          /* for local delivery (the queue) */
	struct queue *queue;
	struct event *sig_hup, *sig_term, *sig_int, *shutdown_timer;
	char *pid_path;
	char *store_dir;
	time_t started;
	time_t shutdown_started;
	bool stopping;
	bool shutdown_forced;
};

static void engine_cfg_warning(const char *warning, void *context)
{
	log_warn("config", "%s", warning);
}

/* ---- startup helpers ---- */

static char *engine_store_dir(const struct cfg *cfg)
{
	return cfg_path(cfg, cfg->s.server_store);
}

/* The store must exist: creating a missing one would silently put mail on
 * the wrong disk when a mount is missing.  Its subdirectories are ours. */
static int engine_prepare_store(const char *store, char **error_r)
{
	static const char *const subdirs[] = { "logs", "mail", "queue" };
	struct stat st;

	if (stat(store, &st) < 0 || !S_ISDIR(st.st_mode)) {
		*error_r = xasprintf("store directory %s does not exist: create it (and mount its disk), "
				     "fix <server><store> in mailserver.cfg, or run petrelctl setup", store);
		return -1;
	}
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		char *path = xasprintf("%s/%s", store, subdirs[i]);

		if (mkdir(path, 0750) < 0 && errno != EEXIST) {
			*error_r = xasprintf("cannot create %s: %s; check the permissions of the store",
					     path, strerror(errno));
			free(path);
			return -1;
		}
		free(path);
	}
	return 0;
}

static struct log_config engine_log_config(const struct cfg *cfg, bool foreground)
{
	struct log_config lc = cfg->logs;

	lc.foreground = foreground;
	return lc;
}

static int engine_load_tls(const struct cfg *cfg, struct tls_ctx **ctx_r, char **error_r)
{
	return tls_ctx_new_from_cfg(cfg, NULL, NULL, ctx_r, error_r);
}

static bool engine_needs_tls(const struct cfg *cfg, const struct net *net)
{
	for (int id = 0; id < SERVICE_COUNT; id++) {
		if (cfg->services[id].enabled && net_has_handler(net, (enum service_id)id) &&
		    service_info((enum service_id)id)->tls != SERVICE_TLS_NONE)
			return true;
	}
	return false;
}

/* Writes the pid file; refuses when it names a live engine. */
static int engine_write_pid(struct engine *e, const struct cfg *cfg, char **error_r)
{
	char text[32], *old = NULL;
	size_t len;
	const char *err;

	e->pid_path = cfg_path(cfg, cfg->s.server_pid_file);
	if (fileio_read_all(e->pid_path, 64, &old, &len) == 0) {
		long pid = atol(old);

		free(old);
		if (pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) == 0) {
			*error_r = xasprintf("%s: petreld is already running as pid %ld", e->pid_path, pid);
			free(e->pid_path);
			e->pid_path = NULL;
			return -1;
		}
	}
	snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	if (fileio_write_atomic(e->pid_path, text, strlen(text), 0644, &err) < 0) {
		*error_r = xasprintf("pid file: %s", err);
		free(e->pid_path);
		e->pid_path = NULL;
		return -1;
	}
	return 0;
}

/* chown path (not following links) if it exists. */
static int chown_if_exists(const char *path, uid_t uid, gid_t gid, char **error_r)
{
	if (lchown(path, uid, gid) < 0 && errno != ENOENT) {
		*error_r = xasprintf("cannot give %s to the service user: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* chown a directory and the entries directly inside it. */
static int chown_dir_shallow(const char *dir, uid_t uid, gid_t gid, char **error_r)
{
	DIR *d;
	struct dirent *de;
	int ret = 0;

	if (chown_if_exists(dir, uid, gid, error_r) < 0)
		return -1;
	d = opendir(dir);
	if (d == NULL)
		return 0;
	while (ret == 0 && (de = readdir(d)) != NULL) {
		char *path;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		ret = chown_if_exists(path, uid, gid, error_r);
		free(path);
	}
	closedir(d);
	return ret;
}

/*
 * Started as root: give the config dir, the store's top directories and
 * the log files to the service user, then become that user for good.  The
 * engine refuses to go on as root: every byte it parses comes from the
 * network.
 */
static int engine_drop_privileges(struct engine *e, const struct cfg *cfg, char **error_r)
{
	static const char *const store_dirs[] = { "", "/logs", "/mail", "/queue" };
	const char *user = cfg->s.server_user;
	struct passwd *pw;
	char *sslcert;

	if (geteuid() != 0)
		return 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		*error_r = xasprintf("the service user '%s' (<server><user> in mailserver.cfg) does not "
				     "exist: create it with 'useradd --system --no-create-home --shell "
				     "/usr/sbin/nologin %s' or run make install", user, user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		*error_r = xasprintf("the service user '%s' is root: petreld will not run as root; "
				     "set <server><user> to an unprivileged user", user);
		return -1;
	}
	if (chown_dir_shallow(e->options->config_dir, pw->pw_uid, pw->pw_gid, error_r) < 0)
		return -1;
	sslcert = cfg_path(cfg, "sslcert");
	if (chown_dir_shallow(sslcert, pw->pw_uid, pw->pw_gid, error_r) < 0) {
		free(sslcert);
		return -1;
	}
	free(sslcert);
	for (size_t i = 0; i < sizeof(store_dirs) / sizeof(store_dirs[0]); i++) {
		char *path = xasprintf("%s%s", e->store_dir, store_dirs[i]);
		int ret = i == 1 ? chown_dir_shallow(path, pw->pw_uid, pw->pw_gid, error_r)
				 : chown_if_exists(path, pw->pw_uid, pw->pw_gid, error_r);

		free(path);
		if (ret < 0)
			return -1;
	}
	if (e->pid_path != NULL && chown_if_exists(e->pid_path, pw->pw_uid, pw->pw_gid, error_r) < 0)
		return -1;
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		*error_r = xasprintf("cannot switch to user '%s': %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0 || geteuid() == 0) {
		*error_r = xstrdup("privilege drop did not take: still root; refusing to run");
		return -1;
	}
	log_info("engine", "running as user=%s uid=%ld gid=%ld", user, (long)pw->pw_uid,
		 (long)pw->pw_gid);
	return 0;
}

/* ---- reload ---- */

static const char *restart_only_change(const struct cfg *old, const struct cfg *cur)
{
	if (strcmp(old->s.server_user, cur->s.server_user) != 0)
		return "server/user";
	if (strcmp(old->s.server_store, cur->s.server_store) != 0)
		return "server/store";
	if (old->s.server_event_threads != cur->s.server_event_threads)
		return "server/event-threads";
	if (old->s.server_worker_threads != cur->s.server_worker_threads)
		return "server/worker-threads";
	if (strcmp(old->s.control_socket, cur->s.control_socket) != 0)
		return "control/socket";
	if (old->s.store_max_message_size != cur->s.store_max_message_size ||
	    old->s.store_max_indexed_text != cur->s.store_max_indexed_text ||
	    old->s.store_check_on_open != cur->s.store_check_on_open ||
	    old->s.store_background_index != cur->s.store_background_index ||
	    old->s.store_delivery_key_time != cur->s.store_delivery_key_time ||
	    old->s.store_mime_max_depth != cur->s.store_mime_max_depth ||
	    old->s.store_mime_max_parts != cur->s.store_mime_max_parts ||
	    old->s.store_mime_max_header_bytes != cur->s.store_mime_max_header_bytes ||
	    old->s.store_mime_max_field_value != cur->s.store_mime_max_field_value ||
	    old->s.store_mime_max_param_value != cur->s.store_mime_max_param_value)
		return "store/*";
	return NULL;
}

/* Re-reads both files.  Either everything new is taken, or nothing. */
static int engine_reload(void *context, char **error_r, char **warnings_r)
{
	struct engine *e = context;
	struct cfg *cfg = NULL, *old;
	struct directory *dir = NULL;
	struct tls_ctx *tls = NULL;
	struct log_config lc;
	const char *restart;
	char *net_warnings = NULL;

	*warnings_r = NULL;
	if (cfg_load(e->options->config_dir, engine_cfg_warning, NULL, &cfg, error_r) < 0)
		goto fail;
	if (directory_load(e->options->config_dir, engine_cfg_warning, NULL, &dir, error_r) < 0)
		goto fail;
	if (engine_needs_tls(cfg, e->net) && engine_load_tls(cfg, &tls, error_r) < 0)
		goto fail;

	old = cfg_current();
	restart = restart_only_change(old, cfg);
	if (restart != NULL) {
		*warnings_r = xasprintf("%s changed: takes effect at the next restart", restart);
		log_warn("engine", "reload: %s", *warnings_r);
	}
	cfg_unref(&old);

	cfg_set_current(cfg_ref(cfg));
	directory_set_current(dir);
	dir = NULL;
	/* Stored hashes are inside the cache's MACs, so a changed one misses
	 * anyway; forgetting everything on reload is the belt to those braces
	 * (docs/authentication.md, Credential cache). */
	auth_cache_flush_shared();
	if (tls != NULL)
		tls_set_current(tls);
	tls = NULL;
	lc = engine_log_config(cfg, e->options->foreground);
	log_reconfigure(&lc);
	if (e->control != NULL)
		control_set_max_request(e->control, (size_t)cfg->s.control_max_request);
	if (e->queue != NULL)
		queue_reconfigure(e->queue, cfg);
	net_reconfigure(e->net, cfg, &net_warnings);
	if (net_warnings != NULL) {
		char *all = *warnings_r == NULL ? net_warnings
						: xasprintf("%s; %s", *warnings_r, net_warnings);

		if (all != net_warnings) {
			free(net_warnings);
			free(*warnings_r);
		}
		*warnings_r = all;
	}
	cfg_unref(&cfg);
	log_info("engine", "configuration reloaded");
	return 0;
fail:
	log_error("engine", "reload refused, the running configuration stays: %s", *error_r);
	cfg_unref(&cfg);
	directory_unref(&dir);
	return -1;
}

/* ---- stop ---- */

static void engine_shutdown_tick(evutil_socket_t fd, short what, void *arg)
{
	struct engine *e = arg;
	struct cfg *cfg = cfg_current();
	time_t elapsed = time(NULL) - e->shutdown_started;
	int64_t timeout = cfg->s.server_shutdown_timeout;
	unsigned left = net_connection_count(e->net);

	cfg_unref(&cfg);
	if (left == 0) {
		event_base_loopbreak(e->main_base);
	} else if (!e->shutdown_forced && elapsed >= timeout) {
		log_warn("engine", "shutdown: closing %u connections still open after %llds",
			 left, (long long)timeout);
		e->shutdown_forced = true;
		net_close_all(e->net);
	} else if (e->shutdown_forced && elapsed >= timeout + 5) {
		/* A loop that does not answer: give up waiting for it. */
		log_error("engine", "shutdown: %u connections did not close; exiting anyway", left);
		event_base_loopbreak(e->main_base);
	}
}

static void engine_stop(void *context)
{
	struct engine *e = context;
	struct timeval tick = { 0, 100 * 1000 };

	if (e->stopping)
		return;
	e->stopping = true;
	e->shutdown_started = time(NULL);
	log_info("engine", "stopping: no new connections; %u in flight",
		 net_connection_count(e->net));
	net_stop_accepting(e->net);
	net_shutdown_connections(e->net);
	e->shutdown_timer = event_new(e->main_base, -1, EV_PERSIST, engine_shutdown_tick, e);
	event_add(e->shutdown_timer, &tick);
}

/* ---- status ---- */

static void engine_status(void *context, json_t *obj)
{
	struct engine *e = context;
	struct cfg *cfg = cfg_current();
	struct auth_cache_stats cache;

	json_object_set_new(obj, "version", json_string(PETREL_VERSION));
	json_object_set_new(obj, "pid", json_integer(getpid()));
	json_object_set_new(obj, "hostname", json_string(cfg->s.server_hostname));
	json_object_set_new(obj, "uptime", json_integer(time(NULL) - e->started));
	json_object_set_new(obj, "connections", json_integer(net_connection_count(e->net)));
	json_object_set_new(obj, "queue",
			    json_integer(e->queue != NULL ? (json_int_t)queue_count(e->queue) : 0));
	json_object_set_new(obj, "workers_busy", json_integer((json_int_t)worker_pool_pending(e->workers)));
	json_object_set_new(obj, "services", net_status_json(e->net, cfg));
	auth_cache_shared_stats(&cache);
	json_object_set_new(obj, "auth_cache",
			    json_pack("{s:I,s:I,s:I}", "hits", (json_int_t)cache.hits, "misses",
				      (json_int_t)cache.misses, "entries", (json_int_t)cache.entries));
	cfg_unref(&cfg);
}

/* A slow control request (a password to hash) on the worker pool. */
struct control_job {
	struct admin_engine ops;
	json_t *request;
	json_t *reply;
	struct control_pending *pending;
};

static void control_job_run(void *arg)
{
	struct control_job *job = arg;

	job->reply = admin_dispatch(job->request, &job->ops);
}

/* Back on the main loop. */
static void control_job_done(void *arg)
{
	struct control_job *job = arg;

	control_pending_reply(job->pending, job->reply);
	json_decref(job->request);
	free(job);
}

static json_t *engine_control_dispatch(json_t *request, void *context)
{
	struct engine *e = context;
	struct admin_engine ops = {
		.context = e,
		.status = engine_status,
		.reload = engine_reload,
		.stop = engine_stop,
		.store = &e->store,
	};
	struct control_job *job;

	if (!admin_request_is_slow(request) || e->workers == NULL)
		return admin_dispatch(request, &ops);
	job = xcalloc(1, sizeof(*job));
	job->ops = ops;
	job->request = json_incref(request);
	if (worker_submit(e->workers, e->main_base, control_job_run, control_job_done, job) < 0) {
		json_decref(job->request);
		free(job);
		return json_pack("{s:b, s:s}", "ok", 0, "error", "server busy, try again later");
	}
	/* done runs on this (the main) loop, so after this returns */
	job->pending = control_defer();
	return NULL;
}

/* ---- signals ---- */

static void engine_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct engine *e = arg;

	if (sig == SIGHUP) {
		char *error = NULL, *warnings = NULL;

		log_info("engine", "SIGHUP: reloading configuration");
		if (engine_reload(e, &error, &warnings) < 0)
			free(error);
		free(warnings);
	} else {
		log_info("engine", "signal %d: stopping", (int)sig);
		engine_stop(e);
	}
}

/* ---- run ---- */

static void engine_print_services(struct engine *e, const struct cfg *cfg)
{
	json_t *services = net_status_json(e->net, cfg);
	size_t i;
	json_t *s;
	struct buf missing;

	buf_init(&missing, 4096);
	printf("petreld %s: %s serving from %s\n", PETREL_VERSION, cfg->s.server_hostname,
	       e->store_dir);
	json_array_foreach(services, i, s) {
		const char *state = json_string_value(json_object_get(s, "state"));
		const char *name = json_string_value(json_object_get(s, "service"));

		if (strcmp(state, "not implemented") == 0) {
			if (strstr(missing.data == NULL ? "" : missing.data, name) == NULL &&
			    buf_printf(&missing, "%s%s", missing.len > 0 ? ", " : "", name) < 0)
				break;
			continue;
		}
		printf("  %-11s %s port %lld  tls=%s  %s\n", name,
		       json_string_value(json_object_get(s, "address")),
		       (long long)json_integer_value(json_object_get(s, "port")),
		       json_string_value(json_object_get(s, "tls")), state);
	}
	if (missing.len > 0)
		printf("  not yet implemented (not opened): %s\n", missing.data);
	fflush(stdout);
	buf_deinit(&missing);
	json_decref(services);
}

static int engine_start(struct engine *e, char **error_r)
{
	const struct engine_options *o = e->options;
	struct cfg *cfg = NULL;
	struct directory *dir = NULL;
	struct tls_ctx *tls = NULL;
	struct log_config lc;
	const char *err;
	char *logdir, *sock;
	unsigned threads;
	int ret = -1;

	if (cfg_load(o->config_dir, NULL, NULL, &cfg, error_r) < 0)
		return -1;
	if (directory_load(o->config_dir, NULL, NULL, &dir, error_r) < 0)
		goto out;
	e->store_dir = engine_store_dir(cfg);
	if (engine_prepare_store(e->store_dir, error_r) < 0)
		goto out;
	logdir = xasprintf("%s/logs", e->store_dir);
	lc = engine_log_config(cfg, o->foreground);
	if (log_open(logdir, &lc, &err) < 0) {
		*error_r = xasprintf("%s", err);
		free(logdir);
		goto out;
	}
	free(logdir);
	/* Warnings of the first parse go to the log now that it is open. */
	cfg_unref(&cfg);
	directory_unref(&dir);
	if (cfg_load(o->config_dir, engine_cfg_warning, NULL, &cfg, error_r) < 0 ||
	    directory_load(o->config_dir, engine_cfg_warning, NULL, &dir, error_r) < 0)
		goto out;

	e->main_base = event_base_new();
	if (e->main_base == NULL)
		panic("event_base_new failed");
	threads = cfg->s.server_event_threads > 0 ? (unsigned)cfg->s.server_event_threads
						  : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads == 0)
		threads = 1;
	e->net = net_new(e->main_base, NULL);
	services_register(e->net, e->main_base, &e->workers,
			  &(const struct admin_engine){ .context = e, .status = engine_status,
							.reload = engine_reload, .stop = engine_stop,
							.store = &e->store });
	if (engine_needs_tls(cfg, e->net) && engine_load_tls(cfg, &tls, error_r) < 0)
		goto out;
	cfg_set_current(cfg_ref(cfg));
	directory_set_current(dir);
	dir = NULL;
	if (tls != NULL)
		tls_set_current(tls);
	tls = NULL;

	/* The control socket and the pid file first: a second engine on the
	 * same config dir must hear "already running", not "port in use". */
	sock = cfg_path(cfg, cfg->s.control_socket);
	if (control_open(e->main_base, sock, (size_t)cfg->s.control_max_request,
			 engine_control_dispatch, e, &e->control, error_r) < 0) {
		free(sock);
		goto out;
	}
	free(sock);
	if (engine_write_pid(e, cfg, error_r) < 0)
		goto out;
	if (net_bind(e->net, cfg, error_r) < 0)
		goto out;
	if (engine_drop_privileges(e, cfg, error_r) < 0)
		goto out;
	log_reopen();

	/* Threads only now: after the fork and the privilege drop. */
	e->loops = evloop_pool_new(threads);
	net_set_loops(e->net, e->loops);
	e->workers = worker_pool_new((unsigned)cfg->s.server_worker_threads,
				     (size_t)cfg->s.server_worker_queue);

	/* The store and the queue after the privilege drop (their files
	 * belong to the service user); the spool is picked up as the last
	 * run left it, and delivery starts before the first connection. */
	{
		struct store_settings ss;
		struct queue_params qp = { .store_dir = e->store_dir, .cfg = cfg };
		const char *serr = NULL;

		struct mime_limits ml;

		/* The MIME limits first: the store and the IMAP server's
		 * section scans read them from mime_limits_default. */
		mime_limits_default(&ml);
		ml.max_depth = (unsigned)cfg->s.store_mime_max_depth;
		ml.max_parts = (unsigned)cfg->s.store_mime_max_parts;
		ml.max_header_scan = (size_t)cfg->s.store_mime_max_header_bytes;
		ml.max_field_value = (size_t)cfg->s.store_mime_max_field_value;
		ml.max_param_value = (size_t)cfg->s.store_mime_max_param_value;
		mime_limits_set_default(&ml);
		store_settings_default(&ss, e->store_dir);
		ss.max_message_size = (uint64_t)cfg->s.store_max_message_size;
		ss.mime.max_text = (size_t)cfg->s.store_max_indexed_text;
		ss.check_on_open = cfg->s.store_check_on_open;
		ss.background_index = cfg->s.store_background_index;
		/* A key must outlive every queued copy that could be delivered
		 * again (queue/max-time). */
		ss.delivery_key_ttl = cfg->s.store_delivery_key_time;
		if (ss.delivery_key_ttl < (int64_t)cfg->s.queue_max_time + 86400)
			ss.delivery_key_ttl = (int64_t)cfg->s.queue_max_time + 86400;
		if (store_new(&ss, &e->store, &serr) < 0) {
			*error_r = xasprintf("cannot open the message store: %s", serr);
			goto out;
		}
		qp.store = e->store;
		services_set_store(e->store);
		if (queue_new(&qp, &e->queue, error_r) < 0)
			goto out;
		queue_set_current(e->queue);
		queue_start(e->queue);
	}

	e->sig_hup = evsignal_new(e->main_base, SIGHUP, engine_signal_cb, e);
	e->sig_term = evsignal_new(e->main_base, SIGTERM, engine_signal_cb, e);
	e->sig_int = evsignal_new(e->main_base, SIGINT, engine_signal_cb, e);
	evsignal_add(e->sig_hup, NULL);
	evsignal_add(e->sig_term, NULL);
	evsignal_add(e->sig_int, NULL);
	net_start(e->net);
	e->started = time(NULL);
	log_info("engine", "petreld %s started pid=%ld config=%s store=%s event_threads=%u",
		 PETREL_VERSION, (long)getpid(), o->config_dir, e->store_dir, threads);
	if (o->foreground)
		engine_print_services(e, cfg);
	ret = 0;
out:
	cfg_unref(&cfg);
	directory_unref(&dir);
	if (tls != NULL)
		tls_ctx_unref(&tls);
	return ret;
}

static void engine_cleanup(struct engine *e)
{
	struct cfg *cfg;
	struct tls_ctx *tls;

	if (e->sig_hup != NULL) {
		event_free(e->sig_hup);
		event_free(e->sig_term);
		event_free(e->sig_int);
	}
	if (e->shutdown_timer != NULL)
		event_free(e->shutdown_timer);
	control_close(&e->control);
	if (e->net != NULL)
		net_stop_accepting(e->net);
	/* Workers first: their completions need the loops still running. */
	worker_pool_free(&e->workers);
	/* Then the queue (its delivery threads finish or time out), after
	 * the front ends that commit into it. */
	queue_set_current(NULL);
	queue_free(&e->queue);
	services_set_store(NULL);
	store_free(&e->store);
	evloop_pool_free(&e->loops);
	net_free(&e->net);
	if (e->pid_path != NULL) {
		unlink(e->pid_path);
		free(e->pid_path);
	}
	if (e->main_base != NULL)
		event_base_free(e->main_base);
	cfg = cfg_current();
	if (cfg != NULL) {
		cfg_unref(&cfg);
		cfg_set_current(NULL);
	}
	tls = tls_current();
	if (tls != NULL) {
		tls_ctx_unref(&tls);
		tls_set_current(NULL);
	}
	directory_set_current(NULL);
	free(e->store_dir);
}

int engine_run(const struct engine_options *options)
{
	struct engine e;
	char *error = NULL;

	memset(&e, 0, sizeof(e));
	e.options = options;
	signal(SIGPIPE, SIG_IGN);
	directory_set_secrets_hook(auth_derive_secrets);
	directory_set_prepare_hook(auth_prepare_password);
	cfg_set_value_check(sasl_cfg_check);
	if (engine_start(&e, &error) < 0) {
		log_error("engine", "cannot start: %s", error);
		options->ready(error, options->ready_context);
		free(error);
		engine_cleanup(&e);
		log_close();
		return 1;
	}
	options->ready(NULL, options->ready_context);
	event_base_loop(e.main_base, EVLOOP_NO_EXIT_ON_EMPTY);
	log_info("engine", "stopped");
	engine_cleanup(&e);
	log_close();
	return 0;
}
