/*
 * pool.c: memprof's pool allocator, the malloc family of the traced program.
 * Entry points: pool_malloc() and pool_free(); the rest of the family, the
 * per-thread heaps, block lookup and the process lifecycle hooks are here
 * too.  Arenas are in pool-arena.c, large blocks in pool-large.c,
 * statistics in pool-stats.c.
 *
 * THE LAYERS
 *
 *     program:  malloc  free  calloc  realloc  memalign ...   (the tracer's hooks)
 *                  |                                  |
 *     pool.c:   small (0..4096 B, align <= 16)     large (> 4096 B or align > 16)
 *               per-thread heap -> pool -> block    pool-large.c: __libc_malloc &
 *                  |                                co., tracked in a striped hash
 *     pool-arena.c: pools of 16 KiB (fine classes) or 64 KiB (medium) carved
 *                  |  from arenas of 1 MiB of that kind (lock, rare)
 *     OS:       mmap / munmap
 *
 * SIZE CLASSES (56; malloc(0) is served from class 0)
 *
 *     request      class  block   blocks/pool   tail waste
 *       1..16        0      16       1024            0     fine: 16 KiB pools,
 *      17..32        1      32        512            0     16 bytes apart
 *      33..48        2      48        341           16
 *        ...        ...    ...        ...          ...
 *     497..512      31     512         32            0
 *     513..576      32     576        113          448     medium: 64 KiB pools,
 *     577..640      33     640        102          256     8 classes an octave
 *        ...        ...    ...        ...          ...     (64, 128, 256 apart)
 *     961..1024     39    1024         64            0
 *    1025..1152     40    1152         56          1024
 *        ...        ...    ...        ...          ...
 *    3841..4096     55    4096         16            0
 *
 *     A medium block wastes at most 1/9 of itself to rounding (576 for a
 *     request of 513), a pool at most 2304 bytes (3.5%) after its last block.
 *
 * ARENA LAYOUT
 *
 *     arena (1 MiB, 1 MiB aligned: arena = addr & ~(1 MiB - 1))
 *     +--------------+---------+---------+-----+---------+
 *     | slot 0:      | pool 1  | pool 2  | ... | pool 63 |   16 KiB each (fine)
 *     | pool_arena + |         |         |     |         |   or 1..15 of 64 KiB
 *     | pool_hdr[64] |         |         |     |         |   (medium)
 *     +--------------+---------+---------+-----+---------+
 *     metadata mapping, outside the user's bytes, per block: a 4-byte word
 *     (requested size, LIVE flag, which stacks are recorded) in a dense
 *     array, the only metadata malloc and free touch, and 16 bytes of info
 *     (allocation stack, freeing stack, sequence number) in another.
 *
 *     addr -> arena (radix table, addr >> 20) -> slot = offset >> arena's shift
 *          -> block index = offset / block size (a multiply) -> metadata.
 *
 * POOL STATES AND TRANSITIONS
 *
 *             carve (arena lock)                  last free block handed out
 *   EMPTY / ----------------------> USED <-----------------------------> FULL
 *   UNCARVED <--------------------- (heap      a block freed (local free,    (heap
 *     ^          used drops to 0     used[c])   or collected remote frees)    full[c])
 *     |          (unless it is the     |                                     |
 *     |           allocation pool)     +------------ thread exits -----------+
 *     |                                                  |
 *     +------------- used drops to 0 ------------- ABANDONED (abandoned[c]);
 *                                                  adopted -> USED or FULL
 *
 * A pool has exactly one owner heap (one thread) while USED or FULL: the
 * owner allocates and frees in it without locks.  Another thread freeing a
 * block pushes it on the pool's atomic thread_free list (and bumps the
 * owner's hint for the class); the owner takes the whole list back with
 * one exchange when it runs out of blocks.  When the owner exits, its pools
 * are ABANDONED; a thread that needs a pool of that class adopts them
 * before carving a new one, and frees into an abandoned pool are done under
 * the abandoned-list lock.
 *
 * INVARIANTS (p a carved pool, c = p->cls)
 *
 *     p->used + |p->free| + (p->capacity - p->bump) == p->capacity
 *     p->used == live(p) + |p->thread_free|      (blocks in thread_free are
 *                                                  already free in metadata)
 *     word(b) & LIVE  <=>  b was handed out and not freed since
 *     block index < p->bump for every block on a free list
 *     p->state == USED  <=>  p is in owner->used[c];  FULL <=> owner->full[c]
 *     p->state == FULL  ==>  p->free == NULL && p->bump == p->capacity
 *     a FULL pool that gets a block back goes second in the used list: the
 *     head stays the allocation pool, so that the returning pool, should it
 *     empty, goes back to its arena
 *     p->used == 0 && p is not owner->used[c] (the allocation pool)
 *                       ==>  p went back to its arena (state EMPTY)
 *     arena->nfree == |arena->free_pools| + (POOL_SLOTS - arena->next_slot)
 *
 * Freed blocks are reused LIFO and their metadata (allocation and freeing
 * stacks) stays until the block is handed out again: that is what lets a
 * double free name both stacks.  The state byte makes double-free
 * detection exact.
 *
 * Memory ordering: the owner reads and writes its pools' fields with plain
 * accesses; p->owner, p->state, p->thread_free and the metadata words
 * are accessed with __atomic builtins, since other threads read them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool-private.h"

/* 2^24 / (block size / 16), rounded up: see pool_block_index(). */
#define R(bs) ((1u << POOL_RECIP_SHIFT) / ((bs) / 16u) + 1u)
#define F(c) R(((c) + 1u) * 16u)
#define M(k, e) R((9u + (k)) << (e))
const uint32_t pool_class_recip[POOL_NUM_CLASSES] = {
	F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(7), F(8), F(9), F(10),
	F(11), F(12), F(13), F(14), F(15), F(16), F(17), F(18), F(19), F(20),
	F(21), F(22), F(23), F(24), F(25), F(26), F(27), F(28), F(29), F(30),
	F(31),
	M(0, 6), M(1, 6), M(2, 6), M(3, 6), M(4, 6), M(5, 6), M(6, 6), M(7, 6),
	M(0, 7), M(1, 7), M(2, 7), M(3, 7), M(4, 7), M(5, 7), M(6, 7), M(7, 7),
	M(0, 8), M(1, 8), M(2, 8), M(3, 8), M(4, 8), M(5, 8), M(6, 8), M(7, 8),
};
#undef M
#undef F
#undef R

void pool_assert_fail(const char *expr, const char *file, int line)
{
	static const char head[] = "memprof: internal error (a bug of memprof's allocator): ";
	char num[16];
	int n = 0;
	char tmp[16];
	unsigned v = line > 0 ? (unsigned)line : 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (int i = 0; i < n; i++)
		num[i] = tmp[n - 1 - i];
	ssize_t r = write(2, head, sizeof(head) - 1);
	r = write(2, expr, strlen(expr));
	r = write(2, " at ", 4);
	r = write(2, file, strlen(file));
	r = write(2, ":", 1);
	r = write(2, num, (size_t)n);
	r = write(2, "\n", 1);
	(void)r;
	abort();
}

/* ---- per-thread heaps ------------------------------------------------------ */

static __thread struct pool_heap *tl_heap __attribute__((tls_model("initial-exec")));

/* The block this thread handed out last and where its metadata is, so
 * that pool_block_set_owner() right after the allocation finds it without
 * a lookup.  The address is kept inverted: the leak scan reads
 * thread-local storage as a root and must not take it for a pointer. */
static __thread struct {
	uintptr_t start_inv; /* ~start, 0: none */
	uint32_t *w;
	struct pool_info *info;
} tl_last __attribute__((tls_model("initial-exec")));

static pthread_mutex_t heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pool_heap *heaps_all;  /* registry, never shrinks */
static struct pool_heap *heaps_free; /* recycled, from exited threads */
static char *heap_slab;              /* bump allocator for heaps, mmap'd */
static size_t heap_slab_left;
#define HEAP_SLAB_SIZE (64u * 1024u)

static pthread_mutex_t abandon_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pool_hdr *abandoned[POOL_NUM_CLASSES];

/* Every pool this thread gives back goes through here.  While tl_last is
 * set, its block's pool is this thread's and not given back, so its arena
 * and metadata stay mapped (another thread only ever releases a pool
 * nobody owns). */
static void release_pool(struct pool_hdr *p)
{
	tl_last.start_inv = 0;
	pool_arena_release(p);
}

/* Heaps are never unmapped: a thread freeing remotely may still bump the
 * hint of a heap whose thread has exited, which must stay harmless. */
static struct pool_heap *heap_create(void)
{
	pthread_mutex_lock(&heaps_lock);
	struct pool_heap *h = heaps_free;
	if (h) {
		heaps_free = h->free_next;
	} else {
		size_t sz = (sizeof(*h) + 63) & ~(size_t)63;
		if (heap_slab_left < sz) {
			heap_slab = pool_os_map(HEAP_SLAB_SIZE);
			heap_slab_left = heap_slab ? HEAP_SLAB_SIZE : 0;
		}
		if (heap_slab_left >= sz) {
			h = (struct pool_heap *)heap_slab;
			heap_slab += sz;
			heap_slab_left -= sz;
			h->all_next = heaps_all;
			heaps_all = h;
		}
	}
	if (h) {
		for (unsigned c = 0; c < POOL_NUM_CLASSES; c++) {
			h->used[c] = h->full[c] = NULL;
			h->seen[c] = __atomic_load_n(&h->hint[c], __ATOMIC_RELAXED);
		}
		h->free_next = NULL;
		h->live = true;
	}
	pthread_mutex_unlock(&heaps_lock);
	return h;
}

static struct pool_heap *heap_get(void)
{
	struct pool_heap *h = tl_heap;
	if (POOL_LIKELY(h))
		return h;
	h = heap_create();
	tl_heap = h;
	return h;
}

static void list_remove(struct pool_hdr **head, struct pool_hdr *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		*head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
}

static void list_push(struct pool_hdr **head, struct pool_hdr *p)
{
	p->prev = NULL;
	p->next = *head;
	if (*head)
		(*head)->prev = p;
	*head = p;
}

/* Takes the blocks other threads freed back onto the local free list.
 * After it: p->used == live(p) (at the instant of the exchange). */
static void collect(struct pool_hdr *p)
{
	if (!__atomic_load_n(&p->thread_free, __ATOMIC_RELAXED))
		return;
	void *b = __atomic_exchange_n(&p->thread_free, NULL, __ATOMIC_ACQUIRE);
	uint32_t n = 0;
	while (b) {
		void *next = *(void **)b;
		*(void **)b = p->free;
		p->free = b;
		b = next;
		n++;
	}
	pool_assert(n <= p->used);
	p->used -= n;
}

/* Full walk of an owned pool (debug level 3): the free list holds distinct
 * free blocks below the bump, and used + |free| + unbumped == capacity. */
static __attribute__((unused)) bool pool_valid(const struct pool_hdr *p)
{
	size_t bsize = p->bsize, nfree = 0;
	if (p->bump > p->capacity || p->used > p->bump)
		return false;
	for (void *b = p->free; b; b = *(void **)b) {
		uintptr_t off = (uintptr_t)b - p->base;
		if (off >= (uintptr_t)p->bump * bsize || off % bsize)
			return false;
		uint32_t w = __atomic_load_n(pool_word_of(p, (uint32_t)(off / bsize)),
					     __ATOMIC_RELAXED);
		if ((w & POOL_W_LIVE) || ++nfree > p->capacity)
			return false;
	}
	return p->used + nfree + (p->capacity - p->bump) == p->capacity;
}

static bool has_room(const struct pool_hdr *p)
{
	return p->free || p->bump < p->capacity;
}

static void set_state(struct pool_hdr *p, uint8_t st)
{
	__atomic_store_n(&p->state, st, __ATOMIC_RELEASE);
}

/* Adopts abandoned pools of class c: the first with room goes to the
 * front of h->used[c] and is returned; those without room go to full. */
static struct pool_hdr *adopt(struct pool_heap *h, unsigned c)
{
	if (!__atomic_load_n(&abandoned[c], __ATOMIC_RELAXED))
		return NULL;
	struct pool_hdr *found = NULL;
	pthread_mutex_lock(&abandon_lock);
	struct pool_hdr *p;
	while (!found && (p = abandoned[c])) {
		list_remove(&abandoned[c], p);
		pool_assert_internal(p->state == POOL_STATE_ABANDONED && p->cls == c);
		__atomic_store_n(&p->owner, h, __ATOMIC_SEQ_CST);
		collect(p);
		pool_assert_expensive(pool_valid(p));
		if (has_room(p)) {
			set_state(p, POOL_STATE_USED);
			list_push(&h->used[c], p);
			found = p;
		} else {
			set_state(p, POOL_STATE_FULL);
			list_push(&h->full[c], p);
		}
	}
	pthread_mutex_unlock(&abandon_lock);
	return found;
}

/* Full pools that received remote frees since the last sweep go back to
 * used (or to their arena when wholly free). */
static void sweep_full(struct pool_heap *h, unsigned c)
{
	unsigned hint = __atomic_load_n(&h->hint[c], __ATOMIC_ACQUIRE);
	if (hint == h->seen[c])
		return;
	h->seen[c] = hint;
	struct pool_hdr *p = h->full[c];
	while (p) {
		struct pool_hdr *next = p->next;
		if (__atomic_load_n(&p->thread_free, __ATOMIC_RELAXED)) {
			collect(p);
			list_remove(&h->full[c], p);
			if (p->used == 0 && h->used[c]) {
				release_pool(p);
			} else {
				set_state(p, POOL_STATE_USED);
				list_push(&h->used[c], p);
			}
		}
		p = next;
	}
}

/* A pool of class c with room, at the head of h->used[c]; NULL when out of
 * memory.  Retires exhausted pools to the full list on the way. */
static struct pool_hdr *find_pool(struct pool_heap *h, unsigned c)
{
	struct pool_hdr *p;
	while ((p = h->used[c])) {
		if (!p->free)
			collect(p);
		pool_assert_expensive(pool_valid(p));
		if (has_room(p))
			return p;
		pool_assert_internal(p->free == NULL && p->bump == p->capacity);
		list_remove(&h->used[c], p);
		set_state(p, POOL_STATE_FULL);
		list_push(&h->full[c], p);
	}
	sweep_full(h, c);
	if ((p = h->used[c]))
		return p;
	if ((p = adopt(h, c)))
		return p;
	p = pool_arena_carve(c);
	if (!p)
		return NULL;
	__atomic_store_n(&p->owner, h, __ATOMIC_SEQ_CST);
	list_push(&h->used[c], p);
	return p;
}

static inline void *take_block(struct pool_hdr *p, size_t size)
{
	void *b = p->free;
	uint32_t idx;
	if (POOL_LIKELY(b)) {
		p->free = *(void **)b;
		idx = pool_block_index((uintptr_t)b - p->base, p->cls);
	} else {
		idx = p->bump++;
		b = (void *)(p->base + (uintptr_t)idx * p->bsize);
	}
	p->used++;
	uint32_t *w = pool_word_of(p, idx);
	pool_assert_internal(!(*w & POOL_W_LIVE));
	/* Live, with nothing recorded: the info of the block's previous
	 * life is ignored from now on. */
	__atomic_store_n(w, (uint32_t)size | POOL_W_LIVE, __ATOMIC_RELAXED);
	tl_last.start_inv = ~(uintptr_t)b;
	tl_last.w = w;
	tl_last.info = pool_info_of(p, idx);
	return b;
}

static __attribute__((noinline)) void *small_alloc_slow(size_t size)
{
	struct pool_heap *h = heap_get();
	struct pool_hdr *p = h ? find_pool(h, pool_size_class(size)) : NULL;
	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	return take_block(p, size);
}

static inline void *small_alloc(size_t size)
{
	struct pool_heap *h = tl_heap;
	if (POOL_LIKELY(h)) {
		struct pool_hdr *p = h->used[pool_size_class(size)];
		if (POOL_LIKELY(p && (p->free || p->bump < p->capacity)))
			return take_block(p, size);
	}
	return small_alloc_slow(size);
}

/* ---- freeing small blocks ------------------------------------------------ */

/* Where a small-side pointer lands. */
struct small_ref {
	struct pool_arena *ar;
	struct pool_hdr *p;
	uint32_t *w;     /* the block's metadata word */
	uint32_t idx;    /* the block's index in its pool */
	uintptr_t start; /* the block's first byte */
	uint8_t state;   /* the pool's state */
};

/* Resolves addr inside arena ar.  Returns false when addr is in no block
 * ever carved (header slot, uncarved pool, pool tail). */
static inline __attribute__((always_inline)) bool
small_resolve(struct pool_arena *ar, uintptr_t addr, struct small_ref *r)
{
	unsigned slot = (unsigned)((addr - ar->base) >> ar->shift);
	if (slot == 0)
		return false;
	struct pool_hdr *p = &ar->pools[slot];
	uint8_t st = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
	if (st == POOL_STATE_UNCARVED)
		return false;
	unsigned cls = p->cls;
	if (cls >= POOL_NUM_CLASSES)
		return false;
	uintptr_t off = addr - p->base;
	uint32_t idx = pool_block_index(off, cls);
	if (idx >= __atomic_load_n(&p->bump, __ATOMIC_RELAXED))
		return false;
	r->ar = ar;
	r->p = p;
	r->w = pool_word_of(p, idx);
	r->idx = idx;
	r->start = p->base + (uintptr_t)idx * p->bsize;
	r->state = st;
	return true;
}

/* Free under the abandoned lock, into a pool nobody owns.  Returns false
 * when the pool got adopted meanwhile (the caller pushes remotely). */
static bool abandoned_free(struct pool_hdr *p, void *b)
{
	pthread_mutex_lock(&abandon_lock);
	if (__atomic_load_n(&p->owner, __ATOMIC_SEQ_CST)) {
		pthread_mutex_unlock(&abandon_lock);
		return false;
	}
	/* No owner is not enough: remote_push() looks at the pool after its
	 * block was handed over, and by then the owner may have collected it
	 * and released the emptied pool (owner NULL, state EMPTY).  Only an
	 * ABANDONED pool is on the abandoned list; anything else has nothing
	 * left to do here (b == NULL), or is retried by the caller. */
	if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != POOL_STATE_ABANDONED) {
		pthread_mutex_unlock(&abandon_lock);
		return b == NULL;
	}
	if (b) {
		*(void **)b = p->free;
		p->free = b;
		p->used--;
	}
	collect(p);
	if (p->used == 0) {
		list_remove(&abandoned[p->cls], p);
		release_pool(p);
	}
	pthread_mutex_unlock(&abandon_lock);
	return true;
}

static void remote_push(struct pool_hdr *p, void *b, struct pool_heap *owner)
{
	void *old = __atomic_load_n(&p->thread_free, __ATOMIC_RELAXED);
	do
		*(void **)b = old;
	while (!__atomic_compare_exchange_n(&p->thread_free, &old, b, true,
					    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	unsigned c = p->cls;
	__atomic_fetch_add(&owner->hint[c], 1, __ATOMIC_RELEASE);
	/* The owner may have abandoned the pool (or another thread adopted
	 * it) between our reading p->owner and the push: either the
	 * abandoner's or adopter's exchange took our block, or we see its
	 * store here and make sure the block is not forgotten. */
	struct pool_heap *now = __atomic_load_n(&p->owner, __ATOMIC_SEQ_CST);
	if (!now)
		abandoned_free(p, NULL);
	else if (now != owner)
		__atomic_fetch_add(&now->hint[c], 1, __ATOMIC_RELEASE);
}

/* Puts p second in the list: the head stays the allocation pool, so that
 * p, if it empties, goes back to its arena. */
static void list_insert_second(struct pool_hdr **head, struct pool_hdr *p)
{
	struct pool_hdr *first = *head;
	if (!first) {
		list_push(head, p);
		return;
	}
	p->prev = first;
	p->next = first->next;
	if (first->next)
		first->next->prev = p;
	first->next = p;
}

/* After a local free made p FULL -> USED or emptied it. */
static void local_free_slow(struct pool_heap *h, struct pool_hdr *p)
{
	unsigned c = p->cls;
	pool_assert_expensive(pool_valid(p));
	if (p->state == POOL_STATE_FULL) {
		list_remove(&h->full[c], p);
		set_state(p, POOL_STATE_USED);
		list_insert_second(&h->used[c], p);
	}
	if (p->used == 0 && h->used[c] != p) {
		list_remove(&h->used[c], p);
		release_pool(p);
	}
}

/* freer: the freeing stack to record (0: none); *size gets the block's
 * requested size when it was freed, and *seq (when seq is not NULL) its
 * allocation sequence number (0: none recorded), read before the block can
 * be handed out again. */
static inline __attribute__((always_inline)) enum pool_free_result
small_free(struct pool_arena *ar, uintptr_t addr, uint32_t freer, size_t *size, uint64_t *seq)
{
	struct small_ref r;
	if (!small_resolve(ar, addr, &r)) {
		/* In memprof's arena but no block there: the header slot or a
		 * never-carved pool is foreign to the program, a pool's tail
		 * is a bad pointer into a pool. */
		unsigned slot = (unsigned)((addr - ar->base) >> ar->shift);
		uint8_t st = __atomic_load_n(&ar->pools[slot].state, __ATOMIC_ACQUIRE);
		return slot == 0 || st == POOL_STATE_UNCARVED ? POOL_FREE_FOREIGN : POOL_FREE_INVALID;
	}
	if (r.start != addr)
		return POOL_FREE_INVALID;
	if (r.state == POOL_STATE_EMPTY)
		return POOL_FREE_DOUBLE;
	struct pool_hdr *p = r.p;
	struct pool_heap *owner = __atomic_load_n(&p->owner, __ATOMIC_ACQUIRE);
	struct pool_heap *h = tl_heap;
	uint32_t w = __atomic_load_n(r.w, __ATOMIC_RELAXED);
	/* the freeing stack goes in with the LIVE bit's clearing: a
	 * double free that loses the race may overwrite it, as it would
	 * with pool_block_set_freer */
	uint32_t set = freer ? POOL_W_FREER : 0;
	if (POOL_LIKELY(owner == h && h)) {
		if (POOL_UNLIKELY(!(w & POOL_W_LIVE)))
			return POOL_FREE_DOUBLE;
		if (freer)
			pool_info_of(p, r.idx)->free_stack_id = freer;
		if (seq)
			*seq = w & POOL_W_OWNER ? pool_info_of(p, r.idx)->seq : 0;
		*size = w & POOL_W_SIZE;
		/* The flags stay: a double free can still name the stacks. */
		__atomic_store_n(r.w, (w & ~POOL_W_LIVE) | set, __ATOMIC_RELEASE);
		*(void **)addr = p->free;
		p->free = (void *)addr;
		if (POOL_UNLIKELY(--p->used == 0 || p->state == POOL_STATE_FULL))
			local_free_slow(h, p);
		return POOL_FREE_OK;
	}
	if (!(w & POOL_W_LIVE))
		return POOL_FREE_DOUBLE;
	if (freer)
		pool_info_of(p, r.idx)->free_stack_id = freer;
	if (seq)
		*seq = w & POOL_W_OWNER ? pool_info_of(p, r.idx)->seq : 0;
	do {
		if (!(w & POOL_W_LIVE))
			return POOL_FREE_DOUBLE;
	} while (!__atomic_compare_exchange_n(r.w, &w, (w & ~POOL_W_LIVE) | set, true,
					      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
	*size = w & POOL_W_SIZE;
	/* The block is ours now (state FREE): hand it to the pool's owner,
	 * or free it under the lock if the pool has none. */
	for (;;) {
		if (owner) {
			remote_push(p, (void *)addr, owner);
			return POOL_FREE_OK;
		}
		if (abandoned_free(p, (void *)addr))
			return POOL_FREE_OK;
		owner = __atomic_load_n(&p->owner, __ATOMIC_ACQUIRE);
	}
}

/* ---- the malloc family -------------------------------------------------- */

void *pool_malloc(size_t size)
{
	if (POOL_LIKELY(size <= POOL_SMALL_MAX))
		return small_alloc(size);
	return pool_large_alloc(size, 0, false);
}

void *pool_calloc(size_t nmemb, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(nmemb, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (total > POOL_SMALL_MAX)
		return pool_large_alloc(total, 0, true);
	void *p = small_alloc(total);
	if (p)
		memset(p, 0, pool_class_size(pool_size_class(total)));
	return p;
}

enum pool_free_result pool_free(void *ptr)
{
	if (!ptr)
		return POOL_FREE_NULL;
	uintptr_t addr = (uintptr_t)ptr;
	struct pool_arena *ar = pool_arena_of(addr);
	size_t size;
	if (POOL_LIKELY(ar))
		return small_free(ar, addr, 0, &size, NULL);
	return pool_large_free(ptr, 0, &size, NULL);
}

enum pool_free_result pool_free_traced(void *ptr, uint32_t free_stack_id, size_t *size,
				       bool *large, uint64_t *seq)
{
	*size = 0;
	*large = false;
	*seq = 0;
	if (!ptr)
		return POOL_FREE_NULL;
	uintptr_t addr = (uintptr_t)ptr;
	struct pool_arena *ar = pool_arena_of(addr);
	if (POOL_LIKELY(ar))
		return small_free(ar, addr, free_stack_id, size, seq);
	enum pool_free_result r = pool_large_free(ptr, free_stack_id, size, seq);
	*large = r == POOL_FREE_OK;
	return r;
}

/* The live small block starting at ptr, or why not. */
static enum pool_free_result small_live(struct pool_arena *ar, uintptr_t addr, struct small_ref *r)
{
	if (!small_resolve(ar, addr, r))
		return POOL_FREE_FOREIGN;
	if (r->start != addr)
		return POOL_FREE_INVALID;
	if (r->state == POOL_STATE_EMPTY ||
	    !(__atomic_load_n(r->w, __ATOMIC_ACQUIRE) & POOL_W_LIVE))
		return POOL_FREE_DOUBLE;
	return POOL_FREE_OK;
}

void *pool_realloc_checked(void *ptr, size_t size, enum pool_free_result *bad)
{
	if (bad)
		*bad = POOL_FREE_OK;
	if (!ptr)
		return pool_malloc(size);
	if (size == 0) {
		enum pool_free_result r = pool_free(ptr);
		if (bad && r != POOL_FREE_OK)
			*bad = r;
		return NULL;
	}
	uintptr_t addr = (uintptr_t)ptr;
	struct pool_arena *ar = pool_arena_of(addr);
	if (!ar)
		return pool_large_realloc(ptr, size, bad);
	struct small_ref r;
	enum pool_free_result why = small_live(ar, addr, &r);
	if (why != POOL_FREE_OK) {
		if (bad)
			*bad = why;
		return NULL;
	}
	unsigned cls = r.p->cls;
	if (size <= POOL_SMALL_MAX && pool_size_class(size) == cls) {
		uint32_t w = __atomic_load_n(r.w, __ATOMIC_RELAXED);
		__atomic_store_n(r.w, (w & ~POOL_W_SIZE) | (uint32_t)size, __ATOMIC_RELAXED);
		return ptr;
	}
	void *n = pool_malloc(size);
	if (!n)
		return NULL;
	size_t old = pool_class_size(cls);
	memcpy(n, ptr, old < size ? old : size);
	size_t freed;
	small_free(ar, addr, 0, &freed, NULL);
	return n;
}

void *pool_realloc(void *ptr, size_t size)
{
	return pool_realloc_checked(ptr, size, NULL);
}

void *pool_reallocarray(void *ptr, size_t nmemb, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(nmemb, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return pool_realloc(ptr, total);
}

/* glibc 2.36's memalign: alignments up to 16 are malloc's; an alignment
 * that is not a power of two is rounded up to one; over SIZE_MAX/2 + 1 is
 * EINVAL.  aligned_alloc is the same function there. */
void *pool_memalign(size_t alignment, size_t size)
{
	if (alignment <= POOL_ALIGNMENT)
		return pool_malloc(size);
	if (alignment > SIZE_MAX / 2 + 1) {
		errno = EINVAL;
		return NULL;
	}
	if (alignment & (alignment - 1)) {
		size_t a = POOL_ALIGNMENT;
		while (a < alignment)
			a <<= 1;
		alignment = a;
	}
	return pool_large_alloc(size, alignment, false);
}

int pool_posix_memalign(void **out, size_t alignment, size_t size)
{
	size_t words = alignment / sizeof(void *);
	if (alignment % sizeof(void *) != 0 || (words & (words - 1)) != 0 || alignment == 0)
		return EINVAL;
	void *p = pool_memalign(alignment, size);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

void *pool_aligned_alloc(size_t alignment, size_t size)
{
	return pool_memalign(alignment, size);
}

static size_t page_size(void)
{
	static size_t ps;
	size_t v = __atomic_load_n(&ps, __ATOMIC_RELAXED);
	if (!v) {
		long r = sysconf(_SC_PAGESIZE);
		v = r > 0 ? (size_t)r : POOL_PAGE_SIZE;
		__atomic_store_n(&ps, v, __ATOMIC_RELAXED);
	}
	return v;
}

void *pool_valloc(size_t size)
{
	return pool_memalign(page_size(), size);
}

void *pool_pvalloc(size_t size)
{
	size_t ps = page_size(), rounded;
	if (__builtin_add_overflow(size, ps - 1, &rounded)) {
		errno = ENOMEM;
		return NULL;
	}
	return pool_memalign(ps, rounded & ~(ps - 1));
}

size_t pool_usable_size(const void *ptr)
{
	if (!ptr)
		return 0;
	uintptr_t addr = (uintptr_t)ptr;
	struct pool_arena *ar = pool_arena_of(addr);
	if (!ar)
		return pool_large_usable(ptr);
	struct small_ref r;
	if (small_live(ar, addr, &r) != POOL_FREE_OK)
		return 0;
	return r.p->bsize;
}

/* ---- metadata and lookup ----------------------------------------------------- */

void pool_block_set_owner(void *ptr, uint32_t stack_id, uint64_t seq)
{
	uintptr_t addr = (uintptr_t)ptr;
	if (tl_last.start_inv == ~addr) {
		/* the block this thread just handed out: only this thread
		 * takes blocks from its pools, so it is still that block */
		tl_last.start_inv = 0;
		uint32_t w = __atomic_load_n(tl_last.w, __ATOMIC_RELAXED);
		if (w & POOL_W_LIVE) {
			tl_last.info->stack_id = stack_id;
			tl_last.info->seq = seq;
			__atomic_store_n(tl_last.w, w | POOL_W_OWNER, __ATOMIC_RELEASE);
		}
		return;
	}
	struct pool_arena *ar = pool_arena_of(addr);
	if (!ar) {
		if (ptr)
			pool_large_set_owner(ptr, stack_id, seq);
		return;
	}
	struct small_ref r;
	if (small_live(ar, addr, &r) == POOL_FREE_OK) {
		struct pool_info *info = pool_info_of(r.p, r.idx);
		info->stack_id = stack_id;
		info->seq = seq;
		/* no other thread changes the word of a block being handed
		 * out (a free needs the pointer): a store, not a locked or */
		uint32_t w = __atomic_load_n(r.w, __ATOMIC_RELAXED);
		__atomic_store_n(r.w, w | POOL_W_OWNER, __ATOMIC_RELEASE);
	}
}

void pool_block_set_freer(void *ptr, uint32_t stack_id)
{
	uintptr_t addr = (uintptr_t)ptr;
	struct pool_arena *ar = pool_arena_of(addr);
	if (!ar) {
		if (ptr)
			pool_large_set_freer(ptr, stack_id);
		return;
	}
	struct small_ref r;
	if (small_live(ar, addr, &r) == POOL_FREE_OK) {
		pool_info_of(r.p, r.idx)->free_stack_id = stack_id;
		__atomic_fetch_or(r.w, POOL_W_FREER, __ATOMIC_RELEASE);
	}
}

/* w: the block's word as read by the caller (LIVE cleared for a block of
 * an emptied pool). */
static void fill_small(const struct small_ref *r, uint32_t w, struct pool_block *out)
{
	const struct pool_info *info = pool_info_of(r->p, r->idx);
	out->start = (void *)r->start;
	out->size = w & POOL_W_SIZE;
	out->usable = r->p->bsize;
	out->seq = w & POOL_W_OWNER ? info->seq : 0;
	out->stack_id = w & POOL_W_OWNER ? info->stack_id : 0;
	out->free_stack_id = w & POOL_W_FREER ? info->free_stack_id : 0;
	out->live = (w & POOL_W_LIVE) != 0;
	out->large = false;
}

/* A live block matches addr in its requested bytes [start, start +
 * max(size, 1)): the valgrind rule, so one-past-the-end is not inside.
 * With any, a free block whose metadata is still there matches anywhere in
 * its usable bytes. */
static bool lookup(const void *ptr, struct pool_block *out, bool any)
{
	uintptr_t addr = (uintptr_t)ptr;
	struct pool_arena *ar = pool_arena_of(addr);
	if (!ar)
		return pool_large_lookup(addr, out, any);
	struct small_ref r;
	if (!small_resolve(ar, addr, &r))
		return false;
	uint32_t w = __atomic_load_n(r.w, __ATOMIC_ACQUIRE);
	if (r.state == POOL_STATE_EMPTY)
		w &= ~POOL_W_LIVE;
	if (w & POOL_W_LIVE) {
		size_t size = w & POOL_W_SIZE;
		if (addr - r.start >= (size ? size : 1))
			return false;
	} else if (!any) {
		return false;
	}
	fill_small(&r, w, out);
	return true;
}

bool pool_lookup(const void *addr, struct pool_block *out)
{
	return lookup(addr, out, false);
}

bool pool_lookup_where(const void *addr, struct pool_where *out)
{
	uintptr_t a = (uintptr_t)addr;
	struct pool_arena *ar = pool_arena_of(a);
	if (!ar) {
		struct pool_block b;
		if (!pool_large_lookup(a, &b, false))
			return false;
		out->start = (uintptr_t)b.start;
		out->size = b.size;
		out->usable = b.usable;
		out->pool = NULL;
		out->idx = 0;
		return true;
	}
	struct small_ref r;
	if (!small_resolve(ar, a, &r) || r.state == POOL_STATE_EMPTY)
		return false;
	uint32_t w = __atomic_load_n(r.w, __ATOMIC_ACQUIRE);
	size_t size = w & POOL_W_SIZE;
	if (!(w & POOL_W_LIVE) || a - r.start >= (size ? size : 1))
		return false;
	out->start = r.start;
	out->size = size;
	out->usable = r.p->bsize;
	out->pool = r.p;
	out->idx = r.idx;
	return true;
}

bool pool_lookup_any(const void *addr, struct pool_block *out)
{
	return lookup(addr, out, true);
}

size_t pool_foreach_live(void (*fn)(const struct pool_block *blk, void *arg), void *arg)
{
	size_t n = 0;
	pool_arena_lock();
	for (struct pool_arena *ar = pool_arena_first(); ar; ar = ar->all_next) {
		for (unsigned s = 1; s < ar->slots; s++) {
			struct pool_hdr *p = &ar->pools[s];
			uint8_t st = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
			if (st == POOL_STATE_UNCARVED || st == POOL_STATE_EMPTY)
				continue;
			uint32_t bump = __atomic_load_n(&p->bump, __ATOMIC_RELAXED);
			for (uint32_t i = 0; i < bump; i++) {
				struct small_ref r = {
					.ar = ar, .p = p, .w = pool_word_of(p, i), .idx = i,
					.start = p->base + (uintptr_t)i * p->bsize,
					.state = st,
				};
				uint32_t w = __atomic_load_n(r.w, __ATOMIC_ACQUIRE);
				if (!(w & POOL_W_LIVE))
					continue;
				struct pool_block blk;
				fill_small(&r, w, &blk);
				fn(&blk, arg);
				n++;
			}
		}
	}
	pool_arena_unlock();
	return n + pool_large_foreach(fn, arg);
}

void pool_foreach_own_range(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg)
{
	pool_arena_own_ranges(fn, arg);
	pool_large_own_ranges(fn, arg);
	pthread_mutex_lock(&heaps_lock);
	/* Heaps sit in 64 KiB slabs; report each heap (slabs are not chained). */
	for (struct pool_heap *h = heaps_all; h; h = h->all_next)
		fn((uintptr_t)h, (uintptr_t)h + sizeof(*h), arg);
	pthread_mutex_unlock(&heaps_lock);
}

/* ---- process lifecycle ----------------------------------------------------- */

void pool_fork_prepare(void)
{
	pthread_mutex_lock(&heaps_lock);
	pthread_mutex_lock(&abandon_lock);
	pool_arena_lock();
	pool_large_fork_prepare();
}

void pool_fork_parent(void)
{
	pool_large_fork_parent();
	pool_arena_unlock();
	pthread_mutex_unlock(&abandon_lock);
	pthread_mutex_unlock(&heaps_lock);
}

/* In the child only the forking thread exists.  The other threads' heaps
 * may have been stopped in the middle of a lock-free update, so their
 * pools are left alone: they become orphans, never reused for allocation;
 * blocks in them can still be freed (remote path) and looked up. */
void pool_fork_child(void)
{
	pool_large_fork_child();
	pool_arena_fork_child();
	pthread_mutex_init(&abandon_lock, NULL);
	pthread_mutex_init(&heaps_lock, NULL);
	for (struct pool_heap *h = heaps_all; h; h = h->all_next)
		if (h->live && h != tl_heap)
			h->orphan = true;
}

void pool_thread_exit(void)
{
	struct pool_heap *h = tl_heap;
	tl_last.start_inv = 0;
	if (!h)
		return;
	tl_heap = NULL;
	pthread_mutex_lock(&abandon_lock);
	for (unsigned c = 0; c < POOL_NUM_CLASSES; c++) {
		struct pool_hdr **lists[2] = { &h->used[c], &h->full[c] };
		for (int l = 0; l < 2; l++) {
			struct pool_hdr *p;
			while ((p = *lists[l])) {
				list_remove(lists[l], p);
				__atomic_store_n(&p->owner, NULL, __ATOMIC_SEQ_CST);
				collect(p);
				pool_assert_expensive(pool_valid(p));
				if (p->used == 0) {
					release_pool(p);
				} else {
					set_state(p, POOL_STATE_ABANDONED);
					list_push(&abandoned[c], p);
				}
			}
		}
	}
	pthread_mutex_unlock(&abandon_lock);
	pthread_mutex_lock(&heaps_lock);
	h->live = false;
	h->free_next = heaps_free;
	heaps_free = h;
	pthread_mutex_unlock(&heaps_lock);
}
