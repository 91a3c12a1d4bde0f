/*
 * Access control lists of folders (RFC 4314), for shared and public
 * folders.
 *
 * Each folder's ACL is a small text file, #acl, in the folder's directory
 * (beside index.fld and #msgs): it moves with the folder on rename and
 * goes with it on delete, and it is written atomically (temp file, fsync,
 * rename, fsync of the directory) under the user's lock, which also
 * serialises folder renames and deletes.  A folder without #acl has no
 * entries: only its owner has rights (the owner's rights are implicit and
 * never stored).
 *
 * The list of owners who share something (mail/#acl-owners) lets LIST
 * find the folders shared with a user without walking every mailbox of
 * the store.  It only grows; it is a hint, and each owner's folders are
 * checked one by one.
 *
 * The first half of this file is pure (rights strings, the file format,
 * evaluation), the second does the I/O.
 */
#include "store/store.h"
#include "store/store_private.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/fileio.h"

#define ACL_FILE "#acl"
#define ACL_OWNERS_FILE "#acl-owners"
/* An #acl file of STORE_ACL_MAX_ENTRIES longest lines. */
#define ACL_FILE_MAX ((size_t)STORE_ACL_MAX_ENTRIES * (STORE_ACL_MAX_IDENTIFIER + 24))
#define ACL_OWNERS_MAX (64u * 1024 * 1024)

/* Canonical order; c and d are inserted before a (as Cyrus shows them). */
static const struct {
	char c;
	uint32_t bits;
} rights_table[] = {
	{ 'l', STORE_ACL_L }, { 'r', STORE_ACL_R }, { 's', STORE_ACL_S }, { 'w', STORE_ACL_W },
	{ 'i', STORE_ACL_I }, { 'p', STORE_ACL_P }, { 'k', STORE_ACL_K }, { 'x', STORE_ACL_X },
	{ 't', STORE_ACL_T }, { 'e', STORE_ACL_E }, { 'c', STORE_ACL_K | STORE_ACL_X },
	{ 'd', STORE_ACL_T | STORE_ACL_E }, { 'a', STORE_ACL_A },
};
#define NRIGHTS (sizeof(rights_table) / sizeof(rights_table[0]))

/* ---- pure ---- */

void store_acl_free(struct store_acl *acl)
{
	for (size_t i = 0; i < acl->count; i++)
		free(acl->entries[i].identifier);
	free(acl->entries);
	acl->entries = NULL;
	acl->count = 0;
}

int store_acl_rights_parse(const char *text, size_t len, uint32_t *rights_r)
{
	uint32_t rights = 0;

	for (size_t i = 0; i < len; i++) {
		size_t k;

		for (k = 0; k < NRIGHTS; k++) {
			if (text[i] == rights_table[k].c)
				break;
		}
		if (k == NRIGHTS)
			return -1;
		rights |= rights_table[k].bits;
	}
	*rights_r = rights;
	return 0;
}

const char *store_acl_rights_format(uint32_t rights, char out[STORE_ACL_RIGHTS_MAX])
{
	size_t n = 0;

	for (size_t k = 0; k < NRIGHTS; k++) {
		/* a single right is shown when held; c and d when any member is */
		if ((rights & rights_table[k].bits) != 0)
			out[n++] = rights_table[k].c;
	}
	out[n] = '\0';
	return out;
}

bool store_acl_identifier_valid(const char *id, size_t len)
{
	if (len == 0 || len > STORE_ACL_MAX_IDENTIFIER || id[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
			return false;
	}
	return true;
}

static bool id_matches(const char *id, const char *identity, const char *const *groups,
		       size_t ngroups)
{
	if (strcmp(id, STORE_ACL_ANYONE) == 0 || strcasecmp(id, identity) == 0)
		return true;
	for (size_t g = 0; g < ngroups; g++) {
		if (strcasecmp(id, groups[g]) == 0)
			return true;
	}
	return false;
}

uint32_t store_acl_eval(const struct store_acl *acl, const char *identity,
			const char *const *groups, size_t ngroups)
{
	uint32_t pos = 0, neg = 0;

	for (size_t i = 0; i < acl->count; i++) {
		const struct store_acl_entry *e = &acl->entries[i];

		if (!id_matches(e->identifier, identity, groups, ngroups))
			continue;
		if (e->negative)
			neg |= e->rights;
		else
			pos |= e->rights;
	}
	return pos & ~neg & STORE_ACL_ALL;
}

static struct store_acl_entry *acl_find(struct store_acl *acl, const char *identifier,
					bool negative)
{
	for (size_t i = 0; i < acl->count; i++) {
		if (acl->entries[i].negative == negative &&
		    strcasecmp(acl->entries[i].identifier, identifier) == 0)
			return &acl->entries[i];
	}
	return NULL;
}

int store_acl_apply(struct store_acl *acl, const char *identifier, bool negative,
		    enum store_acl_mod mod, uint32_t rights, size_t max_entries)
{
	struct store_acl_entry *e = acl_find(acl, identifier, negative);
	uint32_t now = e != NULL ? e->rights : 0;

	switch (mod) {
	case STORE_ACL_REPLACE:
		now = rights;
		break;
	case STORE_ACL_ADD:
		now |= rights;
		break;
	case STORE_ACL_REMOVE:
		now &= ~rights;
		break;
	}
	now &= STORE_ACL_ALL;
	if (e == NULL && now == 0)
		return 0;
	if (e == NULL) {
		if (acl->count >= max_entries || acl->count >= STORE_ACL_MAX_ENTRIES)
			return -1;
		acl->entries = xreallocarray(acl->entries, acl->count + 1, sizeof(*acl->entries));
		e = &acl->entries[acl->count++];
		e->identifier = xstrdup(identifier);
		for (char *p = e->identifier; *p != '\0'; p++) {
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		}
		e->negative = negative;
	}
	e->rights = now;
	if (now == 0) {
		size_t i = (size_t)(e - acl->entries);

		free(e->identifier);
		memmove(e, e + 1, (acl->count - i - 1) * sizeof(*e));
		acl->count--;
	}
	return 0;
}

int store_acl_parse(const char *data, size_t len, struct store_acl *acl_r)
{
	struct store_acl acl = { NULL, 0 };
	size_t pos = 0;

	while (pos < len) {
		const char *line = data + pos, *nl = memchr(line, '\n', len - pos), *tab;
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;
		bool negative = false;
		uint32_t rights;
		char *id;

		pos += llen + (nl != NULL ? 1 : 0);
		if (llen == 0)
			continue;
		tab = memchr(line, '\t', llen);
		if (tab == NULL)
			goto bad;
		if (line[0] == '-') {
			negative = true;
			line++;
			llen--;
		}
		if (!store_acl_identifier_valid(line, (size_t)(tab - line)) ||
		    store_acl_rights_parse(tab + 1, llen - (size_t)(tab + 1 - line), &rights) < 0 ||
		    rights == 0)
			goto bad;
		id = xstrndup(line, (size_t)(tab - line));
		if (acl_find(&acl, id, negative) != NULL ||
		    store_acl_apply(&acl, id, negative, STORE_ACL_REPLACE, rights,
				    STORE_ACL_MAX_ENTRIES) < 0) {
			free(id);
			goto bad;
		}
		free(id);
	}
	*acl_r = acl;
	return 0;
bad:
	store_acl_free(&acl);
	return -1;
}

char *store_acl_format(const struct store_acl *acl)
{
	struct buf out;
	char r[STORE_ACL_RIGHTS_MAX];

	buf_init(&out, SIZE_MAX / 4);
	for (size_t i = 0; i < acl->count; i++) {
		const struct store_acl_entry *e = &acl->entries[i];

		/* the file keeps only the real rights, without c and d */
		size_t n = 0;

		for (size_t k = 0; k < NRIGHTS; k++) {
			if (rights_table[k].c != 'c' && rights_table[k].c != 'd' &&
			    (e->rights & rights_table[k].bits) != 0)
				r[n++] = rights_table[k].c;
		}
		r[n] = '\0';
		if (buf_printf(&out, "%s%s\t%s\n", e->negative ? "-" : "", e->identifier, r) < 0)
			panic("store acl: buffer");
	}
	return buf_steal(&out);
}

/* ---- on disk ---- */

/* The folder's directory (absolute), or NULL with *error_r for a bad name. */
static char *folder_dir(struct store_user *u, const char *folder, enum store_status *st_r,
			const char **error_r)
{
	struct buf rel;
	const char *reason;
	char *dir;

	buf_init(&rel, SIZE_MAX / 4);
	if (store_folder_path(folder, &rel, &reason) < 0) {
		buf_deinit(&rel);
		*error_r = reason;
		*st_r = STORE_E_INVALID;
		return NULL;
	}
	dir = xasprintf("%s/%s", u->dir, rel.data);
	buf_deinit(&rel);
	return dir;
}

/* Reads dir/#acl (user locked). */
static enum store_status read_acl(const char *dir, struct store_acl *acl_r, bool *present_r,
				  const char **error_r)
{
	char *path = xasprintf("%s/" ACL_FILE, dir), *data;
	size_t len;
	struct stat st;

	acl_r->entries = NULL;
	acl_r->count = 0;
	*present_r = false;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		free(path);
		*error_r = "no such folder";
		return STORE_E_NOTFOUND;
	}
	if (fileio_read_all(path, ACL_FILE_MAX, &data, &len) < 0) {
		int err = errno;

		free(path);
		if (err == ENOENT)
			return STORE_OK;
		*error_r = store_errf("cannot read the folder's ACL: %s", strerror(err));
		return STORE_E_TEMP;
	}
	free(path);
	if (store_acl_parse(data, len, acl_r) < 0) {
		/* a damaged file grants nothing (fail closed) */
		free(data);
		*error_r = "the folder's ACL file is damaged";
		return STORE_E_TEMP;
	}
	free(data);
	*present_r = true;
	return STORE_OK;
}

enum store_status store_acl_get(struct store_user *u, const char *folder, struct store_acl *acl_r,
				bool *present_r, const char **error_r)
{
	enum store_status st = STORE_OK;
	char *dir = folder_dir(u, folder, &st, error_r);
	bool present;

	acl_r->entries = NULL;
	acl_r->count = 0;
	if (dir == NULL)
		return st;
	pthread_mutex_lock(&u->lock);
	st = read_acl(dir, acl_r, &present, error_r);
	pthread_mutex_unlock(&u->lock);
	free(dir);
	if (present_r != NULL)
		*present_r = present;
	return st;
}

/* Raised by every ACL change (process-wide): sessions holding rights
 * computed earlier compare it and compute them again. */
static _Atomic uint64_t acl_generation = 1;

uint64_t store_acl_generation(void)
{
	return atomic_load_explicit(&acl_generation, memory_order_acquire);
}

static pthread_mutex_t owners_lock = PTHREAD_MUTEX_INITIALIZER;

/* Adds "domain TAB user" to mail/#acl-owners unless it is there. */
static enum store_status note_owner(struct store_user *u, const char **error_r)
{
	char *path = xasprintf("%s/" ACL_OWNERS_FILE, u->store->mail_dir), *data = NULL;
	char *line = xasprintf("%s\t%s\n", u->domain, u->name);
	size_t len = 0, llen = strlen(line);
	enum store_status st = STORE_OK;
	bool found = false;

	pthread_mutex_lock(&owners_lock);
	if (fileio_read_all(path, ACL_OWNERS_MAX, &data, &len) < 0) {
		if (errno != ENOENT) {
			*error_r = store_errf("cannot read %s: %s", path, strerror(errno));
			st = STORE_E_TEMP;
			goto out;
		}
		data = xstrdup("");
		len = 0;
	}
	for (size_t pos = 0; pos < len && !found;) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - data) + 1 : len;

		found = end - pos == llen && memcmp(data + pos, line, llen) == 0;
		pos = end;
	}
	if (!found) {
		char *all = xmalloc(len + llen + 1);
		const char *werr;

		memcpy(all, data, len);
		memcpy(all + len, line, llen + 1);
		if (fileio_write_atomic(path, all, len + llen, STORE_FILE_MODE, &werr) < 0) {
			*error_r = store_errf("cannot write %s: %s", path, werr);
			st = store_errno_status(errno);
		}
		free(all);
	}
out:
	pthread_mutex_unlock(&owners_lock);
	free(data);
	free(line);
	free(path);
	return st;
}

enum store_status store_acl_set(struct store_user *u, const char *folder, const char *identifier,
				bool negative, enum store_acl_mod mod, uint32_t rights,
				size_t max_entries, const char **error_r)
{
	enum store_status st = STORE_OK;
	char *dir, *path = NULL, *text = NULL;
	struct store_acl acl;
	bool present;

	if (!store_acl_identifier_valid(identifier, strlen(identifier))) {
		*error_r = "invalid identifier";
		return STORE_E_INVALID;
	}
	dir = folder_dir(u, folder, &st, error_r);
	if (dir == NULL)
		return st;
	pthread_mutex_lock(&u->lock);
	st = read_acl(dir, &acl, &present, error_r);
	if (st != STORE_OK)
		goto out;
	if (store_acl_apply(&acl, identifier, negative, mod, rights, max_entries) < 0) {
		*error_r = "too many ACL entries on this folder";
		st = STORE_E_LIMIT;
		goto out;
	}
	path = xasprintf("%s/" ACL_FILE, dir);
	if (acl.count == 0) {
		if (present && fileio_unlink(path) < 0 && errno != ENOENT) {
			*error_r = store_errf("cannot remove the ACL: %s", strerror(errno));
			st = store_errno_status(errno);
		} else if (present && u->store->set.fsync && fileio_fsync_parent(path) < 0) {
			*error_r = store_errf("cannot sync the folder: %s", strerror(errno));
			st = store_errno_status(errno);
		}
		goto out;
	}
	text = store_acl_format(&acl);
	{
		const char *werr;

		if (fileio_write_atomic(path, text, strlen(text), STORE_FILE_MODE, &werr) < 0) {
			*error_r = store_errf("cannot write the ACL: %s", werr);
			st = store_errno_status(errno);
			goto out;
		}
	}
out:
	/* raised before the caller answers, so that a command another
	 * session sends after that answer sees the change */
	if (st == STORE_OK)
		atomic_fetch_add_explicit(&acl_generation, 1, memory_order_acq_rel);
	pthread_mutex_unlock(&u->lock);
	if (st == STORE_OK && acl.count > 0)
		st = note_owner(u, error_r);
	store_acl_free(&acl);
	free(text);
	free(path);
	free(dir);
	return st;
}

enum store_status store_acl_owners(struct store *store, struct store_acl_owner **owners_r,
				   size_t *count_r, const char **error_r)
{
	char *path = xasprintf("%s/" ACL_OWNERS_FILE, store->mail_dir), *data;
	struct store_acl_owner *owners = NULL;
	size_t len, n = 0;

	*owners_r = NULL;
	*count_r = 0;
	pthread_mutex_lock(&owners_lock);
	if (fileio_read_all(path, ACL_OWNERS_MAX, &data, &len) < 0) {
		int err = errno;

		pthread_mutex_unlock(&owners_lock);
		free(path);
		if (err == ENOENT)
			return STORE_OK;
		*error_r = store_errf("cannot read the list of sharers: %s", strerror(err));
		return STORE_E_TEMP;
	}
	pthread_mutex_unlock(&owners_lock);
	free(path);
	for (size_t pos = 0; pos < len;) {
		const char *line = data + pos, *nl = memchr(line, '\n', len - pos), *tab;
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;

		pos += llen + 1;
		tab = memchr(line, '\t', llen);
		if (tab == NULL || tab == line || (size_t)(tab - line) + 1 >= llen)
			continue;
		owners = xreallocarray(owners, n + 1, sizeof(*owners));
		owners[n].domain = xstrndup(line, (size_t)(tab - line));
		owners[n].user = xstrndup(tab + 1, llen - (size_t)(tab - line) - 1);
		n++;
	}
	free(data);
	*owners_r = owners;
	*count_r = n;
	return STORE_OK;
}

void store_acl_owners_free(struct store_acl_owner **owners, size_t count)
{
	if (*owners == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free((*owners)[i].domain);
		free((*owners)[i].user);
	}
	free(*owners);
	*owners = NULL;
}
