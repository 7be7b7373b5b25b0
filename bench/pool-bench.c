/*
 * pool-bench.c: small-object churn through memprof's pool allocator,
 * compared with glibc's malloc (and mimalloc and jemalloc when their
 * shared libraries are installed: they are loaded with dlopen, so the
 * bench builds without them).  Entry point: main().
 *
 * The workload: a sliding window of live blocks; each operation frees the
 * oldest block of the window and allocates a new one of a size drawn from
 * 16..MAX_SIZE bytes (precomputed, the same sequence for every allocator),
 * touching its first and last byte.  Run in one thread, then in two
 * threads (each with its own window and half of the operations).
 *
 *     pool-bench [OPERATIONS [WINDOW [MAX_SIZE]]]   (default 10000000 10000 512)
 *
 * MAX_SIZE 4096 takes in the medium size classes too.
 *
 * Prints a table of wall times and the ratio to glibc (below 1: faster).
 * The glibc rows call __libc_malloc/__libc_free, so they stay glibc's even
 * when another allocator is preloaded: jemalloc cannot be dlopen'ed (its
 * TLS is initial-exec), so to include it run
 *     LD_PRELOAD=libjemalloc.so.2 pool-bench
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"

struct allocator {
	const char *name;
	void *(*alloc)(size_t);
	void (*release)(void *);
	void (*thread_done)(void);
};

void *__libc_malloc(size_t size);
void __libc_free(void *ptr);

static void pool_release(void *p)
{
	pool_free(p);
}

#define NSIZES 65536u
static uint16_t sizes[NSIZES];

struct job {
	const struct allocator *a;
	size_t ops;
	size_t window;
	size_t offset;
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	void **win = calloc(j->window, sizeof(void *));
	if (!win)
		return NULL;
	for (size_t i = 0; i < j->ops; i++) {
		size_t slot = i % j->window;
		if (win[slot])
			j->a->release(win[slot]);
		size_t n = sizes[(i + j->offset) % NSIZES];
		unsigned char *p = j->a->alloc(n);
		p[0] = (unsigned char)i;
		p[n - 1] = (unsigned char)i;
		win[slot] = p;
	}
	for (size_t i = 0; i < j->window; i++)
		if (win[i])
			j->a->release(win[i]);
	free(win);
	if (j->a->thread_done)
		j->a->thread_done();
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double run(const struct allocator *a, unsigned threads, size_t ops, size_t window)
{
	pthread_t t[2];
	struct job jobs[2];
	double start = now();
	for (unsigned i = 0; i < threads; i++) {
		jobs[i] = (struct job){ a, ops / threads, window, i * 7919 };
		pthread_create(&t[i], NULL, run_job, &jobs[i]);
	}
	for (unsigned i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	return now() - start;
}

static bool load(struct allocator *a, const char *name, const char *lib, const char *alloc,
		 const char *release)
{
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return false;
	a->name = name;
	a->alloc = (void *(*)(size_t))dlsym(h, alloc);
	a->release = (void (*)(void *))dlsym(h, release);
	a->thread_done = NULL;
	return a->alloc && a->release;
}

int main(int argc, char **argv)
{
	size_t ops = argc > 1 ? strtoull(argv[1], NULL, 0) : 10000000;
	size_t window = argc > 2 ? strtoull(argv[2], NULL, 0) : 10000;
	size_t max_size = argc > 3 ? strtoull(argv[3], NULL, 0) : 512;
	if (ops == 0 || window == 0 || max_size < 16 || max_size > UINT16_MAX) {
		fprintf(stderr, "usage: pool-bench [OPERATIONS [WINDOW [MAX_SIZE]]]\n");
		return 2;
	}
	uint64_t s = 88172645463325252ull;
	for (size_t i = 0; i < NSIZES; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		sizes[i] = (uint16_t)(16 + s % (max_size - 16 + 1));
	}
	struct allocator all[4] = {
		{ "glibc", __libc_malloc, __libc_free, NULL },
		{ "memprof pool", pool_malloc, pool_release, pool_thread_exit },
	};
	size_t n = 2;
	if (load(&all[n], "mimalloc", "libmimalloc.so.2", "mi_malloc", "mi_free"))
		n++;
	if (load(&all[n], "jemalloc", "libjemalloc.so.2", "malloc", "free"))
		n++;
	else
		printf("(jemalloc not loaded; try LD_PRELOAD=libjemalloc.so.2)\n");

	printf("small-object churn: %zu operations, window %zu, sizes 16..%zu\n\n", ops, window,
	       max_size);
	printf("%-10s %-14s %10s %10s %10s\n", "threads", "allocator", "time (s)", "Mops/s", "vs glibc");
	for (unsigned threads = 1; threads <= 2; threads++) {
		double base = 0;
		for (size_t i = 0; i < n; i++) {
			run(&all[i], threads, ops / 10, window); /* warm-up */
			double best = 0;
			for (int rep = 0; rep < 3; rep++) {
				double t = run(&all[i], threads, ops, window);
				if (rep == 0 || t < best)
					best = t;
			}
			if (i == 0)
				base = best;
			printf("%-10u %-14s %10.3f %10.1f %10.2f\n", threads, all[i].name, best,
			       (double)ops / best / 1e6, best / base);
		}
	}
	return 0;
}
