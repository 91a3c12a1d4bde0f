/*
 * The .idx file beside each log, the log line grammar, and the reading
 * side of the logs (petrelctl log show).
 *
 * The index is derived data: a sparse list of {line start offset, time}
 * pairs, one per >= LOGIDX_INTERVAL bytes of log.  It lets a reader jump
 * near the end of a log, walk backwards one block at a time, or find a
 * line by time, without reading the whole file.  A reader never trusts it
 * blindly: every entry it uses is checked against the log (the byte before
 * it is '\n' and the line's timestamp equals the entry's time), and a
 * missing or wrong index only makes reading slower, never wrong.  The
 * writer (log.c) rebuilds it when it opens a log.
 *
 * File format (docs/logs.md), all integers little-endian:
 *
 *   header, 16 bytes:  "PLIDX\0\0\1" (magic + version 1)
 *                      int64 creation time of the log file, unix ms
 *   entries, 16 bytes: uint64 byte offset of a line start
 *                      int64  that line's time, unix ms
 *
 * The first entry is at offset 0 (the first line); later ones at the first
 * line that starts LOGIDX_INTERVAL or more bytes after the previous entry.
 *
 * The first half of this header is pure (no I/O, no globals): the unit
 * tests and fuzz/fuzz_logidx.c call it directly.  The second half
 * (struct log_reader, struct log_follow) does the file I/O.
 */
#ifndef PETREL_LOGIDX_H
#define PETREL_LOGIDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "core/xmalloc.h"

#define LOGIDX_MAGIC "PLIDX\0\0\1"
#define LOGIDX_MAGIC_SIZE 8
#define LOGIDX_HEADER_SIZE 16
#define LOGIDX_ENTRY_SIZE 16
/* One entry per this many bytes of log: 1 GB of log → 4 MB of index, and
 * a reader never reads more than a few KiB past the point it wants. */
#define LOGIDX_INTERVAL 4096

/* "2026-11-29T08:19:41.123Z": the fixed-width timestamp opening a line. */
#define LOG_TIME_LEN 24

struct logidx_entry {
	uint64_t offset;   /* a line start in the log */
	int64_t time_ms;   /* that line's timestamp, unix ms */
};

/* ---- pure: encoding ---- */

void logidx_header_encode(unsigned char out[LOGIDX_HEADER_SIZE], int64_t created_ms);
/* Checks the magic; returns 0 and the creation time, or -1 when len is
 * short or the magic/version is not ours. */
int logidx_header_decode(const void *data, size_t len, int64_t *created_ms_r) PETREL_MUST_CHECK;
void logidx_entry_encode(unsigned char out[LOGIDX_ENTRY_SIZE], const struct logidx_entry *e);
void logidx_entry_decode(const void *in, struct logidx_entry *e_r);

/* Decodes a whole index file image.  Returns 0 with the creation time and
 * the entries (newly allocated, caller frees; NULL when there are none), or
 * -1 when the header is bad.  A torn last entry is ignored. */
int logidx_parse(const void *data, size_t len, int64_t *created_ms_r,
		 struct logidx_entry **entries_r, size_t *count_r) PETREL_MUST_CHECK;

/* How many leading entries are plausible for a log of log_size bytes: the
 * first at offset 0, offsets strictly increasing and below log_size.  What
 * follows the first bad entry is not trusted either. */
size_t logidx_valid_prefix(const struct logidx_entry *e, size_t count, uint64_t log_size);

/* The rule shared by the writer and the rebuild: does the line starting at
 * line_offset get an entry, given the last entry so far (if any)? */
bool logidx_want_entry(bool have_entry, uint64_t last_offset, uint64_t line_offset);

/* ---- pure: search ---- */

/* Reads entry i (i < count) of some index; returns 0, or -1 when it cannot
 * (the search then fails).  Lets one search serve arrays and files. */
typedef int logidx_get_fn(void *context, size_t i, struct logidx_entry *e_r);

/* Finds the last entry with offset <= offset (the block holding that byte).
 * Returns true and *i_r, or false when there is none (or get failed).
 * Entries must be sorted by offset; on an unsorted index the answer is some
 * entry, which the caller verifies anyway. */
bool logidx_search_offset(logidx_get_fn *get, void *context, size_t count, uint64_t offset,
			  size_t *i_r);
/* Finds the last entry with time_ms < time_ms: the first line at or after
 * time_ms starts in that entry's block or later.  False when the first
 * entry is already at or after time_ms (start at the beginning).  Clock
 * steps backwards make the answer approximate, never out of range. */
bool logidx_search_time(logidx_get_fn *get, void *context, size_t count, int64_t time_ms,
			size_t *i_r);
/* The same over an in-memory array. */
bool logidx_find_offset(const struct logidx_entry *e, size_t count, uint64_t offset, size_t *i_r);
bool logidx_find_time(const struct logidx_entry *e, size_t count, int64_t time_ms, size_t *i_r);

/* ---- pure: rebuilding from the log ---- */

typedef void logidx_emit_fn(void *context, const struct logidx_entry *e);

/* Scans log bytes in any chunking and emits the entries the writer would
 * have written.  A line whose timestamp does not parse gets the previous
 * entry's time (so times stay ordered). */
struct logidx_builder {
	uint64_t offset;           /* file offset of the next byte fed */
	uint64_t line_start;
	bool in_line;              /* inside a line (not at its first byte) */
	bool pending;              /* this line wants an entry, waiting for its time */
	char head[LOG_TIME_LEN];
	size_t head_len;
	bool have_entry;
	uint64_t last_offset;
	int64_t last_time;
};

/* Starts at start_offset, which must be a line start; last is the entry
 * before it (NULL when none). */
void logidx_builder_init(struct logidx_builder *b, uint64_t start_offset,
			 const struct logidx_entry *last);
void logidx_builder_feed(struct logidx_builder *b, const void *data, size_t len,
			 logidx_emit_fn *emit, void *context);

/* ---- pure: lines ---- */

/* Formats unix ms as LOG_TIME_LEN characters plus a NUL (years clamped to
 * 0000..9999). */
void log_time_format(int64_t time_ms, char out[LOG_TIME_LEN + 1]);
/* Parses exactly the LOG_TIME_LEN characters at s (len >= LOG_TIME_LEN);
 * returns 0 and unix ms, or -1. */
int log_time_parse(const char *s, size_t len, int64_t *time_ms_r) PETREL_MUST_CHECK;

/* A log line split into its fields; pointers borrow from the line. */
struct log_line {
	int64_t time_ms;
	const char *time;       /* LOG_TIME_LEN characters */
	enum log_level level;
	const char *level_str;
	size_t level_len;
	const char *component;
	size_t component_len;
	const char *message;
	size_t message_len;
};

/* Parses "TIME LEVEL component: message" (no newline).  Returns 0, or -1
 * for a line that does not follow the format. */
int log_line_parse(const char *line, size_t len, struct log_line *r) PETREL_MUST_CHECK;
/* Case-insensitive (ASCII) substring test; an empty needle matches. */
bool log_line_icontains(const char *line, size_t len, const char *needle);

/* ---- I/O: reading a log backwards ---- */

/* Paths of a log file and its index: generation 0 is NAME.log / NAME.idx,
 * generation N is NAME.log.N / NAME.N.idx.  Newly allocated; caller frees. */
char *log_file_path(const char *dir, enum log_name name, unsigned generation);
char *log_idx_path(const char *dir, enum log_name name, unsigned generation);

struct log_reader;

/* Opens a log for reading; idx_path may be NULL or name a missing or bad
 * index (the reader then reads fixed-size chunks).  The reader sees the
 * file as it was at open, up to its last complete line.  Returns 0, or -1
 * with *error_r (thread-local storage) and errno from open(2) preserved. */
int log_reader_open(const char *log_path, const char *idx_path, struct log_reader **reader_r,
		    const char **error_r) PETREL_MUST_CHECK;
void log_reader_free(struct log_reader **reader);

/* Returns the line before the previous one returned (the last line of the
 * file on the first call), without its newline: 1 with *line_r (borrowed,
 * valid until the next call) and *len_r, 0 at the start of the file, or -1
 * on a read error with *error_r. */
int log_reader_prev(struct log_reader *r, const char **line_r, size_t *len_r,
		    const char **error_r) PETREL_MUST_CHECK;

/* Finds the first line whose time is >= time_ms, using the index to skip
 * to its block.  Returns 0 with its offset in *offset_r (the end of the
 * file when there is none), or -1 with *error_r. */
int log_reader_find_time(struct log_reader *r, int64_t time_ms, uint64_t *offset_r,
			 const char **error_r) PETREL_MUST_CHECK;

/* Bytes read so far from the log and its index (tests assert that a tail
 * of a big log stays small). */
uint64_t log_reader_bytes_read(const struct log_reader *r);
/* Where the file ended at open: the offset following its last complete
 * line.  log_follow_open() continues from here. */
uint64_t log_reader_end(const struct log_reader *r);
/* True while the index is trusted (false after an entry failed its check). */
bool log_reader_index_ok(const struct log_reader *r);

/* ---- I/O: following a log (tail -F) ---- */

struct log_follow;

typedef void log_line_fn(void *context, const char *line, size_t len);

/* Follows path from where reader ended (reader may be NULL: from the
 * current end of the file).  The reader is not consumed.  Returns 0 or -1
 * with *error_r. */
int log_follow_open(const char *path, const struct log_reader *reader, struct log_follow **f_r,
		    const char **error_r) PETREL_MUST_CHECK;
void log_follow_free(struct log_follow **f);
/* Calls fn for each complete line appended since the last call.  When the
 * path now names another file (rotation) the old file is drained first,
 * then any files rotated in between (path.N-1 .. path.1 when the old one
 * is now path.N), then the new one from its start; a file truncated in
 * place is read again from its start.  Returns 0, or -1 on a read error
 * with *error_r. */
int log_follow_poll(struct log_follow *f, log_line_fn *fn, void *context,
		    const char **error_r) PETREL_MUST_CHECK;

#endif
