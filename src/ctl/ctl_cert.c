/*
 * petrelctl cert show [--json]
 * petrelctl cert generate [--hostname NAME] [--days N] [--force]
 * petrelctl cert request [--hostname NAME] [--force] [--json]
 * petrelctl cert import --cert FILE [--chain FILE] [--key FILE]
 *
 * Works on the files in <config-dir>/sslcert directly (core/cert.h), so it
 * works whether or not the engine runs; after a change that the engine
 * must see (generate, import) it asks a running engine to reload, which
 * builds a new TLS context and keeps the old one if the new files are bad.
 * docs/certificates.md is the administrator's side of this file.
 */
#include "ctl/ctl.h"
#include "core/cert.h"
#include "core/cfg.h"
#include "core/fileio.h"
#include "core/str.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CTL_CERT_USAGE \
	"usage: petrelctl cert show [--json]\n" \
	"       petrelctl cert generate [--hostname NAME] [--days N] [--force]\n" \
	"       petrelctl cert request [--hostname NAME] [--force]\n" \
	"       petrelctl cert import --cert FILE [--chain FILE] [--key FILE]"

/* Mode of a new sslcert directory: the service user's group may read the
 * keys (setup makes it 0750 too); keys themselves are 0600. */
#define CTL_CERT_DIR_MODE 0750

struct cert_opts {
	const char *hostname;
	const char *cert;
	const char *chain;
	const char *key;
	int days;
	bool force;
	bool json;
};

struct cert_paths {
	char *dir;
	char *server_crt, *server_key;
	char *request_key, *request_csr;
};

static void paths_init(struct cert_paths *p, const struct ctl *ctl)
{
	p->dir = xasprintf("%s/sslcert", ctl->config_dir);
	p->server_crt = xasprintf("%s/%s", p->dir, CERT_SERVER_CRT);
	p->server_key = xasprintf("%s/%s", p->dir, CERT_SERVER_KEY);
	p->request_key = xasprintf("%s/%s", p->dir, CERT_REQUEST_KEY);
	p->request_csr = xasprintf("%s/%s", p->dir, CERT_REQUEST_CSR);
}

static void paths_deinit(struct cert_paths *p)
{
	free(p->dir);
	free(p->server_crt);
	free(p->server_key);
	free(p->request_key);
	free(p->request_csr);
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* True when word is one of the space-separated words of list. */
static bool word_in(const char *list, const char *word)
{
	size_t len = strlen(word);

	if (len == 0)
		return false;
	for (const char *p = list; (p = strstr(p, word)) != NULL; p += len) {
		if ((p == list || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
			return true;
	}
	return false;
}

/* Options after the subcommand; allowed lists the ones it takes. */
static int parse_opts(int argc, char **argv, const char *allowed, struct cert_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->days = CERT_DEFAULT_DAYS;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *name = str_has_prefix(a, "--") ? a + 2 : "";
		const char *value = NULL;

		if (!word_in(allowed, name))
			return ctl_usage("cert %s: unexpected argument '%s'\n" CTL_CERT_USAGE, argv[0], a);
		if (strcmp(name, "force") == 0) {
			o->force = true;
			continue;
		}
		if (strcmp(name, "json") == 0) {
			o->json = true;
			continue;
		}
		if (i + 1 >= argc || argv[i + 1][0] == '\0')
			return ctl_usage("cert %s: %s needs a value\n" CTL_CERT_USAGE, argv[0], a);
		value = argv[++i];
		if (strcmp(name, "hostname") == 0) {
			o->hostname = value;
		} else if (strcmp(name, "cert") == 0) {
			o->cert = value;
		} else if (strcmp(name, "chain") == 0) {
			o->chain = value;
		} else if (strcmp(name, "key") == 0) {
			o->key = value;
		} else if (strcmp(name, "days") == 0) {
			int64_t n;

			if (str_to_i64(value, 1, CERT_MAX_DAYS, &n) < 0)
				return ctl_usage("cert %s: --days takes a number from 1 to %d", argv[0],
						 CERT_MAX_DAYS);
			o->days = (int)n;
		}
	}
	return CTL_OK;
}

static void ignore_warning(const char *warning, void *context)
{
}

/* server/hostname from mailserver.cfg, when --hostname is not given.
 * Returns a new string, or NULL when the configuration cannot be read. */
static char *configured_hostname(const struct ctl *ctl)
{
	struct cfg *cfg = NULL;
	char *error = NULL, *hostname = NULL;

	if (cfg_load(ctl->config_dir, ignore_warning, NULL, &cfg, &error) < 0) {
		free(error);
		return NULL;
	}
	if (cfg->s.server_hostname != NULL && cfg->s.server_hostname[0] != '\0')
		hostname = xstrdup(cfg->s.server_hostname);
	cfg_unref(&cfg);
	return hostname;
}

/* Warns when mailserver.cfg points the engine at other files than the
 * ones this command writes: the change would then have no effect. */
static void check_configured_paths(const struct ctl *ctl, const struct cert_paths *p)
{
	struct cfg *cfg = NULL;
	char *error = NULL;

	if (cfg_load(ctl->config_dir, ignore_warning, NULL, &cfg, &error) < 0) {
		free(error);
		return;
	}
	{
		char *crt = cfg_path(cfg, cfg->s.tls_certificate);

		if (strcmp(crt, p->server_crt) != 0)
			fprintf(stderr, "petrelctl: note: mailserver.cfg uses tls/certificate %s, "
				"not %s; change it there to use this certificate\n", crt, p->server_crt);
		free(crt);
	}
	cfg_unref(&cfg);
}

static int make_cert_dir(const struct cert_paths *p)
{
	if (fileio_mkdir_p(p->dir, CTL_CERT_DIR_MODE) < 0)
		return ctl_fail("cannot create %s: %s", p->dir, strerror(errno));
	return CTL_OK;
}

/* --- show ---------------------------------------------------------------- */

/* The NAME.crt files of per-host (SNI) certificates, sorted; as tls.c
 * loads them (a NAME.crt without NAME.key is listed and flagged). */
static size_t list_host_certs(const char *dir, char ***names_r)
{
	struct dirent **entries = NULL;
	char **names = NULL;
	size_t count = 0;
	int n = scandir(dir, &entries, NULL, alphasort);

	for (int i = 0; i < n; i++) {
		const char *name = entries[i]->d_name;

		if (name[0] != '.' && str_has_suffix(name, ".crt") && strcmp(name, "server.crt") != 0 &&
		    strcmp(name, "request.crt") != 0) {
			names = xreallocarray(names, count + 1, sizeof(*names));
			names[count++] = xstrdup(name);
		}
		free(entries[i]);
	}
	free(entries);
	*names_r = names;
	return count;
}

static int cmd_show(struct ctl *ctl, const struct cert_opts *o, const struct cert_paths *p)
{
	bool json_out = o->json || ctl->json;
	json_t *out = NULL, *hosts = NULL, *desc;
	char **names = NULL, *error = NULL, *text;
	size_t count;
	int ret = CTL_OK;

	if (!exists(p->server_crt))
		return ctl_fail("no certificate: %s does not exist; create one with "
				"petrelctl cert generate, or import one with petrelctl cert import",
				p->server_crt);
	if (json_out) {
		out = json_object();
		hosts = json_array();
		if (out == NULL || hosts == NULL)
			panic("out of memory in jansson");
		if (cert_describe_json(p->server_crt, &desc, &error) < 0)
			goto fail;
		(void)json_object_set_new(out, "default", desc);
	} else {
		if (cert_describe(p->server_crt, &text, &error) < 0)
			goto fail;
		printf("default certificate\n%s", text);
		free(text);
	}

	count = list_host_certs(p->dir, &names);
	for (size_t i = 0; i < count; i++) {
		char *crt = xasprintf("%s/%s", p->dir, names[i]);
		char *key = xasprintf("%s/%.*s.key", p->dir, (int)(strlen(names[i]) - 4), names[i]);
		bool has_key = exists(key);

		if (json_out) {
			if (cert_describe_json(crt, &desc, &error) < 0) {
				desc = json_object();
				if (desc == NULL)
					panic("out of memory in jansson");
				(void)json_object_set_new(desc, "path", json_string(crt));
				(void)json_object_set_new(desc, "error", json_string(error));
				free(error);
				error = NULL;
			}
			(void)json_object_set_new(desc, "key_present", json_boolean(has_key));
			(void)json_array_append_new(hosts, desc);
		} else if (cert_describe(crt, &text, &error) < 0) {
			printf("\nper-host certificate (not used: %s)\n", error);
			free(error);
			error = NULL;
		} else {
			printf("\nper-host certificate%s\n%s", has_key ? "" : " (not used: no key beside it)",
			       text);
			free(text);
		}
		free(crt);
		free(key);
		free(names[i]);
	}
	free(names);

	if (json_out) {
		(void)json_object_set_new(out, "hosts", hosts);
		hosts = NULL;
		(void)json_object_set_new(out, "pending_request",
					  exists(p->request_key) ? json_string(p->request_csr) : json_null());
		if (json_dumpf(out, stdout, JSON_INDENT(2)) < 0 || putchar('\n') == EOF)
			ret = ctl_fail("cannot write to standard output: %s", strerror(errno));
	} else if (exists(p->request_key)) {
		printf("\npending request: %s (import the CA's certificate with petrelctl cert import)\n",
		       p->request_csr);
	}
	json_decref(out);
	json_decref(hosts);
	if (fflush(stdout) == EOF)
		ret = ctl_fail("cannot write to standard output: %s", strerror(errno));
	return ret;
fail:
	json_decref(out);
	json_decref(hosts);
	ret = ctl_fail("%s", error);
	free(error);
	return ret;
}

/* --- generate ------------------------------------------------------------ */

static int cmd_generate(struct ctl *ctl, const struct cert_opts *o, const struct cert_paths *p)
{
	char *hostname = o->hostname != NULL ? xstrdup(o->hostname) : configured_hostname(ctl);
	char *error = NULL, *text = NULL;
	json_t *desc;
	int ret;

	if (hostname == NULL) {
		return ctl_usage("cert generate: --hostname is required (mailserver.cfg in %s could "
				 "not be read to find server/hostname)\n" CTL_CERT_USAGE, ctl->config_dir);
	}
	/* Replacing a CA-issued certificate by a self-signed one breaks every
	 * client that checks certificates: only on purpose. */
	if (!o->force && exists(p->server_crt) && cert_describe_json(p->server_crt, &desc, &error) == 0) {
		bool ca_issued = !json_is_true(json_object_get(desc, "self_signed")) &&
				 !json_is_true(json_object_get(desc, "expired"));

		if (ca_issued) {
			ret = ctl_fail("%s is issued by %s and valid until %s; replacing it with a "
				       "self-signed certificate needs --force", p->server_crt,
				       json_string_value(json_object_get(desc, "issuer")),
				       json_string_value(json_object_get(desc, "not_after")));
			json_decref(desc);
			free(hostname);
			return ret;
		}
		json_decref(desc);
	}
	free(error);
	error = NULL;

	if ((ret = make_cert_dir(p)) != CTL_OK) {
		free(hostname);
		return ret;
	}
	if (cert_generate_self_signed(hostname, p->server_crt, p->server_key, o->days, &error) < 0) {
		ret = ctl_fail("%s", error);
		free(error);
		free(hostname);
		return ret;
	}
	printf("generated a self-signed certificate for %s, valid for %d days:\n  %s\n  %s\n",
	       hostname, o->days, p->server_crt, p->server_key);
	if (cert_describe(p->server_crt, &text, &error) == 0) {
		printf("%s", text);
		free(text);
	} else {
		free(error);
	}
	free(hostname);
	check_configured_paths(ctl, p);
	if (fflush(stdout) == EOF)
		return ctl_fail("cannot write to standard output: %s", strerror(errno));
	return ctl_reload_if_running(ctl);
}

/* --- request ------------------------------------------------------------- */

static int cmd_request(struct ctl *ctl, const struct cert_opts *o, const struct cert_paths *p)
{
	char *hostname = o->hostname != NULL ? xstrdup(o->hostname) : configured_hostname(ctl);
	char *error = NULL, *pem = NULL;
	size_t len;
	int ret;

	if (hostname == NULL)
		return ctl_usage("cert request: --hostname is required (mailserver.cfg in %s could "
				 "not be read to find server/hostname)\n" CTL_CERT_USAGE, ctl->config_dir);
	/* A new request makes the certificate a CA issues for the old one
	 * impossible to import: only on purpose. */
	if (!o->force && exists(p->request_key)) {
		ret = ctl_fail("a certificate request is already pending (%s); import the CA's "
			       "certificate for it with petrelctl cert import, or use --force to make a "
			       "new request, which replaces the pending key", p->request_csr);
		free(hostname);
		return ret;
	}
	if ((ret = make_cert_dir(p)) != CTL_OK) {
		free(hostname);
		return ret;
	}
	if (cert_request(hostname, p->request_csr, p->request_key, &error) < 0) {
		ret = ctl_fail("%s", error);
		free(error);
		free(hostname);
		return ret;
	}
	free(hostname);
	if (fileio_read_all(p->request_csr, CERT_MAX_FILE_SIZE, &pem, &len) < 0)
		return ctl_fail("cannot read %s: %s", p->request_csr, strerror(errno));
	if (o->json || ctl->json) {
		json_t *out = json_pack("{s:s, s:s, s:s}", "csr_path", p->request_csr, "key_path",
					p->request_key, "csr", pem);

		if (out == NULL)
			panic("json_pack failed");
		ret = json_dumpf(out, stdout, JSON_INDENT(2)) < 0 || putchar('\n') == EOF;
		json_decref(out);
	} else {
		ret = printf("certificate request written to %s\n"
			     "the new private key stays in %s until the certificate is imported\n"
			     "give this request to your CA, then run: petrelctl cert import --cert FILE\n\n%s",
			     p->request_csr, p->request_key, pem) < 0;
	}
	free(pem);
	if (ret != 0 || fflush(stdout) == EOF)
		return ctl_fail("cannot write to standard output: %s", strerror(errno));
	return CTL_OK;
}

/* --- import -------------------------------------------------------------- */

static int cmd_import(struct ctl *ctl, const struct cert_opts *o, const struct cert_paths *p)
{
	char *error = NULL, *summary = NULL;
	int ret;

	if (o->cert == NULL)
		return ctl_usage("cert import: --cert FILE is required\n" CTL_CERT_USAGE);
	if ((ret = make_cert_dir(p)) != CTL_OK)
		return ret;
	if (cert_import(o->cert, o->chain, o->key, p->dir, &summary, &error) < 0) {
		ret = ctl_fail("%s", error);
		free(error);
		return ret;
	}
	printf("imported into %s: %s\n", p->server_crt, summary);
	free(summary);
	check_configured_paths(ctl, p);
	if (fflush(stdout) == EOF)
		return ctl_fail("cannot write to standard output: %s", strerror(errno));
	return ctl_reload_if_running(ctl);
}

int ctl_cert_main(struct ctl *ctl, int argc, char **argv)
{
	static const struct {
		const char *name;
		const char *options;
		int (*run)(struct ctl *, const struct cert_opts *, const struct cert_paths *);
	} cmds[] = {
		{ "show", "json", cmd_show },
		{ "generate", "hostname days force json", cmd_generate },
		{ "request", "hostname force json", cmd_request },
		{ "import", "cert chain key json", cmd_import },
	};
	struct cert_paths paths;
	struct cert_opts opts;
	int ret;

	if (argc < 1)
		return ctl_usage("cert: which command?\n" CTL_CERT_USAGE);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[0], cmds[i].name) != 0)
			continue;
		if ((ret = parse_opts(argc, argv, cmds[i].options, &opts)) != CTL_OK)
			return ret;
		paths_init(&paths, ctl);
		ret = cmds[i].run(ctl, &opts, &paths);
		paths_deinit(&paths);
		return ret;
	}
	return ctl_usage("cert: unknown command '%s'\n" CTL_CERT_USAGE, argv[0]);
}
