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
	free(map->keys);
	free(map->vals);
	memset(map, 0, sizeof(*map));
}

static uint32_t *find(const struct reports_map *map, uint64_t key)
{
	if (!map->vals)
		return NULL;
	size_t i = reports_hash64(key) & map->mask;
	while (map->vals[i]) {
		if (map->keys[i] == key)
			return &map->vals[i];
		i = (i + 1) & map->mask;
	}
	return NULL;
}

static int map_grow(struct reports_map *map)
{
	size_t nslots = map->vals ? (map->mask + 1) * 2 : 64;
	uint64_t *keys = calloc(nslots, sizeof(*keys));
	uint32_t *vals = calloc(nslots, sizeof(*vals));
	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -ENOMEM;
	}
	size_t mask = nslots - 1;
	for (size_t j = 0; map->vals && j <= map->mask; j++) {
		if (!map->vals[j])
			continue;
		size_t i = reports_hash64(map->keys[j]) & mask;
		while (vals[i])
			i = (i + 1) & mask;
		keys[i] = map->keys[j];
		vals[i] = map->vals[j];
	}
	free(map->keys);
	free(map->vals);
	map->keys = keys;
	map->vals = vals;
	map->mask = mask;
	return 0;
}

bool reports_map_get(const struct reports_map *map, uint64_t key, uint32_t *val)
{
	uint32_t *slot = find(map, key);
	if (slot && val)
		*val = *slot - 1;
	return slot != NULL;
}

int reports_map_put(struct reports_map *map, uint64_t key, uint32_t val)
{
	uint32_t *slot = find(map, key);
	if (slot) {
		*slot = val + 1;
		return 0;
	}
	if (!map->vals || (map->count + 1) * 2 > map->mask + 1) {
		int r = map_grow(map);
		if (r < 0)
			return r;
	}
	size_t i = reports_hash64(key) & map->mask;
	while (map->vals[i])
		i = (i + 1) & map->mask;
	map->keys[i] = key;
	map->vals[i] = val + 1;
	map->count++;
	return 0;
}

bool reports_map_remove(struct reports_map *map, uint64_t key, uint32_t *val)
{
	uint32_t *slot = find(map, key);
	if (!slot)
		return false;
	if (val)
		*val = *slot - 1;
	size_t i = (size_t)(slot - map->vals);
	map->vals[i] = 0;
	map->count--;
	/* Shift back the rest of the run: an entry moves into the hole when
	 * its home slot is not between the hole and its current position. */
	size_t j = i;
	for (;;) {
		j = (j + 1) & map->mask;
		if (!map->vals[j])
			break;
		size_t home = reports_hash64(map->keys[j]) & map->mask;
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (stays)
			continue;
		map->keys[i] = map->keys[j];
		map->vals[i] = map->vals[j];
		map->vals[j] = 0;
		i = j;
	}
	return true;
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
