/*
 * Unit tests for the pure parts of the admin API (http/http_parse.c): the
 * request parser (table-driven, each row also fed one byte at a time and
 * at every split point, which must give the same result), its limits,
 * pipelining, the Basic credentials decoder and the router.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/http_private.h"

#define MAX_BODY 1024

struct req_case {
	const char *name;
	const char *input;
	size_t len;                /* 0: strlen(input) */
	enum http_req_result result;
	int status;                /* for HTTP_REQ_ERROR */
	unsigned method;
	const char *url;
	const char *authorization; /* NULL: no header */
	const char *content_type;  /* NULL: no header */
	const char *body;
	bool keep_alive;
	bool expect_continue;
};

#define OK_REQ(n, in, m, u, a, ct, b, ka) \
	{ n, in, 0, HTTP_REQ_COMPLETE, 0, m, u, a, ct, b, ka, false }
#define BAD_REQ(n, in, st) { n, in, 0, HTTP_REQ_ERROR, st, 0, NULL, NULL, NULL, NULL, false, false }
#define MORE_REQ(n, in) { n, in, 0, HTTP_REQ_MORE, 0, 0, NULL, NULL, NULL, NULL, false, false }

static const struct req_case req_cases[] = {
	OK_REQ("get root", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", HTTP_GET, "/", NULL, NULL, "", true),
	OK_REQ("http/1.0 closes", "GET / HTTP/1.0\r\n\r\n", HTTP_GET, "/", NULL, NULL, "", false),
	OK_REQ("http/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", HTTP_GET,
	       "/", NULL, NULL, "", true),
	OK_REQ("connection close", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", HTTP_GET, "/",
	       NULL, NULL, "", false),
	OK_REQ("post json",
	       "POST /api/v1 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46cHc=\r\n"
	       "Content-Type: application/json\r\nContent-Length: 20\r\n\r\n{\"command\":\"status\"}",
	       HTTP_POST, "/api/v1", "Basic YWRtaW46cHc=", "application/json",
	       "{\"command\":\"status\"}", true),
	OK_REQ("header case and OWS",
	       "POST /api/v1 HTTP/1.1\r\nauthorization:   Basic abcd  \r\nCONTENT-TYPE:application/json"
	       "\r\ncontent-length: 2\r\n\r\n{}",
	       HTTP_POST, "/api/v1", "Basic abcd", "application/json", "{}", true),
	OK_REQ("leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\n\r\n", HTTP_GET, "/", NULL, NULL,
	       "", true),
	OK_REQ("query string", "GET /?a=b HTTP/1.1\r\n\r\n", HTTP_GET, "/?a=b", NULL, NULL, "", true),
	OK_REQ("post without length", "POST /api/v1 HTTP/1.1\r\n\r\n", HTTP_POST, "/api/v1", NULL,
	       NULL, "", true),
	OK_REQ("other headers ignored", "GET / HTTP/1.1\r\nX-Authorization: a\r\nAccept: */*\r\n\r\n",
	       HTTP_GET, "/", NULL, NULL, "", true),
	{ "expect continue",
	  "POST /api/v1 HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}", 0,
	  HTTP_REQ_COMPLETE, 0, HTTP_POST, "/api/v1", NULL, NULL, "{}", true, true },
	MORE_REQ("headers unfinished", "GET / HTTP/1.1\r\nHost: x\r\n"),
	MORE_REQ("body unfinished", "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345"),
	MORE_REQ("empty", ""),
	BAD_REQ("garbage request line", "HELLO THERE\r\n\r\n", 400),
	BAD_REQ("binary garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
	BAD_REQ("missing version", "GET /\r\n\r\n", 400),
	BAD_REQ("bad version", "GET / HTTP/1.x\r\n\r\n", 400),
	BAD_REQ("http/2.0", "GET / HTTP/2.0\r\n\r\n", 505),
	BAD_REQ("http/0.9 style", "GET / HTTP/0.9\r\n\r\n", 400),
	BAD_REQ("http/3.0", "GET / HTTP/3.0\r\n\r\n", 505),
	BAD_REQ("space in target", "GET /a b HTTP/1.1\r\n\r\n", 400),
	BAD_REQ("body too large", "POST /api/v1 HTTP/1.1\r\nContent-Length: 1025\r\n\r\n", 413),
	BAD_REQ("huge length", "POST /api/v1 HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413),
	BAD_REQ("overflowing length",
		"POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n", 400),
	BAD_REQ("negative length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
	BAD_REQ("two lengths", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		400),
	BAD_REQ("chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		411),
	BAD_REQ("chunked and length",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}", 400),
	BAD_REQ("two authorizations",
		"GET / HTTP/1.1\r\nAuthorization: Basic a\r\nAuthorization: Basic b\r\n\r\n", 400),
	BAD_REQ("two content types",
		"POST / HTTP/1.1\r\nContent-Type: a/b\r\nContent-Type: c/d\r\nContent-Length: 0\r\n\r\n",
		400),
	BAD_REQ("expect other", "POST / HTTP/1.1\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n", 417),
	BAD_REQ("connect", "CONNECT example.com:443 HTTP/1.1\r\n\r\n", 400),
	BAD_REQ("upgrade",
		"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 400),
	BAD_REQ("bare LF in header", "GET / HTTP/1.1\r\nA: b\nc\r\n\r\n", 400),
	BAD_REQ("space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
	BAD_REQ("space before colon in length",
		"POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\nabcde", 400),
	BAD_REQ("unknown method", "FROB / HTTP/1.1\r\n\r\n", 400),
	BAD_REQ("lower-case method", "get / HTTP/1.1\r\n\r\n", 400),
};

/* NUL bytes cannot be written in the table's C strings; built here. */
static const char nul_in_value[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
static const char nul_in_name[] = "GET / HTTP/1.1\r\nA\0: b\r\n\r\n";

struct outcome {
	enum http_req_result result;
	size_t consumed;
	int status;
};

/* Feeds input split at the given points (sorted, < len); returns the
 * outcome of the last feed, with consumed counted over all feeds. */
static struct outcome feed_split(struct http_req_parser *rp, const char *input, size_t len,
				 size_t step)
{
	struct outcome o = { HTTP_REQ_MORE, 0, 0 };
	size_t off = 0;

	if (len == 0) {
		o.result = http_req_parser_feed(rp, input, 0, &o.consumed);
		return o;
	}
	while (off < len) {
		size_t n = step == 0 || step > len - off ? len - off : step, used;

		o.result = http_req_parser_feed(rp, input + off, n, &used);
		o.consumed += used;
		off += n;
		if (o.result != HTTP_REQ_MORE)
			break;
		assert_int_equal(used, n);
	}
	o.status = rp->error_status;
	return o;
}

static void check_case(const struct req_case *c, size_t step)
{
	struct http_req_parser rp;
	size_t len = c->len != 0 ? c->len : strlen(c->input);
	struct outcome o;

	http_req_parser_init(&rp, MAX_BODY);
	o = feed_split(&rp, c->input, len, step);
	if (o.result != c->result)
		fail_msg("%s (step %zu): result %d, expected %d (status %d, %s)", c->name, step,
			 o.result, c->result, rp.error_status, rp.error != NULL ? rp.error : "-");
	if (c->result == HTTP_REQ_ERROR) {
		if (o.status != c->status)
			fail_msg("%s (step %zu): status %d, expected %d (%s)", c->name, step,
				 o.status, c->status, rp.error);
		assert_non_null(rp.error);
	} else if (c->result == HTTP_REQ_COMPLETE) {
		const struct http_request *r = &rp.req;

		assert_int_equal(o.consumed, len);
		assert_int_equal(r->method, c->method);
		assert_int_equal(r->url.len, strlen(c->url));
		assert_memory_equal(r->url.data, c->url, r->url.len);
		assert_int_equal(r->has_authorization, c->authorization != NULL);
		if (c->authorization != NULL) {
			assert_int_equal(r->authorization.len, strlen(c->authorization));
			assert_memory_equal(r->authorization.data, c->authorization,
					    r->authorization.len);
		}
		assert_int_equal(r->has_content_type, c->content_type != NULL);
		if (c->content_type != NULL)
			assert_string_equal(r->content_type.data, c->content_type);
		assert_int_equal(r->body.len, strlen(c->body));
		if (r->body.len > 0)
			assert_memory_equal(r->body.data, c->body, r->body.len);
		if (r->keep_alive != c->keep_alive)
			fail_msg("%s: keep_alive %d", c->name, r->keep_alive);
		assert_int_equal(r->expect_continue, c->expect_continue);
		/* Sticky until reset. */
		assert_int_equal(http_req_parser_feed(&rp, "GET", 3, &o.consumed), HTTP_REQ_COMPLETE);
		assert_int_equal(o.consumed, 0);
	} else {
		assert_int_equal(o.consumed, len);
	}
	http_req_parser_deinit(&rp);
}

static void test_request_table(void **state)
{
	for (size_t i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
		const struct req_case *c = &req_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->input);

		/* One shot, one byte at a time, and every chunk size. */
		check_case(c, 0);
		for (size_t step = 1; step <= len; step++)
			check_case(c, step);
	}
}

static void test_request_nul_bytes(void **state)
{
	const struct req_case cases[] = {
		{ "NUL in value", nul_in_value, sizeof(nul_in_value) - 1, HTTP_REQ_ERROR, 400, 0,
		  NULL, NULL, NULL, NULL, false, false },
		{ "NUL in name", nul_in_name, sizeof(nul_in_name) - 1, HTTP_REQ_ERROR, 400, 0,
		  NULL, NULL, NULL, NULL, false, false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		check_case(&cases[i], 0);
		check_case(&cases[i], 1);
	}
}

/* Two requests in one buffer: the first ends exactly where the second
 * begins, and the second parses after a reset. */
static void test_request_pipelined(void **state)
{
	const char first[] = "POST /api/v1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
	const char second[] = "GET / HTTP/1.1\r\n\r\n";
	const char third[] = "GET /x HTTP/1.1\r\n\r\n";
	char all[256];
	size_t n1 = strlen(first), n2 = strlen(second), n3 = strlen(third), used;
	struct http_req_parser rp;

	snprintf(all, sizeof(all), "%s%s%s", first, second, third);
	http_req_parser_init(&rp, MAX_BODY);
	assert_true(http_req_parser_idle(&rp));
	assert_int_equal(http_req_parser_feed(&rp, all, n1 + n2 + n3, &used), HTTP_REQ_COMPLETE);
	assert_int_equal(used, n1);
	assert_string_equal(rp.req.body.data, "abc");
	http_req_parser_reset(&rp);
	assert_true(http_req_parser_idle(&rp));
	assert_int_equal(http_req_parser_feed(&rp, all + n1, n2 + n3, &used), HTTP_REQ_COMPLETE);
	assert_int_equal(used, n2);
	assert_int_equal(rp.req.method, HTTP_GET);
	http_req_parser_reset(&rp);
	assert_int_equal(http_req_parser_feed(&rp, all + n1 + n2, n3, &used), HTTP_REQ_COMPLETE);
	assert_int_equal(used, n3);
	assert_string_equal(rp.req.url.data, "/x");
	http_req_parser_reset(&rp);
	/* A partial next request makes the parser non-idle. */
	assert_int_equal(http_req_parser_feed(&rp, "GE", 2, &used), HTTP_REQ_MORE);
	assert_false(http_req_parser_idle(&rp));
	http_req_parser_deinit(&rp);
}

/* A request whose line and headers take exactly total bytes. */
static char *request_of_size(size_t total)
{
	const char *head = "GET / HTTP/1.1\r\nX: ";
	const char *tail = "\r\n\r\n";
	size_t fill = total - strlen(head) - strlen(tail);
	char *r = malloc(total + 1);

	assert_non_null(r);
	memcpy(r, head, strlen(head));
	memset(r + strlen(head), 'a', fill);
	memcpy(r + strlen(head) + fill, tail, strlen(tail) + 1);
	return r;
}

static void test_request_header_limit(void **state)
{
	struct http_req_parser rp;
	size_t used;
	char *r;

	/* Exactly at the limit: accepted, whatever the split. */
	r = request_of_size(HTTP_MAX_HEADER_BYTES);
	for (size_t step = 0; step <= 4096; step += step < 16 ? 1 : 1021) {
		struct outcome o;

		http_req_parser_init(&rp, MAX_BODY);
		o = feed_split(&rp, r, strlen(r), step);
		assert_int_equal(o.result, HTTP_REQ_COMPLETE);
		http_req_parser_deinit(&rp);
	}
	free(r);
	/* One byte more: 431, whatever the split. */
	r = request_of_size(HTTP_MAX_HEADER_BYTES + 1);
	for (size_t step = 0; step <= 4096; step += step < 16 ? 1 : 1021) {
		struct outcome o;

		http_req_parser_init(&rp, MAX_BODY);
		o = feed_split(&rp, r, strlen(r), step);
		assert_int_equal(o.result, HTTP_REQ_ERROR);
		assert_int_equal(o.status, 431);
		http_req_parser_deinit(&rp);
	}
	free(r);
	/* An endless header line is refused at the limit, not buffered. */
	http_req_parser_init(&rp, MAX_BODY);
	assert_int_equal(http_req_parser_feed(&rp, "GET / HTTP/1.1\r\nX: ", 19, &used), HTTP_REQ_MORE);
	for (int i = 0; i < 100; i++) {
		char chunk[1024];
		enum http_req_result res;

		memset(chunk, 'b', sizeof(chunk));
		res = http_req_parser_feed(&rp, chunk, sizeof(chunk), &used);
		if (res == HTTP_REQ_ERROR)
			break;
		assert_int_equal(res, HTTP_REQ_MORE);
	}
	assert_int_equal(rp.error_status, 431);
	assert_true(rp.header_bytes <= HTTP_MAX_HEADER_BYTES);
	http_req_parser_deinit(&rp);
}

/* The 413 comes as soon as the headers end, before any body byte. */
static void test_request_body_limit(void **state)
{
	const char head[] = "POST /api/v1 HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n";
	const char ok[] = "POST /api/v1 HTTP/1.1\r\nContent-Length: 1024\r\n\r\n";
	struct http_req_parser rp;
	size_t used;
	char body[1024];

	http_req_parser_init(&rp, MAX_BODY);
	assert_int_equal(http_req_parser_feed(&rp, head, strlen(head), &used), HTTP_REQ_ERROR);
	assert_int_equal(rp.error_status, 413);
	assert_int_equal(rp.req.body.len, 0);
	http_req_parser_deinit(&rp);

	/* Exactly the limit is fine. */
	memset(body, 'x', sizeof(body));
	http_req_parser_init(&rp, MAX_BODY);
	assert_int_equal(http_req_parser_feed(&rp, ok, strlen(ok), &used), HTTP_REQ_MORE);
	assert_true(rp.headers_done);
	assert_int_equal(http_req_parser_feed(&rp, body, sizeof(body), &used), HTTP_REQ_COMPLETE);
	assert_int_equal(rp.req.body.len, sizeof(body));
	http_req_parser_deinit(&rp);

	/* A zero limit refuses any body. */
	http_req_parser_init(&rp, 0);
	assert_int_equal(http_req_parser_feed(&rp, ok, strlen(ok), &used), HTTP_REQ_ERROR);
	assert_int_equal(rp.error_status, 413);
	http_req_parser_deinit(&rp);
}

struct basic_case {
	const char *value;
	int ret;
	const char *user, *password;
};

static const struct basic_case basic_cases[] = {
	{ "Basic YWRtaW46cHc=", 0, "admin", "pw" },
	{ "basic YWRtaW46cHc=", 0, "admin", "pw" },
	{ "BASIC   YWRtaW46cHc=  ", 0, "admin", "pw" },
	{ "Basic YTpiOmM=", 0, "a", "b:c" },
	{ "Basic YTo=", 0, "a", "" },
	{ "Basic YWRtaW5AZXhhbXBsZS50ZXN0OkFkbTFuLXNlY3JldC1wdw==", 0, "admin@example.test",
	  "Adm1n-secret-pw" },
	{ "Basic", -1, NULL, NULL },
	{ "Basic ", -1, NULL, NULL },
	{ "Basic=YWRtaW46cHc=", -1, NULL, NULL },
	{ "Bearer YWRtaW46cHc=", -1, NULL, NULL },
	{ "Digest username=x", -1, NULL, NULL },
	{ "Basic =", -1, NULL, NULL },
	{ "Basic ====", -1, NULL, NULL },
	{ "Basic YWRtaW46cHc", -1, NULL, NULL },     /* padding missing */
	{ "Basic YWRtaW46cHc==", -1, NULL, NULL },   /* extra padding */
	{ "Basic YWRt aW46cHc=", -1, NULL, NULL },   /* space inside */
	{ "Basic YWRtaW46*Hc=", -1, NULL, NULL },    /* non-alphabet */
	{ "Basic YWRtaW46cHc=\t", 0, "admin", "pw" },
	{ "Basic YWRtaW4=", -1, NULL, NULL },        /* no ':' */
	{ "Basic OnB3", -1, NULL, NULL },            /* empty user */
	{ "Basic YQBiOnB3", -1, NULL, NULL },        /* NUL in user */
	{ "Basic YTpwAHc=", -1, NULL, NULL },        /* NUL in password */
	{ "Basic YQpiOnB3", -1, NULL, NULL },        /* LF in user */
};

static void test_basic_decode(void **state)
{
	for (size_t i = 0; i < sizeof(basic_cases) / sizeof(basic_cases[0]); i++) {
		const struct basic_case *c = &basic_cases[i];
		char *user = (char *)1, *password = (char *)1;
		const char *error = NULL;
		int ret = http_basic_decode(c->value, strlen(c->value), 2048, &user, &password, &error);

		if (ret != c->ret)
			fail_msg("\"%s\": %d, expected %d (%s)", c->value, ret, c->ret,
				 error != NULL ? error : "-");
		if (ret == 0) {
			assert_string_equal(user, c->user);
			assert_string_equal(password, c->password);
		} else {
			assert_null(user);
			assert_null(password);
			assert_non_null(error);
		}
		free(user);
		free(password);
	}
}

/* Credentials longer than the maximum are refused before decoding. */
static void test_basic_decode_long(void **state)
{
	size_t n = 64 * 1024;
	char *v = malloc(n + 7);
	char *user, *password;
	const char *error;

	assert_non_null(v);
	memcpy(v, "Basic ", 6);
	memset(v + 6, 'Q', n);
	v[n + 6] = '\0';
	assert_int_equal(http_basic_decode(v, n + 6, 2048, &user, &password, &error), -1);
	assert_int_equal(http_basic_decode(v, n + 6, 1024 * 1024, &user, &password, &error), -1);
	free(v);
}

struct route_case {
	const char *request;
	enum http_admin_route route;
};

static const struct route_case route_cases[] = {
	{ "GET / HTTP/1.1\r\n\r\n", HTTP_ADMIN_BANNER },
	{ "HEAD / HTTP/1.1\r\n\r\n", HTTP_ADMIN_BANNER },
	{ "GET /?x=1 HTTP/1.1\r\n\r\n", HTTP_ADMIN_BANNER },
	{ "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", HTTP_ADMIN_METHOD_NOT_ALLOWED },
	{ "POST /api/v1 HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
	  HTTP_ADMIN_API },
	{ "POST /api/v1 HTTP/1.1\r\nContent-Type: Application/JSON; charset=utf-8\r\n"
	  "Content-Length: 2\r\n\r\n{}", HTTP_ADMIN_API },
	{ "POST https://mail.example.test:44337/api/v1 HTTP/1.1\r\nContent-Type: application/json\r\n"
	  "Content-Length: 2\r\n\r\n{}", HTTP_ADMIN_API },
	{ "POST /api/v1 HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
	  HTTP_ADMIN_UNSUPPORTED_TYPE },
	{ "POST /api/v1 HTTP/1.1\r\nContent-Type: application/jsonx\r\nContent-Length: 2\r\n\r\n{}",
	  HTTP_ADMIN_UNSUPPORTED_TYPE },
	{ "POST /api/v1 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", HTTP_ADMIN_UNSUPPORTED_TYPE },
	{ "POST /api/v1 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n", HTTP_ADMIN_LENGTH_REQUIRED },
	{ "GET /api/v1 HTTP/1.1\r\n\r\n", HTTP_ADMIN_METHOD_NOT_ALLOWED },
	{ "DELETE /api/v1 HTTP/1.1\r\n\r\n", HTTP_ADMIN_METHOD_NOT_ALLOWED },
	{ "POST /api/v1/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n", HTTP_ADMIN_NOT_FOUND },
	{ "POST /api/v2 HTTP/1.1\r\nContent-Length: 0\r\n\r\n", HTTP_ADMIN_NOT_FOUND },
	{ "GET /index.html HTTP/1.1\r\n\r\n", HTTP_ADMIN_NOT_FOUND },
	{ "GET * HTTP/1.1\r\n\r\n", HTTP_ADMIN_NOT_FOUND },
	{ "GET /api/v1/../v1 HTTP/1.1\r\n\r\n", HTTP_ADMIN_NOT_FOUND },
};

static void test_route(void **state)
{
	for (size_t i = 0; i < sizeof(route_cases) / sizeof(route_cases[0]); i++) {
		const struct route_case *c = &route_cases[i];
		struct http_req_parser rp;
		const char *allow;
		size_t used;
		enum http_admin_route r;

		http_req_parser_init(&rp, MAX_BODY);
		assert_int_equal(http_req_parser_feed(&rp, c->request, strlen(c->request), &used),
				 HTTP_REQ_COMPLETE);
		r = http_admin_route(&rp.req, &allow);
		if (r != c->route)
			fail_msg("\"%s\": route %d, expected %d", c->request, r, c->route);
		if (r == HTTP_ADMIN_METHOD_NOT_ALLOWED)
			assert_non_null(allow);
		http_req_parser_deinit(&rp);
	}
}

static void test_status_reason(void **state)
{
	assert_string_equal(http_status_reason(401), "Unauthorized");
	assert_string_equal(http_status_reason(413), "Content Too Large");
	assert_string_equal(http_status_reason(999), "Unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_table),
		cmocka_unit_test(test_request_nul_bytes),
		cmocka_unit_test(test_request_pipelined),
		cmocka_unit_test(test_request_header_limit),
		cmocka_unit_test(test_request_body_limit),
		cmocka_unit_test(test_basic_decode),
		cmocka_unit_test(test_basic_decode_long),
		cmocka_unit_test(test_route),
		cmocka_unit_test(test_status_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
