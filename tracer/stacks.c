/*
 * stacks.c: the prefix tree of call-stack frames, in a lock-free-read hash.
 *
 * Main entry point: stack_table_intern().  The table maps (parent, ip) to a
 * node id in open-addressing slots (linear probing).  A slot is empty while
 * its id is 0; an inserter fills ip and parent first and publishes the id
 * last with a release store, and a slot never changes once published, so a
 * reader that sees a non-zero id (acquire) sees its key too.
 *
 * Growth: when the table would pass half full, the inserter (holding the
 * lock) copies every node into a table twice as large and publishes it.  The
 * old table stays mapped, because readers may still be probing it; a reader
 * that misses in an old table takes the lock and finds the node (or inserts
 * it) in the current one, which holds every node.  Invariant: the current
 * table holds all nodes, and every table is at most half full.
 */
#include "stacks.h"

#include <errno.h>
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

/* A node by id.  parent and ip are written before the id is published; a
 * hint is the id of a child looked up lately, only ever used after its
 * own parent and ip were compared. */
#define NODE_HINTS 4
struct stack_node {
	uint64_t ip;
	uint32_t parent;
	_Atomic uint32_t hint[NODE_HINTS];
};

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

/* The child (parent, ip) among parent's hints, else 0. */
static uint32_t child_hinted(struct stack_table *t, uint32_t parent, uint64_t ip)
{
	struct stack_node *p = node_of(t, parent);
	if (!p)
		return 0;
	for (int i = 0; i < NODE_HINTS; i++) {
		uint32_t c = atomic_load_explicit(&p->hint[i], memory_order_acquire);
		if (c == 0)
			continue;
		struct stack_node *n = node_of(t, c);
		if (n && n->parent == parent && n->ip == ip)
			return c;
	}
	return 0;
}

/* Remembers a child in an empty hint, else in the one its ip picks. */
static void child_remember(struct stack_table *t, uint32_t parent, uint64_t ip, uint32_t child)
{
	struct stack_node *p = node_of(t, parent);
	if (!p)
		return;
	unsigned at = (unsigned)((ip ^ ip >> 7) % NODE_HINTS);
	for (unsigned i = 0; i < NODE_HINTS; i++) {
		if (atomic_load_explicit(&p->hint[i], memory_order_relaxed) == 0) {
			at = i;
			break;
		}
	}
	atomic_store_explicit(&p->hint[at], child, memory_order_release);
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
	if (!node_new(t, 0)) { /* the root's node, for its hints */
		munmap(dir, NODE_CHUNKS * sizeof(*t->chunks));
		munmap(tab, bytes);
		return -ENOMEM;
	}
	atomic_store_explicit(&t->lock, 0, memory_order_relaxed);
	t->count = 0;
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

static uint32_t insert(struct stack_table *t, uint32_t parent, uint64_t ip,
		       stack_new_fn fn, void *arg)
{
	stack_table_lock(t);
	struct stack_tab *tab = atomic_load_explicit(&t->cur, memory_order_relaxed);
	uint32_t id = tab_find(tab, parent, ip);
	if (id != 0 || t->full) {
		stack_table_unlock(t);
		return id;
	}
	if ((t->count + 1) * 2 > tab->mask + 1 && !grow(t)) {
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
	id = t->next_id++;
	node->ip = ip;
	node->parent = parent;
	tab = atomic_load_explicit(&t->cur, memory_order_relaxed);
	tab_place(tab, parent, ip, id);
	t->count++;
	stack_table_unlock(t);
	if (fn)
		fn(arg, id, parent, ip);
	return id;
}

uint32_t stack_table_lookup(struct stack_table *t, uint32_t parent, uint64_t ip)
{
	return tab_find(atomic_load_explicit(&t->cur, memory_order_acquire), parent, ip);
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
	/* parent is the node of the k outermost frames */
	for (; k < n; k++) {
		uint64_t ip = ips[n - 1 - k];
		uint32_t id = child_hinted(t, parent, ip);
		if (id == 0) {
			id = stack_table_lookup(t, parent, ip);
			if (id == 0)
				id = insert(t, parent, ip, fn, arg);
			if (id == 0)
				break;
			child_remember(t, parent, ip, id);
		}
		if (cache) {
			cache->ips[k] = ip;
			cache->ids[k] = id;
		}
		parent = id;
	}
	if (cache)
		cache->n = (uint32_t)k;
	return parent;
}

void stack_table_foreach(struct stack_table *t, stack_new_fn fn, void *arg)
{
	stack_table_lock(t);
	struct stack_tab *tab = atomic_load_explicit(&t->cur, memory_order_relaxed);
	for (size_t i = 0; i <= tab->mask; i++) {
		const struct stack_slot *s = &tab->slots[i];
		uint32_t id = atomic_load_explicit(&s->id, memory_order_relaxed);
		if (id != 0)
			fn(arg, id, s->parent, s->ip);
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
