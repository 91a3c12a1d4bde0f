/*
 * libFuzzer target for the queue's header scans (queue/queue_env.c): the
 * Message-ID kept for `queue list` and the Received: count of the hop
 * limit, both run on message headers as any client sent them.
 *
 * Properties checked on every input:
 *   - neither scan crashes or reads out of bounds (ASan);
 *   - the hop count of a prefix is never larger than that of the whole
 *     header (a cut header, as the scheduler reads it, never counts more),
 *     and never more than the number of lines;
 *   - a Message-ID found has no CR, LF or NUL.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	size_t whole = queue_count_received(in, size), lines = 1;
	char *id;

	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	if (whole > lines)
		abort();
	if (size > 0 && queue_count_received(in, size / 2) > whole)
		abort();
	id = queue_find_message_id(in, size);
	if (id != NULL && strpbrk(id, "\r\n") != NULL)
		abort();
	free(id);
	return 0;
}
