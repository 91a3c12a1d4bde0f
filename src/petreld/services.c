/* Registration of the protocol front ends; see services.h. */
#include "petreld/services.h"

#include "http/http_admin.h"

void services_register(struct net *net, struct event_base *main_base,
		       struct worker_pool *const *workers, const struct admin_engine *engine)
{
	struct http_admin_deps admin_deps = {
		.net = net,
		.main_base = main_base,
		.workers = workers,
		.engine = engine,
	};

	/* Front ends add themselves here as they are implemented. */
	http_admin_register(&admin_deps);
}
