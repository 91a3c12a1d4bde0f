/* The process-wide current users.cfg snapshot; see directory.h. */
#include "directory/directory.h"

#include <pthread.h>
#include <stdatomic.h>

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct directory *current;
/* Raised by every directory_set_current (reload, petrelctl changes). */
static _Atomic uint64_t generation = 1;
static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;

void directory_writer_lock(void)
{
	pthread_mutex_lock(&writer_lock);
}

void directory_writer_unlock(void)
{
	pthread_mutex_unlock(&writer_lock);
}

struct directory *directory_current(void)
{
	struct directory *dir;

	pthread_mutex_lock(&current_lock);
	dir = current != NULL ? directory_ref(current) : NULL;
	pthread_mutex_unlock(&current_lock);
	return dir;
}

void directory_set_current(struct directory *dir)
{
	struct directory *old;

	pthread_mutex_lock(&current_lock);
	old = current;
	current = dir;
	atomic_fetch_add_explicit(&generation, 1, memory_order_acq_rel);
	pthread_mutex_unlock(&current_lock);
	directory_unref(&old);
}

uint64_t directory_generation(void)
{
	return atomic_load_explicit(&generation, memory_order_acquire);
}
