/*
 * test-heap-gc.c: the cycle collector of libmemprof-heap: cycles of every
 * shape, what survives (reachable from a live object), finalizers and
 * resurrection, weak references to and from garbage, uncollectable
 * garbage, SAVEALL, thresholds, generations and the long-lived rule,
 * enable/disable, return values and statistics.
 */
#include <signal.h>

#include "test-heap-object-util.h"

/* The tests drive collections themselves. */
static void no_auto(void)
{
	mp_gc_disable();
}

static struct mp_weakref *watch(void *obj)
{
	struct mp_weakref *w = mp_weakref_new(obj, NULL, NULL);

	cr_assert_not_null(w);
	return w;
}

static size_t live_objects(void)
{
	cr_assert_eq(mp_snapshot(NULL), 0);
	return mp_snapshot_get(0)->total_count;
}

static size_t stats_total(int field)
{
	struct mp_gc_stats st[MP_GC_GENERATIONS];
	size_t n = 0;

	mp_gc_get_stats(st);
	for (int i = 0; i < MP_GC_GENERATIONS; i++)
		n += field == 0 ? st[i].collections :
		     field == 1 ? st[i].collected : st[i].uncollectable;
	return n;
}

/* ---- cycles ---------------------------------------------------------------- */

Test(cycles, a_self_loop_is_collected, .init = no_auto)
{
	struct node *a = node_new(1);

	node_link(a, 0, a);
	mp_decref(a);
	cr_assert_eq(mp_refcount(a), 1, "refcounting alone cannot free it");
	cr_assert_eq(mp_gc_collect(-1), 1);
	cr_assert_eq(count_events(EV_FINALIZE, 1), 1);
	cr_assert_eq(count_events(EV_CLEAR, 1), 1);
	cr_assert_eq(live_objects(), 0);
}

Test(cycles, a_two_cycle_is_collected, .init = no_auto)
{
	struct node *a = node_new(1), *b = node_new(2);

	node_link(a, 0, b);
	node_link(b, 0, a);
	mp_decref(a);
	mp_decref(b);
	cr_assert_eq(mp_gc_collect(-1), 2);
	cr_assert_eq(live_objects(), 0);
	cr_assert_eq(mp_gc_collect(-1), 0, "nothing left to collect");
}

Test(cycles, a_long_ring_is_collected, .init = no_auto)
{
	enum { N = 20000 };
	struct node *first = node_new(0), *prev = first;

	for (int i = 1; i < N; i++) {
		struct node *n = node_new(i);
		node_link(prev, 0, n);
		mp_decref(n);
		prev = n;
	}
	node_link(prev, 0, first);
	mp_decref(first);
	cr_assert_eq(mp_gc_collect(-1), N);
	cr_assert_eq(count_events(EV_CLEAR, -1), N);
	cr_assert_eq(count_events(EV_FINALIZE, -1), N);
	cr_assert_eq(live_objects(), 0);
}

Test(cycles, a_cycle_reachable_from_a_live_object_survives, .init = no_auto)
{
	struct node *root = node_new(0), *a = node_new(1), *b = node_new(2);
	struct mp_weakref *wa = watch(a);

	node_link(root, 0, a);
	node_link(a, 0, b);
	node_link(b, 0, a);
	mp_decref(a);
	mp_decref(b);
	cr_assert_eq(mp_gc_collect(-1), 0);
	cr_assert(alive(wa));
	cr_assert_eq(mp_refcount(a), 2);
	cr_assert_eq(count_events(EV_FINALIZE, -1), 0);
	mp_decref(root);  /* root dies by refcount; the cycle is garbage now */
	cr_assert(alive(wa));
	cr_assert_eq(mp_gc_collect(-1), 2);
	cr_assert_not(alive(wa));
	mp_weakref_free(wa);
}

Test(cycles, objects_reachable_only_through_older_objects_survive,
     .init = no_auto)
{
	/* Cycles made oldest first, held by the youngest object: the scan
	 * meets every one of them before the root that keeps them. */
	enum { N = 1000 };
	struct node *chain = NULL;
	struct mp_weakref *first = NULL;

	for (int i = 0; i < N; i++) {
		struct node *n = node_new(i);
		node_link(n, 0, n);
		if (chain != NULL) {
			n->ref[1] = chain;   /* transfers the reference */
		} else {
			first = watch(n);
		}
		chain = n;
	}
	struct node *root = node_new(N);
	root->ref[0] = chain;
	cr_assert_eq(mp_gc_collect(-1), 0);
	cr_assert(alive(first));
	cr_assert_eq(count_events(EV_FINALIZE, -1), 0);
	mp_decref(root);
	cr_assert_eq(mp_gc_collect(-1), N);
	cr_assert_not(alive(first));
	mp_weakref_free(first);
}

Test(cycles, a_cycle_held_by_an_untracked_or_c_reference_survives, .init = no_auto)
{
	struct node *a = node_new(1), *b = node_new(2);

	node_link(a, 0, b);
	node_link(b, 0, a);
	mp_decref(b);   /* the test keeps its reference to a */
	cr_assert_eq(mp_gc_collect(-1), 0);
	cr_assert_eq(mp_refcount(b), 1);
	mp_decref(a);
	cr_assert_eq(mp_gc_collect(-1), 2);
}

Test(cycles, a_cycle_hanging_off_garbage_is_collected, .init = no_auto)
{
	struct node *a = node_new(1), *b = node_new(2);
	struct node *c = node_new(3), *d = node_new(4);

	node_link(a, 0, b);
	node_link(b, 0, a);
	node_link(b, 1, c);   /* the second cycle hangs off the first */
	node_link(c, 0, d);
	node_link(d, 0, c);
	mp_decref(a);
	mp_decref(b);
	mp_decref(c);
	mp_decref(d);
	cr_assert_eq(mp_gc_collect(-1), 4);
	cr_assert_eq(live_objects(), 0);
}

Test(cycles, a_tree_off_a_cycle_is_freed_with_it, .init = no_auto)
{
	struct node *a = node_new(1), *b = node_new(2);
	struct node *t[7];
	int *leaf = mp_new(&leaf_type);

	node_link(a, 0, b);
	node_link(b, 0, a);
	for (int i = 0; i < 7; i++)
		t[i] = node_new(10 + i);
	node_link(a, 1, t[0]);
	for (int i = 1; i < 7; i++)
		node_link(t[(i - 1) / 2], 1 + (i - 1) % 2, t[i]);
	node_link(t[6], 0, leaf);
	for (int i = 0; i < 7; i++)
		mp_decref(t[i]);
	mp_decref(a);
	mp_decref(b);
	mp_decref(leaf);
	/* the untracked leaf is freed too, but only tracked objects count */
	cr_assert_eq(mp_gc_collect(-1), 9);
	cr_assert_eq(live_objects(), 0);
}

Test(cycles, a_tree_whose_children_hold_their_parent_is_counted_whole,
     .init = no_auto)
{
	/* The root outlives its own clear (its children hold it) and dies
	 * later in the same collection: it still counts. */
	struct node *root = node_new(0);

	for (int i = 0; i < 3; i++) {
		struct node *sec = node_new(1 + i);
		node_link(root, i, sec);
		node_link(sec, 0, root);
		for (int j = 0; j < 3; j++) {
			struct node *p = node_new(10 + 3 * i + j);
			node_link(sec, 1 + j, p);
			node_link(p, 0, sec);
			mp_decref(p);
		}
		mp_decref(sec);
	}
	mp_decref(root);
	cr_assert_eq(mp_gc_collect(-1), 13);
	cr_assert_eq(count_events(EV_CLEAR, -1), 13, "each cleared once");
	cr_assert_eq(live_objects(), 0);
}

Test(cycles, garbage_and_live_objects_mixed, .init = no_auto)
{
	enum { N = 500 };
	static struct node *live[N];

	for (int i = 0; i < N; i++) {
		struct node *a = node_new(i), *b = node_new(N + i);
		node_link(a, 0, b);
		node_link(b, 0, a);
		mp_decref(b);
		if (i % 2 == 0)
			live[i] = a;
		else
			mp_decref(a);
	}
	cr_assert_eq(mp_gc_collect(-1), N);
	for (int i = 0; i < N; i += 2) {
		cr_assert_eq(mp_refcount(live[i]), 2);
		cr_assert_eq(mp_refcount(live[i]->ref[0]), 1);
		mp_decref(live[i]);
	}
	cr_assert_eq(mp_gc_collect(-1), N);
	cr_assert_eq(live_objects(), 0);
}

/* ---- finalizers ----------------------------------------------------------------- */

Test(finalizers, run_once_before_clear, .init = no_auto)
{
	struct node *a = node_new(1), *b = node_new(2);

	node_link(a, 0, b);
	node_link(b, 0, a);
	mp_decref(a);
	mp_decref(b);
	mp_gc_collect(-1);
	cr_assert_eq(count_events(EV_FINALIZE, 1), 1);
	cr_assert_eq(count_events(EV_FINALIZE, 2), 1);
	/* every finalizer runs before the first clear */
	size_t last_fin = 0, first_clear = nevents;
	for (size_t i = 0; i < nevents; i++) {
		if (events[i].kind == EV_FINALIZE)
			last_fin = i;
		if (events[i].kind == EV_CLEAR && i < first_clear)
			first_clear = i;
	}
	cr_assert_lt(last_fin, first_clear);
}

Test(finalizers, a_resurrecting_finalizer_keeps_the_cycle_and_runs_once,
     .init = no_auto)
{
	struct node *a = node_new(1), *b = node_new(2);
	struct mp_weakref *wb = watch(b);

	node_link(a, 0, b);
	node_link(b, 0, a);
	a->resurrect = 1;
	mp_decref(a);
	mp_decref(b);
	cr_assert_eq(mp_gc_collect(-1), 0, "all of the garbage survives");
	cr_assert_eq(resurrected, a);
	/* weak references were cleared before the finalizers ran */
	cr_assert_not(alive(wb));
	cr_assert_eq(a->ref[0], b);
	cr_assert_eq(mp_refcount(b), 1);
	cr_assert_eq(count_events(EV_CLEAR, -1), 0);
	cr_assert_eq(mp_refcount(a), 2);
	cr_assert_eq(mp_gc_collect(-1), 0, "still reachable from resurrected");

	mp_decref(resurrected);
	resurrected = NULL;
	cr_assert_eq(mp_gc_collect(-1), 2);
	cr_assert_eq(count_events(EV_FINALIZE, 1), 1, "never finalized again");
	cr_assert_eq(count_events(EV_FINALIZE, 2), 1);
	cr_assert_eq(count_events(EV_CLEAR, -1), 2);
	cr_assert_eq(live_objects(), 1, "only wb");
	mp_weakref_free(wb);
}

static void collect_in_finalizer(void *obj)
{
	log_event(EV_FINALIZE, (int)mp_gc_collect(-1));
}

static const struct mp_type collecting_type = {
	.name = "collecting",
	.size = sizeof(struct node),
	.traverse = node_traverse,
	.clear = node_clear,
	.finalize = collect_in_finalizer,
};

Test(finalizers, a_collection_from_a_finalizer_does_nothing, .init = no_auto)
{
	struct node *a = node_new_typed(&collecting_type, 1);

	node_link(a, 0, a);
	mp_decref(a);
	cr_assert_eq(mp_gc_collect(-1), 1);
	cr_assert_eq(count_events(EV_FINALIZE, 0), 1, "the nested collect returned 0");
}

/* ---- weak references and the collector ------------------------------------------ */

Test(gc_weakref, a_weakref_to_a_collected_cycle_is_cleared_and_calls_back,
     .init = no_auto)
{
	struct node *a = node_new(1), *b = node_new(2);
	struct mp_weakref *w = mp_weakref_new(a, weak_cb, (void *)42);

	node_link(a, 0, b);
	node_link(b, 0, a);
	mp_decref(a);
	mp_decref(b);
	cr_assert(alive(w));
	cr_assert_eq(mp_gc_collect(-1), 2);
	cr_assert_null(mp_weakref_get(w));
	cr_assert_eq(count_events(EV_CALLBACK, 42), 1);
	/* callbacks run before finalizers, and before anything is cleared */
	cr_assert_eq(events[0].kind, EV_CALLBACK);
	mp_weakref_free(w);
}

Test(gc_weakref, callbacks_run_only_for_weakrefs_that_survive, .init = no_auto)
{
	struct node *a = node_new(1), *b = node_new(2);
	/* inner is owned by a, part of the garbage; outer is the test's */
	struct mp_weakref *inner = mp_weakref_new(b, weak_cb, (void *)1);
	struct mp_weakref *outer = mp_weakref_new(b, weak_cb, (void *)2);

	a->ref[1] = inner;   /* a owns the only reference to inner */
	node_link(a, 0, b);
	node_link(b, 0, a);
	mp_decref(a);
	mp_decref(b);
	cr_assert_eq(mp_gc_collect(-1), 3, "a, b and the inner weakref");
	cr_assert_eq(count_events(EV_CALLBACK, 1), 0);
	cr_assert_eq(count_events(EV_CALLBACK, 2), 1);
	cr_assert_null(mp_weakref_get(outer));
	mp_weakref_free(outer);
	cr_assert_eq(live_objects(), 0);
}

Test(gc_weakref, a_weakref_to_a_live_object_held_by_garbage_dies_quietly,
     .init = no_auto)
{
	struct node *a = node_new(1), *live = node_new(2);
	struct mp_weakref *w = mp_weakref_new(live, weak_cb, (void *)5);

	a->ref[1] = w;
	node_link(a, 0, a);
	mp_decref(a);
	cr_assert_eq(mp_gc_collect(-1), 2);
	cr_assert_eq(count_events(EV_CALLBACK, -1), 0);
	mp_decref(live);
	cr_assert_eq(count_events(EV_CALLBACK, -1), 0, "the weakref is gone");
	cr_assert_eq(live_objects(), 0);
}

/* ---- uncollectable garbage and SAVEALL ------------------------------------------- */

static void note_garbage(void *obj, const struct mp_type *type,
			 size_t refcount, void *arg)
{
	int *seen = arg;

	cr_assert_eq(mp_typeof(obj), type);
	cr_assert_geq(refcount, 1);
	seen[((struct node *)obj)->id]++;
}

Test(uncollectable, a_cycle_without_clear_is_kept_in_the_garbage_list,
     .init = no_auto)
{
	struct node *a = node_new_typed(&stuck_type, 1);
	struct node *b = node_new_typed(&stuck_type, 2);
	int seen[3] = { 0 };

	node_link(a, 0, b);
	node_link(b, 0, a);
	mp_decref(a);
	mp_decref(b);
	cr_assert_eq(mp_gc_collect(-1), 0);
	cr_assert_eq(stats_total(2), 2);
	cr_assert_eq(mp_gc_garbage_count(), 2);
	cr_assert_eq(mp_gc_garbage_foreach(note_garbage, seen), 2);
	cr_assert_eq(seen[1], 1);
	cr_assert_eq(seen[2], 1);
	cr_assert_eq(count_events(EV_FINALIZE, -1), 0, "left intact");
	cr_assert_eq(mp_gc_collect(-1), 0, "not examined again");
	cr_assert_eq(stats_total(2), 2);
}

Test(uncollectable, what_a_stuck_object_reaches_is_kept_the_rest_collected,
     .init = no_auto)
{
	/* a <-> b (clearable) -> s (no clear) -> c (clearable) */
	struct node *a = node_new(1), *b = node_new(2), *c = node_new(3);
	struct node *s = node_new_typed(&stuck_type, 4);
	int seen[5] = { 0 };

	node_link(a, 0, b);
	node_link(b, 0, a);
	node_link(b, 1, s);
	node_link(s, 0, c);
	mp_decref(a);
	mp_decref(b);
	mp_decref(c);
	mp_decref(s);
	cr_assert_eq(mp_gc_collect(-1), 2);
	cr_assert_eq(mp_gc_garbage_foreach(note_garbage, seen), 2);
	cr_assert_eq(seen[4] + seen[3], 2);
	cr_assert_eq(seen[1] + seen[2], 0);
	cr_assert_eq(mp_refcount(s), 1, "only the garbage list holds it");
	struct mp_gc_stats st[3];
	mp_gc_get_stats(st);
	cr_assert_eq(st[2].uncollectable, 2);
	cr_assert_eq(st[2].collected, 2);
	/* releasing: s is in no cycle, so it dies; but having no clear, it
	 * never drops its reference to c (the type's own leak) */
	cr_assert_eq(mp_gc_garbage_release(), 2);
	cr_assert_eq(mp_gc_garbage_count(), 0);
	cr_assert_eq(count_events(EV_FINALIZE, 4), 1);
	cr_assert_eq(mp_refcount(c), 1);
	mp_decref(c);
	cr_assert_eq(live_objects(), 0);
}

static void count_tracked(void *obj, const struct mp_type *type,
			  size_t refcount, void *arg)
{
	(*(size_t *)arg)++;
}

Test(saveall, garbage_is_kept_untouched_and_enumerable, .init = no_auto)
{
	struct node *a = node_new(1), *b = node_new(2);
	struct mp_weakref *w = mp_weakref_new(a, weak_cb, (void *)3);
	int seen[3] = { 0 };

	mp_gc_set_debug(MP_GC_DEBUG_SAVEALL);
	cr_assert_eq(mp_gc_get_debug(), MP_GC_DEBUG_SAVEALL);
	node_link(a, 0, b);
	node_link(b, 0, a);
	mp_decref(a);
	mp_decref(b);
	cr_assert_eq(mp_gc_collect(-1), 2);
	cr_assert_eq(mp_gc_garbage_count(), 2);
	cr_assert_eq(mp_gc_garbage_foreach(note_garbage, seen), 2);
	cr_assert_eq(seen[1] + seen[2], 2);
	cr_assert_eq(mp_refcount(a), 2, "its cycle's and the list's");
	cr_assert_eq(nevents, 0, "no finalizer, callback or clear ran");
	cr_assert(alive(w));
	size_t tracked = 0;
	cr_assert_eq(mp_heap_foreach(count_tracked, &tracked), 3, "a, b and w");
	cr_assert_eq(tracked, 3);

	mp_gc_set_debug(0);
	cr_assert_eq(mp_gc_garbage_release(), 2);
	cr_assert(alive(w), "still a cycle");
	cr_assert_eq(mp_gc_collect(-1), 2);
	cr_assert_not(alive(w));
	cr_assert_eq(count_events(EV_CALLBACK, 3), 1);
	mp_weakref_free(w);
}

/* ---- thresholds, generations, statistics ------------------------------------------ */

Test(generations, defaults)
{
	unsigned th[3], cnt[3];

	mp_gc_get_threshold(th);
	cr_assert_eq(th[0], 700);
	cr_assert_eq(th[1], 10);
	cr_assert_eq(th[2], 10);
	cr_assert(mp_gc_isenabled());
	mp_gc_get_count(cnt);
	cr_assert_eq(cnt[0] + cnt[1] + cnt[2], 0);
	cr_assert_eq(mp_gc_get_debug(), 0);
}

Test(generations, count_follows_tracked_allocations_and_deallocations)
{
	unsigned cnt[3];
	struct node *a = node_new(1), *b = node_new(2);
	int *leaf = mp_new(&leaf_type);

	mp_gc_get_count(cnt);
	cr_assert_eq(cnt[0], 2, "the untracked leaf does not count");
	mp_decref(a);
	mp_gc_get_count(cnt);
	cr_assert_eq(cnt[0], 1);
	mp_decref(b);
	mp_decref(leaf);
}

Test(generations, collection_runs_after_threshold_allocations)
{
	enum { T = 50 };
	static struct node *keep[T + 1];
	struct node *a = node_new(1);
	struct mp_weakref *w;
	struct mp_gc_stats st[3];

	mp_gc_set_threshold(T, 10, 10);
	node_link(a, 0, a);
	w = watch(a);           /* 2 tracked allocations so far */
	mp_decref(a);
	for (int i = 0; i < T - 2; i++)
		keep[i] = node_new(100 + i);
	mp_gc_get_stats(st);
	cr_assert_eq(st[0].collections, 0, "count == threshold: not yet");
	cr_assert(alive(w));
	keep[T - 2] = node_new(99);
	mp_gc_get_stats(st);
	cr_assert_eq(st[0].collections, 1);
	cr_assert_eq(st[0].collected, 1);
	cr_assert_not(alive(w));
	unsigned cnt[3];
	mp_gc_get_count(cnt);
	cr_assert_eq(cnt[0], 0);
	cr_assert_eq(cnt[1], 1);
	for (int i = 0; i < T - 1; i++)
		mp_decref(keep[i]);
	mp_weakref_free(w);
}

Test(generations, survivors_move_to_older_generations, .init = no_auto)
{
	struct node *a = node_new(1);
	struct mp_weakref *w = watch(a);

	node_link(a, 0, a);
	cr_assert_eq(mp_gc_collect(0), 0);   /* a survives into generation 1 */
	mp_decref(a);
	cr_assert_eq(mp_gc_collect(0), 0, "generation 0 does not see it");
	cr_assert(alive(w));
	mp_incref(a);
	cr_assert_eq(mp_gc_collect(1), 0);   /* into generation 2 */
	mp_decref(a);
	cr_assert_eq(mp_gc_collect(1), 0);
	cr_assert(alive(w));
	cr_assert_eq(mp_gc_collect(2), 1);
	cr_assert_not(alive(w));
	struct mp_gc_stats st[3];
	mp_gc_get_stats(st);
	cr_assert_eq(st[0].collections, 2);
	cr_assert_eq(st[1].collections, 2);
	cr_assert_eq(st[2].collections, 1);
	cr_assert_eq(st[2].collected, 1);
	mp_weakref_free(w);
}

Test(generations, older_generations_count_younger_collections, .init = no_auto)
{
	unsigned cnt[3];

	for (int i = 0; i < 3; i++)
		mp_gc_collect(0);
	mp_gc_get_count(cnt);
	cr_assert_eq(cnt[1], 3);
	mp_gc_collect(1);
	mp_gc_get_count(cnt);
	cr_assert_eq(cnt[1], 0);
	cr_assert_eq(cnt[2], 1);
	mp_gc_collect(2);
	mp_gc_get_count(cnt);
	cr_assert_eq(cnt[0] + cnt[1] + cnt[2], 0);
}

Test(generations, a_full_collection_waits_for_enough_long_lived_objects)
{
	enum { LIVE = 400, MORE = 200 };
	static struct node *keep[LIVE + MORE + 64];
	struct mp_gc_stats st[3];
	int n = 0;

	mp_gc_disable();
	for (; n < LIVE; n++)
		keep[n] = node_new(n);
	mp_gc_collect(2);       /* long_lived_total = LIVE */
	mp_gc_get_stats(st);
	size_t full = st[2].collections;
	/* collect generation 0 after every allocation, 1 after each of
	 * those, and 2 as soon as the long-lived rule allows */
	mp_gc_set_threshold(1, 0, 0);
	mp_gc_enable();
	for (int i = 0; i < 50; i++)
		{ keep[n] = node_new(n); n++; }
	mp_gc_get_stats(st);
	cr_assert_eq(st[2].collections, full, "pending <= total / 4");
	cr_assert_gt(st[1].collections, 0);
	for (int i = 0; i < MORE; i++)
		{ keep[n] = node_new(n); n++; }
	mp_gc_get_stats(st);
	cr_assert_gt(st[2].collections, full, "pending > total / 4");
	mp_gc_disable();
	for (int i = 0; i < n; i++)
		mp_decref(keep[i]);
}

Test(generations, disabled_means_no_automatic_collection)
{
	struct node *a = node_new(1);
	struct mp_weakref *w = watch(a);

	mp_gc_set_threshold(5, 1, 1);
	mp_gc_disable();
	cr_assert_not(mp_gc_isenabled());
	node_link(a, 0, a);
	mp_decref(a);
	for (int i = 0; i < 100; i++)
		mp_decref(mp_new(&node_type));   /* count stays low: use keep */
	struct node *keep[20];
	for (int i = 0; i < 20; i++)
		keep[i] = node_new(i);
	cr_assert_eq(stats_total(0), 0);
	cr_assert(alive(w));
	mp_gc_enable();
	cr_assert(mp_gc_isenabled());
	mp_decref(mp_new(&node_type));
	cr_assert_gt(stats_total(0), 0);
	cr_assert_not(alive(w));
	for (int i = 0; i < 20; i++)
		mp_decref(keep[i]);
	mp_weakref_free(w);
}

Test(generations, zero_threshold_disables_automatic_collection)
{
	mp_gc_set_threshold(0, 10, 10);
	for (int i = 0; i < 2000; i++) {
		struct node *a = node_new(i);
		node_link(a, 0, a);
		mp_decref(a);
	}
	cr_assert_eq(stats_total(0), 0);
	cr_assert_eq(mp_gc_collect(-1), 2000);
}

Test(collect, returns_what_it_freed_and_stats_agree, .init = no_auto)
{
	for (int i = 0; i < 10; i++) {
		struct node *a = node_new(i);
		node_link(a, 0, a);
		mp_decref(a);
	}
	cr_assert_eq(mp_gc_collect(-1), 10);
	cr_assert_eq(stats_total(1), 10);
	cr_assert_eq(stats_total(0), 1);
	cr_assert_eq(mp_gc_collect(3), 0, "no such generation");
	cr_assert_eq(mp_gc_collect(-2), 0);
	cr_assert_eq(stats_total(0), 1);
}

Test(collect, automatic_collection_keeps_objects_under_construction)
{
	/* Thresholds so low that every allocation collects: objects held
	 * only by C variables must survive all of it. */
	mp_gc_set_threshold(1, 1, 1);
	struct node *prev = NULL;
	for (int i = 0; i < 300; i++) {
		struct node *n = node_new(i);
		if (prev != NULL) {
			n->ref[0] = prev;   /* transfers the reference */
			node_link(prev, 1, n);
		}
		prev = n;
	}
	cr_assert_gt(stats_total(0), 100);
	cr_assert_eq(stats_total(1), 0);
	cr_assert_eq(count_events(EV_FINALIZE, -1), 0);
	mp_decref(prev);
	mp_gc_collect(-1);
	cr_assert_eq(count_events(EV_FINALIZE, -1), 300);
	cr_assert_eq(live_objects(), 0);
}

#if MEMPROF_DEBUG_LEVEL >= 1
Test(gc_debug, a_missing_incref_is_caught_by_the_collector, .signal = SIGABRT,
     .init = no_auto)
{
	struct node *a = node_new(1), *b = node_new(2);

	node_link(a, 0, b);
	b->ref[0] = a;   /* no mp_incref: a's refcount is one too low */
	b->ref[1] = a;
	mp_gc_collect(-1);
}
#endif
