/* Durable file operations with a fault-injection seam; see fileio.h. */
#include "core/fileio.h"
#include "core/str.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

enum fault_op { FAULT_WRITE, FAULT_FSYNC, FAULT_RENAME, FAULT_XATTR, FAULT_COUNT };

static const char *const fault_names[FAULT_COUNT] = { "write", "fsync", "rename", "xattr" };
static long fault_at[FAULT_COUNT];       /* 0 = never */
static atomic_long fault_calls[FAULT_COUNT];

void fileio_init_faults(void)
{
	const char *spec = getenv("PETREL_FAULT");
	char *copy, *save = NULL;

	for (int i = 0; i < FAULT_COUNT; i++) {
		fault_at[i] = 0;
		atomic_store(&fault_calls[i], 0);
	}
	if (spec == NULL || *spec == '\0')
		return;
	copy = xstrdup(spec);
	for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');

		if (colon == NULL)
			continue;
		*colon = '\0';
		for (int i = 0; i < FAULT_COUNT; i++) {
			if (strcmp(tok, fault_names[i]) == 0)
				fault_at[i] = atol(colon + 1);
		}
	}
	free(copy);
}

/* Returns true when this call of op is the one chosen to fail. */
static int fault_hit(enum fault_op op)
{
	if (fault_at[op] == 0)
		return 0;
	return atomic_fetch_add(&fault_calls[op], 1) + 1 == fault_at[op];
}

ssize_t fileio_write(int fd, const void *data, size_t len)
{
	if (fault_hit(FAULT_WRITE)) {
		errno = ENOSPC;
		return -1;
	}
	return write(fd, data, len);
}

int fileio_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = fileio_write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fileio_fsync(int fd)
{
	if (fault_hit(FAULT_FSYNC)) {
		errno = EIO;
		return -1;
	}
	return fsync(fd);
}

int fileio_fsetxattr(int fd, const char *name, const void *value, size_t size)
{
	if (fault_hit(FAULT_XATTR)) {
		errno = ENOTSUP;
		return -1;
	}
	return fsetxattr(fd, name, value, size, 0);
}

int fileio_rename(const char *from, const char *to)
{
	if (fault_hit(FAULT_RENAME)) {
		errno = EIO;
		return -1;
	}
	return rename(from, to);
}

int fileio_unlink(const char *path)
{
	return unlink(path);
}

int fileio_fsync_parent(const char *path)
{
	char *copy = xstrdup(path);
	int fd, ret;

	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -1;
	ret = fileio_fsync(fd);
	close(fd);
	return ret;
}

/*
 * When root (petrelctl, or petreld before its privilege drop) writes into a
 * directory that belongs to someone else — the service user's config dir
 * or store — the file goes to that owner, or the engine could no longer
 * read the key or the users.cfg that root just wrote for it.
 */
static int give_to_directory_owner(int fd, const char *path)
{
	char *copy;
	struct stat st;
	int ret;

	if (geteuid() != 0)
		return 0;
	copy = xstrdup(path);
	ret = stat(dirname(copy), &st);
	free(copy);
	if (ret < 0)
		return -1;
	if (st.st_uid == 0 && st.st_gid == 0)
		return 0;
	return fchown(fd, st.st_uid, st.st_gid);
}

int fileio_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			const char **error_r)
{
	static _Thread_local char errbuf[PATH_MAX + 128];
	char tmp[PATH_MAX];
	int fd, n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		*error_r = "path too long";
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		snprintf(errbuf, sizeof(errbuf), "cannot create %s: %s", tmp, strerror(errno));
		*error_r = errbuf;
		return -1;
	}
	if (fchmod(fd, mode) < 0 || give_to_directory_owner(fd, path) < 0 ||
	    fileio_write_all(fd, data, len) < 0 || fileio_fsync(fd) < 0) {
		snprintf(errbuf, sizeof(errbuf), "cannot write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		snprintf(errbuf, sizeof(errbuf), "cannot write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (fileio_rename(tmp, path) < 0) {
		snprintf(errbuf, sizeof(errbuf), "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto fail;
	}
	if (fileio_fsync_parent(path) < 0) {
		/* The new content is in place; only its durability across a
		 * power cut is in doubt.  Report it, the caller decides. */
		snprintf(errbuf, sizeof(errbuf), "cannot fsync directory of %s: %s", path, strerror(errno));
		*error_r = errbuf;
		return -1;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	*error_r = errbuf;
	return -1;
}

int fileio_read_all(const char *path, size_t max, char **data_r, size_t *len_r)
{
	struct stat st;
	char *data;
	size_t len = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		errno = EFBIG;
		return -1;
	}
	data = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, data + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int saved = n < 0 ? errno : EIO;

			free(data);
			close(fd);
			errno = saved;
			return -1;
		}
		len += (size_t)n;
	}
	close(fd);
	data[len] = '\0';
	*data_r = data;
	*len_r = len;
	return 0;
}

int fileio_mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];

	if (strlen(path) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(tmp, path, strlen(path) + 1);
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}
