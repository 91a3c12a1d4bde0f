/*
 * Folder names on disk: pure functions, no I/O.
 *
 * A folder name is UTF-8 with '/' as the hierarchy separator; each level
 * is one directory, its name escaped so that any name round-trips and no
 * name can leave the user's directory or collide with the store's own
 * files (HOSTILE-INPUT row 29, Dovecot CVE-2021-29157):
 *
 *   - '%' starts an escape "%XX" (two upper-case hex digits);
 *   - escaped always: '%', '/', bytes below 0x20, 0x7f, and bytes that are
 *     not part of a valid UTF-8 sequence (valid UTF-8 stays readable);
 *   - escaped when first: '.' (no ".", "..", hidden entries) and '#' (the
 *     store's own names, such as #msgs, begin with '#');
 *   - the 'i' of a name beginning "index." (index.fld, index.bad ...).
 *
 * Decoding accepts exactly the encoder's output: a directory name is
 * decoded, encoded again and compared, so two directory names never map
 * to one folder, and a hand-made directory that is not canonical is not a
 * folder.  INBOX, case-insensitive at the top level (RFC 3501 5.1), is the
 * directory "Inbox".
 */
#include "store/store.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"

static const char hexdigits[] = "0123456789ABCDEF";

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool store_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(p + i, len - i);

		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

int store_name_escape(const char *name, size_t len, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t start = out->len;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		size_t n = c >= 0x80 ? utf8_seq(p + i, len - i) : 1;
		bool esc = c == '%' || c == '/' || c < 0x20 || c == 0x7f || n == 0 ||
			(i == 0 && (c == '.' || c == '#')) ||
			(i == 0 && c == 'i' && len >= 6 && memcmp(name, "index.", 6) == 0);

		if (esc) {
			char e[3] = { '%', hexdigits[c >> 4], hexdigits[c & 15] };

			if (buf_append(out, e, 3) < 0)
				goto fail;
			i++;
		} else {
			if (buf_append(out, p + i, n) < 0)
				goto fail;
			i += n;
		}
	}
	if (out->len - start > STORE_MAX_DIR_NAME)
		goto fail;
	return 0;
fail:
	buf_truncate(out, start);
	return -1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int store_name_unescape(const char *dirname, size_t len, struct buf *out)
{
	size_t start = out->len;
	struct buf check;
	int ret = -1;

	if (len == 0 || len > STORE_MAX_DIR_NAME)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = dirname[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len)
				goto fail;
			hi = hexval(dirname[i + 1]);
			lo = hexval(dirname[i + 2]);
			if (hi < 0 || lo < 0)
				goto fail;
			c = (char)(hi * 16 + lo);
			i += 2;
		} else if (c == '/' || c == '\0') {
			goto fail;
		}
		if (buf_append_char(out, c) < 0)
			goto fail;
	}
	/* Canonical form only. */
	buf_init(&check, STORE_MAX_DIR_NAME + 1);
	if (store_name_escape(out->data + start, out->len - start, &check) == 0 &&
	    check.len == len && memcmp(check.data, dirname, len) == 0)
		ret = 0;
	buf_deinit(&check);
	if (ret == 0)
		return 0;
fail:
	buf_truncate(out, start);
	return -1;
}

bool store_is_inbox(const char *name)
{
	return strcasecmp(name, "INBOX") == 0;
}

bool store_folder_name_valid(const char *name, const char **reason_r)
{
	size_t len = strlen(name), depth = 1, comp = 0;

	if (len == 0) {
		*reason_r = "empty folder name";
		return false;
	}
	if (len > STORE_MAX_FOLDER_NAME) {
		*reason_r = "folder name too long";
		return false;
	}
	if (!store_utf8_valid(name, len)) {
		*reason_r = "folder name is not valid UTF-8";
		return false;
	}
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (i == len || c == '/') {
			if (comp == 0) {
				*reason_r = "empty level in folder name";
				return false;
			}
			if ((comp == 1 && name[i - 1] == '.') ||
			    (comp == 2 && name[i - 1] == '.' && name[i - 2] == '.')) {
				*reason_r = "\".\" and \"..\" are not folder names";
				return false;
			}
			if (i < len && ++depth > STORE_MAX_FOLDER_DEPTH) {
				*reason_r = "folder hierarchy too deep";
				return false;
			}
			comp = 0;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			*reason_r = "control character in folder name";
			return false;
		}
		comp++;
	}
	return true;
}

int store_folder_path(const char *name, struct buf *out, const char **reason_r)
{
	const char *p = name;
	size_t start = out->len;

	if (!store_folder_name_valid(name, reason_r))
		return -1;
	while (*p != '\0') {
		const char *slash = strchr(p, '/');
		size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		int ret;

		if (p != name && buf_append_char(out, '/') < 0)
			goto toolong;
		if (p == name && n == 5 && strncasecmp(p, "INBOX", 5) == 0)
			ret = buf_append_str(out, STORE_INBOX_DIR);
		else
			ret = store_name_escape(p, n, out);
		if (ret < 0)
			goto toolong;
		p += n;
		if (*p == '/')
			p++;
	}
	return 0;
toolong:
	buf_truncate(out, start);
	*reason_r = "folder name too long";
	return -1;
}

int store_folder_name_from_path(const char *path, struct buf *out)
{
	const char *p = path;
	size_t start = out->len;

	while (*p != '\0') {
		const char *slash = strchr(p, '/');
		size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);

		if (p != path && buf_append_char(out, '/') < 0)
			goto fail;
		if (p == path && n == strlen(STORE_INBOX_DIR) && memcmp(p, STORE_INBOX_DIR, n) == 0) {
			if (buf_append_str(out, "INBOX") < 0)
				goto fail;
		} else {
			size_t cstart = out->len;

			if (store_name_unescape(p, n, out) < 0)
				goto fail;
			/* "%2F" is a '/' inside one level: no name has that, '/'
			 * separates levels. */
			if (memchr(out->data + cstart, '/', out->len - cstart) != NULL)
				goto fail;
			/* "inbox" at the top level would be INBOX again. */
			if (p == path && store_is_inbox(out->data + cstart))
				goto fail;
		}
		p += n;
		if (*p == '/' && *++p == '\0')
			goto fail;            /* "a/" */
	}
	if (out->len == start)
		goto fail;
	/* A directory made by hand with "%00" or "%0D" names no valid folder. */
	{
		const char *reason;

		if (memchr(out->data + start, '\0', out->len - start) != NULL ||
		    !store_folder_name_valid(out->data + start, &reason))
			goto fail;
	}
	return 0;
fail:
	buf_truncate(out, start);
	return -1;
}
