/*
 * An in-memory struct sasl_backend for the auth tests: a few users with
 * plaintext passwords (for verify_password) and secrets derived with
 * auth_derive, so that the engine is tested without users.cfg.  Included by
 * several test files; everything is static.
 */
#ifndef PETREL_AUTH_TEST_BACKEND_H
#define PETREL_AUTH_TEST_BACKEND_H

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/sasl.h"
#include "core/cfg.h"
#include "core/str.h"

#define TB_MAX_USERS 16

struct tb_user {
	char *name;
	char *domain;          /* lower case */
	char *identity;        /* name@domain, lower case */
	char *realm;
	char *password;
	bool enabled;
	struct auth_secret *secrets;
	size_t secret_count;
	unsigned char handle;
};

struct tb {
	struct tb_user users[TB_MAX_USERS];
	size_t count;
	const char *primary;   /* bare names log in here */
	const char *realms[4];
	int lookups;
	int verifies;
	bool fail_lookups;     /* lookup returns -1 (temporary failure) */
};

static char *tb_lower(const char *s)
{
	char *r = xstrdup(s);

	for (char *p = r; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

static char *tb_upper(const char *s)
{
	char *r = xstrdup(s);

	for (char *p = r; *p != '\0'; p++)
		*p = (char)toupper((unsigned char)*p);
	return r;
}

/* Adds a user; secrets are derived unless password is NULL. */
static struct tb_user *tb_add(struct tb *tb, const char *name, const char *domain,
			      const char *password)
{
	struct tb_user *u = &tb->users[tb->count++];
	char *error = NULL;

	memset(u, 0, sizeof(*u));
	u->name = xstrdup(name);
	u->domain = tb_lower(domain);
	u->identity = xasprintf("%s@%s", name, u->domain);
	for (char *p = u->identity; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	u->realm = tb_upper(domain);
	u->password = password != NULL ? xstrdup(password) : NULL;
	u->enabled = true;
	if (password != NULL && auth_derive(name, domain, password, &u->secrets, &u->secret_count,
					     &error) < 0) {
		fprintf(stderr, "auth_derive: %s\n", error);
		abort();
	}
	return u;
}

/* Replaces (or adds) one secret of u. */
static __attribute__((unused)) void tb_set_secret(struct tb_user *u, const char *mech, const char *value)
{
	for (size_t i = 0; i < u->secret_count; i++) {
		if (strcmp(u->secrets[i].mechanism, mech) == 0) {
			free(u->secrets[i].value);
			u->secrets[i].value = value != NULL ? xstrdup(value) : NULL;
			return;
		}
	}
	u->secrets = xreallocarray(u->secrets, u->secret_count + 1, sizeof(*u->secrets));
	u->secrets[u->secret_count].mechanism = xstrdup(mech);
	u->secrets[u->secret_count++].value = value != NULL ? xstrdup(value) : NULL;
}

static void tb_free(struct tb *tb)
{
	for (size_t i = 0; i < tb->count; i++) {
		struct tb_user *u = &tb->users[i];

		free(u->name);
		free(u->domain);
		free(u->identity);
		free(u->realm);
		free(u->password);
		auth_secrets_free(&u->secrets, u->secret_count);
	}
	tb->count = 0;
}

static int tb_lookup(void *context, const char *login, struct sasl_user *user_r)
{
	struct tb *tb = context;

	tb->lookups++;
	if (tb->fail_lookups)
		return -1;
	for (size_t i = 0; i < tb->count; i++) {
		struct tb_user *u = &tb->users[i];

		if (str_iequal(login, u->identity) ||
		    (tb->primary != NULL && str_iequal(u->domain, tb->primary) &&
		     str_iequal(login, u->name))) {
			user_r->identity = u->identity;
			user_r->name = u->name;
			user_r->domain = u->domain;
			user_r->realm = u->realm;
			user_r->enabled = u->enabled;
			user_r->handle = u;
			return 1;
		}
	}
	return 0;
}

static bool tb_verify(void *context, const struct sasl_user *user, const char *password)
{
	struct tb *tb = context;
	const struct tb_user *u = user != NULL ? user->handle : NULL;

	tb->verifies++;
	return u != NULL && u->password != NULL && strcmp(u->password, password) == 0;
}

static const char *tb_secret(void *context, const struct sasl_user *user, const char *mechanism)
{
	const struct tb_user *u = user->handle;

	(void)context;
	for (size_t i = 0; i < u->secret_count; i++)
		if (strcmp(u->secrets[i].mechanism, mechanism) == 0)
			return u->secrets[i].value;
	return NULL;
}

static char *tb_principal_login(void *context, const char *name, const char *realm)
{
	struct tb *tb = context;

	for (size_t i = 0; i < tb->count; i++)
		if (strcmp(tb->users[i].realm, realm) == 0)
			return xasprintf("%s@%s", name, tb->users[i].domain);
	return NULL;
}

static void tb_backend(struct tb *tb, struct sasl_backend *b)
{
	memset(b, 0, sizeof(*b));
	b->lookup = tb_lookup;
	b->verify_password = tb_verify;
	b->secret = tb_secret;
	b->principal_login = tb_principal_login;
	b->account_key = NULL;
	b->digest_realms = tb->realms[0] != NULL ? tb->realms : NULL;
	b->context = tb;
}

/* A default configuration with every mechanism enabled. */
static struct cfg *tb_cfg(void)
{
	struct cfg *cfg = cfg_new_default("/tmp");

	free(cfg->s.auth_mechanisms);
	cfg->s.auth_mechanisms = xstrdup("PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 "
					 "SCRAM-SHA-256 NTLM GSSAPI");
	free(cfg->s.server_hostname);
	cfg->s.server_hostname = xstrdup("mail.example.com");
	return cfg;
}

#endif
