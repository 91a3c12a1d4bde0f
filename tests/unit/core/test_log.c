/*
 * Unit tests for core/log.c, the log writer: line format and escaping,
 * stderr before open, threads, rotation by size and time, the index it
 * keeps and rebuilds, and reading its files back (logidx.h reader).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/logidx.h"

#define BASE_MS 1795940381123LL /* 2026-11-29T08:19:41.123Z */

static char *tmpdir;
static int64_t fake_now;

static int64_t fake_clock(void)
{
	return fake_now;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	char tmpl[] = "/tmp/petrel-log-XXXXXX";

	(void)state;
	if (mkdtemp(tmpl) == NULL)
		return -1;
	tmpdir = xstrdup(tmpl);
	fake_now = BASE_MS;
	log_set_clock(fake_clock);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_close();
	log_set_clock(NULL);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(tmpdir);
	tmpdir = NULL;
	return 0;
}

static struct log_config config(uint64_t size, uint64_t interval, unsigned keep)
{
	struct log_config c = { .debug = false, .foreground = false };

	for (int i = 0; i < LOG_FILE_COUNT; i++) {
		c.files[i].rotate_size = size;
		c.files[i].rotate_interval = interval;
		c.files[i].keep = keep;
	}
	return c;
}

static void open_logs(const struct log_config *c)
{
	const char *error = NULL;

	if (log_open(tmpdir, c, &error) < 0)
		fail_msg("log_open: %s", error);
}

static char *path_of(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

/* Contents of tmpdir/name ("" when missing); caller frees. */
static char *slurp(const char *name, size_t *len_r)
{
	char *path = path_of(name), *data;
	size_t len;

	if (fileio_read_all(path, 1u << 30, &data, &len) < 0) {
		data = xstrdup("");
		len = 0;
	}
	free(path);
	if (len_r != NULL)
		*len_r = len;
	return data;
}

static bool exists(const char *name)
{
	char *path = path_of(name);
	bool ok = access(path, F_OK) == 0;

	free(path);
	return ok;
}

static size_t count_char(const char *s, size_t len, char c)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += s[i] == c;
	return n;
}

/* ---- format ---- */

static void test_line_format(void **state)
{
	struct log_config c = config(0, 0, 3);
	char *s;

	(void)state;
	open_logs(&c);
	log_mail("smtp", "from=<%s> size=%d", "a\r\nb\x01" "c\x7f\xff\\", 12);
	log_mail("sm\ntp", "nul=[%c]", 0);
	s = slurp("mail.log", NULL);
	assert_string_equal(s,
		"2026-11-29T08:19:41.123Z INFO smtp: from=<a\\r\\nb\\x01c\\x7f\\xff\\\\> size=12\n"
		"2026-11-29T08:19:41.123Z INFO sm\\ntp: nul=[\\x00]\n");
	free(s);

	fake_now += 1001;
	log_error("queue", "e");
	log_warn("queue", "w");
	log_security("auth", "s");
	log_info("core", "i");
	log_debug("core", "dropped");
	s = slurp("error.log", NULL);
	assert_string_equal(s, "2026-11-29T08:19:42.124Z ERROR queue: e\n");
	free(s);
	s = slurp("warning.log", NULL);
	assert_string_equal(s, "2026-11-29T08:19:42.124Z WARN queue: w\n");
	free(s);
	s = slurp("security.log", NULL);
	assert_string_equal(s, "2026-11-29T08:19:42.124Z WARN auth: s\n");
	free(s);
	c.debug = true;
	log_reconfigure(&c);
	log_debug("core", "kept");
	s = slurp("debug.log", NULL);
	assert_string_equal(s, "2026-11-29T08:19:42.124Z INFO core: i\n"
			       "2026-11-29T08:19:42.124Z DEBUG core: kept\n");
	free(s);
	for (int i = 0; i < LOG_FILE_COUNT; i++) {
		char *idx = xasprintf("%s.idx", log_name_str((enum log_name)i));
		struct stat st;
		char *p = path_of(idx);

		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 0777, LOG_FILE_MODE);
		free(p);
		free(idx);
	}
}

static void test_long_lines(void **state)
{
	struct log_config c = config(0, 0, 3);
	char *big = xmalloc(100001), *s, *p;
	size_t len;

	(void)state;
	open_logs(&c);
	memset(big, 'a', 100000);
	big[100000] = '\0';
	log_mail("c", "%s", big);
	memset(big, '\x01', 100000);
	log_mail("c", "%s", big);
	s = slurp("mail.log", &len);
	assert_int_equal(count_char(s, len, '\n'), 2);
	p = strchr(s, '\n');
	assert_int_equal(p - s + 1, LOG_LINE_MAX);
	assert_memory_equal(p - 3, "...", 3);
	/* The second line is cut between two escapes, never inside one. */
	assert_true(len - (size_t)(p + 1 - s) <= LOG_LINE_MAX);
	assert_memory_equal(s + len - 8, "\\x01...\n", 8);
	free(s);
	free(big);
}

/* Runs fn with stderr going to tmpdir/stderr.txt; returns what it got. */
static char *capture_stderr(void (*fn)(void))
{
	char *path = path_of("stderr.txt"), *s;
	int saved = dup(STDERR_FILENO);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0 && saved >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	free(path);
	s = slurp("stderr.txt", NULL);
	return s;
}

static void log_some(void)
{
	log_warn("x", "warn %d", 1);
	log_mail("x", "mail %d", 2);
	log_error("x", "error %d", 3);
}

static void test_stderr(void **state)
{
	struct log_config c = config(0, 0, 3);
	char *s;

	(void)state;
	s = capture_stderr(log_some);
	assert_string_equal(s, "2026-11-29T08:19:41.123Z WARN x: warn 1\n"
			       "2026-11-29T08:19:41.123Z INFO x: mail 2\n"
			       "2026-11-29T08:19:41.123Z ERROR x: error 3\n");
	free(s);

	c.foreground = true;
	open_logs(&c);
	s = capture_stderr(log_some);
	assert_string_equal(s, "2026-11-29T08:19:41.123Z WARN x: warn 1\n"
			       "2026-11-29T08:19:41.123Z ERROR x: error 3\n");
	free(s);
	s = slurp("mail.log", NULL);
	assert_string_equal(s, "2026-11-29T08:19:41.123Z INFO x: mail 2\n");
	free(s);

	log_close();
	s = capture_stderr(log_some);
	assert_int_equal(count_char(s, strlen(s), '\n'), 3);
	free(s);
}

static void test_open_errors(void **state)
{
	struct log_config c = config(0, 0, 3);
	const char *error;
	char *missing = path_of("no/such"), *file = path_of("plain");

	(void)state;
	assert_int_equal(log_open(missing, &c, &error), -1);
	assert_non_null(strstr(error, missing));
	assert_non_null(strstr(error, "mkdir -p"));
	close(open(file, O_WRONLY | O_CREAT, 0600));
	assert_int_equal(log_open(file, &c, &error), -1);
	assert_non_null(strstr(error, "not a directory"));
	if (geteuid() != 0) {
		chmod(tmpdir, 0500);
		assert_int_equal(log_open(tmpdir, &c, &error), -1);
		assert_non_null(strstr(error, "not writable"));
		chmod(tmpdir, 0700);
	}
	free(missing);
	free(file);
}

/* ---- threads ---- */

#define THREADS 4
#define LINES_PER_THREAD 4000

static void *writer_thread(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	char pad[400];

	memset(pad, 'p', sizeof(pad));
	for (unsigned n = 0; n < LINES_PER_THREAD; n++)
		log_mail("thr", "t=%u n=%u pad=%.*s", t, n, (int)(n * 7 % 300), pad);
	return NULL;
}

/* Checks one line written by writer_thread and marks it seen. */
static void check_thread_line(const char *line, size_t len, bool seen[THREADS][LINES_PER_THREAD])
{
	struct log_line l;
	unsigned t, n;
	int consumed = 0;
	char *msg;

	assert_int_equal(log_line_parse(line, len, &l), 0);
	msg = xstrndup(l.message, l.message_len);
	assert_int_equal(sscanf(msg, "t=%u n=%u pad=%n", &t, &n, &consumed), 2);
	assert_true(t < THREADS && n < LINES_PER_THREAD && consumed > 0);
	assert_int_equal(strlen(msg + consumed), n * 7 % 300);
	assert_int_equal(strspn(msg + consumed, "p"), n * 7 % 300);
	assert_false(seen[t][n]);
	seen[t][n] = true;
	free(msg);
}

/* Checks every line of one file, and that the file respects max_size. */
static void check_thread_file(const char *name, uint64_t max_size,
			      bool seen[THREADS][LINES_PER_THREAD])
{
	size_t len;
	char *s = slurp(name, &len), *p = s;

	assert_true(len <= max_size);
	assert_true(len == 0 || s[len - 1] == '\n');
	while (p < s + len) {
		char *nl = memchr(p, '\n', (size_t)(s + len - p));

		check_thread_line(p, (size_t)(nl - p), seen);
		p = nl + 1;
	}
	free(s);
}

static void test_threads_whole_lines(void **state)
{
	struct log_config c = config(256 * 1024, 0, 1000);
	static bool seen[THREADS][LINES_PER_THREAD];
	pthread_t th[THREADS];
	unsigned gen;

	(void)state;
	log_set_clock(NULL);
	memset(seen, 0, sizeof(seen));
	open_logs(&c);
	for (unsigned t = 0; t < THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, writer_thread, (void *)(uintptr_t)t), 0);
	for (unsigned t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	check_thread_file("mail.log", c.files[LOG_MAIL_FILE].rotate_size, seen);
	for (gen = 1;; gen++) {
		char name[64];

		snprintf(name, sizeof(name), "mail.log.%u", gen);
		if (!exists(name))
			break;
		check_thread_file(name, c.files[LOG_MAIL_FILE].rotate_size, seen);
	}
	assert_true(gen > 3); /* ~2.6 MB in 256 KiB files */
	for (unsigned t = 0; t < THREADS; t++)
		for (unsigned n = 0; n < LINES_PER_THREAD; n++)
			assert_true(seen[t][n]);
}

/* ---- rotation ---- */

/* Reads seq=N from every line of name in order; appends to seqs. */
static void collect_seqs(const char *name, unsigned *seqs, size_t *count, uint64_t max_size)
{
	size_t len;
	char *s = slurp(name, &len), *p = s;

	assert_true(len > 0 && len <= max_size);
	while (p < s + len) {
		char *q = strstr(p, "seq=");

		assert_non_null(q);
		seqs[(*count)++] = (unsigned)strtoul(q + 4, NULL, 10);
		p = strchr(p, '\n') + 1;
	}
	free(s);
}

static void write_seq_lines(unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		log_mail("rot", "seq=%u some padding to make the line about one hundred bytes long", i);
		fake_now++;
	}
}

/* How many old generations of mail.log exist. */
static unsigned count_generations(void)
{
	unsigned g;

	for (g = 1;; g++) {
		char name[64];

		snprintf(name, sizeof(name), "mail.log.%u", g);
		if (!exists(name))
			return g - 1;
	}
}

/* The files NAME.log.keep .. .1, NAME.log hold a contiguous run of seqs
 * ending at total - 1, oldest first. */
static size_t check_kept(unsigned keep, unsigned total, uint64_t max_size)
{
	unsigned *seqs = xcalloc(total + 1, sizeof(*seqs));
	size_t count = 0;

	for (unsigned g = keep; g >= 1; g--) {
		char name[64], idx[64];

		snprintf(name, sizeof(name), "mail.log.%u", g);
		snprintf(idx, sizeof(idx), "mail.%u.idx", g);
		assert_true(exists(name));
		assert_true(exists(idx));
		collect_seqs(name, seqs, &count, max_size);
	}
	collect_seqs("mail.log", seqs, &count, max_size);
	for (size_t i = 1; i < count; i++)
		assert_int_equal(seqs[i], seqs[i - 1] + 1);
	assert_int_equal(seqs[count - 1], total - 1);
	free(seqs);
	return count;
}

static void test_rotation_by_size(void **state)
{
	struct log_config c = config(4096, 0, 3);

	(void)state;
	open_logs(&c);
	write_seq_lines(500);
	assert_int_equal(count_generations(), 3);
	check_kept(3, 500, 4096);
	assert_false(exists("mail.log.4"));
	assert_false(exists("mail.4.idx"));
	assert_false(exists("mail.log.new"));

	/* Nothing lost when enough files are kept. */
	log_close();
	teardown(state);
	setup(state);
	c = config(4096, 0, 100);
	open_logs(&c);
	write_seq_lines(500);
	assert_true(count_generations() > 5);
	assert_int_equal(check_kept(count_generations(), 500, 4096), 500);

	/* A smaller keep after a reload removes the extra files. */
	c = config(4096, 0, 2);
	log_reconfigure(&c);
	write_seq_lines(50);
	assert_true(exists("mail.log.2"));
	assert_false(exists("mail.log.3"));
	assert_false(exists("mail.3.idx"));
}

static void test_rotation_keep_zero(void **state)
{
	struct log_config c = config(1000, 0, 0);
	size_t len;
	char *s;

	(void)state;
	open_logs(&c);
	write_seq_lines(100);
	assert_false(exists("mail.log.1"));
	assert_false(exists("mail.1.idx"));
	s = slurp("mail.log", &len);
	assert_true(len > 0 && len <= 1000);
	assert_non_null(strstr(s, "seq=99 "));
	free(s);
}

static void test_rotation_by_time(void **state)
{
	struct log_config c = config(0, 60, 5);
	size_t len;
	char *s, *idx;

	(void)state;
	open_logs(&c);
	log_mail("t", "one");
	fake_now = BASE_MS + 30000;
	log_mail("t", "two");
	assert_false(exists("mail.log.1"));
	fake_now = BASE_MS + 61000;
	log_mail("t", "three");
	s = slurp("mail.log.1", &len);
	assert_int_equal(count_char(s, len, '\n'), 2);
	free(s);
	s = slurp("mail.log", &len);
	assert_int_equal(count_char(s, len, '\n'), 1);
	free(s);

	/* The age survives a restart: it is kept in the index header. */
	log_close();
	fake_now = BASE_MS + 100000;
	open_logs(&c);
	log_mail("t", "four");
	assert_false(exists("mail.log.2"));
	fake_now = BASE_MS + 122000;
	log_mail("t", "five");
	assert_true(exists("mail.log.2"));

	/* Without the index, the first line's time stands in for it. */
	log_close();
	idx = path_of("mail.idx");
	unlink(idx);
	free(idx);
	fake_now = BASE_MS + 150000;
	open_logs(&c);
	log_mail("t", "six");
	assert_false(exists("mail.log.3"));
	fake_now = BASE_MS + 183000;
	log_mail("t", "seven");
	assert_true(exists("mail.log.3"));
	s = slurp("mail.log.1", &len);
	assert_int_equal(count_char(s, len, '\n'), 2);
	assert_non_null(strstr(s, "five"));
	assert_non_null(strstr(s, "six"));
	free(s);
}

static void test_reconfigure_rotates_at_once(void **state)
{
	struct log_config c = config(0, 0, 5);
	size_t len;
	char *s;

	(void)state;
	open_logs(&c);
	write_seq_lines(10);
	assert_false(exists("mail.log.1"));
	c = config(100, 0, 5);
	log_reconfigure(&c);
	assert_true(exists("mail.log.1"));
	s = slurp("mail.log", &len);
	assert_int_equal(len, 0);
	free(s);
	/* Empty files are not rotated, whatever the limits. */
	assert_false(exists("debug.log.1"));
}

/* ---- index ---- */

static void load_index(const char *name, struct logidx_entry **e_r, size_t *count_r)
{
	size_t len;
	char *img = slurp(name, &len);
	int64_t created;

	assert_int_equal(logidx_parse(img, len, &created, e_r, count_r), 0);
	assert_int_equal(len, LOGIDX_HEADER_SIZE + *count_r * LOGIDX_ENTRY_SIZE);
	free(img);
}

static void check_index_matches_log(const struct logidx_entry *e, size_t count)
{
	size_t len;
	char *log = slurp("mail.log", &len);

	assert_true(count >= len / (LOGIDX_INTERVAL + 200));
	assert_int_equal(e[0].offset, 0);
	for (size_t i = 0; i < count; i++) {
		int64_t t;

		assert_true(e[i].offset < len);
		assert_true(e[i].offset == 0 || log[e[i].offset - 1] == '\n');
		assert_int_equal(log_time_parse(log + e[i].offset, LOG_TIME_LEN, &t), 0);
		assert_true(t == e[i].time_ms);
		if (i > 0)
			assert_true(e[i].offset - e[i - 1].offset >= LOGIDX_INTERVAL);
	}
	free(log);
}

/* Damages mail.idx with fn while the logs are closed, reopens, and checks
 * that the rebuilt index equals the one the writer made. */
static void check_rebuild(void (*damage)(const char *path), const struct logidx_entry *want,
			  size_t want_count)
{
	struct log_config c = config(0, 0, 3);
	struct logidx_entry *e;
	char *path = path_of("mail.idx");
	size_t count;

	log_close();
	damage(path);
	open_logs(&c);
	load_index("mail.idx", &e, &count);
	assert_int_equal(count, want_count);
	assert_memory_equal(e, want, count * sizeof(*e));
	free(e);
	free(path);
}

static void damage_delete(const char *path)
{
	unlink(path);
}

static void damage_truncate(const char *path)
{
	assert_int_equal(truncate(path, LOGIDX_HEADER_SIZE + 10 * LOGIDX_ENTRY_SIZE + 7), 0);
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x5a;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void damage_flip_offset(const char *path)
{
	flip_byte(path, LOGIDX_HEADER_SIZE + 20 * LOGIDX_ENTRY_SIZE + 1);
}

static void damage_flip_time(const char *path)
{
	flip_byte(path, LOGIDX_HEADER_SIZE + 30 * LOGIDX_ENTRY_SIZE + 8);
}

static void damage_flip_magic(const char *path)
{
	flip_byte(path, 2);
}

static void damage_append_garbage(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND);

	assert_int_equal(write(fd, "0123456789abcdef0123456789abcdef", 32), 32);
	close(fd);
}

static void test_index_kept_and_rebuilt(void **state)
{
	struct log_config c = config(0, 0, 3);
	struct logidx_entry *e;
	size_t count;

	(void)state;
	open_logs(&c);
	write_seq_lines(5000);
	load_index("mail.idx", &e, &count);
	assert_true(count > 40);
	check_index_matches_log(e, count);
	check_rebuild(damage_delete, e, count);
	check_rebuild(damage_truncate, e, count);
	check_rebuild(damage_flip_offset, e, count);
	check_rebuild(damage_flip_time, e, count);
	check_rebuild(damage_flip_magic, e, count);
	check_rebuild(damage_append_garbage, e, count);
	/* And the writer carries on appending to the rebuilt index. */
	write_seq_lines(500);
	free(e);
	load_index("mail.idx", &e, &count);
	check_index_matches_log(e, count);
	free(e);
}

static void test_torn_tail_repaired(void **state)
{
	struct log_config c = config(0, 0, 3);
	char *path = path_of("mail.log"), *s;
	int fd = open(path, O_WRONLY | O_CREAT, 0640);
	size_t len;

	(void)state;
	assert_int_equal(write(fd, "2026-11-29T08:19:41.000Z INFO x: ha", 35), 35);
	close(fd);
	open_logs(&c);
	log_mail("x", "next");
	s = slurp("mail.log", &len);
	assert_string_equal(s, "2026-11-29T08:19:41.000Z INFO x: ha\n"
			       "2026-11-29T08:19:41.123Z INFO x: next\n");
	free(s);
	free(path);
}

static void test_reopen(void **state)
{
	struct log_config c = config(0, 0, 3);
	char *from = path_of("mail.log"), *to = path_of("mail.log.moved"), *s;

	(void)state;
	open_logs(&c);
	log_mail("x", "before");
	assert_int_equal(rename(from, to), 0);
	log_reopen();
	log_mail("x", "after");
	s = slurp("mail.log", NULL);
	assert_string_equal(s, "2026-11-29T08:19:41.123Z INFO x: after\n");
	free(s);
	s = slurp("mail.log.moved", NULL);
	assert_string_equal(s, "2026-11-29T08:19:41.123Z INFO x: before\n");
	free(s);
	free(from);
	free(to);
}

static void test_panic_reaches_error_log(void **state)
{
	struct log_config c = config(0, 0, 3);
	int status;
	pid_t pid;
	char *s;

	(void)state;
	open_logs(&c);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, STDERR_FILENO);
		signal(SIGABRT, SIG_DFL);
		panic("boom %d\nsecond line", 7);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	s = slurp("error.log", NULL);
	assert_string_equal(s, "2026-11-29T08:19:41.123Z ERROR panic: boom 7?second line\n");
	free(s);
}

/* ---- reading back ---- */

static struct log_reader *open_reader(const char *name, const char *idx)
{
	char *p = path_of(name), *ip = idx != NULL ? path_of(idx) : NULL;
	struct log_reader *r;
	const char *error;

	if (log_reader_open(p, ip, &r, &error) < 0)
		fail_msg("log_reader_open: %s", error);
	free(p);
	free(ip);
	return r;
}

/* Pages back through the last n lines, expecting seq=last .. last-n+1. */
static void expect_tail(struct log_reader *r, unsigned last, unsigned n)
{
	const char *line, *error;
	size_t len;

	for (unsigned i = 0; i < n; i++) {
		char want[32];

		assert_int_equal(log_reader_prev(r, &line, &len, &error), 1);
		snprintf(want, sizeof(want), "seq=%u ", last - i);
		assert_non_null(memmem(line, len, want, strlen(want)));
	}
}

/* Finds the last match of needle backwards; returns its seq. */
static unsigned grep_back(struct log_reader *r, const char *needle)
{
	const char *line, *error;
	size_t len;

	while (log_reader_prev(r, &line, &len, &error) == 1) {
		if (log_line_icontains(line, len, needle)) {
			const char *q = memmem(line, len, "seq=", 4);

			assert_non_null(q);
			return (unsigned)strtoul(q + 4, NULL, 10);
		}
	}
	fail_msg("no match for %s", needle);
	return 0;
}

static void test_tail_and_grep(void **state)
{
	struct log_config c = config(0, 0, 3);
	struct log_reader *r;

	(void)state;
	open_logs(&c);
	for (unsigned i = 0; i < 20000; i++)
		log_mail("g", "seq=%u %s", i, i == 3 ? "NeedleStart" : i == 19990 ? "needle-END" : "hay");
	r = open_reader("mail.log", "mail.idx");
	expect_tail(r, 19999, 50);
	log_reader_free(&r);

	r = open_reader("mail.log", "mail.idx");
	assert_int_equal(grep_back(r, "NEEDLE-end"), 19990);
	assert_true(log_reader_bytes_read(r) < 128 * 1024);
	log_reader_free(&r);

	r = open_reader("mail.log", "mail.idx");
	assert_int_equal(grep_back(r, "needlestart"), 3);
	assert_true(log_reader_index_ok(r));
	log_reader_free(&r);
}

/* A ~20 MB log: the last 50 lines and a match near the end cost far less
 * than the file, with the index and without it. */
static void test_big_log_reads_little(void **state)
{
	struct log_config c = config(0, 0, 3);
	char pad[200];
	struct log_reader *r;
	struct stat st;
	char *path = path_of("mail.log");
	unsigned n = 0;

	(void)state;
	memset(pad, 'x', sizeof(pad));
	open_logs(&c);
	do {
		for (unsigned i = 0; i < 1000; i++, n++)
			log_mail("big", "seq=%u %s %.*s", n, n % 50000 == 49000 ? "marker" : "",
				 (int)(n % 200), pad);
		assert_int_equal(stat(path, &st), 0);
	} while (st.st_size < 20 * 1024 * 1024);

	r = open_reader("mail.log", "mail.idx");
	expect_tail(r, n - 1, 50);
	assert_true(log_reader_index_ok(r));
	assert_true(log_reader_bytes_read(r) < 256 * 1024);
	log_reader_free(&r);

	r = open_reader("mail.log", "mail.idx");
	assert_true(grep_back(r, "MARKER") + 50000 >= n);
	assert_true(log_reader_bytes_read(r) < (uint64_t)st.st_size / 2);
	log_reader_free(&r);

	r = open_reader("mail.log", NULL);
	expect_tail(r, n - 1, 50);
	assert_true(log_reader_bytes_read(r) < 256 * 1024);
	log_reader_free(&r);
	free(path);
}

struct follow_got {
	unsigned next;
};

static void follow_check(void *context, const char *line, size_t len)
{
	struct follow_got *g = context;
	char want[32];

	snprintf(want, sizeof(want), "seq=%u ", g->next);
	assert_non_null(memmem(line, len, want, strlen(want)));
	g->next++;
}

static void test_follow_across_rotation(void **state)
{
	struct log_config c = config(2000, 0, 50);
	struct follow_got got = { 0 };
	struct log_follow *f;
	struct log_reader *r;
	const char *error;
	char *path = path_of("mail.log");

	(void)state;
	open_logs(&c);
	r = open_reader("mail.log", "mail.idx");
	assert_int_equal(log_follow_open(path, r, &f, &error), 0);
	log_reader_free(&r);
	for (unsigned i = 0; i < 300; i++) {
		log_mail("rot", "seq=%u some padding to make the line about one hundred bytes long", i);
		/* Later, several rotations happen between two polls. */
		if (i < 150 ? i % 3 == 0 : i % 47 == 0)
			assert_int_equal(log_follow_poll(f, follow_check, &got, &error), 0);
	}
	assert_int_equal(log_follow_poll(f, follow_check, &got, &error), 0);
	assert_int_equal(got.next, 300);
	assert_true(exists("mail.log.10"));
	log_follow_free(&f);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_line_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stderr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_whole_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_by_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_keep_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_by_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconfigure_rotates_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_kept_and_rebuilt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_repaired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_panic_reaches_error_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tail_and_grep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_log_reads_little, setup, teardown),
		cmocka_unit_test_setup_teardown(test_follow_across_rotation, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
