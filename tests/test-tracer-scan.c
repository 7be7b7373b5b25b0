/*
 * test-tracer-scan.c: the leak scan's classification, in process: blocks
 * from pool_malloc, pointers arranged by hand, scan_run(), each block's
 * kind checked through the sink.  Covers the nine pointer cases of the
 * memcheck manual ("Memcheck: leak detection"), lost trees and cycles,
 * many small leaks, and memcheck's four heuristics.  Thread-related cases
 * are in test-tracer-scan-threads.c.
 *
 * Blocks are named by index (see test-tracer-scan-util.h): a block is
 * reachable only through the roots and links a test makes on purpose.
 */
#include "test-tracer-scan-util.h"

/* ---- the nine cases of the memcheck manual ------------------------------
 *
 *      Pointer chain            AAA leak case     BBB leak case
 *  (1) RRR ------------> BBB                      reachable
 *  (2) RRR ---> AAA ---> BBB    reachable         reachable
 *  (3) RRR               BBB                      definite
 *  (4) RRR      AAA ---> BBB    definite          indirect
 *  (5) RRR ------?-----> BBB                      possible
 *  (6) RRR ---> AAA -?-> BBB    reachable         possible
 *  (7) RRR -?-> AAA ---> BBB    possible          possible
 *  (8) RRR -?-> AAA -?-> BBB    possible          possible
 *  (9) RRR      AAA -?-> BBB    definite          indirect
 * (---> start pointer, -?-> interior pointer, RRR a root)
 * Below, block 0 is AAA and block 1 is BBB. */

Test(scan_cases, case1_root_to_block_is_reachable)
{
	st_reset();
	st_alloc(1, 32);
	st_root_set(0, 1, 0);
	st_scan();
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_REACHABLE].blocks, 1);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_REACHABLE].bytes, 32);
	cr_expect_eq(st_summary.live_blocks, 1);
	cr_expect_gt(st_summary.root_bytes, 0);
}

Test(scan_cases, case2_chain_of_start_pointers_is_reachable)
{
	st_reset();
	st_alloc(0, 32);
	st_alloc(1, 48);
	st_link(0, 0, 1, 0);
	st_root_set(0, 0, 0);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_REACHABLE].bytes, 80);
}

Test(scan_cases, case3_unreferenced_block_is_definitely_lost)
{
	st_reset();
	st_alloc(1, 40);
	st_scan();
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_DEFINITE);
	cr_expect_eq(st_indirect_of(1, 2), -1);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_DEFINITE].bytes, 40);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_DEFINITE].blocks, 1);
}

Test(scan_cases, case4_block_of_a_lost_block_is_indirectly_lost)
{
	st_reset();
	st_alloc(0, 32);
	st_alloc(1, 64);
	st_link(0, 8, 1, 0);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_DEFINITE);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_INDIRECT);
	cr_expect_eq(st_indirect_of(1, 2), 0);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_INDIRECT].bytes, 64);
	cr_expect(st_has_edge(0, 8, 1));
}

Test(scan_cases, case5_interior_pointer_from_root_is_possibly_lost)
{
	st_reset();
	st_alloc(1, 64);
	st_root_set(0, 1, 40);
	st_scan();
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_POSSIBLE);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_POSSIBLE].bytes, 64);
}

Test(scan_cases, case6_interior_pointer_from_reachable_block_is_possibly_lost)
{
	st_reset();
	st_alloc(0, 32);
	st_alloc(1, 64);
	st_link(0, 0, 1, 24);
	st_root_set(0, 0, 0);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_POSSIBLE);
}

Test(scan_cases, case7_start_pointer_from_possible_block_is_possibly_lost)
{
	st_reset();
	st_alloc(0, 64);
	st_alloc(1, 32);
	st_link(0, 0, 1, 0);
	st_root_set(0, 0, 40);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_POSSIBLE);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_POSSIBLE);
	cr_expect(st_has_edge(0, 0, 1));
}

Test(scan_cases, case8_two_interior_pointers_are_possibly_lost)
{
	st_reset();
	st_alloc(0, 64);
	st_alloc(1, 64);
	st_link(0, 0, 1, 40);
	st_root_set(0, 0, 40);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_POSSIBLE);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_POSSIBLE);
}

Test(scan_cases, case9_interior_pointer_from_lost_block_is_indirectly_lost)
{
	st_reset();
	st_alloc(0, 32);
	st_alloc(1, 64);
	st_link(0, 0, 1, 40);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_DEFINITE);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_INDIRECT);
	cr_expect_eq(st_indirect_of(1, 2), 0);
	cr_expect(st_has_edge(0, 0, 1));
}

Test(scan_cases, possible_block_becomes_reachable_when_also_start_pointed)
{
	st_reset();
	st_alloc(0, 64);
	st_alloc(1, 64);
	st_alloc(2, 16);
	st_link(0, 0, 1, 0); /* through 0 alone, 1 would be possible */
	st_link(1, 0, 2, 0);
	st_root_set(0, 0, 40);
	st_root_set(1, 1, 0); /* but a root holds 1's start */
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_POSSIBLE);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_kind(2), CAPTURE_LEAK_REACHABLE);
}

Test(scan_cases, pointer_past_the_requested_size_is_not_a_pointer)
{
	st_reset();
	/* 20 bytes requested in a 32-byte class: byte 24 is not the block's */
	st_alloc(1, 20);
	st_root_set(0, 1, 24);
	st_scan();
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_DEFINITE);
}

Test(scan_cases, zero_sized_block_is_reachable_through_its_start)
{
	st_reset();
	st_alloc(0, 0);
	st_alloc(1, 0);
	st_root_set(0, 0, 0);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_DEFINITE);
}

Test(scan_cases, large_blocks_are_classified_and_not_roots)
{
	st_reset();
	/* a reachable large block points at a small one; a lost large block's
	 * pointer makes its target indirect, not reachable */
	st_alloc(0, 4096);
	st_alloc(1, 16);
	st_alloc(2, 100000);
	st_alloc(3, 16);
	st_link(0, 1000, 1, 0);
	st_link(2, 50000, 3, 0);
	st_root_set(0, 0, 0);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_kind(2), CAPTURE_LEAK_DEFINITE);
	cr_expect_eq(st_kind(3), CAPTURE_LEAK_INDIRECT);
	cr_expect_eq(st_indirect_of(3, 4), 2);
}

/* Blocks of the medium classes (here 3072 bytes) lie in 64 KiB pools, and
 * some cross the 16 KiB granules of the scan's pool table: their starts,
 * interiors and ends must still map to them. */
Test(scan_cases, medium_blocks_across_granules_are_classified)
{
	st_reset();
	for (int i = 0; i < 20; i++)
		st_alloc(i, 3000);
	st_root_set(0, 0, 0);    /* reachable */
	st_link(0, 8, 5, 0);     /* reachable through a block */
	st_link(7, 2992, 8, 0);  /* 7 lost, 8 indirect (pointer in 7's last word) */
	st_root_set(1, 10, 2999); /* an interior pointer to the last byte: possible */
	st_link(5, 1200, 16, 2048);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_kind(5), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_kind(7), CAPTURE_LEAK_DEFINITE);
	cr_expect_eq(st_kind(8), CAPTURE_LEAK_INDIRECT);
	cr_expect_eq(st_kind(10), CAPTURE_LEAK_POSSIBLE);
	cr_expect_eq(st_kind(16), CAPTURE_LEAK_POSSIBLE);
	cr_expect(st_has_edge(7, 2992, 8));
	size_t definite = 0;
	for (int i = 0; i < 20; i++)
		definite += st_kind(i) == CAPTURE_LEAK_DEFINITE;
	cr_expect_eq(definite, 20 - 5, "all but 0, 5, 8, 10 and 16");
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_DEFINITE].blocks, 15);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_DEFINITE].bytes, 15 * 3000);
}

/* ---- lost structures --------------------------------------------------- */

Test(scan_lost, lost_tree_has_a_definite_root_and_indirect_rest)
{
	st_reset();
	/* a binary tree of 15 nodes of 48 bytes, node i's children 2i+1 and
	 * 2i+2; the root is allocated last, above some of its descendants
	 * (memcheck then merges their cliques into the root's) */
	for (int i = 14; i >= 0; i--)
		st_alloc(i, 48);
	for (int i = 0; i < 7; i++) {
		st_link(i, 0, 2 * i + 1, 0);
		st_link(i, 8, 2 * i + 2, 0);
	}
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_DEFINITE);
	for (int i = 1; i < 15; i++) {
		cr_expect_eq(st_kind(i), CAPTURE_LEAK_INDIRECT, "node %d", i);
		cr_expect_eq(st_indirect_of(i, 15), 0, "node %d", i);
	}
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_DEFINITE].blocks, 1);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_DEFINITE].bytes, 48);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_INDIRECT].blocks, 14);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_INDIRECT].bytes, 14 * 48);
	cr_expect_eq(st.nedge, 14);
	cr_expect(st_has_edge(3, 8, 8));
}

Test(scan_lost, leaked_cycle_has_one_definite_leader)
{
	st_reset();
	for (int i = 0; i < 4; i++)
		st_alloc(i, 32);
	for (int i = 0; i < 4; i++)
		st_link(i, 0, (i + 1) % 4, 0);
	st_scan();
	/* memcheck meets the cycle at its lowest address: that block leads */
	int leader = -1, definite = 0;
	for (int i = 0; i < 4; i++) {
		if (st_kind(i) == CAPTURE_LEAK_DEFINITE) {
			definite++;
			leader = i;
		}
	}
	cr_assert_eq(definite, 1);
	for (int i = 0; i < 4; i++)
		cr_expect_geq(st.anchor[i], st.anchor[leader]);
	for (int i = 0; i < 4; i++) {
		if (i == leader)
			continue;
		cr_expect_eq(st_kind(i), CAPTURE_LEAK_INDIRECT);
		cr_expect_eq(st_indirect_of(i, 4), leader);
	}
	cr_expect_eq(st.nedge, 4);
	for (int i = 0; i < 4; i++)
		cr_expect(st_has_edge(i, 0, (i + 1) % 4));
}

Test(scan_lost, two_cycles_joined_by_a_pointer_form_one_clique)
{
	st_reset();
	/* cycle {0,1} -> cycle {2,3}: whatever the address order, one block
	 * of {0,1} is definite and the three others are its indirect blocks */
	for (int i = 0; i < 4; i++)
		st_alloc(i, 32);
	st_link(0, 0, 1, 0);
	st_link(1, 0, 0, 0);
	st_link(2, 0, 3, 0);
	st_link(3, 0, 2, 0);
	st_link(1, 8, 2, 0);
	st_scan();
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_DEFINITE].blocks, 1);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_INDIRECT].blocks, 3);
	int leader = st_kind(0) == CAPTURE_LEAK_DEFINITE ? 0 : 1;
	cr_expect_eq(st_kind(leader), CAPTURE_LEAK_DEFINITE);
	for (int i = 0; i < 4; i++)
		if (i != leader)
			cr_expect_eq(st_indirect_of(i, 4), leader);
}

Test(scan_lost, cycle_hanging_off_a_root_is_reachable)
{
	st_reset();
	st_alloc(0, 32);
	st_alloc(1, 32);
	st_link(0, 0, 1, 0);
	st_link(1, 0, 0, 0);
	st_root_set(0, 1, 0);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st.nedge, 0);
}

Test(scan_lost, block_pointing_to_itself_is_definite_with_a_self_edge)
{
	st_reset();
	st_alloc(0, 32);
	st_link(0, 16, 0, 0);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_DEFINITE);
	cr_expect(st_has_edge(0, 16, 0));
}

Test(scan_lost, thousand_one_byte_leaks)
{
	st_reset();
	st_alloc_many(1000, 1);
	st_scan();
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_DEFINITE].blocks, 1000);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_DEFINITE].bytes, 1000);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_INDIRECT].blocks, 0);
	cr_expect_eq(st_count_kind(CAPTURE_LEAK_DEFINITE), 1000);
}

Test(scan_lost, freed_blocks_are_not_reported)
{
	st_reset();
	st_alloc(0, 32);
	st_alloc(1, 32);
	uintptr_t gone = st.anchor[0];
	st_free(0);
	st_scan();
	for (size_t k = 0; k < st.nrec; k++)
		cr_expect_neq(st.rec[k].addr, gone);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_DEFINITE);
	cr_expect_eq(st_summary.live_blocks, 1);
}

Test(scan_lost, reachable_blocks_can_be_left_out_of_the_sink)
{
	st_reset();
	st_alloc(0, 32);
	st_alloc(1, 32);
	st_root_set(0, 0, 0);
	st_wipe_stack();
	struct scan_options o;
	scan_options_init(&o);
	o.report_reachable = false;
	st_scan_opts(&o);
	cr_expect_eq(st_kind(0), -1);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_DEFINITE);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_REACHABLE].blocks, 1);
}

/* ---- memcheck's heuristics --------------------------------------------- */

Test(scan_heuristics, stdstring_interior_pointer_is_reachable)
{
	st_reset();
	/* {length, capacity, refcount, chars[capacity + 1]} */
	st_alloc(0, 3 * 8 + 13 + 1);
	st_set_word(0, 0, 5);
	st_set_word(0, 8, 13);
	st_root_set(0, 0, 24);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_summary.heuristic[SCAN_HEUR_STDSTRING].blocks, 1);
	st_scan_with_heuristics(0);
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_POSSIBLE);
}

Test(scan_heuristics, stdstring_with_length_over_capacity_is_possible)
{
	st_reset();
	st_alloc(0, 3 * 8 + 13 + 1);
	st_set_word(0, 0, 14);
	st_set_word(0, 8, 13);
	st_root_set(0, 0, 24);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_POSSIBLE);
}

Test(scan_heuristics, length64_interior_pointer_is_reachable)
{
	st_reset();
	/* the first word is the size of the rest (36); newarray would accept
	 * it too (36 % 36 == 0), so only length64 is enabled here */
	st_alloc(0, 8 + 36);
	st_set_word(0, 0, 36);
	st_root_set(0, 0, 8);
	st_scan_with_heuristics(SCAN_HEUR_BIT(SCAN_HEUR_LENGTH64));
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_summary.heuristic[SCAN_HEUR_LENGTH64].blocks, 1);
	st_set_word(0, 0, 35);
	st_scan_with_heuristics(SCAN_HEUR_BIT(SCAN_HEUR_LENGTH64));
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_POSSIBLE);
}

Test(scan_heuristics, newarray_interior_pointer_is_reachable)
{
	st_reset();
	/* new T[5] with sizeof(T) == 12: a count, then 60 bytes */
	st_alloc(0, 8 + 60);
	st_set_word(0, 0, 5);
	st_root_set(0, 0, 8);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_summary.heuristic[SCAN_HEUR_NEWARRAY].blocks, 1);
	st_set_word(0, 0, 7); /* 60 % 7 != 0 */
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_POSSIBLE);
}

Test(scan_heuristics, heuristic_needs_a_definite_prior)
{
	st_reset();
	st_alloc(0, 64);
	st_alloc(1, 8 + 60);
	st_set_word(1, 0, 5);
	st_link(0, 0, 1, 8);
	st_root_set(0, 0, 40); /* block 0 is only possibly reached */
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_POSSIBLE);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_POSSIBLE);
}

/* Two vtables: arrays of pointers to functions, in this executable's
 * read-only data (a file mapping), pointing into its text. */
__attribute__((noinline)) static void vfn_a(void)
{
	__asm__ volatile("");
}
__attribute__((noinline)) static void vfn_b(void)
{
	__asm__ volatile("");
}
void (*const scan_test_vtable_one[])(void) = {vfn_a, vfn_b, vfn_a};
void (*const scan_test_vtable_two[])(void) = {vfn_b, vfn_a, vfn_b};

Test(scan_heuristics, multipleinheritance_interior_pointer_is_reachable)
{
	st_reset();
	/* struct D : B1, B2 {}: {vptr B1, field, vptr B2, field}; the program
	 * holds a B2 *, which points at D + 16 */
	st_alloc(0, 32);
	st_set_word(0, 0, (uintptr_t)scan_test_vtable_one);
	st_set_word(0, 8, 7);
	st_set_word(0, 16, (uintptr_t)scan_test_vtable_two);
	st_set_word(0, 24, 9);
	st_root_set(0, 0, 16);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_summary.heuristic[SCAN_HEUR_MULTIPLEINHERITANCE].blocks, 1);
	/* a word that is no vtable (it points at a global) breaks it */
	st_set_word(0, 16, (uintptr_t)&st_summary);
	st_scan();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_POSSIBLE);
}
