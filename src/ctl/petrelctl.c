/*
 * petrelctl: the administrator's command-line tool.
 *
 * Commands that change a running engine talk to it over the control socket
 * (docs/control-protocol.md); commands that only read files (log show,
 * cert show) or prepare them (setup, cert generate) work without it.
 * The command words are a contract (DESIGN.md): add, never rename.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/sasl.h"
#include "core/buf.h"
#include "core/cfg.h"
#include "core/str.h"
#include "ctl/ctl.h"

#define DEFAULT_CONFIG_DIR "/etc/petrel"
/* Largest reply we accept from the engine. */
#define CTL_MAX_REPLY (64u * 1024 * 1024)

static void usage(FILE *out)
{
	fputs("usage: petrelctl [--config-dir DIR] [--json] COMMAND ...\n"
	      "\n"
	      "  setup --config-dir DIR --store DIR --domain DOMAIN --admin-password PASS\n"
	      "        [--hostname NAME] [--port-offset N] [--admin NAME] [--user USER]\n"
	      "  status [--json]            services, ports, uptime, queue size\n"
	      "  reload                     re-read mailserver.cfg and users.cfg\n"
	      "  stop                       stop the engine gracefully\n"
	      "  domain add NAME [--primary] | domain remove NAME [--force] | domain list\n"
	      "  domain show NAME | domain set NAME [--primary] [--catch-all ADDRESS|--no-catch-all]\n"
	      "  domain alias add NAME ALIAS | domain alias remove ALIAS\n"
	      "  user add ADDRESS --password P [--quota MB] [--messages N] [--admin]\n"
	      "       [--full-name NAME] [--disabled]\n"
	      "  user remove|show ADDRESS | user list [DOMAIN] | user passwd ADDRESS --password P\n"
	      "  user set ADDRESS [--full-name NAME] [--quota MB] [--messages N] [--admin yes|no]\n"
	      "       [--enabled yes|no]\n"
	      "  user alias add|remove ADDRESS EXTRA-ADDRESS\n"
	      "  user forward ADDRESS TARGET... [--keep-copy] | user forward ADDRESS --off\n"
	      "  user autoreply ADDRESS [--on|--off] [--subject S] [--text T|--text-file F]\n"
	      "       [--start DATE] [--end DATE]\n"
	      "  alias add ADDRESS TARGET... | alias remove ADDRESS [TARGET...] | alias list [DOMAIN]\n"
	      "  group add|remove ADDRESS [--member ADDRESS]... | group list [DOMAIN] | group show ADDRESS\n"
	      "  list add|remove ADDRESS [--member ADDRESS]... [--moderator ADDRESS]...\n"
	      "       [--posting members|anyone|moderated] [--reply-to list|sender|none]\n"
	      "       [--subscription open|closed] [--description TEXT]\n"
	      "  list list [DOMAIN] | list show ADDRESS     (mailing lists)\n"
	      "  resolve ADDRESS [--separator C]   what mail to ADDRESS is delivered to\n"
	      "  mailbox stats ADDRESS [--json]   folders, messages, sizes, UIDs, quota usage\n"
	      "  mailbox reindex ADDRESS [FOLDER] [--rebuild]   pick up .eml files changed by hand\n"
	      "  public create DOMAIN FOLDER | public list DOMAIN [--json]\n"
	      "  public setacl DOMAIN FOLDER IDENTIFIER RIGHTS   the domain's public folders (IMAP ACL)\n"
	      "  log show debug|error|mail|security|warning [--follow] [--grep TEXT] [--lines N]\n"
	      "  queue list [--json] | queue delete ID|--all | queue run [ID]\n"
	      "  queue inject --from SENDER --to RCPT... [--notify LIST] [--orcpt TYPE;XTEXT]\n"
	      "        [--envid XTEXT] [--ret FULL|HDRS] FILE|-\n"
	      "  cert show [--json] | cert generate [--hostname H] [--days N] [--force]\n"
	      "  cert request [--hostname H] [--force]\n"
	      "  cert import --cert FILE [--chain FILE] [--key FILE]\n"
	      "\n"
	      "Every listing takes --json.  The directory commands work through a running\n"
	      "petreld, or on users.cfg directly when it is not running.\n"
	      "Exit status: 0 success, 1 the request failed, 2 usage error.\n",
	      out);
}

int ctl_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("petrelctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CTL_FAILED;
}

int ctl_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("petrelctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(petrelctl --help lists the commands)\n", stderr);
	return CTL_USAGE;
}

/* The control socket path: from mailserver.cfg when it loads, else the
 * default name in the config dir.  Caller frees. */
static char *ctl_socket_path(struct ctl *ctl)
{
	struct cfg *cfg = NULL;
	char *error = NULL, *path;

	if (cfg_load(ctl->config_dir, NULL, NULL, &cfg, &error) < 0) {
		free(error);
		return xasprintf("%s/petrel.sock", ctl->config_dir);
	}
	path = cfg_path(cfg, cfg->s.control_socket);
	cfg_unref(&cfg);
	return path;
}

static int ctl_connect(struct ctl *ctl, const char **error_r)
{
	static char errbuf[512];
	struct sockaddr_un sun;
	char *path = ctl_socket_path(ctl);
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) < 0) {
		snprintf(errbuf, sizeof(errbuf), "%s: control socket path too long", path);
		free(path);
		*error_r = errbuf;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		snprintf(errbuf, sizeof(errbuf), "petreld is not running (no answer on %s: %s)",
			 path, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(path);
		*error_r = errbuf;
		return -1;
	}
	free(path);
	return fd;
}

int ctl_request(struct ctl *ctl, json_t *request, json_t **response_r, const char **error_r)
{
	struct buf reply;
	json_error_t jerr;
	char *text, chunk[8192];
	int fd = ctl_connect(ctl, error_r);
	int ret = -1;

	if (fd < 0)
		return -1;
	text = json_dumps(request, JSON_COMPACT);
	if (text == NULL)
		panic("ctl_request: cannot encode request");
	buf_init(&reply, CTL_MAX_REPLY);
	if (write(fd, text, strlen(text)) < 0 || write(fd, "\n", 1) < 0) {
		*error_r = "cannot send the request to petreld";
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*error_r = "petreld closed the connection without answering";
			goto out;
		}
		if (buf_append(&reply, chunk, (size_t)n) < 0) {
			*error_r = "the reply from petreld is too large";
			goto out;
		}
		if (memchr(chunk, '\n', (size_t)n) != NULL)
			break;
	}
	*response_r = json_loadb(reply.data, reply.len, 0, &jerr);
	if (*response_r == NULL || !json_is_object(*response_r)) {
		json_decref(*response_r);
		*error_r = "petreld answered with something that is not JSON";
		goto out;
	}
	ret = 0;
out:
	free(text);
	buf_deinit(&reply);
	close(fd);
	return ret;
}

json_t *ctl_request_ok(struct ctl *ctl, json_t *req, int *status_r)
{
	json_t *reply = NULL;
	const char *error;

	if (ctl_request(ctl, req, &reply, &error) < 0) {
		json_decref(req);
		*status_r = ctl_fail("%s", error);
		return NULL;
	}
	json_decref(req);
	if (!json_is_true(json_object_get(reply, "ok"))) {
		const char *e = json_string_value(json_object_get(reply, "error"));

		*status_r = ctl_fail("%s", e != NULL ? e : "request failed");
		json_decref(reply);
		return NULL;
	}
	*status_r = CTL_OK;
	return reply;
}

/* Sends {"command": name} and returns the reply, or NULL after printing. */
static json_t *ctl_simple(struct ctl *ctl, const char *name)
{
	json_t *req = json_pack("{s:s}", "command", name), *reply = NULL;
	const char *error;

	if (ctl_request(ctl, req, &reply, &error) < 0) {
		ctl_fail("%s", error);
		reply = NULL;
	}
	json_decref(req);
	return reply;
}

static bool reply_ok(json_t *reply)
{
	return json_is_true(json_object_get(reply, "ok"));
}

static int ctl_report(json_t *reply)
{
	const char *error = json_string_value(json_object_get(reply, "error"));
	const char *warnings = json_string_value(json_object_get(reply, "warnings"));

	if (!reply_ok(reply))
		return ctl_fail("%s", error != NULL ? error : "request failed");
	if (warnings != NULL)
		fprintf(stderr, "petrelctl: warning: %s\n", warnings);
	return CTL_OK;
}

int ctl_reload_if_running(struct ctl *ctl)
{
	json_t *req = json_pack("{s:s}", "command", "reload"), *reply = NULL;
	const char *error;
	int ret = CTL_OK;

	if (ctl_request(ctl, req, &reply, &error) == 0) {
		ret = ctl_report(reply);
		if (ret == CTL_OK)
			printf("petreld reloaded\n");
		json_decref(reply);
	}
	json_decref(req);
	return ret;
}

static void print_duration(long long s)
{
	if (s >= 86400)
		printf("%lldd ", s / 86400);
	if (s >= 3600)
		printf("%lldh ", s / 3600 % 24);
	if (s >= 60)
		printf("%lldm ", s / 60 % 60);
	printf("%llds", s % 60);
}

static int ctl_status(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply, *services, *s, *cache;
	size_t i;
	int ret;

	if (argc > 1)
		return ctl_usage("status takes no arguments besides --json");
	reply = ctl_simple(ctl, "status");
	if (reply == NULL)
		return CTL_FAILED;
	if ((ret = ctl_report(reply)) != CTL_OK) {
		json_decref(reply);
		return ret;
	}
	if (ctl->json) {
		json_object_del(reply, "ok");
		json_object_set_new(reply, "running", json_true());
		json_dumpf(reply, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(reply);
		return CTL_OK;
	}
	printf("petreld %s running, pid %lld, up ",
	       json_string_value(json_object_get(reply, "version")),
	       (long long)json_integer_value(json_object_get(reply, "pid")));
	print_duration((long long)json_integer_value(json_object_get(reply, "uptime")));
	printf("\nhost name:   %s\nconnections: %lld\nqueue:       %lld messages\n",
	       json_string_value(json_object_get(reply, "hostname")),
	       (long long)json_integer_value(json_object_get(reply, "connections")),
	       (long long)json_integer_value(json_object_get(reply, "queue")));
	cache = json_object_get(reply, "auth_cache");
	if (cache != NULL)
		printf("auth cache:  %lld users, %lld hits, %lld misses\n",
		       (long long)json_integer_value(json_object_get(cache, "entries")),
		       (long long)json_integer_value(json_object_get(cache, "hits")),
		       (long long)json_integer_value(json_object_get(cache, "misses")));
	printf("services:\n");
	services = json_object_get(reply, "services");
	json_array_foreach(services, i, s) {
		printf("  %-11s %-16s %5lld  tls=%-8s %s\n",
		       json_string_value(json_object_get(s, "service")),
		       json_string_value(json_object_get(s, "address")),
		       (long long)json_integer_value(json_object_get(s, "port")),
		       json_string_value(json_object_get(s, "tls")),
		       json_string_value(json_object_get(s, "state")));
	}
	json_decref(reply);
	return CTL_OK;
}

static int ctl_simple_command(struct ctl *ctl, int argc, char **argv, const char *done)
{
	json_t *reply;
	int ret;

	if (argc > 1)
		return ctl_usage("%s takes no arguments", argv[0]);
	reply = ctl_simple(ctl, argv[0]);
	if (reply == NULL)
		return CTL_FAILED;
	ret = ctl_report(reply);
	if (ret == CTL_OK)
		printf("%s\n", done);
	json_decref(reply);
	return ret;
}

/* True while pid names a process that has not exited (a zombie, waiting
 * for its parent to reap it, has exited). */
static bool process_alive(long long pid)
{
	char path[64], line[1024], state = 0;
	FILE *f;

	if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
		return false;
	/* /proc files report size 0: read them as a stream. */
	snprintf(path, sizeof(path), "/proc/%lld/stat", pid);
	f = fopen(path, "r");
	if (f != NULL) {
		if (fgets(line, sizeof(line), f) != NULL) {
			/* "pid (comm) S ...": the state follows the last ')'. */
			char *p = strrchr(line, ')');

			if (p != NULL && p[1] == ' ')
				state = p[2];
		}
		fclose(f);
	}
	return state != 'Z' && state != 'X';
}

/* Asks the engine to stop, then waits until its process is gone, so that
 * an init script can start a new one right after. */
static int ctl_stop(struct ctl *ctl, int argc, char **argv)
{
	json_t *status, *reply;
	long long pid;
	int ret;

	if (argc > 1)
		return ctl_usage("stop takes no arguments");
	status = ctl_simple(ctl, "status");
	if (status == NULL)
		return CTL_FAILED;
	pid = json_integer_value(json_object_get(status, "pid"));
	json_decref(status);
	reply = ctl_simple(ctl, "stop");
	if (reply == NULL)
		return CTL_FAILED;
	ret = ctl_report(reply);
	json_decref(reply);
	if (ret != CTL_OK)
		return ret;
	/* The engine gives sessions server/shutdown-timeout to finish, then
	 * closes them; wait a little longer than the longest allowed. */
	for (int i = 0; i < 10 * 3700 && pid > 0; i++) {
		if (!process_alive(pid)) {
			printf("petreld stopped\n");
			return CTL_OK;
		}
		usleep(100 * 1000);
	}
	return ctl_fail("petreld (pid %lld) did not stop", pid);
}

/* Takes --config-dir DIR and --json out of argv wherever they are (setup
 * names --config-dir after the command word). */
static int extract_globals(struct ctl *ctl, int *argc, char **argv)
{
	int out = 0;

	for (int i = 0; i < *argc; i++) {
		if (strcmp(argv[i], "--config-dir") == 0) {
			if (i + 1 >= *argc)
				return -1;
			ctl->config_dir = argv[++i];
		} else if (str_has_prefix(argv[i], "--config-dir=")) {
			ctl->config_dir = argv[i] + strlen("--config-dir=");
		} else if (strcmp(argv[i], "--json") == 0) {
			ctl->json = true;
		} else {
			argv[out++] = argv[i];
		}
	}
	*argc = out;
	argv[out] = NULL;
	return 0;
}

int main(int argc, char **argv)
{
	struct ctl ctl = { .config_dir = DEFAULT_CONFIG_DIR, .json = false };
	char **args = argv + 1;
	int nargs = argc - 1;

	directory_set_secrets_hook(auth_derive_secrets);
	directory_set_prepare_hook(auth_prepare_password);
	cfg_set_value_check(sasl_cfg_check);
	if (extract_globals(&ctl, &nargs, args) < 0)
		return ctl_usage("--config-dir needs a directory");
	if (nargs == 0)
		return usage(stderr), CTL_USAGE;
	if (strcmp(args[0], "--help") == 0 || strcmp(args[0], "help") == 0)
		return usage(stdout), CTL_OK;
	if (strcmp(args[0], "status") == 0)
		return ctl_status(&ctl, nargs, args);
	if (strcmp(args[0], "reload") == 0)
		return ctl_simple_command(&ctl, nargs, args, "petreld reloaded");
	if (strcmp(args[0], "stop") == 0)
		return ctl_stop(&ctl, nargs, args);
	if (strcmp(args[0], "setup") == 0)
		return ctl_setup_main(&ctl, nargs, args);
	if (strcmp(args[0], "log") == 0)
		return ctl_log_main(&ctl, nargs - 1, args + 1);
	if (strcmp(args[0], "cert") == 0)
		return ctl_cert_main(&ctl, nargs - 1, args + 1);
	if (strcmp(args[0], "queue") == 0)
		return ctl_queue_main(&ctl, nargs - 1, args + 1);
	if (strcmp(args[0], "domain") == 0)
		return ctl_domain_main(&ctl, nargs - 1, args + 1);
	if (strcmp(args[0], "user") == 0)
		return ctl_user_main(&ctl, nargs - 1, args + 1);
	if (strcmp(args[0], "alias") == 0)
		return ctl_alias_main(&ctl, nargs - 1, args + 1);
	if (strcmp(args[0], "group") == 0)
		return ctl_group_main(&ctl, nargs - 1, args + 1);
	if (strcmp(args[0], "list") == 0)
		return ctl_list_main(&ctl, nargs - 1, args + 1);
	if (strcmp(args[0], "resolve") == 0)
		return ctl_resolve_main(&ctl, nargs - 1, args + 1);
	if (strcmp(args[0], "mailbox") == 0)
		return ctl_mailbox_main(&ctl, nargs - 1, args + 1);
	if (strcmp(args[0], "public") == 0)
		return ctl_public_main(&ctl, nargs - 1, args + 1);
	return ctl_usage("unknown command '%s'", args[0]);
}
