/*
 * leaks.c: suppressions applied to the leaks of an analysis, and their
 * part of the text report.  Entry points: reports_leaks_suppress(),
 * reports_supp_frames(), reports_render_text_suppression() (valgrind's
 * --gen-suppressions), reports_render_text_supp_summary().
 *
 * A loss record whose stack and kind match a suppression is suppressed;
 * then, suppressed blocks being roots (as in valgrind and LeakSanitizer),
 * every lost block reachable from one through the scan's edges is
 * suppressed too, and counts for the same suppression.  The records are
 * then grouped again from the blocks, as analysis.c groups them: one per
 * (kind, stack), an indirectly lost block adding its size to the record of
 * the lost block it hangs off, records sorted by total size.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <memprof/capture.h>

#include "reports-private.h"
#include "reports.h"
#include "suppress.h"

static bool is_lost(enum reports_leak_kind k)
{
	return k == REPORTS_LEAK_DEFINITE || k == REPORTS_LEAK_INDIRECT ||
	       k == REPORTS_LEAK_POSSIBLE;
}

static unsigned supp_kind(enum reports_leak_kind k)
{
	switch (k) {
	case REPORTS_LEAK_DEFINITE: return SUPP_DEFINITE;
	case REPORTS_LEAK_INDIRECT: return SUPP_INDIRECT;
	case REPORTS_LEAK_POSSIBLE: return SUPP_POSSIBLE;
	case REPORTS_LEAK_REACHABLE: return SUPP_REACHABLE;
	default: return 0;
	}
}

static bool is_own(const struct reports_frame *f)
{
	const char *m = f->module;
	const char *base = m ? strrchr(m, '/') : NULL;
	base = base ? base + 1 : m;
	return base && strncmp(base, "libmemprof-preload", 18) == 0;
}

static bool is_operator_new(const struct reports_frame *f)
{
	const char *mg = f->mangled ? f->mangled : f->function;
	if (mg && (strncmp(mg, "_Znw", 4) == 0 || strncmp(mg, "_Zna", 4) == 0))
		return true;
	return f->function && strncmp(f->function, "operator new", 12) == 0;
}

long reports_supp_frames(struct reports_symbolizer *sym, const struct reports_capture *cap,
			 uint32_t stack, struct supp_frame **out)
{
	struct reports_frames fr = { 0 };
	*out = NULL;
	if (reports_stack_symbolize(sym, cap, stack, &fr) < 0) {
		reports_frames_finish(&fr);
		return -ENOMEM;
	}
	size_t start = reports_frames_display_start(&fr);
	/* operator new calls malloc: valgrind's stacks start at operator new */
	if (start + 1 < fr.n && is_own(fr.v[start]) && is_operator_new(fr.v[start + 1]))
		start++;
	size_t end = fr.n;
	for (size_t i = start; i < fr.n; i++) {
		const char *fn = fr.v[i]->function;
		if (fn && !fr.v[i]->inlined && strcmp(fn, "main") == 0) {
			end = i + 1;
			break;
		}
	}
	size_t n = end > start ? end - start : 0;
	struct supp_frame *v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		reports_frames_finish(&fr);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct reports_frame *f = fr.v[start + i];
		v[i] = (struct supp_frame){
			.function = f->function,
			.mangled = f->mangled,
			.file = f->file,
			.line = f->line,
			.module = f->module,
		};
	}
	reports_frames_finish(&fr);
	*out = v;
	return (long)n;
}

/* ---- applying a set ------------------------------------------------------------ */

static int cmp_block(const void *a, const void *b)
{
	const struct reports_leak_block *x = a, *y = b;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->stack != y->stack)
		return x->stack < y->stack ? -1 : 1;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Groups an->leak_blocks into an->leak_records again. */
static int regroup(struct reports_analysis *an)
{
	struct reports_leak_block *bl = an->leak_blocks;
	size_t n = an->n_leak_blocks, cap_records = 0;
	struct reports_map at = { 0 };
	int res = -ENOMEM;
	free(an->leak_records);
	an->leak_records = NULL;
	an->n_leak_records = 0;
	if (n > 1)
		qsort(bl, n, sizeof(*bl), cmp_block);
	for (size_t i = 0; i < n; i++) {
		struct reports_leak_record *last =
			an->n_leak_records ? &an->leak_records[an->n_leak_records - 1] : NULL;
		if (!last || last->kind != bl[i].kind || last->stack != bl[i].stack) {
			struct reports_leak_record rec = { .kind = bl[i].kind, .stack = bl[i].stack };
			if (reports_vec_push(&an->leak_records, &an->n_leak_records, &cap_records,
					     &rec, sizeof(rec)) < 0)
				goto out;
			last = &an->leak_records[an->n_leak_records - 1];
		}
		last->bytes += bl[i].size;
		last->blocks++;
		bl[i].record = (uint32_t)an->n_leak_records - 1;
		if (i >= UINT32_MAX || reports_map_put(&at, bl[i].addr, (uint32_t)i) < 0)
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t owner;
		if (bl[i].kind != REPORTS_LEAK_INDIRECT || !bl[i].indirect_of ||
		    !reports_map_get(&at, bl[i].indirect_of, &owner) ||
		    bl[owner].kind == REPORTS_LEAK_INDIRECT ||
		    bl[owner].kind == REPORTS_LEAK_SUPPRESSED)
			continue;
		struct reports_leak_record *rec = &an->leak_records[bl[owner].record];
		rec->indirect_bytes += bl[i].size;
		rec->indirect_blocks++;
	}
	if (an->n_leak_records > 1)
		qsort(an->leak_records, an->n_leak_records, sizeof(*an->leak_records), reports_leak_record_cmp);
	/* the records moved: blocks no longer know theirs */
	for (size_t i = 0; i < n; i++)
		bl[i].record = UINT32_MAX;
	res = 0;
out:
	reports_map_finish(&at);
	return res;
}

static size_t chosen_scan(const struct reports_capture *cap)
{
	for (size_t i = cap->n_scans; i-- > 0;)
		if (cap->scans[i].flags & CAPTURE_SCAN_AT_EXIT)
			return i;
	return cap->n_scans - 1;
}

/* Suppresses every lost block reachable from a suppressed one (breadth
 * first over the scan's edges, with an explicit queue). */
static int propagate(struct reports_analysis *an, const struct reports_capture *cap)
{
	struct reports_leak_block *bl = an->leak_blocks;
	size_t n = an->n_leak_blocks;
	if (n == 0 || cap->n_scans == 0)
		return 0;
	size_t chosen = chosen_scan(cap);
	struct reports_map at = { 0 };
	size_t *start = calloc(n + 1, sizeof(*start));
	uint32_t *queue = malloc(n * sizeof(*queue));
	uint32_t *adj = NULL;
	size_t *fill = NULL;
	int res = -ENOMEM;
	if (!start || !queue)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (i >= UINT32_MAX || reports_map_put(&at, bl[i].addr, (uint32_t)i) < 0)
			goto out;
	size_t m = 0;
	for (size_t i = 0; i < cap->n_scan_edges; i++) {
		const struct reports_scan_edge *e = &cap->scan_edges[i];
		uint32_t f, t;
		if (e->scan == chosen && reports_map_get(&at, e->from, &f) &&
		    reports_map_get(&at, e->to, &t)) {
			start[f + 1]++;
			m++;
		}
	}
	for (size_t v = 0; v < n; v++)
		start[v + 1] += start[v];
	adj = malloc((m ? m : 1) * sizeof(*adj));
	fill = calloc(n, sizeof(*fill));
	if (!adj || !fill)
		goto out;
	for (size_t i = 0; i < cap->n_scan_edges; i++) {
		const struct reports_scan_edge *e = &cap->scan_edges[i];
		uint32_t f, t;
		if (e->scan == chosen && reports_map_get(&at, e->from, &f) &&
		    reports_map_get(&at, e->to, &t))
			adj[start[f] + fill[f]++] = t;
	}
	size_t head = 0, tail = 0;
	for (size_t i = 0; i < n; i++)
		if (bl[i].supp >= 0)
			queue[tail++] = (uint32_t)i;
	/* invariant: every block in queue[0, tail) is suppressed, once */
	while (head < tail) {
		uint32_t u = queue[head++];
		for (size_t k = start[u]; k < start[u + 1]; k++) {
			uint32_t w = adj[k];
			if (bl[w].supp >= 0 || !is_lost(bl[w].kind))
				continue;
			bl[w].supp = bl[u].supp;
			queue[tail++] = w;
		}
	}
	res = 0;
out:
	reports_map_finish(&at);
	free(start);
	free(queue);
	free(adj);
	free(fill);
	return res;
}

int reports_leaks_suppress(struct reports_analysis *an, const struct reports_capture *cap,
			   struct reports_symbolizer *sym, struct supp_set *set)
{
	if (!set || supp_set_count(set) == 0)
		return 0;
	size_t n_rec = an->n_leak_records, n_supp = supp_set_count(set);
	int32_t *rec_supp = malloc((n_rec ? n_rec : 1) * sizeof(*rec_supp));
	uint64_t *bytes = calloc(n_supp, sizeof(*bytes));
	uint64_t *blocks = calloc(n_supp, sizeof(*blocks));
	uint64_t *records = calloc(n_supp, sizeof(*records));
	struct reports_map rec_of = { 0 }; /* (stack, kind) -> record */
	int res = -ENOMEM;
	if (!rec_supp || !bytes || !blocks || !records)
		goto out;
	for (size_t r = 0; r < n_rec; r++) {
		const struct reports_leak_record *rec = &an->leak_records[r];
		rec_supp[r] = -1;
		unsigned bit = supp_kind(rec->kind);
		if (!bit)
			continue;
		struct supp_frame *fr;
		long nf = reports_supp_frames(sym, cap, rec->stack, &fr);
		if (nf < 0)
			goto out;
		rec_supp[r] = supp_set_match(set, fr, (size_t)nf, (enum supp_leak_kind)bit);
		free(fr);
		if (rec_supp[r] >= 0)
			records[rec_supp[r]]++;
		if (reports_map_put(&rec_of, ((uint64_t)rec->stack + 1) << 3 | rec->kind, (uint32_t)r) < 0)
			goto out;
	}
	for (size_t i = 0; i < an->n_leak_blocks; i++) {
		struct reports_leak_block *b = &an->leak_blocks[i];
		uint32_t r;
		if (b->supp < 0 && b->kind != REPORTS_LEAK_SUPPRESSED &&
		    reports_map_get(&rec_of, ((uint64_t)b->stack + 1) << 3 | b->kind, &r))
			b->supp = rec_supp[r];
	}
	if ((res = propagate(an, cap)) < 0)
		goto out;
	for (size_t i = 0; i < an->n_leak_blocks; i++) {
		struct reports_leak_block *b = &an->leak_blocks[i];
		if (b->supp < 0 || b->kind == REPORTS_LEAK_SUPPRESSED)
			continue;
		an->leaks[b->kind].bytes -= b->size;
		an->leaks[b->kind].blocks--;
		an->leaks[REPORTS_LEAK_SUPPRESSED].bytes += b->size;
		an->leaks[REPORTS_LEAK_SUPPRESSED].blocks++;
		b->kind = REPORTS_LEAK_SUPPRESSED;
		bytes[b->supp] += b->size;
		blocks[b->supp]++;
	}
	/* one use per record suppressed, the bytes of what it took along */
	for (size_t k = 0; k < n_supp; k++) {
		for (uint64_t u = 0; u < records[k]; u++)
			supp_set_record_use(set, (int)k, u ? 0 : bytes[k], u ? 0 : blocks[k]);
	}
	if ((res = regroup(an)) == 0)
		res = reports_cycles_find(cap, an);
out:
	reports_map_finish(&rec_of);
	free(rec_supp);
	free(bytes);
	free(blocks);
	free(records);
	return res;
}

/* ---- the text report ---------------------------------------------------------------- */

int reports_render_text_suppression(FILE *out, const struct reports_capture *cap,
				    struct reports_symbolizer *sym,
				    const struct reports_leak_record *r)
{
	struct supp_frame *fr;
	long n = reports_supp_frames(sym, cap, r->stack, &fr);
	if (n < 0)
		return (int)n;
	int res = 0;
	unsigned kinds = supp_kind(r->kind);
	ssize_t len = n > 0 && kinds ? supp_format_valgrind(fr, (size_t)n, kinds, NULL, NULL, 0)
				     : -EINVAL;
	char *buf = len > 0 ? malloc((size_t)len + 1) : NULL;
	if (len > 0 && !buf)
		res = -ENOMEM;
	else if (buf && supp_format_valgrind(fr, (size_t)n, kinds, NULL, buf, (size_t)len + 1) > 0)
		fputs(buf, out);
	free(buf);
	free(fr);
	return res;
}

void reports_render_text_supp_summary(FILE *out, const struct supp_set *set, bool color)
{
	const char *warn = color ? "\033[33m" : "", *reset = color ? "\033[0m" : "";
	size_t n = supp_set_count(set), nw = supp_set_warning_count(set);
	if (n == 0 && nw == 0)
		return;
	fprintf(out, "\n%sSuppressions%s\n", color ? "\033[1m" : "", reset);
	for (size_t i = 0; i < n; i++) {
		struct supp_info in;
		if (!supp_set_get(set, i, &in) || in.uses == 0)
			continue;
		fprintf(out, "  used %" PRIu64 " times, %" PRIu64 " bytes in %" PRIu64 " blocks: ",
			in.uses, in.bytes, in.blocks);
		reports_put_clean(out, in.name ? in.name : "", 0);
		fputs(" (", out);
		reports_put_clean(out, in.file ? in.file : "?", 0);
		fprintf(out, ":%u)\n", in.line);
	}
	for (size_t i = 0; i < n; i++) {
		struct supp_info in;
		if (!supp_set_get(set, i, &in) || in.uses != 0)
			continue;
		fprintf(out, "  %swarning:%s suppression '", warn, reset);
		reports_put_clean(out, in.name ? in.name : "", 0);
		fputs("' (", out);
		reports_put_clean(out, in.file ? in.file : "?", 0);
		fprintf(out, ":%u) was never used\n", in.line);
	}
	for (size_t i = 0; i < nw; i++) {
		const char *w = supp_set_warning(set, i);
		if (!w)
			continue;
		fprintf(out, "  %swarning:%s ", warn, reset);
		reports_put_clean(out, w, 0);
		fputc('\n', out);
	}
	if (nw > SUPP_WARNINGS_MAX)
		fprintf(out, "  (%zu more warnings)\n", nw - SUPP_WARNINGS_MAX);
}
