/*
 * test-heap-threads.c: the pool allocator under threads: cross-thread
 * frees through a shared queue, threads exiting while others still hold
 * their blocks (abandoned pools, adopted or emptied later), and fork() in a
 * multi-threaded state followed by allocation in the child.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool.h"

/* ---- a shared queue of blocks --------------------------------------------- */

#define QCAP 4096

struct item {
	unsigned char *p;
	size_t size;
	unsigned char tag;
};

static struct {
	pthread_mutex_t lock;
	struct item items[QCAP];
	size_t head, count;
} q = { .lock = PTHREAD_MUTEX_INITIALIZER };

static bool q_push(struct item it)
{
	pthread_mutex_lock(&q.lock);
	bool ok = q.count < QCAP;
	if (ok) {
		q.items[(q.head + q.count) % QCAP] = it;
		q.count++;
	}
	pthread_mutex_unlock(&q.lock);
	return ok;
}

static bool q_pop(struct item *it)
{
	pthread_mutex_lock(&q.lock);
	bool ok = q.count > 0;
	if (ok) {
		*it = q.items[q.head];
		q.head = (q.head + 1) % QCAP;
		q.count--;
	}
	pthread_mutex_unlock(&q.lock);
	return ok;
}

static void release(struct item *it)
{
	for (size_t i = 0; i < it->size; i++)
		cr_assert_eq(it->p[i], it->tag, "block %p byte %zu", (void *)it->p, i);
	cr_assert_eq(pool_free(it->p), POOL_FREE_OK);
}

static uint64_t step(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t live_count(void)
{
	struct pool_stats st;
	pool_get_stats(&st);
	size_t n = st.large_blocks;
	for (unsigned c = 0; c < POOL_NUM_CLASSES; c++)
		n += st.classes[c].blocks_in_use;
	return n;
}

/* ---- stress: 4 threads, cross-thread frees, exits in the middle --------- */

struct worker {
	unsigned id;
	unsigned rounds;
};

static void *stress_worker(void *arg)
{
	struct worker *w = arg;
	uint64_t s = 0x1234567ull + w->id * 7919;
	struct item mine[64];
	size_t nmine = 0;
	for (unsigned r = 0; r < w->rounds; r++) {
		size_t size = step(&s) % 3 == 0 ? 513 + step(&s) % 3000 : step(&s) % 513;
		struct item it = { pool_malloc(size), size, (unsigned char)step(&s) };
		cr_assert_not_null(it.p);
		memset(it.p, it.tag, size);
		unsigned what = (unsigned)(step(&s) % 4);
		if (what < 2 && q_push(it))
			continue; /* someone else frees it */
		if (nmine < 64) {
			mine[nmine++] = it;
		} else {
			release(&it);
		}
		struct item other;
		if (what == 3 && q_pop(&other))
			release(&other);
		if (nmine == 64) {
			for (size_t i = 0; i < nmine; i++)
				release(&mine[i]);
			nmine = 0;
		}
	}
	/* Leave some blocks in the queue for the others: we exit holding them. */
	for (size_t i = 0; i < nmine; i++)
		if (!q_push(mine[i]))
			release(&mine[i]);
	pool_thread_exit();
	return NULL;
}

Test(pool_threads, cross_thread_frees_and_exits_keep_the_heap_whole)
{
	size_t baseline = live_count();
	for (unsigned wave = 0; wave < 3; wave++) {
		pthread_t t[4];
		struct worker w[4];
		for (unsigned i = 0; i < 4; i++) {
			w[i] = (struct worker){ wave * 4 + i, 20000 };
			pthread_create(&t[i], NULL, stress_worker, &w[i]);
		}
		for (unsigned i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
	}
	/* Blocks of exited threads, freed by the main thread: their pools
	 * were abandoned and are emptied now. */
	struct item it;
	while (q_pop(&it))
		release(&it);
	cr_assert_eq(live_count(), baseline);
	struct pool_stats st;
	pool_get_stats(&st);
	cr_assert_leq(st.arenas_current, 3, "%zu arenas still mapped", st.arenas_current);
}

/* ---- abandoned pools are adopted --------------------------------------- */

static void *leave_blocks(void *arg)
{
	void **blocks = arg;
	for (int i = 0; i < 10; i++)
		blocks[i] = pool_malloc(200);
	pool_free(blocks[2]);
	pool_free(blocks[5]); /* the head of the pool's free list */
	blocks[10] = blocks[5];
	blocks[2] = blocks[5] = NULL;
	pool_thread_exit();
	return NULL;
}

static void *take_block(void *arg)
{
	*(void **)arg = pool_malloc(200);
	pool_thread_exit();
	return NULL;
}

Test(pool_threads, a_new_thread_adopts_the_pools_of_an_exited_one)
{
	void *blocks[11];
	pthread_t t;
	pthread_create(&t, NULL, leave_blocks, blocks);
	pthread_join(t, NULL);
	/* What thread A freed last is what thread B gets first. */
	void *got;
	pthread_create(&t, NULL, take_block, &got);
	pthread_join(t, NULL);
	struct pool_block blk;
	cr_assert(pool_lookup(got, &blk));
	for (int i = 0; i < 10; i++)
		if (blocks[i])
			cr_assert_neq(blocks[i], got);
	cr_assert_eq((uintptr_t)got & ~(uintptr_t)(POOL_POOL_SIZE - 1),
		     (uintptr_t)blocks[0] & ~(uintptr_t)(POOL_POOL_SIZE - 1),
		     "thread B did not reuse thread A's pool");
	cr_assert_eq(got, blocks[10]);
	for (int i = 0; i < 10; i++)
		if (blocks[i])
			cr_assert_eq(pool_free(blocks[i]), POOL_FREE_OK);
	cr_assert_eq(pool_free(got), POOL_FREE_OK);
	cr_assert_eq(pool_free(got), POOL_FREE_DOUBLE);
}

/* ---- remote frees reach a thread that keeps allocating ------------------- */

static void *free_all(void *arg)
{
	void **blocks = arg;
	for (int i = 0; i < 2000; i++)
		cr_assert_eq(pool_free(blocks[i]), POOL_FREE_OK);
	pool_thread_exit();
	return NULL;
}

Test(pool_threads, blocks_freed_by_another_thread_are_reused_by_the_owner)
{
	static void *blocks[2000];
	for (int i = 0; i < 2000; i++)
		blocks[i] = pool_malloc(64);
	struct pool_stats before, after;
	pool_get_stats(&before);
	pthread_t t;
	pthread_create(&t, NULL, free_all, blocks);
	pthread_join(t, NULL);
	/* The owner gets them back: allocating as many again needs no new pool. */
	for (int i = 0; i < 2000; i++)
		blocks[i] = pool_malloc(64);
	pool_get_stats(&after);
	cr_assert_leq(after.classes[3].pools, before.classes[3].pools);
	cr_assert_eq(after.classes[3].blocks_in_use, before.classes[3].blocks_in_use);
	for (int i = 0; i < 2000; i++)
		pool_free(blocks[i]);
}

/* ---- fork in a multi-threaded state ------------------------------------ */

static volatile int stop_churn;

static void *churn(void *arg)
{
	uint64_t s = (uintptr_t)arg;
	void *held[32] = { 0 };
	while (!__atomic_load_n(&stop_churn, __ATOMIC_RELAXED)) {
		size_t i = step(&s) % 32;
		if (held[i]) {
			pool_free(held[i]);
			held[i] = NULL;
		} else {
			held[i] = pool_malloc(step(&s) % 2 ? step(&s) % 512 : 600 + step(&s) % 5000);
		}
		struct item it;
		if (step(&s) % 8 == 0 && q_pop(&it))
			release(&it);
		else if (step(&s) % 8 == 0) {
			struct item n = { pool_malloc(100), 100, 0x77 };
			memset(n.p, 0x77, 100);
			if (!q_push(n))
				release(&n);
		}
	}
	for (size_t i = 0; i < 32; i++)
		pool_free(held[i]);
	pool_thread_exit();
	return NULL;
}

/* The test's own queue lock must survive fork() too. */
static void q_lock(void)
{
	pthread_mutex_lock(&q.lock);
}

static void q_unlock(void)
{
	pthread_mutex_unlock(&q.lock);
}

static int child_work(void)
{
	/* Blocks made by the parent's other threads can be freed here. */
	struct item it;
	int freed = 0;
	while (freed < 100 && q_pop(&it)) {
		for (size_t i = 0; i < it.size; i++)
			if (it.p[i] != it.tag)
				return 10;
		if (pool_free(it.p) != POOL_FREE_OK)
			return 11;
		freed++;
	}
	void *blocks[3000];
	for (int i = 0; i < 3000; i++) {
		size_t n = i % 5 == 0 ? 2000 + (size_t)i : (size_t)(i % 512);
		blocks[i] = pool_malloc(n);
		if (!blocks[i])
			return 12;
		memset(blocks[i], 0x33, n);
		struct pool_block blk;
		if (!pool_lookup(blocks[i], &blk) || blk.start != blocks[i] || blk.size != n)
			return 13;
	}
	for (int i = 0; i < 3000; i++)
		if (pool_free(blocks[i]) != POOL_FREE_OK)
			return 14;
	struct pool_stats st;
	pool_get_stats(&st);
	return 0;
}

Test(pool_threads, fork_while_threads_allocate_leaves_the_child_a_working_heap)
{
	pthread_atfork(pool_fork_prepare, pool_fork_parent, pool_fork_child);
	pthread_atfork(q_lock, q_unlock, q_unlock);
	pthread_t t[3];
	for (uintptr_t i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, churn, (void *)(i * 977 + 1));
	for (int round = 0; round < 20; round++) {
		usleep(2000);
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0)
			_exit(child_work());
		int status = 0;
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFEXITED(status), "child died (signal %d)", WTERMSIG(status));
		cr_assert_eq(WEXITSTATUS(status), 0, "round %d", round);
	}
	__atomic_store_n(&stop_churn, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	struct item it;
	while (q_pop(&it))
		release(&it);
}
