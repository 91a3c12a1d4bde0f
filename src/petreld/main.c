/*
 * petreld: the Petrel engine.
 *
 *   petreld --config-dir DIR [--foreground]
 *   petreld --dump-settings     (the settings reference, markdown)
 *
 * Without --foreground it daemonizes: the parent waits until the child
 * serves (or has failed, and says why on the parent's stderr), so that an
 * init script sees a real exit status.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cfg.h"
#include "core/evloop.h"
#include "core/fileio.h"
#include "petreld/engine.h"

#define DEFAULT_CONFIG_DIR "/etc/petrel"

static void usage(FILE *out)
{
	fprintf(out, "usage: petreld [--config-dir DIR] [--foreground]\n"
		     "       petreld --dump-settings\n");
}

/* Foreground: errors are printed by engine_run's caller. */
static void ready_foreground(const char *error, void *context)
{
	if (error != NULL)
		fprintf(stderr, "petreld: %s\n", error);
}

/* Daemon: tell the waiting parent through the pipe, then let go of it. */
static void ready_daemon(const char *error, void *context)
{
	int *fd = context;
	const char *msg = error != NULL ? error : "";
	int devnull;

	if (*fd < 0)
		return;
	if (fileio_write_all(*fd, msg, strlen(msg)) < 0) {
		/* the parent is gone; nothing else to tell */
	}
	close(*fd);
	*fd = -1;
	devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		dup2(devnull, STDERR_FILENO);
		if (devnull > STDERR_FILENO)
			close(devnull);
	}
}

/* Parent side: wait for the child's word.  Returns the exit status. */
static int wait_for_child(int fd)
{
	char msg[4096];
	size_t len = 0;
	ssize_t n;

	while (len < sizeof(msg) - 1 && (n = read(fd, msg + len, sizeof(msg) - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		len += (size_t)n;
	}
	msg[len] = '\0';
	close(fd);
	if (len > 0) {
		fprintf(stderr, "petreld: %s\n", msg);
		return 1;
	}
	return 0;
}

static int daemonize_and_run(struct engine_options *options)
{
	int pipefd[2], child_fd;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		perror("petreld: pipe");
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		perror("petreld: fork");
		return 1;
	}
	if (pid > 0) {
		close(pipefd[1]);
		return wait_for_child(pipefd[0]);
	}
	close(pipefd[0]);
	if (setsid() < 0)
		_exit(1);
	/* A second fork: the daemon is not a session leader, so it can never
	 * acquire a controlling terminal. */
	pid = fork();
	if (pid < 0)
		_exit(1);
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		_exit(1);
	child_fd = pipefd[1];
	options->ready = ready_daemon;
	options->ready_context = &child_fd;
	return engine_run(options);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config-dir", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "dump-settings", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct engine_options options;
	const char *config_dir = DEFAULT_CONFIG_DIR;
	char resolved[PATH_MAX];
	int c;

	memset(&options, 0, sizeof(options));
	while ((c = getopt_long(argc, argv, "c:fhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': config_dir = optarg; break;
		case 'f': options.foreground = true; break;
		case 'D': cfg_dump_reference(STDOUT_FILENO); return 0;
		case 'h': usage(stdout); return 0;
		case 'V': printf("petreld 0.1.0\n"); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (realpath(config_dir, resolved) == NULL) {
		fprintf(stderr, "petreld: config dir %s: %s; run 'petrelctl setup --config-dir %s' "
				"to create a configuration\n", config_dir, strerror(errno), config_dir);
		return 1;
	}
	if (access(resolved, R_OK | X_OK) < 0) {
		fprintf(stderr, "petreld: config dir %s is not readable: %s\n", resolved,
			strerror(errno));
		return 1;
	}
	options.config_dir = resolved;
	fileio_init_faults();
	evloop_global_init();
	if (options.foreground) {
		options.ready = ready_foreground;
		return engine_run(&options);
	}
	return daemonize_and_run(&options);
}
