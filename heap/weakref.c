/*
 * weakref.c: weak references of libmemprof-heap.  Main entry points:
 * mp_weakref_new, mp_weakref_get, and objheap_weakref_clear_all (called
 * when a referent dies, by the deallocator or the collector).
 *
 * A weak reference is itself an object (mp_weakref_type): tracked, so
 * that the collector knows when a weak reference dies together with its
 * referent (then its callback must not run), and refcounted, so that a
 * callback can safely drop it.  The weak references to one object form a
 * doubly linked list, newest first; a hash table maps the object's body to
 * the list's first element, and the OBJ_WEAKREFS flag in the object's
 * header says whether it has an entry, so objects without weak references
 * never look into the table.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "object-private.h"

struct mp_weakref {
	void *referent;  /* NULL once cleared */
	void (*callback)(struct mp_weakref *ref, void *arg);
	void *arg;
	struct mp_weakref *prev, *next;   /* the referent's list */
	struct mp_weakref *pending_next;  /* callbacks to run */
};

/* ---- the table: referent -> first weak reference ------------------------ */

struct wr_entry {
	void *obj;
	struct mp_weakref *first;
};

static struct wr_entry *table;
static size_t table_size;   /* a power of 2, or 0 */
static size_t table_used;

static size_t ptr_hash(const void *p)
{
	uintptr_t x = (uintptr_t)p;

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 32;
	return (size_t)x;
}

static struct wr_entry *table_find(const void *obj)
{
	if (table_size == 0)
		return NULL;
	size_t mask = table_size - 1;
	for (size_t i = ptr_hash(obj) & mask; table[i].obj != NULL; i = (i + 1) & mask) {
		if (table[i].obj == obj)
			return &table[i];
	}
	return NULL;
}

static void table_put(struct wr_entry *t, size_t size, void *obj,
		      struct mp_weakref *first)
{
	size_t mask = size - 1;
	size_t i = ptr_hash(obj) & mask;

	while (t[i].obj != NULL)
		i = (i + 1) & mask;
	t[i].obj = obj;
	t[i].first = first;
}

static int table_reserve(void)
{
	if ((table_used + 1) * 2 <= table_size)
		return 0;
	size_t nsize = table_size ? table_size * 2 : 64;
	struct wr_entry *nt = calloc(nsize, sizeof(*nt));
	if (nt == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < table_size; i++) {
		if (table[i].obj != NULL)
			table_put(nt, nsize, table[i].obj, table[i].first);
	}
	free(table);
	table = nt;
	table_size = nsize;
	return 0;
}

/* Removes an entry, shifting back the entries of its probe run. */
static void table_remove(struct wr_entry *e)
{
	size_t mask = table_size - 1;
	size_t hole = (size_t)(e - table);

	for (size_t i = (hole + 1) & mask; table[i].obj != NULL; i = (i + 1) & mask) {
		size_t home = ptr_hash(table[i].obj) & mask;
		/* Move entry i into the hole when its home is not in
		 * (hole, i] (cyclically). */
		if (((i - home) & mask) >= ((i - hole) & mask)) {
			table[hole] = table[i];
			hole = i;
		}
	}
	table[hole].obj = NULL;
	table[hole].first = NULL;
	table_used--;
	if (table_used == 0) {
		free(table);
		table = NULL;
		table_size = 0;
	}
}

/* ---- the weakref type ---------------------------------------------------- */

/* Unlinks ref from its referent's list. */
static void detach(struct mp_weakref *ref)
{
	void *obj = ref->referent;

	if (obj == NULL)
		return;
	if (ref->prev != NULL) {
		ref->prev->next = ref->next;
	} else {
		struct wr_entry *e = table_find(obj);
		if (ref->next != NULL) {
			e->first = ref->next;
		} else {
			table_remove(e);
			head_unset(obj_head(obj), OBJ_WEAKREFS);
		}
	}
	if (ref->next != NULL)
		ref->next->prev = ref->prev;
	ref->referent = NULL;
	ref->prev = ref->next = NULL;
}

static void weakref_traverse(void *obj, mp_visit_fn visit, void *arg)
{
	/* A weak reference holds no strong reference; it is tracked so
	 * that the collector sees it die with its owner. */
}

static void weakref_clear(void *obj)
{
	detach(obj);
}

const struct mp_type mp_weakref_type = {
	.name = "weakref",
	.size = sizeof(struct mp_weakref),
	.traverse = weakref_traverse,
	.clear = weakref_clear,
};

/* ---- the internal interface ------------------------------------------------ */

void objheap_weakref_clear_all(struct obj_head *h, bool skip_collecting,
			       struct mp_weakref **pending)
{
	struct wr_entry *e = table_find(obj_body(h));

	head_unset(h, OBJ_WEAKREFS);
	if (e == NULL)
		return;
	struct mp_weakref *ref = e->first;
	table_remove(e);
	while (ref != NULL) {
		struct mp_weakref *next = ref->next;
		struct obj_head *rh = obj_head(ref);

		ref->referent = NULL;
		ref->prev = ref->next = NULL;
		if (ref->callback != NULL &&
		    !(skip_collecting && head_has(rh, OBJ_COLLECTING))) {
			rh->refcnt++;
			ref->pending_next = *pending;
			*pending = ref;
		}
		ref = next;
	}
}

size_t objheap_weakref_run_callbacks(struct mp_weakref *pending)
{
	size_t n = 0;

	while (pending != NULL) {
		struct mp_weakref *ref = pending;
		struct obj_head *rh = obj_head(ref);

		pending = ref->pending_next;
		ref->pending_next = NULL;
		ref->callback(ref, ref->arg);
		n++;
		if (--rh->refcnt == 0)
			objheap_object_dealloc(rh);
	}
	return n;
}

/* ---- the public interface ---------------------------------------------------- */

MP_API struct mp_weakref *mp_weakref_new(void *obj,
					 void (*callback)(struct mp_weakref *ref, void *arg),
					 void *arg)
{
	if (obj == NULL) {
		errno = EINVAL;
		return NULL;
	}
	OBJHEAP_ENTER();
	OBJHEAP_CHECK(obj);
	struct obj_head *h = obj_head(obj);
	struct mp_weakref *ref = NULL;
	if (h->refcnt == 0) {
		errno = EINVAL;
		goto out;
	}
	/* Hold obj: the allocation may run a collection. */
	h->refcnt++;
	ref = objheap_object_new(&mp_weakref_type, 0);
	if (ref != NULL && table_reserve() < 0) {
		struct obj_head *rh = obj_head(ref);
		if (--rh->refcnt == 0)
			objheap_object_dealloc(rh);
		ref = NULL;
		errno = ENOMEM;
	}
	if (ref != NULL) {
		ref->referent = obj;
		ref->callback = callback;
		ref->arg = arg;
		struct wr_entry *e = table_find(obj);
		if (e != NULL) {
			ref->next = e->first;
			e->first->prev = ref;
			e->first = ref;
		} else {
			table_put(table, table_size, obj, ref);
			table_used++;
			head_set(h, OBJ_WEAKREFS);
		}
	}
	if (--h->refcnt == 0)
		objheap_object_dealloc(h);
out:
	OBJHEAP_LEAVE();
	return ref;
}

MP_API void *mp_weakref_get(struct mp_weakref *ref)
{
	if (ref == NULL)
		return NULL;
	OBJHEAP_ENTER();
	OBJHEAP_CHECK(ref);
	void *obj = ref->referent;
	if (obj != NULL && obj_head(obj)->refcnt > 0)
		obj_head(obj)->refcnt++;
	else
		obj = NULL;
	OBJHEAP_LEAVE();
	return obj;
}

MP_API void mp_weakref_free(struct mp_weakref *ref)
{
	mp_decref(ref);
}
