/*
 * reports-private.h: helpers shared inside reports/ and nowhere else: a
 * growing-array helper and an open-addressing map from 64-bit keys to
 * 32-bit indices (table.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <memprof/capture.h>

struct reports_event;
struct reports_events;
struct reports_follow;
struct reports_prepass;

/* Makes room for at least need elements of elem bytes in *v (capacity in
 * *cap, doubled as needed).  0 or -ENOMEM; *v is untouched on failure. */
int reports_vec_reserve(void *v, size_t *cap, size_t need, size_t elem);

/* Appends one element (copied from item) to *v holding *n of them. */
int reports_vec_push(void *v, size_t *n, size_t *cap, const void *item, size_t elem);

/* A map of 64-bit keys to 32-bit values, linear probing with backward-shift
 * deletion, Fibonacci hashing (the analyses' maps are hit once or twice
 * per event: a key and its value share a slot, one multiply finds it).
 * Zero-initialised is an empty map. */
struct reports_map_slot {
	uint64_t key;
	uint32_t val; /* value + 1; 0 marks an empty slot */
};

struct reports_map {
	struct reports_map_slot *slots;
	size_t mask;    /* slots - 1, or 0 before the first insertion */
	unsigned shift; /* 64 - log2(slots) */
	size_t count;
};

uint64_t reports_hash64(uint64_t x);
void reports_map_finish(struct reports_map *map);
/* Whether key is in the map; its value goes to *val (when not NULL). */
bool reports_map_get(const struct reports_map *map, uint64_t key, uint32_t *val);
/* Inserts or replaces.  0 or -ENOMEM. */
int reports_map_put(struct reports_map *map, uint64_t key, uint32_t val);
/* Removes key; returns whether it was there (and its value in *val). */
bool reports_map_remove(struct reports_map *map, uint64_t key, uint32_t *val);
/* Inserts key with val unless it is there: then returns 1 with its value
 * in *old and changes nothing.  0 when inserted, -ENOMEM. */
int reports_map_add(struct reports_map *map, uint64_t key, uint32_t val, uint32_t *old);
/* Iterates: from *pos = 0, each call gives one entry and returns true,
 * false after the last (no insertion or removal in between). */
bool reports_map_next(const struct reports_map *map, size_t *pos, uint64_t *key, uint32_t *val);

/* Backward-shift deletion in a linear-probing table: after emptying slot
 * hole, the entry at j (whose home slot is home) stays where it is when
 * its home lies cyclically in (hole, j]; otherwise it moves into the hole. */
static inline bool reports_probe_stays(size_t hole, size_t home, size_t j)
{
	return hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
}

/* capture_get_u64() for the event records, read a few times over per
 * event: away from the end of the records (the longest varint is 10
 * bytes) the bytes are read without a bounds check each, and a one-byte
 * value (most deltas of seq, stack and size) takes no loop.  Same
 * results, same errors. */
static inline int reports_get_u64(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
	const uint8_t *q = *p;
	if (end - q < 10)
		return capture_get_u64(p, end, out);
	uint64_t v = q[0];
	if (v < 0x80) {
		*p = q + 1;
		*out = v;
		return 0;
	}
	v &= 0x7f;
	for (unsigned i = 1, shift = 7; i < 10; i++, shift += 7) {
		uint64_t byte = q[i];
		v |= (byte & 0x7f) << shift;
		if (byte < 0x80) {
			*p = q + i + 1;
			*out = v;
			return 0;
		}
	}
	return -1;
}

/* Steps over one varint of [*p, end) as capture_get_u64() would read it
 * (0, or -1 when it would fail).  Away from the end, the length comes
 * from the first byte without the continuation bit, found in one word:
 * no branch on a length that varies from record to record. */
static inline int reports_skip_u64(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *q = *p;
	if (end - q >= 10) {
		uint64_t x;
		memcpy(&x, q, sizeof(x));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		x = __builtin_bswap64(x);
#endif
		uint64_t stop = ~x & 0x8080808080808080ull;
		if (stop != 0) {
			*p = q + ((unsigned)__builtin_ctzll(stop) >> 3) + 1;
			return 0;
		}
	}
	uint64_t v;
	return capture_get_u64(p, end, &v);
}

/* A little-endian 32-bit field of the capture format. */
static inline uint32_t reports_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Gives back the whole pages of [from, to) of a read-only file mapping of
 * len bytes at map (events.c); they are read again from the file should
 * anything touch them. */
void reports_pages_release(const void *map, size_t len, uint64_t from, uint64_t to);

/* A file still being written, mapped as it grows into an address range
 * reserved up front, so that pointers into it stay valid (events.c). */
struct reports_growing {
	int fd;
	uint8_t *base;
	size_t mapped; /* bytes of the range mapped to the file (whole pages) */
	size_t len;    /* the file's size at the last update */
};

/* Opens path (a regular file) and reserves the range.  0 or -errno. */
int reports_growing_open(struct reports_growing *g, const char *path);
/* Maps what the file gained since.  0, -EIO when it shrank, -EFBIG past
 * the range, -errno. */
int reports_growing_update(struct reports_growing *g);
/* Closes the file; unmaps the range too unless keep_map. */
void reports_growing_close(struct reports_growing *g, bool keep_map);
/* The size of the range (for munmap). */
#define REPORTS_GROWING_RESERVE ((size_t)1 << 40)

/* A copy of len bytes as a NUL-terminated string, or NULL. */
char *reports_strndup(const char *s, size_t len);

/* qsort order of struct reports_leak_record, as memcheck lists loss records
 * (analysis.c; leaks.c re-sorts with it after applying suppressions). */
int reports_leak_record_cmp(const void *a, const void *b);

/* ---- where the events of a capture are read again (reader.c, events.c) ----
 * The reader keeps no events: it notes, for each run of events (a stretch
 * of one chunk whose seqs never decrease: a whole chunk, unless the capture
 * is damaged), where it starts and the chunk's delta state there, and the
 * event iterator (events.c) merges the runs by (seq, order). */
struct reports_run {
	uint64_t off;       /* file offset of its first event record */
	uint64_t end;       /* file offset where its chunk ends */
	uint64_t prev_seq;  /* the chunk's delta state before that record */
	uint64_t prev_addr;
	uint64_t prev_stack;
	uint64_t first_seq;
	uint64_t first_order; /* order (place in the file) of its first event */
	uint64_t n_events;
	uint64_t zchunk;    /* file offset of its zchunk (off and end are then
			       offsets in the zchunk's records), 0 in a chunk */
	uint32_t tid;
};

struct reports_source {
	const uint8_t *data; /* the whole capture */
	size_t len;
	uint32_t version;    /* of the capture (version 2 delta-codes stack ids) */
	void *map;           /* data is this mapping of the file (munmap'd)... */
	size_t map_len;      /* ...of this many bytes (0: len) */
	uint8_t *owned;      /* ...or this copy (freed) */
	struct reports_run *runs; /* sorted by (first_seq, first_order) */
	size_t n_runs;
	uint64_t *low;       /* low[i]: the least file offset runs[i..] need
				(reports_run_need); low[n_runs] = len */
	/* stack ids of ALLOC records to canonical nodes: ids below n_dense in
	 * dense[] (REPORTS_NO_STACK for none), others in sparse */
	uint32_t *dense;
	size_t n_dense;
	struct reports_map sparse;
	/* A capture followed while it grows (reader.c): the merge takes the
	 * events below safe_seq and asks for more (reports_follow_feed) when
	 * it reaches it; UINT64_MAX once the whole file is read.  While
	 * raw_stacks is set, events name their stacks by raw slot (in order
	 * of first mention, as the reader meets them) rather than by
	 * canonical node, which only exists once the file is read. */
	struct reports_follow *follow;
	uint64_t safe_seq;
	bool raw_stacks;
	/* the follower's raw slots of stack ids below n_raw_dense (UINT32_MAX
	 * for none), so that the merge reads them without a call; NULL once
	 * the follower is gone */
	const uint32_t *raw_dense;
	size_t n_raw_dense;
};

/* reports_events_next() for up to max events at once (the analysis's
 * pass, which takes every event, spares a call per event): how many went
 * to evs, 0 at the end, or a negative errno. */
int reports_events_read(struct reports_events *it, struct reports_event *evs, size_t max);

/* What a pass does with events evs[0, n), the first numbered *index (it
 * advances *index by those it took): 0, or a negative errno that stops
 * the pass. */
typedef int reports_apply_fn(void *ctx, const struct reports_event *evs, size_t n,
			     uint64_t *index);
/* Takes every event of it, in batches, to apply(ctx, ...): on this thread
 * while a followed capture may still grow, on a thread of its own from
 * where nothing is left to wait for (when this process has two cores),
 * the merge going on here.  apply must not read what the merge changes
 * (the events iterator; the reader while it still reads the capture).
 * 0, or apply's or the merge's negative errno. */
int reports_events_apply(struct reports_events *it, reports_apply_fn *apply, void *ctx);

/* Reads what the followed capture of src gained, up to its next FLUSHED
 * record or, once reports_capture_follow_end() was called, its end; the
 * runs from joined on (those the merge has not opened) are put in merge
 * order.  Waits for the file to grow.  0, or a negative errno (-EAGAIN
 * when the file broke FLUSHED's promise). */
int reports_follow_feed(const struct reports_source *src, size_t joined);
/* While src->raw_stacks: the raw slot of a stack id (REPORTS_NO_STACK for
 * none), and, once the file is read, the canonical node of a raw slot. */
uint32_t reports_follow_raw(const struct reports_source *src, uint64_t id);
uint32_t reports_follow_canon(const struct reports_source *src, uint32_t raw);
/* How many raw slots there are (stack ids below it are raw slots). */
size_t reports_follow_n_raw(const struct reports_source *src);
/* The merge has taken n events (for reports_capture_follow_end). */
void reports_follow_taken(const struct reports_source *src, uint64_t n);
/* Ends raw_stacks: events name canonical nodes from here on; the
 * follower's reader state is freed. */
void reports_follow_done(struct reports_source *src);
void reports_follow_free(struct reports_follow *f);
/* The analysis's pass made while following (analysis.c), freed with the
 * capture. */
void reports_prepass_free(struct reports_prepass *pre);

/* The file offset from which a run needs the file: its first record, or
 * its zchunk. */
static inline uint64_t reports_run_need(const struct reports_run *run)
{
	return run->zchunk ? run->zchunk : run->off;
}

/* The canonical node of a stack id of an ALLOC record. */
uint32_t reports_source_stack(const struct reports_source *src, uint64_t id);
/* Gives back the pages of a mapped capture in [from, to) (whole pages
 * only); they are read again from the file should anything touch them. */
void reports_source_release(const struct reports_source *src, uint64_t from, uint64_t to);
void reports_source_destroy(struct reports_source *src);
/* Skips the fields of one record whose tag byte was just read; 0, or -1
 * when the record runs past end. */
int reports_record_skip(int tag, const uint8_t **p, const uint8_t *end);
