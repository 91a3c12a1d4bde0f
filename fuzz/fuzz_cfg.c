/*
 * libFuzzer target for the mailserver.cfg parser (cfg_parse).
 *
 * Besides "no crash, no leak, no undefined behaviour" it checks a property:
 * whatever parses must survive cfg_format → cfg_parse unchanged, since
 * that is how the engine rewrites the file (cfg_write).
 *
 * Seeds: fuzz/corpus/cfg (from tests/fixtures/config); dictionary:
 * fuzz/cfg.dict.  Run: ./fuzz_cfg -dict=fuzz/cfg.dict fuzz/corpus/cfg
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ignore_warning(const char *warning, void *context)
{
	(void)warning;
	(void)context;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg *cfg = NULL, *again = NULL;
	char *error = NULL, *text;

	if (cfg_parse("fuzz.cfg", "/etc/petrel", (const char *)data, size, ignore_warning, NULL,
		      &cfg, &error) < 0) {
		free(error);
		return 0;
	}
	text = cfg_format(cfg);
	if (cfg_parse("fuzz.cfg", "/etc/petrel", text, strlen(text), NULL, NULL, &again,
		      &error) < 0) {
		fprintf(stderr, "formatted configuration does not load: %s\n%s", error, text);
		abort();
	}
	if (!cfg_equal(cfg, again)) {
		fprintf(stderr, "formatted configuration loads differently:\n%s", text);
		abort();
	}
	free(text);
	cfg_unref(&again);
	cfg_unref(&cfg);
	return 0;
}
