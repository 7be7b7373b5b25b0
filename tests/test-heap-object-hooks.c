/*
 * test-heap-object-hooks.c: libmemprof-heap under `memprof run`: when the
 * process exports memprof_heap_alloc and memprof_heap_free (this test
 * program does, as the preload library will), every object comes from
 * them and goes back to them, after finalize, weak reference callbacks and
 * clear.
 */
#include <stdlib.h>

#include "test-heap-object-util.h"

static size_t nallocs, nfrees, last_size;

__attribute__((visibility("default"))) void *memprof_heap_alloc(size_t size);
__attribute__((visibility("default"))) void memprof_heap_free(void *block);

void *memprof_heap_alloc(size_t size)
{
	void *p;

	nallocs++;
	last_size = size;
	return posix_memalign(&p, 16, size) == 0 ? p : NULL;
}

void memprof_heap_free(void *block)
{
	nfrees++;
	log_event(EV_FREE, 0);
	free(block);
}

Test(hooks, objects_come_from_the_exported_hooks)
{
	cr_assert(mp_heap_uses_memprof_hooks());
	struct node *n = node_new(1);
	cr_assert_eq(nallocs, 1);
	cr_assert_geq(last_size, sizeof(struct node));
	int *leaf = mp_new(&leaf_type);
	cr_assert_eq(nallocs, 2);
	cr_assert_lt(last_size, sizeof(struct node) + 64);
	mp_decref(leaf);
	mp_decref(n);
	cr_assert_eq(nfrees, 2);
}

Test(hooks, free_comes_last_after_finalize_callbacks_and_clear)
{
	struct node *n = node_new(1);
	struct mp_weakref *w = mp_weakref_new(n, weak_cb, (void *)1);

	mp_decref(n);
	cr_assert_eq(nevents, 4);
	cr_assert_eq(events[0].kind, EV_FINALIZE);
	cr_assert_eq(events[1].kind, EV_CALLBACK);
	cr_assert_eq(events[2].kind, EV_CLEAR);
	cr_assert_eq(events[3].kind, EV_FREE);
	mp_weakref_free(w);
}

Test(hooks, a_collected_cycle_goes_back_to_the_hooks)
{
	struct node *a = node_new(1), *b = node_new(2);

	node_link(a, 0, b);
	node_link(b, 0, a);
	mp_decref(a);
	mp_decref(b);
	size_t before = nfrees;
	cr_assert_eq(mp_gc_collect(-1), 2);
	cr_assert_eq(nfrees - before, 2);
	cr_assert_eq(nallocs, nfrees);
}
