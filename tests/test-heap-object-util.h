/*
 * test-heap-object-util.h: object types shared by the object heap's tests:
 * a node with four reference slots whose finalize and clear calls are
 * logged in order, its variants without clear, and helpers to link nodes.
 */
#pragma once

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "memprof/heap.h"

#ifdef OBJHEAP_TEST_MALLOC_HOOKS
/* Objects from malloc, one block each, so that valgrind and ASan check
 * every access to them (the pool's blocks are invisible to both). */
__attribute__((visibility("default"))) void *memprof_heap_alloc(size_t size);
__attribute__((visibility("default"))) void memprof_heap_free(void *block);

void *memprof_heap_alloc(size_t size)
{
	void *p;

	return posix_memalign(&p, 16, size) == 0 ? p : NULL;
}

void memprof_heap_free(void *block)
{
	free(block);
}
#endif

#define NODE_SLOTS 4
#define UNUSED __attribute__((unused))

struct node {
	void *ref[NODE_SLOTS];
	int id;
	int resurrect;    /* the finalizer stores the node in `resurrected` */
};

enum ev_kind { EV_FINALIZE = 1, EV_CLEAR, EV_CALLBACK, EV_FREE };

struct event {
	enum ev_kind kind;
	int id;
};

static UNUSED struct event events[1 << 20];
static UNUSED size_t nevents;
static UNUSED void *resurrected;

static UNUSED void log_event(enum ev_kind kind, int id)
{
	if (nevents < sizeof(events) / sizeof(events[0]))
		events[nevents++] = (struct event){ kind, id };
}

static UNUSED size_t count_events(enum ev_kind kind, int id)
{
	size_t n = 0;

	for (size_t i = 0; i < nevents; i++)
		n += events[i].kind == kind && (id < 0 || events[i].id == id);
	return n;
}

static UNUSED void node_traverse(void *obj, mp_visit_fn visit, void *arg)
{
	struct node *n = obj;

	for (int i = 0; i < NODE_SLOTS; i++)
		visit(n->ref[i], arg);
}

static UNUSED void node_clear(void *obj)
{
	struct node *n = obj;

	log_event(EV_CLEAR, n->id);
	for (int i = 0; i < NODE_SLOTS; i++) {
		void *r = n->ref[i];
		n->ref[i] = NULL;
		mp_decref(r);
	}
}

static UNUSED void node_finalize(void *obj)
{
	struct node *n = obj;

	log_event(EV_FINALIZE, n->id);
	if (n->resurrect) {
		n->resurrect = 0;
		resurrected = mp_incref(obj);
	}
}

static UNUSED const struct mp_type node_type = {
	.name = "node",
	.size = sizeof(struct node),
	.traverse = node_traverse,
	.clear = node_clear,
	.finalize = node_finalize,
};

/* Holds references but cannot drop them: garbage reaching it is stuck. */
static UNUSED const struct mp_type stuck_type = {
	.name = "stuck",
	.size = sizeof(struct node),
	.traverse = node_traverse,
	.finalize = node_finalize,
};

/* Holds no references: untracked. */
static UNUSED const struct mp_type leaf_type = {
	.name = "leaf",
	.size = sizeof(int),
};

static UNUSED struct node *node_new_typed(const struct mp_type *type, int id)
{
	struct node *n = mp_new(type);

	cr_assert_not_null(n);
	n->id = id;
	return n;
}

static UNUSED struct node *node_new(int id)
{
	return node_new_typed(&node_type, id);
}

/* a->ref[slot] = new reference to b */
static UNUSED void node_link(struct node *a, int slot, void *b)
{
	cr_assert_null(a->ref[slot]);
	a->ref[slot] = mp_incref(b);
}

static UNUSED void weak_cb(struct mp_weakref *ref, void *arg)
{
	log_event(EV_CALLBACK, (int)(intptr_t)arg);
	/* The referent is gone by now. */
	cr_assert_null(mp_weakref_get(ref));
}

/* Whether the object a weak reference points to is still alive. */
static UNUSED bool alive(struct mp_weakref *ref)
{
	void *obj = mp_weakref_get(ref);

	mp_decref(obj);
	return obj != NULL;
}
