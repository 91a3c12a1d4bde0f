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
 */
#ifndef PETREL_LOG_H
#define PETREL_LOG_H

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

/* "debug", "error", ...; NULL for an out-of-range value. */
const char *log_name_str(enum log_name name);
/* Parses a log name; returns 0 or -1. */
int log_name_parse(const char *s, enum log_name *name_r);

/* Opens (creating) the five logs in dir.  Returns 0, or -1 with *error_r. */
int log_open(const char *dir, const struct log_config *config, const char **error_r);
/* Applies new settings (on reload); rotation limits take effect at once. */
void log_reconfigure(const struct log_config *config);
/* Closes the logs; later calls go to stderr. */
void log_close(void);
/* Reopens files after an external rotation or a chown. */
void log_reopen(void);

void log_msg(enum log_name name, enum log_level level, const char *component,
	     const char *fmt, ...) PETREL_PRINTF(4, 5);

#define log_debug(comp, ...) log_msg(LOG_DEBUG_FILE, LOG_LEVEL_DEBUG, comp, __VA_ARGS__)
#define log_info(comp, ...) log_msg(LOG_DEBUG_FILE, LOG_LEVEL_INFO, comp, __VA_ARGS__)
#define log_warn(comp, ...) log_msg(LOG_WARNING_FILE, LOG_LEVEL_WARN, comp, __VA_ARGS__)
#define log_error(comp, ...) log_msg(LOG_ERROR_FILE, LOG_LEVEL_ERROR, comp, __VA_ARGS__)
#define log_mail(comp, ...) log_msg(LOG_MAIL_FILE, LOG_LEVEL_INFO, comp, __VA_ARGS__)
#define log_security(comp, ...) log_msg(LOG_SECURITY_FILE, LOG_LEVEL_WARN, comp, __VA_ARGS__)

#endif
