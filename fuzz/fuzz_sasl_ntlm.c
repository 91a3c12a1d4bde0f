/*
 * libFuzzer target for NTLM (src/auth/sasl_ntlm.c): arbitrary NEGOTIATE
 * and AUTHENTICATE messages (binary security buffers, UTF-16 names,
 * NTLMv1/LMv2/NTLMv2 responses), raw or base64, with the server challenge
 * 0123456789abcdef and, with the NTLM_V1 flag, NTLMv1 allowed.  With the
 * ALT flag, PLAIN and LOGIN get the same messages (the other binary
 * splitter).  Layout and properties: fuzz_sasl_common.h.
 *
 * Seeds: fuzz/corpus/sasl_ntlm (valid NTLMv2, LMv2 and NTLMv1 exchanges, by
 * fuzz/corpus/make_sasl_seeds.py); dictionary: fuzz/sasl.dict.
 * Run: ./fuzz_sasl_ntlm -dict=fuzz/sasl.dict fuzz/corpus/sasl_ntlm
 */
#include "fuzz_sasl_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_sasl_init();
	if (size > 0 && (data[0] & FUZZ_SASL_ALT)) {
		fuzz_sasl_run((data[0] & FUZZ_SASL_NTLM_V1) ? "LOGIN" : "PLAIN", NULL, data, size);
		return 0;
	}
	fuzz_sasl_run("NTLM", "0123456789abcdef", data, size);
	return 0;
}
