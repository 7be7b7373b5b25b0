/*
 * test-reports-analysis.c: totals, the peak and its sites, leak records
 * with and without a scan, the site orders and the lineno view, on
 * captures built with tests/reports-encode.h.
 */
#include <criterion/criterion.h>

#include "reports-encode.h"
#include "reports.h"

static struct reports_capture *load(const struct enc *e)
{
	struct reports_capture *cap = NULL;
	struct reports_error err;
	int r = reports_capture_load_buffer(e->buf, e->len, &cap, &err);
	cr_assert_eq(r, 0, "%s", err.message);
	return cap;
}

static const struct reports_site *site_by_ip(const struct reports_capture *cap,
					     const struct reports_analysis *an, uint64_t ip)
{
	for (size_t i = 0; i < an->n_sites; i++) {
		uint64_t first;
		if (reports_stack_ips(cap, an->sites[i].stack, &first, 1) && first == ip)
			return &an->sites[i];
	}
	cr_assert_fail("no site for 0x%llx", (unsigned long long)ip);
	return NULL;
}

/*
 * Stack 1 (ip 0xa) allocates 100 then 200 bytes, stack 2 (ip 0xb) 1000
 * bytes which it frees; the peak (1300) is when all three are live; then
 * stack 3 (ip 0xc) makes 10 small blocks that stay.  A realloc moves the
 * 200-byte block to 300 bytes.
 */
static void build_run(struct enc *e)
{
	enc_init(e);
	enc_chunk_begin(e, 1);
	enc_stack(e, 1, 0, 0xa);
	enc_stack(e, 2, 0, 0xb);
	enc_stack(e, 3, 0, 0xc);
	enc_alloc(e, 1, 0x1000, 100, 1);
	enc_alloc(e, 2, 0x2000, 200, 1);
	enc_alloc(e, 3, 0x3000, 1000, 2);
	enc_sample(e, 1000, 2);
	enc_sample(e, 2000, 4);
	enc_free(e, 4, 0x3000);
	for (uint64_t i = 0; i < 10; i++)
		enc_alloc(e, 5 + i, 0x10000 + i * 16, 8, 3);
	enc_alloc(e, 15, 0x4000, 300, 1); /* realloc: new block, then free old */
	enc_free(e, 16, 0x2000);
	enc_free(e, 17, 0x9999); /* never allocated */
	enc_end(e, 5000, 18, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(e);
}

Test(reports_analysis, counts_totals_like_valgrind)
{
	struct enc e;
	build_run(&e);
	struct reports_capture *cap = load(&e);
	struct reports_analysis *an = reports_analysis_run(cap, NULL);
	cr_assert_not_null(an);
	const struct reports_totals *t = &an->totals;
	cr_assert_eq(t->allocations, 14);
	cr_assert_eq(t->frees, 3);
	cr_assert_eq(an->unmatched_frees, 1);
	cr_assert_eq(t->bytes_allocated, 100 + 200 + 1000 + 80 + 300);
	cr_assert_eq(t->peak_bytes, 1300);
	cr_assert_eq(t->peak_seq, 3);
	/* seq 3 is halfway between the samples at seq 2 (1 us) and 4 (2 us) */
	cr_assert_eq(t->peak_time_ns, 1500);
	cr_assert_eq(t->live_blocks_at_exit, 12);
	cr_assert_eq(t->live_bytes_at_exit, 100 + 300 + 80);
	cr_assert_eq(t->duration_ns, 5000);
	reports_analysis_destroy(an);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_analysis, sites_know_their_share_of_the_peak)
{
	struct enc e;
	build_run(&e);
	struct reports_capture *cap = load(&e);
	struct reports_analysis *an = reports_analysis_run(cap, NULL);
	cr_assert_eq(an->n_sites, 3);
	const struct reports_site *a = site_by_ip(cap, an, 0xa);
	const struct reports_site *b = site_by_ip(cap, an, 0xb);
	const struct reports_site *c = site_by_ip(cap, an, 0xc);
	cr_assert_eq(a->allocations, 3);
	cr_assert_eq(a->bytes, 600);
	cr_assert_eq(a->peak_bytes, 300);
	cr_assert_eq(a->leaked_bytes, 400);
	cr_assert_eq(b->peak_bytes, 1000);
	cr_assert_eq(b->leaked_bytes, 0);
	cr_assert_eq(c->allocations, 10);
	cr_assert_eq(c->peak_bytes, 0);
	cr_assert_eq(c->leaked_bytes, 80);
	/* the default order is by peak */
	cr_assert_eq(&an->sites[0], b);

	size_t order[3];
	reports_sites_sort(an, REPORTS_SITES_BY_BYTES, order);
	cr_assert_eq(&an->sites[order[0]], b);
	cr_assert_eq(&an->sites[order[1]], a);
	cr_assert_eq(&an->sites[order[2]], c);
	reports_sites_sort(an, REPORTS_SITES_BY_COUNT, order);
	cr_assert_eq(&an->sites[order[0]], c);
	cr_assert_eq(&an->sites[order[1]], a);
	reports_analysis_destroy(an);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_analysis, without_a_scan_every_live_block_is_reachable)
{
	struct enc e;
	build_run(&e);
	struct reports_capture *cap = load(&e);
	struct reports_analysis *an = reports_analysis_run(cap, NULL);
	cr_assert_not(an->scanned);
	cr_assert_eq(an->leaks[REPORTS_LEAK_REACHABLE].blocks, 12);
	cr_assert_eq(an->leaks[REPORTS_LEAK_REACHABLE].bytes, 480);
	cr_assert_eq(an->leaks[REPORTS_LEAK_DEFINITE].blocks, 0);
	/* one record per stack, by increasing size */
	cr_assert_eq(an->n_leak_records, 2);
	cr_assert_eq(an->leak_records[0].bytes, 80);
	cr_assert_eq(an->leak_records[0].blocks, 10);
	cr_assert_eq(an->leak_records[1].bytes, 400);
	cr_assert_eq(an->leak_records[1].kind, REPORTS_LEAK_REACHABLE);
	reports_analysis_destroy(an);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_analysis, scan_kinds_make_valgrind_loss_records)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_stack(&e, 1, 0, 0xa);
	enc_stack(&e, 2, 0, 0xb);
	enc_alloc(&e, 1, 0x1000, 16, 1); /* definitely lost, holds 0x2000 */
	enc_alloc(&e, 2, 0x2000, 32, 2); /* indirectly lost through 0x1000 */
	enc_alloc(&e, 3, 0x3000, 64, 2); /* reachable */
	enc_alloc(&e, 4, 0x4000, 8, 1);  /* freed after the scan */
	enc_scan(&e, 4, 1);
	enc_scanblock(&e, 0x1000, 16, 1, 1, CAPTURE_LEAK_DEFINITE, 0);
	enc_scanblock(&e, 0x2000, 32, 2, 2, CAPTURE_LEAK_INDIRECT, 0x1000);
	enc_scanblock(&e, 0x3000, 64, 2, 3, CAPTURE_LEAK_REACHABLE, 0);
	enc_scanblock(&e, 0x4000, 8, 1, 4, CAPTURE_LEAK_DEFINITE, 0);
	enc_free(&e, 5, 0x4000);
	enc_end(&e, 10, 6, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(&e);
	struct reports_capture *cap = load(&e);
	struct reports_analysis *an = reports_analysis_run(cap, NULL);
	cr_assert(an->scanned);
	cr_assert_eq(an->leaks[REPORTS_LEAK_DEFINITE].bytes, 16);
	cr_assert_eq(an->leaks[REPORTS_LEAK_DEFINITE].blocks, 1);
	cr_assert_eq(an->leaks[REPORTS_LEAK_INDIRECT].bytes, 32);
	cr_assert_eq(an->leaks[REPORTS_LEAK_REACHABLE].bytes, 64);
	cr_assert_eq(an->n_leak_records, 3);
	const struct reports_leak_record *def = NULL;
	for (size_t i = 0; i < an->n_leak_records; i++)
		if (an->leak_records[i].kind == REPORTS_LEAK_DEFINITE)
			def = &an->leak_records[i];
	cr_assert_not_null(def);
	cr_assert_eq(def->bytes, 16);
	cr_assert_eq(def->indirect_bytes, 32);
	cr_assert_eq(def->indirect_blocks, 1);
	/* sorted by direct + indirect bytes: the indirect record (32) first */
	cr_assert_eq(an->leak_records[0].kind, REPORTS_LEAK_INDIRECT);
	cr_assert_eq(an->leak_records[2].kind, REPORTS_LEAK_REACHABLE);
	reports_analysis_destroy(an);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_analysis, lineno_view_groups_by_first_frame)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	/* stacks 2 and 3 differ but start at the same address */
	enc_stack(&e, 1, 0, 0x900);
	enc_stack(&e, 5, 0, 0x800);
	enc_stack(&e, 2, 1, 0x100);
	enc_stack(&e, 3, 5, 0x100);
	enc_stack(&e, 4, 0, 0x400);
	enc_alloc(&e, 1, 0x1000, 10, 2);
	enc_alloc(&e, 2, 0x2000, 20, 3);
	enc_alloc(&e, 3, 0x3000, 5, 4);
	enc_chunk_end(&e);
	struct reports_capture *cap = load(&e);
	struct reports_analysis *an = reports_analysis_run(cap, NULL);
	cr_assert_eq(an->n_sites, 3);
	cr_assert_eq(an->n_lineno, 2);
	cr_assert_eq(an->lineno[0].address, 0x100);
	cr_assert_eq(an->lineno[0].bytes, 30);
	cr_assert_eq(an->lineno[0].allocations, 2);
	cr_assert_eq(an->lineno[1].address, 0x400);
	cr_assert(cap->incomplete);
	reports_analysis_destroy(an);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_analysis, empty_capture_gives_zeroes)
{
	struct enc e;
	enc_init(&e);
	struct reports_capture *cap = load(&e);
	struct reports_analysis *an = reports_analysis_run(cap, NULL);
	cr_assert_not_null(an);
	cr_assert_eq(an->totals.allocations, 0);
	cr_assert_eq(an->totals.peak_bytes, 0);
	cr_assert_eq(an->n_sites, 0);
	cr_assert_eq(an->n_leak_records, 0);
	reports_analysis_destroy(an);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_analysis, realloc_in_place_keeps_the_new_block)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_alloc(&e, 1, 0x1000, 16, 0);
	enc_alloc(&e, 2, 0x1000, 32, 0); /* realloc in place: new block first */
	enc_free(&e, 3, 0x1000);         /* then the old one */
	enc_end(&e, 10, 4, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(&e);
	struct reports_capture *cap = load(&e);
	struct reports_analysis *an = reports_analysis_run(cap, NULL);
	cr_assert_eq(an->totals.allocations, 2);
	cr_assert_eq(an->totals.frees, 1);
	cr_assert_eq(an->unmatched_frees, 0);
	cr_assert_eq(an->totals.peak_bytes, 48);
	cr_assert_eq(an->totals.live_blocks_at_exit, 1);
	cr_assert_eq(an->totals.live_bytes_at_exit, 32);
	reports_analysis_destroy(an);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_analysis, the_scan_at_exit_decides)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_alloc(&e, 1, 0x1000, 16, 0);
	enc_alloc(&e, 2, 0x2000, 16, 0);
	/* at exit: 0x1000 definitely lost (0x2000 reachable, not listed) */
	enc_tag(&e, CAPTURE_SCAN);
	enc_u(&e, 1);
	enc_u(&e, 0);
	enc_u(&e, CAPTURE_SCAN_AT_EXIT | CAPTURE_SCAN_PARTIAL);
	enc_scanblock(&e, 0x1000, 16, 0, 1, CAPTURE_LEAK_DEFINITE, 0);
	/* a later scan on demand says otherwise: not the one that counts */
	enc_scan(&e, 2, 0);
	enc_scanblock(&e, 0x1000, 16, 0, 1, CAPTURE_LEAK_POSSIBLE, 0);
	enc_scanblock(&e, 0x2000, 16, 0, 2, CAPTURE_LEAK_DEFINITE, 0);
	enc_end(&e, 10, 3, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(&e);
	struct reports_capture *cap = load(&e);
	struct reports_analysis *an = reports_analysis_run(cap, NULL);
	cr_assert(an->scanned);
	cr_assert(an->scan_partial);
	cr_assert_eq(an->leaks[REPORTS_LEAK_DEFINITE].blocks, 1);
	cr_assert_eq(an->leaks[REPORTS_LEAK_POSSIBLE].blocks, 0);
	cr_assert_eq(an->leaks[REPORTS_LEAK_REACHABLE].blocks, 1);
	reports_analysis_destroy(an);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

/* ---- hostile addresses: the live-block table ---------------------------- */

#define DENSE_PAGES 160ull
#define DENSE_BASE 0x7f0000000000ull /* pages of 256 16-byte blocks */
#define UNALIGNED_BASE 0x500000000000ull /* every byte of one page */
#define MB_BASE 0x600000000000ull        /* multiples of 1 MiB */
#define SPARSE_BASE 0x300000000000ull    /* one block per 16 MiB */
#define DUP_ADDR 0x1000ull               /* realloc in place, three deep */

struct hostile {
	struct enc e;
	uint64_t seq, allocations, frees, live_blocks, live_bytes, peak;
};

static void h_alloc(struct hostile *h, uint64_t addr, uint64_t size)
{
	enc_alloc(&h->e, ++h->seq, addr, size, 0);
	h->allocations++;
	h->live_blocks++;
	h->live_bytes += size;
	if (h->live_bytes > h->peak)
		h->peak = h->live_bytes;
}

static void h_free(struct hostile *h, uint64_t addr, uint64_t size)
{
	enc_free(&h->e, ++h->seq, addr);
	h->frees++;
	h->live_blocks--;
	h->live_bytes -= size;
}

/* Which blocks build_hostile() leaves live, and their size (0: none). */
static uint64_t hostile_live_size(uint64_t addr)
{
	if (addr >= DENSE_BASE && addr < DENSE_BASE + (DENSE_PAGES << 12))
		return (addr & 0xfff) == 7 * 16 ? 16 : 0;
	if (addr >= UNALIGNED_BASE && addr < UNALIGNED_BASE + 4096)
		return addr % 2 == 0 ? 1 : 0;
	if (addr >= MB_BASE && addr < MB_BASE + (2000ull << 20))
		return addr % (1u << 20) == 0 ? 24 : 0;
	if (addr >= SPARSE_BASE && addr <= SPARSE_BASE + (3000ull << 24))
		return addr % (1u << 24) == 0 && addr > SPARSE_BASE ? 32 : 0;
	if (addr % (1ull << 48) == 0 && addr >> 48 >= 1 && addr >> 48 <= 2000)
		return addr >> 48 > 1000 ? 8 : 0;
	if (addr % (1ull << 32) == 0 && addr >> 32 >= 1 && addr >> 32 <= 2000)
		return (addr >> 32) % 2 ? 8 : 0;
	return 0;
}

/*
 * Addresses no allocator of memprof's hands out but a capture may hold:
 * whole pages of neighbours, multiples of 2^32, of 2^48 and of 1 MiB (one
 * block per page or region), every byte of one page (unaligned, sixteen
 * blocks per granule), three blocks at one address; most freed in orders
 * that shift the tables back, then new blocks in new places, and a scan
 * at exit that names some survivors.
 */
static void build_hostile(struct hostile *h)
{
	memset(h, 0, sizeof(*h));
	enc_init(&h->e);
	enc_chunk_begin(&h->e, 1);
	/* pages filled, then freed from their end down but for one block:
	 * what a page needed is left to one block, until the table grows */
	for (uint64_t p = 0; p < DENSE_PAGES; p++) {
		for (uint64_t g = 0; g < 256; g++)
			h_alloc(h, DENSE_BASE + (p << 12) + g * 16, 16);
		for (uint64_t g = 256; g-- > 0;)
			if (g != 7)
				h_free(h, DENSE_BASE + (p << 12) + g * 16, 16);
	}
	for (uint64_t b = 0; b < 4096; b++)
		h_alloc(h, UNALIGNED_BASE + (b * 1031) % 4096, 1); /* scattered order */
	for (uint64_t k = 1; k <= 2000; k++) {
		h_alloc(h, k << 32, 8);
		h_alloc(h, MB_BASE + ((k - 1) << 20), 24);
		h_alloc(h, k << 48, 8);
	}
	h_alloc(h, DUP_ADDR, 1);
	h_alloc(h, DUP_ADDR, 2);
	h_alloc(h, DUP_ADDR, 3);
	for (uint64_t b = 1; b < 4096; b += 2)
		h_free(h, UNALIGNED_BASE + b, 1);
	for (uint64_t k = 2; k <= 2000; k += 2)
		h_free(h, k << 32, 8);
	for (uint64_t k = 1; k <= 1000; k++)
		h_free(h, k << 48, 8);
	h_free(h, DUP_ADDR, 1); /* the oldest of the three */
	/* never live, or no longer: unmatched */
	enc_free(&h->e, ++h->seq, DENSE_BASE + 8 * 16);
	enc_free(&h->e, ++h->seq, UNALIGNED_BASE + 1);
	enc_free(&h->e, ++h->seq, 2ull << 32);
	/* new blocks in new places, reusing what the frees left */
	for (uint64_t k = 1; k <= 3000; k++)
		h_alloc(h, SPARSE_BASE + (k << 24), 32);
	enc_tag(&h->e, CAPTURE_SCAN);
	enc_u(&h->e, 5);
	enc_u(&h->e, 0);
	enc_u(&h->e, CAPTURE_SCAN_AT_EXIT);
	enc_scanblock(&h->e, DENSE_BASE + (5 << 12) + 7 * 16, 16, 0, 1, CAPTURE_LEAK_DEFINITE, 0);
	enc_scanblock(&h->e, UNALIGNED_BASE + 4094, 1, 0, 1, CAPTURE_LEAK_DEFINITE, 0);
	enc_scanblock(&h->e, DUP_ADDR, 2, 0, 1, CAPTURE_LEAK_DEFINITE, 0);
	enc_scanblock(&h->e, 3ull << 32, 8, 0, 1, CAPTURE_LEAK_DEFINITE, 0);
	enc_scanblock(&h->e, SPARSE_BASE + (5 << 24), 32, 0, 1, CAPTURE_LEAK_DEFINITE, 0);
	enc_end(&h->e, 10, ++h->seq, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(&h->e);
}

Test(reports_analysis, hostile_addresses_find_their_blocks)
{
	struct hostile h;
	build_hostile(&h);
	struct reports_capture *cap = load(&h.e);
	struct reports_analysis *an = reports_analysis_run(cap, NULL);
	cr_assert_not_null(an);
	const struct reports_totals *t = &an->totals;
	cr_assert_eq(t->allocations, h.allocations);
	cr_assert_eq(t->frees, h.frees + 3);
	cr_assert_eq(an->unmatched_frees, 3);
	cr_assert_eq(t->peak_bytes, h.peak);
	cr_assert_eq(t->live_blocks_at_exit, h.live_blocks);
	cr_assert_eq(t->live_bytes_at_exit, h.live_bytes);
	cr_assert_eq(an->n_leak_blocks, h.live_blocks);
	size_t dups = 0;
	for (size_t i = 0; i < an->n_leak_blocks; i++) {
		const struct reports_leak_block *b = &an->leak_blocks[i];
		if (b->addr == DUP_ADDR) {
			dups++;
			cr_assert(b->size == 2 || b->size == 3);
			continue;
		}
		cr_assert_eq(b->size, hostile_live_size(b->addr), "block at 0x%llx",
			     (unsigned long long)b->addr);
	}
	cr_assert_eq(dups, 2);
	/* the scan's five blocks, the two at DUP_ADDR both */
	cr_assert_eq(an->leaks[REPORTS_LEAK_DEFINITE].blocks, 6);
	cr_assert_eq(an->leaks[REPORTS_LEAK_DEFINITE].bytes, 16 + 1 + 2 + 3 + 8 + 32);
	reports_analysis_destroy(an);
	reports_capture_destroy(cap);
	enc_finish(&h.e);
}
