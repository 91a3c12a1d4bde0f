/*
 * libFuzzer target for src/store/store_name.c: folder name escaping.
 *
 * Properties checked on every input:
 *   - any non-empty byte string escapes to one directory name that has no
 *     '/', no NUL, does not start with '.' or '#' or "index.", is valid
 *     UTF-8, and unescapes to exactly the input (round trip);
 *   - any input read as a directory name that unescapes, escapes back to
 *     itself (the mapping is a bijection: no two directories name one
 *     folder);
 *   - a relative path that names a folder maps back to the same path, and
 *     that folder name passes store_folder_name_valid (no "..", no empty
 *     level, no control characters: nothing can leave the user's
 *     directory).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct buf a, b;
	char *cstr;

	buf_init(&a, 8192);
	buf_init(&b, 8192);
	if (store_name_escape(in, size, &a) == 0) {
		if (memchr(a.data, '/', a.len) != NULL || memchr(a.data, '\0', a.len) != NULL ||
		    a.data[0] == '.' || a.data[0] == '#' || strncmp(a.data, "index.", 6) == 0 ||
		    !store_utf8_valid(a.data, a.len) || a.len > STORE_MAX_DIR_NAME)
			abort();
		if (store_name_unescape(a.data, a.len, &b) != 0 || b.len != size || memcmp(b.data, in, size) != 0)
			abort();
	} else if (size != 0 && size * 3 <= STORE_MAX_DIR_NAME) {
		abort();   /* short names always escape */
	}
	buf_reset(&a);
	buf_reset(&b);
	if (store_name_unescape(in, size, &a) == 0) {
		if (store_name_escape(a.data, a.len, &b) != 0 || b.len != size || memcmp(b.data, in, size) != 0)
			abort();
	}
	buf_reset(&a);
	buf_reset(&b);
	cstr = malloc(size + 1);
	if (cstr == NULL)
		abort();
	memcpy(cstr, data, size);
	cstr[size] = '\0';
	if (strlen(cstr) == size && store_folder_name_from_path(cstr, &a) == 0) {
		const char *reason;

		if (!store_folder_name_valid(a.data, &reason))
			abort();
		if (store_folder_path(a.data, &b, &reason) != 0 || strcmp(b.data, cstr) != 0)
			abort();
		for (const char *p = a.data; *p != '\0'; p++) {
			if ((unsigned char)*p < 0x20)
				abort();
		}
	}
	buf_reset(&a);
	if (strlen(cstr) == size && store_folder_path(cstr, &a, &(const char *){ NULL }) == 0) {
		/* a valid name gives a relative path with no ".." level */
		if (a.data[0] == '/' || strstr(a.data, "/../") != NULL || strncmp(a.data, "../", 3) == 0 ||
		    strcmp(a.data, "..") == 0 || (a.len >= 3 && strcmp(a.data + a.len - 3, "/..") == 0))
			abort();
	}
	free(cstr);
	buf_deinit(&a);
	buf_deinit(&b);
	return 0;
}
