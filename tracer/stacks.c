/*
 * stacks.c: the prefix tree of call-stack frames: 32-byte nodes by id, each
 * holding its first children, extension blocks for the next ones, and a
 * lock-free-read hash for the rest.
 *
 * Main entry point: stack_table_intern().  A node (parent, ip) is found
 * among its parent's first KIDS_MAX children, stored in the parent node and
 * its extensions, else (parent with more children) in the hash:
 * open-addressing slots (linear probing) mapping (parent, ip) to the id.  A slot is empty
 * while its id is 0; an inserter fills ip and parent first and publishes the
 * id last with a release store, and a slot never changes once published, so
 * a reader that sees a non-zero id (acquire) sees its key too.  Kid entries
 * are published the same way, after the node they name is written.
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

/* A node by id, 32 bytes so that two share a cache line (the table of a
 * deep recursion holds millions): its ip, its parent and its first
 * NODE_KIDS children, each as an id (published last, with a release
 * store) and a tag, the low byte of its ip, so that a lookup loads only
 * the child it wants.  The next children go to a chain of up to EXT_MAX
 * extension blocks (a cache line each, by index, 16-bit tags), made when
 * their parent gets the child, so that a stack walked again reads memory
 * written one part after the other (a function that inlined its own
 * recursion has dozens of call sites).  Only later children go to the
 * hash, and kid[0] says so (KID_HASHED; ids stay below 2^31 for it).  A
 * kid entry or an ext link never changes once set but for that flag.
 * Ids grow as a stack is first walked, so a stack walked again reads
 * nodes mostly one after the other. */
#define NODE_KIDS 3
#define EXT_KIDS 10
#define EXT_MAX 4
#define KIDS_MAX (NODE_KIDS + EXT_MAX * EXT_KIDS)
#define KID_HASHED 0x80000000u
#define KID_ID 0x7fffffffu
#define ID_LIMIT KID_HASHED

struct stack_node {
	uint64_t ip;
	uint32_t parent;
	_Atomic uint32_t kid[NODE_KIDS]; /* kid[0] | KID_HASHED */
	uint8_t tag[NODE_KIDS];          /* the kids' ips, low byte */
	uint8_t unused;
	_Atomic uint32_t ext;            /* first extension, 0 if none */
};

struct stack_ext {
	_Atomic uint32_t kid[EXT_KIDS];
	uint16_t tag[EXT_KIDS]; /* the kids' ips, low half-word */
	_Atomic uint32_t next;
};

_Static_assert(sizeof(struct stack_node) == 32, "two nodes to a cache line");
_Static_assert(sizeof(struct stack_ext) == 64, "an extension is a cache line");

#define NODE_CHUNKS ((size_t)ID_LIMIT >> STACK_NODE_CHUNK_BITS)
/* extensions by index, in chunks of EXT_CHUNK; their directory follows the
 * nodes' in one mapping */
#define EXT_CHUNK_BITS 15u
#define EXT_CHUNK ((size_t)1 << EXT_CHUNK_BITS)
#define EXT_CHUNKS ((size_t)ID_LIMIT >> EXT_CHUNK_BITS)
#define DIR_BYTES ((NODE_CHUNKS + EXT_CHUNKS) * sizeof(void *))

static struct stack_node *chunk_of(struct stack_table *t, uint32_t id)
{
	return atomic_load_explicit(&t->chunks[id >> STACK_NODE_CHUNK_BITS],
				    memory_order_acquire);
}

/* The node of an id met in a kid entry or the hash (its chunk is mapped). */
static struct stack_node *node_at(struct stack_table *t, uint32_t id)
{
	return &chunk_of(t, id)[id & (STACK_NODE_CHUNK - 1)];
}

static struct stack_ext *ext_at(struct stack_table *t, uint32_t x)
{
	struct stack_ext *c = atomic_load_explicit(&t->ext_slabs[x >> EXT_CHUNK_BITS],
						   memory_order_acquire);
	return &c[x & (EXT_CHUNK - 1)];
}

static void *map_zeroed(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

#define HUGE_PAGE ((size_t)2 << 20)

/* A chunk of len bytes (a multiple of HUGE_PAGE), aligned to a huge page
 * and asking for huge pages: a large table is read at random, and every
 * read would also miss the TLB.  Only for a table past its first chunks,
 * so that a small one does not cost a program a huge page. */
static void *map_chunk(size_t len, bool huge)
{
	if (!huge)
		return map_zeroed(len);
	uint8_t *p = map_zeroed(len + HUGE_PAGE);
	if (!p)
		return NULL;
	uintptr_t lo = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
	if (lo > (uintptr_t)p)
		munmap(p, lo - (uintptr_t)p);
	uint8_t *end = p + len + HUGE_PAGE;
	if ((uintptr_t)end > lo + len)
		munmap((void *)(lo + len), (uintptr_t)end - (lo + len));
	madvise((void *)lo, len, MADV_HUGEPAGE);
	return (void *)lo;
}

/* Lock held: the node of a new id, its chunk mapped if need be. */
static struct stack_node *node_new(struct stack_table *t, uint32_t id)
{
	size_t ci = id >> STACK_NODE_CHUNK_BITS;
	struct stack_node *c = atomic_load_explicit(&t->chunks[ci], memory_order_relaxed);
	if (!c) {
		c = map_chunk(STACK_NODE_CHUNK * sizeof(*c), ci >= 2);
		if (!c)
			return NULL;
		atomic_store_explicit(&t->chunks[ci], c, memory_order_release);
	}
	return &c[id & (STACK_NODE_CHUNK - 1)];
}

/* Lock held: the index of a new zeroed extension block, 0 when out of
 * memory (index 0 is never used). */
static uint32_t ext_new(struct stack_table *t)
{
	uint32_t x = t->ext_next;
	if (x == ID_LIMIT)
		return 0;
	size_t ci = x >> EXT_CHUNK_BITS;
	if (!atomic_load_explicit(&t->ext_slabs[ci], memory_order_relaxed)) {
		struct stack_ext *c = map_chunk(EXT_CHUNK * sizeof(*c), ci >= 2);
		if (!c)
			return 0;
		atomic_store_explicit(&t->ext_slabs[ci], c, memory_order_release);
	}
	t->ext_next++;
	return x;
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
	void *dir = map_zeroed(DIR_BYTES);
	if (!dir) {
		munmap(tab, bytes);
		return -ENOMEM;
	}
	t->chunks = dir;
	t->ext_slabs = (_Atomic(struct stack_ext *) *)(t->chunks + NODE_CHUNKS);
	t->ext_next = 1;
	if (!node_new(t, 0)) { /* the root's node, for its kids */
		munmap(dir, DIR_BYTES);
		munmap(tab, bytes);
		return -ENOMEM;
	}
	atomic_store_explicit(&t->lock, 0, memory_order_relaxed);
	t->count = 0;
	t->hashed = 0;
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
		for (size_t i = 0; i < EXT_CHUNKS; i++) {
			struct stack_ext *c = atomic_load_explicit(&t->ext_slabs[i],
								   memory_order_relaxed);
			if (c)
				munmap(c, EXT_CHUNK * sizeof(*c));
		}
		munmap(t->chunks, DIR_BYTES);
		t->chunks = NULL;
		t->ext_slabs = NULL;
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

/* The child among an extension's kid entries, 0 if none; *end when an
 * empty entry ends the kids. */
static uint32_t ext_find(struct stack_table *t, const struct stack_ext *x, uint64_t ip,
			 bool *end)
{
	uint16_t tag = (uint16_t)ip;
	for (int i = 0; i < EXT_KIDS; i++) {
		uint32_t c = atomic_load_explicit(&x->kid[i], memory_order_acquire);
		if (c == 0) {
			*end = true; /* kids fill in order: no more children */
			return 0;
		}
		if (x->tag[i] == tag && node_at(t, c)->ip == ip)
			return c;
	}
	return 0;
}

/* The child (parent, ip), else 0: parent's kids, its extensions, then the
 * hash when parent has more children than it keeps.  Lock-free; a miss is
 * only final under the lock (a child being added meanwhile may be
 * missed). */
static inline uint32_t find_child(struct stack_table *t, uint32_t parent, uint64_t ip)
{
	struct stack_node *pc = chunk_of(t, parent);
	if (!pc)
		return 0;
	struct stack_node *p = &pc[parent & (STACK_NODE_CHUNK - 1)];
	uint32_t k0 = atomic_load_explicit(&p->kid[0], memory_order_acquire);
	/* a parent with extensions has many children: its first extension
	 * is fetched while its own kids are looked at */
	uint32_t x = atomic_load_explicit(&p->ext, memory_order_acquire);
	if (x != 0)
		__builtin_prefetch(ext_at(t, x));
	uint8_t tag = (uint8_t)ip;
	for (int i = 0; i < NODE_KIDS; i++) {
		uint32_t c = i == 0 ? k0 & KID_ID
				    : atomic_load_explicit(&p->kid[i], memory_order_acquire);
		if (c == 0)
			return 0; /* kids fill in order: no more children */
		if (p->tag[i] == tag && node_at(t, c)->ip == ip)
			return c;
	}
	bool end = false;
	while (x != 0) {
		const struct stack_ext *e = ext_at(t, x);
		uint32_t c = ext_find(t, e, ip, &end);
		if (c || end)
			return c;
		x = atomic_load_explicit(&e->next, memory_order_acquire);
	}
	if (!(k0 & KID_HASHED))
		return 0;
	return tab_find(atomic_load_explicit(&t->cur, memory_order_acquire), parent, ip);
}

/* Lock held: publishes child id (of ip) as p's next kid, in p itself or
 * its extensions.  1 when done, 0 when p keeps no more kids (the child
 * goes to the hash), -1 when out of memory. */
static int kid_add(struct stack_table *t, struct stack_node *p, uint32_t id, uint64_t ip)
{
	for (int i = 0; i < NODE_KIDS; i++) {
		if (atomic_load_explicit(&p->kid[i], memory_order_relaxed) == 0) {
			p->tag[i] = (uint8_t)ip;
			atomic_store_explicit(&p->kid[i], id, memory_order_release);
			return 1;
		}
	}
	_Atomic uint32_t *link = &p->ext;
	for (int b = 0; b < EXT_MAX; b++) {
		uint32_t x = atomic_load_explicit(link, memory_order_relaxed);
		if (x == 0) {
			x = ext_new(t);
			if (x == 0)
				return -1;
			struct stack_ext *e = ext_at(t, x);
			e->tag[0] = (uint16_t)ip;
			atomic_store_explicit(&e->kid[0], id, memory_order_relaxed);
			atomic_store_explicit(link, x, memory_order_release);
			return 1;
		}
		struct stack_ext *e = ext_at(t, x);
		for (int i = 0; i < EXT_KIDS; i++) {
			if (atomic_load_explicit(&e->kid[i], memory_order_relaxed) == 0) {
				e->tag[i] = (uint16_t)ip;
				atomic_store_explicit(&e->kid[i], id, memory_order_release);
				return 1;
			}
		}
		link = &e->next;
	}
	return 0;
}

static uint32_t insert(struct stack_table *t, uint32_t parent, uint64_t ip,
		       stack_new_fn fn, void *arg)
{
	stack_table_lock(t);
	uint32_t id = find_child(t, parent, ip);
	if (id != 0 || t->full || t->next_id == ID_LIMIT) {
		t->full = t->full || id == 0;
		stack_table_unlock(t);
		return id;
	}
	/* the hash may have to grow first: room for one more, now */
	struct stack_tab *tab = atomic_load_explicit(&t->cur, memory_order_relaxed);
	if ((t->hashed + 1) * 2 > tab->mask + 1 && !grow(t)) {
		t->full = true;
		stack_table_unlock(t);
		return 0;
	}
	id = t->next_id;
	struct stack_node *node = node_new(t, id);
	if (!node) {
		t->full = true;
		stack_table_unlock(t);
		return 0;
	}
	node->ip = ip;
	node->parent = parent;
	struct stack_node *p = node_at(t, parent);
	int r = kid_add(t, p, id, ip);
	if (r < 0) {
		t->full = true;
		stack_table_unlock(t);
		return 0;
	}
	if (r == 0) {
		tab = atomic_load_explicit(&t->cur, memory_order_relaxed);
		tab_place(tab, parent, ip, id);
		t->hashed++;
		uint32_t k0 = atomic_load_explicit(&p->kid[0], memory_order_relaxed);
		if (!(k0 & KID_HASHED))
			atomic_store_explicit(&p->kid[0], k0 | KID_HASHED, memory_order_release);
	}
	t->next_id++;
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
	return stack_table_intern_hinted(t, cache, ips, n, NULL, fn, arg);
}

uint32_t stack_table_intern_hinted(struct stack_table *t, struct stack_cache *cache,
				   const uint64_t *ips, size_t n, const struct stack_hint *hint,
				   stack_new_fn fn, void *arg)
{
	bool cut = n > STACK_DEPTH_MAX;
	if (cut)
		n = STACK_DEPTH_MAX; /* keep the innermost frames */
	size_t k = 0;
	uint32_t parent = 0;
	if (cache) {
		/* the frames the caller knows unchanged since the cache's
		 * stack, then compared (a deep stack costs a compare a frame
		 * otherwise) */
		uint64_t token = 0;
		if (hint && !cut) {
			if (hint->prev != 0 && hint->prev == cache->token)
				k = hint->same < n ? hint->same : n;
			token = hint->token;
		}
		if (k > cache->n)
			k = cache->n;
		if (k > 0 && cache->ips[k - 1] != ips[n - k])
			k = 0; /* cannot be: trust nothing */
		cache->token = token;
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
				/* the cache keeps the stack before: not this
				 * one, which the next hint speaks of */
				cache->token = 0;
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
		const struct stack_node *c = chunk_of(t, id);
		if (c) {
			const struct stack_node *n = &c[id & (STACK_NODE_CHUNK - 1)];
			fn(arg, id, n->parent, n->ip);
		}
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
	fn((uintptr_t)t->chunks, (uintptr_t)t->chunks + DIR_BYTES, arg);
	for (size_t i = 0; i < NODE_CHUNKS; i++) {
		struct stack_node *c = atomic_load_explicit(&t->chunks[i], memory_order_acquire);
		if (c)
			fn((uintptr_t)c, (uintptr_t)(c + STACK_NODE_CHUNK), arg);
	}
	for (size_t i = 0; i < EXT_CHUNKS; i++) {
		struct stack_ext *c = atomic_load_explicit(&t->ext_slabs[i], memory_order_acquire);
		if (c)
			fn((uintptr_t)c, (uintptr_t)(c + EXT_CHUNK), arg);
	}
}

size_t stack_table_count(struct stack_table *t)
{
	stack_table_lock(t);
	size_t n = t->count;
	stack_table_unlock(t);
	return n;
}
