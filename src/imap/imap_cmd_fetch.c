/*
 * FETCH, STORE, COPY and MOVE (RFC 9051 6.4.5-6.4.8, MOVE RFC 6851,
 * UIDPLUS RFC 4315, CONDSTORE/QRESYNC RFC 7162, BINARY RFC 3516), with
 * their UID forms.
 *
 * FETCH streams: a job reads one page of the index (IMAP_FETCH_PAGE
 * messages, fewer when bodies make the output big), formats it on the
 * worker into the job's own evbuffer, and the completion moves that to
 * the connection's output without copying.  The next page is read at once
 * while the client keeps up, or when the output has drained to the low
 * watermark (the write callback calls imap_resume_paused): a FETCH over
 * 100 000 messages never holds more than a page and a megabyte of output.
 */
#include "imap/imap.h"
#include "imap/imap_private.h"
#include "imap/imap_acl.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/log.h"
#include "core/str.h"
#include "mime/mime.h"

/* ---- FETCH items ---- */

#define FI_UID           0x0001
#define FI_FLAGS         0x0002
#define FI_INTERNALDATE  0x0004
#define FI_SIZE          0x0008
#define FI_ENVELOPE      0x0010
#define FI_BODYSTRUCTURE 0x0020
#define FI_BODY          0x0040
#define FI_MODSEQ        0x0080
#define FI_RFC822        0x0100
#define FI_RFC822_HEADER 0x0200
#define FI_RFC822_TEXT   0x0400
#define FI_SAVEDATE      0x0800

struct fetch_data {
	unsigned items;
	struct imap_section *secs;
	size_t nsecs;
	bool set_seen;
	bool need_file;
	uint64_t changedsince;
	bool vanished;            /* UID FETCH ... (CHANGEDSINCE n VANISHED) */
	bool uid_cmd;
	struct store_range *ranges;
	size_t count;
	/* progress */
	bool started;
	bool finished;
	uint32_t after;
	char **keywords;
	uint32_t recent_first, recent_last;
	/* MODSEQs told to the client, for the sequence map */
	uint32_t *told_uids;
	uint64_t *told_modseqs;
	size_t ntold, told_cap;
	bool unknown_cte;
	bool any;
};

static void fetch_cleanup(struct imap_job *job)
{
	struct fetch_data *d = job->data;

	for (size_t i = 0; i < d->nsecs; i++)
		imap_section_free(&d->secs[i]);
	free(d->secs);
	free(d->ranges);
	store_keywords_free(&d->keywords, STORE_MAX_KEYWORDS);
	free(d->told_uids);
	free(d->told_modseqs);
	free(d);
}

static void told(struct fetch_data *d, uint32_t uid, uint64_t modseq)
{
	if (d->ntold == d->told_cap) {
		d->told_cap = d->told_cap == 0 ? 64 : d->told_cap * 2;
		d->told_uids = xreallocarray(d->told_uids, d->told_cap, sizeof(*d->told_uids));
		d->told_modseqs = xreallocarray(d->told_modseqs, d->told_cap, sizeof(*d->told_modseqs));
	}
	d->told_uids[d->ntold] = uid;
	d->told_modseqs[d->ntold] = modseq;
	d->ntold++;
}

/* A message file mapped for its sections. */
struct mapped {
	int fd;
	void *addr;               /* NULL for an empty file */
	size_t len;
	bool done;                /* tried (addr valid unless failed) */
	bool failed;
};

static void unmap(struct mapped *m)
{
	if (m->addr != NULL)
		munmap(m->addr, m->len);
	if (m->fd >= 0)
		close(m->fd);
	m->addr = NULL;
	m->fd = -1;
}

static bool map_msg(struct imap_job *job, uint32_t uid, struct mapped *m)
{
	uint64_t size;
	const char *error;
	void *addr;

	if (m->done)
		return !m->failed;
	m->done = true;
	if (store_msg_open(job->mbox->folder, uid, &m->fd, &size, &error) != STORE_OK) {
		m->fd = -1;
		m->failed = true;
		return false;
	}
	m->len = (size_t)size;
	if (size == 0)
		return true;
	addr = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, m->fd, 0);
	if (addr == MAP_FAILED) {
		m->failed = true;
		return false;
	}
	m->addr = addr;
	return true;
}

static const char *mapped_data(const struct mapped *m)
{
	return m->addr != NULL ? m->addr : "";
}

/* A cached structure string, or one computed from the file when the
 * index has none (an older index, a message the summary gave up on). */
static void structure_item(struct evbuffer *out, const char *name, const char *cached,
			   struct imap_job *job, uint32_t uid, struct mapped *m, int which)
{
	struct mime_limits limits;
	struct mime_summary sum;
	const char *val;

	if (cached != NULL) {
		evbuffer_add_printf(out, "%s %s", name, cached);
		return;
	}
	if (!map_msg(job, uid, m)) {
		evbuffer_add_printf(out, "%s NIL", name);
		return;
	}
	mime_limits_default(&limits);
	mime_summarize(mapped_data(m), m->len, &limits, false, &sum);
	val = which == 0 ? sum.envelope : which == 1 ? sum.bodystructure : sum.body;
	evbuffer_add_printf(out, "%s %s", name, val != NULL ? val : "NIL");
	mime_summary_deinit(&sum);
}

static void fetch_one(struct imap_job *job, struct fetch_data *d, uint32_t seq,
		      const struct store_msg *msg)
{
	struct evbuffer *out = job->out;
	struct mapped m = { -1, NULL, 0, false, false };
	bool recent = !job->rev2 && msg->uid >= d->recent_first && msg->uid <= d->recent_last;
	bool sep = false;

#define SEP() do { if (sep) evbuffer_add(out, " ", 1); sep = true; } while (0)
	evbuffer_add_printf(out, "* %u FETCH (", seq);
	if ((d->items & FI_UID) != 0) {
		SEP();
		evbuffer_add_printf(out, "UID %u", msg->uid);
	}
	if ((d->items & FI_FLAGS) != 0) {
		struct buf f;

		buf_init(&f, 16 * 1024);
		imap_append_flags(&f, msg->flags, msg->keywords, d->keywords, recent);
		SEP();
		evbuffer_add(out, f.data, f.len);
		buf_deinit(&f);
		told(d, msg->uid, msg->modseq);
	}
	if ((d->items & FI_MODSEQ) != 0 || ((d->items & FI_FLAGS) != 0 && job->condstore)) {
		SEP();
		evbuffer_add_printf(out, "MODSEQ (%llu)", (unsigned long long)msg->modseq);
	}
	if ((d->items & FI_INTERNALDATE) != 0) {
		struct buf t;

		buf_init(&t, 64);
		if (imap_format_datetime(&t, msg->internal_date, msg->tz) < 0)
			panic("imap fetch: date");
		SEP();
		evbuffer_add_printf(out, "INTERNALDATE %s", t.data);
		buf_deinit(&t);
	}
	if ((d->items & FI_SAVEDATE) != 0) {
		struct buf t;

		buf_init(&t, 64);
		if (imap_format_datetime(&t, msg->save_date, 0) < 0)
			panic("imap fetch: date");
		SEP();
		evbuffer_add_printf(out, "SAVEDATE %s", t.data);
		buf_deinit(&t);
	}
	if ((d->items & FI_SIZE) != 0) {
		SEP();
		evbuffer_add_printf(out, "RFC822.SIZE %llu", (unsigned long long)msg->size);
	}
	if ((d->items & FI_ENVELOPE) != 0) {
		SEP();
		structure_item(out, "ENVELOPE", msg->envelope, job, msg->uid, &m, 0);
	}
	if ((d->items & FI_BODYSTRUCTURE) != 0) {
		SEP();
		structure_item(out, "BODYSTRUCTURE", msg->bodystructure, job, msg->uid, &m, 1);
	}
	if ((d->items & FI_BODY) != 0) {
		SEP();
		structure_item(out, "BODY", msg->body, job, msg->uid, &m, 2);
	}
	if ((d->items & (FI_RFC822 | FI_RFC822_HEADER | FI_RFC822_TEXT)) != 0) {
		static const struct {
			unsigned bit;
			const char *name;
			enum imap_section_kind kind;
		} old[] = {
			{ FI_RFC822, "RFC822", IMAP_SECTION_ALL },
			{ FI_RFC822_HEADER, "RFC822.HEADER", IMAP_SECTION_HEADER },
			{ FI_RFC822_TEXT, "RFC822.TEXT", IMAP_SECTION_TEXT },
		};

		for (size_t i = 0; i < sizeof(old) / sizeof(old[0]); i++) {
			struct imap_section sec;
			struct evbuffer *tmp;
			size_t skip;

			if ((d->items & old[i].bit) == 0)
				continue;
			SEP();
			if (!map_msg(job, msg->uid, &m)) {
				evbuffer_add_printf(out, "%s NIL", old[i].name);
				continue;
			}
			memset(&sec, 0, sizeof(sec));
			sec.type = IMAP_BODY;
			sec.kind = old[i].kind;
			sec.echo = (char *)"X";
			tmp = evbuffer_new();
			imap_body_section(mapped_data(&m), m.len, &sec, tmp, &d->unknown_cte);
			/* drop the "X " echo: the item has its RFC822 name */
			skip = 2;
			evbuffer_drain(tmp, skip);
			evbuffer_add_printf(out, "%s ", old[i].name);
			evbuffer_add_buffer(out, tmp);
			evbuffer_free(tmp);
		}
	}
	for (size_t i = 0; i < d->nsecs; i++) {
		const struct imap_section *sec = &d->secs[i];

		SEP();
		if (!map_msg(job, msg->uid, &m)) {
			evbuffer_add_printf(out, "%s NIL", sec->echo);
			continue;
		}
		if (sec->kind == IMAP_SECTION_ALL && sec->nparts == 0 && sec->type != IMAP_BINARY_SIZE &&
		    m.addr != NULL && m.len > 64 * 1024 && memchr(m.addr, '\0', m.len) == NULL) {
			/* the whole message, big: straight from the file (no
			 * copy in memory; sendfile on a plain socket) */
			uint64_t off = 0, n = m.len;
			int fd2 = dup(m.fd);

			if (sec->partial) {
				off = sec->offset < m.len ? sec->offset : m.len;
				n = m.len - off < sec->count ? m.len - off : sec->count;
			}
			evbuffer_add_printf(out, "%s {%llu}\r\n", sec->echo, (unsigned long long)n);
			if (n > 0 && (fd2 < 0 || evbuffer_add_file(out, fd2, (ev_off_t)off, (ev_off_t)n) < 0)) {
				if (fd2 >= 0)
					close(fd2);
				evbuffer_add(out, (const char *)m.addr + off, n);
			} else if (n == 0 && fd2 >= 0) {
				close(fd2);
			}
			continue;
		}
		if (sec->type == IMAP_BINARY_SIZE) {
			uint64_t size;

			if (imap_body_binary_size(mapped_data(&m), m.len, sec, &size, &d->unknown_cte) < 0)
				evbuffer_add_printf(out, "%s NIL", sec->echo);
			else
				evbuffer_add_printf(out, "%s %llu", sec->echo, (unsigned long long)size);
			continue;
		}
		imap_body_section(mapped_data(&m), m.len, sec, out, &d->unknown_cte);
	}
	evbuffer_add(out, ")\r\n", 3);
	unmap(&m);
#undef SEP
}

static void fetch_run(struct imap_job *job)
{
	struct fetch_data *d = job->data;
	struct store_uidset set = { d->ranges, d->count };
	struct store_page *page;
	const char *error;
	enum store_status st;
	uint32_t fields = 0;

	if (!d->started) {
		size_t kwcount;

		d->started = true;
		st = store_folder_keywords(job->mbox->folder, &d->keywords, &kwcount, &error);
		if (st != STORE_OK) {
			imap_job_fail(job, st, error);
			d->finished = true;
			return;
		}
		if (d->set_seen) {
			/* RFC 9051 6.4.5: BODY[...] without PEEK sets \Seen;
			 * FLAGS are then returned (d->items has FI_FLAGS) */
			st = store_set_flags(job->mbox->folder, &set, STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0,
					     NULL, &error);
			if (st != STORE_OK) {
				imap_job_fail(job, st, error);
				d->finished = true;
				return;
			}
		}
		if (d->vanished) {
			uint32_t *uids = NULL;
			size_t n = 0;

			if (store_vanished(job->mbox->folder, d->changedsince, &set, &uids, &n, &error) ==
			    STORE_OK && n > 0) {
				struct imap_uidvec v = { uids, n, n };
				struct buf line;

				buf_init(&line, SIZE_MAX / 4);
				if (buf_append_str(&line, "* VANISHED (EARLIER) ") < 0)
					panic("imap: buffer");
				for (size_t i = 0; i < v.n;) {
					size_t j = i;

					while (j + 1 < v.n && v.v[j + 1] == v.v[j] + 1)
						j++;
					if (buf_printf(&line, "%s%u", i > 0 ? "," : "", v.v[i]) < 0 ||
					    (j > i && buf_printf(&line, ":%u", v.v[j]) < 0))
						panic("imap: buffer");
					i = j + 1;
				}
				if (buf_append_str(&line, "\r\n") < 0)
					panic("imap: buffer");
				evbuffer_add(job->out, line.data, line.len);
				buf_deinit(&line);
			}
			free(uids);
		}
	}
	if ((d->items & FI_ENVELOPE) != 0)
		fields |= STORE_FETCH_ENVELOPE;
	if ((d->items & FI_BODYSTRUCTURE) != 0)
		fields |= STORE_FETCH_BODYSTRUCTURE;
	if ((d->items & FI_BODY) != 0)
		fields |= STORE_FETCH_BODY;
	st = store_fetch(job->mbox->folder, &set, d->changedsince, fields, d->after, IMAP_FETCH_PAGE,
			 &page, &error);
	if (st != STORE_OK) {
		imap_job_fail(job, st, error);
		d->finished = true;
		return;
	}
	d->ntold = 0;
	for (size_t i = 0; i < page->count; i++) {
		const struct store_msg *msg = &page->msgs[i];
		uint32_t seq = imap_seqmap_find(job->map, msg->uid);

		d->after = msg->uid;
		/* a message the client has not been told of (EXISTS) yet */
		if (seq == 0)
			continue;
		fetch_one(job, d, seq, msg);
		d->any = true;
		if (evbuffer_get_length(job->out) > IMAP_FETCH_OUT_MAX && i + 1 < page->count) {
			store_page_free(&page);
			return;  /* the rest of the page next time */
		}
	}
	if (!page->more || page->count == 0)
		d->finished = true;
	store_page_free(&page);
}

static void fetch_done(struct imap_session *s, struct imap_job *job)
{
	struct fetch_data *d = job->data;
	struct evbuffer *output = bufferevent_get_output(s->conn->bev);

	evbuffer_add_buffer(output, job->out);
	if (s->sel != NULL && d->ntold > 0) {
		/* the flags the client now knows: no second FETCH for them */
		struct imap_seqmap *m = s->sel->map;

		for (size_t i = 0; i < d->ntold; i++) {
			uint32_t seq = imap_seqmap_find(m, d->told_uids[i]);

			if (seq != 0 && d->told_modseqs[i] > m->modseqs[seq - 1])
				m->modseqs[seq - 1] = d->told_modseqs[i];
		}
		d->ntold = 0;
	}
	if (!d->finished) {
		if (s->stopping) {
			/* the engine stops: end here (the client retries) */
			imap_no(s, "[UNAVAILABLE] Server shutting down");
			return;
		}
		if (evbuffer_get_length(output) >= IMAP_WRITE_HIGH_WATER) {
			job->keep = true;
			s->paused = job;
			s->mode = IMAP_MODE_BUSY;
			return;
		}
		if (imap_job_resubmit(s, job) < 0)
			imap_no(s, "[UNAVAILABLE] Server busy, try again later");
		return;
	}
	if (job->status != STORE_OK) {
		imap_no_store(s, job->status, job->error, "FETCH");
		return;
	}
	if (d->unknown_cte) {
		imap_no(s, "[UNKNOWN-CTE] A part's transfer encoding cannot be decoded");
		return;
	}
	imap_ok(s, "%sFETCH completed", s->cmd_uid ? "UID " : "");
}

void imap_resume_paused(struct imap_session *s)
{
	struct imap_job *job = s->paused;

	s->paused = NULL;
	if (job == NULL)
		return;
	if (imap_job_resubmit(s, job) < 0) {
		imap_job_free(job);
		s->mode = IMAP_MODE_COMMAND;
		imap_no(s, "[UNAVAILABLE] Server busy, try again later");
		imap_process_input(s);
	}
}

/* Parses one FETCH item into d.  Returns 0 or -1 with *error_r. */
static int fetch_item(struct imap_session *s, const struct imap_arg *a, struct fetch_data *d,
		      const char **error_r)
{
	static const struct {
		const char *name;
		unsigned items;
	} simple[] = {
		{ "UID", FI_UID }, { "FLAGS", FI_FLAGS }, { "INTERNALDATE", FI_INTERNALDATE },
		{ "RFC822.SIZE", FI_SIZE }, { "ENVELOPE", FI_ENVELOPE },
		{ "BODYSTRUCTURE", FI_BODYSTRUCTURE }, { "BODY", FI_BODY }, { "MODSEQ", FI_MODSEQ },
		{ "RFC822", FI_RFC822 }, { "RFC822.HEADER", FI_RFC822_HEADER },
		{ "RFC822.TEXT", FI_RFC822_TEXT }, { "SAVEDATE", FI_SAVEDATE },
		{ "ALL", FI_FLAGS | FI_INTERNALDATE | FI_SIZE | FI_ENVELOPE },
		{ "FAST", FI_FLAGS | FI_INTERNALDATE | FI_SIZE },
		{ "FULL", FI_FLAGS | FI_INTERNALDATE | FI_SIZE | FI_ENVELOPE | FI_BODY },
	};
	const char *t;

	if (a->type != IMAP_ARG_ATOM) {
		*error_r = "Invalid FETCH item";
		return -1;
	}
	t = imap_arg_text(&s->parser, a);
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (strcasecmp(t, simple[i].name) == 0) {
			d->items |= simple[i].items;
			if ((simple[i].items & FI_MODSEQ) != 0)
				s->condstore = true;  /* RFC 7162 3.1: enables CONDSTORE */
			return 0;
		}
	}
	if (strchr(t, '[') != NULL) {
		struct imap_section sec;

		if (imap_section_parse(t, a->len, &sec, error_r) < 0)
			return -1;
		if (d->nsecs >= 64) {
			imap_section_free(&sec);
			*error_r = "Too many body sections";
			return -1;
		}
		d->secs = xreallocarray(d->secs, d->nsecs + 1, sizeof(*d->secs));
		d->secs[d->nsecs++] = sec;
		return 0;
	}
	*error_r = "Unknown FETCH item";
	return -1;
}

void imap_cmd_fetch(struct imap_session *s, struct imap_args *args)
{
	const struct imap_arg *set_arg = imap_args_next(args), *items = imap_args_next(args);
	const struct imap_arg *mods = imap_args_next(args);
	struct fetch_data *d;
	struct imap_seqset set;
	struct imap_job *job;
	const char *error = "Usage: FETCH sequence-set items [(CHANGEDSINCE modseq)]";

	if (set_arg == NULL || items == NULL || imap_args_left(args) != 0 ||
	    (mods != NULL && mods->type != IMAP_ARG_LIST))
		goto bad0;
	d = xcalloc(1, sizeof(*d));
	d->uid_cmd = s->cmd_uid;
	if (items->type == IMAP_ARG_LIST) {
		struct imap_args it;
		const struct imap_arg *a;

		if (items->count == 0)
			goto bad;
		imap_args_list(&s->parser, items, &it);
		while ((a = imap_args_next(&it)) != NULL) {
			if (fetch_item(s, a, d, &error) < 0)
				goto bad;
		}
	} else if (fetch_item(s, items, d, &error) < 0) {
		goto bad;
	}
	if (mods != NULL) {
		struct imap_args it;
		const struct imap_arg *a;

		imap_args_list(&s->parser, mods, &it);
		while ((a = imap_args_next(&it)) != NULL) {
			if (imap_arg_atom_is(&s->parser, a, "CHANGEDSINCE")) {
				const struct imap_arg *v = imap_args_next(&it);

				if (v == NULL || v->type != IMAP_ARG_ATOM ||
				    str_to_u64(imap_arg_text(&s->parser, v), &d->changedsince) < 0) {
					error = "Invalid CHANGEDSINCE";
					goto bad;
				}
				s->condstore = true;
				d->items |= FI_MODSEQ;
			} else if (imap_arg_atom_is(&s->parser, a, "VANISHED") && s->cmd_uid && s->qresync) {
				d->vanished = true;
			} else {
				error = "Unknown FETCH modifier";
				goto bad;
			}
		}
		if (d->vanished && d->changedsince == 0) {
			error = "VANISHED needs CHANGEDSINCE";
			goto bad;
		}
	}
	if (s->cmd_uid)
		d->items |= FI_UID;  /* RFC 9051 6.4.9 */
	for (size_t i = 0; i < d->nsecs; i++) {
		if (d->secs[i].type == IMAP_BODY || d->secs[i].type == IMAP_BINARY)
			d->set_seen = true;
	}
	if ((d->items & (FI_RFC822 | FI_RFC822_TEXT)) != 0)
		d->set_seen = true;
	if (s->sel->readonly || (s->sel->rights & STORE_ACL_S) == 0)
		d->set_seen = false;
	if (d->set_seen)
		d->items |= FI_FLAGS;
	if (imap_resolve_set(s, set_arg, s->cmd_uid, &set, &error) < 0)
		goto bad;
	if (set.count == 0) {
		imap_seqset_free(&set);
		fetch_cleanup(&(struct imap_job){ .data = d });
		imap_ok(s, "%sFETCH completed", s->cmd_uid ? "UID " : "");
		return;
	}
	if (d->vanished && strchr(imap_arg_text(&s->parser, set_arg), '*') != NULL) {
		/* for VANISHED, "n:*" reaches past the last UID in use: an
		 * expunged message above it is still reported (RFC 7162 3.2.6) */
		for (size_t i = 0; i < set.count; i++) {
			if (set.ranges[i].hi == (s->sel->map->count > 0 ?
						 s->sel->map->uids[s->sel->map->count - 1] : 0))
				set.ranges[i].hi = UINT32_MAX;
		}
	}
	d->ranges = xmallocarray(set.count, sizeof(*d->ranges));
	for (size_t i = 0; i < set.count; i++) {
		d->ranges[i].lo = set.ranges[i].lo;
		d->ranges[i].hi = set.ranges[i].hi;
	}
	d->count = set.count;
	imap_seqset_free(&set);
	d->recent_first = s->sel->recent_first;
	d->recent_last = s->sel->recent_last;
	job = imap_job_new(s, fetch_run, fetch_done);
	job->condstore = s->condstore;
	job->cleanup = fetch_cleanup;
	job->data = d;
	imap_job_submit(s, job);
	return;
bad:
	fetch_cleanup(&(struct imap_job){ .data = d });
bad0:
	imap_bad(s, "%s", error);
}

/* ---- STORE ---- */

struct store_data {
	struct store_range *ranges;
	size_t count;
	enum store_flag_op op;
	uint32_t flags;
	const char **keywords;    /* copies */
	size_t nkeywords;
	uint64_t unchangedsince;
	bool silent;
	struct store_flag_result result;
	char **names;
};

static void store_cleanup(struct imap_job *job)
{
	struct store_data *d = job->data;

	free(d->ranges);
	for (size_t i = 0; i < d->nkeywords; i++)
		free((char *)d->keywords[i]);
	free(d->keywords);
	store_flag_result_free(&d->result);
	store_keywords_free(&d->names, STORE_MAX_KEYWORDS);
	free(d);
}

static void store_run(struct imap_job *job)
{
	struct store_data *d = job->data;
	struct store_uidset set = { d->ranges, d->count };
	const char *error;
	size_t kwcount;
	enum store_status st;

	st = store_set_flags(job->mbox->folder, &set, d->op, d->flags, d->keywords, d->unchangedsince,
			     &d->result, &error);
	if (st == STORE_OK)
		st = store_folder_keywords(job->mbox->folder, &d->names, &kwcount, &error);
	if (st != STORE_OK)
		imap_job_fail(job, st, error);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void store_done(struct imap_session *s, struct imap_job *job)
{
	struct store_data *d = job->data;
	struct imap_seqmap *m;
	struct buf line, modified;

	imap_seqmap_unref(&job->map);
	if (job->status != STORE_OK) {
		imap_no_store(s, job->status, job->error, "STORE");
		return;
	}
	m = s->sel->map;
	buf_init(&line, SIZE_MAX / 4);
	for (size_t i = 0; i < d->result.changed_count; i++) {
		const struct store_flag_change *c = &d->result.changed[i];
		uint32_t seq = imap_seqmap_find(m, c->uid);

		if (seq == 0)
			continue;
		if (c->modseq > m->modseqs[seq - 1])
			m->modseqs[seq - 1] = c->modseq;
		/* RFC 7162 3.1.3: with UNCHANGEDSINCE even .SILENT reports
		 * the new MODSEQ */
		if (d->silent && d->unchangedsince == 0)
			continue;
		buf_reset(&line);
		if (buf_printf(&line, "* %u FETCH (", seq) < 0)
			panic("imap store: buffer");
		if (!d->silent)
			imap_append_flags(&line, c->flags, c->keywords, d->names,
					  !s->rev2 && c->uid >= s->sel->recent_first &&
					  c->uid <= s->sel->recent_last);
		if ((s->cmd_uid || s->qresync) &&
		    buf_printf(&line, "%sUID %u", d->silent ? "" : " ", c->uid) < 0)
			panic("imap store: buffer");
		if (s->condstore &&
		    buf_printf(&line, "%sMODSEQ (%llu)", (!d->silent || s->cmd_uid || s->qresync) ? " " : "",
			       (unsigned long long)c->modseq) < 0)
			panic("imap store: buffer");
		if (buf_append_str(&line, ")\r\n") < 0)
			panic("imap store: buffer");
		imap_write(s, line.data, line.len);
	}
	buf_deinit(&line);
	if (d->result.modified_count > 0) {
		/* RFC 7162 3.1.3: [MODIFIED set] of what was not stored */
		uint32_t *v = xmallocarray(d->result.modified_count, sizeof(*v));
		size_t n = 0;

		for (size_t i = 0; i < d->result.modified_count; i++) {
			uint32_t x = s->cmd_uid ? d->result.modified[i] :
				     imap_seqmap_find(m, d->result.modified[i]);

			if (x != 0)
				v[n++] = x;
		}
		qsort(v, n, sizeof(*v), cmp_u32);
		buf_init(&modified, SIZE_MAX / 4);
		for (size_t i = 0; i < n;) {
			size_t j = i;

			while (j + 1 < n && v[j + 1] == v[j] + 1)
				j++;
			if (buf_printf(&modified, "%s%u", i > 0 ? "," : "", v[i]) < 0 ||
			    (j > i && buf_printf(&modified, ":%u", v[j]) < 0))
				panic("imap store: buffer");
			i = j + 1;
		}
		free(v);
		if (n > 0) {
			imap_ok(s, "[MODIFIED %s] Conditional STORE failed for some messages", modified.data);
			buf_deinit(&modified);
			return;
		}
		buf_deinit(&modified);
	}
	imap_ok(s, "%sSTORE completed", s->cmd_uid ? "UID " : "");
}

/* RFC 4314 4: \Seen needs "s", \Deleted "t", other flags and keywords
 * "w".  Flags the user may not change are left out of +FLAGS and -FLAGS
 * (a STORE that fails confuses clients more); only a STORE left with
 * nothing fails, and so does a FLAGS replacement without all three. */
static int store_rights_filter(uint32_t rights, struct store_data *d)
{
	const uint32_t all = STORE_ACL_S | STORE_ACL_T | STORE_ACL_W;
	uint32_t allowed = ((rights & STORE_ACL_S) != 0 ? STORE_F_SEEN : 0) |
			   ((rights & STORE_ACL_T) != 0 ? STORE_F_DELETED : 0) |
			   ((rights & STORE_ACL_W) != 0 ? STORE_F_ALL & ~(STORE_F_SEEN | STORE_F_DELETED) : 0);
	bool any = d->flags != 0 || d->nkeywords > 0;

	if ((rights & all) == all)
		return 0;
	if (d->op == STORE_FLAGS_REPLACE)
		return -1;
	d->flags &= allowed;
	if ((rights & STORE_ACL_W) == 0)
		d->nkeywords = 0;
	return any && d->flags == 0 && d->nkeywords == 0 ? -1 : 0;
}

void imap_cmd_store(struct imap_session *s, struct imap_args *args)
{
	const struct imap_arg *set_arg = imap_args_next(args), *a = imap_args_next(args);
	struct store_data *d;
	struct imap_seqset set;
	struct imap_job *job;
	const char *error = "Usage: STORE sequence-set [(UNCHANGEDSINCE n)] [+-]FLAGS[.SILENT] (flags)";
	const char *what;
	const char **kw = NULL;

	if (set_arg == NULL || a == NULL)
		goto bad0;
	d = xcalloc(1, sizeof(*d));
	if (a->type == IMAP_ARG_LIST) {
		struct imap_args it;
		const struct imap_arg *m, *v;

		imap_args_list(&s->parser, a, &it);
		m = imap_args_next(&it);
		v = imap_args_next(&it);
		if (!imap_arg_atom_is(&s->parser, m, "UNCHANGEDSINCE") || v == NULL ||
		    v->type != IMAP_ARG_ATOM || imap_args_left(&it) != 0 ||
		    str_to_u64(imap_arg_text(&s->parser, v), &d->unchangedsince) < 0) {
			error = "Invalid STORE modifier";
			goto bad;
		}
		/* UNCHANGEDSINCE 0 can never succeed (RFC 7162); 0 is our "none" */
		if (d->unchangedsince == 0)
			d->unchangedsince = 1;
		s->condstore = true;
		a = imap_args_next(args);
	}
	if (a == NULL || a->type != IMAP_ARG_ATOM)
		goto bad;
	what = imap_arg_text(&s->parser, a);
	if (what[0] == '+') {
		d->op = STORE_FLAGS_ADD;
		what++;
	} else if (what[0] == '-') {
		d->op = STORE_FLAGS_REMOVE;
		what++;
	} else {
		d->op = STORE_FLAGS_REPLACE;
	}
	if (strcasecmp(what, "FLAGS.SILENT") == 0)
		d->silent = true;
	else if (strcasecmp(what, "FLAGS") != 0)
		goto bad;
	a = imap_args_next(args);
	if (a == NULL)
		goto bad;
	if (a->type == IMAP_ARG_LIST || imap_args_left(args) == 0) {
		if (imap_parse_flags(&s->parser, a, &d->flags, &kw, &d->nkeywords, &error) < 0)
			goto bad;
		if (imap_args_left(args) != 0) {
			free(kw);
			goto bad;
		}
	} else {
		/* RFC 3501 also allows flags without parentheses */
		struct imap_args rest = *args;
		const struct imap_arg *f = a;

		do {
			uint32_t fl;
			const char **k = NULL;
			size_t nk = 0;

			if (imap_parse_flags(&s->parser, f, &fl, &k, &nk, &error) < 0) {
				free(kw);
				goto bad;
			}
			d->flags |= fl;
			for (size_t i = 0; i < nk; i++) {
				kw = xreallocarray(kw, d->nkeywords + 2, sizeof(*kw));
				kw[d->nkeywords++] = k[i];
				kw[d->nkeywords] = NULL;
			}
			free(k);
		} while ((f = imap_args_next(&rest)) != NULL);
	}
	if (store_rights_filter(s->sel->rights, d) < 0) {
		free(kw);
		store_cleanup(&(struct imap_job){ .data = d });
		imap_no(s, "[NOPERM] STORE: permission denied");
		return;
	}
	if (s->sel->readonly) {
		free(kw);
		store_cleanup(&(struct imap_job){ .data = d });
		imap_no(s, "[READ-ONLY] Mailbox is read-only");
		return;
	}
	/* the keywords point into the parser's data: copy them */
	if (d->nkeywords > 0) {
		d->keywords = xmallocarray(d->nkeywords + 1, sizeof(*d->keywords));
		for (size_t i = 0; i < d->nkeywords; i++)
			d->keywords[i] = xstrdup(kw[i]);
		d->keywords[d->nkeywords] = NULL;
	}
	free(kw);
	if (imap_resolve_set(s, set_arg, s->cmd_uid, &set, &error) < 0)
		goto bad;
	if (set.count == 0) {
		imap_seqset_free(&set);
		store_cleanup(&(struct imap_job){ .data = d });
		imap_ok(s, "%sSTORE completed", s->cmd_uid ? "UID " : "");
		return;
	}
	d->ranges = xmallocarray(set.count, sizeof(*d->ranges));
	for (size_t i = 0; i < set.count; i++) {
		d->ranges[i].lo = set.ranges[i].lo;
		d->ranges[i].hi = set.ranges[i].hi;
	}
	d->count = set.count;
	imap_seqset_free(&set);
	job = imap_job_new(s, store_run, store_done);
	job->cleanup = store_cleanup;
	job->data = d;
	imap_job_submit(s, job);
	return;
bad:
	store_cleanup(&(struct imap_job){ .data = d });
bad0:
	imap_bad(s, "%s", error);
}

/* ---- COPY and MOVE ---- */

struct copy_data {
	struct store_range *ranges;
	size_t count;
	char *name;
	bool move;
	struct store_copy_map map;
};

static void copy_cleanup(struct imap_job *job)
{
	struct copy_data *d = job->data;

	free(d->ranges);
	free(d->name);
	store_copy_map_free(&d->map);
	free(d);
}

/* The usage of t's owner, or nothing (all zero) when it has no quota. */
static void owner_usage(const struct imap_target *t, struct store_quota *q)
{
	const char *error;

	if (t->owner_id == NULL || store_user_quota(t->owner, q, &error) != STORE_OK)
		memset(q, 0, sizeof(*q));
}

static void copy_run(struct imap_job *job)
{
	struct copy_data *d = job->data;
	struct store_uidset set = { d->ranges, d->count };
	struct store_quota before, after;
	struct store_folder *dst;
	struct imap_target t;
	const char *error;
	enum store_status st;

	st = imap_acl_open_target(job->user, d->name, STORE_ACL_I, &t, &dst, &error);
	if (st != STORE_OK) {
		imap_job_fail(job, st, error);
		return;
	}
	/* the owner's usage around the copy, for the quota warning (a MOVE
	 * inside one mailbox leaves it as it was) */
	owner_usage(&t, &before);
	st = store_copy(job->mbox->folder, dst, &set, d->move, &d->map, &error);
	store_folder_close(&dst);
	if (st == STORE_OK) {
		owner_usage(&t, &after);
		if (after.bytes > before.bytes || after.messages > before.messages)
			imap_acl_quota_warn(&t, &after,
					    after.bytes > before.bytes ? after.bytes - before.bytes : 0,
					    after.messages > before.messages ?
					    after.messages - before.messages : 0);
	}
	imap_target_free(&t);
	if (st != STORE_OK)
		imap_job_fail(job, st, error);
}

static void append_u32_set(struct buf *out, const uint32_t *v, size_t n)
{
	/* COPYUID keeps the source order: one number or range per run */
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		if (buf_printf(out, "%s%u", i > 0 ? "," : "", v[i]) < 0 ||
		    (j > i && buf_printf(out, ":%u", v[j]) < 0))
			panic("imap copy: buffer");
		i = j + 1;
	}
}

static void copy_done(struct imap_session *s, struct imap_job *job)
{
	struct copy_data *d = job->data;
	struct buf code;

	imap_seqmap_unref(&job->map);
	if (job->status == STORE_E_NOTFOUND) {
		imap_no(s, "[TRYCREATE] Mailbox does not exist");
		return;
	}
	if (job->status != STORE_OK) {
		imap_no_store(s, job->status, job->error, d->move ? "MOVE" : "COPY");
		return;
	}
	buf_init(&code, SIZE_MAX / 4);
	if (d->map.count > 0) {
		if (buf_printf(&code, "[COPYUID %u ", d->map.dst_uidvalidity) < 0)
			panic("imap copy: buffer");
		append_u32_set(&code, d->map.src_uids, d->map.count);
		if (buf_append_char(&code, ' ') < 0)
			panic("imap copy: buffer");
		append_u32_set(&code, d->map.dst_uids, d->map.count);
		if (buf_append_str(&code, "] ") < 0)
			panic("imap copy: buffer");
	}
	if (d->move) {
		/* RFC 6851: COPYUID untagged, then the expunges, then OK */
		struct imap_uidvec vanished = { NULL, 0, 0 };
		uint32_t *src = xmallocarray(d->map.count + 1, sizeof(*src));

		if (code.len > 0)
			imap_printf(s, "* OK %sMoved\r\n", code.data);
		memcpy(src, d->map.src_uids, d->map.count * sizeof(*src));
		qsort(src, d->map.count, sizeof(*src), cmp_u32);
		for (size_t i = d->map.count; i > 0; i--)
			imap_expunge_uid(s, src[i - 1], s->qresync ? &vanished : NULL);
		free(src);
		imap_send_vanished(s, &vanished, false);
		imap_uidvec_free(&vanished);
		imap_ok(s, "%sMOVE completed", s->cmd_uid ? "UID " : "");
	} else {
		imap_ok(s, "%s%sCOPY completed", code.len > 0 ? code.data : "", s->cmd_uid ? "UID " : "");
	}
	buf_deinit(&code);
}

static void copy_common(struct imap_session *s, struct imap_args *args, bool move)
{
	const struct imap_arg *set_arg = imap_args_next(args), *mb = imap_args_next(args);
	struct imap_seqset set;
	struct copy_data *d;
	struct imap_job *job;
	struct buf name;
	const char *error, *text;
	size_t len;

	if (set_arg == NULL || mb == NULL || imap_args_left(args) != 0) {
		imap_bad(s, "Usage: %s sequence-set mailbox", move ? "MOVE" : "COPY");
		return;
	}
	text = imap_arg_astring(&s->parser, mb, &len);
	buf_init(&name, SIZE_MAX / 4);
	if (text == NULL || imap_name_in(s, text, len, &name) < 0 || name.len == 0) {
		buf_deinit(&name);
		imap_bad(s, "Invalid mailbox name");
		return;
	}
	if (move && (s->sel->rights & (STORE_ACL_T | STORE_ACL_E)) != (STORE_ACL_T | STORE_ACL_E)) {
		/* RFC 6851 3.3: MOVE needs the rights of STORE \Deleted and EXPUNGE */
		buf_deinit(&name);
		imap_no(s, "[NOPERM] MOVE: permission denied");
		return;
	}
	if (move && s->sel->readonly) {
		buf_deinit(&name);
		imap_no(s, "[READ-ONLY] Mailbox is read-only");
		return;
	}
	if (imap_resolve_set(s, set_arg, s->cmd_uid, &set, &error) < 0) {
		buf_deinit(&name);
		imap_bad(s, "%s", error);
		return;
	}
	if (set.count == 0) {
		imap_seqset_free(&set);
		buf_deinit(&name);
		imap_ok(s, "%s completed (nothing to do)", move ? "MOVE" : "COPY");
		return;
	}
	d = xcalloc(1, sizeof(*d));
	d->move = move;
	d->name = buf_steal(&name);
	buf_deinit(&name);
	d->ranges = xmallocarray(set.count, sizeof(*d->ranges));
	for (size_t i = 0; i < set.count; i++) {
		d->ranges[i].lo = set.ranges[i].lo;
		d->ranges[i].hi = set.ranges[i].hi;
	}
	d->count = set.count;
	imap_seqset_free(&set);
	job = imap_job_new(s, copy_run, copy_done);
	job->cleanup = copy_cleanup;
	job->data = d;
	imap_job_submit(s, job);
}

void imap_cmd_copy(struct imap_session *s, struct imap_args *args)
{
	copy_common(s, args, false);
}

void imap_cmd_move(struct imap_session *s, struct imap_args *args)
{
	copy_common(s, args, true);
}
