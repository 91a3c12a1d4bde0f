/*
 * struct buf: a length-tracked, capped byte buffer.
 *
 * Binary-safe (it keeps a length) and always NUL-terminated after its data,
 * so it can be handed to string functions when the content is known to be
 * text (Redis sds).  Every buffer has a maximum size: appending past it
 * fails with -1 and leaves the buffer unchanged, which is how protocol code
 * turns "client sent too much" into a clean error instead of unbounded
 * growth (Dovecot's "buffer full").
 */
#ifndef PETREL_BUF_H
#define PETREL_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/xmalloc.h"

struct buf {
	char *data;     /* owned; NUL-terminated after len bytes */
	size_t len;
	size_t cap;     /* allocated size, > len */
	size_t max;     /* most bytes the buffer may hold (excluding the NUL) */
};

/* Initialises an empty buffer that may grow to max bytes (max > 0). */
void buf_init(struct buf *b, size_t max);
/* Frees the data; the buffer may be re-initialised afterwards. */
void buf_deinit(struct buf *b);
/* Empties the buffer, keeping its allocation. */
void buf_reset(struct buf *b);

/* Appends; returns 0, or -1 (buffer unchanged) when max would be exceeded. */
int buf_append(struct buf *b, const void *data, size_t len) PETREL_MUST_CHECK;
int buf_append_str(struct buf *b, const char *s) PETREL_MUST_CHECK;
int buf_append_char(struct buf *b, char c) PETREL_MUST_CHECK;
int buf_printf(struct buf *b, const char *fmt, ...) PETREL_PRINTF(2, 3) PETREL_MUST_CHECK;
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) PETREL_PRINTF(2, 0) PETREL_MUST_CHECK;

/* Removes the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Shortens the buffer to len bytes (len <= b->len). */
void buf_truncate(struct buf *b, size_t len);
/* Returns the data and gives up ownership; the buffer becomes empty.
 * The caller frees the result. */
char *buf_steal(struct buf *b);

#endif
