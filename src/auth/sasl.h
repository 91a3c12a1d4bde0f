/*
 * The SASL server engine: one state machine for every protocol (SMTP AUTH,
 * IMAP AUTHENTICATE, POP3 AUTH, LDAP SASL bind, HTTP, the admin API).
 *
 * Pure: no sockets, no event loop, no logging, no sleeping.  A front end
 * creates one struct sasl_server per connection, calls sasl_server_start()
 * when the client names a mechanism and sasl_server_step() for each client
 * response, and sends what the reply says.  Users and their secrets come
 * from a struct sasl_backend (the directory glue is auth_directory_backend
 * in this header; tests plug in their own), so the engine never reads
 * users.cfg itself.
 *
 * Cost: PLAIN and LOGIN verify a yescrypt hash (tens of milliseconds, on
 * purpose) and GSSAPI reads the keytab; the others only compute a few
 * HMACs.  Front ends call the engine on their worker pool, as the admin
 * API already does for its password check.
 *
 * The engine never tells a client more than "authentication failed":
 * unknown user, wrong password, disabled account, refused authorization
 * identity and locked account all give the same reply, after the same
 * work (an unknown user is checked against a dummy secret, SCRAM hands out
 * a stable fake salt).  The reply's reason says which, for security.log
 * (auth/auth_limiter.h logs it).
 *
 * Mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login),
 * CRAM-MD5 (RFC 2195), DIGEST-MD5 (RFC 2831, authentication only),
 * SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677; no -PLUS channel
 * binding yet), NTLM (NTLMSSP, [MS-NLMP]; NTLMv2, NTLMv1 only when
 * auth/ntlm-v1 allows it), GSSAPI (RFC 4752, Kerberos 5 through MIT's
 * GSS-API, no security layer).
 */
#ifndef PETREL_SASL_H
#define PETREL_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/cfg.h"
#include "core/xmalloc.h"

struct directory;

enum sasl_mech {
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
	SASL_MECH_CRAM_MD5,
	SASL_MECH_DIGEST_MD5,
	SASL_MECH_SCRAM_SHA_1,
	SASL_MECH_SCRAM_SHA_256,
	SASL_MECH_NTLM,
	SASL_MECH_GSSAPI,
	SASL_MECH_COUNT
};

/* Limits, each a bound on what one client can make us hold or compute. */
/* Longest login name: an address (64 + 1 + 253) with room to spare. */
#define SASL_MAX_LOGIN 512
/* Longest password (the directory's bound). */
#define SASL_MAX_PASSWORD 1024
/* Default largest client response, decoded (auth/max-response): a GSSAPI
 * ticket with a big Active Directory PAC fits, a flood does not. */
#define SASL_DEFAULT_MAX_RESPONSE (64 * 1024)
/* RFC 2831 section 2.1.1/2.1.2: challenge at most 2048 bytes, response at
 * most 4096. */
#define SASL_DIGEST_MAX_CHALLENGE 2048
#define SASL_DIGEST_MAX_RESPONSE 4096

/* "PLAIN", "SCRAM-SHA-256", ...; NULL for an out-of-range value. */
const char *sasl_mech_name(enum sasl_mech mech);
/* Parses a mechanism name (case-insensitive, RFC 4422 section 3.1).
 * Returns 0 or -1 for a name we do not implement. */
int sasl_mech_parse(const char *name, size_t len, enum sasl_mech *mech_r) PETREL_MUST_CHECK;
/* True for the mechanisms that send the password itself (PLAIN, LOGIN). */
bool sasl_mech_is_plaintext(enum sasl_mech mech);

/* The mechanisms to announce on a connection, space-separated in the order
 * of auth/mechanisms: PLAIN and LOGIN only when secure (TLS or loopback)
 * or auth/plaintext-without-tls; GSSAPI only when auth/gssapi-keytab is
 * not "none".  Newly allocated; "" when none. */
char *sasl_mechanisms_offered(const struct settings *s, bool secure);
/* True when mech would be in that list. */
bool sasl_mechanism_offered(const struct settings *s, bool secure, enum sasl_mech mech);
/* Checks auth/mechanisms: every word a mechanism we implement.  Returns 0
 * or -1 with *error_r (caller frees), for the engine to refuse a config
 * with a typo instead of silently offering less. */
int sasl_check_settings(const struct settings *s, char **error_r) PETREL_MUST_CHECK;
/* The same for a list as written (reason without the setting's name). */
int sasl_check_mechanisms(const char *list, char **reason_r) PETREL_MUST_CHECK;
/* The check mailserver.cfg's parser runs (cfg_value_check_fn, registered
 * by petreld and petrelctl with cfg_set_value_check), so that a typo in
 * auth/mechanisms is a "FILE:LINE:" error at load and reload. */
int sasl_cfg_check(const char *path, const char *value, char **reason_r);

/*
 * The backend: where users come from.
 */

/* What the engine learns about a user.  Pointers are borrowed from the
 * backend and must stay valid as long as the struct sasl_server lives (the
 * directory glue holds a reference to its snapshot for that long). */
struct sasl_user {
	const char *identity;     /* the authorized identity: "name@domain" in lower case */
	const char *name;         /* login name (local part) as the directory writes it */
	const char *domain;       /* the user's domain, lower case */
	const char *realm;        /* Kerberos realm of the domain */
	bool enabled;
	const void *handle;       /* the backend's own record */
};

struct sasl_backend {
	/* Finds the user that login names.  Returns 1 and fills *user_r, 0
	 * for an unknown login, or -1 for a temporary failure. */
	int (*lookup)(void *context, const char *login, struct sasl_user *user_r);
	/* Checks a password against the user's stored hash, with user NULL
	 * (unknown login) doing the same work and returning false. */
	bool (*verify_password)(void *context, const struct sasl_user *user, const char *password);
	/* The stored secret of user for mechanism (AUTH_SECRET_*), or NULL
	 * when there is none.  Borrowed like the user's fields. */
	const char *(*secret)(void *context, const struct sasl_user *user, const char *mechanism);
	/* GSSAPI: the login name for Kerberos principal name@realm (no
	 * instance), or NULL when no domain has that realm.  Newly
	 * allocated. */
	char *(*principal_login)(void *context, const char *name, const char *realm);
	/* The account key of a login for counting failures (struct
	 * auth_attempt): lower case, a bare name completed with the primary
	 * domain, the same whether the user exists or not.  Newly allocated.
	 * NULL callback: the login in lower case. */
	char *(*account_key)(void *context, const char *login);
	/* DIGEST-MD5: realms to offer in the challenge (NULL-terminated;
	 * NULL for none).  Borrowed. */
	const char *const *digest_realms;
	void *context;
};

/* The backend for a directory snapshot: users by directory_find_user,
 * passwords by directory_verify_password, secrets and realms from users.cfg.
 * The caller keeps its reference to dir for as long as a sasl_server uses
 * the backend, and calls auth_directory_backend_deinit afterwards. */
void auth_directory_backend_init(struct sasl_backend *backend, struct directory *dir);
void auth_directory_backend_deinit(struct sasl_backend *backend);
/* Lets the backend's password check use a verified-credential cache
 * (auth/auth_cache.h; NULL: none, the default).  Only for a process that
 * has registered auth_prepare_password as the directory's prepare hook
 * (petreld does): the cache keys on the SASLprep'd password. */
struct auth_cache;
void auth_directory_backend_set_cache(struct sasl_backend *backend, struct auth_cache *cache);

/*
 * The engine.
 */

struct sasl_params {
	/* The configuration snapshot (the auth section, server/hostname, the config dir),
	 * borrowed for the server's lifetime. */
	const struct cfg *cfg;
	/* Service name: "smtp", "imap", "pop", "ldap", "HTTP".  Used as the
	 * DIGEST-MD5 digest-uri service and the GSSAPI service principal
	 * (RFC 4752: "imap@host"); RFC 5034 says POP3's is "pop". */
	const char *service;
	/* This server's host name as the client addressed it; NULL means
	 * server/hostname.  CRAM-MD5 challenge, DIGEST-MD5 digest-uri host. */
	const char *hostname;
	/* The local address the client connected to (text form), also
	 * accepted as a digest-uri host; may be NULL. */
	const char *local_address;
	/* TLS or loopback: PLAIN and LOGIN are allowed. */
	bool secure;
	/* The protocol can carry data with its success reply (RFC 4422
	 * section 5 "additional data with success"; IMAP and SMTP cannot, LDAP
	 * can).  Without it, SCRAM's and DIGEST-MD5's final server message is
	 * a challenge the client answers with an empty response. */
	bool success_data;
	/* Tests and fuzzers only: the server nonce (CRAM-MD5, DIGEST-MD5,
	 * SCRAM) or the NTLM challenge (16 hex digits) to use instead of a
	 * random one.  NULL in production. */
	const char *test_nonce;
};

enum sasl_status { SASL_CONTINUE, SASL_SUCCESS, SASL_FAILURE };

/* Kinds of failure, for the protocol's reply code.  The client learns the
 * kind, never the reason. */
enum sasl_failure {
	SASL_FAIL_NONE,
	SASL_FAIL_CREDENTIALS,    /* authentication failed (SMTP 535, IMAP NO) */
	SASL_FAIL_MECHANISM,      /* not implemented or not offered (SMTP 504) */
	SASL_FAIL_ENCRYPTION,     /* plaintext mechanism without TLS (SMTP 538) */
	SASL_FAIL_SYNTAX,         /* malformed response, bad base64, too long (SMTP 501) */
	SASL_FAIL_ABORTED,        /* the client sent "*" (SMTP 501) */
	SASL_FAIL_TEMPORARY,      /* backend failure: try later (SMTP 454) */
	SASL_FAIL_STATE,          /* step without an exchange in progress (SMTP 503) */
};

/* The answer to a start or step.  Every pointer in it is borrowed from
 * the server and valid until the next call on it (or its free). */
struct sasl_reply {
	enum sasl_status status;
	enum sasl_failure failure;    /* FAILURE only */
	enum sasl_mech mech;          /* the mechanism of the exchange */
	/* CONTINUE: the challenge; SUCCESS: additional data (only with
	 * params.success_data, else empty).  Raw bytes, NUL-terminated. */
	const unsigned char *data;
	size_t len;
	/* The same in base64 (the _text calls fill it; NULL otherwise). */
	const char *text;
	/* SUCCESS: the authorized identity (user's address). */
	const char *identity;
	/* The login name the client gave, raw (escape before logging); NULL
	 * when the exchange failed before one was known. */
	const char *login;
	/* The account key of login (struct sasl_backend account_key); NULL
	 * when login is. */
	const char *account;
	/* FAILURE: what went wrong, for security.log ("wrong password",
	 * "unknown user", "malformed response: ..."); never client data. */
	const char *reason;
};

struct sasl_server;

/* A server for one connection; params and backend are copied (the
 * strings and the backend's context are borrowed and must outlive it). */
struct sasl_server *sasl_server_new(const struct sasl_params *params,
				    const struct sasl_backend *backend);
/* Ends any exchange (clearing secrets from memory) and frees; NULLs *s. */
void sasl_server_free(struct sasl_server **s);

/* Starts an exchange with the named mechanism (case-insensitive).  A
 * running exchange is aborted first, so a client that starts over or
 * switches mechanisms always gets a fresh state (Postfix CVE-2011-1720).
 * initial/initial_len is the initial response when has_initial (an empty
 * one is allowed: SMTP's "="); its absence differs from an empty one.
 * Returns reply_r->status. */
enum sasl_status sasl_server_start(struct sasl_server *s, const char *mechanism,
				   const void *initial, size_t initial_len, bool has_initial,
				   struct sasl_reply *reply_r);
/* Feeds one client response (raw bytes).  FAILURE with SASL_FAIL_STATE
 * when no exchange is running. */
enum sasl_status sasl_server_step(struct sasl_server *s, const void *data, size_t len,
				  struct sasl_reply *reply_r);
/* Cancels the exchange in progress, if any (the client sent "*"). */
void sasl_server_abort(struct sasl_server *s);

/* The same for line-based protocols, where responses are base64 text.
 * initial is NULL for none, "=" for an empty initial response (RFC 4954,
 * RFC 4959), else strict base64.  A step line of exactly "*" aborts
 * (FAILURE, SASL_FAIL_ABORTED).  Bad base64, or a response longer than
 * auth/max-response, fails with SASL_FAIL_SYNTAX and ends the exchange.
 * The reply's text holds the challenge in base64 (possibly "", which the
 * protocol sends as an empty continuation). */
enum sasl_status sasl_server_start_text(struct sasl_server *s, const char *mechanism,
					const char *initial, size_t initial_len,
					struct sasl_reply *reply_r);
enum sasl_status sasl_server_step_text(struct sasl_server *s, const char *line, size_t len,
				       struct sasl_reply *reply_r);

/* Whether an exchange is running (between a CONTINUE and the end). */
bool sasl_server_in_progress(const struct sasl_server *s);

#endif
