/*
 * users.cfg snapshots: names and addresses, password hashes, the
 * per-mechanism secrets hook, the life of a snapshot, its indexes and the
 * checks every snapshot passes, and lookups (see directory.h).
 *
 * The directory sits above core and below auth, store and the front ends.
 * It knows nothing of protocols: it answers "who is this login, and is
 * this their password" and "what does this address deliver to", and turns
 * snapshots into files and back.  Snapshots are immutable once published,
 * so lookups take no lock; a reload or a mutation makes a new snapshot.
 */
#include "directory/directory_private.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"

/* ---- names and addresses ------------------------------------------------ */

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
	else if (name[0] == '#')
		reason = "starts with '#' (reserved: #public owns the public folders)";
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

bool directory_valid_realm(const char *realm)
{
	size_t n = 0;

	for (const char *p = realm; *p != '\0'; p++, n++) {
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
			return false;
	}
	return n > 0 && n <= 253;
}

char *directory_domain_realm(const struct dir_domain *d)
{
	char *r;

	if (d->realm != NULL)
		return xstrdup(d->realm);
	r = xstrdup(d->name);
	for (char *p = r; *p != '\0'; p++)
		*p = (char)toupper((unsigned char)*p);
	return r;
}

bool directory_valid_domain_name(const char *name)
{
	return cfg_valid_hostname(name);
}

bool directory_valid_address(const char *address, const char **reason_r)
{
	const char *at = strrchr(address, '@');
	const char *reason = NULL;
	char *local;

	if (strlen(address) > DIRECTORY_MAX_ADDRESS)
		reason = "longer than 254 characters";
	else if (at == NULL)
		reason = "no '@' and domain";
	else if (!directory_valid_domain_name(at + 1))
		reason = "the domain is not a valid host name";
	if (reason == NULL) {
		local = xstrndup(address, (size_t)(at - address));
		if (!directory_valid_user_name(local, &reason)) {
			/* reason is static; say which part it is about */
			if (strcmp(reason, "contains '@'") == 0)
				reason = "more than one '@'";
			else if (strcmp(reason, "empty") == 0)
				reason = "nothing before the '@'";
		}
		free(local);
	}
	if (reason_r != NULL)
		*reason_r = reason;
	return reason == NULL;
}

char *dir_lower_dup(const char *s)
{
	char *copy = xstrdup(s);

	for (char *p = copy; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return copy;
}

char *dir_make_address(const char *name, const char *domain)
{
	char *a = xasprintf("%s@%s", name, domain);

	for (char *p = a; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return a;
}

char *dir_qualify(const char *addr, const char *domain)
{
	const char *at = strrchr(addr, '@');
	char *q;

	if (at == NULL)
		q = xasprintf("%s@%s", addr, domain);
	else
		q = xstrdup(addr);
	/* the domain part is case-insensitive: store it in lower case */
	for (char *p = strrchr(q, '@') + 1; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return q;
}

bool dir_has_control_chars(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

/* Length of the UTF-8 sequence at s (1..4), or 0 when it is not valid
 * (overlong forms, surrogates, above U+10FFFF, and U+FFFE/U+FFFF, which
 * XML does not allow). */
static size_t utf8_len(const unsigned char *s)
{
	unsigned cp;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		cp = s[0] & 0x1f;
		n = 2;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		cp = s[0] & 0x0f;
		n = 3;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		cp = s[0] & 0x07;
		n = 4;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff)
		return 0;
	return n;
}

bool dir_valid_text(const char *s, size_t max, bool multiline, const char **reason_r)
{
	const unsigned char *p = (const unsigned char *)s;

	if (strlen(s) > max) {
		*reason_r = "too long";
		return false;
	}
	while (*p != '\0') {
		size_t n = utf8_len(p);

		if (n == 0) {
			*reason_r = "not valid UTF-8";
			return false;
		}
		if (n == 1 && (*p < 0x20 || *p == 0x7f) && !(multiline && (*p == '\n' || *p == '\t'))) {
			*reason_r = "contains control characters";
			return false;
		}
		p += n;
	}
	return true;
}

bool dir_valid_mechanism(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > DIRECTORY_MAX_MECHANISM)
		return false;
	for (; *s != '\0'; s++) {
		if (!isupper((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '-' && *s != '_')
			return false;
	}
	return true;
}

bool dir_valid_secret_value(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > DIRECTORY_MAX_SECRET)
		return false;
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	}
	return true;
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

bool dir_check_scheme(const char *scheme, const char *hash, bool *legacy_r, const char **reason_r)
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

static directory_prepare_fn *prepare_hook;

void directory_set_prepare_hook(directory_prepare_fn *fn)
{
	__atomic_store_n(&prepare_hook, fn, __ATOMIC_RELEASE);
}

/* The hook's form of password (a copy without a hook), or NULL with
 * *error_r. */
static char *prepare_password(const char *password, bool stored, char **error_r)
{
	directory_prepare_fn *fn = __atomic_load_n(&prepare_hook, __ATOMIC_ACQUIRE);
	char *prepared = NULL;

	if (fn == NULL)
		return xstrdup(password);
	if (fn(password, stored, &prepared, error_r) < 0)
		return NULL;
	return prepared;
}

static void free_password(char *password)
{
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
}

int directory_hash_password(const char *raw, char **hash_r, char **error_r)
{
	struct crypt_data *data;
	char *salt, *out, *password;

	if (check_password_text(raw, error_r) < 0)
		return -1;
	password = prepare_password(raw, true, error_r);
	if (password == NULL)
		return -1;
	if (check_password_text(password, error_r) < 0) {
		free_password(password);
		return -1;
	}
	/* count 0: libcrypt's default cost; NULL rbytes: the OS's random bytes. */
	salt = crypt_gensalt_ra("$y$", 0, NULL, 0);
	if (salt == NULL) {
		*error_r = xasprintf("cannot make a yescrypt salt: %s", strerror(errno));
		free_password(password);
		return -1;
	}
	/* crypt_data is about 32 KB: keep it off the (event loop's) stack. */
	data = xcalloc(1, sizeof(*data));
	out = crypt_rn(password, salt, data, (int)sizeof(*data));
	free(salt);
	free_password(password);
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

bool directory_verify_password(const struct dir_user *user, const char *raw)
{
	struct crypt_data *data;
	const char *setting, *out;
	char *error = NULL, *password;
	bool real = user != NULL && user->password_hash != NULL;
	bool ok = false;

	if (raw == NULL || strlen(raw) > DIRECTORY_MAX_PASSWORD)
		return false;
	password = prepare_password(raw, false, &error);
	if (password == NULL) {
		/* Refused by SASLprep: no stored password can match, but do
		 * the same work as for a wrong one. */
		free(error);
		real = false;
		password = xstrdup(raw);
	}

	if (real) {
		setting = user->password_hash;
	} else {
		/* Unknown user or no password: spend the same effort anyway. */
		pthread_once(&dummy_once, dummy_init);
		setting = dummy_setting;
	}
	if (strlen(password) > DIRECTORY_MAX_PASSWORD || setting[0] == '\0') {
		free_password(password);
		return false;
	}
	data = xcalloc(1, sizeof(*data));
	out = crypt_rn(password, setting, data, (int)sizeof(*data));
	free_password(password);
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

/* ---- the secrets hook --------------------------------------------------- */

static directory_secrets_fn *secrets_hook;

void directory_set_secrets_hook(directory_secrets_fn *fn)
{
	__atomic_store_n(&secrets_hook, fn, __ATOMIC_RELEASE);
}

void directory_secrets_free(struct dir_secret *secrets, size_t n)
{
	for (size_t i = 0; i < n && secrets != NULL; i++) {
		free(secrets[i].mechanism);
		if (secrets[i].value != NULL) {
			explicit_bzero(secrets[i].value, strlen(secrets[i].value));
			free(secrets[i].value);
		}
	}
	free(secrets);
}

int dir_derive_secrets(const char *user, const char *domain, const char *password,
		       struct dir_secret **secrets_r, size_t *n_r, char **error_r)
{
	directory_secrets_fn *fn = __atomic_load_n(&secrets_hook, __ATOMIC_ACQUIRE);
	struct dir_secret *secrets = NULL;
	size_t n = 0;
	char *error = NULL;

	*secrets_r = NULL;
	*n_r = 0;
	if (fn == NULL)
		return 0;
	if (fn(user, domain, password, &secrets, &n, &error) < 0) {
		*error_r = xasprintf("cannot derive the password's secrets: %s",
				     error != NULL ? error : "unknown error");
		free(error);
		directory_secrets_free(secrets, n);
		return -1;
	}
	/* What the hook returns is checked like a file's <secret>s. */
	if (n > DIRECTORY_MAX_SECRETS) {
		*error_r = xstrdup("the secrets hook returned too many secrets");
		directory_secrets_free(secrets, n);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		bool ok = secrets[i].mechanism != NULL && secrets[i].value != NULL &&
			  dir_valid_mechanism(secrets[i].mechanism) &&
			  dir_valid_secret_value(secrets[i].value);

		for (size_t j = 0; ok && j < i; j++)
			ok = strcasecmp(secrets[i].mechanism, secrets[j].mechanism) != 0;
		if (!ok) {
			*error_r = xstrdup("the secrets hook returned an invalid or duplicate secret");
			directory_secrets_free(secrets, n);
			return -1;
		}
	}
	*secrets_r = secrets;
	*n_r = n;
	return 0;
}

/* ---- arrays ------------------------------------------------------------- */

size_t dir_capacity(size_t count)
{
	size_t cap = 4;

	while (cap < count) {
		if (cap > SIZE_MAX / 2)
			panic("directory: array too large");
		cap *= 2;
	}
	return cap;
}

void *dir_grow(void *array, size_t count, size_t size)
{
	/* capacity is 4 for 0..4 items, then the next power of two */
	if (count == 0 || (count >= 4 && (count & (count - 1)) == 0))
		return xreallocarray(array, dir_capacity(count + 1), size);
	return array;
}

void dir_strings_add_owned(struct dir_strings *s, char *item)
{
	s->items = dir_grow(s->items, s->count, sizeof(*s->items));
	s->items[s->count++] = item;
}

void dir_strings_add(struct dir_strings *s, const char *item)
{
	dir_strings_add_owned(s, xstrdup(item));
}

void dir_strings_copy(struct dir_strings *dst, const struct dir_strings *src)
{
	dst->items = NULL;
	dst->count = 0;
	if (src->count == 0)
		return;
	dst->items = xmallocarray(dir_capacity(src->count), sizeof(*dst->items));
	for (size_t i = 0; i < src->count; i++)
		dst->items[i] = xstrdup(src->items[i]);
	dst->count = src->count;
}

void dir_strings_free(struct dir_strings *s)
{
	for (size_t i = 0; i < s->count; i++)
		free(s->items[i]);
	free(s->items);
	s->items = NULL;
	s->count = 0;
}

long dir_strings_find(const struct dir_strings *s, const char *item)
{
	for (size_t i = 0; i < s->count; i++) {
		if (strcasecmp(s->items[i], item) == 0)
			return (long)i;
	}
	return -1;
}

void dir_strings_remove_at(struct dir_strings *s, size_t i)
{
	free(s->items[i]);
	memmove(&s->items[i], &s->items[i + 1], (s->count - i - 1) * sizeof(*s->items));
	s->count--;
}

struct item_pos {
	const char *item;
	size_t pos;
};

static int cmp_item_pos(const void *a, const void *b)
{
	const struct item_pos *x = a, *y = b;
	int c = strcasecmp(x->item, y->item);

	if (c != 0)
		return c;
	return (x->pos > y->pos) - (x->pos < y->pos);
}

long dir_strings_first_dup(const struct dir_strings *s)
{
	struct item_pos *sorted;
	long dup = -1;

	if (s->count < 2)
		return -1;
	/* Sorting keeps this O(n log n) for lists with many members. */
	sorted = xmallocarray(s->count, sizeof(*sorted));
	for (size_t i = 0; i < s->count; i++)
		sorted[i] = (struct item_pos){ .item = s->items[i], .pos = i };
	qsort(sorted, s->count, sizeof(*sorted), cmp_item_pos);
	/* In each run of equal items, the second is the first repetition. */
	for (size_t i = 1; i < s->count; i++) {
		if (strcasecmp(sorted[i - 1].item, sorted[i].item) == 0 &&
		    (i < 2 || strcasecmp(sorted[i - 2].item, sorted[i].item) != 0) &&
		    (dup < 0 || (long)sorted[i].pos < dup))
			dup = (long)sorted[i].pos;
	}
	free(sorted);
	return dup;
}

/* ---- snapshots ---------------------------------------------------------- */

void dir_autoreply_free(struct dir_autoreply *a)
{
	free(a->subject);
	free(a->text);
	free(a->start);
	free(a->end);
	memset(a, 0, sizeof(*a));
}

void dir_user_free(struct dir_user *u)
{
	if (u == NULL)
		return;
	free(u->name);
	free(u->address);
	free(u->full_name);
	free(u->password_scheme);
	free(u->password_hash);
	directory_secrets_free(u->secrets, u->secret_count);
	dir_strings_free(&u->aliases);
	dir_strings_free(&u->forward);
	dir_autoreply_free(&u->autoreply);
	free(u);
}

void dir_alias_free(struct dir_alias *a)
{
	if (a == NULL)
		return;
	free(a->name);
	free(a->address);
	dir_strings_free(&a->targets);
	free(a);
}

void dir_group_free(struct dir_group *g)
{
	if (g == NULL)
		return;
	free(g->name);
	free(g->address);
	dir_strings_free(&g->members);
	free(g);
}

void dir_list_free(struct dir_list *l)
{
	if (l == NULL)
		return;
	free(l->name);
	free(l->address);
	free(l->description);
	dir_strings_free(&l->moderators);
	dir_strings_free(&l->members);
	free(l);
}

void dir_domain_free(struct dir_domain *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->user_count; i++)
		dir_user_free(d->users[i]);
	for (size_t i = 0; i < d->alias_count; i++)
		dir_alias_free(d->aliases[i]);
	for (size_t i = 0; i < d->group_count; i++)
		dir_group_free(d->groups[i]);
	for (size_t i = 0; i < d->list_count; i++)
		dir_list_free(d->lists[i]);
	free(d->users);
	free(d->aliases);
	free(d->groups);
	free(d->lists);
	dir_strings_free(&d->alias_domains);
	free(d->catch_all);
	free(d->realm);
	free(d->name);
	free(d);
}

static void free_indexes(struct directory *dir)
{
	for (size_t i = 0; i < dir->entry_count; i++)
		free(dir->entries[i].key);
	free(dir->entries);
	dir->entries = NULL;
	dir->entry_count = 0;
	for (size_t i = 0; i < dir->domain_name_count; i++)
		free(dir->domain_names[i].name);
	free(dir->domain_names);
	dir->domain_names = NULL;
	dir->domain_name_count = 0;
	free(dir->index);
	dir->index = NULL;
	dir->user_count = 0;
}

static void directory_free(struct directory *dir)
{
	for (size_t i = 0; i < dir->domain_count; i++)
		dir_domain_free(dir->domains[i]);
	free(dir->domains);
	free_indexes(dir);
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

void dir_domain_add_user(struct dir_domain *d, struct dir_user *u)
{
	d->users = dir_grow(d->users, d->user_count, sizeof(*d->users));
	d->users[d->user_count++] = u;
	u->domain = d;
}

void dir_domain_add_alias(struct dir_domain *d, struct dir_alias *a)
{
	d->aliases = dir_grow(d->aliases, d->alias_count, sizeof(*d->aliases));
	d->aliases[d->alias_count++] = a;
	a->domain = d;
}

void dir_domain_add_group(struct dir_domain *d, struct dir_group *g)
{
	d->groups = dir_grow(d->groups, d->group_count, sizeof(*d->groups));
	d->groups[d->group_count++] = g;
	g->domain = d;
}

void dir_domain_add_list(struct dir_domain *d, struct dir_list *l)
{
	d->lists = dir_grow(d->lists, d->list_count, sizeof(*d->lists));
	d->lists[d->list_count++] = l;
	l->domain = d;
}

void dir_add_domain_ptr(struct directory *dir, struct dir_domain *d)
{
	dir->domains = dir_grow(dir->domains, dir->domain_count, sizeof(*dir->domains));
	dir->domains[dir->domain_count++] = d;
}

/* ---- messages ----------------------------------------------------------- */

int dir_fail(struct dir_check *c, long line, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (c->error != NULL)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		panic("directory: out of memory");
	va_end(ap);
	if (c->path != NULL) {
		c->error = cfg_errorf(c->path, line, "%s", msg);
		free(msg);
	} else {
		c->error = msg;
	}
	return -1;
}

void dir_warn(struct dir_check *c, long line, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (c->warn == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		panic("directory: out of memory");
	va_end(ap);
	cfg_warnf(c->warn, c->warn_context, c->path != NULL ? c->path : "users.cfg", line, "%s", msg);
	free(msg);
}

/* " (line N)" when the line is known, else "". */
static const char *at_line(long line, char *buf, size_t size)
{
	if (line <= 0)
		buf[0] = '\0';
	else
		snprintf(buf, size, " (line %ld)", line);
	return buf;
}

/* ---- indexes and checks ------------------------------------------------- */

static int cmp_domain_name(const void *a, const void *b)
{
	const struct dir_domain_name *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return (x->line > y->line) - (x->line < y->line);
}

static int cmp_user_address(const void *a, const void *b)
{
	const struct dir_user *const *x = a, *const *y = b;
	int c = strcmp((*x)->address, (*y)->address);

	if (c != 0)
		return c;
	return ((*x)->line > (*y)->line) - ((*x)->line < (*y)->line);
}

static int cmp_entry(const void *a, const void *b)
{
	const struct dir_entry *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c != 0)
		return c;
	return (x->line > y->line) - (x->line < y->line);
}

static const struct dir_domain_name *find_domain_name(const struct directory *dir,
						      const char *lower)
{
	size_t lo = 0, hi = dir->domain_name_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(lower, dir->domain_names[mid].name);

		if (c == 0)
			return &dir->domain_names[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct dir_entry *dir_find_entry(const struct directory *dir, const char *key)
{
	size_t lo = 0, hi = dir->entry_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, dir->entries[mid].key);

		if (c == 0)
			return &dir->entries[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int dir_canonical(const struct directory *dir, const char *address, char **key_r,
		  const struct dir_domain **domain_r, const char **reason_r)
{
	const struct dir_domain_name *dn;
	const char *at;
	char *lower, *key;

	*key_r = NULL;
	*domain_r = NULL;
	if (!directory_valid_address(address, reason_r))
		return -1;
	at = strrchr(address, '@');
	lower = dir_lower_dup(at + 1);
	dn = find_domain_name(dir, lower);
	free(lower);
	if (dn == NULL)
		return 0;
	key = xasprintf("%.*s@%s", (int)(at - address), address, dn->domain->name);
	for (char *p = key; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	*key_r = key;
	*domain_r = dn->domain;
	return 1;
}

static void add_entry(struct directory *dir, size_t *cap, char *key, enum dir_entry_kind kind,
		      const void *object, const struct dir_domain *domain, long line)
{
	struct dir_entry *e;

	if (dir->entry_count == *cap) {
		*cap = *cap == 0 ? 16 : *cap * 2;
		dir->entries = xreallocarray(dir->entries, *cap, sizeof(*dir->entries));
	}
	e = &dir->entries[dir->entry_count++];
	e->key = key;
	e->kind = kind;
	e->object = object;
	e->domain = domain;
	e->line = line;
}

/* "user john", "alias postmaster", ... for messages; full: with domain. */
static char *describe_entry(const struct dir_entry *e, bool full)
{
	const char *name = NULL, *address = NULL;

	switch (e->kind) {
	case DIR_ENTRY_USER:
	case DIR_ENTRY_USER_ALIAS: {
		const struct dir_user *u = e->object;

		name = u->name;
		address = u->address;
		break;
	}
	case DIR_ENTRY_ALIAS:
		name = ((const struct dir_alias *)e->object)->name;
		address = ((const struct dir_alias *)e->object)->address;
		break;
	case DIR_ENTRY_GROUP:
		name = ((const struct dir_group *)e->object)->name;
		address = ((const struct dir_group *)e->object)->address;
		break;
	case DIR_ENTRY_LIST:
	case DIR_ENTRY_LIST_SUBSCRIBE:
	case DIR_ENTRY_LIST_UNSUBSCRIBE:
	case DIR_ENTRY_LIST_BOUNCES:
	case DIR_ENTRY_LIST_MODERATE:
		name = ((const struct dir_list *)e->object)->name;
		address = ((const struct dir_list *)e->object)->address;
		break;
	}
	switch (e->kind) {
	case DIR_ENTRY_USER:
		return xasprintf("user %s", full ? address : name);
	case DIR_ENTRY_USER_ALIAS:
		return xasprintf("an extra address of user %s", full ? address : name);
	case DIR_ENTRY_ALIAS:
		return xasprintf("alias %s", full ? address : name);
	case DIR_ENTRY_GROUP:
		return xasprintf("group %s", full ? address : name);
	case DIR_ENTRY_LIST:
		return xasprintf("list %s", full ? address : name);
	case DIR_ENTRY_LIST_SUBSCRIBE:
		return xasprintf("the subscribe address of list %s", full ? address : name);
	case DIR_ENTRY_LIST_UNSUBSCRIBE:
		return xasprintf("the unsubscribe address of list %s", full ? address : name);
	case DIR_ENTRY_LIST_BOUNCES:
		return xasprintf("the bounce address of list %s", full ? address : name);
	case DIR_ENTRY_LIST_MODERATE:
		return xasprintf("the moderation address of list %s", full ? address : name);
	}
	return xstrdup("?");
}

static int build_domain_names(struct directory *dir, struct dir_check *c)
{
	size_t n = 0, k = 0;
	int primaries = 0;
	char where[48];

	dir->primary = NULL;
	for (size_t i = 0; i < dir->domain_count; i++) {
		n += 1 + dir->domains[i]->alias_domains.count;
		if (dir->domains[i]->primary) {
			primaries++;
			if (dir->primary == NULL)
				dir->primary = dir->domains[i];
		}
	}
	dir->domain_names = n > 0 ? xcalloc(n, sizeof(*dir->domain_names)) : NULL;
	for (size_t i = 0; i < dir->domain_count; i++) {
		const struct dir_domain *d = dir->domains[i];

		dir->domain_names[k++] = (struct dir_domain_name){
			.name = dir_lower_dup(d->name), .domain = d, .alias = false, .line = d->line,
		};
		for (size_t j = 0; j < d->alias_domains.count; j++)
			dir->domain_names[k++] = (struct dir_domain_name){
				.name = dir_lower_dup(d->alias_domains.items[j]), .domain = d,
				.alias = true, .line = d->line,
			};
	}
	dir->domain_name_count = k;
	if (k > 1)
		qsort(dir->domain_names, k, sizeof(*dir->domain_names), cmp_domain_name);
	for (size_t i = 1; i < k; i++) {
		const struct dir_domain_name *a = &dir->domain_names[i - 1], *b = &dir->domain_names[i];

		if (strcmp(a->name, b->name) != 0)
			continue;
		/* b is the later one, or the one a mutator just made */
		if (a->domain == c->fresh || (b->line != 0 && a->line == 0)) {
			const struct dir_domain_name *t = a;

			a = b;
			b = t;
		}
		if (!a->alias && !b->alias)
			return dir_fail(c, b->line, "domain %s given twice%s", b->domain->name,
					at_line(a->line, where, sizeof(where)));
		if (!b->alias)
			return dir_fail(c, b->line, "domain %s is already an alias domain of %s%s",
					b->domain->name, a->domain->name,
					at_line(a->line, where, sizeof(where)));
		if (a->alias && a->domain == b->domain)
			return dir_fail(c, b->line, "domain %s: alias domain %s given twice",
					b->domain->name, b->name);
		return dir_fail(c, b->line, "domain %s: alias domain %s is already %s %s%s",
				b->domain->name, b->name,
				a->alias ? "an alias domain of" : "the domain",
				a->domain->name, at_line(a->line, where, sizeof(where)));
	}
	if (dir->domain_count > 0 && primaries == 0)
		return dir_fail(c, dir->domains[0]->line,
				"no primary domain: mark exactly one <domain primary=\"yes\">");
	if (primaries > 1)
		return dir_fail(c, 0, "more than one primary domain: exactly one is primary");
	return 0;
}

static int build_user_index(struct directory *dir, struct dir_check *c)
{
	size_t n = 0;

	for (size_t i = 0; i < dir->domain_count; i++)
		n += dir->domains[i]->user_count;
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

			if (a == c->fresh || (a->line == 0 && b->line != 0)) {
				const struct dir_user *t = a;

				a = b;
				b = t;
			}
			if (c->path == NULL)
				return dir_fail(c, 0, "user %s already exists", b->address);
			return dir_fail(c, b->line, "user %s given twice in domain %s (first at line %ld)",
					b->name, b->domain->name, a->line);
		}
	}
	return 0;
}

/* Adds the entries of one domain, checking what needs the domain table. */
static int add_domain_entries(struct directory *dir, const struct dir_domain *d, size_t *cap,
			      struct dir_check *c)
{
	for (size_t j = 0; j < d->user_count; j++) {
		const struct dir_user *u = d->users[j];

		add_entry(dir, cap, xstrdup(u->address), DIR_ENTRY_USER, u, d, u->line);
		for (size_t k = 0; k < u->aliases.count; k++) {
			const char *a = u->aliases.items[k], *reason;
			const struct dir_domain *ad;
			char *key, *lower;
			int r = dir_canonical(dir, a, &key, &ad, &reason);

			if (r < 0)
				return dir_fail(c, u->line, "user %s: extra address '%s' is invalid: %s",
						u->name, a, reason);
			if (r == 0)
				return dir_fail(c, u->line, "user %s: extra address %s is not in one of "
						"our domains", u->name, a);
			lower = dir_lower_dup(strrchr(a, '@') + 1);
			if (strcasecmp(lower, ad->name) != 0) {
				int ret = dir_fail(c, u->line, "user %s: extra address %s is in %s, an "
						   "alias domain of %s: use the address in %s",
						   u->name, a, lower, ad->name, ad->name);

				free(lower);
				free(key);
				return ret;
			}
			free(lower);
			add_entry(dir, cap, key, DIR_ENTRY_USER_ALIAS, u, ad, u->line);
		}
	}
	for (size_t j = 0; j < d->alias_count; j++) {
		const struct dir_alias *a = d->aliases[j];

		if (a->targets.count == 0)
			return dir_fail(c, a->line, "alias %s has no <target>", a->name);
		add_entry(dir, cap, xstrdup(a->address), DIR_ENTRY_ALIAS, a, d, a->line);
	}
	for (size_t j = 0; j < d->group_count; j++) {
		const struct dir_group *g = d->groups[j];

		add_entry(dir, cap, xstrdup(g->address), DIR_ENTRY_GROUP, g, d, g->line);
		for (size_t k = 0; k < g->members.count; k++) {
			const struct dir_domain *md;
			const char *reason;
			char *key;
			int r = dir_canonical(dir, g->members.items[k], &key, &md, &reason);

			free(key);
			if (r <= 0)
				return dir_fail(c, g->line, "group %s: member %s is not a local address "
						"(a group holds local addresses; use an alias for others)",
						g->name, g->members.items[k]);
		}
	}
	for (size_t j = 0; j < d->list_count; j++) {
		const struct dir_list *l = d->lists[j];
		const char *at = strrchr(l->address, '@');
		int len = (int)(at - l->address);

		if (l->posting == DIR_LIST_POST_MODERATED && l->moderators.count == 0)
			return dir_fail(c, l->line, "list %s: posting is moderated but there is no "
					"<moderator>", l->name);
		add_entry(dir, cap, xstrdup(l->address), DIR_ENTRY_LIST, l, d, l->line);
		add_entry(dir, cap, xasprintf("%.*s-subscribe%s", len, l->address, at),
			  DIR_ENTRY_LIST_SUBSCRIBE, l, d, l->line);
		add_entry(dir, cap, xasprintf("%.*s-unsubscribe%s", len, l->address, at),
			  DIR_ENTRY_LIST_UNSUBSCRIBE, l, d, l->line);
		add_entry(dir, cap, xasprintf("%.*s-bounces%s", len, l->address, at),
			  DIR_ENTRY_LIST_BOUNCES, l, d, l->line);
		add_entry(dir, cap, xasprintf("%.*s-moderate%s", len, l->address, at),
			  DIR_ENTRY_LIST_MODERATE, l, d, l->line);
	}
	if (d->catch_all != NULL && !directory_valid_address(d->catch_all, NULL))
		return dir_fail(c, d->line, "domain %s: catch-all %s is not a valid address", d->name,
				d->catch_all);
	return 0;
}

int dir_finish(struct directory *dir, struct dir_check *c)
{
	size_t cap = 0;
	char where[48];

	free_indexes(dir);
	if (build_domain_names(dir, c) < 0 || build_user_index(dir, c) < 0)
		return -1;
	for (size_t i = 0; i < dir->domain_count; i++) {
		if (add_domain_entries(dir, dir->domains[i], &cap, c) < 0)
			return -1;
	}
	if (dir->entry_count > 1)
		qsort(dir->entries, dir->entry_count, sizeof(*dir->entries), cmp_entry);
	for (size_t i = 1; i < dir->entry_count; i++) {
		const struct dir_entry *a = &dir->entries[i - 1], *b = &dir->entries[i];
		char *da, *db;
		int ret;

		if (strcmp(a->key, b->key) != 0)
			continue;
		if (a->object == c->fresh || (a->line == 0 && b->line != 0 && b->object != c->fresh)) {
			const struct dir_entry *t = a;

			a = b;
			b = t;
		}
		da = describe_entry(a, c->path == NULL);
		db = describe_entry(b, c->path == NULL);
		if (c->path == NULL)
			ret = dir_fail(c, 0, "address %s is already taken by %s", b->key, da);
		else if (a->object == b->object)
			ret = dir_fail(c, b->line, "%s: address %s given twice", db, b->key);
		else
			ret = dir_fail(c, b->line, "%s: address %s is already taken by %s%s", db, b->key,
				       da, at_line(a->line, where, sizeof(where)));
		free(da);
		free(db);
		return ret;
	}
	return 0;
}

/* Whether a local address (key) would find something, also through the
 * subaddress separator. */
bool dir_key_exists(const struct directory *dir, const char *key)
{
	const char *at = strrchr(key, '@'), *sep;
	char *base;
	bool found;

	if (dir_find_entry(dir, key) != NULL)
		return true;
	sep = memchr(key, DIRECTORY_DEFAULT_SEPARATOR, (size_t)(at - key));
	if (sep == NULL || sep == key)
		return false;
	base = xasprintf("%.*s%s", (int)(sep - key), key, at);
	found = dir_find_entry(dir, base) != NULL;
	free(base);
	return found;
}

static void warn_dangling(const struct directory *dir, struct dir_check *c, long line,
			  const char *what, const char *name, const char *role,
			  const struct dir_strings *s)
{
	for (size_t i = 0; i < s->count; i++) {
		const struct dir_domain *d;
		const char *reason;
		char *key;

		if (dir_canonical(dir, s->items[i], &key, &d, &reason) == 1 && !dir_key_exists(dir, key))
			dir_warn(c, line, "%s %s: %s %s does not exist", what, name, role, s->items[i]);
		free(key);
	}
}

static void warn_loop(const struct directory *dir, struct dir_check *c, long line,
		      const char *what, const char *address)
{
	struct dir_resolution res;

	directory_resolve(dir, address, DIRECTORY_DEFAULT_SEPARATOR, &res);
	if (res.kind == DIR_RESOLVE_LOOP)
		dir_warn(c, line, "%s %s: %s", what, address, res.error);
	directory_resolution_free(&res);
}

void dir_warn_references(const struct directory *dir, struct dir_check *c)
{
	if (c->warn == NULL)
		return;
	for (size_t i = 0; i < dir->domain_count; i++) {
		const struct dir_domain *d = dir->domains[i];

		if (d->catch_all != NULL) {
			char *target = d->catch_all;
			struct dir_strings one = { .items = &target, .count = 1 };

			warn_dangling(dir, c, d->line, "domain", d->name, "catch-all", &one);
		}
		for (size_t j = 0; j < d->user_count; j++) {
			const struct dir_user *u = d->users[j];

			warn_dangling(dir, c, u->line, "user", u->name, "forwarding target", &u->forward);
			if (u->forward.count > 0)
				warn_loop(dir, c, u->line, "user", u->address);
		}
		for (size_t j = 0; j < d->alias_count; j++) {
			const struct dir_alias *a = d->aliases[j];

			warn_dangling(dir, c, a->line, "alias", a->name, "target", &a->targets);
			warn_loop(dir, c, a->line, "alias", a->address);
		}
		for (size_t j = 0; j < d->group_count; j++) {
			const struct dir_group *g = d->groups[j];

			warn_dangling(dir, c, g->line, "group", g->name, "member", &g->members);
			warn_loop(dir, c, g->line, "group", g->address);
		}
		for (size_t j = 0; j < d->list_count; j++) {
			const struct dir_list *l = d->lists[j];

			warn_dangling(dir, c, l->line, "list", l->name, "member", &l->members);
		}
	}
}

/* ---- lookups ------------------------------------------------------------ */

const struct dir_domain *directory_find_domain(const struct directory *dir, const char *name)
{
	for (size_t i = 0; i < dir->domain_count; i++) {
		if (strcasecmp(dir->domains[i]->name, name) == 0)
			return dir->domains[i];
	}
	return NULL;
}

const struct dir_domain *directory_find_local_domain(const struct directory *dir,
						     const char *name)
{
	const struct dir_domain_name *dn;
	char *lower;

	if (name == NULL || strlen(name) > 253)
		return NULL;
	lower = dir_lower_dup(name);
	dn = find_domain_name(dir, lower);
	free(lower);
	return dn != NULL ? dn->domain : NULL;
}

/* The entry at address (bare: the primary domain) of one kind, or NULL. */
static const void *find_kind(const struct directory *dir, const char *address,
			     enum dir_entry_kind kind)
{
	const struct dir_entry *e = NULL;
	const struct dir_domain *d;
	const char *reason;
	char *full, *key;

	if (address == NULL || address[0] == '\0' || strlen(address) > DIRECTORY_MAX_ADDRESS)
		return NULL;
	if (strchr(address, '@') != NULL) {
		full = xstrdup(address);
	} else {
		if (dir->primary == NULL)
			return NULL;
		full = xasprintf("%s@%s", address, dir->primary->name);
	}
	if (dir_canonical(dir, full, &key, &d, &reason) == 1)
		e = dir_find_entry(dir, key);
	free(key);
	free(full);
	return e != NULL && e->kind == kind ? e->object : NULL;
}

const struct dir_user *directory_find_user(const struct directory *dir, const char *login)
{
	return find_kind(dir, login, DIR_ENTRY_USER);
}

const struct dir_alias *directory_find_alias(const struct directory *dir, const char *address)
{
	return find_kind(dir, address, DIR_ENTRY_ALIAS);
}

const struct dir_group *directory_find_group(const struct directory *dir, const char *address)
{
	return find_kind(dir, address, DIR_ENTRY_GROUP);
}

const struct dir_list *directory_find_list(const struct directory *dir, const char *address)
{
	return find_kind(dir, address, DIR_ENTRY_LIST);
}

const struct dir_secret *directory_user_secret(const struct dir_user *user, const char *mechanism)
{
	for (size_t i = 0; i < user->secret_count; i++) {
		if (strcasecmp(user->secrets[i].mechanism, mechanism) == 0)
			return &user->secrets[i];
	}
	return NULL;
}
