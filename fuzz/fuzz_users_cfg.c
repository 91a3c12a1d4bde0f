/*
 * libFuzzer target for the users.cfg parser (directory_parse) and what
 * hangs off a parsed directory: lookups, resolution and list headers.
 *
 * Properties checked beyond memory safety:
 *  - every user is found by its full address (and, in the primary domain,
 *    by its bare name), every alias, group and list by its address;
 *  - resolving every address of the file (and a subaddressed and an
 *    unknown variant) terminates with a consistent result: recipients
 *    only for RECIPIENTS, an error for LOOP and INVALID, never a crash or
 *    a hang (DIRECTORY_MAX_DEPTH / DIRECTORY_MAX_EXPANSION);
 *  - what parses survives directory_format → directory_parse → format byte
 *    for byte, since that is how the engine rewrites the file.
 * Password checks are left out: yescrypt is deliberately slow.
 *
 * Seeds: fuzz/corpus/users_cfg (from tests/fixtures/config and the
 * examples of docs/configuration.md); dictionary: fuzz/users_cfg.dict.
 * Run: ./fuzz_users_cfg -dict=fuzz/users_cfg.dict fuzz/corpus/users_cfg
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

static void check_resolution(const struct directory *dir, const char *address)
{
	struct dir_resolution res;
	char *variant;
	const char *at;

	for (int round = 0; round < 3; round++) {
		if (round == 0) {
			variant = strdup(address);
		} else {
			at = strrchr(address, '@');
			if (at == NULL)
				return;
			size_t len = strlen(address) + 16;

			variant = malloc(len);
			if (variant == NULL)
				abort();
			snprintf(variant, len, "%.*s%s%s", (int)(at - address), address,
				 round == 1 ? "+tag" : "-unknown-x", at);
		}
		directory_resolve(dir, variant, DIRECTORY_DEFAULT_SEPARATOR, &res);
		if (res.kind != DIR_RESOLVE_RECIPIENTS && res.rcpt_count != 0)
			abort();
		if (res.kind == DIR_RESOLVE_RECIPIENTS && res.rcpt_count == 0)
			abort();
		if ((res.kind == DIR_RESOLVE_LOOP || res.kind == DIR_RESOLVE_INVALID) &&
		    res.error == NULL)
			abort();
		if ((res.kind == DIR_RESOLVE_LIST || res.kind == DIR_RESOLVE_LIST_COMMAND) &&
		    res.list == NULL)
			abort();
		for (size_t i = 0; i < res.rcpt_count; i++) {
			if (res.rcpts[i].kind == DIR_RCPT_LOCAL && res.rcpts[i].user == NULL)
				abort();
			if (res.rcpts[i].address == NULL)
				abort();
		}
		directory_resolution_free(&res);
		free(variant);
	}
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

		if (directory_find_domain(dir, d->name) != d ||
		    directory_find_local_domain(dir, d->name) != d)
			abort();
		for (size_t j = 0; j < d->alias_domains.count; j++) {
			if (directory_find_local_domain(dir, d->alias_domains.items[j]) != d)
				abort();
		}
		for (size_t j = 0; j < d->user_count; j++) {
			const struct dir_user *u = d->users[j];

			if (directory_find_user(dir, u->address) != u)
				abort();
			if (d->primary && directory_find_user(dir, u->name) != u)
				abort();
			check_resolution(dir, u->address);
			for (size_t k = 0; k < u->aliases.count; k++)
				check_resolution(dir, u->aliases.items[k]);
		}
		for (size_t j = 0; j < d->alias_count; j++) {
			if (directory_find_alias(dir, d->aliases[j]->address) != d->aliases[j])
				abort();
			check_resolution(dir, d->aliases[j]->address);
		}
		for (size_t j = 0; j < d->group_count; j++) {
			if (directory_find_group(dir, d->groups[j]->address) != d->groups[j])
				abort();
			check_resolution(dir, d->groups[j]->address);
		}
		for (size_t j = 0; j < d->list_count; j++) {
			char *id = directory_list_id(d->lists[j]);

			if (directory_find_list(dir, d->lists[j]->address) != d->lists[j])
				abort();
			check_resolution(dir, d->lists[j]->address);
			free(id);
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
