/*
 * File I/O seam: the write/fsync/rename/unlink calls that make data
 * durable go through here, so that tests can make the Nth call fail
 * (disk full, EIO) and check that nothing is half-written or lost.
 *
 * Fault injection is driven by the environment variable PETREL_FAULT,
 * read once at start: "fsync:3" fails the 3rd fsync with EIO, "write:1"
 * the first write with ENOSPC, "rename:2" the second rename, "xattr:1" the
 * first extended attribute with ENOTSUP (a file system without them).  It exists
 * in every build (a mail server's error paths deserve the same testing in
 * the binary that ships) and is inert when the variable is unset.
 */
#ifndef PETREL_FILEIO_H
#define PETREL_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

#include "core/xmalloc.h"

void fileio_init_faults(void);

ssize_t fileio_write(int fd, const void *data, size_t len);
/* Writes all of data, retrying short writes; 0 or -1 (errno set). */
int fileio_write_all(int fd, const void *data, size_t len) PETREL_MUST_CHECK;
int fileio_fsync(int fd) PETREL_MUST_CHECK;
/* fsetxattr(2) with flags 0. */
int fileio_fsetxattr(int fd, const char *name, const void *value, size_t size) PETREL_MUST_CHECK;
int fileio_rename(const char *from, const char *to) PETREL_MUST_CHECK;
int fileio_unlink(const char *path);
/* fsyncs the directory that contains path (so a rename is durable). */
int fileio_fsync_parent(const char *path) PETREL_MUST_CHECK;

/* Replaces path atomically with data: writes path.tmp.PID in the same
 * directory with the given mode, fsyncs it, renames it over path, fsyncs
 * the directory.  Run as root in a directory owned by another user, the
 * file is given to that user.  On failure path is untouched, the temp file is removed,
 * and *error_r (static or thread-local storage) says why.  */
int fileio_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			const char **error_r) PETREL_MUST_CHECK;

/* Reads a whole file (at most max bytes) into a new NUL-terminated buffer.
 * Returns 0 and sets *data_r and *len_r (caller frees), or -1 with errno set
 * (EFBIG when larger than max). */
int fileio_read_all(const char *path, size_t max, char **data_r, size_t *len_r) PETREL_MUST_CHECK;

/* mkdir -p with the given mode for created components. */
int fileio_mkdir_p(const char *path, mode_t mode) PETREL_MUST_CHECK;

#endif
