/*
 * mailserver.cfg: the engine's settings, parsed once into an immutable,
 * reference-counted snapshot (struct cfg).
 *
 * Scalar settings come from the table in settings.def; services and their
 * listeners, and the per-log overrides, are parsed by hand.  A reload
 * parses a new snapshot and swaps it in; sessions keep the snapshot they
 * started with (cfg_ref) until they end.
 *
 * File format (see docs/configuration.md):
 *
 *   <?xml version="1.0" encoding="UTF-8"?>
 *   <petrel>
 *     <server><hostname>mail.example.com</hostname>...</server>
 *     <limits>...</limits>
 *     <tls>...</tls>
 *     <logs><rotate-size>100M</rotate-size>
 *           <log name="mail"><keep>30</keep></log></logs>
 *     <services>
 *       <service name="smtp" enabled="yes">
 *         <listen address="*" port="25"/>
 *       </service>
 *     </services>
 *   </petrel>
 *
 * Errors are "FILE:LINE: reason".  Unknown elements are warnings, not
 * errors, so that a file written by a newer version still loads.
 */
#ifndef PETREL_CFG_H
#define PETREL_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/xmalloc.h"

#define CFG_MAILSERVER "mailserver.cfg"
#define CFG_USERS "users.cfg"
/* Largest config file we read; far above any real one. */
#define CFG_MAX_FILE_SIZE (64u * 1024 * 1024)

enum setting_type { SETTING_STR, SETTING_INT, SETTING_BOOL, SETTING_SIZE, SETTING_DURATION };

struct settings {
#define SETTING_FIELD_STR(f) char *f;
#define SETTING_FIELD_INT(f) int64_t f;
#define SETTING_FIELD_BOOL(f) bool f;
#define SETTING_FIELD_SIZE(f) int64_t f;
#define SETTING_FIELD_DURATION(f) int64_t f;
#define SETTING(type, field, path, def, min, max, doc) SETTING_FIELD_##type(field)
#include "core/settings.def"
#undef SETTING
};

/* The services of the ports table.  Their TLS mode is fixed by the kind. */
enum service_id {
	SERVICE_SMTP, SERVICE_SUBMISSION, SERVICE_SMTPS,
	SERVICE_POP3, SERVICE_POP3S, SERVICE_IMAP, SERVICE_IMAPS,
	SERVICE_HTTP, SERVICE_HTTPS, SERVICE_ADMIN, SERVICE_LDAP, SERVICE_LDAPS,
	SERVICE_COUNT
};

enum service_tls { SERVICE_TLS_NONE, SERVICE_TLS_STARTTLS, SERVICE_TLS_IMPLICIT };

struct service_info {
	const char *name;         /* "smtp", "imaps", ... as in the config file */
	uint16_t default_port;    /* before the port offset */
	enum service_tls tls;
};

/* Static facts about a service; never NULL for a valid id. */
const struct service_info *service_info(enum service_id id);
int service_parse(const char *name, enum service_id *id_r);

struct listen_addr {
	char *address;            /* "*" (all, IPv6 and IPv4), or a literal IPv4/IPv6 address */
	uint16_t port;            /* as configured, before the port offset */
};

struct service_config {
	bool enabled;
	struct listen_addr *listen;   /* owned array */
	size_t listen_count;          /* >= 1 */
};

/* One network of <smtp><relay-networks>: clients inside may relay
 * (docs/smtp.md).  Parsed from "10.0.0.0/8", "2001:db8::/32" or a bare
 * address (a /32 or /128); host bits must be zero. */
struct cfg_network {
	int family;                   /* AF_INET or AF_INET6 */
	unsigned char addr[16];       /* network address (4 bytes used for IPv4) */
	unsigned prefix;              /* 0..32 or 0..128 */
	char *text;                   /* canonical text, "10.0.0.0/8" */
};

/* Most <network> entries in <relay-networks>. */
#define CFG_MAX_NETWORKS 10000

/* <routes>: per-destination delivery policy for the outbound SMTP client
 * (docs/queue.md).  A route without host only sets the TLS policy for
 * MX delivery to that domain; with host it is a static route or a smart
 * host (domain "*": every domain without a route of its own). */
enum cfg_route_tls {
	CFG_ROUTE_TLS_MAY,        /* STARTTLS when offered, plaintext otherwise (default) */
	CFG_ROUTE_TLS_NONE,       /* never STARTTLS */
	CFG_ROUTE_TLS_ENCRYPT,    /* TLS required, any certificate */
	CFG_ROUTE_TLS_VERIFY,     /* TLS required with a certificate valid for the host name */
};
/* Most <route> elements. */
#define CFG_MAX_ROUTES 10000

struct route_config {
	char *domain;             /* lower case, or "*" */
	char *host;               /* host name or "[address]"; NULL: the domain's MX */
	uint16_t port;            /* 0: queue/smtp-port */
	enum cfg_route_tls tls;
	char *auth_user;          /* NULL: no AUTH */
	char *auth_password;
};

/* "may", "none", "encrypt", "verify"; parse returns 0 or -1. */
const char *cfg_route_tls_str(enum cfg_route_tls tls);
int cfg_route_tls_parse(const char *s, enum cfg_route_tls *tls_r);

struct cfg {
	int refcount;                 /* atomic; see cfg_ref */
	char *config_dir;             /* absolute */
	char *path;                   /* absolute path of mailserver.cfg */
	struct settings s;
	struct service_config services[SERVICE_COUNT];
	struct log_config logs;       /* per-log rotation with overrides applied */
	struct cfg_network *relay_networks;   /* <smtp><relay-networks>; owned array */
	size_t relay_network_count;
	struct route_config *routes;  /* <routes>, in file order */
	size_t route_count;
};

/* The route for a destination domain: its own (case-insensitive), else
 * the "*" route, else NULL (plain MX delivery).  Borrowed from cfg. */
const struct route_config *cfg_route_find(const struct cfg *cfg, const char *domain);

/* Parses one network ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7").
 * Returns 0 and fills *net_r (text newly allocated; free it), or -1 with
 * *reason_r (static) for a malformed one or one with host bits set. */
int cfg_network_parse(const char *text, struct cfg_network *net_r, const char **reason_r)
	PETREL_MUST_CHECK;
/* True when ip (text form as net.h writes peer_ip; an IPv4-mapped IPv6
 * address counts as IPv4) lies in one of nets[0..n). */
bool cfg_networks_contain(const struct cfg_network *nets, size_t n, const char *ip);

/* Called for each warning (unknown element, deprecated value): "FILE:LINE: text". */
typedef void cfg_warning_fn(const char *warning, void *context);

/* A check of a text setting that lives outside core (the SASL mechanism
 * names are src/auth's), registered at startup by petreld and petrelctl
 * with cfg_set_value_check.  Called for every text setting as it is
 * parsed; returns 0, or -1 with *reason_r (caller frees) which the parser
 * reports as "FILE:LINE: path: reason".  NULL: no extra check. */
typedef int cfg_value_check_fn(const char *path, const char *value, char **reason_r);
void cfg_set_value_check(cfg_value_check_fn *fn);

/* Parses config_dir/mailserver.cfg.  A missing file is an error.  Returns 0
 * and a new snapshot (refcount 1) in *cfg_r, or -1 and *error_r, a newly
 * allocated "FILE:LINE: reason" string the caller frees. */
int cfg_load(const char *config_dir, cfg_warning_fn *warn, void *warn_context,
	     struct cfg **cfg_r, char **error_r) PETREL_MUST_CHECK;

/* Parses mailserver.cfg content from memory (path used in messages only);
 * config_dir is used to resolve relative paths.  Same contract as cfg_load.
 * This is the pure parser that the unit tests and the fuzzer call. */
int cfg_parse(const char *path, const char *config_dir, const char *data, size_t len,
	      cfg_warning_fn *warn, void *warn_context, struct cfg **cfg_r, char **error_r)
	PETREL_MUST_CHECK;

/* A snapshot with every setting at its default (config_dir as given). */
struct cfg *cfg_new_default(const char *config_dir);

struct cfg *cfg_ref(struct cfg *cfg);
void cfg_unref(struct cfg **cfg);

/* Resolves a setting path against the config dir: absolute paths are
 * returned as they are.  Returns a newly allocated string. */
char *cfg_path(const struct cfg *cfg, const char *path);

/* The effective port of a listener (port + offset). */
uint16_t cfg_listen_port(const struct cfg *cfg, const struct listen_addr *addr);

/* Writes a complete mailserver.cfg for a new installation, atomically:
 * every section present with its main settings, comments pointing to
 * docs/configuration.md.  Returns 0 or -1 with *error_r (caller frees). */
struct cfg_setup {
	const char *hostname;
	const char *store;
	const char *user;
	int port_offset;
};
int cfg_write_new(const char *path, const struct cfg_setup *setup, char **error_r) PETREL_MUST_CHECK;

/* Writes the reference of every setting (markdown) to fd: used to generate
 * docs/configuration.md so it cannot drift from the table. */
void cfg_dump_reference(int fd);

/* Writes cfg as a complete, commented mailserver.cfg (the format
 * cfg_write_new produces) and replaces path atomically (mode 0640).  The
 * text is parsed back before it is written; a snapshot that would not load
 * the same is refused.  Returns 0 or -1 with *error_r (caller frees). */
int cfg_write(const struct cfg *cfg, const char *path, char **error_r) PETREL_MUST_CHECK;

/* The text cfg_write writes; newly allocated, caller frees. */
char *cfg_format(const struct cfg *cfg);

/* True when both snapshots hold the same settings, services and logs
 * (config_dir and path are not compared).  Reload uses it to say
 * "nothing changed"; the tests use it for round trips. */
bool cfg_equal(const struct cfg *a, const struct cfg *b);

/* The process-wide current snapshot.  cfg_current() returns a new reference
 * the caller must cfg_unref(); cfg_set_current() takes over the caller's
 * reference and drops the previous snapshot's. */
struct cfg *cfg_current(void);
void cfg_set_current(struct cfg *cfg);

/*
 * The settings table, for code that lists or edits settings generically
 * (the reference generator, the admin API).  One row per SETTING() line of
 * settings.def, in file order.
 */
struct setting_def {
	enum setting_type type;
	const char *path;         /* "server/hostname": element path below <petrel> */
	size_t offset;            /* of the field in struct settings */
	const char *def_str;      /* STR default; NULL for the other types */
	int64_t def_num;          /* default of INT, BOOL (0/1), SIZE, DURATION */
	int64_t min, max;         /* inclusive bounds (not used for STR) */
	const char *doc;
};

extern const struct setting_def cfg_settings[];
extern const size_t cfg_settings_count;

/* The row for "section/name", or NULL. */
const struct setting_def *cfg_setting_find(const char *path);

/* Parses the text of an INT, BOOL, SIZE or DURATION value (already
 * trimmed) and checks it against [min, max].  SIZE takes an optional
 * K/M/G/T suffix (1024-based), DURATION an optional s/m/h/d suffix; both
 * are checked for overflow.  Returns 0, or -1 with *reason_r (caller frees)
 * such as "value 70000 out of range 0..60000". */
int cfg_parse_scalar(enum setting_type type, const char *text, int64_t min, int64_t max,
		     int64_t *val_r, char **reason_r) PETREL_MUST_CHECK;

/* Appends a value in the file's syntax, as compact as exact: SIZE 104857600
 * as "100M", DURATION 86400 as "1d", BOOL as "yes"/"no". */
int cfg_format_scalar(enum setting_type type, int64_t val, struct buf *out) PETREL_MUST_CHECK;

/* Appends the current value of a setting of s in the file's syntax. */
int cfg_format_setting(const struct settings *s, const struct setting_def *def,
		       struct buf *out) PETREL_MUST_CHECK;

/* Appends what values a setting takes ("0..60000", "a host name", ...),
 * as in the reference. */
int cfg_describe_range(const struct setting_def *def, struct buf *out) PETREL_MUST_CHECK;

/* A valid DNS host name: ASCII letters, digits and hyphens in dot-separated
 * labels of 1..63 characters, not starting or ending with a hyphen, 253
 * characters at most, no trailing dot (A-labels for international names). */
bool cfg_valid_hostname(const char *name);

/*
 * Reading XML configuration files safely; shared with users.cfg
 * (src/directory).  Include <libxml/tree.h> to use the nodes.
 *
 * cfg_xml_read parses from memory with no network access, no DTD loading
 * and no entity expansion; a document with a DOCTYPE is refused outright
 * (entity bombs, external entities).  Parser errors are captured per call
 * through the parser context, never through process-wide handlers, so it is
 * safe while other threads parse.  The root element must be named root.
 * Returns 0 and the document in *doc_r (free with xmlFreeDoc), or -1 and
 * *error_r "FILE:LINE: reason" (caller frees).  libxml2 warnings go to warn.
 */
struct _xmlDoc;
struct _xmlNode;
int cfg_xml_read(const char *path, const char *data, size_t len, const char *root,
		 cfg_warning_fn *warn, void *warn_context, struct _xmlDoc **doc_r,
		 char **error_r) PETREL_MUST_CHECK;

/* Line of a node in its file (0 when unknown). */
long cfg_xml_line(const struct _xmlNode *node);

/* The text inside an element (text and CDATA children joined, trimmed);
 * child elements are reported to warn as ignored.  Newly allocated. */
char *cfg_xml_text(const char *path, const struct _xmlNode *node, cfg_warning_fn *warn,
		   void *warn_context);

/* Warns about each attribute of node not in the NULL-terminated list. */
void cfg_xml_check_attrs(const char *path, const struct _xmlNode *node,
			 const char *const *allowed, cfg_warning_fn *warn, void *warn_context);

/* Warns "FILE:LINE: unknown element <x> (ignored)", x escaped. */
void cfg_xml_warn_unknown(const char *path, const struct _xmlNode *node,
			  cfg_warning_fn *warn, void *warn_context);

/* Formats a warning "FILE:LINE: text" and passes it to warn (if not NULL). */
void cfg_warnf(cfg_warning_fn *warn, void *warn_context, const char *path, long line,
	       const char *fmt, ...) PETREL_PRINTF(5, 6);

/* Returns a newly allocated "FILE:LINE: text" ("FILE: text" when line is 0). */
char *cfg_errorf(const char *path, long line, const char *fmt, ...) PETREL_PRINTF(3, 4);

/* Appends s with & < > " ' escaped for XML text and attribute values. */
int cfg_xml_escape_append(struct buf *out, const char *s) PETREL_MUST_CHECK;

/* Appends an XML comment holding text, word-wrapped at about width columns,
 * each line indented by indent spaces ("--" cannot occur in a comment and
 * is broken up). */
int cfg_xml_comment_append(struct buf *out, const char *text, unsigned indent,
			   unsigned width) PETREL_MUST_CHECK;

#endif
