/*
 * test-heap-lookup.c: address to block lookup (start, interior,
 * one-past-the-end, foreign pointers), per-block metadata, the free
 * results for double, interior and foreign frees, pool_lookup_any after a
 * double free, pool_foreach_live and pool_foreach_own_range.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

static int static_word = 5;

static const size_t sizes_under_test[] = { 0, 1, 40, 48, 512, 513, 5000, 70000 };
#define NSIZES (sizeof(sizes_under_test) / sizeof(sizes_under_test[0]))

Test(pool_lookup, finds_start_and_interior_but_not_one_past_the_end)
{
	for (size_t i = 0; i < NSIZES; i++) {
		size_t n = sizes_under_test[i];
		char *p = pool_malloc(n);
		cr_assert_not_null(p);
		struct pool_block blk;
		cr_assert(pool_lookup(p, &blk), "size %zu", n);
		cr_assert_eq(blk.start, p);
		cr_assert_eq(blk.size, n);
		cr_assert(blk.live);
		cr_assert_eq(blk.large, n > POOL_SMALL_MAX);
		cr_assert_geq(blk.usable, n);
		if (n > 1) {
			cr_assert(pool_lookup(p + n / 2, &blk));
			cr_assert_eq(blk.start, p);
			cr_assert(pool_lookup(p + n - 1, &blk));
			cr_assert_eq(blk.start, p);
		}
		size_t end = n ? n : 1;
		if (pool_lookup(p + end, &blk))
			cr_assert_neq(blk.start, p, "one past the end of %zu bytes", n);
		cr_assert_eq(pool_free(p), POOL_FREE_OK);
		cr_assert_not(pool_lookup(p, &blk));
	}
}

Test(pool_lookup, rejects_foreign_pointers_and_free_leaves_them_alone)
{
	int stack_word = 3;
	void *g_small = malloc(32), *g_large = malloc(100000);
	void *mine = pool_malloc(64);
	const void *foreign[] = {
		&stack_word, &static_word, g_small, g_large, (char *)g_large + 5000,
		(void *)1, (void *)(uintptr_t)0x00007fffffffffffull,
		(void *)(uintptr_t)0xffff800000000000ull, (void *)UINTPTR_MAX,
	};
	for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
		struct pool_block blk;
		cr_assert_not(pool_lookup(foreign[i], &blk), "pointer %zu", i);
		cr_assert_not(pool_lookup_any(foreign[i], &blk), "pointer %zu", i);
		cr_assert_eq(pool_free((void *)foreign[i]), POOL_FREE_FOREIGN, "pointer %zu", i);
		enum pool_free_result why = POOL_FREE_OK;
		cr_assert_null(pool_realloc_checked((void *)foreign[i], 10, &why));
		cr_assert_eq(why, POOL_FREE_FOREIGN);
	}
	cr_assert_eq(stack_word, 3);
	cr_assert_eq(static_word, 5);
	/* glibc's blocks were not touched: freeing them works. */
	free(g_small);
	free(g_large);
	struct pool_block blk;
	cr_assert(pool_lookup(mine, &blk));
	cr_assert_eq(pool_free(mine), POOL_FREE_OK);
}

Test(pool_lookup, metadata_is_recorded_per_block)
{
	for (size_t i = 0; i < NSIZES; i++) {
		void *p = pool_malloc(sizes_under_test[i]);
		struct pool_block blk;
		cr_assert(pool_lookup(p, &blk));
		cr_assert_eq(blk.stack_id, 0);
		cr_assert_eq(blk.seq, 0);
		pool_block_set_owner(p, 100 + (uint32_t)i, 1000 + i);
		cr_assert(pool_lookup(p, &blk));
		cr_assert_eq(blk.stack_id, 100 + i);
		cr_assert_eq(blk.seq, 1000 + i);
		pool_free(p);
		/* A new block at the same place starts with clean metadata. */
		void *q = pool_malloc(sizes_under_test[i]);
		cr_assert(pool_lookup(q, &blk));
		cr_assert_eq(blk.stack_id, 0);
		cr_assert_eq(blk.seq, 0);
		pool_free(q);
	}
}

Test(pool_free, double_free_is_detected_and_lookup_any_names_both_stacks)
{
	for (size_t i = 0; i < NSIZES; i++) {
		size_t n = sizes_under_test[i];
		void *p = pool_malloc(n);
		pool_block_set_owner(p, 7, 42);
		pool_block_set_freer(p, 9);
		cr_assert_eq(pool_free(p), POOL_FREE_OK);
		/* The tracer records the second freer before calling free:
		 * that must not overwrite the first one. */
		pool_block_set_freer(p, 11);
		cr_assert_eq(pool_free(p), POOL_FREE_DOUBLE, "size %zu", n);
		struct pool_block blk;
		cr_assert_not(pool_lookup(p, &blk));
		cr_assert(pool_lookup_any(p, &blk), "size %zu", n);
		cr_assert_not(blk.live);
		cr_assert_eq(blk.start, p);
		cr_assert_eq(blk.stack_id, 7);
		cr_assert_eq(blk.free_stack_id, 9);
		cr_assert_eq(blk.seq, 42);
		enum pool_free_result why;
		cr_assert_null(pool_realloc_checked(p, 100, &why));
		cr_assert_eq(why, POOL_FREE_DOUBLE);
		/* The heap still works. */
		void *q = pool_malloc(n);
		cr_assert_not_null(q);
		memset(q, 1, n);
		cr_assert_eq(pool_free(q), POOL_FREE_OK);
	}
}

Test(pool_free, small_blocks_are_reused_last_in_first_out)
{
	void *a = pool_malloc(24), *b = pool_malloc(24);
	pool_free(a);
	pool_free(b);
	cr_assert_eq(pool_malloc(24), b);
	cr_assert_eq(pool_malloc(24), a);
	pool_free(a);
	pool_free(b);
}

Test(pool_free, interior_pointers_are_invalid_and_change_nothing)
{
	for (size_t i = 0; i < NSIZES; i++) {
		size_t n = sizes_under_test[i];
		char *p = pool_malloc(n);
		memset(p, 0x5a, n);
		size_t off = n > 32 ? n / 2 : 8;
		cr_assert_eq(pool_free(p + off), POOL_FREE_INVALID, "size %zu", n);
		enum pool_free_result why;
		cr_assert_null(pool_realloc_checked(p + off, 10, &why));
		cr_assert_eq(why, POOL_FREE_INVALID);
		struct pool_block blk;
		cr_assert(pool_lookup(p, &blk));
		cr_assert(blk.live);
		for (size_t k = 0; k < n; k++)
			cr_assert_eq((unsigned char)p[k], 0x5a);
		cr_assert_eq(pool_free(p), POOL_FREE_OK);
	}
}

Test(pool_lookup, aligned_large_blocks_answer_interior_pointers)
{
	char *p = pool_memalign(4096, 3 * 4096 + 100);
	cr_assert_eq((uintptr_t)p % 4096, 0);
	struct pool_block blk;
	for (size_t off = 0; off < 3 * 4096 + 100; off += 997) {
		cr_assert(pool_lookup(p + off, &blk));
		cr_assert_eq(blk.start, p);
		cr_assert(blk.large);
	}
	cr_assert_not(pool_lookup(p + 3 * 4096 + 100, &blk) && blk.start == p);
	pool_free(p);
	cr_assert_not(pool_lookup(p + 5000, &blk));
}

struct walk {
	void **want;
	size_t *sizes;
	size_t n;
	size_t seen;
	size_t total;
};

static void on_block(const struct pool_block *blk, void *arg)
{
	struct walk *w = arg;
	w->total++;
	for (size_t i = 0; i < w->n; i++) {
		if (w->want[i] == blk->start) {
			cr_assert_eq(blk->size, w->sizes[i]);
			cr_assert(blk->live);
			w->seen++;
		}
	}
}

Test(pool_foreach, visits_every_live_block_once)
{
	enum { N = 300 };
	void *blocks[N];
	size_t sizes[N];
	for (size_t i = 0; i < N; i++) {
		sizes[i] = (i * 37) % 1500;
		blocks[i] = pool_malloc(sizes[i]);
	}
	struct walk w = { blocks, sizes, N, 0, 0 };
	size_t visited = pool_foreach_live(on_block, &w);
	cr_assert_eq(w.seen, N);
	cr_assert_eq(visited, w.total);
	cr_assert_eq(visited, N);
	for (size_t i = 0; i < N; i += 2)
		pool_free(blocks[i]);
	w.seen = w.total = 0;
	visited = pool_foreach_live(on_block, &w);
	cr_assert_eq(w.seen, N / 2);
	cr_assert_eq(visited, N / 2);
	for (size_t i = 1; i < N; i += 2)
		pool_free(blocks[i]);
	cr_assert_eq(pool_foreach_live(on_block, &w), 0);
}

struct ranges {
	uintptr_t addr;
	bool covered;
};

static void on_range(uintptr_t lo, uintptr_t hi, void *arg)
{
	struct ranges *r = arg;
	cr_assert_lt(lo, hi);
	if (r->addr >= lo && r->addr < hi)
		r->covered = true;
}

Test(pool_foreach, own_ranges_cover_arenas_but_not_the_stack)
{
	void *p = pool_malloc(100);
	struct ranges r = { (uintptr_t)p, false };
	pool_foreach_own_range(on_range, &r);
	cr_assert(r.covered);
	int local = 0;
	r = (struct ranges){ (uintptr_t)&local, false };
	pool_foreach_own_range(on_range, &r);
	cr_assert_not(r.covered);
	pool_free(p);
}
