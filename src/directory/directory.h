/*
 * users.cfg: the directory of domains and users, parsed into an immutable,
 * reference-counted snapshot (struct directory), like mailserver.cfg's
 * struct cfg.
 *
 * A reload parses a new snapshot and swaps it in; sessions keep the one
 * they started with.  Changes (petrelctl user add, the admin API) never
 * edit a snapshot: a mutator returns a new snapshot, directory_save writes
 * it atomically, and the caller swaps it in.  Later work adds aliases,
 * groups, mailing lists and SASL secrets as new arrays beside the domains
 * and new elements inside <domain> and <user>; older files stay valid.
 *
 * File format (see docs/configuration.md):
 *
 *   <?xml version="1.0" encoding="UTF-8"?>
 *   <users>
 *     <domain name="example.com" primary="yes">
 *       <user name="admin">
 *         <full-name>Administrator</full-name>
 *         <password scheme="yescrypt">$y$j9T$...</password>
 *         <admin>yes</admin>
 *         <enabled>yes</enabled>
 *         <quota storage="0" messages="0"/>
 *       </user>
 *     </domain>
 *   </users>
 *
 * Passwords are stored only as crypt(3) hashes (yescrypt for new ones);
 * a value that does not look like one is refused, and never echoed in the
 * error, since it might be a plaintext password.  Errors are
 * "FILE:LINE: reason"; unknown elements and attributes are warnings.
 */
#ifndef PETREL_DIRECTORY_H
#define PETREL_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cfg.h"
#include "core/xmalloc.h"

/* Longest user name: the local part limit of RFC 5321 4.5.3.1.1. */
#define DIRECTORY_MAX_USER_NAME 64
#define DIRECTORY_MAX_FULL_NAME 256
/* Longest password accepted for hashing or checking: far above any real
 * one, and a bound on the work a client can ask for. */
#define DIRECTORY_MAX_PASSWORD 1024
#define DIRECTORY_MAX_HASH 512
/* users.cfg holds password hashes: owner only. */
#define DIRECTORY_FILE_MODE 0600

struct dir_domain;

struct dir_user {
	const struct dir_domain *domain;  /* the domain the user belongs to */
	char *name;              /* login name (local part) as written */
	char *address;           /* "name@domain" in lower case: the lookup key */
	char *full_name;         /* "" when none */
	char *password_scheme;   /* "yescrypt" or "crypt"; NULL when no password */
	char *password_hash;     /* crypt(3) string; NULL when no password */
	bool enabled;            /* a disabled user cannot log in; mail is still accepted */
	bool admin;              /* may use the administration API and console */
	uint64_t quota_storage;  /* bytes; 0 = no limit */
	uint64_t quota_messages; /* 0 = no limit */
	long line;               /* in users.cfg; 0 when made by a mutator */
};

struct dir_domain {
	char *name;              /* as written; compared case-insensitively */
	bool primary;            /* its users also log in with their bare name */
	struct dir_user **users; /* in file order */
	size_t user_count;
	long line;
};

struct directory {
	int refcount;            /* atomic; see directory_ref */
	char *path;              /* the users.cfg it was read from; NULL if none */
	struct dir_domain **domains;   /* in file order */
	size_t domain_count;
	const struct dir_domain *primary;  /* NULL only when there are no domains */
	struct dir_user **index; /* every user, sorted by address (lookups) */
	size_t user_count;
};

/* Parses config_dir/users.cfg.  A missing file is an error.  Returns 0 and
 * a new snapshot (refcount 1) in *dir_r, or -1 and *error_r, a newly
 * allocated "FILE:LINE: reason" the caller frees. */
int directory_load(const char *config_dir, cfg_warning_fn *warn, void *warn_context,
		   struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

/* Parses users.cfg content from memory (path used in messages and stored
 * in the snapshot).  Same contract as directory_load; the pure parser that
 * the unit tests and the fuzzer call. */
int directory_parse(const char *path, const char *data, size_t len, cfg_warning_fn *warn,
		    void *warn_context, struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

/* An empty directory (no domains). */
struct directory *directory_new_empty(void);

struct directory *directory_ref(struct directory *dir);
void directory_unref(struct directory **dir);

/* The domain called name (case-insensitive), or NULL.  Borrowed pointer,
 * valid while the caller holds its reference to dir. */
const struct dir_domain *directory_find_domain(const struct directory *dir, const char *name);

/* The user a login name means, or NULL.  Users of the primary domain log in
 * with their bare name or their full address; users of other domains only
 * with name@domain.  Both parts are case-insensitive.  Disabled users are
 * returned too: the caller checks enabled.  Borrowed pointer, valid while
 * the caller holds its reference to dir. */
const struct dir_user *directory_find_user(const struct directory *dir, const char *login);

/* True when password matches the user's hash (constant-time comparison of
 * the crypt output).  False when the user has no password.  With user NULL
 * (unknown login) it does the same work and returns false, so that timing
 * does not tell which users exist.  Does not look at enabled. */
bool directory_verify_password(const struct dir_user *user, const char *password);

/* Hashes password with yescrypt and a fresh random salt.  Returns 0 and
 * *hash_r (caller frees), or -1 and *error_r (caller frees) for an empty or
 * too long password or a libcrypt failure. */
int directory_hash_password(const char *password, char **hash_r, char **error_r)
	PETREL_MUST_CHECK;

/* Name checks, as the parser and the mutators apply them.  A user name is
 * 1..64 characters of RFC 5322 dot-atom text (letters, digits and
 * !#$%&'*+-=?^_`{|}~ and dots not at either end nor doubled), without '/'.
 * A domain name is a host name (cfg_valid_hostname).  On failure *reason_r
 * (static string) says why. */
bool directory_valid_user_name(const char *name, const char **reason_r);
bool directory_valid_domain_name(const char *name);

/* Writes a users.cfg for a new installation atomically (mode 0600): one
 * primary domain with one user, admin_name, who is an administrator, with
 * admin_password hashed.  Replaces path if it exists.  Returns 0 or -1 and
 * *error_r (caller frees). */
int directory_write_new(const char *path, const char *domain, const char *admin_name,
			const char *admin_password, char **error_r) PETREL_MUST_CHECK;

/* The text of users.cfg for dir, in a stable, diff-friendly order (domains
 * and users in snapshot order, 2-space indentation).  Caller frees. */
char *directory_format(const struct directory *dir);

/* Writes dir to path atomically (mode 0600), after checking that the text
 * parses back to the same directory.  Returns 0 or -1 and *error_r. */
int directory_save(const struct directory *dir, const char *path, char **error_r)
	PETREL_MUST_CHECK;

/*
 * Mutators: each returns a new snapshot (refcount 1, same path) in *dir_r
 * and leaves dir untouched, or -1 and *error_r (caller frees).
 */

/* Adds a domain.  The first domain is always primary; asking for a second
 * primary is an error (exactly one domain is primary). */
int directory_add_domain(const struct directory *dir, const char *name, bool primary,
			 struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

/* Removes a domain that has no users.  The primary domain can only be
 * removed when it is the last one. */
int directory_remove_domain(const struct directory *dir, const char *name,
			    struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

struct dir_user_spec {
	const char *domain;        /* NULL: the primary domain */
	const char *name;
	const char *full_name;     /* NULL: none */
	const char *password;      /* plaintext, hashed here; or NULL */
	const char *password_hash; /* an existing crypt hash; or NULL (not both) */
	bool admin;
	bool disabled;             /* so that a zeroed spec is an enabled user */
	uint64_t quota_storage;    /* bytes, 0 = no limit */
	uint64_t quota_messages;   /* 0 = no limit */
};

/* Adds a user to an existing domain; the name must be new there. */
int directory_add_user(const struct directory *dir, const struct dir_user_spec *spec,
		       struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

/* Removes the user that login names (directory_find_user rules). */
int directory_remove_user(const struct directory *dir, const char *login,
			  struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

/* Sets a new password (hashed with yescrypt) for the user login names. */
int directory_set_password(const struct directory *dir, const char *login,
			   const char *password, struct directory **dir_r, char **error_r)
	PETREL_MUST_CHECK;

/* The process-wide current snapshot (directory_current.c).
 * directory_current() returns a new reference (caller unrefs) or NULL
 * before the first load; directory_set_current() takes over the caller's
 * reference and drops the previous snapshot's. */
struct directory *directory_current(void);
void directory_set_current(struct directory *dir);

#endif
