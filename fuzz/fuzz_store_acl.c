/*
 * libFuzzer target for the pure part of src/store/store_acl.c: RFC 4314
 * rights strings and the #acl file format.
 *
 * Properties checked on every input:
 *   - a rights string parses or is refused, never both ways; what parses
 *     formats to letters that parse back to a superset (c and d bring all
 *     their members) with the same single rights;
 *   - an #acl file either parses completely or is refused with nothing
 *     kept; what parses formats to a file that parses to the same entries
 *     (identifiers lower-cased, rights without c and d), and evaluating it
 *     for any identity yields only known rights.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct store_acl acl, again;
	uint32_t r, r2;
	char out[STORE_ACL_RIGHTS_MAX];

	if (store_acl_rights_parse(in, size, &r) == 0) {
		if ((r & ~(uint32_t)STORE_ACL_ALL) != 0)
			abort();
		if (store_acl_rights_parse(store_acl_rights_format(r, out), strlen(out), &r2) != 0 ||
		    (r2 & r) != r)
			abort();
	}
	if (store_acl_parse(in, size, &acl) == 0) {
		char *text = store_acl_format(&acl);

		if (store_acl_parse(text, strlen(text), &again) != 0 || again.count != acl.count)
			abort();
		for (size_t i = 0; i < acl.count; i++) {
			if (strcmp(acl.entries[i].identifier, again.entries[i].identifier) != 0 ||
			    acl.entries[i].negative != again.entries[i].negative ||
			    acl.entries[i].rights != again.entries[i].rights)
				abort();
		}
		if ((store_acl_eval(&acl, "anyone", NULL, 0) & ~(uint32_t)STORE_ACL_ALL) != 0)
			abort();
		store_acl_free(&again);
		store_acl_free(&acl);
		free(text);
	}
	return 0;
}
