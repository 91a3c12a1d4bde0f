/* Unit tests for the <routes> section of mailserver.cfg (core/cfg.c,
 * core/cfg_write.c), which the outbound client reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/cfg.h"

static int parse(const char *body, struct cfg **cfg_r, char **error_r)
{
	char *text = xasprintf("<?xml version=\"1.0\"?>\n<petrel>\n%s\n</petrel>\n", body);
	int ret = cfg_parse("/tmp/mailserver.cfg", "/tmp", text, strlen(text), NULL, NULL, cfg_r,
			    error_r);

	free(text);
	return ret;
}

static void test_routes_parse_and_find(void **state)
{
	struct cfg *cfg = NULL;
	char *error = NULL;
	const struct route_config *r;

	assert_int_equal(parse("<routes>"
			       "<route domain=\"Example.NET\" tls=\"verify\"/>"
			       "<route domain=\"relay.test\" host=\"[127.0.0.1]\" port=\"2525\" tls=\"none\"/>"
			       "<route domain=\"*\" host=\"smart.example.com\" port=\"587\" tls=\"encrypt\" "
			       "auth-user=\"u\" auth-password=\"p &amp; q\"/>"
			       "</routes>", &cfg, &error), 0);
	assert_int_equal(cfg->route_count, 3);
	r = cfg_route_find(cfg, "example.net");
	assert_non_null(r);
	assert_string_equal(r->domain, "example.net");
	assert_null(r->host);
	assert_int_equal(r->tls, CFG_ROUTE_TLS_VERIFY);
	r = cfg_route_find(cfg, "RELAY.test");
	assert_string_equal(r->host, "[127.0.0.1]");
	assert_int_equal(r->port, 2525);
	assert_int_equal(r->tls, CFG_ROUTE_TLS_NONE);
	r = cfg_route_find(cfg, "anything.example");
	assert_string_equal(r->domain, "*");
	assert_string_equal(r->auth_password, "p & q");
	/* Written back and read again: the same snapshot. */
	{
		char *text = cfg_format(cfg);
		struct cfg *back = NULL;

		assert_int_equal(cfg_parse("/tmp/x.cfg", "/tmp", text, strlen(text), NULL, NULL, &back,
					   &error), 0);
		assert_true(cfg_equal(cfg, back));
		cfg_unref(&back);
		free(text);
	}
	cfg_unref(&cfg);
	/* Without routes: nothing found. */
	assert_int_equal(parse("", &cfg, &error), 0);
	assert_null(cfg_route_find(cfg, "example.net"));
	cfg_unref(&cfg);
}

static void test_routes_reject(void **state)
{
	static const char *const bad[] = {
		"<routes><route host=\"x.example\"/></routes>",
		"<routes><route domain=\"bad domain\"/></routes>",
		"<routes><route domain=\"a.example\" host=\"[999.1.1.1]\"/></routes>",
		"<routes><route domain=\"a.example\" port=\"0\"/></routes>",
		"<routes><route domain=\"a.example\" port=\"70000\"/></routes>",
		"<routes><route domain=\"a.example\" tls=\"maybe\"/></routes>",
		"<routes><route domain=\"a.example\" host=\"h.example\" auth-user=\"u\"/></routes>",
		"<routes><route domain=\"a.example\" auth-user=\"u\" auth-password=\"p\"/></routes>",
		"<routes><route domain=\"a.example\"/><route domain=\"A.example\"/></routes>",
		"<routes><route domain=\"a.example\"/></routes><routes/>",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cfg *cfg = NULL;
		char *error = NULL;

		assert_int_equal(parse(bad[i], &cfg, &error), -1);
		assert_non_null(error);
		assert_non_null(strstr(error, "mailserver.cfg:"));
		free(error);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes_parse_and_find),
		cmocka_unit_test(test_routes_reject),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
