/*
 * stacks.c: the prefix tree of call-stack frames: nodes by id, each holding
 * its first children, and a lock-free-read hash for the rest.
 *
 * Main entry point: stack_table_intern().  A node (parent, ip) is found
 * among its parent's first NODE_KIDS children, stored in the parent node
 * itself, else (parent with more children) in the hash: open-addressing
 * slots (linear probing) mapping (parent, ip) to the id.  A slot is empty
 * while its id is 0; an inserter fills ip and parent first and publishes the
 * id last with a release store, and a slot never changes once published, so
 * a reader that sees a non-zero id (acquire) sees its key too.  Kid entries
 * are published the same way, and the parent's child count after them.
 *
 * Growth: when the hash would pass half full, the inserter (holding the
 * lock) copies every hashed node into a table twice as large and publishes
 * it.  The old table stays mapped, because readers may still be probing it;
 * a reader that misses takes the lock and finds the node (or inserts it)
 * with everything current.  Invariant: every node is in its parent's kids
 * or in the current hash, and every table is at most half full.
 */
#include "stacks.h"

#include <errno.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>

#define INITIAL_SLOTS 4096u

struct stack_slot {
	uint64_t ip;
	uint32_t parent;
	_Atomic uint32_t id;
};

struct stack_tab {
	size_t mask;
	struct stack_slot slots[];
};

/* A node by id.  parent and ip are written before the id is published
 * (in the parent's kids or in the hash).  A node keeps its first
 * NODE_KIDS + EXT_MAX * EXT_KIDS children itself: NODE_KIDS in the node, the
 * next ones in a chain of up to EXT_MAX extension blocks, each child as
 * id << 32 | (uint32_t)ip so that a probe compares the ip's low half before
 * loading the child; a kid entry or an ext link never changes once set.
 * Only later children go to the hash.  Nodes are laid out by id, and an
 * extension is made when its parent gets its child, so a stack walked
 * again reads memory written one part after the other instead of probing
 * a large hash at random (deep recursion makes millions of nodes, and a
 * function that inlined its own recursion has dozens of call sites). */
#define NODE_KIDS 5
#define EXT_KIDS 7
#define EXT_MAX 4
#define KIDS_MAX (NODE_KIDS + EXT_MAX * EXT_KIDS)

struct stack_ext {
	_Atomic uint64_t kid[EXT_KIDS];
	_Atomic(struct stack_ext *) next;
};

struct stack_node {
	uint64_t ip;
	uint32_t parent;
	_Atomic uint32_t nkids; /* children, written under the lock */
	_Atomic uint64_t kid[NODE_KIDS];
	_Atomic(struct stack_ext *) ext;
};

_Static_assert(sizeof(struct stack_node) == 64, "a node is a cache line");
_Static_assert(sizeof(struct stack_ext) == 64, "an extension is a cache line");

/* Extension blocks come from mmap'd slabs, linked through their first
 * block (never used as an extension), under the lock. */
#define EXT_SLAB_BYTES ((size_t)1 << 20)

#define NODE_CHUNKS ((size_t)1 << (32u - STACK_NODE_CHUNK_BITS))

static struct stack_node *node_of(struct stack_table *t, uint32_t id)
{
	struct stack_node *c = atomic_load_explicit(&t->chunks[id >> STACK_NODE_CHUNK_BITS],
						    memory_order_acquire);
	return c ? &c[id & (STACK_NODE_CHUNK - 1)] : NULL;
}

/* Lock held: the node of a new id, its chunk mapped if need be. */
static struct stack_node *node_new(struct stack_table *t, uint32_t id)
{
	size_t ci = id >> STACK_NODE_CHUNK_BITS;
	struct stack_node *c = atomic_load_explicit(&t->chunks[ci], memory_order_relaxed);
	if (!c) {
		void *p = mmap(NULL, STACK_NODE_CHUNK * sizeof(*c), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		c = p;
		atomic_store_explicit(&t->chunks[ci], c, memory_order_release);
	}
	return &c[id & (STACK_NODE_CHUNK - 1)];
}

static size_t hash_key(uint32_t parent, uint64_t ip)
{
	uint64_t h = ip * 0x9e3779b97f4a7c15ull;
	h ^= (uint64_t)parent * 0xc2b2ae3d27d4eb4full;
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 29;
	return (size_t)h;
}

static struct stack_tab *tab_map(size_t slots, size_t *bytes)
{
	size_t len = sizeof(struct stack_tab) + slots * sizeof(struct stack_slot);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	struct stack_tab *tab = p;
	tab->mask = slots - 1;
	*bytes = len;
	return tab;
}

static uint32_t tab_find(const struct stack_tab *tab, uint32_t parent, uint64_t ip)
{
	size_t i = hash_key(parent, ip) & tab->mask;
	for (;;) {
		const struct stack_slot *s = &tab->slots[i];
		uint32_t id = atomic_load_explicit(&s->id, memory_order_acquire);
		if (id == 0)
			return 0;
		if (s->ip == ip && s->parent == parent)
			return id;
		i = (i + 1) & tab->mask;
	}
}

/* Places a node in a table the caller owns (lock held or unpublished). */
static void tab_place(struct stack_tab *tab, uint32_t parent, uint64_t ip, uint32_t id)
{
	size_t i = hash_key(parent, ip) & tab->mask;
	while (atomic_load_explicit(&tab->slots[i].id, memory_order_relaxed) != 0)
		i = (i + 1) & tab->mask;
	tab->slots[i].ip = ip;
	tab->slots[i].parent = parent;
	atomic_store_explicit(&tab->slots[i].id, id, memory_order_release);
}

void stack_table_lock(struct stack_table *t)
{
	while (atomic_exchange_explicit(&t->lock, 1, memory_order_acquire) != 0)
		sched_yield();
}

void stack_table_unlock(struct stack_table *t)
{
	atomic_store_explicit(&t->lock, 0, memory_order_release);
}

int stack_table_init(struct stack_table *t)
{
	size_t bytes;
	struct stack_tab *tab = tab_map(INITIAL_SLOTS, &bytes);
	if (!tab)
		return -ENOMEM;
	void *dir = mmap(NULL, NODE_CHUNKS * sizeof(*t->chunks), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dir == MAP_FAILED) {
		munmap(tab, bytes);
		return -ENOMEM;
	}
	t->chunks = dir;
	if (!node_new(t, 0)) { /* the root's node, for its kids */
		munmap(dir, NODE_CHUNKS * sizeof(*t->chunks));
		munmap(tab, bytes);
		return -ENOMEM;
	}
	atomic_store_explicit(&t->lock, 0, memory_order_relaxed);
	t->count = 0;
	t->hashed = 0;
	t->ext_slabs = NULL;
	t->ext_free = NULL;
	t->ext_left = 0;
	t->next_id = 1;
	t->full = false;
	t->tables[0] = tab;
	t->table_bytes[0] = bytes;
	t->n_tables = 1;
	atomic_store_explicit(&t->cur, tab, memory_order_release);
	return 0;
}

void stack_table_finish(struct stack_table *t)
{
	for (unsigned i = 0; i < t->n_tables; i++)
		munmap(t->tables[i], t->table_bytes[i]);
	t->n_tables = 0;
	if (t->chunks) {
		for (size_t i = 0; i < NODE_CHUNKS; i++) {
			struct stack_node *c = atomic_load_explicit(&t->chunks[i],
								    memory_order_relaxed);
			if (c)
				munmap(c, STACK_NODE_CHUNK * sizeof(*c));
		}
		munmap(t->chunks, NODE_CHUNKS * sizeof(*t->chunks));
		t->chunks = NULL;
	}
	struct stack_ext *slab = t->ext_slabs;
	while (slab) {
		struct stack_ext *next = atomic_load_explicit(&slab->next, memory_order_relaxed);
		munmap(slab, EXT_SLAB_BYTES);
		slab = next;
	}
	t->ext_slabs = NULL;
	t->ext_left = 0;
	atomic_store_explicit(&t->cur, NULL, memory_order_relaxed);
}

/* Lock held: doubles the table.  false when out of memory. */
static bool grow(struct stack_table *t)
{
	struct stack_tab *old = atomic_load_explicit(&t->cur, memory_order_relaxed);
	size_t slots = (old->mask + 1) * 2, bytes;
	if (t->n_tables == sizeof(t->tables) / sizeof(t->tables[0]))
		return false;
	struct stack_tab *tab = tab_map(slots, &bytes);
	if (!tab)
		return false;
	for (size_t i = 0; i <= old->mask; i++) {
		uint32_t id = atomic_load_explicit(&old->slots[i].id, memory_order_relaxed);
		if (id != 0)
			tab_place(tab, old->slots[i].parent, old->slots[i].ip, id);
	}
	t->tables[t->n_tables] = tab;
	t->table_bytes[t->n_tables] = bytes;
	t->n_tables++;
	atomic_store_explicit(&t->cur, tab, memory_order_release);
	return true;
}

/* The child among n kid entries, 0 if none; *end when an empty entry
 * ends the kids. */
static uint32_t kids_find(struct stack_table *t, _Atomic uint64_t *kid, int n, uint64_t ip,
			  bool *end)
{
	for (int i = 0; i < n; i++) {
		uint64_t v = atomic_load_explicit(&kid[i], memory_order_acquire);
		if (v == 0) {
			*end = true; /* kids fill in order: no more children */
			return 0;
		}
		if ((uint32_t)v == (uint32_t)ip) {
			uint32_t c = (uint32_t)(v >> 32);
			if (node_of(t, c)->ip == ip)
				return c;
		}
	}
	return 0;
}

/* The child (parent, ip), else 0: parent's kids, then the hash when
 * parent has more children than it keeps.  Lock-free; a miss is only
 * final under the lock (a child being added meanwhile may be missed). */
static uint32_t find_child(struct stack_table *t, uint32_t parent, uint64_t ip)
{
	struct stack_node *p = node_of(t, parent);
	if (!p)
		return 0;
	bool end = false;
	uint32_t c = kids_find(t, p->kid, NODE_KIDS, ip, &end);
	if (c || end)
		return c;
	struct stack_ext *x = atomic_load_explicit(&p->ext, memory_order_acquire);
	for (; x; x = atomic_load_explicit(&x->next, memory_order_acquire)) {
		c = kids_find(t, x->kid, EXT_KIDS, ip, &end);
		if (c || end)
			return c;
	}
	if (atomic_load_explicit(&p->nkids, memory_order_acquire) <= KIDS_MAX)
		return 0;
	return tab_find(atomic_load_explicit(&t->cur, memory_order_acquire), parent, ip);
}

/* Lock held: a zeroed extension block, NULL when out of memory. */
static struct stack_ext *ext_new(struct stack_table *t)
{
	if (t->ext_left < sizeof(struct stack_ext)) {
		void *m = mmap(NULL, EXT_SLAB_BYTES, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return NULL;
		struct stack_ext *first = m;
		atomic_store_explicit(&first->next, t->ext_slabs, memory_order_relaxed);
		t->ext_slabs = first;
		t->ext_free = first + 1;
		t->ext_left = EXT_SLAB_BYTES - sizeof(*first);
	}
	struct stack_ext *x = t->ext_free;
	t->ext_free = x + 1;
	t->ext_left -= sizeof(*x);
	return x;
}

/* Lock held: publishes child v as parent p's kid number k (k < KIDS_MAX).
 * false when out of memory. */
static bool kid_add(struct stack_table *t, struct stack_node *p, uint32_t k, uint64_t v)
{
	if (k < NODE_KIDS) {
		atomic_store_explicit(&p->kid[k], v, memory_order_release);
		return true;
	}
	k -= NODE_KIDS;
	_Atomic(struct stack_ext *) *link = &p->ext;
	struct stack_ext *x = atomic_load_explicit(link, memory_order_relaxed);
	for (uint32_t b = 0; b < k / EXT_KIDS; b++) {
		link = &x->next;
		x = atomic_load_explicit(link, memory_order_relaxed);
	}
	if (k % EXT_KIDS == 0) {
		x = ext_new(t);
		if (!x)
			return false;
		atomic_store_explicit(&x->kid[0], v, memory_order_relaxed);
		atomic_store_explicit(link, x, memory_order_release);
		return true;
	}
	atomic_store_explicit(&x->kid[k % EXT_KIDS], v, memory_order_release);
	return true;
}

static uint32_t insert(struct stack_table *t, uint32_t parent, uint64_t ip,
		       stack_new_fn fn, void *arg)
{
	stack_table_lock(t);
	uint32_t id = find_child(t, parent, ip);
	if (id != 0 || t->full) {
		stack_table_unlock(t);
		return id;
	}
	struct stack_node *p = node_of(t, parent);
	uint32_t k = atomic_load_explicit(&p->nkids, memory_order_relaxed);
	struct stack_tab *tab = atomic_load_explicit(&t->cur, memory_order_relaxed);
	if (k >= KIDS_MAX && (t->hashed + 1) * 2 > tab->mask + 1 && !grow(t)) {
		t->full = true;
		stack_table_unlock(t);
		return 0;
	}
	if (t->next_id == UINT32_MAX) {
		t->full = true;
		stack_table_unlock(t);
		return 0;
	}
	struct stack_node *node = node_new(t, t->next_id);
	if (!node) {
		t->full = true;
		stack_table_unlock(t);
		return 0;
	}
	node->ip = ip;
	node->parent = parent;
	if (k < KIDS_MAX) {
		if (!kid_add(t, p, k, (uint64_t)t->next_id << 32 | (uint32_t)ip)) {
			t->full = true;
			stack_table_unlock(t);
			return 0;
		}
	} else {
		tab = atomic_load_explicit(&t->cur, memory_order_relaxed);
		tab_place(tab, parent, ip, t->next_id);
		t->hashed++;
	}
	id = t->next_id++;
	atomic_store_explicit(&p->nkids, k + 1, memory_order_release);
	t->count++;
	stack_table_unlock(t);
	if (fn)
		fn(arg, id, parent, ip);
	return id;
}

uint32_t stack_table_lookup(struct stack_table *t, uint32_t parent, uint64_t ip)
{
	return find_child(t, parent, ip);
}

/* After this many misses in a row, the memo is skipped for MEMO_SKIP
 * stacks. */
#define MEMO_MISSES_MAX 64u
#define MEMO_SKIP 4096u

/* A rotate and xor per frame (no multiply on the dependency chain), mixed
 * once at the end. */
static uint64_t memo_hash(uint32_t parent, const uint64_t *ips, size_t n)
{
	uint64_t h = (uint64_t)parent << 8 ^ n;
	for (size_t i = 0; i < n; i++)
		h = (h << 7 | h >> 57) ^ ips[i];
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ h >> 31;
}

static bool memo_same(const struct stack_memo *m, const uint64_t *ips, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (m->ips[i] != ips[i])
			return false;
	return true;
}

uint32_t stack_table_intern(struct stack_table *t, struct stack_cache *cache,
			    const uint64_t *ips, size_t n, stack_new_fn fn, void *arg)
{
	if (n > STACK_DEPTH_MAX)
		n = STACK_DEPTH_MAX; /* keep the innermost frames */
	size_t k = 0;
	uint32_t parent = 0;
	if (cache) {
		while (k < n && k < cache->n && cache->ips[k] == ips[n - 1 - k])
			k++;
		if (k > 0)
			parent = cache->ids[k - 1];
	}
	/* A stack that differs from the last one in more than its innermost
	 * frame is looked for among the recent ones (a program alternating
	 * between call sites): lookups of its frames would read several
	 * nodes.  The memo's key is the node of the frames shared with the
	 * last stack and the rest of the frames.  Where stacks rarely repeat
	 * (a deep recursion) that is wasted work, so a long run of misses
	 * turns the memo off for a while. */
	struct stack_memo *memo = NULL;
	uint64_t h = 0;
	size_t rest = n - k; /* ips[0, rest): the frames inside parent */
	if (cache && rest >= 2 && rest <= STACK_MEMO_DEPTH) {
		if (cache->memo_skip > 0) {
			cache->memo_skip--;
		} else {
			h = memo_hash(parent, ips, rest);
			memo = &cache->memo[(h >> 40) & (STACK_MEMO_SLOTS - 1)];
			if (memo->id != 0 && memo->hash == h && memo->n == rest &&
			    memo->parent == parent && memo_same(memo, ips, rest)) {
				cache->memo_misses = 0;
				return memo->id;
			}
			if (++cache->memo_misses > MEMO_MISSES_MAX) {
				cache->memo_misses = 0;
				cache->memo_skip = MEMO_SKIP;
			}
		}
	}
	uint32_t memo_parent = parent;
	/* parent is the node of the k outermost frames */
	for (; k < n; k++) {
		uint64_t ip = ips[n - 1 - k];
		uint32_t id = find_child(t, parent, ip);
		if (id == 0)
			id = insert(t, parent, ip, fn, arg);
		if (id == 0)
			break;
		if (cache) {
			cache->ips[k] = ip;
			cache->ids[k] = id;
		}
		parent = id;
	}
	if (cache)
		cache->n = (uint32_t)k;
	if (memo && k == n) {
		memo->hash = h;
		memo->n = (uint32_t)rest;
		memo->parent = memo_parent;
		memo->id = parent;
		memcpy(memo->ips, ips, rest * sizeof(*ips));
	}
	return parent;
}

/* In id order, so parents come before their children. */
void stack_table_foreach(struct stack_table *t, stack_new_fn fn, void *arg)
{
	stack_table_lock(t);
	for (uint32_t id = 1; id < t->next_id; id++) {
		const struct stack_node *n = node_of(t, id);
		if (n)
			fn(arg, id, n->parent, n->ip);
	}
	stack_table_unlock(t);
}

void stack_table_foreach_range(struct stack_table *t,
			       void (*fn)(uintptr_t lo, uintptr_t hi, void *arg),
			       void *arg)
{
	for (unsigned i = 0; i < t->n_tables; i++) {
		uintptr_t lo = (uintptr_t)t->tables[i];
		fn(lo, lo + t->table_bytes[i], arg);
	}
	for (struct stack_ext *slab = t->ext_slabs; slab;
	     slab = atomic_load_explicit(&slab->next, memory_order_relaxed))
		fn((uintptr_t)slab, (uintptr_t)slab + EXT_SLAB_BYTES, arg);
	if (!t->chunks)
		return;
	fn((uintptr_t)t->chunks, (uintptr_t)(t->chunks + NODE_CHUNKS), arg);
	for (size_t i = 0; i < NODE_CHUNKS; i++) {
		struct stack_node *c = atomic_load_explicit(&t->chunks[i], memory_order_acquire);
		if (c)
			fn((uintptr_t)c, (uintptr_t)(c + STACK_NODE_CHUNK), arg);
	}
}

size_t stack_table_count(struct stack_table *t)
{
	stack_table_lock(t);
	size_t n = t->count;
	stack_table_unlock(t);
	return n;
}
