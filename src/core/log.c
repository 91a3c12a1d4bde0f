/*
 * The log writer: five append-only files in the store's logs/ directory,
 * each with its index (logidx.h), rotated by size and age; see log.h.
 *
 * Every thread of petreld logs through log_msg().  The message is
 * formatted and escaped without any lock; then, under the file's mutex, the
 * time is stamped, rotation is checked, and the line goes out in one
 * write(2) on an O_APPEND descriptor, followed by an index entry when due.
 * Stamping under the mutex keeps the times in a file in order, which the
 * index's time search relies on.
 *
 * The logs do not go through the fileio seam: PETREL_FAULT counts calls,
 * and log lines written by whatever happens to log would shift the counts
 * that the durability tests of the spool and the store depend on.
 */
#include "core/log.h"
#include "core/fileio.h"
#include "core/logidx.h"
#include "core/str.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Longest component name kept (input bytes, before escaping). */
#define LOG_COMPONENT_MAX 64
/* After a failed rotation or write, the next complaint on stderr waits this
 * long, so a full disk does not turn stderr into a flood. */
#define LOG_RETRY_MS 60000
/* Rebuild reads the log in chunks of this size. */
#define LOG_SCAN_CHUNK (256 * 1024)

struct log_file {
	pthread_mutex_t lock;       /* guards everything below */
	enum log_name name;
	int fd;                     /* -1: closed, lines go to stderr */
	int idx_fd;                 /* -1: index not kept (rebuilt at next open) */
	char *dir, *path, *idx_path;
	uint64_t size;              /* bytes written to fd (the file's size) */
	bool have_entry;
	uint64_t last_entry;        /* offset of the last index entry */
	int64_t created_ms;         /* for rotation by age */
	struct log_settings settings;
	int64_t quiet_until_ms;     /* see LOG_RETRY_MS */
};

#define LOG_FILE_INIT(n) { .lock = PTHREAD_MUTEX_INITIALIZER, .name = (n), .fd = -1, .idx_fd = -1 }

static struct log_file log_files[LOG_FILE_COUNT] = {
	LOG_FILE_INIT(LOG_DEBUG_FILE), LOG_FILE_INIT(LOG_ERROR_FILE), LOG_FILE_INIT(LOG_MAIL_FILE),
	LOG_FILE_INIT(LOG_SECURITY_FILE), LOG_FILE_INIT(LOG_WARNING_FILE),
};

static atomic_bool log_debug_on;
static atomic_bool log_foreground;
static _Atomic(log_clock_fn *) log_clock;

static _Thread_local char log_errbuf[PATH_MAX * 2 + 256];

static const char *const log_names[LOG_FILE_COUNT] = {
	"debug", "error", "mail", "security", "warning"
};
static const char *const log_levels[] = { "DEBUG", "INFO", "WARN", "ERROR" };

const char *log_name_str(enum log_name name)
{
	if ((unsigned)name >= LOG_FILE_COUNT)
		return NULL;
	return log_names[name];
}

int log_name_parse(const char *s, enum log_name *name_r)
{
	for (unsigned i = 0; i < LOG_FILE_COUNT; i++) {
		if (strcmp(s, log_names[i]) == 0) {
			*name_r = (enum log_name)i;
			return 0;
		}
	}
	return -1;
}

void log_set_clock(log_clock_fn *fn)
{
	atomic_store(&log_clock, fn);
}

static int64_t log_now(void)
{
	log_clock_fn *fn = atomic_load(&log_clock);
	struct timespec ts;

	if (fn != NULL)
		return fn();
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes to stderr, ignoring failure: there is nowhere left to report it. */
static void write_stderr(const void *data, size_t len)
{
	if (write(STDERR_FILENO, data, len) < 0) {
		/* nothing to do */
	}
}

/* Complains on stderr, at most once per LOG_RETRY_MS per file. */
static void file_complain(struct log_file *f, int64_t now, const char *what, int err)
{
	char msg[PATH_MAX + 256];
	int n;

	if (now < f->quiet_until_ms)
		return;
	f->quiet_until_ms = now + LOG_RETRY_MS;
	n = snprintf(msg, sizeof(msg), "petrel: cannot %s %s: %s\n", what, f->path, strerror(err));
	if (n > 0)
		write_stderr(msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

/* ------------------------------------------------------------------ */
/* index maintenance                                                   */

static int write_full(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Replaces the index file with created + entries (temp file and rename: a
 * reader sees the old or the new one, never half).  Not fsynced: the index
 * is derived and rebuilt whenever it does not match. */
static int idx_write_file(const char *path, int64_t created, const struct logidx_entry *e,
			  size_t count)
{
	size_t len = LOGIDX_HEADER_SIZE + count * LOGIDX_ENTRY_SIZE; /* @UNSAFE: count <= log size / 4096 */
	unsigned char *data = xmalloc(len);
	char *tmp = xasprintf("%s.tmp", path);
	int fd, ret = -1;

	logidx_header_encode(data, created);
	for (size_t i = 0; i < count; i++)
		logidx_entry_encode(data + LOGIDX_HEADER_SIZE + i * LOGIDX_ENTRY_SIZE, &e[i]);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, LOG_FILE_MODE);
	if (fd < 0)
		goto cleanup;
	if (write_full(fd, data, len) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
		if (fd >= 0)
			unlink(tmp);
		goto cleanup;
	}
	ret = 0;
cleanup:
	free(tmp);
	free(data);
	return ret;
}

/* Counts the leading entries that point at a line start with their line's
 * own time.  One small pread per entry: ~25,000 for a 100 MB log. */
static size_t idx_verify(int fd, const struct logidx_entry *e, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		char head[LOG_TIME_LEN + 1];
		uint64_t from = e[i].offset > 0 ? e[i].offset - 1 : 0;
		ssize_t n = pread(fd, head, sizeof(head), (off_t)from);
		const char *p = head;
		int64_t t;

		if (n <= 0)
			return i;
		if (e[i].offset > 0) {
			if (head[0] != '\n')
				return i;
			p++;
			n--;
		}
		if (log_time_parse(p, (size_t)n, &t) == 0 && t != e[i].time_ms)
			return i;
	}
	return count;
}

struct entry_list {
	struct logidx_entry *e;
	size_t count, cap;
};

static void entry_list_add(void *context, const struct logidx_entry *e)
{
	struct entry_list *l = context;

	if (l->count == l->cap) {
		l->cap = l->cap < 64 ? 64 : l->cap * 2;
		l->e = xreallocarray(l->e, l->cap, sizeof(*l->e));
	}
	l->e[l->count++] = *e;
}

/* Scans the log from the last trusted entry to its end, adding entries. */
static int idx_catch_up(struct log_file *f, struct entry_list *l)
{
	struct logidx_builder b;
	uint64_t pos = l->count > 0 ? l->e[l->count - 1].offset : 0;
	char *buf = xmalloc(LOG_SCAN_CHUNK);
	int ret = 0;

	logidx_builder_init(&b, pos, l->count > 0 ? &l->e[l->count - 1] : NULL);
	while (pos < f->size) {
		size_t want = f->size - pos < LOG_SCAN_CHUNK ? (size_t)(f->size - pos) : LOG_SCAN_CHUNK;
		ssize_t n = pread(f->fd, buf, want, (off_t)pos);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = -1;
			break;
		}
		logidx_builder_feed(&b, buf, (size_t)n, entry_list_add, l);
		pos += (uint64_t)n;
	}
	free(buf);
	return ret;
}

/* The creation time: the header's, unless it is later than the first line
 * (a damaged header must not postpone rotation by age for ever). */
static int64_t idx_created(bool header_ok, int64_t header_created, const struct entry_list *l,
			   int64_t now)
{
	if (header_ok && (l->count == 0 || header_created <= l->e[0].time_ms) && header_created <= now)
		return header_created;
	return l->count > 0 ? l->e[0].time_ms : now;
}

/* Loads NAME.idx, keeps what matches the log, rescans the rest, and writes
 * it back if anything changed.  Never fails the open: without an index
 * the readers scan, and the next open tries again. */
static void idx_sync(struct log_file *f, int64_t now)
{
	/* A valid index has at most one entry per LOGIDX_INTERVAL bytes. */
	size_t max = LOGIDX_HEADER_SIZE + (size_t)(f->size / LOGIDX_INTERVAL + 2) * LOGIDX_ENTRY_SIZE;
	struct entry_list l = { 0 };
	char *data = NULL;
	size_t len = 0, loaded = 0, trusted = 0;
	int64_t created = 0;
	bool header_ok = false;

	if (fileio_read_all(f->idx_path, max, &data, &len) == 0 &&
	    logidx_parse(data, len, &created, &l.e, &loaded) == 0) {
		header_ok = true;
		l.cap = loaded;
		l.count = logidx_valid_prefix(l.e, loaded, f->size);
		l.count = trusted = idx_verify(f->fd, l.e, l.count);
	}
	if (idx_catch_up(f, &l) < 0)
		file_complain(f, now, "scan", errno);
	f->created_ms = idx_created(header_ok, created, &l, now);
	/* Rewritten when an entry was dropped or added, a torn entry or junk
	 * trails, or the header changes. */
	if ((!header_ok || trusted != loaded || l.count != loaded ||
	     len != LOGIDX_HEADER_SIZE + loaded * LOGIDX_ENTRY_SIZE ||
	     f->created_ms != created) &&
	    idx_write_file(f->idx_path, f->created_ms, l.e, l.count) < 0)
		file_complain(f, now, "write the index beside", errno);
	f->have_entry = l.count > 0;
	f->last_entry = l.count > 0 ? l.e[l.count - 1].offset : 0;
	f->idx_fd = open(f->idx_path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	free(l.e);
	free(data);
}

/* Appends the entry for a line just written at off, when one is due. */
static void idx_note(struct log_file *f, uint64_t off, int64_t now)
{
	unsigned char raw[LOGIDX_ENTRY_SIZE];
	struct logidx_entry e = { .offset = off, .time_ms = now };

	if (!logidx_want_entry(f->have_entry, f->last_entry, off))
		return;
	f->have_entry = true;
	f->last_entry = off;
	if (f->idx_fd < 0)
		return;
	logidx_entry_encode(raw, &e);
	if (write(f->idx_fd, raw, sizeof(raw)) != (ssize_t)sizeof(raw)) {
		/* A torn or missing entry is repaired at the next open; stop
		 * appending so that no later entry lands at a wrong position. */
		close(f->idx_fd);
		f->idx_fd = -1;
	}
}

/* ------------------------------------------------------------------ */
/* opening                                                             */

static void file_close(struct log_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->idx_fd >= 0)
		close(f->idx_fd);
	f->fd = f->idx_fd = -1;
}

static void file_forget(struct log_file *f)
{
	file_close(f);
	free(f->dir);
	free(f->path);
	free(f->idx_path);
	f->dir = f->path = f->idx_path = NULL;
}

static const char *open_error(const char *path, const char *dir, int err)
{
	snprintf(log_errbuf, sizeof(log_errbuf),
		 "cannot open log file %s: %s; make %s and the files in it writable by the "
		 "user petreld runs as (server/user in mailserver.cfg)", path, strerror(err), dir);
	return log_errbuf;
}

/* A crash can leave a last line without its newline; end it, so that the
 * next line does not continue it. */
static int repair_tail(struct log_file *f)
{
	char c;

	if (f->size == 0)
		return 0;
	if (pread(f->fd, &c, 1, (off_t)(f->size - 1)) != 1)
		return -1;
	if (c == '\n')
		return 0;
	if (write_full(f->fd, "\n", 1) < 0)
		return -1;
	f->size++;
	return 0;
}

/* Opens (creating) f's file in dir and brings its index up to date.
 * Called with f->lock held. */
static int file_open(struct log_file *f, const char *dir, const char **error_r)
{
	char *dir_copy = xstrdup(dir);
	struct stat st;

	file_forget(f);
	f->dir = dir_copy;
	f->path = log_file_path(dir, f->name, 0);
	f->idx_path = log_idx_path(dir, f->name, 0);
	f->fd = open(f->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, LOG_FILE_MODE);
	if (f->fd < 0) {
		*error_r = open_error(f->path, dir, errno);
		return -1;
	}
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(log_errbuf, sizeof(log_errbuf), "log file %s is not a regular file: "
			 "move it away", f->path);
		*error_r = log_errbuf;
		file_close(f);
		return -1;
	}
	f->size = (uint64_t)st.st_size;
	if (repair_tail(f) < 0) {
		*error_r = open_error(f->path, dir, errno);
		file_close(f);
		return -1;
	}
	idx_sync(f, log_now());
	return 0;
}

static int check_dir(const char *dir, const char **error_r)
{
	struct stat st;
	int ret = stat(dir, &st);

	if (ret < 0 && errno == ENOENT) {
		snprintf(log_errbuf, sizeof(log_errbuf),
			 "log directory %s does not exist: create it (mkdir -p %s) and make it "
			 "writable by the user petreld runs as", dir, dir);
	} else if (ret < 0) {
		snprintf(log_errbuf, sizeof(log_errbuf), "cannot use log directory %s: %s",
			 dir, strerror(errno));
	} else if (!S_ISDIR(st.st_mode)) {
		snprintf(log_errbuf, sizeof(log_errbuf),
			 "log directory %s is not a directory: move it away", dir);
	} else if (access(dir, W_OK | X_OK) < 0) {
		snprintf(log_errbuf, sizeof(log_errbuf),
			 "log directory %s is not writable (%s): make it writable by the user "
			 "petreld runs as (chown or chmod)", dir, strerror(errno));
	} else {
		return 0;
	}
	*error_r = log_errbuf;
	return -1;
}

static void log_panic_hook(const char *message);

int log_open(const char *dir, const struct log_config *config, const char **error_r)
{
	if (check_dir(dir, error_r) < 0)
		return -1;
	log_close();
	atomic_store(&log_debug_on, config->debug);
	atomic_store(&log_foreground, config->foreground);
	for (unsigned i = 0; i < LOG_FILE_COUNT; i++) {
		struct log_file *f = &log_files[i];
		int ret;

		pthread_mutex_lock(&f->lock);
		f->settings = config->files[i];
		f->quiet_until_ms = 0;
		ret = file_open(f, dir, error_r);
		if (ret < 0)
			file_forget(f);
		pthread_mutex_unlock(&f->lock);
		if (ret < 0) {
			log_close();
			return -1;
		}
	}
	panic_set_hook(log_panic_hook);
	return 0;
}

void log_close(void)
{
	panic_set_hook(NULL);
	for (unsigned i = 0; i < LOG_FILE_COUNT; i++) {
		pthread_mutex_lock(&log_files[i].lock);
		file_forget(&log_files[i]);
		pthread_mutex_unlock(&log_files[i].lock);
	}
}

void log_reopen(void)
{
	for (unsigned i = 0; i < LOG_FILE_COUNT; i++) {
		struct log_file *f = &log_files[i];
		const char *error;

		pthread_mutex_lock(&f->lock);
		if (f->dir != NULL) {
			char *dir = xstrdup(f->dir);

			if (file_open(f, dir, &error) < 0) {
				/* Keep the paths so that the next reopen retries;
				 * meanwhile lines go to stderr. */
				write_stderr("petrel: ", 8);
				write_stderr(error, strlen(error));
				write_stderr("\n", 1);
			}
			free(dir);
		}
		pthread_mutex_unlock(&f->lock);
	}
}

/* ------------------------------------------------------------------ */
/* rotation                                                            */

/* rename(2) where a missing source is not an error. */
static int rename_if_exists(const char *from, const char *to)
{
	return rename(from, to) < 0 && errno != ENOENT ? -1 : 0;
}

/* Moves generation g (g >= 1) to g + 1, log and index.  The target's old
 * index goes first, so that a log never keeps an index that is not its. */
static void shift_generation(struct log_file *f, unsigned g)
{
	char *from = log_file_path(f->dir, f->name, g), *to = log_file_path(f->dir, f->name, g + 1);
	char *ifrom = log_idx_path(f->dir, f->name, g), *ito = log_idx_path(f->dir, f->name, g + 1);

	if (rename_if_exists(from, to) < 0)
		file_complain(f, log_now(), "rotate", errno);
	unlink(ito);
	if (rename_if_exists(ifrom, ito) < 0)
		unlink(ifrom);
	free(from);
	free(to);
	free(ifrom);
	free(ito);
}

/* Deletes generations past keep, up to the first gap (a smaller keep after
 * a reload, or keep = 0). */
static void delete_old(struct log_file *f, unsigned keep)
{
	for (unsigned g = keep + 1;; g++) {
		char *p = log_file_path(f->dir, f->name, g), *ip = log_idx_path(f->dir, f->name, g);
		bool gone = unlink(p) < 0 && errno == ENOENT;

		gone = (unlink(ip) < 0 && errno == ENOENT) && gone;
		free(p);
		free(ip);
		if (gone || g == UINT_MAX)
			break;
	}
}

/* Creates the next file beside the current one (NAME.log.new, NAME.idx.new)
 * before anything is moved, so that a failure leaves the current file in
 * place and the line about to be written still has a home. */
static int rotate_prepare(struct log_file *f, int64_t now, char **new_path_r, char **new_idx_r,
			  int *fd_r, int *idx_fd_r)
{
	unsigned char head[LOGIDX_HEADER_SIZE];

	*new_path_r = xasprintf("%s.new", f->path);
	*new_idx_r = xasprintf("%s.new", f->idx_path);
	*fd_r = open(*new_path_r, O_RDWR | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		     LOG_FILE_MODE);
	if (*fd_r < 0)
		return -1;
	*idx_fd_r = open(*new_idx_r, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
			 LOG_FILE_MODE);
	logidx_header_encode(head, now);
	if (*idx_fd_r >= 0 && write_full(*idx_fd_r, head, sizeof(head)) < 0) {
		close(*idx_fd_r);
		*idx_fd_r = -1;
	}
	return 0;
}

/* Rotates f: NAME.log → NAME.log.1 → ... → NAME.log.keep (deleted past
 * keep), then the prepared file becomes NAME.log.  Called with f->lock held
 * and between two lines, so no line is ever split or lost: until the final
 * rename, lines would still go to the old descriptor. */
static int file_rotate(struct log_file *f, int64_t now)
{
	char *new_path, *new_idx, *gen1 = NULL, *gen1_idx = NULL;
	int nfd, nidx = -1, ret = -1;
	unsigned keep = f->settings.keep;

	if (rotate_prepare(f, now, &new_path, &new_idx, &nfd, &nidx) < 0)
		goto cleanup;
	delete_old(f, keep);
	if (keep > 0) {
		for (unsigned g = keep - 1; g >= 1; g--)
			shift_generation(f, g);
		gen1 = log_file_path(f->dir, f->name, 1);
		gen1_idx = log_idx_path(f->dir, f->name, 1);
		/* ENOENT: the file was moved away by hand; carry on. */
		if (rename(f->path, gen1) < 0 && errno != ENOENT)
			goto cleanup;
		unlink(gen1_idx);
		if (rename_if_exists(f->idx_path, gen1_idx) < 0)
			unlink(f->idx_path);
	}
	/* With keep = 0 this rename is what deletes the old file. */
	if (rename(new_path, f->path) < 0)
		goto cleanup;
	if (nidx >= 0 && rename(new_idx, f->idx_path) < 0) {
		close(nidx);
		nidx = -1;
	}
	file_close(f);
	f->fd = nfd;
	f->idx_fd = nidx;
	nfd = nidx = -1;
	f->size = 0;
	f->have_entry = false;
	f->last_entry = 0;
	f->created_ms = now;
	ret = 0;
cleanup:
	if (ret < 0) {
		file_complain(f, now, "rotate", errno);
		if (nfd >= 0)
			unlink(new_path);
		if (nidx >= 0)
			unlink(new_idx);
	}
	if (nfd >= 0)
		close(nfd);
	if (nidx >= 0)
		close(nidx);
	free(new_path);
	free(new_idx);
	free(gen1);
	free(gen1_idx);
	return ret;
}

/* Rotates before a line of len bytes when the file is due.  An empty file
 * is never rotated: each file holds at least one line. */
static void maybe_rotate(struct log_file *f, int64_t now, size_t len)
{
	const struct log_settings *s = &f->settings;
	bool by_size = s->rotate_size > 0 && f->size + len > s->rotate_size;
	bool by_age = s->rotate_interval > 0 && now - f->created_ms >= (int64_t)s->rotate_interval * 1000;

	if (f->size == 0 || (!by_size && !by_age) || now < f->quiet_until_ms)
		return;
	(void)file_rotate(f, now);
}

void log_reconfigure(const struct log_config *config)
{
	atomic_store(&log_debug_on, config->debug);
	atomic_store(&log_foreground, config->foreground);
	for (unsigned i = 0; i < LOG_FILE_COUNT; i++) {
		struct log_file *f = &log_files[i];

		pthread_mutex_lock(&f->lock);
		f->settings = config->files[i];
		f->quiet_until_ms = 0;
		if (f->fd >= 0)
			maybe_rotate(f, log_now(), 0);
		pthread_mutex_unlock(&f->lock);
	}
}

/* ------------------------------------------------------------------ */
/* writing                                                             */

/* The longest prefix of escaped text (str_escape_append output) that fits
 * in budget bytes without cutting an escape sequence in half. */
static size_t escaped_cut(const char *s, size_t len, size_t budget)
{
	size_t i = 0;

	while (i < len) {
		size_t seq = s[i] != '\\' || i + 1 >= len ? 1 : s[i + 1] == 'x' ? 4 : 2;

		if (i + seq > budget)
			break;
		i += seq;
	}
	return i;
}

/* Appends text escaped, cut to fit LOG_LINE_MAX - reserve with "...". */
static void append_escaped(struct buf *line, const char *text, size_t len, size_t max_in,
			   size_t reserve)
{
	struct buf esc;
	size_t budget = LOG_LINE_MAX - reserve - line->len;
	bool cut = len > max_in;

	buf_init(&esc, (len < max_in ? len : max_in) * 4 + 4);
	if (str_escape_append(&esc, text, len < max_in ? len : max_in, max_in) < 0)
		panic("log: escape size computation wrong");
	if (esc.len > budget) {
		buf_truncate(&esc, escaped_cut(esc.data, esc.len, budget - 3));
		cut = true;
	}
	if (buf_append(line, esc.data, esc.len) < 0 || (cut && buf_append_str(line, "...") < 0))
		panic("log: line size computation wrong");
	buf_deinit(&esc);
}

static void format_line(struct buf *line, enum log_level level, const char *component,
			const char *fmt, va_list ap) PETREL_PRINTF(4, 0);

/* Builds the line with a blank timestamp (stamped under the lock). */
static void format_line(struct buf *line, enum log_level level, const char *component,
			const char *fmt, va_list ap)
{
	static char bad_format[] = "(message could not be formatted)";
	char msg[LOG_LINE_MAX];
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t len = n < 0 ? 0 : (size_t)n;
	const char *text = n < 0 ? bad_format : msg;

	if (n < 0)
		len = strlen(bad_format);
	if (buf_append(line, "0000-00-00T00:00:00.000Z ", LOG_TIME_LEN + 1) < 0 ||
	    buf_append_str(line, log_levels[level]) < 0 || buf_append_char(line, ' ') < 0)
		panic("log: line size computation wrong");
	append_escaped(line, component, strlen(component), LOG_COMPONENT_MAX, 2 + 4 + 1);
	if (buf_append(line, ": ", 2) < 0)
		panic("log: line size computation wrong");
	/* vsnprintf kept sizeof(msg) - 1 bytes; anything past them is cut. */
	append_escaped(line, text, len, sizeof(msg) - 1, 1);
	if (buf_append_char(line, '\n') < 0)
		panic("log: line size computation wrong");
}

/* Writes one line to f (lock held); returns false when it did not reach the
 * file, so the caller puts it on stderr instead. */
static bool file_write_line(struct log_file *f, const char *line, size_t len, int64_t now)
{
	uint64_t off;
	ssize_t n;

	maybe_rotate(f, now, len);
	off = f->size;
	do {
		n = write(f->fd, line, len);
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)len) {
		f->size += len;
		idx_note(f, off, now);
		return true;
	}
	file_complain(f, now, "write to", n < 0 ? errno : ENOSPC);
	if (n > 0) {
		/* End the torn line so that the next one starts clean. */
		f->size += (uint64_t)n;
		if (write_full(f->fd, "\n", 1) == 0)
			f->size++;
	}
	return false;
}

void log_msgv(enum log_name name, enum log_level level, const char *component,
	      const char *fmt, va_list ap)
{
	struct log_file *f;
	char stamp[LOG_TIME_LEN + 1];
	struct buf line;
	bool to_stderr;
	int64_t now;

	if ((unsigned)name >= LOG_FILE_COUNT || (unsigned)level > LOG_LEVEL_ERROR)
		panic("log_msg: bad log %d or level %d", (int)name, (int)level);
	if (level == LOG_LEVEL_DEBUG && !atomic_load(&log_debug_on))
		return;
	buf_init(&line, LOG_LINE_MAX);
	format_line(&line, level, component, fmt, ap);
	f = &log_files[name];
	pthread_mutex_lock(&f->lock);
	now = log_now();
	log_time_format(now, stamp);
	memcpy(line.data, stamp, LOG_TIME_LEN);
	to_stderr = f->fd < 0 || !file_write_line(f, line.data, line.len, now);
	pthread_mutex_unlock(&f->lock);
	if (to_stderr || (level >= LOG_LEVEL_WARN && atomic_load(&log_foreground)))
		write_stderr(line.data, line.len);
	buf_deinit(&line);
}

void log_msg(enum log_name name, enum log_level level, const char *component,
	     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_msgv(name, level, component, fmt, ap);
	va_end(ap);
}

/* panic() calls this before abort().  No allocation (the panic may be an
 * out-of-memory one), and only a trylock: the panicking thread may hold
 * error.log's lock itself, and a core dump beats a deadlock. */
static void log_panic_hook(const char *message)
{
	struct log_file *f = &log_files[LOG_ERROR_FILE];
	char line[LOG_TIME_LEN + 32 + 1024 + 2];
	size_t len = LOG_TIME_LEN;
	bool locked = pthread_mutex_trylock(&f->lock) == 0;
	int64_t now = log_now();

	log_time_format(now, line);
	memcpy(line + len, " ERROR panic: ", 14);
	len += 14;
	for (const char *p = message; *p != '\0' && len < sizeof(line) - 1; p++)
		line[len++] = *p >= 0x20 && *p < 0x7f ? *p : '?';
	line[len++] = '\n';
	if (f->fd >= 0 && write(f->fd, line, len) == (ssize_t)len && locked)
		f->size += len;
	if (locked)
		pthread_mutex_unlock(&f->lock);
}
