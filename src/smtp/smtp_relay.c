/*
 * Relay policy and the submission sender check (docs/smtp.md).
 *
 * Mail to our own domains is accepted from anyone (subject to the limits).
 * Mail to other domains is relayed only for a client that authenticated
 * with SMTP AUTH, a client inside smtp <relay-networks>, or — when
 * smtp/pop-before-smtp is set — a client whose address logged in over POP3
 * or IMAP within that time.  Loopback is a secure channel for logins but
 * not a relay right (DESIGN.md): 127.0.0.1 relays only when listed.
 */
#include "smtp/smtp.h"
#include "smtp/smtp_private.h"

#include <string.h>

#include "core/cfg.h"
#include "directory/directory.h"

static smtp_recent_login_fn *recent_login;

void smtp_set_recent_login_lookup(smtp_recent_login_fn *fn)
{
	__atomic_store_n(&recent_login, fn, __ATOMIC_RELEASE);
}

enum smtp_relay smtp_relay_check(const struct cfg *cfg, const char *ip, bool authenticated)
{
	smtp_recent_login_fn *fn;

	if (authenticated)
		return SMTP_RELAY_AUTHENTICATED;
	if (cfg_networks_contain(cfg->relay_networks, cfg->relay_network_count, ip))
		return SMTP_RELAY_NETWORK;
	fn = __atomic_load_n(&recent_login, __ATOMIC_ACQUIRE);
	if (cfg->s.smtp_pop_before_smtp > 0 && fn != NULL && fn(ip, cfg->s.smtp_pop_before_smtp))
		return SMTP_RELAY_POP_BEFORE_SMTP;
	return SMTP_RELAY_DENIED;
}

const char *smtp_relay_str(enum smtp_relay relay)
{
	switch (relay) {
	case SMTP_RELAY_AUTHENTICATED: return "authenticated";
	case SMTP_RELAY_NETWORK: return "relay-network";
	case SMTP_RELAY_POP_BEFORE_SMTP: return "pop-before-smtp";
	default: return "denied";
	}
}

bool smtp_sender_owned(const struct directory *dir, const char *identity, const char *sender)
{
	const struct dir_user *user;
	struct dir_resolution res;
	bool owned = false;

	if (sender[0] == '\0')
		return true;
	if (dir == NULL || identity == NULL)
		return false;
	user = directory_find_user(dir, identity);
	if (user == NULL)
		return false;
	directory_resolve(dir, sender, DIRECTORY_DEFAULT_SEPARATOR, &res);
	switch (res.kind) {
	case DIR_RESOLVE_RECIPIENTS:
		if (res.user == user) {
			owned = true;   /* the user's address or one of its extra addresses */
			break;
		}
		if (res.entry != DIR_ENTRY_ALIAS && res.entry != DIR_ENTRY_GROUP)
			break;
		for (size_t i = 0; i < res.rcpt_count && !owned; i++)
			owned = res.rcpts[i].kind == DIR_RCPT_LOCAL && res.rcpts[i].user == user;
		break;
	case DIR_RESOLVE_LIST:
		owned = res.list != NULL && directory_list_has_moderator(dir, res.list, user->address);
		break;
	default:
		break;
	}
	directory_resolution_free(&res);
	return owned;
}
