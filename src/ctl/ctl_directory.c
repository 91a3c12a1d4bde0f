/*
 * petrelctl domain | user | alias | group | list | resolve: the directory
 * (users.cfg) from the command line.
 *
 * Each command becomes one JSON request of the admin API
 * (docs/control-protocol.md).  When petreld runs, the request goes over
 * the control socket and the engine applies it live: it writes users.cfg
 * atomically and swaps the new directory in.  When petreld does not run,
 * petrelctl applies the very same request itself (directory_cmd.c: load
 * users.cfg, change, check, write atomically), holding a lock on the
 * config directory so that two petrelctl runs do not lose each other's
 * change.  Either way the output and the file are the same.
 * docs/accounts.md is the administrator's side of this file.
 */
#include "ctl/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/cfg.h"
#include "core/str.h"
#include "directory/directory.h"
#include "directory/directory_cmd.h"

#define CTL_DOMAIN_USAGE \
	"usage: petrelctl domain add NAME [--primary] | domain remove NAME [--force]\n" \
	"       petrelctl domain list [--json] | domain show NAME [--json]\n" \
	"       petrelctl domain set NAME [--primary] [--catch-all ADDRESS | --no-catch-all]\n" \
	"                                 [--realm REALM | --default-realm]\n" \
	"       petrelctl domain alias add NAME ALIAS | domain alias remove ALIAS"
#define CTL_USER_USAGE \
	"usage: petrelctl user add ADDRESS --password P [--quota MB] [--messages N] [--admin]\n" \
	"                 [--full-name NAME] [--disabled]\n" \
	"       petrelctl user remove|show ADDRESS | user list [DOMAIN] [--json]\n" \
	"       petrelctl user passwd ADDRESS --password P   (P \"-\": read from stdin)\n" \
	"       petrelctl user set ADDRESS [--full-name NAME] [--quota MB] [--messages N]\n" \
	"                 [--admin yes|no] [--enabled yes|no]\n" \
	"       petrelctl user alias add|remove ADDRESS EXTRA-ADDRESS\n" \
	"       petrelctl user forward ADDRESS TARGET... [--keep-copy] | user forward ADDRESS --off\n" \
	"       petrelctl user autoreply ADDRESS [--on|--off] [--subject S] [--text T | --text-file F]\n" \
	"                 [--start DATE] [--end DATE]"
#define CTL_ALIAS_USAGE \
	"usage: petrelctl alias add ADDRESS TARGET... | alias remove ADDRESS [TARGET...]\n" \
	"       petrelctl alias list [DOMAIN] [--json]"
#define CTL_GROUP_USAGE \
	"usage: petrelctl group add|remove ADDRESS [--member ADDRESS]...\n" \
	"       petrelctl group list [DOMAIN] [--json] | group show ADDRESS [--json]"
#define CTL_LIST_USAGE \
	"usage: petrelctl list add ADDRESS [--member ADDRESS]... [--moderator ADDRESS]...\n" \
	"                 [--posting members|anyone|moderated] [--reply-to list|sender|none]\n" \
	"                 [--subscription open|closed] [--description TEXT]\n" \
	"       petrelctl list remove ADDRESS [--member ADDRESS]... [--moderator ADDRESS]...\n" \
	"       petrelctl list list [DOMAIN] [--json] | list show ADDRESS [--json]"
#define CTL_RESOLVE_USAGE "usage: petrelctl resolve ADDRESS [--separator C] [--json]"

#define CLI_MAX_OPTS 256
/* Longest auto-reply text file we read (the directory's own limit). */
#define CTL_MAX_TEXT_FILE DIRECTORY_MAX_TEXT

/* ---- command lines ------------------------------------------------------ */

struct cli {
	const char **pos;
	int npos;
	struct {
		const char *name;     /* without the dashes */
		const char *value;    /* NULL for a flag */
	} opts[CLI_MAX_OPTS];
	int nopts;
};

/* The spec of an option in a space-separated list: "name" a flag, "name="
 * one value, "name*" a value that may repeat.  Returns the kind char or 0. */
static char spec_kind(const char *spec, const char *name, size_t len)
{
	const char *p = spec;

	while (*p != '\0') {
		size_t n = strcspn(p, " ");
		size_t base = n > 0 && (p[n - 1] == '=' || p[n - 1] == '*') ? n - 1 : n;

		if (base == len && strncmp(p, name, len) == 0)
			return base == n ? 'f' : p[n - 1];
		p += n;
		while (*p == ' ')
			p++;
	}
	return 0;
}

static int cli_parse(int argc, char **argv, int first, const char *spec, int min_pos, int max_pos,
		     struct cli *c, const char *usage)
{
	bool options_done = false;

	c->pos = xcalloc((size_t)argc + 1, sizeof(*c->pos));
	c->npos = 0;
	c->nopts = 0;
	for (int i = first; i < argc; i++) {
		const char *arg = argv[i], *name, *eq, *value = NULL;
		size_t len;
		char kind;

		if (options_done || arg[0] != '-' || arg[1] != '-' || arg[2] == '\0') {
			if (!options_done && strcmp(arg, "--") == 0) {
				options_done = true;
				continue;
			}
			c->pos[c->npos++] = arg;
			continue;
		}
		name = arg + 2;
		eq = strchr(name, '=');
		len = eq != NULL ? (size_t)(eq - name) : strlen(name);
		kind = spec_kind(spec, name, len);
		if (kind == 0)
			return ctl_usage("unknown option --%.*s\n%s", (int)len, name, usage);
		if (kind == 'f') {
			if (eq != NULL)
				return ctl_usage("--%.*s takes no value\n%s", (int)len, name, usage);
		} else if (eq != NULL) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			return ctl_usage("--%.*s needs a value\n%s", (int)len, name, usage);
		}
		for (int k = 0; kind != '*' && k < c->nopts; k++) {
			if (strlen(c->opts[k].name) == len && strncmp(c->opts[k].name, name, len) == 0)
				return ctl_usage("--%.*s given twice\n%s", (int)len, name, usage);
		}
		if (c->nopts == CLI_MAX_OPTS)
			return ctl_usage("too many options");
		c->opts[c->nopts].name = xstrndup(name, len);
		c->opts[c->nopts].value = value;
		c->nopts++;
	}
	if (c->npos < min_pos)
		return ctl_usage("%s\n%s", c->npos == 0 ? "missing argument" : "missing arguments",
				 usage);
	if (max_pos >= 0 && c->npos > max_pos)
		return ctl_usage("unexpected argument '%s'\n%s", c->pos[max_pos], usage);
	return CTL_OK;
}

static void cli_free(struct cli *c)
{
	for (int i = 0; i < c->nopts; i++)
		free((char *)c->opts[i].name);
	free(c->pos);
	c->pos = NULL;
	c->nopts = 0;
}

static const char *cli_value(const struct cli *c, const char *name)
{
	for (int i = 0; i < c->nopts; i++) {
		if (strcmp(c->opts[i].name, name) == 0)
			return c->opts[i].value != NULL ? c->opts[i].value : "";
	}
	return NULL;
}

static bool cli_flag(const struct cli *c, const char *name)
{
	return cli_value(c, name) != NULL;
}

/* Every value of a repeatable option, as a JSON array (NULL if none). */
static json_t *cli_values(const struct cli *c, const char *name)
{
	json_t *arr = NULL;

	for (int i = 0; i < c->nopts; i++) {
		if (strcmp(c->opts[i].name, name) != 0)
			continue;
		if (arr == NULL)
			arr = json_array();
		json_array_append_new(arr, json_string(c->opts[i].value));
	}
	return arr;
}

/* A JSON string, or NULL when s is not valid UTF-8 (after a message). */
static json_t *text_json(const char *what, const char *s)
{
	json_t *j = json_string(s);

	if (j == NULL)
		ctl_fail("%s is not valid UTF-8", what);
	return j;
}

static bool add_text(json_t *req, const char *key, const char *what, const char *s)
{
	json_t *j;

	if (s == NULL)
		return true;
	j = text_json(what, s);
	if (j == NULL)
		return false;
	json_object_set_new(req, key, j);
	return true;
}

static bool add_values(json_t *req, const char *key, json_t *arr)
{
	size_t i;
	json_t *v;

	if (arr == NULL)
		return true;
	json_array_foreach(arr, i, v) {
		if (v == NULL || json_is_null(v)) {
			json_decref(arr);
			ctl_fail("an address is not valid UTF-8");
			return false;
		}
	}
	json_object_set_new(req, key, arr);
	return true;
}

/* Positional arguments from index from on, as a JSON array. */
static json_t *pos_array(const struct cli *c, int from)
{
	json_t *arr = json_array();

	for (int i = from; i < c->npos; i++)
		json_array_append_new(arr, json_string(c->pos[i]));
	return arr;
}

/* --quota MB: a number of megabytes, or a size with K/M/G/T. */
static int parse_quota(const char *text, int64_t *bytes_r)
{
	int64_t v;
	char *reason = NULL;

	if (str_to_i64(text, 0, INT64_MAX / (1024 * 1024), &v) == 0) {
		*bytes_r = v * 1024 * 1024;
		return 0;
	}
	if (cfg_parse_scalar(SETTING_SIZE, text, 0, INT64_MAX, &v, &reason) == 0) {
		*bytes_r = v;
		return 0;
	}
	free(reason);
	return -1;
}

/* --password P, "-" meaning one line from stdin.  Caller frees (wipes). */
static char *read_password(const char *value)
{
	char line[DIRECTORY_MAX_PASSWORD + 2];

	if (strcmp(value, "-") != 0)
		return xstrdup(value);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return xstrdup("");
	line[strcspn(line, "\r\n")] = '\0';
	{
		char *p = xstrdup(line);

		explicit_bzero(line, sizeof(line));
		return p;
	}
}

static void free_password(char *p)
{
	if (p != NULL) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

/* ---- engine or file ----------------------------------------------------- */

/* The control socket path: from mailserver.cfg when it loads, else the
 * default name in the config dir (as petrelctl.c does).  Caller frees. */
static char *socket_path(struct ctl *ctl)
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

enum engine_state { ENGINE_RUNNING, ENGINE_STOPPED, ENGINE_UNREACHABLE };

/* Whether petreld answers on its socket.  Only "no socket" and "nobody
 * listening" count as stopped: any other failure (permissions) is not a
 * reason to edit the file behind a running engine's back. */
static enum engine_state probe_engine(struct ctl *ctl, char **why_r)
{
	struct sockaddr_un sun;
	char *path = socket_path(ctl);
	enum engine_state state = ENGINE_RUNNING;
	int fd;

	*why_r = NULL;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) < 0) {
		*why_r = xasprintf("%s: control socket path too long", path);
		free(path);
		return ENGINE_UNREACHABLE;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*why_r = xasprintf("cannot make a socket: %s", strerror(errno));
		state = ENGINE_UNREACHABLE;
	} else if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED) {
			state = ENGINE_STOPPED;
		} else {
			*why_r = xasprintf("cannot reach petreld on %s: %s", path, strerror(errno));
			state = ENGINE_UNREACHABLE;
		}
	}
	if (fd >= 0)
		close(fd);
	free(path);
	return state;
}

static void print_warning(const char *warning, void *context)
{
	fprintf(stderr, "petrelctl: warning: %s\n", warning);
}

/* Applies request to users.cfg directly.  Returns the reply, or NULL
 * after printing why not. */
static json_t *run_offline(struct ctl *ctl, json_t *request, bool *changed_r)
{
	const char *name = json_string_value(json_object_get(request, "command"));
	bool writes = directory_cmd_writes(name);
	struct directory *dir = NULL, *saved = NULL;
	json_t *reply = NULL;
	char *error = NULL, *why = NULL;
	int lock = -1;

	*changed_r = false;
	if (writes) {
		lock = open(ctl->config_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (lock < 0) {
			ctl_fail("%s: cannot open config directory: %s", ctl->config_dir,
				 strerror(errno));
			return NULL;
		}
		if (flock(lock, LOCK_EX) < 0) {
			ctl_fail("%s: cannot lock: %s", ctl->config_dir, strerror(errno));
			close(lock);
			return NULL;
		}
		/* The engine may have started while we waited. */
		if (probe_engine(ctl, &why) != ENGINE_STOPPED) {
			free(why);
			close(lock);
			ctl_fail("petreld started meanwhile; run the command again");
			return NULL;
		}
	}
	if (directory_load(ctl->config_dir, writes ? print_warning : NULL, NULL, &dir, &error) < 0) {
		ctl_fail("%s", error);
		free(error);
		goto out;
	}
	reply = directory_cmd_execute(dir, request, &saved);
	*changed_r = saved != NULL;
	directory_unref(&saved);
	directory_unref(&dir);
out:
	if (lock >= 0)
		close(lock);
	return reply;
}

/* Sends request to the engine, or applies it to the file when no engine
 * runs.  Returns the reply (check "ok"), or NULL after printing why. */
static json_t *dir_request(struct ctl *ctl, json_t *request, bool *offline_r)
{
	json_t *reply = NULL;
	const char *error;
	char *why = NULL;
	bool changed;

	*offline_r = false;
	switch (probe_engine(ctl, &why)) {
	case ENGINE_RUNNING:
		if (ctl_request(ctl, request, &reply, &error) < 0) {
			ctl_fail("%s", error);
			return NULL;
		}
		return reply;
	case ENGINE_UNREACHABLE:
		ctl_fail("%s", why);
		free(why);
		return NULL;
	case ENGINE_STOPPED:
		break;
	}
	*offline_r = true;
	reply = run_offline(ctl, request, &changed);
	(void)changed;
	return reply;
}

/* Runs request; prints the error, or --json, or what print says.  Takes
 * over request. */
static int run(struct ctl *ctl, json_t *request, void (*print)(json_t *reply))
{
	const char *name = json_string_value(json_object_get(request, "command"));
	bool writes = directory_cmd_writes(name), offline;
	json_t *reply = dir_request(ctl, request, &offline);
	const char *error;

	json_decref(request);
	if (reply == NULL)
		return CTL_FAILED;
	if (!json_is_true(json_object_get(reply, "ok"))) {
		error = json_string_value(json_object_get(reply, "error"));
		ctl_fail("%s", error != NULL ? error : "request failed");
		json_decref(reply);
		return CTL_FAILED;
	}
	if (ctl->json) {
		json_object_del(reply, "ok");
		json_dumpf(reply, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
	} else if (print != NULL) {
		print(reply);
	} else {
		const char *message = json_string_value(json_object_get(reply, "message"));

		if (message != NULL)
			printf("%s\n", message);
	}
	if (writes && offline && !ctl->json)
		printf("(petreld is not running: users.cfg was changed directly)\n");
	json_decref(reply);
	return CTL_OK;
}

static json_t *request(const char *command)
{
	return json_pack("{s:s}", "command", command);
}

/* Adds a positional argument (an address or name) as key. */
static bool add_pos(json_t *req, const char *key, const char *value)
{
	return add_text(req, key, "the address", value);
}

/* ---- printing ----------------------------------------------------------- */

static const char *s(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL ? v : "";
}

static void print_joined(json_t *arr, const char *none)
{
	size_t i;
	json_t *v;

	if (json_array_size(arr) == 0) {
		printf("%s", none);
		return;
	}
	json_array_foreach(arr, i, v)
		printf("%s%s", i > 0 ? ", " : "", json_string_value(v));
}

static void print_size(long long bytes)
{
	static const char units[] = "KMGT";
	int u = -1;

	if (bytes == 0) {
		printf("unlimited");
		return;
	}
	while (u < 3 && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	if (u < 0)
		printf("%lld bytes", bytes);
	else
		printf("%lld%c", bytes, units[u]);
}

static void print_domains(json_t *reply)
{
	size_t i;
	json_t *d;

	json_array_foreach(json_object_get(reply, "domains"), i, d) {
		printf("%s%s  users=%lld aliases=%lld groups=%lld lists=%lld", s(d, "name"),
		       json_is_true(json_object_get(d, "primary")) ? " (primary)" : "",
		       (long long)json_integer_value(json_object_get(d, "users")),
		       (long long)json_integer_value(json_object_get(d, "aliases")),
		       (long long)json_integer_value(json_object_get(d, "groups")),
		       (long long)json_integer_value(json_object_get(d, "lists")));
		if (json_array_size(json_object_get(d, "alias_domains")) > 0) {
			printf("  alias-domains=");
			print_joined(json_object_get(d, "alias_domains"), "");
		}
		if (json_is_string(json_object_get(d, "catch_all")))
			printf("  catch-all=%s", s(d, "catch_all"));
		putchar('\n');
	}
}

static void print_domain(json_t *reply)
{
	json_t *d = json_object_get(reply, "domain");

	printf("domain:        %s\n", s(d, "name"));
	printf("primary:       %s\n", json_is_true(json_object_get(d, "primary")) ? "yes" : "no");
	printf("alias domains: ");
	print_joined(json_object_get(d, "alias_domains"), "(none)");
	printf("\ncatch-all:     %s\n",
	       json_is_string(json_object_get(d, "catch_all")) ? s(d, "catch_all") : "(off)");
	printf("realm:         %s%s\n", s(d, "realm"),
	       json_is_true(json_object_get(d, "realm_default")) ? " (default)" : "");
	printf("users:         %lld\naliases:       %lld\ngroups:        %lld\nlists:         %lld\n",
	       (long long)json_integer_value(json_object_get(d, "users")),
	       (long long)json_integer_value(json_object_get(d, "aliases")),
	       (long long)json_integer_value(json_object_get(d, "groups")),
	       (long long)json_integer_value(json_object_get(d, "lists")));
}

static void print_users(json_t *reply)
{
	size_t i;
	json_t *u;

	json_array_foreach(json_object_get(reply, "users"), i, u) {
		printf("%s", s(u, "address"));
		if (s(u, "full_name")[0] != '\0')
			printf("  \"%s\"", s(u, "full_name"));
		if (json_is_true(json_object_get(u, "admin")))
			printf("  admin");
		if (!json_is_true(json_object_get(u, "enabled")))
			printf("  disabled");
		printf("  quota=");
		print_size((long long)json_integer_value(json_object_get(u, "quota_storage")));
		putchar('\n');
	}
}

static void print_user(json_t *reply)
{
	json_t *u = json_object_get(reply, "user"), *fw = json_object_get(u, "forward");
	json_t *ar = json_object_get(u, "auto_reply");
	long long messages = (long long)json_integer_value(json_object_get(u, "quota_messages"));

	printf("address:       %s\n", s(u, "address"));
	printf("login:         ");
	print_joined(json_object_get(u, "login"), "");
	printf("\nfull name:     %s\n", s(u, "full_name"));
	printf("enabled:       %s\n", json_is_true(json_object_get(u, "enabled")) ? "yes" : "no");
	printf("admin:         %s\n", json_is_true(json_object_get(u, "admin")) ? "yes" : "no");
	printf("quota:         ");
	print_size((long long)json_integer_value(json_object_get(u, "quota_storage")));
	if (messages > 0)
		printf(", %lld messages\n", messages);
	else
		printf(", unlimited messages\n");
	if (json_is_string(json_object_get(u, "password")))
		printf("password:      set (%s hash)\n", s(u, "password"));
	else
		printf("password:      none (cannot log in with a password)\n");
	printf("secrets:       ");
	print_joined(json_object_get(u, "secrets"), "(none)");
	printf("\nextra addresses: ");
	print_joined(json_object_get(u, "aliases"), "(none)");
	printf("\nforward:       ");
	print_joined(json_object_get(fw, "targets"), "(off)");
	if (json_array_size(json_object_get(fw, "targets")) > 0)
		printf(json_is_true(json_object_get(fw, "keep_copy")) ? " (keeping a copy)"
								      : " (no copy kept)");
	printf("\nauto-reply:    %s", json_is_true(json_object_get(ar, "enabled")) ? "on" : "off");
	if (json_is_string(json_object_get(ar, "start")))
		printf(" from %s", s(ar, "start"));
	if (json_is_string(json_object_get(ar, "end")))
		printf(" until %s", s(ar, "end"));
	putchar('\n');
	if (s(ar, "subject")[0] != '\0')
		printf("  subject:     %s\n", s(ar, "subject"));
	if (s(ar, "text")[0] != '\0') {
		const char *t = s(ar, "text");

		printf("  text:        ");
		for (; *t != '\0'; t++) {
			putchar(*t);
			if (*t == '\n')
				printf("               ");
		}
		putchar('\n');
	}
	printf("groups:        ");
	print_joined(json_object_get(u, "groups"), "(none)");
	printf("\nlists:         ");
	print_joined(json_object_get(u, "lists"), "(none)");
	printf("\nmoderates:     ");
	print_joined(json_object_get(u, "moderates"), "(none)");
	putchar('\n');
}

static void print_aliases(json_t *reply)
{
	size_t i;
	json_t *a;

	json_array_foreach(json_object_get(reply, "aliases"), i, a) {
		printf("%s -> ", s(a, "address"));
		print_joined(json_object_get(a, "targets"), "");
		putchar('\n');
	}
}

static void print_groups(json_t *reply)
{
	size_t i;
	json_t *g;

	json_array_foreach(json_object_get(reply, "groups"), i, g) {
		printf("%s: ", s(g, "address"));
		print_joined(json_object_get(g, "members"), "(no members)");
		putchar('\n');
	}
}

static void print_group(json_t *reply)
{
	json_t *g = json_object_get(reply, "group");
	size_t i;
	json_t *m;

	printf("group:         %s\nmembers:       %zu\n", s(g, "address"),
	       json_array_size(json_object_get(g, "members")));
	json_array_foreach(json_object_get(g, "members"), i, m)
		printf("  %s\n", json_string_value(m));
}

static void print_lists(json_t *reply)
{
	size_t i;
	json_t *l;

	json_array_foreach(json_object_get(reply, "lists"), i, l) {
		printf("%s  posting=%s reply-to=%s subscription=%s members=%zu\n", s(l, "address"),
		       s(l, "posting"), s(l, "reply_to"), s(l, "subscription"),
		       json_array_size(json_object_get(l, "members")));
	}
}

static void print_list(json_t *reply)
{
	json_t *l = json_object_get(reply, "list");
	size_t i;
	json_t *m;

	printf("list:          %s\n", s(l, "address"));
	printf("description:   %s\n", s(l, "description")[0] != '\0' ? s(l, "description") : "(none)");
	printf("posting:       %s\n", s(l, "posting"));
	printf("moderators:    ");
	print_joined(json_object_get(l, "moderators"), "(none)");
	printf("\nreply-to:      %s\n", s(l, "reply_to"));
	printf("subscription:  %s (by mail to %s)\n", s(l, "subscription"), s(l, "list_subscribe"));
	printf("List-Id:       %s\n", s(l, "list_id"));
	printf("List-Unsubscribe: %s\n", s(l, "list_unsubscribe"));
	printf("members:       %zu\n", json_array_size(json_object_get(l, "members")));
	json_array_foreach(json_object_get(l, "members"), i, m)
		printf("  %s\n", json_string_value(m));
}

static void print_resolution(json_t *reply)
{
	size_t i;
	json_t *r;

	printf("%s: %s", s(reply, "address"), s(reply, "result"));
	if (s(reply, "entry")[0] != '\0')
		printf(" (%s)", s(reply, "entry"));
	if (json_is_true(json_object_get(reply, "catch_all")))
		printf(" through the catch-all");
	if (s(reply, "command")[0] != '\0')
		printf(": %s %s", s(reply, "command"), s(reply, "list"));
	else if (s(reply, "list")[0] != '\0')
		printf(": %s", s(reply, "list"));
	if (s(reply, "detail")[0] != '\0')
		printf(", detail \"%s\"", s(reply, "detail"));
	putchar('\n');
	if (s(reply, "error")[0] != '\0')
		printf("  %s\n", s(reply, "error"));
	json_array_foreach(json_object_get(reply, "recipients"), i, r) {
		printf("  %-6s %s", s(r, "kind"), s(r, "address"));
		if (s(r, "detail")[0] != '\0')
			printf(" (detail \"%s\")", s(r, "detail"));
		putchar('\n');
	}
	if (json_integer_value(json_object_get(reply, "skipped")) > 0)
		printf("  (%lld local targets that do not exist were skipped)\n",
		       (long long)json_integer_value(json_object_get(reply, "skipped")));
}

/* ---- domain ------------------------------------------------------------- */

static int domain_alias(struct ctl *ctl, int argc, char **argv)
{
	struct cli c;
	json_t *req;
	int ret;

	if (argc < 2)
		return ctl_usage("domain alias: add or remove?\n" CTL_DOMAIN_USAGE);
	if (strcmp(argv[1], "add") == 0) {
		if ((ret = cli_parse(argc, argv, 2, "", 2, 2, &c, CTL_DOMAIN_USAGE)) != CTL_OK)
			goto out;
		req = request("domain-alias-add");
		if (!add_pos(req, "name", c.pos[0]) || !add_pos(req, "alias", c.pos[1])) {
			json_decref(req);
			ret = CTL_FAILED;
			goto out;
		}
	} else if (strcmp(argv[1], "remove") == 0) {
		if ((ret = cli_parse(argc, argv, 2, "", 1, 1, &c, CTL_DOMAIN_USAGE)) != CTL_OK)
			goto out;
		req = request("domain-alias-remove");
		if (!add_pos(req, "alias", c.pos[0])) {
			json_decref(req);
			ret = CTL_FAILED;
			goto out;
		}
	} else {
		return ctl_usage("domain alias: unknown command '%s'\n" CTL_DOMAIN_USAGE, argv[1]);
	}
	ret = run(ctl, req, NULL);
out:
	cli_free(&c);
	return ret;
}

int ctl_domain_main(struct ctl *ctl, int argc, char **argv)
{
	struct cli c = { .pos = NULL };
	json_t *req = NULL;
	void (*print)(json_t *) = NULL;
	const char *cmd;
	int ret;

	if (argc < 1)
		return ctl_usage("domain: which command?\n" CTL_DOMAIN_USAGE);
	cmd = argv[0];
	if (strcmp(cmd, "alias") == 0)
		return domain_alias(ctl, argc, argv);
	if (strcmp(cmd, "add") == 0) {
		ret = cli_parse(argc, argv, 1, "primary", 1, 1, &c, CTL_DOMAIN_USAGE);
		if (ret == CTL_OK) {
			req = request("domain-add");
			if (cli_flag(&c, "primary"))
				json_object_set_new(req, "primary", json_true());
		}
	} else if (strcmp(cmd, "remove") == 0) {
		ret = cli_parse(argc, argv, 1, "force", 1, 1, &c, CTL_DOMAIN_USAGE);
		if (ret == CTL_OK) {
			req = request("domain-remove");
			if (cli_flag(&c, "force"))
				json_object_set_new(req, "force", json_true());
		}
	} else if (strcmp(cmd, "list") == 0) {
		ret = cli_parse(argc, argv, 1, "", 0, 0, &c, CTL_DOMAIN_USAGE);
		req = request("domain-list");
		print = print_domains;
	} else if (strcmp(cmd, "show") == 0) {
		ret = cli_parse(argc, argv, 1, "", 1, 1, &c, CTL_DOMAIN_USAGE);
		req = request("domain-show");
		print = print_domain;
	} else if (strcmp(cmd, "set") == 0) {
		ret = cli_parse(argc, argv, 1,
				"primary catch-all= no-catch-all realm= default-realm", 1, 1, &c,
				CTL_DOMAIN_USAGE);
		if (ret == CTL_OK) {
			if (cli_flag(&c, "catch-all") && cli_flag(&c, "no-catch-all"))
				ret = ctl_usage("--catch-all or --no-catch-all, not both\n"
						CTL_DOMAIN_USAGE);
			else if (cli_flag(&c, "realm") && cli_flag(&c, "default-realm"))
				ret = ctl_usage("--realm or --default-realm, not both\n"
						CTL_DOMAIN_USAGE);
			else if (!cli_flag(&c, "catch-all") && !cli_flag(&c, "no-catch-all") &&
				 !cli_flag(&c, "primary") && !cli_flag(&c, "realm") &&
				 !cli_flag(&c, "default-realm"))
				ret = ctl_usage("domain set: nothing to change\n" CTL_DOMAIN_USAGE);
		}
		if (ret == CTL_OK) {
			req = request("domain-set");
			if (cli_flag(&c, "primary"))
				json_object_set_new(req, "primary", json_true());
			if (cli_flag(&c, "no-catch-all"))
				json_object_set_new(req, "catch_all", json_null());
			else if (!add_text(req, "catch_all", "the catch-all address",
					   cli_value(&c, "catch-all")))
				ret = CTL_FAILED;
			if (cli_flag(&c, "default-realm"))
				json_object_set_new(req, "realm", json_null());
			else if (ret == CTL_OK &&
				 !add_text(req, "realm", "the realm", cli_value(&c, "realm")))
				ret = CTL_FAILED;
		}
	} else {
		return ctl_usage("domain: unknown command '%s'\n" CTL_DOMAIN_USAGE, cmd);
	}
	if (ret == CTL_OK && c.npos > 0 && !add_pos(req, "name", c.pos[0]))
		ret = CTL_FAILED;
	cli_free(&c);
	if (ret != CTL_OK) {
		json_decref(req);
		return ret;
	}
	return run(ctl, req, print);
}

/* ---- user --------------------------------------------------------------- */

static int user_alias(struct ctl *ctl, int argc, char **argv)
{
	struct cli c;
	json_t *req;
	int ret;

	if (argc < 2 || (strcmp(argv[1], "add") != 0 && strcmp(argv[1], "remove") != 0))
		return ctl_usage("user alias: add or remove?\n" CTL_USER_USAGE);
	if ((ret = cli_parse(argc, argv, 2, "", 2, 2, &c, CTL_USER_USAGE)) != CTL_OK) {
		cli_free(&c);
		return ret;
	}
	req = request(strcmp(argv[1], "add") == 0 ? "user-alias-add" : "user-alias-remove");
	if (!add_pos(req, "address", c.pos[0]) || !add_pos(req, "alias", c.pos[1])) {
		cli_free(&c);
		json_decref(req);
		return CTL_FAILED;
	}
	cli_free(&c);
	return run(ctl, req, NULL);
}

/* Fills quota_storage / quota_messages from --quota / --messages. */
static int quota_options(const struct cli *c, json_t *req)
{
	const char *quota = cli_value(c, "quota"), *messages = cli_value(c, "messages");
	int64_t v;

	if (quota != NULL) {
		if (parse_quota(quota, &v) < 0)
			return ctl_usage("--quota takes megabytes (500) or a size (500M, 2G); 0 is "
					 "no limit");
		json_object_set_new(req, "quota_storage", json_integer(v));
	}
	if (messages != NULL) {
		if (str_to_i64(messages, 0, INT64_MAX, &v) < 0)
			return ctl_usage("--messages takes a number of messages; 0 is no limit");
		json_object_set_new(req, "quota_messages", json_integer(v));
	}
	return CTL_OK;
}

static int yes_no_option(const struct cli *c, const char *name, json_t *req, const char *key)
{
	const char *v = cli_value(c, name);
	bool b;

	if (v == NULL)
		return CTL_OK;
	if (str_to_bool(v, &b) < 0)
		return ctl_usage("--%s takes yes or no", name);
	json_object_set_new(req, key, json_boolean(b));
	return CTL_OK;
}

static int user_autoreply_request(const struct cli *c, json_t *req)
{
	const char *file = cli_value(c, "text-file");
	char *text = NULL;
	size_t len;
	bool ok;

	if (cli_flag(c, "on") && cli_flag(c, "off"))
		return ctl_usage("--on or --off, not both\n" CTL_USER_USAGE);
	if (file != NULL && cli_flag(c, "text"))
		return ctl_usage("--text or --text-file, not both\n" CTL_USER_USAGE);
	if (cli_flag(c, "on"))
		json_object_set_new(req, "enabled", json_true());
	if (cli_flag(c, "off"))
		json_object_set_new(req, "enabled", json_false());
	if (file != NULL) {
		FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");

		if (f == NULL)
			return ctl_fail("%s: %s", file, strerror(errno));
		text = xmalloc(CTL_MAX_TEXT_FILE + 2);
		len = fread(text, 1, CTL_MAX_TEXT_FILE + 1, f);
		if (f != stdin)
			fclose(f);
		if (len > CTL_MAX_TEXT_FILE) {
			free(text);
			return ctl_fail("%s: longer than %d bytes", file, CTL_MAX_TEXT_FILE);
		}
		text[len] = '\0';
		if (strlen(text) != len) {
			free(text);
			return ctl_fail("%s: contains a NUL byte", file);
		}
	}
	ok = add_text(req, "subject", "--subject", cli_value(c, "subject")) &&
	     add_text(req, "text", "the text", text != NULL ? text : cli_value(c, "text")) &&
	     add_text(req, "start", "--start", cli_value(c, "start")) &&
	     add_text(req, "end", "--end", cli_value(c, "end"));
	free(text);
	return ok ? CTL_OK : CTL_FAILED;
}

int ctl_user_main(struct ctl *ctl, int argc, char **argv)
{
	struct cli c = { .pos = NULL };
	json_t *req = NULL;
	void (*print)(json_t *) = NULL;
	char *password = NULL;
	const char *cmd;
	int ret;

	if (argc < 1)
		return ctl_usage("user: which command?\n" CTL_USER_USAGE);
	cmd = argv[0];
	if (strcmp(cmd, "alias") == 0)
		return user_alias(ctl, argc, argv);
	if (strcmp(cmd, "add") == 0) {
		ret = cli_parse(argc, argv, 1, "password= password-hash= quota= messages= admin "
				"full-name= disabled", 1, 1, &c, CTL_USER_USAGE);
		if (ret == CTL_OK && cli_value(&c, "password") == NULL &&
		    cli_value(&c, "password-hash") == NULL)
			ret = ctl_usage("user add needs --password P (or --password-hash HASH)\n"
					CTL_USER_USAGE);
		if (ret == CTL_OK) {
			req = request("user-add");
			ret = quota_options(&c, req);
		}
		if (ret == CTL_OK) {
			if (cli_flag(&c, "admin"))
				json_object_set_new(req, "admin", json_true());
			if (cli_flag(&c, "disabled"))
				json_object_set_new(req, "enabled", json_false());
			if (!add_text(req, "full_name", "--full-name", cli_value(&c, "full-name")) ||
			    !add_text(req, "password_hash", "--password-hash",
				      cli_value(&c, "password-hash")))
				ret = CTL_FAILED;
		}
	} else if (strcmp(cmd, "remove") == 0) {
		ret = cli_parse(argc, argv, 1, "", 1, 1, &c, CTL_USER_USAGE);
		req = request("user-remove");
	} else if (strcmp(cmd, "show") == 0) {
		ret = cli_parse(argc, argv, 1, "", 1, 1, &c, CTL_USER_USAGE);
		req = request("user-show");
		print = print_user;
	} else if (strcmp(cmd, "list") == 0) {
		ret = cli_parse(argc, argv, 1, "", 0, 1, &c, CTL_USER_USAGE);
		req = request("user-list");
		print = print_users;
		if (ret == CTL_OK && c.npos == 1) {
			if (!add_text(req, "domain", "the domain", c.pos[0]))
				ret = CTL_FAILED;
			c.npos = 0;
		}
	} else if (strcmp(cmd, "passwd") == 0) {
		ret = cli_parse(argc, argv, 1, "password=", 1, 1, &c, CTL_USER_USAGE);
		if (ret == CTL_OK && cli_value(&c, "password") == NULL)
			ret = ctl_usage("user passwd needs --password P\n" CTL_USER_USAGE);
		req = request("user-passwd");
	} else if (strcmp(cmd, "set") == 0) {
		ret = cli_parse(argc, argv, 1, "full-name= quota= messages= admin= enabled=", 1, 1, &c,
				CTL_USER_USAGE);
		if (ret == CTL_OK && c.nopts == 0)
			ret = ctl_usage("user set: nothing to change\n" CTL_USER_USAGE);
		req = request("user-set");
		if (ret == CTL_OK)
			ret = quota_options(&c, req);
		if (ret == CTL_OK)
			ret = yes_no_option(&c, "admin", req, "admin");
		if (ret == CTL_OK)
			ret = yes_no_option(&c, "enabled", req, "enabled");
		if (ret == CTL_OK && !add_text(req, "full_name", "--full-name",
					       cli_value(&c, "full-name")))
			ret = CTL_FAILED;
	} else if (strcmp(cmd, "forward") == 0) {
		ret = cli_parse(argc, argv, 1, "keep-copy off", 1, -1, &c, CTL_USER_USAGE);
		if (ret == CTL_OK && cli_flag(&c, "off") == (c.npos > 1))
			ret = ctl_usage("user forward: give targets, or --off\n" CTL_USER_USAGE);
		req = request("user-forward");
		if (ret == CTL_OK) {
			if (!add_values(req, "targets", pos_array(&c, 1)))
				ret = CTL_FAILED;
			if (cli_flag(&c, "keep-copy"))
				json_object_set_new(req, "keep_copy", json_true());
		}
	} else if (strcmp(cmd, "autoreply") == 0) {
		ret = cli_parse(argc, argv, 1, "on off subject= text= text-file= start= end=", 1, 1,
				&c, CTL_USER_USAGE);
		req = request("user-autoreply");
		if (ret == CTL_OK)
			ret = user_autoreply_request(&c, req);
	} else {
		return ctl_usage("user: unknown command '%s'\n" CTL_USER_USAGE, cmd);
	}
	if (ret == CTL_OK && c.npos > 0 && !add_pos(req, "address", c.pos[0]))
		ret = CTL_FAILED;
	if (ret == CTL_OK && cli_value(&c, "password") != NULL) {
		password = read_password(cli_value(&c, "password"));
		if (!add_text(req, "password", "the password", password))
			ret = CTL_FAILED;
		free_password(password);
	}
	cli_free(&c);
	if (ret != CTL_OK) {
		json_decref(req);
		return ret;
	}
	return run(ctl, req, print);
}

/* ---- alias, group, list ------------------------------------------------- */

/* The "X list [DOMAIN]" commands. */
static int listing(struct ctl *ctl, int argc, char **argv, const char *command,
		   void (*print)(json_t *), const char *usage)
{
	struct cli c;
	json_t *req;
	int ret = cli_parse(argc, argv, 1, "", 0, 1, &c, usage);

	if (ret != CTL_OK) {
		cli_free(&c);
		return ret;
	}
	req = request(command);
	if (c.npos == 1 && !add_text(req, "domain", "the domain", c.pos[0])) {
		cli_free(&c);
		json_decref(req);
		return CTL_FAILED;
	}
	cli_free(&c);
	return run(ctl, req, print);
}

static int showing(struct ctl *ctl, int argc, char **argv, const char *command,
		   void (*print)(json_t *), const char *usage)
{
	struct cli c;
	json_t *req;
	int ret = cli_parse(argc, argv, 1, "", 1, 1, &c, usage);

	if (ret != CTL_OK) {
		cli_free(&c);
		return ret;
	}
	req = request(command);
	if (!add_pos(req, "address", c.pos[0])) {
		cli_free(&c);
		json_decref(req);
		return CTL_FAILED;
	}
	cli_free(&c);
	return run(ctl, req, print);
}

int ctl_alias_main(struct ctl *ctl, int argc, char **argv)
{
	struct cli c;
	json_t *req;
	int ret;

	if (argc < 1)
		return ctl_usage("alias: which command?\n" CTL_ALIAS_USAGE);
	if (strcmp(argv[0], "list") == 0)
		return listing(ctl, argc, argv, "alias-list", print_aliases, CTL_ALIAS_USAGE);
	if (strcmp(argv[0], "add") == 0)
		ret = cli_parse(argc, argv, 1, "", 2, -1, &c, CTL_ALIAS_USAGE);
	else if (strcmp(argv[0], "remove") == 0)
		ret = cli_parse(argc, argv, 1, "", 1, -1, &c, CTL_ALIAS_USAGE);
	else
		return ctl_usage("alias: unknown command '%s'\n" CTL_ALIAS_USAGE, argv[0]);
	if (ret != CTL_OK) {
		cli_free(&c);
		return ret;
	}
	req = request(strcmp(argv[0], "add") == 0 ? "alias-add" : "alias-remove");
	if (!add_pos(req, "address", c.pos[0]) ||
	    (c.npos > 1 && !add_values(req, "targets", pos_array(&c, 1)))) {
		cli_free(&c);
		json_decref(req);
		return CTL_FAILED;
	}
	cli_free(&c);
	return run(ctl, req, NULL);
}

int ctl_group_main(struct ctl *ctl, int argc, char **argv)
{
	struct cli c;
	json_t *req;
	int ret;

	if (argc < 1)
		return ctl_usage("group: which command?\n" CTL_GROUP_USAGE);
	if (strcmp(argv[0], "list") == 0)
		return listing(ctl, argc, argv, "group-list", print_groups, CTL_GROUP_USAGE);
	if (strcmp(argv[0], "show") == 0)
		return showing(ctl, argc, argv, "group-show", print_group, CTL_GROUP_USAGE);
	if (strcmp(argv[0], "add") != 0 && strcmp(argv[0], "remove") != 0)
		return ctl_usage("group: unknown command '%s'\n" CTL_GROUP_USAGE, argv[0]);
	ret = cli_parse(argc, argv, 1, "member*", 1, 1, &c, CTL_GROUP_USAGE);
	if (ret != CTL_OK) {
		cli_free(&c);
		return ret;
	}
	req = request(strcmp(argv[0], "add") == 0 ? "group-add" : "group-remove");
	if (!add_pos(req, "address", c.pos[0]) ||
	    !add_values(req, "members", cli_values(&c, "member"))) {
		cli_free(&c);
		json_decref(req);
		return CTL_FAILED;
	}
	cli_free(&c);
	return run(ctl, req, NULL);
}

int ctl_list_main(struct ctl *ctl, int argc, char **argv)
{
	struct cli c;
	json_t *req;
	bool add;
	int ret;

	if (argc < 1)
		return ctl_usage("list: which command?\n" CTL_LIST_USAGE);
	if (strcmp(argv[0], "list") == 0)
		return listing(ctl, argc, argv, "list-list", print_lists, CTL_LIST_USAGE);
	if (strcmp(argv[0], "show") == 0)
		return showing(ctl, argc, argv, "list-show", print_list, CTL_LIST_USAGE);
	if (strcmp(argv[0], "add") != 0 && strcmp(argv[0], "remove") != 0)
		return ctl_usage("list: unknown command '%s'\n" CTL_LIST_USAGE, argv[0]);
	add = strcmp(argv[0], "add") == 0;
	ret = cli_parse(argc, argv, 1,
			add ? "member* moderator* posting= reply-to= subscription= description="
			    : "member* moderator*", 1, 1, &c, CTL_LIST_USAGE);
	if (ret != CTL_OK) {
		cli_free(&c);
		return ret;
	}
	req = request(add ? "list-add" : "list-remove");
	if (!add_pos(req, "address", c.pos[0]) ||
	    !add_values(req, "members", cli_values(&c, "member")) ||
	    !add_values(req, "moderators", cli_values(&c, "moderator")) ||
	    !add_text(req, "posting", "--posting", cli_value(&c, "posting")) ||
	    !add_text(req, "reply_to", "--reply-to", cli_value(&c, "reply-to")) ||
	    !add_text(req, "subscription", "--subscription", cli_value(&c, "subscription")) ||
	    !add_text(req, "description", "--description", cli_value(&c, "description"))) {
		cli_free(&c);
		json_decref(req);
		return CTL_FAILED;
	}
	cli_free(&c);
	return run(ctl, req, NULL);
}

int ctl_resolve_main(struct ctl *ctl, int argc, char **argv)
{
	struct cli c;
	json_t *req;
	const char *sep;
	int ret = cli_parse(argc, argv, 0, "separator=", 1, 1, &c, CTL_RESOLVE_USAGE);

	if (ret != CTL_OK) {
		cli_free(&c);
		return ret;
	}
	req = request("resolve");
	sep = cli_value(&c, "separator");
	if (!add_pos(req, "address", c.pos[0]) || !add_text(req, "separator", "--separator", sep)) {
		cli_free(&c);
		json_decref(req);
		return CTL_FAILED;
	}
	cli_free(&c);
	return run(ctl, req, print_resolution);
}
