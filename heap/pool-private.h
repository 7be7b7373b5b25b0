/*
 * pool-private.h: the pool allocator's internal types, shared by its files
 * and by nothing else (pool.h is the interface).
 *
 * Glossary (the picture and the invariants are at the top of pool.c):
 *   arena       1 MiB of address space from mmap, 1 MiB aligned, of one
 *               kind: fine (64 slots of 16 KiB) or medium (16 slots of
 *               64 KiB); slot 0 holds struct pool_arena, the others are
 *               pools.
 *   pool        one slot of one size class (fine classes in fine arenas,
 *               medium in medium), described by a struct pool_hdr in its
 *               arena's header slot (never inside the pool itself).
 *   block       one allocation unit of a pool; its metadata (a word and a
 *               struct pool_info) is in the arena's metadata mapping.
 *   heap        struct pool_heap, one per thread: the pools it allocates
 *               from, without any lock.
 *   large block a block over 4096 bytes or aligned over 16, served by the C
 *               library's raw allocator and tracked in pool-large.c.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool.h"

#ifndef MEMPROF_DEBUG_LEVEL
#define MEMPROF_DEBUG_LEVEL 0
#endif

/* ---- asserts: three tiers, for memprof's own invariants only ----------
 * pool_assert: cheap checks (level >= 1); pool_assert_internal: checks of
 * internal consistency on slow paths (level >= 2); pool_assert_expensive:
 * full walks (level >= 3).  Below their level they compile to nothing (the
 * expression is not evaluated).  A user's bad pointer is never an assert:
 * it is reported through enum pool_free_result. */
__attribute__((noreturn, cold)) void pool_assert_fail(const char *expr, const char *file, int line);

#define POOL_ASSERT_ON(e) ((e) ? (void)0 : pool_assert_fail(#e, __FILE__, __LINE__))
#define POOL_ASSERT_OFF(e) ((void)sizeof(!(e)))
#if MEMPROF_DEBUG_LEVEL >= 1
#define pool_assert(e) POOL_ASSERT_ON(e)
#else
#define pool_assert(e) POOL_ASSERT_OFF(e)
#endif
#if MEMPROF_DEBUG_LEVEL >= 2
#define pool_assert_internal(e) POOL_ASSERT_ON(e)
#else
#define pool_assert_internal(e) POOL_ASSERT_OFF(e)
#endif
#if MEMPROF_DEBUG_LEVEL >= 3
#define pool_assert_expensive(e) POOL_ASSERT_ON(e)
#else
#define pool_assert_expensive(e) POOL_ASSERT_OFF(e)
#endif

#define POOL_LIKELY(x) __builtin_expect(!!(x), 1)
#define POOL_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- the raw allocator: glibc's own entry points ------------------------
 * Never the plain malloc symbol: inside the preload library that is
 * memprof's interposed malloc. */
void *__libc_malloc(size_t size);
void *__libc_calloc(size_t nmemb, size_t size);
void *__libc_memalign(size_t alignment, size_t size);
void *__libc_realloc(void *ptr, size_t size);
void __libc_free(void *ptr);

/* ---- geometry ------------------------------------------------------------ */

#define POOL_SLOTS (POOL_ARENA_SIZE / POOL_POOL_SIZE) /* 64, slot 0 = header */
#define POOL_MAX_BLOCKS (POOL_POOL_SIZE / POOL_ALIGNMENT) /* 1024 */
/* A medium arena: 16 slots, at most 113 blocks (of 576 bytes) a pool. */
#define POOL_MEDIUM_SLOTS (POOL_ARENA_SIZE / POOL_MEDIUM_POOL_SIZE)
#define POOL_MEDIUM_MAX_BLOCKS (POOL_MEDIUM_POOL_SIZE / (POOL_FINE_MAX + POOL_FINE_MAX / 8u))
#define POOL_PAGE_SIZE 4096u

/* Per-block metadata, outside the user's bytes, in two dense arrays of the
 * arena's metadata mapping (both indexed by slot * the kind's most blocks a
 * pool + block; each pool header points at its own part):
 *   words: the block's requested size (bits 0..15) and its flags (bits
 *          16..23), 4 bytes, the only metadata malloc and free touch;
 *   info:  the stacks and sequence number, valid when the flags say so.
 * Fresh pages are zeroes: free blocks, nothing recorded. */
#define POOL_W_SIZE 0xffffu
#define POOL_W_LIVE (1u << 16)  /* handed out and not freed since */
#define POOL_W_OWNER (1u << 17) /* info.stack_id and info.seq recorded */
#define POOL_W_FREER (1u << 18) /* info.free_stack_id recorded */

/* Pool states (pool_hdr.state), see the state machine in pool.c. */
enum {
	POOL_STATE_UNCARVED = 0, /* never used: slot above arena->next_slot */
	POOL_STATE_EMPTY,        /* in its arena's free_pools list */
	POOL_STATE_USED,         /* owned, in its heap's used list */
	POOL_STATE_FULL,         /* owned, in its heap's full list */
	POOL_STATE_ABANDONED,    /* owner exited, in the abandoned list */
};

struct pool_info {
	uint64_t seq;
	uint32_t stack_id;
	uint32_t free_stack_id;
};

struct pool_heap;

/* A pool's header, in three cache lines: the fields any thread reads to
 * free into the pool (written when the pool is carved or changes hands),
 * the owner's working fields (written at every local malloc and free; on
 * the first line they made every remote free miss), and thread_free,
 * pushed by other threads (lock-free).  The owner's fields (or, for an
 * EMPTY/ABANDONED pool, the lock of the list it is in) guard all but
 * thread_free. */
struct pool_hdr {
	uint32_t bump;           /* blocks carved so far (lazy carving) */
	uint32_t capacity;       /* pool size / block size */
	uint32_t bsize;          /* pool_class_size(cls), without its branch */
	uint8_t cls;             /* size class; kept after the pool empties */
	uint8_t state;           /* POOL_STATE_* (atomic byte) */
	uint8_t slot;            /* index in the arena, 1..63 (1..15: medium) */
	struct pool_heap *owner; /* atomic; NULL when not owned by a thread */
	uintptr_t base;          /* first byte of the pool */
	uint32_t *words;         /* its blocks' metadata words, fixed per slot */
	struct pool_info *info;  /* and their info */
	void *free __attribute__((aligned(64))); /* local free list, LIFO, linked through blocks */
	uint32_t used;           /* blocks out: live + in thread_free */
	struct pool_hdr *prev, *next; /* in a heap list, abandoned or free list */
	void *thread_free __attribute__((aligned(64))); /* atomic LIFO */
} __attribute__((aligned(64)));

/* The arena header, in the arena's slot 0. */
struct pool_arena {
	uintptr_t base;
	uint8_t shift;                  /* log2 of its pool size */
	bool medium;                    /* medium classes, else fine ones */
	unsigned slots;                 /* POOL_SLOTS or POOL_MEDIUM_SLOTS */
	uint32_t *words;                /* slots * most blocks a pool, entries */
	struct pool_info *info;         /* same, in the same mapping */
	size_t meta_bytes;              /* the metadata mapping's size */
	unsigned nfree;                 /* slots not carved for a class */
	unsigned next_slot;             /* first never-carved slot */
	struct pool_hdr *free_pools;    /* EMPTY pools, linked by next */
	struct pool_arena *prev, *next; /* in arena_buckets[nfree] */
	struct pool_arena *all_next;    /* every mapped arena */
	struct pool_arena *all_prev;
	struct pool_hdr pools[POOL_SLOTS] __attribute__((aligned(64)));
};

_Static_assert(sizeof(struct pool_info) == 16, "info is 16 bytes per block");
_Static_assert(sizeof(struct pool_arena) <= POOL_POOL_SIZE, "arena header fits slot 0");

/* A thread's heap.  Only its thread touches the lists; other threads only
 * bump hint[] (a remote free happened into one of its pools). */
struct pool_heap {
	struct pool_hdr *used[POOL_NUM_CLASSES]; /* head: the allocation pool */
	struct pool_hdr *full[POOL_NUM_CLASSES];
	unsigned seen[POOL_NUM_CLASSES];
	struct pool_heap *all_next;  /* registry of every heap ever made */
	struct pool_heap *free_next; /* recycled heaps */
	bool live;                   /* owned by a running thread */
	bool orphan;                 /* owner vanished in a fork: never reused */
	unsigned hint[POOL_NUM_CLASSES] __attribute__((aligned(64)));
};

/* Byte offset in a pool -> block index, without a division: exact for
 * offsets below the class's pool size (checked exhaustively by the unit
 * tests; (off / 16) * (block size / 16) < 2^24 is what makes it exact). */
#define POOL_RECIP_SHIFT 24
extern const uint32_t pool_class_recip[POOL_NUM_CLASSES];
static inline uint32_t pool_block_index(uintptr_t off, unsigned cls)
{
	return (uint32_t)(((off >> 4) * pool_class_recip[cls]) >> POOL_RECIP_SHIFT);
}

static inline uint32_t *pool_word_of(const struct pool_hdr *p, uint32_t idx)
{
	return &p->words[idx];
}

static inline struct pool_info *pool_info_of(const struct pool_hdr *p, uint32_t idx)
{
	return &p->info[idx];
}

/* The arena of a pool, from its address. */
static inline struct pool_arena *pool_arena_at(const struct pool_hdr *p)
{
	return (struct pool_arena *)(p->base & ~(uintptr_t)(POOL_ARENA_SIZE - 1));
}

/* The bytes of metadata per block (for the statistics). */
#define POOL_META_PER_BLOCK (sizeof(uint32_t) + sizeof(struct pool_info))

/* ---- pool-arena.c: OS layer, arena map, arenas and pool carving --------- */

void *pool_os_map(size_t size);
void pool_os_unmap(void *addr, size_t size);
/* The arena containing addr, or NULL: two loads in the radix table. */
struct pool_arena *pool_arena_of(uintptr_t addr);
/* A fresh pool for class cls (state USED, no owner), NULL when out of
 * memory.  Takes the arena lock. */
struct pool_hdr *pool_arena_carve(unsigned cls);
/* Gives an emptied pool (used == 0, off every list) back to its arena;
 * may unmap the arena.  Takes the arena lock. */
void pool_arena_release(struct pool_hdr *p);
void pool_arena_lock(void);
void pool_arena_unlock(void);
void pool_arena_fork_child(void);
/* Walkers, with the arena lock held by the caller. */
struct pool_arena *pool_arena_first(void);
void pool_arena_counters(struct pool_stats *out);
void pool_arena_own_ranges(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg);

/* ---- pool-large.c: blocks served by the raw allocator -------------------- */

void *pool_large_alloc(size_t size, size_t alignment, bool zero);
/* *size gets the freed block's requested size, *seq (when seq is not NULL)
 * the allocation seq pool_block_set_owner() gave it. */
enum pool_free_result pool_large_free(void *ptr, uint32_t free_stack_id, size_t *size,
				      uint64_t *seq);
void *pool_large_realloc(void *ptr, size_t size, enum pool_free_result *bad);
bool pool_large_lookup(uintptr_t addr, struct pool_block *out, bool any);
size_t pool_large_usable(const void *ptr);
void pool_large_set_owner(void *ptr, uint32_t stack_id, uint64_t seq);
void pool_large_set_freer(void *ptr, uint32_t stack_id);
size_t pool_large_foreach(void (*fn)(const struct pool_block *blk, void *arg), void *arg);
void pool_large_counters(size_t *blocks, size_t *bytes);
void pool_large_own_ranges(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg);
void pool_large_fork_prepare(void);
void pool_large_fork_parent(void);
void pool_large_fork_child(void);

/* ---- pool-stats.c: statistics over the small-block side ------------------ */

/* Counts the live blocks of a carved pool (a walk of its metadata). */
size_t pool_count_live(struct pool_arena *ar, struct pool_hdr *p, size_t *req_bytes);
