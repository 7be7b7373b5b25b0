/*
 * test-heap-medium.c: the medium size classes (513..POOL_SMALL_MAX bytes),
 * served from 64 KiB pools of arenas of their own: every size gets a block
 * that holds it, 16-aligned, found from each of its bytes; bad frees into
 * medium pools; realloc across the fine, medium and large sides; frees
 * from another thread; the statistics and the walk of live blocks.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool-private.h"
#include "pool-walk.h"

#define NMEDIUM (POOL_SMALL_MAX - POOL_FINE_MAX)

static unsigned char tag_of(size_t size)
{
	return (unsigned char)(size * 7 + 1);
}

Test(pool_medium, every_size_has_an_aligned_block_found_from_each_of_its_bytes)
{
	static unsigned char *blocks[NMEDIUM + 1];
	for (size_t size = POOL_FINE_MAX + 1; size <= POOL_SMALL_MAX; size++) {
		unsigned char *p = pool_malloc(size);
		cr_assert_not_null(p);
		cr_assert_eq((uintptr_t)p % POOL_ALIGNMENT, 0, "size %zu", size);
		cr_assert_eq(pool_usable_size(p), pool_class_size(pool_size_class(size)));
		cr_assert_geq(pool_usable_size(p), size);
		memset(p, tag_of(size), size);
		blocks[size - POOL_FINE_MAX] = p;
	}
	for (size_t size = POOL_FINE_MAX + 1; size <= POOL_SMALL_MAX; size++) {
		unsigned char *p = blocks[size - POOL_FINE_MAX];
		struct pool_block blk;
		for (size_t off = 0; off < size; off++) {
			cr_assert_eq(p[off], tag_of(size), "size %zu byte %zu", size, off);
			cr_assert(pool_lookup(p + off, &blk), "size %zu offset %zu", size, off);
			cr_assert_eq(blk.start, p, "size %zu offset %zu", size, off);
		}
		cr_assert_eq(blk.size, size);
		cr_assert_eq(blk.usable, pool_usable_size(p));
		cr_assert(blk.live);
		cr_assert_not(blk.large);
		if (pool_lookup(p + size, &blk))
			cr_assert_neq(blk.start, p, "one past the end of %zu bytes", size);
		struct pool_where pw;
		cr_assert(pool_lookup_where(p + size - 1, &pw));
		cr_assert_eq(pw.start, (uintptr_t)p);
		cr_assert_not_null(pw.pool);
		cr_assert_eq(pw.size, size);
	}
	for (size_t size = POOL_FINE_MAX + 1; size <= POOL_SMALL_MAX; size++) {
		unsigned char *p = blocks[size - POOL_FINE_MAX];
		cr_assert_eq(pool_free(p), POOL_FREE_OK);
		struct pool_block blk;
		cr_assert_not(pool_lookup(p, &blk));
	}
}

Test(pool_medium, blocks_of_a_pool_are_consecutive_across_16k)
{
	/* 40 blocks of 2048 bytes: 80 KiB, so a pool's blocks cross three
	 * 16 KiB boundaries and two pools are carved */
	enum { N = 40 };
	void *b[N];
	for (int i = 0; i < N; i++)
		b[i] = pool_malloc(2000);
	unsigned crossed = 0;
	for (int i = 1; i < N; i++) {
		struct pool_where a, z;
		cr_assert(pool_lookup_where(b[i - 1], &a));
		cr_assert(pool_lookup_where(b[i], &z));
		if (a.pool != z.pool)
			continue;
		cr_assert_eq((uintptr_t)b[i] - (uintptr_t)b[i - 1], 2048);
		cr_assert_eq(z.idx, a.idx + 1);
		if (((uintptr_t)b[i] >> 14) != ((uintptr_t)b[i - 1] >> 14))
			crossed++;
	}
	cr_assert_geq(crossed, 3);
	for (int i = 0; i < N; i++)
		cr_assert_eq(pool_free(b[i]), POOL_FREE_OK);
}

Test(pool_medium, bad_frees_are_told_apart)
{
	unsigned char *p = pool_malloc(600); /* class of 640 */
	cr_assert_not_null(p);
	pool_block_set_owner(p, 7, 70);
	cr_assert_eq(pool_free(p + 16), POOL_FREE_INVALID);
	cr_assert_eq(pool_free(p + 599), POOL_FREE_INVALID);
	struct pool_block blk;
	cr_assert(pool_lookup(p, &blk));
	cr_assert_eq(blk.stack_id, 7);
	cr_assert_eq(blk.seq, 70);
	size_t size;
	bool large;
	uint64_t seq;
	/* a second block keeps the pool carved after the first is freed */
	void *keep = pool_malloc(600);
	cr_assert_eq(pool_free_traced(p, 9, &size, &large, &seq), POOL_FREE_OK);
	cr_assert_eq(size, 600);
	cr_assert_not(large);
	cr_assert_eq(seq, 70);
	cr_assert_eq(pool_free(p), POOL_FREE_DOUBLE);
	cr_assert(pool_lookup_any(p, &blk));
	cr_assert_not(blk.live);
	cr_assert_eq(blk.stack_id, 7);
	cr_assert_eq(blk.free_stack_id, 9);
	/* the tail of a pool of 640-byte blocks (65536 = 102 * 640 + 256) is
	 * no block; the arena's header slot is not the program's */
	uintptr_t base = (uintptr_t)p & ~(uintptr_t)(POOL_MEDIUM_POOL_SIZE - 1);
	uintptr_t tail = base + POOL_MEDIUM_POOL_SIZE - 16;
	cr_assert_not(pool_lookup((void *)tail, &blk));
	cr_assert_eq(pool_free((void *)tail), POOL_FREE_INVALID);
	uintptr_t arena = (uintptr_t)p & ~(uintptr_t)(POOL_ARENA_SIZE - 1);
	cr_assert_eq(pool_free((void *)(arena + POOL_POOL_SIZE + 64)), POOL_FREE_FOREIGN);
	cr_assert_eq(pool_free(keep), POOL_FREE_OK);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed + i * 13);
}

static bool same(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(seed + i * 13))
			return false;
	return true;
}

Test(pool_medium, realloc_moves_between_fine_medium_and_large_keeping_the_bytes)
{
	static const size_t steps[] = { 100, 513, 576, 577, 1500, 4096, 4097, 9000,
					4000, 2100, 2050, 700, 512, 40, 3000 };
	size_t n = 100;
	unsigned char *p = pool_malloc(n);
	fill(p, n, 3);
	for (size_t i = 1; i < sizeof(steps) / sizeof(steps[0]); i++) {
		size_t m = steps[i];
		unsigned char *q = pool_realloc(p, m);
		cr_assert_not_null(q, "%zu -> %zu", n, m);
		size_t kept = n < m ? n : m;
		cr_assert(same(q, kept, 3), "%zu -> %zu", n, m);
		struct pool_block blk;
		cr_assert(pool_lookup(q, &blk));
		cr_assert_eq(blk.size, m);
		cr_assert_eq(blk.large, m > POOL_SMALL_MAX);
		if (m <= POOL_SMALL_MAX && n <= POOL_SMALL_MAX &&
		    pool_size_class(m) == pool_size_class(n))
			cr_assert_eq(q, p, "%zu -> %zu stays in its class", n, m);
		fill(q, m, 3);
		p = q;
		n = m;
	}
	cr_assert_eq(pool_free(p), POOL_FREE_OK);
}

Test(pool_medium, calloc_zeroes_reused_medium_blocks)
{
	for (int round = 0; round < 3; round++) {
		unsigned char *p = pool_malloc(3000);
		memset(p, 0xab, pool_usable_size(p));
		cr_assert_eq(pool_free(p), POOL_FREE_OK);
		unsigned char *z = pool_calloc(1, 3000);
		cr_assert_eq(z, p, "the block is reused LIFO");
		for (size_t i = 0; i < pool_usable_size(z); i++)
			cr_assert_eq(z[i], 0, "byte %zu", i);
		cr_assert_eq(pool_free(z), POOL_FREE_OK);
	}
}

/* ---- frees from another thread ------------------------------------------------- */

enum { XN = 3000 };
static void *xblocks[XN];

static void *free_them(void *arg)
{
	for (size_t i = 0; i < XN; i++) {
		unsigned char *p = xblocks[i];
		size_t size = 513 + i % (POOL_SMALL_MAX - 512);
		cr_assert_eq(p[0], (unsigned char)i);
		cr_assert_eq(p[size - 1], (unsigned char)i);
		cr_assert_eq(pool_free(p), POOL_FREE_OK);
		cr_assert_eq(pool_free(p), POOL_FREE_DOUBLE);
	}
	pool_thread_exit();
	return NULL;
}

static size_t medium_in_use(void)
{
	struct pool_stats st;
	pool_get_stats(&st);
	size_t n = 0;
	for (unsigned c = POOL_FINE_CLASSES; c < POOL_NUM_CLASSES; c++)
		n += st.classes[c].blocks_in_use;
	return n;
}

Test(pool_medium, another_thread_frees_and_the_owner_reuses_the_blocks)
{
	size_t before = medium_in_use();
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < XN; i++) {
			size_t size = 513 + i % (POOL_SMALL_MAX - 512);
			unsigned char *p = pool_malloc(size);
			cr_assert_not_null(p);
			memset(p, (unsigned char)i, size);
			xblocks[i] = p;
		}
		cr_assert_eq(medium_in_use(), before + XN);
		pthread_t t;
		pthread_create(&t, NULL, free_them, NULL);
		pthread_join(t, NULL);
		cr_assert_eq(medium_in_use(), before);
	}
	struct pool_stats st;
	pool_get_stats(&st);
	cr_assert_leq(st.arenas_current, 16, "%zu arenas mapped", st.arenas_current);
}

/* ---- statistics and walks ------------------------------------------------------ */

Test(pool_medium, stats_count_medium_blocks_per_class)
{
	struct pool_stats before, after;
	pool_get_stats(&before);
	enum { N = 500 };
	void *b[N];
	for (size_t i = 0; i < N; i++)
		b[i] = pool_malloc(1000); /* 1024-byte blocks, 64 a pool */
	unsigned c = pool_size_class(1000);
	cr_assert_eq(pool_class_size(c), 1024);
	pool_get_stats(&after);
	const struct pool_class_stats *a = &after.classes[c], *z = &before.classes[c];
	cr_assert_eq(a->block_size, 1024);
	cr_assert_eq(a->blocks_in_use - z->blocks_in_use, N);
	cr_assert_geq(a->pools, (N + 63) / 64);
	cr_assert_eq(a->blocks_in_use + a->blocks_available, a->pools * 64);
	cr_assert_eq(after.bytes_in_small_blocks - before.bytes_in_small_blocks, N * 1000);
	cr_assert_eq(after.bytes_quantization - before.bytes_quantization, N * 24);
	cr_assert_eq(after.large_blocks, before.large_blocks);
	for (size_t i = 0; i < N; i++)
		cr_assert_eq(pool_free(b[i]), POOL_FREE_OK);
	pool_get_stats(&after);
	cr_assert_eq(after.classes[c].blocks_in_use, before.classes[c].blocks_in_use);
}

struct seen {
	uintptr_t lo, hi;
	size_t blocks, pools, bad;
};

static void walk_pool(const struct pool_walk_pool *p, void *arg)
{
	struct seen *s = arg;
	if (p->base + p->pool_size <= s->lo || p->base >= s->hi)
		return;
	s->pools++;
	if (p->pool_size != POOL_MEDIUM_POOL_SIZE || p->base % POOL_MEDIUM_POOL_SIZE ||
	    p->nblocks * p->block_size > p->pool_size)
		s->bad++;
	for (uint32_t k = 0; k < p->nblocks; k++)
		if (p->words[k] & POOL_WALK_LIVE)
			s->blocks++;
}

static void count_live(const struct pool_block *blk, void *arg)
{
	struct seen *s = arg;
	if ((uintptr_t)blk->start >= s->lo && (uintptr_t)blk->start < s->hi) {
		s->blocks++;
		if (blk->usable != 4096 || blk->size != 4000 || blk->large)
			s->bad++;
	}
}

Test(pool_medium, walks_see_medium_pools_whole)
{
	enum { N = 40 }; /* 16 blocks of 4096 a pool: three pools */
	void *b[N];
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	for (int i = 0; i < N; i++) {
		b[i] = pool_malloc(4000);
		uintptr_t a = (uintptr_t)b[i];
		lo = a < lo ? a : lo;
		hi = a + 4096 > hi ? a + 4096 : hi;
	}
	struct seen s = { lo, hi, 0, 0, 0 };
	pool_walk(walk_pool, NULL, &s);
	cr_assert_eq(s.bad, 0);
	cr_assert_geq(s.pools, 3);
	cr_assert_geq(s.blocks, N);
	struct seen f = { lo, hi, 0, 0, 0 };
	pool_foreach_live(count_live, &f);
	cr_assert_eq(f.blocks, N);
	cr_assert_eq(f.bad, 0);
	for (int i = 0; i < N; i++)
		cr_assert_eq(pool_free(b[i]), POOL_FREE_OK);
}
