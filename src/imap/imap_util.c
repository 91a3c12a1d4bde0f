/*
 * Helpers shared by the IMAP commands: the capability list, mailbox name
 * conversion, flags, sequence sets resolved against the session's view,
 * and the per-user connection counter.
 */
#include "imap/imap.h"
#include "imap/imap_private.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sasl.h"

void imap_capabilities(struct imap_session *s, struct buf *out)
{
	struct conn *c = s->conn;
	const struct settings *set = &c->cfg->s;
	int ret = 0;

	ret |= buf_append_str(out, "IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE IDLE");
	ret |= buf_append_str(out, set->imap_literal_plus ? " LITERAL+" : " LITERAL-");
	if (s->state == IMAP_STATE_NOT_AUTH) {
		char *mechs = sasl_mechanisms_offered(set, imap_secure(s));
		char *save = NULL;

		if (c->service == SERVICE_IMAP && !c->tls_active && c->tls != NULL)
			ret |= buf_append_str(out, " STARTTLS");
		for (char *m = strtok_r(mechs, " ", &save); m != NULL; m = strtok_r(NULL, " ", &save))
			ret |= buf_printf(out, " AUTH=%s", m);
		free(mechs);
		if (!sasl_mechanism_offered(set, imap_secure(s), SASL_MECH_PLAIN))
			ret |= buf_append_str(out, " LOGINDISABLED");
	} else {
		ret |= buf_append_str(out, " NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN LIST-EXTENDED"
				      " LIST-STATUS SPECIAL-USE CREATE-SPECIAL-USE ESEARCH SEARCHRES"
				      " SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES CONDSTORE QRESYNC"
				      " QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE STATUS=SIZE BINARY"
				      " UTF8=ACCEPT ACL RIGHTS=texk");
		ret |= buf_printf(out, " APPENDLIMIT=%llu", (unsigned long long)set->imap_append_limit);
		if (set->imap_compress && !s->compressed)
			ret |= buf_append_str(out, " COMPRESS=DEFLATE");
	}
	if (ret != 0)
		panic("imap_capabilities: buffer");
}

/* ---- names ---- */

int imap_name_in(struct imap_session *s, const char *name, size_t len, struct buf *out)
{
	size_t start = out->len;

	if (s->utf8) {
		if (!imap_utf8_valid(name, len) || buf_append(out, name, len) < 0)
			return -1;
	} else if (imap_utf7_to_utf8(name, len, out) < 0) {
		return -1;
	}
	/* RFC 3501 5.1: INBOX in any case is INBOX, also as a parent */
	if (out->len - start >= 5 && strncasecmp(out->data + start, "INBOX", 5) == 0 &&
	    (out->len - start == 5 || out->data[start + 5] == '/'))
		memcpy(out->data + start, "INBOX", 5);
	/* a trailing separator only says that children will follow */
	while (out->len - start > 1 && out->data[out->len - 1] == '/')
		buf_truncate(out, out->len - 1);
	return 0;
}

int imap_name_out(const struct imap_session *s, const char *name, struct buf *out)
{
	struct buf tmp;
	int ret;

	if (s->utf8)
		return imap_append_string(out, name, strlen(name), true);
	buf_init(&tmp, SIZE_MAX / 4);
	if (imap_utf8_to_utf7(name, strlen(name), &tmp) < 0) {
		buf_deinit(&tmp);
		return -1;
	}
	ret = imap_append_string(out, tmp.len > 0 ? tmp.data : "", tmp.len, false);
	buf_deinit(&tmp);
	return ret;
}

/* ---- flags ---- */

static const struct {
	const char *name;
	uint32_t flag;
} system_flags[] = {
	{ "\\Seen", STORE_F_SEEN }, { "\\Answered", STORE_F_ANSWERED },
	{ "\\Flagged", STORE_F_FLAGGED }, { "\\Deleted", STORE_F_DELETED },
	{ "\\Draft", STORE_F_DRAFT },
};

void imap_append_flags(struct buf *out, uint32_t flags, uint64_t keywords, char **names,
		       bool recent)
{
	bool first = true;
	int ret = buf_append_str(out, "FLAGS (");

	for (size_t i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]); i++) {
		if ((flags & system_flags[i].flag) != 0) {
			ret |= buf_printf(out, "%s%s", first ? "" : " ", system_flags[i].name);
			first = false;
		}
	}
	for (unsigned i = 0; i < STORE_MAX_KEYWORDS && names != NULL; i++) {
		if ((keywords & ((uint64_t)1 << i)) != 0 && names[i] != NULL) {
			ret |= buf_printf(out, "%s%s", first ? "" : " ", names[i]);
			first = false;
		}
	}
	if (recent)
		ret |= buf_printf(out, "%s\\Recent", first ? "" : " ");
	ret |= buf_append_char(out, ')');
	if (ret != 0)
		panic("imap_append_flags: buffer");
}

/* A keyword is an atom: no "\", no list wildcards, no "]". */
static bool valid_keyword(const char *k)
{
	if (*k == '\0' || strlen(k) > STORE_MAX_KEYWORD_LEN)
		return false;
	for (; *k != '\0'; k++) {
		unsigned char c = (unsigned char)*k;

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

static int one_flag(const char *t, uint32_t *flags, const char ***kw, size_t *nkw,
		    const char **error_r)
{
	if (t[0] == '\\') {
		for (size_t i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]); i++) {
			if (strcasecmp(t, system_flags[i].name) == 0) {
				*flags |= system_flags[i].flag;
				return 0;
			}
		}
		*error_r = strcasecmp(t, "\\Recent") == 0 ? "\\Recent cannot be set" :
			   "Unknown system flag";
		return -1;
	}
	if (!valid_keyword(t)) {
		*error_r = "Invalid keyword";
		return -1;
	}
	for (size_t i = 0; i < *nkw; i++) {
		if (strcasecmp((*kw)[i], t) == 0)
			return 0;
	}
	*kw = xreallocarray(*kw, *nkw + 2, sizeof(**kw));
	(*kw)[(*nkw)++] = t;
	(*kw)[*nkw] = NULL;
	return 0;
}

int imap_parse_flags(const struct imap_parser *p, const struct imap_arg *arg, uint32_t *flags_r,
		     const char ***keywords_r, size_t *nkeywords_r, const char **error_r)
{
	*flags_r = 0;
	*keywords_r = NULL;
	*nkeywords_r = 0;
	if (arg == NULL) {
		*error_r = "Missing flags";
		return -1;
	}
	if (arg->type == IMAP_ARG_ATOM) {
		if (one_flag(imap_arg_text(p, arg), flags_r, keywords_r, nkeywords_r, error_r) < 0)
			goto fail;
	} else if (arg->type == IMAP_ARG_LIST) {
		struct imap_args it;
		const struct imap_arg *a;

		imap_args_list(p, arg, &it);
		while ((a = imap_args_next(&it)) != NULL) {
			if (a->type != IMAP_ARG_ATOM) {
				*error_r = "Flags are atoms";
				goto fail;
			}
			if (one_flag(imap_arg_text(p, a), flags_r, keywords_r, nkeywords_r, error_r) < 0)
				goto fail;
		}
	} else {
		*error_r = "Invalid flags";
		goto fail;
	}
	return 0;
fail:
	free(*keywords_r);
	*keywords_r = NULL;
	*nkeywords_r = 0;
	return -1;
}

/* ---- sequence sets ---- */

static int copy_set(const struct imap_seqset *from, struct imap_seqset *to)
{
	memset(to, 0, sizeof(*to));
	to->ranges = xmallocarray(from->count + 1, sizeof(*to->ranges));
	if (from->count > 0)
		memcpy(to->ranges, from->ranges, from->count * sizeof(*to->ranges));
	to->count = from->count;
	return 0;
}

int imap_resolve_set(struct imap_session *s, const struct imap_arg *arg, bool uid,
		     struct imap_seqset *uids_r, const char **error_r)
{
	struct imap_selected *sel = s->sel;
	const struct imap_seqmap *m = sel->map;
	struct imap_seqset set;
	const char *text;

	memset(uids_r, 0, sizeof(*uids_r));
	if (arg == NULL || arg->type != IMAP_ARG_ATOM) {
		*error_r = "Invalid sequence set";
		return -1;
	}
	text = imap_arg_text(&s->parser, arg);
	if (imap_seqset_parse(text, arg->len, true, &set) < 0) {
		*error_r = "Invalid sequence set";
		return -1;
	}
	if (set.dollar) {
		/* RFC 5182: the saved result (UIDs); empty when none */
		if (sel->has_searchres)
			return copy_set(&sel->searchres, uids_r);
		uids_r->ranges = xmalloc(sizeof(*uids_r->ranges));
		return 0;
	}
	if (uid) {
		imap_seqset_normalize(&set, m->count > 0 ? m->uids[m->count - 1] : 0);
		*uids_r = set;
		return 0;
	}
	imap_seqset_normalize(&set, m->count);
	if (set.count > 0 && set.ranges[set.count - 1].hi > m->count) {
		imap_seqset_free(&set);
		*error_r = "Invalid message sequence number";
		return -1;
	}
	/* sequence numbers -> runs of consecutive UIDs */
	{
		size_t cap = 16, n = 0;
		struct imap_seq_range *r = xmallocarray(cap, sizeof(*r));

		for (size_t i = 0; i < set.count; i++) {
			for (uint32_t seq = set.ranges[i].lo; seq <= set.ranges[i].hi; seq++) {
				uint32_t u = m->uids[seq - 1];

				if (n > 0 && r[n - 1].hi + 1 == u) {
					r[n - 1].hi = u;
				} else {
					if (n == cap) {
						cap *= 2;
						r = xreallocarray(r, cap, sizeof(*r));
					}
					r[n].lo = r[n].hi = u;
					n++;
				}
				if (seq == UINT32_MAX)
					break;
			}
		}
		imap_seqset_free(&set);
		uids_r->ranges = r;
		uids_r->count = n;
	}
	return 0;
}

/* ---- per-user connection counts ---- */

static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static struct user_count {
	char *identity;
	unsigned n;
} *counts;
static size_t ncounts;

bool imap_user_count_acquire(const char *identity, unsigned max)
{
	bool ok = false;
	size_t i;

	pthread_mutex_lock(&count_lock);
	for (i = 0; i < ncounts; i++) {
		if (strcmp(counts[i].identity, identity) == 0)
			break;
	}
	if (i == ncounts) {
		counts = xreallocarray(counts, ncounts + 1, sizeof(*counts));
		counts[ncounts].identity = xstrdup(identity);
		counts[ncounts].n = 0;
		ncounts++;
	}
	if (counts[i].n < max) {
		counts[i].n++;
		ok = true;
	}
	if (counts[i].n == 0) {
		free(counts[i].identity);
		counts[i] = counts[--ncounts];
	}
	pthread_mutex_unlock(&count_lock);
	return ok;
}

void imap_user_count_release(const char *identity)
{
	pthread_mutex_lock(&count_lock);
	for (size_t i = 0; i < ncounts; i++) {
		if (strcmp(counts[i].identity, identity) == 0) {
			if (--counts[i].n == 0) {
				free(counts[i].identity);
				counts[i] = counts[--ncounts];
				if (ncounts == 0) {
					free(counts);
					counts = NULL;
				}
			}
			break;
		}
	}
	pthread_mutex_unlock(&count_lock);
}
