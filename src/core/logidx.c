/*
 * Log index format, line grammar, and the log reader/follower; see logidx.h.
 *
 * The writer (log.c, inside petreld) and the reader (petrelctl log show)
 * share this file: the writer for the entry rule and the rebuild scan, the
 * reader for everything else.  The pure half comes first and touches no
 * file, so fuzz_logidx.c can drive it; the I/O half follows.
 */
#include "core/logidx.h"
#include "core/str.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* pure: little-endian encoding                                        */

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void logidx_header_encode(unsigned char out[LOGIDX_HEADER_SIZE], int64_t created_ms)
{
	memcpy(out, LOGIDX_MAGIC, LOGIDX_MAGIC_SIZE);
	put_le64(out + LOGIDX_MAGIC_SIZE, (uint64_t)created_ms);
}

int logidx_header_decode(const void *data, size_t len, int64_t *created_ms_r)
{
	const unsigned char *p = data;

	if (len < LOGIDX_HEADER_SIZE || memcmp(p, LOGIDX_MAGIC, LOGIDX_MAGIC_SIZE) != 0)
		return -1;
	*created_ms_r = (int64_t)get_le64(p + LOGIDX_MAGIC_SIZE);
	return 0;
}

void logidx_entry_encode(unsigned char out[LOGIDX_ENTRY_SIZE], const struct logidx_entry *e)
{
	put_le64(out, e->offset);
	put_le64(out + 8, (uint64_t)e->time_ms);
}

void logidx_entry_decode(const void *in, struct logidx_entry *e_r)
{
	const unsigned char *p = in;

	e_r->offset = get_le64(p);
	e_r->time_ms = (int64_t)get_le64(p + 8);
}

int logidx_parse(const void *data, size_t len, int64_t *created_ms_r,
		 struct logidx_entry **entries_r, size_t *count_r)
{
	const unsigned char *p = data;
	struct logidx_entry *e = NULL;
	size_t count;

	if (logidx_header_decode(data, len, created_ms_r) < 0)
		return -1;
	count = (len - LOGIDX_HEADER_SIZE) / LOGIDX_ENTRY_SIZE;
	if (count > 0) {
		e = xmallocarray(count, sizeof(*e));
		for (size_t i = 0; i < count; i++)
			logidx_entry_decode(p + LOGIDX_HEADER_SIZE + i * LOGIDX_ENTRY_SIZE, &e[i]);
	}
	*entries_r = e;
	*count_r = count;
	return 0;
}

size_t logidx_valid_prefix(const struct logidx_entry *e, size_t count, uint64_t log_size)
{
	for (size_t i = 0; i < count; i++) {
		if (i == 0 && e[i].offset != 0)
			return 0;
		if (i > 0 && e[i].offset <= e[i - 1].offset)
			return i;
		if (e[i].offset >= log_size)
			return i;
	}
	return count;
}

bool logidx_want_entry(bool have_entry, uint64_t last_offset, uint64_t line_offset)
{
	return !have_entry || (line_offset > last_offset && line_offset - last_offset >= LOGIDX_INTERVAL);
}

/* ------------------------------------------------------------------ */
/* pure: search                                                        */

bool logidx_search_offset(logidx_get_fn *get, void *context, size_t count, uint64_t offset,
			  size_t *i_r)
{
	size_t lo = 0, hi = count;
	struct logidx_entry e;

	/* Find the first entry past offset; the answer is the one before. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (get(context, mid, &e) < 0)
			return false;
		if (e.offset <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return false;
	*i_r = lo - 1;
	return true;
}

bool logidx_search_time(logidx_get_fn *get, void *context, size_t count, int64_t time_ms,
			size_t *i_r)
{
	size_t lo = 0, hi = count;
	struct logidx_entry e;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (get(context, mid, &e) < 0)
			return false;
		if (e.time_ms < time_ms)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return false;
	*i_r = lo - 1;
	return true;
}

static int array_get(void *context, size_t i, struct logidx_entry *e_r)
{
	const struct logidx_entry *e = context;

	*e_r = e[i];
	return 0;
}

bool logidx_find_offset(const struct logidx_entry *e, size_t count, uint64_t offset, size_t *i_r)
{
	return logidx_search_offset(array_get, (void *)e, count, offset, i_r);
}

bool logidx_find_time(const struct logidx_entry *e, size_t count, int64_t time_ms, size_t *i_r)
{
	return logidx_search_time(array_get, (void *)e, count, time_ms, i_r);
}

/* ------------------------------------------------------------------ */
/* pure: rebuild scan                                                  */

void logidx_builder_init(struct logidx_builder *b, uint64_t start_offset,
			 const struct logidx_entry *last)
{
	memset(b, 0, sizeof(*b));
	b->offset = start_offset;
	if (last != NULL) {
		b->have_entry = true;
		b->last_offset = last->offset;
		b->last_time = last->time_ms;
	}
}

static void builder_emit(struct logidx_builder *b, logidx_emit_fn *emit, void *context)
{
	struct logidx_entry e = { .offset = b->line_start, .time_ms = b->last_time };
	int64_t t;

	if (b->head_len == LOG_TIME_LEN && log_time_parse(b->head, b->head_len, &t) == 0)
		e.time_ms = t;
	b->pending = false;
	b->have_entry = true;
	b->last_offset = e.offset;
	b->last_time = e.time_ms;
	emit(context, &e);
}

void logidx_builder_feed(struct logidx_builder *b, const void *data, size_t len,
			 logidx_emit_fn *emit, void *context)
{
	const char *p = data;
	size_t i = 0;

	while (i < len) {
		if (!b->in_line) {
			b->in_line = true;
			b->line_start = b->offset + i;
			b->head_len = 0;
			b->pending = logidx_want_entry(b->have_entry, b->last_offset, b->line_start);
		}
		if (b->pending && p[i] != '\n') {
			b->head[b->head_len++] = p[i];
			if (b->head_len == LOG_TIME_LEN)
				builder_emit(b, emit, context);
			i++;
			continue;
		}
		if (b->pending)  /* a line shorter than a timestamp */
			builder_emit(b, emit, context);
		/* Most bytes are skipped here, a memchr at a time. */
		const char *nl = memchr(p + i, '\n', len - i);

		if (nl == NULL) {
			i = len;
			break;
		}
		i = (size_t)(nl - p) + 1;
		b->in_line = false;
	}
	b->offset += len;
}

/* ------------------------------------------------------------------ */
/* pure: time stamps and lines                                         */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * algorithm: exact for every year, no tables, no timegm/TZ). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y_r, unsigned *m_r, unsigned *d_r)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d_r = doy - (153 * mp + 2) / 5 + 1;
	*m_r = mp < 10 ? mp + 3 : mp - 9;
	*y_r = (int64_t)yoe + era * 400 + (*m_r <= 2);
}

#define MS_PER_DAY 86400000LL

static void put_digits(char *out, unsigned v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		out[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

void log_time_format(int64_t time_ms, char out[LOG_TIME_LEN + 1])
{
	const int64_t min_ms = days_from_civil(0, 1, 1) * MS_PER_DAY;
	const int64_t max_ms = days_from_civil(10000, 1, 1) * MS_PER_DAY - 1;
	int64_t days, rem, y;
	unsigned m, d;

	if (time_ms < min_ms)
		time_ms = min_ms;
	if (time_ms > max_ms)
		time_ms = max_ms;
	days = time_ms / MS_PER_DAY;
	rem = time_ms % MS_PER_DAY;
	if (rem < 0) {
		rem += MS_PER_DAY;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	memcpy(out, "0000-00-00T00:00:00.000Z", LOG_TIME_LEN + 1);
	put_digits(out, (unsigned)y, 4);
	put_digits(out + 5, m, 2);
	put_digits(out + 8, d, 2);
	put_digits(out + 11, (unsigned)(rem / 3600000), 2);
	put_digits(out + 14, (unsigned)(rem / 60000 % 60), 2);
	put_digits(out + 17, (unsigned)(rem / 1000 % 60), 2);
	put_digits(out + 20, (unsigned)(rem % 1000), 3);
}

static int get_digits(const char *s, int width, unsigned *v_r)
{
	unsigned v = 0;

	for (int i = 0; i < width; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*v_r = v;
	return 0;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
	static const unsigned days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

int log_time_parse(const char *s, size_t len, int64_t *time_ms_r)
{
	unsigned y, mo, d, h, mi, sec, ms;

	if (len < LOG_TIME_LEN || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':' || s[19] != '.' || s[23] != 'Z')
		return -1;
	if (get_digits(s, 4, &y) < 0 || get_digits(s + 5, 2, &mo) < 0 ||
	    get_digits(s + 8, 2, &d) < 0 || get_digits(s + 11, 2, &h) < 0 ||
	    get_digits(s + 14, 2, &mi) < 0 || get_digits(s + 17, 2, &sec) < 0 ||
	    get_digits(s + 20, 3, &ms) < 0)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
		return -1;
	*time_ms_r = days_from_civil(y, mo, d) * MS_PER_DAY +
		     ((int64_t)h * 3600 + mi * 60 + sec) * 1000 + ms;
	return 0;
}

static const char *const level_names[] = { "DEBUG", "INFO", "WARN", "ERROR" };

int log_line_parse(const char *line, size_t len, struct log_line *r)
{
	const char *p, *end = line + len, *sp;

	if (log_time_parse(line, len, &r->time_ms) < 0 || len < LOG_TIME_LEN + 2 ||
	    line[LOG_TIME_LEN] != ' ')
		return -1;
	r->time = line;
	p = line + LOG_TIME_LEN + 1;
	sp = memchr(p, ' ', (size_t)(end - p));
	if (sp == NULL)
		return -1;
	r->level_str = p;
	r->level_len = (size_t)(sp - p);
	for (size_t i = 0;; i++) {
		if (i == sizeof(level_names) / sizeof(level_names[0]))
			return -1;
		if (strlen(level_names[i]) == r->level_len && memcmp(p, level_names[i], r->level_len) == 0) {
			r->level = (enum log_level)i;
			break;
		}
	}
	/* The component ends at the first ": "; the writer escapes it, so it
	 * holds no newline, but it is not otherwise restricted. */
	r->component = sp + 1;
	for (p = r->component; p + 1 < end; p++) {
		if (p[0] == ':' && p[1] == ' ')
			break;
	}
	if (p + 1 >= end)
		return -1;
	r->component_len = (size_t)(p - r->component);
	r->message = p + 2;
	r->message_len = (size_t)(end - r->message);
	return 0;
}

bool log_line_icontains(const char *line, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	if (n == 0)
		return true;
	for (size_t i = 0; i + n <= len; i++) {
		size_t j = 0;

		while (j < n && tolower((unsigned char)line[i + j]) == tolower((unsigned char)needle[j]))
			j++;
		if (j == n)
			return true;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* I/O: paths                                                          */

char *log_file_path(const char *dir, enum log_name name, unsigned generation)
{
	const char *n = log_name_str(name);

	if (n == NULL)
		panic("log_file_path: bad log %d", (int)name);
	if (generation == 0)
		return xasprintf("%s/%s.log", dir, n);
	return xasprintf("%s/%s.log.%u", dir, n, generation);
}

char *log_idx_path(const char *dir, enum log_name name, unsigned generation)
{
	const char *n = log_name_str(name);

	if (n == NULL)
		panic("log_idx_path: bad log %d", (int)name);
	if (generation == 0)
		return xasprintf("%s/%s.idx", dir, n);
	return xasprintf("%s/%s.%u.idx", dir, n, generation);
}

/* ------------------------------------------------------------------ */
/* I/O: reader                                                         */

/* Bytes read per step backwards.  A tail of 50 lines costs one read. */
#define READER_CHUNK (64 * 1024)
/* An index block longer than this is not used (entries missing, e.g. after
 * a crash): a fixed chunk is read instead, so one step stays small. */
#define READER_MAX_SPAN (4 * READER_CHUNK)
/* A "line" longer than this (not a Petrel log, or a hole of zeros after a
 * crash) is returned in pieces of this size instead of growing the window
 * without end. */
#define READER_MAX_LINE (4 * 1024 * 1024)

static _Thread_local char reader_errbuf[PATH_MAX + 128];

struct log_reader {
	char *path;
	int fd;
	struct stat st;          /* of fd at open: identity for log_follow */
	int idx_fd;              /* -1: no index, or it proved wrong */
	size_t idx_count;
	uint64_t end;            /* offset after the last complete line */
	char *win;               /* holds the file's bytes [win_start, cursor) */
	size_t win_cap;
	uint64_t win_start;
	uint64_t cursor;         /* lines before cursor are not returned yet */
	uint64_t bytes_read;
};

static const char *reader_error(const struct log_reader *r, const char *what)
{
	snprintf(reader_errbuf, sizeof(reader_errbuf), "cannot %s %s: %s", what, r->path,
		 strerror(errno));
	return reader_errbuf;
}

/* Reads exactly len bytes at off; a short read means the file shrank under
 * us (truncated by hand), reported as an error rather than guessed at. */
static int read_exact(struct log_reader *r, int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENODATA; /* the file shrank under us */
			return -1;
		}
		r->bytes_read += (uint64_t)n;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int idx_get(void *context, size_t i, struct logidx_entry *e_r)
{
	struct log_reader *r = context;
	unsigned char raw[LOGIDX_ENTRY_SIZE];

	if (read_exact(r, r->idx_fd, raw, sizeof(raw),
		       LOGIDX_HEADER_SIZE + (uint64_t)i * LOGIDX_ENTRY_SIZE) < 0)
		return -1;
	logidx_entry_decode(raw, e_r);
	return 0;
}

static void idx_disable(struct log_reader *r)
{
	if (r->idx_fd >= 0)
		close(r->idx_fd);
	r->idx_fd = -1;
	r->idx_count = 0;
}

static void idx_open(struct log_reader *r, const char *idx_path)
{
	unsigned char head[LOGIDX_HEADER_SIZE];
	struct stat st;
	int64_t created;

	r->idx_fd = idx_path == NULL ? -1 : open(idx_path, O_RDONLY | O_CLOEXEC);
	if (r->idx_fd < 0)
		return;
	if (fstat(r->idx_fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < LOGIDX_HEADER_SIZE ||
	    read_exact(r, r->idx_fd, head, sizeof(head), 0) < 0 ||
	    logidx_header_decode(head, sizeof(head), &created) < 0) {
		idx_disable(r);
		return;
	}
	r->idx_count = (size_t)(((uint64_t)st.st_size - LOGIDX_HEADER_SIZE) / LOGIDX_ENTRY_SIZE);
}

/* Checks that e is what it claims, given the log bytes from e->offset - 1
 * (or from 0 when e->offset is 0): a line start, and its time when the line
 * has a readable timestamp. */
static bool entry_matches(const struct logidx_entry *e, const char *data, size_t len)
{
	int64_t t;

	if (e->offset > 0) {
		if (len == 0 || data[0] != '\n')
			return false;
		data++;
		len--;
	}
	if (log_time_parse(data, len, &t) == 0 && t != e->time_ms)
		return false;
	return true;
}

/* Makes room for add bytes in front of the window. */
static void window_grow_front(struct log_reader *r, size_t add)
{
	size_t have = (size_t)(r->cursor - r->win_start);

	if (have + add > r->win_cap) {
		r->win_cap = have + add;
		r->win = xrealloc(r->win, r->win_cap);
	}
	if (have > 0)
		memmove(r->win + add, r->win, have);
}

/* Chooses where the next step backwards starts: a verified index entry
 * when one is near enough, else a fixed chunk. */
static uint64_t step_start(struct log_reader *r, struct logidx_entry *e_r, bool *use_entry_r)
{
	uint64_t target = r->win_start > READER_CHUNK ? r->win_start - READER_CHUNK : 0;
	size_t i;

	*use_entry_r = false;
	if (target == 0 || r->idx_fd < 0)
		return target;
	if (!logidx_search_offset(idx_get, r, r->idx_count, target, &i) || idx_get(r, i, e_r) < 0) {
		idx_disable(r);
		return target;
	}
	if (e_r->offset == 0 || e_r->offset >= r->win_start ||
	    r->win_start - e_r->offset > READER_MAX_SPAN)
		return target;
	*use_entry_r = true;
	/* Read the byte before the entry too: it must be the '\n' that ends
	 * the previous line, which is also what the line search needs. */
	return e_r->offset - 1;
}

/* Prepends the previous block of the file to the window (win_start > 0). */
static int window_extend(struct log_reader *r, const char **error_r)
{
	struct logidx_entry e;
	bool use_entry;
	uint64_t start = step_start(r, &e, &use_entry);
	size_t add = (size_t)(r->win_start - start);

	window_grow_front(r, add);
	if (read_exact(r, r->fd, r->win, add, start) < 0) {
		*error_r = reader_error(r, "read");
		return -1;
	}
	r->win_start = start;
	/* A wrong entry costs nothing here (the bytes are still the file's,
	 * the line search simply goes on), but the index is not used again. */
	if (use_entry && !entry_matches(&e, r->win, add))
		idx_disable(r);
	return 0;
}

/* Sets end and cursor past the last complete line: a line still being
 * written (no '\n' yet) belongs to whoever follows the file. */
static int find_end(struct log_reader *r, const char **error_r)
{
	r->win_start = r->cursor = (uint64_t)r->st.st_size;
	for (;;) {
		size_t have = (size_t)(r->cursor - r->win_start);
		const char *nl = have > 0 ? memrchr(r->win, '\n', have) : NULL;

		if (nl != NULL) {
			r->cursor = r->win_start + (uint64_t)(nl - r->win) + 1;
			break;
		}
		if (r->win_start == 0) {
			r->cursor = 0;
			break;
		}
		if (have > READER_MAX_LINE)
			break;
		if (window_extend(r, error_r) < 0)
			return -1;
	}
	r->end = r->cursor;
	return 0;
}

int log_reader_open(const char *log_path, const char *idx_path, struct log_reader **reader_r,
		    const char **error_r)
{
	struct log_reader *r = xcalloc(1, sizeof(*r));
	int saved;

	r->path = xstrdup(log_path);
	r->idx_fd = -1;
	r->fd = open(log_path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		*error_r = reader_error(r, "open");
		goto fail;
	}
	if (fstat(r->fd, &r->st) < 0) {
		*error_r = reader_error(r, "stat");
		goto fail;
	}
	if (!S_ISREG(r->st.st_mode)) {
		errno = EINVAL;
		*error_r = reader_error(r, "read");
		goto fail;
	}
	idx_open(r, idx_path);
	if (find_end(r, error_r) < 0)
		goto fail;
	*reader_r = r;
	return 0;
fail:
	saved = errno;
	log_reader_free(&r);
	errno = saved;
	return -1;
}

void log_reader_free(struct log_reader **reader)
{
	struct log_reader *r = *reader;

	if (r == NULL)
		return;
	*reader = NULL;
	if (r->fd >= 0)
		close(r->fd);
	idx_disable(r);
	free(r->win);
	free(r->path);
	free(r);
}

int log_reader_prev(struct log_reader *r, const char **line_r, size_t *len_r, const char **error_r)
{
	for (;;) {
		size_t have = (size_t)(r->cursor - r->win_start), body = have;
		const char *nl = NULL;

		if (r->cursor == 0)
			return 0;
		if (body > 0 && r->win[body - 1] == '\n')
			body--;
		if (body > 0)
			nl = memrchr(r->win, '\n', body);
		if (nl != NULL) {
			size_t start = (size_t)(nl - r->win) + 1;

			*line_r = r->win + start;
			*len_r = body - start;
			r->cursor = r->win_start + start;
			return 1;
		}
		if (r->win_start == 0 || have > READER_MAX_LINE) {
			*line_r = r->win;
			*len_r = body;
			r->cursor = r->win_start;
			return 1;
		}
		if (window_extend(r, error_r) < 0)
			return -1;
	}
}

/* Forward scans read this much at a time: the wanted line is usually
 * within LOGIDX_INTERVAL of where the scan starts. */
#define READER_SCAN_CHUNK (16 * 1024)

/* Reads forward from a line start and returns the first line at or after
 * time_ms.  Lines whose timestamp does not parse are stepped over. */
static int scan_time(struct log_reader *r, uint64_t pos, int64_t time_ms, uint64_t *offset_r,
		     const char **error_r)
{
	char *buf = xmalloc(READER_SCAN_CHUNK);
	bool at_line = true;
	int ret = 0;

	*offset_r = r->end;
	while (pos < r->end) {
		size_t n = (size_t)(r->end - pos < READER_SCAN_CHUNK ? r->end - pos : READER_SCAN_CHUNK), i = 0;
		int64_t t;

		if (read_exact(r, r->fd, buf, n, pos) < 0) {
			*error_r = reader_error(r, "read");
			ret = -1;
			break;
		}
		while (i < n) {
			const char *nl;

			/* A timestamp cut by the chunk end: read again from here. */
			if (at_line && n - i <= LOG_TIME_LEN && pos + n < r->end && i > 0)
				break;
			if (at_line && log_time_parse(buf + i, n - i, &t) == 0 && t >= time_ms) {
				*offset_r = pos + i;
				goto done;
			}
			nl = memchr(buf + i, '\n', n - i);
			at_line = nl != NULL;
			i = nl == NULL ? n : (size_t)(nl - buf) + 1;
		}
		pos += i;
	}
done:
	free(buf);
	return ret;
}

int log_reader_find_time(struct log_reader *r, int64_t time_ms, uint64_t *offset_r,
			 const char **error_r)
{
	char head[LOG_TIME_LEN + 1];
	struct logidx_entry e;
	uint64_t start = 0;
	size_t i, n;

	if (r->idx_fd >= 0 && logidx_search_time(idx_get, r, r->idx_count, time_ms, &i) &&
	    idx_get(r, i, &e) == 0 && e.offset < r->end) {
		uint64_t from = e.offset > 0 ? e.offset - 1 : 0;

		n = (size_t)(r->end - from < sizeof(head) ? r->end - from : sizeof(head));
		if (read_exact(r, r->fd, head, n, from) == 0 && entry_matches(&e, head, n))
			start = e.offset;
		else
			idx_disable(r);
	}
	return scan_time(r, start, time_ms, offset_r, error_r);
}

uint64_t log_reader_bytes_read(const struct log_reader *r)
{
	return r->bytes_read;
}

uint64_t log_reader_end(const struct log_reader *r)
{
	return r->end;
}

bool log_reader_index_ok(const struct log_reader *r)
{
	return r->idx_fd >= 0;
}

/* ------------------------------------------------------------------ */
/* I/O: follower                                                       */

struct log_follow {
	char *path;
	int fd;                  /* -1 until the file exists */
	dev_t dev;
	ino_t ino;
	uint64_t offset;         /* next byte to read */
	char *pending;           /* bytes of a line not complete yet */
	size_t pending_len;
	size_t pending_cap;
};

static _Thread_local char follow_errbuf[PATH_MAX + 128];

/* Old generations looked at after a rotation: the largest logs/keep. */
#define LOG_FOLLOW_MAX_GENERATION 1000

static const char *follow_error(const struct log_follow *f, const char *what)
{
	snprintf(follow_errbuf, sizeof(follow_errbuf), "cannot %s %s: %s", what, f->path,
		 strerror(errno));
	return follow_errbuf;
}

static int follow_attach(struct log_follow *f, uint64_t offset)
{
	struct stat st;

	f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(f->fd, &st) < 0) {
		close(f->fd);
		f->fd = -1;
		return -1;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->offset = offset == UINT64_MAX ? (uint64_t)st.st_size : offset;
	return 0;
}

int log_follow_open(const char *path, const struct log_reader *reader, struct log_follow **f_r,
		    const char **error_r)
{
	struct log_follow *f = xcalloc(1, sizeof(*f));

	f->path = xstrdup(path);
	f->fd = -1;
	if (reader != NULL) {
		f->fd = dup(reader->fd);
		f->dev = reader->st.st_dev;
		f->ino = reader->st.st_ino;
		f->offset = reader->end;
	}
	if ((reader != NULL && f->fd < 0) || (reader == NULL && follow_attach(f, UINT64_MAX) < 0)) {
		*error_r = follow_error(f, "open");
		log_follow_free(&f);
		return -1;
	}
	*f_r = f;
	return 0;
}

void log_follow_free(struct log_follow **fp)
{
	struct log_follow *f = *fp;

	if (f == NULL)
		return;
	*fp = NULL;
	if (f->fd >= 0)
		close(f->fd);
	free(f->pending);
	free(f->path);
	free(f);
}

/* Hands out the complete lines in pending and keeps the rest. */
static void follow_emit(struct log_follow *f, log_line_fn *fn, void *context)
{
	size_t start = 0;
	const char *nl;

	while ((nl = memchr(f->pending + start, '\n', f->pending_len - start)) != NULL) {
		size_t end = (size_t)(nl - f->pending);

		fn(context, f->pending + start, end - start);
		start = end + 1;
	}
	if (f->pending_len - start > READER_MAX_LINE) {
		fn(context, f->pending + start, f->pending_len - start);
		start = f->pending_len;
	}
	memmove(f->pending, f->pending + start, f->pending_len - start);
	f->pending_len -= start;
}

/* Reads fd from offset to its end. */
static int follow_drain(struct log_follow *f, log_line_fn *fn, void *context)
{
	for (;;) {
		ssize_t n;

		if (f->pending_cap - f->pending_len < READER_CHUNK) {
			f->pending_cap = f->pending_len + READER_CHUNK;
			f->pending = xrealloc(f->pending, f->pending_cap);
		}
		n = pread(f->fd, f->pending + f->pending_len, READER_CHUNK, (off_t)f->offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		f->offset += (uint64_t)n;
		f->pending_len += (size_t)n;
		follow_emit(f, fn, context);
	}
}

/* Reads the old generation files that were created and rotated away while
 * we slept (several rotations between two polls): the file we had is now
 * path.G; path.G-1 .. path.1 came after it, oldest first.  Best effort: a
 * file already deleted (small keep) is gone for everyone. */
static int follow_between(struct log_follow *f, log_line_fn *fn, void *context)
{
	unsigned g, last = 0;
	int ret = 0;

	for (g = 1; g <= LOG_FOLLOW_MAX_GENERATION; g++) {
		char *p = xasprintf("%s.%u", f->path, g);
		struct stat st;
		int sr = stat(p, &st);

		free(p);
		if (sr < 0)
			return 0;
		if (st.st_dev == f->dev && st.st_ino == f->ino) {
			last = g;
			break;
		}
	}
	for (g = last > 0 ? last - 1 : 0; g >= 1 && ret == 0; g--) {
		char *p = xasprintf("%s.%u", f->path, g);
		int fd = open(p, O_RDONLY | O_CLOEXEC);

		free(p);
		if (fd < 0)
			continue;
		f->fd = fd;
		f->offset = 0;
		ret = follow_drain(f, fn, context);
		if (f->pending_len > 0)
			fn(context, f->pending, f->pending_len);
		f->pending_len = 0;
		close(fd);
		f->fd = -1;
	}
	return ret;
}

int log_follow_poll(struct log_follow *f, log_line_fn *fn, void *context, const char **error_r)
{
	struct stat st;

	if (f->fd >= 0 && follow_drain(f, fn, context) < 0)
		goto fail;
	if (stat(f->path, &st) < 0) {
		/* Between the two renames of a rotation the path is missing
		 * for a moment; so it is before the first line is written. */
		if (errno == ENOENT)
			return 0;
		goto fail;
	}
	if (f->fd >= 0 && st.st_dev == f->dev && st.st_ino == f->ino) {
		if ((uint64_t)st.st_size < f->offset) {
			/* Truncated in place (copytruncate): start again. */
			f->offset = 0;
			f->pending_len = 0;
			if (follow_drain(f, fn, context) < 0)
				goto fail;
		}
		return 0;
	}
	/* Replaced (rotated).  The writer rotates only between lines, and
	 * never writes to the old file afterwards, so one more drain gets
	 * every line the old file received after our previous read. */
	if (f->fd >= 0) {
		if (follow_drain(f, fn, context) < 0)
			goto fail;
		if (f->pending_len > 0)
			fn(context, f->pending, f->pending_len);
		f->pending_len = 0;
		close(f->fd);
		f->fd = -1;
		if (follow_between(f, fn, context) < 0)
			goto fail;
	}
	if (follow_attach(f, 0) < 0 || (f->fd >= 0 && follow_drain(f, fn, context) < 0))
		goto fail;
	return 0;
fail:
	*error_r = follow_error(f, "read");
	return -1;
}
