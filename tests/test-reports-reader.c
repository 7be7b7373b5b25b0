/*
 * test-reports-reader.c: the capture reader against captures built here
 * (tests/reports-encode.h): round trips, per-thread chunks merged by
 * sequence number, stacks resolved after the fact, truncation at every
 * byte, corruption with its byte offset, and hostile fields.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reports-encode.h"
#include "reports-private.h"
#include "reports.h"

static const char *const argv3[] = { "./prog", "--flag", "x y" };

/* Two threads: thread 2's chunk comes first in the file but holds later
 * sequence numbers, and uses a stack whose nodes thread 1 writes. */
static void build_two_threads_version(struct enc *e, uint32_t version)
{
	enc_init_version(e, version);
	enc_chunk_begin(e, 1);
	enc_process(e, 4242, 3, argv3);
	enc_module(e, 1, 0x1000, 0x1000, 0x9000, "/bin/prog");
	enc_stack(e, 1, 0, 0x1100);
	enc_stack(e, 2, 1, 0x1200);
	enc_alloc(e, 1, 0x5000, 100, 2);
	enc_alloc(e, 2, 0x6000, 50, 1);
	enc_chunk_end(e);

	enc_chunk_begin(e, 2);
	enc_alloc(e, 5, 0x7000, 30, 3); /* node 3 is defined by a later chunk */
	enc_free(e, 6, 0x5000);
	enc_chunk_end(e);

	enc_chunk_begin(e, 1);
	enc_free(e, 3, 0x6000);
	enc_alloc(e, 4, 0x8000, 20, 2);
	enc_stack(e, 3, 2, 0x1300);
	enc_sample(e, 1000000, 4);
	enc_end(e, 2000000, 7, CAPTURE_END_EXIT, 3, 0);
	enc_chunk_end(e);
}

static void build_two_threads(struct enc *e)
{
	build_two_threads_version(e, CAPTURE_VERSION);
}

/* The events of the capture load_ok() read last, streamed into an array. */
static struct reports_event *events;

static struct reports_event *collect(const struct reports_capture *cap)
{
	struct reports_events *it;
	struct reports_event ev;
	struct reports_event *v = calloc(cap->n_events + 1, sizeof(*v));
	size_t n = 0;
	int r;
	cr_assert_not_null(v);
	cr_assert_eq(reports_events_open(cap, &it), 0);
	while ((r = reports_events_next(it, &ev)) > 0) {
		cr_assert_lt(n, cap->n_events, "more events than the reader counted");
		v[n++] = ev;
	}
	cr_assert_eq(r, 0, "a pass failed: %d", r);
	cr_assert_eq(n, cap->n_events, "%zu events streamed, %zu counted", n, cap->n_events);
	reports_events_close(it);
	return v;
}

static struct reports_capture *load_ok(const struct enc *e)
{
	struct reports_capture *cap = NULL;
	struct reports_error err;
	int r = reports_capture_load_buffer(e->buf, e->len, &cap, &err);
	cr_assert_eq(r, 0, "load failed: %s", err.message);
	free(events);
	events = collect(cap);
	return cap;
}

/* Writes the capture to a new file named after the template path; returns
 * its descriptor, still open. */
static int temp_capture(const struct enc *e, char *path)
{
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, e->buf, e->len), (ssize_t)e->len);
	return fd;
}

static int load_err(const struct enc *e, struct reports_error *err)
{
	struct reports_capture *cap = (void *)1;
	int r = reports_capture_load_buffer(e->buf, e->len, &cap, err);
	cr_assert_null(cap);
	return r;
}

Test(reports_reader, round_trip_keeps_process_and_end)
{
	struct enc e;
	build_two_threads(&e);
	struct reports_capture *cap = load_ok(&e);
	cr_assert(cap->has_process);
	cr_assert_eq(cap->pid, 4242);
	cr_assert_eq(cap->argc, 3);
	cr_assert_str_eq(cap->argv[2], "x y");
	cr_assert_null(cap->argv[3]);
	cr_assert(cap->has_end);
	cr_assert_eq(cap->end_status, 3);
	cr_assert_eq(cap->end_seq, 7);
	cr_assert_not(cap->incomplete);
	cr_assert_eq(cap->n_chunks, 3);
	cr_assert_eq(cap->n_modules, 1);
	cr_assert_str_eq(cap->modules[0].path, "/bin/prog");
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_reader, merges_thread_chunks_by_sequence)
{
	struct enc e;
	build_two_threads(&e);
	struct reports_capture *cap = load_ok(&e);
	cr_assert_eq(cap->n_events, 6);
	for (size_t i = 0; i < cap->n_events; i++)
		cr_assert_eq(events[i].seq, i + 1, "event %zu has seq %llu", i,
			     (unsigned long long)events[i].seq);
	cr_assert_eq(events[0].addr, 0x5000);
	cr_assert_eq(events[0].kind, REPORTS_EVENT_ALLOC);
	cr_assert_eq(events[2].addr, 0x6000);
	cr_assert_eq(events[2].kind, REPORTS_EVENT_FREE);
	cr_assert_eq(events[4].size, 30);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_reader, resolves_stack_nodes_written_after_their_use)
{
	struct enc e;
	build_two_threads(&e);
	struct reports_capture *cap = load_ok(&e);
	uint64_t ips[8];
	const struct reports_event *ev = &events[4]; /* seq 5, stack 3 */
	cr_assert_eq(ev->seq, 5);
	size_t n = reports_stack_ips(cap, ev->stack, ips, 8);
	cr_assert_eq(n, 3);
	cr_assert_eq(ips[0], 0x1300);
	cr_assert_eq(ips[1], 0x1200);
	cr_assert_eq(ips[2], 0x1100);
	/* seq 1 and seq 4 share stack 2 */
	cr_assert_eq(events[0].stack, events[3].stack);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_reader, equal_stacks_of_different_threads_share_a_node)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_stack(&e, 10, 0, 0xaaa);
	enc_stack(&e, 11, 10, 0xbbb);
	enc_alloc(&e, 1, 0x100, 8, 11);
	enc_chunk_end(&e);
	enc_chunk_begin(&e, 2);
	enc_stack(&e, 20, 0, 0xaaa);
	enc_stack(&e, 21, 20, 0xbbb);
	enc_stack(&e, 22, 20, 0xccc);
	enc_alloc(&e, 2, 0x200, 8, 21);
	enc_alloc(&e, 3, 0x300, 8, 22);
	enc_chunk_end(&e);
	struct reports_capture *cap = load_ok(&e);
	cr_assert_eq(events[0].stack, events[1].stack);
	cr_assert_neq(events[0].stack, events[2].stack);
	cr_assert_eq(cap->nodes[events[2].stack].parent,
		     cap->nodes[events[0].stack].parent);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_reader, missing_stack_node_is_an_unknown_frame)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_stack(&e, 5, 99, 0x1234); /* parent 99 never described */
	enc_alloc(&e, 1, 0x100, 8, 5);
	enc_alloc(&e, 2, 0x200, 8, 77); /* stack 77 never described */
	enc_alloc(&e, 3, 0x300, 8, 0);  /* no stack */
	enc_chunk_end(&e);
	struct reports_capture *cap = load_ok(&e);
	uint64_t ips[4];
	cr_assert_eq(reports_stack_ips(cap, events[0].stack, ips, 4), 2);
	cr_assert_eq(ips[0], 0x1234);
	cr_assert_eq(ips[1], 0);
	cr_assert_eq(reports_stack_ips(cap, events[1].stack, ips, 4), 1);
	cr_assert_eq(ips[0], 0);
	cr_assert_eq(events[2].stack, REPORTS_NO_STACK);
	cr_assert_eq(reports_stack_ips(cap, REPORTS_NO_STACK, ips, 4), 0);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_reader, stack_cycles_and_deep_chains_are_cut)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_stack(&e, 1, 2, 0x10);
	enc_stack(&e, 2, 1, 0x20);
	enc_alloc(&e, 1, 0x100, 8, 1);
	for (uint64_t id = 100; id < 100 + 3 * REPORTS_STACK_DEPTH_MAX; id++)
		enc_stack(&e, id + 1, id, id);
	enc_alloc(&e, 2, 0x200, 8, 100 + 3 * REPORTS_STACK_DEPTH_MAX);
	enc_chunk_end(&e);
	struct reports_capture *cap = load_ok(&e);
	uint64_t ips[REPORTS_STACK_DEPTH_MAX];
	size_t n = reports_stack_ips(cap, events[0].stack, ips, REPORTS_STACK_DEPTH_MAX);
	cr_assert_geq(n, 1);
	cr_assert_leq(n, 2);
	cr_assert_eq(ips[0], 0x10);
	n = reports_stack_ips(cap, events[1].stack, ips, REPORTS_STACK_DEPTH_MAX);
	cr_assert_eq(n, REPORTS_STACK_DEPTH_MAX);
	cr_assert_eq(ips[0], 100 + 3 * REPORTS_STACK_DEPTH_MAX - 1);
	cr_assert_eq(ips[1], 100 + 3 * REPORTS_STACK_DEPTH_MAX - 2);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_reader, truncation_at_every_byte_keeps_whole_chunks)
{
	struct enc e;
	build_two_threads(&e);
	size_t ends[3], n_ends = 0;
	/* where each chunk ends, to know which cuts keep which events */
	for (size_t off = CAPTURE_HEADER_SIZE; off < e.len && n_ends < 3;) {
		uint32_t plen = (uint32_t)e.buf[off + 4] | (uint32_t)e.buf[off + 5] << 8 |
				(uint32_t)e.buf[off + 6] << 16 | (uint32_t)e.buf[off + 7] << 24;
		off += CAPTURE_CHUNK_HEADER_SIZE + plen;
		ends[n_ends++] = off;
	}
	cr_assert_eq(n_ends, 3);
	cr_assert_eq(ends[2], e.len);
	for (size_t cut = 0; cut <= e.len; cut++) {
		struct reports_capture *cap = NULL;
		struct reports_error err;
		int r = reports_capture_load_buffer(e.buf, cut, &cap, &err);
		if (cut < CAPTURE_HEADER_SIZE) {
			cr_assert_eq(r, -EINVAL, "cut %zu", cut);
			cr_assert_gt(strlen(err.message), 0);
			continue;
		}
		cr_assert_eq(r, 0, "cut %zu: %s", cut, err.message);
		size_t chunks = cut >= ends[2] ? 3 : cut >= ends[1] ? 2 : cut >= ends[0] ? 1 : 0;
		static const size_t events_after[] = { 0, 2, 4, 6 };
		cr_assert_eq(cap->n_chunks, chunks, "cut %zu", cut);
		cr_assert_eq(cap->n_events, events_after[chunks], "cut %zu", cut);
		cr_assert_eq(cap->incomplete, cut != e.len, "cut %zu", cut);
		bool torn = cut != CAPTURE_HEADER_SIZE && cut != ends[0] && cut != ends[1] &&
			    cut != ends[2];
		cr_assert_eq(cap->truncated, torn, "cut %zu", cut);
		reports_capture_destroy(cap);
	}
	enc_finish(&e);
}

Test(reports_reader, missing_end_marks_incomplete)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_alloc(&e, 1, 0x100, 8, 0);
	enc_chunk_end(&e);
	struct reports_capture *cap = load_ok(&e);
	cr_assert(cap->incomplete);
	cr_assert_not(cap->truncated);
	cr_assert_not(cap->has_end);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_reader, refuses_bad_magic_and_version)
{
	struct enc e;
	struct reports_error err;
	build_two_threads(&e);
	e.buf[0] = 'X';
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	cr_assert(strstr(err.message, "bad magic"), "%s", err.message);
	e.buf[0] = 'M';
	e.buf[8] = 9;
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	cr_assert(strstr(err.message, "version 9"), "%s", err.message);
	cr_assert(strstr(err.message, "byte offset 8"), "%s", err.message);
	enc_finish(&e);

	uint8_t empty[1];
	struct reports_capture *cap = NULL;
	cr_assert_eq(reports_capture_load_buffer(empty, 0, &cap, &err), -EINVAL);
	cr_assert(strstr(err.message, "empty"), "%s", err.message);
}

Test(reports_reader, refuses_bad_checksum_with_its_offset)
{
	struct enc e;
	struct reports_error err;
	build_two_threads(&e);
	e.buf[CAPTURE_HEADER_SIZE + CAPTURE_CHUNK_HEADER_SIZE + 3] ^= 0x40;
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	cr_assert(strstr(err.message, "checksum"), "%s", err.message);
	cr_assert_eq(err.offset, CAPTURE_HEADER_SIZE);
	cr_assert(strstr(err.message, "byte offset 16"), "%s", err.message);
	enc_finish(&e);
}

Test(reports_reader, refuses_bad_chunk_magic_and_oversized_chunk)
{
	struct enc e;
	struct reports_error err;
	build_two_threads(&e);
	e.buf[CAPTURE_HEADER_SIZE] = 0;
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	cr_assert(strstr(err.message, "chunk magic"), "%s", err.message);
	e.buf[CAPTURE_HEADER_SIZE] = (uint8_t)CAPTURE_CHUNK_MAGIC;
	enc_put_u32_at(&e, CAPTURE_HEADER_SIZE + 4, CAPTURE_CHUNK_MAX + 1);
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	cr_assert(strstr(err.message, "at most"), "%s", err.message);
	enc_finish(&e);
}

/* A capture of one chunk holding the bytes given. */
static void one_chunk(struct enc *e, const uint8_t *payload, size_t n)
{
	enc_init(e);
	enc_chunk_begin(e, 1);
	enc_bytes(e, payload, n);
	enc_chunk_end(e);
}

Test(reports_reader, refuses_unknown_tag_and_overrun_records)
{
	struct enc e;
	struct reports_error err;
	const uint8_t unknown[] = { CAPTURE_LOST, 1, 99, 0 };
	one_chunk(&e, unknown, sizeof(unknown));
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	cr_assert(strstr(err.message, "unknown record tag 99"), "%s", err.message);
	cr_assert_eq(err.offset, CAPTURE_HEADER_SIZE + CAPTURE_CHUNK_HEADER_SIZE + 2);
	enc_finish(&e);

	const uint8_t zero[] = { 0 };
	one_chunk(&e, zero, sizeof(zero));
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	enc_finish(&e);

	const uint8_t cut_alloc[] = { CAPTURE_ALLOC, 1, 2, 3 };
	one_chunk(&e, cut_alloc, sizeof(cut_alloc));
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	cr_assert(strstr(err.message, "ALLOC record overruns"), "%s", err.message);
	enc_finish(&e);

	const uint8_t endless_varint[] = { CAPTURE_LOST, 0xff, 0xff, 0xff, 0xff, 0xff,
					   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
	one_chunk(&e, endless_varint, sizeof(endless_varint));
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	enc_finish(&e);
}

Test(reports_reader, refuses_hostile_lengths_and_counts)
{
	struct enc e;
	struct reports_error err;
	/* a string longer than its chunk */
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_tag(&e, CAPTURE_NOTE);
	enc_u(&e, 1);
	enc_u(&e, 0);
	enc_u(&e, 1000);
	enc_bytes(&e, "abc", 3);
	enc_chunk_end(&e);
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	cr_assert(strstr(err.message, "NOTE record overruns"), "%s", err.message);
	enc_finish(&e);

	/* a string over the format's limit */
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_tag(&e, CAPTURE_NOTE);
	enc_u(&e, 1);
	enc_u(&e, 0);
	enc_u(&e, (uint64_t)CAPTURE_STRING_MAX + 1);
	enc_chunk_end(&e);
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	cr_assert(strstr(err.message, "string of"), "%s", err.message);
	enc_finish(&e);

	/* argc of 2^60 must not size an allocation */
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_tag(&e, CAPTURE_PROCESS);
	enc_u(&e, 1);
	enc_u(&e, 1);
	enc_u(&e, 1);
	enc_cstr(&e, "p");
	enc_u(&e, 1ull << 60);
	enc_chunk_end(&e);
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	enc_finish(&e);

	/* STATS with more classes than bytes */
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_tag(&e, CAPTURE_STATS);
	enc_u(&e, 4000);
	enc_u(&e, 1);
	enc_chunk_end(&e);
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	enc_finish(&e);

	/* out-of-range enumerations */
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_badfree(&e, 1, 7, 0x10, 0, 0, 0);
	enc_chunk_end(&e);
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	cr_assert(strstr(err.message, "BADFREE record has an invalid kind"), "%s", err.message);
	enc_finish(&e);

	/* two END records */
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_end(&e, 1, 1, 0, 0, 0);
	enc_end(&e, 1, 1, 0, 0, 0);
	enc_chunk_end(&e);
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	enc_finish(&e);
}

Test(reports_reader, hostile_strings_are_kept_as_bytes)
{
	struct enc e;
	const char nasty[] = "a\"b\\c\n\x01\xff\xfe<script>";
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_note(&e, 1, 1, nasty);
	enc_module(&e, 1, 0, 0x1000, 0x2000, "");
	enc_chunk_end(&e);
	struct reports_capture *cap = load_ok(&e);
	cr_assert_eq(cap->n_notes, 1);
	cr_assert_str_eq(cap->notes[0].text, nasty);
	cr_assert_str_eq(cap->modules[0].path, "");
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_reader, every_record_kind_round_trips)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_module(&e, 3, 0, 0x1000, 0x2000, "/lib/x.so");
	enc_tag(&e, CAPTURE_UNLOAD);
	enc_u(&e, 3);
	enc_u(&e, 9);
	enc_tag(&e, CAPTURE_THREAD);
	enc_u(&e, 77);
	enc_u(&e, 2);
	enc_u(&e, 0);
	enc_cstr(&e, "worker");
	enc_tag(&e, CAPTURE_STATS);
	enc_u(&e, 2);
	for (int i = 0; i < 8; i++)
		enc_u(&e, (uint64_t)i + 1);
	for (int i = 0; i < 8; i++)
		enc_u(&e, (uint64_t)i + 100);
	enc_tag(&e, CAPTURE_LOST);
	enc_u(&e, 5);
	enc_scan(&e, 1, 1);
	enc_scanblock(&e, 0x100, 8, 0, 1, CAPTURE_LEAK_DEFINITE, 0);
	enc_tag(&e, CAPTURE_SCANEDGE);
	enc_u(&e, 0x100);
	enc_u(&e, 0);
	enc_u(&e, 0x200);
	enc_tag(&e, CAPTURE_OBJTYPE);
	enc_u(&e, 1);
	enc_cstr(&e, "list");
	enc_u(&e, 32);
	enc_tag(&e, CAPTURE_OBJECT);
	for (int i = 0; i < 5; i++)
		enc_u(&e, 1);
	enc_tag(&e, CAPTURE_OBJEDGE);
	for (int i = 0; i < 3; i++)
		enc_u(&e, 2);
	enc_tag(&e, CAPTURE_SNAPSHOT);
	enc_u(&e, 1);
	enc_u(&e, 10);
	enc_u(&e, 11);
	enc_cstr(&e, "before");
	enc_badfree(&e, 4, CAPTURE_BADFREE_DOUBLE, 0x100, 0, 0, 0);
	enc_chunk_end(&e);
	struct reports_capture *cap = load_ok(&e);
	cr_assert(cap->modules[0].unloaded);
	cr_assert_eq(cap->modules[0].unload_seq, 9);
	cr_assert_str_eq(cap->threads[0].name, "worker");
	cr_assert(cap->stats.present);
	cr_assert_eq(cap->stats.n_classes, 2);
	cr_assert_eq(cap->stats.classes[1].available, 8);
	cr_assert_eq(cap->stats.large_bytes, 107);
	cr_assert_eq(cap->lost_events, 5);
	cr_assert_eq(cap->n_scans, 1);
	cr_assert_eq(cap->n_scan_blocks, 1);
	cr_assert_eq(cap->scan_edges[0].to, 0x200);
	cr_assert_str_eq(cap->objtypes[0].name, "list");
	cr_assert_eq(cap->n_objects, 1);
	cr_assert_eq(cap->n_objedges, 1);
	cr_assert_str_eq(cap->snapshots[0].label, "before");
	cr_assert_eq(cap->badfrees[0].kind, CAPTURE_BADFREE_DOUBLE);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_reader, interpolates_time_from_samples)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_sample(&e, 1000, 10);
	enc_sample(&e, 3000, 20);
	enc_end(&e, 5000, 40, 0, 0, 0);
	enc_chunk_end(&e);
	struct reports_capture *cap = load_ok(&e);
	cr_assert_eq(reports_capture_time_of_seq(cap, 5), 500);
	cr_assert_eq(reports_capture_time_of_seq(cap, 15), 2000);
	cr_assert_eq(reports_capture_time_of_seq(cap, 30), 4000);
	cr_assert_eq(reports_capture_time_of_seq(cap, 100), 5000);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_reader, loads_files_and_reports_missing_ones)
{
	struct enc e;
	build_two_threads(&e);
	char path[] = "/tmp/memprof-test-reader-XXXXXX";
	int fd = temp_capture(&e, path);
	close(fd);
	struct reports_capture *cap = NULL;
	struct reports_error err;
	cr_assert_eq(reports_capture_load_file(path, &cap, &err), 0, "%s", err.message);
	cr_assert_eq(cap->n_events, 6);
	reports_capture_destroy(cap);
	unlink(path);
	cr_assert_eq(reports_capture_load_file(path, &cap, &err), -ENOENT);
	cr_assert(strstr(err.message, "cannot open"), "%s", err.message);
	cr_assert_eq(reports_capture_load_file("/tmp", &cap, &err), -EISDIR);
	enc_finish(&e);
}

Test(reports_reader, exec_end_is_complete_without_a_status)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_end(&e, 10, 1, CAPTURE_END_EXEC, 0, 0);
	enc_chunk_end(&e);
	struct reports_capture *cap = load_ok(&e);
	cr_assert_not(cap->incomplete);
	struct reports_outcome oc;
	reports_capture_outcome(cap, &oc);
	cr_assert_not(oc.known);
	reports_capture_destroy(cap);
	enc_finish(&e);

	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_end(&e, 10, 1, CAPTURE_END_EXEC + 1, 0, 0);
	enc_chunk_end(&e);
	struct reports_error err;
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	enc_finish(&e);
}

Test(reports_reader, scan_results_need_their_scan)
{
	struct enc e;
	struct reports_error err;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_scanblock(&e, 0x100, 8, 0, 1, CAPTURE_LEAK_DEFINITE, 0);
	enc_chunk_end(&e);
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	cr_assert(strstr(err.message, "SCANBLOCK record before any SCAN"), "%s", err.message);
	enc_finish(&e);
}

Test(reports_reader, outcome_of_a_signal_death)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_end(&e, 10, 1, CAPTURE_END_SIGNAL, 0, 11);
	enc_chunk_end(&e);
	struct reports_capture *cap = load_ok(&e);
	struct reports_outcome oc;
	reports_capture_outcome(cap, &oc);
	cr_assert(oc.known);
	cr_assert_eq(oc.signal, 11);
	cr_assert_eq(oc.exit_status, 139);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

/* A damaged chunk whose seqs go backwards: every event still comes out,
 * in (seq, order) order, merged with the other thread's chunk. */
Test(reports_reader, chunk_whose_seqs_go_backwards_still_merges_in_order)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_stack(&e, 1, 0, 0x10);
	enc_alloc(&e, 5, 0x100, 8, 1);
	enc_alloc(&e, 9, 0x200, 8, 1);
	enc_alloc(&e, 2, 0x300, 8, 1); /* backwards: a second run */
	enc_alloc(&e, 7, 0x400, 8, 1);
	enc_alloc(&e, 7, 0x500, 8, 1); /* a tie keeps file order */
	enc_chunk_end(&e);
	enc_chunk_begin(&e, 2);
	enc_free(&e, 1, 0x900);
	enc_free(&e, 6, 0x100);
	enc_free(&e, 8, 0x200);
	enc_chunk_end(&e);
	struct reports_capture *cap = load_ok(&e);
	static const uint64_t seqs[] = { 1, 2, 5, 6, 7, 7, 8, 9 };
	static const uint64_t addrs[] = { 0x900, 0x300, 0x100, 0x100, 0x400, 0x500, 0x200, 0x200 };
	cr_assert_eq(cap->n_events, 8);
	cr_assert_eq(cap->events_first_seq, 1);
	cr_assert_eq(cap->events_last_seq, 9);
	for (size_t i = 0; i < 8; i++) {
		cr_assert_eq(events[i].seq, seqs[i], "event %zu", i);
		cr_assert_eq(events[i].addr, addrs[i], "event %zu", i);
	}
	cr_assert_lt(events[4].order, events[5].order);
	cr_assert_eq(events[0].thread, 2);
	cr_assert_eq(events[1].thread, 1);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

/* The reader takes a chunk's events a stretch at a time, up to the next
 * other record: stretches broken by other records, a seq going backwards
 * right after one, big addresses and sizes (long varints), and the run's
 * delta state carried across them all come out as written, and so do the
 * capture's counts. */
Test(reports_reader, events_broken_by_other_records_keep_their_state)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_alloc(&e, 10, 0x7f0000001000, 100000, 2); /* stack 2 before its node */
	enc_stack(&e, 1, 0, 0x10);
	enc_stack(&e, 2, 1, 0x20);
	enc_free(&e, 11, 0x7f0000001000);
	enc_note(&e, 11, 1, "between");
	enc_alloc(&e, 4, 0x100, (uint64_t)1 << 40, 1); /* backwards after a record */
	enc_alloc(&e, 12, 0x7f0000002000, 24, 2);
	enc_sample(&e, 5, 12);
	enc_free(&e, 13, 0x100);
	enc_chunk_end(&e);
	enc_chunk_begin(&e, 2);
	enc_note(&e, 1, 1, "first");
	enc_free(&e, 3, 0x900);
	enc_chunk_end(&e);
	struct reports_capture *cap = load_ok(&e);
	static const uint64_t seqs[] = { 3, 4, 10, 11, 12, 13 };
	static const uint64_t addrs[] = { 0x900, 0x100, 0x7f0000001000, 0x7f0000001000,
					  0x7f0000002000, 0x100 };
	static const uint64_t sizes[] = { 0, (uint64_t)1 << 40, 100000, 0, 24, 0 };
	cr_assert_eq(cap->n_events, 6);
	cr_assert_eq(cap->events_first_seq, 3);
	cr_assert_eq(cap->events_last_seq, 13);
	for (size_t i = 0; i < 6; i++) {
		cr_assert_eq(events[i].seq, seqs[i], "event %zu", i);
		cr_assert_eq(events[i].addr, addrs[i], "event %zu", i);
		cr_assert_eq(events[i].size, sizes[i], "event %zu", i);
	}
	cr_assert_eq(events[0].thread, 2);
	cr_assert_eq(events[1].thread, 1);
	/* stack 2 (0x20 called from 0x10), the same node from either stretch */
	uint64_t ips[4];
	cr_assert_eq(reports_stack_ips(cap, events[2].stack, ips, 4), 2);
	cr_assert_eq(ips[0], 0x20);
	cr_assert_eq(ips[1], 0x10);
	cr_assert_eq(events[4].stack, events[2].stack);
	cr_assert_eq(reports_stack_ips(cap, events[1].stack, ips, 4), 1);
	cr_assert_eq(ips[0], 0x10);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

/* The reader steps over the events' addresses and works a run's starting
 * address out only where a run starts inside a chunk: several such runs
 * in one chunk, after other records and after each other, each start
 * from the address the events before it left. */
Test(reports_reader, runs_inside_a_chunk_start_from_the_address_before_them)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_stack(&e, 1, 0, 0x10);
	enc_alloc(&e, 20, 0x7f0000001000, 8, 1);
	enc_free(&e, 21, 0x7f0000000ff0);
	enc_alloc(&e, 10, 0x5000, 16, 1); /* backwards: run 2 */
	enc_note(&e, 10, 1, "between");
	enc_alloc(&e, 11, 0x5fff0, 24, 1);
	enc_free(&e, 12, 0x5000);
	enc_alloc(&e, 5, 0x100, 32, 1); /* backwards after records: run 3 */
	enc_sample(&e, 5, 5);
	enc_alloc(&e, 1, 0xfffffffff000, 40, 1); /* run 4, right after run 3 */
	enc_free(&e, 2, 0x100);
	enc_chunk_end(&e);
	struct reports_capture *cap = load_ok(&e);
	static const uint64_t seqs[] = { 1, 2, 5, 10, 11, 12, 20, 21 };
	static const uint64_t addrs[] = { 0xfffffffff000, 0x100, 0x100, 0x5000,
					  0x5fff0, 0x5000, 0x7f0000001000, 0x7f0000000ff0 };
	cr_assert_eq(cap->n_events, 8);
	for (size_t i = 0; i < 8; i++) {
		cr_assert_eq(events[i].seq, seqs[i], "event %zu", i);
		cr_assert_eq(events[i].addr, addrs[i], "event %zu: %#llx", i,
			     (unsigned long long)events[i].addr);
	}
	reports_capture_destroy(cap);
	enc_finish(&e);
}

/* Many threads' chunks interleaved in the file, each thread's seqs rising:
 * one pass merges them all, and passes can be open at once. */
Test(reports_reader, many_interleaved_chunks_merge_and_passes_are_independent)
{
	enum { THREADS = 7, CHUNKS = 5, PER = 40 };
	struct enc e;
	enc_init(&e);
	uint64_t seq = 1;
	uint64_t next[THREADS][CHUNKS][PER];
	/* deal the seqs round robin, then write each chunk in a scrambled order */
	for (int c = 0; c < CHUNKS; c++)
		for (int k = 0; k < PER; k++)
			for (int t = 0; t < THREADS; t++)
				next[t][c][k] = seq++;
	for (int c = 0; c < CHUNKS; c++) {
		for (int tt = 0; tt < THREADS; tt++) {
			int t = (tt * 3 + c) % THREADS;
			enc_chunk_begin(&e, (uint32_t)t + 1);
			for (int k = 0; k < PER; k++)
				enc_alloc(&e, next[t][c][k], 0x1000 * next[t][c][k], 16, 0);
			enc_chunk_end(&e);
		}
	}
	struct reports_capture *cap = load_ok(&e);
	cr_assert_eq(cap->n_events, THREADS * CHUNKS * PER);
	for (size_t i = 0; i < cap->n_events; i++)
		cr_assert_eq(events[i].seq, i + 1, "event %zu has seq %llu", i,
			     (unsigned long long)events[i].seq);
	struct reports_events *a, *b;
	struct reports_event ea, eb;
	cr_assert_eq(reports_events_open(cap, &a), 0);
	cr_assert_eq(reports_events_open(cap, &b), 0);
	cr_assert_eq(reports_events_next(a, &ea), 1);
	cr_assert_eq(reports_events_next(a, &ea), 1);
	cr_assert_eq(reports_events_next(b, &eb), 1);
	cr_assert_eq(ea.seq, 2);
	cr_assert_eq(eb.seq, 1);
	reports_events_close(a);
	reports_events_close(b);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

/* A capture rewritten after it was read: a pass says so (-EIO) instead of
 * reading garbage. */
Test(reports_reader, pass_over_a_file_changed_under_it_fails_cleanly)
{
	struct enc e;
	build_two_threads(&e);
	char path[] = "/tmp/memprof-test-reader-XXXXXX";
	int fd = temp_capture(&e, path);
	struct reports_capture *cap = NULL;
	struct reports_error err;
	cr_assert_eq(reports_capture_load_file(path, &cap, &err), 0, "%s", err.message);
	/* every byte after the header becomes a tag no record has */
	uint8_t *junk = malloc(e.len);
	memset(junk, 0xee, e.len);
	cr_assert_eq(pwrite(fd, junk, e.len - 16, 16), (ssize_t)(e.len - 16));
	close(fd);
	struct reports_events *it;
	struct reports_event ev;
	int r;
	cr_assert_eq(reports_events_open(cap, &it), 0);
	while ((r = reports_events_next(it, &ev)) > 0)
		;
	cr_assert_eq(r, -EIO);
	reports_events_close(it);
	reports_capture_destroy(cap);
	unlink(path);
	free(junk);
	enc_finish(&e);
}

/* Version 2: chunks whose records are compressed read as plain ones, and
 * merge with them by seq. */
Test(reports_reader, compressed_chunks_read_like_plain_ones)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_stack(&e, 1, 0, 0x1100);
	for (uint64_t s = 1; s <= 4000; s += 2)
		enc_alloc(&e, s, 0x10000 + 16 * s, 24, 1);
	enc_zchunk_end(&e);
	enc_chunk_begin(&e, 2);
	for (uint64_t s = 2; s <= 4000; s += 2)
		enc_free(&e, s, 0x10000 + 16 * (s - 1));
	enc_chunk_end(&e);
	enc_chunk_begin(&e, 1);
	enc_end(&e, 1000, 4001, CAPTURE_END_EXIT, 0, 0);
	enc_zchunk_end(&e);
	struct reports_capture *cap = load_ok(&e);
	cr_assert(cap->has_end);
	cr_assert_eq(cap->n_events, 4000);
	for (size_t i = 0; i < 4000; i++) {
		cr_assert_eq(events[i].seq, i + 1);
		cr_assert_eq(events[i].kind, i % 2 ? REPORTS_EVENT_FREE : REPORTS_EVENT_ALLOC);
		cr_assert_eq(events[i].addr, 0x10000 + 16 * (i + 1 - i % 2));
	}
	uint64_t ip;
	cr_assert_eq(reports_stack_ips(cap, events[0].stack, &ip, 1), 1);
	cr_assert_eq(ip, 0x1100);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

Test(reports_reader, damaged_compressed_chunk_is_an_error_at_its_offset)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	for (uint64_t s = 1; s <= 100; s++)
		enc_alloc(&e, s, 0x1000 * s, 8, 0);
	enc_zchunk_end(&e);
	size_t at = CAPTURE_HEADER_SIZE;
	/* a wrong length of records, with a checksum that matches */
	enc_put_u32_at(&e, at + CAPTURE_CHUNK_HEADER_SIZE, 99);
	enc_put_u32_at(&e, at + 12, capture_checksum(e.buf + at + CAPTURE_CHUNK_HEADER_SIZE,
						     e.len - at - CAPTURE_CHUNK_HEADER_SIZE));
	struct reports_error err;
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	cr_assert(strstr(err.message, "does not decompress"), "%s", err.message);
	cr_assert_eq(err.offset, at);
	/* more records than a compressed chunk may hold */
	enc_put_u32_at(&e, at + CAPTURE_CHUNK_HEADER_SIZE, CAPTURE_ZCHUNK_RAW_MAX + 1);
	enc_put_u32_at(&e, at + 12, capture_checksum(e.buf + at + CAPTURE_CHUNK_HEADER_SIZE,
						     e.len - at - CAPTURE_CHUNK_HEADER_SIZE));
	cr_assert_eq(load_err(&e, &err), -EINVAL);
	cr_assert(strstr(err.message, "at most"), "%s", err.message);
	enc_finish(&e);
}

/* Writes the capture to a new file named after the template src and
 * compresses it, as memprof run does, to src.z (dst). */
static void compress_temp(const struct enc *e, char *src, char *dst, size_t size)
{
	struct reports_error err;
	close(temp_capture(e, src));
	snprintf(dst, size, "%s.z", src);
	cr_assert_eq(reports_capture_compress(src, dst, &err), 0, "%s", err.message);
}

/* The events of the capture read plain (*n of them, the caller frees
 * them), then the capture compressed as compress_temp() does. */
static struct reports_event *plain_then_compressed(const struct enc *e, uint64_t *n, char *src,
						   char *dst, size_t size)
{
	struct reports_capture *cap = load_ok(e);
	struct reports_event *plain = events;
	events = NULL;
	*n = cap->n_events;
	reports_capture_destroy(cap);
	compress_temp(e, src, dst, size);
	return plain;
}

/* The first max bytes of the file at path (*len of them); the caller
 * frees them. */
static uint8_t *read_back(const char *path, size_t max, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f);
	uint8_t *data = malloc(max);
	cr_assert_not_null(data);
	*len = fread(data, 1, max, f);
	fclose(f);
	return data;
}

/* cap's events are plain[0, n): seq, address and size. */
static void assert_same_events(const struct reports_capture *cap,
			       const struct reports_event *plain, uint64_t n)
{
	cr_assert_eq(cap->n_events, n);
	struct reports_event *v = collect(cap);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(v[i].seq, plain[i].seq, "event %zu", i);
		cr_assert_eq(v[i].addr, plain[i].addr, "event %zu", i);
		cr_assert_eq(v[i].size, plain[i].size, "event %zu", i);
	}
	free(v);
}

/* Several threads' chunks, each thread's seqs rising, dealt round robin,
 * with thread 7's one long chunk (seqs across the whole capture) last:
 * enough records for several zgroups when compressed, a run open across
 * all of them. */
static void build_many_chunks(struct enc *e, uint64_t *n_events)
{
	enum { THREADS = 6, CHUNKS = 60, PER = 4000 };
	enc_init(e);
	enc_chunk_begin(e, 1);
	enc_stack(e, 1, 0, 0x4400);
	enc_chunk_end(e);
	uint64_t seq = 1;
	for (int c = 0; c < CHUNKS; c++) {
		for (int t = 0; t < THREADS; t++) {
			enc_chunk_begin(e, (uint32_t)t + 1);
			for (int k = 0; k < PER; k++, seq++) {
				if (k % 100 == 99)
					seq++; /* thread 7's */
				enc_alloc(e, seq, 0x100000 * (uint64_t)(t + 1) + 16 * seq, 8 + seq % 200,
					  1);
			}
			enc_chunk_end(e);
		}
	}
	enc_chunk_begin(e, 7);
	for (uint64_t s = 100; s < seq; s += 101)
		enc_free(e, s, 0x100000 + 16 * s);
	enc_chunk_end(e);
	enc_chunk_begin(e, 1);
	enc_end(e, 1000, seq, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(e);
	*n_events = 0;
	struct reports_capture *cap = load_ok(e);
	*n_events = cap->n_events;
	reports_capture_destroy(cap);
}

/* memprof run's rewrite: plain chunks gathered into zgroups, read back to
 * the same events in the same order, pass after pass. */
Test(reports_reader, compressed_groups_read_like_plain_chunks)
{
	struct enc e;
	uint64_t n;
	build_many_chunks(&e, &n);
	struct reports_event *plain = events;
	events = NULL;
	char src[] = "/tmp/memprof-test-group-XXXXXX", dst[sizeof(src) + 4];
	struct reports_error err;
	compress_temp(&e, src, dst, sizeof(dst));
	struct reports_capture *cap = NULL;
	cr_assert_eq(reports_capture_load_file(dst, &cap, &err), 0, "%s", err.message);
	cr_assert_eq(cap->n_events, n);
	/* version 4, zgroups only, several of them, much smaller */
	size_t len;
	uint8_t *data = read_back(dst, e.len, &len);
	cr_assert_eq(reports_le32(data + 8), CAPTURE_ZGROUP_VERSION);
	size_t groups = 0, raw = CAPTURE_HEADER_SIZE;
	for (size_t off = CAPTURE_HEADER_SIZE; off < len;) {
		cr_assert_eq(reports_le32(data + off), CAPTURE_ZGROUP_MAGIC, "at %zu", off);
		raw += reports_le32(data + off + CAPTURE_CHUNK_HEADER_SIZE);
		groups++;
		off += CAPTURE_CHUNK_HEADER_SIZE + reports_le32(data + off + 4);
	}
	cr_assert_eq(raw, e.len, "the groups hold every chunk");
	cr_assert_geq(groups, 5); /* more than the idle buffers a pass keeps */
	cr_assert_lt(len * 4, e.len);
	cr_assert_eq(cap->n_chunks, 6 * 60 + 3);
	for (int pass = 0; pass < 2; pass++) {
		struct reports_event *v = collect(cap);
		for (size_t i = 0; i < n; i++) {
			cr_assert_eq(v[i].seq, plain[i].seq, "pass %d event %zu", pass, i);
			cr_assert_eq(v[i].addr, plain[i].addr);
			cr_assert_eq(v[i].kind, plain[i].kind);
			cr_assert_eq(v[i].size, plain[i].size);
			cr_assert_eq(v[i].thread, plain[i].thread);
		}
		free(v);
	}
	/* compressing it again changes nothing */
	char again[sizeof(dst) + 2];
	snprintf(again, sizeof(again), "%s.z", dst);
	cr_assert_eq(reports_capture_compress(dst, again, &err), 0, "%s", err.message);
	FILE *f = fopen(again, "rb");
	uint8_t *data2 = malloc(len + 1);
	cr_assert_eq(fread(data2, 1, len + 1, f), len);
	fclose(f);
	cr_assert_eq(memcmp(data, data2, len), 0);
	reports_capture_destroy(cap);
	unlink(src);
	unlink(dst);
	unlink(again);
	free(data);
	free(data2);
	free(plain);
	enc_finish(&e);
}

/* Groups of events that do not repeat (random addresses and sizes) are
 * compressed with a small hash table after the first; the probe a few
 * groups on finds the repetitive events that follow and takes level 1's
 * table again: every group, whatever its table, reads back the same. */
Test(reports_reader, groups_that_do_not_repeat_read_back_the_same)
{
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_stack(&e, 1, 0, 0x4400);
	enc_chunk_end(&e);
	uint64_t seq = 1, x = 0x9e3779b97f4a7c15ull;
	size_t random_end = 0;
	while (e.len < (10u << 20)) {
		bool random = e.len < (6u << 20);
		enc_chunk_begin(&e, 1);
		for (int k = 0; k < 4000; k++, seq++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			if (random)
				enc_alloc(&e, seq, (x & 0x7ffffffff0ull) + 16, 1 + (x >> 40) % 4096, 1);
			else
				enc_alloc(&e, seq, 0x100000 + 16 * seq, 24, 1);
		}
		enc_chunk_end(&e);
		if (random)
			random_end = e.len;
	}
	enc_chunk_begin(&e, 1);
	enc_end(&e, 1000, seq, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(&e);
	char src[] = "/tmp/memprof-test-cheap-XXXXXX", dst[sizeof(src) + 4];
	struct reports_error err;
	uint64_t n;
	struct reports_event *plain = plain_then_compressed(&e, &n, src, dst, sizeof(dst));
	size_t len;
	uint8_t *data = read_back(dst, e.len, &len);
	/* every group compressed, the random ones too (their bytes' entropy
	 * coding), the repetitive ones at the end far more */
	size_t groups = 0, raw_at = CAPTURE_HEADER_SIZE, last_raw = 0, last_len = 0;
	for (size_t off = CAPTURE_HEADER_SIZE; off < len;) {
		cr_assert_eq(reports_le32(data + off), CAPTURE_ZGROUP_MAGIC, "at %zu", off);
		size_t flen = reports_le32(data + off + 4);
		last_raw = reports_le32(data + off + CAPTURE_CHUNK_HEADER_SIZE);
		last_len = flen;
		if (raw_at + last_raw <= random_end)
			cr_assert_lt(flen, last_raw, "group %zu", groups);
		raw_at += last_raw;
		groups++;
		off += CAPTURE_CHUNK_HEADER_SIZE + flen;
	}
	cr_assert_eq(raw_at, e.len);
	cr_assert_geq(groups, 10);
	cr_assert_lt(last_len * 20, last_raw);

	struct reports_capture *cap = NULL;
	cr_assert_eq(reports_capture_load_file(dst, &cap, &err), 0, "%s", err.message);
	assert_same_events(cap, plain, n);
	reports_capture_destroy(cap);
	unlink(src);
	unlink(dst);
	free(data);
	free(plain);
	enc_finish(&e);
}

/* A chunk too big for a group (over 1 MiB) stays where it was, between
 * the groups before and after it. */
Test(reports_reader, a_chunk_bigger_than_a_group_keeps_its_place)
{
	struct enc e;
	enc_init(&e);
	uint64_t seq = 1;
	for (int c = 0; c < 3; c++) {
		enc_chunk_begin(&e, (uint32_t)c + 1);
		/* the middle chunk: ~2.4 MiB of records */
		for (int k = 0; k < (c == 1 ? 400000 : 1000); k++, seq++)
			enc_alloc(&e, seq, 0x100000 * (uint64_t)(c + 1) + 16 * seq, 1 + seq % 3000, 0);
		enc_chunk_end(&e);
	}
	char src[] = "/tmp/memprof-test-group-XXXXXX", dst[sizeof(src) + 4];
	struct reports_error err;
	uint64_t n;
	struct reports_event *plain = plain_then_compressed(&e, &n, src, dst, sizeof(dst));
	struct reports_capture *cap = NULL;
	cr_assert_eq(reports_capture_load_file(dst, &cap, &err), 0, "%s", err.message);
	cr_assert_eq(cap->n_chunks, 3);
	assert_same_events(cap, plain, n);
	/* group, the big chunk as it was, group */
	size_t len;
	uint8_t *data = read_back(dst, e.len, &len);
	uint32_t magics[4] = { 0 };
	size_t k = 0;
	for (size_t off = CAPTURE_HEADER_SIZE; off < len && k < 4; k++) {
		magics[k] = reports_le32(data + off);
		off += CAPTURE_CHUNK_HEADER_SIZE + reports_le32(data + off + 4);
	}
	cr_assert_eq(k, 3);
	cr_assert_eq(magics[0], CAPTURE_ZGROUP_MAGIC);
	cr_assert_eq(magics[1], CAPTURE_CHUNK_MAGIC);
	cr_assert_eq(magics[2], CAPTURE_ZGROUP_MAGIC);
	reports_capture_destroy(cap);
	unlink(src);
	unlink(dst);
	free(data);
	free(plain);
	enc_finish(&e);
}

/* Version 3 records in version 4 captures: a rewrite of a version 2
 * capture keeps its version and makes zchunks, never zgroups. */
Test(reports_reader, version_2_captures_are_compressed_chunk_by_chunk)
{
	struct enc e;
	build_two_threads_version(&e, 2);
	char src[] = "/tmp/memprof-test-group-XXXXXX", dst[sizeof(src) + 4];
	struct reports_error err;
	compress_temp(&e, src, dst, sizeof(dst));
	FILE *f = fopen(dst, "rb");
	uint8_t head[CAPTURE_HEADER_SIZE + 4];
	cr_assert_eq(fread(head, 1, sizeof(head), f), sizeof(head));
	fclose(f);
	cr_assert_eq(reports_le32(head + 8), 2);
	cr_assert_neq(reports_le32(head + CAPTURE_HEADER_SIZE), CAPTURE_ZGROUP_MAGIC);
	struct reports_capture *cap = NULL;
	cr_assert_eq(reports_capture_load_file(dst, &cap, &err), 0, "%s", err.message);
	cr_assert_eq(cap->n_events, 6);
	reports_capture_destroy(cap);
	unlink(src);
	unlink(dst);
	enc_finish(&e);
}

/* A zgroup is whole plain chunks or corruption, each said at the group's
 * offset; and only version 4 has zgroups. */
Test(reports_reader, damaged_groups_are_errors_at_their_offset)
{
	struct enc e;
	struct reports_error err;
	size_t at = CAPTURE_HEADER_SIZE;
	const struct {
		int damage;
		const char *says;
	} cases[] = {
		{ 0, "bad chunk magic" },         /* a zgroup in a version 3 capture */
		{ 1, "ends inside a chunk header" },
		{ 2, "ends inside a chunk" },
		{ 3, "bad chunk magic 0x5a43504d in a compressed group" },
		{ 4, "checksum mismatch in a compressed group" },
		{ 5, "at most" },
		{ 6, "does not decompress" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enc_init_version(&e, cases[i].damage == 0 ? 3 : CAPTURE_VERSION);
		enc_chunk_begin(&e, 1);
		for (uint64_t s = 1; s <= 100; s++)
			enc_alloc(&e, s, 0x1000 * s, 8, 0);
		if (cases[i].damage == 3)
			enc_zchunk_end(&e);
		else
			enc_chunk_end(&e);
		if (cases[i].damage == 4)
			e.buf[e.len - 1] ^= 1;
		if (cases[i].damage == 1)
			enc_u32(&e, CAPTURE_CHUNK_MAGIC);
		if (cases[i].damage == 2)
			e.len -= 3;
		enc_group(&e, at);
		size_t raw_at = at + CAPTURE_CHUNK_HEADER_SIZE;
		if (cases[i].damage == 5 || cases[i].damage == 6) {
			uint32_t len = cases[i].damage == 5 ? CAPTURE_ZGROUP_RAW_MAX + 1
							    : reports_le32(e.buf + raw_at) - 1;
			enc_put_u32_at(&e, raw_at, len);
			enc_chunk_end(&e);
		}
		cr_assert_eq(load_err(&e, &err), -EINVAL, "case %zu", i);
		cr_assert(strstr(err.message, cases[i].says), "case %zu: %s", i, err.message);
		cr_assert_eq(err.offset, at, "case %zu", i);
		enc_finish(&e);
	}
	/* the same group whole: read */
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	for (uint64_t s = 1; s <= 100; s++)
		enc_alloc(&e, s, 0x1000 * s, 8, 0);
	enc_chunk_end(&e);
	enc_group(&e, at);
	struct reports_capture *cap = load_ok(&e);
	cr_assert_eq(cap->n_events, 100);
	cr_assert_eq(events[99].addr, 0x1000 * 100);
	reports_capture_destroy(cap);
	enc_finish(&e);
}

/* Version 1 wrote stack ids as they are (version 2 writes differences):
 * both read to the same events and stacks. */
Test(reports_reader, version_1_captures_read_like_version_2)
{
	struct enc e1, e2;
	build_two_threads_version(&e1, 1);
	build_two_threads_version(&e2, 2);
	cr_assert_neq(e1.len, 0);
	struct reports_capture *c1 = load_ok(&e1);
	struct reports_event *v1 = events;
	events = NULL;
	struct reports_capture *c2 = load_ok(&e2);
	cr_assert_eq(c1->n_events, c2->n_events);
	cr_assert_eq(c1->n_nodes, c2->n_nodes);
	for (size_t i = 0; i < c1->n_events; i++) {
		uint64_t a[8], b[8];
		cr_assert_eq(v1[i].seq, events[i].seq);
		cr_assert_eq(v1[i].addr, events[i].addr);
		size_t na = reports_stack_ips(c1, v1[i].stack, a, 8);
		size_t nb = reports_stack_ips(c2, events[i].stack, b, 8);
		cr_assert_eq(na, nb, "event %zu", i);
		cr_assert_arr_eq(a, b, na * sizeof(a[0]));
	}
	free(v1);
	reports_capture_destroy(c1);
	reports_capture_destroy(c2);
	enc_finish(&e1);
	enc_finish(&e2);
}

/* The event records' varints are read by reports_get_u64(), which skips
 * the bounds checks away from the end, and stepped over by
 * reports_skip_u64(): every length, overlong and malformed encodings,
 * near the end or not, read as capture_get_u64() reads them. */
Test(reports_reader, fast_varints_read_as_the_format_says)
{
	uint8_t enc[32][12];
	size_t n_enc = 0;
	/* canonical encodings of values of every length */
	for (unsigned bits = 0; bits <= 64; bits += 4) {
		uint64_t v = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
		size_t k = 0;
		do {
			enc[n_enc][k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
			v >>= 7;
		} while (v);
		memset(enc[n_enc] + k, 0x81, sizeof(enc[0]) - k); /* what follows */
		n_enc++;
	}
	/* overlong, a 10th byte above 1, 10 and 11 continuation bytes */
	memcpy(enc[n_enc++], "\x80\x80\x00\x05\x05\x05\x05\x05\x05\x05\x05\x05", 12);
	memcpy(enc[n_enc++], "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x05\x05", 12);
	memcpy(enc[n_enc++], "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x05", 12);
	memcpy(enc[n_enc++], "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 12);
	for (size_t i = 0; i < n_enc; i++) {
		for (size_t len = 0; len <= sizeof(enc[0]); len++) {
			const uint8_t *p1 = enc[i], *p2 = enc[i], *end = enc[i] + len;
			uint64_t v1 = 7, v2 = 7;
			int r1 = capture_get_u64(&p1, end, &v1);
			int r2 = reports_get_u64(&p2, end, &v2);
			cr_assert_eq(r1, r2, "encoding %zu, %zu bytes", i, len);
			cr_assert_eq(p1, p2, "encoding %zu, %zu bytes", i, len);
			const uint8_t *p3 = enc[i];
			cr_assert_eq(reports_skip_u64(&p3, end), r1, "encoding %zu, %zu bytes", i, len);
			if (r1 == 0)
				cr_assert_eq(p3, p1, "encoding %zu, %zu bytes", i, len);
			cr_assert_eq(v1, v2, "encoding %zu, %zu bytes", i, len);
		}
	}
	/* random bytes, their continuation bits cleared from byte k on:
	 * every length with every bit pattern in its groups */
	uint64_t x = 0x9e3779b97f4a7c15u;
	for (unsigned round = 0; round < 200000; round++) {
		uint8_t b[12];
		for (size_t j = 0; j < sizeof(b); j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			b[j] = (uint8_t)(x >> 24);
		}
		unsigned k = round % 12;
		b[k] &= 0x7f;
		for (size_t j = 0; j < k; j++)
			b[j] |= 0x80;
		const uint8_t *p1 = b, *p2 = b;
		uint64_t v1 = 7, v2 = 7;
		int r1 = capture_get_u64(&p1, b + sizeof(b), &v1);
		int r2 = reports_get_u64(&p2, b + sizeof(b), &v2);
		cr_assert_eq(r1, r2, "round %u", round);
		cr_assert_eq(p1, p2, "round %u", round);
		const uint8_t *p3 = b;
		cr_assert_eq(reports_skip_u64(&p3, b + sizeof(b)), r1, "round %u", round);
		if (r1 == 0)
			cr_assert_eq(p3, p1, "round %u", round);
		cr_assert_eq(v1, v2, "round %u", round);
	}
}
