/*
 * analysis.c: what the reports say about a capture: totals, the peak of
 * live bytes and who made it, allocation sites, tracemalloc's 'lineno'
 * view and the blocks still live at exit classified by leak kind.  Entry
 * point: reports_analysis_run().
 *
 * The events are streamed once, in sequence order (events.c), against a
 * map of live blocks (replay.h), where a FREE frees the oldest live block
 * at its address (a realloc in place is an ALLOC of the address still
 * live, then a FREE of it).  The one pass counts everything, finds the
 * event where live bytes reach their peak and what each site had live
 * then: each site keeps its live bytes and the index of the event that
 * last changed them, and on its first change after the latest peak it
 * copies its live bytes as its peak share (unchanged since that peak, they
 * are what it had then); at the end, sites not changed since the peak do
 * the same.  The same pass counts temporary allocations (freed before
 * their thread allocated again).  What is live after the last event is
 * "live at exit"; with SCAN records each such block takes the scan's kind
 * (a block the scan did not see is reachable), without them every one is
 * reachable.  Memory stays proportional to the live blocks and the sites,
 * not to the events.  Once the whole capture is known (memprof report;
 * memprof run once the program is over) the pass runs on two threads:
 * one merges and decodes the events, the other replays them (events.c,
 * reports_events_apply()).
 */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <memprof/capture.h>

#include "replay.h"
#include "reports-private.h"
#include "reports.h"

/* A site's counters during the pass, in one place (a program with deep
 * recursion has millions of sites: one cache line per site touched);
 * copied, with the site's stack from builder.site_stack, into an->sites[]
 * at the end, which is made then: while the pass runs (for as long as the
 * program, when following it) a site costs 52 bytes, not 104. */
struct site_live {
	uint64_t allocations;
	uint64_t bytes;
	uint64_t live;  /* bytes live now */
	uint64_t stamp; /* index of the event that last changed live */
	uint64_t peak;  /* live bytes at the latest peak, once known */
	uint64_t temporary;
};

struct builder {
	const struct reports_capture *cap;
	struct reports_analysis *an;
	struct reports_map site_of_stack; /* stack node (+1 for none) -> site */
	uint32_t *site_by_node; /* the same for nodes below n_by_node, NO_SLOT if none */
	size_t n_by_node;
	size_t node_limit; /* nodes (raw slots while following) there are */
	struct site_live *live; /* per site */
	size_t cap_live;
	uint32_t *site_stack; /* per site: its stack */
	size_t cap_stack;
	uint64_t *pending; /* per thread: index + 1 of its latest ALLOC */
	bool peaked;
	uint64_t peak_index;
};


/* Makes site_by_node cover node (below node_limit, which grows while a
 * capture is followed); false when out of memory. */
static bool by_node_grow(struct builder *bd, uint32_t node)
{
	size_t n = bd->n_by_node ? bd->n_by_node : 1024;
	while (n <= node)
		n *= 2;
	if (n > bd->node_limit)
		n = bd->node_limit;
	uint32_t *v = realloc(bd->site_by_node, n * sizeof(*v));
	if (!v)
		return false;
	memset(v + bd->n_by_node, 0xff, (n - bd->n_by_node) * sizeof(*v));
	bd->site_by_node = v;
	bd->n_by_node = n;
	return true;
}

static int site_of(struct builder *bd, uint32_t stack, uint32_t *out)
{
	uint64_t key = (uint64_t)stack + 1;
	if (stack >= bd->n_by_node && stack != REPORTS_NO_STACK) {
		if (bd->cap->source && bd->cap->source->raw_stacks)
			bd->node_limit = reports_follow_n_raw(bd->cap->source);
		if (stack < bd->node_limit && !by_node_grow(bd, stack))
			return -ENOMEM;
	}
	bool dense = stack < bd->n_by_node;
	if (dense && bd->site_by_node[stack] != NO_SLOT) {
		*out = bd->site_by_node[stack];
		return 0;
	}
	if (!dense && reports_map_get(&bd->site_of_stack, key, out))
		return 0;
	struct reports_analysis *an = bd->an;
	struct site_live l = { 0 };
	size_t n_live = an->n_sites, n_stack = an->n_sites;
	if (an->n_sites >= UINT32_MAX - 1 ||
	    reports_vec_push(&bd->live, &n_live, &bd->cap_live, &l, sizeof(l)) < 0 ||
	    reports_vec_push(&bd->site_stack, &n_stack, &bd->cap_stack, &stack, sizeof(stack)) < 0)
		return -ENOMEM;
	*out = (uint32_t)an->n_sites++;
	/* a dense node is never looked up in the map (n_by_node only grows) */
	if (dense) {
		bd->site_by_node[stack] = *out;
		return 0;
	}
	return reports_map_put(&bd->site_of_stack, key, *out);
}

/* A site's live bytes change at event index: first keep what it had at
 * the latest peak, if they have not changed since. */
static void site_change(struct builder *bd, uint32_t site, int64_t delta, uint64_t index)
{
	struct site_live *l = &bd->live[site];
	if (bd->peaked && l->stamp <= bd->peak_index)
		l->peak = l->live;
	l->live += (uint64_t)delta;
	l->stamp = index;
}

/* A pass's replay: its builder and live blocks. */
struct pass {
	struct builder *bd;
	struct replay *rp;
};

/* Replays events evs[0, n), the first numbered *index (a
 * reports_apply_fn): totals, sites, the peak and each site's share of it,
 * temporary allocations, and the live blocks.  While a capture is
 * followed, sites are keyed by raw stack slot (prepass_canonical() merges
 * them afterwards). */
static int replay_batch(void *arg, const struct reports_event *evs, size_t n, uint64_t *index)
{
	struct builder *bd = ((struct pass *)arg)->bd;
	struct replay *rp = ((struct pass *)arg)->rp;
	const struct reports_capture *cap = bd->cap;
	struct reports_analysis *an = bd->an;
	struct reports_totals *t = &an->totals;
	uint64_t i = *index;
	int res = 0;
	for (size_t k = 0; k < n; k++, i++) {
		const struct reports_event *ev = &evs[k];
		uint32_t site = 0;
		struct block freed;
		if ((i & 0xffff) == 0) /* progress.c */
			reports_progress("analysing", i, cap->n_events);
		if (ev->kind == REPORTS_EVENT_ALLOC) {
			if ((res = site_of(bd, ev->stack, &site)) < 0)
				break;
			struct site_live *s = &bd->live[site];
			s->allocations++;
			s->bytes += ev->size;
			t->allocations++;
			t->bytes_allocated += ev->size;
			bd->pending[ev->thread] = i + 1;
			site_change(bd, site, (int64_t)ev->size, i);
		} else {
			t->frees++;
		}
		if ((res = replay_apply(rp, ev, i, site, &freed)) < 0)
			break;
		if (ev->kind == REPORTS_EVENT_FREE) {
			if (res == 0) {
				an->unmatched_frees++;
			} else {
				site_change(bd, freed.site, -(int64_t)freed.size, i);
				/* temporary: its thread has not allocated since */
				if (bd->pending[freed.thread] == freed.index + 1) {
					bd->pending[freed.thread] = 0;
					bd->live[freed.site].temporary++;
					t->temporary++;
				}
			}
			res = 0;
		}
		if (rp->live_bytes > t->peak_bytes) {
			t->peak_bytes = rp->live_bytes;
			t->peak_seq = ev->seq;
			bd->peaked = true;
			bd->peak_index = i;
		}
	}
	*index = i;
	return res;
}

/* The pass over the events (replay_batch(), on a second thread once no
 * event is left to wait for: reports_events_apply()), the live blocks at
 * the end left in rp. */
static int replay_events(struct builder *bd, struct replay *rp)
{
	const struct reports_capture *cap = bd->cap;
	struct reports_events *it;
	int res = reports_events_open(cap, &it);
	if (res < 0)
		return res;
	bd->pending = calloc(UINT16_MAX + 1, sizeof(*bd->pending));
	bd->node_limit = cap->n_nodes;
	if (!bd->pending || (cap->n_nodes > 0 && !by_node_grow(bd, (uint32_t)cap->n_nodes - 1)))
		res = -ENOMEM;
	struct pass pass = { bd, rp };
	if (res == 0)
		res = reports_events_apply(it, replay_batch, &pass);
	reports_events_close(it);
	return res;
}

/* The sites, their peak shares known, into an->sites: in the counters'
 * own memory, each site written over its counters from the last down (a
 * site is bigger, so site s covers counters s and after only, already
 * read).  A deep recursion has millions of sites: the counters and a
 * fresh array side by side were the report's peak memory. */
_Static_assert(sizeof(struct reports_site) >= sizeof(struct site_live),
	       "a site covers its own counters and later ones only");

static int replay_sites(struct builder *bd)
{
	struct reports_analysis *an = bd->an;
	size_t n = an->n_sites;
	void *mem = realloc(bd->live, (n ? n : 1) * sizeof(struct reports_site));
	if (!mem)
		return -ENOMEM;
	bd->live = mem;
	struct reports_site *sites = mem;
	for (size_t s = n; s-- > 0;) {
		site_change(bd, (uint32_t)s, 0, UINT64_MAX); /* its peak share */
		struct site_live l = bd->live[s];
		sites[s] = (struct reports_site){
			.stack = bd->site_stack[s],
			.allocations = l.allocations,
			.bytes = l.bytes,
			.peak_bytes = bd->peaked ? l.peak : 0,
			.temporary = l.temporary,
		};
	}
	an->sites = sites;
	bd->live = NULL;
	free(bd->site_stack);
	bd->site_stack = NULL;
	return 0;
}

/* ---- the pass made while following a capture --------------------------- */

struct reports_prepass {
	struct reports_analysis *an;
	struct builder bd;
	struct replay rp;
	int res;
};

static void builder_finish(struct builder *bd)
{
	reports_map_finish(&bd->site_of_stack);
	free(bd->live);
	free(bd->site_stack);
	free(bd->pending);
	free(bd->site_by_node);
	bd->live = NULL;
	bd->site_stack = NULL;
	bd->pending = NULL;
	bd->site_by_node = NULL;
}

void reports_prepass_free(struct reports_prepass *pre)
{
	if (!pre)
		return;
	builder_finish(&pre->bd);
	replay_finish(&pre->rp);
	reports_analysis_destroy(pre->an);
	free(pre);
}

static void remap_site(struct block *b, void *arg)
{
	b->site = ((const uint32_t *)arg)[b->site];
}

/* The prepass's sites were keyed by raw stack slot: each becomes the site
 * of its canonical stack, in order of first use, which is the order a pass
 * over the whole file gives them; their counters add up (their peak
 * shares taken first), and the live blocks follow. */
static int prepass_canonical(struct reports_prepass *pre)
{
	struct builder *bd = &pre->bd;
	struct reports_analysis *an = pre->an;
	struct reports_source *src = bd->cap->source;
	size_t n = an->n_sites, n_nodes = bd->cap->n_nodes;
	uint32_t *remap = malloc((n ? n : 1) * sizeof(*remap));
	uint32_t *by_node = malloc((n_nodes + 1) * sizeof(*by_node));
	if (!remap || !by_node) {
		free(remap);
		free(by_node);
		return -ENOMEM;
	}
	memset(by_node, 0xff, (n_nodes + 1) * sizeof(*by_node));
	size_t m = 0;
	for (size_t s = 0; s < n; s++) {
		site_change(bd, (uint32_t)s, 0, UINT64_MAX);
		uint32_t node = reports_follow_canon(src, bd->site_stack[s]);
		uint32_t *slot = &by_node[node == REPORTS_NO_STACK || node >= n_nodes ? n_nodes : node];
		if (*slot == NO_SLOT) {
			*slot = (uint32_t)m;
			bd->site_stack[m] = node;
			bd->live[m] = bd->live[s];
			m++;
		} else {
			struct site_live *to = &bd->live[*slot];
			const struct site_live *from = &bd->live[s];
			to->allocations += from->allocations;
			to->bytes += from->bytes;
			to->live += from->live;
			to->peak += from->peak;
			to->temporary += from->temporary;
		}
		remap[s] = *slot;
	}
	an->n_sites = m;
	replay_foreach(&pre->rp, remap_site, remap);
	free(remap);
	/* site_of's maps, keyed by canonical node from here on */
	free(bd->site_by_node);
	bd->site_by_node = by_node;
	bd->n_by_node = n_nodes;
	bd->node_limit = n_nodes;
	reports_map_finish(&bd->site_of_stack);
	int res = 0;
	if (by_node[n_nodes] != NO_SLOT)
		res = reports_map_put(&bd->site_of_stack, (uint64_t)REPORTS_NO_STACK + 1,
				      by_node[n_nodes]);
	reports_follow_done(src);
	return res;
}

int reports_analysis_prepass(struct reports_capture *cap)
{
	struct reports_prepass *pre = calloc(1, sizeof(*pre));
	if (!pre || !(pre->an = calloc(1, sizeof(*pre->an)))) {
		free(pre);
		return -ENOMEM;
	}
	pre->bd = (struct builder){ .cap = cap, .an = pre->an };
	pre->res = replay_events(&pre->bd, &pre->rp);
	/* the capture is whole now: sites by canonical stack, and the
	 * follower's memory given back before the rest of the analysis */
	if (pre->res == 0 && cap->source && cap->source->raw_stacks)
		pre->res = prepass_canonical(pre);
	reports_prepass_free(cap->prepass);
	cap->prepass = pre;
	cap->prepass_free = reports_prepass_free;
	return pre->res;
}

static enum reports_leak_kind kind_of_scan(uint64_t kind)
{
	switch (kind) {
	case CAPTURE_LEAK_DEFINITE: return REPORTS_LEAK_DEFINITE;
	case CAPTURE_LEAK_INDIRECT: return REPORTS_LEAK_INDIRECT;
	case CAPTURE_LEAK_POSSIBLE: return REPORTS_LEAK_POSSIBLE;
	default: return REPORTS_LEAK_REACHABLE;
	}
}

/* The order of loss records, memcheck's: smallest total first. */
int reports_leak_record_cmp(const void *a, const void *b)
{
	const struct reports_leak_record *x = a, *y = b;
	uint64_t sx = x->bytes + x->indirect_bytes, sy = y->bytes + y->indirect_bytes;
	if (sx != sy)
		return sx < sy ? -1 : 1;
	if (x->blocks != y->blocks)
		return x->blocks < y->blocks ? -1 : 1;
	if (x->kind != y->kind)
		return x->kind > y->kind ? -1 : 1;
	return x->stack < y->stack ? -1 : x->stack > y->stack;
}

struct classify_ctx {
	const struct reports_capture *cap;
	struct reports_analysis *an;
	struct reports_leak_block *cl;
	size_t n;
	const struct reports_scan_block *sb; /* the scan's block, or NULL */
};

/* Adds a live block to the list, of the scan block's kind (reachable
 * without one). */
static void classify_block(struct block *b, void *arg)
{
	struct classify_ctx *x = arg;
	struct reports_analysis *an = x->an;
	struct reports_site *site = &an->sites[b->site];
	struct reports_leak_block *c = &x->cl[x->n++];
	c->addr = b->addr;
	c->size = b->size;
	c->stack = site->stack;
	c->kind = REPORTS_LEAK_REACHABLE;
	c->indirect_of = 0;
	c->supp = -1;
	if (x->sb) {
		c->kind = kind_of_scan(x->sb->kind);
		c->indirect_of = x->sb->indirect_of;
	}
	b->seen = 1;
	site->leaked_bytes += b->size;
	site->leaked_blocks++;
	an->totals.live_blocks_at_exit++;
	an->totals.live_bytes_at_exit += b->size;
	an->leaks[c->kind].bytes += b->size;
	an->leaks[c->kind].blocks++;
}

static void classify_unseen(struct block *b, void *arg)
{
	if (!b->seen)
		classify_block(b, arg);
}

static int cmp_leak_addr(const void *a, const void *b)
{
	const struct reports_leak_block *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static int cmp_scan_addr(const void *a, const void *b, void *arg)
{
	const struct reports_scan_block *sb = arg;
	uint64_t x = sb[*(const uint32_t *)a].addr, y = sb[*(const uint32_t *)b].addr;
	return x < y ? -1 : x > y;
}

/* One group of blocks: a loss record's kind and stack, its blocks' place. */
struct bucket {
	uint64_t key; /* kind << 32 | stack */
	size_t count;
	size_t at;
};

static int cmp_bucket(const void *a, const void *b)
{
	const struct bucket *x = a, *y = b;
	return x->key < y->key ? -1 : x->key > y->key;
}

/* The scan that classifies: the last one made at exit, else the last. */
static size_t chosen_scan(const struct reports_capture *cap)
{
	for (size_t i = cap->n_scans; i-- > 0;)
		if (cap->scans[i].flags & CAPTURE_SCAN_AT_EXIT)
			return i;
	return cap->n_scans - 1;
}

/* The blocks in address order, without merging them in memory: the scan's
 * blocks [0, ns) and the others [ns, n), each sorted; a tie takes the
 * scan's first.  Returns the next one's index, or n at the end. */
struct addr_merge {
	const struct reports_leak_block *v;
	size_t a, ns, b, n;
};

static size_t merge_next(struct addr_merge *m)
{
	if (m->a < m->ns && (m->b >= m->n || m->v[m->a].addr <= m->v[m->b].addr))
		return m->a++;
	return m->b < m->n ? m->b++ : m->n;
}

/* The first of [lo, hi) at or above addr (sorted by address). */
static size_t lower_bound(const struct reports_leak_block *v, size_t lo, size_t hi, uint64_t addr)
{
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Classifies the blocks live at the end and groups them into records.
 * Without a sort of all the blocks or a map of their addresses (a leaked
 * 2 GiB heap has 16 million): the scan's blocks come in address order
 * (sorted here if they do not) and find their live block in the replay's
 * table; the live blocks the scan did not see (reachable) are sorted, and
 * both runs read as one list in address order (not merged in memory); a
 * counting pass then groups it by (kind, stack), stable, as memcheck lists
 * them.  The replay's table is freed once read. */
static int classify(struct builder *bd, struct replay *rp)
{
	const struct reports_capture *cap = bd->cap;
	struct reports_analysis *an = bd->an;
	struct reports_leak_block *v = NULL;
	uint32_t *scan_order = NULL, *pos = NULL, *rank = NULL;
	struct bucket *buckets = NULL;
	size_t n_buckets = 0, cap_buckets = 0, n_scan = 0, cap_scan = 0;
	struct reports_map bucket_of = { 0 };
	size_t n_live = rp->n_live;
	int res = -ENOMEM;

	v = calloc(n_live ? n_live : 1, sizeof(*v));
	pos = calloc(n_live ? n_live : 1, sizeof(*pos));
	if (!v || !pos)
		goto out;
	struct classify_ctx ctx = { cap, an, v, 0, NULL };
	an->scanned = cap->n_scans > 0;
	if (an->scanned) {
		size_t chosen = chosen_scan(cap);
		an->scan_partial = cap->scans[chosen].flags & CAPTURE_SCAN_PARTIAL;
		an->scan_on_demand = !(cap->scans[chosen].flags & CAPTURE_SCAN_AT_EXIT);
		bool sorted = true;
		for (size_t i = 0; i < cap->n_scan_blocks && i < UINT32_MAX; i++) {
			if (cap->scan_blocks[i].scan != chosen)
				continue;
			uint32_t k = (uint32_t)i;
			if (n_scan > 0 &&
			    cap->scan_blocks[scan_order[n_scan - 1]].addr >= cap->scan_blocks[i].addr)
				sorted = false;
			if (reports_vec_push(&scan_order, &n_scan, &cap_scan, &k, sizeof(k)) < 0)
				goto out;
		}
		if (!sorted)
			qsort_r(scan_order, n_scan, sizeof(*scan_order), cmp_scan_addr,
				(void *)cap->scan_blocks);
		for (size_t k = 0; k < n_scan; k++) {
			const struct reports_scan_block *sb = &cap->scan_blocks[scan_order[k]];
			size_t slot = rp_find(rp, sb->addr);
			if (slot == SIZE_MAX || rp->slots[slot].seen)
				continue;
			ctx.sb = sb;
			classify_block(&rp->slots[slot], &ctx);
			for (uint32_t d = rp->slots[slot].next; d != NO_SLOT; d = rp->dups[d].next)
				classify_block(&rp->dups[d], &ctx);
		}
		free(scan_order);
		scan_order = NULL;
	}
	/* the rest: reachable, sorted */
	size_t ns = ctx.n;
	ctx.sb = NULL;
	replay_foreach(rp, classify_unseen, &ctx);
	size_t n = ctx.n;
	/* the live blocks are all in v: the replay's table is given back
	 * before the blocks are grouped (a 2 GiB heap's is as big as v) */
	replay_finish(rp);
	memset(rp, 0, sizeof(*rp));
	if (n - ns > 1)
		qsort(v + ns, n - ns, sizeof(*v), cmp_leak_addr);
	/* the groups, in (kind, stack) order, each block's group in pos */
	struct addr_merge m = { v, 0, ns, ns, n };
	for (size_t i; (i = merge_next(&m)) < n;) {
		uint64_t key = (uint64_t)v[i].kind << 32 | v[i].stack;
		uint32_t g;
		int added = reports_map_add(&bucket_of, key, (uint32_t)n_buckets, &g);
		if (added < 0)
			goto out;
		if (added == 0) {
			struct bucket bk = { key, 0, 0 };
			g = (uint32_t)n_buckets;
			if (n_buckets >= UINT32_MAX - 1 ||
			    reports_vec_push(&buckets, &n_buckets, &cap_buckets, &bk, sizeof(bk)) < 0)
				goto out;
		}
		buckets[g].count++;
		pos[i] = g;
	}
	reports_map_finish(&bucket_of);
	/* the map names buckets by their place before the sort: keep it */
	rank = calloc(n_buckets ? n_buckets : 1, sizeof(*rank));
	if (!rank)
		goto out;
	for (size_t g = 0; g < n_buckets; g++)
		buckets[g].at = g; /* remember the bucket's number across the sort */
	if (n_buckets > 1)
		qsort(buckets, n_buckets, sizeof(*buckets), cmp_bucket);
	size_t at = 0;
	for (size_t r = 0; r < n_buckets; r++) {
		rank[buckets[r].at] = (uint32_t)r;
		buckets[r].at = at;
		at += buckets[r].count;
	}
	/* each block's record, and its place in the groups (in pos) */
	m = (struct addr_merge){ v, 0, ns, ns, n };
	for (size_t i; (i = merge_next(&m)) < n;) {
		uint32_t r = rank[pos[i]];
		v[i].record = r;
		pos[i] = (uint32_t)buckets[r].at++;
	}
	/* one record per (kind, stack), in the order of the groups */
	if (n_buckets > 0) {
		an->leak_records = calloc(n_buckets, sizeof(*an->leak_records));
		if (!an->leak_records)
			goto out;
	}
	an->n_leak_records = n_buckets;
	for (size_t i = 0; i < n; i++) {
		struct reports_leak_record *rec = &an->leak_records[v[i].record];
		rec->kind = v[i].kind;
		rec->stack = v[i].stack;
		rec->bytes += v[i].size;
		rec->blocks++;
	}
	/* indirectly lost blocks count with the record of the block they hang
	 * off, the first at its address in address order */
	for (size_t i = 0; i < n; i++) {
		if (v[i].kind != REPORTS_LEAK_INDIRECT || !v[i].indirect_of)
			continue;
		uint64_t addr = v[i].indirect_of;
		size_t a = lower_bound(v, 0, ns, addr), b = lower_bound(v, ns, n, addr);
		size_t lo = a < ns && (b == n || v[a].addr <= v[b].addr) ? a : b;
		if (lo == n || v[lo].addr != addr)
			continue;
		const struct reports_leak_block *owner = &v[lo];
		if (owner->kind == REPORTS_LEAK_INDIRECT)
			continue;
		struct reports_leak_record *rec = &an->leak_records[owner->record];
		rec->indirect_bytes += v[i].size;
		rec->indirect_blocks++;
	}
	/* leaks: the blocks themselves in the order of the groups, for
	 * suppressions and cycles (leaks.c): each moved to its place */
	an->leak_blocks = malloc((n ? n : 1) * sizeof(*an->leak_blocks));
	if (!an->leak_blocks)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct reports_leak_block *to = &an->leak_blocks[pos[i]];
		*to = v[i];
		to->record = UINT32_MAX;
	}
	an->n_leak_blocks = n;
	if (an->n_leak_records > 1)
		qsort(an->leak_records, an->n_leak_records, sizeof(*an->leak_records),
		      reports_leak_record_cmp);
	res = 0;
out:
	reports_map_finish(&bucket_of);
	free(buckets);
	free(scan_order);
	free(rank);
	free(v);
	free(pos);
	return res;
}

/* ---- the lineno view ---------------------------------------------------- */

static int cmp_str(const char *a, const char *b)
{
	if (a == b) /* the same string, often: one frame for many sites */
		return 0;
	if (!a || !b)
		return (a != NULL) - (b != NULL);
	return strcmp(a, b);
}

static int cmp_lineno_key(const void *a, const void *b)
{
	const struct reports_lineno *x = a, *y = b;
	int c = cmp_str(x->file, y->file);
	if (c)
		return c;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->file)
		return 0;
	if ((c = cmp_str(x->function, y->function)) || (c = cmp_str(x->module, y->module)))
		return c;
	if (x->function)
		return 0;
	return x->address < y->address ? -1 : x->address > y->address;
}

static int cmp_lineno_bytes(const void *a, const void *b)
{
	const struct reports_lineno *x = a, *y = b;
	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	if (x->allocations != y->allocations)
		return x->allocations > y->allocations ? -1 : 1;
	return cmp_lineno_key(a, b);
}

/* Whether a frame is an allocator's, remembered by frame (the symbolizer
 * keeps its frames in place): millions of sites share a few frames, and
 * the test compares the name with a list. */
#define ALLOC_MEMO 4096u

struct alloc_memo {
	const struct reports_frame *frame[ALLOC_MEMO];
	bool is_allocator[ALLOC_MEMO];
};

static bool memo_is_allocator(struct alloc_memo *m, const struct reports_frame *f)
{
	size_t h = (size_t)(reports_hash64((uint64_t)(uintptr_t)f) & (ALLOC_MEMO - 1));
	if (m->frame[h] != f) {
		m->frame[h] = f;
		m->is_allocator[h] = reports_frame_is_allocator(f);
	}
	return m->is_allocator[h];
}

/* The frame a site is shown by: the first frame of the program (not an
 * allocator wrapper) that has a line, else the first such frame at all,
 * else the first frame.  Symbolizes the stack only as far as it looks. */
static const struct reports_frame *lineno_key(struct reports_symbolizer *sym,
					      const struct reports_capture *cap, uint32_t stack,
					      struct alloc_memo *memo, struct reports_lineno *key)
{
	memset(key, 0, sizeof(*key));
	if (!sym) {
		uint64_t ip = 0;
		if (reports_stack_ips(cap, stack, &ip, 1) > 0)
			key->address = ip;
		return NULL;
	}
	const struct reports_frame *pick = NULL, *first = NULL;
	uint32_t node = stack;
	for (size_t d = 0; node != REPORTS_NO_STACK && node < cap->n_nodes &&
			   d < REPORTS_STACK_DEPTH_MAX && !(pick && pick->file);
	     d++, node = cap->nodes[node].parent) {
		const struct reports_frame *f;
		size_t k = reports_symbolizer_lookup(sym, cap->nodes[node].ip, &f);
		for (size_t j = 0; j < k; j++) {
			if (!first)
				first = &f[j];
			if (memo_is_allocator(memo, &f[j]))
				continue;
			if (!pick)
				pick = &f[j];
			if (f[j].file) {
				pick = &f[j];
				break;
			}
		}
	}
	if (!pick)
		pick = first;
	if (pick) {
		key->file = pick->file;
		key->line = pick->file ? pick->line : 0;
		key->function = pick->function;
		key->module = pick->module;
		key->address = pick->address;
	}
	return pick;
}

/* Adds the counters of from to to. */
static void lineno_add(struct reports_lineno *to, const struct reports_lineno *from)
{
	to->allocations += from->allocations;
	to->bytes += from->bytes;
	to->peak_bytes += from->peak_bytes;
	to->leaked_bytes += from->leaked_bytes;
}

/* The sites by the frame each is shown by.  A key is a function of that
 * frame alone (of the first address without a symbolizer), and the
 * symbolizer keeps one frame per address in place: the sites are first
 * gathered by frame, through a map (a deep recursion has a million sites
 * and a handful of frames), then the frames' keys sorted and equal ones
 * merged (two addresses on one line). */
static int build_lineno(struct builder *bd, struct reports_symbolizer *sym)
{
	struct reports_analysis *an = bd->an;
	struct reports_lineno *v = NULL;
	size_t n_v = 0, cap_v = 0;
	struct reports_map by_frame = { 0 };
	struct alloc_memo *memo = calloc(1, sizeof(*memo));
	int res = memo ? 0 : -ENOMEM;
	for (size_t i = 0; res == 0 && i < an->n_sites; i++) {
		const struct reports_site *s = &an->sites[i];
		if ((i & 0xff) == 0) /* progress.c */
			reports_progress("symbolizing", i, an->n_sites);
		struct reports_lineno key;
		const struct reports_frame *pick = lineno_key(sym, bd->cap, s->stack, memo, &key);
		key.allocations = s->allocations;
		key.bytes = s->bytes;
		key.peak_bytes = s->peak_bytes;
		key.leaked_bytes = s->leaked_bytes;
		uint64_t group = sym ? (uint64_t)(uintptr_t)pick : key.address;
		uint32_t at;
		if (reports_map_get(&by_frame, group, &at)) {
			lineno_add(&v[at], &key);
			continue;
		}
		if (n_v >= UINT32_MAX - 1 ||
		    reports_vec_push(&v, &n_v, &cap_v, &key, sizeof(key)) < 0 ||
		    reports_map_put(&by_frame, group, (uint32_t)(n_v - 1)) < 0) {
			res = -ENOMEM;
			break;
		}
	}
	free(memo);
	reports_map_finish(&by_frame);
	if (res < 0) {
		free(v);
		return res;
	}
	if (n_v > 1)
		qsort(v, n_v, sizeof(*v), cmp_lineno_key);
	size_t n = 0;
	for (size_t i = 0; i < n_v; i++) {
		if (n > 0 && cmp_lineno_key(&v[n - 1], &v[i]) == 0)
			lineno_add(&v[n - 1], &v[i]);
		else
			v[n++] = v[i];
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_lineno_bytes);
	an->lineno = v;
	an->n_lineno = n;
	return 0;
}

/* ---- sorting sites ------------------------------------------------------ */

struct sort_ctx {
	const struct reports_site *sites;
	enum reports_site_order how;
};

static int cmp3(uint64_t a, uint64_t b)
{
	return a > b ? -1 : a < b;
}

static int cmp_sites(const struct reports_site *x, const struct reports_site *y,
		     enum reports_site_order how)
{
	int c = 0;
	switch (how) {
	case REPORTS_SITES_BY_PEAK:
		if ((c = cmp3(x->peak_bytes, y->peak_bytes)) || (c = cmp3(x->bytes, y->bytes)))
			return c;
		break;
	case REPORTS_SITES_BY_BYTES:
		if ((c = cmp3(x->bytes, y->bytes)) || (c = cmp3(x->allocations, y->allocations)))
			return c;
		break;
	case REPORTS_SITES_BY_COUNT:
		if ((c = cmp3(x->allocations, y->allocations)) || (c = cmp3(x->bytes, y->bytes)))
			return c;
		break;
	}
	return x->stack < y->stack ? -1 : x->stack > y->stack;
}

static int cmp_order(const void *a, const void *b, void *arg)
{
	const struct sort_ctx *x = arg;
	return cmp_sites(&x->sites[*(const size_t *)a], &x->sites[*(const size_t *)b], x->how);
}

void reports_sites_sort(const struct reports_analysis *an, enum reports_site_order how,
			size_t *order)
{
	/* a total order (sites have distinct stacks): any sort gives the same */
	struct sort_ctx x = { an->sites, how };
	for (size_t i = 0; i < an->n_sites; i++)
		order[i] = i;
	if (an->n_sites > 1)
		qsort_r(order, an->n_sites, sizeof(*order), cmp_order, &x);
}

/* Moves heap[at] down a heap whose root sorts last among the kept. */
static void top_sift(const struct reports_analysis *an, enum reports_site_order how,
		     size_t *heap, size_t n, size_t at)
{
	for (;;) {
		size_t l = 2 * at + 1, big = at;
		if (l < n && cmp_sites(&an->sites[heap[l]], &an->sites[heap[big]], how) > 0)
			big = l;
		if (l + 1 < n && cmp_sites(&an->sites[heap[l + 1]], &an->sites[heap[big]], how) > 0)
			big = l + 1;
		if (big == at)
			return;
		size_t tmp = heap[at];
		heap[at] = heap[big];
		heap[big] = tmp;
		at = big;
	}
}

size_t reports_sites_top(const struct reports_analysis *an, enum reports_site_order how,
			 size_t *order, size_t k)
{
	size_t n = an->n_sites;
	if (k == 0)
		return 0;
	if (k >= n / 4) {
		reports_sites_sort(an, how, order);
		return n;
	}
	/* the k first of a total order: one pass keeping the best k in a
	 * heap (millions of sites, a handful shown), then those sorted */
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (m < k) {
			order[m++] = i;
			if (m == k)
				for (size_t j = k / 2; j-- > 0;)
					top_sift(an, how, order, k, j);
		} else if (cmp_sites(&an->sites[i], &an->sites[order[0]], how) < 0) {
			order[0] = i;
			top_sift(an, how, order, k, 0);
		}
	}
	struct sort_ctx x = { an->sites, how };
	if (m > 1)
		qsort_r(order, m, sizeof(*order), cmp_order, &x);
	return m;
}

static int cmp_site_peak(const void *a, const void *b)
{
	return cmp_sites(a, b, REPORTS_SITES_BY_PEAK);
}

/* ---- entry points ------------------------------------------------------- */

struct reports_analysis *reports_analysis_run(const struct reports_capture *cap,
					      struct reports_symbolizer *sym)
{
	struct reports_analysis *an;
	struct builder bd;
	struct replay rp = { 0 };
	int res;
	struct reports_prepass *pre = cap->prepass;
	if (pre && pre->res == 0) {
		/* made while following: its work, once only */
		res = 0;
		an = pre->an;
		bd = pre->bd;
		rp = pre->rp;
		((struct reports_capture *)cap)->prepass = NULL;
		free(pre);
		bd.cap = cap;
	} else {
		/* a followed capture whose pass failed is read again instead */
		if ((cap->source && cap->source->raw_stacks) || !(an = calloc(1, sizeof(*an))))
			return NULL;
		bd = (struct builder){ .cap = cap, .an = an };
		res = replay_events(&bd, &rp);
	}
	if (res == 0 && (res = replay_sites(&bd)) == 0)
		res = classify(&bd, &rp);
	replay_finish(&rp);
	builder_finish(&bd);
	if (res == 0)
		res = build_lineno(&bd, sym);
	if (res == 0)
		res = reports_cycles_find(cap, an);
	if (res == 0) /* objects: libmemprof-heap (objects.c) */
		an->objects = reports_objects_analyse(cap, sym, &res);
	if (res < 0) {
		reports_analysis_destroy(an);
		return NULL;
	}
	if (an->n_sites > 1)
		qsort(an->sites, an->n_sites, sizeof(*an->sites), cmp_site_peak);
	struct reports_totals *t = &an->totals;
	t->peak_time_ns = t->peak_bytes ? reports_capture_time_of_seq(cap, t->peak_seq) : 0;
	if (cap->has_end)
		t->duration_ns = cap->end_t_ns;
	else if (cap->n_samples > 0)
		t->duration_ns = cap->samples[cap->n_samples - 1].t_ns;
	return an;
}

void reports_analysis_destroy(struct reports_analysis *an)
{
	if (!an)
		return;
	free(an->sites);
	free(an->lineno);
	free(an->leak_records);
	free(an->leak_blocks);
	if (an->cycles)
		reports_cycles_finish(an->cycles);
	free(an->cycles);
	reports_objects_destroy(an->objects);
	free(an);
}

const char *reports_leak_kind_name(enum reports_leak_kind kind)
{
	static const char *const names[REPORTS_LEAK_KINDS] = {
		"definite", "indirect", "possible", "reachable", "suppressed",
	};
	return (unsigned)kind < REPORTS_LEAK_KINDS ? names[kind] : "unknown";
}
