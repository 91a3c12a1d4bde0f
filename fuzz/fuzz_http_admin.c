/*
 * libFuzzer target for the admin API's pure request handling
 * (http/http_parse.c): the request parser over libhttp-parser, the Basic
 * credentials decoder and the router.
 *
 * Properties checked on every input:
 *   - the parse of the whole input at once equals the parse of the same
 *     bytes split at a point chosen by the first byte (HOSTILE-INPUT row
 *     21: chunk boundaries must not matter);
 *   - a complete request consumed no more bytes than given, pipelined
 *     requests parse one after another after a reset, and the header and
 *     body limits hold;
 *   - credentials and routing never crash on what the parser produced.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_private.h"

#define FUZZ_MAX_BODY 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct result {
	enum http_req_result res;
	size_t consumed;
	int status;
	size_t url_len, body_len;
};

static struct result parse(struct http_req_parser *rp, const char *in, size_t len, size_t split)
{
	struct result r = { HTTP_REQ_MORE, 0, 0, 0, 0 };
	size_t used = 0;

	if (split > len)
		split = len;
	r.res = http_req_parser_feed(rp, in, split, &used);
	r.consumed = used;
	if (r.res == HTTP_REQ_MORE && split < len) {
		r.res = http_req_parser_feed(rp, in + split, len - split, &used);
		r.consumed += used;
	}
	r.status = rp->error_status;
	r.url_len = rp->req.url.len;
	r.body_len = rp->req.body.len;
	if (r.consumed > len)
		abort();
	if (rp->req.body.len > FUZZ_MAX_BODY)
		abort();
	if (!rp->headers_done && rp->header_bytes > HTTP_MAX_HEADER_BYTES)
		abort();
	return r;
}

static void use_request(const struct http_request *req)
{
	const char *allow, *error;
	char *user, *password;

	(void)http_admin_route(req, &allow);
	if (req->authorization.len > 0 &&
	    http_basic_decode(req->authorization.data, req->authorization.len, 2048, &user,
			      &password, &error) == 0) {
		if (strlen(user) == 0 || strchr(user, ':') != NULL)
			abort();
		free(user);
		free(password);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct http_req_parser a, b;
	struct result ra, rb;
	size_t split = size > 0 ? (data[0] * (size + 1)) / 256 : 0;
	size_t off = 0;

	http_req_parser_init(&a, FUZZ_MAX_BODY);
	http_req_parser_init(&b, FUZZ_MAX_BODY);
	ra = parse(&a, in, size, size);
	rb = parse(&b, in, size, split);
	/* After an error the partial fields depend on where the input was
	 * cut (callbacks flush at chunk ends); only the verdict must agree. */
	if (ra.res != rb.res || ra.status != rb.status)
		abort();
	if (ra.res != HTTP_REQ_ERROR &&
	    (ra.consumed != rb.consumed || ra.url_len != rb.url_len || ra.body_len != rb.body_len))
		abort();
	if (ra.res == HTTP_REQ_ERROR && (ra.status < 400 || ra.status > 599))
		abort();
	http_req_parser_deinit(&b);

	/* Pipelined requests: parse them one after another. */
	for (int i = 0; i < 16 && ra.res == HTTP_REQ_COMPLETE; i++) {
		use_request(&a.req);
		off += ra.consumed;
		http_req_parser_reset(&a);
		if (off >= size)
			break;
		ra = parse(&a, in + off, size - off, size - off);
	}
	http_req_parser_deinit(&a);
	return 0;
}
