/*
 * pool-large.c: blocks over 4096 bytes or aligned over 16, served by the C
 * library's raw allocator (__libc_malloc and friends) and tracked here so
 * that every live block can be found.  Entry points: pool_large_alloc(),
 * pool_large_free(), pool_large_lookup().
 *
 * Tracking: a hash table keyed by the block's start address, split in 64
 * stripes, each with its own mutex, bucket array and node slabs (all from
 * mmap, never from malloc).  A free leaves the node in the table marked
 * dead, in a per-stripe FIFO of the last LARGE_DEAD_MAX frees, so that a
 * double free is recognised and pool_lookup_any() still names its stacks;
 * a new block at the same address replaces the dead node.
 *
 * Interior pointers: an index from 4 KiB pages to the live blocks that
 * overlap them answers "which block contains addr" in O(1) expected.  It is
 * built lazily, on the first interior lookup after the set of blocks
 * changed (a generation counter bumped by every alloc and free), instead of
 * being maintained on each alloc and free.  The choice: a program allocates
 * and frees large blocks on its hot path (a 1 KiB string is a large block),
 * where keeping the index would cost a global lock and O(pages) work per
 * call; interior lookups come in bursts while nothing changes (the leak
 * scan, with the other threads stopped), so one build serves the whole
 * burst.  Its size is one 32-byte entry per page overlapped, about 0.8% of
 * the large bytes.  A word outside [large_lo, large_hi) (bounds that only
 * widen) is rejected without any lock.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "pool-private.h"

#define LARGE_STRIPES 64u
#define LARGE_DEAD_MAX 16u
#define LARGE_SLAB_SIZE (64u * 1024u)
#define LARGE_MIN_BUCKETS 16u /* per stripe: few, so that the hot ones stay cached */

struct large_node {
	uintptr_t start;
	uintptr_t raw; /* what the raw allocator returned: start, but see RAW_ALIGN */
	size_t size;
	uint64_t seq;
	uint32_t stack_id;
	uint32_t free_stack_id;
	bool live;
	struct large_node *next;         /* hash chain, or free list */
	struct large_node *dprev, *dnext; /* dead FIFO */
};

struct large_slab {
	struct large_slab *next;
};

struct large_stripe {
	int lock; /* a spin lock: held for a few loads and stores */
	uint64_t gen; /* bumped by every alloc and free here, under the lock */
	struct large_node **buckets;
	size_t nbuckets;
	size_t count; /* nodes in the table, live and dead */
	size_t live, live_bytes;
	struct large_node *free_nodes;
	struct large_node *dead_head, *dead_tail;
	unsigned ndead;
	struct large_slab *slabs;
} __attribute__((aligned(64)));

static struct large_stripe stripes[LARGE_STRIPES];
static uintptr_t large_lo = UINTPTR_MAX, large_hi;

/* The stripe locks are taken on every large alloc and free, uncontended
 * but for a moment: a spin lock costs one exchange where a mutex costs a
 * call, and yielding keeps a preempted holder from stalling the others. */
static void stripe_lock(struct large_stripe *s)
{
	unsigned spins = 0;
	while (__atomic_exchange_n(&s->lock, 1, __ATOMIC_ACQUIRE) != 0) {
		while (__atomic_load_n(&s->lock, __ATOMIC_RELAXED) != 0) {
			if (++spins > 64)
				sched_yield();
			else
				__builtin_ia32_pause();
		}
	}
}

static void stripe_unlock(struct large_stripe *s)
{
	__atomic_store_n(&s->lock, 0, __ATOMIC_RELEASE);
}

/* Every block change bumps its stripe's gen (under the stripe's lock,
 * no shared counter on the hot path); the index is current while the sum
 * of all gens has not moved (they only grow). */
static uint64_t large_gen(void)
{
	uint64_t g = 0;
	for (unsigned i = 0; i < LARGE_STRIPES; i++)
		g += __atomic_load_n(&stripes[i].gen, __ATOMIC_ACQUIRE);
	return g;
}

static void gen_bump(struct large_stripe *s)
{
	__atomic_store_n(&s->gen, s->gen + 1, __ATOMIC_RELEASE);
}

/* The node of the calling thread's latest large block, for
 * pool_large_set_owner() right after the allocation: the block is not the
 * program's yet, so nobody else frees it meanwhile.  The address is kept
 * inverted: the leak scan reads thread-local storage as a root, and must
 * not take this for a pointer to the block. */
static __thread struct {
	uintptr_t start_inv; /* ~start; 0 (~start of nothing): none */
	struct large_node *node;
} last_alloc __attribute__((tls_model("initial-exec")));

static uint64_t addr_hash(uintptr_t a)
{
	return (uint64_t)(a >> 4) * 0x9E3779B97F4A7C15ull;
}

static struct large_stripe *stripe_of(uintptr_t a)
{
	return &stripes[addr_hash(a) >> 58];
}

static size_t bucket_of(uintptr_t a, size_t nbuckets)
{
	return (size_t)(addr_hash(a) >> 20) & (nbuckets - 1);
}

static struct large_node *find(struct large_stripe *s, uintptr_t start)
{
	if (!s->buckets)
		return NULL;
	struct large_node *n = s->buckets[bucket_of(start, s->nbuckets)];
	while (n && n->start != start)
		n = n->next;
	return n;
}

static struct large_node *node_new(struct large_stripe *s)
{
	if (!s->free_nodes) {
		char *slab = pool_os_map(LARGE_SLAB_SIZE);
		if (!slab)
			return NULL;
		((struct large_slab *)slab)->next = s->slabs;
		s->slabs = (struct large_slab *)slab;
		size_t first = (sizeof(struct large_slab) + 63) & ~(size_t)63;
		for (size_t off = first; off + sizeof(struct large_node) <= LARGE_SLAB_SIZE;
		     off += sizeof(struct large_node)) {
			struct large_node *n = (struct large_node *)(slab + off);
			n->next = s->free_nodes;
			s->free_nodes = n;
		}
	}
	struct large_node *n = s->free_nodes;
	s->free_nodes = n->next;
	return n;
}

static void node_release(struct large_stripe *s, struct large_node *n)
{
	n->next = s->free_nodes;
	s->free_nodes = n;
}

static void chain_unlink(struct large_stripe *s, struct large_node *n)
{
	struct large_node **pp = &s->buckets[bucket_of(n->start, s->nbuckets)];
	while (*pp != n)
		pp = &(*pp)->next;
	*pp = n->next;
	s->count--;
}

static void dead_unlink(struct large_stripe *s, struct large_node *n)
{
	if (n->dprev)
		n->dprev->dnext = n->dnext;
	else
		s->dead_head = n->dnext;
	if (n->dnext)
		n->dnext->dprev = n->dprev;
	else
		s->dead_tail = n->dprev;
	n->dprev = n->dnext = NULL;
	s->ndead--;
}

/* Doubles the bucket array; on failure the chains just grow longer. */
static void grow(struct large_stripe *s)
{
	size_t nb = s->nbuckets ? s->nbuckets * 2 : LARGE_MIN_BUCKETS;
	struct large_node **b = pool_os_map(nb * sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct large_node *n = s->buckets[i];
		while (n) {
			struct large_node *next = n->next;
			size_t k = bucket_of(n->start, nb);
			n->next = b[k];
			b[k] = n;
			n = next;
		}
	}
	pool_os_unmap(s->buckets, s->nbuckets * sizeof(*b));
	s->buckets = b;
	s->nbuckets = nb;
}

/* Inserts live node n (start and size set) into its stripe, locked by the
 * caller; a dead node at the same address is dropped.  false (n released)
 * only when the stripe has no bucket array and none can be mapped. */
static bool insert_locked(struct large_stripe *s, struct large_node *n)
{
	struct large_node *old = find(s, n->start);
	if (old) {
		chain_unlink(s, old);
		if (old->live) {
			s->live--;
			s->live_bytes -= old->size;
		} else {
			dead_unlink(s, old);
		}
		node_release(s, old);
	}
	if (s->count >= s->nbuckets)
		grow(s);
	if (!s->buckets) {
		node_release(s, n);
		return false;
	}
	size_t k = bucket_of(n->start, s->nbuckets);
	n->live = true;
	n->dprev = n->dnext = NULL;
	n->next = s->buckets[k];
	s->buckets[k] = n;
	s->count++;
	s->live++;
	s->live_bytes += n->size;
	return true;
}

static void widen_bounds(uintptr_t lo, uintptr_t hi)
{
	uintptr_t cur = __atomic_load_n(&large_lo, __ATOMIC_RELAXED);
	while (lo < cur && !__atomic_compare_exchange_n(&large_lo, &cur, lo, true,
							 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
	cur = __atomic_load_n(&large_hi, __ATOMIC_RELAXED);
	while (hi > cur && !__atomic_compare_exchange_n(&large_hi, &cur, hi, true,
							 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
}

/* Tracks block p (raw: what to give back to __libc_free).  false: no
 * memory for the node (p is not tracked). */
static bool track(void *p, void *raw, size_t size, struct large_node *reuse)
{
	uintptr_t a = (uintptr_t)p;
	struct large_stripe *s = stripe_of(a);
	stripe_lock(s);
	struct large_node *n = reuse ? reuse : node_new(s);
	if (!n) {
		stripe_unlock(s);
		return false;
	}
	if (!reuse) {
		n->seq = 0;
		n->stack_id = 0;
		n->free_stack_id = 0;
	}
	n->start = a;
	n->raw = (uintptr_t)raw;
	n->size = size;
	bool ok = insert_locked(s, n);
	if (ok)
		gen_bump(s);
	stripe_unlock(s);
	if (!ok)
		return false;
	last_alloc.start_inv = ~a;
	last_alloc.node = n;
	widen_bounds(a, a + (size ? size : 1));
	return true;
}

/* AddressSanitizer intercepts __libc_memalign but not __libc_free: in a
 * sanitized build, aligned blocks are carved from a larger __libc_malloc
 * block instead, so that every block goes back to the allocator it came
 * from. */
#if defined(__SANITIZE_ADDRESS__)
#define RAW_ALIGN_BY_HAND 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RAW_ALIGN_BY_HAND 1
#endif
#endif
#ifndef RAW_ALIGN_BY_HAND
#define RAW_ALIGN_BY_HAND 0
#endif

static void *raw_memalign(size_t alignment, size_t size, void **raw)
{
	if (!RAW_ALIGN_BY_HAND)
		return *raw = __libc_memalign(alignment, size);
	size_t total;
	if (__builtin_add_overflow(size, alignment, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	*raw = __libc_malloc(total);
	if (!*raw)
		return NULL;
	uintptr_t a = ((uintptr_t)*raw + alignment - 1) & ~(uintptr_t)(alignment - 1);
	return (void *)a;
}

void *pool_large_alloc(size_t size, size_t alignment, bool zero)
{
	void *p, *raw;
	if (alignment)
		p = raw_memalign(alignment, size, &raw);
	else if (zero)
		p = raw = __libc_calloc(1, size);
	else
		p = raw = __libc_malloc(size);
	if (!p)
		return NULL;
	if (!track(p, raw, size, NULL)) {
		__libc_free(raw);
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

/* ---- the interior index ------------------------------------------------- */

struct index_entry {
	uintptr_t page;
	uintptr_t start;
	size_t size;
	uint32_t next; /* entry index + 1, 0 ends the chain */
};

static pthread_mutex_t index_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	bool valid;
	uint64_t gen;
	void *map;
	size_t map_bytes;
	struct index_entry *entries;
	uint32_t *buckets; /* entry index + 1 */
	size_t nbuckets;
} ix;

static size_t span_pages(uintptr_t start, size_t size)
{
	uintptr_t last = start + (size ? size : 1) - 1;
	return (size_t)((last / POOL_PAGE_SIZE) - (start / POOL_PAGE_SIZE) + 1);
}

static size_t page_bucket(uintptr_t page, size_t nbuckets)
{
	return (size_t)((uint64_t)page * 0x9E3779B97F4A7C15ull >> 20) & (nbuckets - 1);
}

/* Rebuilds the index with index_lock and every stripe lock held. */
static bool index_build(void)
{
	size_t pages = 0;
	for (unsigned i = 0; i < LARGE_STRIPES; i++) {
		struct large_stripe *s = &stripes[i];
		for (size_t b = 0; b < s->nbuckets; b++)
			for (struct large_node *n = s->buckets[b]; n; n = n->next)
				if (n->live)
					pages += span_pages(n->start, n->size);
	}
	if (pages >= UINT32_MAX)
		return false;
	size_t nb = 1024;
	while (nb < 2 * pages)
		nb *= 2;
	size_t need = pages * sizeof(struct index_entry) + nb * sizeof(uint32_t);
	need = (need + POOL_PAGE_SIZE - 1) & ~(size_t)(POOL_PAGE_SIZE - 1);
	if (need > ix.map_bytes || need < ix.map_bytes / 4) {
		void *m = pool_os_map(need);
		if (!m)
			return false;
		pool_os_unmap(ix.map, ix.map_bytes);
		ix.map = m;
		ix.map_bytes = need;
	}
	ix.entries = ix.map;
	ix.buckets = (uint32_t *)((char *)ix.map + pages * sizeof(struct index_entry));
	ix.nbuckets = nb;
	memset(ix.buckets, 0, nb * sizeof(uint32_t));
	uint32_t e = 0;
	for (unsigned i = 0; i < LARGE_STRIPES; i++) {
		struct large_stripe *s = &stripes[i];
		for (size_t b = 0; b < s->nbuckets; b++) {
			for (struct large_node *n = s->buckets[b]; n; n = n->next) {
				if (!n->live)
					continue;
				uintptr_t first = n->start / POOL_PAGE_SIZE;
				size_t np = span_pages(n->start, n->size);
				for (size_t k = 0; k < np; k++) {
					struct index_entry *ent = &ix.entries[e];
					size_t bk = page_bucket(first + k, nb);
					ent->page = first + k;
					ent->start = n->start;
					ent->size = n->size;
					ent->next = ix.buckets[bk];
					ix.buckets[bk] = ++e;
				}
			}
		}
	}
	return true;
}

/* The start of the live large block whose requested bytes contain addr
 * (as of the last build), 0 if none. */
static uintptr_t index_find(uintptr_t addr)
{
	uintptr_t found = 0;
	pthread_mutex_lock(&index_lock);
	uint64_t gen = large_gen();
	if (!ix.valid || ix.gen != gen) {
		for (unsigned i = 0; i < LARGE_STRIPES; i++)
			stripe_lock(&stripes[i]);
		gen = large_gen();
		ix.valid = index_build();
		ix.gen = gen;
		for (unsigned i = LARGE_STRIPES; i-- > 0;)
			stripe_unlock(&stripes[i]);
	}
	if (ix.valid) {
		uintptr_t page = addr / POOL_PAGE_SIZE;
		uint32_t e = ix.buckets[page_bucket(page, ix.nbuckets)];
		while (e) {
			struct index_entry *ent = &ix.entries[e - 1];
			if (ent->page == page && addr >= ent->start &&
			    addr - ent->start < (ent->size ? ent->size : 1)) {
				found = ent->start;
				break;
			}
			e = ent->next;
		}
	}
	pthread_mutex_unlock(&index_lock);
	return found;
}

/* ---- freeing, lookup, metadata --------------------------------------------- */

static void fill(const struct large_node *n, struct pool_block *out)
{
	out->start = (void *)n->start;
	out->size = n->size;
	out->usable = n->size;
	out->seq = n->seq;
	out->stack_id = n->stack_id;
	out->free_stack_id = n->free_stack_id;
	out->live = n->live;
	out->large = true;
}

static bool in_bounds(uintptr_t a)
{
	return a >= __atomic_load_n(&large_lo, __ATOMIC_ACQUIRE) &&
	       a < __atomic_load_n(&large_hi, __ATOMIC_ACQUIRE);
}

/* Why ptr, not a live large block's start, cannot be freed. */
static enum pool_free_result classify(uintptr_t a, bool known_dead)
{
	if (in_bounds(a) && index_find(a))
		return POOL_FREE_INVALID;
	return known_dead ? POOL_FREE_DOUBLE : POOL_FREE_FOREIGN;
}

enum pool_free_result pool_large_free(void *ptr, uint32_t free_stack_id, size_t *size,
				      uint64_t *seq)
{
	uintptr_t a = (uintptr_t)ptr;
	struct large_stripe *s = stripe_of(a);
	stripe_lock(s);
	struct large_node *n = find(s, a);
	if (!n || !n->live) {
		stripe_unlock(s);
		return classify(a, n != NULL);
	}
	if (free_stack_id)
		n->free_stack_id = free_stack_id;
	*size = n->size;
	if (seq)
		*seq = n->seq;
	if (last_alloc.start_inv == ~a)
		last_alloc.start_inv = 0;
	n->live = false;
	gen_bump(s);
	void *raw = (void *)n->raw;
	s->live--;
	s->live_bytes -= n->size;
	n->dprev = s->dead_tail;
	n->dnext = NULL;
	if (s->dead_tail)
		s->dead_tail->dnext = n;
	else
		s->dead_head = n;
	s->dead_tail = n;
	if (++s->ndead > LARGE_DEAD_MAX) {
		struct large_node *old = s->dead_head;
		dead_unlink(s, old);
		chain_unlink(s, old);
		node_release(s, old);
	}
	stripe_unlock(s);
	__libc_free(raw);
	return POOL_FREE_OK;
}

void *pool_large_realloc(void *ptr, size_t size, enum pool_free_result *bad)
{
	uintptr_t a = (uintptr_t)ptr;
	struct large_stripe *s = stripe_of(a);
	stripe_lock(s);
	struct large_node *n = find(s, a);
	if (!n || !n->live) {
		stripe_unlock(s);
		enum pool_free_result why = classify(a, n != NULL);
		if (bad)
			*bad = why;
		return NULL;
	}
	size_t old_size = n->size;
	if (size <= POOL_SMALL_MAX || n->raw != n->start) {
		stripe_unlock(s);
		/* To a small block, or from a block aligned by hand. */
		void *q = pool_malloc(size);
		if (!q)
			return NULL;
		memcpy(q, ptr, old_size < size ? old_size : size);
		size_t freed;
		pool_large_free(ptr, 0, &freed, NULL);
		return q;
	}
	/* Detach the node (keeping it, so that re-tracking cannot fail),
	 * let glibc move or resize the block, track it at its new place. */
	chain_unlink(s, n);
	s->live--;
	s->live_bytes -= old_size;
	gen_bump(s);
	stripe_unlock(s);
	void *q = __libc_realloc(ptr, size);
	if (!q) {
		track(ptr, ptr, old_size, n);
		return NULL;
	}
	track(q, q, size, n);
	return q;
}

size_t pool_large_usable(const void *ptr)
{
	uintptr_t a = (uintptr_t)ptr;
	struct large_stripe *s = stripe_of(a);
	stripe_lock(s);
	struct large_node *n = find(s, a);
	size_t r = n && n->live ? n->size : 0;
	stripe_unlock(s);
	return r;
}

void pool_large_set_owner(void *ptr, uint32_t stack_id, uint64_t seq)
{
	uintptr_t a = (uintptr_t)ptr;
	struct large_node *last = last_alloc.node;
	if (last_alloc.start_inv == ~a && __atomic_load_n(&last->start, __ATOMIC_RELAXED) == a &&
	    __atomic_load_n(&last->live, __ATOMIC_RELAXED)) {
		/* our own fresh block: readers (lookups, the scan) take the
		 * lock and may see the owner a moment late, as before */
		last_alloc.start_inv = 0;
		__atomic_store_n(&last->stack_id, stack_id, __ATOMIC_RELAXED);
		__atomic_store_n(&last->seq, seq, __ATOMIC_RELAXED);
		return;
	}
	struct large_stripe *s = stripe_of(a);
	stripe_lock(s);
	struct large_node *n = find(s, a);
	if (n && n->live) {
		n->stack_id = stack_id;
		n->seq = seq;
	}
	stripe_unlock(s);
}

void pool_large_set_freer(void *ptr, uint32_t stack_id)
{
	uintptr_t a = (uintptr_t)ptr;
	struct large_stripe *s = stripe_of(a);
	stripe_lock(s);
	struct large_node *n = find(s, a);
	if (n && n->live)
		n->free_stack_id = stack_id;
	stripe_unlock(s);
}

static bool find_fill(uintptr_t start, uintptr_t addr, struct pool_block *out, bool any)
{
	struct large_stripe *s = stripe_of(start);
	bool ok = false;
	stripe_lock(s);
	struct large_node *n = find(s, start);
	if (n && (n->live || any) && addr - start < (n->size ? n->size : 1)) {
		fill(n, out);
		ok = true;
	}
	stripe_unlock(s);
	return ok;
}

bool pool_large_lookup(uintptr_t addr, struct pool_block *out, bool any)
{
	if (!in_bounds(addr))
		return false;
	if (find_fill(addr, addr, out, any))
		return true;
	uintptr_t start = index_find(addr);
	return start && find_fill(start, addr, out, false);
}

size_t pool_large_foreach(void (*fn)(const struct pool_block *blk, void *arg), void *arg)
{
	size_t count = 0;
	for (unsigned i = 0; i < LARGE_STRIPES; i++) {
		struct large_stripe *s = &stripes[i];
		stripe_lock(s);
		for (size_t b = 0; b < s->nbuckets; b++) {
			for (struct large_node *n = s->buckets[b]; n; n = n->next) {
				if (!n->live)
					continue;
				struct pool_block blk;
				fill(n, &blk);
				fn(&blk, arg);
				count++;
			}
		}
		stripe_unlock(s);
	}
	return count;
}

void pool_large_counters(size_t *blocks, size_t *bytes)
{
	*blocks = *bytes = 0;
	for (unsigned i = 0; i < LARGE_STRIPES; i++) {
		struct large_stripe *s = &stripes[i];
		stripe_lock(s);
		*blocks += s->live;
		*bytes += s->live_bytes;
		stripe_unlock(s);
	}
}

void pool_large_own_ranges(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg)
{
	for (unsigned i = 0; i < LARGE_STRIPES; i++) {
		struct large_stripe *s = &stripes[i];
		stripe_lock(s);
		if (s->buckets)
			fn((uintptr_t)s->buckets,
			   (uintptr_t)s->buckets + s->nbuckets * sizeof(*s->buckets), arg);
		for (struct large_slab *sl = s->slabs; sl; sl = sl->next)
			fn((uintptr_t)sl, (uintptr_t)sl + LARGE_SLAB_SIZE, arg);
		stripe_unlock(s);
	}
	pthread_mutex_lock(&index_lock);
	if (ix.map)
		fn((uintptr_t)ix.map, (uintptr_t)ix.map + ix.map_bytes, arg);
	pthread_mutex_unlock(&index_lock);
	/* the bounds are the lowest block's start and one past the highest's
	 * end: as roots they kept the lowest large block from ever being lost
	 * (seen once blocks of 4 KiB, often the lowest, moved to the pools) */
	fn((uintptr_t)&large_lo, (uintptr_t)(&large_lo + 1), arg);
	fn((uintptr_t)&large_hi, (uintptr_t)(&large_hi + 1), arg);
}

void pool_large_fork_prepare(void)
{
	pthread_mutex_lock(&index_lock);
	for (unsigned i = 0; i < LARGE_STRIPES; i++)
		stripe_lock(&stripes[i]);
}

void pool_large_fork_parent(void)
{
	for (unsigned i = LARGE_STRIPES; i-- > 0;)
		stripe_unlock(&stripes[i]);
	pthread_mutex_unlock(&index_lock);
}

void pool_large_fork_child(void)
{
	for (unsigned i = 0; i < LARGE_STRIPES; i++)
		__atomic_store_n(&stripes[i].lock, 0, __ATOMIC_RELAXED);
	pthread_mutex_init(&index_lock, NULL);
}
