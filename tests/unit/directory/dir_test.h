/*
 * Helpers shared by the directory's unit tests (included after cmocka.h).
 */
#ifndef PETREL_DIR_TEST_H
#define PETREL_DIR_TEST_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/str.h"
#include "directory/directory.h"

#define DT_MAX_WARNINGS 64

struct dt_warnings {
	char *list[DT_MAX_WARNINGS];
	size_t count;
};

static inline void dt_collect(const char *warning, void *context)
{
	struct dt_warnings *w = context;

	if (w->count < DT_MAX_WARNINGS)
		w->list[w->count++] = xstrdup(warning);
}

static inline void dt_warnings_free(struct dt_warnings *w)
{
	for (size_t i = 0; i < w->count; i++)
		free(w->list[i]);
	w->count = 0;
}

/* Parses text (file name "u.cfg"); fails the test on error.  Warnings go
 * to w when given, else they fail the test. */
static inline struct directory *dt_parse(const char *text, struct dt_warnings *w)
{
	struct dt_warnings local = { .count = 0 };
	struct directory *dir = NULL;
	char *error = NULL;

	if (directory_parse("u.cfg", text, strlen(text), dt_collect, w != NULL ? w : &local, &dir,
			    &error) < 0)
		fail_msg("error: %s\nin:\n%s", error, text);
	if (w == NULL && local.count > 0)
		fail_msg("unexpected warning: %s", local.list[0]);
	dt_warnings_free(&local);
	return dir;
}

/* Parses text that must fail; returns the error (caller frees). */
static inline char *dt_parse_error(const char *text)
{
	struct directory *dir = NULL;
	char *error = NULL;

	if (directory_parse("u.cfg", text, strlen(text), NULL, NULL, &dir, &error) == 0)
		fail_msg("parsed, expected an error:\n%s", text);
	assert_null(dir);
	assert_non_null(error);
	return error;
}

/* format → parse → format gives the same text. */
static inline void dt_assert_round_trip(const struct directory *dir)
{
	char *t1 = directory_format(dir), *t2, *error = NULL;
	struct directory *back = NULL;

	if (directory_parse("x", t1, strlen(t1), NULL, NULL, &back, &error) < 0)
		fail_msg("formatted directory does not load: %s\n%s", error, t1);
	t2 = directory_format(back);
	if (strcmp(t1, t2) != 0)
		fail_msg("formatted directory loads differently:\n%s\n---\n%s", t1, t2);
	free(t1);
	free(t2);
	directory_unref(&back);
}

static inline char *dt_tmpdir(void)
{
	char tmpl[] = "/tmp/petrel-test-dir-XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	return xstrdup(tmpl);
}

static inline void dt_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			char *p = xasprintf("%s/%s", dir, e->d_name);

			unlink(p);
			free(p);
		}
	}
	closedir(d);
	rmdir(dir);
}

#define DT_HASH "$y$j9T$ckHhsDBZkAEX9G1lm9GDU0$68tl1YTEixHTCZFsFyLh8MNJMcIXBSaZPMB8B9Btos0"

#endif
