/*
 * object-private.h: the object heap's internals, shared by object.c (the
 * object lifecycle), gc.c (the collector), weakref.c and intern.c.
 *
 * Memory layout of an object (the body is what the API hands out):
 *
 *   tracked (type->traverse != NULL)        untracked
 *   +----------------------------+
 *   | struct gc_link  next       |  16 bytes
 *   |                 prev/refs  |
 *   +----------------------------+          +----------------------+
 *   | struct obj_head rec|flags  |  16      | struct obj_head      |  16
 *   |                 refcnt     |          |                      |
 *   +----------------------------+  <- body +----------------------+ <- body
 *   | type->size bytes           |          | type->size bytes     |
 *
 * Blocks are 16-byte aligned, so bodies are too.  obj_head.rec_flags holds
 * the type record's address (128-byte aligned) and seven flag bits.
 *
 * gc_link.u is the previous object in the list the object is on (a
 * generation, the garbage list, a collection's working lists), except
 * while a collection runs its first phases: then it holds gc_refs, and
 * later the mark stack's link (see gc.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memprof/heap.h"

#ifndef MEMPROF_DEBUG_LEVEL
#define MEMPROF_DEBUG_LEVEL 0
#endif

struct gc_link {
	struct gc_link *next;
	union {
		struct gc_link *prev;
		intptr_t refs;
		struct gc_link *stack;
	} u;
};

/* Bookkeeping for one type: found from the type's address through a hash
 * table at mp_new, then reached from each object's header. */
struct type_rec {
	const struct mp_type *type;
	/* copies of type->traverse and type->clear, one load closer */
	void (*traverse)(void *obj, mp_visit_fn visit, void *arg);
	void (*clear)(void *obj);
	size_t live_count;
	size_t live_bytes;
	uint32_t magic;
	bool tracked;        /* type->traverse != NULL */
	bool has_clear;
	bool has_finalize;
	bool varsize;        /* a string: characters follow the body */
	size_t size;         /* type->size */
	struct type_rec *next_rec;   /* all records, in creation order */
} __attribute__((aligned(128)));

#define TYPE_REC_MAGIC 0x6d707479u

struct obj_head {
	uintptr_t rec_flags;
	size_t refcnt;
};

enum {
	OBJ_COLLECTING = 1u << 0, /* in the set a collection examines */
	OBJ_TENTATIVE = 1u << 1,  /* on a collection's unreachable list */
	OBJ_FINALIZED = 1u << 2,  /* its finalizer has run */
	OBJ_WEAKREFS = 1u << 3,   /* weak references point to it */
	OBJ_GARBAGE = 1u << 4,    /* on the garbage list */
	OBJ_CLEARED = 1u << 5,    /* cleared by the collector, dying */
	OBJ_GC_DEATH = 1u << 6,   /* left the lists while unreachable: its
				     free counts as collected */
	OBJ_FLAG_MASK = 127u,
};

/* What a freed object's refcount is set to (debug builds), so that a late
 * incref or decref is recognised as a use after free. */
#define OBJ_DEAD_REFCNT ((size_t)0xdeadbeefdeadbeefULL)

static inline struct obj_head *obj_head(const void *body)
{
	return (struct obj_head *)((uintptr_t)body - sizeof(struct obj_head));
}

static inline void *obj_body(const struct obj_head *h)
{
	return (char *)h + sizeof(struct obj_head);
}

static inline struct gc_link *obj_link(const void *body)
{
	return (struct gc_link *)((uintptr_t)body - sizeof(struct obj_head) -
				  sizeof(struct gc_link));
}

static inline void *link_body(const struct gc_link *l)
{
	return (char *)l + sizeof(struct gc_link) + sizeof(struct obj_head);
}

static inline struct obj_head *link_head(const struct gc_link *l)
{
	return (struct obj_head *)((char *)l + sizeof(struct gc_link));
}

static inline struct type_rec *head_rec(const struct obj_head *h)
{
	return (struct type_rec *)(h->rec_flags & ~(uintptr_t)OBJ_FLAG_MASK);
}

static inline bool head_has(const struct obj_head *h, unsigned flag)
{
	return (h->rec_flags & flag) != 0;
}

static inline void head_set(struct obj_head *h, unsigned flag)
{
	h->rec_flags |= flag;
}

static inline void head_unset(struct obj_head *h, unsigned flag)
{
	h->rec_flags &= ~(uintptr_t)flag;
}

/* ---- doubly linked lists with a sentinel head -------------------------- */

static inline void gc_list_init(struct gc_link *list)
{
	list->next = list;
	list->u.prev = list;
}

static inline bool gc_list_is_empty(const struct gc_link *list)
{
	return list->next == list;
}

static inline void gc_list_append(struct gc_link *node, struct gc_link *list)
{
	struct gc_link *last = list->u.prev;

	node->next = list;
	node->u.prev = last;
	last->next = node;
	list->u.prev = node;
}

static inline void gc_list_remove(struct gc_link *node)
{
	node->u.prev->next = node->next;
	node->next->u.prev = node->u.prev;
	node->next = NULL;
}

static inline void gc_list_move(struct gc_link *node, struct gc_link *list)
{
	node->u.prev->next = node->next;
	node->next->u.prev = node->u.prev;
	gc_list_append(node, list);
}

/* Appends all of from to to; from becomes empty. */
static inline void gc_list_merge(struct gc_link *from, struct gc_link *to)
{
	if (gc_list_is_empty(from))
		return;
	struct gc_link *last = to->u.prev;

	last->next = from->next;
	from->next->u.prev = last;
	to->u.prev = from->u.prev;
	to->u.prev->next = to;
	gc_list_init(from);
}

size_t gc_list_size(const struct gc_link *list);

/* ---- the collector's state (gc.c) --------------------------------------- */

struct gc_generation {
	struct gc_link head;
	unsigned threshold;
	unsigned count;
	struct mp_gc_stats stats;
};

struct gc_state {
	struct gc_generation gens[MP_GC_GENERATIONS];
	struct gc_link garbage;
	size_t garbage_count;
	size_t long_lived_total;
	size_t long_lived_pending;
	size_t gc_deaths;   /* objects freed while OBJ_GC_DEATH */
	unsigned debug;
	bool enabled;
	bool collecting;
};

extern struct gc_state objheap_gc;

/* Runs the collection the thresholds call for, if any (from mp_new). */
void objheap_gc_collect_generations(void);

/* ---- the object lifecycle (object.c) ------------------------------------ */

/* Allocates an object of the given type with extra bytes after its body
 * (mp_new with extra == 0; strings use extra). */
void *objheap_object_new(const struct mp_type *type, size_t extra);
/* The refcount reached zero: finalize, weakrefs, clear, free (deferred
 * when deallocations nest too deeply). */
void objheap_object_dealloc(struct obj_head *h);
/* Debug builds: aborts with a message naming the bug. */
void objheap_object_check(const void *obj, const char *func);
__attribute__((noreturn, format(printf, 1, 2)))
void objheap_fatal(const char *fmt, ...);

/* Re-entrancy and thread checks around every entry point. */
#if MEMPROF_DEBUG_LEVEL >= 1
void objheap_enter(const char *func);
void objheap_leave(void);
#define OBJHEAP_ENTER() objheap_enter(__func__)
#define OBJHEAP_LEAVE() objheap_leave()
#define OBJHEAP_CHECK(obj) objheap_object_check((obj), __func__)
#else
#define OBJHEAP_ENTER() ((void)0)
#define OBJHEAP_LEAVE() ((void)0)
#define OBJHEAP_CHECK(obj) ((void)0)
#endif

/* ---- weak references (weakref.c) ---------------------------------------- */

/* Clears every weak reference to h's object and links those that have a
 * callback (and are not themselves in the set being collected, when
 * skip_collecting) onto *pending, each with a new reference. */
void objheap_weakref_clear_all(struct obj_head *h, bool skip_collecting,
			       struct mp_weakref **pending);
/* Runs and drops the callbacks collected by objheap_weakref_clear_all.
 * Returns the number run. */
size_t objheap_weakref_run_callbacks(struct mp_weakref *pending);

/* ---- interned strings (intern.c) ----------------------------------------- */

/* Bytes a string object holds past mp_str_type.size. */
size_t objheap_str_extra(const void *str_obj);

/* Body bytes of an object (its type's size, plus a string's characters). */
static inline size_t obj_body_size(const struct obj_head *h)
{
	const struct type_rec *rec = head_rec(h);

	if (rec->varsize)
		return rec->size + objheap_str_extra(obj_body(h));
	return rec->size;
}

/* ---- type records (object.c) --------------------------------------------- */

/* The first record; records chain through next_rec. */
extern struct type_rec *objheap_type_recs;
