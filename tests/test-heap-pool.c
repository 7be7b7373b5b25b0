/*
 * test-heap-pool.c: the pool allocator's malloc family against glibc's
 * semantics: size classes and alignment, malloc(0), calloc, realloc,
 * reallocarray, the memalign family, valloc/pvalloc, usable sizes, and
 * errno in every failure.  Where glibc decides (memalign's treatment of odd
 * alignments), the test asks the C library of this machine and compares.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool-private.h"

/* Under valgrind or AddressSanitizer the C library's allocator is replaced
 * by theirs, so comparisons with "glibc" are skipped (and valgrind's
 * memalign stops the whole run on alignments near SIZE_MAX). */
#if !defined(__SANITIZE_ADDRESS__) && defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang's spelling */
#define __SANITIZE_ADDRESS__ 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}
#define SANITIZED true
#else
#define SANITIZED false
#endif

static bool glibc_replaced(void)
{
	const char *pre = getenv("LD_PRELOAD");
	return SANITIZED || (pre && strstr(pre, "vgpreload"));
}

static void fill_pattern(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed * 31 + i * 7);
}

static bool check_pattern(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(seed * 31 + i * 7))
			return false;
	return true;
}

Test(pool_classes, every_size_maps_to_the_smallest_class_that_holds_it)
{
	for (size_t size = 1; size <= POOL_SMALL_MAX; size++) {
		unsigned c = pool_size_class(size);
		cr_assert_lt(c, POOL_NUM_CLASSES);
		cr_assert_geq(pool_class_size(c), size);
		cr_assert_eq(pool_class_size(c) % POOL_ALIGNMENT, 0);
		/* the smallest: the class below does not hold it */
		cr_assert(c == 0 || pool_class_size(c - 1) < size, "size %zu class %u", size, c);
		if (size <= POOL_FINE_MAX)
			cr_assert_lt(pool_class_size(c) - size, 16, "size %zu class %u", size, c);
		else /* rounding wastes at most 1/9 of a medium block */
			cr_assert_leq((pool_class_size(c) - size) * 9, pool_class_size(c),
				      "size %zu class %u", size, c);
	}
	cr_assert_eq(pool_size_class(0), 0);
	cr_assert_eq(pool_size_class(POOL_FINE_MAX), POOL_FINE_CLASSES - 1);
	cr_assert_eq(pool_size_class(POOL_FINE_MAX + 1), POOL_FINE_CLASSES);
	cr_assert_eq(pool_class_size(POOL_FINE_CLASSES - 1), POOL_FINE_MAX);
	cr_assert_eq(pool_class_size(POOL_NUM_CLASSES - 1), POOL_SMALL_MAX);
	for (unsigned c = 0; c < POOL_NUM_CLASSES; c++)
		cr_assert_eq(pool_size_class(pool_class_size(c)), c, "class %u", c);
}

/* The pool size of a class, as pool-arena.c carves it. */
static size_t class_pool_size(unsigned c)
{
	return c < POOL_FINE_CLASSES ? POOL_POOL_SIZE : POOL_MEDIUM_POOL_SIZE;
}

Test(pool_classes, block_index_without_division_is_exact)
{
	for (unsigned c = 0; c < POOL_NUM_CLASSES; c++)
		for (uintptr_t off = 0; off < class_pool_size(c); off++)
			cr_assert_eq(pool_block_index(off, c), off / pool_class_size(c),
				     "class %u offset %zu", c, (size_t)off);
}

Test(pool_classes, pools_waste_little_after_their_last_block)
{
	for (unsigned c = 0; c < POOL_NUM_CLASSES; c++) {
		size_t ps = class_pool_size(c), bs = pool_class_size(c);
		size_t most = c < POOL_FINE_CLASSES ? POOL_MAX_BLOCKS : POOL_MEDIUM_MAX_BLOCKS;
		cr_assert_leq(ps / bs, most, "class %u", c);
		if (c >= POOL_FINE_CLASSES)
			cr_assert_leq((ps % bs) * 25, ps, "class %u", c); /* 4% */
	}
}

Test(pool_classes, blocks_are_16_aligned_with_the_class_usable_size)
{
	void *blocks[POOL_SMALL_MAX + 1];
	for (size_t size = 0; size <= POOL_SMALL_MAX; size++) {
		void *p = pool_malloc(size);
		cr_assert_not_null(p);
		cr_assert_eq((uintptr_t)p % POOL_ALIGNMENT, 0);
		cr_assert_eq(pool_usable_size(p), pool_class_size(pool_size_class(size)));
		fill_pattern(p, size, (unsigned)size);
		blocks[size] = p;
	}
	for (size_t size = 0; size <= POOL_SMALL_MAX; size++) {
		cr_assert(check_pattern(blocks[size], size, (unsigned)size), "size %zu", size);
		cr_assert_eq(pool_free(blocks[size]), POOL_FREE_OK);
	}
	void *big = pool_malloc(100000);
	cr_assert_not_null(big);
	cr_assert_eq((uintptr_t)big % POOL_ALIGNMENT, 0);
	cr_assert_geq(pool_usable_size(big), 100000);
	cr_assert_eq(pool_free(big), POOL_FREE_OK);
}

Test(pool_malloc, malloc_zero_gives_unique_minimal_blocks)
{
	void *a = pool_malloc(0), *b = pool_malloc(0);
	cr_assert_not_null(a);
	cr_assert_not_null(b);
	cr_assert_neq(a, b);
	struct pool_block blk;
	cr_assert(pool_lookup(a, &blk));
	cr_assert_eq(blk.size, 0);
	cr_assert_eq(blk.start, a);
	cr_assert_eq(pool_free(a), POOL_FREE_OK);
	cr_assert_eq(pool_free(b), POOL_FREE_OK);
}

Test(pool_malloc, huge_requests_fail_with_enomem)
{
	errno = 0;
	cr_assert_null(pool_malloc(SIZE_MAX));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(pool_malloc(PTRDIFF_MAX));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(pool_memalign(64, SIZE_MAX));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(pool_valloc(SIZE_MAX));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(pool_pvalloc(SIZE_MAX));
	cr_assert_eq(errno, ENOMEM);
}

Test(pool_malloc, free_null_is_reported_and_harmless)
{
	cr_assert_eq(pool_free(NULL), POOL_FREE_NULL);
	cr_assert_eq(pool_usable_size(NULL), 0);
}

Test(pool_calloc, overflow_fails_with_enomem)
{
	errno = 0;
	cr_assert_null(pool_calloc(SIZE_MAX / 2, 3));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(pool_calloc(SIZE_MAX, SIZE_MAX));
	cr_assert_eq(errno, ENOMEM);
}

Test(pool_calloc, zeroes_reused_small_and_large_blocks)
{
	for (size_t size = 1; size <= 2048; size += 37) {
		unsigned char *p = pool_malloc(size);
		cr_assert_not_null(p);
		memset(p, 0xa5, pool_usable_size(p));
		pool_free(p);
		unsigned char *q = pool_calloc(1, size);
		cr_assert_not_null(q);
		for (size_t i = 0; i < pool_usable_size(q); i++)
			cr_assert_eq(q[i], 0, "size %zu byte %zu", size, i);
		pool_free(q);
	}
	void *z = pool_calloc(0, 0);
	cr_assert_not_null(z);
	pool_free(z);
}

Test(pool_realloc, null_is_malloc_and_zero_frees)
{
	void *p = pool_realloc(NULL, 30);
	cr_assert_not_null(p);
	cr_assert_eq(pool_usable_size(p), 32);
	errno = 0;
	cr_assert_null(pool_realloc(p, 0));
	cr_assert_eq(errno, 0);
	struct pool_block blk;
	cr_assert_not(pool_lookup(p, &blk));
	cr_assert_eq(pool_free(p), POOL_FREE_DOUBLE);
	void *z = pool_realloc(NULL, 0);
	cr_assert_not_null(z);
	cr_assert_eq(pool_free(z), POOL_FREE_OK);

	void *big = pool_malloc(4000);
	cr_assert_null(pool_realloc(big, 0));
	cr_assert_eq(pool_free(big), POOL_FREE_DOUBLE);
}

Test(pool_realloc, keeps_content_across_every_kind_of_move)
{
	static const size_t steps[] = { 1, 16, 17, 100, 512, 513, 4000, 70000, 300, 0 + 5, 200000, 8 };
	size_t cur = 10;
	unsigned char *p = pool_malloc(cur);
	fill_pattern(p, cur, 3);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		size_t n = steps[i];
		unsigned char *q = pool_realloc(p, n);
		cr_assert_not_null(q);
		size_t keep = cur < n ? cur : n;
		cr_assert(check_pattern(q, keep, 3), "realloc %zu -> %zu", cur, n);
		struct pool_block blk;
		cr_assert(pool_lookup(q, &blk));
		cr_assert_eq(blk.size, n);
		fill_pattern(q, n, 3);
		p = q;
		cur = n;
	}
	cr_assert_eq(pool_free(p), POOL_FREE_OK);
}

Test(pool_realloc, stays_in_place_within_the_size_class)
{
	void *p = pool_malloc(33);
	void *q = pool_realloc(p, 48);
	cr_assert_eq(p, q);
	struct pool_block blk;
	cr_assert(pool_lookup(q, &blk));
	cr_assert_eq(blk.size, 48);
	void *r = pool_realloc(q, 34);
	cr_assert_eq(r, q);
	pool_free(r);
}

Test(pool_realloc, failure_leaves_the_block_intact)
{
	for (size_t start = 40; start <= 4000; start += 3960) {
		unsigned char *p = pool_malloc(start);
		fill_pattern(p, start, 9);
		errno = 0;
		cr_assert_null(pool_realloc(p, SIZE_MAX));
		cr_assert_eq(errno, ENOMEM);
		cr_assert(check_pattern(p, start, 9));
		struct pool_block blk;
		cr_assert(pool_lookup(p, &blk));
		cr_assert_eq(blk.size, start);
		cr_assert_eq(pool_free(p), POOL_FREE_OK);
	}
}

Test(pool_realloc, reallocarray_checks_overflow)
{
	unsigned char *p = pool_malloc(20);
	fill_pattern(p, 20, 1);
	errno = 0;
	cr_assert_null(pool_reallocarray(p, SIZE_MAX / 2, 3));
	cr_assert_eq(errno, ENOMEM);
	cr_assert(check_pattern(p, 20, 1));
	unsigned char *q = pool_reallocarray(p, 10, 30);
	cr_assert_not_null(q);
	cr_assert(check_pattern(q, 20, 1));
	cr_assert_geq(pool_usable_size(q), 300);
	pool_free(q);
}

Test(pool_memalign, posix_memalign_rejects_bad_alignments_without_errno)
{
	static const size_t bad[] = { 0, 1, 3, 4, 12, 24, 48, 100, SIZE_MAX };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *out = (void *)0x1234, *gout = NULL;
		errno = 4321;
		int rc = pool_posix_memalign(&out, bad[i], 10);
		cr_assert_eq(rc, EINVAL, "alignment %zu", bad[i]);
		cr_assert_eq(errno, 4321);
		cr_assert_eq(out, (void *)0x1234);
		if (!glibc_replaced())
			cr_assert_eq(posix_memalign(&gout, bad[i], 10), rc, "glibc differs at %zu", bad[i]);
	}
}

Test(pool_memalign, posix_memalign_aligns_and_reports_enomem)
{
	static const size_t good[] = { 8, 16, 32, 64, 256, 4096, 65536 };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		for (size_t size = 0; size < 3000; size += 700) {
			void *p = NULL;
			cr_assert_eq(pool_posix_memalign(&p, good[i], size), 0);
			cr_assert_eq((uintptr_t)p % good[i], 0);
			memset(p, 1, size);
			struct pool_block blk;
			cr_assert(pool_lookup(p, &blk));
			cr_assert_eq(blk.size, size);
			cr_assert_eq(pool_free(p), POOL_FREE_OK);
		}
	}
	void *p = (void *)0x1234;
	cr_assert_eq(pool_posix_memalign(&p, 64, SIZE_MAX), ENOMEM);
	cr_assert_eq(p, (void *)0x1234);
}


/* memalign and aligned_alloc: same success/failure and errno as glibc's,
 * and at least the alignment glibc would give. */
Test(pool_memalign, memalign_and_aligned_alloc_match_glibc)
{
	static const size_t aligns[] = { 0, 1, 3, 8, 16, 24, 32, 48, 100, 4096,
					 SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 2, SIZE_MAX };
	static const size_t sizes[] = { 0, 1, 100, 600, 5000 };
	if (glibc_replaced())
		cr_skip_test("the C library's allocator is replaced (valgrind, ASan)");
	for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
		for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
			for (int fn = 0; fn < 2; fn++) {
				size_t a = aligns[i], n = sizes[j];
				errno = 0;
				void *g = fn ? aligned_alloc(a, n) : memalign(a, n);
				int gerr = errno;
				errno = 0;
				void *p = fn ? pool_aligned_alloc(a, n) : pool_memalign(a, n);
				int perr = errno;
				cr_assert_eq(p != NULL, g != NULL, "fn %d align %zu size %zu", fn, a, n);
				cr_assert_eq(perr, gerr, "fn %d align %zu size %zu", fn, a, n);
				if (p) {
					size_t want = 1;
					while (want < a && want < 4096 * 16)
						want <<= 1;
					cr_assert_eq((uintptr_t)p % want, 0);
					cr_assert_geq(pool_usable_size(p), n);
					cr_assert_eq(pool_free(p), POOL_FREE_OK);
				}
				free(g);
			}
		}
	}
}

Test(pool_memalign, valloc_and_pvalloc_are_page_aligned)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	for (size_t n = 0; n < 3 * ps; n += ps / 2 + 1) {
		void *v = pool_valloc(n), *pv = pool_pvalloc(n);
		cr_assert_not_null(v);
		cr_assert_not_null(pv);
		cr_assert_eq((uintptr_t)v % ps, 0);
		cr_assert_eq((uintptr_t)pv % ps, 0);
		cr_assert_geq(pool_usable_size(v), n);
		cr_assert_geq(pool_usable_size(pv), (n + ps - 1) / ps * ps);
		memset(pv, 7, (n + ps - 1) / ps * ps);
		cr_assert_eq(pool_free(v), POOL_FREE_OK);
		cr_assert_eq(pool_free(pv), POOL_FREE_OK);
	}
}

Test(pool_malloc, usable_size_is_zero_for_pointers_not_owned)
{
	int local = 0;
	static int global;
	void *g = malloc(10);
	cr_assert_eq(pool_usable_size(&local), 0);
	cr_assert_eq(pool_usable_size(&global), 0);
	cr_assert_eq(pool_usable_size(g), 0);
	free(g);
	char *p = pool_malloc(100);
	cr_assert_eq(pool_usable_size(p + 16), 0);
	pool_free(p);
	cr_assert_eq(pool_usable_size(p), 0);
}
