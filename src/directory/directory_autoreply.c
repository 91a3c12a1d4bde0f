/*
 * The auto-reply (vacation) decision, and the dates of its range.
 *
 * Whether to answer a message is decided here from what delivery hands
 * over (envelope sender, a few headers, the time, when this user last
 * answered this sender); sending the answer and remembering when is
 * delivery's job.  The rules are RFC 3834 (automatic responses) and RFC
 * 5230 (Sieve vacation), plus what vacation(1) has always skipped: an
 * auto-reply must never answer a bounce, a list, bulk mail or another
 * robot, which is how mail loops and backscatter start.
 */
#include "directory/directory_private.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"

/* ---- dates -------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil: exact for every year, no tables, no time zone). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n, unsigned *val_r)
{
	unsigned v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*val_r = v;
	return true;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
	static const unsigned days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

int directory_parse_date(const char *text, int64_t *start_r, int64_t *end_r)
{
	unsigned y, mo, d, h = 0, mi = 0, s = 0, oh = 0, om = 0;
	size_t len = strlen(text);
	int64_t t, offset = 0;

	/* YYYY-MM-DD */
	if (len < 10 || !digits(text, 4, &y) || text[4] != '-' || !digits(text + 5, 2, &mo) ||
	    text[7] != '-' || !digits(text + 8, 2, &d))
		return -1;
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
		return -1;
	t = days_from_civil(y, mo, d) * 86400;
	if (len == 10) {
		*start_r = t;
		*end_r = t + 86400;
		return 0;
	}
	/* THH:MM:SS then Z or +HH:MM / -HH:MM */
	if (len < 20 || (text[10] != 'T' && text[10] != 't' && text[10] != ' ') ||
	    !digits(text + 11, 2, &h) || text[13] != ':' || !digits(text + 14, 2, &mi) ||
	    text[16] != ':' || !digits(text + 17, 2, &s) || h > 23 || mi > 59 || s > 60)
		return -1;
	if (len == 20 && (text[19] == 'Z' || text[19] == 'z')) {
		offset = 0;
	} else if (len == 25 && (text[19] == '+' || text[19] == '-') && digits(text + 20, 2, &oh) &&
		   text[22] == ':' && digits(text + 23, 2, &om) && oh <= 23 && om <= 59) {
		offset = ((int64_t)oh * 3600 + om * 60) * (text[19] == '-' ? -1 : 1);
	} else {
		return -1;
	}
	t += (int64_t)h * 3600 + mi * 60 + (s == 60 ? 59 : s) - offset;
	*start_r = t;
	*end_r = t + 1;
	return 0;
}

/* ---- the decision ------------------------------------------------------- */

static bool empty(const char *s)
{
	return s == NULL || s[0] == '\0';
}

/* The first word of a header value, without comments or parameters. */
static bool value_is(const char *value, const char *word)
{
	size_t n = strlen(word);

	while (*value == ' ' || *value == '\t')
		value++;
	return strncasecmp(value, word, n) == 0 &&
	       (value[n] == '\0' || value[n] == ';' || value[n] == ' ' || value[n] == '\t' ||
		value[n] == '(' || value[n] == '\r' || value[n] == '\n');
}

/* Whether a comma-separated header value lists one of the words. */
static bool list_has_word(const char *value, const char *const *words)
{
	const char *p = value;

	while (*p != '\0') {
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		n = strcspn(p, ", \t");
		for (size_t i = 0; words[i] != NULL; i++) {
			if (n == strlen(words[i]) && strncasecmp(p, words[i], n) == 0)
				return true;
		}
		p += n;
	}
	return false;
}

/* Senders that are robots (vacation(1), RFC 3834 5.1, common practice). */
static bool robot_sender(const char *sender)
{
	static const char *const exact[] = {
		"mailer-daemon", "mailer", "postmaster", "listserv", "majordomo", "mailman",
		"noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "do_not_reply",
		"bounce", "bounces", "uucp", NULL,
	};
	static const char *const prefixes[] = { "owner-", "bounce-", "bounces-", "noreply-",
						"no-reply-", NULL };
	static const char *const suffixes[] = { "-request", "-owner", "-bounces", "-bounce",
						"-relay", "-errors", NULL };
	const char *at = strrchr(sender, '@');
	size_t n = at != NULL ? (size_t)(at - sender) : strlen(sender);

	for (size_t i = 0; exact[i] != NULL; i++) {
		if (n == strlen(exact[i]) && strncasecmp(sender, exact[i], n) == 0)
			return true;
	}
	for (size_t i = 0; prefixes[i] != NULL; i++) {
		size_t k = strlen(prefixes[i]);

		if (n > k && strncasecmp(sender, prefixes[i], k) == 0)
			return true;
	}
	for (size_t i = 0; suffixes[i] != NULL; i++) {
		size_t k = strlen(suffixes[i]);

		if (n > k && strncasecmp(sender + n - k, suffixes[i], k) == 0)
			return true;
	}
	return false;
}

/* Whether address (one of the user's) appears in a To/Cc value as a whole
 * address: bounded by characters that cannot be part of one. */
static bool names_address(const char *value, const char *address)
{
	size_t n = strlen(address);

	for (const char *p = value; *p != '\0'; p++) {
		if (strncasecmp(p, address, n) != 0)
			continue;
		if ((p == value || strchr("<, \t\":;\r\n", p[-1]) != NULL) &&
		    (p[n] == '\0' || strchr(">, \t\";\r\n", p[n]) != NULL))
			return true;
	}
	return false;
}

/* The user's addresses in every domain name that reaches them. */
static bool user_named(const struct directory *dir, const struct dir_user *u, const char *value)
{
	bool found = false;

	if (value == NULL)
		return false;
	for (size_t k = 0; k <= u->aliases.count && !found; k++) {
		const char *addr = k == 0 ? u->address : u->aliases.items[k - 1];
		const char *at = strrchr(addr, '@');
		const struct dir_domain *d = directory_find_local_domain(dir, at + 1);

		found = names_address(value, addr);
		for (size_t i = 0; d != NULL && i < d->alias_domains.count && !found; i++) {
			char *other = xasprintf("%.*s@%s", (int)(at - addr), addr,
						d->alias_domains.items[i]);

			found = names_address(value, other);
			free(other);
		}
	}
	return found;
}

static bool is_own_address(const struct directory *dir, const struct dir_user *u,
			   const char *sender)
{
	const struct dir_domain *d;
	const struct dir_entry *e;
	const char *reason;
	char *key;
	bool own = false;

	if (dir_canonical(dir, sender, &key, &d, &reason) == 1) {
		e = dir_find_entry(dir, key);
		own = e != NULL && (e->kind == DIR_ENTRY_USER || e->kind == DIR_ENTRY_USER_ALIAS) &&
		      e->object == u;
	}
	free(key);
	return own;
}

bool directory_autoreply_should_send(const struct directory *dir, const struct dir_user *user,
				     const struct dir_autoreply_msg *msg, int64_t now,
				     int64_t last_sent, int64_t interval, const char **reason_r)
{
	static const char *const suppress[] = { "OOF", "All", "AutoReply", NULL };
	const struct dir_autoreply *a = &user->autoreply;
	const char *reason = NULL;

	if (interval <= 0)
		interval = DIRECTORY_AUTOREPLY_INTERVAL;
	if (!a->enabled)
		reason = "auto-reply is off";
	else if (now < a->start_time)
		reason = "before the auto-reply period";
	else if (now >= a->end_time)
		reason = "after the auto-reply period";
	else if (empty(msg->sender))
		reason = "null sender (a bounce or notification)";
	else if (!directory_valid_address(msg->sender, NULL))
		reason = "the sender is not a valid address";
	else if (msg->auto_submitted != NULL && !value_is(msg->auto_submitted, "no"))
		reason = "Auto-Submitted: the message is automatic";
	else if (msg->precedence != NULL &&
		 (value_is(msg->precedence, "bulk") || value_is(msg->precedence, "list") ||
		  value_is(msg->precedence, "junk")))
		reason = "Precedence: bulk, list or junk";
	else if (msg->list_id != NULL || msg->other_list_headers)
		reason = "mailing list mail";
	else if (msg->x_auto_response_suppress != NULL &&
		 list_has_word(msg->x_auto_response_suppress, suppress))
		reason = "X-Auto-Response-Suppress";
	else if (msg->spam)
		reason = "spam";
	else if (robot_sender(msg->sender))
		reason = "the sender is a robot or list address";
	else if (is_own_address(dir, user, msg->sender))
		reason = "the sender is the user";
	else if ((msg->to != NULL || msg->cc != NULL) && !user_named(dir, user, msg->to) &&
		 !user_named(dir, user, msg->cc))
		reason = "the user is not named in To or Cc";
	else if (last_sent > 0 && (now < last_sent || now - last_sent < interval))
		reason = "already answered this sender recently";
	if (reason_r != NULL)
		*reason_r = reason != NULL ? reason : "send";
	return reason == NULL;
}
