/*
 * The five logs of the store: debug, error, mail, security, warning
 * (store/logs/NAME.log), each with NAME.idx beside it.
 *
 * Line format (one event per line, client text escaped by the caller or by
 * log_* itself, see below):
 *
 *     2026-11-29T08:19:41.123Z LEVEL component: message
 *
 * LEVEL is one of DEBUG INFO WARN ERROR.  The message is key=value where
 * that makes sense ("session=3f2a... reason=timeout").  Every line is
 * written with one write(2) under a per-log mutex, so threads never
 * interleave within a line.  Before log_open() (and in petrelctl) lines go
 * to stderr.
 *
 * Which file: log_error() goes to error.log, log_warn() to warning.log,
 * log_debug() to debug.log (only when debug logging is on), log_info() to
 * debug.log; mail and security events go to their own logs through
 * log_mail() and log_security() whatever their level.  error and warning
 * lines are also copied to stderr while the engine runs in the foreground.
 *
 * Rotation (by size and by age, checked before each line) renames NAME.log
 * to NAME.log.1 (newest) .. NAME.log.KEEP, and NAME.idx to NAME.1.idx ..
 * NAME.KEEP.idx; see docs/logs.md.  One process writes the logs: the
 * writer keeps each file's size in memory to place index entries.  Reading
 * (petrelctl log show) goes through core/logidx.h.
 */
#ifndef PETREL_LOG_H
#define PETREL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/xmalloc.h"

enum log_name {
	LOG_DEBUG_FILE,
	LOG_ERROR_FILE,
	LOG_MAIL_FILE,
	LOG_SECURITY_FILE,
	LOG_WARNING_FILE,
	LOG_FILE_COUNT
};

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Rotation and retention for one log (mailserver.cfg <logs>). */
struct log_settings {
	uint64_t rotate_size;      /* bytes; 0 = never by size */
	uint64_t rotate_interval;  /* seconds; 0 = never by time */
	unsigned keep;             /* old files kept (NAME.log.1 .. NAME.log.keep) */
};

struct log_config {
	struct log_settings files[LOG_FILE_COUNT];
	bool debug;               /* write log_debug() lines */
	bool foreground;          /* copy warnings and errors to stderr */
};

/* Longest line written, newline included.  A longer message is cut at an
 * escape boundary and ends in "...".  16 KiB holds any sane event and keeps
 * one line one write(2). */
#define LOG_LINE_MAX (16 * 1024)
/* Mode of created log and index files: the group may read them (adm). */
#define LOG_FILE_MODE 0640

/* "debug", "error", ...; NULL for an out-of-range value. */
const char *log_name_str(enum log_name name);
/* Parses a log name; returns 0 or -1. */
int log_name_parse(const char *s, enum log_name *name_r);

/* Opens (creating, mode LOG_FILE_MODE, O_APPEND) the five logs in dir, which
 * must exist and be writable.  A missing, torn or wrong NAME.idx is rebuilt
 * by scanning the log; a last line cut by a crash gets its newline.  Also
 * hooks panic() so that a panic message reaches error.log.  Calling it
 * again closes the previous set first.  Returns 0, or -1 with *error_r
 * (thread-local storage) naming the path and what to do. */
int log_open(const char *dir, const struct log_config *config, const char **error_r);
/* Applies new settings (on reload); rotation limits take effect at once: a
 * file already past the new size or age is rotated now.  A smaller keep
 * removes the extra old files at the next rotation. */
void log_reconfigure(const struct log_config *config);
/* Closes the logs; later calls go to stderr. */
void log_close(void);
/* Reopens files after an external rotation or a chown. */
void log_reopen(void);

/* Formats, escapes (CR, LF, NUL, other control and 8-bit bytes become \r,
 * \n, \xNN: one event is always one line), caps at LOG_LINE_MAX, and
 * appends one line to the log with one write(2), rotating first when the
 * file is due (rotation is checked before each line, never inside one).
 * Thread-safe.  Never fails: when the file cannot be written the line goes
 * to stderr. */
void log_msg(enum log_name name, enum log_level level, const char *component,
	     const char *fmt, ...) PETREL_PRINTF(4, 5);
void log_msgv(enum log_name name, enum log_level level, const char *component,
	      const char *fmt, va_list ap) PETREL_PRINTF(4, 0);

/* Test seam: the clock giving line times and deciding time rotation, in
 * unix milliseconds.  NULL restores the real clock (CLOCK_REALTIME). */
typedef int64_t log_clock_fn(void);
void log_set_clock(log_clock_fn *fn);

#define log_debug(comp, ...) log_msg(LOG_DEBUG_FILE, LOG_LEVEL_DEBUG, comp, __VA_ARGS__)
#define log_info(comp, ...) log_msg(LOG_DEBUG_FILE, LOG_LEVEL_INFO, comp, __VA_ARGS__)
#define log_warn(comp, ...) log_msg(LOG_WARNING_FILE, LOG_LEVEL_WARN, comp, __VA_ARGS__)
#define log_error(comp, ...) log_msg(LOG_ERROR_FILE, LOG_LEVEL_ERROR, comp, __VA_ARGS__)
#define log_mail(comp, ...) log_msg(LOG_MAIL_FILE, LOG_LEVEL_INFO, comp, __VA_ARGS__)
#define log_security(comp, ...) log_msg(LOG_SECURITY_FILE, LOG_LEVEL_WARN, comp, __VA_ARGS__)

#endif
