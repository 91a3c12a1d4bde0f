/*
 * users.cfg writing: a snapshot back into the file's text, in a stable,
 * diff-friendly order, and the atomic save that first checks the text
 * loads back to the same directory.
 */
#include "directory/directory_private.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/fileio.h"

#define FORMAT_MAX ((size_t)CFG_MAX_FILE_SIZE)

static int elem(struct buf *b, const char *indent, const char *name, const char *text)
{
	int ret = 0;

	ret |= buf_printf(b, "%s<%s>", indent, name);
	ret |= cfg_xml_escape_append(b, text);
	ret |= buf_printf(b, "</%s>\n", name);
	return ret;
}

static int elems(struct buf *b, const char *indent, const char *name, const struct dir_strings *s)
{
	int ret = 0;

	for (size_t i = 0; i < s->count && ret == 0; i++)
		ret |= elem(b, indent, name, s->items[i]);
	return ret;
}

static int format_user(struct buf *b, const struct dir_user *u)
{
	const struct dir_autoreply *a = &u->autoreply;
	int ret = 0;

	ret |= buf_append_str(b, "    <user name=\"");
	ret |= cfg_xml_escape_append(b, u->name);
	ret |= buf_append_str(b, "\">\n");
	if (u->full_name[0] != '\0')
		ret |= elem(b, "      ", "full-name", u->full_name);
	if (u->password_hash != NULL) {
		ret |= buf_append_str(b, "      <password scheme=\"");
		ret |= cfg_xml_escape_append(b, u->password_scheme);
		ret |= buf_append_str(b, "\">");
		ret |= cfg_xml_escape_append(b, u->password_hash);
		ret |= buf_append_str(b, "</password>\n");
	}
	for (size_t i = 0; i < u->secret_count; i++) {
		ret |= buf_append_str(b, "      <secret mechanism=\"");
		ret |= cfg_xml_escape_append(b, u->secrets[i].mechanism);
		ret |= buf_append_str(b, "\">");
		ret |= cfg_xml_escape_append(b, u->secrets[i].value);
		ret |= buf_append_str(b, "</secret>\n");
	}
	ret |= buf_printf(b, "      <admin>%s</admin>\n", u->admin ? "yes" : "no");
	ret |= buf_printf(b, "      <enabled>%s</enabled>\n", u->enabled ? "yes" : "no");
	ret |= buf_append_str(b, "      <quota storage=\"");
	ret |= cfg_format_scalar(SETTING_SIZE, (int64_t)u->quota_storage, b);
	ret |= buf_printf(b, "\" messages=\"%llu\"/>\n", (unsigned long long)u->quota_messages);
	ret |= elems(b, "      ", "alias", &u->aliases);
	if (u->forward.count > 0) {
		ret |= buf_printf(b, "      <forward keep-copy=\"%s\">\n",
				  u->forward_keep_copy ? "yes" : "no");
		ret |= elems(b, "        ", "to", &u->forward);
		ret |= buf_append_str(b, "      </forward>\n");
	}
	if (a->enabled || a->subject[0] != '\0' || a->text[0] != '\0' || a->start != NULL ||
	    a->end != NULL) {
		ret |= buf_printf(b, "      <auto-reply enabled=\"%s\"", a->enabled ? "yes" : "no");
		if (a->start != NULL) {
			ret |= buf_append_str(b, " start=\"");
			ret |= cfg_xml_escape_append(b, a->start);
			ret |= buf_append_str(b, "\"");
		}
		if (a->end != NULL) {
			ret |= buf_append_str(b, " end=\"");
			ret |= cfg_xml_escape_append(b, a->end);
			ret |= buf_append_str(b, "\"");
		}
		ret |= buf_append_str(b, ">\n");
		if (a->subject[0] != '\0')
			ret |= elem(b, "        ", "subject", a->subject);
		if (a->text[0] != '\0')
			ret |= elem(b, "        ", "text", a->text);
		ret |= buf_append_str(b, "      </auto-reply>\n");
	}
	ret |= buf_append_str(b, "    </user>\n");
	return ret;
}

static int open_named(struct buf *b, const char *element, const char *name)
{
	int ret = 0;

	ret |= buf_printf(b, "    <%s name=\"", element);
	ret |= cfg_xml_escape_append(b, name);
	ret |= buf_append_str(b, "\"");
	return ret;
}

static int format_domain(struct buf *b, const struct dir_domain *d)
{
	int ret = 0;

	ret |= buf_append_str(b, "  <domain name=\"");
	ret |= cfg_xml_escape_append(b, d->name);
	ret |= buf_printf(b, "\" primary=\"%s\"", d->primary ? "yes" : "no");
	if (d->realm != NULL) {
		ret |= buf_append_str(b, " realm=\"");
		ret |= cfg_xml_escape_append(b, d->realm);
		ret |= buf_append_str(b, "\"");
	}
	ret |= buf_append_str(b, ">\n");
	ret |= elems(b, "    ", "alias-domain", &d->alias_domains);
	if (d->catch_all != NULL)
		ret |= elem(b, "    ", "catch-all", d->catch_all);
	for (size_t j = 0; j < d->user_count && ret == 0; j++)
		ret |= format_user(b, d->users[j]);
	for (size_t j = 0; j < d->alias_count && ret == 0; j++) {
		const struct dir_alias *a = d->aliases[j];

		ret |= open_named(b, "alias", a->name);
		ret |= buf_append_str(b, ">\n");
		ret |= elems(b, "      ", "target", &a->targets);
		ret |= buf_append_str(b, "    </alias>\n");
	}
	for (size_t j = 0; j < d->group_count && ret == 0; j++) {
		const struct dir_group *g = d->groups[j];

		ret |= open_named(b, "group", g->name);
		if (g->members.count == 0) {
			ret |= buf_append_str(b, "/>\n");
			continue;
		}
		ret |= buf_append_str(b, ">\n");
		ret |= elems(b, "      ", "member", &g->members);
		ret |= buf_append_str(b, "    </group>\n");
	}
	for (size_t j = 0; j < d->list_count && ret == 0; j++) {
		const struct dir_list *l = d->lists[j];

		ret |= open_named(b, "list", l->name);
		ret |= buf_printf(b, " posting=\"%s\" reply-to=\"%s\" subscription=\"%s\"",
				  directory_list_posting_str(l->posting),
				  directory_list_reply_to_str(l->reply_to),
				  l->subscription_open ? "open" : "closed");
		if (l->description[0] == '\0' && l->moderators.count == 0 && l->members.count == 0) {
			ret |= buf_append_str(b, "/>\n");
			continue;
		}
		ret |= buf_append_str(b, ">\n");
		if (l->description[0] != '\0')
			ret |= elem(b, "      ", "description", l->description);
		ret |= elems(b, "      ", "moderator", &l->moderators);
		ret |= elems(b, "      ", "member", &l->members);
		ret |= buf_append_str(b, "    </list>\n");
	}
	ret |= buf_append_str(b, "  </domain>\n");
	return ret;
}

char *directory_format(const struct directory *dir)
{
	struct buf b;
	int ret = 0;

	buf_init(&b, FORMAT_MAX);
	ret |= buf_append_str(&b,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<!--\n"
		"  users.cfg: the domains, users, aliases, groups and mailing lists of the\n"
		"  Petrel mail server (see docs/configuration.md and docs/accounts.md).\n"
		"  Passwords are stored as hashes only: set them with \"petrelctl user\n"
		"  passwd\".  After a hand edit run \"petrelctl reload\"; an invalid file is\n"
		"  refused and the running directory stays.\n"
		"-->\n"
		"<users>\n");
	for (size_t i = 0; i < dir->domain_count && ret == 0; i++)
		ret |= format_domain(&b, dir->domains[i]);
	ret |= buf_append_str(&b, "</users>\n");
	if (ret != 0)
		panic("directory_format: larger than %zu bytes", FORMAT_MAX);
	return buf_steal(&b);
}

int directory_save(const struct directory *dir, const char *path, char **error_r)
{
	char *text = directory_format(dir), *again = NULL, *error = NULL;
	struct directory *check = NULL;
	const char *werr;
	int ret = -1;

	/* What we write must load, and load as the same directory. */
	if (directory_parse(path, text, strlen(text), NULL, NULL, &check, &error) < 0) {
		*error_r = xasprintf("refusing to write an invalid directory: %s", error);
		free(error);
		goto out;
	}
	again = directory_format(check);
	if (strcmp(text, again) != 0) {
		*error_r = xasprintf("%s: refusing to write: the file would not load back the same",
				     path);
		goto out;
	}
	if (fileio_write_atomic(path, text, strlen(text), DIRECTORY_FILE_MODE, &werr) < 0) {
		*error_r = xasprintf("%s: %s", path, werr);
		goto out;
	}
	ret = 0;
out:
	directory_unref(&check);
	if (again != NULL) {
		explicit_bzero(again, strlen(again));
		free(again);
	}
	explicit_bzero(text, strlen(text));
	free(text);
	return ret;
}

int directory_write_new(const char *path, const char *domain, const char *admin_name,
			const char *admin_password, char **error_r)
{
	struct directory *empty = directory_new_empty(), *with_domain = NULL, *full = NULL;
	struct dir_user_spec spec = {
		.domain = domain, .name = admin_name, .full_name = "Administrator",
		.password = admin_password, .admin = true,
	};
	int ret = -1;

	if (directory_add_domain(empty, domain, true, &with_domain, error_r) < 0)
		goto out;
	if (directory_add_user(with_domain, &spec, &full, error_r) < 0)
		goto out;
	ret = directory_save(full, path, error_r);
out:
	directory_unref(&empty);
	directory_unref(&with_domain);
	directory_unref(&full);
	return ret;
}
