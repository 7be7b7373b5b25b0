/*
 * threads: two threads churn small blocks and free each other's: each
 * allocates into a ring that the next thread drains.  N allocations per
 * thread (default 5 million), T threads (default 2; with 1 the thread
 * drains its own ring).  With "own", each thread drains only its own ring,
 * so every block is freed by the thread that allocated it: the threads
 * share nothing, and 2 threads against 1 measures how the allocator and
 * its tracer scale.  Usage: threads [N [T [own]]]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING 1024
#define THREADS_MAX 64

struct ring {
	_Atomic(void *) slot[RING];
};

static struct ring rings[THREADS_MAX];
static long per_thread;
static int n_threads = 2;
static bool own; /* each thread frees its own blocks */

static void *worker(void *arg)
{
	int self = (int)(intptr_t)arg;
	struct ring *mine = &rings[self];
	struct ring *theirs = own ? mine : &rings[(self + 1) % n_threads];
	uint64_t x = 88172645463325252ull + (uint64_t)self;
	for (long i = 0; i < per_thread; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size_t size = 8 + (size_t)(x % 504);
		char *p = malloc(size);
		if (!p)
			abort();
		p[0] = 1;
		/* hand our block to the other thread, free what it left us */
		void *old = atomic_exchange(&mine->slot[x % RING], p);
		free(old);
		void *taken = atomic_exchange(&theirs->slot[(x >> 20) % RING], NULL);
		free(taken);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	per_thread = argc > 1 ? atol(argv[1]) : 5000000L;
	if (argc > 2)
		n_threads = atoi(argv[2]);
	if (argc > 3)
		own = strcmp(argv[3], "own") == 0;
	if (n_threads < 1 || n_threads > THREADS_MAX) {
		fprintf(stderr, "threads: 1 to %d threads\n", THREADS_MAX);
		return 2;
	}
	pthread_t t[THREADS_MAX];
	for (int i = 0; i < n_threads; i++)
		pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
	for (int i = 0; i < n_threads; i++)
		pthread_join(t[i], NULL);
	for (int r = 0; r < n_threads; r++)
		for (int i = 0; i < RING; i++)
			free(atomic_load(&rings[r].slot[i]));
	printf("threads: %ld allocations per thread, %d threads%s\n", per_thread, n_threads,
	       own ? ", own blocks" : "");
	return 0;
}
