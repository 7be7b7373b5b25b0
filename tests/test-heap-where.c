/*
 * test-heap-where.c: pool_lookup_where, the leak scan's lookup: it agrees
 * with pool_lookup on start, size and usable size for small and large
 * blocks, rejects one-past-the-end, freed and foreign addresses, and names
 * a small block's pool and index so that blocks of one pool share the key
 * and their indexes grow with their addresses.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "pool.h"

static int static_word = 5;

Test(pool_lookup_where, agrees_with_pool_lookup)
{
	static const size_t sizes[] = { 0, 1, 40, 128, 512, 513, 5000, 70000 };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];
		char *p = pool_malloc(n);
		cr_assert_not_null(p);
		struct pool_block b;
		struct pool_where w;
		const char *in = n > 1 ? p + n - 1 : p;
		cr_assert(pool_lookup(p, &b));
		cr_assert(pool_lookup_where(in, &w), "size %zu", n);
		cr_assert_eq(w.start, (uintptr_t)p);
		cr_assert_eq(w.size, n);
		cr_assert_eq(w.usable, b.usable);
		cr_assert_eq(w.pool == NULL, b.large, "size %zu", n);
		cr_assert_not(pool_lookup_where(p + (n ? n : 1), &w), "size %zu", n);
		pool_free(p);
		cr_assert_not(pool_lookup_where(p, &w), "size %zu", n);
	}
	struct pool_where w;
	cr_assert_not(pool_lookup_where(&static_word, &w));
	cr_assert_not(pool_lookup_where(NULL, &w));
}

Test(pool_lookup_where, blocks_of_a_pool_share_its_key_in_address_order)
{
	enum { N = 1000 };
	static void *blocks[N];
	for (int i = 0; i < N; i++) {
		blocks[i] = pool_malloc(96);
		cr_assert_not_null(blocks[i]);
	}
	unsigned pairs = 0;
	for (int i = 0; i < N; i++) {
		struct pool_where a;
		cr_assert(pool_lookup_where(blocks[i], &a));
		cr_assert_not_null(a.pool);
		cr_assert_eq(a.start, (uintptr_t)blocks[i]);
		for (int j = i + 1; j < N && j < i + 8; j++) {
			struct pool_where b;
			cr_assert(pool_lookup_where((char *)blocks[j] + 50, &b));
			uintptr_t pa = (uintptr_t)a.pool, pb = (uintptr_t)b.pool;
			if (pa != pb)
				continue;
			pairs++;
			/* same pool: the index difference is the distance in blocks */
			int64_t d = (int64_t)b.start - (int64_t)a.start;
			cr_assert_eq(d, ((int64_t)b.idx - (int64_t)a.idx) * (int64_t)a.usable);
		}
	}
	cr_assert_gt(pairs, 0u, "1000 blocks of 96 bytes share no pool");
	for (int i = 0; i < N; i++)
		pool_free(blocks[i]);
}
