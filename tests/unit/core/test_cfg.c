/*
 * Unit tests for mailserver.cfg (src/core/cfg.c, cfg_write.c): value
 * grammar and bounds, error lines, warnings, hostile XML, services and
 * listeners, logs, writing and round trips, reference counting, the
 * fixture files under tests/fixtures/config, and that docs/configuration.md
 * still matches the settings table.
 *
 * Set PETREL_UPDATE_DOCS=1 to rewrite the generated part of
 * docs/configuration.md instead of comparing it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cfg.h"
#include "core/fileio.h"
#include "core/str.h"

/* ---- helpers ------------------------------------------------------------ */

struct warnings {
	char *list[32];
	size_t count;
};

static void collect_warning(const char *warning, void *context)
{
	struct warnings *w = context;

	if (w->count < 32)
		w->list[w->count++] = xstrdup(warning);
}

static void warnings_free(struct warnings *w)
{
	for (size_t i = 0; i < w->count; i++)
		free(w->list[i]);
	w->count = 0;
}

static int parse_str(const char *text, struct cfg **cfg_r, char **error_r, struct warnings *w)
{
	return cfg_parse("t.cfg", "/etc/petrel", text, strlen(text), collect_warning, w, cfg_r,
			 error_r);
}

/* Parses text that must fail; returns the error (caller frees). */
static char *must_fail(const char *text)
{
	struct warnings w = { .count = 0 };
	struct cfg *cfg = NULL;
	char *error = NULL;

	if (parse_str(text, &cfg, &error, &w) == 0)
		fail_msg("parsed, expected an error:\n%s", text);
	assert_null(cfg);
	assert_non_null(error);
	warnings_free(&w);
	return error;
}

static struct cfg *must_parse(const char *text, struct warnings *w)
{
	struct warnings local = { .count = 0 };
	struct cfg *cfg = NULL;
	char *error = NULL;

	if (parse_str(text, &cfg, &error, w != NULL ? w : &local) < 0)
		fail_msg("error: %s\nin:\n%s", error, text);
	assert_non_null(cfg);
	warnings_free(&local);
	return cfg;
}

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/petrel-test-cfg-XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	return xstrdup(tmpl);
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char *p;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		p = xasprintf("%s/%s", dir, e->d_name);
		unlink(p);
		free(p);
	}
	closedir(d);
	rmdir(dir);
}

static char *fixture_path(const char *rel)
{
	const char *data = getenv("PETREL_TEST_DATA");

	if (data == NULL)
		data = "tests/fixtures";
	return xasprintf("%s/%s", data, rel);
}

/* The ```xml block after "<!-- EXAMPLE: NAME -->" in docs/configuration.md;
 * newly allocated. */
static char *docs_example(const char *name)
{
	char *path = fixture_path("../../docs/configuration.md");
	char *doc, *marker = xasprintf("<!-- EXAMPLE: %s -->\n```xml\n", name);
	char *start, *end, *block;
	size_t len;

	if (fileio_read_all(path, 1 << 22, &doc, &len) < 0)
		fail_msg("%s: cannot read", path);
	start = strstr(doc, marker);
	if (start == NULL)
		fail_msg("%s: no example marked %s", path, name);
	start += strlen(marker);
	end = strstr(start, "```");
	assert_non_null(end);
	block = xstrndup(start, (size_t)(end - start));
	free(marker);
	free(doc);
	free(path);
	return block;
}

/* ---- scalar values ------------------------------------------------------ */

struct scalar_case {
	enum setting_type type;
	const char *text;
	int64_t min, max;
	bool ok;
	int64_t value;          /* when ok */
	const char *reason;     /* when not ok: exact reason */
};

static const struct scalar_case scalar_cases[] = {
	/* INT */
	{ SETTING_INT, "0", 0, 60000, true, 0, NULL },
	{ SETTING_INT, "60000", 0, 60000, true, 60000, NULL },
	{ SETTING_INT, "007", 0, 60000, true, 7, NULL },
	{ SETTING_INT, "-5", -10, 10, true, -5, NULL },
	{ SETTING_INT, "60001", 0, 60000, false, 0, "value 60001 out of range 0..60000" },
	{ SETTING_INT, "-1", 0, 60000, false, 0, "value -1 out of range 0..60000" },
	{ SETTING_INT, "99999999999999999999", 0, 60000, false, 0,
	  "value 99999999999999999999 out of range 0..60000" },
	{ SETTING_INT, "abc", 0, 10, false, 0, "'abc' is not an integer" },
	{ SETTING_INT, "", 0, 10, false, 0, "'' is not an integer" },
	{ SETTING_INT, "5x", 0, 10, false, 0, "'5x' is not an integer" },
	{ SETTING_INT, "+5", 0, 10, false, 0, "'+5' is not an integer" },
	{ SETTING_INT, " 5", 0, 10, false, 0, "' 5' is not an integer" },
	{ SETTING_INT, "5K", 0, 10000, false, 0, "'5K' is not an integer" },
	{ SETTING_INT, "1.5", 0, 10, false, 0, "'1.5' is not an integer" },
	{ SETTING_INT, "0x10", 0, 100, false, 0, "'0x10' is not an integer" },
	/* BOOL */
	{ SETTING_BOOL, "yes", 0, 1, true, 1, NULL },
	{ SETTING_BOOL, "no", 0, 1, true, 0, NULL },
	{ SETTING_BOOL, "true", 0, 1, true, 1, NULL },
	{ SETTING_BOOL, "false", 0, 1, true, 0, NULL },
	{ SETTING_BOOL, "on", 0, 1, true, 1, NULL },
	{ SETTING_BOOL, "off", 0, 1, true, 0, NULL },
	{ SETTING_BOOL, "1", 0, 1, true, 1, NULL },
	{ SETTING_BOOL, "0", 0, 1, true, 0, NULL },
	{ SETTING_BOOL, "YES", 0, 1, true, 1, NULL },
	{ SETTING_BOOL, "maybe", 0, 1, false, 0, "'maybe' is not yes or no" },
	{ SETTING_BOOL, "2", 0, 1, false, 0, "'2' is not yes or no" },
	{ SETTING_BOOL, "", 0, 1, false, 0, "'' is not yes or no" },
	/* SIZE */
	{ SETTING_SIZE, "0", 0, INT64_MAX, true, 0, NULL },
	{ SETTING_SIZE, "512", 0, INT64_MAX, true, 512, NULL },
	{ SETTING_SIZE, "10K", 0, INT64_MAX, true, 10240, NULL },
	{ SETTING_SIZE, "10k", 0, INT64_MAX, true, 10240, NULL },
	{ SETTING_SIZE, "25M", 0, INT64_MAX, true, 25 * 1048576LL, NULL },
	{ SETTING_SIZE, "2G", 0, INT64_MAX, true, 2 * 1073741824LL, NULL },
	{ SETTING_SIZE, "1T", 0, INT64_MAX, true, 1099511627776LL, NULL },
	{ SETTING_SIZE, "8388607T", 0, INT64_MAX, true, 8388607LL << 40, NULL },
	{ SETTING_SIZE, "9223372036854775807", 0, INT64_MAX, true, INT64_MAX, NULL },
	{ SETTING_SIZE, "8388608T", 0, INT64_MAX, false, 0, "value 8388608T out of range 0..9223372036854775807" },
	{ SETTING_SIZE, "9223372036854775808", 0, INT64_MAX, false, 0,
	  "value 9223372036854775808 out of range 0..9223372036854775807" },
	{ SETTING_SIZE, "99999999999T", 0, 1099511627776LL, false, 0,
	  "value 99999999999T out of range 0..1T" },
	{ SETTING_SIZE, "99999999999999999999999K", 0, 1099511627776LL, false, 0,
	  "value 99999999999999999999999K out of range 0..1T" },
	{ SETTING_SIZE, "2M", 512, 1048576, false, 0, "value 2M out of range 512..1M" },
	{ SETTING_SIZE, "511", 512, 1048576, false, 0, "value 511 out of range 512..1M" },
	{ SETTING_SIZE, "-1", 0, 100, false, 0,
	  "'-1' is not a size (a number with an optional K, M, G or T suffix)" },
	{ SETTING_SIZE, "10X", 0, 100, false, 0,
	  "'10X' is not a size (a number with an optional K, M, G or T suffix)" },
	{ SETTING_SIZE, "10KB", 0, 100, false, 0,
	  "'10KB' is not a size (a number with an optional K, M, G or T suffix)" },
	{ SETTING_SIZE, "K", 0, 100, false, 0,
	  "'K' is not a size (a number with an optional K, M, G or T suffix)" },
	{ SETTING_SIZE, "10 K", 0, 100000, false, 0,
	  "'10 K' is not a size (a number with an optional K, M, G or T suffix)" },
	{ SETTING_SIZE, "99999999999999999999999X", 0, 100, false, 0,
	  "'99999999999999999999999X' is not a size (a number with an optional K, M, G or T suffix)" },
	/* DURATION */
	{ SETTING_DURATION, "30", 0, INT64_MAX, true, 30, NULL },
	{ SETTING_DURATION, "30s", 0, INT64_MAX, true, 30, NULL },
	{ SETTING_DURATION, "5m", 0, INT64_MAX, true, 300, NULL },
	{ SETTING_DURATION, "2h", 0, INT64_MAX, true, 7200, NULL },
	{ SETTING_DURATION, "7d", 0, INT64_MAX, true, 604800, NULL },
	{ SETTING_DURATION, "2h", 1, 3600, false, 0, "value 2h out of range 1s..1h" },
	{ SETTING_DURATION, "0", 1, 3600, false, 0, "value 0 out of range 1s..1h" },
	{ SETTING_DURATION, "1w", 0, 100, false, 0,
	  "'1w' is not a duration (a number with an optional s, m, h or d suffix)" },
	{ SETTING_DURATION, "-5s", 0, 100, false, 0,
	  "'-5s' is not a duration (a number with an optional s, m, h or d suffix)" },
	{ SETTING_DURATION, "999999999999999999d", 0, INT64_MAX, false, 0,
	  "value 999999999999999999d out of range 0..9223372036854775807s" },
	/* client text is escaped in reasons */
	{ SETTING_INT, "a\nb", 0, 10, false, 0, "'a\\nb' is not an integer" },
};

static void test_scalar_table(void **state)
{
	for (size_t i = 0; i < sizeof(scalar_cases) / sizeof(scalar_cases[0]); i++) {
		const struct scalar_case *c = &scalar_cases[i];
		int64_t v = -12345;
		char *reason = NULL;
		int ret = cfg_parse_scalar(c->type, c->text, c->min, c->max, &v, &reason);

		if (c->ok) {
			if (ret != 0)
				fail_msg("row %zu '%s': %s", i, c->text, reason);
			if (v != c->value)
				fail_msg("row %zu '%s': %lld != %lld", i, c->text, (long long)v,
					 (long long)c->value);
		} else {
			if (ret == 0)
				fail_msg("row %zu '%s': accepted as %lld", i, c->text, (long long)v);
			assert_non_null(reason);
			if (strcmp(reason, c->reason) != 0)
				fail_msg("row %zu: reason '%s', expected '%s'", i, reason, c->reason);
			free(reason);
		}
	}
}

static void test_format_scalar(void **state)
{
	static const struct { enum setting_type type; int64_t v; const char *s; } rows[] = {
		{ SETTING_SIZE, 104857600, "100M" }, { SETTING_SIZE, 0, "0" },
		{ SETTING_SIZE, 1000, "1000" }, { SETTING_SIZE, 8192, "8K" },
		{ SETTING_SIZE, 1099511627776LL, "1T" }, { SETTING_SIZE, 1536, "1536" },
		{ SETTING_DURATION, 86400, "1d" }, { SETTING_DURATION, 90, "90s" },
		{ SETTING_DURATION, 300, "5m" }, { SETTING_DURATION, 0, "0" },
		{ SETTING_DURATION, 7200, "2h" }, { SETTING_BOOL, 1, "yes" },
		{ SETTING_BOOL, 0, "no" }, { SETTING_INT, -3, "-3" },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct buf b;
		int64_t back;
		char *reason = NULL;

		buf_init(&b, 100);
		assert_int_equal(cfg_format_scalar(rows[i].type, rows[i].v, &b), 0);
		assert_string_equal(b.data, rows[i].s);
		/* and what we format parses back to the same value */
		if (cfg_parse_scalar(rows[i].type, b.data, INT64_MIN, INT64_MAX, &back, &reason) < 0)
			fail_msg("%s: %s", b.data, reason);
		assert_int_equal(back, rows[i].v);
		buf_deinit(&b);
	}
}

static void test_hostname(void **state)
{
	static const char *const good[] = {
		"localhost", "mail.example.com", "a", "a-b.c", "xn--bcher-kva.example", "1.2.3.4",
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123.com",
	};
	static const char *const bad[] = {
		"", ".", "a..b", "-a.com", "a-.com", "a.com.", ".a.com", "a_b.com", "a b", "ma\xc3\xa9l.com",
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234.com", "a/b", "a@b",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(cfg_valid_hostname(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (cfg_valid_hostname(bad[i]))
			fail_msg("accepted '%s'", bad[i]);
	}
}

/* ---- parsing ------------------------------------------------------------ */

static void test_minimal_is_default(void **state)
{
	struct cfg *cfg = must_parse("<petrel/>", NULL);
	struct cfg *def = cfg_new_default("/etc/petrel");

	assert_true(cfg_equal(cfg, def));
	assert_string_equal(cfg->s.server_hostname, "localhost");
	assert_int_equal(cfg->s.server_worker_threads, 8);
	assert_int_equal(cfg->s.logs_rotate_size, 104857600);
	assert_true(cfg->s.tls_prefer_server_ciphers);
	assert_string_equal(cfg->config_dir, "/etc/petrel");
	assert_string_equal(def->path, "/etc/petrel/mailserver.cfg");
	cfg_unref(&cfg);
	cfg_unref(&def);
}

static void test_parse_values(void **state)
{
	const char *text =
		"<?xml version=\"1.0\"?>\n"
		"<petrel>\n"
		"  <server>\n"
		"    <hostname>  mail.example.com </hostname>\n"
		"    <port-offset>10000</port-offset>\n"
		"    <shutdown-timeout>2m</shutdown-timeout>\n"
		"    <store><![CDATA[/srv/mail & more]]></store>\n"
		"  </server>\n"
		"  <limits><max-line>16K</max-line><idle-timeout>1h</idle-timeout></limits>\n"
		"  <tls><min-version>1.3</min-version><prefer-server-ciphers>off</prefer-server-ciphers>"
		"<ciphers>A&amp;B</ciphers></tls>\n"
		"  <!-- a comment -->\n"
		"  <control><max-request>2M</max-request></control>\n"
		"</petrel>\n";
	struct warnings w = { .count = 0 };
	struct cfg *cfg = must_parse(text, &w);

	assert_int_equal(w.count, 0);
	assert_string_equal(cfg->s.server_hostname, "mail.example.com");
	assert_int_equal(cfg->s.server_port_offset, 10000);
	assert_int_equal(cfg->s.server_shutdown_timeout, 120);
	assert_string_equal(cfg->s.server_store, "/srv/mail & more");
	assert_int_equal(cfg->s.limits_max_line, 16384);
	assert_int_equal(cfg->s.limits_idle_timeout, 3600);
	assert_string_equal(cfg->s.tls_min_version, "1.3");
	assert_false(cfg->s.tls_prefer_server_ciphers);
	assert_string_equal(cfg->s.tls_ciphers, "A&B");
	assert_int_equal(cfg->s.control_max_request, 2097152);
	assert_int_equal(cfg_listen_port(cfg, &cfg->services[SERVICE_SMTP].listen[0]), 10025);
	cfg_unref(&cfg);
}

struct error_case {
	const char *name;
	const char *text;
	const char *error;      /* exact message */
};

static const struct error_case error_cases[] = {
	{ "out of range with line",
	  "<petrel>\n<server>\n\n<port-offset>70000</port-offset>\n</server>\n</petrel>\n",
	  "t.cfg:4: server/port-offset: value 70000 out of range 0..60000" },
	{ "size overflow",
	  "<petrel>\n<logs>\n<rotate-size>99999999999T</rotate-size>\n</logs>\n</petrel>\n",
	  "t.cfg:3: logs/rotate-size: value 99999999999T out of range 0..1T" },
	{ "negative size",
	  "<petrel><limits>\n<max-line>-1</max-line></limits></petrel>",
	  "t.cfg:2: limits/max-line: '-1' is not a size (a number with an optional K, M, G or T suffix)" },
	{ "junk suffix",
	  "<petrel><limits>\n<max-line>8Q</max-line></limits></petrel>",
	  "t.cfg:2: limits/max-line: '8Q' is not a size (a number with an optional K, M, G or T suffix)" },
	{ "bad bool",
	  "<petrel><tls><prefer-server-ciphers>sometimes</prefer-server-ciphers></tls></petrel>",
	  "t.cfg:1: tls/prefer-server-ciphers: 'sometimes' is not yes or no" },
	{ "bad duration",
	  "<petrel><limits>\n\n<idle-timeout>5 minutes</idle-timeout></limits></petrel>",
	  "t.cfg:3: limits/idle-timeout: '5 minutes' is not a duration (a number with an optional s, m, h or d suffix)" },
	{ "duplicate setting",
	  "<petrel>\n<server>\n<hostname>a.example</hostname>\n\n<hostname>b.example</hostname>\n"
	  "</server>\n</petrel>\n",
	  "t.cfg:5: server/hostname given twice (first at line 3)" },
	{ "duplicate section",
	  "<petrel>\n<server/>\n<server/>\n</petrel>",
	  "t.cfg:3: <server> given twice (first at line 2)" },
	{ "bad hostname",
	  "<petrel><server>\n<hostname>mail_1.example.com</hostname></server></petrel>",
	  "t.cfg:2: server/hostname: 'mail_1.example.com' is not valid: must be a host name" },
	{ "empty hostname",
	  "<petrel><server>\n<hostname>  </hostname></server></petrel>",
	  "t.cfg:2: server/hostname: empty value" },
	{ "bad tls version",
	  "<petrel><tls>\n<min-version>1.1</min-version></tls></petrel>",
	  "t.cfg:2: tls/min-version: '1.1' is not valid: must be 1.2 or 1.3" },
	{ "control chars in text",
	  "<petrel><server>\n<store>/a&#9;b</store></server></petrel>",
	  "t.cfg:2: server/store: value contains control characters" },
	{ "wrong root",
	  "<?xml version=\"1.0\"?>\n<config/>\n",
	  "t.cfg:2: root element is <config>, expected <petrel>" },
	{ "not xml", "hello", "t.cfg:1: Start tag expected, '<' not found" },
	{ "empty", "", "t.cfg:1: Document is empty" },
	{ "unclosed",
	  "<petrel>\n<server>\n</petrel>\n",
	  "t.cfg:3: Opening and ending tag mismatch: server line 2 and petrel" },
	{ "billion laughs",
	  "<?xml version=\"1.0\"?>\n<!DOCTYPE petrel [\n<!ENTITY a \"aaaaaaaaaa\">\n"
	  "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n"
	  "]>\n<petrel><server><hostname>&c;</hostname></server></petrel>\n",
	  "t.cfg:2: DOCTYPE not allowed (configuration files take no DTD or entities)" },
	{ "external entity",
	  "<?xml version=\"1.0\"?>\n<!DOCTYPE petrel [ <!ENTITY x SYSTEM \"file:///etc/passwd\"> ]>\n"
	  "<petrel><server><store>&x;</store></server></petrel>\n",
	  "t.cfg:2: DOCTYPE not allowed (configuration files take no DTD or entities)" },
	{ "external dtd",
	  "<!DOCTYPE petrel SYSTEM \"http://example.com/x.dtd\">\n<petrel/>\n",
	  "t.cfg:1: DOCTYPE not allowed (configuration files take no DTD or entities)" },
	{ "undeclared entity",
	  "<petrel>\n<server><store>&x;</store></server></petrel>\n",
	  "t.cfg:2: Entity 'x' not defined" },
	{ "unknown service",
	  "<petrel><services>\n<service name=\"gopher\"/></services></petrel>",
	  "t.cfg:2: unknown service 'gopher'" },
	{ "service without name",
	  "<petrel><services>\n<service/></services></petrel>",
	  "t.cfg:2: <service> without a name attribute" },
	{ "service twice",
	  "<petrel><services>\n<service name=\"imap\"/>\n<service name=\"imap\"/></services></petrel>",
	  "t.cfg:3: service imap given twice (first at line 2)" },
	{ "bad enabled",
	  "<petrel><services>\n<service name=\"imap\" enabled=\"perhaps\"/></services></petrel>",
	  "t.cfg:2: service imap: enabled 'perhaps' is not yes or no" },
	{ "host name as address",
	  "<petrel><services><service name=\"imap\">\n<listen address=\"localhost\" port=\"143\"/>"
	  "</service></services></petrel>",
	  "t.cfg:2: service imap: listen address 'localhost' is not * or an IPv4 or IPv6 address" },
	{ "port zero",
	  "<petrel><services><service name=\"imap\">\n<listen port=\"0\"/></service></services></petrel>",
	  "t.cfg:2: service imap: port 0 out of range 1..65535" },
	{ "port too big",
	  "<petrel><services><service name=\"imap\">\n<listen port=\"65536\"/></service></services></petrel>",
	  "t.cfg:2: service imap: port 65536 out of range 1..65535" },
	{ "port junk",
	  "<petrel><services><service name=\"imap\">\n<listen port=\"14x\"/></service></services></petrel>",
	  "t.cfg:2: service imap: port 14x out of range 1..65535" },
	{ "same listener twice in a service",
	  "<petrel><services><service name=\"imap\">\n<listen address=\"127.0.0.1\" port=\"1143\"/>\n"
	  "<listen address=\"127.0.0.1\" port=\"1143\"/></service></services></petrel>",
	  "t.cfg:3: listener 127.0.0.1:1143 of service imap conflicts with 127.0.0.1:1143 of service imap (line 2)" },
	{ "conflict across services",
	  "<petrel><services>\n<service name=\"smtp\"><listen address=\"127.0.0.1\" port=\"2525\"/></service>\n"
	  "<service name=\"submission\">\n<listen address=\"127.0.0.1\" port=\"2525\"/></service>\n"
	  "</services></petrel>",
	  "t.cfg:4: listener 127.0.0.1:2525 of service submission conflicts with 127.0.0.1:2525 of service smtp (line 2)" },
	{ "wildcard conflicts with an address",
	  "<petrel><services>\n<service name=\"pop3\"><listen address=\"::1\" port=\"2525\"/></service>\n"
	  "<service name=\"imap\"><listen port=\"2525\"/></service>\n</services></petrel>",
	  "t.cfg:3: listener *:2525 of service imap conflicts with [::1]:2525 of service pop3 (line 2)" },
	{ "mapped address is the IPv4 address",
	  "<petrel><services>\n<service name=\"pop3\"><listen address=\"10.0.0.1\" port=\"2525\"/></service>\n"
	  "<service name=\"imap\"><listen address=\"::ffff:10.0.0.1\" port=\"2525\"/></service>\n</services></petrel>",
	  "t.cfg:3: listener [::ffff:10.0.0.1]:2525 of service imap conflicts with 10.0.0.1:2525 of service pop3 (line 2)" },
	{ "conflict with a default listener",
	  "<petrel><services>\n<service name=\"smtp\">\n<listen port=\"587\"/></service></services></petrel>",
	  "t.cfg:3: listener *:587 of service smtp conflicts with *:587 of service submission (its default listener)" },
	{ "conflict reported with offset ports",
	  "<petrel><server><port-offset>1000</port-offset></server><services>\n<service name=\"smtp\">\n"
	  "<listen port=\"587\"/></service></services></petrel>",
	  "t.cfg:3: listener *:1587 of service smtp conflicts with *:1587 of service submission (its default listener)" },
	{ "port offset overflow on a default listener",
	  "<petrel><server>\n<port-offset>30000</port-offset></server></petrel>",
	  "t.cfg:2: service admin: port 44337 + port-offset 30000 = 74337 exceeds 65535" },
	{ "port offset overflow on a configured listener",
	  "<petrel><server><port-offset>100</port-offset></server><services>\n"
	  "<service name=\"imap\">\n<listen port=\"65500\"/></service></services></petrel>",
	  "t.cfg:3: service imap: port 65500 + port-offset 100 = 65600 exceeds 65535" },
	{ "unknown log",
	  "<petrel><logs>\n<log name=\"audit\"/></logs></petrel>",
	  "t.cfg:2: unknown log 'audit' (debug, error, mail, security or warning)" },
	{ "log twice",
	  "<petrel><logs>\n<log name=\"mail\"/>\n<log name=\"mail\"/></logs></petrel>",
	  "t.cfg:3: <log name=\"mail\"> given twice (first at line 2)" },
	{ "log override out of range",
	  "<petrel><logs><log name=\"mail\">\n<keep>1001</keep></log></logs></petrel>",
	  "t.cfg:2: logs/keep: value 1001 out of range 0..1000" },
	{ "log override twice",
	  "<petrel><logs><log name=\"mail\"><keep>1</keep>\n<keep>2</keep></log></logs></petrel>",
	  "t.cfg:2: logs/log[mail]/keep given twice" },
	{ "namespace error",
	  "<petrel>\n<x:server/></petrel>",
	  "t.cfg:2: Namespace prefix x on server is not defined" },
};

static void test_error_table(void **state)
{
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		char *error = must_fail(error_cases[i].text);

		if (strcmp(error, error_cases[i].error) != 0)
			fail_msg("%s:\n got      '%s'\n expected '%s'", error_cases[i].name, error,
				 error_cases[i].error);
		free(error);
	}
}

static void test_warnings(void **state)
{
	const char *text =
		"<petrel version=\"2\">\n"
		"  <server>\n"
		"    <hostname>h.example</hostname>\n"
		"    <colour>blue</colour>\n"
		"    stray text\n"
		"  </server>\n"
		"  <future-section><x/></future-section>\n"
		"  <tls><min-version unit=\"v\">1.2</min-version></tls>\n"
		"  <services><service name=\"imap\" tls=\"yes\"><listen port=\"143\" backlog=\"5\"/>"
		"<bind/></service><servise/></services>\n"
		"  <logs><log name=\"mail\"><debug>yes</debug></log></logs>\n"
		"  <limits><max-line>1K<b/></max-line></limits>\n"
		"  <control>\n\n  junk <!-- c -->\n  </control>\n"
		"</petrel>\n";
	static const char *const expected[] = {
		"t.cfg:1: unknown attribute version on <petrel> (ignored)",
		"t.cfg:4: unknown element <colour> (ignored)",
		"t.cfg:5: unexpected text inside <server> (ignored)",
		"t.cfg:7: unknown element <future-section> (ignored)",
		"t.cfg:8: unknown attribute unit on <min-version> (ignored)",
		"t.cfg:9: unknown attribute tls on <service> (ignored)",
		"t.cfg:9: unknown element <bind> (ignored)",
		"t.cfg:9: unknown attribute backlog on <listen> (ignored)",
		"t.cfg:9: unknown element <servise> (ignored)",
		"t.cfg:10: unknown element <debug> (ignored)",
		"t.cfg:11: unexpected element <b> inside <max-line> (ignored)",
		"t.cfg:14: unexpected text inside <control> (ignored)",
	};
	struct warnings w = { .count = 0 };
	struct cfg *cfg = must_parse(text, &w);

	assert_string_equal(cfg->s.server_hostname, "h.example");
	assert_int_equal(cfg->s.limits_max_line, 1024);
	if (w.count != sizeof(expected) / sizeof(expected[0])) {
		for (size_t i = 0; i < w.count; i++)
			fprintf(stderr, "warning: %s\n", w.list[i]);
		fail_msg("%zu warnings", w.count);
	}
	for (size_t i = 0; i < w.count; i++)
		assert_string_equal(w.list[i], expected[i]);
	warnings_free(&w);
	cfg_unref(&cfg);
}

static void test_warning_callback_may_be_null(void **state)
{
	const char *text = "<petrel><unknown/></petrel>";
	struct cfg *cfg = NULL;
	char *error = NULL;

	assert_int_equal(cfg_parse("t.cfg", "/", text, strlen(text), NULL, NULL, &cfg, &error), 0);
	cfg_unref(&cfg);
	assert_null(cfg);
}

static void test_big_line_numbers(void **state)
{
	struct buf b;
	char *error;

	buf_init(&b, 1 << 20);
	assert_int_equal(buf_append_str(&b, "<petrel>\n"), 0);
	for (int i = 0; i < 70000; i++)
		assert_int_equal(buf_append_str(&b, "<!-- -->\n"), 0);
	assert_int_equal(buf_append_str(&b, "<server><port-offset>x</port-offset></server></petrel>\n"), 0);
	error = must_fail(b.data);
	assert_string_equal(error, "t.cfg:70002: server/port-offset: 'x' is not an integer");
	free(error);
	buf_deinit(&b);
}

static void test_services_default(void **state)
{
	static const struct { enum service_id id; const char *name; uint16_t port; enum service_tls tls; } rows[] = {
		{ SERVICE_SMTP, "smtp", 25, SERVICE_TLS_STARTTLS },
		{ SERVICE_SUBMISSION, "submission", 587, SERVICE_TLS_STARTTLS },
		{ SERVICE_SMTPS, "smtps", 465, SERVICE_TLS_IMPLICIT },
		{ SERVICE_POP3, "pop3", 110, SERVICE_TLS_STARTTLS },
		{ SERVICE_POP3S, "pop3s", 995, SERVICE_TLS_IMPLICIT },
		{ SERVICE_IMAP, "imap", 143, SERVICE_TLS_STARTTLS },
		{ SERVICE_IMAPS, "imaps", 993, SERVICE_TLS_IMPLICIT },
		{ SERVICE_HTTP, "http", 80, SERVICE_TLS_NONE },
		{ SERVICE_HTTPS, "https", 443, SERVICE_TLS_IMPLICIT },
		{ SERVICE_ADMIN, "admin", 44337, SERVICE_TLS_IMPLICIT },
		{ SERVICE_LDAP, "ldap", 389, SERVICE_TLS_STARTTLS },
		{ SERVICE_LDAPS, "ldaps", 636, SERVICE_TLS_IMPLICIT },
	};
	struct cfg *cfg = must_parse("<petrel><services/></petrel>", NULL);

	assert_int_equal(sizeof(rows) / sizeof(rows[0]), SERVICE_COUNT);
	for (size_t i = 0; i < SERVICE_COUNT; i++) {
		const struct service_info *si = service_info(rows[i].id);
		enum service_id id;

		assert_string_equal(si->name, rows[i].name);
		assert_int_equal(si->default_port, rows[i].port);
		assert_int_equal(si->tls, rows[i].tls);
		assert_int_equal(service_parse(rows[i].name, &id), 0);
		assert_int_equal(id, rows[i].id);
		assert_true(cfg->services[id].enabled);
		assert_int_equal(cfg->services[id].listen_count, 1);
		assert_string_equal(cfg->services[id].listen[0].address, "*");
		assert_int_equal(cfg->services[id].listen[0].port, rows[i].port);
		assert_int_equal(cfg_listen_port(cfg, &cfg->services[id].listen[0]), rows[i].port);
	}
	{
		enum service_id id;

		assert_int_equal(service_parse("SMTP", &id), -1);
		assert_int_equal(service_parse("", &id), -1);
	}
	cfg_unref(&cfg);
}

static void test_services_configured(void **state)
{
	const char *text =
		"<petrel>\n"
		"  <server><port-offset>22000</port-offset></server>\n"
		"  <services>\n"
		"    <service name=\"smtp\" enabled=\"no\"/>\n"
		"    <service name=\"imap\">\n"
		"      <listen address=\"127.0.0.1\" port=\"143\"/>\n"
		"      <listen address=\"::1\"/>\n"
		"      <listen address=\" 192.0.2.1 \" port=\"1143\"/>\n"
		"    </service>\n"
		"    <service name=\"admin\" enabled=\"no\"/>\n"
		"    <!-- disabled services do not conflict: -->\n"
		"    <service name=\"pop3\" enabled=\"false\"><listen port=\"587\"/></service>\n"
		"  </services>\n"
		"</petrel>\n";
	struct cfg *cfg = must_parse(text, NULL);
	const struct service_config *imap = &cfg->services[SERVICE_IMAP];

	assert_false(cfg->services[SERVICE_SMTP].enabled);
	assert_int_equal(cfg->services[SERVICE_SMTP].listen_count, 1);
	assert_false(cfg->services[SERVICE_POP3].enabled);
	assert_true(cfg->services[SERVICE_SUBMISSION].enabled);
	assert_int_equal(imap->listen_count, 3);
	assert_string_equal(imap->listen[0].address, "127.0.0.1");
	assert_int_equal(imap->listen[0].port, 143);
	assert_int_equal(cfg_listen_port(cfg, &imap->listen[0]), 22143);
	assert_string_equal(imap->listen[1].address, "::1");
	assert_int_equal(imap->listen[1].port, 143);
	assert_string_equal(imap->listen[2].address, "192.0.2.1");
	assert_int_equal(imap->listen[2].port, 1143);
	/* admin is disabled, so 44337 + 22000 is no error; it has no port */
	assert_int_equal(cfg_listen_port(cfg, &cfg->services[SERVICE_ADMIN].listen[0]), 0);
	cfg_unref(&cfg);
}

static void test_logs(void **state)
{
	const char *text =
		"<petrel><logs>\n"
		"  <rotate-size>10M</rotate-size><keep>5</keep><debug>yes</debug>\n"
		"  <log name=\"mail\"><keep>30</keep><rotate-interval>7d</rotate-interval></log>\n"
		"  <log name=\"security\"><rotate-size>0</rotate-size></log>\n"
		"</logs></petrel>";
	struct cfg *cfg = must_parse(text, NULL);

	assert_true(cfg->logs.debug);
	assert_false(cfg->logs.foreground);
	for (int i = 0; i < LOG_FILE_COUNT; i++) {
		const struct log_settings *ls = &cfg->logs.files[i];

		assert_int_equal(ls->rotate_size, i == LOG_SECURITY_FILE ? 0 : 10485760);
		assert_int_equal(ls->rotate_interval, i == LOG_MAIL_FILE ? 604800 : 86400);
		assert_int_equal(ls->keep, i == LOG_MAIL_FILE ? 30 : 5);
	}
	cfg_unref(&cfg);
}

/* Every prefix of a valid file fails cleanly or parses: no crash, no leak
 * (the sanitizer build checks), and an error always has a line. */
static void test_truncations(void **state)
{
	struct cfg *def = cfg_new_default("/x");
	char *full = cfg_format(def);
	size_t len = strlen(full);

	for (size_t n = 0; n < len; n += 7) {
		struct cfg *cfg = NULL;
		char *error = NULL;

		if (cfg_parse("t.cfg", "/x", full, n, NULL, NULL, &cfg, &error) == 0) {
			cfg_unref(&cfg);
		} else {
			assert_true(str_has_prefix(error, "t.cfg:"));
			free(error);
		}
	}
	free(full);
	cfg_unref(&def);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void test_refcount(void **state)
{
	struct cfg *a = cfg_new_default("/etc/petrel");
	struct cfg *b = cfg_ref(a), *cur;

	assert_ptr_equal(a, b);
	assert_int_equal(a->refcount, 2);
	cfg_unref(&b);
	assert_null(b);
	assert_int_equal(a->refcount, 1);

	assert_null(cfg_current());
	cfg_set_current(cfg_ref(a));
	cur = cfg_current();
	assert_ptr_equal(cur, a);
	assert_int_equal(a->refcount, 3);
	cfg_unref(&cur);
	cfg_set_current(cfg_new_default("/other"));
	assert_int_equal(a->refcount, 1);
	cur = cfg_current();
	assert_string_equal(cur->config_dir, "/other");
	cfg_unref(&cur);
	cfg_set_current(NULL);
	assert_null(cfg_current());
	cfg_unref(&a);
	cfg_unref(&a);  /* NULL is fine */
}

static void test_cfg_path(void **state)
{
	struct cfg *cfg = cfg_new_default("/etc/petrel/");
	char *p;

	assert_string_equal(cfg->config_dir, "/etc/petrel");
	p = cfg_path(cfg, "sslcert/server.crt");
	assert_string_equal(p, "/etc/petrel/sslcert/server.crt");
	free(p);
	p = cfg_path(cfg, "/var/lib/petrel");
	assert_string_equal(p, "/var/lib/petrel");
	free(p);
	cfg_unref(&cfg);

	cfg = cfg_new_default("rel/dir");
	assert_true(cfg->config_dir[0] == '/');
	assert_true(str_has_suffix(cfg->config_dir, "/rel/dir"));
	cfg_unref(&cfg);
}

struct thread_arg {
	int n;
	int failures;
};

static void *parse_thread(void *p)
{
	struct thread_arg *arg = p;

	for (int i = 0; i < 100; i++) {
		char *text = xasprintf("<petrel>\n%*s<server><port-offset>%d</port-offset></server>"
				       "<oops></petrel>", arg->n, "", 70000 + arg->n);
		char *expect = xasprintf("t%d.cfg:2: Opening and ending tag mismatch: oops line 2 and petrel",
					 arg->n);
		char *path = xasprintf("t%d.cfg", arg->n);
		struct cfg *cfg = NULL;
		char *error = NULL;

		if (cfg_parse(path, "/", text, strlen(text), NULL, NULL, &cfg, &error) == 0 ||
		    strcmp(error, expect) != 0)
			arg->failures++;
		free(error);
		free(text);
		free(expect);
		free(path);
	}
	return NULL;
}

/* Reload parses while other threads parse: each must see its own errors. */
static void test_threads(void **state)
{
	pthread_t t[4];
	struct thread_arg args[4];

	for (int i = 0; i < 4; i++) {
		args[i].n = i;
		args[i].failures = 0;
		assert_int_equal(pthread_create(&t[i], NULL, parse_thread, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
}

/* ---- writing ------------------------------------------------------------ */

static void test_write_new_round_trip(void **state)
{
	char *dir = make_tmpdir();
	char *path = xasprintf("%s/%s", dir, CFG_MAILSERVER);
	struct cfg_setup setup = { .hostname = "mail.example.org", .store = "/srv/petrel & co",
				   .user = "mail", .port_offset = 10000 };
	struct warnings w = { .count = 0 };
	struct cfg *cfg = NULL, *expect;
	char *error = NULL, *data;
	size_t len;
	struct stat st;

	if (cfg_write_new(path, &setup, &error) < 0)
		fail_msg("%s", error);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	if (cfg_load(dir, collect_warning, &w, &cfg, &error) < 0)
		fail_msg("%s", error);
	assert_int_equal(w.count, 0);
	assert_string_equal(cfg->s.server_hostname, "mail.example.org");
	assert_string_equal(cfg->s.server_store, "/srv/petrel & co");
	assert_string_equal(cfg->s.server_user, "mail");
	assert_int_equal(cfg->s.server_port_offset, 10000);
	assert_string_equal(cfg->path, path);

	expect = cfg_new_default(dir);
	free(expect->s.server_hostname);
	expect->s.server_hostname = xstrdup("mail.example.org");
	free(expect->s.server_store);
	expect->s.server_store = xstrdup("/srv/petrel & co");
	free(expect->s.server_user);
	expect->s.server_user = xstrdup("mail");
	expect->s.server_port_offset = 10000;
	assert_true(cfg_equal(cfg, expect));

	/* human-readable: comment on top naming the docs, 2-space indentation,
	 * every section and every service with its default listener */
	assert_int_equal(fileio_read_all(path, 1 << 20, &data, &len), 0);
	assert_non_null(strstr(data, "docs/configuration.md"));
	assert_true(strstr(data, "<!--") < strstr(data, "<petrel>"));
	assert_non_null(strstr(data, "\n  <server>\n"));
	assert_non_null(strstr(data, "\n    <hostname>mail.example.org</hostname>\n"));
	assert_non_null(strstr(data, "\n  <limits>\n"));
	assert_non_null(strstr(data, "\n  <tls>\n"));
	assert_non_null(strstr(data, "\n  <logs>\n"));
	assert_non_null(strstr(data, "\n  <services>\n"));
	for (int i = 0; i < SERVICE_COUNT; i++) {
		char *s = xasprintf("    <service name=\"%s\" enabled=\"yes\">\n"
				    "      <listen address=\"*\" port=\"%u\"/>\n    </service>\n",
				    service_info((enum service_id)i)->name,
				    (unsigned)service_info((enum service_id)i)->default_port);

		assert_non_null(strstr(data, s));
		free(s);
	}
	assert_null(strchr(data, '\t'));
	free(data);

	cfg_unref(&cfg);
	cfg_unref(&expect);
	unlink(path);
	free(path);
	remove_tree(dir);
	free(dir);
}

static void test_write_round_trip_everything(void **state)
{
	const char *text =
		"<petrel>\n"
		"  <server><hostname>x.example</hostname><port-offset>100</port-offset></server>\n"
		"  <limits><max-line>1536</max-line><idle-timeout>90</idle-timeout></limits>\n"
		"  <logs><rotate-size>10M</rotate-size><keep>5</keep>\n"
		"    <log name=\"mail\"><keep>30</keep><rotate-interval>7d</rotate-interval></log>\n"
		"    <log name=\"debug\"><rotate-size>1G</rotate-size></log></logs>\n"
		"  <services><service name=\"smtp\" enabled=\"no\"/>\n"
		"    <service name=\"imap\"><listen address=\"127.0.0.1\" port=\"1143\"/>"
		"<listen address=\"::1\" port=\"1143\"/></service></services>\n"
		"</petrel>\n";
	char *dir = make_tmpdir();
	char *path = xasprintf("%s/%s", dir, CFG_MAILSERVER);
	struct cfg *cfg = must_parse(text, NULL), *back = NULL;
	char *error = NULL;

	if (cfg_write(cfg, path, &error) < 0)
		fail_msg("%s", error);
	if (cfg_load(dir, NULL, NULL, &back, &error) < 0)
		fail_msg("%s", error);
	assert_true(cfg_equal(cfg, back));
	assert_int_equal(back->logs.files[LOG_MAIL_FILE].keep, 30);
	assert_int_equal(back->logs.files[LOG_DEBUG_FILE].rotate_size, 1073741824);
	assert_false(back->services[SERVICE_SMTP].enabled);

	/* a snapshot that would not load back is refused, the file stays */
	free(cfg->s.server_hostname);
	cfg->s.server_hostname = xstrdup("not a host");
	assert_int_equal(cfg_write(cfg, path, &error), -1);
	assert_non_null(strstr(error, "server/hostname: 'not a host' is not valid"));
	free(error);
	cfg_unref(&back);
	assert_int_equal(cfg_load(dir, NULL, NULL, &back, &error), 0);
	assert_string_equal(back->s.server_hostname, "x.example");

	cfg_unref(&back);
	cfg_unref(&cfg);
	unlink(path);
	free(path);
	remove_tree(dir);
	free(dir);
}

static void test_write_new_rejects(void **state)
{
	char *dir = make_tmpdir();
	char *path = xasprintf("%s/%s", dir, CFG_MAILSERVER);
	struct cfg_setup bad_host = { .hostname = "bad host" };
	struct cfg_setup bad_offset = { .port_offset = 60001 };
	struct cfg_setup bad_offset2 = { .port_offset = 30000 };
	struct cfg_setup bad_store = { .store = "" };
	char *error = NULL;
	struct stat st;

	assert_int_equal(cfg_write_new(path, &bad_host, &error), -1);
	assert_string_equal(error, "'bad host' is not a valid host name");
	free(error);
	assert_int_equal(cfg_write_new(path, &bad_offset, &error), -1);
	assert_string_equal(error, "port offset 60001 out of range 0..60000");
	free(error);
	/* in range for the setting, but admin's 44337 would pass 65535 */
	assert_int_equal(cfg_write_new(path, &bad_offset2, &error), -1);
	assert_non_null(strstr(error, "service admin: port 44337 + port-offset 30000"));
	free(error);
	assert_int_equal(cfg_write_new(path, &bad_store, &error), -1);
	free(error);
	assert_int_equal(stat(path, &st), -1);

	/* defaults with a NULL setup */
	assert_int_equal(cfg_write_new(path, NULL, &error), 0);
	unlink(path);
	/* an unwritable place */
	assert_int_equal(cfg_write_new("/nonexistent-dir/mailserver.cfg", NULL, &error), -1);
	assert_non_null(strstr(error, "/nonexistent-dir/mailserver.cfg"));
	free(error);

	free(path);
	remove_tree(dir);
	free(dir);
}

static void test_load_missing(void **state)
{
	char *dir = make_tmpdir();
	struct cfg *cfg = NULL;
	char *error = NULL, *expect;

	assert_int_equal(cfg_load(dir, NULL, NULL, &cfg, &error), -1);
	expect = xasprintf("%s/mailserver.cfg: cannot read: No such file or directory", dir);
	assert_string_equal(error, expect);
	free(expect);
	free(error);
	assert_int_equal(cfg_load("/nonexistent-petrel", NULL, NULL, &cfg, &error), -1);
	free(error);
	remove_tree(dir);
	free(dir);
}

/* ---- fixtures ----------------------------------------------------------- */

/* tests/fixtures/config: good-*.cfg must load; bad-*.cfg must fail with the
 * error given in their first comment, "<!-- expect: TEXT -->", where FILE
 * stands for the file's path. */
static void test_fixtures(void **state)
{
	char *dirpath = fixture_path("config");
	DIR *d = opendir(dirpath);
	struct dirent *e;
	int good = 0, bad = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		bool is_good = str_has_prefix(e->d_name, "good-");
		bool is_bad = str_has_prefix(e->d_name, "bad-");
		char *path, *data, *error = NULL;
		struct cfg *cfg = NULL;
		size_t len;

		if (!str_has_suffix(e->d_name, ".cfg") || (!is_good && !is_bad) ||
		    strstr(e->d_name, "users") != NULL)
			continue;
		path = xasprintf("%s/%s", dirpath, e->d_name);
		assert_int_equal(fileio_read_all(path, CFG_MAX_FILE_SIZE, &data, &len), 0);
		if (is_good) {
			struct warnings w = { .count = 0 };

			if (cfg_parse(path, dirpath, data, len, collect_warning, &w, &cfg, &error) < 0)
				fail_msg("%s", error);
			if (w.count != 0)
				fail_msg("%s: warning %s", e->d_name, w.list[0]);
			cfg_unref(&cfg);
			good++;
		} else {
			const char *m = strstr(data, "<!-- expect: ");
			char *expect, *end;
			char *full;

			assert_non_null(m);
			expect = xstrdup(m + 13);
			end = strstr(expect, " -->");
			assert_non_null(end);
			*end = '\0';
			full = str_has_prefix(expect, "FILE") ? xasprintf("%s%s", path, expect + 4)
				: xstrdup(expect);
			if (cfg_parse(path, dirpath, data, len, NULL, NULL, &cfg, &error) == 0)
				fail_msg("%s parsed", e->d_name);
			if (strcmp(error, full) != 0)
				fail_msg("%s:\n got      '%s'\n expected '%s'", e->d_name, error, full);
			free(error);
			free(expect);
			free(full);
			bad++;
		}
		free(data);
		free(path);
	}
	closedir(d);
	free(dirpath);
	assert_true(good >= 2);
	assert_true(bad >= 5);
}

/* ---- the docs ----------------------------------------------------------- */

#define BEGIN_MARK "<!-- BEGIN GENERATED -->\n"
#define END_MARK "<!-- END GENERATED -->"

static char *reference_text(void)
{
	char tmpl[] = "/tmp/petrel-test-ref-XXXXXX";
	int fd = mkstemp(tmpl);
	char *data;
	size_t len;

	assert_true(fd >= 0);
	cfg_dump_reference(fd);
	close(fd);
	assert_int_equal(fileio_read_all(tmpl, 1 << 22, &data, &len), 0);
	unlink(tmpl);
	return data;
}

static void test_docs_in_sync(void **state)
{
	char *path = fixture_path("../../docs/configuration.md");
	char *doc, *ref = reference_text(), *begin, *end, *generated;
	size_t len;

	if (fileio_read_all(path, 1 << 22, &doc, &len) < 0)
		fail_msg("%s: %s", path, strerror(errno));
	begin = strstr(doc, BEGIN_MARK);
	end = begin != NULL ? strstr(begin, END_MARK) : NULL;
	if (begin == NULL || end == NULL)
		fail_msg("%s: markers " BEGIN_MARK " and " END_MARK " not found", path);
	begin += strlen(BEGIN_MARK);
	generated = xstrndup(begin, (size_t)(end - begin));
	if (getenv("PETREL_UPDATE_DOCS") != NULL) {
		struct buf b;
		const char *err;

		buf_init(&b, 1 << 22);
		assert_int_equal(buf_append(&b, doc, (size_t)(begin - doc)), 0);
		assert_int_equal(buf_append_str(&b, ref), 0);
		assert_int_equal(buf_append_str(&b, end), 0);
		if (fileio_write_atomic(path, b.data, b.len, 0644, &err) < 0)
			fail_msg("%s", err);
		buf_deinit(&b);
	} else if (strcmp(generated, ref) != 0) {
		fail_msg("docs/configuration.md is out of date with settings.def: rerun this test "
			 "with PETREL_UPDATE_DOCS=1 to regenerate the part between the markers");
	}
	free(generated);
	free(ref);
	free(doc);
	free(path);
}

static void test_docs_example(void **state)
{
	char *text = docs_example("mailserver.cfg");
	struct warnings w = { .count = 0 };
	struct cfg *cfg = NULL;
	char *error = NULL;

	if (cfg_parse("example", "/etc/petrel", text, strlen(text), collect_warning, &w, &cfg,
		      &error) < 0)
		fail_msg("the example in docs/configuration.md does not load: %s", error);
	if (w.count != 0)
		fail_msg("the example in docs/configuration.md warns: %s", w.list[0]);
	assert_int_equal(cfg->logs.files[LOG_MAIL_FILE].keep, 90);
	assert_false(cfg->services[SERVICE_HTTP].enabled);
	cfg_unref(&cfg);
	free(text);
}

static void test_reference_content(void **state)
{
	char *ref = reference_text();

	/* every setting and every service is in it */
	for (size_t i = 0; i < cfg_settings_count; i++) {
		char *s = xasprintf("| `%s` |", cfg_settings[i].path);

		assert_non_null(strstr(ref, s));
		free(s);
	}
	for (int i = 0; i < SERVICE_COUNT; i++) {
		char *s = xasprintf("| `%s` | %u |", service_info((enum service_id)i)->name,
				    (unsigned)service_info((enum service_id)i)->default_port);

		assert_non_null(strstr(ref, s));
		free(s);
	}
	assert_non_null(strstr(ref, "| `server/port-offset` | integer | `0` | 0..60000 |"));
	assert_non_null(strstr(ref, "| `logs/rotate-size` | size | `100M` | 0..1T |"));
	assert_non_null(strstr(ref, "| `server/hostname` | text | `localhost` | a host name |"));
	free(ref);
}

static void test_table_sane(void **state)
{
	/* every default is within its own range and the defaults load */
	for (size_t i = 0; i < cfg_settings_count; i++) {
		const struct setting_def *d = &cfg_settings[i];

		assert_non_null(strchr(d->path, '/'));
		assert_ptr_equal(cfg_setting_find(d->path), d);
		if (d->type == SETTING_STR) {
			assert_non_null(d->def_str);
		} else {
			assert_true(d->min <= d->def_num && d->def_num <= d->max);
		}
	}
	assert_null(cfg_setting_find("server/nothing"));
	/* rows are grouped by section: a section never comes back later */
	for (size_t i = 1; i < cfg_settings_count; i++) {
		size_t len = strcspn(cfg_settings[i].path, "/");

		if (strncmp(cfg_settings[i - 1].path, cfg_settings[i].path, len + 1) == 0)
			continue;
		for (size_t j = 0; j + 1 < i; j++) {
			if (strncmp(cfg_settings[j].path, cfg_settings[i].path, len + 1) == 0)
				fail_msg("settings.def: %s is apart from its section", cfg_settings[i].path);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalar_table),
		cmocka_unit_test(test_format_scalar),
		cmocka_unit_test(test_hostname),
		cmocka_unit_test(test_table_sane),
		cmocka_unit_test(test_minimal_is_default),
		cmocka_unit_test(test_parse_values),
		cmocka_unit_test(test_error_table),
		cmocka_unit_test(test_warnings),
		cmocka_unit_test(test_warning_callback_may_be_null),
		cmocka_unit_test(test_big_line_numbers),
		cmocka_unit_test(test_services_default),
		cmocka_unit_test(test_services_configured),
		cmocka_unit_test(test_logs),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_cfg_path),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_write_new_round_trip),
		cmocka_unit_test(test_write_round_trip_everything),
		cmocka_unit_test(test_write_new_rejects),
		cmocka_unit_test(test_load_missing),
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_reference_content),
		cmocka_unit_test(test_docs_in_sync),
		cmocka_unit_test(test_docs_example),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
