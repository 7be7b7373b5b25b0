/*
 * test-tracer-scan-util.h: helpers for the leak scan's tests.
 *
 * Tests name blocks by index: st.anchor[i] holds block i's address, and
 * the whole st structure (anchors, the sink's records) is excluded from the
 * roots through the options' foreach_excluded, so a test never keeps a
 * block address where the scan would see it.  The only roots a test makes
 * are st_roots[] (a separate, scanned global), block-to-block links, and
 * what threads hold on purpose.  st_scan() first wipes the stack below the
 * test's frame, where dead frames of the helpers (and of pool_malloc) may
 * still hold block addresses.
 */
#pragma once

#include <criterion/criterion.h>
#include <string.h>

#include "pool.h"
#include "scan.h"

#define ST_BLOCKS 4096
#define ST_EDGES 4096

struct st_record {
	uintptr_t addr, indirect_of;
	size_t size;
	int kind;
};

struct st_edge {
	uintptr_t from, to;
	size_t offset;
};

static struct {
	volatile uintptr_t anchor[ST_BLOCKS];
	struct st_record rec[ST_BLOCKS];
	size_t nrec;
	struct st_edge edge[ST_EDGES];
	size_t nedge;
	volatile int flag[64];
} st;

/* the test's deliberate roots */
static volatile uintptr_t st_roots[16];

static struct scan_summary st_summary;

static __attribute__((unused)) void st_exclude(scan_range_fn fn, void *arg)
{
	fn((uintptr_t)&st, (uintptr_t)(&st + 1), arg);
}

static __attribute__((unused)) void st_on_block(uintptr_t addr, size_t size, uint32_t stack_id, uint64_t seq,
			enum capture_leak_kind kind, uintptr_t indirect_of, void *arg)
{
	if (st.nrec < ST_BLOCKS)
		st.rec[st.nrec++] = (struct st_record){addr, indirect_of, size, (int)kind};
}

static __attribute__((unused)) void st_on_edge(uintptr_t from, size_t offset, uintptr_t to, void *arg)
{
	if (st.nedge < ST_EDGES)
		st.edge[st.nedge++] = (struct st_edge){from, to, offset};
}

static __attribute__((unused)) void st_reset(void)
{
	memset((void *)&st, 0, sizeof(st));
	memset((void *)st_roots, 0, sizeof(st_roots));
}

/* Allocates block i (zeroed) and keeps its address only in st.anchor[i]. */
__attribute__((noinline, unused)) static void st_alloc(int i, size_t size)
{
	void *p = pool_malloc(size);
	cr_assert(p != NULL);
	memset(p, 0, size);
	st.anchor[i] = (uintptr_t)p;
}

__attribute__((noinline, unused)) static void st_alloc_many(int n, size_t size)
{
	for (int i = 0; i < n; i++)
		st_alloc(i, size);
}

__attribute__((noinline, unused)) static void st_free(int i)
{
	pool_free((void *)st.anchor[i]);
	st.anchor[i] = 0;
}

/* block from + off holds a pointer to block to + to_off */
__attribute__((noinline, unused)) static void st_link(int from, size_t off, int to, size_t to_off)
{
	uintptr_t v = st.anchor[to] + to_off;
	memcpy((char *)st.anchor[from] + off, &v, sizeof(v));
}

__attribute__((noinline, unused)) static void st_set_word(int i, size_t off, uintptr_t v)
{
	memcpy((char *)st.anchor[i] + off, &v, sizeof(v));
}

__attribute__((noinline, unused)) static void st_root_set(int slot, int i, size_t off)
{
	st_roots[slot] = st.anchor[i] + off;
}

/* Zeroes the stack below the caller's frame. */
__attribute__((noinline, unused)) static void st_wipe_stack(void)
{
	volatile char pad[32768];
	memset((char *)pad, 0, sizeof(pad));
	__asm__ volatile("" : : "r"(pad) : "memory");
}

__attribute__((noinline, unused)) static void st_scan_opts(struct scan_options *o)
{
	st.nrec = 0;
	st.nedge = 0;
	o->foreach_excluded = st_exclude;
	struct scan_sink sink = {st_on_block, st_on_edge, NULL};
	int err = scan_run(o, &sink, &st_summary);
	cr_assert_eq(err, 0, "scan_run: %d", err);
}

__attribute__((noinline, unused)) static void st_scan_heur(unsigned heuristics)
{
	struct scan_options o;
	scan_options_init(&o);
	o.heuristics = heuristics;
	st_scan_opts(&o);
}

#define st_scan()                            \
	do {                                 \
		st_wipe_stack();             \
		st_scan_heur(SCAN_HEUR_ALL); \
	} while (0)

#define st_scan_with_heuristics(h)  \
	do {                        \
		st_wipe_stack();    \
		st_scan_heur(h);    \
	} while (0)

static __attribute__((unused)) const struct st_record *st_find(int i)
{
	for (size_t k = 0; k < st.nrec; k++)
		if (st.rec[k].addr == st.anchor[i])
			return &st.rec[k];
	return NULL;
}

/* Block i's kind, -1 when it was not reported. */
static __attribute__((unused)) int st_kind(int i)
{
	const struct st_record *r = st_find(i);
	return r ? r->kind : -1;
}

/* The index of the block block i is indirectly lost to, -1 for none. */
static __attribute__((unused)) int st_indirect_of(int i, int nblocks)
{
	const struct st_record *r = st_find(i);
	for (int k = 0; r && r->indirect_of && k < nblocks; k++)
		if (st.anchor[k] == r->indirect_of)
			return k;
	return -1;
}

static __attribute__((unused)) bool st_has_edge(int from, size_t offset, int to)
{
	for (size_t k = 0; k < st.nedge; k++)
		if (st.edge[k].from == st.anchor[from] && st.edge[k].offset == offset &&
		    st.edge[k].to == st.anchor[to])
			return true;
	return false;
}

static __attribute__((unused)) size_t st_count_kind(int kind)
{
	size_t n = 0;
	for (size_t k = 0; k < st.nrec; k++)
		n += st.rec[k].kind == kind;
	return n;
}
