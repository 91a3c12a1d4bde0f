/*
 * Shared and public folders for the IMAP server (imap_acl.c): the
 * namespaces, mailbox name -> owner's mailbox and folder, rights.
 *
 * Every function here runs on a worker (it reads the directory and the
 * store).
 */
#ifndef PETREL_IMAP_ACL_H
#define PETREL_IMAP_ACL_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

struct imap_user;

/* Namespace prefixes (RFC 2342), without their separator. */
#define IMAP_NS_OTHER "Other Users"
#define IMAP_NS_PUBLIC "Public Folders"
/* The rights of "anyone" on a public folder without an ACL of its own. */
#define IMAP_ACL_PUBLIC_DEFAULT (STORE_ACL_L | STORE_ACL_R)

/* The reason a denied command carries (imap_no_store answers [NOPERM]). */
extern const char imap_acl_denied[];

enum imap_ns { IMAP_NS_PERSONAL, IMAP_NS_OTHER_USERS, IMAP_NS_PUBLIC_FOLDERS };

/* What a mailbox name means for a user. */
struct imap_target {
	enum imap_ns ns;
	struct store_user *owner;     /* referenced */
	char *folder;                 /* the folder's name in the owner's mailbox */
	char *owner_id;               /* owner's address; NULL for public folders */
	uint32_t rights;              /* of the user on the folder (0 when it does not exist) */
	uint32_t parent_rights;       /* on its parent (CREATE, RENAME into) */
	bool exists;                  /* always true for personal names (the store decides) */
};

/* Resolves name (store form) for u.  Fails with STORE_E_NOTFOUND for a
 * namespace level ("Other Users", "Other Users/bob@x") or an unknown
 * owner; a missing folder is not a failure (exists false). */
enum store_status imap_acl_resolve(struct imap_user *u, const char *name, struct imap_target *t,
				   const char **error_r) PETREL_MUST_CHECK;
void imap_target_free(struct imap_target *t);
/* STORE_OK when t's rights hold need; STORE_E_NOTFOUND when the user has
 * no right at all there (existence is not revealed), else STORE_E_NOPERM
 * with imap_acl_denied. */
enum store_status imap_acl_need(const struct imap_target *t, uint32_t need, const char **error_r)
	PETREL_MUST_CHECK;
/* Resolves, checks need (never for personal names) and opens the folder.
 * *rights_r (may be NULL) gets the user's rights. */
enum store_status imap_acl_open(struct imap_user *u, const char *name, uint32_t need,
				struct store_folder **folder_r, uint32_t *rights_r,
				const char **error_r) PETREL_MUST_CHECK;
/* imap_acl_open, keeping the target (*t, freed by the caller with
 * imap_target_free when STORE_OK; on failure only t->rights is set). */
enum store_status imap_acl_open_target(struct imap_user *u, const char *name, uint32_t need,
				       struct imap_target *t, struct store_folder **folder_r,
				       const char **error_r) PETREL_MUST_CHECK;
/* After an APPEND, COPY or MOVE into t's folder that added added_bytes
 * and added_messages to its owner's usage and left it at *after: the
 * quota warning (store_quota_warn, queue/quota-warning-percent), when the
 * change crossed the line. */
void imap_acl_quota_warn(const struct imap_target *t, const struct store_quota *after,
			 uint64_t added_bytes, uint64_t added_messages);
/* For GETQUOTA of the quota root "Other Users/<owner>": the owner's store
 * handle (a new reference, quota from users.cfg) when u is the owner or
 * has a right on at least one of the owner's folders; else
 * STORE_E_NOTFOUND, as for an unknown owner. */
enum store_status imap_acl_owner_open(struct imap_user *u, const char *owner,
				      struct store_user **owner_r, const char **error_r)
	PETREL_MUST_CHECK;
/* The other users' folders (under "Other Users/<address>/") and the
 * domain's public folders (under "Public Folders/") on which u has "l",
 * with the namespace levels as non-existent (\Noselect) entries.  Free
 * with store_folder_list_free. */
void imap_acl_list_shared(struct imap_user *u, struct store_folder_info **list_r, size_t *count_r);
/* Replaces the user's own folder list (store_folder_list) with what LIST
 * shows: own folders, then the shared ones (subscribed when the user's
 * subscriptions name them). */
void imap_acl_list_merge(struct imap_user *u, struct store_folder_info **list, size_t *count);

#endif
