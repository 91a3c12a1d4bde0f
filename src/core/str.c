/* String helpers; see str.h. */
#include "core/str.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>
#include <time.h>

int str_copy(char *dst, const char *src, size_t dstsize)
{
	size_t len = strlen(src);

	if (dstsize == 0)
		return -1;
	if (len >= dstsize) {
		dst[0] = '\0';
		return -1;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

int str_to_i64(const char *s, int64_t min, int64_t max, int64_t *val_r)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*val_r = v;
	return 0;
}

int str_to_u64(const char *s, uint64_t *val_r)
{
	char *end;
	unsigned long long v;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*val_r = v;
	return 0;
}

int str_to_bool(const char *s, bool *val_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*val_r = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*val_r = false;
			return 0;
		}
	}
	return -1;
}

char *str_trim(char *s)
{
	size_t len;

	while (*s != '\0' && isspace((unsigned char)*s))
		s++;
	len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		s[--len] = '\0';
	return s;
}

bool str_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_has_suffix(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

bool str_iequal(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

int str_escape_append(struct buf *out, const void *data, size_t len, size_t max_in)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = data;
	size_t n = len < max_in ? len : max_in;
	int ret = 0;

	for (size_t i = 0; i < n && ret == 0; i++) {
		unsigned char c = p[i];
		char esc[4] = { '\\', 0, 0, 0 };

		switch (c) {
		case '\r': esc[1] = 'r'; ret = buf_append(out, esc, 2); break;
		case '\n': esc[1] = 'n'; ret = buf_append(out, esc, 2); break;
		case '\t': esc[1] = 't'; ret = buf_append(out, esc, 2); break;
		case '\\': esc[1] = '\\'; ret = buf_append(out, esc, 2); break;
		default:
			if (c >= 0x20 && c < 0x7f) {
				ret = buf_append_char(out, (char)c);
			} else {
				esc[1] = 'x';
				esc[2] = hex[c >> 4];
				esc[3] = hex[c & 0xf];
				ret = buf_append(out, esc, 4);
			}
		}
	}
	if (ret == 0 && len > n)
		ret = buf_append_str(out, "...");
	return ret;
}

char *str_escape(const char *s, size_t max_in)
{
	struct buf b;

	buf_init(&b, max_in * 4 + 4);
	if (str_escape_append(&b, s, strlen(s), max_in) < 0)
		panic("str_escape: size computation wrong");
	return buf_steal(&b);
}

size_t str_split(char *s, char sep, char **fields, size_t max)
{
	size_t n = 0;

	if (max == 0)
		return 0;
	fields[n++] = s;
	for (; *s != '\0'; s++) {
		if (*s == sep && n < max) {
			*s = '\0';
			fields[n++] = s + 1;
		}
	}
	return n;
}

void str_date_utc(int64_t t, const char *zone, char *out, size_t size)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL) {
		snprintf(out, size, "Thu, 01 Jan 1970 00:00:00 %s", zone);
		return;
	}
	snprintf(out, size, "%s, %02d %s %04d %02d:%02d:%02d %s", days[tm.tm_wday % 7], tm.tm_mday,
		 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, zone);
}

void str_hex(const void *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

int str_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int str_unhex(const char *hex, size_t hex_len, void *out, size_t out_len)
{
	unsigned char *p = out;

	if (hex_len != 2 * out_len)
		return -1;
	for (size_t i = 0; i < out_len; i++) {
		int hi = str_hex_digit(hex[2 * i]), lo = str_hex_digit(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		p[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}
