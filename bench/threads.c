/*
 * threads: two threads churn small blocks and free each other's: each
 * allocates into a ring that the other thread drains.  N allocations per
 * thread (default 5 million).  Usage: threads [N]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define RING 1024

struct ring {
	_Atomic(void *) slot[RING];
};

static struct ring rings[2];
static long per_thread;

static void *worker(void *arg)
{
	int self = (int)(intptr_t)arg;
	struct ring *mine = &rings[self];
	struct ring *theirs = &rings[1 - self];
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
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (int r = 0; r < 2; r++)
		for (int i = 0; i < RING; i++)
			free(atomic_load(&rings[r].slot[i]));
	printf("threads: %ld allocations per thread\n", per_thread);
	return 0;
}
