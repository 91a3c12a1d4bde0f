/*
 * The directory's administration commands as JSON requests: domain-*,
 * user-*, alias-*, group-*, list-* and resolve (docs/control-protocol.md).
 *
 * One implementation for both ways in: the engine's admin API handlers
 * (src/admin/admin_directory.c, behind the control socket and HTTPS) run
 * it on the current snapshot and swap the result in; petrelctl runs it
 * directly on users.cfg when no engine is running.  So the checks, the
 * messages and the file written are the same either way.
 *
 * Passwords arrive in requests ("password"); they are hashed (and the
 * per-mechanism secrets derived through the secrets hook) and never put
 * in a reply or a description.
 */
#ifndef PETREL_DIRECTORY_CMD_H
#define PETREL_DIRECTORY_CMD_H

#include <stdbool.h>

#include <jansson.h>

#include "directory/directory.h"

/* Whether name is a directory command, and whether it changes users.cfg. */
bool directory_cmd_known(const char *name);
bool directory_cmd_writes(const char *name);

/* Runs request on dir.  Returns the reply ({"ok":true,...} or
 * {"ok":false,"error":...}; never NULL).  When the command changed the
 * directory, *changed_r holds the new snapshot (refcount 1; the caller
 * saves and publishes or drops it), else NULL.  Pure: no files, no logs. */
json_t *directory_cmd_run(const struct directory *dir, json_t *request,
			  struct directory **changed_r);

/* directory_cmd_run, then, for a change, directory_save to dir->path.
 * When saved, *saved_r is the new snapshot for the caller to publish;
 * when the save fails, the reply is the error and nothing changed. */
json_t *directory_cmd_execute(const struct directory *dir, json_t *request,
			      struct directory **saved_r);

/* "command=user-add address=john@example.com" for logs: the command and
 * its target, escaped, never a password or a text.  Caller frees. */
char *directory_cmd_describe(json_t *request);

/* JSON views (new references).  full: with group and list membership. */
json_t *directory_user_json(const struct directory *dir, const struct dir_user *u, bool full);
json_t *directory_domain_json(const struct dir_domain *d);
json_t *directory_alias_json(const struct dir_alias *a);
json_t *directory_group_json(const struct dir_group *g);
json_t *directory_list_json(const struct dir_list *l);
json_t *directory_resolution_json(const struct dir_resolution *res);

#endif
