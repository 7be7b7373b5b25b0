/*
 * replay.h: the live blocks of a replay of the events, by address (a FREE
 * frees the oldest live block at its address): the analysis's pass
 * (analysis.c) and the HTML page's curve (html-data.c) both replay the
 * events against it.  Static functions: each event's step inlines into
 * the pass that makes it, as when this was analysis.c's own.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "reports-private.h"
#include "reports.h"

/* each file that includes this uses what it needs of it */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

#define NO_SLOT UINT32_MAX

struct block {
	/* what a probe of the replay's table reads, side by side: they share
	 * a cache line far more often than the two ends of the block do */
	uint64_t addr;
	uint8_t used;  /* a slot of the replay's table in use */
	uint8_t seen;  /* classify: already matched with a scan block */
	uint16_t thread;
	uint32_t site;
	uint64_t size;
	uint64_t index; /* of its ALLOC among the events */
	uint32_t next; /* a newer live block at the same address, or NO_SLOT */
};

/* The live blocks of a replay, kept so that neighbouring addresses use
 * neighbouring memory: the program allocates and frees blocks in runs of
 * neighbouring addresses, and a table hashed on the whole address would
 * make every event a cache miss.  An address is split into a region key
 * (the address without bits 4..11: its 4 KiB page and its offset within a
 * 16-byte granule) and a granule g (bits 4..11), so each (region, g) is
 * one address whatever its alignment.  A directory, open addressing on
 * the hashed region key, gives each region a chunk of 2^k slots (k <= 8)
 * in one pool; in a chunk of 256 an address's home slot is g itself, so
 * a run of neighbours is a run of slots and no two addresses share one,
 * in a smaller chunk g scrambled (linear probing, backward-shift deletion,
 * at most half full).  The slots hold the blocks themselves: an event
 * costs a probe of its region's directory entry, usually the one its
 * thread's event of the same kind found before (kept), and one of its
 * chunk, usually near the last.  Hostile addresses (multiples of 2^32,
 * one block per page, every byte of a page) are regions of their own or
 * keys of their own: nothing piles up, no probe passes 256 slots.
 * A chunk doubles as its region fills and goes back to a free list of
 * its size when the region empties; when the pool must grow while it is
 * more than 8 times the live addresses (free lists of the wrong size, or
 * chunks sized for blocks since freed), it is compacted instead, so
 * memory stays proportional to the live blocks whatever the addresses.
 * A slot holds the oldest live block at its address; newer ones there (a
 * realloc in place) wait in dups[], chained through next, their free
 * entries reused through a free list. */
#define RP_GRANULES 256 /* granules in a region: 4 KiB of 16 bytes */
#define RP_CLASSES 9    /* chunk sizes: 1 to RP_GRANULES slots */

struct rp_region {
	uint64_t key;   /* the addresses' bits but 4..11 */
	uint32_t base;  /* its chunk: pool slots [base, base + 2^lgcap) */
	uint16_t count; /* slots in use in its chunk */
	uint8_t lgcap;
	uint8_t used;   /* a directory slot in use */
};

struct replay {
	struct block *slots; /* the pool of chunks: used 0 marks an empty slot */
	size_t n_slots;      /* handed out to chunks, at the start of slots */
	size_t cap_slots;
	uint32_t free_chunk[RP_CLASSES]; /* free chunks by size: first + 1, 0 if none */
	struct rp_region *regions;       /* the directory */
	size_t rmask;    /* directory slots - 1, or 0 before the first region */
	unsigned rshift; /* 64 - log2(directory slots) */
	size_t n_regions;
	size_t hot[2][8]; /* directory slots to try first, by event kind and thread */
	size_t n_used;   /* slots in use: addresses live */
	size_t n_live;
	struct block *dups;
	size_t n_dups, cap_dups;
	uint32_t *free_dups;
	size_t n_free, cap_free;
	uint64_t live_bytes;
};

static void replay_finish(struct replay *rp)
{
	free(rp->slots);
	free(rp->regions);
	free(rp->dups);
	free(rp->free_dups);
}

static uint64_t rp_key(uint64_t addr)
{
	return addr & ~(uint64_t)((RP_GRANULES - 1) << 4);
}

/* An address's home slot in a chunk of 2^lgcap slots: its granule in a
 * full-size chunk, so that neighbours are neighbours; in a smaller one
 * the granule scrambled (times an odd number mod 256, top bits), as the
 * blocks of a size class lie at a stride that g mod 2^k would pile up. */
static size_t rp_home(uint64_t addr, unsigned lgcap)
{
	size_t g = (size_t)(addr >> 4) & (RP_GRANULES - 1);
	return lgcap == 8 ? g : ((g * 0x9d) & (RP_GRANULES - 1)) >> (8 - lgcap);
}

/* The addresses a chunk of 2^lgcap slots takes before it doubles. */
static size_t rp_max_load(unsigned lgcap)
{
	size_t cap = (size_t)1 << lgcap;
	return cap < 4 ? cap - cap / 2 : cap == RP_GRANULES ? cap : cap / 2;
}

static size_t rp_region_home(const struct replay *rp, uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ull) >> rp->rshift);
}

/* The directory slot of a region, or SIZE_MAX. */
static size_t rp_region_find(const struct replay *rp, uint64_t key)
{
	if (!rp->regions)
		return SIZE_MAX;
	for (size_t i = rp_region_home(rp, key); rp->regions[i].used; i = (i + 1) & rp->rmask)
		if (rp->regions[i].key == key)
			return i;
	return SIZE_MAX;
}

/* The pool slot of addr in region r's chunk, or SIZE_MAX; then *hole is
 * the empty slot the probe ended at, where addr would go (SIZE_MAX if
 * none), so that an ALLOC does not probe its chunk twice. */
static size_t rp_chunk_find(const struct replay *rp, const struct rp_region *r, uint64_t addr,
			    size_t *hole)
{
	size_t m = ((size_t)1 << r->lgcap) - 1, i = rp_home(addr, r->lgcap);
	*hole = SIZE_MAX;
	if (m + 1 == RP_GRANULES) {
		/* the address's own slot: a probe on would walk the region's
		 * run of neighbours for nothing */
		const struct block *b = &rp->slots[r->base + i];
		if (!b->used)
			*hole = r->base + i;
		return b->used && b->addr == addr ? r->base + i : SIZE_MAX;
	}
	for (size_t n = 0; n <= m; n++, i = (i + 1) & m) {
		const struct block *b = &rp->slots[r->base + i];
		if (!b->used) {
			*hole = r->base + i;
			break;
		}
		if (b->addr == addr)
			return r->base + i;
	}
	return SIZE_MAX;
}

/* The slot of addr's oldest live block, or SIZE_MAX. */
static size_t rp_find(const struct replay *rp, uint64_t addr)
{
	size_t d = rp_region_find(rp, rp_key(addr)), hole;
	return d == SIZE_MAX ? SIZE_MAX : rp_chunk_find(rp, &rp->regions[d], addr, &hole);
}

/* The same for an event, noting the region's directory slot in *d
 * (SIZE_MAX if none) and rp_chunk_find()'s *hole.  The region of the
 * thread's event of the same kind before is tried first: a thread
 * allocates in a run of neighbours, and frees in a run too, often blocks
 * of another thread. */
static inline size_t rp_lookup(struct replay *rp, const struct reports_event *ev, size_t *d,
				size_t *hole)
{
	uint64_t key = rp_key(ev->addr);
	*hole = SIZE_MAX;
	size_t *hot = &rp->hot[ev->kind == REPORTS_EVENT_FREE][ev->thread & 7];
	if (rp->regions && rp->regions[*hot].used && rp->regions[*hot].key == key)
		*d = *hot;
	else if ((*d = rp_region_find(rp, key)) == SIZE_MAX)
		return SIZE_MAX;
	else
		*hot = *d;
	return rp_chunk_find(rp, &rp->regions[*d], ev->addr, hole);
}

/* Puts a block in pool slot p, empty, of region r's chunk. */
static void rp_fill(struct replay *rp, struct rp_region *r, size_t p, const struct block *b)
{
	rp->slots[p] = *b;
	rp->slots[p].used = 1;
	r->count++;
}

/* Puts a block in region r's chunk, which has room. */
static void rp_place(struct replay *rp, struct rp_region *r, const struct block *b)
{
	size_t m = ((size_t)1 << r->lgcap) - 1, i = rp_home(b->addr, r->lgcap);
	while (rp->slots[r->base + i].used)
		i = (i + 1) & m;
	rp_fill(rp, r, r->base + i, b);
}

static void rp_chunk_free(struct replay *rp, uint32_t base, unsigned lgcap)
{
	rp->slots[base].next = rp->free_chunk[lgcap];
	rp->free_chunk[lgcap] = base + 1;
}

static int rp_compact(struct replay *rp);

/* A chunk of 2^lgcap empty slots: from the free list of its size, else
 * from the end of the pool, which grows, or is compacted first when it
 * is mostly waste.  Compaction moves every chunk (their regions follow). */
static int rp_chunk_alloc(struct replay *rp, unsigned lgcap, uint32_t *base)
{
	size_t cap = (size_t)1 << lgcap;
	if (rp->free_chunk[lgcap]) {
		*base = rp->free_chunk[lgcap] - 1;
		rp->free_chunk[lgcap] = rp->slots[*base].next;
		return 0;
	}
	if (rp->n_slots + cap > rp->cap_slots) {
		int res;
		if (rp->cap_slots >= 4096 && rp->cap_slots / 8 > rp->n_used &&
		    (res = rp_compact(rp)) < 0)
			return res;
	}
	if (rp->n_slots + cap > rp->cap_slots) {
		size_t n = rp->cap_slots ? rp->cap_slots : 1024;
		while (n < rp->n_slots + cap)
			n *= 2;
		if (n > UINT32_MAX || n > SIZE_MAX / sizeof(*rp->slots))
			return -ENOMEM;
		struct block *slots = realloc(rp->slots, n * sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		memset(slots + rp->cap_slots, 0, (n - rp->cap_slots) * sizeof(*slots));
		/* a big pool is still read at random across regions: huge
		 * pages spare TLB misses (where transparent huge pages are on
		 * madvise) */
		if (n * sizeof(*slots) >= (4u << 20)) {
			uintptr_t lo = ((uintptr_t)slots + 0x1fffff) & ~(uintptr_t)0x1fffff;
			uintptr_t hi = ((uintptr_t)(slots + n)) & ~(uintptr_t)0x1fffff;
			if (hi > lo)
				madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
		}
		rp->slots = slots;
		rp->cap_slots = n;
	}
	*base = (uint32_t)rp->n_slots;
	rp->n_slots += cap;
	return 0;
}

/* Moves region r's blocks into a new chunk of 2^lgcap slots. */
static int rp_rechunk(struct replay *rp, struct rp_region *r, unsigned lgcap)
{
	uint32_t base;
	int res = rp_chunk_alloc(rp, lgcap, &base);
	if (res < 0)
		return res;
	uint32_t old = r->base; /* read after rp_chunk_alloc: compaction moves it */
	unsigned old_lg = r->lgcap;
	r->base = base;
	r->lgcap = (uint8_t)lgcap;
	r->count = 0;
	for (size_t i = 0; i < ((size_t)1 << old_lg); i++) {
		if (!rp->slots[old + i].used)
			continue;
		rp_place(rp, r, &rp->slots[old + i]);
		rp->slots[old + i].used = 0;
	}
	rp_chunk_free(rp, old, old_lg);
	return 0;
}

/* The pool again, each chunk the smallest that holds its region's blocks,
 * and no free chunk: the regions keep their directory slots. */
static int rp_compact(struct replay *rp)
{
	size_t need = 0;
	unsigned *lg = malloc((rp->rmask + 1) * sizeof(*lg));
	if (!lg)
		return -ENOMEM;
	for (size_t d = 0; d <= rp->rmask; d++) {
		if (!rp->regions[d].used)
			continue;
		lg[d] = 0;
		while (rp_max_load(lg[d]) < rp->regions[d].count)
			lg[d]++;
		need += (size_t)1 << lg[d];
	}
	size_t n = 1024;
	while (n < 2 * need)
		n *= 2;
	struct replay old = *rp;
	rp->slots = calloc(n, sizeof(*rp->slots));
	if (!rp->slots) {
		rp->slots = old.slots;
		free(lg);
		return -ENOMEM;
	}
	rp->cap_slots = n;
	rp->n_slots = 0;
	memset(rp->free_chunk, 0, sizeof(rp->free_chunk));
	for (size_t d = 0; d <= rp->rmask; d++) {
		struct rp_region *r = &rp->regions[d];
		if (!r->used)
			continue;
		uint32_t from = r->base;
		unsigned from_lg = r->lgcap;
		r->base = (uint32_t)rp->n_slots;
		r->lgcap = (uint8_t)lg[d];
		r->count = 0;
		rp->n_slots += (size_t)1 << lg[d];
		for (size_t i = 0; i < ((size_t)1 << from_lg); i++)
			if (old.slots[from + i].used)
				rp_place(rp, r, &old.slots[from + i]);
	}
	free(old.slots);
	free(lg);
	return 0;
}

static void rp_region_place(struct replay *rp, const struct rp_region *r)
{
	size_t i = rp_region_home(rp, r->key);
	while (rp->regions[i].used)
		i = (i + 1) & rp->rmask;
	rp->regions[i] = *r;
}

static int rp_grow(struct replay *rp)
{
	size_t n = rp->regions ? (rp->rmask + 1) * 2 : 256;
	struct replay old = *rp;
	rp->regions = calloc(n, sizeof(*rp->regions));
	if (!rp->regions) {
		rp->regions = old.regions;
		return -ENOMEM;
	}
	rp->rmask = n - 1;
	rp->rshift = 64u - (unsigned)__builtin_ctzll(n);
	memset(rp->hot, 0, sizeof(rp->hot));
	for (size_t i = 0; old.regions && i <= old.rmask; i++)
		if (old.regions[i].used)
			rp_region_place(rp, &old.regions[i]);
	free(old.regions);
	return 0;
}

/* Adds a block at an address with no live block: to its region, which
 * gets a chunk, or a bigger one, if it needs it; else to hole, the empty
 * slot its lookup ended at, when there is one. */
static int rp_add(struct replay *rp, size_t d, size_t hole, const struct block *b)
{
	int res;
	if (d == SIZE_MAX) {
		if ((!rp->regions || (rp->n_regions + 1) * 2 > rp->rmask + 1) &&
		    (res = rp_grow(rp)) < 0)
			return res;
		struct rp_region r = { .key = rp_key(b->addr), .used = 1 };
		if ((res = rp_chunk_alloc(rp, 0, &r.base)) < 0)
			return res;
		rp_region_place(rp, &r);
		rp->n_regions++;
		d = rp_region_find(rp, r.key);
		hole = SIZE_MAX;
	} else if (rp->regions[d].count + 1u > rp_max_load(rp->regions[d].lgcap)) {
		if ((res = rp_rechunk(rp, &rp->regions[d], rp->regions[d].lgcap + 1u)) < 0)
			return res;
		hole = SIZE_MAX;
	}
	if (hole != SIZE_MAX)
		rp_fill(rp, &rp->regions[d], hole, b);
	else
		rp_place(rp, &rp->regions[d], b);
	rp->n_used++;
	return 0;
}

/* Empties pool slot p of the region in directory slot d, shifting back
 * the rest of its run in the chunk: an entry moves into the hole when its
 * home is not between the hole and where it is.  A region left empty
 * gives back its chunk and leaves the directory, shifting back its run. */
static void rp_delete(struct replay *rp, size_t d, size_t p)
{
	struct rp_region *r = &rp->regions[d];
	struct block *c = &rp->slots[r->base];
	size_t m = ((size_t)1 << r->lgcap) - 1, i = p - r->base;
	c[i].used = 0;
	rp->n_used--;
	/* a full-size chunk gives every address its own slot: nothing to
	 * shift, and a dense region's run would be all of it */
	for (size_t j = (i + 1) & m; m + 1 < RP_GRANULES && c[j].used; j = (j + 1) & m) {
		if (reports_probe_stays(i, rp_home(c[j].addr, r->lgcap), j))
			continue;
		c[i] = c[j];
		c[j].used = 0;
		i = j;
	}
	if (--r->count > 0)
		return;
	rp_chunk_free(rp, r->base, r->lgcap);
	r->used = 0;
	rp->n_regions--;
	i = d;
	for (size_t j = (i + 1) & rp->rmask; rp->regions[j].used; j = (j + 1) & rp->rmask) {
		if (reports_probe_stays(i, rp_region_home(rp, rp->regions[j].key), j))
			continue;
		rp->regions[i] = rp->regions[j];
		rp->regions[j].used = 0;
		i = j;
	}
}

static int replay_remove(struct replay *rp, const struct reports_event *ev, struct block *out)
{
	size_t d, hole, i = rp_lookup(rp, ev, &d, &hole);
	if (i == SIZE_MAX)
		return 0;
	*out = rp->slots[i];
	if (out->next != NO_SLOT) {
		/* the next newer block at the address takes the slot */
		uint32_t n = out->next;
		rp->slots[i] = rp->dups[n];
		rp->slots[i].used = 1;
		if (reports_vec_push(&rp->free_dups, &rp->n_free, &rp->cap_free, &n, sizeof(n)) < 0)
			return -ENOMEM;
	} else {
		rp_delete(rp, d, i);
	}
	rp->n_live--;
	rp->live_bytes -= out->size;
	return 1;
}

/* Applies one event; for a FREE, returns 1 with the freed block in *freed,
 * or 0 when no block was live there. */
static int replay_apply(struct replay *rp, const struct reports_event *ev, uint64_t index,
			uint32_t site, struct block *freed)
{
	if (ev->kind == REPORTS_EVENT_FREE)
		return replay_remove(rp, ev, freed);
	struct block b = { .addr = ev->addr, .thread = ev->thread, .site = site,
			   .size = ev->size, .index = index, .next = NO_SLOT };
	size_t d, hole, i = rp_lookup(rp, ev, &d, &hole);
	if (i != SIZE_MAX) {
		/* a realloc in place: after the newest block at the address */
		uint32_t n;
		if (rp->n_free > 0) {
			n = rp->free_dups[--rp->n_free];
			rp->dups[n] = b;
		} else {
			if (rp->n_dups >= UINT32_MAX - 1)
				return -ENOMEM;
			n = (uint32_t)rp->n_dups;
			if (reports_vec_push(&rp->dups, &rp->n_dups, &rp->cap_dups, &b, sizeof(b)) < 0)
				return -ENOMEM;
		}
		uint32_t *link = &rp->slots[i].next;
		while (*link != NO_SLOT)
			link = &rp->dups[*link].next;
		*link = n;
	} else {
		int res = rp_add(rp, d, hole, &b);
		if (res < 0)
			return res;
	}
	rp->n_live++;
	rp->live_bytes += ev->size;
	return 0;
}

/* Calls fn for every live block of a replay. */
static void replay_foreach(struct replay *rp, void (*fn)(struct block *b, void *arg), void *arg)
{
	for (size_t i = 0; i < rp->n_slots; i++) {
		if (!rp->slots[i].used)
			continue;
		fn(&rp->slots[i], arg);
		for (uint32_t d = rp->slots[i].next; d != NO_SLOT; d = rp->dups[d].next)
			fn(&rp->dups[d], arg);
	}
}

#pragma GCC diagnostic pop
