/*
 * The store, its users and the folder tree of each user: create, rename,
 * delete, list, subscriptions, special-use roles, and quota usage.
 *
 * A user's directory holds, besides the folder directories:
 *   #subscriptions   one folder name per line (UTF-8)
 *   #special-use     "\Role<TAB>folder name" per line
 * both replaced atomically under the user's lock.  Their absence at open
 * marks the user's first access: INBOX and the special-use folders are
 * created then (and INBOX at every open if it is missing).
 */
#include "store/store_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/str.h"

static const struct {
	const char *attr, *name;
} roles[STORE_ROLE_COUNT] = {
	[STORE_ROLE_NONE] = { NULL, NULL },
	[STORE_ROLE_INBOX] = { NULL, "INBOX" },
	[STORE_ROLE_SENT] = { "\\Sent", "Sent" },
	[STORE_ROLE_DRAFTS] = { "\\Drafts", "Drafts" },
	[STORE_ROLE_TRASH] = { "\\Trash", "Trash" },
	[STORE_ROLE_JUNK] = { "\\Junk", "Junk" },
	[STORE_ROLE_ARCHIVE] = { "\\Archive", "Archive" },
};

const char *store_role_attr(enum store_role role)
{
	return (unsigned)role < STORE_ROLE_COUNT ? roles[role].attr : NULL;
}

const char *store_role_default_name(enum store_role role)
{
	return (unsigned)role < STORE_ROLE_COUNT ? roles[role].name : NULL;
}

enum store_role store_role_parse(const char *attr)
{
	for (int i = 0; i < STORE_ROLE_COUNT; i++) {
		if (roles[i].attr != NULL && strcasecmp(roles[i].attr, attr) == 0)
			return (enum store_role)i;
	}
	return STORE_ROLE_NONE;
}

const char *store_status_str(enum store_status st)
{
	switch (st) {
	case STORE_OK: return "ok";
	case STORE_E_TEMP: return "temporary failure";
	case STORE_E_NOSPACE: return "no space left";
	case STORE_E_OVERQUOTA: return "over quota";
	case STORE_E_TOOBIG: return "message too big";
	case STORE_E_NOTFOUND: return "not found";
	case STORE_E_EXISTS: return "already exists";
	case STORE_E_INVALID: return "invalid";
	case STORE_E_NOPERM: return "not permitted";
	case STORE_E_LIMIT: return "limit reached";
	}
	return "unknown";
}

const char *store_errf(const char *fmt, ...)
{
	static _Thread_local char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return buf;
}

enum store_status store_errno_status(int err)
{
	return err == ENOSPC || err == EDQUOT ? STORE_E_NOSPACE : STORE_E_TEMP;
}

void store_guid(char out[33])
{
	unsigned char r[16];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		panic("store: getrandom failed");
	str_hex(r, sizeof(r), out);
}

int store_fsync_fd(const struct store *store, int fd)
{
	return store->set.fsync ? fileio_fsync(fd) : 0;
}

int store_fsync_dir(const struct store *store, const char *dir)
{
	int fd, ret;

	if (!store->set.fsync)
		return 0;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = fileio_fsync(fd);
	close(fd);
	return ret;
}

void store_settings_default(struct store_settings *set, const char *root)
{
	memset(set, 0, sizeof(*set));
	set->root = root;
	mime_limits_default(&set->mime);
	set->max_message_size = 100u * 1024 * 1024;
	set->fsync = true;
	set->hardlinks = true;
	set->check_on_open = true;
	set->delivery_key_ttl = 10 * 86400;  /* twice queue/max-time's default */
	set->background_index = true;
}

/* UIDVALIDITY: the time, or one more than the last one given out (kept in
 * mail/#uidvalidity so a restart within the same second cannot repeat). */
uint32_t store_new_uidvalidity(struct store *store)
{
	char *path = xasprintf("%s/" STORE_UIDVALIDITY_FILE, store->mail_dir), text[16];
	uint32_t uv = (uint32_t)time(NULL);
	const char *err;

	pthread_mutex_lock(&store->uv_lock);
	if (store->last_uidvalidity == 0) {
		char *data;
		size_t len;
		int64_t v;

		if (fileio_read_all(path, 64, &data, &len) == 0) {
			if (str_to_i64(str_trim(data), 1, UINT32_MAX, &v) == 0)
				store->last_uidvalidity = (uint32_t)v;
			free(data);
		}
	}
	if (uv <= store->last_uidvalidity)
		uv = store->last_uidvalidity + 1;
	if (uv == 0)
		uv = 1;
	store->last_uidvalidity = uv;
	snprintf(text, sizeof(text), "%u\n", uv);
	if (fileio_write_atomic(path, text, strlen(text), STORE_FILE_MODE, &err) < 0)
		log_warn("store", "cannot record uidvalidity: %s", err);
	pthread_mutex_unlock(&store->uv_lock);
	free(path);
	return uv;
}

int store_new(const struct store_settings *set, struct store **store_r, const char **error_r)
{
	struct store *s;
	struct stat st;

	if (set->root == NULL || stat(set->root, &st) < 0 || !S_ISDIR(st.st_mode)) {
		*error_r = store_errf("store directory %s does not exist", set->root ? set->root : "(none)");
		return -1;
	}
	s = xcalloc(1, sizeof(*s));
	s->root = realpath(set->root, NULL);
	if (s->root == NULL)
		panic("store: realpath: %s", strerror(errno));
	s->mail_dir = xasprintf("%s/mail", s->root);
	s->set = *set;
	s->set.root = s->root;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->uv_lock, NULL);
	if (mkdir(s->mail_dir, STORE_DIR_MODE) < 0 && errno != EEXIST) {
		*error_r = store_errf("cannot create %s: %s", s->mail_dir, strerror(errno));
		free(s->mail_dir);
		free(s->root);
		free(s);
		return -1;
	}
	store_checked_init(&s->checked);
	mime_init();
	indexer_start(s);
	*store_r = s;
	return 0;
}

void store_free(struct store **store)
{
	struct store *s = *store;

	if (s == NULL)
		return;
	/* Drops the references the indexer's queue holds. */
	indexer_stop(s);
	if (s->users != NULL) {
		/* A caller's bug; at shutdown, leaking beats a crash. */
		log_error("store", "store_free with users still open: not freed");
		*store = NULL;
		return;
	}
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->uv_lock);
	store_checked_deinit(&s->checked);
	pthread_mutex_destroy(&s->idx_lock);
	pthread_cond_destroy(&s->idx_cond);
	free(s->mail_dir);
	free(s->root);
	free(s);
	*store = NULL;
}

/* --- users --- */

static int write_lines(struct store_user *u, const char *file, const struct buf *content)
{
	char *path = xasprintf("%s/%s", u->dir, file);
	const char *err;
	int ret = fileio_write_atomic(path, content->data != NULL ? content->data : "", content->len,
				      STORE_FILE_MODE, &err);

	if (ret < 0)
		log_error("store", "user=%s@%s cannot write %s: %s", u->name, u->domain, file, err);
	free(path);
	return ret;
}

static char *read_file(struct store_user *u, const char *file)
{
	char *path = xasprintf("%s/%s", u->dir, file), *data = NULL;
	size_t len;

	if (fileio_read_all(path, 16u * 1024 * 1024, &data, &len) < 0)
		data = NULL;
	free(path);
	return data;
}

static void save_roles(struct store_user *u)
{
	struct buf b;

	buf_init(&b, 1024 * 1024);
	for (int i = STORE_ROLE_SENT; i < STORE_ROLE_COUNT; i++) {
		if (u->roles[i] != NULL &&
		    buf_printf(&b, "%s\t%s\n", roles[i].attr, u->roles[i]) < 0)
			break;
	}
	(void)write_lines(u, STORE_SPECIAL_USE, &b);
	buf_deinit(&b);
}

static bool load_roles(struct store_user *u)
{
	char *data = read_file(u, STORE_SPECIAL_USE), *save = NULL;

	if (data == NULL)
		return false;
	for (char *line = strtok_r(data, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(line, '\t');
		enum store_role r;
		const char *reason;

		if (tab == NULL)
			continue;
		*tab = '\0';
		r = store_role_parse(line);
		if (r == STORE_ROLE_NONE || !store_folder_name_valid(tab + 1, &reason))
			continue;
		free(u->roles[r]);
		u->roles[r] = xstrdup(tab + 1);
	}
	free(data);
	return true;
}

enum store_role user_role_of(struct store_user *u, const char *name)
{
	if (store_is_inbox(name))
		return STORE_ROLE_INBOX;
	for (int i = STORE_ROLE_SENT; i < STORE_ROLE_COUNT; i++) {
		if (u->roles[i] != NULL && strcmp(u->roles[i], name) == 0)
			return (enum store_role)i;
	}
	return STORE_ROLE_NONE;
}

/* Directory of a folder; NULL with *error_r for an invalid name. */
static char *folder_dir(struct store_user *u, const char *name, const char **error_r)
{
	struct buf rel;
	char *dir;

	buf_init(&rel, PATH_MAX);
	if (store_folder_path(name, &rel, error_r) < 0) {
		buf_deinit(&rel);
		return NULL;
	}
	dir = xasprintf("%s/%s", u->dir, rel.data);
	buf_deinit(&rel);
	return dir;
}

/* Creates the directory of a folder and its #msgs (user locked). */
static enum store_status make_folder(struct store_user *u, const char *name, const char **error_r)
{
	char *dir = folder_dir(u, name, error_r), *msgs;
	enum store_status ret = STORE_OK;

	if (dir == NULL)
		return STORE_E_INVALID;
	if (strlen(dir) + 64 >= PATH_MAX) {
		free(dir);
		*error_r = "folder name too long";
		return STORE_E_LIMIT;
	}
	msgs = xasprintf("%s/" STORE_MSGS_DIR, dir);
	if (fileio_mkdir_p(msgs, STORE_DIR_MODE) < 0) {
		*error_r = store_errf("cannot create folder: %s", strerror(errno));
		ret = store_errno_status(errno);
	} else {
		/* Parents created on the way are folders too: give them #msgs. */
		char *p = xstrdup(dir);
		size_t base = strlen(u->dir);

		for (char *s = p + strlen(p); s > p + base; s--) {
			if (*s == '/') {
				char *pm;

				*s = '\0';
				if (strlen(p) <= base)
					break;
				pm = xasprintf("%s/" STORE_MSGS_DIR, p);
				(void)mkdir(pm, STORE_DIR_MODE);
				free(pm);
			}
		}
		free(p);
		(void)store_fsync_dir(u->store, dir);
	}
	free(msgs);
	free(dir);
	return ret;
}

static void save_subscriptions(struct store_user *u, char **names, size_t n)
{
	struct buf b;

	buf_init(&b, 64 * 1024 * 1024);
	for (size_t i = 0; i < n; i++) {
		if (buf_append_str(&b, names[i]) < 0 || buf_append_char(&b, '\n') < 0)
			break;
	}
	(void)write_lines(u, STORE_SUBSCRIPTIONS, &b);
	buf_deinit(&b);
}

static size_t load_subscriptions(struct store_user *u, char ***names_r)
{
	char *data = read_file(u, STORE_SUBSCRIPTIONS), *save = NULL;
	char **names = NULL;
	size_t n = 0;

	if (data != NULL) {
		for (char *l = strtok_r(data, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
			const char *reason;

			if (!store_folder_name_valid(l, &reason) || n >= STORE_MAX_FOLDERS * 2)
				continue;
			names = xreallocarray(names, n + 1, sizeof(*names));
			names[n++] = xstrdup(store_is_inbox(l) ? "INBOX" : l);
		}
		free(data);
	}
	*names_r = names;
	return n;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void subscribe_locked(struct store_user *u, const char *name, bool on)
{
	char **names;
	size_t n = load_subscriptions(u, &names), j = 0;
	bool found = false;

	for (size_t i = 0; i < n; i++) {
		if (strcmp(names[i], name) == 0) {
			found = true;
			if (!on) {
				free(names[i]);
				continue;
			}
		}
		names[j++] = names[i];
	}
	n = j;
	if (on && !found) {
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xstrdup(name);
	}
	if (on != found)
		save_subscriptions(u, names, n);
	free_names(names, n);
}

/* Removes #deleted.* directories left by a crash during a delete. */
static int remove_tree(const char *path);

static void clean_deleted(struct store_user *u)
{
	DIR *d = opendir(u->dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (str_has_prefix(de->d_name, STORE_DELETED_PREFIX)) {
			char *p = xasprintf("%s/%s", u->dir, de->d_name);

			(void)remove_tree(p);
			free(p);
		}
	}
	closedir(d);
}

static enum store_status user_setup(struct store_user *u, const char **error_r)
{
	enum store_status ret;
	char *inbox = xasprintf("%s/" STORE_INBOX_DIR, u->dir);
	struct stat st;
	bool first;

	if (fileio_mkdir_p(u->dir, STORE_DIR_MODE) < 0) {
		*error_r = store_errf("cannot create %s: %s", u->dir, strerror(errno));
		free(inbox);
		return store_errno_status(errno);
	}
	clean_deleted(u);
	if (u->name[0] == '#') {
		/* a pseudo-user (STORE_PUBLIC_USER): folders only, no INBOX */
		free(inbox);
		return STORE_OK;
	}
	first = !load_roles(u);
	if (stat(inbox, &st) < 0) {
		ret = make_folder(u, "INBOX", error_r);
		if (ret != STORE_OK) {
			free(inbox);
			return ret;
		}
		if (first)
			subscribe_locked(u, "INBOX", true);
	}
	free(inbox);
	if (first) {
		for (int r = STORE_ROLE_SENT; r < STORE_ROLE_COUNT; r++) {
			ret = make_folder(u, roles[r].name, error_r);
			if (ret != STORE_OK)
				return ret;
			u->roles[r] = xstrdup(roles[r].name);
			subscribe_locked(u, roles[r].name, true);
		}
		save_roles(u);
		log_info("store", "user=%s@%s mailbox created", u->name, u->domain);
	}
	return STORE_OK;
}

static bool path_component_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 255)
		return false;
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	}
	return true;
}

enum store_status store_user_open(struct store *store, const char *domain, const char *user,
				  struct store_user **user_r, const char **error_r)
{
	struct store_user *u;
	struct buf d, n;
	char *ldomain;
	enum store_status ret;

	if (!path_component_ok(domain) || !path_component_ok(user) ||
	    !store_utf8_valid(domain, strlen(domain)) || !store_utf8_valid(user, strlen(user))) {
		*error_r = "invalid user or domain name";
		return STORE_E_INVALID;
	}
	ldomain = xstrdup(domain);
	for (char *p = ldomain; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	buf_init(&d, 1024);
	buf_init(&n, 1024);
	/* Escaped like folder names: "..", "/", "#x" cannot leave mail/. */
	if (store_name_escape(ldomain, strlen(ldomain), &d) < 0 ||
	    store_name_escape(user, strlen(user), &n) < 0) {
		buf_deinit(&d);
		buf_deinit(&n);
		free(ldomain);
		*error_r = "invalid user or domain name";
		return STORE_E_INVALID;
	}
	pthread_mutex_lock(&store->lock);
	for (u = store->users; u != NULL; u = u->next) {
		if (strcmp(u->domain, ldomain) == 0 && strcmp(u->name, user) == 0) {
			u->refcount++;
			pthread_mutex_unlock(&store->lock);
			buf_deinit(&d);
			buf_deinit(&n);
			free(ldomain);
			*user_r = u;
			return STORE_OK;
		}
	}
	u = xcalloc(1, sizeof(*u));
	u->store = store;
	u->refcount = 1;
	u->domain = ldomain;
	u->name = xstrdup(user);
	u->dir = xasprintf("%s/%s/%s", store->mail_dir, d.data, n.data);
	buf_deinit(&d);
	buf_deinit(&n);
	pthread_mutex_init(&u->lock, NULL);
	pthread_mutex_init(&u->usage_lock, NULL);
	/* Set up under the store lock: a second opener waits for it. */
	pthread_mutex_lock(&u->lock);
	ret = user_setup(u, error_r);
	pthread_mutex_unlock(&u->lock);
	if (ret != STORE_OK) {
		pthread_mutex_unlock(&store->lock);
		for (int i = 0; i < STORE_ROLE_COUNT; i++)
			free(u->roles[i]);
		pthread_mutex_destroy(&u->lock);
		pthread_mutex_destroy(&u->usage_lock);
		free(u->dir);
		free(u->name);
		free(u->domain);
		free(u);
		return ret;
	}
	u->next = store->users;
	store->users = u;
	pthread_mutex_unlock(&store->lock);
	*user_r = u;
	return STORE_OK;
}

struct store_user *store_user_ref(struct store_user *u)
{
	pthread_mutex_lock(&u->store->lock);
	u->refcount++;
	pthread_mutex_unlock(&u->store->lock);
	return u;
}

void store_user_unref(struct store_user **user)
{
	struct store_user *u = *user, **pp;
	struct store *s;

	if (u == NULL)
		return;
	*user = NULL;
	s = u->store;
	pthread_mutex_lock(&s->lock);
	if (--u->refcount > 0) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	for (pp = &s->users; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == u) {
			*pp = u->next;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (u->folders != NULL)
		panic("store: user freed with folders open");
	for (int i = 0; i < STORE_ROLE_COUNT; i++)
		free(u->roles[i]);
	pthread_mutex_destroy(&u->lock);
	pthread_mutex_destroy(&u->usage_lock);
	free(u->dir);
	free(u->name);
	free(u->domain);
	free(u);
}

/* --- quota --- */

void store_user_set_quota(struct store_user *u, uint64_t max_bytes, uint64_t max_messages)
{
	pthread_mutex_lock(&u->usage_lock);
	u->max_bytes = max_bytes;
	u->max_messages = max_messages;
	pthread_mutex_unlock(&u->usage_lock);
}

void user_usage_add(struct store_user *u, int64_t bytes, int64_t messages)
{
	pthread_mutex_lock(&u->usage_lock);
	if (u->usage_valid) {
		u->used_bytes = (uint64_t)((int64_t)u->used_bytes + bytes);
		u->used_messages = (uint64_t)((int64_t)u->used_messages + messages);
		if ((int64_t)u->used_bytes < 0)
			u->used_bytes = 0;
		if ((int64_t)u->used_messages < 0)
			u->used_messages = 0;
	}
	pthread_mutex_unlock(&u->usage_lock);
}

/* Usage of one folder directory from its index (read-only, no rebuild), or
 * from the sizes of its files when the index cannot be read. */
static void folder_usage(const char *dir, uint64_t *bytes, uint64_t *msgs)
{
	char *path = xasprintf("%s/" STORE_INDEX, dir);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	bool done = false;

	if (access(path, F_OK) == 0 &&
	    sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		if (sqlite3_prepare_v2(db, "SELECT bytes, messages FROM folder WHERE id = 1", -1, &st, NULL) ==
		    SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
			*bytes += (uint64_t)sqlite3_column_int64(st, 0);
			*msgs += (uint64_t)sqlite3_column_int64(st, 1);
			done = true;
		}
		sqlite3_finalize(st);
	}
	if (db != NULL)
		sqlite3_close(db);
	free(path);
	if (!done) {
		char *msgs_dir = xasprintf("%s/" STORE_MSGS_DIR, dir);
		DIR *d = opendir(msgs_dir);
		struct dirent *de;

		while (d != NULL && (de = readdir(d)) != NULL) {
			struct stat sb;

			if (str_has_suffix(de->d_name, ".eml") && de->d_name[0] != '.' &&
			    fstatat(dirfd(d), de->d_name, &sb, 0) == 0 && S_ISREG(sb.st_mode)) {
				*bytes += (uint64_t)sb.st_size;
				(*msgs)++;
			}
		}
		if (d != NULL)
			closedir(d);
		free(msgs_dir);
	}
}

struct walk_entry {
	char *rel;                    /* path relative to the user dir */
};

/* Lists folder directories below the user dir (iterative, bounded). */
static size_t walk_folders(struct store_user *u, char ***rels_r)
{
	char **stack = NULL, **out = NULL;
	size_t nstack = 0, nout = 0;

	stack = xmalloc(sizeof(*stack));
	stack[nstack++] = xstrdup("");
	while (nstack > 0 && nout < STORE_MAX_FOLDERS) {
		char *rel = stack[--nstack];
		char *abs = *rel != '\0' ? xasprintf("%s/%s", u->dir, rel) : xstrdup(u->dir);
		DIR *d = opendir(abs);
		struct dirent *de;

		while (d != NULL && (de = readdir(d)) != NULL) {
			struct stat st;
			char *child;

			if (de->d_name[0] == '.' || de->d_name[0] == '#')
				continue;
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
				continue;
			child = *rel != '\0' ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
			if (nout >= STORE_MAX_FOLDERS) {
				free(child);
				break;
			}
			out = xreallocarray(out, nout + 1, sizeof(*out));
			out[nout++] = xstrdup(child);
			stack = xreallocarray(stack, nstack + 1, sizeof(*stack));
			stack[nstack++] = child;
		}
		if (d != NULL)
			closedir(d);
		free(abs);
		free(rel);
	}
	while (nstack > 0)
		free(stack[--nstack]);
	free(stack);
	*rels_r = out;
	return nout;
}

static void compute_usage(struct store_user *u)
{
	char **rels;
	size_t n;
	uint64_t bytes = 0, msgs = 0;

	pthread_mutex_lock(&u->lock);
	n = walk_folders(u, &rels);
	for (size_t i = 0; i < n; i++) {
		struct buf name;
		char *abs;

		buf_init(&name, PATH_MAX);
		if (store_folder_name_from_path(rels[i], &name) == 0) {
			abs = xasprintf("%s/%s", u->dir, rels[i]);
			folder_usage(abs, &bytes, &msgs);
			free(abs);
		}
		buf_deinit(&name);
		free(rels[i]);
	}
	free(rels);
	pthread_mutex_lock(&u->usage_lock);
	if (!u->usage_valid) {
		u->used_bytes = bytes;
		u->used_messages = msgs;
		u->usage_valid = true;
	}
	pthread_mutex_unlock(&u->usage_lock);
	pthread_mutex_unlock(&u->lock);
}

enum store_status user_usage_reserve(struct store_user *u, uint64_t bytes, uint64_t messages,
				     struct store_quota *after_r, const char **error_r)
{
	bool valid, limited;

	if (after_r != NULL)
		memset(after_r, 0, sizeof(*after_r));
	pthread_mutex_lock(&u->usage_lock);
	valid = u->usage_valid;
	limited = u->max_bytes != 0 || u->max_messages != 0;
	pthread_mutex_unlock(&u->usage_lock);
	if (!limited)
		return STORE_OK;
	if (!valid)
		compute_usage(u);
	pthread_mutex_lock(&u->usage_lock);
	if ((u->max_bytes != 0 && u->used_bytes + bytes > u->max_bytes) ||
	    (u->max_messages != 0 && u->used_messages + messages > u->max_messages)) {
		pthread_mutex_unlock(&u->usage_lock);
		*error_r = "mailbox full (quota exceeded)";
		return STORE_E_OVERQUOTA;
	}
	u->used_bytes += bytes;
	u->used_messages += messages;
	if (after_r != NULL) {
		/* Taken under the lock: concurrent deliveries each see their
		 * own step, so exactly one of them crosses a line. */
		after_r->bytes = u->used_bytes;
		after_r->messages = u->used_messages;
		after_r->max_bytes = u->max_bytes;
		after_r->max_messages = u->max_messages;
	}
	pthread_mutex_unlock(&u->usage_lock);
	return STORE_OK;
}

enum store_status store_user_quota(struct store_user *u, struct store_quota *q, const char **error_r)
{
	bool valid;

	pthread_mutex_lock(&u->usage_lock);
	valid = u->usage_valid;
	pthread_mutex_unlock(&u->usage_lock);
	if (!valid)
		compute_usage(u);
	pthread_mutex_lock(&u->usage_lock);
	q->bytes = u->used_bytes;
	q->messages = u->used_messages;
	q->max_bytes = u->max_bytes;
	q->max_messages = u->max_messages;
	pthread_mutex_unlock(&u->usage_lock);
	(void)error_r;
	return STORE_OK;
}

/* --- folder tree --- */

static int cmp_info(const void *a, const void *b)
{
	const struct store_folder_info *x = a, *y = b;
	bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;

	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x->name, y->name);
}

enum store_status store_folder_list(struct store_user *u, struct store_folder_info **list_r,
				    size_t *count_r, const char **error_r)
{
	struct store_folder_info *list = NULL;
	size_t n = 0, nsubs;
	char **rels, **subs;
	size_t nrels;

	(void)error_r;
	pthread_mutex_lock(&u->lock);
	nrels = walk_folders(u, &rels);
	nsubs = load_subscriptions(u, &subs);
	list = xcalloc(nrels + nsubs + 1, sizeof(*list));
	for (size_t i = 0; i < nrels; i++) {
		struct buf name;

		buf_init(&name, PATH_MAX);
		if (store_folder_name_from_path(rels[i], &name) == 0) {
			list[n].name = buf_steal(&name);
			list[n].exists = true;
			n++;
		}
		buf_deinit(&name);
		free(rels[i]);
	}
	free(rels);
	if (n > 0)
		qsort(list, n, sizeof(*list), cmp_info);
	/* Children: the next name in sorted order starts with "name/". */
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(list[i].name);

		for (size_t j = i + 1; j < n; j++) {
			if (strncmp(list[j].name, list[i].name, len) == 0 && list[j].name[len] == '/') {
				list[i].has_children = true;
				break;
			}
			if (strncmp(list[j].name, list[i].name, len) != 0)
				break;
		}
		list[i].role = user_role_of(u, list[i].name);
	}
	for (size_t k = 0; k < nsubs; k++) {
		struct store_folder_info key = { .name = subs[k] };
		struct store_folder_info *hit = n == 0 ? NULL : bsearch(&key, list, n, sizeof(*list), cmp_info);

		if (hit != NULL) {
			hit->subscribed = true;
		} else {
			size_t m = n + (size_t)(&list[n] - list) * 0;

			(void)m;
			list[n].name = xstrdup(subs[k]);
			list[n].subscribed = true;
			list[n].exists = false;
			n++;
		}
	}
	free_names(subs, nsubs);
	if (n > 0)
		qsort(list, n, sizeof(*list), cmp_info);
	pthread_mutex_unlock(&u->lock);
	*list_r = list;
	*count_r = n;
	return STORE_OK;
}

void store_folder_list_free(struct store_folder_info **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free((*list)[i].name);
	free(*list);
	*list = NULL;
}

static size_t count_folders(struct store_user *u)
{
	char **rels;
	size_t n = walk_folders(u, &rels);

	for (size_t i = 0; i < n; i++)
		free(rels[i]);
	free(rels);
	return n;
}

enum store_status store_folder_create(struct store_user *u, const char *name, enum store_role role,
				      const char **error_r)
{
	char *dir;
	struct stat st;
	enum store_status ret;

	if (!store_folder_name_valid(name, error_r))
		return STORE_E_INVALID;
	dir = folder_dir(u, name, error_r);
	if (dir == NULL)
		return STORE_E_INVALID;
	pthread_mutex_lock(&u->lock);
	if (stat(dir, &st) == 0) {
		ret = STORE_E_EXISTS;
		*error_r = "folder already exists";
	} else if (count_folders(u) >= STORE_MAX_FOLDERS) {
		ret = STORE_E_LIMIT;
		*error_r = "too many folders";
	} else {
		ret = make_folder(u, name, error_r);
	}
	if (ret == STORE_OK && role > STORE_ROLE_INBOX && role < STORE_ROLE_COUNT) {
		free(u->roles[role]);
		u->roles[role] = xstrdup(name);
		save_roles(u);
	}
	pthread_mutex_unlock(&u->lock);
	free(dir);
	return ret;
}

static int remove_tree(const char *path)
{
	/* Iterative post-order removal: a depth-first stack of directories. */
	char **stack = xmalloc(sizeof(*stack));
	size_t n = 0;
	int ret = 0;

	stack[n++] = xstrdup(path);
	while (n > 0) {
		char *dir = stack[n - 1];
		DIR *d = opendir(dir);
		struct dirent *de;
		bool pushed = false;

		while (d != NULL && (de = readdir(d)) != NULL) {
			struct stat st;

			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (S_ISDIR(st.st_mode)) {
				stack = xreallocarray(stack, n + 1, sizeof(*stack));
				stack[n++] = xasprintf("%s/%s", dir, de->d_name);
				pushed = true;
				break;
			}
			if (unlinkat(dirfd(d), de->d_name, 0) < 0)
				ret = -1;
		}
		if (d != NULL)
			closedir(d);
		if (pushed)
			continue;
		if (rmdir(dir) < 0 && errno != ENOENT)
			ret = -1;
		free(dir);
		n--;
		if (ret < 0)
			break;
	}
	while (n > 0)
		free(stack[--n]);
	free(stack);
	return ret;
}

/* Delivers the events of handles collected under the user lock, and drops
 * the references taken then (no lock held). */
static void notify_release(struct store_folder **list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		folder_dispatch(list[i]);
		store_folder_close(&list[i]);
	}
	free(list);
}

static bool name_under(const char *name, const char *prefix)
{
	size_t n = strlen(prefix);

	return strcmp(name, prefix) == 0 || (strncmp(name, prefix, n) == 0 && name[n] == '/');
}

enum store_status store_folder_delete(struct store_user *u, const char *name, const char **error_r)
{
	char *dir, *trash;
	struct stat st;
	struct store_folder *f;
	char **rels;
	size_t nrels;
	uint64_t bytes = 0, msgs = 0;
	char guid[33];
	struct store_folder **notify = NULL;
	size_t nnotify = 0;

	if (!store_folder_name_valid(name, error_r))
		return STORE_E_INVALID;
	if (store_is_inbox(name)) {
		*error_r = "INBOX cannot be deleted";
		return STORE_E_NOPERM;
	}
	dir = folder_dir(u, name, error_r);
	if (dir == NULL)
		return STORE_E_INVALID;
	pthread_mutex_lock(&u->lock);
	if (stat(dir, &st) < 0) {
		pthread_mutex_unlock(&u->lock);
		free(dir);
		*error_r = "no such folder";
		return STORE_E_NOTFOUND;
	}
	nrels = walk_folders(u, &rels);
	for (size_t i = 0; i < nrels; i++) {
		char *abs = xasprintf("%s/%s", u->dir, rels[i]);
		bool child = strncmp(abs, dir, strlen(dir)) == 0 && abs[strlen(dir)] == '/';

		free(abs);
		if (child) {
			for (size_t j = 0; j < nrels; j++)
				free(rels[j]);
			free(rels);
			pthread_mutex_unlock(&u->lock);
			free(dir);
			*error_r = "folder has subfolders: delete them first";
			return STORE_E_NOPERM;
		}
	}
	for (size_t j = 0; j < nrels; j++)
		free(rels[j]);
	free(rels);
	/* Open handles: close their index, mark them deleted. */
	for (f = u->folders; f != NULL; f = f->next) {
		if (strcmp(f->name, name) == 0) {
			pthread_mutex_lock(&f->lock);
			folder_close_db(f);
			f->deleted = true;
			folder_post_event(f, STORE_EV_DELETED, NULL, 0);
			pthread_mutex_unlock(&f->lock);
			notify = xreallocarray(notify, nnotify + 1, sizeof(*notify));
			f->refcount++;
			notify[nnotify++] = f;
		}
	}
	folder_usage(dir, &bytes, &msgs);
	/* Rename first: the folder disappears at once and atomically; a
	 * crash during the removal leaves #deleted.* for the next open. */
	store_guid(guid);
	trash = xasprintf("%s/" STORE_DELETED_PREFIX "%s", u->dir, guid);
	if (rename(dir, trash) < 0) {
		enum store_status ret = store_errno_status(errno);

		pthread_mutex_unlock(&u->lock);
		*error_r = store_errf("cannot delete folder: %s", strerror(errno));
		free(trash);
		free(dir);
		notify_release(notify, nnotify);
		return ret;
	}
	(void)remove_tree(trash);
	free(trash);
	for (int r = STORE_ROLE_SENT; r < STORE_ROLE_COUNT; r++) {
		if (u->roles[r] != NULL && strcmp(u->roles[r], name) == 0) {
			free(u->roles[r]);
			u->roles[r] = NULL;
			save_roles(u);
		}
	}
	pthread_mutex_unlock(&u->lock);
	user_usage_add(u, -(int64_t)bytes, -(int64_t)msgs);
	notify_release(notify, nnotify);
	free(dir);
	return STORE_OK;
}

static char *renamed(const char *name, const char *from, const char *to)
{
	return xasprintf("%s%s", to, name + strlen(from));
}

enum store_status store_folder_rename(struct store_user *u, const char *from, const char *to,
				      const char **error_r)
{
	char *src, *dst, *parent, *slash;
	struct stat st;
	struct store_folder *f;
	enum store_status ret = STORE_OK;
	struct store_folder **notify = NULL;
	size_t nnotify = 0;

	if (!store_folder_name_valid(from, error_r) || !store_folder_name_valid(to, error_r))
		return STORE_E_INVALID;
	if (store_is_inbox(to)) {
		*error_r = "cannot rename to INBOX";
		return STORE_E_EXISTS;
	}
	if (name_under(to, from)) {
		*error_r = "cannot rename a folder into itself";
		return STORE_E_NOPERM;
	}
	if (store_is_inbox(from)) {
		/* RFC 3501 6.3.5: INBOX's messages move to the new folder,
		 * INBOX stays (empty). */
		struct store_folder *in = NULL, *out = NULL;

		ret = store_folder_create(u, to, STORE_ROLE_NONE, error_r);
		if (ret != STORE_OK)
			return ret;
		ret = store_folder_open(u, "INBOX", &in, error_r);
		if (ret == STORE_OK)
			ret = store_folder_open(u, to, &out, error_r);
		if (ret == STORE_OK)
			ret = store_copy(in, out, NULL, true, NULL, error_r);
		store_folder_close(&in);
		store_folder_close(&out);
		return ret;
	}
	src = folder_dir(u, from, error_r);
	dst = folder_dir(u, to, error_r);
	if (src == NULL || dst == NULL) {
		free(src);
		free(dst);
		return STORE_E_INVALID;
	}
	pthread_mutex_lock(&u->lock);
	if (stat(src, &st) < 0) {
		ret = STORE_E_NOTFOUND;
		*error_r = "no such folder";
		goto out;
	}
	if (stat(dst, &st) == 0) {
		ret = STORE_E_EXISTS;
		*error_r = "target folder already exists";
		goto out;
	}
	if (strlen(dst) + 64 + (strlen(src) > strlen(dst) ? 0 : strlen(dst) - strlen(src)) >= PATH_MAX) {
		ret = STORE_E_LIMIT;
		*error_r = "folder name too long";
		goto out;
	}
	/* Parents of the target are created as folders. */
	parent = xstrdup(to);
	slash = strrchr(parent, '/');
	if (slash != NULL) {
		char *pdir;

		*slash = '\0';
		pdir = folder_dir(u, parent, error_r);
		if (pdir != NULL && stat(pdir, &st) < 0)
			ret = make_folder(u, parent, error_r);
		free(pdir);
	}
	free(parent);
	if (ret != STORE_OK)
		goto out;
	/* Open handles below `from` close their index (its WAL is renamed
	 * with the directory) and stay locked until their path is updated. */
	for (f = u->folders; f != NULL; f = f->next) {
		if (name_under(f->name, from)) {
			pthread_mutex_lock(&f->lock);
			folder_close_db(f);
		}
	}
	if (rename(src, dst) < 0) {
		ret = store_errno_status(errno);
		*error_r = store_errf("cannot rename folder: %s", strerror(errno));
	} else {
		(void)store_fsync_dir(u->store, u->dir);
	}
	for (f = u->folders; f != NULL; f = f->next) {
		if (name_under(f->name, from)) {
			if (ret == STORE_OK) {
				char *nn = renamed(f->name, from, to);
				char *nd = xasprintf("%s%s", dst, f->dir + strlen(src));

				free(f->name);
				free(f->dir);
				f->name = nn;
				f->dir = nd;
				folder_post_event(f, STORE_EV_RENAMED, NULL, 0);
				notify = xreallocarray(notify, nnotify + 1, sizeof(*notify));
				f->refcount++;
				notify[nnotify++] = f;
			}
			pthread_mutex_unlock(&f->lock);
		}
	}
	if (ret == STORE_OK) {
		char **subs;
		size_t nsubs = load_subscriptions(u, &subs);
		bool changed = false;

		for (int r = STORE_ROLE_SENT; r < STORE_ROLE_COUNT; r++) {
			if (u->roles[r] != NULL && name_under(u->roles[r], from)) {
				char *nn = renamed(u->roles[r], from, to);

				free(u->roles[r]);
				u->roles[r] = nn;
				changed = true;
			}
		}
		if (changed)
			save_roles(u);
		changed = false;
		for (size_t i = 0; i < nsubs; i++) {
			if (name_under(subs[i], from)) {
				char *nn = renamed(subs[i], from, to);

				free(subs[i]);
				subs[i] = nn;
				changed = true;
			}
		}
		if (changed)
			save_subscriptions(u, subs, nsubs);
		free_names(subs, nsubs);
	}
out:
	pthread_mutex_unlock(&u->lock);
	notify_release(notify, nnotify);
	free(src);
	free(dst);
	return ret;
}

enum store_status store_folder_subscribe(struct store_user *u, const char *name, bool subscribe,
					 const char **error_r)
{
	if (!store_folder_name_valid(name, error_r))
		return STORE_E_INVALID;
	pthread_mutex_lock(&u->lock);
	subscribe_locked(u, store_is_inbox(name) ? "INBOX" : name, subscribe);
	pthread_mutex_unlock(&u->lock);
	return STORE_OK;
}

/* --- open folders --- */

enum store_status store_folder_open(struct store_user *u, const char *name,
				    struct store_folder **folder_r, const char **error_r)
{
	struct store_folder *f;
	const char *canon = store_is_inbox(name) ? "INBOX" : name;
	char *dir;
	struct stat st;
	enum store_status ret;

	if (!store_folder_name_valid(name, error_r))
		return STORE_E_INVALID;
	dir = folder_dir(u, canon, error_r);
	if (dir == NULL)
		return STORE_E_INVALID;
	pthread_mutex_lock(&u->lock);
	for (f = u->folders; f != NULL; f = f->next) {
		if (strcmp(f->name, canon) == 0 && !f->deleted)
			break;
	}
	if (f == NULL) {
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			pthread_mutex_unlock(&u->lock);
			free(dir);
			*error_r = "no such folder";
			return STORE_E_NOTFOUND;
		}
		f = xcalloc(1, sizeof(*f));
		f->user = store_user_ref(u);
		f->name = xstrdup(canon);
		f->dir = dir;
		dir = NULL;
		pthread_mutex_init(&f->lock, NULL);
		pthread_mutex_init(&f->rlock, NULL);
		pthread_mutex_init(&f->ilock, NULL);
		pthread_mutex_init(&f->commit_lock, NULL);
		pthread_cond_init(&f->commit_cond, NULL);
		pthread_mutex_init(&f->ev_lock, NULL);
		pthread_mutex_init(&f->watch_lock, NULL);
		pthread_cond_init(&f->watch_cond, NULL);
		f->next = u->folders;
		u->folders = f;
	}
	f->refcount++;
	pthread_mutex_unlock(&u->lock);
	free(dir);
	/* Open (and if needed rebuild) the index now, so that errors show at
	 * open time. */
	ret = folder_lock(f, error_r);
	if (ret != STORE_OK) {
		store_folder_close(&f);
		return ret;
	}
	folder_unlock(f);
	folder_dispatch(f);
	folder_index_if_wanted(f);
	*folder_r = f;
	return STORE_OK;
}

void store_folder_close(struct store_folder **folder)
{
	struct store_folder *f = *folder, **pp;
	struct store_user *u;

	if (f == NULL)
		return;
	*folder = NULL;
	u = f->user;
	pthread_mutex_lock(&u->lock);
	if (--f->refcount > 0) {
		pthread_mutex_unlock(&u->lock);
		return;
	}
	for (pp = &u->folders; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	pthread_mutex_unlock(&u->lock);
	if (f->watches != NULL)
		panic("store: folder closed with watches");
	pthread_mutex_lock(&f->lock);
	folder_close_db(f);
	pthread_mutex_unlock(&f->lock);
	while (f->ev_head != NULL) {
		struct ev_node *n = f->ev_head;

		f->ev_head = n->next;
		free(n->uids);
		free(n);
	}
	pthread_mutex_destroy(&f->lock);
	pthread_mutex_destroy(&f->rlock);
	pthread_mutex_destroy(&f->ilock);
	pthread_mutex_destroy(&f->commit_lock);
	pthread_cond_destroy(&f->commit_cond);
	pthread_mutex_destroy(&f->ev_lock);
	pthread_mutex_destroy(&f->watch_lock);
	pthread_cond_destroy(&f->watch_cond);
	free(f->name);
	free(f->dir);
	free(f);
	store_user_unref(&u);
}

/* --- administration --- */

enum store_status store_reindex_folder(struct store_user *u, const char *name, bool rebuild,
				       struct store_reindex_result *res, const char **error_r)
{
	struct store_folder *f;
	enum store_status ret = store_folder_open(u, name, &f, error_r);

	if (ret != STORE_OK)
		return ret;
	ret = folder_lock(f, error_r);
	if (ret == STORE_OK) {
		ret = folder_reindex(f, rebuild, res, error_r);
		folder_unlock(f);
	}
	folder_dispatch(f);
	folder_index_if_wanted(f);
	store_folder_close(&f);
	return ret;
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

enum store_status store_mailbox_stats(struct store_user *u, struct store_mailbox_stats *stats,
				      const char **error_r)
{
	struct store_folder_info *list;
	size_t n;
	enum store_status ret;

	memset(stats, 0, sizeof(*stats));
	ret = store_folder_list(u, &list, &n, error_r);
	if (ret != STORE_OK)
		return ret;
	stats->folders = xcalloc(n + 1, sizeof(*stats->folders));
	for (size_t i = 0; i < n; i++) {
		struct store_folder *f;
		struct store_folder_status st;
		struct store_folder_stats *fs;
		char *p;

		if (!list[i].exists || store_folder_open(u, list[i].name, &f, error_r) != STORE_OK)
			continue;
		if (store_folder_status(f, &st, error_r) == STORE_OK) {
			fs = &stats->folders[stats->count++];
			fs->name = xstrdup(list[i].name);
			fs->role = list[i].role;
			fs->messages = st.messages;
			fs->unseen = st.unseen;
			fs->bytes = st.size;
			fs->uidvalidity = st.uidvalidity;
			fs->uidnext = st.uidnext;
			fs->highestmodseq = st.highestmodseq;
			p = folder_file(f, STORE_INDEX);
			fs->index_bytes = file_size(p);
			free(p);
			p = folder_file(f, STORE_INDEX "-wal");
			fs->index_bytes += file_size(p);
			free(p);
			stats->messages += fs->messages;
			stats->bytes += fs->bytes;
			stats->index_bytes += fs->index_bytes;
		}
		store_folder_close(&f);
	}
	store_folder_list_free(&list, n);
	return store_user_quota(u, &stats->quota, error_r);
}

void store_mailbox_stats_free(struct store_mailbox_stats *stats)
{
	for (size_t i = 0; i < stats->count; i++)
		free(stats->folders[i].name);
	free(stats->folders);
	stats->folders = NULL;
	stats->count = 0;
}
