/*
 * The index files this engine has already verified (PRAGMA quick_check),
 * by device and inode.  quick_check reads every page of the index: for a
 * 10 000-message folder that is 20 MB and 40 ms, and a folder is opened
 * again for every POP3 session and every IMAP SELECT after the last
 * session let go of it.  Once per index file and engine run is enough:
 * after that, damage is found when SQLite reads a damaged page
 * (cell_size_check), and an index rebuilt or moved aside is a new file.
 */
#include "store/store_private.h"

#include <stdlib.h>
#include <string.h>

/* Beyond this many files the set starts again (each then gets checked
 * once more): a bound on memory, not a limit anyone should reach. */
#define CHECKED_MAX 1000000
#define CHECKED_MIN_CAP 256

struct checked_file {
	dev_t dev;
	ino_t ino;
	bool used;
};

static size_t slot_of(const struct store_checked *c, dev_t dev, ino_t ino)
{
	uint64_t h = ((uint64_t)ino * 0x9E3779B97F4A7C15ull) ^ (uint64_t)dev;

	return (size_t)(h ^ (h >> 29)) & (c->cap - 1);
}

/* The slot of (dev, ino), or the empty slot where it would go. */
static struct checked_file *find(const struct store_checked *c, dev_t dev, ino_t ino)
{
	size_t i = slot_of(c, dev, ino);

	while (c->files[i].used && (c->files[i].dev != dev || c->files[i].ino != ino))
		i = (i + 1) & (c->cap - 1);
	return &c->files[i];
}

static void grow(struct store_checked *c)
{
	struct checked_file *old = c->files;
	size_t old_cap = c->cap;

	c->cap = old_cap == 0 ? CHECKED_MIN_CAP : old_cap * 2;
	c->files = xcalloc(c->cap, sizeof(*c->files));
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i].used)
			*find(c, old[i].dev, old[i].ino) = old[i];
	}
	free(old);
}

void store_checked_init(struct store_checked *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
}

void store_checked_deinit(struct store_checked *c)
{
	pthread_mutex_destroy(&c->lock);
	free(c->files);
	c->files = NULL;
}

bool store_checked_has(struct store_checked *c, dev_t dev, ino_t ino)
{
	bool found;

	pthread_mutex_lock(&c->lock);
	found = c->cap > 0 && find(c, dev, ino)->used;
	pthread_mutex_unlock(&c->lock);
	return found;
}

void store_checked_add(struct store_checked *c, dev_t dev, ino_t ino)
{
	struct checked_file *slot;

	pthread_mutex_lock(&c->lock);
	if (c->count >= CHECKED_MAX) {
		memset(c->files, 0, c->cap * sizeof(*c->files));
		c->count = 0;
	}
	if ((c->count + 1) * 2 > c->cap)
		grow(c);
	slot = find(c, dev, ino);
	if (!slot->used) {
		slot->dev = dev;
		slot->ino = ino;
		slot->used = true;
		c->count++;
	}
	pthread_mutex_unlock(&c->lock);
}
