/*
 * pool-arena.c: the OS layer and the arena layer of the pool allocator.
 *
 * Arenas are 1 MiB of address space, 1 MiB aligned, from mmap; each has a
 * companion metadata mapping (MAP_NORESERVE, touched as pools are carved)
 * holding a metadata word and a struct pool_info per block.  An arena is
 * of one kind for its life: fine (16 KiB pools of the classes up to 512
 * bytes) or medium (64 KiB pools of the classes up to 4096), each kind with
 * its own buckets and reserve arena, so that a slot is a slot and carving
 * never looks for several free ones in a row.  A 2-level
 * radix table keyed by addr >> 20 maps any address to its arena in two
 * loads; its leaves are
 * mmap'd lazily and never freed, so a reader racing with an update sees
 * either the arena or NULL.
 *
 * Pools are carved from the fullest arena that still has a free slot
 * (arenas sit in buckets by their number of free slots, so "fullest" is
 * the lowest non-empty bucket), so that emptier arenas drain and can be
 * returned to the OS; an arena whose pools all came back is unmapped,
 * except one of each kind kept in reserve against map/unmap thrashing.
 * Everything here runs under one mutex: it is the rare path (once a pool).
 *
 * Entry points: pool_arena_carve(), pool_arena_release(), pool_arena_of(),
 * and pool_walk() for the leak scan (pool-walk.h).
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "pool-private.h"
#include "pool-walk.h"

/* ---- OS layer ------------------------------------------------------------ */

void *pool_os_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void pool_os_unmap(void *addr, size_t size)
{
	if (addr)
		munmap(addr, size);
}

/* size bytes aligned to size (a power of two): map twice as much, trim. */
static void *os_map_aligned(size_t size)
{
	uintptr_t raw = (uintptr_t)pool_os_map(2 * size);
	if (!raw)
		return NULL;
	uintptr_t aligned = (raw + size - 1) & ~(uintptr_t)(size - 1);
	if (aligned > raw)
		munmap((void *)raw, aligned - raw);
	uintptr_t end = raw + 2 * size;
	if (end > aligned + size)
		munmap((void *)(aligned + size), end - (aligned + size));
	return (void *)aligned;
}

/* ---- the arena map: addr >> 20 -> arena, 13 + 14 bits ------------------ */

#define ADDR_BITS 47
#define KEY_BITS (ADDR_BITS - 20)
#define LEAF_BITS 14
#define ROOT_BITS (KEY_BITS - LEAF_BITS)

static struct pool_arena **radix_root[1u << ROOT_BITS];

struct pool_arena *pool_arena_of(uintptr_t addr)
{
	if (POOL_UNLIKELY(addr >> ADDR_BITS))
		return NULL;
	uintptr_t key = addr >> 20;
	struct pool_arena **leaf = __atomic_load_n(&radix_root[key >> LEAF_BITS], __ATOMIC_ACQUIRE);
	if (!leaf)
		return NULL;
	return __atomic_load_n(&leaf[key & ((1u << LEAF_BITS) - 1)], __ATOMIC_ACQUIRE);
}

/* Under the arena lock. */
static bool radix_set(uintptr_t base, struct pool_arena *ar)
{
	if (base >> ADDR_BITS)
		return false;
	uintptr_t key = base >> 20;
	struct pool_arena **leaf = radix_root[key >> LEAF_BITS];
	if (!leaf) {
		leaf = pool_os_map(sizeof(*leaf) << LEAF_BITS);
		if (!leaf)
			return false;
		__atomic_store_n(&radix_root[key >> LEAF_BITS], leaf, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&leaf[key & ((1u << LEAF_BITS) - 1)], ar, __ATOMIC_RELEASE);
	return true;
}

/* ---- arenas ---------------------------------------------------------------- */

/* The metadata of an arena of either kind: the words, then the info, both
 * indexed by slot * max_blocks + block (medium pools hold 113 blocks at
 * most, so their metadata is 9 times denser than a fine arena's layout
 * would make it, and a pool's words share their page with its
 * neighbours'). */
static void meta_layout(bool medium, size_t *max_blocks, size_t *words_bytes, size_t *meta_bytes)
{
	size_t slots = medium ? POOL_MEDIUM_SLOTS : POOL_SLOTS;
	*max_blocks = medium ? POOL_MEDIUM_MAX_BLOCKS : POOL_MAX_BLOCKS;
	*words_bytes = (slots * *max_blocks * sizeof(uint32_t) + 63) & ~(size_t)63;
	*meta_bytes = *words_bytes + slots * *max_blocks * sizeof(struct pool_info);
}

static pthread_mutex_t arena_lock = PTHREAD_MUTEX_INITIALIZER;
/* arena_buckets[kind][k]: arenas of the kind (1: medium) with k free
 * slots, 1 <= k <= slots - 1. */
static struct pool_arena *arena_buckets[2][POOL_SLOTS];
static struct pool_arena *arena_all;
static struct pool_arena *arena_reserve[2]; /* the one empty arena kept, a kind */
static size_t arenas_allocated, arenas_reclaimed, arenas_current, arenas_highwater;

void pool_arena_lock(void)
{
	pthread_mutex_lock(&arena_lock);
}

void pool_arena_unlock(void)
{
	pthread_mutex_unlock(&arena_lock);
}

void pool_arena_fork_child(void)
{
	pthread_mutex_init(&arena_lock, NULL);
}

static void bucket_remove(struct pool_arena *ar)
{
	if (ar->nfree == 0)
		return;
	if (ar->prev)
		ar->prev->next = ar->next;
	else
		arena_buckets[ar->medium][ar->nfree] = ar->next;
	if (ar->next)
		ar->next->prev = ar->prev;
	ar->prev = ar->next = NULL;
}

static void bucket_insert(struct pool_arena *ar)
{
	if (ar->nfree == 0)
		return;
	ar->prev = NULL;
	ar->next = arena_buckets[ar->medium][ar->nfree];
	if (ar->next)
		ar->next->prev = ar;
	arena_buckets[ar->medium][ar->nfree] = ar;
}

static struct pool_arena *arena_new(bool medium)
{
	size_t max_blocks, words_bytes, meta_bytes;
	meta_layout(medium, &max_blocks, &words_bytes, &meta_bytes);
	void *mem = os_map_aligned(POOL_ARENA_SIZE);
	if (!mem)
		return NULL;
	char *meta = pool_os_map(meta_bytes);
	if (!meta) {
		pool_os_unmap(mem, POOL_ARENA_SIZE);
		return NULL;
	}
	struct pool_arena *ar = mem;
	ar->base = (uintptr_t)mem;
	ar->medium = medium;
	ar->shift = (uint8_t)__builtin_ctz(medium ? POOL_MEDIUM_POOL_SIZE : POOL_POOL_SIZE);
	ar->slots = medium ? POOL_MEDIUM_SLOTS : POOL_SLOTS;
	ar->words = (uint32_t *)meta;
	ar->info = (struct pool_info *)(meta + words_bytes);
	ar->meta_bytes = meta_bytes;
	ar->nfree = ar->slots - 1;
	ar->next_slot = 1;
	for (unsigned i = 0; i < ar->slots; i++) {
		struct pool_hdr *p = &ar->pools[i];
		p->slot = (uint8_t)i;
		p->cls = 0xff;
		p->base = ar->base + ((uintptr_t)i << ar->shift);
		p->words = ar->words + i * max_blocks;
		p->info = ar->info + i * max_blocks;
	}
	if (!radix_set(ar->base, ar)) {
		pool_os_unmap(meta, meta_bytes);
		pool_os_unmap(mem, POOL_ARENA_SIZE);
		return NULL;
	}
	ar->all_next = arena_all;
	if (arena_all)
		arena_all->all_prev = ar;
	arena_all = ar;
	arenas_allocated++;
	arenas_current++;
	if (arenas_current > arenas_highwater)
		arenas_highwater = arenas_current;
	bucket_insert(ar);
	return ar;
}

static void arena_free(struct pool_arena *ar)
{
	bucket_remove(ar);
	if (ar->all_prev)
		ar->all_prev->all_next = ar->all_next;
	else
		arena_all = ar->all_next;
	if (ar->all_next)
		ar->all_next->all_prev = ar->all_prev;
	radix_set(ar->base, NULL);
	arenas_current--;
	arenas_reclaimed++;
	pool_os_unmap(ar->words, ar->meta_bytes);
	pool_os_unmap((void *)ar->base, POOL_ARENA_SIZE);
}

/* Full walk (debug level 3): nfree == |free_pools| + never-carved slots. */
static __attribute__((unused)) bool arena_valid(const struct pool_arena *ar)
{
	unsigned n = 0;
	for (const struct pool_hdr *p = ar->free_pools; p; p = p->next) {
		if (p->state != POOL_STATE_EMPTY || ++n >= ar->slots)
			return false;
	}
	return ar->nfree == n + (ar->slots - ar->next_slot);
}

struct pool_hdr *pool_arena_carve(unsigned cls)
{
	pool_assert(cls < POOL_NUM_CLASSES);
	bool medium = cls >= POOL_FINE_CLASSES;
	pthread_mutex_lock(&arena_lock);
	struct pool_arena *ar = NULL;
	/* Fullest first: the lowest non-empty bucket. */
	for (unsigned k = 1; k < POOL_SLOTS && !ar; k++)
		ar = arena_buckets[medium][k];
	if (!ar)
		ar = arena_new(medium);
	if (!ar) {
		pthread_mutex_unlock(&arena_lock);
		return NULL;
	}
	if (ar == arena_reserve[medium])
		arena_reserve[medium] = NULL;
	struct pool_hdr *p;
	if (ar->free_pools) {
		p = ar->free_pools;
		ar->free_pools = p->next;
		pool_assert_internal(p->state == POOL_STATE_EMPTY);
	} else {
		pool_assert_internal(ar->next_slot < ar->slots);
		p = &ar->pools[ar->next_slot++];
		pool_assert_internal(p->state == POOL_STATE_UNCARVED);
	}
	bucket_remove(ar);
	ar->nfree--;
	bucket_insert(ar);
	pool_assert_expensive(arena_valid(ar));

	p->free = NULL;
	p->used = 0;
	p->bump = 0;
	p->cls = (uint8_t)cls;
	p->bsize = (uint32_t)pool_class_size(cls);
	p->capacity = (uint32_t)(((size_t)1 << ar->shift) / p->bsize);
	pool_assert_internal(p->capacity <= (medium ? POOL_MEDIUM_MAX_BLOCKS : POOL_MAX_BLOCKS));
	p->prev = p->next = NULL;
	__atomic_store_n(&p->owner, NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&p->thread_free, NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&p->state, POOL_STATE_USED, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&arena_lock);
	return p;
}

void pool_arena_release(struct pool_hdr *p)
{
	struct pool_arena *ar = pool_arena_at(p);
	pool_assert(p->used == 0);
	pool_assert(__atomic_load_n(&p->thread_free, __ATOMIC_RELAXED) == NULL);
	pthread_mutex_lock(&arena_lock);
	__atomic_store_n(&p->owner, NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&p->state, POOL_STATE_EMPTY, __ATOMIC_RELEASE);
	p->prev = NULL;
	p->next = ar->free_pools;
	ar->free_pools = p;
	bucket_remove(ar);
	ar->nfree++;
	bucket_insert(ar);
	pool_assert_expensive(arena_valid(ar));
	if (ar->nfree == ar->slots - 1) {
		if (!arena_reserve[ar->medium])
			arena_reserve[ar->medium] = ar;
		else if (arena_reserve[ar->medium] != ar)
			arena_free(ar);
	}
	pthread_mutex_unlock(&arena_lock);
}

struct pool_arena *pool_arena_first(void)
{
	return arena_all;
}

void pool_arena_counters(struct pool_stats *out)
{
	out->arenas_allocated = arenas_allocated;
	out->arenas_reclaimed = arenas_reclaimed;
	out->arenas_highwater = arenas_highwater;
	out->arenas_current = arenas_current;
}

void pool_arena_own_ranges(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg)
{
	pthread_mutex_lock(&arena_lock);
	for (struct pool_arena *ar = arena_all; ar; ar = ar->all_next) {
		fn(ar->base, ar->base + POOL_ARENA_SIZE, arg);
		fn((uintptr_t)ar->words, (uintptr_t)ar->words + ar->meta_bytes, arg);
	}
	for (size_t i = 0; i < (1u << ROOT_BITS); i++) {
		uintptr_t leaf = (uintptr_t)radix_root[i];
		if (leaf)
			fn(leaf, leaf + (sizeof(struct pool_arena *) << LEAF_BITS), arg);
	}
	uintptr_t root = (uintptr_t)radix_root;
	fn(root, root + sizeof(radix_root), arg);
	pthread_mutex_unlock(&arena_lock);
}

/* ---- the leak scan's walk (pool-walk.h) ---------------------------------- */

_Static_assert(POOL_WALK_SIZE == POOL_W_SIZE && POOL_WALK_LIVE == POOL_W_LIVE &&
		       POOL_WALK_OWNER == POOL_W_OWNER,
	       "pool-walk.h mirrors the metadata word");
_Static_assert(sizeof(struct pool_walk_info) == sizeof(struct pool_info) &&
		       offsetof(struct pool_walk_info, seq) == offsetof(struct pool_info, seq) &&
		       offsetof(struct pool_walk_info, stack_id) ==
			       offsetof(struct pool_info, stack_id),
	       "pool-walk.h mirrors struct pool_info");

/* The arena map's keys grow with the address: walking it in key order
 * gives the arenas in address order without sorting them. */
void pool_walk(void (*pool_fn)(const struct pool_walk_pool *p, void *arg),
	       void (*large_fn)(const struct pool_block *blk, void *arg), void *arg)
{
	if (!pool_fn)
		goto large;
	pthread_mutex_lock(&arena_lock);
	for (size_t r = 0; r < (1u << ROOT_BITS); r++) {
		struct pool_arena **leaf = radix_root[r];
		for (size_t k = 0; leaf && k < (1u << LEAF_BITS); k++) {
			struct pool_arena *ar = leaf[k];
			if (!ar)
				continue;
			for (unsigned s = 1; s < ar->next_slot && s < ar->slots; s++) {
				struct pool_hdr *p = &ar->pools[s];
				uint8_t st = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
				if (st == POOL_STATE_UNCARVED || st == POOL_STATE_EMPTY ||
				    p->cls >= POOL_NUM_CLASSES)
					continue;
				struct pool_walk_pool wp = {
					.key = p,
					.base = p->base,
					.pool_size = (uint32_t)1 << ar->shift,
					.block_size = p->bsize,
					.nblocks = __atomic_load_n(&p->bump, __ATOMIC_RELAXED),
					.words = pool_word_of(p, 0),
					.info = (const struct pool_walk_info *)pool_info_of(p, 0),
				};
				pool_fn(&wp, arg);
			}
		}
	}
	pthread_mutex_unlock(&arena_lock);
large:
	if (large_fn)
		pool_large_foreach(large_fn, arg);
}
