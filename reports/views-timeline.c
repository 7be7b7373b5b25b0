/*
 * views-timeline.c: mprof's plot on the terminal (`memprof report
 * --timeline`): the live heap bytes and the resident set size over the
 * run, as a character chart with axes, units and the peak marked.  Entry
 * point: reports_render_timeline().
 *
 * The heap comes from replaying the events (every ALLOC and FREE, so the
 * peak is exact, not sampled); each column shows the most that was live
 * during its slice of time, drawn as a bar of block characters (eighths
 * of a row).  RSS comes from the SAMPLE records (every 10 ms): a dot in
 * each column at the last sample's value, none before the first sample.
 * Times of events are interpolated between the samples' (seq, time)
 * pairs the way reports_capture_time_of_seq() does.  A capture without
 * any time (no END, no samples) is plotted against the event sequence
 * instead.  The peak's column is marked under the time axis.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reports-private.h"
#include "reports.h"

#define DEFAULT_WIDTH 72u
#define DEFAULT_HEIGHT 16u
#define WIDTH_MAX 1000u
#define HEIGHT_MAX 200u
#define LABEL_WIDTH 10

/* ---- live bytes over the events ---------------------------------------- */

#define NO_SLOT UINT32_MAX

struct lblock {
	uint64_t size;
	uint32_t next; /* a newer live block at the same address */
};

struct live {
	struct reports_map map; /* address -> oldest live block */
	struct lblock *blocks;
	size_t n_blocks, cap_blocks;
	uint32_t *free_slots;
	size_t n_free, cap_free;
	uint64_t bytes;
};

static void live_finish(struct live *l)
{
	reports_map_finish(&l->map);
	free(l->blocks);
	free(l->free_slots);
}

static int live_apply(struct live *l, const struct reports_event *ev)
{
	uint32_t slot;
	if (ev->kind == REPORTS_EVENT_FREE) {
		if (!reports_map_remove(&l->map, ev->addr, &slot))
			return 0;
		struct lblock b = l->blocks[slot];
		if (b.next != NO_SLOT && reports_map_put(&l->map, ev->addr, b.next) < 0)
			return -ENOMEM;
		l->bytes -= b.size;
		return reports_vec_push(&l->free_slots, &l->n_free, &l->cap_free, &slot,
					sizeof(slot));
	}
	struct lblock b = {ev->size, NO_SLOT};
	if (l->n_free > 0) {
		slot = l->free_slots[--l->n_free];
		l->blocks[slot] = b;
	} else {
		if (l->n_blocks >= NO_SLOT - 1)
			return -ENOMEM;
		slot = (uint32_t)l->n_blocks;
		if (reports_vec_push(&l->blocks, &l->n_blocks, &l->cap_blocks, &b, sizeof(b)) < 0)
			return -ENOMEM;
	}
	uint32_t head;
	int res = reports_map_add(&l->map, ev->addr, slot, &head);
	if (res < 0)
		return res;
	if (res == 1) {
		while (l->blocks[head].next != NO_SLOT)
			head = l->blocks[head].next;
		l->blocks[head].next = slot;
	}
	l->bytes += ev->size;
	return 0;
}

/* ---- time of a sequence number --------------------------------------------- */

/* Walks the (seq, time) points (0, 0), the samples, END in order, for
 * sequence numbers that only grow. */
struct clock {
	const struct reports_capture *cap;
	size_t next; /* the next point */
	uint64_t s0, t0;
};

static bool clock_point(const struct clock *c, size_t i, uint64_t *s, uint64_t *t)
{
	const struct reports_capture *cap = c->cap;
	if (i < cap->n_samples) {
		*s = cap->samples[i].seq;
		*t = cap->samples[i].t_ns;
		return true;
	}
	if (i == cap->n_samples && cap->has_end) {
		*s = cap->end_seq;
		*t = cap->end_t_ns;
		return true;
	}
	return false;
}

static uint64_t clock_time(struct clock *c, uint64_t seq)
{
	uint64_t s1, t1;
	while (clock_point(c, c->next, &s1, &t1)) {
		if (s1 < c->s0 || t1 < c->t0) {
			c->next++; /* out of order: skip the point */
			continue;
		}
		if (seq <= s1) {
			if (s1 == c->s0)
				return c->t0;
			long double f = (long double)(seq - c->s0) / (long double)(s1 - c->s0);
			return c->t0 + (uint64_t)(f * (long double)(t1 - c->t0));
		}
		c->s0 = s1;
		c->t0 = t1;
		c->next++;
	}
	return c->t0;
}

/* ---- the chart ---------------------------------------------------------------- */

struct chart {
	FILE *out;
	unsigned w, h;
	bool ascii;
	bool by_time;	/* else by event sequence */
	uint64_t x_max; /* ns, or the last seq */
	uint64_t *heap; /* per column: most bytes live */
	uint64_t *rss;	/* per column: RSS, when has_rss[col] */
	bool *has_rss;
	bool any_rss;
	uint64_t rss_max;
	unsigned peak_col;
	double y_top;  /* bytes at the top of the plot */
	double y_unit; /* bytes of the unit the labels use */
	const char *y_unit_name;
};

static unsigned column(const struct chart *c, uint64_t x)
{
	if (c->x_max == 0)
		return 0;
	uint64_t col = (uint64_t)((long double)x * c->w / (long double)c->x_max);
	return col >= c->w ? c->w - 1 : (unsigned)col;
}

/* The last x of column col, from x0 (in it) on, within [0, x_max]: there
 * column() never decreases with x (above x_max its product can overflow,
 * and what it gives there is left to column()). */
static uint64_t column_last(const struct chart *c, uint64_t x0, unsigned col)
{
	if (column(c, c->x_max) <= col)
		return c->x_max;
	uint64_t lo = x0, hi = c->x_max; /* column(lo) == col < column(hi) */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (column(c, mid) > col)
			hi = mid;
		else
			lo = mid;
	}
	return lo;
}

/* The column of an event, without the two long double steps (its time,
 * its column) per event: the column of seq holds up to seq_last, the
 * last seq that maps into it, worked out (by bisection) when a seq first
 * passes it.  The time of a seq never decreases with it (the clock's
 * segments join), so neither does its column: the same columns as
 * column(clock_time()) for every event, in far fewer steps.  Past x_max
 * (only in a capture whose clock contradicts its duration) every event
 * takes both steps, as it did. */
struct colcache {
	struct clock clk;
	uint64_t seq_last;
	unsigned col;
	bool valid;
	bool x_known;   /* x_last is col's last x (kept while the column */
	uint64_t x_last; /* stays: a new clock segment costs no bisection) */
};

/* The time of seq on the clock's current segment, which ends at (s1, t1):
 * what clock_time() says for any seq of the segment. */
static uint64_t segment_time(const struct clock *k, uint64_t s1, uint64_t t1, uint64_t seq)
{
	if (s1 == k->s0)
		return k->t0;
	long double f = (long double)(seq - k->s0) / (long double)(s1 - k->s0);
	return k->t0 + (uint64_t)(f * (long double)(t1 - k->t0));
}

static unsigned colcache_get(struct colcache *cc, const struct chart *c, uint64_t seq)
{
	if (cc->valid && seq <= cc->seq_last)
		return cc->col;
	uint64_t x = c->by_time ? clock_time(&cc->clk, seq) : seq;
	unsigned col = column(c, x);
	if (x > c->x_max) {
		cc->valid = cc->x_known = false;
		return col;
	}
	if (!cc->valid || !cc->x_known || col != cc->col)
		cc->x_last = column_last(c, x, col);
	cc->col = col;
	cc->valid = cc->x_known = true;
	if (!c->by_time) {
		cc->seq_last = cc->x_last;
		return col;
	}
	uint64_t s1, t1;
	if (!clock_point(&cc->clk, cc->clk.next, &s1, &t1)) {
		cc->seq_last = UINT64_MAX; /* past the last point: the time stays */
		return col;
	}
	/* within the segment: the last seq whose time is in the column */
	if (segment_time(&cc->clk, s1, t1, s1) <= cc->x_last) {
		cc->seq_last = s1;
		return col;
	}
	uint64_t lo = seq, hi = s1; /* time(lo) <= x_last < time(hi) */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (segment_time(&cc->clk, s1, t1, mid) <= cc->x_last)
			lo = mid;
		else
			hi = mid;
	}
	cc->seq_last = lo;
	return col;
}

static int fill_heap(struct chart *c, const struct reports_capture *cap)
{
	struct live l = {0};
	struct colcache cc = {.clk = {.cap = cap}};
	unsigned last_col = 0;
	int res = 0;
	struct reports_events *it;
	struct reports_event event;
	const struct reports_event *ev = &event;
	if ((res = reports_events_open(cap, &it)) < 0) {
		live_finish(&l);
		return res;
	}
	for (size_t i = 0; res == 0 && (res = reports_events_next(it, &event)) > 0; i++) {
		res = 0;
		unsigned col = colcache_get(&cc, c, ev->seq);
		/* the columns without events keep what was live before */
		for (unsigned k = last_col + 1; k <= col; k++)
			c->heap[k] = l.bytes;
		if (col > last_col)
			last_col = col;
		if ((i & 0xffff) == 0)
			reports_progress("plotting", i, cap->n_events);
		if ((res = live_apply(&l, ev)) == 0 && l.bytes > c->heap[last_col])
			c->heap[last_col] = l.bytes;
	}
	reports_events_close(it);
	for (unsigned k = last_col + 1; k < c->w; k++)
		c->heap[k] = l.bytes;
	live_finish(&l);
	return res;
}

/* RSS per column: the most any sample of the column saw; a column without
 * a sample keeps the value of the last sample before it. */
static int fill_rss(struct chart *c, const struct reports_capture *cap)
{
	uint64_t *last = calloc(c->w, sizeof(*last));
	if (!last)
		return -ENOMEM;
	for (size_t i = 0; i < cap->n_samples; i++) {
		const struct reports_sample *s = &cap->samples[i];
		unsigned col = column(c, c->by_time ? s->t_ns : s->seq);
		if (!c->has_rss[col] || s->rss_bytes > c->rss[col])
			c->rss[col] = s->rss_bytes;
		c->has_rss[col] = true;
		last[col] = s->rss_bytes;
		c->any_rss = true;
		if (s->rss_bytes > c->rss_max)
			c->rss_max = s->rss_bytes;
	}
	bool carry = false;
	uint64_t value = 0;
	for (unsigned col = 0; col < c->w; col++) {
		if (c->has_rss[col]) {
			carry = true;
			value = last[col];
		} else if (carry) {
			c->rss[col] = value;
			c->has_rss[col] = true;
		}
	}
	free(last);
	return 0;
}

/* The scale: a round top (1, 2, 2.5 or 5 times a power of ten of a binary
 * unit, times the four ticks) that holds max. */
static void choose_scale(struct chart *c, uint64_t max)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double unit = 1.0;
	unsigned u = 0;
	if (max == 0)
		max = 1;
	while ((double)max / unit >= 1024.0 && u < 4) {
		unit *= 1024.0;
		u++;
	}
	double raw = (double)max / unit / 4.0;
	double mag = pow(10.0, floor(log10(raw)));
	static const double steps[] = {1.0, 2.0, 2.5, 5.0, 10.0};
	double step = 10.0 * mag;
	for (size_t i = 0; i < sizeof(steps) / sizeof(*steps); i++) {
		if (steps[i] * mag >= raw) {
			step = steps[i] * mag;
			break;
		}
	}
	if (u == 0 && step < 1.0)
		step = 1.0; /* no fractions of a byte */
	c->y_unit = unit;
	c->y_unit_name = units[u];
	c->y_top = 4.0 * step * unit;
}

static void fmt_number(char *buf, size_t size, double v)
{
	if (fabs(v - round(v)) < 1e-9)
		snprintf(buf, size, "%.0f", v);
	else if (fabs(v * 10 - round(v * 10)) < 1e-9)
		snprintf(buf, size, "%.1f", v);
	else
		snprintf(buf, size, "%.2f", v);
}

static void fmt_y(const struct chart *c, char *buf, size_t size, double bytes)
{
	char n[32];
	fmt_number(n, sizeof(n), bytes / c->y_unit);
	snprintf(buf, size, "%s %s", n, c->y_unit_name);
}

/* Times in the unit that suits the whole axis. */
static void fmt_x(const struct chart *c, char *buf, size_t size, uint64_t x)
{
	char n[32];
	if (!c->by_time) {
		snprintf(buf, size, "%" PRIu64, x);
		return;
	}
	double div = 1e9;
	const char *name = "s";
	if (c->x_max < 1000000ull) {
		div = 1e3;
		name = c->ascii ? "us" : "\xc2\xb5s";
	} else if (c->x_max < 1000000000ull) {
		div = 1e6;
		name = "ms";
	}
	double v = (double)x / div;
	snprintf(n, sizeof(n), v >= 100 || v == 0 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v);
	snprintf(buf, size, "%s %s", n, name);
}

static void put(const struct chart *c, const char *utf8, char ascii)
{
	if (c->ascii)
		fputc(ascii, c->out);
	else
		fputs(utf8, c->out);
}

static void draw_cell(const struct chart *c, unsigned col, unsigned row)
{
	static const char *const eighths[] = {" ",
					      "\xe2\x96\x81",
					      "\xe2\x96\x82",
					      "\xe2\x96\x83",
					      "\xe2\x96\x84",
					      "\xe2\x96\x85",
					      "\xe2\x96\x86",
					      "\xe2\x96\x87",
					      "\xe2\x96\x88"};
	double cell = c->y_top / c->h;
	if (c->has_rss[col]) {
		unsigned r = (unsigned)((double)c->rss[col] / cell);
		if (r >= c->h)
			r = c->h - 1;
		if (r == row) {
			put(c, "\xe2\x80\xa2", '*');
			return;
		}
	}
	double level = (double)c->heap[col] / cell - row; /* rows of this cell filled */
	unsigned e = level >= 1.0 ? 8 : level <= 0.0 ? 0 : (unsigned)(level * 8.0);
	if (e == 0 && row == 0 && c->heap[col] > 0)
		e = 1; /* anything live shows */
	if (c->ascii)
		fputc(e >= 4 ? '#' : e > 0 ? '_' : ' ', c->out);
	else
		fputs(eighths[e], c->out);
}

static void draw(struct chart *c, const struct reports_capture *cap,
		 const struct reports_analysis *an)
{
	char label[64];
	FILE *out = c->out;
	/* title */
	fputs("Heap (live bytes) and RSS over ", out);
	fputs(c->by_time ? "time" : "the allocation events (no time recorded)", out);
	fputc('\n', out);
	(void)cap;
	/* rows, top first; a tick and a label every h/4 rows */
	for (unsigned i = 0; i < c->h; i++) {
		unsigned row = c->h - 1 - i;
		bool tick = (row + 1) * 4 % c->h == 0;
		if (tick) {
			fmt_y(c, label, sizeof(label), c->y_top * (row + 1) / c->h);
			fprintf(out, "%*s ", LABEL_WIDTH, label);
			put(c, "\xe2\x94\xa4", '+');
		} else {
			fprintf(out, "%*s ", LABEL_WIDTH, "");
			put(c, "\xe2\x94\x82", '|');
		}
		for (unsigned col = 0; col < c->w; col++)
			draw_cell(c, col, row);
		fputc('\n', out);
	}
	/* the time axis: ticks every w/4 columns */
	fmt_y(c, label, sizeof(label), 0);
	fprintf(out, "%*s ", LABEL_WIDTH, label);
	put(c, "\xe2\x94\xbc", '+');
	for (unsigned col = 0; col < c->w; col++) {
		bool tick = col > 0 && col % (c->w / 4 ? c->w / 4 : 1) == 0;
		put(c, tick ? "\xe2\x94\xac" : "\xe2\x94\x80", tick ? '+' : '-');
	}
	fputc('\n', out);
	/* tick labels, each starting under its tick (the last ends the axis) */
	char line[WIDTH_MAX + 64];
	memset(line, ' ', sizeof(line));
	size_t used = 0;
	unsigned step = c->w / 4 ? c->w / 4 : 1;
	for (unsigned col = 0; col < c->w; col += step) {
		fmt_x(c, label, sizeof(label), (uint64_t)((long double)c->x_max * col / c->w));
		size_t at = col + 1, len = strlen(label);
		if (at < used + 1 && used)
			continue;
		memcpy(line + at, label, len);
		used = at + len;
	}
	fprintf(out, "%*s %.*s\n", LABEL_WIDTH, "", (int)used, line);
	/* the peak under its column */
	if (an->totals.peak_bytes) {
		fprintf(out, "%*s %*s", LABEL_WIDTH, "", (int)c->peak_col + 1, "");
		put(c, "\xe2\x96\xb2", '^');
		fputs(" peak\n", out);
	}
	/* legend */
	fprintf(out, "%*s ", LABEL_WIDTH, "");
	put(c, "\xe2\x96\x88", '#');
	fputs(" heap (live bytes): peak ", out);
	fprintf(out, "%" PRIu64 " B", an->totals.peak_bytes);
	if (an->totals.peak_bytes) {
		fmt_x(c, label, sizeof(label),
		      c->by_time ? an->totals.peak_time_ns : an->totals.peak_seq);
		fprintf(out, " at %s", label);
	}
	fprintf(out, ", %" PRIu64 " B at exit\n%*s ", an->totals.live_bytes_at_exit, LABEL_WIDTH,
		"");
	put(c, "\xe2\x80\xa2", '*');
	if (c->any_rss)
		fprintf(out, " RSS: at most %" PRIu64 " B\n", c->rss_max);
	else
		fputs(" RSS: no samples recorded (the run was shorter than 10 ms)\n", out);
}

int reports_render_timeline(FILE *out, const struct reports_capture *cap,
			    const struct reports_analysis *an,
			    const struct reports_timeline_options *opts)
{
	struct chart c = {
		.out = out,
		.w = opts && opts->width ? opts->width : DEFAULT_WIDTH,
		.h = opts && opts->height ? opts->height : DEFAULT_HEIGHT,
		.ascii = opts && opts->ascii,
	};
	if (c.w < 8 || c.w > WIDTH_MAX || c.h < 4 || c.h > HEIGHT_MAX)
		return -EINVAL;
	c.x_max = an->totals.duration_ns;
	c.by_time = c.x_max > 0;
	if (!c.by_time) {
		c.x_max = cap->has_end ? cap->end_seq : 0;
		if (cap->n_events > 0 && cap->events_last_seq > c.x_max)
			c.x_max = cap->events_last_seq;
	}
	c.heap = calloc(c.w, sizeof(*c.heap));
	c.rss = calloc(c.w, sizeof(*c.rss));
	c.has_rss = calloc(c.w, sizeof(*c.has_rss));
	int res = c.heap && c.rss && c.has_rss ? fill_heap(&c, cap) : -ENOMEM;
	if (res == 0)
		res = fill_rss(&c, cap);
	if (res == 0) {
		c.peak_col = column(&c, c.by_time ? an->totals.peak_time_ns : an->totals.peak_seq);
		uint64_t max =
			an->totals.peak_bytes > c.rss_max ? an->totals.peak_bytes : c.rss_max;
		for (unsigned k = 0; k < c.w; k++)
			max = c.heap[k] > max ? c.heap[k] : max;
		choose_scale(&c, max);
		draw(&c, cap, an);
	}
	free(c.heap);
	free(c.rss);
	free(c.has_rss);
	if (res < 0)
		return res;
	fflush(out);
	return ferror(out) ? -EIO : 0;
}
