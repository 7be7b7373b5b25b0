/*
 * memprof/heap.h: libmemprof-heap, refcounted objects with a generational
 * cycle collector, for C programs.
 *
 * An object is a body of type->size bytes that the library allocates
 * (mp_new) and frees when its reference count reaches zero (mp_decref).
 * The pointer the API hands out is the body; a hidden header in front of
 * it holds the refcount, the type and, for objects whose type has a
 * traverse function, the collector's links.  Reference cycles, which
 * refcounting alone never frees, are found and broken by the collector:
 * automatically after enough allocations, or on mp_gc_collect().
 *
 * Types.  A type tells the library how big the body is and how to see the
 * references it holds:
 *   - traverse(obj, visit, arg) calls visit(referent, arg) once for every
 *     reference obj holds to another object (visit(NULL, arg) is allowed
 *     and ignored).  It must not do anything else.  A type with no
 *     traverse holds no references and is not tracked by the collector.
 *   - clear(obj) drops every reference obj holds (mp_decref each one and
 *     set the field to NULL first, so a second call does nothing).  It is
 *     how the collector breaks cycles and how an object drops its
 *     references when it dies.  A tracked type with no clear cannot be
 *     broken: garbage that reaches such an object is "uncollectable".
 *   - finalize(obj), optional, runs at most once per object, before it is
 *     freed, with the object still intact.  It may resurrect the object
 *     (store it somewhere with mp_incref): then the object lives on and
 *     its finalizer is not run again.
 * When the refcount reaches zero: finalize (once), then the weak
 * references to the object are cleared and their callbacks run, then
 * clear, then the memory is freed.
 *
 * Threads: the heap is not thread safe.  All calls into the library, on
 * any object, must be serialized by the caller (one lock around every use,
 * as an interpreter's global lock does), and callbacks run on the calling
 * thread.  Builds with MEMPROF_DEBUG_LEVEL >= 1 detect two threads inside
 * the library at once and abort with a message on stderr; they also abort
 * on refcount underflow and on most uses of a freed object, which are bugs
 * of the calling program.
 *
 * Memory: objects are allocated through two function pointers chosen once,
 * at the first allocation: when the process exports both
 * memprof_heap_alloc and memprof_heap_free (the preload library of
 * `memprof run` does), objects come from them, so memprof's tracer sees
 * every object; otherwise they come from memprof's own pool allocator,
 * linked privately into this library.
 *
 * See memprof-heap(3).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MP_API __attribute__((visibility("default")))

typedef void (*mp_visit_fn)(void *referent, void *arg);

struct mp_type {
	const char *name;
	size_t size;    /* bytes of the object body */
	/* NULL: holds no references (the object is not tracked) */
	void (*traverse)(void *obj, mp_visit_fn visit, void *arg);
	/* drop the references it holds (breaks cycles); idempotent */
	void (*clear)(void *obj);
	/* optional; runs once, before the object is freed */
	void (*finalize)(void *obj);
};

/* ---- objects ---------------------------------------------------------- */

/* A new object of the given type: zeroed body, refcount 1, tracked by the
 * collector when the type has a traverse function.  May run an automatic
 * collection first.  NULL with errno ENOMEM when memory is exhausted, or
 * EINVAL for a NULL type. */
MP_API void *mp_new(const struct mp_type *type);
/* Adds a reference; returns obj.  NULL is accepted (and returned). */
MP_API void *mp_incref(void *obj);
/* Drops a reference; at zero: finalize, clear weak references, clear,
 * free.  NULL is accepted. */
MP_API void mp_decref(void *obj);
MP_API size_t mp_refcount(const void *obj);
MP_API const struct mp_type *mp_typeof(const void *obj);
/* Whether the collector tracks obj (its type has a traverse function). */
MP_API bool mp_gc_is_tracked(const void *obj);

/* ---- the collector ---------------------------------------------------- */

#define MP_GC_GENERATIONS 3

/* Collects generation 0, 1 or 2 together with the younger ones; -1 (or 2)
 * collects everything.  Runs even when automatic collection is disabled.
 * Returns the number of unreachable objects freed (with
 * MP_GC_DEBUG_SAVEALL: moved to the garbage list instead); 0 when called
 * while a collection is already running (from a finalizer) or with an
 * invalid generation. */
MP_API size_t mp_gc_collect(int generation);
MP_API void mp_gc_enable(void);
MP_API void mp_gc_disable(void);
MP_API bool mp_gc_isenabled(void);
/* Automatic collection: generation 0 is collected when allocations minus
 * deallocations of tracked objects exceed gen0; generation 1 after gen1
 * collections of generation 0, generation 2 after gen2 collections of
 * generation 1, and only when the objects that survived into generation 2
 * since the last full collection exceed a quarter of those that survived
 * it.  gen0 == 0 disables automatic collection.  Defaults: 700, 10, 10. */
MP_API void mp_gc_set_threshold(unsigned gen0, unsigned gen1, unsigned gen2);
MP_API void mp_gc_get_threshold(unsigned thresholds[MP_GC_GENERATIONS]);
/* The counters compared with the thresholds. */
MP_API void mp_gc_get_count(unsigned counts[MP_GC_GENERATIONS]);

struct mp_gc_stats {
	size_t collections;   /* collections of this generation */
	size_t collected;     /* unreachable objects freed (or saved) */
	size_t uncollectable; /* unreachable objects that could not be freed */
};
MP_API void mp_gc_get_stats(struct mp_gc_stats stats[MP_GC_GENERATIONS]);

/* Debug flags. */
#define MP_GC_DEBUG_SAVEALL 0x20u /* keep all garbage in the garbage list, do
				     not free it (no finalizer, no weak
				     reference callback, no clear runs) */
MP_API void mp_gc_set_debug(unsigned flags);
MP_API unsigned mp_gc_get_debug(void);

typedef void (*mp_object_fn)(void *obj, const struct mp_type *type,
			     size_t refcount, void *arg);

/* The garbage list holds a reference to every object saved under
 * MP_GC_DEBUG_SAVEALL and every uncollectable object: an unreachable object
 * whose type has no clear function, and every unreachable object it
 * reaches (left intact: no finalizer, no clear).  Those objects are no
 * longer examined by the collector.  fn must not create or free objects.
 * Returns the number of objects visited. */
MP_API size_t mp_gc_garbage_foreach(mp_object_fn fn, void *arg);
MP_API size_t mp_gc_garbage_count(void);
/* Empties the garbage list: its objects go back to the oldest generation
 * and the list's references are dropped (objects that only the list held
 * alive are freed now when they are not in a cycle, by the next full
 * collection otherwise).  Returns the number of objects released. */
MP_API size_t mp_gc_garbage_release(void);

/* ---- weak references ---------------------------------------------------- */

/* A weak reference is itself an object (type mp_weakref_type, tracked, so
 * an object that stores one should visit it in its traverse function and
 * drop it in clear).  It does not keep its referent alive.  When the
 * referent dies, the weak reference is cleared and then callback(ref, arg)
 * runs, unless the weak reference itself dies in the same collection.
 * Returns a new reference, NULL with errno EINVAL (obj NULL or dead) or
 * ENOMEM. */
struct mp_weakref;
MP_API struct mp_weakref *mp_weakref_new(void *obj,
					 void (*callback)(struct mp_weakref *ref, void *arg),
					 void *arg);
/* A new reference to the referent, or NULL once it died. */
MP_API void *mp_weakref_get(struct mp_weakref *ref);
/* Drops the reference mp_weakref_new returned (mp_decref on the weak
 * reference); once the weak reference dies its callback never runs.
 * NULL is accepted. */
MP_API void mp_weakref_free(struct mp_weakref *ref);
MP_API extern const struct mp_type mp_weakref_type;

/* ---- interned strings ----------------------------------------------------- */

/* One shared immutable string object per content: returns a new reference
 * to it, creating it on first use.  The object is untracked; it is freed
 * when its last reference is dropped (a later call creates it again).
 * NULL with errno EINVAL (s NULL) or ENOMEM. */
MP_API void *mp_intern(const char *s);
/* The characters of a string object from mp_intern (NUL-terminated). */
MP_API const char *mp_str(const void *str_obj);
MP_API size_t mp_str_len(const void *str_obj);
MP_API extern const struct mp_type mp_str_type;

/* ---- introspection (objgraph-style reports) --------------------------- */

/* Calls fn for every live tracked object: the three generations, then the
 * garbage list.  With mp_typeof(obj)->traverse, fn can list what each
 * object references.  fn must not create or free objects.  Returns the
 * number of objects visited; 0 during a collection. */
MP_API size_t mp_heap_foreach(mp_object_fn fn, void *arg);

struct mp_type_count {
	const struct mp_type *type;
	const char *name;   /* type->name, "?" when NULL */
	size_t count;       /* live objects of the type, tracked or not */
	size_t bytes;       /* their bodies' bytes */
};

struct mp_snapshot {
	char label[64];      /* truncated copy of the label ("" for NULL) */
	uint64_t seq;        /* 1 for the first snapshot, then 2, 3... */
	size_t ntypes;
	struct mp_type_count *types; /* most objects first; every type ever
					allocated, counts of 0 included */
	size_t total_count;
	size_t total_bytes;
};

/* Records the live objects' counts by type under label.  The library keeps
 * the last two snapshots.  0 or -ENOMEM (the previous snapshots are kept). */
MP_API int mp_snapshot(const char *label);
/* which 0: the latest snapshot, 1: the one before; NULL when none.  Valid
 * until the next mp_snapshot call. */
MP_API const struct mp_snapshot *mp_snapshot_get(unsigned which);

/* ---- the memprof run hooks ------------------------------------------------- */

/* Exported by the memprof preload library (never by this one):
 *     void *memprof_heap_alloc(size_t size);  16-byte aligned, or NULL
 *     void memprof_heap_free(void *block);
 * looked up once with dlsym(RTLD_DEFAULT, ...).  Returns true when the
 * objects of this process come from them. */
MP_API bool mp_heap_uses_memprof_hooks(void);

#ifdef __cplusplus
}
#endif
