/*
 * test-heap-stats.c: the allocator's statistics (pool_get_stats,
 * pool_stats_print) and the arena life cycle: pools carved lazily, arenas
 * returned to the OS when empty, one kept in reserve.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool.h"

Test(pool_stats, count_blocks_bytes_and_quantization_per_class)
{
	struct pool_stats before, after;
	pool_get_stats(&before);
	enum { N = 1000 };
	void *small[N], *large[10];
	for (size_t i = 0; i < N; i++)
		small[i] = pool_malloc(100); /* class 6, 112 bytes */
	for (size_t i = 0; i < 10; i++)
		large[i] = pool_malloc(POOL_SMALL_MAX + 1000 + i);
	pool_get_stats(&after);
	const struct pool_class_stats *b = &before.classes[6], *a = &after.classes[6];
	cr_assert_eq(a->block_size, 112);
	cr_assert_eq(a->blocks_in_use - b->blocks_in_use, N);
	cr_assert_geq(a->pools, N / (16384 / 112));
	cr_assert_eq((a->blocks_in_use + a->blocks_available) * 112, a->pools * (16384 / 112) * 112);
	cr_assert_eq(after.bytes_in_small_blocks - before.bytes_in_small_blocks, N * 100);
	cr_assert_eq(after.bytes_quantization - before.bytes_quantization, N * 12);
	cr_assert_eq(after.large_blocks - before.large_blocks, 10);
	cr_assert_eq(after.large_bytes - before.large_bytes, 10 * (POOL_SMALL_MAX + 1000) + 45);
	cr_assert_geq(after.arenas_current, 1);
	cr_assert_geq(after.arenas_highwater, after.arenas_current);
	for (size_t i = 0; i < N; i++)
		pool_free(small[i]);
	for (size_t i = 0; i < 10; i++)
		pool_free(large[i]);
	pool_get_stats(&after);
	cr_assert_eq(after.classes[6].blocks_in_use, before.classes[6].blocks_in_use);
	cr_assert_eq(after.large_blocks, before.large_blocks);
	cr_assert_eq(after.bytes_in_small_blocks, before.bytes_in_small_blocks);
}

/* Each class fills pools of 16 KiB: 12 MiB of blocks need 12+ arenas. */
static void *churn_arenas(void *arg)
{
	size_t n = 12 * 1024 * 1024 / 160; /* 160: the mean block size */
	void **blocks = malloc(n * sizeof(void *));
	for (size_t i = 0; i < n; i++)
		blocks[i] = pool_malloc(64 + (i % 4) * 64);
	struct pool_stats *mid = arg;
	pool_get_stats(mid);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(pool_free(blocks[i]), POOL_FREE_OK);
	free(blocks);
	pool_thread_exit();
	return NULL;
}

Test(pool_stats, empty_arenas_go_back_to_the_os_but_one)
{
	struct pool_stats before, mid, after;
	pool_get_stats(&before);
	pthread_t t;
	pthread_create(&t, NULL, churn_arenas, &mid);
	pthread_join(t, NULL);
	pool_get_stats(&after);
	size_t made = mid.arenas_allocated - before.arenas_allocated;
	cr_assert_geq(made, 12);
	cr_assert_geq(mid.arenas_highwater, before.arenas_current + 12);
	cr_assert_leq(after.arenas_current, before.arenas_current + 1);
	cr_assert_geq(after.arenas_reclaimed - before.arenas_reclaimed, made - 1);
	cr_assert_eq(after.arenas_allocated - after.arenas_reclaimed, after.arenas_current);
	/* The freed pools are gone from the classes too. */
	for (unsigned c = 0; c < POOL_NUM_CLASSES; c++)
		cr_assert_eq(after.classes[c].blocks_in_use, before.classes[c].blocks_in_use);
}

Test(pool_stats, a_thread_that_keeps_running_frees_its_empty_pools)
{
	struct pool_stats before, after;
	pool_get_stats(&before);
	size_t n = 6 * 1024 * 1024 / 128;
	void **blocks = malloc(n * sizeof(void *));
	for (size_t i = 0; i < n; i++)
		blocks[i] = pool_malloc(128);
	for (size_t i = 0; i < n; i++)
		pool_free(blocks[i]);
	free(blocks);
	pool_get_stats(&after);
	/* At most the allocation pool's arena and the reserve stay. */
	cr_assert_leq(after.arenas_current, before.arenas_current + 2);
	cr_assert_geq(after.arenas_reclaimed - before.arenas_reclaimed, 4);
}

static size_t parse_after(const char *text, const char *label)
{
	const char *s = strstr(text, label);
	cr_assert_not_null(s, "missing %s", label);
	s = strchr(s, '=');
	cr_assert_not_null(s);
	return strtoul(s + 1, NULL, 10);
}

Test(pool_stats, print_writes_a_table_matching_the_numbers)
{
	void *keep[50];
	for (int i = 0; i < 50; i++)
		keep[i] = pool_malloc(i < 40 ? 24 : 2000);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pool_stats_print(fds[1]);
	close(fds[1]);
	char text[16384];
	size_t len = 0;
	ssize_t n;
	while ((n = read(fds[0], text + len, sizeof(text) - 1 - len)) > 0)
		len += (size_t)n;
	close(fds[0]);
	text[len] = '\0';
	struct pool_stats st;
	pool_get_stats(&st);
	cr_assert_eq(parse_after(text, "# arenas allocated total"), st.arenas_allocated);
	cr_assert_eq(parse_after(text, "# arenas allocated current"), st.arenas_current);
	cr_assert_eq(parse_after(text, "# large blocks"), st.large_blocks);
	cr_assert_eq(parse_after(text, "# bytes in allocated blocks"), st.bytes_in_small_blocks);
	/* The class row of 32-byte blocks: "    1     32   pools   in use   avail". */
	const char *row = strstr(text, "\n    1     32");
	cr_assert_not_null(row, "%s", text);
	unsigned long cls, size, pools, used, avail;
	cr_assert_eq(sscanf(row, "%lu %lu %lu %lu %lu", &cls, &size, &pools, &used, &avail), 5);
	cr_assert_eq(pools, st.classes[1].pools);
	cr_assert_eq(used, st.classes[1].blocks_in_use);
	cr_assert_eq(avail, st.classes[1].blocks_available);
	cr_assert_geq(used, 40);
	for (int i = 0; i < 50; i++)
		pool_free(keep[i]);
}
