/*
 * The groups a user belongs to, for rights (RFC 4314 identifiers): the
 * groups that name the user as a member, and the groups that name one of
 * those as a member, and so on (nested groups).
 *
 * Breadth first, one level at a time: level 1 holds the groups with the
 * user as a direct member, level n+1 the groups with a member in level n.
 * A group is taken once, so a cycle (a in b, b in a) ends by itself; the
 * depth limit (directory/max-group-depth) and the count limit bound the
 * work on a users.cfg with very deep or very wide nesting.
 *
 * Pure: reads a directory snapshot, no I/O.
 */
#include "directory/directory.h"

#include <stdlib.h>
#include <strings.h>

/* Is a member of g one of names[0..n)? */
static bool has_member(const struct dir_group *g, const char *const *names, size_t n)
{
	for (size_t m = 0; m < g->members.count; m++) {
		for (size_t i = 0; i < n; i++) {
			if (strcasecmp(g->members.items[m], names[i]) == 0)
				return true;
		}
	}
	return false;
}

static bool taken(const char *const *groups, size_t n, const char *address)
{
	for (size_t i = 0; i < n; i++) {
		if (groups[i] == address)
			return true;
	}
	return false;
}

size_t directory_user_groups(const struct directory *dir, const char *identity,
			     unsigned max_depth, size_t max_groups, const char ***groups_r)
{
	const char **groups = NULL;
	size_t n = 0, level_start = 0, level_end;
	const char *self[1] = { identity };

	*groups_r = NULL;
	if (dir == NULL || max_depth == 0 || max_groups == 0)
		return 0;
	for (unsigned depth = 1; depth <= max_depth; depth++) {
		/* the members looked for: the user, then the last level */
		const char *const *want = depth == 1 ? self : groups + level_start;
		size_t nwant = depth == 1 ? 1 : n - level_start;

		level_end = n;
		for (size_t d = 0; d < dir->domain_count && n < max_groups; d++) {
			const struct dir_domain *dom = dir->domains[d];

			for (size_t g = 0; g < dom->group_count && n < max_groups; g++) {
				const struct dir_group *grp = dom->groups[g];

				if (taken(groups, n, grp->address) || !has_member(grp, want, nwant))
					continue;
				groups = xreallocarray(groups, n + 1, sizeof(*groups));
				/* want may point into groups: recompute after growth */
				want = depth == 1 ? self : groups + level_start;
				groups[n++] = grp->address;
			}
		}
		if (n == level_end)
			break;  /* nothing new: no deeper level */
		level_start = level_end;
	}
	*groups_r = groups;
	return n;
}
