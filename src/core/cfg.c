/*
 * mailserver.cfg: parsing and validation into an immutable, refcounted
 * snapshot (struct cfg), and the safe XML reading shared with users.cfg.
 *
 * The engine parses at start and on every reload (SIGHUP, petrelctl reload)
 * while other threads keep serving with the previous snapshot, so nothing
 * here touches process-wide state except the current-snapshot pointer,
 * which sits behind a mutex.  libxml2 errors are captured through the
 * parser context's own structured-error hook (and the thread-local
 * handlers, saved and restored around the call), never through the
 * process-wide xmlSetStructuredErrorFunc of another thread.
 *
 * Writing files (cfg_write_new, cfg_write) and the reference generator live
 * in cfg_write.c.
 */
#include "core/cfg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "core/fileio.h"
#include "core/str.h"

/* Longest text value of a setting; far above any real one (a cipher list is
 * a few hundred bytes), low enough that error messages stay readable. */
#define CFG_MAX_VALUE 4096
/* Most <listen> elements per service. */
#define CFG_MAX_LISTENERS 64
/* How much of a client-controlled name or value goes into a message. */
#define CFG_ESC_MAX 64

/* ---- the table ---------------------------------------------------------- */

#define SETTING_DEFAULT_STR(d) .def_str = (d), .def_num = 0
#define SETTING_DEFAULT_INT(d) .def_str = NULL, .def_num = (d)
#define SETTING_DEFAULT_BOOL(d) .def_str = NULL, .def_num = (d)
#define SETTING_DEFAULT_SIZE(d) .def_str = NULL, .def_num = (d)
#define SETTING_DEFAULT_DURATION(d) .def_str = NULL, .def_num = (d)
#define SETTING(type_, field_, path_, def_, min_, max_, doc_) \
	{ .type = SETTING_##type_, .path = (path_), .offset = offsetof(struct settings, field_), \
	  SETTING_DEFAULT_##type_(def_), .min = (min_), .max = (max_), .doc = (doc_) },
const struct setting_def cfg_settings[] = {
#include "core/settings.def"
};
#undef SETTING
const size_t cfg_settings_count = sizeof(cfg_settings) / sizeof(cfg_settings[0]);

const struct setting_def *cfg_setting_find(const char *path)
{
	for (size_t i = 0; i < cfg_settings_count; i++) {
		if (strcmp(cfg_settings[i].path, path) == 0)
			return &cfg_settings[i];
	}
	return NULL;
}

static char **setting_str(struct settings *s, const struct setting_def *d)
{
	return (char **)(void *)((char *)s + d->offset);
}

static char *const *setting_cstr(const struct settings *s, const struct setting_def *d)
{
	return (char *const *)(const void *)((const char *)s + d->offset);
}

static void setting_set_num(struct settings *s, const struct setting_def *d, int64_t v)
{
	char *p = (char *)s + d->offset;

	if (d->type == SETTING_BOOL)
		*(bool *)(void *)p = v != 0;
	else
		*(int64_t *)(void *)p = v;
}

static int64_t setting_get_num(const struct settings *s, const struct setting_def *d)
{
	const char *p = (const char *)s + d->offset;

	if (d->type == SETTING_BOOL)
		return *(const bool *)(const void *)p ? 1 : 0;
	return *(const int64_t *)(const void *)p;
}

/* ---- text values -------------------------------------------------------- */

bool cfg_valid_hostname(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || name[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (c == '-' && label == 0)
			return false;
		if (!isalnum(c) && c != '-')
			return false;
		if (c >= 0x80)
			return false;
		label++;
	}
	return true;
}

static bool valid_tls_version(const char *s)
{
	return strcmp(s, "1.2") == 0 || strcmp(s, "1.3") == 0;
}

/* smtp/authenticated-exempt: "none", or words among the limits that can be
 * lifted for authenticated clients (src/smtp/smtp_limits.c reads them). */
static bool valid_smtp_exempt(const char *s)
{
	static const char *const words[] = { "message-rate", "recipients", "unknown-recipients",
					     "failed-commands" };
	char *copy = xstrdup(s), *save = NULL;
	bool ok = true, none = false, any = false;

	for (char *w = strtok_r(copy, " \t,", &save); w != NULL && ok; w = strtok_r(NULL, " \t,", &save)) {
		bool known = false;

		if (strcmp(w, "none") == 0) {
			none = true;
			continue;
		}
		any = true;
		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			known |= strcmp(w, words[i]) == 0;
		ok = known;
	}
	free(copy);
	return ok && !(none && any);
}

static bool valid_bare_line_ends(const char *s)
{
	return strcmp(s, "normalize") == 0 || strcmp(s, "reject") == 0;
}

/* Extra checks of STR settings, and how the reference describes them. */
static const struct {
	const char *path;
	bool (*valid)(const char *value);
	const char *what;       /* "must be <what>" and the reference's range column */
} str_checks[] = {
	{ "server/hostname", cfg_valid_hostname, "a host name" },
	{ "tls/min-version", valid_tls_version, "1.2 or 1.3" },
	{ "smtp/authenticated-exempt", valid_smtp_exempt,
	  "none, or words among message-rate recipients unknown-recipients failed-commands" },
	{ "smtp/bare-line-ends", valid_bare_line_ends, "normalize or reject" },
};

static const char *str_check_what(const struct setting_def *d, bool (**valid_r)(const char *))
{
	for (size_t i = 0; i < sizeof(str_checks) / sizeof(str_checks[0]); i++) {
		if (strcmp(str_checks[i].path, d->path) == 0) {
			if (valid_r != NULL)
				*valid_r = str_checks[i].valid;
			return str_checks[i].what;
		}
	}
	if (valid_r != NULL)
		*valid_r = NULL;
	return NULL;
}

/* Parses an optionally negative decimal number; *suffix_r points past the
 * digits.  Overflow is remembered, not fatal, so that "99999999999999999999"
 * is reported as out of range rather than as junk.  Returns 0 or -1. */
static int parse_digits(const char *s, bool allow_neg, uint64_t *val_r, bool *neg_r,
			bool *overflow_r, const char **suffix_r)
{
	uint64_t v = 0;
	bool neg = false, overflow = false;

	if (allow_neg && *s == '-') {
		neg = true;
		s++;
	}
	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	*val_r = v;
	*neg_r = neg;
	*overflow_r = overflow;
	*suffix_r = s;
	return 0;
}

static const char *type_noun(enum setting_type type)
{
	switch (type) {
	case SETTING_INT: return "an integer";
	case SETTING_BOOL: return "yes or no";
	case SETTING_SIZE: return "a size (a number with an optional K, M, G or T suffix)";
	case SETTING_DURATION: return "a duration (a number with an optional s, m, h or d suffix)";
	case SETTING_STR: return "text";
	}
	return "?";
}

static char *range_text(enum setting_type type, int64_t min, int64_t max)
{
	struct buf b;

	buf_init(&b, 256);
	if (cfg_format_scalar(type, min, &b) < 0 || buf_append_str(&b, "..") < 0 ||
	    cfg_format_scalar(type, max, &b) < 0)
		panic("cfg: range text too long");
	return buf_steal(&b);
}

int cfg_parse_scalar(enum setting_type type, const char *text, int64_t min, int64_t max,
		     int64_t *val_r, char **reason_r)
{
	uint64_t v, mult = 1;
	const char *suffix;
	bool neg, overflow = false;
	int64_t val;
	char *esc, *range;

	if (type == SETTING_BOOL) {
		bool b;

		if (str_to_bool(text, &b) < 0)
			goto bad;
		*val_r = b ? 1 : 0;
		return 0;
	}
	if (type == SETTING_STR)
		panic("cfg_parse_scalar: STR");
	if (parse_digits(text, type == SETTING_INT, &v, &neg, &overflow, &suffix) < 0)
		goto bad;
	if (*suffix != '\0') {
		if (suffix[1] != '\0')
			goto bad;
		if (type == SETTING_SIZE) {
			switch (*suffix) {
			case 'k': case 'K': mult = 1ull << 10; break;
			case 'm': case 'M': mult = 1ull << 20; break;
			case 'g': case 'G': mult = 1ull << 30; break;
			case 't': case 'T': mult = 1ull << 40; break;
			default: goto bad;
			}
		} else if (type == SETTING_DURATION) {
			switch (*suffix) {
			case 's': case 'S': mult = 1; break;
			case 'm': case 'M': mult = 60; break;
			case 'h': case 'H': mult = 3600; break;
			case 'd': case 'D': mult = 86400; break;
			default: goto bad;
			}
		} else {
			goto bad;
		}
	}
	/* @UNSAFE: checked multiply; values past INT64_MAX are out of range. */
	if (overflow || v > (uint64_t)INT64_MAX / mult)
		goto range;
	v *= mult;
	val = neg ? -(int64_t)v : (int64_t)v;
	if (val < min || val > max)
		goto range;
	*val_r = val;
	return 0;
range:
	esc = str_escape(text, CFG_ESC_MAX);
	range = range_text(type, min, max);
	*reason_r = xasprintf("value %s out of range %s", esc, range);
	free(esc);
	free(range);
	return -1;
bad:
	esc = str_escape(text, CFG_ESC_MAX);
	*reason_r = xasprintf("'%s' is not %s", esc, type_noun(type));
	free(esc);
	return -1;
}

int cfg_format_scalar(enum setting_type type, int64_t val, struct buf *out)
{
	static const struct { int64_t mult; char c; } sizes[] = {
		{ 1ll << 40, 'T' }, { 1ll << 30, 'G' }, { 1ll << 20, 'M' }, { 1ll << 10, 'K' },
	}, durations[] = {
		{ 86400, 'd' }, { 3600, 'h' }, { 60, 'm' }, { 1, 's' },
	};

	switch (type) {
	case SETTING_BOOL:
		return buf_append_str(out, val != 0 ? "yes" : "no");
	case SETTING_SIZE:
		for (size_t i = 0; i < 4 && val != 0; i++) {
			if (val % sizes[i].mult == 0)
				return buf_printf(out, "%lld%c", (long long)(val / sizes[i].mult), sizes[i].c);
		}
		break;
	case SETTING_DURATION:
		for (size_t i = 0; i < 4 && val != 0; i++) {
			if (val % durations[i].mult == 0)
				return buf_printf(out, "%lld%c", (long long)(val / durations[i].mult),
						  durations[i].c);
		}
		break;
	case SETTING_INT:
		break;
	case SETTING_STR:
		panic("cfg_format_scalar: STR");
	}
	return buf_printf(out, "%lld", (long long)val);
}

int cfg_format_setting(const struct settings *s, const struct setting_def *def, struct buf *out)
{
	if (def->type == SETTING_STR)
		return buf_append_str(out, *setting_cstr(s, def));
	return cfg_format_scalar(def->type, setting_get_num(s, def), out);
}

int cfg_describe_range(const struct setting_def *def, struct buf *out)
{
	const char *what;

	switch (def->type) {
	case SETTING_STR:
		what = str_check_what(def, NULL);
		return buf_append_str(out, what != NULL ? what : "text");
	case SETTING_BOOL:
		return buf_append_str(out, "yes, no");
	default:
		if (cfg_format_scalar(def->type, def->min, out) < 0 || buf_append_str(out, "..") < 0)
			return -1;
		return cfg_format_scalar(def->type, def->max, out);
	}
}

/* ---- messages ----------------------------------------------------------- */

static char *vformat_at(const char *path, long line, const char *fmt, va_list ap)
	PETREL_PRINTF(3, 0);

static char *vformat_at(const char *path, long line, const char *fmt, va_list ap)
{
	struct buf b;
	int ret;

	buf_init(&b, 64 * 1024);
	if (line > 0)
		ret = buf_printf(&b, "%s:%ld: ", path, line);
	else
		ret = buf_printf(&b, "%s: ", path);
	/* Only a path of tens of kilobytes fails here; keep what fit. */
	if (ret == 0)
		(void)!buf_vprintf(&b, fmt, ap);
	return buf_steal(&b);
}

char *cfg_errorf(const char *path, long line, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = vformat_at(path, line, fmt, ap);
	va_end(ap);
	return s;
}

void cfg_warnf(cfg_warning_fn *warn, void *warn_context, const char *path, long line,
	       const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (warn == NULL)
		return;
	va_start(ap, fmt);
	s = vformat_at(path, line, fmt, ap);
	va_end(ap);
	warn(s, warn_context);
	free(s);
}

/* ---- XML reading -------------------------------------------------------- */

struct xml_state {
	const char *path;
	cfg_warning_fn *warn;
	void *warn_context;
	char *error;            /* first error, "FILE:LINE: reason" */
	bool doctype;
	long doctype_line;
};

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void)
{
	xmlInitParser();
}

static void xml_report(struct xml_state *st, const xmlError *e)
{
	char *msg, *esc;
	size_t len;

	if (e == NULL || e->level == XML_ERR_NONE)
		return;
	/* A DOCTYPE stops the parser; that stop is not worth a second report. */
	if (st->doctype)
		return;
	msg = xstrdup(e->message != NULL ? e->message : "XML error");
	len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	esc = str_escape(msg, 200);
	free(msg);
	if (e->level == XML_ERR_WARNING)
		cfg_warnf(st->warn, st->warn_context, st->path, e->line, "%s", esc);
	else if (st->error == NULL)
		st->error = cfg_errorf(st->path, e->line, "%s", esc);
	free(esc);
}

/* The parser context's own structured error hook: data is the context. */
static void xml_ctxt_error(void *data, xmlErrorPtr e)
{
	xmlParserCtxtPtr ctxt = data;

	xml_report(ctxt->_private, e);
}

/* Thread-local fallback for errors raised outside the parser's domain. */
static void xml_thread_error(void *data, xmlErrorPtr e)
{
	xml_report(data, e);
}

static void xml_generic_error(void *data, const char *fmt, ...)
{
	/* Everything reaches us structured; the unstructured copy is dropped
	 * rather than printed on stderr. */
}

/* Called at <!DOCTYPE, before the internal subset is read: no DTD, no
 * entity declarations, so no billion laughs and no external entities. */
static void xml_internal_subset(void *data, const xmlChar *name, const xmlChar *external_id,
				const xmlChar *system_id)
{
	xmlParserCtxtPtr ctxt = data;
	struct xml_state *st = ctxt->_private;

	if (!st->doctype) {
		st->doctype = true;
		st->doctype_line = ctxt->input != NULL ? ctxt->input->line : 0;
	}
	xmlStopParser(ctxt);
}

int cfg_xml_read(const char *path, const char *data, size_t len, const char *root,
		 cfg_warning_fn *warn, void *warn_context, struct _xmlDoc **doc_r, char **error_r)
{
	struct xml_state st = { .path = path, .warn = warn, .warn_context = warn_context };
	xmlParserCtxtPtr ctxt;
	xmlGenericErrorFunc old_generic;
	void *old_generic_ctx;
	xmlStructuredErrorFunc old_structured;
	void *old_structured_ctx;
	xmlDocPtr doc;
	xmlNodePtr top;
	int options = XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_BIG_LINES;

	*doc_r = NULL;
	if (len > CFG_MAX_FILE_SIZE || len > INT_MAX) {
		*error_r = cfg_errorf(path, 0, "file larger than %u bytes", CFG_MAX_FILE_SIZE);
		return -1;
	}
	pthread_once(&xml_once, xml_init);
	ctxt = xmlNewParserCtxt();
	if (ctxt == NULL)
		panic("cfg: out of memory creating an XML parser");
	ctxt->_private = &st;
	ctxt->sax->serror = xml_ctxt_error;
	ctxt->sax->internalSubset = xml_internal_subset;
	/* With libxml2 built thread-enabled these handlers are per thread. */
	old_generic = xmlGenericError;
	old_generic_ctx = xmlGenericErrorContext;
	old_structured = xmlStructuredError;
	old_structured_ctx = xmlStructuredErrorContext;
	xmlSetGenericErrorFunc(NULL, xml_generic_error);
	xmlSetStructuredErrorFunc(&st, xml_thread_error);

	doc = xmlCtxtReadMemory(ctxt, data, (int)len, path, NULL, options);

	xmlSetStructuredErrorFunc(old_structured_ctx, old_structured);
	xmlSetGenericErrorFunc(old_generic_ctx, old_generic);

	if (st.doctype) {
		free(st.error);
		st.error = cfg_errorf(path, st.doctype_line,
				      "DOCTYPE not allowed (configuration files take no DTD or entities)");
	} else if (st.error == NULL && (doc == NULL || !ctxt->wellFormed)) {
		st.error = cfg_errorf(path, ctxt->input != NULL ? ctxt->input->line : 0,
				      "not a well-formed XML document");
	}
	xmlFreeParserCtxt(ctxt);
	if (st.error != NULL) {
		xmlFreeDoc(doc);
		*error_r = st.error;
		return -1;
	}
	top = xmlDocGetRootElement(doc);
	if (top == NULL) {
		xmlFreeDoc(doc);
		*error_r = cfg_errorf(path, 0, "no root element, expected <%s>", root);
		return -1;
	}
	if (strcmp((const char *)top->name, root) != 0) {
		char *esc = str_escape((const char *)top->name, CFG_ESC_MAX);

		*error_r = cfg_errorf(path, cfg_xml_line(top), "root element is <%s>, expected <%s>",
				      esc, root);
		free(esc);
		xmlFreeDoc(doc);
		return -1;
	}
	*doc_r = doc;
	return 0;
}

long cfg_xml_line(const struct _xmlNode *node)
{
	long line = xmlGetLineNo(node);

	return line > 0 ? line : 0;
}

char *cfg_xml_text(const char *path, const struct _xmlNode *node, cfg_warning_fn *warn,
		   void *warn_context)
{
	struct buf b;
	char *raw, *trimmed, *copy;

	buf_init(&b, CFG_MAX_FILE_SIZE);
	for (const xmlNode *c = node->children; c != NULL; c = c->next) {
		if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
			if (c->content != NULL && buf_append_str(&b, (const char *)c->content) < 0)
				panic("cfg: text larger than the file");
		} else if (c->type == XML_ELEMENT_NODE) {
			char *esc = str_escape((const char *)c->name, CFG_ESC_MAX);
			char *pesc = str_escape((const char *)node->name, CFG_ESC_MAX);

			cfg_warnf(warn, warn_context, path, cfg_xml_line(c),
				  "unexpected element <%s> inside <%s> (ignored)", esc, pesc);
			free(esc);
			free(pesc);
		}
	}
	raw = buf_steal(&b);
	trimmed = str_trim(raw);
	copy = xstrdup(trimmed);
	free(raw);
	return copy;
}

void cfg_xml_check_attrs(const char *path, const struct _xmlNode *node,
			 const char *const *allowed, cfg_warning_fn *warn, void *warn_context)
{
	for (const xmlAttr *a = node->properties; a != NULL; a = a->next) {
		bool known = false;

		for (size_t i = 0; allowed != NULL && allowed[i] != NULL; i++) {
			if (strcmp((const char *)a->name, allowed[i]) == 0) {
				known = true;
				break;
			}
		}
		if (!known) {
			char *esc = str_escape((const char *)a->name, CFG_ESC_MAX);
			char *nesc = str_escape((const char *)node->name, CFG_ESC_MAX);

			cfg_warnf(warn, warn_context, path, cfg_xml_line(node),
				  "unknown attribute %s on <%s> (ignored)", esc, nesc);
			free(esc);
			free(nesc);
		}
	}
}

void cfg_xml_warn_unknown(const char *path, const struct _xmlNode *node,
			  cfg_warning_fn *warn, void *warn_context)
{
	char *esc = str_escape((const char *)node->name, CFG_ESC_MAX);

	cfg_warnf(warn, warn_context, path, cfg_xml_line(node), "unknown element <%s> (ignored)", esc);
	free(esc);
}

/* Warns about non-blank text directly inside a container element. */
static void warn_stray_text(const char *path, const xmlNode *node, cfg_warning_fn *warn,
			    void *warn_context)
{
	if (node->type != XML_TEXT_NODE || node->content == NULL)
		return;
	for (const xmlChar *p = node->content; *p != '\0'; p++) {
		if (!isspace(*p)) {
			char *esc = str_escape((const char *)node->parent->name, CFG_ESC_MAX);
			long line = cfg_xml_line(node);

			/* libxml2 numbers a text node by the line where it ends;
			 * point at the line where the text itself starts. */
			for (const xmlChar *q = p; *q != '\0'; q++) {
				if (*q == '\n' && line > 1)
					line--;
			}
			cfg_warnf(warn, warn_context, path, line,
				  "unexpected text inside <%s> (ignored)", esc);
			free(esc);
			return;
		}
	}
}

/* Returns a newly allocated attribute value, or NULL when absent. */
static char *attr_get(const xmlNode *node, const char *name)
{
	xmlChar *v = xmlGetNoNsProp(node, (const xmlChar *)name);
	char *copy;

	if (v == NULL)
		return NULL;
	copy = xstrdup(str_trim((char *)v));
	xmlFree(v);
	return copy;
}

/* ---- services ----------------------------------------------------------- */

static const struct service_info services[SERVICE_COUNT] = {
	[SERVICE_SMTP] = { "smtp", 25, SERVICE_TLS_STARTTLS },
	[SERVICE_SUBMISSION] = { "submission", 587, SERVICE_TLS_STARTTLS },
	[SERVICE_SMTPS] = { "smtps", 465, SERVICE_TLS_IMPLICIT },
	[SERVICE_POP3] = { "pop3", 110, SERVICE_TLS_STARTTLS },
	[SERVICE_POP3S] = { "pop3s", 995, SERVICE_TLS_IMPLICIT },
	[SERVICE_IMAP] = { "imap", 143, SERVICE_TLS_STARTTLS },
	[SERVICE_IMAPS] = { "imaps", 993, SERVICE_TLS_IMPLICIT },
	[SERVICE_HTTP] = { "http", 80, SERVICE_TLS_NONE },
	[SERVICE_HTTPS] = { "https", 443, SERVICE_TLS_IMPLICIT },
	[SERVICE_ADMIN] = { "admin", 44337, SERVICE_TLS_IMPLICIT },
	[SERVICE_LDAP] = { "ldap", 389, SERVICE_TLS_STARTTLS },
	[SERVICE_LDAPS] = { "ldaps", 636, SERVICE_TLS_IMPLICIT },
};

const struct service_info *service_info(enum service_id id)
{
	if ((unsigned)id >= SERVICE_COUNT)
		panic("service_info: bad id %d", (int)id);
	return &services[id];
}

int service_parse(const char *name, enum service_id *id_r)
{
	for (int i = 0; i < SERVICE_COUNT; i++) {
		if (strcmp(services[i].name, name) == 0) {
			*id_r = (enum service_id)i;
			return 0;
		}
	}
	return -1;
}

static void service_default(struct service_config *sc, enum service_id id)
{
	sc->enabled = true;
	sc->listen = xcalloc(1, sizeof(*sc->listen));
	sc->listen[0].address = xstrdup("*");
	sc->listen[0].port = services[id].default_port;
	sc->listen_count = 1;
}

static void service_clear(struct service_config *sc)
{
	for (size_t i = 0; i < sc->listen_count; i++)
		free(sc->listen[i].address);
	free(sc->listen);
	sc->listen = NULL;
	sc->listen_count = 0;
}

/* ---- relay networks ----------------------------------------------------- */

int cfg_network_parse(const char *text, struct cfg_network *net_r, const char **reason_r)
{
	char addr[INET6_ADDRSTRLEN + 1], canon[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/');
	size_t alen = slash != NULL ? (size_t)(slash - text) : strlen(text);
	unsigned max;
	int64_t prefix;

	memset(net_r, 0, sizeof(*net_r));
	if (alen == 0 || alen >= sizeof(addr)) {
		*reason_r = "not an IPv4 or IPv6 address";
		return -1;
	}
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, net_r->addr) == 1) {
		net_r->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, net_r->addr) == 1) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		net_r->family = AF_INET6;
		max = 128;
		if (memcmp(net_r->addr, mapped, 12) == 0) {
			*reason_r = "write IPv4-mapped addresses as IPv4 (10.0.0.0/8)";
			return -1;
		}
	} else {
		*reason_r = "not an IPv4 or IPv6 address";
		return -1;
	}
	if (slash == NULL) {
		prefix = max;
	} else if (str_to_i64(slash + 1, 0, max, &prefix) < 0) {
		*reason_r = max == 32 ? "prefix length must be 0..32" : "prefix length must be 0..128";
		return -1;
	}
	net_r->prefix = (unsigned)prefix;
	for (unsigned bit = net_r->prefix; bit < max; bit++) {
		if (net_r->addr[bit / 8] & (0x80u >> (bit % 8))) {
			*reason_r = "host bits are set after the prefix length (write the network address)";
			return -1;
		}
	}
	if (inet_ntop(net_r->family, net_r->addr, canon, sizeof(canon)) == NULL)
		panic("cfg_network_parse: inet_ntop failed");
	net_r->text = xasprintf("%s/%u", canon, net_r->prefix);
	return 0;
}

bool cfg_networks_contain(const struct cfg_network *nets, size_t n, const char *ip)
{
	unsigned char bin[16];
	int family;

	if (inet_pton(AF_INET, ip, bin) == 1) {
		family = AF_INET;
	} else if (inet_pton(AF_INET6, ip, bin) == 1) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		family = AF_INET6;
		if (memcmp(bin, mapped, 12) == 0) {
			memmove(bin, bin + 12, 4);
			family = AF_INET;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		const struct cfg_network *net = &nets[i];
		unsigned full = net->prefix / 8, rest = net->prefix % 8;

		if (net->family != family || memcmp(net->addr, bin, full) != 0)
			continue;
		if (rest != 0 && ((net->addr[full] ^ bin[full]) & (0xffu << (8 - rest)) & 0xffu) != 0)
			continue;
		return true;
	}
	return false;
}

static void relay_networks_clear(struct cfg *cfg)
{
	for (size_t i = 0; i < cfg->relay_network_count; i++)
		free(cfg->relay_networks[i].text);
	free(cfg->relay_networks);
	cfg->relay_networks = NULL;
	cfg->relay_network_count = 0;
}

/* ---- routes ------------------------------------------------------------- */

static const char *const route_tls_names[] = {
	[CFG_ROUTE_TLS_MAY] = "may", [CFG_ROUTE_TLS_NONE] = "none",
	[CFG_ROUTE_TLS_ENCRYPT] = "encrypt", [CFG_ROUTE_TLS_VERIFY] = "verify",
};

const char *cfg_route_tls_str(enum cfg_route_tls tls)
{
	if ((unsigned)tls >= sizeof(route_tls_names) / sizeof(route_tls_names[0]))
		return "may";
	return route_tls_names[tls];
}

int cfg_route_tls_parse(const char *s, enum cfg_route_tls *tls_r)
{
	for (size_t i = 0; i < sizeof(route_tls_names) / sizeof(route_tls_names[0]); i++) {
		if (strcmp(s, route_tls_names[i]) == 0) {
			*tls_r = (enum cfg_route_tls)i;
			return 0;
		}
	}
	return -1;
}

static void routes_clear(struct cfg *cfg)
{
	for (size_t i = 0; i < cfg->route_count; i++) {
		struct route_config *r = &cfg->routes[i];

		free(r->domain);
		free(r->host);
		free(r->auth_user);
		free(r->auth_password);
	}
	free(cfg->routes);
	cfg->routes = NULL;
	cfg->route_count = 0;
}

const struct route_config *cfg_route_find(const struct cfg *cfg, const char *domain)
{
	const struct route_config *star = NULL;

	for (size_t i = 0; i < cfg->route_count; i++) {
		if (strcasecmp(cfg->routes[i].domain, domain) == 0)
			return &cfg->routes[i];
		if (strcmp(cfg->routes[i].domain, "*") == 0)
			star = &cfg->routes[i];
	}
	return star;
}

static bool opt_str_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool routes_equal(const struct cfg *a, const struct cfg *b)
{
	if (a->route_count != b->route_count)
		return false;
	for (size_t i = 0; i < a->route_count; i++) {
		const struct route_config *x = &a->routes[i], *y = &b->routes[i];

		if (strcmp(x->domain, y->domain) != 0 || !opt_str_equal(x->host, y->host) ||
		    x->port != y->port || x->tls != y->tls ||
		    !opt_str_equal(x->auth_user, y->auth_user) ||
		    !opt_str_equal(x->auth_password, y->auth_password))
			return false;
	}
	return true;
}

/* ---- snapshot lifecycle ------------------------------------------------- */

static char *absolute_path(const char *path)
{
	char cwd[PATH_MAX];
	char *s;
	size_t len;

	if (path[0] == '/') {
		s = xstrdup(path);
	} else if (getcwd(cwd, sizeof(cwd)) == NULL) {
		s = xstrdup(path);  /* cwd gone: keep it relative rather than fail */
	} else if (strcmp(path, ".") == 0 || path[0] == '\0') {
		s = xstrdup(cwd);
	} else {
		s = xasprintf("%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
	}
	len = strlen(s);
	while (len > 1 && s[len - 1] == '/')
		s[--len] = '\0';
	return s;
}

static char *join_path(const char *dir, const char *name)
{
	if (strcmp(dir, "/") == 0)
		return xasprintf("/%s", name);
	return xasprintf("%s/%s", dir, name);
}

struct cfg *cfg_new_default(const char *config_dir)
{
	struct cfg *cfg = xcalloc(1, sizeof(*cfg));

	cfg->refcount = 1;
	cfg->config_dir = absolute_path(config_dir != NULL ? config_dir : ".");
	cfg->path = join_path(cfg->config_dir, CFG_MAILSERVER);
	for (size_t i = 0; i < cfg_settings_count; i++) {
		const struct setting_def *d = &cfg_settings[i];

		if (d->type == SETTING_STR)
			*setting_str(&cfg->s, d) = xstrdup(d->def_str);
		else
			setting_set_num(&cfg->s, d, d->def_num);
	}
	for (int i = 0; i < SERVICE_COUNT; i++)
		service_default(&cfg->services[i], (enum service_id)i);
	for (int i = 0; i < LOG_FILE_COUNT; i++) {
		cfg->logs.files[i].rotate_size = (uint64_t)cfg->s.logs_rotate_size;
		cfg->logs.files[i].rotate_interval = (uint64_t)cfg->s.logs_rotate_interval;
		cfg->logs.files[i].keep = (unsigned)cfg->s.logs_keep;
	}
	cfg->logs.debug = cfg->s.logs_debug;
	cfg->logs.foreground = false;
	return cfg;
}

struct cfg *cfg_ref(struct cfg *cfg)
{
	int old = __atomic_fetch_add(&cfg->refcount, 1, __ATOMIC_RELAXED);

	if (old <= 0)
		panic("cfg_ref: snapshot already freed (refcount %d)", old);
	return cfg;
}

static void cfg_free(struct cfg *cfg)
{
	for (size_t i = 0; i < cfg_settings_count; i++) {
		if (cfg_settings[i].type == SETTING_STR)
			free(*setting_str(&cfg->s, &cfg_settings[i]));
	}
	for (int i = 0; i < SERVICE_COUNT; i++)
		service_clear(&cfg->services[i]);
	relay_networks_clear(cfg);
	routes_clear(cfg);
	free(cfg->config_dir);
	free(cfg->path);
	free(cfg);
}

void cfg_unref(struct cfg **cfgp)
{
	struct cfg *cfg = *cfgp;
	int old;

	if (cfg == NULL)
		return;
	*cfgp = NULL;
	/* acq_rel: the last owner must see every other owner's reads done
	 * before it frees. */
	old = __atomic_fetch_sub(&cfg->refcount, 1, __ATOMIC_ACQ_REL);
	if (old <= 0)
		panic("cfg_unref: refcount %d", old);
	if (old == 1)
		cfg_free(cfg);
}

char *cfg_path(const struct cfg *cfg, const char *path)
{
	if (path[0] == '/')
		return xstrdup(path);
	return join_path(cfg->config_dir, path);
}

uint16_t cfg_listen_port(const struct cfg *cfg, const struct listen_addr *addr)
{
	int64_t port = (int64_t)addr->port + cfg->s.server_port_offset;

	/* The parser refuses enabled listeners past 65535; a disabled
	 * service's listener may be, and has no port. */
	if (port < 1 || port > 65535)
		return 0;
	return (uint16_t)port;
}

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cfg *current;

struct cfg *cfg_current(void)
{
	struct cfg *cfg;

	pthread_mutex_lock(&current_lock);
	cfg = current != NULL ? cfg_ref(current) : NULL;
	pthread_mutex_unlock(&current_lock);
	return cfg;
}

void cfg_set_current(struct cfg *cfg)
{
	struct cfg *old;

	pthread_mutex_lock(&current_lock);
	old = current;
	current = cfg;
	pthread_mutex_unlock(&current_lock);
	/* Freed outside the lock: the last unref may be slow. */
	cfg_unref(&old);
}

bool cfg_equal(const struct cfg *a, const struct cfg *b)
{
	for (size_t i = 0; i < cfg_settings_count; i++) {
		const struct setting_def *d = &cfg_settings[i];

		if (d->type == SETTING_STR) {
			if (strcmp(*setting_cstr(&a->s, d), *setting_cstr(&b->s, d)) != 0)
				return false;
		} else if (setting_get_num(&a->s, d) != setting_get_num(&b->s, d)) {
			return false;
		}
	}
	for (int i = 0; i < SERVICE_COUNT; i++) {
		const struct service_config *x = &a->services[i], *y = &b->services[i];

		if (x->enabled != y->enabled || x->listen_count != y->listen_count)
			return false;
		for (size_t j = 0; j < x->listen_count; j++) {
			if (x->listen[j].port != y->listen[j].port ||
			    strcmp(x->listen[j].address, y->listen[j].address) != 0)
				return false;
		}
	}
	for (int i = 0; i < LOG_FILE_COUNT; i++) {
		if (a->logs.files[i].rotate_size != b->logs.files[i].rotate_size ||
		    a->logs.files[i].rotate_interval != b->logs.files[i].rotate_interval ||
		    a->logs.files[i].keep != b->logs.files[i].keep)
			return false;
	}
	if (a->relay_network_count != b->relay_network_count)
		return false;
	for (size_t i = 0; i < a->relay_network_count; i++) {
		if (strcmp(a->relay_networks[i].text, b->relay_networks[i].text) != 0)
			return false;
	}
	if (!routes_equal(a, b))
		return false;
	return a->logs.debug == b->logs.debug && a->logs.foreground == b->logs.foreground;
}

/* ---- the parser --------------------------------------------------------- */

static const char *const log_names[LOG_FILE_COUNT] = {
	[LOG_DEBUG_FILE] = "debug", [LOG_ERROR_FILE] = "error", [LOG_MAIL_FILE] = "mail",
	[LOG_SECURITY_FILE] = "security", [LOG_WARNING_FILE] = "warning",
};

/* The per-log overridable settings: logs/<name>. */
static const char *const log_override_names[] = { "rotate-size", "rotate-interval", "keep" };
#define LOG_OVERRIDES 3

struct listener_ref {
	enum service_id service;
	const struct listen_addr *addr;
	long line;               /* 0: the service's default listener */
	bool any;                /* address "*" */
	int family;              /* AF_INET or AF_INET6 when !any */
	unsigned char bin[16];   /* IPv4-mapped IPv6 folded to IPv4 */
};

struct parse {
	const char *path;
	cfg_warning_fn *warn;
	void *warn_context;
	struct cfg *cfg;
	char *error;
	long setting_line[sizeof(cfg_settings) / sizeof(cfg_settings[0])];
	long section_line[16];   /* MAX_SECTIONS */
	long service_line[SERVICE_COUNT];
	long log_line[LOG_FILE_COUNT];
	bool log_set[LOG_FILE_COUNT][LOG_OVERRIDES];
	int64_t log_val[LOG_FILE_COUNT][LOG_OVERRIDES];
	/* per service and listener: the <listen> line, for messages */
	long *listen_lines[SERVICE_COUNT];
	long relay_networks_line;
};

static int parse_fail(struct parse *p, long line, const char *fmt, ...) PETREL_PRINTF(3, 4);
static int parse_fail(struct parse *p, long line, const char *fmt, ...)
{
	va_list ap;

	if (p->error == NULL) {
		va_start(ap, fmt);
		p->error = vformat_at(p->path, line, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static bool has_control_chars(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

static cfg_value_check_fn *value_check;

void cfg_set_value_check(cfg_value_check_fn *fn)
{
	value_check = fn;
}

/* Parses the value of one table setting from node into the snapshot. */
static int parse_value(struct parse *p, const struct setting_def *d, const xmlNode *node,
		       int64_t *num_r, char **str_r)
{
	long line = cfg_xml_line(node);
	char *text, *reason;
	int ret = 0;

	cfg_xml_check_attrs(p->path, node, NULL, p->warn, p->warn_context);
	text = cfg_xml_text(p->path, node, p->warn, p->warn_context);
	if (d->type == SETTING_STR) {
		bool (*valid)(const char *) = NULL;
		const char *what = str_check_what(d, &valid);

		if (text[0] == '\0') {
			ret = parse_fail(p, line, "%s: empty value", d->path);
		} else if (strlen(text) > CFG_MAX_VALUE) {
			ret = parse_fail(p, line, "%s: value longer than %d bytes", d->path, CFG_MAX_VALUE);
		} else if (has_control_chars(text)) {
			ret = parse_fail(p, line, "%s: value contains control characters", d->path);
		} else if (valid != NULL && !valid(text)) {
			char *esc = str_escape(text, CFG_ESC_MAX);

			ret = parse_fail(p, line, "%s: '%s' is not valid: must be %s", d->path, esc, what);
			free(esc);
		} else if (value_check != NULL && value_check(d->path, text, &reason) < 0) {
			ret = parse_fail(p, line, "%s: %s", d->path, reason);
			free(reason);
		} else {
			*str_r = text;
			return 0;
		}
	} else if (cfg_parse_scalar(d->type, text, d->min, d->max, num_r, &reason) < 0) {
		ret = parse_fail(p, line, "%s: %s", d->path, reason);
		free(reason);
	}
	free(text);
	return ret;
}

static int parse_setting(struct parse *p, const struct setting_def *d, const xmlNode *node)
{
	size_t idx = (size_t)(d - cfg_settings);
	long line = cfg_xml_line(node);
	int64_t num = 0;
	char *str = NULL;

	if (p->setting_line[idx] != 0)
		return parse_fail(p, line, "%s given twice (first at line %ld)", d->path,
				  p->setting_line[idx]);
	p->setting_line[idx] = line > 0 ? line : -1;
	if (parse_value(p, d, node, &num, &str) < 0)
		return -1;
	if (d->type == SETTING_STR) {
		char **field = setting_str(&p->cfg->s, d);

		free(*field);
		*field = str;
	} else {
		setting_set_num(&p->cfg->s, d, num);
	}
	return 0;
}

/* <log name="mail"><keep>30</keep>...</log> */
static int parse_log(struct parse *p, const xmlNode *node)
{
	static const char *const attrs[] = { "name", NULL };
	long line = cfg_xml_line(node);
	char *name = attr_get(node, "name");
	int which = -1;

	cfg_xml_check_attrs(p->path, node, attrs, p->warn, p->warn_context);
	if (name == NULL)
		return parse_fail(p, line, "<log> without a name attribute");
	for (int i = 0; i < LOG_FILE_COUNT; i++) {
		if (strcmp(log_names[i], name) == 0)
			which = i;
	}
	if (which < 0) {
		char *esc = str_escape(name, CFG_ESC_MAX);

		free(name);
		parse_fail(p, line, "unknown log '%s' (debug, error, mail, security or warning)", esc);
		free(esc);
		return -1;
	}
	free(name);
	if (p->log_line[which] != 0)
		return parse_fail(p, line, "<log name=\"%s\"> given twice (first at line %ld)",
				  log_names[which], p->log_line[which]);
	p->log_line[which] = line > 0 ? line : -1;
	for (const xmlNode *c = node->children; c != NULL; c = c->next) {
		int k = -1;

		warn_stray_text(p->path, c, p->warn, p->warn_context);
		if (c->type != XML_ELEMENT_NODE)
			continue;
		for (int j = 0; j < LOG_OVERRIDES; j++) {
			if (strcmp((const char *)c->name, log_override_names[j]) == 0)
				k = j;
		}
		if (k < 0) {
			cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
			continue;
		}
		{
			char path[64];
			const struct setting_def *d;
			int64_t num;
			char *str = NULL;

			snprintf(path, sizeof(path), "logs/%s", log_override_names[k]);
			d = cfg_setting_find(path);
			if (d == NULL)
				panic("cfg: %s missing from settings.def", path);
			if (p->log_set[which][k])
				return parse_fail(p, cfg_xml_line(c), "logs/log[%s]/%s given twice",
						  log_names[which], log_override_names[k]);
			if (parse_value(p, d, c, &num, &str) < 0)
				return -1;
			p->log_set[which][k] = true;
			p->log_val[which][k] = num;
		}
	}
	return 0;
}

static int parse_address(const char *address, struct listener_ref *ref)
{
	struct in6_addr a6;
	struct in_addr a4;

	memset(ref->bin, 0, sizeof(ref->bin));
	ref->any = false;
	if (strcmp(address, "*") == 0) {
		ref->any = true;
		return 0;
	}
	if (inet_pton(AF_INET, address, &a4) == 1) {
		ref->family = AF_INET;
		memcpy(ref->bin, &a4, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, address, &a6) == 1) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		if (memcmp(a6.s6_addr, mapped, 12) == 0) {
			ref->family = AF_INET;
			memcpy(ref->bin, a6.s6_addr + 12, 4);
		} else {
			ref->family = AF_INET6;
			memcpy(ref->bin, a6.s6_addr, 16);
		}
		return 0;
	}
	return -1;
}

static int parse_listen(struct parse *p, enum service_id id, const xmlNode *node,
			struct listen_addr *la)
{
	static const char *const attrs[] = { "address", "port", NULL };
	long line = cfg_xml_line(node);
	char *address = attr_get(node, "address");
	char *port = attr_get(node, "port");
	struct listener_ref ref;
	int64_t v;
	int ret = 0;

	cfg_xml_check_attrs(p->path, node, attrs, p->warn, p->warn_context);
	if (node->children != NULL) {
		for (const xmlNode *c = node->children; c != NULL; c = c->next) {
			if (c->type == XML_ELEMENT_NODE)
				cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
			warn_stray_text(p->path, c, p->warn, p->warn_context);
		}
	}
	if (address == NULL)
		address = xstrdup("*");
	if (parse_address(address, &ref) < 0) {
		char *esc = str_escape(address, CFG_ESC_MAX);

		ret = parse_fail(p, line,
				 "service %s: listen address '%s' is not * or an IPv4 or IPv6 address",
				 services[id].name, esc);
		free(esc);
		goto out;
	}
	if (port == NULL) {
		v = services[id].default_port;
	} else if (str_to_i64(port, 1, 65535, &v) < 0) {
		char *esc = str_escape(port, CFG_ESC_MAX);

		ret = parse_fail(p, line, "service %s: port %s out of range 1..65535",
				 services[id].name, esc);
		free(esc);
		goto out;
	}
	la->address = address;
	la->port = (uint16_t)v;
	address = NULL;
out:
	free(address);
	free(port);
	return ret;
}

static int parse_service(struct parse *p, const xmlNode *node)
{
	static const char *const attrs[] = { "name", "enabled", NULL };
	long line = cfg_xml_line(node);
	char *name = attr_get(node, "name");
	char *enabled = attr_get(node, "enabled");
	struct service_config *sc;
	enum service_id id;
	size_t n = 0;
	int ret = -1;

	cfg_xml_check_attrs(p->path, node, attrs, p->warn, p->warn_context);
	if (name == NULL) {
		parse_fail(p, line, "<service> without a name attribute");
		goto out;
	}
	if (service_parse(name, &id) < 0) {
		char *esc = str_escape(name, CFG_ESC_MAX);

		parse_fail(p, line, "unknown service '%s'", esc);
		free(esc);
		goto out;
	}
	if (p->service_line[id] != 0) {
		parse_fail(p, line, "service %s given twice (first at line %ld)", name,
			   p->service_line[id]);
		goto out;
	}
	p->service_line[id] = line > 0 ? line : -1;
	sc = &p->cfg->services[id];
	if (enabled != NULL) {
		bool b;

		if (str_to_bool(enabled, &b) < 0) {
			char *esc = str_escape(enabled, CFG_ESC_MAX);

			parse_fail(p, line, "service %s: enabled '%s' is not yes or no", name, esc);
			free(esc);
			goto out;
		}
		sc->enabled = b;
	}
	for (const xmlNode *c = node->children; c != NULL; c = c->next) {
		warn_stray_text(p->path, c, p->warn, p->warn_context);
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (strcmp((const char *)c->name, "listen") != 0) {
			cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
			continue;
		}
		n++;
	}
	if (n > CFG_MAX_LISTENERS) {
		parse_fail(p, line, "service %s: more than %d listeners", name, CFG_MAX_LISTENERS);
		goto out;
	}
	if (n > 0) {
		struct listen_addr *list = xcalloc(n, sizeof(*list));
		long *lines = xcalloc(n, sizeof(*lines));
		size_t i = 0;

		for (const xmlNode *c = node->children; c != NULL; c = c->next) {
			if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "listen") != 0)
				continue;
			lines[i] = cfg_xml_line(c);
			if (parse_listen(p, id, c, &list[i]) < 0) {
				for (size_t j = 0; j < i; j++)
					free(list[j].address);
				free(list);
				free(lines);
				goto out;
			}
			i++;
		}
		service_clear(sc);
		sc->listen = list;
		sc->listen_count = n;
		p->listen_lines[id] = lines;
	}
	ret = 0;
out:
	free(name);
	free(enabled);
	return ret;
}

static void format_endpoint(char *out, size_t size, const struct listen_addr *la, uint16_t port)
{
	if (strchr(la->address, ':') != NULL)
		snprintf(out, size, "[%s]:%u", la->address, (unsigned)port);
	else
		snprintf(out, size, "%s:%u", la->address, (unsigned)port);
}

static bool overlaps(const struct listener_ref *a, const struct listener_ref *b)
{
	if (a->any || b->any)
		return true;
	if (a->family != b->family)
		return false;
	return memcmp(a->bin, b->bin, a->family == AF_INET ? 4 : 16) == 0;
}

/* Checks the effective ports and that no two enabled listeners take the
 * same address and port: binding would fail at start, and better here with
 * a line number than as EADDRINUSE.  "*" binds every address, so it
 * collides with any address on the same port. */
static int check_listeners(struct parse *p)
{
	struct listener_ref *refs = xcalloc(SERVICE_COUNT * CFG_MAX_LISTENERS, sizeof(*refs));
	size_t n = 0;
	int ret = 0;
	int64_t offset = p->cfg->s.server_port_offset;
	long offset_line = p->setting_line[cfg_setting_find("server/port-offset") - cfg_settings];

	for (int id = 0; id < SERVICE_COUNT; id++) {
		const struct service_config *sc = &p->cfg->services[id];

		if (!sc->enabled)
			continue;
		for (size_t i = 0; i < sc->listen_count; i++) {
			struct listener_ref *r = &refs[n++];
			long line = p->listen_lines[id] != NULL ? p->listen_lines[id][i] : 0;

			r->service = (enum service_id)id;
			r->addr = &sc->listen[i];
			r->line = line;
			if (parse_address(sc->listen[i].address, r) < 0)
				panic("cfg: listener address not validated");
			if ((int64_t)sc->listen[i].port + offset > 65535) {
				long at = line != 0 ? line
					: p->service_line[id] > 0 ? p->service_line[id]
					: offset_line > 0 ? offset_line : 0;

				ret = parse_fail(p, at,
						 "service %s: port %u + port-offset %lld = %lld exceeds 65535",
						 services[id].name, (unsigned)sc->listen[i].port,
						 (long long)offset,
						 (long long)(sc->listen[i].port + offset));
				goto out;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < i; j++) {
			const struct listener_ref *a = &refs[j], *b = &refs[i];
			char ea[80], eb[80], where[64];
			const struct listener_ref *at;
			long line;

			if (a->addr->port != b->addr->port || !overlaps(a, b))
				continue;
			/* Report at the later configured line, naming the other. */
			at = b->line != 0 ? b : a;
			const struct listener_ref *other = at == b ? a : b;

			format_endpoint(ea, sizeof(ea), at->addr, cfg_listen_port(p->cfg, at->addr));
			format_endpoint(eb, sizeof(eb), other->addr, cfg_listen_port(p->cfg, other->addr));
			if (other->line != 0)
				snprintf(where, sizeof(where), "line %ld", other->line);
			else
				snprintf(where, sizeof(where), "its default listener");
			line = at->line != 0 ? at->line
				: p->service_line[at->service] > 0 ? p->service_line[at->service] : 0;
			ret = parse_fail(p, line,
					 "listener %s of service %s conflicts with %s of service %s (%s)",
					 ea, services[at->service].name, eb,
					 services[other->service].name, where);
			goto out;
		}
	}
out:
	free(refs);
	return ret;
}

/* <smtp><relay-networks><network>10.0.0.0/8</network>...</relay-networks> */
static int parse_relay_networks(struct parse *p, const xmlNode *node)
{
	long line = cfg_xml_line(node);
	size_t n = 0, i = 0;
	struct cfg_network *nets;

	cfg_xml_check_attrs(p->path, node, NULL, p->warn, p->warn_context);
	if (p->relay_networks_line != 0)
		return parse_fail(p, line, "<relay-networks> given twice (first at line %ld)",
				  p->relay_networks_line);
	p->relay_networks_line = line > 0 ? line : -1;
	for (const xmlNode *c = node->children; c != NULL; c = c->next) {
		warn_stray_text(p->path, c, p->warn, p->warn_context);
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (strcmp((const char *)c->name, "network") != 0) {
			cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
			continue;
		}
		n++;
	}
	if (n > CFG_MAX_NETWORKS)
		return parse_fail(p, line, "<relay-networks>: more than %d networks", CFG_MAX_NETWORKS);
	nets = n > 0 ? xcalloc(n, sizeof(*nets)) : NULL;
	for (const xmlNode *c = node->children; c != NULL; c = c->next) {
		const char *reason;
		char *text;

		if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "network") != 0)
			continue;
		cfg_xml_check_attrs(p->path, c, NULL, p->warn, p->warn_context);
		text = cfg_xml_text(p->path, c, p->warn, p->warn_context);
		if (cfg_network_parse(text, &nets[i], &reason) < 0) {
			char *esc = str_escape(text, CFG_ESC_MAX);

			parse_fail(p, cfg_xml_line(c), "smtp/relay-networks: '%s': %s", esc, reason);
			free(esc);
			free(text);
			for (size_t j = 0; j < i; j++)
				free(nets[j].text);
			free(nets);
			return -1;
		}
		free(text);
		i++;
	}
	p->cfg->relay_networks = nets;
	p->cfg->relay_network_count = n;
	return 0;
}

/* "[192.0.2.1]" / "[IPv6:2001:db8::1]" / "[2001:db8::1]", or a host name. */
static bool valid_route_host(const char *h)
{
	size_t len = strlen(h);

	if (len > 2 && h[0] == '[' && h[len - 1] == ']') {
		char tmp[INET6_ADDRSTRLEN + 8];
		const char *a = h + 1;
		size_t alen = len - 2;
		unsigned char bin[16];

		if (alen > 5 && strncasecmp(a, "IPv6:", 5) == 0) {
			a += 5;
			alen -= 5;
		}
		if (alen >= sizeof(tmp))
			return false;
		memcpy(tmp, a, alen);
		tmp[alen] = '\0';
		return inet_pton(AF_INET, tmp, bin) == 1 || inet_pton(AF_INET6, tmp, bin) == 1;
	}
	return cfg_valid_hostname(h);
}

/* <route domain="example.net" host="relay.example.com" port="587" tls="verify"
 *        auth-user="u" auth-password="p"/> */
static int parse_route(struct parse *p, const xmlNode *node)
{
	static const char *const attrs[] = { "domain", "host", "port", "tls", "auth-user",
					     "auth-password", NULL };
	long line = cfg_xml_line(node);
	struct route_config r = { 0 };
	char *port = attr_get(node, "port"), *tls = attr_get(node, "tls");
	int64_t v;
	int ret = -1;

	cfg_xml_check_attrs(p->path, node, attrs, p->warn, p->warn_context);
	r.domain = attr_get(node, "domain");
	r.host = attr_get(node, "host");
	r.auth_user = attr_get(node, "auth-user");
	r.auth_password = attr_get(node, "auth-password");
	if (r.domain == NULL) {
		parse_fail(p, line, "<route> without a domain attribute");
		goto out;
	}
	for (char *c = r.domain; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	if (strcmp(r.domain, "*") != 0 && !cfg_valid_hostname(r.domain)) {
		char *esc = str_escape(r.domain, CFG_ESC_MAX);

		parse_fail(p, line, "route: domain '%s' is not * or a domain name", esc);
		free(esc);
		goto out;
	}
	if (r.host != NULL && !valid_route_host(r.host)) {
		char *esc = str_escape(r.host, CFG_ESC_MAX);

		parse_fail(p, line, "route %s: host '%s' is not a host name or [address]", r.domain, esc);
		free(esc);
		goto out;
	}
	if (port != NULL) {
		if (str_to_i64(port, 1, 65535, &v) < 0) {
			char *esc = str_escape(port, CFG_ESC_MAX);

			parse_fail(p, line, "route %s: port %s out of range 1..65535", r.domain, esc);
			free(esc);
			goto out;
		}
		r.port = (uint16_t)v;
	}
	if (tls != NULL && cfg_route_tls_parse(tls, &r.tls) < 0) {
		char *esc = str_escape(tls, CFG_ESC_MAX);

		parse_fail(p, line, "route %s: tls '%s' is not may, none, encrypt or verify",
			   r.domain, esc);
		free(esc);
		goto out;
	}
	if ((r.auth_user == NULL) != (r.auth_password == NULL)) {
		parse_fail(p, line, "route %s: auth-user and auth-password go together", r.domain);
		goto out;
	}
	if ((r.auth_user != NULL && (r.auth_user[0] == '\0' || has_control_chars(r.auth_user) ||
				     strlen(r.auth_user) > CFG_MAX_VALUE)) ||
	    (r.auth_password != NULL && (has_control_chars(r.auth_password) ||
					 strlen(r.auth_password) > CFG_MAX_VALUE))) {
		parse_fail(p, line, "route %s: invalid auth-user or auth-password", r.domain);
		goto out;
	}
	if (r.auth_user != NULL && r.host == NULL) {
		parse_fail(p, line, "route %s: auth-user needs a host (a smart host)", r.domain);
		goto out;
	}
	for (size_t i = 0; i < p->cfg->route_count; i++) {
		if (strcmp(p->cfg->routes[i].domain, r.domain) == 0) {
			parse_fail(p, line, "route for %s given twice", r.domain);
			goto out;
		}
	}
	if (p->cfg->route_count >= CFG_MAX_ROUTES) {
		parse_fail(p, line, "more than %d routes", CFG_MAX_ROUTES);
		goto out;
	}
	p->cfg->routes = xreallocarray(p->cfg->routes, p->cfg->route_count + 1,
				       sizeof(*p->cfg->routes));
	p->cfg->routes[p->cfg->route_count++] = r;
	memset(&r, 0, sizeof(r));
	ret = 0;
out:
	free(r.domain);
	free(r.host);
	free(r.auth_user);
	free(r.auth_password);
	free(port);
	free(tls);
	return ret;
}

static int parse_section(struct parse *p, const xmlNode *section, const char *name)
{
	char path[128];

	cfg_xml_check_attrs(p->path, section, NULL, p->warn, p->warn_context);
	for (const xmlNode *c = section->children; c != NULL; c = c->next) {
		const struct setting_def *d;
		int n;

		warn_stray_text(p->path, c, p->warn, p->warn_context);
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (strcmp(name, "services") == 0) {
			if (strcmp((const char *)c->name, "service") != 0) {
				cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
				continue;
			}
			if (parse_service(p, c) < 0)
				return -1;
			continue;
		}
		if (strcmp(name, "routes") == 0) {
			if (strcmp((const char *)c->name, "route") != 0) {
				cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
				continue;
			}
			if (parse_route(p, c) < 0)
				return -1;
			continue;
		}
		if (strcmp(name, "logs") == 0 && strcmp((const char *)c->name, "log") == 0) {
			if (parse_log(p, c) < 0)
				return -1;
			continue;
		}
		if (strcmp(name, "smtp") == 0 &&
		    strcmp((const char *)c->name, "relay-networks") == 0) {
			if (parse_relay_networks(p, c) < 0)
				return -1;
			continue;
		}
		n = snprintf(path, sizeof(path), "%s/%s", name, (const char *)c->name);
		d = n > 0 && (size_t)n < sizeof(path) ? cfg_setting_find(path) : NULL;
		if (d == NULL) {
			cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
			continue;
		}
		if (parse_setting(p, d, c) < 0)
			return -1;
	}
	return 0;
}

/* Sections are the first path components of the table (whose rows are
 * grouped by section, see settings.def), numbered in table order, plus
 * <services>.  Returns the number, or -1 for an unknown section. */
#define MAX_SECTIONS 16
#define SECTION_SERVICES (MAX_SECTIONS - 1)
#define SECTION_ROUTES (MAX_SECTIONS - 2)
static int section_index(const char *name)
{
	size_t len = strlen(name);
	int idx = 0;

	if (strcmp(name, "services") == 0)
		return SECTION_SERVICES;
	if (strcmp(name, "routes") == 0)
		return SECTION_ROUTES;
	for (size_t i = 0; i < cfg_settings_count; i++) {
		const char *path = cfg_settings[i].path;
		size_t plen = strcspn(path, "/");

		if (i > 0 && strncmp(cfg_settings[i - 1].path, path, plen + 1) == 0)
			continue;  /* same section as the row before */
		if (plen == len && strncmp(path, name, len) == 0)
			return idx;
		if (++idx >= SECTION_ROUTES)
			panic("cfg: more than %d sections in settings.def", SECTION_ROUTES - 1);
	}
	return -1;
}

static void apply_logs(struct parse *p)
{
	struct cfg *cfg = p->cfg;

	for (int i = 0; i < LOG_FILE_COUNT; i++) {
		struct log_settings *ls = &cfg->logs.files[i];

		ls->rotate_size = (uint64_t)(p->log_set[i][0] ? p->log_val[i][0] : cfg->s.logs_rotate_size);
		ls->rotate_interval =
			(uint64_t)(p->log_set[i][1] ? p->log_val[i][1] : cfg->s.logs_rotate_interval);
		ls->keep = (unsigned)(p->log_set[i][2] ? p->log_val[i][2] : cfg->s.logs_keep);
	}
	cfg->logs.debug = cfg->s.logs_debug;
	cfg->logs.foreground = false;
}

int cfg_parse(const char *path, const char *config_dir, const char *data, size_t len,
	      cfg_warning_fn *warn, void *warn_context, struct cfg **cfg_r, char **error_r)
{
	struct parse p;
	xmlDocPtr doc = NULL;
	const xmlNode *root;
	int ret = -1;

	*cfg_r = NULL;
	memset(&p, 0, sizeof(p));
	p.path = path;
	p.warn = warn;
	p.warn_context = warn_context;
	if (cfg_xml_read(path, data, len, "petrel", warn, warn_context, &doc, error_r) < 0)
		return -1;
	p.cfg = cfg_new_default(config_dir);
	free(p.cfg->path);
	p.cfg->path = absolute_path(path);
	root = xmlDocGetRootElement(doc);
	cfg_xml_check_attrs(path, root, NULL, warn, warn_context);
	for (const xmlNode *c = root->children; c != NULL; c = c->next) {
		int idx;

		warn_stray_text(path, c, warn, warn_context);
		if (c->type != XML_ELEMENT_NODE)
			continue;
		idx = section_index((const char *)c->name);
		if (idx < 0) {
			cfg_xml_warn_unknown(path, c, warn, warn_context);
			continue;
		}
		if (p.section_line[idx] != 0) {
			parse_fail(&p, cfg_xml_line(c), "<%s> given twice (first at line %ld)",
				   (const char *)c->name, p.section_line[idx]);
			goto out;
		}
		p.section_line[idx] = cfg_xml_line(c) > 0 ? cfg_xml_line(c) : -1;
		if (parse_section(&p, c, (const char *)c->name) < 0)
			goto out;
	}
	if (check_listeners(&p) < 0)
		goto out;
	apply_logs(&p);
	ret = 0;
out:
	for (int i = 0; i < SERVICE_COUNT; i++)
		free(p.listen_lines[i]);
	xmlFreeDoc(doc);
	if (ret < 0) {
		cfg_unref(&p.cfg);
		*error_r = p.error != NULL ? p.error : cfg_errorf(path, 0, "invalid configuration");
		return -1;
	}
	*cfg_r = p.cfg;
	return 0;
}

int cfg_load(const char *config_dir, cfg_warning_fn *warn, void *warn_context,
	     struct cfg **cfg_r, char **error_r)
{
	char *dir, *path, *data;
	size_t len;
	int ret;

	*cfg_r = NULL;
	dir = realpath(config_dir, NULL);
	if (dir == NULL) {
		*error_r = xasprintf("%s: cannot open config directory: %s", config_dir, strerror(errno));
		return -1;
	}
	path = join_path(dir, CFG_MAILSERVER);
	if (fileio_read_all(path, CFG_MAX_FILE_SIZE, &data, &len) < 0) {
		*error_r = errno == EFBIG
			? xasprintf("%s: file larger than %u bytes", path, CFG_MAX_FILE_SIZE)
			: xasprintf("%s: cannot read: %s", path, strerror(errno));
		free(path);
		free(dir);
		return -1;
	}
	ret = cfg_parse(path, dir, data, len, warn, warn_context, cfg_r, error_r);
	free(data);
	free(path);
	free(dir);
	return ret;
}
