/*
 * views-folded.c: Brendan Gregg's collapsed ("folded") stacks, the input
 * of flamegraph.pl, inferno and speedscope, and the count of temporary
 * allocations they can weigh stacks by.  Entry points:
 * reports_render_folded(), reports_temporary_count().
 *
 * A line is the frames of one stack, outermost first, joined by ';', then
 * a space and the count: "main;load_config;xstrdup 4096".  Frames are
 * named by their function, an inlined call with flamegraph.pl's "_[i]"
 * annotation, an unknown one by module+0xOFFSET (stable from run to run,
 * unlike addresses).  Like the text report, a stack stops at main: what
 * lies below it is the C library's start-up.  Stacks with the same names
 * (say, two calls from different lines of one function) merge into one
 * line; lines are sorted, so the output of a deterministic program is.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "reports-private.h"
#include "reports.h"

bool reports_cost_parse(const char *name, enum reports_cost *out)
{
	static const char *const names[] = {"peak", "leaked", "allocations", "bytes", "temporary"};
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (enum reports_cost)i;
			return true;
		}
	}
	return false;
}

/* ---- temporary allocations ---------------------------------------------- */

#define NO_SLOT UINT32_MAX

/* A live block: the index of its ALLOC event, and the newer live block at
 * the same address (a realloc in place), or NO_SLOT. */
struct tblock {
	size_t event;
	uint32_t next;
};

struct temp_state {
	struct reports_map live; /* address -> slot of its oldest live block */
	struct tblock *blocks;
	size_t n_blocks, cap_blocks;
	uint32_t *free_slots;
	size_t n_free, cap_free;
	struct reports_map threads; /* thread -> index in pending */
	size_t *pending;	    /* per thread: its last ALLOC's index + 1, 0 none */
	size_t n_pending, cap_pending;
	struct reports_map sites; /* stack + 1 -> site */
};

static void temp_finish(struct temp_state *ts)
{
	reports_map_finish(&ts->live);
	reports_map_finish(&ts->threads);
	reports_map_finish(&ts->sites);
	free(ts->blocks);
	free(ts->free_slots);
	free(ts->pending);
}

static int temp_alloc(struct temp_state *ts, const struct reports_event *ev, size_t index)
{
	struct tblock b = {index, NO_SLOT};
	uint32_t slot, head;
	if (ts->n_free > 0) {
		slot = ts->free_slots[--ts->n_free];
		ts->blocks[slot] = b;
	} else {
		if (ts->n_blocks >= NO_SLOT - 1)
			return -ENOMEM;
		slot = (uint32_t)ts->n_blocks;
		if (reports_vec_push(&ts->blocks, &ts->n_blocks, &ts->cap_blocks, &b, sizeof(b)) <
		    0)
			return -ENOMEM;
	}
	if (reports_map_get(&ts->live, ev->addr, &head)) {
		while (ts->blocks[head].next != NO_SLOT)
			head = ts->blocks[head].next;
		ts->blocks[head].next = slot;
	} else if (reports_map_put(&ts->live, ev->addr, slot) < 0) {
		return -ENOMEM;
	}
	uint32_t t;
	if (!reports_map_get(&ts->threads, ev->thread, &t)) {
		size_t none = 0;
		t = (uint32_t)ts->n_pending;
		if (reports_vec_push(&ts->pending, &ts->n_pending, &ts->cap_pending, &none,
				     sizeof(none)) < 0 ||
		    reports_map_put(&ts->threads, ev->thread, t) < 0)
			return -ENOMEM;
	}
	ts->pending[t] = index + 1;
	return 0;
}

/* Frees the oldest live block at the address; returns the index of its
 * ALLOC event + 1, or 0 when none was live. */
static int temp_free(struct temp_state *ts, uint64_t addr, size_t *alloc_index)
{
	uint32_t slot;
	*alloc_index = 0;
	if (!reports_map_get(&ts->live, addr, &slot))
		return 0;
	struct tblock b = ts->blocks[slot];
	if (b.next != NO_SLOT) {
		if (reports_map_put(&ts->live, addr, b.next) < 0)
			return -ENOMEM;
	} else {
		reports_map_remove(&ts->live, addr, NULL);
	}
	if (reports_vec_push(&ts->free_slots, &ts->n_free, &ts->cap_free, &slot, sizeof(slot)) < 0)
		return -ENOMEM;
	*alloc_index = b.event + 1;
	return 0;
}

int reports_temporary_count(const struct reports_capture *cap, const struct reports_analysis *an,
			    uint64_t *per_site, uint64_t *total)
{
	struct temp_state ts = {0};
	int res = 0;
	*total = 0;
	for (size_t i = 0; i < an->n_sites; i++) {
		per_site[i] = 0;
		if (res == 0 && i < NO_SLOT)
			res = reports_map_put(&ts.sites, (uint64_t)an->sites[i].stack + 1,
					      (uint32_t)i);
	}
	for (size_t i = 0; i < cap->n_events && res == 0; i++) {
		const struct reports_event *ev = &cap->events[i];
		if (ev->kind == REPORTS_EVENT_ALLOC) {
			res = temp_alloc(&ts, ev, i);
			continue;
		}
		size_t a;
		if ((res = temp_free(&ts, ev->addr, &a)) < 0 || a == 0)
			continue;
		/* the freed block is temporary when its thread has not
		 * allocated since: it is still that thread's last ALLOC */
		const struct reports_event *alloc = &cap->events[a - 1];
		uint32_t t, site;
		if (!reports_map_get(&ts.threads, alloc->thread, &t) || ts.pending[t] != a)
			continue;
		ts.pending[t] = 0;
		if (reports_map_get(&ts.sites, (uint64_t)alloc->stack + 1, &site)) {
			per_site[site]++;
			(*total)++;
		}
	}
	temp_finish(&ts);
	return res;
}

/* ---- collapsed stacks ----------------------------------------------------- */

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* Writes s with ';' (the frame separator) and control characters (a
 * newline would end the line) replaced. */
static void put_clean(FILE *out, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		fputc(c == ';' ? ':' : c < 0x20 || c == 0x7f ? '?' : c, out);
	}
}

void reports_folded_frame_name(FILE *out, const struct reports_frame *f)
{
	if (f->function && f->function[0]) {
		put_clean(out, f->function);
		if (f->inlined)
			fputs("_[i]", out);
	} else if (f->module && f->module[0]) {
		put_clean(out, base_name(f->module));
		fprintf(out, "+0x%" PRIx64, f->offset);
	} else {
		fprintf(out, "0x%" PRIx64, f->address);
	}
}

struct folded_line {
	char *stack;
	uint64_t count;
};

static uint64_t site_cost(const struct reports_site *s, enum reports_cost cost, uint64_t temp)
{
	switch (cost) {
	case REPORTS_COST_PEAK:
		return s->peak_bytes;
	case REPORTS_COST_LEAKED:
		return s->leaked_bytes;
	case REPORTS_COST_ALLOCATIONS:
		return s->allocations;
	case REPORTS_COST_BYTES:
		return s->bytes;
	case REPORTS_COST_TEMPORARY:
		return temp;
	}
	return 0;
}

/* The folded names of one stack, outermost first, into a new string. */
static char *fold_stack(const struct reports_frames *fr)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return NULL;
	size_t start = reports_frames_display_start(fr), end = fr->n;
	for (size_t i = start; i < fr->n; i++) {
		const char *fn = fr->v[i]->function;
		if (fn && !fr->v[i]->inlined && strcmp(fn, "main") == 0) {
			end = i + 1;
			break;
		}
	}
	if (start >= end)
		fputs("[no stack]", m);
	for (size_t i = end; i-- > start;) {
		reports_folded_frame_name(m, fr->v[i]);
		if (i > start)
			fputc(';', m);
	}
	if (fclose(m) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int cmp_line(const void *a, const void *b)
{
	const struct folded_line *x = a, *y = b;
	return strcmp(x->stack, y->stack);
}

int reports_render_folded(FILE *out, const struct reports_capture *cap,
			  const struct reports_analysis *an, struct reports_symbolizer *sym,
			  enum reports_cost cost, const uint64_t *temporary)
{
	struct folded_line *lines = calloc(an->n_sites ? an->n_sites : 1, sizeof(*lines));
	struct reports_frames fr = {0};
	size_t n = 0;
	int res = lines ? 0 : -ENOMEM;
	for (size_t i = 0; i < an->n_sites && res == 0; i++) {
		uint64_t c = site_cost(&an->sites[i], cost, temporary ? temporary[i] : 0);
		if (c == 0)
			continue;
		if ((res = reports_stack_symbolize(sym, cap, an->sites[i].stack, &fr)) < 0)
			break;
		lines[n].count = c;
		if (!(lines[n++].stack = fold_stack(&fr)))
			res = -ENOMEM;
	}
	reports_frames_finish(&fr);
	if (res == 0 && n > 1)
		qsort(lines, n, sizeof(*lines), cmp_line);
	for (size_t i = 0; i < n && res == 0; i++) {
		uint64_t c = lines[i].count;
		while (i + 1 < n && strcmp(lines[i].stack, lines[i + 1].stack) == 0)
			c += lines[++i].count;
		fprintf(out, "%s %" PRIu64 "\n", lines[i].stack, c);
	}
	for (size_t i = 0; lines && i < n; i++)
		free(lines[i].stack);
	free(lines);
	if (res < 0)
		return res;
	fflush(out);
	return ferror(out) ? -EIO : 0;
}
