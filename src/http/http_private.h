/*
 * Inside the http module: the pure HTTP/1.1 request parser, the Basic
 * credentials decoder and the admin API router (http_parse.c).  No I/O,
 * no libevent, no logging, no globals: the session code (http_admin.c),
 * the unit tests and the fuzzer all call these directly (STYLE.md §8).
 *
 * The parser wraps libhttp-parser 2.9 (its tokenizer is well fuzzed) and
 * adds what a server needs on top: byte limits checked before anything is
 * buffered, one request at a time (bytes after a complete request are
 * left to the caller, so pipelined requests wait their turn), and the
 * refusals that map to status codes (400, 411, 413, 417, 431, 505).
 */
#ifndef PETREL_HTTP_PRIVATE_H
#define PETREL_HTTP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "core/buf.h"
#include "core/xmalloc.h"

/* Request line plus header fields, CRLFs included: 16 KiB.  Far above what
 * any admin client sends (curl sends ~200 bytes), and small enough that a
 * pre-auth client cannot make us hold much (Apache's default is 8 KiB per
 * line, nginx 8 KiB per buffer).  Past it: 431. */
#define HTTP_MAX_HEADER_BYTES (16 * 1024)
/* Longest header field name we compare; longer names are "other". */
#define HTTP_MAX_FIELD_NAME 64

enum http_req_result {
	HTTP_REQ_MORE,       /* all bytes consumed; the request is not complete yet */
	HTTP_REQ_COMPLETE,   /* a whole request is in parser->req */
	HTTP_REQ_ERROR,      /* refused: parser->error_status and parser->error say why */
};

/* One parsed request.  Every buf is NUL-terminated after its data. */
struct http_request {
	unsigned method;             /* enum http_method of http_parser.h */
	unsigned short http_major, http_minor;
	bool keep_alive;             /* the client allows another request after this one */
	bool expect_continue;        /* "Expect: 100-continue" */
	bool has_content_length;
	bool has_authorization;
	bool has_content_type;
	uint64_t content_length;     /* 0 without Content-Length */
	struct buf url;              /* the request target as sent */
	struct buf authorization;    /* value of Authorization (trimmed of OWS) */
	struct buf content_type;     /* value of Content-Type */
	struct buf body;             /* at most max_body bytes */
};

enum http_header_id { HTTP_H_NONE, HTTP_H_OTHER, HTTP_H_AUTHORIZATION, HTTP_H_CONTENT_TYPE,
		      HTTP_H_EXPECT };

struct http_req_parser {
	http_parser p;
	struct http_request req;
	size_t max_body;
	size_t header_bytes;         /* bytes of request line and headers seen so far */
	bool started;                /* the first byte of a request was seen */
	bool headers_done;
	bool complete;
	int error_status;            /* HTTP status of the refusal, 0 while none */
	const char *error;           /* static text of the refusal, NULL while none */
	/* the header being read */
	enum http_header_id header;
	bool in_value;
	struct buf field;            /* its name, at most HTTP_MAX_FIELD_NAME bytes */
	bool field_too_long;
	struct buf expect;           /* value of Expect */
};

/* Initialises a parser for one request at a time, with bodies of at most
 * max_body bytes (a Content-Length above it is refused with 413 as soon as
 * the headers end, before any of the body is read). */
void http_req_parser_init(struct http_req_parser *parser, size_t max_body);
void http_req_parser_deinit(struct http_req_parser *parser);
/* Forgets the request (after its response) and gets ready for the next
 * one on the same connection. */
void http_req_parser_reset(struct http_req_parser *parser);

/*
 * Feeds len bytes.  Returns:
 *   HTTP_REQ_MORE      all of them were consumed (*consumed_r = len);
 *   HTTP_REQ_COMPLETE  a request ended after *consumed_r bytes; the bytes
 *                      after it were not looked at (the next request's);
 *   HTTP_REQ_ERROR     the request is refused; the connection must answer
 *                      error_status and close (its framing can no longer
 *                      be trusted).
 * After COMPLETE or ERROR the parser returns the same until reset.
 * Feeding zero bytes returns the current state.  The result is the same
 * whatever the split of the input into calls.
 */
enum http_req_result http_req_parser_feed(struct http_req_parser *parser, const char *data,
					  size_t len, size_t *consumed_r);

/* True when the parser is between requests (nothing of the next one seen). */
bool http_req_parser_idle(const struct http_req_parser *parser);

/*
 * HTTP Basic credentials (RFC 7617): value is the Authorization header
 * value ("Basic dXNlcjpwYXNz", scheme case-insensitive, one or more spaces
 * before the token).  The token must be strict base64 (core/base64.h); the
 * decoded text must hold a ':' (the first one ends the user-id), a
 * non-empty user-id, no NUL, CR or LF, and fit in max bytes.  Returns 0
 * with *user_r and *password_r (newly allocated; the caller frees, and
 * should clear the password first), or -1 and *error_r (static text that
 * never contains the credentials).
 */
int http_basic_decode(const char *value, size_t len, size_t max, char **user_r,
		      char **password_r, const char **error_r) PETREL_MUST_CHECK;

/* What the admin API does with a request (before authentication). */
enum http_admin_route {
	HTTP_ADMIN_BANNER,              /* GET or HEAD / */
	HTTP_ADMIN_API,                 /* POST /api/v1 with a JSON content type */
	HTTP_ADMIN_NOT_FOUND,           /* 404 */
	HTTP_ADMIN_METHOD_NOT_ALLOWED,  /* 405: the path exists, the method does not */
	HTTP_ADMIN_UNSUPPORTED_TYPE,    /* 415: POST /api/v1 that is not application/json */
	HTTP_ADMIN_LENGTH_REQUIRED,     /* 411: POST /api/v1 without Content-Length */
};

/* The API path. */
#define HTTP_ADMIN_API_PATH "/api/v1"

/* Routes a complete request.  *allow_r is set to the Allow header value
 * for HTTP_ADMIN_METHOD_NOT_ALLOWED. */
enum http_admin_route http_admin_route(const struct http_request *req, const char **allow_r);

/* Reason phrase of a status code we send ("Not Found"); "Unknown" else. */
const char *http_status_reason(int status);

#endif
