/*
 * users.cfg: parsing, validation, lookups, password hashes, writing, and
 * the mutators that build new snapshots (see directory.h).
 *
 * The directory sits above core and below auth, store and the front ends.
 * It knows nothing of protocols: it answers "who is this login, and is
 * this their password", and turns snapshots into files and back.
 * Snapshots are immutable once published, so lookups take no lock; a
 * reload or a mutation makes a new snapshot.
 */
#include "directory/directory.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/tree.h>

#include "core/fileio.h"
#include "core/str.h"

#define ESC_MAX 64
#define FORMAT_MAX ((size_t)CFG_MAX_FILE_SIZE)

/* ---- names -------------------------------------------------------------- */

bool directory_valid_user_name(const char *name, const char **reason_r)
{
	static const char atext[] = "!#$%&'*+-=?^_`{|}~";
	size_t len = strlen(name);
	const char *reason = NULL;

	if (len == 0)
		reason = "empty";
	else if (len > DIRECTORY_MAX_USER_NAME)
		reason = "longer than 64 characters";
	else if (name[0] == '.' || name[len - 1] == '.')
		reason = "starts or ends with a dot";
	else if (strstr(name, "..") != NULL)
		reason = "contains '..'";
	for (const char *p = name; reason == NULL && *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '/')
			reason = "contains '/'";
		else if (c == '@')
			reason = "contains '@'";
		else if (c < 0x20 || c == 0x7f)
			reason = "contains control characters";
		else if (c >= 0x80)
			reason = "contains non-ASCII characters";
		else if (!isalnum(c) && c != '.' && strchr(atext, c) == NULL)
			reason = "contains characters not allowed in a mail address";
	}
	if (reason_r != NULL)
		*reason_r = reason;
	return reason == NULL;
}

bool directory_valid_domain_name(const char *name)
{
	return cfg_valid_hostname(name);
}

static char *lower_dup(const char *s)
{
	char *copy = xstrdup(s);

	for (char *p = copy; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return copy;
}

static char *make_address(const char *name, const char *domain)
{
	char *a = xasprintf("%s@%s", name, domain);

	for (char *p = a; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return a;
}

/* ---- passwords ---------------------------------------------------------- */

/* A crypt(3) string libcrypt can check: "$id$...", the characters of the
 * modular crypt format, a method libcrypt knows. */
static bool valid_hash(const char *hash, bool *legacy_r)
{
	size_t len = strlen(hash);
	const char *last;
	int check;

	*legacy_r = false;
	if (len < 4 || len > DIRECTORY_MAX_HASH || hash[0] != '$')
		return false;
	for (const char *p = hash; *p != '\0'; p++) {
		if (!isalnum((unsigned char)*p) && strchr("./$=,-", *p) == NULL)
			return false;
	}
	/* "$id$[params$]salt$digest": the digest, the last field, is 22
	 * characters or more for every method libcrypt offers (MD5-crypt's
	 * 22, bcrypt's 53 with its salt, SHA-crypt's 43 and 86). */
	last = strrchr(hash, '$');
	if (last == hash || strchr(hash + 1, '$') == last || strlen(last + 1) < 22)
		return false;
	/* yescrypt: "$y$params$salt$digest", a 43-character digest. */
	if (strncmp(hash, "$y$", 3) == 0) {
		const char *params_end = strchr(hash + 3, '$');

		if (params_end == NULL || params_end == last || strchr(params_end + 1, '$') != last ||
		    strlen(last + 1) != 43)
			return false;
	}
	check = crypt_checksalt(hash);
	if (check == CRYPT_SALT_METHOD_LEGACY) {
		*legacy_r = true;
		return true;
	}
	return check == CRYPT_SALT_OK;
}

/* Checks a hash against a scheme name; reason_r is static. */
static bool check_scheme(const char *scheme, const char *hash, bool *legacy_r,
			 const char **reason_r)
{
	if (!valid_hash(hash, legacy_r)) {
		/* Never echo the value: it may be a plaintext password. */
		*reason_r = "password is not a crypt hash (users.cfg holds hashes, never plaintext)";
		return false;
	}
	if (strcmp(scheme, "yescrypt") == 0) {
		if (strncmp(hash, "$y$", 3) != 0) {
			*reason_r = "password scheme is yescrypt but the hash is not a yescrypt hash ($y$)";
			return false;
		}
		return true;
	}
	if (strcmp(scheme, "crypt") == 0)
		return true;
	*reason_r = "unknown password scheme (yescrypt or crypt)";
	return false;
}

static int check_password_text(const char *password, char **error_r)
{
	size_t len = strlen(password);

	if (len == 0) {
		*error_r = xstrdup("empty password");
		return -1;
	}
	if (len > DIRECTORY_MAX_PASSWORD) {
		*error_r = xasprintf("password longer than %d bytes", DIRECTORY_MAX_PASSWORD);
		return -1;
	}
	return 0;
}

int directory_hash_password(const char *password, char **hash_r, char **error_r)
{
	struct crypt_data *data;
	char *salt, *out;

	if (check_password_text(password, error_r) < 0)
		return -1;
	/* count 0: libcrypt's default cost; NULL rbytes: the OS's random bytes. */
	salt = crypt_gensalt_ra("$y$", 0, NULL, 0);
	if (salt == NULL) {
		*error_r = xasprintf("cannot make a yescrypt salt: %s", strerror(errno));
		return -1;
	}
	/* crypt_data is about 32 KB: keep it off the (event loop's) stack. */
	data = xcalloc(1, sizeof(*data));
	out = crypt_rn(password, salt, data, (int)sizeof(*data));
	free(salt);
	if (out == NULL || out[0] == '*') {
		*error_r = xasprintf("cannot hash the password: %s", strerror(errno));
		explicit_bzero(data, sizeof(*data));
		free(data);
		return -1;
	}
	*hash_r = xstrdup(out);
	explicit_bzero(data, sizeof(*data));
	free(data);
	return 0;
}

static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char dummy_setting[CRYPT_GENSALT_OUTPUT_SIZE];

static void dummy_init(void)
{
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, dummy_setting, sizeof(dummy_setting)) == NULL)
		dummy_setting[0] = '\0';
}

bool directory_verify_password(const struct dir_user *user, const char *password)
{
	struct crypt_data *data;
	const char *setting, *out;
	bool real = user != NULL && user->password_hash != NULL;
	bool ok = false;

	if (real) {
		setting = user->password_hash;
	} else {
		/* Unknown user or no password: spend the same effort anyway. */
		pthread_once(&dummy_once, dummy_init);
		setting = dummy_setting;
	}
	if (password == NULL || strlen(password) > DIRECTORY_MAX_PASSWORD || setting[0] == '\0')
		return false;
	data = xcalloc(1, sizeof(*data));
	out = crypt_rn(password, setting, data, (int)sizeof(*data));
	if (real && out != NULL && out[0] != '*') {
		size_t la = strlen(out), lb = strlen(user->password_hash);

		/* The length is the format's, not a secret; the bytes are
		 * compared without an early exit. */
		if (la == lb) {
			volatile unsigned char diff = 0;

			for (size_t i = 0; i < la; i++)
				diff |= (unsigned char)(out[i] ^ user->password_hash[i]);
			ok = diff == 0;
		}
	}
	explicit_bzero(data, sizeof(*data));
	free(data);
	return ok;
}

/* ---- snapshots ---------------------------------------------------------- */

static void user_free(struct dir_user *u)
{
	if (u == NULL)
		return;
	free(u->name);
	free(u->address);
	free(u->full_name);
	free(u->password_scheme);
	free(u->password_hash);
	free(u);
}

static void domain_free(struct dir_domain *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->user_count; i++)
		user_free(d->users[i]);
	free(d->users);
	free(d->name);
	free(d);
}

static void directory_free(struct directory *dir)
{
	for (size_t i = 0; i < dir->domain_count; i++)
		domain_free(dir->domains[i]);
	free(dir->domains);
	free(dir->index);
	free(dir->path);
	free(dir);
}

struct directory *directory_new_empty(void)
{
	struct directory *dir = xcalloc(1, sizeof(*dir));

	dir->refcount = 1;
	return dir;
}

struct directory *directory_ref(struct directory *dir)
{
	int old = __atomic_fetch_add(&dir->refcount, 1, __ATOMIC_RELAXED);

	if (old <= 0)
		panic("directory_ref: snapshot already freed (refcount %d)", old);
	return dir;
}

void directory_unref(struct directory **dirp)
{
	struct directory *dir = *dirp;
	int old;

	if (dir == NULL)
		return;
	*dirp = NULL;
	old = __atomic_fetch_sub(&dir->refcount, 1, __ATOMIC_ACQ_REL);
	if (old <= 0)
		panic("directory_unref: refcount %d", old);
	if (old == 1)
		directory_free(dir);
}

static void domain_add_user(struct dir_domain *d, struct dir_user *u)
{
	d->users = xreallocarray(d->users, d->user_count + 1, sizeof(*d->users));
	d->users[d->user_count++] = u;
	u->domain = d;
}

static void dir_add_domain(struct directory *dir, struct dir_domain *d)
{
	dir->domains = xreallocarray(dir->domains, dir->domain_count + 1, sizeof(*dir->domains));
	dir->domains[dir->domain_count++] = d;
}

static int cmp_user_address(const void *a, const void *b)
{
	const struct dir_user *const *x = a, *const *y = b;

	return strcmp((*x)->address, (*y)->address);
}

/* Rebuilds the sorted index and the primary pointer.  Returns true, or
 * false with a pair of users that share an address in dup_r[0..1] (the
 * later line second). */
static bool build_index(struct directory *dir, const struct dir_user **dup_r)
{
	size_t n = 0;

	dir->primary = NULL;
	for (size_t i = 0; i < dir->domain_count; i++) {
		n += dir->domains[i]->user_count;
		if (dir->domains[i]->primary && dir->primary == NULL)
			dir->primary = dir->domains[i];
	}
	free(dir->index);
	dir->index = n > 0 ? xmallocarray(n, sizeof(*dir->index)) : NULL;
	dir->user_count = n;
	n = 0;
	for (size_t i = 0; i < dir->domain_count; i++) {
		for (size_t j = 0; j < dir->domains[i]->user_count; j++)
			dir->index[n++] = dir->domains[i]->users[j];
	}
	if (n > 1)
		qsort(dir->index, n, sizeof(*dir->index), cmp_user_address);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(dir->index[i - 1]->address, dir->index[i]->address) == 0) {
			const struct dir_user *a = dir->index[i - 1], *b = dir->index[i];

			if (a->line > b->line) {
				dup_r[0] = b;
				dup_r[1] = a;
			} else {
				dup_r[0] = a;
				dup_r[1] = b;
			}
			return false;
		}
	}
	return true;
}

const struct dir_domain *directory_find_domain(const struct directory *dir, const char *name)
{
	for (size_t i = 0; i < dir->domain_count; i++) {
		if (strcasecmp(dir->domains[i]->name, name) == 0)
			return dir->domains[i];
	}
	return NULL;
}

static const struct dir_user *find_address(const struct directory *dir, const char *address)
{
	size_t lo = 0, hi = dir->user_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(address, dir->index[mid]->address);

		if (c == 0)
			return dir->index[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct dir_user *directory_find_user(const struct directory *dir, const char *login)
{
	const struct dir_user *u;
	char *key;

	if (login == NULL || login[0] == '\0' || strlen(login) > DIRECTORY_MAX_USER_NAME + 1 + 253)
		return NULL;
	if (strchr(login, '@') != NULL) {
		key = lower_dup(login);
	} else {
		if (dir->primary == NULL)
			return NULL;
		key = make_address(login, dir->primary->name);
	}
	u = find_address(dir, key);
	free(key);
	return u;
}

/* ---- parsing ------------------------------------------------------------ */

struct parse {
	const char *path;
	cfg_warning_fn *warn;
	void *warn_context;
	char *error;
};

static int fail(struct parse *p, long line, const char *fmt, ...) PETREL_PRINTF(3, 4);
static int fail(struct parse *p, long line, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (p->error != NULL)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		panic("directory: out of memory");
	va_end(ap);
	p->error = cfg_errorf(p->path, line, "%s", msg);
	free(msg);
	return -1;
}

static char *get_attr(const xmlNode *node, const char *name)
{
	xmlChar *v = xmlGetNoNsProp(node, (const xmlChar *)name);
	char *copy;

	if (v == NULL)
		return NULL;
	copy = xstrdup(str_trim((char *)v));
	xmlFree(v);
	return copy;
}

static bool has_control_chars(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

static void warn_text(struct parse *p, const xmlNode *c)
{
	if (c->type != XML_TEXT_NODE || c->content == NULL)
		return;
	for (const xmlChar *s = c->content; *s != '\0'; s++) {
		if (!isspace(*s)) {
			char *esc = str_escape((const char *)c->parent->name, ESC_MAX);
			long line = cfg_xml_line(c);

			/* libxml2 numbers a text node by the line where it ends. */
			for (const xmlChar *q = s; *q != '\0'; q++) {
				if (*q == '\n' && line > 1)
					line--;
			}
			cfg_warnf(p->warn, p->warn_context, p->path, line,
				  "unexpected text inside <%s> (ignored)", esc);
			free(esc);
			return;
		}
	}
}

static int parse_bool_elem(struct parse *p, struct dir_user *u, const xmlNode *c, bool *val,
			   long *seen)
{
	char *text, *esc;
	long line = cfg_xml_line(c);

	if (*seen != 0)
		return fail(p, line, "user %s: <%s> given twice (first at line %ld)", u->name,
			    (const char *)c->name, *seen);
	*seen = line > 0 ? line : -1;
	cfg_xml_check_attrs(p->path, c, NULL, p->warn, p->warn_context);
	text = cfg_xml_text(p->path, c, p->warn, p->warn_context);
	if (str_to_bool(text, val) < 0) {
		esc = str_escape(text, ESC_MAX);
		fail(p, line, "user %s: <%s> '%s' is not yes or no", u->name, (const char *)c->name, esc);
		free(esc);
		free(text);
		return -1;
	}
	free(text);
	return 0;
}

static int parse_quota(struct parse *p, struct dir_user *u, const xmlNode *c)
{
	static const char *const attrs[] = { "storage", "messages", NULL };
	long line = cfg_xml_line(c);
	char *storage = get_attr(c, "storage"), *messages = get_attr(c, "messages"), *reason;
	int64_t v;
	int ret = 0;

	cfg_xml_check_attrs(p->path, c, attrs, p->warn, p->warn_context);
	if (storage != NULL) {
		if (cfg_parse_scalar(SETTING_SIZE, storage, 0, INT64_MAX, &v, &reason) < 0) {
			ret = fail(p, line, "user %s: quota storage: %s", u->name, reason);
			free(reason);
			goto out;
		}
		u->quota_storage = (uint64_t)v;
	}
	if (messages != NULL) {
		if (cfg_parse_scalar(SETTING_INT, messages, 0, INT64_MAX, &v, &reason) < 0) {
			ret = fail(p, line, "user %s: quota messages: %s", u->name, reason);
			free(reason);
			goto out;
		}
		u->quota_messages = (uint64_t)v;
	}
out:
	free(storage);
	free(messages);
	return ret;
}

static int parse_password(struct parse *p, struct dir_user *u, const xmlNode *c)
{
	static const char *const attrs[] = { "scheme", NULL };
	long line = cfg_xml_line(c);
	char *scheme = get_attr(c, "scheme");
	char *hash;
	const char *reason;
	bool legacy;

	cfg_xml_check_attrs(p->path, c, attrs, p->warn, p->warn_context);
	hash = cfg_xml_text(p->path, c, p->warn, p->warn_context);
	if (scheme == NULL)
		scheme = xstrdup("crypt");
	if (!check_scheme(scheme, hash, &legacy, &reason)) {
		free(scheme);
		free(hash);
		return fail(p, line, "user %s: %s", u->name, reason);
	}
	if (legacy)
		cfg_warnf(p->warn, p->warn_context, p->path, line,
			  "user %s: password hash uses a weak, legacy method; set a new password",
			  u->name);
	u->password_scheme = scheme;
	u->password_hash = hash;
	return 0;
}

static int parse_user(struct parse *p, struct dir_domain *d, const xmlNode *node)
{
	static const char *const attrs[] = { "name", NULL };
	long line = cfg_xml_line(node);
	long seen_full = 0, seen_pw = 0, seen_admin = 0, seen_enabled = 0, seen_quota = 0;
	struct dir_user *u;
	const char *reason;
	char *name = get_attr(node, "name");

	cfg_xml_check_attrs(p->path, node, attrs, p->warn, p->warn_context);
	if (name == NULL)
		return fail(p, line, "<user> without a name attribute");
	if (!directory_valid_user_name(name, &reason)) {
		char *esc = str_escape(name, ESC_MAX);

		fail(p, line, "invalid user name '%s': %s", esc, reason);
		free(esc);
		free(name);
		return -1;
	}
	u = xcalloc(1, sizeof(*u));
	u->name = name;
	u->address = make_address(name, d->name);
	u->full_name = xstrdup("");
	u->enabled = true;
	u->line = line;
	domain_add_user(d, u);
	for (const xmlNode *c = node->children; c != NULL; c = c->next) {
		const char *cn = (const char *)c->name;
		long cline = cfg_xml_line(c);

		warn_text(p, c);
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (strcmp(cn, "full-name") == 0) {
			if (seen_full != 0)
				return fail(p, cline, "user %s: <full-name> given twice (first at line %ld)",
					    u->name, seen_full);
			seen_full = cline > 0 ? cline : -1;
			cfg_xml_check_attrs(p->path, c, NULL, p->warn, p->warn_context);
			free(u->full_name);
			u->full_name = cfg_xml_text(p->path, c, p->warn, p->warn_context);
			if (strlen(u->full_name) > DIRECTORY_MAX_FULL_NAME)
				return fail(p, cline, "user %s: full name longer than %d bytes", u->name,
					    DIRECTORY_MAX_FULL_NAME);
			if (has_control_chars(u->full_name))
				return fail(p, cline, "user %s: full name contains control characters",
					    u->name);
		} else if (strcmp(cn, "password") == 0) {
			if (seen_pw != 0)
				return fail(p, cline, "user %s: <password> given twice (first at line %ld)",
					    u->name, seen_pw);
			seen_pw = cline > 0 ? cline : -1;
			if (parse_password(p, u, c) < 0)
				return -1;
		} else if (strcmp(cn, "admin") == 0) {
			if (parse_bool_elem(p, u, c, &u->admin, &seen_admin) < 0)
				return -1;
		} else if (strcmp(cn, "enabled") == 0) {
			if (parse_bool_elem(p, u, c, &u->enabled, &seen_enabled) < 0)
				return -1;
		} else if (strcmp(cn, "quota") == 0) {
			if (seen_quota != 0)
				return fail(p, cline, "user %s: <quota> given twice (first at line %ld)",
					    u->name, seen_quota);
			seen_quota = cline > 0 ? cline : -1;
			if (parse_quota(p, u, c) < 0)
				return -1;
		} else {
			cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
		}
	}
	return 0;
}

static int parse_domain(struct parse *p, struct directory *dir, const xmlNode *node)
{
	static const char *const attrs[] = { "name", "primary", NULL };
	long line = cfg_xml_line(node);
	char *name = get_attr(node, "name"), *primary = get_attr(node, "primary");
	const struct dir_domain *other;
	struct dir_domain *d;
	bool is_primary = false;
	int ret = -1;

	cfg_xml_check_attrs(p->path, node, attrs, p->warn, p->warn_context);
	if (name == NULL) {
		fail(p, line, "<domain> without a name attribute");
		goto out;
	}
	if (!directory_valid_domain_name(name)) {
		char *esc = str_escape(name, ESC_MAX);

		fail(p, line, "invalid domain name '%s'", esc);
		free(esc);
		goto out;
	}
	other = directory_find_domain(dir, name);
	if (other != NULL) {
		fail(p, line, "domain %s given twice (first at line %ld)", name, other->line);
		goto out;
	}
	if (primary != NULL && str_to_bool(primary, &is_primary) < 0) {
		char *esc = str_escape(primary, ESC_MAX);

		fail(p, line, "domain %s: primary '%s' is not yes or no", name, esc);
		free(esc);
		goto out;
	}
	if (is_primary) {
		for (size_t i = 0; i < dir->domain_count; i++) {
			if (dir->domains[i]->primary) {
				fail(p, line, "domain %s is primary, but so is %s (line %ld): exactly one "
				     "domain is primary", name, dir->domains[i]->name,
				     dir->domains[i]->line);
				goto out;
			}
		}
	}
	d = xcalloc(1, sizeof(*d));
	d->name = name;
	d->primary = is_primary;
	d->line = line;
	name = NULL;
	dir_add_domain(dir, d);
	for (const xmlNode *c = node->children; c != NULL; c = c->next) {
		warn_text(p, c);
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (strcmp((const char *)c->name, "user") != 0) {
			cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
			continue;
		}
		if (parse_user(p, d, c) < 0)
			goto out;
	}
	ret = 0;
out:
	free(name);
	free(primary);
	return ret;
}

/* Checks what holds across the whole directory; sets the index. */
static int check_directory(struct parse *p, struct directory *dir)
{
	const struct dir_user *dup[2];

	if (dir->domain_count > 0) {
		bool any = false;

		for (size_t i = 0; i < dir->domain_count; i++)
			any |= dir->domains[i]->primary;
		if (!any)
			return fail(p, dir->domains[0]->line,
				    "no primary domain: mark exactly one <domain primary=\"yes\">");
	}
	if (!build_index(dir, dup))
		return fail(p, dup[1]->line, "user %s given twice in domain %s (first at line %ld)",
			    dup[1]->name, dup[1]->domain->name, dup[0]->line);
	return 0;
}

int directory_parse(const char *path, const char *data, size_t len, cfg_warning_fn *warn,
		    void *warn_context, struct directory **dir_r, char **error_r)
{
	struct parse p = { .path = path, .warn = warn, .warn_context = warn_context };
	struct directory *dir;
	xmlDocPtr doc;
	const xmlNode *root;

	*dir_r = NULL;
	if (cfg_xml_read(path, data, len, "users", warn, warn_context, &doc, error_r) < 0)
		return -1;
	dir = directory_new_empty();
	dir->path = xstrdup(path);
	root = xmlDocGetRootElement(doc);
	cfg_xml_check_attrs(path, root, NULL, warn, warn_context);
	for (const xmlNode *c = root->children; c != NULL; c = c->next) {
		warn_text(&p, c);
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (strcmp((const char *)c->name, "domain") != 0) {
			cfg_xml_warn_unknown(path, c, warn, warn_context);
			continue;
		}
		if (parse_domain(&p, dir, c) < 0)
			goto fail;
	}
	if (check_directory(&p, dir) < 0)
		goto fail;
	xmlFreeDoc(doc);
	*dir_r = dir;
	return 0;
fail:
	xmlFreeDoc(doc);
	directory_unref(&dir);
	*error_r = p.error;
	return -1;
}

int directory_load(const char *config_dir, cfg_warning_fn *warn, void *warn_context,
		   struct directory **dir_r, char **error_r)
{
	char *dir, *path, *data;
	size_t len;
	int ret;

	*dir_r = NULL;
	/* Absolute, as cfg_load does, so that messages name the real file. */
	dir = realpath(config_dir, NULL);
	if (dir == NULL) {
		*error_r = xasprintf("%s: cannot open config directory: %s", config_dir, strerror(errno));
		return -1;
	}
	path = strcmp(dir, "/") == 0 ? xasprintf("/%s", CFG_USERS) : xasprintf("%s/%s", dir, CFG_USERS);
	free(dir);
	if (fileio_read_all(path, CFG_MAX_FILE_SIZE, &data, &len) < 0) {
		*error_r = errno == EFBIG
			? xasprintf("%s: file larger than %u bytes", path, CFG_MAX_FILE_SIZE)
			: xasprintf("%s: cannot read: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	ret = directory_parse(path, data, len, warn, warn_context, dir_r, error_r);
	explicit_bzero(data, len);  /* hashes: no copies left lying around */
	free(data);
	free(path);
	return ret;
}

/* ---- writing ------------------------------------------------------------ */

char *directory_format(const struct directory *dir)
{
	struct buf b;
	int ret = 0;

	buf_init(&b, FORMAT_MAX);
	ret |= buf_append_str(&b,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<!--\n"
		"  users.cfg: the domains and users of the Petrel mail server\n"
		"  (see docs/configuration.md).  Passwords are stored as hashes only:\n"
		"  set them with \"petrelctl user passwd\".  After a hand edit run\n"
		"  \"petrelctl reload\"; an invalid file is refused and the running\n"
		"  directory stays.\n"
		"-->\n"
		"<users>\n");
	for (size_t i = 0; i < dir->domain_count && ret == 0; i++) {
		const struct dir_domain *d = dir->domains[i];

		ret |= buf_append_str(&b, "  <domain name=\"");
		ret |= cfg_xml_escape_append(&b, d->name);
		ret |= buf_printf(&b, "\" primary=\"%s\">\n", d->primary ? "yes" : "no");
		for (size_t j = 0; j < d->user_count && ret == 0; j++) {
			const struct dir_user *u = d->users[j];

			ret |= buf_append_str(&b, "    <user name=\"");
			ret |= cfg_xml_escape_append(&b, u->name);
			ret |= buf_append_str(&b, "\">\n");
			if (u->full_name[0] != '\0') {
				ret |= buf_append_str(&b, "      <full-name>");
				ret |= cfg_xml_escape_append(&b, u->full_name);
				ret |= buf_append_str(&b, "</full-name>\n");
			}
			if (u->password_hash != NULL) {
				ret |= buf_append_str(&b, "      <password scheme=\"");
				ret |= cfg_xml_escape_append(&b, u->password_scheme);
				ret |= buf_append_str(&b, "\">");
				ret |= cfg_xml_escape_append(&b, u->password_hash);
				ret |= buf_append_str(&b, "</password>\n");
			}
			ret |= buf_printf(&b, "      <admin>%s</admin>\n", u->admin ? "yes" : "no");
			ret |= buf_printf(&b, "      <enabled>%s</enabled>\n", u->enabled ? "yes" : "no");
			ret |= buf_append_str(&b, "      <quota storage=\"");
			ret |= cfg_format_scalar(SETTING_SIZE, (int64_t)u->quota_storage, &b);
			ret |= buf_printf(&b, "\" messages=\"%llu\"/>\n",
					  (unsigned long long)u->quota_messages);
			ret |= buf_append_str(&b, "    </user>\n");
		}
		ret |= buf_append_str(&b, "  </domain>\n");
	}
	ret |= buf_append_str(&b, "</users>\n");
	if (ret != 0)
		panic("directory_format: larger than %zu bytes", FORMAT_MAX);
	return buf_steal(&b);
}

int directory_save(const struct directory *dir, const char *path, char **error_r)
{
	char *text = directory_format(dir), *again = NULL, *error = NULL;
	struct directory *check = NULL;
	const char *werr;
	int ret = -1;

	/* What we write must load, and load as the same directory. */
	if (directory_parse(path, text, strlen(text), NULL, NULL, &check, &error) < 0) {
		*error_r = xasprintf("refusing to write an invalid directory: %s", error);
		free(error);
		goto out;
	}
	again = directory_format(check);
	if (strcmp(text, again) != 0) {
		*error_r = xasprintf("%s: refusing to write: the file would not load back the same",
				     path);
		goto out;
	}
	if (fileio_write_atomic(path, text, strlen(text), DIRECTORY_FILE_MODE, &werr) < 0) {
		*error_r = xasprintf("%s: %s", path, werr);
		goto out;
	}
	ret = 0;
out:
	directory_unref(&check);
	free(again);
	explicit_bzero(text, strlen(text));
	free(text);
	return ret;
}

/* ---- mutators ----------------------------------------------------------- */

static struct dir_user *user_copy(const struct dir_user *u)
{
	struct dir_user *c = xcalloc(1, sizeof(*c));

	c->name = xstrdup(u->name);
	c->address = xstrdup(u->address);
	c->full_name = xstrdup(u->full_name);
	c->password_scheme = u->password_scheme != NULL ? xstrdup(u->password_scheme) : NULL;
	c->password_hash = u->password_hash != NULL ? xstrdup(u->password_hash) : NULL;
	c->enabled = u->enabled;
	c->admin = u->admin;
	c->quota_storage = u->quota_storage;
	c->quota_messages = u->quota_messages;
	c->line = u->line;
	return c;
}

/* A deep copy with refcount 1, optionally leaving out one domain or user. */
static struct directory *dir_copy(const struct directory *dir, const struct dir_domain *skip_domain,
				  const struct dir_user *skip_user)
{
	struct directory *c = directory_new_empty();
	const struct dir_user *dup[2];

	c->path = dir->path != NULL ? xstrdup(dir->path) : NULL;
	for (size_t i = 0; i < dir->domain_count; i++) {
		const struct dir_domain *d = dir->domains[i];
		struct dir_domain *nd;

		if (d == skip_domain)
			continue;
		nd = xcalloc(1, sizeof(*nd));
		nd->name = xstrdup(d->name);
		nd->primary = d->primary;
		nd->line = d->line;
		for (size_t j = 0; j < d->user_count; j++) {
			if (d->users[j] != skip_user)
				domain_add_user(nd, user_copy(d->users[j]));
		}
		dir_add_domain(c, nd);
	}
	if (!build_index(c, dup))
		panic("directory: duplicate user in a valid snapshot");
	return c;
}

static struct dir_domain *copy_domain_of(struct directory *c, const struct dir_domain *d)
{
	for (size_t i = 0; i < c->domain_count; i++) {
		if (strcmp(c->domains[i]->name, d->name) == 0)
			return c->domains[i];
	}
	panic("directory: domain lost in copy");
}

int directory_add_domain(const struct directory *dir, const char *name, bool primary,
			 struct directory **dir_r, char **error_r)
{
	struct directory *c;
	struct dir_domain *d;
	const struct dir_user *dup[2];

	*dir_r = NULL;
	if (!directory_valid_domain_name(name)) {
		char *esc = str_escape(name, ESC_MAX);

		*error_r = xasprintf("invalid domain name '%s'", esc);
		free(esc);
		return -1;
	}
	if (directory_find_domain(dir, name) != NULL) {
		*error_r = xasprintf("domain %s already exists", name);
		return -1;
	}
	if (primary && dir->primary != NULL) {
		*error_r = xasprintf("%s is already the primary domain", dir->primary->name);
		return -1;
	}
	c = dir_copy(dir, NULL, NULL);
	d = xcalloc(1, sizeof(*d));
	d->name = xstrdup(name);
	d->primary = primary || dir->domain_count == 0;
	dir_add_domain(c, d);
	if (!build_index(c, dup))
		panic("directory_add_domain: duplicate user");
	*dir_r = c;
	return 0;
}

int directory_remove_domain(const struct directory *dir, const char *name,
			    struct directory **dir_r, char **error_r)
{
	const struct dir_domain *d = directory_find_domain(dir, name);

	*dir_r = NULL;
	if (d == NULL) {
		char *esc = str_escape(name, ESC_MAX);

		*error_r = xasprintf("no domain %s", esc);
		free(esc);
		return -1;
	}
	if (d->user_count > 0) {
		*error_r = xasprintf("domain %s still has %zu user%s; remove them first", d->name,
				     d->user_count, d->user_count == 1 ? "" : "s");
		return -1;
	}
	if (d->primary && dir->domain_count > 1) {
		*error_r = xasprintf("%s is the primary domain; it can only be removed last", d->name);
		return -1;
	}
	*dir_r = dir_copy(dir, d, NULL);
	return 0;
}

int directory_add_user(const struct directory *dir, const struct dir_user_spec *spec,
		       struct directory **dir_r, char **error_r)
{
	const struct dir_domain *d;
	struct directory *c;
	struct dir_user *u;
	const struct dir_user *dup[2];
	const char *reason;
	char *hash = NULL, *address;
	bool legacy;

	*dir_r = NULL;
	d = spec->domain != NULL ? directory_find_domain(dir, spec->domain) : dir->primary;
	if (d == NULL) {
		char *esc = str_escape(spec->domain != NULL ? spec->domain : "", ESC_MAX);

		*error_r = spec->domain != NULL ? xasprintf("no domain %s", esc)
			: xstrdup("no domain yet: add one first");
		free(esc);
		return -1;
	}
	if (spec->name == NULL || !directory_valid_user_name(spec->name, &reason)) {
		char *esc = str_escape(spec->name != NULL ? spec->name : "", ESC_MAX);

		*error_r = xasprintf("invalid user name '%s': %s", esc,
				     spec->name != NULL ? reason : "empty");
		free(esc);
		return -1;
	}
	address = make_address(spec->name, d->name);
	if (find_address(dir, address) != NULL) {
		*error_r = xasprintf("user %s already exists", address);
		free(address);
		return -1;
	}
	if (spec->full_name != NULL &&
	    (strlen(spec->full_name) > DIRECTORY_MAX_FULL_NAME || has_control_chars(spec->full_name) ||
	     spec->full_name[0] == ' ' ||
	     (spec->full_name[0] != '\0' && spec->full_name[strlen(spec->full_name) - 1] == ' '))) {
		*error_r = xasprintf("invalid full name: control characters, leading or trailing "
				     "spaces, or longer than %d bytes", DIRECTORY_MAX_FULL_NAME);
		free(address);
		return -1;
	}
	if (spec->quota_storage > INT64_MAX || spec->quota_messages > INT64_MAX) {
		*error_r = xstrdup("quota too large");
		free(address);
		return -1;
	}
	if (spec->password != NULL && spec->password_hash != NULL) {
		*error_r = xstrdup("give a password or a password hash, not both");
		free(address);
		return -1;
	}
	if (spec->password != NULL && directory_hash_password(spec->password, &hash, error_r) < 0) {
		free(address);
		return -1;
	}
	if (spec->password_hash != NULL) {
		if (!check_scheme(strncmp(spec->password_hash, "$y$", 3) == 0 ? "yescrypt" : "crypt",
				  spec->password_hash, &legacy, &reason)) {
			*error_r = xstrdup(reason);
			free(address);
			return -1;
		}
		hash = xstrdup(spec->password_hash);
	}
	c = dir_copy(dir, NULL, NULL);
	u = xcalloc(1, sizeof(*u));
	u->name = xstrdup(spec->name);
	u->address = address;
	u->full_name = xstrdup(spec->full_name != NULL ? spec->full_name : "");
	if (hash != NULL) {
		u->password_scheme = xstrdup(strncmp(hash, "$y$", 3) == 0 ? "yescrypt" : "crypt");
		u->password_hash = hash;
	}
	u->enabled = !spec->disabled;
	u->admin = spec->admin;
	u->quota_storage = spec->quota_storage;
	u->quota_messages = spec->quota_messages;
	domain_add_user(copy_domain_of(c, d), u);
	if (!build_index(c, dup))
		panic("directory_add_user: duplicate user after the check");
	*dir_r = c;
	return 0;
}

int directory_remove_user(const struct directory *dir, const char *login,
			  struct directory **dir_r, char **error_r)
{
	const struct dir_user *u = directory_find_user(dir, login);

	*dir_r = NULL;
	if (u == NULL) {
		char *esc = str_escape(login, ESC_MAX);

		*error_r = xasprintf("no user %s", esc);
		free(esc);
		return -1;
	}
	*dir_r = dir_copy(dir, NULL, u);
	return 0;
}

int directory_set_password(const struct directory *dir, const char *login,
			   const char *password, struct directory **dir_r, char **error_r)
{
	const struct dir_user *u = directory_find_user(dir, login);
	struct directory *c;
	struct dir_user *cu;
	char *hash;

	*dir_r = NULL;
	if (u == NULL) {
		char *esc = str_escape(login, ESC_MAX);

		*error_r = xasprintf("no user %s", esc);
		free(esc);
		return -1;
	}
	if (directory_hash_password(password, &hash, error_r) < 0)
		return -1;
	c = dir_copy(dir, NULL, NULL);
	/* c is ours and not yet published: editing it in place is fine. */
	cu = (struct dir_user *)find_address(c, u->address);
	free(cu->password_scheme);
	free(cu->password_hash);
	cu->password_scheme = xstrdup("yescrypt");
	cu->password_hash = hash;
	*dir_r = c;
	return 0;
}

int directory_write_new(const char *path, const char *domain, const char *admin_name,
			const char *admin_password, char **error_r)
{
	struct directory *empty = directory_new_empty(), *with_domain = NULL, *full = NULL;
	struct dir_user_spec spec = {
		.domain = domain, .name = admin_name, .full_name = "Administrator",
		.password = admin_password, .admin = true,
	};
	int ret = -1;

	if (directory_add_domain(empty, domain, true, &with_domain, error_r) < 0)
		goto out;
	if (directory_add_user(with_domain, &spec, &full, error_r) < 0)
		goto out;
	ret = directory_save(full, path, error_r);
out:
	directory_unref(&empty);
	directory_unref(&with_domain);
	directory_unref(&full);
	return ret;
}
