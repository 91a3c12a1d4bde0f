/*
 * Base64 (RFC 4648 section 4, the standard alphabet with '=' padding),
 * shared by every module that meets it: HTTP Basic credentials, SASL
 * PLAIN/LOGIN, MIME Content-Transfer-Encoding glue.
 *
 * The decoder is strict, because every byte it sees comes from a client:
 *   - only the 64 alphabet characters and '=' are accepted; white space,
 *     CR/LF, NUL, '-' '_' (the URL alphabet) and 8-bit bytes are errors;
 *   - the input length is a multiple of 4 (padding is required);
 *   - '=' appears only as the last one or two characters of the input;
 *   - the unused low bits of the last symbol before padding are zero
 *     (RFC 4648 section 3.5 canonical encoding), so one byte string has
 *     exactly one accepted encoding.
 * MIME bodies, which allow line breaks and junk (RFC 2045 section 6.8),
 * need a lenient decoder; this is not it.
 *
 * Every write is checked against the output size: the decoder never
 * writes past out_size, whatever the input (Exim CVE-2018-6789 was a
 * one-byte overflow from a length computed for well-formed input only).
 */
#ifndef PETREL_BASE64_H
#define PETREL_BASE64_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/xmalloc.h"

/* Length of the encoding of len bytes (padding included, no NUL).
 * Panics when the result would overflow size_t. */
size_t base64_encoded_len(size_t len);

/* Most bytes that an encoded text of len characters can decode to
 * (len / 4 * 3).  Exact for valid input without padding; a valid input
 * with padding decodes to 1 or 2 bytes less. */
size_t base64_decoded_max(size_t len);

/* Encodes len bytes of data into out, which must hold
 * base64_encoded_len(len) + 1 bytes; the result is NUL-terminated.
 * Returns the encoded length (without the NUL). */
size_t base64_encode(const void *data, size_t len, char *out, size_t out_size);

/* Appends the encoding of data to out.  Returns 0, or -1 (out unchanged)
 * when it would exceed out's maximum. */
int base64_encode_append(struct buf *out, const void *data, size_t len) PETREL_MUST_CHECK;

/* Decodes len characters of in (not necessarily NUL-terminated; a NUL is
 * an invalid character) into out, at most out_size bytes.  Returns 0 and
 * the decoded length in *out_len_r, or -1 when the input is not strict
 * base64 (see above) or would not fit in out_size; out may then hold
 * garbage, but nothing was written past out_size.  Empty input decodes
 * to zero bytes. */
int base64_decode(const char *in, size_t len, void *out, size_t out_size,
		  size_t *out_len_r) PETREL_MUST_CHECK;

/* Appends the decoding of in to out (binary-safe; out stays
 * NUL-terminated).  Returns 0, or -1 (out unchanged) on invalid input or
 * when out's maximum would be exceeded. */
int base64_decode_append(struct buf *out, const char *in, size_t len) PETREL_MUST_CHECK;

/* True when in[0..len) is strict base64 as base64_decode accepts it. */
bool base64_is_valid(const char *in, size_t len);

#endif
