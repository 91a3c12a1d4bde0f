/* Registration of the protocol front ends; see services.h. */
#include "petreld/services.h"

#include "core/recent_auth.h"
#include "http/http_admin.h"
#include "imap/imap.h"
#include "pop3/pop3.h"
#include "smtp/smtp.h"

/* The engine's message store, once it is open (services_set_store). */
static struct store *services_store;

void services_set_store(struct store *store)
{
	__atomic_store_n(&services_store, store, __ATOMIC_RELEASE);
}

void services_register(struct net *net, struct event_base *main_base,
		       struct worker_pool *const *workers, const struct admin_engine *engine)
{
	struct http_admin_deps admin_deps = {
		.net = net,
		.main_base = main_base,
		.workers = workers,
		.engine = engine,
	};

	struct smtp_deps smtp_deps = {
		.net = net,
		.workers = workers,
	};

	struct pop3_deps pop3_deps = {
		.net = net,
		.workers = workers,
		.store = &services_store,
	};

	struct imap_deps imap_deps = {
		.net = net,
		.workers = workers,
		.store = &services_store,
	};

	/* Front ends add themselves here as they are implemented. */
	http_admin_register(&admin_deps);
	smtp_register(&smtp_deps);
	pop3_register(&pop3_deps);
	imap_register(&imap_deps);
	/* POP-before-SMTP: POP3 and IMAP record logins, SMTP asks. */
	smtp_set_recent_login_lookup(pop_before_smtp_check);
}
