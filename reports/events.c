/*
 * events.c: the allocation events of a capture, streamed in sequence
 * order.  Entry points: reports_events_open(), reports_events_next(), and
 * reports_events_read() for a batch (the analysis's pass).
 *
 * The reader (reader.c) keeps no events, only runs: stretches of one chunk
 * whose seqs never decrease, each with the chunk's delta state at its
 * start, sorted by their first (seq, order).  A pass is a k-way merge: a
 * binary heap of cursors, one per run being read, keyed by the (seq,
 * order) of the cursor's next event.  A run joins the heap only when the
 * merge reaches its first event, so the heap holds the runs that overlap
 * in seq (about one per thread that was allocating at the time), and a
 * pass costs a few varint decodes and heap steps per event whatever the
 * capture's size.  Most often the top cursor stays on top for many events
 * (one thread allocates at a time): while its next event comes before
 * anything else could (the top's children, the next run, safe_seq), the
 * pass takes it without a heap step (reports_events_read() takes such a
 * stretch in one loop, the cursor's state in registers, each event
 * decoded straight into the caller's array).  Pages of a mapped file that
 * no run still needs are given back as the pass goes
 * (reports_source_release), so a pass over a capture of any size stays
 * within a few chunks' worth of memory.
 *
 * A run in a zchunk (compressed records) or a zgroup (compressed chunks)
 * is read from the zchunk or zgroup decompressed when the run opens, in a
 * buffer shared by the cursors of the runs in it and kept a while after
 * the last is over (ZIDLE_MAX of them), for the next run in it: a zgroup
 * holds the runs of a few dozen chunks, read one after the other.  A pass
 * refuses to hold more than ZBUF_LIMIT bytes of them at once (only a
 * hostile capture, with thousands of runs overlapping in seq, would).
 *
 * The reader checked every record once; a pass decodes again defensively
 * and answers -EIO if the bytes are no longer what the reader saw (the
 * file was rewritten under it).
 */
#define _GNU_SOURCE /* sched_getaffinity */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <memprof/capture.h>
#include <zstd.h>

#include "reports-private.h"
#include "reports.h"

/* How often (in events) a pass gives back the pages behind it. */
#define RELEASE_EVERY (1u << 20)
/* ...and only when at least this much can go. */
#define RELEASE_MIN (4u << 20)
/* Most decompressed bytes a pass holds at once. */
#define ZBUF_LIMIT ((size_t)256 << 20)
/* Decompressed buffers no cursor reads that a pass keeps. */
#define ZIDLE_MAX 4u

/* ---- the source ------------------------------------------------------- */

uint32_t reports_source_stack(const struct reports_source *src, uint64_t id)
{
	if (src->raw_stacks)
		return id < src->n_raw_dense ? src->raw_dense[id] : reports_follow_raw(src, id);
	if (id < src->n_dense)
		return src->dense[id];
	uint32_t v;
	return id != 0 && reports_map_get(&src->sparse, id, &v) ? v : REPORTS_NO_STACK;
}

void reports_pages_release(const void *map, size_t len, uint64_t from, uint64_t to)
{
	if (!map || to > len)
		return;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t lo = (from + page - 1) / page * page, hi = to / page * page;
	if (hi > lo)
		madvise((uint8_t *)map + lo, (size_t)(hi - lo), MADV_DONTNEED);
}

int reports_growing_open(struct reports_growing *g, const char *path)
{
	memset(g, 0, sizeof(*g));
	g->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (g->fd < 0)
		return -errno;
	struct stat st;
	if (fstat(g->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(g->fd);
		return -EINVAL;
	}
	void *base = mmap(NULL, REPORTS_GROWING_RESERVE, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) {
		int e = errno;
		close(g->fd);
		return -e;
	}
	g->base = base;
	return 0;
}

int reports_growing_update(struct reports_growing *g)
{
	struct stat st;
	if (fstat(g->fd, &st) < 0)
		return -errno;
	size_t size = (size_t)st.st_size;
	if (size < g->len)
		return -EIO; /* the file shrank under us */
	if (size > REPORTS_GROWING_RESERVE)
		return -EFBIG;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t hi = (size + page - 1) / page * page;
	if (hi > g->mapped) {
		/* the last page again too: it was mapped when the file ended in it */
		size_t lo = g->mapped >= page ? g->mapped - page : 0;
		if (mmap(g->base + lo, hi - lo, PROT_READ, MAP_PRIVATE | MAP_FIXED, g->fd,
			 (off_t)lo) == MAP_FAILED)
			return -errno;
		g->mapped = hi;
	}
	g->len = size;
	return 0;
}

void reports_growing_wait(void)
{
	struct timespec ts = { 0, 5000000L };
	nanosleep(&ts, NULL);
}

void reports_growing_close(struct reports_growing *g, bool keep_map)
{
	if (g->fd >= 0)
		close(g->fd);
	if (g->base && !keep_map)
		munmap(g->base, REPORTS_GROWING_RESERVE);
	g->fd = -1;
	g->base = NULL;
}

void reports_source_release(const struct reports_source *src, uint64_t from, uint64_t to)
{
	reports_pages_release(src->map, src->len, from, to);
}

void reports_source_destroy(struct reports_source *src)
{
	if (!src)
		return;
	if (src->map)
		munmap(src->map, src->map_len ? src->map_len : src->len);
	reports_follow_free(src->follow);
	free(src->owned);
	free(src->runs);
	free(src->low);
	free(src->dense);
	reports_map_finish(&src->sparse);
	free(src);
}

/* ---- skipping the other records ---------------------------------------- */

static int skip_u(const uint8_t **p, const uint8_t *end, unsigned n)
{
	uint64_t v;
	while (n-- > 0)
		if (capture_get_u64(p, end, &v) < 0)
			return -1;
	return 0;
}

static int skip_str(const uint8_t **p, const uint8_t *end)
{
	uint64_t n;
	if (capture_get_u64(p, end, &n) < 0 || n > (uint64_t)(end - *p))
		return -1;
	*p += n;
	return 0;
}

/* The fields of each fixed-layout record: u a varint, s a string. */
static const char *const layouts[CAPTURE_TAG_MAX + 1] = {
	[CAPTURE_ALLOC] = "uuuu",       [CAPTURE_FREE] = "uu",
	[CAPTURE_STACK] = "uuu",        [CAPTURE_MODULE] = "uuuuss",
	[CAPTURE_UNLOAD] = "uu",        [CAPTURE_SAMPLE] = "uuuuu",
	[CAPTURE_THREAD] = "uuus",      [CAPTURE_BADFREE] = "uuuuuu",
	[CAPTURE_NOTE] = "uus",         [CAPTURE_LOST] = "u",
	[CAPTURE_END] = "uuuuu",        [CAPTURE_SCAN] = "uuu",
	[CAPTURE_SCANBLOCK] = "uuuuuu", [CAPTURE_SCANEDGE] = "uuu",
	[CAPTURE_OBJTYPE] = "usu",      [CAPTURE_OBJECT] = "uuuuu",
	[CAPTURE_OBJEDGE] = "uuu",      [CAPTURE_SNAPSHOT] = "uuus",
	[CAPTURE_OBJCOUNT] = "uuuu",    [CAPTURE_SCANREF] = "uuuu",
};

int reports_record_skip(int tag, const uint8_t **p, const uint8_t *end)
{
	uint64_t n;
	switch (tag) {
	case CAPTURE_PROCESS: /* u u u str u(argc) str* u */
		if (skip_u(p, end, 3) < 0 || skip_str(p, end) < 0 ||
		    capture_get_u64(p, end, &n) < 0 || n > (uint64_t)(end - *p))
			return -1;
		while (n-- > 0)
			if (skip_str(p, end) < 0)
				return -1;
		return skip_u(p, end, 1);
	case CAPTURE_STATS: /* u(n) n * 4u, 8u */
		if (capture_get_u64(p, end, &n) < 0 || n > (uint64_t)(end - *p) / 4)
			return -1;
		return skip_u(p, end, (unsigned)n * 4 + 8);
	}
	if (tag < 1 || tag > (int)CAPTURE_TAG_MAX || !layouts[tag])
		return -1;
	for (const char *f = layouts[tag]; *f; f++)
		if ((*f == 'u' ? skip_u(p, end, 1) : skip_str(p, end)) < 0)
			return -1;
	return 0;
}

/* ---- the merge -------------------------------------------------------- */

struct cursor {
	struct reports_event ev; /* the next event of the run */
	const uint8_t *p, *end;
	uint64_t prev_seq, prev_addr, prev_stack;
	uint64_t left; /* events of the run not yet decoded */
	uint64_t off;  /* file offset of p, for giving pages back */
	struct zbuf *zb; /* the run's zchunk or zgroup, decompressed (or NULL) */
};

/* A zchunk's records or a zgroup's chunks, decompressed. */
struct zbuf {
	uint64_t at; /* file offset of the zchunk or zgroup */
	uint8_t *data;
	size_t len, cap;
	size_t refs;   /* cursors reading it */
	uint64_t idle; /* when the last one let it go (reports_events.zclock) */
};

struct reports_events {
	const struct reports_capture *cap;
	const struct reports_source *src;
	struct cursor *cur; /* by slot */
	size_t n_cur, cap_cur;
	uint32_t *free_slots;
	size_t n_free, cap_free;
	uint32_t *heap; /* slots, a min-heap by (seq, order) */
	size_t n_heap, cap_heap;
	size_t next_run;   /* the first run not opened yet */
	uint64_t emitted;
	uint64_t released; /* file offset below which pages went back */
	struct zbuf **zbufs; /* read by a cursor, or idle */
	size_t n_zbufs, cap_zbufs, n_idle;
	uint64_t zclock;
	size_t zheld;      /* bytes of their data */
	ZSTD_DCtx *zctx;
	/* While lead is set, the heap's top comes before (bound_seq,
	 * bound_order): its children's keys, the next run's first, safe_seq.
	 * A top that keeps the lead after its advance is the next event
	 * again, with no run to open, no sift and nothing to wait for. */
	bool lead;
	uint64_t bound_seq, bound_order;
};

static bool key_before(uint64_t seq, uint64_t order, uint64_t seq2, uint64_t order2)
{
	return seq < seq2 || (seq == seq2 && order < order2);
}

static bool before(const struct cursor *a, const struct cursor *b)
{
	return key_before(a->ev.seq, a->ev.order, b->ev.seq, b->ev.order);
}

static void sift_up(struct reports_events *it, size_t i)
{
	uint32_t x = it->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!before(&it->cur[x], &it->cur[it->heap[parent]]))
			break;
		it->heap[i] = it->heap[parent];
		i = parent;
	}
	it->heap[i] = x;
}

static void sift_down(struct reports_events *it, size_t i)
{
	uint32_t x = it->heap[i];
	size_t n = it->n_heap;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && before(&it->cur[it->heap[c + 1]], &it->cur[it->heap[c]]))
			c++;
		if (!before(&it->cur[it->heap[c]], &it->cur[x]))
			break;
		it->heap[i] = it->heap[c];
		i = c;
	}
	it->heap[i] = x;
}

/* Decodes a run's next event from *pp into *out (all but its thread and
 * order), with the run's delta state and events left in the caller's
 * locals, which a lead keeps in registers over many events: 1, 0 when
 * the run is over, -EIO when the bytes do not hold what the reader found.
 * Always inlined: at -O2 (the default build) GCC split it and called the
 * rest, and the locals whose addresses it takes went through memory. */
static inline __attribute__((always_inline)) int
decode_event(const struct reports_source *src, const uint8_t **pp, const uint8_t *end,
	     uint64_t *left, uint64_t *seq, uint64_t *addr, uint64_t *stack_id,
	     struct reports_event *out)
{
	if (*left == 0)
		return 0;
	const uint8_t *p = *pp;
	for (;;) {
		if (p >= end)
			return -EIO;
		int tag = *p++;
		if (tag != CAPTURE_ALLOC && tag != CAPTURE_FREE) {
			const uint8_t *q = p; /* p itself stays out of memory */
			if (reports_record_skip(tag, &q, end) < 0)
				return -EIO;
			p = q;
			continue;
		}
		uint64_t dseq, zaddr, size = 0, stack = 0;
		if (reports_get_u64(&p, end, &dseq) < 0 || reports_get_u64(&p, end, &zaddr) < 0)
			return -EIO;
		if (tag == CAPTURE_ALLOC && (reports_get_u64(&p, end, &size) < 0 ||
					     reports_get_u64(&p, end, &stack) < 0))
			return -EIO;
		*pp = p;
		*seq += dseq;
		*addr += (uint64_t)capture_unzigzag(zaddr);
		(*left)--;
		out->seq = *seq;
		out->addr = *addr;
		if (tag == CAPTURE_ALLOC) {
			if (src->version >= 2) /* a delta from the last ALLOC's */
				*stack_id = stack = *stack_id + (uint64_t)capture_unzigzag(stack);
			out->kind = REPORTS_EVENT_ALLOC;
			out->size = size;
			out->stack = reports_source_stack(src, stack);
		} else {
			out->kind = REPORTS_EVENT_FREE;
			out->size = 0;
			out->stack = REPORTS_NO_STACK;
		}
		return 1;
	}
}

/* Decodes the cursor's next event into c->ev (its thread is the run's,
 * its order counts on from the run's first): decode_event()'s result. */
static int advance(const struct reports_source *src, struct cursor *c)
{
	const uint8_t *p = c->p;
	uint64_t left = c->left, seq = c->prev_seq, addr = c->prev_addr, stack = c->prev_stack;
	int res = decode_event(src, &p, c->end, &left, &seq, &addr, &stack, &c->ev);
	c->p = p;
	c->left = left;
	c->prev_seq = seq;
	c->prev_addr = addr;
	c->prev_stack = stack;
	if (res > 0)
		c->ev.order++;
	return res;
}

int reports_events_open(const struct reports_capture *cap, struct reports_events **out)
{
	struct reports_events *it = calloc(1, sizeof(*it));
	*out = NULL;
	if (!it)
		return -ENOMEM;
	it->cap = cap;
	it->src = cap->source;
	*out = it;
	return 0;
}

void reports_events_close(struct reports_events *it)
{
	if (!it)
		return;
	for (size_t i = 0; i < it->n_zbufs; i++) {
		free(it->zbufs[i]->data);
		free(it->zbufs[i]);
	}
	free(it->zbufs);
	ZSTD_freeDCtx(it->zctx);
	free(it->cur);
	free(it->free_slots);
	free(it->heap);
	free(it);
}

/* Takes idle zbufs[i] out of the pass's buffers; returns it. */
static struct zbuf *zbuf_detach(struct reports_events *it, size_t i)
{
	struct zbuf *z = it->zbufs[i];
	it->zheld -= z->len;
	it->n_idle--;
	it->zbufs[i] = it->zbufs[--it->n_zbufs];
	return z;
}

/* Frees zbufs[i] (no cursor reads it). */
static void zbuf_evict(struct reports_events *it, size_t i)
{
	struct zbuf *z = zbuf_detach(it, i);
	free(z->data);
	free(z);
}

/* The index of the idle buffer let go longest ago, SIZE_MAX if none. */
static size_t zbuf_oldest_idle(const struct reports_events *it)
{
	size_t oldest = SIZE_MAX;
	for (size_t i = 0; i < it->n_zbufs; i++)
		if (it->zbufs[i]->refs == 0 &&
		    (oldest == SIZE_MAX || it->zbufs[i]->idle < it->zbufs[oldest]->idle))
			oldest = i;
	return oldest;
}

/* Frees the idle buffer let go longest ago; false if there is none. */
static bool zbuf_evict_oldest(struct reports_events *it)
{
	size_t oldest = zbuf_oldest_idle(it);
	if (oldest == SIZE_MAX)
		return false;
	zbuf_evict(it, oldest);
	return true;
}

static void drop_buf(struct reports_events *it, struct cursor *c)
{
	struct zbuf *z = c->zb;
	if (!z)
		return;
	c->zb = NULL;
	if (--z->refs > 0)
		return;
	z->idle = ++it->zclock;
	if (++it->n_idle > ZIDLE_MAX)
		zbuf_evict_oldest(it);
}

/* The zchunk or zgroup at file offset at, decompressed, for a cursor:
 * the buffer already made if there is one. */
static int zbuf_take(struct reports_events *it, uint64_t at, struct zbuf **out)
{
	const struct reports_source *src = it->src;
	for (size_t i = 0; i < it->n_zbufs; i++) {
		struct zbuf *z = it->zbufs[i];
		if (z->at != at)
			continue;
		if (z->refs++ == 0)
			it->n_idle--;
		*out = z;
		return 0;
	}
	if (at > src->len || src->len - at < CAPTURE_CHUNK_HEADER_SIZE + 4)
		return -EIO;
	const uint8_t *h = src->data + at;
	uint32_t magic = reports_le32(h), plen = reports_le32(h + 4);
	const uint8_t *payload = h + CAPTURE_CHUNK_HEADER_SIZE;
	if (plen < 4 || plen > src->len - at - CAPTURE_CHUNK_HEADER_SIZE)
		return -EIO;
	uint32_t raw = reports_le32(payload);
	if (raw > (magic == CAPTURE_ZGROUP_MAGIC ? CAPTURE_ZGROUP_RAW_MAX : CAPTURE_ZCHUNK_RAW_MAX))
		return -EIO;
	while (it->zheld + raw > ZBUF_LIMIT)
		if (!zbuf_evict_oldest(it))
			return -ENOMEM;
	if (!it->zctx && !(it->zctx = ZSTD_createDCtx()))
		return -ENOMEM;
	/* the idle buffer let go longest ago makes room when they are as
	 * many as are kept (no allocation at every run) */
	struct zbuf *z = NULL;
	if (it->n_idle >= ZIDLE_MAX) {
		z = zbuf_detach(it, zbuf_oldest_idle(it));
		z->len = 0;
	}
	if (!z && !(z = calloc(1, sizeof(*z))))
		return -ENOMEM;
	int res = -ENOMEM;
	if (z->cap < raw) {
		uint8_t *d = realloc(z->data, raw);
		if (!d)
			goto drop;
		z->data = d;
		z->cap = raw;
	}
	if (reports_vec_push(&it->zbufs, &it->n_zbufs, &it->cap_zbufs, &z, sizeof(z)) < 0)
		goto drop;
	size_t got = ZSTD_decompressDCtx(it->zctx, z->data, raw, payload + 4, plen - 4);
	if (ZSTD_isError(got) || got != raw) {
		it->n_zbufs--;
		res = -EIO;
		goto drop;
	}
	z->at = at;
	z->len = raw;
	z->refs = 1;
	it->zheld += raw;
	*out = z;
	return 0;
drop:
	free(z->data);
	free(z);
	return res;
}

/* Starts reading run i and puts its cursor on the heap (unless empty). */
static int open_run(struct reports_events *it, size_t i)
{
	const struct reports_source *src = it->src;
	const struct reports_run *run = &src->runs[i];
	uint32_t slot;
	if (it->n_free > 0) {
		slot = it->free_slots[--it->n_free];
	} else {
		struct cursor none = { 0 };
		if (it->n_cur >= UINT32_MAX ||
		    reports_vec_push(&it->cur, &it->n_cur, &it->cap_cur, &none, sizeof(none)) < 0)
			return -ENOMEM;
		slot = (uint32_t)it->n_cur - 1;
	}
	struct cursor *c = &it->cur[slot];
	*c = (struct cursor){
		.prev_seq = run->prev_seq,
		.prev_addr = run->prev_addr,
		.prev_stack = run->prev_stack,
		.left = run->n_events,
		.off = reports_run_need(run),
	};
	int res = run->zchunk ? zbuf_take(it, run->zchunk, &c->zb) : 0;
	if (res < 0)
		return res;
	const uint8_t *base = c->zb ? c->zb->data : src->data;
	size_t len = c->zb ? c->zb->len : src->len;
	if (run->off > len || run->end > len || run->off > run->end) {
		drop_buf(it, c);
		return -EIO;
	}
	c->p = base + run->off;
	c->end = base + run->end;
	c->ev.order = run->first_order - 1; /* advance() counts it up (wrapping) */
	c->ev.thread = (uint16_t)run->tid;
	res = advance(src, c);
	if (res < 0)
		return res;
	if (res == 0 || c->ev.seq != run->first_seq) {
		if (res == 0 && run->n_events == 0) {
			drop_buf(it, c);
			if (reports_vec_push(&it->free_slots, &it->n_free, &it->cap_free, &slot,
					     sizeof(slot)) < 0)
				return -ENOMEM;
			return 0;
		}
		return -EIO;
	}
	if (reports_vec_push(&it->heap, &it->n_heap, &it->cap_heap, &slot, sizeof(slot)) < 0)
		return -ENOMEM;
	sift_up(it, it->n_heap - 1);
	return 0;
}

/* Gives back the pages no open or later run still needs. */
static void release_behind(struct reports_events *it)
{
	const struct reports_source *src = it->src;
	uint64_t low = src->low[it->next_run];
	for (size_t i = 0; i < it->n_heap; i++) {
		const struct cursor *c = &it->cur[it->heap[i]];
		if (c->off < low)
			low = c->off;
	}
	if (low >= it->released + RELEASE_MIN) {
		reports_source_release(src, it->released, low);
		it->released = low;
	}
}

/* An event went out: every RELEASE_EVERY, the pages behind go back. */
static inline void count_out(struct reports_events *it)
{
	if ((++it->emitted & (RELEASE_EVERY - 1)) == 0)
		release_behind(it);
}

/* Whether the leading top, having given prev and decoded next (res:
 * decode_event()'s), still leads: next is the event after prev. */
static inline bool keeps_lead(const struct reports_events *it, int res,
			      const struct reports_event *prev, const struct reports_event *next)
{
	return res > 0 && next->seq >= prev->seq &&
	       key_before(next->seq, next->order, it->bound_seq, it->bound_order);
}

/* Whether the heap's top leads (see struct reports_events), after the
 * heap changed: the bound taken again. */
static bool take_lead(struct reports_events *it)
{
	const struct reports_source *src = it->src;
	uint64_t seq = src->safe_seq, order = 0;
	if (seq == UINT64_MAX)
		order = UINT64_MAX;
	if (it->next_run < src->n_runs) {
		const struct reports_run *run = &src->runs[it->next_run];
		if (key_before(run->first_seq, run->first_order, seq, order)) {
			seq = run->first_seq;
			order = run->first_order;
		}
	}
	for (size_t i = 1; i <= 2 && i < it->n_heap; i++) {
		const struct cursor *c = &it->cur[it->heap[i]];
		if (key_before(c->ev.seq, c->ev.order, seq, order)) {
			seq = c->ev.seq;
			order = c->ev.order;
		}
	}
	it->bound_seq = seq;
	it->bound_order = order;
	if (it->n_heap == 0)
		return false;
	const struct cursor *top = &it->cur[it->heap[0]];
	return key_before(top->ev.seq, top->ev.order, seq, order);
}

/* After the heap's top gave ev and advanced (res: 1, or 0 when its run is
 * over): the heap put in order again. */
static int settle(struct reports_events *it, const struct reports_event *ev, int res)
{
	uint32_t slot = it->heap[0];
	struct cursor *c = &it->cur[slot];
	if (res == 0) {
		drop_buf(it, c);
		it->heap[0] = it->heap[--it->n_heap];
		if (reports_vec_push(&it->free_slots, &it->n_free, &it->cap_free, &slot,
				     sizeof(slot)) < 0)
			return -ENOMEM;
	} else if (c->ev.seq < ev->seq) {
		return -EIO; /* the reader saw this run's seqs never decrease */
	}
	if (it->n_heap > 0)
		sift_down(it, 0);
	it->lead = take_lead(it);
	count_out(it);
	return 1;
}

/* The heap's top gives its event and reads its next: advance()'s result. */
static inline int take_top(struct reports_events *it, struct reports_event *ev)
{
	struct cursor *c = &it->cur[it->heap[0]];
	*ev = c->ev;
	if (!c->zb)
		c->off = (uint64_t)(c->p - it->src->data);
	return advance(it->src, c);
}

int reports_events_next(struct reports_events *it, struct reports_event *ev)
{
	const struct reports_source *src = it->src;
	if (!src)
		return 0;
	if (it->lead) {
		/* the top is the next event; after it, most often the top again */
		struct cursor *c = &it->cur[it->heap[0]];
		int res = take_top(it, ev);
		if (res < 0)
			return res;
		if (keeps_lead(it, res, ev, &c->ev)) {
			count_out(it);
			return 1;
		}
		it->lead = false;
		return settle(it, ev, res);
	}
	for (;;) {
		/* every run whose first event comes before the heap's next joins
		 * it; while following a capture, only runs below safe_seq (all of
		 * them are known) */
		while (it->next_run < src->n_runs) {
			const struct reports_run *run = &src->runs[it->next_run];
			if (src->safe_seq != UINT64_MAX && run->first_seq >= src->safe_seq)
				break;
			if (it->n_heap > 0) {
				const struct cursor *top = &it->cur[it->heap[0]];
				if (top->ev.seq < run->first_seq ||
				    (top->ev.seq == run->first_seq &&
				     top->ev.order < run->first_order))
					break;
			}
			int res = open_run(it, it->next_run++);
			if (res < 0)
				return res;
		}
		if (src->safe_seq == UINT64_MAX ||
		    (it->n_heap > 0 && it->cur[it->heap[0]].ev.seq < src->safe_seq))
			break;
		reports_follow_taken(src, it->emitted);
		int res = reports_follow_feed(src, it->next_run);
		if (res < 0)
			return res;
	}
	if (it->n_heap == 0)
		return 0;
	int res = take_top(it, ev);
	if (res < 0)
		return res;
	return settle(it, ev, res);
}

int reports_events_read(struct reports_events *it, struct reports_event *evs, size_t max)
{
	const struct reports_source *src = it->src;
	size_t n = 0;
	while (n < max) {
		if (!it->lead) {
			int res = reports_events_next(it, &evs[n]);
			if (res <= 0)
				return res < 0 ? res : (int)n;
			n++;
			continue;
		}
		/* The top leads: its events in a row, the heap untouched.  The
		 * cursor's state stays in locals until the lead ends (or a
		 * release needs its offset), and each event is decoded straight
		 * into its place in evs (c->ev only when there is none left),
		 * so that no event is copied while its fields are being stored. */
		struct cursor *c = &it->cur[it->heap[0]];
		const uint8_t *p = c->p, *at = p;
		uint64_t left = c->left, seq = c->prev_seq, addr = c->prev_addr;
		uint64_t stack = c->prev_stack;
		bool keep;
		int res;
		evs[n] = c->ev;
		do {
			const struct reports_event *ev = &evs[n++];
			struct reports_event *nx = n < max ? &evs[n] : &c->ev;
			at = p; /* the cursor's unread records start here */
			if ((res = decode_event(src, &p, c->end, &left, &seq, &addr, &stack, nx)) < 0)
				return res;
			nx->order = ev->order + 1;
			nx->thread = ev->thread;
			keep = keeps_lead(it, res, ev, nx);
			bool release = keep && ((it->emitted + 1) & (RELEASE_EVERY - 1)) == 0;
			if (!keep || release || n == max) {
				c->p = p;
				c->left = left;
				c->prev_seq = seq;
				c->prev_addr = addr;
				c->prev_stack = stack;
				if (!c->zb)
					c->off = (uint64_t)(at - src->data);
			}
			if (keep)
				count_out(it);
		} while (keep && n < max);
		if (keep)
			return (int)n; /* c->ev holds the next (nx was c->ev) */
		if (res > 0 && n < max)
			c->ev = evs[n];
		it->lead = false;
		if ((res = settle(it, &evs[n - 1], res)) < 0)
			return res;
	}
	return (int)n;
}

/* ---- a whole pass, on two threads once nothing is left to wait for ------
 * Decoding and merging the events (with the reader's index pass, while a
 * capture is followed) is about half of a pass, what the pass does with
 * them (the analysis's replay, the HTML page's curve) the other half, and
 * both ran on one thread, also after the program had ended, when memprof
 * run waits for nothing else.  Once the whole capture is known (memprof
 * report from the start; memprof run once the program is over and the
 * follower has read the rest), the merge hands batches to a thread that
 * applies them, through a ring.  That thread reads nothing the merge
 * still changes: the reader's stacks and counts are final by then. */

/* Events in a batch; batches in the ring.  A side that waits (the ring
 * empty, or full) is woken when half the ring is there for it, not at
 * every batch: waking a thread per batch cost more than the second core
 * gave (churn's report: 0.35 s of system time). */
#define APPLY_BATCH 64
#define PIPE_BATCHES 64
#define PIPE_WAKE (PIPE_BATCHES / 2)

struct pipe {
	reports_apply_fn *apply;
	void *ctx;
	uint64_t index; /* the applying thread's next event */
	struct reports_event ev[PIPE_BATCHES][APPLY_BATCH];
	size_t n[PIPE_BATCHES];
	pthread_mutex_t lock;
	pthread_cond_t cond; /* one side waits at a time: full or empty */
	size_t put, taken;   /* batches, under lock */
	bool done;           /* no batch will come: under lock */
	bool failed;         /* apply stopped with res: under lock */
	bool waits;          /* the side that waits, if any: under lock */
	int res;
	pthread_t thread;
};

static void *pipe_main(void *arg)
{
	struct pipe *pp = arg;
	pthread_mutex_lock(&pp->lock);
	for (;;) {
		while (pp->taken == pp->put && !pp->done) {
			pp->waits = true;
			pthread_cond_wait(&pp->cond, &pp->lock);
		}
		if (pp->taken == pp->put)
			break; /* done */
		size_t slot = pp->taken % PIPE_BATCHES;
		pthread_mutex_unlock(&pp->lock);
		int res = pp->apply(pp->ctx, pp->ev[slot], pp->n[slot], &pp->index);
		pthread_mutex_lock(&pp->lock);
		pp->taken++;
		if (res < 0) {
			pp->res = res;
			pp->failed = true;
		}
		if ((pp->waits && pp->put - pp->taken <= PIPE_WAKE) || res < 0) {
			pp->waits = false;
			pthread_cond_signal(&pp->cond);
		}
		if (res < 0)
			break;
	}
	pthread_mutex_unlock(&pp->lock);
	return NULL;
}

/* Whether this process may use more than one core. */
static bool several_cores(void)
{
	cpu_set_t set;
	return sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 1;
}

/* The rest of the pass from event index on, applied on a second thread:
 * 0, a negative errno, or 1 when that thread could not start (nothing
 * was taken from it). */
static int pipe_rest(struct reports_events *it, reports_apply_fn *apply, void *ctx,
		     uint64_t index)
{
	struct pipe *pp = calloc(1, sizeof(*pp));
	if (!pp)
		return 1;
	pp->apply = apply;
	pp->ctx = ctx;
	pp->index = index;
	pthread_mutex_init(&pp->lock, NULL);
	pthread_cond_init(&pp->cond, NULL);
	int res = 1;
	if (pthread_create(&pp->thread, NULL, pipe_main, pp) != 0)
		goto out;
	res = 0;
	for (;;) {
		pthread_mutex_lock(&pp->lock);
		while (pp->put - pp->taken == PIPE_BATCHES && !pp->failed) {
			pp->waits = true;
			pthread_cond_wait(&pp->cond, &pp->lock);
		}
		bool failed = pp->failed;
		size_t slot = pp->put % PIPE_BATCHES;
		pthread_mutex_unlock(&pp->lock);
		int n = failed ? 0 : reports_events_read(it, pp->ev[slot], APPLY_BATCH);
		pthread_mutex_lock(&pp->lock);
		if (n > 0) {
			pp->n[slot] = (size_t)n;
			pp->put++;
		} else {
			res = n;
			pp->done = true;
		}
		if (pp->waits && (pp->put - pp->taken >= PIPE_WAKE || pp->done)) {
			pp->waits = false;
			pthread_cond_signal(&pp->cond);
		}
		pthread_mutex_unlock(&pp->lock);
		if (n <= 0)
			break;
	}
	pthread_join(pp->thread, NULL);
	if (res == 0 && pp->failed)
		res = pp->res;
out:
	pthread_cond_destroy(&pp->cond);
	pthread_mutex_destroy(&pp->lock);
	free(pp);
	return res;
}

int reports_events_apply(struct reports_events *it, reports_apply_fn *apply, void *ctx)
{
	const struct reports_source *src = it->src;
	struct reports_event batch[APPLY_BATCH];
	uint64_t index = 0;
	bool pipe = several_cores();
	for (;;) {
		if (pipe && src && src->safe_seq == UINT64_MAX) {
			int res = pipe_rest(it, apply, ctx, index);
			if (res <= 0)
				return res;
			pipe = false; /* no second thread: on here */
		}
		int n = reports_events_read(it, batch, APPLY_BATCH);
		if (n <= 0)
			return n;
		int res = apply(ctx, batch, (size_t)n, &index);
		if (res < 0)
			return res;
	}
}
