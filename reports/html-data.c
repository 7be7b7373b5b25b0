/*
 * html-data.c: what the HTML report takes from the allocation events
 * before they are dropped: the live-bytes curve, what each site had live at
 * some points of it, the temporary allocations of each site and the
 * histogram of allocation sizes.  Entry point: reports_html_data_build().
 *
 * One more replay of the events in sequence order, against the analysis's
 * table of live blocks (replay.h: a FREE frees the oldest live block at
 * its address), with the live bytes and blocks of every site kept up to
 * date.
 * The curve has HTML_POINTS points evenly spaced in time (in sequence
 * numbers when the capture has no clock), plus one at the exact peak; at
 * every fifth point and at the peak the largest sites are copied out.
 *
 * Temporary allocations are counted by reports_temporary_count()
 * (views-folded.c), so that the page and `memprof report --format folded
 * --cost temporary` agree: freed before their thread allocated again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "html-private.h"
#include "replay.h"
#include "reports-private.h"
#include "reports.h"

struct state {
	const struct reports_capture *cap;
	const struct reports_analysis *an;
	struct reports_html_data *hd;
	/* stack -> site, by canonical node (n_nodes for REPORTS_NO_STACK):
	 * a map looked up at every ALLOC was an eighth of the time of a deep
	 * recursion's page */
	uint32_t *site_by_stack;
	size_t n_nodes;
	struct replay rp; /* the live blocks, and their bytes */
	uint64_t *site_bytes, *site_blocks;
	size_t cap_points, cap_breakdowns, cap_shares;
	size_t at;         /* the next point to close */
	uint64_t max_live; /* live bytes at most since the last point */
};

static int add_block(struct state *st, const struct reports_event *ev, uint64_t index,
		     uint32_t site)
{
	struct block unused;
	int res = replay_apply(&st->rp, ev, index, site, &unused);
	if (res < 0)
		return res;
	st->site_bytes[site] += ev->size;
	st->site_blocks[site]++;
	return 0;
}

/* Frees the oldest live block at ev's address: 1, 0 when none. */
static int remove_block(struct state *st, const struct reports_event *ev, uint64_t index)
{
	struct block out;
	int res = replay_apply(&st->rp, ev, index, 0, &out);
	if (res <= 0)
		return res;
	st->site_bytes[out.site] -= out.size;
	st->site_blocks[out.site]--;
	return 1;
}

static unsigned size_bucket(uint64_t size)
{
	/* 0 for 0, k for [2^(k-1), 2^k) */
	return size ? 64u - (unsigned)__builtin_clzll(size) : 0;
}

/* The points of the curve, by seq, without their values yet. */
static int plan_points(struct state *st)
{
	const struct reports_capture *cap = st->cap;
	struct reports_html_data *hd = st->hd;
	const struct reports_totals *t = &st->an->totals;
	uint64_t first = cap->events_first_seq, last = cap->events_last_seq;
	uint64_t duration = t->duration_ns;
	hd->by_time = duration > 0 && (cap->n_samples > 0 || cap->has_end);
	bool peak_placed = t->peak_bytes == 0;
	for (unsigned k = 1; k <= HTML_POINTS; k++) {
		struct html_point p = { .breakdown = UINT32_MAX };
		if (hd->by_time) {
			p.t_ns = duration / HTML_POINTS * k + duration % HTML_POINTS * k / HTML_POINTS;
			p.seq = k == HTML_POINTS ? UINT64_MAX : reports_capture_seq_at_time(cap, p.t_ns);
		} else {
			p.seq = first + (last - first) / HTML_POINTS * k +
				(last - first) % HTML_POINTS * k / HTML_POINTS;
			if (k == HTML_POINTS)
				p.seq = UINT64_MAX;
		}
		if (!peak_placed && t->peak_seq <= p.seq) {
			/* the peak gets a point of its own, just before */
			struct html_point pk = { .t_ns = t->peak_time_ns, .seq = t->peak_seq,
						 .breakdown = UINT32_MAX, .is_peak = true };
			if (hd->n_points > 0 && hd->points[hd->n_points - 1].seq == pk.seq)
				hd->n_points--; /* a point at the same seq: the peak replaces it */
			if (reports_vec_push(&hd->points, &hd->n_points, &st->cap_points, &pk,
					     sizeof(pk)) < 0)
				return -ENOMEM;
			peak_placed = true;
			if (p.seq == pk.seq)
				continue;
		}
		if (hd->n_points > 0 && hd->points[hd->n_points - 1].seq >= p.seq &&
		    p.seq != UINT64_MAX)
			continue; /* no event between two points: keep one */
		if (reports_vec_push(&hd->points, &hd->n_points, &st->cap_points, &p, sizeof(p)) < 0)
			return -ENOMEM;
	}
	return 0;
}

static bool wants_breakdown(const struct state *st, size_t index)
{
	const struct html_point *p = &st->hd->points[index];
	if (p->is_peak || index + 1 == st->hd->n_points)
		return true;
	/* every (points / HTML_BREAKDOWNS)th, the peak and the last come on top */
	size_t every = (st->hd->n_points + HTML_BREAKDOWNS - 3) / (HTML_BREAKDOWNS - 2);
	return every <= 1 || index % every == every - 1;
}

/* Copies out the largest sites live now, for point index. */
static int take_breakdown(struct state *st, size_t index)
{
	struct reports_html_data *hd = st->hd;
	struct html_breakdown bd = { .point = (uint32_t)index, .first = hd->n_shares,
				     .live_blocks = st->rp.n_live };
	struct html_share top[HTML_BREAKDOWN_TOP];
	size_t n = 0;
	for (size_t s = 0; s < st->an->n_sites; s++) {
		uint64_t b = st->site_bytes[s];
		if (!b && !st->site_blocks[s])
			continue;
		bd.other_bytes += b;
		bd.other_blocks += st->site_blocks[s];
		bd.other_sites++;
		if (n == HTML_BREAKDOWN_TOP && b <= top[n - 1].bytes)
			continue;
		/* insertion into the sorted top list */
		size_t at = n < HTML_BREAKDOWN_TOP ? n++ : n - 1;
		while (at > 0 && top[at - 1].bytes < b) {
			top[at] = top[at - 1];
			at--;
		}
		top[at] = (struct html_share){ (uint32_t)s, b, st->site_blocks[s] };
	}
	for (size_t i = 0; i < n; i++) {
		bd.other_bytes -= top[i].bytes;
		bd.other_blocks -= top[i].blocks;
		bd.other_sites--;
		if (reports_vec_push(&hd->shares, &hd->n_shares, &st->cap_shares, &top[i],
				     sizeof(top[i])) < 0)
			return -ENOMEM;
	}
	bd.n = n;
	hd->points[index].breakdown = (uint32_t)hd->n_breakdowns;
	return reports_vec_push(&hd->breakdowns, &hd->n_breakdowns, &st->cap_breakdowns, &bd,
				sizeof(bd));
}

/* Closes every point whose seq is below next_seq (every point left when
 * next_seq is UINT64_MAX: the events are over). */
static int close_points(struct state *st, size_t *at, uint64_t next_seq, uint64_t max_live)
{
	struct reports_html_data *hd = st->hd;
	while (*at < hd->n_points &&
	       (hd->points[*at].seq < next_seq || next_seq == UINT64_MAX)) {
		struct html_point *p = &hd->points[*at];
		p->live = st->rp.live_bytes;
		p->max_live = max_live > st->rp.live_bytes ? max_live : st->rp.live_bytes;
		if (!hd->by_time)
			p->t_ns = reports_capture_time_of_seq(st->cap, p->seq == UINT64_MAX
						? st->cap->events_last_seq : p->seq);
		if (wants_breakdown(st, *at)) {
			int res = take_breakdown(st, *at);
			if (res < 0)
				return res;
		}
		(*at)++;
		max_live = st->rp.live_bytes;
	}
	return 0;
}

/* The site_by_stack entry of a stack, NULL for a stack no site can have. */
static uint32_t *by_stack(const struct state *st, uint32_t stack)
{
	if (stack < st->n_nodes)
		return &st->site_by_stack[stack];
	return stack == REPORTS_NO_STACK ? &st->site_by_stack[st->n_nodes] : NULL;
}

/* The curve and the breakdowns from events evs[0, n), the first
 * numbered *index (a reports_apply_fn). */
static int replay_batch(void *arg, const struct reports_event *evs, size_t n, uint64_t *index)
{
	struct state *st = arg;
	struct reports_html_data *hd = st->hd;
	int res = 0;
	for (size_t k = 0; k < n && res == 0; k++) {
		const struct reports_event *ev = &evs[k];
		uint64_t i = (*index)++;
		if (st->at < hd->n_points && hd->points[st->at].seq < ev->seq) {
			if ((res = close_points(st, &st->at, ev->seq, st->max_live)) < 0)
				break;
			st->max_live = st->rp.live_bytes;
		}
		if (ev->kind == REPORTS_EVENT_ALLOC) {
			const uint32_t *site = by_stack(st, ev->stack);
			if (!site || *site == NO_SLOT)
				continue; /* the analysis made a site for every ALLOC */
			unsigned b = size_bucket(ev->size);
			hd->size_count[b]++;
			hd->size_bytes[b] += ev->size;
			res = add_block(st, ev, i, *site);
		} else {
			res = remove_block(st, ev, i);
			res = res < 0 ? res : 0;
		}
		if (st->rp.live_bytes > st->max_live)
			st->max_live = st->rp.live_bytes;
	}
	return res;
}

static int replay(struct state *st)
{
	struct reports_events *it;
	int res = reports_events_open(st->cap, &it);
	if (res == 0)
		res = reports_events_apply(it, replay_batch, st);
	reports_events_close(it);
	if (res < 0)
		return res;
	return close_points(st, &st->at, UINT64_MAX, st->max_live);
}

struct reports_html_data *reports_html_data_build(const struct reports_capture *cap,
						  const struct reports_analysis *an)
{
	struct reports_html_data *hd = calloc(1, sizeof(*hd));
	if (!hd)
		return NULL;
	size_t n_sites = an->n_sites ? an->n_sites : 1;
	hd->temporary = calloc(n_sites, sizeof(*hd->temporary));
	hd->n_sites = an->n_sites;
	struct state st = {
		.cap = cap,
		.an = an,
		.hd = hd,
		.site_bytes = calloc(n_sites, sizeof(uint64_t)),
		.site_blocks = calloc(n_sites, sizeof(uint64_t)),
	};
	int res = -ENOMEM;
	if (!hd->temporary || !st.site_bytes || !st.site_blocks)
		goto out;
	if ((res = reports_temporary_count(cap, an, hd->temporary, &hd->temporary_total)) < 0)
		goto out;
	res = -ENOMEM;
	st.n_nodes = cap->n_nodes;
	if (st.n_nodes >= SIZE_MAX / sizeof(*st.site_by_stack) - 1 ||
	    !(st.site_by_stack = malloc((st.n_nodes + 1) * sizeof(*st.site_by_stack))))
		goto out;
	memset(st.site_by_stack, 0xff, (st.n_nodes + 1) * sizeof(*st.site_by_stack));
	for (size_t s = 0; s < an->n_sites; s++) {
		uint32_t *slot = by_stack(&st, an->sites[s].stack);
		if (slot)
			*slot = (uint32_t)s;
	}
	res = 0;
	if (cap->n_events > 0 && (res = plan_points(&st)) == 0)
		res = replay(&st);
out:
	free(st.site_by_stack);
	replay_finish(&st.rp);
	free(st.site_bytes);
	free(st.site_blocks);
	if (res < 0) {
		reports_html_data_destroy(hd);
		return NULL;
	}
	return hd;
}

void reports_html_data_destroy(struct reports_html_data *hd)
{
	if (!hd)
		return;
	free(hd->points);
	free(hd->breakdowns);
	free(hd->shares);
	free(hd->temporary);
	free(hd);
}
