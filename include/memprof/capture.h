/*
 * capture.h: the memprof capture file format, version 4.
 *
 * This header is the only contract between tracer/ (which writes captures
 * inside the traced program) and reports/ (which reads them afterwards).
 * memprof-capture(5) documents it for users; keep the two in step.
 *
 * Layout
 * ------
 *   file   := header (chunk | zchunk | zgroup)*
 *   header := "MEMPROF\0" u32le(version) u32le(header_size=16)
 *   chunk  := u32le(CAPTURE_CHUNK_MAGIC) u32le(payload_len) u32le(tid)
 *             u32le(checksum) payload[payload_len]
 *   zchunk := u32le(CAPTURE_ZCHUNK_MAGIC) u32le(payload_len) u32le(tid)
 *             u32le(checksum) payload[payload_len]
 *             where payload := u32le(raw_len) zstd_frame[payload_len - 4]
 *   zgroup := u32le(CAPTURE_ZGROUP_MAGIC) u32le(payload_len) u32le(0)
 *             u32le(checksum) payload[payload_len]
 *             where payload := u32le(raw_len) zstd_frame[payload_len - 4]
 *
 * A zchunk (version 2) is a chunk whose records were compressed with zstd:
 * the frame decompresses to exactly raw_len bytes (at most
 * CAPTURE_ZCHUNK_RAW_MAX) that are read as a chunk's payload.  Its checksum
 * covers the compressed payload.  A zgroup (version 4) is a run of plain
 * chunks compressed together: its frame decompresses to exactly raw_len
 * bytes (at most CAPTURE_ZGROUP_RAW_MAX) that are whole chunks, headers
 * and all (CAPTURE_CHUNK_MAGIC only, each with its own tid and checksum),
 * read as if they stood in the file in its place.  One frame for many
 * chunks finds what repeats from one chunk to the next (a deep recursion's
 * stacks and events, which a chunk's frame alone cannot see: captures
 * about half as big).  Its checksum covers the compressed payload, its
 * tid is 0.  Records are the same in versions 3 and 4.  A reader of
 * version 4 reads versions 1 to 3 too (version 1 has no zchunk, versions
 * 1 and 2 no FLUSHED, versions 1 to 3 no zgroup).
 *
 * Every thread fills its own buffer and appends it to the file as one chunk
 * with a single write(2) on an O_APPEND descriptor, so chunks never
 * interleave.  A chunk holds whole records only.  The chunk's tid is the
 * thread whose events it holds; tid 0 marks memprof's own sampler thread
 * (SAMPLE records only).  Records of different threads are ordered by
 * their seq, not by their place in the file.  The checksum is
 * capture_checksum() of the payload.  A reader that meets a chunk whose
 * header or payload runs past the end of the file stops there and reports
 * the capture as incomplete (the target was killed); a chunk with a wrong
 * magic or checksum is corruption (a clear error).  Payload length is at
 * most CAPTURE_CHUNK_MAX.
 *
 * Records
 * -------
 * A record is one tag byte followed by its fields.  Fields are unsigned
 * LEB128 varints ("u"), zigzag-encoded signed varints ("s"), or strings
 * ("str" := u(len) bytes[len], at most CAPTURE_STRING_MAX bytes, not
 * NUL-terminated).  Deltas are per chunk: at the start of every chunk the
 * previous sequence number, address, stack id, node id and node ip are 0.
 * Version 2 delta-codes the stack ids too (a program with deep recursion
 * makes a new stack node for nearly every allocation, and their ids, read
 * as differences, repeat: the compressor finds them again); version 1
 * wrote ALLOC's stack_id and STACK's fields as they are.
 *
 *   PROCESS   u(pid) u(ppid) u(start_realtime_ns) str(exe) u(argc) str(argv)*
 *             u(flags)            -- once, in the first chunk of the file
 *   ALLOC     u(seq - prev_seq) s(addr - prev_addr) u(size)
 *             s(stack_id - prev_stack_id)   -- the chunk's last ALLOC's
 *   FREE      u(seq - prev_seq) s(addr - prev_addr)
 *             A realloc is an ALLOC of the new block followed by a FREE of
 *             the old one (both also when the block did not move), so that
 *             counts match valgrind's (one allocation and one free); the
 *             two have consecutive seqs and the same stack.  realloc(NULL,
 *             n) is an ALLOC only, realloc(p, 0) a FREE only; failed calls
 *             write nothing.  Within a chunk seqs never decrease.
 *             Processing records in seq order, a FREE frees the oldest
 *             live block at its address (so an ALLOC may name an address
 *             that is still live: a realloc in place).  In a FORKED
 *             capture, a FREE may name a block inherited from the parent,
 *             which has no ALLOC in this capture.
 *   STACK     s(id - prev_id) s(id - parent_id) s(ip - prev_ip)
 *             (prev_id, prev_ip: the chunk's last STACK's)
 *             one node of the prefix tree of stacks: a stack is the chain of
 *             nodes from its id up to parent 0, innermost frame first.  The
 *             tracer skips its own frames but one: the innermost frame is
 *             the public function the program called (malloc, free...),
 *             its ip a return address inside that function of the preload
 *             library.  Every ip, the innermost included, is a return
 *             address: the reader subtracts 1 from each before symbolizing.
 *             A node is written before any record of the same chunk that
 *             uses it, but possibly in a later chunk than a use made by
 *             another thread: readers resolve stacks after reading all.
 *   MODULE    u(id) u(load_bias) u(start) u(end) str(path) str(build_id)
 *             an ELF object mapped at [start, end) (its executable
 *             segments), with its load bias; build_id is raw bytes.
 *             A MODULE is written at start and after each dlopen for every
 *             object not seen before; the main program's path comes from
 *             /proc/self/exe.
 *   UNLOAD    u(module_id) u(seq)  -- dlclose'd at that point of the run
 *   SAMPLE    u(t_ns) u(seq) u(rss_bytes) u(heap_bytes) u(live_bytes)
 *             every 10 ms: time since start, the sequence counter then,
 *             resident set size, bytes mapped by the allocator, bytes
 *             requested by live blocks.
 *   THREAD    u(tid) u(seq) u(event: 0 start, 1 exit) str(name)
 *   BADFREE   u(seq) u(kind: 1 double, 2 invalid, 3 foreign) u(addr)
 *             u(free_stack_id) u(alloc_stack_id) u(first_free_stack_id)
 *   STATS     u(n) n * [u(block_size) u(pools) u(in_use) u(available)]
 *             u(arenas_allocated) u(arenas_reclaimed) u(arenas_highwater)
 *             u(bytes_quantization) u(bytes_pool_headers) u(bytes_empty_pools)
 *             u(large_blocks) u(large_bytes)   -- allocator statistics at exit
 *   NOTE      u(seq) u(level: 0 info, 1 warning, 2 error) str(text)
 *             memprof's own remarks (e.g. recording stopped: disk full).
 *   LOST      u(events)  -- events the tracer could not record
 *   END       u(t_ns) u(seq) u(how) u(status) u(signal)
 *             how: 0 returned from main or exit(), 1 _exit(), 2 fatal
 *             signal, 3 abort(), 4 exec of another program (written just
 *             before the exec; should the exec fail, the program goes on
 *             unrecorded); status: exit status (0 for 2, 3 and 4);
 *             signal: 0 or N.  seq is greater than every event's.  END is
 *             the last record of the file; a LOST record may precede it in
 *             its chunk.  A capture without END is incomplete.
 *   SCAN      u(n_blocks) u(n_edges) u(flags)
 *             opens the result of a reachability scan (at exit, or on
 *             demand); followed in the same or later chunks by n_blocks
 *             SCANBLOCK and n_edges SCANEDGE records.  flags:
 *             CAPTURE_SCAN_*.  Blocks memprof allocated for itself are
 *             not reported.
 *   SCANBLOCK u(addr) u(size) u(stack_id) u(seq) u(kind) u(indirect_of)
 *             kind: CAPTURE_LEAK_*; indirect_of: for an indirectly lost
 *             block, the address of the lost block it hangs off (0 else).
 *   SCANEDGE  u(from_addr) u(offset) u(to_addr)  -- between lost blocks
 *             (including interior pointers): from + offset holds a pointer
 *             into to.
 *   OBJTYPE   u(type_id) str(name) u(body_size) -- libmemprof-heap types
 *   OBJECT    u(addr) u(type_id) u(refcount) u(flags) u(snapshot)
 *   OBJEDGE   u(from_addr) u(to_addr) u(snapshot)
 *   SNAPSHOT  u(id) u(t_ns) u(seq) str(label)
 *   ---- objects (libmemprof-heap): what these records mean ----
 *             A SNAPSHOT is written when the program calls mp_snapshot()
 *             (its label), on the snapshot signal (label "signal N") and
 *             at exit (id CAPTURE_SNAPSHOT_EXIT, label "exit"); ids of the
 *             others count from 1.  OBJTYPE comes once per type, before
 *             its first use; type_id is the capture's own number.  Each
 *             SNAPSHOT is followed by one OBJCOUNT per type.  At exit
 *             only: an OBJECT per live object (addr: the body the API
 *             hands out; refcount: the references the program and other
 *             objects hold, the collector's garbage list's own excluded;
 *             flags CAPTURE_OBJ_*) and an OBJEDGE per reference one
 *             tracked object holds to another (its traverse function).
 *   OBJCOUNT  u(snapshot) u(type_id) u(count) u(bytes)
 *             live objects of a type (tracked or not) and their bodies'
 *             bytes at a snapshot.
 *   FLUSHED   u(seq)   -- version 3: every event whose seq is below this one
 *             is in a chunk that comes before this record's chunk in the
 *             file; chunks after it hold only events at or above it.
 *             Written by the sampler (chunk tid 0) about every 100 ms,
 *             after it flushed every thread's buffer, so that a reader
 *             following a growing capture (memprof run analyses while the
 *             program runs) knows which events are final.
 *   SCANREF   u(addr) u(from) u(kind) u(tid)
 *             the back-reference of a block of the last SCAN: what first
 *             reached the block that starts at addr.  kind CAPTURE_REF_*:
 *             BLOCK, from is the address of the pointer inside another
 *             block (which has its own SCANREF, up to a root); DATA, from
 *             is a root word outside any thread's stack and TLS (a global
 *             when a module's symbol covers it); STACK, TLS: a word of
 *             thread tid's stack or static TLS; REGISTER: a register of
 *             thread tid (from 0).  Written for object blocks and the
 *             blocks on their chains only.
 *
 * Readers ignore nothing silently: an unknown tag is corruption.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define CAPTURE_MAGIC "MEMPROF\0"
#define CAPTURE_MAGIC_LEN 8
#define CAPTURE_VERSION 4u
#define CAPTURE_VERSION_MIN 1u /* the oldest version readers still read */
#define CAPTURE_HEADER_SIZE 16u
#define CAPTURE_CHUNK_MAGIC 0x4b43504du /* "MPCK" little-endian */
#define CAPTURE_CHUNK_HEADER_SIZE 16u
#define CAPTURE_CHUNK_MAX (16u * 1024u * 1024u)
#define CAPTURE_ZCHUNK_MAGIC 0x5a43504du /* "MPCZ" little-endian */
#define CAPTURE_ZCHUNK_RAW_MAX (1024u * 1024u)
#define CAPTURE_ZGROUP_MAGIC 0x4743504du /* "MPCG" little-endian */
#define CAPTURE_ZGROUP_RAW_MAX (4u * 1024u * 1024u)
#define CAPTURE_ZGROUP_VERSION 4u /* the first version with zgroups */
#define CAPTURE_STRING_MAX 65536u

enum capture_tag {
	CAPTURE_PROCESS = 1,
	CAPTURE_ALLOC = 2,
	CAPTURE_FREE = 3,
	CAPTURE_STACK = 4,
	CAPTURE_MODULE = 5,
	CAPTURE_UNLOAD = 6,
	CAPTURE_SAMPLE = 7,
	CAPTURE_THREAD = 8,
	CAPTURE_BADFREE = 9,
	CAPTURE_STATS = 10,
	CAPTURE_NOTE = 11,
	CAPTURE_LOST = 12,
	CAPTURE_END = 13,
	CAPTURE_SCAN = 14,
	CAPTURE_SCANBLOCK = 15,
	CAPTURE_SCANEDGE = 16,
	CAPTURE_OBJTYPE = 17,
	CAPTURE_OBJECT = 18,
	CAPTURE_OBJEDGE = 19,
	CAPTURE_SNAPSHOT = 20,
	CAPTURE_OBJCOUNT = 21,
	CAPTURE_SCANREF = 22,
	CAPTURE_FLUSHED = 23,
	CAPTURE_TAG_MAX = 23,
};

/* ---- objects (libmemprof-heap) ---- */
/* SNAPSHOT id of the snapshot taken at exit */
#define CAPTURE_SNAPSHOT_EXIT 0u
/* OBJECT flags */
#define CAPTURE_OBJ_TRACKED 1u /* its type has a traverse function */
#define CAPTURE_OBJ_GARBAGE 2u /* unreachable at exit: found by the exit
				  collection (run with MP_GC_DEBUG_SAVEALL) or
				  already on the garbage list (uncollectable) */
/* SCANREF kinds */
enum capture_ref_kind {
	CAPTURE_REF_BLOCK = 0,
	CAPTURE_REF_DATA = 1,
	CAPTURE_REF_STACK = 2,
	CAPTURE_REF_TLS = 3,
	CAPTURE_REF_REGISTER = 4,
};

/* PROCESS flags */
#define CAPTURE_PROCESS_FORKED 1u /* the process is a traced fork child */
/* the stack of a FREE's block (a double free's first free) is only free()
 * and its caller; without it, whole stacks (memprof run --free-stacks) */
#define CAPTURE_PROCESS_FREE_CALLER 2u

/* SCAN flags */
#define CAPTURE_SCAN_AT_EXIT 1u /* the scan at exit (else on demand) */
#define CAPTURE_SCAN_PARTIAL 2u /* some thread could not be stopped */

enum capture_end_how {
	CAPTURE_END_EXIT = 0,
	CAPTURE_END_UNDERSCORE_EXIT = 1,
	CAPTURE_END_SIGNAL = 2,
	CAPTURE_END_ABORT = 3,
	CAPTURE_END_EXEC = 4,
};

enum capture_badfree_kind {
	CAPTURE_BADFREE_DOUBLE = 1,
	CAPTURE_BADFREE_INVALID = 2,
	CAPTURE_BADFREE_FOREIGN = 3,
};

/* SCANBLOCK kinds: valgrind memcheck's categories. */
enum capture_leak_kind {
	CAPTURE_LEAK_REACHABLE = 0,
	CAPTURE_LEAK_POSSIBLE = 1,
	CAPTURE_LEAK_INDIRECT = 2,
	CAPTURE_LEAK_DEFINITE = 3,
};

/* Adler-style checksum of a chunk payload: cheap enough for the writer,
 * enough to tell a torn or corrupted chunk from a good one.  The value is
 * defined by the byte loop: a starts at 1, b at 0, and for each byte
 * a += byte, b += a, both reduced mod 65521 at least every 5552 bytes
 * (the most that cannot overflow 32 bits); the result is b << 16 | a.  With
 * SSE2, whole 16-byte blocks are summed at once: over m blocks, a gains
 * the bytes' sum and b gains 16 * m * a, plus 16 times the sum of the
 * running totals before each block, plus each byte times (16 - its index
 * in its block); that is the byte loop's value exactly (the unit tests
 * compare them). */
static inline uint32_t capture_checksum(const uint8_t *p, size_t n)
{
	uint32_t a = 1, b = 0;
	while (n > 0) {
		size_t k = n < 5552 ? n : 5552;
		n -= k;
#if defined(__SSE2__)
		size_t m = k / 16;
		if (m > 0) {
			const __m128i zero = _mm_setzero_si128();
			const __m128i wlo = _mm_set_epi16(9, 10, 11, 12, 13, 14, 15, 16);
			const __m128i whi = _mm_set_epi16(1, 2, 3, 4, 5, 6, 7, 8);
			/* s1: byte sums (lanes 0 and 2), ps: s1 before each
			 * block, s2: the weighted bytes */
			__m128i s1 = zero, ps = zero, s2 = zero;
			for (size_t j = 0; j < m; j++, p += 16) {
				__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
				ps = _mm_add_epi32(ps, s1);
				s1 = _mm_add_epi32(s1, _mm_sad_epu8(x, zero));
				__m128i lo = _mm_unpacklo_epi8(x, zero);
				__m128i hi = _mm_unpackhi_epi8(x, zero);
				s2 = _mm_add_epi32(s2, _mm_madd_epi16(lo, wlo));
				s2 = _mm_add_epi32(s2, _mm_madd_epi16(hi, whi));
			}
			uint32_t v1[4], vp[4], v2[4];
			_mm_storeu_si128((__m128i *)(void *)v1, s1);
			_mm_storeu_si128((__m128i *)(void *)vp, ps);
			_mm_storeu_si128((__m128i *)(void *)v2, s2);
			uint64_t sum = (uint64_t)v1[0] + v1[2];
			uint64_t before = (uint64_t)vp[0] + vp[2];
			uint64_t weighted = (uint64_t)v2[0] + v2[1] + v2[2] + v2[3];
			uint64_t bb = b + (uint64_t)m * 16u * a + 16u * before + weighted;
			a = (uint32_t)((a + sum) % 65521u);
			b = (uint32_t)(bb % 65521u);
			k -= m * 16;
		}
#endif
		while (k-- > 0) {
			a += *p++;
			b += a;
		}
		a %= 65521u;
		b %= 65521u;
	}
	return (b << 16) | a;
}

/* Varint helpers shared by writer and reader. */
static inline size_t capture_put_u64(uint8_t *out, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

static inline uint64_t capture_zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t capture_unzigzag(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* Reads one varint from [*p, end); returns 0 and advances *p, or -1 when
 * the varint is truncated or longer than 10 bytes. */
static inline int capture_get_u64(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;
	const uint8_t *q = *p;
	while (q < end && shift < 64) {
		uint8_t byte = *q++;
		v |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80)) {
			*p = q;
			*out = v;
			return 0;
		}
		shift += 7;
	}
	return -1;
}
