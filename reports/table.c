/*
 * table.c: the small containers of reports/: growing arrays and a map from
 * 64-bit keys (addresses, stack ids) to 32-bit indices.  Entry points:
 * reports_vec_push(), reports_map_put(), reports_map_get().
 *
 * The map keeps its load factor at most 1/2; deletion shifts the following
 * entries of the probe run back so that no tombstones accumulate (every
 * entry stays reachable from its home slot without crossing an empty one).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reports-private.h"

int reports_vec_reserve(void *v, size_t *cap, size_t need, size_t elem)
{
	void **pv = v;
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 16;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	if (ncap > SIZE_MAX / elem)
		return -ENOMEM;
	void *nv = realloc(*pv, ncap * elem);
	if (!nv)
		return -ENOMEM;
	*pv = nv;
	*cap = ncap;
	return 0;
}

int reports_vec_push(void *v, size_t *n, size_t *cap, const void *item, size_t elem)
{
	if (*n == SIZE_MAX)
		return -ENOMEM;
	int r = reports_vec_reserve(v, cap, *n + 1, elem);
	if (r < 0)
		return r;
	memcpy((char *)*(void **)v + *n * elem, item, elem);
	(*n)++;
	return 0;
}

uint64_t reports_hash64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

void reports_map_finish(struct reports_map *map)
{
	free(map->slots);
	memset(map, 0, sizeof(*map));
}

static size_t home_of(const struct reports_map *map, uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ull) >> map->shift);
}

static struct reports_map_slot *find(const struct reports_map *map, uint64_t key)
{
	if (!map->slots)
		return NULL;
	size_t i = home_of(map, key);
	while (map->slots[i].val) {
		if (map->slots[i].key == key)
			return &map->slots[i];
		i = (i + 1) & map->mask;
	}
	return NULL;
}

static int map_grow(struct reports_map *map)
{
	size_t nslots = map->slots ? (map->mask + 1) * 2 : 64;
	struct reports_map_slot *slots = calloc(nslots, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	struct reports_map old = *map;
	map->slots = slots;
	map->mask = nslots - 1;
	map->shift = 64u - (unsigned)__builtin_ctzll(nslots);
	for (size_t j = 0; old.slots && j <= old.mask; j++) {
		if (!old.slots[j].val)
			continue;
		size_t i = home_of(map, old.slots[j].key);
		while (slots[i].val)
			i = (i + 1) & map->mask;
		slots[i] = old.slots[j];
	}
	free(old.slots);
	return 0;
}

bool reports_map_get(const struct reports_map *map, uint64_t key, uint32_t *val)
{
	struct reports_map_slot *slot = find(map, key);
	if (slot && val)
		*val = slot->val - 1;
	return slot != NULL;
}

int reports_map_add(struct reports_map *map, uint64_t key, uint32_t val, uint32_t *old)
{
	if (!map->slots || (map->count + 1) * 2 > map->mask + 1) {
		int r = map_grow(map);
		if (r < 0)
			return r;
	}
	size_t i = home_of(map, key);
	while (map->slots[i].val) {
		if (map->slots[i].key == key) {
			*old = map->slots[i].val - 1;
			return 1;
		}
		i = (i + 1) & map->mask;
	}
	map->slots[i].key = key;
	map->slots[i].val = val + 1;
	map->count++;
	return 0;
}

int reports_map_put(struct reports_map *map, uint64_t key, uint32_t val)
{
	uint32_t old;
	int r = reports_map_add(map, key, val, &old);
	if (r == 1)
		find(map, key)->val = val + 1;
	return r < 0 ? r : 0;
}

bool reports_map_remove(struct reports_map *map, uint64_t key, uint32_t *val)
{
	struct reports_map_slot *slot = find(map, key);
	if (!slot)
		return false;
	if (val)
		*val = slot->val - 1;
	size_t i = (size_t)(slot - map->slots);
	map->slots[i].val = 0;
	map->count--;
	/* Shift back the rest of the run: an entry moves into the hole when
	 * its home slot is not between the hole and its current position. */
	size_t j = i;
	for (;;) {
		j = (j + 1) & map->mask;
		if (!map->slots[j].val)
			break;
		size_t home = home_of(map, map->slots[j].key);
		if (reports_probe_stays(i, home, j))
			continue;
		map->slots[i] = map->slots[j];
		map->slots[j].val = 0;
		i = j;
	}
	return true;
}

bool reports_map_next(const struct reports_map *map, size_t *pos, uint64_t *key, uint32_t *val)
{
	for (size_t i = *pos; map->slots && i <= map->mask; i++) {
		if (map->slots[i].val) {
			*key = map->slots[i].key;
			*val = map->slots[i].val - 1;
			*pos = i + 1;
			return true;
		}
	}
	return false;
}

char *reports_strndup(const char *s, size_t len)
{
	char *c = malloc(len + 1);
	if (!c)
		return NULL;
	memcpy(c, s, len);
	c[len] = '\0';
	return c;
}
