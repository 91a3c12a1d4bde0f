/*
 * The SASL engine's glue to the directory (users.cfg): a struct
 * sasl_backend over one directory snapshot, the directory's secrets hook,
 * and the Kerberos realm of a domain.
 *
 * The backend borrows the snapshot: the front end takes a reference when
 * the session starts (directory_current) and keeps it until the sasl
 * server is freed, so every pointer handed to the engine stays valid even
 * if a reload swaps the snapshot meanwhile.
 */
#include "auth/auth_private.h"
#include "auth/auth_cache.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "directory/directory.h"

/* Per-backend data: the snapshot, and the realm and lower-case name of
 * each of its domains, computed once. */
struct dir_backend {
	struct directory *dir;
	char **realms;              /* per domain, in snapshot order */
	const char **domain_names;  /* NULL-terminated, for DIGEST-MD5 */
	char **lowered;             /* lower-case domain names, per domain */
	struct auth_cache *cache;   /* NULL: every password is checked in full */
};

char *auth_domain_realm(const struct directory *dir, const char *domain)
{
	const struct dir_domain *d = directory_find_local_domain(dir, domain);
	char *r;

	if (d != NULL)
		return directory_domain_realm(d);
	/* Not a domain of ours: the convention (MIT's default domain_realm
	 * mapping) is the name in upper case. */
	r = xstrdup(domain);
	for (char *p = r; *p != '\0'; p++)
		*p = (char)toupper((unsigned char)*p);
	return r;
}

static size_t domain_index(const struct dir_backend *b, const struct dir_domain *d)
{
	for (size_t i = 0; i < b->dir->domain_count; i++)
		if (b->dir->domains[i] == d)
			return i;
	panic("auth_directory: user's domain not in its snapshot");
}

static int dir_lookup(void *context, const char *login, struct sasl_user *user_r)
{
	struct dir_backend *b = context;
	const struct dir_user *u = directory_find_user(b->dir, login);
	size_t i;

	if (u == NULL)
		return 0;
	i = domain_index(b, u->domain);
	user_r->identity = u->address;
	user_r->name = u->name;
	user_r->domain = b->lowered[i];
	user_r->realm = b->realms[i];
	user_r->enabled = u->enabled;
	user_r->handle = u;
	return 1;
}

/* The password check of PLAIN and LOGIN (so of IMAP LOGIN, POP3 USER/PASS
 * and SMTP AUTH too): the credential cache first, then yescrypt.  The cache
 * can only say yes to the password that last matched this very stored
 * hash; anything else gets the full check.  Unknown users, users without a
 * password and passwords SASLprep refuses go straight to the full check,
 * which does the same work for them as for a wrong password. */
static bool dir_verify_password(void *context, const struct sasl_user *user, const char *password)
{
	struct dir_backend *b = context;
	const struct dir_user *u = user != NULL ? user->handle : NULL;
	const char *reason;
	char *prepared = NULL;
	bool ok;

	if (b->cache == NULL || u == NULL || u->password_hash == NULL || password == NULL ||
	    strlen(password) > DIRECTORY_MAX_PASSWORD ||
	    auth_saslprep(password, false, &prepared, &reason) < 0)
		return directory_verify_password(u, password);
	ok = auth_cache_lookup(b->cache, user->identity, u->password_hash, prepared);
	if (!ok) {
		ok = directory_verify_password(u, password);
		/* Only successes, and only of enabled users: a disabled
		 * user's login fails in sasl_authorize anyway. */
		if (ok && user->enabled)
			auth_cache_remember(b->cache, user->identity, u->password_hash, prepared);
	}
	explicit_bzero(prepared, strlen(prepared));
	free(prepared);
	return ok;
}

void auth_directory_backend_set_cache(struct sasl_backend *backend, struct auth_cache *cache)
{
	struct dir_backend *b = backend->context;

	b->cache = cache;
}

static const char *dir_secret(void *context, const struct sasl_user *user, const char *mechanism)
{
	const struct dir_secret *sec = directory_user_secret(user->handle, mechanism);

	(void)context;
	return sec != NULL ? sec->value : NULL;
}

static char *dir_principal_login(void *context, const char *name, const char *realm)
{
	struct dir_backend *b = context;

	/* Kerberos realms are case-sensitive. */
	for (size_t i = 0; i < b->dir->domain_count; i++)
		if (strcmp(b->realms[i], realm) == 0)
			return xasprintf("%s@%s", name, b->lowered[i]);
	return NULL;
}

char *auth_account_key(const struct directory *dir, const char *login)
{
	char *key;

	if (strchr(login, '@') == NULL && dir != NULL && dir->primary != NULL)
		key = xasprintf("%s@%s", login, dir->primary->name);
	else
		key = xstrdup(login);
	for (char *p = key; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return key;
}

static char *dir_account_key(void *context, const char *login)
{
	struct dir_backend *b = context;

	return auth_account_key(b->dir, login);
}

void auth_directory_backend_init(struct sasl_backend *backend, struct directory *dir)
{
	struct dir_backend *b = xcalloc(1, sizeof(*b));
	size_t n = dir->domain_count;

	b->dir = dir;
	b->realms = xcalloc(n + 1, sizeof(*b->realms));
	b->lowered = xcalloc(n + 1, sizeof(*b->lowered));
	b->domain_names = xcalloc(n + 1, sizeof(*b->domain_names));
	for (size_t i = 0, j = 0; i < n; i++) {
		b->realms[i] = auth_domain_realm(dir, dir->domains[i]->name);
		b->lowered[i] = xstrdup(dir->domains[i]->name);
		for (char *p = b->lowered[i]; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		/* The primary domain first: clients that take the first realm
		 * offered then get the one bare names belong to. */
		if (dir->domains[i] == dir->primary) {
			memmove(b->domain_names + 1, b->domain_names, j * sizeof(*b->domain_names));
			b->domain_names[0] = b->lowered[i];
		} else {
			b->domain_names[j] = b->lowered[i];
		}
		j++;
	}
	memset(backend, 0, sizeof(*backend));
	backend->lookup = dir_lookup;
	backend->verify_password = dir_verify_password;
	backend->secret = dir_secret;
	backend->principal_login = dir_principal_login;
	backend->account_key = dir_account_key;
	backend->digest_realms = b->domain_names;
	backend->context = b;
}

void auth_directory_backend_deinit(struct sasl_backend *backend)
{
	struct dir_backend *b = backend->context;

	if (b == NULL)
		return;
	for (size_t i = 0; i < b->dir->domain_count; i++) {
		free(b->realms[i]);
		free(b->lowered[i]);
	}
	free(b->realms);
	free(b->lowered);
	free(b->domain_names);
	free(b);
	memset(backend, 0, sizeof(*backend));
}

int auth_derive_secrets(const char *user, const char *domain, const char *password,
			struct dir_secret **secrets_r, size_t *n_r, char **error_r)
{
	struct auth_secret *list;
	struct dir_secret *out;
	size_t n;

	if (auth_derive(user, domain, password, &list, &n, error_r) < 0)
		return -1;
	out = xcalloc(n, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		/* Hand the strings over rather than copy: no second copy of a
		 * secret to wipe. */
		out[i].mechanism = list[i].mechanism;
		out[i].value = list[i].value;
	}
	free(list);
	*secrets_r = out;
	*n_r = n;
	return 0;
}
