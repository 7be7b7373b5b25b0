/*
 * gc-bench.c: libmemprof-heap's speed on the shapes bench/gc-bench.py
 * times in python3.  Main entry point: main.
 *
 *   full-collection   N objects in two-cycles (N/2 pairs, garbage) plus N
 *                     live objects held by one list object, then one full
 *                     collection: ns per tracked object examined (2N + 1).
 *   new-decref-tracked   mp_new + mp_decref of a one-slot tracked object
 *                     (python3: an instance of a class with __slots__).
 *   new-decref-untracked mp_new + mp_decref of an untracked object
 *                     (python3: object()).
 *
 * Usage: gc-bench [N] (default 1000000).  Prints one "name value unit"
 * line per measure; each measure is the best of several rounds.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "memprof/heap.h"

struct node {
	void *ref;
};

static void node_traverse(void *obj, mp_visit_fn visit, void *arg)
{
	visit(((struct node *)obj)->ref, arg);
}

static void node_clear(void *obj)
{
	struct node *n = obj;
	void *r = n->ref;

	n->ref = NULL;
	mp_decref(r);
}

static const struct mp_type node_type = {
	.name = "Node",
	.size = sizeof(struct node),
	.traverse = node_traverse,
	.clear = node_clear,
};

static const struct mp_type plain_type = {
	.name = "object",
	.size = 16,
};

/* A list: a growable array of references, like python3's list. */
struct list {
	size_t n;
	void **items;
};

static void list_traverse(void *obj, mp_visit_fn visit, void *arg)
{
	struct list *l = obj;

	for (size_t i = 0; i < l->n; i++)
		visit(l->items[i], arg);
}

static void list_clear(void *obj)
{
	struct list *l = obj;
	void **items = l->items;
	size_t n = l->n;

	l->items = NULL;
	l->n = 0;
	for (size_t i = 0; i < n; i++)
		mp_decref(items[i]);
	free(items);
}

static const struct mp_type list_type = {
	.name = "list",
	.size = sizeof(struct list),
	.traverse = list_traverse,
	.clear = list_clear,
};

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double full_collection(size_t n)
{
	struct list *live = mp_new(&list_type);

	live->items = malloc(n * sizeof(void *));
	if (live->items == NULL) {
		fprintf(stderr, "gc-bench: out of memory\n");
		exit(1);
	}
	/* interleaved, as a program builds them */
	for (size_t i = 0; i < n / 2; i++) {
		struct node *a = mp_new(&node_type), *b = mp_new(&node_type);
		a->ref = mp_incref(b);
		b->ref = a;
		mp_decref(b);
		live->items[live->n++] = mp_new(&node_type);
		live->items[live->n++] = mp_new(&node_type);
	}
	double t0 = now_ns();
	size_t freed = mp_gc_collect(-1);
	double t1 = now_ns();
	if (freed != n / 2 * 2) {
		fprintf(stderr, "gc-bench: collected %zu objects, expected %zu\n",
			freed, n / 2 * 2);
		exit(1);
	}
	mp_decref(live);
	return (t1 - t0) / (double)(2 * (n / 2) * 2 + 1);
}

static double new_decref(const struct mp_type *type, size_t n)
{
	double t0 = now_ns();

	for (size_t i = 0; i < n; i++)
		mp_decref(mp_new(type));
	return (now_ns() - t0) / (double)n;
}

static double best(double a, double b)
{
	return a < b ? a : b;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	double full = 1e30, tracked = 1e30, untracked = 1e30;

	mp_gc_disable();   /* as gc.disable() in the python3 side */
	for (int round = 0; round < 5; round++)
		full = best(full, full_collection(n));
	for (int round = 0; round < 5; round++) {
		tracked = best(tracked, new_decref(&node_type, 10 * n));
		untracked = best(untracked, new_decref(&plain_type, 10 * n));
	}
	printf("full-collection %.2f ns/object\n", full);
	printf("new-decref-tracked %.2f ns/object\n", tracked);
	printf("new-decref-untracked %.2f ns/object\n", untracked);
	printf("allocator %s\n", mp_heap_uses_memprof_hooks() ? "memprof-hooks" : "pool");
	return 0;
}
