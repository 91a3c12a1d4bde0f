/*
 * petrelctl internals: each command group lives in its own ctl_<group>.c
 * and is dispatched from petrelctl.c.
 *
 * Exit status contract (DESIGN.md): 0 success, 1 the request failed (the
 * message on stderr says why), 2 usage error.
 */
#ifndef PETREL_CTL_H
#define PETREL_CTL_H

#include <stdbool.h>

#include <jansson.h>

#define CTL_OK 0
#define CTL_FAILED 1
#define CTL_USAGE 2

struct ctl {
	const char *config_dir;   /* --config-dir, default /etc/petrel */
	bool json;                /* --json given anywhere on the line */
};

/* Each takes the words after the group name ("log show error ..."
 * arrives as argc=3 argv={"show","error",...}) and returns an exit status. */
int ctl_log_main(struct ctl *ctl, int argc, char **argv);
int ctl_cert_main(struct ctl *ctl, int argc, char **argv);
int ctl_setup_main(struct ctl *ctl, int argc, char **argv);
int ctl_queue_main(struct ctl *ctl, int argc, char **argv);
/* The directory (ctl_directory.c): through a running engine, or on
 * users.cfg directly when none runs. */
int ctl_domain_main(struct ctl *ctl, int argc, char **argv);
int ctl_user_main(struct ctl *ctl, int argc, char **argv);
int ctl_alias_main(struct ctl *ctl, int argc, char **argv);
int ctl_group_main(struct ctl *ctl, int argc, char **argv);
int ctl_list_main(struct ctl *ctl, int argc, char **argv);
int ctl_resolve_main(struct ctl *ctl, int argc, char **argv);
/* mailbox stats|reindex (ctl_mailbox.c): through a running engine. */
int ctl_mailbox_main(struct ctl *ctl, int argc, char **argv);
/* public create|list|setacl (ctl_public.c): a domain's public folders. */
int ctl_public_main(struct ctl *ctl, int argc, char **argv);

/* Sends one request to the running engine over the control socket and
 * waits for the answer.  Returns 0 with *response_r (caller json_decref's)
 * when the engine answered (check "ok" in it), or -1 with *error_r (static)
 * when the engine could not be reached. */
int ctl_request(struct ctl *ctl, json_t *request, json_t **response_r, const char **error_r);

/* ctl_request() for commands whose reply must say "ok": sends req
 * (consumed) and returns the reply, or NULL with *status_r after printing
 * why (engine unreachable, or the engine's "error"). */
json_t *ctl_request_ok(struct ctl *ctl, json_t *req, int *status_r);

/* Asks a running engine to reload; prints nothing when none is running.
 * Returns CTL_OK, or CTL_FAILED after printing the engine's reason. */
int ctl_reload_if_running(struct ctl *ctl);

/* Prints "petrelctl: " + message to stderr; returns CTL_FAILED / CTL_USAGE. */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ctl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
