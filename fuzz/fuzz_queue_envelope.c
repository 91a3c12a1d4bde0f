/*
 * libFuzzer target for the envelope file parser (queue/queue_env.c):
 * what a damaged or hand-edited spool file holds (HOSTILE-INPUT row 27).
 *
 * Properties checked on every input:
 *   - parsing never crashes or reads out of bounds (ASan);
 *   - a parsed envelope formats back to text that parses again to the
 *     same text (format ∘ parse is a fixed point): every value survives
 *     the escaping byte-exact, and no value can add a line or a field.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "queue/queue_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size > 0 ? size : 1);
	struct queue_env env, back;
	const char *err;
	struct buf a, b;

	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	if (queue_env_parse(in, size, &env, &err) == 0) {
		buf_init(&a, QUEUE_MAX_ENV_FILE);
		buf_init(&b, QUEUE_MAX_ENV_FILE);
		if (queue_env_format(&env, &a) < 0)
			abort();
		if (queue_env_parse(a.data, a.len, &back, &err) < 0)
			abort();
		if (queue_env_format(&back, &b) < 0 || a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
			abort();
		if (back.rcpt_count != env.rcpt_count)
			abort();
		queue_env_free(&back);
		queue_env_free(&env);
		buf_deinit(&a);
		buf_deinit(&b);
	}
	free(in);
	return 0;
}
