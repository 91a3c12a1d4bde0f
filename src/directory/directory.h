/*
 * users.cfg: the directory of domains, users, aliases, groups and mailing
 * lists, parsed into an immutable, reference-counted snapshot (struct
 * directory), like mailserver.cfg's struct cfg.
 *
 * A reload parses a new snapshot and swaps it in; sessions keep the one
 * they started with.  Changes (petrelctl, the admin API) never edit a
 * snapshot: a mutator returns a new snapshot, directory_save writes it
 * atomically, and the caller swaps it in.  Older files stay valid: every
 * element added since the first version is optional.
 *
 * File format (see docs/configuration.md and docs/accounts.md):
 *
 *   <?xml version="1.0" encoding="UTF-8"?>
 *   <users>
 *     <domain name="example.com" primary="yes">
 *       <alias-domain>example.net</alias-domain>
 *       <catch-all>postmaster@example.com</catch-all>
 *       <user name="john">
 *         <full-name>John Smith</full-name>
 *         <password scheme="yescrypt">$y$j9T$...</password>
 *         <secret mechanism="SCRAM-SHA-256">...</secret>
 *         <admin>no</admin>
 *         <enabled>yes</enabled>
 *         <quota storage="2G" messages="0"/>
 *         <alias>j.smith@example.com</alias>
 *         <forward keep-copy="yes"><to>john@home.example</to></forward>
 *         <auto-reply enabled="yes" start="2025-07-01" end="2025-07-14">
 *           <subject>Away</subject><text>Back on the 15th.</text>
 *         </auto-reply>
 *       </user>
 *       <alias name="postmaster"><target>john@example.com</target></alias>
 *       <group name="staff"><member>john@example.com</member></group>
 *       <list name="news" posting="moderated" reply-to="list" subscription="open">
 *         <description>Company news</description>
 *         <moderator>john@example.com</moderator>
 *         <member>mary@elsewhere.example</member>
 *       </list>
 *     </domain>
 *   </users>
 *
 * Passwords are stored only as crypt(3) hashes (yescrypt for new ones);
 * a value that does not look like one is refused, and never echoed in the
 * error, since it might be a plaintext password.  Errors are
 * "FILE:LINE: reason"; unknown elements and attributes are warnings, and
 * so are references to local addresses that do not exist and forwarding
 * loops (resolution reports them per message).
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
/* Longest address: RFC 5321 4.5.3.1.3's path limit less the brackets. */
#define DIRECTORY_MAX_ADDRESS 254
#define DIRECTORY_MAX_FULL_NAME 256
/* Longest password accepted for hashing or checking: far above any real
 * one, and a bound on the work a client can ask for. */
#define DIRECTORY_MAX_PASSWORD 1024
#define DIRECTORY_MAX_HASH 512
/* Per-mechanism secrets: a mechanism name (RFC 4422 3.1: 1..20 of A-Z 0-9
 * - _; we allow 32) and an opaque printable value. */
#define DIRECTORY_MAX_MECHANISM 32
#define DIRECTORY_MAX_SECRET 2048
/* Secrets per user: one per mechanism, and there are about eight. */
#define DIRECTORY_MAX_SECRETS 32
/* Auto-reply subject and text, list descriptions. */
#define DIRECTORY_MAX_SUBJECT 998      /* RFC 5322 2.1.1 line limit */
#define DIRECTORY_MAX_TEXT (64 * 1024)
#define DIRECTORY_MAX_DESCRIPTION 256
/* Resolution stops at this nesting depth of aliases, groups and forwards
 * (Postfix virtual_alias_recursion_limit is 1000; real chains are 2 or 3
 * long, and a deep one is a configuration mistake) ... */
#define DIRECTORY_MAX_DEPTH 20
/* ... and after this many expanded addresses (Postfix
 * virtual_alias_expansion_limit).  A mailing list counts once: its members
 * are expanded by delivery, not here. */
#define DIRECTORY_MAX_EXPANSION 1000
/* One auto-reply per sender per this many seconds (RFC 3834 5.1; RFC 5230
 * 4.1 suggests 7 days, "a few days" is the common practice). */
#define DIRECTORY_AUTOREPLY_INTERVAL (3 * 24 * 3600)
/* The subaddress separator when the caller does not say (user+tag@). */
#define DIRECTORY_DEFAULT_SEPARATOR '+'
/* users.cfg holds password hashes: owner only. */
#define DIRECTORY_FILE_MODE 0600

struct dir_domain;
struct dir_entry;
struct dir_domain_name;

/* An owned array of strings (addresses, names). */
struct dir_strings {
	char **items;
	size_t count;
};

/* A secret derived from the password for one SASL mechanism (SCRAM's
 * StoredKey/ServerKey, CRAM-MD5's pads, DIGEST-MD5's H(A1), NTLM's NT
 * hash).  The directory stores the value as an opaque string; src/auth
 * computes and reads it. */
struct dir_secret {
	char *mechanism;         /* "SCRAM-SHA-256": A-Z 0-9 - _ */
	char *value;             /* printable ASCII, no spaces */
};

struct dir_autoreply {
	bool enabled;
	char *subject;           /* "" when none: delivery makes "Auto: <subject>" */
	char *text;              /* "" when none; may hold newlines (LF) */
	char *start;             /* as written ("2025-07-01", or RFC 3339 date-time); NULL: open */
	char *end;               /* NULL: open; a bare date includes that whole day */
	int64_t start_time;      /* seconds since the epoch (start inclusive); 0 when open */
	int64_t end_time;        /* exclusive; INT64_MAX when open */
};

struct dir_user {
	const struct dir_domain *domain;  /* the domain the user belongs to */
	char *name;              /* login name (local part) as written */
	char *address;           /* "name@domain" in lower case: the lookup key */
	char *full_name;         /* "" when none */
	char *password_scheme;   /* "yescrypt" or "crypt"; NULL when no password */
	char *password_hash;     /* crypt(3) string; NULL when no password */
	struct dir_secret *secrets;   /* per-mechanism secrets, in file order */
	size_t secret_count;
	bool enabled;            /* a disabled user cannot log in; mail is still accepted */
	bool admin;              /* may use the administration API and console */
	uint64_t quota_storage;  /* bytes; 0 = no limit */
	uint64_t quota_messages; /* 0 = no limit */
	struct dir_strings aliases;   /* extra addresses (full, in local real domains) */
	struct dir_strings forward;   /* forwarding targets (full addresses); none = off */
	bool forward_keep_copy;  /* with forwarding: also deliver to the mailbox */
	struct dir_autoreply autoreply;
	long line;               /* in users.cfg; 0 when made by a mutator */
};

/* An address that delivers to other addresses, local or remote. */
struct dir_alias {
	const struct dir_domain *domain;
	char *name;              /* local part as written */
	char *address;           /* lower case */
	struct dir_strings targets;   /* full addresses, at least one */
	long line;
};

/* An address that delivers to all its members (local addresses); later
 * also a unit of rights. */
struct dir_group {
	const struct dir_domain *domain;
	char *name;
	char *address;
	struct dir_strings members;   /* full local addresses */
	long line;
};

enum dir_list_posting {
	DIR_LIST_POST_MEMBERS,   /* only members may post (the default) */
	DIR_LIST_POST_ANYONE,
	DIR_LIST_POST_MODERATED, /* every post waits for a moderator */
};

enum dir_list_reply_to {
	DIR_LIST_REPLY_TO_NONE,  /* leave Reply-To as the sender wrote it (default) */
	DIR_LIST_REPLY_TO_LIST,  /* Reply-To: the list */
	DIR_LIST_REPLY_TO_SENDER,/* Reply-To: the sender, replacing any other */
};

struct dir_list {
	const struct dir_domain *domain;
	char *name;
	char *address;
	char *description;       /* "" when none; the phrase of List-Id */
	enum dir_list_posting posting;
	enum dir_list_reply_to reply_to;
	bool subscription_open;  /* LIST-subscribe@ works (with confirmation) */
	struct dir_strings moderators;  /* full addresses */
	struct dir_strings members;     /* full addresses, local or remote */
	long line;
};

struct dir_domain {
	char *name;              /* as written; compared case-insensitively */
	bool primary;            /* its users also log in with their bare name */
	struct dir_strings alias_domains;  /* lower case; each ≡ this domain */
	char *catch_all;         /* where unknown addresses go; NULL = off */
	/* Kerberos realm of the domain's users (GSSAPI: john@REALM is john
	 * of this domain); NULL = the default, the name in upper case. */
	char *realm;
	struct dir_user **users; /* in file order */
	size_t user_count;
	struct dir_alias **aliases;
	size_t alias_count;
	struct dir_group **groups;
	size_t group_count;
	struct dir_list **lists;
	size_t list_count;
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
	/* private: every address (users, their aliases, aliases, groups,
	 * lists and list commands) and every domain name, sorted */
	struct dir_entry *entries;
	size_t entry_count;
	struct dir_domain_name *domain_names;
	size_t domain_name_count;
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

/* The domain called name (case-insensitive), or NULL.  Alias domains are
 * not domains of their own: see directory_find_local_domain.  Borrowed
 * pointer, valid while the caller holds its reference to dir. */
const struct dir_domain *directory_find_domain(const struct directory *dir, const char *name);

/* The domain that name means: the domain itself, or the domain it is an
 * alias of; NULL when name is not one of ours.  Case-insensitive. */
const struct dir_domain *directory_find_local_domain(const struct directory *dir,
						     const char *name);

/* The user a login name means, or NULL.  Users of the primary domain log in
 * with their bare name or their full address; users of other domains only
 * with name@domain.  An alias domain works in place of its domain.  Both
 * parts are case-insensitive.  Extra addresses (<alias>) are not login
 * names.  Disabled users are returned too: the caller checks enabled.
 * Borrowed pointer, valid while the caller holds its reference to dir. */
const struct dir_user *directory_find_user(const struct directory *dir, const char *login);

/* The alias, group or list at address (full, or a bare name in the
 * primary domain; alias domains work), or NULL.  Borrowed pointers. */
const struct dir_alias *directory_find_alias(const struct directory *dir, const char *address);
const struct dir_group *directory_find_group(const struct directory *dir, const char *address);
const struct dir_list *directory_find_list(const struct directory *dir, const char *address);

/* The groups identity is a member of, directly or through groups that
 * are members of other groups (directory_groups.c): at most max_depth
 * levels (1 = direct membership only) and max_groups groups, each group
 * once (cycles end).  Returns the count; *groups_r (caller frees the
 * array, not the strings) points at the groups' addresses, borrowed from
 * dir.  Direct groups come first. */
size_t directory_user_groups(const struct directory *dir, const char *identity,
			     unsigned max_depth, size_t max_groups, const char ***groups_r);

/* The user's secret for mechanism (case-insensitive), or NULL. */
const struct dir_secret *directory_user_secret(const struct dir_user *user, const char *mechanism);

/* True when password matches the user's hash (constant-time comparison of
 * the crypt output).  False when the user has no password.  With user NULL
 * (unknown login) it does the same work and returns false, so that timing
 * does not tell which users exist.  Does not look at enabled.  The password
 * is first prepared by the prepare hook (below), if one is registered. */
bool directory_verify_password(const struct dir_user *user, const char *password);

/* Hashes password (as the prepare hook returns it, if one is registered)
 * with yescrypt and a fresh random salt.  Returns 0 and *hash_r (caller
 * frees), or -1 and *error_r (caller frees) for an empty or too long
 * password, one the hook refuses, or a libcrypt failure. */
int directory_hash_password(const char *password, char **hash_r, char **error_r)
	PETREL_MUST_CHECK;

/*
 * Per-mechanism secrets hook.  The auth module registers it at startup (in
 * petreld and in petrelctl); directory_add_user and directory_set_password
 * call it with the plaintext password to derive the secrets stored beside
 * the yescrypt hash.  It returns 0 with *secrets_r, an array of *n_r
 * entries whose strings and array are malloc'ed and handed over to the
 * caller (directory_secrets_free), or -1 with *error_r (caller frees),
 * which makes the mutation fail.  With no hook registered only the hash is
 * stored (and a password change drops the old secrets, which would no
 * longer match).  user is the login name as written, domain the domain's
 * name.  The hook must not keep or log the password.
 */
typedef int directory_secrets_fn(const char *user, const char *domain, const char *password,
				 struct dir_secret **secrets_r, size_t *n_r, char **error_r);
void directory_set_secrets_hook(directory_secrets_fn *fn);

/*
 * Password-prepare hook (SASLprep; the auth module registers it beside the
 * secrets hook).  directory_hash_password hashes what it returns for
 * stored=true and fails with its *error_r; directory_verify_password checks
 * what it returns for stored=false, and a password it refuses matches
 * nothing (after the same yescrypt work).  Returns 0 with *prepared_r
 * (malloc'ed; the directory wipes and frees it) or -1 with *error_r
 * (caller frees; never contains the password).  Without a hook passwords
 * are used as bytes.
 */
typedef int directory_prepare_fn(const char *password, bool stored, char **prepared_r,
				 char **error_r);
void directory_set_prepare_hook(directory_prepare_fn *fn);

/* Frees an array of secrets (and their strings), wiping the values. */
void directory_secrets_free(struct dir_secret *secrets, size_t n);

/* Name checks, as the parser and the mutators apply them.  A user name
 * (also the name of an alias, group or list) is 1..64 characters of RFC
 * 5322 dot-atom text (letters, digits and !#$%&'*+-=?^_`{|}~ and dots not
 * at either end nor doubled), without '/'.  A domain name is a host name
 * (cfg_valid_hostname).  On failure *reason_r (static string) says why. */
bool directory_valid_user_name(const char *name, const char **reason_r);
bool directory_valid_domain_name(const char *name);
/* A Kerberos realm as users.cfg accepts it: 1 to 253 letters, digits, '.',
 * '-' and '_' (no '@', '/', spaces or anything a principal parser would
 * split on). */
bool directory_valid_realm(const char *realm);
/* The domain's realm: its realm attribute, else its name in upper case
 * (MIT's default domain_realm mapping).  Newly allocated. */
char *directory_domain_realm(const struct dir_domain *d);

/* A mail address as the directory accepts it: dot-atom local part (as
 * above) "@" host name, at most DIRECTORY_MAX_ADDRESS characters.  No
 * quoted local parts, no address literals, no source routes. */
bool directory_valid_address(const char *address, const char **reason_r);

/* Writes a users.cfg for a new installation atomically (mode 0600): one
 * primary domain with one user, admin_name, who is an administrator, with
 * admin_password hashed.  Replaces path if it exists.  Returns 0 or -1 and
 * *error_r (caller frees). */
int directory_write_new(const char *path, const char *domain, const char *admin_name,
			const char *admin_password, char **error_r) PETREL_MUST_CHECK;

/* The text of users.cfg for dir, in a stable, diff-friendly order (domains
 * and their entries in snapshot order, 2-space indentation).  Caller frees. */
char *directory_format(const struct directory *dir);

/* Writes dir to path atomically (mode 0600), after checking that the text
 * parses back to the same directory.  Returns 0 or -1 and *error_r. */
int directory_save(const struct directory *dir, const char *path, char **error_r)
	PETREL_MUST_CHECK;

/*
 * Mutators: each returns a new snapshot (refcount 1, same path) in *dir_r
 * and leaves dir untouched, or -1 and *error_r (caller frees).  Every new
 * snapshot passes the same checks as a loaded file (one owner per address
 * across a domain and its alias domains, exactly one primary domain...),
 * and references a mutator adds must exist and must not make a loop.
 * Addresses are full, or bare names meaning the primary domain; targets
 * and members given bare mean the domain of what they are added to.
 */

/* Adds a domain.  The first domain is always primary; asking for a second
 * primary is an error (exactly one domain is primary: see
 * directory_set_primary_domain). */
int directory_add_domain(const struct directory *dir, const char *name, bool primary,
			 struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

/* Removes a domain.  Without force, only an empty domain (no users,
 * aliases, groups or lists); with force, everything in it goes too, and
 * extra addresses and group members in it are dropped.  The primary
 * domain can only be removed when it is the last one.  Mail in the store
 * is not touched. */
int directory_remove_domain(const struct directory *dir, const char *name, bool force,
			    struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

/* Makes name the primary domain (bare-name logins move with it). */
int directory_set_primary_domain(const struct directory *dir, const char *name,
				 struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

/* Adds or removes alias, a domain name that means domain. */
int directory_add_domain_alias(const struct directory *dir, const char *domain,
			       const char *alias, struct directory **dir_r, char **error_r)
	PETREL_MUST_CHECK;
int directory_remove_domain_alias(const struct directory *dir, const char *alias,
				  struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

/* Sets the domain's Kerberos realm (NULL: back to the default). */
int directory_set_realm(const struct directory *dir, const char *domain, const char *realm,
			struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

/* Sets the domain's catch-all target (NULL: off). */
int directory_set_catch_all(const struct directory *dir, const char *domain, const char *target,
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

/* Adds a user to an existing domain; the address must be new there.  With
 * a password, the secrets hook derives the per-mechanism secrets. */
int directory_add_user(const struct directory *dir, const struct dir_user_spec *spec,
		       struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

/* Removes the user that login names (directory_find_user rules), and the
 * user's addresses from group and list membership and moderators.
 * Aliases and forwards pointing at the user stay (resolution skips them);
 * the mail store is not touched. */
int directory_remove_user(const struct directory *dir, const char *login,
			  struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

/* Sets a new password (hashed with yescrypt) for the user login names and
 * replaces the secrets with what the secrets hook derives (none without a
 * hook). */
int directory_set_password(const struct directory *dir, const char *login,
			   const char *password, struct directory **dir_r, char **error_r)
	PETREL_MUST_CHECK;

/* Sets the user's crypt hash and replaces all the per-mechanism secrets
 * with secrets[0..n) (copied; n may be 0).  For src/auth: after deriving
 * secrets for a user who has none, or upgrading a legacy hash.  hash must
 * be a crypt(3) hash libcrypt checks (never a plaintext password); the
 * mechanisms must be distinct.  Values are never echoed in errors. */
int directory_set_credentials(const struct directory *dir, const char *login, const char *hash,
			      const struct dir_secret *secrets, size_t n, struct directory **dir_r,
			      char **error_r) PETREL_MUST_CHECK;

/* Changes some properties of a user; fields left at their "keep" value
 * stay as they are. */
enum dir_tristate { DIR_KEEP = 0, DIR_SET_NO, DIR_SET_YES };
struct dir_user_update {
	const char *full_name;     /* NULL: keep; "" clears */
	enum dir_tristate admin;
	enum dir_tristate enabled;
	int64_t quota_storage;     /* bytes; -1: keep */
	int64_t quota_messages;    /* -1: keep */
};
int directory_update_user(const struct directory *dir, const char *login,
			  const struct dir_user_update *update, struct directory **dir_r,
			  char **error_r) PETREL_MUST_CHECK;

/* Adds or removes an extra address of a user.  It must be in one of our
 * real domains (not an alias domain), and free. */
int directory_add_user_alias(const struct directory *dir, const char *login,
			     const char *address, struct directory **dir_r, char **error_r)
	PETREL_MUST_CHECK;
int directory_remove_user_alias(const struct directory *dir, const char *login,
				const char *address, struct directory **dir_r, char **error_r)
	PETREL_MUST_CHECK;

/* Replaces the user's forwarding with targets[0..n) (n == 0: off). */
int directory_set_forward(const struct directory *dir, const char *login,
			  const char *const *targets, size_t n, bool keep_copy,
			  struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

/* Replaces the user's auto-reply settings.  NULL strings: keep the current
 * value (start/end: "" clears them).  text may hold newlines; CRLF is
 * stored as LF, leading and trailing white space is dropped. */
struct dir_autoreply_spec {
	bool enabled;
	const char *subject;
	const char *text;
	const char *start;
	const char *end;
};
int directory_set_autoreply(const struct directory *dir, const char *login,
			    const struct dir_autoreply_spec *spec, struct directory **dir_r,
			    char **error_r) PETREL_MUST_CHECK;

/* Creates the alias at address with targets[0..n) (n >= 1), or adds the
 * targets to an existing alias (each must be new there).  Local targets
 * must exist. */
int directory_add_alias(const struct directory *dir, const char *address,
			const char *const *targets, size_t n, struct directory **dir_r,
			char **error_r) PETREL_MUST_CHECK;
/* n == 0: removes the alias; else removes those targets (and the alias
 * when none is left). */
int directory_remove_alias(const struct directory *dir, const char *address,
			   const char *const *targets, size_t n, struct directory **dir_r,
			   char **error_r) PETREL_MUST_CHECK;

/* Creates the group (members may be empty), or adds members to an existing
 * one (n >= 1, each new).  Members must be existing local addresses. */
int directory_add_group(const struct directory *dir, const char *address,
			const char *const *members, size_t n, struct directory **dir_r,
			char **error_r) PETREL_MUST_CHECK;
/* n == 0: removes the group; else removes those members (the group stays). */
int directory_remove_group(const struct directory *dir, const char *address,
			   const char *const *members, size_t n, struct directory **dir_r,
			   char **error_r) PETREL_MUST_CHECK;

/* Creates a list or changes an existing one.  NULL / -1 fields keep their
 * value (defaults for a new list: posting members, reply-to none,
 * subscription open, no description). */
struct dir_list_spec {
	const char *address;
	const char *description;
	int posting;               /* enum dir_list_posting, or -1 */
	int reply_to;              /* enum dir_list_reply_to, or -1 */
	int subscription_open;     /* 0, 1, or -1 */
	const char *const *members;      /* added; each must be new */
	size_t member_count;
	const char *const *moderators;   /* added; each must be new */
	size_t moderator_count;
};
int directory_add_list(const struct directory *dir, const struct dir_list_spec *spec,
		       struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;
/* With no members and no moderators: removes the list.  Else removes
 * those members and moderators (the list stays). */
int directory_remove_list(const struct directory *dir, const char *address,
			  const char *const *members, size_t n,
			  const char *const *moderators, size_t m,
			  struct directory **dir_r, char **error_r) PETREL_MUST_CHECK;

/* List headers (RFC 2919, RFC 2369), newly allocated:
 * List-Id  "Company news <news.example.com>" (the phrase only when there is
 * a description; the id is the address with '@' turned into '.'),
 * List-Unsubscribe "<mailto:news-unsubscribe@example.com>",
 * List-Subscribe "<mailto:news-subscribe@example.com>",
 * List-Post "<mailto:news@example.com>" (moderated lists too: posts are
 * accepted and held, RFC 2369 "NO" would mean no posting at all). */
char *directory_list_id(const struct dir_list *list);
char *directory_list_unsubscribe(const struct dir_list *list);
char *directory_list_subscribe(const struct dir_list *list);
char *directory_list_post(const struct dir_list *list);

/* True when address (any case; alias domains count) is a member / a
 * moderator of list. */
bool directory_list_has_member(const struct directory *dir, const struct dir_list *list,
			       const char *address);
bool directory_list_has_moderator(const struct directory *dir, const struct dir_list *list,
				  const char *address);

/*
 * Resolution: what a recipient address means, for SMTP RCPT and delivery.
 *
 * The domain is compared without case and through alias domains; the
 * local part of a local address without case.  When the exact local part
 * is unknown and contains the separator, the part before it is tried
 * ("john+lists@" → john, detail "lists").  Aliases, groups and forwards
 * are expanded recursively; the result holds local mailboxes and remote
 * addresses, each once.  Mailing lists are not expanded: a list is a
 * result (or a recipient) of its own, which delivery distributes after
 * checking its posting policy.  "LIST-subscribe@", "LIST-unsubscribe@",
 * "LIST-bounces@" and "LIST-moderate@" (with an optional "+token") are list
 * commands.  A domain's catch-all
 * applies only to an address that matches nothing else, and only at the
 * top (a dangling alias target does not fall into it).  A local target
 * that does not exist is skipped; an alias whose targets all are skipped
 * resolves to UNKNOWN.  Disabled users still receive mail (only their
 * logins are refused).  A loop, a nesting deeper than DIRECTORY_MAX_DEPTH
 * or an expansion beyond DIRECTORY_MAX_EXPANSION stops with LOOP.
 */
enum dir_resolve_kind {
	DIR_RESOLVE_INVALID,      /* not a valid address (error says why) */
	DIR_RESOLVE_NOT_LOCAL,    /* not one of our domains: relay rules decide */
	DIR_RESOLVE_UNKNOWN,      /* one of our domains, no such address */
	DIR_RESOLVE_LOOP,         /* loop, too deep, too many (error says which) */
	DIR_RESOLVE_RECIPIENTS,   /* rcpts: local mailboxes, remote addresses, lists */
	DIR_RESOLVE_LIST,         /* the address is the mailing list `list` */
	DIR_RESOLVE_LIST_COMMAND, /* `command` for `list`; detail is the token */
};

/* What the address itself names (RECIPIENTS, LIST, LIST_COMMAND). */
enum dir_entry_kind {
	DIR_ENTRY_USER,           /* a user's login address */
	DIR_ENTRY_USER_ALIAS,     /* one of a user's extra addresses */
	DIR_ENTRY_ALIAS,
	DIR_ENTRY_GROUP,
	DIR_ENTRY_LIST,
	DIR_ENTRY_LIST_SUBSCRIBE,
	DIR_ENTRY_LIST_UNSUBSCRIBE,
	DIR_ENTRY_LIST_BOUNCES,   /* NAME-bounces: envelope sender of list mail */
	DIR_ENTRY_LIST_MODERATE,  /* NAME-moderate+approve-T / +reject-T */
};

enum dir_list_command {
	DIR_LIST_SUBSCRIBE,
	DIR_LIST_UNSUBSCRIBE,
	DIR_LIST_BOUNCES,         /* delivery status notices about list mail */
	DIR_LIST_MODERATE,        /* a moderator's answer to a held post */
};

enum dir_rcpt_kind {
	DIR_RCPT_LOCAL,           /* the mailbox of user */
	DIR_RCPT_REMOTE,          /* address, to be sent out */
	DIR_RCPT_LIST,            /* a list reached through an alias or group */
};

struct dir_rcpt {
	enum dir_rcpt_kind kind;
	const struct dir_user *user;  /* LOCAL; borrowed from the snapshot */
	const struct dir_list *list;  /* LIST; borrowed */
	char *address;           /* LOCAL: user->address; REMOTE: as written; LIST: list address */
	char *detail;            /* LOCAL: the subaddress when the user was reached as
				  * user+detail, as the address itself or as a target (a
				  * folder hint for delivery); else NULL */
};

struct dir_resolution {
	enum dir_resolve_kind kind;
	enum dir_entry_kind entry;        /* what matched (RECIPIENTS, LIST, LIST_COMMAND) */
	const struct dir_domain *domain;  /* the local domain; NULL for INVALID, NOT_LOCAL */
	const struct dir_user *user;      /* when the address named a user (or an extra
					   * address of one): that user */
	const struct dir_list *list;      /* LIST, LIST_COMMAND */
	enum dir_list_command command;    /* LIST_COMMAND */
	char *detail;            /* the subaddress that was split off, or NULL */
	bool catch_all;          /* the domain's catch-all answered */
	struct dir_rcpt *rcpts;  /* RECIPIENTS: in order of discovery, no duplicates */
	size_t rcpt_count;
	size_t skipped;          /* local targets skipped because they do not exist */
	char *error;             /* INVALID, LOOP: why ("a@x → b@x → a@x"); else NULL */
};

/* Resolves address (as given in RCPT TO, without the angle brackets) in
 * dir.  separator: the subaddress separator ('\0': none).  Always fills
 * *res_r (free with directory_resolution_free); pointers in it are
 * borrowed from dir, valid while the caller holds its reference. */
void directory_resolve(const struct directory *dir, const char *address, char separator,
		       struct dir_resolution *res_r);
void directory_resolution_free(struct dir_resolution *res);

/* A name for a kind ("recipients", "unknown", ...), for logs and JSON. */
const char *directory_resolve_kind_str(enum dir_resolve_kind kind);
const char *directory_entry_kind_str(enum dir_entry_kind kind);
const char *directory_list_posting_str(enum dir_list_posting posting);
const char *directory_list_reply_to_str(enum dir_list_reply_to reply_to);
int directory_list_posting_parse(const char *s, enum dir_list_posting *posting_r);
int directory_list_reply_to_parse(const char *s, enum dir_list_reply_to *reply_to_r);

/*
 * Auto-reply decision (the sending itself is delivery's): a pure function
 * of the message's envelope and headers, the user's settings, the time,
 * and when this user last auto-replied to this sender.  Rules (RFC 3834,
 * RFC 5230): never to the null sender, to mail with Auto-Submitted other
 * than "no", Precedence bulk/list/junk, List-* headers, X-Auto-Response-
 * Suppress OOF/All, spam, nor to robot senders (MAILER-DAEMON, postmaster,
 * owner-*, *-request, *-bounces, noreply...) or the user's own addresses;
 * only when the user is named in To or Cc (when given); only inside the
 * date range; at most once per sender per interval.
 */
struct dir_autoreply_msg {
	const char *sender;           /* envelope sender (MAIL FROM); "" or NULL for <> */
	const char *auto_submitted;   /* header values, NULL when absent */
	const char *precedence;
	const char *list_id;
	bool other_list_headers;      /* List-Unsubscribe, List-Post, Mailing-List... */
	const char *x_auto_response_suppress;
	const char *to;               /* To and Cc header values; both NULL: not checked */
	const char *cc;
	bool spam;                    /* the filters found it to be spam */
};
bool directory_autoreply_should_send(const struct directory *dir, const struct dir_user *user,
				     const struct dir_autoreply_msg *msg, int64_t now,
				     int64_t last_sent, int64_t interval, const char **reason_r);

/* Parses an auto-reply date: "YYYY-MM-DD" (a whole day, UTC) or RFC 3339
 * "YYYY-MM-DDTHH:MM:SS" with "Z" or "+HH:MM"/"-HH:MM".  *start_r is the
 * first second, *end_r the first second after (a day, or start + 1).
 * Returns 0 or -1. */
int directory_parse_date(const char *text, int64_t *start_r, int64_t *end_r) PETREL_MUST_CHECK;

/* Serializes writers of users.cfg inside the engine (the admin API and
 * delivery's list subscriptions): hold it from directory_current() to
 * directory_set_current() so that two changes never lose each other. */
void directory_writer_lock(void);
void directory_writer_unlock(void);

/* The process-wide current snapshot (directory_current.c).
 * directory_current() returns a new reference (caller unrefs) or NULL
 * before the first load; directory_set_current() takes over the caller's
 * reference and drops the previous snapshot's. */
struct directory *directory_current(void);
void directory_set_current(struct directory *dir);
/* A counter raised by every directory_set_current: what was computed
 * from the directory (a user's groups) is stale once it differs. */
uint64_t directory_generation(void);

#endif
