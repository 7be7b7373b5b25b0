/*
 * test-reports-objects.c: reports/objects.c on captures built by hand
 * (tests/reports-encode.h): growth between snapshots, the cycles among the
 * objects found unreachable at exit, refcount leaks, back-reference
 * chains, and the reader's checks of OBJCOUNT and SCANREF.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports-encode.h"
#include "reports.h"

static void objtype(struct enc *e, uint64_t id, const char *name, uint64_t size)
{
	enc_tag(e, CAPTURE_OBJTYPE);
	enc_u(e, id);
	enc_cstr(e, name);
	enc_u(e, size);
}

static void snapshot(struct enc *e, uint64_t id, const char *label)
{
	enc_tag(e, CAPTURE_SNAPSHOT);
	enc_u(e, id);
	enc_u(e, 1000 * id);
	enc_u(e, 10 * id);
	enc_cstr(e, label);
}

static void objcount(struct enc *e, uint64_t snap, uint64_t type, uint64_t count,
		     uint64_t bytes)
{
	enc_tag(e, CAPTURE_OBJCOUNT);
	enc_u(e, snap);
	enc_u(e, type);
	enc_u(e, count);
	enc_u(e, bytes);
}

static void object(struct enc *e, uint64_t addr, uint64_t type, uint64_t refcount,
		   uint64_t flags)
{
	enc_tag(e, CAPTURE_OBJECT);
	enc_u(e, addr);
	enc_u(e, type);
	enc_u(e, refcount);
	enc_u(e, flags);
	enc_u(e, CAPTURE_SNAPSHOT_EXIT);
}

static void objedge(struct enc *e, uint64_t from, uint64_t to)
{
	enc_tag(e, CAPTURE_OBJEDGE);
	enc_u(e, from);
	enc_u(e, to);
	enc_u(e, CAPTURE_SNAPSHOT_EXIT);
}

static void exit_scan(struct enc *e, uint64_t blocks)
{
	enc_tag(e, CAPTURE_SCAN);
	enc_u(e, blocks);
	enc_u(e, 0);
	enc_u(e, CAPTURE_SCAN_AT_EXIT);
}

static void scanref(struct enc *e, uint64_t addr, uint64_t from, uint64_t kind, uint64_t tid)
{
	enc_tag(e, CAPTURE_SCANREF);
	enc_u(e, addr);
	enc_u(e, from);
	enc_u(e, kind);
	enc_u(e, tid);
}

static struct reports_capture *load(struct enc *e)
{
	struct reports_capture *cap = NULL;
	struct reports_error err;
	int r = reports_capture_load_buffer(e->buf, e->len, &cap, &err);
	cr_assert_eq(r, 0, "load: %s", err.message);
	enc_finish(e);
	return cap;
}

static struct reports_objects *analyse(struct reports_capture *cap)
{
	int err = 0;
	struct reports_objects *o = reports_objects_analyse(cap, NULL, &err);
	cr_assert_eq(err, 0);
	cr_assert_not_null(o);
	return o;
}

/* An object of a tracked type: block at addr - 32, 64 bytes. */
#define BLOCK(body) ((body) - 32)

Test(reports_objects, growth_lists_the_types_that_grew_between_snapshots)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	objtype(&e, 1, "node", 24);
	objtype(&e, 2, "str", 16);
	objtype(&e, 3, "edge", 8);
	snapshot(&e, 1, "one");
	objcount(&e, 1, 1, 4, 96);
	objcount(&e, 1, 2, 9, 144);
	snapshot(&e, 2, "two");
	objcount(&e, 2, 1, 10, 240);
	objcount(&e, 2, 2, 7, 112);
	objcount(&e, 2, 3, 2, 16);
	snapshot(&e, CAPTURE_SNAPSHOT_EXIT, "exit");
	objcount(&e, CAPTURE_SNAPSHOT_EXIT, 1, 1, 24);
	objcount(&e, CAPTURE_SNAPSHOT_EXIT, 2, 3, 48);
	enc_chunk_end(&e);
	struct reports_capture *cap = load(&e);
	struct reports_objects *o = analyse(cap);

	cr_assert_eq(o->n_growth, 1); /* the exit snapshot is not a step */
	const struct reports_obj_growth *g = &o->growth[0];
	cr_expect_str_eq(g->from_label, "one");
	cr_expect_str_eq(g->to_label, "two");
	cr_assert_eq(g->n, 2); /* str shrank: not listed */
	const struct reports_obj_type *t = &o->growth_types[g->first];
	cr_expect_str_eq(t[0].name, "node");
	cr_expect_eq(t[0].delta, 6);
	cr_expect_eq(t[0].count, 10);
	cr_expect_str_eq(t[1].name, "edge");
	cr_expect_eq(t[1].delta, 2);

	cr_assert_eq(o->n_types, 2);
	cr_expect_str_eq(o->types[0].name, "str"); /* most objects first */
	cr_expect_eq(o->types[0].count, 3);
	cr_expect_eq(o->total_count, 4);
	cr_expect_eq(o->total_bytes, 72);
	reports_objects_destroy(o);
	reports_capture_destroy(cap);
}

Test(reports_objects, cycles_are_the_strongly_connected_garbage)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	objtype(&e, 1, "knot", 32);
	objtype(&e, 2, "loop", 32);
	snapshot(&e, CAPTURE_SNAPSHOT_EXIT, "exit");
	/* A <-> B, C -> C, D -> A (garbage, in no cycle), E <-> F alive */
	uint64_t A = 0x1020, B = 0x1060, C = 0x10a0, D = 0x10e0, E = 0x1120, F = 0x1160;
	object(&e, A, 1, 2, CAPTURE_OBJ_TRACKED | CAPTURE_OBJ_GARBAGE);
	object(&e, B, 1, 1, CAPTURE_OBJ_TRACKED | CAPTURE_OBJ_GARBAGE);
	object(&e, C, 2, 1, CAPTURE_OBJ_TRACKED | CAPTURE_OBJ_GARBAGE);
	object(&e, D, 2, 0, CAPTURE_OBJ_TRACKED | CAPTURE_OBJ_GARBAGE);
	object(&e, E, 1, 2, CAPTURE_OBJ_TRACKED);
	object(&e, F, 1, 1, CAPTURE_OBJ_TRACKED);
	objedge(&e, A, B);
	objedge(&e, B, A);
	objedge(&e, C, C);
	objedge(&e, D, A);
	objedge(&e, E, F);
	objedge(&e, F, E);
	exit_scan(&e, 6);
	uint64_t bodies[] = { A, B, C, D, E, F };
	for (int i = 0; i < 6; i++)
		enc_scanblock(&e, BLOCK(bodies[i]), 64, 0, (uint64_t)i + 1,
			      i < 4 ? CAPTURE_LEAK_DEFINITE : CAPTURE_LEAK_REACHABLE, 0);
	enc_chunk_end(&e);
	struct reports_capture *cap = load(&e);
	struct reports_objects *o = analyse(cap);

	cr_assert_eq(o->n_cycles, 2);
	const struct reports_obj_cycle *big = &o->cycles[0], *self = &o->cycles[1];
	cr_expect_eq(big->n, 2);
	cr_expect_eq(big->bytes, 128);
	cr_expect_eq(big->n_edge, 2);
	cr_assert_eq(big->n_type, 1);
	cr_expect_str_eq(o->cycle_types[big->first_type], "knot");
	cr_expect_eq(o->members[big->first].addr, A);
	cr_expect_eq(o->members[big->first].referrers, 2); /* from B and D */
	cr_expect_eq(self->n, 1);
	cr_expect_eq(self->n_edge, 1);
	cr_expect_str_eq(o->cycle_types[self->first_type], "loop");
	cr_expect_eq(o->n_leaks, 0); /* garbage is not a refcount leak */
	reports_objects_destroy(o);
	reports_capture_destroy(cap);
}

Test(reports_objects, refcount_leak_needs_an_unexplained_reference_and_no_root)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	objtype(&e, 1, "thing", 32);
	snapshot(&e, CAPTURE_SNAPSHOT_EXIT, "exit");
	uint64_t P = 0x2020, Q = 0x2060, R = 0x20a0, S = 0x20e0;
	object(&e, P, 1, 2, CAPTURE_OBJ_TRACKED); /* 1 referrer: leaked */
	object(&e, Q, 1, 1, CAPTURE_OBJ_TRACKED); /* lost, explained by P */
	object(&e, R, 1, 3, CAPTURE_OBJ_TRACKED); /* reachable: held by a root */
	object(&e, S, 1, 1, CAPTURE_OBJ_TRACKED); /* lost, explained by Q */
	objedge(&e, Q, P);
	objedge(&e, P, Q);
	objedge(&e, Q, S);
	exit_scan(&e, 4);
	enc_scanblock(&e, BLOCK(P), 64, 0, 1, CAPTURE_LEAK_DEFINITE, 0);
	enc_scanblock(&e, BLOCK(Q), 64, 0, 2, CAPTURE_LEAK_INDIRECT, BLOCK(P));
	enc_scanblock(&e, BLOCK(R), 64, 0, 3, CAPTURE_LEAK_REACHABLE, 0);
	enc_scanblock(&e, BLOCK(S), 64, 0, 4, CAPTURE_LEAK_INDIRECT, BLOCK(P));
	enc_chunk_end(&e);
	struct reports_capture *cap = load(&e);
	struct reports_objects *o = analyse(cap);

	cr_assert_eq(o->n_leaks, 1);
	cr_expect_eq(o->leaks[0].addr, P);
	cr_expect_eq(o->leaks[0].refcount, 2);
	cr_expect_eq(o->leaks[0].referrers, 1);
	cr_expect_eq(o->leaks[0].size, 64);
	reports_objects_destroy(o);
	reports_capture_destroy(cap);
}

Test(reports_objects, chain_follows_scanrefs_to_the_root)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	objtype(&e, 1, "leaf", 32);
	objtype(&e, 2, "box", 32);
	snapshot(&e, CAPTURE_SNAPSHOT_EXIT, "exit");
	objcount(&e, CAPTURE_SNAPSHOT_EXIT, 1, 2, 64);
	objcount(&e, CAPTURE_SNAPSHOT_EXIT, 2, 1, 32);
	/* leaf L1 <- box (+40) <- plain block 0x5000 (+8) <- stack of 77;
	 * leaf L2 <- box: its chain is as long, L1 has the lower address */
	uint64_t L1 = 0x3020, L2 = 0x3060, BOX = 0x4020;
	object(&e, L1, 1, 1, CAPTURE_OBJ_TRACKED);
	object(&e, L2, 1, 1, CAPTURE_OBJ_TRACKED);
	object(&e, BOX, 2, 1, CAPTURE_OBJ_TRACKED);
	objedge(&e, BOX, L1);
	objedge(&e, BOX, L2);
	exit_scan(&e, 4);
	enc_scanblock(&e, BLOCK(L1), 64, 0, 1, CAPTURE_LEAK_REACHABLE, 0);
	enc_scanblock(&e, BLOCK(L2), 64, 0, 2, CAPTURE_LEAK_REACHABLE, 0);
	enc_scanblock(&e, BLOCK(BOX), 64, 0, 3, CAPTURE_LEAK_REACHABLE, 0);
	enc_scanblock(&e, 0x5000, 16, 0, 4, CAPTURE_LEAK_REACHABLE, 0);
	scanref(&e, BLOCK(L1), BLOCK(BOX) + 40, CAPTURE_REF_BLOCK, 0);
	scanref(&e, BLOCK(L2), BLOCK(BOX) + 48, CAPTURE_REF_BLOCK, 0);
	scanref(&e, BLOCK(BOX), 0x5008, CAPTURE_REF_BLOCK, 0);
	scanref(&e, 0x5000, 0x7ffc0000, CAPTURE_REF_STACK, 77);
	enc_chunk_end(&e);
	struct reports_capture *cap = load(&e);
	struct reports_objects *o = analyse(cap);

	cr_assert_eq(o->n_chains, 2);
	const struct reports_obj_chain *leaf = &o->chains[0], *box = &o->chains[1];
	cr_expect_str_eq(leaf->obj.type, "leaf");
	cr_expect_eq(leaf->obj.addr, L1);
	cr_assert_eq(leaf->n, 2);
	cr_expect_eq(o->links[leaf->first].block, BLOCK(BOX));
	cr_expect_eq(o->links[leaf->first].offset, 40);
	cr_expect_str_eq(o->links[leaf->first].type, "box");
	cr_expect_eq(o->links[leaf->first + 1].block, 0x5000);
	cr_expect_eq(o->links[leaf->first + 1].offset, 8);
	cr_expect_null(o->links[leaf->first + 1].type);
	cr_expect_eq(leaf->root_kind, CAPTURE_REF_STACK);
	cr_expect_str_eq(leaf->root, "stack of thread 77");
	cr_expect_eq(box->n, 1);

	char *text = NULL, *json = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	cr_assert_eq(reports_objects_render_text(f, o, cap, NULL, 0), 0);
	fclose(f);
	cr_expect(strstr(text, "<- stack of thread 77") != NULL, "%s", text);
	f = open_memstream(&json, &len);
	cr_assert_eq(reports_objects_render_json(f, o, cap, NULL), 0);
	fclose(f);
	cr_expect(strstr(json, "\"root\": {\"kind\": \"stack\", \"name\": \"stack of thread 77\"") !=
			  NULL, "%s", json);
	cr_expect(strstr(json, "\"types\": [{\"name\": \"leaf\", \"count\": 2, \"bytes\": 64}") !=
			  NULL, "%s", json);
	free(text);
	free(json);
	reports_objects_destroy(o);
	reports_capture_destroy(cap);
}

Test(reports_objects, no_object_records_no_objects)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	exit_scan(&e, 0);
	enc_chunk_end(&e);
	struct reports_capture *cap = load(&e);
	int err = 1;
	cr_expect_null(reports_objects_analyse(cap, NULL, &err));
	cr_expect_eq(err, 0);
	char *json = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&json, &len);
	cr_assert_eq(reports_objects_render_json(f, NULL, cap, NULL), 0);
	fclose(f);
	cr_expect_str_eq(json, "{\"types\": [], \"uncollectable_cycles\": [],\n    "
			       "\"growth\": [],\n    \"refcount_leaks\": [],\n    "
			       "\"backref_chains\": []}");
	free(json);
	reports_capture_destroy(cap);
}

Test(reports_objects, reader_checks_scanref)
{
	struct enc e;
	struct reports_capture *cap = NULL;
	struct reports_error err;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	scanref(&e, 0x1000, 0x2000, CAPTURE_REF_DATA, 0); /* before any SCAN */
	enc_chunk_end(&e);
	cr_expect_eq(reports_capture_load_buffer(e.buf, e.len, &cap, &err), -EINVAL);
	cr_expect(strstr(err.message, "SCANREF") != NULL, "%s", err.message);
	enc_finish(&e);

	enc_init(&e);
	enc_chunk_begin(&e, 1);
	exit_scan(&e, 0);
	scanref(&e, 0x1000, 0x2000, CAPTURE_REF_REGISTER + 1, 0);
	enc_chunk_end(&e);
	cr_expect_eq(reports_capture_load_buffer(e.buf, e.len, &cap, &err), -EINVAL);
	cr_expect(strstr(err.message, "kind") != NULL, "%s", err.message);
	enc_finish(&e);
}
