/*
 * mailserver.cfg on the way out: the complete, commented file that setup
 * writes (cfg_write_new) and that the admin API will write after an edit
 * (cfg_write), and the settings reference in markdown that
 * docs/configuration.md embeds (cfg_dump_reference, petreld
 * --dump-settings).  Everything is generated from the settings table, so a
 * new row in settings.def shows up in new files and in the docs with no
 * other edit.
 *
 * Every file is parsed back before it replaces the old one: what we write
 * is, by construction, a file the engine accepts with the same values.
 */
#include "core/cfg.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/str.h"

#define CFG_FILE_MODE 0640
#define COMMENT_WIDTH 96
/* Generous bound on the text of a generated file. */
#define CFG_FORMAT_MAX (1024 * 1024)

int cfg_xml_escape_append(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++) {
		int ret;

		switch (*s) {
		case '&': ret = buf_append_str(out, "&amp;"); break;
		case '<': ret = buf_append_str(out, "&lt;"); break;
		case '>': ret = buf_append_str(out, "&gt;"); break;
		case '"': ret = buf_append_str(out, "&quot;"); break;
		case '\'': ret = buf_append_str(out, "&apos;"); break;
		default: ret = buf_append_char(out, *s); break;
		}
		if (ret < 0)
			return -1;
	}
	return 0;
}

int cfg_xml_comment_append(struct buf *out, const char *text, unsigned indent, unsigned width)
{
	struct buf clean;
	const char *p;
	size_t col;
	int ret = 0;

	/* "--" may not appear inside a comment, nor may it end in "-". */
	buf_init(&clean, strlen(text) * 2 + 2);
	for (p = text; *p != '\0' && ret == 0; p++) {
		ret = buf_append_char(&clean, *p);
		if (ret == 0 && *p == '-' && (p[1] == '-' || p[1] == '\0'))
			ret = buf_append_char(&clean, ' ');
	}
	if (ret < 0)
		panic("cfg_xml_comment_append: size");
	if (buf_printf(out, "%*s<!--", (int)indent, "") < 0)
		goto fail;
	col = indent + 4;
	p = clean.data;
	while (*p != '\0') {
		size_t word;

		while (*p == ' ' || *p == '\n')
			p++;
		if (*p == '\0')
			break;
		word = strcspn(p, " \n");
		if (col + 1 + word > width && col > indent + 4) {
			/* continuation lines line up with the text after "<!-- " */
			if (buf_printf(out, "\n%*s", (int)indent + 5, "") < 0)
				goto fail;
			col = indent + 5;
		} else {
			if (buf_append_char(out, ' ') < 0)
				goto fail;
			col++;
		}
		if (buf_append(out, p, word) < 0)
			goto fail;
		col += word;
		p += word;
	}
	if (buf_append_str(out, " -->\n") < 0)
		goto fail;
	buf_deinit(&clean);
	return 0;
fail:
	buf_deinit(&clean);
	return -1;
}

static const char *tls_mode_name(enum service_tls tls)
{
	switch (tls) {
	case SERVICE_TLS_NONE: return "no TLS";
	case SERVICE_TLS_STARTTLS: return "STARTTLS";
	case SERVICE_TLS_IMPLICIT: return "implicit TLS";
	}
	return "?";
}

static const char *const log_names[LOG_FILE_COUNT] = {
	[LOG_DEBUG_FILE] = "debug", [LOG_ERROR_FILE] = "error", [LOG_MAIL_FILE] = "mail",
	[LOG_SECURITY_FILE] = "security", [LOG_WARNING_FILE] = "warning",
};

static size_t section_len(const char *path)
{
	return strcspn(path, "/");
}

static int format_logs_overrides(const struct cfg *cfg, struct buf *b)
{
	int ret = 0;

	ret |= cfg_xml_comment_append(b,
		"Each log (debug, error, mail, security, warning) may override rotate-size, "
		"rotate-interval and keep, e.g. <log name=\"mail\"><keep>30</keep></log>.", 4,
		COMMENT_WIDTH);
	for (int i = 0; i < LOG_FILE_COUNT && ret == 0; i++) {
		const struct log_settings *ls = &cfg->logs.files[i];
		bool size = ls->rotate_size != (uint64_t)cfg->s.logs_rotate_size;
		bool interval = ls->rotate_interval != (uint64_t)cfg->s.logs_rotate_interval;
		bool keep = ls->keep != (unsigned)cfg->s.logs_keep;

		if (!size && !interval && !keep)
			continue;
		ret |= buf_printf(b, "    <log name=\"%s\">\n", log_names[i]);
		if (size) {
			ret |= buf_append_str(b, "      <rotate-size>");
			ret |= cfg_format_scalar(SETTING_SIZE, (int64_t)ls->rotate_size, b);
			ret |= buf_append_str(b, "</rotate-size>\n");
		}
		if (interval) {
			ret |= buf_append_str(b, "      <rotate-interval>");
			ret |= cfg_format_scalar(SETTING_DURATION, (int64_t)ls->rotate_interval, b);
			ret |= buf_append_str(b, "</rotate-interval>\n");
		}
		if (keep)
			ret |= buf_printf(b, "      <keep>%u</keep>\n", ls->keep);
		ret |= buf_append_str(b, "    </log>\n");
	}
	return ret == 0 ? 0 : -1;
}

static int format_relay_networks(const struct cfg *cfg, struct buf *b)
{
	int ret = 0;

	ret |= cfg_xml_comment_append(b,
		"Clients in these networks may relay mail to other domains without SMTP AUTH "
		"(addresses or CIDR ranges, e.g. <network>192.0.2.0/24</network>). Loopback is "
		"not trusted unless listed here.", 4, COMMENT_WIDTH);
	ret |= buf_append_str(b, "    <relay-networks>\n");
	for (size_t i = 0; i < cfg->relay_network_count && ret == 0; i++) {
		ret |= buf_append_str(b, "      <network>");
		ret |= cfg_xml_escape_append(b, cfg->relay_networks[i].text);
		ret |= buf_append_str(b, "</network>\n");
	}
	ret |= buf_append_str(b, "    </relay-networks>\n");
	return ret == 0 ? 0 : -1;
}

static int format_services(const struct cfg *cfg, struct buf *b)
{
	int ret = 0;

	ret |= buf_append_str(b, "  <services>\n");
	ret |= cfg_xml_comment_append(b,
		"A service without <listen> listens on all addresses (*) on its default port. "
		"address is * or an IPv4 or IPv6 address; server/port-offset is added to every port.",
		4, COMMENT_WIDTH);
	for (int id = 0; id < SERVICE_COUNT && ret == 0; id++) {
		const struct service_info *si = service_info((enum service_id)id);
		const struct service_config *sc = &cfg->services[id];
		char *note = xasprintf("%s: default port %u, %s", si->name, (unsigned)si->default_port,
				       tls_mode_name(si->tls));

		ret |= cfg_xml_comment_append(b, note, 4, COMMENT_WIDTH);
		free(note);
		ret |= buf_printf(b, "    <service name=\"%s\" enabled=\"%s\">\n", si->name,
				  sc->enabled ? "yes" : "no");
		for (size_t i = 0; i < sc->listen_count; i++) {
			ret |= buf_append_str(b, "      <listen address=\"");
			ret |= cfg_xml_escape_append(b, sc->listen[i].address);
			ret |= buf_printf(b, "\" port=\"%u\"/>\n", (unsigned)sc->listen[i].port);
		}
		ret |= buf_append_str(b, "    </service>\n");
	}
	ret |= buf_append_str(b, "  </services>\n");
	return ret == 0 ? 0 : -1;
}

static int format_routes(const struct cfg *cfg, struct buf *b)
{
	int ret = 0;

	ret |= buf_append_str(b, "\n  <routes>\n");
	ret |= cfg_xml_comment_append(b,
		"Delivery routes (docs/queue.md): <route domain=\"example.net\" host=\"relay.example.com\" "
		"port=\"587\" tls=\"verify\" auth-user=\"u\" auth-password=\"p\"/>. domain \"*\" is the "
		"smart host for every other domain; without host only the TLS policy (may, none, "
		"encrypt, verify) applies to MX delivery.", 4, COMMENT_WIDTH);
	for (size_t i = 0; i < cfg->route_count && ret == 0; i++) {
		const struct route_config *r = &cfg->routes[i];

		ret |= buf_append_str(b, "    <route domain=\"");
		ret |= cfg_xml_escape_append(b, r->domain);
		ret |= buf_append_str(b, "\"");
		if (r->host != NULL) {
			ret |= buf_append_str(b, " host=\"");
			ret |= cfg_xml_escape_append(b, r->host);
			ret |= buf_append_str(b, "\"");
		}
		if (r->port != 0)
			ret |= buf_printf(b, " port=\"%u\"", (unsigned)r->port);
		ret |= buf_printf(b, " tls=\"%s\"", cfg_route_tls_str(r->tls));
		if (r->auth_user != NULL) {
			ret |= buf_append_str(b, " auth-user=\"");
			ret |= cfg_xml_escape_append(b, r->auth_user);
			ret |= buf_append_str(b, "\" auth-password=\"");
			ret |= cfg_xml_escape_append(b, r->auth_password);
			ret |= buf_append_str(b, "\"");
		}
		ret |= buf_append_str(b, "/>\n");
	}
	ret |= buf_append_str(b, "  </routes>\n");
	return ret == 0 ? 0 : -1;
}

char *cfg_format(const struct cfg *cfg)
{
	struct buf b;
	int ret = 0;

	buf_init(&b, CFG_FORMAT_MAX);
	ret |= buf_append_str(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	ret |= buf_append_str(&b,
		"<!--\n"
		"  mailserver.cfg: the settings of the Petrel mail server engine.\n"
		"\n"
		"  Every setting is explained in docs/configuration.md (petreld prints the\n"
		"  same reference with its dump-settings option).  Edit this file, then run\n"
		"  \"petrelctl reload\" or send SIGHUP: an invalid file is refused with\n"
		"  FILE:LINE: reason and the running configuration stays.  Elements this\n"
		"  version does not know are reported as warnings and ignored.\n"
		"-->\n"
		"<petrel>\n");
	for (size_t i = 0; i < cfg_settings_count && ret == 0; i++) {
		const struct setting_def *d = &cfg_settings[i];
		const char *name = d->path + section_len(d->path) + 1;
		bool first = i == 0 || section_len(cfg_settings[i - 1].path) != section_len(d->path) ||
			strncmp(cfg_settings[i - 1].path, d->path, section_len(d->path)) != 0;
		bool last = i + 1 == cfg_settings_count ||
			section_len(cfg_settings[i + 1].path) != section_len(d->path) ||
			strncmp(cfg_settings[i + 1].path, d->path, section_len(d->path)) != 0;

		if (first)
			ret |= buf_printf(&b, "%s  <%.*s>\n", i == 0 ? "" : "\n",
					  (int)section_len(d->path), d->path);
		ret |= cfg_xml_comment_append(&b, d->doc, 4, COMMENT_WIDTH);
		ret |= buf_printf(&b, "    <%s>", name);
		if (d->type == SETTING_STR) {
			ret |= cfg_xml_escape_append(&b, *(char *const *)(const void *)
						     ((const char *)&cfg->s + d->offset));
		} else {
			ret |= cfg_format_setting(&cfg->s, d, &b);
		}
		ret |= buf_printf(&b, "</%s>\n", name);
		if (last) {
			if (strncmp(d->path, "logs/", 5) == 0)
				ret |= format_logs_overrides(cfg, &b);
			if (strncmp(d->path, "smtp/", 5) == 0)
				ret |= format_relay_networks(cfg, &b);
			ret |= buf_printf(&b, "  </%.*s>\n", (int)section_len(d->path), d->path);
		}
	}
	ret |= buf_append_str(&b, "\n");
	ret |= format_services(cfg, &b);
	ret |= format_routes(cfg, &b);
	ret |= buf_append_str(&b, "</petrel>\n");
	if (ret != 0)
		panic("cfg_format: file larger than %d bytes", CFG_FORMAT_MAX);
	return buf_steal(&b);
}

static void ignore_warning(const char *warning, void *context)
{
}

int cfg_write(const struct cfg *cfg, const char *path, char **error_r)
{
	char *text = cfg_format(cfg), *error = NULL;
	struct cfg *check = NULL;
	const char *werr;
	int ret = -1;

	if (cfg_parse(path, cfg->config_dir, text, strlen(text), ignore_warning, NULL, &check,
		      &error) < 0) {
		*error_r = xasprintf("refusing to write an invalid configuration: %s", error);
		free(error);
		goto out;
	}
	if (!cfg_equal(cfg, check)) {
		*error_r = xasprintf("%s: refusing to write: the file would not load back the same "
				     "(leading or trailing white space in a value?)", path);
		goto out;
	}
	if (fileio_write_atomic(path, text, strlen(text), CFG_FILE_MODE, &werr) < 0) {
		*error_r = xasprintf("%s: %s", path, werr);
		goto out;
	}
	ret = 0;
out:
	cfg_unref(&check);
	free(text);
	return ret;
}

static int setup_text(const char *what, const char *value, char **error_r)
{
	for (const char *p = value; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*error_r = xasprintf("%s contains control characters", what);
			return -1;
		}
	}
	if (value[0] == '\0' || value[0] == ' ' || value[strlen(value) - 1] == ' ') {
		*error_r = xasprintf("%s is empty or starts or ends with a space", what);
		return -1;
	}
	return 0;
}

int cfg_write_new(const char *path, const struct cfg_setup *setup, char **error_r)
{
	const struct setting_def *offset = cfg_setting_find("server/port-offset");
	char *copy = xstrdup(path);
	struct cfg *cfg = cfg_new_default(dirname(copy));
	int ret = -1;

	free(copy);
	if (setup != NULL && setup->hostname != NULL) {
		if (!cfg_valid_hostname(setup->hostname)) {
			char *esc = str_escape(setup->hostname, 64);

			*error_r = xasprintf("'%s' is not a valid host name", esc);
			free(esc);
			goto out;
		}
		free(cfg->s.server_hostname);
		cfg->s.server_hostname = xstrdup(setup->hostname);
	}
	if (setup != NULL && setup->store != NULL) {
		if (setup_text("store directory", setup->store, error_r) < 0)
			goto out;
		free(cfg->s.server_store);
		cfg->s.server_store = xstrdup(setup->store);
	}
	if (setup != NULL && setup->user != NULL) {
		if (setup_text("user", setup->user, error_r) < 0)
			goto out;
		free(cfg->s.server_user);
		cfg->s.server_user = xstrdup(setup->user);
	}
	if (setup != NULL) {
		if (setup->port_offset < offset->min || setup->port_offset > offset->max) {
			*error_r = xasprintf("port offset %d out of range %lld..%lld", setup->port_offset,
					     (long long)offset->min, (long long)offset->max);
			goto out;
		}
		cfg->s.server_port_offset = setup->port_offset;
	}
	ret = cfg_write(cfg, path, error_r);
out:
	cfg_unref(&cfg);
	return ret;
}

/* ---- the reference ------------------------------------------------------ */

static const char *type_name(enum setting_type type)
{
	switch (type) {
	case SETTING_STR: return "text";
	case SETTING_INT: return "integer";
	case SETTING_BOOL: return "yes/no";
	case SETTING_SIZE: return "size";
	case SETTING_DURATION: return "duration";
	}
	return "?";
}

/* Markdown table cells: '|' would end the cell, '<' could open an HTML tag. */
static int md_cell(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		int ret;

		switch (*s) {
		case '|': ret = buf_append_str(b, "\\|"); break;
		case '<': ret = buf_append_str(b, "&lt;"); break;
		case '>': ret = buf_append_str(b, "&gt;"); break;
		default: ret = buf_append_char(b, *s); break;
		}
		if (ret < 0)
			return -1;
	}
	return 0;
}

void cfg_dump_reference(int fd)
{
	struct buf b, cell;
	int ret = 0;

	buf_init(&b, CFG_FORMAT_MAX);
	buf_init(&cell, 4096);
	ret |= buf_append_str(&b,
		"Sizes take an optional K, M, G or T suffix (1024-based: `25M` is 26214400 bytes); "
		"durations take an optional s, m, h or d suffix (`5m` is 300 seconds); "
		"yes/no settings also accept true/false, on/off and 1/0. "
		"Values outside the range stop the file from loading.\n");
	for (size_t i = 0; i < cfg_settings_count && ret == 0; i++) {
		const struct setting_def *d = &cfg_settings[i];
		size_t sl = section_len(d->path);
		bool first = i == 0 || section_len(cfg_settings[i - 1].path) != sl ||
			strncmp(cfg_settings[i - 1].path, d->path, sl) != 0;

		if (first) {
			ret |= buf_printf(&b, "\n### `<%.*s>`\n\n", (int)sl, d->path);
			ret |= buf_append_str(&b, "| Setting | Type | Default | Values | Description |\n"
					      "| --- | --- | --- | --- | --- |\n");
		}
		ret |= buf_printf(&b, "| `%s` | %s | `", d->path, type_name(d->type));
		if (d->type == SETTING_STR) {
			ret |= md_cell(&b, d->def_str);
		} else {
			buf_reset(&cell);
			ret |= cfg_format_scalar(d->type, d->def_num, &cell);
			ret |= md_cell(&b, cell.data);
		}
		ret |= buf_append_str(&b, "` | ");
		buf_reset(&cell);
		ret |= cfg_describe_range(d, &cell);
		ret |= md_cell(&b, cell.data);
		ret |= buf_append_str(&b, " | ");
		ret |= md_cell(&b, d->doc);
		ret |= buf_append_str(&b, " |\n");
		if (strncmp(d->path, "logs/", 5) == 0 &&
		    (i + 1 == cfg_settings_count || strncmp(cfg_settings[i + 1].path, "logs/", 5) != 0)) {
			ret |= buf_append_str(&b, "\nInside `<logs>`, `<log name=\"NAME\">` overrides "
					      "`rotate-size`, `rotate-interval` and `keep` for one log; "
					      "NAME is one of");
			for (int l = 0; l < LOG_FILE_COUNT; l++)
				ret |= buf_printf(&b, "%s `%s`", l == 0 ? "" : l + 1 == LOG_FILE_COUNT
						  ? " or" : ",", log_names[l]);
			ret |= buf_append_str(&b, ". `logs/debug` has no per-log override.\n");
		}
		if (strncmp(d->path, "smtp/", 5) == 0 &&
		    (i + 1 == cfg_settings_count || strncmp(cfg_settings[i + 1].path, "smtp/", 5) != 0))
			ret |= buf_append_str(&b, "\nInside `<smtp>`, `<relay-networks>` lists the client "
					      "networks that may relay to other domains without SMTP AUTH, "
					      "one `<network>` each: an IPv4 or IPv6 address or CIDR range "
					      "(`<network>192.0.2.0/24</network>`), host bits zero, at most "
					      "10000. Empty by default: loopback is not a relay network "
					      "unless listed (docs/smtp.md).\n");
	}
	ret |= buf_append_str(&b, "\n### `<services>`\n\n"
			      "| Service | Default port | TLS |\n| --- | --- | --- |\n");
	for (int id = 0; id < SERVICE_COUNT; id++) {
		const struct service_info *si = service_info((enum service_id)id);

		ret |= buf_printf(&b, "| `%s` | %u | %s |\n", si->name, (unsigned)si->default_port,
				  tls_mode_name(si->tls));
	}
	ret |= buf_append_str(&b, "\n### `<routes>`\n\n"
			      "Delivery routes for the outbound SMTP client, one `<route>` each "
			      "(see docs/queue.md):\n\n"
			      "| Attribute | Meaning |\n| --- | --- |\n"
			      "| `domain` | destination domain, or `*` for every domain without a route of its own |\n"
			      "| `host` | next hop: a host name or `[address]`; absent: the domain's MX |\n"
			      "| `port` | 1..65535; absent: `queue/smtp-port` |\n"
			      "| `tls` | `may` (default: STARTTLS when offered), `none`, `encrypt` (required), `verify` (required, valid certificate) |\n"
			      "| `auth-user`, `auth-password` | SMTP AUTH to the host (both, and a `host`) |\n");
	if (ret != 0)
		panic("cfg_dump_reference: reference larger than %d bytes", CFG_FORMAT_MAX);
	if (fileio_write_all(fd, b.data, b.len) < 0) {
		/* Best effort, as printf would be: the caller's fd is the
		 * caller's problem (a closed stdout). */
	}
	buf_deinit(&cell);
	buf_deinit(&b);
}
