/*
 * Queue commands of the administration API (docs/control-protocol.md,
 * docs/queue.md): queue-list, queue-delete, queue-run, queue-inject.
 */
#ifndef PETREL_ADMIN_QUEUE_H
#define PETREL_ADMIN_QUEUE_H

#include <jansson.h>

#include "admin/admin.h"

json_t *admin_do_queue_list(json_t *request, const struct admin_engine *engine);
json_t *admin_do_queue_delete(json_t *request, const struct admin_engine *engine);
json_t *admin_do_queue_run(json_t *request, const struct admin_engine *engine);
json_t *admin_do_queue_inject(json_t *request, const struct admin_engine *engine);

#endif
