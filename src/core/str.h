/*
 * Small string helpers shared by every module.
 */
#ifndef PETREL_STR_H
#define PETREL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Copies src into dst (size dstsize, NUL-terminated).  Returns 0, or -1 if
 * src did not fit; truncation is an error (OpenSMTPD strlcpy pattern). */
int str_copy(char *dst, const char *src, size_t dstsize) PETREL_MUST_CHECK;

/* Parses a whole decimal string into *val_r, within [min, max].
 * Returns 0, or -1 on empty input, junk, overflow or out-of-range. */
int str_to_i64(const char *s, int64_t min, int64_t max, int64_t *val_r) PETREL_MUST_CHECK;
int str_to_u64(const char *s, uint64_t *val_r) PETREL_MUST_CHECK;

/* Parses "yes/no/true/false/on/off/1/0" (case-insensitive). */
int str_to_bool(const char *s, bool *val_r) PETREL_MUST_CHECK;

/* Removes leading and trailing ASCII white space in place; returns s
 * advanced past the leading white space. */
char *str_trim(char *s);

bool str_has_prefix(const char *s, const char *prefix);
bool str_has_suffix(const char *s, const char *suffix);
bool str_iequal(const char *a, const char *b);

/* Appends data to out with everything that is not printable ASCII escaped
 * (\r \n \t \\ and \xNN), cutting at max_in input bytes (then "...").
 * Client text goes through this before it reaches a log (Postfix
 * printable()).  Returns what buf_append returns. */
int str_escape_append(struct buf *out, const void *data, size_t len, size_t max_in) PETREL_MUST_CHECK;

/* Returns a newly allocated escaped copy of a NUL-terminated string,
 * at most max_in input bytes; caller frees. */
char *str_escape(const char *s, size_t max_in);

/* The value of hex digit c (either case), or -1. */
int str_hex_digit(char c);
/* Lower-case hex of len bytes into out (2 * len + 1 bytes). */
void str_hex(const void *data, size_t len, char *out);
/* Decodes exactly out_len bytes from 2 * out_len hex digits (either case).
 * 0, or -1 for another length or a non-hex digit. */
int str_unhex(const char *hex, size_t hex_len, void *out, size_t out_len) PETREL_MUST_CHECK;

/* t (seconds since the epoch) as "Sun, 29 Nov 2026 08:00:00 <zone>" in
 * UTC: "+0000" for a mail Date (RFC 5322 3.3), "GMT" for HTTP's
 * IMF-fixdate (RFC 9110 5.6.7).  Built by hand, since strftime's day and
 * month names follow the locale. */
void str_date_utc(int64_t t, const char *zone, char *out, size_t size);

/* Splits s at sep into at most max fields, in place; returns the count.
 * Empty fields are kept. */
size_t str_split(char *s, char sep, char **fields, size_t max);

#endif
