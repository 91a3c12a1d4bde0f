/*
 * petrelctl setup: the first-run wizard.
 *
 * Writes mailserver.cfg and users.cfg, creates the store, generates the
 * default self-signed certificate and, when run as root, the unprivileged
 * service user.  Asks on a terminal for what the flags did not give;
 * refuses with a clear message when it cannot ask.  It never overwrites
 * an existing configuration.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "core/cert.h"
#include "core/cfg.h"
#include "core/fileio.h"
#include "core/str.h"
#include "ctl/ctl.h"
#include "directory/directory.h"

#define SETUP_CERT_DAYS 825
#define SETUP_MIN_PASSWORD 8

struct setup_args {
	const char *store, *domain, *password, *hostname, *admin, *user;
	long port_offset;
};

/* Reads one line from the terminal, without echo when secret. */
static char *prompt(const char *question, const char *def, bool secret)
{
	struct termios old, quiet;
	char line[1024];
	bool echo_off = false;

	/* Echo goes off before the question is shown, and without flushing
	 * input: an answer typed ahead (or pasted) must not be thrown away. */
	if (secret && tcgetattr(STDIN_FILENO, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		echo_off = tcsetattr(STDIN_FILENO, TCSANOW, &quiet) == 0;
	}
	if (def != NULL)
		fprintf(stderr, "%s [%s]: ", question, def);
	else
		fprintf(stderr, "%s: ", question);
	fflush(stderr);
	if (fgets(line, sizeof(line), stdin) == NULL)
		line[0] = '\0';
	if (echo_off) {
		tcsetattr(STDIN_FILENO, TCSANOW, &old);
		fputc('\n', stderr);
	}
	line[strcspn(line, "\r\n")] = '\0';
	if (line[0] == '\0' && def != NULL)
		return xstrdup(def);
	return xstrdup(line);
}

static char *system_hostname(void)
{
	char name[256];

	if (gethostname(name, sizeof(name)) < 0 || name[0] == '\0')
		return xstrdup("localhost");
	name[sizeof(name) - 1] = '\0';
	return xstrdup(name);
}

/* Fills in what the flags did not give, asking on a terminal.  Strings it
 * allocates are recorded in owned[] for the caller to free. */
static int setup_complete(struct setup_args *a, char **owned, struct ctl *ctl)
{
	bool tty = isatty(STDIN_FILENO) != 0;
	const char *missing = NULL;

	if (a->store == NULL)
		missing = "--store";
	else if (a->domain == NULL)
		missing = "--domain";
	else if (a->password == NULL)
		missing = "--admin-password";
	if (missing != NULL && !tty)
		return ctl_usage("setup: %s is required (not on a terminal, so it cannot be asked)",
				 missing);
	if (a->store == NULL)
		a->store = owned[0] = prompt("Store directory (mail, queue and logs)", "/var/lib/petrel", false);
	if (a->domain == NULL)
		a->domain = owned[1] = prompt("Primary mail domain", NULL, false);
	if (a->password == NULL) {
		char *again;

		a->password = owned[2] = prompt("Password for the administrator", NULL, true);
		again = prompt("Password again", NULL, true);
		if (strcmp(again, a->password) != 0) {
			free(again);
			return ctl_fail("setup: the passwords differ");
		}
		free(again);
	}
	if (a->hostname == NULL)
		a->hostname = owned[3] = system_hostname();
	(void)ctl;
	return CTL_OK;
}

/* Creates the system user the engine runs as (only as root). */
static int ensure_service_user(const char *user)
{
	pid_t pid;
	int status;

	if (geteuid() != 0 || getpwnam(user) != NULL)
		return CTL_OK;
	pid = fork();
	if (pid < 0)
		return ctl_fail("cannot fork useradd: %s", strerror(errno));
	if (pid == 0) {
		execlp("useradd", "useradd", "--system", "--no-create-home", "--home-dir",
		       "/nonexistent", "--shell", "/usr/sbin/nologin", user, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return ctl_fail("could not create the service user '%s' with useradd; create it "
				"by hand and run setup again", user);
	printf("created system user %s\n", user);
	return CTL_OK;
}

static int make_dir(const char *path, mode_t mode)
{
	if (fileio_mkdir_p(path, mode) < 0)
		return ctl_fail("cannot create %s: %s", path, strerror(errno));
	return CTL_OK;
}

static int setup_write(struct ctl *ctl, const struct setup_args *a)
{
	char store[PATH_MAX], *cfgfile, *usersfile, *sslcert, *crt, *key, *error = NULL;
	struct cfg_setup cs;
	struct stat st;
	int ret = CTL_FAILED;

	if (make_dir(ctl->config_dir, 0750) != CTL_OK || make_dir(a->store, 0750) != CTL_OK)
		return CTL_FAILED;
	if (realpath(a->store, store) == NULL)
		return ctl_fail("%s: %s", a->store, strerror(errno));
	cfgfile = xasprintf("%s/%s", ctl->config_dir, CFG_MAILSERVER);
	usersfile = xasprintf("%s/%s", ctl->config_dir, CFG_USERS);
	sslcert = xasprintf("%s/sslcert", ctl->config_dir);
	crt = xasprintf("%s/server.crt", sslcert);
	key = xasprintf("%s/server.key", sslcert);
	if (stat(cfgfile, &st) == 0 || stat(usersfile, &st) == 0) {
		ctl_fail("%s already holds a configuration; edit it, or remove mailserver.cfg and "
			 "users.cfg to start over", ctl->config_dir);
		goto out;
	}
	for (const char *const *sub = (const char *const[]){ "logs", "mail", "queue", NULL };
	     *sub != NULL; sub++) {
		char *path = xasprintf("%s/%s", store, *sub);
		int r = make_dir(path, 0750);

		free(path);
		if (r != CTL_OK)
			goto out;
	}
	if (make_dir(sslcert, 0750) != CTL_OK)
		goto out;
	if (cert_generate_self_signed(a->hostname, crt, key, SETUP_CERT_DAYS, &error) < 0) {
		ctl_fail("certificate: %s", error);
		goto out;
	}
	if (directory_write_new(usersfile, a->domain, a->admin, a->password, &error) < 0) {
		ctl_fail("%s", error);
		goto out;
	}
	cs.hostname = a->hostname;
	cs.store = store;
	cs.user = a->user;
	cs.port_offset = (int)a->port_offset;
	if (cfg_write_new(cfgfile, &cs, &error) < 0) {
		ctl_fail("%s", error);
		unlink(usersfile);
		goto out;
	}
	if (ensure_service_user(a->user) != CTL_OK)
		goto out;
	printf("Petrel is set up:\n"
	       "  configuration  %s\n"
	       "  store          %s\n"
	       "  domain         %s (primary)\n"
	       "  administrator  %s@%s\n"
	       "  certificate    %s (self-signed for %s)\n"
	       "Start it with: petreld --config-dir %s\n",
	       ctl->config_dir, store, a->domain, a->admin, a->domain, crt, a->hostname,
	       ctl->config_dir);
	ret = CTL_OK;
out:
	free(error);
	free(cfgfile);
	free(usersfile);
	free(sslcert);
	free(crt);
	free(key);
	return ret;
}

int ctl_setup_main(struct ctl *ctl, int argc, char **argv)
{
	struct setup_args a = { .admin = "admin", .user = "petrel", .port_offset = 0 };
	char *owned[4] = { NULL, NULL, NULL, NULL };
	char *error = NULL;
	int64_t offset;
	int ret;

	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (val == NULL)
			return ctl_usage("setup: %s needs a value", opt);
		i++;
		if (strcmp(opt, "--store") == 0)
			a.store = val;
		else if (strcmp(opt, "--domain") == 0)
			a.domain = val;
		else if (strcmp(opt, "--admin-password") == 0)
			a.password = val;
		else if (strcmp(opt, "--hostname") == 0)
			a.hostname = val;
		else if (strcmp(opt, "--admin") == 0)
			a.admin = val;
		else if (strcmp(opt, "--user") == 0)
			a.user = val;
		else if (strcmp(opt, "--port-offset") == 0) {
			if (str_to_i64(val, 0, 60000, &offset) < 0)
				return ctl_usage("setup: --port-offset must be a number from 0 to 60000");
			a.port_offset = (long)offset;
		} else
			return ctl_usage("setup: unknown option %s", opt);
	}
	ret = setup_complete(&a, owned, ctl);
	if (ret == CTL_OK && strlen(a.password) < SETUP_MIN_PASSWORD)
		ret = ctl_fail("setup: the administrator password needs at least %d characters",
			       SETUP_MIN_PASSWORD);
	if (ret == CTL_OK && cert_check_hostname(a.hostname, &error) < 0)
		ret = ctl_fail("setup: --hostname: %s", error);
	if (ret == CTL_OK)
		ret = setup_write(ctl, &a);
	free(error);
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
		free(owned[i]);
	return ret;
}
