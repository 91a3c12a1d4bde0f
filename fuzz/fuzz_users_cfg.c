/*
 * libFuzzer target for the users.cfg parser (directory_parse).
 *
 * Properties checked beyond memory safety: every user parsed is found by
 * its full address (and, in the primary domain, by its bare name), and
 * what parses survives directory_format → directory_parse → format
 * byte for byte, since that is how the engine rewrites the file.
 * Password checks are left out: yescrypt is deliberately slow.
 *
 * Seeds: fuzz/corpus/users_cfg (from tests/fixtures/config); dictionary:
 * fuzz/cfg.dict.  Run: ./fuzz_users_cfg -dict=fuzz/cfg.dict fuzz/corpus/users_cfg
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory/directory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ignore_warning(const char *warning, void *context)
{
	(void)warning;
	(void)context;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct directory *dir = NULL, *again = NULL;
	char *error = NULL, *text, *text2;

	if (directory_parse("fuzz.cfg", (const char *)data, size, ignore_warning, NULL, &dir,
			    &error) < 0) {
		free(error);
		return 0;
	}
	for (size_t i = 0; i < dir->domain_count; i++) {
		const struct dir_domain *d = dir->domains[i];

		if (directory_find_domain(dir, d->name) != d)
			abort();
		for (size_t j = 0; j < d->user_count; j++) {
			const struct dir_user *u = d->users[j];

			if (directory_find_user(dir, u->address) != u)
				abort();
			if (d->primary && directory_find_user(dir, u->name) != u)
				abort();
		}
	}
	text = directory_format(dir);
	if (directory_parse("fuzz.cfg", text, strlen(text), NULL, NULL, &again, &error) < 0) {
		fprintf(stderr, "formatted directory does not load: %s\n%s", error, text);
		abort();
	}
	text2 = directory_format(again);
	if (strcmp(text, text2) != 0) {
		fprintf(stderr, "formatted directory loads differently:\n%s\n---\n%s", text, text2);
		abort();
	}
	free(text);
	free(text2);
	directory_unref(&again);
	directory_unref(&dir);
	return 0;
}
