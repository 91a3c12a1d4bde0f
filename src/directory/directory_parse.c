/*
 * users.cfg parsing: XML (through cfg_xml_read, which refuses DTDs and
 * entities) into a snapshot, then the checks every snapshot passes
 * (dir_finish), then warnings about dangling references and loops.
 *
 * A pure function of the bytes: the unit tests and fuzz_users_cfg call it
 * directly.  Errors are "FILE:LINE: reason" and stop the load; unknown
 * elements and attributes are warnings, so that a file written by a newer
 * version still loads.
 */
#include "directory/directory_private.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/tree.h>

#include "core/fileio.h"
#include "core/str.h"

static char *get_attr(const xmlNode *node, const char *name)
{
	xmlChar *v = xmlGetNoNsProp(node, (const xmlChar *)name);
	char *copy;

	if (v == NULL)
		return NULL;
	copy = xstrdup(str_trim((char *)v));
	xmlFree(v);
	return copy;
}

static void warn_text(struct dir_check *p, const xmlNode *c)
{
	if (c->type != XML_TEXT_NODE || c->content == NULL)
		return;
	for (const xmlChar *s = c->content; *s != '\0'; s++) {
		if (!isspace(*s)) {
			char *esc = str_escape((const char *)c->parent->name, DIR_ESC_MAX);
			long line = cfg_xml_line(c);

			/* libxml2 numbers a text node by the line where it ends. */
			for (const xmlChar *q = s; *q != '\0'; q++) {
				if (*q == '\n' && line > 1)
					line--;
			}
			cfg_warnf(p->warn, p->warn_context, p->path, line,
				  "unexpected text inside <%s> (ignored)", esc);
			free(esc);
			return;
		}
	}
}

/* The element children of node, with stray text warned about. */
#define FOR_ELEMENTS(p, node, c) \
	for (const xmlNode *c = (node)->children; c != NULL; c = c->next) \
		if (warn_text((p), c), c->type == XML_ELEMENT_NODE)

static bool is(const xmlNode *c, const char *name)
{
	return strcmp((const char *)c->name, name) == 0;
}

/* An element that may appear once: records its line in *seen. */
static int once(struct dir_check *p, const char *what, const char *name, const xmlNode *c,
		long *seen)
{
	long line = cfg_xml_line(c);

	if (*seen != 0)
		return dir_fail(p, line, "%s %s: <%s> given twice (first at line %ld)", what, name,
				(const char *)c->name, *seen);
	*seen = line > 0 ? line : -1;
	return 0;
}

static int parse_yes_no(struct dir_check *p, const char *what, const char *name, long line,
			const char *label, const char *text, bool *val)
{
	if (str_to_bool(text, val) < 0) {
		char *esc = str_escape(text, DIR_ESC_MAX);

		dir_fail(p, line, "%s %s: %s '%s' is not yes or no", what, name, label, esc);
		free(esc);
		return -1;
	}
	return 0;
}

/* Text of an element holding an address (bare names mean domain), added
 * to s; duplicates are found afterwards by check_dups. */
static int parse_address(struct dir_check *p, const xmlNode *c, const char *domain,
			 const char *what, const char *name, const char *role,
			 struct dir_strings *s, long **lines)
{
	long line = cfg_xml_line(c);
	char *text, *full;
	const char *reason;

	cfg_xml_check_attrs(p->path, c, NULL, p->warn, p->warn_context);
	text = cfg_xml_text(p->path, c, p->warn, p->warn_context);
	if (text[0] == '\0') {
		free(text);
		return dir_fail(p, line, "%s %s: empty <%s>", what, name, (const char *)c->name);
	}
	full = dir_qualify(text, domain);
	if (!directory_valid_address(full, &reason)) {
		char *esc = str_escape(text, DIR_ESC_MAX);

		dir_fail(p, line, "%s %s: %s '%s' is not a valid address: %s", what, name, role, esc,
			 reason);
		free(esc);
		free(text);
		free(full);
		return -1;
	}
	free(text);
	dir_strings_add_owned(s, full);
	*lines = dir_grow(*lines, s->count - 1, sizeof(**lines));
	(*lines)[s->count - 1] = line;
	return 0;
}

static int check_dups(struct dir_check *p, const char *what, const char *name, const char *role,
		      const struct dir_strings *s, const long *lines)
{
	long dup = dir_strings_first_dup(s);

	if (dup < 0)
		return 0;
	return dir_fail(p, lines[dup], "%s %s: %s %s given twice", what, name, role,
			s->items[dup]);
}

static int parse_bool_elem(struct dir_check *p, struct dir_user *u, const xmlNode *c, bool *val,
			   long *seen)
{
	char *text;
	int ret;

	if (once(p, "user", u->name, c, seen) < 0)
		return -1;
	cfg_xml_check_attrs(p->path, c, NULL, p->warn, p->warn_context);
	text = cfg_xml_text(p->path, c, p->warn, p->warn_context);
	ret = 0;
	if (str_to_bool(text, val) < 0) {
		char *esc = str_escape(text, DIR_ESC_MAX);

		ret = dir_fail(p, cfg_xml_line(c), "user %s: <%s> '%s' is not yes or no", u->name,
			       (const char *)c->name, esc);
		free(esc);
	}
	free(text);
	return ret;
}

static int parse_quota(struct dir_check *p, struct dir_user *u, const xmlNode *c)
{
	static const char *const attrs[] = { "storage", "messages", NULL };
	long line = cfg_xml_line(c);
	char *storage = get_attr(c, "storage"), *messages = get_attr(c, "messages"), *reason;
	int64_t v;
	int ret = 0;

	cfg_xml_check_attrs(p->path, c, attrs, p->warn, p->warn_context);
	if (storage != NULL) {
		if (cfg_parse_scalar(SETTING_SIZE, storage, 0, INT64_MAX, &v, &reason) < 0) {
			ret = dir_fail(p, line, "user %s: quota storage: %s", u->name, reason);
			free(reason);
			goto out;
		}
		u->quota_storage = (uint64_t)v;
	}
	if (messages != NULL) {
		if (cfg_parse_scalar(SETTING_INT, messages, 0, INT64_MAX, &v, &reason) < 0) {
			ret = dir_fail(p, line, "user %s: quota messages: %s", u->name, reason);
			free(reason);
			goto out;
		}
		u->quota_messages = (uint64_t)v;
	}
out:
	free(storage);
	free(messages);
	return ret;
}

static int parse_password(struct dir_check *p, struct dir_user *u, const xmlNode *c)
{
	static const char *const attrs[] = { "scheme", NULL };
	long line = cfg_xml_line(c);
	char *scheme = get_attr(c, "scheme");
	char *hash;
	const char *reason;
	bool legacy;

	cfg_xml_check_attrs(p->path, c, attrs, p->warn, p->warn_context);
	hash = cfg_xml_text(p->path, c, p->warn, p->warn_context);
	if (scheme == NULL)
		scheme = xstrdup("crypt");
	if (!dir_check_scheme(scheme, hash, &legacy, &reason)) {
		free(scheme);
		explicit_bzero(hash, strlen(hash));
		free(hash);
		return dir_fail(p, line, "user %s: %s", u->name, reason);
	}
	if (legacy)
		cfg_warnf(p->warn, p->warn_context, p->path, line,
			  "user %s: password hash uses a weak, legacy method; set a new password",
			  u->name);
	u->password_scheme = scheme;
	u->password_hash = hash;
	return 0;
}

static int parse_secret(struct dir_check *p, struct dir_user *u, const xmlNode *c)
{
	static const char *const attrs[] = { "mechanism", NULL };
	long line = cfg_xml_line(c);
	char *mech = get_attr(c, "mechanism"), *value;

	cfg_xml_check_attrs(p->path, c, attrs, p->warn, p->warn_context);
	if (mech == NULL)
		return dir_fail(p, line, "user %s: <secret> without a mechanism attribute", u->name);
	if (!dir_valid_mechanism(mech)) {
		char *esc = str_escape(mech, DIR_ESC_MAX);

		dir_fail(p, line, "user %s: secret mechanism '%s' is not a SASL mechanism name "
			 "(A-Z, 0-9, '-', '_')", u->name, esc);
		free(esc);
		free(mech);
		return -1;
	}
	if (u->secret_count == DIRECTORY_MAX_SECRETS) {
		free(mech);
		return dir_fail(p, line, "user %s: more than %d secrets", u->name,
				DIRECTORY_MAX_SECRETS);
	}
	if (directory_user_secret(u, mech) != NULL) {
		dir_fail(p, line, "user %s: secret for %s given twice", u->name, mech);
		free(mech);
		return -1;
	}
	value = cfg_xml_text(p->path, c, p->warn, p->warn_context);
	if (!dir_valid_secret_value(value)) {
		/* never echoed: it is a secret */
		dir_fail(p, line, "user %s: secret for %s is empty, too long or not printable ASCII",
			 u->name, mech);
		explicit_bzero(value, strlen(value));
		free(value);
		free(mech);
		return -1;
	}
	u->secrets = xreallocarray(u->secrets, u->secret_count + 1, sizeof(*u->secrets));
	u->secrets[u->secret_count++] = (struct dir_secret){ .mechanism = mech, .value = value };
	return 0;
}

static int parse_forward(struct dir_check *p, struct dir_user *u, const struct dir_domain *d,
			 const xmlNode *node)
{
	static const char *const attrs[] = { "keep-copy", NULL };
	char *keep = get_attr(node, "keep-copy");
	long *lines = NULL;
	int ret = -1;

	cfg_xml_check_attrs(p->path, node, attrs, p->warn, p->warn_context);
	if (keep != NULL && parse_yes_no(p, "user", u->name, cfg_xml_line(node), "forward keep-copy",
					 keep, &u->forward_keep_copy) < 0)
		goto out;
	FOR_ELEMENTS(p, node, c) {
		if (!is(c, "to")) {
			cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
			continue;
		}
		if (parse_address(p, c, d->name, "user", u->name, "forwarding target", &u->forward,
				  &lines) < 0)
			goto out;
	}
	ret = check_dups(p, "user", u->name, "forwarding target", &u->forward, lines);
out:
	free(lines);
	free(keep);
	return ret;
}

static int parse_date_attr(struct dir_check *p, struct dir_user *u, long line, const char *label,
			   char *text, char **field, int64_t *time_r, bool is_end)
{
	int64_t start, end;

	if (directory_parse_date(text, &start, &end) < 0) {
		char *esc = str_escape(text, DIR_ESC_MAX);

		dir_fail(p, line, "user %s: auto-reply %s '%s' is not a date (YYYY-MM-DD or "
			 "YYYY-MM-DDTHH:MM:SSZ)", u->name, label, esc);
		free(esc);
		free(text);
		return -1;
	}
	*field = text;
	*time_r = is_end ? end : start;
	return 0;
}

static int parse_text_elem(struct dir_check *p, struct dir_user *u, const xmlNode *c,
			   size_t max, bool multiline, char **field, long *seen)
{
	const char *reason;
	char *text;

	if (once(p, "user", u->name, c, seen) < 0)
		return -1;
	cfg_xml_check_attrs(p->path, c, NULL, p->warn, p->warn_context);
	text = cfg_xml_text(p->path, c, p->warn, p->warn_context);
	if (!dir_valid_text(text, max, multiline, &reason)) {
		free(text);
		return dir_fail(p, cfg_xml_line(c), "user %s: auto-reply <%s> %s", u->name,
				(const char *)c->name, reason);
	}
	free(*field);
	*field = text;
	return 0;
}

static int parse_autoreply(struct dir_check *p, struct dir_user *u, const xmlNode *node)
{
	static const char *const attrs[] = { "enabled", "start", "end", NULL };
	struct dir_autoreply *a = &u->autoreply;
	long line = cfg_xml_line(node), seen_subject = 0, seen_text = 0;
	char *enabled = get_attr(node, "enabled"), *start = get_attr(node, "start");
	char *end = get_attr(node, "end");
	int ret = -1;

	cfg_xml_check_attrs(p->path, node, attrs, p->warn, p->warn_context);
	a->enabled = true;
	if (enabled != NULL &&
	    parse_yes_no(p, "user", u->name, line, "auto-reply enabled", enabled, &a->enabled) < 0)
		goto out;
	if (start != NULL) {
		ret = parse_date_attr(p, u, line, "start", start, &a->start, &a->start_time, false);
		start = NULL;
		if (ret < 0)
			goto out;
		ret = -1;
	}
	if (end != NULL) {
		ret = parse_date_attr(p, u, line, "end", end, &a->end, &a->end_time, true);
		end = NULL;
		if (ret < 0)
			goto out;
		ret = -1;
	}
	if (a->start != NULL && a->end != NULL && a->end_time <= a->start_time) {
		dir_fail(p, line, "user %s: auto-reply ends before it starts", u->name);
		goto out;
	}
	FOR_ELEMENTS(p, node, c) {
		if (is(c, "subject")) {
			if (parse_text_elem(p, u, c, DIRECTORY_MAX_SUBJECT, false, &a->subject,
					    &seen_subject) < 0)
				goto out;
		} else if (is(c, "text")) {
			if (parse_text_elem(p, u, c, DIRECTORY_MAX_TEXT, true, &a->text, &seen_text) < 0)
				goto out;
		} else {
			cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
		}
	}
	ret = 0;
out:
	free(enabled);
	free(start);
	free(end);
	return ret;
}

static int parse_user(struct dir_check *p, struct dir_domain *d, const xmlNode *node)
{
	static const char *const attrs[] = { "name", NULL };
	long line = cfg_xml_line(node);
	long seen_full = 0, seen_pw = 0, seen_admin = 0, seen_enabled = 0, seen_quota = 0;
	long seen_forward = 0, seen_auto = 0, *alias_lines = NULL;
	struct dir_user *u;
	const char *reason;
	char *name = get_attr(node, "name");
	int ret = -1;

	cfg_xml_check_attrs(p->path, node, attrs, p->warn, p->warn_context);
	if (name == NULL)
		return dir_fail(p, line, "<user> without a name attribute");
	if (!directory_valid_user_name(name, &reason)) {
		char *esc = str_escape(name, DIR_ESC_MAX);

		dir_fail(p, line, "invalid user name '%s': %s", esc, reason);
		free(esc);
		free(name);
		return -1;
	}
	u = xcalloc(1, sizeof(*u));
	u->name = name;
	u->address = dir_make_address(name, d->name);
	u->full_name = xstrdup("");
	u->enabled = true;
	u->autoreply.end_time = INT64_MAX;
	u->autoreply.subject = xstrdup("");
	u->autoreply.text = xstrdup("");
	u->line = line;
	dir_domain_add_user(d, u);
	FOR_ELEMENTS(p, node, c) {
		long cline = cfg_xml_line(c);

		if (is(c, "full-name")) {
			if (once(p, "user", u->name, c, &seen_full) < 0)
				goto out;
			cfg_xml_check_attrs(p->path, c, NULL, p->warn, p->warn_context);
			free(u->full_name);
			u->full_name = cfg_xml_text(p->path, c, p->warn, p->warn_context);
			if (strlen(u->full_name) > DIRECTORY_MAX_FULL_NAME) {
				dir_fail(p, cline, "user %s: full name longer than %d bytes", u->name,
					 DIRECTORY_MAX_FULL_NAME);
				goto out;
			}
			if (dir_has_control_chars(u->full_name)) {
				dir_fail(p, cline, "user %s: full name contains control characters",
					 u->name);
				goto out;
			}
		} else if (is(c, "password")) {
			if (once(p, "user", u->name, c, &seen_pw) < 0 || parse_password(p, u, c) < 0)
				goto out;
		} else if (is(c, "secret")) {
			if (parse_secret(p, u, c) < 0)
				goto out;
		} else if (is(c, "admin")) {
			if (parse_bool_elem(p, u, c, &u->admin, &seen_admin) < 0)
				goto out;
		} else if (is(c, "enabled")) {
			if (parse_bool_elem(p, u, c, &u->enabled, &seen_enabled) < 0)
				goto out;
		} else if (is(c, "quota")) {
			if (once(p, "user", u->name, c, &seen_quota) < 0 || parse_quota(p, u, c) < 0)
				goto out;
		} else if (is(c, "alias")) {
			if (parse_address(p, c, d->name, "user", u->name, "extra address", &u->aliases,
					  &alias_lines) < 0)
				goto out;
		} else if (is(c, "forward")) {
			if (once(p, "user", u->name, c, &seen_forward) < 0 ||
			    parse_forward(p, u, d, c) < 0)
				goto out;
		} else if (is(c, "auto-reply")) {
			if (once(p, "user", u->name, c, &seen_auto) < 0 || parse_autoreply(p, u, c) < 0)
				goto out;
		} else {
			cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
		}
	}
	if (check_dups(p, "user", u->name, "extra address", &u->aliases, alias_lines) < 0)
		goto out;
	ret = 0;
out:
	free(alias_lines);
	return ret;
}

/* name="..." of an alias, group or list: checked like a user name. */
static char *parse_entry_name(struct dir_check *p, const char *what, const xmlNode *node)
{
	long line = cfg_xml_line(node);
	char *name = get_attr(node, "name");
	const char *reason;

	if (name == NULL) {
		dir_fail(p, line, "<%s> without a name attribute", what);
		return NULL;
	}
	if (!directory_valid_user_name(name, &reason)) {
		char *esc = str_escape(name, DIR_ESC_MAX);

		dir_fail(p, line, "invalid %s name '%s': %s", what, esc, reason);
		free(esc);
		free(name);
		return NULL;
	}
	return name;
}

static int parse_alias(struct dir_check *p, struct dir_domain *d, const xmlNode *node)
{
	static const char *const attrs[] = { "name", NULL };
	struct dir_alias *a;
	long *lines = NULL;
	char *name;
	int ret = -1;

	cfg_xml_check_attrs(p->path, node, attrs, p->warn, p->warn_context);
	name = parse_entry_name(p, "alias", node);
	if (name == NULL)
		return -1;
	a = xcalloc(1, sizeof(*a));
	a->name = name;
	a->address = dir_make_address(name, d->name);
	a->line = cfg_xml_line(node);
	dir_domain_add_alias(d, a);
	FOR_ELEMENTS(p, node, c) {
		if (!is(c, "target")) {
			cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
			continue;
		}
		if (parse_address(p, c, d->name, "alias", name, "target", &a->targets, &lines) < 0)
			goto out;
	}
	ret = check_dups(p, "alias", name, "target", &a->targets, lines);
out:
	free(lines);
	return ret;
}

static int parse_group(struct dir_check *p, struct dir_domain *d, const xmlNode *node)
{
	static const char *const attrs[] = { "name", NULL };
	struct dir_group *g;
	long *lines = NULL;
	char *name;
	int ret = -1;

	cfg_xml_check_attrs(p->path, node, attrs, p->warn, p->warn_context);
	name = parse_entry_name(p, "group", node);
	if (name == NULL)
		return -1;
	g = xcalloc(1, sizeof(*g));
	g->name = name;
	g->address = dir_make_address(name, d->name);
	g->line = cfg_xml_line(node);
	dir_domain_add_group(d, g);
	FOR_ELEMENTS(p, node, c) {
		if (!is(c, "member")) {
			cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
			continue;
		}
		if (parse_address(p, c, d->name, "group", name, "member", &g->members, &lines) < 0)
			goto out;
	}
	ret = check_dups(p, "group", name, "member", &g->members, lines);
out:
	free(lines);
	return ret;
}

static int parse_list(struct dir_check *p, struct dir_domain *d, const xmlNode *node)
{
	static const char *const attrs[] = { "name", "posting", "reply-to", "subscription", NULL };
	long line = cfg_xml_line(node), seen_desc = 0, *mlines = NULL, *modlines = NULL;
	char *posting = get_attr(node, "posting"), *reply_to = get_attr(node, "reply-to");
	char *subscription = get_attr(node, "subscription");
	enum dir_list_posting pv;
	enum dir_list_reply_to rv;
	struct dir_list *l;
	char *name;
	int ret = -1;

	cfg_xml_check_attrs(p->path, node, attrs, p->warn, p->warn_context);
	name = parse_entry_name(p, "list", node);
	if (name == NULL)
		goto out;
	l = xcalloc(1, sizeof(*l));
	l->name = name;
	l->address = dir_make_address(name, d->name);
	l->description = xstrdup("");
	l->subscription_open = true;
	l->line = line;
	dir_domain_add_list(d, l);
	if (posting != NULL) {
		if (directory_list_posting_parse(posting, &pv) < 0) {
			char *esc = str_escape(posting, DIR_ESC_MAX);

			dir_fail(p, line, "list %s: posting '%s' is not members, anyone or moderated",
				 name, esc);
			free(esc);
			goto out;
		}
		l->posting = pv;
	}
	if (reply_to != NULL) {
		if (directory_list_reply_to_parse(reply_to, &rv) < 0) {
			char *esc = str_escape(reply_to, DIR_ESC_MAX);

			dir_fail(p, line, "list %s: reply-to '%s' is not list, sender or none", name,
				 esc);
			free(esc);
			goto out;
		}
		l->reply_to = rv;
	}
	if (subscription != NULL) {
		if (strcasecmp(subscription, "open") == 0) {
			l->subscription_open = true;
		} else if (strcasecmp(subscription, "closed") == 0) {
			l->subscription_open = false;
		} else {
			char *esc = str_escape(subscription, DIR_ESC_MAX);

			dir_fail(p, line, "list %s: subscription '%s' is not open or closed", name, esc);
			free(esc);
			goto out;
		}
	}
	FOR_ELEMENTS(p, node, c) {
		if (is(c, "description")) {
			const char *reason;

			if (once(p, "list", name, c, &seen_desc) < 0)
				goto out;
			cfg_xml_check_attrs(p->path, c, NULL, p->warn, p->warn_context);
			free(l->description);
			l->description = cfg_xml_text(p->path, c, p->warn, p->warn_context);
			if (!dir_valid_text(l->description, DIRECTORY_MAX_DESCRIPTION, false, &reason)) {
				dir_fail(p, cfg_xml_line(c), "list %s: description %s", name, reason);
				goto out;
			}
		} else if (is(c, "member")) {
			if (parse_address(p, c, d->name, "list", name, "member", &l->members,
					  &mlines) < 0)
				goto out;
		} else if (is(c, "moderator")) {
			if (parse_address(p, c, d->name, "list", name, "moderator", &l->moderators,
					  &modlines) < 0)
				goto out;
		} else {
			cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
		}
	}
	if (check_dups(p, "list", name, "member", &l->members, mlines) < 0 ||
	    check_dups(p, "list", name, "moderator", &l->moderators, modlines) < 0)
		goto out;
	ret = 0;
out:
	free(mlines);
	free(modlines);
	free(posting);
	free(reply_to);
	free(subscription);
	return ret;
}

static int parse_domain_extras(struct dir_check *p, struct dir_domain *d, const xmlNode *c,
			       long *seen_catch_all)
{
	long line = cfg_xml_line(c);
	char *text;

	cfg_xml_check_attrs(p->path, c, NULL, p->warn, p->warn_context);
	if (is(c, "alias-domain")) {
		text = cfg_xml_text(p->path, c, p->warn, p->warn_context);
		if (!directory_valid_domain_name(text)) {
			char *esc = str_escape(text, DIR_ESC_MAX);

			dir_fail(p, line, "domain %s: invalid alias domain name '%s'", d->name, esc);
			free(esc);
			free(text);
			return -1;
		}
		dir_strings_add_owned(&d->alias_domains, dir_lower_dup(text));
		free(text);
		return 0;
	}
	/* <catch-all> */
	if (once(p, "domain", d->name, c, seen_catch_all) < 0)
		return -1;
	text = cfg_xml_text(p->path, c, p->warn, p->warn_context);
	if (text[0] != '\0') {
		const char *reason;
		char *full = dir_qualify(text, d->name);

		if (!directory_valid_address(full, &reason)) {
			char *esc = str_escape(text, DIR_ESC_MAX);

			dir_fail(p, line, "domain %s: catch-all '%s' is not a valid address: %s",
				 d->name, esc, reason);
			free(esc);
			free(full);
			free(text);
			return -1;
		}
		d->catch_all = full;
	}
	free(text);
	return 0;
}

static int parse_domain(struct dir_check *p, struct directory *dir, const xmlNode *node)
{
	static const char *const attrs[] = { "name", "primary", "realm", NULL };
	long line = cfg_xml_line(node), seen_catch_all = 0;
	char *name = get_attr(node, "name"), *primary = get_attr(node, "primary");
	char *realm = get_attr(node, "realm");
	const struct dir_domain *other;
	struct dir_domain *d;
	bool is_primary = false;
	int ret = -1;

	cfg_xml_check_attrs(p->path, node, attrs, p->warn, p->warn_context);
	if (name == NULL) {
		dir_fail(p, line, "<domain> without a name attribute");
		goto out;
	}
	if (!directory_valid_domain_name(name)) {
		char *esc = str_escape(name, DIR_ESC_MAX);

		dir_fail(p, line, "invalid domain name '%s'", esc);
		free(esc);
		goto out;
	}
	other = directory_find_domain(dir, name);
	if (other != NULL) {
		dir_fail(p, line, "domain %s given twice (first at line %ld)", name, other->line);
		goto out;
	}
	if (primary != NULL && str_to_bool(primary, &is_primary) < 0) {
		char *esc = str_escape(primary, DIR_ESC_MAX);

		dir_fail(p, line, "domain %s: primary '%s' is not yes or no", name, esc);
		free(esc);
		goto out;
	}
	if (realm != NULL && !directory_valid_realm(realm)) {
		char *esc = str_escape(realm, DIR_ESC_MAX);

		dir_fail(p, line, "domain %s: realm '%s' is not a Kerberos realm (letters, digits, "
			 "'.', '-', '_')", name, esc);
		free(esc);
		goto out;
	}
	if (is_primary) {
		for (size_t i = 0; i < dir->domain_count; i++) {
			if (dir->domains[i]->primary) {
				dir_fail(p, line, "domain %s is primary, but so is %s (line %ld): exactly "
					 "one domain is primary", name, dir->domains[i]->name,
					 dir->domains[i]->line);
				goto out;
			}
		}
	}
	d = xcalloc(1, sizeof(*d));
	d->name = name;
	d->primary = is_primary;
	d->realm = realm;
	d->line = line;
	name = NULL;
	realm = NULL;
	dir_add_domain_ptr(dir, d);
	FOR_ELEMENTS(p, node, c) {
		int r;

		if (is(c, "user"))
			r = parse_user(p, d, c);
		else if (is(c, "alias"))
			r = parse_alias(p, d, c);
		else if (is(c, "group"))
			r = parse_group(p, d, c);
		else if (is(c, "list"))
			r = parse_list(p, d, c);
		else if (is(c, "alias-domain") || is(c, "catch-all"))
			r = parse_domain_extras(p, d, c, &seen_catch_all);
		else {
			cfg_xml_warn_unknown(p->path, c, p->warn, p->warn_context);
			r = 0;
		}
		if (r < 0)
			goto out;
	}
	ret = 0;
out:
	free(name);
	free(realm);
	free(primary);
	return ret;
}

int directory_parse(const char *path, const char *data, size_t len, cfg_warning_fn *warn,
		    void *warn_context, struct directory **dir_r, char **error_r)
{
	struct dir_check p = { .path = path, .warn = warn, .warn_context = warn_context };
	struct directory *dir;
	xmlDocPtr doc;
	const xmlNode *root;

	*dir_r = NULL;
	if (cfg_xml_read(path, data, len, "users", warn, warn_context, &doc, error_r) < 0)
		return -1;
	dir = directory_new_empty();
	dir->path = xstrdup(path);
	root = xmlDocGetRootElement(doc);
	cfg_xml_check_attrs(path, root, NULL, warn, warn_context);
	FOR_ELEMENTS(&p, root, c) {
		if (!is(c, "domain")) {
			cfg_xml_warn_unknown(path, c, warn, warn_context);
			continue;
		}
		if (parse_domain(&p, dir, c) < 0)
			goto fail;
	}
	if (dir_finish(dir, &p) < 0)
		goto fail;
	dir_warn_references(dir, &p);
	xmlFreeDoc(doc);
	*dir_r = dir;
	return 0;
fail:
	xmlFreeDoc(doc);
	directory_unref(&dir);
	*error_r = p.error;
	return -1;
}

int directory_load(const char *config_dir, cfg_warning_fn *warn, void *warn_context,
		   struct directory **dir_r, char **error_r)
{
	char *dir, *path, *data;
	size_t len;
	int ret;

	*dir_r = NULL;
	/* Absolute, as cfg_load does, so that messages name the real file. */
	dir = realpath(config_dir, NULL);
	if (dir == NULL) {
		*error_r = xasprintf("%s: cannot open config directory: %s", config_dir, strerror(errno));
		return -1;
	}
	path = strcmp(dir, "/") == 0 ? xasprintf("/%s", CFG_USERS) : xasprintf("%s/%s", dir, CFG_USERS);
	free(dir);
	if (fileio_read_all(path, CFG_MAX_FILE_SIZE, &data, &len) < 0) {
		*error_r = errno == EFBIG
			? xasprintf("%s: file larger than %u bytes", path, CFG_MAX_FILE_SIZE)
			: xasprintf("%s: cannot read: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	ret = directory_parse(path, data, len, warn, warn_context, dir_r, error_r);
	explicit_bzero(data, len);  /* hashes: no copies left lying around */
	free(data);
	free(path);
	return ret;
}
