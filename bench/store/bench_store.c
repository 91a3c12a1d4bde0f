/*
 * Message store benchmark (issue 4): not a test, a measurement.
 *
 *   bench_store [-n total] [-d durable] [-t threads] [-r recipients] [-D] DIR
 *
 * Reports, for a store in DIR (created; use a directory on the disk you
 * care about):
 *   - the machine's fsync rate (4 KiB write + fsync, same directory);
 *   - durable delivery rate (fsync on) with 1 and with -t threads (default
 *     20, queue/max-deliveries' default) on one folder (group commit), and
 *     with -t threads each delivering to its own user, and with delivery
 *     keys as the queue delivers (1 and -t threads), -d messages each
 *     run; then the same with fsync off (what the CPU allows); -D stops
 *     there.  Each durable run is preceded by a 1 s fsync probe and
 *     reports its rate per fsync against it, and every run reports CPU
 *     time, the disk's write requests and cache flushes per delivery and
 *     how busy the disk was (from /sys/dev/block): on a shared machine the
 *     rates swing with the neighbours' I/O, the counts do not;
 *   - bulk delivery of -n messages of 4-50 KiB into one folder;
 *   - time to open that folder (index check included) and to list every
 *     UID and flags, re-index (full rebuild) time, index bytes per message;
 *   - delivery to -r recipients: hard links vs one write per recipient.
 * Output is "key value unit" lines, easy to diff between runs.
 *
 *   bench_store -m N DIR
 *
 * only writes N message files into a folder without an index and reports
 * the first open (the rebuild), FETCH of every envelope and structure, the
 * indexing that follows, and a warm open.
 *
 *   bench_store -w OUTDIR -d N
 *
 * writes the N messages of the durable run as files, for delivering the
 * same bytes through another server (run.sh does it with dovecot-lda).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "store/store.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *err)
{
	fprintf(stderr, "bench_store: %s: %s\n", what, err);
	exit(1);
}

/* A plausible message of about size bytes (headers, text lines). */
static char *make_message(unsigned seed, size_t size, size_t *len_r)
{
	static const char *const words[] = {
		"delivery", "store", "index", "pelican", "quarterly", "report", "meeting", "invoice",
		"schedule", "project", "release", "server", "mailbox", "folder", "search", "budget",
	};
	struct buf b;

	buf_init(&b, size + 4096);
	if (buf_printf(&b, "Return-Path: <sender%u@example.org>\r\n"
		       "Received: from mx.example.org (mx.example.org [192.0.2.1])\r\n\tby mail.example.com with ESMTPS id %08x\r\n"
		       "From: Sender %u <sender%u@example.org>\r\nTo: user@example.com\r\n"
		       "Subject: %s %s number %u\r\nDate: Sun, 29 Nov 2026 08:00:00 +0000\r\n"
		       "Message-ID: <%u.%08x@example.org>\r\nMIME-Version: 1.0\r\n"
		       "Content-Type: text/plain; charset=utf-8\r\n\r\n",
		       seed % 97, seed, seed % 97, seed % 97, words[seed % 16], words[(seed / 16) % 16], seed,
		       seed, seed * 2654435761u) < 0)
		abort();
	while (b.len < size) {
		for (int i = 0; i < 10; i++) {
			seed = seed * 1103515245u + 12345u;
			if (buf_append_str(&b, words[(seed >> 16) % 16]) < 0 || buf_append_char(&b, ' ') < 0)
				abort();
		}
		if (buf_append_str(&b, "\r\n") < 0)
			abort();
	}
	*len_r = b.len;
	return buf_steal(&b);
}

static double fsync_rate(const char *dir, double seconds, double *count_r)
{
	char *path;
	char block[4096];
	int fd, n = 0;
	double t0 = now();

	if (asprintf(&path, "%s/fsync-probe", dir) < 0)
		abort();
	memset(block, 'x', sizeof(block));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die("fsync probe", strerror(errno));
	while (now() - t0 < seconds) {
		if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) || fsync(fd) < 0)
			die("fsync probe", strerror(errno));
		n++;
	}
	close(fd);
	unlink(path);
	free(path);
	*count_r = n;
	return n / (now() - t0);
}

/* Write requests and flushes the disk under dir has completed, from
 * /sys/dev/block (Linux 5.5 or later for flushes); false if unknown.  The
 * counts are what durability costs, independent of how busy a shared
 * machine is. */
static unsigned long long disk_busy_ms;    /* io_ticks of the last disk_counts */

static bool disk_counts(const char *dir, unsigned long long *writes, unsigned long long *flushes)
{
	static const char *const paths[] = { "/sys/dev/block/%u:%u/stat", "/sys/dev/block/%u:%u/../stat" };
	struct stat st;

	if (stat(dir, &st) < 0)
		return false;
	for (size_t i = 0; i < 2; i++) {
		char path[128];
		unsigned long long v[17];
		FILE *fp;
		int n;

		snprintf(path, sizeof(path), paths[i], major(st.st_dev), minor(st.st_dev));
		fp = fopen(path, "r");
		if (fp == NULL)
			continue;
		n = fscanf(fp, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
			   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10],
			   &v[11], &v[12], &v[13], &v[14], &v[15], &v[16]);
		fclose(fp);
		if (n == 17) {
			*writes = v[4];
			*flushes = v[15];
			disk_busy_ms = v[9];
			return true;
		}
	}
	return false;
}

/* Deliveries carry a delivery key (store_deliver_once), as the queue's do. */
static bool keyed;

struct worker {
	struct store_folder *f;
	unsigned first, count;
};

static void *deliver_worker(void *arg)
{
	struct worker *w = arg;

	for (unsigned i = 0; i < w->count; i++) {
		unsigned seed = w->first + i;
		size_t len;
		char *msg = make_message(seed, 4096 + (seed * 7919u) % (46 * 1024), &len);
		struct store_message m = { msg, len, 0, 0 };
		const char *err;
		enum store_status st;

		if (keyed) {
			/* What the queue does: a key per queue id and recipient. */
			char key[64];
			bool dup = false;

			snprintf(key, sizeof(key), "bench-%u:user@example.com", seed);
			st = store_deliver_once(w->f, &m, key, NULL, &dup, &err);
			if (st == STORE_OK && dup)
				die("deliver", "duplicate key");
		} else {
			st = store_deliver(w->f, &m, 0, NULL, NULL, NULL, &err);
		}
		if (st != STORE_OK)
			die("deliver", err);
		free(msg);
	}
	return NULL;
}

static const char *u_dir = ".";
static bool probe_fsync;                   /* measure the fsync rate before each run */
static double last_flushes, last_writes;   /* per delivery, of the last deliver_run */
static double last_cpu_ms;                 /* CPU (user + system) per delivery, same */
static double last_busy;                   /* share of the run the disk had I/O in flight */

/* The fsync rate measured just before the last durable run (the disk's
 * speed drifts on a shared machine: a ratio against a probe taken
 * minutes earlier says little). */
static double last_fsync_rate;

/* One "name rate" line, then the CPU and disk figures of the run. */
static void report(const char *name, double rate)
{
	printf("%s %.0f msg/s\n", name, rate);
	if (last_fsync_rate > 0)
		printf("%s_per_fsync %.2f (fsync rate just before: %.0f/s)\n", name, rate / last_fsync_rate,
		       last_fsync_rate);
	last_fsync_rate = 0;
	printf("%s_cpu %.3f ms per delivery\n", name, last_cpu_ms);
	if (last_flushes >= 0)
		printf("%s_disk %.2f flushes %.2f writes per delivery, busy %.0f%%\n", name, last_flushes,
		       last_writes, last_busy * 100);
	fflush(stdout);
}

/* Delivers total messages with threads threads; thread i delivers into
 * folders[i % nfolders]. */
static double deliver_run(struct store_folder **folders, unsigned nfolders, unsigned total, unsigned threads,
			  unsigned first)
{
	pthread_t th[64];
	struct worker w[64];
	double t0;
	unsigned long long w0 = 0, fl0 = 0, w1, fl1, busy0;
	bool counted;
	struct rusage ru0, ru1;

	if (probe_fsync) {
		double n;

		last_fsync_rate = fsync_rate(u_dir, 1.0, &n);
	}
	counted = disk_counts(u_dir, &w0, &fl0);
	busy0 = disk_busy_ms;
	getrusage(RUSAGE_SELF, &ru0);
	t0 = now();
	for (unsigned i = 0; i < threads; i++) {
		w[i] = (struct worker){ folders[i % nfolders], first + i * (total / threads), total / threads };
		pthread_create(&th[i], NULL, deliver_worker, &w[i]);
	}
	for (unsigned i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	t0 = now() - t0;
	getrusage(RUSAGE_SELF, &ru1);
	last_cpu_ms = ((ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e3 +
		       (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e3) /
		      (total / threads * threads);
	if (counted && disk_counts(u_dir, &w1, &fl1)) {
		last_flushes = (double)(fl1 - fl0) / (total / threads * threads);
		last_writes = (double)(w1 - w0) / (total / threads * threads);
		last_busy = (double)(disk_busy_ms - busy0) / 1e3 / t0;
	} else {
		last_flushes = last_writes = -1;
	}
	return (total / threads * threads) / t0;
}

/* deliver_run into one folder of u. */
static double deliver_folder(struct store_user *u, const char *folder, unsigned total, unsigned threads,
			     unsigned first)
{
	struct store_folder *f;
	const char *err;
	double rate;

	if (store_folder_open(u, folder, &f, &err) != STORE_OK)
		die("open", err);
	rate = deliver_run(&f, 1, total, threads, first);
	store_folder_close(&f);
	return rate;
}

/* deliver_run with each thread delivering to its own user's INBOX, the
 * usual case for a queue with many deliveries in flight. */
static double deliver_users(struct store *s, unsigned total, unsigned threads)
{
	struct store_user *users[64];
	struct store_folder *f[64];
	const char *err;
	double rate;

	for (unsigned i = 0; i < threads; i++) {
		char name[32];

		snprintf(name, sizeof(name), "spread%u", i);
		if (store_user_open(s, "example.com", name, &users[i], &err) != STORE_OK ||
		    store_folder_open(users[i], "INBOX", &f[i], &err) != STORE_OK)
			die("user", err);
	}
	rate = deliver_run(f, threads, total, threads, 0);
	for (unsigned i = 0; i < threads; i++) {
		store_folder_close(&f[i]);
		store_user_unref(&users[i]);
	}
	return rate;
}

static struct store *open_store(const char *dir, bool fsync_on, bool hardlinks)
{
	struct store_settings set;
	struct store *s;
	const char *err;

	store_settings_default(&set, dir);
	set.fsync = fsync_on;
	set.hardlinks = hardlinks;
	if (store_new(&set, &s, &err) < 0)
		die("store", err);
	return s;
}

static double many_rcpts(const char *dir, bool hardlinks, unsigned rcpts, unsigned msgs)
{
	struct store *s = open_store(dir, true, hardlinks);
	struct store_user *users[64];
	struct store_folder *f[64];
	struct store_rcpt r[64];
	const char *err;
	double t0;

	for (unsigned i = 0; i < rcpts; i++) {
		char name[32];

		snprintf(name, sizeof(name), "%s%u", hardlinks ? "link" : "copy", i);
		if (store_user_open(s, "example.com", name, &users[i], &err) != STORE_OK ||
		    store_folder_open(users[i], "INBOX", &f[i], &err) != STORE_OK)
			die("user", err);
	}
	t0 = now();
	for (unsigned k = 0; k < msgs; k++) {
		size_t len;
		char *msg = make_message(k, 20 * 1024, &len);
		struct store_message m = { msg, len, 0, 0 };

		memset(r, 0, sizeof(r));
		for (unsigned i = 0; i < rcpts; i++)
			r[i].folder = f[i];
		store_deliver_many(&m, r, rcpts);
		for (unsigned i = 0; i < rcpts; i++) {
			if (r[i].status != STORE_OK)
				die("deliver_many", r[i].error);
		}
		free(msg);
	}
	t0 = now() - t0;
	for (unsigned i = 0; i < rcpts; i++) {
		store_folder_close(&f[i]);
		store_user_unref(&users[i]);
	}
	store_free(&s);
	return msgs * rcpts / t0;
}

/* Fetches fields of every message of f, 1000 at a time, as a client's
 * listing does.  Returns the seconds it took; *count_r (or NULL) gets the
 * number of messages. */
static double list_all(struct store_folder *f, uint32_t fields, uint64_t *count_r)
{
	struct store_page *page;
	const char *err;
	uint64_t n = 0;
	double t0 = now();

	for (uint32_t after = 0;;) {
		bool more;

		if (store_fetch(f, NULL, 0, fields, after, 1000, &page, &err) != STORE_OK)
			die("fetch", err);
		n += page->count;
		after = page->last_uid;
		more = page->more;
		store_page_free(&page);
		if (!more)
			break;
	}
	if (count_r != NULL)
		*count_r = n;
	return now() - t0;
}

/* The first SELECT of a folder whose index.fld was deleted (rebuilt at
 * open), then FETCH ENVELOPE of every message, then a warm open. */
static void lazy_open(const char *dir, const char *user, unsigned total)
{
	struct store *s;
	struct store_user *u;
	struct store_folder *f;
	const char *err;
	char cmd[4096];
	double t0;

	snprintf(cmd, sizeof(cmd), "rm -f '%s'/mail/example.com/%s/Inbox/index.fld*", dir, user);
	if (system(cmd) != 0)
		die("rm", cmd);
	s = open_store(dir, true, true);
	if (store_user_open(s, "example.com", user, &u, &err) != STORE_OK)
		die("user", err);
	t0 = now();
	if (store_folder_open(u, "INBOX", &f, &err) != STORE_OK)
		die("open", err);
	printf("open_missing_index_%u %.3f s\n", total, now() - t0);
	fflush(stdout);
	/* ENVELOPE alone, as a client's first listing often is: only each
	 * file's header is read. */
	printf("list_envelope_only_after_missing_index %.3f s\n", list_all(f, STORE_FETCH_ENVELOPE, NULL));
	fflush(stdout);
	printf("list_envelopes_after_missing_index %.3f s\n",
	       list_all(f, STORE_FETCH_ENVELOPE | STORE_FETCH_BODYSTRUCTURE, NULL));
	fflush(stdout);
#ifdef STORE_HAVE_INDEX_PENDING
	{
		size_t left = 0;

		t0 = now();
		if (store_folder_index_pending(f, true, &left, &err) != STORE_OK)
			die("index", err);
		printf("index_pending_after_missing_index %.1f s\n", now() - t0);
	}
#endif
	store_folder_close(&f);
	store_user_unref(&u);
	store_free(&s);
	s = open_store(dir, true, true);
	if (store_user_open(s, "example.com", user, &u, &err) != STORE_OK)
		die("user", err);
	t0 = now();
	if (store_folder_open(u, "INBOX", &f, &err) != STORE_OK)
		die("open", err);
	printf("open_warm_%u %.3f s\n", total, now() - t0);
	store_folder_close(&f);
	store_user_unref(&u);
	store_free(&s);
}

/* -m N: N message files written straight into a new user's #msgs (as
 * <uid>.eml, no index, no fsync), then the lazy_open figures: the first
 * SELECT of a folder whose index.fld was removed, without the hour of
 * durable deliveries it takes to make it. */
static int missing_index_only(const char *dir, unsigned n)
{
	struct store *s = open_store(dir, false, true);
	struct store_user *u;
	const char *err;
	char path[4096];

	if (store_user_open(s, "example.com", "files", &u, &err) != STORE_OK)
		die("user", err);
	store_user_unref(&u);
	store_free(&s);
	for (unsigned i = 1; i <= n; i++) {
		size_t len;
		char *msg = make_message(i, 4096 + (i * 7919u) % (46 * 1024), &len);
		FILE *fp;

		snprintf(path, sizeof(path), "%s/mail/example.com/files/Inbox/#msgs/%u.eml", dir, i);
		fp = fopen(path, "wb");
		if (fp == NULL || fwrite(msg, 1, len, fp) != len || fclose(fp) != 0)
			die(path, strerror(errno));
		free(msg);
	}
	if (system("sync") != 0)
		die("sync", "failed");
	lazy_open(dir, "files", n);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned total = 100000, durable = 1000, threads = 20, rcpts = 10;
	struct store *s;
	struct store_user *u;
	struct store_folder *f;
	const char *err, *dir;
	double t0, rate;
	int opt;
	uint64_t listed = 0;
	struct store_mailbox_stats stats;

	const char *write_dir = NULL;
	unsigned missing = 0;
	bool durable_only = false;
	char name[128];

	while ((opt = getopt(argc, argv, "n:d:t:r:w:m:D")) != -1) {
		switch (opt) {
		case 'D': durable_only = true; break;
		case 'm': missing = (unsigned)atoi(optarg); break;
		case 'w': write_dir = optarg; break;
		case 'n': total = (unsigned)atoi(optarg); break;
		case 'd': durable = (unsigned)atoi(optarg); break;
		case 't': threads = (unsigned)atoi(optarg); break;
		case 'r': rcpts = (unsigned)atoi(optarg); break;
		default:
			fprintf(stderr, "usage: bench_store [-n total] [-d durable] [-t threads] [-r rcpts] [-D] DIR\n"
				"       bench_store -m files DIR | -w OUTDIR -d N\n");
			return 2;
		}
	}
	if (write_dir != NULL) {
		for (unsigned i = 0; i < durable; i++) {
			size_t len;
			char *msg = make_message(i, 4096 + (i * 7919u) % (46 * 1024), &len), path[4096];
			FILE *fp;

			snprintf(path, sizeof(path), "%s/%06u.eml", write_dir, i);
			fp = fopen(path, "wb");
			if (fp == NULL || fwrite(msg, 1, len, fp) != len || fclose(fp) != 0)
				die(path, strerror(errno));
			free(msg);
		}
		return 0;
	}
	if (optind >= argc || threads == 0 || threads > 64 || rcpts == 0 || rcpts > 64) {
		fprintf(stderr, "usage: bench_store [-n total] [-d durable] [-t threads] [-r rcpts] [-D] DIR\n"
				"       bench_store -m files DIR | -w OUTDIR -d N\n");
		return 2;
	}
	dir = argv[optind];
	u_dir = dir;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		die(dir, strerror(errno));
	if (missing > 0)
		return missing_index_only(dir, missing);

	{
		unsigned long long w0, f0, w1, f1;
		bool counted = disk_counts(dir, &w0, &f0);
		double n = 0, rate = fsync_rate(dir, 2.0, &n);

		printf("fsync_rate %.0f fsync/s\n", rate);
		if (counted && disk_counts(dir, &w1, &f1) && n > 0)
			printf("fsync_probe_disk %.2f flushes %.2f writes per fsync\n", (f1 - f0) / n, (w1 - w0) / n);
	}
	fflush(stdout);

	s = open_store(dir, true, true);
	if (store_user_open(s, "example.com", "durable", &u, &err) != STORE_OK)
		die("user", err);
	probe_fsync = true;
	report("deliver_durable_1thread", deliver_folder(u, "INBOX", durable, 1, 0));
	snprintf(name, sizeof(name), "deliver_durable_%uthreads", threads);
	report(name, deliver_folder(u, "INBOX", durable, threads, durable));
	snprintf(name, sizeof(name), "deliver_durable_%uthreads_%uusers", threads, threads);
	report(name, deliver_users(s, durable, threads));
	keyed = true;
	if (store_folder_create(u, "keyed", STORE_ROLE_NONE, &err) != STORE_OK)
		die("create", err);
	report("deliver_durable_keyed_1thread", deliver_folder(u, "keyed", durable, 1, 0));
	snprintf(name, sizeof(name), "deliver_durable_keyed_%uthreads", threads);
	report(name, deliver_folder(u, "keyed", durable, threads, durable));
	keyed = false;
	probe_fsync = false;
	fflush(stdout);
	store_user_unref(&u);
	store_free(&s);

	/* The same with fsync off: what the CPU allows, the ceiling for the
	 * durable figures above on this machine. */
	s = open_store(dir, false, true);
	if (store_user_open(s, "example.com", "nofsync", &u, &err) != STORE_OK)
		die("user", err);
	report("deliver_nofsync_1thread", deliver_folder(u, "INBOX", durable, 1, 0));
	snprintf(name, sizeof(name), "deliver_nofsync_%uthreads", threads);
	report(name, deliver_folder(u, "INBOX", durable, threads, durable));
	store_user_unref(&u);
	store_free(&s);
	if (durable_only)
		return 0;

	printf("deliver_many_hardlinks_%urcpt %.0f deliveries/s\n", rcpts, many_rcpts(dir, true, rcpts, 100));
	printf("deliver_many_copies_%urcpt %.0f deliveries/s\n", rcpts, many_rcpts(dir, false, rcpts, 100));
	fflush(stdout);

	/* The big folder: durable delivery with several threads. */
	s = open_store(dir, true, true);
	if (store_user_open(s, "example.com", "big", &u, &err) != STORE_OK)
		die("user", err);
	t0 = now();
	probe_fsync = true;
	rate = deliver_folder(u, "INBOX", total, threads, 1000000);
	probe_fsync = false;
	snprintf(name, sizeof(name), "deliver_bulk_%u_%uthreads", total, threads);
	report(name, rate);
	printf("deliver_bulk_seconds %.1f s\n", now() - t0);
	fflush(stdout);
	store_user_unref(&u);
	store_free(&s);

	/* Open cold (a new store object: index checked) and list. */
	s = open_store(dir, true, true);
	if (store_user_open(s, "example.com", "big", &u, &err) != STORE_OK)
		die("user", err);
	t0 = now();
	if (store_folder_open(u, "INBOX", &f, &err) != STORE_OK)
		die("open", err);
	printf("open_folder_%u %.3f s\n", total, now() - t0);
	t0 = list_all(f, 0, &listed);
	printf("list_uids_flags_%llu %.3f s\n", (unsigned long long)listed, t0);
	printf("list_envelopes %.3f s\n", list_all(f, STORE_FETCH_ENVELOPE, NULL));
	{
		struct store_search_key k = { .type = STORE_SK_BODY, .text = "pelican quarterly" };
		uint32_t *uids;
		size_t n;

		t0 = now();
		if (store_search(f, &k, &uids, &n, NULL, &err) != STORE_OK)
			die("search", err);
		printf("search_body_fts %.3f s (%zu hits)\n", now() - t0, n);
		free(uids);
	}
	{
		struct store_search_key k = { .type = STORE_SK_BODY, .text = "invoice budget" };
		uint32_t *uids;
		size_t n;

		t0 = now();
		if (store_search(f, &k, &uids, &n, NULL, &err) != STORE_OK)
			die("search", err);
		printf("search_body_fts_again %.3f s (%zu hits)\n", now() - t0, n);
		free(uids);
	}
	store_folder_close(&f);
	if (store_mailbox_stats(u, &stats, &err) != STORE_OK)
		die("stats", err);
	for (size_t i = 0; i < stats.count; i++) {
		if (strcmp(stats.folders[i].name, "INBOX") == 0 && stats.folders[i].messages > 0)
			printf("index_bytes_per_message %.0f bytes (index %.1f MiB, mail %.1f MiB)\n",
			       (double)stats.folders[i].index_bytes / stats.folders[i].messages,
			       stats.folders[i].index_bytes / 1048576.0, stats.folders[i].bytes / 1048576.0);
	}
	store_mailbox_stats_free(&stats);
	{
		struct store_reindex_result rr;

		t0 = now();
		if (store_reindex_folder(u, "INBOX", true, &rr, &err) != STORE_OK)
			die("reindex", err);
		printf("reindex_rebuild_%u %.1f s\n", rr.messages, now() - t0);
	}
	store_user_unref(&u);
	store_free(&s);
	lazy_open(dir, "big", total);
	return 0;
}
