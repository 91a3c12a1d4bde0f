/*
 * libFuzzer target for the header helpers of list distribution and
 * auto-replies (queue/queue_msg.c): what any sender puts in a message
 * that reaches a list or a user with an auto-reply, and what a damaged
 * pending-request file holds.
 *
 * Properties checked on every input:
 *   - nothing crashes or reads out of bounds (ASan);
 *   - the list rewrite keeps the body byte-exact and leaves no List-Id
 *     field but the one it adds;
 *   - an address taken from a header never holds white space or a line
 *     break (it goes into Reply-To);
 *   - a parsed pending record formats back to a record that parses to
 *     the same text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue_list.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rewrite(const char *in, size_t size)
{
	struct queue_list_headers h = {
		.list_address = "news@example.com", .list_id = "<news.example.com>",
		.list_unsubscribe = "<mailto:news-unsubscribe@example.com>",
		.list_subscribe = "<mailto:news-subscribe@example.com>",
		.list_post = "<mailto:news@example.com>", .reply_to = "<news@example.com>",
	};
	size_t hlen = queue_msg_header_len(in, size), len;
	char *out = queue_list_message(in, size, &h, &len);
	size_t ohlen = queue_msg_header_len(out, len);
	char *v;

	if (len - ohlen != size - hlen || memcmp(out + ohlen, in + hlen, size - hlen) != 0)
		abort();
	v = queue_msg_header(out, len, "List-Id");
	if (v == NULL || strcmp(v, "<news.example.com>") != 0)
		abort();
	free(v);
	free(out);
}

static void check_address(const char *in, size_t size)
{
	char *v = queue_msg_header(in, size, "From");
	char *a = queue_msg_first_address(v);

	if (a != NULL && strpbrk(a, " \t\r\n<>") != NULL)
		abort();
	free(a);
	free(v);
}

static void check_pending(const char *in, size_t size)
{
	struct queue_pending p, back;
	char *a, *b;

	if (queue_pending_parse(in, size, &p) < 0)
		return;
	a = queue_pending_format(&p);
	if (queue_pending_parse(a, strlen(a), &back) < 0)
		abort();
	b = queue_pending_format(&back);
	if (strcmp(a, b) != 0)
		abort();
	free(a);
	free(b);
	queue_pending_free(&p);
	queue_pending_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1);

	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	check_rewrite(in, size);
	check_address(in, size);
	check_pending(in, size);
	{
		char *e = queue_msg_encode_words(in);

		free(e);
	}
	free(in);
	return 0;
}
