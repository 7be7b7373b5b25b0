/*
 * object.c: the object lifecycle of libmemprof-heap: allocation (mp_new),
 * reference counting (mp_incref, mp_decref), deallocation and the
 * allocator hooks.  The collector is in gc.c, weak references in
 * weakref.c, interned strings in intern.c, snapshots and enumeration in
 * object-introspect.c.  Main entry points: mp_new and mp_decref.
 *
 * Allocation goes through two function pointers chosen once, at the first
 * allocation: memprof_heap_alloc/memprof_heap_free when the process
 * exports both (memprof's preload library), else the private pool
 * allocator (heap/pool.h).
 *
 * Deallocation, when a refcount reaches 0:
 *   1. the object leaves the collector's lists;
 *   2. its finalizer runs, once in its life, with the refcount held at 1:
 *      if the refcount is still above 0 afterwards the object was
 *      resurrected, goes back to generation 0, and that is all;
 *   3. the weak references to it are cleared, then their callbacks run;
 *   4. type->clear drops its references (which may free more objects);
 *   5. the block is freed.
 * Step 4 recurses through chains of objects.  Past TRASH_DEPTH nested
 * deallocations, tracked objects are put on a "trash" stack instead and
 * deallocated by the outermost deallocation, so a million-long linked list
 * is freed in bounded stack space.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "object-private.h"
#include "pool.h"

#define TRASH_DEPTH 50

/* ---- fatal errors (the calling program's bugs) -------------------------- */

void objheap_fatal(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "memprof-heap: fatal: ");

	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	size_t len = strlen(buf);
	if (len < sizeof(buf) - 1)
		buf[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, buf, len);
	(void)w;
	abort();
}

#if MEMPROF_DEBUG_LEVEL >= 1
/* The thread inside the library, and how deeply (callbacks re-enter). */
static pthread_t owner_thread;
static int owner_busy;
static unsigned owner_depth;

void objheap_enter(const char *func)
{
	pthread_t me = pthread_self();
	int busy = __atomic_load_n(&owner_busy, __ATOMIC_ACQUIRE);

	if (busy && pthread_equal(owner_thread, me)) {
		owner_depth++;
		return;
	}
	int expected = 0;
	if (!__atomic_compare_exchange_n(&owner_busy, &expected, 1, false,
					 __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
		objheap_fatal("%s() called while another thread is inside the "
			      "object heap: the program must serialize all "
			      "calls to libmemprof-heap (see memprof-heap(3))",
			      func);
	owner_thread = me;
	owner_depth = 1;
}

void objheap_leave(void)
{
	if (--owner_depth == 0)
		__atomic_store_n(&owner_busy, 0, __ATOMIC_RELEASE);
}

void objheap_object_check(const void *obj, const char *func)
{
	const struct obj_head *h = obj_head(obj);

	if (h->refcnt == OBJ_DEAD_REFCNT)
		objheap_fatal("%s(%p): the object was already freed (use after "
			      "free in the calling program)", func, obj);
	const struct type_rec *rec = head_rec(h);
	if (rec == NULL || rec->magic != TYPE_REC_MAGIC)
		objheap_fatal("%s(%p): not a live object from mp_new (freed, "
			      "or a bad pointer in the calling program)",
			      func, obj);
}
#endif

/* ---- the allocator ---------------------------------------------------- */

static void *first_alloc(size_t size);
static void own_free(void *block);

static void *(*alloc_fn)(size_t) = first_alloc;
static void (*free_fn)(void *) = own_free;
static bool using_hooks;

static void own_free(void *block)
{
	enum pool_free_result r = pool_free(block);

	if (MEMPROF_DEBUG_LEVEL >= 1 && r != POOL_FREE_OK)
		objheap_fatal("freeing object block %p: the pool allocator "
			      "refused it (result %d): heap corruption",
			      block, (int)r);
}

static void choose_allocator(void)
{
	void *a = dlsym(RTLD_DEFAULT, "memprof_heap_alloc");
	void *f = dlsym(RTLD_DEFAULT, "memprof_heap_free");

	if (a != NULL && f != NULL) {
		memcpy(&alloc_fn, &a, sizeof(a));
		memcpy(&free_fn, &f, sizeof(f));
		using_hooks = true;
	} else {
		alloc_fn = pool_malloc;
		free_fn = own_free;
		using_hooks = false;
	}
}

static void *first_alloc(size_t size)
{
	choose_allocator();
	return alloc_fn(size);
}

MP_API bool mp_heap_uses_memprof_hooks(void)
{
	if (alloc_fn == first_alloc)
		choose_allocator();
	return using_hooks;
}

/* ---- type records ------------------------------------------------------ */

struct type_rec *objheap_type_recs;
static struct type_rec **rec_table;   /* open addressing, by type address */
static size_t rec_table_size;         /* a power of 2, or 0 */
static size_t rec_count;
static struct type_rec *last_rec;     /* the last type allocated */
static struct type_rec **last_rec_link = &objheap_type_recs;

static size_t type_hash(const struct mp_type *type)
{
	uintptr_t x = (uintptr_t)type;

	x ^= x >> 17;
	x *= 0x9e3779b97f4a7c15ULL;
	return (size_t)(x >> 32);
}

static int rec_table_grow(void)
{
	size_t nsize = rec_table_size ? rec_table_size * 2 : 64;
	struct type_rec **nt = calloc(nsize, sizeof(*nt));

	if (nt == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < rec_table_size; i++) {
		struct type_rec *r = rec_table[i];
		if (r == NULL)
			continue;
		size_t j = type_hash(r->type) & (nsize - 1);
		while (nt[j] != NULL)
			j = (j + 1) & (nsize - 1);
		nt[j] = r;
	}
	free(rec_table);
	rec_table = nt;
	rec_table_size = nsize;
	return 0;
}

static struct type_rec *type_rec_get(const struct mp_type *type)
{
	if (last_rec != NULL && last_rec->type == type)
		return last_rec;
	if (rec_table_size != 0) {
		size_t j = type_hash(type) & (rec_table_size - 1);
		for (; rec_table[j] != NULL; j = (j + 1) & (rec_table_size - 1)) {
			if (rec_table[j]->type == type)
				return last_rec = rec_table[j];
		}
	}
	if ((rec_count + 1) * 2 > rec_table_size && rec_table_grow() < 0)
		return NULL;

	struct type_rec *r;
	if (posix_memalign((void **)&r, 128, sizeof(*r)) != 0)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->type = type;
	r->magic = TYPE_REC_MAGIC;
	r->traverse = type->traverse;
	r->clear = type->clear;
	r->tracked = type->traverse != NULL;
	r->has_clear = type->clear != NULL;
	r->has_finalize = type->finalize != NULL;
	r->varsize = type == &mp_str_type;
	r->size = type->size;
	*last_rec_link = r;
	last_rec_link = &r->next_rec;

	size_t j = type_hash(type) & (rec_table_size - 1);
	while (rec_table[j] != NULL)
		j = (j + 1) & (rec_table_size - 1);
	rec_table[j] = r;
	rec_count++;
	return last_rec = r;
}

/* Frees the records at unload, so leak checkers see a clean exit. */
__attribute__((destructor)) static void type_recs_free(void)
{
	struct type_rec *r = objheap_type_recs;

	/* Live objects still point at their records: keep them then. */
	for (; r != NULL; r = r->next_rec) {
		if (r->live_count != 0)
			return;
	}
	for (r = objheap_type_recs; r != NULL;) {
		struct type_rec *next = r->next_rec;
		free(r);
		r = next;
	}
	free(rec_table);
	rec_table = NULL;
	rec_table_size = rec_count = 0;
	objheap_type_recs = last_rec = NULL;
	last_rec_link = &objheap_type_recs;
}

/* ---- allocation ---------------------------------------------------------- */

void *objheap_object_new(const struct mp_type *type, size_t extra)
{
	if (type == NULL) {
		errno = EINVAL;
		return NULL;
	}
	struct type_rec *rec = type_rec_get(type);
	if (rec == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	size_t prefix = sizeof(struct obj_head) +
			(rec->tracked ? sizeof(struct gc_link) : 0);
	size_t body = type->size + extra;
	if (body < type->size || body > SIZE_MAX - prefix) {
		errno = ENOMEM;
		return NULL;
	}
	/* Like the allocation it counts, a collection comes first. */
	struct gc_generation *g0 = &objheap_gc.gens[0];
	if (rec->tracked) {
		g0->count++;
		if (objheap_gc.enabled && g0->threshold != 0 &&
		    g0->count > g0->threshold && !objheap_gc.collecting)
			objheap_gc_collect_generations();
	}
	char *block = alloc_fn(prefix + body);
	if (block == NULL) {
		if (rec->tracked && g0->count > 0)
			g0->count--;
		errno = ENOMEM;
		return NULL;
	}
	struct obj_head *h = (struct obj_head *)(block + prefix -
						 sizeof(struct obj_head));
	h->rec_flags = (uintptr_t)rec;
	h->refcnt = 1;
	memset(block + prefix, 0, body);
	if (rec->tracked)
		gc_list_append((struct gc_link *)block, &g0->head);
	rec->live_count++;
	rec->live_bytes += body;
	return block + prefix;
}

MP_API void *mp_new(const struct mp_type *type)
{
	/* The library's own types are made by their own functions. */
	if (type == &mp_str_type || type == &mp_weakref_type) {
		errno = EINVAL;
		return NULL;
	}
	OBJHEAP_ENTER();
	void *obj = objheap_object_new(type, 0);
	OBJHEAP_LEAVE();
	return obj;
}

/* ---- reference counting ---------------------------------------------------- */

MP_API void *mp_incref(void *obj)
{
	if (obj == NULL)
		return NULL;
	OBJHEAP_ENTER();
	OBJHEAP_CHECK(obj);
	struct obj_head *h = obj_head(obj);
	if (MEMPROF_DEBUG_LEVEL >= 1 && h->refcnt == 0)
		objheap_fatal("mp_incref(%p): the object's refcount is 0, it is "
			      "being freed (a reference was dropped too early "
			      "in the calling program)", obj);
	h->refcnt++;
	OBJHEAP_LEAVE();
	return obj;
}

MP_API void mp_decref(void *obj)
{
	if (obj == NULL)
		return;
	OBJHEAP_ENTER();
	OBJHEAP_CHECK(obj);
	struct obj_head *h = obj_head(obj);
	if (MEMPROF_DEBUG_LEVEL >= 1 && h->refcnt == 0)
		objheap_fatal("mp_decref(%p): refcount underflow on a %s object "
			      "(more mp_decref than references in the calling "
			      "program)", obj,
			      head_rec(h)->type->name ? head_rec(h)->type->name : "?");
	if (--h->refcnt == 0)
		objheap_object_dealloc(h);
	OBJHEAP_LEAVE();
}

MP_API size_t mp_refcount(const void *obj)
{
	if (obj == NULL)
		return 0;
	OBJHEAP_CHECK(obj);
	return obj_head(obj)->refcnt;
}

MP_API const struct mp_type *mp_typeof(const void *obj)
{
	if (obj == NULL)
		return NULL;
	OBJHEAP_CHECK(obj);
	return head_rec(obj_head(obj))->type;
}

MP_API bool mp_gc_is_tracked(const void *obj)
{
	if (obj == NULL)
		return false;
	OBJHEAP_CHECK(obj);
	return head_rec(obj_head(obj))->tracked;
}

/* ---- deallocation ------------------------------------------------------------ */

static unsigned dealloc_depth;
static struct gc_link *trash;     /* chained through u.stack */

static void untrack(struct obj_head *h)
{
	struct gc_link *l = obj_link(obj_body(h));

	if (head_has(h, OBJ_COLLECTING))
		head_set(h, OBJ_GC_DEATH);
	head_unset(h, OBJ_COLLECTING | OBJ_TENTATIVE);
	if (l->next != NULL) {
		gc_list_remove(l);
		if (objheap_gc.gens[0].count > 0)
			objheap_gc.gens[0].count--;
	}
}

static void free_object(struct obj_head *h)
{
	struct type_rec *rec = head_rec(h);
	void *block = rec->tracked ? (void *)obj_link(obj_body(h)) : (void *)h;

	rec->live_count--;
	rec->live_bytes -= obj_body_size(h);
	if (head_has(h, OBJ_GC_DEATH))
		objheap_gc.gc_deaths++;
	if (MEMPROF_DEBUG_LEVEL >= 1)
		h->refcnt = OBJ_DEAD_REFCNT;
	free_fn(block);
}

static void dealloc_now(struct obj_head *h)
{
	struct type_rec *rec = head_rec(h);
	const struct mp_type *type = rec->type;
	void *body = obj_body(h);

	if (rec->tracked)
		untrack(h);
	if (type->finalize != NULL && !head_has(h, OBJ_FINALIZED)) {
		head_set(h, OBJ_FINALIZED);
		h->refcnt = 1;
		type->finalize(body);
		if (--h->refcnt != 0) {
			/* Resurrected: alive again, never finalized again. */
			head_unset(h, OBJ_GC_DEATH);
			if (rec->tracked) {
				gc_list_append(obj_link(body),
					       &objheap_gc.gens[0].head);
				objheap_gc.gens[0].count++;
			}
			return;
		}
	}
	if (head_has(h, OBJ_WEAKREFS)) {
		struct mp_weakref *pending = NULL;
		objheap_weakref_clear_all(h, false, &pending);
		objheap_weakref_run_callbacks(pending);
	}
	if (type->clear != NULL && !head_has(h, OBJ_CLEARED))
		type->clear(body);
	free_object(h);
}

void objheap_object_dealloc(struct obj_head *h)
{
	if (dealloc_depth >= TRASH_DEPTH && head_rec(h)->tracked) {
		struct gc_link *l = obj_link(obj_body(h));
		untrack(h);
		l->u.stack = trash;
		trash = l;
		return;
	}
	dealloc_depth++;
	dealloc_now(h);
	dealloc_depth--;
	while (dealloc_depth == 0 && trash != NULL) {
		struct gc_link *l = trash;
		trash = l->u.stack;
		dealloc_depth++;
		dealloc_now(link_head(l));
		dealloc_depth--;
	}
}
