/*
 * Unit tests for the auto-reply decision (src/directory/
 * directory_autoreply.c): a decision table over the envelope sender, the
 * headers that mark automatic, list and bulk mail, the user's own
 * addresses, To/Cc, the date range and the once-per-interval rule.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dir_test.h"

#define T0 1751328000   /* 2025-07-01T00:00:00Z */
#define DAY 86400

static const char users[] =
	"<users>\n"
	"  <domain name=\"example.com\" primary=\"yes\">\n"
	"    <alias-domain>example.net</alias-domain>\n"
	"    <user name=\"john\">\n"
	"      <alias>j.smith</alias>\n"
	"      <auto-reply start=\"2025-07-01\" end=\"2025-07-14\"><subject>Away</subject></auto-reply>\n"
	"    </user>\n"
	"    <user name=\"open\"><auto-reply/></user>\n"
	"    <user name=\"off\"><auto-reply enabled=\"no\"><text>x</text></auto-reply></user>\n"
	"    <user name=\"none\"/>\n"
	"  </domain>\n"
	"</users>\n";

struct row {
	const char *name;
	const char *user;
	struct dir_autoreply_msg msg;
	int64_t now;
	int64_t last_sent;
	bool send;
	const char *reason;
};

#define OK_MSG .sender = "alice@remote.example", .to = "John <john@example.com>"

static const struct row rows[] = {
	{ "plain mail in the period", "john", { OK_MSG }, T0 + DAY, 0, true, "send" },
	{ "first second of the period", "john", { OK_MSG }, T0, 0, true, "send" },
	{ "last second of the period", "john", { OK_MSG }, T0 + 14 * DAY - 1, 0, true, "send" },
	{ "before", "john", { OK_MSG }, T0 - 1, 0, false, "before the auto-reply period" },
	{ "after (end day included)", "john", { OK_MSG }, T0 + 14 * DAY, 0, false,
	  "after the auto-reply period" },
	{ "no period: always", "open", { .sender = "alice@remote.example" }, 5, 0, true, "send" },
	{ "off", "off", { OK_MSG }, T0 + DAY, 0, false, "auto-reply is off" },
	{ "never set", "none", { OK_MSG }, T0 + DAY, 0, false, "auto-reply is off" },
	{ "null sender", "john", { .sender = "", .to = "john@example.com" }, T0 + DAY, 0, false,
	  "null sender (a bounce or notification)" },
	{ "NULL sender", "john", { .sender = NULL }, T0 + DAY, 0, false,
	  "null sender (a bounce or notification)" },
	{ "junk sender", "john", { .sender = "not an address" }, T0 + DAY, 0, false,
	  "the sender is not a valid address" },
	{ "auto-submitted auto-replied", "john", { OK_MSG, .auto_submitted = "auto-replied" },
	  T0 + DAY, 0, false, "Auto-Submitted: the message is automatic" },
	{ "auto-submitted auto-generated with comment", "john",
	  { OK_MSG, .auto_submitted = " Auto-Generated (vacation)" }, T0 + DAY, 0, false,
	  "Auto-Submitted: the message is automatic" },
	{ "auto-submitted no", "john", { OK_MSG, .auto_submitted = "no" }, T0 + DAY, 0, true, "send" },
	{ "auto-submitted No (comment)", "john", { OK_MSG, .auto_submitted = "No (human)" },
	  T0 + DAY, 0, true, "send" },
	{ "precedence bulk", "john", { OK_MSG, .precedence = "bulk" }, T0 + DAY, 0, false,
	  "Precedence: bulk, list or junk" },
	{ "precedence list", "john", { OK_MSG, .precedence = "LIST" }, T0 + DAY, 0, false,
	  "Precedence: bulk, list or junk" },
	{ "precedence junk", "john", { OK_MSG, .precedence = " junk" }, T0 + DAY, 0, false,
	  "Precedence: bulk, list or junk" },
	{ "precedence first-class", "john", { OK_MSG, .precedence = "first-class" }, T0 + DAY, 0,
	  true, "send" },
	{ "precedence bulky is not bulk", "john", { OK_MSG, .precedence = "bulky" }, T0 + DAY, 0,
	  true, "send" },
	{ "list-id", "john", { OK_MSG, .list_id = "<news.remote.example>" }, T0 + DAY, 0, false,
	  "mailing list mail" },
	{ "other list headers", "john", { OK_MSG, .other_list_headers = true }, T0 + DAY, 0, false,
	  "mailing list mail" },
	{ "x-auto-response-suppress OOF", "john",
	  { OK_MSG, .x_auto_response_suppress = "DR, OOF" }, T0 + DAY, 0, false,
	  "X-Auto-Response-Suppress" },
	{ "x-auto-response-suppress All", "john", { OK_MSG, .x_auto_response_suppress = "All" },
	  T0 + DAY, 0, false, "X-Auto-Response-Suppress" },
	{ "x-auto-response-suppress RN only", "john", { OK_MSG, .x_auto_response_suppress = "RN, NRN" },
	  T0 + DAY, 0, true, "send" },
	{ "spam", "john", { OK_MSG, .spam = true }, T0 + DAY, 0, false, "spam" },
	{ "mailer-daemon", "john", { .sender = "MAILER-DAEMON@remote.example", .to = "john@example.com" },
	  T0 + DAY, 0, false, "the sender is a robot or list address" },
	{ "postmaster", "john", { .sender = "postmaster@remote.example" }, T0 + DAY, 0, false,
	  "the sender is a robot or list address" },
	{ "owner-", "john", { .sender = "owner-news@lists.example" }, T0 + DAY, 0, false,
	  "the sender is a robot or list address" },
	{ "-request", "john", { .sender = "news-request@lists.example" }, T0 + DAY, 0, false,
	  "the sender is a robot or list address" },
	{ "-bounces", "john", { .sender = "news-bounces@lists.example" }, T0 + DAY, 0, false,
	  "the sender is a robot or list address" },
	{ "noreply", "john", { .sender = "no-reply@shop.example" }, T0 + DAY, 0, false,
	  "the sender is a robot or list address" },
	{ "owner as a name is fine", "john", { .sender = "owner@shop.example" }, T0 + DAY, 0, true,
	  "send" },
	{ "requester is fine", "john", { .sender = "requester@shop.example" }, T0 + DAY, 0, true,
	  "send" },
	{ "the user himself", "john", { .sender = "John@example.com" }, T0 + DAY, 0, false,
	  "the sender is the user" },
	{ "the user through an extra address and alias domain", "john",
	  { .sender = "j.smith@EXAMPLE.NET" }, T0 + DAY, 0, false, "the sender is the user" },
	{ "not named in To or Cc (Bcc, list)", "john",
	  { .sender = "alice@remote.example", .to = "team@remote.example", .cc = "bob@remote.example" },
	  T0 + DAY, 0, false, "the user is not named in To or Cc" },
	{ "named in Cc", "john",
	  { .sender = "alice@remote.example", .to = "team@remote.example", .cc = "<JOHN@example.com>" },
	  T0 + DAY, 0, true, "send" },
	{ "named by extra address", "john",
	  { .sender = "alice@remote.example", .to = "\"Smith\" <j.smith@example.com>" }, T0 + DAY, 0,
	  true, "send" },
	{ "named through the alias domain", "john",
	  { .sender = "alice@remote.example", .to = "john@example.net, x@y.example" }, T0 + DAY, 0,
	  true, "send" },
	{ "a longer address is not the user", "john",
	  { .sender = "alice@remote.example", .to = "bigjohn@example.com, john@example.com.evil" },
	  T0 + DAY, 0, false, "the user is not named in To or Cc" },
	{ "answered 1 day ago", "john", { OK_MSG }, T0 + 5 * DAY, T0 + 4 * DAY, false,
	  "already answered this sender recently" },
	{ "answered 3 days ago", "john", { OK_MSG }, T0 + 7 * DAY, T0 + 4 * DAY, true, "send" },
	{ "answered just under 3 days ago", "john", { OK_MSG }, T0 + 7 * DAY - 1, T0 + 4 * DAY, false,
	  "already answered this sender recently" },
	{ "clock went back", "john", { OK_MSG }, T0 + 2 * DAY, T0 + 4 * DAY, false,
	  "already answered this sender recently" },
};

static void test_decision_table(void **state)
{
	struct directory *dir = dt_parse(users, NULL);

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct dir_user *u = directory_find_user(dir, rows[i].user);
		const char *reason = NULL;
		bool send;

		assert_non_null(u);
		send = directory_autoreply_should_send(dir, u, &rows[i].msg, rows[i].now,
						       rows[i].last_sent, 0, &reason);
		if (send != rows[i].send || strcmp(reason, rows[i].reason) != 0)
			fail_msg("%s: got %s '%s', expected %s '%s'", rows[i].name,
				 send ? "send" : "skip", reason, rows[i].send ? "send" : "skip",
				 rows[i].reason);
	}
	directory_unref(&dir);
}

static void test_interval(void **state)
{
	struct directory *dir = dt_parse(users, NULL);
	const struct dir_user *u = directory_find_user(dir, "open");
	struct dir_autoreply_msg msg = { .sender = "alice@remote.example" };

	/* a custom interval (7 days, as RFC 5230 suggests) */
	assert_false(directory_autoreply_should_send(dir, u, &msg, 10 * DAY, 4 * DAY, 7 * DAY, NULL));
	assert_true(directory_autoreply_should_send(dir, u, &msg, 11 * DAY, 4 * DAY, 7 * DAY, NULL));
	/* the default */
	assert_true(directory_autoreply_should_send(dir, u, &msg, 7 * DAY, 4 * DAY, 0, NULL));
	assert_int_equal(DIRECTORY_AUTOREPLY_INTERVAL, 3 * DAY);
	directory_unref(&dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decision_table),
		cmocka_unit_test(test_interval),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
