/*
 * Pure HTTP request parsing for the admin API: the request parser over
 * libhttp-parser, the Basic credentials decoder and the router.  See
 * http_private.h.  Nothing here does I/O or logs; every limit is checked
 * before a byte is buffered.
 */
#include "http/http_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/str.h"

/* ---- request parser ---- */

static struct http_req_parser *parser_of(http_parser *p)
{
	return p->data;
}

/* Records the first refusal; later ones do not overwrite it. */
static int refuse(struct http_req_parser *rp, int status, const char *error)
{
	if (rp->error_status == 0) {
		rp->error_status = status;
		rp->error = error;
	}
	return -1;
}

static int on_message_begin(http_parser *p)
{
	parser_of(p)->started = true;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_req_parser *rp = parser_of(p);

	/* Cannot fail while the header byte cap holds; checked anyway. */
	if (buf_append(&rp->req.url, at, len) < 0)
		return refuse(rp, 414, "request target too long");
	return 0;
}

static enum http_header_id classify_field(const struct http_req_parser *rp)
{
	if (rp->field_too_long || rp->field.len == 0)
		return HTTP_H_OTHER;
	if (strcasecmp(rp->field.data, "authorization") == 0)
		return HTTP_H_AUTHORIZATION;
	if (strcasecmp(rp->field.data, "content-type") == 0)
		return HTTP_H_CONTENT_TYPE;
	if (strcasecmp(rp->field.data, "expect") == 0)
		return HTTP_H_EXPECT;
	return HTTP_H_OTHER;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_req_parser *rp = parser_of(p);

	if (rp->in_value || rp->header == HTTP_H_NONE) {
		/* A new field begins (the previous value, if any, is done). */
		rp->in_value = false;
		rp->header = HTTP_H_OTHER;
		rp->field_too_long = false;
		buf_reset(&rp->field);
	}
	/* RFC 9112 5.1: whitespace between a field name and the colon must be
	 * refused (libhttp-parser lets it through): "Content-Length : 5" is
	 * a request smuggling classic. */
	if (memchr(at, ' ', len) != NULL || memchr(at, '\t', len) != NULL)
		return refuse(rp, 400, "whitespace in a header field name");
	if (!rp->field_too_long && buf_append(&rp->field, at, len) < 0)
		rp->field_too_long = true;
	return 0;
}

static struct buf *value_buf(struct http_req_parser *rp)
{
	switch (rp->header) {
	case HTTP_H_AUTHORIZATION: return &rp->req.authorization;
	case HTTP_H_CONTENT_TYPE: return &rp->req.content_type;
	case HTTP_H_EXPECT: return &rp->expect;
	default: return NULL;
	}
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_req_parser *rp = parser_of(p);
	struct buf *b;

	if (!rp->in_value) {
		rp->in_value = true;
		rp->header = classify_field(rp);
		/* A second Authorization or Content-Type makes the request
		 * ambiguous: which one would a proxy in front have checked? */
		switch (rp->header) {
		case HTTP_H_AUTHORIZATION:
			if (rp->req.has_authorization)
				return refuse(rp, 400, "more than one Authorization header");
			rp->req.has_authorization = true;
			break;
		case HTTP_H_CONTENT_TYPE:
			if (rp->req.has_content_type)
				return refuse(rp, 400, "more than one Content-Type header");
			rp->req.has_content_type = true;
			break;
		case HTTP_H_EXPECT:
			if (rp->expect.len > 0 && buf_append_char(&rp->expect, ',') < 0)
				return refuse(rp, 431, "request header fields too large");
			break;
		default:
			break;
		}
	}
	b = value_buf(rp);
	if (b != NULL && buf_append(b, at, len) < 0)
		return refuse(rp, 431, "request header fields too large");
	return 0;
}

/* Removes leading and trailing spaces and tabs (RFC 9110 OWS). */
static void trim_ows(struct buf *b)
{
	size_t start = 0, end = b->len;

	/* An empty buf may have no storage yet. */
	if (b->len == 0)
		return;
	while (start < end && (b->data[start] == ' ' || b->data[start] == '\t'))
		start++;
	while (end > start && (b->data[end - 1] == ' ' || b->data[end - 1] == '\t'))
		end--;
	buf_truncate(b, end);
	buf_consume(b, start);
}

static int on_headers_complete(http_parser *p)
{
	struct http_req_parser *rp = parser_of(p);
	struct http_request *req = &rp->req;

	rp->headers_done = true;
	req->method = p->method;
	req->http_major = p->http_major;
	req->http_minor = p->http_minor;
	req->keep_alive = http_should_keep_alive(p) != 0;
	trim_ows(&req->authorization);
	trim_ows(&req->content_type);
	trim_ows(&rp->expect);
	/* libhttp-parser takes a request line without a version as HTTP/0.9
	 * ("GET /"): that is a malformed HTTP/1 request line here. */
	if (p->http_major == 0)
		return refuse(rp, 400, "malformed request line: no HTTP version");
	if (p->http_major != 1)
		return refuse(rp, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
	if (p->method == HTTP_CONNECT || (p->flags & F_UPGRADE) != 0)
		return refuse(rp, 400, "protocol upgrades and CONNECT are not supported");
	/* RFC 9112 6.1: no chunked request bodies here; the length must be
	 * known before the body is read so that the limit applies first. */
	if ((p->flags & F_CHUNKED) != 0 || p->uses_transfer_encoding)
		return refuse(rp, 411, "Transfer-Encoding is not supported: send Content-Length");
	if ((p->flags & F_CONTENTLENGTH) != 0) {
		req->has_content_length = true;
		req->content_length = p->content_length;
		if (p->content_length > rp->max_body)
			return refuse(rp, 413, "request body too large");
	}
	if (rp->expect.len > 0) {
		if (strcasecmp(rp->expect.data, "100-continue") != 0)
			return refuse(rp, 417, "only \"Expect: 100-continue\" is supported");
		req->expect_continue = true;
	}
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_req_parser *rp = parser_of(p);

	/* Content-Length was checked against max_body already. */
	if (buf_append(&rp->req.body, at, len) < 0)
		return refuse(rp, 413, "request body too large");
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_req_parser *rp = parser_of(p);

	rp->complete = true;
	/* Stop right after this request: what follows is the next one's,
	 * parsed only once this one has been answered. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings req_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

static void request_init(struct http_request *req, size_t max_body)
{
	memset(req, 0, sizeof(*req));
	buf_init(&req->url, HTTP_MAX_HEADER_BYTES);
	buf_init(&req->authorization, HTTP_MAX_HEADER_BYTES);
	buf_init(&req->content_type, HTTP_MAX_HEADER_BYTES);
	/* buf needs max > 0; a zero limit still refuses any body by length. */
	buf_init(&req->body, max_body > 0 ? max_body : 1);
}

static void request_deinit(struct http_request *req)
{
	buf_deinit(&req->url);
	buf_deinit(&req->authorization);
	buf_deinit(&req->content_type);
	buf_deinit(&req->body);
}

void http_req_parser_init(struct http_req_parser *rp, size_t max_body)
{
	memset(rp, 0, sizeof(*rp));
	rp->max_body = max_body;
	request_init(&rp->req, max_body);
	buf_init(&rp->field, HTTP_MAX_FIELD_NAME);
	buf_init(&rp->expect, HTTP_MAX_HEADER_BYTES);
	http_parser_init(&rp->p, HTTP_REQUEST);
	rp->p.data = rp;
}

void http_req_parser_deinit(struct http_req_parser *rp)
{
	request_deinit(&rp->req);
	buf_deinit(&rp->field);
	buf_deinit(&rp->expect);
}

void http_req_parser_reset(struct http_req_parser *rp)
{
	size_t max_body = rp->max_body;

	http_req_parser_deinit(rp);
	http_req_parser_init(rp, max_body);
}

bool http_req_parser_idle(const struct http_req_parser *rp)
{
	return !rp->started && rp->header_bytes == 0 && rp->error_status == 0;
}

/* Status for an error of libhttp-parser itself. */
static void refuse_parser_error(struct http_req_parser *rp, enum http_errno err)
{
	switch (err) {
	case HPE_HEADER_OVERFLOW:
		refuse(rp, 431, "request header fields too large");
		break;
	case HPE_INVALID_METHOD:
		refuse(rp, 400, "malformed request line: invalid method");
		break;
	case HPE_INVALID_URL:
	case HPE_INVALID_HOST:
	case HPE_INVALID_PORT:
	case HPE_INVALID_PATH:
	case HPE_INVALID_QUERY_STRING:
	case HPE_INVALID_FRAGMENT:
		refuse(rp, 400, "malformed request line: invalid request target");
		break;
	case HPE_INVALID_VERSION:
		refuse(rp, 400, "malformed request line: invalid HTTP version");
		break;
	case HPE_INVALID_CONTENT_LENGTH:
	case HPE_UNEXPECTED_CONTENT_LENGTH:
		refuse(rp, 400, "invalid or repeated Content-Length");
		break;
	case HPE_INVALID_TRANSFER_ENCODING:
		refuse(rp, 400, "invalid Transfer-Encoding");
		break;
	default:
		refuse(rp, 400, "malformed request");
		break;
	}
}

enum http_req_result http_req_parser_feed(struct http_req_parser *rp, const char *data,
					  size_t len, size_t *consumed_r)
{
	size_t off = 0;

	*consumed_r = 0;
	if (rp->complete)
		return HTTP_REQ_COMPLETE;
	if (rp->error_status != 0)
		return HTTP_REQ_ERROR;
	/* Zero bytes would mean end of stream to http_parser_execute. */
	while (off < len) {
		size_t n = len - off, used;
		bool headers_were_done = rp->headers_done;
		enum http_errno err;

		if (!rp->headers_done) {
			/* Never hand the parser more header bytes than the cap
			 * allows: the limit holds however the input is split. */
			if (rp->header_bytes >= HTTP_MAX_HEADER_BYTES) {
				refuse(rp, 431, "request header fields too large");
				break;
			}
			if (n > HTTP_MAX_HEADER_BYTES - rp->header_bytes)
				n = HTTP_MAX_HEADER_BYTES - rp->header_bytes;
		}
		used = http_parser_execute(&rp->p, &req_settings, data + off, n);
		if (!headers_were_done && !rp->headers_done)
			rp->header_bytes += used;
		off += used;
		if (rp->error_status != 0)
			break;
		if (rp->complete) {
			*consumed_r = off;
			return HTTP_REQ_COMPLETE;
		}
		err = HTTP_PARSER_ERRNO(&rp->p);
		if (err != HPE_OK) {
			refuse_parser_error(rp, err);
			break;
		}
		if (used != n) {
			refuse(rp, 400, "malformed request");
			break;
		}
	}
	*consumed_r = off;
	return rp->error_status != 0 ? HTTP_REQ_ERROR : HTTP_REQ_MORE;
}

/* ---- Basic credentials ---- */

int http_basic_decode(const char *value, size_t len, size_t max, char **user_r,
		      char **password_r, const char **error_r)
{
	size_t i = 0, tok_len, n;
	const char *tok, *colon;
	char *plain;

	*user_r = *password_r = NULL;
	/* auth-scheme is case-insensitive (RFC 9110 11.1). */
	if (len < 6 || strncasecmp(value, "Basic", 5) != 0 || value[5] != ' ') {
		*error_r = "not Basic credentials";
		return -1;
	}
	for (i = 5; i < len && value[i] == ' '; i++)
		;
	tok = value + i;
	tok_len = len - i;
	while (tok_len > 0 && (tok[tok_len - 1] == ' ' || tok[tok_len - 1] == '\t'))
		tok_len--;
	if (tok_len == 0) {
		*error_r = "empty Basic credentials";
		return -1;
	}
	if (base64_decoded_max(tok_len) > max) {
		*error_r = "Basic credentials too long";
		return -1;
	}
	plain = xmalloc(base64_decoded_max(tok_len) + 1);
	if (base64_decode(tok, tok_len, plain, base64_decoded_max(tok_len), &n) < 0) {
		free(plain);
		*error_r = "Basic credentials are not valid base64";
		return -1;
	}
	plain[n] = '\0';
	/* A NUL would cut the name or password short in C strings: the
	 * checked and the logged value would differ (Dovecot CVE-2019-11500
	 * class).  CR and LF have no business in either. */
	if (memchr(plain, '\0', n) != NULL || memchr(plain, '\r', n) != NULL ||
	    memchr(plain, '\n', n) != NULL) {
		*error_r = "Basic credentials contain NUL, CR or LF";
		goto fail;
	}
	colon = memchr(plain, ':', n);
	if (colon == NULL) {
		*error_r = "Basic credentials without ':'";
		goto fail;
	}
	if (colon == plain) {
		*error_r = "Basic credentials with an empty user name";
		goto fail;
	}
	*user_r = xstrndup(plain, (size_t)(colon - plain));
	*password_r = xstrdup(colon + 1);
	explicit_bzero(plain, n);
	free(plain);
	return 0;
fail:
	explicit_bzero(plain, n);
	free(plain);
	return -1;
}

/* ---- routing ---- */

/* The path of a request target: origin-form "/p?q" or absolute-form
 * "https://host/p?q" (RFC 9112 3.2).  Returns false when it cannot be
 * parsed. */
static bool target_path(const struct buf *url, const char **path_r, size_t *len_r)
{
	struct http_parser_url u;

	if (url->len == 0 || url->len > UINT16_MAX)
		return false;
	http_parser_url_init(&u);
	if (http_parser_parse_url(url->data, url->len, 0, &u) != 0)
		return false;
	if ((u.field_set & (1 << UF_PATH)) == 0) {
		*path_r = "/";
		*len_r = 1;
		return true;
	}
	*path_r = url->data + u.field_data[UF_PATH].off;
	*len_r = u.field_data[UF_PATH].len;
	return true;
}

static bool path_is(const char *path, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(path, want, len) == 0;
}

/* "application/json", any case, with optional parameters. */
static bool is_json_type(const struct buf *ct)
{
	static const char want[] = "application/json";
	size_t n = sizeof(want) - 1, i;

	if (ct->len < n || strncasecmp(ct->data, want, n) != 0)
		return false;
	for (i = n; i < ct->len && (ct->data[i] == ' ' || ct->data[i] == '\t'); i++)
		;
	return i == ct->len || ct->data[i] == ';';
}

enum http_admin_route http_admin_route(const struct http_request *req, const char **allow_r)
{
	const char *path;
	size_t len;

	*allow_r = NULL;
	if (!target_path(&req->url, &path, &len))
		return HTTP_ADMIN_NOT_FOUND;
	if (path_is(path, len, "/")) {
		if (req->method == HTTP_GET || req->method == HTTP_HEAD)
			return HTTP_ADMIN_BANNER;
		*allow_r = "GET, HEAD";
		return HTTP_ADMIN_METHOD_NOT_ALLOWED;
	}
	if (path_is(path, len, HTTP_ADMIN_API_PATH)) {
		if (req->method != HTTP_POST) {
			*allow_r = "POST";
			return HTTP_ADMIN_METHOD_NOT_ALLOWED;
		}
		if (!req->has_content_length)
			return HTTP_ADMIN_LENGTH_REQUIRED;
		if (!req->has_content_type || !is_json_type(&req->content_type))
			return HTTP_ADMIN_UNSUPPORTED_TYPE;
		return HTTP_ADMIN_API;
	}
	return HTTP_ADMIN_NOT_FOUND;
}

const char *http_status_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}
