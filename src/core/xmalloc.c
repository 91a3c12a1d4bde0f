/* Allocation wrappers that abort on failure; see xmalloc.h. */
#include "core/xmalloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static panic_hook_fn *panic_hook;

void panic_set_hook(panic_hook_fn *hook)
{
	panic_hook = hook;
}

void panic(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "panic: %s\n", msg);
	if (panic_hook != NULL)
		panic_hook(msg);
	abort();
}

void *xmalloc(size_t size)
{
	void *p;

	if (size == 0)
		panic("xmalloc: zero size");
	p = malloc(size);
	if (p == NULL)
		panic("xmalloc: out of memory allocating %zu bytes", size);
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p;

	if (nmemb == 0 || size == 0)
		panic("xcalloc: zero size");
	p = calloc(nmemb, size);
	if (p == NULL)
		panic("xcalloc: out of memory allocating %zu*%zu bytes", nmemb, size);
	return p;
}

void *xmallocarray(size_t nmemb, size_t size)
{
	if (size != 0 && nmemb > SIZE_MAX / size)
		panic("xmallocarray: %zu*%zu overflows", nmemb, size);
	return xmalloc(nmemb * size);
}

void *xrealloc(void *ptr, size_t size)
{
	void *p;

	if (size == 0)
		panic("xrealloc: zero size");
	p = realloc(ptr, size);
	if (p == NULL)
		panic("xrealloc: out of memory allocating %zu bytes", size);
	return p;
}

void *xreallocarray(void *ptr, size_t nmemb, size_t size)
{
	if (size != 0 && nmemb > SIZE_MAX / size)
		panic("xreallocarray: %zu*%zu overflows", nmemb, size);
	return xrealloc(ptr, nmemb * size);
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		panic("xasprintf: out of memory");
	return s;
}
