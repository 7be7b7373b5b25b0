/*
 * pool.h: memprof's pool allocator, the private heap traced programs run on.
 *
 * Small requests (1..4096 bytes) are served from 56 size classes carved
 * from pools inside 1 MiB arenas (pymalloc's design): 32 classes 16 bytes
 * apart up to 512 bytes, in 16 KiB pools, then 24 medium classes eight per
 * doubling (576, 640, ... 1024, 1152, ... 2048, 2304, ... 4096: a block
 * wastes at most 1/9 of itself to rounding), in 64 KiB pools of arenas of
 * their own; larger requests and alignments over 16 go to the raw
 * allocator (the C library's own, through __libc_malloc and friends),
 * tracked so that every live block can be found.  Every block carries
 * metadata outside the user's bytes (requested size, allocation stack id,
 * sequence number), and any address, interior or not, maps to its block in
 * O(1).
 *
 * The functions follow glibc's semantics for the malloc family exactly,
 * errno included.  They are thread safe, with no global lock on the common
 * path.  This header is the whole interface of heap/'s allocator; the
 * object heap (libmemprof-heap) has its own public header,
 * include/memprof/heap.h.
 *
 * Nothing here calls the C library's malloc except the raw-allocator path,
 * and nothing here allocates through the interposable malloc symbol: the
 * preload library calls these from inside its malloc.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POOL_ALIGNMENT 16u
/* The largest request served from pools: above it, the raw allocator. */
#define POOL_SMALL_MAX 4096u
#define POOL_NUM_CLASSES 56u
/* The fine classes, 16 bytes apart: requests 1..512, classes 0..31. */
#define POOL_FINE_MAX 512u
#define POOL_FINE_CLASSES 32u
/* Pools of the fine classes; also the granule of the arena map (an arena
 * is POOL_ARENA_SIZE / POOL_POOL_SIZE granules, whatever its pools). */
#define POOL_POOL_SIZE (16u * 1024u)
/* Pools of the medium classes (513..4096), in arenas that hold only them:
 * 16 KiB would hold four blocks of 4 KiB and waste up to a fifth of the
 * pool after the last block of some classes. */
#define POOL_MEDIUM_POOL_SIZE (64u * 1024u)
#define POOL_ARENA_SIZE (1024u * 1024u)

/* Size class of a small request (1..4096; 0 is served as 1), 0..55.
 * Medium requests: s = size - 1 has its top bit e (9..11); the three bits
 * under it pick one of eight classes (1/8 of 2^e apart) in the octave. */
static inline unsigned pool_size_class(size_t size)
{
	if (size <= POOL_FINE_MAX)
		return size == 0 ? 0 : (unsigned)((size - 1) >> 4);
	unsigned e = 63u - (unsigned)__builtin_clzll((unsigned long long)(size - 1));
	return POOL_FINE_CLASSES + (e - 9u) * 8u + (unsigned)((size - 1) >> (e - 3u)) - 8u;
}

/* Block size of a size class: 16..512 by 16, then 576..4096. */
static inline size_t pool_class_size(unsigned cls)
{
	if (cls < POOL_FINE_CLASSES)
		return ((size_t)cls + 1) << 4;
	unsigned m = cls - POOL_FINE_CLASSES;
	return (size_t)(9u + m % 8u) << (6u + m / 8u);
}

/* ---- the malloc family (glibc semantics) ------------------------------ */

void *pool_malloc(size_t size);
void *pool_calloc(size_t nmemb, size_t size);
/* realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL, as
 * glibc does.  A pointer the pool does not own (or not a block's start) is
 * left untouched and NULL is returned; pool_realloc_checked says why. */
void *pool_realloc(void *ptr, size_t size);
void *pool_reallocarray(void *ptr, size_t nmemb, size_t size);
void *pool_memalign(size_t alignment, size_t size);
int pool_posix_memalign(void **out, size_t alignment, size_t size);
void *pool_aligned_alloc(size_t alignment, size_t size);
void *pool_valloc(size_t size);
void *pool_pvalloc(size_t size);
/* Usable size of a block the pool owns (its start address), 0 for NULL or a
 * pointer it does not own. */
size_t pool_usable_size(const void *ptr);

enum pool_free_result {
	POOL_FREE_OK = 0,      /* the block was live and is now free */
	POOL_FREE_NULL,        /* free(NULL): nothing done */
	POOL_FREE_DOUBLE,      /* the block is already free: nothing done */
	POOL_FREE_INVALID,     /* inside a pool block or large block, not its start */
	POOL_FREE_FOREIGN,     /* not memprof's memory at all: nothing done */
};

/* Frees a block.  Never crashes on a bad pointer: double, interior and
 * foreign pointers are detected and reported through the result, and the
 * heap is left unchanged.  After POOL_FREE_DOUBLE, pool_lookup_any() on the
 * pointer still gives the block's allocation and free stacks while the block
 * has not been reused. */
enum pool_free_result pool_free(void *ptr);

/* pool_free() for the tracer: also records the freeing stack (as
 * pool_block_set_freer() would) and says what was freed, its requested size,
 * whether it was a large block and the allocation seq pool_block_set_owner()
 * gave it (0, false and 0 unless POOL_FREE_OK; seq 0 when none was given),
 * with one lookup of the block instead of three. */
enum pool_free_result pool_free_traced(void *ptr, uint32_t free_stack_id, size_t *size,
				       bool *large, uint64_t *seq);

/* realloc that also reports what was wrong with ptr (NULL: no report). */
void *pool_realloc_checked(void *ptr, size_t size, enum pool_free_result *bad);

/* ---- per-block metadata and lookup ------------------------------------ */

struct pool_block {
	void *start;       /* first user byte */
	size_t size;       /* requested size */
	size_t usable;     /* bytes usable (size class or large usable size) */
	uint64_t seq;      /* allocation sequence number, as set by the caller */
	uint32_t stack_id; /* allocation stack, as set by the caller (0: unknown) */
	uint32_t free_stack_id; /* for a freed block still known: the freeing stack */
	bool live;         /* false: a free block (only for POOL_FREE_DOUBLE lookups) */
	bool large;        /* served by the raw allocator */
};

/* Records who allocated the block that starts at ptr (a live block the pool
 * owns; anything else is ignored).  Called by the tracer right after the
 * allocation returns. */
void pool_block_set_owner(void *ptr, uint32_t stack_id, uint64_t seq);

/* Records the stack that freed ptr, called just before pool_free(ptr), so
 * that a later double free can name both stacks. */
void pool_block_set_freer(void *ptr, uint32_t stack_id);

/* O(1): finds the live block that contains addr, interior pointers included.
 * Returns false when addr is in no live block.  Safe to call from any
 * thread; during the leak scan the other threads are stopped.
 * "Contains" means within the requested bytes, [start, start + max(size, 1)),
 * as valgrind counts interior pointers: one past the end is outside.  (The
 * first large lookup after blocks changed rebuilds the interior index; a
 * word outside every arena and the large blocks' bounds is rejected
 * without a lock.)  Not safe against another thread unmapping an arena at
 * the same instant: call it on pointers that may be live, or with the other
 * threads stopped. */
bool pool_lookup(const void *addr, struct pool_block *out);

/* For the leak scan, which asks this for every word that may be a pointer:
 * like pool_lookup, without the owner metadata, and saying where the block
 * lies.  pool is an opaque key of the block's pool (NULL for a large
 * block) and idx its index there: while blocks do not change, two blocks of
 * the same pool have the same key, and their idx grow with their address. */
struct pool_where {
	uintptr_t start;   /* first user byte */
	size_t size;       /* requested size */
	size_t usable;     /* bytes usable */
	const void *pool;  /* the pool's key, NULL: a large block */
	uint32_t idx;      /* the block's index in its pool */
};

bool pool_lookup_where(const void *addr, struct pool_where *out);

/* Like pool_lookup for a pointer that was just freed badly: fills out for a
 * free block too (live == false) while its metadata still exists. */
bool pool_lookup_any(const void *addr, struct pool_block *out);

/* Calls fn for every live block, small and large.  Other threads must not
 * allocate meanwhile (the scan stops them).  Returns the number visited.
 * fn runs with the allocator's arena lock (small blocks) or a table lock
 * (large blocks) held: it may call pool_lookup* but must not allocate or
 * free through the pool. */
size_t pool_foreach_live(void (*fn)(const struct pool_block *blk, void *arg), void *arg);

/* Calls fn for every address range the allocator itself occupies (arenas,
 * metadata, tables): the leak scan skips them as roots. */
void pool_foreach_own_range(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg);

/* ---- statistics (sys._debugmallocstats) -------------------------------- */

struct pool_class_stats {
	size_t block_size;
	size_t pools;            /* pools currently carved for this class */
	size_t blocks_in_use;
	size_t blocks_available; /* free blocks in those pools */
};

struct pool_stats {
	struct pool_class_stats classes[POOL_NUM_CLASSES];
	size_t arenas_allocated;     /* ever mapped */
	size_t arenas_reclaimed;     /* returned to the OS */
	size_t arenas_highwater;     /* most arenas mapped at once */
	size_t arenas_current;
	size_t pools_empty;          /* carved but holding no block */
	size_t bytes_in_small_blocks;   /* requested bytes of live small blocks */
	size_t bytes_quantization;   /* usable minus requested, live small blocks */
	size_t bytes_pool_headers;
	size_t bytes_empty_pools;
	size_t bytes_unused_arena;   /* arena space not yet carved into pools */
	size_t large_blocks;         /* live blocks served by the raw allocator */
	size_t large_bytes;          /* their requested bytes */
};

void pool_get_stats(struct pool_stats *out);

/* Writes a human-readable table of the statistics to fd, without calling
 * malloc (it may run inside the preload library). */
void pool_stats_print(int fd);

/* ---- process lifecycle -------------------------------------------------- */

/* Fork handlers: the tracer calls these around fork() (pthread_atfork order:
 * prepare in the parent before, parent/child after) so that the child
 * inherits a consistent heap. */
void pool_fork_prepare(void);
void pool_fork_parent(void);
void pool_fork_child(void);

/* Called when a thread exits (the tracer's TLS destructor): hands the
 * thread's pools back so other threads can use them.  Blocks the thread
 * still holds stay valid and can be freed by anyone later.  If the thread
 * allocates again afterwards, it silently gets a new heap, which it should
 * hand back with another call; a heap never handed back only wastes the
 * free space of its pools.
 *
 * No initialisation call is needed: every table is static or mapped on
 * first use, so the pool works from the first malloc of the process. */
void pool_thread_exit(void);
