/*
 * test-tracer-stacks.c: the stack interning table: ids of equal stacks are
 * equal, stacks read back through their parents, every node is reported
 * exactly once even when many threads intern the same stacks at once, and
 * the table keeps working across its growth.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "stacks.h"

/* Nodes reported through the callback, by id. */
#define MAX_NODES (1u << 20)
struct seen {
	pthread_mutex_t lock;
	uint32_t *parent;
	uint64_t *ip;
	unsigned *times;
	size_t count;
};

static struct seen seen;

static void seen_init(void)
{
	pthread_mutex_init(&seen.lock, NULL);
	seen.parent = calloc(MAX_NODES, sizeof(*seen.parent));
	seen.ip = calloc(MAX_NODES, sizeof(*seen.ip));
	seen.times = calloc(MAX_NODES, sizeof(*seen.times));
	seen.count = 0;
	cr_assert(seen.parent && seen.ip && seen.times);
}

static void seen_fini(void)
{
	free(seen.parent);
	free(seen.ip);
	free(seen.times);
}

static void on_new(void *arg, uint32_t id, uint32_t parent, uint64_t ip)
{
	cr_assert_lt(id, MAX_NODES);
	pthread_mutex_lock(&seen.lock);
	seen.parent[id] = parent;
	seen.ip[id] = ip;
	seen.times[id]++;
	seen.count++;
	pthread_mutex_unlock(&seen.lock);
}

/* Reads a stack back from the reported nodes, innermost first. */
static size_t walk(uint32_t id, uint64_t *out, size_t cap)
{
	size_t n = 0;
	while (id != 0) {
		cr_assert_lt(n, cap, "cycle in the tree");
		cr_assert_eq(seen.times[id], 1, "node %u reported %u times", id, seen.times[id]);
		out[n++] = seen.ip[id];
		id = seen.parent[id];
	}
	return n;
}

/* A deterministic family of stacks that share callers: stack k has depth
 * 4 + k % 29, its outer frames common to many stacks. */
static size_t make_stack(unsigned k, uint64_t *ips)
{
	size_t depth = 4 + k % 29;
	for (size_t i = 0; i < depth; i++) {
		size_t from_outer = depth - 1 - i;
		/* outer frames depend on few bits of k, inner ones on more */
		unsigned key = from_outer < 3 ? 0 : k % (from_outer * 7u);
		ips[i] = 0x400000u + from_outer * 0x1000u + key * 16u;
	}
	return depth;
}

Test(tracer_stacks, equal_stacks_get_equal_ids_and_read_back)
{
	seen_init();
	struct stack_table t;
	cr_assert_eq(stack_table_init(&t), 0);
	uint64_t a[] = { 0x10, 0x20, 0x30 }, b[] = { 0x11, 0x20, 0x30 };
	uint32_t ia = stack_table_intern(&t, NULL, a, 3, on_new, NULL);
	uint32_t ib = stack_table_intern(&t, NULL, b, 3, on_new, NULL);
	cr_assert_neq(ia, 0);
	cr_assert_neq(ia, ib);
	cr_assert_eq(stack_table_intern(&t, NULL, a, 3, on_new, NULL), ia);
	cr_assert_eq(seen.count, 4, "the two callers are shared");
	cr_assert_eq(stack_table_count(&t), 4);
	uint64_t back[8];
	cr_assert_eq(walk(ia, back, 8), 3);
	cr_assert_eq(memcmp(back, a, sizeof(a)), 0);
	cr_assert_eq(walk(ib, back, 8), 3);
	cr_assert_eq(memcmp(back, b, sizeof(b)), 0);
	cr_assert_eq(stack_table_intern(&t, NULL, a, 0, on_new, NULL), 0, "empty stack");
	stack_table_finish(&t);
	seen_fini();
}

Test(tracer_stacks, the_per_thread_cache_gives_the_same_ids)
{
	seen_init();
	struct stack_table t;
	cr_assert_eq(stack_table_init(&t), 0);
	static struct stack_cache cache;
	cache.n = 0;
	uint64_t ips[64];
	uint32_t without[500];
	for (unsigned k = 0; k < 500; k++) {
		size_t n = make_stack(k, ips);
		without[k] = stack_table_intern(&t, NULL, ips, n, on_new, NULL);
	}
	size_t nodes = seen.count;
	for (unsigned k = 0; k < 500; k++) {
		unsigned j = (k * 37) % 500;
		size_t n = make_stack(j, ips);
		cr_assert_eq(stack_table_intern(&t, &cache, ips, n, on_new, NULL), without[j]);
	}
	cr_assert_eq(seen.count, nodes, "no node created twice");
	/* stacks that come back often, in a few interleaved patterns: the
	 * memo of recent stacks answers most of them */
	for (unsigned r = 0; r < 20000; r++) {
		unsigned j = r % 3 == 0 ? (r / 3) % 5 : r % 3 == 1 ? 100 + (r * 7) % 11 : r % 500;
		size_t n = make_stack(j, ips);
		cr_assert_eq(stack_table_intern(&t, &cache, ips, n, on_new, NULL), without[j],
			     "round %u stack %u", r, j);
	}
	cr_assert_eq(seen.count, nodes, "no node created twice");
	stack_table_finish(&t);
	seen_fini();
}

Test(tracer_stacks, deep_stacks_keep_their_innermost_frames)
{
	seen_init();
	struct stack_table t;
	cr_assert_eq(stack_table_init(&t), 0);
	static uint64_t ips[STACK_DEPTH_MAX + 50];
	for (size_t i = 0; i < STACK_DEPTH_MAX + 50; i++)
		ips[i] = 0x1000 + i;
	uint32_t id = stack_table_intern(&t, NULL, ips, STACK_DEPTH_MAX + 50, on_new, NULL);
	static uint64_t back[STACK_DEPTH_MAX + 50];
	cr_assert_eq(walk(id, back, STACK_DEPTH_MAX + 50), STACK_DEPTH_MAX);
	cr_assert_eq(back[0], 0x1000);
	stack_table_finish(&t);
	seen_fini();
}

struct worker {
	struct stack_table *t;
	unsigned first, count;
	uint32_t *ids;
};

static void *intern_many(void *arg)
{
	struct worker *w = arg;
	struct stack_cache *cache = calloc(1, sizeof(*cache));
	uint64_t ips[64];
	for (unsigned i = 0; i < w->count; i++) {
		unsigned k = w->first + i;
		size_t n = make_stack(k, ips);
		w->ids[i] = stack_table_intern(w->t, cache, ips, n, on_new, NULL);
		/* a frame with thousands of callees: its children beyond the
		 * first few go to the hash, which grows meanwhile */
		uint64_t wide[2] = { 0x900000u + (uint64_t)k * 16u, 0x800000u };
		cr_assert_neq(stack_table_intern(w->t, cache, wide, 2, on_new, NULL), 0);
	}
	free(cache);
	return NULL;
}

Test(tracer_stacks, many_threads_intern_the_same_stacks_consistently)
{
	seen_init();
	struct stack_table t;
	cr_assert_eq(stack_table_init(&t), 0);
	enum { THREADS = 8, STACKS = 20000 };
	pthread_t th[THREADS];
	struct worker w[THREADS];
	/* every thread interns all stacks, starting at a different place, so
	 * that they race to insert the same nodes while the table grows */
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .t = &t, .first = (unsigned)i * (STACKS / THREADS),
					.count = STACKS };
		w[i].ids = calloc(STACKS, sizeof(uint32_t));
		pthread_create(&th[i], NULL, intern_many, &w[i]);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	cr_assert_gt(t.n_tables, 1, "the table grew during the test");
	cr_assert_eq(seen.count, stack_table_count(&t));

	uint32_t *by_stack = calloc(STACKS * 2, sizeof(uint32_t));
	uint64_t ips[64], back[64];
	for (int i = 0; i < THREADS; i++) {
		for (unsigned j = 0; j < STACKS; j++) {
			unsigned k = w[i].first + j;
			uint32_t id = w[i].ids[j];
			cr_assert_neq(id, 0);
			if (by_stack[k] == 0)
				by_stack[k] = id;
			cr_assert_eq(by_stack[k], id, "stack %u: two ids", k);
			size_t n = make_stack(k, ips);
			cr_assert_eq(walk(id, back, 64), n);
			cr_assert_eq(memcmp(back, ips, n * sizeof(uint64_t)), 0);
			cr_assert_eq(stack_table_lookup(&t, seen.parent[id], seen.ip[id]), id);
		}
		free(w[i].ids);
	}
	free(by_stack);

	/* foreach reports every node once, with the same key */
	size_t reported = seen.count;
	memset(seen.times, 0, MAX_NODES * sizeof(unsigned));
	seen.count = 0;
	stack_table_foreach(&t, on_new, NULL);
	cr_assert_eq(seen.count, reported);
	for (size_t id = 1; id <= reported; id++)
		cr_assert_eq(seen.times[id], 1, "node %zu", id);
	stack_table_finish(&t);
	seen_fini();
}

static void count_range(uintptr_t lo, uintptr_t hi, void *arg)
{
	cr_assert_lt(lo, hi);
	*(size_t *)arg += 1;
}

Test(tracer_stacks, own_ranges_cover_every_table)
{
	seen_init();
	struct stack_table t;
	cr_assert_eq(stack_table_init(&t), 0);
	uint64_t ip[1];
	for (unsigned i = 0; i < 10000; i++) {
		ip[0] = 0x1000 + i;
		stack_table_intern(&t, NULL, ip, 1, on_new, NULL);
	}
	size_t ranges = 0;
	stack_table_foreach_range(&t, count_range, &ranges);
	/* every hash table, the node directory and its one chunk of nodes,
	 * and the one slab of node extensions (the root's first children) */
	cr_assert_eq(ranges, t.n_tables + 3);
	cr_assert_not_null(t.ext_slabs);
	cr_assert_gt(t.n_tables, 1);
	stack_table_finish(&t);
	seen_fini();
}
