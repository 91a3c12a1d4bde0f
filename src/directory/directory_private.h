/*
 * Internals shared by the directory's source files: the address index,
 * the checks a snapshot must pass (run by the parser and by every
 * mutator), and small helpers for owned string arrays.
 */
#ifndef PETREL_DIRECTORY_PRIVATE_H
#define PETREL_DIRECTORY_PRIVATE_H

#include "directory/directory.h"

#define DIR_ESC_MAX 64

/* One address of the directory.  key: "local@domain" in lower case, the
 * domain being a real domain (alias domains are mapped first). */
struct dir_entry {
	char *key;
	enum dir_entry_kind kind;
	const void *object;            /* dir_user, dir_alias, dir_group or dir_list */
	const struct dir_domain *domain;
	long line;
};

/* A name that means a domain: its own name or one of its alias domains. */
struct dir_domain_name {
	char *name;                    /* lower case */
	const struct dir_domain *domain;
	bool alias;
	long line;
};

/* Where errors and warnings go: with a path, "FILE:LINE: reason" (the
 * parser); without, the bare reason (mutators). */
struct dir_check {
	const char *path;
	cfg_warning_fn *warn;
	void *warn_context;
	char *error;
	/* mutators: what was just added or changed (a user, alias, group,
	 * list or domain), named as the offender of a collision */
	const void *fresh;
};

int dir_fail(struct dir_check *c, long line, const char *fmt, ...) PETREL_PRINTF(3, 4);
void dir_warn(struct dir_check *c, long line, const char *fmt, ...) PETREL_PRINTF(3, 4);

/* Rebuilds the indexes (domain names, users, entries, primary) and checks
 * the whole snapshot.  Returns 0, or -1 with c->error set. */
int dir_finish(struct directory *dir, struct dir_check *c);

/* Warns about references to local addresses that do not exist and about
 * forwarding loops (the parser calls it; mutators check what they add). */
void dir_warn_references(const struct directory *dir, struct dir_check *c);

/* Lookups in a finished snapshot. */
const struct dir_entry *dir_find_entry(const struct directory *dir, const char *key);
/* Whether a local key would find something, also through the default
 * subaddress separator. */
bool dir_key_exists(const struct directory *dir, const char *key);

/* Splits address at its last '@' and maps the domain: returns 1 and
 * *key_r ("local@domain", lower case, caller frees) and *domain_r for a
 * local address; 0 for a valid address in a domain not ours; -1 for an
 * invalid one (*reason_r static). */
int dir_canonical(const struct directory *dir, const char *address, char **key_r,
		  const struct dir_domain **domain_r, const char **reason_r);

/* addr unchanged when it holds an '@', else addr@domain; the domain part
 * lower-cased either way.  Newly allocated. */
char *dir_qualify(const char *addr, const char *domain);

char *dir_lower_dup(const char *s);
char *dir_make_address(const char *name, const char *domain);
bool dir_has_control_chars(const char *s);
/* Free text (names, subjects, descriptions): valid UTF-8, no control
 * characters except, when multiline, LF and TAB; at most max bytes. */
bool dir_valid_text(const char *s, size_t max, bool multiline, const char **reason_r);
/* A secret's mechanism name and value. */
bool dir_valid_mechanism(const char *s);
bool dir_valid_secret_value(const char *s);
/* A crypt(3) hash; reason_r static and never contains the value. */
bool dir_check_scheme(const char *scheme, const char *hash, bool *legacy_r,
		      const char **reason_r);

/* Calls the registered secrets hook (if any).  Returns 0 with the secrets
 * (possibly none), or -1 with *error_r. */
int dir_derive_secrets(const char *user, const char *domain, const char *password,
		       struct dir_secret **secrets_r, size_t *n_r, char **error_r);

/* Arrays that only grow at their end, one item at a time: call before
 * storing item number count; the capacity doubles from 4, so a file with
 * 100000 members is not quadratic (ASan's realloc always moves). */
void *dir_grow(void *array, size_t count, size_t size);
/* The capacity dir_grow assumes for count items (for exact copies). */
size_t dir_capacity(size_t count);

/* Owned string arrays. */
void dir_strings_add(struct dir_strings *s, const char *item);
void dir_strings_add_owned(struct dir_strings *s, char *item);
void dir_strings_copy(struct dir_strings *dst, const struct dir_strings *src);
void dir_strings_free(struct dir_strings *s);
/* Index of item (case-insensitive), or -1. */
long dir_strings_find(const struct dir_strings *s, const char *item);
void dir_strings_remove_at(struct dir_strings *s, size_t i);
/* Index of the first item equal (case-insensitive) to an earlier one, or -1. */
long dir_strings_first_dup(const struct dir_strings *s);

/* Freeing and copying the parts of a snapshot. */
void dir_user_free(struct dir_user *u);
void dir_alias_free(struct dir_alias *a);
void dir_group_free(struct dir_group *g);
void dir_list_free(struct dir_list *l);
void dir_domain_free(struct dir_domain *d);
void dir_autoreply_free(struct dir_autoreply *a);

void dir_add_domain_ptr(struct directory *dir, struct dir_domain *d);
void dir_domain_add_user(struct dir_domain *d, struct dir_user *u);
void dir_domain_add_alias(struct dir_domain *d, struct dir_alias *a);
void dir_domain_add_group(struct dir_domain *d, struct dir_group *g);
void dir_domain_add_list(struct dir_domain *d, struct dir_list *l);

#endif
