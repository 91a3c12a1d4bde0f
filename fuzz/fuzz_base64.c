/*
 * libFuzzer target for core/base64.c.
 *
 * Properties checked on every input:
 *   - decoding never writes past the output size (ASan), whatever the
 *     bytes, with a tight and with a one-byte-short buffer;
 *   - strict decoding is canonical: when the input decodes, encoding the
 *     result gives back exactly the input;
 *   - encoding then decoding any bytes gives them back;
 *   - base64_is_valid agrees with base64_decode.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	size_t max = base64_decoded_max(size), n = 0, elen;
	/* Exactly max bytes (at least 1 for malloc), so ASan sees any overrun. */
	unsigned char *out = malloc(max > 0 ? max : 1);
	char *enc;
	int ret;

	if (out == NULL)
		abort();
	ret = base64_decode(text, size, out, max, &n);
	if ((ret == 0) != base64_is_valid(text, size))
		abort();
	if (ret == 0) {
		elen = base64_encoded_len(n);
		enc = malloc(elen + 1);
		if (enc == NULL)
			abort();
		base64_encode(out, n, enc, elen + 1);
		if (elen != size || memcmp(enc, text, size) != 0)
			abort();
		free(enc);
		/* One byte short must fail, not overflow. */
		if (n > 0) {
			size_t n2;

			if (base64_decode(text, size, out, n - 1, &n2) == 0)
				abort();
		}
	}
	free(out);

	/* Any bytes round-trip through encode and decode. */
	elen = base64_encoded_len(size);
	enc = malloc(elen + 1);
	out = malloc(size > 0 ? size : 1);
	if (enc == NULL || out == NULL)
		abort();
	base64_encode(data, size, enc, elen + 1);
	if (strlen(enc) != elen)
		abort();
	if (base64_decode(enc, elen, out, size, &n) != 0 || n != size || memcmp(out, data, size) != 0)
		abort();
	free(enc);
	free(out);
	return 0;
}
