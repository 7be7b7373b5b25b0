/*
 * test-reports-follow.c: a capture read while it is written
 * (reports_capture_follow, reports_analysis_prepass): a thread appends the
 * chunks of a capture to a file bit by bit, FLUSHED records among them,
 * while the analysis follows it; the result must be what the analysis of
 * the whole file gives.  Also: a capture that breaks FLUSHED's promise, one
 * cut short, and a file that never becomes a capture.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "reports-encode.h"
#include "reports.h"

#define PIECES_MAX 64

/* A capture and where it may be cut when written bit by bit. */
struct staged {
	struct enc e;
	size_t cut[PIECES_MAX];
	size_t n_cut;
	char path[64];
	struct reports_capture *cap; /* the follower's */
	atomic_ulong *taken;         /* events the reader took, or NULL */
	size_t wait_piece;           /* before writing this piece... */
	unsigned long wait_taken;    /* ...wait until the reader took these */
	atomic_bool written;         /* the writer is done */
};

static void cut_here(struct staged *s)
{
	cr_assert_lt(s->n_cut, PIECES_MAX);
	s->cut[s->n_cut++] = s->e.len;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void *writer(void *arg)
{
	struct staged *s = arg;
	FILE *f = fopen(s->path, "ab");
	cr_assert_not_null(f);
	size_t from = 0;
	for (size_t i = 0; i <= s->n_cut; i++) {
		size_t to = i < s->n_cut ? s->cut[i] : s->e.len;
		if (s->taken && i == s->wait_piece)
			while (atomic_load(s->taken) < s->wait_taken)
				sleep_ms(1);
		fwrite(s->e.buf + from, 1, to - from, f);
		fflush(f);
		from = to;
		sleep_ms(3);
	}
	fclose(f);
	atomic_store(&s->written, true);
	if (s->cap)
		reports_capture_follow_end(s->cap);
	return NULL;
}

/* The empty file the writer will fill (mkstemp's template). */
static void staged_file(struct staged *s)
{
	snprintf(s->path, sizeof(s->path), "/tmp/memprof-follow-XXXXXX");
	int fd = mkstemp(s->path);
	cr_assert_geq(fd, 0);
	close(fd);
}

static void staged_open(struct staged *s)
{
	staged_file(s);
	struct reports_error err;
	cr_assert_eq(reports_capture_follow(s->path, &s->cap, &err), 0, "%s", err.message);
}

/* Follows the staged capture while a thread writes it; the prepass's
 * status. */
static int follow_all(struct staged *s)
{
	staged_open(s);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, writer, s), 0);
	int res = reports_analysis_prepass(s->cap);
	pthread_join(t, NULL);
	return res;
}

static void staged_finish(struct staged *s)
{
	reports_capture_destroy(s->cap);
	unlink(s->path);
	enc_finish(&s->e);
}

static void same_stack(const struct reports_capture *a, uint32_t sa,
		       const struct reports_capture *b, uint32_t sb)
{
	uint64_t x[16], y[16];
	size_t n = reports_stack_ips(a, sa, x, 16), m = reports_stack_ips(b, sb, y, 16);
	cr_assert_eq(n, m);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(x[i], y[i]);
}

/* Everything the analysis found is the same for both captures. */
static void same_analysis(const struct reports_capture *ca, const struct reports_capture *cb)
{
	struct reports_analysis *a = reports_analysis_run(ca, NULL);
	struct reports_analysis *b = reports_analysis_run(cb, NULL);
	cr_assert_not_null(a);
	cr_assert_not_null(b);
	cr_assert_eq(memcmp(&a->totals, &b->totals, sizeof(a->totals)), 0);
	cr_assert_eq(a->unmatched_frees, b->unmatched_frees);
	cr_assert_eq(a->n_sites, b->n_sites);
	for (size_t i = 0; i < a->n_sites; i++) {
		const struct reports_site *x = &a->sites[i], *y = &b->sites[i];
		same_stack(ca, x->stack, cb, y->stack);
		cr_assert_eq(x->allocations, y->allocations, "site %zu", i);
		cr_assert_eq(x->bytes, y->bytes, "site %zu", i);
		cr_assert_eq(x->peak_bytes, y->peak_bytes, "site %zu", i);
		cr_assert_eq(x->leaked_bytes, y->leaked_bytes, "site %zu", i);
		cr_assert_eq(x->leaked_blocks, y->leaked_blocks, "site %zu", i);
		cr_assert_eq(x->temporary, y->temporary, "site %zu", i);
	}
	cr_assert_eq(a->n_leak_blocks, b->n_leak_blocks);
	for (size_t i = 0; i < a->n_leak_blocks; i++) {
		const struct reports_leak_block *x = &a->leak_blocks[i], *y = &b->leak_blocks[i];
		cr_assert_eq(x->addr, y->addr);
		cr_assert_eq(x->size, y->size);
		cr_assert_eq(x->kind, y->kind);
		same_stack(ca, x->stack, cb, y->stack);
	}
	cr_assert_eq(ca->n_nodes, cb->n_nodes);
	cr_assert_eq(ca->incomplete, cb->incomplete);
	cr_assert_eq(ca->truncated, cb->truncated);
	cr_assert_eq(ca->n_samples, cb->n_samples);
	reports_analysis_destroy(a);
	reports_analysis_destroy(b);
}

static struct reports_capture *load_whole(const struct enc *e)
{
	struct reports_capture *cap = NULL;
	struct reports_error err;
	cr_assert_eq(reports_capture_load_buffer(e->buf, e->len, &cap, &err), 0, "%s",
		     err.message);
	return cap;
}

static void flushed(struct staged *s, uint64_t seq)
{
	enc_chunk_begin(&s->e, 0);
	enc_tag(&s->e, CAPTURE_FLUSHED);
	enc_u(&s->e, seq);
	enc_chunk_end(&s->e);
	cut_here(s);
}

/*
 * Two threads.  Thread 2 describes the same stacks as thread 1 under ids
 * of its own (one canonical stack, two raw ones: one site), uses a node
 * thread 1 describes only later, frees thread 1's blocks, reallocs in
 * place; a free of an address never allocated; a scan at exit.  With
 * complete = false the last chunk is cut short (the program was killed).
 */
static void build(struct staged *s, bool complete)
{
	struct enc *e = &s->e;
	enc_init(e);
	enc_chunk_begin(e, 1);
	enc_process(e, 42, 0, NULL);
	enc_stack(e, 1, 0, 0xa);
	enc_stack(e, 2, 1, 0xb);
	enc_alloc(e, 1, 0x1000, 100, 2);
	enc_alloc(e, 2, 0x2000, 50, 2);
	enc_alloc(e, 4, 0x3000, 30, 1);
	enc_chunk_end(e);
	cut_here(s);
	enc_chunk_begin(e, 2);
	enc_stack(e, 10, 0, 0xa);
	enc_stack(e, 11, 10, 0xb);
	enc_alloc(e, 3, 0x5000, 70, 11);
	enc_free(e, 5, 0x1000);
	enc_alloc(e, 6, 0x6000, 10, 20); /* node 20: thread 1 describes it below */
	enc_chunk_end(e);
	/* a chunk written in two parts: its header first */
	s->cut[s->n_cut++] = e->len - 20;
	cut_here(s);
	enc_chunk_begin(e, 1);
	enc_stack(e, 20, 2, 0xc);
	enc_alloc(e, 7, 0x7000, 5, 20);
	enc_sample(e, 1000, 7);
	enc_chunk_end(e);
	cut_here(s);
	flushed(s, 8);
	enc_chunk_begin(e, 2);
	enc_alloc(e, 8, 0x8000, 1000, 11);
	enc_free(e, 9, 0x8000);
	enc_alloc(e, 10, 0x2000, 60, 11); /* a realloc in place of 0x2000 */
	enc_free(e, 11, 0x2000);          /* frees the oldest: the 50 bytes */
	enc_chunk_end(e);
	cut_here(s);
	enc_chunk_begin(e, 1);
	enc_alloc(e, 12, 0x9000, 20, 2);
	enc_free(e, 13, 0xdead);
	for (uint64_t i = 0; i < 40; i++)
		enc_alloc(e, 14 + 2 * i, 0x10000 + 64 * i, 8 + i, i % 2 ? 2 : 20);
	enc_sample(e, 2000, 90);
	enc_chunk_end(e);
	cut_here(s);
	enc_chunk_begin(e, 2);
	for (uint64_t i = 0; i < 40; i++)
		enc_free(e, 15 + 2 * i, 0x10000 + 64 * i);
	enc_chunk_end(e);
	cut_here(s);
	flushed(s, 95);
	enc_chunk_begin(e, 1);
	enc_scan(e, 3, 0);
	enc_scanblock(e, 0x9000, 20, 2, 12, CAPTURE_LEAK_DEFINITE, 0);
	enc_scanblock(e, 0x3000, 30, 1, 4, CAPTURE_LEAK_REACHABLE, 0);
	enc_scanblock(e, 0x6000, 10, 20, 6, CAPTURE_LEAK_POSSIBLE, 0);
	enc_end(e, 5000, 100, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(e);
	if (!complete)
		e->len -= 7;
}

Test(reports_follow, a_capture_read_as_it_is_written_analyses_as_the_whole_file)
{
	struct staged s = { 0 };
	build(&s, true);
	cr_assert_eq(follow_all(&s), 0);
	struct reports_capture *whole = load_whole(&s.e);
	cr_assert(!s.cap->incomplete);
	cr_assert_eq(s.cap->n_events, whole->n_events);
	same_analysis(s.cap, whole);
	/* later passes over the followed capture see canonical stacks too */
	same_analysis(s.cap, whole);
	reports_capture_destroy(whole);
	staged_finish(&s);
}

/*
 * Many stacks: 24,000 nodes of a binary tree described in six parts,
 * several of the follower's blocks of raw slots (which it frees as their
 * slots resolve), allocations on a quarter of them.  Thread 2 allocates on
 * stacks of the next part before thread 1 describes them (resolution
 * waits there), and describes the first part's nodes again under ids of
 * its own (the same canonical stacks).
 */
static void build_many(struct staged *s)
{
	enum { PARTS = 6, PER = 4000 };
	struct enc *e = &s->e;
	enc_init(e);
	enc_chunk_begin(e, 1);
	enc_process(e, 42, 0, NULL);
	enc_chunk_end(e);
	uint64_t seq = 1;
	for (uint64_t part = 0; part < PARTS; part++) {
		enc_chunk_begin(e, 1);
		for (uint64_t i = 0; i < PER; i++) {
			uint64_t id = part * PER + i + 1;
			enc_stack(e, id, id / 2, 0x1000 + id % 97);
			if (i % 4 == 0)
				enc_alloc(e, seq++, 0x100000 + 32 * id, 16 + id % 200, id);
		}
		enc_chunk_end(e);
		cut_here(s);
		enc_chunk_begin(e, 2);
		for (uint64_t i = 0; i < 50; i++) {
			uint64_t id = (part + 1) * PER + 1 + 7 * i; /* not described yet */
			if (part + 1 < PARTS)
				enc_alloc(e, seq++, 0x900000 + 32 * (part * 50 + i), 8, id);
			enc_free(e, seq++, 0x100000 + 32 * (part * PER + 1 + 4 * i));
		}
		if (part == 2)
			for (uint64_t id = 1; id <= 300; id++) {
				/* thread 2's ids for thread 1's first nodes */
				enc_stack(e, 100000 + id, id == 1 ? 0 : 100000 + id / 2,
					  0x1000 + id % 97);
				enc_alloc(e, seq++, 0xa00000 + 32 * id, 24, 100000 + id);
			}
		enc_chunk_end(e);
		cut_here(s);
		flushed(s, seq);
	}
	enc_chunk_begin(e, 1);
	enc_end(e, 5000, seq, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(e);
}

Test(reports_follow, many_stacks_followed_analyse_as_the_whole_file)
{
	struct staged s = { 0 };
	build_many(&s);
	cr_assert_eq(follow_all(&s), 0);
	struct reports_capture *whole = load_whole(&s.e);
	cr_assert_geq(whole->n_nodes, 24000);
	same_analysis(s.cap, whole);
	reports_capture_destroy(whole);
	staged_finish(&s);
}

Test(reports_follow, a_capture_cut_short_is_incomplete_as_the_whole_file)
{
	struct staged s = { 0 };
	build(&s, false);
	cr_assert_eq(follow_all(&s), 0);
	struct reports_capture *whole = load_whole(&s.e);
	cr_assert(s.cap->incomplete);
	cr_assert(s.cap->truncated);
	cr_assert_eq(s.cap->truncated_at, whole->truncated_at);
	same_analysis(s.cap, whole);
	reports_capture_destroy(whole);
	staged_finish(&s);
}

/* An event below a FLUSHED the merge already went past: the pass gives up
 * (memprof run then reads the file again) rather than count it late. */
Test(reports_follow, a_late_event_below_a_flushed_seq_is_refused)
{
	struct staged s = { 0 };
	atomic_ulong taken = 0;
	struct enc *e = &s.e;
	enc_init(e);
	enc_chunk_begin(e, 1);
	enc_stack(e, 1, 0, 0xa);
	for (uint64_t i = 1; i <= 4; i++)
		enc_alloc(e, i, 0x1000 * i, 16, 1);
	enc_chunk_end(e);
	cut_here(&s);
	flushed(&s, 10);
	enc_chunk_begin(e, 2);
	enc_alloc(e, 5, 0x9000, 16, 1); /* below 10, after FLUSHED 10 */
	enc_chunk_end(e);
	s.taken = &taken;
	s.wait_piece = 2; /* written once the four events before were taken */
	s.wait_taken = 4;
	staged_open(&s);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, writer, &s), 0);
	struct reports_events *it;
	cr_assert_eq(reports_events_open(s.cap, &it), 0);
	struct reports_event ev;
	int res;
	while ((res = reports_events_next(it, &ev)) > 0)
		atomic_fetch_add(&taken, 1);
	pthread_join(t, NULL);
	cr_assert_eq(res, -EAGAIN);
	cr_assert_eq(atomic_load(&taken), 4);
	reports_events_close(it);
	staged_finish(&s);
}

Test(reports_follow, a_file_that_never_becomes_a_capture_is_an_error)
{
	struct staged s = { 0 };
	enc_bytes(&s.e, "not a capture at all, not at all", 32);
	cr_assert_lt(follow_all(&s), 0);
	staged_finish(&s);
	struct staged empty = { 0 };
	cr_assert_lt(follow_all(&empty), 0);
	staged_finish(&empty);
}

/* Without FLUSHED records (a capture of an older tracer) nothing is final
 * before the end: the whole pass happens then, with the same result. */
Test(reports_follow, a_capture_without_flushed_records_is_analysed_at_its_end)
{
	struct staged s = { 0 };
	struct enc *e = &s.e;
	enc_init_version(e, 2);
	enc_chunk_begin(e, 1);
	enc_stack(e, 1, 0, 0xa);
	enc_alloc(e, 1, 0x1000, 16, 1);
	enc_alloc(e, 2, 0x2000, 32, 1);
	enc_chunk_end(e);
	cut_here(&s);
	enc_chunk_begin(e, 1);
	enc_free(e, 3, 0x1000);
	enc_end(e, 100, 4, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(e);
	cr_assert_eq(follow_all(&s), 0);
	struct reports_capture *whole = load_whole(&s.e);
	same_analysis(s.cap, whole);
	reports_capture_destroy(whole);
	staged_finish(&s);
}

/* FLUSHED is a version 3 record: read (and passed over) in one, corruption
 * in a version 2 capture. */
Test(reports_follow, flushed_is_read_in_version_3_only)
{
	for (uint32_t version = 2; version <= 3; version++) {
		struct enc e;
		enc_init_version(&e, version);
		enc_chunk_begin(&e, 1);
		enc_stack(&e, 1, 0, 0xa);
		enc_alloc(&e, 1, 0x1000, 16, 1);
		enc_chunk_end(&e);
		enc_chunk_begin(&e, 0);
		enc_tag(&e, CAPTURE_FLUSHED);
		enc_u(&e, 2);
		enc_chunk_end(&e);
		struct reports_capture *cap = NULL;
		struct reports_error err;
		int r = reports_capture_load_buffer(e.buf, e.len, &cap, &err);
		if (version == 2) {
			cr_assert_eq(r, -EINVAL);
			cr_assert(strstr(err.message, "FLUSHED") != NULL, "%s", err.message);
		} else {
			cr_assert_eq(r, 0, "%s", err.message);
			cr_assert_eq(cap->n_events, 1);
			reports_capture_destroy(cap);
		}
		enc_finish(&e);
	}
}

static bool written(void *arg)
{
	return atomic_load(&((struct staged *)arg)->written);
}

/* memprof run compresses the capture as it is written: the result reads
 * as the whole plain file, cut short or not. */
Test(reports_follow, a_capture_compressed_as_it_is_written_reads_as_the_plain_file)
{
	for (int complete = 0; complete <= 1; complete++) {
		struct staged s = { 0 };
		build(&s, complete);
		staged_file(&s);
		char dst[80];
		snprintf(dst, sizeof(dst), "%s.z", s.path);
		unlink(dst);
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, writer, &s), 0);
		struct reports_error err;
		int res = reports_capture_compress_follow(s.path, dst, written, &s, &err);
		pthread_join(t, NULL);
		cr_assert_eq(res, 0, "%s", err.message);
		struct reports_capture *packed = NULL, *whole = load_whole(&s.e);
		cr_assert_eq(reports_capture_load_file(dst, &packed, &err), 0, "%s", err.message);
		cr_assert_eq(packed->n_events, whole->n_events);
		same_analysis(packed, whole);
		reports_capture_destroy(packed);
		reports_capture_destroy(whole);
		unlink(dst);
		staged_finish(&s);
	}
}
