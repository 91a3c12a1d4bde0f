/*
 * libFuzzer target for SCRAM-SHA-256 and SCRAM-SHA-1 (src/auth/sasl_scram.c):
 * arbitrary client-first and client-final messages, raw or base64, against
 * a known user with a fixed salt and server nonce "SNONCE", so that seeds
 * with valid proofs reach the signature code.  Layout and properties:
 * fuzz_sasl_common.h.
 *
 * Seeds: fuzz/corpus/sasl_scram (valid exchanges, by
 * fuzz/corpus/make_sasl_seeds.py); dictionary: fuzz/sasl.dict.
 * Run: ./fuzz_sasl_scram -dict=fuzz/sasl.dict fuzz/corpus/sasl_scram
 */
#include "fuzz_sasl_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_sasl_init();
	fuzz_sasl_run(size > 0 && (data[0] & FUZZ_SASL_ALT) ? "SCRAM-SHA-1" : "SCRAM-SHA-256",
		      "SNONCE", data, size);
	return 0;
}
