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

struct cfg {
	int refcount;                 /* atomic; see cfg_ref */
	char *config_dir;             /* absolute */
	char *path;                   /* absolute path of mailserver.cfg */
	struct settings s;
	struct service_config services[SERVICE_COUNT];
	struct log_config logs;       /* per-log rotation with overrides applied */
};

/* Called for each warning (unknown element, deprecated value): "FILE:LINE: text". */
typedef void cfg_warning_fn(const char *warning, void *context);

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

/* The process-wide current snapshot.  cfg_current() returns a new reference
 * the caller must cfg_unref(); cfg_set_current() takes over the caller's
 * reference and drops the previous snapshot's. */
struct cfg *cfg_current(void);
void cfg_set_current(struct cfg *cfg);

#endif
