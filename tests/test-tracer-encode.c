/*
 * test-tracer-encode.c: the tracer's record encoder against capture.h's
 * decoding helpers: every record kind written and read back field by
 * field, the per-chunk deltas, string limits, and the file and chunk
 * headers.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"

/* A minimal reader over capture.h's helpers. */
struct rd {
	const uint8_t *p, *end;
};

static uint64_t u(struct rd *r)
{
	uint64_t v = 0;
	cr_assert_eq(capture_get_u64(&r->p, r->end, &v), 0, "truncated varint");
	return v;
}

static int64_t s(struct rd *r)
{
	return capture_unzigzag(u(r));
}

static size_t str(struct rd *r, char *out, size_t cap)
{
	uint64_t len = u(r);
	cr_assert_leq(len, (uint64_t)(r->end - r->p));
	cr_assert_lt(len, cap);
	memcpy(out, r->p, len);
	out[len] = '\0';
	r->p += len;
	return len;
}

static uint8_t tag(struct rd *r)
{
	cr_assert_lt(r->p, r->end);
	return *r->p++;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

Test(tracer_encode, file_and_chunk_headers_follow_the_format)
{
	uint8_t h[CAPTURE_HEADER_SIZE];
	cr_assert_eq(record_file_header_put(h), CAPTURE_HEADER_SIZE);
	cr_assert_eq(memcmp(h, CAPTURE_MAGIC, CAPTURE_MAGIC_LEN), 0);
	cr_assert_eq(le32(h + 8), CAPTURE_VERSION);
	cr_assert_eq(le32(h + 12), CAPTURE_HEADER_SIZE);

	uint8_t payload[100];
	for (unsigned i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	uint8_t ch[CAPTURE_CHUNK_HEADER_SIZE];
	record_chunk_header_put(ch, payload, sizeof(payload), 4242);
	cr_assert_eq(le32(ch), CAPTURE_CHUNK_MAGIC);
	cr_assert_eq(le32(ch + 4), sizeof(payload));
	cr_assert_eq(le32(ch + 8), 4242);
	cr_assert_eq(le32(ch + 12), capture_checksum(payload, sizeof(payload)));
}

Test(tracer_encode, alloc_and_free_round_trip_with_deltas)
{
	enum { N = 2000 };
	static uint8_t buf[N * RECORD_ALLOC_MAX];
	static uint64_t seqs[N], addrs[N], sizes[N], stacks[N];
	static int kinds[N];
	struct record_deltas d;
	record_deltas_reset(&d);
	srand(12345);
	uint64_t seq = 1;
	size_t n = 0;
	for (int i = 0; i < N; i++) {
		seq += (uint64_t)(rand() % 5);
		seqs[i] = seq;
		/* addresses go up and down, far and near */
		addrs[i] = (uint64_t)rand() * (i % 3 == 0 ? 4096u : 16u) + (i % 7 == 0 ? (1ull << 46) : 0);
		sizes[i] = (uint64_t)rand() % (i % 11 == 0 ? 1u << 30 : 600u);
		stacks[i] = (uint64_t)rand() % 100000;
		kinds[i] = rand() % 2;
		if (kinds[i])
			n += record_free_put(buf + n, &d, seqs[i], addrs[i]);
		else
			n += record_alloc_put(buf + n, &d, seqs[i], addrs[i], sizes[i], stacks[i]);
	}
	struct rd r = { buf, buf + n };
	uint64_t prev_seq = 0, prev_addr = 0, prev_stack = 0;
	for (int i = 0; i < N; i++) {
		uint8_t t = tag(&r);
		cr_assert_eq(t, kinds[i] ? CAPTURE_FREE : CAPTURE_ALLOC);
		prev_seq += u(&r);
		prev_addr += (uint64_t)s(&r);
		cr_assert_eq(prev_seq, seqs[i]);
		cr_assert_eq(prev_addr, addrs[i]);
		if (!kinds[i]) {
			cr_assert_eq(u(&r), sizes[i]);
			prev_stack += (uint64_t)s(&r); /* version 2: a delta */
			cr_assert_eq(prev_stack, stacks[i]);
		}
	}
	cr_assert_eq(r.p, r.end);
}

Test(tracer_encode, deltas_restart_from_zero_after_a_reset)
{
	uint8_t buf[2 * RECORD_ALLOC_MAX];
	struct record_deltas d;
	record_deltas_reset(&d);
	record_alloc_put(buf, &d, 1000, 0x7f0000001000, 16, 1);
	record_deltas_reset(&d);
	size_t n = record_free_put(buf, &d, 1001, 0x7f0000001000);
	struct rd r = { buf, buf + n };
	cr_assert_eq(tag(&r), CAPTURE_FREE);
	cr_assert_eq(u(&r), 1001);
	cr_assert_eq(s(&r), 0x7f0000001000);
}

Test(tracer_encode, every_other_record_reads_back)
{
	static uint8_t buf[1 << 16];
	size_t n = 0;
	const uint8_t bid[] = { 0xde, 0xad, 0xbe, 0xef, 0x01 };
	struct pool_stats st;
	memset(&st, 0, sizeof(st));
	for (unsigned i = 0; i < POOL_NUM_CLASSES; i++) {
		st.classes[i].block_size = pool_class_size(i);
		st.classes[i].pools = i;
		st.classes[i].blocks_in_use = i * 3;
		st.classes[i].blocks_available = i * 5 + 1;
	}
	st.arenas_allocated = 7;
	st.arenas_reclaimed = 2;
	st.arenas_highwater = 5;
	st.bytes_quantization = 123;
	st.bytes_pool_headers = 456;
	st.bytes_empty_pools = 789;
	st.large_blocks = 11;
	st.large_bytes = 1 << 20;

	struct record_deltas d;
	record_deltas_reset(&d);
	n += record_stack_put(buf + n, &d, 17, 3, 0x401234);
	n += record_stack_put(buf + n, &d, 18, 17, 0x401200);
	n += record_module_put(buf + n, 2, 0x7f00, 0x7f1000, 0x7f9000, "/lib/libx.so", 12, bid,
			       sizeof(bid));
	n += record_unload_put(buf + n, 2, 99);
	n += record_sample_put(buf + n, 10000000, 55, 1 << 22, 1 << 21, 12345);
	n += record_thread_put(buf + n, 4321, 7, 1, "worker-1", 8);
	n += record_badfree_put(buf + n, 77, CAPTURE_BADFREE_DOUBLE, 0x5000, 9, 8, 6);
	n += record_stats_put(buf + n, &st);
	n += record_note_put(buf + n, 80, 1, "disk full", 9);
	n += record_lost_put(buf + n, 3);
	n += record_scan_put(buf + n, 2, 1, CAPTURE_SCAN_AT_EXIT);
	n += record_scanblock_put(buf + n, 0x9000, 48, 17, 12, CAPTURE_LEAK_INDIRECT, 0x8000);
	n += record_scanedge_put(buf + n, 0x8000, 8, 0x9000);
	n += record_end_put(buf + n, 20000000, 100, CAPTURE_END_SIGNAL, 0, 11);

	struct rd r = { buf, buf + n };
	char sb[RECORD_PATH_MAX + 1];
	/* version 2: id - previous id, id - parent, ip - previous ip */
	cr_assert_eq(tag(&r), CAPTURE_STACK);
	cr_assert_eq(s(&r), 17);
	cr_assert_eq(s(&r), 14);
	cr_assert_eq(s(&r), 0x401234);
	cr_assert_eq(tag(&r), CAPTURE_STACK);
	cr_assert_eq(s(&r), 1);
	cr_assert_eq(s(&r), 1);
	cr_assert_eq(s(&r), -0x34);

	cr_assert_eq(tag(&r), CAPTURE_MODULE);
	cr_assert_eq(u(&r), 2);
	cr_assert_eq(u(&r), 0x7f00);
	cr_assert_eq(u(&r), 0x7f1000);
	cr_assert_eq(u(&r), 0x7f9000);
	str(&r, sb, sizeof(sb));
	cr_assert_str_eq(sb, "/lib/libx.so");
	cr_assert_eq(str(&r, sb, sizeof(sb)), sizeof(bid));
	cr_assert_eq(memcmp(sb, bid, sizeof(bid)), 0);

	cr_assert_eq(tag(&r), CAPTURE_UNLOAD);
	cr_assert_eq(u(&r), 2);
	cr_assert_eq(u(&r), 99);

	cr_assert_eq(tag(&r), CAPTURE_SAMPLE);
	cr_assert_eq(u(&r), 10000000);
	cr_assert_eq(u(&r), 55);
	cr_assert_eq(u(&r), 1 << 22);
	cr_assert_eq(u(&r), 1 << 21);
	cr_assert_eq(u(&r), 12345);

	cr_assert_eq(tag(&r), CAPTURE_THREAD);
	cr_assert_eq(u(&r), 4321);
	cr_assert_eq(u(&r), 7);
	cr_assert_eq(u(&r), 1);
	str(&r, sb, sizeof(sb));
	cr_assert_str_eq(sb, "worker-1");

	cr_assert_eq(tag(&r), CAPTURE_BADFREE);
	cr_assert_eq(u(&r), 77);
	cr_assert_eq(u(&r), CAPTURE_BADFREE_DOUBLE);
	cr_assert_eq(u(&r), 0x5000);
	cr_assert_eq(u(&r), 9);
	cr_assert_eq(u(&r), 8);
	cr_assert_eq(u(&r), 6);

	cr_assert_eq(tag(&r), CAPTURE_STATS);
	cr_assert_eq(u(&r), POOL_NUM_CLASSES);
	for (unsigned i = 0; i < POOL_NUM_CLASSES; i++) {
		cr_assert_eq(u(&r), pool_class_size(i));
		cr_assert_eq(u(&r), i);
		cr_assert_eq(u(&r), i * 3);
		cr_assert_eq(u(&r), i * 5 + 1);
	}
	cr_assert_eq(u(&r), 7);
	cr_assert_eq(u(&r), 2);
	cr_assert_eq(u(&r), 5);
	cr_assert_eq(u(&r), 123);
	cr_assert_eq(u(&r), 456);
	cr_assert_eq(u(&r), 789);
	cr_assert_eq(u(&r), 11);
	cr_assert_eq(u(&r), 1 << 20);

	cr_assert_eq(tag(&r), CAPTURE_NOTE);
	cr_assert_eq(u(&r), 80);
	cr_assert_eq(u(&r), 1);
	str(&r, sb, sizeof(sb));
	cr_assert_str_eq(sb, "disk full");

	cr_assert_eq(tag(&r), CAPTURE_LOST);
	cr_assert_eq(u(&r), 3);

	cr_assert_eq(tag(&r), CAPTURE_SCAN);
	cr_assert_eq(u(&r), 2);
	cr_assert_eq(u(&r), 1);
	cr_assert_eq(u(&r), CAPTURE_SCAN_AT_EXIT);

	cr_assert_eq(tag(&r), CAPTURE_SCANBLOCK);
	cr_assert_eq(u(&r), 0x9000);
	cr_assert_eq(u(&r), 48);
	cr_assert_eq(u(&r), 17);
	cr_assert_eq(u(&r), 12);
	cr_assert_eq(u(&r), CAPTURE_LEAK_INDIRECT);
	cr_assert_eq(u(&r), 0x8000);

	cr_assert_eq(tag(&r), CAPTURE_SCANEDGE);
	cr_assert_eq(u(&r), 0x8000);
	cr_assert_eq(u(&r), 8);
	cr_assert_eq(u(&r), 0x9000);

	cr_assert_eq(tag(&r), CAPTURE_END);
	cr_assert_eq(u(&r), 20000000);
	cr_assert_eq(u(&r), 100);
	cr_assert_eq(u(&r), CAPTURE_END_SIGNAL);
	cr_assert_eq(u(&r), 0);
	cr_assert_eq(u(&r), 11);
	cr_assert_eq(r.p, r.end);
}

Test(tracer_encode, records_stay_within_their_maximum_size)
{
	static uint8_t buf[RECORD_MODULE_MAX + 64];
	static char path[RECORD_PATH_MAX * 2];
	memset(path, 'p', sizeof(path));
	uint8_t bid[RECORD_BUILD_ID_MAX * 2];
	memset(bid, 0xab, sizeof(bid));
	size_t n = record_module_put(buf, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, path,
				     sizeof(path), bid, sizeof(bid));
	cr_assert_leq(n, RECORD_MODULE_MAX);
	struct rd r = { buf, buf + n };
	cr_assert_eq(tag(&r), CAPTURE_MODULE);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(u(&r), UINT64_MAX);
	static char sb[RECORD_PATH_MAX * 2];
	cr_assert_eq(str(&r, sb, sizeof(sb)), RECORD_PATH_MAX, "path cut at its limit");
	cr_assert_eq(str(&r, sb, sizeof(sb)), RECORD_BUILD_ID_MAX);

	struct record_deltas d = { .prev_seq = 0, .prev_addr = UINT64_MAX };
	cr_assert_leq(record_alloc_put(buf, &d, UINT64_MAX, 0, UINT64_MAX, UINT64_MAX),
		      RECORD_ALLOC_MAX);
	cr_assert_leq(record_end_put(buf, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX,
				     UINT64_MAX),
		      RECORD_END_MAX);
	struct pool_stats st;
	memset(&st, 0xff, sizeof(st));
	cr_assert_leq(record_stats_put(buf, &st), RECORD_STATS_MAX);
}

Test(tracer_encode, process_splits_cmdline_into_arguments)
{
	const char args[] = "prog\0-x\0\0last";
	/* "last" has no NUL: /proc/self/cmdline cut short still gives it */
	size_t args_len = sizeof(args) - 1;
	static uint8_t buf[512];
	size_t max = record_process_max(9, args_len, 4);
	size_t n = record_process_put(buf, 100, 1, 123456789, "/bin/prog", 9, args, args_len,
				      CAPTURE_PROCESS_FORKED);
	cr_assert_leq(n, max);
	struct rd r = { buf, buf + n };
	char sb[64];
	cr_assert_eq(tag(&r), CAPTURE_PROCESS);
	cr_assert_eq(u(&r), 100);
	cr_assert_eq(u(&r), 1);
	cr_assert_eq(u(&r), 123456789);
	str(&r, sb, sizeof(sb));
	cr_assert_str_eq(sb, "/bin/prog");
	cr_assert_eq(u(&r), 4);
	const char *want[] = { "prog", "-x", "", "last" };
	for (int i = 0; i < 4; i++) {
		str(&r, sb, sizeof(sb));
		cr_assert_str_eq(sb, want[i]);
	}
	cr_assert_eq(u(&r), CAPTURE_PROCESS_FORKED);
	cr_assert_eq(r.p, r.end);
}

/* The byte loop that defines capture_checksum (capture.h), with nothing
 * clever in it. */
static uint32_t checksum_reference(const uint8_t *p, size_t n)
{
	uint64_t a = 1, b = 0;
	for (size_t i = 0; i < n; i++) {
		a = (a + p[i]) % 65521u;
		b = (b + a) % 65521u;
	}
	return (uint32_t)(b << 16 | a);
}

Test(tracer_encode, the_fast_checksum_equals_the_byte_loop)
{
	enum { MAX = 3 * 5552 + 100 };
	uint8_t *buf = malloc(MAX + 16);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (unsigned round = 0; round < 3000; round++) {
		/* every short length, then lengths around the 5552-byte and
		 * 16-byte boundaries, random contents, all-0xff for the
		 * largest sums, at every alignment */
		size_t len = round < 600 ? round : (size_t)(x % MAX);
		if (round % 7 == 3)
			len = 5552u * (1 + round % 3) + (round % 33) - 16;
		if (len > MAX)
			len = MAX;
		size_t off = round % 16;
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[off + i] = round % 5 == 0 ? 0xff : (uint8_t)x;
		}
		cr_assert_eq(capture_checksum(buf + off, len), checksum_reference(buf + off, len),
			     "length %zu offset %zu", len, off);
	}
	free(buf);
}
