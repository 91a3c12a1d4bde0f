/*
 * libFuzzer target for DIGEST-MD5 (src/auth/sasl_digest.c), and for
 * CRAM-MD5 with the ALT flag: arbitrary digest-responses, raw or base64,
 * against a known user, realm example.com and server nonce "NONCE" (the
 * CRAM-MD5 challenge is then "<NONCE@mail.example.com>").  Layout and
 * properties: fuzz_sasl_common.h.
 *
 * Seeds: fuzz/corpus/sasl_digest (by fuzz/corpus/make_sasl_seeds.py);
 * dictionary: fuzz/sasl.dict.
 * Run: ./fuzz_sasl_digest -dict=fuzz/sasl.dict fuzz/corpus/sasl_digest
 */
#include "fuzz_sasl_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_sasl_init();
	fuzz_sasl_run(size > 0 && (data[0] & FUZZ_SASL_ALT) ? "CRAM-MD5" : "DIGEST-MD5", "NONCE",
		      data, size);
	return 0;
}
