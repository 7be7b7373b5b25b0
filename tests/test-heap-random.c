/*
 * test-heap-random.c: a randomized test of the whole malloc family against
 * a reference model of the live blocks.  Every block carries a content
 * pattern derived from its id; at checkpoints every live block is checked
 * (content, size, usable size, lookup of its start and an interior byte)
 * and pool_foreach_live must count exactly the model's blocks.
 *
 * The seed is fixed (the test is reproducible); MEMPROF_TEST_SEED=N in the
 * environment runs seed N as well.  A failure names its seed.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

#define SLOTS 1500
#define OPS 60000

struct slot {
	unsigned char *p;
	size_t size;
	uint32_t id;
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static size_t rnd_size(void)
{
	unsigned k = (unsigned)(rnd() % 100);
	if (k < 3)
		return 0;
	if (k < 85)
		return 1 + rnd() % POOL_SMALL_MAX;
	if (k < 98)
		return POOL_SMALL_MAX + 1 + rnd() % 8000;
	return 20000 + rnd() % 200000;
}

static unsigned char pat(uint32_t id, size_t i)
{
	return (unsigned char)(id * 131u + i * 17u + (i >> 8));
}

static void fill(struct slot *s)
{
	for (size_t i = 0; i < s->size; i++)
		s->p[i] = pat(s->id, i);
}

static void check_slot(const struct slot *s, uint64_t seed)
{
	for (size_t i = 0; i < s->size; i++)
		if (s->p[i] != pat(s->id, i))
			cr_assert_fail("seed %llu: block %u byte %zu corrupted",
				 (unsigned long long)seed, s->id, i);
	struct pool_block blk;
	cr_assert(pool_lookup(s->p, &blk), "seed %llu: lookup", (unsigned long long)seed);
	cr_assert_eq(blk.start, s->p);
	cr_assert_eq(blk.size, s->size, "seed %llu", (unsigned long long)seed);
	cr_assert_geq(blk.usable, s->size);
	cr_assert_eq(pool_usable_size(s->p), blk.usable);
	if (s->size > 1) {
		cr_assert(pool_lookup(s->p + s->size - 1, &blk));
		cr_assert_eq(blk.start, s->p, "seed %llu: interior", (unsigned long long)seed);
	}
}

static void count_block(const struct pool_block *blk, void *arg)
{
	(void)blk;
	++*(size_t *)arg;
}

/* One allocation through a randomly chosen entry point. */
static unsigned char *alloc_any(size_t size)
{
	void *p = NULL;
	switch (rnd() % 6) {
	case 0:
		return pool_calloc(1, size);
	case 1:
		return pool_memalign((size_t)16 << (rnd() % 6), size);
	case 2:
		if (pool_posix_memalign(&p, sizeof(void *) << (rnd() % 5), size))
			return NULL;
		return p;
	case 3:
		return pool_realloc(NULL, size);
	default:
		return pool_malloc(size);
	}
}

static void run_seed(uint64_t seed)
{
	static struct slot slots[SLOTS];
	memset(slots, 0, sizeof(slots));
	rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
	size_t baseline = 0, live = 0;
	pool_foreach_live(count_block, &baseline);
	uint32_t next_id = 1;
	for (unsigned op = 0; op < OPS; op++) {
		struct slot *s = &slots[rnd() % SLOTS];
		unsigned kind = (unsigned)(rnd() % 10);
		if (!s->p) {
			s->size = rnd_size();
			s->p = alloc_any(s->size);
			cr_assert_not_null(s->p, "seed %llu", (unsigned long long)seed);
			s->id = next_id++;
			fill(s);
			live++;
		} else if (kind < 4) {
			size_t n = rnd_size();
			if (n == 0)
				n = 1; /* realloc(p, 0) frees: covered elsewhere */
			check_slot(s, seed);
			unsigned char *q = kind == 0 ? pool_reallocarray(s->p, 1, n) : pool_realloc(s->p, n);
			cr_assert_not_null(q, "seed %llu", (unsigned long long)seed);
			size_t keep = s->size < n ? s->size : n;
			for (size_t i = 0; i < keep; i++)
				if (q[i] != pat(s->id, i))
					cr_assert_fail("seed %llu: realloc lost byte %zu", (unsigned long long)seed, i);
			s->p = q;
			s->size = n;
			fill(s);
		} else {
			check_slot(s, seed);
			cr_assert_eq(pool_free(s->p), POOL_FREE_OK, "seed %llu", (unsigned long long)seed);
			s->p = NULL;
			live--;
		}
		if (op % 10000 == 9999) {
			for (size_t i = 0; i < SLOTS; i++)
				if (slots[i].p)
					check_slot(&slots[i], seed);
			size_t counted = 0;
			size_t visited = pool_foreach_live(count_block, &counted);
			cr_assert_eq(visited, counted);
			cr_assert_eq(counted, baseline + live, "seed %llu", (unsigned long long)seed);
		}
	}
	for (size_t i = 0; i < SLOTS; i++) {
		if (slots[i].p) {
			check_slot(&slots[i], seed);
			cr_assert_eq(pool_free(slots[i].p), POOL_FREE_OK);
		}
	}
	size_t counted = 0;
	pool_foreach_live(count_block, &counted);
	cr_assert_eq(counted, baseline, "seed %llu", (unsigned long long)seed);
}

Test(pool_random, model_of_live_blocks_matches_the_heap)
{
	run_seed(20240601);
	const char *env = getenv("MEMPROF_TEST_SEED");
	if (env && *env)
		run_seed(strtoull(env, NULL, 0));
}
