/*
 * Allocation that never returns NULL, and panic().
 *
 * Allocation failure in a mail server that must not lose mail is not a state
 * to limp along in: we abort with a core (Postfix mymalloc, OpenSMTPD
 * xmalloc).  Sizes that are products go through xmallocarray(), which
 * panics on overflow instead of allocating a short buffer.
 */
#ifndef PETREL_XMALLOC_H
#define PETREL_XMALLOC_H

#include <stddef.h>

#define PETREL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define PETREL_NORETURN __attribute__((noreturn))
#define PETREL_MUST_CHECK __attribute__((warn_unused_result))

/* Logs "panic: ..." to stderr (and error.log when logging is up), then
 * aborts.  For our own bugs only, never for bad input. */
PETREL_NORETURN void panic(const char *fmt, ...) PETREL_PRINTF(1, 2);

/* Hook called by panic() before abort, so the log module can record it. */
typedef void panic_hook_fn(const char *message);
void panic_set_hook(panic_hook_fn *hook);

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xmallocarray(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string; caller frees. */
char *xasprintf(const char *fmt, ...) PETREL_PRINTF(1, 2);

#endif
