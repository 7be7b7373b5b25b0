/*
 * test-heap-object.c: the object lifecycle of libmemprof-heap without the
 * collector's help: mp_new, reference counting and the order of
 * finalize, weak reference callbacks and clear when a refcount reaches 0,
 * resurrection by a finalizer, deep chains, weak references, interned
 * strings, enumeration, snapshots, and the debug checks that abort on the
 * calling program's bugs.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>

#include "test-heap-object-util.h"

/* ---- objects and refcounts ---------------------------------------------- */

Test(object, new_gives_a_zeroed_body_with_refcount_one)
{
	struct node *n = mp_new(&node_type);

	cr_assert_not_null(n);
	for (int i = 0; i < NODE_SLOTS; i++)
		cr_assert_null(n->ref[i]);
	cr_assert_eq(n->id, 0);
	cr_assert_eq(mp_refcount(n), 1);
	cr_assert_eq(mp_typeof(n), &node_type);
	cr_assert_eq((uintptr_t)n % 16, 0, "bodies are 16-byte aligned");
	mp_decref(n);
}

Test(object, only_types_with_traverse_are_tracked)
{
	struct node *n = node_new(1);
	int *leaf = mp_new(&leaf_type);

	cr_assert(mp_gc_is_tracked(n));
	cr_assert_not(mp_gc_is_tracked(leaf));
	cr_assert_eq(mp_refcount(leaf), 1);
	cr_assert_eq(*leaf, 0);
	mp_decref(leaf);
	mp_decref(n);
}

Test(object, new_rejects_null_and_library_types)
{
	errno = 0;
	cr_assert_null(mp_new(NULL));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(mp_new(&mp_str_type));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(mp_new(&mp_weakref_type));
}

Test(object, incref_and_decref_count_and_accept_null)
{
	struct node *n = node_new(1);

	cr_assert_eq(mp_incref(n), n);
	cr_assert_eq(mp_incref(n), n);
	cr_assert_eq(mp_refcount(n), 3);
	mp_decref(n);
	cr_assert_eq(mp_refcount(n), 2);
	cr_assert_null(mp_incref(NULL));
	mp_decref(NULL);
	cr_assert_eq(mp_refcount(NULL), 0);
	cr_assert_null(mp_typeof(NULL));
	mp_decref(n);
	cr_assert_eq(count_events(EV_FINALIZE, 1), 0);
	mp_decref(n);
	cr_assert_eq(count_events(EV_FINALIZE, 1), 1);
}

Test(object, at_zero_finalize_then_weakref_callbacks_then_clear)
{
	struct node *n = node_new(7);
	struct mp_weakref *w = mp_weakref_new(n, weak_cb, (void *)(intptr_t)7);

	mp_decref(n);
	cr_assert_eq(nevents, 3);
	cr_assert_eq(events[0].kind, EV_FINALIZE);
	cr_assert_eq(events[1].kind, EV_CALLBACK);
	cr_assert_eq(events[2].kind, EV_CLEAR);
	cr_assert_null(mp_weakref_get(w));
	mp_weakref_free(w);
}

Test(object, dropping_a_parent_frees_its_children)
{
	struct node *a = node_new(1), *b = node_new(2);
	int *leaf = mp_new(&leaf_type);

	node_link(a, 0, b);
	node_link(a, 1, leaf);
	mp_decref(b);
	mp_decref(leaf);
	cr_assert_eq(mp_refcount(b), 1);
	mp_decref(a);
	cr_assert_eq(count_events(EV_FINALIZE, 2), 1);
	cr_assert_eq(count_events(EV_CLEAR, 2), 1);
}

Test(object, a_finalizer_that_resurrects_keeps_the_object_and_runs_once)
{
	struct node *n = node_new(3);
	struct node *child = node_new(4);

	node_link(n, 0, child);
	mp_decref(child);
	n->resurrect = 1;
	mp_decref(n);
	cr_assert_eq(resurrected, n);
	cr_assert_eq(mp_refcount(n), 1);
	cr_assert_eq(count_events(EV_CLEAR, 3), 0, "not cleared: it lives");
	cr_assert_eq(n->ref[0], child);
	mp_decref(resurrected);
	cr_assert_eq(count_events(EV_FINALIZE, 3), 1, "finalized once only");
	cr_assert_eq(count_events(EV_CLEAR, 3), 1);
	cr_assert_eq(count_events(EV_FINALIZE, 4), 1);
}

Test(object, a_long_chain_is_freed_without_deep_recursion)
{
	enum { N = 200000 };
	struct node *head = node_new(0);
	struct node *cur = head;

	mp_gc_disable();
	for (int i = 1; i < N; i++) {
		struct node *next = node_new(i);
		cur->ref[0] = next; /* the chain owns it */
		cur = next;
	}
	mp_decref(head);
	cr_assert_eq(count_events(EV_CLEAR, -1), N);
	cr_assert_eq(count_events(EV_FINALIZE, -1), N);
	struct mp_snapshot const *s;
	cr_assert_eq(mp_snapshot("after"), 0);
	s = mp_snapshot_get(0);
	cr_assert_eq(s->total_count, 0);
}

/* ---- weak references -------------------------------------------------------- */

Test(weakref, get_returns_a_new_reference_while_alive)
{
	struct node *n = node_new(1);
	struct mp_weakref *w = mp_weakref_new(n, NULL, NULL);

	cr_assert_not_null(w);
	cr_assert_eq(mp_typeof(w), &mp_weakref_type);
	cr_assert_eq(mp_refcount(n), 1, "a weak reference does not count");
	void *got = mp_weakref_get(w);
	cr_assert_eq(got, n);
	cr_assert_eq(mp_refcount(n), 2);
	mp_decref(got);
	mp_decref(n);
	cr_assert_null(mp_weakref_get(w));
	mp_weakref_free(w);
	mp_weakref_free(NULL);
	cr_assert_null(mp_weakref_get(NULL));
}

Test(weakref, new_rejects_null)
{
	errno = 0;
	cr_assert_null(mp_weakref_new(NULL, NULL, NULL));
	cr_assert_eq(errno, EINVAL);
}

Test(weakref, every_weakref_callback_runs_once_with_its_arg)
{
	int *leaf = mp_new(&leaf_type);
	struct mp_weakref *w[5];

	for (int i = 0; i < 5; i++)
		w[i] = mp_weakref_new(leaf, weak_cb, (void *)(intptr_t)(100 + i));
	mp_decref(leaf);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(count_events(EV_CALLBACK, 100 + i), 1);
		cr_assert_null(mp_weakref_get(w[i]));
		mp_weakref_free(w[i]);
	}
}

Test(weakref, a_freed_weakref_never_calls_back)
{
	struct node *n = node_new(1);
	struct mp_weakref *a = mp_weakref_new(n, weak_cb, (void *)1);
	struct mp_weakref *b = mp_weakref_new(n, weak_cb, (void *)2);
	struct mp_weakref *c = mp_weakref_new(n, weak_cb, (void *)3);

	mp_weakref_free(b);   /* the middle of the list */
	mp_weakref_free(c);   /* its head */
	mp_decref(n);
	cr_assert_eq(count_events(EV_CALLBACK, 1), 1);
	cr_assert_eq(count_events(EV_CALLBACK, 2), 0);
	cr_assert_eq(count_events(EV_CALLBACK, 3), 0);
	mp_weakref_free(a);
}

static void free_self_cb(struct mp_weakref *ref, void *arg)
{
	log_event(EV_CALLBACK, 9);
	mp_weakref_free(ref);
}

Test(weakref, a_callback_may_free_its_own_weakref)
{
	struct node *n = node_new(1);

	cr_assert_not_null(mp_weakref_new(n, free_self_cb, NULL));
	mp_decref(n);
	cr_assert_eq(count_events(EV_CALLBACK, 9), 1);
	cr_assert_eq(mp_snapshot(NULL), 0);
	cr_assert_eq(mp_snapshot_get(0)->total_count, 0, "the weakref is freed");
}

Test(weakref, many_objects_with_weakrefs)
{
	enum { N = 3000 };
	static struct node *objs[N];
	static struct mp_weakref *refs[N];

	for (int i = 0; i < N; i++) {
		objs[i] = node_new(i);
		refs[i] = mp_weakref_new(objs[i], NULL, NULL);
	}
	for (int i = 0; i < N; i += 2)
		mp_decref(objs[i]);
	for (int i = 0; i < N; i++)
		cr_assert_eq(alive(refs[i]), i % 2 == 1, "object %d", i);
	for (int i = 1; i < N; i += 2)
		mp_decref(objs[i]);
	for (int i = 0; i < N; i++) {
		cr_assert_not(alive(refs[i]));
		mp_weakref_free(refs[i]);
	}
}

/* ---- interned strings --------------------------------------------------------- */

Test(intern, same_content_gives_the_same_object)
{
	char buf[16];
	void *a = mp_intern("hello");

	snprintf(buf, sizeof(buf), "hel%s", "lo");
	void *b = mp_intern(buf);
	cr_assert_not_null(a);
	cr_assert_eq(a, b);
	cr_assert_eq(mp_refcount(a), 2);
	cr_assert_str_eq(mp_str(a), "hello");
	cr_assert_eq(mp_str_len(a), 5);
	cr_assert_eq(mp_typeof(a), &mp_str_type);
	cr_assert_not(mp_gc_is_tracked(a));
	void *c = mp_intern("hellO");
	cr_assert_neq(a, c);
	cr_assert_str_eq(mp_str(c), "hellO");
	cr_assert_eq(mp_refcount(c), 1);
	void *e = mp_intern("");
	cr_assert_str_eq(mp_str(e), "");
	cr_assert_eq(mp_str_len(e), 0);
	mp_decref(a);
	mp_decref(b);
	mp_decref(c);
	mp_decref(e);
}

Test(intern, a_string_dies_with_its_last_reference)
{
	void *a = mp_intern("transient");
	struct mp_weakref *w = mp_weakref_new(a, NULL, NULL);

	mp_decref(a);
	cr_assert_not(alive(w));
	mp_weakref_free(w);
	void *b = mp_intern("transient");
	cr_assert_eq(mp_refcount(b), 1);
	cr_assert_str_eq(mp_str(b), "transient");
	mp_decref(b);
	cr_assert_null(mp_intern(NULL));
}

Test(intern, many_strings_stay_distinct_and_found)
{
	enum { N = 5000 };
	static void *objs[N];
	char buf[32];

	for (int i = 0; i < N; i++) {
		snprintf(buf, sizeof(buf), "s%d", i);
		objs[i] = mp_intern(buf);
	}
	for (int i = 0; i < N; i++) {
		snprintf(buf, sizeof(buf), "s%d", i);
		void *again = mp_intern(buf);
		cr_assert_eq(again, objs[i]);
		cr_assert_str_eq(mp_str(again), buf);
		mp_decref(again);
	}
	cr_assert_eq(mp_snapshot(NULL), 0);
	cr_assert_eq(mp_snapshot_get(0)->types[0].count, N);
	cr_assert_str_eq(mp_snapshot_get(0)->types[0].name, "str");
	for (int i = 0; i < N; i++)
		mp_decref(objs[i]);
}

/* ---- enumeration and snapshots -------------------------------------------------- */

static void count_obj(void *obj, const struct mp_type *type, size_t refcount,
		      void *arg)
{
	size_t *counts = arg;

	cr_assert_eq(mp_typeof(obj), type);
	cr_assert_eq(mp_refcount(obj), refcount);
	if (type == &node_type)
		counts[0]++;
	else
		counts[1]++;
	counts[2] += refcount;
}

Test(introspect, foreach_visits_every_live_tracked_object)
{
	struct node *a = node_new(1), *b = node_new(2);
	int *leaf = mp_new(&leaf_type);
	struct mp_weakref *w = mp_weakref_new(a, NULL, NULL);
	size_t counts[3] = { 0 };

	node_link(a, 0, b);
	cr_assert_eq(mp_heap_foreach(count_obj, counts), 3);
	cr_assert_eq(counts[0], 2);
	cr_assert_eq(counts[1], 1, "the weakref");
	cr_assert_eq(counts[2], 1 + 2 + 1);
	mp_decref(a);
	mp_decref(b);
	mp_decref(leaf);
	mp_weakref_free(w);
	cr_assert_eq(mp_heap_foreach(count_obj, counts), 0);
}

Test(introspect, snapshots_count_live_objects_by_type_and_keep_two)
{
	cr_assert_null(mp_snapshot_get(0));
	cr_assert_null(mp_snapshot_get(1));
	struct node *a = node_new(1);
	void *leaves[3];
	for (int i = 0; i < 3; i++)
		leaves[i] = mp_new(&leaf_type);
	cr_assert_eq(mp_snapshot("first"), 0);
	const struct mp_snapshot *s = mp_snapshot_get(0);
	cr_assert_str_eq(s->label, "first");
	cr_assert_eq(s->seq, 1);
	cr_assert_eq(s->ntypes, 2);
	cr_assert_eq(s->types[0].type, &leaf_type, "most objects first");
	cr_assert_eq(s->types[0].count, 3);
	cr_assert_eq(s->types[0].bytes, 3 * sizeof(int));
	cr_assert_str_eq(s->types[1].name, "node");
	cr_assert_eq(s->types[1].count, 1);
	cr_assert_eq(s->total_count, 4);
	cr_assert_null(mp_snapshot_get(1));

	mp_decref(leaves[0]);
	struct node *b = node_new(2), *c = node_new(3);
	cr_assert_eq(mp_snapshot("second"), 0);
	s = mp_snapshot_get(0);
	const struct mp_snapshot *prev = mp_snapshot_get(1);
	cr_assert_str_eq(s->label, "second");
	cr_assert_eq(s->seq, 2);
	cr_assert_str_eq(prev->label, "first");
	cr_assert_eq(s->types[0].type, &node_type);
	cr_assert_eq(s->types[0].count, 3);
	cr_assert_eq(s->types[1].count, 2);

	cr_assert_eq(mp_snapshot(NULL), 0);
	cr_assert_str_eq(mp_snapshot_get(0)->label, "");
	cr_assert_str_eq(mp_snapshot_get(1)->label, "second");
	cr_assert_null(mp_snapshot_get(2));
	mp_decref(a);
	mp_decref(b);
	mp_decref(c);
	mp_decref(leaves[1]);
	mp_decref(leaves[2]);
}

Test(introspect, allocator_is_the_pool_unless_hooks_are_exported)
{
#ifdef OBJHEAP_TEST_MALLOC_HOOKS
	cr_assert(mp_heap_uses_memprof_hooks());
#else
	cr_assert_not(mp_heap_uses_memprof_hooks());
#endif
}

/* ---- the calling program's bugs abort in debug builds ----------------------------- */

#if MEMPROF_DEBUG_LEVEL >= 1
/* With malloc'd objects, reading a freed header is itself undefined. */
#ifndef OBJHEAP_TEST_MALLOC_HOOKS
Test(debug, a_reference_stored_without_incref_aborts_when_dropped, .signal = SIGABRT)
{
	int *leaf = mp_new(&leaf_type);
	struct node *n = node_new(1);

	n->ref[0] = leaf;  /* stored without mp_incref: a bug */
	mp_decref(leaf);
	mp_decref(n);      /* clear drops the dead leaf again */
}

Test(debug, decref_after_free_aborts, .signal = SIGABRT)
{
	struct node *a = node_new(1);
	struct node *keep = node_new(2);  /* keeps the block from reuse */

	mp_decref(a);
	mp_decref(a);
	mp_decref(keep);
}
#endif

static sem_t inside, release;

static void blocking_finalize(void *obj)
{
	sem_post(&inside);
	sem_wait(&release);
}

static const struct mp_type blocking_type = {
	.name = "blocking",
	.size = 8,
	.finalize = blocking_finalize,
};

static void *other_thread(void *arg)
{
	mp_decref(arg);
	return NULL;
}

Test(debug, two_threads_inside_the_heap_at_once_abort, .signal = SIGABRT)
{
	void *obj = mp_new(&blocking_type);
	void *other = mp_new(&leaf_type);
	pthread_t t;

	sem_init(&inside, 0, 0);
	sem_init(&release, 0, 0);
	pthread_create(&t, NULL, other_thread, obj);
	sem_wait(&inside);     /* the other thread is in mp_decref */
	mp_incref(other);      /* aborts */
	sem_post(&release);
	pthread_join(t, NULL);
}

static void *serialized_thread(void *arg)
{
	void **objs = arg;

	for (int i = 0; i < 1000; i++)
		mp_decref(mp_incref(objs[i % 4]));
	return NULL;
}

Test(debug, threads_that_take_turns_are_fine)
{
	void *objs[4];
	pthread_t t;

	for (int i = 0; i < 4; i++)
		objs[i] = mp_new(&leaf_type);
	pthread_create(&t, NULL, serialized_thread, objs);
	pthread_join(t, NULL);
	serialized_thread(objs);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(mp_refcount(objs[i]), 1);
		mp_decref(objs[i]);
	}
}

Test(debug, str_of_a_non_string_aborts, .signal = SIGABRT)
{
	mp_str(mp_new(&leaf_type));
}
#endif
