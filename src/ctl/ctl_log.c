/*
 * petrelctl log show NAME [--follow] [--grep TEXT] [--lines N] [--json]
 *
 * Reads the store's logs directly, not through the engine, so that it works
 * when petreld is stopped or wedged, which is when logs matter most.  The
 * store comes from mailserver.cfg in the config dir.  Reading is backwards
 * from the end through the index (logidx.h): the last lines of a 1 GB log,
 * or the last matches of a --grep near its end, cost a few reads, never the
 * whole file.  Older files (NAME.log.1, .2, ...) are read next when the
 * current one has fewer lines or matches than asked for.
 */
#include "ctl/ctl.h"
#include "core/cfg.h"
#include "core/log.h"
#include "core/logidx.h"
#include "core/str.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CTL_LOG_DEFAULT_LINES 50
/* --lines above this is refused: the lines are held in memory to be
 * printed oldest first (at most 16 KiB each). */
#define CTL_LOG_MAX_LINES 100000
#define CTL_LOG_FOLLOW_MS 200
/* Highest generation looked at: the largest logs/keep (settings.def). */
#define CTL_LOG_MAX_GENERATION 1000

#define CTL_LOG_USAGE \
	"usage: petrelctl log show debug|error|mail|security|warning " \
	"[--follow] [--grep TEXT] [--lines N] [--json]"

struct show_opts {
	enum log_name name;
	bool follow;
	bool json;
	const char *grep;      /* NULL: every line */
	size_t lines;
};

/* Lines collected newest first; printed in reverse. */
struct line_list {
	char **lines;
	size_t *lens;
	size_t count, cap;
};

static volatile sig_atomic_t follow_stop;

static int parse_show_args(int argc, char **argv, struct show_opts *o)
{
	bool have_name = false;
	int64_t n;

	o->lines = CTL_LOG_DEFAULT_LINES;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--follow") == 0 || strcmp(a, "-f") == 0) {
			o->follow = true;
		} else if (strcmp(a, "--json") == 0) {
			o->json = true;
		} else if (strcmp(a, "--grep") == 0 && i + 1 < argc) {
			o->grep = argv[++i];
		} else if ((strcmp(a, "--lines") == 0 || strcmp(a, "-n") == 0) && i + 1 < argc) {
			if (str_to_i64(argv[++i], 0, CTL_LOG_MAX_LINES, &n) < 0)
				return ctl_usage("--lines takes a number from 0 to %d\n" CTL_LOG_USAGE,
						 CTL_LOG_MAX_LINES);
			o->lines = (size_t)n;
		} else if (a[0] != '-' && !have_name) {
			if (log_name_parse(a, &o->name) < 0)
				return ctl_usage("unknown log '%s'\n" CTL_LOG_USAGE, a);
			have_name = true;
		} else {
			return ctl_usage("unexpected argument '%s'\n" CTL_LOG_USAGE, a);
		}
	}
	if (!have_name)
		return ctl_usage("which log?\n" CTL_LOG_USAGE);
	return CTL_OK;
}

/* The logs directory of the store named in mailserver.cfg; caller frees. */
static int find_log_dir(struct ctl *ctl, char **dir_r)
{
	struct cfg *cfg = NULL;
	char *err = NULL, *store;
	struct stat st;
	int ret = CTL_OK, sr;

	if (cfg_load(ctl->config_dir, NULL, NULL, &cfg, &err) < 0) {
		ret = ctl_fail("%s", err);
		free(err);
		return ret;
	}
	store = cfg_path(cfg, cfg->s.server_store);
	*dir_r = xasprintf("%s/logs", store);
	sr = stat(*dir_r, &st);
	if (sr < 0 || !S_ISDIR(st.st_mode)) {
		const char *why = sr == 0 ? "is not a directory" :
				  errno == ENOENT ? "does not exist" : strerror(errno);

		ret = ctl_fail("log directory %s: %s (the store is server/store in %s); "
			       "has petreld run with this store?", *dir_r, why, cfg->path);
		free(*dir_r);
		*dir_r = NULL;
	}
	free(store);
	cfg_unref(&cfg);
	return ret;
}

/* A copy of len bytes that may hold NULs (a damaged log), NUL-terminated. */
static char *copy_bytes(const char *data, size_t len)
{
	char *p = xmalloc(len + 1);

	memcpy(p, data, len);
	p[len] = '\0';
	return p;
}

static void line_list_add(struct line_list *l, const char *line, size_t len)
{
	if (l->count == l->cap) {
		l->cap = l->cap < 64 ? 64 : l->cap * 2;
		l->lines = xreallocarray(l->lines, l->cap, sizeof(*l->lines));
		l->lens = xreallocarray(l->lens, l->cap, sizeof(*l->lens));
	}
	l->lines[l->count] = copy_bytes(line, len);
	l->lens[l->count++] = len;
}

static void line_list_free(struct line_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->lines[i]);
	free(l->lines);
	free(l->lens);
}

/* A JSON string for text from a log: valid UTF-8 as is, anything else
 * escaped (the writer escapes, but a hand-edited or damaged file may not). */
static json_t *json_text(const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);
	struct buf esc;

	if (j != NULL)
		return j;
	buf_init(&esc, len * 4 + 4);
	if (str_escape_append(&esc, s, len, len) < 0)
		panic("json_text: escape size computation wrong");
	j = json_stringn(esc.data != NULL ? esc.data : "", esc.len);
	buf_deinit(&esc);
	return j;
}

/* {"time":..,"level":..,"component":..,"message":..}; a line that does not
 * follow the format has null fields and the whole line as message. */
static void print_json(const char *line, size_t len)
{
	json_t *o = json_object();
	struct log_line l;
	char *text;

	if (log_line_parse(line, len, &l) == 0) {
		json_object_set_new(o, "time", json_stringn(l.time, LOG_TIME_LEN));
		json_object_set_new(o, "level", json_text(l.level_str, l.level_len));
		json_object_set_new(o, "component", json_text(l.component, l.component_len));
		json_object_set_new(o, "message", json_text(l.message, l.message_len));
	} else {
		json_object_set_new(o, "time", json_null());
		json_object_set_new(o, "level", json_null());
		json_object_set_new(o, "component", json_null());
		json_object_set_new(o, "message", json_text(line, len));
	}
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text != NULL) {
		fputs(text, stdout);
		fputc('\n', stdout);
	}
	free(text);
	json_decref(o);
}

static void print_line(const struct show_opts *o, const char *line, size_t len)
{
	if (o->json) {
		print_json(line, len);
		return;
	}
	fwrite(line, 1, len, stdout);
	fputc('\n', stdout);
}

static bool wanted(const struct show_opts *o, const char *line, size_t len)
{
	return o->grep == NULL || log_line_icontains(line, len, o->grep);
}

static int reader_fail(const char *error, int err)
{
	if (err == EACCES)
		return ctl_fail("%s (run as root or as a member of the group that owns the logs)", error);
	return ctl_fail("%s", error);
}

/* Collects up to o->lines wanted lines from one file, newest first. */
static int collect(const struct show_opts *o, struct log_reader *r, struct line_list *l)
{
	const char *line, *error;
	size_t len;
	int ret;

	while (l->count < o->lines) {
		ret = log_reader_prev(r, &line, &len, &error);
		if (ret < 0)
			return reader_fail(error, errno);
		if (ret == 0)
			break;
		if (wanted(o, line, len))
			line_list_add(l, line, len);
	}
	return CTL_OK;
}

/* Prints the last lines: the current file first, then older generations
 * while more are wanted.  Hands back the current file's reader (NULL when
 * there is no current file) for --follow to continue from. */
static int show_tail(const struct show_opts *o, const char *dir, struct log_reader **current_r)
{
	struct line_list l = { 0 };
	int ret = CTL_OK;

	*current_r = NULL;
	for (unsigned g = 0; g <= CTL_LOG_MAX_GENERATION && ret == CTL_OK; g++) {
		char *path = log_file_path(dir, o->name, g), *ipath = log_idx_path(dir, o->name, g);
		struct log_reader *r = NULL;
		const char *error;

		if (log_reader_open(path, ipath, &r, &error) < 0) {
			int err = errno;

			/* No current file yet is normal (nothing logged since
			 * the last rotation); a missing old one ends the list. */
			if (err != ENOENT)
				ret = reader_fail(error, err);
			free(path);
			free(ipath);
			if (err == ENOENT && g == 0)
				continue;
			break;
		}
		if (l.count < o->lines)
			ret = collect(o, r, &l);
		if (g == 0)
			*current_r = r;
		else
			log_reader_free(&r);
		free(path);
		free(ipath);
		if (l.count >= o->lines)
			break;
	}
	for (size_t i = l.count; i > 0 && ret == CTL_OK; i--)
		print_line(o, l.lines[i - 1], l.lens[i - 1]);
	line_list_free(&l);
	if (ret != CTL_OK)
		log_reader_free(current_r);
	return ret;
}

static void on_follow_line(void *context, const char *line, size_t len)
{
	const struct show_opts *o = context;

	if (wanted(o, line, len))
		print_line(o, line, len);
}

static void on_signal(int sig)
{
	(void)sig;
	follow_stop = 1;
}

/* Polls every CTL_LOG_FOLLOW_MS until SIGINT/SIGTERM.  Polling (not
 * inotify) because it sees a rotation the same way on every file system,
 * NFS included, and 200 ms is below what a human notices. */
static int follow(const struct show_opts *o, const char *dir, const struct log_reader *current)
{
	struct timespec pause = { 0, CTL_LOG_FOLLOW_MS * 1000000L };
	struct sigaction sa;
	struct log_follow *f;
	char *path = log_file_path(dir, o->name, 0);
	const char *error;
	int ret = CTL_OK;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (log_follow_open(path, current, &f, &error) < 0) {
		ret = reader_fail(error, errno);
		goto cleanup;
	}
	while (!follow_stop) {
		if (log_follow_poll(f, on_follow_line, (void *)o, &error) < 0) {
			ret = reader_fail(error, errno);
			break;
		}
		if (fflush(stdout) == EOF || ferror(stdout)) {
			ret = ctl_fail("cannot write to standard output: %s", strerror(errno));
			break;
		}
		nanosleep(&pause, NULL);
	}
	log_follow_free(&f);
cleanup:
	free(path);
	return ret;
}

int ctl_log_main(struct ctl *ctl, int argc, char **argv)
{
	struct show_opts o = { .json = ctl->json };
	struct log_reader *current = NULL;
	char *dir = NULL;
	int ret;

	if (argc < 1 || strcmp(argv[0], "show") != 0)
		return ctl_usage(CTL_LOG_USAGE);
	ret = parse_show_args(argc, argv, &o);
	if (ret == CTL_OK)
		ret = find_log_dir(ctl, &dir);
	if (ret == CTL_OK)
		ret = show_tail(&o, dir, &current);
	if (ret == CTL_OK && fflush(stdout) == EOF)
		ret = ctl_fail("cannot write to standard output: %s", strerror(errno));
	if (ret == CTL_OK && o.follow)
		ret = follow(&o, dir, current);
	log_reader_free(&current);
	free(dir);
	return ret;
}
