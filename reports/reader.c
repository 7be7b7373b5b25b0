/*
 * reader.c: reads a capture file (include/memprof/capture.h) into the model
 * of reports.h.  Entry points: reports_capture_load_file(),
 * reports_capture_load_buffer().
 *
 * Every input is treated as hostile: each varint and string is checked
 * against the end of its chunk, every count that sizes an allocation is
 * checked against the bytes that remain, and nothing recurses on input.
 * A file that ends inside a chunk is read up to its last complete chunk and
 * flagged incomplete; a wrong magic, version or checksum, an unknown tag or
 * a record running past its chunk is an error that names the byte offset.
 *
 * The allocation events are checked and counted but not kept: each chunk's
 * events become a run (reports-private.h) that events.c reads again, on
 * every pass, merged with the other runs in (seq, order) order.  A chunk
 * whose seqs go backwards (a damaged capture) is cut into several runs, so
 * the merge still sees every event in order.  Pages of a mapped file are
 * given back behind the reader as it goes.
 *
 * Stacks arrive as nodes of a prefix tree (STACK id parent ip), possibly
 * after their first use by another thread.  While reading, each stack id
 * gets a raw slot (created on first mention, filled when its STACK record
 * arrives); after the last chunk, each raw slot is mapped iteratively to a
 * canonical node keyed by (canonical parent, ip), so that equal stacks
 * recorded by different threads become one (while a capture is followed,
 * the slots whose stacks are whole are mapped as they come, in the same
 * order, so that little is left for after the program).  A slot never filled is a
 * frame of address 0: unknown, not an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memprof/capture.h>
#include <zstd.h>

#include "reports-private.h"
#include "reports.h"

#define NO_INDEX UINT32_MAX
/* Most size classes a STATS record may list. */
#define STATS_CLASSES_MAX 4096u

enum raw_state { RAW_NEW = 0, RAW_VISITING, RAW_DONE };
#define RAW_STATE 3u   /* raw_flags: the slot's enum raw_state */
#define RAW_DEFINED 4u /* raw_flags: its STACK record came */

/* Stack ids below this many times the nodes seen (plus a slack) are
 * indexed in a plain array; a hostile capture's huge ids go to a map. */
#define DENSE_SLACK 65536u
#define DENSE_FACTOR 4u
/* Pages behind the reader are given back every this many bytes. */
#define RELEASE_STEP (16u << 20)

/* A raw slot's description, needed until the slot is resolved.  Slots
 * keep their canonical node and flags in flat arrays, their descriptions
 * in blocks of RAW_BLOCK, each freed once every slot in it is resolved:
 * while a capture is followed, slots are resolved soon after they come,
 * and a deep recursion's millions of stacks cost 5 bytes a slot instead
 * of 24. */
struct raw_frame {
	uint64_t parent_id;
	uint64_t ip;
};
#define RAW_BLOCK_BITS 12u
#define RAW_BLOCK (1u << RAW_BLOCK_BITS)

struct unload {
	uint64_t module_id;
	uint64_t seq;
};

struct reader {
	const uint8_t *data;
	size_t len;
	struct reports_capture *cap;
	struct reports_error *err;

	uint32_t *raw_canon; /* canonical node of each raw slot, NO_INDEX before */
	uint8_t *raw_flags;  /* RAW_STATE, RAW_DEFINED */
	size_t n_raw, cap_canon, cap_flags;
	struct raw_frame **raw_blocks; /* NULL once freed */
	size_t n_raw_blocks, cap_raw_blocks;
	size_t raw_blocks_freed; /* blocks below this are freed */
	struct reports_map raw_by_id; /* ids at or above n_dense */
	uint32_t *raw_dense;          /* ids below n_dense, NO_INDEX when unseen */
	size_t n_dense;

	struct reports_source *src;
	size_t cap_runs;
	bool run_open;      /* the chunk's current run can take one more event */
	uint64_t run_last;  /* seq of the run's last event */
	uint64_t chunk_end; /* file offset where the current chunk ends */
	uint64_t zchunk;    /* file offset of the current zchunk or zgroup, 0 for
			       a chunk in the file */
	uint8_t *zbuf;      /* a zchunk's records or a zgroup's chunks, decompressed */
	size_t zbuf_cap;
	ZSTD_DCtx *zctx;

	/* canonical nodes: open addressing (linear probing) over slots of
	 * the node's index + 1 (0: empty), beside a byte of the key's hash
	 * that spares reading the nodes of most other keys on the way (5
	 * bytes a slot: a deep recursion has millions of nodes); a key's
	 * home is its hash's top canon_lg bits */
	uint32_t *canon_idx;
	uint8_t *canon_tag;
	size_t canon_mask;
	unsigned canon_lg;
	size_t cap_nodes;
	size_t n_resolved; /* raw slots below this are resolved */

	struct unload *unloads;
	size_t n_unloads, cap_unloads;

	size_t cap_modules, cap_samples, cap_threads, cap_badfrees,
		cap_notes, cap_scans, cap_scan_blocks, cap_scan_edges, cap_objtypes,
		cap_objects, cap_objedges, cap_snapshots;
	size_t cap_objcounts, cap_scan_refs; /* objects: OBJCOUNT, SCANREF */

	/* per-chunk delta state */
	uint32_t version;
	uint32_t chunk_tid;
	uint64_t prev_seq;
	/* the address delta state is not kept per event (the index needs
	 * it only where a run starts inside a chunk, rarely): it was addr_val
	 * before the record at addr_from, in the chunk being read */
	const uint8_t *addr_from;
	uint64_t addr_val;
	uint64_t prev_stack;   /* version 2: the last ALLOC's stack id */
	uint64_t prev_node;    /* version 2: the last STACK's id and ip */
	uint64_t prev_node_ip;
	uint64_t order;
	uint64_t record_off; /* file offset of the record being read */
	uint64_t record_at;  /* its offset in the file, or in a zchunk's records */

	size_t off;          /* the next chunk's file offset */
	size_t released;     /* pages below it were given back */
	uint64_t flushed;    /* the highest FLUSHED seq read */
};

static const char *const tag_names[CAPTURE_TAG_MAX + 1] = {
	[CAPTURE_PROCESS] = "PROCESS",     [CAPTURE_ALLOC] = "ALLOC",
	[CAPTURE_FREE] = "FREE",           [CAPTURE_STACK] = "STACK",
	[CAPTURE_MODULE] = "MODULE",       [CAPTURE_UNLOAD] = "UNLOAD",
	[CAPTURE_SAMPLE] = "SAMPLE",       [CAPTURE_THREAD] = "THREAD",
	[CAPTURE_BADFREE] = "BADFREE",     [CAPTURE_STATS] = "STATS",
	[CAPTURE_NOTE] = "NOTE",           [CAPTURE_LOST] = "LOST",
	[CAPTURE_END] = "END",             [CAPTURE_SCAN] = "SCAN",
	[CAPTURE_SCANBLOCK] = "SCANBLOCK", [CAPTURE_SCANEDGE] = "SCANEDGE",
	[CAPTURE_OBJTYPE] = "OBJTYPE",     [CAPTURE_OBJECT] = "OBJECT",
	[CAPTURE_OBJEDGE] = "OBJEDGE",     [CAPTURE_SNAPSHOT] = "SNAPSHOT",
	[CAPTURE_OBJCOUNT] = "OBJCOUNT",   [CAPTURE_SCANREF] = "SCANREF",
	[CAPTURE_FLUSHED] = "FLUSHED",
};

__attribute__((format(printf, 3, 4))) static int fail(struct reader *r, uint64_t off,
						      const char *fmt, ...)
{
	if (r->err) {
		va_list ap;
		va_start(ap, fmt);
		r->err->offset = off;
		int n = vsnprintf(r->err->message, sizeof(r->err->message), fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < sizeof(r->err->message))
			snprintf(r->err->message + n, sizeof(r->err->message) - (size_t)n,
				 " at byte offset %llu", (unsigned long long)off);
	}
	return -EINVAL;
}

/* The record being read starts at at (in the file, or in a zchunk's
 * records: then errors name the chunk). */
static void record_here(struct reader *r, uint64_t at)
{
	r->record_at = at;
	r->record_off = r->zchunk ? r->zchunk : at;
}

static int nomem(struct reader *r)
{
	if (r->err) {
		r->err->offset = r->record_off;
		snprintf(r->err->message, sizeof(r->err->message),
			 "out of memory while reading the capture");
	}
	return -ENOMEM;
}

/* ---- field decoding ---------------------------------------------------- */

struct cursor {
	const uint8_t *p;
	const uint8_t *end;
	int tag;
};

static int overrun(struct reader *r, const struct cursor *c)
{
	return fail(r, r->record_off, "corrupt capture: %s record overruns its chunk",
		    tag_names[c->tag]);
}

/* On error the outputs are still set (to zero), so no caller can read an
 * uninitialized value whatever the compiler proves about fail(). */
static int get_u(struct reader *r, struct cursor *c, uint64_t *v)
{
	*v = 0;
	if (capture_get_u64(&c->p, c->end, v) < 0)
		return overrun(r, c);
	return 0;
}

/* Reads n varints into the pointers that follow. */
static int get_many(struct reader *r, struct cursor *c, int n, ...)
{
	va_list ap;
	va_start(ap, n);
	int res = 0;
	for (int i = 0; i < n && res == 0; i++)
		res = get_u(r, c, va_arg(ap, uint64_t *));
	va_end(ap);
	return res;
}

static int get_str(struct reader *r, struct cursor *c, const uint8_t **s, size_t *len)
{
	*s = NULL;
	*len = 0;
	uint64_t n;
	int res = get_u(r, c, &n);
	if (res < 0)
		return res;
	if (n > CAPTURE_STRING_MAX)
		return fail(r, r->record_off,
			    "corrupt capture: %s record has a string of %llu bytes (at most %u)",
			    tag_names[c->tag], (unsigned long long)n, CAPTURE_STRING_MAX);
	if (n > (uint64_t)(c->end - c->p))
		return overrun(r, c);
	*s = c->p;
	*len = (size_t)n;
	c->p += n;
	return 0;
}

static int get_cstr(struct reader *r, struct cursor *c, char **out)
{
	const uint8_t *s;
	size_t len;
	int res = get_str(r, c, &s, &len);
	if (res < 0)
		return res;
	*out = reports_strndup((const char *)s, len);
	return *out ? 0 : nomem(r);
}

static int bad_value(struct reader *r, const struct cursor *c, const char *field,
		     uint64_t v)
{
	return fail(r, r->record_off, "corrupt capture: %s record has an invalid %s (%llu)",
		    tag_names[c->tag], field, (unsigned long long)v);
}

/* ---- stacks --------------------------------------------------------------- */

/* The raw slot of a stack id (created empty on first mention), or
 * REPORTS_NO_STACK for id 0. */
static int raw_slot(struct reader *r, uint64_t id, uint32_t *out)
{
	if (id == 0) {
		*out = REPORTS_NO_STACK;
		return 0;
	}
	if (id < r->n_dense && r->raw_dense[id] != NO_INDEX) {
		*out = r->raw_dense[id];
		return 0;
	}
	if (id >= r->n_dense && reports_map_get(&r->raw_by_id, id, out))
		return 0;
	if (r->n_raw >= UINT32_MAX - 1)
		return nomem(r);
	/* a new id: grow the array over it when ids stay dense */
	if (id >= r->n_dense && id < (uint64_t)(r->n_raw + DENSE_SLACK) * DENSE_FACTOR) {
		size_t n = r->n_dense ? r->n_dense : DENSE_SLACK;
		while (n <= id)
			n *= 2;
		uint32_t *d = realloc(r->raw_dense, n * sizeof(*d));
		if (!d)
			return nomem(r);
		memset(d + r->n_dense, 0xff, (n - r->n_dense) * sizeof(*d));
		/* ids of the map that the array now covers move into it */
		struct reports_map *m = &r->raw_by_id;
		size_t pos = 0;
		uint64_t key;
		uint32_t val;
		while (reports_map_next(m, &pos, &key, &val))
			if (key < n)
				d[key] = val;
		for (size_t k = r->n_dense; k < n; k++)
			if (d[k] != NO_INDEX)
				reports_map_remove(m, k, NULL);
		r->raw_dense = d;
		r->n_dense = n;
		r->src->raw_dense = d;
		r->src->n_raw_dense = n;
	}
	uint32_t idx = (uint32_t)r->n_raw;
	if (reports_vec_reserve(&r->raw_canon, &r->cap_canon, r->n_raw + 1,
				sizeof(*r->raw_canon)) < 0 ||
	    reports_vec_reserve(&r->raw_flags, &r->cap_flags, r->n_raw + 1, 1) < 0)
		return nomem(r);
	if ((idx & (RAW_BLOCK - 1)) == 0) {
		/* descriptions are read only once written (RAW_DEFINED) */
		struct raw_frame *block = malloc(RAW_BLOCK * sizeof(*block));
		if (!block || reports_vec_push(&r->raw_blocks, &r->n_raw_blocks, &r->cap_raw_blocks,
					       &block, sizeof(block)) < 0) {
			free(block);
			return nomem(r);
		}
	}
	r->raw_canon[idx] = NO_INDEX;
	r->raw_flags[idx] = RAW_NEW;
	r->n_raw++;
	if (id < r->n_dense)
		r->raw_dense[id] = idx;
	else if (reports_map_put(&r->raw_by_id, id, idx) < 0)
		return nomem(r);
	*out = idx;
	return 0;
}

static struct raw_frame *raw_frame(const struct reader *r, uint32_t i)
{
	return &r->raw_blocks[i >> RAW_BLOCK_BITS][i & (RAW_BLOCK - 1)];
}

static unsigned raw_state(const struct reader *r, uint32_t i)
{
	return r->raw_flags[i] & RAW_STATE;
}

static bool raw_defined(const struct reader *r, uint32_t i)
{
	return r->raw_flags[i] & RAW_DEFINED;
}

static void raw_set_state(struct reader *r, uint32_t i, unsigned state)
{
	r->raw_flags[i] = (uint8_t)((r->raw_flags[i] & ~RAW_STATE) | state);
}

/* Every slot below n_resolved is resolved: their blocks of descriptions
 * are not read again. */
static void raw_release(struct reader *r)
{
	while ((r->raw_blocks_freed + 1) * RAW_BLOCK <= r->n_resolved) {
		free(r->raw_blocks[r->raw_blocks_freed]);
		r->raw_blocks[r->raw_blocks_freed++] = NULL;
	}
}

/* The raw slot of an id already mentioned, or NO_INDEX. */
static uint32_t raw_find(const struct reader *r, uint64_t id)
{
	uint32_t v;
	if (id < r->n_dense)
		return r->raw_dense[id];
	return reports_map_get(&r->raw_by_id, id, &v) ? v : NO_INDEX;
}

static uint64_t canon_hash(uint32_t parent, uint64_t ip)
{
	return reports_hash64(ip ^ reports_hash64((uint64_t)parent + 1));
}

static size_t canon_home(uint64_t hash, unsigned lg)
{
	return (size_t)(hash >> (64 - lg));
}

/* The table, of nslots (a power of two, at least 256), the nodes put in
 * it in their order: their reads go one after the other. */
static int canon_resize(struct reader *r, size_t nslots)
{
	uint32_t *idx = calloc(nslots, sizeof(*idx));
	uint8_t *tag = malloc(nslots);
	if (!idx || !tag) {
		free(idx);
		free(tag);
		return -ENOMEM;
	}
	unsigned lg = 0;
	while (((size_t)1 << lg) < nslots)
		lg++;
	const struct reports_capture *cap = r->cap;
	size_t mask = nslots - 1;
	for (size_t i = 0; i < cap->n_nodes; i++) {
		uint64_t hash = canon_hash(cap->nodes[i].parent, cap->nodes[i].ip);
		size_t h = canon_home(hash, lg);
		while (idx[h])
			h = (h + 1) & mask;
		idx[h] = (uint32_t)i + 1;
		tag[h] = (uint8_t)hash;
	}
	free(r->canon_idx);
	free(r->canon_tag);
	r->canon_idx = idx;
	r->canon_tag = tag;
	r->canon_mask = mask;
	r->canon_lg = lg;
	return 0;
}

/* The table's size for n nodes: at most 3/4 full. */
static size_t canon_want(size_t n)
{
	size_t want = 256;
	while (want / 4 * 3 < n)
		want *= 2;
	return want;
}

/* The canonical node for (parent, ip), created when new. */
static int canon_intern(struct reader *r, uint32_t parent, uint64_t ip, uint32_t *out)
{
	struct reports_capture *cap = r->cap;
	if (!r->canon_idx || (cap->n_nodes + 1) > (r->canon_mask + 1) / 4 * 3) {
		if (canon_resize(r, r->canon_idx ? (r->canon_mask + 1) * 2 : 256) < 0)
			return nomem(r);
	}
	uint64_t hash = canon_hash(parent, ip);
	uint8_t tag = (uint8_t)hash;
	size_t h = canon_home(hash, r->canon_lg);
	uint32_t v;
	while ((v = r->canon_idx[h])) {
		if (r->canon_tag[h] == tag) {
			const struct reports_node *n = &cap->nodes[v - 1];
			if (n->parent == parent && n->ip == ip) {
				*out = v - 1;
				return 0;
			}
		}
		h = (h + 1) & r->canon_mask;
	}
	if (cap->n_nodes >= UINT32_MAX - 1)
		return nomem(r);
	uint32_t depth = 1;
	if (parent != REPORTS_NO_STACK && cap->nodes[parent].depth < UINT32_MAX)
		depth = cap->nodes[parent].depth + 1;
	struct reports_node node = { .ip = ip, .parent = parent, .depth = depth };
	if (reports_vec_push(&cap->nodes, &cap->n_nodes, &r->cap_nodes, &node, sizeof(node)) < 0)
		return nomem(r);
	r->canon_idx[h] = (uint32_t)cap->n_nodes;
	r->canon_tag[h] = tag;
	*out = (uint32_t)cap->n_nodes - 1;
	return 0;
}

/* Maps raw slot i (and the unresolved slots above it) to canonical nodes,
 * without recursion: walk up to a resolved ancestor, the root, a cycle or
 * the depth limit, then intern on the way back down. */
static int resolve_raw(struct reader *r, uint32_t i, uint32_t *path)
{
	size_t n = 0;
	uint32_t j = i;
	uint32_t base = REPORTS_NO_STACK;
	int res;
	while (n < REPORTS_STACK_DEPTH_MAX) {
		unsigned state = raw_state(r, j);
		if (state == RAW_DONE) {
			base = r->raw_canon[j];
			break;
		}
		if (state == RAW_VISITING)
			break; /* a cycle: cut the stack here */
		raw_set_state(r, j, RAW_VISITING);
		path[n++] = j;
		uint64_t parent_id = raw_defined(r, j) ? raw_frame(r, j)->parent_id : 0;
		if (parent_id == 0)
			break;
		uint32_t parent = raw_find(r, parent_id);
		if (parent == NO_INDEX) {
			/* a parent never described: one unknown frame */
			if ((res = canon_intern(r, REPORTS_NO_STACK, 0, &base)) < 0)
				return res;
			break;
		}
		j = parent;
	}
	while (n > 0) {
		uint32_t k = path[--n];
		uint64_t ip = raw_defined(r, k) ? raw_frame(r, k)->ip : 0;
		if ((res = canon_intern(r, base, ip, &base)) < 0)
			return res;
		r->raw_canon[k] = base;
		raw_set_state(r, k, RAW_DONE);
	}
	return 0;
}

static uint32_t canon_of(struct reader *r, uint32_t raw)
{
	return raw == REPORTS_NO_STACK ? REPORTS_NO_STACK : r->raw_canon[raw];
}

/* Whether resolve_raw() would map raw slot i now as it would at the end:
 * every slot it walks through is described and its parent known, up to a
 * resolved slot, a root or the depth limit (a cycle among described slots
 * runs into the limit).  Slots below i must be resolved already. */
static bool raw_final(const struct reader *r, uint32_t i)
{
	uint32_t j = i;
	for (size_t n = 0; n < REPORTS_STACK_DEPTH_MAX; n++) {
		if (raw_state(r, j) == RAW_DONE)
			return true;
		if (!raw_defined(r, j))
			return false;
		uint64_t parent_id = raw_frame(r, j)->parent_id;
		if (parent_id == 0)
			return true;
		if ((j = raw_find(r, parent_id)) == NO_INDEX)
			return false;
	}
	return true;
}

/* While a capture is followed: resolves the raw slots, in slot order, as
 * far as their result is final, so that the work is done while the
 * program runs.  The canonical nodes come out in the order, and so with
 * the numbers, that resolve_stacks() would give them at the end. */
static int resolve_ready(struct reader *r)
{
	uint32_t path[REPORTS_STACK_DEPTH_MAX];
	for (; r->n_resolved < r->n_raw; r->n_resolved++) {
		uint32_t i = (uint32_t)r->n_resolved;
		if (raw_state(r, i) == RAW_DONE)
			continue;
		if (!raw_final(r, i))
			break;
		int res = resolve_raw(r, i, path);
		if (res < 0)
			return res;
	}
	raw_release(r);
	return 0;
}

static int resolve_stacks(struct reader *r)
{
	struct reports_capture *cap = r->cap;
	uint32_t path[REPORTS_STACK_DEPTH_MAX];
	/* room for every node at once: no rehashing as the table fills */
	size_t want = canon_want(cap->n_nodes + (r->n_raw - r->n_resolved) + 1);
	if ((!r->canon_idx || r->canon_mask + 1 < want) && canon_resize(r, want) < 0)
		return nomem(r);
	/* at most a node per raw slot and the unknown frame: no copies as
	 * the nodes grow */
	size_t most = cap->n_nodes + (r->n_raw - r->n_resolved) + 1;
	if (most > r->cap_nodes) {
		struct reports_node *nodes = realloc(cap->nodes, most * sizeof(*nodes));
		if (!nodes)
			return nomem(r);
		cap->nodes = nodes;
		r->cap_nodes = most;
	}
	/* the slots below n_resolved were resolved while following */
	for (; r->n_resolved < r->n_raw; r->n_resolved++) {
		int res = resolve_raw(r, (uint32_t)r->n_resolved, path);
		if (res < 0)
			return res;
		raw_release(r);
	}
	/* the events' stack ids, for events.c: id -> canonical node */
	struct reports_source *src = r->src;
	if (r->n_dense > 0) {
		src->dense = malloc(r->n_dense * sizeof(*src->dense));
		if (!src->dense)
			return nomem(r);
		src->n_dense = r->n_dense;
		src->dense[0] = REPORTS_NO_STACK;
		for (size_t id = 1; id < r->n_dense; id++)
			src->dense[id] = r->raw_dense[id] == NO_INDEX
						 ? REPORTS_NO_STACK
						 : canon_of(r, r->raw_dense[id]);
	}
	size_t pos = 0;
	uint64_t key;
	uint32_t val;
	while (reports_map_next(&r->raw_by_id, &pos, &key, &val))
		if (reports_map_put(&src->sparse, key, canon_of(r, val)) < 0)
			return nomem(r);
	for (size_t i = 0; i < cap->n_badfrees; i++) {
		struct reports_badfree *b = &cap->badfrees[i];
		b->free_stack = canon_of(r, b->free_stack);
		b->alloc_stack = canon_of(r, b->alloc_stack);
		b->first_free_stack = canon_of(r, b->first_free_stack);
	}
	for (size_t i = 0; i < cap->n_scan_blocks; i++)
		cap->scan_blocks[i].stack = canon_of(r, cap->scan_blocks[i].stack);
	return 0;
}

/* ---- records ------------------------------------------------------------ */

static int rec_process(struct reader *r, struct cursor *c)
{
	struct reports_capture *cap = r->cap;
	uint64_t argc;
	int res;
	if (cap->has_process)
		return fail(r, r->record_off, "corrupt capture: a second PROCESS record");
	if ((res = get_many(r, c, 3, &cap->pid, &cap->ppid, &cap->start_realtime_ns)) < 0 ||
	    (res = get_cstr(r, c, &cap->exe)) < 0 || (res = get_u(r, c, &argc)) < 0)
		return res;
	/* every argument takes at least one byte of the chunk */
	if (argc > (uint64_t)(c->end - c->p))
		return overrun(r, c);
	cap->argv = calloc((size_t)argc + 1, sizeof(*cap->argv));
	if (!cap->argv)
		return nomem(r);
	for (uint64_t i = 0; i < argc; i++) {
		if ((res = get_cstr(r, c, &cap->argv[i])) < 0)
			return res;
		cap->argc++;
	}
	if ((res = get_u(r, c, &cap->process_flags)) < 0)
		return res;
	cap->has_process = true;
	return 0;
}

/* The address delta state before the record at rec, in the chunk being
 * read: its events from the last point where it was known are read again
 * (every record up to rec was checked already). */
static uint64_t addr_before(struct reader *r, const uint8_t *rec)
{
	const uint8_t *p = r->addr_from;
	uint64_t addr = r->addr_val, v;
	while (p < rec) {
		int tag = *p++;
		if (tag == CAPTURE_ALLOC || tag == CAPTURE_FREE) {
			if (reports_skip_u64(&p, rec) < 0 || reports_get_u64(&p, rec, &v) < 0)
				break;
			addr += (uint64_t)capture_unzigzag(v);
			if (tag == CAPTURE_ALLOC &&
			    (reports_skip_u64(&p, rec) < 0 || reports_skip_u64(&p, rec) < 0))
				break;
		} else if (reports_record_skip(tag, &p, rec) < 0) {
			break;
		}
	}
	r->addr_from = rec;
	r->addr_val = addr;
	return addr;
}

/* A stretch of ALLOC and FREE records (the commonest, most of a chunk),
 * from the one whose tag c->tag was just read to the next other record or
 * the chunk's end (payload is the chunk's records, at file offset off):
 * each is checked, counted and added to the chunk's current run (a new
 * run when its seq goes backwards); events.c reads them again.  The delta
 * state and the counts stay in locals over the stretch and are written
 * back once, so that an event costs its varints and little else: its
 * address and size are stepped over, not decoded (addr_before()). */
static int read_events(struct reader *r, struct cursor *c, const uint8_t *payload, uint64_t off)
{
	struct reports_source *src = r->src;
	struct reports_capture *cap = r->cap;
	const uint8_t *p = c->p, *end = c->end;
	uint64_t seq = r->prev_seq, stack = r->prev_stack;
	uint64_t run_last = r->run_last, order = r->order;
	uint64_t lo = UINT64_MAX, hi = 0, in_run = 0;
	bool v2 = r->version >= 2, run_open = r->run_open;
	int tag = c->tag, res = 0;
	for (;;) {
		const uint8_t *rec = p - 1;
		uint64_t dseq, id = 0;
		bool alloc = tag == CAPTURE_ALLOC;
		if (reports_get_u64(&p, end, &dseq) < 0 || reports_skip_u64(&p, end) < 0 ||
		    (alloc && (reports_skip_u64(&p, end) < 0 ||
			       reports_get_u64(&p, end, &id) < 0))) {
			record_here(r, off + (uint64_t)(rec - payload));
			res = overrun(r, c);
			break;
		}
		uint64_t prev_seq = seq, prev_stack = stack;
		seq += dseq;
		if (alloc && v2) /* a delta from the last ALLOC's */
			stack = id = stack + (uint64_t)capture_unzigzag(id);
		/* the id is mentioned: an unknown frame if never described
		 * (known ids, the common case, looked up without the call) */
		if (alloc && !(id != 0 && id < r->n_dense && r->raw_dense[id] != NO_INDEX)) {
			uint32_t slot;
			record_here(r, off + (uint64_t)(rec - payload));
			if ((res = raw_slot(r, id, &slot)) < 0)
				break;
		}
		if (!run_open || seq < run_last) {
			struct reports_run run = {
				.off = off + (uint64_t)(rec - payload),
				.end = r->chunk_end,
				.zchunk = r->zchunk,
				.prev_seq = prev_seq,
				/* a chunk's first run starts from 0 */
				.prev_addr = run_open ? addr_before(r, rec) : 0,
				.prev_stack = prev_stack,
				.first_seq = seq,
				.first_order = order,
				.tid = r->chunk_tid,
			};
			if (run_open)
				src->runs[src->n_runs - 1].n_events += in_run;
			in_run = 0;
			record_here(r, run.off);
			if (reports_vec_push(&src->runs, &src->n_runs, &r->cap_runs, &run,
					     sizeof(run)) < 0) {
				run_open = false;
				res = nomem(r);
				break;
			}
			run_open = true;
		}
		in_run++;
		run_last = seq;
		order++;
		lo = seq < lo ? seq : lo;
		hi = seq > hi ? seq : hi;
		if (p >= end || (*p != CAPTURE_ALLOC && *p != CAPTURE_FREE))
			break;
		tag = *p++;
	}
	if (run_open)
		src->runs[src->n_runs - 1].n_events += in_run;
	uint64_t n = order - r->order;
	if (n > 0) {
		if (cap->n_events == 0 || lo < cap->events_first_seq)
			cap->events_first_seq = lo;
		if (cap->n_events == 0 || hi > cap->events_last_seq)
			cap->events_last_seq = hi;
		cap->n_events += n;
	}
	c->p = p;
	r->prev_seq = seq;
	r->prev_stack = stack;
	r->run_last = run_last;
	r->run_open = run_open;
	r->order = order;
	return res;
}

static int rec_stack(struct reader *r, struct cursor *c)
{
	uint64_t id, parent, ip;
	uint32_t slot;
	int res;
	if ((res = get_many(r, c, 3, &id, &parent, &ip)) < 0)
		return res;
	if (r->version >= 2) {
		/* id - the last id, id - parent, ip - the last ip */
		id = r->prev_node + (uint64_t)capture_unzigzag(id);
		parent = id - (uint64_t)capture_unzigzag(parent);
		ip = r->prev_node_ip + (uint64_t)capture_unzigzag(ip);
		r->prev_node = id;
		r->prev_node_ip = ip;
	}
	if (id == 0)
		return bad_value(r, c, "stack id", id);
	if ((res = raw_slot(r, id, &slot)) < 0)
		return res;
	if (!raw_defined(r, slot)) {
		/* a later duplicate of an id keeps the first description (a
		 * resolved slot is described: its block may be gone) */
		r->raw_flags[slot] |= RAW_DEFINED;
		*raw_frame(r, slot) = (struct raw_frame){ parent == id ? 0 : parent, ip };
	}
	return 0;
}

static int rec_module(struct reader *r, struct cursor *c)
{
	struct reports_module m = { 0 };
	const uint8_t *bid;
	size_t bid_len;
	int res;
	if ((res = get_many(r, c, 4, &m.id, &m.load_bias, &m.start, &m.end)) < 0 ||
	    (res = get_cstr(r, c, &m.path)) < 0)
		return res;
	if ((res = get_str(r, c, &bid, &bid_len)) < 0) {
		free(m.path);
		return res;
	}
	if (bid_len > 0) {
		m.build_id = malloc(bid_len);
		if (!m.build_id) {
			free(m.path);
			return nomem(r);
		}
		memcpy(m.build_id, bid, bid_len);
		m.build_id_len = bid_len;
	}
	struct reports_capture *cap = r->cap;
	if (reports_vec_push(&cap->modules, &cap->n_modules, &r->cap_modules, &m, sizeof(m)) < 0) {
		free(m.path);
		free(m.build_id);
		return nomem(r);
	}
	return 0;
}

static int rec_unload(struct reader *r, struct cursor *c)
{
	struct unload u;
	int res = get_many(r, c, 2, &u.module_id, &u.seq);
	if (res < 0)
		return res;
	if (reports_vec_push(&r->unloads, &r->n_unloads, &r->cap_unloads, &u, sizeof(u)) < 0)
		return nomem(r);
	return 0;
}

static int rec_sample(struct reader *r, struct cursor *c)
{
	struct reports_sample s;
	int res = get_many(r, c, 5, &s.t_ns, &s.seq, &s.rss_bytes, &s.heap_bytes, &s.live_bytes);
	if (res < 0)
		return res;
	struct reports_capture *cap = r->cap;
	if (reports_vec_push(&cap->samples, &cap->n_samples, &r->cap_samples, &s, sizeof(s)) < 0)
		return nomem(r);
	return 0;
}

static int rec_thread(struct reader *r, struct cursor *c)
{
	struct reports_thread t = { 0 };
	int res;
	if ((res = get_many(r, c, 3, &t.tid, &t.seq, &t.event)) < 0)
		return res;
	if (t.event > 1)
		return bad_value(r, c, "event", t.event);
	if ((res = get_cstr(r, c, &t.name)) < 0)
		return res;
	struct reports_capture *cap = r->cap;
	if (reports_vec_push(&cap->threads, &cap->n_threads, &r->cap_threads, &t, sizeof(t)) < 0) {
		free(t.name);
		return nomem(r);
	}
	return 0;
}

static int rec_badfree(struct reader *r, struct cursor *c)
{
	struct reports_badfree b;
	uint64_t fs, as, ffs;
	int res;
	if ((res = get_many(r, c, 6, &b.seq, &b.kind, &b.addr, &fs, &as, &ffs)) < 0)
		return res;
	if (b.kind < CAPTURE_BADFREE_DOUBLE || b.kind > CAPTURE_BADFREE_FOREIGN)
		return bad_value(r, c, "kind", b.kind);
	if ((res = raw_slot(r, fs, &b.free_stack)) < 0 ||
	    (res = raw_slot(r, as, &b.alloc_stack)) < 0 ||
	    (res = raw_slot(r, ffs, &b.first_free_stack)) < 0)
		return res;
	struct reports_capture *cap = r->cap;
	if (reports_vec_push(&cap->badfrees, &cap->n_badfrees, &r->cap_badfrees, &b, sizeof(b)) < 0)
		return nomem(r);
	return 0;
}

static int rec_stats(struct reader *r, struct cursor *c)
{
	struct reports_stats *st = &r->cap->stats;
	uint64_t n;
	int res;
	if ((res = get_u(r, c, &n)) < 0)
		return res;
	if (n > STATS_CLASSES_MAX)
		return bad_value(r, c, "number of size classes", n);
	if (n * 4 > (uint64_t)(c->end - c->p))
		return overrun(r, c);
	struct reports_pool_class *classes = calloc(n ? (size_t)n : 1, sizeof(*classes));
	if (!classes)
		return nomem(r);
	for (uint64_t i = 0; i < n; i++) {
		struct reports_pool_class *k = &classes[i];
		if ((res = get_many(r, c, 4, &k->block_size, &k->pools, &k->in_use,
				    &k->available)) < 0) {
			free(classes);
			return res;
		}
	}
	free(st->classes);
	st->classes = classes;
	st->n_classes = (size_t)n;
	st->present = true;
	return get_many(r, c, 8, &st->arenas_allocated, &st->arenas_reclaimed,
			&st->arenas_highwater, &st->bytes_quantization,
			&st->bytes_pool_headers, &st->bytes_empty_pools, &st->large_blocks,
			&st->large_bytes);
}

static int rec_note(struct reader *r, struct cursor *c)
{
	struct reports_note n = { 0 };
	int res;
	if ((res = get_many(r, c, 2, &n.seq, &n.level)) < 0)
		return res;
	if (n.level > 2)
		return bad_value(r, c, "level", n.level);
	if ((res = get_cstr(r, c, &n.text)) < 0)
		return res;
	struct reports_capture *cap = r->cap;
	if (reports_vec_push(&cap->notes, &cap->n_notes, &r->cap_notes, &n, sizeof(n)) < 0) {
		free(n.text);
		return nomem(r);
	}
	return 0;
}

static int rec_lost(struct reader *r, struct cursor *c)
{
	uint64_t n;
	int res = get_u(r, c, &n);
	if (res < 0)
		return res;
	uint64_t *lost = &r->cap->lost_events;
	*lost = *lost + n < *lost ? UINT64_MAX : *lost + n;
	return 0;
}

static int rec_end(struct reader *r, struct cursor *c)
{
	struct reports_capture *cap = r->cap;
	int res;
	if (cap->has_end)
		return fail(r, r->record_off, "corrupt capture: a second END record");
	if ((res = get_many(r, c, 5, &cap->end_t_ns, &cap->end_seq, &cap->end_how,
			    &cap->end_status, &cap->end_signal)) < 0)
		return res;
	if (cap->end_how > CAPTURE_END_EXEC)
		return bad_value(r, c, "end kind", cap->end_how);
	cap->has_end = true;
	return 0;
}

static int rec_flushed(struct reader *r, struct cursor *c)
{
	uint64_t seq;
	int res = get_u(r, c, &seq);
	if (res < 0)
		return res;
	if (r->version < 3)
		return fail(r, r->record_off,
			    "corrupt capture: a FLUSHED record in a version %u capture", r->version);
	if (seq > r->flushed)
		r->flushed = seq;
	return 0;
}

static int rec_scan(struct reader *r, struct cursor *c)
{
	struct reports_scan s;
	int res = get_many(r, c, 3, &s.n_blocks, &s.n_edges, &s.flags);
	if (res < 0)
		return res;
	struct reports_capture *cap = r->cap;
	if (reports_vec_push(&cap->scans, &cap->n_scans, &r->cap_scans, &s, sizeof(s)) < 0)
		return nomem(r);
	return 0;
}

static int in_scan(struct reader *r, const struct cursor *c, size_t *scan)
{
	if (r->cap->n_scans == 0)
		return fail(r, r->record_off, "corrupt capture: %s record before any SCAN",
			    tag_names[c->tag]);
	*scan = r->cap->n_scans - 1;
	return 0;
}

static int rec_scanblock(struct reader *r, struct cursor *c)
{
	struct reports_scan_block b;
	uint64_t stack_id;
	int res;
	if ((res = get_many(r, c, 6, &b.addr, &b.size, &stack_id, &b.seq, &b.kind,
			    &b.indirect_of)) < 0)
		return res;
	if (b.kind > CAPTURE_LEAK_DEFINITE)
		return bad_value(r, c, "kind", b.kind);
	if ((res = in_scan(r, c, &b.scan)) < 0)
		return res;
	if ((res = raw_slot(r, stack_id, &b.stack)) < 0)
		return res;
	struct reports_capture *cap = r->cap;
	if (reports_vec_push(&cap->scan_blocks, &cap->n_scan_blocks, &r->cap_scan_blocks, &b,
			     sizeof(b)) < 0)
		return nomem(r);
	return 0;
}

static int rec_scanedge(struct reader *r, struct cursor *c)
{
	struct reports_scan_edge e;
	int res = get_many(r, c, 3, &e.from, &e.offset, &e.to);
	if (res < 0 || (res = in_scan(r, c, &e.scan)) < 0)
		return res;
	struct reports_capture *cap = r->cap;
	if (reports_vec_push(&cap->scan_edges, &cap->n_scan_edges, &r->cap_scan_edges, &e,
			     sizeof(e)) < 0)
		return nomem(r);
	return 0;
}

static int rec_objtype(struct reader *r, struct cursor *c)
{
	struct reports_objtype t = { 0 };
	int res;
	if ((res = get_u(r, c, &t.id)) < 0 || (res = get_cstr(r, c, &t.name)) < 0)
		return res;
	if ((res = get_u(r, c, &t.body_size)) < 0) {
		free(t.name);
		return res;
	}
	struct reports_capture *cap = r->cap;
	if (reports_vec_push(&cap->objtypes, &cap->n_objtypes, &r->cap_objtypes, &t, sizeof(t)) < 0) {
		free(t.name);
		return nomem(r);
	}
	return 0;
}

static int rec_object(struct reader *r, struct cursor *c)
{
	struct reports_object o;
	int res = get_many(r, c, 5, &o.addr, &o.type_id, &o.refcount, &o.flags, &o.snapshot);
	if (res < 0)
		return res;
	struct reports_capture *cap = r->cap;
	if (reports_vec_push(&cap->objects, &cap->n_objects, &r->cap_objects, &o, sizeof(o)) < 0)
		return nomem(r);
	return 0;
}

static int rec_objedge(struct reader *r, struct cursor *c)
{
	struct reports_objedge e;
	int res = get_many(r, c, 3, &e.from, &e.to, &e.snapshot);
	if (res < 0)
		return res;
	struct reports_capture *cap = r->cap;
	if (reports_vec_push(&cap->objedges, &cap->n_objedges, &r->cap_objedges, &e, sizeof(e)) < 0)
		return nomem(r);
	return 0;
}

static int rec_snapshot(struct reader *r, struct cursor *c)
{
	struct reports_snapshot s = { 0 };
	int res;
	if ((res = get_many(r, c, 3, &s.id, &s.t_ns, &s.seq)) < 0 ||
	    (res = get_cstr(r, c, &s.label)) < 0)
		return res;
	struct reports_capture *cap = r->cap;
	if (reports_vec_push(&cap->snapshots, &cap->n_snapshots, &r->cap_snapshots, &s,
			     sizeof(s)) < 0) {
		free(s.label);
		return nomem(r);
	}
	return 0;
}

/* ---- objects: OBJCOUNT, SCANREF ---- */
static int rec_objcount(struct reader *r, struct cursor *c)
{
	struct reports_objcount o;
	int res = get_many(r, c, 4, &o.snapshot, &o.type_id, &o.count, &o.bytes);
	if (res < 0)
		return res;
	struct reports_capture *cap = r->cap;
	if (reports_vec_push(&cap->objcounts, &cap->n_objcounts, &r->cap_objcounts, &o,
			     sizeof(o)) < 0)
		return nomem(r);
	return 0;
}

static int rec_scanref(struct reader *r, struct cursor *c)
{
	struct reports_scan_ref f;
	int res = get_many(r, c, 4, &f.addr, &f.from, &f.kind, &f.tid);
	if (res < 0)
		return res;
	if (f.kind > CAPTURE_REF_REGISTER)
		return bad_value(r, c, "kind", f.kind);
	if ((res = in_scan(r, c, &f.scan)) < 0)
		return res;
	struct reports_capture *cap = r->cap;
	if (reports_vec_push(&cap->scan_refs, &cap->n_scan_refs, &r->cap_scan_refs, &f,
			     sizeof(f)) < 0)
		return nomem(r);
	return 0;
}

static int read_record(struct reader *r, struct cursor *c)
{
	switch (c->tag) {
	case CAPTURE_PROCESS: return rec_process(r, c);
	case CAPTURE_STACK: return rec_stack(r, c);
	case CAPTURE_MODULE: return rec_module(r, c);
	case CAPTURE_UNLOAD: return rec_unload(r, c);
	case CAPTURE_SAMPLE: return rec_sample(r, c);
	case CAPTURE_THREAD: return rec_thread(r, c);
	case CAPTURE_BADFREE: return rec_badfree(r, c);
	case CAPTURE_STATS: return rec_stats(r, c);
	case CAPTURE_NOTE: return rec_note(r, c);
	case CAPTURE_LOST: return rec_lost(r, c);
	case CAPTURE_END: return rec_end(r, c);
	case CAPTURE_SCAN: return rec_scan(r, c);
	case CAPTURE_SCANBLOCK: return rec_scanblock(r, c);
	case CAPTURE_SCANEDGE: return rec_scanedge(r, c);
	case CAPTURE_OBJTYPE: return rec_objtype(r, c);
	case CAPTURE_OBJECT: return rec_object(r, c);
	case CAPTURE_OBJEDGE: return rec_objedge(r, c);
	case CAPTURE_SNAPSHOT: return rec_snapshot(r, c);
	case CAPTURE_OBJCOUNT: return rec_objcount(r, c);
	case CAPTURE_SCANREF: return rec_scanref(r, c);
	case CAPTURE_FLUSHED: return rec_flushed(r, c);
	}
	return fail(r, r->record_off, "corrupt capture: unknown record tag %d", c->tag);
}

static int read_chunk(struct reader *r, uint64_t off, const uint8_t *payload, size_t len)
{
	struct cursor c = { .p = payload, .end = payload + len };
	r->prev_seq = 0;
	r->addr_from = payload;
	r->addr_val = 0;
	r->prev_stack = 0;
	r->prev_node = 0;
	r->prev_node_ip = 0;
	r->run_open = false;
	r->chunk_end = off + len;
	while (c.p < c.end) {
		record_here(r, off + (uint64_t)(c.p - payload));
		c.tag = *c.p++;
		if (c.tag < 1 || c.tag > CAPTURE_TAG_MAX)
			return fail(r, r->record_off, "corrupt capture: unknown record tag %d",
				    c.tag);
		int res = c.tag == CAPTURE_ALLOC || c.tag == CAPTURE_FREE
				  ? read_events(r, &c, payload, off)
				  : read_record(r, &c);
		if (res < 0)
			return res;
	}
	r->cap->n_chunks++;
	return 0;
}

/* Decompresses the payload of a zchunk or zgroup (checksum checked), at
 * most max bytes, into r->zbuf. */
static int unpack(struct reader *r, uint64_t off, const uint8_t *payload, size_t plen,
		  uint32_t max, size_t *raw_len)
{
	if (plen < 4)
		return fail(r, off, "corrupt capture: compressed chunk of %zu bytes", plen);
	uint32_t want = reports_le32(payload);
	if (want > max)
		return fail(r, off, "corrupt capture: compressed chunk of %u bytes of records "
			    "(at most %u)", want, max);
	if (r->zbuf_cap < want) {
		size_t cap = want > CAPTURE_ZCHUNK_RAW_MAX ? CAPTURE_ZGROUP_RAW_MAX
							   : CAPTURE_ZCHUNK_RAW_MAX;
		uint8_t *b = realloc(r->zbuf, cap);
		if (!b)
			return nomem(r);
		r->zbuf = b;
		r->zbuf_cap = cap;
	}
	if (!r->zctx && !(r->zctx = ZSTD_createDCtx()))
		return nomem(r);
	size_t got = ZSTD_decompressDCtx(r->zctx, r->zbuf, want, payload + 4, plen - 4);
	if (ZSTD_isError(got) || got != want)
		return fail(r, off, "corrupt capture: compressed chunk does not decompress to "
			    "its %u bytes of records", want);
	*raw_len = got;
	return 0;
}

/* Reads the chunks of a zgroup, decompressed in r->zbuf[0, len): each as
 * if it stood in the file (offsets are in the group's bytes). */
static int read_group(struct reader *r, uint64_t off, size_t len)
{
	const uint8_t *g = r->zbuf;
	size_t at = 0;
	while (at < len) {
		if (len - at < CAPTURE_CHUNK_HEADER_SIZE)
			return fail(r, off, "corrupt capture: a compressed group ends inside a "
				    "chunk header");
		const uint8_t *h = g + at;
		uint32_t magic = reports_le32(h), plen = reports_le32(h + 4);
		if (magic != CAPTURE_CHUNK_MAGIC)
			return fail(r, off, "corrupt capture: bad chunk magic 0x%08x in a "
				    "compressed group", magic);
		if (plen > len - at - CAPTURE_CHUNK_HEADER_SIZE)
			return fail(r, off, "corrupt capture: a compressed group ends inside a "
				    "chunk");
		const uint8_t *payload = h + CAPTURE_CHUNK_HEADER_SIZE;
		uint32_t sum = reports_le32(h + 12), want = capture_checksum(payload, plen);
		if (want != sum)
			return fail(r, off, "corrupt capture: chunk checksum mismatch in a "
				    "compressed group (stored 0x%08x, computed 0x%08x)", sum, want);
		r->chunk_tid = reports_le32(h + 8);
		int res = read_chunk(r, at + CAPTURE_CHUNK_HEADER_SIZE, payload, plen);
		if (res < 0)
			return res;
		at += CAPTURE_CHUNK_HEADER_SIZE + (size_t)plen;
	}
	return 0;
}

/* Reads the chunks from r->off on.  A chunk that runs past r->len ends
 * the file (truncated) when final, else is left for when it is whole. */
static int read_chunks(struct reader *r, bool final)
{
	struct reports_capture *cap = r->cap;
	size_t off = r->off, released = r->released;
	while (off < r->len) {
		if (r->len - off < CAPTURE_CHUNK_HEADER_SIZE) {
			if (!final)
				break;
			cap->truncated = true;
			cap->truncated_at = off;
			break;
		}
		const uint8_t *h = r->data + off;
		uint32_t magic = reports_le32(h), plen = reports_le32(h + 4), sum = reports_le32(h + 12);
		if (magic != CAPTURE_CHUNK_MAGIC && magic != CAPTURE_ZCHUNK_MAGIC &&
		    (magic != CAPTURE_ZGROUP_MAGIC || r->version < CAPTURE_ZGROUP_VERSION))
			return fail(r, off, "corrupt capture: bad chunk magic 0x%08x", magic);
		if (plen > CAPTURE_CHUNK_MAX)
			return fail(r, off, "corrupt capture: chunk of %u bytes (at most %u)", plen,
				    CAPTURE_CHUNK_MAX);
		if (plen > r->len - off - CAPTURE_CHUNK_HEADER_SIZE) {
			if (!final)
				break;
			cap->truncated = true;
			cap->truncated_at = off;
			break;
		}
		const uint8_t *payload = h + CAPTURE_CHUNK_HEADER_SIZE;
		uint32_t want = capture_checksum(payload, plen);
		if (want != sum)
			return fail(r, off,
				    "corrupt capture: chunk checksum mismatch (stored 0x%08x, computed 0x%08x)",
				    sum, want);
		r->chunk_tid = reports_le32(h + 8);
		int res;
		if (magic == CAPTURE_ZGROUP_MAGIC) {
			size_t raw_len = 0;
			if ((res = unpack(r, off, payload, plen, CAPTURE_ZGROUP_RAW_MAX, &raw_len)) < 0)
				return res;
			r->zchunk = off;
			res = read_group(r, off, raw_len);
			r->zchunk = 0;
		} else if (magic == CAPTURE_ZCHUNK_MAGIC) {
			size_t raw_len = 0;
			if ((res = unpack(r, off, payload, plen, CAPTURE_ZCHUNK_RAW_MAX, &raw_len)) < 0)
				return res;
			r->zchunk = off;
			res = read_chunk(r, 0, r->zbuf, raw_len);
			r->zchunk = 0;
		} else {
			res = read_chunk(r, off + CAPTURE_CHUNK_HEADER_SIZE, payload, plen);
		}
		if (res < 0)
			return res;
		off += CAPTURE_CHUNK_HEADER_SIZE + plen;
		r->off = off;
		if (!r->src->follow)
			reports_progress("reading", off, r->len); /* progress.c */
		if (off - released >= RELEASE_STEP) {
			reports_source_release(r->src, released, off);
			released = off;
		}
	}
	r->off = off;
	r->released = released;
	if (final)
		reports_source_release(r->src, released, off);
	return 0;
}

static int cmp_run(const void *a, const void *b)
{
	const struct reports_run *x = a, *y = b;
	if (x->first_seq != y->first_seq)
		return x->first_seq < y->first_seq ? -1 : 1;
	return x->first_order < y->first_order ? -1 : x->first_order > y->first_order;
}

/* Runs from joined on in merge order, and low[]: where the file is still
 * needed. */
static int order_runs(struct reader *r, size_t joined)
{
	struct reports_source *src = r->src;
	if (src->n_runs > joined + 1)
		qsort(src->runs + joined, src->n_runs - joined, sizeof(*src->runs), cmp_run);
	uint64_t *low = realloc(src->low, (src->n_runs + 1) * sizeof(*src->low));
	if (!low)
		return nomem(r);
	src->low = low;
	src->low[src->n_runs] = src->len;
	for (size_t i = src->n_runs; i-- > 0;) {
		uint64_t need = reports_run_need(&src->runs[i]);
		src->low[i] = need < src->low[i + 1] ? need : src->low[i + 1];
	}
	return 0;
}

static int cmp_sample(const void *a, const void *b)
{
	const struct reports_sample *x = a, *y = b;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->t_ns < y->t_ns ? -1 : x->t_ns > y->t_ns;
}

static void apply_unloads(struct reader *r)
{
	struct reports_capture *cap = r->cap;
	for (size_t i = 0; i < r->n_unloads; i++) {
		for (size_t m = 0; m < cap->n_modules; m++) {
			if (cap->modules[m].id == r->unloads[i].module_id &&
			    !cap->modules[m].unloaded) {
				cap->modules[m].unloaded = true;
				cap->modules[m].unload_seq = r->unloads[i].seq;
				break;
			}
		}
	}
}

static int read_header(struct reader *r)
{
	if (r->len < CAPTURE_HEADER_SIZE) {
		size_t n = r->len < CAPTURE_MAGIC_LEN ? r->len : CAPTURE_MAGIC_LEN;
		if (r->len == 0)
			return fail(r, 0, "empty file, not a memprof capture");
		if (memcmp(r->data, CAPTURE_MAGIC, n) != 0)
			return fail(r, 0, "not a memprof capture (bad magic)");
		return fail(r, r->len, "capture truncated inside its %u-byte header",
			    CAPTURE_HEADER_SIZE);
	}
	if (memcmp(r->data, CAPTURE_MAGIC, CAPTURE_MAGIC_LEN) != 0)
		return fail(r, 0, "not a memprof capture (bad magic)");
	uint32_t version = reports_le32(r->data + 8), hsize = reports_le32(r->data + 12);
	if (version < CAPTURE_VERSION_MIN || version > CAPTURE_VERSION)
		return fail(r, 8, "unsupported capture version %u (this memprof reads versions "
			    "%u to %u)", version, CAPTURE_VERSION_MIN, CAPTURE_VERSION);
	if (hsize != CAPTURE_HEADER_SIZE)
		return fail(r, 12, "corrupt capture: header size %u (expected %u)", hsize,
			    CAPTURE_HEADER_SIZE);
	r->version = r->src->version = version;
	r->off = CAPTURE_HEADER_SIZE;
	return 0;
}

/* What comes after the last chunk: stacks resolved, runs in merge order
 * (from joined on: the merge of a followed capture has opened the ones
 * before), modules' unloads, samples in order. */
static int read_finish(struct reader *r, size_t joined)
{
	int res;
	if ((res = resolve_stacks(r)) < 0 || (res = order_runs(r, joined)) < 0)
		return res;
	apply_unloads(r);
	struct reports_capture *cap = r->cap;
	if (cap->n_samples > 1)
		qsort(cap->samples, cap->n_samples, sizeof(*cap->samples), cmp_sample);
	cap->incomplete = cap->truncated || !cap->has_end;
	cap->file_size = r->len;
	return 0;
}

static int read_all(struct reader *r)
{
	int res = read_header(r);
	if (res == 0)
		res = read_chunks(r, true);
	return res < 0 ? res : read_finish(r, 0);
}

static void reader_free(struct reader *r)
{
	if (r->src) {
		r->src->raw_dense = NULL;
		r->src->n_raw_dense = 0;
	}
	for (size_t b = 0; b < r->n_raw_blocks; b++)
		free(r->raw_blocks[b]);
	free(r->raw_blocks);
	free(r->raw_canon);
	free(r->raw_flags);
	free(r->raw_dense);
	free(r->zbuf);
	ZSTD_freeDCtx(r->zctx);
	free(r->canon_idx);
	free(r->canon_tag);
	free(r->unloads);
	reports_map_finish(&r->raw_by_id);
	memset(r, 0, sizeof(*r));
}

/* Reads the capture of src (which the new capture owns from here on, even
 * when reading fails). */
static int load_source(struct reports_source *src, struct reports_capture **out,
		       struct reports_error *err)
{
	struct reader r = { .data = src->data, .len = src->len, .err = err, .src = src };
	if (err)
		memset(err, 0, sizeof(*err));
	*out = NULL;
	src->safe_seq = UINT64_MAX;
	r.cap = calloc(1, sizeof(*r.cap));
	if (!r.cap) {
		reports_source_destroy(src);
		return nomem(&r);
	}
	r.cap->source = src;
	int res = read_all(&r);
	struct reports_capture *cap = r.cap;
	reader_free(&r);
	if (res < 0) {
		reports_capture_destroy(cap);
		return res;
	}
	*out = cap;
	return 0;
}

int reports_capture_load_buffer(const uint8_t *data, size_t len,
				struct reports_capture **out,
				struct reports_error *err)
{
	/* the events are read again later: the capture keeps its own copy */
	struct reports_source *src = calloc(1, sizeof(*src));
	uint8_t *copy = malloc(len ? len : 1);
	if (!src || !copy) {
		free(src);
		free(copy);
		*out = NULL;
		if (err) {
			memset(err, 0, sizeof(*err));
			snprintf(err->message, sizeof(err->message),
				 "out of memory while reading the capture");
		}
		return -ENOMEM;
	}
	if (len)
		memcpy(copy, data, len);
	src->data = src->owned = copy;
	src->len = len;
	return load_source(src, out, err);
}

static int sys_error(struct reports_error *err, int errnum, const char *what)
{
	if (err) {
		err->offset = 0;
		snprintf(err->message, sizeof(err->message), "%s: %s", what, strerror(errnum));
	}
	return -errnum;
}

int reports_capture_load_file(const char *path, struct reports_capture **out,
			      struct reports_error *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sys_error(err, errno, "cannot open");
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return sys_error(err, e, "cannot read");
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return sys_error(err, EISDIR, "cannot read");
	}
	uint8_t *data = NULL;
	size_t len = 0;
	bool mapped = false;
	if (S_ISREG(st.st_mode) && st.st_size > 0) {
		len = (size_t)st.st_size;
		data = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (data == MAP_FAILED) {
			int e = errno;
			close(fd);
			return sys_error(err, e, "cannot map");
		}
		mapped = true;
	} else if (!S_ISREG(st.st_mode)) {
		/* a pipe or a device: read it all */
		size_t cap = 0;
		for (;;) {
			if (reports_vec_reserve(&data, &cap, len + 65536, 1) < 0) {
				free(data);
				close(fd);
				return sys_error(err, ENOMEM, "cannot read");
			}
			ssize_t n = read(fd, data + len, cap - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				int e = errno;
				free(data);
				close(fd);
				return sys_error(err, e, "cannot read");
			}
			if (n == 0)
				break;
			len += (size_t)n;
			/* an endless device (/dev/zero, /dev/full) is no capture:
			 * stop as soon as its first bytes say so */
			if (len >= CAPTURE_MAGIC_LEN &&
			    memcmp(data, CAPTURE_MAGIC, CAPTURE_MAGIC_LEN) != 0)
				break;
		}
	}
	close(fd);
	struct reports_source *src = calloc(1, sizeof(*src));
	if (!src) {
		if (mapped)
			munmap(data, len);
		else
			free(data);
		return sys_error(err, ENOMEM, "cannot read");
	}
	if (mapped) {
		src->map = data;
		madvise(data, len, MADV_SEQUENTIAL);
	} else {
		src->owned = data;
	}
	src->data = data ? data : (const uint8_t *)"";
	src->len = len;
	return load_source(src, out, err);
}

/* ---- following a capture as it grows ------------------------------------
 * memprof run analyses the events while the program runs: the file is
 * mapped into an address range reserved up front (so that what the merge
 * holds never moves) and read chunk by chunk as the tracer appends them.
 * The merge may take the events below the latest FLUSHED record's seq
 * (capture.h: every smaller one is in the file before it); it waits for
 * the next one, or for the end of the program, when it gets there. */

struct reports_follow {
	struct reader r;
	struct reports_error err;
	struct reports_growing file; /* its range is the source's map */
	bool header;   /* read */
	bool finished; /* the whole file read */
	atomic_bool ended;
	_Atomic uint64_t taken; /* events the merge has taken */
};

void reports_follow_free(struct reports_follow *f)
{
	if (!f)
		return;
	reader_free(&f->r);
	reports_growing_close(&f->file, true);
	free(f);
}

int reports_capture_follow(const char *path, struct reports_capture **out,
			   struct reports_error *err)
{
	*out = NULL;
	struct reports_growing file;
	int res = reports_growing_open(&file, path);
	if (res < 0)
		return sys_error(err, -res, "cannot follow");
	struct reports_follow *f = calloc(1, sizeof(*f));
	struct reports_source *src = calloc(1, sizeof(*src));
	struct reports_capture *cap = calloc(1, sizeof(*cap));
	if (!f || !src || !cap) {
		reports_growing_close(&file, false);
		free(f);
		free(src);
		free(cap);
		return sys_error(err, ENOMEM, "cannot follow");
	}
	f->file = file;
	atomic_init(&f->ended, false);
	src->map = file.base;
	src->map_len = REPORTS_GROWING_RESERVE;
	src->data = file.base;
	src->follow = f;
	src->raw_stacks = true;
	cap->source = src;
	f->r = (struct reader){ .data = file.base, .err = &f->err, .src = src, .cap = cap };
	*out = cap;
	return 0;
}

uint64_t reports_capture_follow_end(struct reports_capture *cap)
{
	if (!cap || !cap->source || !cap->source->follow)
		return 0;
	struct reports_follow *f = cap->source->follow;
	atomic_store(&f->ended, true);
	return atomic_load(&f->taken);
}

void reports_follow_taken(const struct reports_source *src, uint64_t n)
{
	atomic_store_explicit(&src->follow->taken, n, memory_order_relaxed);
}

/* Maps what the file gained. */
static int follow_map(struct reports_follow *f)
{
	int res = reports_growing_update(&f->file);
	if (res == 0)
		f->r.len = f->r.src->len = f->file.len;
	return res;
}

int reports_follow_feed(const struct reports_source *csrc, size_t joined)
{
	struct reports_source *src = (struct reports_source *)csrc;
	struct reports_follow *f = src->follow;
	if (!f || f->finished)
		return -EIO;
	struct reader *r = &f->r;
	uint64_t safe = src->safe_seq;
	for (;;) {
		/* read before the size: once ended, what the size shows is all */
		bool final = atomic_load(&f->ended);
		size_t n_before = src->n_runs;
		int res = follow_map(f);
		if (res == 0 && !f->header && (r->len >= CAPTURE_HEADER_SIZE || final)) {
			res = read_header(r);
			f->header = res == 0;
		}
		if (res == 0 && f->header)
			res = read_chunks(r, final);
		/* the stacks that are whole, now rather than after the program */
		if (res == 0 && !final)
			res = resolve_ready(r);
		if (res < 0)
			return res;
		/* FLUSHED promised no event below safe would come later */
		for (size_t i = n_before; i < src->n_runs; i++)
			if (src->runs[i].first_seq < safe)
				return -EAGAIN;
		if (final) {
			if ((res = read_finish(r, joined)) < 0)
				return res;
			f->finished = true;
			src->safe_seq = UINT64_MAX;
			return 0;
		}
		if (r->flushed > safe) {
			if ((res = order_runs(r, joined)) < 0)
				return res;
			src->safe_seq = r->flushed;
			return 0;
		}
		reports_growing_wait();
	}
}

uint32_t reports_follow_raw(const struct reports_source *src, uint64_t id)
{
	uint32_t slot = raw_find(&src->follow->r, id);
	return id == 0 || slot == NO_INDEX ? REPORTS_NO_STACK : slot;
}

uint32_t reports_follow_canon(const struct reports_source *src, uint32_t raw)
{
	const struct reader *r = &src->follow->r;
	return raw == REPORTS_NO_STACK || raw >= r->n_raw ? REPORTS_NO_STACK : r->raw_canon[raw];
}

size_t reports_follow_n_raw(const struct reports_source *src)
{
	return src->follow ? src->follow->r.n_raw : 0;
}

void reports_follow_done(struct reports_source *src)
{
	src->raw_stacks = false;
	reports_follow_free(src->follow);
	src->follow = NULL;
}

void reports_capture_destroy(struct reports_capture *cap)
{
	if (!cap)
		return;
	free(cap->exe);
	for (size_t i = 0; i < cap->argc; i++)
		free(cap->argv[i]);
	free(cap->argv);
	if (cap->prepass_free)
		cap->prepass_free(cap->prepass);
	reports_source_destroy(cap->source);
	free(cap->nodes);
	for (size_t i = 0; i < cap->n_modules; i++) {
		free(cap->modules[i].path);
		free(cap->modules[i].build_id);
	}
	free(cap->modules);
	free(cap->samples);
	for (size_t i = 0; i < cap->n_threads; i++)
		free(cap->threads[i].name);
	free(cap->threads);
	free(cap->badfrees);
	for (size_t i = 0; i < cap->n_notes; i++)
		free(cap->notes[i].text);
	free(cap->notes);
	free(cap->stats.classes);
	free(cap->scans);
	free(cap->scan_blocks);
	free(cap->scan_edges);
	for (size_t i = 0; i < cap->n_objtypes; i++)
		free(cap->objtypes[i].name);
	free(cap->objtypes);
	free(cap->objects);
	free(cap->objedges);
	for (size_t i = 0; i < cap->n_snapshots; i++)
		free(cap->snapshots[i].label);
	free(cap->snapshots);
	free(cap->objcounts);
	free(cap->scan_refs);
	free(cap);
}

size_t reports_stack_ips(const struct reports_capture *cap, uint32_t stack,
			 uint64_t *ips, size_t max)
{
	size_t n = 0;
	while (stack != REPORTS_NO_STACK && stack < cap->n_nodes &&
	       n < REPORTS_STACK_DEPTH_MAX) {
		if (n < max)
			ips[n] = cap->nodes[stack].ip;
		n++;
		stack = cap->nodes[stack].parent;
	}
	return n;
}

/* Piecewise-linear interpolation over the points (0, 0), the samples in
 * seq order, then END, each a (seq, t_ns) pair; points out of order are
 * skipped.  Maps seq to time, or time to seq when by_time is set.  Past
 * the last point: its time, or UINT64_MAX (every event) for a seq. */
static uint64_t interpolate(const struct reports_capture *cap, uint64_t x, bool by_time)
{
	uint64_t s0 = 0, t0 = 0;
	size_t n = cap->n_samples + (cap->has_end ? 1 : 0);
	for (size_t i = 0; i < n; i++) {
		uint64_t s1, t1;
		if (i < cap->n_samples) {
			s1 = cap->samples[i].seq;
			t1 = cap->samples[i].t_ns;
		} else {
			s1 = cap->end_seq;
			t1 = cap->end_t_ns;
		}
		if (s1 < s0 || t1 < t0)
			continue; /* out of order: skip the point */
		uint64_t x0 = by_time ? t0 : s0, x1 = by_time ? t1 : s1;
		uint64_t y0 = by_time ? s0 : t0, y1 = by_time ? s1 : t1;
		if (x <= x1) {
			if (x1 == x0)
				return y0;
			long double f = (long double)(x - x0) / (long double)(x1 - x0);
			return y0 + (uint64_t)(f * (long double)(y1 - y0));
		}
		s0 = s1;
		t0 = t1;
	}
	return by_time ? UINT64_MAX : t0;
}

uint64_t reports_capture_time_of_seq(const struct reports_capture *cap, uint64_t seq)
{
	return interpolate(cap, seq, false);
}

uint64_t reports_capture_seq_at_time(const struct reports_capture *cap, uint64_t t_ns)
{
	return interpolate(cap, t_ns, true);
}

void reports_capture_outcome(const struct reports_capture *cap, struct reports_outcome *out)
{
	memset(out, 0, sizeof(*out));
	if (!cap->has_end || cap->end_how == CAPTURE_END_EXEC)
		return;
	out->known = true;
	if (cap->end_signal > 0 && cap->end_signal < 128 &&
	    (cap->end_how == CAPTURE_END_SIGNAL || cap->end_how == CAPTURE_END_ABORT)) {
		out->signal = (int)cap->end_signal;
		out->exit_status = 128 + out->signal;
	} else {
		out->exit_status = (int)(cap->end_status & 0xff);
	}
}
