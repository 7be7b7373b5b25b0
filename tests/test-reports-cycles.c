/*
 * test-reports-cycles.c: the cycle finder of reports/cycles.c: Tarjan's
 * strongly connected components on small graphs whose answer is known, on
 * graphs of a million nodes (a chain and a ring: a recursive version would
 * overflow the stack), and the cycles it finds among the lost blocks of a
 * capture (members, edges, self-loops, suppressed blocks left out).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "reports-encode.h"
#include "reports.h"
#include "suppress.h"

#define BIG 1000000u

static struct reports_capture *load(const struct enc *e)
{
	struct reports_capture *cap = NULL;
	struct reports_error err;
	int r = reports_capture_load_buffer(e->buf, e->len, &cap, &err);
	cr_assert_eq(r, 0, "%s", err.message);
	return cap;
}

Test(reports_scc, a_chain_has_one_component_per_node)
{
	uint32_t from[] = { 0, 1, 2 }, to[] = { 1, 2, 3 }, comp[4];
	cr_assert_eq(reports_scc(4, from, to, 3, comp), 4);
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++)
			cr_assert_neq(comp[i], comp[j]);
}

Test(reports_scc, two_rings_joined_by_a_bridge_are_two_components)
{
	/* 0 -> 1 -> 2 -> 0, 2 -> 3, 3 -> 4 -> 3, and 5 alone */
	uint32_t from[] = { 0, 1, 2, 2, 3, 4 }, to[] = { 1, 2, 0, 3, 4, 3 }, comp[6];
	cr_assert_eq(reports_scc(6, from, to, 6, comp), 3);
	cr_assert_eq(comp[0], comp[1]);
	cr_assert_eq(comp[1], comp[2]);
	cr_assert_eq(comp[3], comp[4]);
	cr_assert_neq(comp[0], comp[3]);
	cr_assert_neq(comp[5], comp[0]);
	cr_assert_neq(comp[5], comp[3]);
	/* a component completes after those it reaches */
	cr_assert_gt(comp[0], comp[3]);
}

Test(reports_scc, a_self_loop_stays_alone_and_bad_nodes_are_refused)
{
	uint32_t from[] = { 1 }, to[] = { 1 }, comp[2];
	cr_assert_eq(reports_scc(2, from, to, 1, comp), 2);
	cr_assert_neq(comp[0], comp[1]);
	uint32_t bad[] = { 7 };
	cr_assert_eq(reports_scc(2, from, bad, 1, comp), -EINVAL);
	cr_assert_eq(reports_scc(0, NULL, NULL, 0, NULL), 0);
}

Test(reports_scc, a_chain_of_a_million_nodes_needs_no_recursion)
{
	uint32_t *from = malloc(BIG * sizeof(*from)), *to = malloc(BIG * sizeof(*to));
	uint32_t *comp = malloc(BIG * sizeof(*comp));
	cr_assert(from && to && comp);
	for (uint32_t i = 0; i + 1 < BIG; i++) {
		from[i] = i;
		to[i] = i + 1;
	}
	cr_assert_eq(reports_scc(BIG, from, to, BIG - 1, comp), (long)BIG);
	/* closing the chain makes one ring */
	from[BIG - 1] = BIG - 1;
	to[BIG - 1] = 0;
	cr_assert_eq(reports_scc(BIG, from, to, BIG, comp), 1);
	for (uint32_t i = 0; i < BIG; i++)
		cr_assert_eq(comp[i], comp[0]);
	free(from);
	free(to);
	free(comp);
}

Test(reports_scc, a_million_pairs_are_half_a_million_components)
{
	uint32_t *from = malloc(BIG * sizeof(*from)), *to = malloc(BIG * sizeof(*to));
	uint32_t *comp = malloc(BIG * sizeof(*comp));
	cr_assert(from && to && comp);
	/* 2k <-> 2k+1, and 2k+1 -> 2k+2 chains the pairs together */
	size_t m = 0;
	for (uint32_t i = 0; i < BIG; i += 2) {
		from[m] = i, to[m++] = i + 1;
		from[m] = i + 1, to[m++] = i;
	}
	cr_assert_eq(reports_scc(BIG, from, to, m, comp), (long)BIG / 2);
	for (uint32_t i = 0; i < BIG; i += 2)
		cr_assert_eq(comp[i], comp[i + 1]);
	free(from);
	free(to);
	free(comp);
}

static void enc_scanedge(struct enc *e, uint64_t from, uint64_t offset, uint64_t to)
{
	enc_tag(e, CAPTURE_SCANEDGE);
	enc_u(e, from);
	enc_u(e, offset);
	enc_u(e, to);
}

/* 0x1000 <-> 0x2000 (a two-block cycle, the first definite, the other
 * indirect), 0x3000 -> 0x3000 (a self-loop), 0x4000 -> 0x1000 (lost, but in
 * no cycle), 0x5000 reachable. */
static struct reports_capture *cycles_capture(struct enc *e)
{
	enc_init(e);
	enc_chunk_begin(e, 1);
	/* files that do not exist: frames are module+offset */
	enc_module(e, 1, 0, 0x10, 0x20, "/nonexistent/liba.so");
	enc_module(e, 2, 0, 0x20, 0x30, "/nonexistent/libb.so");
	enc_stack(e, 1, 0, 0x1a);
	enc_stack(e, 2, 0, 0x2b);
	enc_alloc(e, 1, 0x1000, 16, 1);
	enc_alloc(e, 2, 0x2000, 32, 1);
	enc_alloc(e, 3, 0x3000, 64, 2);
	enc_alloc(e, 4, 0x4000, 8, 2);
	enc_alloc(e, 5, 0x5000, 4, 2);
	enc_scan(e, 5, 5);
	enc_scanblock(e, 0x1000, 16, 1, 1, CAPTURE_LEAK_DEFINITE, 0);
	enc_scanblock(e, 0x2000, 32, 1, 2, CAPTURE_LEAK_INDIRECT, 0x1000);
	enc_scanblock(e, 0x3000, 64, 2, 3, CAPTURE_LEAK_DEFINITE, 0);
	enc_scanblock(e, 0x4000, 8, 2, 4, CAPTURE_LEAK_DEFINITE, 0);
	enc_scanblock(e, 0x5000, 4, 2, 5, CAPTURE_LEAK_REACHABLE, 0);
	enc_scanedge(e, 0x1000, 8, 0x2000);
	enc_scanedge(e, 0x2000, 0, 0x1000);
	enc_scanedge(e, 0x3000, 24, 0x3000);
	enc_scanedge(e, 0x4000, 0, 0x1000);
	enc_scanedge(e, 0x2000, 16, 0x1000);
	enc_end(e, 10, 6, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(e);
	return load(e);
}

Test(reports_cycles, finds_rings_and_self_loops_among_lost_blocks)
{
	struct enc e;
	struct reports_capture *cap = cycles_capture(&e);
	struct reports_analysis *an = reports_analysis_run(cap, NULL);
	cr_assert_not_null(an);
	const struct reports_cycles *cy = an->cycles;
	cr_assert_not_null(cy);
	cr_assert_eq(cy->n, 2);
	/* largest first: the self-loop (64 bytes), then the pair (48) */
	const struct reports_cycle *self = &cy->v[0], *pair = &cy->v[1];
	cr_assert_eq(self->blocks, 1);
	cr_assert_eq(self->bytes, 64);
	cr_assert_eq(cy->members[self->first_member].address, 0x3000);
	cr_assert_eq(self->n_edges, 1);
	cr_assert_eq(cy->edges[self->first_edge].offset, 24);
	cr_assert_eq(pair->blocks, 2);
	cr_assert_eq(pair->bytes, 48);
	cr_assert_eq(pair->n_members, 2);
	cr_assert_eq(cy->members[pair->first_member].address, 0x1000);
	cr_assert_eq(cy->members[pair->first_member + 1].address, 0x2000);
	cr_assert_eq(cy->members[pair->first_member + 1].size, 32);
	/* edges inside the cycle only (not 0x4000's), by source then offset */
	cr_assert_eq(pair->n_edges, 3);
	const struct reports_cycle_edge *ed = &cy->edges[pair->first_edge];
	cr_assert(ed[0].from == 0x1000 && ed[0].offset == 8 && ed[0].to == 0x2000);
	cr_assert(ed[1].from == 0x2000 && ed[1].offset == 0 && ed[1].to == 0x1000);
	cr_assert(ed[2].from == 0x2000 && ed[2].offset == 16 && ed[2].to == 0x1000);
	reports_analysis_destroy(an);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_cycles, json_gives_the_design_keys_and_edges)
{
	struct enc e;
	struct reports_capture *cap = cycles_capture(&e);
	struct reports_symbolizer *sym = reports_symbolizer_create(cap);
	struct reports_analysis *an = reports_analysis_run(cap, sym);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	struct reports_frames fr = { 0 };
	cr_assert_eq(reports_json_cycles(out, cap, an, sym, &fr), 0);
	fclose(out);
	cr_assert(strstr(buf, "\"blocks\": 1, \"bytes\": 64, \"members\": [{\"address\": "
			      "\"0x3000\", \"size\": 64, \"stack\": ["));
	cr_assert(strstr(buf, "\"edges\": [{\"from\": \"0x3000\", \"offset\": 24, \"to\": "
			      "\"0x3000\"}]"));
	free(buf);
	reports_frames_finish(&fr);
	reports_analysis_destroy(an);
	reports_symbolizer_destroy(sym);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_cycles, suppressing_a_member_suppresses_what_it_reaches)
{
	struct enc e;
	struct reports_capture *cap = cycles_capture(&e);
	struct reports_symbolizer *sym = reports_symbolizer_create(cap);
	struct reports_analysis *an = reports_analysis_run(cap, sym);
	/* stack 1 (in liba.so) allocated 0x1000 and 0x2000 */
	struct supp_set *set = supp_set_create();
	const char *text = "{\n  pair\n  Memcheck:Leak\n  match-leak-kinds: definite\n"
			   "  obj:*/liba.so\n}\n";
	char err[256];
	cr_assert_eq(supp_set_load_buffer(set, "t.supp", text, strlen(text), err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(reports_leaks_suppress(an, cap, sym, set), 0);
	/* 0x1000 by the match, 0x2000 through its edge; 0x4000 points to
	 * 0x1000 but is not reached from it: still lost, and so is 0x3000 */
	cr_assert_eq(an->leaks[REPORTS_LEAK_SUPPRESSED].bytes, 48);
	cr_assert_eq(an->leaks[REPORTS_LEAK_SUPPRESSED].blocks, 2);
	cr_assert_eq(an->leaks[REPORTS_LEAK_INDIRECT].blocks, 0);
	cr_assert_eq(an->leaks[REPORTS_LEAK_DEFINITE].bytes, 72);
	cr_assert_eq(an->cycles->n, 1);
	cr_assert_eq(an->cycles->members[an->cycles->v[0].first_member].address, 0x3000);
	struct supp_info in;
	cr_assert(supp_set_get(set, 0, &in));
	cr_assert_eq(in.uses, 1);
	cr_assert_eq(in.bytes, 48);
	cr_assert_eq(in.blocks, 2);
	size_t suppressed_records = 0;
	for (size_t i = 0; i < an->n_leak_records; i++)
		suppressed_records += an->leak_records[i].kind == REPORTS_LEAK_SUPPRESSED;
	cr_assert_eq(suppressed_records, 1);
	supp_set_destroy(set);
	reports_analysis_destroy(an);
	reports_symbolizer_destroy(sym);
	reports_capture_destroy(cap);
	enc_finish(&e);
}
